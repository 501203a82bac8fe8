/*
 * unit_hmap.c - the hash map: basic get/put/remove, growth and shrinking,
 * forced collisions (one hash for every key, and clusters that wrap around
 * the end of the array), iteration, and 100,000 keys under random
 * operations checked against a plain array (fixed seed).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "xalloc.h"

/* A value that carries its own key, as the map's users do. */
struct rec {
    char key[24];
    size_t len;
    int id;
    bool in; /* in the map, for the reference checks */
    int seen;
};

static struct rec *recs_new(size_t n)
{
    struct rec *r = xcalloc(n, sizeof *r);

    for (size_t i = 0; i < n; i++) {
        r[i].len = (size_t)snprintf(r[i].key, sizeof r[i].key, "k%zu", i);
        r[i].id = (int)i;
    }
    return r;
}

static void *put(struct hmap *m, struct rec *r)
{
    return hmap_put(m, r->key, r->len, r);
}

static void *get(const struct hmap *m, const struct rec *r)
{
    return hmap_get(m, r->key, r->len);
}

/*
 * For assertions in loops of millions: Check marks every passing ck_assert
 * (a write to a pipe in fork mode), so the hot loops only call into Check
 * when something fails.
 */
#define require(expr)                                                                              \
    do {                                                                                           \
        if (!(expr))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #expr);                                          \
    } while (0)

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* -------------------------------------------------------------- basic ---- */

START_TEST(test_empty)
{
    struct hmap m = HMAP_INIT;
    size_t pos = 0;

    ck_assert_uint_eq(hmap_count(&m), 0);
    ck_assert_uint_eq(hmap_bytes(&m), 0);
    ck_assert_ptr_null(hmap_get(&m, "a", 1));
    ck_assert_ptr_null(hmap_remove(&m, "a", 1));
    ck_assert_ptr_null(hmap_next(&m, &pos, NULL, NULL));
    hmap_release(&m);
    hmap_init(&m);
    ck_assert_ptr_null(m.slots);
}
END_TEST

START_TEST(test_put_get_replace)
{
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(3), other;

    ck_assert_ptr_null(put(&m, &r[0]));
    ck_assert_ptr_null(put(&m, &r[1]));
    ck_assert_uint_eq(hmap_count(&m), 2);
    ck_assert_ptr_eq(get(&m, &r[0]), &r[0]);
    ck_assert_ptr_eq(get(&m, &r[1]), &r[1]);
    ck_assert_ptr_null(get(&m, &r[2]));
    /* A key is looked up by its bytes, wherever they are. */
    ck_assert_ptr_eq(hmap_get(&m, "k1", 2), &r[1]);
    ck_assert_ptr_null(hmap_get(&m, "k", 1));
    ck_assert_ptr_null(hmap_get(&m, "k10", 3));

    /* Replacing returns the old value and borrows the new value's key. */
    other = r[0];
    ck_assert_ptr_eq(put(&m, &other), &r[0]);
    ck_assert_uint_eq(hmap_count(&m), 1 + 1);
    memset(r[0].key, 'X', sizeof r[0].key); /* the old key is no longer used */
    ck_assert_ptr_eq(hmap_get(&m, "k0", 2), &other);
    hmap_release(&m);
    free(r);
}
END_TEST

START_TEST(test_remove)
{
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(4);

    for (int i = 0; i < 4; i++)
        put(&m, &r[i]);
    ck_assert_ptr_eq(hmap_remove(&m, "k2", 2), &r[2]);
    ck_assert_ptr_null(hmap_remove(&m, "k2", 2));
    ck_assert_uint_eq(hmap_count(&m), 3);
    ck_assert_ptr_null(get(&m, &r[2]));
    for (int i = 0; i < 4; i++) {
        if (i != 2)
            ck_assert_ptr_eq(get(&m, &r[i]), &r[i]);
    }
    for (int i = 0; i < 4; i++)
        hmap_remove(&m, r[i].key, r[i].len);
    ck_assert_uint_eq(hmap_count(&m), 0);
    ck_assert_uint_eq(hmap_bytes(&m), 0); /* the last removal frees the array */
    ck_assert_ptr_null(m.slots);
    free(r);
}
END_TEST

START_TEST(test_empty_key)
{
    struct hmap m = HMAP_INIT;
    struct rec r = {.len = 0};

    ck_assert_ptr_null(hmap_put(&m, r.key, 0, &r));
    ck_assert_ptr_eq(hmap_get(&m, "", 0), &r);
    ck_assert_ptr_null(hmap_get(&m, "a", 1));
    ck_assert_ptr_eq(hmap_remove(&m, "", 0), &r);
    ck_assert_uint_eq(hmap_count(&m), 0);
}
END_TEST

START_TEST(test_binary_keys)
{
    struct hmap m = HMAP_INIT;
    uint32_t sids[1000];

    for (uint32_t i = 0; i < 1000; i++) {
        sids[i] = i;
        ck_assert_ptr_null(hmap_put(&m, &sids[i], sizeof sids[i], &sids[i]));
    }
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t k = i;
        ck_assert_ptr_eq(hmap_get(&m, &k, sizeof k), &sids[i]);
    }
    hmap_release(&m);
}
END_TEST

/* --------------------------------------------------------------- hash ---- */

START_TEST(test_hash)
{
    char a[] = "orders.eu.new", b[] = "orders.eu.new";

    ck_assert_uint_eq(hmap_hash(a, strlen(a)), hmap_hash(b, strlen(b)));
    ck_assert_uint_ne(hmap_hash("1000", 4), hmap_hash("10000", 5));
    ck_assert_uint_ne(hmap_hash("a", 1), hmap_hash("a\0", 2));
    ck_assert_uint_ne(hmap_hash("", 0), hmap_hash("\0", 1));
    ck_assert_uint_ne(hmap_hash("abcdefgh", 8), hmap_hash("abcdefgi", 8));
    ck_assert_uint_ne(hmap_hash("abcdefghijklmnopq", 17), hmap_hash("abcdefghijklmnopr", 17));
    ck_assert_uint_ne(hmap_hash("xabcdefghijklmnop", 17), hmap_hash("yabcdefghijklmnop", 17));
}
END_TEST

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Keys of every length up to 64 that differ from zeros in one bit: all
 * 16,640 hashes differ (about 0.03 collisions would be expected by chance). */
/* A seed changes every hash; maps filled after seeding work; seed 0 is the default. */
START_TEST(test_seed)
{
    static const char *const keys[] = {"a", "orders", "bench.idle.12345", "_INBOX.abcdef.17"};
    uint32_t before[4];
    for (int i = 0; i < 4; i++)
        before[i] = hmap_hash(keys[i], strlen(keys[i]));
    hmap_seed(UINT64_C(0x0123456789abcdef));
    int changed = 0;
    for (int i = 0; i < 4; i++)
        changed += hmap_hash(keys[i], strlen(keys[i])) != before[i];
    ck_assert_int_eq(changed, 4);
    struct hmap m = HMAP_INIT;
    char buf[1000][16];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf[i], sizeof(buf[i]), "k%d", i);
        ck_assert_ptr_null(hmap_put(&m, buf[i], strlen(buf[i]), buf[i]));
    }
    for (int i = 0; i < 1000; i++)
        ck_assert_ptr_eq(hmap_get(&m, buf[i], strlen(buf[i])), buf[i]);
    hmap_release(&m);
    hmap_seed(0);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(hmap_hash(keys[i], strlen(keys[i])), before[i]);
}
END_TEST

START_TEST(test_hash_bit_flips)
{
    unsigned char buf[64] = {0};
    uint32_t *hs = xmalloc(64 * 65 / 2 * 8 * sizeof *hs);
    size_t n = 0;

    for (size_t len = 1; len <= 64; len++) {
        for (size_t bit = 0; bit < len * 8; bit++) {
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            hs[n++] = hmap_hash(buf, len);
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
    }
    qsort(hs, n, sizeof *hs, cmp_u32);
    for (size_t i = 1; i < n; i++)
        ck_assert_uint_ne(hs[i], hs[i - 1]);
    free(hs);
}
END_TEST

/* --------------------------------------------------------- growth/size ---- */

START_TEST(test_growth_and_shrink)
{
    enum { N = 10000 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N);
    size_t slot = 0;

    put(&m, &r[0]);
    slot = hmap_bytes(&m); /* one slot: a map with one key stays small */
    ck_assert_uint_gt(slot, 0);
    ck_assert_uint_le(slot, 32);
    for (size_t i = 1; i < N; i++) {
        size_t cap;
        put(&m, &r[i]);
        cap = hmap_bytes(&m) / slot;
        ck_assert_uint_eq(cap & (cap - 1), 0); /* a power of two */
        ck_assert_uint_ge(cap, i + 1);
        if (cap > 8)
            ck_assert_uint_le(i + 1, cap - cap / 4); /* load at most 3/4 */
        ck_assert_uint_le(cap, 4 * (i + 1));         /* and not wasteful */
    }
    for (size_t i = 0; i < N; i++)
        ck_assert_ptr_eq(get(&m, &r[i]), &r[i]);
    for (size_t i = 0; i < N - 10; i++)
        ck_assert_ptr_eq(hmap_remove(&m, r[i].key, r[i].len), &r[i]);
    ck_assert_uint_le(hmap_bytes(&m) / slot, 64); /* it shrank with the removals */
    for (size_t i = N - 10; i < N; i++)
        ck_assert_ptr_eq(get(&m, &r[i]), &r[i]);
    hmap_release(&m);
    ck_assert_uint_eq(hmap_bytes(&m), 0);
    free(r);
}
END_TEST

START_TEST(test_reserve)
{
    enum { N = 1000 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N);
    size_t bytes;

    hmap_reserve(&m, 0);
    ck_assert_uint_eq(hmap_bytes(&m), 0);
    hmap_reserve(&m, N);
    bytes = hmap_bytes(&m);
    ck_assert_uint_gt(bytes, 0);
    for (size_t i = 0; i < N; i++)
        put(&m, &r[i]);
    ck_assert_uint_eq(hmap_bytes(&m), bytes); /* no growth while filling */
    hmap_reserve(&m, 10);                     /* never shrinks */
    ck_assert_uint_eq(hmap_bytes(&m), bytes);
    for (size_t i = 0; i < N; i++)
        require(get(&m, &r[i]) == &r[i]);
    hmap_release(&m);
    free(r);
}
END_TEST

/* ---------------------------------------------------------- collisions ---- */

/* Every key under one hash: one long Robin Hood run, then removals in a
 * scrambled order, each checked against the survivors. */
START_TEST(test_all_collide)
{
    enum { N = 300 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N);
    uint32_t h = (uint32_t)_i * 0x9e3779b9u; /* several homes, 0 included */

    for (size_t i = 0; i < N; i++) {
        require(hmap_put_h(&m, r[i].key, r[i].len, h, &r[i]) == NULL);
        r[i].in = true;
    }
    require(hmap_get_h(&m, "zz", 2, h) == NULL);
    for (size_t i = 0; i < N; i++)
        require(hmap_get_h(&m, r[i].key, r[i].len, h) == &r[i]);
    for (size_t k = 0; k < N; k++) {
        size_t i = (k * 7919) % N;
        require(hmap_remove_h(&m, r[i].key, r[i].len, h) == &r[i]);
        r[i].in = false;
        for (size_t j = 0; j < N; j++)
            require(hmap_get_h(&m, r[j].key, r[j].len, h) == (r[j].in ? &r[j] : NULL));
    }
    require(hmap_count(&m) == 0);
    free(r);
}
END_TEST

/* Keys whose hashes crowd the last slots, so runs wrap past the array's end;
 * removals must shift entries back across the wrap. */
START_TEST(test_wraparound)
{
    enum { N = 12 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N);
    uint64_t rng = 12345;

    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < N; i++) {
            r[i].in = true;
            /* hashes 0xfffffffd..0xffffffff and 0: homes at the end and start */
            hmap_put_h(&m, r[i].key, r[i].len, (uint32_t)(0xfffffffdu + i % 4), &r[i]);
        }
        for (size_t k = 0; k < N; k++) {
            size_t i = rng_next(&rng) % N;
            if (!r[i].in)
                continue;
            require(hmap_remove_h(&m, r[i].key, r[i].len, 0xfffffffdu + i % 4) == &r[i]);
            r[i].in = false;
            for (size_t j = 0; j < N; j++) {
                void *got = hmap_get_h(&m, r[j].key, r[j].len, (uint32_t)(0xfffffffdu + j % 4));
                require(got == (r[j].in ? &r[j] : NULL));
            }
        }
        for (size_t i = 0; i < N; i++)
            hmap_remove_h(&m, r[i].key, r[i].len, (uint32_t)(0xfffffffdu + i % 4));
        require(hmap_count(&m) == 0);
    }
    free(r);
}
END_TEST

/* Small arrays fill up completely; lookups of absent keys must still end. */
START_TEST(test_full_small)
{
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(9);

    for (size_t i = 0; i < 8; i++) {
        put(&m, &r[i]);
        ck_assert_ptr_null(get(&m, &r[8]));
        for (size_t j = 0; j <= i; j++)
            ck_assert_ptr_eq(get(&m, &r[j]), &r[j]);
    }
    ck_assert_uint_eq(hmap_count(&m), 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_ptr_eq(hmap_remove(&m, r[i].key, r[i].len), &r[i]);
    hmap_release(&m);
    free(r);
}
END_TEST

/* ----------------------------------------------------------- iteration ---- */

START_TEST(test_iterate)
{
    enum { N = 1000 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N), *v;
    size_t pos = 0, n = 0, len;
    const void *key;

    for (size_t i = 0; i < N; i += 2)
        put(&m, &r[i]);
    while ((v = hmap_next(&m, &pos, &key, &len)) != NULL) {
        ck_assert_ptr_eq(key, v->key);
        ck_assert_uint_eq(len, v->len);
        v->seen++;
        n++;
    }
    ck_assert_uint_eq(n, N / 2);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(r[i].seen, i % 2 == 0);
    ck_assert_ptr_null(hmap_next(&m, &pos, NULL, NULL)); /* stays at the end */
    hmap_release(&m);
    free(r);
}
END_TEST

/* ---------------------------------------------------------- reference ---- */

static void check_against(const struct hmap *m, struct rec *r, size_t n, size_t want)
{
    size_t pos = 0, seen = 0;
    struct rec *v;

    require(hmap_count(m) == want);
    for (size_t i = 0; i < n; i++)
        require(get(m, &r[i]) == (r[i].in ? &r[i] : NULL));
    while ((v = hmap_next(m, &pos, NULL, NULL)) != NULL) {
        require(v->in);
        seen++;
    }
    require(seen == want);
}

START_TEST(test_random_100k)
{
    enum { N = 100000 };
    struct hmap m = HMAP_INIT;
    struct rec *r = recs_new(N);
    uint64_t rng = 0x243f6a8885a308d3u;
    size_t live = 0;

    for (int phase = 0; phase < 4; phase++) {
        /* Phases 0 and 2 mostly insert, 1 and 3 mostly remove. */
        unsigned put_pct = phase % 2 == 0 ? 80 : 20;
        for (int op = 0; op < 300000; op++) {
            struct rec *x = &r[rng_next(&rng) % N];
            unsigned dice = (unsigned)(rng_next(&rng) % 100);
            if (dice < put_pct) {
                void *old = put(&m, x);
                require(old == (x->in ? x : NULL));
                live += !x->in;
                x->in = true;
            } else {
                void *old = hmap_remove(&m, x->key, x->len);
                require(old == (x->in ? x : NULL));
                live -= x->in;
                x->in = false;
            }
        }
        check_against(&m, r, N, live);
    }
    for (size_t i = 0; i < N; i++) {
        if (r[i].in)
            hmap_remove(&m, r[i].key, r[i].len);
        r[i].in = false;
    }
    check_against(&m, r, N, 0);
    require(hmap_bytes(&m) == 0);
    free(r);
}
END_TEST

/* -------------------------------------------------------------- suite ---- */

static Suite *hmap_suite(void)
{
    Suite *s = suite_create("hmap");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_put_get_replace);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_empty_key);
    tcase_add_test(tc, test_binary_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("hash");
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_hash_bit_flips);
    tcase_add_test(tc, test_seed);
    suite_add_tcase(s, tc);

    tc = tcase_create("size");
    tcase_add_test(tc, test_growth_and_shrink);
    tcase_add_test(tc, test_reserve);
    suite_add_tcase(s, tc);

    tc = tcase_create("collisions");
    tcase_add_loop_test(tc, test_all_collide, 0, 4);
    tcase_add_test(tc, test_wraparound);
    tcase_add_test(tc, test_full_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("iterate");
    tcase_add_test(tc, test_iterate);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_random_100k);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hmap_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
