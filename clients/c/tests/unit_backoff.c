/*
 * unit_backoff.c - reconnect delays: within [d/2, d], doubling, capped,
 * jittered; and the random generator's basic sanity.
 */
#include <check.h>
#include <stdlib.h>

#include "backoff.h"

START_TEST(test_bounds_and_growth)
{
    struct backoff_rng r;
    backoff_rng_seed(&r);
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t d = 100;
        for (uint32_t i = 0; i < attempt && d < 5000; i++)
            d *= 2;
        if (d > 5000)
            d = 5000;
        for (int k = 0; k < 200; k++) {
            uint32_t v = backoff_delay_ms(attempt, 100, 5000, &r);
            ck_assert_uint_ge(v, d / 2);
            ck_assert_uint_le(v, d);
        }
    }
}
END_TEST

START_TEST(test_jitter_spreads)
{
    struct backoff_rng r;
    uint32_t lo = UINT32_MAX, hi = 0;
    backoff_rng_seed(&r);
    for (int k = 0; k < 1000; k++) {
        uint32_t v = backoff_delay_ms(10, 100, 5000, &r);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* 1000 uniform draws over [2500, 5000] cover most of it. */
    ck_assert_uint_lt(lo, 2700);
    ck_assert_uint_gt(hi, 4800);
}
END_TEST

START_TEST(test_degenerate_settings)
{
    struct backoff_rng r = {.s = 1};
    ck_assert_uint_le(backoff_delay_ms(0, 0, 0, &r), 1);
    ck_assert_uint_le(backoff_delay_ms(UINT32_MAX, 1000, 10, &r), 1000);
    ck_assert_uint_ge(backoff_delay_ms(UINT32_MAX, 1000, 10, &r), 500);
}
END_TEST

START_TEST(test_rng_differs)
{
    struct backoff_rng a, b;
    backoff_rng_seed(&a);
    backoff_rng_seed(&b);
    /* Two seeds from getrandom agree with probability 2^-64. */
    ck_assert(backoff_rng_next(&a) != backoff_rng_next(&b));
    uint64_t x = backoff_rng_next(&a), y = backoff_rng_next(&a);
    ck_assert(x != y);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("delays");
    tcase_add_test(tc, test_bounds_and_growth);
    tcase_add_test(tc, test_jitter_spreads);
    tcase_add_test(tc, test_degenerate_settings);
    tcase_add_test(tc, test_rng_differs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
