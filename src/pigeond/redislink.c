/*
 * redislink.c - the link to Redis (see redislink.h).
 *
 * Layers, top-down: helpers; failure and teardown (deferred to fail_ev);
 * connecting, authenticating and subscribing; the timer (backoff,
 * deadlines); the public API.
 *
 * hiredis contexts are freed by hiredis itself after a failed connect or
 * a disconnect (it calls our callback, then frees), and by us in teardown.
 * So the link clears its pointer to a context before hiredis can free it
 * (in those callbacks) and before it frees one itself; a callback for a
 * context the link no longer points to is ignored.  ac->data is the link.
 *
 * Every command's callback receives a struct rl_cmd (one allocation per
 * command: commands are batches, interest changes and heartbeats, never
 * one per message) that remembers its bytes for redislink_pending.
 */
#include "redislink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "clock.h"
#include "xalloc.h"

#define RL_BACKOFF_MIN_MS 50
#define RL_BACKOFF_MAX_MS 1000
#define RL_CHECK_MS       250 /* how often an up link checks for unanswered commands */

enum rl_state {
    RL_WAIT,       /* backing off, or not started */
    RL_CONNECTING, /* connecting, authenticating, subscribing */
    RL_UP,
    RL_FAILING, /* teardown scheduled (fail_ev) */
    RL_STOPPED, /* being freed */
};

struct rl_sub {
    struct rl_sub *next;
    struct redislink *l;
    char *channel; /* owned */
    redislink_message_fn fn;
    void *priv;
};

struct rl_cmd {
    struct redislink *l;
    redislink_reply_fn fn;
    void *priv;
    size_t bytes;
};

struct redislink {
    struct event_base *base; /* borrowed */
    struct logger *log;      /* borrowed */
    char *host, *path, *user, *password;
    uint16_t port;
    uint32_t timeout_ms;
    char address[300];
    const struct redislink_ops *ops;
    void *arg;
    redisAsyncContext *cmd, *sub; /* owned by hiredis once connecting; NULL when gone */
    enum rl_state state;
    bool was_up;    /* the failure being handled took down an up link */
    bool ever_up;   /* came up at least once */
    bool cmd_ready; /* the command connection answered AUTH (or PING) */
    bool sub_ready; /* the subscriber connection did */
    bool paused;    /* reading the subscriber connection is stopped */
    unsigned n_subs, n_confirmed;
    struct rl_sub *subs; /* owned */
    struct event *timer; /* owned: backoff (WAIT), deadline (CONNECTING), checks (UP) */
    struct event *fail_ev;
    char why[192]; /* the failure being handled */
    uint32_t backoff_ms;
    uint32_t failures; /* failed attempts since the link was last up (or started) */
    uint64_t reconnects;
    size_t pending;
    uint32_t inflight;
    int64_t progress_ms; /* last reply, or when the first command in flight was sent */
};

static void rl_fail_cb(evutil_socket_t fd, short what, void *arg);
static void rl_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------ helpers ---- */

static void rl_arm(struct redislink *l, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

/* The next backoff: the current one with +-25% jitter; then it doubles (capped). */
static uint32_t rl_next_backoff(struct redislink *l)
{
    uint32_t r, ms = l->backoff_ms;

    evutil_secure_rng_get_bytes(&r, sizeof(r));
    ms = ms - ms / 4 + r % (ms / 2 + 1);
    l->backoff_ms = l->backoff_ms * 2 < RL_BACKOFF_MAX_MS ? l->backoff_ms * 2 : RL_BACKOFF_MAX_MS;
    return ms;
}

/* ---------------------------------------------------- failure, teardown ---- */

/* Takes the link down for WHY (copied) once teardown runs; later failures are ignored. */
static void rl_fail_with(struct redislink *l, const char *prefix, const char *why)
{
    if (l->state != RL_CONNECTING && l->state != RL_UP)
        return;
    l->was_up = l->state == RL_UP;
    l->state = RL_FAILING;
    snprintf(l->why, sizeof(l->why), "%s%s", prefix, why != NULL && *why ? why : "closed");
    event_del(l->timer);
    event_active(l->fail_ev, 0, 0);
}

/* Frees both contexts: commands in flight and subscriptions get NULL replies. */
static void rl_teardown(struct redislink *l)
{
    redisAsyncContext *cmd = l->cmd, *sub = l->sub;

    l->cmd = NULL;
    l->sub = NULL;
    if (cmd != NULL)
        redisAsyncFree(cmd);
    if (sub != NULL)
        redisAsyncFree(sub);
    l->cmd_ready = l->sub_ready = false;
    l->n_confirmed = 0;
}

static void rl_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redislink *l = arg;

    if (l->state != RL_FAILING)
        return;
    rl_teardown(l);
    l->state = RL_WAIT;
    if (l->was_up) {
        l->failures = 0;
        l->ops->down(l->arg, l->why);
    } else if (l->failures++ == 0) {
        log_warning(l->log, "backplane: cannot use Redis at %s: %s; retrying every second at most",
                    l->address, l->why);
    } else {
        log_debug(l->log, "backplane: Redis at %s: %s", l->address, l->why);
    }
    rl_arm(l, rl_next_backoff(l));
}

/* ------------------------------------------------- connect, auth, subscribe ---- */

static void rl_check_up(struct redislink *l)
{
    if (l->state != RL_CONNECTING || !l->cmd_ready || !l->sub_ready || l->n_confirmed < l->n_subs)
        return;
    l->state = RL_UP;
    l->backoff_ms = RL_BACKOFF_MIN_MS;
    l->failures = 0;
    l->progress_ms = clock_now_ms();
    if (l->ever_up)
        l->reconnects++;
    l->ever_up = true;
    event_del(l->timer);
    rl_arm(l, RL_CHECK_MS);
    l->ops->up(l->arg);
}

/* A context of ours, or NULL when the link let go of it. */
static redisAsyncContext **rl_slot(struct redislink *l, const redisAsyncContext *ac)
{
    if (ac == l->cmd)
        return &l->cmd;
    if (ac == l->sub)
        return &l->sub;
    return NULL;
}

static void rl_connect_cb(const redisAsyncContext *ac, int status)
{
    struct redislink *l = ac->data;
    redisAsyncContext **slot = rl_slot(l, ac);

    if (status == REDIS_OK || slot == NULL)
        return;
    *slot = NULL; /* hiredis frees it after this callback */
    rl_fail_with(l, "connect: ", ac->errstr);
}

static void rl_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct redislink *l = ac->data;
    redisAsyncContext **slot = rl_slot(l, ac);

    if (slot == NULL)
        return;
    *slot = NULL; /* hiredis frees it after this callback */
    rl_fail_with(l, status == REDIS_OK ? "connection closed" : "connection lost: ",
                 status == REDIS_OK ? "" : ac->errstr);
}

/* True when R is a reply that is not an error; otherwise fails the link, naming WHAT. */
static bool rl_reply_ok(struct redislink *l, const redisReply *r, const char *what)
{
    char why[160];

    if (r == NULL)
        return false;
    if (r->type != REDIS_REPLY_ERROR)
        return true;
    snprintf(why, sizeof(why), "%.*s", (int)(r->len < 120 ? r->len : 120), r->str);
    rl_fail_with(l, what, why);
    return false;
}

static void rl_sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rl_sub *s = privdata;
    struct redislink *l = s->l;
    const redisReply *r = reply;

    if (r == NULL || ac != l->sub || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        s->fn(l->arg, r->element[2]->str, r->element[2]->len, s->priv);
        if (l->paused && l->sub == ac)
            ac->ev.delRead(ac->ev.data); /* hiredis re-armed reading before calling us */
    } else if (strcmp(kind, "subscribe") == 0) {
        l->n_confirmed++;
        rl_check_up(l);
    }
}

static void rl_sub_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redislink *l = privdata;

    if (ac != l->sub || !rl_reply_ok(l, reply, "subscriber connection: "))
        return;
    l->sub_ready = true;
    for (struct rl_sub *s = l->subs; s != NULL; s = s->next)
        redisAsyncCommand(ac, rl_sub_cb, s, "SUBSCRIBE %b", s->channel, strlen(s->channel));
    rl_check_up(l);
}

static void rl_cmd_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redislink *l = privdata;

    if (ac != l->cmd || !rl_reply_ok(l, reply, "command connection: "))
        return;
    l->cmd_ready = true;
    rl_check_up(l);
}

/* AUTH [user] password, or PING when there is no password: the first reply says the connection
 * works. */
static void rl_hello(struct redislink *l, redisAsyncContext *ac, redisCallbackFn *fn)
{
    if (l->password == NULL)
        redisAsyncCommand(ac, fn, l, "PING");
    else if (l->user == NULL)
        redisAsyncCommand(ac, fn, l, "AUTH %s", l->password);
    else
        redisAsyncCommand(ac, fn, l, "AUTH %s %s", l->user, l->password);
}

/* A new context, attached to the loop; NULL (and *WHY copied) when it failed at once. */
static redisAsyncContext *rl_open(struct redislink *l, char *why, size_t len)
{
    redisAsyncContext *ac =
        l->path != NULL ? redisAsyncConnectUnix(l->path) : redisAsyncConnect(l->host, l->port);

    if (ac == NULL)
        abort(); /* hiredis is out of memory: the xalloc policy */
    if (ac->err) {
        snprintf(why, len, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = l;
    if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
        snprintf(why, len, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, rl_connect_cb);
    redisAsyncSetDisconnectCallback(ac, rl_disconnect_cb);
    return ac;
}

static void rl_connect(struct redislink *l)
{
    char why[160] = "";

    l->state = RL_CONNECTING;
    l->paused = false;
    l->cmd = rl_open(l, why, sizeof(why));
    if (l->cmd != NULL)
        l->sub = rl_open(l, why, sizeof(why));
    if (l->cmd == NULL || l->sub == NULL) {
        rl_fail_with(l, "connect: ", why);
        return;
    }
    rl_hello(l, l->cmd, rl_cmd_auth_cb);
    rl_hello(l, l->sub, rl_sub_auth_cb);
    rl_arm(l, l->timeout_ms);
}

/* -------------------------------------------------------------- timer ---- */

static void rl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redislink *l = arg;
    char why[96];

    switch (l->state) {
    case RL_WAIT:
        rl_connect(l);
        break;
    case RL_CONNECTING:
        snprintf(why, sizeof(why), "not ready within %u ms", l->timeout_ms);
        rl_fail_with(l, "", why);
        break;
    case RL_UP:
        if (l->inflight > 0 && clock_now_ms() - l->progress_ms > (int64_t)l->timeout_ms) {
            snprintf(why, sizeof(why), "no reply within %u ms", l->timeout_ms);
            rl_fail_with(l, "", why);
            break;
        }
        rl_arm(l, RL_CHECK_MS);
        break;
    case RL_FAILING:
    case RL_STOPPED:
        break;
    }
}

/* ---------------------------------------------------------- commands ---- */

static void rl_cmd_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rl_cmd *c = privdata;
    struct redislink *l = c->l;

    l->pending -= c->bytes;
    l->inflight--;
    if (reply != NULL)
        l->progress_ms = clock_now_ms();
    if (c->fn != NULL)
        c->fn(l->arg, reply, c->priv);
    free(c);
}

/* The callback state of a command about to be appended; NULL when the link is not up. */
static struct rl_cmd *rl_cmd_new(struct redislink *l, redislink_reply_fn fn, void *priv)
{
    if (l->state != RL_UP || l->cmd == NULL)
        return NULL;
    struct rl_cmd *c = xmalloc(sizeof(*c));
    *c = (struct rl_cmd){.l = l, .fn = fn, .priv = priv};
    return c;
}

/* Counts C, appended: its bytes are what hiredis's buffer grew by since BEFORE. */
static int rl_cmd_sent(struct redislink *l, struct rl_cmd *c, int rc, size_t before)
{
    if (rc != REDIS_OK) {
        free(c);
        return -1;
    }
    c->bytes = sdslen(l->cmd->c.obuf) - before;
    if (l->inflight++ == 0)
        l->progress_ms = clock_now_ms();
    l->pending += c->bytes;
    return 0;
}

int redislink_command(struct redislink *l, redislink_reply_fn fn, void *priv, int argc,
                      const char **argv, const size_t *argvlen)
{
    struct rl_cmd *c = rl_cmd_new(l, fn, priv);

    if (c == NULL)
        return -1;
    size_t before = sdslen(l->cmd->c.obuf);
    return rl_cmd_sent(l, c, redisAsyncCommandArgv(l->cmd, rl_cmd_cb, c, argc, argv, argvlen),
                       before);
}

int redislink_command_formatted(struct redislink *l, redislink_reply_fn fn, void *priv,
                                const char *cmd, size_t len)
{
    struct rl_cmd *c = rl_cmd_new(l, fn, priv);

    if (c == NULL)
        return -1;
    size_t before = sdslen(l->cmd->c.obuf);
    return rl_cmd_sent(l, c, redisAsyncFormattedCommand(l->cmd, rl_cmd_cb, c, cmd, len), before);
}

void redislink_flush_now(struct redislink *l)
{
    if (l->cmd != NULL && sdslen(l->cmd->c.obuf) > 0)
        redisAsyncHandleWrite(l->cmd);
}

/* ------------------------------------------------------------ public ---- */

static void rl_format_address(struct redislink *l)
{
    if (l->path != NULL)
        snprintf(l->address, sizeof(l->address), "unix:%s", l->path);
    else if (strchr(l->host, ':') != NULL)
        snprintf(l->address, sizeof(l->address), "[%s]:%u", l->host, l->port);
    else
        snprintf(l->address, sizeof(l->address), "%s:%u", l->host, l->port);
}

int redislink_new(struct event_base *base, struct logger *log, const struct redislink_config *cfg,
                  const struct redislink_ops *ops, void *arg, struct redislink **out)
{
    struct redislink *l = xcalloc(1, sizeof(*l));

    l->base = base;
    l->log = log;
    l->host = cfg->host != NULL ? xstrdup(cfg->host) : NULL;
    l->path = cfg->path != NULL ? xstrdup(cfg->path) : NULL;
    l->user = cfg->user != NULL ? xstrdup(cfg->user) : NULL;
    l->password = cfg->password != NULL ? xstrdup(cfg->password) : NULL;
    l->port = cfg->port;
    l->timeout_ms = cfg->timeout_ms;
    l->ops = ops;
    l->arg = arg;
    l->backoff_ms = RL_BACKOFF_MIN_MS;
    rl_format_address(l);
    l->timer = evtimer_new(base, rl_timer_cb, l);
    l->fail_ev = event_new(base, -1, 0, rl_fail_cb, l);
    if (l->timer == NULL || l->fail_ev == NULL) {
        log_error(log, "backplane: cannot create the Redis link's events");
        redislink_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void redislink_free(struct redislink *l)
{
    if (l == NULL)
        return;
    l->state = RL_STOPPED;
    rl_teardown(l);
    if (l->timer != NULL)
        event_free(l->timer);
    if (l->fail_ev != NULL)
        event_free(l->fail_ev);
    while (l->subs != NULL) {
        struct rl_sub *s = l->subs;
        l->subs = s->next;
        free(s->channel);
        free(s);
    }
    free(l->host);
    free(l->path);
    free(l->user);
    if (l->password != NULL)
        memset(l->password, 0, strlen(l->password));
    free(l->password);
    free(l);
}

void redislink_subscribe(struct redislink *l, const char *channel, redislink_message_fn fn,
                         void *priv)
{
    struct rl_sub *s = xcalloc(1, sizeof(*s));

    s->l = l;
    s->channel = xstrdup(channel);
    s->fn = fn;
    s->priv = priv;
    s->next = l->subs;
    l->subs = s;
    l->n_subs++;
}

void redislink_start(struct redislink *l)
{
    if (l->state == RL_WAIT)
        rl_connect(l);
}

bool redislink_is_up(const struct redislink *l)
{
    return l->state == RL_UP;
}

void redislink_fail(struct redislink *l, const char *why)
{
    rl_fail_with(l, "", why);
}

void redislink_pause_reading(struct redislink *l, bool pause)
{
    if (l->paused == pause)
        return;
    l->paused = pause;
    if (l->sub == NULL || l->sub->ev.data == NULL)
        return;
    if (pause)
        l->sub->ev.delRead(l->sub->ev.data);
    else
        l->sub->ev.addRead(l->sub->ev.data);
}

size_t redislink_pending(const struct redislink *l)
{
    return l->pending;
}

uint64_t redislink_reconnects(const struct redislink *l)
{
    return l->reconnects;
}

const char *redislink_address(const struct redislink *l)
{
    return l->address;
}
