/*
 * loop.c - an event loop, its connections, and its jobs (see loop.h).
 *
 * The I/O backend is chosen behind this one seam: libevent is told to avoid
 * every method but the one configured, and the method it ends up with is
 * checked.  With epoll the changelist is on, so a connection whose write
 * interest is added and dropped within one iteration costs no epoll_ctl.
 *
 * The flush and reap jobs are events made active (event_active), so they
 * run within the iteration, after the callback at hand.  The defer job is a
 * timer of zero: libevent runs timers after the I/O callbacks of the next
 * poll, so a connection that yielded resumes only once every other socket
 * that was ready has had its turn.
 */
#include "loop.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "budget.h"
#include "clock.h"
#include "conn.h"
#include "xalloc.h"

static void loop_flush_cb(evutil_socket_t fd, short what, void *arg);
static void loop_reap_cb(evutil_socket_t fd, short what, void *arg);
static void loop_defer_cb(evutil_socket_t fd, short what, void *arg);
static void loop_rl_flush_cb(evutil_socket_t fd, short what, void *arg);

/* What each kind of warning is about, in the suppressed-count report. */
static const char *const warning_names[LOOP_WARN_N] = {
    [LOOP_WARN_PROTOCOL] = "bad frames",
    [LOOP_WARN_SLOW] = "slow consumers",
    [LOOP_WARN_ACCEPT] = "accepting connections",
    [LOOP_WARN_MEMORY] = "memory budget",
};

/* libevent's method names, in the order of enum config_io_backend. */
static const char *const backend_methods[] = {
    [CONFIG_IO_AUTO] = NULL,   [CONFIG_IO_EPOLL] = "epoll",   [CONFIG_IO_KQUEUE] = "kqueue",
    [CONFIG_IO_POLL] = "poll", [CONFIG_IO_SELECT] = "select",
};

static struct event_base *loop_new_base(enum config_io_backend backend, const char **why)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    const char *want = backend_methods[backend];

    if (cfg == NULL) {
        *why = "cannot create an event_config";
        return NULL;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    if (backend == CONFIG_IO_AUTO || backend == CONFIG_IO_EPOLL)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    if (want != NULL) {
        const char **methods = event_get_supported_methods();
        for (int i = 0; methods != NULL && methods[i] != NULL; i++)
            if (strcmp(methods[i], want) != 0)
                event_config_avoid_method(cfg, methods[i]);
    }
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base == NULL) {
        *why = want != NULL ? "the configured io_backend is not available on this system"
                            : "cannot create an event_base";
        return NULL;
    }
    /* A prefix match: with the changelist, libevent names epoll
     * "epoll (with changelist)". */
    if (want != NULL && strncmp(event_base_get_method(base), want, strlen(want)) != 0) {
        event_base_free(base);
        *why = "the configured io_backend is not available on this system";
        return NULL;
    }
    return base;
}

int loop_init(struct loop *lp, struct server *srv, struct logger *log, struct config *conf,
              const char **why)
{
    memset(lp, 0, sizeof(*lp));
    lp->srv = srv;
    lp->log = log;
    lp->conf = config_ref(conf);
    lp->out_limit = conf->max_outbound;
    TAILQ_INIT(&lp->conns);
    TAILQ_INIT(&lp->pending);
    TAILQ_INIT(&lp->dead);
    TAILQ_INIT(&lp->deferred);
    if (!msgpack_zone_init(&lp->zone, 2048))
        abort(); /* out of memory at start: the xalloc policy */
    msgpack_sbuffer_init(&lp->opts);
    msgpack_sbuffer_init(&lp->frame);
    for (int i = 0; i < LOOP_WARN_N; i++)
        log_ratelimit_init(&lp->rl[i], 10, 1000);
    lp->base = loop_new_base(conf->io_backend, why);
    if (lp->base == NULL)
        return -1;
    fdlimit_init(&lp->fds, event_base_get_method(lp->base));
    lp->flush_ev = event_new(lp->base, -1, 0, loop_flush_cb, lp);
    lp->reap_ev = event_new(lp->base, -1, 0, loop_reap_cb, lp);
    lp->defer_ev = evtimer_new(lp->base, loop_defer_cb, lp);
    lp->rl_flush_ev = evtimer_new(lp->base, loop_rl_flush_cb, lp);
    if (lp->flush_ev == NULL || lp->reap_ev == NULL || lp->defer_ev == NULL ||
        lp->rl_flush_ev == NULL) {
        *why = "cannot create the loop's events";
        return -1;
    }
    return 0;
}

void loop_fini(struct loop *lp)
{
    struct event **evs[] = {&lp->rl_flush_ev, &lp->defer_ev, &lp->reap_ev, &lp->flush_ev};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (*evs[i] != NULL)
            event_free(*evs[i]);
        *evs[i] = NULL;
    }
    if (lp->base != NULL)
        event_base_free(lp->base);
    lp->base = NULL;
    block_unref(lp->rblk);
    lp->rblk = NULL;
    while (lp->n_rpool > 0)
        block_unref(lp->rpool[--lp->n_rpool]);
    msgpack_sbuffer_destroy(&lp->frame);
    msgpack_sbuffer_destroy(&lp->opts);
    msgpack_zone_destroy(&lp->zone);
    config_unref(lp->conf);
    lp->conf = NULL;
}

void loop_set_config(struct loop *lp, struct config *conf)
{
    struct conn *c;
    struct config *old = lp->conf;

    lp->conf = config_ref(conf);
    lp->out_limit = conf->max_outbound;
    TAILQ_FOREACH (c, &lp->conns, link)
        conn_apply_config(c);
    config_unref(old);
}

const char *loop_method(const struct loop *lp)
{
    return event_base_get_method(lp->base);
}

/* A pooled read block no output refers to any more, taken out of the pool, or NULL. */
static struct block *loop_pool_take(struct loop *lp)
{
    for (unsigned i = 0; i < lp->n_rpool; i++) {
        struct block *b = lp->rpool[i];
        if (block_refs(b) == 1) {
            lp->rpool[i] = lp->rpool[--lp->n_rpool];
            return b;
        }
    }
    return NULL;
}

struct block *loop_read_block(struct loop *lp)
{
    if (lp->rblk != NULL && block_refs(lp->rblk) > 1) {
        /* Outputs still refer to it: set it aside (or let them free it). */
        if (lp->n_rpool < LOOP_READ_POOL)
            lp->rpool[lp->n_rpool++] = lp->rblk;
        else
            block_unref(lp->rblk);
        lp->rblk = NULL;
    }
    if (lp->rblk == NULL)
        lp->rblk = loop_pool_take(lp);
    if (lp->rblk == NULL)
        lp->rblk = block_new(LOOP_READ_MAX);
    return lp->rblk;
}

size_t loop_read_cap(struct loop *lp)
{
    if (lp->read_bytes < LOOP_READ_WINDOW)
        return LOOP_READ_MAX;
    uint64_t now = clock_now_ns();
    if (now - lp->read_window_ns < LOOP_READ_WINDOW_NS)
        return LOOP_READ_SMALL;
    lp->read_window_ns = now;
    lp->read_bytes = 0;
    return LOOP_READ_MAX;
}

void loop_schedule_flush(struct loop *lp)
{
    event_active(lp->flush_ev, 0, 0);
}

void loop_schedule_reap(struct loop *lp)
{
    event_active(lp->reap_ev, 0, 0);
}

void loop_defer(struct loop *lp, struct conn *c)
{
    static const struct timeval now = {0, 0};

    if (c->deferred)
        return;
    c->deferred = true;
    if (TAILQ_EMPTY(&lp->deferred))
        evtimer_add(lp->defer_ev, &now);
    TAILQ_INSERT_TAIL(&lp->deferred, c, defer_link);
    lp->stats.yields++;
}

msgpack_sbuffer *loop_frame_buf(struct loop *lp)
{
    msgpack_sbuffer_clear(&lp->frame);
    return &lp->frame;
}

static void loop_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn *c;

    while ((c = TAILQ_FIRST(&lp->pending)) != NULL)
        conn_flush(c); /* takes C off the pending list */
    budget_check(lp->srv);
}

static void loop_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn *c;

    while ((c = TAILQ_FIRST(&lp->dead)) != NULL)
        conn_reap(c); /* takes C off the dead list */
}

/* Resumes the connections deferred so far; those that defer again wait for the next round. */
static void loop_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn_list round = TAILQ_HEAD_INITIALIZER(round);
    struct conn *c;

    TAILQ_CONCAT(&round, &lp->deferred, defer_link);
    while ((c = TAILQ_FIRST(&round)) != NULL) {
        TAILQ_REMOVE(&round, c, defer_link);
        c->deferred = false;
        conn_resume(c);
    }
}

/* ------------------------------------------------ rate-limited warnings */

/* Arms the report of suppressed warnings one refill interval from now. */
static void loop_arm_rl_flush(struct loop *lp, const struct log_ratelimit *rl)
{
    struct timeval tv = {.tv_sec = rl->interval_ms / 1000,
                         .tv_usec = (suseconds_t)(rl->interval_ms % 1000) * 1000};

    if (!evtimer_pending(lp->rl_flush_ev, NULL))
        evtimer_add(lp->rl_flush_ev, &tv);
}

void loop_warn(struct loop *lp, enum loop_warning kind, const char *fmt, ...)
{
    struct log_ratelimit *rl = &lp->rl[kind];
    uint64_t suppressed;
    char line[512];
    va_list ap;

    if (!log_ratelimit_ok(rl, (uint64_t)clock_now_ms(), &suppressed)) {
        loop_arm_rl_flush(lp, rl);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed > 0)
        log_warning(lp->log, "%s (%llu similar warnings suppressed)", line,
                    (unsigned long long)suppressed);
    else
        log_warning(lp->log, "%s", line);
}

/*
 * Reports each kind's suppressed warnings once its bucket has refilled, so
 * that "N similar warnings suppressed" reaches the log even when no warning
 * of that kind follows the burst; while a bucket is still empty, tries again.
 */
static void loop_rl_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    uint64_t now = (uint64_t)clock_now_ms(), n;

    for (int i = 0; i < LOOP_WARN_N; i++) {
        if (log_ratelimit_flush(&lp->rl[i], now, &n))
            log_warning(lp->log, "%llu similar warnings suppressed (%s)", (unsigned long long)n,
                        warning_names[i]);
        if (log_ratelimit_pending(&lp->rl[i]))
            loop_arm_rl_flush(lp, &lp->rl[i]);
    }
}
