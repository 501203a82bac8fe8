/*
 * notify.h - telling systemd how the daemon is doing (sd_notify).
 *
 * Under a Type=notify unit systemd waits for READY=1 before it counts
 * pigeond as started (and before units ordered after it start), shows
 * STATUS= in `systemctl status`, and restarts the service when the
 * watchdog is on and WATCHDOG=1 stops arriving.  pigeond sends:
 *
 *   READY=1          once every listener is bound (server_init), and again
 *                    after each reload
 *   RELOADING=1      when a SIGHUP reload begins (with MONOTONIC_USEC, which
 *                    systemd 253's Type=notify-reload wants)
 *   STOPPING=1       when shutdown begins
 *   STATUS=...       with READY, then every NOTIFY_STATUS_MS (stats.h's
 *                    one-line summary: connections, subscriptions, messages)
 *   WATCHDOG=1       every half WatchdogSec= (WATCHDOG_USEC), from a
 *                    libevent timer on the broker's own loop: a loop stuck
 *                    in a callback stops the pings, which is the point
 *
 * All of it is a no-op when NOTIFY_SOCKET is unset (not started by systemd)
 * or when pigeond was built without libsystemd (-Dsystemd=disabled), in
 * which case a unit should use Type=exec.
 */
#ifndef PIGEON_NOTIFY_H
#define PIGEON_NOTIFY_H

#include <stdbool.h>

struct server;
struct notify;

/* How often STATUS= is refreshed while running. */
#define NOTIFY_STATUS_MS 5000

/*
 * Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID and starts the
 * watchdog and status timers on SRV's loop (SRV is borrowed and outlives
 * the result).  Returns the notifier (owned by the caller; inert when
 * systemd is not listening), or NULL after logging why (libevent could not
 * make a timer).
 */
struct notify *notify_new(struct server *srv);

/* Stops the timers and frees N.  NULL is fine. */
void notify_free(struct notify *n);

/* True when messages go somewhere (NOTIFY_SOCKET set, libsystemd built in). */
bool notify_enabled(const struct notify *n);

void notify_ready(struct notify *n);     /* READY=1 and STATUS= */
void notify_reloading(struct notify *n); /* RELOADING=1 */
void notify_stopping(struct notify *n);  /* STOPPING=1 */
void notify_status(struct notify *n);    /* STATUS= now */

#endif
