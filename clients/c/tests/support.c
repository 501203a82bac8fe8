/*
 * support.c - a real pigeond per test, and loop helpers (see support.h).
 */
#include "support.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double test_deadline(void)
{
    const char *s = getenv("PIGEON_TEST_DEADLINE");
    double d = s != NULL ? atof(s) : 0;
    return d > 0 ? d : 30;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void broker_write_config(struct broker *b, const char *bind, const char *extra)
{
    FILE *f = fopen(b->conf, "w");
    ck_assert_msg(f != NULL, "cannot write %s", b->conf);
    fprintf(f, "[broker]\nlog_level = debug\n%s\n[listener main]\nbind = %s\n", extra ? extra : "",
            bind);
    fclose(f);
}

bool broker_address(const struct broker *b, const char *want, char *out)
{
    char line[256], name[64], addr[192];
    FILE *f = fopen(b->ports, "r");
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = sscanf(line, "%63s %191s", name, addr) == 2 &&
                (*want == '\0' || strcmp(name, want) == 0);
    fclose(f);
    if (found)
        snprintf(out, 192, "%s", addr);
    return found;
}

/* Reads the listener's address from the ports file ("NAME ADDRESS" lines). */
static bool broker_read_ports(struct broker *b)
{
    return broker_address(b, b->listener, b->addr);
}

void broker_restart(struct broker *b)
{
    const char *pigeond = getenv("PIGEOND");
    ck_assert_msg(pigeond != NULL, "PIGEOND is not set");
    unlink(b->ports);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execl(pigeond, "pigeond", "-c", b->conf, "--ports-file", b->ports, (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    double end = now_s() + test_deadline();
    while (!broker_read_ports(b)) {
        int status;
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "pigeond exited at start (see %s)",
                      b->log);
        ck_assert_msg(now_s() < end, "pigeond did not bind in time");
        sleep_ms(20);
    }
}

/* B's temp dir and the names of its files. */
static void broker_init(struct broker *b, const char *listener)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->dir, sizeof(b->dir), "/tmp/libpigeon-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(b->dir));
    snprintf(b->conf, sizeof(b->conf), "%s/pigeond.conf", b->dir);
    snprintf(b->ports, sizeof(b->ports), "%s/ports", b->dir);
    snprintf(b->log, sizeof(b->log), "%s/pigeond.log", b->dir);
    snprintf(b->listener, sizeof(b->listener), "%s", listener);
}

void broker_start(struct broker *b, const char *bind, const char *extra)
{
    broker_init(b, "main");
    broker_write_config(b, bind, extra);
    broker_restart(b);
}

void broker_start_text(struct broker *b, const char *text, const char *listener)
{
    broker_init(b, listener);
    FILE *f = fopen(b->conf, "w");
    ck_assert_msg(f != NULL, "cannot write %s", b->conf);
    fputs(text, f);
    fclose(f);
    broker_restart(b);
}

int broker_stop(struct broker *b, int sig)
{
    int status = 0;

    if (b->pid == 0)
        return 0;
    kill(b->pid, sig);
    double end = now_s() + test_deadline();
    pid_t r;
    while ((r = waitpid(b->pid, &status, WNOHANG)) == 0 && now_s() < end)
        sleep_ms(10);
    if (r == 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &status, 0);
    }
    b->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* True when the log mentions a sanitizer report. */
static bool broker_log_has(const struct broker *b, const char *what)
{
    FILE *f = fopen(b->log, "r");
    char line[1024];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

void broker_finish(struct broker *b)
{
    int status = broker_stop(b, SIGTERM);
    ck_assert_msg(status == 0, "pigeond exited with %d (log %s)", status, b->log);
    ck_assert_msg(!broker_log_has(b, "AddressSanitizer"), "ASan report in %s", b->log);
    ck_assert_msg(!broker_log_has(b, "runtime error"), "UBSan report in %s", b->log);
    unlink(b->conf);
    unlink(b->ports);
    unlink(b->log);
    rmdir(b->dir);
}

int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {}

bool run_until(struct event_base *base, bool (*pred)(void *arg), void *arg)
{
    double end = now_s() + test_deadline();
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 20000};

    ck_assert_ptr_nonnull(tick);
    event_add(tick, &tv);
    while (!pred(arg) && now_s() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return pred(arg);
}

void run_for(struct event_base *base, double seconds)
{
    double end = now_s() + seconds;
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 20000};

    ck_assert_ptr_nonnull(tick);
    event_add(tick, &tv);
    while (now_s() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
}

bool flag_set(void *arg)
{
    return *(int *)arg != 0;
}

void obs_state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    struct obs *o = arg;
    o->connected += state == PIGEON_STATE_CONNECTED;
    o->disconnected += state == PIGEON_STATE_DISCONNECTED;
    o->closed += state == PIGEON_STATE_CLOSED;
    if (err != PIGEON_OK)
        o->last_err = err;
}

void obs_error_cb(pigeon_client *c, int err, const char *message, void *arg)
{
    struct obs *o = arg;
    o->errors++;
    o->last_error = err;
    snprintf(o->error_msg, sizeof(o->error_msg), "%s", message);
}

void obs_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    ((struct obs *)arg)->msgs++;
}

void obs_done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct obs *o = arg;
    o->done++;
    o->done_err = err;
    o->done_result = result;
}

pigeon_client *obs_connect(struct event_base *base, const char *addr, struct obs *o,
                           struct pigeon_options *opts)
{
    struct pigeon_options def;
    pigeon_client *c = NULL;

    if (opts == NULL) {
        test_options(&def);
        opts = &def;
    }
    opts->on_state = obs_state_cb;
    opts->state_arg = o;
    opts->on_error = obs_error_cb;
    opts->error_arg = o;
    ck_assert_int_eq(pigeon_connect(base, addr, opts, &c), PIGEON_OK);
    return c;
}

bool obs_connected(void *arg)
{
    return ((struct obs *)arg)->connected > 0;
}

bool obs_closed(void *arg)
{
    return ((struct obs *)arg)->closed > 0;
}

bool obs_done(void *arg)
{
    return ((struct obs *)arg)->done > 0;
}

bool reached(void *arg)
{
    struct at_least *a = arg;
    return *a->v >= a->n;
}

void test_options(struct pigeon_options *o)
{
    pigeon_options_init(o);
    o->client_name = "libpigeon-test";
    o->reconnect_min_ms = 20;
    o->reconnect_max_ms = 200;
    o->connect_timeout_ms = (int)(test_deadline() * 1000);
}
