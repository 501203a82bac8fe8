/*
 * cluster_impl.h - what the backplane's four files share (private to
 * them; the rest of pigeond sees cluster.h only).
 *
 *   cluster.c           the link's life (up, synced, down), the heartbeat
 *                       tick, messages out (routing, batches,
 *                       backpressure) and in, the public API
 *   cluster_announce.c  this node's interest: counted, announced as
 *                       deltas, written whole as its snapshot; heartbeats
 *                       and bye
 *   cluster_peers.c     the other nodes: found, their snapshots fetched,
 *                       their deltas followed, expired when silent
 *   cluster_retained.c  retained values kept cluster-wide
 *
 * Redis keys and channels, with P the configured prefix.  Keys share the
 * hash tag {P}, so the scripts touch one slot on a Redis Cluster; each
 * node's message channel carries its own name as hash tag, so on a Redis
 * Cluster with sharded pub/sub each node's traffic lands on one shard
 * (docs/scale-out.md):
 *
 *   {P}:nodes            set      the names of live (or recently live) nodes
 *   {P}:node:NAME        hash     NAME's interest: field -> count, and the
 *                                 meta fields " instance" and " version"
 *                                 (a leading space: no pattern has one);
 *                                 expires node_timeout after its last heartbeat
 *   {P}:retained         hash     topic -> retained record (bpwire.h)
 *   {P}:retained:seq     string   the number of the last retained change
 *   {P}:ctl              channel  hb, hello, delta, bye (bpwire.h)
 *   {P}:retained         channel  seq + record, for each retained change
 *   P:msg:{NAME}         channel  batches of messages for node NAME
 *
 * Ordering.  Everything a node sends goes down one connection (the link's
 * command connection), and everything it hears comes up one (the
 * subscriber connection), so Redis keeps the order between them: an
 * interest change announced before a message is applied by every node
 * before that message arrives.  The flush job sends interest changes
 * before batches for that reason: a requester that subscribes to its
 * inbox and then publishes a request is known to want the reply by the
 * time the responder's node sees the request.
 */
#ifndef PIGEON_CLUSTER_IMPL_H
#define PIGEON_CLUSTER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <msgpack.h>

#include "cluster.h"
#include "hmap.h"
#include "log.h"
#include "redislink.h"

struct interest;
struct interest_node;
struct router_msg;

#define CLUSTER_NAME_MAX 64

/* A copy of a message held for later: a delta during a fetch, a retained change during a load. */
struct held_msg {
    STAILQ_ENTRY(held_msg) link;
    uint64_t seq; /* retained changes: the number Redis gave it */
    size_t len;
    char data[];
};
STAILQ_HEAD(held_list, held_msg);

/* One interest this node announces: a field ("pattern" or "pattern queue") and its count. */
struct linterest {
    TAILQ_ENTRY(linterest) dirty_link; /* in cluster.dirty while changed and not announced */
    uint32_t count;
    bool dirty;
    uint16_t flen;
    char field[]; /* the map key */
};
TAILQ_HEAD(linterest_list, linterest);

/* Another node.  Owned by cluster.peers (cluster_peers.c). */
struct cluster_peer {
    TAILQ_ENTRY(cluster_peer) batch_link; /* in cluster.batched while its batch has records */
    struct interest_node *in;             /* its entries in the remote-interest index */
    char *name;                           /* owned; the map key */
    size_t nlen;
    char *channel; /* owned: where its messages go */
    uint64_t instance, version;
    int64_t last_seen_ms;
    bool fetching;           /* its snapshot is being read */
    bool fetch_again;        /* read it again once this read is done */
    struct held_list deltas; /* changes that came during the fetch */
    size_t deltas_bytes;
    msgpack_sbuffer batch; /* messages for it, this loop iteration (cluster.c) */
    uint32_t batch_msgs;
    bool in_batched;
};
TAILQ_HEAD(cluster_peer_list, cluster_peer);

struct cluster {
    struct server *srv; /* borrowed */
    struct logger *log; /* borrowed: the server's */
    struct redislink *link;
    char node[CLUSTER_NAME_MAX + 1];
    size_t nlen;
    char instance[24]; /* decimal, as stored in the snapshot */
    uint64_t instance_id;
    /* Redis names (see the top). */
    char *k_nodes, *k_node, *k_retained, *k_retained_seq, *ch_ctl, *ch_retained, *ch_mine;
    char *prefix;
    uint32_t heartbeat_ms, node_timeout_ms;
    uint64_t max_pending;
    char ttl[16]; /* node_timeout in ms, as Redis takes it */

    /* This node's interest (cluster_announce.c). */
    uint64_t version;  /* of this node's interest */
    struct hmap local; /* field -> struct linterest */
    struct linterest_list dirty;

    /* The other nodes (cluster_peers.c) and their interest. */
    struct hmap peers; /* name -> struct cluster_peer */
    struct interest *remote;
    uint32_t fetches; /* snapshots being read */

    /* Messages out (cluster.c). */
    struct cluster_peer_list batched; /* peers with a batch to send */
    size_t batched_bytes;
    const char **groups; /* scratch: a record's groups, pattern then queue */
    size_t cap_groups;
    uint32_t holding; /* publishers held now (CONN_HOLD_BACKPLANE) */
    bool paused;      /* reading the backplane is paused for the memory budget */

    /* Retained values (cluster_retained.c). */
    uint64_t retained_seq; /* the number of the last change applied */
    bool retained_loading;
    bool retained_reload; /* the load missed changes: load again */
    struct held_list retained_held;
    size_t retained_held_bytes;
    struct hmap outbox; /* topic -> struct outboxed: changes made while the link was down */
    size_t outbox_bytes;

    /* The link's life (cluster.c). */
    bool up;     /* the link is up */
    bool synced; /* and this node has announced itself and read the others */
    bool snap_done, members_done, retained_done;
    bool ever_synced;
    bool leaving;    /* bye was sent */
    int64_t down_ms; /* when the link went down */
    uint64_t dropped_at_down;
    int64_t echo_ms; /* when this node last heard its own heartbeat */

    struct event *flush_ev;
    struct event *tick_ev;
    struct event *resume_ev;
    bool flush_scheduled;
    msgpack_sbuffer scratch; /* control messages, retained records */
    struct log_ratelimit rl_bad, rl_dup;
    struct cluster_stats st;
};

/* ---------------------------------------------------------------- cluster.c */

/* Makes the flush job run at the end of this loop iteration. */
void cluster_schedule_flush(struct cluster *c);

/* True when S (LEN bytes) may name a node or a prefix: 1..64 of A-Z a-z 0-9 _ - . */
bool cluster_name_ok(const char *s, size_t len);

/* A new string, formatted; the caller frees it. */
char *cluster_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A malformed message from the backplane: counted, and logged within a rate. */
void cluster_malformed(struct cluster *c, const char *what, const char *why);

/* Sends a command of ARGC NUL-terminated strings (at most 8); see redislink_command. */
int cluster_command(struct cluster *c, redislink_reply_fn fn, void *priv, int argc,
                    const char **argv);

/* The largest record this node reads: max_payload and room for opts and groups. */
uint32_t cluster_max_record(const struct cluster *c);

/* Holds a copy of DATA (LEN bytes, numbered SEQ) at the end of L; *BYTES counts them. */
void cluster_held_push(struct held_list *l, size_t *bytes, uint64_t seq, const char *data,
                       size_t len);
void cluster_held_clear(struct held_list *l, size_t *bytes);

/* Marks the node synced once its snapshot, the peers and the retained values are all read. */
void cluster_check_synced(struct cluster *c);

/* Drops P's batch, counting its messages as dropped. */
void cluster_batch_drop(struct cluster *c, struct cluster_peer *p);

/* ------------------------------------------------------- cluster_announce.c */

/* Announces the changed interest, CLUSTER_CHUNK changes per delta. */
void cluster_announce_flush(struct cluster *c);

/* Writes this node's whole interest as its snapshot, registers the node and says hello. */
void cluster_announce_snapshot(struct cluster *c);

/* One heartbeat: the snapshot's life extended, "hb" on the control channel. */
void cluster_announce_heartbeat(struct cluster *c);

/* Leaves the cluster: the snapshot deleted, "bye" on the control channel. */
void cluster_announce_bye(struct cluster *c);

/* Frees the local interest table. */
void cluster_announce_free(struct cluster *c);

/* ---------------------------------------------------------- cluster_peers.c */

/* The link is up: finds every node registered in Redis and reads their snapshots again. */
void cluster_peers_up(struct cluster *c);

/* The link is down: reads under way are forgotten (every peer is read again when it is back). */
void cluster_peers_down(struct cluster *c);

/* Drops the peers not heard from within node_timeout. */
void cluster_peers_expire(struct cluster *c, int64_t now);

/* A message of the control channel (redislink_message_fn). */
void cluster_peers_ctl_cb(void *arg, const char *data, size_t len, void *priv);

/* Frees every peer. */
void cluster_peers_free(struct cluster *c);

/* ------------------------------------------------------- cluster_retained.c */

/* A retained publication here: to the cluster's store, now or once the link is back. */
void cluster_retained_publish(struct cluster *c, const struct router_msg *m);

/* Loads the cluster's retained values (the link just came up). */
void cluster_retained_load(struct cluster *c);

/* A message of the retained channel (redislink_message_fn). */
void cluster_retained_message_cb(void *arg, const char *data, size_t len, void *priv);

/* The link is down: a load under way is forgotten. */
void cluster_retained_down(struct cluster *c);

/* Frees the outbox and what a load held. */
void cluster_retained_free(struct cluster *c);

#endif
