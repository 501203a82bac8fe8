/*
 * consumer.c - acknowledged delivery from a stream (see consumer.h).
 *
 * Layers, top-down: keys and records (what is persisted); the pending set
 * and its two heaps; timers; members and picking one with room; delivery
 * and giving up; the pump; acks and naks; attaching, detaching, loading;
 * queries.
 *
 * States of a pending entry:
 *
 *   HELD   delivered to `holder`, due back at `due_ms` (ack_wait)
 *   WAIT   naked with a delay, due back at `due_ms`
 *   READY  to be delivered again, to any member
 *   GONE   acked, given up or dropped (compacted away)
 *
 * HELD and WAIT entries sit in the timer heap; READY ones in the ready
 * heap.  Heap items are (key, seq) and checked against the entry when they
 * come out (lazy deletion); a heap rebuilt from the live entries when it
 * grows past twice their number keeps them bounded.
 */
#include "consumer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <msgpack.h>

#include "clock.h"
#include "log.h"
#include "mpread.h"
#include "proto.h"
#include "session.h"
#include "statedb.h"
#include "store.h"
#include "stream.h"
#include "topic.h"
#include "xalloc.h"

#define KEY_MAX    (64 + 1 + 64 + 1 + 8)
#define HEAP_SLACK 64
#define RETRY_MS   1000 /* after a read error, the pump tries again this much later */

enum pend_state { PEND_HELD, PEND_WAIT, PEND_READY, PEND_GONE };

struct pend {
    uint64_t seq;
    int64_t due_ms; /* monotonic */
    struct member *holder;
    uint32_t deliveries;
    uint8_t state;
};

struct heap_item {
    int64_t key;
    uint64_t seq;
};

struct heap {
    struct heap_item *v;
    size_t n, cap;
};

struct consumer {
    struct consumer *next, *prev; /* the stream's list */
    struct stream *st;            /* borrowed: the owner */
    char *durable;                /* owned, or NULL */
    char *filter;                 /* owned, or NULL */
    enum consumer_start start;
    uint64_t start_seq;
    uint64_t ack_wait_ms, max_deliver, max_pending;
    uint64_t cursor;        /* next seq to look at for a first delivery */
    struct seglog_pos rpos; /* at cursor */
    struct pend *pend;      /* sorted by seq; [head, n) in use */
    size_t head, n, cap;
    uint64_t live, gone;
    struct heap ready, timers;
    struct member *members, *rr;
    uint32_t n_members;
    struct event *timer;
    int64_t timer_due; /* 0: not armed */
    bool pump_queued, dirty, retry;
    uint64_t delivered, redelivered, dead;
};

static void consumer_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------- keys and records ---- */

/* STREAM \0 DURABLE into KEY: its length. */
static size_t key_consumer(const struct consumer *c, uint8_t *key)
{
    size_t sl = strlen(c->st->name), dl = strlen(c->durable);

    memcpy(key, c->st->name, sl);
    key[sl] = 0;
    memcpy(key + sl + 1, c->durable, dl);
    return sl + 1 + dl;
}

/* STREAM \0 DURABLE \0 SEQ (big-endian). */
static size_t key_pending(const struct consumer *c, uint64_t seq, uint8_t *key)
{
    size_t n = key_consumer(c, key);

    key[n++] = 0;
    for (int i = 7; i >= 0; i--)
        key[n++] = (uint8_t)(seq >> (8 * i));
    return n;
}

static void persist_pending(struct consumer *c, const struct pend *p)
{
    uint8_t key[KEY_MAX];
    uint8_t val[4] = {(uint8_t)p->deliveries, (uint8_t)(p->deliveries >> 8),
                      (uint8_t)(p->deliveries >> 16), (uint8_t)(p->deliveries >> 24)};

    if (c->durable == NULL)
        return;
    statedb_ops_put(store_ops(c->st->store), STATEDB_PENDING, key, key_pending(c, p->seq, key), val,
                    sizeof(val));
}

static void persist_gone(struct consumer *c, uint64_t seq)
{
    uint8_t key[KEY_MAX];

    if (c->durable == NULL)
        return;
    statedb_ops_del(store_ops(c->st->store), STATEDB_PENDING, key, key_pending(c, seq, key));
}

/* Asks the store to write C's record with the next commit. */
static void mark_dirty(struct consumer *c)
{
    if (c->durable == NULL || c->dirty)
        return;
    c->dirty = true;
    store_queue_dirty(c->st->store, c);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static const char *const start_names[] = {
    [CONSUMER_START_ALL] = "all", [CONSUMER_START_NEW] = "new", [CONSUMER_START_LAST] = "last"};

void consumer_persist(struct consumer *c)
{
    msgpack_sbuffer *buf = store_scratch(c->st->store);
    msgpack_packer pk;
    uint8_t key[KEY_MAX];

    c->dirty = false;
    if (c->durable == NULL)
        return;
    msgpack_sbuffer_clear(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_cstr(&pk, "filter");
    if (c->filter != NULL)
        pack_cstr(&pk, c->filter);
    else
        msgpack_pack_nil(&pk);
    pack_cstr(&pk, "start");
    if (c->start == CONSUMER_START_SEQ)
        msgpack_pack_uint64(&pk, c->start_seq);
    else
        pack_cstr(&pk, start_names[c->start]);
    pack_cstr(&pk, "ack_wait");
    msgpack_pack_uint64(&pk, c->ack_wait_ms);
    pack_cstr(&pk, "max_deliver");
    msgpack_pack_uint64(&pk, c->max_deliver);
    pack_cstr(&pk, "max_pending");
    msgpack_pack_uint64(&pk, c->max_pending);
    pack_cstr(&pk, "cursor");
    msgpack_pack_uint64(&pk, c->cursor);
    statedb_ops_put(store_ops(c->st->store), STATEDB_CONSUMERS, key, key_consumer(c, key),
                    buf->data, buf->size);
}

/* ------------------------------------------------------------- heaps ---- */

static void heap_push(struct heap *h, int64_t key, uint64_t seq)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    size_t i = h->n++;
    struct heap_item it = {key, seq};
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h->v[up].key <= key)
            break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = it;
}

static void heap_pop(struct heap *h)
{
    struct heap_item last = h->v[--h->n];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t mk = last.key;
        if (l < h->n && h->v[l].key < mk) {
            m = l;
            mk = h->v[l].key;
        }
        if (r < h->n && h->v[r].key < mk)
            m = r;
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n > 0)
        h->v[i] = last;
}

static void heap_release(struct heap *h)
{
    free(h->v);
    memset(h, 0, sizeof(*h));
}

/* ------------------------------------------------------- pending set ---- */

static struct pend *pend_find(struct consumer *c, uint64_t seq)
{
    size_t lo = c->head, hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pend[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->pend[lo].seq == seq ? &c->pend[lo] : NULL;
}

static struct pend *pend_append(struct consumer *c, uint64_t seq)
{
    if (c->n == c->cap) {
        if (c->head > 0) {
            memmove(c->pend, c->pend + c->head, (c->n - c->head) * sizeof(*c->pend));
            c->n -= c->head;
            c->head = 0;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            c->pend = xrealloc(c->pend, c->cap * sizeof(*c->pend));
        }
    }
    struct pend *p = &c->pend[c->n++];
    memset(p, 0, sizeof(*p));
    p->seq = seq;
    c->live++;
    return p;
}

static void heaps_rebuild(struct consumer *c)
{
    c->ready.n = c->timers.n = 0;
    for (size_t i = c->head; i < c->n; i++) {
        struct pend *p = &c->pend[i];
        if (p->state == PEND_READY)
            heap_push(&c->ready, (int64_t)p->seq, p->seq);
        else if (p->state == PEND_HELD || p->state == PEND_WAIT)
            heap_push(&c->timers, p->due_ms, p->seq);
    }
}

/* Drops GONE entries when they outnumber the live ones. */
static void pend_compact(struct consumer *c)
{
    while (c->head < c->n && c->pend[c->head].state == PEND_GONE) {
        c->head++;
        c->gone--;
    }
    if (c->head == c->n) {
        c->head = c->n = 0;
        c->gone = 0;
    }
    if (c->gone > HEAP_SLACK && c->gone > c->live) {
        size_t w = 0;
        for (size_t i = c->head; i < c->n; i++)
            if (c->pend[i].state != PEND_GONE)
                c->pend[w++] = c->pend[i];
        c->head = 0;
        c->n = w;
        c->gone = 0;
    }
    if (c->ready.n + c->timers.n > 2 * c->live + HEAP_SLACK)
        heaps_rebuild(c);
}

/* P leaves the pending set (acked, given up, dropped). */
static void pend_gone(struct consumer *c, struct pend *p)
{
    if (p->state == PEND_HELD && p->holder != NULL)
        p->holder->held--;
    p->holder = NULL;
    p->state = PEND_GONE;
    c->live--;
    c->gone++;
    persist_gone(c, p->seq);
}

static void pend_ready(struct consumer *c, struct pend *p)
{
    if (p->state == PEND_HELD && p->holder != NULL)
        p->holder->held--;
    p->holder = NULL;
    p->state = PEND_READY;
    heap_push(&c->ready, (int64_t)p->seq, p->seq);
}

/* The READY entry of lowest seq, or NULL (stale heap items are dropped). */
static struct pend *ready_peek(struct consumer *c)
{
    while (c->ready.n > 0) {
        struct pend *p = pend_find(c, c->ready.v[0].seq);
        if (p != NULL && p->state == PEND_READY)
            return p;
        heap_pop(&c->ready);
    }
    return NULL;
}

/* ------------------------------------------------------------ timers ---- */

static void timer_arm(struct consumer *c)
{
    int64_t now = clock_now_ms();

    while (c->timers.n > 0) {
        const struct heap_item *it = &c->timers.v[0];
        struct pend *p = pend_find(c, it->seq);
        if (p != NULL && (p->state == PEND_HELD || p->state == PEND_WAIT) && p->due_ms == it->key)
            break;
        heap_pop(&c->timers);
    }
    if (c->timers.n == 0 || c->timer == NULL)
        return;
    int64_t due = c->timers.v[0].key;
    if (c->timer_due != 0 && c->timer_due <= due)
        return;
    int64_t ms = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->timer_due = due;
}

static void consumer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct consumer *c = arg;
    int64_t now = clock_now_ms();
    bool woke = false;

    c->timer_due = 0;
    while (c->timers.n > 0 && c->timers.v[0].key <= now) {
        struct heap_item it = c->timers.v[0];
        heap_pop(&c->timers);
        struct pend *p = pend_find(c, it.seq);
        if (p == NULL || (p->state != PEND_HELD && p->state != PEND_WAIT) || p->due_ms != it.key)
            continue;
        pend_ready(c, p);
        woke = true;
    }
    timer_arm(c);
    if (woke || c->retry) {
        c->retry = false;
        consumer_schedule(c);
    }
}

/* ------------------------------------------------------------ members ---- */

/* The next member, round robin, whose output has room for LEN bytes; or NULL. */
static struct member *member_pick(struct consumer *c, size_t len)
{
    struct member *m = c->rr != NULL ? c->rr : c->members;

    for (uint32_t i = 0; i < c->n_members && m != NULL; i++) {
        if (session_stored_room(m->sess, m->prefix_len + len)) {
            c->rr = m->next;
            return m;
        }
        m = m->next != NULL ? m->next : c->members;
    }
    for (m = c->members; m != NULL; m = m->next)
        m->wants_room = true;
    return NULL;
}

void consumer_member_drained(struct member *m)
{
    if (!m->wants_room)
        return;
    m->wants_room = false;
    consumer_schedule(m->cons);
}

/* ----------------------------------------------------------- delivery ---- */

/* The opts of a delivery into BUF: stream, seq, attempt, time, then the stored map's entries. */
static void opts_build(msgpack_sbuffer *buf, const struct consumer *c, const struct seglog_rec *r,
                       uint32_t attempt)
{
    msgpack_packer pk;
    struct mpread mr;
    uint32_t stored = 0;

    mpread_init(&mr, r->opts, r->opts_len);
    if (r->opts_len == 0 || !mpread_map(&mr, &stored))
        stored = 0;
    msgpack_sbuffer_clear(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + stored);
    pack_cstr(&pk, "stream");
    pack_cstr(&pk, c->st->name);
    pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, r->seq);
    pack_cstr(&pk, "attempt");
    msgpack_pack_uint32(&pk, attempt);
    pack_cstr(&pk, "time");
    msgpack_pack_uint64(&pk, r->time_ms);
    if (stored > 0)
        msgpack_sbuffer_write(buf, (const char *)mr.p, mpread_left(&mr));
}

/* Sends R to M as attempt ATTEMPT. */
static void send_to(struct consumer *c, struct member *m, const struct seglog_rec *r,
                    uint32_t attempt)
{
    msgpack_sbuffer *buf = store_scratch(c->st->store);

    opts_build(buf, c, r, attempt);
    session_offer_stored(m->sess, m->prefix, m->prefix_len, r->body, r->body_len,
                         (const uint8_t *)buf->data, buf->size);
}

/* Bytes a delivery of R takes besides the prefix (opts estimated generously). */
static size_t delivery_len(const struct consumer *c, const struct seglog_rec *r)
{
    return r->body_len + r->opts_len + 64 + strlen(c->st->name);
}

/* Gives P up: it leaves the pending set, and the dead-letter topic hears of it. */
static void give_up(struct consumer *c, struct pend *p)
{
    struct seglog_pos pos = {0};
    struct seglog_rec rec;
    const char *topic = NULL;
    uint32_t tlen = 0;

    seglog_pos_set(&pos, p->seq);
    if (stream_read(c->st, &pos, &rec) == 0 && !stream_rec_topic(&rec, &topic, &tlen))
        topic = NULL;
    c->dead++;
    uint64_t seq = p->seq;
    uint32_t deliveries = p->deliveries;
    pend_gone(c, p);
    /* Publishing may reach this consumer again (a stream capturing its own
     * dead letters): P is not used after this. */
    store_publish_dead(c->st->store, c->st, c->durable, seq, topic, tlen, deliveries);
}

/* Holds P for M from now, for ack_wait. */
static void hold(struct consumer *c, struct pend *p, struct member *m)
{
    p->state = PEND_HELD;
    p->holder = m;
    p->due_ms = clock_now_ms() + (int64_t)c->ack_wait_ms;
    m->held++;
    heap_push(&c->timers, p->due_ms, p->seq);
    persist_pending(c, p);
    timer_arm(c);
}

/*
 * Delivers READY entry P again.  Returns 1 when sent, 0 when no member has
 * room, -1 when P is gone (its message no longer readable).
 */
static int redeliver(struct consumer *c, struct pend *p)
{
    struct seglog_pos pos = {0};
    struct seglog_rec rec;

    seglog_pos_set(&pos, p->seq);
    int rc = stream_read(c->st, &pos, &rec);
    if (rc != 0) {
        /* Dropped by the limits meanwhile, or damaged: nothing to deliver. */
        heap_pop(&c->ready);
        pend_gone(c, p);
        return -1;
    }
    struct member *m = member_pick(c, delivery_len(c, &rec));
    if (m == NULL)
        return 0;
    heap_pop(&c->ready);
    p->deliveries++;
    send_to(c, m, &rec, p->deliveries);
    hold(c, p, m);
    c->redelivered++;
    c->delivered++;
    return 1;
}

/* The cursor's message, if the filter takes it: 1 sent, 0 no room or nothing, 2 passed over. */
static int deliver_next(struct consumer *c)
{
    struct stream *st = c->st;
    struct seglog_rec rec;

    if (c->cursor < st->first_seq) {
        c->cursor = st->first_seq;
        mark_dirty(c);
    }
    if (c->cursor > st->durable_last)
        return 0;
    if (c->rpos.seq != c->cursor || c->rpos.seg == NULL)
        seglog_pos_set(&c->rpos, c->cursor);
    struct seglog_pos before = c->rpos;
    int rc = stream_read(st, &c->rpos, &rec);
    if (rc == -EBADMSG || rc == -ENOENT) {
        /* Damage skipped, or dropped under us: go on from where the read left off. */
        c->cursor = rc == -ENOENT ? st->first_seq : c->rpos.seq;
        mark_dirty(c);
        return 2;
    }
    if (rc != 0) {
        if (rc != SEGLOG_END) {
            log_error(store_logger(st->store),
                      "stream %s: consumer cannot read seq %" PRIu64 ": %s; trying again in %d ms",
                      st->name, c->cursor, strerror(-rc), RETRY_MS);
            c->retry = true;
            int64_t due = clock_now_ms() + RETRY_MS;
            if (c->timer_due == 0 || c->timer_due > due) {
                struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
                evtimer_add(c->timer, &tv);
                c->timer_due = due;
            }
        }
        return 0;
    }
    const char *topic;
    uint32_t tlen;
    if (c->filter != NULL && (!stream_rec_topic(&rec, &topic, &tlen) ||
                              !topic_matches(c->filter, strlen(c->filter), topic, tlen))) {
        c->cursor++;
        mark_dirty(c);
        return 2;
    }
    struct member *m = member_pick(c, delivery_len(c, &rec));
    if (m == NULL) {
        c->rpos = before;
        return 0;
    }
    send_to(c, m, &rec, 1);
    struct pend *p = pend_append(c, rec.seq);
    p->deliveries = 1;
    hold(c, p, m);
    c->cursor++;
    c->delivered++;
    mark_dirty(c);
    return 1;
}

/* ---------------------------------------------------------------- pump ---- */

void consumer_schedule(struct consumer *c)
{
    if (c->pump_queued || c->n_members == 0)
        return;
    c->pump_queued = true;
    store_queue_pump(c->st->store, c);
}

void consumer_pump(struct consumer *c)
{
    int sent = 0, scanned = 0;

    c->pump_queued = false;
    while (c->n_members > 0 && sent < CONSUMER_STEP && scanned < CONSUMER_SCAN_STEP) {
        struct pend *p = ready_peek(c);
        if (p != NULL) {
            if (c->max_deliver > 0 && p->deliveries >= c->max_deliver) {
                heap_pop(&c->ready);
                give_up(c, p);
                continue;
            }
            int rc = redeliver(c, p);
            if (rc == 0)
                break;
            sent += rc > 0;
            continue;
        }
        if (c->live >= c->max_pending)
            break;
        int rc = deliver_next(c);
        if (rc == 0)
            break;
        if (rc == 1)
            sent++;
        else
            scanned++;
    }
    pend_compact(c);
    if (sent >= CONSUMER_STEP || scanned >= CONSUMER_SCAN_STEP)
        consumer_schedule(c); /* more in a later loop iteration */
}

void consumer_durable(struct consumer *c)
{
    if (c->cursor <= c->st->durable_last)
        consumer_schedule(c);
}

void consumer_stream_dropped(struct consumer *c, uint64_t first_seq)
{
    for (size_t i = c->head; i < c->n && c->pend[i].seq < first_seq; i++)
        if (c->pend[i].state != PEND_GONE)
            pend_gone(c, &c->pend[i]);
    if (c->cursor < first_seq) {
        c->cursor = first_seq;
        mark_dirty(c);
    }
    pend_compact(c);
    consumer_schedule(c);
}

/* ------------------------------------------------------- acks and naks ---- */

enum consumer_ack consumer_ack(struct member *m, uint64_t seq)
{
    struct consumer *c = m->cons;
    struct pend *p = pend_find(c, seq);

    if (p == NULL || p->state == PEND_GONE)
        return CONSUMER_NOT_PENDING;
    bool was_full = c->live >= c->max_pending;
    pend_gone(c, p);
    pend_compact(c);
    if (was_full || c->ready.n > 0)
        consumer_schedule(c);
    return c->durable != NULL ? CONSUMER_STORED : CONSUMER_DONE;
}

enum consumer_ack consumer_nak(struct member *m, uint64_t seq, uint64_t delay_ms)
{
    struct consumer *c = m->cons;
    struct pend *p = pend_find(c, seq);

    if (p == NULL || p->state == PEND_GONE)
        return CONSUMER_NOT_PENDING;
    if (delay_ms == 0) {
        if (p->state != PEND_READY)
            pend_ready(c, p);
        consumer_schedule(c);
        return CONSUMER_DONE;
    }
    if (p->state == PEND_HELD && p->holder != NULL)
        p->holder->held--;
    p->holder = NULL;
    p->state = PEND_WAIT;
    p->due_ms = clock_now_ms() + (int64_t)delay_ms;
    heap_push(&c->timers, p->due_ms, p->seq);
    timer_arm(c);
    return CONSUMER_DONE;
}

/* ------------------------------------------------- making and freeing ---- */

static struct consumer *consumer_new(struct stream *st, const char *durable, size_t dlen)
{
    struct consumer *c = xcalloc(1, sizeof(*c));

    c->st = st;
    c->durable = durable != NULL ? xstrndup(durable, dlen) : NULL;
    c->ack_wait_ms = CONSUMER_ACK_WAIT_MS;
    c->max_pending = CONSUMER_MAX_PENDING;
    c->timer = evtimer_new(store_base(st->store), consumer_timer_cb, c);
    c->next = st->consumers;
    if (st->consumers != NULL)
        st->consumers->prev = c;
    st->consumers = c;
    if (c->durable != NULL)
        hmap_put(&st->durables, c->durable, dlen, c);
    return c;
}

void consumer_free(struct consumer *c)
{
    struct stream *st = c->st;

    while (c->members != NULL) {
        struct member *m = c->members;
        c->members = m->next;
        session_member_forget(m->sess, m);
        free(m);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        st->consumers = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->durable != NULL)
        hmap_remove(&st->durables, c->durable, strlen(c->durable));
    store_consumer_gone(st->store, c);
    if (c->timer != NULL)
        event_free(c->timer);
    heap_release(&c->ready);
    heap_release(&c->timers);
    free(c->pend);
    free(c->durable);
    free(c->filter);
    free(c);
}

/* Where a new consumer starts, from O. */
static uint64_t start_cursor(struct stream *st, const struct consumer *c)
{
    uint64_t last;

    switch (c->start) {
    case CONSUMER_START_NEW:
        return st->last_seq + 1;
    case CONSUMER_START_LAST:
        last = stream_find_last(st, c->filter);
        return last > 0 ? last : st->last_seq + 1;
    case CONSUMER_START_SEQ:
        return c->start_seq > st->first_seq ? c->start_seq : st->first_seq;
    case CONSUMER_START_ALL:
    default:
        return st->first_seq;
    }
}

/* Settings of a new consumer from O (defaults where O says nothing). */
static void settings_from(struct consumer *c, const struct consumer_opts *o)
{
    if (o->has_filter && o->filter != NULL)
        c->filter = xstrndup(o->filter, o->filter_len);
    if (o->has_start) {
        c->start = o->start;
        c->start_seq = o->start_seq;
    }
    if (o->has_ack_wait)
        c->ack_wait_ms = o->ack_wait_ms;
    if (o->has_max_deliver)
        c->max_deliver = o->max_deliver;
    if (o->has_max_pending)
        c->max_pending = o->max_pending;
}

/* Which explicit option of O differs from durable C's: its name, or NULL. */
static const char *settings_differ(const struct consumer *c, const struct consumer_opts *o)
{
    if (o->has_filter) {
        bool same = (o->filter == NULL && c->filter == NULL) ||
                    (o->filter != NULL && c->filter != NULL && strlen(c->filter) == o->filter_len &&
                     memcmp(c->filter, o->filter, o->filter_len) == 0);
        if (!same)
            return "filter";
    }
    if (o->has_start &&
        (o->start != c->start || (o->start == CONSUMER_START_SEQ && o->start_seq != c->start_seq)))
        return "start";
    if (o->has_ack_wait && o->ack_wait_ms != c->ack_wait_ms)
        return "ack_wait";
    if (o->has_max_deliver && o->max_deliver != c->max_deliver)
        return "max_deliver";
    if (o->has_max_pending && o->max_pending != c->max_pending)
        return "max_pending";
    return NULL;
}

int consumer_attach(struct stream *st, struct session *s, uint32_t sid,
                    const struct consumer_opts *o, struct member **out, char *why, size_t why_len)
{
    struct consumer *c = NULL;

    if (o->durable != NULL)
        c = hmap_get(&st->durables, o->durable, o->durable_len);
    if (c != NULL) {
        const char *differs = settings_differ(c, o);
        if (differs != NULL) {
            snprintf(why, why_len,
                     "durable '%s' exists with another %s (leave it out to take the stored one)",
                     c->durable, differs);
            return -PROTO_ERR_BAD_PARAMS;
        }
    } else {
        c = consumer_new(st, o->durable, o->durable_len);
        settings_from(c, o);
        c->cursor = start_cursor(st, c);
        mark_dirty(c);
    }
    struct member *m = xcalloc(1, sizeof(*m));
    m->cons = c;
    m->sess = s;
    m->sid = sid;
    m->prefix_len = (uint8_t)encode_msg_prefix(m->prefix, sid);
    m->next = c->members;
    c->members = m;
    c->n_members++;
    consumer_schedule(c);
    *out = m;
    return 0;
}

void consumer_detach(struct member *m)
{
    struct consumer *c = m->cons;

    for (size_t i = c->head; i < c->n; i++)
        if (c->pend[i].state == PEND_HELD && c->pend[i].holder == m)
            pend_ready(c, &c->pend[i]);
    for (struct member **pp = &c->members; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    if (c->rr == m)
        c->rr = NULL;
    c->n_members--;
    free(m);
    if (c->durable == NULL && c->n_members == 0) {
        consumer_free(c);
        return;
    }
    consumer_schedule(c);
}

/* --------------------------------------------------------------- loading ---- */

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static bool get_u64(const msgpack_object *v, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = v->via.u64;
    return true;
}

/* One key of a stored record into C: false when it is of the wrong type. */
static bool record_field(struct consumer *c, const msgpack_object *k, const msgpack_object *v)
{
    if (key_is(k, "filter")) {
        if (v->type == MSGPACK_OBJECT_STR)
            c->filter = xstrndup(v->via.str.ptr, v->via.str.size);
        return v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_NIL;
    }
    if (key_is(k, "start")) {
        if (get_u64(v, &c->start_seq)) {
            c->start = CONSUMER_START_SEQ;
            return true;
        }
        for (int i = 0; i < 3; i++)
            if (key_is(v, start_names[i]))
                c->start = (enum consumer_start)i;
        return v->type == MSGPACK_OBJECT_STR;
    }
    if (key_is(k, "ack_wait"))
        return get_u64(v, &c->ack_wait_ms);
    if (key_is(k, "max_deliver"))
        return get_u64(v, &c->max_deliver);
    if (key_is(k, "max_pending"))
        return get_u64(v, &c->max_pending);
    if (key_is(k, "cursor"))
        return get_u64(v, &c->cursor);
    return true; /* a key from a later version: ignored */
}

int consumer_load(struct stream *st, const char *durable, size_t dlen, const void *val, size_t vlen)
{
    msgpack_unpacked u;
    size_t off = 0;
    bool ok;

    msgpack_unpacked_init(&u);
    ok = msgpack_unpack_next(&u, val, vlen, &off) == MSGPACK_UNPACK_SUCCESS &&
         u.data.type == MSGPACK_OBJECT_MAP;
    struct consumer *c = ok ? consumer_new(st, durable, dlen) : NULL;
    for (uint32_t i = 0; ok && i < u.data.via.map.size; i++)
        ok = record_field(c, &u.data.via.map.ptr[i].key, &u.data.via.map.ptr[i].val);
    msgpack_unpacked_destroy(&u);
    if (ok && (c->ack_wait_ms == 0 || c->max_pending == 0 ||
               (c->filter != NULL &&
                topic_check(c->filter, strlen(c->filter), TOPIC_PATTERN) != TOPIC_OK)))
        ok = false;
    if (!ok) {
        log_error(store_logger(st->store),
                  "stream %s: durable '%.*s' has an unreadable record in the store; skipped (left "
                  "as it is)",
                  st->name, (int)dlen, durable);
        if (c != NULL)
            consumer_free(c);
        return -1;
    }
    return 0;
}

void consumer_load_pending(struct stream *st, const char *durable, size_t dlen, uint64_t seq,
                           uint32_t deliveries)
{
    struct consumer *c = hmap_get(&st->durables, durable, dlen);

    if (c == NULL || (c->n > c->head && c->pend[c->n - 1].seq >= seq))
        return;
    struct pend *p = pend_append(c, seq);
    p->deliveries = deliveries;
    p->state = PEND_READY;
    heap_push(&c->ready, (int64_t)seq, seq);
}

/* ---------------------------------------------------------------- queries ---- */

struct consumer *consumer_next(const struct consumer *c)
{
    return c->next;
}

struct stream *consumer_stream(const struct consumer *c)
{
    return c->st;
}

const char *consumer_filter(const struct consumer *c)
{
    return c->filter;
}

const char *consumer_durable_name(const struct consumer *c)
{
    return c->durable;
}

uint64_t consumer_num_pending(const struct consumer *c)
{
    const struct stream *st = c->st;
    uint64_t from = c->cursor > st->first_seq ? c->cursor : st->first_seq;

    return st->last_seq + 1 > from ? st->last_seq + 1 - from : 0;
}

uint64_t consumer_ack_pending(const struct consumer *c)
{
    return c->live;
}

uint64_t consumer_ack_floor(const struct consumer *c)
{
    uint64_t floor = (c->cursor > c->st->first_seq ? c->cursor : c->st->first_seq) - 1;

    for (size_t i = c->head; i < c->n; i++)
        if (c->pend[i].state != PEND_GONE)
            return c->pend[i].seq - 1 < floor ? c->pend[i].seq - 1 : floor;
    return floor;
}

uint64_t consumer_redelivered(const struct consumer *c)
{
    return c->redelivered;
}

uint64_t consumer_delivered(const struct consumer *c)
{
    return c->delivered;
}

uint64_t consumer_dead(const struct consumer *c)
{
    return c->dead;
}

uint32_t consumer_member_count(const struct consumer *c)
{
    return c->n_members;
}

uint64_t consumer_memory(const struct consumer *c)
{
    return sizeof(*c) + c->cap * sizeof(*c->pend) +
           (c->ready.cap + c->timers.cap) * sizeof(struct heap_item) +
           c->n_members * sizeof(struct member);
}
