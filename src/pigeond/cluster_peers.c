/*
 * cluster_peers.c - the other nodes of the cluster, followed (see
 * cluster_impl.h).
 *
 * A peer is found by its name in {P}:nodes when the link comes up, or by
 * its first message on the control channel.  Its interest is read whole
 * from its snapshot (HGETALL) and then followed through its deltas, each
 * applied only on top of the version before it; a gap, a heartbeat that
 * shows a higher version, or a new instance (the node restarted) makes the
 * node read the snapshot again, holding the deltas that come meanwhile and
 * applying those that are newer on top of it.  A peer silent for
 * node_timeout is dropped with all its interest; one that says bye is
 * dropped at once; one whose snapshot is gone from Redis is forgotten.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bpwire.h"
#include "clock.h"
#include "cluster_impl.h"
#include "interest.h"
#include "xalloc.h"

#define CLUSTER_DELTAS_MAX (1024 * 1024) /* bytes of deltas held while a snapshot is read */
#define CLUSTER_EXPIRE_MAX 64            /* peers dropped per tick, at most */

static void peer_fetch(struct cluster *c, struct cluster_peer *p);

/* ----------------------------------------------------------- the table ---- */

static struct cluster_peer *peer_find(struct cluster *c, const char *name, size_t len)
{
    return hmap_get(&c->peers, name, len);
}

static struct cluster_peer *peer_new(struct cluster *c, const char *name, size_t len)
{
    struct cluster_peer *n = xcalloc(1, sizeof(*n));

    n->name = xstrndup(name, len);
    n->nlen = len;
    n->channel = cluster_fmt("%s:msg:{%s}", c->prefix, n->name);
    n->in = interest_node_add(c->remote, n);
    n->last_seen_ms = clock_now_ms();
    STAILQ_INIT(&n->deltas);
    msgpack_sbuffer_init(&n->batch);
    hmap_put(&c->peers, n->name, n->nlen, n);
    return n;
}

static void peer_free(struct cluster *c, struct cluster_peer *n)
{
    cluster_batch_drop(c, n);
    interest_node_remove(c->remote, n->in);
    cluster_held_clear(&n->deltas, &n->deltas_bytes);
    msgpack_sbuffer_destroy(&n->batch);
    free(n->channel);
    free(n->name);
    free(n);
}

static void peer_remove(struct cluster *c, struct cluster_peer *n)
{
    hmap_remove(&c->peers, n->name, n->nlen);
    peer_free(c, n);
}

/* ------------------------------------------------------------ interest ---- */

/* Applies one change of N's; -1 when it is malformed. */
static int peer_change(struct cluster *c, struct cluster_peer *n, const char *field, size_t flen,
                       uint32_t count)
{
    if (interest_set_field(c->remote, n->in, field, flen, count) < 0) {
        cluster_malformed(c, "interest entry", "not a pattern, or a bad queue group");
        return -1;
    }
    return 0;
}

/*
 * Applies the delta D to N when it follows what N has; fetches N's
 * snapshot (holding D) when it does not.
 */
static void peer_delta(struct cluster *c, struct cluster_peer *n, const struct bpwire_ctl *d,
                       const char *raw, size_t len)
{
    if (d->instance == n->instance && d->version <= n->version)
        return; /* already in what we have */
    if (n->fetching || d->instance != n->instance || d->version != n->version + 1) {
        if (n->deltas_bytes + len > CLUSTER_DELTAS_MAX) {
            cluster_held_clear(&n->deltas, &n->deltas_bytes);
            n->fetch_again = true;
        } else {
            cluster_held_push(&n->deltas, &n->deltas_bytes, 0, raw, len);
        }
        peer_fetch(c, n);
        return;
    }
    struct mpread cur = d->changes;
    const char *field;
    uint32_t flen, count;
    for (uint32_t i = 0; i < d->n_changes; i++) {
        if (!bpwire_change_next(&cur, &field, &flen, &count)) {
            cluster_malformed(c, "interest change", "bad field or count");
            break;
        }
        peer_change(c, n, field, flen, count);
    }
    n->version = d->version;
}

/* Replaces N's entries with the snapshot R (an HGETALL reply); false when R is empty. */
static bool peer_snapshot(struct cluster *c, struct cluster_peer *n, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return false;
    interest_node_clear(c->remote, n->in);
    n->version = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (f->len > 0 && f->str[0] == ' ') {
            if (strcmp(f->str, " instance") == 0)
                n->instance = strtoull(v->str, NULL, 10);
            else if (strcmp(f->str, " version") == 0)
                n->version = strtoull(v->str, NULL, 10);
            continue;
        }
        unsigned long count = strtoul(v->str, NULL, 10);
        peer_change(c, n, f->str, f->len, count > UINT32_MAX ? UINT32_MAX : (uint32_t)count);
    }
    return true;
}

/* Applies the changes N received during its fetch, in order. */
static void peer_replay_deltas(struct cluster *c, struct cluster_peer *n)
{
    struct held_list todo = STAILQ_HEAD_INITIALIZER(todo);
    struct held_msg *h;
    struct bpwire_ctl d;
    const char *why;

    STAILQ_CONCAT(&todo, &n->deltas); /* peer_delta may hold more in n->deltas meanwhile */
    n->deltas_bytes = 0;
    while ((h = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        if (bpwire_ctl_read(h->data, h->len, &d, &why) == 0)
            peer_delta(c, n, &d, h->data, h->len);
        free(h);
    }
}

static void fetch_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    struct cluster_peer *n = peer_find(c, priv, strlen(priv));

    free(priv);
    c->fetches--;
    if (n == NULL || !n->fetching) {
        cluster_check_synced(c);
        return;
    }
    n->fetching = false;
    if (r == NULL) {
        cluster_held_clear(&n->deltas, &n->deltas_bytes);
        return; /* the link went down: every node is read again when it is back */
    }
    if (!peer_snapshot(c, n, r)) {
        /* No snapshot: the node is gone, and the set still named it. */
        const char *srem[] = {"SREM", c->k_nodes, n->name};
        cluster_command(c, NULL, NULL, 3, srem);
        log_info(c->log, "backplane: node %s has no interest in Redis; forgetting it", n->name);
        peer_remove(c, n);
    } else if (n->fetch_again) {
        n->fetch_again = false;
        cluster_held_clear(&n->deltas, &n->deltas_bytes);
        peer_fetch(c, n);
    } else {
        peer_replay_deltas(c, n);
    }
    cluster_check_synced(c);
}

/* Reads N's snapshot (HGETALL), unless a read is under way or the link is not up. */
static void peer_fetch(struct cluster *c, struct cluster_peer *n)
{
    if (n->fetching || !c->up)
        return;
    char *key = cluster_fmt("{%s}:node:%s", c->prefix, n->name);
    const char *argv[] = {"HGETALL", key};
    /* The reply finds the node by name: it may be gone by then. */
    if (cluster_command(c, fetch_reply_cb, xstrdup(n->name), 2, argv) == 0) {
        n->fetching = true;
        c->fetches++;
    }
    free(key);
}

static void members_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || !cluster_name_ok(e->str, e->len) ||
                (e->len == c->nlen && memcmp(e->str, c->node, c->nlen) == 0))
                continue;
            struct cluster_peer *n = peer_find(c, e->str, e->len);
            peer_fetch(c, n != NULL ? n : peer_new(c, e->str, e->len));
        }
    }
    c->members_done = true;
    cluster_check_synced(c);
}

/* ----------------------------------------------------- control channel ---- */

/* A control message that names this node. */
static void ctl_self(struct cluster *c, const struct bpwire_ctl *m)
{
    uint64_t suppressed;

    if (m->instance == c->instance_id) {
        if (m->kind == BPWIRE_HB)
            c->echo_ms = clock_now_ms();
        return;
    }
    if (log_ratelimit_ok(&c->rl_dup, (uint64_t)clock_now_ms(), &suppressed))
        log_error(c->log,
                  "backplane: another pigeond also calls itself node %s: give each node a "
                  "name of its own ([cluster] node)",
                  c->node);
}

void cluster_peers_ctl_cb(void *arg, const char *data, size_t len, void *priv)
{
    struct cluster *c = arg;
    struct bpwire_ctl m;
    const char *why;

    if (bpwire_ctl_read(data, len, &m, &why) < 0) {
        cluster_malformed(c, "control message", why);
        return;
    }
    if (!cluster_name_ok(m.node, m.node_len)) {
        cluster_malformed(c, "control message", "bad node name");
        return;
    }
    if (m.node_len == c->nlen && memcmp(m.node, c->node, c->nlen) == 0) {
        ctl_self(c, &m);
        return;
    }
    struct cluster_peer *n = peer_find(c, m.node, m.node_len);
    if (m.kind == BPWIRE_BYE) {
        if (n != NULL && n->instance == m.instance) {
            log_notice(c->log, "backplane: node %s left; %zu interest entries dropped", n->name,
                       interest_node_entries(n->in));
            peer_remove(c, n);
        }
        return;
    }
    bool known = n != NULL;
    if (!known) {
        n = peer_new(c, m.node, m.node_len);
        log_info(c->log, "backplane: node %s joined", n->name);
    }
    n->last_seen_ms = clock_now_ms();
    switch (m.kind) {
    case BPWIRE_HELLO:
        peer_fetch(c, n);
        break;
    case BPWIRE_HB:
        if (!known || m.instance != n->instance || m.version > n->version)
            peer_fetch(c, n);
        break;
    case BPWIRE_DELTA:
        peer_delta(c, n, &m, data, len);
        break;
    case BPWIRE_BYE:
        break;
    }
}

/* ---------------------------------------------------- the link's life ---- */

void cluster_peers_up(struct cluster *c)
{
    size_t pos = 0;
    struct cluster_peer *p;
    const char *smembers[] = {"SMEMBERS", c->k_nodes};

    cluster_command(c, members_reply_cb, NULL, 2, smembers);
    while ((p = hmap_next(&c->peers, &pos, NULL, NULL)) != NULL) {
        p->last_seen_ms = clock_now_ms(); /* not heard while the link was down: a fresh start */
        peer_fetch(c, p);
    }
}

void cluster_peers_down(struct cluster *c)
{
    size_t pos = 0;
    struct cluster_peer *p;

    while ((p = hmap_next(&c->peers, &pos, NULL, NULL)) != NULL) {
        p->fetching = p->fetch_again = false;
        cluster_held_clear(&p->deltas, &p->deltas_bytes);
    }
    c->fetches = 0;
}

void cluster_peers_expire(struct cluster *c, int64_t now)
{
    size_t pos = 0, n_gone = 0;
    struct cluster_peer *p, *gone[CLUSTER_EXPIRE_MAX];

    while ((p = hmap_next(&c->peers, &pos, NULL, NULL)) != NULL && n_gone < CLUSTER_EXPIRE_MAX)
        if (now - p->last_seen_ms > (int64_t)c->node_timeout_ms)
            gone[n_gone++] = p;
    for (size_t i = 0; i < n_gone; i++) {
        log_notice(c->log,
                   "backplane: node %s silent for %" PRId64 " ms; its %zu interest entries expire",
                   gone[i]->name, now - gone[i]->last_seen_ms, interest_node_entries(gone[i]->in));
        peer_remove(c, gone[i]);
    }
}

void cluster_peers_free(struct cluster *c)
{
    size_t pos = 0;
    struct cluster_peer *p;

    while ((p = hmap_next(&c->peers, &pos, NULL, NULL)) != NULL)
        peer_free(c, p);
    hmap_release(&c->peers);
}
