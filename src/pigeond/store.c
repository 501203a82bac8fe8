/*
 * store.c - the durable store and its group commit (see store.h).
 *
 * Layers, top-down: batches (what one loop iteration gathers: LMDB
 * operations, waiters, retained changes to undo); the commit cycle (seal,
 * submit, done); publishing; retained values; consumers' queues; opening,
 * reloading and closing; monitoring.
 *
 * Waiters.  A request answered after a commit is a waiter in the batch
 * gathering when it was made: its session's reply placeholder, what to
 * answer, and what it depends on (a stream seq, the LMDB part).  When the
 * batch is done, each waiter is answered: success when its seq is durable
 * (seq <= durable_last) and its LMDB part committed, else code 12.  When a
 * stream's job fails, the records of the batch gathering meanwhile are
 * rolled back too: their waiters are answered with code 12 at once.
 *
 * Retained values.  The router's value changes at once (live and new
 * subscribers see it); the store mirrors the change into LMDB in the same
 * batch, keeping the value it replaced.  If that commit fails, the change is
 * undone in memory (unless a later publication changed the topic again, in
 * which case that one now undoes to the older value).
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block.h"
#include "clock.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "consumer.h"
#include "encode.h"
#include "log.h"
#include "proto.h"
#include "router.h"
#include "seglog.h"
#include "server.h"
#include "session.h"
#include "statedb.h"
#include "stream.h"
#include "sublist.h"
#include "topic.h"
#include "xalloc.h"

#define STORE_CAPTURE_CACHE 1024
#define STORE_PATH_MAX      4096

enum waiter_kind {
    WAIT_PUB,     /* answer: the delivery count (a pub without `stream`) */
    WAIT_PUB_MAP, /* answer: {delivered, stream, seq[, duplicate]} */
    WAIT_ACK,     /* answer: true */
};

struct waiter {
    struct session_reply *reply; /* filled when answered (then NULL) */
    uint32_t msgid;
    uint8_t kind;
    bool duplicate;
    bool state;        /* depends on the LMDB part */
    struct stream *sm; /* depends on seq being durable in it, or NULL */
    uint64_t seq;
    uint64_t delivered;
    long ro; /* its retained change in the batch, or -1 */
};

struct retained_op {
    char *topic; /* owned */
    size_t tlen;
    struct block *prev; /* the value it replaced (a reference), or NULL */
    uint32_t prev_body, prev_opts;
    struct block *set; /* the value it set (a reference), or NULL: cleared */
    bool undone;
};

struct batch {
    struct statedb_ops ops;  /* consumer state: kept for a retry if the commit fails */
    struct statedb_ops rops; /* retained values: undone if it fails */
    struct waiter *w;
    size_t n_w, cap_w;
    struct retained_op *ro;
    size_t n_ro, cap_ro;
    struct stream **streams; /* whose jobs the batch carries */
    struct seglog_job **logs;
    size_t n_logs;
    struct statedb_ops *lists[2];
    struct commit_job job;
};

struct store {
    struct server *srv; /* borrowed */
    struct logger *log; /* borrowed */
    char *dir;
    bool fsync;
    uint64_t segment_size;
    int lock_fd;
    struct statedb *db;
    struct commit *cm;
    struct stream **streams;
    size_t n_streams, cap_streams;
    struct sublist *capture;
    struct batch *gather, *out;
    struct event *seal_ev;
    bool seal_armed;
    struct consumer **pumps;
    size_t n_pumps, cap_pumps;
    struct consumer **round; /* the pumps being run (store_pump_cb) */
    size_t n_round;
    struct event *pump_ev;
    struct consumer **dirty;
    size_t n_dirty, cap_dirty;
    struct session **held; /* publishers not read while the batch is full */
    size_t n_held, cap_held;
    char **interest; /* owned, each owned: patterns held as cluster interest */
    size_t n_interest, cap_interest;
    msgpack_sbuffer scratch;
    bool state_failing;
    uint64_t commits, state_errors, waiters_failed;
    uint64_t mem_bytes; /* store_memory's last count */
    int64_t mem_at;     /* when it was made (monotonic ms), 0: never */
    struct stream_hist state_hist;
};

static void store_seal_cb(evutil_socket_t fd, short what, void *arg);
static void store_pump_cb(evutil_socket_t fd, short what, void *arg);
static void store_done_cb(struct commit_job *job, void *arg);

/* ------------------------------------------------------------ helpers ---- */

struct logger *store_logger(struct store *st)
{
    return st->log;
}

struct event_base *store_base(struct store *st)
{
    return st->srv->loop.base;
}

msgpack_sbuffer *store_scratch(struct store *st)
{
    msgpack_sbuffer_clear(&st->scratch);
    return &st->scratch;
}

/* Appends P to the pointer array *V (count *N, room *CAP). */
static void ptrs_push(void ***v, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = p;
}

/* Removes every P from the pointer array V. */
static void ptrs_remove(void **v, size_t *n, const void *p)
{
    size_t w = 0;

    for (size_t i = 0; i < *n; i++)
        if (v[i] != p)
            v[w++] = v[i];
    *n = w;
}

/* ------------------------------------------------------------ batches ---- */

static struct batch *batch_new(void)
{
    return xcalloc(1, sizeof(struct batch));
}

static void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n_ro; i++) {
        free(b->ro[i].topic);
        block_unref(b->ro[i].prev);
        block_unref(b->ro[i].set);
    }
    for (size_t i = 0; i < b->n_logs; i++)
        seglog_job_free(b->logs[i]);
    statedb_ops_release(&b->ops);
    statedb_ops_release(&b->rops);
    free(b->streams);
    free(b->logs);
    free(b->ro);
    free(b->w);
    free(b);
}

static bool batch_empty(const struct batch *b)
{
    return b->ops.n == 0 && b->rops.n == 0 && b->n_w == 0;
}

static struct waiter *waiter_add(struct batch *b)
{
    if (b->n_w == b->cap_w) {
        b->cap_w = b->cap_w ? b->cap_w * 2 : 64;
        b->w = xrealloc(b->w, b->cap_w * sizeof(*b->w));
    }
    struct waiter *w = &b->w[b->n_w++];
    memset(w, 0, sizeof(*w));
    w->ro = -1;
    return w;
}

/* Answers W: OK, or code 12 with WHY. */
static void waiter_answer(struct store *st, struct waiter *w, bool ok, const char *why)
{
    msgpack_sbuffer *buf = store_scratch(st);

    if (w->reply == NULL)
        return;
    if (!ok) {
        encode_response_error(buf, w->msgid, PROTO_ERR_NOT_STORED, why);
        st->waiters_failed++;
    } else if (w->kind == WAIT_PUB_MAP) {
        encode_result_stored(buf, w->msgid, w->delivered, w->sm->name, w->seq, w->duplicate);
    } else if (w->kind == WAIT_PUB) {
        encode_result_uint(buf, w->msgid, w->delivered);
    } else {
        encode_result_true(buf, w->msgid);
    }
    session_reply_fill(w->reply, buf->data, buf->size);
    w->reply = NULL;
}

/* ---------------------------------------------------------- retained ---- */

/* Puts back what OP replaced, if the topic still has what OP set. */
static void retained_undo(struct store *st, struct retained_op *op)
{
    uint32_t bl = 0, ol = 0;
    struct block *now = router_retained_ref(st->srv->router, op->topic, op->tlen, &bl, &ol);

    if (now == op->set && !op->undone) {
        router_retained_put(st->srv->router, st->srv->conf, op->topic, op->tlen, op->prev,
                            op->prev_body, op->prev_opts, false);
        op->undone = true;
    }
    block_unref(now);
    /* A later change of the topic, still gathering, now undoes to the older value. */
    struct batch *g = st->gather;
    for (size_t i = 0; g != NULL && i < g->n_ro; i++) {
        struct retained_op *later = &g->ro[i];
        if (later->tlen == op->tlen && memcmp(later->topic, op->topic, op->tlen) == 0 &&
            later->prev == op->set) {
            block_unref(later->prev);
            later->prev = op->prev != NULL ? block_ref(op->prev) : NULL;
            later->prev_body = op->prev_body;
            later->prev_opts = op->prev_opts;
        }
    }
}

/* Gathers TOPIC's value BLK (BL, OL bytes) for LMDB, or its removal when BLK is NULL. */
static void rops_value(struct batch *b, const char *topic, size_t tlen, const struct block *blk,
                       uint32_t bl, uint32_t ol)
{
    if (blk == NULL) {
        statedb_ops_del(&b->rops, STATEDB_RETAINED, topic, tlen);
        return;
    }
    uint8_t *v = xmalloc(8 + (size_t)bl + ol);
    memcpy(v, &bl, 4);
    memcpy(v + 4, &ol, 4);
    memcpy(v + 8, blk->data, (size_t)bl + ol);
    statedb_ops_put(&b->rops, STATEDB_RETAINED, topic, tlen, v, 8 + (size_t)bl + ol);
    free(v);
}

/* Mirrors into LMDB what M did to its topic's retained value; PREV was the value before. */
static long retained_gather(struct store *st, const struct router_msg *m, struct block *prev,
                            uint32_t prev_body, uint32_t prev_opts)
{
    struct batch *b = st->gather;
    uint32_t bl = 0, ol = 0;
    struct block *set = router_retained_ref(st->srv->router, m->topic, m->topic_len, &bl, &ol);

    if (b->n_ro == b->cap_ro) {
        b->cap_ro = b->cap_ro ? b->cap_ro * 2 : 16;
        b->ro = xrealloc(b->ro, b->cap_ro * sizeof(*b->ro));
    }
    struct retained_op *op = &b->ro[b->n_ro];
    memset(op, 0, sizeof(*op));
    op->topic = xstrndup(m->topic, m->topic_len);
    op->tlen = m->topic_len;
    op->prev = prev;
    op->prev_body = prev_body;
    op->prev_opts = prev_opts;
    op->set = set;
    rops_value(b, m->topic, m->topic_len, set, bl, ol);
    return (long)b->n_ro++;
}

struct load_arg {
    struct store *st;
    uint64_t loaded, skipped;
};

static int retained_load_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct load_arg *la = arg;
    uint32_t bl, ol;

    if (vlen < 8 || klen == 0 || klen > PROTO_TOPIC_MAX)
        goto bad;
    memcpy(&bl, val, 4);
    memcpy(&ol, (const uint8_t *)val + 4, 4);
    if ((uint64_t)bl + ol + 8 != vlen || topic_check(key, klen, TOPIC_PUBLISH) != TOPIC_OK)
        goto bad;
    struct block *blk = block_new((size_t)bl + ol);
    memcpy(blk->data, (const uint8_t *)val + 8, (size_t)bl + ol);
    int rc =
        router_retained_put(la->st->srv->router, la->st->srv->conf, key, klen, blk, bl, ol, true);
    block_unref(blk);
    if (rc < 0)
        la->skipped++;
    else
        la->loaded++;
    return 0;
bad:
    la->skipped++;
    return 0;
}

/* ----------------------------------------------------- the commit cycle ---- */

void store_touch(struct store *st)
{
    if (st->seal_armed)
        return;
    st->seal_armed = true;
    event_active(st->seal_ev, 0, 0);
}

struct statedb_ops *store_ops(struct store *st)
{
    store_touch(st);
    return &st->gather->ops;
}

/* Hands the gathered batch to the commit threads, if there is one and none is out. */
static void store_seal(struct store *st)
{
    struct batch *b = st->gather;

    if (commit_busy(st->cm))
        return; /* store_done_cb seals again */
    for (size_t i = 0; i < st->n_dirty; i++)
        consumer_persist(st->dirty[i]);
    st->n_dirty = 0;
    b->streams = xcalloc(st->n_streams + 1, sizeof(*b->streams));
    b->logs = xcalloc(st->n_streams + 1, sizeof(*b->logs));
    for (size_t i = 0; i < st->n_streams; i++) {
        struct seglog_job *j = stream_job_take(st->streams[i]);
        if (j != NULL) {
            b->streams[b->n_logs] = st->streams[i];
            b->logs[b->n_logs++] = j;
        }
    }
    if (b->n_logs == 0 && batch_empty(b)) {
        free(b->streams);
        free(b->logs);
        b->streams = NULL;
        b->logs = NULL;
        return;
    }
    st->gather = batch_new();
    st->out = b;
    b->lists[0] = &b->rops;
    b->lists[1] = &b->ops;
    b->job.logs = b->logs;
    b->job.n_logs = b->n_logs;
    b->job.ops = b->lists;
    b->job.n_ops = 2;
    b->job.fsync = st->fsync;
    st->commits++;
    commit_submit(st->cm, &b->job);
}

static void store_seal_cb(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;

    st->seal_armed = false;
    store_seal(st);
}

/* Stream SM rolled back to ROLLED_TO: what the gathering batch owed it fails now. */
static void fail_gathered(struct store *st, struct stream *sm, uint64_t rolled_to)
{
    struct batch *g = st->gather;

    for (size_t i = 0; i < g->n_w; i++) {
        struct waiter *w = &g->w[i];
        if (w->sm != sm || w->seq <= rolled_to || w->reply == NULL)
            continue;
        if (w->ro >= 0 && !g->ro[w->ro].undone) {
            struct retained_op *op = &g->ro[w->ro];
            retained_undo(st, op);
            /* and LMDB keeps the older value too */
            rops_value(g, op->topic, op->tlen, op->prev, op->prev_body, op->prev_opts);
        }
        waiter_answer(st, w, false, "not stored: the store could not write the stream");
    }
}

/* The publishers held for a full batch are read again. */
static void release_held(struct store *st)
{
    for (size_t i = 0; i < st->n_held; i++)
        conn_release(st->held[i]->conn, CONN_HOLD_STORE);
    st->n_held = 0;
}

static void store_done_cb(struct commit_job *job, void *arg)
{
    struct store *st = arg;
    struct batch *b = st->out;
    bool state_ok = job->state_err == 0;

    st->out = NULL;
    for (size_t i = 0; i < b->n_logs; i++) {
        uint64_t rolled = 0;
        if (stream_job_done(b->streams[i], b->logs[i], &rolled) < 0)
            fail_gathered(st, b->streams[i], rolled);
        b->logs[i] = NULL; /* freed by stream_job_done */
    }
    b->n_logs = 0;
    if (b->ops.n + b->rops.n > 0)
        stream_hist_add(&st->state_hist, job->state_ns);
    if (!state_ok) {
        st->state_errors++;
        if (!st->state_failing)
            log_error(st->log,
                      "store: committing consumer state and retained values failed: %s; acks and "
                      "retained publications fail with code 12 until it works again",
                      job->state_why);
        st->state_failing = true;
        for (size_t i = b->n_ro; i-- > 0;)
            retained_undo(st, &b->ro[i]);
        /* Consumer state is written again with the next batch. */
        statedb_ops_prepend(&st->gather->ops, &b->ops);
        store_touch(st);
    } else if (st->state_failing && b->ops.n + b->rops.n > 0) {
        log_notice(st->log, "store: consumer state and retained values are committed again");
        st->state_failing = false;
    }
    for (size_t i = 0; i < b->n_w; i++) {
        struct waiter *w = &b->w[i];
        bool ok = (!w->state || state_ok) && (w->sm == NULL || w->seq <= w->sm->durable_last);
        waiter_answer(st, w, ok,
                      w->sm != NULL && w->seq > w->sm->durable_last
                          ? "not stored: the store could not write the stream"
                          : "not stored: the store could not commit (see the broker's log)");
    }
    batch_free(b);
    release_held(st);
    if (!batch_empty(st->gather) || st->seal_armed)
        store_seal(st);
    else
        for (size_t i = 0; i < st->n_streams; i++)
            if (st->streams[i]->gathered) {
                store_seal(st);
                break;
            }
}

/* --------------------------------------------------------- publishing ---- */

/* The stream that captures TOPIC, or NULL. */
static struct stream *capture(struct store *st, const char *topic, size_t len)
{
    const struct sublist_result *r;

    if (st->n_streams == 0)
        return NULL;
    r = sublist_match(st->capture, topic, len);
    return r->n_items > 0 ? r->items[0] : NULL;
}

/* Answers a duplicate: now when its first is durable, else with the batch gathering. */
static void answer_duplicate(struct store *st, struct session *s, struct stream *sm, uint64_t seq,
                             bool named, uint32_t msgid)
{
    struct waiter *w = waiter_add(st->gather);

    w->reply = session_reply_defer(s);
    w->msgid = msgid;
    w->kind = named ? WAIT_PUB_MAP : WAIT_PUB;
    w->duplicate = true;
    w->sm = sm;
    w->seq = seq;
    if (seq <= sm->durable_last) {
        waiter_answer(st, w, true, NULL);
        st->gather->n_w--;
        return;
    }
    store_touch(st);
}

/* Holds S's connection while SM's gathered records are over STORE_GATHER_MAX. */
static void hold_if_full(struct store *st, struct stream *sm, struct session *s)
{
    if (seglog_gathering_bytes(sm->log) <= STORE_GATHER_MAX || (s->conn->holds & CONN_HOLD_STORE))
        return;
    conn_hold(s->conn, CONN_HOLD_STORE);
    ptrs_push((void ***)&st->held, &st->n_held, &st->cap_held, s);
}

int store_publish(struct store *st, struct session *s, const struct router_msg *m,
                  const struct store_pub *p, bool is_request, uint32_t msgid, const char **why)
{
    struct stream *sm = capture(st, m->topic, m->topic_len);
    struct block *prev = NULL;
    uint32_t prev_body = 0, prev_opts = 0;
    int64_t now = stream_now_ms();

    if (p->stream != NULL && (sm == NULL || strlen(sm->name) != p->stream_len ||
                              memcmp(sm->name, p->stream, p->stream_len) != 0)) {
        *why = sm == NULL ? "no stream captures this topic; message not published"
                          : "another stream captures this topic; message not published";
        return -PROTO_ERR_NO_STREAM;
    }
    if (sm != NULL && p->msg_id != NULL) {
        uint64_t first = stream_duplicate(sm, p->msg_id, p->msg_id_len, now);
        if (first > 0) {
            sm->duplicates++;
            if (is_request)
                answer_duplicate(st, s, sm, first, p->stream != NULL, msgid);
            return 0;
        }
    }
    if (sm == NULL && !m->retain)
        return 1;
    if (m->retain)
        prev = router_retained_ref(st->srv->router, m->topic, m->topic_len, &prev_body, &prev_opts);
    long n = router_publish(st->srv->router, st->srv->loop.conf, m);
    if (n < 0) {
        block_unref(prev);
        *why = "retained store full (max_retained); message not published";
        return (int)n;
    }
    uint64_t seq = 0;
    if (sm != NULL) {
        int rc = stream_append(sm, m, p->msg_id, p->msg_id_len, now, &seq, why);
        if (rc < 0) {
            if (m->retain) /* neither the stream nor the retained value changed */
                router_retained_put(st->srv->router, st->srv->conf, m->topic, m->topic_len, prev,
                                    prev_body, prev_opts, false);
            block_unref(prev);
            return rc;
        }
        hold_if_full(st, sm, s);
    }
    long ro = m->retain ? retained_gather(st, m, prev, prev_body, prev_opts) : -1;
    store_touch(st);
    if (!is_request)
        return 0;
    struct waiter *w = waiter_add(st->gather);
    w->reply = session_reply_defer(s);
    w->msgid = msgid;
    w->kind = p->stream != NULL ? WAIT_PUB_MAP : WAIT_PUB;
    w->delivered = (uint64_t)n;
    w->sm = sm;
    w->seq = seq;
    w->state = m->retain;
    w->ro = ro;
    return 0;
}

void store_reply_when_stored(struct store *st, struct session *s, uint32_t msgid)
{
    struct waiter *w = waiter_add(st->gather);

    w->reply = session_reply_defer(s);
    w->msgid = msgid;
    w->kind = WAIT_ACK;
    w->state = true;
    store_touch(st);
}

/* Routes M live and appends it to SM; a failure is counted in SM (not_stored), as nobody waits. */
static void publish_captured(struct store *st, struct stream *sm, const struct router_msg *m)
{
    const char *why;
    uint64_t seq;

    router_publish(st->srv->router, st->srv->loop.conf, m);
    if (sm != NULL)
        stream_append(sm, m, NULL, 0, stream_now_ms(), &seq, &why);
}

/* Routes the broker's own message BODY (topic then payload) live and to its stream. */
static void publish_body(struct store *st, const char *topic, size_t tlen, const uint8_t *body,
                         size_t blen)
{
    struct router_msg m = {.topic = topic, .topic_len = tlen, .body = body, .body_len = blen};

    publish_captured(st, capture(st, topic, tlen), &m);
}

bool store_publish_remote(struct store *st, const struct router_msg *m)
{
    struct stream *sm = capture(st, m->topic, m->topic_len);

    if (sm == NULL)
        return false;
    publish_captured(st, sm, m);
    return true;
}

bool store_gather_full(const struct store *st)
{
    for (size_t i = 0; i < st->n_streams; i++)
        if (seglog_gathering_bytes(st->streams[i]->log) > STORE_GATHER_MAX)
            return true;
    return false;
}

void store_publish_internal(struct store *st, const char *topic, size_t tlen, const void *payload,
                            size_t plen)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;

    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, tlen);
    msgpack_pack_str_body(&pk, topic, tlen);
    msgpack_sbuffer_write(&buf, payload, plen);
    publish_body(st, topic, tlen, (const uint8_t *)buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void store_publish_dead(struct store *st, struct stream *sm, const char *durable, uint64_t seq,
                        const char *topic, uint32_t tlen, uint32_t deliveries)
{
    char dead[PROTO_TOPIC_MAX + 1];
    msgpack_sbuffer buf;
    msgpack_packer pk;
    int n = snprintf(dead, sizeof(dead), "$SYS.stream.%s.dead", sm->name);

    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pack_cstr(&pk, "stream");
    pack_cstr(&pk, sm->name);
    pack_cstr(&pk, "durable");
    if (durable != NULL)
        pack_cstr(&pk, durable);
    else
        msgpack_pack_nil(&pk);
    pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    pack_cstr(&pk, "topic");
    if (topic != NULL) {
        msgpack_pack_str(&pk, tlen);
        msgpack_pack_str_body(&pk, topic, tlen);
    } else {
        msgpack_pack_nil(&pk);
    }
    pack_cstr(&pk, "deliveries");
    msgpack_pack_uint32(&pk, deliveries);
    store_publish_internal(st, dead, (size_t)n, buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
}

void store_session_gone(struct store *st, struct session *s)
{
    ptrs_remove((void **)st->held, &st->n_held, s);
}

/* ------------------------------------------------------------ consumers ---- */

void store_queue_pump(struct store *st, struct consumer *c)
{
    static const struct timeval now = {0, 0};

    if (st->n_pumps == 0)
        evtimer_add(st->pump_ev, &now);
    ptrs_push((void ***)&st->pumps, &st->n_pumps, &st->cap_pumps, c);
}

void store_queue_dirty(struct store *st, struct consumer *c)
{
    ptrs_push((void ***)&st->dirty, &st->n_dirty, &st->cap_dirty, c);
    store_touch(st);
}

void store_consumer_gone(struct store *st, struct consumer *c)
{
    ptrs_remove((void **)st->pumps, &st->n_pumps, c);
    ptrs_remove((void **)st->dirty, &st->n_dirty, c);
    for (size_t i = 0; i < st->n_round; i++)
        if (st->round[i] == c)
            st->round[i] = NULL;
}

/* Runs the pumps queued so far; those they queue again wait for the next round. */
static void store_pump_cb(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;

    st->round = st->pumps;
    st->n_round = st->n_pumps;
    st->pumps = NULL;
    st->n_pumps = st->cap_pumps = 0;
    for (size_t i = 0; i < st->n_round; i++)
        if (st->round[i] != NULL) /* NULL: freed by an earlier pump of this round */
            consumer_pump(st->round[i]);
    free(st->round);
    st->round = NULL;
    st->n_round = 0;
}

/* -------------------------------------------------------------- streams ---- */

struct stream *store_stream(struct store *st, const char *name, size_t len)
{
    for (size_t i = 0; i < st->n_streams; i++)
        if (strlen(st->streams[i]->name) == len && memcmp(st->streams[i]->name, name, len) == 0)
            return st->streams[i];
    return NULL;
}

size_t store_stream_count(const struct store *st)
{
    return st->n_streams;
}

struct stream *store_stream_at(struct store *st, size_t i)
{
    return st->streams[i];
}

void store_hold_interest(struct store *st)
{
    struct router *r = st->srv->router;

    for (size_t i = 0; i < st->n_interest; i++) {
        router_interest_release(r, st->interest[i]);
        free(st->interest[i]);
    }
    st->n_interest = 0;
    for (size_t i = 0; i < st->n_streams; i++) {
        const struct config_stream *cs = &st->streams[i]->conf;
        for (size_t k = 0; k < cs->n_patterns; k++) {
            char *p = xstrdup(cs->patterns[k]);
            ptrs_push((void ***)&st->interest, &st->n_interest, &st->cap_interest, p);
            router_interest_hold(r, p);
        }
    }
}

/* Puts SM's patterns in the capture index (again, after a reload). */
static void capture_set(struct store *st, struct stream *sm)
{
    for (size_t i = 0; sm->capture != NULL && sm->capture[i] != NULL; i++)
        sublist_remove(st->capture, sm->capture[i]);
    free(sm->capture);
    sm->capture = xcalloc(sm->conf.n_patterns + 1, sizeof(*sm->capture));
    for (size_t i = 0; i < sm->conf.n_patterns; i++)
        sm->capture[i] = sublist_insert(st->capture, sm->conf.patterns[i],
                                        strlen(sm->conf.patterns[i]), NULL, 0, sm);
}

static void stream_dir(const struct store *st, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/streams/%s", st->dir, name);
}

static int stream_add(struct store *st, const struct config_stream *cs)
{
    char dir[STORE_PATH_MAX], why[512];
    struct stream *sm;

    stream_dir(st, cs->name, dir, sizeof(dir));
    if (stream_open(st, cs, dir, st->segment_size, &sm, why, sizeof(why)) < 0) {
        log_error(st->log, "stream %s: %s", cs->name, why);
        return -1;
    }
    ptrs_push((void ***)&st->streams, &st->n_streams, &st->cap_streams, sm);
    capture_set(st, sm);
    return 0;
}

/* --------------------------------------------------------------- loading ---- */

static int consumer_load_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct store *st = arg;
    const char *k = key, *nul = memchr(k, 0, klen);

    if (nul == NULL)
        return 0;
    struct stream *sm = store_stream(st, k, (size_t)(nul - k));
    size_t dlen = klen - (size_t)(nul - k) - 1;
    if (sm != NULL && stream_name_ok(nul + 1, dlen))
        consumer_load(sm, nul + 1, dlen, val, vlen);
    return 0;
}

static int pending_load_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct store *st = arg;
    const uint8_t *k = key;
    const uint8_t *nul = memchr(k, 0, klen);

    if (nul == NULL || vlen != 4 || klen < 10)
        return 0;
    const uint8_t *d = nul + 1, *end = k + klen - 9;
    if (end < d || *end != 0)
        return 0;
    struct stream *sm = store_stream(st, (const char *)k, (size_t)(nul - k));
    uint64_t seq = 0;
    uint32_t deliveries;
    for (int i = 1; i <= 8; i++)
        seq = seq << 8 | end[i];
    memcpy(&deliveries, val, 4);
    if (sm != NULL)
        consumer_load_pending(sm, (const char *)d, (size_t)(end - d), seq, deliveries);
    return 0;
}

/* Loads durables, their pending sets and the retained values. */
static int store_load(struct store *st)
{
    char why[256];
    struct load_arg la = {.st = st};

    if (statedb_foreach(st->db, STATEDB_CONSUMERS, NULL, 0, consumer_load_cb, st, why,
                        sizeof(why)) < 0 ||
        statedb_foreach(st->db, STATEDB_PENDING, NULL, 0, pending_load_cb, st, why, sizeof(why)) <
            0 ||
        statedb_foreach(st->db, STATEDB_RETAINED, NULL, 0, retained_load_cb, &la, why,
                        sizeof(why)) < 0) {
        log_error(st->log, "store: %s", why);
        return -1;
    }
    for (size_t i = 0; i < st->n_streams; i++) {
        struct stream *sm = st->streams[i];
        for (struct consumer *c = sm->consumers; c != NULL; c = consumer_next(c))
            consumer_stream_dropped(c, sm->first_seq);
    }
    if (la.skipped > 0)
        log_warning(st->log,
                    "store: %" PRIu64 " retained values not loaded (over max_retained, or "
                    "unreadable); they stay in the store",
                    la.skipped);
    log_notice(st->log, "store: %" PRIu64 " retained values loaded", la.loaded);
    return 0;
}

/* Takes the store's lock: one pigeond per directory. */
static int store_lock(struct store *st)
{
    char path[STORE_PATH_MAX];

    snprintf(path, sizeof(path), "%s/LOCK", st->dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0) {
        log_error(st->log, "store: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        log_error(st->log, "store: %s is in use by another pigeond (%s is locked)", st->dir, path);
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char buf[STORE_PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Logs the streams on disk that the config does not name: kept, not loaded. */
static void report_unconfigured(struct store *st)
{
    char path[STORE_PATH_MAX];
    struct dirent *e;
    DIR *d;

    snprintf(path, sizeof(path), "%s/streams", st->dir);
    if ((d = opendir(path)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || store_stream(st, e->d_name, strlen(e->d_name)) != NULL)
            continue;
        log_warning(st->log,
                    "store: stream '%s' is on disk but not in the configuration: kept as it is, "
                    "not loaded (pigeond --delete-stream %s removes it)",
                    e->d_name, e->d_name);
    }
    closedir(d);
}

static void store_free(struct store *st)
{
    commit_free(st->cm);
    for (size_t i = 0; i < st->n_streams; i++)
        stream_close(st->streams[i]);
    free(st->streams);
    sublist_free(st->capture);
    batch_free(st->gather);
    batch_free(st->out);
    if (st->seal_ev != NULL)
        event_free(st->seal_ev);
    if (st->pump_ev != NULL)
        event_free(st->pump_ev);
    free(st->pumps);
    free(st->dirty);
    free(st->held);
    for (size_t i = 0; i < st->n_interest; i++)
        free(st->interest[i]);
    free(st->interest);
    statedb_close(st->db);
    msgpack_sbuffer_destroy(&st->scratch);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st->dir);
    free(st);
}

int store_open(struct server *srv, const struct config *conf, struct store **out)
{
    char path[STORE_PATH_MAX], why[512];
    bool moved;

    *out = NULL;
    if (!conf->store.enabled)
        return 0;
    struct store *st = xcalloc(1, sizeof(*st));
    st->srv = srv;
    st->log = &srv->log;
    st->lock_fd = -1;
    st->dir = xstrdup(conf->store.dir);
    st->fsync = conf->store.fsync;
    st->segment_size = conf->store.segment_size;
    msgpack_sbuffer_init(&st->scratch);
    st->capture = sublist_new(STORE_CAPTURE_CACHE);
    st->gather = batch_new();
    st->seal_ev = event_new(srv->loop.base, -1, 0, store_seal_cb, st);
    st->pump_ev = evtimer_new(srv->loop.base, store_pump_cb, st);
    snprintf(path, sizeof(path), "%s/streams", st->dir);
    if (mkdir_p(path) < 0) {
        log_error(st->log, "store: cannot make %s: %s", path, strerror(errno));
        goto fail;
    }
    if (st->seal_ev == NULL || st->pump_ev == NULL || store_lock(st) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/state", st->dir);
    if (statedb_open(path, st->fsync, st->log, &st->db, &moved, why, sizeof(why)) < 0) {
        log_error(st->log, "store: %s", why);
        goto fail;
    }
    for (size_t i = 0; i < conf->n_streams; i++)
        if (stream_add(st, &conf->streams[i]) < 0)
            goto fail;
    report_unconfigured(st);
    if (store_load(st) < 0 ||
        commit_new(srv->loop.base, st->db, store_done_cb, st, &st->cm, why, sizeof(why)) < 0) {
        log_error(st->log, "store: %s", why);
        goto fail;
    }
    log_notice(st->log, "store: %s, fsync %s, %zu streams", st->dir, st->fsync ? "yes" : "no",
               st->n_streams);
    *out = st;
    return 0;
fail:
    store_free(st);
    return -1;
}

void store_drain(struct store *st)
{
    if (st == NULL)
        return;
    commit_wait(st->cm);
    store_seal(st);
    commit_wait(st->cm);
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    /* What is gathered is committed before the files close. */
    commit_wait(st->cm);
    store_seal(st);
    commit_wait(st->cm);
    store_free(st);
}

void store_apply_config(struct store *st, const struct config *conf)
{
    if (strcmp(conf->store.dir != NULL ? conf->store.dir : "", st->dir) != 0)
        log_warning(st->log, "SIGHUP: [store] dir %s takes effect at the next start",
                    conf->store.dir != NULL ? conf->store.dir : "(none)");
    st->fsync = conf->store.fsync;
    for (size_t i = 0; i < conf->n_streams; i++) {
        const struct config_stream *cs = &conf->streams[i];
        struct stream *sm = store_stream(st, cs->name, strlen(cs->name));
        if (sm == NULL) {
            if (stream_add(st, cs) == 0)
                log_notice(st->log, "SIGHUP: stream %s added", cs->name);
            continue;
        }
        stream_apply_config(sm, cs);
        capture_set(st, sm);
    }
    for (size_t i = 0; i < st->n_streams; i++) {
        bool kept = false;
        for (size_t k = 0; k < conf->n_streams && !kept; k++)
            kept = strcmp(conf->streams[k].name, st->streams[i]->name) == 0;
        if (!kept)
            log_warning(st->log,
                        "SIGHUP: stream %s is no longer in the configuration; it keeps running "
                        "until the next start, and its data stays (pigeond --delete-stream %s "
                        "removes it)",
                        st->streams[i]->name, st->streams[i]->name);
    }
    store_hold_interest(st);
}

/* ------------------------------------------------------------- deleting ---- */

struct delete_arg {
    struct statedb_ops ops;
    enum statedb_table table;
    size_t key_len; /* only keys this long (0: any) */
    size_t n;       /* keys deleted */
};

/* Deletes each key it is shown (of DA's length, when set). */
static int delete_key_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct delete_arg *da = arg;

    if (da->key_len == 0 || klen == da->key_len) {
        statedb_ops_del(&da->ops, da->table, key, klen);
        da->n++;
    }
    return 0;
}

/* Gathers into DA the deletion of TABLE's keys beginning with PREFIX (exactly PREFIX when EXACT).
 */
static int delete_prefixed(struct statedb *db, struct delete_arg *da, enum statedb_table table,
                           const void *prefix, size_t plen, bool exact, char *why, size_t why_len)
{
    da->table = table;
    da->key_len = exact ? plen : 0;
    return statedb_foreach(db, table, prefix, plen, delete_key_cb, da, why, why_len);
}

/* Removes DIR's regular files and then DIR. */
static int remove_dir(const char *dir)
{
    char path[STORE_PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(dir);
    int rc = 0;

    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path) || unlink(path) < 0)
            rc = -1;
    }
    closedir(d);
    return rc < 0 || rmdir(dir) < 0 ? -1 : 0;
}

/*
 * For the offline commands: locks CONF's store (refused while a pigeond
 * holds it) and opens its state.  On success the caller owns *LOCK_FD and
 * *DB (offline_close).
 */
static int offline_open(const struct config *conf, int *lock_fd, struct statedb **db, char *why,
                        size_t why_len)
{
    char path[STORE_PATH_MAX];
    struct logger quiet;
    bool moved;

    if (!conf->store.enabled) {
        snprintf(why, why_len, "the configuration has no [store]");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/LOCK", conf->store.dir);
    *lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(why, why_len, "%s is in use (stop pigeond first) or cannot be locked: %s",
                 conf->store.dir, strerror(errno));
        if (*lock_fd >= 0)
            close(*lock_fd);
        return -1;
    }
    log_init(&quiet, stderr, LOG_LEVEL_WARNING);
    snprintf(path, sizeof(path), "%s/state", conf->store.dir);
    if (statedb_open(path, true, &quiet, db, &moved, why, why_len) < 0) {
        close(*lock_fd);
        return -1;
    }
    return 0;
}

static void offline_close(int lock_fd, struct statedb *db)
{
    statedb_close(db);
    close(lock_fd);
}

/* Commits DA's deletions; WHAT names them in WHY. */
static int delete_apply(struct statedb *db, struct delete_arg *da, const char *what, char *why,
                        size_t why_len)
{
    const struct statedb_ops *lists[1] = {&da->ops};
    char w[256];
    uint64_t ns;

    if (statedb_apply(db, lists, 1, &ns, w, sizeof(w)) < 0) {
        snprintf(why, why_len, "cannot remove %s: %s", what, w);
        return -1;
    }
    return 0;
}

int store_delete_stream(const struct config *conf, const char *name, char *why, size_t why_len)
{
    char path[STORE_PATH_MAX];
    struct statedb *db;
    struct delete_arg da = {0};
    struct stat sb;
    size_t len = strlen(name);
    int lock_fd, rc = -1;

    if (!stream_name_ok(name, len)) {
        snprintf(why, why_len, "'%s' is not a stream name", name);
        return -1;
    }
    for (size_t i = 0; i < conf->n_streams; i++) {
        if (strcmp(conf->streams[i].name, name) == 0) {
            snprintf(why, why_len,
                     "stream %s is still configured (line %d): remove its [stream %s] section "
                     "first",
                     name, conf->streams[i].line, name);
            return -1;
        }
    }
    if (offline_open(conf, &lock_fd, &db, why, why_len) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/streams/%s", conf->store.dir, name);
    if (stat(path, &sb) < 0) {
        snprintf(why, why_len, "no stream %s in %s", name, conf->store.dir);
        goto out;
    }
    /* NAME \0 begins the keys of its durables and of their pending tables. */
    if (delete_prefixed(db, &da, STATEDB_CONSUMERS, name, len + 1, false, why, why_len) < 0 ||
        delete_prefixed(db, &da, STATEDB_PENDING, name, len + 1, false, why, why_len) < 0 ||
        delete_apply(db, &da, "its durables", why, why_len) < 0)
        goto out;
    if (remove_dir(path) < 0) {
        snprintf(why, why_len, "cannot remove %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    statedb_ops_release(&da.ops);
    offline_close(lock_fd, db);
    return rc;
}

int store_delete_durable(const struct config *conf, const char *stream, const char *durable,
                         char *why, size_t why_len)
{
    char key[64 + 1 + 64 + 1];
    struct statedb *db;
    struct delete_arg da = {0};
    size_t sl = strlen(stream), dl = strlen(durable);
    int lock_fd, rc = -1;

    if (!stream_name_ok(stream, sl) || !stream_name_ok(durable, dl)) {
        snprintf(why, why_len, "'%s/%s' is not STREAM/DURABLE", stream, durable);
        return -1;
    }
    if (offline_open(conf, &lock_fd, &db, why, why_len) < 0)
        return -1;
    /* STREAM \0 DURABLE is its record; STREAM \0 DURABLE \0 begins its pending table. */
    memcpy(key, stream, sl);
    key[sl] = 0;
    memcpy(key + sl + 1, durable, dl);
    key[sl + 1 + dl] = 0;
    if (delete_prefixed(db, &da, STATEDB_CONSUMERS, key, sl + 1 + dl, true, why, why_len) < 0)
        goto out;
    if (da.n == 0) {
        snprintf(why, why_len, "stream %s has no durable %s in %s", stream, durable,
                 conf->store.dir);
        goto out;
    }
    if (delete_prefixed(db, &da, STATEDB_PENDING, key, sl + 2 + dl, false, why, why_len) < 0 ||
        delete_apply(db, &da, "the durable", why, why_len) < 0)
        goto out;
    rc = 0;
out:
    statedb_ops_release(&da.ops);
    offline_close(lock_fd, db);
    return rc;
}

/* ----------------------------------------------------------- monitoring ---- */

/* What store_memory adds up, at most every STORE_MEMORY_MS: it walks every consumer. */
#define STORE_MEMORY_MS 100

static uint64_t memory_count(const struct store *st)
{
    uint64_t n = sizeof(*st) + st->scratch.alloc;

    for (size_t i = 0; i < st->n_streams; i++)
        n += stream_memory(st->streams[i]);
    const struct batch *bs[2] = {st->gather, st->out};
    for (int k = 0; k < 2; k++) {
        if (bs[k] == NULL)
            continue;
        n += sizeof(*bs[k]) + bs[k]->ops.cap + bs[k]->rops.cap +
             bs[k]->cap_w * sizeof(struct waiter) + bs[k]->cap_ro * sizeof(struct retained_op);
    }
    return n + (st->cap_pumps + st->cap_dirty + st->cap_held) * sizeof(void *);
}

uint64_t store_memory(struct store *st)
{
    int64_t now = clock_now_ms();

    /* The budget asks after every flush: the figure may be 100 ms old. */
    if (st->mem_at == 0 || now - st->mem_at >= STORE_MEMORY_MS) {
        st->mem_bytes = memory_count(st);
        st->mem_at = now;
    }
    return st->mem_bytes;
}

void store_pack_stream_info(struct store *st, struct stream *sm, msgpack_packer *pk)
{
    size_t n_durables = 0;

    for (struct consumer *c = sm->consumers; c != NULL; c = consumer_next(c))
        n_durables += consumer_durable_name(c) != NULL;
    msgpack_pack_map(pk, 7);
    pack_cstr(pk, "name");
    pack_cstr(pk, sm->name);
    pack_cstr(pk, "patterns");
    msgpack_pack_array(pk, sm->conf.n_patterns);
    for (size_t i = 0; i < sm->conf.n_patterns; i++)
        pack_cstr(pk, sm->conf.patterns[i]);
    pack_cstr(pk, "messages");
    msgpack_pack_uint64(pk, stream_messages(sm));
    pack_cstr(pk, "bytes");
    msgpack_pack_uint64(pk, sm->bytes);
    pack_cstr(pk, "first_seq");
    msgpack_pack_uint64(pk, sm->first_seq);
    pack_cstr(pk, "last_seq");
    msgpack_pack_uint64(pk, sm->last_seq);
    pack_cstr(pk, "consumers");
    msgpack_pack_map(pk, n_durables);
    for (struct consumer *c = sm->consumers; c != NULL; c = consumer_next(c)) {
        if (consumer_durable_name(c) == NULL)
            continue;
        pack_cstr(pk, consumer_durable_name(c));
        msgpack_pack_map(pk, 3);
        pack_cstr(pk, "num_pending");
        msgpack_pack_uint64(pk, consumer_num_pending(c));
        pack_cstr(pk, "ack_pending");
        msgpack_pack_uint64(pk, consumer_ack_pending(c));
        pack_cstr(pk, "ack_floor");
        msgpack_pack_uint64(pk, consumer_ack_floor(c));
    }
}

/* Appends V as a Prometheus label value (escaped). */
static int label(struct evbuffer *out, const char *v)
{
    int rc = 0;

    for (const char *c = v; *c && rc == 0; c++) {
        if (*c == '\\' || *c == '"')
            rc = evbuffer_add_printf(out, "\\%c", *c) < 0;
        else if (*c == '\n')
            rc = evbuffer_add(out, "\\n", 2);
        else
            rc = evbuffer_add(out, c, 1);
    }
    return rc;
}

static int family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

/* NAME{stream="S"[,durable="D"]} */
static int sample_head(struct evbuffer *out, const char *name, const char *stream,
                       const char *durable)
{
    int rc = evbuffer_add_printf(out, "%s{stream=\"", name) < 0;
    rc |= label(out, stream);
    if (durable != NULL) {
        rc |= evbuffer_add_printf(out, "\",durable=\"") < 0;
        rc |= label(out, durable);
    }
    return rc | (evbuffer_add(out, "\"}", 2) < 0);
}

static int hist_samples(struct evbuffer *out, const char *name, const char *stream,
                        const struct stream_hist *h)
{
    uint64_t cum = 0, edge = 50000;
    int rc = 0;

    for (int k = 0; k < STREAM_HIST_BUCKETS; k++, edge *= 2) {
        cum += h->bucket[k];
        rc |= evbuffer_add_printf(out, "%s_bucket{", name) < 0;
        if (stream != NULL) {
            rc |= evbuffer_add_printf(out, "stream=\"") < 0;
            rc |= label(out, stream);
            rc |= evbuffer_add_printf(out, "\",") < 0;
        }
        if (k == STREAM_HIST_BUCKETS - 1)
            rc |= evbuffer_add_printf(out, "le=\"+Inf\"} %" PRIu64 "\n", cum) < 0;
        else
            rc |=
                evbuffer_add_printf(out, "le=\"%.6f\"} %" PRIu64 "\n", (double)edge / 1e9, cum) < 0;
    }
    const char *sfx[2] = {"_sum", "_count"};
    for (int i = 0; i < 2; i++) {
        rc |= evbuffer_add_printf(out, "%s%s", name, sfx[i]) < 0;
        if (stream != NULL) {
            rc |= evbuffer_add_printf(out, "{stream=\"") < 0;
            rc |= label(out, stream);
            rc |= evbuffer_add(out, "\"}", 2);
        }
        if (i == 0)
            rc |= evbuffer_add_printf(out, " %.6f\n", (double)h->sum_ns / 1e9) < 0;
        else
            rc |= evbuffer_add_printf(out, " %" PRIu64 "\n", h->count) < 0;
    }
    return rc;
}

/* One figure of every stream. */
struct stream_figure {
    const char *name, *type, *help;
    uint64_t (*get)(const struct stream *sm);
};

static uint64_t fig_messages(const struct stream *sm)
{
    return stream_messages(sm);
}
static uint64_t fig_bytes(const struct stream *sm)
{
    return sm->bytes;
}
static uint64_t fig_first(const struct stream *sm)
{
    return sm->first_seq;
}
static uint64_t fig_last(const struct stream *sm)
{
    return sm->last_seq;
}
static uint64_t fig_stored(const struct stream *sm)
{
    return sm->stored;
}
static uint64_t fig_not_stored(const struct stream *sm)
{
    return sm->not_stored;
}
static uint64_t fig_dup(const struct stream *sm)
{
    return sm->duplicates;
}
static uint64_t fig_dropped(const struct stream *sm)
{
    return sm->dropped;
}
static uint64_t fig_damaged(const struct stream *sm)
{
    return sm->damaged;
}
static uint64_t fig_failing(const struct stream *sm)
{
    return sm->failing;
}

static const struct stream_figure stream_figures[] = {
    {"pigeon_stream_messages", "gauge", "Messages kept in the stream.", fig_messages},
    {"pigeon_stream_bytes", "gauge", "Bytes the stream's messages take on disk.", fig_bytes},
    {"pigeon_stream_first_seq", "gauge", "Seq of the oldest message kept.", fig_first},
    {"pigeon_stream_last_seq", "gauge", "Seq of the newest message.", fig_last},
    {"pigeon_stream_stored_total", "counter", "Messages stored.", fig_stored},
    {"pigeon_stream_not_stored_total", "counter",
     "Publications refused with code 12 (full with discard = new, or a disk error).",
     fig_not_stored},
    {"pigeon_stream_duplicates_total", "counter",
     "Publications whose msg_id was seen in the window.", fig_dup},
    {"pigeon_stream_dropped_total", "counter", "Messages dropped by the stream's limits.",
     fig_dropped},
    {"pigeon_stream_damaged_total", "counter", "Messages lost to damaged records.", fig_damaged},
    {"pigeon_stream_failing", "gauge", "1 while the store cannot write the stream.", fig_failing},
};

struct consumer_figure {
    const char *name, *type, *help;
    uint64_t (*get)(const struct consumer *c);
};

static uint64_t cfig_members(const struct consumer *c)
{
    return consumer_member_count(c);
}

static const struct consumer_figure consumer_figures[] = {
    {"pigeon_consumer_ack_pending", "gauge", "Messages delivered to the durable and not acked.",
     consumer_ack_pending},
    {"pigeon_consumer_num_pending", "gauge",
     "Messages stored after the durable's position (not yet delivered; with a filter, an upper "
     "bound).",
     consumer_num_pending},
    {"pigeon_consumer_ack_floor", "gauge", "The durable's ack floor.", consumer_ack_floor},
    {"pigeon_consumer_delivered_total", "counter", "Deliveries, redeliveries included.",
     consumer_delivered},
    {"pigeon_consumer_redeliveries_total", "counter", "Messages delivered again.",
     consumer_redelivered},
    {"pigeon_consumer_dead_total", "counter",
     "Messages given up after max_deliver (sent to $SYS.stream.<stream>.dead).", consumer_dead},
    {"pigeon_consumer_members", "gauge", "Connections consuming the durable.", cfig_members},
};

int store_format_metrics(struct store *st, struct evbuffer *out)
{
    int rc = 0;

    for (size_t f = 0; f < sizeof(stream_figures) / sizeof(*stream_figures); f++) {
        const struct stream_figure *fg = &stream_figures[f];
        rc |= family(out, fg->name, fg->type, fg->help);
        for (size_t i = 0; i < st->n_streams; i++) {
            rc |= sample_head(out, fg->name, st->streams[i]->name, NULL);
            rc |= evbuffer_add_printf(out, " %" PRIu64 "\n", fg->get(st->streams[i])) < 0;
        }
    }
    rc |= family(out, "pigeon_stream_write_seconds", "histogram",
                 "Time to write one commit's records of the stream.");
    for (size_t i = 0; i < st->n_streams; i++)
        rc |= hist_samples(out, "pigeon_stream_write_seconds", st->streams[i]->name,
                           &st->streams[i]->write_hist);
    rc |= family(out, "pigeon_stream_fsync_seconds", "histogram",
                 "Time to sync one commit's records of the stream (fdatasync).");
    for (size_t i = 0; i < st->n_streams; i++)
        rc |= hist_samples(out, "pigeon_stream_fsync_seconds", st->streams[i]->name,
                           &st->streams[i]->sync_hist);
    for (size_t f = 0; f < sizeof(consumer_figures) / sizeof(*consumer_figures); f++) {
        const struct consumer_figure *fg = &consumer_figures[f];
        rc |= family(out, fg->name, fg->type, fg->help);
        for (size_t i = 0; i < st->n_streams; i++)
            for (struct consumer *c = st->streams[i]->consumers; c != NULL; c = consumer_next(c)) {
                if (consumer_durable_name(c) == NULL)
                    continue;
                rc |= sample_head(out, fg->name, st->streams[i]->name, consumer_durable_name(c));
                rc |= evbuffer_add_printf(out, " %" PRIu64 "\n", fg->get(c)) < 0;
            }
    }
    rc |= family(out, "pigeon_store_state_commit_seconds", "histogram",
                 "Time to commit one LMDB transaction (consumer state, retained values).");
    rc |= hist_samples(out, "pigeon_store_state_commit_seconds", NULL, &st->state_hist);
    rc |=
        evbuffer_add_printf(
            out,
            "# HELP pigeon_store_commits_total Group commits (one per loop iteration with store "
            "work).\n# TYPE pigeon_store_commits_total counter\npigeon_store_commits_total "
            "%" PRIu64 "\n"
            "# HELP pigeon_store_state_errors_total LMDB commits that failed.\n# TYPE "
            "pigeon_store_state_errors_total counter\npigeon_store_state_errors_total %" PRIu64 "\n"
            "# HELP pigeon_store_failing 1 while consumer state and retained values cannot be "
            "committed.\n# TYPE pigeon_store_failing gauge\npigeon_store_failing %d\n"
            "# HELP pigeon_store_not_stored_total Requests answered with code 12 after a "
            "failed commit.\n# TYPE pigeon_store_not_stored_total "
            "counter\npigeon_store_not_stored_total %" PRIu64 "\n"
            "# HELP pigeon_store_memory_bytes Memory the store holds (indexes, caches, "
            "batches, consumers).\n# TYPE pigeon_store_memory_bytes gauge\n"
            "pigeon_store_memory_bytes %" PRIu64 "\n"
            "# HELP pigeon_store_state_file_bytes Size of the LMDB file.\n# TYPE "
            "pigeon_store_state_file_bytes gauge\npigeon_store_state_file_bytes %" PRIu64 "\n",
            st->commits, st->state_errors, st->state_failing, st->waiters_failed, store_memory(st),
            statedb_file_bytes(st->db)) < 0;
    return rc ? -1 : 0;
}

static json_t *u64_json(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *hist_json(const struct stream_hist *h)
{
    json_t *o = json_object();

    json_object_set_new(o, "count", u64_json(h->count));
    json_object_set_new(o, "avg_us",
                        json_real(h->count ? (double)h->sum_ns / (double)h->count / 1000.0 : 0));
    return o;
}

static json_t *consumer_json(const struct consumer *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "durable", json_string(consumer_durable_name(c)));
    json_object_set_new(o, "members", u64_json(consumer_member_count(c)));
    json_object_set_new(o, "num_pending", u64_json(consumer_num_pending(c)));
    json_object_set_new(o, "ack_pending", u64_json(consumer_ack_pending(c)));
    json_object_set_new(o, "ack_floor", u64_json(consumer_ack_floor(c)));
    json_object_set_new(o, "delivered", u64_json(consumer_delivered(c)));
    json_object_set_new(o, "redelivered", u64_json(consumer_redelivered(c)));
    json_object_set_new(o, "dead", u64_json(consumer_dead(c)));
    return o;
}

static json_t *stream_json(const struct stream *sm)
{
    json_t *o = json_object(), *pats = json_array(), *cons = json_array();
    uint64_t ephemeral = 0;

    for (size_t i = 0; i < sm->conf.n_patterns; i++)
        json_array_append_new(pats, json_string(sm->conf.patterns[i]));
    for (const struct consumer *c = sm->consumers; c != NULL; c = consumer_next(c)) {
        if (consumer_durable_name(c) != NULL)
            json_array_append_new(cons, consumer_json(c));
        else
            ephemeral++;
    }
    json_object_set_new(o, "name", json_string(sm->name));
    json_object_set_new(o, "patterns", pats);
    json_object_set_new(o, "messages", u64_json(stream_messages(sm)));
    json_object_set_new(o, "bytes", u64_json(sm->bytes));
    json_object_set_new(o, "first_seq", u64_json(sm->first_seq));
    json_object_set_new(o, "last_seq", u64_json(sm->last_seq));
    json_object_set_new(o, "durable_seq", u64_json(sm->durable_last));
    json_object_set_new(o, "segments", u64_json(seglog_segment_count(sm->log)));
    json_object_set_new(o, "stored", u64_json(sm->stored));
    json_object_set_new(o, "not_stored", u64_json(sm->not_stored));
    json_object_set_new(o, "duplicates", u64_json(sm->duplicates));
    json_object_set_new(o, "dropped", u64_json(sm->dropped));
    json_object_set_new(o, "failing", json_boolean(sm->failing));
    json_object_set_new(o, "write", hist_json(&sm->write_hist));
    json_object_set_new(o, "fsync", hist_json(&sm->sync_hist));
    json_object_set_new(o, "limits",
                        json_pack("{s:I,s:I,s:I,s:s,s:I}", "max_messages",
                                  (json_int_t)sm->conf.max_messages, "max_bytes",
                                  (json_int_t)sm->conf.max_bytes, "max_age_ms",
                                  (json_int_t)sm->conf.max_age_ms, "discard",
                                  sm->conf.discard == CONFIG_DISCARD_NEW ? "new" : "old",
                                  "duplicate_window_ms", (json_int_t)sm->conf.duplicate_window_ms));
    json_object_set_new(o, "consumers", cons);
    json_object_set_new(o, "ephemeral_consumers", u64_json(ephemeral));
    return o;
}

json_t *store_streams_json(struct store *st)
{
    json_t *root = json_object(), *arr = json_array();

    for (size_t i = 0; i < st->n_streams; i++)
        json_array_append_new(arr, stream_json(st->streams[i]));
    json_object_set_new(root, "dir", json_string(st->dir));
    json_object_set_new(root, "fsync", json_boolean(st->fsync));
    json_object_set_new(root, "commits", u64_json(st->commits));
    json_object_set_new(root, "state_commit", hist_json(&st->state_hist));
    json_object_set_new(root, "state_failing", json_boolean(st->state_failing));
    json_object_set_new(root, "memory_bytes", u64_json(store_memory(st)));
    json_object_set_new(root, "streams", arr);
    return root;
}
