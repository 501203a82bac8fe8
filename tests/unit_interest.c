/*
 * unit_interest.c - the remote-interest index: entries set, changed and
 * removed by field; a node reached by overlapping patterns is one target
 * with every matching subscription counted; queue groups are picked in a
 * smooth weighted round robin by member counts, with local members first;
 * clearing and removing nodes leaves nothing behind; and a randomized
 * comparison with topic_matches (fixed seed).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "interest.h"
#include "topic.h"

/* A node as the backplane would own it; the index never looks inside. */
struct owner {
    int id;
};

static int set(struct interest *in, struct interest_node *n, const char *field, uint32_t count)
{
    return interest_set_field(in, n, field, strlen(field), count);
}

static const struct interest_route *route(struct interest *in, const char *topic)
{
    ck_assert_int_eq(topic_check(topic, strlen(topic), TOPIC_PUBLISH), TOPIC_OK);
    return interest_route(in, topic, strlen(topic), hmap_hash(topic, strlen(topic)), NULL, NULL);
}

/* The target for OWNER in R, or NULL. */
static const struct interest_target *target_of(const struct interest_route *r,
                                               const struct owner *o)
{
    const struct interest_target *t = NULL;

    for (size_t i = 0; i < r->n_targets; i++) {
        if (r->targets[i].owner == o) {
            ck_assert_ptr_null(t); /* a node is a target once */
            t = &r->targets[i];
        }
    }
    return t;
}

/* ------------------------------------------------------------ entries ---- */

START_TEST(test_fields)
{
    struct interest *in = interest_new();
    struct owner o = {1};
    struct interest_node *n = interest_node_add(in, &o);
    const char *p, *q;
    size_t plen, qlen;

    ck_assert_int_eq(interest_field_split("a.>", 3, &p, &plen, &q, &qlen), 0);
    ck_assert_uint_eq(plen, 3);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(interest_field_split("a.* workers", 11, &p, &plen, &q, &qlen), 0);
    ck_assert_uint_eq(plen, 3);
    ck_assert_uint_eq(qlen, 7);
    ck_assert_int_eq(memcmp(q, "workers", 7), 0);
    ck_assert_int_eq(interest_field_split(" a", 2, &p, &plen, &q, &qlen), -1);
    ck_assert_int_eq(interest_field_split("a ", 2, &p, &plen, &q, &qlen), -1);
    ck_assert_int_eq(interest_field_split("a b c", 5, &p, &plen, &q, &qlen), -1);

    uint64_t g0 = interest_generation(in);
    ck_assert_uint_ne(g0, 0);
    ck_assert_int_eq(set(in, n, "a.>", 2), 0);
    ck_assert_uint_ne(interest_generation(in), g0); /* any change of an entry moves it */
    ck_assert_int_eq(set(in, n, "a.> workers", 3), 0);
    ck_assert_int_eq(set(in, n, "a..b", 1), -1);    /* not a pattern */
    ck_assert_int_eq(set(in, n, "a.> x.*", 1), -1); /* not a group name */
    ck_assert_int_eq(set(in, n, "a.>> q", 1), -1);
    ck_assert_uint_eq(interest_entry_count(in), 2);
    ck_assert_uint_eq(interest_node_get(n, "a.>", 3), 2);
    ck_assert_uint_eq(interest_node_get(n, "a.> workers", 11), 3);
    ck_assert_int_eq(set(in, n, "a.>", 5), 0); /* a new count, the same entry */
    ck_assert_uint_eq(interest_entry_count(in), 2);
    ck_assert_uint_eq(interest_node_get(n, "a.>", 3), 5);
    ck_assert_int_eq(set(in, n, "a.>", 0), 0);
    ck_assert_int_eq(set(in, n, "never.there", 0), 0);
    ck_assert_uint_eq(interest_entry_count(in), 1);
    ck_assert_uint_eq(interest_node_get(n, "a.>", 3), 0);
    interest_node_remove(in, n);
    ck_assert_uint_eq(interest_entry_count(in), 0);
    ck_assert_uint_eq(interest_node_count(in), 0);
    interest_free(in);
}
END_TEST

/* ------------------------------------------------------------ routing ---- */

START_TEST(test_overlap_is_one_target)
{
    struct interest *in = interest_new();
    struct owner a = {1}, b = {2};
    struct interest_node *na = interest_node_add(in, &a), *nb = interest_node_add(in, &b);

    set(in, na, "orders.>", 1);
    set(in, na, "orders.*", 2);
    set(in, na, "orders.eu", 1);
    set(in, nb, "stock.>", 1);

    const struct interest_route *r = route(in, "orders.eu");
    ck_assert_uint_eq(r->n_targets, 1);
    ck_assert_uint_eq(target_of(r, &a)->subs, 4);
    ck_assert_uint_eq(r->n_picks, 0);

    r = route(in, "orders.eu.new"); /* only orders.> */
    ck_assert_uint_eq(r->n_targets, 1);
    ck_assert_uint_eq(target_of(r, &a)->subs, 1);

    r = route(in, "nothing.here");
    ck_assert_uint_eq(r->n_targets, 0);

    set(in, nb, ">", 1);
    r = route(in, "orders.eu");
    ck_assert_uint_eq(r->n_targets, 2);
    ck_assert_uint_eq(target_of(r, &b)->subs, 1);
    r = route(in, "$SYS.broker.stats"); /* a wildcard first token does not reach '$' topics */
    ck_assert_uint_eq(r->n_targets, 0);

    interest_node_clear(in, na);
    ck_assert_uint_eq(interest_node_entries(na), 0);
    r = route(in, "orders.eu");
    ck_assert_uint_eq(r->n_targets, 1);
    ck_assert_ptr_nonnull(target_of(r, &b));
    interest_node_remove(in, na);
    interest_node_remove(in, nb);
    interest_free(in);
}
END_TEST

/* Picks for (pattern "jobs.*", queue "w") over ROUNDS routes of "jobs.x", per owner. */
static void count_picks(struct interest *in, int rounds, const struct owner *o, size_t n_o,
                        int *picks)
{
    memset(picks, 0, n_o * sizeof(*picks));
    for (int k = 0; k < rounds; k++) {
        const struct interest_route *r = route(in, "jobs.x");
        ck_assert_uint_eq(r->n_picks, 1);
        ck_assert_str_eq(r->picks[0].pattern, "jobs.*");
        ck_assert_str_eq(r->picks[0].queue, "w");
        const struct interest_target *t = &r->targets[r->picks[0].target];
        for (size_t i = 0; i < n_o; i++)
            picks[i] += t->owner == &o[i];
    }
}

START_TEST(test_group_weighted)
{
    struct interest *in = interest_new();
    struct owner o[3] = {{0}, {1}, {2}};
    struct interest_node *n[3];
    int picks[3];

    for (int i = 0; i < 3; i++)
        n[i] = interest_node_add(in, &o[i]);
    set(in, n[0], "jobs.* w", 1);
    set(in, n[1], "jobs.* w", 2);
    set(in, n[2], "jobs.* w", 3);
    count_picks(in, 600, o, 3, picks);
    ck_assert_int_eq(picks[0], 100); /* exactly proportional over whole cycles */
    ck_assert_int_eq(picks[1], 200);
    ck_assert_int_eq(picks[2], 300);

    /* Smooth: never the same node twice in a row while another is owed a turn, at equal weights. */
    set(in, n[1], "jobs.* w", 1);
    set(in, n[2], "jobs.* w", 1);
    const void *last = NULL;
    for (int k = 0; k < 30; k++) {
        const struct interest_route *r = route(in, "jobs.x");
        const void *now = r->targets[r->picks[0].target].owner;
        ck_assert_ptr_ne(now, last);
        last = now;
    }

    /* A node with plain interest and the group's turn is still one target. */
    set(in, n[0], "jobs.>", 1);
    set(in, n[1], "jobs.* w", 0);
    set(in, n[2], "jobs.* w", 0);
    const struct interest_route *r = route(in, "jobs.x");
    ck_assert_uint_eq(r->n_targets, 1);
    ck_assert_uint_eq(r->targets[0].subs, 2);
    ck_assert_uint_eq(r->n_picks, 1);
    for (int i = 0; i < 3; i++)
        interest_node_remove(in, n[i]);
    interest_free(in);
}
END_TEST

static bool local_w(void *arg, const char *pattern, const char *queue)
{
    int *asked = arg;
    (*asked)++;
    return strcmp(pattern, "jobs.*") == 0 && strcmp(queue, "w") == 0;
}

START_TEST(test_group_local_first)
{
    struct interest *in = interest_new();
    struct owner a = {1};
    struct interest_node *n = interest_node_add(in, &a);
    int asked = 0;

    set(in, n, "jobs.* w", 4);
    set(in, n, "jobs.* other", 1);
    const struct interest_route *r =
        interest_route(in, "jobs.x", 6, hmap_hash("jobs.x", 6), local_w, &asked); /* "w" here */
    ck_assert_int_eq(asked, 2);
    ck_assert_uint_eq(r->n_picks, 1);
    ck_assert_str_eq(r->picks[0].queue, "other");
    ck_assert_uint_eq(r->n_targets, 1);
    ck_assert_uint_eq(r->targets[0].subs, 1);
    set(in, n, "jobs.* other", 0);
    r = interest_route(in, "jobs.x", 6, hmap_hash("jobs.x", 6), local_w, &asked);
    ck_assert_uint_eq(r->n_targets, 0); /* no remote turn at all */
    interest_node_remove(in, n);
    interest_free(in);
}
END_TEST

/* --------------------------------------------------------- property ---- */

static void random_token(uint64_t *rng, char *out, size_t *len, bool pattern)
{
    static const char *const lit[] = {"a", "b", "c"};
    uint64_t x = *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned k = (unsigned)(x >> 33) % (pattern ? 5 : 3);
    const char *t = k < 3 ? lit[k] : k == 3 ? "*" : ">";
    memcpy(out + *len, t, 1);
    *len += 1;
}

/* A random topic or pattern of 1..3 tokens over {a,b,c} (and '*', '>' last). */
static size_t random_subject(uint64_t *rng, char *out, bool pattern)
{
    size_t len = 0;
    unsigned n = 1 + (unsigned)((*rng = *rng * 6364136223846793005ULL + 1) >> 40) % 3;

    for (unsigned i = 0; i < n; i++) {
        if (i)
            out[len++] = '.';
        random_token(rng, out, &len, pattern);
        if (out[len - 1] == '>' && i + 1 < n)
            out[len - 1] = '*';
    }
    out[len] = '\0';
    return len;
}

START_TEST(test_property_random)
{
    enum { NODES = 4, FIELDS = 12 };
    struct interest *in = interest_new();
    struct owner o[NODES];
    struct interest_node *n[NODES];
    char pats[NODES][FIELDS][16];
    uint32_t counts[NODES][FIELDS];
    uint64_t rng = 42;

    for (int i = 0; i < NODES; i++) {
        o[i].id = i;
        n[i] = interest_node_add(in, &o[i]);
        for (int j = 0; j < FIELDS; j++) {
            random_subject(&rng, pats[i][j], true);
            counts[i][j] = 0;
        }
    }
    for (int round = 0; round < 3000; round++) {
        int i = (int)((rng = rng * 6364136223846793005ULL + 7) >> 33) % NODES;
        int j = (int)(rng >> 45) % FIELDS;
        uint32_t c = (uint32_t)(rng >> 20) % 3;
        ck_assert_int_eq(set(in, n[i], pats[i][j], c), 0);
        /* The same pattern twice on one node is one entry: keep the counts agreeing. */
        for (int k = 0; k < FIELDS; k++)
            if (strcmp(pats[i][k], pats[i][j]) == 0)
                counts[i][k] = c;
        char topic[16];
        random_subject(&rng, topic, false);
        const struct interest_route *r = route(in, topic);
        for (int a = 0; a < NODES; a++) {
            uint32_t want = 0;
            for (int k = 0; k < FIELDS; k++) {
                bool dup = false;
                for (int m = 0; m < k; m++)
                    dup |= strcmp(pats[a][m], pats[a][k]) == 0;
                if (!dup && counts[a][k] > 0 &&
                    topic_matches(pats[a][k], strlen(pats[a][k]), topic, strlen(topic)))
                    want += counts[a][k];
            }
            const struct interest_target *t = target_of(r, &o[a]);
            ck_assert_uint_eq(t != NULL ? t->subs : 0, want);
        }
    }
    for (int i = 0; i < NODES; i++)
        interest_node_remove(in, n[i]);
    interest_free(in);
}
END_TEST

static Suite *interest_suite(void)
{
    Suite *s = suite_create("interest");
    TCase *tc;

    tc = tcase_create("entries");
    tcase_add_test(tc, test_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("routing");
    tcase_add_test(tc, test_overlap_is_one_target);
    tcase_add_test(tc, test_group_weighted);
    tcase_add_test(tc, test_group_local_first);
    suite_add_tcase(s, tc);

    tc = tcase_create("property");
    tcase_add_test(tc, test_property_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(interest_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
