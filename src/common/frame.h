/*
 * frame.h - the bounded, allocation-free scanner that finds where each
 * MessagePack frame of a byte stream ends.
 *
 * Why it exists: msgpack-c sets aside count x object size as soon as it reads
 * a container header (msgpack-c issue #1013), so five hostile bytes can make
 * it ask for gigabytes.  No untrusted byte reaches msgpack-c before this
 * scanner has seen the whole frame and checked, at every header:
 *
 *   - the frame (envelope included) fits in max_frame bytes, counting one
 *     byte at least for every element a container still promises and every
 *     byte a string, binary or ext still promises.  An array32 header that
 *     claims four billion elements is refused from its first five bytes;
 *   - nesting stays within PROTO_MAX_DEPTH (the frame's own array is level 1,
 *     and containers inside a payload count);
 *   - the first object is an array, and no byte is the reserved 0xc1.
 *
 * The scanner is incremental: feed it the stream in slices of any size, in
 * order, and it keeps its place between calls (a header split across two
 * slices included), so no byte is looked at twice and a large binary body is
 * passed over without being read.  It never allocates and never reads past
 * the slice it is given.  The broker and the client library both use it.
 */
#ifndef PIGEON_FRAME_H
#define PIGEON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum frame_status {
    FRAME_MORE = 0,           /* the slice was consumed; the frame goes on */
    FRAME_DONE = 1,           /* a frame ended inside the slice */
    FRAME_ERR_MALFORMED = -1, /* not MessagePack (0xc1) */
    FRAME_ERR_NOT_ARRAY = -2, /* the frame is not an array */
    FRAME_ERR_TOO_DEEP = -3,  /* nesting deeper than PROTO_MAX_DEPTH */
    FRAME_ERR_TOO_LARGE = -4, /* the frame is, or claims to be, over max_frame */
};

/*
 * Scanner state.  Plain data: embed it, initialise it with
 * frame_scanner_init(), and never touch the fields but `len`.
 */
struct frame_scanner {
    uint32_t max_frame;                   /* limit on a whole frame, in bytes */
    uint32_t len;                         /* bytes of the current frame consumed so far */
    uint64_t need;                        /* bytes still promised: elements + bodies */
    uint32_t skip;                        /* body bytes to pass over before the next header */
    uint32_t depth;                       /* containers open */
    uint32_t remain[PROTO_MAX_DEPTH + 1]; /* elements still to start, per open container */
    uint8_t hdr[9];                       /* a header split between two slices */
    uint8_t hdr_have;                     /* bytes of it in hdr */
};

/* Sets up S for a new stream whose frames may be at most MAX_FRAME bytes. */
void frame_scanner_init(struct frame_scanner *s, uint32_t max_frame);

/* Forgets the current frame (after FRAME_DONE, or to resynchronise a test). */
void frame_scanner_reset(struct frame_scanner *s);

/*
 * Feeds the next N bytes of the stream at P.  Sets *USED to the bytes of P
 * consumed: all N on FRAME_MORE, when s->len counts every byte of the frame
 * fed so far (a split header's too), so a caller can resume at that offset;
 * up to and including the frame's last byte on FRAME_DONE, when s->len is
 * the frame's length (call frame_scanner_reset before the next frame).  On an error the stream
 * cannot be trusted any further; s->len tells how far the scanner got.  P is borrowed for the call
 * only.
 */
enum frame_status frame_scan(struct frame_scanner *s, const uint8_t *p, size_t n, size_t *used);

/* A short human phrase for STATUS, e.g. "nesting deeper than 32". Static. */
const char *frame_strerror(enum frame_status status);

#endif
