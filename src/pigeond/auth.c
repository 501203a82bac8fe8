/*
 * auth.c - the authenticator: the policy, the login cache, shared checks,
 * failure delays, and the requests that tie them together (see auth.h).
 *
 * A request (struct auth_req) lives from auth_hello until its callback has
 * run or it is cancelled, on the authenticator's list of live requests.
 * It is decided in one of three ways:
 *
 *   inline     a token, a cache hit, or credentials refused on their face:
 *              the outcome is set and the request's timer armed at once
 *              (0 ms for a success, the address's delay for a failure);
 *   a check    it joins a flight: one hash check on the pool, shared by
 *              every request with the same cache key (user + HMAC of the
 *              password) while it runs.  When the pool answers, each waiter
 *              is decided as above, and a success is remembered;
 *   a dummy    an unknown user (or a password for a token user) gets a
 *              flight of its own that checks a dummy hash, so its failure
 *              costs what a wrong password's does.
 *
 * So the callback always runs from a timer, never from within auth_hello or
 * a pool callback, and cancelling needs to undo at most a flight membership
 * (the last waiter of a flight cancels its pool check) and a timer.
 *
 * A flight remembers the user whose hash it checks.  Should the policy be
 * swapped while it runs, its success counts only if the current policy's
 * user of that name has the same hash: a password changed by the reload is
 * never accepted on the strength of the old one.
 *
 * The login cache and the failure table are each an hmap plus an LRU list,
 * both bounded by a count fixed at start; entries hold their own key bytes
 * (the hmap borrows them).
 */
#include "auth.h"

#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "authpool.h"
#include "hmap.h"
#include "log.h"
#include "users.h"
#include "xalloc.h"

_Static_assert(AUTH_PASSWORD_MAX == CRYPT_MAX_PASSPHRASE_SIZE - 1, "crypt's passphrase limit");

#define HMAC_BYTES      32
#define CACHE_KEY_MAX   (1 + USERS_NAME_MAX + HMAC_BYTES)
#define ADDR_KEY_MAX    9 /* family byte + an IPv4 address or an IPv6 /64 */
#define DELAY_SHIFT_MAX 20

/* ------------------------------------------------------------ types ---- */

struct flight;

struct auth_req {
    struct auth *a;
    TAILQ_ENTRY(auth_req) link;      /* on a->reqs */
    TAILQ_ENTRY(auth_req) wait_link; /* on flight->waiters, while it waits */
    struct flight *flight;           /* the check it waits for, or NULL */
    struct event *timer;             /* armed once decided; owned */
    enum auth_outcome outcome;
    struct user *user; /* a reference on AUTH_OK, handed to the callback */
    auth_done_fn fn;
    void *arg;
    uint8_t addr_len;
    unsigned char addr[ADDR_KEY_MAX];
};

TAILQ_HEAD(req_list, auth_req);

/* One hash check on the pool, and the requests waiting for it. */
struct flight {
    TAILQ_ENTRY(flight) link; /* on a->flights */
    struct auth *a;
    struct authpool_req *preq; /* owned by the pool until it answers */
    struct user *user;         /* a reference: whose hash; NULL for a dummy check */
    struct req_list waiters;
    bool shared; /* in a->inflight under KEY */
    uint8_t key_len;
    unsigned char key[CACHE_KEY_MAX];
};

/* A remembered login. */
struct cached {
    TAILQ_ENTRY(cached) lru; /* most recently used first */
    struct user *user;       /* a reference: the user the password was checked against */
    uint64_t expires_ms;
    uint8_t key_len;
    unsigned char key[CACHE_KEY_MAX];
};

/* An address with failures counted. */
struct failed_addr {
    TAILQ_ENTRY(failed_addr) lru; /* most recent failure first */
    uint32_t count;
    uint64_t last_ms;
    uint8_t key_len;
    unsigned char key[ADDR_KEY_MAX];
};

struct auth {
    struct event_base *base; /* borrowed */
    struct logger *log;      /* borrowed */
    struct auth_options opts;
    struct users *users; /* a reference: the current policy */
    char *path;          /* owned: the users file loaded last */
    struct authpool *pool;
    unsigned char hmac_key[HMAC_BYTES];
    char dummy_hash[CRYPT_OUTPUT_SIZE];
    struct req_list reqs;
    TAILQ_HEAD(, flight) flights;
    struct hmap inflight; /* cache key -> shared flight */
    struct hmap cache;    /* cache key -> struct cached */
    TAILQ_HEAD(cached_list, cached) cache_lru;
    struct hmap fails; /* address key -> struct failed_addr */
    TAILQ_HEAD(failed_list, failed_addr) fails_lru;
    struct auth_stats st;
};

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void flight_done_cb(bool ok, void *arg);

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *auth_outcome_name(enum auth_outcome o)
{
    switch (o) {
    case AUTH_OK:
        return "ok";
    case AUTH_BAD:
        return "bad credentials";
    case AUTH_BOTH:
        return "both a password and a token";
    case AUTH_MISSING:
        return "missing credentials";
    case AUTH_BUSY:
        return "too many logins being checked";
    }
    return "unknown";
}

void auth_options_default(struct auth_options *o)
{
    o->threads = 0;
    o->max_pending = 1024;
    o->cache_ttl_ms = 5 * 60 * 1000;
    o->cache_max = 4096;
    o->delay_base_ms = 50;
    o->delay_max_ms = 1000;
    o->delay_forget_ms = 60 * 1000;
    o->delay_slots = 4096;
}

/* ------------------------------------------------------ failure delays ---- */

/* The key failures from PEER are counted under: family, then the address (IPv6: its /64). */
static uint8_t addr_key(const struct sockaddr *peer, socklen_t len, unsigned char *key)
{
    if (peer != NULL && peer->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
        return 5;
    }
    if (peer != NULL && peer->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            key[0] = 4;
            memcpy(key + 1, a6->s6_addr + 12, 4);
            return 5;
        }
        key[0] = 6;
        memcpy(key + 1, a6->s6_addr, 8);
        return 9;
    }
    key[0] = 0; /* a local peer (Unix socket): one address for all */
    return 1;
}

/* The delay of an address's COUNT-th failure. */
static uint32_t delay_of(const struct auth *a, uint32_t count)
{
    uint32_t shift = count > 1 ? count - 1 : 0;
    uint64_t d;

    if (shift > DELAY_SHIFT_MAX)
        shift = DELAY_SHIFT_MAX;
    d = (uint64_t)a->opts.delay_base_ms << shift;
    return d > a->opts.delay_max_ms ? a->opts.delay_max_ms : (uint32_t)d;
}

/* The failures counted for KEY now (0 when none, or forgotten). */
static uint32_t fail_count(const struct auth *a, const struct failed_addr *f, uint64_t now)
{
    if (f == NULL || now - f->last_ms >= a->opts.delay_forget_ms)
        return 0;
    return f->count;
}

static void fail_evict_oldest(struct auth *a)
{
    struct failed_addr *f = TAILQ_LAST(&a->fails_lru, failed_list);

    TAILQ_REMOVE(&a->fails_lru, f, lru);
    hmap_remove(&a->fails, f->key, f->key_len);
    free(f);
}

/* Counts a failure from the address KEY; returns how long its answer waits. */
static uint32_t fail_record(struct auth *a, const unsigned char *key, uint8_t len)
{
    struct failed_addr *f = hmap_get(&a->fails, key, len);
    uint64_t now = now_ms();

    if (a->opts.delay_slots == 0)
        return 0;
    if (f == NULL) {
        if (hmap_count(&a->fails) >= a->opts.delay_slots)
            fail_evict_oldest(a);
        f = xcalloc(1, sizeof(*f));
        memcpy(f->key, key, len);
        f->key_len = len;
        hmap_put(&a->fails, f->key, len, f);
    } else {
        TAILQ_REMOVE(&a->fails_lru, f, lru);
    }
    TAILQ_INSERT_HEAD(&a->fails_lru, f, lru);
    f->count = fail_count(a, f, now);
    if (f->count < UINT32_MAX)
        f->count++;
    f->last_ms = now;
    return delay_of(a, f->count);
}

uint32_t auth_failure_delay(struct auth *a, const struct sockaddr *peer, socklen_t peer_len)
{
    unsigned char key[ADDR_KEY_MAX];
    uint8_t len = addr_key(peer, peer_len, key);

    if (a->opts.delay_slots == 0)
        return 0;
    return delay_of(a, fail_count(a, hmap_get(&a->fails, key, len), now_ms()) + 1);
}

/* -------------------------------------------------------- login cache ---- */

/* The cache key of NAME and PASSWORD: name length, name, HMAC-SHA256(key, password). */
static uint8_t cache_key(const struct auth *a, const char *name, size_t nlen, const char *pw,
                         size_t pwlen, unsigned char *key)
{
    unsigned int n = 0;

    key[0] = (unsigned char)nlen;
    memcpy(key + 1, name, nlen);
    if (HMAC(EVP_sha256(), a->hmac_key, sizeof(a->hmac_key), (const unsigned char *)pw, pwlen,
             key + 1 + nlen, &n) == NULL ||
        n != HMAC_BYTES)
        abort(); /* HMAC of bytes in memory cannot fail */
    return (uint8_t)(1 + nlen + HMAC_BYTES);
}

static void cached_drop(struct auth *a, struct cached *c)
{
    TAILQ_REMOVE(&a->cache_lru, c, lru);
    hmap_remove(&a->cache, c->key, c->key_len);
    user_unref(c->user);
    free(c);
}

/* The user KEY logs in as from the cache (borrowed), or NULL.  USER: the policy's user now. */
static struct user *cache_get(struct auth *a, const unsigned char *key, uint8_t len,
                              const struct user *user)
{
    struct cached *c = hmap_get(&a->cache, key, len);

    if (c == NULL)
        return NULL;
    if (now_ms() >= c->expires_ms || c->user != user) {
        cached_drop(a, c);
        return NULL;
    }
    TAILQ_REMOVE(&a->cache_lru, c, lru);
    TAILQ_INSERT_HEAD(&a->cache_lru, c, lru);
    return c->user;
}

static void cache_put(struct auth *a, const unsigned char *key, uint8_t len, struct user *user)
{
    struct cached *c = hmap_get(&a->cache, key, len);

    if (a->opts.cache_ttl_ms == 0 || a->opts.cache_max == 0)
        return;
    if (c != NULL)
        cached_drop(a, c);
    if (hmap_count(&a->cache) >= a->opts.cache_max)
        cached_drop(a, TAILQ_LAST(&a->cache_lru, cached_list));
    c = xcalloc(1, sizeof(*c));
    memcpy(c->key, key, len);
    c->key_len = len;
    c->user = user_ref(user);
    c->expires_ms = now_ms() + a->opts.cache_ttl_ms;
    hmap_put(&a->cache, c->key, len, c);
    TAILQ_INSERT_HEAD(&a->cache_lru, c, lru);
}

/* After a swap to NEW: entries follow their user into NEW when its credential is the same. */
static void cache_rebind(struct auth *a, const struct users *new)
{
    struct cached *c, *next;

    for (c = TAILQ_FIRST(&a->cache_lru); c != NULL; c = next) {
        const char *name = user_name(c->user);
        struct user *u = users_find(new, name, strlen(name));
        next = TAILQ_NEXT(c, lru);
        if (u == NULL || !user_same_credentials(u, c->user)) {
            cached_drop(a, c);
            continue;
        }
        user_unref(c->user);
        c->user = user_ref(u);
    }
}

/* ------------------------------------------------------------ requests ---- */

static struct auth_req *req_new(struct auth *a, const struct sockaddr *peer, socklen_t peer_len,
                                auth_done_fn fn, void *arg)
{
    struct auth_req *r = xcalloc(1, sizeof(*r));

    r->a = a;
    r->fn = fn;
    r->arg = arg;
    r->addr_len = addr_key(peer, peer_len, r->addr);
    TAILQ_INSERT_TAIL(&a->reqs, r, link);
    return r;
}

static void req_free(struct auth_req *r)
{
    TAILQ_REMOVE(&r->a->reqs, r, link);
    if (r->timer != NULL)
        event_free(r->timer);
    user_unref(r->user);
    free(r);
}

/*
 * Decides R: OUTCOME, with USER (a reference R takes over) on AUTH_OK.  Its
 * callback runs from a timer: at once, or after the delay a failure earns.
 */
static void req_decide(struct auth_req *r, enum auth_outcome outcome, struct user *user)
{
    struct auth *a = r->a;
    uint32_t delay = 0;
    struct timeval tv;

    r->outcome = outcome;
    r->user = user;
    if (outcome != AUTH_OK && outcome != AUTH_BUSY)
        delay = fail_record(a, r->addr, r->addr_len);
    r->timer = evtimer_new(a->base, timer_cb, r);
    if (r->timer == NULL)
        abort(); /* an allocation: the out-of-memory policy */
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
    evtimer_add(r->timer, &tv);
}

/* R's answer is due: R is freed, then its callback gets the outcome (and the user). */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct auth_req *r = arg;
    struct auth *a = r->a;
    struct user *user = r->user;
    enum auth_outcome outcome = r->outcome;
    auth_done_fn fn = r->fn;
    void *fn_arg = r->arg;

    (void)fd;
    (void)what;
    if (outcome == AUTH_OK)
        a->st.ok++;
    else if (outcome == AUTH_BUSY)
        a->st.busy++;
    else
        a->st.failed++;
    r->user = NULL; /* handed to the callback */
    req_free(r);    /* first: the callback may cancel other requests or start new ones */
    fn(user, outcome, fn_arg);
}

/* ------------------------------------------------------------- flights ---- */

static void flight_free(struct auth *a, struct flight *f)
{
    TAILQ_REMOVE(&a->flights, f, link);
    if (f->shared)
        hmap_remove(&a->inflight, f->key, f->key_len);
    user_unref(f->user);
    free(f);
}

/*
 * Starts a check of PASSWORD against HASH for R: a flight shared under KEY
 * (KEY_LEN bytes) when USER is not NULL, else a dummy one of R's own.
 */
static void flight_start(struct auth *a, struct auth_req *r, struct user *user, const char *hash,
                         const unsigned char *key, uint8_t key_len, const char *password,
                         size_t len)
{
    struct flight *f = xcalloc(1, sizeof(*f));

    f->a = a;
    TAILQ_INIT(&f->waiters);
    TAILQ_INSERT_TAIL(&a->flights, f, link);
    f->preq = authpool_verify(a->pool, hash, password, len, flight_done_cb, f);
    if (f->preq == NULL) {
        flight_free(a, f);
        req_decide(r, AUTH_BUSY, NULL);
        return;
    }
    a->st.checks++;
    if (user != NULL) {
        f->user = user_ref(user);
        memcpy(f->key, key, key_len);
        f->key_len = key_len;
        f->shared = true;
        hmap_put(&a->inflight, f->key, key_len, f);
    }
    TAILQ_INSERT_TAIL(&f->waiters, r, wait_link);
    r->flight = f;
}

/* The pool's answer for flight ARG: decide every waiter. */
static void flight_done_cb(bool ok, void *arg)
{
    struct flight *f = arg;
    struct auth *a = f->a;
    struct user *cur = NULL;
    struct auth_req *r;

    f->preq = NULL;
    if (ok && f->user != NULL) {
        const char *name = user_name(f->user);
        cur = users_find(a->users, name, strlen(name));
        if (cur != NULL && !user_same_credentials(cur, f->user))
            cur = NULL; /* the password changed while it was checked */
    }
    if (cur != NULL)
        cache_put(a, f->key, f->key_len, cur);
    while ((r = TAILQ_FIRST(&f->waiters)) != NULL) {
        TAILQ_REMOVE(&f->waiters, r, wait_link);
        r->flight = NULL;
        req_decide(r, cur != NULL ? AUTH_OK : AUTH_BAD, cur != NULL ? user_ref(cur) : NULL);
    }
    flight_free(a, f);
}

/* R leaves its flight; the last to leave cancels the check. */
static void flight_leave(struct auth *a, struct auth_req *r)
{
    struct flight *f = r->flight;

    TAILQ_REMOVE(&f->waiters, r, wait_link);
    r->flight = NULL;
    if (!TAILQ_EMPTY(&f->waiters))
        return;
    authpool_cancel(a->pool, f->preq);
    flight_free(a, f);
}

/* ---------------------------------------------------------------- hello ---- */

/* A user and password: from the cache, a flight under way, or a new check. */
static void hello_password(struct auth *a, struct auth_req *r, const struct auth_creds *c)
{
    struct user *u = users_find(a->users, c->user, c->user_len);
    unsigned char key[CACHE_KEY_MAX];
    uint8_t key_len;
    struct user *hit;
    struct flight *f;

    if (u == NULL || user_password_hash(u) == NULL) {
        flight_start(a, r, NULL, a->dummy_hash, NULL, 0, c->password, c->password_len);
        return;
    }
    key_len = cache_key(a, c->user, c->user_len, c->password, c->password_len, key);
    hit = cache_get(a, key, key_len, u);
    if (hit != NULL) {
        a->st.cache_hits++;
        req_decide(r, AUTH_OK, user_ref(hit));
        return;
    }
    f = hmap_get(&a->inflight, key, key_len);
    if (f != NULL) {
        a->st.shared++;
        TAILQ_INSERT_TAIL(&f->waiters, r, wait_link);
        r->flight = f;
        return;
    }
    flight_start(a, r, u, user_password_hash(u), key, key_len, c->password, c->password_len);
}

struct auth_req *auth_hello(struct auth *a, const struct sockaddr *peer, socklen_t peer_len,
                            const struct auth_creds *c, auth_done_fn fn, void *arg)
{
    struct auth_req *r = req_new(a, peer, peer_len, fn, arg);
    bool has_user = c->user != NULL, has_pw = c->password != NULL;

    if (c->token != NULL && (has_user || has_pw)) {
        req_decide(r, AUTH_BOTH, NULL);
    } else if (c->token != NULL) {
        struct user *u = c->token_len <= AUTH_TOKEN_MAX
                             ? users_find_token(a->users, c->token, c->token_len)
                             : NULL;
        req_decide(r, u != NULL ? AUTH_OK : AUTH_BAD, u != NULL ? user_ref(u) : NULL);
    } else if (!has_user || !has_pw || c->user_len == 0) {
        req_decide(r, AUTH_MISSING, NULL);
    } else if (c->password_len > AUTH_PASSWORD_MAX || c->user_len > USERS_NAME_MAX ||
               memchr(c->password, '\0', c->password_len) != NULL) {
        /* crypt(3) would stop at a NUL byte: "pw\0anything" must not pass as "pw". */
        req_decide(r, AUTH_BAD, NULL);
    } else {
        hello_password(a, r, c);
    }
    return r;
}

void auth_cancel(struct auth *a, struct auth_req *r)
{
    if (r->flight != NULL)
        flight_leave(a, r);
    req_free(r);
}

/* ------------------------------------------------------------ policy ---- */

struct users *auth_users(const struct auth *a)
{
    return a->users;
}

struct user *auth_user_by_cert_cn(struct auth *a, const char *cn, size_t len)
{
    struct user *u = users_find(a->users, cn, len);

    return u != NULL ? user_ref(u) : NULL;
}

struct user *auth_user_refresh(struct auth *a, const struct user *user)
{
    const char *name = user_name(user);
    struct user *u = users_find(a->users, name, strlen(name));

    return u != NULL && user_same_credentials(u, user) ? user_ref(u) : NULL;
}

static void log_users_error(struct auth *a, const struct config_error *err, const char *what)
{
    if (err->line > 0)
        log_error(a->log, "users: %s:%d: %s%s", err->file, err->line, err->reason, what);
    else
        log_error(a->log, "users: %s: %s%s", err->file, err->reason, what);
}

int auth_reload(struct auth *a, const char *path, struct config_error *err)
{
    struct config_error scratch;
    struct users *next = NULL;
    char what[96];
    char *p;

    if (err == NULL)
        err = &scratch;
    if (path == NULL)
        path = a->path;
    if (users_load(path, &next, err) < 0) {
        a->st.reload_failures++;
        snprintf(what, sizeof(what), "; keeping the previous %zu users", users_count(a->users));
        log_users_error(a, err, what);
        return -1;
    }
    cache_rebind(a, next);
    users_unref(a->users);
    a->users = next;
    p = xstrdup(path); /* PATH may be a->path */
    free(a->path);
    a->path = p;
    a->st.reloads++;
    log_notice(a->log, "users: loaded %zu users from %s", users_count(next), a->path);
    return 0;
}

/* ------------------------------------------------------------ set-up ---- */

/* A yescrypt hash of a random password nobody knows, for unknown users' checks. */
static int dummy_hash_make(char *out, unsigned char *secret, size_t len)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE], pw[2 * HMAC_BYTES + 1];
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *h;
    int rc = -1;

    for (size_t i = 0; i < len && 2 * i + 2 < sizeof(pw); i++)
        snprintf(pw + 2 * i, 3, "%02x", secret[i]);
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) != NULL &&
        (h = crypt_r(pw, setting, cd)) != NULL && h[0] != '*') {
        snprintf(out, CRYPT_OUTPUT_SIZE, "%s", h);
        rc = 0;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return rc;
}

static int random_fill(unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int auth_start(struct auth *a, struct config_error *err)
{
    unsigned char pw[HMAC_BYTES];
    const char *why = NULL;
    int rc;

    if (random_fill(a->hmac_key, sizeof(a->hmac_key)) < 0 || random_fill(pw, sizeof(pw)) < 0) {
        snprintf(err->reason, sizeof(err->reason), "cannot read random bytes");
        return -1;
    }
    rc = dummy_hash_make(a->dummy_hash, pw, sizeof(pw));
    OPENSSL_cleanse(pw, sizeof(pw));
    if (rc < 0) {
        snprintf(err->reason, sizeof(err->reason), "cannot make a yescrypt hash");
        return -1;
    }
    if (authpool_new(a->base, a->opts.threads ? a->opts.threads : authpool_default_threads(),
                     a->opts.max_pending, &a->pool, &why) < 0) {
        snprintf(err->reason, sizeof(err->reason), "%s", why);
        return -1;
    }
    return 0;
}

int auth_new(struct event_base *base, struct logger *log, const char *users_path,
             const struct auth_options *opts, struct auth **out, struct config_error *err)
{
    struct config_error scratch;
    struct auth *a = xcalloc(1, sizeof(*a));

    if (err == NULL)
        err = &scratch;
    a->base = base;
    a->log = log;
    if (opts != NULL)
        a->opts = *opts;
    else
        auth_options_default(&a->opts);
    TAILQ_INIT(&a->reqs);
    TAILQ_INIT(&a->flights);
    TAILQ_INIT(&a->cache_lru);
    TAILQ_INIT(&a->fails_lru);
    if (users_load(users_path, &a->users, err) < 0 || auth_start(a, err) < 0) {
        auth_free(a);
        return -1;
    }
    a->path = xstrdup(users_path);
    *out = a;
    return 0;
}

void auth_free(struct auth *a)
{
    struct auth_req *r;

    if (a == NULL)
        return;
    /* The last waiter of each flight cancels its check: no flight outlives its waiters. */
    while ((r = TAILQ_FIRST(&a->reqs)) != NULL)
        auth_cancel(a, r);
    authpool_free(a->pool);
    while (!TAILQ_EMPTY(&a->cache_lru))
        cached_drop(a, TAILQ_FIRST(&a->cache_lru));
    while (!TAILQ_EMPTY(&a->fails_lru))
        fail_evict_oldest(a);
    hmap_release(&a->inflight);
    hmap_release(&a->cache);
    hmap_release(&a->fails);
    users_unref(a->users);
    OPENSSL_cleanse(a->hmac_key, sizeof(a->hmac_key));
    free(a->path);
    free(a);
}

void auth_get_stats(const struct auth *a, struct auth_stats *out)
{
    *out = a->st;
    out->cached = hmap_count(&a->cache);
    out->addresses = hmap_count(&a->fails);
}
