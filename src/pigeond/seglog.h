/*
 * seglog.h - one stream's messages on disk: append-only segment files, a
 * checksum per record, a sparse index, and recovery from a torn tail.
 *
 * A stream's directory holds segment files named for the sequence number
 * of their first record, 20 digits (00000000000000000001.seg), each
 * preallocated to segment_size and filled from the front.  A segment opens
 * with a 32-byte header (magic, first seq, a checksum) and then holds
 * records back to back:
 *
 *   u32 crc32c     of the rest of the record (bytes 4 .. len)
 *   u32 len        of the whole record, this header included
 *   u64 seq        consecutive: one more than the record before
 *   u64 time       milliseconds since the Unix epoch, when received
 *   u64 first      the stream's first seq when the record was appended
 *   u32 body_len   topic and payload, MessagePack, as published
 *   u32 opts_len   the stored opts map (reply_to, headers), or 0
 *   u8  msg_id_len then 3 zero bytes
 *   body, opts, msg_id
 *
 * all little-endian.  `first` is how a restart learns how far the stream's
 * limits had dropped its oldest messages without a separate file.
 *
 * When a segment is full it is sealed: cut to its last record, and given an
 * index file beside it (…seq.idx: first and last seq, data end, first and
 * last time, how many records carry a msg_id, and one (seq, offset) entry
 * per 64 KiB of records, with a checksum), so that a restart reads a few hundred bytes per sealed
 * segment instead of the segment.  Only the last segment is scanned at
 * start: its records are checked one by one, and at the first one that is
 * cut short, fails its checksum, or breaks the sequence, the file is cut
 * back to the last good record and what was dropped is logged.  A segment
 * whose header is unreadable, or that does not continue the one before, is
 * renamed aside (…seg.broken-TIME), never deleted.
 *
 * Threads.  The log is the loop's.  Writes leave it as jobs (struct
 * seglog_job): seglog_append encodes records into the job being gathered,
 * seglog_job_take hands that job to the commit thread, which runs
 * seglog_job_run (pwrite, fdatasync, seal, unlink: the job holds all it
 * needs, by value), and seglog_job_done applies the outcome back on the
 * loop.  Only records a finished job wrote are read back (seglog_read): the
 * "durable" part of the log.  A failed job rolls the log back to its
 * durable end, the job being gathered included, and the next job first
 * truncates whatever the failed one may have left on disk.
 *
 * Reads go through a small cache of 64 KiB blocks (SEGLOG_CACHE_BLOCKS),
 * shared by every reader of the stream, so consumers near the tail and the
 * head cursor each cost one pread per 64 KiB.  Every record read is checked
 * against its checksum.
 */
#ifndef PIGEON_SEGLOG_H
#define PIGEON_SEGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct logger;
struct seglog;
struct seg;

#define SEGLOG_HEADER       32 /* segment file header */
#define SEGLOG_REC_HEADER   44 /* record header */
#define SEGLOG_INDEX_STEP   (64 * 1024)
#define SEGLOG_CACHE_BLOCKS 4
#define SEGLOG_MSG_ID_MAX   255

/* A record, to append or as read back.  Read back, the pointers are
 * borrowed from the log until its next read. */
struct seglog_rec {
    uint64_t seq;
    uint64_t time_ms;
    uint64_t first; /* the stream's first seq when it was appended */
    const uint8_t *body;
    uint32_t body_len;
    const uint8_t *opts;
    uint32_t opts_len;
    const char *msg_id;
    uint8_t msg_id_len;
    uint32_t len; /* on disk, header included (set by append and read) */
};

/* Bytes a record takes on disk. */
static inline uint32_t seglog_rec_size(uint32_t body_len, uint32_t opts_len, uint8_t msg_id_len)
{
    return SEGLOG_REC_HEADER + body_len + opts_len + msg_id_len;
}

/* What opening found, for the stream to start from. */
struct seglog_state {
    uint64_t first_seq;  /* seq of the first record on disk (next seq when none) */
    uint64_t last_seq;   /* of the last record (first_seq - 1 when none) */
    uint64_t last_first; /* the last record's `first` field (0 when none) */
    uint64_t cut_bytes;  /* bytes cut off a torn tail */
    uint32_t segments;   /* segment files in use */
    uint32_t set_aside;  /* files renamed aside */
};

/*
 * Opens (creating it if need be) the log in directory DIR (copied) with
 * segments of SEGMENT_SIZE bytes; NAME (copied) names it in log lines to
 * LOG (borrowed; outlives the log).  Recovers as described above.  Returns
 * 0 and *OUT (owned by the caller) with *STATE, or -errno with WHY.
 */
int seglog_open(const char *dir, const char *name, uint64_t segment_size, struct logger *log,
                struct seglog **out, struct seglog_state *state, char *why, size_t why_len);

/* Closes LG's files and frees it.  No job may be running.  NULL is fine. */
void seglog_close(struct seglog *lg);

/* ------------------------------------------------------------ appending */

/*
 * Appends REC (its seq the next one) to the job being gathered, beginning
 * a new segment first when the last one is full.  Sets REC->len.  Returns
 * 0, or -errno when a new segment file could not be made (nothing
 * appended).
 */
int seglog_append(struct seglog *lg, struct seglog_rec *rec);

/* ----------------------------------------------------------------- jobs */

struct seglog_job;

/* Bytes the job being gathered holds (records and index files). */
uint64_t seglog_gathering_bytes(const struct seglog *lg);

/*
 * The job gathered so far (owned by the caller until seglog_job_done), or
 * NULL when there is nothing to write.  At most one job is out at a time.
 */
struct seglog_job *seglog_job_take(struct seglog *lg);

/*
 * Runs JOB on the commit thread: its writes, then, when FSYNC, an
 * fdatasync of each file it wrote (and of the directory when it made or
 * removed files).  Touches nothing but JOB.
 */
void seglog_job_run(struct seglog_job *job, bool fsync);

/* The outcome of a job that ran: 0 or -errno, and what it was doing. */
int seglog_job_error(const struct seglog_job *job, const char **what);
uint64_t seglog_job_write_ns(const struct seglog_job *job);
uint64_t seglog_job_sync_ns(const struct seglog_job *job);
uint64_t seglog_job_bytes(const struct seglog_job *job);

/*
 * Back on the loop: applies JOB's outcome to LG and frees JOB.  On success
 * the records it wrote become durable.  On failure, LG returns to its last
 * durable state, the job being gathered included, and *ROLLED_TO is set to
 * the last durable seq (records above it are gone).  Returns JOB's error.
 */
int seglog_job_done(struct seglog *lg, struct seglog_job *job, uint64_t *rolled_to);

/* Frees JOB without applying it (at shutdown, after seglog_job_run). */
void seglog_job_free(struct seglog_job *job);

/* --------------------------------------------------------------- reading */

/* A place in the log: the record with seq `seq`.  Zero it to start. */
struct seglog_pos {
    uint64_t seq;
    struct seg *seg; /* cached place of `seq`; valid while gen matches */
    uint64_t off;
    uint64_t gen;
};

/* Sets POS to SEQ (found on the next read). */
static inline void seglog_pos_set(struct seglog_pos *pos, uint64_t seq)
{
    pos->seq = seq;
    pos->seg = NULL;
}

enum {
    SEGLOG_END = 1, /* no durable record at that seq yet */
};

/*
 * Reads the durable record at POS into REC (borrowed until LG's next read)
 * and moves POS to the next record.  Returns 0; SEGLOG_END past the
 * durable end; -ENOENT for a seq below the first record on disk (POS is
 * not moved); -EBADMSG for a record that fails its check, after which POS
 * has moved past the damage and *SKIPPED (when not NULL) says how many
 * seqs were lost; or another -errno from the disk.
 */
int seglog_read(struct seglog *lg, struct seglog_pos *pos, struct seglog_rec *rec,
                uint64_t *skipped);

/*
 * Record bytes (headers included) from the record SEQ to the end of the
 * log, records gathered for the next job included: 0 past the end.
 * Returns 0, -EAGAIN when SEQ itself is still only gathered (the caller
 * counts those), -ENOENT below the first record, or -errno.
 */
int seglog_bytes_from(struct seglog *lg, uint64_t seq, uint64_t *bytes);

/*
 * Lets go of every whole segment below FIRST_SEQ but the last one (and
 * only those a finished job sealed): the next job removes their files.
 * Returns the bytes the files held.
 */
uint64_t seglog_drop_before(struct seglog *lg, uint64_t first_seq);

/*
 * For age limits: the seq just past the longest run of whole, durable,
 * sealed segments, from the one holding FROM_SEQ on, whose last record is
 * older than CUTOFF_MS (ms since the epoch), so that the stream can drop
 * them without reading a record; FROM_SEQ when there is none.
 */
uint64_t seglog_expired_through(const struct seglog *lg, uint64_t from_seq, int64_t cutoff_ms);

/* One segment's durable figures (seglog_segment_info). */
struct seglog_segment {
    uint64_t first_seq, last_seq; /* last_seq = first_seq - 1 while it has none */
    int64_t last_time;            /* of its last record, ms */
    bool sealed;
    uint32_t msg_ids; /* records with a msg_id: 0 means none (more is an upper bound) */
};

/* Segment I (0: the oldest) into OUT: 0, or -1 past the last one. */
int seglog_segment_info(const struct seglog *lg, size_t i, struct seglog_segment *out);

/* ------------------------------------------------------------ monitoring */

uint64_t seglog_durable_end_seq(const struct seglog *lg); /* last durable seq */
uint32_t seglog_segment_count(const struct seglog *lg);
uint64_t seglog_memory(const struct seglog *lg); /* index, cache, jobs gathered */
const char *seglog_dir(const struct seglog *lg);

#endif
