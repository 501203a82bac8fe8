/*
 * waits.h - what the client waits for: the broker's responses, in order.
 *
 * The broker answers requests in the order it read them, so the awaited
 * responses form a FIFO: a ring of small records, no allocation per
 * request.  Each record says what to do with the answer.  The client keeps
 * two: requests already written to the connection, and requests buffered
 * while disconnected, which join the first when they are sent.
 */
#ifndef PIGEON_WAITS_H
#define PIGEON_WAITS_H

#include <stddef.h>
#include <stdint.h>

#include "pigeon.h"

struct sub;

enum wait_kind {
    WAIT_HELLO,
    WAIT_SUB, /* u.sub */
    WAIT_UNSUB,
    WAIT_PING, /* the keepalive */
    WAIT_DONE, /* pigeon_flush or pigeon_publish_confirm: u.done */
    WAIT_REQ,  /* the pub of pigeon_request: u.token */
};

struct wait {
    uint32_t msgid;
    enum wait_kind kind;
    union {
        struct sub *sub;
        struct {
            pigeon_done_cb cb;
            void *arg;
        } done;
        uint64_t token;
    } u;
};

struct waits {
    struct wait *v; /* owned ring */
    size_t head, n, cap;
};

static inline void waits_init(struct waits *q)
{
    q->v = NULL;
    q->head = q->n = q->cap = 0;
}

void waits_destroy(struct waits *q);

/* Appends W. 0, or -1 when out of memory. */
int waits_push(struct waits *q, const struct wait *w);

/* The oldest record, or NULL. */
static inline struct wait *waits_peek(const struct waits *q)
{
    return q->n > 0 ? &q->v[q->head] : NULL;
}

/* Removes the oldest record into *OUT. 0, or -1 when empty. */
int waits_pop(struct waits *q, struct wait *out);

/* Appends every record of FROM to TO, emptying FROM. 0, or -1 (no memory). */
int waits_move(struct waits *to, struct waits *from);

#endif
