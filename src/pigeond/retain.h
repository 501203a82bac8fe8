/*
 * retain.h - the retained store: the last value kept for each topic.
 *
 * A trie of topic tokens, so that a new subscription's pattern finds the
 * retained topics it matches by walking only the branches the pattern can
 * reach ('*' visits every child of a level, '>' a whole subtree), never by
 * scanning every retained topic.  The '$' rule of topic.h applies: a
 * wildcard first token does not reach topics beginning with '$'.
 *
 * Values are opaque: the store keeps a pointer and the byte cost the caller
 * declares for it, and hands a replaced or removed value back to the caller,
 * who owns it.  The broker stores refcounted blocks.  retain_bytes() totals
 * the declared costs and what the store's own trie nodes take (a value on a
 * topic of 128 one-byte tokens may need 128 new nodes, some 14 KiB, however
 * small the value): so a limit checked against it bounds real memory.
 */
#ifndef PIGEON_RETAIN_H
#define PIGEON_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct retain_store;

struct retain_store *retain_new(void);

/* Frees the store; calls FREE_VALUE(value) for each value left. NULL is fine. */
void retain_free(struct retain_store *rs, void (*free_value)(void *value));

/*
 * Sets TOPIC's value (TOPIC checked as a published topic; copied; VALUE not
 * NULL: clearing is retain_clear).  Returns
 * the value it replaces, or NULL; ownership of VALUE passes to the store and
 * of the returned one to the caller.  COST is counted in retain_bytes(), and
 * so are the nodes the set creates (a clear gives both back).
 */
void *retain_set(struct retain_store *rs, const char *topic, size_t len, void *value, size_t cost);

/*
 * What retain_bytes() would be after retain_set(TOPIC, COST): the old
 * value's cost given back, COST and the nodes the set would create added.
 * For checking a limit before setting.  TOPIC checked as a published topic.
 */
uint64_t retain_bytes_if_set(const struct retain_store *rs, const char *topic, size_t len,
                             size_t cost);

/* Removes TOPIC's value and returns it (the caller owns it), or NULL. */
void *retain_clear(struct retain_store *rs, const char *topic, size_t len);

/* The value kept for TOPIC, borrowed, or NULL. */
void *retain_get(const struct retain_store *rs, const char *topic, size_t len);

/* The cost declared for TOPIC's value, or 0 when it has none. */
size_t retain_cost(const struct retain_store *rs, const char *topic, size_t len);

/*
 * Calls FN(topic, len, value, ARG) for every retained topic PATTERN matches
 * (PATTERN checked as a pattern), in no promised order.  FN must not change
 * the store.  TOPIC is borrowed for the call only (it is also NUL-terminated).
 */
void retain_foreach_match(const struct retain_store *rs, const char *pattern, size_t plen,
                          void (*fn)(const char *topic, size_t len, void *value, void *arg),
                          void *arg);

size_t retain_count(const struct retain_store *rs);        /* topics with a value */
uint64_t retain_bytes(const struct retain_store *rs);      /* their costs plus the nodes' */
uint64_t retain_node_bytes(const struct retain_store *rs); /* the nodes' part of that */

/* Trie nodes besides the root: 0 once every value is cleared.  For stats and tests. */
size_t retain_node_count(const struct retain_store *rs);

#endif
