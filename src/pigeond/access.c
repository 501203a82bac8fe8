/*
 * access.c - logins and permissions on a session (see access.h).
 *
 * Layers, top-down: answers (the hello result, the codes 6 and 7); logging
 * in (a certificate, a hello checked by the authenticator, its answer);
 * permission checks; the reload refresh.
 */
#include "access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "auth.h"
#include "clock.h"
#include "conn.h"
#include "encode.h"
#include "proto.h"
#include "responses.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "tls.h"
#include "topic.h"
#include "transport.h"
#include "users.h"

/* Replies an allow_responses user may owe at once, at most (responses.h). */
#define ACCESS_RESPONSES_MAX 1024

static struct auth *access_auth(const struct session *s)
{
    return s->conn->loop->srv->auth;
}

/* ------------------------------------------------------------- answers */

void access_answer_hello(struct session *s, uint32_t msgid)
{
    struct loop *lp = s->conn->loop;
    struct encode_hello h = {
        .server = "pigeond",
        .version = PIGEON_VERSION,
        .client_id = s->id,
        .max_payload = lp->conf->max_payload,
        .user = s->user ? user_name(s->user) : NULL,
    };
    msgpack_sbuffer *buf = loop_frame_buf(lp);

    encode_result_hello(buf, msgid, &h);
    conn_send_frame(s->conn, buf->data, buf->size);
}

/* Fails a request (msgid MSGID) or a notification with CODE, then closes (fatal). */
static void access_refuse(struct session *s, bool is_request, uint32_t msgid, int code,
                          const char *message, const char *reason)
{
    msgpack_sbuffer *buf = loop_frame_buf(s->conn->loop);

    if (is_request)
        encode_response_error(buf, msgid, code, message);
    else
        encode_error_notification(buf, code, message);
    conn_send_frame(s->conn, buf->data, buf->size);
    conn_close(s->conn, reason, 0, NULL);
}

/* -------------------------------------------------------------- logging in */

/* Makes USER (the caller's reference, given to S) the one S is. */
static void access_login(struct session *s, struct user *user)
{
    if (s->user != NULL)
        user_unref(s->user);
    s->user = user;
    s->acl = user != NULL ? user_acl(user) : NULL;
    s->pub_ok = false; /* decided under the old permissions */
    s->locked = false;
}

/* A verified client certificate whose subject CN names a user logs it in.  True if it did. */
static bool access_cert_login(struct session *s)
{
    const char *cn = tls_peer_cn(s->conn->tp);
    struct user *user;

    if (cn == NULL || access_auth(s) == NULL)
        return false;
    user = auth_user_by_cert_cn(access_auth(s), cn, strlen(cn));
    if (user == NULL)
        return false;
    access_login(s, user);
    log_info(s->conn->loop->log, "client %llu (%s) is user %s (client certificate)",
             (unsigned long long)s->id, conn_peer(s->conn), user_name(user));
    return true;
}

/* access_gate's slow path: S is locked. */
bool access_gate_locked(struct session *s, bool is_hello, bool is_request, uint32_t msgid)
{
    if (is_hello || access_cert_login(s))
        return true;
    s->conn->loop->stats.auth_refused++;
    access_refuse(s, is_request, msgid, PROTO_ERR_AUTH_REQUIRED,
                  "authentication required: say hello with user and password, or token, first",
                  "authentication required");
    return false;
}

/* The authenticator's answer to S's hello, on the loop's thread. */
static void access_hello_done_cb(struct user *user, enum auth_outcome outcome, void *arg)
{
    struct session *s = arg;
    struct conn *c = s->conn;

    s->auth_req = NULL;
    conn_release(c, CONN_HOLD_SESSION);
    if (c->state != CONN_OPEN) {
        if (user != NULL)
            user_unref(user);
        return;
    }
    if (outcome != AUTH_OK) {
        c->loop->stats.auth_failed++;
        log_notice(c->loop->log, "client %llu (%s): login failed: %s", (unsigned long long)s->id,
                   conn_peer(c), auth_outcome_name(outcome));
        access_refuse(s, true, s->auth_msgid, PROTO_ERR_AUTH_FAILED,
                      outcome == AUTH_BUSY ? "authentication failed: the broker is busy, try again"
                                           : "authentication failed",
                      "authentication failed");
        return;
    }
    access_login(s, user);
    s->hello_done = true;
    c->loop->stats.auth_ok++;
    log_info(c->loop->log, "client %llu (%s) is user %s", (unsigned long long)s->id, conn_peer(c),
             user_name(user));
    access_answer_hello(s, s->auth_msgid);
}

bool access_hello(struct session *s, uint32_t msgid, const struct auth_creds *creds)
{
    struct conn *c = s->conn;
    struct auth *auth = access_auth(s);

    if (!s->locked || auth == NULL)
        return false; /* no login here: credentials are ignored */
    bool given = creds->user != NULL || creds->password != NULL || creds->token != NULL;
    if (!given && access_cert_login(s))
        return false; /* the certificate says who it is */
    s->auth_msgid = msgid;
    conn_hold(c, CONN_HOLD_SESSION);
    s->auth_req = auth_hello(auth, (const struct sockaddr *)&c->tp->peer_addr, c->tp->peer_len,
                             creds, access_hello_done_cb, s);
    return true;
}

void access_end(struct session *s)
{
    if (s->auth_req != NULL && access_auth(s) != NULL)
        auth_cancel(access_auth(s), s->auth_req);
    s->auth_req = NULL;
    if (s->user != NULL)
        user_unref(s->user);
    s->user = NULL;
    s->acl = NULL;
    s->pub_ok = false;
    acl_cache_fini(&s->acl_cache);
    responses_fini(&s->responses);
}

const char *access_user_name(const struct session *s)
{
    return s->user != NULL ? user_name(s->user) : NULL;
}

/* ------------------------------------------------------------- checks */

/* access_may_publish's slow path: S has permissions to ask. */
bool access_may_publish_checked(struct session *s, const char *topic, size_t len, uint32_t hash)
{
    if (acl_cache_may_publish_h(&s->acl_cache, s->acl, topic, len, hash)) {
        /* Kept for the next publication when the session kept TOPIC (session_topic_keep). */
        s->pub_ok = s->pub_topic_len == len;
        return true;
    }
    return user_allow_responses(s->user) &&
           responses_take(&s->responses, topic, len, (uint64_t)clock_now_ms());
}

bool access_may_reply_to(struct session *s, const char *topic, size_t len)
{
    return s->acl == NULL || acl_may_reply_to(s->acl, topic, len);
}

bool access_check_sub(struct session *s, struct sub *sub)
{
    sub->filtered = false;
    if (s->acl == NULL)
        return true;
    switch (acl_check_subscribe(s->acl, sub->pattern, strlen(sub->pattern))) {
    case ACL_SUB_DENIED:
        return false;
    case ACL_SUB_FILTERED:
        sub->filtered = true;
        return true;
    default:
        return true;
    }
}

bool access_may_receive(struct sub *sub, const char *topic, size_t len)
{
    struct session *s = sub->sess;

    return !sub->filtered || s->acl == NULL ||
           acl_cache_may_receive(&s->acl_cache, s->acl, topic, len);
}

/* S, an allow_responses user's session, may answer REPLY_TO (LEN bytes) once. */
static void access_grant_reply(struct session *s, const char *reply_to, size_t len)
{
    if (s->responses.max == 0)
        responses_init(&s->responses, ACCESS_RESPONSES_MAX);
    responses_note(&s->responses, reply_to, len, (uint64_t)clock_now_ms());
}

void access_delivered(struct session *s, const struct router_msg *m)
{
    if (m->reply_to != NULL && s->user != NULL && user_allow_responses(s->user))
        access_grant_reply(s, m->reply_to, m->reply_to_len);
}

void access_delivered_opts(struct session *s, const uint8_t *opts, size_t olen)
{
    const char *reply_to;
    uint32_t len;

    if (s->user != NULL && user_allow_responses(s->user) &&
        encode_msg_opts_reply_to(opts, olen, &reply_to, &len))
        access_grant_reply(s, reply_to, len);
}

/* ------------------------------------------------------------- reload */

/* Checks S's subscriptions again under its new permissions; drops those no longer allowed. */
static void access_recheck_subs(struct session *s)
{
    char text[PROTO_TOPIC_MAX + 96];

    for (uint32_t i = 0; i < s->n_subs;) {
        struct sub *sub = s->subs[i];
        if (access_check_sub(s, sub)) {
            i++;
            continue;
        }
        snprintf(text, sizeof(text), "subscription %u ('%s') is no longer allowed", sub->sid,
                 sub->pattern);
        msgpack_sbuffer *buf = loop_frame_buf(s->conn->loop);
        encode_error_notification(buf, PROTO_ERR_FORBIDDEN, text);
        conn_send_frame(s->conn, buf->data, buf->size);
        session_unsubscribe(s, sub->sid); /* shifts the rest down: i stays */
    }
    session_recheck_consumers(s); /* and its consume subscriptions (streams) */
}

void access_refresh(struct session *s, struct auth *auth, bool require)
{
    struct conn *c = s->conn;

    if (c->state != CONN_OPEN)
        return;
    if (s->auth_req != NULL && auth == NULL) {
        /* Logins were turned off while this one was checked: it needs none now. */
        s->auth_req = NULL;
        s->locked = false;
        s->hello_done = true;
        conn_release(c, CONN_HOLD_SESSION);
        access_answer_hello(s, s->auth_msgid);
        return;
    }
    if (s->auth_req != NULL)
        return; /* its answer comes from the new policy */
    if (s->user != NULL && auth == NULL) {
        access_login(s, NULL); /* no policy: everything is allowed again */
        access_recheck_subs(s);
        return;
    }
    if (s->user != NULL) {
        struct user *now = auth_user_refresh(auth, s->user);
        if (now == NULL) {
            access_refuse(s, false, 0, PROTO_ERR_AUTH_FAILED,
                          "authentication failed: the user was removed or its credentials changed",
                          "user removed");
            return;
        }
        access_login(s, now);
        access_recheck_subs(s);
        return;
    }
    if (require && s->hello_done && !access_cert_login(s)) {
        access_refuse(s, false, 0, PROTO_ERR_AUTH_REQUIRED,
                      "authentication required: this listener requires a login now",
                      "authentication required");
        return;
    }
    s->locked = require && !s->hello_done;
}
