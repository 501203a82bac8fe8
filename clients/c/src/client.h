/*
 * client.h - struct pigeon_client, shared by the files of the asynchronous
 * client, and the functions they call in one another.  Private to the
 * library: the public header shows an opaque type.
 *
 *   client.c     lifetime, the connection's states, reconnecting, keepalive
 *   publish.c    publications, flush, replies: checks and encoding
 *   subscribe.c  subscriptions, made again on every connection
 *   request.c    request/reply through the client's inbox
 *   receive.c    the broker's frames: responses, messages, errors
 *
 * See client.c for the state machine and the re-entrancy rules.
 */
#ifndef PIGEON_CLIENT_H
#define PIGEON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "backoff.h"
#include "buf.h"
#include "transport.h"
#include "pigeon.h"
#include "proto.h"
#include "reqs.h"
#include "subs.h"
#include "topic.h"
#include "waits.h"

struct event;
struct envelope;
struct mpread;
struct tls_ctx;

#define CLIENT_MAX_INCOMING ((uint32_t)(1024u * 1024 * 1024 + 64 * 1024))
#define CLIENT_INBOX_PREFIX "_INBOX."
#define CLIENT_ERRMSG_MAX   256

struct pigeon_client {
    struct event_base *base;     /* borrowed */
    struct transport *transport; /* owned */
    struct tls_ctx *tls;         /* owned; NULL for a plain address */
    struct addr addr;
    struct pigeon_options opts; /* the strings point at the copies below (tls_* NULL:
                                   their files were read into `tls`) */
    char *name, *token, *user, *password;

    enum pigeon_state state;
    bool no_retry;       /* the broker refused the credentials, or TLS failed before
                            any connection was made */
    bool ever_connected; /* a hello was answered once */
    uint32_t attempts;   /* retries since the last hello answered */
    uint32_t next_msgid;
    uint32_t max_payload; /* from the last hello; 0 before */
    int down_code;        /* the broker's last fatal-looking error on this socket */
    char down_msg[CLIENT_ERRMSG_MAX];

    struct subs subs;
    struct waits sent;   /* responses awaited on the current socket */
    struct waits queued; /* ... for requests in `pending` */
    struct buf pending;  /* frames waiting for a connection */
    struct reqs reqs;

    char inbox[96]; /* "_INBOX.<16 hex>", or "_INBOX.<user>.<16 hex>" (see client.c) */
    struct sub *inbox_sub;
    uint64_t next_token;

    struct event *retry_ev;   /* owned */
    struct event *attempt_ev; /* owned */
    struct event *ping_ev;    /* owned; NULL when pings are off */
    bool ping_out;
    int64_t ping_sent_ms;

    char last_topic[PROTO_TOPIC_MAX]; /* the last topic that passed topic_check */
    size_t last_topic_len;

    struct backoff_rng rng;
    int busy;           /* entries from the loop under way */
    bool closing;       /* pigeon_close was called */
    struct buf scratch; /* pigeon_publish_obj's packing */
    char errmsg[CLIENT_ERRMSG_MAX];
};

/* ------------------------------------------------------------ client.c --- */

/* Records the details of error CODE (printf-style) and returns CODE. */
int client_err(pigeon_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every entry from the event loop is bracketed by these (see client.c). */
void client_enter(pigeon_client *c);
void client_leave(pigeon_client *c);

/* False once pigeon_close was called: stop touching the client's state. */
bool client_alive(const pigeon_client *c);

/* Moves to state ST and tells on_state. */
void client_set_state(pigeon_client *c, enum pigeon_state st, int err);

/* Arms timer EV for MS milliseconds. */
void client_arm_timer(struct event *ev, int ms);

/*
 * The broker said it logged us in as USER (LEN bytes, borrowed): a client
 * that gave a token or a certificate rather than a user name makes its
 * inbox `_INBOX.<user>.…`, as one that gave the name does, unless it has
 * already subscribed to its inbox.
 */
void client_adopt_user(pigeon_client *c, const char *user, uint32_t len);

/* The socket is gone or the attempt failed, for ERR (WHY: details): retry or give up. */
void client_lost(pigeon_client *c, int err, const char *why);

/* The broker broke the protocol: drop the socket and start over. */
void client_proto_error(pigeon_client *c, const char *why);

/*
 * Hello is answered: moves the reconnect buffer to the socket, dropping and
 * reporting the frames over the new max_payload.  PIGEON_OK, or
 * PIGEON_ENOMEM with what is left still buffered.  Callbacks run: check
 * client_alive and transport_is_up afterwards.
 */
int client_send_pending(pigeon_client *c);

/* Sends a request answered without a callback: WAIT_UNSUB of SID, or WAIT_PING. */
int client_send_plain(pigeon_client *c, enum wait_kind kind, uint64_t sid);

/* ----------------------------------------------------------- publish.c --- */

/* Checks S (what it is, for messages) as a topic or a pattern, when verify_topics. */
int client_check_topic(pigeon_client *c, const char *what, const char *s, size_t len,
                       enum topic_kind kind);

/*
 * Encodes and queues a publication: a notification when W is NULL, else a
 * request whose response W describes (its msgid is filled in).  REPLY_TO,
 * when not NULL, overrides PO's.  Everything is borrowed for the call.
 */
int client_pub(pigeon_client *c, const char *topic, const void *payload, size_t len,
               const struct pigeon_pub_opts *po, const char *reply_to, struct wait *w);

/* --------------------------------------------------------- subscribe.c --- */

/* Adds a subscription (sent now when connected); *OUT is the table's. */
int client_add_sub(pigeon_client *c, const char *pattern, const char *queue, pigeon_msg_cb cb,
                   void *arg, struct sub **out);

/* Encodes a `sub` for S on the current socket. */
int client_send_sub(pigeon_client *c, struct sub *s);

/* Tells S's on_done, once. */
void client_sub_done(pigeon_client *c, struct sub *s, int err, uint64_t result);

/* The broker answered S's `sub` with ERR, and RESULT (the sid) on success. */
void client_on_sub(pigeon_client *c, struct sub *s, int err, struct mpread result);

/* ----------------------------------------------------------- request.c --- */

/* Completes request R with ERR (REPLY NULL unless answered) and frees it. */
void client_req_finish(pigeon_client *c, struct req *r, int err, const pigeon_msg *reply);

/* The broker answered the pub of request TOKEN with ERR, and RESULT (a count). */
void client_on_req_pub(pigeon_client *c, uint64_t token, int err, struct mpread result);

/* ----------------------------------------------------------- receive.c --- */

/* The transport's `frame` handler: one complete frame from the broker. */
bool client_frame_cb(void *arg, const uint8_t *frame, size_t len);

/* The transport's `quick` handler: a complete plain `msg` at the front of the input. */
bool client_quick_cb(void *arg, const uint8_t *data, size_t avail, size_t *used);

#endif
