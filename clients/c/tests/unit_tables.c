/*
 * unit_tables.c - the client's bookkeeping: the byte buffer, the
 * subscription table (by id and by sid), the FIFO of awaited responses and
 * the table of requests by token.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "reqs.h"
#include "subs.h"
#include "waits.h"

/* ------------------------------------------------------------------ buf */

START_TEST(test_buf_append_consume)
{
    struct buf b;
    uint8_t chunk[1000];
    size_t total = 0, eaten = 0;

    buf_init(&b);
    for (int i = 0; i < 5000; i++) {
        memset(chunk, (uint8_t)i, sizeof(chunk));
        size_t n = (size_t)(i % 997) + 1;
        ck_assert_int_eq(buf_append(&b, chunk, n), 0);
        total += n;
        /* Eat some from the front, checking the bytes are in order. */
        size_t take = buf_size(&b) / 2;
        eaten += take;
        buf_consume(&b, take);
        ck_assert_uint_eq(buf_size(&b), total - eaten);
        ck_assert_uint_le(b.cap, 64 * 1024);
    }
    buf_consume(&b, buf_size(&b));
    ck_assert_uint_eq(b.off, 0);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_buf_reserve_truncate)
{
    struct buf b;
    buf_init(&b);
    ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
    ck_assert_int_eq(buf_append(&b, "", 0), 0);
    uint8_t *p = buf_reserve(&b, 100000);
    ck_assert_ptr_nonnull(p);
    memset(p, 'x', 10);
    buf_commit(&b, 10);
    ck_assert_uint_eq(buf_size(&b), 13);
    buf_truncate(&b, 3);
    ck_assert_uint_eq(buf_size(&b), 3);
    ck_assert(memcmp(b.data + b.off, "abc", 3) == 0);
    buf_consume(&b, 1);
    ck_assert(memcmp(b.data + b.off, "bc", 2) == 0);
    buf_free(&b);
}
END_TEST

/* A tail that stays large, with little consumed, must not reallocate at the same size. */
START_TEST(test_buf_growth_bounded)
{
    struct buf b;
    uint8_t chunk[4096] = {0};
    buf_init(&b);
    for (int i = 0; i < 64; i++)
        buf_append(&b, chunk, sizeof(chunk));
    size_t cap = b.cap;
    for (int i = 0; i < 10000; i++) {
        buf_consume(&b, 100);
        buf_append(&b, chunk, 100);
    }
    ck_assert_uint_le(b.cap, 2 * cap);
    buf_free(&b);
}
END_TEST

/* ----------------------------------------------------------------- subs */

static void noop_cb(pigeon_client *c, const pigeon_msg *m, void *arg) {}

START_TEST(test_subs_ids_and_sids)
{
    struct subs t;
    struct sub *s[100];

    subs_init(&t);
    for (int i = 0; i < 100; i++) {
        s[i] = subs_add(&t, "a.*", i % 2 ? "q" : NULL, noop_cb, NULL);
        ck_assert_ptr_nonnull(s[i]);
        ck_assert_uint_eq(s[i]->id, (uint64_t)i + 1);
        ck_assert_int_eq(subs_bind(&t, s[i], 1000 + (uint64_t)i), 0);
    }
    for (int i = 0; i < 100; i++) {
        ck_assert_ptr_eq(subs_find(&t, (uint64_t)i + 1), s[i]);
        ck_assert_ptr_eq(subs_by_sid(&t, 1000 + (uint64_t)i), s[i]);
    }
    ck_assert_ptr_null(subs_find(&t, 101));
    ck_assert_ptr_null(subs_by_sid(&t, 999));
    /* Remove every third; the rest stay findable both ways. */
    for (int i = 0; i < 100; i += 3) {
        subs_remove(&t, s[i]);
        subs_free_one(s[i]);
        s[i] = NULL;
    }
    for (int i = 0; i < 100; i++) {
        ck_assert_ptr_eq(subs_find(&t, (uint64_t)i + 1), s[i]);
        ck_assert_ptr_eq(subs_by_sid(&t, 1000 + (uint64_t)i), s[i]);
    }
    /* A reconnect forgets every sid; binding again works. */
    subs_unbind_all(&t);
    for (size_t i = 0; i < t.n; i++) {
        ck_assert_uint_eq(subs_at(&t, i)->sid, 0);
        ck_assert_ptr_null(subs_by_sid(&t, 1000 + subs_at(&t, i)->id - 1));
        ck_assert_int_eq(subs_bind(&t, subs_at(&t, i), i + 1), 0);
    }
    for (size_t i = 0; i < t.n; i++)
        ck_assert_ptr_eq(subs_by_sid(&t, i + 1), subs_at(&t, i));
    for (size_t i = 0; i < t.n; i++)
        subs_free_one(subs_at(&t, i));
    subs_destroy(&t);
}
END_TEST

/* Many binds and removes: tombstones do not leak the hash. */
START_TEST(test_subs_churn)
{
    struct subs t;
    subs_init(&t);
    for (uint64_t i = 1; i <= 20000; i++) {
        struct sub *s = subs_add(&t, "x", NULL, noop_cb, NULL);
        ck_assert_int_eq(subs_bind(&t, s, i), 0);
        ck_assert_ptr_eq(subs_by_sid(&t, i), s);
        subs_remove(&t, s);
        ck_assert_ptr_null(subs_by_sid(&t, i));
        subs_free_one(s);
    }
    ck_assert_uint_le(t.n_slots, 64);
    subs_destroy(&t);
}
END_TEST

/* ---------------------------------------------------------------- waits */

START_TEST(test_waits_fifo_wraps)
{
    struct waits q, r;
    struct wait w;

    waits_init(&q);
    waits_init(&r);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 7; i++) {
            struct wait x = {.msgid = next_in++, .kind = WAIT_PING};
            ck_assert_int_eq(waits_push(&q, &x), 0);
        }
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(waits_pop(&q, &w), 0);
            ck_assert_uint_eq(w.msgid, next_out++);
        }
    }
    /* Moving keeps the order behind what TO already holds. */
    struct wait first = {.msgid = 999999, .kind = WAIT_HELLO};
    waits_push(&r, &first);
    ck_assert_int_eq(waits_move(&r, &q), 0);
    ck_assert_ptr_null(waits_peek(&q));
    ck_assert_int_eq(waits_pop(&r, &w), 0);
    ck_assert_uint_eq(w.msgid, 999999);
    while (waits_pop(&r, &w) == 0)
        ck_assert_uint_eq(w.msgid, next_out++);
    ck_assert_uint_eq(next_out, next_in);
    waits_destroy(&q);
    waits_destroy(&r);
}
END_TEST

/* ----------------------------------------------------------------- reqs */

START_TEST(test_reqs_by_token)
{
    struct reqs t;
    struct req r[50];

    reqs_init(&t);
    for (int i = 0; i < 50; i++) {
        r[i].token = (uint64_t)i * 3 + 1;
        ck_assert_int_eq(reqs_add(&t, &r[i]), 0);
    }
    ck_assert_ptr_eq(reqs_take(&t, 3 * 10 + 1), &r[10]);
    ck_assert_ptr_null(reqs_take(&t, 3 * 10 + 1));
    ck_assert_ptr_null(reqs_take(&t, 2));
    ck_assert_ptr_eq(reqs_take(&t, 3 * 49 + 1), &r[49]);
    ck_assert_ptr_eq(reqs_take_any(&t), &r[0]);
    size_t left = 0;
    while (reqs_take_any(&t) != NULL)
        left++;
    ck_assert_uint_eq(left, 47);
    reqs_destroy(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tables");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_buf_append_consume);
    tcase_add_test(tc, test_buf_reserve_truncate);
    tcase_add_test(tc, test_buf_growth_bounded);
    suite_add_tcase(s, tc);
    tc = tcase_create("subs");
    tcase_add_test(tc, test_subs_ids_and_sids);
    tcase_add_test(tc, test_subs_churn);
    suite_add_tcase(s, tc);
    tc = tcase_create("waits");
    tcase_add_test(tc, test_waits_fifo_wraps);
    tcase_add_test(tc, test_reqs_by_token);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
