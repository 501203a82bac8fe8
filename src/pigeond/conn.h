/*
 * conn.h - one client connection's byte pipe: reading and framing its
 * input, queueing and writing its output, backpressure, and its life.
 *
 * The connection knows bytes and frames, not the protocol: each complete
 * frame goes to dispatch_frame with the connection's session (session.h),
 * which holds everything protocol-level about the client.  Bytes cross the
 * socket through the connection's transport (transport.h: plain or TLS).
 *
 * States, and the only transitions (all through conn_close and conn_finish):
 *
 *   OPEN ──conn_close──▶ CLOSING ──output written, peer gone, or
 *                                  drain_timeout──▶ DEAD ──reap job──▶ freed
 *
 * OPEN      frames are read and dispatched; messages are queued.
 * CLOSING   reading has stopped and nothing more is queued; what was queued
 *           (a final error notification included) is being written.  Its
 *           session lets go of its subscriptions in the reap job, never in
 *           the middle of a fan-out that may be iterating over them.
 * DEAD      waiting for the loop's reap job to free it.
 *
 * Input.  A read lands in the loop's read block and complete frames are
 * dispatched where they lie.  Work per wake-up is bounded (CONN_WAKEUP_*):
 * past it, the frames left wait in the input buffer and the connection
 * yields to the others until the next loop iteration (loop_defer), as
 * memcached caps its requests per event.  A frame cut by the end of a read
 * waits in the input buffer for the rest.
 *
 * Output.  Responses and messages are copied (or, when large, referenced)
 * into `out` and the connection joins its loop's pending list; the loop's
 * flush job writes each pending connection once per batch.  `queued` is the
 * byte count not yet written, kept as a counter so that the room check per
 * delivery is one load.  Where each queued frame ends is remembered (the
 * `ends` ring), so that a connection closed with output unwritten can be
 * told, and the log can say, exactly how many messages it did not get.
 *
 * Reading is held while any reason in `holds` stands: its own output past
 * max_outbound (it does not read its responses), frames waiting from an
 * earlier wake-up, the broker's memory budget (budget.h), a backplane
 * that has fallen behind (cluster.h), responses held behind one the store
 * owes, or a store whose next commit is full (store.h).
 */
#ifndef PIGEON_CONN_H
#define PIGEON_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "frame.h"
#include "loop.h"
#include "session.h"

struct block;
struct listener;
struct transport;

enum conn_state {
    CONN_OPEN,
    CONN_CLOSING,
    CONN_DEAD,
};

/* Why reading is held (bits of conn.holds). */
enum {
    CONN_HOLD_OUTPUT = 1 << 0,    /* its own output is past max_outbound */
    CONN_HOLD_BACKLOG = 1 << 1,   /* frames read earlier still wait (deferred) */
    CONN_HOLD_MEMORY = 1 << 2,    /* a publisher, while the broker is over max_memory */
    CONN_HOLD_SESSION = 1 << 3,   /* its session asked (a hello being checked) */
    CONN_HOLD_BACKPLANE = 1 << 4, /* a publisher, while Redis is behind (cluster.h) */
    CONN_HOLD_REPLIES = 1 << 5,   /* responses held behind one the store owes (session.h) */
    CONN_HOLD_STORE = 1 << 6,     /* a publisher, while the store's gathered batch is full */
};

/* How long a TLS client may take to finish its handshake. */
#define CONN_HANDSHAKE_MS 10000

/* How long a client whose queue was cut gets to read the error that says so. */
#define CONN_GRACE_MS 1000

/* Work one connection may do per wake-up before it yields. */
#define CONN_WAKEUP_FRAMES 4096
#define CONN_WAKEUP_NS     (2 * 1000 * 1000) /* 2 ms */

struct conn_stats {
    uint64_t msgs_in;     /* pub frames from this client */
    uint64_t bytes_in;    /* bytes of all its frames */
    uint64_t msgs_out;    /* msg deliveries queued for it */
    uint64_t bytes_out;   /* bytes of them */
    uint64_t dropped;     /* deliveries dropped (slow_consumer = drop) */
    uint64_t undelivered; /* queued messages it never got (closed before they were written) */
};

/* Where each queued frame ends in the output stream; a bit says whether it is a `msg`. */
struct conn_ends {
    uint64_t *v; /* end offset << 1 | is_msg, a ring of cap (a power of two) */
    uint32_t head, n, cap;
    uint32_t msgs; /* entries that are msgs */
};

struct conn {
    TAILQ_ENTRY(conn) link;       /* in loop->conns */
    TAILQ_ENTRY(conn) job_link;   /* in loop->pending (OPEN) or loop->dead */
    TAILQ_ENTRY(conn) defer_link; /* in loop->deferred */
    struct loop *loop;            /* borrowed */
    struct listener *listener;    /* holds a reference (listener_ref) */
    struct transport *tp;         /* owned: the socket */
    struct event *read_ev;        /* owned; readable, or idle_timeout */
    struct event *write_ev;       /* owned; writable, armed while output waits */
    struct event *timer_ev;       /* owned; drain_timeout while closing */
    struct evbuffer *out;         /* owned; output not yet written */
    struct evbuffer_iovec stage;  /* space reserved at the end of out, or iov_base NULL */
    size_t stage_used;            /* bytes of it filled, not yet committed */
    uint32_t stage_chunk;         /* size of the next reservation */
    uint64_t out_total;           /* bytes ever queued (offsets in the output stream) */
    uint64_t out_written;         /* bytes ever written */
    struct conn_ends ends;
    struct evbuffer *in;      /* owned, or NULL; input kept for later (see `backlog`) */
    size_t in_len;            /* bytes in `in`, as charged to the loop's memory */
    struct frame_scanner scan; /* the frame being read (its start in `in`) */
    enum conn_state state;
    uint8_t holds;    /* CONN_HOLD_* */
    bool pending;     /* in loop->pending */
    bool reaping;     /* in loop->dead */
    bool deferred;    /* in loop->deferred */
    bool backlog;     /* `in` starts with frames not yet scanned; else it holds one partial frame */
    bool writing;     /* write_ev is armed: the socket did not take everything */
    bool read_wants_write; /* the transport's read waits for writability (TLS) */
    bool peer_gone;   /* the socket failed: nothing more can be written */
    bool discarding;  /* closing, with its unwritten messages dropped */
    const char *close_reason; /* static */
    int64_t opened_ms;
    struct conn_stats stats;
    struct session sess; /* the protocol state (session.h) */
};

/*
 * Makes a connection for the accepted socket FD (non-blocking, owned from
 * here on: closed on every path) on loop LP, from listener L (referenced),
 * over transport TP (owned from here on; NULL: a plain socket transport is
 * made for FD).  Returns the connection, or NULL when libevent could not set
 * it up.
 */
struct conn *conn_new(struct loop *lp, struct listener *l, evutil_socket_t fd,
                      const struct sockaddr *peer, socklen_t peerlen, struct transport *tp);

/*
 * Closes C: stops reading, queues [2, "error", [CODE, MESSAGE]] when CODE is
 * not 0, and lets what is queued be written within drain_timeout before the
 * socket is closed and C is freed (by the loop, later).  REASON (static) is
 * logged.  Safe to call from any callback, mid-fan-out included, and more
 * than once (only the first call counts).
 */
void conn_close(struct conn *c, const char *reason, int code, const char *message);

/*
 * As conn_close, but the messages queued behind the frame being written are
 * dropped at once (and counted as undelivered), and the error notification
 * follows that frame, "WHY: N queued messages not delivered": for a client
 * that cannot take its queue.
 */
void conn_close_discarding(struct conn *c, const char *reason, int code, const char *why);

/* Bytes queued for C and not yet written. */
static inline size_t conn_queued(const struct conn *c)
{
    return (size_t)(c->out_total - c->out_written);
}

/*
 * True when C is open and LEN more bytes fit under its outbound limit (the
 * loop's: max_outbound, or less while the broker is over max_memory).
 */
static inline bool conn_room(const struct conn *c, size_t len)
{
    return c->state == CONN_OPEN && conn_queued(c) + len <= c->loop->out_limit;
}

/*
 * Queues one `msg` frame: the header (a subscription's PREFIX, see
 * encode_msg_header), BODY (topic and payload as the publisher sent them)
 * and OPTS.  When BLK is not NULL and BODY lies inside it, a large BODY is
 * referenced rather than copied.  No limit is checked here (session.c does).
 * False when C is not open (nothing queued).
 */
bool conn_send_msg(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *body,
                   size_t blen, const uint8_t *opts, size_t olen, struct block *blk);

/*
 * Queues one whole frame (a response or a notification), copied; behind
 * the responses the session is holding for the store, if any
 * (session_reply_hold).
 */
void conn_send_frame(struct conn *c, const void *frame, size_t len);

/* Queues FRAME now, whatever the session holds (the session's reply queue sending). */
void conn_send_held(struct conn *c, const void *frame, size_t len);

/* Writes C's output now, as far as the socket takes it (the loop's flush job). */
void conn_flush(struct conn *c);

/* Holds reading for WHY (CONN_HOLD_*), or releases that hold. */
void conn_hold(struct conn *c, uint8_t why);
void conn_release(struct conn *c, uint8_t why);

/* Goes on with work left from an earlier wake-up (the loop's deferred job). */
void conn_resume(struct conn *c);

/*
 * The loop's reap job, for a connection conn_close queued: ends its
 * session, and frees it unless it is still writing its last output (then it
 * comes back here once that is done or has failed).
 */
void conn_reap(struct conn *c);

/* Frees C now, whatever is left unwritten: only once the loop has stopped. */
void conn_destroy(struct conn *c);

/* Applies the loop's new config to an open connection (SIGHUP). */
void conn_apply_config(struct conn *c);

/* The peer's address ("ip:port", "[v6]:port", "unix:path"). */
const char *conn_peer(const struct conn *c);

#endif
