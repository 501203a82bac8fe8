/*
 * unit_msg.c - pigeon_msg accessors, copies and unpacking, and
 * pigeon_strerror for every code.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "msg.h"
#include "pigeon.h"

/* params of a msg: [5, "t.x", {"n": 1}, {"reply_to": "r.y", "headers": {"a": "1", "b": "22"}}] */
static const uint8_t params[] = {
    0x05, 0xa3, 't', '.',  'x',  0x81, 0xa1, 'n', 0x01, 0x82, 0xa8, 'r', 'e', 'p',
    'l',  'y',  '_', 't',  'o',  0xa3, 'r',  '.', 'y',  0xa7, 'h',  'e', 'a', 'd',
    'e',  'r',  's', 0x82, 0xa1, 'a',  0xa1, '1', 0xa1, 'b',  0xa2, '2', '2',
};

static void make_msg(struct pigeon_msg *m)
{
    struct mpread r;
    struct wire_msg w;
    const char *why;
    mpread_init(&r, params, sizeof(params));
    ck_assert_int_eq(wire_parse_msg(r, 4, &w, &why), 0);
    msg_from_wire(m, &w, 42);
}

static void check_msg(const pigeon_msg *m)
{
    size_t len;
    ck_assert_str_eq(pigeon_msg_topic(m, &len), "t.x");
    ck_assert_uint_eq(len, 3);
    const uint8_t *d = pigeon_msg_data(m, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(d, "\x81\xa1n\x01", 4) == 0);
    ck_assert_str_eq(pigeon_msg_reply_to(m), "r.y");
    ck_assert_int_eq(pigeon_msg_retained(m), 0);
    ck_assert_uint_eq(pigeon_msg_sid(m), 42);
    ck_assert_uint_eq(pigeon_msg_header_count(m), 2);
    const char *k, *v;
    size_t kl, vl;
    ck_assert_int_eq(pigeon_msg_header_at(m, 1, &k, &kl, &v, &vl), PIGEON_OK);
    ck_assert(kl == 1 && k[0] == 'b' && vl == 2 && memcmp(v, "22", 2) == 0);
    ck_assert_int_eq(pigeon_msg_header_at(m, 2, &k, &kl, &v, &vl), PIGEON_EINVAL);
    v = pigeon_msg_header(m, "a", &vl);
    ck_assert(v != NULL && vl == 1 && v[0] == '1');
    ck_assert_ptr_null(pigeon_msg_header(m, "c", &vl));
}

START_TEST(test_accessors)
{
    struct pigeon_msg m;
    make_msg(&m);
    check_msg(&m);
    pigeon_msg_free(&m); /* a borrowed message: nothing to free */
}
END_TEST

START_TEST(test_copy_outlives_frame)
{
    struct pigeon_msg m;
    pigeon_msg *copy;
    make_msg(&m);
    ck_assert_int_eq(pigeon_msg_copy(&m, &copy), PIGEON_OK);
    memset(&m, 0xee, sizeof(m)); /* the original goes away */
    check_msg(copy);
    pigeon_msg_free(copy);
    pigeon_msg_free(NULL);
}
END_TEST

START_TEST(test_unpack)
{
    struct pigeon_msg m;
    msgpack_zone z;
    msgpack_object o;
    make_msg(&m);
    msgpack_zone_init(&z, 256);
    ck_assert_int_eq(pigeon_msg_unpack(&m, &z, &o), PIGEON_OK);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(o.via.map.ptr[0].val.via.u64, 1);
    msgpack_zone_destroy(&z);
}
END_TEST

START_TEST(test_no_opts)
{
    const uint8_t p[] = {0x01, 0xa1, 'z', 0xc4, 0x02, 0x00, 0xff};
    struct mpread r;
    struct wire_msg w;
    struct pigeon_msg m;
    const char *why;
    mpread_init(&r, p, sizeof(p));
    ck_assert_int_eq(wire_parse_msg(r, 3, &w, &why), 0);
    msg_from_wire(&m, &w, 1);
    ck_assert_ptr_null(pigeon_msg_reply_to(&m));
    ck_assert_uint_eq(pigeon_msg_header_count(&m), 0);
    ck_assert_ptr_null(pigeon_msg_header(&m, "a", NULL));
    size_t len;
    pigeon_msg_data(&m, &len);
    ck_assert_uint_eq(len, 4);
}
END_TEST

START_TEST(test_strerror)
{
    for (int e = -13; e <= 11; e++) {
        const char *s = pigeon_strerror(e);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 3);
        for (int f = e + 1; f <= 10; f++)
            ck_assert_msg(strcmp(s, pigeon_strerror(f)) != 0 || e > 10 || f > 10,
                          "codes %d and %d share '%s'", e, f, s);
    }
    ck_assert(strstr(pigeon_strerror(PIGEON_ERR_BAD_TOPIC), "bad_topic") != NULL);
    ck_assert(strstr(pigeon_strerror(-99), "unknown") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("msg");
    tcase_add_test(tc, test_accessors);
    tcase_add_test(tc, test_copy_outlives_frame);
    tcase_add_test(tc, test_unpack);
    tcase_add_test(tc, test_no_opts);
    tcase_add_test(tc, test_strerror);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
