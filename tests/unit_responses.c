/*
 * unit_responses.c - allow_responses grants: one reply per delivery, within
 * the time allowed, never to a '$' topic; the table's bound (the oldest
 * forgotten first, a new note making a topic young again) and its byte
 * count.  The clock is the test's.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "responses.h"

static void note(struct responses *r, const char *t, uint64_t now)
{
    responses_note(r, t, strlen(t), now);
}

static bool take(struct responses *r, const char *t, uint64_t now)
{
    return responses_take(r, t, strlen(t), now);
}

START_TEST(test_once_per_delivery)
{
    struct responses r;

    responses_init(&r, 16);
    ck_assert(!take(&r, "_INBOX.a.1", 0));
    note(&r, "_INBOX.a.1", 0);
    ck_assert(take(&r, "_INBOX.a.1", 10));
    ck_assert(!take(&r, "_INBOX.a.1", 20));
    /* Delivered twice (two subscriptions): two replies. */
    note(&r, "_INBOX.a.2", 0);
    note(&r, "_INBOX.a.2", 5);
    ck_assert(take(&r, "_INBOX.a.2", 10));
    ck_assert(take(&r, "_INBOX.a.2", 10));
    ck_assert(!take(&r, "_INBOX.a.2", 10));
    ck_assert(!take(&r, "_INBOX.a", 10));
    ck_assert_uint_eq(responses_count(&r), 0);
    ck_assert_uint_eq(responses_bytes(&r), 0);
    responses_fini(&r);
}
END_TEST

START_TEST(test_expires)
{
    struct responses r;

    responses_init(&r, 16);
    note(&r, "a", 1000);
    note(&r, "b", 1000);
    ck_assert(take(&r, "a", 1000 + RESPONSES_TTL_MS - 1));
    ck_assert(!take(&r, "b", 1000 + RESPONSES_TTL_MS));
    ck_assert_uint_eq(responses_count(&r), 0);
    /* A new note gives a topic its full time again. */
    note(&r, "c", 0);
    note(&r, "c", 30000);
    ck_assert(take(&r, "c", 30000 + RESPONSES_TTL_MS - 1));
    responses_fini(&r);
}
END_TEST

START_TEST(test_never_system_topics)
{
    struct responses r;

    responses_init(&r, 16);
    note(&r, "$SYS.x", 0);
    ck_assert_uint_eq(responses_count(&r), 0);
    ck_assert(!take(&r, "$SYS.x", 0));
    responses_fini(&r);
}
END_TEST

START_TEST(test_bounded)
{
    struct responses r;
    char t[32];

    responses_init(&r, 4);
    note(&r, "t.0", 0);
    note(&r, "t.1", 1);
    note(&r, "t.0", 2); /* young again: t.1 is now the oldest */
    for (int i = 2; i < 10; i++) {
        snprintf(t, sizeof(t), "t.%d", i);
        note(&r, t, (uint64_t)i + 2);
        ck_assert_uint_le(responses_count(&r), 4);
    }
    ck_assert_uint_eq(responses_count(&r), 4);
    ck_assert(!take(&r, "t.1", 20));
    ck_assert(!take(&r, "t.0", 20));
    ck_assert(take(&r, "t.9", 20));
    ck_assert(take(&r, "t.6", 20));
    ck_assert_uint_gt(responses_bytes(&r), 0);
    responses_fini(&r);
    ck_assert_uint_eq(responses_bytes(&r), 0);
    /* max 0: nothing is ever granted. */
    responses_init(&r, 0);
    note(&r, "x", 0);
    ck_assert(!take(&r, "x", 0));
    responses_fini(&r);
}
END_TEST

static Suite *responses_suite(void)
{
    Suite *s = suite_create("responses");
    TCase *tc = tcase_create("grants");

    tcase_add_test(tc, test_once_per_delivery);
    tcase_add_test(tc, test_expires);
    tcase_add_test(tc, test_never_system_topics);
    tcase_add_test(tc, test_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(responses_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
