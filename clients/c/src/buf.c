/*
 * buf.c - growable contiguous byte buffer (see buf.h).
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 4096

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->data != NULL && b->cap - b->len >= n)
        return b->data + b->len;
    size_t used = b->len - b->off;
    /*
     * Moving the unconsumed tail to the front is enough when that frees the
     * room, and cheap enough when the bytes consumed pay for the move (each
     * consumed byte pays for moving at most four; a stricter rule measured
     * slower, as the buffer then grows instead).  Otherwise the buffer at
     * least doubles: reallocating at the same size would hand back fresh
     * pages, to be faulted in again every time.
     */
    if (b->data != NULL && b->cap - used >= n && b->off >= used / 4) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap * 2 : BUF_MIN_CAP;
    while (cap - used < n) {
        if (cap > SIZE_MAX / 2)
            return NULL;
        cap *= 2;
    }
    uint8_t *p;
    if (b->off == 0) {
        p = realloc(b->data, cap);
        if (p == NULL)
            return NULL;
    } else {
        p = malloc(cap);
        if (p == NULL)
            return NULL;
        memcpy(p, b->data + b->off, used);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    b->off = 0;
    b->len = used;
    return b->data + b->len;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t *w = buf_reserve(b, n);
    if (w == NULL)
        return -1;
    memcpy(w, p, n);
    b->len += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}
