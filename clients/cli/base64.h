/*
 * base64.h - standard base64 (RFC 4648, with padding), for the CLI's
 * {"$bin": "..."} and {"$ext": [type, "..."]} forms.
 */
#ifndef PIGEON_CLI_BASE64_H
#define PIGEON_CLI_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes base64_encode writes for N input bytes, NUL included. */
static inline size_t base64_encoded_size(size_t n)
{
    return (n + 2) / 3 * 4 + 1;
}

/* Encodes IN[0..N) into OUT (base64_encoded_size(N) bytes), NUL-terminated. */
void base64_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decodes S[0..LEN) into OUT (at least LEN / 4 * 3 bytes).  Padding is
 * optional; whitespace is not allowed.  Returns the decoded length, or -1
 * when S is not base64.
 */
long base64_decode(const char *s, size_t len, uint8_t *out);

#endif
