/*
 * activation.h - listening sockets handed over by systemd (socket activation).
 *
 * When pigeond.socket starts pigeond, systemd passes the sockets it bound as
 * descriptors 3, 4, ... and says so in LISTEN_PID (our pid), LISTEN_FDS (how
 * many) and LISTEN_FDNAMES (each one's FileDescriptorName=, colon-separated).
 * The activation set reads them once at start-up and owns them for the life
 * of the process; a listener that uses one takes a duplicate (listener.c),
 * so closing that listener on a reload never closes systemd's socket, and a
 * later reload can take it again.
 *
 * Matching a descriptor to a [listener NAME] section:
 *
 *   1. by name: FileDescriptorName=NAME matches [listener NAME] (where
 *      several descriptors have that name, as the ListenStream= lines of
 *      one socket unit do, the one bound where the listener would bind,
 *      else the first);
 *   2. by address: a descriptor no listener took by name (systemd's default
 *      name is the socket unit's, "pigeond.socket"; "unknown" when
 *      LISTEN_FDNAMES is absent) matches the listener that would bind the
 *      address it is bound to: same IP and port (port 0 never matches), or
 *      the same Unix socket path.
 *
 * A listener no descriptor matches binds its own socket, as without
 * systemd.  A descriptor no listener matches is an error at start-up (the
 * socket unit and the config disagree; connections to it would wait
 * forever) and a warning on reload (it stays open for a later reload).
 *
 * Without libsystemd (meson -Dsystemd=disabled) pigeond cannot take
 * sockets: started with LISTEN_FDS for its pid, it says so and refuses to
 * start rather than fail later on an address systemd already holds.
 */
#ifndef PIGEON_ACTIVATION_H
#define PIGEON_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

/* activation_take's answers besides a descriptor. */
#define ACTIVATION_NONE   (-1) /* no descriptor for this listener: bind */
#define ACTIVATION_FAILED (-2) /* there is one, but it cannot be used (ERR says why) */

struct activation;

/*
 * Takes the descriptors systemd passed to this process and clears the
 * LISTEN_* variables.  Returns 0 with *OUT NULL when there were none, 0 with
 * *OUT set (owned by the caller), or -1 after logging why to LOG (a
 * descriptor that is not a listening stream socket, or no libsystemd).
 */
int activation_new(const struct logger *log, struct activation **out);

/* Closes every descriptor and frees A.  NULL is fine. */
void activation_free(struct activation *a);

/* Descriptors systemd passed; 0 for NULL. */
size_t activation_count(const struct activation *a);

/*
 * The descriptor for listener CL of config CONF (see the matching rules
 * above), duplicated, close-on-exec, owned by the caller; or ACTIVATION_NONE;
 * or ACTIVATION_FAILED with ERR (ERRLEN bytes) filled.  A may be NULL.
 */
int activation_take(const struct activation *a, const struct config *conf,
                    const struct config_listener *cl, char *err, size_t errlen);

/*
 * Logs at LEVEL each descriptor that no listener of CONF matches, and
 * returns how many there are.  A may be NULL.
 */
size_t activation_report_unmatched(const struct activation *a, const struct config *conf,
                                   const struct logger *log, enum log_level level);

#endif
