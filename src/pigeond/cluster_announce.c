/*
 * cluster_announce.c - this node's interest, told to the others (see
 * cluster_impl.h).
 *
 * Every subscription and unsubscription here changes a count per field
 * ("pattern" or "pattern queue"); a changed field joins the dirty list,
 * and the flush job announces the list at the end of the loop iteration:
 * one script per CLUSTER_CHUNK changes applies them to this node's
 * snapshot in Redis, numbers them (the node's interest version) and
 * publishes them as one delta, atomically, so a reader of the snapshot and
 * a follower of the deltas always agree.  While the link is down nothing
 * is announced: the snapshot written when it comes back says it all, and
 * a count that falls to 0 meanwhile is forgotten at once.
 *
 * Versions.  The others apply delta v + 1 on top of v, ignore what they
 * have, and read the snapshot again on a gap, on a heartbeat that shows a
 * higher version, or on a new instance (cluster_peers.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bpwire.h"
#include "cluster_impl.h"
#include "proto.h"
#include "xalloc.h"

#define CLUSTER_CHUNK 512 /* changes per delta, fields per HSET */

/* Applies a delta's changes and publishes it, unless the hash is gone (then 0: resync). */
static const char DELTA_SCRIPT[] = "local key = KEYS[1]\n"
                                   "if redis.call('EXISTS', key) == 0 then return 0 end\n"
                                   "for i = 5, #ARGV, 2 do\n"
                                   "  if ARGV[i + 1] == '0' then redis.call('HDEL', key, ARGV[i])\n"
                                   "  else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end\n"
                                   "end\n"
                                   "redis.call('HSET', key, ' version', ARGV[4])\n"
                                   "redis.call('PEXPIRE', key, ARGV[1])\n"
                                   "redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
                                   "return 1\n";

static void snapshot_reply_cb(void *arg, const redisReply *r, void *priv);

/* ------------------------------------------------------------ counting ---- */

/* "pattern" or "pattern queue" into BUF; its length. */
static size_t field_make(char *buf, const char *pattern, const char *queue)
{
    size_t plen = strlen(pattern);

    memcpy(buf, pattern, plen);
    if (queue == NULL)
        return plen;
    size_t qlen = strlen(queue);
    buf[plen] = ' ';
    memcpy(buf + plen + 1, queue, qlen);
    return plen + 1 + qlen;
}

static void linterest_free(struct cluster *c, struct linterest *li)
{
    if (li->dirty)
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
    hmap_remove(&c->local, li->field, li->flen);
    free(li);
}

static void linterest_change(struct cluster *c, const char *pattern, const char *queue, int by)
{
    char field[2 * PROTO_TOPIC_MAX + 1];
    size_t flen = field_make(field, pattern, queue);
    struct linterest *li = hmap_get(&c->local, field, flen);

    if (li == NULL) {
        if (by < 0)
            return;
        li = xcalloc(1, sizeof(*li) + flen);
        li->flen = (uint16_t)flen;
        memcpy(li->field, field, flen);
        hmap_put(&c->local, li->field, li->flen, li);
    }
    li->count = by > 0 ? li->count + 1 : li->count - 1;
    if (!c->up || c->leaving) {
        /* Not announced now: the snapshot at the next connect says it all (after a
         * bye, nothing: the connections closing at shutdown must not announce the
         * node again). */
        if (li->count == 0)
            linterest_free(c, li);
        return;
    }
    if (!li->dirty) {
        li->dirty = true;
        TAILQ_INSERT_TAIL(&c->dirty, li, dirty_link);
    }
    cluster_schedule_flush(c);
}

void cluster_interest_add(struct cluster *c, const char *pattern, const char *queue)
{
    linterest_change(c, pattern, queue, 1);
}

void cluster_interest_remove(struct cluster *c, const char *pattern, const char *queue)
{
    linterest_change(c, pattern, queue, -1);
}

/* ---------------------------------------------------------- announcing ---- */

static void delta_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && c->up && !c->leaving) {
        log_warning(c->log, "backplane: this node's interest was gone from Redis; announcing it "
                            "again");
        cluster_announce_snapshot(c);
    }
}

/* Announces up to CLUSTER_CHUNK changes from the dirty list: one script, one version. */
static void delta_send(struct cluster *c)
{
    const char *argv[5 + 5 + 2 * CLUSTER_CHUNK];
    size_t lens[5 + 5 + 2 * CLUSTER_CHUNK];
    char counts[CLUSTER_CHUNK][12], version[24];
    struct linterest *li, *done[CLUSTER_CHUNK];
    size_t n = 0, argc = 0;

    TAILQ_FOREACH (li, &c->dirty, dirty_link)
        if (++n == CLUSTER_CHUNK)
            break;
    snprintf(version, sizeof(version), "%" PRIu64, ++c->version);
    bpwire_delta_begin(&c->scratch, c->node, c->nlen, c->instance_id, c->version, n);
#define ARG(p, l) (argv[argc] = (p), lens[argc++] = (l))
    ARG("EVAL", 4);
    ARG(DELTA_SCRIPT, sizeof(DELTA_SCRIPT) - 1);
    ARG("1", 1);
    ARG(c->k_node, strlen(c->k_node));
    ARG(c->ttl, strlen(c->ttl));
    ARG(c->ch_ctl, strlen(c->ch_ctl));
    size_t msg_at = argc; /* the message, known once the changes are written */
    ARG(NULL, 0);
    ARG(version, strlen(version));
    for (size_t i = 0; i < n; i++) {
        li = TAILQ_FIRST(&c->dirty);
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
        li->dirty = false;
        snprintf(counts[i], sizeof(counts[i]), "%" PRIu32, li->count);
        bpwire_change_write(&c->scratch, li->field, li->flen, li->count);
        ARG(li->field, li->flen);
        ARG(counts[i], strlen(counts[i]));
        done[i] = li;
    }
#undef ARG
    argv[msg_at] = c->scratch.data;
    lens[msg_at] = c->scratch.size;
    redislink_command(c->link, delta_reply_cb, NULL, (int)argc, argv, lens);
    for (size_t i = 0; i < n; i++)
        if (done[i]->count == 0)
            linterest_free(c, done[i]);
}

void cluster_announce_flush(struct cluster *c)
{
    while (!TAILQ_EMPTY(&c->dirty))
        delta_send(c);
}

static void snapshot_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        log_error(c->log, "backplane: announcing this node failed: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        redislink_fail(c->link, "announcing this node failed");
        return;
    }
    c->snap_done = true;
    cluster_check_synced(c);
}

/*
 * Writes this node's whole interest as its snapshot, under a new version,
 * registers the node and says hello: one transaction, so a reader sees
 * all of it or none.  Zero counts are dropped; nothing is dirty after.
 */
void cluster_announce_snapshot(struct cluster *c)
{
    const char *argv[2 + 2 + 2 * CLUSTER_CHUNK];
    size_t lens[2 + 2 + 2 * CLUSTER_CHUNK];
    char counts[CLUSTER_CHUNK][12], version[24];
    struct linterest *li;
    size_t pos = 0, argc;

    while ((li = TAILQ_FIRST(&c->dirty)) != NULL) {
        TAILQ_REMOVE(&c->dirty, li, dirty_link);
        li->dirty = false;
        if (li->count == 0)
            linterest_free(c, li);
    }
    snprintf(version, sizeof(version), "%" PRIu64, ++c->version);
    const char *multi[] = {"MULTI"}, *del[] = {"DEL", c->k_node};
    cluster_command(c, NULL, NULL, 1, multi);
    cluster_command(c, NULL, NULL, 2, del);
    const char *meta[] = {"HSET", c->k_node, " instance", c->instance, " version", version};
    cluster_command(c, NULL, NULL, 6, meta);
    for (bool more = true; more;) {
        argc = 0;
        argv[argc] = "HSET", lens[argc++] = 4;
        argv[argc] = c->k_node, lens[argc++] = strlen(c->k_node);
        while (argc < 2 + 2 * CLUSTER_CHUNK &&
               (li = hmap_next(&c->local, &pos, NULL, NULL)) != NULL) {
            char *cnt = counts[(argc - 2) / 2];
            snprintf(cnt, sizeof(counts[0]), "%" PRIu32, li->count);
            argv[argc] = li->field, lens[argc++] = li->flen;
            argv[argc] = cnt, lens[argc++] = strlen(cnt);
        }
        more = argc == 2 + 2 * CLUSTER_CHUNK;
        if (argc > 2)
            redislink_command(c->link, NULL, NULL, (int)argc, argv, lens);
    }
    const char *expire[] = {"PEXPIRE", c->k_node, c->ttl}, *sadd[] = {"SADD", c->k_nodes, c->node};
    cluster_command(c, NULL, NULL, 3, expire);
    cluster_command(c, NULL, NULL, 3, sadd);
    bpwire_ctl_write(&c->scratch, BPWIRE_HELLO, c->node, c->nlen, c->instance_id, c->version);
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t publens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    redislink_command(c->link, NULL, NULL, 3, pub, publens);
    const char *exec[] = {"EXEC"};
    cluster_command(c, snapshot_reply_cb, NULL, 1, exec);
}

/* ------------------------------------------------ heartbeat, bye, free ---- */

static void expire_reply_cb(void *arg, const redisReply *r, void *priv)
{
    struct cluster *c = arg;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && c->synced &&
        !c->leaving) {
        log_warning(c->log, "backplane: this node's interest was gone from Redis; announcing it "
                            "again");
        cluster_announce_snapshot(c);
    }
}

void cluster_announce_heartbeat(struct cluster *c)
{
    const char *expire[] = {"PEXPIRE", c->k_node, c->ttl};

    cluster_command(c, expire_reply_cb, NULL, 3, expire);
    bpwire_ctl_write(&c->scratch, BPWIRE_HB, c->node, c->nlen, c->instance_id, c->version);
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t lens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    redislink_command(c->link, NULL, NULL, 3, pub, lens);
}

void cluster_announce_bye(struct cluster *c)
{
    const char *multi[] = {"MULTI"}, *del[] = {"DEL", c->k_node},
               *srem[] = {"SREM", c->k_nodes, c->node}, *exec[] = {"EXEC"};

    bpwire_ctl_write(&c->scratch, BPWIRE_BYE, c->node, c->nlen, c->instance_id, 0);
    const char *pub[] = {"PUBLISH", c->ch_ctl, c->scratch.data};
    size_t lens[] = {7, strlen(c->ch_ctl), c->scratch.size};
    cluster_command(c, NULL, NULL, 1, multi);
    cluster_command(c, NULL, NULL, 2, del);
    cluster_command(c, NULL, NULL, 3, srem);
    redislink_command(c->link, NULL, NULL, 3, pub, lens);
    cluster_command(c, NULL, NULL, 1, exec);
}

void cluster_announce_free(struct cluster *c)
{
    size_t pos = 0;
    struct linterest *li;

    while ((li = hmap_next(&c->local, &pos, NULL, NULL)) != NULL)
        free(li);
    hmap_release(&c->local);
}
