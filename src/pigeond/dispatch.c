/*
 * dispatch.c - the protocol's methods, broker side (see dispatch.h).
 *
 * Layers, top-down: the call context and its error replies; decoders for
 * the option maps (msgpack-c, on bounded bytes); the method handlers; the
 * method table and dispatch_frame.
 *
 * Errors follow docs/protocol.md: a request that fails gets a response
 * carrying [code, message]; a notification that fails gets an `error`
 * notification; a frame of the wrong shape is fatal (code 1), since the
 * stream cannot be trusted after it.
 */
#include "dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "access.h"
#include "auth.h"
#include "conn.h"
#include "consumer.h"
#include "encode.h"
#include "envelope.h"
#include "proto.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "stream.h"
#include "topic.h"
#include "utf8.h"
#include "xalloc.h"

#define DISPATCH_CLIENT_NAME_MAX 128
#define DISPATCH_TOPIC_SHOWN     64 /* bytes of a topic quoted in an error */

/* One frame being handled. */
struct call {
    struct session *s;
    struct conn *c;
    struct loop *lp;
    const struct envelope *env;
    struct block *blk;
    bool is_request;
    const char *topic; /* a pub's topic once read, named in its error notifications */
    uint32_t topic_len;
};

/* ------------------------------------------------------------ replies */

/* Copies S (LEN bytes) into OUT for a message, escaping what isn't printable. */
static const char *printable(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
    }
    out[o] = '\0';
    return out;
}

/* Answers the call with error CODE: a response or an error notification. */
static void call_fail(const struct call *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void call_fail(const struct call *k, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (k->is_request) {
        msgpack_sbuffer *buf = loop_frame_buf(k->lp);
        encode_response_error(buf, k->env->msgid, code, msg);
        conn_send_frame(k->c, buf->data, buf->size);
        return;
    }
    /* A failed notification has no msgid: say which publication it was. */
    if (k->topic != NULL && n >= 0 && (size_t)n < sizeof(msg)) {
        char topic[DISPATCH_TOPIC_SHOWN * 4 + 1];
        uint32_t tlen = k->topic_len < DISPATCH_TOPIC_SHOWN ? k->topic_len : DISPATCH_TOPIC_SHOWN;
        snprintf(msg + n, sizeof(msg) - (size_t)n, " (pub to '%s%s')",
                 printable(k->topic, tlen, topic, sizeof(topic)), tlen < k->topic_len ? "..." : "");
    }
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    encode_error_notification(buf, code, msg);
    conn_send_frame(k->c, buf->data, buf->size);
}

/* Answers the call (a request) with the result V, an unsigned integer. */
static void call_reply_uint(const struct call *k, uint64_t v)
{
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    encode_result_uint(buf, k->env->msgid, v);
    conn_send_frame(k->c, buf->data, buf->size);
}

/* A frame of the wrong shape: code 1, and the connection closes. */
static void dispatch_bad_frame(struct session *s, const char *why)
{
    struct conn *c = s->conn;

    c->loop->stats.protocol_errors++;
    loop_warn(c->loop, LOOP_WARN_PROTOCOL, "client %llu (%s): bad frame: %s",
              (unsigned long long)s->id, conn_peer(c), why);
    conn_close(c, "bad frame", PROTO_ERR_BAD_FRAME, why);
}

/* ---------------------------------------------------------- decoding */

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/*
 * Decodes the last param at R (bounded by the frame scanner) with msgpack-c
 * into the loop's zone.  Returns false when it is not a map or nil.
 */
static bool decode_opts_map(struct loop *lp, const struct mpread *r, msgpack_object *out)
{
    size_t off = 0;
    msgpack_unpack_return rc =
        msgpack_unpack((const char *)r->p, mpread_left(r), &off, &lp->zone, out);
    if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES)
        return false;
    return out->type == MSGPACK_OBJECT_MAP || out->type == MSGPACK_OBJECT_NIL;
}

static bool is_utf8_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && utf8_valid(o->via.str.ptr, o->via.str.size);
}

/* A map of strings to strings, all valid UTF-8: every subscriber decodes them. */
static bool is_string_map(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return false;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (!is_utf8_str(&kv->key) || !is_utf8_str(&kv->val))
            return false;
    }
    return true;
}

struct pub_opts {
    const char *reply_to;
    uint32_t reply_to_len;
    const msgpack_object *headers;
    bool retain;
    struct store_pub sp; /* 1.1: stream, msg_id */
};

/* pub opts of 1.1: stream and msg_id.  1 when KEY is one of them, 0 when not, -1 failed. */
static int decode_pub_stream_opt(const struct call *k, const msgpack_object *key,
                                 const msgpack_object *val, struct pub_opts *po)
{
    if (key_is(key, "stream")) {
        if (val->type != MSGPACK_OBJECT_STR ||
            !stream_name_ok(val->via.str.ptr, val->via.str.size)) {
            call_fail(k, PROTO_ERR_BAD_PARAMS,
                      "stream must be a stream name (1 to 64 of A-Z a-z 0-9 _ -)");
            return -1;
        }
        po->sp.stream = val->via.str.ptr;
        po->sp.stream_len = val->via.str.size;
        return 1;
    }
    if (key_is(key, "msg_id")) {
        if (val->type != MSGPACK_OBJECT_STR || val->via.str.size == 0 ||
            val->via.str.size > STORE_MSG_ID_MAX) {
            call_fail(k, PROTO_ERR_BAD_PARAMS, "msg_id must be a string of 1 to %d bytes",
                      STORE_MSG_ID_MAX);
            return -1;
        }
        po->sp.msg_id = val->via.str.ptr;
        po->sp.msg_id_len = val->via.str.size;
        return 1;
    }
    return 0;
}

/* Fills PO from the opts map at R. Returns 0, or fails the call and returns -1. */
static int decode_pub_opts(const struct call *k, const struct mpread *r, struct pub_opts *po)
{
    msgpack_object o;
    char name[64];
    int rc;

    if (!decode_opts_map(k->lp, r, &o)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "pub opts must be a map");
        return -1;
    }
    if (o.type == MSGPACK_OBJECT_NIL)
        return 0;
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object *key = &o.via.map.ptr[i].key, *val = &o.via.map.ptr[i].val;
        if (val->type == MSGPACK_OBJECT_NIL && !key_is(key, "retain")) {
            continue; /* nil means "not given" */
        } else if (key_is(key, "reply_to")) {
            if (val->type != MSGPACK_OBJECT_STR) {
                call_fail(k, PROTO_ERR_BAD_PARAMS, "reply_to must be a string");
                return -1;
            }
            enum topic_error te = topic_check(val->via.str.ptr, val->via.str.size, TOPIC_PUBLISH);
            if (te != TOPIC_OK) {
                call_fail(k, PROTO_ERR_BAD_TOPIC, "bad reply_to: %s", topic_strerror(te));
                return -1;
            }
            po->reply_to = val->via.str.ptr;
            po->reply_to_len = val->via.str.size;
        } else if (key_is(key, "retain")) {
            if (val->type != MSGPACK_OBJECT_BOOLEAN && val->type != MSGPACK_OBJECT_NIL) {
                call_fail(k, PROTO_ERR_BAD_PARAMS, "retain must be a boolean");
                return -1;
            }
            po->retain = val->type == MSGPACK_OBJECT_BOOLEAN && val->via.boolean;
        } else if (key_is(key, "headers")) {
            if (!is_string_map(val)) {
                call_fail(k, PROTO_ERR_BAD_PARAMS,
                          "headers must be a map of string to string (valid UTF-8)");
                return -1;
            }
            if (val->via.map.size > 0)
                po->headers = val;
        } else if ((rc = decode_pub_stream_opt(k, key, val, po)) != 0) {
            if (rc < 0)
                return -1;
        } else {
            call_fail(k, PROTO_ERR_BAD_PARAMS, "unknown pub option '%s'",
                      key->type == MSGPACK_OBJECT_STR
                          ? printable(key->via.str.ptr, key->via.str.size, name, sizeof(name))
                          : "(not a string)");
            return -1;
        }
    }
    return 0;
}

/* The queue group named in sub opts at R, or NULL. Returns 0, or fails and returns -1. */
static int decode_sub_opts(const struct call *k, const struct mpread *r, const char **queue,
                           uint32_t *qlen)
{
    msgpack_object o;
    char name[64];

    *queue = NULL;
    if (!decode_opts_map(k->lp, r, &o)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "sub opts must be a map");
        return -1;
    }
    if (o.type == MSGPACK_OBJECT_NIL)
        return 0;
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object *key = &o.via.map.ptr[i].key, *val = &o.via.map.ptr[i].val;
        if (key_is(key, "queue")) {
            if (val->type == MSGPACK_OBJECT_NIL)
                continue;
            if (val->type != MSGPACK_OBJECT_STR ||
                topic_check(val->via.str.ptr, val->via.str.size, TOPIC_PUBLISH) != TOPIC_OK) {
                call_fail(k, PROTO_ERR_BAD_PARAMS,
                          "queue must be a group name (1..255 bytes, the rules of a topic)");
                return -1;
            }
            *queue = val->via.str.ptr;
            *qlen = val->via.str.size;
        } else {
            call_fail(k, PROTO_ERR_BAD_PARAMS, "unknown sub option '%s'",
                      key->type == MSGPACK_OBJECT_STR
                          ? printable(key->via.str.ptr, key->via.str.size, name, sizeof(name))
                          : "(not a string)");
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- handlers */

/*
 * A publication the store may keep (store.h): true when it was handled
 * there (answered, now or after its commit, or failed); false when it is
 * not the store's, to be routed as usual.
 */
static bool pub_through_store(const struct call *k, const struct router_msg *m,
                              const struct pub_opts *po)
{
    struct store *st = k->lp->srv->store;
    const char *why;
    char name[64 * 4 + 1];

    if (st == NULL) {
        call_fail(k, PROTO_ERR_NO_STREAM,
                  "no stream '%s': this broker keeps no streams ([store] is off); message not "
                  "published",
                  printable(po->sp.stream, po->sp.stream_len, name, sizeof(name)));
        return true;
    }
    int rc = store_publish(st, k->s, m, &po->sp, k->is_request, k->env->msgid, &why);
    if (rc < 0)
        call_fail(k, -rc, "%s", why);
    return rc <= 0;
}

static void handle_pub(struct call *k)
{
    struct conn *c = k->c;
    struct mpread r = k->env->params;
    struct router_msg m = {.block = k->blk, .from = k->s};
    struct pub_opts po = {0};
    const char *topic;
    uint32_t tlen;

    if (k->env->n_params != 2 && k->env->n_params != 3) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "pub takes [topic, payload] or [topic, payload, opts]");
        return;
    }
    m.body = r.p;
    if (!mpread_str(&r, &topic, &tlen)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "topic must be a string");
        return;
    }
    k->topic = topic; /* named in its error notifications */
    k->topic_len = tlen;
    /* The topic published to last was checked then, and its hash kept (session.h). */
    if (session_topic_same(k->s, topic, tlen)) {
        m.topic_hash = k->s->pub_hash;
    } else {
        enum topic_error te = topic_check(topic, tlen, TOPIC_PUBLISH);
        if (te != TOPIC_OK) {
            call_fail(k, PROTO_ERR_BAD_TOPIC, "bad topic: %s", topic_strerror(te));
            return;
        }
        if (topic_is_system(topic, tlen)) {
            call_fail(k, PROTO_ERR_FORBIDDEN, "topics beginning with '$' are the broker's own");
            return;
        }
        m.topic_hash = session_topic_keep(k->s, topic, tlen);
    }
    m.hashed = true; /* for the permission cache and the router */
    if (!access_may_publish(k->s, topic, tlen, m.topic_hash)) {
        char shown[DISPATCH_TOPIC_SHOWN * 4 + 1];
        call_fail(k, PROTO_ERR_FORBIDDEN, "not allowed to publish to '%s'",
                  printable(topic, tlen < DISPATCH_TOPIC_SHOWN ? tlen : DISPATCH_TOPIC_SHOWN, shown,
                            sizeof(shown)));
        return;
    }
    m.payload_nil = mpread_is_nil(&r);
    if (!mpread_skip(&r)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "truncated payload");
        return;
    }
    m.body_len = (size_t)(r.p - m.body);
    m.topic = topic;
    m.topic_len = tlen;
    if (k->env->n_params == 3) {
        if (decode_pub_opts(k, &r, &po) < 0)
            return;
        if (po.reply_to != NULL && !access_may_reply_to(k->s, po.reply_to, po.reply_to_len)) {
            char shown[DISPATCH_TOPIC_SHOWN * 4 + 1];
            call_fail(k, PROTO_ERR_FORBIDDEN,
                      "not allowed to ask for replies on '%s': no subscribe permission covers it",
                      printable(po.reply_to,
                                po.reply_to_len < DISPATCH_TOPIC_SHOWN ? po.reply_to_len
                                                                       : DISPATCH_TOPIC_SHOWN,
                                shown, sizeof(shown)));
            return;
        }
        msgpack_sbuffer_clear(&k->lp->opts);
        m.opts_len = encode_msg_opts(&k->lp->opts, po.reply_to, po.reply_to_len, po.headers, false);
        m.opts = m.opts_len > 0 ? (const uint8_t *)k->lp->opts.data : NULL;
        m.retain = po.retain;
        m.reply_to = po.reply_to;
        m.reply_to_len = po.reply_to_len;
        m.headers = po.headers;
    }
    c->stats.msgs_in++;
    k->lp->stats.msgs_in++;
    k->lp->stats.bytes_in += m.body_len;
    k->s->published = true;
    if ((k->lp->srv->store != NULL || po.sp.stream != NULL) && pub_through_store(k, &m, &po))
        return;
    long n = router_publish(k->s->router, k->lp->conf, &m);
    if (n < 0)
        call_fail(k, (int)-n, "retained store full (max_retained); message not published");
    else if (k->is_request)
        call_reply_uint(k, (uint64_t)n);
}

static void handle_sub(struct call *k)
{
    struct mpread r = k->env->params;
    const char *pattern, *queue = NULL, *why;
    uint32_t plen, qlen = 0;
    struct sub *sub;

    if (k->env->n_params != 1 && k->env->n_params != 2) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "sub takes [pattern] or [pattern, opts]");
        return;
    }
    if (!mpread_str(&r, &pattern, &plen)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "pattern must be a string");
        return;
    }
    enum topic_error te = topic_check(pattern, plen, TOPIC_PATTERN);
    if (te != TOPIC_OK) {
        call_fail(k, PROTO_ERR_BAD_TOPIC, "bad pattern: %s", topic_strerror(te));
        return;
    }
    if (k->env->n_params == 2 && decode_sub_opts(k, &r, &queue, &qlen) < 0)
        return;
    int rc = session_subscribe(k->s, pattern, plen, queue, qlen, &sub, &why);
    if (rc == -PROTO_ERR_FORBIDDEN) {
        char shown[PROTO_TOPIC_MAX * 4 + 1];
        call_fail(k, PROTO_ERR_FORBIDDEN, "not allowed to subscribe to '%s'",
                  printable(pattern, plen, shown, sizeof(shown)));
        return;
    }
    if (rc < 0) {
        call_fail(k, -rc, "%s", why);
        return;
    }
    call_reply_uint(k, sub->sid);
    session_replay_start(sub);
}

static void handle_unsub(struct call *k)
{
    struct mpread r = k->env->params;
    uint64_t sid;

    if (k->env->n_params != 1 || !mpread_uint(&r, &sid)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "unsub takes [sid]");
        return;
    }
    if (session_unsubscribe(k->s, sid) < 0) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "unknown sid %llu", (unsigned long long)sid);
        return;
    }
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    encode_result_true(buf, k->env->msgid);
    conn_send_frame(k->c, buf->data, buf->size);
}

static void handle_ping(struct call *k)
{
    if (k->env->n_params != 0) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "ping takes []");
        return;
    }
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    encode_result_str(buf, k->env->msgid, "pong");
    conn_send_frame(k->c, buf->data, buf->size);
}

/* The string VAL, when a string, into *P and *LEN. */
static void take_str(const msgpack_object *val, const char **p, size_t *len)
{
    if (val->type == MSGPACK_OBJECT_STR) {
        *p = val->via.str.ptr;
        *len = val->via.str.size;
    }
}

/*
 * Reads the hello map: the client name, and the credentials into CREDS
 * (borrowed from the loop's zone, for this frame); other keys are ignored.
 */
static int decode_hello(const struct call *k, const struct mpread *r, struct auth_creds *creds)
{
    msgpack_object o;

    if (!decode_opts_map(k->lp, r, &o)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "hello takes [] or [{client, token, user, password}]");
        return -1;
    }
    for (uint32_t i = 0; o.type == MSGPACK_OBJECT_MAP && i < o.via.map.size; i++) {
        const msgpack_object *key = &o.via.map.ptr[i].key, *val = &o.via.map.ptr[i].val;
        bool known = key_is(key, "client") || key_is(key, "token") || key_is(key, "user") ||
                     key_is(key, "password");
        if (known && val->type != MSGPACK_OBJECT_STR && val->type != MSGPACK_OBJECT_NIL) {
            call_fail(k, PROTO_ERR_BAD_PARAMS,
                      "hello: client, token, user and password are "
                      "strings");
            return -1;
        }
        if (key_is(key, "user"))
            take_str(val, &creds->user, &creds->user_len);
        else if (key_is(key, "password"))
            take_str(val, &creds->password, &creds->password_len);
        else if (key_is(key, "token"))
            take_str(val, &creds->token, &creds->token_len);
        if (key_is(key, "client") && val->type == MSGPACK_OBJECT_STR) {
            char name[DISPATCH_CLIENT_NAME_MAX * 4 + 1];
            size_t n = val->via.str.size;
            free(k->s->client_name);
            k->s->client_name = xstrdup(printable(
                val->via.str.ptr, n > DISPATCH_CLIENT_NAME_MAX ? DISPATCH_CLIENT_NAME_MAX : n, name,
                sizeof(name)));
        }
    }
    return 0;
}

static void handle_hello(struct call *k)
{
    struct session *s = k->s;
    struct mpread r = k->env->params;
    struct auth_creds creds = {0};

    if (s->hello_done) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "hello was already done on this connection");
        return;
    }
    if (k->env->n_params > 1) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "hello takes [] or [{client, token, user, password}]");
        return;
    }
    if (k->env->n_params == 1 && decode_hello(k, &r, &creds) < 0)
        return;
    if (s->client_name != NULL)
        log_info(k->lp->log, "client %llu (%s) is \"%s\"", (unsigned long long)s->id,
                 conn_peer(k->c), s->client_name);
    if (access_hello(s, k->env->msgid, &creds))
        return; /* checked off the loop: access.c answers */
    s->hello_done = true;
    access_answer_hello(s, k->env->msgid);
}

/* ------------------------------------------------------- stream methods */

/* The stream named by the param at R, or NULL after failing the call (code 3 or 11). */
static struct stream *stream_param(const struct call *k, struct mpread *r)
{
    struct store *st = k->lp->srv->store;
    const char *name;
    uint32_t len;
    char shown[64 * 4 + 1];

    if (!mpread_str(r, &name, &len)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "stream must be a string");
        return NULL;
    }
    struct stream *sm = st != NULL ? store_stream(st, name, len) : NULL;
    if (sm == NULL)
        call_fail(k, PROTO_ERR_NO_STREAM, "no stream '%s'",
                  printable(name, len > 64 ? 64 : len, shown, sizeof(shown)));
    return sm;
}

/* consume's start: "all", "new", "last" or a seq.  False when it is none of them. */
static bool decode_start(const msgpack_object *v, struct consumer_opts *o)
{
    static const char *const names[] = {"all", "new", "last"};
    static const enum consumer_start kinds[] = {CONSUMER_START_ALL, CONSUMER_START_NEW,
                                                CONSUMER_START_LAST};

    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > 0) {
        o->start = CONSUMER_START_SEQ;
        o->start_seq = v->via.u64;
        return true;
    }
    for (size_t i = 0; i < 3; i++) {
        if (key_is(v, names[i])) {
            o->start = kinds[i];
            return true;
        }
    }
    return false;
}

/* A whole number in [MIN, MAX] into *OUT; false when V is not one. */
static bool decode_uint(const msgpack_object *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 < min || v->via.u64 > max)
        return false;
    *out = v->via.u64;
    return true;
}

/* One key of consume's opts into O: 0, or -1 after failing the call. */
static int decode_consume_opt(const struct call *k, const msgpack_object *key,
                              const msgpack_object *v, struct consumer_opts *o)
{
    char name[64];

    if (key_is(key, "durable")) {
        if (v->type != MSGPACK_OBJECT_STR || !stream_name_ok(v->via.str.ptr, v->via.str.size)) {
            call_fail(k, PROTO_ERR_BAD_PARAMS,
                      "durable must be a name (1 to 64 of A-Z a-z 0-9 _ -)");
            return -1;
        }
        o->durable = v->via.str.ptr;
        o->durable_len = v->via.str.size;
    } else if (key_is(key, "filter")) {
        if (v->type != MSGPACK_OBJECT_STR) {
            call_fail(k, PROTO_ERR_BAD_PARAMS, "filter must be a pattern");
            return -1;
        }
        enum topic_error te = topic_check(v->via.str.ptr, v->via.str.size, TOPIC_PATTERN);
        if (te != TOPIC_OK) {
            call_fail(k, PROTO_ERR_BAD_TOPIC, "bad filter: %s", topic_strerror(te));
            return -1;
        }
        o->filter = v->via.str.ptr;
        o->filter_len = v->via.str.size;
        o->has_filter = true;
    } else if (key_is(key, "start")) {
        if (!decode_start(v, o)) {
            call_fail(k, PROTO_ERR_BAD_PARAMS, "start must be \"all\", \"new\", \"last\" or a seq");
            return -1;
        }
        o->has_start = true;
    } else if (key_is(key, "ack_wait")) {
        if (!(o->has_ack_wait = decode_uint(v, 1, CONSUMER_DELAY_MAX_MS, &o->ack_wait_ms)))
            goto bad_number;
    } else if (key_is(key, "max_deliver")) {
        if (!(o->has_max_deliver = decode_uint(v, 0, UINT32_MAX, &o->max_deliver)))
            goto bad_number;
    } else if (key_is(key, "max_pending")) {
        if (!(o->has_max_pending = decode_uint(v, 1, CONSUMER_MAX_PENDING_MAX, &o->max_pending)))
            goto bad_number;
    } else {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "unknown consume option '%s'",
                  key->type == MSGPACK_OBJECT_STR
                      ? printable(key->via.str.ptr, key->via.str.size, name, sizeof(name))
                      : "(not a string)");
        return -1;
    }
    return 0;
bad_number:
    call_fail(k, PROTO_ERR_BAD_PARAMS,
              "%s must be a whole number (ack_wait 1 ms to 24 h, max_pending 1 to %d)",
              printable(key->via.str.ptr, key->via.str.size, name, sizeof(name)),
              CONSUMER_MAX_PENDING_MAX);
    return -1;
}

static int decode_consume_opts(const struct call *k, const struct mpread *r,
                               struct consumer_opts *o)
{
    msgpack_object m;

    if (!decode_opts_map(k->lp, r, &m)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "consume opts must be a map");
        return -1;
    }
    for (uint32_t i = 0; m.type == MSGPACK_OBJECT_MAP && i < m.via.map.size; i++) {
        const msgpack_object_kv *kv = &m.via.map.ptr[i];
        if (kv->val.type != MSGPACK_OBJECT_NIL && decode_consume_opt(k, &kv->key, &kv->val, o) < 0)
            return -1;
    }
    return 0;
}

/* Under authentication: may this session consume SM (through O's filter, when it has one)? */
static bool may_consume(const struct call *k, const struct stream *sm,
                        const struct consumer_opts *o)
{
    return session_may_consume(k->s, sm, o != NULL ? o->filter : NULL,
                               o != NULL ? o->filter_len : 0);
}

static void handle_consume(struct call *k)
{
    struct mpread r = k->env->params;
    struct consumer_opts o = {0};
    struct stream *sm;
    char why[256];
    uint32_t sid;

    if (k->env->n_params != 1 && k->env->n_params != 2) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "consume takes [stream] or [stream, opts]");
        return;
    }
    if ((sm = stream_param(k, &r)) == NULL)
        return;
    if (k->env->n_params == 2 && decode_consume_opts(k, &r, &o) < 0)
        return;
    if (!may_consume(k, sm, &o)) {
        call_fail(k, PROTO_ERR_FORBIDDEN, "not allowed to consume stream '%s'", sm->name);
        return;
    }
    int rc = session_consume(k->s, sm, &o, &sid, why, sizeof(why));
    if (rc < 0) {
        call_fail(k, -rc, "%s", why);
        return;
    }
    call_reply_uint(k, sid); /* deliveries follow in a later step */
}

/* ack and nak: [sid, seq, ...]; the member, or NULL after failing the call with USAGE. */
static struct member *ack_params(const struct call *k, struct mpread *r, uint64_t *seq,
                                 const char *usage)
{
    uint64_t sid;

    if (!mpread_uint(r, &sid) || !mpread_uint(r, seq)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "%s", usage);
        return NULL;
    }
    struct member *m = session_member(k->s, sid);
    if (m == NULL)
        call_fail(k, PROTO_ERR_BAD_PARAMS, "unknown sid %llu (not a consume)",
                  (unsigned long long)sid);
    return m;
}

/* Answers an ack or nak request with RES. */
static void ack_reply(const struct call *k, enum consumer_ack res)
{
    if (!k->is_request)
        return;
    if (res == CONSUMER_STORED) {
        store_reply_when_stored(k->lp->srv->store, k->s, k->env->msgid);
        return;
    }
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    if (res == CONSUMER_DONE)
        encode_result_true(buf, k->env->msgid);
    else
        encode_result_false(buf, k->env->msgid);
    conn_send_frame(k->c, buf->data, buf->size);
}

static void handle_ack(struct call *k)
{
    static const char usage[] = "ack takes [sid, seq]";
    struct mpread r = k->env->params;
    uint64_t seq;

    if (k->env->n_params != 2) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "%s", usage);
        return;
    }
    struct member *m = ack_params(k, &r, &seq, usage);
    if (m != NULL)
        ack_reply(k, consumer_ack(m, seq));
}

static void handle_nak(struct call *k)
{
    static const char usage[] = "nak takes [sid, seq] or [sid, seq, delay_ms]";
    struct mpread r = k->env->params;
    uint64_t seq, delay = 0;

    if (k->env->n_params != 2 && k->env->n_params != 3) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "%s", usage);
        return;
    }
    struct member *m = ack_params(k, &r, &seq, usage);
    if (m == NULL)
        return;
    if (k->env->n_params == 3 && (!mpread_uint(&r, &delay) || delay > CONSUMER_DELAY_MAX_MS)) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "delay_ms must be a whole number of ms, at most 24 h");
        return;
    }
    ack_reply(k, consumer_nak(m, seq, delay));
}

static void handle_stream_info(struct call *k)
{
    struct store *st = k->lp->srv->store;
    struct mpread r = k->env->params;
    struct stream *sm = NULL;
    msgpack_packer pk;

    if (k->env->n_params > 1) {
        call_fail(k, PROTO_ERR_BAD_PARAMS, "stream_info takes [] or [stream]");
        return;
    }
    if (k->env->n_params == 1) {
        if ((sm = stream_param(k, &r)) == NULL)
            return;
        if (!may_consume(k, sm, NULL)) {
            call_fail(k, PROTO_ERR_NO_STREAM, "no stream '%s'", sm->name);
            return;
        }
    }
    msgpack_sbuffer *buf = loop_frame_buf(k->lp);
    encode_result_begin(&pk, buf, k->env->msgid);
    if (sm != NULL) {
        store_pack_stream_info(st, sm, &pk);
    } else {
        size_t n = 0, total = st != NULL ? store_stream_count(st) : 0;
        for (size_t i = 0; i < total; i++)
            n += may_consume(k, store_stream_at(st, i), NULL);
        msgpack_pack_array(&pk, n);
        for (size_t i = 0; i < total; i++)
            if (may_consume(k, store_stream_at(st, i), NULL))
                store_pack_stream_info(st, store_stream_at(st, i), &pk);
    }
    conn_send_frame(k->c, buf->data, buf->size);
}

/* ------------------------------------------------------------- dispatch */

struct method {
    const char *name;
    uint32_t len;
    void (*handle)(struct call *k);
    bool notification_ok; /* may be sent as a notification */
};

static const struct method methods[] = {
    {"pub", 3, handle_pub, true},
    /* first: method_find's fast path */ {"sub", 3, handle_sub, false},
    {"unsub", 5, handle_unsub, false},
    {"ping", 4, handle_ping, false},
    {"hello", 5, handle_hello, false},
    /* 1.1: streams */
    {"consume", 7, handle_consume, false},
    {"ack", 3, handle_ack, true},
    {"nak", 3, handle_nak, true},
    {"stream_info", 11, handle_stream_info, false},
};

static const struct method *method_find(const char *name, uint32_t len)
{
    /* `pub` is most frames: three compares instead of a call to memcmp. */
    if (len == 3 && name[0] == 'p' && name[1] == 'u' && name[2] == 'b')
        return &methods[0];
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].len == len && memcmp(methods[i].name, name, len) == 0)
            return &methods[i];
    return NULL;
}

void dispatch_frame(struct session *s, const uint8_t *frame, size_t len, struct block *blk)
{
    struct envelope env;
    const char *why;
    char name[64];

    if (envelope_parse(frame, len, &env, &why) < 0) {
        dispatch_bad_frame(s, why);
        return;
    }
    if (env.kind == PROTO_RESPONSE) {
        dispatch_bad_frame(s, "the broker takes requests and notifications, not responses");
        return;
    }
    struct call k = {
        .s = s,
        .c = s->conn,
        .lp = s->conn->loop,
        .env = &env,
        .blk = blk,
        .is_request = env.kind == PROTO_REQUEST,
    };
    const struct method *m = method_find(env.method, env.method_len);
    if (!access_gate(s, m != NULL && m->handle == handle_hello, k.is_request, env.msgid))
        return;
    if (m == NULL) {
        call_fail(&k, PROTO_ERR_UNKNOWN_METHOD, "unknown method '%s'",
                  printable(env.method, env.method_len, name, sizeof(name)));
        return;
    }
    if (!k.is_request && !m->notification_ok) {
        call_fail(&k, PROTO_ERR_BAD_PARAMS, "%s must be sent as a request", m->name);
        return;
    }
    m->handle(&k);
    msgpack_zone_clear(&k.lp->zone);
}
