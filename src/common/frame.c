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

/*
 * The types 0xc0..0xdf, whose header is not just the type byte's bits:
 * the header's size (0 marks the reserved 0xc1), what follows it, and for
 * scalars the fixed size of their body.  Everything else is a fix-type
 * (fixint, fixmap, fixarray, fixstr, negative fixint) of one byte.
 */
enum type_class {
    TYPE_SCALAR, /* body of `fixed` bytes */
    TYPE_BYTES,  /* str/bin: the length field gives the body */
    TYPE_EXT,    /* ext: length field, plus the type byte in the body */
    TYPE_ARRAY,  /* the count field gives the elements */
    TYPE_MAP,    /* the count field gives the pairs */
};

static const struct {
    uint8_t hsize;
    uint8_t cls;
    uint8_t fixed;
} wide_types[32] = {
    /* c0 nil */ {1, TYPE_SCALAR, 0},       /* c1 */ {0, TYPE_SCALAR, 0},
    /* c2 false */ {1, TYPE_SCALAR, 0},     /* c3 true */ {1, TYPE_SCALAR, 0},
    /* c4 bin8 */ {2, TYPE_BYTES, 0},       /* c5 bin16 */ {3, TYPE_BYTES, 0},
    /* c6 bin32 */ {5, TYPE_BYTES, 0},      /* c7 ext8 */ {2, TYPE_EXT, 0},
    /* c8 ext16 */ {3, TYPE_EXT, 0},        /* c9 ext32 */ {5, TYPE_EXT, 0},
    /* ca float32 */ {1, TYPE_SCALAR, 4},   /* cb float64 */ {1, TYPE_SCALAR, 8},
    /* cc uint8 */ {1, TYPE_SCALAR, 1},     /* cd uint16 */ {1, TYPE_SCALAR, 2},
    /* ce uint32 */ {1, TYPE_SCALAR, 4},    /* cf uint64 */ {1, TYPE_SCALAR, 8},
    /* d0 int8 */ {1, TYPE_SCALAR, 1},      /* d1 int16 */ {1, TYPE_SCALAR, 2},
    /* d2 int32 */ {1, TYPE_SCALAR, 4},     /* d3 int64 */ {1, TYPE_SCALAR, 8},
    /* d4 fixext1 */ {1, TYPE_SCALAR, 2},   /* d5 fixext2 */ {1, TYPE_SCALAR, 3},
    /* d6 fixext4 */ {1, TYPE_SCALAR, 5},   /* d7 fixext8 */ {1, TYPE_SCALAR, 9},
    /* d8 fixext16 */ {1, TYPE_SCALAR, 17}, /* d9 str8 */ {2, TYPE_BYTES, 0},
    /* da str16 */ {3, TYPE_BYTES, 0},      /* db str32 */ {5, TYPE_BYTES, 0},
    /* dc array16 */ {3, TYPE_ARRAY, 0},    /* dd array32 */ {5, TYPE_ARRAY, 0},
    /* de map16 */ {3, TYPE_MAP, 0},        /* df map32 */ {5, TYPE_MAP, 0},
};

/* Bytes of the header that type byte B starts; 0 for the reserved 0xc1. */
static inline uint8_t header_size(uint8_t b)
{
    return (b & 0xe0) == 0xc0 ? wide_types[b - 0xc0].hsize : 1;
}

static inline int is_array(uint8_t b)
{
    return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

/* The big-endian length or count field of W (1, 2 or 4) bytes at P. */
static inline uint32_t be_read(const uint8_t *p, unsigned w)
{
    return w == 1   ? p[0]
           : w == 2 ? (uint32_t)p[0] << 8 | p[1]
                    : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
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

static inline void header_decode(const uint8_t *h, struct header *out)
{
    uint8_t b = h[0];

    out->count = 0;
    out->body = 0;
    out->container = 0;
    if (b < 0x80 || b >= 0xe0)
        return; /* positive or negative fixint */
    if (b < 0xa0) {
        out->container = 1; /* fixmap (pairs count twice) or fixarray */
        out->count = b < 0x90 ? 2u * (b & 0x0f) : b & 0x0fu;
        return;
    }
    if (b < 0xc0) {
        out->body = b & 0x1f; /* fixstr */
        return;
    }
    unsigned t = b - 0xc0, w = wide_types[t].hsize - 1u;
    switch (wide_types[t].cls) {
    case TYPE_SCALAR:
        out->body = wide_types[t].fixed;
        break;
    case TYPE_BYTES:
        out->body = be_read(h + 1, w);
        break;
    case TYPE_EXT:
        out->body = (uint64_t)be_read(h + 1, w) + 1;
        break;
    case TYPE_ARRAY:
        out->container = 1;
        out->count = be_read(h + 1, w);
        break;
    case TYPE_MAP:
        out->container = 1;
        out->count = 2ull * be_read(h + 1, w);
        break;
    }
}

/*
 * The scanner's working state, copied out of struct frame_scanner for the
 * length of one frame_scan call so that the compiler can keep it in
 * registers: the input bytes are `uint8_t`, which may alias anything, so
 * fields updated through the struct would be reloaded after every store.
 */
struct cursor {
    uint64_t need;
    uint32_t len;
    uint32_t skip;
    uint32_t depth;
    uint32_t *remain;
    uint32_t max_frame;
};

/* Pops every container whose last element has ended. 1 when the frame ends. */
static inline int close_finished(struct cursor *k)
{
    while (k->depth > 0 && k->remain[k->depth - 1] == 0)
        k->depth--;
    return k->depth == 0;
}

/*
 * Accounts for one whole header at H (its bytes are already in k->len).
 * Returns FRAME_DONE when the object completes the frame, FRAME_MORE
 * otherwise, or an error.
 */
static inline enum frame_status take_header(struct cursor *k, const uint8_t *h)
{
    struct header hd;

    if (k->depth > 0) {
        k->remain[k->depth - 1]--;
        k->need--;
    }
    header_decode(h, &hd);
    k->need += hd.count + hd.body;
    if ((uint64_t)k->len + k->need > k->max_frame)
        return FRAME_ERR_TOO_LARGE;
    if (hd.container) {
        if (k->depth >= PROTO_MAX_DEPTH)
            return FRAME_ERR_TOO_DEEP;
        k->remain[k->depth++] = (uint32_t)hd.count;
    } else if (hd.body > 0) {
        k->skip = (uint32_t)hd.body; /* <= max_frame, checked above */
        return FRAME_MORE;
    }
    return close_finished(k) ? FRAME_DONE : FRAME_MORE;
}

/* Completes a header split between slices from P; 0 while still short. */
static size_t finish_split_header(struct frame_scanner *s, const uint8_t *p, size_t n)
{
    size_t take = header_size(s->hdr[0]) - s->hdr_have;
    if (take > n)
        take = n;
    memcpy(s->hdr + s->hdr_have, p, take);
    s->hdr_have += (uint8_t)take;
    return take;
}

enum frame_status frame_scan(struct frame_scanner *s, const uint8_t *p, size_t n, size_t *used)
{
    size_t i = 0;
    enum frame_status st = FRAME_MORE;

    if (s->len > 0 && s->depth == 0 && s->skip == 0 && s->hdr_have == 0)
        frame_scanner_reset(s); /* the caller went on after FRAME_DONE */
    struct cursor k = {s->need, s->len, s->skip, s->depth, s->remain, s->max_frame};

    while (i < n) {
        if (k.skip > 0) {
            uint32_t take = n - i < k.skip ? (uint32_t)(n - i) : k.skip;
            k.skip -= take;
            k.need -= take;
            k.len += take;
            i += take;
            if (k.skip == 0 && close_finished(&k)) {
                st = FRAME_DONE;
                break;
            }
            continue;
        }
        const uint8_t *h = p + i;
        if (s->hdr_have > 0) {
            size_t take = finish_split_header(s, p + i, n - i);
            k.len += (uint32_t)take;
            i += take;
            if (s->hdr_have < header_size(s->hdr[0]))
                break;
            h = s->hdr;
            s->hdr_have = 0;
        } else {
            if (k.depth == 0 && !is_array(*h)) {
                st = FRAME_ERR_NOT_ARRAY; /* told from the first byte */
                break;
            }
            uint8_t hsize = header_size(*h);
            if (hsize == 0) {
                st = FRAME_ERR_MALFORMED;
                break;
            }
            if (n - i < hsize) { /* the header goes on in the next slice */
                memcpy(s->hdr, h, n - i);
                s->hdr_have = (uint8_t)(n - i);
                k.len += (uint32_t)(n - i);
                i = n;
                break;
            }
            i += hsize;
            k.len += hsize;
        }
        st = take_header(&k, h);
        if (st != FRAME_MORE)
            break;
    }
    s->need = k.need;
    s->len = k.len;
    s->skip = k.skip;
    s->depth = k.depth;
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
