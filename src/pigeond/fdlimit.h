/*
 * fdlimit.h - the one place that knows a loop's ceiling on descriptors.
 *
 * libevent's select backend cannot watch a descriptor at or above
 * FD_SETSIZE (glibc aborts in FD_SET); every other backend has no ceiling.
 * Whatever takes or watches a descriptor asks here: the accept path refuses
 * a socket it could not watch (fdlimit_ok), and a listener that cannot see
 * its sockets before libevent watches them (evhttp) pauses while the next
 * descriptor would be out of reach (fdlimit_room) and registers a watcher
 * that is told whenever descriptors were taken or freed (fdlimit_changed),
 * so no module calls another just to pass that news along.
 */
#ifndef PIGEON_FDLIMIT_H
#define PIGEON_FDLIMIT_H

#include <stdbool.h>

#include <event2/util.h>

#define FDLIMIT_WATCHERS 4

struct fdlimit {
    evutil_socket_t limit; /* descriptors at or above it cannot be watched */
    struct {
        void (*fn)(void *arg);
        void *arg;
    } watchers[FDLIMIT_WATCHERS];
};

/* Sets F up for the I/O method METHOD ("select" has FD_SETSIZE, the others none). */
void fdlimit_init(struct fdlimit *f, const char *method);

/* True when descriptor FD can be watched. */
bool fdlimit_ok(const struct fdlimit *f, evutil_socket_t fd);

/*
 * True when the next descriptor opened (the lowest free one) could be
 * watched: always, except near select's FD_SETSIZE, where it costs an open
 * and a close.
 */
bool fdlimit_room(const struct fdlimit *f);

/* Calls FN(ARG) at each fdlimit_changed, until fdlimit_unwatch.  0, or -1 when full. */
int fdlimit_watch(struct fdlimit *f, void (*fn)(void *arg), void *arg);
void fdlimit_unwatch(struct fdlimit *f, void (*fn)(void *arg), void *arg);

/* Descriptors were taken or freed: tells the watchers (nothing under an unbounded method). */
void fdlimit_changed(struct fdlimit *f);

/* The ceiling, for messages: FD_SETSIZE, or 0 when there is none. */
int fdlimit_ceiling(const struct fdlimit *f);

#endif
