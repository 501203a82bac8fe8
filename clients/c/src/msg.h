/*
 * msg.h - struct pigeon_msg, the message a subscriber gets.
 *
 * A borrowed message (the one a callback sees) lives on the dispatcher's
 * stack: payload and headers point into the received frame, topic and
 * reply_to are copied into the struct so that they can be NUL-terminated
 * (at most 255 bytes each, so the copy is cheap).  A copy
 * (pigeon_msg_copy) is one allocation holding the struct and every byte.
 */
#ifndef PIGEON_MSG_H
#define PIGEON_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "wire.h"

struct pigeon_msg {
    uint64_t sid;           /* the subscription's local id */
    const uint8_t *payload; /* borrowed from the frame, or inside this allocation */
    size_t payload_len;
    const uint8_t *headers; /* the headers map's pairs, or NULL */
    size_t headers_len;
    uint32_t n_headers;
    uint32_t topic_len;
    uint32_t reply_to_len;
    bool has_reply_to;
    bool retained;
    bool owned;              /* allocated by pigeon_msg_copy */
    struct pigeon_msg *next; /* the blocking API's queue */
    char topic[PROTO_TOPIC_MAX + 1];
    char reply_to[PROTO_TOPIC_MAX + 1];
};

/* Fills M (borrowed pointers into W's frame) for delivery through subscription SID. */
void msg_from_wire(struct pigeon_msg *m, const struct wire_msg *w, uint64_t sid);

#endif
