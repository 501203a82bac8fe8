/*
 * acl.h - one user's permissions, compiled: may it publish to a topic,
 * subscribe with a pattern, receive a message on a topic.
 *
 * A user has four lists of patterns (docs/security.md): publish allow,
 * publish deny, subscribe allow, subscribe deny.  Nothing is allowed unless
 * an allow pattern matches, and a deny pattern wins over an allow.  As in
 * matching (topic.h), a '*' or '>' at the first token never reaches a '$'
 * topic, so "$SYS.>" must be granted by name.  "%u" as a whole token of a
 * configured pattern stands for the user's name, one literal token (names
 * are A-Z a-z 0-9 _ -, so no name can widen a pattern).
 *
 * Each list is compiled into a token trie (on hmap.h), so a decision walks
 * the topic's tokens through one trie: its cost grows with the tokens, not
 * with the number of patterns.  The exact rules for a subscription pattern
 * ("covered" by an allow pattern, "overlapping" a deny pattern) are written
 * out with examples atop acl.c.
 *
 * An acl is built once (acl_new, acl_add for each pattern) and then only
 * read: every query takes a const pointer, so one acl may be read by any
 * number of threads at once.  Each acl gets an id unique in the process, so
 * a decision cache (below) can tell that the acl it was filled for was
 * replaced, even by one allocated at the same address.
 *
 * How the broker uses it (one check per decision, nothing per message that
 * was decided before):
 *
 *   pub       acl_cache_may_publish, on the connection's cache; a reply_to
 *             must pass acl_may_reply_to;
 *   sub       acl_check_subscribe once, when the subscription is made:
 *             DENIED -> code 8; ALLOWED -> deliver as usual; FILTERED ->
 *             each delivery (retained replays too) asks
 *             acl_cache_may_receive first;
 *   reload    the user's new acl has a new id: caches refill themselves;
 *             subscriptions should be checked again against the new acl.
 */
#ifndef PIGEON_ACL_H
#define PIGEON_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

/* The four lists of a user, in the users file's key order. */
enum acl_list {
    ACL_PUBLISH,        /* publish */
    ACL_PUBLISH_DENY,   /* publish_deny */
    ACL_SUBSCRIBE,      /* subscribe */
    ACL_SUBSCRIBE_DENY, /* subscribe_deny */
    ACL_LIST_N,
};

/* What acl_check_subscribe decides for a subscription pattern. */
enum acl_sub {
    ACL_SUB_DENIED,   /* no single subscribe-allow pattern covers it: code 8 */
    ACL_SUB_ALLOWED,  /* covered, and no topic it matches is denied */
    ACL_SUB_FILTERED, /* covered, but it overlaps a subscribe-deny pattern: check each delivery */
};

/* A new acl that allows nothing.  Owned by the caller (acl_free). */
struct acl *acl_new(void);

/* Frees ACL.  NULL is fine. */
void acl_free(struct acl *acl);

/*
 * Adds PATTERN (LEN bytes, borrowed for the call) to ACL's list LIST, with
 * each "%u" token replaced by USER (a valid user name, NUL-terminated).
 * Returns 0, or -1 with a reason in WHY (WHY_LEN bytes): "%u" inside a
 * longer token, or a pattern that breaks topic.h's rules (after the
 * replacement; e.g. one that grows past 255 bytes).  Adding a pattern twice
 * is harmless.  Not once ACL is being read by another thread.
 */
int acl_add(struct acl *acl, enum acl_list list, const char *pattern, size_t len, const char *user,
            char *why, size_t why_len);

/* The id of ACL: unique among the acls of this process, never 0. */
uint64_t acl_id(const struct acl *acl);

/* Patterns in ACL's list LIST (duplicates counted once). */
size_t acl_count(const struct acl *acl, enum acl_list list);

/* ------------------------------------------------------- decisions ---- */

/* True when ACL lets its user publish to TOPIC (checked as a published topic). */
bool acl_may_publish(const struct acl *acl, const char *topic, size_t len);

/*
 * True when ACL lets its user receive a message on TOPIC (checked): a
 * subscribe-allow pattern matches it and no subscribe-deny pattern does.
 * For deliveries to ACL_SUB_FILTERED subscriptions.
 */
bool acl_may_receive(const struct acl *acl, const char *topic, size_t len);

/*
 * True when some subscribe-allow pattern matches TOPIC (checked): the test
 * for a `pub`'s reply_to ("a requester may only ask for answers it could
 * receive"; a topic is covered by a pattern exactly when it matches it).
 */
bool acl_may_reply_to(const struct acl *acl, const char *topic, size_t len);

/*
 * Decides a subscription with PATTERN (checked with topic_check(TOPIC_PATTERN)):
 * DENIED when no single subscribe-allow pattern covers every topic PATTERN
 * can match; else FILTERED when some topic matches both PATTERN and a
 * subscribe-deny pattern; else ALLOWED.  Costs one walk of each trie along
 * PATTERN's tokens, plus, for a '*' in PATTERN, the deny trie's branches at
 * that depth.  Call once per subscription, not per message.
 */
enum acl_sub acl_check_subscribe(const struct acl *acl, const char *pattern, size_t len);

/* "denied", "allowed", "filtered".  Static. */
const char *acl_sub_name(enum acl_sub d);

/* ------------------------------------------------- decision cache ---- */

/*
 * A connection's recent decisions, so that a publisher that sends to the
 * same few topics pays one hash and one compare per message instead of a
 * trie walk (NATS keeps a 128-entry cache per client the same way).
 *
 * ACL_CACHE_SLOTS slots, direct-mapped by the topic's hmap_hash: a topic
 * evicts whichever topic held its slot.  A slot keeps its own copy of the
 * topic (so a hit is exact, never a hash collision) and both decisions,
 * publish and receive, each filled on first use.  The slot array (and each
 * topic copy) is allocated on first use, so a connection that never
 * publishes pays only the struct.  The cache remembers the id of the acl it
 * was filled for: asked about another acl (the user's policy was replaced
 * on reload), it empties itself first.  At most about
 * ACL_CACHE_SLOTS * (24 + 256) bytes per connection; usually a few KiB.
 *
 * Embedded in the connection (hence public); treat the fields as private.
 * One cache per connection, used by one thread.
 */
#define ACL_CACHE_SLOTS 128

struct acl_cache_slot;

struct acl_cache {
    uint64_t acl_id;              /* the acl the slots were filled for; 0: none */
    struct acl_cache_slot *slots; /* owned: ACL_CACHE_SLOTS of them, or NULL */
    uint64_t hits, misses;        /* for tests and stats */
};

/* Makes C empty (allocates nothing). */
void acl_cache_init(struct acl_cache *c);

/* Frees what C holds and leaves it empty (reusable). */
void acl_cache_fini(struct acl_cache *c);

/* acl_may_publish(ACL, TOPIC, LEN), answered from C when it can be. */
bool acl_cache_may_publish(struct acl_cache *c, const struct acl *acl, const char *topic,
                           size_t len);

/* The same, with HASH = hmap_hash(TOPIC, LEN) known already (session_topic_keep). */
bool acl_cache_may_publish_h(struct acl_cache *c, const struct acl *acl, const char *topic,
                             size_t len, uint32_t hash);

/* acl_may_receive(ACL, TOPIC, LEN), answered from C when it can be. */
bool acl_cache_may_receive(struct acl_cache *c, const struct acl *acl, const char *topic,
                           size_t len);

#endif
