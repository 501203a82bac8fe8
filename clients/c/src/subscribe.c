/*
 * subscribe.c - subscriptions: pigeon_subscribe, pigeon_unsubscribe, and
 * the broker's answers to `sub`.
 *
 * A subscription lives in the client's table (subs.c) from pigeon_subscribe
 * to pigeon_unsubscribe, across connections: every new socket gets a `sub`
 * for each (client.c), and the answer binds it to the broker's sid for that
 * socket.  Its on_done is told of the first answer only.
 */
#include "client.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mpread.h"
#include "wire.h"

/* Encodes a `sub` for S on the current socket. */
int client_send_sub(pigeon_client *c, struct sub *s)
{
    struct buf *out = transport_out(c->transport);
    size_t mark = buf_size(out);
    struct wait w = {.msgid = c->next_msgid++, .kind = WAIT_SUB, .u.sub = s};

    if (wire_sub(out, w.msgid, s->pattern, strlen(s->pattern), s->queue,
                 s->queue ? strlen(s->queue) : 0) == 0 ||
        waits_push(&c->sent, &w) < 0) {
        buf_truncate(out, mark);
        return PIGEON_ENOMEM;
    }
    s->awaiting = true;
    transport_kick(c->transport);
    return PIGEON_OK;
}

/* Tells a subscription's on_done, once. */
void client_sub_done(pigeon_client *c, struct sub *s, int err, uint64_t result)
{
    pigeon_done_cb cb = s->on_done;
    if (cb != NULL) {
        s->on_done = NULL;
        cb(c, err, result, s->done_arg);
    }
}

int client_add_sub(pigeon_client *c, const char *pattern, const char *queue, pigeon_msg_cb cb,
                   void *arg, struct sub **out)
{
    if (c->closing)
        return client_err(c, PIGEON_ECLOSED, "the client is closed");
    if (c->state == PIGEON_STATE_CLOSED)
        return client_err(c, PIGEON_ENOTCONN, "not connected (%s)", c->errmsg);
    int rc = client_check_topic(c, "pattern", pattern, strlen(pattern), TOPIC_PATTERN);
    if (rc != PIGEON_OK)
        return rc;
    if (queue != NULL && c->opts.verify_topics &&
        topic_check(queue, strlen(queue), TOPIC_PUBLISH) != TOPIC_OK)
        return client_err(c, PIGEON_ERR_BAD_PARAMS,
                          "bad queue group '%.64s': it follows the rules of a topic", queue);
    struct sub *s = subs_add(&c->subs, pattern, queue, cb, arg);
    if (s == NULL)
        return client_err(c, PIGEON_ENOMEM, "out of memory adding a subscription");
    if (transport_is_up(c->transport) && client_send_sub(c, s) != PIGEON_OK) {
        subs_remove(&c->subs, s);
        subs_free_one(s);
        return client_err(c, PIGEON_ENOMEM, "out of memory sending a subscription");
    }
    *out = s;
    return PIGEON_OK;
}

int pigeon_subscribe(pigeon_client *c, const char *pattern, const struct pigeon_sub_opts *opts,
                     pigeon_msg_cb cb, void *arg, uint64_t *id)
{
    struct sub *s;

    if (c == NULL || pattern == NULL || cb == NULL)
        return PIGEON_EINVAL;
    int rc = client_add_sub(c, pattern, opts ? opts->queue : NULL, cb, arg, &s);
    if (rc != PIGEON_OK)
        return rc;
    if (opts != NULL) {
        s->on_done = opts->on_done;
        s->done_arg = opts->done_arg;
    }
    if (id != NULL)
        *id = s->id;
    return PIGEON_OK;
}

/* Takes S out; frees it now or, when a `sub` is in flight, when it is answered. */
static void client_drop_sub(pigeon_client *c, struct sub *s)
{
    uint64_t sid = s->sid;

    subs_remove(&c->subs, s);
    if (sid != 0 && transport_is_up(c->transport))
        client_send_plain(c, WAIT_UNSUB, sid); /* without memory, the broker keeps it */
    if (s->awaiting) {
        s->dead = true;
    } else {
        subs_free_one(s);
    }
}

int pigeon_unsubscribe(pigeon_client *c, uint64_t id)
{
    if (c == NULL)
        return PIGEON_EINVAL;
    struct sub *s = subs_find(&c->subs, id);
    if (s == NULL || s->internal)
        return client_err(c, PIGEON_EINVAL, "no subscription %" PRIu64, id);
    client_drop_sub(c, s);
    return PIGEON_OK;
}

void client_on_sub(pigeon_client *c, struct sub *s, int err, struct mpread result)
{
    uint64_t sid = 0;

    s->awaiting = false;
    if (err == PIGEON_OK && (wire_parse_uint(result, &sid) < 0 || sid == 0)) {
        client_proto_error(c, "sub result is not a sid");
        return;
    }
    if (s->dead) { /* unsubscribed meanwhile: on_done is not told */
        if (err == PIGEON_OK && transport_is_up(c->transport))
            client_send_plain(c, WAIT_UNSUB, sid);
        subs_free_one(s);
        return;
    }
    if (err != PIGEON_OK) {
        char msg[CLIENT_ERRMSG_MAX];
        snprintf(msg, sizeof(msg), "subscription to '%.64s' refused: %.150s", s->pattern,
                 c->errmsg);
        subs_remove(&c->subs, s);
        if (c->inbox_sub == s)
            c->inbox_sub = NULL;
        if (s->on_done != NULL)
            client_sub_done(c, s, err, s->id);
        else if (c->opts.on_error != NULL)
            c->opts.on_error(c, err, msg, c->opts.error_arg);
        subs_free_one(s);
        return;
    }
    if (subs_bind(&c->subs, s, sid) < 0) {
        client_lost(c, PIGEON_ENOMEM, "out of memory recording a subscription");
        return;
    }
    client_sub_done(c, s, PIGEON_OK, s->id);
}
