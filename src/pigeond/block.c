/*
 * block.c - reference-counted byte blocks (see block.h).
 */
#include "block.h"

#include <stdlib.h>

#include "xalloc.h"

struct block *block_new(size_t len)
{
    struct block *b = xmalloc(sizeof(*b) + len);
    atomic_init(&b->refs, 1);
    b->len = (uint32_t)len;
    return b;
}

void block_unref(struct block *b)
{
    if (b != NULL && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* evbuffer_ref_cleanup_cb: the evbuffer is done with its reference. */
static void block_evbuffer_cleanup_cb(const void *data, size_t len, void *arg)
{
    block_unref(arg);
}

int block_add_to(struct block *b, struct evbuffer *out, const void *data, size_t len)
{
    block_ref(b);
    if (evbuffer_add_reference(out, data, len, block_evbuffer_cleanup_cb, b) < 0) {
        block_unref(b);
        return -1;
    }
    return 0;
}
