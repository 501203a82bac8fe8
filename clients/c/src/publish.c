/*
 * publish.c - publications: pigeon_publish and its variants, pigeon_flush,
 * pigeon_reply.
 *
 * The hot path of a publisher.  Before a frame is queued it is checked as
 * the broker will check it, so that a mistake costs an error code rather
 * than the connection (the broker closes on a malformed or oversized
 * frame): the topic against the rules (the last good topic is remembered,
 * since publishers repeat theirs), the payload as exactly one MessagePack
 * object, the frame against the broker's max_payload, and, only for a
 * payload with containers, the nesting with the broker's own scanner.
 * Then the frame is encoded straight into the socket's output, or into the
 * reconnect buffer while disconnected.
 */
#include "client.h"

#include <inttypes.h>
#include <string.h>

#include <msgpack.h>

#include "frame.h"
#include "mpread.h"
#include "utf8.h"
#include "wire.h"

/*
 * Where a new frame goes: the socket's output once CONNECTED, else the
 * reconnect buffer (also while the socket is up and hello unanswered, so
 * that it stays behind what was buffered, which waits for hello's
 * max_payload).  Sets *OUT and *WAITS, and *LIVE when it is the socket.
 * A publication is refused when the buffer is over its bound; a ping
 * (CONTROL) never is, so that a flush can always wait behind a full
 * output, and it only ever adds a few bytes.
 */
static int client_target(pigeon_client *c, bool control, struct buf **out, struct waits **waits,
                         bool *live)
{
    if (c->closing)
        return client_err(c, PIGEON_ECLOSED, "the client is closed");
    bool up = c->state == PIGEON_STATE_CONNECTED && transport_is_up(c->transport);
    if (up && buf_size(transport_out(c->transport)) >= c->opts.max_outbound) {
        transport_write_now(c->transport);
        up = transport_is_up(c->transport);
    }
    if (up) {
        if (!control && buf_size(transport_out(c->transport)) >= c->opts.max_outbound)
            return client_err(c, PIGEON_EFULL,
                              "output full (%zu bytes queued, max_outbound): let the loop run",
                              buf_size(transport_out(c->transport)));
        *out = transport_out(c->transport);
        *waits = &c->sent;
        *live = true;
        return PIGEON_OK;
    }
    if (c->state == PIGEON_STATE_CLOSED)
        return client_err(c, PIGEON_ENOTCONN, "not connected (%s)", c->errmsg);
    if (c->opts.max_pending == 0)
        return client_err(c, PIGEON_ENOTCONN, "not connected, and max_pending is 0");
    if (!control && buf_size(&c->pending) >= c->opts.max_pending)
        return client_err(c, PIGEON_EFULL, "disconnected, and the reconnect buffer is full");
    *out = &c->pending;
    *waits = &c->queued;
    *live = false;
    return PIGEON_OK;
}

/* True for a type byte that starts an array or a map. */
static bool client_is_container(uint8_t b)
{
    return (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
}

/* The payload must be exactly one well-formed MessagePack object. */
static int client_check_payload(pigeon_client *c, const void *payload, size_t len)
{
    struct mpread r;

    mpread_init(&r, payload, len);
    if (!mpread_skip(&r) || mpread_left(&r) != 0)
        return client_err(c, PIGEON_EINVAL, "payload is not exactly one MessagePack object");
    return PIGEON_OK;
}

/*
 * Checks an encoded frame as the broker will: its size against max_payload,
 * and, when the payload has containers, its nesting with the broker's own
 * scanner (a scalar, string or binary payload cannot nest).
 */
static int client_check_frame(pigeon_client *c, const uint8_t *frame, size_t n,
                              const uint8_t *payload)
{
    struct frame_scanner s;
    size_t used;

    if (c->max_payload > 0 && n > c->max_payload)
        return client_err(c, PIGEON_ERR_TOO_LARGE,
                          "frame of %zu bytes is over the broker's max_payload (%" PRIu32 ")", n,
                          c->max_payload);
    if (!client_is_container(payload[0]))
        return PIGEON_OK;
    frame_scanner_init(&s, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
    enum frame_status st = frame_scan(&s, frame, n, &used);
    if (st == FRAME_DONE && used == n)
        return PIGEON_OK;
    if (st == FRAME_ERR_TOO_DEEP)
        return client_err(c, PIGEON_EINVAL, "payload nested deeper than the protocol allows");
    return client_err(c, PIGEON_EINVAL, "payload is not exactly one MessagePack object");
}

int client_check_topic(pigeon_client *c, const char *what, const char *s, size_t len,
                       enum topic_kind kind)
{
    if (!c->opts.verify_topics)
        return PIGEON_OK;
    /* A publisher usually sends to the same topic again and again. */
    bool cacheable = kind == TOPIC_PUBLISH && len > 0 && len <= sizeof(c->last_topic);
    if (cacheable && len == c->last_topic_len && memcmp(s, c->last_topic, len) == 0)
        return PIGEON_OK;
    enum topic_error te = topic_check(s, len, kind);
    if (te == TOPIC_OK) {
        if (cacheable) {
            memcpy(c->last_topic, s, len);
            c->last_topic_len = len;
        }
        return PIGEON_OK;
    }
    return client_err(c, PIGEON_ERR_BAD_TOPIC, "bad %s '%.*s': %s", what,
                      (int)(len > 64 ? 64 : len), s, topic_strerror(te));
}

/* Fills WO from the user's options and the reply_to override. */
static int client_pub_opts(pigeon_client *c, const struct pigeon_pub_opts *po, const char *reply_to,
                           struct wire_pub_opts *wo)
{
    memset(wo, 0, sizeof(*wo));
    if (po != NULL) {
        if (po->n_headers > 0 && po->headers == NULL)
            return client_err(c, PIGEON_EINVAL, "n_headers without headers");
        for (size_t i = 0; i < po->n_headers; i++) {
            const struct pigeon_header *h = &po->headers[i];
            if (h->key == NULL || h->value == NULL)
                return client_err(c, PIGEON_EINVAL, "header %zu has a NULL key or value", i);
            /* The broker refuses them too: every subscriber decodes them. */
            if (!utf8_valid(h->key, strlen(h->key)) || !utf8_valid(h->value, strlen(h->value)))
                return client_err(c, PIGEON_ERR_BAD_PARAMS, "header %zu is not valid UTF-8", i);
        }
        wo->headers = po->headers;
        wo->n_headers = po->n_headers;
        wo->retain = po->retain != 0;
        wo->reply_to = po->reply_to;
    }
    if (reply_to != NULL)
        wo->reply_to = reply_to;
    if (wo->reply_to != NULL) {
        wo->reply_to_len = strlen(wo->reply_to);
        return client_check_topic(c, "reply_to", wo->reply_to, wo->reply_to_len, TOPIC_PUBLISH);
    }
    return PIGEON_OK;
}

/*
 * Encodes and queues a publication: a notification when W is NULL, else a
 * request whose response W describes (its msgid is filled in here).
 */
int client_pub(pigeon_client *c, const char *topic, const void *payload, size_t len,
               const struct pigeon_pub_opts *po, const char *reply_to, struct wait *w)
{
    struct wire_pub_opts wo;
    struct buf *out;
    struct waits *waits;
    bool live;

    if (topic == NULL || payload == NULL || len == 0)
        return client_err(c, PIGEON_EINVAL, "NULL topic or empty payload");
    size_t tlen = strlen(topic);
    int rc = client_check_topic(c, "topic", topic, tlen, TOPIC_PUBLISH);
    if (rc == PIGEON_OK)
        rc = client_check_payload(c, payload, len);
    if (rc == PIGEON_OK)
        rc = client_pub_opts(c, po, reply_to, &wo);
    if (rc == PIGEON_OK)
        rc = client_target(c, false, &out, &waits, &live);
    if (rc != PIGEON_OK)
        return rc;

    size_t mark = buf_size(out);
    uint32_t msgid = w != NULL ? c->next_msgid++ : 0;
    size_t n = wire_pub(out, w != NULL, msgid, topic, tlen, payload, len, &wo);
    if (n == 0)
        return client_err(c, PIGEON_ENOMEM, "out of memory queueing a publication");
    rc = client_check_frame(c, out->data + out->len - n, n, payload);
    if (rc == PIGEON_OK && !live && buf_size(out) > c->opts.max_pending)
        rc = client_err(c, PIGEON_EFULL, "disconnected, and the reconnect buffer is full");
    if (rc == PIGEON_OK && w != NULL) {
        w->msgid = msgid;
        if (waits_push(waits, w) < 0)
            rc = client_err(c, PIGEON_ENOMEM, "out of memory queueing a publication");
    }
    if (rc != PIGEON_OK) {
        buf_truncate(out, mark);
        return rc;
    }
    if (live)
        transport_kick(c->transport);
    return PIGEON_OK;
}

int pigeon_publish(pigeon_client *c, const char *topic, const void *payload, size_t len,
                   const struct pigeon_pub_opts *opts)
{
    if (c == NULL)
        return PIGEON_EINVAL;
    return client_pub(c, topic, payload, len, opts, NULL, NULL);
}

int pigeon_publish_confirm(pigeon_client *c, const char *topic, const void *payload, size_t len,
                           const struct pigeon_pub_opts *opts, pigeon_done_cb done, void *arg)
{
    if (c == NULL || done == NULL)
        return PIGEON_EINVAL;
    struct wait w = {.kind = WAIT_DONE, .u.done = {done, arg}};
    return client_pub(c, topic, payload, len, opts, NULL, &w);
}

/* msgpack_packer's writer into the scratch buffer. */
static int client_scratch_write(void *data, const char *p, size_t n)
{
    return buf_append(data, p, n);
}

int pigeon_publish_obj(pigeon_client *c, const char *topic, const struct msgpack_object *obj,
                       const struct pigeon_pub_opts *opts)
{
    msgpack_packer pk;

    if (c == NULL || obj == NULL)
        return PIGEON_EINVAL;
    buf_clear(&c->scratch);
    msgpack_packer_init(&pk, &c->scratch, client_scratch_write);
    if (msgpack_pack_object(&pk, *obj) < 0)
        return client_err(c, PIGEON_ENOMEM, "out of memory packing the payload");
    int rc = client_pub(c, topic, c->scratch.data + c->scratch.off, buf_size(&c->scratch), opts,
                        NULL, NULL);
    buf_clear(&c->scratch);
    return rc;
}

int pigeon_flush(pigeon_client *c, pigeon_done_cb done, void *arg)
{
    struct buf *out;
    struct waits *waits;
    bool live;

    if (c == NULL || done == NULL)
        return PIGEON_EINVAL;
    int rc = client_target(c, true, &out, &waits, &live);
    if (rc != PIGEON_OK)
        return rc;
    size_t mark = buf_size(out);
    struct wait w = {.msgid = c->next_msgid++, .kind = WAIT_DONE, .u.done = {done, arg}};
    if (wire_ping(out, w.msgid) == 0 || waits_push(waits, &w) < 0) {
        buf_truncate(out, mark);
        return client_err(c, PIGEON_ENOMEM, "out of memory queueing a ping");
    }
    if (live)
        transport_kick(c->transport);
    return PIGEON_OK;
}

int pigeon_reply(pigeon_client *c, const pigeon_msg *request, const void *payload, size_t len)
{
    if (c == NULL || request == NULL)
        return PIGEON_EINVAL;
    const char *to = pigeon_msg_reply_to(request);
    if (to == NULL)
        return client_err(c, PIGEON_ENOREPLY, "the message has no reply_to");
    return client_pub(c, to, payload, len, NULL, NULL, NULL);
}
