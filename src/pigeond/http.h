/*
 * http.h - the monitoring endpoint: a small HTTP server on libevent's evhttp.
 *
 * Off unless the config has an [http] section.  It runs on the broker's own
 * event_base, so a request sees the counters as they are between two
 * callbacks, with no locking; every handler is O(connections) at worst and
 * paged, and none is reachable from the message path.
 *
 *   GET /               the list of endpoints (text)
 *   GET /healthz        200 "ok", or 503 "draining" once shutdown began
 *   GET /metrics        the Prometheus text format (stats_format_metrics)
 *   GET /connections    JSON: one object per client connection
 *   GET /subscriptions  JSON: one object per subscription
 *
 * The two JSON lists are paged with ?offset=N&limit=M (limit 1 to 1000,
 * default 100) and say {"total", "offset", "limit", "next_offset", ...},
 * next_offset null on the last page.  HEAD works wherever GET does; other
 * methods get 405, other paths 404, a malformed query 400.
 *
 * Bounds: request headers at most HTTP_MAX_HEADERS bytes, no body, the
 * config's timeout to read a request or write a response, header_timeout
 * for a whole request to arrive however slowly its bytes trickle (from the
 * accept, or from the previous response), at most max_clients connections
 * at once (past it, accepting pauses until one closes: see http.c for how,
 * on libevent 2.1), and at most max_clients_per_address from one client
 * address (an IPv6 /64), past which a connection gets a 503 and is closed.
 * Under io_backend select, accepting also pauses while no descriptor below
 * FD_SETSIZE is free.
 */
#ifndef PIGEON_HTTP_H
#define PIGEON_HTTP_H

struct server;
struct http;

#define HTTP_MAX_HEADERS  8192
#define HTTP_PAGE_DEFAULT 100
#define HTTP_PAGE_MAX     1000

/*
 * Makes *H match SRV->conf->http: opens the endpoint when the section is
 * new, closes it when it is gone, reopens it when its bind changed, and
 * applies max_clients, max_clients_per_address, timeout and header_timeout
 * in place otherwise.  *H is NULL while the
 * endpoint is off; it is owned by the caller (free with http_free).
 * Returns 0, or -1 after logging why the endpoint could not be opened
 * (then *H is NULL).
 */
int http_apply_config(struct server *srv, struct http **h);

/* Closes every HTTP connection and the socket, and frees H.  NULL is fine. */
void http_free(struct http *h);

/* The address bound, "127.0.0.1:7480" or "[::1]:7480".  Borrowed from H. */
const char *http_address(const struct http *h);

#endif
