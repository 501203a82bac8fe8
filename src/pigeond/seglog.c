/*
 * seglog.c - a stream's segment files (see seglog.h for the format).
 *
 * Layers, top-down: bytes and names; segments in memory and their sparse
 * index; jobs (gathered on the loop, run on the commit thread, applied
 * back); recovery at open; appending; reading through the block cache; the
 * head (dropping old segments) and monitoring.
 *
 * Invariants, per segment:
 *   durable_end <= end, durable_last <= last_seq
 *   records [first_seq, last_seq] lie in [SEGLOG_HEADER, end)
 *   the index holds (seq, offset) of the first record and of the first
 *   record starting in each later 64 KiB step, all below `end`
 *   only the last segment is not sealed; a sealed segment's file is cut to
 *   its end and has an index file
 * and segments are consecutive: each first_seq is the last one's last_seq + 1.
 */
#include "seglog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "crc32c.h"
#include "log.h"
#include "xalloc.h"

#define SEG_MAGIC "PGNSEG01"
#define IDX_MAGIC "PGNIDX01"
#define IDX_HEADER                                                                                 \
    64 /* magic, first, last, end, first_time, last_time, n, crc of entries, msg_ids */
#define NAME_DIGITS  20
#define REC_MAX      (1u << 30) /* no record is larger: max_payload is at most 1 GiB */
#define SCAN_CHUNK   (1024 * 1024)
#define SCRATCH_KEEP (256 * 1024)
#define ZERO_CHECK   (64 * 1024) /* bytes past a cut looked at for anything but zeros */

/* ------------------------------------------------------------ bytes ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* pread of exactly LEN bytes: LEN, fewer at the end of the file, or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return 0;
}

static uint64_t ns_since(uint64_t t0)
{
    return clock_now_ns() - t0;
}

/* ------------------------------------------------------- segments ---- */

struct ix_entry {
    uint64_t seq;
    uint64_t off;
};

struct seg {
    uint64_t first_seq;
    uint64_t last_seq;             /* first_seq - 1 while empty; records gathered included */
    uint64_t durable_last;         /* the last record a finished job wrote */
    uint64_t end;                  /* past the last record (gathered included) */
    uint64_t durable_end;          /* past what finished jobs wrote; 0 until its header is */
    int64_t first_time, last_time; /* of its records, ms; 0 while empty */
    int fd;
    bool sealed;         /* no more records (the seal may still be in a job) */
    bool durable_sealed; /* a finished job sealed it */
    bool ix_loaded;      /* entries read (sealed segments load them on first use) */
    bool damaged;        /* sealed, and records past some point cannot be read */
    uint32_t n_ids;      /* records with a msg_id (at least: a rollback does not lower it) */
    struct ix_entry *ix;
    uint32_t n_ix, cap_ix;
    char name[NAME_DIGITS + 1];
};

enum op_kind {
    OP_TRUNCATE, /* cut fd to `off` (after a failed job) */
    OP_PREALLOC, /* fallocate `off` bytes (best effort) */
    OP_WRITE,    /* write buf at `off` */
    OP_SEAL,     /* cut fd to `off`, sync it, write the index file `path` from buf */
    OP_UNLINK,   /* remove `path` and `path2`, close fd */
};

struct op {
    enum op_kind kind;
    int fd;
    uint64_t off;
    uint8_t *buf; /* owned */
    size_t len, cap;
    char *path, *path2; /* owned */
};

/* Where a job leaves a segment, applied when it finishes. */
struct mark {
    struct seg *seg;
    uint64_t end, last_seq;
    bool sealed;
};

struct seglog_job {
    char *dir; /* owned: for the directory's fsync */
    struct op *ops;
    size_t n_ops, cap_ops;
    struct mark *marks; /* loop only */
    size_t n_marks, cap_marks;
    bool dir_changed;
    uint64_t bytes; /* record bytes written */
    uint64_t held;  /* bytes of buffers, for seglog_memory */
    /* outcome, set by seglog_job_run */
    int err;
    const char *what;
    uint64_t write_ns, sync_ns;
};

struct cache_block {
    struct seg *seg; /* NULL: free */
    uint64_t blkno;
    uint32_t len; /* valid bytes */
    uint64_t tick;
    uint8_t *data; /* SEGLOG_INDEX_STEP bytes, allocated on first use */
};

struct seglog {
    char *dir, *name;
    struct logger *log;
    uint64_t segment_size;
    struct seg **segs;
    size_t n_segs, cap_segs;
    uint64_t gen; /* bumped when segments go away: cached positions are stale */
    struct seglog_job *gathering;
    bool job_out;       /* a job is with the commit thread */
    bool need_truncate; /* a job failed: the next one first cuts the active segment */
    struct cache_block cache[SEGLOG_CACHE_BLOCKS];
    uint64_t tick;
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t ix_bytes;
};

static void seg_path(const struct seglog *lg, const struct seg *s, const char *ext, char *buf,
                     size_t len)
{
    snprintf(buf, len, "%s/%s.%s", lg->dir, s->name, ext);
}

static struct seg *seg_new(uint64_t first_seq, int fd)
{
    struct seg *s = xcalloc(1, sizeof(*s));
    s->first_seq = first_seq;
    s->last_seq = first_seq - 1;
    s->durable_last = first_seq - 1;
    s->fd = fd;
    s->ix_loaded = true;
    snprintf(s->name, sizeof(s->name), "%0*" PRIu64, NAME_DIGITS, first_seq);
    return s;
}

static void seg_free(struct seglog *lg, struct seg *s)
{
    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++)
        if (lg->cache[i].seg == s)
            lg->cache[i].seg = NULL;
    lg->ix_bytes -= (uint64_t)s->cap_ix * sizeof(*s->ix);
    free(s->ix);
    free(s);
}

static void ix_push(struct seglog *lg, struct seg *s, uint64_t seq, uint64_t off)
{
    if (s->n_ix > 0 && s->ix[s->n_ix - 1].off / SEGLOG_INDEX_STEP == off / SEGLOG_INDEX_STEP)
        return;
    if (s->n_ix == s->cap_ix) {
        uint32_t cap = s->cap_ix ? s->cap_ix * 2 : 16;
        s->ix = xrealloc(s->ix, cap * sizeof(*s->ix));
        lg->ix_bytes += (uint64_t)(cap - s->cap_ix) * sizeof(*s->ix);
        s->cap_ix = cap;
    }
    s->ix[s->n_ix].seq = seq;
    s->ix[s->n_ix].off = off;
    s->n_ix++;
}

/* Forgets index entries at or past OFF. */
static void ix_cut(struct seg *s, uint64_t off)
{
    while (s->n_ix > 0 && s->ix[s->n_ix - 1].off >= off)
        s->n_ix--;
}

static void segs_push(struct seglog *lg, struct seg *s)
{
    if (lg->n_segs == lg->cap_segs) {
        lg->cap_segs = lg->cap_segs ? lg->cap_segs * 2 : 8;
        lg->segs = xrealloc(lg->segs, lg->cap_segs * sizeof(*lg->segs));
    }
    lg->segs[lg->n_segs++] = s;
}

static struct seg *seg_last(const struct seglog *lg)
{
    return lg->n_segs > 0 ? lg->segs[lg->n_segs - 1] : NULL;
}

/* Index of the segment holding SEQ (the last one whose first_seq <= SEQ), or -1. */
static long seg_find(const struct seglog *lg, uint64_t seq)
{
    long lo = 0, hi = (long)lg->n_segs - 1, found = -1;

    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (lg->segs[mid]->first_seq <= seq) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

static long seg_index_of(const struct seglog *lg, const struct seg *s)
{
    for (size_t i = 0; i < lg->n_segs; i++)
        if (lg->segs[i] == s)
            return (long)i;
    return -1;
}

/* Removes segment I from the list (the caller frees it). */
static void segs_remove(struct seglog *lg, size_t i)
{
    memmove(&lg->segs[i], &lg->segs[i + 1], (lg->n_segs - i - 1) * sizeof(*lg->segs));
    lg->n_segs--;
    lg->gen++;
}

/* ------------------------------------------------------------ jobs ---- */

static struct seglog_job *job_new(const struct seglog *lg)
{
    struct seglog_job *j = xcalloc(1, sizeof(*j));
    j->dir = xstrdup(lg->dir);
    return j;
}

static struct op *job_op(struct seglog_job *j, enum op_kind kind, int fd, uint64_t off)
{
    if (j->n_ops == j->cap_ops) {
        j->cap_ops = j->cap_ops ? j->cap_ops * 2 : 8;
        j->ops = xrealloc(j->ops, j->cap_ops * sizeof(*j->ops));
    }
    struct op *op = &j->ops[j->n_ops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->fd = fd;
    op->off = off;
    return op;
}

static void job_mark(struct seglog_job *j, struct seg *s)
{
    struct mark *m = NULL;

    for (size_t i = 0; i < j->n_marks; i++)
        if (j->marks[i].seg == s)
            m = &j->marks[i];
    if (m == NULL) {
        if (j->n_marks == j->cap_marks) {
            j->cap_marks = j->cap_marks ? j->cap_marks * 2 : 4;
            j->marks = xrealloc(j->marks, j->cap_marks * sizeof(*j->marks));
        }
        m = &j->marks[j->n_marks++];
        m->seg = s;
    }
    m->end = s->end;
    m->last_seq = s->last_seq;
    m->sealed = s->sealed;
}

void seglog_job_free(struct seglog_job *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->n_ops; i++) {
        free(j->ops[i].buf);
        free(j->ops[i].path);
        free(j->ops[i].path2);
    }
    free(j->ops);
    free(j->marks);
    free(j->dir);
    free(j);
}

/* The job being gathered, made on first use. */
static struct seglog_job *gathering(struct seglog *lg)
{
    if (lg->gathering == NULL)
        lg->gathering = job_new(lg);
    return lg->gathering;
}

/* N more bytes at the end of OP's buffer. */
static uint8_t *op_room(struct seglog_job *j, struct op *op, size_t n)
{
    if (op->len + n > op->cap) {
        size_t cap = op->cap ? op->cap : 4096;
        while (cap < op->len + n)
            cap *= 2;
        op->buf = xrealloc(op->buf, cap);
        j->held += cap - op->cap;
        op->cap = cap;
    }
    uint8_t *p = op->buf + op->len;
    op->len += n;
    return p;
}

/* Writes a small file whole at PATH, through PATH.tmp and a rename. */
static int file_replace(const char *path, const uint8_t *buf, size_t len, bool fsync)
{
    char tmp[4200];
    int fd, rc = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = pwrite_full(fd, buf, len, 0);
    if (rc == 0 && fsync && fdatasync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Adds FD to the set to sync at the end of the job (a small array). */
static void dirty_add(int *dirty, size_t *n, size_t max, int fd)
{
    for (size_t i = 0; i < *n; i++)
        if (dirty[i] == fd)
            return;
    if (*n < max)
        dirty[(*n)++] = fd;
}

static int op_run(struct seglog_job *j, struct op *op, bool fsync, int *dirty, size_t *n_dirty,
                  size_t max_dirty)
{
    uint64_t t0 = clock_now_ns();
    int rc = 0;

    switch (op->kind) {
    case OP_TRUNCATE:
        if (ftruncate(op->fd, (off_t)op->off) < 0)
            rc = -errno;
        dirty_add(dirty, n_dirty, max_dirty, op->fd);
        j->write_ns += ns_since(t0);
        break;
    case OP_PREALLOC:
        /* Best effort: writes into allocated space sync faster (no size
         * change to journal); without it they still work. */
        (void)posix_fallocate(op->fd, 0, (off_t)op->off);
        break;
    case OP_WRITE:
        rc = pwrite_full(op->fd, op->buf, op->len, op->off);
        dirty_add(dirty, n_dirty, max_dirty, op->fd);
        j->write_ns += ns_since(t0);
        break;
    case OP_SEAL:
        if (ftruncate(op->fd, (off_t)op->off) < 0)
            rc = -errno;
        if (rc == 0 && fsync && fdatasync(op->fd) < 0)
            rc = -errno;
        if (rc == 0)
            rc = file_replace(op->path, op->buf, op->len, fsync);
        j->dir_changed = true;
        j->sync_ns += ns_since(t0);
        break;
    case OP_UNLINK:
        if (unlink(op->path) < 0 && errno != ENOENT)
            rc = -errno;
        if (unlink(op->path2) < 0 && errno != ENOENT && rc == 0)
            rc = -errno;
        if (op->fd >= 0)
            close(op->fd);
        op->fd = -1;
        j->dir_changed = true;
        break;
    }
    return rc;
}

static const char *const op_names[] = {
    [OP_TRUNCATE] = "truncating a segment",  [OP_PREALLOC] = "preallocating a segment",
    [OP_WRITE] = "writing a segment",        [OP_SEAL] = "sealing a segment",
    [OP_UNLINK] = "removing an old segment",
};

static int dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

void seglog_job_run(struct seglog_job *j, bool fsync)
{
    int dirty[16];
    size_t n_dirty = 0;

    j->err = 0;
    for (size_t i = 0; i < j->n_ops && j->err == 0; i++) {
        j->err = op_run(j, &j->ops[i], fsync, dirty, &n_dirty, sizeof(dirty) / sizeof(*dirty));
        if (j->err < 0)
            j->what = op_names[j->ops[i].kind];
    }
    if (j->err == 0 && fsync) {
        uint64_t t0 = clock_now_ns();
        for (size_t i = 0; i < n_dirty && j->err == 0; i++)
            if (fdatasync(dirty[i]) < 0) {
                j->err = -errno;
                j->what = "syncing a segment";
            }
        if (j->err == 0 && j->dir_changed && (j->err = dir_sync(j->dir)) < 0)
            j->what = "syncing the stream's directory";
        j->sync_ns += ns_since(t0);
    }
}

int seglog_job_error(const struct seglog_job *j, const char **what)
{
    *what = j->what != NULL ? j->what : "";
    return j->err;
}

uint64_t seglog_job_write_ns(const struct seglog_job *j)
{
    return j->write_ns;
}

uint64_t seglog_job_sync_ns(const struct seglog_job *j)
{
    return j->sync_ns;
}

uint64_t seglog_job_bytes(const struct seglog_job *j)
{
    return j->bytes;
}

uint64_t seglog_gathering_bytes(const struct seglog *lg)
{
    return lg->gathering != NULL ? lg->gathering->held : 0;
}

struct seglog_job *seglog_job_take(struct seglog *lg)
{
    struct seglog_job *j = lg->gathering;

    if (j == NULL || j->n_ops == 0 || lg->job_out)
        return NULL;
    lg->gathering = NULL;
    lg->job_out = true;
    return j;
}

/* Removes from LG a segment that never became durable: closes and deletes its file. */
static void seg_discard(struct seglog *lg, size_t i)
{
    struct seg *s = lg->segs[i];
    char path[4200];

    seg_path(lg, s, "seg", path, sizeof(path));
    if (s->fd >= 0)
        close(s->fd);
    unlink(path);
    segs_remove(lg, i);
    seg_free(lg, s);
}

/* After a failed job: every segment back to its durable state. */
static void rollback(struct seglog *lg, struct seglog_job *failed)
{
    struct seglog_job *g = lg->gathering;

    /* Removals that did not run go with the next job. */
    lg->gathering = NULL;
    for (size_t k = 0; k < 2; k++) {
        struct seglog_job *j = k == 0 ? failed : g;
        for (size_t i = 0; j != NULL && i < j->n_ops; i++) {
            struct op *op = &j->ops[i];
            if (op->kind == OP_UNLINK && op->fd >= 0) {
                struct op *moved = job_op(gathering(lg), OP_UNLINK, op->fd, 0);
                moved->path = op->path;
                moved->path2 = op->path2;
                op->path = op->path2 = NULL;
                op->fd = -1;
            }
        }
    }
    seglog_job_free(g);
    for (size_t i = lg->n_segs; i-- > 0;) {
        struct seg *s = lg->segs[i];
        if (s->durable_end == 0) {
            seg_discard(lg, i);
            continue;
        }
        s->end = s->durable_end > 0 ? s->durable_end : SEGLOG_HEADER;
        s->last_seq = s->durable_last;
        s->sealed = s->durable_sealed;
        ix_cut(s, s->end);
    }
    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++)
        lg->cache[i].seg = NULL; /* a block may hold bytes the failed job wrote */
    lg->gen++;
    lg->need_truncate = true;
}

int seglog_job_done(struct seglog *lg, struct seglog_job *j, uint64_t *rolled_to)
{
    int err = j->err;

    lg->job_out = false;
    if (err == 0) {
        for (size_t i = 0; i < j->n_marks; i++) {
            struct seg *s = j->marks[i].seg;
            s->durable_end = j->marks[i].end;
            s->durable_last = j->marks[i].last_seq;
            s->durable_sealed = j->marks[i].sealed;
        }
    } else {
        rollback(lg, j);
        *rolled_to = seglog_durable_end_seq(lg);
    }
    seglog_job_free(j);
    return err;
}

/* ---------------------------------------------------------- recovery ---- */

/* True when NAME is 20 digits then ".seg"; sets *SEQ. */
static bool seg_name_parse(const char *name, uint64_t *seq)
{
    uint64_t v = 0;

    if (strlen(name) != NAME_DIGITS + 4 || strcmp(name + NAME_DIGITS, ".seg") != 0)
        return false;
    for (int i = 0; i < NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return v > 0;
}

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first seqs of the segment files in LG's directory, sorted: *N of them. */
static int list_segments(struct seglog *lg, uint64_t **out, size_t *n)
{
    DIR *d = opendir(lg->dir);
    struct dirent *e;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (!seg_name_parse(e->d_name, &seq))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = seq;
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), seq_cmp);
    return 0;
}

/* Renames S's files aside (…seg.broken-MS), loudly. */
static void seg_set_aside(struct seglog *lg, struct seg *s, const char *why,
                          struct seglog_state *st)
{
    char path[4200], to[4300];
    long long ms = (long long)time(NULL) * 1000;

    for (int k = 0; k < 2; k++) {
        seg_path(lg, s, k == 0 ? "seg" : "idx", path, sizeof(path));
        snprintf(to, sizeof(to), "%s.broken-%lld", path, ms);
        if (rename(path, to) < 0 && errno != ENOENT)
            log_error(lg->log, "stream %s: cannot rename %s aside: %s", lg->name, path,
                      strerror(errno));
        else if (k == 0)
            log_error(lg->log, "stream %s: segment %s %s; renamed to %s, not deleted", lg->name,
                      path, why, to);
    }
    st->set_aside++;
}

static void header_encode(uint8_t *h, uint64_t first_seq)
{
    memset(h, 0, SEGLOG_HEADER);
    memcpy(h, SEG_MAGIC, 8);
    put64(h + 8, first_seq);
    put64(h + 16, (uint64_t)time(NULL) * 1000);
    put32(h + 28, crc32c(0, h, 28));
}

/* Checks the segment header of S's file: 0, 1 when the file is shorter than a header, -1 bad. */
static int header_check(const struct seg *s)
{
    uint8_t h[SEGLOG_HEADER];
    ssize_t n = pread_full(s->fd, h, sizeof(h), 0);

    if (n >= 0 && (size_t)n < sizeof(h))
        return 1;
    if (n < 0 || memcmp(h, SEG_MAGIC, 8) != 0 || get32(h + 28) != crc32c(0, h, 28) ||
        get64(h + 8) != s->first_seq)
        return -1;
    return 0;
}

/* Checks the record at P (LEN bytes available) for seq EXPECT: its length, or 0 if not valid. */
static uint32_t rec_check(const uint8_t *p, size_t avail, uint64_t expect)
{
    if (avail < SEGLOG_REC_HEADER)
        return 0;
    uint32_t len = get32(p + 4);
    uint32_t body = get32(p + 32), opts = get32(p + 36);
    uint8_t idl = p[40];
    if (len < SEGLOG_REC_HEADER || len > REC_MAX || len > avail ||
        (uint64_t)SEGLOG_REC_HEADER + body + opts + idl != len || get64(p + 8) != expect ||
        p[41] != 0 || p[42] != 0 || p[43] != 0)
        return 0;
    if (get32(p) != crc32c(0, p + 4, len - 4))
        return 0;
    return len;
}

static void rec_decode(const uint8_t *p, struct seglog_rec *r)
{
    r->len = get32(p + 4);
    r->seq = get64(p + 8);
    r->time_ms = get64(p + 16);
    r->first = get64(p + 24);
    r->body_len = get32(p + 32);
    r->opts_len = get32(p + 36);
    r->msg_id_len = p[40];
    r->body = p + SEGLOG_REC_HEADER;
    r->opts = r->body + r->body_len;
    r->msg_id = (const char *)(r->opts + r->opts_len);
}

/* Bytes from P up to its last non-zero byte within LEN: 0 when all are zeros. */
static size_t nonzero_extent(const uint8_t *p, size_t len)
{
    while (len > 0 && p[len - 1] == 0)
        len--;
    return len;
}

/*
 * Scans S's records from its header to the end of its file, checking each,
 * building its index and its figures.  Sets *CUT to the bytes past the last
 * good record that are not zeros (a torn tail, when S is the last segment;
 * damage otherwise), *LAST_FIRST to the last record's `first`.
 */
static int seg_scan(struct seglog *lg, struct seg *s, uint64_t *cut, uint64_t *last_first)
{
    struct stat st;
    uint8_t *buf = xmalloc(SCAN_CHUNK);
    size_t cap = SCAN_CHUNK;
    uint64_t off = SEGLOG_HEADER, seq = s->first_seq;
    int rc = 0;

    *cut = 0;
    s->n_ix = 0;
    s->n_ids = 0;
    if (fstat(s->fd, &st) < 0) {
        free(buf);
        return -errno;
    }
    uint64_t size = (uint64_t)st.st_size;
    while (off < size) {
        size_t want = size - off < cap ? (size_t)(size - off) : cap;
        ssize_t n = pread_full(s->fd, buf, want, off);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        size_t pos = 0;
        uint32_t len;
        while ((len = rec_check(buf + pos, (size_t)n - pos, seq)) > 0) {
            struct seglog_rec r;
            rec_decode(buf + pos, &r);
            ix_push(lg, s, seq, off + pos);
            if (s->first_time == 0)
                s->first_time = (int64_t)r.time_ms;
            s->n_ids += r.msg_id_len > 0;
            s->last_time = (int64_t)r.time_ms;
            *last_first = r.first;
            seq++;
            pos += len;
        }
        if (pos == 0) {
            /* No whole record here: a longer one that needs a bigger buffer, or the end. */
            uint32_t need = (size_t)n >= 8 ? get32(buf + 4) : 0;
            if (need > cap && need <= REC_MAX && off + need <= size) {
                cap = need;
                buf = xrealloc(buf, cap);
                continue;
            }
            size_t look = (size_t)n < ZERO_CHECK ? (size_t)n : ZERO_CHECK;
            *cut = nonzero_extent(buf, look);
            break;
        }
        off += pos;
    }
    free(buf);
    s->end = off;
    s->durable_end = off;
    s->last_seq = seq - 1;
    s->durable_last = seq - 1;
    return rc;
}

/* Reads S's index file: 0 when it is whole and agrees with S; -1 otherwise. */
static int idx_load(struct seglog *lg, struct seg *s, bool entries)
{
    char path[4200];
    uint8_t h[IDX_HEADER];
    int fd, rc = -1;

    seg_path(lg, s, "idx", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (pread_full(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, IDX_MAGIC, 8) != 0 ||
        get64(h + 8) != s->first_seq || get32(h + 60) != crc32c(0, h, 60))
        goto out;
    uint32_t n = get32(h + 48);
    uint32_t ecrc = get32(h + 52);
    uint64_t bytes = (uint64_t)n * 16;
    if (n == 0 || n > (1u << 26))
        goto out;
    uint8_t *e = xmalloc(bytes);
    if (pread_full(fd, e, bytes, IDX_HEADER) != (ssize_t)bytes || crc32c(0, e, bytes) != ecrc) {
        free(e);
        goto out;
    }
    if (!entries) {
        s->n_ids = get32(h + 56);
        s->last_seq = s->durable_last = get64(h + 16);
        s->end = s->durable_end = get64(h + 24);
        s->first_time = (int64_t)get64(h + 32);
        s->last_time = (int64_t)get64(h + 40);
    }
    s->n_ix = 0;
    for (uint32_t i = 0; entries && i < n; i++)
        ix_push(lg, s, get64(e + 16 * i), get64(e + 16 * i + 8));
    free(e);
    rc = 0;
out:
    close(fd);
    return rc;
}

/* The contents of S's index file. */
static uint8_t *idx_encode(const struct seg *s, size_t *len)
{
    size_t n = s->n_ix;
    uint8_t *b = xcalloc(1, IDX_HEADER + 16 * n);

    for (size_t i = 0; i < n; i++) {
        put64(b + IDX_HEADER + 16 * i, s->ix[i].seq);
        put64(b + IDX_HEADER + 16 * i + 8, s->ix[i].off);
    }
    memcpy(b, IDX_MAGIC, 8);
    put64(b + 8, s->first_seq);
    put64(b + 16, s->last_seq);
    put64(b + 24, s->end);
    put64(b + 32, (uint64_t)s->first_time);
    put64(b + 40, (uint64_t)s->last_time);
    put32(b + 48, (uint32_t)n);
    put32(b + 52, crc32c(0, b + IDX_HEADER, 16 * n));
    put32(b + 56, s->n_ids);
    put32(b + 60, crc32c(0, b, 60));
    *len = IDX_HEADER + 16 * n;
    return b;
}

/* Opens the segment file for FIRST, or sets it aside; NULL when it cannot be used. */
static struct seg *seg_open_existing(struct seglog *lg, uint64_t first, bool last,
                                     struct seglog_state *st)
{
    char path[4200];
    struct seg *s = seg_new(first, -1);

    seg_path(lg, s, "seg", path, sizeof(path));
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        log_error(lg->log, "stream %s: cannot open %s: %s", lg->name, path, strerror(errno));
        seg_free(lg, s);
        return NULL;
    }
    int h = header_check(s);
    if (h == 1 && last) {
        /* Made just before a crash, before its header was written: it holds no record. */
        log_warning(lg->log, "stream %s: removed %s, cut short before its first record", lg->name,
                    path);
        close(s->fd);
        unlink(path);
        seg_path(lg, s, "idx", path, sizeof(path));
        unlink(path);
        seg_free(lg, s);
        return NULL;
    }
    if (h != 0) {
        close(s->fd);
        s->fd = -1;
        seg_set_aside(lg, s, "has no valid header", st);
        seg_free(lg, s);
        return NULL;
    }
    s->durable_end = SEGLOG_HEADER;
    return s;
}

/* Loads a sealed segment from its index file, or scans it. 0, or -1 when damaged. */
static int seg_load_sealed(struct seglog *lg, struct seg *s, struct seglog_state *st)
{
    uint64_t cut = 0, last_first = 0;

    s->sealed = s->durable_sealed = true;
    if (idx_load(lg, s, false) == 0) {
        s->ix_loaded = false;
        return 0;
    }
    if (seg_scan(lg, s, &cut, &last_first) < 0)
        return -1;
    if (cut > 0) {
        s->damaged = true;
        log_error(lg->log,
                  "stream %s: sealed segment %s.seg is damaged after seq %" PRIu64
                  " (offset %" PRIu64 "); the records after that point are lost",
                  lg->name, s->name, s->last_seq, s->end);
    }
    return 0;
}

/* Scans the last segment and cuts a torn tail back to its last good record. */
static int seg_recover_last(struct seglog *lg, struct seg *s, struct seglog_state *st)
{
    uint64_t cut = 0;
    struct stat sb;

    int rc = seg_scan(lg, s, &cut, &st->last_first);
    if (rc < 0)
        return rc;
    if (fstat(s->fd, &sb) == 0 && (uint64_t)sb.st_size > s->end) {
        /* Cut whatever lies past the last good record, zeros of the preallocation
         * included, so that no stale bytes can ever follow a new record. */
        if (ftruncate(s->fd, (off_t)s->end) < 0 || fdatasync(s->fd) < 0)
            return -errno;
    }
    if (cut > 0) {
        log_warning(lg->log,
                    "stream %s: cut a torn tail in %s.seg after seq %" PRIu64 " (offset %" PRIu64
                    "): %" PRIu64 " bytes of an unfinished write dropped",
                    lg->name, s->name, s->last_seq, s->end, cut);
        st->cut_bytes += cut;
    }
    return 0;
}

/* Builds LG's segment list from the files; sets aside what cannot be used. */
static int recover(struct seglog *lg, struct seglog_state *st)
{
    uint64_t *firsts;
    size_t n;
    int rc = list_segments(lg, &firsts, &n);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        struct seg *s = seg_open_existing(lg, firsts[i], last, st);
        if (s == NULL)
            continue;
        struct seg *prev = seg_last(lg);
        if (prev != NULL && prev->damaged && prev->last_seq < s->first_seq) {
            /* What followed the damage in the sealed segment before is lost;
             * reads skip it (seglog_read), and this one goes on as usual. */
            prev->last_seq = prev->durable_last = s->first_seq - 1;
        }
        if (prev != NULL && prev->last_seq + 1 != s->first_seq) {
            /* A gap or an overlap: this one and those after cannot be trusted. */
            for (size_t k = i; k < n; k++) {
                struct seg *bad = k == i ? s : seg_new(firsts[k], -1);
                if (bad->fd >= 0)
                    close(bad->fd);
                bad->fd = -1;
                seg_set_aside(lg, bad, "does not follow the segment before it", st);
                seg_free(lg, bad);
            }
            break;
        }
        rc = last ? seg_recover_last(lg, s, st) : seg_load_sealed(lg, s, st);
        if (rc < 0 && !last) {
            close(s->fd);
            s->fd = -1;
            seg_set_aside(lg, s, "cannot be read", st);
            seg_free(lg, s);
            /* The rest cannot follow a gap: they go aside in the next round. */
            continue;
        }
        if (rc < 0) {
            free(firsts);
            close(s->fd);
            seg_free(lg, s);
            return rc;
        }
        segs_push(lg, s);
    }
    free(firsts);
    return 0;
}

int seglog_open(const char *dir, const char *name, uint64_t segment_size, struct logger *log,
                struct seglog **out, struct seglog_state *state, char *why, size_t why_len)
{
    struct seglog *lg = xcalloc(1, sizeof(*lg));
    int rc;

    memset(state, 0, sizeof(*state));
    lg->dir = xstrdup(dir);
    lg->name = xstrdup(name);
    lg->log = log;
    lg->segment_size = segment_size;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(why, why_len, "cannot make %s: %s", dir, strerror(errno));
        seglog_close(lg);
        return rc;
    }
    rc = recover(lg, state);
    if (rc < 0) {
        snprintf(why, why_len, "cannot read %s: %s", dir, strerror(-rc));
        seglog_close(lg);
        return rc;
    }
    struct seg *first = lg->n_segs > 0 ? lg->segs[0] : NULL, *l = seg_last(lg);
    state->first_seq = first != NULL ? first->first_seq : 1;
    state->last_seq = l != NULL ? l->last_seq : 0;
    state->segments = (uint32_t)lg->n_segs;
    *out = lg;
    return 0;
}

void seglog_close(struct seglog *lg)
{
    if (lg == NULL)
        return;
    for (size_t i = 0; i < lg->n_segs; i++) {
        if (lg->segs[i]->fd >= 0)
            close(lg->segs[i]->fd);
        seg_free(lg, lg->segs[i]);
    }
    free(lg->segs);
    seglog_job_free(lg->gathering);
    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++)
        free(lg->cache[i].data);
    free(lg->scratch);
    free(lg->dir);
    free(lg->name);
    free(lg);
}

/* --------------------------------------------------------- appending ---- */

/* Seals S: no more records; the job cuts its file and writes its index. */
static void seg_seal(struct seglog *lg, struct seg *s)
{
    struct seglog_job *j = gathering(lg);
    char path[4200];
    struct op *op = job_op(j, OP_SEAL, s->fd, s->end);

    seg_path(lg, s, "idx", path, sizeof(path));
    op->path = xstrdup(path);
    op->buf = idx_encode(s, &op->len);
    op->cap = op->len;
    j->held += op->len;
    s->sealed = true;
    job_mark(j, s);
}

/* Begins the segment whose first record will be FIRST_SEQ. */
static int seg_begin(struct seglog *lg, uint64_t first_seq)
{
    struct seglog_job *j = gathering(lg);
    struct seg *s = seg_new(first_seq, -1);
    char path[4200];

    seg_path(lg, s, "seg", path, sizeof(path));
    s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->fd < 0 && errno == EEXIST) {
        /* Only a file no finished job wrote can have this name (recovery
         * loaded or set aside every other): nothing in it counts. */
        log_warning(lg->log, "stream %s: %s exists; starting it again", lg->name, path);
        s->fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (s->fd < 0) {
        int rc = -errno;
        log_error(lg->log, "stream %s: cannot create %s: %s", lg->name, path, strerror(errno));
        seg_free(lg, s);
        return rc;
    }
    job_op(j, OP_PREALLOC, s->fd, lg->segment_size);
    struct op *w = job_op(j, OP_WRITE, s->fd, 0);
    header_encode(op_room(j, w, SEGLOG_HEADER), first_seq);
    s->end = SEGLOG_HEADER;
    j->dir_changed = true;
    segs_push(lg, s);
    job_mark(j, s);
    return 0;
}

/* The write op for the last segment at its end, appended to when it is the job's last op. */
static struct op *tail_write(struct seglog *lg, struct seg *s)
{
    struct seglog_job *j = gathering(lg);
    struct op *last = j->n_ops > 0 ? &j->ops[j->n_ops - 1] : NULL;

    if (last != NULL && last->kind == OP_WRITE && last->fd == s->fd &&
        last->off + last->len == s->end)
        return last;
    return job_op(j, OP_WRITE, s->fd, s->end);
}

static void rec_encode(uint8_t *p, const struct seglog_rec *r)
{
    put32(p + 4, r->len);
    put64(p + 8, r->seq);
    put64(p + 16, r->time_ms);
    put64(p + 24, r->first);
    put32(p + 32, r->body_len);
    put32(p + 36, r->opts_len);
    p[40] = r->msg_id_len;
    p[41] = p[42] = p[43] = 0;
    uint8_t *d = p + SEGLOG_REC_HEADER;
    memcpy(d, r->body, r->body_len);
    if (r->opts_len > 0)
        memcpy(d + r->body_len, r->opts, r->opts_len);
    if (r->msg_id_len > 0)
        memcpy(d + r->body_len + r->opts_len, r->msg_id, r->msg_id_len);
    put32(p, crc32c(0, p + 4, r->len - 4));
}

int seglog_append(struct seglog *lg, struct seglog_rec *rec)
{
    struct seg *s = seg_last(lg);
    int rc;

    rec->len = seglog_rec_size(rec->body_len, rec->opts_len, rec->msg_id_len);
    if (s != NULL && !s->sealed && s->last_seq >= s->first_seq &&
        s->end + rec->len > lg->segment_size)
        seg_seal(lg, s);
    if (s == NULL || s->sealed) {
        if ((rc = seg_begin(lg, rec->seq)) < 0)
            return rc;
        s = seg_last(lg);
    }
    if (lg->need_truncate) {
        job_op(gathering(lg), OP_TRUNCATE, s->fd, s->end);
        lg->need_truncate = false;
    }
    struct seglog_job *j = gathering(lg);
    struct op *w = tail_write(lg, s);
    rec_encode(op_room(j, w, rec->len), rec);
    ix_push(lg, s, rec->seq, s->end);
    s->end += rec->len;
    s->last_seq = rec->seq;
    if (s->first_time == 0)
        s->first_time = (int64_t)rec->time_ms;
    s->last_time = (int64_t)rec->time_ms;
    s->n_ids += rec->msg_id_len > 0;
    j->bytes += rec->len;
    job_mark(j, s);
    return 0;
}

/* ----------------------------------------------------------- reading ---- */

static struct cache_block *cache_find(struct seglog *lg, const struct seg *s, uint64_t blkno)
{
    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++)
        if (lg->cache[i].seg == s && lg->cache[i].blkno == blkno)
            return &lg->cache[i];
    return NULL;
}

static struct cache_block *cache_victim(struct seglog *lg)
{
    struct cache_block *v = &lg->cache[0];

    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++) {
        if (lg->cache[i].seg == NULL)
            return &lg->cache[i];
        if (lg->cache[i].tick < v->tick)
            v = &lg->cache[i];
    }
    return v;
}

/*
 * N bytes of S at OFF (all below S's durable end), through the cache, or
 * read whole into the scratch buffer when they cross a block.  Returns a
 * pointer valid until the next call, or NULL with *ERR.
 */
static const uint8_t *bytes_at(struct seglog *lg, struct seg *s, uint64_t off, size_t n, int *err)
{
    uint64_t blkno = off / SEGLOG_INDEX_STEP, base = blkno * SEGLOG_INDEX_STEP;

    if (off + n <= base + SEGLOG_INDEX_STEP) {
        struct cache_block *b = cache_find(lg, s, blkno);
        if (b == NULL || b->len < off + n - base) {
            if (b == NULL) {
                b = cache_victim(lg);
                b->seg = NULL;
            }
            if (b->data == NULL)
                b->data = xmalloc(SEGLOG_INDEX_STEP);
            uint64_t want = s->durable_end - base;
            if (want > SEGLOG_INDEX_STEP)
                want = SEGLOG_INDEX_STEP;
            ssize_t got = pread_full(s->fd, b->data, (size_t)want, base);
            if (got < 0 || (uint64_t)got < off + n - base) {
                *err = got < 0 ? (int)got : -EIO;
                return NULL;
            }
            b->seg = s;
            b->blkno = blkno;
            b->len = (uint32_t)got;
        }
        b->tick = ++lg->tick;
        return b->data + (off - base);
    }
    if (n > lg->scratch_cap) {
        free(lg->scratch);
        lg->scratch = xmalloc(n);
        lg->scratch_cap = n;
    }
    ssize_t got = pread_full(s->fd, lg->scratch, n, off);
    if (got != (ssize_t)n) {
        *err = got < 0 ? (int)got : -EIO;
        return NULL;
    }
    return lg->scratch;
}

/* Shrinks the scratch buffer once a large record has been used. */
static void scratch_trim(struct seglog *lg)
{
    if (lg->scratch_cap > SCRATCH_KEEP) {
        free(lg->scratch);
        lg->scratch = NULL;
        lg->scratch_cap = 0;
    }
}

/* Reads and checks the record at OFF in S, which should be SEQ. 0, -EBADMSG, or -errno. */
static int rec_at(struct seglog *lg, struct seg *s, uint64_t off, uint64_t seq,
                  struct seglog_rec *r)
{
    int err = 0;

    if (off + SEGLOG_REC_HEADER > s->durable_end)
        return -EBADMSG;
    const uint8_t *h = bytes_at(lg, s, off, SEGLOG_REC_HEADER, &err);
    if (h == NULL)
        return err;
    uint32_t len = get32(h + 4);
    if (len < SEGLOG_REC_HEADER || len > REC_MAX || off + len > s->durable_end)
        return -EBADMSG;
    const uint8_t *p = bytes_at(lg, s, off, len, &err);
    if (p == NULL)
        return err;
    if (rec_check(p, len, seq) != len)
        return -EBADMSG;
    rec_decode(p, r);
    return 0;
}

static int seg_ix_ready(struct seglog *lg, struct seg *s)
{
    if (s->ix_loaded)
        return 0;
    if (idx_load(lg, s, true) < 0) {
        uint64_t cut, last_first;
        uint64_t end = s->end, last = s->last_seq;
        if (seg_scan(lg, s, &cut, &last_first) < 0)
            return -EIO;
        s->end = s->durable_end = end;
        s->last_seq = s->durable_last = last;
    }
    s->ix_loaded = true;
    return 0;
}

/* The last index entry of S at or below SEQ: its position in S->ix. */
static uint32_t ix_floor(const struct seg *s, uint64_t seq)
{
    uint32_t lo = 0, hi = s->n_ix;

    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->ix[mid].seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/*
 * After damage met while looking for SEQ at OFF in segment I: where reading
 * goes on (the next index entry, or the next segment), as POS.
 */
static void skip_damage(struct seglog *lg, size_t i, uint64_t off, struct seglog_pos *pos)
{
    struct seg *s = lg->segs[i];

    for (uint32_t k = 0; k < s->n_ix; k++) {
        if (s->ix[k].off > off && s->ix[k].seq > pos->seq) {
            pos->seq = s->ix[k].seq;
            pos->seg = s;
            pos->off = s->ix[k].off;
            pos->gen = lg->gen;
            return;
        }
    }
    pos->seq = s->last_seq + 1;
    pos->seg = NULL;
}

/* Finds POS->seq: sets POS->seg and POS->off.  0, SEGLOG_END, -ENOENT, -EBADMSG, -errno. */
static int seek(struct seglog *lg, struct seglog_pos *pos, uint64_t *skipped)
{
    long i = seg_find(lg, pos->seq);
    struct seglog_rec r;

    if (i < 0)
        return lg->n_segs == 0 || pos->seq > seglog_durable_end_seq(lg) ? SEGLOG_END : -ENOENT;
    struct seg *s = lg->segs[i];
    if (pos->seq > s->durable_last)
        return SEGLOG_END;
    int rc = seg_ix_ready(lg, s);
    if (rc < 0)
        return rc;
    uint32_t k = ix_floor(s, pos->seq);
    uint64_t off = s->n_ix > 0 ? s->ix[k].off : SEGLOG_HEADER;
    uint64_t seq = s->n_ix > 0 ? s->ix[k].seq : s->first_seq;
    while (seq < pos->seq) {
        rc = rec_at(lg, s, off, seq, &r);
        if (rc < 0) {
            uint64_t was = pos->seq;
            skip_damage(lg, (size_t)i, off, pos);
            if (skipped != NULL)
                *skipped = pos->seq - was;
            log_error(lg->log,
                      "stream %s: damaged record in %s.seg at offset %" PRIu64 " (seq %" PRIu64
                      "): %" PRIu64 " messages skipped",
                      lg->name, s->name, off, seq, pos->seq - was);
            return rc;
        }
        off += r.len;
        seq++;
    }
    pos->seg = s;
    pos->off = off;
    pos->gen = lg->gen;
    return 0;
}

int seglog_read(struct seglog *lg, struct seglog_pos *pos, struct seglog_rec *rec,
                uint64_t *skipped)
{
    int rc;

    if (skipped != NULL)
        *skipped = 0;
    scratch_trim(lg); /* a large record read before is done with */
    if (pos->seg == NULL || pos->gen != lg->gen) {
        pos->seg = NULL;
        if ((rc = seek(lg, pos, skipped)) != 0)
            return rc;
    }
    struct seg *s = pos->seg;
    if (pos->seq > s->durable_last) {
        long i = seg_index_of(lg, s);
        if (!s->durable_sealed || i < 0 || (size_t)i + 1 >= lg->n_segs ||
            pos->seq > lg->segs[i + 1]->durable_last)
            return SEGLOG_END;
        s = pos->seg = lg->segs[i + 1];
        pos->off = SEGLOG_HEADER;
    }
    rc = rec_at(lg, s, pos->off, pos->seq, rec);
    if (rc == -EBADMSG) {
        uint64_t was = pos->seq;
        skip_damage(lg, (size_t)seg_index_of(lg, s), pos->off, pos);
        if (skipped != NULL)
            *skipped = pos->seq - was;
        log_error(lg->log,
                  "stream %s: damaged record in %s.seg (seq %" PRIu64 "): %" PRIu64
                  " messages skipped",
                  lg->name, s->name, was, pos->seq - was);
        return rc;
    }
    if (rc < 0)
        return rc;
    pos->off += rec->len;
    pos->seq++;
    return 0;
}

/* Record bytes in segments after index I, to their ends. */
static uint64_t bytes_after(const struct seglog *lg, size_t i)
{
    uint64_t n = 0;

    for (size_t k = i + 1; k < lg->n_segs; k++)
        n += lg->segs[k]->end - SEGLOG_HEADER;
    return n;
}

int seglog_bytes_from(struct seglog *lg, uint64_t seq, uint64_t *bytes)
{
    struct seglog_pos pos = {.seq = seq};
    long i = seg_find(lg, seq);

    *bytes = 0;
    if (lg->n_segs == 0)
        return 0;
    if (i < 0)
        return -ENOENT;
    struct seg *s = lg->segs[i];
    if (seq > s->last_seq) {
        *bytes = bytes_after(lg, (size_t)i);
        return 0;
    }
    if (seq == s->durable_last + 1) {
        uint64_t off = s->durable_end > SEGLOG_HEADER ? s->durable_end : SEGLOG_HEADER;
        *bytes = (s->end - off) + bytes_after(lg, (size_t)i);
        return 0;
    }
    if (seq > s->durable_last)
        return -EAGAIN; /* inside what is only gathered */
    int rc = seek(lg, &pos, NULL);
    if (rc < 0)
        return rc;
    if (rc == SEGLOG_END) {
        *bytes = bytes_after(lg, (size_t)i);
        return 0;
    }
    *bytes = (pos.seg->end - pos.off) + bytes_after(lg, (size_t)seg_index_of(lg, pos.seg));
    return 0;
}

/* ------------------------------------------------------------- head ---- */

uint64_t seglog_drop_before(struct seglog *lg, uint64_t first_seq)
{
    uint64_t freed = 0;
    char path[4200], idx[4200];

    while (lg->n_segs > 1) {
        struct seg *s = lg->segs[0];
        if (s->last_seq >= first_seq || !s->durable_sealed || s->durable_end != s->end)
            break;
        seg_path(lg, s, "seg", path, sizeof(path));
        seg_path(lg, s, "idx", idx, sizeof(idx));
        struct op *op = job_op(gathering(lg), OP_UNLINK, s->fd, 0);
        op->path = xstrdup(path);
        op->path2 = xstrdup(idx);
        freed += s->end;
        segs_remove(lg, 0);
        seg_free(lg, s);
    }
    return freed;
}

uint64_t seglog_expired_through(const struct seglog *lg, uint64_t from_seq, int64_t cutoff_ms)
{
    uint64_t through = from_seq;

    for (size_t i = 0; i < lg->n_segs; i++) {
        const struct seg *s = lg->segs[i];
        if (s->last_seq < from_seq)
            continue;
        if (!s->durable_sealed || s->last_time >= cutoff_ms)
            break;
        through = s->last_seq + 1;
    }
    return through;
}

/* -------------------------------------------------------- monitoring ---- */

uint64_t seglog_durable_end_seq(const struct seglog *lg)
{
    for (size_t i = lg->n_segs; i-- > 0;)
        if (lg->segs[i]->durable_end > 0)
            return lg->segs[i]->durable_last;
    return lg->n_segs > 0 ? lg->segs[0]->first_seq - 1 : 0;
}

int seglog_segment_info(const struct seglog *lg, size_t i, struct seglog_segment *out)
{
    if (i >= lg->n_segs)
        return -1;
    const struct seg *s = lg->segs[i];
    out->first_seq = s->first_seq;
    out->last_seq = s->durable_last;
    out->last_time = s->last_time;
    out->sealed = s->durable_sealed;
    out->msg_ids = s->n_ids;
    return 0;
}

uint32_t seglog_segment_count(const struct seglog *lg)
{
    return (uint32_t)lg->n_segs;
}

uint64_t seglog_memory(const struct seglog *lg)
{
    uint64_t n = sizeof(*lg) + lg->cap_segs * sizeof(*lg->segs) + lg->n_segs * sizeof(struct seg) +
                 lg->ix_bytes + lg->scratch_cap + seglog_gathering_bytes(lg);

    for (int i = 0; i < SEGLOG_CACHE_BLOCKS; i++)
        if (lg->cache[i].data != NULL)
            n += SEGLOG_INDEX_STEP;
    return n;
}

const char *seglog_dir(const struct seglog *lg)
{
    return lg->dir;
}
