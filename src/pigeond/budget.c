/*
 * budget.c - the broker-wide memory budget (see budget.h).
 *
 * Layers, top-down: what max_memory = auto comes to; usage; the three
 * steps of enforcement; the public check.
 *
 * The check runs after every flush job, so it must cost nothing while
 * under the limit: four additions and a compare.  Over it, steps 1 to 3
 * walk the connections, at most once per BUDGET_ENFORCE_MS, which bounds
 * their cost however hot the loop is; between two walks the loop's
 * out_limit (conn_room) keeps the biggest queues from growing.
 */
#include "budget.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "conn.h"
#include "router.h"
#include "store.h"
#include "server.h"
#include "xalloc.h"

/* Enforcement aims below the limit, so that it is not at work all the time. */
#define BUDGET_TARGET(limit) ((limit) / 10 * 9)
/* Steps 1-3 run at most this often; the timer re-checks this often while over. */
#define BUDGET_ENFORCE_MS 10
#define BUDGET_TIMER_MS   50
/* Queues smaller than this are not worth choosing in step 1. */
#define BUDGET_SLOW_MIN (64 * 1024)

static void budget_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ----------------------------------------------------------- auto ---- */

/* The value of a cgroup v2 memory.max file at PATH: bytes, or 0 for "max" or none. */
static uint64_t cgroup_read_max(const char *path)
{
    char buf[64];
    FILE *f = fopen(path, "re");
    uint64_t v = 0;

    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL && strncmp(buf, "max", 3) != 0)
        v = strtoull(buf, NULL, 10);
    fclose(f);
    return v;
}

/* The lowest memory.max from this process's cgroup up to the root, or 0. */
static uint64_t cgroup_memory_max(void)
{
    char line[512], path[1024];
    uint64_t lowest = 0;
    FILE *f = fopen("/proc/self/cgroup", "re");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "0::", 3) != 0) /* the unified (v2) hierarchy */
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *cg = line + 3;
        for (;;) {
            snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max",
                     strcmp(cg, "/") == 0 ? "" : cg);
            uint64_t v = cgroup_read_max(path);
            if (v > 0 && (lowest == 0 || v < lowest))
                lowest = v;
            char *slash = strrchr(cg, '/');
            if (slash == NULL || slash == cg)
                break;
            *slash = '\0';
        }
    }
    fclose(f);
    return lowest;
}

uint64_t budget_auto_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    uint64_t phys = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cg = cgroup_memory_max();
    uint64_t avail = cg > 0 && (phys == 0 || cg < phys) ? cg : phys;

    return avail > 0 ? avail / 2 : UINT64_MAX;
}

/* ---------------------------------------------------------- usage ---- */

void budget_usage(struct server *srv, struct budget_usage *out)
{
    out->output = srv->loop.mem_out;
    out->input = srv->loop.mem_in;
    out->retained = srv->router != NULL ? router_retained_bytes(srv->router) : 0;
    out->subscriptions = srv->router != NULL ? router_sub_bytes(srv->router) : 0;
    out->store = srv->store != NULL ? store_memory(srv->store) : 0;
    out->total = out->output + out->input + out->retained + out->subscriptions + out->store;
}

/* ---------------------------------------------------- enforcement ---- */

struct queue_size {
    size_t queued;
    struct conn *c;
};

static int queue_size_desc(const void *a, const void *b)
{
    const struct queue_size *x = a, *y = b;
    return x->queued < y->queued ? 1 : x->queued > y->queued ? -1 : 0;
}

/*
 * Step 1: applies the slow-consumer policy to the biggest queues until
 * they cover EXCESS, and caps every queue at the smallest one chosen.
 */
static void budget_choose_slow(struct server *srv, uint64_t excess)
{
    struct loop *lp = &srv->loop;
    struct queue_size *qs = xmalloc((lp->n_conns + 1) * sizeof(*qs));
    size_t n = 0, covered = 0, floor = 0;
    struct conn *c;

    TAILQ_FOREACH (c, &lp->conns, link)
        if (c->state == CONN_OPEN && conn_queued(c) >= BUDGET_SLOW_MIN)
            qs[n++] = (struct queue_size){conn_queued(c), c};
    qsort(qs, n, sizeof(*qs), queue_size_desc);
    for (size_t i = 0; i < n && covered < excess; i++) {
        covered += qs[i].queued;
        floor = qs[i].queued;
        srv->budget.slow_chosen++;
        session_slow_memory(&qs[i].c->sess);
    }
    free(qs);
    if (floor > 0 && floor < lp->out_limit)
        lp->out_limit = floor;
}

/* Step 2: stops reading from connections that publish. */
static void budget_hold_publishers(struct server *srv)
{
    struct conn *c;

    TAILQ_FOREACH (c, &srv->loop.conns, link) {
        if (c->state == CONN_OPEN && c->sess.published && !(c->holds & CONN_HOLD_MEMORY)) {
            conn_hold(c, CONN_HOLD_MEMORY);
            srv->budget.paused++;
        }
    }
}

static void budget_release_publishers(struct server *srv)
{
    struct conn *c;

    TAILQ_FOREACH (c, &srv->loop.conns, link)
        if (c->holds & CONN_HOLD_MEMORY)
            conn_release(c, CONN_HOLD_MEMORY);
    srv->budget.paused = 0;
}

static void budget_arm_timer(struct budget *b)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = BUDGET_TIMER_MS * 1000};

    if (b->timer != NULL && !evtimer_pending(b->timer, NULL))
        evtimer_add(b->timer, &tv);
}

/* Steps 1 to 3, with usage U over the limit. */
static void budget_enforce(struct server *srv, struct budget_usage *u)
{
    struct budget *b = &srv->budget;

    budget_choose_slow(srv, u->total - BUDGET_TARGET(b->limit));
    budget_usage(srv, u); /* closing slow consumers freed their queues at once */
    if (u->total <= b->limit)
        return;
    budget_hold_publishers(srv);
    if (!b->refusing)
        loop_warn(&srv->loop, LOOP_WARN_MEMORY,
                  "memory budget: still over after the slow consumers; refusing new partial "
                  "frames and subscriptions (used %" PRIu64 " of %" PRIu64 ")",
                  u->total, b->limit);
    b->refusing = true;
}

/* Usage fell back under the limit. */
static void budget_relax(struct server *srv, const struct budget_usage *u)
{
    struct budget *b = &srv->budget;

    if (b->over) {
        b->over = false;
        b->refusing = false;
        srv->loop.out_limit = srv->loop.conf->max_outbound;
        log_notice(&srv->log, "memory budget: back under max_memory (used %" PRIu64 " of %" PRIu64 ")",
                   u->total, b->limit);
    }
    if (b->paused > 0 && u->total < BUDGET_TARGET(b->limit))
        budget_release_publishers(srv);
}

void budget_check(struct server *srv)
{
    struct budget *b = &srv->budget;
    struct budget_usage u;

    budget_usage(srv, &u);
    if (u.total <= b->limit) {
        if (b->over || b->paused > 0)
            budget_relax(srv, &u);
        if (b->paused > 0)
            budget_arm_timer(b);
        return;
    }
    if (!b->over) {
        b->over = true;
        b->times_over++;
        loop_warn(&srv->loop, LOOP_WARN_MEMORY,
                  "memory budget: used %" PRIu64 " of max_memory %" PRIu64 " (output %" PRIu64
                  ", input %" PRIu64 ", retained %" PRIu64 ", subscriptions %" PRIu64 ")",
                  u.total, b->limit, u.output, u.input, u.retained, u.subscriptions);
    }
    int64_t now = clock_now_ms();
    if (now - b->last_enforce_ms >= BUDGET_ENFORCE_MS) {
        b->last_enforce_ms = now;
        budget_enforce(srv, &u);
    }
    budget_arm_timer(b);
}

static void budget_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    budget_check(arg);
}

/* ------------------------------------------------------------ life ---- */

void budget_apply_config(struct server *srv)
{
    struct budget *b = &srv->budget;
    uint64_t want = srv->conf->max_memory;

    b->is_auto = want == 0;
    b->limit = b->is_auto ? budget_auto_limit() : want;
}

int budget_init(struct server *srv)
{
    struct budget *b = &srv->budget;

    memset(b, 0, sizeof(*b));
    budget_apply_config(srv);
    b->timer = evtimer_new(srv->loop.base, budget_timer_cb, srv);
    if (b->timer == NULL) {
        log_error(&srv->log, "cannot create the memory budget's timer");
        return -1;
    }
    return 0;
}

void budget_fini(struct server *srv)
{
    if (srv->budget.timer != NULL)
        event_free(srv->budget.timer);
    srv->budget.timer = NULL;
}

bool budget_refusing(const struct server *srv)
{
    return srv->budget.refusing;
}

void budget_refused_frame(struct server *srv)
{
    srv->budget.refused_frames++;
}

void budget_refused_sub(struct server *srv)
{
    srv->budget.refused_subs++;
}
