/*
 * cluster_retained.c - retained values kept cluster-wide (see
 * cluster_impl.h and docs/scale-out.md).
 *
 * The cluster's store is one Redis hash, topic -> record.  Every change
 * goes through one script that numbers it (INCR), applies it to the hash
 * and publishes it, with its number, on the retained channel, atomically:
 * so every node applies every change in one order, Redis's, and they all
 * end with the values the hash has.  The node that made a change keeps it
 * at once (router.c) and applies its own echo as a no-op.
 *
 * A node that starts, or whose link comes back, loads the hash and the
 * number of the last change in one transaction, holds the changes that
 * arrive meanwhile and applies those numbered after the load.  Values it
 * holds that the hash does not have were cleared while it was away: it
 * clears them too; unless the number went back (Redis restarted empty, or
 * from an old copy), in which case the store was lost, and the node stores
 * its values again.  Changes made here while the link was down wait in
 * the outbox (the last per topic, within max_pending) and are sent after
 * the load.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bpwire.h"
#include "cluster_impl.h"
#include "encode.h"
#include "loop.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

#define CLUSTER_RETAIN_BUF (8 * 1024 * 1024) /* bytes of changes held while loading */

/* Numbers a retained change, applies it to the hash and broadcasts it: one order for all. */
static const char RETAIN_SCRIPT[] =
    "local seq = redis.call('INCR', KEYS[2])\n"
    "if ARGV[3] == '1' then redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "else redis.call('HSET', KEYS[1], ARGV[2], ARGV[4]) end\n"
    "redis.call('PUBLISH', ARGV[1], cmsgpack.pack(seq) .. ARGV[4])\n"
    "return seq\n";

/* A retained change made while the link was down, sent once it is back. */
struct outboxed {
    char *topic; /* owned; the map key */
    size_t tlen;
    size_t len;
    uint8_t record[];
};

/* ------------------------------------------------------- one change ---- */

static uint64_t reply_uint(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

/* Stores REC (a retained record from Redis) here, without delivering it. */
static void retained_apply(struct cluster *c, const struct bpwire_record *rec)
{
    int rc = router_store_retained(c->srv->router, c->srv->conf, rec->topic, rec->topic_len,
                                   rec->payload_nil ? NULL : rec->body, rec->body_len, rec->opts,
                                   rec->opts_len);
    if (rc < 0) {
        c->st.retained_refused++;
        loop_warn(&c->srv->loop, LOOP_WARN_MEMORY,
                  "backplane: a retained value from another node does not fit max_retained");
    }
}

static struct outboxed *outboxed_new(const char *topic, size_t tlen, const void *record, size_t len)
{
    struct outboxed *o = xmalloc(sizeof(*o) + len);

    o->topic = xstrndup(topic, tlen);
    o->tlen = tlen;
    o->len = len;
    memcpy(o->record, record, len);
    return o;
}

static void outboxed_free(struct outboxed *o)
{
    free(o->topic);
    free(o);
}

static void outbox_put(struct cluster *c, const char *topic, size_t tlen, const void *record,
                       size_t len);

/*
 * The reply to a change sent (PRIV, its copy): a change the link lost
 * before Redis answered goes back to the outbox, to be sent again once the
 * link is back, unless a later change of the topic waits there already.
 */
static void retained_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    struct outboxed *o = priv;

    if (r == NULL && hmap_get(&c->outbox, o->topic, o->tlen) == NULL)
        outbox_put(c, o->topic, o->tlen, o->record, o->len);
    else if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_warning(c->log, "backplane: storing a retained value failed: %s", r->str);
    outboxed_free(o);
}

/* Sends RECORD (LEN bytes) for TOPIC to the cluster's store: the script numbers it and broadcasts
 * it. */
static void retained_send(struct cluster *c, const char *topic, size_t tlen, bool clear,
                          const void *record, size_t len)
{
    const char *argv[] = {"EVAL",        RETAIN_SCRIPT,     "2",
                          c->k_retained, c->k_retained_seq, c->ch_retained,
                          topic,         clear ? "1" : "0", record};
    size_t lens[] = {4,
                     sizeof(RETAIN_SCRIPT) - 1,
                     1,
                     strlen(c->k_retained),
                     strlen(c->k_retained_seq),
                     strlen(c->ch_retained),
                     tlen,
                     1,
                     len};
    struct outboxed *o = outboxed_new(topic, tlen, record, len);
    if (redislink_command(c->link, retained_reply_cb, o, 9, argv, lens) < 0) {
        outbox_put(c, topic, tlen, record, len);
        outboxed_free(o);
    }
}

/* Keeps a retained change made while the link is down, for when it is back (the last per topic). */
static void outbox_put(struct cluster *c, const char *topic, size_t tlen, const void *record,
                       size_t len)
{
    struct outboxed *o = hmap_remove(&c->outbox, topic, tlen);

    if (o != NULL) {
        c->outbox_bytes -= o->len + o->tlen;
        outboxed_free(o);
    }
    if (c->outbox_bytes + len + tlen > c->max_pending) {
        c->st.dropped++;
        return;
    }
    o = outboxed_new(topic, tlen, record, len);
    hmap_put(&c->outbox, o->topic, o->tlen, o);
    c->outbox_bytes += len + tlen;
}

/* Sends what the outbox holds (the load is done, so these come after it) and empties it. */
static void outbox_flush(struct cluster *c)
{
    struct hmap sending = c->outbox; /* a send that fails puts into a fresh outbox */
    size_t pos = 0;
    struct outboxed *o;
    struct bpwire_record rec;
    const char *why;

    hmap_init(&c->outbox);
    c->outbox_bytes = 0;
    while ((o = hmap_next(&sending, &pos, NULL, NULL)) != NULL) {
        if (bpwire_retained_value_read(o->record, o->len, UINT32_MAX, &rec, &why) == 0)
            retained_send(c, o->topic, o->tlen, rec.payload_nil, o->record, o->len);
        outboxed_free(o);
    }
    hmap_release(&sending);
}

/* A retained publication here: to the cluster's store, now or once the link is back. */
void cluster_retained_publish(struct cluster *c, const struct router_msg *m)
{
    msgpack_sbuffer_clear(&c->scratch);
    size_t olen = m->payload_nil ? 0
                                 : encode_msg_opts(&c->scratch, m->reply_to, m->reply_to_len,
                                                   m->headers, true);
    size_t at = c->scratch.size;
    bpwire_record_write(&c->scratch, BPWIRE_RETAINED, m->body, m->body_len,
                        (const uint8_t *)c->scratch.data, olen, NULL, 0);
    const char *record = c->scratch.data + at;
    size_t len = c->scratch.size - at;
    if (c->up)
        retained_send(c, m->topic, m->topic_len, m->payload_nil, record, len);
    else
        outbox_put(c, m->topic, m->topic_len, record, len);
}

void cluster_retained_message_cb(void *arg, const char *data, size_t len, void *priv)
{
    struct cluster *c = arg;
    struct bpwire_record rec;
    uint64_t seq;
    const char *why;

    if (bpwire_retained_read(data, len, cluster_max_record(c), &seq, &rec, &why) < 0) {
        cluster_malformed(c, "retained value", why);
        return;
    }
    if (!c->retained_loading) {
        retained_apply(c, &rec);
        c->retained_seq = seq;
        return;
    }
    if (c->retained_held_bytes + len > CLUSTER_RETAIN_BUF) {
        cluster_held_clear(&c->retained_held, &c->retained_held_bytes);
        c->retained_reload = true;
        return;
    }
    cluster_held_push(&c->retained_held, &c->retained_held_bytes, seq, data, len);
}

/* ----------------------------------------------------------- loading ---- */

struct sweep {
    struct hmap *loaded; /* topics the load set */
    struct hmap *outbox;
    char **victims;
    size_t n, cap;
};

static void sweep_cb(const char *topic, size_t len, void *arg)
{
    struct sweep *sw = arg;

    if (hmap_get(sw->loaded, topic, len) != NULL || hmap_get(sw->outbox, topic, len) != NULL)
        return;
    if (sw->n == sw->cap) {
        sw->cap = sw->cap ? 2 * sw->cap : 16;
        sw->victims = xrealloc(sw->victims, sw->cap * sizeof(*sw->victims));
    }
    sw->victims[sw->n++] = xstrndup(topic, len);
}

/* Puts TOPIC's value here into the outbox, to be sent to the cluster's store. */
static void retained_resend(struct cluster *c, const char *topic, size_t tlen)
{
    const uint8_t *body, *opts;
    size_t blen, olen;

    if (!router_retained_get(c->srv->router, topic, tlen, &body, &blen, &opts, &olen))
        return;
    msgpack_sbuffer_clear(&c->scratch);
    bpwire_record_write(&c->scratch, BPWIRE_RETAINED, body, blen, opts, olen, NULL, 0);
    outbox_put(c, topic, tlen, c->scratch.data, c->scratch.size);
}

/*
 * The values held here that the cluster's store does not have (LOADED,
 * and not in the outbox either): cleared, when the store is current (they
 * were cleared while this node was away); sent to it again, when Redis
 * lost the store (RESEED: restarted empty, or restored from an old copy).
 */
static void retained_sweep(struct cluster *c, struct hmap *loaded, bool reseed)
{
    struct sweep sw = {.loaded = loaded, .outbox = &c->outbox};

    router_retained_foreach(c->srv->router, sweep_cb, &sw);
    for (size_t i = 0; i < sw.n; i++) {
        size_t len = strlen(sw.victims[i]);
        if (reseed)
            retained_resend(c, sw.victims[i], len);
        else
            router_store_retained(c->srv->router, c->srv->conf, sw.victims[i], len, NULL, 0, NULL,
                                  0);
        free(sw.victims[i]);
    }
    free(sw.victims);
}

/* Applies the changes that came during the load and are newer than it (SEQ). */
static void retained_replay(struct cluster *c, uint64_t seq)
{
    struct held_msg *h;
    struct bpwire_record rec;
    uint64_t s;
    const char *why;

    while ((h = STAILQ_FIRST(&c->retained_held)) != NULL) {
        STAILQ_REMOVE_HEAD(&c->retained_held, link);
        if (h->seq > seq &&
            bpwire_retained_read(h->data, h->len, cluster_max_record(c), &s, &rec, &why) == 0) {
            retained_apply(c, &rec);
            c->retained_seq = s;
        }
        free(h);
    }
    c->retained_held_bytes = 0;
}

/* The load's reply: [seq, [record, ...]], from MULTI GET HVALS EXEC. */
static void retained_loaded_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;
    struct hmap loaded = HMAP_INIT;
    struct bpwire_record rec;
    const char *why;

    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        cluster_malformed(c, "retained store", "unexpected reply to its load");
        redislink_fail(c->link, "unexpected reply loading retained values");
        return;
    }
    uint64_t seq = r->element[0]->type == REDIS_REPLY_NIL ? 0 : reply_uint(r->element[0]);
    const redisReply *vals = r->element[1];
    for (size_t i = 0; i < vals->elements; i++) {
        const redisReply *v = vals->element[i];
        if (v->type != REDIS_REPLY_STRING ||
            bpwire_retained_value_read(v->str, v->len, cluster_max_record(c), &rec, &why) < 0) {
            cluster_malformed(c, "retained value", v->type == REDIS_REPLY_STRING ? why : "type");
            continue;
        }
        retained_apply(c, &rec);
        hmap_put(&loaded, rec.topic, rec.topic_len, (void *)rec.topic); /* borrowed from R */
    }
    bool lost = seq < c->retained_seq;
    if (lost)
        log_warning(c->log,
                    "backplane: Redis lost the cluster's retained values (their change count "
                    "went from %" PRIu64 " to %" PRIu64 "); this node stores its own again",
                    c->retained_seq, seq);
    retained_sweep(c, &loaded, lost);
    hmap_release(&loaded);
    c->retained_seq = seq;
    c->retained_loading = false;
    retained_replay(c, seq);
    outbox_flush(c);
    if (c->retained_reload) {
        c->retained_reload = false;
        cluster_retained_load(c);
        return;
    }
    c->retained_done = true;
    cluster_check_synced(c);
}

/* Loads the cluster's retained values, atomically with the number of the last change. */
void cluster_retained_load(struct cluster *c)
{
    const char *multi[] = {"MULTI"}, *get[] = {"GET", c->k_retained_seq},
               *hvals[] = {"HVALS", c->k_retained}, *exec[] = {"EXEC"};

    c->retained_loading = true;
    cluster_command(c, NULL, NULL, 1, multi);
    cluster_command(c, NULL, NULL, 2, get);
    cluster_command(c, NULL, NULL, 2, hvals);
    cluster_command(c, retained_loaded_cb, NULL, 1, exec);
}

void cluster_retained_down(struct cluster *c)
{
    c->retained_loading = c->retained_reload = false;
    cluster_held_clear(&c->retained_held, &c->retained_held_bytes);
}

void cluster_retained_free(struct cluster *c)
{
    size_t pos = 0;
    struct outboxed *o;

    while ((o = hmap_next(&c->outbox, &pos, NULL, NULL)) != NULL)
        outboxed_free(o);
    hmap_release(&c->outbox);
    cluster_held_clear(&c->retained_held, &c->retained_held_bytes);
}
