/*
 * mpread.h - a read-only cursor over MessagePack bytes already checked by
 * the frame scanner.
 *
 * The broker decodes a frame's envelope (kind, msgid, method, the params
 * array, where a topic and a payload start and end) with this cursor rather
 * than msgpack-c, because it must not build objects for a payload it only
 * forwards.  Each reader checks the type and the bounds and returns false
 * without moving the cursor when the next object is not what was asked for,
 * so a frame of the wrong shape is an ordinary error, never a crash.
 */
#ifndef PIGEON_MPREAD_H
#define PIGEON_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mpread {
    const uint8_t *p;   /* next byte; borrowed */
    const uint8_t *end; /* one past the last byte */
};

static inline void mpread_init(struct mpread *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
}

static inline size_t mpread_left(const struct mpread *r)
{
    return (size_t)(r->end - r->p);
}

/* Reads a non-negative integer of any width (fixint, uint*, int* >= 0). */
bool mpread_uint(struct mpread *r, uint64_t *v);

/* Reads nil. */
bool mpread_nil(struct mpread *r);

/* Reads a string; *S points into the buffer (borrowed, not NUL-terminated). */
bool mpread_str(struct mpread *r, const char **s, uint32_t *len);

/* Reads an array header; the N elements follow. */
bool mpread_array(struct mpread *r, uint32_t *n);

/* Reads a map header; N key/value pairs follow. */
bool mpread_map(struct mpread *r, uint32_t *n);

/* Passes over one whole object, containers included. */
bool mpread_skip(struct mpread *r);

/* True when the next object is nil (does not move the cursor). */
bool mpread_is_nil(const struct mpread *r);

#endif
