/*
 * utf8.c - UTF-8 well-formedness (see utf8.h), checked against Table 3-7
 * of the Unicode standard.
 */
#include "utf8.h"

static bool utf8_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/*
 * Length of the well-formed UTF-8 sequence at P (AVAIL bytes left, P[0] at
 * least 0x80), or 0 when it is not well formed.  The second byte's range
 * depends on the lead byte: that is where overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points past U+10FFFF (F4 90..) are caught;
 * C0, C1 and F5..FF can never lead.
 */
size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t n;

    if (c < 0xc2)
        return 0; /* continuation byte, or overlong C0/C1 lead */
    if (c < 0xe0)
        n = 2;
    else if (c < 0xf0)
        n = 3;
    else if (c < 0xf5)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (!utf8_cont(p[i]))
            return 0;
    }
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}
