/*
 * support.h - what libpigeon's integration tests share: a real pigeond per
 * test (started from $PIGEOND with a config of the test's own, on port 0 or
 * a chosen port, its address read from the ports file) and event-loop
 * helpers that wait with generous deadlines instead of asserting on time.
 */
#ifndef PIGEON_TEST_SUPPORT_H
#define PIGEON_TEST_SUPPORT_H

#include <stdbool.h>
#include <sys/types.h>

#include <event2/event.h>

#include "pigeon.h"

struct broker {
    pid_t pid;     /* 0 when not running */
    char dir[128]; /* temp dir: config, ports file, log */
    char conf[192];
    char ports[192];
    char log[192];
    char addr[192]; /* the listener's address, from the ports file */
};

/* Seconds any single wait may take ($PIGEON_TEST_DEADLINE, default 30). */
double test_deadline(void);

/*
 * Writes a config with BIND as the only listener ("127.0.0.1:0", a chosen
 * port, "unix:/path") and EXTRA lines in [broker], and starts pigeond.
 * Fails the test when it does not come up.
 */
void broker_start(struct broker *b, const char *bind, const char *extra);

/* Starts pigeond again with the same config (after broker_stop). */
void broker_restart(struct broker *b);

/* Sends SIG and waits: returns the exit status (0 clean), or 128 + signal. */
int broker_stop(struct broker *b, int sig);

/* Stops it cleanly, asserting a clean exit and no sanitizer report. */
void broker_finish(struct broker *b);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int free_port(void);

/* Runs BASE until PRED(ARG) holds, at most test_deadline() seconds. */
bool run_until(struct event_base *base, bool (*pred)(void *arg), void *arg);

/* Runs BASE for about SECONDS (to see that something does NOT happen). */
void run_for(struct event_base *base, double seconds);

/* pred helper: *(int *)arg != 0 */
bool flag_set(void *arg);

/* Default options for tests: fast reconnects. */
void test_options(struct pigeon_options *o);

#endif
