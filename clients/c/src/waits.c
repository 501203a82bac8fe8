/*
 * waits.c - the FIFO of awaited responses (see waits.h).
 */
#include "waits.h"

#include <stdlib.h>

void waits_destroy(struct waits *q)
{
    free(q->v);
    waits_init(q);
}

static int waits_grow(struct waits *q, size_t need)
{
    if (need <= q->cap)
        return 0;
    size_t cap = q->cap ? q->cap : 16;
    while (cap < need)
        cap *= 2;
    struct wait *v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < q->n; i++)
        v[i] = q->v[(q->head + i) % q->cap];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int waits_push(struct waits *q, const struct wait *w)
{
    if (waits_grow(q, q->n + 1) < 0)
        return -1;
    q->v[(q->head + q->n) % q->cap] = *w;
    q->n++;
    return 0;
}

int waits_pop(struct waits *q, struct wait *out)
{
    if (q->n == 0)
        return -1;
    *out = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return 0;
}

int waits_move(struct waits *to, struct waits *from)
{
    if (waits_grow(to, to->n + from->n) < 0)
        return -1;
    struct wait w;
    while (waits_pop(from, &w) == 0)
        to->v[(to->head + to->n++) % to->cap] = w;
    return 0;
}
