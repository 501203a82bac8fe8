/*
 * loop.c - an event loop, its connections, and its deferred jobs (see loop.h).
 *
 * The I/O backend is chosen behind this one seam: libevent is told to avoid
 * every method but the one configured, and the method it ends up with is
 * checked.  With epoll the changelist is on, so a connection whose write
 * interest is added and dropped within one iteration costs no epoll_ctl.
 */
#include "loop.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "block.h"
#include "conn.h"

static void loop_flush_cb(evutil_socket_t fd, short what, void *arg);
static void loop_reap_cb(evutil_socket_t fd, short what, void *arg);

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

int loop_init(struct loop *lp, struct server *srv, enum config_io_backend backend, const char **why)
{
    memset(lp, 0, sizeof(*lp));
    lp->srv = srv;
    TAILQ_INIT(&lp->conns);
    TAILQ_INIT(&lp->pending);
    TAILQ_INIT(&lp->dead);
    lp->base = loop_new_base(backend, why);
    if (lp->base == NULL)
        return -1;
    /* select is the one method with a ceiling on descriptors. */
    lp->fd_limit =
        strncmp(event_base_get_method(lp->base), "select", 6) == 0 ? FD_SETSIZE : INT_MAX;
    lp->flush_ev = event_new(lp->base, -1, 0, loop_flush_cb, lp);
    lp->reap_ev = event_new(lp->base, -1, 0, loop_reap_cb, lp);
    if (lp->flush_ev == NULL || lp->reap_ev == NULL) {
        *why = "cannot create the loop's events";
        loop_fini(lp);
        return -1;
    }
    return 0;
}

void loop_fini(struct loop *lp)
{
    if (lp->reap_ev != NULL)
        event_free(lp->reap_ev);
    if (lp->flush_ev != NULL)
        event_free(lp->flush_ev);
    if (lp->base != NULL)
        event_base_free(lp->base);
    block_unref(lp->rblk);
    lp->rblk = NULL;
    while (lp->n_rpool > 0)
        block_unref(lp->rpool[--lp->n_rpool]);
    lp->reap_ev = lp->flush_ev = NULL;
    lp->base = NULL;
}

const char *loop_method(const struct loop *lp)
{
    return event_base_get_method(lp->base);
}

bool loop_fd_room(const struct loop *lp)
{
    if (lp->fd_limit == INT_MAX)
        return true;
    /* open() returns the lowest free descriptor: the one accept() would. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false; /* out of descriptors: no room either way */
    close(fd);
    return fd < lp->fd_limit;
}

/* A pooled read block no output refers to any more, taken out of the pool, or NULL. */
static struct block *loop_pool_take(struct loop *lp)
{
    for (unsigned i = 0; i < lp->n_rpool; i++) {
        struct block *b = lp->rpool[i];
        if (b->refs == 1) {
            lp->rpool[i] = lp->rpool[--lp->n_rpool];
            return b;
        }
    }
    return NULL;
}

struct block *loop_read_block(struct loop *lp)
{
    if (lp->rblk != NULL && lp->rblk->refs > 1) {
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

void loop_schedule_flush(struct loop *lp)
{
    event_active(lp->flush_ev, 0, 0);
}

void loop_schedule_reap(struct loop *lp)
{
    event_active(lp->reap_ev, 0, 0);
}

static void loop_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn *c;

    while ((c = TAILQ_FIRST(&lp->pending)) != NULL)
        conn_flush(c); /* takes C off the pending list */
}

static void loop_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn *c;

    while ((c = TAILQ_FIRST(&lp->dead)) != NULL)
        conn_reap(c); /* takes C off the dead list */
}
