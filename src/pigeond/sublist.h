/*
 * sublist.h - the subscription index: which subscriptions match a topic.
 *
 * A trie of tokens.  Each node holds a map of literal next tokens, a '*'
 * child, the subscriptions whose pattern ends there, and those whose pattern
 * ends there with '>'.  Matching walks at most three branches per token, so
 * its cost grows with the number of tokens in the topic, not with the number
 * of subscriptions.  A bounded cache maps recently published topics to their
 * match result; any insert or remove voids it (a generation counter).
 *
 * Queue groups: a subscription inserted with a queue name joins the group
 * keyed by (pattern, name); the match result lists the group once, and the
 * caller picks one member per message with sublist_group_pick (round robin).
 *
 * The index stores opaque ITEM pointers (the broker's struct sub) and never
 * dereferences them.  It owns its nodes, entries and groups.
 */
#ifndef PIGEON_SUBLIST_H
#define PIGEON_SUBLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sublist;
struct sublist_entry; /* one inserted subscription; owned by the index */
struct sublist_group; /* one queue group; owned by the index */

/*
 * What a topic matched.  Borrowed: valid until the next sublist_match,
 * sublist_insert or sublist_remove on the same index (a later match may
 * evict or rebuild a cached result).  So a caller that may unsubscribe or
 * publish while walking a result, e.g. when a delivery closes a slow
 * consumer, must defer that until the walk is done.  Items and groups come
 * in no promised order.
 */
struct sublist_result {
    void *const *items; /* plain subscriptions, each once */
    size_t n_items;
    struct sublist_group *const *groups; /* queue groups with a match */
    size_t n_groups;
    /*
     * A word the caller may keep with a cached result, to remember
     * something about the topic for as long as the result stands: it
     * starts at 0, and any insert or remove voids it with the result.
     * The backplane keeps there that the topic has no remote interest
     * (cluster.c), so that such a message costs no second lookup.  NULL
     * when the result is not cached (the cache is off, or it is too large).
     */
    uint64_t *memo;
};

/*
 * The most entries (items plus groups) a cached result may have.  A larger
 * result is rebuilt by each match: delivering to that many subscriptions
 * costs far more than the walk, so caching it would save little, and its
 * copy per topic would let one connection with many '>' subscriptions fill
 * the cache with megabytes.  So the cache holds at most CACHE_MAX results
 * of at most this many pointers each.
 */
#define SUBLIST_CACHE_RESULT_MAX 64

/*
 * Returns a new, empty index that caches the results of up to CACHE_MAX
 * topics (0: no cache).  When the cache is full, a miss first evicts every
 * cached topic but those hit since the previous eviction, keeping at most
 * CACHE_MAX / 2.
 */
struct sublist *sublist_new(size_t cache_max);

/* Frees the index, its entries and groups (not the items). NULL is fine. */
void sublist_free(struct sublist *sl);

/*
 * Adds ITEM under PATTERN (checked with topic_check(TOPIC_PATTERN)), in the
 * queue group QUEUE when QUEUE is not NULL (QLEN bytes).  PATTERN and QUEUE
 * are copied.  Returns the entry, which the caller hands back to
 * sublist_remove.  The same item may be inserted more than once.
 */
struct sublist_entry *sublist_insert(struct sublist *sl, const char *pattern, size_t plen,
                                     const char *queue, size_t qlen, void *item);

/* Removes ENTRY (from sublist_insert); empty nodes and groups are freed. */
void sublist_remove(struct sublist *sl, struct sublist_entry *entry);

/*
 * Returns every subscription matching TOPIC (checked with
 * topic_check(TOPIC_PUBLISH)).  The result is borrowed (see above).
 */
const struct sublist_result *sublist_match(struct sublist *sl, const char *topic, size_t len);

/*
 * As sublist_match, with HASH = hmap_hash(TOPIC, LEN) computed by the
 * caller: a caller that looks one topic up in two indexes (the router and
 * the backplane's remote-interest index) hashes it once.
 */
const struct sublist_result *sublist_match_h(struct sublist *sl, const char *topic, size_t len,
                                             uint32_t hash);

/*
 * Picks the group's next member in round-robin order, passing over members
 * for which READY(item, ARG) is false; when none is ready, returns the next
 * member anyway.  READY may be NULL.  Never NULL for a group in a result.
 */
void *sublist_group_pick(struct sublist_group *g, bool (*ready)(void *item, void *arg), void *arg);

/*
 * A group's members, for a caller that chooses among them itself (the
 * backplane weighs remote nodes by their member counts, interest.h):
 * how many there are, and the item of member I (I below that count), in
 * no promised order.  Valid until the next insert or remove.
 */
size_t sublist_group_size(const struct sublist_group *g);
void *sublist_group_item(const struct sublist_group *g, size_t i);

/* Subscriptions in the index (a group's members each count). */
size_t sublist_count(const struct sublist *sl);

/* Trie nodes besides the root: 0 once every entry is removed.  For stats and tests. */
size_t sublist_node_count(const struct sublist *sl);

/* Topics whose results are cached, stale ones included.  For stats and tests. */
size_t sublist_cache_count(const struct sublist *sl);

/* Bytes those cached results take (their allocations).  For stats and tests. */
size_t sublist_cache_bytes(const struct sublist *sl);

#endif
