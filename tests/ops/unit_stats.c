/*
 * unit_stats.c - the stats module: one snapshot in three formats (the
 * Prometheus text of /metrics, systemd's STATUS= line, the MessagePack map
 * of $SYS.broker.stats), and gathering from a real server context.
 *
 * The formatters are tested on a snapshot built by hand, so every figure
 * has a value of its own and a mix-up between two shows.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <msgpack.h>

#include "config.h"
#include "listener.h"
#include "loop.h"
#include "server.h"
#include "stats.h"

/* ---------------------------------------------------------- helpers ---- */

/* A snapshot whose every figure differs: connections 3, accepted 11, ... */
static void snapshot_fill(struct stats_snapshot *s, struct stats_listener *ls)
{
    memset(s, 0, sizeof(*s));
    s->version = "9.8.7";
    s->backend = "epoll";
    s->uptime_ms = 61234;
    s->connections = 3;
    s->conns_accepted = 11;
    s->conns_rejected = 2;
    s->subscriptions = 17;
    s->msgs_in = 1001;
    s->bytes_in = 20002;
    s->msgs_out = 3003;
    s->bytes_out = 40004;
    s->retained_topics = 5;
    s->retained_bytes = 6006;
    s->slow_disconnects = 7;
    s->slow_dropped = 8;
    s->protocol_errors = 9;
    ls[0] = (struct stats_listener){.name = "default",
                                    .address = "127.0.0.1:7400",
                                    .accepted = 10,
                                    .active = 2,
                                    .msgs_in = 1000,
                                    .bytes_read = 30000,
                                    .msgs_out = 3000,
                                    .bytes_out = 40000};
    ls[1] = (struct stats_listener){.name = "local",
                                    .address = "unix:/run/a \"b\"\\c",
                                    .accepted = 1,
                                    .active = 1,
                                    .msgs_in = 1,
                                    .bytes_read = 50,
                                    .msgs_out = 3,
                                    .bytes_out = 4};
    s->listeners = ls;
    s->n_listeners = 2;
}

/* The metrics text of S, NUL-terminated; free it. */
static char *metrics_text(const struct stats_snapshot *s)
{
    struct evbuffer *b = evbuffer_new();
    size_t len;
    char *text;

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(stats_format_metrics(s, b), 0);
    len = evbuffer_get_length(b);
    text = malloc(len + 1);
    ck_assert_ptr_nonnull(text);
    evbuffer_remove(b, text, len);
    text[len] = '\0';
    evbuffer_free(b);
    return text;
}

/* True when TEXT has LINE as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

#define ASSERT_LINE(text, line)                                                                    \
    ck_assert_msg(has_line((text), (line)), "no line '%s' in:\n%s", (line), (text))

/* ----------------------------------------------------------- metrics ---- */

START_TEST(test_metrics_samples)
{
    struct stats_snapshot s;
    struct stats_listener ls[2];
    char *t;

    snapshot_fill(&s, ls);
    t = metrics_text(&s);
    ASSERT_LINE(t, "pigeon_info{version=\"9.8.7\",io_backend=\"epoll\"} 1");
    ASSERT_LINE(t, "pigeon_uptime_seconds 61.234");
    ASSERT_LINE(t, "pigeon_connections 3");
    ASSERT_LINE(t, "pigeon_connections_accepted_total 11");
    ASSERT_LINE(t, "pigeon_connections_rejected_total 2");
    ASSERT_LINE(t, "pigeon_subscriptions 17");
    ASSERT_LINE(t, "pigeon_messages_in_total 1001");
    ASSERT_LINE(t, "pigeon_messages_in_bytes_total 20002");
    ASSERT_LINE(t, "pigeon_messages_out_total 3003");
    ASSERT_LINE(t, "pigeon_messages_out_bytes_total 40004");
    ASSERT_LINE(t, "pigeon_retained_topics 5");
    ASSERT_LINE(t, "pigeon_retained_bytes 6006");
    ASSERT_LINE(t, "pigeon_slow_consumer_disconnects_total 7");
    ASSERT_LINE(t, "pigeon_slow_consumer_dropped_total 8");
    ASSERT_LINE(t, "pigeon_protocol_errors_total 9");
    ASSERT_LINE(t, "pigeon_listener_connections_accepted_total{listener=\"default\","
                   "address=\"127.0.0.1:7400\"} 10");
    ASSERT_LINE(t,
                "pigeon_listener_connections{listener=\"default\",address=\"127.0.0.1:7400\"} 2");
    ASSERT_LINE(t, "pigeon_listener_messages_in_total{listener=\"default\","
                   "address=\"127.0.0.1:7400\"} 1000");
    ASSERT_LINE(t, "pigeon_listener_read_bytes_total{listener=\"default\","
                   "address=\"127.0.0.1:7400\"} 30000");
    ASSERT_LINE(t, "pigeon_listener_messages_out_total{listener=\"default\","
                   "address=\"127.0.0.1:7400\"} 3000");
    ASSERT_LINE(t, "pigeon_listener_messages_out_bytes_total{listener=\"default\","
                   "address=\"127.0.0.1:7400\"} 40000");
    /* Label values escape backslash and double quote. */
    ASSERT_LINE(t, "pigeon_listener_connections{listener=\"local\","
                   "address=\"unix:/run/a \\\"b\\\"\\\\c\"} 1");
    free(t);
}
END_TEST

/* Every sample line belongs to a family announced by HELP and TYPE just before. */
START_TEST(test_metrics_shape)
{
    struct stats_snapshot s;
    struct stats_listener ls[2];
    char *t, *save = NULL, family[128] = "";
    int samples = 0, families = 0;

    snapshot_fill(&s, ls);
    t = metrics_text(&s);
    ck_assert(t[strlen(t) - 1] == '\n');
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert(sscanf(line + 7, "%127s", family) == 1);
            families++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[16];
            ck_assert(sscanf(line + 7, "%127s %15s", name, type) == 2);
            ck_assert_str_eq(name, family);
            ck_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
            ck_assert(strcmp(type, "counter") != 0 || strstr(name, "_total") != NULL);
            continue;
        }
        size_t n = strcspn(line, "{ ");
        ck_assert_msg(n == strlen(family) && strncmp(line, family, n) == 0,
                      "sample '%s' outside its family '%s'", line, family);
        ck_assert(strncmp(line, "pigeon_", 7) == 0);
        samples++;
    }
    ck_assert_int_eq(families, 1 + 35 + 6);    /* info, broker-wide, per listener */
    ck_assert_int_eq(samples, 1 + 35 + 6 * 2); /* two listeners */
    free(t);
}
END_TEST

START_TEST(test_metrics_no_listeners)
{
    struct stats_snapshot s;
    struct stats_listener ls[2];
    char *t;

    snapshot_fill(&s, ls);
    s.n_listeners = 0;
    t = metrics_text(&s);
    ck_assert_ptr_null(strstr(t, "listener=\""));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE pigeon_listener_connections gauge"));
    free(t);
}
END_TEST

/* ------------------------------------------------------------ status ---- */

START_TEST(test_status_line)
{
    struct stats_snapshot s;
    struct stats_listener ls[2];
    char buf[256], small[12];

    snapshot_fill(&s, ls);
    stats_format_status(&s, buf, sizeof(buf));
    ck_assert_str_eq(buf, "3 connections, 17 subscriptions, 1001 msgs in, 3003 msgs out, "
                          "5 retained");
    ck_assert(strchr(buf, '\n') == NULL); /* one line: STATUS= takes no newline */
    ck_assert_int_gt(stats_format_status(&s, small, sizeof(small)), (int)sizeof(small));
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/* ------------------------------------------------------- MessagePack ---- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
            return &kv->val;
    }
    ck_abort_msg("no key '%s'", key);
    return NULL;
}

static uint64_t map_u64(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = map_get(map, key);

    ck_assert_int_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return v->via.u64;
}

static bool map_str_is(const msgpack_object *map, const char *key, const char *want)
{
    const msgpack_object *v = map_get(map, key);

    return v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(want) &&
           memcmp(v->via.str.ptr, want, strlen(want)) == 0;
}

START_TEST(test_pack)
{
    struct stats_snapshot s;
    struct stats_listener ls[2];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    size_t off = 0;

    snapshot_fill(&s, ls);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    stats_pack(&s, &pk);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, sb.size); /* exactly one object */

    const msgpack_object *m = &u.data;
    ck_assert_uint_eq(m->via.map.size, 38);
    ck_assert(map_str_is(m, "version", "9.8.7"));
    ck_assert(map_str_is(m, "backend", "epoll"));
    ck_assert_uint_eq(map_u64(m, "uptime_ms"), 61234);
    ck_assert_uint_eq(map_u64(m, "connections"), 3);
    ck_assert_uint_eq(map_u64(m, "connections_accepted"), 11);
    ck_assert_uint_eq(map_u64(m, "connections_rejected"), 2);
    ck_assert_uint_eq(map_u64(m, "subscriptions"), 17);
    ck_assert_uint_eq(map_u64(m, "msgs_in"), 1001);
    ck_assert_uint_eq(map_u64(m, "bytes_in"), 20002);
    ck_assert_uint_eq(map_u64(m, "msgs_out"), 3003);
    ck_assert_uint_eq(map_u64(m, "bytes_out"), 40004);
    ck_assert_uint_eq(map_u64(m, "retained_topics"), 5);
    ck_assert_uint_eq(map_u64(m, "retained_bytes"), 6006);
    ck_assert_uint_eq(map_u64(m, "slow_disconnects"), 7);
    ck_assert_uint_eq(map_u64(m, "slow_dropped"), 8);
    ck_assert_uint_eq(map_u64(m, "protocol_errors"), 9);

    const msgpack_object *lm = map_get(m, "listeners");
    ck_assert_uint_eq(lm->via.map.size, 2);
    const msgpack_object *def = map_get(lm, "default");
    ck_assert(map_str_is(def, "address", "127.0.0.1:7400"));
    ck_assert_uint_eq(map_u64(def, "accepted"), 10);
    ck_assert_uint_eq(map_u64(def, "active"), 2);
    ck_assert_uint_eq(map_u64(def, "msgs_in"), 1000);
    ck_assert_uint_eq(map_u64(def, "bytes_read"), 30000);
    ck_assert_uint_eq(map_u64(def, "msgs_out"), 3000);
    ck_assert_uint_eq(map_u64(def, "bytes_out"), 40000);
    ck_assert_uint_eq(map_u64(map_get(lm, "local"), "accepted"), 1);

    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---------------------------------------------------------- gathering ---- */

START_TEST(test_gather_from_server)
{
    struct config *conf;
    struct config_error err;
    struct server srv;
    struct stats_snapshot s;

    ck_assert_msg(config_load_string("[broker]\nlog_level = error\n"
                                     "[listener a]\nbind = 127.0.0.1:0\n"
                                     "[listener b]\nbind = 127.0.0.1:0\n",
                                     "gather.conf", &conf, &err) == 0,
                  "%s", err.reason);
    ck_assert_int_eq(server_init(&srv, conf, NULL, NULL), 0);
    struct listener *la = TAILQ_FIRST(&srv.listeners);
    /* Figures the counters would hold after some traffic. */
    srv.loop.stats.msgs_in = 4;
    srv.loop.stats.bytes_out = 99;
    srv.loop.stats.slow_dropped = 6;
    la->accepted = 5;
    la->closed_msgs_in = 3;
    la->closed_bytes_in = 70;

    stats_gather(&srv, &s);
    ck_assert_str_eq(s.version, PIGEON_VERSION);
    ck_assert_str_eq(s.backend, loop_method(&srv.loop));
    ck_assert_uint_eq(s.connections, 0);
    ck_assert_uint_eq(s.subscriptions, 0);
    ck_assert_uint_eq(s.msgs_in, 4);
    ck_assert_uint_eq(s.bytes_out, 99);
    ck_assert_uint_eq(s.slow_dropped, 6);
    ck_assert_uint_eq(s.n_listeners, 2);
    ck_assert_str_eq(s.listeners[0].name, "a");
    ck_assert_str_eq(s.listeners[1].name, "b");
    ck_assert_str_eq(s.listeners[0].address, listener_address(la));
    ck_assert_uint_eq(s.listeners[0].accepted, 5);
    ck_assert_uint_eq(s.listeners[0].msgs_in, 3);
    ck_assert_uint_eq(s.listeners[0].bytes_read, 70);
    ck_assert_uint_eq(s.listeners[1].accepted, 0);
    stats_release(&s);
    ck_assert_ptr_null(s.listeners);
    server_fini(&srv);
}
END_TEST

/* ------------------------------------------------------------- suite ---- */

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc;

    tc = tcase_create("metrics");
    tcase_add_test(tc, test_metrics_samples);
    tcase_add_test(tc, test_metrics_shape);
    tcase_add_test(tc, test_metrics_no_listeners);
    suite_add_tcase(s, tc);

    tc = tcase_create("status");
    tcase_add_test(tc, test_status_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("msgpack");
    tcase_add_test(tc, test_pack);
    suite_add_tcase(s, tc);

    tc = tcase_create("gather");
    tcase_add_test(tc, test_gather_from_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
