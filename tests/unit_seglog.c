/*
 * unit_seglog.c - the segment log on its own: records in and out, segments
 * sealed and found again through their index files, recovery from torn
 * tails cut at random offsets and from garbage, damage in a sealed
 * segment, a failed job rolled back (writes to /dev/full), old segments
 * dropped, and CRC-32C against its definition.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "crc32c.h"
#include "log.h"
#include "seglog.h"

static struct logger quiet;
static char dir[256];

static void setup(void)
{
    log_init(&quiet, stderr, LOG_LEVEL_ERROR + 1);
    snprintf(dir, sizeof(dir), "/tmp/pigeon-unit-seglog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void)
{
    rm_rf(dir);
}

/* ------------------------------------------------------------ helpers ---- */

/* The body of record SEQ: a msgpack str topic and a bin payload of a size that varies. */
static size_t body_for(uint64_t seq, uint8_t *out)
{
    size_t n = 0, plen = 20 + (seq * 7919) % 300;
    out[n++] = 0xa0 | 5;
    memcpy(out + n, "t.abc", 5);
    n += 5;
    out[n++] = 0xc5;
    out[n++] = (uint8_t)(plen >> 8);
    out[n++] = (uint8_t)plen;
    for (size_t i = 0; i < plen; i++)
        out[n++] = (uint8_t)(seq + i);
    return n;
}

static struct seglog *open_log(uint64_t segsize, struct seglog_state *st)
{
    struct seglog *lg;
    char why[256];
    char path[300];

    snprintf(path, sizeof(path), "%s/s", dir);
    int rc = seglog_open(path, "s", segsize, &quiet, &lg, st, why, sizeof(why));
    ck_assert_msg(rc == 0, "open: %s", why);
    return lg;
}

static void append_range(struct seglog *lg, uint64_t from, uint64_t to)
{
    uint8_t body[512];
    char id[32];

    for (uint64_t seq = from; seq <= to; seq++) {
        struct seglog_rec r = {.seq = seq, .time_ms = 1000 + seq, .first = 1};
        r.body = body;
        r.body_len = (uint32_t)body_for(seq, body);
        r.msg_id_len = (uint8_t)snprintf(id, sizeof(id), "id-%" PRIu64, seq);
        r.msg_id = id;
        if (seq % 3 == 0) {
            r.opts = (const uint8_t *)"\x81\xa1k\xa1v";
            r.opts_len = 5;
        }
        ck_assert_int_eq(seglog_append(lg, &r), 0);
    }
}

/* Runs the gathered job on this thread and applies it. */
static int commit(struct seglog *lg, bool fsync)
{
    struct seglog_job *j = seglog_job_take(lg);
    uint64_t rolled = 0;

    if (j == NULL)
        return 0;
    seglog_job_run(j, fsync);
    return seglog_job_done(lg, j, &rolled);
}

static void check_record(const struct seglog_rec *r, uint64_t seq)
{
    uint8_t body[512];
    char id[32];
    size_t blen = body_for(seq, body);

    ck_assert_uint_eq(r->seq, seq);
    ck_assert_uint_eq(r->time_ms, 1000 + seq);
    ck_assert_uint_eq(r->body_len, blen);
    ck_assert_int_eq(memcmp(r->body, body, blen), 0);
    ck_assert_uint_eq(r->opts_len, seq % 3 == 0 ? 5 : 0);
    int idl = snprintf(id, sizeof(id), "id-%" PRIu64, seq);
    ck_assert_uint_eq(r->msg_id_len, (unsigned)idl);
    ck_assert_int_eq(memcmp(r->msg_id, id, (size_t)idl), 0);
}

/* Reads FROM..TO in order and checks each; then expects the end. */
static void read_all(struct seglog *lg, uint64_t from, uint64_t to)
{
    struct seglog_pos pos = {0};
    struct seglog_rec r;

    seglog_pos_set(&pos, from);
    for (uint64_t seq = from; seq <= to; seq++) {
        int rc = seglog_read(lg, &pos, &r, NULL);
        ck_assert_msg(rc == 0, "read seq %" PRIu64 ": %d", seq, rc);
        check_record(&r, seq);
    }
    ck_assert_int_eq(seglog_read(lg, &pos, &r, NULL), SEGLOG_END);
}

static int count_files(const char *suffix)
{
    char path[300];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "%s/s", dir);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The path of the last segment file (highest name). */
static void last_segment(char *out, size_t len)
{
    char path[300];
    DIR *d;
    struct dirent *e;
    char best[64] = "";

    snprintf(path, sizeof(path), "%s/s", dir);
    d = opendir(path);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l == 24 && strcmp(e->d_name + 20, ".seg") == 0 && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
    }
    closedir(d);
    snprintf(out, len, "%s/%s", path, best);
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

/* ---------------------------------------------------------------- crc ---- */

START_TEST(test_crc32c_known)
{
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(crc32c_sw(0, "123456789", 9), 0xe3069283u);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len < sizeof(buf); len += 37) {
        ck_assert_uint_eq(crc32c(0, buf, len), crc32c_sw(0, buf, len));
        /* extending equals computing at once */
        ck_assert_uint_eq(crc32c(crc32c(0, buf, len / 2), buf + len / 2, len - len / 2),
                          crc32c(0, buf, len));
    }
}
END_TEST

/* ------------------------------------------------------------ records ---- */

START_TEST(test_roundtrip)
{
    struct seglog_state st;
    struct seglog *lg = open_log(1 << 20, &st);

    ck_assert_uint_eq(st.first_seq, 1);
    ck_assert_uint_eq(st.last_seq, 0);
    append_range(lg, 1, 500);
    /* nothing is durable before the job has run */
    struct seglog_pos pos = {0};
    struct seglog_rec r;
    seglog_pos_set(&pos, 1);
    ck_assert_int_eq(seglog_read(lg, &pos, &r, NULL), SEGLOG_END);
    ck_assert_int_eq(commit(lg, false), 0);
    read_all(lg, 1, 500);
    read_all(lg, 250, 500);
    ck_assert_uint_eq(seglog_durable_end_seq(lg), 500);
    seglog_close(lg);

    lg = open_log(1 << 20, &st);
    ck_assert_uint_eq(st.first_seq, 1);
    ck_assert_uint_eq(st.last_seq, 500);
    ck_assert_uint_eq(st.last_first, 1);
    ck_assert_uint_eq(st.cut_bytes, 0);
    read_all(lg, 1, 500);
    append_range(lg, 501, 600);
    ck_assert_int_eq(commit(lg, true), 0);
    read_all(lg, 1, 600);
    seglog_close(lg);
}
END_TEST

START_TEST(test_segments_and_index)
{
    struct seglog_state st;
    struct seglog *lg = open_log(64 * 1024, &st);

    for (uint64_t from = 1; from <= 3000; from += 100) {
        append_range(lg, from, from + 99);
        ck_assert_int_eq(commit(lg, false), 0);
    }
    ck_assert_uint_gt(seglog_segment_count(lg), 5);
    read_all(lg, 1, 3000);
    seglog_close(lg);
    ck_assert_int_eq(count_files(".idx"), count_files(".seg") - 1);

    lg = open_log(64 * 1024, &st);
    ck_assert_uint_eq(st.last_seq, 3000);
    struct seglog_segment info;
    ck_assert_int_eq(seglog_segment_info(lg, 0, &info), 0);
    ck_assert(info.sealed);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_gt(info.msg_ids, 0); /* every record has one: counted in the index file */
    ck_assert_uint_eq(info.msg_ids, info.last_seq - info.first_seq + 1);
    ck_assert_int_eq(seglog_segment_info(lg, seglog_segment_count(lg), &info), -1);
    for (uint64_t seq = 1; seq <= 3000; seq += 293)
        read_all(lg, seq, 3000);
    uint64_t all, tail;
    ck_assert_int_eq(seglog_bytes_from(lg, 1, &all), 0);
    ck_assert_int_eq(seglog_bytes_from(lg, 2001, &tail), 0);
    ck_assert_uint_gt(all, tail);
    ck_assert_uint_eq(seglog_bytes_from(lg, 3001, &tail), 0);
    ck_assert_uint_eq(tail, 0);
    seglog_close(lg);

    /* An index file lost: the segment is scanned instead. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -f %s/s/00000000000000000001.idx", dir);
    ck_assert_int_eq(system(cmd), 0);
    lg = open_log(64 * 1024, &st);
    read_all(lg, 1, 3000);
    seglog_close(lg);
}
END_TEST

/* Cuts the last segment at a random offset, many times: what survives is a prefix. */
START_TEST(test_torn_tail_random)
{
    struct seglog_state st;
    struct seglog *lg = open_log(256 * 1024, &st);
    uint64_t last = 0;
    unsigned seed = 12345;

    for (int round = 0; round < 60; round++) {
        append_range(lg, last + 1, last + 80);
        ck_assert_int_eq(commit(lg, false), 0);
        last += 80;
        seglog_close(lg);

        /* reopened once, the file is cut to its last record (no preallocated zeros) */
        lg = open_log(256 * 1024, &st);
        seglog_close(lg);
        char path[600];
        last_segment(path, sizeof(path));
        off_t size = file_size(path);
        off_t cut = 32 + (off_t)(rand_r(&seed) % (unsigned)(size - 32 + 1));
        ck_assert_int_eq(truncate(path, cut), 0);

        lg = open_log(256 * 1024, &st);
        ck_assert_uint_le(st.last_seq, last);
        /* every surviving record is whole and in order */
        read_all(lg, 1, st.last_seq);
        last = st.last_seq;
        /* a cut inside a record is reported */
        ck_assert_uint_eq(file_size(path) <= cut, 1);
    }
    seglog_close(lg);
}
END_TEST

START_TEST(test_garbage_tail)
{
    struct seglog_state st;
    struct seglog *lg = open_log(1 << 20, &st);

    append_range(lg, 1, 100);
    ck_assert_int_eq(commit(lg, false), 0);
    seglog_close(lg);
    lg = open_log(1 << 20, &st); /* cut to the last record */
    seglog_close(lg);

    char path[600];
    last_segment(path, sizeof(path));
    off_t size = file_size(path);
    int fd = open(path, O_RDWR);
    uint8_t junk[3000];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 13 + 1);
    ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), size), (ssize_t)sizeof(junk));
    /* and flip a byte inside the last record: its checksum fails */
    uint8_t b;
    ck_assert_int_eq(pread(fd, &b, 1, size - 5), 1);
    b ^= 0x40;
    ck_assert_int_eq(pwrite(fd, &b, 1, size - 5), 1);
    close(fd);

    lg = open_log(1 << 20, &st);
    ck_assert_uint_eq(st.last_seq, 99);
    ck_assert_uint_gt(st.cut_bytes, 0);
    read_all(lg, 1, 99);
    /* appends go on from there, and survive another reopen */
    append_range(lg, 100, 150);
    ck_assert_int_eq(commit(lg, false), 0);
    seglog_close(lg);
    lg = open_log(1 << 20, &st);
    ck_assert_uint_eq(st.last_seq, 150);
    ck_assert_uint_eq(st.cut_bytes, 0);
    read_all(lg, 1, 150);
    seglog_close(lg);
}
END_TEST

START_TEST(test_damage_in_sealed_segment)
{
    struct seglog_state st;
    struct seglog *lg = open_log(32 * 1024, &st);

    append_range(lg, 1, 1000);
    ck_assert_int_eq(commit(lg, false), 0);
    seglog_close(lg);
    char path[600], cmd[700];
    snprintf(path, sizeof(path), "%s/s/00000000000000000001.seg", dir);
    snprintf(cmd, sizeof(cmd), "rm -f %s/s/00000000000000000001.idx", dir);
    ck_assert_int_eq(system(cmd), 0);
    int fd = open(path, O_RDWR);
    uint8_t b;
    ck_assert_int_eq(pread(fd, &b, 1, 20000), 1);
    b ^= 1;
    ck_assert_int_eq(pwrite(fd, &b, 1, 20000), 1);
    close(fd);

    lg = open_log(32 * 1024, &st);
    ck_assert_uint_eq(st.last_seq, 1000);
    ck_assert_uint_eq(st.set_aside, 0);
    /* reading goes past the damage into the next segment */
    struct seglog_pos pos = {0};
    struct seglog_rec r;
    uint64_t skipped = 0, lost = 0, got = 0;
    seglog_pos_set(&pos, 1);
    for (;;) {
        int rc = seglog_read(lg, &pos, &r, &skipped);
        if (rc == SEGLOG_END)
            break;
        if (rc == -EBADMSG) {
            lost += skipped;
            continue;
        }
        ck_assert_int_eq(rc, 0);
        check_record(&r, r.seq);
        got++;
    }
    ck_assert_uint_gt(lost, 0);
    ck_assert_uint_eq(got + lost, 1000);
    seglog_close(lg);
}
END_TEST

/* The fd the log has open on PATH. */
static int fd_of(const char *path)
{
    char link[64], target[600];
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) == 0)
            return fd;
    }
    return -1;
}

START_TEST(test_failed_job_rolls_back)
{
    struct seglog_state st;
    struct seglog *lg = open_log(1 << 20, &st);
    char path[600], real[600];

    append_range(lg, 1, 100);
    ck_assert_int_eq(commit(lg, false), 0);
    last_segment(path, sizeof(path));
    ck_assert_ptr_nonnull(realpath(path, real));
    int fd = fd_of(real);
    ck_assert_int_ge(fd, 0);
    int saved = dup(fd);
    int full = open("/dev/full", O_WRONLY);
    ck_assert_int_ge(full, 0);
    ck_assert_int_eq(dup2(full, fd), fd);

    append_range(lg, 101, 150);
    struct seglog_job *j = seglog_job_take(lg);
    ck_assert_ptr_nonnull(j);
    append_range(lg, 151, 160); /* gathered while the job runs: rolled back too */
    seglog_job_run(j, false);
    const char *what;
    ck_assert_int_eq(seglog_job_error(j, &what), -ENOSPC);
    uint64_t rolled = 0;
    ck_assert_int_eq(seglog_job_done(lg, j, &rolled), -ENOSPC);
    ck_assert_uint_eq(rolled, 100);

    /* the disk is back: appends resume at 101 */
    ck_assert_int_eq(dup2(saved, fd), fd);
    close(saved);
    close(full);
    read_all(lg, 1, 100);
    append_range(lg, 101, 120);
    ck_assert_int_eq(commit(lg, true), 0);
    read_all(lg, 1, 120);
    seglog_close(lg);
    lg = open_log(1 << 20, &st);
    ck_assert_uint_eq(st.last_seq, 120);
    ck_assert_uint_eq(st.cut_bytes, 0);
    read_all(lg, 1, 120);
    seglog_close(lg);
}
END_TEST

START_TEST(test_drop_before)
{
    struct seglog_state st;
    struct seglog *lg = open_log(16 * 1024, &st);

    append_range(lg, 1, 1000);
    ck_assert_int_eq(commit(lg, false), 0);
    int segs = count_files(".seg");
    ck_assert_int_gt(segs, 5);
    ck_assert_uint_gt(seglog_drop_before(lg, 700), 0);
    ck_assert_int_eq(commit(lg, true), 0);
    ck_assert_int_lt(count_files(".seg"), segs);
    read_all(lg, 700, 1000);
    struct seglog_pos pos = {0};
    struct seglog_rec r;
    seglog_pos_set(&pos, 1);
    ck_assert_int_eq(seglog_read(lg, &pos, &r, NULL), -ENOENT);
    /* never the last segment */
    seglog_drop_before(lg, 5000);
    ck_assert_int_eq(commit(lg, true), 0);
    ck_assert_int_ge(count_files(".seg"), 1);
    seglog_close(lg);
    lg = open_log(16 * 1024, &st);
    ck_assert_uint_eq(st.last_seq, 1000);
    seglog_close(lg);
}
END_TEST

START_TEST(test_bad_header_set_aside)
{
    struct seglog_state st;
    struct seglog *lg = open_log(16 * 1024, &st);

    append_range(lg, 1, 500);
    ck_assert_int_eq(commit(lg, false), 0);
    seglog_close(lg);
    char path[600];
    snprintf(path, sizeof(path), "%s/s/00000000000000000001.seg", dir);
    int fd = open(path, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "XXXXXXXX", 8, 0), 8);
    close(fd);
    lg = open_log(16 * 1024, &st);
    /* the first segment and, since the rest no longer follow anything, nothing else */
    ck_assert_uint_ge(st.set_aside, 1);
    ck_assert_int_ge(count_files(".seg.broken-0") + 1, 1);
    seglog_close(lg);
}
END_TEST

static Suite *seglog_suite(void)
{
    Suite *s = suite_create("seglog");
    TCase *tc = tcase_create("records");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c_known);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_segments_and_index);
    suite_add_tcase(s, tc);

    tc = tcase_create("recovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_torn_tail_random);
    tcase_add_test(tc, test_garbage_tail);
    tcase_add_test(tc, test_damage_in_sealed_segment);
    tcase_add_test(tc, test_failed_job_rolls_back);
    tcase_add_test(tc, test_bad_header_set_aside);
    suite_add_tcase(s, tc);

    tc = tcase_create("head");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_drop_before);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(seglog_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
