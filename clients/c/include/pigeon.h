/*
 * pigeon.h - libpigeon, the C client of the Pigeon MessagePack pub/sub broker.
 *
 * Two ways in:
 *
 *   - The asynchronous API (pigeon_connect ... pigeon_close) runs on the
 *     caller's libevent event_base: every call returns at once and results
 *     come back through callbacks, which run from that base's loop.
 *   - The blocking API (pigeon_sync_*) is for simple programs: each call
 *     waits, with a timeout, for what it asked.  It is the asynchronous
 *     client on a private event_base, run only inside pigeon_sync_* calls.
 *
 * What the library does for you: it finds frame boundaries in the byte
 * stream with a bounded scanner (partial and oversized frames are handled),
 * sends `hello` and learns the broker's max_payload, checks topics and
 * payload sizes before they leave, pings an idle connection so the broker
 * does not close it, reconnects with jittered exponential backoff and
 * subscribes again, buffers what is published while disconnected (up to a
 * bound; sent once hello is answered, but for what is over that broker's
 * max_payload, dropped and reported), and keeps one inbox subscription per
 * client for request/reply.
 *
 * Security.  A "tls://host:port" address speaks TLS (OpenSSL 3), verifying
 * the broker's certificate against a CA file or the system's store, and its
 * name against the host connected to; a client certificate is optional (a
 * broker logs it in as the user its CN names).  Credentials (user and
 * password, or a token) go in hello, on every connection, reconnects
 * included.  A refused login is PIGEON_ERR_AUTH_FAILED (or
 * PIGEON_ERR_AUTH_REQUIRED) and is not retried; a denied publication or
 * subscription is PIGEON_ERR_FORBIDDEN, with the broker's words ("not
 * allowed to publish to 'orders.admin.x'") in pigeon_errmsg or on_error's
 * MESSAGE; a failed handshake or certificate check is PIGEON_ETLS.
 *
 * Payloads are MessagePack bytes: the library takes one encoded object
 * (pointer + length) and hands out exactly the bytes the publisher sent;
 * nothing is decoded or re-encoded on the way.  pigeon_publish_obj and
 * pigeon_msg_unpack are thin helpers over msgpack-c; with msgpack-c you can
 * also pack into a msgpack_sbuffer and publish sbuf.data, sbuf.size:
 *
 *     msgpack_sbuffer sb;
 *     msgpack_packer pk;
 *     msgpack_sbuffer_init(&sb);
 *     msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
 *     msgpack_pack_map(&pk, 1);
 *     msgpack_pack_str_with_body(&pk, "id", 2);
 *     msgpack_pack_int(&pk, 17);
 *     int err = pigeon_publish(client, "orders.new", sb.data, sb.size, NULL);
 *     msgpack_sbuffer_destroy(&sb);
 *
 * Errors.  Every function that can fail returns PIGEON_OK (0) or an error
 * code: a negative PIGEON_E* for the library's own errors, or a positive
 * PIGEON_ERR_* (1..10), the broker's error codes of the protocol.  Where the
 * library catches locally what the broker would refuse (a bad topic, a frame
 * over max_payload) it returns the code the broker would have sent.
 * pigeon_strerror names any code; pigeon_errmsg gives the details of a
 * client's last error (the broker's own message, the system error, ...).
 *
 * Ownership.  Strings and buffers passed in are borrowed for the call only
 * (the library copies what it keeps) unless a comment says otherwise.
 * Pointers handed to a callback are borrowed for the callback's duration.
 * Objects a function hands out through an out-pointer are the caller's, to
 * be released with the matching *_free / *_close.
 *
 * Threads.  There is no global state: use one client per thread, or several
 * on one thread's event_base.  A client and its event_base must only be
 * used from one thread at a time.  The library never changes signal
 * dispositions; it writes with MSG_NOSIGNAL, so a broken connection does
 * not raise SIGPIPE.
 *
 * Compile and link with `pkg-config --cflags --libs pigeon`; a program
 * that calls libevent or msgpack-c itself adds `libevent_core msgpack`
 * (they are private requirements of pigeon.pc: this header needs neither).
 */
#ifndef PIGEON_H
#define PIGEON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PIGEON_BUILDING_LIBRARY) && defined(__GNUC__)
#define PIGEON_API __attribute__((visibility("default")))
#else
#define PIGEON_API
#endif

struct event_base;     /* libevent 2.1 */
struct msgpack_object; /* msgpack-c */
struct msgpack_zone;   /* msgpack-c */

#define PIGEON_DEFAULT_PORT 7400

/* --------------------------------------------------------------- errors -- */

enum pigeon_error {
    PIGEON_OK = 0,

    /* The broker's error codes, as in the protocol (positive). */
    PIGEON_ERR_BAD_FRAME = 1,      /* not MessagePack, or not a frame's shape */
    PIGEON_ERR_UNKNOWN_METHOD = 2, /* the broker does not have that method */
    PIGEON_ERR_BAD_PARAMS = 3,     /* wrong params, unknown option or sid */
    PIGEON_ERR_BAD_TOPIC = 4,      /* a topic or pattern that breaks the rules */
    PIGEON_ERR_TOO_LARGE = 5,      /* a frame over the broker's max_payload */
    PIGEON_ERR_AUTH_REQUIRED = 6,  /* hello with credentials needed first */
    PIGEON_ERR_AUTH_FAILED = 7,    /* wrong or missing credentials */
    PIGEON_ERR_FORBIDDEN = 8,      /* the user may not (publish to a topic, subscribe
                                      to a pattern, publish to a '$' topic) */
    PIGEON_ERR_SLOW_CONSUMER = 9,  /* this client's outbound queue overflowed */
    PIGEON_ERR_LIMIT = 10,         /* a broker limit (subscriptions, idle, ...) */

    /* The library's own errors (negative). */
    PIGEON_ENOMEM = -1,         /* out of memory */
    PIGEON_EINVAL = -2,         /* invalid argument (NULL, bad payload bytes, ...) */
    PIGEON_EADDRESS = -3,       /* address not understood */
    PIGEON_ECONNECT = -4,       /* could not connect (refused, unreachable, timed out) */
    PIGEON_ECONNLOST = -5,      /* the connection broke before the answer came */
    PIGEON_ENOTCONN = -6,       /* not connected, and not buffering */
    PIGEON_EFULL = -7,          /* output or reconnect buffer full: let the loop run */
    PIGEON_ETIMEDOUT = -8,      /* no answer within the timeout */
    PIGEON_ECLOSED = -9,        /* the client was closed */
    PIGEON_EPROTO = -10,        /* the broker broke the protocol */
    PIGEON_ENOREPLY = -11,      /* the message has no reply_to */
    PIGEON_ENORESPONDERS = -12, /* a request's topic has no subscriber */
    PIGEON_ESYS = -13,          /* another system error (see pigeon_errmsg) */
    PIGEON_ETLS = -14,          /* TLS failed: the broker's certificate did not verify, the
                                   handshake failed, an alert; or a CA, certificate or key
                                   file could not be loaded (see pigeon_errmsg) */
};

/*
 * A short static phrase for ERR, any of the codes above; for a broker code
 * it includes the protocol's name, e.g. "bad topic or pattern (bad_topic)".
 * Never NULL.
 */
PIGEON_API const char *pigeon_strerror(int err);

/* ------------------------------------------------------------- messages -- */

/*
 * A received message.  In a callback it is borrowed for the callback's
 * duration: copy it with pigeon_msg_copy to keep it.  The blocking API hands
 * out copies the caller frees with pigeon_msg_free.  Every pointer an
 * accessor returns lives as long as the message.
 */
typedef struct pigeon_msg pigeon_msg;

/* The topic it was published to, NUL-terminated; *LEN (if not NULL) its length. */
PIGEON_API const char *pigeon_msg_topic(const pigeon_msg *m, size_t *len);

/* The payload: one MessagePack object, exactly the publisher's bytes. */
PIGEON_API const void *pigeon_msg_data(const pigeon_msg *m, size_t *len);

/* reply_to, NUL-terminated, or NULL when the publisher set none. */
PIGEON_API const char *pigeon_msg_reply_to(const pigeon_msg *m);

/* 1 for a retained value replayed on subscribing, 0 for a live delivery. */
PIGEON_API int pigeon_msg_retained(const pigeon_msg *m);

/* The id of the subscription it came through (pigeon_subscribe's *ID). */
PIGEON_API uint64_t pigeon_msg_sid(const pigeon_msg *m);

/* The number of headers (string to string) the publisher attached. */
PIGEON_API size_t pigeon_msg_header_count(const pigeon_msg *m);

/*
 * Header I (0-based, in the publisher's order): key and value with their
 * lengths (not NUL-terminated).  Returns PIGEON_OK, or PIGEON_EINVAL when
 * I is out of range.
 */
PIGEON_API int pigeon_msg_header_at(const pigeon_msg *m, size_t i, const char **key,
                                    size_t *key_len, const char **value, size_t *value_len);

/* The value of the first header named KEY (not NUL-terminated), or NULL. */
PIGEON_API const char *pigeon_msg_header(const pigeon_msg *m, const char *key, size_t *value_len);

/*
 * Decodes the payload with msgpack-c into *OUT, allocating from ZONE (the
 * caller's).  Strings and binaries in *OUT point into the message, so they
 * live as long as both the message and ZONE.  The bytes were bounded by the
 * frame scanner, so no container count can make this allocate more than a
 * small multiple of the payload's size.  Returns PIGEON_OK, PIGEON_EINVAL,
 * or PIGEON_ENOMEM.
 */
PIGEON_API int pigeon_msg_unpack(const pigeon_msg *m, struct msgpack_zone *zone,
                                 struct msgpack_object *out);

/* A copy of M the caller owns (free with pigeon_msg_free). PIGEON_OK or PIGEON_ENOMEM. */
PIGEON_API int pigeon_msg_copy(const pigeon_msg *m, pigeon_msg **out);

/* Frees a message from pigeon_msg_copy or the blocking API. NULL is fine. */
PIGEON_API void pigeon_msg_free(pigeon_msg *m);

/* -------------------------------------------------------------- options -- */

typedef struct pigeon_client pigeon_client;

enum pigeon_state {
    PIGEON_STATE_CONNECTING = 1,   /* a connection attempt is under way */
    PIGEON_STATE_CONNECTED = 2,    /* hello answered: ready */
    PIGEON_STATE_DISCONNECTED = 3, /* the connection is down; a retry is scheduled */
    PIGEON_STATE_CLOSED = 4,       /* down for good: no retry (reconnect off, or gave up) */
};

/* The connection changed state; ERR says why it went down (0 otherwise). */
typedef void (*pigeon_state_cb)(pigeon_client *c, enum pigeon_state state, int err, void *arg);

/*
 * An error not tied to a call that has its own callback: an `error`
 * notification from the broker (e.g. a failed fire-and-forget publish, a
 * slow-consumer warning, the reason it is about to close the connection),
 * a subscription the broker refused when it had no on_done, or a buffered
 * publication dropped as over the max_payload of the broker it was about
 * to go to (PIGEON_ERR_TOO_LARGE, MESSAGE naming the topic; see
 * max_pending).  MESSAGE is borrowed for the callback's duration.
 */
typedef void (*pigeon_error_cb)(pigeon_client *c, int err, const char *message, void *arg);

/*
 * Settings of a client.  Always start from pigeon_options_init(), which
 * fills in the defaults given below, then change what you need: fields may
 * be added at the end in later versions.  Strings are borrowed for the
 * pigeon_connect / pigeon_sync_connect call only (the client copies what it
 * keeps, and reads the files then).
 */
struct pigeon_options {
    const char *client_name; /* told to the broker in hello (its logs); "libpigeon" */
    const char *token;       /* credentials, sent in hello on every connection: a token, */
    const char *user;        /* or a user and a password (the broker refuses both kinds */
    const char *password;    /* at once); NULL.  Kept in memory for reconnects, wiped at
                                pigeon_close.  Over plain TCP they cross the network in
                                clear: use a tls:// address off this machine */

    int connect_timeout_ms;     /* one connection attempt, hello included; 5000 */
    int reconnect;              /* 1: reconnect when the connection drops or an attempt
                                   fails; 0: don't; -1 (the default): on for pigeon_connect,
                                   off for pigeon_sync_connect */
    int reconnect_min_ms;       /* first retry delay; 100 */
    int reconnect_max_ms;       /* the delay doubles up to this; 5000.  Each delay is
                                   drawn uniformly from [d/2, d] (jitter) */
    int max_reconnect_attempts; /* failed attempts in a row before giving up; -1 never */
    int ping_interval_ms;       /* keepalive: ping when nothing was sent or received for
                                   this long, and drop the connection when a ping stays
                                   unanswered with nothing received for as long again;
                                   60000 (the broker's idle_timeout is 5 min); 0 off */
    size_t max_pending;         /* bytes of publications buffered while not connected
                                   (down, or hello not yet answered); 8 MiB; 0:
                                   publishing while disconnected fails.  They are sent
                                   in order once hello is answered, but for those over
                                   that broker's max_payload (it would close the
                                   connection on them): dropped, and reported with
                                   PIGEON_ERR_TOO_LARGE, to the callback of a request
                                   or confirmed publish, else through on_error */
    size_t max_outbound;        /* bytes queued for the socket while connected before
                                   publishing fails with PIGEON_EFULL; 16 MiB */
    uint32_t max_incoming;      /* largest frame accepted from the broker; 1 GiB + 64 KiB
                                   (the broker's own upper limit, plus envelope) */
    int verify_topics;          /* nonzero: check topics and patterns before sending,
                                   returning PIGEON_ERR_BAD_TOPIC; 1 */

    pigeon_state_cb on_state; /* NULL, or told of every state change (but the first
                                 CONNECTING, inside pigeon_connect) */
    void *state_arg;
    pigeon_error_cb on_error; /* NULL, or told of asynchronous errors */
    void *error_arg;

    size_t max_queued; /* blocking API only: messages received and not yet taken
                          by pigeon_sync_next; more are dropped and counted
                          (pigeon_sync_dropped); 65536; 0 no bound */

    char *errbuf;      /* NULL, or where pigeon_connect and pigeon_sync_connect
                          write why they failed, when they return an error:
                          what pigeon_errmsg would say, with the system's
                          reason ("connect to 127.0.0.1:1: Connection refused",
                          "bad address '127.0.0.1:99999': the port must be a
                          number from 1 to 65535"), cut to errbuf_len bytes
                          with a NUL.
                          Written during those calls only; NULL by default */
    size_t errbuf_len; /* bytes at errbuf; 0 by default */

    /* TLS, for tls:// addresses only (set with a plain address they are
     * PIGEON_EINVAL: credentials meant for TLS must not go out in clear).
     * The files are PEM, read by pigeon_connect (a bad one fails it with
     * PIGEON_ETLS and says why in errbuf); keys unencrypted. */
    const char *tls_ca;   /* CA certificates the broker's must chain to; NULL:
                             the system's store */
    const char *tls_cert; /* a client certificate (then intermediates), or NULL;
                             a broker that verifies client certificates logs the
                             client in as the user its subject CN names */
    const char *tls_key;  /* tls_cert's private key; NULL: in tls_cert's file */
    int tls_no_verify;    /* nonzero: do not verify the broker's certificate or
                             name (anyone in the path can read and change the
                             traffic; for tests); 0 */
};

/* Fills O with the defaults above. */
PIGEON_API void pigeon_options_init(struct pigeon_options *o);

/* Options of a publication.  Zero-initialise, then set what you need. */
struct pigeon_header {
    const char *key;   /* NUL-terminated */
    const char *value; /* NUL-terminated */
};

struct pigeon_pub_opts {
    const char *reply_to;                /* NULL, or a topic for the answer */
    const struct pigeon_header *headers; /* n_headers entries, or NULL */
    size_t n_headers;
    int retain; /* nonzero: keep as the topic's retained value
                   (with a nil payload: clear it) */
};

/* ------------------------------------------------------ asynchronous API -- */

/* A message arrived on a subscription.  M is borrowed for the call. */
typedef void (*pigeon_msg_cb)(pigeon_client *c, const pigeon_msg *m, void *arg);

/*
 * The broker answered a call: ERR is PIGEON_OK, a broker code, or a library
 * error (PIGEON_ECONNLOST when the connection broke first, PIGEON_ECLOSED
 * when the client was closed).  RESULT is the delivery count for
 * pigeon_publish_confirm, the subscription's id for a subscription
 * (accepted or refused), 0 otherwise.  Runs exactly once per call that
 * accepted it; a subscription's on_done, once, unless it is unsubscribed
 * before the broker answers.
 */
typedef void (*pigeon_done_cb)(pigeon_client *c, int err, uint64_t result, void *arg);

/*
 * The answer to pigeon_request: ERR is PIGEON_OK and REPLY the answer
 * (borrowed for the call), or an error (PIGEON_ETIMEDOUT,
 * PIGEON_ENORESPONDERS, PIGEON_ECLOSED, a broker code, ...) and REPLY NULL.
 * Runs exactly once per request that was accepted.
 */
typedef void (*pigeon_reply_cb)(pigeon_client *c, int err, const pigeon_msg *reply, void *arg);

/*
 * Creates a client on BASE (borrowed: it must outlive the client) and
 * starts connecting to ADDRESS: "host:port", "[ipv6]:port", "host" or
 * "[ipv6]" (port 7400), "port" alone (127.0.0.1:port) or "unix:/path",
 * and any TCP form after "tls://" for TLS (clients/c/README.md lists the
 * forms).  Host names are resolved with
 * getaddrinfo, which may block: prefer numeric addresses in
 * latency-sensitive programs.
 * OPTS may be NULL for the defaults.  The connection comes up
 * asynchronously (see on_state); publications and subscriptions made
 * before that are sent once it is up (publications once hello is
 * answered, checked against the broker's max_payload: see max_pending).
 * A name that does not resolve is a failed attempt (PIGEON_ECONNECT),
 * retried like any other.  On success *OUT is the caller's, to be
 * released with pigeon_close.  Returns PIGEON_OK, PIGEON_EINVAL,
 * PIGEON_EADDRESS (ADDRESS is none of the forms) or PIGEON_ENOMEM, with
 * the details in OPTS->errbuf when it is set; PIGEON_EINVAL too for TLS
 * options with a plain address, PIGEON_ETLS for a TLS file that cannot be
 * loaded.  Later failures come through on_state: a refused login
 * (PIGEON_ERR_AUTH_FAILED, PIGEON_ERR_AUTH_REQUIRED) closes the client for
 * good, and so does a TLS failure (PIGEON_ETLS) before any connection was
 * made (a wrong CA or name will not fix itself; once connected, the
 * broker's certificate may be being replaced, so it is retried).
 */
PIGEON_API int pigeon_connect(struct event_base *base, const char *address,
                              const struct pigeon_options *opts, pigeon_client **out);

/*
 * Closes C and frees it.  What the socket takes at once of the output
 * already queued is written, the rest dropped (call pigeon_flush first, and
 * close in its callback, to be sure the broker has everything).  Every
 * pending pigeon_done_cb and pigeon_reply_cb is called with PIGEON_ECLOSED
 * before this returns; no other callback runs after it.  May be called from
 * within a callback of C (the memory is then released when that callback
 * returns).  NULL is fine.
 */
PIGEON_API void pigeon_close(pigeon_client *c);

/* The current state of C. */
PIGEON_API enum pigeon_state pigeon_state(const pigeon_client *c);

/*
 * The details of C's last error (the broker's message, the system error,
 * which check failed, ...), or "" when there was none.  Borrowed: valid
 * until the next call on C.
 */
PIGEON_API const char *pigeon_errmsg(const pigeon_client *c);

/* The broker's max_payload as told in hello, or 0 before the first hello. */
PIGEON_API uint32_t pigeon_max_payload(const pigeon_client *c);

/* Bytes queued toward the broker: on the socket, plus those buffered until
 * a connection's hello is answered (see max_pending). */
PIGEON_API size_t pigeon_outbound_bytes(const pigeon_client *c);

/*
 * Publishes PAYLOAD (LEN bytes, exactly one MessagePack object) to TOPIC,
 * fire and forget (a `pub` notification).  OPTS may be NULL.  Everything
 * is borrowed for the call: the frame is encoded into the client's output
 * before this returns.  Returns PIGEON_OK once queued; a broker refusal
 * comes later through on_error.  Fails with PIGEON_ERR_BAD_TOPIC (topic
 * or reply_to), PIGEON_ERR_BAD_PARAMS (a header that is not UTF-8),
 * PIGEON_ERR_TOO_LARGE (over the broker's max_payload, once hello has told
 * it; a buffered publication over the limit of the broker it then goes to
 * is dropped and reported through on_error), PIGEON_EINVAL (payload not
 * one valid object, or nested deeper than the protocol allows),
 * PIGEON_EFULL (output over max_outbound, or the reconnect buffer over
 * max_pending: let the event loop run),
 * PIGEON_ENOTCONN (down for good, or not buffering), PIGEON_ECLOSED or
 * PIGEON_ENOMEM.
 */
PIGEON_API int pigeon_publish(pigeon_client *c, const char *topic, const void *payload, size_t len,
                              const struct pigeon_pub_opts *opts);

/* pigeon_publish of OBJ, packed with msgpack-c. */
PIGEON_API int pigeon_publish_obj(pigeon_client *c, const char *topic,
                                  const struct msgpack_object *obj,
                                  const struct pigeon_pub_opts *opts);

/*
 * pigeon_publish as a `pub` request: DONE (not NULL) is told the number of
 * subscriptions the broker delivered it to, or the broker's error.
 */
PIGEON_API int pigeon_publish_confirm(pigeon_client *c, const char *topic, const void *payload,
                                      size_t len, const struct pigeon_pub_opts *opts,
                                      pigeon_done_cb done, void *arg);

/* Options of a subscription.  Zero-initialise, then set what you need. */
struct pigeon_sub_opts {
    const char *queue;      /* NULL, or a queue group: each message goes to one member */
    pigeon_done_cb on_done; /* NULL, or told once when the broker first accepts (result:
                               the id) or refuses the subscription */
    void *done_arg;
};

/*
 * Subscribes to PATTERN ('*' one token, '>' one or more at the end): CB
 * (not NULL) gets every matching message, with ARG, until
 * pigeon_unsubscribe.  OPTS may be NULL.  The subscription outlives
 * connections: it is made again after every reconnect.  *ID (may be NULL)
 * is set to its id, which stays the same across reconnects.  If the broker
 * refuses it, it is removed and the refusal goes to OPTS->on_done, else to
 * on_error.  Returns PIGEON_OK, PIGEON_ERR_BAD_TOPIC, PIGEON_ERR_BAD_PARAMS
 * (a queue group name that breaks the rules of a topic), PIGEON_EINVAL,
 * PIGEON_ENOTCONN (down for good), PIGEON_ECLOSED or PIGEON_ENOMEM.
 */
PIGEON_API int pigeon_subscribe(pigeon_client *c, const char *pattern,
                                const struct pigeon_sub_opts *opts, pigeon_msg_cb cb, void *arg,
                                uint64_t *id);

/*
 * Ends subscription ID: its callback is not called again once this
 * returns (even for messages already read).  Returns PIGEON_OK or
 * PIGEON_EINVAL (no such subscription).
 */
PIGEON_API int pigeon_unsubscribe(pigeon_client *c, uint64_t id);

/*
 * Sends a ping behind everything queued so far: DONE (not NULL) runs once
 * the broker has handled all of it (ERR PIGEON_OK), or with the error that
 * prevented it.
 */
PIGEON_API int pigeon_flush(pigeon_client *c, pigeon_done_cb done, void *arg);

/*
 * Request/reply: publishes PAYLOAD to TOPIC with reply_to set to a fresh
 * topic under this client's inbox (`_INBOX.<random>.<n>`, one inbox
 * subscription per client), and calls CB (not NULL) with the first answer,
 * or with PIGEON_ETIMEDOUT after TIMEOUT_MS (> 0), or at once with
 * PIGEON_ENORESPONDERS when the broker says nobody subscribes to TOPIC.
 * OPTS may be NULL; its reply_to must be NULL.  Returns PIGEON_OK (CB will
 * run exactly once) or an error as pigeon_publish does (CB will not run).
 */
PIGEON_API int pigeon_request(pigeon_client *c, const char *topic, const void *payload, size_t len,
                              const struct pigeon_pub_opts *opts, int timeout_ms,
                              pigeon_reply_cb cb, void *arg);

/*
 * Answers REQUEST (a message received by C, or a copy of one) by
 * publishing PAYLOAD to its reply_to.  Returns PIGEON_ENOREPLY when it has
 * none, else as pigeon_publish.
 */
PIGEON_API int pigeon_reply(pigeon_client *c, const pigeon_msg *request, const void *payload,
                            size_t len);

/* --------------------------------------------------------- blocking API -- */

/*
 * A client on a private event_base.  Messages of its subscriptions are
 * read while one of these calls waits, and queued in memory until
 * pigeon_sync_next takes them: at most the options' max_queued messages;
 * those arriving while the queue is full are dropped (the newest, not the
 * queued ones) and counted by pigeon_sync_dropped, as the Python client's
 * max_pending does.  Reconnection is off unless OPTS turns it on; with it
 * on, the calls wait through reconnects.
 */
typedef struct pigeon_sync pigeon_sync;

/*
 * Connects to ADDRESS (as pigeon_connect) and waits until hello is
 * answered, at most TIMEOUT_MS (<= 0: the options' connect_timeout_ms).
 * The first attempt must succeed: reconnection, when on, applies to a
 * connection once made.  OPTS may be NULL; on_state and on_error are
 * honoured.  On success *OUT is the caller's (pigeon_sync_close).  Returns
 * PIGEON_OK, PIGEON_ECONNECT, PIGEON_ETIMEDOUT, PIGEON_EADDRESS, a broker
 * code (PIGEON_ERR_AUTH_FAILED for a refused login), PIGEON_ETLS,
 * PIGEON_EINVAL or PIGEON_ENOMEM; on failure OPTS->errbuf, when set, says
 * why (the system's reason for a refused connection, the certificate
 * check that failed: "TLS handshake with tls://h:7401: certificate verify
 * failed: unable to get local issuer certificate", say).
 */
PIGEON_API int pigeon_sync_connect(const char *address, const struct pigeon_options *opts,
                                   int timeout_ms, pigeon_sync **out);

/*
 * Waits until the broker has handled what was published (a ping, at most
 * the connect timeout), then closes and frees S.  When the connection is
 * down with publications buffered (reconnection on), that wait includes
 * the reconnect: what is still buffered when the timeout passes, or when
 * reconnecting gives up, is dropped.  NULL is fine.
 */
PIGEON_API void pigeon_sync_close(pigeon_sync *s);

/* The asynchronous client inside S (borrowed), for pigeon_errmsg and the like. */
PIGEON_API pigeon_client *pigeon_sync_client(pigeon_sync *s);

/*
 * Messages S dropped because max_queued were already waiting for
 * pigeon_sync_next, since pigeon_sync_connect.
 */
PIGEON_API uint64_t pigeon_sync_dropped(const pigeon_sync *s);

/*
 * pigeon_publish, waiting (at most the connect timeout) for room when the
 * output is full.  Fire and forget: a broker refusal is not reported (use
 * pigeon_sync_publish_confirm for that).
 */
PIGEON_API int pigeon_sync_publish(pigeon_sync *s, const char *topic, const void *payload,
                                   size_t len, const struct pigeon_pub_opts *opts);

/*
 * Publishes as a request and waits for the broker's answer: *DELIVERED
 * (may be NULL) is the number of subscriptions it reached.
 */
PIGEON_API int pigeon_sync_publish_confirm(pigeon_sync *s, const char *topic, const void *payload,
                                           size_t len, const struct pigeon_pub_opts *opts,
                                           int timeout_ms, uint64_t *delivered);

/*
 * Subscribes (QUEUE may be NULL) and waits for the broker to accept.  *ID
 * (may be NULL) is the subscription's id, as in pigeon_msg_sid.
 */
PIGEON_API int pigeon_sync_subscribe(pigeon_sync *s, const char *pattern, const char *queue,
                                     int timeout_ms, uint64_t *id);

/* Ends a subscription; its queued messages are discarded. */
PIGEON_API int pigeon_sync_unsubscribe(pigeon_sync *s, uint64_t id);

/*
 * Takes the next message of any subscription, waiting at most TIMEOUT_MS
 * (0: do not wait, only read what has arrived; < 0: wait forever).  On
 * PIGEON_OK *OUT is the caller's (pigeon_msg_free).  Returns
 * PIGEON_ETIMEDOUT when nothing came, PIGEON_ECONNLOST or PIGEON_ENOTCONN
 * when the connection is gone (and not coming back).
 */
PIGEON_API int pigeon_sync_next(pigeon_sync *s, int timeout_ms, pigeon_msg **out);

/*
 * Sends a request and waits at most TIMEOUT_MS for the answer, which *REPLY
 * receives (the caller's: pigeon_msg_free).  Messages of subscriptions that
 * arrive meanwhile are queued for pigeon_sync_next.
 */
PIGEON_API int pigeon_sync_request(pigeon_sync *s, const char *topic, const void *payload,
                                   size_t len, int timeout_ms, pigeon_msg **reply);

/* Answers REQUEST (from pigeon_sync_next), as pigeon_reply. */
PIGEON_API int pigeon_sync_reply(pigeon_sync *s, const pigeon_msg *request, const void *payload,
                                 size_t len);

/* Waits until the broker has handled everything sent before (a ping). */
PIGEON_API int pigeon_sync_flush(pigeon_sync *s, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
