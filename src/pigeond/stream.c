/*
 * stream.c - one stream: numbering, appending, limits, duplicates (see
 * stream.h).
 *
 * Layers, top-down: names and clocks; the duplicate table; opening (the
 * log, first_seq, the table rebuilt); appending; limits (count, bytes,
 * age), applied to durable messages only; job outcomes; reading for
 * consumers; monitoring.
 *
 * Limits never read more than they must: whole segments go by their index
 * figures (their last record's time, their byte counts), and only inside
 * the head segment is the head moved a record at a time, at most
 * STREAM_DROP_STEP records per call (the age timer goes on with the rest in
 * a later loop iteration).
 */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "consumer.h"
#include "log.h"
#include "mpread.h"
#include "proto.h"
#include "router.h"
#include "store.h"
#include "sublist.h"
#include "topic.h"
#include "xalloc.h"

#define STREAM_DROP_STEP  100000 /* head records passed per call */
#define STREAM_AGE_MIN_MS 100    /* the age timer's shortest wait */
#define HIST_BASE_NS      50000  /* first histogram bucket: 50 us */

/* --------------------------------------------------------------- names ---- */

bool stream_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

int64_t stream_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void stream_hist_add(struct stream_hist *h, uint64_t ns)
{
    int k = 0;
    uint64_t edge = HIST_BASE_NS;

    while (k < STREAM_HIST_BUCKETS - 1 && ns > edge) {
        edge *= 2;
        k++;
    }
    h->bucket[k]++;
    h->count++;
    h->sum_ns += ns;
}

/* --------------------------------------------------------- duplicates ---- */

/* One remembered msg_id; the key of the table lies in it. */
struct dedup_entry {
    struct dedup_entry *older, *newer;
    uint64_t seq;
    int64_t time_ms;
    uint8_t len;
    char id[];
};

static void dedup_unlink(struct stream *s, struct dedup_entry *e)
{
    hmap_remove(&s->dedup, e->id, e->len);
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        s->dedup_old = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        s->dedup_new = e->older;
    s->dedup_bytes -= sizeof(*e) + e->len;
    free(e);
}

static void dedup_add(struct stream *s, const char *id, size_t len, uint64_t seq, int64_t t)
{
    struct dedup_entry *e = hmap_get(&s->dedup, id, len);

    if (e != NULL)
        dedup_unlink(s, e); /* outlived its window: the new one takes its place */
    e = xmalloc(sizeof(*e) + len);
    e->seq = seq;
    e->time_ms = t;
    e->len = (uint8_t)len;
    memcpy(e->id, id, len);
    e->newer = NULL;
    e->older = s->dedup_new;
    if (s->dedup_new != NULL)
        s->dedup_new->newer = e;
    else
        s->dedup_old = e;
    s->dedup_new = e;
    hmap_put(&s->dedup, e->id, e->len, e);
    s->dedup_bytes += sizeof(*e) + len;
}

/* Forgets the msg_ids older than the window. */
static void dedup_expire(struct stream *s, int64_t now_ms)
{
    int64_t cutoff = now_ms - (int64_t)s->conf.duplicate_window_ms;

    while (s->dedup_old != NULL && s->dedup_old->time_ms < cutoff)
        dedup_unlink(s, s->dedup_old);
}

/* Forgets the msg_ids of seqs above SEQ (rolled back). */
static void dedup_forget_after(struct stream *s, uint64_t seq)
{
    while (s->dedup_new != NULL && s->dedup_new->seq > seq)
        dedup_unlink(s, s->dedup_new);
}

uint64_t stream_duplicate(struct stream *s, const char *msg_id, size_t len, int64_t now_ms)
{
    dedup_expire(s, now_ms);
    struct dedup_entry *e = hmap_get(&s->dedup, msg_id, len);
    return e != NULL ? e->seq : 0;
}

/* ------------------------------------------------------------ reading ---- */

bool stream_rec_topic(const struct seglog_rec *rec, const char **topic, uint32_t *len)
{
    struct mpread r;

    mpread_init(&r, rec->body, rec->body_len);
    return mpread_str(&r, topic, len);
}

int stream_read(struct stream *s, struct seglog_pos *pos, struct seglog_rec *rec)
{
    uint64_t skipped = 0;
    int rc = seglog_read(s->log, pos, rec, &skipped);

    if (rc == -EBADMSG)
        s->damaged += skipped;
    return rc;
}

/* Scans from seq FROM to the durable end, looking for the last match of FILTER. */
static uint64_t scan_last(struct stream *s, uint64_t from, const char *filter)
{
    struct seglog_pos pos = {0};
    struct seglog_rec rec;
    uint64_t found = 0;
    int rc;

    seglog_pos_set(&pos, from);
    while ((rc = stream_read(s, &pos, &rec)) != SEGLOG_END) {
        const char *t;
        uint32_t tl;
        if (rc == -EBADMSG)
            continue;
        if (rc < 0)
            break;
        if (filter == NULL ||
            (stream_rec_topic(&rec, &t, &tl) && topic_matches(filter, strlen(filter), t, tl)))
            found = rec.seq;
    }
    return found;
}

uint64_t stream_find_last(struct stream *s, const char *filter)
{
    uint64_t lo = s->first_seq, hi = s->durable_last, bytes, tail = 0;

    if (s->durable_last < s->first_seq)
        return 0;
    if (filter == NULL)
        return s->durable_last;
    /* Forward from the first seq within STREAM_LAST_SCAN bytes of the durable end. */
    if (seglog_bytes_from(s->log, s->durable_last + 1, &tail) < 0)
        tail = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (seglog_bytes_from(s->log, mid, &bytes) == 0 && bytes > tail + STREAM_LAST_SCAN)
            lo = mid + 1;
        else
            hi = mid;
    }
    return scan_last(s, lo, filter);
}

/* -------------------------------------------------------------- limits ---- */

/* Moves the head to FIRST (at most durable_last + 1) and recounts the bytes. */
static void head_move(struct stream *s, uint64_t first)
{
    uint64_t bytes;

    if (first <= s->first_seq)
        return;
    s->dropped += first - s->first_seq;
    s->first_seq = first;
    if (s->head.seq != first)
        seglog_pos_set(&s->head, first);
    s->head_time = 0;
    if (seglog_bytes_from(s->log, first, &bytes) == 0)
        s->bytes = bytes;
    seglog_drop_before(s->log, first);
    for (struct consumer *c = s->consumers; c != NULL; c = consumer_next(c))
        consumer_stream_dropped(c, first);
    store_touch(s->store); /* removing old segments is a job too */
}

/*
 * Drops head records one by one while PRED(s, record, bytes held with it)
 * says so, at most STREAM_DROP_STEP of them.  True when PRED stopped it or
 * nothing durable is left; false when the step ran out.
 */
static bool drop_while(struct stream *s, bool (*pred)(const struct stream *s,
                                                      const struct seglog_rec *r, uint64_t bytes))
{
    struct seglog_rec rec;
    uint64_t first = s->first_seq, bytes = s->bytes;
    int64_t head_time = 0;
    bool done = false;

    if (s->head.seq != first)
        seglog_pos_set(&s->head, first);
    for (int n = 0; n < STREAM_DROP_STEP && !done; n++) {
        if (first > s->durable_last) {
            done = true;
            break;
        }
        struct seglog_pos before = s->head;
        int rc = stream_read(s, &s->head, &rec);
        if (rc == -EBADMSG) {
            first = s->head.seq; /* lost to damage: gone either way */
            continue;
        }
        if (rc != 0 || !pred(s, &rec, bytes)) {
            if (rc == 0)
                head_time = (int64_t)rec.time_ms;
            s->head = before;
            done = true;
            break;
        }
        bytes -= rec.len;
        first = rec.seq + 1;
    }
    head_move(s, first);
    s->head_time = head_time;
    return done;
}

static bool over_bytes(const struct stream *s, const struct seglog_rec *r, uint64_t bytes)
{
    return bytes > s->conf.max_bytes;
}

static bool too_old(const struct stream *s, const struct seglog_rec *r, uint64_t bytes)
{
    return (int64_t)r->time_ms < stream_now_ms() - (int64_t)s->conf.max_age_ms;
}

/* Arms the limits' timer: SOON for work left, else for when the head record expires. */
static void limits_arm(struct stream *s, bool soon)
{
    int64_t ms = STREAM_AGE_MIN_MS;

    if (s->age_ev == NULL || (!soon && s->conf.max_age_ms == 0))
        return;
    if (!soon && s->head_time > 0)
        ms = s->head_time + (int64_t)s->conf.max_age_ms - stream_now_ms() + 1;
    else if (!soon)
        ms = (int64_t)s->conf.max_age_ms;
    if (ms < STREAM_AGE_MIN_MS)
        ms = STREAM_AGE_MIN_MS;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->age_ev, &tv);
}

/* Applies max_age: whole segments by their last time, then record by record.  False: more left. */
static bool limits_age(struct stream *s)
{
    int64_t cutoff = stream_now_ms() - (int64_t)s->conf.max_age_ms;
    uint64_t through = seglog_expired_through(s->log, s->first_seq, cutoff);

    if (through > s->durable_last + 1)
        through = s->durable_last + 1;
    head_move(s, through);
    return drop_while(s, too_old);
}

/* Applies the limits to durable messages: count and bytes (discard = old), and age. */
static void limits_apply(struct stream *s)
{
    bool done = true;

    if (s->conf.discard == CONFIG_DISCARD_OLD && s->conf.max_messages > 0 &&
        stream_messages(s) > s->conf.max_messages) {
        uint64_t first = s->last_seq - s->conf.max_messages + 1;
        head_move(s, first < s->durable_last + 1 ? first : s->durable_last + 1);
    }
    if (s->conf.discard == CONFIG_DISCARD_OLD && s->conf.max_bytes > 0 &&
        s->bytes > s->conf.max_bytes)
        done = drop_while(s, over_bytes);
    if (done && s->conf.max_age_ms > 0)
        done = limits_age(s);
    limits_arm(s, !done);
}

static void stream_age_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stream *s = arg;

    limits_apply(s);
}

/* ------------------------------------------------------------ opening ---- */

/* Reads back the msg_ids of the last duplicate window: the segments that may hold some. */
static void dedup_rebuild(struct stream *s)
{
    int64_t now = stream_now_ms(), cutoff = now - (int64_t)s->conf.duplicate_window_ms;
    struct seglog_segment seg;
    struct seglog_pos pos = {0};
    struct seglog_rec rec;
    int rc;

    if (s->conf.duplicate_window_ms == 0 || s->durable_last < s->first_seq)
        return;
    for (size_t i = 0; seglog_segment_info(s->log, i, &seg) == 0; i++) {
        if (seg.last_seq < s->first_seq || seg.last_seq < seg.first_seq || seg.msg_ids == 0 ||
            (seg.sealed && seg.last_time < cutoff))
            continue;
        seglog_pos_set(&pos, seg.first_seq > s->first_seq ? seg.first_seq : s->first_seq);
        while (pos.seq <= seg.last_seq && (rc = stream_read(s, &pos, &rec)) != SEGLOG_END) {
            if (rc == -EBADMSG)
                continue;
            if (rc < 0)
                break;
            if (rec.msg_id_len > 0 && (int64_t)rec.time_ms >= cutoff)
                dedup_add(s, rec.msg_id, rec.msg_id_len, rec.seq, (int64_t)rec.time_ms);
        }
    }
}

int stream_open(struct store *st, const struct config_stream *conf, const char *dir,
                uint64_t segment_size, struct stream **out, char *why, size_t why_len)
{
    struct stream *s = xcalloc(1, sizeof(*s));
    struct seglog_state ls;

    s->store = st;
    s->name = xstrdup(conf->name);
    config_stream_copy(&s->conf, conf);
    hmap_init(&s->dedup);
    hmap_init(&s->durables);
    if (seglog_open(dir, s->name, segment_size, store_logger(st), &s->log, &ls, why, why_len) < 0) {
        stream_close(s);
        return -1;
    }
    s->last_seq = s->durable_last = ls.last_seq;
    s->first_seq = ls.first_seq;
    if (ls.last_first > s->first_seq)
        s->first_seq = ls.last_first;
    if (s->first_seq > s->last_seq + 1)
        s->first_seq = s->last_seq + 1;
    seglog_pos_set(&s->head, s->first_seq);
    if (seglog_bytes_from(s->log, s->first_seq, &s->bytes) < 0)
        s->bytes = 0;
    s->age_ev = evtimer_new(store_base(st), stream_age_cb, s);
    limits_apply(s);
    dedup_rebuild(s);
    log_notice(store_logger(st),
               "stream %s: %" PRIu64 " messages (seq %" PRIu64 " to %" PRIu64 "), %" PRIu64
               " bytes in %u segments, %u msg_ids in the duplicate window",
               s->name, stream_messages(s), s->first_seq, s->last_seq, s->bytes,
               seglog_segment_count(s->log),
               hmap_count(&s->dedup) > UINT32_MAX ? UINT32_MAX : (unsigned)hmap_count(&s->dedup));
    *out = s;
    return 0;
}

void stream_close(struct stream *s)
{
    if (s == NULL)
        return;
    while (s->consumers != NULL)
        consumer_free(s->consumers);
    while (s->dedup_old != NULL)
        dedup_unlink(s, s->dedup_old);
    hmap_release(&s->dedup);
    hmap_release(&s->durables);
    if (s->age_ev != NULL)
        event_free(s->age_ev);
    seglog_close(s->log);
    config_stream_release(&s->conf);
    free(s->capture);
    free(s->name);
    free(s);
}

void stream_apply_config(struct stream *s, const struct config_stream *conf)
{
    config_stream_release(&s->conf);
    config_stream_copy(&s->conf, conf);
    if (s->age_ev != NULL)
        evtimer_del(s->age_ev);
    limits_apply(s);
}

/* ----------------------------------------------------------- appending ---- */

/* True when one more record of LEN bytes would pass a limit (discard = new). */
static bool full_for(const struct stream *s, uint32_t len)
{
    if (s->conf.discard != CONFIG_DISCARD_NEW)
        return false;
    if (s->conf.max_messages > 0 && stream_messages(s) >= s->conf.max_messages)
        return true;
    return s->conf.max_bytes > 0 && s->bytes + len > s->conf.max_bytes;
}

int stream_append(struct stream *s, const struct router_msg *m, const char *msg_id, size_t len,
                  int64_t now_ms, uint64_t *seq, const char **why)
{
    struct seglog_rec rec = {
        .seq = s->last_seq + 1,
        .time_ms = (uint64_t)now_ms,
        .first = s->first_seq,
        .body = m->body,
        .body_len = (uint32_t)m->body_len,
        .opts = m->opts,
        .opts_len = (uint32_t)m->opts_len,
        .msg_id = msg_id,
        .msg_id_len = (uint8_t)len,
    };

    if (full_for(s, seglog_rec_size(rec.body_len, rec.opts_len, rec.msg_id_len))) {
        s->not_stored++;
        *why = "stream full (discard = new)";
        return -PROTO_ERR_NOT_STORED;
    }
    int rc = seglog_append(s->log, &rec);
    if (rc < 0) {
        s->not_stored++;
        *why = "the store cannot write (see the broker's log)";
        return -PROTO_ERR_NOT_STORED;
    }
    bool was_empty = s->first_seq > s->last_seq;
    s->last_seq = rec.seq;
    s->bytes += rec.len;
    if (was_empty)
        s->first_seq = rec.seq;
    if (msg_id != NULL && len > 0)
        dedup_add(s, msg_id, len, rec.seq, now_ms);
    s->gathered = true;
    s->stored++;
    store_touch(s->store);
    *seq = rec.seq;
    return 0;
}

/* ------------------------------------------------------------ commits ---- */

struct seglog_job *stream_job_take(struct stream *s)
{
    struct seglog_job *j = seglog_job_take(s->log);

    s->gathered = false;
    return j;
}

int stream_job_done(struct stream *s, struct seglog_job *job, uint64_t *rolled_to)
{
    uint64_t write_ns = seglog_job_write_ns(job), sync_ns = seglog_job_sync_ns(job);
    const char *what;
    int err = seglog_job_error(job, &what);
    bool wrote = seglog_job_bytes(job) > 0;

    if (err == 0) {
        seglog_job_done(s->log, job, rolled_to);
        if (wrote) {
            stream_hist_add(&s->write_hist, write_ns);
            stream_hist_add(&s->sync_hist, sync_ns);
        }
        if (s->failing)
            log_notice(store_logger(s->store), "stream %s: the store writes again", s->name);
        s->failing = false;
        s->durable_last = seglog_durable_end_seq(s->log);
        limits_apply(s);
        for (struct consumer *c = s->consumers; c != NULL; c = consumer_next(c))
            consumer_durable(c);
        return 0;
    }
    if (!s->failing)
        log_error(store_logger(s->store),
                  "stream %s: %s failed: %s; publications to it fail with code 12 until it "
                  "writes again (live delivery goes on)",
                  s->name, what, strerror(-err));
    s->failing = true;
    s->last_err = -err;
    seglog_job_done(s->log, job, rolled_to);
    s->durable_last = *rolled_to;
    s->not_stored += s->last_seq - *rolled_to;
    s->stored -= s->last_seq - *rolled_to;
    s->last_seq = *rolled_to;
    if (s->first_seq > s->last_seq + 1)
        s->first_seq = s->last_seq + 1;
    seglog_pos_set(&s->head, s->first_seq);
    if (seglog_bytes_from(s->log, s->first_seq, &s->bytes) < 0)
        s->bytes = 0;
    dedup_forget_after(s, *rolled_to);
    s->gathered = false;
    return err;
}

/* --------------------------------------------------------- monitoring ---- */

uint64_t stream_memory(const struct stream *s)
{
    uint64_t n = sizeof(*s) + seglog_memory(s->log) + s->dedup_bytes + hmap_bytes(&s->dedup) +
                 hmap_bytes(&s->durables);

    for (const struct consumer *c = s->consumers; c != NULL; c = consumer_next(c))
        n += consumer_memory(c);
    return n;
}
