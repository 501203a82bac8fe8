/*
 * auth.h - the authenticator: who a `hello` is, decided off the loop's
 * critical path, and the users policy it decides by.
 *
 * It owns:
 *
 *   the policy   the current users file, compiled (users.h), swapped whole
 *                by auth_reload only when the new file parsed and checked
 *                completely; on any error the old policy stays and the
 *                reason is logged (a reload never fails open);
 *   the pool     password hashes are checked on worker threads
 *                (authpool.h), never on the loop;
 *   the cache    recent successful logins, keyed on the user's name plus
 *                HMAC-SHA256 of the password under a random per-process
 *                key (never the password), each kept for cache_ttl_ms, so a
 *                reconnect storm costs an HMAC per login, not a hash check.
 *                Logins that wait for the same check (same user, same
 *                password) share it.  A policy swap keeps an entry only
 *                when its user's credential is unchanged;
 *   the delays   failed logins from one address are answered after a delay
 *                that doubles with each failure, from delay_base_ms up to
 *                delay_max_ms (1 s), and is forgotten after delay_forget_ms
 *                without failures.  IPv6 addresses count by their /64; all
 *                Unix-socket peers count as one address.  The table is fixed
 *                in size (least recently failed evicted), so a flood from
 *                many addresses cannot grow it.  Only failures wait:
 *                nobody else's login is slowed.
 *
 * auth_hello decides one `hello`: a token is checked inline (SHA-256 and a
 * hash-map lookup), a user and password through the cache or the pool.  An
 * unknown user, or a password for a token user, gets a check of a dummy hash
 * on the pool, so that its answer takes as long as a wrong password's.  The
 * answer always comes later through the callback, on the loop's thread,
 * never from within auth_hello.  A connection that closes first cancels its
 * request (auth_cancel), and its callback then never runs.
 *
 * What a client is told is code 7 whatever the outcome (PROTOCOL.md); the
 * outcome is for logs and counters.
 *
 * Threads: every call here is for the loop's thread (the one whose
 * event_base the authenticator was made with).
 */
#ifndef PIGEON_AUTH_H
#define PIGEON_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct event_base;
struct logger;
struct user;
struct users;
struct auth;
struct auth_req;

/* How a `hello` was decided. */
enum auth_outcome {
    AUTH_OK,      /* the credential is right: the callback gets the user */
    AUTH_BAD,     /* unknown user, wrong password, unknown token */
    AUTH_BOTH,    /* a user or password and a token at once */
    AUTH_MISSING, /* no credential, or a user without a password, or a password without one */
    AUTH_BUSY,    /* the pool had max_pending checks already: refused, not delayed */
};

/* "ok", "bad credentials", ... for logs.  Static. */
const char *auth_outcome_name(enum auth_outcome o);

struct auth_options {
    unsigned threads;         /* pool threads; 0: authpool_default_threads() */
    size_t max_pending;       /* checks on the pool at once (queued or running) */
    uint32_t cache_ttl_ms;    /* how long a successful login is remembered; 0: not at all */
    size_t cache_max;         /* logins remembered at most (least recently used evicted) */
    uint32_t delay_base_ms;   /* an address's first failure waits this long */
    uint32_t delay_max_ms;    /* and the delay doubles up to this */
    uint32_t delay_forget_ms; /* an address without failures for this long starts again */
    size_t delay_slots;       /* addresses whose failures are counted, at most */
};

/*
 * Fills O with the defaults: logins remembered 5 min, 4096 at most; delays
 * from 50 ms to 1 s, forgotten after 60 s, for 4096 addresses; 1024 checks
 * pending at most; the pool's default threads.
 */
void auth_options_default(struct auth_options *o);

/* The credentials of a `hello`; each NULL when absent.  Borrowed for the call. */
struct auth_creds {
    const char *user;
    size_t user_len;
    const char *password;
    size_t password_len;
    const char *token;
    size_t token_len;
};

/*
 * Longer secrets are refused (AUTH_BAD) before any work: crypt(3) hashes
 * passwords of at most 511 bytes (CRYPT_MAX_PASSPHRASE_SIZE - 1), and no
 * token pigeon passwd makes is near the limit.
 */
#define AUTH_PASSWORD_MAX 511
#define AUTH_TOKEN_MAX    1024

/*
 * Called on the loop's thread with the outcome.  On AUTH_OK, USER is a
 * reference the callee owns (user_unref); otherwise NULL.  The request is
 * freed once this returns.
 */
typedef void (*auth_done_fn)(struct user *user, enum auth_outcome outcome, void *arg);

/*
 * Loads the users file USERS_PATH and starts the pool, on BASE with LOG (both
 * borrowed; they outlive the authenticator).  OPTS may be NULL (defaults).
 * 0 and *OUT (the caller's: auth_free), or -1 with *ERR set: the users
 * file's first error (FILE:LINE: reason) or why the pool could not start
 * (line 0).
 */
int auth_new(struct event_base *base, struct logger *log, const char *users_path,
             const struct auth_options *opts, struct auth **out, struct config_error *err);

/* Cancels every request (no callback runs), stops the pool, frees all.  NULL is fine. */
void auth_free(struct auth *a);

/*
 * Reads PATH (NULL: the file loaded last) and, when it parses and checks
 * completely, makes it the policy at once and logs "users: loaded N users
 * from PATH"; otherwise keeps the current policy, logs the error as
 * "users: FILE:LINE: reason; keeping the previous N users", and returns -1
 * with *ERR set (ERR may be NULL).  Remembered logins whose user's
 * credential changed or who is gone are forgotten.  Sessions keep their
 * user until the caller refreshes them (auth_user_refresh).
 */
int auth_reload(struct auth *a, const char *path, struct config_error *err);

/* The current policy, borrowed until the next auth_reload: users_ref to keep it. */
struct users *auth_users(const struct auth *a);

/*
 * Decides a `hello` from PEER (its address, PEER_LEN bytes; NULL or
 * AF_UNIX: a local peer) with CREDS.  FN(user, outcome, ARG) runs later on
 * the loop's thread: at once after the current callback for a success, a
 * refusal of the pool, or a failure that found no delay, else after the
 * address's delay.  Returns the request, owned by the authenticator: pass it
 * to auth_cancel until FN runs, never after.  Never NULL.
 */
struct auth_req *auth_hello(struct auth *a, const struct sockaddr *peer, socklen_t peer_len,
                            const struct auth_creds *creds, auth_done_fn fn, void *arg);

/* Cancels REQ (its connection closed): FN will not run.  Only before it ran. */
void auth_cancel(struct auth *a, struct auth_req *req);

/*
 * The user a TLS client certificate stands for: the user named by the
 * certificate's subject CN (LEN bytes), a reference the caller owns, or
 * NULL when the current policy has no such user.  The certificate itself is
 * the TLS layer's to verify.
 */
struct user *auth_user_by_cert_cn(struct auth *a, const char *cn, size_t len);

/*
 * After a reload: the current policy's user of USER's name, a reference
 * the caller owns, when its credential is the same (a session may go on
 * with its new permissions); NULL when it is gone or its password or token
 * changed (the session should be closed).
 */
struct user *auth_user_refresh(struct auth *a, const struct user *user);

/*
 * How long the next failed login from PEER would wait now, in ms:
 * delay_base_ms for an address with no failure counted (or forgotten), 0
 * when delays are off (delay_slots 0).  For tests and diagnostics.
 */
uint32_t auth_failure_delay(struct auth *a, const struct sockaddr *peer, socklen_t peer_len);

/* Counters, for stats and tests. */
struct auth_stats {
    uint64_t ok, failed, busy; /* outcomes handed back */
    uint64_t cache_hits;       /* logins answered from the cache */
    uint64_t checks;           /* hash checks started on the pool (dummies included) */
    uint64_t shared;           /* logins that joined a check already under way */
    uint64_t reloads, reload_failures;
    size_t cached;    /* logins remembered now */
    size_t addresses; /* addresses with failures counted now */
};

void auth_get_stats(const struct auth *a, struct auth_stats *out);

#endif
