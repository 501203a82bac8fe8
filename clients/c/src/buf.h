/*
 * buf.h - a growable contiguous byte buffer: the client's output, its
 * reconnect buffer, and its input.
 *
 * Bytes live in data[off..len): appending writes at len, consuming moves
 * off.  Contiguity is the point: a frame is encoded where it will be sent
 * (one bounds check, then plain stores), a whole batch goes out in one
 * send(), and a complete input frame is handed up where it lies.  Memory is
 * reused: once everything is consumed the buffer starts over at 0, and the
 * unconsumed tail is moved to the front only when room is needed.
 */
#ifndef PIGEON_BUF_H
#define PIGEON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* owned; NULL until the first byte */
    size_t off;    /* first unconsumed byte */
    size_t len;    /* one past the last byte */
    size_t cap;
};

static inline void buf_init(struct buf *b)
{
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

/* Frees B's memory; B is empty and reusable afterwards. */
void buf_free(struct buf *b);

/* Unconsumed bytes. */
static inline size_t buf_size(const struct buf *b)
{
    return b->len - b->off;
}

/* Forgets every byte, keeping the memory. */
static inline void buf_clear(struct buf *b)
{
    b->off = b->len = 0;
}

/*
 * Makes room for N more bytes at the end and returns where they go
 * (borrowed until the buffer next changes), or NULL when out of memory.
 * The caller writes them and then calls buf_commit.
 */
uint8_t *buf_reserve(struct buf *b, size_t n);

static inline void buf_commit(struct buf *b, size_t n)
{
    b->len += n;
}

/* Appends N bytes from P. 0, or -1 when out of memory. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Consumes N bytes from the front. */
void buf_consume(struct buf *b, size_t n);

/* Drops the bytes past the first N unconsumed ones (undoes appends). */
static inline void buf_truncate(struct buf *b, size_t n)
{
    b->len = b->off + n;
}

#endif
