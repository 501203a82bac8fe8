/*
 * listener.h - a listening socket, TCP or Unix, and its accept loop.
 *
 * Each [listener NAME] section becomes one listener: a socket bound and
 * listening, wrapped in an evconnlistener whose callback hands every
 * accepted socket to the server.  A listener knows the address it really
 * bound (port 0 picks one), removes a stale Unix socket file before binding
 * and its own file when it closes, and stops accepting for a moment when
 * the process runs out of file descriptors instead of spinning.
 *
 * A listener is referenced by the server while it is open and by each
 * connection it accepted, so a listener removed by SIGHUP stays alive, no
 * longer accepting, until its last connection is gone.
 *
 * Under socket activation (activation.h) a listener whose socket systemd
 * passed adopts a duplicate of that descriptor instead of binding: it
 * neither creates nor removes a Unix socket file (systemd owns it), and
 * closing it leaves systemd's descriptor, kept by the activation set, open
 * for a later reload to adopt again.
 */
#ifndef PIGEON_LISTENER_H
#define PIGEON_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "config.h"

struct conn_stats;
struct server;
struct tls_ctx;

struct listener {
    TAILQ_ENTRY(listener) link;  /* in server->listeners while open */
    struct server *srv;          /* borrowed */
    struct config_listener conf; /* a deep copy; owned */
    struct evconnlistener *evl;  /* owned; NULL once closed */
    struct event *retry_ev;      /* re-enables accepting after EMFILE */
    char address[128];           /* what was bound: "127.0.0.1:7400", "unix:/run/p.sock" */
    dev_t sock_dev;              /* the Unix socket file we made, to remove only ours */
    ino_t sock_ino;
    uint32_t refs;
    struct tls_ctx *tls; /* TLS on this listener (conf.tls_cert), or NULL; holds a reference */
    bool activated;      /* the socket came from systemd */
    uint64_t accepted; /* connections accepted */
    uint64_t active;   /* its connections not yet freed */
    /* Totals of its connections already freed (stats.h adds the open ones). */
    uint64_t closed_msgs_in, closed_bytes_in, closed_msgs_out, closed_bytes_out;
};

/*
 * Binds and listens as CL says (CL is copied), or adopts the socket systemd
 * passed for it (see the top).  Returns 0 and *OUT (holding one reference,
 * the server's), or -1 with ERR filled.
 */
int listener_open(struct server *srv, const struct config_listener *cl, struct listener **out,
                  char *err, size_t errlen);

/* Stops accepting, closes the socket, removes its Unix socket file, and
 * drops the server's reference. */
void listener_close(struct listener *l);

/*
 * A reload keeps L (its socket is the one CL binds): takes CL's other
 * settings, and reads its TLS files again, so that a renewed certificate
 * serves new connections (those open keep theirs).  0, or -1 with ERR (L
 * keeps what it had).
 */
int listener_apply(struct listener *l, const struct config_listener *cl, char *err, size_t errlen);

/* A connection of L is being freed: adds its figures to L's closed totals. */
void listener_conn_gone(struct listener *l, const struct conn_stats *s);

struct listener *listener_ref(struct listener *l);
void listener_unref(struct listener *l); /* frees with the last reference */

const char *listener_name(const struct listener *l);
const char *listener_address(const struct listener *l);

#endif
