/*
 * block.h - reference-counted, immutable byte blocks.
 *
 * A large published frame is copied once out of the publisher's input into
 * a block; every subscriber's output then refers to the bytes it needs with
 * evbuffer_add_reference(), taking a reference that the evbuffer's cleanup
 * callback drops once the bytes are written.  The retained store keeps its
 * values in blocks too.  So one message sent to N subscribers costs one
 * copy of its payload, not N.
 *
 * Counts are atomic: a block's bytes are immutable once filled, so the one
 * thing two event loops could share is its count (a block made by one
 * loop's read and referenced by a subscriber's output on another).  Blocks
 * are used only for frames of 8 KiB and more and for retained values, so
 * the atomic operations stay off the small-message path.  The filling
 * (right after block_new) must happen before the block is shared.
 */
#ifndef PIGEON_BLOCK_H
#define PIGEON_BLOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

struct block {
    _Atomic uint32_t refs;
    uint32_t len;         /* bytes in data */
    unsigned char data[]; /* the caller fills it right after block_new */
};

/* Returns a block of LEN bytes with one reference, owned by the caller. */
struct block *block_new(size_t len);

static inline struct block *block_ref(struct block *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

/* References held now (1: only the caller's). */
static inline uint32_t block_refs(const struct block *b)
{
    return atomic_load_explicit(&b->refs, memory_order_acquire);
}

/* Drops one reference; frees the block with the last. NULL is fine. */
void block_unref(struct block *b);

/*
 * Appends DATA[0..LEN), which lies inside B, to OUT by reference: OUT takes a
 * reference to B and drops it when the bytes have been written or freed.
 * Returns 0, or -1 (libevent could not allocate; OUT is unchanged).
 */
int block_add_to(struct block *b, struct evbuffer *out, const void *data, size_t len);

#endif
