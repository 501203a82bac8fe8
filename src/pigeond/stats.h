/*
 * stats.h - the broker's counters gathered into one snapshot, and the three
 * ways they leave the process.
 *
 * The counters themselves live where they are cheapest to bump: struct
 * loop_stats (per loop), conn.stats (per connection), struct listener
 * (accepted, active, and the totals of its closed connections) and the
 * router's counts.  stats_gather() reads them all once, off the hot path,
 * into a struct stats_snapshot; each consumer formats that snapshot:
 *
 *   stats_format_metrics()  the Prometheus text format, for GET /metrics
 *   stats_format_status()   one line for systemd's STATUS=
 *   stats_pack()            a MessagePack map, for $SYS.broker.stats
 *
 * so the three always agree on what a figure means.  The formatters take a
 * snapshot and nothing else, so tests build one by hand.
 */
#ifndef PIGEON_STATS_H
#define PIGEON_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <msgpack.h>

#include "cluster.h"

struct server;

/* One open listener's figures. */
struct stats_listener {
    const void *listener; /* the struct listener it describes, while gathering */
    const char *name;     /* borrowed from the listener (see stats_gather) */
    const char *address;  /* borrowed: "127.0.0.1:7400", "unix:/run/pigeon/pigeond.sock" */
    uint64_t accepted;    /* connections ever accepted on it */
    uint64_t active;      /* its connections open or closing now */
    /* Over its connections, open and closed: */
    uint64_t msgs_in;    /* pub frames */
    uint64_t bytes_read; /* every byte read from its clients */
    uint64_t msgs_out;   /* msg deliveries queued */
    uint64_t bytes_out;  /* bytes of them */
};

struct stats_snapshot {
    const char *version; /* static */
    const char *backend; /* static: "epoll", "poll", ... */
    uint64_t uptime_ms;
    uint64_t connections;         /* open or closing now */
    uint64_t conns_accepted;      /* ever accepted */
    uint64_t conns_rejected;      /* refused at max_connections or FD_SETSIZE */
    uint64_t subscriptions;       /* in the index now */
    uint64_t msgs_in, bytes_in;   /* pub frames routed, and their topic and payload bytes */
    uint64_t msgs_out, bytes_out; /* msg deliveries queued, and their bytes (whole frames) */
    uint64_t retained_topics, retained_bytes;
    uint64_t slow_disconnects;        /* connections closed as slow consumers */
    uint64_t slow_dropped;            /* messages dropped for slow consumers */
    uint64_t protocol_errors;         /* connections closed for a bad frame */
    uint64_t undelivered;             /* queued messages their closed connection never got */
    uint64_t yields;                  /* times a connection yielded with work left (conn.h) */
    /* The memory budget (budget.h), in bytes where not said otherwise: */
    uint64_t mem_budget, mem_used, mem_output, mem_input, mem_subscriptions, mem_store;
    uint64_t mem_over;           /* 1 while over max_memory */
    uint64_t mem_times_over;     /* times it went over */
    uint64_t mem_slow_chosen;    /* connections chosen as slow consumers */
    uint64_t mem_held;           /* publishers not being read now */
    uint64_t mem_refused_frames; /* partial frames refused */
    uint64_t mem_refused_subs;   /* subscriptions refused */
    /* Security: */
    uint64_t logins_ok, logins_failed, logins_required; /* codes 7 and 6 for the latter two */
    uint64_t login_cache_hits;                            /* logins answered without a hash check */
    uint64_t tls_handshakes, tls_handshakes_failed, tls_handshakes_in_flight;
    struct stats_listener *listeners; /* owned array, in the server's order */
    size_t n_listeners;
    /* The backplane (cluster.h), when the node is part of a cluster: */
    const char *node; /* borrowed: this node's name; NULL standalone (no cluster figures) */
    struct cluster_stats cluster;
};

/*
 * Fills OUT from SRV's counters now.  The listener names and addresses are
 * borrowed from the open listeners: use the snapshot before anything can
 * close one (within the callback that gathered it), then stats_release it.
 * Walks the connections once (for the per-listener figures): never call it
 * per message.
 */
void stats_gather(struct server *srv, struct stats_snapshot *out);

/* Frees what stats_gather allocated in S (not S itself). */
void stats_release(struct stats_snapshot *s);

/*
 * Appends S to OUT in the Prometheus text exposition format (version
 * 0.0.4): HELP and TYPE lines, then the samples, all named pigeon_*
 * (the backplane's pigeon_cluster_*, and pigeon_info's node label, only
 * on a node of a cluster).
 * Returns 0, or -1 when libevent could not allocate.
 */
int stats_format_metrics(const struct stats_snapshot *s, struct evbuffer *out);

/*
 * Writes the one-line summary systemd shows in `systemctl status` into BUF
 * (LEN bytes, always NUL-terminated): "3 connections, 12 subscriptions,
 * 1042 msgs in, 2084 msgs out".  Returns what snprintf returned.
 */
int stats_format_status(const struct stats_snapshot *s, char *buf, size_t len);

/*
 * Packs S as one MessagePack map (string keys, unsigned values except
 * `version` and `backend`, and `listeners`, a map of name to map) with PK.
 * On a node of a cluster it also has `node` (its name) and `cluster` (a
 * map of the backplane's figures).
 */
void stats_pack(const struct stats_snapshot *s, msgpack_packer *pk);

#endif
