/*
 * unit_authpool.c - the password-check pool with real hashes: yescrypt and
 * bcrypt, right and wrong passwords, a malformed hash; results come back on
 * the loop and never from within authpool_verify; cancelling a request that
 * is queued, running or done (its callback never runs); the bound on
 * pending requests; freeing a pool with work left.  Run under ASan in CI,
 * so a request freed twice or never shows there.
 */
#include <check.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "authpool.h"

#define DEADLINE_S 120 /* generous: a loaded machine under ASan */

static char yescrypt_hash[CRYPT_OUTPUT_SIZE];
static char bcrypt_hash[CRYPT_OUTPUT_SIZE];

/* A real hash of PASSWORD with the method PREFIX at COST (0: its default). */
static void make_hash(const char *prefix, unsigned long cost, const char *password, char *out)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *h;

    /* Called from main, outside any test: no ck_assert here. */
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting)) == NULL ||
        (h = crypt_r(password, setting, cd)) == NULL || h[0] == '*') {
        fprintf(stderr, "cannot make a %s hash\n", prefix);
        exit(EXIT_FAILURE);
    }
    strcpy(out, h);
    free(cd);
}

static void hashes_setup(void)
{
    if (yescrypt_hash[0] == '\0') {
        make_hash("$y$", 0, "right horse", yescrypt_hash);
        make_hash("$2b$", 8, "battery staple", bcrypt_hash);
    }
}

struct result {
    int calls;
    bool ok;
};

struct harness {
    struct event_base *base;
    struct authpool *pool;
    int done, want; /* callbacks seen; the loop stops at WANT */
};

static struct harness H;

static void result_cb(bool ok, void *arg)
{
    struct result *r = arg;

    r->calls++;
    r->ok = ok;
    if (++H.done >= H.want)
        event_base_loopbreak(H.base);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ck_abort_msg("deadline: %d of %d results in %d s", H.done, H.want, DEADLINE_S);
}

/* Runs the loop until WANT callbacks in all have run. */
static void run_until(int want)
{
    struct timeval tv = {DEADLINE_S, 0};
    struct event *deadline = evtimer_new(H.base, deadline_cb, NULL);

    H.want = want;
    evtimer_add(deadline, &tv);
    if (H.done < want)
        event_base_dispatch(H.base);
    event_free(deadline);
}

/* Runs the loop until no request is pending. */
static void run_until_idle(void)
{
    time_t end = time(NULL) + DEADLINE_S;

    while (authpool_pending(H.pool) > 0 && time(NULL) < end)
        event_base_loop(H.base, EVLOOP_ONCE);
    ck_assert_uint_eq(authpool_pending(H.pool), 0);
}

static void pool_setup(unsigned threads, size_t max)
{
    const char *why = NULL;

    hashes_setup();
    memset(&H, 0, sizeof(H));
    H.base = event_base_new();
    ck_assert_ptr_nonnull(H.base);
    ck_assert_msg(authpool_new(H.base, threads, max, &H.pool, &why) == 0, "%s", why);
}

static void setup(void)
{
    pool_setup(2, 64);
}

static void teardown(void)
{
    authpool_free(H.pool);
    event_base_free(H.base);
}

static struct authpool_req *verify(const char *hash, const char *password, struct result *r)
{
    return authpool_verify(H.pool, hash, password, strlen(password), result_cb, r);
}

/* ----------------------------------------------------------- checks ---- */

START_TEST(test_yescrypt_and_bcrypt)
{
    struct result r[6] = {{0}};

    ck_assert_ptr_nonnull(verify(yescrypt_hash, "right horse", &r[0]));
    ck_assert_ptr_nonnull(verify(yescrypt_hash, "wrong horse", &r[1]));
    ck_assert_ptr_nonnull(verify(bcrypt_hash, "battery staple", &r[2]));
    ck_assert_ptr_nonnull(verify(bcrypt_hash, "battery stapl", &r[3]));
    ck_assert_ptr_nonnull(verify(yescrypt_hash, "", &r[4]));
    /* A password with a NUL byte is cut there by crypt: never equal to the longer one. */
    ck_assert_ptr_nonnull(
        authpool_verify(H.pool, yescrypt_hash, "right horse\0x", 13, result_cb, &r[5]));
    /* Results come later, on the loop, never from within authpool_verify. */
    ck_assert_int_eq(H.done, 0);
    run_until(6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(r[i].calls, 1);
    ck_assert(r[0].ok);
    ck_assert(!r[1].ok);
    ck_assert(r[2].ok);
    ck_assert(!r[3].ok);
    ck_assert(!r[4].ok);
    ck_assert(r[5].ok); /* crypt sees "right horse": the caller must refuse NUL bytes */
    ck_assert_uint_eq(authpool_completed(H.pool), 6);
    ck_assert_uint_eq(authpool_pending(H.pool), 0);
}
END_TEST

START_TEST(test_malformed_hash)
{
    struct result r[3] = {{0}};

    verify("$y$", "x", &r[0]);
    verify("plain", "plain", &r[1]);
    verify("*0", "*0", &r[2]);
    run_until(3);
    ck_assert(!r[0].ok);
    ck_assert(!r[1].ok);
    ck_assert(!r[2].ok);
}
END_TEST

/* ----------------------------------------------------------- cancel ---- */

/* Many requests, every other one cancelled (queued, or running): only the rest call back. */
START_TEST(test_cancel_queued)
{
    struct result r[8] = {{0}};
    struct authpool_req *req[8];

    for (int i = 0; i < 8; i++)
        req[i] = verify(yescrypt_hash, "right horse", &r[i]);
    for (int i = 1; i < 8; i += 2)
        authpool_cancel(H.pool, req[i]);
    run_until(4);
    run_until_idle();
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r[i].calls, i % 2 == 0);
    ck_assert(r[0].ok && r[6].ok);
}
END_TEST

/* Cancelled while its worker runs it, or after it finished, before the loop saw it. */
START_TEST(test_cancel_running_and_done)
{
    struct result r[2] = {{0}};
    struct authpool_req *a, *b;
    time_t end = time(NULL) + DEADLINE_S;

    a = verify(yescrypt_hash, "right horse", &r[0]);
    while (authpool_completed(H.pool) < 1 && time(NULL) < end)
        usleep(1000); /* a finishes; the loop has not run */
    b = verify(yescrypt_hash, "right horse", &r[1]);
    usleep(1000); /* b is likely running now; queued is fine too */
    authpool_cancel(H.pool, a);
    authpool_cancel(H.pool, b);
    run_until_idle();
    ck_assert_int_eq(r[0].calls, 0);
    ck_assert_int_eq(r[1].calls, 0);
}
END_TEST

struct cancel_other {
    struct result r;
    struct authpool_req *other;
};

static void cancel_other_cb(bool ok, void *arg)
{
    struct cancel_other *c = arg;

    result_cb(ok, &c->r);
    if (c->other != NULL)
        authpool_cancel(H.pool, c->other);
}

/* A callback cancels a request whose result came back in the same batch, after its own. */
START_TEST(test_cancel_from_callback)
{
    struct cancel_other a = {{0}, NULL}, b = {{0}, NULL};
    time_t end = time(NULL) + DEADLINE_S;

    teardown();
    pool_setup(1, 64); /* one worker: a is done before b */
    authpool_verify(H.pool, bcrypt_hash, "x", 1, cancel_other_cb, &a);
    a.other = authpool_verify(H.pool, bcrypt_hash, "y", 1, cancel_other_cb, &b);
    b.other = NULL;
    while (authpool_completed(H.pool) < 2 && time(NULL) < end)
        usleep(1000); /* both done before the loop looks: one batch */
    run_until_idle();
    ck_assert_int_eq(a.r.calls, 1);
    ck_assert_int_eq(b.r.calls, 0);
    ck_assert_int_eq(H.done, 1);
}
END_TEST

/* ----------------------------------------------------------- bounds ---- */

START_TEST(test_bounded)
{
    struct result r[5] = {{0}};

    teardown();
    pool_setup(1, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(verify(bcrypt_hash, "battery staple", &r[i]));
    ck_assert_ptr_null(verify(bcrypt_hash, "battery staple", &r[4]));
    ck_assert_uint_eq(authpool_pending(H.pool), 4);
    run_until(4);
    run_until_idle();
    /* Room again once the results are handed back. */
    ck_assert_ptr_nonnull(verify(bcrypt_hash, "battery staple", &r[4]));
    run_until(5);
    ck_assert(r[4].ok);
}
END_TEST

/* Freed with requests queued, running and done: no callback, no leak. */
START_TEST(test_free_with_work_left)
{
    struct result r[6] = {{0}};
    time_t end = time(NULL) + DEADLINE_S;

    for (int i = 0; i < 6; i++)
        verify(bcrypt_hash, "battery staple", &r[i]);
    while (authpool_completed(H.pool) < 1 && time(NULL) < end)
        usleep(1000);
    authpool_free(H.pool);
    H.pool = NULL;
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(r[i].calls, 0);
}
END_TEST

START_TEST(test_bad_args)
{
    struct authpool *p = NULL;
    const char *why = NULL;

    ck_assert_int_eq(authpool_new(H.base, 0, 4, &p, &why), -1);
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_ge(authpool_default_threads(), 1);
    ck_assert_uint_le(authpool_default_threads(), 2);
    authpool_free(NULL);
}
END_TEST

static Suite *authpool_suite(void)
{
    Suite *s = suite_create("authpool");
    TCase *tc;

    tc = tcase_create("checks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_yescrypt_and_bcrypt);
    tcase_add_test(tc, test_malformed_hash);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_cancel_queued);
    tcase_add_test(tc, test_cancel_running_and_done);
    tcase_add_test(tc, test_cancel_from_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_bounded);
    tcase_add_test(tc, test_free_with_work_left);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(authpool_suite());
    int failed;

    hashes_setup(); /* once, so that each forked test inherits them */
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
