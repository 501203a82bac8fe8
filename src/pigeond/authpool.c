/*
 * authpool.c - worker threads that run crypt_r, and the hand-back of their
 * results to the event loop (see authpool.h for the contract).
 *
 * One mutex guards the two lists and every request's state; a condition
 * variable wakes workers when work is queued or the pool stops.  A request
 * moves QUEUED (on `todo`) -> RUNNING (on no list; only its worker touches
 * its password) -> DONE (on `done`, then on the loop's local list while it
 * hands results back).  Cancelling marks a RUNNING or DONE request, which
 * the loop then frees without calling back, and frees a QUEUED one at once.
 *
 * The wake-up is a non-blocking pipe: a worker writes one byte when it puts
 * a result on an empty done list; the loop reads every byte first, then
 * takes the whole list, so a result added after its read finds the list
 * empty again and writes its own byte.  No result is ever left without a
 * byte to announce it, and a burst of results costs one wake-up.
 */
#include "authpool.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "xalloc.h"

#define DEFAULT_THREADS 2

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_DONE };

struct authpool_req {
    TAILQ_ENTRY(authpool_req) link; /* on todo or done, by state */
    enum req_state state;
    bool cancelled;
    bool ok;
    char *hash;     /* owned */
    char *password; /* owned; wiped and freed once checked */
    size_t len;
    authpool_done_fn fn;
    void *arg;
};

TAILQ_HEAD(req_list, authpool_req);

struct authpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req_list todo; /* queued, oldest first */
    struct req_list done; /* checked, waiting for the loop */
    bool stopping;
    size_t pending, max_pending; /* requests that exist; at most max_pending */
    pthread_t *threads;
    unsigned n_threads; /* started */
    int wake[2];        /* the pipe: [0] read by the loop, [1] written by workers */
    struct event *wake_ev;
    atomic_uint_fast64_t completed;
};

/* ------------------------------------------------------------ requests ---- */

static void req_wipe_password(struct authpool_req *r)
{
    if (r->password == NULL)
        return;
    OPENSSL_cleanse(r->password, r->len);
    free(r->password);
    r->password = NULL;
}

static void req_free(struct authpool_req *r)
{
    req_wipe_password(r);
    free(r->hash);
    free(r);
}

/* crypt_r(PASSWORD, HASH) == HASH, the compare in constant time. */
static bool check_hash(struct crypt_data *cd, const char *hash, const char *password)
{
    const char *out;
    size_t len = strlen(hash);

    memset(cd, 0, sizeof(*cd));
    out = crypt_r(password, hash, cd);
    return out != NULL && out[0] != '*' && strlen(out) == len && CRYPTO_memcmp(out, hash, len) == 0;
}

/* ------------------------------------------------------------- workers ---- */

static void wake_loop(struct authpool *p)
{
    const char byte = 1;
    ssize_t n;

    do
        n = write(p->wake[1], &byte, 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full of bytes the loop has yet to read; it will see the list. */
}

static void *worker_main(void *arg)
{
    struct authpool *p = arg;
    struct crypt_data *cd = xmalloc(sizeof(*cd));

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct authpool_req *r;
        bool was_empty;
        while (TAILQ_EMPTY(&p->todo) && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        r = TAILQ_FIRST(&p->todo);
        TAILQ_REMOVE(&p->todo, r, link);
        r->state = REQ_RUNNING;
        pthread_mutex_unlock(&p->mu);

        /* Only this thread touches r's hash and password while it runs. */
        r->ok = check_hash(cd, r->hash, r->password);
        req_wipe_password(r);
        atomic_fetch_add(&p->completed, 1);

        pthread_mutex_lock(&p->mu);
        r->state = REQ_DONE;
        was_empty = TAILQ_EMPTY(&p->done);
        TAILQ_INSERT_TAIL(&p->done, r, link);
        if (was_empty)
            wake_loop(p);
    }
    pthread_mutex_unlock(&p->mu);
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return NULL;
}

/* ------------------------------------------------------ the loop side ---- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct authpool *p = arg;
    struct req_list ready = TAILQ_HEAD_INITIALIZER(ready);
    struct authpool_req *r;
    char buf[256];

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    TAILQ_CONCAT(&ready, &p->done, link);
    pthread_mutex_unlock(&p->mu);

    /* A callback may cancel a request still on READY: it is marked, and skipped here. */
    while ((r = TAILQ_FIRST(&ready)) != NULL) {
        TAILQ_REMOVE(&ready, r, link);
        pthread_mutex_lock(&p->mu);
        p->pending--;
        pthread_mutex_unlock(&p->mu);
        if (!r->cancelled)
            r->fn(r->ok, r->arg);
        req_free(r);
    }
}

unsigned authpool_default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus > 0 && cpus < DEFAULT_THREADS ? (unsigned)cpus : DEFAULT_THREADS;
}

/* Starts the workers with every signal blocked (they inherit the mask). */
static int threads_start(struct authpool *p, unsigned n)
{
    sigset_t all, old;
    int rc = 0;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    p->threads = xcalloc(n, sizeof(*p->threads));
    for (; p->n_threads < n && rc == 0; p->n_threads++)
        if ((rc = pthread_create(&p->threads[p->n_threads], NULL, worker_main, p)) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

int authpool_new(struct event_base *base, unsigned threads, size_t max_queued,
                 struct authpool **out, const char **why)
{
    struct authpool *p = xcalloc(1, sizeof(*p));

    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    TAILQ_INIT(&p->todo);
    TAILQ_INIT(&p->done);
    p->max_pending = max_queued;
    p->wake[0] = p->wake[1] = -1;
    if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        *why = "cannot make the pool's pipe";
        goto fail;
    }
    p->wake_ev = event_new(base, p->wake[0], EV_READ | EV_PERSIST, wake_cb, p);
    if (p->wake_ev == NULL || event_add(p->wake_ev, NULL) < 0) {
        *why = "cannot watch the pool's pipe";
        goto fail;
    }
    if (threads == 0 || threads_start(p, threads) < 0) {
        *why = "cannot start the pool's threads";
        goto fail;
    }
    *out = p;
    return 0;
fail:
    authpool_free(p);
    return -1;
}

static void list_free(struct req_list *l)
{
    struct authpool_req *r;

    while ((r = TAILQ_FIRST(l)) != NULL) {
        TAILQ_REMOVE(l, r, link);
        req_free(r);
    }
}

void authpool_free(struct authpool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    /* Every worker is gone: a RUNNING request was put on done before its worker looked again. */
    list_free(&p->todo);
    list_free(&p->done);
    if (p->wake_ev != NULL)
        event_free(p->wake_ev);
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0)
            close(p->wake[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

struct authpool_req *authpool_verify(struct authpool *p, const char *hash, const char *password,
                                     size_t len, authpool_done_fn fn, void *arg)
{
    struct authpool_req *r;

    pthread_mutex_lock(&p->mu);
    if (p->pending >= p->max_pending) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    p->pending++;
    pthread_mutex_unlock(&p->mu);

    r = xcalloc(1, sizeof(*r));
    r->hash = xstrdup(hash);
    r->password = xmalloc(len + 1);
    memcpy(r->password, password, len);
    r->password[len] = '\0';
    r->len = len;
    r->fn = fn;
    r->arg = arg;

    pthread_mutex_lock(&p->mu);
    r->state = REQ_QUEUED;
    TAILQ_INSERT_TAIL(&p->todo, r, link);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return r;
}

void authpool_cancel(struct authpool *p, struct authpool_req *r)
{
    bool drop;

    pthread_mutex_lock(&p->mu);
    drop = r->state == REQ_QUEUED;
    if (drop) {
        TAILQ_REMOVE(&p->todo, r, link);
        p->pending--;
    } else {
        r->cancelled = true; /* running, or done: the loop frees it without calling back */
    }
    pthread_mutex_unlock(&p->mu);
    if (drop)
        req_free(r);
}

size_t authpool_pending(struct authpool *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

uint64_t authpool_completed(struct authpool *p)
{
    return atomic_load(&p->completed);
}
