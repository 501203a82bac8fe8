/*
 * sync.c - the blocking API: the asynchronous client on a private
 * event_base, run only while a pigeon_sync_* call waits.
 *
 * Each call starts an asynchronous operation and runs the loop one wake-up
 * at a time until its callback has fired or the deadline passed.  Messages
 * of subscriptions are copied into a FIFO as they arrive, whichever call
 * happens to be running the loop, and pigeon_sync_next hands them out.
 * The FIFO holds at most max_queued messages: a program that subscribes
 * and stops calling pigeon_sync_next must not grow without bound, so
 * arrivals past it are dropped and counted (the queued ones are older and
 * were promised first).
 *
 * A call that gives up on its deadline may leave an operation whose
 * callback comes later (a response still on its way): such operations
 * carry a heap-allocated `struct sync_call` that the call marks abandoned,
 * and the late callback frees.  pigeon_close runs every pending callback,
 * so nothing is left behind at pigeon_sync_close.
 *
 * Subscriptions are the exception: their on_done is not called once
 * unsubscribed, so pigeon_sync_subscribe waits on a field of the sync
 * object itself, matched by subscription id, rather than on a call.
 */
#include "pigeon.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "msg.h"

struct pigeon_sync {
    struct event_base *base;        /* owned */
    pigeon_client *c;               /* owned */
    struct event *timer;            /* owned: the deadline of the wait under way */
    struct pigeon_msg *head, *tail; /* owned: messages not yet taken */
    size_t queued, max_queued;      /* messages in the FIFO; its bound (0: none) */
    uint64_t dropped;               /* arrivals dropped on a full FIFO */
    int timeout_ms;                 /* the connect timeout, the default deadline */
    size_t max_outbound;
    enum pigeon_state state;
    int state_err;
    pigeon_state_cb user_state;
    void *user_state_arg;
    uint64_t sub_wait_id; /* the subscription pigeon_sync_subscribe waits for */
    bool sub_done;
    int sub_err;
};

/* An operation whose callback may outlive the call that waits for it. */
struct sync_call {
    bool done;
    bool abandoned;
    int err;
    uint64_t result;
    pigeon_msg *reply; /* owned, for requests */
};

/* ------------------------------------------------------------ waiting --- */

static void sync_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    /* Only there to wake event_base_loop up. */
}

typedef bool (*sync_pred)(const struct pigeon_sync *s, const void *arg);

/*
 * Runs the loop until PRED(S, ARG) holds or TIMEOUT_MS passed (< 0: no
 * deadline).  Returns true when it holds.
 */
static bool sync_run(struct pigeon_sync *s, sync_pred pred, const void *arg, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? clock_now_ms() + timeout_ms : -1;

    while (!pred(s, arg)) {
        if (deadline >= 0) {
            int64_t left = deadline - clock_now_ms();
            if (left < 0)
                break;
            struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                                 .tv_usec = (suseconds_t)(left % 1000) * 1000};
            event_add(s->timer, &tv);
        }
        if (event_base_loop(s->base, EVLOOP_ONCE) != 0)
            break; /* an error, or nothing left that could wake us */
    }
    event_del(s->timer);
    return pred(s, arg);
}

static bool sync_call_done(const struct pigeon_sync *s, const void *arg)
{
    return ((const struct sync_call *)arg)->done;
}

/* Connected, or the first attempt failed (reconnecting or not). */
static bool sync_settled(const struct pigeon_sync *s, const void *arg)
{
    return s->state != PIGEON_STATE_CONNECTING;
}

static bool sync_have_msg(const struct pigeon_sync *s, const void *arg)
{
    return s->head != NULL || s->state == PIGEON_STATE_CLOSED;
}

static bool sync_sub_answered(const struct pigeon_sync *s, const void *arg)
{
    return s->sub_done || s->state == PIGEON_STATE_CLOSED;
}

static bool sync_has_room(const struct pigeon_sync *s, const void *arg)
{
    return pigeon_outbound_bytes(s->c) < s->max_outbound / 2 || s->state == PIGEON_STATE_CLOSED;
}

/* Runs once without blocking: sends what was queued, reads what came. */
static void sync_poll(struct pigeon_sync *s)
{
    event_base_loop(s->base, EVLOOP_NONBLOCK);
}

static int sync_deadline(const struct pigeon_sync *s, int timeout_ms)
{
    return timeout_ms > 0 ? timeout_ms : s->timeout_ms;
}

/* ---------------------------------------------------------- callbacks --- */

static void sync_state_cb(pigeon_client *c, enum pigeon_state state, int err, void *arg)
{
    struct pigeon_sync *s = arg;

    s->state = state;
    if (err != PIGEON_OK)
        s->state_err = err;
    if (s->user_state != NULL)
        s->user_state(c, state, err, s->user_state_arg);
}

static void sync_msg_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    struct pigeon_sync *s = arg;
    pigeon_msg *copy;

    if (s->max_queued > 0 && s->queued >= s->max_queued) {
        s->dropped++;
        return;
    }
    if (pigeon_msg_copy(m, &copy) != PIGEON_OK) {
        s->dropped++; /* out of memory: lost, as on a full queue */
        return;
    }
    if (s->tail != NULL)
        s->tail->next = copy;
    else
        s->head = copy;
    s->tail = copy;
    s->queued++;
}

static void sync_sub_done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct pigeon_sync *s = arg;

    if (result == s->sub_wait_id) {
        s->sub_done = true;
        s->sub_err = err;
    }
}

static void sync_done_cb(pigeon_client *c, int err, uint64_t result, void *arg)
{
    struct sync_call *call = arg;

    if (call->abandoned) {
        free(call);
        return;
    }
    call->done = true;
    call->err = err;
    call->result = result;
}

static void sync_reply_cb(pigeon_client *c, int err, const pigeon_msg *reply, void *arg)
{
    struct sync_call *call = arg;

    if (call->abandoned) {
        free(call);
        return;
    }
    call->done = true;
    call->err = err;
    if (err == PIGEON_OK)
        call->err = pigeon_msg_copy(reply, &call->reply);
}

/*
 * Waits for CALL; returns its error and *RESULT (may be NULL), or
 * PIGEON_ETIMEDOUT (then CALL is abandoned, to be freed by its callback).
 */
static int sync_wait_call(struct pigeon_sync *s, struct sync_call *call, int timeout_ms,
                          uint64_t *result)
{
    if (!sync_run(s, sync_call_done, call, timeout_ms)) {
        call->abandoned = true;
        return PIGEON_ETIMEDOUT;
    }
    int err = call->err;
    if (result != NULL)
        *result = call->result;
    free(call);
    return err;
}

/* ------------------------------------------------------------ the API --- */

static void sync_free(struct pigeon_sync *s)
{
    pigeon_close(s->c);
    while (s->head != NULL) {
        pigeon_msg *m = s->head;
        s->head = m->next;
        pigeon_msg_free(m);
    }
    if (s->timer != NULL)
        event_free(s->timer);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}

/*
 * The first attempt of S failed: copies why (pigeon_errmsg: the system's
 * reason, the broker's refusal) into O's errbuf, for the caller, who gets
 * no client to ask.  A wait of WAIT_MS that ended first has no message of
 * its own.
 */
static void sync_connect_failed(struct pigeon_sync *s, const struct pigeon_options *o,
                                const char *address, int wait_ms)
{
    const char *msg = pigeon_errmsg(s->c);

    if (o->errbuf == NULL || o->errbuf_len == 0)
        return;
    if (s->state == PIGEON_STATE_CONNECTING || *msg == '\0')
        snprintf(o->errbuf, o->errbuf_len, "connect to %s: no answer within %d ms", address,
                 wait_ms);
    else
        snprintf(o->errbuf, o->errbuf_len, "%s", msg);
}

int pigeon_sync_connect(const char *address, const struct pigeon_options *opts, int timeout_ms,
                        pigeon_sync **out)
{
    struct pigeon_options o;

    if (address == NULL || out == NULL)
        return PIGEON_EINVAL;
    if (opts != NULL)
        o = *opts;
    else
        pigeon_options_init(&o);
    if (o.reconnect < 0)
        o.reconnect = 0;
    struct pigeon_sync *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PIGEON_ENOMEM;
    s->user_state = o.on_state;
    s->user_state_arg = o.state_arg;
    o.on_state = sync_state_cb;
    o.state_arg = s;
    s->timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 5000;
    s->max_outbound = o.max_outbound;
    s->max_queued = o.max_queued;
    s->state = PIGEON_STATE_CONNECTING;
    s->base = event_base_new();
    s->timer = s->base != NULL ? evtimer_new(s->base, sync_timer_cb, s) : NULL;
    if (s->timer == NULL) {
        sync_free(s);
        return PIGEON_ENOMEM;
    }
    int rc = pigeon_connect(s->base, address, &o, &s->c);
    if (rc != PIGEON_OK) {
        sync_free(s);
        return rc;
    }
    int wait_ms = sync_deadline(s, timeout_ms);
    if (!sync_run(s, sync_settled, NULL, wait_ms))
        rc = PIGEON_ETIMEDOUT;
    else if (s->state != PIGEON_STATE_CONNECTED)
        rc = s->state_err != PIGEON_OK ? s->state_err : PIGEON_ECONNECT;
    if (rc != PIGEON_OK) {
        sync_connect_failed(s, &o, address, wait_ms);
        sync_free(s);
        return rc;
    }
    *out = s;
    return PIGEON_OK;
}

void pigeon_sync_close(pigeon_sync *s)
{
    if (s == NULL)
        return;
    /* A round trip, so that the broker has read everything before the
     * socket closes (a close with unread input would reset it).  Down with
     * publications buffered (reconnection on), the ping is buffered behind
     * them, so this waits for the reconnect too; nothing buffered, nothing
     * to wait for. */
    if (s->state == PIGEON_STATE_CONNECTED ||
        (s->state != PIGEON_STATE_CLOSED && pigeon_outbound_bytes(s->c) > 0))
        pigeon_sync_flush(s, s->timeout_ms);
    sync_free(s);
}

pigeon_client *pigeon_sync_client(pigeon_sync *s)
{
    return s->c;
}

uint64_t pigeon_sync_dropped(const pigeon_sync *s)
{
    return s->dropped;
}

/* Why nothing can be sent or received any more. */
static int sync_gone(const struct pigeon_sync *s)
{
    return s->state_err != PIGEON_OK ? s->state_err : PIGEON_ENOTCONN;
}

int pigeon_sync_publish(pigeon_sync *s, const char *topic, const void *payload, size_t len,
                        const struct pigeon_pub_opts *opts)
{
    if (s == NULL)
        return PIGEON_EINVAL;
    int rc = pigeon_publish(s->c, topic, payload, len, opts);
    if (rc == PIGEON_EFULL) {
        if (!sync_run(s, sync_has_room, NULL, s->timeout_ms))
            return PIGEON_ETIMEDOUT;
        if (s->state == PIGEON_STATE_CLOSED)
            return sync_gone(s);
        rc = pigeon_publish(s->c, topic, payload, len, opts);
    }
    if (rc == PIGEON_OK)
        sync_poll(s);
    return rc;
}

int pigeon_sync_publish_confirm(pigeon_sync *s, const char *topic, const void *payload, size_t len,
                                const struct pigeon_pub_opts *opts, int timeout_ms,
                                uint64_t *delivered)
{
    if (s == NULL)
        return PIGEON_EINVAL;
    struct sync_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return PIGEON_ENOMEM;
    int rc = pigeon_publish_confirm(s->c, topic, payload, len, opts, sync_done_cb, call);
    if (rc != PIGEON_OK) {
        free(call);
        return rc;
    }
    uint64_t result = 0;
    rc = sync_wait_call(s, call, sync_deadline(s, timeout_ms), &result);
    if (rc == PIGEON_OK && delivered != NULL)
        *delivered = result;
    return rc;
}

int pigeon_sync_subscribe(pigeon_sync *s, const char *pattern, const char *queue, int timeout_ms,
                          uint64_t *id)
{
    struct pigeon_sub_opts so = {.queue = queue, .on_done = sync_sub_done_cb, .done_arg = s};
    uint64_t sid;

    if (s == NULL)
        return PIGEON_EINVAL;
    int rc = pigeon_subscribe(s->c, pattern, &so, sync_msg_cb, s, &sid);
    if (rc != PIGEON_OK)
        return rc;
    s->sub_wait_id = sid;
    s->sub_done = false;
    if (!sync_run(s, sync_sub_answered, NULL, sync_deadline(s, timeout_ms))) {
        pigeon_unsubscribe(s->c, sid);
        return PIGEON_ETIMEDOUT;
    }
    if (!s->sub_done) {
        pigeon_unsubscribe(s->c, sid);
        return sync_gone(s);
    }
    if (s->sub_err != PIGEON_OK)
        return s->sub_err; /* the client has removed it */
    if (id != NULL)
        *id = sid;
    return PIGEON_OK;
}

int pigeon_sync_unsubscribe(pigeon_sync *s, uint64_t id)
{
    if (s == NULL)
        return PIGEON_EINVAL;
    int rc = pigeon_unsubscribe(s->c, id);
    if (rc != PIGEON_OK)
        return rc;
    pigeon_msg **pp = &s->head;
    s->tail = NULL;
    while (*pp != NULL) {
        pigeon_msg *m = *pp;
        if (m->sid == id) {
            *pp = m->next;
            s->queued--;
            pigeon_msg_free(m);
        } else {
            s->tail = m;
            pp = &m->next;
        }
    }
    sync_poll(s);
    return PIGEON_OK;
}

int pigeon_sync_next(pigeon_sync *s, int timeout_ms, pigeon_msg **out)
{
    if (s == NULL || out == NULL)
        return PIGEON_EINVAL;
    if (s->head == NULL) {
        if (timeout_ms == 0)
            sync_poll(s);
        else
            sync_run(s, sync_have_msg, NULL, timeout_ms);
    }
    if (s->head == NULL)
        return s->state == PIGEON_STATE_CLOSED ? sync_gone(s) : PIGEON_ETIMEDOUT;
    pigeon_msg *m = s->head;
    s->head = m->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->queued--;
    m->next = NULL;
    *out = m;
    return PIGEON_OK;
}

int pigeon_sync_request(pigeon_sync *s, const char *topic, const void *payload, size_t len,
                        int timeout_ms, pigeon_msg **reply)
{
    if (s == NULL || reply == NULL || timeout_ms <= 0)
        return PIGEON_EINVAL;
    struct sync_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return PIGEON_ENOMEM;
    int rc = pigeon_request(s->c, topic, payload, len, NULL, timeout_ms, sync_reply_cb, call);
    if (rc != PIGEON_OK) {
        free(call);
        return rc;
    }
    /* The request has its own timer: its callback comes by then. The
     * deadline here is a safety net, twice as far. */
    if (!sync_run(s, sync_call_done, call, timeout_ms > INT32_MAX / 2 ? -1 : 2 * timeout_ms)) {
        call->abandoned = true;
        return PIGEON_ETIMEDOUT;
    }
    rc = call->err;
    *reply = call->reply;
    free(call);
    return rc;
}

int pigeon_sync_reply(pigeon_sync *s, const pigeon_msg *request, const void *payload, size_t len)
{
    if (s == NULL)
        return PIGEON_EINVAL;
    int rc = pigeon_reply(s->c, request, payload, len);
    if (rc == PIGEON_OK)
        sync_poll(s);
    return rc;
}

int pigeon_sync_flush(pigeon_sync *s, int timeout_ms)
{
    if (s == NULL)
        return PIGEON_EINVAL;
    struct sync_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return PIGEON_ENOMEM;
    int rc = pigeon_flush(s->c, sync_done_cb, call);
    if (rc != PIGEON_OK) {
        free(call);
        return rc;
    }
    return sync_wait_call(s, call, sync_deadline(s, timeout_ms), NULL);
}
