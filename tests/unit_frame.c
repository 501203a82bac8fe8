/*
 * unit_frame.c - the bounded frame scanner: complete, split, back-to-back,
 * oversized, too deep and malformed input, and a randomized comparison with
 * msgpack-c on frames it packs itself.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "frame.h"

#define BIG (1u << 20)

/* Scans DATA in one slice; returns the status and sets *USED. */
static enum frame_status scan_all(uint32_t max, const void *data, size_t len, size_t *used,
                                  struct frame_scanner *s)
{
    frame_scanner_init(s, max);
    return frame_scan(s, data, len, used);
}

/* Scans DATA in slices of STEP bytes; returns the final status. */
static enum frame_status scan_steps(uint32_t max, const uint8_t *data, size_t len, size_t step,
                                    struct frame_scanner *s, size_t *consumed)
{
    enum frame_status st = FRAME_MORE;
    size_t off = 0;

    frame_scanner_init(s, max);
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used;
        st = frame_scan(s, data + off, n, &used);
        off += used;
        if (st != FRAME_MORE)
            break;
        ck_assert_uint_eq(used, n);
        /* The broker resumes at s->len: it must count every byte fed. */
        ck_assert_uint_eq(s->len, off);
    }
    *consumed = off;
    return st;
}

/* A pub frame with a payload of every common type. */
static msgpack_sbuffer *make_pub_frame(void)
{
    msgpack_sbuffer *sb = msgpack_sbuffer_new();
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, "pub", 3);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "a.b.c", 5);
    msgpack_pack_map(&pk, 8);
    msgpack_pack_str_with_body(&pk, "i", 1);
    msgpack_pack_int64(&pk, -123456789012LL);
    msgpack_pack_str_with_body(&pk, "u", 1);
    msgpack_pack_uint64(&pk, 0xfedcba9876543210ULL);
    msgpack_pack_str_with_body(&pk, "f", 1);
    msgpack_pack_double(&pk, 3.5);
    msgpack_pack_str_with_body(&pk, "g", 1);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02", 3);
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_ext_with_body(&pk, "abcdefgh", 8, 7);
    msgpack_pack_str_with_body(&pk, "s", 1);
    char big[300];
    memset(big, 'x', sizeof(big));
    msgpack_pack_str_with_body(&pk, big, sizeof(big));
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_map(&pk, 0);
    return sb;
}

START_TEST(test_complete_frame)
{
    msgpack_sbuffer *sb = make_pub_frame();
    struct frame_scanner s;
    size_t used;

    ck_assert_int_eq(scan_all(BIG, sb->data, sb->size, &used, &s), FRAME_DONE);
    ck_assert_uint_eq(used, sb->size);
    ck_assert_uint_eq(s.len, sb->size);
    msgpack_sbuffer_free(sb);
}
END_TEST

START_TEST(test_split_at_every_byte)
{
    msgpack_sbuffer *sb = make_pub_frame();
    struct frame_scanner s;

    for (size_t step = 1; step <= sb->size; step++) {
        size_t consumed;
        ck_assert_int_eq(scan_steps(BIG, (uint8_t *)sb->data, sb->size, step, &s, &consumed),
                         FRAME_DONE);
        ck_assert_uint_eq(consumed, sb->size);
        ck_assert_uint_eq(s.len, sb->size);
    }
    /* Every prefix is incomplete, never an error. */
    for (size_t cut = 0; cut < sb->size; cut++) {
        size_t used;
        ck_assert_int_eq(scan_all(BIG, sb->data, cut, &used, &s), FRAME_MORE);
        ck_assert_uint_eq(used, cut);
    }
    msgpack_sbuffer_free(sb);
}
END_TEST

START_TEST(test_back_to_back)
{
    msgpack_sbuffer *sb = make_pub_frame();
    size_t one = sb->size;
    uint8_t *three = malloc(3 * one);
    for (int i = 0; i < 3; i++)
        memcpy(three + i * one, sb->data, one);
    struct frame_scanner s;
    size_t off = 0, used;

    frame_scanner_init(&s, BIG);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(frame_scan(&s, three + off, 3 * one - off, &used), FRAME_DONE);
        ck_assert_uint_eq(used, one);
        ck_assert_uint_eq(s.len, one);
        off += used;
        frame_scanner_reset(&s);
    }
    ck_assert_uint_eq(off, 3 * one);
    /* Without a reset the scanner starts the next frame by itself. */
    frame_scanner_init(&s, BIG);
    ck_assert_int_eq(frame_scan(&s, three, 3 * one, &used), FRAME_DONE);
    ck_assert_int_eq(frame_scan(&s, three + used, 3 * one - used, &used), FRAME_DONE);
    ck_assert_uint_eq(s.len, one);
    free(three);
    msgpack_sbuffer_free(sb);
}
END_TEST

START_TEST(test_empty_array_frame)
{
    const uint8_t f[] = {0x90};
    struct frame_scanner s;
    size_t used;
    ck_assert_int_eq(scan_all(BIG, f, 1, &used, &s), FRAME_DONE);
    ck_assert_uint_eq(s.len, 1);
}
END_TEST

START_TEST(test_not_array)
{
    const uint8_t cases[][1] = {{0x80}, {0x01}, {0xa1}, {0xc0}, {0xde}, {0xff}};
    struct frame_scanner s;
    size_t used;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_int_eq(scan_all(BIG, cases[i], 1, &used, &s), FRAME_ERR_NOT_ARRAY);
}
END_TEST

START_TEST(test_reserved_byte)
{
    const uint8_t first[] = {0xc1};
    const uint8_t inside[] = {0x93, 0x02, 0xc1, 0x00};
    struct frame_scanner s;
    size_t used;
    ck_assert_int_eq(scan_all(BIG, first, 1, &used, &s), FRAME_ERR_NOT_ARRAY);
    ck_assert_int_eq(scan_all(BIG, inside, sizeof(inside), &used, &s), FRAME_ERR_MALFORMED);
}
END_TEST

/* N nested arrays, the innermost holding one nil. */
static size_t make_nested(uint8_t *buf, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        buf[i] = 0x91;
    buf[n] = 0xc0;
    return n + 1;
}

START_TEST(test_depth_limit)
{
    uint8_t buf[128];
    struct frame_scanner s;
    size_t used;

    size_t len = make_nested(buf, PROTO_MAX_DEPTH);
    ck_assert_int_eq(scan_all(BIG, buf, len, &used, &s), FRAME_DONE);
    len = make_nested(buf, PROTO_MAX_DEPTH + 1);
    ck_assert_int_eq(scan_all(BIG, buf, len, &used, &s), FRAME_ERR_TOO_DEEP);
    /* An empty container at depth 33 is still too deep. */
    memset(buf, 0x91, PROTO_MAX_DEPTH);
    buf[PROTO_MAX_DEPTH] = 0x80;
    ck_assert_int_eq(scan_all(BIG, buf, PROTO_MAX_DEPTH + 1, &used, &s), FRAME_ERR_TOO_DEEP);
    /* Maps count as levels too: [{"": {"": ... nil}}] with 33 levels. */
    size_t o = 0;
    buf[o++] = 0x91;
    for (unsigned i = 1; i < PROTO_MAX_DEPTH + 1; i++) {
        buf[o++] = 0x81;
        buf[o++] = 0xa0;
    }
    buf[o++] = 0xc0;
    ck_assert_int_eq(scan_all(BIG, buf, o, &used, &s), FRAME_ERR_TOO_DEEP);
}
END_TEST

START_TEST(test_huge_claims_refused_at_header)
{
    struct frame_scanner s;
    size_t used;
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[] = {0x91, 0xdf, 0x80, 0x00, 0x00, 0x00};
    const uint8_t str32[] = {0x92, 0x02, 0xdb, 0x7f, 0xff, 0xff, 0xff};
    const uint8_t bin32[] = {0x92, 0x02, 0xc6, 0x00, 0x10, 0x00, 0x00};
    const uint8_t ext32[] = {0x92, 0x02, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};

    ck_assert_int_eq(scan_all(BIG, arr32, sizeof(arr32), &used, &s), FRAME_ERR_TOO_LARGE);
    ck_assert_uint_eq(s.len, 5);
    ck_assert_int_eq(scan_all(BIG, map32, sizeof(map32), &used, &s), FRAME_ERR_TOO_LARGE);
    ck_assert_int_eq(scan_all(BIG, str32, sizeof(str32), &used, &s), FRAME_ERR_TOO_LARGE);
    ck_assert_int_eq(scan_all(BIG, bin32, sizeof(bin32), &used, &s), FRAME_ERR_TOO_LARGE);
    ck_assert_int_eq(scan_all(BIG, ext32, sizeof(ext32), &used, &s), FRAME_ERR_TOO_LARGE);
    /* Split headers are checked as soon as they are whole. */
    frame_scanner_init(&s, BIG);
    ck_assert_int_eq(frame_scan(&s, arr32, 3, &used), FRAME_MORE);
    ck_assert_int_eq(frame_scan(&s, arr32 + 3, 2, &used), FRAME_ERR_TOO_LARGE);
}
END_TEST

START_TEST(test_exact_limit)
{
    /* [2, "pub", [bin of N]] sized to exactly MAX bytes. */
    enum { MAX = 1000 };
    uint8_t buf[MAX + 1];
    size_t hdr = 1 + 1 + 4 + 1 + 3; /* 93 02 a3pub 91 c5 hi lo */
    size_t body = MAX - hdr;
    size_t o = 0;
    buf[o++] = 0x93;
    buf[o++] = 0x02;
    memcpy(buf + o, "\xa3pub", 4);
    o += 4;
    buf[o++] = 0x91;
    buf[o++] = 0xc5;
    buf[o++] = (uint8_t)(body >> 8);
    buf[o++] = (uint8_t)body;
    memset(buf + o, 'z', body);
    struct frame_scanner s;
    size_t used;
    ck_assert_int_eq(scan_all(MAX, buf, MAX, &used, &s), FRAME_DONE);
    ck_assert_uint_eq(s.len, MAX);
    ck_assert_int_eq(scan_all(MAX - 1, buf, MAX, &used, &s), FRAME_ERR_TOO_LARGE);
    /* Refused from the header: nothing of the body was needed. */
    ck_assert_uint_eq(s.len, hdr);
}
END_TEST

START_TEST(test_many_small_elements_over_limit)
{
    /* array16 of 300 nils, limit 200: the count alone passes the limit. */
    uint8_t buf[303] = {0xdc, 0x01, 0x2c};
    memset(buf + 3, 0xc0, 300);
    struct frame_scanner s;
    size_t used;
    ck_assert_int_eq(scan_all(200, buf, sizeof(buf), &used, &s), FRAME_ERR_TOO_LARGE);
    ck_assert_uint_eq(s.len, 3);
}
END_TEST

/* ---- randomized: the scanner agrees with msgpack-c on packed frames ---- */

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void pack_random(msgpack_packer *pk, int depth)
{
    char buf[70000];
    uint32_t n;
    switch (rnd() % (depth >= 6 ? 9 : 11)) {
    case 0:
        msgpack_pack_nil(pk);
        break;
    case 1:
        msgpack_pack_true(pk);
        break;
    case 2:
        msgpack_pack_int64(pk, (int64_t)(((uint64_t)rnd() << 32) | rnd()));
        break;
    case 3:
        msgpack_pack_uint64(pk, ((uint64_t)rnd() << 32) | rnd());
        break;
    case 4:
        msgpack_pack_int32(pk, (int32_t)rnd() % 200 - 100);
        break;
    case 5:
        msgpack_pack_double(pk, rnd() / 7.0);
        break;
    case 6:
        n = rnd() % 4 == 0 ? rnd() % 70000 : rnd() % 40;
        memset(buf, 'q', n);
        msgpack_pack_str_with_body(pk, buf, n);
        break;
    case 7:
        n = rnd() % 4 == 0 ? rnd() % 300 : rnd() % 20;
        memset(buf, 'r', n);
        msgpack_pack_bin_with_body(pk, buf, n);
        break;
    case 8:
        n = rnd() % 20;
        memset(buf, 'e', n);
        msgpack_pack_ext_with_body(pk, buf, n, (int8_t)(rnd() % 100));
        break;
    case 9:
        n = rnd() % 5;
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++)
            pack_random(pk, depth + 1);
        break;
    default:
        n = rnd() % 4;
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < 2 * n; i++)
            pack_random(pk, depth + 1);
        break;
    }
}

START_TEST(test_random_frames_agree_with_msgpack)
{
    for (int iter = 0; iter < 300; iter++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        uint32_t n = 1 + rnd() % 4;
        msgpack_pack_array(&pk, n);
        for (uint32_t i = 0; i < n; i++)
            pack_random(&pk, 1);
        /* msgpack-c's own idea of where the object ends. */
        msgpack_zone z;
        msgpack_object obj;
        size_t off = 0;
        msgpack_zone_init(&z, 4096);
        ck_assert_int_eq(msgpack_unpack(sb.data, sb.size, &off, &z, &obj), MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(off, sb.size);
        msgpack_zone_destroy(&z);

        struct frame_scanner s;
        size_t consumed;
        size_t step = 1 + rnd() % 64;
        ck_assert_int_eq(scan_steps(BIG, (uint8_t *)sb.data, sb.size, step, &s, &consumed),
                         FRAME_DONE);
        ck_assert_uint_eq(s.len, sb.size);
        /* One byte short of the limit is refused. */
        if (sb.size > 1) {
            size_t used;
            ck_assert_int_eq(scan_all((uint32_t)sb.size - 1, sb.data, sb.size, &used, &s),
                             FRAME_ERR_TOO_LARGE);
        }
        msgpack_sbuffer_destroy(&sb);
    }
}
END_TEST

START_TEST(test_strerror)
{
    ck_assert_str_eq(frame_strerror(FRAME_ERR_TOO_DEEP), "nesting deeper than 32");
    ck_assert_ptr_nonnull(frame_strerror(FRAME_ERR_TOO_LARGE));
    ck_assert_ptr_nonnull(frame_strerror(FRAME_ERR_MALFORMED));
    ck_assert_ptr_nonnull(frame_strerror(FRAME_ERR_NOT_ARRAY));
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *ok = tcase_create("well-formed");
    tcase_add_test(ok, test_complete_frame);
    tcase_add_test(ok, test_split_at_every_byte);
    tcase_add_test(ok, test_back_to_back);
    tcase_add_test(ok, test_empty_array_frame);
    tcase_add_test(ok, test_random_frames_agree_with_msgpack);
    suite_add_tcase(s, ok);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_not_array);
    tcase_add_test(bad, test_reserved_byte);
    tcase_add_test(bad, test_strerror);
    suite_add_tcase(s, bad);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_depth_limit);
    tcase_add_test(lim, test_huge_claims_refused_at_header);
    tcase_add_test(lim, test_exact_limit);
    tcase_add_test(lim, test_many_small_elements_over_limit);
    suite_add_tcase(s, lim);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
