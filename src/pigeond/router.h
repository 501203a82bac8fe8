/*
 * router.h - subscriptions, publications and retained values.
 *
 * The router is the one place a message goes from its publisher to its
 * subscribers: it owns the subscription index (sublist.h) and the retained
 * store (retain.h), and it is the entry point other sources of messages
 * call as well: the backplane (cluster.h) delivers messages from other
 * nodes through router_publish with `remote` set, learns this node's
 * interest from router_subscribe and router_unsubscribe, and is offered
 * every local publication after local delivery.
 *
 * A published message travels as bytes: `body` is the topic and payload
 * exactly as the publisher encoded them (adjacent in a `pub` frame and in a
 * `msg` frame alike), so each delivery is the subscription's pre-encoded
 * prefix, then body, then the opts map when there is one.  No payload is
 * ever decoded or re-encoded.  Deliveries go through the session's delivery
 * API (session.h), never to a connection directly.
 *
 * Threads.  The router is shared by every loop of the node and is not
 * thread-safe: even a match writes (the match cache, sublist.h).  With one
 * loop it is that loop's; with several, deliveries would be handed to the
 * loop that owns the subscriber, and the index either guarded or given a
 * per-loop cache in front (NATS's L1 cache per client).  Its config is the
 * loop's snapshot, passed in where a limit is checked.
 */
#ifndef PIGEON_ROUTER_H
#define PIGEON_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encode.h"

struct block;
struct cluster;
struct config;
struct retain_cursor;
struct server;
struct session;
struct sub;

/*
 * A message to route. Every pointer is borrowed for the call.  The flags
 * sit together so that the struct, which handle_pub initialises for every
 * publication, stays small.
 */
struct router_msg {
    const char *topic; /* checked published topic, inside body */
    size_t topic_len;
    const uint8_t *body; /* topic and payload, encoded, adjacent */
    size_t body_len;
    const uint8_t *opts; /* the opts map for msg (reply_to, headers), or NULL */
    size_t opts_len;
    struct block *block;  /* when body lies in a refcounted block, or NULL */
    struct session *from; /* the publishing client, or NULL (the broker itself, the backplane) */
    uint32_t topic_hash;  /* hmap_hash(topic), when `hashed` */
    bool hashed;
    bool retain; /* replace (or, with payload_nil, clear) the retained value */
    bool payload_nil;
    /*
     * From the backplane (cluster.h): delivered here only, never sent on.
     * Its queue groups get it only where GROUP_OK(GROUP_ARG, pattern,
     * queue) is true (the sending node gave this node their turn); NULL
     * means none does.
     */
    bool remote;
    const char *reply_to; /* for the retained copy's opts, or NULL */
    size_t reply_to_len;
    const void *headers; /* msgpack_object *, for the retained copy's opts, or NULL */
    bool (*group_ok)(const void *arg, const char *pattern, const char *queue);
    const void *group_arg;
};

struct router;

/* Returns a new router for SRV (borrowed). */
struct router *router_new(struct server *srv);

/* Frees the router; every subscription and replay must be gone. NULL is fine. */
void router_free(struct router *r);

/*
 * Joins R to the backplane C (borrowed; NULL leaves it): from then on
 * subscriptions are announced to it and publications offered to it.
 */
void router_set_cluster(struct router *r, struct cluster *c);

/*
 * Interest without a subscription: the node wants messages on PATTERN
 * (checked) from the other nodes of the cluster, as if a client here had
 * subscribed to it, and releases that wish.  For the store: a node that
 * defines a stream holds its patterns, so that messages published on any
 * node reach router_publish here (with `remote` set) and are captured.
 * Counted: each hold needs its release.  Nothing happens standalone.
 */
void router_interest_hold(struct router *r, const char *pattern);
void router_interest_release(struct router *r, const char *pattern);

/* Adds SUB (its pattern checked, its queue group or NULL) to the index; sets SUB->entry. */
void router_subscribe(struct router *r, struct sub *sub);

/* Removes SUB from the index (the session frees SUB). */
void router_unsubscribe(struct router *r, struct sub *sub);

/* True when any value is retained (a new subscription may have a replay). */
bool router_has_retained(const struct router *r);

/* Starts CUR over the values retained now; router_replay_end lets go of it. */
void router_replay_begin(struct router *r, struct retain_cursor *cur);
void router_replay_end(struct router *r, struct retain_cursor *cur);

/*
 * Offers SUB the next retained values its pattern matches
 * (session_offer_retained), visiting at most *BUDGET store nodes (it is
 * decremented).  Returns an enum retain_walk: DONE when the replay is
 * complete, REFUSED when the session had no room, BUDGET when *BUDGET
 * reached 0.
 */
int router_replay_step(struct router *r, struct retain_cursor *cur, struct sub *sub,
                       size_t *budget);

/*
 * Routes M to every matching subscription: one delivery per plain
 * subscription, one per queue group (round robin).  With M->retain, first
 * stores or clears the topic's retained value.  Unless M->remote, then
 * offers it to the backplane, if any.  Returns the number of deliveries
 * queued (with the remote subscriptions it was sent toward), or
 * -PROTO_ERR_LIMIT when the value cannot be retained within max_retained
 * (then nothing is delivered).  CONF gives the limit.
 */
long router_publish(struct router *r, const struct config *conf, const struct router_msg *m);

/*
 * Sets TOPIC's retained value to BODY (topic and payload, as published)
 * and OPTS (the opts its replays carry, `retained: true` included), or
 * clears it when BODY is NULL, without delivering anything: a change made
 * on another node (cluster.h).  Setting the value it already has changes
 * nothing (so a replay under way still offers it).  0, or -PROTO_ERR_LIMIT
 * over max_retained.
 */
int router_store_retained(struct router *r, const struct config *conf, const char *topic,
                          size_t tlen, const uint8_t *body, size_t blen, const uint8_t *opts,
                          size_t olen);

/*
 * TOPIC's retained value as stored: *BODY (topic and payload) and *OPTS
 * (the opts its replays carry), borrowed until the value changes.  False
 * when TOPIC has none.
 */
bool router_retained_get(const struct router *r, const char *topic, size_t tlen,
                         const uint8_t **body, size_t *blen, const uint8_t **opts, size_t *olen);

/* Calls FN(topic, len, ARG) for every retained topic but the '$' ones; FN must not change them. */
void router_retained_foreach(struct router *r, void (*fn)(const char *topic, size_t len, void *arg),
                             void *arg);

/*
 * The value retained for TOPIC now, for the store (store.h): its block
 * with a new reference for the caller (body then opts, BODY_LEN and
 * OPTS_LEN bytes), or NULL when the topic has none.
 */
struct block *router_retained_ref(struct router *r, const char *topic, size_t len,
                                  uint32_t *body_len, uint32_t *opts_len);

/*
 * Makes BLK (BODY_LEN bytes of topic and payload, then OPTS_LEN bytes of
 * opts; the router takes a reference) TOPIC's retained value, or clears it
 * when BLK is NULL.  For the store: to load the stored values at start
 * (LIMIT true: refused, returning -1, when max_retained in CONF would be
 * passed) and to put back a value whose change it could not keep.
 */
int router_retained_put(struct router *r, const struct config *conf, const char *topic, size_t len,
                        struct block *blk, uint32_t body_len, uint32_t opts_len, bool limit);

/* Counts, for monitoring and the memory budget. */
size_t router_sub_count(const struct router *r);
uint64_t router_sub_bytes(const struct router *r); /* what the subscriptions and their index take */
size_t router_retained_count(const struct router *r);
uint64_t router_retained_bytes(const struct router *r);

#endif
