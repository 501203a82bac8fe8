/*
 * unit_users.c - the users file: a good file compiled (names, credentials,
 * lists with "%u", repeated list keys, comments), token lookup, references
 * that outlive their policy, every kind of bad file with its FILE:LINE:
 * reason, `pigeond -t`'s collect-every-error mode, and reading the file
 * (missing, a directory, a FIFO, a NUL byte).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"
#include "users.h"

/* Real hashes of "secret", as libxcrypt makes them. */
#define YESCRYPT "$y$j9T$mCCijNaEUOSn8n4f3MyOs/$jBxfoSnEFA4B.5MEmS86USXxV6AJiIgzlpWwnr.EAR9"
#define BCRYPT   "$2b$05$yrvofpiKJMkl4lG5OAr4U.WabdZgnaEtcFZmEa3tBn5Qew1uaEThS"
/* A well-formed token digest (the token behind it does not matter here). */
#define TOKEN1 "sha256:6d27c2a3a2bfd1fd7fcd3f5d6fa8be6b4ae5b8bd5c45fbde7f1ab3a4a4b6aa3e"

/* "sha256:" and the hex digest of RAW, into BUF. */
static const char *token_hash(const char *raw, char *buf)
{
    unsigned char d[USERS_TOKEN_BYTES];

    users_token_digest(raw, strlen(raw), d);
    strcpy(buf, "sha256:");
    for (size_t i = 0; i < sizeof(d); i++)
        sprintf(buf + 7 + 2 * i, "%02x", d[i]);
    return buf;
}

static struct users *load_ok(const char *text)
{
    struct users *u = NULL;
    struct config_error err;

    ck_assert_msg(users_load_string(text, "users.ini", &u, &err) == 0, "%s:%d: %s", err.file,
                  err.line, err.reason);
    return u;
}

/* TEXT fails at LINE with a reason containing WHY. */
static void load_fails(const char *text, int line, const char *why)
{
    struct users *u = NULL;
    struct config_error err;

    ck_assert_msg(users_load_string(text, "users.ini", &u, &err) == -1, "loaded: %s", text);
    ck_assert_ptr_null(u);
    ck_assert_str_eq(err.file, "users.ini");
    ck_assert_msg(err.line == line && strstr(err.reason, why) != NULL,
                  "expected %d: ...%s..., got %d: %s\n--\n%s", line, why, err.line, err.reason,
                  text);
}

/* ----------------------------------------------------------- good ---- */

START_TEST(test_good_file)
{
    char tok[80];
    const char *text;
    struct users *u;
    struct user *alice, *svc, *bob;
    const struct acl *acl;
    char buf[2048];

    snprintf(buf, sizeof(buf),
             "; users of the test\n"
             "[user alice]\n"
             "password = " YESCRYPT "   ; a hash made by `pigeon passwd`\n"
             "publish = orders.>, _INBOX.>\n"
             "subscribe = orders.*.status,_INBOX.%%u.>\n"
             "  publish_deny = orders.admin.>   # indented, commented\n"
             "subscribe_deny = orders.secret.>\n"
             "allow_responses = yes\n"
             "\n"
             "[ user svc ]\n"
             "token = %s\n"
             "publish = metrics.>\n"
             "publish = logs.>\n"
             "[user Bob_2-x]\n"
             "password = " BCRYPT "\n",
             token_hash("tok-1", tok));
    text = buf;
    u = load_ok(text);
    ck_assert_uint_eq(users_count(u), 3);
    ck_assert_str_eq(users_path(u), "users.ini");
    alice = users_find(u, "alice", 5);
    svc = users_find(u, "svc", 3);
    bob = users_find(u, "Bob_2-x", 7);
    ck_assert_ptr_nonnull(alice);
    ck_assert_ptr_nonnull(svc);
    ck_assert_ptr_nonnull(bob);
    ck_assert_ptr_eq(users_at(u, 0), alice);
    ck_assert_ptr_eq(users_at(u, 2), bob);
    ck_assert_ptr_null(users_at(u, 3));
    ck_assert_ptr_null(users_find(u, "bob", 3));
    ck_assert_ptr_null(users_find(u, "alic", 4));
    ck_assert_str_eq(user_name(alice), "alice");
    ck_assert_str_eq(user_password_hash(alice), YESCRYPT);
    ck_assert_str_eq(user_password_hash(bob), BCRYPT);
    ck_assert(!user_has_token(alice));
    ck_assert(user_has_token(svc));
    ck_assert_ptr_null(user_password_hash(svc));
    ck_assert(user_allow_responses(alice));
    ck_assert(!user_allow_responses(svc));
    ck_assert_int_eq(user_line(alice), 2);
    ck_assert_int_eq(user_line(svc), 10);

    acl = user_acl(alice);
    ck_assert(acl_may_publish(acl, "orders.eu", 9));
    ck_assert(!acl_may_publish(acl, "orders.admin.x", 14));
    ck_assert(acl_may_receive(acl, "_INBOX.alice.1", 14));
    ck_assert(!acl_may_receive(acl, "_INBOX.bob.1", 12));
    ck_assert(!acl_may_receive(acl, "orders.secret.x", 15));
    ck_assert_int_eq(acl_check_subscribe(acl, "orders.eu.status", 16), ACL_SUB_ALLOWED);
    ck_assert_int_eq(acl_check_subscribe(acl, "orders.*.status", 15), ACL_SUB_FILTERED);
    /* Repeated list keys add up. */
    acl = user_acl(svc);
    ck_assert(acl_may_publish(acl, "metrics.cpu", 11));
    ck_assert(acl_may_publish(acl, "logs.x", 6));
    ck_assert(!acl_may_publish(acl, "orders.x", 8));

    ck_assert_ptr_eq(users_find_token(u, "tok-1", 5), svc);
    ck_assert_ptr_null(users_find_token(u, "tok-2", 5));
    ck_assert_ptr_null(users_find_token(u, "", 0));
    users_unref(u);
}
END_TEST

START_TEST(test_empty_file)
{
    struct users *u = load_ok("; nobody yet\n\n");

    ck_assert_uint_eq(users_count(u), 0);
    ck_assert_ptr_null(users_find_token(u, "x", 1));
    users_unref(u);
}
END_TEST

/* A user kept by a session outlives the policy it came from. */
START_TEST(test_user_outlives_policy)
{
    struct users *u = load_ok("[user a]\npassword = " YESCRYPT "\npublish = x\n");
    struct user *a = user_ref(users_find(u, "a", 1));

    users_ref(u);
    users_unref(u);
    users_unref(u);
    ck_assert_str_eq(user_name(a), "a");
    ck_assert(acl_may_publish(user_acl(a), "x", 1));
    user_unref(a);
    user_unref(NULL);
    users_unref(NULL);
}
END_TEST

START_TEST(test_same_credentials)
{
    char t1[80], t2[80], buf[1024];
    struct users *a, *b;

    snprintf(buf, sizeof(buf),
             "[user p]\npassword = " YESCRYPT "\n[user q]\npassword = " BCRYPT
             "\n[user t]\ntoken = %s\n",
             token_hash("tok-1", t1));
    a = load_ok(buf);
    snprintf(buf, sizeof(buf),
             "[user p]\npassword = " YESCRYPT "\npublish = new\n[user q]\npassword = " YESCRYPT
             "\n[user t]\ntoken = %s\n",
             token_hash("tok-2", t2));
    b = load_ok(buf);
    ck_assert(user_same_credentials(users_find(a, "p", 1), users_find(b, "p", 1)));
    ck_assert(!user_same_credentials(users_find(a, "q", 1), users_find(b, "q", 1)));
    ck_assert(!user_same_credentials(users_find(a, "t", 1), users_find(b, "t", 1)));
    ck_assert(user_same_credentials(users_find(a, "t", 1), users_find(a, "t", 1)));
    ck_assert(!user_same_credentials(users_find(a, "p", 1), users_find(b, "q", 1)));
    users_unref(a);
    users_unref(b);
}
END_TEST

START_TEST(test_hash_methods)
{
    static const char *const good[] = {
        YESCRYPT,
        BCRYPT,
        "$2a$05$yrvofpiKJMkl4lG5OAr4U.WabdZgnaEtcFZmEa3tBn5Qew1uaEThS",
        "$2y$05$yrvofpiKJMkl4lG5OAr4U.WabdZgnaEtcFZmEa3tBn5Qew1uaEThS",
        "$gy$j9T$VRLplsKlCPOL6QbbC.FZi.$gEeSvPfDB6ue7fxYqiRuGRW5UoC5glaz70YxSChKhI5",
        "$7$CU..../....l1s3xrrVYFyYKKwbpyL9N0$T0N8fCtcx0yf8yGCxWNyCI0gIGDbWoaMFIpP6BCNJy6",
    };
    static const struct {
        const char *hash, *why;
    } bad[] = {
        {"secret", "plain password"},
        {"$1$kj8FCQ/D$vRbgxMrtkYZw9z3PN6z3P0", "'$1$' is not accepted"},
        {"$6$KQb3E7IpQAqdox0l$PpNQawd/n86K0CgQI/c1GWLJY6ShcuDkZ5a", "'$6$' is not accepted"},
        {"$y$j9T$mCCijNaEUOSn8n4f3MyOs/$jBxfoSnEFA4B.5MEmS86USXxV6AJiIgzlpWwnr.EAR", "malformed"},
        {"$y$j9T$mCCijNaEUOSn8n4f3MyOs/$jBxfoSnEFA4B.5MEmS86USXxV6AJiIgzlpWwnr.EA!9", "malformed"},
        {"$y$", "malformed yescrypt"},
        {"$2b$05$yrvofpiKJMkl4lG5OAr4U.WabdZgnaEtcFZmEa3tBn5Qew1uaEThSX", "malformed bcrypt"},
        {"$2b$99$yrvofpiKJMkl4lG5OAr4U.WabdZgnaEtcFZmEa3tBn5Qew1uaEThS", "malformed bcrypt"},
        {"$", "not accepted"},
    };
    char why[200];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(users_hash_check(good[i], why, sizeof(why)) == 0, "%s: %s", good[i], why);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(users_hash_check(bad[i].hash, why, sizeof(why)) == -1, "%s", bad[i].hash);
        ck_assert_msg(strstr(why, bad[i].why) != NULL, "%s: %s", bad[i].hash, why);
    }
}
END_TEST

/* ------------------------------------------------------------ bad ---- */

static const struct {
    const char *text;
    int line;
    const char *why;
} bad_files[] = {
    {"password = " YESCRYPT "\n", 1, "outside any section"},
    {"[users alice]\n", 1, "unknown section [users alice]: expected [user NAME]"},
    {"[broker]\n", 1, "unknown section"},
    {"[user]\npassword = x\n", 1, "needs a name"},
    {"[user al ice]\n", 1, "bad user name 'al ice'"},
    {"[user al.ice]\n", 1, "bad user name"},
    {"[user $SYS]\n", 1, "bad user name"},
    {"[user a123456789b123456789c123456789d123456789e123456789f123456789abcde]\n", 1,
     "use 1 to 64"},
    {"[user a]\npassword = " YESCRYPT "\n[user a]\npassword = " YESCRYPT "\n", 3,
     "duplicate user 'a' (first at line 1)"},
    {"[user a]\n\npublish = x\n", 1, "user 'a' has no password or token"},
    {"[user a]\npassword = " YESCRYPT "\n[user b]\n", 3, "user 'b' has no password or token"},
    {"[user a]\npassword = " YESCRYPT "\npassword = " BCRYPT "\n", 3,
     "duplicate key 'password' in [user a] (first at line 2)"},
    {"[user a]\npassword = " YESCRYPT "\ntoken = " TOKEN1 "\n", 3,
     "user 'a' has a password already (line 2)"},
    {"[user a]\ntoken = " TOKEN1 "\npassword = " YESCRYPT "\n", 3, "has a token already"},
    {"[user a]\npassword = hunter2\n", 2, "bad password for user 'a': not a password hash"},
    {"[user a]\npassword = $1$kj8FCQ/D$vRbgxMrtkYZw9z3PN6z3P0\n", 2, "is not accepted"},
    {"[user a]\npassword =\n", 2, "missing value for 'password'"},
    {"[user a]\ntoken = abc\n", 2, "bad token for user 'a': expected sha256:"},
    {"[user a]\ntoken = sha256:6d27c2a3a2bfd1fd7fcd3f5d6fa8be6b4ae5b8bd5c45fbde7f1ab3a4a4b6aa3\n",
     2, "bad token"},
    {"[user a]\ntoken = sha256:6d27c2a3a2bfd1fd7fcd3f5d6fa8be6b4ae5b8bd5c45fbde7f1ab3a4a4b6aa3g\n",
     2, "bad token"},
    {"[user a]\ntoken = " TOKEN1 "\n[user b]\ntoken = " TOKEN1 "\n", 4,
     "user 'b' has the same token as user 'a' (line 2)"},
    {"[user a]\npassword = " YESCRYPT "\npublish = a.>.b\n", 3,
     "bad pattern 'a.>.b' in publish: '>' before the last token"},
    {"[user a]\npassword = " YESCRYPT "\nsubscribe = x, inbox_%u\n", 3,
     "bad pattern 'inbox_%u' in subscribe: %u must be a whole token"},
    {"[user a]\npassword = " YESCRYPT "\npublish = x,,y\n", 3, "empty pattern in publish"},
    {"[user a]\npassword = " YESCRYPT "\npublish = x,\n", 3, "empty pattern"},
    {"[user a]\npassword = " YESCRYPT "\nsubscribe_deny = a b\n", 3, "space"},
    {"[user a]\npassword = " YESCRYPT "\npublish =\n", 3, "missing value for 'publish'"},
    {"[user a]\npassword = " YESCRYPT "\nallow_responses = maybe\n", 3,
     "bad allow_responses 'maybe': expected yes or no"},
    {"[user a]\npassword = " YESCRYPT "\nallow_responses = yes\nallow_responses = no\n", 4,
     "duplicate key 'allow_responses'"},
    {"[user a]\npassword = " YESCRYPT "\nadmin = yes\n", 3, "unknown key 'admin' in [user a]"},
    {"[user a]\npassword: " YESCRYPT "\n", 2, "syntax error"},
    {"[user a]\njust words\n", 2, "syntax error"},
    {"[user a]\n= x\n", 2, "missing key before '='"},
    {"[user a\n", 1, "expected ']'"},
    {"[user a] x\n", 1, "unexpected text after ']'"},
};

START_TEST(test_bad_file)
{
    load_fails(bad_files[_i].text, bad_files[_i].line, bad_files[_i].why);
}
END_TEST

START_TEST(test_long_line)
{
    char buf[1024];

    snprintf(buf, sizeof(buf), "[user a]\npassword = %s\npublish = %0240d\n", YESCRYPT, 7);
    load_fails(buf, 3, "line too long");
}
END_TEST

/* ---------------------------------------------------------- files ---- */

static char tmpdir[64];

static void setup_dir(void)
{
    strcpy(tmpdir, "/tmp/unit_users.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_dir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

START_TEST(test_load_file)
{
    const char *text = "[user a]\npassword = " YESCRYPT "\npublish = x\n";
    const char *path = write_file("users.ini", text, strlen(text));
    struct users *u = NULL;
    struct config_error err;

    ck_assert_int_eq(users_load(path, &u, &err), 0);
    ck_assert_str_eq(users_path(u), path);
    ck_assert_ptr_nonnull(users_find(u, "a", 1));
    users_unref(u);
}
END_TEST

START_TEST(test_load_file_errors)
{
    char path[128];
    struct users *u = NULL;
    struct config_error err;
    const char nul[] = "[user a]\npassword = x\0y\n";

    snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
    ck_assert_int_eq(users_load(path, &u, &err), -1);
    ck_assert_str_eq(err.file, path);
    ck_assert_int_eq(err.line, 0);
    ck_assert_str_eq(err.reason, "cannot open: No such file or directory");

    ck_assert_int_eq(users_load(tmpdir, &u, &err), -1);
    ck_assert_str_eq(err.reason, "cannot read: Is a directory");

    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(users_load(path, &u, &err), -1); /* refused at once, no writer needed */
    ck_assert_str_eq(err.reason, "not a regular file");

    ck_assert_int_eq(users_load(write_file("nul.ini", nul, sizeof(nul) - 1), &u, &err), -1);
    ck_assert_int_eq(err.line, 2);
    ck_assert_str_eq(err.reason, "NUL byte in the file");
    ck_assert_ptr_null(u);
}
END_TEST

/* `pigeond -t`: every error, sorted by line; a bad header hides its keys'. */
START_TEST(test_check_every_error)
{
    const char *text = "[user a]\n"                  /* 1 */
                       "password = plain\n"          /* 2: not a hash */
                       "publish = a..b\n"            /* 3: empty token */
                       "[user bad name]\n"           /* 4: bad name */
                       "nonsense = 1\n"              /* 5: hidden */
                       "[user c]\n"                  /* 6: no credential */
                       "colour = blue\n"             /* 7: unknown key */
                       "[user d]\n"                  /* 8 */
                       "password = " YESCRYPT "\n"   /* 9 */
                       "subscribe = ok.>, not ok\n"; /* 10: space */
    const char *path = write_file("many.ini", text, strlen(text));
    struct config_error errs[16];
    size_t n = 99;
    static const int lines[] = {1, 2, 3, 4, 6, 7, 10};

    ck_assert_int_eq(users_check_file(path, errs, 16, &n), -1);
    ck_assert_uint_eq(n, sizeof(lines) / sizeof(lines[0]));
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(errs[i].file, path);
        ck_assert_msg(errs[i].line == lines[i], "error %zu at %d: %s", i, errs[i].line,
                      errs[i].reason);
    }
    ck_assert(strstr(errs[0].reason, "user 'a' has no password") != NULL);
    ck_assert(strstr(errs[3].reason, "bad user name 'bad name'") != NULL);
    ck_assert(strstr(errs[5].reason, "unknown key 'colour'") != NULL);
    /* Capped at MAX. */
    ck_assert_int_eq(users_check_file(path, errs, 2, &n), -1);
    ck_assert_uint_eq(n, 2);
    /* A good file: no errors. */
    path = write_file("good.ini", "[user a]\ntoken = " TOKEN1 "\n", 17 + strlen(TOKEN1) + 1);
    ck_assert_int_eq(users_check_file(path, errs, 16, &n), 0);
    ck_assert_uint_eq(n, 0);
    /* An unreadable file: one error, line 0. */
    ck_assert_int_eq(users_check_file(tmpdir, errs, 16, &n), -1);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(errs[0].line, 0);
}
END_TEST

static Suite *users_suite(void)
{
    Suite *s = suite_create("users");
    TCase *tc;

    tc = tcase_create("good");
    tcase_add_test(tc, test_good_file);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_user_outlives_policy);
    tcase_add_test(tc, test_same_credentials);
    tcase_add_test(tc, test_hash_methods);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_add_loop_test(tc, test_bad_file, 0, sizeof(bad_files) / sizeof(bad_files[0]));
    tcase_add_test(tc, test_long_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_file_errors);
    tcase_add_test(tc, test_check_every_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(users_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
