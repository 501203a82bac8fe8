/*
 * server.h - the server context: the one piece of global state.
 *
 * It owns the current config snapshot, the logger, the event loop, the
 * router, the listeners and the signal handlers, and it runs the life of
 * the daemon: start, SIGHUP reload, SIGTERM/SIGINT drain, stop.
 *
 * What the per-message path needs lives in the loop (loop.h) and the
 * router (router.h), not here.  Places kept for what comes next:
 * authentication and permissions hang off the server (checked by the
 * session at hello, pub and sub); a durable store attaches to the router,
 * as the backplane (cluster.h) does; more loops become an array here.
 */
#ifndef PIGEON_SERVER_H
#define PIGEON_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "budget.h"
#include "config.h"
#include "log.h"
#include "loop.h"

struct activation;
struct auth;
struct cluster;
struct http;
struct listener;
struct notify;
struct router;
struct store;
struct sysstats;

TAILQ_HEAD(listener_list, listener);

struct server {
    struct logger log;
    struct config *conf;            /* holds a reference to the current snapshot; replaced on reload */
    char *conf_path;                /* file reread on SIGHUP, or NULL (built-in defaults); owned */
    char *ports_file;               /* where bound addresses are written, or NULL; owned */
    struct loop loop;               /* the event loop (one per node today) */
    struct router *router;          /* owned */
    struct store *store;            /* owned; NULL without [store] (store.h) */
    struct listener_list listeners; /* each holds the server's reference */
    struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
    bool draining;
    int exit_code;
    uint64_t next_client_id;
    uint32_t n_conns; /* open and closing connections, all loops */
    int64_t started_ms;
    struct budget budget;       /* max_memory (budget.h) */
    struct auth *auth;          /* logins ([auth] users_file), or NULL: none; owned */
    uint64_t undelivered_total; /* messages closed connections never got, while draining */
    uint32_t undelivered_conns; /* connections that lost any, while draining */
    /* Operations (docs/operations.md); each owned, NULL when off: */
    struct activation *activation; /* sockets systemd passed */
    struct notify *notify;         /* sd_notify and the watchdog */
    struct http *http;             /* the [http] monitoring endpoint */
    struct sysstats *sysstats;     /* $SYS.broker.stats */
    struct cluster *cluster;       /* the Redis backplane ([cluster]), or NULL standalone */
};

/*
 * Sets SRV up with CONF (ownership passes to the server, on failure too):
 * event loop, router, listeners, signals.  CONF_PATH (copied, may be NULL)
 * is reread on SIGHUP; PORTS_FILE (copied, may be NULL) receives "NAME
 * ADDRESS" lines once listeners are bound.  Returns 0, or -1 after logging
 * why.
 */
int server_init(struct server *srv, struct config *conf, const char *conf_path,
                const char *ports_file);

/* Runs the loop until a signal stops it. Returns the process exit code. */
int server_run(struct server *srv);

/* Frees everything server_init made. */
void server_fini(struct server *srv);

/*
 * Rereads the config file and applies it (SIGHUP).  Started on built-in
 * defaults, reads CONFIG_DEFAULT_PATH if it exists now.  0, or -1 if the
 * running configuration was kept.
 */
int server_reload(struct server *srv);

/* Stops accepting and closes every connection after a last flush (SIGTERM). */
void server_shutdown(struct server *srv);

/* A new connection from listener L (accept callback). Takes FD. */
void server_accept(struct server *srv, struct listener *l, evutil_socket_t fd,
                   const struct sockaddr *peer, socklen_t peerlen);

/* A connection is being freed, having lost N queued messages (for the shutdown summary). */
void server_conn_undelivered(struct server *srv, uint64_t n);

/* A connection was freed (its loop's reap job). */
void server_conn_freed(struct server *srv);

#endif
