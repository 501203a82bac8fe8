/*
 * server.c - the server context and the daemon's life (see server.h).
 *
 * Layers, top-down: start-up helpers (descriptor limit, ports file,
 * listeners), the signal handlers, reload, shutdown, and the public
 * init/run/fini.
 *
 * Every signal enters through libevent (evsignal) into one of three
 * handlers that run as ordinary callbacks, so no work happens in signal
 * context.  SIGPIPE is ignored: a write to a vanished client is an error
 * return, handled where it happens.
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "access.h"
#include "activation.h"
#include "auth.h"
#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "encode.h"
#include "http.h"
#include "listener.h"
#include "notify.h"
#include "proto.h"
#include "router.h"
#include "runfile.h"
#include "store.h"
#include "sysstats.h"
#include "tls.h"
#include "xalloc.h"

/* Descriptors kept beyond max_connections: listeners, logs, slack. */
#define SERVER_FD_RESERVE 64

static void server_signal_cb(evutil_socket_t sig, short what, void *arg);
static void server_drain_timeout_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------ start-up */

/* Raises the descriptor limit toward max_connections, as far as allowed. */
static void server_raise_fd_limit(struct server *srv)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)srv->conf->max_connections + SERVER_FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = old;
    if (rl.rlim_cur < want)
        log_warning(&srv->log,
                    "open file limit is %llu, below max_connections %u + %d: "
                    "raise LimitNOFILE / ulimit -n",
                    (unsigned long long)rl.rlim_cur, srv->conf->max_connections, SERVER_FD_RESERVE);
}

/*
 * Writes "NAME ADDRESS" lines for the bound listeners, and "[http] ADDRESS",
 * to the ports file: replaced whole, through a new file that no planted
 * symlink can redirect (runfile.h).
 */
static void server_write_ports_file(struct server *srv)
{
    struct listener *l;
    char *text = NULL, why[4200];
    size_t len = 0;
    FILE *f;

    if (srv->ports_file == NULL)
        return;
    f = open_memstream(&text, &len);
    if (f == NULL)
        abort(); /* out of memory: the xalloc policy */
    TAILQ_FOREACH (l, &srv->listeners, link)
        fprintf(f, "%s %s\n", listener_name(l), listener_address(l));
    if (srv->http != NULL) /* brackets: no listener can have that name */
        fprintf(f, "[http] %s\n", http_address(srv->http));
    if (fclose(f) != 0)
        abort();
    if (runfile_write(srv->ports_file, text, len, why, sizeof(why)) < 0)
        log_error(&srv->log, "ports file: %s", why);
    free(text);
}

static int server_open_listener(struct server *srv, const struct config_listener *cl)
{
    struct listener *l;
    char err[256];

    if (listener_open(srv, cl, &l, err, sizeof(err)) < 0) {
        log_error(&srv->log, "listener %s (%s): %s", cl->name, cl->bind, err);
        return -1;
    }
    TAILQ_INSERT_TAIL(&srv->listeners, l, link);
    log_notice(&srv->log, "listener %s on %s", listener_name(l), listener_address(l));
    return 0;
}

static void server_close_listener(struct server *srv, struct listener *l)
{
    log_notice(&srv->log, "listener %s on %s closed", listener_name(l), listener_address(l));
    TAILQ_REMOVE(&srv->listeners, l, link);
    listener_close(l);
}

/* "default=127.0.0.1:7400 local=unix:/run/pigeon/pigeond.sock" into BUF (cut to fit). */
static void server_format_listeners(struct server *srv, char *buf, size_t len)
{
    struct listener *l;
    size_t used = 0;

    buf[0] = '\0';
    TAILQ_FOREACH (l, &srv->listeners, link) {
        int n = snprintf(buf + used, len - used, "%s%s=%s%s", used ? " " : "", listener_name(l),
                         listener_address(l), l->activated ? "(systemd)" : "");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static void server_log_summary(struct server *srv)
{
    const struct config *c = srv->conf;
    char listeners[512];

    server_format_listeners(srv, listeners, sizeof(listeners));
    log_notice(&srv->log,
               "pigeond %s started: io_backend %s, max_payload %u, max_connections %u, "
               "max_subscriptions %u (%u per connection), max_memory %llu%s, max_outbound %llu, "
               "slow_consumer %s, max_retained %llu, "
               "idle_timeout %u ms, config %s, drain_timeout %u ms, stats_interval %u ms, "
               "listeners %s, http %s, systemd notify %s, socket activation %zu fds",
               PIGEON_VERSION, loop_method(&srv->loop), c->max_payload, c->max_connections,
               c->max_subscriptions, c->max_subscriptions_per_connection,
               (unsigned long long)srv->budget.limit, srv->budget.is_auto ? " (auto)" : "",
               (unsigned long long)c->max_outbound, config_slow_policy_name(c->slow_consumer),
               (unsigned long long)c->max_retained, c->idle_timeout_ms,
               c->path != NULL ? c->path : "(built-in defaults)", c->drain_timeout_ms,
               c->stats_interval_ms, listeners, srv->http != NULL ? http_address(srv->http) : "off",
               notify_enabled(srv->notify) ? "on" : "off", activation_count(srv->activation));
}

/* ------------------------------------------------------------- signals */

static int server_add_signals(struct server *srv)
{
    struct event_base *base = srv->loop.base;

    signal(SIGPIPE, SIG_IGN);
    /* A file past RLIMIT_FSIZE is a write error (EFBIG) the store reports, not a kill. */
    signal(SIGXFSZ, SIG_IGN);
    srv->sig_term = evsignal_new(base, SIGTERM, server_signal_cb, srv);
    srv->sig_int = evsignal_new(base, SIGINT, server_signal_cb, srv);
    srv->sig_hup = evsignal_new(base, SIGHUP, server_signal_cb, srv);
    if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
        event_add(srv->sig_term, NULL) < 0 || event_add(srv->sig_int, NULL) < 0 ||
        event_add(srv->sig_hup, NULL) < 0) {
        log_error(&srv->log, "cannot install signal handlers");
        return -1;
    }
    return 0;
}

static void server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;

    if (sig == SIGHUP) {
        notify_reloading(srv->notify);
        server_reload(srv);
        notify_ready(srv->notify);
        return;
    }
    if (srv->draining) {
        log_notice(&srv->log, "second %s: stopping now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        event_base_loopbreak(srv->loop.base);
        return;
    }
    log_notice(&srv->log, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(srv);
}

/* -------------------------------------------------------------- reload */

/*
 * True when the open listener L is the one CL configures: same socket, and
 * for a TCP port 0 the same name too, since each port-0 listener takes a
 * port of its own (two of them on one host are two sockets, not one).
 */
static bool listener_conf_matches(const struct config_listener *cl, const struct listener *l)
{
    if (!config_listener_same(cl, &l->conf))
        return false;
    return cl->kind != CONFIG_LISTEN_TCP || cl->port != 0 || strcmp(cl->name, l->conf.name) == 0;
}

/* The listener NEW configures that L already is, or NULL. */
static const struct config_listener *find_listener_conf(const struct config *conf,
                                                        const struct listener *l)
{
    for (size_t i = 0; i < conf->n_listeners; i++)
        if (listener_conf_matches(&conf->listeners[i], l))
            return &conf->listeners[i];
    return NULL;
}

static bool listener_is_open(struct server *srv, const struct config_listener *cl)
{
    struct listener *l;
    TAILQ_FOREACH (l, &srv->listeners, link)
        if (listener_conf_matches(cl, l))
            return true;
    return false;
}

/* Closes the listeners NEW drops, then opens the ones it adds. */
static void server_reload_listeners(struct server *srv, const struct config *next)
{
    struct listener *l, *tmp;

    for (l = TAILQ_FIRST(&srv->listeners); l != NULL; l = tmp) {
        tmp = TAILQ_NEXT(l, link);
        const struct config_listener *keep = find_listener_conf(next, l);
        char err[512];
        if (keep == NULL)
            server_close_listener(srv, l);
        else if (listener_apply(l, keep, err, sizeof(err)) < 0)
            log_error(&srv->log, "SIGHUP: listener %s: %s; it keeps its TLS settings", keep->name,
                      err);
    }
    for (size_t i = 0; i < next->n_listeners; i++)
        if (!listener_is_open(srv, &next->listeners[i]))
            server_open_listener(srv, &next->listeners[i]); /* logged; the rest goes on */
}

/*
 * Logins follow CONF's [auth] users_file: the authenticator is made, its
 * file read again (a policy that fails keeps the old one, logged by
 * auth_reload), or, with no file any more, freed.  Then every session gets
 * its user's new permissions and its listener's new rule.  0, or -1 when a
 * first users file could not be read (at start: do not start).
 */
static int server_apply_auth(struct server *srv, const struct config *conf)
{
    struct config_error err;
    const char *path = conf->auth.users_file;
    struct conn *c;

    if (path != NULL && srv->auth == NULL) {
        if (auth_new(srv->loop.base, &srv->log, path, NULL, &srv->auth, &err) < 0) {
            log_error(&srv->log, "users: %s%s%.0d: %s", err.file, err.line ? ":" : "", err.line,
                      err.reason);
            return -1;
        }
        log_notice(&srv->log, "users: logins required (users file %s)", path);
    } else if (path != NULL) {
        auth_reload(srv->auth, path, NULL); /* logged either way */
    } else if (srv->auth != NULL) {
        log_notice(&srv->log, "users: no users_file any more: logins are off");
    }
    TAILQ_FOREACH (c, &srv->loop.conns, link)
        access_refresh(&c->sess, path != NULL ? srv->auth : NULL,
                       srv->auth != NULL && path != NULL &&
                           config_listener_authenticates(conf, &c->listener->conf));
    if (path == NULL && srv->auth != NULL) {
        auth_free(srv->auth); /* no session waits on it now */
        srv->auth = NULL;
    }
    return 0;
}

/* Logs one difference config_diff found: "SIGHUP: max_outbound 64mb -> 8mb". */
static void server_log_change_cb(void *arg, const char *section, const char *key,
                                 const char *old_value, const char *new_value)
{
    struct server *srv = arg;
    bool broker = strcmp(section, "broker") == 0;

    if (strcmp(section, "cluster") == 0) /* the link is made once (cluster.h) */
        log_warning(&srv->log, "SIGHUP: [cluster] %s takes effect at the next start", key);
    else if (old_value == NULL)
        log_notice(&srv->log, "SIGHUP: [%s] added: %s %s", section, key, new_value);
    else if (new_value == NULL)
        log_notice(&srv->log, "SIGHUP: [%s] removed (%s %s)", section, key, old_value);
    else
        log_notice(&srv->log, "SIGHUP: %s%s%s%s %s -> %s", broker ? "" : "[", broker ? "" : section,
                   broker ? "" : "] ", key, *old_value ? old_value : "(none)",
                   *new_value ? new_value : "(none)");
}

/* Reads the file to reload into *NEXT: 0, or -1 after logging why (the running config stays). */
static int server_reload_read(struct server *srv, struct config **next)
{
    struct config_error err;

    if (config_load_file(srv->conf_path, next, &err) == 0)
        return 0;
    if (err.line > 0)
        log_error(&srv->log, "SIGHUP: %s:%d: %s; keeping the running configuration", err.file,
                  err.line, err.reason);
    else
        log_error(&srv->log, "SIGHUP: %s: %s; keeping the running configuration", err.file,
                  err.reason);
    return -1;
}

int server_reload(struct server *srv)
{
    struct config *next;

    if (srv->conf_path == NULL) {
        /* Started without -c and without the default file: read it if it
         * has appeared since, and from then on as if it had been there. */
        if (access(CONFIG_DEFAULT_PATH, F_OK) != 0) {
            log_notice(&srv->log, "SIGHUP: no config file at %s; keeping the built-in defaults",
                       CONFIG_DEFAULT_PATH);
            return 0;
        }
        log_notice(&srv->log, "SIGHUP: %s has appeared; reading it", CONFIG_DEFAULT_PATH);
        srv->conf_path = xstrdup(CONFIG_DEFAULT_PATH);
    }
    if (server_reload_read(srv, &next) < 0)
        return -1;
    /* pigeond -p/-b: the command line's listeners stay, whatever the file says. */
    config_keep_arg_listeners(next, srv->conf);
    if (next->io_backend != srv->conf->io_backend)
        log_warning(&srv->log, "SIGHUP: io_backend %s takes effect at the next start",
                    config_io_backend_name(next->io_backend));
    struct config *old = srv->conf;
    srv->conf = next; /* the file's reference, now the server's */
    srv->log.level = next->log_level;
    if (!srv->draining) {
        server_reload_listeners(srv, next);
        activation_report_unmatched(srv->activation, next, &srv->log, LOG_LEVEL_WARNING);
    }
    loop_set_config(&srv->loop, next);
    budget_apply_config(srv);
    if (server_apply_auth(srv, next) < 0)
        log_error(&srv->log, "SIGHUP: logins stay off until the users file can be read");
    if (srv->store != NULL)
        store_apply_config(srv->store, next);
    else if (next->store.enabled)
        log_warning(&srv->log, "SIGHUP: [store] takes effect at the next start");
    http_apply_config(srv, &srv->http); /* logged; the rest of the reload stands */
    sysstats_apply_config(srv->sysstats);
    server_write_ports_file(srv);
    /* Logged once applied, so that whoever reads the log sees it in force. */
    size_t changes = config_diff(old, next, server_log_change_cb, srv);
    config_unref(old);
    log_notice(&srv->log, "SIGHUP: configuration reloaded from %s (%zu setting%s changed%s)",
               srv->conf_path, changes, changes == 1 ? "" : "s",
               next->listeners_from_args ? "; listeners from the command line kept" : "");
    return 0;
}

/* ------------------------------------------------------------ shutdown */

void server_shutdown(struct server *srv)
{
    struct listener *l;
    struct conn *c;

    if (srv->draining)
        return;
    srv->draining = true;
    notify_stopping(srv->notify);
    store_drain(srv->store);        /* what was read is answered before the connections close */
    cluster_shutdown(srv->cluster); /* the other nodes drop this one's interest now */
    while ((l = TAILQ_FIRST(&srv->listeners)) != NULL)
        server_close_listener(srv, l);
    /* conn_close never frees, so walking the list while closing is safe. */
    TAILQ_FOREACH (c, &srv->loop.conns, link)
        conn_close(c, "server shutting down", 0, NULL);
    if (srv->n_conns == 0) {
        event_base_loopexit(srv->loop.base, NULL);
        return;
    }
    /* Each connection has drain_timeout to flush, then CONN_GRACE_MS to read
     * what it was told of the rest; this is the backstop. */
    uint32_t ms = srv->conf->drain_timeout_ms + CONN_GRACE_MS + 1000;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    srv->drain_timer = evtimer_new(srv->loop.base, server_drain_timeout_cb, srv);
    if (srv->drain_timer == NULL || evtimer_add(srv->drain_timer, &tv) < 0)
        event_base_loopexit(srv->loop.base, NULL);
}

static void server_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;

    log_warning(&srv->log, "drain timeout: %u connections still flushing, closing them",
                srv->n_conns);
    event_base_loopexit(srv->loop.base, NULL);
}

void server_conn_undelivered(struct server *srv, uint64_t n)
{
    if (!srv->draining || n == 0)
        return;
    srv->undelivered_total += n;
    srv->undelivered_conns++;
}

void server_conn_freed(struct server *srv)
{
    srv->n_conns--;
    fdlimit_changed(&srv->loop.fds); /* a descriptor may be free for a listener again */
    if (srv->draining && srv->n_conns == 0)
        event_base_loopexit(srv->loop.base, NULL);
}

/* -------------------------------------------------------------- accept */

/*
 * Refuses FD with error 10, naming LIMIT to the client; the warning says
 * "refused a connection: " then WHY.
 */
static void server_refuse(struct server *srv, evutil_socket_t fd, const char *limit,
                          const char *why)
{
    msgpack_sbuffer *buf = loop_frame_buf(&srv->loop);

    encode_error_notification(buf, PROTO_ERR_LIMIT, limit);
    if (write(fd, buf->data, buf->size) < 0) {
        /* best effort: the socket is new and empty, and closed next */
    }
    evutil_closesocket(fd);
    srv->loop.stats.conns_rejected++;
    loop_warn(&srv->loop, LOOP_WARN_ACCEPT, "refused a connection: %s", why);
}

void server_accept(struct server *srv, struct listener *l, evutil_socket_t fd,
                   const struct sockaddr *peer, socklen_t peerlen)
{
    char why[128];

    if (srv->draining) {
        evutil_closesocket(fd);
        return;
    }
    if (srv->n_conns >= srv->conf->max_connections) {
        snprintf(why, sizeof(why), "max_connections %u reached", srv->conf->max_connections);
        server_refuse(srv, fd, "too many connections (max_connections)", why);
        return;
    }
    /* libevent's select backend cannot watch it: glibc aborts in FD_SET. */
    if (!fdlimit_ok(&srv->loop.fds, fd)) {
        snprintf(why, sizeof(why), "io_backend select: descriptor %d is beyond FD_SETSIZE %d",
                 (int)fd, fdlimit_ceiling(&srv->loop.fds));
        server_refuse(srv, fd, "too many connections (io_backend select)", why);
        return;
    }
    struct transport *tp = NULL;
    if (l->tls != NULL) {
        if (tls_handshakes_in_flight() >= TLS_MAX_IN_FLIGHT) {
            snprintf(why, sizeof(why), "%d TLS handshakes under way", TLS_MAX_IN_FLIGHT);
            evutil_closesocket(fd); /* no error frame: the client speaks TLS */
            srv->loop.stats.conns_rejected++;
            loop_warn(&srv->loop, LOOP_WARN_ACCEPT, "refused a connection: %s", why);
            return;
        }
        if ((tp = tls_transport_new(l->tls, fd, peer, peerlen)) == NULL) {
            log_error(&srv->log, "listener %s: cannot start a TLS session", listener_name(l));
            return;
        }
    }
    struct conn *c = conn_new(&srv->loop, l, fd, peer, peerlen, tp);
    if (c == NULL)
        log_error(&srv->log, "cannot set up a connection from listener %s", listener_name(l));
    else
        c->sess.locked = srv->auth != NULL && config_listener_authenticates(srv->conf, &l->conf);
    /* That may have taken the last descriptor a listener can use. */
    fdlimit_changed(&srv->loop.fds);
}

/* ---------------------------------------------------------- public API */

int server_init(struct server *srv, struct config *conf, const char *conf_path,
                const char *ports_file)
{
    const char *why;

    memset(srv, 0, sizeof(*srv));
    srv->conf = conf;
    srv->conf_path = conf_path != NULL ? xstrdup(conf_path) : NULL;
    srv->ports_file = ports_file != NULL ? xstrdup(ports_file) : NULL;
    srv->started_ms = clock_now_ms();
    TAILQ_INIT(&srv->listeners);
    log_init(&srv->log, stderr, conf->log_level);
    server_raise_fd_limit(srv);
    if (loop_init(&srv->loop, srv, &srv->log, conf, &why) < 0) {
        log_error(&srv->log, "io_backend %s: %s", config_io_backend_name(conf->io_backend), why);
        return -1;
    }
    srv->router = router_new(srv);
    if (store_open(srv, conf, &srv->store) < 0)
        return -1;
    if (budget_init(srv) < 0 || server_apply_auth(srv, conf) < 0)
        return -1;
    if (conf->cluster.enabled && conf->cluster.redis != NULL) {
        if (cluster_new(srv, &conf->cluster, &srv->cluster) < 0)
            return -1;
        router_set_cluster(srv->router, srv->cluster);
        if (srv->store != NULL)
            store_hold_interest(srv->store);
    } else if (conf->cluster.enabled) {
        log_notice(&srv->log, "[cluster] sets no redis: running standalone");
    }
    if (activation_new(&srv->log, &srv->activation) < 0)
        return -1;
    for (size_t i = 0; i < conf->n_listeners; i++)
        if (server_open_listener(srv, &conf->listeners[i]) < 0)
            return -1;
    if (activation_report_unmatched(srv->activation, conf, &srv->log, LOG_LEVEL_ERROR) > 0)
        return -1;
    if (server_add_signals(srv) < 0 || http_apply_config(srv, &srv->http) < 0 ||
        (srv->sysstats = sysstats_new(srv)) == NULL || (srv->notify = notify_new(srv)) == NULL)
        return -1;
    server_write_ports_file(srv);
    server_log_summary(srv);
    notify_ready(srv->notify);
    return 0;
}

int server_run(struct server *srv)
{
    struct conn *c;

    if (event_base_dispatch(srv->loop.base) < 0) {
        log_error(&srv->log, "event loop failed");
        return 1;
    }
    /* Those the backstop cut off: counted before the summary. */
    while ((c = TAILQ_FIRST(&srv->loop.conns)) != NULL)
        conn_destroy(c);
    if (srv->undelivered_total > 0)
        log_warning(&srv->log, "stopped: %llu queued messages were not delivered, to %u clients",
                    (unsigned long long)srv->undelivered_total, srv->undelivered_conns);
    else
        log_notice(&srv->log, "stopped: every queued message was delivered");
    return srv->exit_code;
}

void server_fini(struct server *srv)
{
    struct listener *l;
    struct conn *c;

    while ((l = TAILQ_FIRST(&srv->listeners)) != NULL)
        server_close_listener(srv, l);
    while ((c = TAILQ_FIRST(&srv->loop.conns)) != NULL)
        conn_destroy(c);
    budget_fini(srv);
    if (srv->router != NULL)
        router_set_cluster(srv->router, NULL);
    cluster_free(srv->cluster);
    auth_free(srv->auth);
    notify_free(srv->notify);
    sysstats_free(srv->sysstats);
    http_free(srv->http);
    activation_free(srv->activation);
    store_close(srv->store);
    srv->store = NULL;
    router_free(srv->router);
    if (srv->drain_timer != NULL)
        event_free(srv->drain_timer);
    if (srv->sig_term != NULL)
        event_free(srv->sig_term);
    if (srv->sig_int != NULL)
        event_free(srv->sig_int);
    if (srv->sig_hup != NULL)
        event_free(srv->sig_hup);
    loop_fini(&srv->loop);
    config_unref(srv->conf);
    free(srv->conf_path);
    if (srv->ports_file != NULL)
        unlink(srv->ports_file);
    free(srv->ports_file);
}
