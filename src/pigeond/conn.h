/*
 * conn.h - one client connection: its socket, input framing, output
 * queueing, backpressure and lifecycle.
 *
 * States, and the only transitions (all through conn_close/conn_finish):
 *
 *   OPEN ──conn_close──▶ CLOSING ──output flushed, peer gone, or
 *                                  drain_timeout──▶ DEAD ──reap job──▶ freed
 *
 * OPEN      frames are read and dispatched; messages are queued.
 * CLOSING   reading has stopped and nothing more is queued; what was queued
 *           (a final error notification included) is being written.  Its
 *           subscriptions leave the index in the reap job, never in the
 *           middle of a fan-out that may be iterating over them.
 * DEAD      waiting for the loop's reap job to free it.
 *
 * Output: responses and messages are appended to `staging`, and the
 * connection joins its loop's pending list; the loop's flush job moves the
 * staged chains into the socket buffer once per batch (conn_flush).  The
 * outbound limit is checked before each message is queued.
 *
 * The struct is visible so that the dispatcher and router can read it on the
 * hot path; only conn.c changes `state`, the lists and the buffers.
 */
#ifndef PIGEON_CONN_H
#define PIGEON_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/buffer.h>

#include "frame.h"
#include "loop.h"

struct block;
struct listener;
struct replay;
struct sub;

enum conn_state {
    CONN_OPEN,
    CONN_CLOSING,
    CONN_DEAD,
};

struct conn_stats {
    uint64_t msgs_in;   /* pub frames from this client */
    uint64_t bytes_in;  /* bytes of all its frames */
    uint64_t msgs_out;  /* msg deliveries queued for it */
    uint64_t bytes_out; /* bytes of them */
    uint64_t dropped;   /* deliveries dropped (slow_consumer = drop) */
};

struct conn {
    TAILQ_ENTRY(conn) link;      /* in loop->conns */
    TAILQ_ENTRY(conn) job_link;  /* in loop->pending (OPEN) or loop->dead */
    struct loop *loop;           /* borrowed */
    struct server *srv;          /* borrowed */
    struct listener *listener;   /* holds a reference (listener_ref) */
    struct bufferevent *bev;     /* owned; writes, and frees the socket with it */
    struct event *read_ev;       /* owned; the socket is readable, or idle */
    struct evbuffer *staging;    /* owned; output queued in this batch */
    struct evbuffer_iovec stage; /* space reserved at the end of staging, or iov_base NULL */
    size_t stage_used;           /* bytes of it filled, not yet committed */
    uint32_t stage_chunk;        /* size of the next reservation */
    struct evbuffer *in;         /* owned, or NULL; the start of a frame still arriving */
    uint64_t id;                 /* the client_id, unique in this server's life */
    enum conn_state state;
    bool pending;     /* in loop->pending */
    bool reaping;     /* in loop->dead */
    bool read_paused; /* its own output is over max_outbound */
    bool writing;     /* the bufferevent is writing what the socket did not take */
    bool dropping;    /* dropping messages (slow_consumer = drop) */
    bool peer_gone;   /* the socket failed: nothing more can be written */
    bool hello_done;
    struct frame_scanner scan; /* the frame being read (its start in `in`) */
    struct sub **subs;         /* owned array of owned subs, sorted by sid */
    uint32_t n_subs, cap_subs;
    uint32_t next_sid;
    char *client_name;        /* from hello, or NULL; owned */
    struct replay *replays;   /* retained replays waiting for room, oldest first (router.c) */
    size_t replay_bytes;      /* what their lists hold, charged against max_outbound (router.c) */
    const char *close_reason; /* static */
    int64_t opened_ms;
    char peer[80]; /* "ip:port", "[v6]:port" or "unix:path" */
    struct conn_stats stats;
};

/*
 * Makes a connection for the accepted socket FD (non-blocking, owned from
 * here on: closed on every path) on loop LP, from listener L (referenced).
 * Returns the connection, or NULL when libevent could not set it up.
 */
struct conn *conn_new(struct loop *lp, struct listener *l, evutil_socket_t fd,
                      const struct sockaddr *peer, socklen_t peerlen);

/*
 * Closes C: stops reading, queues [2, "error", [CODE, MESSAGE]] when CODE is
 * not 0, and lets what is queued be written within drain_timeout before the
 * socket is closed and C is freed (by the loop, later).  REASON (static) is
 * logged.  Safe to call from any callback, mid-fan-out included, and more
 * than once (only the first call counts).
 */
void conn_close(struct conn *c, const char *reason, int code, const char *message);

/* The buffer to append a response or notification to; schedules a flush. */
struct evbuffer *conn_reply_buf(struct conn *c);

/*
 * Queues one `msg` for C: PREFIX (a subscription's, see encode_msg_prefix;
 * its params header is patched to 4 elements when OLEN > 0), BODY (topic and
 * payload as the publisher sent them) and OPTS.  When BLK is not NULL and
 * BODY lies inside it, a large BODY is referenced rather than copied.
 * Applies the slow-consumer policy.  Returns true when queued.
 */
bool conn_send_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk);

/*
 * As conn_send_msg, without the outbound limit: for a retained replay,
 * which waits for room (router.c) rather than count as a slow consumer.
 */
bool conn_push_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk);

/*
 * Applies the slow-consumer policy to N messages that do not fit under C's
 * max_outbound: drops and counts them (error 9 once per episode), or sends
 * error 9 and closes C.  Returns false (nothing was queued).
 */
bool conn_slow_consumer(struct conn *c, uint64_t n);

/* True when C is open and a message of LEN bytes would fit under its limit. */
bool conn_has_room(const struct conn *c, size_t len);

/* Bytes queued for C: staged and in the socket buffer. */
size_t conn_queued(const struct conn *c);

/* Moves C's staged output into its socket buffer (the loop's flush job). */
void conn_flush(struct conn *c);

/*
 * The loop's reap job, for a connection conn_close queued: drops its
 * subscriptions, and frees it unless it is still writing its last output
 * (then it comes back here once that is done or has failed).
 */
void conn_reap(struct conn *c);

/* Frees C now, whatever is left unwritten: only once the loop has stopped. */
void conn_destroy(struct conn *c);

/* Applies a new config's limits to an open connection (SIGHUP). */
void conn_apply_config(struct conn *c);

#endif
