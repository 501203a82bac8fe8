/*
 * unit_statedb.c - the store's LMDB state on its own: operations applied in
 * order in one transaction, prefix scans in key order, a retried batch put
 * in front of a newer one, a damaged environment renamed aside (never
 * deleted), and one written by another format version refused.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "statedb.h"

static struct logger quiet;
static char dir[256], path[300];

static void setup(void)
{
    log_init(&quiet, stderr, LOG_LEVEL_ERROR + 1);
    snprintf(dir, sizeof(dir), "/tmp/pigeon-unit-statedb-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct statedb *open_db(bool *moved)
{
    struct statedb *db;
    char why[256];
    bool m;

    ck_assert_msg(statedb_open(path, false, &quiet, &db, moved ? moved : &m, why, sizeof(why)) == 0,
                  "open: %s", why);
    return db;
}

static void apply(struct statedb *db, struct statedb_ops *o)
{
    const struct statedb_ops *lists[1] = {o};
    uint64_t ns;
    char why[160];

    ck_assert_msg(statedb_apply(db, lists, 1, &ns, why, sizeof(why)) == 0, "apply: %s", why);
}

struct seen {
    char keys[16][32];
    char vals[16][32];
    int n;
};

static int collect_cb(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct seen *s = arg;

    ck_assert_int_lt(s->n, 16);
    snprintf(s->keys[s->n], sizeof(s->keys[0]), "%.*s", (int)klen, (const char *)key);
    snprintf(s->vals[s->n], sizeof(s->vals[0]), "%.*s", (int)vlen, (const char *)val);
    s->n++;
    return 0;
}

static void scan(struct statedb *db, enum statedb_table t, const char *prefix, struct seen *s)
{
    char why[160];

    memset(s, 0, sizeof(*s));
    ck_assert_int_eq(statedb_foreach(db, t, prefix, prefix ? strlen(prefix) : 0, collect_cb, s, why,
                                     sizeof(why)),
                     0);
}

START_TEST(test_ops_in_order)
{
    struct statedb *db = open_db(NULL);
    struct statedb_ops o = {0};
    struct seen s;

    statedb_ops_put(&o, STATEDB_RETAINED, "a.b", 3, "v1", 2);
    statedb_ops_put(&o, STATEDB_RETAINED, "a.c", 3, "v2", 2);
    statedb_ops_put(&o, STATEDB_RETAINED, "a.b", 3, "v3", 2); /* the later one wins */
    statedb_ops_del(&o, STATEDB_RETAINED, "zz", 2);           /* absent: fine */
    statedb_ops_put(&o, STATEDB_PENDING, "s\0d\0x", 5, "1", 1);
    apply(db, &o);
    statedb_ops_release(&o);
    scan(db, STATEDB_RETAINED, NULL, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.keys[0], "a.b");
    ck_assert_str_eq(s.vals[0], "v3");
    ck_assert_str_eq(s.keys[1], "a.c");
    statedb_ops_del(&o, STATEDB_RETAINED, "a.b", 3);
    apply(db, &o);
    statedb_ops_release(&o);
    scan(db, STATEDB_RETAINED, "a.", &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.keys[0], "a.c");
    statedb_close(db);

    /* and it is all there after a reopen */
    db = open_db(NULL);
    scan(db, STATEDB_RETAINED, NULL, &s);
    ck_assert_int_eq(s.n, 1);
    scan(db, STATEDB_PENDING, NULL, &s);
    ck_assert_int_eq(s.n, 1);
    statedb_close(db);
}
END_TEST

START_TEST(test_prefix_scan_in_key_order)
{
    struct statedb *db = open_db(NULL);
    struct statedb_ops o = {0};
    struct seen s;
    const char *keys[] = {"b2", "a1", "b1", "c", "b3", "ab"};

    for (size_t i = 0; i < 6; i++)
        statedb_ops_put(&o, STATEDB_CONSUMERS, keys[i], strlen(keys[i]), "x", 1);
    apply(db, &o);
    statedb_ops_release(&o);
    scan(db, STATEDB_CONSUMERS, "b", &s);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.keys[0], "b1");
    ck_assert_str_eq(s.keys[2], "b3");
    scan(db, STATEDB_CONSUMERS, "a", &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.keys[0], "a1");
    ck_assert_str_eq(s.keys[1], "ab");
    scan(db, STATEDB_CONSUMERS, "zz", &s);
    ck_assert_int_eq(s.n, 0);
    statedb_close(db);
}
END_TEST

/* A batch that failed goes in front of the one gathered since: its operations happened first. */
START_TEST(test_prepend)
{
    struct statedb *db = open_db(NULL);
    struct statedb_ops older = {0}, newer = {0};
    struct seen s;

    statedb_ops_put(&older, STATEDB_PENDING, "k", 1, "old", 3);
    statedb_ops_put(&newer, STATEDB_PENDING, "k", 1, "new", 3);
    statedb_ops_put(&newer, STATEDB_PENDING, "j", 1, "j", 1);
    statedb_ops_prepend(&newer, &older);
    ck_assert_uint_eq(older.n, 0);
    ck_assert_uint_eq(newer.n, 3);
    apply(db, &newer);
    statedb_ops_release(&newer);
    scan(db, STATEDB_PENDING, "k", &s);
    ck_assert_str_eq(s.vals[0], "new");
    statedb_close(db);
}
END_TEST

static int count_aside(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "state.broken-", 13) == 0;
    closedir(d);
    return n;
}

START_TEST(test_damaged_set_aside)
{
    struct statedb *db = open_db(NULL);
    struct statedb_ops o = {0};
    bool moved = true;
    char file[400];
    struct seen s;

    statedb_ops_put(&o, STATEDB_RETAINED, "t", 1, "v", 1);
    apply(db, &o);
    statedb_ops_release(&o);
    statedb_close(db);
    snprintf(file, sizeof(file), "%s/data.mdb", path);
    int fd = open(file, O_WRONLY);
    char junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    close(fd);

    db = open_db(&moved);
    ck_assert(moved);
    ck_assert_int_eq(count_aside(), 1);
    scan(db, STATEDB_RETAINED, NULL, &s);
    ck_assert_int_eq(s.n, 0); /* a new, empty one */
    statedb_close(db);
    db = open_db(&moved);
    ck_assert(!moved);
    statedb_close(db);
}
END_TEST

START_TEST(test_other_version_refused)
{
    struct statedb *db = open_db(NULL);
    struct statedb_ops o = {0};
    char why[256];
    bool moved;

    statedb_ops_put(&o, STATEDB_META, "version", 7, "9", 1);
    apply(db, &o);
    statedb_ops_release(&o);
    statedb_close(db);
    ck_assert_int_eq(statedb_open(path, false, &quiet, &db, &moved, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "another version"));
    ck_assert(!moved);
    ck_assert_int_eq(count_aside(), 0);
}
END_TEST

static Suite *statedb_suite(void)
{
    Suite *s = suite_create("statedb");
    TCase *tc = tcase_create("operations");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ops_in_order);
    tcase_add_test(tc, test_prefix_scan_in_key_order);
    tcase_add_test(tc, test_prepend);
    suite_add_tcase(s, tc);
    tc = tcase_create("recovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_damaged_set_aside);
    tcase_add_test(tc, test_other_version_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(statedb_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
