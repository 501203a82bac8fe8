/*
 * session.c - one client's protocol state, and the delivery API (see
 * session.h).
 *
 * Layers, top-down: life; subscriptions (the sid-sorted array and the
 * limits on it); retained replays (a queue of cursors, paced by the
 * output); delivery and the slow-consumer policy.
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "acl.h"
#include "block.h"
#include "budget.h"
#include "conn.h"
#include "consumer.h"
#include "proto.h"
#include "mpread.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "stream.h"
#include "xalloc.h"

/* A retained replay under way: a cursor over the store, for one subscription. */
struct replay {
    struct replay *next; /* in the session's replays */
    struct sub *sub;     /* borrowed; unsubscribing cancels the replay */
    struct retain_cursor cur;
};

/* A response waiting for the store, or a frame held behind one (see session.h). */
struct session_reply {
    struct session_reply *next;
    struct session *sess; /* NULL once the session ended: the filler frees it */
    bool filled;
    uint32_t len;
    uint8_t *frame; /* owned, once filled */
};

static void replay_cancel(struct session *s, struct replay *rp);
static void replies_fini(struct session *s);

/* ------------------------------------------------------------------ life */

void session_init(struct session *s, struct conn *c, struct router *r, uint64_t id)
{
    memset(s, 0, sizeof(*s));
    s->conn = c;
    s->router = r;
    s->id = id;
    s->replays_tail = &s->replays;
    s->replies_tail = &s->replies;
    acl_cache_init(&s->acl_cache);
}

/* Removes SUB from the index and frees it (its replay first). */
static void sub_free(struct session *s, struct sub *sub)
{
    if (sub->replay != NULL)
        replay_cancel(s, sub->replay);
    router_unsubscribe(s->router, sub);
    free(sub->pattern);
    free(sub->queue);
    free(sub);
}

void session_fini(struct session *s)
{
    while (s->members != NULL) {
        struct member *m = s->members;
        s->members = m->next_in_session;
        s->n_members--;
        consumer_detach(m);
    }
    replies_fini(s);
    if (s->conn->loop->srv->store != NULL)
        store_session_gone(s->conn->loop->srv->store, s);
    access_end(s);
    for (uint32_t i = 0; i < s->n_subs; i++)
        sub_free(s, s->subs[i]);
    s->n_subs = 0;
    free(s->subs);
    s->subs = NULL;
    s->cap_subs = 0;
    free(s->client_name);
    s->client_name = NULL;
}

/* --------------------------------------------------------- subscriptions */

/* Adds SUB to S's subs, which stay sorted by sid (sids only grow). */
static void subs_append(struct session *s, struct sub *sub)
{
    if (s->n_subs == s->cap_subs) {
        s->cap_subs = s->cap_subs ? s->cap_subs * 2 : 1;
        s->subs = xrealloc(s->subs, s->cap_subs * sizeof(*s->subs));
    }
    s->subs[s->n_subs++] = sub;
}

/* Index of SID in S's subs, or -1. */
static long subs_find(const struct session *s, uint64_t sid)
{
    long lo = 0, hi = (long)s->n_subs - 1;

    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (s->subs[mid]->sid == sid)
            return mid;
        if (s->subs[mid]->sid < sid)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Which limit, if any, a new subscription of S would pass: its message, or NULL. */
static const char *subscribe_limit(const struct session *s)
{
    const struct config *conf = s->conn->loop->conf;
    struct server *srv = s->conn->loop->srv;

    if (s->n_subs + s->n_members >= conf->max_subscriptions_per_connection ||
        s->next_sid == UINT32_MAX)
        return "too many subscriptions on this connection (max_subscriptions_per_connection)";
    if (router_sub_count(s->router) >= conf->max_subscriptions)
        return "too many subscriptions in the broker (max_subscriptions)";
    if (budget_refusing(srv)) {
        budget_refused_sub(srv);
        return "broker memory full (max_memory)";
    }
    return NULL;
}

int session_subscribe(struct session *s, const char *pattern, size_t plen, const char *queue,
                      size_t qlen, struct sub **out, const char **why)
{
    if ((*why = subscribe_limit(s)) != NULL)
        return -PROTO_ERR_LIMIT;
    struct sub *sub = xcalloc(1, sizeof(*sub));
    sub->sess = s;
    sub->pattern = xstrndup(pattern, plen);
    sub->queue = queue != NULL ? xstrndup(queue, qlen) : NULL;
    if (!access_check_sub(s, sub)) {
        free(sub->pattern);
        free(sub->queue);
        free(sub);
        *why = "not allowed to subscribe to that pattern";
        return -PROTO_ERR_FORBIDDEN;
    }
    sub->sid = ++s->next_sid;
    sub->prefix_len = (uint8_t)encode_msg_prefix(sub->prefix, sub->sid);
    router_subscribe(s->router, sub);
    subs_append(s, sub);
    *out = sub;
    return 0;
}

int session_unsubscribe(struct session *s, uint64_t sid)
{
    long i = subs_find(s, sid);

    if (i < 0) {
        struct member *m = session_member(s, sid);
        if (m == NULL)
            return -1;
        session_member_forget(s, m);
        consumer_detach(m);
        return 0;
    }
    sub_free(s, s->subs[i]);
    memmove(&s->subs[i], &s->subs[i + 1], (s->n_subs - (size_t)i - 1) * sizeof(*s->subs));
    s->n_subs--;
    return 0;
}

/* ------------------------------------------------------ retained replays */

/* Unlinks RP from S's replays and frees it. */
static void replay_cancel(struct session *s, struct replay *rp)
{
    struct replay **pp = &s->replays;

    while (*pp != rp)
        pp = &(*pp)->next;
    *pp = rp->next;
    if (s->replays_tail == &rp->next)
        s->replays_tail = pp;
    rp->sub->replay = NULL;
    router_replay_end(s->router, &rp->cur);
    free(rp);
}

void session_replay_start(struct sub *sub)
{
    struct session *s = sub->sess;

    if (sub->queue != NULL || !router_has_retained(s->router))
        return;
    struct replay *rp = xcalloc(1, sizeof(*rp));
    rp->sub = sub;
    router_replay_begin(s->router, &rp->cur);
    *s->replays_tail = rp;
    s->replays_tail = &rp->next;
    sub->replay = rp;
    /* First in line: send what fits now, so a small replay follows its response at once. */
    if (s->replays == rp && !s->replay_waiting)
        session_continue(s);
}

void session_continue(struct session *s)
{
    size_t budget = SESSION_REPLAY_VISITS;
    struct replay *rp;

    s->replay_waiting = false;
    while ((rp = s->replays) != NULL && s->conn->state == CONN_OPEN) {
        switch (router_replay_step(s->router, &rp->cur, rp->sub, &budget)) {
        case RETAIN_WALK_DONE:
            replay_cancel(s, rp);
            break;
        case RETAIN_WALK_REFUSED:
            s->replay_waiting = true; /* session_drained goes on */
            return;
        case RETAIN_WALK_BUDGET:
            loop_defer(s->conn->loop, s->conn); /* a later wake-up goes on */
            return;
        }
    }
}

/* -------------------------------------------------------------- delivery */

bool session_deliver(struct sub *sub, const struct router_msg *m)
{
    struct conn *c = sub->sess->conn;
    size_t n = sub->prefix_len + m->body_len + m->opts_len;

    if (sub->filtered && !access_may_receive(sub, m->topic, m->topic_len))
        return false; /* denied at delivery: not sent, not counted */
    if (!conn_room(c, n))
        return session_slow(sub->sess, 1);
    if (!conn_send_msg(c, sub->prefix, sub->prefix_len, m->body, m->body_len, m->opts, m->opts_len,
                       m->block))
        return false;
    if (m->reply_to != NULL)
        access_delivered(sub->sess, m);
    return true;
}

bool session_accepts(const struct sub *sub, const struct router_msg *m)
{
    return conn_room(sub->sess->conn, sub->prefix_len + m->body_len + m->opts_len) &&
           (!sub->filtered || access_may_receive((struct sub *)sub, m->topic, m->topic_len));
}

bool session_offer_retained(struct sub *sub, struct block *blk, size_t body_len, size_t opts_len)
{
    struct conn *c = sub->sess->conn;
    size_t n = sub->prefix_len + body_len + opts_len;
    size_t window = SESSION_REPLAY_WINDOW < c->loop->out_limit ? SESSION_REPLAY_WINDOW
                                                               : (size_t)c->loop->out_limit;

    /* One value larger than the whole window goes when the queue is empty. */
    if (conn_queued(c) > 0 && conn_queued(c) + n > window)
        return false;
    if (sub->filtered) { /* the body starts with the topic, as published */
        struct mpread r;
        const char *topic;
        uint32_t tlen;
        mpread_init(&r, blk->data, body_len);
        if (!mpread_str(&r, &topic, &tlen) || !access_may_receive(sub, topic, tlen))
            return true; /* denied: passed over, as if sent */
    }
    return conn_send_msg(c, sub->prefix, sub->prefix_len, blk->data, body_len, blk->data + body_len,
                         opts_len, blk);
}

/* Queues the error notification CODE, MESSAGE for S. */
static void session_send_error(struct session *s, int code, const char *message)
{
    msgpack_sbuffer *buf = loop_frame_buf(s->conn->loop);

    encode_error_notification(buf, code, message);
    conn_send_frame(s->conn, buf->data, buf->size);
}

/* Why S's queue is full: its own limit, or the broker's memory budget lowered it. */
static bool session_memory_tight(const struct session *s)
{
    const struct loop *lp = s->conn->loop;
    return lp->out_limit < lp->conf->max_outbound;
}

/* Drop policy: counts N dropped messages, and says so once per episode. */
static void session_drop(struct session *s, uint64_t n, bool memory)
{
    struct conn *c = s->conn;
    struct loop *lp = c->loop;

    c->stats.dropped += n;
    lp->stats.slow_dropped += n;
    if (s->dropping)
        return;
    s->dropping = true;
    session_send_error(s, PROTO_ERR_SLOW_CONSUMER,
                       memory ? "slow consumer: broker memory over max_memory, dropping messages"
                              : "slow consumer: outbound queue over max_outbound, dropping "
                                "messages");
    loop_warn(lp, LOOP_WARN_SLOW, "client %llu (%s): slow consumer%s, dropping messages",
              (unsigned long long)s->id, conn_peer(c), memory ? " (max_memory)" : "");
}

/* Disconnect policy: closes S, dropping its queue at once. */
static void session_cut(struct session *s, bool memory)
{
    struct conn *c = s->conn;
    struct loop *lp = c->loop;

    lp->stats.slow_disconnects++;
    loop_warn(lp, LOOP_WARN_SLOW, "client %llu (%s): slow consumer%s, disconnecting",
              (unsigned long long)s->id, conn_peer(c), memory ? " (max_memory)" : "");
    conn_close_discarding(c, "slow consumer", PROTO_ERR_SLOW_CONSUMER,
                          memory ? "slow consumer: broker memory over max_memory"
                                 : "slow consumer: outbound queue over max_outbound");
}

bool session_slow(struct session *s, uint64_t n)
{
    if (s->conn->state != CONN_OPEN)
        return false;
    if (s->conn->loop->conf->slow_consumer == CONFIG_SLOW_DROP)
        session_drop(s, n, session_memory_tight(s));
    else
        session_cut(s, session_memory_tight(s));
    return false;
}

void session_slow_memory(struct session *s)
{
    if (s->conn->state != CONN_OPEN)
        return;
    /* A dropping client that still holds its queue at the next look is cut. */
    if (s->conn->loop->conf->slow_consumer == CONFIG_SLOW_DROP && !s->dropping)
        session_drop(s, 0, true);
    else
        session_cut(s, true);
}

void session_drained(struct session *s)
{
    for (struct member *m = s->members; m != NULL; m = m->next_in_session)
        consumer_member_drained(m);
    s->dropping = false;
    if (s->replays != NULL && s->replay_waiting) {
        s->replay_waiting = false;
        loop_defer(s->conn->loop, s->conn);
    }
}

/* ------------------------------------------------------------- consumers */

int session_consume(struct session *s, struct stream *st, const struct consumer_opts *o,
                    uint32_t *sid, char *why, size_t why_len)
{
    const char *limit = subscribe_limit(s);
    struct member *m;

    if (limit != NULL) {
        snprintf(why, why_len, "%s", limit);
        return -PROTO_ERR_LIMIT;
    }
    int rc = consumer_attach(st, s, s->next_sid + 1, o, &m, why, why_len);
    if (rc < 0)
        return rc;
    *sid = ++s->next_sid;
    m->next_in_session = s->members;
    s->members = m;
    s->n_members++;
    return 0;
}

struct member *session_member(const struct session *s, uint64_t sid)
{
    for (struct member *m = s->members; m != NULL; m = m->next_in_session)
        if (m->sid == sid)
            return m;
    return NULL;
}

void session_member_forget(struct session *s, struct member *m)
{
    for (struct member **pp = &s->members; *pp != NULL; pp = &(*pp)->next_in_session) {
        if (*pp == m) {
            *pp = m->next_in_session;
            s->n_members--;
            return;
        }
    }
}

/* May S consume through PATTERN (a filter, or one of a stream's patterns)? */
static bool may_consume_pattern(const struct session *s, const char *pattern, size_t len)
{
    /* A stored message is not checked again on its way out, so a consumer
     * needs what a subscription that is never filtered needs: one
     * subscribe-allow pattern covering PATTERN, no deny overlapping it. */
    return s->acl == NULL || acl_check_subscribe(s->acl, pattern, len) == ACL_SUB_ALLOWED;
}

bool session_may_consume(const struct session *s, const struct stream *st, const char *filter,
                         size_t flen)
{
    if (filter != NULL)
        return may_consume_pattern(s, filter, flen);
    for (size_t i = 0; i < st->conf.n_patterns; i++)
        if (!may_consume_pattern(s, st->conf.patterns[i], strlen(st->conf.patterns[i])))
            return false;
    return true;
}

void session_recheck_consumers(struct session *s)
{
    struct member *m, *next;
    char text[160];

    for (m = s->members; m != NULL; m = next) {
        const char *filter = consumer_filter(m->cons);
        next = m->next_in_session;
        if (session_may_consume(s, consumer_stream(m->cons), filter,
                                filter != NULL ? strlen(filter) : 0))
            continue;
        snprintf(text, sizeof(text), "consume %u (stream '%s') is no longer allowed", m->sid,
                 consumer_stream(m->cons)->name);
        session_send_error(s, PROTO_ERR_FORBIDDEN, text);
        session_member_forget(s, m);
        consumer_detach(m);
    }
}

bool session_stored_room(const struct session *s, size_t len)
{
    const struct conn *c = s->conn;
    size_t window =
        CONSUMER_WINDOW < c->loop->out_limit ? CONSUMER_WINDOW : (size_t)c->loop->out_limit;

    if (c->state != CONN_OPEN)
        return false;
    /* One message larger than the whole window goes when the queue is empty. */
    return conn_queued(c) == 0 || conn_queued(c) + len <= window;
}

bool session_offer_stored(struct session *s, const uint8_t *prefix, size_t plen,
                          const uint8_t *body, size_t blen, const uint8_t *opts, size_t olen)
{
    if (!conn_send_msg(s->conn, prefix, plen, body, blen, opts, olen, NULL))
        return false;
    if (s->user != NULL)
        access_delivered_opts(s, opts, olen);
    return true;
}

/* ------------------------------------------------------- replies held back */

static void reply_append(struct session *s, struct session_reply *r)
{
    r->sess = s;
    *s->replies_tail = r;
    s->replies_tail = &r->next;
}

/* Counts LEN bytes held (or, negative, let go) against the output budget. */
static void replies_count(struct session *s, int64_t len)
{
    s->replies_bytes += (uint64_t)len;
    s->conn->loop->mem_out += (uint64_t)len;
}

/* Sends the filled replies at the head of S's queue. */
static void replies_flush(struct session *s)
{
    struct session_reply *r;

    while ((r = s->replies) != NULL && r->filled) {
        s->replies = r->next;
        if (s->replies == NULL)
            s->replies_tail = &s->replies;
        replies_count(s, -(int64_t)r->len);
        conn_send_held(s->conn, r->frame, r->len);
        free(r->frame);
        free(r);
    }
    if (s->replies == NULL && (s->conn->holds & CONN_HOLD_REPLIES))
        conn_release(s->conn, CONN_HOLD_REPLIES);
}

struct session_reply *session_reply_defer(struct session *s)
{
    struct session_reply *r = xcalloc(1, sizeof(*r));

    reply_append(s, r);
    return r;
}

void session_reply_fill(struct session_reply *r, const void *frame, size_t len)
{
    struct session *s = r->sess;

    if (s == NULL) {
        free(r);
        return;
    }
    r->frame = xmalloc(len);
    memcpy(r->frame, frame, len);
    r->len = (uint32_t)len;
    r->filled = true;
    replies_count(s, (int64_t)len);
    replies_flush(s);
}

bool session_reply_hold(struct session *s, const void *frame, size_t len)
{
    if (s->replies == NULL)
        return false;
    struct session_reply *r = xcalloc(1, sizeof(*r));
    r->frame = xmalloc(len);
    memcpy(r->frame, frame, len);
    r->len = (uint32_t)len;
    r->filled = true;
    reply_append(s, r);
    replies_count(s, (int64_t)len);
    /* A client that pipelines requests behind a slow commit is not read on and on. */
    if (s->replies_bytes > s->conn->loop->conf->max_outbound)
        conn_hold(s->conn, CONN_HOLD_REPLIES);
    return true;
}

/* S ends: held frames go; places not yet filled are left to their filler. */
static void replies_fini(struct session *s)
{
    struct session_reply *r, *next;

    for (r = s->replies; r != NULL; r = next) {
        next = r->next;
        if (r->filled) {
            replies_count(s, -(int64_t)r->len);
            free(r->frame);
            free(r);
        } else {
            r->sess = NULL;
        }
    }
    s->replies = NULL;
    s->replies_tail = &s->replies;
}
