/*
 * request.c - request/reply through the client's inbox.
 *
 * A client has one inbox, `_INBOX.<16 random hex digits>` (with its user's
 * name before the digits when it logs in as a user: client_make_inbox),
 * and subscribes to `<inbox>.*` on its first request; each request publishes with
 * reply_to `<inbox>.<token>`, a counter, and waits in the table of
 * requests (reqs.c) with a timer of its own.  The request's `pub` is a
 * request too, so that the broker's refusal, or a delivery count of zero
 * (nobody subscribes: PIGEON_ENORESPONDERS), ends the wait at once.  The
 * first answer wins; a late or second answer finds no request and is
 * dropped.
 */
#include "client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mpread.h"
#include "wire.h"

static void client_req_timeout_cb(evutil_socket_t fd, short what, void *arg);
static void client_inbox_cb(pigeon_client *c, const pigeon_msg *m, void *arg);

/* Completes request R with ERR (REPLY NULL) and frees it. */
void client_req_finish(pigeon_client *c, struct req *r, int err, const pigeon_msg *reply)
{
    event_free(r->timer);
    pigeon_reply_cb cb = r->cb;
    void *arg = r->arg;
    free(r);
    cb(c, err, reply, arg);
}

static int client_ensure_inbox(pigeon_client *c)
{
    char pattern[sizeof(c->inbox) + 2];

    if (c->inbox_sub != NULL)
        return PIGEON_OK;
    snprintf(pattern, sizeof(pattern), "%s.*", c->inbox);
    int rc = client_add_sub(c, pattern, NULL, client_inbox_cb, NULL, &c->inbox_sub);
    if (rc == PIGEON_OK)
        c->inbox_sub->internal = true;
    return rc;
}

int pigeon_request(pigeon_client *c, const char *topic, const void *payload, size_t len,
                   const struct pigeon_pub_opts *opts, int timeout_ms, pigeon_reply_cb cb,
                   void *arg)
{
    char reply_to[sizeof(c->inbox) + 24];

    if (c == NULL || cb == NULL || timeout_ms <= 0 || (opts != NULL && opts->reply_to != NULL))
        return PIGEON_EINVAL;
    int rc = client_ensure_inbox(c);
    if (rc != PIGEON_OK)
        return rc;
    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return client_err(c, PIGEON_ENOMEM, "out of memory for a request");
    r->token = ++c->next_token;
    r->cb = cb;
    r->arg = arg;
    r->client = c;
    r->timer = evtimer_new(c->base, client_req_timeout_cb, r);
    if (r->timer == NULL || reqs_add(&c->reqs, r) < 0) {
        if (r->timer != NULL)
            event_free(r->timer);
        free(r);
        return client_err(c, PIGEON_ENOMEM, "out of memory for a request");
    }
    snprintf(reply_to, sizeof(reply_to), "%s.%" PRIu64, c->inbox, r->token);
    struct wait w = {.kind = WAIT_REQ, .u.token = r->token};
    rc = client_pub(c, topic, payload, len, opts, reply_to, &w);
    if (rc != PIGEON_OK) {
        reqs_take(&c->reqs, r->token);
        event_free(r->timer);
        free(r);
        return rc;
    }
    client_arm_timer(r->timer, timeout_ms);
    return PIGEON_OK;
}

static void client_req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct req *r = arg;
    pigeon_client *c = r->client;

    client_enter(c);
    if (reqs_take(&c->reqs, r->token) == r) {
        client_err(c, PIGEON_ETIMEDOUT, "no reply within the request's timeout");
        client_req_finish(c, r, PIGEON_ETIMEDOUT, NULL);
    }
    client_leave(c);
}

/* A message to the inbox: the answer to request <token>. */
static void client_inbox_cb(pigeon_client *c, const pigeon_msg *m, void *arg)
{
    size_t n = strlen(c->inbox), len;
    const char *topic = pigeon_msg_topic(m, &len);
    uint64_t token = 0;

    if (len <= n + 1 || memcmp(topic, c->inbox, n) != 0 || topic[n] != '.')
        return;
    for (const char *p = topic + n + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || token > UINT64_MAX / 10)
            return;
        token = token * 10 + (uint64_t)(*p - '0');
    }
    struct req *r = reqs_take(&c->reqs, token);
    if (r != NULL)
        client_req_finish(c, r, PIGEON_OK, m); /* a late or second reply is dropped */
}

void client_on_req_pub(pigeon_client *c, uint64_t token, int err, struct mpread result)
{
    uint64_t delivered;
    struct req *r;

    if (err == PIGEON_OK && wire_parse_uint(result, &delivered) < 0) {
        client_proto_error(c, "pub result is not a count");
        return;
    }
    if (err == PIGEON_OK && delivered > 0)
        return; /* someone got it: wait for the reply */
    r = reqs_take(&c->reqs, token);
    if (r == NULL)
        return;
    if (err == PIGEON_OK)
        err = client_err(c, PIGEON_ENORESPONDERS, "no subscriber for the request's topic");
    client_req_finish(c, r, err, NULL);
}
