/*
 * subs.h - the client's subscriptions, which outlive connections.
 *
 * Each subscription has a local id, handed to the user and stable across
 * reconnects, and on the current connection the broker's sid (0 while it
 * has none).  The table finds a subscription by id (for unsubscribe: a
 * sorted array, since ids only grow) and by sid (for every message: an
 * open-addressing hash, rebuilt empty after a disconnect).
 *
 * Lifetime: a subscription removed while its `sub` request is in flight
 * (`awaiting`) is marked dead and stays allocated until the answer comes,
 * because the waiting request points at it; everything else is freed by
 * whoever removes it.
 */
#ifndef PIGEON_SUBS_H
#define PIGEON_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pigeon.h"

struct sub {
    uint64_t id;
    char *pattern; /* owned, NUL-terminated */
    char *queue;   /* owned, or NULL */
    pigeon_msg_cb cb;
    void *arg;
    pigeon_done_cb on_done; /* cleared once called */
    void *done_arg;
    uint64_t sid;  /* the broker's, on this connection; 0 when none */
    bool awaiting; /* a `sub` request is in flight and points here */
    bool dead;     /* removed while awaiting */
    bool internal; /* the request/reply inbox */
};

struct subs {
    struct sub **by_id; /* sorted by id */
    size_t n, cap;
    struct sub **slots; /* by sid; NULL empty, SUBS_TOMB deleted */
    size_t n_slots, n_used, n_tombs;
    uint64_t last_id;
};

void subs_init(struct subs *t);

/* Frees the table, not the subscriptions (see subs_at). */
void subs_destroy(struct subs *t);

/* Creates a subscription (the table's) with the next id. NULL when out of memory. */
struct sub *subs_add(struct subs *t, const char *pattern, const char *queue, pigeon_msg_cb cb,
                     void *arg);

/* The live subscription ID, or NULL. */
struct sub *subs_find(const struct subs *t, uint64_t id);

/* Takes S out of the table (by id and by sid); the caller frees it or marks it dead. */
void subs_remove(struct subs *t, struct sub *s);

/* Frees S. NULL is fine. */
void subs_free_one(struct sub *s);

/* Records that S has the broker's SID. 0, or -1 when out of memory. */
int subs_bind(struct subs *t, struct sub *s, uint64_t sid);

/* The subscription with the broker's SID, or NULL. */
struct sub *subs_by_sid(const struct subs *t, uint64_t sid);

/* Forgets every sid (the connection is gone). */
void subs_unbind_all(struct subs *t);

/* Live subscriptions in id order: index I < t->n. */
static inline struct sub *subs_at(const struct subs *t, size_t i)
{
    return t->by_id[i];
}

#endif
