/*
 * utf8.h - UTF-8 well-formedness, as the Unicode standard defines it.
 *
 * MessagePack strings are UTF-8 by definition, and the broker hands some of
 * them on to every subscriber (topics, reply_to, header keys and values):
 * one malformed string would break each subscriber's strict decoder, so the
 * broker checks them.  Payloads are never checked: they are forwarded as
 * they are.
 */
#ifndef PIGEON_UTF8_H
#define PIGEON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Length of the well-formed sequence at P (AVAIL bytes left, P[0] at least
 * 0x80), or 0 when it is not well formed: an overlong form, a surrogate,
 * a code point above U+10FFFF, or a missing or stray continuation byte.
 */
size_t utf8_seq_len(const unsigned char *p, size_t avail);

/* True when S[0..LEN) is well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

#endif
