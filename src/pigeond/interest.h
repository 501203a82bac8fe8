/*
 * interest.h - the remote-interest index: which other nodes of the cluster
 * want a topic, and which one takes a queue group's turn.
 *
 * Each remote node announces its interest (cluster.h): the patterns its
 * clients subscribe to, each with a count of subscriptions, and the queue
 * groups among them.  The index holds one entry per (node, pattern, queue)
 * with its count, all in one subscription trie (sublist.h) whose items are
 * the entries: so routing a topic is one sublist_match, which the match
 * cache makes one hash lookup, whatever the number of nodes and patterns.
 * Queue groups fall out of the trie's own grouping: the entries of every
 * node for one (pattern, queue) are the members of one sublist group.
 *
 * interest_route() turns a match into targets: each node that should get
 * the message once (however many of its patterns overlap), with the
 * number of its subscriptions that expect it, and, for each queue group
 * that no local member serves, the one node picked to take the turn.  The
 * pick is a smooth weighted round robin over the nodes announcing the
 * group, weighted by their member counts: over any run of messages each
 * node's share is proportional to its members, and no node gets two turns
 * in a row while another is owed one.  Local members go first (the caller
 * says which groups it serves itself), as NATS does.
 *
 * A node's owner is the caller's per-node state, borrowed; the index never
 * looks inside it.  The index owns its nodes and entries.  Not thread-safe;
 * the backplane runs on the main loop.
 */
#ifndef PIGEON_INTEREST_H
#define PIGEON_INTEREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct interest;
struct interest_node; /* one remote node's entries; owned by the index */

/* One node a routed message goes to. */
struct interest_target {
    void *owner;   /* the node's owner (interest_node_add) */
    uint32_t subs; /* its subscriptions that expect the message: plain counts plus one per group */
};

/* One queue group's turn, given to target TARGET. */
struct interest_pick {
    uint32_t target;     /* index into targets */
    const char *pattern; /* NUL-terminated; borrowed from the index */
    const char *queue;   /* NUL-terminated; borrowed from the index */
};

/*
 * Where a topic goes.  Borrowed: valid until the next call on the index.
 * Targets come in no promised order; a pick's strings stay valid as long
 * as its entry does.
 */
struct interest_route {
    const struct interest_target *targets;
    size_t n_targets;
    const struct interest_pick *picks;
    size_t n_picks;
};

/* True when the caller serves the group (PATTERN, QUEUE) itself for this topic. */
typedef bool (*interest_local_fn)(void *arg, const char *pattern, const char *queue);

/* Returns a new, empty index. */
struct interest *interest_new(void);

/* Frees the index, its nodes and entries (not their owners). NULL is fine. */
void interest_free(struct interest *in);

/* Adds a node with no entries; OWNER is borrowed.  Returns its handle. */
struct interest_node *interest_node_add(struct interest *in, void *owner);

/* Removes NODE and every entry it had. */
void interest_node_remove(struct interest *in, struct interest_node *node);

/* Removes every entry NODE has (a snapshot is about to replace them). */
void interest_node_clear(struct interest *in, struct interest_node *node);

/*
 * Sets NODE's count of subscriptions to PATTERN (PLEN bytes) in queue
 * group QUEUE (QLEN bytes; NULL for plain subscriptions) to COUNT; 0
 * removes the entry.  Returns 0, or -1 when PATTERN is not a valid pattern
 * or QUEUE not a valid group name (nothing changes).
 */
int interest_set(struct interest *in, struct interest_node *node, const char *pattern, size_t plen,
                 const char *queue, size_t qlen, uint32_t count);

/*
 * The field form of an entry, as nodes announce it: "pattern", or
 * "pattern queue" (neither may contain a space).  Splits FIELD into
 * *PATTERN and *QUEUE (NULL when plain) with their lengths.  Returns 0, or
 * -1 when FIELD is malformed.  The pointers point into FIELD.
 */
int interest_field_split(const char *field, size_t len, const char **pattern, size_t *plen,
                         const char **queue, size_t *qlen);

/* As interest_set, with the entry given in its field form. */
int interest_set_field(struct interest *in, struct interest_node *node, const char *field,
                       size_t len, uint32_t count);

/*
 * Routes TOPIC (a checked published topic, whose hmap_hash is HASH): the
 * nodes that want it, each once, and a node for each queue group for which
 * LOCAL (may be NULL) returns false.  The result is borrowed (see above).
 */
const struct interest_route *interest_route(struct interest *in, const char *topic, size_t len,
                                            uint32_t hash, interest_local_fn local, void *arg);

/*
 * The index's counters, the first member of struct interest, so that the
 * check made for every published message (cluster_forward) is two loads
 * and no call.  Read them through the two functions below.
 */
struct interest_counts {
    size_t entries;      /* over every node */
    uint64_t generation; /* changes whenever any entry does; never 0 */
};

static inline const struct interest_counts *interest_counts_of(const struct interest *in)
{
    return (const struct interest_counts *)(const void *)in;
}

/* A number that changes whenever any entry does (never 0). */
static inline uint64_t interest_generation(const struct interest *in)
{
    return interest_counts_of(in)->generation;
}

/* Entries in the index, over every node; and of NODE. */
static inline size_t interest_entry_count(const struct interest *in)
{
    return interest_counts_of(in)->entries;
}
size_t interest_node_entries(const struct interest_node *node);

/* Nodes in the index. */
size_t interest_node_count(const struct interest *in);

/* NODE's count for the field FIELD, or 0.  For tests. */
uint32_t interest_node_get(const struct interest_node *node, const char *field, size_t len);

#endif
