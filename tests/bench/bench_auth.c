/*
 * bench_auth.c - what authentication and permissions cost, for
 * docs/security.md:
 *
 *   one password check with crypt_r: yescrypt at libxcrypt's default cost
 *   (what `pigeon passwd` makes) and bcrypt at cost 10, in ms;
 *   a login answered from the cache, through auth_hello and the event loop
 *   to its callback, in µs;
 *   acl_may_publish with 20 allow and 20 deny patterns, uncached and through
 *   a connection's decision cache, in ns.
 *
 * Run: meson test -C build --benchmark bench_auth --verbose
 *  or: ./build/tests/bench_auth
 * It asserts nothing; it prints one line per figure.
 */
#include <crypt.h>
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

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_auth: %s\n", what);
    exit(1);
}

static void make_hash(const char *prefix, unsigned long cost, const char *pw, char *out)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    const char *h;

    memset(&cd, 0, sizeof(cd));
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting)) == NULL ||
        (h = crypt_r(pw, setting, &cd)) == NULL || h[0] == '*')
        die("cannot hash");
    strcpy(out, h);
}

/* ms per crypt_r check of HASH, over N checks. */
static double check_ms(const char *hash, const char *pw, int n)
{
    static struct crypt_data cd;
    double t0 = now_s();

    for (int i = 0; i < n; i++) {
        memset(&cd, 0, sizeof(cd));
        if (strcmp(crypt_r(pw, hash, &cd), hash) != 0)
            die("a check failed");
    }
    return (now_s() - t0) * 1e3 / n;
}

/* ------------------------------------------------------ cached login ---- */

static int answered;

static void done_cb(struct user *user, enum auth_outcome outcome, void *arg)
{
    (void)arg;
    if (outcome != AUTH_OK)
        die("a login failed");
    user_unref(user);
    answered++;
}

static double cached_login_us(const char *yescrypt, int n)
{
    char dir[] = "/tmp/bench_auth.XXXXXX", path[64];
    struct event_base *base = event_base_new();
    struct logger lg;
    struct auth *a;
    struct config_error err;
    struct auth_creds c = {.user = "alice", .user_len = 5, .password = "pw", .password_len = 2};
    FILE *f;
    double t0, t;

    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/users.ini", dir);
    f = fopen(path, "w");
    fprintf(f, "[user alice]\npassword = %s\npublish = >\n", yescrypt);
    fclose(f);
    log_init(&lg, stderr, LOG_LEVEL_WARNING);
    if (auth_new(base, &lg, path, NULL, &a, &err) < 0)
        die(err.reason);
    auth_hello(a, NULL, 0, &c, done_cb, NULL); /* the one real check, remembered */
    while (answered < 1)
        event_base_loop(base, EVLOOP_ONCE);
    t0 = now_s();
    for (int i = 0; i < n; i++)
        auth_hello(a, NULL, 0, &c, done_cb, NULL);
    while (answered < n + 1)
        event_base_loop(base, EVLOOP_ONCE);
    t = now_s() - t0;
    auth_free(a);
    event_base_free(base);
    unlink(path);
    rmdir(dir);
    return t * 1e6 / n;
}

/* --------------------------------------------------------------- acl ---- */

#define TOPICS 64

static double publish_ns(const struct acl *acl, char topics[][64], struct acl_cache *cache, long n,
                         long *allowed)
{
    double t0 = now_s();
    long yes = 0;

    for (long i = 0; i < n; i++) {
        const char *t = topics[i % TOPICS];
        size_t len = strlen(t);
        yes += cache ? acl_cache_may_publish(cache, acl, t, len) : acl_may_publish(acl, t, len);
    }
    *allowed = yes;
    return (now_s() - t0) * 1e9 / (double)n;
}

static void bench_acl(void)
{
    struct acl *acl = acl_new();
    struct acl_cache cache;
    static char topics[TOPICS][64];
    char p[64], why[128];
    long n = 2000000, yes;
    double un, ca;

    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof(p), "svc%d.*.orders.>", i);
        if (acl_add(acl, ACL_PUBLISH, p, strlen(p), "alice", why, sizeof(why)) < 0)
            die(why);
        snprintf(p, sizeof(p), "svc%d.eu.orders.secret%d.>", i, i);
        if (acl_add(acl, ACL_PUBLISH_DENY, p, strlen(p), "alice", why, sizeof(why)) < 0)
            die(why);
    }
    for (int i = 0; i < TOPICS; i++)
        snprintf(topics[i], sizeof(topics[i]), "svc%d.%s.orders.%s%d.new", i % 25,
                 i % 2 ? "eu" : "us", i % 3 ? "item" : "secret", i % 20);
    acl_cache_init(&cache);
    un = publish_ns(acl, topics, NULL, n, &yes);
    printf("acl_may_publish, 20 allow + 20 deny, uncached: %.0f ns (%ld of %ld allowed)\n", un, yes,
           n);
    ca = publish_ns(acl, topics, &cache, n, &yes);
    printf("acl_may_publish, 20 allow + 20 deny, cached:   %.0f ns (%ld of %ld allowed)\n", ca, yes,
           n);
    acl_cache_fini(&cache);
    acl_free(acl);
}

int main(void)
{
    char y[CRYPT_OUTPUT_SIZE], b[CRYPT_OUTPUT_SIZE];

    make_hash("$y$", 0, "pw", y);
    make_hash("$2b$", 10, "pw", b);
    printf("yescrypt check (%.*s, default cost): %.1f ms\n", 7, y, check_ms(y, "pw", 20));
    printf("bcrypt check ($2b$10$): %.1f ms\n", check_ms(b, "pw", 10));
    printf("cached login, hello to callback: %.1f us\n", cached_login_us(y, 100000));
    bench_acl();
    return 0;
}
