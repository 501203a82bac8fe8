/*
 * transport.h - how one connection's bytes cross its socket.
 *
 * A connection (conn.c) never calls read(), write() or an SSL function
 * itself: it asks its transport, through this small table of operations, as
 * nginx does with c->recv/c->send and Redis with its ConnectionType.  The
 * implementations:
 *
 *   tcp, unix   plain sockets (transport_socket.c): read(2) into the
 *               caller's buffer, writev(2) from the output evbuffer, whose
 *               chains may be references to shared blocks (zero copy);
 *   tls         TLS over TCP (tls.c), driving OpenSSL directly on the
 *               socket: the handshake runs inside the first reads and
 *               writes, and output is coalesced into full records.
 *
 * Readiness: every operation is non-blocking.  When one cannot go on it
 * says which readiness it waits for in *WANT (EV_READ or EV_WRITE): a TLS
 * read may need the socket writable (to send a handshake message), and a
 * TLS write readable.  The connection arms its events accordingly.
 *
 * Ownership: the transport owns the socket from transport_*_new on, and
 * closes it in its free operation.
 */
#ifndef PIGEON_TRANSPORT_H
#define PIGEON_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/util.h>

/* What a read or write returns besides a byte count. */
#define TRANSPORT_AGAIN  (-1) /* nothing now: wait for *WANT */
#define TRANSPORT_CLOSED (-2) /* the peer closed cleanly (a read only) */
#define TRANSPORT_FAILED (-3) /* an error: the socket is unusable */

/* Room for a peer's description: "[v6 address]:port", "unix:/path". */
#define TRANSPORT_PEER_MAX 112

struct transport;

struct transport_ops {
    const char *name; /* "tcp", "unix", "tls" */

    /*
     * Reads at most LEN (> 0) bytes into BUF.  Returns how many (> 0), or
     * TRANSPORT_AGAIN with *WANT set, TRANSPORT_CLOSED or TRANSPORT_FAILED.
     */
    ssize_t (*read)(struct transport *t, void *buf, size_t len, short *want);

    /*
     * Writes at most MAX bytes from the front of OUT and drains what was
     * written.  Returns the bytes written (>= 0; when fewer than OUT held,
     * *WANT says what to wait for), or TRANSPORT_FAILED.
     */
    ssize_t (*write)(struct transport *t, struct evbuffer *out, size_t max, short *want);

    /* Bytes already read from the socket and buffered (TLS records), to read without waiting. */
    size_t (*pending)(const struct transport *t);

    /* True once the transport can carry frames (the TLS handshake is done). */
    bool (*ready)(const struct transport *t);

    /* Says goodbye where the protocol has a way (TLS close_notify); best effort. */
    void (*shutdown)(struct transport *t);

    /* Closes the socket and frees T. */
    void (*free)(struct transport *t);

    /* Writes what is worth logging about the session ("TLSv1.3 ..."), or "" (plain). */
    void (*describe)(const struct transport *t, char *buf, size_t len);
};

struct transport {
    const struct transport_ops *ops;
    evutil_socket_t fd;
    char peer[TRANSPORT_PEER_MAX];     /* "ip:port", "[v6]:port" or "unix:path" */
    struct sockaddr_storage peer_addr; /* the peer's address (AF_UNIX: none given) */
    socklen_t peer_len;
};

/*
 * A plain transport over the connected socket FD (non-blocking; owned from
 * here on), from PEER (NULL or an AF_UNIX address: described by
 * LOCAL_NAME, the listener's address).  TCP sockets get TCP_NODELAY.
 */
struct transport *transport_socket_new(evutil_socket_t fd, const struct sockaddr *peer,
                                       socklen_t peerlen, const char *local_name);

/* Formats PEER ("ip:port", "[v6]:port") into BUF, or LOCAL_NAME for other families. */
void transport_format_peer(char *buf, size_t len, const struct sockaddr *peer,
                           const char *local_name);

static inline ssize_t transport_read(struct transport *t, void *buf, size_t len, short *want)
{
    return t->ops->read(t, buf, len, want);
}

static inline ssize_t transport_write(struct transport *t, struct evbuffer *out, size_t max,
                                      short *want)
{
    return t->ops->write(t, out, max, want);
}

static inline void transport_free(struct transport *t)
{
    if (t != NULL)
        t->ops->free(t);
}

#endif
