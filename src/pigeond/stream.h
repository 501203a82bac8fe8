/*
 * stream.h - one stream: the messages its patterns capture, numbered and
 * kept in its segment log, within its limits, with its consumers.
 *
 * A stream numbers what it captures (seq, from 1, never reused), appends
 * it to its log (seglog.h) in the job being gathered, and hears from the
 * store (store.h) when a job is durable.  Only then do its consumers see
 * those messages (durable_last), and only then are its limits applied:
 * with discard = old, the oldest messages go (count, bytes, age: the head
 * moves, whole old segments are removed); with discard = new, a message
 * that would pass a count or byte limit is refused at once (code 12).
 *
 * Numbers, at any moment:
 *   first_seq      the oldest message kept (last_seq + 1 while empty)
 *   last_seq       the newest numbered (possibly not durable yet)
 *   durable_last   the newest durable: consumers read up to here
 *   bytes          record bytes of first_seq .. last_seq on disk
 *
 * Duplicates.  A msg_id is remembered for the stream's duplicate_window
 * with the seq it got; a second publication with the same id within the
 * window is not stored again.  The table lives in memory and is rebuilt at
 * start from the records of the last window (their msg_ids are stored).
 *
 * Memory: the stream holds its log's index and block cache, the msg_ids of
 * one window, and its consumers' pending sets; never its messages.
 */
#ifndef PIGEON_STREAM_H
#define PIGEON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hmap.h"
#include "seglog.h"

struct consumer;
struct router_msg;
struct store;
struct sublist_entry;

/* A latency histogram, for /metrics: counts per bucket (le = 2^k ... ) and totals. */
#define STREAM_HIST_BUCKETS 16
struct stream_hist {
    uint64_t bucket[STREAM_HIST_BUCKETS]; /* observations <= 50us * 2^k */
    uint64_t count;
    uint64_t sum_ns;
};

struct dedup_entry;

struct stream {
    struct store *store;       /* borrowed: the owner */
    char *name;                /* owned */
    struct config_stream conf; /* a copy (reload replaces it) */
    struct seglog *log;        /* owned */
    uint64_t first_seq, last_seq, durable_last;
    uint64_t bytes;
    struct seglog_pos head; /* at first_seq, for dropping */
    int64_t head_time;      /* the head record's time, ms (0: unknown) */
    /* duplicates: msg_id -> entry, and the entries oldest first */
    struct hmap dedup;
    struct dedup_entry *dedup_old, *dedup_new;
    uint64_t dedup_bytes;
    /* consumers */
    struct consumer *consumers;     /* every one, durable or not; owned */
    struct hmap durables;           /* durable name -> consumer */
    struct sublist_entry **capture; /* one per pattern, in the store's capture index */
    struct event *age_ev;           /* drops expired messages (max_age) */
    bool gathered;                  /* records in the job being gathered */
    bool failing;                   /* the last job failed */
    int last_err;                   /* its errno */
    /* counters */
    uint64_t stored, not_stored, duplicates, dropped, damaged;
    struct stream_hist write_hist, sync_hist;
};

/*
 * Opens stream CONF (copied) of store ST in DIR: its log, recovered; its
 * first_seq from the last record's `first` and its limits; its duplicate
 * table rebuilt.  Returns 0 and *OUT, or -1 with WHY.
 */
int stream_open(struct store *st, const struct config_stream *conf, const char *dir,
                uint64_t segment_size, struct stream **out, char *why, size_t why_len);

/* Frees the stream, its consumers and its log.  No job may be out.  NULL is fine. */
void stream_close(struct stream *s);

/* Takes reloaded settings (limits, window, patterns; the name is the same). */
void stream_apply_config(struct stream *s, const struct config_stream *conf);

/* ------------------------------------------------------------ publish ---- */

/* The seq a msg_id got within the window, or 0. */
uint64_t stream_duplicate(struct stream *s, const char *msg_id, size_t len, int64_t now_ms);

/*
 * Numbers M and appends it (with MSG_ID, LEN bytes, when not NULL) at
 * NOW_MS (ms since the epoch).  Returns 0 and *SEQ, or -PROTO_ERR_NOT_STORED
 * with WHY (static): full with discard = new, or the log could not take it.
 */
int stream_append(struct stream *s, const struct router_msg *m, const char *msg_id, size_t len,
                  int64_t now_ms, uint64_t *seq, const char **why);

/* ----------------------------------------------------------- commits ---- */

/* The log job gathered (owned by the caller until stream_job_done), or NULL. */
struct seglog_job *stream_job_take(struct stream *s);

/*
 * Applies a finished job: the records it wrote become durable, limits are
 * applied and consumers woken.  On failure, the stream rolls back to what
 * is durable: the seqs above *ROLLED_TO are gone (their waiters fail).
 * Returns the job's error (0 or -errno).
 */
int stream_job_done(struct stream *s, struct seglog_job *job, uint64_t *rolled_to);

/* ----------------------------------------------------------- reading ---- */

/* The record at POS (see seglog_read); counts damage. */
int stream_read(struct stream *s, struct seglog_pos *pos, struct seglog_rec *rec);

/* The topic of a record: its body's first string.  False when it has none. */
bool stream_rec_topic(const struct seglog_rec *rec, const char **topic, uint32_t *len);

/*
 * The seq of the last durable message whose topic FILTER matches (NULL:
 * any), looking back at most STREAM_LAST_SCAN bytes; 0 when none is.
 */
#define STREAM_LAST_SCAN ((uint64_t)64 << 20)
uint64_t stream_find_last(struct stream *s, const char *filter);

/* Messages kept: last_seq - first_seq + 1. */
static inline uint64_t stream_messages(const struct stream *s)
{
    return s->last_seq + 1 - s->first_seq;
}

/* Memory the stream holds (index, cache, gathered job, msg_ids, consumers). */
uint64_t stream_memory(const struct stream *s);

/* Records V (ns) in H. */
void stream_hist_add(struct stream_hist *h, uint64_t ns);

/* True when NAME (LEN bytes) is a valid stream or durable name: 1..64 of A-Z a-z 0-9 _ -. */
bool stream_name_ok(const char *name, size_t len);

/* Wall-clock milliseconds since the Unix epoch (the `time` of records). */
int64_t stream_now_ms(void);

#endif
