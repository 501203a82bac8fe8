/*
 * transport.c - the connection to the broker (see transport.h).
 *
 * The socket is driven by plain events rather than a bufferevent: reads go
 * into our own contiguous buffer, where frames are scanned and handed up
 * with no copy (a bufferevent reads 4 KiB at a time into a chain that
 * would have to be pulled up), and writes use send(MSG_NOSIGNAL), which a
 * bufferevent cannot (it would raise SIGPIPE in the user's process).
 *
 * Layers, top-down: set-up; connecting (TCP, then the TLS handshake); the
 * seam (transport_recv and transport_xmit: plaintext in and out, over the
 * socket or TLS); writing; reading.
 */
#include "transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "frame.h"
#include "pigeon.h"
#include "tls.h"

#define TRANSPORT_READ_CHUNK (256 * 1024) /* room for one read() */
#define TRANSPORT_WRITE_NOW  (64 * 1024)  /* output that is sent without waiting */

/* What transport_recv and transport_xmit return besides a byte count (apart
 * from tls.h's enum tls_status, which they turn into these). */
#define TRANSPORT_IO_AGAIN  (-100) /* the socket would block; the events are set */
#define TRANSPORT_IO_FAILED (-101) /* transport_fail was called: the transport is FAILING */

enum transport_state {
    TRANSPORT_IDLE,
    TRANSPORT_CONNECTING,
    TRANSPORT_HANDSHAKING, /* TLS: TCP is up, the handshake under way */
    TRANSPORT_UP,
    TRANSPORT_FAILING, /* socket closed; `down` runs from defer_ev */
};

struct transport {
    struct event_base *base; /* borrowed */
    struct transport_handlers h;
    void *arg;
    enum transport_state state;
    int fd;
    struct event *rd_ev;    /* EV_READ on fd; owned, per socket */
    struct event *wr_ev;    /* EV_WRITE on fd (connect, or a full socket); owned */
    struct event *flush_ev; /* end-of-turn send; owned */
    struct event *defer_ev; /* `up` or `down` from the loop; owned */
    bool writing;           /* wr_ev added for output */
    bool flush_pending;
    struct tls_ctx *tls_ctx; /* borrowed; NULL: plain sockets */
    struct tls_conn *tls;    /* owned, per socket; NULL before the TCP connection */
    bool read_wants_write;   /* TLS: a read waits for the socket to be writable */
    bool write_wants_read;   /* TLS: a write waits for it to be readable */
    struct buf in;
    struct buf out;
    struct frame_scanner scan;
    uint32_t max_in;
    int64_t last_rx, last_tx;
    /* connecting */
    struct addr_target targets[ADDR_MAX_TARGETS];
    int n_targets, next_target;
    char peer[128];
    char host[ADDR_HOST_MAX + 1]; /* what the broker's certificate must name */
    /* a deferred `down` */
    int down_err;
    char down_why[192];
};

static void transport_read_cb(evutil_socket_t fd, short what, void *arg);
static void transport_write_cb(evutil_socket_t fd, short what, void *arg);
static void transport_flush_cb(evutil_socket_t fd, short what, void *arg);
static void transport_defer_cb(evutil_socket_t fd, short what, void *arg);
static void transport_read_ready(struct transport *c);

/* ---------------------------------------------------------------- set-up */

int transport_new(struct event_base *base, const struct transport_handlers *h, void *arg,
                  uint32_t max_in, struct tls_ctx *tls, struct transport **out)
{
    struct transport *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PIGEON_ENOMEM;
    c->base = base;
    c->h = *h;
    c->arg = arg;
    c->fd = -1;
    c->max_in = max_in;
    c->tls_ctx = tls;
    buf_init(&c->in);
    buf_init(&c->out);
    c->flush_ev = event_new(base, -1, 0, transport_flush_cb, c);
    c->defer_ev = event_new(base, -1, 0, transport_defer_cb, c);
    if (c->flush_ev == NULL || c->defer_ev == NULL) {
        transport_free(c);
        return PIGEON_ENOMEM;
    }
    *out = c;
    return 0;
}

/* Closes the socket and its events; buffers are emptied, memory kept. */
static void transport_close_socket(struct transport *c)
{
    tls_conn_free(c->tls); /* close_notify first, when TLS is up */
    c->tls = NULL;
    c->read_wants_write = c->write_wants_read = false;
    if (c->rd_ev != NULL) {
        event_free(c->rd_ev);
        c->rd_ev = NULL;
    }
    if (c->wr_ev != NULL) {
        event_free(c->wr_ev);
        c->wr_ev = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    event_del(c->flush_ev);
    c->flush_pending = false;
    c->writing = false;
    buf_clear(&c->in);
    buf_clear(&c->out);
}

void transport_free(struct transport *c)
{
    if (c == NULL)
        return;
    transport_close_socket(c);
    if (c->flush_ev != NULL)
        event_free(c->flush_ev);
    if (c->defer_ev != NULL)
        event_free(c->defer_ev);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

void transport_drop(struct transport *c)
{
    transport_close_socket(c);
    event_del(c->defer_ev);
    c->state = TRANSPORT_IDLE;
}

/* Closes the socket and reports ERR from the loop. */
static void transport_fail(struct transport *c, int err, const char *why)
{
    transport_close_socket(c);
    c->state = TRANSPORT_FAILING;
    c->down_err = err;
    snprintf(c->down_why, sizeof(c->down_why), "%s", why);
    event_active(c->defer_ev, EV_TIMEOUT, 0);
}

/* Fails with ERR and "WHAT PEER: <the system's message for SYSERR>". */
static void transport_fail_errno(struct transport *c, int err, const char *what, int syserr)
{
    char why[192], buf[96];
    /* GNU strerror_r (_GNU_SOURCE): thread-safe, may return a static string. */
    const char *msg = strerror_r(syserr, buf, sizeof(buf));
    snprintf(why, sizeof(why), "%s %s: %s", what, c->peer, msg);
    transport_fail(c, err, why);
}

/*
 * TLS failed under C: the socket's own error is PIGEON_ECONNLOST (as
 * without TLS, "WHAT PEER: reason"), TLS's is PIGEON_ETLS ("TLS_WHAT PEER:
 * reason").
 */
static void transport_fail_tls(struct transport *c, const char *what, const char *tls_what)
{
    const char *reason;
    char why[sizeof(c->down_why)];
    int syserr = tls_conn_error(c->tls, &reason);

    if (syserr != 0) {
        transport_fail_errno(c, PIGEON_ECONNLOST, what, syserr);
        return;
    }
    snprintf(why, sizeof(why), "%s %s: %s", tls_what, c->peer, reason);
    transport_fail(c, PIGEON_ETLS, why);
}

bool transport_is_up(const struct transport *c)
{
    return c->state == TRANSPORT_UP;
}

bool transport_is_idle(const struct transport *c)
{
    return c->state == TRANSPORT_IDLE;
}

struct buf *transport_out(struct transport *c)
{
    return &c->out;
}

int64_t transport_last_rx(const struct transport *c)
{
    return c->last_rx;
}

int64_t transport_last_tx(const struct transport *c)
{
    return c->last_tx;
}

/* ------------------------------------------------------------ connecting */

/* Connected (TCP and, under TLS, the handshake): start reading. */
static void transport_established(struct transport *c)
{
    event_del(c->wr_ev);
    c->state = TRANSPORT_UP;
    c->last_rx = c->last_tx = clock_now_ms();
    frame_scanner_init(&c->scan, c->max_in);
    if (event_add(c->rd_ev, NULL) < 0) {
        transport_fail(c, PIGEON_ENOMEM, "cannot watch the socket");
        return;
    }
    c->h.up(c->arg);
}

/* Takes the TLS handshake a step; once done, the transport is UP. */
static void transport_handshake_step(struct transport *c)
{
    switch (tls_handshake(c->tls)) {
    case 0:
        transport_established(c);
        break;
    case TLS_WANT_WRITE:
        if (event_add(c->wr_ev, NULL) < 0)
            transport_fail(c, PIGEON_ENOMEM, "cannot watch the socket");
        break;
    case TLS_WANT_READ:
        event_del(c->wr_ev); /* rd_ev is on throughout */
        break;
    default:
        transport_fail_tls(c, "TLS handshake with", "TLS handshake with");
        break;
    }
}

/* The TCP connection of the current target is made: TLS first, if any. */
static void transport_connected(struct transport *c)
{
    if (c->tls_ctx == NULL) {
        transport_established(c);
        return;
    }
    event_del(c->wr_ev);
    if (tls_conn_new(c->tls_ctx, c->fd, c->host, &c->tls) < 0 || event_add(c->rd_ev, NULL) < 0) {
        transport_fail(c, PIGEON_ENOMEM, "out of memory starting TLS");
        return;
    }
    c->state = TRANSPORT_HANDSHAKING;
    transport_handshake_step(c);
}

/*
 * Tries the targets from next_target on until one is connected or in
 * progress.  Returns 1 when connected at once, 0 when in progress, -1
 * when every target failed (SYSERR says why the last did).
 */
static int transport_try_targets(struct transport *c, int *syserr)
{
    while (c->next_target < c->n_targets) {
        const struct addr_target *t = &c->targets[c->next_target++];
        int fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *syserr = errno;
            continue;
        }
        if (t->family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        c->fd = fd;
        c->rd_ev = event_new(c->base, fd, EV_READ | EV_PERSIST, transport_read_cb, c);
        c->wr_ev = event_new(c->base, fd, EV_WRITE | EV_PERSIST, transport_write_cb, c);
        if (c->rd_ev == NULL || c->wr_ev == NULL) {
            *syserr = ENOMEM;
            transport_close_socket(c);
            return -1;
        }
        int rc;
        do {
            rc = connect(fd, (const struct sockaddr *)&t->sa, t->len);
        } while (rc < 0 && errno == EINTR);
        if (rc == 0)
            return 1;
        if (errno == EINPROGRESS) {
            if (event_add(c->wr_ev, NULL) == 0)
                return 0;
            *syserr = ENOMEM;
        } else {
            *syserr = errno;
        }
        transport_close_socket(c);
    }
    return -1;
}

/* Moves to the next target after a failure, or gives up. */
static void transport_next_target(struct transport *c, int syserr)
{
    int rc = transport_try_targets(c, &syserr);
    if (rc > 0)
        transport_connected(c);
    else if (rc < 0)
        transport_fail_errno(c, PIGEON_ECONNECT, "connect to", syserr);
}

int transport_open(struct transport *c, const struct addr *a)
{
    const char *why;
    int syserr = ECONNREFUSED;

    transport_drop(c);
    addr_format(a, c->peer, sizeof(c->peer));
    snprintf(c->host, sizeof(c->host), "%s", a->kind == ADDR_TCP ? a->host : "localhost");
    c->state = TRANSPORT_CONNECTING;
    c->n_targets = addr_resolve(a, c->targets, &why);
    c->next_target = 0;
    if (c->n_targets < 0) {
        char msg[192];
        c->n_targets = 0;
        snprintf(msg, sizeof(msg), "cannot resolve %s: %s", c->peer, why);
        transport_fail(c, PIGEON_ECONNECT, msg); /* maybe a passing DNS failure: retry */
        return 0;
    }
    int rc = transport_try_targets(c, &syserr);
    if (rc < 0) {
        if (syserr == ENOMEM) {
            c->state = TRANSPORT_IDLE;
            return PIGEON_ENOMEM;
        }
        transport_fail_errno(c, PIGEON_ECONNECT, "connect to", syserr);
    } else if (rc > 0) {
        /* Connected at once (a unix socket): report from the loop. */
        c->state = TRANSPORT_CONNECTING;
        c->down_err = 0;
        event_active(c->defer_ev, EV_TIMEOUT, 0);
    }
    return 0;
}

/* Runs `down`, or `up` for a socket that connected inside transport_open. */
static void transport_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct transport *c = arg;

    if (c->state == TRANSPORT_FAILING) {
        c->state = TRANSPORT_IDLE;
        c->h.down(c->arg, c->down_err, c->down_why);
    } else if (c->state == TRANSPORT_CONNECTING && c->fd >= 0) {
        transport_connected(c);
    }
}

/* ------------------------------------------------------------- the seam */

/*
 * Reads plaintext into P (LEN bytes of room): the bytes read (> 0), 0 at
 * the end of the stream, TRANSPORT_IO_AGAIN or TRANSPORT_IO_FAILED.
 */
static ssize_t transport_recv(struct transport *c, uint8_t *p, size_t len)
{
    if (c->tls == NULL) {
        ssize_t n = read(c->fd, p, len);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return TRANSPORT_IO_AGAIN;
        transport_fail_errno(c, PIGEON_ECONNLOST, "read from", errno);
        return TRANSPORT_IO_FAILED;
    }
    ssize_t n = tls_read(c->tls, p, len);
    if (n >= 0)
        return n;
    if (n == TLS_WANT_WRITE) {
        c->read_wants_write = true;
        if (event_add(c->wr_ev, NULL) == 0)
            return TRANSPORT_IO_AGAIN;
        transport_fail(c, PIGEON_ENOMEM, "cannot watch the socket");
        return TRANSPORT_IO_FAILED;
    }
    if (n == TLS_WANT_READ)
        return TRANSPORT_IO_AGAIN;
    transport_fail_tls(c, "read from", "TLS error from");
    return TRANSPORT_IO_FAILED;
}

/* send() on the plain socket: as tls_write, bytes taken or a tls_status. */
static ssize_t transport_send_plain(struct transport *c, const uint8_t *p, size_t len)
{
    ssize_t n;

    do {
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return TLS_WANT_WRITE;
    transport_fail_errno(c, PIGEON_ECONNLOST, "send to", n < 0 ? errno : EPIPE);
    return TRANSPORT_IO_FAILED;
}

/*
 * Writes up to LEN bytes of plaintext from P: the bytes taken (> 0),
 * TRANSPORT_IO_AGAIN (wr_ev is set, or the read event sends again) or
 * TRANSPORT_IO_FAILED.
 */
static ssize_t transport_xmit(struct transport *c, const uint8_t *p, size_t len)
{
    ssize_t n = c->tls == NULL ? transport_send_plain(c, p, len) : tls_write(c->tls, p, len);

    if (n > 0 || n == TRANSPORT_IO_FAILED)
        return n;
    if (n == TLS_WANT_WRITE) {
        if (!c->writing && event_add(c->wr_ev, NULL) == 0)
            c->writing = true;
        return TRANSPORT_IO_AGAIN;
    }
    if (n == TLS_WANT_READ) {
        c->write_wants_read = true; /* rd_ev is on while UP */
        return TRANSPORT_IO_AGAIN;
    }
    transport_fail_tls(c, "send to", "TLS error from");
    return TRANSPORT_IO_FAILED;
}

/* --------------------------------------------------------------- writing */

/* Sends until the output is empty or the socket is full. */
static void transport_send(struct transport *c)
{
    while (buf_size(&c->out) > 0) {
        ssize_t n = transport_xmit(c, c->out.data + c->out.off, buf_size(&c->out));
        if (n <= 0)
            return; /* waiting for the socket, or failed */
        buf_consume(&c->out, (size_t)n);
        c->last_tx = clock_now_ms();
    }
    if (c->writing) {
        event_del(c->wr_ev);
        c->writing = false;
    }
}

void transport_kick(struct transport *c)
{
    if (c->state != TRANSPORT_UP || c->writing)
        return; /* not connected, or wr_ev will send it */
    if (buf_size(&c->out) >= TRANSPORT_WRITE_NOW) {
        transport_send(c);
        return;
    }
    if (!c->flush_pending) {
        c->flush_pending = true;
        event_active(c->flush_ev, EV_TIMEOUT, 0);
    }
}

void transport_write_now(struct transport *c)
{
    if (c->state == TRANSPORT_UP)
        transport_send(c);
}

static void transport_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct transport *c = arg;

    c->flush_pending = false;
    if (c->state == TRANSPORT_UP && !c->writing)
        transport_send(c);
}

static void transport_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct transport *c = arg;

    if (c->state == TRANSPORT_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == 0) {
            transport_connected(c);
        } else {
            transport_close_socket(c);
            transport_next_target(c, err);
        }
        return;
    }
    if (c->state == TRANSPORT_HANDSHAKING) {
        transport_handshake_step(c);
        return;
    }
    if (c->read_wants_write) {
        c->read_wants_write = false;
        if (!c->writing)
            event_del(c->wr_ev);
        transport_read_ready(c); /* may free C: nothing after it */
        return;
    }
    transport_send(c);
}

/* --------------------------------------------------------------- reading */

/*
 * Offers the frame at the front of the input to the owner's fast path.
 * Returns 1 when it took one, 0 when it did not, -1 when told to stop.
 */
static int transport_take_quick(struct transport *c)
{
    size_t used = 0;

    if (!c->h.quick(c->arg, c->in.data + c->in.off, c->in.len - c->in.off, &used))
        return -1; /* C may be gone: touch nothing */
    if (c->state != TRANSPORT_UP)
        return -1;
    if (used == 0)
        return 0;
    buf_consume(&c->in, used);
    return 1;
}

/* Hands up every complete frame in the input. False when told to stop. */
static bool transport_take_frames(struct transport *c)
{
    while (c->in.off + c->scan.len < c->in.len) {
        if (c->scan.len == 0 && c->h.quick != NULL) {
            int took = transport_take_quick(c);
            if (took < 0)
                return false;
            if (took > 0)
                continue;
        }
        size_t pos = c->in.off + c->scan.len, used;
        enum frame_status st = frame_scan(&c->scan, c->in.data + pos, c->in.len - pos, &used);
        if (st == FRAME_MORE)
            return true;
        if (st != FRAME_DONE) {
            char why[128];
            snprintf(why, sizeof(why), "the broker sent a bad frame: %s", frame_strerror(st));
            transport_fail(c, PIGEON_EPROTO, why);
            return false;
        }
        const uint8_t *frame = c->in.data + c->in.off;
        size_t len = c->scan.len;
        frame_scanner_reset(&c->scan);
        /* The bytes stay where they are during the call: nothing writes
         * into `in` but this read path. */
        buf_consume(&c->in, len);
        if (!c->h.frame(c->arg, frame, len) || c->state != TRANSPORT_UP)
            return false;
    }
    return true;
}

/* The socket (or TLS) has bytes for us: read them and hand up the frames. */
static void transport_read_ready(struct transport *c)
{
    uint8_t *p = buf_reserve(&c->in, TRANSPORT_READ_CHUNK);

    if (p == NULL) {
        transport_fail(c, PIGEON_ENOMEM, "out of memory for input");
        return;
    }
    ssize_t n = transport_recv(c, p, c->in.cap - c->in.len);
    if (n > 0) {
        buf_commit(&c->in, (size_t)n);
        c->last_rx = clock_now_ms();
        if (!transport_take_frames(c))
            return; /* C may be gone */
        /* Bytes TLS read ahead wait inside it, not on the socket: no event
         * would come for them. */
        if (c->tls != NULL && c->state == TRANSPORT_UP && tls_has_pending(c->tls))
            event_active(c->rd_ev, EV_READ, 0);
    } else if (n == 0) {
        char why[160];
        snprintf(why, sizeof(why), "%s closed the connection", c->peer);
        transport_fail(c, PIGEON_ECONNLOST, why);
    }
}

static void transport_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct transport *c = arg;

    if (c->state == TRANSPORT_HANDSHAKING) {
        transport_handshake_step(c);
        return;
    }
    if (c->write_wants_read) {
        c->write_wants_read = false;
        transport_send(c);
        if (c->state != TRANSPORT_UP)
            return;
    }
    transport_read_ready(c);
}
