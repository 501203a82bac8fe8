/*
 * router.c - from a publication to its subscribers (see router.h).
 *
 * The per-message path is: one sublist_match (a cache hit is one hash
 * lookup), then for each subscription one session_deliver, which copies or
 * references the body into the subscriber's output.  Nothing here
 * allocates per message; only retaining a value does.
 *
 * A retained value is kept in one block: the body (topic and payload, as
 * published) followed by the opts map its replays carry, which always says
 * retained: true and keeps the publication's reply_to and headers.  The
 * store owns it; a replay sends it the moment it is offered (the output
 * takes its own reference to the block), so nothing else ever holds one.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "block.h"
#include "cluster.h"
#include "config.h"
#include "hmap.h"
#include "proto.h"
#include "retain.h"
#include "session.h"
#include "sublist.h"
#include "xalloc.h"

/* Topics whose match result the index remembers. */
#define ROUTER_MATCH_CACHE 4096

/*
 * What one subscription is charged in the memory budget beyond its struct
 * and strings: its index entry and its share of trie nodes and hash slots,
 * measured at about 170 bytes for exact patterns and more for wildcards
 * (docs/performance.md has 314 and 394 bytes per subscription in all).
 */
#define ROUTER_SUB_INDEX_COST 256

struct router {
    struct server *srv;            /* borrowed */
    struct sublist *subs;          /* owned */
    struct retain_store *retained; /* owned; values are struct retained */
    msgpack_sbuffer scratch;       /* builds a retained value's opts */
    uint64_t sub_bytes;            /* charged for the subscriptions (router_sub_bytes) */
    struct cluster *cluster;       /* borrowed; the backplane, or NULL standalone */
};

/* A retained value: owned by the store. */
struct retained {
    struct block *blk; /* body then opts */
    uint32_t body_len;
    uint32_t opts_len;
};

struct router *router_new(struct server *srv)
{
    struct router *r = xcalloc(1, sizeof(*r));
    r->srv = srv;
    r->subs = sublist_new(ROUTER_MATCH_CACHE);
    r->retained = retain_new();
    msgpack_sbuffer_init(&r->scratch);
    return r;
}

/* The store let go of VALUE (replaced, cleared, or the store freed). NULL is fine. */
static void retained_free(void *value)
{
    struct retained *rv = value;
    if (rv != NULL) {
        block_unref(rv->blk);
        free(rv);
    }
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    sublist_free(r->subs);
    retain_free(r->retained, retained_free);
    msgpack_sbuffer_destroy(&r->scratch);
    free(r);
}

/* ------------------------------------------------------- subscriptions */

static uint64_t sub_charge(const struct sub *sub)
{
    return sizeof(*sub) + strlen(sub->pattern) + 1 + (sub->queue ? strlen(sub->queue) + 1 : 0) +
           ROUTER_SUB_INDEX_COST;
}

void router_set_cluster(struct router *r, struct cluster *c)
{
    r->cluster = c;
}

void router_interest_hold(struct router *r, const char *pattern)
{
    if (r->cluster != NULL)
        cluster_interest_add(r->cluster, pattern, NULL);
}

void router_interest_release(struct router *r, const char *pattern)
{
    if (r->cluster != NULL)
        cluster_interest_remove(r->cluster, pattern, NULL);
}

void router_subscribe(struct router *r, struct sub *sub)
{
    sub->entry = sublist_insert(r->subs, sub->pattern, strlen(sub->pattern), sub->queue,
                                sub->queue ? strlen(sub->queue) : 0, sub);
    r->sub_bytes += sub_charge(sub);
    if (r->cluster != NULL)
        cluster_interest_add(r->cluster, sub->pattern, sub->queue);
}

void router_unsubscribe(struct router *r, struct sub *sub)
{
    sublist_remove(r->subs, sub->entry);
    sub->entry = NULL;
    r->sub_bytes -= sub_charge(sub);
    if (r->cluster != NULL)
        cluster_interest_remove(r->cluster, sub->pattern, sub->queue);
}

/* ------------------------------------------------------------ retained */

/* Keeps BODY then OPTS as TOPIC's retained value. 0, or -PROTO_ERR_LIMIT. */
static int retained_put(struct router *r, const struct config *conf, const char *topic, size_t tlen,
                        const uint8_t *body, size_t blen, const uint8_t *opts, size_t olen)
{
    /* The store adds what its trie nodes for the topic take (retain.h). */
    size_t cost = sizeof(struct retained) + sizeof(struct block) + blen + olen;
    if (retain_bytes_if_set(r->retained, topic, tlen, cost) > conf->max_retained)
        return -PROTO_ERR_LIMIT;

    struct retained *rv = xmalloc(sizeof(*rv));
    rv->blk = block_new(blen + olen);
    rv->body_len = (uint32_t)blen;
    rv->opts_len = (uint32_t)olen;
    memcpy(rv->blk->data, body, blen);
    memcpy(rv->blk->data + blen, opts, olen);
    retained_free(retain_set(r->retained, topic, tlen, rv, cost));
    return 0;
}

/* Stores or clears M's topic's retained value. 0, or -PROTO_ERR_LIMIT. */
static int router_retain(struct router *r, const struct config *conf, const struct router_msg *m)
{
    if (m->payload_nil) {
        retained_free(retain_clear(r->retained, m->topic, m->topic_len));
        return 0;
    }
    msgpack_sbuffer_clear(&r->scratch);
    size_t olen = encode_msg_opts(&r->scratch, m->reply_to, m->reply_to_len, m->headers, true);
    return retained_put(r, conf, m->topic, m->topic_len, m->body, m->body_len,
                        (const uint8_t *)r->scratch.data, olen);
}

int router_store_retained(struct router *r, const struct config *conf, const char *topic,
                          size_t tlen, const uint8_t *body, size_t blen, const uint8_t *opts,
                          size_t olen)
{
    if (body == NULL) {
        retained_free(retain_clear(r->retained, topic, tlen));
        return 0;
    }
    const struct retained *old = retain_get(r->retained, topic, tlen);
    if (old != NULL && old->body_len == blen && old->opts_len == olen &&
        memcmp(old->blk->data, body, blen) == 0 && memcmp(old->blk->data + blen, opts, olen) == 0)
        return 0; /* our own change coming back, or one we had */
    return retained_put(r, conf, topic, tlen, body, blen, opts, olen);
}

bool router_retained_get(const struct router *r, const char *topic, size_t tlen,
                         const uint8_t **body, size_t *blen, const uint8_t **opts, size_t *olen)
{
    const struct retained *rv = retain_get(r->retained, topic, tlen);

    if (rv == NULL)
        return false;
    *body = rv->blk->data;
    *blen = rv->body_len;
    *opts = rv->blk->data + rv->body_len;
    *olen = rv->opts_len;
    return true;
}

struct foreach_arg {
    void (*fn)(const char *topic, size_t len, void *arg);
    void *arg;
};

static void retained_foreach_cb(const char *topic, size_t len, void *value, void *arg)
{
    const struct foreach_arg *fa = arg;
    fa->fn(topic, len, fa->arg);
}

void router_retained_foreach(struct router *r, void (*fn)(const char *topic, size_t len, void *arg),
                             void *arg)
{
    struct foreach_arg fa = {.fn = fn, .arg = arg};
    retain_foreach_match(r->retained, ">", 1, retained_foreach_cb, &fa);
}

struct block *router_retained_ref(struct router *r, const char *topic, size_t len,
                                  uint32_t *body_len, uint32_t *opts_len)
{
    struct retained *rv = retain_get(r->retained, topic, len);

    if (rv == NULL)
        return NULL;
    *body_len = rv->body_len;
    *opts_len = rv->opts_len;
    return block_ref(rv->blk);
}

int router_retained_put(struct router *r, const struct config *conf, const char *topic, size_t len,
                        struct block *blk, uint32_t body_len, uint32_t opts_len, bool limit)
{
    if (blk == NULL) {
        retained_free(retain_clear(r->retained, topic, len));
        return 0;
    }
    size_t cost = sizeof(struct retained) + sizeof(struct block) + body_len + opts_len;
    if (limit && retain_bytes_if_set(r->retained, topic, len, cost) > conf->max_retained)
        return -1;
    struct retained *rv = xmalloc(sizeof(*rv));
    rv->blk = block_ref(blk);
    rv->body_len = body_len;
    rv->opts_len = opts_len;
    retained_free(retain_set(r->retained, topic, len, rv, cost));
    return 0;
}

bool router_has_retained(const struct router *r)
{
    return retain_count(r->retained) > 0;
}

void router_replay_begin(struct router *r, struct retain_cursor *cur)
{
    retain_cursor_init(r->retained, cur);
}

void router_replay_end(struct router *r, struct retain_cursor *cur)
{
    retain_cursor_release(r->retained, cur);
}

static bool replay_offer_cb(void *value, void *arg)
{
    struct retained *rv = value;

    return session_offer_retained(arg, rv->blk, rv->body_len, rv->opts_len);
}

int router_replay_step(struct router *r, struct retain_cursor *cur, struct sub *sub, size_t *budget)
{
    return retain_cursor_walk(r->retained, cur, sub->pattern, strlen(sub->pattern), budget,
                              replay_offer_cb, sub);
}

/* ------------------------------------------------------------- publish */

/* sublist_group_pick's predicate: a member that would take the message. */
static bool router_sub_ready(void *item, void *arg)
{
    return session_accepts(item, arg);
}

/* True when M, from the backplane, is for queue group G here (the sender gave us its turn). */
static bool router_group_allowed(const struct router_msg *m, struct sublist_group *g)
{
    const struct sub *any = sublist_group_item(g, 0);
    return m->group_ok != NULL && m->group_ok(m->group_arg, any->pattern, any->queue);
}

long router_publish(struct router *r, const struct config *conf, const struct router_msg *m)
{
    long n = 0;

    if (m->retain) {
        int rc = router_retain(r, conf, m);
        if (rc < 0)
            return rc;
    }
    /* Once, for both indexes. */
    uint32_t hash = m->hashed ? m->topic_hash : hmap_hash(m->topic, m->topic_len);
    const struct sublist_result *res = sublist_match_h(r->subs, m->topic, m->topic_len, hash);
    for (size_t i = 0; i < res->n_items; i++)
        n += session_deliver(res->items[i], m);
    for (size_t i = 0; i < res->n_groups; i++)
        if (!m->remote || router_group_allowed(m, res->groups[i]))
            n +=
                session_deliver(sublist_group_pick(res->groups[i], router_sub_ready, (void *)m), m);
    /* Deliveries never change the index (closing is deferred), so RES is still good here. */
    if (r->cluster != NULL && !m->remote)
        n += cluster_forward(r->cluster, m, res, hash);
    return n;
}

/* ---------------------------------------------------------- monitoring */

size_t router_sub_count(const struct router *r)
{
    return sublist_count(r->subs);
}

uint64_t router_sub_bytes(const struct router *r)
{
    return r->sub_bytes;
}

size_t router_retained_count(const struct router *r)
{
    return retain_count(r->retained);
}

uint64_t router_retained_bytes(const struct router *r)
{
    return retain_bytes(r->retained);
}
