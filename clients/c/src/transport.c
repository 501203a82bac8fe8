/*
 * transport.c - the connection to the broker (see transport.h).
 *
 * The socket is driven by plain events rather than a bufferevent: reads go
 * into our own contiguous buffer, where frames are scanned and handed up
 * with no copy (a bufferevent reads 4 KiB at a time into a chain that
 * would have to be pulled up), and writes use send(MSG_NOSIGNAL), which a
 * bufferevent cannot (it would raise SIGPIPE in the user's process).
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

#define TRANSPORT_READ_CHUNK (256 * 1024) /* room for one read() */
#define TRANSPORT_WRITE_NOW  (64 * 1024)  /* output that is sent without waiting */

enum transport_state {
    TRANSPORT_IDLE,
    TRANSPORT_CONNECTING,
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
    struct buf in;
    struct buf out;
    struct frame_scanner scan;
    uint32_t max_in;
    int64_t last_rx, last_tx;
    /* connecting */
    struct addr_target targets[ADDR_MAX_TARGETS];
    int n_targets, next_target;
    char peer[128];
    /* a deferred `down` */
    int down_err;
    char down_why[192];
};

static void transport_read_cb(evutil_socket_t fd, short what, void *arg);
static void transport_write_cb(evutil_socket_t fd, short what, void *arg);
static void transport_flush_cb(evutil_socket_t fd, short what, void *arg);
static void transport_defer_cb(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------------------- set-up */

int transport_new(struct event_base *base, const struct transport_handlers *h, void *arg,
                  uint32_t max_in, struct transport **out)
{
    struct transport *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PIGEON_ENOMEM;
    c->base = base;
    c->h = *h;
    c->arg = arg;
    c->fd = -1;
    c->max_in = max_in;
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

/* The socket of the current target connected: start reading. */
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
        transport_established(c);
    else if (rc < 0)
        transport_fail_errno(c, PIGEON_ECONNECT, "connect to", syserr);
}

int transport_open(struct transport *c, const struct addr *a)
{
    const char *why;
    int syserr = ECONNREFUSED;

    transport_drop(c);
    addr_format(a, c->peer, sizeof(c->peer));
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
        transport_established(c);
    }
}

/* --------------------------------------------------------------- writing */

/* Sends until the output is empty or the socket is full. */
static void transport_send(struct transport *c)
{
    while (buf_size(&c->out) > 0) {
        ssize_t n =
            send(c->fd, c->out.data + c->out.off, buf_size(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            c->last_tx = clock_now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->writing && event_add(c->wr_ev, NULL) == 0)
                c->writing = true;
            return;
        }
        transport_fail_errno(c, PIGEON_ECONNLOST, "send to", n < 0 ? errno : EPIPE);
        return;
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
            transport_established(c);
        } else {
            transport_close_socket(c);
            transport_next_target(c, err);
        }
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

static void transport_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct transport *c = arg;
    uint8_t *p = buf_reserve(&c->in, TRANSPORT_READ_CHUNK);

    if (p == NULL) {
        transport_fail(c, PIGEON_ENOMEM, "out of memory for input");
        return;
    }
    ssize_t n = read(c->fd, p, c->in.cap - c->in.len);
    if (n > 0) {
        buf_commit(&c->in, (size_t)n);
        c->last_rx = clock_now_ms();
        transport_take_frames(c);
    } else if (n == 0) {
        char why[160];
        snprintf(why, sizeof(why), "%s closed the connection", c->peer);
        transport_fail(c, PIGEON_ECONNLOST, why);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        transport_fail_errno(c, PIGEON_ECONNLOST, "read from", errno);
    }
}
