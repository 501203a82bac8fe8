/*
 * router.c - from a publication to its subscribers (see router.h).
 *
 * The per-message path is: one sublist_match (a cache hit is one hash
 * lookup), then for each subscription one conn_send_msg, which copies or
 * references the body into the subscriber's staged output.  Nothing here
 * allocates per message; only retaining a value does.
 *
 * A retained value is kept in one block: the body (topic and payload, as
 * published) followed by the opts map its replays carry, which always says
 * retained: true and keeps the publication's reply_to and headers.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "block.h"
#include "conn.h"
#include "proto.h"
#include "retain.h"
#include "server.h"
#include "sublist.h"
#include "xalloc.h"

/* Topics whose match result the index remembers. */
#define ROUTER_MATCH_CACHE 4096

struct router {
    struct server *srv;            /* borrowed */
    struct sublist *subs;          /* owned */
    struct retain_store *retained; /* owned; values are struct retained */
    msgpack_sbuffer scratch;       /* builds a retained value's opts */
};

/*
 * A retained value.  Reference-counted: the store holds one reference while
 * the value is current, and each waiting replay item one.  When the value
 * is replaced or cleared the store lets go of it at once (retained_retire):
 * its block is freed and blk set to NULL, so a replay still waiting to send
 * it pins only this small struct and knows to skip it.
 */
struct retained {
    struct block *blk; /* body then opts; NULL once replaced or cleared (stale) */
    uint32_t body_len;
    uint32_t opts_len;
    uint32_t refs;
};

static void replay_cancel(struct sub *s);

struct router *router_new(struct server *srv)
{
    struct router *r = xcalloc(1, sizeof(*r));
    r->srv = srv;
    r->subs = sublist_new(ROUTER_MATCH_CACHE);
    r->retained = retain_new();
    msgpack_sbuffer_init(&r->scratch);
    return r;
}

static void retained_unref(struct retained *rv)
{
    if (--rv->refs == 0) {
        block_unref(rv->blk);
        free(rv);
    }
}

/* The store let go of VALUE (replaced, cleared, or the store freed): its
 * bytes go now, whoever still refers to it.  NULL is fine. */
static void retained_retire(void *value)
{
    struct retained *rv = value;
    if (rv != NULL) {
        block_unref(rv->blk);
        rv->blk = NULL;
        retained_unref(rv);
    }
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    sublist_free(r->subs);
    retain_free(r->retained, retained_retire);
    msgpack_sbuffer_destroy(&r->scratch);
    free(r);
}

/* ------------------------------------------------------- subscriptions */

struct sub *router_subscribe(struct router *r, struct conn *c, uint32_t sid, const char *pattern,
                             size_t plen, const char *queue, size_t qlen)
{
    struct sub *s = xcalloc(1, sizeof(*s));
    s->conn = c;
    s->sid = sid;
    s->prefix_len = (uint8_t)encode_msg_prefix(s->prefix, sid);
    s->pattern = xstrndup(pattern, plen);
    s->queue = queue != NULL ? xstrndup(queue, qlen) : NULL;
    s->entry = sublist_insert(r->subs, pattern, plen, queue, qlen, s);
    return s;
}

void router_unsubscribe(struct router *r, struct sub *s)
{
    if (s->replay != NULL)
        replay_cancel(s);
    sublist_remove(r->subs, s->entry);
    free(s->pattern);
    free(s->queue);
    free(s);
}

/* ------------------------------------------------------------ retained */

/* Stores or clears M's topic's retained value. 0, or -PROTO_ERR_LIMIT. */
static int router_retain(struct router *r, const struct router_msg *m)
{
    if (m->payload_nil) {
        retained_retire(retain_clear(r->retained, m->topic, m->topic_len));
        return 0;
    }
    msgpack_sbuffer_clear(&r->scratch);
    size_t olen = encode_msg_opts(&r->scratch, m->reply_to, m->reply_to_len, m->headers, true);
    /* The store adds what its trie nodes for the topic take (retain.h). */
    size_t cost = sizeof(struct retained) + sizeof(struct block) + m->body_len + olen;
    if (retain_bytes_if_set(r->retained, m->topic, m->topic_len, cost) > r->srv->conf->max_retained)
        return -PROTO_ERR_LIMIT;

    struct retained *rv = xmalloc(sizeof(*rv));
    rv->blk = block_new(m->body_len + olen);
    rv->body_len = (uint32_t)m->body_len;
    rv->opts_len = (uint32_t)olen;
    rv->refs = 1; /* the store's */
    memcpy(rv->blk->data, m->body, m->body_len);
    memcpy(rv->blk->data + m->body_len, r->scratch.data, olen);
    retained_retire(retain_set(r->retained, m->topic, m->topic_len, rv, cost));
    return 0;
}

/*
 * Retained replays.  A new subscription's matching values are collected at
 * once (each item holds a reference to its struct retained, so the store
 * may change meanwhile) and sent as the connection's outbound queue has
 * room: a replay larger than max_outbound waits for the output to drain
 * instead of making a fast reader a slow consumer.  An item whose value has
 * been replaced or cleared since is stale and skipped: the newer value went
 * to the subscription live, and the stale one must not follow it.  Replays
 * of one connection go out in the order the subscriptions were made.
 *
 * Bounds.  A stale item pins only its struct retained (the store frees the
 * block at once).  What the waiting lists hold, REPLAY_ITEM_COST per item,
 * is counted in the connection's replay_bytes and charged with its queued
 * output against max_outbound: a replay that would pass the limit is
 * refused under the slow_consumer policy, as a live message would be.  The
 * one exception is a connection's only waiting replay, which is let in
 * whatever its size, as one message larger than the limit goes out when
 * the queue is empty: its list is bounded by the store, and a client that
 * reads gets the whole of it.  So a client that subscribes again and again
 * without reading holds at most one replay's list beyond max_outbound.
 */
struct replay {
    struct replay *next;     /* in the connection's replays */
    struct sub *sub;         /* borrowed; unsubscribing cancels the replay */
    size_t n, at;            /* items, and the next to send */
    size_t charged;          /* added to the connection's replay_bytes */
    struct retained **items; /* owned array; each item holds a reference */
};

#define REPLAY_ITEM_COST (sizeof(struct retained *) + sizeof(struct retained))

static void replay_collect_cb(const char *topic, size_t len, void *value, void *arg)
{
    struct replay *rp = arg;
    struct retained *rv = value;

    (void)topic;
    (void)len;
    if ((rp->n & (rp->n - 1)) == 0) /* 0, 1, 2, 4, ...: grow by doubling */
        rp->items = xrealloc(rp->items, (rp->n ? 2 * rp->n : 1) * sizeof(*rp->items));
    rv->refs++;
    rp->items[rp->n++] = rv;
}

/* Frees RP, and gives back what it was charged to its connection. */
static void replay_free(struct replay *rp)
{
    rp->sub->conn->replay_bytes -= rp->charged;
    for (size_t i = 0; i < rp->n; i++)
        retained_unref(rp->items[i]);
    free(rp->items);
    free(rp);
}

/* Sends what fits of RP. True when all of it has gone. */
static bool replay_send(struct replay *rp)
{
    const struct sub *s = rp->sub;
    struct conn *c = s->conn;

    for (; rp->at < rp->n; rp->at++) {
        const struct retained *rv = rp->items[rp->at];
        if (rv->blk == NULL)
            continue; /* stale: replaced or cleared since */
        /* One value larger than the whole limit goes when the queue is empty. */
        if (!conn_has_room(c, s->prefix_len + rv->body_len + rv->opts_len) && conn_queued(c) > 0)
            return false;
        if (!conn_push_msg(c, s->prefix, s->prefix_len, rv->blk->data, rv->body_len,
                           rv->blk->data + rv->body_len, rv->opts_len, rv->blk))
            return false; /* closing: the replay goes with the subscription */
    }
    return true;
}

/*
 * Charges RP, which is to wait, to its connection C (see Bounds above).
 * False when it does not fit: the slow_consumer policy has been applied to
 * its values (dropped and counted, or C is closing) and RP is the caller's
 * to free.
 */
static bool replay_charge(struct conn *c, struct replay *rp)
{
    size_t cost = rp->n * REPLAY_ITEM_COST;

    if (c->replays != NULL &&
        conn_queued(c) + c->replay_bytes + cost > c->srv->conf->max_outbound) {
        conn_slow_consumer(c, rp->n - rp->at);
        return false;
    }
    if (rp->n > 1) /* the list waits: no room left for doubling */
        rp->items = xrealloc(rp->items, rp->n * sizeof(*rp->items));
    rp->charged = cost;
    c->replay_bytes += cost;
    return true;
}

void router_replay_retained(struct router *r, struct sub *s)
{
    struct conn *c = s->conn;

    if (s->queue != NULL || retain_count(r->retained) == 0)
        return;
    struct replay *rp = xcalloc(1, sizeof(*rp));
    rp->sub = s;
    retain_foreach_match(r->retained, s->pattern, strlen(s->pattern), replay_collect_cb, rp);
    if (rp->n == 0 || (c->replays == NULL && replay_send(rp)) || !replay_charge(c, rp)) {
        replay_free(rp);
        return;
    }
    struct replay **tail = &c->replays;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = rp;
    s->replay = rp;
}

void router_replay_continue(struct router *r, struct conn *c)
{
    struct replay *rp;

    (void)r;
    while ((rp = c->replays) != NULL && replay_send(rp)) {
        c->replays = rp->next;
        rp->sub->replay = NULL;
        replay_free(rp);
    }
}

/* Drops S's unfinished replay (S is going). */
static void replay_cancel(struct sub *s)
{
    struct replay **pp = &s->conn->replays;

    while (*pp != s->replay)
        pp = &(*pp)->next;
    *pp = s->replay->next;
    replay_free(s->replay);
    s->replay = NULL;
}

/* ------------------------------------------------------------- publish */

struct ready_arg {
    size_t len;
};

/* sublist_group_pick's predicate: a member with room for the message. */
static bool router_sub_ready(void *item, void *arg)
{
    const struct sub *s = item;
    const struct ready_arg *ra = arg;
    return conn_has_room(s->conn, s->prefix_len + ra->len);
}

static bool router_deliver(const struct sub *s, const struct router_msg *m)
{
    return conn_send_msg(s->conn, s->prefix, s->prefix_len, m->body, m->body_len, m->opts,
                         m->opts_len, m->block);
}

long router_publish(struct router *r, const struct router_msg *m)
{
    long n = 0;

    if (m->retain) {
        int rc = router_retain(r, m);
        if (rc < 0)
            return rc;
    }
    const struct sublist_result *res = sublist_match(r->subs, m->topic, m->topic_len);
    for (size_t i = 0; i < res->n_items; i++)
        n += router_deliver(res->items[i], m);
    if (res->n_groups > 0) {
        struct ready_arg ra = {.len = m->body_len + m->opts_len};
        for (size_t i = 0; i < res->n_groups; i++)
            n += router_deliver(sublist_group_pick(res->groups[i], router_sub_ready, &ra), m);
    }
    return n;
}

/* ---------------------------------------------------------- monitoring */

size_t router_sub_count(const struct router *r)
{
    return sublist_count(r->subs);
}

size_t router_retained_count(const struct router *r)
{
    return retain_count(r->retained);
}

uint64_t router_retained_bytes(const struct router *r)
{
    return retain_bytes(r->retained);
}
