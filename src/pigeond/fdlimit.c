/*
 * fdlimit.c - a loop's ceiling on descriptors (see fdlimit.h).
 */
#include "fdlimit.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

void fdlimit_init(struct fdlimit *f, const char *method)
{
    memset(f, 0, sizeof(*f));
    f->limit = strncmp(method, "select", 6) == 0 ? FD_SETSIZE : INT_MAX;
}

bool fdlimit_ok(const struct fdlimit *f, evutil_socket_t fd)
{
    return fd < f->limit;
}

bool fdlimit_room(const struct fdlimit *f)
{
    if (f->limit == INT_MAX)
        return true;
    /* open() returns the lowest free descriptor: the one accept() would. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false; /* out of descriptors: no room either way */
    close(fd);
    return fd < f->limit;
}

int fdlimit_watch(struct fdlimit *f, void (*fn)(void *arg), void *arg)
{
    for (int i = 0; i < FDLIMIT_WATCHERS; i++) {
        if (f->watchers[i].fn == NULL) {
            f->watchers[i].fn = fn;
            f->watchers[i].arg = arg;
            return 0;
        }
    }
    return -1;
}

void fdlimit_unwatch(struct fdlimit *f, void (*fn)(void *arg), void *arg)
{
    for (int i = 0; i < FDLIMIT_WATCHERS; i++)
        if (f->watchers[i].fn == fn && f->watchers[i].arg == arg)
            f->watchers[i].fn = NULL;
}

void fdlimit_changed(struct fdlimit *f)
{
    if (f->limit == INT_MAX)
        return;
    for (int i = 0; i < FDLIMIT_WATCHERS; i++)
        if (f->watchers[i].fn != NULL)
            f->watchers[i].fn(f->watchers[i].arg);
}

int fdlimit_ceiling(const struct fdlimit *f)
{
    return f->limit == INT_MAX ? 0 : (int)f->limit;
}
