/*
 * receive.c - the broker's frames: responses, `msg` and `error`
 * notifications.
 *
 * Frames arrive whole and bounded (transport.c ran the frame scanner over
 * them); each is parsed in place with the shared envelope parser and
 * handed out without a copy.  Responses are matched to the oldest awaited
 * request (the broker answers in order) and checked by msgid; anything
 * that breaks the protocol drops the connection (PIGEON_EPROTO), which is
 * then made again.  Notifications other than `msg` and `error` are for
 * newer clients and ignored.
 */
#include "client.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "msg.h"
#include "wire.h"

/* ---------------------------------------------------------- receiving --- */

/*
 * Hello was refused with ERR and the broker's MSG (MLEN bytes).  A refused
 * login is final (the same credentials would be refused again); its message
 * is the broker's ("authentication failed"), then which credentials were
 * sent, never their value.
 */
static void client_hello_refused(pigeon_client *c, int err, const char *msg, uint32_t mlen)
{
    char who[128];

    c->down_code = err;
    if (err != PIGEON_ERR_AUTH_FAILED && err != PIGEON_ERR_AUTH_REQUIRED) {
        snprintf(c->down_msg, sizeof(c->down_msg), "hello refused: broker: %.*s", (int)mlen, msg);
        client_lost(c, err, c->down_msg);
        return;
    }
    c->no_retry = true;
    if (c->token != NULL)
        snprintf(who, sizeof(who), "with a token");
    else if (c->user != NULL)
        snprintf(who, sizeof(who), "as user '%.64s'%s", c->user,
                 c->password != NULL ? "" : ", with no password");
    else
        snprintf(who, sizeof(who), "with no credentials: give a user and password, or a token");
    snprintf(c->down_msg, sizeof(c->down_msg), "%.*s (%s)", (int)(mlen > 120 ? 120 : mlen), msg,
             who);
    client_lost(c, err, c->down_msg);
}

static void client_on_hello(pigeon_client *c, struct mpread result)
{
    struct wire_hello_result h;

    if (wire_parse_hello(result, &h) < 0) {
        client_proto_error(c, "hello result is not a map");
        return;
    }
    c->max_payload = h.max_payload > UINT32_MAX ? UINT32_MAX : (uint32_t)h.max_payload;
    client_adopt_user(c, h.user, h.user_len);
    c->attempts = 0;
    c->ever_connected = true;
    event_del(c->attempt_ev);
    /* Before CONNECTED: until then publications join the buffer, behind it. */
    if (client_send_pending(c) != PIGEON_OK) {
        client_lost(c, PIGEON_ENOMEM, "out of memory sending the reconnect buffer");
        return;
    }
    if (!client_alive(c) || !transport_is_up(c->transport))
        return;
    client_set_state(c, PIGEON_STATE_CONNECTED, 0);
}

static void client_on_response(pigeon_client *c, const struct envelope *env)
{
    struct wait w;
    const char *msg;
    uint32_t mlen;
    uint64_t result = 0;

    if (waits_peek(&c->sent) == NULL || waits_peek(&c->sent)->msgid != env->msgid) {
        client_proto_error(c, "a response to no request of ours");
        return;
    }
    waits_pop(&c->sent, &w);
    int err = wire_parse_error(env->error, &msg, &mlen);
    if (err < 0) {
        client_proto_error(c, "a response's error is neither nil nor [code, message]");
        return;
    }
    if (err > 0)
        client_err(c, err, "broker: %.*s", (int)mlen, msg);
    switch (w.kind) {
    case WAIT_HELLO:
        if (err != PIGEON_OK)
            client_hello_refused(c, err, msg, mlen);
        else
            client_on_hello(c, env->result);
        break;
    case WAIT_SUB:
        client_on_sub(c, w.u.sub, err, env->result);
        break;
    case WAIT_PING:
        c->ping_out = false;
        break;
    case WAIT_UNSUB:
        break;
    case WAIT_DONE:
        if (err == PIGEON_OK && wire_parse_uint(env->result, &result) < 0)
            result = 0; /* ping's "pong" */
        w.u.done.cb(c, err, result, w.u.done.arg);
        break;
    case WAIT_REQ:
        client_on_req_pub(c, w.u.token, err, env->result);
        break;
    }
}

/* Hands message W to its subscription's callback. */
static void client_deliver(pigeon_client *c, const struct wire_msg *w)
{
    struct pigeon_msg m;
    struct sub *s = subs_by_sid(&c->subs, w->sid);

    if (s == NULL)
        return; /* unsubscribed: the broker had sent it before it knew */
    msg_from_wire(&m, w, s->id);
    s->cb(c, &m, s->arg);
}

static void client_on_msg(pigeon_client *c, const struct envelope *env)
{
    struct wire_msg w;
    const char *why;

    if (wire_parse_msg(env->params, env->n_params, &w, &why) < 0) {
        client_proto_error(c, why);
        return;
    }
    client_deliver(c, &w);
}

static void client_on_error(pigeon_client *c, const struct envelope *env)
{
    const char *msg;
    uint32_t mlen;
    char text[CLIENT_ERRMSG_MAX];

    int code = wire_parse_error_params(env->params, env->n_params, &msg, &mlen);
    if (code < 0) {
        client_proto_error(c, "an error notification is not [code, message]");
        return;
    }
    snprintf(text, sizeof(text), "broker: %.*s", (int)mlen, msg);
    client_err(c, code, "%s", text);
    /* Kept as the reason if the socket closes next (fatal errors). */
    c->down_code = code;
    memcpy(c->down_msg, text, sizeof(text));
    if (c->opts.on_error != NULL)
        c->opts.on_error(c, code, text, c->opts.error_arg);
}

static bool method_is(const struct envelope *env, const char *name)
{
    size_t n = strlen(name);
    return env->method_len == n && memcmp(env->method, name, n) == 0;
}

bool client_frame_cb(void *arg, const uint8_t *frame, size_t len)
{
    pigeon_client *c = arg;
    struct envelope env;
    const char *why;

    client_enter(c);
    if (envelope_parse(frame, len, &env, &why) < 0) {
        client_proto_error(c, why);
    } else if (env.kind == PROTO_NOTIFICATION && method_is(&env, "msg")) {
        c->down_code = 0;
        client_on_msg(c, &env);
    } else if (env.kind == PROTO_RESPONSE) {
        c->down_code = 0;
        client_on_response(c, &env);
    } else if (env.kind == PROTO_NOTIFICATION && method_is(&env, "error")) {
        client_on_error(c, &env);
    }
    /* Other notifications are for newer clients; the broker sends no requests. */
    bool go_on = client_alive(c) && transport_is_up(c->transport);
    client_leave(c);
    return go_on;
}

/*
 * The transport's fast path: a complete [2, "msg", [sid, topic, payload]] at DATA,
 * the shape of nearly every frame a subscriber reads, is parsed and
 * delivered in one pass, where the scanner, the envelope parser and the
 * params parser would each have read it.  Anything else (a msg with opts,
 * a response, a frame not all read yet, a malformed one) is left to the
 * scanner, which bounds it and reports what is wrong.
 */
bool client_quick_cb(void *arg, const uint8_t *data, size_t avail, size_t *used)
{
    static const uint8_t prefix[] = {0x93, PROTO_NOTIFICATION, 0xa3, 'm', 's', 'g', 0x93};
    pigeon_client *c = arg;
    struct wire_msg w;
    struct mpread r;

    *used = 0;
    if (avail <= sizeof(prefix) || memcmp(data, prefix, sizeof(prefix)) != 0)
        return true;
    mpread_init(&r, data + sizeof(prefix), avail - sizeof(prefix));
    if (wire_parse_msg3_stream(&r, &w) < 0)
        return true;
    *used = (size_t)(r.p - data);
    client_enter(c);
    c->down_code = 0;
    client_deliver(c, &w);
    bool go_on = client_alive(c) && transport_is_up(c->transport);
    client_leave(c);
    return go_on;
}
