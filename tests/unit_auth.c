/*
 * unit_auth.c - the authenticator on a real event loop, pool and users
 * file: passwords (yescrypt, bcrypt) and tokens, every refusal and its
 * outcome, answers that always come later from the loop, the login cache
 * (a hit skips the pool; expiry; bounded; kept or dropped across a reload),
 * checks shared by simultaneous logins, cancelling (alone and within a
 * shared check), failure delays (growing per address, capped, per IPv6
 * /64, forgotten, a bounded table), reloads (a bad file keeps the old
 * policy and says why; a password changed during a check is not accepted
 * on the old one), and users for TLS certificates and after a reload.
 *
 * No assertion depends on timing except generous deadlines: delays are read
 * through auth_failure_delay, not measured.
 */
#include <arpa/inet.h>
#include <check.h>
#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "acl.h"
#include "auth.h"
#include "log.h"
#include "users.h"

#define DEADLINE_S 120

static char alice_hash[CRYPT_OUTPUT_SIZE], alice_hash2[CRYPT_OUTPUT_SIZE];
static char bob_hash[CRYPT_OUTPUT_SIZE];
static char svc_token[80];

static void make_hash(const char *prefix, unsigned long cost, const char *pw, char *out)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *h;

    /* Called from main, outside any test: no ck_assert here. */
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting)) == NULL ||
        (h = crypt_r(pw, setting, cd)) == NULL || h[0] == '*') {
        fprintf(stderr, "cannot make a %s hash\n", prefix);
        exit(EXIT_FAILURE);
    }
    strcpy(out, h);
    free(cd);
}

static void token_hash(const char *raw, char *buf)
{
    unsigned char d[USERS_TOKEN_BYTES];

    users_token_digest(raw, strlen(raw), d);
    strcpy(buf, "sha256:");
    for (size_t i = 0; i < sizeof(d); i++)
        sprintf(buf + 7 + 2 * i, "%02x", d[i]);
}

/* --------------------------------------------------------- harness ---- */

struct answer {
    int calls;
    enum auth_outcome outcome;
    char user[80];
};

static struct {
    struct event_base *base;
    struct logger log;
    FILE *log_file;
    struct auth *auth;
    char dir[64];
    char path[128];
    int done, want;
} H;

static void write_users(const char *alice, const char *extra)
{
    FILE *f = fopen(H.path, "w");

    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "[user alice]\npassword = %s\npublish = orders.>\nsubscribe = _INBOX.%%u.>\n"
            "[user bob]\npassword = %s\n"
            "[user svc]\ntoken = %s\npublish = metrics.>\n%s",
            alice, bob_hash, svc_token, extra);
    fclose(f);
}

static void start(const struct auth_options *opts)
{
    struct config_error err;

    ck_assert_msg(auth_new(H.base, &H.log, H.path, opts, &H.auth, &err) == 0, "%s:%d: %s", err.file,
                  err.line, err.reason);
}

/* Made once, in main, so that each forked test inherits them. */
static void hashes_init(void)
{
    make_hash("$y$", 0, "alice-pw", alice_hash);
    make_hash("$y$", 0, "alice-new", alice_hash2);
    make_hash("$2b$", 6, "bob-pw", bob_hash);
    token_hash("tok-svc", svc_token);
}

static void setup(void)
{
    memset(&H, 0, sizeof(H));
    strcpy(H.dir, "/tmp/unit_auth.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(H.dir));
    snprintf(H.path, sizeof(H.path), "%s/users.ini", H.dir);
    write_users(alice_hash, "");
    H.base = event_base_new();
    H.log_file = tmpfile();
    log_init(&H.log, H.log_file, LOG_LEVEL_DEBUG);
}

static void teardown(void)
{
    char cmd[128];

    auth_free(H.auth);
    event_base_free(H.base);
    fclose(H.log_file);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", H.dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void done_cb(struct user *user, enum auth_outcome outcome, void *arg)
{
    struct answer *ans = arg;

    ans->calls++;
    ans->outcome = outcome;
    ck_assert((user != NULL) == (outcome == AUTH_OK));
    if (user != NULL) {
        snprintf(ans->user, sizeof(ans->user), "%s", user_name(user));
        user_unref(user);
    }
    if (++H.done >= H.want)
        event_base_loopbreak(H.base);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ck_abort_msg("deadline: %d of %d answers", H.done, H.want);
}

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

static struct sockaddr_in6 addr6(const char *text)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};

    ck_assert_int_eq(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
    return sa;
}

static struct sockaddr_in addr4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};

    ck_assert_int_eq(inet_pton(AF_INET, text, &sa.sin_addr), 1);
    return sa;
}

static struct auth_req *hello_from(const struct sockaddr *peer, socklen_t len, const char *user,
                                   const char *pw, const char *token, struct answer *ans)
{
    struct auth_creds c = {
        .user = user,
        .user_len = user ? strlen(user) : 0,
        .password = pw,
        .password_len = pw ? strlen(pw) : 0,
        .token = token,
        .token_len = token ? strlen(token) : 0,
    };

    return auth_hello(H.auth, peer, len, &c, done_cb, ans);
}

/* A hello from 127.0.0.1. */
static struct auth_req *hello(const char *user, const char *pw, const char *token,
                              struct answer *ans)
{
    struct sockaddr_in sa = addr4("127.0.0.1");

    return hello_from((struct sockaddr *)&sa, sizeof(sa), user, pw, token, ans);
}

static struct auth_stats stats(void)
{
    struct auth_stats st;

    auth_get_stats(H.auth, &st);
    return st;
}

/* Options for quick tests: short delays. */
static struct auth_options quick(void)
{
    struct auth_options o;

    auth_options_default(&o);
    o.delay_base_ms = 5;
    o.delay_max_ms = 40;
    return o;
}

/* ------------------------------------------------------------ hello ---- */

START_TEST(test_password_and_token)
{
    struct auth_options o = quick();
    struct answer a[4] = {{0}};

    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    hello("bob", "bob-pw", NULL, &a[1]);
    hello(NULL, NULL, "tok-svc", &a[2]);
    hello("alice", "alice-pw", NULL, &a[3]);
    ck_assert_int_eq(H.done, 0); /* never answered from within auth_hello */
    run_until(4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(a[i].calls, 1);
        ck_assert_int_eq(a[i].outcome, AUTH_OK);
    }
    ck_assert_str_eq(a[0].user, "alice");
    ck_assert_str_eq(a[1].user, "bob");
    ck_assert_str_eq(a[2].user, "svc");
    ck_assert_uint_eq(stats().ok, 4);
    ck_assert_uint_eq(stats().checks, 2); /* alice's second login shared the first's check */
}
END_TEST

static const struct {
    const char *user, *pw, *token;
    enum auth_outcome outcome;
    int checks; /* pool checks it costs */
} refusals[] = {
    {"alice", "wrong", NULL, AUTH_BAD, 1},
    {"bob", "alice-pw", NULL, AUTH_BAD, 1},
    {"nobody", "alice-pw", NULL, AUTH_BAD, 1}, /* a dummy check: as slow as a wrong password */
    {"svc", "tok-svc", NULL, AUTH_BAD, 1},     /* a token user has no password */
    {NULL, NULL, "tok-wrong", AUTH_BAD, 0},
    {NULL, NULL, "", AUTH_BAD, 0},
    {"alice", "alice-pw", "tok-svc", AUTH_BOTH, 0},
    {NULL, "alice-pw", "tok-svc", AUTH_BOTH, 0},
    {"svc", NULL, "tok-svc", AUTH_BOTH, 0},
    {NULL, NULL, NULL, AUTH_MISSING, 0},
    {"alice", NULL, NULL, AUTH_MISSING, 0},
    {NULL, "alice-pw", NULL, AUTH_MISSING, 0},
    {"", "alice-pw", NULL, AUTH_MISSING, 0},
    {"a123456789b123456789c123456789d123456789e123456789f123456789abcde", "x", NULL, AUTH_BAD, 0},
};

START_TEST(test_refusals)
{
    struct auth_options o = quick();
    struct answer ans = {0};

    start(&o);
    hello(refusals[_i].user, refusals[_i].pw, refusals[_i].token, &ans);
    run_until(1);
    ck_assert_int_eq(ans.calls, 1);
    ck_assert_msg(ans.outcome == refusals[_i].outcome, "got %s", auth_outcome_name(ans.outcome));
    ck_assert_uint_eq(stats().checks, (uint64_t)refusals[_i].checks);
    ck_assert_uint_eq(stats().failed, 1);
    ck_assert_uint_eq(stats().cached, 0);
}
END_TEST

/* A NUL byte or an oversized secret is refused on its face: crypt would stop at the NUL. */
START_TEST(test_nul_and_long_secrets)
{
    struct auth_options o = quick();
    struct answer a[3] = {{0}};
    static char long_pw[AUTH_TOKEN_MAX + 2];
    struct auth_creds c = {
        .user = "alice", .user_len = 5, .password = "alice-pw\0x", .password_len = 10};

    start(&o);
    auth_hello(H.auth, NULL, 0, &c, done_cb, &a[0]);
    memset(long_pw, 'x', sizeof(long_pw) - 1);
    hello("alice", long_pw, NULL, &a[1]);
    hello(NULL, NULL, long_pw, &a[2]);
    run_until(3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(a[i].outcome, AUTH_BAD);
    ck_assert_uint_eq(stats().checks, 0);
}
END_TEST

/* ------------------------------------------------------------ cache ---- */

START_TEST(test_cache_hit_skips_pool)
{
    struct auth_options o = quick();
    struct answer a[3] = {{0}};

    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    run_until(1);
    ck_assert_uint_eq(stats().checks, 1);
    ck_assert_uint_eq(stats().cached, 1);
    hello("alice", "alice-pw", NULL, &a[1]);
    run_until(2);
    ck_assert_int_eq(a[1].outcome, AUTH_OK);
    ck_assert_uint_eq(stats().cache_hits, 1);
    ck_assert_uint_eq(stats().checks, 1);
    /* A wrong password is never a hit. */
    hello("alice", "alice-pX", NULL, &a[2]);
    run_until(3);
    ck_assert_int_eq(a[2].outcome, AUTH_BAD);
    ck_assert_uint_eq(stats().checks, 2);
    ck_assert_uint_eq(stats().cache_hits, 1);
}
END_TEST

START_TEST(test_cache_expires)
{
    struct auth_options o = quick();
    struct answer a[2] = {{0}};

    o.cache_ttl_ms = 30;
    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    run_until(1);
    usleep(100 * 1000); /* well past the ttl */
    hello("alice", "alice-pw", NULL, &a[1]);
    run_until(2);
    ck_assert_int_eq(a[1].outcome, AUTH_OK);
    ck_assert_uint_eq(stats().cache_hits, 0);
    ck_assert_uint_eq(stats().checks, 2);
}
END_TEST

START_TEST(test_cache_bounded)
{
    struct auth_options o = quick();
    struct answer a[3] = {{0}};

    o.cache_max = 1;
    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    run_until(1);
    hello("bob", "bob-pw", NULL, &a[1]);
    run_until(2);
    ck_assert_uint_eq(stats().cached, 1);
    hello("alice", "alice-pw", NULL, &a[2]); /* evicted by bob */
    run_until(3);
    ck_assert_uint_eq(stats().cache_hits, 0);
    ck_assert_uint_eq(stats().checks, 3);
}
END_TEST

/* A hundred simultaneous logins of one user cost one check. */
START_TEST(test_shared_check)
{
    struct auth_options o = quick();
    static struct answer a[100];

    memset(a, 0, sizeof(a));
    start(&o);
    for (int i = 0; i < 100; i++)
        hello("bob", "bob-pw", NULL, &a[i]);
    run_until(100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(a[i].outcome, AUTH_OK);
    ck_assert_uint_eq(stats().checks, 1);
    ck_assert_uint_eq(stats().shared, 99);
}
END_TEST

/* ----------------------------------------------------------- cancel ---- */

START_TEST(test_cancel)
{
    struct auth_options o = quick();
    struct answer a[6] = {{0}};
    struct auth_req *r[6];

    start(&o);
    r[0] = hello("alice", "alice-pw", NULL, &a[0]); /* a check, alone */
    r[1] = hello("bob", "bob-pw", NULL, &a[1]);     /* a shared check: one leaves */
    r[2] = hello("bob", "bob-pw", NULL, &a[2]);
    r[3] = hello(NULL, NULL, "tok-svc", &a[3]); /* decided, waiting for its timer */
    r[4] = hello("alice", "wrong", NULL, &a[4]);
    r[5] = hello("nobody", "x", NULL, &a[5]); /* a dummy check */
    auth_cancel(H.auth, r[0]);
    auth_cancel(H.auth, r[1]);
    auth_cancel(H.auth, r[3]);
    auth_cancel(H.auth, r[5]);
    run_until(2);
    ck_assert_int_eq(a[2].outcome, AUTH_OK);
    ck_assert_int_eq(a[4].outcome, AUTH_BAD);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(a[i].calls, i == 2 || i == 4);
    (void)r[2];
    (void)r[4];
}
END_TEST

/* Freed with requests at every stage: no callback, no leak (ASan in CI). */
START_TEST(test_free_with_requests)
{
    struct auth_options o = quick();
    struct answer a[4] = {{0}};

    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    hello("alice", "alice-pw", NULL, &a[1]);
    hello(NULL, NULL, "tok-svc", &a[2]);
    hello("x", "y", NULL, &a[3]);
    auth_free(H.auth);
    H.auth = NULL;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(a[i].calls, 0);
}
END_TEST

/* ----------------------------------------------------------- delays ---- */

START_TEST(test_delay_grows_and_caps)
{
    struct auth_options o = quick();
    struct sockaddr_in p = addr4("192.0.2.1"), q = addr4("192.0.2.2");
    static const uint32_t want[] = {5, 10, 20, 40, 40, 40};
    struct answer ans[8] = {{0}};

    start(&o);
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&p, sizeof(p)), 5);
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&p, sizeof(p)), want[i]);
        hello_from((struct sockaddr *)&p, sizeof(p), NULL, NULL, "bad", &ans[i]);
        run_until(i + 1);
        ck_assert_int_eq(ans[i].outcome, AUTH_BAD);
    }
    /* Another address is not slowed; a success from P is answered and does not reset P. */
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&q, sizeof(q)), 5);
    hello_from((struct sockaddr *)&p, sizeof(p), NULL, NULL, "tok-svc", &ans[6]);
    run_until(7);
    ck_assert_int_eq(ans[6].outcome, AUTH_OK);
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&p, sizeof(p)), 40);
    ck_assert_uint_eq(stats().addresses, 1);
}
END_TEST

START_TEST(test_delay_default_cap_is_one_second)
{
    struct sockaddr_in p = addr4("192.0.2.9");
    struct answer ans[6] = {{0}};
    struct auth_options o;

    auth_options_default(&o);
    ck_assert_uint_eq(o.delay_max_ms, 1000);
    o.delay_base_ms = 1; /* so the test waits little */
    o.delay_max_ms = 4;
    start(&o);
    for (int i = 0; i < 6; i++) {
        hello_from((struct sockaddr *)&p, sizeof(p), "alice", "wrong", NULL, &ans[i]);
        run_until(i + 1);
    }
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&p, sizeof(p)), 4);
}
END_TEST

/* IPv6 peers count by /64; an IPv4-mapped address is its IPv4 address; Unix peers are one. */
START_TEST(test_delay_keys)
{
    struct auth_options o = quick();
    struct sockaddr_in6 a = addr6("2001:db8:1:2::1"), b = addr6("2001:db8:1:2:ffff::9"),
                        c = addr6("2001:db8:1:3::1"), m = addr6("::ffff:192.0.2.7");
    struct sockaddr_in v4 = addr4("192.0.2.7");
    struct answer ans[3] = {{0}};

    start(&o);
    hello_from((struct sockaddr *)&a, sizeof(a), NULL, NULL, "bad", &ans[0]);
    hello_from((struct sockaddr *)&m, sizeof(m), NULL, NULL, "bad", &ans[1]);
    hello_from(NULL, 0, NULL, NULL, "bad", &ans[2]);
    run_until(3);
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&b, sizeof(b)), 10);
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&c, sizeof(c)), 5);
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&v4, sizeof(v4)), 10);
    ck_assert_uint_eq(auth_failure_delay(H.auth, NULL, 0), 10);
    ck_assert_uint_eq(stats().addresses, 3);
}
END_TEST

START_TEST(test_delay_forgotten)
{
    struct auth_options o = quick();
    struct sockaddr_in p = addr4("192.0.2.3");
    struct answer ans[2] = {{0}};

    o.delay_forget_ms = 30;
    start(&o);
    hello_from((struct sockaddr *)&p, sizeof(p), NULL, NULL, "bad", &ans[0]);
    hello_from((struct sockaddr *)&p, sizeof(p), NULL, NULL, "bad", &ans[1]);
    run_until(2);
    usleep(100 * 1000); /* well past the window */
    ck_assert_uint_eq(auth_failure_delay(H.auth, (struct sockaddr *)&p, sizeof(p)), 5);
}
END_TEST

/* A flood of failures from many addresses: the table keeps delay_slots of them. */
START_TEST(test_delay_table_bounded)
{
    struct auth_options o = quick();
    static struct answer ans[300];
    char text[32];

    memset(ans, 0, sizeof(ans));
    o.delay_slots = 16;
    o.delay_base_ms = 1;
    start(&o);
    for (int i = 0; i < 300; i++) {
        struct sockaddr_in p;
        snprintf(text, sizeof(text), "10.0.%d.%d", i / 250, i % 250);
        p = addr4(text);
        hello_from((struct sockaddr *)&p, sizeof(p), NULL, NULL, "bad", &ans[i]);
    }
    run_until(300);
    ck_assert_uint_eq(stats().addresses, 16);
    ck_assert_uint_eq(stats().failed, 300);
}
END_TEST

/* ----------------------------------------------------------- reload ---- */

static char *log_text(void)
{
    static char buf[8192];
    size_t n;

    fflush(H.log_file);
    rewind(H.log_file);
    n = fread(buf, 1, sizeof(buf) - 1, H.log_file);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_reload_good_and_bad)
{
    struct auth_options o = quick();
    struct config_error err;
    struct users *before;
    struct answer a[2] = {{0}};

    start(&o);
    before = auth_users(H.auth);
    write_users(alice_hash, "[user carol]\ntoken = sha256:"
                            "0000000000000000000000000000000000000000000000000000000000000000\n");
    ck_assert_int_eq(auth_reload(H.auth, NULL, &err), 0);
    ck_assert_ptr_ne(auth_users(H.auth), before);
    ck_assert_uint_eq(users_count(auth_users(H.auth)), 4);
    ck_assert(strstr(log_text(), "users: loaded 4 users from") != NULL);

    /* A bad file: the policy stays, the log says where and why. */
    before = auth_users(H.auth);
    write_users(alice_hash, "[user dave]\npassword = hunter2\n");
    ck_assert_int_eq(auth_reload(H.auth, NULL, &err), -1);
    ck_assert_int_eq(err.line, 11);
    ck_assert_ptr_eq(auth_users(H.auth), before);
    ck_assert(strstr(log_text(), "users.ini:11: bad password for user 'dave'") != NULL);
    ck_assert(strstr(log_text(), "keeping the previous 4 users") != NULL);
    /* The password's value is never logged. */
    ck_assert(strstr(log_text(), "hunter2") == NULL);

    /* A missing file: the same. */
    unlink(H.path);
    ck_assert_int_eq(auth_reload(H.auth, NULL, &err), -1);
    ck_assert_ptr_eq(auth_users(H.auth), before);
    ck_assert(strstr(log_text(), "cannot open") != NULL);
    ck_assert_uint_eq(stats().reloads, 1);
    ck_assert_uint_eq(stats().reload_failures, 2);

    /* Logins go on under the policy kept. */
    hello("alice", "alice-pw", NULL, &a[0]);
    hello(NULL, NULL, "tok-svc", &a[1]);
    run_until(2);
    ck_assert_int_eq(a[0].outcome, AUTH_OK);
    ck_assert_int_eq(a[1].outcome, AUTH_OK);
}
END_TEST

START_TEST(test_start_fails_on_bad_file)
{
    struct config_error err;
    struct auth *a = NULL;

    write_users("plain", "");
    ck_assert_int_eq(auth_new(H.base, &H.log, H.path, NULL, &a, &err), -1);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(err.line, 2);
    ck_assert(strstr(err.reason, "bad password for user 'alice'") != NULL);
}
END_TEST

/* The cache keeps a login across a reload only while its user's password is the same. */
START_TEST(test_reload_and_cache)
{
    struct auth_options o = quick();
    struct answer a[4] = {{0}};

    start(&o);
    hello("alice", "alice-pw", NULL, &a[0]);
    hello("bob", "bob-pw", NULL, &a[1]);
    run_until(2);
    ck_assert_uint_eq(stats().cached, 2);
    write_users(alice_hash2, ""); /* alice's password changes; bob's does not */
    ck_assert_int_eq(auth_reload(H.auth, NULL, NULL), 0);
    ck_assert_uint_eq(stats().cached, 1);
    hello("bob", "bob-pw", NULL, &a[2]);
    hello("alice", "alice-pw", NULL, &a[3]);
    run_until(4);
    ck_assert_int_eq(a[2].outcome, AUTH_OK);
    ck_assert_uint_eq(stats().cache_hits, 1);
    ck_assert_int_eq(a[3].outcome, AUTH_BAD);
}
END_TEST

/* A check that began under the old password is not accepted once the reload changed it. */
START_TEST(test_reload_during_check)
{
    struct auth_options o = quick();
    struct answer a = {0};

    start(&o);
    hello("alice", "alice-pw", NULL, &a);
    write_users(alice_hash2, "");
    ck_assert_int_eq(auth_reload(H.auth, NULL, NULL), 0); /* before the loop hears back */
    run_until(1);
    ck_assert_int_eq(a.outcome, AUTH_BAD);
    ck_assert_uint_eq(stats().cached, 0);
}
END_TEST

START_TEST(test_cert_and_refresh)
{
    struct auth_options o = quick();
    struct user *alice, *bob, *svc, *u;

    start(&o);
    alice = auth_user_by_cert_cn(H.auth, "alice", 5);
    ck_assert_ptr_nonnull(alice);
    ck_assert_ptr_null(auth_user_by_cert_cn(H.auth, "alice.example.com", 17));
    ck_assert_ptr_null(auth_user_by_cert_cn(H.auth, "", 0));
    bob = auth_user_by_cert_cn(H.auth, "bob", 3);
    svc = auth_user_by_cert_cn(H.auth, "svc", 3);

    /* alice's password changes, bob keeps his with new permissions, svc goes. */
    {
        FILE *f = fopen(H.path, "w");
        fprintf(f, "[user alice]\npassword = %s\n[user bob]\npassword = %s\npublish = new.>\n",
                alice_hash2, bob_hash);
        fclose(f);
    }
    ck_assert_int_eq(auth_reload(H.auth, NULL, NULL), 0);
    ck_assert_ptr_null(auth_user_refresh(H.auth, alice));
    ck_assert_ptr_null(auth_user_refresh(H.auth, svc));
    u = auth_user_refresh(H.auth, bob);
    ck_assert_ptr_nonnull(u);
    ck_assert_ptr_ne(u, bob);
    ck_assert(acl_may_publish(user_acl(u), "new.x", 5));
    ck_assert(!acl_may_publish(user_acl(bob), "new.x", 5)); /* the old user is unchanged */
    user_unref(u);
    user_unref(alice);
    user_unref(bob);
    user_unref(svc);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc;

    tc = tcase_create("hello");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_password_and_token);
    tcase_add_loop_test(tc, test_refusals, 0, sizeof(refusals) / sizeof(refusals[0]));
    tcase_add_test(tc, test_nul_and_long_secrets);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_cache_hit_skips_pool);
    tcase_add_test(tc, test_cache_expires);
    tcase_add_test(tc, test_cache_bounded);
    tcase_add_test(tc, test_shared_check);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_free_with_requests);
    suite_add_tcase(s, tc);

    tc = tcase_create("delay");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_delay_grows_and_caps);
    tcase_add_test(tc, test_delay_default_cap_is_one_second);
    tcase_add_test(tc, test_delay_keys);
    tcase_add_test(tc, test_delay_forgotten);
    tcase_add_test(tc, test_delay_table_bounded);
    suite_add_tcase(s, tc);

    tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 2 * DEADLINE_S);
    tcase_add_test(tc, test_reload_good_and_bad);
    tcase_add_test(tc, test_start_fails_on_bad_file);
    tcase_add_test(tc, test_reload_and_cache);
    tcase_add_test(tc, test_reload_during_check);
    tcase_add_test(tc, test_cert_and_refresh);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    int failed;

    hashes_init();
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
