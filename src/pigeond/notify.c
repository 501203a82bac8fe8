/*
 * notify.c - sd_notify, STATUS= and the watchdog (see notify.h).
 *
 * Two persistent timers on the broker's loop: the watchdog's, at half of
 * WATCHDOG_USEC as sd_watchdog_enabled(3) advises, and the status timer.
 * Neither exists when systemd is not listening.  sd_notify failures are
 * not errors: the manager may be gone during shutdown, and nothing the
 * daemon does depends on being heard.
 */
#include "notify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#ifdef PIGEON_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "server.h"
#include "stats.h"
#include "xalloc.h"

struct notify {
    struct server *srv;     /* borrowed */
    bool enabled;           /* NOTIFY_SOCKET set and libsystemd built in */
    uint64_t watchdog_usec; /* WatchdogSec=, or 0 */
    struct event *watchdog_ev;
    struct event *status_ev;
};

static void notify_watchdog_cb(evutil_socket_t fd, short what, void *arg);
static void notify_status_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------- sending ---- */

#ifdef PIGEON_HAVE_SYSTEMD
static void notify_send(const struct notify *n, const char *state)
{
    if (n != NULL && n->enabled)
        sd_notify(0, state);
}

/* Reads what systemd set up; true when it listens. */
static bool notify_detect(struct notify *n)
{
    uint64_t usec = 0;

    if (getenv("NOTIFY_SOCKET") == NULL)
        return false;
    if (sd_watchdog_enabled(1, &usec) > 0)
        n->watchdog_usec = usec;
    return true;
}
#else
static void notify_send(const struct notify *n, const char *state)
{
    (void)n;
    (void)state;
}

static bool notify_detect(struct notify *n)
{
    if (getenv("NOTIFY_SOCKET") != NULL)
        log_warning(&n->srv->log, "NOTIFY_SOCKET is set, but this pigeond was built without "
                                  "libsystemd: no readiness or watchdog notifications (use "
                                  "Type=exec in the unit)");
    return false;
}
#endif

/* --------------------------------------------------------------- timers ---- */

static struct event *notify_timer(struct notify *n, uint64_t usec, event_callback_fn cb)
{
    struct timeval tv = {.tv_sec = (time_t)(usec / 1000000),
                         .tv_usec = (suseconds_t)(usec % 1000000)};
    struct event *ev = event_new(n->srv->loop.base, -1, EV_PERSIST, cb, n);

    if (ev != NULL && event_add(ev, &tv) < 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

static void notify_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    notify_send(arg, "WATCHDOG=1");
}

static void notify_status_cb(evutil_socket_t fd, short what, void *arg)
{
    notify_status(arg);
}

/* ------------------------------------------------------------ public API ---- */

struct notify *notify_new(struct server *srv)
{
    struct notify *n = xcalloc(1, sizeof(*n));

    n->srv = srv;
    n->enabled = notify_detect(n);
    if (!n->enabled)
        return n;
    if (n->watchdog_usec > 0) {
        uint64_t half = n->watchdog_usec / 2 > 0 ? n->watchdog_usec / 2 : 1;
        n->watchdog_ev = notify_timer(n, half, notify_watchdog_cb);
        if (n->watchdog_ev == NULL) {
            log_error(&srv->log, "cannot start the watchdog timer");
            notify_free(n);
            return NULL;
        }
        log_info(&srv->log, "systemd watchdog: %llu ms, pinging every %llu ms",
                 (unsigned long long)(n->watchdog_usec / 1000), (unsigned long long)(half / 1000));
    }
    n->status_ev = notify_timer(n, (uint64_t)NOTIFY_STATUS_MS * 1000, notify_status_cb);
    if (n->status_ev == NULL) {
        log_error(&srv->log, "cannot start the status timer");
        notify_free(n);
        return NULL;
    }
    return n;
}

void notify_free(struct notify *n)
{
    if (n == NULL)
        return;
    if (n->watchdog_ev != NULL)
        event_free(n->watchdog_ev);
    if (n->status_ev != NULL)
        event_free(n->status_ev);
    free(n);
}

bool notify_enabled(const struct notify *n)
{
    return n != NULL && n->enabled;
}

/* Sends HEAD (may be "") and a STATUS= line with the current figures, in one message. */
static void notify_send_status(struct notify *n, const char *head)
{
    struct stats_snapshot snap;
    char line[256], msg[352];

    if (!notify_enabled(n))
        return;
    stats_gather(n->srv, &snap);
    stats_format_status(&snap, line, sizeof(line));
    stats_release(&snap);
    /* Once shutdown began the status timer must not hide that it did. */
    snprintf(msg, sizeof(msg), "%sSTATUS=%s%s", head,
             n->srv->draining ? "draining connections: " : "", line);
    notify_send(n, msg);
}

void notify_status(struct notify *n)
{
    notify_send_status(n, "");
}

void notify_ready(struct notify *n)
{
    notify_send_status(n, "READY=1\n");
}

void notify_reloading(struct notify *n)
{
    struct timespec ts;
    char msg[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg),
             "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify_send(n, msg);
}

void notify_stopping(struct notify *n)
{
    notify_send(n, "STOPPING=1\nSTATUS=draining connections");
}
