/*
 * topic.c - checking, splitting and matching topics and patterns (see
 * topic.h for the rules and their examples).
 *
 * topic_check runs on every publication, so it is one left-to-right pass
 * that reports the first fault it meets: ASCII bytes are classified one
 * compare chain at a time, and a byte of 0x80 or above starts a UTF-8
 * sequence that is checked whole against Table 3-7 of the Unicode standard
 * (no overlong form, no surrogate, nothing above U+10FFFF, no stray or
 * missing continuation byte).  Only bytes are constrained beyond that: C1
 * controls (U+0080..U+009F) and noncharacters are valid UTF-8 and pass.
 *
 * topic_matches walks the pattern and the topic side by side without
 * splitting either, so it needs neither memory nor a token limit; the
 * broker's index (sublist.c) and retained store (retain.c) match by trie
 * instead and use this only as the reference in their tests.
 */
#include "topic.h"

#include <string.h>

#include "utf8.h"

/* ------------------------------------------------------------ check ---- */

/* A '*' or '>' at S[I]; TOK is where its token began. */
static enum topic_error check_wildcard(const unsigned char *s, size_t len, size_t i, size_t tok,
                                       enum topic_kind kind)
{
    bool whole = i == tok && (i + 1 == len || s[i + 1] == '.');

    if (kind == TOPIC_PUBLISH)
        return TOPIC_ERR_WILDCARD;
    if (!whole)
        return TOPIC_ERR_BAD_WILDCARD;
    if (s[i] == '>' && i + 1 != len)
        return TOPIC_ERR_FWC_NOT_LAST;
    return TOPIC_OK;
}

enum topic_error topic_check(const char *topic, size_t len, enum topic_kind kind)
{
    const unsigned char *s = (const unsigned char *)topic;
    size_t i = 0, tok = 0; /* tok: where the current token began */

    if (len == 0)
        return TOPIC_ERR_EMPTY;
    if (len > PROTO_TOPIC_MAX)
        return TOPIC_ERR_TOO_LONG;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_seq_len(s + i, len - i);
            if (n == 0)
                return TOPIC_ERR_UTF8;
            i += n;
            continue;
        }
        if (c <= 0x20 || c == 0x7f)
            return TOPIC_ERR_CHAR;
        if (c == '.') {
            if (i == tok)
                return TOPIC_ERR_EMPTY_TOKEN;
            tok = i + 1;
        } else if (c == '*' || c == '>') {
            enum topic_error err = check_wildcard(s, len, i, tok, kind);
            if (err != TOPIC_OK)
                return err;
        }
        i++;
    }
    return tok == len ? TOPIC_ERR_EMPTY_TOKEN : TOPIC_OK; /* trailing '.' */
}

const char *topic_strerror(enum topic_error err)
{
    switch (err) {
    case TOPIC_OK:
        return "ok";
    case TOPIC_ERR_EMPTY:
        return "empty topic";
    case TOPIC_ERR_TOO_LONG:
        return "topic longer than 255 bytes";
    case TOPIC_ERR_UTF8:
        return "not valid UTF-8";
    case TOPIC_ERR_CHAR:
        return "space or control character";
    case TOPIC_ERR_EMPTY_TOKEN:
        return "empty token";
    case TOPIC_ERR_WILDCARD:
        return "wildcard in a published topic";
    case TOPIC_ERR_BAD_WILDCARD:
        return "wildcard inside a token";
    case TOPIC_ERR_FWC_NOT_LAST:
        return "'>' before the last token";
    }
    return "unknown topic error";
}

/* ---------------------------------------------------------- tokens ---- */

/* Index of the '.' ending the token that starts at S[I], or LEN. */
static size_t token_end(const char *s, size_t i, size_t len)
{
    const char *dot = memchr(s + i, '.', len - i);
    return dot ? (size_t)(dot - s) : len;
}

size_t topic_tokenize(const char *s, size_t len, struct topic_token *out)
{
    size_t n = 0, i = 0;

    while (i < len) {
        size_t end = token_end(s, i, len);
        out[n].p = s + i;
        out[n].len = (uint32_t)(end - i);
        n++;
        i = end + 1;
    }
    return n;
}

/* ---------------------------------------------------------- matching ---- */

static bool is_wild(const char *s, size_t start, size_t end, char w)
{
    return end - start == 1 && s[start] == w;
}

/*
 * Both strings are walked a token at a time; an index past the string's
 * length (len + 1) means every token has been consumed.
 */
bool topic_matches(const char *p, size_t plen, const char *t, size_t tlen)
{
    size_t pi = 0, ti = 0;

    if (topic_is_system(t, tlen) && plen > 0 && (p[0] == '*' || p[0] == '>'))
        return false; /* a checked pattern has these only as whole tokens */
    for (;;) {
        size_t pe, te;
        if (pi > plen)
            return ti > tlen;
        pe = token_end(p, pi, plen);
        if (is_wild(p, pi, pe, '>'))
            return ti < tlen; /* one token or more remains */
        if (ti > tlen)
            return false;
        te = token_end(t, ti, tlen);
        if (!is_wild(p, pi, pe, '*') &&
            (pe - pi != te - ti || memcmp(p + pi, t + ti, pe - pi) != 0))
            return false;
        pi = pe + 1;
        ti = te + 1;
    }
}
