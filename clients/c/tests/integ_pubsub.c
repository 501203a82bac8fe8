/*
 * integ_pubsub.c - libpigeon against a real pigeond: connecting, publishing
 * and subscribing (bytes through unchanged, options, retained values,
 * queue groups, confirmations), unsubscribing, unix sockets, closing from
 * a callback, and the blocking API.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "support.h"

#define MAX_KEPT 64

/* What a test client saw. */
struct seen {
    int msgs;
    pigeon_msg *kept[MAX_KEPT];
    int connected;
    int last_state;
    int last_err;
    int done;
    int done_err;
    uint64_t done_result;
    int errors;
    int last_error;
};

static void seen_free(struct seen *s)
{
    for (int i = 0; i < s->msgs && i < MAX_KEPT; i++)
        pigeon_msg_free(s->kept[i]);
    memset(s, 0, sizeof(*s));
}

static void keep_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct seen *s = arg;
    if (s->msgs < MAX_KEPT)
        ck_assert_int_eq(pigeon_msg_copy(m, &s->kept[s->msgs]), PIGEON_OK);
    s->msgs++;
}

static void state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    struct seen *s = arg;
    s->last_state = state;
    s->last_err = err;
    if (state == PIGEON_STATE_CONNECTED)
        s->connected++;
}

static void error_cb(pigeon_client *c, int err, const char *message, void *arg)
{
    struct seen *s = arg;
    s->errors++;
    s->last_error = err;
}

static void done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct seen *s = arg;
    s->done++;
    s->done_err = err;
    s->done_result = result;
}

static bool is_connected(void *arg)
{
    return ((struct seen *)arg)->connected > 0;
}

static bool is_done(void *arg)
{
    return ((struct seen *)arg)->done > 0;
}

struct want {
    struct seen *s;
    int n;
};

static bool has_msgs(void *arg)
{
    struct want *w = arg;
    return w->s->msgs >= w->n;
}

static pigeon_client *connect_seen(struct event_base *base, const char *addr, struct seen *s)
{
    struct pigeon_options o;
    pigeon_client *c;

    test_options(&o);
    o.on_state = state_cb;
    o.state_arg = s;
    o.on_error = error_cb;
    o.error_arg = s;
    ck_assert_int_eq(pigeon_connect(base, addr, &o, &c), PIGEON_OK);
    ck_assert_msg(run_until(base, is_connected, s), "no connection: %s", pigeon_errmsg(c));
    return c;
}

/* Subscribes and waits until the broker has accepted. */
static uint64_t subscribe_wait(struct event_base *base, pigeon_client *c, const char *pattern,
                               const char *queue, struct seen *s)
{
    struct seen d = {0};
    struct pigeon_sub_opts so = {.queue = queue, .on_done = done_cb, .done_arg = &d};
    uint64_t id;

    ck_assert_int_eq(pigeon_subscribe(c, pattern, &so, keep_cb, s, &id), PIGEON_OK);
    ck_assert(run_until(base, is_done, &d));
    ck_assert_int_eq(d.done_err, PIGEON_OK);
    ck_assert_uint_eq(d.done_result, id);
    return id;
}

/* publish_confirm and wait: returns the delivery count. */
static uint64_t publish_count(struct event_base *base, pigeon_client *c, const char *topic,
                              const void *p, size_t len, const struct pigeon_pub_opts *po)
{
    struct seen d = {0};
    ck_assert_int_eq(pigeon_publish_confirm(c, topic, p, len, po, done_cb, &d), PIGEON_OK);
    ck_assert(run_until(base, is_done, &d));
    ck_assert_int_eq(d.done_err, PIGEON_OK);
    return d.done_result;
}

static void flush_wait(struct event_base *base, pigeon_client *c)
{
    struct seen d = {0};
    ck_assert_int_eq(pigeon_flush(c, done_cb, &d), PIGEON_OK);
    ck_assert(run_until(base, is_done, &d));
    ck_assert_int_eq(d.done_err, PIGEON_OK);
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_connect_hello)
{
    struct broker b;
    struct seen s = {0};
    struct event_base *base = event_base_new();

    broker_start(&b, "127.0.0.1:0", "max_payload = 64k");
    pigeon_client *c = connect_seen(base, b.addr, &s);
    ck_assert_int_eq(pigeon_state(c), PIGEON_STATE_CONNECTED);
    ck_assert_uint_eq(pigeon_max_payload(c), 65536);
    ck_assert_str_eq(pigeon_errmsg(c), "");
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* A bare port is that port on 127.0.0.1 (not the IPv4 address the number
 * would spell), for the asynchronous and the blocking API alike. */
START_TEST(test_bare_port_address)
{
    struct broker b;
    struct seen s = {0};
    struct event_base *base = event_base_new();
    pigeon_sync *sy;
    uint64_t n = 9;
    const uint8_t x = 0x01;

    broker_start(&b, "127.0.0.1:0", NULL);
    const char *port = strrchr(b.addr, ':') + 1;
    pigeon_client *c = connect_seen(base, port, &s);
    ck_assert_int_eq(pigeon_state(c), PIGEON_STATE_CONNECTED);
    pigeon_close(c);
    ck_assert_int_eq(pigeon_sync_connect(port, NULL, 0, &sy), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_publish_confirm(sy, "bare", &x, 1, NULL, 0, &n), PIGEON_OK);
    ck_assert_uint_eq(n, 0);
    pigeon_sync_close(sy);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* Payloads in unusual encodings arrive byte for byte, in order. */
START_TEST(test_bytes_unchanged)
{
    static const uint8_t p1[] = {0x05};
    static const uint8_t p2[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1}; /* 1 as uint64 */
    static const uint8_t p3[] = {0xca, 0x3f, 0x80, 0x00, 0x00}; /* 1.0f */
    static const uint8_t p4[] = {0xdd, 0, 0, 0, 2, 0xc0, 0xc3}; /* array32 [nil, true] */
    static const uint8_t p5[] = {0xd9, 3, 'a', 'b', 'c'};       /* str8 "abc" */
    static const uint8_t p6[] = {0xd6, 0x7f, 1, 2, 3, 4};       /* fixext4 */
    uint8_t big[3000];
    const void *payloads[] = {p1, p2, p3, p4, p5, p6, big};
    size_t lens[] = {sizeof(p1), sizeof(p2), sizeof(p3), sizeof(p4),
                     sizeof(p5), sizeof(p6), sizeof(big)};
    struct broker b;
    struct seen ss = {0}, ps = {0};
    struct event_base *base = event_base_new();

    big[0] = 0xc5; /* bin16 */
    big[1] = (sizeof(big) - 3) >> 8;
    big[2] = (sizeof(big) - 3) & 0xff;
    for (size_t i = 3; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *sub = connect_seen(base, b.addr, &ss);
    pigeon_client *pub = connect_seen(base, b.addr, &ps);
    uint64_t id = subscribe_wait(base, sub, "bytes.>", NULL, &ss);
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < 7; i++)
            ck_assert_int_eq(pigeon_publish(pub, "bytes.x", payloads[i], lens[i], NULL), PIGEON_OK);
    struct want w = {&ss, 21};
    ck_assert(run_until(base, has_msgs, &w));
    for (int k = 0; k < 21; k++) {
        size_t len;
        const void *d = pigeon_msg_data(ss.kept[k], &len);
        ck_assert_uint_eq(len, lens[k % 7]);
        ck_assert(memcmp(d, payloads[k % 7], len) == 0);
        ck_assert_str_eq(pigeon_msg_topic(ss.kept[k], NULL), "bytes.x");
        ck_assert_uint_eq(pigeon_msg_sid(ss.kept[k]), id);
        ck_assert_ptr_null(pigeon_msg_reply_to(ss.kept[k]));
    }
    pigeon_close(sub);
    pigeon_close(pub);
    seen_free(&ss);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_options_and_retained)
{
    struct broker b;
    struct seen s = {0};
    struct event_base *base = event_base_new();
    struct pigeon_header h[2] = {{"trace", "t-1"}, {"kind", "demo"}};
    struct pigeon_pub_opts po = {.reply_to = "answers.here", .headers = h, .n_headers = 2};
    struct pigeon_pub_opts keep = {.retain = 1, .headers = h, .n_headers = 1};
    const uint8_t one = 0x01, two = 0x02;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_seen(base, b.addr, &s);
    /* A retained value, stored before anyone subscribes. */
    ck_assert_uint_eq(publish_count(base, c, "ret.a", &one, 1, &keep), 0);
    subscribe_wait(base, c, "ret.*", NULL, &s);
    struct want w = {&s, 1};
    ck_assert(run_until(base, has_msgs, &w));
    ck_assert_int_eq(pigeon_msg_retained(s.kept[0]), 1);
    size_t vl;
    const char *v = pigeon_msg_header(s.kept[0], "trace", &vl);
    ck_assert(v != NULL && vl == 3 && memcmp(v, "t-1", 3) == 0);
    /* A live one with reply_to and headers (and the connection's own publication). */
    ck_assert_uint_eq(publish_count(base, c, "ret.b", &two, 1, &po), 1);
    w.n = 2;
    ck_assert(run_until(base, has_msgs, &w));
    ck_assert_int_eq(pigeon_msg_retained(s.kept[1]), 0);
    ck_assert_str_eq(pigeon_msg_reply_to(s.kept[1]), "answers.here");
    ck_assert_uint_eq(pigeon_msg_header_count(s.kept[1]), 2);
    const char *k;
    size_t kl;
    ck_assert_int_eq(pigeon_msg_header_at(s.kept[1], 1, &k, &kl, &v, &vl), PIGEON_OK);
    ck_assert(kl == 4 && memcmp(k, "kind", 4) == 0 && vl == 4 && memcmp(v, "demo", 4) == 0);
    pigeon_close(c);
    seen_free(&s);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_queue_groups_and_counts)
{
    struct broker b;
    struct seen cs = {0}, s1 = {0}, s2 = {0}, q1 = {0}, q2 = {0};
    struct event_base *base = event_base_new();
    const uint8_t nil = 0xc0;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_seen(base, b.addr, &cs);
    subscribe_wait(base, c, "work.*", NULL, &s1);
    subscribe_wait(base, c, "work.>", NULL, &s2);
    subscribe_wait(base, c, "work.*", "pool", &q1);
    subscribe_wait(base, c, "work.*", "pool", &q2);
    /* Two plain subscriptions plus one delivery for the group. */
    ck_assert_uint_eq(publish_count(base, c, "work.a", &nil, 1, NULL), 3);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(pigeon_publish(c, "work.a", &nil, 1, NULL), PIGEON_OK);
    flush_wait(base, c);
    struct want w = {&s1, 10};
    ck_assert(run_until(base, has_msgs, &w));
    ck_assert_int_eq(s2.msgs, 10);
    ck_assert_int_eq(q1.msgs + q2.msgs, 10);
    ck_assert_int_gt(q1.msgs, 0);
    ck_assert_int_gt(q2.msgs, 0);
    pigeon_close(c);
    seen_free(&s1);
    seen_free(&s2);
    seen_free(&q1);
    seen_free(&q2);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_unsubscribe)
{
    struct broker b;
    struct seen cs = {0}, s = {0}, t = {0};
    struct event_base *base = event_base_new();
    const uint8_t x = 0x07;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_seen(base, b.addr, &cs);
    uint64_t id = subscribe_wait(base, c, "u.x", NULL, &s);
    subscribe_wait(base, c, "u.*", NULL, &t);
    ck_assert_uint_eq(publish_count(base, c, "u.x", &x, 1, NULL), 2);
    /* Published before the unsub, read after it: never delivered either. */
    ck_assert_int_eq(pigeon_publish(c, "u.x", &x, 1, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_unsubscribe(c, id), PIGEON_OK);
    ck_assert_int_eq(pigeon_unsubscribe(c, id), PIGEON_EINVAL);
    flush_wait(base, c);
    ck_assert_uint_eq(publish_count(base, c, "u.x", &x, 1, NULL), 1);
    struct want w = {&t, 3};
    ck_assert(run_until(base, has_msgs, &w));
    ck_assert_int_eq(s.msgs, 1);
    /* Unsubscribing before the broker answered: no message, no on_done. */
    struct seen d = {0}, late = {0};
    struct pigeon_sub_opts so = {.on_done = done_cb, .done_arg = &d};
    ck_assert_int_eq(pigeon_subscribe(c, "u.x", &so, keep_cb, &late, &id), PIGEON_OK);
    ck_assert_int_eq(pigeon_unsubscribe(c, id), PIGEON_OK);
    /* The broker made it before this publication, and ends it after. */
    ck_assert_uint_eq(publish_count(base, c, "u.x", &x, 1, NULL), 2);
    flush_wait(base, c);
    ck_assert_uint_eq(publish_count(base, c, "u.x", &x, 1, NULL), 1);
    flush_wait(base, c);
    ck_assert_int_eq(late.msgs, 0);
    ck_assert_int_eq(d.done, 0);
    pigeon_close(c);
    seen_free(&s);
    seen_free(&t);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_unix_socket_and_obj)
{
    struct broker b;
    struct seen s = {0};
    struct event_base *base = event_base_new();
    char bind[256], dir[] = "/tmp/libpigeon-unix-XXXXXX";
    msgpack_zone z;
    msgpack_object o, back;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(bind, sizeof(bind), "unix:%s/p.sock", dir);
    broker_start(&b, bind, NULL);
    ck_assert_str_eq(b.addr, bind);
    pigeon_client *c = connect_seen(base, b.addr, &s);
    subscribe_wait(base, c, "obj", NULL, &s);
    msgpack_zone_init(&z, 1024);
    size_t off = 0;
    const char packed[] = "\x82\xa1"
                          "a"
                          "\x01\xa1"
                          "b"
                          "\x93\x01\x02\xa1"
                          "c";
    ck_assert_int_eq(msgpack_unpack(packed, sizeof(packed) - 1, &off, &z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(pigeon_publish_obj(c, "obj", &o, NULL), PIGEON_OK);
    struct want w = {&s, 1};
    ck_assert(run_until(base, has_msgs, &w));
    ck_assert_int_eq(pigeon_msg_unpack(s.kept[0], &z, &back), PIGEON_OK);
    ck_assert(msgpack_object_equal(o, back));
    msgpack_zone_destroy(&z);
    pigeon_close(c);
    seen_free(&s);
    event_base_free(base);
    broker_finish(&b);
    rmdir(dir);
}
END_TEST

/* Closing the client from its own message callback, mid-batch. */
struct closer {
    pigeon_client *c;
    int msgs;
};

static void close_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct closer *cl = arg;
    size_t len;
    const void *data = pigeon_msg_data(m, &len);
    cl->msgs++;
    ck_assert_int_eq(pigeon_publish(c, "again", data, len, NULL),
                     cl->msgs == 1 ? PIGEON_OK : PIGEON_ECLOSED);
    pigeon_close(c);
    pigeon_close(c); /* twice is harmless */
    cl->c = NULL;
}

static void pending_cb(pigeon_client *c, int err, const pigeon_msg *reply, void *arg)
{
    *(int *)arg = err;
}

START_TEST(test_close_in_callback)
{
    struct broker b;
    struct seen ps = {0}, cs = {0};
    struct event_base *base = event_base_new();
    struct closer cl = {0};
    const uint8_t x = 0x01;
    int flush_err = 0;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *pub = connect_seen(base, b.addr, &ps);
    cl.c = connect_seen(base, b.addr, &cs);
    struct seen d = {0};
    struct pigeon_sub_opts so = {.on_done = done_cb, .done_arg = &d};
    ck_assert_int_eq(pigeon_subscribe(cl.c, "many", &so, close_cb, &cl, NULL), PIGEON_OK);
    ck_assert(run_until(base, is_done, &d));
    /* A request to the subscription itself: still waiting when it closes. */
    ck_assert_int_eq(pigeon_request(cl.c, "many", &x, 1, NULL, 600000, pending_cb, &flush_err),
                     PIGEON_OK);
    for (int i = 0; i < 100; i++)
        pigeon_publish(pub, "many", &x, 1, NULL);
    ck_assert(run_until(base, flag_set, &cl.msgs));
    run_for(base, 0.2);
    ck_assert_int_eq(cl.msgs, 1);
    ck_assert_ptr_null(cl.c);
    ck_assert_int_eq(flush_err, PIGEON_ECLOSED);
    pigeon_close(pub);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_sync_api)
{
    struct broker b;
    pigeon_sync *s;
    pigeon_msg *m;
    uint64_t id, n;
    const uint8_t x = 0x2a;

    broker_start(&b, "127.0.0.1:0", NULL);
    ck_assert_int_eq(pigeon_sync_connect(b.addr, NULL, 0, &s), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_next(s, 0, &m), PIGEON_ETIMEDOUT);
    ck_assert_int_eq(pigeon_sync_subscribe(s, "sy.*", NULL, 0, &id), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_subscribe(s, "sy..x", NULL, 0, NULL), PIGEON_ERR_BAD_TOPIC);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pigeon_sync_publish(s, "sy.a", &x, 1, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_publish_confirm(s, "sy.b", &x, 1, NULL, 0, &n), PIGEON_OK);
    ck_assert_uint_eq(n, 1);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(pigeon_sync_next(s, (int)(test_deadline() * 1000), &m), PIGEON_OK);
        ck_assert_str_eq(pigeon_msg_topic(m, NULL), i < 5 ? "sy.a" : "sy.b");
        ck_assert_uint_eq(pigeon_msg_sid(m), id);
        pigeon_msg_free(m);
    }
    ck_assert_int_eq(pigeon_sync_next(s, 50, &m), PIGEON_ETIMEDOUT);
    ck_assert_int_eq(pigeon_sync_flush(s, 0), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_unsubscribe(s, id), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_publish_confirm(s, "sy.b", &x, 1, NULL, 0, &n), PIGEON_OK);
    ck_assert_uint_eq(n, 0);
    pigeon_sync_close(s);
    broker_finish(&b);
}
END_TEST

/* The blocking API's inbound FIFO is bounded: arrivals past max_queued are counted, not kept. */
START_TEST(test_sync_max_queued)
{
    struct broker b;
    struct pigeon_options o;
    pigeon_sync *s;
    pigeon_msg *m;
    uint8_t x;

    pigeon_options_init(&o);
    ck_assert_uint_eq(o.max_queued, 65536);
    o.max_queued = 3;
    broker_start(&b, "127.0.0.1:0", NULL);
    ck_assert_int_eq(pigeon_sync_connect(b.addr, &o, 0, &s), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_subscribe(s, "mq.*", NULL, 0, NULL), PIGEON_OK);
    for (x = 0; x < 10; x++)
        ck_assert_int_eq(pigeon_sync_publish(s, "mq.a", &x, 1, NULL), PIGEON_OK);
    /* The broker answers the ping after queueing all ten messages to us. */
    ck_assert_int_eq(pigeon_sync_flush(s, 0), PIGEON_OK);
    ck_assert_uint_eq(pigeon_sync_dropped(s), 7);
    for (x = 0; x < 3; x++) {
        size_t len;
        ck_assert_int_eq(pigeon_sync_next(s, 0, &m), PIGEON_OK);
        ck_assert_uint_eq(*(const uint8_t *)pigeon_msg_data(m, &len), x); /* the oldest kept */
        pigeon_msg_free(m);
    }
    ck_assert_int_eq(pigeon_sync_next(s, 50, &m), PIGEON_ETIMEDOUT);
    /* Room again once taken. */
    x = 0x2a;
    ck_assert_int_eq(pigeon_sync_publish(s, "mq.b", &x, 1, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_next(s, (int)(test_deadline() * 1000), &m), PIGEON_OK);
    ck_assert_str_eq(pigeon_msg_topic(m, NULL), "mq.b");
    pigeon_msg_free(m);
    ck_assert_uint_eq(pigeon_sync_dropped(s), 7);
    pigeon_sync_close(s);
    broker_finish(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration: pub/sub");
    TCase *tc = tcase_create("pubsub");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_connect_hello);
    tcase_add_test(tc, test_bare_port_address);
    tcase_add_test(tc, test_bytes_unchanged);
    tcase_add_test(tc, test_options_and_retained);
    tcase_add_test(tc, test_queue_groups_and_counts);
    tcase_add_test(tc, test_unsubscribe);
    tcase_add_test(tc, test_unix_socket_and_obj);
    tcase_add_test(tc, test_close_in_callback);
    tcase_add_test(tc, test_sync_api);
    tcase_add_test(tc, test_sync_max_queued);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
