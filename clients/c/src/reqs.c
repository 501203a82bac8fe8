/*
 * reqs.c - the table of requests waiting for a reply (see reqs.h).
 */
#include "reqs.h"

#include <stdlib.h>
#include <string.h>

void reqs_destroy(struct reqs *t)
{
    free(t->v);
    reqs_init(t);
}

int reqs_add(struct reqs *t, struct req *r)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct req **v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = r;
    return 0;
}

static struct req *reqs_take_at(struct reqs *t, size_t i)
{
    struct req *r = t->v[i];
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
    t->n--;
    return r;
}

struct req *reqs_take(struct reqs *t, uint64_t token)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid]->token == token)
            return reqs_take_at(t, mid);
        if (t->v[mid]->token < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

struct req *reqs_take_any(struct reqs *t)
{
    return t->n > 0 ? reqs_take_at(t, 0) : NULL;
}
