/*
 * activation.c - sockets systemd passed (see activation.h for the rules).
 *
 * Each descriptor is checked once, when it is taken: it must be a listening
 * stream socket.  Its bound address is read then too, so that matching a
 * listener by address later is a comparison, not a system call.  A TCP
 * listener's host is resolved when it is matched (a numeric address needs
 * no lookup; a host name is resolved as bind_tcp would, first answer
 * first).
 *
 * libsystemd does the parsing of LISTEN_* (sd_listen_fds_with_names); built
 * without it, this file only recognises that systemd tried to pass sockets.
 */
#include "activation.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef PIGEON_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "xalloc.h"

struct activation_fd {
    int fd;                       /* owned */
    char *name;                   /* FileDescriptorName=; owned */
    struct sockaddr_storage addr; /* what it is bound to */
    socklen_t addrlen;
    char address[128]; /* the same, for logs */
};

struct activation {
    struct activation_fd *fds; /* owned array */
    size_t n;
};

/* ------------------------------------------------------------ helpers ---- */

/* True when SA (from getaddrinfo or inet_pton) is the address and port of E. */
static bool sockaddr_same(const struct activation_fd *e, const struct sockaddr *sa)
{
    if (e->addr.ss_family != sa->sa_family)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&e->addr;
        const struct sockaddr_in *b = (const struct sockaddr_in *)sa;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&e->addr;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)sa;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    return false;
}

/* True when E is bound where CL would bind (rule 2 of activation.h). */
static bool address_matches(const struct activation_fd *e, const struct config_listener *cl)
{
    if (cl->kind == CONFIG_LISTEN_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&e->addr;
        size_t max = e->addrlen > offsetof(struct sockaddr_un, sun_path)
                         ? e->addrlen - offsetof(struct sockaddr_un, sun_path)
                         : 0;
        return e->addr.ss_family == AF_UNIX && strnlen(un->sun_path, max) == strlen(cl->path) &&
               memcmp(un->sun_path, cl->path, strlen(cl->path)) == 0;
    }
    if (cl->port == 0 || (e->addr.ss_family != AF_INET && e->addr.ss_family != AF_INET6))
        return false;

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    bool same = false;

    snprintf(port, sizeof(port), "%u", cl->port);
    if (getaddrinfo(cl->host, port, &hints, &res) != 0)
        return false;
    same = sockaddr_same(e, res->ai_addr); /* the address bind_tcp would take */
    freeaddrinfo(res);
    return same;
}

/*
 * The descriptor named after CL: of several (one socket unit with several
 * ListenStream= shares one FileDescriptorName=), the one bound where CL
 * would bind, else the first.  NULL when none has its name.
 */
static const struct activation_fd *find_by_name(const struct activation *a,
                                                const struct config_listener *cl)
{
    const struct activation_fd *first = NULL;

    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->fds[i].name, cl->name) != 0)
            continue;
        if (address_matches(&a->fds[i], cl))
            return &a->fds[i];
        if (first == NULL)
            first = &a->fds[i];
    }
    return first;
}

/* True when some listener of CONF takes E by name (rule 1). */
static bool claimed_by_name(const struct activation *a, const struct config *conf,
                            const struct activation_fd *e)
{
    for (size_t i = 0; i < conf->n_listeners; i++)
        if (find_by_name(a, &conf->listeners[i]) == e)
            return true;
    return false;
}

/* The entry for CL, or NULL: by name, else by address among those no name claims. */
static const struct activation_fd *activation_find(const struct activation *a,
                                                   const struct config *conf,
                                                   const struct config_listener *cl)
{
    const struct activation_fd *e = find_by_name(a, cl);

    for (size_t i = 0; e == NULL && i < a->n; i++)
        if (!claimed_by_name(a, conf, &a->fds[i]) && address_matches(&a->fds[i], cl))
            e = &a->fds[i];
    return e;
}

/* True when some listener of CONF matches E. */
static bool activation_fd_matched(const struct activation *a, const struct config *conf,
                                  const struct activation_fd *e)
{
    for (size_t i = 0; i < conf->n_listeners; i++)
        if (activation_find(a, conf, &conf->listeners[i]) == e)
            return true;
    return false;
}

/* ----------------------------------------------------------- the set ---- */

#ifdef PIGEON_HAVE_SYSTEMD

static void address_format(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss->ss_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
        snprintf(buf, size, "unix:%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                 un->sun_path);
    } else {
        snprintf(buf, size, "(family %d)", ss->ss_family);
    }
}

/* Records descriptor FD named NAME (taken) as entry I; -1 after logging. */
static int activation_add(const struct logger *log, struct activation *a, int fd, char *name)
{
    struct activation_fd *e = &a->fds[a->n++];

    e->fd = fd;
    e->name = name;
    e->addrlen = sizeof(e->addr);
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
        log_error(log,
                  "socket activation: fd %d ('%s') is not a listening stream socket: "
                  "use ListenStream= in pigeond.socket",
                  fd, name);
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&e->addr, &e->addrlen) < 0) {
        log_error(log, "socket activation: fd %d ('%s'): getsockname: %s", fd, name,
                  strerror(errno));
        return -1;
    }
    address_format(&e->addr, e->addrlen, e->address, sizeof(e->address));
    log_info(log, "socket activation: fd %d '%s' is %s", fd, name, e->address);
    return 0;
}

int activation_new(const struct logger *log, struct activation **out)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);

    *out = NULL;
    if (n < 0) {
        log_error(log, "socket activation: cannot read LISTEN_FDS: %s", strerror(-n));
        return -1;
    }
    if (n == 0) {
        free(names);
        return 0;
    }
    struct activation *a = xcalloc(1, sizeof(*a));
    int rc = 0;

    a->fds = xcalloc((size_t)n, sizeof(*a->fds));
    for (int i = 0; i < n; i++) {
        char *name = names != NULL && names[i] != NULL ? names[i] : xstrdup("unknown");
        if (rc == 0)
            rc = activation_add(log, a, SD_LISTEN_FDS_START + i, name);
        else /* after a failure: still take (and so close) the rest */
            a->fds[a->n++] = (struct activation_fd){.fd = SD_LISTEN_FDS_START + i, .name = name};
    }
    free(names); /* the strings are the entries' now */
    if (rc < 0) {
        activation_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

#else /* !PIGEON_HAVE_SYSTEMD */

int activation_new(const struct logger *log, struct activation **out)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

    *out = NULL;
    if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    log_error(log,
              "systemd passed sockets (LISTEN_FDS=%s), but this pigeond was built without "
              "libsystemd and cannot use them: disable pigeond.socket, or rebuild with "
              "-Dsystemd=enabled",
              fds);
    return -1;
}

#endif

void activation_free(struct activation *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        close(a->fds[i].fd);
        free(a->fds[i].name);
    }
    free(a->fds);
    free(a);
}

size_t activation_count(const struct activation *a)
{
    return a != NULL ? a->n : 0;
}

int activation_take(const struct activation *a, const struct config *conf,
                    const struct config_listener *cl, char *err, size_t errlen)
{
    const struct activation_fd *e;
    int fd;

    if (a == NULL || (e = activation_find(a, conf, cl)) == NULL)
        return ACTIVATION_NONE;
    if ((cl->kind == CONFIG_LISTEN_UNIX) != (e->addr.ss_family == AF_UNIX)) {
        snprintf(err, errlen, "the socket systemd passed as '%s' is %s, not a %s socket", e->name,
                 e->address, cl->kind == CONFIG_LISTEN_UNIX ? "unix" : "TCP");
        return ACTIVATION_FAILED;
    }
    fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        snprintf(err, errlen, "cannot duplicate the socket systemd passed (fd %d): %s", e->fd,
                 strerror(errno));
        return ACTIVATION_FAILED;
    }
    return fd;
}

size_t activation_report_unmatched(const struct activation *a, const struct config *conf,
                                   const struct logger *log, enum log_level level)
{
    size_t unmatched = 0;

    for (size_t i = 0; a != NULL && i < a->n; i++) {
        if (activation_fd_matched(a, conf, &a->fds[i]))
            continue;
        unmatched++;
        log_msg(log, level,
                "socket activation: fd %d '%s' (%s) matches no [listener NAME]: name the "
                "listener after FileDescriptorName=, or bind it to that address",
                a->fds[i].fd, a->fds[i].name, a->fds[i].address);
    }
    return unmatched;
}
