/*
 * transport_socket.c - plain TCP and Unix socket transports (see transport.h).
 *
 * Reading is one read(2) into the caller's buffer (the loop's read block:
 * frames are dispatched where they lie).  Writing is evbuffer_write_atmost,
 * one writev(2) over up to 128 of the output's chains, so bytes shared by
 * reference from a block go out with no copy.  Both kinds differ only in
 * their name and in TCP_NODELAY: batching is the broker's job (one write per
 * connection per loop iteration), and Nagle plus delayed ACKs would stall
 * request/reply traffic.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "xalloc.h"

static ssize_t socket_read(struct transport *t, void *buf, size_t len, short *want)
{
    ssize_t n = read(t->fd, buf, len);

    if (n > 0)
        return n;
    if (n == 0)
        return TRANSPORT_CLOSED;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *want = EV_READ;
        return TRANSPORT_AGAIN;
    }
    return TRANSPORT_FAILED;
}

static ssize_t socket_write(struct transport *t, struct evbuffer *out, size_t max, short *want)
{
    int n = evbuffer_write_atmost(out, t->fd, (ev_ssize_t)max);

    if (n >= 0) {
        *want = EV_WRITE;
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *want = EV_WRITE;
        return 0;
    }
    return TRANSPORT_FAILED;
}

static size_t socket_pending(const struct transport *t)
{
    return 0;
}

static bool socket_ready(const struct transport *t)
{
    return true;
}

static void socket_shutdown(struct transport *t)
{
}

static void socket_free(struct transport *t)
{
    evutil_closesocket(t->fd);
    free(t);
}

static void socket_describe(const struct transport *t, char *buf, size_t len)
{
    if (len > 0)
        buf[0] = '\0';
}

static const struct transport_ops tcp_ops = {
    .name = "tcp",
    .read = socket_read,
    .write = socket_write,
    .pending = socket_pending,
    .ready = socket_ready,
    .shutdown = socket_shutdown,
    .free = socket_free,
    .describe = socket_describe,
};

static const struct transport_ops unix_ops = {
    .name = "unix",
    .read = socket_read,
    .write = socket_write,
    .pending = socket_pending,
    .ready = socket_ready,
    .shutdown = socket_shutdown,
    .free = socket_free,
    .describe = socket_describe,
};

void transport_format_peer(char *buf, size_t len, const struct sockaddr *peer,
                           const char *local_name)
{
    char host[INET6_ADDRSTRLEN];

    if (peer != NULL && peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (peer != NULL && peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "%s", local_name != NULL ? local_name : "unknown");
    }
}

struct transport *transport_socket_new(evutil_socket_t fd, const struct sockaddr *peer,
                                       socklen_t peerlen, const char *local_name)
{
    struct transport *t = xcalloc(1, sizeof(*t));
    bool inet = peer != NULL && (peer->sa_family == AF_INET || peer->sa_family == AF_INET6);

    t->ops = inet ? &tcp_ops : &unix_ops;
    t->fd = fd;
    if (inet) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    }
    transport_format_peer(t->peer, sizeof(t->peer), peer, local_name);
    if (inet && peerlen <= sizeof(t->peer_addr)) {
        memcpy(&t->peer_addr, peer, peerlen);
        t->peer_len = peerlen;
    }
    return t;
}
