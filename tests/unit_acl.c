/*
 * unit_acl.c - compiled permissions: publish and receive decisions, the '$'
 * rule, "%u", bad patterns, the subscription rules (covers, overlaps) on the
 * examples of acl.c, the same rules checked exhaustively on a small alphabet
 * against brute force (every topic of up to four tokens), a property test of
 * a million random decisions against a brute-force reference, and the
 * per-connection decision cache (hits, eviction, a replaced acl).
 *
 * The brute-force references: a publish or receive decision is
 * topic_matches over every pattern of the lists; a subscription decision
 * uses ref_covers and ref_overlaps below, a pattern pair at a time, which
 * the exhaustive test first proves equal to "every topic / some topic" over
 * an enumeration of topics.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "topic.h"

/* Fail-only assertion for hot loops (a passing ck_assert writes to a pipe). */
#define require(expr)                                                                              \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

static void add(struct acl *acl, enum acl_list list, const char *pattern)
{
    char why[128] = "";
    int rc = acl_add(acl, list, pattern, strlen(pattern), "alice", why, sizeof(why));

    ck_assert_msg(rc == 0, "acl_add('%s'): %s", pattern, why);
}

static bool may_pub(const struct acl *acl, const char *topic)
{
    ck_assert_int_eq(topic_check(topic, strlen(topic), TOPIC_PUBLISH), TOPIC_OK);
    return acl_may_publish(acl, topic, strlen(topic));
}

static bool may_recv(const struct acl *acl, const char *topic)
{
    return acl_may_receive(acl, topic, strlen(topic));
}

static enum acl_sub check_sub(const struct acl *acl, const char *pattern)
{
    ck_assert_int_eq(topic_check(pattern, strlen(pattern), TOPIC_PATTERN), TOPIC_OK);
    return acl_check_subscribe(acl, pattern, strlen(pattern));
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ------------------------------------------------------ references ---- */

struct toks {
    struct topic_token t[TOPIC_MAX_TOKENS];
    size_t n;
};

static void toks_of(const char *s, struct toks *out)
{
    out->n = topic_tokenize(s, strlen(s), out->t);
}

static bool tok_is(const struct topic_token *t, char c)
{
    return t->len == 1 && t->p[0] == c;
}

static bool tok_same(const struct topic_token *a, const struct topic_token *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

static bool tok_dollar(const struct topic_token *t)
{
    return t->p[0] == '$';
}

/* acl.c's COVERS, written out token by token. */
static bool ref_covers(const char *a, const char *p)
{
    struct toks A, P;

    toks_of(a, &A);
    toks_of(p, &P);
    for (size_t i = 0;; i++) {
        if (i == A.n)
            return i == P.n;
        if (tok_is(&A.t[i], '>'))
            return i < P.n && !(i == 0 && tok_dollar(&P.t[0]));
        if (i == P.n)
            return false;
        if (tok_is(&A.t[i], '*')) {
            if (tok_is(&P.t[i], '>') || (i == 0 && tok_dollar(&P.t[0])))
                return false;
        } else if (!tok_same(&A.t[i], &P.t[i])) {
            return false;
        }
    }
}

/* acl.c's OVERLAPS, written out token by token. */
static bool ref_overlaps(const char *a, const char *b)
{
    struct toks A, B;

    toks_of(a, &A);
    toks_of(b, &B);
    for (size_t i = 0;; i++) {
        bool ag, bg, as, bs;
        if (i == A.n || i == B.n)
            return i == A.n && i == B.n;
        ag = tok_is(&A.t[i], '>');
        bg = tok_is(&B.t[i], '>');
        if (ag || bg)
            return !(i == 0 && ((ag && tok_dollar(&B.t[0])) || (bg && tok_dollar(&A.t[0]))));
        as = tok_is(&A.t[i], '*');
        bs = tok_is(&B.t[i], '*');
        if (as && bs)
            continue;
        if (as || bs) {
            if (i == 0 && tok_dollar(as ? &B.t[0] : &A.t[0]))
                return false;
            continue;
        }
        if (!tok_same(&A.t[i], &B.t[i]))
            return false;
    }
}

static bool matches(const char *p, const char *t)
{
    return topic_matches(p, strlen(p), t, strlen(t));
}

/* -------------------------------------------------------- publish ---- */

START_TEST(test_empty_acl_allows_nothing)
{
    struct acl *acl = acl_new();

    ck_assert(!may_pub(acl, "a"));
    ck_assert(!may_recv(acl, "a"));
    ck_assert(!acl_may_reply_to(acl, "a", 1));
    ck_assert_int_eq(check_sub(acl, "a"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, ">"), ACL_SUB_DENIED);
    acl_free(acl);
}
END_TEST

START_TEST(test_publish_allow_and_deny)
{
    struct acl *acl = acl_new();

    add(acl, ACL_PUBLISH, "orders.>");
    add(acl, ACL_PUBLISH, "_INBOX.>");
    add(acl, ACL_PUBLISH_DENY, "orders.admin.>");
    add(acl, ACL_PUBLISH_DENY, "orders.*.secret");
    ck_assert(may_pub(acl, "orders.eu"));
    ck_assert(may_pub(acl, "orders.eu.new"));
    ck_assert(may_pub(acl, "_INBOX.x.y"));
    ck_assert(!may_pub(acl, "orders"));
    ck_assert(!may_pub(acl, "orders.admin.x"));
    ck_assert(may_pub(acl, "orders.admin")); /* '>' needs one more token */
    ck_assert(!may_pub(acl, "orders.eu.secret"));
    ck_assert(may_pub(acl, "orders.eu.secret.x"));
    ck_assert(!may_pub(acl, "metrics.cpu"));
    ck_assert_uint_eq(acl_count(acl, ACL_PUBLISH), 2);
    ck_assert_uint_eq(acl_count(acl, ACL_PUBLISH_DENY), 2);
    /* Publish lists say nothing about receiving. */
    ck_assert(!may_recv(acl, "orders.eu"));
    acl_free(acl);
}
END_TEST

START_TEST(test_system_topics_by_name_only)
{
    struct acl *acl = acl_new();

    add(acl, ACL_PUBLISH, ">");
    add(acl, ACL_PUBLISH, "*.x");
    ck_assert(may_pub(acl, "a.b"));
    ck_assert(may_pub(acl, "a.x"));
    ck_assert(!may_pub(acl, "$SYS.x"));
    ck_assert(!may_pub(acl, "$SYS"));
    add(acl, ACL_PUBLISH, "$SYS.>");
    ck_assert(may_pub(acl, "$SYS.x"));
    ck_assert(!may_pub(acl, "$SYS"));
    ck_assert(!may_pub(acl, "$OTHER.x"));
    /* The rule is about the first token only. */
    ck_assert(may_pub(acl, "a.$b"));
    /* A wildcard deny does not reach '$' topics either; a named one does. */
    add(acl, ACL_PUBLISH_DENY, ">");
    ck_assert(!may_pub(acl, "a.b"));
    ck_assert(may_pub(acl, "$SYS.x"));
    add(acl, ACL_PUBLISH_DENY, "$SYS.*");
    ck_assert(!may_pub(acl, "$SYS.x"));
    acl_free(acl);
}
END_TEST

START_TEST(test_user_token)
{
    struct acl *acl = acl_new();
    char why[128];

    ck_assert_int_eq(acl_add(acl, ACL_SUBSCRIBE, "_INBOX.%u.>", 11, "bob-7", why, sizeof(why)), 0);
    ck_assert_int_eq(acl_add(acl, ACL_PUBLISH, "%u", 2, "bob-7", why, sizeof(why)), 0);
    ck_assert(may_recv(acl, "_INBOX.bob-7.x"));
    ck_assert(!may_recv(acl, "_INBOX.alice.x"));
    ck_assert(!may_recv(acl, "_INBOX.%u.x"));
    ck_assert(may_pub(acl, "bob-7"));
    ck_assert(!may_pub(acl, "%u"));
    ck_assert_int_eq(check_sub(acl, "_INBOX.bob-7.*"), ACL_SUB_ALLOWED);
    ck_assert_int_eq(check_sub(acl, "_INBOX.*.>"), ACL_SUB_DENIED);
    acl_free(acl);
}
END_TEST

START_TEST(test_bad_patterns)
{
    static const struct {
        const char *pattern;
        const char *why; /* a part of the reason */
    } cases[] = {
        {"inbox_%u.>", "whole token"},
        {"a.%u%u", "whole token"},
        {"", "empty topic"},
        {"a..b", "empty token"},
        {"a.>.b", "'>' before the last token"},
        {"a*", "wildcard inside a token"},
        {"a b", "space"},
    };
    struct acl *acl = acl_new();
    char why[128];
    char longp[300];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why[0] = '\0';
        ck_assert_int_eq(acl_add(acl, ACL_PUBLISH, cases[i].pattern, strlen(cases[i].pattern),
                                 "alice", why, sizeof(why)),
                         -1);
        ck_assert_msg(strstr(why, cases[i].why) != NULL, "'%s': '%s'", cases[i].pattern, why);
    }
    /* 250 bytes with "%u" fit; with a 64-byte name in its place they do not. */
    memset(longp, 'x', 248);
    memcpy(longp + 248, ".%u", 4);
    ck_assert_int_eq(acl_add(acl, ACL_PUBLISH, longp, strlen(longp), "u", why, sizeof(why)), 0);
    ck_assert_int_eq(acl_add(acl, ACL_PUBLISH, longp, strlen(longp),
                             "a123456789b123456789c123456789d123456789e123456789f123456789abcd",
                             why, sizeof(why)),
                     -1);
    ck_assert_msg(strstr(why, "255") != NULL, "%s", why);
    ck_assert_uint_eq(acl_count(acl, ACL_PUBLISH), 1);
    acl_free(acl);
}
END_TEST

START_TEST(test_ids_unique)
{
    struct acl *a = acl_new(), *b = acl_new();

    ck_assert_uint_ne(acl_id(a), 0);
    ck_assert_uint_ne(acl_id(a), acl_id(b));
    acl_free(a);
    acl_free(b);
}
END_TEST

/* ------------------------------------------------------ subscribe ---- */

START_TEST(test_subscribe_examples)
{
    struct acl *acl = acl_new();

    add(acl, ACL_SUBSCRIBE, "orders.*.status");
    add(acl, ACL_SUBSCRIBE, "orders.>");
    add(acl, ACL_SUBSCRIBE, "_INBOX.%u.>");
    add(acl, ACL_SUBSCRIBE_DENY, "orders.secret.>");
    ck_assert_int_eq(check_sub(acl, "orders.eu.status"), ACL_SUB_ALLOWED);
    ck_assert_int_eq(check_sub(acl, "orders.*"), ACL_SUB_ALLOWED);
    ck_assert_int_eq(check_sub(acl, "orders.eu.>"), ACL_SUB_ALLOWED);
    /* orders.> overlaps the deny: covered, deliveries checked. */
    ck_assert_int_eq(check_sub(acl, "orders.>"), ACL_SUB_FILTERED);
    ck_assert_int_eq(check_sub(acl, "orders.*.>"), ACL_SUB_FILTERED);
    ck_assert_int_eq(check_sub(acl, "orders.secret.x"), ACL_SUB_FILTERED);
    ck_assert_int_eq(check_sub(acl, "*.*.*"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, "orders"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, ">"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, "_INBOX.alice.x"), ACL_SUB_ALLOWED);
    ck_assert(may_recv(acl, "orders.eu.status"));
    ck_assert(!may_recv(acl, "orders.secret.plans"));
    ck_assert(acl_may_reply_to(acl, "_INBOX.alice.1", 14));
    ck_assert(!acl_may_reply_to(acl, "_INBOX.bob.1", 12));
    acl_free(acl);
}
END_TEST

/* One allow pattern must cover the whole subscription; several together never do. */
START_TEST(test_subscribe_no_union)
{
    struct acl *acl = acl_new();

    add(acl, ACL_SUBSCRIBE, "orders.*");
    add(acl, ACL_SUBSCRIBE, "orders.*.*");
    add(acl, ACL_SUBSCRIBE, "a.b");
    add(acl, ACL_SUBSCRIBE, "a.c");
    ck_assert_int_eq(check_sub(acl, "orders.>"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, "a.*"), ACL_SUB_DENIED);
    ck_assert_int_eq(check_sub(acl, "orders.*.*"), ACL_SUB_ALLOWED);
    acl_free(acl);
}
END_TEST

START_TEST(test_subscribe_system_rule)
{
    struct acl *acl = acl_new();

    add(acl, ACL_SUBSCRIBE, ">");
    add(acl, ACL_SUBSCRIBE_DENY, "$SYS.secret");
    ck_assert_int_eq(check_sub(acl, "a.>"), ACL_SUB_ALLOWED);
    ck_assert_int_eq(check_sub(acl, "*"), ACL_SUB_ALLOWED); /* '*' first cannot reach $SYS */
    ck_assert_int_eq(check_sub(acl, "$SYS.>"), ACL_SUB_DENIED);
    add(acl, ACL_SUBSCRIBE, "$SYS.>");
    ck_assert_int_eq(check_sub(acl, "$SYS.>"), ACL_SUB_FILTERED);
    ck_assert_int_eq(check_sub(acl, "$SYS.broker.*"), ACL_SUB_ALLOWED);
    ck_assert_int_eq(check_sub(acl, ">"), ACL_SUB_ALLOWED);
    acl_free(acl);
}
END_TEST

/* ----------------------------------------------- exhaustive checks ---- */

#define SMALL_MAX 256

/* Every pattern of 1..3 tokens over {a, $a, *} with '>' allowed last. */
static size_t small_patterns(char out[][16])
{
    static const char *const mid[] = {"a", "$a", "*"};
    static const char *const last[] = {"a", "$a", "*", ">"};
    size_t n = 0;

    for (size_t len = 1; len <= 3; len++) {
        size_t combos = 4;
        for (size_t i = 1; i < len; i++)
            combos *= 3;
        for (size_t c = 0; c < combos; c++) {
            size_t v = c;
            out[n][0] = '\0';
            for (size_t i = 0; i < len; i++) {
                const char *t = i + 1 == len ? last[v % 4] : mid[v % 3];
                v /= i + 1 == len ? 4 : 3;
                if (i > 0)
                    strcat(out[n], ".");
                strcat(out[n], t);
            }
            n++;
        }
    }
    return n;
}

/* Every topic of 1..4 tokens over {a, b, $a}: enough witnesses for those patterns. */
static size_t small_topics(char out[][16])
{
    static const char *const toks[] = {"a", "b", "$a"};
    size_t n = 0;

    for (size_t len = 1; len <= 4; len++) {
        size_t combos = 1;
        for (size_t i = 0; i < len; i++)
            combos *= 3;
        for (size_t c = 0; c < combos; c++) {
            size_t v = c;
            out[n][0] = '\0';
            for (size_t i = 0; i < len; i++, v /= 3) {
                if (i > 0)
                    strcat(out[n], ".");
                strcat(out[n], toks[v % 3]);
            }
            n++;
        }
    }
    return n;
}

static bool brute_covers(const char *a, const char *p, char topics[][16], size_t nt)
{
    for (size_t i = 0; i < nt; i++)
        if (matches(p, topics[i]) && !matches(a, topics[i]))
            return false;
    return true;
}

static bool brute_overlaps(const char *a, const char *b, char topics[][16], size_t nt)
{
    for (size_t i = 0; i < nt; i++)
        if (matches(a, topics[i]) && matches(b, topics[i]))
            return true;
    return false;
}

/*
 * For every pair (A, P) of small patterns: ref_covers, ref_overlaps and an
 * acl with A as its only allow (or deny) pattern all agree with brute force.
 */
START_TEST(test_exhaustive_pairs)
{
    static char pats[SMALL_MAX][16], topics[SMALL_MAX][16];
    size_t np = small_patterns(pats), nt = small_topics(topics);
    size_t n_cover = 0, n_overlap = 0;

    ck_assert_uint_eq(np, 4 + 12 + 36);
    ck_assert_uint_eq(nt, 3 + 9 + 27 + 81);
    for (size_t i = 0; i < np; i++) {
        struct acl *acl = acl_new();
        add(acl, ACL_SUBSCRIBE, pats[i]);
        add(acl, ACL_SUBSCRIBE_DENY, pats[i]);
        for (size_t j = 0; j < np; j++) {
            bool cov = brute_covers(pats[i], pats[j], topics, nt);
            bool ovl = brute_overlaps(pats[i], pats[j], topics, nt);
            enum acl_sub d = acl_check_subscribe(acl, pats[j], strlen(pats[j]));
            ck_assert_msg(ref_covers(pats[i], pats[j]) == cov, "ref covers(%s, %s) != %d", pats[i],
                          pats[j], cov);
            ck_assert_msg(ref_overlaps(pats[i], pats[j]) == ovl, "ref overlaps(%s, %s) != %d",
                          pats[i], pats[j], ovl);
            /* Covered by the allow means overlapping the same deny: FILTERED. */
            ck_assert_msg(d == (cov ? ACL_SUB_FILTERED : ACL_SUB_DENIED),
                          "allow %s, sub %s: %s, brute covers %d", pats[i], pats[j],
                          acl_sub_name(d), cov);
            n_cover += cov;
            n_overlap += ovl;
        }
        acl_free(acl);
    }
    /* Overlap alone, without covering: an allow of '>' and a deny of each pattern. */
    for (size_t i = 0; i < np; i++) {
        struct acl *acl = acl_new();
        add(acl, ACL_SUBSCRIBE, ">");
        add(acl, ACL_SUBSCRIBE, "$a.>");
        add(acl, ACL_SUBSCRIBE, "$a");
        add(acl, ACL_SUBSCRIBE_DENY, pats[i]);
        for (size_t j = 0; j < np; j++) {
            bool ovl = brute_overlaps(pats[i], pats[j], topics, nt);
            enum acl_sub d = acl_check_subscribe(acl, pats[j], strlen(pats[j]));
            ck_assert_msg(d == (ovl ? ACL_SUB_FILTERED : ACL_SUB_ALLOWED),
                          "deny %s, sub %s: %s, brute overlaps %d", pats[i], pats[j],
                          acl_sub_name(d), ovl);
        }
        acl_free(acl);
    }
    /* Both answers occur often: the check cannot pass by always saying one thing. */
    ck_assert_uint_gt(n_cover, np);
    ck_assert_uint_lt(n_cover, np * np / 2);
    ck_assert_uint_gt(n_overlap, np * np / 8);
    ck_assert_uint_lt(n_overlap, np * np);
}
END_TEST

/* --------------------------------------------------- property test ---- */

#define PROP_LISTS      20   /* patterns per list */
#define PROP_ACLS       2000 /* random acls */
#define PROP_PER_ACL    250  /* topics and patterns asked of each */
#define PROP_TOKENS_MAX 5

static const char *const prop_toks[] = {"a", "b", "c", "$s", "d"};

/* A random pattern (WILD) or topic of 1..PROP_TOKENS_MAX tokens into BUF. */
static void random_name(uint64_t *rng, bool wild, char *buf)
{
    size_t n = 1 + rng_next(rng) % PROP_TOKENS_MAX;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)(rng_next(rng) % 16);
        const char *t = prop_toks[r % 5];
        if (i > 0)
            strcat(buf, ".");
        if (wild && r >= 10)
            t = (r >= 14 && i + 1 == n) ? ">" : "*";
        else if (i > 0 && r == 3)
            t = "a"; /* '$' matters at the first token; elsewhere it is a literal */
        strcat(buf, t);
    }
}

struct prop_acl {
    struct acl *acl;
    char lists[ACL_LIST_N][PROP_LISTS][32];
};

static bool ref_any(char pats[][32], const char *s, bool (*rel)(const char *, const char *))
{
    for (size_t i = 0; i < PROP_LISTS; i++)
        if (rel(pats[i], s))
            return true;
    return false;
}

static enum acl_sub ref_subscribe(struct prop_acl *pa, const char *p)
{
    if (!ref_any(pa->lists[ACL_SUBSCRIBE], p, ref_covers))
        return ACL_SUB_DENIED;
    return ref_any(pa->lists[ACL_SUBSCRIBE_DENY], p, ref_overlaps) ? ACL_SUB_FILTERED
                                                                   : ACL_SUB_ALLOWED;
}

/*
 * A million decisions (PROP_ACLS acls of four lists of PROP_LISTS random
 * patterns; for each, PROP_PER_ACL random topics asked for publish and
 * receive, and as many random patterns asked for subscribe), each compared
 * with the brute-force reference.  Every outcome must occur often enough
 * that the comparison means something.
 */
START_TEST(test_property_million)
{
    uint64_t rng = 0x9e3779b97f4a7c15u, n = 0;
    uint64_t seen_pub[2] = {0}, seen_sub[3] = {0};
    static struct prop_acl pa;

    for (size_t k = 0; k < PROP_ACLS; k++) {
        pa.acl = acl_new();
        for (int l = 0; l < ACL_LIST_N; l++)
            for (size_t i = 0; i < PROP_LISTS; i++) {
                random_name(&rng, true, pa.lists[l][i]);
                add(pa.acl, (enum acl_list)l, pa.lists[l][i]);
            }
        for (size_t q = 0; q < PROP_PER_ACL; q++) {
            char t[32], p[32];
            bool pub, recv;
            enum acl_sub sub;
            random_name(&rng, false, t);
            random_name(&rng, true, p);
            pub = ref_any(pa.lists[ACL_PUBLISH], t, matches) &&
                  !ref_any(pa.lists[ACL_PUBLISH_DENY], t, matches);
            recv = ref_any(pa.lists[ACL_SUBSCRIBE], t, matches) &&
                   !ref_any(pa.lists[ACL_SUBSCRIBE_DENY], t, matches);
            sub = ref_subscribe(&pa, p);
            require(acl_may_publish(pa.acl, t, strlen(t)) == pub);
            require(acl_may_receive(pa.acl, t, strlen(t)) == recv);
            if (acl_check_subscribe(pa.acl, p, strlen(p)) != sub)
                ck_abort_msg("acl %zu: subscribe %s: %s, reference %s", k, p,
                             acl_sub_name(acl_check_subscribe(pa.acl, p, strlen(p))),
                             acl_sub_name(sub));
            seen_pub[pub]++;
            seen_sub[sub]++;
            n += 3;
        }
        acl_free(pa.acl);
    }
    ck_assert_uint_ge(n, 1000000);
    for (int i = 0; i < 2; i++)
        ck_assert_uint_gt(seen_pub[i], n / 3 / 20);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_gt(seen_sub[i], n / 3 / 50);
}
END_TEST

/* ----------------------------------------------------------- cache ---- */

START_TEST(test_cache_hits)
{
    struct acl *acl = acl_new();
    struct acl_cache c;

    acl_cache_init(&c);
    add(acl, ACL_PUBLISH, "a.>");
    add(acl, ACL_SUBSCRIBE, "a.*");
    add(acl, ACL_SUBSCRIBE_DENY, "a.x");
    ck_assert_ptr_null(c.slots);
    ck_assert(acl_cache_may_publish(&c, acl, "a.b", 3));
    ck_assert(acl_cache_may_publish(&c, acl, "a.b", 3));
    ck_assert(!acl_cache_may_publish(&c, acl, "b", 1));
    ck_assert(!acl_cache_may_publish(&c, acl, "b", 1));
    ck_assert_uint_eq(c.misses, 2);
    ck_assert_uint_eq(c.hits, 2);
    /* The receive decision of a topic is its own. */
    ck_assert(acl_cache_may_receive(&c, acl, "a.b", 3));
    ck_assert(!acl_cache_may_receive(&c, acl, "a.x", 3));
    ck_assert(!acl_cache_may_receive(&c, acl, "a.x", 3));
    ck_assert(acl_cache_may_publish(&c, acl, "a.x", 3));
    ck_assert_uint_eq(c.misses, 5);
    ck_assert_uint_eq(c.hits, 3);
    acl_cache_fini(&c);
    acl_free(acl);
}
END_TEST

/* Many topics through 128 slots: every answer stays right. */
START_TEST(test_cache_eviction)
{
    struct acl *acl = acl_new();
    struct acl_cache c;
    char t[32];

    acl_cache_init(&c);
    add(acl, ACL_PUBLISH, "t.*");
    add(acl, ACL_PUBLISH_DENY, "t.7");
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 1000; i++) {
            int len = snprintf(t, sizeof(t), "t.%d", i);
            require(acl_cache_may_publish(&c, acl, t, (size_t)len) == (i != 7));
        }
    ck_assert_uint_gt(c.misses, 1000); /* 1000 topics cannot all stay in 128 slots */
    acl_cache_fini(&c);
    acl_free(acl);
}
END_TEST

/* A cache filled for one acl refills for another (a reload's new policy). */
START_TEST(test_cache_new_acl)
{
    struct acl *old = acl_new(), *new = acl_new();
    struct acl_cache c;

    acl_cache_init(&c);
    add(old, ACL_PUBLISH, "a");
    add(new, ACL_PUBLISH, "b");
    ck_assert(acl_cache_may_publish(&c, old, "a", 1));
    ck_assert(!acl_cache_may_publish(&c, new, "a", 1));
    ck_assert(acl_cache_may_publish(&c, new, "b", 1));
    ck_assert_uint_eq(c.hits, 0);
    acl_free(old);
    /* Even an acl at the freed one's address has a new id. */
    old = acl_new();
    ck_assert(!acl_cache_may_publish(&c, old, "b", 1));
    acl_cache_fini(&c);
    acl_cache_fini(&c); /* reusable, and idempotent */
    acl_free(old);
    acl_free(new);
}
END_TEST

static Suite *acl_suite(void)
{
    Suite *s = suite_create("acl");
    TCase *tc;

    tc = tcase_create("publish");
    tcase_add_test(tc, test_empty_acl_allows_nothing);
    tcase_add_test(tc, test_publish_allow_and_deny);
    tcase_add_test(tc, test_system_topics_by_name_only);
    tcase_add_test(tc, test_user_token);
    tcase_add_test(tc, test_bad_patterns);
    tcase_add_test(tc, test_ids_unique);
    suite_add_tcase(s, tc);

    tc = tcase_create("subscribe");
    tcase_add_test(tc, test_subscribe_examples);
    tcase_add_test(tc, test_subscribe_no_union);
    tcase_add_test(tc, test_subscribe_system_rule);
    tcase_add_test(tc, test_exhaustive_pairs);
    suite_add_tcase(s, tc);

    tc = tcase_create("property");
    tcase_add_test(tc, test_property_million);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_test(tc, test_cache_hits);
    tcase_add_test(tc, test_cache_eviction);
    tcase_add_test(tc, test_cache_new_acl);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(acl_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
