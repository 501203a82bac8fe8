/*
 * unit_activation.c - the activation set: taking the descriptors systemd
 * passes (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, from fd 3), and matching
 * them to [listener NAME] sections by name, then by address.
 *
 * Each test runs in its own process (Check's fork mode), which is what lets
 * it put sockets on descriptors 3, 4, ... and set LISTEN_PID to its pid, as
 * systemd would.  Built without libsystemd, the suite checks the refusal.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"
#include "config.h"
#include "log.h"

/* ---------------------------------------------------------- helpers ---- */

static struct logger test_log;

static void setup(void)
{
    log_init(&test_log, stderr, LOG_LEVEL_ERROR);
}

/* A listening TCP socket on 127.0.0.1, any port, moved to descriptor AT; its port. */
static unsigned tcp_socket_at(int at)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    if (fd != at) {
        ck_assert_int_eq(dup2(fd, at), at);
        close(fd);
    }
    return ntohs(in.sin_port);
}

/* A listening unix socket at PATH on descriptor AT. */
static void unix_socket_at(int at, const char *path)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    unlink(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    if (fd != at) {
        ck_assert_int_eq(dup2(fd, at), at);
        close(fd);
    }
}

/* Sets LISTEN_* as systemd would for N descriptors named NAMES (or no LISTEN_FDNAMES). */
static void listen_env(int n, const char *names)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%ld", (long)getpid());
    setenv("LISTEN_PID", buf, 1);
    snprintf(buf, sizeof(buf), "%d", n);
    setenv("LISTEN_FDS", buf, 1);
    if (names != NULL)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static struct config *conf_of(const char *text)
{
    struct config *conf = NULL;
    struct config_error err;

    ck_assert_msg(config_load_string(text, "act.conf", &conf, &err) == 0, "%d: %s", err.line,
                  err.reason);
    return conf;
}

/* The port FD is bound to. */
static unsigned fd_port(int fd)
{
    struct sockaddr_in in;
    socklen_t len = sizeof(in);

    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    return ntohs(in.sin_port);
}

#ifdef PIGEON_HAVE_SYSTEMD

/* ------------------------------------------------------------ taking ---- */

START_TEST(test_none_passed)
{
    struct activation *a = (struct activation *)1;

    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_ptr_null(a);
    ck_assert_uint_eq(activation_count(a), 0);
    ck_assert_uint_eq(activation_report_unmatched(a, NULL, &test_log, LOG_LEVEL_ERROR), 0);
}
END_TEST

START_TEST(test_other_pid_ignored)
{
    struct activation *a;

    tcp_socket_at(3);
    listen_env(1, "default");
    setenv("LISTEN_PID", "1", 1); /* meant for another process */
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_ptr_null(a);
}
END_TEST

START_TEST(test_by_name)
{
    struct activation *a;
    unsigned p3 = tcp_socket_at(3), p4 = tcp_socket_at(4);
    struct config *conf = conf_of("[listener one]\nbind = 127.0.0.1:1\n"
                                  "[listener two]\nbind = 127.0.0.1:2\n"
                                  "[listener three]\nbind = 127.0.0.1:3\n");
    char err[128];

    listen_env(2, "two:one");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(activation_count(a), 2);
    ck_assert_ptr_null(getenv("LISTEN_FDS")); /* cleared, as children must not see it */

    int fd = activation_take(a, conf, &conf->listeners[0], err, sizeof(err));
    ck_assert_int_gt(fd, 4); /* a duplicate, not systemd's descriptor */
    ck_assert_uint_eq(fd_port(fd), p4);
    close(fd);
    fd = activation_take(a, conf, &conf->listeners[1], err, sizeof(err));
    ck_assert_uint_eq(fd_port(fd), p3);
    close(fd);
    /* No socket for three: it binds its own. */
    ck_assert_int_eq(activation_take(a, conf, &conf->listeners[2], err, sizeof(err)),
                     ACTIVATION_NONE);
    ck_assert_uint_eq(activation_report_unmatched(a, conf, &test_log, LOG_LEVEL_ERROR), 0);
    activation_free(a);
    config_unref(conf);
}
END_TEST

START_TEST(test_by_address)
{
    struct activation *a;
    unsigned p3 = tcp_socket_at(3);
    char text[256], err[128];

    snprintf(text, sizeof(text),
             "[listener other]\nbind = 127.0.0.1:%u\n[listener mine]\nbind = 127.0.0.1:%u\n",
             p3 == 65535 ? p3 - 1 : p3 + 1, p3);
    struct config *conf = conf_of(text);

    listen_env(1, NULL); /* no names: "unknown" */
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_int_eq(activation_take(a, conf, &conf->listeners[0], err, sizeof(err)),
                     ACTIVATION_NONE);
    int fd = activation_take(a, conf, &conf->listeners[1], err, sizeof(err));
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(fd_port(fd), p3);
    close(fd);
    ck_assert_uint_eq(activation_report_unmatched(a, conf, &test_log, LOG_LEVEL_ERROR), 0);
    activation_free(a);
    config_unref(conf);
}
END_TEST

/* A descriptor named after a listener is that listener's, whatever its address. */
START_TEST(test_name_beats_address)
{
    struct activation *a;
    unsigned p3 = tcp_socket_at(3);
    char text[256], err[128];

    snprintf(text, sizeof(text),
             "[listener x]\nbind = 127.0.0.1:%u\n[listener y]\nbind = 127.0.0.1:0\n", p3);
    struct config *conf = conf_of(text);

    listen_env(1, "y");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_int_eq(activation_take(a, conf, &conf->listeners[0], err, sizeof(err)),
                     ACTIVATION_NONE);
    int fd = activation_take(a, conf, &conf->listeners[1], err, sizeof(err));
    ck_assert_uint_eq(fd_port(fd), p3);
    close(fd);
    activation_free(a);
    config_unref(conf);
}
END_TEST

/* One socket unit, two ListenStream=, one FileDescriptorName= for both. */
START_TEST(test_shared_name)
{
    struct activation *a;
    unsigned p3 = tcp_socket_at(3), p4 = tcp_socket_at(4);
    char text[256], err[128];

    snprintf(text, sizeof(text),
             "[listener main]\nbind = 127.0.0.1:%u\n[listener other]\nbind = 127.0.0.1:%u\n", p4,
             p3);
    struct config *conf = conf_of(text);

    listen_env(2, "main:main");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    /* main takes the one of its name bound where it binds (fd 4), ... */
    int fd = activation_take(a, conf, &conf->listeners[0], err, sizeof(err));
    ck_assert_uint_eq(fd_port(fd), p4);
    close(fd);
    /* ... so the other one named main is free to match by address. */
    fd = activation_take(a, conf, &conf->listeners[1], err, sizeof(err));
    ck_assert_uint_eq(fd_port(fd), p3);
    close(fd);
    ck_assert_uint_eq(activation_report_unmatched(a, conf, &test_log, LOG_LEVEL_ERROR), 0);
    activation_free(a);
    config_unref(conf);

    /* With one listener of that name and nothing else, the second is left over. */
    conf = conf_of("[listener main]\nbind = 127.0.0.1:0\n");
    tcp_socket_at(3);
    tcp_socket_at(4);
    listen_env(2, "main:main");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_uint_eq(activation_report_unmatched(a, conf, &test_log, LOG_LEVEL_ERROR), 1);
    activation_free(a);
    config_unref(conf);
}
END_TEST

START_TEST(test_unix_by_path)
{
    struct activation *a;
    char path[64], text[256], err[128];
    struct stat st;

    snprintf(path, sizeof(path), "/tmp/pigeon-act-%ld.sock", (long)getpid());
    unix_socket_at(3, path);
    snprintf(text, sizeof(text), "[listener local]\nbind = unix:%s\n", path);
    struct config *conf = conf_of(text);

    listen_env(1, "pigeond.socket");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    int fd = activation_take(a, conf, &conf->listeners[0], err, sizeof(err));
    ck_assert_int_ge(fd, 0);
    close(fd);
    activation_free(a);
    ck_assert_int_eq(stat(path, &st), 0); /* systemd's file: never removed here */
    unlink(path);
    config_unref(conf);
}
END_TEST

START_TEST(test_unmatched)
{
    struct activation *a;
    struct config *conf = conf_of("[listener main]\nbind = 127.0.0.1:0\n");

    tcp_socket_at(3);
    tcp_socket_at(4);
    listen_env(2, "main:stray");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_uint_eq(activation_report_unmatched(a, conf, &test_log, LOG_LEVEL_ERROR), 1);
    activation_free(a);
    config_unref(conf);
}
END_TEST

START_TEST(test_kind_mismatch)
{
    struct activation *a;
    char path[64], text[256], err[128] = "";

    snprintf(path, sizeof(path), "/tmp/pigeon-act-%ld.sock", (long)getpid());
    unix_socket_at(3, path);
    snprintf(text, sizeof(text), "[listener tcp]\nbind = 127.0.0.1:7400\n");
    struct config *conf = conf_of(text);

    listen_env(1, "tcp");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_int_eq(activation_take(a, conf, &conf->listeners[0], err, sizeof(err)),
                     ACTIVATION_FAILED);
    ck_assert_ptr_nonnull(strstr(err, "not a TCP socket"));
    activation_free(a);
    unlink(path);
    config_unref(conf);
}
END_TEST

START_TEST(test_not_a_listening_socket)
{
    struct activation *a = NULL;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(dup2(sv[0], 3), 3);
    listen_env(1, "x");
    ck_assert_int_eq(activation_new(&test_log, &a), -1);
    ck_assert_ptr_null(a);
}
END_TEST

#else /* !PIGEON_HAVE_SYSTEMD */

START_TEST(test_refused_without_libsystemd)
{
    struct activation *a = NULL;

    tcp_socket_at(3);
    listen_env(1, "default");
    ck_assert_int_eq(activation_new(&test_log, &a), -1);
    ck_assert_ptr_null(a);
    unsetenv("LISTEN_PID");
    ck_assert_int_eq(activation_new(&test_log, &a), 0);
    ck_assert_ptr_null(a);
    (void)conf_of;
    (void)fd_port;
    (void)unix_socket_at;
}
END_TEST

#endif

/* ------------------------------------------------------------- suite ---- */

static Suite *activation_suite(void)
{
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("activation");

    tcase_add_checked_fixture(tc, setup, NULL);
#ifdef PIGEON_HAVE_SYSTEMD
    tcase_add_test(tc, test_none_passed);
    tcase_add_test(tc, test_other_pid_ignored);
    tcase_add_test(tc, test_by_name);
    tcase_add_test(tc, test_by_address);
    tcase_add_test(tc, test_name_beats_address);
    tcase_add_test(tc, test_shared_name);
    tcase_add_test(tc, test_unix_by_path);
    tcase_add_test(tc, test_unmatched);
    tcase_add_test(tc, test_kind_mismatch);
    tcase_add_test(tc, test_not_a_listening_socket);
#else
    tcase_add_test(tc, test_refused_without_libsystemd);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Hold descriptors 3 to 6 before Check opens its own files, so that the
     * tests' sockets never land on one of Check's. */
    for (int fd = 3; fd <= 6; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0 && null != fd) {
            dup2(null, fd);
            close(null);
        }
    }
    SRunner *sr = srunner_create(activation_suite());
    int failed;

    /* Each test moves sockets onto descriptors 3 and 4: it needs a process of its own. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
