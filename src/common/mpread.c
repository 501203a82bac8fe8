/*
 * mpread.c - bounds-checked MessagePack cursor (see mpread.h).
 */
#include "mpread.h"

static uint64_t be_load(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* True when N more bytes are there. */
static bool have(const struct mpread *r, uint64_t n)
{
    return (uint64_t)(r->end - r->p) >= n;
}

bool mpread_uint(struct mpread *r, uint64_t *v)
{
    if (!have(r, 1))
        return false;
    uint8_t b = r->p[0];
    if (b <= 0x7f) {
        *v = b;
        r->p++;
        return true;
    }
    unsigned n;
    bool is_signed = false;
    switch (b) {
    case 0xcc:
        n = 1;
        break;
    case 0xcd:
        n = 2;
        break;
    case 0xce:
        n = 4;
        break;
    case 0xcf:
        n = 8;
        break;
    case 0xd0:
        n = 1;
        is_signed = true;
        break;
    case 0xd1:
        n = 2;
        is_signed = true;
        break;
    case 0xd2:
        n = 4;
        is_signed = true;
        break;
    case 0xd3:
        n = 8;
        is_signed = true;
        break;
    default:
        return false;
    }
    if (!have(r, 1 + n))
        return false;
    uint64_t x = be_load(r->p + 1, n);
    if (is_signed && (x >> (8 * n - 1)) & 1)
        return false; /* negative */
    *v = x;
    r->p += 1 + n;
    return true;
}

bool mpread_nil(struct mpread *r)
{
    if (!mpread_is_nil(r))
        return false;
    r->p++;
    return true;
}

bool mpread_is_nil(const struct mpread *r)
{
    return have(r, 1) && r->p[0] == 0xc0;
}

bool mpread_str(struct mpread *r, const char **s, uint32_t *len)
{
    if (!have(r, 1))
        return false;
    uint8_t b = r->p[0];
    unsigned h;
    uint64_t n;
    if (b >= 0xa0 && b <= 0xbf) {
        h = 1;
        n = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
        unsigned w = b == 0xd9 ? 1 : b == 0xda ? 2 : 4;
        if (!have(r, 1 + w))
            return false;
        h = 1 + w;
        n = be_load(r->p + 1, w);
    } else {
        return false;
    }
    if (!have(r, h + n))
        return false;
    *s = (const char *)r->p + h;
    *len = (uint32_t)n;
    r->p += h + n;
    return true;
}

/* Reads a container header: FIX is the fix-type base, W16 the 16-bit form. */
static bool read_container(struct mpread *r, uint8_t fix, uint8_t w16, uint32_t *n)
{
    if (!have(r, 1))
        return false;
    uint8_t b = r->p[0];
    if ((b & 0xf0) == fix) {
        *n = b & 0x0f;
        r->p++;
        return true;
    }
    unsigned w = b == w16 ? 2 : b == w16 + 1 ? 4 : 0;
    if (w == 0 || !have(r, 1 + w))
        return false;
    *n = (uint32_t)be_load(r->p + 1, w);
    r->p += 1 + w;
    return true;
}

bool mpread_array(struct mpread *r, uint32_t *n)
{
    return read_container(r, 0x90, 0xdc, n);
}

bool mpread_map(struct mpread *r, uint32_t *n)
{
    return read_container(r, 0x80, 0xde, n);
}

/* Header size and body/count of the object at P (have(r,1) checked). */
static bool skip_one_header(struct mpread *r, uint64_t *children)
{
    uint8_t b = r->p[0];
    uint64_t body = 0;
    unsigned h = 1;
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        body = 0;
    } else if (b <= 0x8f) {
        *children = 2u * (b & 0x0f);
    } else if (b <= 0x9f) {
        *children = b & 0x0f;
    } else if (b <= 0xbf) {
        body = b & 0x1f;
    } else {
        switch (b) {
        case 0xc4:
        case 0xd9:
            h = 2;
            break;
        case 0xc5:
        case 0xda:
        case 0xdc:
        case 0xde:
            h = 3;
            break;
        case 0xc6:
        case 0xdb:
        case 0xdd:
        case 0xdf:
            h = 5;
            break;
        case 0xc7:
            h = 2;
            break;
        case 0xc8:
            h = 3;
            break;
        case 0xc9:
            h = 5;
            break;
        case 0xcc:
        case 0xd0:
            body = 1;
            break;
        case 0xcd:
        case 0xd1:
            body = 2;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            body = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            body = 8;
            break;
        case 0xd4:
            body = 2;
            break;
        case 0xd5:
            body = 3;
            break;
        case 0xd6:
            body = 5;
            break;
        case 0xd7:
            body = 9;
            break;
        case 0xd8:
            body = 17;
            break;
        default:
            return false; /* 0xc1 */
        }
        if (!have(r, h))
            return false;
        uint64_t v = h > 1 ? be_load(r->p + 1, h - 1) : 0;
        if (b == 0xdc || b == 0xdd)
            *children = v;
        else if (b == 0xde || b == 0xdf)
            *children = 2 * v;
        else if (b >= 0xc7 && b <= 0xc9)
            body = v + 1;
        else if (h > 1)
            body = v;
    }
    if (!have(r, h + body))
        return false;
    r->p += h + body;
    return true;
}

bool mpread_skip(struct mpread *r)
{
    const uint8_t *start = r->p;
    uint64_t pending = 1;
    while (pending > 0) {
        uint64_t children;
        if (!have(r, 1) || !skip_one_header(r, &children)) {
            r->p = start;
            return false;
        }
        pending = pending - 1 + children;
        if (pending > mpread_left(r)) { /* every element takes a byte */
            r->p = start;
            return false;
        }
    }
    return true;
}
