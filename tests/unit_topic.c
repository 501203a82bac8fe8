/*
 * unit_topic.c - the rules of topic.h: checking (every example of the
 * header, the length limit, bytes and UTF-8 edge cases), tokenizing, and
 * matching ('*', '>', the '$' rule), the last also against a reference
 * written independently over tokens, on random inputs with a fixed seed.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "utf8.h"

#define S(lit) (lit), (sizeof(lit) - 1) /* a literal and its length, NULs included */

static void assert_check(const char *s, size_t len, enum topic_kind kind, enum topic_error want)
{
    enum topic_error got = topic_check(s, len, kind);
    ck_assert_msg(got == want, "topic_check(\"%.*s\", %s) = %d (%s), want %d (%s)", (int)len, s,
                  kind == TOPIC_PUBLISH ? "publish" : "pattern", got, topic_strerror(got), want,
                  topic_strerror(want));
}

/* Checks S as a topic and as a pattern. */
static void assert_both(const char *s, size_t len, enum topic_error topic_err,
                        enum topic_error pattern_err)
{
    assert_check(s, len, TOPIC_PUBLISH, topic_err);
    assert_check(s, len, TOPIC_PATTERN, pattern_err);
}

/* ------------------------------------------------------ header examples ---- */

START_TEST(test_valid_topics)
{
    static const char *const ok[] = {"a",      "orders.eu.new", "$SYS.broker.stats",
                                     "café.ü", "_INBOX.x1",     "a-b_c:d/e",
                                     "a.$b",   "~!@#%^&()"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_both(ok[i], strlen(ok[i]), TOPIC_OK, TOPIC_OK);
}
END_TEST

START_TEST(test_invalid_topics)
{
    assert_both(S(""), TOPIC_ERR_EMPTY, TOPIC_ERR_EMPTY);
    assert_both(S("a..b"), TOPIC_ERR_EMPTY_TOKEN, TOPIC_ERR_EMPTY_TOKEN);
    assert_both(S(".a"), TOPIC_ERR_EMPTY_TOKEN, TOPIC_ERR_EMPTY_TOKEN);
    assert_both(S("a."), TOPIC_ERR_EMPTY_TOKEN, TOPIC_ERR_EMPTY_TOKEN);
    assert_both(S("."), TOPIC_ERR_EMPTY_TOKEN, TOPIC_ERR_EMPTY_TOKEN);
    assert_both(S("a b"), TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    assert_both(S("a\tb"), TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    assert_check(S("a.*"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
    assert_check(S("a.>"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
    assert_check(S("*"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
    assert_check(S(">"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
    /* In a published topic any '*' or '>' is a wildcard error. */
    assert_check(S("a*"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
    assert_check(S("b>c"), TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
}
END_TEST

START_TEST(test_valid_patterns)
{
    static const char *const ok[] = {"a.*.c", "a.>", ">",   "*",      "*.*",  "$SYS.>",
                                     "*.>",   "a.*", "*.b", "$SYS.*", "a.b.c"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_check(ok[i], strlen(ok[i]), TOPIC_PATTERN, TOPIC_OK);
}
END_TEST

START_TEST(test_invalid_patterns)
{
    assert_check(S("a.>.c"), TOPIC_PATTERN, TOPIC_ERR_FWC_NOT_LAST);
    assert_check(S(">.a"), TOPIC_PATTERN, TOPIC_ERR_FWC_NOT_LAST);
    assert_check(S(">.>"), TOPIC_PATTERN, TOPIC_ERR_FWC_NOT_LAST);
    assert_check(S("a*"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("*a"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("a.b>"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("b>c"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("a.>x"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("**"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("$*"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("a..*"), TOPIC_PATTERN, TOPIC_ERR_EMPTY_TOKEN);
    assert_check(S("*."), TOPIC_PATTERN, TOPIC_ERR_EMPTY_TOKEN);
    assert_check(S("a.* "), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD); /* token "* " */
    assert_check(S("a. *"), TOPIC_PATTERN, TOPIC_ERR_CHAR);
}
END_TEST

START_TEST(test_first_fault_wins)
{
    assert_check(S("a b..c"), TOPIC_PATTERN, TOPIC_ERR_CHAR);
    assert_check(S("a..b c"), TOPIC_PATTERN, TOPIC_ERR_EMPTY_TOKEN);
    assert_check(S("a*.b c"), TOPIC_PATTERN, TOPIC_ERR_BAD_WILDCARD);
    assert_check(S("\xff.a b"), TOPIC_PATTERN, TOPIC_ERR_UTF8);
}
END_TEST

/* ------------------------------------------------------------- length ---- */

START_TEST(test_length_limit)
{
    char buf[PROTO_TOPIC_MAX + 2];

    memset(buf, 'a', sizeof buf);
    assert_both(buf, PROTO_TOPIC_MAX, TOPIC_OK, TOPIC_OK);
    assert_both(buf, PROTO_TOPIC_MAX + 1, TOPIC_ERR_TOO_LONG, TOPIC_ERR_TOO_LONG);
    /* 253 ASCII bytes and a two-byte character: 255 bytes exactly. */
    memcpy(buf + 253, "\xc3\xa9", 2);
    assert_both(buf, 255, TOPIC_OK, TOPIC_OK);
    /* The limit is on bytes, not characters. */
    memset(buf, 'a', sizeof buf);
    memcpy(buf + 254, "\xc3\xa9", 2);
    assert_both(buf, 256, TOPIC_ERR_TOO_LONG, TOPIC_ERR_TOO_LONG);
    /* A character cut by the length is not valid UTF-8. */
    assert_both(buf, 255, TOPIC_ERR_UTF8, TOPIC_ERR_UTF8);
}
END_TEST

START_TEST(test_length_255_pattern)
{
    char buf[PROTO_TOPIC_MAX];

    /* "a.a. ... .a.>": 127 'a' tokens and a final '>', 255 bytes. */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = i % 2 ? '.' : 'a';
    buf[254] = '>';
    assert_check(buf, 255, TOPIC_PATTERN, TOPIC_OK);
    assert_check(buf, 255, TOPIC_PUBLISH, TOPIC_ERR_WILDCARD);
}
END_TEST

/* -------------------------------------------------------------- bytes ---- */

START_TEST(test_control_bytes)
{
    char buf[3] = {'a', 0, 'b'};

    for (int c = 0; c < 0x20; c++) {
        buf[1] = (char)c;
        assert_both(buf, 3, TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    }
    buf[1] = ' ';
    assert_both(buf, 3, TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    buf[1] = 0x7f;
    assert_both(buf, 3, TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    for (int c = 0x21; c < 0x7f; c++) {
        enum topic_error want = TOPIC_OK;
        buf[1] = (char)c;
        if (c == '.')
            continue;
        if (c == '*' || c == '>')
            want = TOPIC_ERR_WILDCARD;
        assert_check(buf, 3, TOPIC_PUBLISH, want);
    }
}
END_TEST

START_TEST(test_embedded_nul)
{
    assert_both(S("a\0b"), TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
    assert_both(S("\0"), TOPIC_ERR_CHAR, TOPIC_ERR_CHAR);
}
END_TEST

/* -------------------------------------------------------------- UTF-8 ---- */

START_TEST(test_utf8_valid)
{
    static const char *const ok[] = {
        "\xc2\x80",         /* U+0080, the first two-byte code point */
        "\xc2\x85",         /* U+0085 NEL: a C1 control is a character, not a byte */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800, the first three-byte code point */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above them */
        "\xef\xbf\xbd",     /* U+FFFD */
        "\xef\xbf\xbf",     /* U+FFFF, a noncharacter, still valid */
        "\xf0\x90\x80\x80", /* U+10000, the first four-byte code point */
        "\xf0\x9f\x90\xa6", /* U+1F426 BIRD */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
        "a.\xc3\xa9.\xe2\x82\xac.\xf0\x9f\x98\x80",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_both(ok[i], strlen(ok[i]), TOPIC_OK, TOPIC_OK);
}
END_TEST

START_TEST(test_utf8_invalid)
{
    static const char *const bad[] = {
        "\x80", /* lone continuation bytes */
        "\xbf",
        "a\x80z",
        "\xc0\x80",     /* overlong NUL */
        "\xc0\xae",     /* overlong '.' */
        "\xc1\xbf",     /* overlong U+007F */
        "\xe0\x80\x80", /* overlong three-byte forms */
        "\xe0\x9f\xbf",
        "\xed\xa0\x80",             /* U+D800, the first surrogate */
        "\xed\xbf\xbf",             /* U+DFFF, the last */
        "\xed\xa0\xbd\xed\xb2\xa9", /* a surrogate pair (CESU-8) */
        "\xf0\x80\x80\x80",         /* overlong four-byte forms */
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80", /* U+110000, past the last code point */
        "\xf5\x80\x80\x80", /* leads that can never start a sequence */
        "\xf7\xbf\xbf\xbf",
        "\xf8\x88\x80\x80\x80",
        "\xfc\x84\x80\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xc2", /* truncated at the end */
        "\xe2\x82",
        "\xf0\x9f\x98",
        "\xe2\x82.a", /* truncated before a '.' */
        "\xc2\x41",   /* a non-continuation where one is due */
        "\xe2\x28\xa1",
        "\xe2\x82\x28",
        "\xf0\x9f\x28\x8c",
        "\xf0\x9f\x98\x28",
        "\xc2\xc2\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_both(bad[i], strlen(bad[i]), TOPIC_ERR_UTF8, TOPIC_ERR_UTF8);
}
END_TEST

START_TEST(test_strerror)
{
    for (int e = TOPIC_ERR_FWC_NOT_LAST; e <= TOPIC_OK; e++) {
        const char *msg = topic_strerror((enum topic_error)e);
        ck_assert_ptr_nonnull(msg);
        ck_assert_uint_gt(strlen(msg), 0);
        for (int f = TOPIC_ERR_FWC_NOT_LAST; f < e; f++)
            ck_assert_str_ne(msg, topic_strerror((enum topic_error)f));
    }
    ck_assert_str_eq(topic_strerror(TOPIC_ERR_EMPTY_TOKEN), "empty token");
}
END_TEST

/* ------------------------------------------------------------- tokens ---- */

START_TEST(test_tokenize)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    const char *s = "orders.eu.new";
    size_t n = topic_tokenize(s, strlen(s), tok);

    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(tok[0].p, s);
    ck_assert_uint_eq(tok[0].len, 6);
    ck_assert_ptr_eq(tok[1].p, s + 7);
    ck_assert_uint_eq(tok[1].len, 2);
    ck_assert_ptr_eq(tok[2].p, s + 10);
    ck_assert_uint_eq(tok[2].len, 3);
    n = topic_tokenize(">", 1, tok);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(tok[0].len, 1);
}
END_TEST

START_TEST(test_tokenize_max)
{
    struct topic_token tok[TOPIC_MAX_TOKENS];
    char buf[PROTO_TOPIC_MAX];
    size_t n;

    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = i % 2 ? '.' : 'x';
    ck_assert_int_eq(topic_check(buf, sizeof buf, TOPIC_PUBLISH), TOPIC_OK);
    n = topic_tokenize(buf, sizeof buf, tok);
    ck_assert_uint_eq(n, TOPIC_MAX_TOKENS);
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_eq(tok[i].p, buf + 2 * i);
        ck_assert_uint_eq(tok[i].len, 1);
    }
}
END_TEST

/* ----------------------------------------------------------- matching ---- */

struct match_case {
    const char *pattern, *topic;
    bool want;
};

static const struct match_case match_cases[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "ab", false},
    {"ab", "a", false},
    {"a.b", "a", false},
    {"a", "a.b", false},
    {"a.b.c", "a.b.c", true},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.b.d", false},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a.b.b.c", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.b", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c", true},
    {"a.>", "a", false},
    {"a.>", "b.c", false},
    {">", "a", true},
    {">", "a.b.c", true},
    {"*.>", "a", false},
    {"*.>", "a.b", true},
    {"a.*.>", "a.b", false},
    {"a.*.>", "a.b.c.d", true},
    {"café.*", "café.ü", true},
    {"café.*", "cafe.ü", false},
    /* The '$' rule. */
    {"*", "$SYS", false},
    {">", "$SYS", false},
    {">", "$SYS.x", false},
    {"*.x", "$SYS.x", false},
    {"*.>", "$SYS.x", false},
    {"$SYS", "$SYS", true},
    {"$SYS.>", "$SYS.broker.stats", true},
    {"$SYS.*", "$SYS.x", true},
    {"$SYS.*.stats", "$SYS.broker.stats", true},
    {"$SYS.>", "$SYS", false},
    {"a.>", "a.$x", true}, /* only the first token is the broker's */
    {"*.$x", "a.$x", true},
    {"a.*", "a.$x", true},
};

START_TEST(test_match_table)
{
    const struct match_case *c = &match_cases[_i];

    ck_assert_int_eq(topic_check(c->pattern, strlen(c->pattern), TOPIC_PATTERN), TOPIC_OK);
    ck_assert_int_eq(topic_check(c->topic, strlen(c->topic), TOPIC_PUBLISH), TOPIC_OK);
    ck_assert_msg(topic_matches(c->pattern, strlen(c->pattern), c->topic, strlen(c->topic)) ==
                      c->want,
                  "\"%s\" vs \"%s\": want %d", c->pattern, c->topic, c->want);
}
END_TEST

START_TEST(test_is_system)
{
    ck_assert(topic_is_system("$SYS", 4));
    ck_assert(topic_is_system("$", 1));
    ck_assert(!topic_is_system("a.$SYS", 6));
    ck_assert(!topic_is_system("", 0));
}
END_TEST

/* A reference matcher over tokens, written apart from topic.c's. */
static bool ref_matches(const char *p, size_t plen, const char *t, size_t tlen)
{
    struct topic_token pt[TOPIC_MAX_TOKENS], tt[TOPIC_MAX_TOKENS];
    size_t np = topic_tokenize(p, plen, pt), nt = topic_tokenize(t, tlen, tt);

    if (tt[0].p[0] == '$' && (pt[0].p[0] == '*' || pt[0].p[0] == '>'))
        return false;
    for (size_t i = 0; i < np; i++) {
        bool star = pt[i].len == 1 && pt[i].p[0] == '*';
        if (pt[i].len == 1 && pt[i].p[0] == '>')
            return nt > i;
        if (i >= nt)
            return false;
        if (!star && (pt[i].len != tt[i].len || memcmp(pt[i].p, tt[i].p, tt[i].len) != 0))
            return false;
    }
    return np == nt;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A random topic (or pattern) of 1..5 tokens over a tiny alphabet. */
static size_t random_topic(uint64_t *rng, char *buf, bool pattern)
{
    static const char *const toks[] = {"a", "b", "ab", "$s", "c"};
    size_t n = 1 + rng_next(rng) % 5, len = 0;

    for (size_t i = 0; i < n; i++) {
        const char *t = toks[rng_next(rng) % 5];
        unsigned r = (unsigned)(rng_next(rng) % 8);
        if (i > 0)
            buf[len++] = '.';
        if (pattern && r == 0)
            t = "*";
        else if (pattern && r == 1 && i == n - 1)
            t = ">";
        memcpy(buf + len, t, strlen(t));
        len += strlen(t);
    }
    return len;
}

START_TEST(test_match_random)
{
    uint64_t rng = 0x9e3779b97f4a7c15u;
    char p[64], t[64];

    for (int i = 0; i < 200000; i++) {
        size_t plen = random_topic(&rng, p, true), tlen = random_topic(&rng, t, false);
        /* Fail-only checks: a passing ck_assert costs a pipe write. */
        if (topic_check(p, plen, TOPIC_PATTERN) != TOPIC_OK ||
            topic_check(t, tlen, TOPIC_PUBLISH) != TOPIC_OK)
            ck_abort_msg("generated \"%.*s\" or \"%.*s\" is not valid", (int)plen, p, (int)tlen, t);
        if (topic_matches(p, plen, t, tlen) != ref_matches(p, plen, t, tlen))
            ck_abort_msg("\"%.*s\" vs \"%.*s\"", (int)plen, p, (int)tlen, t);
    }
}
END_TEST

/* -------------------------------------------------------------- suite ---- */

/* utf8_valid on its own: what header strings are checked with. */
START_TEST(test_utf8_valid_strings)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain ascii, spaces and \t tabs", 31, true},
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},      /* U+20AC */
        {"\xf0\x9f\x90\xa6", 4, true},  /* U+1F426 */
        {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF */
        {"\xc3", 1, false},             /* truncated */
        {"\xc0\x80", 2, false},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, false}, /* never a lead */
        {"a\x80"
         "b",
         3, false},              /* stray continuation */
        {"\xe2\x82x", 3, false}, /* missing continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(utf8_valid(cases[i].s, cases[i].len) == cases[i].ok, "case %zu", i);
}
END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *tc;

    tc = tcase_create("check");
    tcase_add_test(tc, test_valid_topics);
    tcase_add_test(tc, test_invalid_topics);
    tcase_add_test(tc, test_valid_patterns);
    tcase_add_test(tc, test_invalid_patterns);
    tcase_add_test(tc, test_first_fault_wins);
    tcase_add_test(tc, test_strerror);
    suite_add_tcase(s, tc);

    tc = tcase_create("length");
    tcase_add_test(tc, test_length_limit);
    tcase_add_test(tc, test_length_255_pattern);
    suite_add_tcase(s, tc);

    tc = tcase_create("bytes");
    tcase_add_test(tc, test_utf8_valid_strings);
    tcase_add_test(tc, test_control_bytes);
    tcase_add_test(tc, test_embedded_nul);
    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_utf8_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("tokenize");
    tcase_add_test(tc, test_tokenize);
    tcase_add_test(tc, test_tokenize_max);
    suite_add_tcase(s, tc);

    tc = tcase_create("match");
    tcase_add_loop_test(tc, test_match_table, 0, (int)(sizeof match_cases / sizeof match_cases[0]));
    tcase_add_test(tc, test_is_system);
    tcase_add_test(tc, test_match_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(topic_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
