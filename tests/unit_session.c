/*
 * unit_session.c - sessions, dispatch and routing without the daemon.
 *
 * The seams make this possible: a loop, a router and connections are set up
 * by hand (no listener socket, no signals, no config file), each connection
 * over one end of a socketpair and the plain socket transport, and the test
 * plays the client on the other end, driving the loop one non-blocking
 * iteration at a time.  Covered: subscribe, publish and delivery with the
 * exact msg frame; unsubscribe and unknown sids; queue groups; a retained
 * replay walked over many steps, after its response and in order; the
 * per-connection and broker-wide subscription limits; the slow-consumer
 * policy (drop); a connection cut with its queue, told how many messages
 * it lost; and the frames a wake-up handles before it yields.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "budget.h"
#include "conn.h"
#include "listener.h"
#include "router.h"
#include "server.h"
#include "xalloc.h"

/* ------------------------------------------------------------- fixture ---- */

static struct server srv;
static struct listener *fake_listener;

static void setup_with(const char *text)
{
    struct config *conf;
    struct config_error err;
    const char *why;

    if (text != NULL)
        ck_assert_int_eq(config_load_string(text, "test.conf", &conf, &err), 0);
    else
        conf = config_new_defaults();
    memset(&srv, 0, sizeof(srv));
    srv.conf = conf;
    TAILQ_INIT(&srv.listeners);
    log_init(&srv.log, stderr, LOG_LEVEL_ERROR);
    ck_assert_int_eq(loop_init(&srv.loop, &srv, &srv.log, conf, &why), 0);
    srv.router = router_new(&srv);
    ck_assert_int_eq(budget_init(&srv), 0);
    fake_listener = xcalloc(1, sizeof(*fake_listener));
    fake_listener->refs = 1;
    fake_listener->conf.name = xstrdup("test");
    snprintf(fake_listener->address, sizeof(fake_listener->address), "socketpair");
}

static void setup(void)
{
    setup_with(NULL);
}

static void teardown(void)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&srv.loop.conns)) != NULL)
        conn_destroy(c);
    budget_fini(&srv);
    router_free(srv.router);
    loop_fini(&srv.loop);
    config_unref(srv.conf);
    listener_unref(fake_listener);
}

/* One client: the test's end of a socketpair, and the broker's connection. */
struct peer {
    int fd;
    struct conn *c;
    msgpack_unpacker up;
    uint32_t next_id;
};

static void peer_open(struct peer *p)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p->fd = sv[0];
    p->c = conn_new(&srv.loop, fake_listener, sv[1], NULL, 0, NULL);
    ck_assert_ptr_nonnull(p->c);
    msgpack_unpacker_init(&p->up, 64 * 1024);
    p->next_id = 1;
}

static void peer_close(struct peer *p)
{
    close(p->fd);
    msgpack_unpacker_destroy(&p->up);
}

/* Runs the loop until nothing is left to do right now. */
static void spin(void)
{
    for (int i = 0; i < 50; i++)
        event_base_loop(srv.loop.base, EVLOOP_NONBLOCK);
}

static void send_obj(struct peer *p, void (*pack)(msgpack_packer *pk, void *arg), void *arg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk, arg);
    /* The socket is non-blocking: when it is full, let the broker read. */
    for (size_t off = 0; off < sb.size;) {
        ssize_t n = write(p->fd, sb.data + off, sb.size - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            event_base_loop(srv.loop.base, EVLOOP_NONBLOCK);
        else
            ck_abort_msg("write: %s", strerror(errno));
    }
    msgpack_sbuffer_destroy(&sb);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

struct req {
    uint32_t id;
    const char *method;
    const char *s; /* a string param, or NULL */
    int64_t n;     /* or an integer param, when s is NULL and n >= 0 */
    const char *queue;
};

static void pack_req(msgpack_packer *pk, void *arg)
{
    const struct req *r = arg;
    int n = r->s != NULL || r->n >= 0;

    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint32(pk, r->id);
    pack_str(pk, r->method);
    msgpack_pack_array(pk, (size_t)n + (r->queue != NULL));
    if (r->s != NULL)
        pack_str(pk, r->s);
    else if (r->n >= 0)
        msgpack_pack_int64(pk, r->n);
    if (r->queue != NULL) {
        msgpack_pack_map(pk, 1);
        pack_str(pk, "queue");
        pack_str(pk, r->queue);
    }
}

static uint32_t request(struct peer *p, const char *method, const char *s, int64_t n)
{
    struct req r = {p->next_id++, method, s, n, NULL};
    send_obj(p, pack_req, &r);
    return r.id;
}

struct pub {
    const char *topic;
    int64_t payload;
    bool retain;
    size_t pad; /* > 0: the payload is a binary of this many bytes instead */
};

static void pack_pub(msgpack_packer *pk, void *arg)
{
    const struct pub *m = arg;

    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 2);
    pack_str(pk, "pub");
    msgpack_pack_array(pk, m->retain ? 3 : 2);
    pack_str(pk, m->topic);
    if (m->pad > 0) {
        static const char zeros[4096];
        msgpack_pack_bin(pk, m->pad);
        msgpack_pack_bin_body(pk, zeros, m->pad);
    } else {
        msgpack_pack_int64(pk, m->payload);
    }
    if (m->retain) {
        msgpack_pack_map(pk, 1);
        pack_str(pk, "retain");
        msgpack_pack_true(pk);
    }
}

static void publish(struct peer *p, const char *topic, int64_t payload, bool retain)
{
    struct pub m = {topic, payload, retain, 0};
    send_obj(p, pack_pub, &m);
}

/*
 * The next frame P received, running the loop until one came (up to a few
 * seconds).  Returns false on EOF.  The object lives in RESULT's zone.
 */
static bool next_frame(struct peer *p, msgpack_unpacked *result)
{
    for (int round = 0; round < 2000; round++) {
        if (msgpack_unpacker_next(&p->up, result) == MSGPACK_UNPACK_SUCCESS)
            return true;
        spin();
        msgpack_unpacker_reserve_buffer(&p->up, 64 * 1024);
        ssize_t n = read(p->fd, msgpack_unpacker_buffer(&p->up), 64 * 1024);
        if (n == 0)
            return false;
        if (n > 0)
            msgpack_unpacker_buffer_consumed(&p->up, (size_t)n);
        else if (errno == EAGAIN)
            poll(NULL, 0, 1);
    }
    ck_abort_msg("no frame came");
    return false;
}

static const msgpack_object *arr(const msgpack_object *o, uint32_t i)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_gt(o->via.array.size, i);
    return &o->via.array.ptr[i];
}

static bool str_is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Reads the response to ID: its result (an uint) or, when ERR is not NULL, its error code. */
static uint64_t response(struct peer *p, uint32_t id, int64_t *err)
{
    msgpack_unpacked u;

    msgpack_unpacked_init(&u);
    ck_assert(next_frame(p, &u));
    ck_assert_uint_eq(arr(&u.data, 0)->via.u64, 1);
    ck_assert_uint_eq(arr(&u.data, 1)->via.u64, id);
    const msgpack_object *e = arr(&u.data, 2), *r = arr(&u.data, 3);
    uint64_t v = 0;
    if (err != NULL) {
        ck_assert_int_eq(e->type, MSGPACK_OBJECT_ARRAY);
        *err = (int64_t)arr(e, 0)->via.u64;
    } else {
        ck_assert_int_eq(e->type, MSGPACK_OBJECT_NIL);
        v = r->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? r->via.u64 : 1;
    }
    msgpack_unpacked_destroy(&u);
    return v;
}

/* Reads one msg: checks its sid and topic, returns its (integer) payload. */
static int64_t message(struct peer *p, uint64_t sid, const char *topic, bool *retained)
{
    msgpack_unpacked u;

    msgpack_unpacked_init(&u);
    ck_assert(next_frame(p, &u));
    ck_assert_uint_eq(arr(&u.data, 0)->via.u64, 2);
    ck_assert(str_is(arr(&u.data, 1), "msg"));
    const msgpack_object *params = arr(&u.data, 2);
    ck_assert_uint_eq(arr(params, 0)->via.u64, sid);
    if (topic != NULL)
        ck_assert(str_is(arr(params, 1), topic));
    int64_t v = arr(params, 2)->via.i64;
    if (retained != NULL)
        *retained = params->via.array.size == 4;
    msgpack_unpacked_destroy(&u);
    return v;
}

/* --------------------------------------------------------------- tests ---- */

START_TEST(test_sub_pub_deliver)
{
    struct peer a, b;

    peer_open(&a);
    peer_open(&b);
    uint64_t sid = response(&a, request(&a, "sub", "orders.>", -1), NULL);
    ck_assert_uint_eq(sid, 1);
    publish(&b, "orders.eu.new", 17, false);
    ck_assert_int_eq(message(&a, sid, "orders.eu.new", NULL), 17);
    ck_assert_uint_eq(response(&b, request(&b, "ping", NULL, -1), NULL), 1);
    ck_assert_uint_eq(b.c->stats.msgs_in, 1);
    ck_assert_uint_eq(a.c->stats.msgs_out, 1);
    ck_assert_uint_eq(router_sub_count(srv.router), 1);
    ck_assert_uint_eq(response(&a, request(&a, "unsub", NULL, (int64_t)sid), NULL), 1);
    ck_assert_uint_eq(router_sub_count(srv.router), 0);
    int64_t err;
    response(&a, request(&a, "unsub", NULL, 99), &err);
    ck_assert_int_eq(err, PROTO_ERR_BAD_PARAMS);
    peer_close(&a);
    peer_close(&b);
}
END_TEST

START_TEST(test_queue_group_one_each)
{
    struct peer w[2], pub;
    int got[2] = {0, 0};

    peer_open(&pub);
    for (int i = 0; i < 2; i++) {
        peer_open(&w[i]);
        struct req r = {w[i].next_id++, "sub", "jobs.*", -1, "workers"};
        send_obj(&w[i], pack_req, &r);
        response(&w[i], r.id, NULL);
    }
    for (int i = 0; i < 10; i++)
        publish(&pub, "jobs.x", i, false);
    response(&pub, request(&pub, "ping", NULL, -1), NULL);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 5; i++)
            got[k] += message(&w[k], 1, "jobs.x", NULL) >= 0;
    }
    ck_assert_int_eq(got[0] + got[1], 10);
    for (int i = 0; i < 2; i++)
        peer_close(&w[i]);
    peer_close(&pub);
}
END_TEST

START_TEST(test_replay_in_steps_and_order)
{
    enum { N = 5000 };
    struct peer pub, s;
    char topic[32];
    bool retained;

    peer_open(&pub);
    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "r.%d", i);
        publish(&pub, topic, i, true);
    }
    response(&pub, request(&pub, "ping", NULL, -1), NULL);
    peer_open(&s);
    request(&s, "sub", "r.*", -1);
    request(&s, "sub", "r.1", -1);
    /* Each replay follows its response; the first (many steps of 1,024 store
     * nodes) comes whole, in store order, before the second begins. */
    msgpack_unpacked u;
    int next1 = 0, got2 = 0, responses = 0;
    msgpack_unpacked_init(&u);
    while (next1 < N || got2 == 0) {
        ck_assert(next_frame(&s, &u));
        if (arr(&u.data, 0)->via.u64 == 1) {
            ck_assert_uint_eq(arr(&u.data, 3)->via.u64, ++responses);
            continue;
        }
        const msgpack_object *params = arr(&u.data, 2);
        retained = params->via.array.size == 4;
        ck_assert(retained);
        if (arr(params, 0)->via.u64 == 1) {
            ck_assert_int_ge(responses, 1);
            ck_assert_int_eq(arr(params, 2)->via.i64, next1++);
        } else {
            ck_assert_int_eq(responses, 2);
            ck_assert_int_eq(next1, N);
            ck_assert(str_is(arr(params, 1), "r.1"));
            got2++;
        }
    }
    msgpack_unpacked_destroy(&u);
    ck_assert_uint_gt(srv.loop.stats.yields, 0);
    peer_close(&pub);
    peer_close(&s);
}
END_TEST

START_TEST(test_subscription_limits)
{
    struct peer a, b;
    int64_t err;

    peer_open(&a);
    peer_open(&b);
    for (int i = 0; i < 3; i++)
        response(&a, request(&a, "sub", "x", -1), NULL);
    response(&a, request(&a, "sub", "x", -1), &err);
    ck_assert_int_eq(err, PROTO_ERR_LIMIT);
    response(&b, request(&b, "sub", "y", -1), NULL);
    response(&b, request(&b, "sub", "y", -1), &err); /* 4 in the broker already */
    ck_assert_int_eq(err, PROTO_ERR_LIMIT);
    peer_close(&a);
    peer_close(&b);
}
END_TEST

START_TEST(test_slow_consumer_drop)
{
    struct peer slow, pub;
    struct pub m = {"flood", 0, false, 2000};

    peer_open(&slow);
    peer_open(&pub);
    response(&slow, request(&slow, "sub", "flood", -1), NULL);
    /* The socketpair and 64 KiB of output fill; the rest is dropped and counted. */
    for (int i = 0; i < 1000; i++)
        send_obj(&pub, pack_pub, &m);
    response(&pub, request(&pub, "ping", NULL, -1), NULL);
    ck_assert_uint_gt(slow.c->stats.dropped, 0);
    ck_assert(slow.c->sess.dropping);
    ck_assert_uint_eq(srv.loop.stats.slow_dropped, slow.c->stats.dropped);
    ck_assert_int_eq(slow.c->state, CONN_OPEN);
    peer_close(&slow);
    peer_close(&pub);
}
END_TEST

START_TEST(test_cut_queue_counts_loss)
{
    struct peer slow, pub;
    msgpack_unpacked u;

    peer_open(&slow);
    peer_open(&pub);
    response(&slow, request(&slow, "sub", "t", -1), NULL);
    for (int i = 0; i < 20000; i++)
        publish(&pub, "t", i, false);
    response(&pub, request(&pub, "ping", NULL, -1), NULL);
    uint64_t queued = slow.c->ends.msgs;
    ck_assert_uint_gt(queued, 1000);
    conn_close_discarding(slow.c, "test", PROTO_ERR_SLOW_CONSUMER, "cut for the test");
    /* It reads what was written, then the error with the count of the rest. */
    uint64_t got = 0;
    msgpack_unpacked_init(&u);
    for (;;) {
        ck_assert(next_frame(&slow, &u));
        if (str_is(arr(&u.data, 1), "error"))
            break;
        got++;
    }
    const msgpack_object *e = arr(&u.data, 2);
    ck_assert_uint_eq(arr(e, 0)->via.u64, PROTO_ERR_SLOW_CONSUMER);
    unsigned long long lost = 0;
    ck_assert_int_eq(sscanf(arr(e, 1)->via.str.ptr, "cut for the test: %llu queued", &lost), 1);
    ck_assert_uint_eq(got + lost, 20000);
    msgpack_unpacked_destroy(&u);
    peer_close(&slow);
    peer_close(&pub);
}
END_TEST

static void pack_pings(msgpack_packer *pk, void *arg)
{
    for (uint32_t id = 1; id <= *(uint32_t *)arg; id++) {
        struct req r = {id, "ping", NULL, -1, NULL};
        pack_req(pk, &r);
    }
}

START_TEST(test_wakeup_budget_yields)
{
    struct peer p;
    uint32_t last = 5000;

    peer_open(&p);
    /* 5,000 pings in one write: more than one wake-up's share. */
    send_obj(&p, pack_pings, &last);
    for (uint32_t id = 1; id <= last; id++)
        response(&p, id, NULL);
    ck_assert_uint_gt(srv.loop.stats.yields, 0);
    peer_close(&p);
}
END_TEST

/* Reads what P's socket holds now, without running the loop; returns the msg frames in it. */
static uint64_t drain_msgs(struct peer *p)
{
    msgpack_unpacked u;
    uint64_t n = 0;
    ssize_t got;

    msgpack_unpacked_init(&u);
    do {
        msgpack_unpacker_reserve_buffer(&p->up, 64 * 1024);
        got = read(p->fd, msgpack_unpacker_buffer(&p->up), 64 * 1024);
        if (got > 0)
            msgpack_unpacker_buffer_consumed(&p->up, (size_t)got);
        while (msgpack_unpacker_next(&p->up, &u) == MSGPACK_UNPACK_SUCCESS)
            n += arr(&u.data, 0)->via.u64 == 2 && str_is(arr(&u.data, 1), "msg");
    } while (got > 0);
    msgpack_unpacked_destroy(&u);
    return n;
}

/*
 * A subscriber whose socket was full has its write event armed.  In one loop
 * iteration a publisher's frames are staged into its output (space reserved
 * at the end) and then its socket turns writable: the write must not lose
 * the staged messages (it once wrote the output with the reservation
 * outstanding, and the commit after it failed silently).
 */
START_TEST(test_write_between_stage_and_flush)
{
    struct peer sub, pub;
    struct pub big = {"t", 0, false, 4000};
    uint64_t sent = 0, got = 0;

    peer_open(&sub);
    peer_open(&pub);
    response(&sub, request(&sub, "sub", "t", -1), NULL);
    for (int round = 0; round < 20; round++) {
        /* Fill the subscriber's socket until the broker must wait to write. */
        while (!sub.c->writing) {
            send_obj(&pub, pack_pub, &big);
            sent++;
            spin();
        }
        /* The publisher's frame first, then room on the subscriber's socket:
         * one poll reports both, in that order. */
        for (int i = 0; i < 8; i++) {
            publish(&pub, "t", round * 100 + i, false);
            sent++;
        }
        got += drain_msgs(&sub);
        event_base_loop(srv.loop.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        spin();
        got += drain_msgs(&sub);
    }
    for (int i = 0; i < 100 && got < sent; i++) {
        spin();
        got += drain_msgs(&sub);
    }
    ck_assert_uint_eq(sub.c->stats.msgs_out, sent);
    ck_assert_uint_eq(got, sent);
    peer_close(&sub);
    peer_close(&pub);
}
END_TEST

/* ----------------------------------------------------------------- main ---- */

static void setup_limits(void)
{
    setup_with("[broker]\nmax_subscriptions = 4\nmax_subscriptions_per_connection = 3\n");
}

static void setup_drop(void)
{
    setup_with("[broker]\nmax_outbound = 64k\nmax_payload = 8k\nslow_consumer = drop\n");
}

static Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc;

    tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sub_pub_deliver);
    tcase_add_test(tc, test_queue_group_one_each);
    tcase_add_test(tc, test_replay_in_steps_and_order);
    tcase_add_test(tc, test_cut_queue_counts_loss);
    tcase_add_test(tc, test_wakeup_budget_yields);
    tcase_add_test(tc, test_write_between_stage_and_flush);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup_limits, teardown);
    tcase_add_test(tc, test_subscription_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("slow");
    tcase_add_checked_fixture(tc, setup_drop, teardown);
    tcase_add_test(tc, test_slow_consumer_drop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(session_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
