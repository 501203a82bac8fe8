/*
 * conn.c - a client connection's byte pipe (see conn.h for its states).
 *
 * Layers, top-down: set-up; output (staging, the frame-end ring, writing);
 * reading holds; input (budget, framing, dispatch, what is kept between
 * reads); the event callbacks; closing and freeing.
 *
 * Reading.  The connection reads up to LOOP_READ_MAX (256 KiB) at once,
 * through its transport, into its loop's read block, and dispatches the
 * complete frames where they lie, with no copy (libevent 2.1's bufferevents
 * read 4 KiB per callback: four system calls for one 16 KiB message).  The
 * start of a frame left at the end is kept in the input buffer (made the
 * first time one is needed) and the next read completes it; the scanner
 * keeps its place, so no byte is scanned twice.  Input is bounded: a frame
 * over max_payload is refused from its header, so the input buffer never
 * holds more than one frame, plus, when a wake-up's budget ran out, the
 * rest of one read.
 *
 * Sharing.  A frame at least CONN_SHARE_MIN long is shared by every
 * subscriber's output by reference rather than copied into each: a very
 * large one (a quarter of the read buffer or more) straight from the read
 * buffer, which is itself a refcounted block, so with no copy at all; a
 * smaller one is first copied once into a block of its own, so that a
 * subscriber holding it never pins a whole read buffer.
 *
 * Writing.  Output is appended to `out` (small messages copied into space
 * reserved a chunk at a time); the loop's flush job writes it once per
 * batch, before the loop sleeps, as Redis does (conn_write_now), and only
 * what the socket does not take waits for the write event.  A client that
 * sends requests without reading the responses stops being read until its
 * output drains.
 *
 * Closing never frees: conn_close moves the connection to CLOSING and the
 * loop's reap job does the rest, after the callback at hand has returned.
 */
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "budget.h"
#include "clock.h"
#include "dispatch.h"
#include "encode.h"
#include "listener.h"
#include "proto.h"
#include "server.h"
#include "transport.h"
#include "xalloc.h"

/* Frames at least this long are copied into a block and shared by
 * reference; shorter ones are copied into each subscriber's output, which
 * is cheaper than a reference below about this size (docs/performance.md). */
#define CONN_SHARE_MIN (8 * 1024)

/* Reservations in the output: the first of a batch, and the largest. */
#define CONN_STAGE_MIN 1024
#define CONN_STAGE_MAX (32 * 1024)

/* Largest single write; libevent's default is 16 KiB. */
#define CONN_MAX_SINGLE_WRITE (1024 * 1024)

/* A frame still arriving with this much buffered is read as a heavy read (loop.h). */
#define CONN_HEAVY_PARTIAL (64 * 1024)

/* Frame-end ring: its first size, and the size it goes back to once it empties. */
#define CONN_ENDS_MIN  16
#define CONN_ENDS_KEEP 256

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_drained(struct conn *c);
static void conn_finish(struct conn *c);
static void conn_arm_timer(struct conn *c, uint32_t ms);

/* ---------------------------------------------------------------- set-up */

/* Waits for input, with idle_timeout as the read event's timeout. */
static void conn_arm_reading(struct conn *c)
{
    uint32_t idle = c->loop->conf->idle_timeout_ms;
    struct timeval tv = {.tv_sec = idle / 1000, .tv_usec = (idle % 1000) * 1000};

    /* event_add(NULL) keeps a timeout set earlier: with idle_timeout turned
     * off by a reload, drop it first. */
    if (idle == 0)
        event_del(c->read_ev);
    event_add(c->read_ev, idle > 0 ? &tv : NULL);
}

void conn_apply_config(struct conn *c)
{
    /* The scanner takes the new max_payload at the next frame. */
    if (c->state == CONN_OPEN && c->holds == 0)
        conn_arm_reading(c);
}

const char *conn_peer(const struct conn *c)
{
    return c->tp->peer;
}

struct conn *conn_new(struct loop *lp, struct listener *l, evutil_socket_t fd,
                      const struct sockaddr *peer, socklen_t peerlen, struct transport *tp)
{
    struct server *srv = lp->srv;
    struct conn *c = xcalloc(1, sizeof(*c));

    if (tp == NULL)
        tp = transport_socket_new(fd, peer, peerlen, listener_address(l));
    c->tp = tp;
    c->out = evbuffer_new();
    c->read_ev = event_new(lp->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->write_ev = event_new(lp->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    c->timer_ev = evtimer_new(lp->base, conn_timer_cb, c);
    if (c->out == NULL || c->read_ev == NULL || c->write_ev == NULL || c->timer_ev == NULL) {
        struct event *evs[] = {c->read_ev, c->write_ev, c->timer_ev};
        for (size_t i = 0; i < 3; i++)
            if (evs[i] != NULL)
                event_free(evs[i]);
        if (c->out != NULL)
            evbuffer_free(c->out);
        transport_free(tp);
        free(c);
        return NULL;
    }
    c->loop = lp;
    c->listener = listener_ref(l);
    l->active++; /* for monitoring; listener_conn_gone undoes it */
    c->state = CONN_OPEN;
    c->opened_ms = clock_now_ms();
    c->close_reason = "closed";
    c->stage_chunk = CONN_STAGE_MIN;
    frame_scanner_init(&c->scan, lp->conf->max_payload);
    session_init(&c->sess, c, srv->router, ++srv->next_client_id);
    conn_arm_reading(c);
    if (!tp->ops->ready(tp))
        conn_arm_timer(c, CONN_HANDSHAKE_MS); /* conn_timer_cb while OPEN: see there */

    TAILQ_INSERT_TAIL(&lp->conns, c, link);
    lp->n_conns++;
    srv->n_conns++;
    lp->stats.conns_accepted++;
    log_info(lp->log, "client %llu connected from %s (listener %s)", (unsigned long long)c->sess.id,
             c->tp->peer, listener_name(l));
    return c;
}

/* ---------------------------------------------------------------- output */

/* Resizes C's frame-end ring to CAP entries (a power of two, >= its count). */
static void ends_resize(struct conn *c, uint32_t cap)
{
    struct conn_ends *e = &c->ends;
    uint64_t *v = cap > 0 ? xmalloc(cap * sizeof(*v)) : NULL;

    for (uint32_t i = 0; i < e->n; i++)
        v[i] = e->v[(e->head + i) & (e->cap - 1)];
    c->loop->mem_out += (uint64_t)cap * sizeof(*v);
    c->loop->mem_out -= (uint64_t)e->cap * sizeof(*v);
    free(e->v);
    e->v = v;
    e->cap = cap;
    e->head = 0;
}

/* Notes that a frame (a msg when IS_MSG) ends where the output now ends. */
static inline void ends_push(struct conn *c, bool is_msg)
{
    struct conn_ends *e = &c->ends;

    if (e->n == e->cap)
        ends_resize(c, e->cap ? e->cap * 2 : CONN_ENDS_MIN);
    e->v[(e->head + e->n) & (e->cap - 1)] = c->out_total << 1 | is_msg;
    e->n++;
    e->msgs += is_msg;
}

/* Forgets the frames written to the end. */
static void ends_pop_written(struct conn *c)
{
    struct conn_ends *e = &c->ends;

    while (e->n > 0) {
        uint64_t v = e->v[e->head];
        if ((v >> 1) > c->out_written)
            break;
        e->msgs -= (uint32_t)(v & 1);
        e->head = (e->head + 1) & (e->cap - 1);
        e->n--;
    }
    /* Back to KEEP, not to MIN: a connection under steady load empties its ring at every
     * flush, and growing it again from MIN cost a resize per doubling each time. */
    if (e->n == 0 && e->cap > CONN_ENDS_KEEP)
        ends_resize(c, CONN_ENDS_KEEP);
}

/* Bytes were added to the output (or, with a negative N, dropped from it). */
static inline void conn_out_added(struct conn *c, size_t n)
{
    c->out_total += n;
    c->loop->mem_out += n;
}

/*
 * Messages are copied into space reserved at the end of `out`, a chunk at a
 * time, and committed when the chunk is full or something else must be
 * added: one memcpy per message instead of a reserve/commit pair, which
 * cost more than the copy.  A chunk starts small and doubles within a batch,
 * so a subscriber sent one message holds one small chain, not a large one.
 */
static void conn_stage_commit(struct conn *c)
{
    if (c->stage.iov_base == NULL)
        return;
    c->stage.iov_len = c->stage_used;
    if (evbuffer_commit_space(c->out, &c->stage, 1) < 0)
        abort(); /* the reservation was lost: never drop bytes silently */
    c->stage.iov_base = NULL;
    c->stage_used = 0;
}

/* N contiguous bytes at the end of the output, to be filled now. */
static uint8_t *conn_stage(struct conn *c, size_t n)
{
    if (c->stage.iov_base != NULL) {
        if (c->stage.iov_len - c->stage_used >= n) {
            uint8_t *p = (uint8_t *)c->stage.iov_base + c->stage_used;
            c->stage_used += n;
            return p;
        }
        conn_stage_commit(c);
        if (c->stage_chunk < CONN_STAGE_MAX)
            c->stage_chunk *= 2;
    }
    size_t want = n > c->stage_chunk ? n : c->stage_chunk;
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)want, &c->stage, 1) < 1)
        abort(); /* libevent out of memory: the xalloc policy */
    c->stage_used = n;
    return c->stage.iov_base;
}

static void conn_mark_pending(struct conn *c)
{
    if (c->pending)
        return;
    c->pending = true;
    if (TAILQ_EMPTY(&c->loop->pending))
        loop_schedule_flush(c->loop);
    TAILQ_INSERT_TAIL(&c->loop->pending, c, job_link);
}

/* Appends FRAME whatever the state (a last error notification while closing). */
static void conn_append_frame(struct conn *c, const void *frame, size_t len)
{
    memcpy(conn_stage(c, len), frame, len);
    conn_out_added(c, len);
    ends_push(c, false);
}

void conn_send_held(struct conn *c, const void *frame, size_t len)
{
    /* Once closing, nothing more is sent. */
    if (c->state != CONN_OPEN)
        return;
    conn_mark_pending(c);
    conn_append_frame(c, frame, len);
}

void conn_send_frame(struct conn *c, const void *frame, size_t len)
{
    if (c->sess.replies != NULL && session_reply_hold(&c->sess, frame, len))
        return;
    conn_send_held(c, frame, len);
}

bool conn_send_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk)
{
    size_t n = plen + blen + olen;

    if (c->state != CONN_OPEN)
        return false;
    conn_mark_pending(c);
    if (blk != NULL && blen >= CONN_SHARE_MIN) {
        uint8_t head[ENCODE_MSG_PREFIX_MAX];
        encode_msg_header(head, prefix, plen, olen > 0);
        conn_stage_commit(c);
        if (evbuffer_add(c->out, head, plen) < 0 || block_add_to(blk, c->out, body, blen) < 0 ||
            (olen > 0 && evbuffer_add(c->out, opts, olen) < 0))
            abort(); /* libevent out of memory: the xalloc policy */
    } else {
        uint8_t *p = conn_stage(c, n);
        encode_msg_header(p, prefix, plen, olen > 0);
        memcpy(p + plen, body, blen);
        if (olen > 0)
            memcpy(p + plen + blen, opts, olen);
    }
    conn_out_added(c, n);
    ends_push(c, true);
    c->stats.msgs_out++;
    c->stats.bytes_out += n;
    c->loop->stats.msgs_out++;
    c->loop->stats.bytes_out += n;
    return true;
}

/*
 * Drops every frame queued behind the one being written (which goes on),
 * and returns how many of them were messages.
 */
static uint64_t conn_discard_tail(struct conn *c)
{
    struct conn_ends *e = &c->ends;

    conn_stage_commit(c);
    if (e->n == 0)
        return 0;
    uint64_t first = e->v[e->head];
    uint64_t keep_end = first >> 1;
    uint64_t dropped = e->msgs - (first & 1);
    struct evbuffer *kept = evbuffer_new();
    if (kept == NULL ||
        evbuffer_remove_buffer(c->out, kept, (size_t)(keep_end - c->out_written)) < 0)
        abort(); /* libevent out of memory: the xalloc policy */
    evbuffer_free(c->out);
    c->out = kept;
    c->loop->mem_out -= c->out_total - keep_end;
    c->out_total = keep_end;
    e->n = 1;
    e->msgs = (uint32_t)(first & 1);
    return dropped;
}

/* The socket failed: nothing more can be written. */
static void conn_lost(struct conn *c)
{
    c->peer_gone = true;
    if (c->writing) {
        c->writing = false;
        event_del(c->write_ev);
    }
    if (c->state == CONN_OPEN)
        conn_close(c, "connection error", 0, NULL);
    else
        conn_finish(c);
}

/* N bytes were written. */
static void conn_written(struct conn *c, size_t n)
{
    c->out_written += n;
    c->loop->mem_out -= n;
    ends_pop_written(c);
}

/*
 * Writes what the socket takes of the output now, before the loop sleeps,
 * as Redis does, instead of waiting a loop iteration for a writable event:
 * that saves an epoll_wait and two epoll_ctl calls per batch.  Only when the
 * socket is full does the write event take over until the output drains.
 */
static void conn_write_now(struct conn *c)
{
    short want = EV_WRITE;

    /* Space reserved at the end of the output must be committed before any
     * of it is written: a write drains chains, and could free the one the
     * reservation lies in (the write event can fire between a fan-out that
     * staged messages and the flush job). */
    conn_stage_commit(c);
    ssize_t n = transport_write(c->tp, c->out, CONN_MAX_SINGLE_WRITE, &want);

    if (n < 0) {
        conn_lost(c);
        return;
    }
    conn_written(c, (size_t)n);
    if (conn_queued(c) > 0) {
        if (!c->writing) {
            c->writing = true;
            event_add(c->write_ev, NULL);
        }
        return;
    }
    if (c->writing) {
        c->writing = false;
        if (!c->read_wants_write)
            event_del(c->write_ev);
    }
    conn_drained(c);
}

void conn_flush(struct conn *c)
{
    if (c->pending) {
        TAILQ_REMOVE(&c->loop->pending, c, job_link);
        c->pending = false;
    }
    conn_stage_commit(c);
    c->stage_chunk = CONN_STAGE_MIN;
    if (!c->writing && !c->peer_gone && conn_queued(c) > 0)
        conn_write_now(c);
    /* A client that does not read its responses stops being read. */
    if (c->state == CONN_OPEN && conn_queued(c) > c->loop->conf->max_outbound)
        conn_hold(c, CONN_HOLD_OUTPUT);
}

/* The output has been written to the end. */
static void conn_drained(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        conn_finish(c);
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    if (c->holds & CONN_HOLD_OUTPUT)
        conn_release(c, CONN_HOLD_OUTPUT);
    session_drained(&c->sess);
}

/* ------------------------------------------------------------- holds */

void conn_hold(struct conn *c, uint8_t why)
{
    if (c->holds == 0 && c->state == CONN_OPEN)
        event_del(c->read_ev);
    c->holds |= why;
}

void conn_release(struct conn *c, uint8_t why)
{
    if (!(c->holds & why))
        return;
    c->holds &= (uint8_t)~why;
    if (c->state != CONN_OPEN)
        return;
    /* Frames held back, or already read by the transport, go first. */
    if (c->backlog || c->tp->ops->pending(c->tp) > 0)
        loop_defer(c->loop, c);
    if (c->holds == 0)
        conn_arm_reading(c);
}

/* ----------------------------------------------------------------- input */

/* Work done in one wake-up, against CONN_WAKEUP_FRAMES and CONN_WAKEUP_NS. */
struct conn_budget {
    uint32_t frames;
    uint64_t deadline_ns;
};

static void budget_begin(struct conn_budget *b)
{
    b->frames = 0;
    b->deadline_ns = clock_now_ns() + CONN_WAKEUP_NS;
}

/* Counts one frame; true once the wake-up has done its share.  Reads the clock every 16 frames. */
static bool budget_spent(struct conn_budget *b)
{
    if ((++b->frames & 15) != 0)
        return false;
    return b->frames >= CONN_WAKEUP_FRAMES || clock_now_ns() >= b->deadline_ns;
}

/* A frame the scanner refused: the stream cannot be trusted any further. */
static void conn_bad_stream(struct conn *c, enum frame_status st)
{
    int code = st == FRAME_ERR_TOO_LARGE ? PROTO_ERR_TOO_LARGE : PROTO_ERR_BAD_FRAME;

    c->loop->stats.protocol_errors++;
    loop_warn(c->loop, LOOP_WARN_PROTOCOL, "client %llu (%s): %s", (unsigned long long)c->sess.id,
              c->tp->peer, frame_strerror(st));
    conn_close(c, code == PROTO_ERR_TOO_LARGE ? "frame too large" : "bad frame", code,
               frame_strerror(st));
}

static void conn_next_frame(struct conn *c)
{
    frame_scanner_reset(&c->scan);
    c->scan.max_frame = c->loop->conf->max_payload;
}

/*
 * Dispatches the complete frame at FRAME (LEN bytes), which lies in the
 * loop's read block when it came whole in one read (BLK), or in the input
 * buffer (BLK NULL), whence a large frame is copied into a block of its own
 * so that it can be shared.
 */
static void conn_dispatch(struct conn *c, const uint8_t *frame, size_t len, struct block *blk)
{
    if (len < CONN_SHARE_MIN) {
        dispatch_frame(&c->sess, frame, len, NULL);
    } else if (blk != NULL && len >= LOOP_READ_MAX / 4) {
        dispatch_frame(&c->sess, frame, len, blk);
    } else {
        blk = block_new(len);
        memcpy(blk->data, frame, len);
        dispatch_frame(&c->sess, blk->data, len, blk);
        block_unref(blk);
    }
    conn_next_frame(c);
}

/* Why a batch of frames stopped. */
enum batch_stop {
    BATCH_END,     /* every byte was dispatched */
    BATCH_PARTIAL, /* at the start of a frame still arriving, which the scanner has read */
    BATCH_YIELD,   /* at a frame boundary: the budget is spent, or the session holds input */
    BATCH_CLOSED,  /* the connection closed */
};

/*
 * Dispatches the complete frames at the start of DATA (the scanner is at a
 * frame boundary) where they lie (in BLK when not NULL).  Returns the bytes
 * they took and, in *STOP, why it stopped there.
 */
static size_t conn_read_batch(struct conn *c, const uint8_t *data, size_t len, struct block *blk,
                              struct conn_budget *b, enum batch_stop *stop)
{
    size_t off = 0;

    *stop = BATCH_END;
    while (off < len) {
        size_t used;
        if (c->state != CONN_OPEN) {
            *stop = BATCH_CLOSED;
            return off;
        }
        if (c->holds & CONN_HOLD_SESSION) {
            *stop = BATCH_YIELD;
            return off;
        }
        enum frame_status st = frame_scan(&c->scan, data + off, len - off, &used);
        if (st == FRAME_MORE) {
            *stop = BATCH_PARTIAL;
            return off;
        }
        if (st != FRAME_DONE) {
            conn_bad_stream(c, st);
            *stop = BATCH_CLOSED;
            return off;
        }
        conn_dispatch(c, data + off, used, blk);
        off += used;
        if (off < len && budget_spent(b)) {
            *stop = BATCH_YIELD;
            return off;
        }
    }
    if (c->state != CONN_OPEN)
        *stop = BATCH_CLOSED;
    return off;
}

/* Appends DATA to the input buffer, charged to the loop's memory. */
static void conn_in_add(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->in == NULL && (c->in = evbuffer_new()) == NULL)
        abort(); /* libevent out of memory: the xalloc policy */
    if (evbuffer_add(c->in, data, len) < 0)
        abort();
    c->in_len += len;
    c->loop->mem_in += len;
}

/* Drops the first LEN bytes of the input buffer. */
static void conn_in_drain(struct conn *c, size_t len)
{
    evbuffer_drain(c->in, len);
    c->in_len -= len;
    c->loop->mem_in -= len;
}

/*
 * Keeps DATA, the start of a frame still arriving.  While the broker is
 * over its memory budget and still cannot free enough, a connection may not
 * start or grow one: it gets error 10 and is closed.  Returns false then.
 */
static bool conn_keep_partial(struct conn *c, const uint8_t *data, size_t len)
{
    if (budget_refusing(c->loop->srv)) {
        budget_refused_frame(c->loop->srv);
        conn_close(c, "memory budget", PROTO_ERR_LIMIT,
                   "broker memory full (max_memory): cannot buffer a partial frame");
        return false;
    }
    conn_in_add(c, data, len);
    return true;
}

/* Dispatches the frame the input buffer holds, now complete, and empties it. */
static void conn_dispatch_in(struct conn *c)
{
    size_t flen = c->in_len;

    if (flen >= CONN_SHARE_MIN) {
        struct block *blk = block_new(flen);
        evbuffer_copyout(c->in, blk->data, flen);
        conn_in_drain(c, flen);
        conn_dispatch(c, blk->data, flen, blk);
        block_unref(blk);
    } else {
        conn_dispatch(c, evbuffer_pullup(c->in, -1), flen, NULL);
        conn_in_drain(c, flen);
    }
}

/*
 * Feeds DATA to the frame under way in the input buffer.  Returns the bytes
 * it took: all of them while the frame goes on; when it completes, the
 * frame (then all of the input buffer) has been dispatched and drained.
 */
static size_t conn_read_rest(struct conn *c, const uint8_t *data, size_t len)
{
    size_t used;
    enum frame_status st = frame_scan(&c->scan, data, len, &used);

    if (st < 0) {
        conn_bad_stream(c, st);
        return len;
    }
    if (st == FRAME_MORE) {
        conn_keep_partial(c, data, used);
        return used;
    }
    conn_in_add(c, data, used);
    conn_dispatch_in(c);
    return used;
}

/* What a batch left at DATA (LEN bytes), by why it stopped. */
static void conn_keep_rest(struct conn *c, const uint8_t *data, size_t len, enum batch_stop stop)
{
    if (stop == BATCH_PARTIAL) {
        conn_keep_partial(c, data, len);
    } else if (stop == BATCH_YIELD) {
        /* Whole frames wait, unscanned, for a later wake-up. */
        conn_in_add(c, data, len);
        c->backlog = true;
        conn_hold(c, CONN_HOLD_BACKLOG);
        if (!(c->holds & CONN_HOLD_SESSION))
            loop_defer(c->loop, c);
    }
}

/* Handles N bytes just read into DATA (the loop's read block BLK). */
static void conn_handle_input(struct conn *c, const uint8_t *data, size_t n, struct block *blk,
                              struct conn_budget *b)
{
    size_t off = 0;
    enum batch_stop stop;

    c->stats.bytes_in += n;
    if (c->in_len > 0) {
        off = conn_read_rest(c, data, n);
        if (c->state != CONN_OPEN || c->in_len > 0)
            return;
    }
    off += conn_read_batch(c, data + off, n - off, blk, b, &stop);
    if (off < n)
        conn_keep_rest(c, data + off, n - off, stop);
}

/*
 * The body of a large frame still arriving: read it straight into the input
 * buffer (no copy through the read block), at most to the end of the body,
 * so that only body bytes come.  Returns what read() returned.
 */
static ssize_t conn_read_body(struct conn *c, size_t cap, short *want)
{
    struct evbuffer_iovec v;
    size_t len = c->scan.skip < cap ? c->scan.skip : cap;
    size_t used;

    if (budget_refusing(c->loop->srv)) {
        conn_keep_partial(c, NULL, 0); /* refuses it, and closes */
        return 0;
    }
    if (evbuffer_reserve_space(c->in, (ev_ssize_t)len, &v, 1) < 1)
        abort(); /* libevent out of memory: the xalloc policy */
    ssize_t n = transport_read(c->tp, v.iov_base, len, want);
    if (n <= 0) {
        v.iov_len = 0;
        evbuffer_commit_space(c->in, &v, 1);
        return n;
    }
    /* Body bytes only: the frame goes on, or ends with the last of them. */
    enum frame_status st = frame_scan(&c->scan, v.iov_base, (size_t)n, &used);
    v.iov_len = (size_t)n;
    evbuffer_commit_space(c->in, &v, 1);
    c->in_len += (size_t)n;
    c->loop->mem_in += (size_t)n;
    c->stats.bytes_in += (size_t)n;
    if (st == FRAME_DONE)
        conn_dispatch_in(c);
    return n;
}

/* Reads once through the transport and handles what came. */
static void conn_read_socket(struct conn *c)
{
    struct conn_budget b;
    short want = EV_READ;
    ssize_t n;
    size_t cap = loop_read_cap(c->loop);
    bool heavy = c->in_len >= CONN_HEAVY_PARTIAL;

    /* Level-triggered: a read put off now is offered again at the next poll. */
    if (heavy && cap < LOOP_READ_MAX)
        return;
    if (heavy && c->scan.skip >= CONN_HEAVY_PARTIAL) {
        n = conn_read_body(c, cap, &want);
        if (n == 0)
            return;
    } else {
        struct block *rblk = loop_read_block(c->loop);
        n = transport_read(c->tp, rblk->data, cap, &want);
        if (n > 0) {
            budget_begin(&b);
            conn_handle_input(c, rblk->data, (size_t)n, rblk, &b);
        }
    }
    if (n > 0) {
        loop_count_read(c->loop, (size_t)n);
        budget_check(c->loop->srv); /* input kept, or output queued, may have passed it */
    } else if (n == TRANSPORT_CLOSED) {
        conn_close(c, "closed by client", 0, NULL);
    } else if (n == TRANSPORT_FAILED) {
        c->peer_gone = true;
        conn_close(c, "connection error", 0, NULL);
    } else if (want == EV_WRITE && !c->read_wants_write) {
        c->read_wants_write = true; /* TLS: the read must send first */
        if (!c->writing)
            event_add(c->write_ev, NULL);
    }
    /* A transport holding input it already read (TLS) gets no readable event for it. */
    if (c->state == CONN_OPEN && c->holds == 0 && c->tp->ops->pending(c->tp) > 0)
        loop_defer(c->loop, c);
}

/* Dispatches the frames held in the input buffer, as the budget allows. */
static void conn_resume_backlog(struct conn *c)
{
    struct conn_budget b;
    enum batch_stop stop;

    budget_begin(&b);
    const uint8_t *data = evbuffer_pullup(c->in, -1);
    size_t off = conn_read_batch(c, data, c->in_len, NULL, &b, &stop);
    if (c->in != NULL) /* freed only by the reap job, but be plain about it */
        conn_in_drain(c, off);
    if (stop == BATCH_YIELD) {
        if (!(c->holds & CONN_HOLD_SESSION))
            loop_defer(c->loop, c);
        return;
    }
    if (stop == BATCH_CLOSED)
        return;
    /* What is left, if anything, is a frame still arriving, already scanned. */
    c->backlog = false;
    conn_release(c, CONN_HOLD_BACKLOG);
}

void conn_resume(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    if (c->backlog && !(c->holds & CONN_HOLD_SESSION))
        conn_resume_backlog(c);
    if (c->state == CONN_OPEN && session_replaying(&c->sess) && !c->sess.replay_waiting)
        session_continue(&c->sess);
    if (c->state == CONN_OPEN && c->holds == 0 && c->tp->ops->pending(c->tp) > 0)
        conn_read_socket(c);
}

/* ------------------------------------------------------------- callbacks */

/* The socket is readable, or idle_timeout passed without a byte. */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->state != CONN_OPEN)
        return;
    if (what & EV_TIMEOUT) {
        conn_close(c, "idle timeout", PROTO_ERR_LIMIT,
                   "idle timeout: nothing received within idle_timeout");
        return;
    }
    conn_read_socket(c);
}

/* The socket is writable (armed while output waits, or for a TLS read). */
static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (c->read_wants_write) {
        c->read_wants_write = false;
        if (!c->writing)
            event_del(c->write_ev);
        if (c->state == CONN_OPEN && c->holds == 0)
            conn_read_socket(c);
    }
    if (c->writing && !c->peer_gone) {
        c->writing = false; /* conn_write_now arms it again if need be */
        conn_write_now(c);
        if (!c->writing && !c->read_wants_write)
            event_del(c->write_ev);
    }
}

/* --------------------------------------------------------------- closing */

/* A closing connection has written all it will: free it in the reap job. */
static void conn_finish(struct conn *c)
{
    c->state = CONN_DEAD;
    evtimer_del(c->timer_ev);
    if (!c->reaping) {
        c->reaping = true;
        TAILQ_INSERT_TAIL(&c->loop->dead, c, job_link);
        loop_schedule_reap(c->loop);
    }
}

/* Arms the closing timer for MS milliseconds. */
static void conn_arm_timer(struct conn *c, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer_ev, &tv);
}

/* Queues the error notification CODE, MESSAGE after whatever is queued now. */
static void conn_append_error(struct conn *c, int code, const char *message)
{
    msgpack_sbuffer *buf = loop_frame_buf(c->loop);

    encode_error_notification(buf, code, message);
    conn_append_frame(c, buf->data, buf->size);
}

/* Stops reading and queues C for the reap job. */
static void conn_begin_close(struct conn *c, const char *reason)
{
    struct loop *lp = c->loop;

    c->state = CONN_CLOSING;
    c->close_reason = reason;
    event_del(c->read_ev);
    conn_stage_commit(c);
    /* job_link serves the pending list and the dead list in turn: the
     * closing flush (conn_drain_within) writes without the flush job. */
    if (c->pending) {
        TAILQ_REMOVE(&lp->pending, c, job_link);
        c->pending = false;
    }
    /* The reap job ends the session (never mid-fan-out) and frees C once its
     * output is written or cannot be.  conn_finish may already have queued
     * it: a second insert would corrupt the dead list. */
    if (!c->reaping) {
        c->reaping = true;
        TAILQ_INSERT_TAIL(&lp->dead, c, job_link);
        loop_schedule_reap(lp);
    }
}

/* Writes what is left, if anything, and frees C once written or after MS. */
static void conn_drain_within(struct conn *c, uint32_t ms)
{
    conn_flush(c);
    if (c->state != CONN_CLOSING)
        return; /* the flush found the peer gone, or wrote everything */
    if (conn_queued(c) == 0 || c->peer_gone || ms == 0)
        conn_finish(c);
    else
        conn_arm_timer(c, ms);
}

void conn_close(struct conn *c, const char *reason, int code, const char *message)
{
    if (c->state != CONN_OPEN)
        return;
    if (!c->tp->ops->ready(c->tp))
        c->peer_gone = true; /* mid-handshake: nothing can be written */
    conn_begin_close(c, reason);
    if (code != 0)
        conn_append_error(c, code, message);
    conn_drain_within(c, c->loop->conf->drain_timeout_ms);
}

/*
 * Drops what C cannot take behind its current frame, and tells it how many
 * in an error CODE: "WHY: N queued messages not delivered".
 */
static void conn_cut_queue(struct conn *c, int code, const char *why)
{
    char text[256];
    uint64_t dropped = conn_discard_tail(c);

    c->discarding = true;
    c->stats.undelivered += dropped;
    c->loop->stats.undelivered += dropped;
    snprintf(text, sizeof(text), "%s: %llu queued messages not delivered", why,
             (unsigned long long)dropped);
    conn_append_error(c, code, text);
}

void conn_close_discarding(struct conn *c, const char *reason, int code, const char *why)
{
    if (c->state != CONN_OPEN)
        return;
    conn_begin_close(c, reason);
    conn_cut_queue(c, code, why);
    uint32_t drain = c->loop->conf->drain_timeout_ms;
    conn_drain_within(c, drain < CONN_GRACE_MS ? drain : CONN_GRACE_MS);
}

/*
 * drain_timeout passed while closing.  A connection with messages still
 * queued is told how many it will not get, in an error notification right
 * behind the frame being written, and gets CONN_GRACE_MS to read it.
 */
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char why[128];

    if (c->state == CONN_OPEN && !c->tp->ops->ready(c->tp)) {
        conn_close(c, "TLS handshake timeout", 0, NULL);
        return;
    }
    if (c->state != CONN_CLOSING)
        return;
    if (c->discarding || c->peer_gone || c->ends.msgs == 0) {
        conn_finish(c);
        return;
    }
    snprintf(why, sizeof(why), "%s, and drain_timeout passed", c->close_reason);
    conn_cut_queue(c, PROTO_ERR_SLOW_CONSUMER, why);
    conn_drain_within(c, CONN_GRACE_MS);
}

void conn_destroy(struct conn *c)
{
    if (c->state == CONN_OPEN)
        conn_close(c, "server stopped", 0, NULL);
    c->state = CONN_DEAD;
    conn_reap(c);
}

/* Frees what C holds; it is off every list. */
static void conn_free(struct conn *c)
{
    struct loop *lp = c->loop;

    lp->mem_out -= conn_queued(c) + (uint64_t)c->ends.cap * sizeof(*c->ends.v);
    lp->mem_in -= c->in_len;
    event_free(c->read_ev);
    event_free(c->write_ev);
    event_free(c->timer_ev);
    if (c->in != NULL)
        evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c->ends.v);
    if (!c->peer_gone)
        c->tp->ops->shutdown(c->tp); /* TLS: close_notify */
    transport_free(c->tp);
    listener_conn_gone(c->listener, &c->stats);
    listener_unref(c->listener);
    free(c);
}

void conn_reap(struct conn *c)
{
    struct loop *lp = c->loop;
    struct server *srv = lp->srv;

    if (c->reaping) {
        TAILQ_REMOVE(&lp->dead, c, job_link);
        c->reaping = false;
    }
    session_fini(&c->sess);
    if (c->state == CONN_CLOSING)
        return; /* still writing; conn_finish queues it again */
    if (c->pending)
        TAILQ_REMOVE(&lp->pending, c, job_link);
    if (c->deferred)
        TAILQ_REMOVE(&lp->deferred, c, defer_link);
    TAILQ_REMOVE(&lp->conns, c, link);
    lp->n_conns--;
    /* What was still queued is lost with the socket. */
    c->stats.undelivered += c->ends.msgs;
    lp->stats.undelivered += c->ends.msgs;
    server_conn_undelivered(srv, c->stats.undelivered);
    log_info(lp->log,
             "client %llu (%s) disconnected: %s; in %llu msgs %llu bytes, out %llu msgs "
             "%llu bytes, dropped %llu, undelivered %llu, %lld ms",
             (unsigned long long)c->sess.id, c->tp->peer, c->close_reason,
             (unsigned long long)c->stats.msgs_in, (unsigned long long)c->stats.bytes_in,
             (unsigned long long)c->stats.msgs_out, (unsigned long long)c->stats.bytes_out,
             (unsigned long long)c->stats.dropped, (unsigned long long)c->stats.undelivered,
             (long long)(clock_now_ms() - c->opened_ms));
    conn_free(c);
    server_conn_freed(srv);
}
