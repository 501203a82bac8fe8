/*
 * hmap.h - a small open-addressing hash map from byte strings to pointers.
 *
 * The broker's lookup tables are all this shape and all sit on hot paths:
 * trie children (token -> node), the sublist match cache (topic -> result),
 * queue groups (name -> group) and per-connection sid tables (4-byte sid ->
 * sub).  Keys are short, and each key already lives inside the value it
 * names, so the map stores the key's pointer and length without copying the
 * bytes: a key is BORROWED and must stay valid, unchanged, for as long as
 * its entry is in the map.  Values must not be NULL (NULL means "absent").
 *
 * Design: Robin Hood linear probing in a power-of-two array of slots, with
 * backward-shift deletion (no tombstones, so a churned map never degrades).
 * Each slot keeps the key's 32-bit hash, so a probe compares hashes and
 * lengths before touching key bytes.  An empty map allocates nothing; the
 * array starts at one slot and doubles, may fill completely while it has 8
 * slots or fewer (probes are then bounded by the size), keeps a load of at
 * most 3/4 above that, and halves when a removal leaves it under 1/4 full;
 * the last removal frees it.  A slot is 24 bytes on 64-bit hosts.
 *
 * Why the struct is public: it is embedded in every trie node and
 * connection, where an opaque handle would cost a second allocation and a
 * pointer chase per lookup.  Treat the fields as private; use the functions.
 *
 * Not thread-safe.  Do not put or remove while iterating with hmap_next.
 * The hash is keyed by a process-wide 128-bit key (hmap_seed), the one
 * piece of state here that is not per map: it is written once at start-up.
 */
#ifndef PIGEON_HMAP_H
#define PIGEON_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_slot; /* private to hmap.c */

struct hmap {
    struct hmap_slot *slots; /* NULL while the map is empty */
    uint32_t mask;           /* slots - 1 while slots != NULL */
    uint32_t count;          /* entries */
};

/* clang-format off */
#define HMAP_INIT {NULL, 0, 0}
/* clang-format on */

/* Makes M an empty map (allocates nothing); same as = HMAP_INIT. */
void hmap_init(struct hmap *m);

/* Frees M's slot array (not the keys or values) and leaves M empty. */
void hmap_release(struct hmap *m);

/*
 * The hash hmap uses for KEY[0..LEN): compute it once with this and pass it
 * to the *_h variants to look the same key up in one or several maps
 * without hashing it again.  SipHash-1-3 of the key under the process's
 * hash key (see hmap_seed), cut to 32 bits: the same across maps, and
 * across runs until a seed is set.
 */
uint32_t hmap_hash(const void *key, size_t len);

#define HMAP_SEED_BYTES 16

/*
 * Sets the hash key to KEY (random, from the OS: pigeond reads it with
 * getrandom at start), so that peers cannot find colliding keys: SipHash
 * is a keyed pseudorandom function, and without the key its output tells
 * nothing about which keys share a slot.  Call once at process start,
 * before any map holds an entry: entries hashed under another key could
 * not be found.  Without it the key is 00 01 .. 0f.
 */
void hmap_seed(const unsigned char key[HMAP_SEED_BYTES]);

/* The value stored under KEY, borrowed, or NULL. */
void *hmap_get(const struct hmap *m, const void *key, size_t len);
void *hmap_get_h(const struct hmap *m, const void *key, size_t len, uint32_t hash);

/*
 * Stores VALUE (not NULL) under KEY, borrowing KEY (see above).  Where KEY
 * was present, its value and its key pointer are replaced (so the key may
 * now live in the new value) and the old value is returned; otherwise NULL.
 * May move entries (and reallocate the slot array).
 */
void *hmap_put(struct hmap *m, const void *key, size_t len, void *value);
void *hmap_put_h(struct hmap *m, const void *key, size_t len, uint32_t hash, void *value);

/* Removes KEY and returns its value, or NULL when KEY is absent. */
void *hmap_remove(struct hmap *m, const void *key, size_t len);
void *hmap_remove_h(struct hmap *m, const void *key, size_t len, uint32_t hash);

/*
 * Grows M's slot array, if need be, to hold N entries without growing again.
 * Removals may still shrink it.  For a map about to be filled in bulk.
 */
void hmap_reserve(struct hmap *m, size_t n);

/* Entries in M. */
static inline size_t hmap_count(const struct hmap *m)
{
    return m->count;
}

/*
 * Iteration in slot order:
 *
 *     size_t pos = 0;
 *     void *v;
 *     while ((v = hmap_next(m, &pos, NULL, NULL)) != NULL)
 *         ...;
 *
 * Returns the next value and, where KEY and LEN are not NULL, its key; NULL
 * once every entry has been seen.  POS starts at 0.  The map must not change
 * during the walk (freeing the values is fine, then hmap_release).
 */
void *hmap_next(const struct hmap *m, size_t *pos, const void **key, size_t *len);

/* Bytes M has allocated (its slot array), for memory accounting and tests. */
size_t hmap_bytes(const struct hmap *m);

#endif
