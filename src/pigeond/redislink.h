/*
 * redislink.h - the node's link to Redis: two hiredis connections on the
 * node's event loop, kept connected, authenticated and subscribed.
 *
 * One connection sends commands (publishes, scripts, reads), the other
 * only subscribes: RESP2 (hiredis 0.14.1, Debian 12) cannot mix the two on
 * one connection.  Both go through hiredis's libevent adapter, on the
 * broker's own event_base, so the backplane adds no thread.
 *
 * The link knows Redis, not Pigeon: cluster.c says what to subscribe to
 * and what to send.  Its life:
 *
 *   WAIT ──timer──▶ CONNECTING ──both authenticated, every channel
 *    ▲                  │         subscribed──▶ UP ──ops.up()
 *    └── backoff ◀──────┴──────── any failure ◀─┘   (ops.down() if it was up)
 *
 * Any failure of either connection (refused, reset, EOF, an AUTH error,
 * a reply not received within the timeout, or the owner's
 * redislink_fail) takes both down: commands in flight get their callback
 * with a NULL reply, then, if the link was up, ops.down() is called, and
 * the link tries again after a backoff that starts at 50 ms and doubles to
 * 1 s (with jitter), so that a returning Redis is in use again within
 * about a second.  Teardown is deferred to its own event, so no hiredis
 * context is freed inside its own callback.
 *
 * Pending bytes.  Every command sent and not yet answered counts its bytes
 * (as hiredis encoded them) until its reply, or its loss, arrives: the
 * owner reads redislink_pending() to bound what a slow Redis can make the
 * node hold.
 *
 * hiredis 0.14.1 has no TLS: the link is plain TCP or a unix socket (see
 * docs/scale-out.md for a private network or a TLS tunnel).
 */
#ifndef PIGEON_REDISLINK_H
#define PIGEON_REDISLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "log.h"

struct redisReply;
struct redislink;

/* Where and how to connect; the strings are copied. */
struct redislink_config {
    const char *host; /* TCP: an address or a name; NULL for a unix socket */
    uint16_t port;
    const char *path;     /* unix socket, or NULL */
    const char *user;     /* AUTH user (Redis 6 ACLs), or NULL */
    const char *password; /* AUTH password, or NULL for no AUTH */
    uint32_t timeout_ms;  /* to connect and authenticate, and for any reply */
};

struct redislink_ops {
    /* The link is up: commands may be sent, every channel is subscribed. */
    void (*up)(void *arg);
    /* The link that was up is down (WHY, static or borrowed for the call); it reconnects by itself.
     */
    void (*down)(void *arg, const char *why);
};

/* A command's reply (borrowed for the call), or NULL when the link lost it. */
typedef void (*redislink_reply_fn)(void *arg, const struct redisReply *reply, void *priv);

/* A message published on a subscribed channel: its payload, borrowed for the call. */
typedef void (*redislink_message_fn)(void *arg, const char *data, size_t len, void *priv);

/*
 * Makes a link on BASE that logs to LOG (both borrowed) and reports to
 * OPS(ARG).  It does not connect until redislink_start.  Returns 0 and
 * *OUT, or -1 after logging why.
 */
int redislink_new(struct event_base *base, struct logger *log, const struct redislink_config *cfg,
                  const struct redislink_ops *ops, void *arg, struct redislink **out);

/*
 * Frees L: both connections are closed at once (commands in flight get
 * NULL replies; ops.down is not called).  NULL is fine.
 */
void redislink_free(struct redislink *l);

/*
 * Asks for CHANNEL's messages on every connection from now on: FN(arg,
 * data, len, PRIV) for each.  Call before redislink_start.
 */
void redislink_subscribe(struct redislink *l, const char *channel, redislink_message_fn fn,
                         void *priv);

/* Starts connecting. */
void redislink_start(struct redislink *l);

/* True while the link is up. */
bool redislink_is_up(const struct redislink *l);

/*
 * Sends a command (ARGC arguments, each ARGV[i] of ARGVLEN[i] bytes,
 * copied) on the command connection; FN (may be NULL) gets its reply or
 * NULL.  Returns 0, or -1 when the link is not up (FN is not called).
 */
int redislink_command(struct redislink *l, redislink_reply_fn fn, void *priv, int argc,
                      const char **argv, const size_t *argvlen);

/*
 * As redislink_command, with the command already in RESP, CMD (LEN bytes,
 * copied): a caller that builds a large argument in place saves hiredis a
 * copy of it and its allocations.
 */
int redislink_command_formatted(struct redislink *l, redislink_reply_fn fn, void *priv,
                                const char *cmd, size_t len);

/*
 * Sends every command given since the last call now, rather than when
 * the loop next polls.  For a last word before the process exits (bye).
 */
void redislink_flush_now(struct redislink *l);

/*
 * Takes the link down (logged as WHY, static) and reconnects after the
 * backoff: the owner found Redis misbehaving (a message it cannot read, a
 * heartbeat that never came back).  Safe from any callback.
 */
void redislink_fail(struct redislink *l, const char *why);

/* Stops (true) or resumes (false) reading the subscriber connection: backpressure. */
void redislink_pause_reading(struct redislink *l, bool pause);

/* Bytes of commands sent and not yet answered. */
size_t redislink_pending(const struct redislink *l);

/* Times the link came up after having been up before. */
uint64_t redislink_reconnects(const struct redislink *l);

/* "127.0.0.1:6379" or "unix:/path", for logs. */
const char *redislink_address(const struct redislink *l);

#endif
