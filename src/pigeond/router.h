/*
 * router.h - subscriptions, publications and retained values.
 *
 * The router is the one place a message goes from its publisher to its
 * subscribers: it owns the subscription index (sublist.h) and the retained
 * store (retain.h), and it is the entry point a future source of messages
 * (a Redis backplane, a durable store replaying) will call as well.
 *
 * A published message travels as bytes: `body` is the topic and payload
 * exactly as the publisher encoded them (adjacent in a `pub` frame and in a
 * `msg` frame alike), so each delivery is the subscription's pre-encoded
 * prefix, then body, then the opts map when there is one.  No payload is
 * ever decoded or re-encoded.
 */
#ifndef PIGEON_ROUTER_H
#define PIGEON_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encode.h"

struct block;
struct conn;
struct replay;
struct server;
struct sublist_entry;

/* One subscription.  Owned by its connection's subs array. */
struct sub {
    struct conn *conn;           /* the subscriber; borrowed (it owns this sub) */
    struct sublist_entry *entry; /* its place in the index */
    uint32_t sid;
    uint8_t prefix_len;
    uint8_t prefix[ENCODE_MSG_PREFIX_MAX]; /* the msg prefix with this sid */
    char *pattern;                         /* owned, NUL-terminated */
    char *queue;                           /* owned, or NULL */
    struct replay *replay;                 /* its retained replay still waiting for room, or NULL */
};

/* A message to route. Every pointer is borrowed for the call. */
struct router_msg {
    const char *topic; /* checked published topic, inside body */
    size_t topic_len;
    const uint8_t *body; /* topic and payload, encoded, adjacent */
    size_t body_len;
    const uint8_t *opts; /* the opts map for msg (reply_to, headers), or NULL */
    size_t opts_len;
    struct block *block; /* when body lies in a refcounted block, or NULL */
    bool retain;         /* replace (or, with payload_nil, clear) the retained value */
    bool payload_nil;
    const char *reply_to; /* for the retained copy's opts, or NULL */
    size_t reply_to_len;
    const void *headers; /* msgpack_object *, for the retained copy's opts, or NULL */
};

struct router;

/* Returns a new router for SRV (borrowed; its config gives the limits). */
struct router *router_new(struct server *srv);

/* Frees the router; every subscription must be gone. NULL is fine. */
void router_free(struct router *r);

/*
 * Adds a subscription for C with SID on PATTERN (checked), in queue group
 * QUEUE when not NULL.  Returns the sub, owned by the caller (the conn).
 */
struct sub *router_subscribe(struct router *r, struct conn *c, uint32_t sid, const char *pattern,
                             size_t plen, const char *queue, size_t qlen);

/* Removes S from the index and frees it. */
void router_unsubscribe(struct router *r, struct sub *s);

/*
 * Sends the retained values S's pattern matches, with retained: true, to
 * its connection: at once as far as its outbound queue has room, the rest
 * as it drains (router_replay_continue).  Call after the sub response is
 * queued.  Queue-group subscriptions get no replay (the group shares work;
 * a replay would hand the same value to each member that joins).
 */
void router_replay_retained(struct router *r, struct sub *s);

/* Goes on with C's unfinished replays; C's output has drained. */
void router_replay_continue(struct router *r, struct conn *c);

/*
 * Routes M to every matching subscription: one delivery per plain
 * subscription, one per queue group (round robin).  With M->retain, first
 * stores or clears the topic's retained value.  Returns the number of
 * deliveries queued, or -PROTO_ERR_LIMIT when the value cannot be retained
 * within max_retained (then nothing is delivered).
 */
long router_publish(struct router *r, const struct router_msg *m);

/* Counts, for monitoring. */
size_t router_sub_count(const struct router *r);
size_t router_retained_count(const struct router *r);
uint64_t router_retained_bytes(const struct router *r);

#endif
