/*
 * cluster.c - the backplane protocol: this node's interest announced, the
 * other nodes' interest followed, messages batched to the nodes that want
 * them and routed when they come in, retained values kept cluster-wide
 * (see cluster.h; docs/scale-out.md has the design).
 *
 * Layers, top-down: names and helpers; local interest (what this node
 * announces); remote nodes (what the others announce, fetched and
 * followed); the control channel; retained values; messages out (routing,
 * batches, backpressure) and in; the link's life (up, synced, down), the
 * heartbeat tick; the public API.
 *
 * Redis keys and channels, with P the configured prefix.  Keys share the
 * hash tag {P}, so the scripts below touch one slot on a Redis Cluster;
 * each node's message channel carries its own name as hash tag, so on a
 * Redis Cluster with sharded pub/sub each node's traffic lands on one
 * shard (docs/scale-out.md):
 *
 *   {P}:nodes            set      the names of live (or recently live) nodes
 *   {P}:node:NAME        hash     NAME's interest: field -> count, and the
 *                                 meta fields " instance" and " version"
 *                                 (a leading space: no pattern has one);
 *                                 expires node_timeout after its last heartbeat
 *   {P}:retained         hash     topic -> retained record (bpwire.h)
 *   {P}:retained:seq     string   the number of the last retained change
 *   {P}:ctl              channel  hb, hello, delta, bye (bpwire.h)
 *   {P}:retained         channel  seq + record, for each retained change
 *   P:msg:{NAME}         channel  batches of messages for node NAME
 *
 * Ordering.  Everything a node sends goes down one connection (the link's
 * command connection), and everything it hears comes up one (the
 * subscriber connection), so Redis keeps the order between them: an
 * interest change announced before a message is applied by every node
 * before that message arrives.  The flush job sends interest changes
 * before batches for that reason: a requester that subscribes to its
 * inbox and then publishes a request is known to want the reply by the
 * time the responder's node sees the request.
 *
 * Versions.  A node numbers its interest changes (its snapshot carries
 * the number it has reached).  Others apply change v + 1 on top of v,
 * ignore what they already have, and fetch the snapshot again on a gap,
 * on a heartbeat that shows a higher number, or on a new instance (the
 * node restarted); changes that arrive while a fetch is under way wait,
 * and are applied on top of it.
 */
#include "cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>

#include "bpwire.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "encode.h"
#include "hmap.h"
#include "interest.h"
#include "redislink.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "sublist.h"
#include "xalloc.h"

#define CLUSTER_NAME_MAX     64
#define CLUSTER_CHUNK        512           /* changes per delta, fields per HSET */
#define CLUSTER_DELTAS_MAX   (1024 * 1024) /* bytes of changes kept while a fetch is under way */
#define CLUSTER_RETAIN_BUF   (8 * 1024 * 1024) /* bytes of retained changes kept while loading */
#define CLUSTER_RESUME_MS    20          /* how soon paused reading looks at the budget again */
#define CLUSTER_RECORD_SLACK (64 * 1024) /* a record beyond max_payload: opts, groups */

/* Applies a delta's changes and publishes it, unless the hash is gone (then 0: resync). */
static const char DELTA_SCRIPT[] = "local key = KEYS[1]\n"
                                   "if redis.call('EXISTS', key) == 0 then return 0 end\n"
                                   "for i = 5, #ARGV, 2 do\n"
                                   "  if ARGV[i + 1] == '0' then redis.call('HDEL', key, ARGV[i])\n"
                                   "  else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end\n"
                                   "end\n"
                                   "redis.call('HSET', key, ' version', ARGV[4])\n"
                                   "redis.call('PEXPIRE', key, ARGV[1])\n"
                                   "redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
                                   "return 1\n";

/* Numbers a retained change, applies it to the hash and broadcasts it: one order for all. */
static const char RETAIN_SCRIPT[] =
    "local seq = redis.call('INCR', KEYS[2])\n"
    "if ARGV[3] == '1' then redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "else redis.call('HSET', KEYS[1], ARGV[2], ARGV[4]) end\n"
    "redis.call('PUBLISH', ARGV[1], cmsgpack.pack(seq) .. ARGV[4])\n"
    "return seq\n";

/* A copy of a message held for later: a delta during a fetch, a retained change during a load. */
struct held_msg {
    STAILQ_ENTRY(held_msg) link;
    uint64_t seq; /* retained changes: the number Redis gave it */
    size_t len;
    char data[];
};
STAILQ_HEAD(held_list, held_msg);

/* One interest this node announces: a field ("pattern" or "pattern queue") and its count. */
struct linterest {
    TAILQ_ENTRY(linterest) dirty_link; /* in cluster.dirty while changed and not announced */
    uint32_t count;
    bool dirty;
    uint16_t flen;
    char field[]; /* the map key */
};
TAILQ_HEAD(linterest_list, linterest);

/* Another node. */
struct cnode {
    TAILQ_ENTRY(cnode) batch_link; /* in cluster.batched while its batch has records */
    struct interest_node *in;      /* its entries in the remote-interest index; owned by it */
    char *name;                    /* owned; the map key */
    size_t nlen;
    char *channel; /* owned: where its messages go */
    uint64_t instance, version;
    int64_t last_seen_ms;
    bool fetching;           /* its snapshot is being read */
    bool fetch_again;        /* read it again once this read is done */
    struct held_list deltas; /* changes that came during the fetch */
    size_t deltas_bytes;
    msgpack_sbuffer batch; /* messages for it, this loop iteration */
    uint32_t batch_msgs;
    bool in_batched;
};
TAILQ_HEAD(cnode_list, cnode);

/* A retained change made while the link was down, sent once it is back. */
struct outboxed {
    char *topic; /* owned; the map key */
    size_t tlen;
    size_t len;
    uint8_t record[];
};

struct cluster {
    struct server *srv; /* borrowed */
    struct logger *log; /* borrowed: the server's */
    struct redislink *link;
    char node[CLUSTER_NAME_MAX + 1];
    size_t nlen;
    char instance[24]; /* decimal, as stored in the snapshot */
    uint64_t instance_id;
    uint64_t version; /* of this node's interest */
    /* Redis names (see the top). */
    char *k_nodes, *k_node, *k_retained, *k_retained_seq, *ch_ctl, *ch_retained, *ch_mine;
    char *prefix;
    uint32_t heartbeat_ms, node_timeout_ms;
    uint64_t max_pending;
    char ttl[16]; /* node_timeout in ms, as Redis takes it */

    /* Local interest. */
    struct hmap local; /* field -> struct linterest */
    struct linterest_list dirty;

    /* Remote nodes and their interest. */
    struct hmap nodes; /* name -> struct cnode */
    struct interest *remote;
    struct cnode_list batched; /* nodes with a batch to send */
    size_t batched_bytes;
    const char **groups; /* scratch: a record's groups, pattern then queue */
    size_t cap_groups;

    /* Retained values. */
    uint64_t retained_seq; /* the number of the last change applied */
    bool retained_loading;
    bool retained_reload; /* the load missed changes: load again */
    struct held_list retained_held;
    size_t retained_held_bytes;
    struct hmap outbox; /* topic -> struct outboxed */
    size_t outbox_bytes;

    /* The link's life. */
    bool up;     /* the link is up */
    bool synced; /* and this node has announced itself and read the others */
    bool snap_done, members_done, retained_done;
    uint32_t fetches; /* snapshots being read */
    bool ever_synced;
    bool leaving;    /* bye was sent */
    int64_t down_ms; /* when the link went down (0 while up) */
    uint64_t dropped_at_down;
    int64_t echo_ms;  /* when this node last heard its own heartbeat */
    uint32_t holding; /* publishers held now (CONN_HOLD_BACKPLANE) */
    bool paused;      /* reading the backplane is paused for the memory budget */

    struct event *flush_ev;
    struct event *tick_ev;
    struct event *resume_ev;
    bool flush_scheduled;
    msgpack_sbuffer scratch; /* control messages, retained records */
    struct log_ratelimit rl_bad, rl_dup;
    struct cluster_stats st;
};

static void cluster_flush_cb(evutil_socket_t fd, short what, void *arg);
static void cluster_tick_cb(evutil_socket_t fd, short what, void *arg);
static void cluster_resume_cb(evutil_socket_t fd, short what, void *arg);
static void node_fetch(struct cluster *c, struct cnode *n);
static void snapshot_write(struct cluster *c);
static void retained_load(struct cluster *c);
static void cluster_check_synced(struct cluster *c);
static void snapshot_reply_cb(void *arg, const redisReply *r, void *priv);

/* ------------------------------------------------------------ helpers ---- */

static void schedule_flush(struct cluster *c)
{
    if (!c->flush_scheduled) {
        c->flush_scheduled = true;
        event_active(c->flush_ev, 0, 0);
    }
}

/* True when S (LEN bytes) may name a node or a prefix: 1..64 of A-Z a-z 0-9 _ - . */
static bool name_ok(const char *s, size_t len)
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

static char *fmt_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A new string, formatted. */
static char *fmt_name(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A malformed message from the backplane: counted, and logged within a rate. */
static void cluster_malformed(struct cluster *c, const char *what, const char *why)
{
    uint64_t suppressed;

    c->st.malformed++;
    if (log_ratelimit_ok(&c->rl_bad, (uint64_t)clock_now_ms(), &suppressed))
        log_warning(c->log, "backplane: dropped a malformed %s: %s%s", what, why,
                    suppressed ? " (and similar ones)" : "");
}

/* Sends a command of ARGC arguments given as NUL-terminated strings. */
static int command_str(struct cluster *c, redislink_reply_fn fn, void *priv, int argc,
                       const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redislink_command(c->link, fn, priv, argc, argv, lens);
}

static uint64_t reply_uint(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static void held_clear(struct held_list *l, size_t *bytes)
{
    struct held_msg *h;

    while ((h = STAILQ_FIRST(l)) != NULL) {
        STAILQ_REMOVE_HEAD(l, link);
        free(h);
    }
    *bytes = 0;
}

static void held_push(struct held_list *l, size_t *bytes, uint64_t seq, const char *data,
                      size_t len)
{
    struct held_msg *h = xmalloc(sizeof(*h) + len);

    h->seq = seq;
    h->len = len;
    memcpy(h->data, data, len);
    STAILQ_INSERT_TAIL(l, h, link);
    *bytes += len;
}

/* -------------------------------------------------------- local interest ---- */

/* "pattern" or "pattern queue" into BUF; its length. */
static size_t field_make(char *buf, const char *pattern, const char *queue)
{
    size_t plen = strlen(pattern);

    memcpy(buf, pattern, plen);
    if (queue == NULL)
        return plen;
    size_t qlen = strlen(queue);
    buf[plen] = ' ';
    memcpy(buf + plen + 1, queue, qlen);
    return plen + 1 + qlen;
}

static void linterest_free(struct cluster *c, struct linterest *li)
{
    if (li->dirty)
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
    hmap_remove(&c->local, li->field, li->flen);
    free(li);
}

static void linterest_change(struct cluster *c, const char *pattern, const char *queue, int by)
{
    char field[2 * PROTO_TOPIC_MAX + 1];
    size_t flen = field_make(field, pattern, queue);
    struct linterest *li = hmap_get(&c->local, field, flen);

    if (li == NULL) {
        if (by < 0)
            return;
        li = xcalloc(1, sizeof(*li) + flen);
        li->flen = (uint16_t)flen;
        memcpy(li->field, field, flen);
        hmap_put(&c->local, li->field, li->flen, li);
    }
    li->count = by > 0 ? li->count + 1 : li->count - 1;
    if (!c->up) {
        /* Not announced now: the snapshot at the next connect says it all. */
        if (li->count == 0)
            linterest_free(c, li);
        return;
    }
    if (!li->dirty) {
        li->dirty = true;
        TAILQ_INSERT_TAIL(&c->dirty, li, dirty_link);
    }
    schedule_flush(c);
}

void cluster_interest_add(struct cluster *c, const char *pattern, const char *queue)
{
    linterest_change(c, pattern, queue, 1);
}

void cluster_interest_remove(struct cluster *c, const char *pattern, const char *queue)
{
    linterest_change(c, pattern, queue, -1);
}

static void delta_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && c->up) {
        log_warning(c->log, "backplane: this node's interest was gone from Redis; announcing it "
                            "again");
        snapshot_write(c);
    }
}

/* Announces up to CLUSTER_CHUNK changes from the dirty list: one script, one version. */
static void delta_send(struct cluster *c)
{
    const char *argv[5 + 5 + 2 * CLUSTER_CHUNK];
    size_t lens[5 + 5 + 2 * CLUSTER_CHUNK];
    char counts[CLUSTER_CHUNK][12], version[24];
    struct linterest *li, *done[CLUSTER_CHUNK];
    size_t n = 0, argc = 0;

    TAILQ_FOREACH (li, &c->dirty, dirty_link)
        if (++n == CLUSTER_CHUNK)
            break;
    snprintf(version, sizeof(version), "%" PRIu64, ++c->version);
    bpwire_delta_begin(&c->scratch, c->node, c->nlen, c->instance_id, c->version, n);
#define ARG(p, l) (argv[argc] = (p), lens[argc++] = (l))
    ARG("EVAL", 4);
    ARG(DELTA_SCRIPT, sizeof(DELTA_SCRIPT) - 1);
    ARG("1", 1);
    ARG(c->k_node, strlen(c->k_node));
    ARG(c->ttl, strlen(c->ttl));
    ARG(c->ch_ctl, strlen(c->ch_ctl));
    size_t msg_at = argc; /* the message, known once the changes are written */
    ARG(NULL, 0);
    ARG(version, strlen(version));
    for (size_t i = 0; i < n; i++) {
        li = TAILQ_FIRST(&c->dirty);
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
        li->dirty = false;
        snprintf(counts[i], sizeof(counts[i]), "%" PRIu32, li->count);
        bpwire_change_write(&c->scratch, li->field, li->flen, li->count);
        ARG(li->field, li->flen);
        ARG(counts[i], strlen(counts[i]));
        done[i] = li;
    }
#undef ARG
    argv[msg_at] = c->scratch.data;
    lens[msg_at] = c->scratch.size;
    redislink_command(c->link, delta_reply_cb, NULL, (int)argc, argv, lens);
    for (size_t i = 0; i < n; i++)
        if (done[i]->count == 0)
            linterest_free(c, done[i]);
}

/*
 * Writes this node's whole interest as its snapshot, under a new version,
 * registers the node and says hello: one transaction, so a reader sees
 * all of it or none.  Zero counts are dropped; nothing is dirty after.
 */
static void snapshot_write(struct cluster *c)
{
    const char *argv[2 + 2 + 2 * CLUSTER_CHUNK];
    size_t lens[2 + 2 + 2 * CLUSTER_CHUNK];
    char counts[CLUSTER_CHUNK][12], version[24];
    struct linterest *li;
    size_t pos = 0, argc;

    while ((li = TAILQ_FIRST(&c->dirty)) != NULL) {
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
        li->dirty = false;
        if (li->count == 0)
            linterest_free(c, li);
    }
    snprintf(version, sizeof(version), "%" PRIu64, ++c->version);
    const char *multi[] = {"MULTI"}, *del[] = {"DEL", c->k_node};
    command_str(c, NULL, NULL, 1, multi);
    command_str(c, NULL, NULL, 2, del);
    const char *meta[] = {"HSET", c->k_node, " instance", c->instance, " version", version};
    command_str(c, NULL, NULL, 6, meta);
    for (bool more = true; more;) {
        argc = 0;
        argv[argc] = "HSET", lens[argc++] = 4;
        argv[argc] = c->k_node, lens[argc++] = strlen(c->k_node);
        while (argc < 2 + 2 * CLUSTER_CHUNK &&
               (li = hmap_next(&c->local, &pos, NULL, NULL)) != NULL) {
            char *cnt = counts[(argc - 2) / 2];
            snprintf(cnt, sizeof(counts[0]), "%" PRIu32, li->count);
            argv[argc] = li->field, lens[argc++] = li->flen;
            argv[argc] = cnt, lens[argc++] = strlen(cnt);
        }
        more = argc == 2 + 2 * CLUSTER_CHUNK;
        if (argc > 2)
            redislink_command(c->link, NULL, NULL, (int)argc, argv, lens);
    }
    const char *expire[] = {"PEXPIRE", c->k_node, c->ttl}, *sadd[] = {"SADD", c->k_nodes, c->node};
    command_str(c, NULL, NULL, 3, expire);
    command_str(c, NULL, NULL, 3, sadd);
    bpwire_ctl_write(&c->scratch, BPWIRE_HELLO, c->node, c->nlen, c->instance_id, c->version);
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t publens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    redislink_command(c->link, NULL, NULL, 3, pub, publens);
    const char *exec[] = {"EXEC"};
    command_str(c, snapshot_reply_cb, NULL, 1, exec);
}

/* ----------------------------------------------------------- remote nodes ---- */

static struct cnode *node_find(struct cluster *c, const char *name, size_t len)
{
    return hmap_get(&c->nodes, name, len);
}

static struct cnode *node_new(struct cluster *c, const char *name, size_t len)
{
    struct cnode *n = xcalloc(1, sizeof(*n));

    n->name = xstrndup(name, len);
    n->nlen = len;
    n->channel = fmt_name("%s:msg:{%s}", c->prefix, n->name);
    n->in = interest_node_add(c->remote, n);
    n->last_seen_ms = clock_now_ms();
    STAILQ_INIT(&n->deltas);
    msgpack_sbuffer_init(&n->batch);
    hmap_put(&c->nodes, n->name, n->nlen, n);
    return n;
}

static void node_batch_drop(struct cluster *c, struct cnode *n)
{
    if (!n->in_batched)
        return;
    TAILQ_REMOVE(&c->batched, n, batch_link);
    n->in_batched = false;
    c->batched_bytes -= n->batch.size;
    c->st.dropped += n->batch_msgs;
    n->batch_msgs = 0;
    msgpack_sbuffer_clear(&n->batch);
}

static void node_free(struct cluster *c, struct cnode *n)
{
    node_batch_drop(c, n);
    interest_node_remove(c->remote, n->in);
    held_clear(&n->deltas, &n->deltas_bytes);
    msgpack_sbuffer_destroy(&n->batch);
    free(n->channel);
    free(n->name);
    free(n);
}

static void node_remove(struct cluster *c, struct cnode *n)
{
    hmap_remove(&c->nodes, n->name, n->nlen);
    node_free(c, n);
}

/* Applies one change of N's; -1 when it is malformed. */
static int node_change(struct cluster *c, struct cnode *n, const char *field, size_t flen,
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
static void node_delta(struct cluster *c, struct cnode *n, const struct bpwire_ctl *d,
                       const char *raw, size_t len)
{
    if (d->instance == n->instance && d->version <= n->version)
        return; /* already in what we have */
    if (n->fetching || d->instance != n->instance || d->version != n->version + 1) {
        if (n->deltas_bytes + len > CLUSTER_DELTAS_MAX) {
            held_clear(&n->deltas, &n->deltas_bytes);
            n->fetch_again = true;
        } else {
            held_push(&n->deltas, &n->deltas_bytes, 0, raw, len);
        }
        node_fetch(c, n);
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
        node_change(c, n, field, flen, count);
    }
    n->version = d->version;
}

/* Replaces N's entries with the snapshot R (an HGETALL reply); false when R is empty. */
static bool node_snapshot(struct cluster *c, struct cnode *n, const redisReply *r)
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
        node_change(c, n, f->str, f->len, count > UINT32_MAX ? UINT32_MAX : (uint32_t)count);
    }
    return true;
}

/* Applies the changes N received during its fetch, in order. */
static void node_replay_deltas(struct cluster *c, struct cnode *n)
{
    struct held_list todo = STAILQ_HEAD_INITIALIZER(todo);
    struct held_msg *h;
    struct bpwire_ctl d;
    const char *why;

    STAILQ_CONCAT(&todo, &n->deltas); /* node_delta may hold more in n->deltas meanwhile */
    n->deltas_bytes = 0;
    while ((h = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        if (bpwire_ctl_read(h->data, h->len, &d, &why) == 0)
            node_delta(c, n, &d, h->data, h->len);
        free(h);
    }
}

static void fetch_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    struct cnode *n = node_find(c, priv, strlen(priv));

    free(priv);
    c->fetches--;
    if (n == NULL || !n->fetching) {
        cluster_check_synced(c);
        return;
    }
    n->fetching = false;
    if (r == NULL) {
        held_clear(&n->deltas, &n->deltas_bytes);
        return; /* the link went down: every node is read again when it is back */
    }
    if (!node_snapshot(c, n, r)) {
        /* No snapshot: the node is gone, and the set still named it. */
        const char *srem[] = {"SREM", c->k_nodes, n->name};
        command_str(c, NULL, NULL, 3, srem);
        log_info(c->log, "backplane: node %s has no interest in Redis; forgetting it", n->name);
        node_remove(c, n);
    } else if (n->fetch_again) {
        n->fetch_again = false;
        held_clear(&n->deltas, &n->deltas_bytes);
        node_fetch(c, n);
    } else {
        node_replay_deltas(c, n);
    }
    cluster_check_synced(c);
}

/* Reads N's snapshot (HGETALL), unless a read is under way or the link is not up. */
static void node_fetch(struct cluster *c, struct cnode *n)
{
    if (n->fetching || !c->up)
        return;
    char *key = fmt_name("{%s}:node:%s", c->prefix, n->name);
    const char *argv[] = {"HGETALL", key};
    /* The reply finds the node by name: it may be gone by then. */
    if (command_str(c, fetch_reply_cb, xstrdup(n->name), 2, argv) == 0) {
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
            if (e->type != REDIS_REPLY_STRING || !name_ok(e->str, e->len) ||
                (e->len == c->nlen && memcmp(e->str, c->node, c->nlen) == 0))
                continue;
            struct cnode *n = node_find(c, e->str, e->len);
            node_fetch(c, n != NULL ? n : node_new(c, e->str, e->len));
        }
    }
    c->members_done = true;
    cluster_check_synced(c);
}

/* --------------------------------------------------------- control channel ---- */

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

static void ctl_message_cb(void *arg, const char *data, size_t len, void *priv)
{
    struct cluster *c = arg;
    struct bpwire_ctl m;
    const char *why;

    if (bpwire_ctl_read(data, len, &m, &why) < 0) {
        cluster_malformed(c, "control message", why);
        return;
    }
    if (!name_ok(m.node, m.node_len)) {
        cluster_malformed(c, "control message", "bad node name");
        return;
    }
    if (m.node_len == c->nlen && memcmp(m.node, c->node, c->nlen) == 0) {
        ctl_self(c, &m);
        return;
    }
    struct cnode *n = node_find(c, m.node, m.node_len);
    if (m.kind == BPWIRE_BYE) {
        if (n != NULL && n->instance == m.instance) {
            log_notice(c->log, "backplane: node %s left; %zu interest entries dropped", n->name,
                       interest_node_entries(n->in));
            node_remove(c, n);
        }
        return;
    }
    bool known = n != NULL;
    if (!known) {
        n = node_new(c, m.node, m.node_len);
        log_info(c->log, "backplane: node %s joined", n->name);
    }
    n->last_seen_ms = clock_now_ms();
    switch (m.kind) {
    case BPWIRE_HELLO:
        node_fetch(c, n);
        break;
    case BPWIRE_HB:
        if (!known || m.instance != n->instance || m.version > n->version)
            node_fetch(c, n);
        break;
    case BPWIRE_DELTA:
        node_delta(c, n, &m, data, len);
        break;
    case BPWIRE_BYE:
        break;
    }
}

/* ---------------------------------------------------------- retained values ---- */

static uint32_t max_record(const struct cluster *c)
{
    return c->srv->conf->max_payload + CLUSTER_RECORD_SLACK;
}

/* Stores REC (a retained record from Redis) here, without delivering it. */
static void retained_apply(struct cluster *c, const struct bpwire_record *rec)
{
    int rc = router_store_retained(c->srv->router, c->srv->conf, rec->topic, rec->topic_len,
                                   rec->payload_nil ? NULL : rec->body, rec->body_len, rec->opts,
                                   rec->opts_len);
    if (rc < 0) {
        c->st.retained_refused++;
        loop_warn(&c->srv->loop, LOOP_WARN_MEMORY,
                  "backplane: a retained value from another node does not fit max_retained");
    }
}

static void retained_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_warning(c->log, "backplane: storing a retained value failed: %s", r->str);
}

/* Sends RECORD (LEN bytes) for TOPIC to the cluster's store: the script numbers it and broadcasts
 * it. */
static void retained_send(struct cluster *c, const char *topic, size_t tlen, bool clear,
                          const void *record, size_t len)
{
    const char *argv[] = {"EVAL",        RETAIN_SCRIPT,     "2",
                          c->k_retained, c->k_retained_seq, c->ch_retained,
                          topic,         clear ? "1" : "0", record};
    size_t lens[] = {4,
                     sizeof(RETAIN_SCRIPT) - 1,
                     1,
                     strlen(c->k_retained),
                     strlen(c->k_retained_seq),
                     strlen(c->ch_retained),
                     tlen,
                     1,
                     len};
    redislink_command(c->link, retained_reply_cb, NULL, 9, argv, lens);
}

/* Keeps a retained change made while the link is down, for when it is back (the last per topic). */
static void outbox_put(struct cluster *c, const char *topic, size_t tlen, const void *record,
                       size_t len)
{
    struct outboxed *o = hmap_remove(&c->outbox, topic, tlen);

    if (o != NULL) {
        c->outbox_bytes -= o->len + o->tlen;
        free(o->topic);
        free(o);
    }
    if (c->outbox_bytes + len + tlen > c->max_pending) {
        c->st.dropped++;
        return;
    }
    o = xmalloc(sizeof(*o) + len);
    o->topic = xstrndup(topic, tlen);
    o->tlen = tlen;
    o->len = len;
    memcpy(o->record, record, len);
    hmap_put(&c->outbox, o->topic, o->tlen, o);
    c->outbox_bytes += len + tlen;
}

/* Sends what the outbox holds (the load is done, so these come after it) and empties it. */
static void outbox_flush(struct cluster *c)
{
    size_t pos = 0;
    struct outboxed *o;
    struct bpwire_record rec;
    const char *why;

    while ((o = hmap_next(&c->outbox, &pos, NULL, NULL)) != NULL) {
        if (bpwire_retained_value_read(o->record, o->len, UINT32_MAX, &rec, &why) == 0)
            retained_send(c, o->topic, o->tlen, rec.payload_nil, o->record, o->len);
        free(o->topic);
        free(o);
    }
    hmap_release(&c->outbox);
    c->outbox_bytes = 0;
}

/* A retained publication here: to the cluster's store, now or once the link is back. */
static void retained_publish(struct cluster *c, const struct router_msg *m)
{
    msgpack_sbuffer_clear(&c->scratch);
    size_t olen = m->payload_nil ? 0
                                 : encode_msg_opts(&c->scratch, m->reply_to, m->reply_to_len,
                                                   m->headers, true);
    size_t at = c->scratch.size;
    bpwire_record_write(&c->scratch, BPWIRE_RETAINED, m->body, m->body_len,
                        (const uint8_t *)c->scratch.data, olen, NULL, 0);
    const char *record = c->scratch.data + at;
    size_t len = c->scratch.size - at;
    if (c->up)
        retained_send(c, m->topic, m->topic_len, m->payload_nil, record, len);
    else
        outbox_put(c, m->topic, m->topic_len, record, len);
}

static void retained_message_cb(void *arg, const char *data, size_t len, void *priv)
{
    struct cluster *c = arg;
    struct bpwire_record rec;
    uint64_t seq;
    const char *why;

    if (bpwire_retained_read(data, len, max_record(c), &seq, &rec, &why) < 0) {
        cluster_malformed(c, "retained value", why);
        return;
    }
    if (!c->retained_loading) {
        retained_apply(c, &rec);
        c->retained_seq = seq;
        return;
    }
    if (c->retained_held_bytes + len > CLUSTER_RETAIN_BUF) {
        held_clear(&c->retained_held, &c->retained_held_bytes);
        c->retained_reload = true;
        return;
    }
    held_push(&c->retained_held, &c->retained_held_bytes, seq, data, len);
}

struct sweep {
    struct hmap *loaded; /* topics the load set */
    struct hmap *outbox;
    char **victims;
    size_t n, cap;
};

static void sweep_cb(const char *topic, size_t len, void *arg)
{
    struct sweep *sw = arg;

    if (hmap_get(sw->loaded, topic, len) != NULL || hmap_get(sw->outbox, topic, len) != NULL)
        return;
    if (sw->n == sw->cap) {
        sw->cap = sw->cap ? 2 * sw->cap : 16;
        sw->victims = xrealloc(sw->victims, sw->cap * sizeof(*sw->victims));
    }
    sw->victims[sw->n++] = xstrndup(topic, len);
}

/* Puts TOPIC's value here into the outbox, to be sent to the cluster's store. */
static void retained_resend(struct cluster *c, const char *topic, size_t tlen)
{
    const uint8_t *body, *opts;
    size_t blen, olen;

    if (!router_retained_get(c->srv->router, topic, tlen, &body, &blen, &opts, &olen))
        return;
    msgpack_sbuffer_clear(&c->scratch);
    bpwire_record_write(&c->scratch, BPWIRE_RETAINED, body, blen, opts, olen, NULL, 0);
    outbox_put(c, topic, tlen, c->scratch.data, c->scratch.size);
}

/*
 * The values held here that the cluster's store does not have (LOADED,
 * and not in the outbox either): cleared, when the store is current (they
 * were cleared while this node was away); sent to it again, when Redis
 * lost the store (RESEED: restarted empty, or restored from an old copy).
 */
static void retained_sweep(struct cluster *c, struct hmap *loaded, bool reseed)
{
    struct sweep sw = {.loaded = loaded, .outbox = &c->outbox};

    router_retained_foreach(c->srv->router, sweep_cb, &sw);
    for (size_t i = 0; i < sw.n; i++) {
        size_t len = strlen(sw.victims[i]);
        if (reseed)
            retained_resend(c, sw.victims[i], len);
        else
            router_store_retained(c->srv->router, c->srv->conf, sw.victims[i], len, NULL, 0, NULL,
                                  0);
        free(sw.victims[i]);
    }
    free(sw.victims);
}

/* Applies the changes that came during the load and are newer than it (SEQ). */
static void retained_replay(struct cluster *c, uint64_t seq)
{
    struct held_msg *h;
    struct bpwire_record rec;
    uint64_t s;
    const char *why;

    while ((h = STAILQ_FIRST(&c->retained_held)) != NULL) {
        STAILQ_REMOVE_HEAD(&c->retained_held, link);
        if (h->seq > seq &&
            bpwire_retained_read(h->data, h->len, max_record(c), &s, &rec, &why) == 0) {
            retained_apply(c, &rec);
            c->retained_seq = s;
        }
        free(h);
    }
    c->retained_held_bytes = 0;
}

/* The load's reply: [seq, [record, ...]], from MULTI GET HVALS EXEC. */
static void retained_loaded_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    struct hmap loaded = HMAP_INIT;
    struct bpwire_record rec;
    const char *why;

    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        cluster_malformed(c, "retained store", "unexpected reply to its load");
        redislink_fail(c->link, "unexpected reply loading retained values");
        return;
    }
    uint64_t seq = r->element[0]->type == REDIS_REPLY_NIL ? 0 : reply_uint(r->element[0]);
    const redisReply *vals = r->element[1];
    for (size_t i = 0; i < vals->elements; i++) {
        const redisReply *v = vals->element[i];
        if (v->type != REDIS_REPLY_STRING ||
            bpwire_retained_value_read(v->str, v->len, max_record(c), &rec, &why) < 0) {
            cluster_malformed(c, "retained value", v->type == REDIS_REPLY_STRING ? why : "type");
            continue;
        }
        retained_apply(c, &rec);
        hmap_put(&loaded, rec.topic, rec.topic_len, (void *)rec.topic); /* borrowed from R */
    }
    bool lost = seq < c->retained_seq;
    if (lost)
        log_warning(c->log,
                    "backplane: Redis lost the cluster's retained values (their change count "
                    "went from %" PRIu64 " to %" PRIu64 "); this node stores its own again",
                    c->retained_seq, seq);
    retained_sweep(c, &loaded, lost);
    hmap_release(&loaded);
    c->retained_seq = seq;
    c->retained_loading = false;
    retained_replay(c, seq);
    outbox_flush(c);
    if (c->retained_reload) {
        c->retained_reload = false;
        retained_load(c);
        return;
    }
    c->retained_done = true;
    cluster_check_synced(c);
}

/* Loads the cluster's retained values, atomically with the number of the last change. */
static void retained_load(struct cluster *c)
{
    const char *multi[] = {"MULTI"}, *get[] = {"GET", c->k_retained_seq},
               *hvals[] = {"HVALS", c->k_retained}, *exec[] = {"EXEC"};

    c->retained_loading = true;
    command_str(c, NULL, NULL, 1, multi);
    command_str(c, NULL, NULL, 2, get);
    command_str(c, NULL, NULL, 2, hvals);
    command_str(c, retained_loaded_cb, NULL, 1, exec);
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
    if (c->holding > 0 && cluster_load(c) < c->max_pending / 4)
        cluster_release_all(c);
}

/* Hands N's batch to Redis: one PUBLISH to its channel. */
static void node_batch_send(struct cluster *c, struct cnode *n)
{
    const char *argv[] = {"PUBLISH", n->channel, n->batch.data};
    size_t lens[] = {7, strlen(n->channel), n->batch.size};

    TAILQ_REMOVE(&c->batched, n, batch_link);
    n->in_batched = false;
    c->batched_bytes -= n->batch.size;
    if (redislink_command(c->link, batch_reply_cb, (void *)(uintptr_t)n->batch_msgs, 3, argv,
                          lens) == 0) {
        c->st.msgs_out += n->batch_msgs;
        c->st.bytes_out += n->batch.size;
    } else {
        c->st.dropped += n->batch_msgs;
    }
    n->batch_msgs = 0;
    msgpack_sbuffer_clear(&n->batch);
}

/* Adds M to N's batch, with NG groups from c->groups. */
static void node_batch_add(struct cluster *c, struct cnode *n, const struct router_msg *m,
                           size_t ng)
{
    size_t before = n->batch.size;

    if (!n->in_batched) {
        bpwire_batch_begin(&n->batch, c->node, c->nlen);
        TAILQ_INSERT_TAIL(&c->batched, n, batch_link);
        n->in_batched = true;
        before = 0;
    }
    bpwire_record_write(&n->batch, 0, m->body, m->body_len, m->opts, m->opts_len, c->groups, ng);
    n->batch_msgs++;
    c->batched_bytes += n->batch.size - before;
    if (n->batch.size >= BPWIRE_BATCH_MAX)
        node_batch_send(c, n);
    else
        schedule_flush(c);
}

long cluster_forward(struct cluster *c, const struct router_msg *m,
                     const struct sublist_result *local)
{
    if (m->retain)
        retained_publish(c, m);
    if (interest_entry_count(c->remote) == 0)
        return 0;
    const struct interest_route *rt =
        interest_route(c->remote, m->topic, m->topic_len, local_group_cb, (void *)local);
    if (rt->n_targets == 0)
        return 0;
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
    if (load > c->max_pending / 2)
        cluster_hold(c, m->from);
    long subs = 0;
    for (uint32_t t = 0; t < rt->n_targets; t++) {
        size_t ng = rt->n_picks ? target_groups(c, rt, t) : 0;
        node_batch_add(c, rt->targets[t].owner, m, ng);
        subs += rt->targets[t].subs;
    }
    return subs;
}

static void cluster_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct cnode *n;

    c->flush_scheduled = false;
    if (!c->up)
        return;
    while (!TAILQ_EMPTY(&c->dirty))
        delta_send(c);
    while ((n = TAILQ_FIRST(&c->batched)) != NULL)
        node_batch_send(c, n);
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
    while ((rc = bpwire_record_read(&r, max_record(c), &rec, &why)) == 1) {
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
        c->st.msgs_in++;
        c->st.bytes_in += rec.body_len;
        router_publish(c->srv->router, c->srv->conf, &m);
    }
    if (rc < 0)
        cluster_malformed(c, "message", why);
    /* Backpressure: while the broker is over its memory budget, let Redis hold the rest. */
    if (c->srv->budget.over && !c->paused) {
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

    if (c->srv->budget.over) {
        evtimer_add(c->resume_ev, &tv);
        return;
    }
    c->paused = false;
    redislink_pause_reading(c->link, false);
}

/* ---------------------------------------------------------------- the link ---- */

static void cluster_check_synced(struct cluster *c)
{
    if (!c->up || c->synced || !c->snap_done || !c->members_done || !c->retained_done ||
        c->fetches > 0)
        return;
    c->synced = true;
    if (!c->ever_synced)
        log_notice(c->log,
                   "backplane up: node %s on Redis %s; %zu other nodes, %zu remote interest "
                   "entries, %zu retained values",
                   c->node, redislink_address(c->link), hmap_count(&c->nodes),
                   interest_entry_count(c->remote), router_retained_count(c->srv->router));
    else
        log_notice(c->log,
                   "backplane back after %.1f s: node %s on Redis %s; %zu other nodes, %zu remote "
                   "interest entries; %" PRIu64 " messages for other nodes were dropped meanwhile",
                   (double)(clock_now_ms() - c->down_ms) / 1000.0, c->node,
                   redislink_address(c->link), hmap_count(&c->nodes),
                   interest_entry_count(c->remote), c->st.dropped - c->dropped_at_down);
    c->ever_synced = true;
}

static void snapshot_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        log_error(c->log, "backplane: announcing this node failed: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        redislink_fail(c->link, "announcing this node failed");
        return;
    }
    c->snap_done = true;
    cluster_check_synced(c);
}

static void cluster_link_up(void *arg)
{
    struct cluster *c = arg;
    size_t pos = 0;
    struct cnode *n;
    const char *smembers[] = {"SMEMBERS", c->k_nodes};

    c->up = true;
    c->synced = c->snap_done = c->members_done = c->retained_done = false;
    c->echo_ms = clock_now_ms();
    snapshot_write(c);
    command_str(c, members_reply_cb, NULL, 2, smembers);
    while ((n = hmap_next(&c->nodes, &pos, NULL, NULL)) != NULL) {
        n->last_seen_ms = c->echo_ms;
        node_fetch(c, n);
    }
    retained_load(c);
}

static void cluster_link_down(void *arg, const char *why)
{
    struct cluster *c = arg;
    size_t pos = 0;
    struct cnode *n;

    c->up = c->synced = false;
    c->down_ms = clock_now_ms();
    while ((n = TAILQ_FIRST(&c->batched)) != NULL)
        node_batch_drop(c, n);
    c->dropped_at_down = c->st.dropped;
    while ((n = hmap_next(&c->nodes, &pos, NULL, NULL)) != NULL) {
        n->fetching = n->fetch_again = false;
        held_clear(&n->deltas, &n->deltas_bytes);
    }
    c->fetches = 0;
    c->retained_loading = c->retained_reload = false;
    held_clear(&c->retained_held, &c->retained_held_bytes);
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

static void expire_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && c->synced) {
        log_warning(c->log, "backplane: this node's interest was gone from Redis; announcing it "
                            "again");
        snapshot_write(c);
    }
}

/* Drops the nodes not heard from within node_timeout. */
static void cluster_expire(struct cluster *c, int64_t now)
{
    size_t pos = 0, n_gone = 0;
    struct cnode *n, *gone[64];

    while ((n = hmap_next(&c->nodes, &pos, NULL, NULL)) != NULL && n_gone < 64)
        if (now - n->last_seen_ms > (int64_t)c->node_timeout_ms)
            gone[n_gone++] = n;
    for (size_t i = 0; i < n_gone; i++) {
        log_notice(c->log,
                   "backplane: node %s silent for %" PRId64 " ms; its %zu interest entries expire",
                   gone[i]->name, now - gone[i]->last_seen_ms, interest_node_entries(gone[i]->in));
        node_remove(c, gone[i]);
    }
}

static void cluster_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    int64_t now = clock_now_ms();

    if (!c->up || c->leaving)
        return;
    const char *expire[] = {"PEXPIRE", c->k_node, c->ttl};
    command_str(c, expire_reply_cb, NULL, 3, expire);
    bpwire_ctl_write(&c->scratch, BPWIRE_HB, c->node, c->nlen, c->instance_id, c->version);
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t lens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    redislink_command(c->link, NULL, NULL, 3, pub, lens);
    if (!c->synced)
        return;
    if (now - c->echo_ms > (int64_t)c->node_timeout_ms) {
        redislink_fail(c->link, "this node's own heartbeats stopped coming back");
        return;
    }
    cluster_expire(c, now);
}

/* ----------------------------------------------------------------- public ---- */

static void cluster_names(struct cluster *c, const struct config_cluster *cc)
{
    const char *p = cc->prefix != NULL ? cc->prefix : "pigeon";

    c->prefix = xstrdup(p);
    c->k_nodes = fmt_name("{%s}:nodes", p);
    c->k_node = fmt_name("{%s}:node:%s", p, c->node);
    c->k_retained = fmt_name("{%s}:retained", p);
    c->k_retained_seq = fmt_name("{%s}:retained:seq", p);
    c->ch_ctl = fmt_name("{%s}:ctl", p);
    c->ch_retained = fmt_name("{%s}:retained", p);
    c->ch_mine = fmt_name("%s:msg:{%s}", p, c->node);
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
            if (!name_ok(p, 1))
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
    redislink_subscribe(c->link, c->ch_ctl, ctl_message_cb, NULL);
    redislink_subscribe(c->link, c->ch_retained, retained_message_cb, NULL);
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
    bpwire_ctl_write(&c->scratch, BPWIRE_BYE, c->node, c->nlen, c->instance_id, 0);
    const char *multi[] = {"MULTI"}, *del[] = {"DEL", c->k_node},
               *srem[] = {"SREM", c->k_nodes, c->node}, *exec[] = {"EXEC"};
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t lens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    command_str(c, NULL, NULL, 1, multi);
    command_str(c, NULL, NULL, 2, del);
    command_str(c, NULL, NULL, 3, srem);
    redislink_command(c->link, NULL, NULL, 3, pub, lens);
    command_str(c, NULL, NULL, 1, exec);
    redislink_flush_now(c->link);
}

void cluster_free(struct cluster *c)
{
    size_t pos = 0;
    struct cnode *n;
    struct linterest *li;
    struct outboxed *o;

    if (c == NULL)
        return;
    redislink_free(c->link); /* first: its callbacks still find everything */
    c->link = NULL;
    while ((n = hmap_next(&c->nodes, &pos, NULL, NULL)) != NULL)
        node_free(c, n);
    hmap_release(&c->nodes);
    pos = 0;
    while ((li = hmap_next(&c->local, &pos, NULL, NULL)) != NULL)
        free(li);
    hmap_release(&c->local);
    pos = 0;
    while ((o = hmap_next(&c->outbox, &pos, NULL, NULL)) != NULL) {
        free(o->topic);
        free(o);
    }
    hmap_release(&c->outbox);
    held_clear(&c->retained_held, &c->retained_held_bytes);
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
    out->nodes = hmap_count(&c->nodes);
    out->remote_interest = interest_entry_count(c->remote);
    out->reconnects = redislink_reconnects(c->link);
    out->pending_bytes = cluster_load(c);
}
