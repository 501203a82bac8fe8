/*
 * commit.c - the group commit's two threads and the pipe back to the loop
 * (see commit.h).
 *
 * Each worker sleeps on its condition variable until it is handed a job,
 * runs its part, and counts itself out; the last one out writes one byte
 * to the pipe.  The loop reads it in commit_pipe_cb and calls the done
 * callback.  A pipe rather than an eventfd so that the same code serves
 * every libevent backend.
 */
#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "seglog.h"
#include "statedb.h"
#include "xalloc.h"

enum { PART_LOG, PART_STATE, PARTS };

struct worker {
    struct commit *c;
    int part;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct commit_job *job; /* handed over; NULL once run */
    bool stop;
};

struct commit {
    struct statedb *db;
    struct worker w[PARTS];
    int pipe_r, pipe_w;
    struct event *ev;
    atomic_int parts_left;
    struct commit_job *out; /* the job out, or NULL */
    void (*done_cb)(struct commit_job *job, void *arg);
    void *arg;
};

static void commit_pipe_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------ workers ---- */

static void part_run(struct commit *c, int part, struct commit_job *job)
{
    if (part == PART_LOG) {
        uint64_t t0 = clock_now_ns();
        for (size_t i = 0; i < job->n_logs; i++)
            seglog_job_run(job->logs[i], job->fsync);
        job->log_ns = clock_now_ns() - t0;
    } else {
        job->state_err =
            statedb_apply(c->db, (const struct statedb_ops *const *)job->ops, job->n_ops,
                          &job->state_ns, job->state_why, sizeof(job->state_why));
    }
}

/* The last part done tells the loop. */
static void part_done(struct commit *c)
{
    if (atomic_fetch_sub_explicit(&c->parts_left, 1, memory_order_acq_rel) != 1)
        return;
    char b = 1;
    while (write(c->pipe_w, &b, 1) < 0 && errno == EINTR)
        ;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->job == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        struct commit_job *job = w->job;
        if (job == NULL)
            break;
        w->job = NULL; /* taken: the next one may be handed over once this one is done */
        pthread_mutex_unlock(&w->mu);
        part_run(w->c, w->part, job);
        part_done(w->c);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/*
 * Signalled after the unlock, so that the woken worker does not at once
 * block again on a mutex the loop still holds (one futex call less each way).
 */
static void worker_hand(struct worker *w, struct commit_job *job)
{
    pthread_mutex_lock(&w->mu);
    w->job = job;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_signal(&w->cv);
}

/* Starts W with every signal blocked: signals belong to the loop (server.c). */
static int worker_start(struct commit *c, struct worker *w, int part)
{
    sigset_t all, old;

    w->c = c;
    w->part = part;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    w->started = rc == 0;
    return rc;
}

static void worker_stop(struct worker *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = false;
}

/* ---------------------------------------------------------------- API ---- */

int commit_new(struct event_base *base, struct statedb *db,
               void (*done_cb)(struct commit_job *job, void *arg), void *arg, struct commit **out,
               char *why, size_t why_len)
{
    struct commit *c = xcalloc(1, sizeof(*c));
    int fds[2];

    c->db = db;
    c->done_cb = done_cb;
    c->arg = arg;
    c->pipe_r = c->pipe_w = -1;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(why, why_len, "cannot make the commit pipe: %s", strerror(errno));
        commit_free(c);
        return -1;
    }
    c->pipe_r = fds[0];
    c->pipe_w = fds[1];
    c->ev = event_new(base, c->pipe_r, EV_READ | EV_PERSIST, commit_pipe_cb, c);
    if (c->ev == NULL || event_add(c->ev, NULL) < 0) {
        snprintf(why, why_len, "cannot watch the commit pipe");
        commit_free(c);
        return -1;
    }
    for (int p = 0; p < PARTS; p++) {
        int rc = worker_start(c, &c->w[p], p);
        if (rc != 0) {
            snprintf(why, why_len, "cannot start a commit thread: %s", strerror(rc));
            commit_free(c);
            return -1;
        }
    }
    *out = c;
    return 0;
}

void commit_free(struct commit *c)
{
    if (c == NULL)
        return;
    commit_wait(c);
    for (int p = 0; p < PARTS; p++)
        worker_stop(&c->w[p]);
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->pipe_r >= 0)
        close(c->pipe_r);
    if (c->pipe_w >= 0)
        close(c->pipe_w);
    free(c);
}

bool commit_busy(const struct commit *c)
{
    return c->out != NULL;
}

void commit_submit(struct commit *c, struct commit_job *job)
{
    bool state = false;

    for (size_t i = 0; i < job->n_ops; i++)
        state |= job->ops[i]->n > 0;

    job->state_err = 0;
    job->state_why[0] = '\0';
    job->state_ns = job->log_ns = 0;
    c->out = job;
    atomic_store_explicit(&c->parts_left, PARTS, memory_order_release);
    /* A part with nothing to do is counted out at once. */
    if (job->n_logs > 0)
        worker_hand(&c->w[PART_LOG], job);
    else
        part_done(c);
    if (state)
        worker_hand(&c->w[PART_STATE], job);
    else
        part_done(c);
}

/* Takes the finished job back and reports it. */
static void commit_finish(struct commit *c)
{
    struct commit_job *job = c->out;

    c->out = NULL;
    if (job != NULL)
        c->done_cb(job, c->arg);
}

static void commit_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct commit *c = arg;
    char buf[16];

    /* One byte per job, and one job out at a time: a single read empties it. */
    if (read(c->pipe_r, buf, sizeof(buf)) < 0 && errno != EAGAIN && errno != EINTR)
        return;
    if (c->out != NULL && atomic_load_explicit(&c->parts_left, memory_order_acquire) == 0)
        commit_finish(c);
}

void commit_wait(struct commit *c)
{
    struct pollfd p = {.fd = c->pipe_r, .events = POLLIN};
    char buf[16];

    while (c->out != NULL && atomic_load_explicit(&c->parts_left, memory_order_acquire) != 0) {
        poll(&p, 1, -1);
        while (read(c->pipe_r, buf, sizeof(buf)) > 0)
            ;
    }
    commit_finish(c);
}
