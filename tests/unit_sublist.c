/*
 * unit_sublist.c - the subscription index: matching ('*', '>', the '$'
 * rule, duplicates), removal and pruning, the match cache (hits, void on
 * insert and remove, its bounds in topics and in bytes, its second-chance
 * sweep), queue groups
 * (identity, round robin, the ready predicate), and a randomized property
 * test (fixed seed) that compares every match with topic_matches applied to
 * every live pattern, with the cache on, small and off.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sublist.h"
#include "topic.h"
#include "xalloc.h"

/* Fail-only assertion for hot loops (a passing ck_assert writes to a pipe). */
#define require(expr)                                                                              \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

/* A subscriber as the broker would have it; the index never looks inside. */
struct sub {
    int id;
    bool ready;
    int picked;
};

static struct sublist_entry *add(struct sublist *sl, const char *pattern, void *item)
{
    return sublist_insert(sl, pattern, strlen(pattern), NULL, 0, item);
}

static struct sublist_entry *add_q(struct sublist *sl, const char *pattern, const char *queue,
                                   void *item)
{
    return sublist_insert(sl, pattern, strlen(pattern), queue, strlen(queue), item);
}

static const struct sublist_result *match(struct sublist *sl, const char *topic)
{
    ck_assert_int_eq(topic_check(topic, strlen(topic), TOPIC_PUBLISH), TOPIC_OK);
    return sublist_match(sl, topic, strlen(topic));
}

/* How many times ITEM is listed in R's plain items. */
static size_t times_listed(const struct sublist_result *r, const void *item)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_items; i++)
        n += r->items[i] == item;
    return n;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Cache sizes each matching test runs under: none, tiny, ample. */
static const size_t cache_sizes[] = {0, 2, 1024};

/* -------------------------------------------------------------- match ---- */

START_TEST(test_empty_index)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    const struct sublist_result *r = match(sl, "a.b");

    ck_assert_uint_eq(r->n_items, 0);
    ck_assert_uint_eq(r->n_groups, 0);
    ck_assert_uint_eq(sublist_count(sl), 0);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    sublist_free(sl);
    sublist_free(NULL);
}
END_TEST

START_TEST(test_wildcards)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s[8] = {{0}};
    const struct sublist_result *r;

    add(sl, "a.b.c", &s[0]);
    add(sl, "a.*.c", &s[1]);
    add(sl, "a.>", &s[2]);
    add(sl, ">", &s[3]);
    add(sl, "*.b.*", &s[4]);
    add(sl, "a.b", &s[5]);
    add(sl, "*", &s[6]);
    add(sl, "a.*", &s[7]);
    ck_assert_uint_eq(sublist_count(sl), 8);

    r = match(sl, "a.b.c");
    ck_assert_uint_eq(r->n_items, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(times_listed(r, &s[i]), 1);

    r = match(sl, "a.b");
    ck_assert_uint_eq(r->n_items, 4);
    ck_assert_uint_eq(times_listed(r, &s[2]), 1);
    ck_assert_uint_eq(times_listed(r, &s[3]), 1);
    ck_assert_uint_eq(times_listed(r, &s[5]), 1);
    ck_assert_uint_eq(times_listed(r, &s[7]), 1);

    r = match(sl, "a"); /* "a.>" needs one token more */
    ck_assert_uint_eq(r->n_items, 2);
    ck_assert_uint_eq(times_listed(r, &s[3]), 1);
    ck_assert_uint_eq(times_listed(r, &s[6]), 1);

    r = match(sl, "x.b.y.z");
    ck_assert_uint_eq(r->n_items, 1);
    ck_assert_uint_eq(times_listed(r, &s[3]), 1);
    ck_assert_uint_eq(r->n_groups, 0);
    sublist_free(sl);
}
END_TEST

START_TEST(test_system_topics)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s[6] = {{0}};
    const struct sublist_result *r;

    add(sl, ">", &s[0]);
    add(sl, "*", &s[1]);
    add(sl, "*.stats", &s[2]);
    add(sl, "$SYS.>", &s[3]);
    add(sl, "$SYS.*", &s[4]);
    add(sl, "$SYS", &s[5]);

    r = match(sl, "$SYS.stats");
    ck_assert_uint_eq(r->n_items, 2);
    ck_assert_uint_eq(times_listed(r, &s[3]), 1);
    ck_assert_uint_eq(times_listed(r, &s[4]), 1);
    r = match(sl, "$SYS");
    ck_assert_uint_eq(r->n_items, 1);
    ck_assert_uint_eq(times_listed(r, &s[5]), 1);
    r = match(sl, "x.stats"); /* an ordinary topic: the wildcards match */
    ck_assert_uint_eq(r->n_items, 2);
    ck_assert_uint_eq(times_listed(r, &s[0]), 1);
    ck_assert_uint_eq(times_listed(r, &s[2]), 1);
    sublist_free(sl);
}
END_TEST

START_TEST(test_system_rule_first_token_only)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s[2] = {{0}};
    const struct sublist_result *r;

    add(sl, "a.>", &s[0]);
    add(sl, "a.*", &s[1]);
    r = match(sl, "a.$x");
    ck_assert_uint_eq(r->n_items, 2);
    sublist_free(sl);
}
END_TEST

START_TEST(test_duplicates)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s = {0}, t = {0};
    struct sublist_entry *e1, *e2, *e3;
    const struct sublist_result *r;

    e1 = add(sl, "a.*", &s);
    e2 = add(sl, "a.b", &s);
    e3 = add(sl, "a.b", &s); /* the same pattern twice: two entries */
    add(sl, "a.b", &t);
    ck_assert_ptr_ne(e2, e3);
    r = match(sl, "a.b");
    ck_assert_uint_eq(r->n_items, 4);
    ck_assert_uint_eq(times_listed(r, &s), 3);
    sublist_remove(sl, e3);
    r = match(sl, "a.b");
    ck_assert_uint_eq(times_listed(r, &s), 2);
    sublist_remove(sl, e1);
    r = match(sl, "a.b");
    ck_assert_uint_eq(times_listed(r, &s), 1);
    ck_assert_uint_eq(times_listed(r, &t), 1);
    sublist_remove(sl, e2);
    ck_assert_uint_eq(sublist_count(sl), 1);
    sublist_free(sl); /* frees the entry left */
}
END_TEST

START_TEST(test_longest_pattern)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    char pat[PROTO_TOPIC_MAX], top[PROTO_TOPIC_MAX];
    struct sub s[2] = {{0}};
    struct sublist_entry *e[2];
    const struct sublist_result *r;

    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = top[i] = i % 2 ? '.' : 'a';
    pat[100] = '*';
    pat[254] = '>'; /* 128 tokens, the most a pattern can have */
    e[0] = sublist_insert(sl, pat, sizeof pat, NULL, 0, &s[0]);
    e[1] = sublist_insert(sl, top, sizeof top, NULL, 0, &s[1]);
    r = sublist_match(sl, top, sizeof top);
    ck_assert_uint_eq(r->n_items, 2);
    ck_assert_uint_eq(sublist_node_count(sl), 128 + 77); /* shared up to the "*" */
    sublist_remove(sl, e[0]);
    sublist_remove(sl, e[1]);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    sublist_free(sl);
}
END_TEST

/* ------------------------------------------------------------- removal ---- */

START_TEST(test_prune)
{
    struct sublist *sl = sublist_new(16);
    struct sub s = {0};
    struct sublist_entry *abc, *ab, *astar, *afwc, *q;

    abc = add(sl, "a.b.c", &s);
    ck_assert_uint_eq(sublist_node_count(sl), 3);
    ab = add(sl, "a.b", &s);
    astar = add(sl, "a.*.c", &s);
    afwc = add(sl, "a.>", &s); /* '>' has no node of its own */
    q = add_q(sl, "a.b.c.d", "g", &s);
    ck_assert_uint_eq(sublist_node_count(sl), 6);

    sublist_remove(sl, q);
    ck_assert_uint_eq(sublist_node_count(sl), 5);
    sublist_remove(sl, abc); /* "a.b" still holds its node; "c" goes */
    ck_assert_uint_eq(sublist_node_count(sl), 4);
    sublist_remove(sl, astar);
    ck_assert_uint_eq(sublist_node_count(sl), 2);
    sublist_remove(sl, ab);
    ck_assert_uint_eq(sublist_node_count(sl), 1);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 1);
    sublist_remove(sl, afwc);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    ck_assert_uint_eq(sublist_count(sl), 0);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 0);
    sublist_free(sl);
}
END_TEST

START_TEST(test_prune_many)
{
    enum { N = 5000 };
    struct sublist *sl = sublist_new(64);
    struct sublist_entry **e = xcalloc(N, sizeof *e);
    struct sub s = {0};
    char buf[64];

    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "bench.idle.%d", i);
        e[i] = add(sl, buf, &s);
    }
    ck_assert_uint_eq(sublist_node_count(sl), N + 2);
    ck_assert_uint_eq(match(sl, "bench.idle.77")->n_items, 1);
    for (int i = 0; i < N; i += 2)
        sublist_remove(sl, e[i]);
    ck_assert_uint_eq(sublist_node_count(sl), N / 2 + 2);
    ck_assert_uint_eq(match(sl, "bench.idle.77")->n_items, 1);
    ck_assert_uint_eq(match(sl, "bench.idle.78")->n_items, 0);
    for (int i = 1; i < N; i += 2)
        sublist_remove(sl, e[i]);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    ck_assert_uint_eq(sublist_count(sl), 0);
    free(e);
    sublist_free(sl);
}
END_TEST

/* --------------------------------------------------------------- cache ---- */

START_TEST(test_cache_hit_is_stable)
{
    struct sublist *sl = sublist_new(16);
    struct sub s = {0};
    const struct sublist_result *r1, *r2;

    add(sl, "a.*", &s);
    r1 = match(sl, "a.b");
    r2 = match(sl, "a.b");
    ck_assert_ptr_eq(r1, r2);
    ck_assert_uint_eq(r2->n_items, 1);
    ck_assert_uint_eq(sublist_cache_count(sl), 1);
    r1 = match(sl, "x"); /* an empty result is cached too */
    ck_assert_uint_eq(r1->n_items, 0);
    ck_assert_ptr_eq(match(sl, "x"), r1);
    ck_assert_uint_eq(sublist_cache_count(sl), 2);
    sublist_free(sl);
}
END_TEST

START_TEST(test_cache_void_on_change)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s[3] = {{0}};
    struct sublist_entry *e0, *e1, *e2;

    ck_assert_uint_eq(match(sl, "a.b")->n_items, 0);
    e0 = add(sl, "a.*", &s[0]);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 1);
    e1 = add(sl, "a.>", &s[1]);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 2);
    e2 = add_q(sl, "a.b", "g", &s[2]);
    ck_assert_uint_eq(match(sl, "a.b")->n_groups, 1);
    sublist_remove(sl, e0);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 1);
    ck_assert_uint_eq(times_listed(match(sl, "a.b"), &s[1]), 1);
    sublist_remove(sl, e2);
    ck_assert_uint_eq(match(sl, "a.b")->n_groups, 0);
    sublist_remove(sl, e1);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 0);
    /* An unrelated change voids the cache too, and the answer stays right. */
    e0 = add(sl, "zzz", &s[0]);
    ck_assert_uint_eq(match(sl, "a.b")->n_items, 0);
    sublist_remove(sl, e0);
    sublist_free(sl);
}
END_TEST

START_TEST(test_cache_bounded)
{
    struct sublist *sl = sublist_new(8);
    struct sub s = {0};
    char buf[32];

    add(sl, "t.*", &s);
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "t.%d", i);
        ck_assert_uint_eq(match(sl, buf)->n_items, 1);
        ck_assert_uint_le(sublist_cache_count(sl), 8);
    }
    /* Every topic hit again, so every entry is marked: still bounded. */
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "t.%d", i);
        ck_assert_uint_eq(match(sl, buf)->n_items, 1);
        ck_assert_uint_eq(match(sl, buf)->n_items, 1);
        ck_assert_uint_le(sublist_cache_count(sl), 8);
    }
    sublist_free(sl);
}
END_TEST

/* A topic hit since the last sweep survives it; one-off topics do not. */
START_TEST(test_cache_second_chance)
{
    struct sublist *sl = sublist_new(4);
    struct sub s = {0};
    const struct sublist_result *hot;

    add(sl, ">", &s);
    hot = match(sl, "hot");
    ck_assert_ptr_eq(match(sl, "hot"), hot); /* a hit: marked */
    match(sl, "t1");
    match(sl, "t2");
    match(sl, "t3");
    ck_assert_uint_eq(sublist_cache_count(sl), 4);
    match(sl, "t4"); /* full: the sweep keeps "hot" only, then adds "t4" */
    ck_assert_uint_eq(sublist_cache_count(sl), 2);
    ck_assert_ptr_eq(match(sl, "hot"), hot);
    sublist_free(sl);
}
END_TEST

/*
 * The cache is bounded in bytes too: one subscriber with 2,000 '>'
 * subscriptions publishing to 2,000 topics used to cache 2,000 copies of a
 * 2,000-item result (31 MiB).  Results over SUBLIST_CACHE_RESULT_MAX are
 * not cached, and still come out right.
 */
START_TEST(test_cache_large_results_not_cached)
{
    enum { N = 2000 };
    struct sublist *sl = sublist_new(4096);
    struct sub *s = xcalloc(N, sizeof *s);
    char buf[32];

    for (int i = 0; i < N; i++)
        add(sl, ">", &s[i]);
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "topic.%d", i);
        const struct sublist_result *r = match(sl, buf);
        require(r->n_items == N);
        require(r->items[0] != r->items[N - 1]);
    }
    ck_assert_uint_eq(sublist_cache_count(sl), 0);
    ck_assert_uint_eq(sublist_cache_bytes(sl), 0);
    free(s);
    sublist_free(sl);
}
END_TEST

/* The caller's word kept with a cached result: 0 at first, kept across hits, voided with it. */
START_TEST(test_cache_memo)
{
    struct sublist *sl = sublist_new(16), *off = sublist_new(0);
    struct sub s[2] = {{0}};

    add(sl, "a.>", &s[0]);
    const struct sublist_result *r = match(sl, "a.b");
    ck_assert_ptr_nonnull(r->memo);
    ck_assert_uint_eq(*r->memo, 0);
    *r->memo = 42;
    ck_assert_uint_eq(*match(sl, "a.b")->memo, 42); /* a hit keeps it */
    ck_assert_uint_eq(*match(sl, "a.c")->memo, 0);  /* each topic its own */
    struct sublist_entry *e = add(sl, "x", &s[1]);
    ck_assert_uint_eq(*match(sl, "a.b")->memo, 0); /* a change voids it */
    *match(sl, "a.b")->memo = 7;
    sublist_remove(sl, e);
    ck_assert_uint_eq(*match(sl, "a.b")->memo, 0);
    add(off, "a.>", &s[0]);
    ck_assert_ptr_null(match(off, "a.b")->memo); /* not cached: nowhere to keep it */
    sublist_free(sl);
    sublist_free(off);
}
END_TEST

/* A result at the limit is cached; each cached result costs at most its
 * header, SUBLIST_CACHE_RESULT_MAX pointers and its topic. */
START_TEST(test_cache_bytes_bounded)
{
    enum { CACHE = 256, N = SUBLIST_CACHE_RESULT_MAX };
    struct sublist *sl = sublist_new(CACHE);
    struct sub s[N + 1];
    struct sublist_entry *extra;
    const struct sublist_result *r;
    char buf[PROTO_TOPIC_MAX + 1];

    memset(s, 0, sizeof s);
    for (int i = 0; i < N; i++)
        add(sl, "t.>", &s[i]);
    for (int i = 0; i < 10 * CACHE; i++) {
        int n = snprintf(buf, sizeof buf, "t.%d.", i);
        memset(buf + n, 'x', PROTO_TOPIC_MAX - (size_t)n); /* the longest topics */
        buf[PROTO_TOPIC_MAX] = '\0';
        require(match(sl, buf)->n_items == N);
        require(sublist_cache_count(sl) <= CACHE);
        require(sublist_cache_bytes(sl) <=
                sublist_cache_count(sl) * (64 + N * sizeof(void *) + PROTO_TOPIC_MAX));
    }
    ck_assert_uint_gt(sublist_cache_count(sl), 0);

    /* One more subscription makes "t.a" too large: its cached copy goes. */
    r = match(sl, "t.a");
    ck_assert_ptr_eq(match(sl, "t.a"), r); /* cached: a hit */
    extra = add(sl, "t.a", &s[N]);
    size_t before = sublist_cache_count(sl);
    r = match(sl, "t.a");
    ck_assert_uint_eq(r->n_items, N + 1);
    ck_assert_uint_eq(times_listed(r, &s[N]), 1);
    ck_assert_uint_eq(sublist_cache_count(sl), before - 1);
    sublist_remove(sl, extra);
    ck_assert_uint_eq(match(sl, "t.a")->n_items, N);
    ck_assert_uint_eq(sublist_cache_count(sl), before);
    sublist_free(sl);
}
END_TEST

START_TEST(test_cache_off)
{
    struct sublist *sl = sublist_new(0);
    struct sub s = {0};

    add(sl, "a", &s);
    ck_assert_uint_eq(match(sl, "a")->n_items, 1);
    ck_assert_uint_eq(match(sl, "b")->n_items, 0);
    ck_assert_uint_eq(sublist_cache_count(sl), 0);
    sublist_free(sl);
}
END_TEST

/* --------------------------------------------------------------- queues ---- */

static bool sub_ready(void *item, void *arg)
{
    (void)arg;
    return ((struct sub *)item)->ready;
}

START_TEST(test_group_identity)
{
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct sub s[6] = {{0}};
    const struct sublist_result *r;

    add_q(sl, "a.*", "g", &s[0]);
    add_q(sl, "a.*", "g", &s[1]); /* same pattern and name: same group */
    add_q(sl, "a.*", "h", &s[2]); /* another name */
    add_q(sl, "a.>", "g", &s[3]); /* another pattern, same node */
    add_q(sl, "a.b", "g", &s[4]);
    add(sl, "a.*", &s[5]); /* a plain one beside them */
    ck_assert_uint_eq(sublist_count(sl), 6);
    r = match(sl, "a.b");
    ck_assert_uint_eq(r->n_items, 1);
    ck_assert_uint_eq(times_listed(r, &s[5]), 1);
    ck_assert_uint_eq(r->n_groups, 4);
    for (size_t i = 0; i < r->n_groups; i++) {
        for (size_t j = 0; j < i; j++)
            ck_assert_ptr_ne(r->groups[i], r->groups[j]);
    }
    r = match(sl, "a.c");
    ck_assert_uint_eq(r->n_groups, 3);
    r = match(sl, "a.b.c");
    ck_assert_uint_eq(r->n_groups, 1);
    ck_assert_ptr_eq(sublist_group_pick(r->groups[0], NULL, NULL), &s[3]);
    sublist_free(sl);
}
END_TEST

START_TEST(test_group_round_robin)
{
    enum { MEMBERS = 5, ROUNDS = 100 };
    struct sublist *sl = sublist_new(16);
    struct sub s[MEMBERS] = {{0}};
    const struct sublist_result *r;
    struct sublist_group *g;
    void *prev = NULL;

    for (int i = 0; i < MEMBERS; i++)
        add_q(sl, "work", "pool", &s[i]);
    r = match(sl, "work");
    ck_assert_uint_eq(r->n_items, 0);
    ck_assert_uint_eq(r->n_groups, 1);
    g = r->groups[0];
    for (int k = 0; k < MEMBERS * ROUNDS; k++) {
        struct sub *p = sublist_group_pick(g, NULL, NULL);
        ck_assert_ptr_ne(p, prev); /* never the same twice running */
        p->picked++;
        prev = p;
    }
    for (int i = 0; i < MEMBERS; i++)
        ck_assert_int_eq(s[i].picked, ROUNDS);
    sublist_free(sl);
}
END_TEST

START_TEST(test_group_ready)
{
    struct sublist *sl = sublist_new(16);
    struct sub s[3] = {
        {.id = 0, .ready = true}, {.id = 1, .ready = false}, {.id = 2, .ready = true}};
    struct sublist_group *g;

    for (int i = 0; i < 3; i++)
        add_q(sl, "work", "pool", &s[i]);
    g = match(sl, "work")->groups[0];
    for (int k = 0; k < 100; k++) {
        struct sub *p = sublist_group_pick(g, sub_ready, NULL);
        ck_assert(p->ready);
        p->picked++;
    }
    ck_assert_int_eq(s[0].picked, 50);
    ck_assert_int_eq(s[1].picked, 0);
    ck_assert_int_eq(s[2].picked, 50);

    /* None ready: each is still picked in turn. */
    s[0].picked = s[2].picked = 0;
    s[0].ready = s[2].ready = false;
    for (int k = 0; k < 99; k++) {
        struct sub *p = sublist_group_pick(g, sub_ready, NULL);
        ck_assert_ptr_nonnull(p);
        p->picked++;
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s[i].picked, 33);
    sublist_free(sl);
}
END_TEST

START_TEST(test_group_leave)
{
    struct sublist *sl = sublist_new(16);
    struct sub s[4] = {{0}};
    struct sublist_entry *e[4];
    struct sublist_group *g;

    for (int i = 0; i < 4; i++)
        e[i] = add_q(sl, "a.b", "pool", &s[i]);
    sublist_remove(sl, e[1]);
    g = match(sl, "a.b")->groups[0];
    for (int k = 0; k < 30; k++) {
        struct sub *p = sublist_group_pick(g, NULL, NULL);
        ck_assert_ptr_ne(p, &s[1]);
        p->picked++;
    }
    ck_assert_int_eq(s[0].picked, 10);
    ck_assert_int_eq(s[2].picked, 10);
    ck_assert_int_eq(s[3].picked, 10);
    sublist_remove(sl, e[0]);
    sublist_remove(sl, e[3]);
    g = match(sl, "a.b")->groups[0];
    ck_assert_ptr_eq(sublist_group_pick(g, NULL, NULL), &s[2]);
    ck_assert_ptr_eq(sublist_group_pick(g, NULL, NULL), &s[2]);
    sublist_remove(sl, e[2]); /* the group and its nodes go */
    ck_assert_uint_eq(match(sl, "a.b")->n_groups, 0);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    sublist_free(sl);
}
END_TEST

START_TEST(test_group_many_members)
{
    enum { N = 1000 };
    struct sublist *sl = sublist_new(16);
    struct sub *s = xcalloc(N, sizeof *s);
    struct sublist_entry **e = xcalloc(N, sizeof *e);
    struct sublist_group *g;

    for (int i = 0; i < N; i++)
        e[i] = add_q(sl, "w.>", "pool", &s[i]);
    for (int i = 0; i < N - 3; i++) /* shrink the member array as it empties */
        sublist_remove(sl, e[i]);
    g = match(sl, "w.x")->groups[0];
    for (int k = 0; k < 9; k++)
        ((struct sub *)sublist_group_pick(g, NULL, NULL))->picked++;
    for (int i = N - 3; i < N; i++)
        ck_assert_int_eq(s[i].picked, 3);
    sublist_free(sl);
    free(s);
    free(e);
}
END_TEST

/* ------------------------------------------------------------ property ---- */

/* One subscription of the property test: its pattern, queue, and entry. */
struct prop_sub {
    char pattern[48];
    size_t plen;
    const char *queue; /* NULL: plain */
    struct sublist_entry *e;
    int listed; /* times seen in the current result */
};

static size_t random_name(uint64_t *rng, char *buf, bool pattern)
{
    static const char *const toks[] = {"a", "b", "c", "d", "$s"};
    size_t n = 1 + rng_next(rng) % 4, len = 0;

    for (size_t i = 0; i < n; i++) {
        const char *t = toks[rng_next(rng) % 5];
        unsigned r = (unsigned)(rng_next(rng) % 10);
        if (i > 0)
            buf[len++] = '.';
        if (pattern && r < 3)
            t = "*";
        else if (pattern && r == 3 && i == n - 1)
            t = ">";
        memcpy(buf + len, t, strlen(t));
        len += strlen(t);
    }
    return len;
}

static void prop_insert(struct sublist *sl, struct prop_sub *p, uint64_t *rng)
{
    static const char *const queues[] = {"q1", "q2"};
    unsigned r = (unsigned)(rng_next(rng) % 10);

    p->plen = random_name(rng, p->pattern, true);
    p->queue = r < 2 ? queues[r] : NULL;
    p->e = sublist_insert(sl, p->pattern, p->plen, p->queue, p->queue ? strlen(p->queue) : 0, p);
}

/* True when (pattern, queue) of A and B name the same group. */
static bool same_group(const struct prop_sub *a, const struct prop_sub *b)
{
    return a->plen == b->plen && memcmp(a->pattern, b->pattern, a->plen) == 0 &&
           strcmp(a->queue, b->queue) == 0;
}

/* Checks SL's answer for TOPIC against topic_matches over all live subs. */
static void prop_check_topic(struct sublist *sl, struct prop_sub *subs, size_t n, const char *topic,
                             size_t tlen)
{
    const struct sublist_result *r = sublist_match(sl, topic, tlen);
    size_t want_groups = 0;

    for (size_t i = 0; i < n; i++)
        subs[i].listed = 0;
    for (size_t i = 0; i < r->n_items; i++)
        ((struct prop_sub *)r->items[i])->listed++;
    for (size_t i = 0; i < n; i++) {
        const struct prop_sub *p = &subs[i];
        bool m = p->e != NULL && topic_matches(p->pattern, p->plen, topic, tlen);
        if (p->queue == NULL) {
            if (p->listed != (m ? 1 : 0))
                ck_abort_msg("\"%.*s\" on \"%.*s\": listed %d times, matches %d", (int)p->plen,
                             p->pattern, (int)tlen, topic, p->listed, m);
        } else if (m) {
            bool first = true; /* count each (pattern, queue) once */
            for (size_t j = 0; j < i && first; j++) {
                const struct prop_sub *q = &subs[j];
                first = !(q->e != NULL && q->queue != NULL && same_group(p, q));
            }
            want_groups += first;
        }
    }
    require(r->n_groups == want_groups);
    for (size_t i = 0; i < r->n_groups; i++) {
        struct prop_sub *p = sublist_group_pick(r->groups[i], NULL, NULL);
        require(p->queue != NULL && p->e != NULL);
        require(topic_matches(p->pattern, p->plen, topic, tlen));
        for (size_t j = 0; j < i; j++)
            require(r->groups[i] != r->groups[j]);
    }
}

static void prop_check_many(struct sublist *sl, struct prop_sub *subs, size_t n, uint64_t *rng,
                            int topics)
{
    char topic[48];

    for (int k = 0; k < topics; k++) {
        size_t tlen = random_name(rng, topic, false);
        prop_check_topic(sl, subs, n, topic, tlen);
        if (k % 3 == 0) /* asked again: now a cache hit, where there is a cache */
            prop_check_topic(sl, subs, n, topic, tlen);
    }
}

START_TEST(test_property_random)
{
    enum { N = 2000 };
    struct sublist *sl = sublist_new(cache_sizes[_i]);
    struct prop_sub *subs = xcalloc(N, sizeof *subs);
    uint64_t rng = 0x853c49e6748fea9bu;

    for (size_t i = 0; i < N; i++)
        prop_insert(sl, &subs[i], &rng);
    prop_check_many(sl, subs, N, &rng, 1500);

    /* Remove a random half, checking a few topics after each change. */
    for (size_t i = 0; i < N; i++) {
        if (rng_next(&rng) % 2 == 0)
            continue;
        sublist_remove(sl, subs[i].e);
        subs[i].e = NULL;
        if (i % 50 == 0)
            prop_check_many(sl, subs, N, &rng, 5);
    }
    prop_check_many(sl, subs, N, &rng, 1500);

    /* Churn: re-insert and remove, interleaved with matches. */
    for (int k = 0; k < 2000; k++) {
        struct prop_sub *p = &subs[rng_next(&rng) % N];
        if (p->e != NULL) {
            sublist_remove(sl, p->e);
            p->e = NULL;
        } else {
            prop_insert(sl, p, &rng);
        }
        if (k % 20 == 0)
            prop_check_many(sl, subs, N, &rng, 5);
    }
    prop_check_many(sl, subs, N, &rng, 1500);

    for (size_t i = 0; i < N; i++) {
        if (subs[i].e != NULL)
            sublist_remove(sl, subs[i].e);
        subs[i].e = NULL;
    }
    ck_assert_uint_eq(sublist_count(sl), 0);
    ck_assert_uint_eq(sublist_node_count(sl), 0);
    prop_check_many(sl, subs, N, &rng, 50);
    free(subs);
    sublist_free(sl);
}
END_TEST

/* -------------------------------------------------------------- suite ---- */

static Suite *sublist_suite(void)
{
    Suite *s = suite_create("sublist");
    int nc = (int)(sizeof cache_sizes / sizeof cache_sizes[0]);
    TCase *tc;

    tc = tcase_create("match");
    tcase_add_loop_test(tc, test_empty_index, 0, nc);
    tcase_add_loop_test(tc, test_wildcards, 0, nc);
    tcase_add_loop_test(tc, test_system_topics, 0, nc);
    tcase_add_loop_test(tc, test_system_rule_first_token_only, 0, nc);
    tcase_add_loop_test(tc, test_duplicates, 0, nc);
    tcase_add_loop_test(tc, test_longest_pattern, 0, nc);
    suite_add_tcase(s, tc);

    tc = tcase_create("remove");
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_prune_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_test(tc, test_cache_hit_is_stable);
    tcase_add_loop_test(tc, test_cache_void_on_change, 0, nc);
    tcase_add_test(tc, test_cache_bounded);
    tcase_add_test(tc, test_cache_second_chance);
    tcase_add_test(tc, test_cache_large_results_not_cached);
    tcase_add_test(tc, test_cache_bytes_bounded);
    tcase_add_test(tc, test_cache_memo);
    tcase_add_test(tc, test_cache_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("queue");
    tcase_add_loop_test(tc, test_group_identity, 0, nc);
    tcase_add_test(tc, test_group_round_robin);
    tcase_add_test(tc, test_group_ready);
    tcase_add_test(tc, test_group_leave);
    tcase_add_test(tc, test_group_many_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("property");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_property_random, 0, nc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sublist_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
