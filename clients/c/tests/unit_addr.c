/*
 * unit_addr.c - broker addresses: every accepted form, every refusal, and
 * resolution of numeric and unix addresses (no DNS needed).
 */
#include <check.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

static void parse_ok(const char *s, enum addr_kind kind, const char *host, unsigned port,
                     const char *path)
{
    struct addr a;
    const char *why = NULL;
    ck_assert_msg(addr_parse(s, &a, &why) == 0, "'%s' refused: %s", s, why);
    ck_assert_int_eq(a.kind, kind);
    if (kind == ADDR_TCP) {
        ck_assert_str_eq(a.host, host);
        ck_assert_uint_eq(a.port, port);
    } else {
        ck_assert_str_eq(a.path, path);
    }
}

static void parse_bad(const char *s)
{
    struct addr a;
    const char *why = NULL;
    ck_assert_msg(addr_parse(s, &a, &why) < 0, "'%s' accepted", s);
    ck_assert_ptr_nonnull(why);
}

START_TEST(test_tcp_forms)
{
    parse_ok("127.0.0.1:7400", ADDR_TCP, "127.0.0.1", 7400, NULL);
    parse_ok("localhost:1", ADDR_TCP, "localhost", 1, NULL);
    parse_ok("broker.example:65535", ADDR_TCP, "broker.example", 65535, NULL);
    parse_ok("10.0.0.1", ADDR_TCP, "10.0.0.1", 7400, NULL);
    parse_ok("[::1]:7401", ADDR_TCP, "::1", 7401, NULL);
    parse_ok("[fe80::1%eth0]:9", ADDR_TCP, "fe80::1%eth0", 9, NULL);
    parse_ok("[::]", ADDR_TCP, "::", 7400, NULL);
}
END_TEST

START_TEST(test_unix_form)
{
    parse_ok("unix:/run/pigeon.sock", ADDR_UNIX, NULL, 0, "/run/pigeon.sock");
    parse_ok("unix:relative.sock", ADDR_UNIX, NULL, 0, "relative.sock");
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'a', 106); /* 107 bytes of path: the most sun_path holds */
    longpath[112] = '\0';
    parse_ok(longpath, ADDR_UNIX, NULL, 0, longpath + 5);
    longpath[112] = 'a';
    longpath[113] = '\0';
    parse_bad(longpath);
}
END_TEST

START_TEST(test_refusals)
{
    parse_bad("");
    parse_bad(":7400");
    parse_bad("host:");
    parse_bad("host:0");
    parse_bad("host:65536");
    parse_bad("host:12ab");
    parse_bad("host:-1");
    parse_bad("::1:7400");
    parse_bad("[::1");
    parse_bad("[::1]x");
    parse_bad("[]:1");
    parse_bad("[1.2.3.4]:1");
    parse_bad("a b:1");
    parse_bad("unix:");
    parse_bad("a/b:1");
}
END_TEST

START_TEST(test_resolve_numeric)
{
    struct addr a;
    struct addr_target t[ADDR_MAX_TARGETS];
    const char *why;

    ck_assert_int_eq(addr_parse("127.0.0.1:7400", &a, &why), 0);
    int n = addr_resolve(&a, t, &why);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(t[0].family, AF_INET);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&t[0].sa)->sin_port), 7400);

    ck_assert_int_eq(addr_parse("unix:/tmp/x.sock", &a, &why), 0);
    ck_assert_int_eq(addr_resolve(&a, t, &why), 1);
    ck_assert_int_eq(t[0].family, AF_UNIX);
}
END_TEST

START_TEST(test_format)
{
    struct addr a;
    const char *why;
    char buf[128];

    const char *forms[] = {"127.0.0.1:7400", "[::1]:7401", "unix:/run/p.sock"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(addr_parse(forms[i], &a, &why), 0);
        addr_format(&a, buf, sizeof(buf));
        ck_assert_str_eq(buf, forms[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_tcp_forms);
    tcase_add_test(tc, test_unix_form);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("resolve");
    tcase_add_test(tc, test_resolve_numeric);
    tcase_add_test(tc, test_format);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
