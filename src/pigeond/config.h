/*
 * config.h - pigeond's settings: defaults, the INI file, validation.
 *
 * A struct config is an immutable snapshot.  It is parsed into a fresh
 * struct, validated whole, and only then handed to the server, which swaps
 * it in; a file that fails leaves the running snapshot untouched.  The same
 * path serves start-up, `pigeond -t` and SIGHUP.  Snapshots are
 * reference-counted: the server holds the current one and each event loop
 * the one it runs on, so a reload that swaps in a new snapshot never frees
 * one still in use.  The count is only touched on the main loop (start-up
 * and SIGHUP), so it is a plain integer.
 *
 * The file (inih syntax; see conf/pigeond.conf for every option):
 *
 *   [broker]              io_backend, log_level, limits, policies
 *   [listener NAME]       bind = host:port | [v6addr]:port | unix:/path,
 *                         mode = 0660 (unix sockets only)
 *   [http]                the monitoring endpoint, off without the section:
 *                         bind = host:port, max_clients, timeout,
 *                         header_timeout, max_clients_per_address
 *   [cluster]             the Redis backplane, standalone without redis:
 *                         redis = host:port | unix:/path, node, redis_user,
 *                         redis_password, prefix, heartbeat, node_timeout,
 *                         max_pending
 *
 * Sizes take an optional k/kb/m/mb/g/gb suffix (powers of 1024), durations
 * ms/s/m/h/d (a bare number is seconds).  Unknown sections and keys, bad values
 * and duplicate listeners are errors with the file, line and reason.  A file
 * with no [listener] section gets the default listener, 127.0.0.1:7400.
 */
#ifndef PIGEON_CONFIG_H
#define PIGEON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* The file read without -c: SYSCONFDIR/pigeon/pigeond.conf, from meson. */
#ifdef PIGEON_CONFIG_DEFAULT_PATH
#define CONFIG_DEFAULT_PATH PIGEON_CONFIG_DEFAULT_PATH
#else
#define CONFIG_DEFAULT_PATH "/etc/pigeon/pigeond.conf"
#endif

enum config_io_backend {
    CONFIG_IO_AUTO, /* libevent's best: epoll, kqueue, ... */
    CONFIG_IO_EPOLL,
    CONFIG_IO_KQUEUE,
    CONFIG_IO_POLL,
    CONFIG_IO_SELECT,
};

enum config_slow_policy {
    CONFIG_SLOW_DISCONNECT, /* send error 9 and close the connection */
    CONFIG_SLOW_DROP,       /* drop messages for it and count them */
};

enum config_listener_kind {
    CONFIG_LISTEN_TCP,
    CONFIG_LISTEN_UNIX,
};

/* A listener's auth: who must say who they are. */
enum config_listener_auth {
    CONFIG_AUTH_REQUIRED, /* every client, when [auth] users_file is set (the default) */
    CONFIG_AUTH_NONE,     /* nobody: e.g. a unix socket guarded by its file mode */
};

struct config_listener {
    char *name; /* from [listener NAME]; owned */
    char *bind; /* the value as written; owned */
    enum config_listener_kind kind;
    char *host;    /* TCP: address without brackets; owned */
    uint16_t port; /* TCP: 0 picks a free port */
    char *path;    /* UNIX: socket path; owned */
    unsigned mode; /* UNIX: permission bits of the socket file, 0660 unless set; TCP: 0 */
    char *group;   /* UNIX: the socket file's group, or NULL; owned */
    char *tls_cert, *tls_key; /* PEM files: TLS on this listener when set; owned */
    char *tls_ca;             /* PEM: CAs for client certificates, or NULL; owned */
    enum config_listener_auth auth;
    int line; /* line of the section header, for messages */
};

/* [auth]: who may connect (auth.h).  Off unless the section is there. */
struct config_auth {
    bool enabled;         /* the file has an [auth] section */
    char *users_file;     /* the users file; owned */
    bool allow_anonymous; /* no: a listener off loopback without authentication is refused */
    int line;             /* line of the section header */
};

/* [http]: the monitoring endpoint (http.h).  Off unless the section is there. */
struct config_http {
    bool enabled;                     /* the file has an [http] section */
    char *bind;                       /* the value as written; owned; NULL when off */
    char *host;                       /* address without brackets; owned */
    uint16_t port;                    /* 0 picks a free port */
    uint32_t max_clients;             /* 16 HTTP connections at once */
    uint32_t timeout_ms;              /* 10s to read a request or write a response */
    uint32_t header_timeout_ms;       /* 10s for a whole request's headers, however they trickle */
    uint32_t max_clients_per_address; /* 4 connections from one address (IPv6: one /64) */
    char *token;                      /* Authorization: Bearer TOKEN required, or NULL; owned */
    int line;                         /* line of the section header */
};

/* [cluster]: the Redis backplane (cluster.h).  Standalone unless the section sets redis. */
struct config_cluster {
    bool enabled;             /* the file has a [cluster] section (clustered when redis is set) */
    char *redis;              /* the value as written; owned; NULL when standalone */
    char *redis_host;         /* TCP: address without brackets; owned; NULL for a unix socket */
    uint16_t redis_port;      /* TCP: 6379 unless given */
    char *redis_path;         /* unix socket; owned; NULL for TCP */
    char *redis_user;         /* AUTH user, or NULL; owned */
    char *redis_password;     /* AUTH password, or NULL; owned; never logged or formatted */
    char *node;               /* this node's name; owned; NULL: hostname-pid */
    char *prefix;             /* of every Redis key and channel; owned; NULL: "pigeon" */
    uint32_t heartbeat_ms;    /* 1s between heartbeats */
    uint32_t node_timeout_ms; /* 5s without a heartbeat and a node's interest expires */
    uint64_t max_pending;     /* 16mb sent to Redis and not yet acknowledged */
    int line;                 /* line of the section header */
};

enum config_discard {
    CONFIG_DISCARD_OLD, /* drop the oldest messages to make room */
    CONFIG_DISCARD_NEW, /* refuse new messages (code 12) while full */
};

/* [store]: where streams and retained values are kept (store.h).  Off without the section. */
struct config_store {
    bool enabled;           /* the file has a [store] section */
    char *dir;              /* owned; from `dir`, else $STATE_DIRECTORY (systemd) */
    bool fsync;             /* yes: answers wait for stable storage, no: for the OS */
    uint64_t segment_size;  /* 64mb: segment files of streams */
    int line;               /* of the section header */
};

/* [stream NAME]: one stream (stream.h), in file order. */
struct config_stream {
    char *name;      /* owned */
    char **patterns; /* owned, each owned: what the stream captures */
    size_t n_patterns;
    uint64_t max_messages;       /* 0: no limit */
    uint64_t max_bytes;          /* 0: no limit */
    uint64_t max_age_ms;         /* 0: no limit */
    enum config_discard discard; /* old */
    uint32_t duplicate_window_ms; /* 2m: how long a msg_id is remembered */
    int line;                    /* of the section header */
    int patterns_line;           /* of its patterns key */
};

struct config {
    uint32_t refs; /* references (config_ref); the last config_unref frees it */
    char *path;    /* the file read, or NULL for built-in defaults; owned */

    /* [broker] */
    enum config_io_backend io_backend;     /* auto */
    enum log_level log_level;              /* info */
    uint32_t max_payload;                  /* 1mb: largest frame, envelope included */
    uint32_t max_connections;              /* 10000 */
    uint32_t max_subscriptions;            /* 1000000 in the whole broker */
    uint32_t max_subscriptions_per_connection; /* 10000 */
    uint64_t max_outbound;                 /* 64mb queued for one client */
    enum config_slow_policy slow_consumer; /* disconnect */
    uint64_t max_retained;                 /* 64mb of retained messages in all */
    uint64_t max_memory;                   /* 0: auto (budget.h), else the broker-wide budget */
    uint32_t idle_timeout_ms;              /* 5m; 0 never closes a silent client */
    uint32_t drain_timeout_ms;             /* 5s to flush at shutdown or close */
    uint32_t stats_interval_ms;            /* 10s between $SYS.broker.stats; 0: never */

    /* [listener NAME], in file order; or those of pigeond -p/-b (config_set_listeners) */
    struct config_listener *listeners;
    size_t n_listeners;
    bool listeners_from_args; /* the command line's, which replace the file's */

    struct config_http http;
    struct config_auth auth;
    struct config_cluster cluster;

    struct config_store store;
    struct config_stream *streams; /* owned array, in file order */
    size_t n_streams;
};

/* Makes DST a deep copy of L (DST's strings owned by it). */
void config_listener_copy(struct config_listener *dst, const struct config_listener *l);

/* Frees what a listener config owns (its name too), not L itself. */
void config_listener_release(struct config_listener *l);

/* True when listener L's clients must authenticate under CONF. */
bool config_listener_authenticates(const struct config *conf, const struct config_listener *l);

/* Where a file went wrong: "FILE:LINE: REASON". */
struct config_error {
    char file[256];
    int line; /* 0 when not tied to a line */
    char reason[256];
};

/* Returns a new config holding the built-in defaults. Owned by the caller. */
struct config *config_new_defaults(void);

/*
 * Reads and validates PATH.  On success returns 0 and sets *OUT (owned by
 * the caller); on failure returns -1, fills *ERR with the first error and
 * leaves *OUT untouched (ERR may be NULL).  A missing file is an error
 * ("cannot open: ..."): pigeond decides itself whether to fall back to
 * config_new_defaults().  Anything but a regular file (a FIFO, a device) is
 * refused as "not a regular file" (a directory: "cannot read: Is a
 * directory") without waiting on it: the file is opened non-blocking and
 * checked with fstat before any read, so SIGHUP never stalls the loop.
 */
int config_load_file(const char *path, struct config **out, struct config_error *err);

/*
 * Checks PATH as config_load_file does, but goes on past the first error to
 * report every one it finds (for `pigeond -t`): up to MAX of them into ERRS,
 * sorted by line, with their count in *N.  Returns 0 (valid, *N is 0) or -1.
 * An error in one line does not hide the next line's; an error that makes a
 * section unusable (a bad header) hides the errors of that section's keys.
 */
int config_check_file(const char *path, struct config_error *errs, size_t max, size_t *n);

/* As config_load_file, from TEXT (NAME is used in messages). For tests. */
int config_load_string(const char *text, const char *name, struct config **out,
                       struct config_error *err);

/* Takes a reference to CONF; returns it. */
struct config *config_ref(struct config *conf);

/* Drops a reference to CONF; the last frees it and everything it owns. NULL is fine. */
void config_unref(struct config *conf);

/* True when some topic matches both checked patterns A and B ('$' rule included). */
bool config_patterns_overlap(const char *a, const char *b);

/* Frees what CS owns and zeroes it. */
void config_stream_release(struct config_stream *cs);

/* A deep copy of SRC into DST (DST's old contents are not freed). */
void config_stream_copy(struct config_stream *dst, const struct config_stream *src);

/* Names, for logs: "epoll", "disconnect", ... Static. */
const char *config_io_backend_name(enum config_io_backend b);
const char *config_slow_policy_name(enum config_slow_policy p);

/* True when A and B would bind the same socket (same kind, address, port/path, mode). */
bool config_listener_same(const struct config_listener *a, const struct config_listener *b);

/*
 * The command line's listeners (pigeond -p PORT, -b ADDR): replaces CONF's
 * listeners with one per value in BINDS[0..N), N >= 1, each parsed as a
 * listener's bind (host:port, [v6addr]:port or unix:/path) and named
 * "cmdline1", "cmdline2", ... in order; sets listeners_from_args.  Returns
 * 0, or -1 with the reason in WHY ("-b 'x': ...") and CONF untouched.
 */
int config_set_listeners(struct config *conf, const char *const *binds, size_t n, char *why,
                         size_t why_len);

/*
 * For a reload: when FROM's listeners came from the command line, gives
 * NEXT copies of them in place of its own, so that -p/-b keep overriding
 * the file.  Otherwise leaves NEXT alone.
 */
void config_keep_arg_listeners(struct config *next, const struct config *from);

/*
 * The value of [SECTION] KEY in CONF, written as the file would write it,
 * with the same units: "64mb", "10s", "drop", "127.0.0.1:7480".  SECTION is
 * named as config_diff names it: "broker", "http", "listener NAME".  [http]
 * keys read as "" while the section is off, a TCP listener's mode as "".
 * 0, or -1 (BUF "") for an unknown section, listener or key.
 */
int config_value_format(const struct config *conf, const char *section, const char *key, char *buf,
                        size_t len);

/*
 * One difference between two configs.  SECTION is "broker", "http" or
 * "listener NAME"; OLD_VALUE and NEW_VALUE are formatted as the file
 * writes them.  A whole [http] or [listener NAME] section added or removed
 * is reported once, by its first key ("bind"), with OLD_VALUE (added) or
 * NEW_VALUE (removed) NULL.  The strings are borrowed for the call.
 */
typedef void (*config_diff_fn)(void *arg, const char *section, const char *key,
                               const char *old_value, const char *new_value);

/*
 * Calls FN for each setting that differs between OLD and NEW: the keys of
 * the sections that come once ([broker], [http]) in table order, then
 * those of named sections ([listener NAME], matched by name: removed or
 * changed in OLD's order, then added).  Returns the number of calls.
 */
size_t config_diff(const struct config *old, const struct config *new, config_diff_fn fn,
                   void *arg);

/*
 * Units, shared with the command line: 0 and *OUT on success, -1 if malformed
 * or above MAX.  Digits only (no sign, no blank), then for a size an optional
 * k/kb/m/mb/g/gb (powers of 1024), for a duration ms/s/m/h/d (bare: seconds);
 * suffixes in any case.
 */
int config_parse_size(const char *s, uint64_t max, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);

/*
 * The keys a file may hold, in table order, for tests and tools: for I below
 * their count sets *SECTION ("broker", "listener" or "http") and *KEY (static) and
 * returns true; past the last returns false.
 */
bool config_key_at(size_t i, const char **section, const char **key);

#endif
