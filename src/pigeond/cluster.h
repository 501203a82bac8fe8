/*
 * cluster.h - scale-out: several pigeond nodes joined through a Redis (or
 * Valkey) backplane, so that a message published on any node reaches the
 * matching subscriptions on every node.  docs/scale-out.md is the design;
 * this is its code's contract.
 *
 * What crosses the backplane, and where:
 *
 *   messages     each node listens on a channel of its own; a publishing
 *                node sends each message once to the channel of each node
 *                that has a matching subscription (the remote-interest
 *                index, interest.h), batched per node and loop iteration;
 *                the receiver routes it through its own index
 *                (router_publish with `remote` set: local delivery only);
 *   interest     each node keeps its interest (patterns, counts, queue
 *                groups) in a Redis hash, announces every change on the
 *                control channel, and heartbeats; the others apply the
 *                changes to their index, fetch the hash of a node they
 *                have not seen or whose changes they missed, and drop a
 *                node that stops heartbeating;
 *   retained     values live in one Redis hash, changed by a script that
 *                also numbers each change and broadcasts it, so every
 *                node applies every change in the same order; a node that
 *                starts or comes back loads the hash.
 *
 * Cost.  A message that no other node wants costs one check of the
 * remote-interest index (nothing at all while the index is empty).  The
 * backplane runs on the node's event loop; Redis's work is the batches
 * and the (rare) interest changes and heartbeats.
 *
 * Failure.  If Redis goes away, local delivery goes on; messages for
 * other nodes are dropped and counted (at most once, like NATS core); the
 * link reconnects with backoff, and once it is back the node re-announces
 * itself and re-reads every other node's interest.  Toward Redis the node
 * paces itself: a window of bytes in flight, then batches wait, and past
 * a threshold of waiting bytes the publishers whose messages go remote stop
 * being read; max_pending caps it all (messages past it are dropped).
 *
 * Ownership: the server owns the cluster; the cluster borrows the server
 * (its loop, router, log and config).  Everything runs on the main loop.
 */
#ifndef PIGEON_CLUSTER_H
#define PIGEON_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster;
struct config_cluster;
struct router_msg;
struct server;
struct sublist_result;

/* Figures for /metrics and $SYS.broker.stats (stats.h). */
struct cluster_stats {
    uint64_t up;              /* 1 while the link to Redis is up */
    uint64_t nodes;           /* other nodes known */
    uint64_t remote_interest; /* entries in the remote-interest index */
    uint64_t msgs_out;        /* messages sent to other nodes (one per message and node) */
    uint64_t bytes_out;       /* their bytes, as batched */
    uint64_t msgs_in;         /* messages received from other nodes and routed */
    uint64_t bytes_in;
    uint64_t dropped;          /* messages for other nodes dropped: link down, or max_pending */
    uint64_t unreceived;       /* messages sent to a node's channel with no listener */
    uint64_t reconnects;       /* times the link came back */
    uint64_t pending_bytes;    /* batched or sent, not yet acknowledged by Redis */
    uint64_t held;             /* times a publisher stopped being read: Redis was behind */
    uint64_t malformed;        /* backplane messages that could not be read */
    uint64_t retained_refused; /* retained values from other nodes over max_retained */
};

/*
 * Makes SRV's cluster from CC (enabled): the link starts connecting at
 * once; until it is up, the node runs as if standalone (and counts what
 * it could not send).  Returns 0 and *OUT, or -1 after logging why.
 */
int cluster_new(struct server *srv, const struct config_cluster *cc, struct cluster **out);

/* Frees C: the link is closed at once.  NULL is fine. */
void cluster_free(struct cluster *c);

/* The node is shutting down: tells the others (bye), so they drop its interest now. */
void cluster_shutdown(struct cluster *c);

/* This node's name. */
const char *cluster_node(const struct cluster *c);

/*
 * Local interest, from router_subscribe and router_unsubscribe (and the
 * store, through router_interest_hold): one more, or one fewer,
 * subscription to PATTERN in queue group QUEUE (NULL: plain).  Announced
 * to the other nodes at the end of the loop iteration.
 */
void cluster_interest_add(struct cluster *c, const char *pattern, const char *queue);
void cluster_interest_remove(struct cluster *c, const char *pattern, const char *queue);

/*
 * Sends M, just routed locally with result LOCAL (borrowed), to the other
 * nodes that want it, and, when M is retained, to the cluster's store.
 * TOPIC_HASH is hmap_hash of M's topic, computed once for both lookups.
 * Returns the number of remote subscriptions it was sent toward.
 */
long cluster_forward(struct cluster *c, const struct router_msg *m,
                     const struct sublist_result *local, uint32_t topic_hash);

/* C's figures now. */
void cluster_stats(const struct cluster *c, struct cluster_stats *out);

#endif
