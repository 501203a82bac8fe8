/*
 * conn.c - a client connection (see conn.h for its states).
 *
 * Reading.  The bufferevent does the writing, but not the reading:
 * libevent 2.1 reads at most 4 KiB per callback (EVBUFFER_MAX_READ), which
 * costs four system calls for one 16 KiB message, so the connection has
 * its own read event and reads up to LOOP_READ_MAX (256 KiB) at once into
 * its loop's read buffer.  Complete frames are scanned and dispatched where
 * they lie there, with no copy; the start of a frame left at the end is
 * kept in the connection's input buffer (made the first time one is
 * needed), and the next read completes it.  The scanner keeps its place,
 * so no byte is scanned twice.  Input is bounded: a frame over max_payload
 * is refused from its header, so the input buffer never holds more than
 * one frame.
 *
 * Sharing.  A frame at least CONN_SHARE_MIN long is shared by every
 * subscriber's output by reference rather than copied into each: a very
 * large one (a quarter of the read buffer or more) straight from the read
 * buffer, which is itself a refcounted block, so with no copy at all; a
 * smaller one is first copied once into a block of its own, so that a
 * subscriber holding it never pins a whole read buffer (a read block a slow
 * output still refers to pins at most four times the bytes referred to).
 *
 * Writing.  Output goes to `staging`; the loop's flush job moves it to the
 * socket buffer once per batch and writes what the socket takes at once
 * (conn_write_now); the bufferevent writes the rest when it can.  A message
 * is queued only while the connection's queued bytes stay under
 * max_outbound; past it, the slow-consumer policy applies.  A client that
 * sends requests without reading the responses stops being read until its
 * output drains.
 *
 * Closing never frees: conn_close moves the connection to CLOSING and the
 * loop's reap job does the rest, after the callback at hand has returned.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "block.h"
#include "clock.h"
#include "dispatch.h"
#include "encode.h"
#include "listener.h"
#include "proto.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

/* Frames at least this long are copied into a block and shared by
 * reference; shorter ones are copied into each subscriber's output, which
 * is cheaper than a reference below about this size (docs/performance.md). */
#define CONN_SHARE_MIN (8 * 1024)

/* Reservations in the staged output: the first of a batch, and the largest. */
#define CONN_STAGE_MIN 1024
#define CONN_STAGE_MAX (32 * 1024)

/* Largest single writev; libevent's default is 16 KiB. */
#define CONN_MAX_SINGLE_WRITE (1024 * 1024)

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* ---------------------------------------------------------------- set-up */

static void conn_format_peer(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(c->peer, sizeof(c->peer), "%s", listener_address(c->listener));
    }
}

/* Waits for input, with idle_timeout as the read event's timeout. */
static void conn_arm_reading(struct conn *c)
{
    uint32_t idle = c->srv->conf->idle_timeout_ms;
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
    if (c->state == CONN_OPEN && !c->read_paused)
        conn_arm_reading(c);
}

struct conn *conn_new(struct loop *lp, struct listener *l, evutil_socket_t fd,
                      const struct sockaddr *peer, socklen_t peerlen)
{
    struct server *srv = lp->srv;
    struct bufferevent *bev = bufferevent_socket_new(lp->base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct evbuffer *staging = evbuffer_new();
    struct conn *c = xcalloc(1, sizeof(*c));

    c->read_ev = event_new(lp->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    if (bev == NULL || staging == NULL || c->read_ev == NULL) {
        if (bev != NULL)
            bufferevent_free(bev);
        else
            evutil_closesocket(fd);
        if (staging != NULL)
            evbuffer_free(staging);
        if (c->read_ev != NULL)
            event_free(c->read_ev);
        free(c);
        return NULL;
    }
    c->loop = lp;
    c->srv = srv;
    c->listener = listener_ref(l);
    l->active++; /* for monitoring; listener_conn_gone undoes it */
    c->bev = bev;
    c->staging = staging;
    c->id = ++srv->next_client_id;
    c->state = CONN_OPEN;
    c->opened_ms = clock_now_ms();
    c->close_reason = "closed";
    c->stage_chunk = CONN_STAGE_MIN;
    frame_scanner_init(&c->scan, srv->conf->max_payload);
    conn_format_peer(c, peer, peerlen);

    /* The bufferevent writes what conn_write_now could not; reading is
     * conn_read_cb's (see the top). */
    bufferevent_setcb(bev, NULL, conn_write_cb, conn_event_cb, c);
    bufferevent_set_max_single_write(bev, CONN_MAX_SINGLE_WRITE);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    conn_arm_reading(c);

    TAILQ_INSERT_TAIL(&lp->conns, c, link);
    lp->n_conns++;
    srv->n_conns++;
    lp->stats.conns_accepted++;
    log_info(&srv->log, "client %llu connected from %s (listener %s)", (unsigned long long)c->id,
             c->peer, listener_name(l));
    return c;
}

/* ---------------------------------------------------------------- output */

/*
 * Messages are copied into space reserved at the end of `staging`, a chunk
 * at a time, and committed when the chunk is full or something else must
 * be added: one memcpy per message instead of a reserve/commit pair, which
 * cost more than the copy.  A chunk starts small and doubles within a batch,
 * so a subscriber sent one message holds one small chain, not a large one.
 */
static void conn_stage_commit(struct conn *c)
{
    if (c->stage.iov_base == NULL)
        return;
    c->stage.iov_len = c->stage_used;
    evbuffer_commit_space(c->staging, &c->stage, 1);
    c->stage.iov_base = NULL;
    c->stage_used = 0;
}

/* N contiguous bytes at the end of the staged output, to be filled now. */
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
    if (evbuffer_reserve_space(c->staging, (ev_ssize_t)want, &c->stage, 1) < 1)
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

struct evbuffer *conn_reply_buf(struct conn *c)
{
    /* Once closing, nothing more is sent: what is added here is freed unsent. */
    if (c->state == CONN_OPEN)
        conn_mark_pending(c);
    conn_stage_commit(c);
    return c->staging;
}

size_t conn_queued(const struct conn *c)
{
    return evbuffer_get_length(c->staging) + c->stage_used +
           evbuffer_get_length(bufferevent_get_output(c->bev));
}

bool conn_has_room(const struct conn *c, size_t len)
{
    return c->state == CONN_OPEN && conn_queued(c) + len <= c->srv->conf->max_outbound;
}

bool conn_slow_consumer(struct conn *c, uint64_t n)
{
    struct server *srv = c->srv;
    uint64_t suppressed;

    if (srv->conf->slow_consumer == CONFIG_SLOW_DROP) {
        c->stats.dropped += n;
        c->loop->stats.slow_dropped += n;
        if (!c->dropping) {
            c->dropping = true;
            encode_error_notification(conn_reply_buf(c), PROTO_ERR_SLOW_CONSUMER,
                                      "slow consumer: outbound queue over max_outbound, "
                                      "dropping messages");
            if (server_warn_ok(srv, &srv->rl_slow, &suppressed))
                log_warning(&srv->log,
                            "client %llu (%s): slow consumer, dropping messages "
                            "(%llu similar warnings suppressed)",
                            (unsigned long long)c->id, c->peer, (unsigned long long)suppressed);
        }
        return false;
    }
    c->loop->stats.slow_disconnects++;
    if (server_warn_ok(srv, &srv->rl_slow, &suppressed))
        log_warning(&srv->log,
                    "client %llu (%s): slow consumer, disconnecting "
                    "(%llu similar warnings suppressed)",
                    (unsigned long long)c->id, c->peer, (unsigned long long)suppressed);
    conn_close(c, "slow consumer", PROTO_ERR_SLOW_CONSUMER,
               "slow consumer: outbound queue over max_outbound");
    return false;
}

bool conn_push_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk)
{
    size_t n = plen + blen + olen;

    if (c->state != CONN_OPEN)
        return false;
    conn_mark_pending(c);
    if (blk != NULL && blen >= CONN_SHARE_MIN) {
        uint8_t head[ENCODE_MSG_PREFIX_MAX];
        memcpy(head, prefix, plen);
        if (olen > 0)
            head[ENCODE_MSG_PARAMS_AT] = 0x94;
        conn_stage_commit(c);
        if (evbuffer_add(c->staging, head, plen) < 0 ||
            block_add_to(blk, c->staging, body, blen) < 0 ||
            (olen > 0 && evbuffer_add(c->staging, opts, olen) < 0))
            abort(); /* libevent out of memory: the xalloc policy */
    } else {
        uint8_t *p = conn_stage(c, n);
        memcpy(p, prefix, plen);
        if (olen > 0)
            p[ENCODE_MSG_PARAMS_AT] = 0x94;
        memcpy(p + plen, body, blen);
        if (olen > 0)
            memcpy(p + plen + blen, opts, olen);
    }
    c->stats.msgs_out++;
    c->stats.bytes_out += n;
    c->loop->stats.msgs_out++;
    c->loop->stats.bytes_out += n;
    return true;
}

bool conn_send_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk)
{
    if (c->state != CONN_OPEN)
        return false;
    if (conn_queued(c) + plen + blen + olen > c->srv->conf->max_outbound)
        return conn_slow_consumer(c, 1);
    return conn_push_msg(c, prefix, plen, body, blen, opts, olen, blk);
}

static void conn_pause_reading(struct conn *c)
{
    c->read_paused = true;
    event_del(c->read_ev);
}

static void conn_resume_reading(struct conn *c)
{
    c->read_paused = false;
    conn_arm_reading(c);
}

/* The output has drained: a slow consumer's episode is over, and what was
 * waiting for room (a retained replay) can go on. */
static void conn_drained(struct conn *c)
{
    c->dropping = false;
    if (c->read_paused && c->state == CONN_OPEN)
        conn_resume_reading(c);
    if (c->replays != NULL && c->state == CONN_OPEN)
        router_replay_continue(c->srv->router, c);
}

/* A closing connection has written all it will: free it in the reap job. */
static void conn_finish(struct conn *c)
{
    c->state = CONN_DEAD;
    if (!c->reaping) {
        c->reaping = true;
        TAILQ_INSERT_TAIL(&c->loop->dead, c, job_link);
        loop_schedule_reap(c->loop);
    }
}

/*
 * Writes what the socket takes of the output now, before the loop sleeps,
 * as Redis does, instead of waiting a loop iteration for a writable event:
 * that saves an epoll_wait and two epoll_ctl calls per batch.  Only when the
 * socket is full does the bufferevent take over (EV_WRITE on) until the
 * output drains (conn_write_cb turns it off again).
 */
static void conn_write_now(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    /* The socket bufferevent keeps its output's front frozen between its
     * own writes; it is not writing now (EV_WRITE is off), so thaw it. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write_atmost(out, bufferevent_getfd(c->bev), CONN_MAX_SINGLE_WRITE);
    int err = errno;
    evbuffer_freeze(out, 1);
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        c->peer_gone = true;
        if (c->state == CONN_OPEN)
            conn_close(c, "connection error", 0, NULL);
        else
            conn_finish(c);
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        c->writing = true;
        bufferevent_enable(c->bev, EV_WRITE);
    } else {
        conn_drained(c);
    }
}

void conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->pending) {
        TAILQ_REMOVE(&c->loop->pending, c, job_link);
        c->pending = false;
    }
    conn_stage_commit(c);
    c->stage_chunk = CONN_STAGE_MIN;
    if (evbuffer_get_length(c->staging) > 0)
        evbuffer_add_buffer(out, c->staging);
    if (!c->writing && !c->peer_gone && evbuffer_get_length(out) > 0)
        conn_write_now(c);
    /* A client that does not read its responses stops being read. */
    if (c->state == CONN_OPEN && !c->read_paused &&
        evbuffer_get_length(out) > c->srv->conf->max_outbound)
        conn_pause_reading(c);
}

/* ----------------------------------------------------------------- input */

/* A frame the scanner refused: the stream cannot be trusted any further. */
static void conn_bad_stream(struct conn *c, enum frame_status st)
{
    struct server *srv = c->srv;
    uint64_t suppressed;
    int code = st == FRAME_ERR_TOO_LARGE ? PROTO_ERR_TOO_LARGE : PROTO_ERR_BAD_FRAME;

    c->loop->stats.protocol_errors++;
    if (server_warn_ok(srv, &srv->rl_protocol, &suppressed))
        log_warning(&srv->log, "client %llu (%s): %s (%llu similar warnings suppressed)",
                    (unsigned long long)c->id, c->peer, frame_strerror(st),
                    (unsigned long long)suppressed);
    conn_close(c, code == PROTO_ERR_TOO_LARGE ? "frame too large" : "bad frame", code,
               frame_strerror(st));
}

static void conn_next_frame(struct conn *c)
{
    frame_scanner_reset(&c->scan);
    c->scan.max_frame = c->srv->conf->max_payload;
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
        dispatch_frame(c, frame, len, NULL);
    } else if (blk != NULL && len >= LOOP_READ_MAX / 4) {
        dispatch_frame(c, frame, len, blk);
    } else {
        blk = block_new(len);
        memcpy(blk->data, frame, len);
        dispatch_frame(c, blk->data, len, blk);
        block_unref(blk);
    }
    conn_next_frame(c);
}

/*
 * Dispatches the complete frames at the start of DATA (the scanner is at a
 * frame boundary) where they lie.  Returns the bytes they took; the rest is
 * the start of a frame, already scanned.
 */
static size_t conn_read_batch(struct conn *c, const uint8_t *data, size_t len)
{
    size_t off = 0;

    while (off < len && c->state == CONN_OPEN) {
        size_t used;
        enum frame_status st = frame_scan(&c->scan, data + off, len - off, &used);
        if (st == FRAME_MORE)
            break;
        if (st != FRAME_DONE) {
            conn_bad_stream(c, st);
            break;
        }
        conn_dispatch(c, data + off, used, c->loop->rblk);
        off += used;
    }
    return off;
}

/* Appends to the input buffer. */
static void conn_keep(struct evbuffer *in, const uint8_t *data, size_t len)
{
    if (evbuffer_add(in, data, len) < 0)
        abort(); /* libevent out of memory: the xalloc policy */
}

/*
 * Feeds DATA to the frame under way in the input buffer IN.  Returns the
 * bytes it took: all of them while the frame goes on; when it completes,
 * the frame (then all of IN) has been dispatched and drained.
 */
static size_t conn_read_rest(struct conn *c, struct evbuffer *in, const uint8_t *data, size_t len)
{
    size_t used;
    enum frame_status st = frame_scan(&c->scan, data, len, &used);

    if (st < 0) {
        conn_bad_stream(c, st);
        return len;
    }
    conn_keep(in, data, used);
    if (st == FRAME_DONE) {
        size_t flen = evbuffer_get_length(in);
        if (flen >= CONN_SHARE_MIN) {
            struct block *blk = block_new(flen);
            evbuffer_remove(in, blk->data, flen);
            conn_dispatch(c, blk->data, flen, blk);
            block_unref(blk);
        } else {
            conn_dispatch(c, evbuffer_pullup(in, -1), flen, NULL);
            evbuffer_drain(in, flen);
        }
    }
    return used;
}

/* Handles N bytes just read into DATA (the loop's read buffer). */
static void conn_handle_input(struct conn *c, const uint8_t *data, size_t n)
{
    size_t off = 0;

    c->stats.bytes_in += n;
    if (c->in != NULL && evbuffer_get_length(c->in) > 0)
        off = conn_read_rest(c, c->in, data, n);
    if (c->state != CONN_OPEN)
        return;
    off += conn_read_batch(c, data + off, n - off);
    if (c->state == CONN_OPEN && off < n) {
        /* A frame's start, kept for the next read. */
        if (c->in == NULL && (c->in = evbuffer_new()) == NULL)
            abort(); /* libevent out of memory: the xalloc policy */
        conn_keep(c->in, data + off, n - off);
    }
}

/* Reads once from the socket and handles what came. */
static void conn_read_socket(struct conn *c)
{
    struct block *rblk = loop_read_block(c->loop);
    ssize_t n = read(bufferevent_getfd(c->bev), rblk->data, LOOP_READ_MAX);

    if (n > 0) {
        conn_handle_input(c, rblk->data, (size_t)n);
    } else if (n == 0) {
        conn_close(c, "closed by client", 0, NULL);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        c->peer_gone = true;
        conn_close(c, "connection error", 0, NULL);
    }
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

/* The bufferevent wrote the output to the end (write low watermark 0). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    c->writing = false;
    bufferevent_disable(bev, EV_WRITE);
    if (c->state == CONN_CLOSING)
        conn_finish(c);
    else
        conn_drained(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_TIMEOUT) {
        c->peer_gone = true; /* drain_timeout passed with output unwritten */
    } else if (what & BEV_EVENT_ERROR) {
        c->peer_gone = true;
        if (c->state == CONN_OPEN)
            c->close_reason = "connection error";
    } else if (what & BEV_EVENT_EOF) {
        if (c->state == CONN_OPEN)
            c->close_reason = "closed by client";
    }
    if (c->state == CONN_OPEN)
        conn_close(c, c->close_reason, 0, NULL);
    else
        c->peer_gone = true;
    if (c->peer_gone && c->state == CONN_CLOSING)
        conn_finish(c); /* nothing more can be written */
}

/* --------------------------------------------------------------- closing */

void conn_close(struct conn *c, const char *reason, int code, const char *message)
{
    struct loop *lp = c->loop;

    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_CLOSING;
    c->close_reason = reason;
    event_del(c->read_ev);
    conn_stage_commit(c);
    if (code != 0)
        encode_error_notification(c->staging, code, message);
    conn_flush(c);
    /* The reap job drops the subscriptions (never mid-fan-out) and frees C
     * once its output is written (conn_write_cb) or cannot be.  The flush
     * above may already have queued it (conn_finish, when the peer is gone):
     * a second insert would corrupt the dead list. */
    if (!c->reaping) {
        c->reaping = true;
        TAILQ_INSERT_TAIL(&lp->dead, c, job_link);
        loop_schedule_reap(lp);
    }
    uint32_t drain = c->srv->conf->drain_timeout_ms;
    struct timeval tv = {.tv_sec = drain / 1000, .tv_usec = (drain % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &tv);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 || c->peer_gone || drain == 0)
        c->state = CONN_DEAD;
}

void conn_destroy(struct conn *c)
{
    if (c->state == CONN_OPEN)
        conn_close(c, "server stopped", 0, NULL);
    c->state = CONN_DEAD;
    conn_reap(c);
}

static void conn_drop_subs(struct conn *c)
{
    for (uint32_t i = 0; i < c->n_subs; i++)
        router_unsubscribe(c->srv->router, c->subs[i]);
    c->n_subs = 0;
}

void conn_reap(struct conn *c)
{
    struct loop *lp = c->loop;
    struct server *srv = c->srv;

    if (c->reaping) {
        TAILQ_REMOVE(&lp->dead, c, job_link);
        c->reaping = false;
    }
    conn_drop_subs(c);
    if (c->state == CONN_CLOSING)
        return; /* still writing; conn_write_cb queues it again */
    if (c->pending)
        TAILQ_REMOVE(&lp->pending, c, job_link);
    TAILQ_REMOVE(&lp->conns, c, link);
    lp->n_conns--;
    log_info(&srv->log,
             "client %llu (%s) disconnected: %s; in %llu msgs %llu bytes, out %llu msgs "
             "%llu bytes, dropped %llu, %lld ms",
             (unsigned long long)c->id, c->peer, c->close_reason,
             (unsigned long long)c->stats.msgs_in, (unsigned long long)c->stats.bytes_in,
             (unsigned long long)c->stats.msgs_out, (unsigned long long)c->stats.bytes_out,
             (unsigned long long)c->stats.dropped, (long long)(clock_now_ms() - c->opened_ms));
    event_free(c->read_ev);
    if (c->in != NULL)
        evbuffer_free(c->in);
    bufferevent_free(c->bev);
    evbuffer_free(c->staging);
    listener_conn_gone(c->listener, &c->stats);
    listener_unref(c->listener);
    free(c->subs);
    free(c->client_name);
    free(c);
    server_conn_freed(srv);
}
