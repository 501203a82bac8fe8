/*
 * loop.h - one event loop and the connections it serves.
 *
 * A loop owns a libevent event_base (its I/O method picked by io_backend),
 * the list of its connections, and two deferred jobs that run after the
 * callback at hand, within the same iteration:
 *
 *   flush  moves each connection's staged output (responses and messages
 *          queued while a publisher's input was processed) into its socket
 *          buffer, once per connection per batch, however many messages
 *          were queued (see conn_flush);
 *   reap   frees connections that were closed, so that no connection is
 *          freed on a path that may still touch it.
 *
 * pigeond runs one loop today.  Everything a loop touches on the per-message
 * path (its connections, counters, flush and reap lists) lives here rather
 * than in the server, so that a node with one loop per core will be N of
 * these plus a way to hand a message to another loop.
 */
#ifndef PIGEON_LOOP_H
#define PIGEON_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "config.h"

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
};

/* Bytes read from a socket at once (see conn.c). */
#define LOOP_READ_MAX (256 * 1024)
/* Read blocks kept for reuse once outputs let go of them. */
#define LOOP_READ_POOL 8

struct loop {
    struct server *srv;      /* borrowed; outlives the loop */
    struct event_base *base; /* owned */
    struct conn_list conns;  /* every open or closing connection */
    uint32_t n_conns;
    struct conn_list pending; /* connections with staged output */
    struct event *flush_ev;
    struct conn_list dead; /* closed, waiting to be freed */
    struct event *reap_ev;
    struct loop_stats stats;
    /* Descriptors at or above this cannot be watched: select's FD_SETSIZE
     * (glibc aborts on a larger one), else INT_MAX. */
    evutil_socket_t fd_limit;
    struct block *rblk; /* holds a reference; LOOP_READ_MAX bytes sockets are read into */
    struct block *rpool[LOOP_READ_POOL]; /* earlier read blocks, each referenced, for reuse */
    unsigned n_rpool;
};

/*
 * Creates the event_base with BACKEND (CONFIG_IO_AUTO lets libevent choose).
 * Returns 0, or -1 with *WHY set to a static reason.
 */
int loop_init(struct loop *lp, struct server *srv, enum config_io_backend backend,
              const char **why);

/* Frees what loop_init made; every connection must already be freed. */
void loop_fini(struct loop *lp);

/* The I/O method in use: "epoll", "poll", ... */
const char *loop_method(const struct loop *lp);

/*
 * True when the next descriptor opened (the lowest free one) could be
 * watched by this loop: always, except under select near FD_SETSIZE.  Costs
 * an open and a close under select, nothing otherwise.
 */
bool loop_fd_room(const struct loop *lp);

/*
 * The block to read a socket into.  Large frames are shared straight out of
 * it by reference, so when a subscriber's output still holds the last one,
 * the loop sets it aside and reads into another: one from its pool that no
 * output holds any more, or a new one.  Borrowed.
 */
struct block *loop_read_block(struct loop *lp);

/* Makes the flush job run after the current callback. */
void loop_schedule_flush(struct loop *lp);

/* Makes the reap job run after the current callback. */
void loop_schedule_reap(struct loop *lp);

#endif
