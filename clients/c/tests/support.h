/*
 * support.h - what libpigeon's integration tests share: a real pigeond per
 * test (started from $PIGEOND with a config of the test's own, on port 0 or
 * a chosen port, its address read from the ports file), event-loop helpers
 * that wait with generous deadlines instead of asserting on time, and an
 * observer of a client's callbacks.
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
    char addr[192];    /* the listener's address, from the ports file */
    char listener[32]; /* which listener addr is ("": the first) */
};

/* Seconds any single wait may take ($PIGEON_TEST_DEADLINE, default 30). */
double test_deadline(void);

/*
 * Writes a config with BIND as the only listener ("127.0.0.1:0", a chosen
 * port, "unix:/path") and EXTRA lines in [broker], and starts pigeond.
 * Fails the test when it does not come up.
 */
void broker_start(struct broker *b, const char *bind, const char *extra);

/*
 * Writes TEXT as the whole config file and starts pigeond; B->addr is the
 * address of the listener named LISTENER.  Fails the test when it does not
 * come up.
 */
void broker_start_text(struct broker *b, const char *text, const char *listener);

/* The address of listener NAME, from the ports file, into OUT (192 bytes). */
bool broker_address(const struct broker *b, const char *name, char *out);

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

/* What a test sees of a client through its callbacks (zero it first). */
struct obs {
    int connected;    /* CONNECTED transitions */
    int disconnected; /* DISCONNECTED transitions */
    int closed;       /* CLOSED transitions */
    int last_err;     /* of the last state change with an error */
    int errors;       /* on_error calls */
    int last_error;
    char error_msg[256]; /* ... and the last one's message */
    int msgs;
    int done; /* pigeon_done_cb calls */
    int done_err;
    uint64_t done_result;
};

/* Callbacks that record into the struct obs given as their ARG. */
void obs_state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg);
void obs_error_cb(pigeon_client *c, int err, const char *message, void *arg);
void obs_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg); /* counts */
void obs_done_cb(pigeon_client *c, int err, uint64_t result, void *arg);

/*
 * pigeon_connect on BASE to ADDR with OPTS (NULL: test_options), its
 * on_state and on_error recording into O.  Fails the test unless it
 * returns PIGEON_OK.
 */
pigeon_client *obs_connect(struct event_base *base, const char *addr, struct obs *o,
                           struct pigeon_options *opts);

/* run_until predicates on a struct obs: it connected, closed, was told done. */
bool obs_connected(void *arg);
bool obs_closed(void *arg);
bool obs_done(void *arg);

/* run_until predicate: *v >= n. */
struct at_least {
    const int *v;
    int n;
};
bool reached(void *arg);

#endif
