/*
 * authpool.h - checking password hashes off the event loop.
 *
 * A password check is deliberately slow: a yescrypt hash costs about 11 ms
 * of CPU and a bcrypt one about 45 ms (docs/security.md).  Run on the event
 * loop, one login would stall every connection for that long, and a burst
 * of logins for seconds.  So checks run on a few worker threads, and each
 * result comes back to the loop: a worker appends it to a done list and,
 * when that list was empty, writes a byte to a pipe the loop watches with
 * libevent; the loop takes the whole list and calls each request's
 * callback, on the loop's thread.
 *
 * A request can be cancelled (its connection closed) at any time before
 * its callback runs: a queued one is dropped at once, a running one is
 * left to finish and then freed; its callback never runs.
 *
 * Bounds: at most MAX_QUEUED requests exist at once (queued, running, or
 * done and not yet handed back); authpool_verify refuses more, so a flood
 * of logins costs a bounded queue and the pool's threads, never unbounded
 * memory.  Passwords are copied into the request and wiped once checked.
 *
 * Threads: everything here but the workers runs on the loop's thread.  The
 * workers block every signal, so signals keep going to the loop.
 */
#ifndef PIGEON_AUTHPOOL_H
#define PIGEON_AUTHPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct authpool;
struct authpool_req;

/* Called on the loop's thread with the check's result.  The request is freed after it returns. */
typedef void (*authpool_done_fn)(bool ok, void *arg);

/* The default number of threads: 2, or the CPUs online if fewer. */
unsigned authpool_default_threads(void);

/*
 * Starts THREADS (>= 1) workers whose results come back on BASE (borrowed;
 * it must outlive the pool).  0 and *OUT (the caller's: authpool_free), or
 * -1 with a static reason in *WHY.
 */
int authpool_new(struct event_base *base, unsigned threads, size_t max_queued,
                 struct authpool **out, const char **why);

/*
 * Stops and joins the workers and frees every request left, without
 * calling their callbacks.  NULL is fine.  Not from within a callback.
 */
void authpool_free(struct authpool *p);

/*
 * Queues a check of PASSWORD (LEN bytes, copied) against the crypt(3) HASH
 * (NUL-terminated, copied).  FN(ok, ARG) runs later on the loop's thread,
 * never from within this call: ok is true when crypt_r of PASSWORD with
 * HASH as its setting gives HASH back.  Returns the request (owned by the
 * pool: pass it to authpool_cancel until FN runs, never after), or NULL
 * when MAX_QUEUED requests exist already.
 */
struct authpool_req *authpool_verify(struct authpool *p, const char *hash, const char *password,
                                     size_t len, authpool_done_fn fn, void *arg);

/* Cancels REQ: its callback will not run.  Only before the callback ran. */
void authpool_cancel(struct authpool *p, struct authpool_req *req);

/* Requests that exist now (queued, running, or done and not yet handed back). */
size_t authpool_pending(struct authpool *p);

/* Checks the workers have completed, since the start.  For stats and tests. */
uint64_t authpool_completed(struct authpool *p);

#endif
