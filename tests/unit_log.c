/*
 * unit_log.c - the log module: the line format, level filtering, escaping
 * and cutting, journald detection and its "<N>" prefix, level names, and the
 * ratelimit token bucket on a fake clock.
 *
 * Tests that set JOURNAL_STREAM unset it again, so they also pass with
 * CK_FORK=no (under gdb or valgrind), where the environment is shared.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---------------------------------------------------------- helpers ---- */

/* Everything written to F so far, NUL-terminated; the caller frees it. */
static char *stream_text(FILE *f)
{
    long len;
    char *buf;

    fflush(f);
    len = ftell(f);
    ck_assert_int_ge(len, 0);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    rewind(f);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A logger on a fresh temporary file, journald detection off. */
static FILE *logger_on_tmpfile(struct logger *lg, enum log_level level)
{
    FILE *f = tmpfile();

    ck_assert_ptr_nonnull(f);
    unsetenv("JOURNAL_STREAM");
    log_init(lg, f, level);
    ck_assert(!lg->journal);
    return f;
}

/* Points JOURNAL_STREAM at F's file (or, with BUMP, at another inode). */
static void journal_stream_set(FILE *f, int bump)
{
    struct stat st;
    char env[64];

    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (unsigned long long)bump);
    setenv("JOURNAL_STREAM", env, 1);
}

/* ----------------------------------------------------------- format ---- */

START_TEST(test_line_format)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    char pattern[256], *text;
    regex_t re;

    log_info(&lg, "listening on %s:%d", "127.0.0.1", 7400);
    text = stream_text(f);
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
             "pigeond\\[%ld\\]: info listening on 127\\.0\\.0\\.1:7400\n$",
             (long)getpid());
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "line: '%s'", text);
    regfree(&re);
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_timestamp_is_utc_now)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    struct timespec before, after; /* not time(): its coarse clock may lag */
    time_t stamp;
    struct tm tm;
    char *text, *rest;

    clock_gettime(CLOCK_REALTIME, &before);
    log_notice(&lg, "tick");
    clock_gettime(CLOCK_REALTIME, &after);
    text = stream_text(f);
    memset(&tm, 0, sizeof(tm));
    rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(rest);
    stamp = timegm(&tm);
    ck_assert_int_ge(stamp, before.tv_sec);
    ck_assert_int_le(stamp, after.tv_sec);
    ck_assert_msg(strncmp(rest + 4, "Z pigeond[", 10) == 0, "line: '%s'", text);
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_level_names_in_lines)
{
    static const char *const names[] = {"debug", "info", "notice", "warning", "error"};
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    char *text, *line, *save = NULL, needle[32];
    int i = 0;

    log_debug(&lg, "m");
    log_info(&lg, "m");
    log_notice(&lg, "m");
    log_warning(&lg, "m");
    log_error(&lg, "m");
    text = stream_text(f);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        snprintf(needle, sizeof(needle), "]: %s m", names[i]);
        ck_assert_msg(strstr(line, needle) != NULL, "line %d: '%s'", i, line);
    }
    ck_assert_int_eq(i, 5);
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_control_chars_escaped)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    char *text;

    log_warning(&lg, "topic 'a\nb\r\x1b[31m\x7f' tab\there");
    text = stream_text(f);
    ck_assert_uint_eq(count_lines(text), 1);
    ck_assert_msg(strstr(text, "topic 'a\\x0ab\\x0d\\x1b[31m\\x7f' tab\there\n") != NULL,
                  "line: '%s'", text);
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_long_line_cut)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    char *big = malloc(5000), *text;
    size_t len;

    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    log_error(&lg, "%s", big);
    text = stream_text(f);
    len = strlen(text);
    ck_assert_uint_eq(count_lines(text), 1);
    ck_assert_uint_eq(len, 1024);
    ck_assert_str_eq(text + len - 6, "xx...\n");
    free(text);
    fclose(f);

    /* Escapes that would pass the end are cut whole. */
    f = logger_on_tmpfile(&lg, LOG_LEVEL_DEBUG);
    memset(big, '\n', 4999);
    log_error(&lg, "%s", big);
    text = stream_text(f);
    len = strlen(text);
    ck_assert_uint_eq(count_lines(text), 1);
    ck_assert_uint_le(len, 1024);
    ck_assert_str_eq(text + len - 4, "...\n");
    ck_assert_ptr_nonnull(strstr(text, "\\x0a\\x0a"));
    free(text);
    fclose(f);
    free(big);
}
END_TEST

/* -------------------------------------------------------- filtering ---- */

START_TEST(test_level_filter)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_WARNING);
    char *text;

    log_debug(&lg, "no");
    log_info(&lg, "no");
    log_notice(&lg, "no");
    log_warning(&lg, "yes 1");
    log_error(&lg, "yes 2");
    text = stream_text(f);
    ck_assert_uint_eq(count_lines(text), 2);
    ck_assert_ptr_null(strstr(text, "no"));
    ck_assert_ptr_nonnull(strstr(text, "warning yes 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "error yes 2\n"));
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_level_change)
{
    struct logger lg;
    FILE *f = logger_on_tmpfile(&lg, LOG_LEVEL_ERROR);
    char *text;

    log_info(&lg, "dropped");
    lg.level = LOG_LEVEL_DEBUG; /* as a SIGHUP reload does */
    log_debug(&lg, "kept");
    text = stream_text(f);
    ck_assert_uint_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "debug kept\n"));
    free(text);
    fclose(f);
}
END_TEST

/* ---------------------------------------------------------- journald ---- */

START_TEST(test_journal_prefix)
{
    FILE *f = tmpfile();
    struct logger lg;
    char *text;

    ck_assert_ptr_nonnull(f);
    journal_stream_set(f, 0);
    log_init(&lg, f, LOG_LEVEL_DEBUG);
    unsetenv("JOURNAL_STREAM");
    ck_assert(lg.journal);

    log_debug(&lg, "d %d", 7);
    log_info(&lg, "i");
    log_notice(&lg, "n");
    log_warning(&lg, "w");
    log_error(&lg, "e");
    text = stream_text(f);
    ck_assert_str_eq(text, "<7>debug d 7\n<6>info i\n<5>notice n\n<4>warning w\n<3>error e\n");
    free(text);
    fclose(f);
}
END_TEST

START_TEST(test_journal_needs_matching_fd)
{
    FILE *f = tmpfile(), *mem;
    struct logger lg;
    char *buf = NULL;
    size_t len = 0;

    ck_assert_ptr_nonnull(f);
    journal_stream_set(f, 1); /* another inode: inherited, stderr redirected */
    log_init(&lg, f, LOG_LEVEL_DEBUG);
    ck_assert(!lg.journal);

    journal_stream_set(f, 0);
    mem = open_memstream(&buf, &len); /* no file descriptor at all */
    ck_assert_ptr_nonnull(mem);
    log_init(&lg, mem, LOG_LEVEL_DEBUG);
    ck_assert(!lg.journal);
    fclose(mem);
    free(buf);

    static const char *const malformed[] = {"", "12", "12:", ":12", "a:b", "1:2x", " 1:2", "-1:2"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        setenv("JOURNAL_STREAM", malformed[i], 1);
        log_init(&lg, f, LOG_LEVEL_DEBUG);
        ck_assert_msg(!lg.journal, "JOURNAL_STREAM='%s'", malformed[i]);
    }
    unsetenv("JOURNAL_STREAM");
    log_init(&lg, f, LOG_LEVEL_DEBUG);
    ck_assert(!lg.journal);
    fclose(f);
}
END_TEST

/* ------------------------------------------------------------ names ---- */

START_TEST(test_level_parse)
{
    static const char *const names[] = {"debug", "info", "notice", "warning", "error"};
    enum log_level lv;

    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(log_level_parse(names[i], &lv), 0);
        ck_assert_int_eq(lv, i);
        ck_assert_str_eq(log_level_name(lv), names[i]);
    }
    lv = LOG_LEVEL_NOTICE;
    ck_assert_int_eq(log_level_parse("INFO", &lv), -1);
    ck_assert_int_eq(log_level_parse("warn", &lv), -1);
    ck_assert_int_eq(log_level_parse("", &lv), -1);
    ck_assert_int_eq(log_level_parse("info ", &lv), -1);
    ck_assert_int_eq(lv, LOG_LEVEL_NOTICE);
    ck_assert_str_eq(log_level_name((enum log_level)42), "unknown");
}
END_TEST

/* -------------------------------------------------------- ratelimit ---- */

START_TEST(test_ratelimit_burst_then_refill)
{
    struct log_ratelimit rl;
    uint64_t sup = 99;

    log_ratelimit_init(&rl, 3, 1000);
    for (int i = 0; i < 3; i++) {
        ck_assert(log_ratelimit_ok(&rl, 10, &sup));
        ck_assert_uint_eq(sup, 0);
    }
    ck_assert(!log_ratelimit_ok(&rl, 10, &sup));
    ck_assert_uint_eq(sup, 1);
    ck_assert(!log_ratelimit_ok(&rl, 500, &sup));
    ck_assert_uint_eq(sup, 2);
    ck_assert(!log_ratelimit_ok(&rl, 999, &sup));
    ck_assert_uint_eq(sup, 3);

    /* One interval: one token, and the count of what was refused. */
    ck_assert(log_ratelimit_ok(&rl, 1000, &sup));
    ck_assert_uint_eq(sup, 3);
    ck_assert(!log_ratelimit_ok(&rl, 1001, &sup));
    ck_assert_uint_eq(sup, 1);

    /* 2.5 intervals later: two tokens; the half interval carries over. */
    ck_assert(log_ratelimit_ok(&rl, 3500, &sup));
    ck_assert_uint_eq(sup, 1);
    ck_assert(log_ratelimit_ok(&rl, 3500, &sup));
    ck_assert_uint_eq(sup, 0);
    ck_assert(!log_ratelimit_ok(&rl, 3999, &sup));
    ck_assert(log_ratelimit_ok(&rl, 4000, &sup));
    ck_assert_uint_eq(sup, 1);
}
END_TEST

START_TEST(test_ratelimit_caps_at_burst)
{
    struct log_ratelimit rl;
    uint64_t sup;
    int ok = 0;

    log_ratelimit_init(&rl, 2, 100);
    ck_assert(log_ratelimit_ok(&rl, 0, &sup));
    ck_assert(log_ratelimit_ok(&rl, 0, &sup));
    /* A long silence refills the bucket only to BURST. */
    for (int i = 0; i < 10; i++)
        ok += log_ratelimit_ok(&rl, 1000000, &sup);
    ck_assert_int_eq(ok, 2);
    ck_assert_uint_eq(sup, 8);
    /* And keeps no credit from the silence. */
    ck_assert(!log_ratelimit_ok(&rl, 1000099, &sup));
    ck_assert(log_ratelimit_ok(&rl, 1000100, &sup));
    ck_assert_uint_eq(sup, 9);
}
END_TEST

START_TEST(test_ratelimit_edges)
{
    struct log_ratelimit rl;
    uint64_t sup;

    log_ratelimit_init(&rl, 1, 0); /* no interval: no limit */
    for (int i = 0; i < 100; i++)
        ck_assert(log_ratelimit_ok(&rl, 0, &sup));

    log_ratelimit_init(&rl, 0, 1000); /* no burst: nothing */
    ck_assert(!log_ratelimit_ok(&rl, 0, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 1000000, &sup));
    ck_assert_uint_eq(sup, 2);

    log_ratelimit_init(&rl, 1, 1000); /* a clock that steps back refills nothing */
    ck_assert(log_ratelimit_ok(&rl, 5000, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 100, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 5999, NULL));
    ck_assert(log_ratelimit_ok(&rl, 6000, &sup));
    ck_assert_uint_eq(sup, 2);

    log_ratelimit_init(&rl, UINT32_MAX, 1); /* huge values do not overflow */
    ck_assert(log_ratelimit_ok(&rl, UINT64_MAX, &sup));
    ck_assert(log_ratelimit_ok(&rl, UINT64_MAX, &sup));
    ck_assert_uint_eq(rl.tokens, UINT32_MAX - 2);
}
END_TEST

/* A burst followed by silence: the timer's flush reports the count once the
 * bucket has a token, and only then. */
START_TEST(test_ratelimit_flush)
{
    struct log_ratelimit rl;
    uint64_t n = 99;

    log_ratelimit_init(&rl, 2, 1000);
    ck_assert(!log_ratelimit_flush(&rl, 0, &n)); /* nothing suppressed */
    ck_assert_uint_eq(n, 0);
    ck_assert(log_ratelimit_ok(&rl, 10, NULL));
    ck_assert(log_ratelimit_ok(&rl, 10, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 10, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 20, NULL));
    ck_assert(log_ratelimit_pending(&rl));
    ck_assert(!log_ratelimit_flush(&rl, 500, &n)); /* still empty */
    ck_assert_uint_eq(n, 0);
    ck_assert(log_ratelimit_pending(&rl));
    ck_assert(log_ratelimit_flush(&rl, 1010, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert(!log_ratelimit_pending(&rl));
    ck_assert(!log_ratelimit_flush(&rl, 5000, &n)); /* reported once */
    ck_assert_uint_eq(n, 0);
    /* The flush took the refilled token: a warning right after waits. */
    log_ratelimit_init(&rl, 1, 1000);
    ck_assert(log_ratelimit_ok(&rl, 0, NULL));
    ck_assert(!log_ratelimit_ok(&rl, 1, NULL));
    ck_assert(log_ratelimit_flush(&rl, 1000, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert(!log_ratelimit_ok(&rl, 1001, &n));
    ck_assert_uint_eq(n, 1);
    /* No limit: nothing is ever suppressed or flushed. */
    log_ratelimit_init(&rl, 0, 0);
    ck_assert(log_ratelimit_ok(&rl, 0, NULL));
    ck_assert(!log_ratelimit_flush(&rl, 0, &n));
    ck_assert(!log_ratelimit_pending(&rl));
}
END_TEST

/* ------------------------------------------------------------ suite ---- */

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc;

    tc = tcase_create("format");
    tcase_add_test(tc, test_line_format);
    tcase_add_test(tc, test_timestamp_is_utc_now);
    tcase_add_test(tc, test_level_names_in_lines);
    tcase_add_test(tc, test_control_chars_escaped);
    tcase_add_test(tc, test_long_line_cut);
    suite_add_tcase(s, tc);

    tc = tcase_create("filtering");
    tcase_add_test(tc, test_level_filter);
    tcase_add_test(tc, test_level_change);
    suite_add_tcase(s, tc);

    tc = tcase_create("journald");
    tcase_add_test(tc, test_journal_prefix);
    tcase_add_test(tc, test_journal_needs_matching_fd);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_level_parse);
    suite_add_tcase(s, tc);

    tc = tcase_create("ratelimit");
    tcase_add_test(tc, test_ratelimit_burst_then_refill);
    tcase_add_test(tc, test_ratelimit_caps_at_burst);
    tcase_add_test(tc, test_ratelimit_edges);
    tcase_add_test(tc, test_ratelimit_flush);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
