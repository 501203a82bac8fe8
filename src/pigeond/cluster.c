/*
 * cluster.c - the backplane's core (see cluster.h; cluster_impl.h lists
 * its other files): the link's life, the heartbeat tick, messages out to
 * the nodes that want them and in from the others, and the public API.
 *
 * Messages out.  router_publish offers each local publication; one look in
 * the remote-interest index says which nodes want it and which takes each
 * queue group's turn (no look while the index is empty, nor for a topic
 * whose local match-cache entry remembers that it had no remote interest
 * as of the index's generation: sublist_result.memo); the message is appended,
 * as a record, to each such node's batch, and the flush job sends every
 * batch once per loop iteration (sooner when it reaches BPWIRE_BATCH_MAX):
 * one PUBLISH per node and iteration, whatever the number of messages,
 * within a window of bytes in flight (CLUSTER_WINDOW, below); past it
 * batches wait, and past CLUSTER_HOLD_AT waiting the publishers whose
 * messages go out stop being read (CONN_HOLD_BACKPLANE).  What is batched
 * or sent and not yet acknowledged is capped by max_pending: past it
 * messages for other nodes are dropped and counted, as they are while the
 * link is down.
 *
 * Messages in.  A batch on this node's channel is read record by record
 * (each bounded by the frame scanner) and each record routed here with
 * `remote` set: delivered to the local subscriptions, never sent on, its
 * queue groups served only where the sender gave this node their turn.
 * While the broker is over its memory budget, reading the backplane
 * pauses and Redis holds the rest (up to its own output limit for pub/sub
 * clients, past which it closes the connection and the link reconnects).
 *
 * The link's life.  Up: this node writes its snapshot and says hello,
 * finds the others and reads theirs, and loads the retained values; once
 * all is read it is synced (and says so in the log).  Down: batches are
 * dropped, held publishers released, reads under way forgotten, and the
 * log says messages for other nodes are dropped until Redis is back.
 * Every heartbeat: this node's snapshot lives on in Redis, "hb" goes to
 * the others, silent peers expire, and a node that stops hearing its own
 * heartbeats resets the link.
 */
#include "cluster.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>

#include "bpwire.h"
#include "clock.h"
#include "cluster_impl.h"
#include "config.h"
#include "conn.h"
#include "interest.h"
#include "redislink.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "sublist.h"
#include "xalloc.h"

#define CLUSTER_RESUME_MS 20 /* how soon paused reading looks at the budget again */
/*
 * Flow control toward Redis.  At most CLUSTER_WINDOW bytes are sent and not
 * yet answered; further batches wait here (and grow).  hiredis keeps unsent
 * commands in one buffer that it moves down after every partial write and
 * frees once empty, so a window keeps that buffer small and each write
 * whole, where megabytes queued there once cost a memmove per write and
 * fresh pages for every batch.  When what waits passes CLUSTER_HOLD_AT,
 * the publishers adding to it stop being read, until it falls below
 * CLUSTER_RELEASE_AT: TCP pushes back on them, as it would on a client of
 * a slow broker.  max_pending stays the hard cap (messages past it are
 * dropped and counted).
 */
#define CLUSTER_WINDOW       (1024 * 1024)
#define CLUSTER_HOLD_AT      (512 * 1024)
#define CLUSTER_RELEASE_AT   (128 * 1024)
#define CLUSTER_RECORD_SLACK (64 * 1024) /* a record beyond max_payload: opts, groups */
/* Room before each batch for the header of the PUBLISH that carries it (batch_frame). */
#define CLUSTER_HEADROOM 192

static void cluster_flush_cb(evutil_socket_t fd, short what, void *arg);
static void cluster_tick_cb(evutil_socket_t fd, short what, void *arg);
static void cluster_resume_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------ helpers ---- */

void cluster_schedule_flush(struct cluster *c)
{
    if (!c->flush_scheduled) {
        c->flush_scheduled = true;
        event_active(c->flush_ev, 0, 0);
    }
}

/* True when S (LEN bytes) may name a node or a prefix: 1..64 of A-Z a-z 0-9 _ - . */
bool cluster_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > CLUSTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* A new string, formatted. */
char *cluster_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* out of memory: the xalloc policy */
    return s;
}

/* A malformed message from the backplane: counted, and logged within a rate. */
void cluster_malformed(struct cluster *c, const char *what, const char *why)
{
    uint64_t suppressed;

    c->st.malformed++;
    if (log_ratelimit_ok(&c->rl_bad, (uint64_t)clock_now_ms(), &suppressed))
        log_warning(c->log, "backplane: dropped a malformed %s: %s%s", what, why,
                    suppressed ? " (and similar ones)" : "");
}

/* Sends a command of ARGC arguments given as NUL-terminated strings. */
int cluster_command(struct cluster *c, redislink_reply_fn fn, void *priv, int argc,
                    const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redislink_command(c->link, fn, priv, argc, argv, lens);
}

void cluster_held_clear(struct held_list *l, size_t *bytes)
{
    struct held_msg *h;

    while ((h = STAILQ_FIRST(l)) != NULL) {
        STAILQ_REMOVE_HEAD(l, link);
        free(h);
    }
    *bytes = 0;
}

void cluster_held_push(struct held_list *l, size_t *bytes, uint64_t seq, const char *data,
                       size_t len)
{
    struct held_msg *h = xmalloc(sizeof(*h) + len);

    h->seq = seq;
    h->len = len;
    memcpy(h->data, data, len);
    STAILQ_INSERT_TAIL(l, h, link);
    *bytes += len;
}

uint32_t cluster_max_record(const struct cluster *c)
{
    return c->srv->conf->max_payload + CLUSTER_RECORD_SLACK;
}

/* ------------------------------------------------------------ messages out ---- */

/* The interest_local_fn: true when a local member of (PATTERN, QUEUE) got the message. */
static bool local_group_cb(void *arg, const char *pattern, const char *queue)
{
    const struct sublist_result *res = arg;

    for (size_t i = 0; i < res->n_groups; i++) {
        const struct sub *s = sublist_group_item(res->groups[i], 0);
        if (strcmp(s->pattern, pattern) == 0 && strcmp(s->queue, queue) == 0)
            return true;
    }
    return false;
}

static size_t cluster_load(const struct cluster *c)
{
    return redislink_pending(c->link) + c->batched_bytes;
}

/* Redis is behind: FROM's connection stops being read until it catches up. */
static void cluster_hold(struct cluster *c, struct session *from)
{
    if (from == NULL || from->conn->state != CONN_OPEN || (from->conn->holds & CONN_HOLD_BACKPLANE))
        return;
    conn_hold(from->conn, CONN_HOLD_BACKPLANE);
    c->holding++;
    c->st.held++;
}

static void cluster_release_all(struct cluster *c)
{
    struct conn *conn;

    if (c->holding == 0)
        return;
    TAILQ_FOREACH (conn, &c->srv->loop.conns, link)
        if (conn->holds & CONN_HOLD_BACKPLANE)
            conn_release(conn, CONN_HOLD_BACKPLANE);
    c->holding = 0;
}

/* The groups of route RT given to target T, as pattern/queue pairs in c->groups; their count. */
static size_t target_groups(struct cluster *c, const struct interest_route *rt, uint32_t t)
{
    size_t n = 0;

    for (size_t i = 0; i < rt->n_picks; i++) {
        if (rt->picks[i].target != t)
            continue;
        if (2 * n + 2 > c->cap_groups) {
            c->cap_groups = c->cap_groups ? 2 * c->cap_groups : 16;
            c->groups = xrealloc(c->groups, c->cap_groups * sizeof(*c->groups));
        }
        c->groups[2 * n] = rt->picks[i].pattern;
        c->groups[2 * n + 1] = rt->picks[i].queue;
        n++;
    }
    return n;
}

static void batch_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    uint64_t msgs =
        (uint64_t)(uintptr_t)priv; /* the batch's message count, carried in the pointer */

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
        c->st.unreceived += msgs;
    if (!TAILQ_EMPTY(&c->batched) && redislink_pending(c->link) < CLUSTER_WINDOW)
        cluster_schedule_flush(c); /* batches waited for the window */
}

void cluster_batch_drop(struct cluster *c, struct cluster_peer *n)
{
    if (!n->in_batched)
        return;
    TAILQ_REMOVE(&c->batched, n, batch_link);
    n->in_batched = false;
    c->batched_bytes -= n->batch.size - CLUSTER_HEADROOM;
    c->st.dropped += n->batch_msgs;
    n->batch_msgs = 0;
    msgpack_sbuffer_clear(&n->batch);
}

/* Hands N's batch to Redis: one PUBLISH to its channel. */
/*
 * Writes the RESP header of PUBLISH CHANNEL <batch> into the headroom of
 * N's batch, and its closing CRLF after it: the command whole, in place.
 * Returns where it starts in n->batch.data.
 */
static size_t batch_frame(struct cluster_peer *n)
{
    char head[CLUSTER_HEADROOM];
    size_t blen = n->batch.size - CLUSTER_HEADROOM;
    int hlen = snprintf(head, sizeof(head), "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                        strlen(n->channel), n->channel, blen);

    assert(hlen > 0 && (size_t)hlen < sizeof(head)); /* a channel name is at most ~140 bytes */
    memcpy(n->batch.data + CLUSTER_HEADROOM - (size_t)hlen, head, (size_t)hlen);
    msgpack_sbuffer_write(&n->batch, "\r\n", 2);
    return CLUSTER_HEADROOM - (size_t)hlen;
}

static void batch_send(struct cluster *c, struct cluster_peer *n)
{
    size_t blen = n->batch.size - CLUSTER_HEADROOM;

    cluster_announce_flush(c); /* interest changes go first: see cluster_impl.h, Ordering */
    TAILQ_REMOVE(&c->batched, n, batch_link);
    n->in_batched = false;
    c->batched_bytes -= blen;
    size_t at = batch_frame(n);
    if (redislink_command_formatted(c->link, batch_reply_cb, (void *)(uintptr_t)n->batch_msgs,
                                    n->batch.data + at, n->batch.size - at) == 0) {
        c->st.msgs_out += n->batch_msgs;
        c->st.bytes_out += blen;
    } else {
        c->st.dropped += n->batch_msgs;
    }
    n->batch_msgs = 0;
    msgpack_sbuffer_clear(&n->batch);
    /* Written now, as conn.c writes before the loop sleeps, rather than on the next
     * writable event: that would cost every batch another trip through epoll, and
     * hiredis's buffer would hold them all. */
    redislink_flush_now(c->link);
}

/* Adds M to N's batch, with NG groups from c->groups. */
static void batch_add(struct cluster *c, struct cluster_peer *n, const struct router_msg *m,
                      size_t ng)
{
    size_t before = n->batch.size;

    if (!n->in_batched) {
        bpwire_batch_begin(&n->batch, CLUSTER_HEADROOM, c->node, c->nlen);
        TAILQ_INSERT_TAIL(&c->batched, n, batch_link);
        n->in_batched = true;
        before = CLUSTER_HEADROOM;
    }
    bpwire_record_write(&n->batch, 0, m->body, m->body_len, m->opts, m->opts_len, c->groups, ng);
    n->batch_msgs++;
    c->batched_bytes += n->batch.size - before;
    if (n->batch.size >= CLUSTER_HEADROOM + BPWIRE_BATCH_MAX &&
        redislink_pending(c->link) < CLUSTER_WINDOW)
        batch_send(c, n);
    else
        cluster_schedule_flush(c);
}

/* Sends M to the nodes of RT (at least one). */
static long forward_to(struct cluster *c, const struct router_msg *m,
                       const struct interest_route *rt)
{
    if (!c->up) {
        c->st.dropped += rt->n_targets;
        return 0;
    }
    size_t load = cluster_load(c);
    if (load + m->body_len + m->opts_len > c->max_pending) {
        c->st.dropped += rt->n_targets;
        cluster_hold(c, m->from);
        return 0;
    }
    if (c->batched_bytes > CLUSTER_HOLD_AT)
        cluster_hold(c, m->from);
    long subs = 0;
    for (uint32_t t = 0; t < rt->n_targets; t++) {
        size_t ng = rt->n_picks ? target_groups(c, rt, t) : 0;
        batch_add(c, rt->targets[t].owner, m, ng);
        subs += rt->targets[t].subs;
    }
    return subs;
}

/*
 * The look in the remote-interest index, apart from cluster_forward so that
 * the common case, no look at all, costs no more than its few compares.
 */
static __attribute__((noinline)) long forward_route(struct cluster *c, const struct router_msg *m,
                                                    const struct sublist_result *local,
                                                    uint32_t topic_hash, uint64_t generation)
{
    const struct interest_route *rt = interest_route(c->remote, m->topic, m->topic_len, topic_hash,
                                                     local_group_cb, (void *)local);
    if (rt->n_targets == 0) {
        if (local->memo != NULL)
            *local->memo = generation;
        return 0;
    }
    return forward_to(c, m, rt);
}

/* The checks made for every message: nothing to look up, or a look (forward_route). */
static inline long forward_checked(struct cluster *c, const struct router_msg *m,
                                   const struct sublist_result *local, uint32_t topic_hash)
{
    if (interest_entry_count(c->remote) == 0)
        return 0;
    /* The local match cache remembers that this topic had no remote interest, as of
     * the index's generation: then the message costs this compare, not a lookup. */
    uint64_t generation = interest_generation(c->remote);
    if (local->memo != NULL && *local->memo == generation)
        return 0;
    return forward_route(c, m, local, topic_hash, generation);
}

static __attribute__((noinline)) long forward_retained(struct cluster *c,
                                                       const struct router_msg *m,
                                                       const struct sublist_result *local,
                                                       uint32_t topic_hash)
{
    cluster_retained_publish(c, m);
    return forward_checked(c, m, local, topic_hash);
}

/* Only loads, compares and tail calls here, so that a message nobody elsewhere wants costs a
 * few instructions (no registers saved, no call). */
long cluster_forward(struct cluster *c, const struct router_msg *m,
                     const struct sublist_result *local, uint32_t topic_hash)
{
    if (m->retain)
        return forward_retained(c, m, local, topic_hash);
    return forward_checked(c, m, local, topic_hash);
}

static void cluster_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct cluster_peer *n;

    c->flush_scheduled = false;
    if (!c->up)
        return;
    cluster_announce_flush(c); /* before the batches: see cluster_impl.h, Ordering */
    while ((n = TAILQ_FIRST(&c->batched)) != NULL && redislink_pending(c->link) < CLUSTER_WINDOW)
        batch_send(c, n);
    if (c->holding > 0 && c->batched_bytes < CLUSTER_RELEASE_AT)
        cluster_release_all(c);
    redislink_flush_now(c->link); /* the deltas, when no batch went */
}

/* ------------------------------------------------------------- messages in ---- */

/* router_msg.group_ok: the record (ARG) gave this node the turn of (PATTERN, QUEUE). */
static bool record_group_ok(const void *arg, const char *pattern, const char *queue)
{
    const struct bpwire_record *rec = arg;
    struct mpread cur;
    const char *p, *q;
    uint32_t plen, qlen;

    mpread_init(&cur, rec->groups, rec->groups_len);
    while (bpwire_groups_next(&cur, &p, &plen, &q, &qlen))
        if (strlen(pattern) == plen && memcmp(pattern, p, plen) == 0 && strlen(queue) == qlen &&
            memcmp(queue, q, qlen) == 0)
            return true;
    return false;
}

/*
 * Backpressure: true while Redis should hold what it has for this node,
 * because the broker is over its memory budget or a stream's next commit
 * is full (store_gather_full).
 */
static bool cluster_must_wait(const struct cluster *c)
{
    return c->srv->budget.over || (c->srv->store != NULL && store_gather_full(c->srv->store));
}

static void message_cb(void *arg, const char *data, size_t len, void *priv)
{
    struct cluster *c = arg;
    struct mpread r;
    struct bpwire_record rec;
    const char *origin, *why;
    uint32_t olen;
    int rc;

    if (bpwire_batch_open(data, len, &r, &origin, &olen, &why) < 0) {
        cluster_malformed(c, "batch", why);
        return;
    }
    while ((rc = bpwire_record_read(&r, cluster_max_record(c), &rec, &why)) == 1) {
        struct router_msg m = {
            .topic = rec.topic,
            .topic_len = rec.topic_len,
            .body = rec.body,
            .body_len = rec.body_len,
            .opts = rec.opts,
            .opts_len = rec.opts_len,
            .payload_nil = rec.payload_nil,
            .remote = true,
            .group_ok = rec.n_groups ? record_group_ok : NULL,
            .group_arg = &rec,
        };
        uint32_t rlen;
        if (bpwire_record_reply_to(&rec, &m.reply_to, &rlen))
            m.reply_to_len = rlen; /* for allow_responses, on the responder's node */
        c->st.msgs_in++;
        c->st.bytes_in += rec.body_len;
        if (c->srv->store == NULL || !store_publish_remote(c->srv->store, &m))
            router_publish(c->srv->router, c->srv->conf, &m);
    }
    if (rc < 0)
        cluster_malformed(c, "message", why);
    if (cluster_must_wait(c) && !c->paused) {
        c->paused = true;
        redislink_pause_reading(c->link, true);
        struct timeval tv = {.tv_sec = 0, .tv_usec = CLUSTER_RESUME_MS * 1000};
        evtimer_add(c->resume_ev, &tv);
    }
}

static void cluster_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct timeval tv = {.tv_sec = 0, .tv_usec = CLUSTER_RESUME_MS * 1000};

    if (cluster_must_wait(c)) {
        evtimer_add(c->resume_ev, &tv);
        return;
    }
    c->paused = false;
    redislink_pause_reading(c->link, false);
}

/* ---------------------------------------------------------------- the link ---- */

void cluster_check_synced(struct cluster *c)
{
    if (!c->up || c->synced || !c->snap_done || !c->members_done || !c->retained_done ||
        c->fetches > 0)
        return;
    c->synced = true;
    if (!c->ever_synced)
        log_notice(c->log,
                   "backplane up: node %s on Redis %s; %zu other nodes, %zu remote interest "
                   "entries, %zu retained values",
                   c->node, redislink_address(c->link), hmap_count(&c->peers),
                   interest_entry_count(c->remote), router_retained_count(c->srv->router));
    else
        log_notice(c->log,
                   "backplane back after %.1f s: node %s on Redis %s; %zu other nodes, %zu remote "
                   "interest entries; %" PRIu64 " messages for other nodes were dropped meanwhile",
                   (double)(clock_now_ms() - c->down_ms) / 1000.0, c->node,
                   redislink_address(c->link), hmap_count(&c->peers),
                   interest_entry_count(c->remote), c->st.dropped - c->dropped_at_down);
    c->ever_synced = true;
}

static void cluster_link_up(void *arg)
{
    struct cluster *c = arg;

    c->up = true;
    c->synced = c->snap_done = c->members_done = c->retained_done = false;
    c->echo_ms = clock_now_ms();
    if (c->leaving)
        return; /* back while shutting down: messages go out, the node is not announced */
    cluster_announce_snapshot(c); /* first: what follows is ordered after it */
    cluster_peers_up(c);
    cluster_retained_load(c);
}

static void cluster_link_down(void *arg, const char *why)
{
    struct cluster *c = arg;
    struct cluster_peer *p;

    c->up = c->synced = false;
    c->down_ms = clock_now_ms();
    while ((p = TAILQ_FIRST(&c->batched)) != NULL)
        cluster_batch_drop(c, p);
    c->dropped_at_down = c->st.dropped;
    cluster_peers_down(c);
    cluster_retained_down(c);
    cluster_release_all(c);
    log_warning(c->log,
                "backplane down: Redis %s: %s; messages for other nodes are dropped (and counted) "
                "until it is back; local delivery goes on",
                redislink_address(c->link), why);
}

static const struct redislink_ops cluster_link_ops = {
    .up = cluster_link_up,
    .down = cluster_link_down,
};

static void cluster_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    int64_t now = clock_now_ms();

    if (!c->up || c->leaving)
        return;
    cluster_announce_heartbeat(c);
    if (!c->synced)
        return;
    if (now - c->echo_ms > (int64_t)c->node_timeout_ms) {
        redislink_fail(c->link, "this node's own heartbeats stopped coming back");
        return;
    }
    cluster_peers_expire(c, now);
}

/* ----------------------------------------------------------------- public ---- */

static void cluster_names(struct cluster *c, const struct config_cluster *cc)
{
    const char *p = cc->prefix != NULL ? cc->prefix : "pigeon";

    c->prefix = xstrdup(p);
    c->k_nodes = cluster_fmt("{%s}:nodes", p);
    c->k_node = cluster_fmt("{%s}:node:%s", p, c->node);
    c->k_retained = cluster_fmt("{%s}:retained", p);
    c->k_retained_seq = cluster_fmt("{%s}:retained:seq", p);
    c->ch_ctl = cluster_fmt("{%s}:ctl", p);
    c->ch_retained = cluster_fmt("{%s}:retained", p);
    c->ch_mine = cluster_fmt("%s:msg:{%s}", p, c->node);
}

/* This node's name: configured, or the host name and pid made into a valid name. */
static void cluster_set_node(struct cluster *c, const struct config_cluster *cc)
{
    char host[256] = "pigeond";

    if (cc->node != NULL) {
        snprintf(c->node, sizeof(c->node), "%s", cc->node);
    } else {
        if (gethostname(host, sizeof(host)) < 0)
            snprintf(host, sizeof(host), "pigeond");
        host[sizeof(host) - 1] = '\0';
        snprintf(c->node, sizeof(c->node), "%.50s-%ld", host, (long)getpid());
        for (char *p = c->node; *p; p++)
            if (!cluster_name_ok(p, 1))
                *p = '_';
    }
    c->nlen = strlen(c->node);
}

int cluster_new(struct server *srv, const struct config_cluster *cc, struct cluster **out)
{
    struct cluster *c = xcalloc(1, sizeof(*c));
    struct redislink_config lc = {
        .host = cc->redis_host,
        .port = cc->redis_port,
        .path = cc->redis_path,
        .user = cc->redis_user,
        .password = cc->redis_password,
        .timeout_ms = cc->node_timeout_ms > 2000 ? cc->node_timeout_ms : 2000,
    };

    c->srv = srv;
    c->log = &srv->log;
    c->heartbeat_ms = cc->heartbeat_ms;
    c->node_timeout_ms = cc->node_timeout_ms;
    c->max_pending = cc->max_pending;
    snprintf(c->ttl, sizeof(c->ttl), "%" PRIu32, cc->node_timeout_ms);
    cluster_set_node(c, cc);
    evutil_secure_rng_get_bytes(&c->instance_id, sizeof(c->instance_id));
    c->instance_id >>= 1; /* fits a signed 64-bit integer too, for any tool reading the hash */
    snprintf(c->instance, sizeof(c->instance), "%" PRIu64, c->instance_id);
    cluster_names(c, cc);
    TAILQ_INIT(&c->dirty);
    TAILQ_INIT(&c->batched);
    STAILQ_INIT(&c->retained_held);
    c->remote = interest_new();
    msgpack_sbuffer_init(&c->scratch);
    log_ratelimit_init(&c->rl_bad, 5, 10000);
    log_ratelimit_init(&c->rl_dup, 1, 10000);
    c->flush_ev = event_new(srv->loop.base, -1, 0, cluster_flush_cb, c);
    c->tick_ev = event_new(srv->loop.base, -1, EV_PERSIST, cluster_tick_cb, c);
    c->resume_ev = evtimer_new(srv->loop.base, cluster_resume_cb, c);
    struct timeval tv = {.tv_sec = c->heartbeat_ms / 1000,
                         .tv_usec = (c->heartbeat_ms % 1000) * 1000};
    if (c->flush_ev == NULL || c->tick_ev == NULL || c->resume_ev == NULL ||
        event_add(c->tick_ev, &tv) < 0) {
        log_error(c->log, "backplane: cannot create its events");
        cluster_free(c);
        return -1;
    }
    if (redislink_new(srv->loop.base, c->log, &lc, &cluster_link_ops, c, &c->link) < 0) {
        cluster_free(c);
        return -1;
    }
    redislink_subscribe(c->link, c->ch_ctl, cluster_peers_ctl_cb, NULL);
    redislink_subscribe(c->link, c->ch_retained, cluster_retained_message_cb, NULL);
    redislink_subscribe(c->link, c->ch_mine, message_cb, NULL);
    log_notice(c->log,
               "backplane: node %s, Redis %s%s, heartbeat %" PRIu32 " ms, node_timeout %" PRIu32
               " ms, max_pending %" PRIu64,
               c->node, redislink_address(c->link), cc->redis_password ? " (AUTH)" : "",
               c->heartbeat_ms, c->node_timeout_ms, c->max_pending);
    redislink_start(c->link);
    *out = c;
    return 0;
}

void cluster_shutdown(struct cluster *c)
{
    if (c == NULL || c->leaving)
        return;
    c->leaving = true;
    if (!c->up)
        return;
    cluster_announce_bye(c);
    /* Written now: the loop may stop before it polls again (best effort; else the
     * others expire this node after node_timeout). */
    redislink_flush_now(c->link);
}

void cluster_free(struct cluster *c)
{
    if (c == NULL)
        return;
    redislink_free(c->link); /* first: its callbacks (NULL replies) still find everything */
    c->link = NULL;
    cluster_peers_free(c);
    cluster_announce_free(c);
    cluster_retained_free(c);
    interest_free(c->remote);
    msgpack_sbuffer_destroy(&c->scratch);
    if (c->flush_ev != NULL)
        event_free(c->flush_ev);
    if (c->tick_ev != NULL)
        event_free(c->tick_ev);
    if (c->resume_ev != NULL)
        event_free(c->resume_ev);
    free(c->groups);
    free(c->prefix);
    free(c->k_nodes);
    free(c->k_node);
    free(c->k_retained);
    free(c->k_retained_seq);
    free(c->ch_ctl);
    free(c->ch_retained);
    free(c->ch_mine);
    free(c);
}

const char *cluster_node(const struct cluster *c)
{
    return c->node;
}

void cluster_stats(const struct cluster *c, struct cluster_stats *out)
{
    *out = c->st;
    out->up = c->up;
    out->nodes = hmap_count(&c->peers);
    out->remote_interest = interest_entry_count(c->remote);
    out->reconnects = redislink_reconnects(c->link);
    out->pending_bytes = cluster_load(c);
}
