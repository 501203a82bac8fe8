/*
 * unit_wire.c - the frames the client sends (checked by decoding them with
 * msgpack-c and by the frame scanner) and the broker's frames it reads
 * (built with msgpack-c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "envelope.h"
#include "frame.h"
#include "pigeon.h"
#include "wire.h"

/* Decodes the only frame in B; checks it is whole and scanner-clean. */
static msgpack_object decode(struct buf *b, msgpack_zone *z)
{
    msgpack_object o;
    size_t off = 0, used;
    struct frame_scanner s;

    frame_scanner_init(&s, 1u << 30);
    ck_assert_int_eq(frame_scan(&s, b->data + b->off, buf_size(b), &used), FRAME_DONE);
    ck_assert_uint_eq(used, buf_size(b));
    ck_assert_int_eq(msgpack_unpack((const char *)b->data + b->off, buf_size(b), &off, z, &o),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, buf_size(b));
    return o;
}

static void assert_str(const msgpack_object *o, const char *s)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(o->via.str.size, strlen(s));
    ck_assert(memcmp(o->via.str.ptr, s, strlen(s)) == 0);
}

START_TEST(test_pub_notification)
{
    struct buf b;
    msgpack_zone z;
    const uint8_t payload[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0xc3}; /* {"a":1,"b":true} */

    buf_init(&b);
    msgpack_zone_init(&z, 1024);
    size_t n = wire_pub(&b, false, 0, "a.b", 3, payload, sizeof(payload), NULL);
    ck_assert_uint_eq(n, buf_size(&b));
    msgpack_object o = decode(&b, &z);
    ck_assert_uint_eq(o.via.array.size, 3);
    ck_assert_uint_eq(o.via.array.ptr[0].via.u64, 2);
    assert_str(&o.via.array.ptr[1], "pub");
    msgpack_object p = o.via.array.ptr[2];
    ck_assert_uint_eq(p.via.array.size, 2);
    assert_str(&p.via.array.ptr[0], "a.b");
    /* The payload bytes are copied verbatim, at the end of the frame. */
    ck_assert(memcmp(b.data + n - sizeof(payload), payload, sizeof(payload)) == 0);
    msgpack_zone_destroy(&z);
    buf_free(&b);
}
END_TEST

START_TEST(test_pub_request_with_opts)
{
    struct buf b;
    msgpack_zone z;
    const uint8_t payload[] = {0xc0};
    struct pigeon_header h[2] = {{"k1", "v1"}, {"trace", "abc"}};
    struct wire_pub_opts o = {
        .reply_to = "r.to", .reply_to_len = 4, .headers = h, .n_headers = 2, .retain = true};

    buf_init(&b);
    msgpack_zone_init(&z, 1024);
    wire_pub(&b, true, 70000, "t", 1, payload, 1, &o);
    msgpack_object f = decode(&b, &z);
    ck_assert_uint_eq(f.via.array.size, 4);
    ck_assert_uint_eq(f.via.array.ptr[0].via.u64, 0);
    ck_assert_uint_eq(f.via.array.ptr[1].via.u64, 70000);
    msgpack_object p = f.via.array.ptr[3];
    ck_assert_uint_eq(p.via.array.size, 3);
    ck_assert_int_eq(p.via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
    msgpack_object m = p.via.array.ptr[2];
    ck_assert_int_eq(m.type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(m.via.map.size, 3);
    assert_str(&m.via.map.ptr[0].key, "reply_to");
    assert_str(&m.via.map.ptr[0].val, "r.to");
    assert_str(&m.via.map.ptr[1].key, "headers");
    ck_assert_uint_eq(m.via.map.ptr[1].val.via.map.size, 2);
    assert_str(&m.via.map.ptr[1].val.via.map.ptr[1].val, "abc");
    assert_str(&m.via.map.ptr[2].key, "retain");
    ck_assert(m.via.map.ptr[2].val.via.boolean);
    msgpack_zone_destroy(&z);
    buf_free(&b);
}
END_TEST

/* Strings at each width boundary of the str header. */
START_TEST(test_string_widths)
{
    size_t sizes[] = {0, 31, 32, 255, 256, 65535, 65536};
    char *s = malloc(70000);
    memset(s, 'x', 70000);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct buf b;
        msgpack_zone z;
        buf_init(&b);
        msgpack_zone_init(&z, 1024);
        ck_assert_uint_gt(wire_sub(&b, 1, s, sizes[i], s, sizes[i]), 0);
        msgpack_object f = decode(&b, &z);
        msgpack_object p = f.via.array.ptr[3];
        ck_assert_uint_eq(p.via.array.ptr[0].via.str.size, sizes[i]);
        ck_assert_uint_eq(p.via.array.ptr[1].via.map.ptr[0].val.via.str.size, sizes[i]);
        msgpack_zone_destroy(&z);
        buf_free(&b);
    }
    free(s);
}
END_TEST

START_TEST(test_small_requests)
{
    struct buf b;
    msgpack_zone z;
    struct wire_hello h = {.client = "me", .token = NULL, .user = "u", .password = "p"};

    buf_init(&b);
    msgpack_zone_init(&z, 1024);
    wire_unsub(&b, 3, 1ull << 40);
    msgpack_object f = decode(&b, &z);
    assert_str(&f.via.array.ptr[2], "unsub");
    ck_assert_uint_eq(f.via.array.ptr[3].via.array.ptr[0].via.u64, 1ull << 40);
    buf_clear(&b);
    wire_ping(&b, 0xffffffffu);
    f = decode(&b, &z);
    ck_assert_uint_eq(f.via.array.ptr[1].via.u64, 0xffffffffu);
    assert_str(&f.via.array.ptr[2], "ping");
    ck_assert_uint_eq(f.via.array.ptr[3].via.array.size, 0);
    buf_clear(&b);
    wire_hello(&b, 1, &h);
    f = decode(&b, &z);
    msgpack_object m = f.via.array.ptr[3].via.array.ptr[0];
    ck_assert_uint_eq(m.via.map.size, 3); /* token left out */
    assert_str(&m.via.map.ptr[0].key, "client");
    assert_str(&m.via.map.ptr[2].key, "password");
    msgpack_zone_destroy(&z);
    buf_free(&b);
}
END_TEST

/* --------------------------------------------------------------- decoding */

/* Packs [2, "msg", [sid, topic, payload(, opts)]] into SB. OPTS: 0 none, 1 all, 2 unknown+nil. */
static void pack_msg(msgpack_sbuffer *sb, int opts)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_str_with_body(&pk, "msg", 3);
    msgpack_pack_array(&pk, opts ? 4 : 3);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_str_with_body(&pk, "a.b", 3);
    msgpack_pack_array(&pk, 2); /* payload [1, "x"] */
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    if (opts == 1) {
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "reply_to", 8);
        msgpack_pack_str_with_body(&pk, "in.box", 6);
        msgpack_pack_str_with_body(&pk, "headers", 7);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_str_with_body(&pk, "retained", 8);
        msgpack_pack_true(&pk);
    } else if (opts == 2) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "future", 6);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_int(&pk, 5);
        msgpack_pack_str_with_body(&pk, "reply_to", 8);
        msgpack_pack_nil(&pk);
    }
}

static int parse_msg(msgpack_sbuffer *sb, struct wire_msg *m)
{
    struct envelope env;
    const char *why;
    ck_assert_int_eq(envelope_parse((const uint8_t *)sb->data, sb->size, &env, &why), 0);
    return wire_parse_msg(env.params, env.n_params, m, &why);
}

START_TEST(test_parse_msg)
{
    for (int opts = 0; opts <= 2; opts++) {
        msgpack_sbuffer sb;
        struct wire_msg m;
        msgpack_sbuffer_init(&sb);
        pack_msg(&sb, opts);
        ck_assert_int_eq(parse_msg(&sb, &m), 0);
        ck_assert_uint_eq(m.sid, 7);
        ck_assert_uint_eq(m.topic_len, 3);
        ck_assert(memcmp(m.topic, "a.b", 3) == 0);
        ck_assert_uint_eq(m.payload_len, 4);
        ck_assert(memcmp(m.payload, "\x92\x01\xa1x", 4) == 0);
        ck_assert_int_eq(m.reply_to != NULL, opts == 1);
        ck_assert_int_eq(m.retained, opts == 1);
        ck_assert_uint_eq(m.n_headers, opts == 1 ? 1 : 0);
        if (opts == 1) {
            ck_assert(memcmp(m.reply_to, "in.box", m.reply_to_len) == 0);
            struct mpread r;
            const char *k, *v;
            uint32_t kl, vl;
            mpread_init(&r, m.headers, m.headers_len);
            ck_assert_int_eq(wire_header_next(&r, &k, &kl, &v, &vl), 0);
            ck_assert(kl == 1 && *k == 'k' && vl == 1 && *v == 'v');
        }
        msgpack_sbuffer_destroy(&sb);
    }
}
END_TEST

START_TEST(test_parse_bad_msgs)
{
    struct mpread r;
    struct wire_msg m;
    const char *why;
    /* params [ "x", "a", 1 ]: sid not an integer */
    const uint8_t bad_sid[] = {0xa1, 'x', 0xa1, 'a', 0x01};
    mpread_init(&r, bad_sid, sizeof(bad_sid));
    ck_assert_int_lt(wire_parse_msg(r, 3, &m, &why), 0);
    /* [1, 2, 3]: topic not a string */
    const uint8_t bad_topic[] = {0x01, 0x02, 0x03};
    mpread_init(&r, bad_topic, sizeof(bad_topic));
    ck_assert_int_lt(wire_parse_msg(r, 3, &m, &why), 0);
    /* two params only */
    mpread_init(&r, bad_topic, 2);
    ck_assert_int_lt(wire_parse_msg(r, 2, &m, &why), 0);
    /* opts not a map */
    const uint8_t bad_opts[] = {0x01, 0xa1, 'a', 0x01, 0x05};
    mpread_init(&r, bad_opts, sizeof(bad_opts));
    ck_assert_int_lt(wire_parse_msg(r, 4, &m, &why), 0);
    /* headers with a non-string value */
    const uint8_t bad_headers[] = {0x01, 0xa1, 'a', 0x01, 0x81, 0xa7, 'h', 'e', 'a',
                                   'd',  'e',  'r', 's',  0x81, 0xa1, 'k', 0x05};
    mpread_init(&r, bad_headers, sizeof(bad_headers));
    ck_assert_int_lt(wire_parse_msg(r, 4, &m, &why), 0);
}
END_TEST

START_TEST(test_parse_error_and_hello)
{
    struct mpread r;
    const char *msg;
    uint32_t len;
    struct wire_hello_result h;

    const uint8_t nil[] = {0xc0};
    mpread_init(&r, nil, 1);
    ck_assert_int_eq(wire_parse_error(r, &msg, &len), 0);
    const uint8_t err[] = {0x92, 0x04, 0xa3, 'b', 'a', 'd'};
    mpread_init(&r, err, sizeof(err));
    ck_assert_int_eq(wire_parse_error(r, &msg, &len), PIGEON_ERR_BAD_TOPIC);
    ck_assert(len == 3 && memcmp(msg, "bad", 3) == 0);
    const uint8_t not_err[] = {0xa1, 'x'};
    mpread_init(&r, not_err, sizeof(not_err));
    ck_assert_int_lt(wire_parse_error(r, &msg, &len), 0);

    /* {"server":"pigeond","max_payload":1048576,7:1,"client_id":9,"user":"al"} */
    const uint8_t hello[] = {0x85, 0xa6, 's', 'e', 'r',  'v',  'e',  'r',  0xa7, 'p',  'i',  'g',
                             'e',  'o',  'n', 'd', 0xab, 'm',  'a',  'x',  '_',  'p',  'a',  'y',
                             'l',  'o',  'a', 'd', 0xce, 0x00, 0x10, 0x00, 0x00, 0x07, 0x01, 0xa9,
                             'c',  'l',  'i', 'e', 'n',  't',  '_',  'i',  'd',  0x09, 0xa4,
                             'u',  's',  'e', 'r', 0xa2, 'a',  'l'};
    mpread_init(&r, hello, sizeof(hello));
    ck_assert_int_eq(wire_parse_hello(r, &h), 0);
    ck_assert_uint_eq(h.max_payload, 1048576);
    ck_assert_uint_eq(h.client_id, 9);
    ck_assert(h.user_len == 2 && memcmp(h.user, "al", 2) == 0);
    /* The same without the user: none is reported. */
    uint8_t anon[sizeof(hello) - 8];
    memcpy(anon, hello, sizeof(anon));
    anon[0] = 0x84;
    mpread_init(&r, anon, sizeof(anon));
    ck_assert_int_eq(wire_parse_hello(r, &h), 0);
    ck_assert(h.user == NULL && h.client_id == 9);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("encode");
    tcase_add_test(tc, test_pub_notification);
    tcase_add_test(tc, test_pub_request_with_opts);
    tcase_add_test(tc, test_string_widths);
    tcase_add_test(tc, test_small_requests);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_add_test(tc, test_parse_msg);
    tcase_add_test(tc, test_parse_bad_msgs);
    tcase_add_test(tc, test_parse_error_and_hello);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
