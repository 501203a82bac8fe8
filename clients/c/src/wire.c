/*
 * wire.c - encoding and decoding of the client's frames (see wire.h).
 *
 * Layers: the MessagePack writers (a header is at most 9 bytes, so a
 * frame's bound is its strings and payload plus a few bytes per field);
 * the encoders, one per method; the decoders of what the broker sends.
 */
#include "wire.h"

#include <string.h>

#include "pigeon.h"
#include "proto.h"

/* ------------------------------------------------------------ writers ---- */

#define HDR_MAX 9 /* the largest header: uint64 */

static inline uint8_t *put_be(uint8_t *p, uint64_t v, unsigned w)
{
    for (unsigned i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * (w - 1 - i)));
    return p + w;
}

/* A str, array or map header: FIX is the fix-type base (0 for none), and
 * B8/B16 the first of the sized type bytes (8-bit form absent when 0). */
static inline uint8_t *put_len(uint8_t *p, size_t n, uint8_t fix, unsigned fixmax, uint8_t b8,
                               uint8_t b16)
{
    if (n <= fixmax) {
        *p++ = (uint8_t)(fix | n);
    } else if (b8 != 0 && n <= 0xff) {
        *p++ = b8;
        *p++ = (uint8_t)n;
    } else if (n <= 0xffff) {
        *p++ = b16;
        p = put_be(p, n, 2);
    } else {
        *p++ = (uint8_t)(b16 + 1);
        p = put_be(p, n, 4);
    }
    return p;
}

static inline uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    p = put_len(p, n, 0xa0, 31, 0xd9, 0xda);
    memcpy(p, s, n);
    return p + n;
}

static inline uint8_t *put_map(uint8_t *p, size_t n)
{
    return put_len(p, n, 0x80, 15, 0, 0xde);
}

static inline uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    if (v <= 0x7f) {
        *p++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        p = put_be(p, v, 2);
    } else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

/* The envelope's head: [0, msgid, "METHOD", or [2, "METHOD", */
static inline uint8_t *put_head(uint8_t *p, bool is_request, uint32_t msgid, const char *method,
                                size_t mlen)
{
    if (is_request) {
        *p++ = 0x94;
        *p++ = PROTO_REQUEST;
        p = put_uint(p, msgid);
    } else {
        *p++ = 0x93;
        *p++ = PROTO_NOTIFICATION;
    }
    return put_str(p, method, mlen);
}

/* Reserves BOUND bytes, or NULL. */
static inline uint8_t *begin(struct buf *out, size_t bound)
{
    return buf_reserve(out, bound);
}

static inline size_t finish(struct buf *out, const uint8_t *start, const uint8_t *end)
{
    size_t n = (size_t)(end - start);
    buf_commit(out, n);
    return n;
}

/* ----------------------------------------------------------- encoders ---- */

size_t wire_pub(struct buf *out, bool is_request, uint32_t msgid, const char *topic, size_t tlen,
                const void *payload, size_t plen, const struct wire_pub_opts *o)
{
    size_t n_opts = 0, bound = 3 * HDR_MAX + 3 + HDR_MAX + tlen + plen;

    if (o != NULL) {
        if (o->reply_to != NULL) {
            n_opts++;
            bound += 2 * HDR_MAX + 8 + o->reply_to_len;
        }
        if (o->n_headers > 0) {
            n_opts++;
            bound += 2 * HDR_MAX + 7;
            for (size_t i = 0; i < o->n_headers; i++)
                bound += 2 * HDR_MAX + strlen(o->headers[i].key) + strlen(o->headers[i].value);
        }
        if (o->retain) {
            n_opts++;
            bound += HDR_MAX + 6 + 1;
        }
        bound += HDR_MAX;
    }
    uint8_t *start = begin(out, bound), *p = start;
    if (p == NULL)
        return 0;
    p = put_head(p, is_request, msgid, "pub", 3);
    *p++ = n_opts > 0 ? 0x93 : 0x92;
    p = put_str(p, topic, tlen);
    memcpy(p, payload, plen);
    p += plen;
    if (n_opts > 0) {
        p = put_map(p, n_opts);
        if (o->reply_to != NULL) {
            p = put_str(p, "reply_to", 8);
            p = put_str(p, o->reply_to, o->reply_to_len);
        }
        if (o->n_headers > 0) {
            p = put_str(p, "headers", 7);
            p = put_map(p, o->n_headers);
            for (size_t i = 0; i < o->n_headers; i++) {
                p = put_str(p, o->headers[i].key, strlen(o->headers[i].key));
                p = put_str(p, o->headers[i].value, strlen(o->headers[i].value));
            }
        }
        if (o->retain) {
            p = put_str(p, "retain", 6);
            *p++ = 0xc3;
        }
    }
    return finish(out, start, p);
}

size_t wire_sub(struct buf *out, uint32_t msgid, const char *pattern, size_t plen,
                const char *queue, size_t qlen)
{
    uint8_t *start = begin(out, 5 * HDR_MAX + 8 + plen + qlen), *p = start;
    if (p == NULL)
        return 0;
    p = put_head(p, true, msgid, "sub", 3);
    *p++ = queue != NULL ? 0x92 : 0x91;
    p = put_str(p, pattern, plen);
    if (queue != NULL) {
        *p++ = 0x81;
        p = put_str(p, "queue", 5);
        p = put_str(p, queue, qlen);
    }
    return finish(out, start, p);
}

size_t wire_unsub(struct buf *out, uint32_t msgid, uint64_t sid)
{
    uint8_t *start = begin(out, 4 * HDR_MAX + 8), *p = start;
    if (p == NULL)
        return 0;
    p = put_head(p, true, msgid, "unsub", 5);
    *p++ = 0x91;
    p = put_uint(p, sid);
    return finish(out, start, p);
}

size_t wire_ping(struct buf *out, uint32_t msgid)
{
    uint8_t *start = begin(out, 3 * HDR_MAX + 8), *p = start;
    if (p == NULL)
        return 0;
    p = put_head(p, true, msgid, "ping", 4);
    *p++ = 0x90;
    return finish(out, start, p);
}

size_t wire_hello(struct buf *out, uint32_t msgid, const struct wire_hello *h)
{
    const char *keys[4] = {"client", "token", "user", "password"};
    const char *vals[4] = {h->client, h->token, h->user, h->password};
    size_t bound = 4 * HDR_MAX + 8, n = 0;

    for (int i = 0; i < 4; i++) {
        if (vals[i] != NULL) {
            n++;
            bound += 2 * HDR_MAX + strlen(keys[i]) + strlen(vals[i]);
        }
    }
    uint8_t *start = begin(out, bound), *p = start;
    if (p == NULL)
        return 0;
    p = put_head(p, true, msgid, "hello", 5);
    *p++ = 0x91;
    p = put_map(p, n);
    for (int i = 0; i < 4; i++) {
        if (vals[i] != NULL) {
            p = put_str(p, keys[i], strlen(keys[i]));
            p = put_str(p, vals[i], strlen(vals[i]));
        }
    }
    return finish(out, start, p);
}

/* ----------------------------------------------------------- decoders ---- */

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

static bool read_bool(struct mpread *r, bool *v)
{
    if (mpread_left(r) < 1 || (r->p[0] != 0xc2 && r->p[0] != 0xc3))
        return false;
    *v = r->p[0] == 0xc3;
    r->p++;
    return true;
}

static bool str_is(const char *s, uint32_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}

int wire_header_next(struct mpread *r, const char **key, uint32_t *klen, const char **val,
                     uint32_t *vlen)
{
    struct mpread save = *r;
    if (!mpread_str(r, key, klen) || !mpread_str(r, val, vlen)) {
        *r = save;
        return -1;
    }
    return 0;
}

/* The headers map at R: every pair a string to a string. */
static int parse_headers(struct mpread *r, struct wire_msg *m, const char **why)
{
    uint32_t n;
    if (!mpread_map(r, &n))
        return fail(why, "msg headers is not a map");
    m->headers = r->p;
    m->n_headers = n;
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *v;
        uint32_t kl, vl;
        if (wire_header_next(r, &k, &kl, &v, &vl) < 0)
            return fail(why, "msg headers is not a map of string to string");
    }
    m->headers_len = (size_t)(r->p - m->headers);
    return 0;
}

static int parse_msg_opts(struct mpread *r, struct wire_msg *m, const char **why)
{
    uint32_t n;

    if (mpread_nil(r))
        return 0;
    if (!mpread_map(r, &n))
        return fail(why, "msg opts is not a map");
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        if (!mpread_str(r, &k, &kl)) {
            if (!mpread_skip(r) || !mpread_skip(r))
                return fail(why, "truncated msg opts");
            continue;
        }
        if (mpread_nil(r))
            continue; /* nil means absent */
        if (str_is(k, kl, "reply_to")) {
            if (!mpread_str(r, &m->reply_to, &m->reply_to_len))
                return fail(why, "msg reply_to is not a string");
        } else if (str_is(k, kl, "headers")) {
            if (parse_headers(r, m, why) < 0)
                return -1;
        } else if (str_is(k, kl, "retained")) {
            if (!read_bool(r, &m->retained))
                return fail(why, "msg retained is not a boolean");
        } else if (!mpread_skip(r)) {
            return fail(why, "truncated msg opts");
        }
    }
    return 0;
}

int wire_parse_msg(struct mpread r, uint32_t n, struct wire_msg *m, const char **why)
{
    memset(m, 0, sizeof(*m));
    if (n != 3 && n != 4)
        return fail(why, "msg params are not [sid, topic, payload(, opts)]");
    if (!mpread_uint(&r, &m->sid))
        return fail(why, "msg sid is not an unsigned integer");
    if (!mpread_str(&r, &m->topic, &m->topic_len))
        return fail(why, "msg topic is not a string");
    if (m->topic_len == 0 || m->topic_len > PROTO_TOPIC_MAX)
        return fail(why, "msg topic length out of range");
    m->payload = r.p;
    if (n == 3) {
        /* The payload is the frame's last object: it runs to the end (the
         * frame scanner has checked that every object in it is whole). */
        m->payload_len = mpread_left(&r);
        return m->payload_len > 0 ? 0 : fail(why, "truncated msg payload");
    }
    if (!mpread_skip(&r))
        return fail(why, "truncated msg payload");
    m->payload_len = (size_t)(r.p - m->payload);
    if (n == 4 && parse_msg_opts(&r, m, why) < 0)
        return -1;
    if (m->reply_to != NULL && (m->reply_to_len == 0 || m->reply_to_len > PROTO_TOPIC_MAX))
        return fail(why, "msg reply_to length out of range");
    return 0;
}

int wire_parse_msg3_stream(struct mpread *r, struct wire_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (!mpread_uint(r, &m->sid) || !mpread_str(r, &m->topic, &m->topic_len) || m->topic_len == 0 ||
        m->topic_len > PROTO_TOPIC_MAX)
        return -1;
    m->payload = r->p;
    if (!mpread_skip(r))
        return -1;
    m->payload_len = (size_t)(r->p - m->payload);
    return 0;
}

int wire_parse_error(struct mpread r, const char **msg, uint32_t *msg_len)
{
    uint32_t n;
    uint64_t code;

    if (mpread_nil(&r))
        return 0;
    if (!mpread_array(&r, &n) || n < 1 || !mpread_uint(&r, &code) || code == 0 || code > 0x7fffffff)
        return -1;
    *msg = "";
    *msg_len = 0;
    if (n >= 2 && !mpread_str(&r, msg, msg_len)) {
        *msg = "";
        *msg_len = 0;
    }
    return (int)code;
}

int wire_parse_error_params(struct mpread r, uint32_t n, const char **msg, uint32_t *msg_len)
{
    uint64_t code;

    if (n < 1 || !mpread_uint(&r, &code) || code == 0 || code > 0x7fffffff)
        return -1;
    *msg = "";
    *msg_len = 0;
    if (n >= 2 && !mpread_str(&r, msg, msg_len)) {
        *msg = "";
        *msg_len = 0;
    }
    return (int)code;
}

int wire_parse_hello(struct mpread r, struct wire_hello_result *out)
{
    uint32_t n;

    *out = (struct wire_hello_result){0};
    if (!mpread_map(&r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        if (!mpread_str(&r, &k, &kl)) {
            if (!mpread_skip(&r) || !mpread_skip(&r))
                return -1;
        } else if (str_is(k, kl, "max_payload")) {
            if (!mpread_uint(&r, &out->max_payload))
                return -1;
        } else if (str_is(k, kl, "client_id")) {
            if (!mpread_uint(&r, &out->client_id))
                return -1;
        } else if (str_is(k, kl, "user")) {
            if (!mpread_str(&r, &out->user, &out->user_len))
                return -1;
        } else if (!mpread_skip(&r)) {
            return -1;
        }
    }
    return 0;
}

int wire_parse_uint(struct mpread r, uint64_t *v)
{
    return mpread_uint(&r, v) ? 0 : -1;
}
