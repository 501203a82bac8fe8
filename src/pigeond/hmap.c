/*
 * hmap.c - Robin Hood hash map with backward-shift deletion (see hmap.h).
 *
 * Invariants:
 *   - a slot is empty exactly when its value is NULL;
 *   - an entry's distance is (index - hash) & mask, how far it sits past its
 *     home slot; along any run of entries, no entry is more than one step
 *     further from home than the entry before it (Robin Hood order), so a
 *     lookup may stop at the first slot that is empty or whose entry is
 *     closer to home than the probe is;
 *   - there is always an empty slot or an entry at its home, so probing and
 *     shifting end even when the array is full (allowed up to HMAP_SMALL).
 *
 * The hash is SipHash-1-3 (siphash.h) under a 128-bit key, truncated to 32
 * bits.  pigeond draws the key from the kernel at start (hmap_seed), so a
 * peer who knows the algorithm still cannot tell which topics or tokens
 * share a home slot, and cannot turn a trie node or the match cache into a
 * linear list.  It replaced a home-made multiply-fold hash whose claim to
 * the same had never been reviewed; docs/performance.md gives the cost
 * (callgrind) of the change.
 */
#include "hmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "xalloc.h"

struct hmap_slot {
    const void *key; /* borrowed from the value */
    void *value;     /* NULL: the slot is empty */
    uint32_t hash;
    uint32_t len;
};

#define HMAP_SMALL 8 /* arrays up to this many slots may fill up */

/* ------------------------------------------------------------- hash ---- */

/*
 * The process's hash key, set once by hmap_seed() before any map is filled.
 * Until then it is the key of SipHash's reference test vectors, 00 01 .. 0f,
 * so the hash is the same in every run, which the unit tests rely on.
 */
static uint64_t hash_key[2] = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};

void hmap_seed(const unsigned char key[HMAP_SEED_BYTES])
{
    siphash_key(hash_key, key);
}

uint32_t hmap_hash(const void *key, size_t len)
{
    return (uint32_t)siphash(hash_key, key, len, 1, 3);
}

/* ------------------------------------------------------------ slots ---- */

static size_t hmap_cap(const struct hmap *m)
{
    return m->slots ? (size_t)m->mask + 1 : 0;
}

static size_t max_load(size_t cap)
{
    return cap <= HMAP_SMALL ? cap : cap - cap / 4;
}

static uint32_t slot_dist(const struct hmap_slot *s, uint32_t idx, uint32_t mask)
{
    return (idx - s->hash) & mask;
}

static bool slot_is(const struct hmap_slot *s, const void *key, size_t len, uint32_t hash)
{
    return s->hash == hash && s->len == len && (len == 0 || memcmp(s->key, key, len) == 0);
}

static struct hmap_slot *hmap_find(const struct hmap *m, const void *key, size_t len, uint32_t hash)
{
    uint32_t mask = m->mask, idx = hash & mask;

    if (m->slots == NULL)
        return NULL;
    for (uint32_t d = 0;; d++, idx = (idx + 1) & mask) {
        struct hmap_slot *s = &m->slots[idx];
        if (s->value == NULL || slot_dist(s, idx, mask) < d)
            return NULL;
        if (slot_is(s, key, len, hash))
            return s;
    }
}

/* Puts IN, whose key is absent, into an array with an empty slot. */
static void slots_place(struct hmap_slot *slots, uint32_t mask, struct hmap_slot in)
{
    uint32_t idx = in.hash & mask;

    for (uint32_t d = 0;; d++, idx = (idx + 1) & mask) {
        struct hmap_slot *s = &slots[idx];
        uint32_t sd;
        if (s->value == NULL) {
            *s = in;
            return;
        }
        sd = slot_dist(s, idx, mask);
        if (sd < d) { /* take from the rich: IN settles here, S moves on */
            struct hmap_slot out = *s;
            *s = in;
            in = out;
            d = sd;
        }
    }
}

static void hmap_resize(struct hmap *m, size_t cap)
{
    struct hmap_slot *old = m->slots;
    size_t old_cap = hmap_cap(m);

    assert(cap >= m->count && cap <= (size_t)UINT32_MAX + 1);
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].value != NULL)
            slots_place(m->slots, m->mask, old[i]);
    }
    free(old);
}

/* The smallest capacity that holds N entries. */
static size_t cap_for(size_t n)
{
    size_t cap = 1;

    while (max_load(cap) < n)
        cap *= 2;
    return cap;
}

/* -------------------------------------------------------------- API ---- */

void hmap_init(struct hmap *m)
{
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

void hmap_release(struct hmap *m)
{
    free(m->slots);
    hmap_init(m);
}

void hmap_reserve(struct hmap *m, size_t n)
{
    size_t cap;

    assert(n <= UINT32_MAX);
    cap = cap_for(n);
    if (n > 0 && cap > hmap_cap(m))
        hmap_resize(m, cap);
}

void *hmap_get_h(const struct hmap *m, const void *key, size_t len, uint32_t hash)
{
    struct hmap_slot *s = hmap_find(m, key, len, hash);
    return s ? s->value : NULL;
}

void *hmap_get(const struct hmap *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    return hmap_get_h(m, key, len, hmap_hash(key, len));
}

void *hmap_put_h(struct hmap *m, const void *key, size_t len, uint32_t hash, void *value)
{
    struct hmap_slot *s = hmap_find(m, key, len, hash);
    size_t cap = hmap_cap(m);

    assert(value != NULL && len <= UINT32_MAX);
    if (s != NULL) {
        void *old = s->value;
        s->key = key;
        s->value = value;
        return old;
    }
    if ((size_t)m->count + 1 > max_load(cap))
        hmap_resize(m, cap ? cap * 2 : 1);
    slots_place(m->slots, m->mask,
                (struct hmap_slot){.key = key, .value = value, .hash = hash, .len = (uint32_t)len});
    m->count++;
    return NULL;
}

void *hmap_put(struct hmap *m, const void *key, size_t len, void *value)
{
    return hmap_put_h(m, key, len, hmap_hash(key, len), value);
}

/* Empties slot IDX and pulls each displaced follower one step back home. */
static void slots_shift_back(struct hmap_slot *slots, uint32_t mask, uint32_t idx)
{
    for (;;) {
        uint32_t next = (idx + 1) & mask;
        struct hmap_slot *n = &slots[next];
        if (n->value == NULL || slot_dist(n, next, mask) == 0)
            break;
        slots[idx] = *n;
        idx = next;
    }
    memset(&slots[idx], 0, sizeof slots[idx]);
}

void *hmap_remove_h(struct hmap *m, const void *key, size_t len, uint32_t hash)
{
    struct hmap_slot *s = hmap_find(m, key, len, hash);
    size_t cap = hmap_cap(m);
    void *old;

    if (s == NULL)
        return NULL;
    old = s->value;
    slots_shift_back(m->slots, m->mask, (uint32_t)(s - m->slots));
    m->count--;
    if (m->count == 0)
        hmap_release(m);
    else if (m->count < cap / 4)
        hmap_resize(m, cap / 2);
    return old;
}

void *hmap_remove(struct hmap *m, const void *key, size_t len)
{
    if (m->count == 0)
        return NULL;
    return hmap_remove_h(m, key, len, hmap_hash(key, len));
}

void *hmap_next(const struct hmap *m, size_t *pos, const void **key, size_t *len)
{
    size_t cap = hmap_cap(m);

    for (size_t i = *pos; i < cap; i++) {
        const struct hmap_slot *s = &m->slots[i];
        if (s->value == NULL)
            continue;
        *pos = i + 1;
        if (key != NULL)
            *key = s->key;
        if (len != NULL)
            *len = s->len;
        return s->value;
    }
    *pos = cap;
    return NULL;
}

size_t hmap_bytes(const struct hmap *m)
{
    return hmap_cap(m) * sizeof(struct hmap_slot);
}
