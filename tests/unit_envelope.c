/*
 * unit_envelope.c - the mpread cursor and the MessagePack-RPC envelope:
 * every reader on every width, truncation and type mismatch, and each
 * shape a frame may or may not take.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "envelope.h"
#include "mpread.h"
#include "proto.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void setup(void)
{
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void teardown(void)
{
    msgpack_sbuffer_destroy(&sb);
}

static struct mpread reader(void)
{
    struct mpread r;
    mpread_init(&r, sb.data, sb.size);
    return r;
}

/* ---------------------------------------------------------------- mpread */

START_TEST(test_uint_widths)
{
    const uint64_t values[] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffffu, 0x100000000ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        msgpack_pack_uint64(&pk, values[i]);
    /* Signed encodings of non-negative values are accepted too. */
    msgpack_pack_int8(&pk, 5);
    const uint8_t int16_300[] = {0xd1, 0x01, 0x2c};
    msgpack_sbuffer_write(&sb, (const char *)int16_300, sizeof(int16_300));
    struct mpread r = reader();
    uint64_t v;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        ck_assert(mpread_uint(&r, &v));
        ck_assert_uint_eq(v, values[i]);
    }
    ck_assert(mpread_uint(&r, &v));
    ck_assert_uint_eq(v, 5);
    ck_assert(mpread_uint(&r, &v));
    ck_assert_uint_eq(v, 300);
    ck_assert_uint_eq(mpread_left(&r), 0);
    ck_assert(!mpread_uint(&r, &v));
}
END_TEST

START_TEST(test_uint_rejects)
{
    msgpack_pack_int64(&pk, -1);
    struct mpread r = reader();
    uint64_t v;
    ck_assert(!mpread_uint(&r, &v));
    ck_assert_uint_eq(mpread_left(&r), 1); /* not moved */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_int64(&pk, -100000);
    r = reader();
    ck_assert(!mpread_uint(&r, &v));
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_str_with_body(&pk, "1", 1);
    r = reader();
    ck_assert(!mpread_uint(&r, &v));
    /* Truncated uint32. */
    const uint8_t cut[] = {0xce, 0x00, 0x01};
    mpread_init(&r, cut, sizeof(cut));
    ck_assert(!mpread_uint(&r, &v));
}
END_TEST

START_TEST(test_str_widths)
{
    static char big[70000];
    memset(big, 's', sizeof(big));
    const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        msgpack_pack_str_with_body(&pk, big, lens[i]);
    struct mpread r = reader();
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        const char *s;
        uint32_t n;
        ck_assert(mpread_str(&r, &s, &n));
        ck_assert_uint_eq(n, lens[i]);
        ck_assert(n == 0 || s[0] == 's');
    }
    ck_assert_uint_eq(mpread_left(&r), 0);
}
END_TEST

START_TEST(test_str_rejects)
{
    const char *s;
    uint32_t n;
    struct mpread r;
    const uint8_t truncated[] = {0xa5, 'a', 'b'};
    mpread_init(&r, truncated, sizeof(truncated));
    ck_assert(!mpread_str(&r, &s, &n));
    msgpack_pack_bin_with_body(&pk, "ab", 2);
    r = reader();
    ck_assert(!mpread_str(&r, &s, &n));
}
END_TEST

START_TEST(test_containers)
{
    uint32_t n;
    msgpack_pack_array(&pk, 3);
    msgpack_pack_array(&pk, 70000);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_map(&pk, 300);
    struct mpread r = reader();
    ck_assert(mpread_array(&r, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert(mpread_array(&r, &n));
    ck_assert_uint_eq(n, 70000);
    ck_assert(!mpread_array(&r, &n)); /* a map is not an array */
    ck_assert(mpread_map(&r, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert(mpread_map(&r, &n));
    ck_assert_uint_eq(n, 300);
}
END_TEST

START_TEST(test_skip_everything)
{
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_double(&pk, 1.0);
    msgpack_pack_float(&pk, 2.0f);
    msgpack_pack_ext_with_body(&pk, "12345678", 8, 3);
    msgpack_pack_bin_with_body(&pk, "x", 1);
    msgpack_pack_int64(&pk, -5);
    msgpack_pack_ext_with_body(&pk, "123", 3, 1);
    msgpack_pack_nil(&pk);
    size_t first = sb.size - 1;
    struct mpread r = reader();
    ck_assert(mpread_skip(&r));
    ck_assert_uint_eq((size_t)(r.p - (const uint8_t *)sb.data), first);
    ck_assert(mpread_is_nil(&r));
    ck_assert(mpread_nil(&r));
    ck_assert(!mpread_skip(&r));
}
END_TEST

START_TEST(test_skip_truncated)
{
    const uint8_t lying[] = {0x93, 0x01, 0x02};     /* promises 3, has 2 */
    const uint8_t lying_bin[] = {0xc4, 0x05, 0x00}; /* promises 5 bytes */
    const uint8_t reserved[] = {0xc1};
    struct mpread r;
    mpread_init(&r, lying, sizeof(lying));
    ck_assert(!mpread_skip(&r));
    ck_assert_uint_eq(mpread_left(&r), sizeof(lying));
    mpread_init(&r, lying_bin, sizeof(lying_bin));
    ck_assert(!mpread_skip(&r));
    mpread_init(&r, reserved, sizeof(reserved));
    ck_assert(!mpread_skip(&r));
}
END_TEST

/* -------------------------------------------------------------- envelope */

static void pack_str(const char *s)
{
    msgpack_pack_str_with_body(&pk, s, strlen(s));
}

START_TEST(test_request)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 4000000000u);
    pack_str("sub");
    msgpack_pack_array(&pk, 1);
    pack_str("a.>");
    struct envelope env;
    const char *why;
    ck_assert_int_eq(envelope_parse((uint8_t *)sb.data, sb.size, &env, &why), 0);
    ck_assert_int_eq(env.kind, PROTO_REQUEST);
    ck_assert_uint_eq(env.msgid, 4000000000u);
    ck_assert_uint_eq(env.method_len, 3);
    ck_assert(memcmp(env.method, "sub", 3) == 0);
    ck_assert_uint_eq(env.n_params, 1);
    const char *p;
    uint32_t n;
    ck_assert(mpread_str(&env.params, &p, &n));
    ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(test_notification)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    pack_str("pub");
    msgpack_pack_array(&pk, 2);
    pack_str("t");
    msgpack_pack_bin_with_body(&pk, "xyz", 3);
    struct envelope env;
    const char *why;
    ck_assert_int_eq(envelope_parse((uint8_t *)sb.data, sb.size, &env, &why), 0);
    ck_assert_int_eq(env.kind, PROTO_NOTIFICATION);
    ck_assert_uint_eq(env.n_params, 2);
}
END_TEST

START_TEST(test_response)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint32(&pk, 7);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 3);
    pack_str("bad params");
    msgpack_pack_nil(&pk);
    struct envelope env;
    const char *why;
    ck_assert_int_eq(envelope_parse((uint8_t *)sb.data, sb.size, &env, &why), 0);
    ck_assert_int_eq(env.kind, PROTO_RESPONSE);
    ck_assert_uint_eq(env.msgid, 7);
    uint32_t n;
    ck_assert(mpread_array(&env.error, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert(mpread_nil(&env.result));
}
END_TEST

/* Each case packs one bad frame; every one must be refused with a reason. */
static void bad_kind(void)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 3);
    pack_str("pub");
    msgpack_pack_array(&pk, 0);
}
static void neg_kind(void)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int8(&pk, -1);
    pack_str("pub");
    msgpack_pack_array(&pk, 0);
}
static void str_kind(void)
{
    msgpack_pack_array(&pk, 3);
    pack_str("2");
    pack_str("pub");
    msgpack_pack_array(&pk, 0);
}
static void req_3(void)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 1);
    pack_str("ping");
}
static void notif_4(void)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 2);
    pack_str("pub");
    msgpack_pack_array(&pk, 0);
    msgpack_pack_nil(&pk);
}
static void big_msgid(void)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint64(&pk, 0x100000000ull);
    pack_str("ping");
    msgpack_pack_array(&pk, 0);
}
static void neg_msgid(void)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_int8(&pk, -3);
    pack_str("ping");
    msgpack_pack_array(&pk, 0);
}
static void bin_method(void)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_bin_with_body(&pk, "ping", 4);
    msgpack_pack_array(&pk, 0);
}
static void map_params(void)
{
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 1);
    pack_str("ping");
    msgpack_pack_map(&pk, 0);
}
static void nil_params(void)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    pack_str("pub");
    msgpack_pack_nil(&pk);
}
static void empty(void)
{
    msgpack_pack_array(&pk, 0);
}
static void resp_3(void)
{
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_nil(&pk);
}

static void (*const bad_frames[])(void) = {bad_kind,   neg_kind,   str_kind,  req_3,
                                           notif_4,    big_msgid,  neg_msgid, bin_method,
                                           map_params, nil_params, empty,     resp_3};

START_TEST(test_bad_shapes)
{
    bad_frames[_i]();
    struct envelope env;
    const char *why = NULL;
    ck_assert_int_eq(envelope_parse((uint8_t *)sb.data, sb.size, &env, &why), -1);
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_gt(strlen(why), 5);
}
END_TEST

START_TEST(test_error_names)
{
    ck_assert_str_eq(proto_error_name(PROTO_ERR_BAD_FRAME), "bad_frame");
    ck_assert_str_eq(proto_error_name(PROTO_ERR_LIMIT), "limit");
    ck_assert_str_eq(proto_error_name(PROTO_ERR_SLOW_CONSUMER), "slow_consumer");
    ck_assert_str_eq(proto_error_name(99), "unknown");
    ck_assert_str_eq(proto_error_name(-1), "unknown");
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *cur = tcase_create("mpread");
    tcase_add_checked_fixture(cur, setup, teardown);
    tcase_add_test(cur, test_uint_widths);
    tcase_add_test(cur, test_uint_rejects);
    tcase_add_test(cur, test_str_widths);
    tcase_add_test(cur, test_str_rejects);
    tcase_add_test(cur, test_containers);
    tcase_add_test(cur, test_skip_everything);
    tcase_add_test(cur, test_skip_truncated);
    suite_add_tcase(s, cur);
    TCase *env = tcase_create("shapes");
    tcase_add_checked_fixture(env, setup, teardown);
    tcase_add_test(env, test_request);
    tcase_add_test(env, test_notification);
    tcase_add_test(env, test_response);
    tcase_add_loop_test(env, test_bad_shapes, 0, sizeof(bad_frames) / sizeof(bad_frames[0]));
    tcase_add_test(env, test_error_names);
    suite_add_tcase(s, env);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
