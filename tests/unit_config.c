/*
 * unit_config.c - the config module: defaults, units, good files, every kind
 * of bad file (with its exact line and reason), files on disk (FIFOs and
 * devices refused), the sample conf/pigeond.conf, the command line's
 * listeners, the differences a reload logs (config_diff), and the key
 * tables themselves: every key of every type round-trips through parse,
 * format and parse again.
 *
 * Environment (set by meson; each test that needs one passes, with a note,
 * when it is unset):
 *   PIGEON_SAMPLE_CONF   path of conf/pigeond.conf: it must parse, and every
 *                        key config.c accepts must appear in it
 *   PIGEON_CONFIG_DOC    path of docs/configuration.md: every key must appear
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* ---------------------------------------------------------- helpers ---- */

/* Parses TEXT, which must succeed; the caller frees the result. */
#define LOAD_OK(text) load_ok(__LINE__, (text))

/* Parses TEXT, which must fail at LINE with WHY somewhere in the reason. */
#define LOAD_BAD(text, line, why) load_bad(__LINE__, (text), (line), (why))

static struct config *load_ok(int src_line, const char *text)
{
    struct config *conf = NULL;
    struct config_error err;
    int rc = config_load_string(text, "test.conf", &conf, &err);

    ck_assert_msg(rc == 0, "line %d: expected success, got %s:%d: %s", src_line, err.file, err.line,
                  err.reason);
    ck_assert_ptr_nonnull(conf);
    return conf;
}

static void load_bad(int src_line, const char *text, int line, const char *why)
{
    static struct config sentinel;
    struct config *conf = &sentinel; /* must stay untouched */
    struct config *before = conf;
    struct config_error err;
    int rc = config_load_string(text, "bad.conf", &conf, &err);

    ck_assert_msg(rc == -1, "line %d: expected an error '%s', the file parsed", src_line, why);
    ck_assert_msg(conf == before, "line %d: *out changed on failure", src_line);
    ck_assert_str_eq(err.file, "bad.conf");
    ck_assert_msg(err.line == line && strstr(err.reason, why) != NULL,
                  "line %d: expected line %d '%s', got line %d '%s'", src_line, line, why, err.line,
                  err.reason);
}

/* Writes TEXT to a new temporary file; returns its path (free it, unlink it). */
static char *temp_file(const char *text, size_t len)
{
    char *path = strdup("/tmp/pigeon-unit-config-XXXXXX");
    int fd;

    ck_assert_ptr_nonnull(path);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* The whole of PATH, NUL-terminated; the caller frees it. */
static char *file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long len;

    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* --------------------------------------------------------- defaults ---- */

START_TEST(test_defaults)
{
    struct config *conf = config_new_defaults();

    ck_assert_ptr_null(conf->path);
    ck_assert_int_eq(conf->io_backend, CONFIG_IO_AUTO);
    ck_assert_int_eq(conf->log_level, LOG_LEVEL_INFO);
    ck_assert_uint_eq(conf->max_payload, 1024 * 1024);
    ck_assert_uint_eq(conf->max_connections, 10000);
    ck_assert_uint_eq(conf->max_subscriptions, 1000000);
    ck_assert_uint_eq(conf->max_subscriptions_per_connection, 10000);
    ck_assert_uint_eq(conf->max_memory, 0); /* auto */
    ck_assert_uint_eq(conf->max_outbound, 64 * 1024 * 1024);
    ck_assert_int_eq(conf->slow_consumer, CONFIG_SLOW_DISCONNECT);
    ck_assert_uint_eq(conf->max_retained, 64 * 1024 * 1024);
    ck_assert_uint_eq(conf->idle_timeout_ms, 5 * 60 * 1000);
    ck_assert_uint_eq(conf->drain_timeout_ms, 5000);
    ck_assert_uint_eq(conf->n_listeners, 1);
    ck_assert_str_eq(conf->listeners[0].name, "default");
    ck_assert_str_eq(conf->listeners[0].bind, "127.0.0.1:7400");
    ck_assert_int_eq(conf->listeners[0].kind, CONFIG_LISTEN_TCP);
    ck_assert_str_eq(conf->listeners[0].host, "127.0.0.1");
    ck_assert_uint_eq(conf->listeners[0].port, 7400);
    ck_assert_ptr_null(conf->listeners[0].path);
    config_unref(conf);
    config_unref(NULL);
}
END_TEST

START_TEST(test_empty_file_is_defaults)
{
    struct config *def = config_new_defaults();
    struct config *conf = LOAD_OK("; nothing but a comment\n\n");

    ck_assert_str_eq(conf->path, "test.conf");
    ck_assert_uint_eq(conf->max_payload, def->max_payload);
    ck_assert_uint_eq(conf->idle_timeout_ms, def->idle_timeout_ms);
    ck_assert_uint_eq(conf->n_listeners, 1);
    ck_assert(config_listener_same(&conf->listeners[0], &def->listeners[0]));
    ck_assert_str_eq(conf->listeners[0].name, "default");
    config_unref(conf);
    config_unref(def);

    conf = LOAD_OK("");
    ck_assert_uint_eq(conf->n_listeners, 1);
    config_unref(conf);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(config_io_backend_name(CONFIG_IO_AUTO), "auto");
    ck_assert_str_eq(config_io_backend_name(CONFIG_IO_EPOLL), "epoll");
    ck_assert_str_eq(config_io_backend_name(CONFIG_IO_KQUEUE), "kqueue");
    ck_assert_str_eq(config_io_backend_name(CONFIG_IO_POLL), "poll");
    ck_assert_str_eq(config_io_backend_name(CONFIG_IO_SELECT), "select");
    ck_assert_str_eq(config_io_backend_name((enum config_io_backend)99), "unknown");
    ck_assert_str_eq(config_slow_policy_name(CONFIG_SLOW_DISCONNECT), "disconnect");
    ck_assert_str_eq(config_slow_policy_name(CONFIG_SLOW_DROP), "drop");
    ck_assert_str_eq(config_slow_policy_name((enum config_slow_policy)99), "unknown");
}
END_TEST

START_TEST(test_key_table)
{
    const char *section, *key;
    size_t i;

    for (i = 0; config_key_at(i, &section, &key); i++)
        ck_assert(strcmp(section, "broker") == 0 || strcmp(section, "listener") == 0 ||
                  strcmp(section, "http") == 0 || strcmp(section, "auth") == 0 ||
                  strcmp(section, "cluster") == 0 || strcmp(section, "store") == 0 ||
                  strcmp(section, "stream") == 0);
    ck_assert_uint_eq(i, 45);
    ck_assert(config_key_at(0, &section, &key));
    ck_assert_str_eq(key, "io_backend");
}
END_TEST

/* ------------------------------------------------------------ units ---- */

START_TEST(test_sizes)
{
    uint64_t v;

    ck_assert_int_eq(config_parse_size("0", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(config_parse_size("1500", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 1500);
    ck_assert_int_eq(config_parse_size("1k", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 1024);
    ck_assert_int_eq(config_parse_size("2KB", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 2048);
    ck_assert_int_eq(config_parse_size("3m", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 3u << 20);
    ck_assert_int_eq(config_parse_size("4Mb", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 4u << 20);
    ck_assert_int_eq(config_parse_size("1G", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 1u << 30);
    ck_assert_int_eq(config_parse_size("16gb", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, (uint64_t)16 << 30);
    ck_assert_int_eq(config_parse_size("007k", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 7 * 1024);
    ck_assert_int_eq(config_parse_size("18446744073709551615", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);

    v = 42;
    ck_assert_int_eq(config_parse_size("", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("k", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("-1", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("+1", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size(" 1", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("1 k", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("1k ", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("12abc", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("1t", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("1kib", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("1.5m", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("0x10", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("18446744073709551616", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_size("17179869184g", UINT64_MAX, &v), -1); /* 2^64 */
    ck_assert_int_eq(config_parse_size("1025", 1024, &v), -1);
    ck_assert_int_eq(config_parse_size("2k", 2047, &v), -1);
    ck_assert_uint_eq(v, 42); /* untouched on failure */
    ck_assert_int_eq(config_parse_size("2k", 2048, &v), 0);
    ck_assert_uint_eq(v, 2048);
}
END_TEST

START_TEST(test_durations)
{
    uint64_t v;

    ck_assert_int_eq(config_parse_duration_ms("0", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(config_parse_duration_ms("30", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 30000);
    ck_assert_int_eq(config_parse_duration_ms("250ms", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 250);
    ck_assert_int_eq(config_parse_duration_ms("5s", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 5000);
    ck_assert_int_eq(config_parse_duration_ms("2m", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 120000);
    ck_assert_int_eq(config_parse_duration_ms("1h", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 3600000);
    ck_assert_int_eq(config_parse_duration_ms("3H", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 3 * 3600000);
    ck_assert_int_eq(config_parse_duration_ms("10MS", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 10);

    v = 42;
    ck_assert_int_eq(config_parse_duration_ms("", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("s", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("-5s", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("5 s", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("1d", UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 24 * 3600 * 1000);
    v = 42; /* failures below leave it alone */
    ck_assert_int_eq(config_parse_duration_ms("1w", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("1.5s", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("5sec", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("18446744073709551615", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("5124095576030432h", UINT64_MAX, &v), -1);
    ck_assert_int_eq(config_parse_duration_ms("2h", 3600000, &v), -1);
    ck_assert_uint_eq(v, 42);
}
END_TEST

/* ------------------------------------------------------ good files ---- */

START_TEST(test_every_option)
{
    struct config *conf = LOAD_OK("[broker]\n"
                                  "io_backend = poll\n"
                                  "log_level = debug\n"
                                  "max_payload = 2m\n"
                                  "max_connections = 500\n"
                                  "max_subscriptions = 20\n"
                                  "max_outbound = 1g\n"
                                  "slow_consumer = drop\n"
                                  "max_retained = 0\n"
                                  "idle_timeout = 90s\n"
                                  "drain_timeout = 250ms\n");

    ck_assert_int_eq(conf->io_backend, CONFIG_IO_POLL);
    ck_assert_int_eq(conf->log_level, LOG_LEVEL_DEBUG);
    ck_assert_uint_eq(conf->max_payload, 2u << 20);
    ck_assert_uint_eq(conf->max_connections, 500);
    ck_assert_uint_eq(conf->max_subscriptions, 20);
    ck_assert_uint_eq(conf->max_outbound, 1u << 30);
    ck_assert_int_eq(conf->slow_consumer, CONFIG_SLOW_DROP);
    ck_assert_uint_eq(conf->max_retained, 0);
    ck_assert_uint_eq(conf->idle_timeout_ms, 90000);
    ck_assert_uint_eq(conf->drain_timeout_ms, 250);
    ck_assert_uint_eq(conf->n_listeners, 1); /* the default */
    ck_assert_str_eq(conf->listeners[0].bind, "127.0.0.1:7400");
    config_unref(conf);
}
END_TEST

START_TEST(test_enum_values)
{
    static const char *const backends[] = {"auto", "epoll", "kqueue", "poll", "select"};
    static const char *const levels[] = {"debug", "info", "notice", "warning", "error"};
    char text[128];

    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "[broker]\nio_backend = %s\nlog_level = %s\n", backends[i],
                 levels[i]);
        struct config *conf = LOAD_OK(text);
        ck_assert_int_eq(conf->io_backend, i);
        ck_assert_int_eq(conf->log_level, i);
        config_unref(conf);
    }
    struct config *conf = LOAD_OK("[broker]\nslow_consumer = disconnect\n");
    ck_assert_int_eq(conf->slow_consumer, CONFIG_SLOW_DISCONNECT);
    config_unref(conf);
}
END_TEST

START_TEST(test_limits_at_bounds)
{
    struct config *conf = LOAD_OK("[broker]\n"
                                  "max_payload = 1k\n"
                                  "max_connections = 1\n"
                                  "max_subscriptions = 1\n"
                                  "max_outbound = 1024\n"
                                  "idle_timeout = 0\n"
                                  "drain_timeout = 0\n");

    ck_assert_uint_eq(conf->max_payload, 1024);
    ck_assert_uint_eq(conf->max_connections, 1);
    ck_assert_uint_eq(conf->max_subscriptions, 1);
    ck_assert_uint_eq(conf->max_outbound, 1024);
    ck_assert_uint_eq(conf->idle_timeout_ms, 0);
    ck_assert_uint_eq(conf->drain_timeout_ms, 0);
    config_unref(conf);

    conf = LOAD_OK("[broker]\n"
                   "max_payload = 1gb\n"
                   "max_connections = 1000000\n"
                   "max_subscriptions = 10000000\n"
                   "max_outbound = 1024g\n"
                   "max_retained = 1024GB\n"
                   "idle_timeout = 24h\n"
                   "drain_timeout = 1h\n");
    ck_assert_uint_eq(conf->max_payload, 1u << 30);
    ck_assert_uint_eq(conf->max_connections, 1000000);
    ck_assert_uint_eq(conf->max_subscriptions, 10000000);
    ck_assert_uint_eq(conf->max_outbound, (uint64_t)1 << 40);
    ck_assert_uint_eq(conf->max_retained, (uint64_t)1 << 40);
    ck_assert_uint_eq(conf->idle_timeout_ms, 24u * 3600 * 1000);
    ck_assert_uint_eq(conf->drain_timeout_ms, 3600 * 1000);
    config_unref(conf);
}
END_TEST

/* Every message above max_outbound would trip the slow-consumer rule. */
START_TEST(test_payload_above_outbound)
{
    struct config *conf = LOAD_OK("[broker]\nmax_payload = 64k\nmax_outbound = 64k\n");
    ck_assert_uint_eq(conf->max_payload, conf->max_outbound);
    config_unref(conf);
    /* At the line of max_payload when the file sets it, */
    LOAD_BAD("[broker]\n"
             "max_outbound = 64k\n"
             "log_level = info\n"
             "max_payload = 65k\n",
             4, "max_payload 66560 is larger than max_outbound 65536");
    /* else at max_outbound's, against the default max_payload (1m). */
    LOAD_BAD("[broker]\nlog_level = info\nmax_outbound = 512k\n", 3,
             "max_payload 1048576 is larger than max_outbound 524288: every message that large "
             "would trip the slow-consumer rule");
    /* With [broker] before a listener, the lines are still [broker]'s. */
    LOAD_BAD("[broker]\nmax_outbound = 1m\nmax_payload = 2m\n[listener a]\nbind = 127.0.0.1:0\n", 3,
             "is larger than max_outbound");
}
END_TEST

/* stats_interval: 0 is off, else at least 100ms. */
START_TEST(test_stats_interval_floor)
{
    struct config *conf = LOAD_OK("[broker]\nstats_interval = 0\n");
    ck_assert_uint_eq(conf->stats_interval_ms, 0);
    config_unref(conf);
    conf = LOAD_OK("[broker]\nstats_interval = 100ms\n");
    ck_assert_uint_eq(conf->stats_interval_ms, 100);
    config_unref(conf);
    conf = LOAD_OK("[broker]\nstats_interval = 1h\n");
    ck_assert_uint_eq(conf->stats_interval_ms, 3600 * 1000);
    config_unref(conf);
    LOAD_BAD("[broker]\nstats_interval = 99ms\n", 2,
             "bad stats_interval '99ms': must be 0 (off) or from 100ms to 1h");
    LOAD_BAD("[broker]\nlog_level = info\nstats_interval = 1ms\n", 3, "must be 0 (off)");
    LOAD_BAD("[broker]\nstats_interval = 2h\n", 2, "must be from 0 to 1h");
}
END_TEST

/* Secure defaults: nothing off loopback without authentication, unless said so. */
START_TEST(test_exposure)
{
    struct config *conf;

    LOAD_BAD("[listener pub]\nbind = 0.0.0.0:7400\n", 1,
             "listener 'pub' binds 0.0.0.0:7400, off loopback, without authentication");
    LOAD_BAD("[listener pub]\nbind = [::]:7400\n", 1, "off loopback");
    LOAD_BAD("[listener pub]\nbind = 10.1.2.3:7400\n", 1, "off loopback");
    LOAD_BAD("[listener pub]\nbind = myhost.example:7400\n", 1, "off loopback");
    /* A users file makes every listener authenticate, but auth = none opts out. */
    conf = LOAD_OK("[auth]\nusers_file = /etc/pigeon/users.conf\n"
                   "[listener pub]\nbind = 0.0.0.0:7400\n"
                   "[listener local]\nbind = unix:/run/pigeon/p.sock\nauth = none\n");
    ck_assert(config_listener_authenticates(conf, &conf->listeners[0]));
    ck_assert(!config_listener_authenticates(conf, &conf->listeners[1]));
    ck_assert(!conf->auth.allow_anonymous);
    config_unref(conf);
    LOAD_BAD("[auth]\nusers_file = /u\n[listener pub]\nbind = 0.0.0.0:7400\nauth = none\n", 3,
             "without authentication");
    /* Loopback needs nothing; allow_anonymous opens the rest. */
    conf = LOAD_OK("[listener a]\nbind = 127.0.0.9:7400\n[listener b]\nbind = [::1]:7400\n"
                   "[listener c]\nbind = localhost:7400\n");
    ck_assert(!config_listener_authenticates(conf, &conf->listeners[0]));
    config_unref(conf);
    conf = LOAD_OK("[auth]\nallow_anonymous = yes\n[listener pub]\nbind = 0.0.0.0:7400\n");
    ck_assert(conf->auth.allow_anonymous);
    config_unref(conf);
    /* The HTTP endpoint off loopback needs a token. */
    LOAD_BAD("[http]\nbind = 0.0.0.0:7480\n", 1, "[http] binds 0.0.0.0:7480, off loopback");
    conf = LOAD_OK("[http]\nbind = 0.0.0.0:7480\ntoken = s3cret\n");
    ck_assert_str_eq(conf->http.token, "s3cret");
    config_unref(conf);
}
END_TEST

START_TEST(test_tls_keys)
{
    struct config *conf = LOAD_OK("[listener tls]\nbind = 127.0.0.1:7401\ntls_cert = /c.pem\n"
                                  "tls_key = /k.pem\ntls_ca = /ca.pem\n"
                                  "[listener s]\nbind = unix:/tmp/s.sock\ngroup = pigeon\n");
    ck_assert_str_eq(conf->listeners[0].tls_cert, "/c.pem");
    ck_assert_str_eq(conf->listeners[0].tls_key, "/k.pem");
    ck_assert_str_eq(conf->listeners[0].tls_ca, "/ca.pem");
    ck_assert_ptr_null(conf->listeners[1].tls_cert);
    ck_assert_str_eq(conf->listeners[1].group, "pigeon");
    config_unref(conf);
    LOAD_BAD("[listener t]\nbind = 127.0.0.1:1\ntls_cert = /c.pem\n", 3, "tls_cert needs tls_key");
    LOAD_BAD("[listener t]\nbind = 127.0.0.1:1\ntls_key = /k.pem\n", 3, "tls_key needs tls_cert");
    LOAD_BAD("[listener t]\nbind = 127.0.0.1:1\ntls_ca = /ca.pem\n", 3, "which needs TLS");
    LOAD_BAD("[listener t]\nbind = 127.0.0.1:1\ngroup = x\n", 3, "group applies to unix sockets");
    LOAD_BAD("[listener t]\nbind = 127.0.0.1:1\nauth = maybe\n", 3, "expected one of: required, none");
    LOAD_BAD("[auth]\nallow_anonymous = perhaps\n", 2, "expected yes or no");
}
END_TEST

START_TEST(test_listeners)
{
    struct config *conf = LOAD_OK("[broker]\n"                       /* 1 */
                                  "log_level = info\n"               /* 2 */
                                  "[listener v4]\n"                  /* 3 */
                                  "bind = 0.0.0.0:7400\n"            /* 4 */
                                  "[listener v6]\n"                  /* 5 */
                                  "bind = [::]:7401\n"               /* 6 */
                                  "[ listener  local.sock ]\n"       /* 7 */
                                  "mode = 0600\n"                    /* 8 */
                                  "bind = unix:/run/pigeon/p.sock\n" /* 9 */
                                  "[listener by-name_1]\n"           /* 10 */
                                  "bind = localhost:0\n"             /* 11 */
                                  "[listener ll]\n"                  /* 12 */
                                  "bind = [fe80::1:2]:65535\n"       /* 13 */
                                  "[listener unix-default-mode]\n"   /* 14 */
                                  "bind = unix:/tmp/x.sock\n"        /* 15 */
                                  "[auth]\nallow_anonymous = yes\n"); /* open to the network */
    const struct config_listener *l = conf->listeners;

    ck_assert_uint_eq(conf->n_listeners, 6);
    ck_assert_str_eq(l[0].name, "v4");
    ck_assert_int_eq(l[0].line, 3);
    ck_assert_int_eq(l[0].kind, CONFIG_LISTEN_TCP);
    ck_assert_str_eq(l[0].host, "0.0.0.0");
    ck_assert_uint_eq(l[0].port, 7400);
    ck_assert_str_eq(l[0].bind, "0.0.0.0:7400");
    ck_assert_uint_eq(l[0].mode, 0);

    ck_assert_str_eq(l[1].name, "v6");
    ck_assert_int_eq(l[1].line, 5);
    ck_assert_str_eq(l[1].host, "::");
    ck_assert_uint_eq(l[1].port, 7401);
    ck_assert_str_eq(l[1].bind, "[::]:7401");

    ck_assert_str_eq(l[2].name, "local.sock");
    ck_assert_int_eq(l[2].line, 7);
    ck_assert_int_eq(l[2].kind, CONFIG_LISTEN_UNIX);
    ck_assert_str_eq(l[2].path, "/run/pigeon/p.sock");
    ck_assert_ptr_null(l[2].host);
    ck_assert_uint_eq(l[2].mode, 0600);

    ck_assert_str_eq(l[3].name, "by-name_1");
    ck_assert_str_eq(l[3].host, "localhost");
    ck_assert_uint_eq(l[3].port, 0);

    ck_assert_str_eq(l[4].host, "fe80::1:2");
    ck_assert_uint_eq(l[4].port, 65535);

    ck_assert_uint_eq(l[5].mode, 0660);
    config_unref(conf);
}
END_TEST

START_TEST(test_listener_same)
{
    struct config *conf = LOAD_OK("[listener a]\nbind = 127.0.0.1:0\n"
                                  "[listener b]\nbind = 127.0.0.1:0\n" /* port 0 twice is fine */
                                  "[listener c]\nbind = [::1]:7400\n"
                                  "[listener d]\nbind = localhost:7400\n"
                                  "[listener e]\nbind = unix:/tmp/a.sock\nmode = 0600\n"
                                  "[auth]\nallow_anonymous = yes\n"); /* open to the network */
    struct config *other = LOAD_OK("[listener x]\nbind = [0:0::1]:7400\n"
                                   "[listener y]\nbind = LOCALHOST:7400\n"
                                   "[listener z]\nbind = unix:/tmp/a.sock\nmode = 0660\n");
    struct config *third = LOAD_OK("[listener w]\nbind = unix:/tmp/a.sock\n");
    const struct config_listener *l = conf->listeners, *o = other->listeners;
    const struct config_listener *w = third->listeners;

    ck_assert(config_listener_same(&l[0], &l[1]));
    ck_assert(config_listener_same(&l[2], &o[0]));  /* the same address, spelt two ways */
    ck_assert(config_listener_same(&l[3], &o[1]));  /* host names ignore case */
    ck_assert(!config_listener_same(&l[4], &o[2])); /* another mode */
    ck_assert(!config_listener_same(&l[4], &w[0])); /* the default mode, 0660, is another */
    ck_assert(config_listener_same(&o[2], &w[0]));
    ck_assert(!config_listener_same(&l[0], &l[2]));
    ck_assert(!config_listener_same(&l[2], &l[3])); /* no name lookups */
    ck_assert(!config_listener_same(&l[3], &l[4]));
    config_unref(conf);
    config_unref(other);
    config_unref(third);
}
END_TEST

START_TEST(test_unix_path_limit)
{
    char text[300], path[120];

    memset(path, 'p', sizeof(path));
    path[0] = '/';
    path[107] = '\0'; /* 107 bytes: the most sun_path holds */
    snprintf(text, sizeof(text), "[listener u]\nbind = unix:%s\n", path);
    struct config *conf = LOAD_OK(text);
    ck_assert_uint_eq(strlen(conf->listeners[0].path), 107);
    config_unref(conf);

    path[107] = 'p';
    path[108] = '\0';
    snprintf(text, sizeof(text), "[listener u]\nbind = unix:%s\n", path);
    LOAD_BAD(text, 2, "the socket path is 108 bytes, the most a unix socket takes is 107");
}
END_TEST

/* ----------------------------------------------------------- syntax ---- */

START_TEST(test_comments_and_layout)
{
    struct config *conf = LOAD_OK("\xEF\xBB\xBF# a comment; with both marks\r\n"
                                  "; another\r\n"
                                  "\r\n"
                                  "  [broker]   ; the broker\r\n"
                                  "\tmax_connections = 5 ; five\r\n"
                                  "    max_subscriptions = 6 # six\r\n"
                                  "max_payload=4k\r\n"
                                  "max_outbound\t= 2m\r\n"
                                  "[listener a] # here\r\n"
                                  "bind = unix:/tmp/a;b.sock\r\n");

    ck_assert_uint_eq(conf->max_connections, 5);
    ck_assert_uint_eq(conf->max_subscriptions, 6);
    ck_assert_uint_eq(conf->max_payload, 4096);
    ck_assert_uint_eq(conf->max_outbound, 2u << 20);
    ck_assert_str_eq(conf->listeners[0].path, "/tmp/a;b.sock"); /* no blank before ';' */
    config_unref(conf);
}
END_TEST

/* inih would take an indented line after a key as more of that key's value. */
START_TEST(test_indented_key_is_a_key)
{
    struct config *conf = LOAD_OK("[broker]\n"
                                  "log_level = notice\n"
                                  "  max_payload = 2m\n");

    ck_assert_int_eq(conf->log_level, LOG_LEVEL_NOTICE);
    ck_assert_uint_eq(conf->max_payload, 2u << 20);
    config_unref(conf);
    LOAD_BAD("[broker]\nlog_level = notice\n   more\n", 3, "syntax error: expected 'key = value'");
}
END_TEST

START_TEST(test_long_lines)
{
    char text[1400];
    char fill[600];

    /* A comment may be any length, and does not shift the line numbers. */
    memset(fill, 'c', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    snprintf(text, sizeof(text), "[broker]\n; %s\n# %s\nnope = 1\n", fill, fill);
    LOAD_BAD(text, 4, "unknown key 'nope'");

    /* So may an inline comment after a value. */
    snprintf(text, sizeof(text), "[broker]\nmax_connections = 7 ; %s\n", fill);
    struct config *conf = LOAD_OK(text);
    ck_assert_uint_eq(conf->max_connections, 7);
    config_unref(conf);

    /* A key line longer than inih's buffer is refused, not cut in two. */
    snprintf(text, sizeof(text), "[broker]\nlog_level = info\nmax_payload = %.300s\n", fill);
    LOAD_BAD(text, 3, "line too long: at most 198 characters");

    /* 198 characters pass (to the setter, which refuses the value). */
    memset(fill, '1', 198 - strlen("max_payload = "));
    fill[198 - strlen("max_payload = ")] = '\0';
    snprintf(text, sizeof(text), "[broker]\nmax_payload = %s\n", fill);
    LOAD_BAD(text, 2, "bad max_payload '1111");
}
END_TEST

START_TEST(test_syntax_errors)
{
    LOAD_BAD("[broker]\nlog_level = info\njunk\n", 3,
             "syntax error: expected 'key = value' or '[section]'");
    LOAD_BAD("[broker\nlog_level = info\n", 1, "syntax error: expected ']'");
    LOAD_BAD("[broker] trailing\n", 1, "syntax error: unexpected text after ']'");
    LOAD_BAD("[broker]\n= info\n", 2, "syntax error: missing key before '='");
    LOAD_BAD("[broker]\nlog_level: info\n", 2, "syntax error: expected 'key = value'");
    LOAD_BAD("[listener a]\nunix:/tmp/s\n", 2, "syntax error: expected 'key = value'");
    /* Unlike inih, the header ends at the first ']', comment mark or not. */
    LOAD_BAD("[listener a ; x]\nbind = 127.0.0.1:1\n", 1, "bad listener name 'a ; x'");
}
END_TEST

/* The error reported is the first in the file, whoever found it. */
START_TEST(test_first_error_wins)
{
    LOAD_BAD("[broker]\njunk\nnope = 1\n", 2, "syntax error");
    LOAD_BAD("[broker]\nnope = 1\njunk\n", 2, "unknown key 'nope'");
    LOAD_BAD("[broker]\nlog_level = x\n[bad]\n", 2, "bad log_level");
    LOAD_BAD("[bad]\nlog_level = x\n", 1, "unknown section [bad]");
    /* Errors found at the end of a section still count at their own line. */
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:1\njunk\nmode = 0600\n", 3, "syntax error");
    LOAD_BAD("[listener a]\nmode = 0600\njunk\n", 1, "listener 'a' has no bind");
}
END_TEST

/* -------------------------------------------------------- bad files ---- */

START_TEST(test_unknown_names)
{
    LOAD_BAD("[broker]\nlog_level = info\nmax_paylod = 1m\n", 3,
             "unknown key 'max_paylod' in [broker]");
    LOAD_BAD("[broker]\nbind = 127.0.0.1:1\n", 2,
             "unknown key 'bind' in [broker]: it belongs in [listener NAME]");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:1\nmax_payload = 1m\n", 3,
             "unknown key 'max_payload' in [listener]: it belongs in [broker]");
    LOAD_BAD("[broker]\nLog_Level = info\n", 2, "unknown key 'Log_Level'");
    LOAD_BAD("[broker]\n[brokre]\n", 2, "unknown section [brokre]");
    LOAD_BAD("[broker]\nlog_level = info\n\n[tls]\n", 4, "unknown section [tls]");
    LOAD_BAD("[]\n", 1, "unknown section []");
    LOAD_BAD("[listeners a]\n", 1, "unknown section [listeners a]");
    LOAD_BAD("log_level = info\n[broker]\n", 1, "key 'log_level' is outside any section");
}
END_TEST

START_TEST(test_duplicates)
{
    LOAD_BAD("[broker]\nmax_payload = 1m\nlog_level = info\nmax_payload = 2m\n", 4,
             "duplicate key 'max_payload' in [broker] (first at line 2)");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:1\nbind = 127.0.0.1:2\n", 3,
             "duplicate key 'bind' in [listener] (first at line 2)");
    LOAD_BAD("[broker]\nlog_level = info\n[broker]\nmax_payload = 2m\n", 3,
             "duplicate section [broker] (first at line 1)");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:1\n[listener b]\nbind = 127.0.0.1:2\n"
             "[listener a]\nbind = 127.0.0.1:3\n",
             5, "duplicate listener 'a' (first at line 1)");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:7400\n\n[listener b]\nbind = 127.0.0.1:7400\n", 4,
             "listener 'b' binds 127.0.0.1:7400, as listener 'a' does (line 1)");
    LOAD_BAD("[listener a]\nbind = [::1]:7400\n[listener b]\nbind = [0::0:1]:7400\n", 3,
             "as listener 'a' does");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = 0600\n[listener b]\nbind = unix:/tmp/s\n", 4,
             "listener 'b' binds unix:/tmp/s, as listener 'a' does (line 1)");
}
END_TEST

START_TEST(test_listener_sections)
{
    LOAD_BAD("[listener a]\nmode = 0600\n[broker]\n", 1, "listener 'a' has no bind");
    LOAD_BAD("[broker]\n[listener a]\n[listener b]\nbind = 127.0.0.1:1\n", 2,
             "listener 'a' has no bind");
    LOAD_BAD("[broker]\n[listener a]\n", 2, "listener 'a' has no bind");
    LOAD_BAD("[listener a]\nbind =\n", 2, "missing value for 'bind'");
    LOAD_BAD("[listener a]\nmode = 0600\nbind = 127.0.0.1:1\n", 2,
             "mode applies to unix sockets only; listener 'a' binds 127.0.0.1:1");
    LOAD_BAD("[listener a]\nbind = [::1]:1\nmode = 0600\n[broker]\n", 3,
             "mode applies to unix sockets only");
    LOAD_BAD("[listener]\nbind = 127.0.0.1:1\n", 1, "a listener section needs a name");
    LOAD_BAD("[listener   ]\n", 1, "a listener section needs a name");
    LOAD_BAD("[listener a/b]\nbind = 127.0.0.1:1\n", 1, "bad listener name 'a/b'");
    LOAD_BAD("[listener a b]\nbind = 127.0.0.1:1\n", 1, "bad listener name 'a b'");
    LOAD_BAD("[listener "
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n" /* 65 */
             "bind = 127.0.0.1:1\n",
             1, "bad listener name");
}
END_TEST

START_TEST(test_bad_binds)
{
    LOAD_BAD("[listener a]\nbind = ::1:7400\n", 2,
             "bad bind '::1:7400': an IPv6 address needs brackets: [addr]:port");
    LOAD_BAD("[listener a]\nbind = ::1\n", 2, "an IPv6 address needs brackets");
    LOAD_BAD("[listener a]\nbind = [::1]\n", 2, "expected [v6addr]:port");
    LOAD_BAD("[listener a]\nbind = [::1]7400\n", 2, "expected [v6addr]:port");
    LOAD_BAD("[listener a]\nbind = [::1:7400\n", 2, "expected [v6addr]:port");
    LOAD_BAD("[listener a]\nbind = [::g]:7400\n", 2, "not an IPv6 address");
    LOAD_BAD("[listener a]\nbind = [127.0.0.1]:7400\n", 2, "not an IPv6 address");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1\n", 2, "expected host:port, [v6addr]:port or unix:");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:\n", 2, "missing port");
    LOAD_BAD("[listener a]\nbind = :7400\n", 2, "missing host");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:65536\n", 2, "the port must be a number from 0");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:-1\n", 2, "the port must be a number");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:http\n", 2, "the port must be a number");
    LOAD_BAD("[listener a]\nbind = 127.0.0.1:99999999999999999999999\n", 2, "the port must be");
    LOAD_BAD("[listener a]\nbind = 300.1.1.1:7400\n", 2, "not an IPv4 address or a host name");
    LOAD_BAD("[listener a]\nbind = 127.1:7400\n", 2, "not an IPv4 address or a host name");
    LOAD_BAD("[listener a]\nbind = bad..name:7400\n", 2, "not an IPv4 address or a host name");
    LOAD_BAD("[listener a]\nbind = bad/name:7400\n", 2, "not an IPv4 address or a host name");
    LOAD_BAD("[listener a]\nbind = unix:relative.sock\n", 2, "must be absolute");
    LOAD_BAD("[listener a]\nbind = unix:\n", 2, "must be absolute");
    LOAD_BAD("[listener a]\nbind = unix:/run/pigeon/\n", 2, "names a directory");
}
END_TEST

START_TEST(test_bad_modes)
{
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = 0800\n", 3,
             "bad mode '0800': expected octal permission bits");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = 01777\n", 3, "expected octal");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = 1000\n", 3, "expected octal");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = 0x1ff\n", 3, "expected octal");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = rw\n", 3, "expected octal");
    LOAD_BAD("[listener a]\nbind = unix:/tmp/s\nmode = -600\n", 3, "expected octal");

    struct config *conf = LOAD_OK("[listener a]\nbind = unix:/tmp/s\nmode = 777\n");
    ck_assert_uint_eq(conf->listeners[0].mode, 0777);
    config_unref(conf);
}
END_TEST

START_TEST(test_bad_values)
{
    LOAD_BAD("[broker]\nio_backend = iocp\n", 2,
             "bad io_backend 'iocp': expected one of: auto, epoll, kqueue, poll, select");
    LOAD_BAD("[broker]\nio_backend = EPOLL\n", 2, "bad io_backend 'EPOLL'");
    LOAD_BAD("[broker]\nlog_level = verbose\n", 2,
             "bad log_level 'verbose': expected one of: debug, info, notice, warning, error");
    LOAD_BAD("[broker]\nslow_consumer = block\n", 2,
             "bad slow_consumer 'block': expected one of: disconnect, drop");
    LOAD_BAD("[broker]\nmax_payload = 1023\n", 2,
             "bad max_payload '1023': must be from 1kb to 1gb");
    LOAD_BAD("[broker]\nmax_payload = 1025m\n", 2, "must be from 1kb to 1gb");
    LOAD_BAD("[broker]\nmax_payload = 1t\n", 2, "bad max_payload '1t': expected a size");
    LOAD_BAD("[broker]\nmax_payload = 1 m\n", 2, "expected a size");
    LOAD_BAD("[broker]\nmax_payload = -1\n", 2, "expected a size");
    LOAD_BAD("[broker]\nmax_connections = 0\n", 2,
             "bad max_connections '0': must be from 1 to 1000000");
    LOAD_BAD("[broker]\nmax_connections = 1000001\n", 2, "must be from 1 to 1000000");
    LOAD_BAD("[broker]\nmax_connections = 12abc\n", 2, "expected a whole number");
    LOAD_BAD("[broker]\nmax_connections = 10k\n", 2, "expected a whole number");
    LOAD_BAD("[broker]\nmax_connections = -1\n", 2, "expected a whole number");
    LOAD_BAD("[broker]\nmax_subscriptions = 0\n", 2, "must be from 1 to 100000000");
    LOAD_BAD("[broker]\nmax_subscriptions = 100000001\n", 2, "must be from 1 to 100000000");
    LOAD_BAD("[broker]\nmax_subscriptions_per_connection = 0\n", 2,
             "must be from 1 to 10000000");
    LOAD_BAD("[broker]\nmax_subscriptions_per_connection = 10000001\n", 2,
             "must be from 1 to 10000000");
    LOAD_BAD("[broker]\nmax_memory = 1mb\n", 2, "must be from 16mb to 16384gb, or auto");
    LOAD_BAD("[broker]\nmax_memory = lots\n", 2, "expected a size");
    LOAD_BAD("[broker]\nmax_outbound = 1023\n", 2, "must be from 1kb to 1024gb");
    LOAD_BAD("[broker]\nmax_outbound = 1025g\n", 2, "must be from 1kb to 1024gb");
    LOAD_BAD("[broker]\nmax_retained = 64q\n", 2, "expected a size");
    LOAD_BAD("[broker]\nmax_retained = 2048g\n", 2, "must be from 0 to 1024gb");
    LOAD_BAD("[broker]\nidle_timeout = 1w\n", 2, "bad idle_timeout '1w': expected a duration");
    LOAD_BAD("[broker]\nidle_timeout = 25h\n", 2, "must be from 0 to 1d");
    LOAD_BAD("[broker]\nidle_timeout = -5s\n", 2, "expected a duration");
    LOAD_BAD("[broker]\ndrain_timeout = 3601s\n", 2,
             "bad drain_timeout '3601s': must be from 0 to 1h");
    LOAD_BAD("[broker]\ndrain_timeout = 5 s\n", 2, "expected a duration");
    LOAD_BAD("[broker]\nlog_level =\n", 2, "missing value for 'log_level'");
    LOAD_BAD("[broker]\nlog_level = ; nothing\n", 2, "missing value for 'log_level'");
    LOAD_BAD("[broker]\nlog_level = debug;x\n", 2, "bad log_level 'debug;x'");
}
END_TEST

START_TEST(test_overflow)
{
    LOAD_BAD("[broker]\nmax_outbound = 99999999999999999999\n", 2, "must be from 1kb to 1024gb");
    LOAD_BAD("[broker]\nmax_outbound = 17179869184g\n", 2, "must be from 1kb to 1024gb");
    LOAD_BAD("[broker]\nmax_payload = 4294967296\n", 2, "must be from 1kb to 1gb");
    LOAD_BAD("[broker]\nmax_connections = 4294967297\n", 2, "must be from 1 to 1000000");
    LOAD_BAD("[broker]\nidle_timeout = 99999999999999999999h\n", 2, "must be from 0 to 1d");
    LOAD_BAD("[broker]\nidle_timeout = 5124095576030432h\n", 2, "must be from 0 to 1d");
}
END_TEST

/* ------------------------------------------------------------ files ---- */

START_TEST(test_file_good)
{
    static const char text[] = "[broker]\nmax_connections = 77\n[listener x]\nbind = [::1]:0\n";
    char *path = temp_file(text, strlen(text));
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file(path, &conf, &err), 0);
    ck_assert_str_eq(conf->path, path);
    ck_assert_uint_eq(conf->max_connections, 77);
    ck_assert_str_eq(conf->listeners[0].host, "::1");
    config_unref(conf);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_file_bad)
{
    static const char text[] = "[broker]\n\nmax_connections = 0\n";
    char *path = temp_file(text, strlen(text));
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file(path, &conf, &err), -1);
    ck_assert_ptr_null(conf);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 3);
    ck_assert_ptr_nonnull(strstr(err.reason, "max_connections"));
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_file_missing)
{
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file("/nonexistent/pigeond.conf", &conf, &err), -1);
    ck_assert_ptr_null(conf);
    ck_assert_str_eq(err.file, "/nonexistent/pigeond.conf");
    ck_assert_int_eq(err.line, 0);
    ck_assert_str_eq(err.reason, "cannot open: No such file or directory");
    /* ERR may be NULL. */
    ck_assert_int_eq(config_load_file("/nonexistent/pigeond.conf", &conf, NULL), -1);
}
END_TEST

START_TEST(test_file_directory)
{
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file("/", &conf, &err), -1);
    ck_assert_int_eq(err.line, 0);
    ck_assert_msg(strncmp(err.reason, "cannot ", 7) == 0, "reason: %s", err.reason);
}
END_TEST

START_TEST(test_file_nul_byte)
{
    static const char text[] = "[broker]\nlog_level = info\nmax\0_payload = 1m\n";
    char *path = temp_file(text, sizeof(text) - 1);
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file(path, &conf, &err), -1);
    ck_assert_int_eq(err.line, 3);
    ck_assert_str_eq(err.reason, "NUL byte in the file");
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_file_too_large)
{
    size_t len = 1024 * 1024 + 1;
    char *text = malloc(len);
    struct config *conf = NULL;
    struct config_error err;
    char *path;

    ck_assert_ptr_nonnull(text);
    memset(text, '\n', len);
    path = temp_file(text, len);
    ck_assert_int_eq(config_load_file(path, &conf, &err), -1);
    ck_assert_int_eq(err.line, 0);
    ck_assert_ptr_nonnull(strstr(err.reason, "file too large"));
    unlink(path);
    free(path);

    path = temp_file(text, len - 1); /* exactly 1 MiB of blank lines is fine */
    ck_assert_int_eq(config_load_file(path, &conf, &err), 0);
    config_unref(conf);
    unlink(path);
    free(path);
    free(text);
}
END_TEST

/* ----------------------------------------------- the shipped sample ---- */

/* True when a line of TEXT, less a leading '#' or ';' and blanks, is "KEY =". */
static bool text_has_key(const char *text, const char *key)
{
    size_t klen = strlen(key);

    for (const char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *s = line + strspn(line, " \t");
        if (*s == '#' || *s == ';')
            s += 1 + strspn(s + 1, " \t");
        if (strncmp(s, key, klen) == 0 && s[klen + strspn(s + klen, " \t")] == '=')
            return true;
    }
    return false;
}

/* TEXT with "#KEY = value" lines of [broker] keys uncommented; free it. */
static char *broker_keys_uncommented(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    const char *section, *key;

    ck_assert_ptr_nonnull(out);
    for (const char *line = text; *line;) {
        const char *next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) + 1 : strlen(line);
        bool drop = false;

        for (size_t i = 0; line[0] == '#' && config_key_at(i, &section, &key); i++) {
            size_t klen = strlen(key);
            drop |= strcmp(section, "broker") == 0 && strncmp(line + 1, key, klen) == 0 &&
                    line[1 + klen + strspn(line + 1 + klen, " \t")] == '=';
        }
        memcpy(o, line + drop, len - drop);
        o += len - drop;
        line += len;
    }
    *o = '\0';
    return out;
}

START_TEST(test_sample_conf)
{
    const char *path = getenv("PIGEON_SAMPLE_CONF");
    struct config *conf = NULL;
    struct config_error err;
    const char *section, *key;
    char *text;

    if (path == NULL) {
        fprintf(stderr, "test_sample_conf: PIGEON_SAMPLE_CONF unset, not checked\n");
        return;
    }
    ck_assert_msg(config_load_file(path, &conf, &err) == 0, "%s:%d: %s", err.file, err.line,
                  err.reason);
    ck_assert_uint_ge(conf->n_listeners, 1);
    ck_assert_str_eq(conf->listeners[0].name, "default");
    ck_assert_str_eq(conf->listeners[0].bind, "127.0.0.1:7400");
    config_unref(conf);

    text = file_read(path);
    ck_assert_ptr_nonnull(strstr(text, "[broker]"));
    for (size_t i = 0; config_key_at(i, &section, &key); i++)
        ck_assert_msg(text_has_key(text, key), "%s: no line for %s.%s", path, section, key);
    free(text);
}
END_TEST

/* Each option is commented out at its default: uncommented, nothing changes. */
START_TEST(test_sample_conf_defaults)
{
    const char *path = getenv("PIGEON_SAMPLE_CONF");
    struct config *conf, *def = config_new_defaults();
    char *text, *active;

    if (path == NULL) {
        fprintf(stderr, "test_sample_conf_defaults: PIGEON_SAMPLE_CONF unset, not checked\n");
        config_unref(def);
        return;
    }
    text = file_read(path);
    active = broker_keys_uncommented(text);
    ck_assert_uint_eq(strlen(text) - strlen(active), 13); /* one per [broker] key */
    conf = LOAD_OK(active);
    ck_assert_int_eq(conf->io_backend, def->io_backend);
    ck_assert_int_eq(conf->log_level, def->log_level);
    ck_assert_uint_eq(conf->max_payload, def->max_payload);
    ck_assert_uint_eq(conf->max_connections, def->max_connections);
    ck_assert_uint_eq(conf->max_subscriptions, def->max_subscriptions);
    ck_assert_uint_eq(conf->max_subscriptions_per_connection,
                      def->max_subscriptions_per_connection);
    ck_assert_uint_eq(conf->max_memory, def->max_memory);
    ck_assert_uint_eq(conf->max_outbound, def->max_outbound);
    ck_assert_int_eq(conf->slow_consumer, def->slow_consumer);
    ck_assert_uint_eq(conf->max_retained, def->max_retained);
    ck_assert_uint_eq(conf->idle_timeout_ms, def->idle_timeout_ms);
    ck_assert_uint_eq(conf->drain_timeout_ms, def->drain_timeout_ms);
    ck_assert_uint_eq(conf->stats_interval_ms, def->stats_interval_ms);
    ck_assert(!conf->http.enabled);
    ck_assert_uint_eq(conf->n_listeners, 1);
    ck_assert(config_listener_same(&conf->listeners[0], &def->listeners[0]));
    config_unref(conf);
    config_unref(def);
    free(active);
    free(text);
}
END_TEST

/* [http] and stats_interval: the monitoring options (docs/operations.md). */
START_TEST(test_http_section)
{
    struct config *conf = config_new_defaults();

    ck_assert(!conf->http.enabled);
    ck_assert_ptr_null(conf->http.bind);
    ck_assert_uint_eq(conf->http.max_clients, 16);
    ck_assert_uint_eq(conf->http.timeout_ms, 10000);
    ck_assert_uint_eq(conf->stats_interval_ms, 10000);
    config_unref(conf);

    conf = LOAD_OK("[broker]\nstats_interval = 0\n[http]\nbind = 127.0.0.1:7480\n");
    ck_assert_uint_eq(conf->stats_interval_ms, 0);
    ck_assert(conf->http.enabled);
    ck_assert_str_eq(conf->http.bind, "127.0.0.1:7480");
    ck_assert_str_eq(conf->http.host, "127.0.0.1");
    ck_assert_uint_eq(conf->http.port, 7480);
    ck_assert_int_eq(conf->http.line, 3);
    ck_assert_uint_eq(conf->n_listeners, 1); /* [http] is not a listener */
    config_unref(conf);

    conf = LOAD_OK("[http]\nbind = [::1]:0\nmax_clients = 1\ntimeout = 1h\n");
    ck_assert_str_eq(conf->http.host, "::1");
    ck_assert_uint_eq(conf->http.port, 0);
    ck_assert_uint_eq(conf->http.max_clients, 1);
    ck_assert_uint_eq(conf->http.timeout_ms, 3600000);
    config_unref(conf);

    LOAD_BAD("[http]\nmax_clients = 4\n", 1, "[http] has no bind");
    LOAD_BAD("[http]\nbind = unix:/run/p.sock\n", 2, "TCP only");
    LOAD_BAD("[http]\nbind = ::1:80\n", 2, "needs brackets");
    LOAD_BAD("[http]\nbind = 127.0.0.1:80\n[http]\n", 3,
             "duplicate section [http] (first at line 1)");
    LOAD_BAD("[http]\nbind = 127.0.0.1:80\nmax_clients = 0\n", 3, "must be from 1 to 10000");
    LOAD_BAD("[http]\nbind = 127.0.0.1:80\ntimeout = 500ms\n", 3, "must be from 1s to 1h");
    LOAD_BAD("[http]\nbind = 127.0.0.1:80\nmode = 0600\n", 3,
             "unknown key 'mode' in [http]: it belongs in [listener NAME]");
    LOAD_BAD("[broker]\nmax_clients = 3\n", 2,
             "unknown key 'max_clients' in [broker]: it belongs in [http]");
    LOAD_BAD("[broker]\nstats_interval = 2h\n", 2, "must be from 0 to 1h");
    LOAD_BAD("[htp]\n", 1,
             "expected [broker], [listener NAME], [http], [auth], [cluster], [store] or "
             "[stream NAME]");
}
END_TEST

/* config_check_file (pigeond -t): every error, sorted by line, none invented. */
START_TEST(test_check_every_error)
{
    static const char text[] = "[broker]\n"           /* 1 */
                               "max_payload = lots\n" /* 2: bad value */
                               "junk\n"               /* 3: syntax */
                               "log_level = info\n"   /* 4 */
                               "[listener a]\n"       /* 5 */
                               "bind = nowhere\n"     /* 6: bad bind (no second error) */
                               "mode = 0600\n"        /* 7: not reported: bind failed */
                               "[listener b]\n"       /* 8: no bind */
                               "mode = 0600\n"        /* 9 */
                               "[oops]\n"             /* 10: unknown section */
                               "max_payload = 1\n"    /* 11: ignored: in [oops] */
                               "[http]\n"             /* 12 */
                               "bind = 127.0.0.1:0\n" /* 13 */
                               "timeout = 0\n"        /* 14: out of range */
                               "[broker]\n";          /* 15: duplicate */
    static const struct {
        int line;
        const char *why;
    } want[] = {
        {2, "bad max_payload 'lots'"},      {3, "syntax error"},
        {6, "bad bind 'nowhere'"},          {8, "listener 'b' has no bind"},
        {10, "unknown section [oops]"},     {14, "bad timeout '0'"},
        {15, "duplicate section [broker]"},
    };
    struct config_error errs[16], few[2];
    size_t n = 99;
    char *path = temp_file(text, strlen(text));

    ck_assert_int_eq(config_check_file(path, errs, 16, &n), -1);
    ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(errs[i].file, path);
        ck_assert_msg(errs[i].line == want[i].line && strstr(errs[i].reason, want[i].why),
                      "error %zu: expected line %d '%s', got line %d '%s'", i, want[i].line,
                      want[i].why, errs[i].line, errs[i].reason);
    }
    /* The first is what config_load_file reports. */
    struct config *conf = NULL;
    struct config_error first;
    ck_assert_int_eq(config_load_file(path, &conf, &first), -1);
    ck_assert_int_eq(first.line, errs[0].line);
    ck_assert_str_eq(first.reason, errs[0].reason);
    /* MAX bounds what is kept. */
    ck_assert_int_eq(config_check_file(path, few, 2, &n), -1);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(few[1].line, 3);
    unlink(path);
    free(path);

    /* A valid file: no errors; a missing one: one, on line 0. */
    path = temp_file("[broker]\nlog_level = info\n", 26);
    ck_assert_int_eq(config_check_file(path, errs, 16, &n), 0);
    ck_assert_uint_eq(n, 0);
    unlink(path);
    ck_assert_int_eq(config_check_file(path, errs, 16, &n), -1);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(errs[0].line, 0);
    ck_assert_ptr_nonnull(strstr(errs[0].reason, "cannot open"));
    free(path);
}
END_TEST

START_TEST(test_config_doc)
{
    const char *path = getenv("PIGEON_CONFIG_DOC");
    const char *section, *key;
    char quoted[64];
    char *text;

    if (path == NULL) {
        fprintf(stderr, "test_config_doc: PIGEON_CONFIG_DOC unset, not checked\n");
        return;
    }
    text = file_read(path);
    for (size_t i = 0; config_key_at(i, &section, &key); i++) {
        snprintf(quoted, sizeof(quoted), "`%s`", key);
        ck_assert_msg(strstr(text, quoted) != NULL, "%s: %s.%s is not documented", path, section,
                      key);
    }
    free(text);
}
END_TEST

/* ----------------------------------------------- non-regular files ---- */

/* A FIFO would block open() (no writer) and read(): refused at once, unread. */
START_TEST(test_file_fifo)
{
    char dir[] = "/tmp/pigeon-unit-fifo-XXXXXX", path[64];
    struct config *conf = NULL;
    struct config_error err, errs[4];
    size_t n = 99;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pigeond.conf", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(config_load_file(path, &conf, &err), -1);
    ck_assert_ptr_null(conf);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 0);
    ck_assert_str_eq(err.reason, "not a regular file");
    ck_assert_int_eq(config_check_file(path, errs, 4, &n), -1);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(errs[0].reason, "not a regular file");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_file_device)
{
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_int_eq(config_load_file("/dev/null", &conf, &err), -1);
    ck_assert_str_eq(err.reason, "not a regular file");
    ck_assert_int_eq(config_load_file("/dev/zero", &conf, &err), -1);
    ck_assert_str_eq(err.reason, "not a regular file");
    ck_assert_ptr_null(conf);
}
END_TEST

/* --------------------------------------------- command-line listeners ---- */

START_TEST(test_set_listeners)
{
    static const char *const binds[] = {"127.0.0.1:21401", "[::1]:0", "unix:/tmp/p.sock",
                                        "127.0.0.1:0"};
    struct config *conf = LOAD_OK("[listener a]\nbind = 127.0.0.1:7400\n[listener b]\n"
                                  "bind = 127.0.0.1:7401\n");
    char why[200];

    ck_assert(!conf->listeners_from_args);
    ck_assert_int_eq(config_set_listeners(conf, binds, 4, why, sizeof(why)), 0);
    ck_assert(conf->listeners_from_args);
    ck_assert_uint_eq(conf->n_listeners, 4);
    ck_assert_str_eq(conf->listeners[0].name, "cmdline1");
    ck_assert_str_eq(conf->listeners[0].host, "127.0.0.1");
    ck_assert_uint_eq(conf->listeners[0].port, 21401);
    ck_assert_str_eq(conf->listeners[1].name, "cmdline2");
    ck_assert_str_eq(conf->listeners[1].host, "::1");
    ck_assert_int_eq(conf->listeners[2].kind, CONFIG_LISTEN_UNIX);
    ck_assert_str_eq(conf->listeners[2].path, "/tmp/p.sock");
    ck_assert_uint_eq(conf->listeners[2].mode, 0660);
    ck_assert_str_eq(conf->listeners[3].bind, "127.0.0.1:0");
    config_unref(conf);
}
END_TEST

START_TEST(test_set_listeners_bad)
{
    static const char *const bad[] = {"127.0.0.1:7400", "::1:7400"};
    static const char *const twice[] = {"127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7400"};
    struct config *conf = config_new_defaults();
    char why[200];

    ck_assert_int_eq(config_set_listeners(conf, bad, 2, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "'::1:7400': an IPv6 address needs brackets: [addr]:port");
    ck_assert_int_eq(config_set_listeners(conf, twice, 3, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "'127.0.0.1:7400' is given twice");
    /* CONF is untouched on failure. */
    ck_assert(!conf->listeners_from_args);
    ck_assert_uint_eq(conf->n_listeners, 1);
    ck_assert_str_eq(conf->listeners[0].bind, "127.0.0.1:7400");
    config_unref(conf);
}
END_TEST

/* A reload keeps the command line's listeners, and only those. */
START_TEST(test_keep_arg_listeners)
{
    static const char *const binds[] = {"127.0.0.1:0", "unix:/tmp/q.sock"};
    struct config *running = config_new_defaults();
    struct config *next = LOAD_OK("[listener z]\nbind = 127.0.0.1:9\n");
    struct config *plain = LOAD_OK("[listener y]\nbind = 127.0.0.1:8\n");
    char why[200];

    config_keep_arg_listeners(next, running); /* from the file: nothing to keep */
    ck_assert_str_eq(next->listeners[0].name, "z");
    ck_assert_int_eq(config_set_listeners(running, binds, 2, why, sizeof(why)), 0);
    config_keep_arg_listeners(next, running);
    ck_assert(next->listeners_from_args);
    ck_assert_uint_eq(next->n_listeners, 2);
    ck_assert_str_eq(next->listeners[0].name, "cmdline1");
    ck_assert_str_eq(next->listeners[1].path, "/tmp/q.sock");
    ck_assert(config_listener_same(&next->listeners[1], &running->listeners[1]));
    ck_assert_ptr_ne(next->listeners[1].path, running->listeners[1].path); /* a copy */
    config_keep_arg_listeners(plain, next);
    ck_assert_str_eq(plain->listeners[0].name, "cmdline1");
    config_unref(running);
    config_unref(next);
    config_unref(plain);
}
END_TEST

/* ----------------------------------------------------------------- diff ---- */

struct diffs {
    char lines[16][160];
    size_t n;
};

static void diff_cb(void *arg, const char *section, const char *key, const char *old_value,
                    const char *new_value)
{
    struct diffs *d = arg;

    ck_assert_uint_lt(d->n, 16);
    snprintf(d->lines[d->n++], sizeof(d->lines[0]), "[%s] %s %s -> %s", section, key,
             old_value ? old_value : "(none)", new_value ? new_value : "(none)");
}

/* Diffs two files' texts into D; returns the count config_diff returned. */
static size_t diff_texts(const char *a, const char *b, struct diffs *d)
{
    struct config *ca = LOAD_OK(a), *cb = LOAD_OK(b);
    size_t n;

    memset(d, 0, sizeof(*d));
    n = config_diff(ca, cb, diff_cb, d);
    ck_assert_uint_eq(n, d->n);
    config_unref(ca);
    config_unref(cb);
    return n;
}

START_TEST(test_diff_none)
{
    struct config *a = config_new_defaults(), *b = config_new_defaults();
    struct diffs d = {0};

    ck_assert_uint_eq(config_diff(a, b, diff_cb, &d), 0);
    config_unref(a);
    config_unref(b);
    /* Spelled differently, the same values: no change. */
    ck_assert_uint_eq(diff_texts("[broker]\nmax_outbound = 64mb\nidle_timeout = 300\n",
                                 "[broker]\nmax_outbound = 67108864\nidle_timeout = 5m\n", &d),
                      0);
}
END_TEST

/* Values come out in the file's own units, in the key table's order. */
START_TEST(test_diff_broker)
{
    struct diffs d;

    ck_assert_uint_eq(diff_texts("[broker]\n",
                                 "[broker]\nmax_outbound = 8mb\nlog_level = debug\n"
                                 "slow_consumer = drop\nidle_timeout = 90s\n"
                                 "max_payload = 1500\nmax_connections = 500\n"
                                 "stats_interval = 0\ndrain_timeout = 250ms\n",
                                 &d),
                      8);
    ck_assert_str_eq(d.lines[0], "[broker] log_level info -> debug");
    ck_assert_str_eq(d.lines[1], "[broker] max_payload 1mb -> 1500");
    ck_assert_str_eq(d.lines[2], "[broker] max_connections 10000 -> 500");
    ck_assert_str_eq(d.lines[3], "[broker] max_outbound 64mb -> 8mb");
    ck_assert_str_eq(d.lines[4], "[broker] slow_consumer disconnect -> drop");
    ck_assert_str_eq(d.lines[5], "[broker] idle_timeout 5m -> 90s");
    ck_assert_str_eq(d.lines[6], "[broker] drain_timeout 5s -> 250ms");
    ck_assert_str_eq(d.lines[7], "[broker] stats_interval 10s -> 0");
}
END_TEST

START_TEST(test_diff_http)
{
    static const char on[] = "[http]\nbind = 127.0.0.1:7480\n";
    struct diffs d;

    ck_assert_uint_eq(diff_texts("", on, &d), 1);
    ck_assert_str_eq(d.lines[0], "[http] bind (none) -> 127.0.0.1:7480");
    ck_assert_uint_eq(diff_texts(on, "", &d), 1);
    ck_assert_str_eq(d.lines[0], "[http] bind 127.0.0.1:7480 -> (none)");
    ck_assert_uint_eq(diff_texts(on,
                                 "[http]\nbind = 127.0.0.1:7481\ntimeout = 2s\n"
                                 "max_clients_per_address = 9\n",
                                 &d),
                      3);
    ck_assert_str_eq(d.lines[0], "[http] bind 127.0.0.1:7480 -> 127.0.0.1:7481");
    ck_assert_str_eq(d.lines[1], "[http] timeout 10s -> 2s");
    ck_assert_str_eq(d.lines[2], "[http] max_clients_per_address 4 -> 9");
}
END_TEST

/* [cluster]: the backplane (docs/scale-out.md); standalone without redis. */
START_TEST(test_cluster_section)
{
    struct config *conf = config_new_defaults();
    struct diffs d;

    ck_assert(!conf->cluster.enabled);
    ck_assert_ptr_null(conf->cluster.redis);
    ck_assert_str_eq(conf->cluster.prefix, "pigeon");
    ck_assert_uint_eq(conf->cluster.heartbeat_ms, 1000);
    ck_assert_uint_eq(conf->cluster.node_timeout_ms, 5000);
    ck_assert_uint_eq(conf->cluster.max_pending, 16 * 1024 * 1024);
    config_unref(conf);

    conf = LOAD_OK("[cluster]\nredis = 10.0.0.5:6379\nnode = a1\n");
    ck_assert(conf->cluster.enabled);
    ck_assert_str_eq(conf->cluster.redis_host, "10.0.0.5");
    ck_assert_uint_eq(conf->cluster.redis_port, 6379);
    ck_assert_ptr_null(conf->cluster.redis_path);
    ck_assert_str_eq(conf->cluster.node, "a1");
    ck_assert_ptr_null(conf->cluster.redis_password);
    config_unref(conf);
    conf = LOAD_OK("[cluster]\nredis = redis.internal\n"); /* no port: Redis's own */
    ck_assert_str_eq(conf->cluster.redis_host, "redis.internal");
    ck_assert_uint_eq(conf->cluster.redis_port, 6379);
    config_unref(conf);
    conf = LOAD_OK("[cluster]\nredis = [::1]\n");
    ck_assert_str_eq(conf->cluster.redis_host, "::1");
    ck_assert_uint_eq(conf->cluster.redis_port, 6379);
    config_unref(conf);
    conf = LOAD_OK("[cluster]\nredis = [::1]:7000\nredis_password = a;b c\n");
    ck_assert_uint_eq(conf->cluster.redis_port, 7000);
    ck_assert_str_eq(conf->cluster.redis_password, "a;b c");
    config_unref(conf);
    conf = LOAD_OK("[cluster]\nredis = unix:/run/redis/redis.sock\nheartbeat = 250ms\n"
                   "node_timeout = 500ms\n");
    ck_assert_str_eq(conf->cluster.redis_path, "/run/redis/redis.sock");
    ck_assert_ptr_null(conf->cluster.redis_host);
    config_unref(conf);
    conf = LOAD_OK("[cluster]\nnode = a1\n"); /* no redis: standalone */
    ck_assert(conf->cluster.enabled);
    ck_assert_ptr_null(conf->cluster.redis);
    config_unref(conf);

    LOAD_BAD("[cluster]\nredis = 10.0.0.5:0\n", 2, "bad redis");
    LOAD_BAD("[cluster]\nredis = 10.0.0.5\nnode = a:1\n", 3, "use 1 to 64 of");
    LOAD_BAD("[cluster]\nprefix = {x}\n", 2, "use 1 to 64 of");
    LOAD_BAD("[cluster]\nredis_user = a\tb\n", 2, "no blank");
    LOAD_BAD("[cluster]\nheartbeat = 3s\n", 2, "less than twice heartbeat");
    LOAD_BAD("[cluster]\nheartbeat = 1s\nnode_timeout = 1s\n", 3, "less than twice heartbeat");
    LOAD_BAD("[cluster]\nheartbeat = 50ms\n", 2, "must be from 100ms to 1m");
    LOAD_BAD("[cluster]\nredis = 10.0.0.5\nmax_pending = 1mb\n[broker]\nmax_payload = 2mb\n", 3,
             "smaller than max_payload");
    LOAD_BAD("[cluster]\n[cluster]\n", 2, "duplicate section [cluster]");

    /* A reload names the keys that change, and never a password. */
    ck_assert_uint_eq(diff_texts("", "[cluster]\nredis = 10.0.0.5\n", &d), 1);
    ck_assert_str_eq(d.lines[0], "[cluster] redis (none) -> 10.0.0.5");
    ck_assert_uint_eq(diff_texts("[cluster]\nredis = 10.0.0.5\nredis_password = one\n",
                                 "[cluster]\nredis = 10.0.0.5\nredis_password = two\n"
                                 "heartbeat = 2s\nnode_timeout = 10s\n",
                                 &d),
                      2);
    ck_assert_str_eq(d.lines[0], "[cluster] heartbeat 1s -> 2s");
    ck_assert_str_eq(d.lines[1], "[cluster] node_timeout 5s -> 10s");
}
END_TEST

START_TEST(test_diff_listeners)
{
    struct diffs d;

    ck_assert_uint_eq(diff_texts("[listener a]\nbind = 127.0.0.1:1\n"
                                 "[listener b]\nbind = unix:/tmp/b.sock\n"
                                 "[listener c]\nbind = 127.0.0.1:3\n",
                                 "[listener b]\nbind = unix:/tmp/b.sock\nmode = 0666\n"
                                 "[listener c]\nbind = [::1]:3\n"
                                 "[listener d]\nbind = 127.0.0.1:4\n",
                                 &d),
                      4);
    ck_assert_str_eq(d.lines[0], "[listener a] bind 127.0.0.1:1 -> (none)");
    ck_assert_str_eq(d.lines[1], "[listener b] mode 0660 -> 0666");
    ck_assert_str_eq(d.lines[2], "[listener c] bind 127.0.0.1:3 -> [::1]:3");
    ck_assert_str_eq(d.lines[3], "[listener d] bind (none) -> 127.0.0.1:4");
    /* The default listener a file without any gets is compared like the others. */
    ck_assert_uint_eq(diff_texts("", "[listener default]\nbind = 127.0.0.1:7400\n", &d), 0);
}
END_TEST

/* Every [broker], [http] and [cluster] key of the table can be written out. */
START_TEST(test_value_format_every_key)
{
    struct config *conf = LOAD_OK("[http]\nbind = [::1]:7480\n[cluster]\nredis = 10.0.0.5\n"
                                  "node = a1\nredis_user = u\nredis_password = p\n"
                                  "[store]\ndir = /tmp/pigeon-x\n");
    const char *section, *key;
    char buf[128];

    for (size_t i = 0; config_key_at(i, &section, &key); i++) {
        /* Listeners and streams are compared by name; [auth] is off here; a secret unset is "". */
        if (strcmp(section, "listener") == 0 || strcmp(section, "stream") == 0 ||
            strcmp(section, "auth") == 0 || strcmp(key, "token") == 0)
            continue;
        ck_assert_msg(config_value_format(conf, section, key, buf, sizeof(buf)) == 0 &&
                          buf[0] != '\0',
                      "[%s] %s has no format", section, key);
    }
    config_value_format(conf, "broker", "max_retained", buf, sizeof(buf));
    ck_assert_str_eq(buf, "64mb");
    config_value_format(conf, "http", "bind", buf, sizeof(buf));
    ck_assert_str_eq(buf, "[::1]:7480");
    config_value_format(conf, "cluster", "redis_password", buf, sizeof(buf));
    ck_assert_str_eq(buf, "(set)"); /* a secret is never written back */
    ck_assert_int_eq(config_value_format(conf, "broker", "nope", buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_value_format(conf, "listener", "bind", buf, sizeof(buf)), -1);
    config_unref(conf);
}
END_TEST

/* ------------------------------------------------ store and streams ---- */

START_TEST(test_store_and_streams)
{
    struct config *conf = LOAD_OK("[store]\ndir = /var/lib/p\nfsync = no\n"
                                  "[stream orders]\npatterns = orders.>, billing.invoice.*\n"
                                  "max_messages = 10000000\nmax_bytes = 10gb\nmax_age = 7d\n"
                                  "discard = new\nduplicate_window = 90s\n"
                                  "[stream audit]\npatterns = audit.*.x\n");

    ck_assert(conf->store.enabled);
    ck_assert_str_eq(conf->store.dir, "/var/lib/p");
    ck_assert(!conf->store.fsync);
    ck_assert_uint_eq(conf->store.segment_size, 64 * 1024 * 1024);
    ck_assert_uint_eq(conf->n_streams, 2);
    const struct config_stream *o = &conf->streams[0];
    ck_assert_str_eq(o->name, "orders");
    ck_assert_uint_eq(o->n_patterns, 2);
    ck_assert_str_eq(o->patterns[0], "orders.>");
    ck_assert_str_eq(o->patterns[1], "billing.invoice.*");
    ck_assert_uint_eq(o->max_messages, 10000000);
    ck_assert_uint_eq(o->max_bytes, 10ull << 30);
    ck_assert_uint_eq(o->max_age_ms, 7ull * 24 * 3600 * 1000);
    ck_assert_int_eq(o->discard, CONFIG_DISCARD_NEW);
    ck_assert_uint_eq(o->duplicate_window_ms, 90000);
    ck_assert_int_eq(o->patterns_line, 5);
    /* the defaults */
    ck_assert_uint_eq(conf->streams[1].max_messages, 0);
    ck_assert_int_eq(conf->streams[1].discard, CONFIG_DISCARD_OLD);
    ck_assert_uint_eq(conf->streams[1].duplicate_window_ms, 120000);
    config_unref(conf);
    conf = LOAD_OK("[broker]\n");
    ck_assert(!conf->store.enabled);
    ck_assert_uint_eq(conf->n_streams, 0);
    config_unref(conf);
}
END_TEST

START_TEST(test_streams_bad)
{
    /* two streams that can capture one topic: FILE:LINE of the second's patterns */
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = orders.>\n[stream b]\n"
             "max_messages = 5\npatterns = x.y, orders.*\n",
             7, "can capture the same topics as stream 'a' pattern 'orders.>' (line 4)");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = >\n[stream b]\npatterns = a\n", 6,
             "two streams may not capture one topic");
    LOAD_BAD("[stream a]\npatterns = a.>\n", 1, "needs a [store] section");
    LOAD_BAD("[store]\ndir = /p\n[stream a.b]\npatterns = a.>\n", 3, "bad stream name");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\n", 3, "stream 'a' has no patterns");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = a..b\n", 4, "pattern 'a..b'");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = ,\n", 4, "pattern ''");
    LOAD_BAD("[store]\ndir = relative\n", 2, "absolute path");
    LOAD_BAD("[store]\ndir = /p\nfsync = maybe\n", 3, "expected yes or no");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = a\ndiscard = oldest\n", 5,
             "expected one of: old, new");
    LOAD_BAD("[store]\ndir = /p\n[stream a]\npatterns = a\n[stream a]\npatterns = b\n", 5,
             "duplicate stream 'a'");
    /* disjoint ones are fine, '$' topics included */
    config_unref(LOAD_OK("[store]\ndir = /p\n[stream a]\npatterns = a.>\n[stream b]\n"
                         "patterns = b.*, a\n[stream c]\npatterns = $SYS.stream.>\n"
                         "[stream d]\npatterns = z.*.y\n"));
}
END_TEST

START_TEST(test_patterns_overlap)
{
    static const struct {
        const char *a, *b;
        bool overlap;
    } cases[] = {
        {"a.b", "a.b", true},     {"a.b", "a.c", false},   {"a.*", "a.b", true},
        {"a.*", "a.b.c", false},  {"a.>", "a.b.c", true},  {"a.>", "a", false},
        {">", "x", true},         {"*", "x.y", false},     {"*.b", "a.*", true},
        {"a.*.c", "a.b.*", true}, {"a.*.c", "a.b.d", false}, {"*.>", "a.b", true},
        {">", "$SYS.x", false},   {"*.x", "$SYS.x", false},  {"$SYS.>", "$SYS.a", true},
        {"a.b.>", "a.>", true},   {"a.b", "a.b.>", false},   {"*.*", "a.>", true},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(config_patterns_overlap(cases[i].a, cases[i].b) == cases[i].overlap,
                      "%s vs %s", cases[i].a, cases[i].b);
        ck_assert_msg(config_patterns_overlap(cases[i].b, cases[i].a) == cases[i].overlap,
                      "%s vs %s", cases[i].b, cases[i].a);
    }
}
END_TEST

/* Under systemd a [store] without dir takes the unit's StateDirectory=. */
START_TEST(test_store_dir_from_systemd)
{
    struct config *conf;

    unsetenv("STATE_DIRECTORY");
    LOAD_BAD("[store]\nfsync = yes\n", 1, "[store] has no dir");
    setenv("STATE_DIRECTORY", "/var/lib/pigeon:/var/lib/other", 1);
    conf = LOAD_OK("[store]\n");
    ck_assert_str_eq(conf->store.dir, "/var/lib/pigeon");
    config_unref(conf);
    conf = LOAD_OK("[store]\ndir = /srv/p\n");
    ck_assert_str_eq(conf->store.dir, "/srv/p");
    config_unref(conf);
    unsetenv("STATE_DIRECTORY");
}
END_TEST

/* ------------------------------------------------- the key tables ---- */

/* "[SECTION]\n" for a key of kind SECTION, with what that section needs besides KEY. */
static void section_text(char *buf, size_t len, const char *section, const char *key,
                         const char *value)
{
    if (strcmp(section, "listener") == 0 && strncmp(key, "tls_", 4) == 0)
        snprintf(buf, len, "[listener t]\nbind = 127.0.0.1:0\n%s%s%s = %s\n",
                 strcmp(key, "tls_cert") ? "tls_cert = /tmp/c.pem\n" : "",
                 strcmp(key, "tls_key") ? "tls_key = /tmp/k.pem\n" : "", key, value);
    else if (strcmp(section, "listener") == 0)
        snprintf(buf, len, "[listener t]\n%s%s = %s\n",
                 strcmp(key, "bind") ? "bind = unix:/tmp/pigeon-rt.sock\n" : "", key, value);
    else if (strcmp(section, "auth") == 0)
        snprintf(buf, len, "[auth]\n%s%s = %s\n",
                 strcmp(key, "users_file") ? "users_file = /tmp/users.conf\n" : "", key, value);
    else if (strcmp(section, "store") == 0)
        snprintf(buf, len, "[store]\n%s%s = %s\n",
                 strcmp(key, "dir") ? "dir = /tmp/pigeon-rt\n" : "", key, value);
    else if (strcmp(section, "stream") == 0)
        snprintf(buf, len, "[store]\ndir = /tmp/pigeon-rt\n[stream t]\n%s%s = %s\n",
                 strcmp(key, "patterns") ? "patterns = t.>\n" : "", key, value);
    else if (strcmp(section, "http") == 0)
        snprintf(buf, len, "[http]\n%s%s = %s\n",
                 strcmp(key, "bind") ? "bind = 127.0.0.1:0\n" : "", key, value);
    else
        snprintf(buf, len, "[%s]\n%s = %s\n", section, key, value);
}

/* The value of KEY in CONF, which has one section of kind SECTION (listener: "t"). */
static void value_of(const struct config *conf, const char *section, const char *key, char *buf,
                     size_t len)
{
    const char *title = strcmp(section, "listener") == 0 ? "listener t"
                        : strcmp(section, "stream") == 0 ? "stream t"
                                                         : section;

    ck_assert_msg(config_value_format(conf, title, key, buf, len) == 0, "[%s] %s: no value",
                  section, key);
}

/*
 * Every key of every type: each value of a mixed bag that parses is written
 * back in a form that parses to the same config, and writes back the same
 * again (parse -> format -> parse).  Each key takes at least two of them.
 */
START_TEST(test_every_key_round_trips)
{
    static const char *const values[] = {
        "0",      "1",       "7",       "16",      "100",        "1500",  "4096",
        "10000",  "1k",      "64kb",    "1m",      "2MB",        "16m",   "1g",
        "250ms",  "100ms",   "90s",     "5m",      "1h",         "2h",    "auto",
        "drop",   "disconnect",         "debug",   "warning",    "poll",  "select",
        "0600",   "777",     "127.0.0.1:7480",     "[::1]:0",    "localhost:0",
        "unix:/tmp/pigeon-rt.sock", "yes", "no", "none", "required", "pigeon", "/tmp/a.pem",
        "/var/lib/pigeon", "/tmp/pigeon-rt", "old", "new", "7d", "a.>, b.*",
    };
    const char *section, *key;
    char text[256], first[256], again[256], seen[256];

    for (size_t i = 0; config_key_at(i, &section, &key); i++) {
        int distinct = 0;
        if (strcmp(key, "token") == 0 || strcmp(key, "redis_password") == 0)
            continue; /* a secret is never written back: "(set)" */
        seen[0] = '\0';
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            struct config *a = NULL, *b;
            struct diffs d;
            section_text(text, sizeof(text), section, key, values[v]);
            if (config_load_string(text, "rt.conf", &a, NULL) < 0)
                continue;
            value_of(a, section, key, first, sizeof(first));
            section_text(text, sizeof(text), section, key, first);
            b = LOAD_OK(text);
            value_of(b, section, key, again, sizeof(again));
            ck_assert_msg(strcmp(first, again) == 0, "[%s] %s = %s: wrote %s, then %s", section,
                          key, values[v], first, again);
            memset(&d, 0, sizeof(d));
            ck_assert_msg(config_diff(a, b, diff_cb, &d) == 0, "[%s] %s = %s: %s", section, key,
                          values[v], d.lines[0]);
            if (strcmp(first, seen) != 0) {
                distinct++;
                snprintf(seen, sizeof(seen), "%s", first);
            }
            config_unref(a);
            config_unref(b);
        }
        ck_assert_msg(distinct >= 2, "[%s] %s: only %d value(s) parsed", section, key, distinct);
    }
}
END_TEST

/* The defaults, written out and read back, are the defaults. */
START_TEST(test_defaults_round_trip)
{
    struct config *def = config_new_defaults(), *conf;
    const char *section, *key;
    char text[2048] = "[broker]\n", line[160], value[128];
    struct diffs d = {0};

    for (size_t i = 0; config_key_at(i, &section, &key); i++) {
        if (strcmp(section, "broker") != 0)
            continue;
        ck_assert_int_eq(config_value_format(def, section, key, value, sizeof(value)), 0);
        snprintf(line, sizeof(line), "%s = %s\n", key, value);
        strcat(text, line);
    }
    conf = LOAD_OK(text);
    ck_assert_uint_eq(config_diff(def, conf, diff_cb, &d), 0);
    ck_assert_uint_eq(conf->max_memory, 0);
    ck_assert_uint_eq(conf->listeners[0].mode, 0); /* TCP: no mode */
    config_unref(conf);
    config_unref(def);
}
END_TEST

/* Named sections are addressed as the diff names them: "listener NAME". */
START_TEST(test_value_format_named)
{
    struct config *conf = LOAD_OK("[listener a]\nbind = unix:/tmp/a.sock\nmode = 600\n"
                                  "[listener b]\nbind = [::1]:7401\n");
    char buf[128];

    ck_assert_int_eq(config_value_format(conf, "listener a", "bind", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "unix:/tmp/a.sock");
    ck_assert_int_eq(config_value_format(conf, "listener a", "mode", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "0600");
    ck_assert_int_eq(config_value_format(conf, "listener b", "mode", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, ""); /* TCP has no mode */
    ck_assert_int_eq(config_value_format(conf, "listener c", "bind", buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_value_format(conf, "listener a", "nope", buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_value_format(conf, "listener", "bind", buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_value_format(conf, "brokers", "log_level", buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_value_format(conf, "http", "timeout", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, ""); /* off */
    config_unref(conf);
}
END_TEST

/* ------------------------------------------------------------ suite ---- */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_file_is_defaults);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_key_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("units");
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_payload_above_outbound);
    tcase_add_test(tc, test_stats_interval_floor);
    tcase_add_test(tc, test_durations);
    suite_add_tcase(s, tc);

    tc = tcase_create("good files");
    tcase_add_test(tc, test_every_option);
    tcase_add_test(tc, test_enum_values);
    tcase_add_test(tc, test_limits_at_bounds);
    tcase_add_test(tc, test_listeners);
    tcase_add_test(tc, test_listener_same);
    tcase_add_test(tc, test_unix_path_limit);
    tcase_add_test(tc, test_http_section);
    tcase_add_test(tc, test_exposure);
    tcase_add_test(tc, test_tls_keys);
    tcase_add_test(tc, test_cluster_section);
    tcase_add_test(tc, test_store_and_streams);
    tcase_add_test(tc, test_streams_bad);
    tcase_add_test(tc, test_patterns_overlap);
    tcase_add_test(tc, test_store_dir_from_systemd);
    suite_add_tcase(s, tc);

    tc = tcase_create("syntax");
    tcase_add_test(tc, test_comments_and_layout);
    tcase_add_test(tc, test_indented_key_is_a_key);
    tcase_add_test(tc, test_long_lines);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_first_error_wins);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad files");
    tcase_add_test(tc, test_unknown_names);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_listener_sections);
    tcase_add_test(tc, test_bad_binds);
    tcase_add_test(tc, test_bad_modes);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_file_good);
    tcase_add_test(tc, test_file_bad);
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_file_directory);
    tcase_add_test(tc, test_file_nul_byte);
    tcase_add_test(tc, test_file_too_large);
    tcase_add_test(tc, test_sample_conf);
    tcase_add_test(tc, test_sample_conf_defaults);
    tcase_add_test(tc, test_check_every_error);
    tcase_add_test(tc, test_config_doc);
    suite_add_tcase(s, tc);

    tc = tcase_create("non-regular files");
    tcase_add_test(tc, test_file_fifo);
    tcase_add_test(tc, test_file_device);
    suite_add_tcase(s, tc);

    tc = tcase_create("command-line listeners");
    tcase_add_test(tc, test_set_listeners);
    tcase_add_test(tc, test_set_listeners_bad);
    tcase_add_test(tc, test_keep_arg_listeners);
    suite_add_tcase(s, tc);

    tc = tcase_create("diff");
    tcase_add_test(tc, test_diff_none);
    tcase_add_test(tc, test_diff_broker);
    tcase_add_test(tc, test_diff_http);
    tcase_add_test(tc, test_diff_listeners);
    tcase_add_test(tc, test_value_format_every_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("key tables");
    tcase_add_test(tc, test_every_key_round_trips);
    tcase_add_test(tc, test_defaults_round_trip);
    tcase_add_test(tc, test_value_format_named);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
