/*
 * loop.h - one event loop, the connections it serves, and everything they
 * share on the per-message path.
 *
 * A loop owns a libevent event_base (its I/O method picked by io_backend),
 * its connections, and three jobs:
 *
 *   flush   writes each connection's output once per batch, however many
 *           messages were queued (conn_flush), after the callback at hand;
 *   reap    frees connections that were closed, so that no connection is
 *           freed on a path that may still touch it;
 *   defer   resumes, in the next iteration, connections that yielded with
 *           work left (frames past their per-wake-up budget, a retained
 *           replay step), so the others get their turn first.
 *
 * It also owns what decoding and encoding need (a msgpack zone and two
 * buffers), the rate limits of warnings clients can provoke, its counters,
 * its share of the memory budget (bytes queued out, bytes held in), and the
 * config snapshot it runs on (a reference; see config.h).
 *
 * pigeond runs one loop today.  Nothing on the per-message path reaches
 * past its loop except the router (shared, see router.h) and the config
 * snapshot (immutable, reference-counted), so that a node with one loop per
 * core will be N of these, each on its thread, plus a hand-off of
 * deliveries between loops.
 */
#ifndef PIGEON_LOOP_H
#define PIGEON_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <msgpack.h>

#include "config.h"
#include "fdlimit.h"
#include "log.h"

struct server;
struct block;
struct conn;

TAILQ_HEAD(conn_list, conn);

/* Counters for monitoring, kept per loop so the hot path never shares them. */
struct loop_stats {
    uint64_t conns_accepted;   /* connections ever accepted */
    uint64_t conns_rejected;   /* refused at max_connections or select's FD_SETSIZE */
    uint64_t msgs_in;          /* pub frames routed */
    uint64_t bytes_in;         /* bytes of those frames */
    uint64_t msgs_out;         /* msg deliveries queued */
    uint64_t bytes_out;        /* bytes of those deliveries */
    uint64_t slow_disconnects; /* connections closed as slow consumers */
    uint64_t slow_dropped;     /* messages dropped for slow consumers */
    uint64_t protocol_errors;  /* connections closed for a bad frame */
    uint64_t undelivered;      /* queued messages dropped when their connection closed */
    uint64_t yields;           /* times a connection yielded with work left */
    uint64_t auth_ok;          /* logins that succeeded */
    uint64_t auth_failed;      /* logins refused: code 7 */
    uint64_t auth_refused;     /* methods before a login where one is required: code 6 */
};

/* Warnings a client can provoke, each rate-limited on its own. */
enum loop_warning {
    LOOP_WARN_PROTOCOL, /* bad frames */
    LOOP_WARN_SLOW,     /* slow consumers */
    LOOP_WARN_ACCEPT,   /* accepting connections */
    LOOP_WARN_MEMORY,   /* the memory budget */
    LOOP_WARN_N,
};

/* Bytes read from a socket at once (see conn.c). */
#define LOOP_READ_MAX (256 * 1024)
/*
 * Bytes all connections may read per window of time at full size.  Past
 * them, until the window ends, a read takes at most LOOP_READ_SMALL, and a
 * connection in the middle of a large frame (conn.c) waits: hundreds of
 * connections streaming large frames at once would otherwise make one loop
 * iteration copy hundreds of megabytes (and fault in as many fresh pages)
 * before a small request of another client gets its turn.  Far above what
 * ordinary traffic reads (about 1 GB/s at most, docs/performance.md).
 */
#define LOOP_READ_WINDOW_NS (5 * 1000 * 1000)
#define LOOP_READ_WINDOW    (8 * 1024 * 1024)
#define LOOP_READ_SMALL     (16 * 1024)
/* Read blocks kept for reuse once outputs let go of them. */
#define LOOP_READ_POOL 8

struct loop {
    struct server *srv;      /* borrowed; outlives the loop */
    struct logger *log;      /* borrowed: the server's */
    struct event_base *base; /* owned */
    struct config *conf;     /* holds a reference: the snapshot this loop runs on */
    uint64_t out_limit;      /* queued bytes a connection may hold (see conn_room) */
    struct conn_list conns;  /* every open or closing connection */
    uint32_t n_conns;
    struct conn_list pending; /* connections with output to write */
    struct event *flush_ev;
    struct conn_list dead; /* closed, waiting to be freed */
    struct event *reap_ev;
    struct conn_list deferred; /* yielded with work left */
    struct event *defer_ev;
    struct loop_stats stats;
    struct fdlimit fds;
    /* Memory this loop's connections hold, for the budget (budget.h). */
    uint64_t mem_out; /* queued output, with the bookkeeping of its frames */
    uint64_t mem_in;  /* input kept between reads */
    uint64_t read_window_ns; /* when the current read window began (LOOP_READ_WINDOW) */
    uint64_t read_bytes;     /* bytes read in it */
    struct block *rblk; /* holds a reference; LOOP_READ_MAX bytes sockets are read into */
    struct block *rpool[LOOP_READ_POOL]; /* earlier read blocks, each referenced, for reuse */
    unsigned n_rpool;
    msgpack_zone zone;     /* decodes hello and opts maps; cleared after each frame */
    msgpack_sbuffer opts;  /* a publication's msg opts, while it is routed */
    msgpack_sbuffer frame; /* a frame being encoded, until it is queued */
    struct log_ratelimit rl[LOOP_WARN_N];
    struct event *rl_flush_ev; /* reports what the rate limits suppressed */
};

/*
 * Sets LP up for SRV with CONF (LP takes a reference): the event_base with
 * CONF's io_backend.  Returns 0, or -1 with *WHY set to a static reason.
 */
int loop_init(struct loop *lp, struct server *srv, struct logger *log, struct config *conf,
              const char **why);

/* Frees what loop_init made; every connection must already be freed. */
void loop_fini(struct loop *lp);

/* Makes CONF (LP takes a reference) the snapshot LP runs on, and applies it to its connections. */
void loop_set_config(struct loop *lp, struct config *conf);

/* The I/O method in use: "epoll", "poll", ... */
const char *loop_method(const struct loop *lp);

/*
 * The block to read a socket into.  Large frames are shared straight out of
 * it by reference, so when a subscriber's output still holds the last one,
 * the loop sets it aside and reads into another: one from its pool that no
 * output holds any more, or a new one.  Borrowed.
 */
struct block *loop_read_block(struct loop *lp);

/* How much one read may take now: LOOP_READ_MAX, or LOOP_READ_SMALL past the window's share. */
size_t loop_read_cap(struct loop *lp);

/* Counts N bytes read. */
static inline void loop_count_read(struct loop *lp, size_t n)
{
    lp->read_bytes += n;
}

/* Makes the flush job run after the current callback. */
void loop_schedule_flush(struct loop *lp);

/* Makes the reap job run after the current callback. */
void loop_schedule_reap(struct loop *lp);

/* Resumes C (conn_resume) in the next loop iteration, after other I/O. */
void loop_defer(struct loop *lp, struct conn *c);

/* The frame buffer, emptied, to encode one frame into and queue at once. */
msgpack_sbuffer *loop_frame_buf(struct loop *lp);

/*
 * Logs a warning of kind KIND (one a client can provoke) unless its rate
 * limit refuses; a line let through after a refusal ends with
 * "(N similar warnings suppressed)", and a timer reports a refused burst
 * that no later warning follows.
 */
void loop_warn(struct loop *lp, enum loop_warning kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
