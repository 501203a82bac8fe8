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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct retain_store;
struct rt_node;

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
 * A whole walk at once: for tests and tools.  The broker replays through a
 * cursor (below), a bounded step at a time.
 */
void retain_foreach_match(struct retain_store *rs, const char *pattern, size_t plen,
                          void (*fn)(const char *topic, size_t len, void *value, void *arg),
                          void *arg);

/*
 * A resumable walk over the values a pattern matches, for a new
 * subscription's replay.  It stands on one trie node, which it pins (a
 * pinned node is not freed, though its value and children may go), and
 * takes up where it stopped however the store changed meanwhile: the trie
 * is walked depth first, each node's children in the order they were made,
 * and only values set before the cursor began are offered (seq below
 * `before`), so a value set, replaced or cleared after that is never
 * offered: it went to the subscriber live.  Each value is offered once.
 *
 * The struct is public so that it can be embedded; its fields are private.
 * A cursor must be released before its store is freed.
 */
struct retain_cursor {
    struct rt_node *at; /* pinned; NULL before the first step and once done */
    uint64_t before;    /* offers values whose seq is below this */
    uint32_t depth;     /* tokens in at's topic */
    bool offered;       /* at's value was taken (or it had none to offer) */
    bool done;
};

enum retain_walk {
    RETAIN_WALK_DONE,    /* every value was offered; the cursor holds nothing */
    RETAIN_WALK_BUDGET,  /* *BUDGET nodes were visited; call again to go on */
    RETAIN_WALK_REFUSED, /* FN refused a value: it is offered again next time */
};

/* Starts CUR over the values retained now. */
void retain_cursor_init(struct retain_store *rs, struct retain_cursor *cur);

/*
 * Goes on with CUR's walk of PATTERN (checked; the same at every call),
 * offering each value to FN(value, ARG), which returns false to refuse it
 * for now (no room).  Visits at most *BUDGET nodes (at least 1), counting
 * them off *BUDGET, so one call costs O(*BUDGET) whatever the store holds.
 * FN must not change the store.
 */
enum retain_walk retain_cursor_walk(struct retain_store *rs, struct retain_cursor *cur,
                                    const char *pattern, size_t plen, size_t *budget,
                                    bool (*fn)(void *value, void *arg), void *arg);

/* Lets go of CUR's node (it may be freed now).  Safe on a finished cursor. */
void retain_cursor_release(struct retain_store *rs, struct retain_cursor *cur);

size_t retain_count(const struct retain_store *rs);        /* topics with a value */
uint64_t retain_bytes(const struct retain_store *rs);      /* their costs plus the nodes' */
uint64_t retain_node_bytes(const struct retain_store *rs); /* the nodes' part of that */

/* Trie nodes besides the root: 0 once every value is cleared.  For stats and tests. */
size_t retain_node_count(const struct retain_store *rs);

#endif
