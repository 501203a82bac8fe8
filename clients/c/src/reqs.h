/*
 * reqs.h - requests waiting for their reply, by token.
 *
 * A request's reply comes to `_INBOX.<random>.<token>`; the token is a
 * counter, so tokens only grow and the table is an array sorted by token
 * (append, binary search, remove by moving the tail).  Each request owns a
 * timer for its timeout; the client (client.c) runs the callbacks.
 */
#ifndef PIGEON_REQS_H
#define PIGEON_REQS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon.h"

struct event;

struct req {
    uint64_t token;
    pigeon_reply_cb cb;
    void *arg;
    struct event *timer;   /* owned */
    pigeon_client *client; /* borrowed, for the timer's callback */
};

struct reqs {
    struct req **v; /* sorted by token */
    size_t n, cap;
};

static inline void reqs_init(struct reqs *t)
{
    t->v = NULL;
    t->n = t->cap = 0;
}

/* Frees the table, not the requests. */
void reqs_destroy(struct reqs *t);

/* Appends R, whose token is above every other. 0, or -1 when out of memory. */
int reqs_add(struct reqs *t, struct req *r);

/* Removes and returns the request with TOKEN, or NULL. */
struct req *reqs_take(struct reqs *t, uint64_t token);

/* Removes and returns any request (the oldest), or NULL when empty. */
struct req *reqs_take_any(struct reqs *t);

#endif
