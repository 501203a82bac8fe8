/*
 * client.c - the asynchronous client: a session that outlives connections.
 *
 * What it owns: the transport (transport.c), the subscriptions (subs.c), the
 * responses it waits for (waits.c), the requests waiting for a reply
 * (reqs.c), the reconnect buffer, and three timers: the retry delay, the
 * connect attempt's deadline, and the keepalive tick.
 *
 * This file is the lifetime and the connection's state machine; the rest of
 * the client is split by concern (see client.h).
 *
 * States (enum pigeon_state); on_state hears of every change but the first
 * CONNECTING (inside pigeon_connect) and the CLOSED of pigeon_close:
 *
 *   CONNECTING --hello answered--> CONNECTED --lost--> DISCONNECTED
 *       ^  |                                               |
 *       |  +--failed or timed out--> DISCONNECTED / CLOSED |
 *       +-----------------retry timer----------------------+
 *
 * On every new socket the client sends, in this order: hello, a `sub` for
 * every subscription, then, once hello is answered, what was buffered.  The
 * broker handles frames in order, so the subscriptions are in place before
 * any buffered publication (a request's inbox included) is routed.
 *
 * Delivery is at most once.  Publications made while not CONNECTED (down,
 * or up with hello unanswered) are buffered (up to max_pending bytes) and
 * sent when hello is answered, in order, but for those over the new
 * broker's max_payload, which are dropped and reported (see
 * client_send_pending); what had been handed to a connection that broke
 * is lost, and the requests awaiting an answer on it fail with
 * PIGEON_ECONNLOST.
 *
 * Re-entrancy: user callbacks run from libevent callbacks, and may call
 * anything, pigeon_close included.  Every entry from the loop goes through
 * client_enter/client_leave; pigeon_close inside a callback only marks the
 * client closed, and the memory goes when the outermost entry leaves.
 * Nothing ever frees a structure a caller up the stack still uses.
 */
#include "client.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "envelope.h"
#include "frame.h"
#include "mpread.h"
#include "tls.h"
#include "wire.h"

static void client_up_cb(void *arg);
static void client_down_cb(void *arg, int err, const char *why);
static void client_retry_cb(evutil_socket_t fd, short what, void *arg);
static void client_attempt_cb(evutil_socket_t fd, short what, void *arg);
static void client_ping_cb(evutil_socket_t fd, short what, void *arg);
static void client_free(pigeon_client *c);

/* ------------------------------------------------------------- helpers --- */

/* Records the details of error CODE and returns it. */
int client_err(pigeon_client *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

void client_enter(pigeon_client *c)
{
    c->busy++;
}

/* Leaves an entry from the loop; frees C when it was closed meanwhile. */
void client_leave(pigeon_client *c)
{
    if (--c->busy == 0 && c->closing)
        client_free(c);
}

/* Still usable after a user callback? */
bool client_alive(const pigeon_client *c)
{
    return !c->closing;
}

void client_set_state(pigeon_client *c, enum pigeon_state st, int err)
{
    c->state = st;
    if (c->opts.on_state != NULL)
        c->opts.on_state(c, st, err, c->opts.state_arg);
}

/* Frees a copy of a secret, wiped first: freed memory may be handed out again. */
static void client_free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static char *client_strdup(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d == NULL)
        *oom = true;
    else
        memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------- options --- */

void pigeon_options_init(struct pigeon_options *o)
{
    memset(o, 0, sizeof(*o));
    o->client_name = "libpigeon";
    o->connect_timeout_ms = 5000;
    o->reconnect = -1;
    o->reconnect_min_ms = 100;
    o->reconnect_max_ms = 5000;
    o->max_reconnect_attempts = -1;
    o->ping_interval_ms = 60000;
    o->max_pending = 8u << 20;
    o->max_outbound = 16u << 20;
    o->max_incoming = CLIENT_MAX_INCOMING;
    o->verify_topics = 1;
    o->max_queued = 65536;
}

/* Tells the caller of pigeon_connect why it failed, when O asks (errbuf). */
__attribute__((format(printf, 2, 3))) static void client_errbuf(const struct pigeon_options *o,
                                                                const char *fmt, ...)
{
    va_list ap;

    if (o->errbuf == NULL || o->errbuf_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(o->errbuf, o->errbuf_len, fmt, ap);
    va_end(ap);
}

static bool client_options_valid(const struct pigeon_options *o)
{
    return o->connect_timeout_ms > 0 && o->reconnect_min_ms > 0 &&
           o->reconnect_max_ms >= o->reconnect_min_ms && o->ping_interval_ms >= 0 &&
           o->max_incoming >= 64 && o->max_outbound > 0;
}

/*
 * The TLS options of O fit the address A: they are for tls:// only (set
 * for a plain address, they mean TLS was intended, and credentials would
 * go out in clear), and a key needs its certificate.  True when they fit;
 * else false, with why in O's errbuf.
 */
static bool client_tls_options_fit(const struct pigeon_options *o, const struct addr *a,
                                   const char *address)
{
    bool any = o->tls_ca != NULL || o->tls_cert != NULL || o->tls_key != NULL || o->tls_no_verify;

    if (any && a->scheme != ADDR_SCHEME_TLS) {
        client_errbuf(o,
                      "tls_ca, tls_cert, tls_key and tls_no_verify are for tls:// addresses, "
                      "not '%.64s'",
                      address);
        return false;
    }
    if (o->tls_key != NULL && o->tls_cert == NULL) {
        client_errbuf(o, "tls_key is the key of tls_cert: give the certificate too");
        return false;
    }
    return true;
}

/* For a tls:// address: reads O's CA, certificate and key into C->tls. */
static int client_make_tls(pigeon_client *c, const struct pigeon_options *o)
{
    struct tls_settings st = {.ca = o->tls_ca,
                              .cert = o->tls_cert,
                              .key = o->tls_key,
                              .no_verify = o->tls_no_verify != 0};
    char err[TLS_ERR_MAX];

    if (c->addr.scheme != ADDR_SCHEME_TLS)
        return PIGEON_OK;
    if (tls_ctx_new(&st, &c->tls, err, sizeof(err)) < 0) {
        client_errbuf(o, "%s", err);
        return PIGEON_ETLS;
    }
    return PIGEON_OK;
}

/* ------------------------------------------------------------ lifetime --- */

static const struct transport_handlers client_conn_handlers = {
    .up = client_up_cb,
    .frame = client_frame_cb,
    .down = client_down_cb,
    .quick = client_quick_cb,
};

static void client_free(pigeon_client *c)
{
    transport_free(c->transport);
    tls_ctx_free(c->tls);
    if (c->retry_ev != NULL)
        event_free(c->retry_ev);
    if (c->attempt_ev != NULL)
        event_free(c->attempt_ev);
    if (c->ping_ev != NULL)
        event_free(c->ping_ev);
    for (size_t i = 0; i < c->subs.n; i++)
        subs_free_one(subs_at(&c->subs, i));
    subs_destroy(&c->subs);
    waits_destroy(&c->sent);
    waits_destroy(&c->queued);
    reqs_destroy(&c->reqs);
    buf_free(&c->pending);
    buf_free(&c->scratch);
    free(c->name);
    client_free_secret(c->token);
    free(c->user);
    client_free_secret(c->password);
    free(c);
}

static int client_copy_options(pigeon_client *c, const struct pigeon_options *o)
{
    bool oom = false;

    c->opts = *o;
    c->name = client_strdup(o->client_name, &oom);
    c->token = client_strdup(o->token, &oom);
    c->user = client_strdup(o->user, &oom);
    c->password = client_strdup(o->password, &oom);
    c->opts.client_name = c->name;
    c->opts.token = c->token;
    c->opts.user = c->user;
    c->opts.password = c->password;
    c->opts.errbuf = NULL; /* the caller's, for pigeon_connect only */
    c->opts.errbuf_len = 0;
    c->opts.tls_ca = c->opts.tls_cert = c->opts.tls_key = NULL; /* read into c->tls */
    if (c->opts.reconnect < 0)
        c->opts.reconnect = 1;
    return oom ? PIGEON_ENOMEM : PIGEON_OK;
}

static int client_make_events(pigeon_client *c)
{
    c->retry_ev = evtimer_new(c->base, client_retry_cb, c);
    c->attempt_ev = evtimer_new(c->base, client_attempt_cb, c);
    if (c->retry_ev == NULL || c->attempt_ev == NULL)
        return PIGEON_ENOMEM;
    if (c->opts.ping_interval_ms > 0) {
        int tick = c->opts.ping_interval_ms / 2 > 0 ? c->opts.ping_interval_ms / 2 : 1;
        struct timeval tv = {.tv_sec = tick / 1000, .tv_usec = (tick % 1000) * 1000};
        c->ping_ev = event_new(c->base, -1, EV_PERSIST, client_ping_cb, c);
        if (c->ping_ev == NULL || event_add(c->ping_ev, &tv) < 0)
            return PIGEON_ENOMEM;
    }
    return PIGEON_OK;
}

void client_arm_timer(struct event *ev, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(ev, &tv);
}

/*
 * The client's inbox: `_INBOX.<user>.<16 hex>` when it logs in as USER,
 * else `_INBOX.<16 hex>`.  A broker's users file grants each user its own
 * inboxes with `subscribe = _INBOX.%u.>` (docs/security.md), so that no
 * user can read another's replies.  A name that could not be a topic token
 * (no broker has such a user) is left out.
 */
static void client_make_inbox(pigeon_client *c, const char *user)
{
    uint64_t r = backoff_rng_next(&c->rng);
    size_t n = user != NULL ? strlen(user) : 0;

    if (n > 0 && n <= 64 &&
        strspn(user, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n)
        snprintf(c->inbox, sizeof(c->inbox), CLIENT_INBOX_PREFIX "%s.%016" PRIx64, user, r);
    else
        snprintf(c->inbox, sizeof(c->inbox), CLIENT_INBOX_PREFIX "%016" PRIx64, r);
}

void client_adopt_user(pigeon_client *c, const char *user, uint32_t len)
{
    char name[65];

    if (user == NULL || c->user != NULL || c->inbox_sub != NULL || len == 0 || len >= sizeof(name))
        return;
    memcpy(name, user, len);
    name[len] = '\0';
    client_make_inbox(c, name);
}

/* Starts a connection attempt. PIGEON_OK, or PIGEON_ENOMEM. */
static int client_start_attempt(pigeon_client *c)
{
    c->state = PIGEON_STATE_CONNECTING;
    c->down_code = 0;
    int rc = transport_open(c->transport, &c->addr);
    if (rc != PIGEON_OK)
        return client_err(c, rc, "out of memory starting a connection");
    client_arm_timer(c->attempt_ev, c->opts.connect_timeout_ms);
    return PIGEON_OK;
}

int pigeon_connect(struct event_base *base, const char *address, const struct pigeon_options *opts,
                   pigeon_client **out)
{
    struct pigeon_options defaults;
    char why[ADDR_WHY_MAX];
    struct addr a;

    if (opts == NULL) {
        pigeon_options_init(&defaults);
        opts = &defaults;
    }
    if (base == NULL || address == NULL || out == NULL) {
        client_errbuf(opts, "pigeon_connect needs an event_base, an address and OUT");
        return PIGEON_EINVAL;
    }
    if (!client_options_valid(opts)) {
        client_errbuf(opts, "invalid options: timeouts, delays and sizes out of range");
        return PIGEON_EINVAL;
    }
    if (addr_parse(address, ADDR_CONNECT, &a, why, sizeof(why)) < 0) {
        client_errbuf(opts, "bad address '%.64s%s': %s", address, strlen(address) > 64 ? "..." : "",
                      why);
        return PIGEON_EADDRESS;
    }
    if (!client_tls_options_fit(opts, &a, address))
        return PIGEON_EINVAL;

    pigeon_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        client_errbuf(opts, "out of memory");
        return PIGEON_ENOMEM;
    }
    c->base = base;
    c->addr = a;
    c->next_msgid = 1;
    subs_init(&c->subs);
    waits_init(&c->sent);
    waits_init(&c->queued);
    reqs_init(&c->reqs);
    buf_init(&c->pending);
    buf_init(&c->scratch);
    backoff_rng_seed(&c->rng);
    client_make_inbox(c, opts->user);
    int rc = client_copy_options(c, opts);
    if (rc == PIGEON_OK)
        rc = client_make_tls(c, opts); /* says why in errbuf */
    if (rc == PIGEON_OK)
        rc = transport_new(base, &client_conn_handlers, c, opts->max_incoming, c->tls,
                           &c->transport);
    if (rc == PIGEON_OK)
        rc = client_make_events(c);
    if (rc == PIGEON_OK)
        rc = client_start_attempt(c);
    if (rc != PIGEON_OK) {
        if (rc == PIGEON_ENOMEM)
            client_errbuf(opts, "out of memory");
        client_free(c);
        return rc;
    }
    *out = c;
    return PIGEON_OK;
}

enum pigeon_state pigeon_state(const pigeon_client *c)
{
    return c->state;
}

const char *pigeon_errmsg(const pigeon_client *c)
{
    return c->errmsg;
}

uint32_t pigeon_max_payload(const pigeon_client *c)
{
    return c->max_payload;
}

size_t pigeon_outbound_bytes(const pigeon_client *c)
{
    size_t n = buf_size(&c->pending);
    return transport_is_up(c->transport) ? n + buf_size(transport_out(c->transport)) : n;
}

/* ------------------------------------------------- failing what waits --- */

/* The response awaited by W will never come: tell whoever waits with ERR. */
static void client_fail_wait(pigeon_client *c, struct wait *w, int err)
{
    struct req *r;

    switch (w->kind) {
    case WAIT_SUB:
        w->u.sub->awaiting = false;
        if (w->u.sub->dead)
            subs_free_one(w->u.sub);
        break;
    case WAIT_DONE:
        w->u.done.cb(c, err, 0, w->u.done.arg);
        break;
    case WAIT_REQ:
        r = reqs_take(&c->reqs, w->u.token);
        if (r != NULL)
            client_req_finish(c, r, err, NULL);
        break;
    case WAIT_HELLO:
    case WAIT_UNSUB:
    case WAIT_PING:
        break;
    }
}

/* Fails every record of Q with ERR.  False when a callback closed C. */
static bool client_fail_waits(pigeon_client *c, struct waits *q, int err)
{
    struct wait w;
    while (waits_pop(q, &w) == 0) {
        client_fail_wait(c, &w, err);
        if (!client_alive(c) && err != PIGEON_ECLOSED)
            return false;
    }
    return true;
}

/* Fails every request and every subscription's pending on_done with ERR. */
static bool client_fail_all(pigeon_client *c, int err)
{
    struct req *r;

    if (!client_fail_waits(c, &c->sent, err) || !client_fail_waits(c, &c->queued, err))
        return false;
    buf_clear(&c->pending);
    while ((r = reqs_take_any(&c->reqs)) != NULL) {
        client_req_finish(c, r, err, NULL);
        if (!client_alive(c) && err != PIGEON_ECLOSED)
            return false;
    }
    for (size_t i = 0; i < c->subs.n; i++) {
        client_sub_done(c, subs_at(&c->subs, i), err, subs_at(&c->subs, i)->id);
        if (!client_alive(c) && err != PIGEON_ECLOSED)
            return false;
    }
    return true;
}

void pigeon_close(pigeon_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    transport_write_now(c->transport);
    transport_drop(c->transport);
    event_del(c->retry_ev);
    event_del(c->attempt_ev);
    if (c->ping_ev != NULL)
        event_del(c->ping_ev);
    c->state = PIGEON_STATE_CLOSED;
    client_enter(c);
    client_fail_all(c, PIGEON_ECLOSED);
    client_leave(c);
}

/* ----------------------------------------------------- losing the link --- */

/* The current socket is gone (or the attempt failed): retry or give up. */
void client_lost(pigeon_client *c, int err, const char *why)
{
    transport_drop(c->transport);
    event_del(c->attempt_ev);
    if (c->down_code != 0) {
        err = c->down_code; /* the broker said why before closing */
        client_err(c, err, "%s", c->down_msg);
    } else {
        client_err(c, err, "%s", why);
    }
    c->down_code = 0;
    c->ping_out = false;
    if (err == PIGEON_ETLS && !c->ever_connected)
        c->no_retry = true; /* a wrong CA, name or certificate: retrying cannot fix it */
    subs_unbind_all(&c->subs);
    if (!client_fail_waits(c, &c->sent, PIGEON_ECONNLOST))
        return;

    bool retry = c->opts.reconnect && !c->no_retry &&
                 (c->opts.max_reconnect_attempts < 0 ||
                  c->attempts < (uint32_t)c->opts.max_reconnect_attempts);
    if (!retry) {
        c->state = PIGEON_STATE_CLOSED;
        if (!client_fail_all(c, err))
            return;
        client_set_state(c, PIGEON_STATE_CLOSED, err);
        return;
    }
    uint32_t delay = backoff_delay_ms(c->attempts, (uint32_t)c->opts.reconnect_min_ms,
                                      (uint32_t)c->opts.reconnect_max_ms, &c->rng);
    c->attempts++;
    client_arm_timer(c->retry_ev, (int)delay);
    client_set_state(c, PIGEON_STATE_DISCONNECTED, err);
}

static void client_down_cb(void *arg, int err, const char *why)
{
    pigeon_client *c = arg;

    client_enter(c);
    client_lost(c, err, why);
    client_leave(c);
}

static void client_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    pigeon_client *c = arg;

    client_enter(c);
    client_set_state(c, PIGEON_STATE_CONNECTING, 0);
    if (client_alive(c) && c->state == PIGEON_STATE_CONNECTING &&
        client_start_attempt(c) != PIGEON_OK)
        client_lost(c, PIGEON_ENOMEM, "out of memory starting a connection");
    client_leave(c);
}

static void client_attempt_cb(evutil_socket_t fd, short what, void *arg)
{
    pigeon_client *c = arg;
    char addr[160], why[224];

    if (c->state == PIGEON_STATE_CONNECTED)
        return;
    client_enter(c);
    addr_format(&c->addr, addr, sizeof(addr));
    snprintf(why, sizeof(why), "connect to %s: no answer within %d ms", addr,
             c->opts.connect_timeout_ms);
    client_lost(c, PIGEON_ECONNECT, why);
    client_leave(c);
}

/* A protocol violation by the broker: drop the socket and start over. */
void client_proto_error(pigeon_client *c, const char *why)
{
    char msg[192];
    snprintf(msg, sizeof(msg), "protocol error: %s", why);
    c->down_code = 0;
    client_lost(c, PIGEON_EPROTO, msg);
}

/* ------------------------------------------------------------ sending --- */

/* Sends a request that is answered without a callback (unsub, ping). */
int client_send_plain(pigeon_client *c, enum wait_kind kind, uint64_t sid)
{
    struct buf *out = transport_out(c->transport);
    size_t mark = buf_size(out);
    struct wait w = {.msgid = c->next_msgid++, .kind = kind};
    size_t n = kind == WAIT_UNSUB ? wire_unsub(out, w.msgid, sid) : wire_ping(out, w.msgid);

    if (n == 0 || waits_push(&c->sent, &w) < 0) {
        buf_truncate(out, mark);
        return PIGEON_ENOMEM;
    }
    transport_kick(c->transport);
    return PIGEON_OK;
}

/*
 * The socket is up: hello, then the subscriptions.  The reconnect buffer
 * waits for hello's answer (client_send_pending), and so does whatever is
 * published meanwhile, behind it.
 */
static void client_up_cb(void *arg)
{
    pigeon_client *c = arg;
    struct buf *out = transport_out(c->transport);
    struct wire_hello h = {c->name, c->token, c->user, c->password};
    struct wait w = {.msgid = c->next_msgid++, .kind = WAIT_HELLO};
    int rc = PIGEON_OK;

    client_enter(c);
    if (wire_hello(out, w.msgid, &h) == 0 || waits_push(&c->sent, &w) < 0)
        rc = PIGEON_ENOMEM;
    for (size_t i = 0; rc == PIGEON_OK && i < c->subs.n; i++)
        rc = client_send_sub(c, subs_at(&c->subs, i));
    if (rc != PIGEON_OK)
        client_lost(c, rc, "out of memory sending hello");
    else
        transport_kick(c->transport);
    client_leave(c);
}

/*
 * Writes into TEXT (CLIENT_ERRMSG_MAX bytes) why the buffered frame ENV
 * (LEN bytes) is dropped, naming its topic when it is a `pub`.
 */
static void client_drop_text(const pigeon_client *c, const struct envelope *env, size_t len,
                             char *text)
{
    struct mpread params = env->params;
    const char *topic = "";
    uint32_t tlen = 0;

    if (env->n_params == 0 || !mpread_str(&params, &topic, &tlen))
        tlen = 0;
    snprintf(text, CLIENT_ERRMSG_MAX,
             "buffered publication to '%.*s' dropped: its frame of %zu bytes is over the "
             "broker's max_payload (%" PRIu32 ")",
             (int)(tlen > 64 ? 64 : tlen), topic, len, c->max_payload);
}

/*
 * Moves the reconnect buffer to the socket, frame by frame.  The frames
 * were checked against the max_payload known when they were published (or
 * none, before the first hello); the broker just answered may have a
 * smaller one, and it closes the connection on a frame over it, so such a
 * frame is dropped instead: a request's waiter fails with
 * PIGEON_ERR_TOO_LARGE, a plain publication is reported through on_error.
 *
 * Those callbacks may publish (into this buffer, as the client is not
 * CONNECTED yet: behind what is left, and walked in turn), subscribe, or
 * close C.  So each frame, and its record in `queued`, is taken off before
 * anyone is told, and no pointer into the buffer is kept across a call.
 */
int client_send_pending(pigeon_client *c)
{
    struct buf *out = transport_out(c->transport);
    struct frame_scanner scan;
    struct envelope env;
    struct wait w;
    const char *why;
    char text[CLIENT_ERRMSG_MAX];

    frame_scanner_init(&scan, UINT32_MAX);
    while (buf_size(&c->pending) > 0) {
        const uint8_t *frame = c->pending.data + c->pending.off;
        size_t len = buf_size(&c->pending), used;

        frame_scanner_reset(&scan);
        if (frame_scan(&scan, frame, len, &used) != FRAME_DONE ||
            envelope_parse(frame, scan.len, &env, &why) < 0) {
            /* Only a frame over 4 GiB (max_pending raised that far, before
             * any hello) gets here: the rest goes as it is, for the broker
             * to judge. */
            size_t mark = buf_size(out);
            if (buf_append(out, frame, len) < 0 || waits_move(&c->sent, &c->queued) < 0) {
                buf_truncate(out, mark);
                return PIGEON_ENOMEM;
            }
            buf_clear(&c->pending);
            break;
        }
        len = scan.len;
        bool request = env.kind == PROTO_REQUEST && waits_peek(&c->queued) != NULL;
        if (c->max_payload == 0 || len <= c->max_payload) {
            size_t mark = buf_size(out);
            if (buf_append(out, frame, len) < 0 ||
                (request && waits_push(&c->sent, waits_peek(&c->queued)) < 0)) {
                buf_truncate(out, mark);
                return PIGEON_ENOMEM;
            }
            if (request)
                waits_pop(&c->queued, &w);
            buf_consume(&c->pending, len);
            continue;
        }
        client_drop_text(c, &env, len, text);
        if (request)
            waits_pop(&c->queued, &w);
        buf_consume(&c->pending, len);
        client_err(c, PIGEON_ERR_TOO_LARGE, "%s", text);
        if (request)
            client_fail_wait(c, &w, PIGEON_ERR_TOO_LARGE);
        else if (c->opts.on_error != NULL)
            c->opts.on_error(c, PIGEON_ERR_TOO_LARGE, text, c->opts.error_arg);
        if (!client_alive(c) || !transport_is_up(c->transport))
            return PIGEON_OK;
    }
    transport_kick(c->transport);
    return PIGEON_OK;
}

/* ---------------------------------------------------------- keepalive --- */

static void client_ping_cb(evutil_socket_t fd, short what, void *arg)
{
    pigeon_client *c = arg;
    int64_t now = clock_now_ms(), every = c->opts.ping_interval_ms;

    if (c->state != PIGEON_STATE_CONNECTED || !transport_is_up(c->transport))
        return;
    client_enter(c);
    int64_t rx = transport_last_rx(c->transport), tx = transport_last_tx(c->transport);
    if (c->ping_out) {
        if (now - c->ping_sent_ms >= every && now - rx >= every)
            client_lost(c, PIGEON_ECONNLOST, "the broker did not answer a ping");
    } else if (now - rx >= every || now - tx >= every) {
        if (client_send_plain(c, WAIT_PING, 0) == PIGEON_OK) {
            c->ping_out = true;
            c->ping_sent_ms = now;
        }
    }
    client_leave(c);
}
