/*
 * stats.c - one snapshot of the counters, three formats (see stats.h).
 *
 * The figures are described once, in two tables (broker-wide and per
 * listener): the MessagePack key, the Prometheus metric name, type and
 * help text, and where the value sits in the snapshot.  The formatters
 * walk the tables, so a figure added to a table shows up in /metrics and
 * $SYS.broker.stats alike, named consistently.
 *
 * Metric names follow the Prometheus conventions: a pigeon_ prefix, the
 * unit as a suffix (_bytes, _seconds), and _total on counters.
 */
#include "stats.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "conn.h"
#include "listener.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "xalloc.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct stats_field {
    const char *key;    /* in the MessagePack map */
    const char *metric; /* Prometheus name */
    const char *type;   /* "counter" or "gauge" */
    const char *help;
    size_t offset; /* of a uint64_t in the struct */
    bool millis;   /* a millisecond value shown in seconds by Prometheus */
};

#define SNAP(f)  offsetof(struct stats_snapshot, f)
#define LSNAP(f) offsetof(struct stats_listener, f)

static const struct stats_field broker_fields[] = {
    {"uptime_ms", "pigeon_uptime_seconds", "gauge", "Time since pigeond started.", SNAP(uptime_ms),
     true},
    {"connections", "pigeon_connections", "gauge", "Client connections open or closing.",
     SNAP(connections), false},
    {"connections_accepted", "pigeon_connections_accepted_total", "counter",
     "Client connections accepted.", SNAP(conns_accepted), false},
    {"connections_rejected", "pigeon_connections_rejected_total", "counter",
     "Client connections refused at max_connections (or select's FD_SETSIZE).",
     SNAP(conns_rejected), false},
    {"subscriptions", "pigeon_subscriptions", "gauge", "Subscriptions held by all clients.",
     SNAP(subscriptions), false},
    {"msgs_in", "pigeon_messages_in_total", "counter", "Messages published by clients and routed.",
     SNAP(msgs_in), false},
    {"bytes_in", "pigeon_messages_in_bytes_total", "counter",
     "Topic and payload bytes of the messages published.", SNAP(bytes_in), false},
    {"msgs_out", "pigeon_messages_out_total", "counter",
     "Message deliveries queued to subscribers.", SNAP(msgs_out), false},
    {"bytes_out", "pigeon_messages_out_bytes_total", "counter",
     "Bytes of the message deliveries queued to subscribers.", SNAP(bytes_out), false},
    {"retained_topics", "pigeon_retained_topics", "gauge", "Topics with a retained message.",
     SNAP(retained_topics), false},
    {"retained_bytes", "pigeon_retained_bytes", "gauge",
     "Bytes charged to retained messages (counted against max_retained).", SNAP(retained_bytes),
     false},
    {"slow_disconnects", "pigeon_slow_consumer_disconnects_total", "counter",
     "Connections closed as slow consumers (slow_consumer = disconnect).", SNAP(slow_disconnects),
     false},
    {"slow_dropped", "pigeon_slow_consumer_dropped_total", "counter",
     "Messages dropped for slow consumers (slow_consumer = drop).", SNAP(slow_dropped), false},
    {"protocol_errors", "pigeon_protocol_errors_total", "counter",
     "Connections closed for a malformed or oversized frame.", SNAP(protocol_errors), false},
    {"undelivered", "pigeon_undelivered_messages_total", "counter",
     "Messages queued for a connection that closed before they were written (each client is "
     "told the count in an error).",
     SNAP(undelivered), false},
    {"yields", "pigeon_connection_yields_total", "counter",
     "Times a connection stopped with work left, to let others go first (work per wake-up is "
     "bounded).",
     SNAP(yields), false},
    {"memory_budget", "pigeon_memory_budget_bytes", "gauge",
     "The broker-wide memory budget, max_memory (auto resolved).", SNAP(mem_budget), false},
    {"memory_used", "pigeon_memory_used_bytes", "gauge",
     "Memory counted against max_memory: output, input, retained, subscriptions.",
     SNAP(mem_used), false},
    {"memory_output", "pigeon_memory_output_bytes", "gauge",
     "Output queued for clients, with the bookkeeping of its frames.", SNAP(mem_output), false},
    {"memory_input", "pigeon_memory_input_bytes", "gauge",
     "Input kept between reads: frames still arriving or waiting their turn.", SNAP(mem_input),
     false},
    {"memory_subscriptions", "pigeon_memory_subscriptions_bytes", "gauge",
     "Subscriptions and their share of the index.", SNAP(mem_subscriptions), false},
    {"memory_store", "pigeon_memory_store_bytes", "gauge",
     "What the durable store holds in memory: indexes, caches, msg_ids, pending sets, batches.",
     SNAP(mem_store), false},
    {"memory_over", "pigeon_memory_over", "gauge", "1 while usage is above max_memory.",
     SNAP(mem_over), false},
    {"memory_times_over", "pigeon_memory_over_total", "counter",
     "Times usage went above max_memory.", SNAP(mem_times_over), false},
    {"memory_slow_chosen", "pigeon_memory_slow_consumers_total", "counter",
     "Connections the budget chose as slow consumers (the biggest queues).",
     SNAP(mem_slow_chosen), false},
    {"memory_held", "pigeon_memory_publishers_held", "gauge",
     "Publishing connections not being read while over max_memory.", SNAP(mem_held), false},
    {"memory_refused_frames", "pigeon_memory_refused_frames_total", "counter",
     "Partial frames refused (error 10) while over max_memory.", SNAP(mem_refused_frames), false},
    {"memory_refused_subs", "pigeon_memory_refused_subscriptions_total", "counter",
     "Subscriptions refused (error 10) while over max_memory.", SNAP(mem_refused_subs), false},
    {"logins_ok", "pigeon_logins_total", "counter", "Logins that succeeded.", SNAP(logins_ok),
     false},
    {"logins_failed", "pigeon_logins_failed_total", "counter",
     "Logins refused for their credentials (code 7).", SNAP(logins_failed), false},
    {"logins_required", "pigeon_logins_required_total", "counter",
     "Connections closed for a method before their login (code 6).", SNAP(logins_required),
     false},
    {"login_cache_hits", "pigeon_login_cache_hits_total", "counter",
     "Logins answered from the cache of recent ones, without a password hash check.",
     SNAP(login_cache_hits), false},
    {"tls_handshakes", "pigeon_tls_handshakes_total", "counter", "TLS handshakes completed.",
     SNAP(tls_handshakes), false},
    {"tls_handshakes_failed", "pigeon_tls_handshakes_failed_total", "counter",
     "TLS handshakes that failed (a bad certificate, a wrong CA, a client that left).",
     SNAP(tls_handshakes_failed), false},
    {"tls_handshakes_in_flight", "pigeon_tls_handshakes_in_flight", "gauge",
     "TLS handshakes under way.", SNAP(tls_handshakes_in_flight), false},
};

#define CSNAP(f) offsetof(struct cluster_stats, f)

/* The backplane's figures: only on a node of a cluster. */
static const struct stats_field cluster_fields[] = {
    {"up", "pigeon_cluster_up", "gauge", "1 while the backplane (Redis) is up, 0 while it is down.",
     CSNAP(up), false},
    {"nodes", "pigeon_cluster_nodes", "gauge", "Other nodes of the cluster this node knows.",
     CSNAP(nodes), false},
    {"remote_interest", "pigeon_cluster_remote_interest", "gauge",
     "Entries (node, pattern, queue group) in the remote-interest index.", CSNAP(remote_interest),
     false},
    {"msgs_out", "pigeon_cluster_messages_out_total", "counter",
     "Messages sent to other nodes through the backplane (one per message and node).",
     CSNAP(msgs_out), false},
    {"bytes_out", "pigeon_cluster_out_bytes_total", "counter",
     "Bytes of the batches sent to other nodes.", CSNAP(bytes_out), false},
    {"msgs_in", "pigeon_cluster_messages_in_total", "counter",
     "Messages received from other nodes and routed here.", CSNAP(msgs_in), false},
    {"bytes_in", "pigeon_cluster_in_bytes_total", "counter",
     "Topic and payload bytes of the messages received from other nodes.", CSNAP(bytes_in), false},
    {"dropped", "pigeon_cluster_dropped_total", "counter",
     "Messages for other nodes dropped: the backplane was down, or max_pending was reached.",
     CSNAP(dropped), false},
    {"unreceived", "pigeon_cluster_unreceived_total", "counter",
     "Messages sent to a node whose channel had no listener (it had just gone).", CSNAP(unreceived),
     false},
    {"reconnects", "pigeon_cluster_reconnects_total", "counter",
     "Times the backplane came back after being up.", CSNAP(reconnects), false},
    {"pending_bytes", "pigeon_cluster_pending_bytes", "gauge",
     "Bytes batched or sent to Redis and not yet acknowledged (bounded by max_pending).",
     CSNAP(pending_bytes), false},
    {"held", "pigeon_cluster_publishers_held_total", "counter",
     "Times a publisher stopped being read because Redis was behind (512 KiB waiting).",
     CSNAP(held), false},
    {"malformed", "pigeon_cluster_malformed_total", "counter",
     "Backplane messages that could not be read and were dropped.", CSNAP(malformed), false},
    {"retained_refused", "pigeon_cluster_retained_refused_total", "counter",
     "Retained values from other nodes that did not fit max_retained here.",
     CSNAP(retained_refused), false},
};

static const struct stats_field listener_fields[] = {
    {"accepted", "pigeon_listener_connections_accepted_total", "counter",
     "Client connections accepted, per listener.", LSNAP(accepted), false},
    {"active", "pigeon_listener_connections", "gauge",
     "Client connections open or closing, per listener.", LSNAP(active), false},
    {"msgs_in", "pigeon_listener_messages_in_total", "counter",
     "Messages published by the listener's clients.", LSNAP(msgs_in), false},
    {"bytes_read", "pigeon_listener_read_bytes_total", "counter",
     "Bytes read from the listener's clients, frames of every kind.", LSNAP(bytes_read), false},
    {"msgs_out", "pigeon_listener_messages_out_total", "counter",
     "Message deliveries queued to the listener's clients.", LSNAP(msgs_out), false},
    {"bytes_out", "pigeon_listener_messages_out_bytes_total", "counter",
     "Bytes of the message deliveries queued to the listener's clients.", LSNAP(bytes_out), false},
};

static uint64_t field_get(const void *base, const struct stats_field *f)
{
    uint64_t v;

    memcpy(&v, (const char *)base + f->offset, sizeof(v));
    return v;
}

/* ------------------------------------------------------------ gathering ---- */

/* The listener entry for L in S, or NULL (a listener a reload closed). */
static struct stats_listener *snapshot_listener(struct stats_snapshot *s, const struct listener *l)
{
    for (size_t i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].listener == l)
            return &s->listeners[i];
    return NULL;
}

static void gather_listeners(struct server *srv, struct stats_snapshot *s)
{
    struct listener *l;
    struct conn *c;
    size_t n = 0;

    TAILQ_FOREACH (l, &srv->listeners, link)
        n++;
    s->listeners = n > 0 ? xcalloc(n, sizeof(*s->listeners)) : NULL;
    TAILQ_FOREACH (l, &srv->listeners, link) {
        struct stats_listener *e = &s->listeners[s->n_listeners++];
        e->listener = l;
        e->name = listener_name(l);
        e->address = listener_address(l);
        e->accepted = l->accepted;
        e->active = l->active;
        e->msgs_in = l->closed_msgs_in;
        e->bytes_read = l->closed_bytes_in;
        e->msgs_out = l->closed_msgs_out;
        e->bytes_out = l->closed_bytes_out;
    }
    TAILQ_FOREACH (c, &srv->loop.conns, link) {
        struct stats_listener *e = snapshot_listener(s, c->listener);
        if (e == NULL)
            continue;
        e->msgs_in += c->stats.msgs_in;
        e->bytes_read += c->stats.bytes_in;
        e->msgs_out += c->stats.msgs_out;
        e->bytes_out += c->stats.bytes_out;
    }
}

static void gather_budget(struct server *srv, struct stats_snapshot *out)
{
    const struct budget *b = &srv->budget;
    struct budget_usage u;

    budget_usage(srv, &u);
    out->mem_budget = b->limit;
    out->mem_used = u.total;
    out->mem_output = u.output;
    out->mem_input = u.input;
    out->mem_subscriptions = u.subscriptions;
    out->mem_store = u.store;
    out->mem_over = b->over;
    out->mem_times_over = b->times_over;
    out->mem_slow_chosen = b->slow_chosen;
    out->mem_held = b->paused;
    out->mem_refused_frames = b->refused_frames;
    out->mem_refused_subs = b->refused_subs;
}

void stats_gather(struct server *srv, struct stats_snapshot *out)
{
    const struct loop_stats *ls = &srv->loop.stats;
    int64_t up = clock_now_ms() - srv->started_ms;

    memset(out, 0, sizeof(*out));
    out->version = PIGEON_VERSION;
    out->backend = loop_method(&srv->loop);
    out->uptime_ms = up > 0 ? (uint64_t)up : 0;
    out->connections = srv->n_conns;
    out->conns_accepted = ls->conns_accepted;
    out->conns_rejected = ls->conns_rejected;
    out->msgs_in = ls->msgs_in;
    out->bytes_in = ls->bytes_in;
    out->msgs_out = ls->msgs_out;
    out->bytes_out = ls->bytes_out;
    out->slow_disconnects = ls->slow_disconnects;
    out->slow_dropped = ls->slow_dropped;
    out->protocol_errors = ls->protocol_errors;
    out->undelivered = ls->undelivered;
    out->yields = ls->yields;
    gather_budget(srv, out);
    out->logins_ok = ls->auth_ok;
    out->logins_failed = ls->auth_failed;
    out->logins_required = ls->auth_refused;
    if (srv->auth != NULL) {
        struct auth_stats as;
        auth_get_stats(srv->auth, &as);
        out->login_cache_hits = as.cache_hits;
    }
    out->tls_handshakes = tls_handshakes_done();
    out->tls_handshakes_failed = tls_handshakes_failed();
    out->tls_handshakes_in_flight = tls_handshakes_in_flight();
    if (srv->router != NULL) {
        out->subscriptions = router_sub_count(srv->router);
        out->retained_topics = router_retained_count(srv->router);
        out->retained_bytes = router_retained_bytes(srv->router);
    }
    gather_listeners(srv, out);
    if (srv->cluster != NULL) {
        out->node = cluster_node(srv->cluster);
        cluster_stats(srv->cluster, &out->cluster);
    }
}

void stats_release(struct stats_snapshot *s)
{
    free(s->listeners);
    s->listeners = NULL;
    s->n_listeners = 0;
}

/* ----------------------------------------------------------- Prometheus ---- */

/* Appends V as a label value: backslash, double quote and newline escaped. */
static int metrics_label(struct evbuffer *out, const char *v)
{
    int rc = 0;

    for (const char *c = v; *c && rc == 0; c++) {
        if (*c == '\\')
            rc = evbuffer_add(out, "\\\\", 2);
        else if (*c == '"')
            rc = evbuffer_add(out, "\\\"", 2);
        else if (*c == '\n')
            rc = evbuffer_add(out, "\\n", 2);
        else
            rc = evbuffer_add(out, c, 1);
    }
    return rc;
}

static int metrics_header(struct evbuffer *out, const struct stats_field *f)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->metric, f->help, f->metric,
                               f->type) < 0
               ? -1
               : 0;
}

static int metrics_value(struct evbuffer *out, const struct stats_field *f, uint64_t v)
{
    int n = f->millis
                ? evbuffer_add_printf(out, " %" PRIu64 ".%03u\n", v / 1000, (unsigned)(v % 1000))
                : evbuffer_add_printf(out, " %" PRIu64 "\n", v);
    return n < 0 ? -1 : 0;
}

static int metrics_info(const struct stats_snapshot *s, struct evbuffer *out)
{
    int rc = evbuffer_add_printf(out, "# HELP pigeon_info The version of pigeond and its I/O "
                                      "backend, as labels.\n# TYPE pigeon_info gauge\n"
                                      "pigeon_info{version=\"") < 0;
    rc |= metrics_label(out, s->version) < 0;
    rc |= evbuffer_add_printf(out, "\",io_backend=\"") < 0;
    rc |= metrics_label(out, s->backend) < 0;
    if (s->node != NULL) {
        rc |= evbuffer_add_printf(out, "\",node=\"") < 0;
        rc |= metrics_label(out, s->node) < 0;
    }
    rc |= evbuffer_add_printf(out, "\"} 1\n") < 0;
    return rc ? -1 : 0;
}

static int metrics_listener_family(const struct stats_snapshot *s, const struct stats_field *f,
                                   struct evbuffer *out)
{
    int rc = metrics_header(out, f);

    for (size_t i = 0; i < s->n_listeners && rc == 0; i++) {
        const struct stats_listener *l = &s->listeners[i];
        rc |= evbuffer_add_printf(out, "%s{listener=\"", f->metric) < 0;
        rc |= metrics_label(out, l->name);
        rc |= evbuffer_add_printf(out, "\",address=\"") < 0;
        rc |= metrics_label(out, l->address);
        rc |= evbuffer_add(out, "\"}", 2);
        rc |= metrics_value(out, f, field_get(l, f));
    }
    return rc ? -1 : 0;
}

/* One sample per field of FIELDS, read from BASE. */
static int metrics_fields(const void *base, const struct stats_field *fields, size_t n,
                          struct evbuffer *out)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct stats_field *f = &fields[i];
        rc |= metrics_header(out, f);
        rc |= evbuffer_add(out, f->metric, strlen(f->metric));
        rc |= metrics_value(out, f, field_get(base, f));
    }
    return rc;
}

int stats_format_metrics(const struct stats_snapshot *s, struct evbuffer *out)
{
    int rc = metrics_info(s, out);

    rc |= metrics_fields(s, broker_fields, ARRAY_SIZE(broker_fields), out);
    if (s->node != NULL)
        rc |= metrics_fields(&s->cluster, cluster_fields, ARRAY_SIZE(cluster_fields), out);
    for (size_t i = 0; i < ARRAY_SIZE(listener_fields) && rc == 0; i++)
        rc |= metrics_listener_family(s, &listener_fields[i], out);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------- STATUS= ---- */

int stats_format_status(const struct stats_snapshot *s, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "%" PRIu64 " connections, %" PRIu64 " subscriptions, %" PRIu64
                    " msgs in, %" PRIu64 " msgs out, %" PRIu64 " retained",
                    s->connections, s->subscriptions, s->msgs_in, s->msgs_out, s->retained_topics);
}

/* ----------------------------------------------------------- MessagePack ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);

    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void pack_fields(msgpack_packer *pk, const void *base, const struct stats_field *fields,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pack_str(pk, fields[i].key);
        msgpack_pack_uint64(pk, field_get(base, &fields[i]));
    }
}

void stats_pack(const struct stats_snapshot *s, msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3 + ARRAY_SIZE(broker_fields) + (s->node != NULL ? 2 : 0));
    if (s->node != NULL) {
        pack_str(pk, "node");
        pack_str(pk, s->node);
        pack_str(pk, "cluster");
        msgpack_pack_map(pk, ARRAY_SIZE(cluster_fields));
        pack_fields(pk, &s->cluster, cluster_fields, ARRAY_SIZE(cluster_fields));
    }
    pack_str(pk, "version");
    pack_str(pk, s->version);
    pack_str(pk, "backend");
    pack_str(pk, s->backend);
    pack_fields(pk, s, broker_fields, ARRAY_SIZE(broker_fields));
    pack_str(pk, "listeners");
    msgpack_pack_map(pk, s->n_listeners);
    for (size_t i = 0; i < s->n_listeners; i++) {
        const struct stats_listener *l = &s->listeners[i];
        pack_str(pk, l->name);
        msgpack_pack_map(pk, 1 + ARRAY_SIZE(listener_fields));
        pack_str(pk, "address");
        pack_str(pk, l->address);
        pack_fields(pk, l, listener_fields, ARRAY_SIZE(listener_fields));
    }
}
