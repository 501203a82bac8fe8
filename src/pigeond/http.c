/*
 * http.c - the monitoring endpoint (see http.h for what it serves).
 *
 * Layers, top-down: connection accounting (max_clients, per address,
 * header_timeout), replies, the handlers, the request router with its
 * index (GET /), and the public lifecycle.
 *
 * Capping connections on libevent 2.1.  evhttp accepts by itself and has no
 * connection limit before 2.2 (evhttp_set_max_connections), nor a callback
 * when a connection ends.  What 2.1 does offer is evhttp_set_bevcb: evhttp
 * asks us for each accepted connection's bufferevent.  We make it, take an
 * extra reference to it (bufferevent_incref), and keep it in conns[].  When
 * evhttp is done with the connection it frees the bufferevent, which clears
 * its callbacks and argument and drops evhttp's reference; ours keeps the
 * struct alive, so the sweep can see the cleared callbacks, drop our
 * reference (which closes the socket) and count the connection out.  The
 * sweep runs before each accept and every HTTP_SWEEP_MS while anything is
 * tracked (or, under select, while accepting waits for a descriptor).  At
 * max_clients tracked connections the listener is disabled, so new
 * connections wait in the kernel's accept queue; the sweep enables it again.
 * Alternatives rejected: a bufferevent filter (its free callback would do,
 * but 2.1's filters cannot take the socket evhttp hands them), and counting
 * closes through evhttp_connection_set_closecb (only reachable once a
 * request arrived, so a silent connection would never be counted out).
 *
 * Slow clients (slowloris).  evhttp's read timeout restarts with every
 * byte, so a client that sends a header byte every few seconds holds its
 * connection for as long as it likes, and max_clients of them take the
 * endpoint down.  Two bounds stop that.  header_timeout bounds the whole
 * wait for a request: each tracked connection records since when it has
 * been waiting for one (its accept, or the end of its previous response,
 * through evhttp_request_set_on_complete_cb), and the sweep closes it once
 * that passes header_timeout, however its bytes trickle.
 * max_clients_per_address bounds what one client address holds (an IPv6
 * address's /64, which one host usually owns whole): evhttp accepts on its
 * own and gives the socket to the bufferevent only after our callback, so
 * the check runs from an event activated in that callback, which libevent
 * runs before the socket is first read; a connection over the cap gets a
 * 503 written straight to its socket.  Either way the socket is shut down
 * (shutdown, not close: evhttp still owns the descriptor) in two steps, as
 * a lingering close does: writing at once, so the client gets its 503 and
 * an end of file, and reading HTTP_LINGER_MS later unless the client
 * closed first.  Shutting both at once would let the kernel answer the
 * request bytes still unread with a reset, which can destroy the 503
 * before the client reads it.  evhttp sees the end of file as if the client
 * had closed, frees the connection, and the sweep counts it out.
 * Connections being closed do not count toward max_clients (they would let
 * one address block the others while they linger).  Lingering is a
 * courtesy while there is room: once max_clients of them are closing,
 * their reading is shut at once, and accepting pauses only until the next
 * sweep has counted them out.
 *
 * The select backend.  libevent's select backend cannot watch a descriptor
 * at or above FD_SETSIZE (glibc aborts in FD_SET), and evhttp hands each
 * socket it accepts straight to a bufferevent: no callback of ours sees the
 * descriptor before libevent watches it, so a socket cannot be refused after
 * the fact as server_accept refuses one.  Instead accepting is paused
 * before it could go wrong: accept() takes the lowest free descriptor, so
 * while that is below FD_SETSIZE the next accept is safe.  http_check_fds
 * probes it after everything that takes a descriptor for good (an HTTP
 * connection here; a broker connection, told by the loop's fdlimit watcher)
 * and after everything that frees one (the sweep; a freed broker
 * connection, again through the watcher), and the sweep repeats it while paused, since
 * libevent closes a freed socket only after the callback at hand;
 * connections that arrive meanwhile wait in the kernel's accept queue.
 * Under every other backend the check is free.
 *
 * JSON is built with jansson (strings escaped for us) and indented, since
 * people read it with curl as often as scripts do.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "access.h"
#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "listener.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "transport.h"
#include "xalloc.h"

/* How often tracked connections are checked for having ended. */
#define HTTP_SWEEP_MS 100

/* How long a connection we close may still send before its reading is shut too. */
#define HTTP_LINGER_MS 1000

/* A peer's address as max_clients_per_address counts it: IPv4, or an IPv6 /64. */
struct http_peer {
    unsigned char key[9]; /* family tag, then 4 or 8 address bytes */
    uint8_t key_len;      /* 0 until known */
    char text[INET6_ADDRSTRLEN];
};

/* One connection evhttp has accepted, tracked until it lets go of it (see the top). */
struct http_conn {
    struct bufferevent *bev; /* with our reference */
    int64_t waiting_ms;      /* since when it waits for a request's headers; 0: one is in hand */
    struct http_peer peer;
    int64_t closing_ms; /* when we shut its writing down (address cap, header_timeout), or 0 */
    bool checked;       /* its address has been counted */
    bool read_shut;     /* its reading too, after HTTP_LINGER_MS */
};

struct http {
    struct server *srv;                /* borrowed */
    struct evhttp *evh;                /* owned */
    struct evhttp_bound_socket *bound; /* owned by evh */
    char *bind;                        /* the config's bind this was opened for; owned */
    char address[128];                 /* what was bound */
    uint32_t max_clients;
    uint32_t max_per_address;
    uint32_t header_timeout_ms;
    struct timeval timeout;  /* the config's, for requests and reads */
    struct http_conn *conns; /* owned array */
    size_t n_conns, cap_conns;
    size_t n_closing;       /* of conns, those closing */
    struct event *sweep_ev; /* owned */
    struct event *check_ev; /* owned; counts new connections' addresses */
    bool paused;            /* the listener is disabled (max_clients, or no room) */
    bool no_fds;            /* select: no free descriptor below FD_SETSIZE */
};

static struct bufferevent *http_bev_cb(struct event_base *base, void *arg);
static void http_sweep_cb(evutil_socket_t fd, short what, void *arg);
static void http_check_cb(evutil_socket_t fd, short what, void *arg);
static void http_request_cb(struct evhttp_request *req, void *arg);

/* ------------------------------------------------- connection accounting ---- */

static void http_set_paused(struct http *h, bool pause)
{
    struct evconnlistener *evl = evhttp_bound_socket_get_listener(h->bound);

    if (pause == h->paused || evl == NULL)
        return;
    h->paused = pause;
    if (pause)
        evconnlistener_disable(evl);
    else
        evconnlistener_enable(evl);
}

/*
 * Pauses the listener at max_clients open connections, with max_clients
 * more being closed, or, under select, out of room (see the top).
 */
static void http_update_paused(struct http *h)
{
    size_t open = h->n_conns - h->n_closing;

    http_set_paused(h, open >= h->max_clients || h->n_closing >= h->max_clients || h->no_fds);
}

/*
 * Keeps the sweep running while anything is tracked or accepting is paused
 * for want of a descriptor: sockets are closed by libevent's finalizers,
 * after the callback that let go of them, so the check that follows a close
 * can come too early and has to be repeated.
 */
static void http_schedule_sweep(struct http *h)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = HTTP_SWEEP_MS * 1000};
    bool want = h->n_conns > 0 || h->no_fds;

    if (want && !event_pending(h->sweep_ev, EV_TIMEOUT, NULL))
        event_add(h->sweep_ev, &tv);
    else if (!want)
        event_del(h->sweep_ev);
}

/*
 * Under io_backend select: pauses accepting while the next descriptor would
 * be beyond FD_SETSIZE, and resumes once one below it is free (see the top).
 * NULL H is fine.
 */
static void http_check_fds(struct http *h)
{
    if (h == NULL)
        return;
    if (fdlimit_ceiling(&h->srv->loop.fds) != 0) {
        bool no_fds = !fdlimit_room(&h->srv->loop.fds);
        if (no_fds != h->no_fds)
            log_notice(&h->srv->log,
                       no_fds ? "http: accepting paused: no descriptor below FD_SETSIZE "
                                "(io_backend select)"
                              : "http: accepting resumed: a descriptor below FD_SETSIZE is free");
        h->no_fds = no_fds;
    }
    http_update_paused(h);
    http_schedule_sweep(h);
}

/* True while evhttp still holds C's bufferevent: freeing it clears its callbacks. */
static bool http_conn_live(const struct http_conn *c)
{
    bufferevent_event_cb eventcb;
    void *cbarg;

    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &cbarg);
    return eventcb != NULL || cbarg != NULL;
}

static struct http_conn *http_conn_find(struct http *h, const struct bufferevent *bev)
{
    for (size_t i = 0; i < h->n_conns; i++)
        if (h->conns[i].bev == bev)
            return &h->conns[i];
    return NULL;
}

/* Shuts C's reading too: evhttp then reads an end of file and frees it. */
static void http_conn_shut_read(struct http_conn *c)
{
    shutdown(bufferevent_getfd(c->bev), SHUT_RD);
    c->read_shut = true;
}

/*
 * Starts closing C (see the top): writes RESPONSE to it if not NULL, then
 * shuts its writing down; http_sweep_timers shuts its reading later.  WHY
 * ends the (rate-limited) warning.
 */
static void http_conn_shut(struct http *h, struct http_conn *c, const char *response,
                           const char *why)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);

    if (fd >= 0) {
        if (response != NULL) /* best effort: nothing else was written to it yet */
            (void)!send(fd, response, strlen(response), MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
    }
    c->closing_ms = clock_now_ms();
    if (++h->n_closing >= h->max_clients) /* no room to linger: see the top */
        for (size_t i = 0; i < h->n_conns; i++)
            if (h->conns[i].closing_ms != 0 && !h->conns[i].read_shut)
                http_conn_shut_read(&h->conns[i]);
    loop_warn(&h->srv->loop, LOOP_WARN_ACCEPT, "http: closed a connection from %s: %s",
              c->peer.text[0] ? c->peer.text : "?", why);
}

/*
 * Closes the connections that have waited longer than header_timeout for a
 * request, and ends the lingering of those closing.
 */
static void http_sweep_timers(struct http *h, int64_t now)
{
    char why[96];

    snprintf(why, sizeof(why), "no complete request within header_timeout %u ms",
             h->header_timeout_ms);
    for (size_t i = 0; i < h->n_conns; i++) {
        struct http_conn *c = &h->conns[i];
        if (!http_conn_live(c))
            continue;
        if (c->closing_ms == 0 && c->waiting_ms != 0 &&
            now - c->waiting_ms >= h->header_timeout_ms) {
            http_conn_shut(h, c, NULL, why);
        } else if (c->closing_ms != 0 && !c->read_shut && now - c->closing_ms >= HTTP_LINGER_MS) {
            http_conn_shut_read(c);
        }
    }
}

/* Counts out the connections evhttp has let go of, and closes slow ones (see the top). */
static void http_sweep(struct http *h)
{
    size_t kept = 0;

    http_sweep_timers(h, clock_now_ms());
    for (size_t i = 0; i < h->n_conns; i++) {
        struct http_conn *c = &h->conns[i];
        if (http_conn_live(c)) {
            h->conns[kept++] = *c;
            continue;
        }
        if (c->closing_ms != 0)
            h->n_closing--;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        bufferevent_decref(c->bev); /* the last reference: closes the socket */
    }
    h->n_conns = kept;
    http_check_fds(h); /* also unpauses below max_clients */
}

static void http_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    http_sweep(arg);
}

/* P from the address of the socket FD's peer; false if it has none (gone already). */
static bool http_peer_read(evutil_socket_t fd, struct http_peer *p)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const unsigned char *a;

    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET6) {
        a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        inet_ntop(AF_INET6, a, p->text, sizeof(p->text));
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            p->key[0] = 4;
            memcpy(p->key + 1, a + 12, 4);
            p->key_len = 5;
        } else {
            p->key[0] = 6;
            memcpy(p->key + 1, a, 8); /* the /64 */
            p->key_len = 9;
        }
    } else if (ss.ss_family == AF_INET) {
        a = (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr;
        inet_ntop(AF_INET, a, p->text, sizeof(p->text));
        p->key[0] = 4;
        memcpy(p->key + 1, a, 4);
        p->key_len = 5;
    } else {
        return false;
    }
    return true;
}

/* Open connections already counted from the address of P. */
static size_t http_peer_count(const struct http *h, const struct http_peer *p)
{
    size_t n = 0;

    for (size_t i = 0; i < h->n_conns; i++) {
        const struct http_conn *c = &h->conns[i];
        if (c->checked && c->closing_ms == 0 && c->peer.key_len == p->key_len &&
            memcmp(c->peer.key, p->key, p->key_len) == 0 && http_conn_live(c))
            n++;
    }
    return n;
}

/* New connections: count each one's address, and refuse it past max_clients_per_address. */
static void http_check_cb(evutil_socket_t fd, short what, void *arg)
{
    static const char refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 39\r\n"
                                  "Connection: close\r\n\r\n"
                                  "too many connections from your address\n";
    struct http *h = arg;
    char why[96];

    snprintf(why, sizeof(why), "max_clients_per_address %u reached", h->max_per_address);
    for (size_t i = 0; i < h->n_conns; i++) {
        struct http_conn *c = &h->conns[i];
        evutil_socket_t sock = bufferevent_getfd(c->bev);
        if (c->checked || sock < 0)
            continue;
        c->checked = true;
        if (http_peer_read(sock, &c->peer) && http_peer_count(h, &c->peer) > h->max_per_address)
            http_conn_shut(h, c, refusal, why);
    }
    http_check_fds(h);
}

/* evhttp accepted a connection: make its bufferevent and count it in. */
static struct bufferevent *http_bev_cb(struct event_base *base, void *arg)
{
    struct http *h = arg;
    struct bufferevent *bev;

    http_sweep(h);
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL; /* evhttp makes one itself: uncounted, as libevent is out of memory */
    if (h->n_conns == h->cap_conns) {
        h->cap_conns = h->cap_conns ? h->cap_conns * 2 : 16;
        h->conns = xrealloc(h->conns, h->cap_conns * sizeof(*h->conns));
    }
    bufferevent_incref(bev);
    h->conns[h->n_conns++] = (struct http_conn){.bev = bev, .waiting_ms = clock_now_ms()};
    /* evhttp gives BEV its socket once this returns: count its address then. */
    event_active(h->check_ev, EV_TIMEOUT, 1);
    http_check_fds(h); /* also pauses at max_clients; starts the sweep */
    return bev;
}

/* ---------------------------------------------------------------- replies ---- */

static void http_reply(struct evhttp_request *req, int code, const char *reason,
                       const char *content_type, struct evbuffer *body)
{
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);

    evhttp_add_header(hdrs, "Content-Type", content_type);
    evhttp_add_header(hdrs, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void http_reply_text(struct evhttp_request *req, int code, const char *reason,
                            const char *text)
{
    struct evbuffer *body = evbuffer_new();

    if (body == NULL || evbuffer_add_printf(body, "%s\n", text) < 0) {
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    http_reply(req, code, reason, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* Sends ROOT (taken) as the JSON body of a 200. */
static void http_reply_json(struct evhttp_request *req, json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    struct evbuffer *body = evbuffer_new();

    json_decref(root);
    if (text == NULL || body == NULL || evbuffer_add(body, text, strlen(text)) < 0 ||
        evbuffer_add(body, "\n", 1) < 0) {
        free(text);
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    free(text);
    http_reply(req, HTTP_OK, "OK", "application/json", body);
    evbuffer_free(body);
}

/* --------------------------------------------------------------- handlers ---- */

static void handle_healthz(struct http *h, struct evhttp_request *req)
{
    if (h->srv->draining)
        http_reply_text(req, HTTP_SERVUNAVAIL, "Service Unavailable", "draining");
    else
        http_reply_text(req, HTTP_OK, "OK", "ok");
}

static void handle_metrics(struct http *h, struct evhttp_request *req)
{
    struct stats_snapshot snap;
    struct evbuffer *body = evbuffer_new();
    int rc = -1;

    stats_gather(h->srv, &snap);
    if (body != NULL)
        rc = stats_format_metrics(&snap, body);
    if (rc == 0 && h->srv->store != NULL)
        rc = store_format_metrics(h->srv->store, body);
    stats_release(&snap);
    if (rc < 0) {
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    http_reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    evbuffer_free(body);
}

struct page {
    uint64_t offset;
    uint64_t limit;
};

/* A query parameter as a whole number: 0 (absent: *OUT untouched), or -1. */
static int query_number(const struct evkeyvalq *q, const char *name, uint64_t max, uint64_t *out)
{
    const char *v = evhttp_find_header(q, name);
    uint64_t n = 0;

    if (v == NULL)
        return 0;
    if (*v == '\0' || strlen(v) > 19 || v[strspn(v, "0123456789")] != '\0')
        return -1;
    for (const char *c = v; *c; c++)
        n = n * 10 + (uint64_t)(*c - '0');
    if (n > max)
        return -1;
    *out = n;
    return 0;
}

/* Reads ?offset=&limit= from REQ into P; -1 (and a 400 sent) when malformed. */
static int page_parse(struct evhttp_request *req, struct page *p)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq q;
    int rc = 0;

    p->offset = 0;
    p->limit = HTTP_PAGE_DEFAULT;
    if (query == NULL)
        return 0;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(query, &q) < 0 ||
        query_number(&q, "offset", UINT32_MAX, &p->offset) < 0 ||
        query_number(&q, "limit", HTTP_PAGE_MAX, &p->limit) < 0 || p->limit == 0)
        rc = -1;
    evhttp_clear_headers(&q);
    if (rc < 0)
        http_reply_text(req, HTTP_BADREQUEST, "Bad Request",
                        "bad query: offset=N (0 or more) and limit=M (1 to 1000), digits only");
    return rc;
}

/* {"total", "offset", "limit", "next_offset", KEY: ITEMS (taken)} */
static json_t *page_wrap(const struct page *p, uint64_t total, const char *key, json_t *items)
{
    uint64_t next = p->offset + json_array_size(items);
    json_t *root = json_object();

    json_object_set_new(root, "total", json_integer((json_int_t)total));
    json_object_set_new(root, "offset", json_integer((json_int_t)p->offset));
    json_object_set_new(root, "limit", json_integer((json_int_t)p->limit));
    json_object_set_new(root, "next_offset",
                        next < total ? json_integer((json_int_t)next) : json_null());
    json_object_set_new(root, key, items);
    return root;
}

static json_t *json_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *connection_json(const struct conn *c, int64_t now)
{
    json_t *o = json_object();
    const struct session *s = &c->sess;

    json_object_set_new(o, "id", json_u64(s->id));
    json_object_set_new(o, "client", s->client_name ? json_string(s->client_name) : json_null());
    json_object_set_new(o, "user",
                        access_user_name(s) ? json_string(access_user_name(s)) : json_null());
    json_object_set_new(o, "transport", json_string(c->tp->ops->name));
    json_object_set_new(o, "peer", json_string(conn_peer(c)));
    json_object_set_new(o, "listener", json_string(listener_name(c->listener)));
    json_object_set_new(o, "state", json_string(c->state == CONN_OPEN ? "open" : "closing"));
    json_object_set_new(o, "connected_ms", json_integer((json_int_t)(now - c->opened_ms)));
    json_object_set_new(o, "subscriptions", json_u64(s->n_subs));
    json_object_set_new(o, "msgs_in", json_u64(c->stats.msgs_in));
    json_object_set_new(o, "bytes_in", json_u64(c->stats.bytes_in));
    json_object_set_new(o, "msgs_out", json_u64(c->stats.msgs_out));
    json_object_set_new(o, "bytes_out", json_u64(c->stats.bytes_out));
    json_object_set_new(o, "dropped", json_u64(c->stats.dropped));
    json_object_set_new(o, "undelivered", json_u64(c->stats.undelivered));
    json_object_set_new(o, "queued_bytes", json_u64(conn_queued(c)));
    json_object_set_new(o, "slow", json_boolean(s->dropping || (c->holds & CONN_HOLD_OUTPUT)));
    return o;
}

static void handle_connections(struct http *h, struct evhttp_request *req)
{
    struct page p;
    struct conn *c;
    uint64_t i = 0;
    int64_t now = clock_now_ms();
    json_t *items;

    if (page_parse(req, &p) < 0)
        return;
    items = json_array();
    TAILQ_FOREACH (c, &h->srv->loop.conns, link) {
        if (i >= p.offset && i < p.offset + p.limit)
            json_array_append_new(items, connection_json(c, now));
        i++;
    }
    json_t *root = page_wrap(&p, i, "connections", items);
    if (h->srv->cluster != NULL) /* which node of the cluster these connections are on */
        json_object_set_new(root, "node", json_string(cluster_node(h->srv->cluster)));
    http_reply_json(req, root);
}

static json_t *subscription_json(const struct session *ss, const struct sub *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "client_id", json_u64(ss->id));
    json_object_set_new(o, "sid", json_u64(s->sid));
    json_object_set_new(o, "pattern", json_string(s->pattern));
    json_object_set_new(o, "queue", s->queue ? json_string(s->queue) : json_null());
    return o;
}

static void handle_subscriptions(struct http *h, struct evhttp_request *req)
{
    struct page p;
    struct conn *c;
    uint64_t seen = 0; /* subscriptions before the current connection's */
    json_t *items;

    if (page_parse(req, &p) < 0)
        return;
    items = json_array();
    TAILQ_FOREACH (c, &h->srv->loop.conns, link) {
        /* Whole connections before the page are skipped in one step. */
        uint64_t skip = seen < p.offset ? p.offset - seen : 0;
        for (uint64_t k = skip; k < c->sess.n_subs && json_array_size(items) < p.limit; k++)
            json_array_append_new(items, subscription_json(&c->sess, c->sess.subs[k]));
        seen += c->sess.n_subs;
    }
    http_reply_json(req, page_wrap(&p, seen, "subscriptions", items));
}

/* GET /streams: the store's streams and durables (store.h); an empty list without [store]. */
static void handle_streams(struct http *h, struct evhttp_request *req)
{
    json_t *root;

    if (h->srv->store != NULL) {
        root = store_streams_json(h->srv->store);
    } else {
        root = json_object();
        json_object_set_new(root, "streams", json_array());
    }
    http_reply_json(req, root);
}

/* ------------------------------------------------------------- routing ---- */

static void handle_index(struct http *h, struct evhttp_request *req);

static const struct route {
    const char *path;
    void (*fn)(struct http *h, struct evhttp_request *req);
    const char *what; /* for the index */
} routes[] = {
    {"/", handle_index, "this list"},
    {"/healthz", handle_healthz, "200 \"ok\", or 503 \"draining\" once shutdown began"},
    {"/metrics", handle_metrics, "counters and gauges, Prometheus text format"},
    {"/streams", handle_streams, "JSON: each stream, its figures and its durable consumers"},
    {"/connections", handle_connections,
     "JSON: one object per client connection (?offset=N&limit=M)"},
    {"/subscriptions", handle_subscriptions,
     "JSON: one object per subscription (?offset=N&limit=M)"},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* GET /: what the endpoint serves, one path a line. */
static void handle_index(struct http *h, struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();
    int rc = body != NULL ? 0 : -1;

    if (rc == 0)
        rc = evbuffer_add_printf(body, "pigeond %s monitoring endpoint\n\n", PIGEON_VERSION);
    for (size_t i = 0; rc >= 0 && i < N_ROUTES; i++)
        rc = evbuffer_add_printf(body, "GET %-15s %s\n", routes[i].path, routes[i].what);
    if (rc < 0) {
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    http_reply(req, HTTP_OK, "OK", "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* Called by evhttp once REQ's response is sent: its connection waits for the next. */
static void http_request_done_cb(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct http_conn *c =
        evcon != NULL ? http_conn_find(h, evhttp_connection_get_bufferevent(evcon)) : NULL;

    if (c != NULL)
        c->waiting_ms = clock_now_ms();
}

/*
 * A request arrived on REQ's connection: no longer waiting; again once
 * answered.  False when the connection is being closed (see the top).
 */
static bool http_request_started(struct http *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct http_conn *c = http_conn_find(h, evhttp_connection_get_bufferevent(evcon));

    if (c != NULL && c->closing_ms != 0)
        return false;
    if (c != NULL)
        c->waiting_ms = 0; /* header_timeout is met; timeout covers the response */
    evhttp_request_set_on_complete_cb(req, http_request_done_cb, h);
    /* A reload may have changed it since evhttp accepted the connection. */
    evhttp_connection_set_timeout_tv(evcon, &h->timeout);
    return true;
}

/*
 * True when REQ may be served: [http] token unset, or the request carries
 * "Authorization: Bearer TOKEN" (compared in constant time).  /healthz is
 * open to all, so that a health check needs no secret.
 */
static bool http_authorized(struct http *h, struct evhttp_request *req, const char *path)
{
    const char *token = h->srv->conf->http.token;
    const char *auth;
    static const char bearer[] = "Bearer ";

    if (token == NULL || (path != NULL && strcmp(path, "/healthz") == 0))
        return true;
    auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (auth == NULL || strncasecmp(auth, bearer, sizeof(bearer) - 1) != 0)
        return false;
    auth += sizeof(bearer) - 1;
    size_t n = strlen(token);
    return strlen(auth) == n && CRYPTO_memcmp(auth, token, n) == 0;
}

static void http_request_cb(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (!http_request_started(h, req)) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL); /* its writing is shut: this frees it */
        return;
    }
    if (!http_authorized(h, req, path)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"pigeond\"");
        http_reply_text(req, 401, "Unauthorized",
                        "unauthorized: send Authorization: Bearer TOKEN ([http] token)");
        return;
    }
    for (size_t i = 0; path != NULL && i < N_ROUTES; i++) {
        if (strcmp(path, routes[i].path) == 0) {
            routes[i].fn(h, req);
            return;
        }
    }
    http_reply_text(req, HTTP_NOTFOUND, "Not Found", "not found: GET / lists the endpoints");
}

/* ------------------------------------------------------------ lifecycle ---- */

/*
 * Applies max_clients and timeout, to open connections too.  evhttp copies
 * its timeout into each connection as it accepts it, so for the ones open
 * now the new value is set on their bufferevents (restarting their clock)
 * and, at their next request, on the evhttp connection (http_request_cb).
 */
static void http_apply_limits(struct http *h, const struct config_http *conf)
{
    h->timeout.tv_sec = conf->timeout_ms / 1000;
    h->timeout.tv_usec = (conf->timeout_ms % 1000) * 1000;
    evhttp_set_timeout_tv(h->evh, &h->timeout);
    for (size_t i = 0; i < h->n_conns; i++)
        if (http_conn_live(&h->conns[i])) /* evhttp still has it (see the top) */
            bufferevent_set_timeouts(h->conns[i].bev, &h->timeout, &h->timeout);
    h->max_clients = conf->max_clients;
    h->max_per_address = conf->max_clients_per_address;
    h->header_timeout_ms = conf->header_timeout_ms; /* open connections too: see http_sweep */
    http_check_fds(h);
}

static void http_format_address(struct http *h)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->bound);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(h->address, sizeof(h->address), "%s", h->bind);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(h->address, sizeof(h->address), "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(h->address, sizeof(h->address), "%s:%u", host, ntohs(in->sin_port));
    }
}

/* Opens the endpoint CONF describes; NULL after logging why. */
/* fdlimit watcher: descriptors were taken or freed. */
static void http_fds_changed_cb(void *arg)
{
    http_check_fds(arg);
}

static struct http *http_open(struct server *srv, const struct config_http *conf)
{
    struct http *h = xcalloc(1, sizeof(*h));

    h->srv = srv;
    h->bind = xstrdup(conf->bind);
    h->evh = evhttp_new(srv->loop.base);
    h->sweep_ev = event_new(srv->loop.base, -1, EV_PERSIST, http_sweep_cb, h);
    h->check_ev = event_new(srv->loop.base, -1, 0, http_check_cb, h);
    if (h->evh == NULL || h->sweep_ev == NULL || h->check_ev == NULL) {
        log_error(&srv->log, "[http] %s: cannot create the HTTP server", conf->bind);
        http_free(h);
        return NULL;
    }
    evhttp_set_max_headers_size(h->evh, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->evh, 0);
    evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_bevcb(h->evh, http_bev_cb, h);
    evhttp_set_gencb(h->evh, http_request_cb, h);
    h->bound = evhttp_bind_socket_with_handle(h->evh, conf->host, conf->port);
    if (h->bound == NULL) {
        log_error(&srv->log, "[http] cannot bind %s: %s", conf->bind, strerror(errno));
        http_free(h);
        return NULL;
    }
    http_apply_limits(h, conf);
    http_format_address(h);
    fdlimit_watch(&srv->loop.fds, http_fds_changed_cb, h);
    log_notice(&srv->log,
               "http monitoring on %s (max_clients %u, max_clients_per_address %u, timeout %u ms, "
               "header_timeout %u ms)",
               h->address, conf->max_clients, conf->max_clients_per_address, conf->timeout_ms,
               conf->header_timeout_ms);
    return h;
}

int http_apply_config(struct server *srv, struct http **h)
{
    const struct config_http *conf = &srv->conf->http;

    if (*h != NULL && conf->enabled && strcmp((*h)->bind, conf->bind) == 0) {
        http_apply_limits(*h, conf);
        return 0;
    }
    if (*h != NULL) {
        log_notice(&srv->log, "http monitoring on %s closed", (*h)->address);
        http_free(*h);
        *h = NULL;
    }
    if (!conf->enabled)
        return 0;
    /* Its socket must be one select can watch: libevent watches it at once. */
    if (!fdlimit_room(&srv->loop.fds)) {
        log_error(&srv->log,
                  "[http] cannot open %s: no descriptor below FD_SETSIZE "
                  "(io_backend select)",
                  conf->bind);
        return -1;
    }
    *h = http_open(srv, conf);
    return *h != NULL ? 0 : -1;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    fdlimit_unwatch(&h->srv->loop.fds, http_fds_changed_cb, h);
    if (h->evh != NULL)
        evhttp_free(h->evh); /* frees its connections: each drops evhttp's reference */
    for (size_t i = 0; i < h->n_conns; i++)
        bufferevent_decref(h->conns[i].bev);
    free(h->conns);
    if (h->sweep_ev != NULL)
        event_free(h->sweep_ev);
    if (h->check_ev != NULL)
        event_free(h->check_ev);
    free(h->bind);
    free(h);
}

const char *http_address(const struct http *h)
{
    return h->address;
}
