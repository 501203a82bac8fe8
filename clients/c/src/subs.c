/*
 * subs.c - the subscription table (see subs.h).
 */
#include "subs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A deleted slot: a pointer no allocation can return, only ever compared. */
#define SUBS_TOMB ((struct sub *)(uintptr_t)1)

void subs_init(struct subs *t)
{
    memset(t, 0, sizeof(*t));
}

void subs_destroy(struct subs *t)
{
    free(t->by_id);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void subs_free_one(struct sub *s)
{
    if (s == NULL)
        return;
    free(s->pattern);
    free(s->queue);
    free(s);
}

struct sub *subs_add(struct subs *t, const char *pattern, const char *queue, pigeon_msg_cb cb,
                     void *arg)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct sub **v = realloc(t->by_id, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        t->by_id = v;
        t->cap = cap;
    }
    struct sub *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->pattern = dup_str(pattern);
    s->queue = queue != NULL ? dup_str(queue) : NULL;
    if (s->pattern == NULL || (queue != NULL && s->queue == NULL)) {
        subs_free_one(s);
        return NULL;
    }
    s->id = ++t->last_id;
    s->cb = cb;
    s->arg = arg;
    t->by_id[t->n++] = s;
    return s;
}

/* Index of ID in by_id, or -1. */
static long subs_index(const struct subs *t, uint64_t id)
{
    long lo = 0, hi = (long)t->n - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (t->by_id[mid]->id == id)
            return mid;
        if (t->by_id[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

struct sub *subs_find(const struct subs *t, uint64_t id)
{
    long i = subs_index(t, id);
    return i < 0 ? NULL : t->by_id[i];
}

/* ------------------------------------------------------------ sid hash --- */

static size_t sid_hash(uint64_t sid, size_t n_slots)
{
    return (size_t)((sid * 0x9e3779b97f4a7c15ull) >> 17) & (n_slots - 1);
}

/* The slot holding SID, or -1. */
static long sid_slot(const struct subs *t, uint64_t sid)
{
    if (t->n_slots == 0)
        return -1;
    for (size_t i = sid_hash(sid, t->n_slots), k = 0; k < t->n_slots;
         i = (i + 1) & (t->n_slots - 1), k++) {
        struct sub *s = t->slots[i];
        if (s == NULL)
            return -1;
        if (s != SUBS_TOMB && s->sid == sid)
            return (long)i;
    }
    return -1;
}

static void sid_put(struct sub **slots, size_t n_slots, struct sub *s)
{
    size_t i = sid_hash(s->sid, n_slots);
    while (slots[i] != NULL && slots[i] != SUBS_TOMB)
        i = (i + 1) & (n_slots - 1);
    slots[i] = s;
}

/* Grows or cleans the hash so that one more entry keeps it under half full. */
static int sid_make_room(struct subs *t)
{
    if ((t->n_used + t->n_tombs + 1) * 2 <= t->n_slots)
        return 0;
    size_t n = t->n_slots ? t->n_slots : 16;
    while ((t->n_used + 1) * 2 > n)
        n *= 2;
    struct sub **slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < t->n_slots; i++)
        if (t->slots[i] != NULL && t->slots[i] != SUBS_TOMB)
            sid_put(slots, n, t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->n_slots = n;
    t->n_tombs = 0;
    return 0;
}

int subs_bind(struct subs *t, struct sub *s, uint64_t sid)
{
    if (sid_make_room(t) < 0)
        return -1;
    s->sid = sid;
    sid_put(t->slots, t->n_slots, s);
    t->n_used++;
    return 0;
}

struct sub *subs_by_sid(const struct subs *t, uint64_t sid)
{
    long i = sid_slot(t, sid);
    return i < 0 ? NULL : t->slots[i];
}

static void sid_unbind(struct subs *t, struct sub *s)
{
    if (s->sid == 0)
        return;
    long i = sid_slot(t, s->sid);
    if (i >= 0 && t->slots[i] == s) {
        t->slots[i] = SUBS_TOMB;
        t->n_used--;
        t->n_tombs++;
    }
    s->sid = 0;
}

void subs_unbind_all(struct subs *t)
{
    for (size_t i = 0; i < t->n; i++)
        t->by_id[i]->sid = 0;
    if (t->n_slots > 0)
        memset(t->slots, 0, t->n_slots * sizeof(*t->slots));
    t->n_used = t->n_tombs = 0;
}

void subs_remove(struct subs *t, struct sub *s)
{
    long i = subs_index(t, s->id);
    if (i >= 0) {
        memmove(&t->by_id[i], &t->by_id[i + 1], (t->n - (size_t)i - 1) * sizeof(*t->by_id));
        t->n--;
    }
    sid_unbind(t, s);
}
