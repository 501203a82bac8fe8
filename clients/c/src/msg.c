/*
 * msg.c - accessors, copies and msgpack-c helpers for pigeon_msg (see msg.h).
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "pigeon.h"

void msg_from_wire(struct pigeon_msg *m, const struct wire_msg *w, uint64_t sid)
{
    m->sid = sid;
    m->payload = w->payload;
    m->payload_len = w->payload_len;
    m->headers = w->headers;
    m->headers_len = w->headers_len;
    m->n_headers = w->n_headers;
    m->retained = w->retained;
    m->owned = false;
    m->next = NULL;
    m->topic_len = w->topic_len; /* <= PROTO_TOPIC_MAX, checked by wire_parse_msg */
    memcpy(m->topic, w->topic, w->topic_len);
    m->topic[w->topic_len] = '\0';
    m->has_reply_to = w->reply_to != NULL;
    m->reply_to_len = m->has_reply_to ? w->reply_to_len : 0;
    if (m->has_reply_to)
        memcpy(m->reply_to, w->reply_to, w->reply_to_len);
    m->reply_to[m->reply_to_len] = '\0';
}

const char *pigeon_msg_topic(const pigeon_msg *m, size_t *len)
{
    if (len != NULL)
        *len = m->topic_len;
    return m->topic;
}

const void *pigeon_msg_data(const pigeon_msg *m, size_t *len)
{
    if (len != NULL)
        *len = m->payload_len;
    return m->payload;
}

const char *pigeon_msg_reply_to(const pigeon_msg *m)
{
    return m->has_reply_to ? m->reply_to : NULL;
}

int pigeon_msg_retained(const pigeon_msg *m)
{
    return m->retained;
}

uint64_t pigeon_msg_sid(const pigeon_msg *m)
{
    return m->sid;
}

size_t pigeon_msg_header_count(const pigeon_msg *m)
{
    return m->n_headers;
}

int pigeon_msg_header_at(const pigeon_msg *m, size_t i, const char **key, size_t *key_len,
                         const char **value, size_t *value_len)
{
    struct mpread r;
    const char *k = NULL, *v = NULL;
    uint32_t kl = 0, vl = 0;

    if (i >= m->n_headers)
        return PIGEON_EINVAL;
    mpread_init(&r, m->headers, m->headers_len);
    for (size_t j = 0; j <= i; j++) {
        if (wire_header_next(&r, &k, &kl, &v, &vl) < 0)
            return PIGEON_EINVAL; /* checked on arrival: cannot happen */
    }
    if (key != NULL)
        *key = k;
    if (key_len != NULL)
        *key_len = kl;
    if (value != NULL)
        *value = v;
    if (value_len != NULL)
        *value_len = vl;
    return PIGEON_OK;
}

const char *pigeon_msg_header(const pigeon_msg *m, const char *key, size_t *value_len)
{
    struct mpread r;
    size_t n = strlen(key);

    if (m->n_headers == 0)
        return NULL;
    mpread_init(&r, m->headers, m->headers_len);
    for (uint32_t j = 0; j < m->n_headers; j++) {
        const char *k, *v;
        uint32_t kl, vl;
        if (wire_header_next(&r, &k, &kl, &v, &vl) < 0)
            return NULL;
        if (kl == n && memcmp(k, key, n) == 0) {
            if (value_len != NULL)
                *value_len = vl;
            return v;
        }
    }
    return NULL;
}

int pigeon_msg_unpack(const pigeon_msg *m, struct msgpack_zone *zone, struct msgpack_object *out)
{
    size_t off = 0;

    if (m == NULL || zone == NULL || out == NULL)
        return PIGEON_EINVAL;
    msgpack_unpack_return rc =
        msgpack_unpack((const char *)m->payload, m->payload_len, &off, zone, out);
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        return PIGEON_ENOMEM;
    if (rc != MSGPACK_UNPACK_SUCCESS)
        return PIGEON_EINVAL;
    return PIGEON_OK;
}

int pigeon_msg_copy(const pigeon_msg *m, pigeon_msg **out)
{
    struct pigeon_msg *c = malloc(sizeof(*c) + m->payload_len + m->headers_len);

    if (c == NULL)
        return PIGEON_ENOMEM;
    *c = *m;
    uint8_t *p = (uint8_t *)(c + 1);
    memcpy(p, m->payload, m->payload_len);
    c->payload = p;
    if (m->headers_len > 0) {
        memcpy(p + m->payload_len, m->headers, m->headers_len);
        c->headers = p + m->payload_len;
    }
    c->owned = true;
    c->next = NULL;
    *out = c;
    return PIGEON_OK;
}

void pigeon_msg_free(pigeon_msg *m)
{
    if (m != NULL && m->owned)
        free(m);
}
