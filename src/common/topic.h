/*
 * topic.h - the rules for topics and subscription patterns.
 *
 * A topic is 1..255 bytes of valid UTF-8: tokens separated by '.', no empty
 * token, no space, no control byte (below 0x20, or 0x7f), and no '*' or '>'
 * anywhere.  A pattern follows the same rules except that a whole token may
 * be '*' (exactly one token) or, as the last token only, '>' (one or more
 * tokens).  A '*' or '>' inside a longer token ("a*", "b>c") is an error in
 * both, since no topic could ever contain it: TOPIC_ERR_WILDCARD in a
 * published topic (any '*' or '>' there is one), TOPIC_ERR_BAD_WILDCARD in a
 * pattern.  When a string breaks several rules, topic_check reports the first
 * fault met reading left to right (after the length checks).  Only bytes are
 * constrained beyond UTF-8 validity: C1 controls (U+0080..U+009F) pass.
 *
 *   valid topics:    "a"  "orders.eu.new"  "$SYS.broker.stats"  "café.ü"
 *   invalid topics:  ""  "a..b"  ".a"  "a."  "a b"  "a.*"  "a.>"  "a\tb"
 *   valid patterns:  "a.*.c"  "a.>"  ">"  "*"  "*.*"  "$SYS.>"
 *   invalid patterns: "a.>.c"  "a*"  "a.b>"  "a..*"
 *
 * Matching: "a.*.c" matches "a.b.c"; "a.>" matches "a.b" and "a.b.c" but not
 * "a".  Topics beginning with '$' are the broker's own: a pattern whose first
 * token is '*' or '>' does not match them ("$SYS.>" does).
 *
 * Shared by the broker and the clients, so that a client can refuse a bad
 * topic before it is sent.
 */
#ifndef PIGEON_TOPIC_H
#define PIGEON_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define TOPIC_MAX_TOKENS ((PROTO_TOPIC_MAX + 1) / 2) /* "a.a.a..." */

enum topic_kind {
    TOPIC_PUBLISH, /* a topic a message is published to */
    TOPIC_PATTERN, /* a subscription pattern: '*' and '>' allowed */
};

enum topic_error {
    TOPIC_OK = 0,
    TOPIC_ERR_EMPTY = -1,        /* zero bytes */
    TOPIC_ERR_TOO_LONG = -2,     /* over PROTO_TOPIC_MAX bytes */
    TOPIC_ERR_UTF8 = -3,         /* not valid UTF-8 */
    TOPIC_ERR_CHAR = -4,         /* space or control byte */
    TOPIC_ERR_EMPTY_TOKEN = -5,  /* leading, trailing or doubled '.' */
    TOPIC_ERR_WILDCARD = -6,     /* '*' or '>' in a published topic */
    TOPIC_ERR_BAD_WILDCARD = -7, /* '*' or '>' inside a longer token */
    TOPIC_ERR_FWC_NOT_LAST = -8, /* '>' before the last token */
};

/* One token: a slice of the topic it came from (borrowed). */
struct topic_token {
    const char *p;
    uint32_t len;
};

/* Checks S[0..LEN) against the rules for KIND. Returns TOPIC_OK or an error. */
enum topic_error topic_check(const char *s, size_t len, enum topic_kind kind);

/* A short phrase for ERR, e.g. "empty token". Static. */
const char *topic_strerror(enum topic_error err);

/*
 * Splits a checked topic or pattern into OUT, which must hold
 * TOPIC_MAX_TOKENS entries.  Returns the number of tokens.
 */
size_t topic_tokenize(const char *s, size_t len, struct topic_token *out);

/* True when checked pattern P matches checked topic T, '$' rule included. */
bool topic_matches(const char *p, size_t plen, const char *t, size_t tlen);

/* True for the broker's own topics (first byte '$'). */
static inline bool topic_is_system(const char *s, size_t len)
{
    return len > 0 && s[0] == '$';
}

#endif
