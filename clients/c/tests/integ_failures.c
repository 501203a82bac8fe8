/*
 * integ_failures.c - libpigeon when things go wrong: no broker at connect
 * (blocking, async without and with reconnection), the broker killed and
 * restarted on the same port mid-stream (reconnect, subscriptions made
 * again, buffered publications delivered; those over a smaller max_payload
 * of the new broker dropped and reported), bad topics caught locally and
 * by the broker, payloads too large (at once, and when published before
 * the first hello told the limit), malformed payloads, the reconnect buffer's
 * bound, and keepalive pings against the broker's idle_timeout.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* "127.0.0.1:PORT" in BUF (64 bytes). */
static const char *tcp_addr(char *buf, int port)
{
    snprintf(buf, 64, "127.0.0.1:%d", port);
    return buf;
}

/* publish_confirm and wait for the answer; returns it in *O. */
static void confirm(struct event_base *base, pigeon_client *c, const char *topic, const void *p,
                    size_t len, struct obs *o)
{
    o->done = 0;
    ck_assert_int_eq(pigeon_publish_confirm(c, topic, p, len, NULL, obs_done_cb, o), PIGEON_OK);
    ck_assert(run_until(base, obs_done, o));
}

/* ------------------------------------------------------- server down */

START_TEST(test_down_at_connect_sync)
{
    pigeon_sync *s = NULL;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    ck_assert_int_eq(pigeon_sync_connect(addr, NULL, 0, &s), PIGEON_ECONNECT);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(pigeon_sync_connect("unix:/nonexistent/pigeon.sock", NULL, 0, &s),
                     PIGEON_ECONNECT);
    ck_assert_int_eq(pigeon_sync_connect("bad address:x", NULL, 0, &s), PIGEON_EADDRESS);
}
END_TEST

/* errbuf: why connecting failed, for callers that get no client to ask. */
START_TEST(test_connect_errbuf)
{
    pigeon_sync *s = NULL;
    pigeon_client *c = NULL;
    struct pigeon_options o;
    char addr[64], why[128], want[128];
    struct event_base *base = event_base_new();

    pigeon_options_init(&o);
    o.errbuf = why;
    o.errbuf_len = sizeof(why);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    ck_assert_int_eq(pigeon_sync_connect(addr, &o, 0, &s), PIGEON_ECONNECT);
    snprintf(want, sizeof(want), "connect to %s: Connection refused", addr);
    ck_assert_str_eq(why, want);
    ck_assert_int_eq(pigeon_sync_connect("unix:/nonexistent/p.sock", &o, 0, &s), PIGEON_ECONNECT);
    ck_assert_str_eq(why, "connect to unix:/nonexistent/p.sock: No such file or directory");
    /* The bare number that used to be read as an IPv4 address. */
    snprintf(addr, sizeof(addr), "%d", free_port());
    ck_assert_int_eq(pigeon_sync_connect(addr, &o, 0, &s), PIGEON_ECONNECT);
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%s: Connection refused", addr);
    ck_assert_str_eq(why, want);
    ck_assert_int_eq(pigeon_sync_connect("[::1]:0", &o, 0, &s), PIGEON_EADDRESS);
    ck_assert_str_eq(why, "bad address '[::1]:0': the port must be a number from 1 to 65535");
    ck_assert_int_eq(pigeon_connect(base, "host:1:2", &o, &c), PIGEON_EADDRESS);
    ck_assert_str_eq(why, "bad address 'host:1:2': an IPv6 address needs brackets: [addr]:port");
    ck_assert_ptr_null(c);
    /* Cut to errbuf_len, and terminated. */
    o.errbuf_len = 8;
    ck_assert_int_eq(pigeon_connect(base, "", &o, &c), PIGEON_EADDRESS);
    ck_assert_str_eq(why, "bad add");
    event_base_free(base);
}
END_TEST

START_TEST(test_down_at_connect_async)
{
    char addr[64];
    struct event_base *base = event_base_new();
    struct obs o = {0}, d = {0};
    struct pigeon_options opts;
    const uint8_t x = 0x01;

    test_options(&opts);
    opts.reconnect = 0;
    pigeon_client *c = obs_connect(base, tcp_addr(addr, free_port()), &o, &opts);
    /* Accepted while connecting, failed when the attempt fails. */
    ck_assert_int_eq(pigeon_publish_confirm(c, "a", &x, 1, NULL, obs_done_cb, &d), PIGEON_OK);
    ck_assert(run_until(base, obs_closed, &o));
    ck_assert_int_eq(o.last_err, PIGEON_ECONNECT);
    ck_assert_int_eq(o.connected, 0);
    ck_assert_int_eq(d.done, 1);
    ck_assert_int_eq(d.done_err, PIGEON_ECONNECT);
    ck_assert_int_eq(pigeon_state(c), PIGEON_STATE_CLOSED);
    ck_assert_int_eq(pigeon_publish(c, "a", &x, 1, NULL), PIGEON_ENOTCONN);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "refused"));
    pigeon_close(c);
    event_base_free(base);
}
END_TEST

/* Retries until a broker appears on the port; what was queued then goes out. */
START_TEST(test_down_then_up)
{
    char addr[64];
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0}, m = {0};
    int port = free_port();
    char bind[64];
    const uint8_t x = 0x01;

    pigeon_client *c = obs_connect(base, tcp_addr(addr, port), &o, NULL);
    ck_assert_int_eq(pigeon_subscribe(c, "early", NULL, obs_msg_cb, &m, NULL), PIGEON_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pigeon_publish(c, "early", &x, 1, NULL), PIGEON_OK);
    struct at_least two_fails = {&o.disconnected, 2};
    ck_assert(run_until(base, reached, &two_fails));
    ck_assert_int_eq(o.last_err, PIGEON_ECONNECT);
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", port);
    broker_start(&b, bind, NULL);
    ck_assert(run_until(base, obs_connected, &o));
    struct at_least three = {&m.msgs, 3};
    ck_assert(run_until(base, reached, &three));
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------ broker restart */

START_TEST(test_restart_mid_stream)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs so = {0}, po = {0}, sm = {0}, own = {0}, cf = {0};
    char bind[64];
    const uint8_t x = 0x01;

    snprintf(bind, sizeof(bind), "127.0.0.1:%d", free_port());
    broker_start(&b, bind, NULL);
    pigeon_client *sub = obs_connect(base, b.addr, &so, NULL);
    pigeon_client *pub = obs_connect(base, b.addr, &po, NULL);
    ck_assert(run_until(base, obs_connected, &so));
    ck_assert(run_until(base, obs_connected, &po));
    struct pigeon_sub_opts sopts = {.on_done = obs_done_cb, .done_arg = &cf};
    ck_assert_int_eq(pigeon_subscribe(sub, "rs.>", &sopts, obs_msg_cb, &sm, NULL), PIGEON_OK);
    ck_assert_int_eq(pigeon_subscribe(sub, "own", NULL, obs_msg_cb, &own, NULL), PIGEON_OK);
    ck_assert(run_until(base, obs_done, &cf));
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(pigeon_publish(pub, "rs.a", &x, 1, NULL), PIGEON_OK);
    struct at_least ten = {&sm.msgs, 10};
    ck_assert(run_until(base, reached, &ten));

    /* Kill it hard, and come back on the same port. */
    ck_assert_int_eq(broker_stop(&b, SIGKILL), 128 + SIGKILL);
    struct at_least down = {&so.disconnected, 1};
    ck_assert(run_until(base, reached, &down));
    ck_assert_int_eq(so.last_err, PIGEON_ECONNLOST);
    /* Published while down: buffered, then sent after the subscriptions. */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pigeon_publish(sub, "own", &x, 1, NULL), PIGEON_OK);
    ck_assert_uint_gt(pigeon_outbound_bytes(sub), 0);
    broker_restart(&b);
    struct at_least up = {&so.connected, 2};
    ck_assert(run_until(base, reached, &up));
    struct at_least five = {&own.msgs, 5};
    ck_assert(run_until(base, reached, &five));
    /* The other client is back too, and the subscription works again. */
    struct at_least pub_up = {&po.connected, 2};
    ck_assert(run_until(base, reached, &pub_up));
    struct obs count = {0};
    confirm(base, pub, "rs.b", &x, 1, &count);
    ck_assert_int_eq(count.done_err, PIGEON_OK);
    ck_assert_uint_eq(count.done_result, 1);
    struct at_least eleven = {&sm.msgs, 11};
    ck_assert(run_until(base, reached, &eleven));
    ck_assert_int_eq(cf.done, 1); /* on_done is told once, not again after reconnecting */
    pigeon_close(sub);
    pigeon_close(pub);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* pigeon_sync_close while down sends what was buffered once the broker is back. */
START_TEST(test_sync_close_waits_for_reconnect)
{
    struct broker b;
    struct pigeon_options o;
    pigeon_sync *s, *watch;
    pigeon_msg *m;
    char bind[64];
    const uint8_t x = 0x07;
    int wait_ms = (int)(test_deadline() * 1000);

    snprintf(bind, sizeof(bind), "127.0.0.1:%d", free_port());
    broker_start(&b, bind, NULL);
    test_options(&o);
    o.reconnect = 1;
    ck_assert_int_eq(pigeon_sync_connect(b.addr, &o, 0, &s), PIGEON_OK);
    ck_assert_int_eq(broker_stop(&b, SIGKILL), 128 + SIGKILL);
    for (int i = 0;
         i < wait_ms / 20 && pigeon_state(pigeon_sync_client(s)) == PIGEON_STATE_CONNECTED; i++)
        pigeon_sync_next(s, 20, &m); /* runs the loop: notices the loss */
    ck_assert_int_ne(pigeon_state(pigeon_sync_client(s)), PIGEON_STATE_CONNECTED);
    ck_assert_int_eq(pigeon_sync_publish(s, "cl.x", &x, 1, NULL), PIGEON_OK); /* buffered */
    ck_assert_uint_gt(pigeon_outbound_bytes(pigeon_sync_client(s)), 0);
    broker_restart(&b);
    ck_assert_int_eq(pigeon_sync_connect(b.addr, NULL, 0, &watch), PIGEON_OK);
    ck_assert_int_eq(pigeon_sync_subscribe(watch, "cl.x", NULL, 0, NULL), PIGEON_OK);
    pigeon_sync_close(s); /* reconnects, sends the buffered pub, pings */
    ck_assert_int_eq(pigeon_sync_next(watch, wait_ms, &m), PIGEON_OK);
    ck_assert_str_eq(pigeon_msg_topic(m, NULL), "cl.x");
    pigeon_msg_free(m);
    pigeon_sync_close(watch);
    broker_finish(&b);
}
END_TEST

/*
 * The broker comes back with a smaller max_payload than the frames buffered
 * while it was down were checked against: those over it are dropped and
 * reported (on_error for a publication, the too-large code for a request's
 * callback), the rest is sent, and the connection stays up.
 */
struct shrink {
    struct obs *o;
    char topics[4][16]; /* of the messages received, in order */
    int msgs;
    int req_done, req_err;
    char error_text[256];
};

static void shrink_error_cb(pigeon_client *c, int err, const char *message, void *arg)
{
    struct shrink *k = arg;
    const uint8_t x = 0x02;

    obs_error_cb(c, err, message, k->o);
    snprintf(k->error_text, sizeof(k->error_text), "%s", message);
    /* Not CONNECTED yet: buffered behind what is left, and sent with it. */
    ck_assert_int_eq(pigeon_publish(c, "nl.late", &x, 1, NULL), PIGEON_OK);
}

static void shrink_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct shrink *k = arg;
    if (k->msgs < 4)
        snprintf(k->topics[k->msgs], sizeof(k->topics[0]), "%s", pigeon_msg_topic(m, NULL));
    k->msgs++;
}

static void shrink_reply_cb(pigeon_client *c, int err, const pigeon_msg *reply, void *arg)
{
    struct shrink *k = arg;
    k->req_done++;
    k->req_err = err;
}

START_TEST(test_buffer_over_new_limit)
{
    struct broker b, b2;
    struct event_base *base = event_base_new();
    struct obs o = {0}, cf = {0};
    struct shrink k = {.o = &o};
    struct pigeon_options opts;
    char bind[64];
    static uint8_t big[2000];
    const uint8_t x = 0x01;

    big[0] = 0xc5; /* bin16 of 1997: over 1k, well under 64k */
    big[1] = (sizeof(big) - 3) >> 8;
    big[2] = (sizeof(big) - 3) & 0xff;
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", free_port());
    broker_start(&b, bind, "max_payload = 64k");
    test_options(&opts);
    opts.on_state = obs_state_cb;
    opts.state_arg = &o;
    opts.on_error = shrink_error_cb;
    opts.error_arg = &k;
    pigeon_client *c;
    ck_assert_int_eq(pigeon_connect(base, b.addr, &opts, &c), PIGEON_OK);
    ck_assert(run_until(base, obs_connected, &o));
    ck_assert_uint_eq(pigeon_max_payload(c), 64 * 1024);
    ck_assert_int_eq(pigeon_subscribe(c, "nl.>", NULL, shrink_msg_cb, &k, NULL), PIGEON_OK);

    broker_finish(&b);
    struct at_least down = {&o.disconnected, 1};
    ck_assert(run_until(base, reached, &down));
    /* Buffered: each fits the limit the client knows (64k), not the next. */
    ck_assert_int_eq(pigeon_publish(c, "nl.big", big, sizeof(big), NULL), PIGEON_OK);
    ck_assert_int_eq(
        pigeon_request(c, "nl.req", big, sizeof(big), NULL, 30000, shrink_reply_cb, &k), PIGEON_OK);
    ck_assert_int_eq(pigeon_publish_confirm(c, "nl.big", big, sizeof(big), NULL, obs_done_cb, &cf),
                     PIGEON_OK);
    ck_assert_int_eq(pigeon_publish(c, "nl.small", &x, 1, NULL), PIGEON_OK);

    broker_start(&b2, bind, "max_payload = 1k");
    struct at_least up = {&o.connected, 2};
    ck_assert(run_until(base, reached, &up));
    ck_assert_uint_eq(pigeon_max_payload(c), 1024);
    struct at_least two = {&k.msgs, 2};
    ck_assert(run_until(base, reached, &two));
    ck_assert_str_eq(k.topics[0], "nl.small");
    ck_assert_str_eq(k.topics[1], "nl.late");
    ck_assert_int_eq(o.errors, 1);
    ck_assert_int_eq(o.last_error, PIGEON_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(k.error_text, "'nl.big'"));
    ck_assert_int_eq(k.req_done, 1);
    ck_assert_int_eq(k.req_err, PIGEON_ERR_TOO_LARGE);
    ck_assert_int_eq(cf.done, 1);
    ck_assert_int_eq(cf.done_err, PIGEON_ERR_TOO_LARGE);

    /* And it stays up: no second loss, nothing else reported. */
    run_for(base, 1.0);
    ck_assert_int_eq(pigeon_state(c), PIGEON_STATE_CONNECTED);
    ck_assert_int_eq(o.disconnected, 1);
    ck_assert_int_eq(o.connected, 2);
    ck_assert_int_eq(o.errors, 1);
    ck_assert_int_eq(k.msgs, 2);
    struct obs r = {0};
    confirm(base, c, "nl.small", &x, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_OK);
    ck_assert_uint_eq(r.done_result, 1);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b2);
}
END_TEST

/* ---------------------------------------------------------- bad topics */

START_TEST(test_bad_topic_local)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0}, m = {0};
    struct pigeon_sub_opts bad_queue = {.queue = "a b"};
    struct pigeon_pub_opts bad_reply = {.reply_to = "x.>"};
    const uint8_t x = 0x01;

    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = obs_connect(base, b.addr, &o, NULL);
    ck_assert(run_until(base, obs_connected, &o));
    ck_assert_int_eq(pigeon_publish(c, "a..b", &x, 1, NULL), PIGEON_ERR_BAD_TOPIC);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "empty token"));
    ck_assert_int_eq(pigeon_publish(c, "a.*", &x, 1, NULL), PIGEON_ERR_BAD_TOPIC);
    ck_assert_int_eq(pigeon_publish(c, "", &x, 1, NULL), PIGEON_ERR_BAD_TOPIC);
    ck_assert_int_eq(pigeon_publish(c, "ok", &x, 1, &bad_reply), PIGEON_ERR_BAD_TOPIC);
    ck_assert_int_eq(pigeon_subscribe(c, "a.>.b", NULL, obs_msg_cb, &m, NULL),
                     PIGEON_ERR_BAD_TOPIC);
    ck_assert_int_eq(pigeon_subscribe(c, "ok", &bad_queue, obs_msg_cb, &m, NULL),
                     PIGEON_ERR_BAD_PARAMS);
    ck_assert_int_eq(pigeon_publish(c, NULL, &x, 1, NULL), PIGEON_EINVAL);
    struct pigeon_header latin1 = {"k", "caf\xe9"};
    struct pigeon_pub_opts bad_header = {.headers = &latin1, .n_headers = 1};
    ck_assert_int_eq(pigeon_publish(c, "ok", &x, 1, &bad_header), PIGEON_ERR_BAD_PARAMS);
    /* Nothing reached the broker: the connection is fine. */
    struct obs count = {0};
    confirm(base, c, "ok", &x, 1, &count);
    ck_assert_int_eq(count.done_err, PIGEON_OK);
    ck_assert_int_eq(o.errors, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_bad_topic_server)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0}, m = {0}, sd = {0};
    struct pigeon_options opts;
    const uint8_t x = 0x01;
    uint64_t id;

    broker_start(&b, "127.0.0.1:0", NULL);
    test_options(&opts);
    opts.verify_topics = 0; /* let the broker judge */
    pigeon_client *c = obs_connect(base, b.addr, &o, &opts);
    ck_assert(run_until(base, obs_connected, &o));
    struct obs r = {0};
    confirm(base, c, "a..b", &x, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_ERR_BAD_TOPIC);
    ck_assert_ptr_nonnull(strstr(pigeon_errmsg(c), "broker"));
    confirm(base, c, "$SYS.mine", &x, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_ERR_FORBIDDEN);
    /* Fire and forget: the refusal comes as an error notification. */
    ck_assert_int_eq(pigeon_publish(c, "x..y", &x, 1, NULL), PIGEON_OK);
    struct at_least one = {&o.errors, 1};
    ck_assert(run_until(base, reached, &one));
    ck_assert_int_eq(o.last_error, PIGEON_ERR_BAD_TOPIC);
    /* A refused subscription is removed and reported to on_done. */
    struct pigeon_sub_opts so = {.on_done = obs_done_cb, .done_arg = &sd};
    ck_assert_int_eq(pigeon_subscribe(c, "a.>.b", &so, obs_msg_cb, &m, &id), PIGEON_OK);
    ck_assert(run_until(base, obs_done, &sd));
    ck_assert_int_eq(sd.done_err, PIGEON_ERR_BAD_TOPIC);
    ck_assert_uint_eq(sd.done_result, id);
    ck_assert_int_eq(pigeon_unsubscribe(c, id), PIGEON_EINVAL);
    /* ... or, without on_done, to on_error. */
    ck_assert_int_eq(pigeon_subscribe(c, "b.>.c", NULL, obs_msg_cb, &m, &id), PIGEON_OK);
    struct at_least two = {&o.errors, 2};
    ck_assert(run_until(base, reached, &two));
    /* None of it was fatal. */
    confirm(base, c, "fine", &x, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_OK);
    ck_assert_int_eq(o.disconnected, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* ------------------------------------------------------------- payloads */

START_TEST(test_too_large_local)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0};
    static uint8_t big[2000], ok[900];

    big[0] = 0xc5; /* bin16 of 1997 */
    big[1] = (sizeof(big) - 3) >> 8;
    big[2] = (sizeof(big) - 3) & 0xff;
    ok[0] = 0xc5;
    ok[1] = (sizeof(ok) - 3) >> 8;
    ok[2] = (sizeof(ok) - 3) & 0xff;
    broker_start(&b, "127.0.0.1:0", "max_payload = 1k");
    pigeon_client *c = obs_connect(base, b.addr, &o, NULL);
    ck_assert(run_until(base, obs_connected, &o));
    ck_assert_uint_eq(pigeon_max_payload(c), 1024);
    ck_assert_int_eq(pigeon_publish(c, "big", big, sizeof(big), NULL), PIGEON_ERR_TOO_LARGE);
    struct obs r = {0};
    confirm(base, c, "small", ok, sizeof(ok), &r);
    ck_assert_int_eq(r.done_err, PIGEON_OK);
    ck_assert_int_eq(o.disconnected, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

/* Before the first hello the limit is unknown: the publication waits in the
 * buffer until hello tells it, and is then dropped and reported (code 5)
 * rather than sent to a broker that would close the connection on it. */
START_TEST(test_too_large_before_hello)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0};
    static uint8_t big[2000];
    const uint8_t x = 0x01;

    big[0] = 0xc5;
    big[1] = (sizeof(big) - 3) >> 8;
    big[2] = (sizeof(big) - 3) & 0xff;
    broker_start(&b, "127.0.0.1:0", "max_payload = 1k");
    pigeon_client *c = obs_connect(base, b.addr, &o, NULL);
    ck_assert_int_eq(pigeon_publish(c, "big", big, sizeof(big), NULL), PIGEON_OK);
    ck_assert(run_until(base, obs_connected, &o));
    ck_assert_int_eq(o.errors, 1);
    ck_assert_int_eq(o.last_error, PIGEON_ERR_TOO_LARGE);
    ck_assert_int_eq(pigeon_publish(c, "big", big, sizeof(big), NULL), PIGEON_ERR_TOO_LARGE);
    struct obs r = {0};
    confirm(base, c, "small", &x, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_OK);
    ck_assert_int_eq(o.disconnected, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_malformed_payloads)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs o = {0};
    const uint8_t reserved[] = {0xc1};
    const uint8_t truncated[] = {0x92, 0x01};
    const uint8_t two[] = {0x01, 0x02};
    const uint8_t short_str[] = {0xa5, 'a'};
    uint8_t deep[40];

    memset(deep, 0x91, sizeof(deep));
    deep[sizeof(deep) - 1] = 0x01; /* 39 nested arrays around 1 */
    broker_start(&b, "127.0.0.1:0", NULL);
    pigeon_client *c = obs_connect(base, b.addr, &o, NULL);
    ck_assert(run_until(base, obs_connected, &o));
    ck_assert_int_eq(pigeon_publish(c, "t", reserved, sizeof(reserved), NULL), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_publish(c, "t", truncated, sizeof(truncated), NULL), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_publish(c, "t", two, sizeof(two), NULL), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_publish(c, "t", short_str, sizeof(short_str), NULL), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_publish(c, "t", deep, sizeof(deep), NULL), PIGEON_EINVAL);
    ck_assert_int_eq(pigeon_publish(c, "t", deep, 0, NULL), PIGEON_EINVAL);
    /* 28 levels inside the frame's two: accepted. */
    ck_assert_int_eq(pigeon_publish(c, "t", deep + 11, sizeof(deep) - 11, NULL), PIGEON_OK);
    struct obs r = {0};
    confirm(base, c, "t", two, 1, &r);
    ck_assert_int_eq(r.done_err, PIGEON_OK);
    ck_assert_int_eq(o.disconnected, 0);
    pigeon_close(c);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

START_TEST(test_pending_bound)
{
    char addr[64];
    struct event_base *base = event_base_new();
    struct obs o = {0};
    struct pigeon_options opts;
    uint8_t p[100] = {0xc4, 98};
    int accepted = 0, rc;

    test_options(&opts);
    opts.max_pending = 1000;
    pigeon_client *c = obs_connect(base, tcp_addr(addr, free_port()), &o, &opts);
    while ((rc = pigeon_publish(c, "q", p, sizeof(p), NULL)) == PIGEON_OK)
        accepted++;
    ck_assert_int_eq(rc, PIGEON_EFULL);
    ck_assert_int_ge(accepted, 8);
    ck_assert_int_le(accepted, 10);
    ck_assert_uint_le(pigeon_outbound_bytes(c), 1000);
    opts.max_pending = 0;
    pigeon_client *d = obs_connect(base, tcp_addr(addr, free_port()), &o, &opts);
    ck_assert_int_eq(pigeon_publish(d, "q", p, sizeof(p), NULL), PIGEON_ENOTCONN);
    pigeon_close(c);
    pigeon_close(d);
    event_base_free(base);
}
END_TEST

/* ------------------------------------------------------------ keepalive */

START_TEST(test_keepalive)
{
    struct broker b;
    struct event_base *base = event_base_new();
    struct obs live = {0}, mute = {0};
    struct pigeon_options opts;

    broker_start(&b, "127.0.0.1:0", "idle_timeout = 2s");
    test_options(&opts);
    opts.ping_interval_ms = 200;
    pigeon_client *a = obs_connect(base, b.addr, &live, &opts);
    test_options(&opts);
    opts.ping_interval_ms = 0;
    opts.reconnect = 0;
    pigeon_client *m = obs_connect(base, b.addr, &mute, &opts);
    ck_assert(run_until(base, obs_connected, &live));
    ck_assert(run_until(base, obs_connected, &mute));
    /* The silent one is closed by the broker with code 10 ... */
    ck_assert(run_until(base, obs_closed, &mute));
    ck_assert_int_eq(mute.last_err, PIGEON_ERR_LIMIT);
    ck_assert_int_eq(mute.last_error, PIGEON_ERR_LIMIT);
    /* ... while the pinging one, idle as long, stays. */
    run_for(base, 1.0);
    ck_assert_int_eq(live.disconnected, 0);
    ck_assert_int_eq(pigeon_state(a), PIGEON_STATE_CONNECTED);
    pigeon_close(a);
    pigeon_close(m);
    event_base_free(base);
    broker_finish(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration: failures");
    TCase *tc = tcase_create("down");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_down_at_connect_sync);
    tcase_add_test(tc, test_connect_errbuf);
    tcase_add_test(tc, test_down_at_connect_async);
    tcase_add_test(tc, test_down_then_up);
    tcase_add_test(tc, test_restart_mid_stream);
    tcase_add_test(tc, test_sync_close_waits_for_reconnect);
    tcase_add_test(tc, test_buffer_over_new_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("refusals");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bad_topic_local);
    tcase_add_test(tc, test_bad_topic_server);
    tcase_add_test(tc, test_too_large_local);
    tcase_add_test(tc, test_too_large_before_hello);
    tcase_add_test(tc, test_malformed_payloads);
    tcase_add_test(tc, test_pending_bound);
    suite_add_tcase(s, tc);
    tc = tcase_create("keepalive");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_keepalive);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
