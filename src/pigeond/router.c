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
    struct server *srv;          /* borrowed */
    struct sublist *subs;        /* owned */
    struct retain_store *retained; /* owned; values are struct retained */
    msgpack_sbuffer scratch;     /* builds a retained value's opts */
};

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
        retained_free(retain_clear(r->retained, m->topic, m->topic_len));
        return 0;
    }
    msgpack_sbuffer_clear(&r->scratch);
    size_t olen = encode_msg_opts(&r->scratch, m->reply_to, m->reply_to_len, m->headers, true);
    size_t cost = sizeof(struct retained) + sizeof(struct block) + m->body_len + olen +
                  m->topic_len;
    uint64_t held = router_retained_bytes(r) - retain_cost(r->retained, m->topic, m->topic_len);
    if (held + cost > r->srv->conf->max_retained)
        return -PROTO_ERR_LIMIT;

    struct retained *rv = xmalloc(sizeof(*rv));
    rv->blk = block_new(m->body_len + olen);
    rv->body_len = (uint32_t)m->body_len;
    rv->opts_len = (uint32_t)olen;
    memcpy(rv->blk->data, m->body, m->body_len);
    memcpy(rv->blk->data + m->body_len, r->scratch.data, olen);
    retained_free(retain_set(r->retained, m->topic, m->topic_len, rv, cost));
    return 0;
}

static void router_replay_one_cb(const char *topic, size_t len, void *value, void *arg)
{
    const struct sub *s = arg;
    const struct retained *rv = value;

    conn_send_msg(s->conn, s->prefix, s->prefix_len, rv->blk->data, rv->body_len,
                  rv->blk->data + rv->body_len, rv->opts_len, rv->blk);
}

void router_replay_retained(struct router *r, const struct sub *s)
{
    if (s->queue != NULL || retain_count(r->retained) == 0)
        return;
    retain_foreach_match(r->retained, s->pattern, strlen(s->pattern), router_replay_one_cb,
                         (void *)s);
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
