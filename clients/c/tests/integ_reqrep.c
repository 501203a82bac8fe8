/*
 * integ_reqrep.c - request/reply against a real pigeond: many requests in
 * flight on one inbox, timeouts, no responders, replies to messages with
 * no reply_to, requests still pending at close, and the blocking API
 * (with a responder on another thread).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#define N_REQUESTS 50

/* A responder that echoes each request's payload, or stays silent. */
struct responder {
    int requests;
    bool silent;
    int reply_err;
};

static void respond_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct responder *r = arg;
    size_t len;
    const void *d = pigeon_msg_data(m, &len);
    r->requests++;
    if (!r->silent)
        r->reply_err = pigeon_reply(c, m, d, len);
}

struct answers {
    int n;
    int errs[N_REQUESTS];
    uint8_t got[N_REQUESTS]; /* the echoed byte */
    int done[N_REQUESTS];
};

struct slot {
    struct answers *a;
    int i;
};

static void reply_cb(pigeon_client *c, int err, const pigeon_msg *reply, void *arg)
{
    struct slot *s = arg;
    s->a->done[s->i]++;
    s->a->errs[s->i] = err;
    if (err == PIGEON_OK) {
        size_t len;
        const uint8_t *d = pigeon_msg_data(reply, &len);
        ck_assert_uint_eq(len, 1);
        s->a->got[s->i] = d[0];
    }
    s->a->n++;
}

struct count {
    struct answers *a;
    int n;
};

static bool answered(void *arg)
{
    struct count *c = arg;
    return c->a->n >= c->n;
}

static void state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    if (state == PIGEON_STATE_CONNECTED)
        (*(int *)arg)++;
}

static pigeon_client *connect_wait(struct event_base *base, const char *addr, int *connected)
{
    struct pigeon_options o;
    pigeon_client *c;
    test_options(&o);
    o.on_state = state_cb;
    o.state_arg = connected;
    ck_assert_int_eq(pigeon_connect(base, addr, &o, &c), PIGEON_OK);
    ck_assert(run_until(base, flag_set, connected));
    return c;
}

static void sub_done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    ck_assert_int_eq(err, PIGEON_OK);
    *(int *)arg = 1;
}

static void serve(struct event_base *base, pigeon_client *c, const char *topic, struct responder *r)
{
    int done = 0;
    struct pigeon_sub_opts so = {.on_done = sub_done_cb, .done_arg = &done};
    ck_assert_int_eq(pigeon_subscribe(c, topic, &so, respond_cb, r, NULL), PIGEON_OK);
    ck_assert(run_until(base, flag_set, &done));
}

START_TEST(test_many_in_flight)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct responder r = {0};
    struct answers a = {0};
    struct slot slots[N_REQUESTS];
    int c1 = 0, c2 = 0;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *srv = connect_wait(base, b.addr, &c1);
    pigeon_client *cli = connect_wait(base, b.addr, &c2);
    serve(base, srv, "svc.echo", &r);
    for (int i = 0; i < N_REQUESTS; i++) {
        uint8_t p = (uint8_t)i; /* positive fixint i */
        slots[i] = (struct slot){&a, i};
        ck_assert_int_eq(pigeon_request(cli, "svc.echo", &p, 1, NULL, (int)(test_deadline() * 1000),
                                        reply_cb, &slots[i]),
                         PIGEON_OK);
    }
    struct count want = {&a, N_REQUESTS};
    ck_assert(run_until(base, answered, &want));
    for (int i = 0; i < N_REQUESTS; i++) {
        ck_assert_int_eq(a.done[i], 1);
        ck_assert_int_eq(a.errs[i], PIGEON_OK);
        ck_assert_uint_eq(a.got[i], (uint8_t)i);
    }
    ck_assert_int_eq(r.requests, N_REQUESTS);
    ck_assert_int_eq(r.reply_err, PIGEON_OK);
    pigeon_close(cli);
    pigeon_close(srv);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_timeout_and_no_responders)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct responder r = {.silent = true};
    struct answers a = {0};
    struct slot s0 = {&a, 0}, s1 = {&a, 1};
    const uint8_t p = 0x01;
    int c1 = 0;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_wait(base, b.addr, &c1);
    serve(base, c, "svc.silent", &r);
    ck_assert_int_eq(pigeon_request(c, "svc.silent", &p, 1, NULL, 300, reply_cb, &s0), PIGEON_OK);
    ck_assert_int_eq(pigeon_request(c, "svc.nobody", &p, 1, NULL, 60000, reply_cb, &s1), PIGEON_OK);
    struct count want = {&a, 2};
    ck_assert(run_until(base, answered, &want));
    ck_assert_int_eq(a.errs[0], PIGEON_ETIMEDOUT);
    ck_assert_int_eq(a.errs[1], PIGEON_ENORESPONDERS);
    ck_assert_int_eq(r.requests, 1);
    /* Bad arguments are refused at once, and no callback comes. */
    ck_assert_int_eq(pigeon_request(c, "svc.x", &p, 1, NULL, 0, reply_cb, &s0), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_request(c, "svc..x", &p, 1, NULL, 100, reply_cb, &s0),
                     PIGEON_ERR_BAD_TOPIC);
    struct pigeon_pub_opts po = {.reply_to = "mine"};
    ck_assert_int_eq(pigeon_request(c, "svc.x", &p, 1, &po, 100, reply_cb, &s0), PIGEON_EINVAL);
    pigeon_close(c);
    ck_assert_int_eq(a.n, 2);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

static void noreply_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    const uint8_t p = 0xc0;
    *(int *)arg = pigeon_reply(c, m, &p, 1) == PIGEON_ENOREPLY ? 1 : -1;
}

START_TEST(test_reply_needs_reply_to)
{
    struct broker b;
    struct event_base *base = event_base_new();
    int c1 = 0, result = 0;
    const uint8_t p = 0x01;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_wait(base, b.addr, &c1);
    ck_assert_int_eq(pigeon_subscribe(c, "plain", NULL, noreply_cb, &result, NULL), PIGEON_OK);
    /* Publish until the subscription is in place. */
    while (result == 0) {
        ck_assert_int_eq(pigeon_publish(c, "plain", &p, 1, NULL), PIGEON_OK);
        run_for(base, 0.05);
    }
    ck_assert_int_eq(result, 1);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_close_with_pending)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct responder r = {.silent = true};
    struct answers a = {0};
    struct slot s0 = {&a, 0};
    const uint8_t p = 0x01;
    int c1 = 0;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = connect_wait(base, b.addr, &c1);
    serve(base, c, "svc.silent", &r);
    ck_assert_int_eq(pigeon_request(c, "svc.silent", &p, 1, NULL, 60000, reply_cb, &s0), PIGEON_OK);
    pigeon_close(c);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_eq(a.errs[0], PIGEON_ECLOSED);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------- blocking API */

struct thread_responder {
    const char *addr;
    atomic_int ready;
    atomic_int stop;
};

static void *responder_main(void *arg)
{
    struct thread_responder *t = arg;
    struct event_base *base = event_base_new();
    struct responder r = {0};
    int c1 = 0;
    pigeon_client *c = connect_wait(base, t->addr, &c1);
    serve(base, c, "svc.sync", &r);
    atomic_store(&t->ready, 1);
    while (!atomic_load(&t->stop))
        run_for(base, 0.05);
    pigeon_close(c);
    event_base_free(base);
    return NULL;
}

START_TEST(test_sync_request)
{
    struct broker b;
    struct thread_responder t = {0};
    pthread_t th;
    pigeon_sync *s;
    pigeon_msg *reply;

    broker_start(&b, "127.0.0.1:0", NULL);
    t.addr = b.addr;
    ck_assert_int_eq(pthread_create(&th, NULL, responder_main, &t), 0);
    while (!atomic_load(&t.ready))
        usleep(10000);
    ck_assert_int_eq(pigeon_sync_connect(b.addr, NULL, 0, &s), PIGEON_OK);
    for (uint8_t i = 0; i < 10; i++) {
        ck_assert_int_eq(
            pigeon_sync_request(s, "svc.sync", &i, 1, (int)(test_deadline() * 1000), &reply),
            PIGEON_OK);
        size_t len;
        const uint8_t *d = pigeon_msg_data(reply, &len);
        ck_assert(len == 1 && d[0] == i);
        pigeon_msg_free(reply);
    }
    uint8_t x = 0;
    ck_assert_int_eq(pigeon_sync_request(s, "svc.none", &x, 1, 1000, &reply), PIGEON_ENORESPONDERS);
    pigeon_sync_close(s);
    atomic_store(&t.stop, 1);
    pthread_join(th, NULL);
    broker_finish(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration: request/reply");
    TCase *tc = tcase_create("reqrep");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_many_in_flight);
    tcase_add_test(tc, test_timeout_and_no_responders);
    tcase_add_test(tc, test_reply_needs_reply_to);
    tcase_add_test(tc, test_close_with_pending);
    tcase_add_test(tc, test_sync_request);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
