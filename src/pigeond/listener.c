/*
 * listener.c - listening sockets (see listener.h).
 *
 * Sockets are made by hand rather than with evconnlistener_new_bind so that
 * IPv6 listeners are v6-only (a "[::]:7400" and a "0.0.0.0:7400" listener
 * can coexist), the backlog is the kernel's maximum, and a Unix socket is
 * created with its final permissions (umask around bind) after a stale file
 * from a dead server has been told apart from a live one.
 *
 * A socket systemd passed (activation.h) is adopted rather than bound: see
 * adopt_socket().
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "activation.h"
#include "clock.h"
#include "conn.h"
#include "server.h"
#include "tls.h"
#include "xalloc.h"

#define LISTENER_BACKLOG  4096 /* capped by net.core.somaxconn */
#define LISTENER_RETRY_MS 200  /* pause after running out of descriptors */

static void listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg);
static void listener_error_cb(struct evconnlistener *evl, void *arg);
static void listener_retry_cb(evutil_socket_t fd, short what, void *arg);

/* The group a unix socket file should have: a name, or a number. 0 and *GID, or -1. */
static int group_lookup(const char *group, gid_t *gid)
{
    char *end;
    unsigned long v = strtoul(group, &end, 10);
    struct group grp, *found;
    char buf[4096];

    if (*group != '\0' && *end == '\0') {
        *gid = (gid_t)v;
        return 0;
    }
    if (getgrnam_r(group, &grp, buf, sizeof(buf), &found) != 0 || found == NULL)
        return -1;
    *gid = found->gr_gid;
    return 0;
}

/*
 * Loads CL's TLS files into a new context for L (replacing the one it has,
 * which connections already open keep), or drops TLS when CL has none.
 * 0, or -1 with ERR (L unchanged).
 */
static int listener_load_tls(struct listener *l, const struct config_listener *cl, char *err,
                             size_t errlen)
{
    struct tls_ctx *ctx = NULL;

    if (cl->tls_cert != NULL) {
        struct tls_files files = {cl->tls_cert, cl->tls_key, cl->tls_ca};
        if (tls_ctx_new(&files, &ctx, err, errlen) < 0)
            return -1;
    }
    tls_ctx_free(l->tls);
    l->tls = ctx;
    return 0;
}

/* ------------------------------------------------------------------ TCP */

static evutil_socket_t bind_tcp(const struct config_listener *cl, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    int one = 1;

    snprintf(port, sizeof(port), "%u", cl->port);
    int rc = getaddrinfo(cl->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", cl->host, gai_strerror(rc));
        return -1;
    }
    evutil_socket_t fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTENER_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", cl->bind, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void format_tcp_address(struct listener *l, evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(l->address, sizeof(l->address), "%s", l->conf.bind);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(l->address, sizeof(l->address), "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(l->address, sizeof(l->address), "%s:%u", host, ntohs(in->sin_port));
    }
}

/* ----------------------------------------------------------------- Unix */

/*
 * Removes PATH when it is a socket no server answers on.  Returns 0 when
 * the path is free to bind, -1 (ERR filled) when it must be left alone.
 */
static int clear_stale_socket(const char *path, char *err, size_t errlen)
{
    struct stat st;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    if (lstat(path, &st) < 0)
        return 0; /* nothing there */
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; not removing it", path);
        return -1;
    }
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    int saved = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "%s is in use by a running server", path);
        return -1;
    }
    if (saved != ECONNREFUSED) {
        snprintf(err, errlen, "cannot tell whether %s is in use: %s", path, strerror(saved));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static evutil_socket_t bind_unix(struct listener *l, char *err, size_t errlen)
{
    const struct config_listener *cl = &l->conf;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;

    if (clear_stale_socket(cl->path, err, errlen) < 0)
        return -1;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cl->path);
    evutil_socket_t fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The file gets its final mode at creation: no window with wider access. */
    mode_t old = umask(~cl->mode & 0777);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    int saved = errno;
    umask(old);
    if (rc < 0 || listen(fd, LISTENER_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", cl->bind, strerror(rc < 0 ? saved : errno));
        close(fd);
        return -1;
    }
    gid_t gid;
    if (cl->group != NULL &&
        (group_lookup(cl->group, &gid) < 0 || chown(cl->path, (uid_t)-1, gid) < 0)) {
        snprintf(err, errlen, "cannot give %s the group %s: %s", cl->path, cl->group,
                 errno ? strerror(errno) : "no such group");
        close(fd);
        unlink(cl->path);
        return -1;
    }
    if (stat(cl->path, &st) == 0) {
        l->sock_dev = st.st_dev;
        l->sock_ino = st.st_ino;
    }
    snprintf(l->address, sizeof(l->address), "unix:%s", cl->path);
    return fd;
}

/* ------------------------------------------------------------ adopted */

/*
 * Takes FD, a duplicate of a listening socket systemd passed, as L's socket:
 * non-blocking, its address read back for logs and the ports file.  No
 * socket file is recorded, so closing L never removes systemd's.  Returns
 * FD, or -1 (FD closed, ERR filled).
 */
static evutil_socket_t adopt_socket(struct listener *l, evutil_socket_t fd, char *err,
                                    size_t errlen)
{
    struct sockaddr_un sun;
    socklen_t len = sizeof(sun);

    if (evutil_make_socket_nonblocking(fd) < 0) {
        snprintf(err, errlen, "socket from systemd: cannot make it non-blocking: %s",
                 strerror(errno));
        close(fd);
        return -1;
    }
    l->activated = true;
    if (l->conf.kind == CONFIG_LISTEN_TCP) {
        format_tcp_address(l, fd);
    } else if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 && sun.sun_family == AF_UNIX &&
               len > offsetof(struct sockaddr_un, sun_path)) {
        snprintf(l->address, sizeof(l->address), "unix:%.*s",
                 (int)(len - offsetof(struct sockaddr_un, sun_path)), sun.sun_path);
    } else {
        snprintf(l->address, sizeof(l->address), "%s", l->conf.bind);
    }
    return fd;
}

/* ------------------------------------------------------------ lifecycle */

int listener_open(struct server *srv, const struct config_listener *cl, struct listener **out,
                  char *err, size_t errlen)
{
    struct listener *l = xcalloc(1, sizeof(*l));
    evutil_socket_t fd;

    l->srv = srv;
    l->refs = 1;
    config_listener_copy(&l->conf, cl);
    if (listener_load_tls(l, cl, err, errlen) < 0) {
        listener_unref(l);
        return -1;
    }
    fd = activation_take(srv->activation, srv->conf, cl, err, errlen);
    if (fd == ACTIVATION_FAILED) {
        listener_unref(l);
        return -1;
    }
    if (fd >= 0) {
        fd = adopt_socket(l, fd, err, errlen);
    } else if (cl->kind == CONFIG_LISTEN_UNIX) {
        fd = bind_unix(l, err, errlen);
    } else {
        fd = bind_tcp(cl, err, errlen);
        if (fd >= 0)
            format_tcp_address(l, fd);
    }
    if (fd >= 0 && !fdlimit_ok(&srv->loop.fds, fd)) {
        snprintf(err, errlen, "descriptor %d is beyond FD_SETSIZE (io_backend select)", (int)fd);
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        listener_unref(l);
        return -1;
    }
    l->evl = evconnlistener_new(srv->loop.base, listener_accept_cb, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    l->retry_ev = evtimer_new(srv->loop.base, listener_retry_cb, l);
    if (l->evl == NULL || l->retry_ev == NULL) {
        snprintf(err, errlen, "cannot create a libevent listener");
        if (l->evl == NULL)
            close(fd);
        listener_close(l);
        return -1;
    }
    evconnlistener_set_error_cb(l->evl, listener_error_cb);
    *out = l;
    return 0;
}

/* Removes our Unix socket file, and only ours (not a successor's). */
static void listener_remove_socket_file(struct listener *l)
{
    struct stat st;

    if (l->conf.kind != CONFIG_LISTEN_UNIX || l->sock_ino == 0)
        return;
    if (stat(l->conf.path, &st) == 0 && st.st_dev == l->sock_dev && st.st_ino == l->sock_ino)
        unlink(l->conf.path);
    l->sock_ino = 0;
}

void listener_close(struct listener *l)
{
    if (l->evl != NULL) {
        evconnlistener_free(l->evl);
        l->evl = NULL;
    }
    if (l->retry_ev != NULL) {
        event_free(l->retry_ev);
        l->retry_ev = NULL;
    }
    listener_remove_socket_file(l);
    listener_unref(l);
}

int listener_apply(struct listener *l, const struct config_listener *cl, char *err, size_t errlen)
{
    if (listener_load_tls(l, cl, err, errlen) < 0)
        return -1;
    config_listener_release(&l->conf);
    config_listener_copy(&l->conf, cl);
    return 0;
}

void listener_conn_gone(struct listener *l, const struct conn_stats *s)
{
    l->active--;
    l->closed_msgs_in += s->msgs_in;
    l->closed_bytes_in += s->bytes_in;
    l->closed_msgs_out += s->msgs_out;
    l->closed_bytes_out += s->bytes_out;
}

struct listener *listener_ref(struct listener *l)
{
    l->refs++;
    return l;
}

void listener_unref(struct listener *l)
{
    if (l == NULL || --l->refs > 0)
        return;
    config_listener_release(&l->conf);
    tls_ctx_free(l->tls);
    free(l);
}

const char *listener_name(const struct listener *l)
{
    return l->conf.name;
}

const char *listener_address(const struct listener *l)
{
    return l->address;
}

/* ------------------------------------------------------------ callbacks */

static void listener_accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    struct listener *l = arg;

    l->accepted++;
    server_accept(l->srv, l, fd, sa, (socklen_t)salen);
}

/* accept() failed: out of descriptors or memory pauses accepting briefly. */
static void listener_error_cb(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {.tv_sec = 0, .tv_usec = LISTENER_RETRY_MS * 1000};

    loop_warn(&l->srv->loop, LOOP_WARN_ACCEPT, "listener %s: accept: %s; pausing %d ms",
              l->conf.name, evutil_socket_error_to_string(err), LISTENER_RETRY_MS);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(evl);
        evtimer_add(l->retry_ev, &tv);
    }
}

static void listener_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    if (l->evl != NULL)
        evconnlistener_enable(l->evl);
}
