/*
 * unit_addr.c - the shared address module (src/common/addr.h), which
 * libpigeon and the CLI parse with ADDR_CONNECT and pigeond's `bind` with
 * ADDR_LISTEN: every form in both roles, every refusal with its message,
 * the tls:// scheme (to connect only) and other prefixes refused by name,
 * and resolution of numeric and unix addresses
 * (no DNS needed).  pigeond's own messages for `bind` lines are checked
 * again, through the config file, by tests/unit_config.c.
 */
#include <check.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

static void parse_ok(const char *s, enum addr_role role, enum addr_kind kind, const char *host,
                     unsigned port, const char *path)
{
    struct addr a;
    char why[ADDR_WHY_MAX] = "";
    ck_assert_msg(addr_parse(s, role, &a, why, sizeof(why)) == 0, "'%s' refused: %s", s, why);
    ck_assert_int_eq(a.scheme, ADDR_SCHEME_PLAIN);
    ck_assert_int_eq(a.kind, kind);
    if (kind == ADDR_TCP) {
        ck_assert_str_eq(a.host, host);
        ck_assert_uint_eq(a.port, port);
    } else {
        ck_assert_str_eq(a.path, path);
    }
}

/* S is refused in ROLE with a message that contains WANT. */
static void parse_bad(const char *s, enum addr_role role, const char *want)
{
    struct addr a;
    char why[ADDR_WHY_MAX] = "";
    ck_assert_msg(addr_parse(s, role, &a, why, sizeof(why)) < 0, "'%s' accepted", s);
    ck_assert_msg(strstr(why, want) != NULL, "'%s': '%s' does not say '%s'", s, why, want);
}

static void connect_ok(const char *s, const char *host, unsigned port)
{
    parse_ok(s, ADDR_CONNECT, ADDR_TCP, host, port, NULL);
}

static void both_ok(const char *s, const char *host, unsigned port)
{
    parse_ok(s, ADDR_CONNECT, ADDR_TCP, host, port, NULL);
    parse_ok(s, ADDR_LISTEN, ADDR_TCP, host, port, NULL);
}

static void both_bad(const char *s, const char *want)
{
    parse_bad(s, ADDR_CONNECT, want);
    parse_bad(s, ADDR_LISTEN, want);
}

/* ---------------------------------------------------------------- forms --- */

START_TEST(test_host_port)
{
    both_ok("127.0.0.1:7400", "127.0.0.1", 7400);
    both_ok("localhost:1", "localhost", 1);
    both_ok("broker.example:65535", "broker.example", 65535);
    both_ok("my_host-2.internal:007400", "my_host-2.internal", 7400);
    both_ok("0.0.0.0:9", "0.0.0.0", 9);
}
END_TEST

START_TEST(test_ipv6)
{
    both_ok("[::1]:7401", "::1", 7401);
    both_ok("[fe80::1%eth0]:9", "fe80::1%eth0", 9);
    both_ok("[::]:1", "::", 1);
    connect_ok("[::]", "::", 7400);
    connect_ok("[2001:db8::7]", "2001:db8::7", 7400);
}
END_TEST

START_TEST(test_default_port_and_bare_number)
{
    /* The issue this module came from: "21400" is 127.0.0.1:21400, not
     * the IPv4 address 0.0.83.152 on port 7400. */
    connect_ok("21400", "127.0.0.1", 21400);
    connect_ok("1", "127.0.0.1", 1);
    connect_ok("65535", "127.0.0.1", 65535);
    connect_ok("10.0.0.1", "10.0.0.1", 7400);
    connect_ok("localhost", "localhost", 7400);
    parse_bad("0", ADDR_CONNECT, "the port must be a number from 1 to 65535");
    parse_bad("65536", ADDR_CONNECT, "the port must be a number from 1 to 65535");
    parse_bad("99999999999999999999999", ADDR_CONNECT, "from 1 to 65535");
}
END_TEST

START_TEST(test_unix)
{
    parse_ok("unix:/run/pigeon.sock", ADDR_CONNECT, ADDR_UNIX, NULL, 0, "/run/pigeon.sock");
    parse_ok("unix:/run/pigeon.sock", ADDR_LISTEN, ADDR_UNIX, NULL, 0, "/run/pigeon.sock");
    parse_ok("unix:relative.sock", ADDR_CONNECT, ADDR_UNIX, NULL, 0, "relative.sock");
    parse_bad("unix:relative.sock", ADDR_LISTEN, "a unix socket path must be absolute");

    char longpath[200] = "unix:/";
    memset(longpath + 6, 'a', 106); /* 107 bytes of path: the most sun_path holds */
    longpath[112] = '\0';
    parse_ok(longpath, ADDR_CONNECT, ADDR_UNIX, NULL, 0, longpath + 5);
    parse_ok(longpath, ADDR_LISTEN, ADDR_UNIX, NULL, 0, longpath + 5);
    longpath[112] = 'a';
    longpath[113] = '\0';
    both_bad(longpath, "the socket path is 108 bytes, the most a unix socket takes is 107");
    both_bad("unix:/run/pigeon/", "names a directory");
    parse_bad("unix:", ADDR_CONNECT, "empty unix socket path");
    parse_bad("unix:", ADDR_LISTEN, "must be absolute");
}
END_TEST

/* ------------------------------------------------------------- refusals --- */

START_TEST(test_refusals_common)
{
    both_bad("", "empty address");
    both_bad("::1:7400", "an IPv6 address needs brackets: [addr]:port");
    both_bad("::1", "an IPv6 address needs brackets");
    both_bad("host:", "missing port after ':'");
    both_bad("host:12ab", "the port must be a number");
    both_bad("host:-1", "the port must be a number");
    both_bad("host:http", "the port must be a number");
    both_bad("host:65536", "the port must be a number");
    both_bad("[::1]x", "expected [v6addr]:port");
    both_bad("[::1", "expected [v6addr]:port");
    both_bad("[]:1", "not an IPv6 address inside [ ]");
    both_bad("[::g]:1", "not an IPv6 address");
    both_bad("[1.2.3.4]:1", "not an IPv6 address");
    both_bad("[fe80::1%]:1", "not an IPv6 address");
    both_bad("[fe80::1%a b]:1", "not an IPv6 address");
    both_bad("300.1.1.1:7400", "not an IPv4 address or a host name");
    both_bad("127.1:7400", "not an IPv4 address or a host name");
    both_bad("bad..name:7400", "not an IPv4 address or a host name");
    both_bad("a b:1", "not an IPv4 address or a host name");
    both_bad("a/b:1", "not an IPv4 address or a host name");
    both_bad(" 127.0.0.1:1", "not an IPv4 address or a host name");
}
END_TEST

START_TEST(test_refusals_by_role)
{
    parse_bad("host:0", ADDR_CONNECT, "the port must be a number from 1 to 65535");
    parse_ok("host:0", ADDR_LISTEN, ADDR_TCP, "host", 0, NULL); /* the system picks one */
    parse_bad("host:65536", ADDR_LISTEN, "the port must be a number from 0 to 65535");
    parse_bad(":7400", ADDR_CONNECT, "missing host before ':'");
    parse_bad(":7400", ADDR_LISTEN, "missing host: 0.0.0.0 listens on every IPv4 address");
    parse_bad("127.0.0.1", ADDR_LISTEN, "expected host:port, [v6addr]:port or unix:");
    parse_bad("[::1]", ADDR_LISTEN, "expected [v6addr]:port");
    parse_bad("7400", ADDR_LISTEN, "e.g. 127.0.0.1:7400 for loopback only");
}
END_TEST

/* S parses to connect as TCP under TLS to HOST:PORT, and formats back as FORMATTED. */
static void tls_ok(const char *s, const char *host, unsigned port, const char *formatted)
{
    struct addr a;
    char why[ADDR_WHY_MAX] = "", buf[300];
    ck_assert_msg(addr_parse(s, ADDR_CONNECT, &a, why, sizeof(why)) == 0, "'%s' refused: %s", s,
                  why);
    ck_assert_int_eq(a.scheme, ADDR_SCHEME_TLS);
    ck_assert_int_eq(a.kind, ADDR_TCP);
    ck_assert_str_eq(a.host, host);
    ck_assert_uint_eq(a.port, port);
    addr_format(&a, buf, sizeof(buf));
    ck_assert_str_eq(buf, formatted);
}

START_TEST(test_scheme_tls)
{
    tls_ok("tls://broker.example:7401", "broker.example", 7401, "tls://broker.example:7401");
    tls_ok("tls://127.0.0.1:7401", "127.0.0.1", 7401, "tls://127.0.0.1:7401");
    tls_ok("tls://[::1]:7401", "::1", 7401, "tls://[::1]:7401");
    tls_ok("tls://broker.example", "broker.example", 7400, "tls://broker.example:7400");
    tls_ok("tls://[::1]", "::1", 7400, "tls://[::1]:7400");
    tls_ok("tls://7401", "127.0.0.1", 7401, "tls://127.0.0.1:7401");
    tls_ok("TLS://h:1", "h", 1, "tls://h:1");
    /* The rest is checked as without the prefix. */
    parse_bad("tls://", ADDR_CONNECT, "nothing after tls://");
    parse_bad("tls://h:99999", ADDR_CONNECT, "the port must be a number from 1 to 65535");
    parse_bad("tls://::1:7400", ADDR_CONNECT, "an IPv6 address needs brackets");
    parse_bad("tls://unix:/run/p.sock", ADDR_CONNECT, "TLS is for TCP");
    /* A listener speaks TLS by its configuration, not by its address. */
    parse_bad("tls://127.0.0.1:7401", ADDR_LISTEN, "tls:// is for clients");
}
END_TEST

START_TEST(test_scheme_others_refused)
{
    parse_bad("tcp://127.0.0.1:1", ADDR_CONNECT,
              "unsupported scheme 'tcp://': expected host:port, [v6addr]:port, unix:/path or "
              "tls://host:port");
    parse_bad("TCP://127.0.0.1:1", ADDR_LISTEN,
              "unsupported scheme 'TCP://': expected host:port, [v6addr]:port or unix:/path");
    both_bad("tlsx://h:1", "unsupported scheme 'tlsx://'");
    /* Not a scheme name before "://": the shapes say what is wrong. */
    both_bad("1x://h:1", "an IPv6 address needs brackets");
    parse_ok("unix:/tmp/a://b", ADDR_CONNECT, ADDR_UNIX, NULL, 0, "/tmp/a://b");
}
END_TEST

START_TEST(test_message_fits)
{
    char small[16];
    struct addr a;
    ck_assert_int_lt(addr_parse("unix:", ADDR_LISTEN, &a, small, sizeof(small)), 0);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1); /* cut, and terminated */
}
END_TEST

/* ------------------------------------------------------------- resolving --- */

START_TEST(test_resolve_numeric)
{
    struct addr a;
    struct addr_target t[ADDR_MAX_TARGETS];
    char why[ADDR_WHY_MAX];
    const char *rwhy;

    ck_assert_int_eq(addr_parse("21400", ADDR_CONNECT, &a, why, sizeof(why)), 0);
    int n = addr_resolve(&a, t, &rwhy);
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(t[0].family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&t[0].sa;
    ck_assert_uint_eq(ntohs(sin->sin_port), 21400);
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

    ck_assert_int_eq(addr_parse("unix:/tmp/x.sock", ADDR_CONNECT, &a, why, sizeof(why)), 0);
    ck_assert_int_eq(addr_resolve(&a, t, &rwhy), 1);
    ck_assert_int_eq(t[0].family, AF_UNIX);
}
END_TEST

START_TEST(test_format)
{
    struct addr a;
    char why[ADDR_WHY_MAX], buf[128];

    const char *forms[] = {"127.0.0.1:7400", "[::1]:7401", "unix:/run/p.sock"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(addr_parse(forms[i], ADDR_CONNECT, &a, why, sizeof(why)), 0);
        addr_format(&a, buf, sizeof(buf));
        ck_assert_str_eq(buf, forms[i]);
    }
    ck_assert_int_eq(addr_parse("7401", ADDR_CONNECT, &a, why, sizeof(why)), 0);
    addr_format(&a, buf, sizeof(buf));
    ck_assert_str_eq(buf, "127.0.0.1:7401");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("forms");
    tcase_add_test(tc, test_host_port);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_default_port_and_bare_number);
    tcase_add_test(tc, test_unix);
    suite_add_tcase(s, tc);
    tc = tcase_create("refusals");
    tcase_add_test(tc, test_refusals_common);
    tcase_add_test(tc, test_refusals_by_role);
    tcase_add_test(tc, test_scheme_tls);
    tcase_add_test(tc, test_scheme_others_refused);
    tcase_add_test(tc, test_message_fits);
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
