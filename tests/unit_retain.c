/*
 * unit_retain.c - the retained store: set, replace, clear and their cost
 * accounting, the trie nodes' charges included; the pattern walk (exact, '*', '>', the '$' rule),
 * also against topic_matches over every retained topic on random inputs (fixed seed); pruning of
 * emptied nodes; freeing with values left; and the resumable cursor: bounded steps, values
 * refused and offered again, nodes pinned while it stands on them, and, on random stores changed
 * between its steps, each value offered once, only values set before it began and still current,
 * and every such value that stayed untouched.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retain.h"
#include "topic.h"
#include "xalloc.h"

/* Fail-only assertion for hot loops (a passing ck_assert writes to a pipe). */
#define require(expr)                                                                              \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

/* A retained value: it knows its topic, to check what the walk reports. */
struct val {
    char topic[PROTO_TOPIC_MAX + 1];
    size_t len;
    int seen;
    int freed;
};

static void val_init(struct val *v, const char *topic)
{
    memset(v, 0, sizeof *v);
    v->len = strlen(topic);
    memcpy(v->topic, topic, v->len);
}

static void *set(struct retain_store *rs, struct val *v, size_t cost)
{
    return retain_set(rs, v->topic, v->len, v, cost);
}

static void *clear(struct retain_store *rs, const char *topic)
{
    return retain_clear(rs, topic, strlen(topic));
}

/* The walk's callback: checks the topic it is given and counts the visit. */
static void seen_cb(const char *topic, size_t len, void *value, void *arg)
{
    struct val *v = value;
    size_t *calls = arg;

    require(len == v->len && memcmp(topic, v->topic, len) == 0);
    require(topic[len] == '\0');
    v->seen++;
    (*calls)++;
}

/* retain_bytes without the nodes' part: the sum of the declared costs. */
static uint64_t value_bytes(const struct retain_store *rs)
{
    return retain_bytes(rs) - retain_node_bytes(rs);
}

/* Sets V, first checking that retain_bytes_if_set foretold the result. */
static void *set_checked(struct retain_store *rs, struct val *v, size_t cost)
{
    uint64_t want = retain_bytes_if_set(rs, v->topic, v->len, cost);
    void *old = set(rs, v, cost);

    require(retain_bytes(rs) == want);
    return old;
}

/* Walks PATTERN; returns the number of callbacks. */
static size_t walk(struct retain_store *rs, const char *pattern)
{
    size_t calls = 0;

    ck_assert_int_eq(topic_check(pattern, strlen(pattern), TOPIC_PATTERN), TOPIC_OK);
    retain_foreach_match(rs, pattern, strlen(pattern), seen_cb, &calls);
    return calls;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---------------------------------------------------------- set/clear ---- */

START_TEST(test_set_replace_clear)
{
    struct retain_store *rs = retain_new();
    struct val a1, a2, b;

    val_init(&a1, "a.x");
    val_init(&a2, "a.x");
    val_init(&b, "a");
    ck_assert_ptr_null(retain_get(rs, "a.x", 3));
    ck_assert_ptr_null(set(rs, &a1, 10));
    ck_assert_ptr_eq(retain_get(rs, "a.x", 3), &a1);
    ck_assert_uint_eq(retain_count(rs), 1);
    ck_assert_uint_eq(value_bytes(rs), 10);
    ck_assert_uint_eq(retain_cost(rs, "a.x", 3), 10);

    ck_assert_ptr_eq(set(rs, &a2, 25), &a1); /* replaced: the old one is ours */
    ck_assert_ptr_eq(retain_get(rs, "a.x", 3), &a2);
    ck_assert_uint_eq(retain_count(rs), 1);
    ck_assert_uint_eq(value_bytes(rs), 25);

    ck_assert_ptr_null(set(rs, &b, 5)); /* a prefix of another topic */
    ck_assert_uint_eq(retain_count(rs), 2);
    ck_assert_uint_eq(value_bytes(rs), 30);
    ck_assert_uint_eq(retain_cost(rs, "a", 1), 5);

    ck_assert_ptr_eq(clear(rs, "a.x"), &a2);
    ck_assert_ptr_null(clear(rs, "a.x"));
    ck_assert_ptr_null(retain_get(rs, "a.x", 3));
    ck_assert_uint_eq(retain_cost(rs, "a.x", 3), 0);
    ck_assert_uint_eq(retain_count(rs), 1);
    ck_assert_uint_eq(value_bytes(rs), 5);
    ck_assert_ptr_eq(retain_get(rs, "a", 1), &b);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_prefix_without_value)
{
    struct retain_store *rs = retain_new();
    struct val v;

    val_init(&v, "a.b.c");
    set(rs, &v, 1);
    ck_assert_ptr_null(retain_get(rs, "a.b", 3));
    ck_assert_uint_eq(retain_cost(rs, "a.b", 3), 0);
    ck_assert_ptr_null(clear(rs, "a.b")); /* no value there: nothing changes */
    ck_assert_ptr_null(clear(rs, "a.b.c.d"));
    ck_assert_ptr_null(clear(rs, "zz"));
    ck_assert_uint_eq(retain_node_count(rs), 3);
    ck_assert_ptr_eq(retain_get(rs, "a.b.c", 5), &v);
    ck_assert_uint_eq(retain_count(rs), 1);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_cost_accounting_many)
{
    enum { N = 2000 };
    struct retain_store *rs = retain_new();
    struct val *v = xcalloc(N, sizeof *v);
    uint64_t want = 0;
    char buf[64];

    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "s.%zu.%zu", i % 37, i);
        val_init(&v[i], buf);
        set(rs, &v[i], i);
        want += i;
    }
    ck_assert_uint_eq(value_bytes(rs), want);
    for (size_t i = 0; i < N; i += 3) { /* new costs for a third */
        require(set(rs, &v[i], 2 * i) == &v[i]);
        want += i;
    }
    ck_assert_uint_eq(value_bytes(rs), want);
    ck_assert_uint_eq(retain_count(rs), N);
    for (size_t i = 0; i < N; i += 2) {
        size_t cost = retain_cost(rs, v[i].topic, v[i].len);
        require(clear(rs, v[i].topic) == &v[i]);
        want -= cost;
    }
    ck_assert_uint_eq(value_bytes(rs), want);
    ck_assert_uint_eq(retain_count(rs), N / 2);
    free(v);
    retain_free(rs, NULL);
}
END_TEST

/* The trie's nodes are charged: a tiny value on a topic of 128 tokens
 * costs its 128 nodes, each given back when a clear prunes it. */
START_TEST(test_nodes_charged)
{
    struct retain_store *rs = retain_new();
    struct val deep, sibling, shallow;
    char topic[PROTO_TOPIC_MAX + 1];
    uint64_t one, deep_nodes;

    memset(topic, 0, sizeof topic);
    topic[0] = 'a';
    for (size_t i = 1; i + 1 < PROTO_TOPIC_MAX; i += 2)
        memcpy(topic + i, ".x", 2); /* "a.x.x...": 128 tokens, 255 bytes */
    val_init(&deep, topic);
    ck_assert_uint_eq(retain_node_bytes(rs), 0);
    ck_assert_ptr_null(set_checked(rs, &deep, 1));
    ck_assert_uint_eq(retain_node_count(rs), 128);
    deep_nodes = retain_node_bytes(rs);
    ck_assert_uint_ge(deep_nodes, 128 * 64); /* at least the overhead of each */
    ck_assert_uint_eq(retain_bytes(rs), 1 + deep_nodes);
    ck_assert_uint_eq(value_bytes(rs), 1);

    /* A sibling of the last token takes one node more, of the same charge. */
    topic[strlen(topic) - 1] = 'y';
    val_init(&sibling, topic);
    ck_assert_ptr_null(set_checked(rs, &sibling, 1));
    ck_assert_uint_eq(retain_node_count(rs), 129);
    one = retain_node_bytes(rs) - deep_nodes;
    ck_assert_uint_eq(deep_nodes % one, 0);
    ck_assert_uint_eq(deep_nodes / one, 128);

    /* A value on an existing node (no value yet) and replacements add no node. */
    val_init(&shallow, "a.x");
    ck_assert_ptr_null(set_checked(rs, &shallow, 7));
    ck_assert_ptr_eq(set_checked(rs, &shallow, 9), &shallow);
    ck_assert_ptr_eq(set_checked(rs, &deep, 100), &deep);
    ck_assert_uint_eq(retain_node_bytes(rs), deep_nodes + one);
    ck_assert_uint_eq(retain_bytes(rs), 100 + 1 + 9 + deep_nodes + one);

    /* Clearing gives back the nodes it prunes, and only those. */
    ck_assert_ptr_eq(clear(rs, sibling.topic), &sibling);
    ck_assert_uint_eq(retain_node_bytes(rs), deep_nodes);
    ck_assert_ptr_eq(clear(rs, deep.topic), &deep);
    ck_assert_uint_eq(retain_node_bytes(rs), 2 * one); /* "a" and "a.x" stay */
    ck_assert_ptr_eq(clear(rs, "a.x"), &shallow);
    ck_assert_uint_eq(retain_bytes(rs), 0);
    ck_assert_uint_eq(retain_node_count(rs), 0);
    retain_free(rs, NULL);
}
END_TEST

/* retain_bytes_if_set foretells every set exactly, over shared prefixes,
 * replacements and clears; and the charge never undercounts the nodes. */
START_TEST(test_bytes_if_set_many)
{
    enum { N = 3000 };
    struct retain_store *rs = retain_new();
    struct val *v = xcalloc(N, sizeof *v);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char buf[64];

    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "s.%zu.%zu.%zu", i % 7, i % 101, i);
        val_init(&v[i], buf);
    }
    for (size_t k = 0; k < 4 * N; k++) {
        struct val *x = &v[rng_next(&seed) % N];
        if (rng_next(&seed) % 4 == 0)
            clear(rs, x->topic);
        else
            set_checked(rs, x, rng_next(&seed) % 100);
        require(retain_node_bytes(rs) >= retain_node_count(rs) * 64);
    }
    for (size_t i = 0; i < N; i++)
        clear(rs, v[i].topic);
    ck_assert_uint_eq(retain_bytes(rs), 0);
    ck_assert_uint_eq(retain_node_bytes(rs), 0);
    free(v);
    retain_free(rs, NULL);
}
END_TEST

/* ---------------------------------------------------------------- walk ---- */

START_TEST(test_walk_patterns)
{
    static const char *const topics[] = {"a",     "a.b",    "a.c",      "a.b.c", "a.b.d",
                                         "x.b.c", "$SYS.s", "$SYS.s.t", "a.$x"};
    enum { N = sizeof topics / sizeof topics[0] };
    struct retain_store *rs = retain_new();
    struct val v[N];

    for (size_t i = 0; i < N; i++) {
        val_init(&v[i], topics[i]);
        set(rs, &v[i], 1);
    }
    ck_assert_uint_eq(walk(rs, "a.b"), 1);
    ck_assert_int_eq(v[1].seen, 1);
    ck_assert_uint_eq(walk(rs, "a.b.x"), 0);
    ck_assert_uint_eq(walk(rs, "a.*"), 3);   /* a.b a.c a.$x */
    ck_assert_uint_eq(walk(rs, "a.>"), 5);   /* not "a" itself */
    ck_assert_uint_eq(walk(rs, "*.b.c"), 2); /* a.b.c x.b.c */
    ck_assert_uint_eq(walk(rs, "*"), 1);     /* a; not $SYS */
    ck_assert_uint_eq(walk(rs, ">"), 7);     /* every topic but the two $SYS */
    ck_assert_uint_eq(walk(rs, "*.*"), 3);   /* a.b a.c a.$x */
    ck_assert_uint_eq(walk(rs, "*.>"), 6);
    ck_assert_uint_eq(walk(rs, "$SYS.>"), 2);
    ck_assert_uint_eq(walk(rs, "$SYS.*"), 1);
    ck_assert_uint_eq(walk(rs, "$SYS.*.t"), 1);
    ck_assert_uint_eq(walk(rs, "*.s"), 0);
    ck_assert_uint_eq(walk(rs, "a.*.>"), 2); /* a.b.c a.b.d */
    ck_assert_uint_eq(walk(rs, "a.*.*"), 2);
    ck_assert_uint_eq(walk(rs, "nothing.>"), 0);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_walk_empty_store)
{
    struct retain_store *rs = retain_new();

    ck_assert_uint_eq(walk(rs, ">"), 0);
    ck_assert_uint_eq(walk(rs, "a"), 0);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_walk_longest_topic)
{
    struct retain_store *rs = retain_new();
    struct val v;
    char buf[PROTO_TOPIC_MAX + 1] = {0};

    for (size_t i = 0; i < PROTO_TOPIC_MAX; i++)
        buf[i] = i % 2 ? '.' : 'z';
    val_init(&v, buf);
    set(rs, &v, 1);
    ck_assert_uint_eq(walk(rs, ">"), 1);
    ck_assert_uint_eq(walk(rs, "z.>"), 1);
    ck_assert_uint_eq(walk(rs, buf), 1);
    ck_assert_uint_eq(retain_node_count(rs), TOPIC_MAX_TOKENS);
    ck_assert_ptr_eq(retain_clear(rs, buf, PROTO_TOPIC_MAX), &v);
    ck_assert_uint_eq(retain_node_count(rs), 0);
    retain_free(rs, NULL);
}
END_TEST

/* A random topic or pattern of 1..4 tokens over a small alphabet. */
static size_t random_name(uint64_t *rng, char *buf, bool pattern)
{
    static const char *const toks[] = {"a", "b", "c", "$d", "ee"};
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
    buf[len] = '\0';
    return len;
}

START_TEST(test_walk_random)
{
    enum { N = 600 };
    struct retain_store *rs = retain_new();
    struct val *v = xcalloc(N, sizeof *v);
    bool *in = xcalloc(N, sizeof *in);
    uint64_t rng = 0x2545f4914f6cdd1du;
    char buf[64];

    for (size_t i = 0; i < N; i++) {
        random_name(&rng, buf, false);
        val_init(&v[i], buf);
        if (retain_get(rs, v[i].topic, v[i].len) == NULL) { /* topics may repeat */
            set(rs, &v[i], 1);
            in[i] = true;
        }
        if (i % 4 == 3) { /* and some leave again */
            size_t j = rng_next(&rng) % (i + 1);
            if (in[j])
                require(clear(rs, v[j].topic) == &v[j]);
            in[j] = false;
        }
    }
    for (int k = 0; k < 3000; k++) {
        size_t want = 0, calls;
        random_name(&rng, buf, true);
        for (size_t i = 0; i < N; i++)
            v[i].seen = 0;
        calls = walk(rs, buf);
        for (size_t i = 0; i < N; i++) {
            bool m = in[i] && topic_matches(buf, strlen(buf), v[i].topic, v[i].len);
            if (v[i].seen != (m ? 1 : 0))
                ck_abort_msg("pattern \"%s\", topic \"%s\": seen %d times, matches %d", buf,
                             v[i].topic, v[i].seen, m);
            want += m;
        }
        require(calls == want);
    }
    free(v);
    free(in);
    retain_free(rs, NULL);
}
END_TEST

/* ------------------------------------------------------------ pruning ---- */

START_TEST(test_prune)
{
    struct retain_store *rs = retain_new();
    struct val abc, ab, abd, x;

    val_init(&abc, "a.b.c");
    val_init(&ab, "a.b");
    val_init(&abd, "a.b.d");
    val_init(&x, "x");
    set(rs, &abc, 1);
    set(rs, &ab, 1);
    set(rs, &abd, 1);
    set(rs, &x, 1);
    ck_assert_uint_eq(retain_node_count(rs), 5);
    clear(rs, "a.b"); /* still has children: stays */
    ck_assert_uint_eq(retain_node_count(rs), 5);
    clear(rs, "a.b.c");
    ck_assert_uint_eq(retain_node_count(rs), 4);
    clear(rs, "a.b.d"); /* takes "b" and "a" with it */
    ck_assert_uint_eq(retain_node_count(rs), 1);
    clear(rs, "x");
    ck_assert_uint_eq(retain_node_count(rs), 0);
    ck_assert_uint_eq(retain_count(rs), 0);
    ck_assert_uint_eq(retain_bytes(rs), 0);
    ck_assert_uint_eq(walk(rs, ">"), 0);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_prune_many)
{
    enum { N = 3000 };
    struct retain_store *rs = retain_new();
    struct val *v = xcalloc(N, sizeof *v);
    char buf[64];

    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "t.%zu.%zu.leaf", i % 10, i);
        val_init(&v[i], buf);
        set(rs, &v[i], 1);
    }
    ck_assert_uint_eq(retain_node_count(rs), 1 + 10 + 2 * N);
    ck_assert_uint_eq(walk(rs, "t.3.>"), N / 10);
    for (size_t i = 0; i < N; i++)
        require(clear(rs, v[i].topic) == &v[i]);
    ck_assert_uint_eq(retain_node_count(rs), 0);
    ck_assert_uint_eq(retain_bytes(rs), 0);
    free(v);
    retain_free(rs, NULL);
}
END_TEST

/* --------------------------------------------------------------- free ---- */

static void val_free(void *value)
{
    ((struct val *)value)->freed++;
}

START_TEST(test_free_values)
{
    struct retain_store *rs = retain_new();
    struct val v[3];

    val_init(&v[0], "a");
    val_init(&v[1], "a.b");
    val_init(&v[2], "c.d.e");
    for (int i = 0; i < 3; i++)
        set(rs, &v[i], 1);
    clear(rs, "a");
    retain_free(rs, val_free);
    ck_assert_int_eq(v[0].freed, 0); /* cleared: handed back, not the store's */
    ck_assert_int_eq(v[1].freed, 1);
    ck_assert_int_eq(v[2].freed, 1);
    retain_free(NULL, val_free);
}
END_TEST

/* ------------------------------------------------------------- cursor ---- */

/* What a cursor's offers are checked against. */
struct offers {
    struct retain_store *rs;
    size_t n;
    int refuse_every; /* refuse every Nth offer (0: never) */
    int calls;
};

static bool offer_cb(void *value, void *arg)
{
    struct offers *o = arg;
    struct val *v = value;

    if (o->refuse_every && ++o->calls % o->refuse_every == 0)
        return false;
    require(retain_get(o->rs, v->topic, v->len) == v); /* the current value */
    v->seen++;
    o->n++;
    return true;
}

/* Walks CUR to the end in steps of BUDGET; returns how many steps it took. */
static size_t walk_steps(struct retain_store *rs, struct retain_cursor *cur, const char *pattern,
                         size_t budget, struct offers *o)
{
    size_t steps = 0;

    for (;;) {
        size_t left = budget;
        enum retain_walk w =
            retain_cursor_walk(rs, cur, pattern, strlen(pattern), &left, offer_cb, o);
        steps++;
        if (w == RETAIN_WALK_DONE)
            return steps;
        require(w == RETAIN_WALK_REFUSED || left == 0);
    }
}

START_TEST(test_cursor_steps)
{
    enum { N = 1000 };
    struct retain_store *rs = retain_new();
    struct val *v = xcalloc(N, sizeof *v);
    struct retain_cursor cur;
    struct offers o = {.rs = rs};
    char buf[32];

    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "a.%zu", i);
        val_init(&v[i], buf);
        set(rs, &v[i], 1);
    }
    retain_cursor_init(rs, &cur);
    /* 1,001 nodes under the pattern, 10 at a time: about a hundred steps. */
    size_t steps = walk_steps(rs, &cur, "a.*", 10, &o);
    ck_assert_uint_ge(steps, 100);
    ck_assert_uint_le(steps, 102);
    ck_assert_uint_eq(o.n, N);
    for (size_t i = 0; i < N; i++)
        require(v[i].seen == 1);
    /* A finished cursor stays finished and holds nothing. */
    size_t left = 5;
    ck_assert_int_eq(retain_cursor_walk(rs, &cur, "a.*", 3, &left, offer_cb, &o),
                     RETAIN_WALK_DONE);
    retain_cursor_release(rs, &cur);
    for (size_t i = 0; i < N; i++)
        clear(rs, v[i].topic);
    ck_assert_uint_eq(retain_node_count(rs), 0);
    free(v);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_cursor_refused_offered_again)
{
    enum { N = 50 };
    struct retain_store *rs = retain_new();
    struct val v[N];
    struct retain_cursor cur;
    struct offers o = {.rs = rs, .refuse_every = 3};
    char buf[32];

    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "q.%zu.x", i);
        val_init(&v[i], buf);
        set(rs, &v[i], 1);
    }
    retain_cursor_init(rs, &cur);
    walk_steps(rs, &cur, "q.>", 1000, &o);
    ck_assert_uint_eq(o.n, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(v[i].seen, 1);
    retain_free(rs, NULL);
}
END_TEST

START_TEST(test_cursor_pins_its_node)
{
    struct retain_store *rs = retain_new();
    struct val a, b;
    struct retain_cursor cur;
    struct offers o = {.rs = rs};
    size_t left = 2; /* the root's child "p", then "p.a" (offered), then stop */

    val_init(&a, "p.a");
    val_init(&b, "p.b");
    set(rs, &a, 1);
    set(rs, &b, 1);
    retain_cursor_init(rs, &cur);
    ck_assert_int_eq(retain_cursor_walk(rs, &cur, "p.*", 3, &left, offer_cb, &o),
                     RETAIN_WALK_BUDGET);
    ck_assert_int_eq(a.seen, 1);
    ck_assert_int_eq(b.seen, 0);
    /* Clearing the node the cursor stands on keeps it (and its parent) while pinned. */
    clear(rs, "p.a");
    ck_assert_uint_eq(retain_node_count(rs), 3);
    left = 100;
    ck_assert_int_eq(retain_cursor_walk(rs, &cur, "p.*", 3, &left, offer_cb, &o),
                     RETAIN_WALK_DONE);
    ck_assert_int_eq(b.seen, 1);
    ck_assert_uint_eq(retain_node_count(rs), 2); /* let go of: pruned */
    clear(rs, "p.b");
    ck_assert_uint_eq(retain_node_count(rs), 0);
    /* Released half-way, a cursor lets go of its node too. */
    set(rs, &a, 1);
    set(rs, &b, 1);
    retain_cursor_init(rs, &cur);
    left = 2;
    retain_cursor_walk(rs, &cur, "p.*", 3, &left, offer_cb, &o);
    clear(rs, "p.a");
    clear(rs, "p.b");
    ck_assert_uint_gt(retain_node_count(rs), 0);
    retain_cursor_release(rs, &cur);
    ck_assert_uint_eq(retain_node_count(rs), 0);
    retain_free(rs, NULL);
}
END_TEST

/*
 * Random stores, random patterns, and random sets, replacements and clears
 * between the cursor's steps.  Values carry a generation: a value is one
 * struct, replaced by another struct.  Checked: every offer is a current
 * value (offer_cb) set before the cursor began that the pattern matches,
 * none twice; and every value that matched, existed at the start and was
 * never touched is offered.
 */
START_TEST(test_cursor_random)
{
    enum { TOPICS = 250, ROUNDS = 60, VALS = TOPICS * 8 };
    static const char *const toks[] = {"a", "b", "c", "$S"};
    static const char *const pats[] = {">", "a.>", "*.b", "a.*.c", "*.*", "$S.>", "b.a.c", "*.>"};
    uint64_t rng = 0x9e3779b97f4a7c15u;
    struct val *pool = xcalloc(VALS, sizeof *pool);
    char topics[TOPICS][64];
    size_t offered = 0, untouched_checked = 0;

    for (size_t i = 0; i < TOPICS; i++) {
        bool dup;
        do { /* distinct topics, so that a topic's index names its values */
            size_t n = 1 + rng_next(&rng) % 5, len = 0;
            for (size_t t = 0; t < n; t++)
                len += (size_t)snprintf(topics[i] + len, sizeof topics[i] - len, "%s%s",
                                        t ? "." : "", toks[rng_next(&rng) % (t ? 3 : 4)]);
            dup = false;
            for (size_t j = 0; j < i && !dup; j++)
                dup = strcmp(topics[i], topics[j]) == 0;
        } while (dup);
    }
    for (int round = 0; round < ROUNDS; round++) {
        struct retain_store *rs = retain_new();
        size_t used = 0;
        const char *pattern = pats[rng_next(&rng) % (sizeof pats / sizeof pats[0])];
        bool at_start[TOPICS] = {false}, touched[TOPICS] = {false};
        struct val *start_val[TOPICS] = {NULL};

        for (size_t i = 0; i < TOPICS; i++) {
            if (rng_next(&rng) % 2 && retain_get(rs, topics[i], strlen(topics[i])) == NULL) {
                val_init(&pool[used], topics[i]);
                set(rs, &pool[used], 1);
                used++;
            }
        }
        for (size_t i = 0; i < TOPICS; i++) {
            start_val[i] = retain_get(rs, topics[i], strlen(topics[i]));
            at_start[i] = start_val[i] != NULL;
        }
        struct retain_cursor cur;
        struct offers o = {.rs = rs, .refuse_every = (int)(rng_next(&rng) % 4)};
        retain_cursor_init(rs, &cur);
        for (;;) {
            size_t left = 1 + rng_next(&rng) % 5;
            enum retain_walk w =
                retain_cursor_walk(rs, &cur, pattern, strlen(pattern), &left, offer_cb, &o);
            if (w == RETAIN_WALK_DONE)
                break;
            /* A few changes between steps: set new, replace, clear. */
            for (int k = 0; k < 2 && used < VALS; k++) {
                size_t i = rng_next(&rng) % TOPICS;
                touched[i] = true;
                if (rng_next(&rng) % 3 == 0) {
                    clear(rs, topics[i]);
                } else {
                    val_init(&pool[used], topics[i]);
                    set(rs, &pool[used], 1);
                    used++;
                }
            }
        }
        for (size_t i = 0; i < used; i++) {
            struct val *v = &pool[i];
            bool matches = topic_matches(pattern, strlen(pattern), v->topic, v->len);
            size_t t = 0;
            while (strcmp(topics[t], v->topic) != 0)
                t++;
            require(v->seen <= 1);
            if (v->seen)
                require(matches && v == start_val[t]);
            if (matches && at_start[t] && !touched[t] && v == start_val[t]) {
                if (v->seen != 1)
                    ck_abort_msg("round %d pattern %s: %s (untouched, set before) never offered",
                                 round, pattern, v->topic);
                untouched_checked++;
            }
            offered += (size_t)v->seen;
        }
        retain_cursor_release(rs, &cur);
        retain_free(rs, NULL);
    }
    ck_assert_uint_gt(offered, 500); /* the walks did reach values */
    ck_assert_uint_gt(untouched_checked, 500);
    free(pool);
}
END_TEST

/* -------------------------------------------------------------- suite ---- */

static Suite *retain_suite(void)
{
    Suite *s = suite_create("retain");
    TCase *tc;

    tc = tcase_create("set");
    tcase_add_test(tc, test_set_replace_clear);
    tcase_add_test(tc, test_prefix_without_value);
    tcase_add_test(tc, test_cost_accounting_many);
    tcase_add_test(tc, test_nodes_charged);
    tcase_add_test(tc, test_bytes_if_set_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("walk");
    tcase_add_test(tc, test_walk_patterns);
    tcase_add_test(tc, test_walk_empty_store);
    tcase_add_test(tc, test_walk_longest_topic);
    tcase_add_test(tc, test_walk_random);
    suite_add_tcase(s, tc);

    tc = tcase_create("prune");
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_prune_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("free");
    tcase_add_test(tc, test_free_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("cursor");
    tcase_add_test(tc, test_cursor_steps);
    tcase_add_test(tc, test_cursor_refused_offered_again);
    tcase_add_test(tc, test_cursor_pins_its_node);
    tcase_add_test(tc, test_cursor_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retain_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
