/*
 * frame.c - bounded incremental scanner for MessagePack frames (see frame.h).
 *
 * Every object is a header followed by a body: the header is one type byte
 * plus, for strings, binaries, exts, arrays and maps, a big-endian length or
 * count of 1, 2 or 4 bytes.  The scanner reads headers only.  Bodies (string
 * and binary bytes, scalar values, ext data) are counted in `skip` and passed
 * over; container counts are pushed on `remain`.  `need` is the lower bound
 * on the bytes the frame still promises, and len + need is checked against
 * max_frame at every header, so a lie about a size is caught before anything
 * could be set aside for it.
 */
#include "frame.h"

#include <string.h>

/* Bytes of each header, type byte included; 0 marks the reserved 0xc1. */
static uint8_t header_size(uint8_t b)
{
    if (b <= 0xbf || b >= 0xe0)
        return 1; /* fixint, fixmap, fixarray, fixstr, negative fixint */
    switch (b) {
    case 0xc1:
        return 0;
    case 0xc4: case 0xc7: case 0xd9:
        return 2;
    case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde:
        return 3;
    case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf:
        return 5;
    default:
        return 1; /* nil, bool, floats, ints, fixext */
    }
}

static int is_array(uint8_t b)
{
    return (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
}

/* Body bytes of a type whose size is fixed by its type byte. */
static uint32_t fixed_body(uint8_t b)
{
    switch (b) {
    case 0xcc: case 0xd0:
        return 1;
    case 0xcd: case 0xd1: case 0xd4:
        return 2;
    case 0xd5:
        return 3;
    case 0xca: case 0xce: case 0xd2:
        return 4;
    case 0xd6:
        return 5;
    case 0xcb: case 0xcf: case 0xd3:
        return 8;
    case 0xd7:
        return 9;
    case 0xd8:
        return 17;
    default:
        return 0;
    }
}

static uint32_t be_read(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

void frame_scanner_init(struct frame_scanner *s, uint32_t max_frame)
{
    memset(s, 0, sizeof(*s));
    s->max_frame = max_frame;
}

void frame_scanner_reset(struct frame_scanner *s)
{
    s->len = 0;
    s->need = 0;
    s->skip = 0;
    s->depth = 0;
    s->hdr_have = 0;
}

/* What a header says about the object it starts. */
struct header {
    uint64_t count; /* elements of an array or map (pairs count twice) */
    uint64_t body;  /* bytes that follow the header */
    int container;
};

static void header_decode(const uint8_t *h, struct header *out)
{
    uint8_t b = h[0];
    out->count = 0;
    out->body = 0;
    out->container = 0;
    if (b >= 0x80 && b <= 0x8f) {
        out->container = 1;
        out->count = 2u * (b & 0x0f);
    } else if (b >= 0x90 && b <= 0x9f) {
        out->container = 1;
        out->count = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
        out->body = b & 0x1f;
    } else if (b == 0xdc || b == 0xdd) {
        out->container = 1;
        out->count = be_read(h + 1, b == 0xdc ? 2 : 4);
    } else if (b == 0xde || b == 0xdf) {
        out->container = 1;
        out->count = 2ull * be_read(h + 1, b == 0xde ? 2 : 4);
    } else if (b == 0xc4 || b == 0xd9) {
        out->body = h[1];
    } else if (b == 0xc5 || b == 0xda) {
        out->body = be_read(h + 1, 2);
    } else if (b == 0xc6 || b == 0xdb) {
        out->body = be_read(h + 1, 4);
    } else if (b >= 0xc7 && b <= 0xc9) {
        /* ext: the type byte is part of the body */
        out->body = (uint64_t)be_read(h + 1, b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4) + 1;
    } else {
        out->body = fixed_body(b);
    }
}

/* Pops every container whose last element has ended. 1 when the frame ends. */
static int close_finished(struct frame_scanner *s)
{
    while (s->depth > 0 && s->remain[s->depth - 1] == 0)
        s->depth--;
    return s->depth == 0;
}

/*
 * Accounts for one whole header at H (its bytes are already in s->len).
 * Returns FRAME_DONE when the object completes the frame, FRAME_MORE
 * otherwise, or an error.
 */
static enum frame_status take_header(struct frame_scanner *s, const uint8_t *h)
{
    struct header hd;

    if (s->depth > 0) {
        s->remain[s->depth - 1]--;
        s->need--;
    }
    header_decode(h, &hd);
    s->need += hd.count + hd.body;
    if ((uint64_t)s->len + s->need > s->max_frame)
        return FRAME_ERR_TOO_LARGE;
    if (hd.container) {
        if (s->depth >= PROTO_MAX_DEPTH)
            return FRAME_ERR_TOO_DEEP;
        s->remain[s->depth++] = (uint32_t)hd.count;
    } else if (hd.body > 0) {
        s->skip = (uint32_t)hd.body; /* <= max_frame, checked above */
        return FRAME_MORE;
    }
    return close_finished(s) ? FRAME_DONE : FRAME_MORE;
}

enum frame_status frame_scan(struct frame_scanner *s, const uint8_t *p, size_t n, size_t *used)
{
    size_t i = 0;
    enum frame_status st = FRAME_MORE;

    if (s->len > 0 && s->depth == 0 && s->skip == 0 && s->hdr_have == 0)
        frame_scanner_reset(s); /* the caller went on after FRAME_DONE */

    while (i < n) {
        if (s->skip > 0) {
            uint32_t take = n - i < s->skip ? (uint32_t)(n - i) : s->skip;
            s->skip -= take;
            s->need -= take;
            s->len += take;
            i += take;
            if (s->skip == 0 && close_finished(s)) {
                st = FRAME_DONE;
                break;
            }
            continue;
        }
        const uint8_t *h;
        uint8_t hsize;
        if (s->hdr_have == 0) {
            if (s->depth == 0 && !is_array(p[i])) {
                st = FRAME_ERR_NOT_ARRAY; /* told from the first byte */
                break;
            }
            hsize = header_size(p[i]);
            if (hsize == 0) {
                st = FRAME_ERR_MALFORMED;
                break;
            }
            if (n - i >= hsize) {
                h = p + i;
                i += hsize;
                s->len += hsize;
            } else {
                memcpy(s->hdr, p + i, n - i);
                s->hdr_have = (uint8_t)(n - i);
                s->len += (uint32_t)(n - i);
                i = n;
                break;
            }
        } else {
            hsize = header_size(s->hdr[0]);
            size_t take = hsize - s->hdr_have;
            if (take > n - i)
                take = n - i;
            memcpy(s->hdr + s->hdr_have, p + i, take);
            s->hdr_have += (uint8_t)take;
            s->len += (uint32_t)take;
            i += take;
            if (s->hdr_have < hsize)
                break;
            h = s->hdr;
            s->hdr_have = 0;
        }
        st = take_header(s, h);
        if (st != FRAME_MORE)
            break;
    }
    *used = i;
    return st;
}

const char *frame_strerror(enum frame_status status)
{
    switch (status) {
    case FRAME_MORE:
        return "incomplete frame";
    case FRAME_DONE:
        return "complete frame";
    case FRAME_ERR_MALFORMED:
        return "not MessagePack (reserved byte 0xc1)";
    case FRAME_ERR_NOT_ARRAY:
        return "frame is not an array";
    case FRAME_ERR_TOO_DEEP:
        return "nesting deeper than 32";
    case FRAME_ERR_TOO_LARGE:
        return "frame larger than max_payload";
    }
    return "unknown frame status";
}
