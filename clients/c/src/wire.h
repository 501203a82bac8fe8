/*
 * wire.h - the frames a client sends and reads, in the protocol's shapes.
 *
 * Encoding writes straight into the output buffer: the frame's size is
 * bounded first, the space reserved once, then plain stores.  The pub path
 * does no allocation and calls no msgpack-c function, because a publisher
 * may send millions of these a second.  The payload is copied in as given:
 * it is the caller's encoded MessagePack object, never re-encoded.
 *
 * Decoding reads a frame the frame scanner has bounded, with the shared
 * envelope parser and mpread cursor: nothing is built, every string and
 * span points into the frame (borrowed for as long as the frame is).
 */
#ifndef PIGEON_WIRE_H
#define PIGEON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mpread.h"

struct pigeon_header;

/* What a pub frame carries besides topic and payload. */
struct wire_pub_opts {
    const char *reply_to; /* NULL for none */
    size_t reply_to_len;
    const struct pigeon_header *headers; /* NUL-terminated key/value pairs */
    size_t n_headers;
    bool retain;
};

/*
 * Appends a pub frame to OUT: a notification, or a request with MSGID when
 * IS_REQUEST.  Returns the frame's length, or 0 when out of memory (OUT is
 * then unchanged).
 */
size_t wire_pub(struct buf *out, bool is_request, uint32_t msgid, const char *topic, size_t tlen,
                const void *payload, size_t plen, const struct wire_pub_opts *opts);

/* Appends [0, msgid, "sub", [pattern]] or with {queue}. Length, or 0 (no memory). */
size_t wire_sub(struct buf *out, uint32_t msgid, const char *pattern, size_t plen,
                const char *queue, size_t qlen);

/* Appends [0, msgid, "unsub", [sid]]. Length, or 0 (no memory). */
size_t wire_unsub(struct buf *out, uint32_t msgid, uint64_t sid);

/* Appends [0, msgid, "ping", []]. Length, or 0 (no memory). */
size_t wire_ping(struct buf *out, uint32_t msgid);

/* The strings of a hello; NULL ones are left out. */
struct wire_hello {
    const char *client;
    const char *token;
    const char *user;
    const char *password;
};

/* Appends [0, msgid, "hello", [{...}]]. Length, or 0 (no memory). */
size_t wire_hello(struct buf *out, uint32_t msgid, const struct wire_hello *h);

/* A `msg` notification's params, every pointer into the frame. */
struct wire_msg {
    uint64_t sid;
    const char *topic;
    uint32_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const char *reply_to; /* NULL when absent */
    uint32_t reply_to_len;
    const uint8_t *headers; /* the first key of the headers map, or NULL */
    size_t headers_len;     /* bytes of its pairs */
    uint32_t n_headers;
    bool retained;
};

/*
 * Reads `msg` params (the cursor just past the params array header, N
 * elements) into M.  Returns 0, or -1 with *WHY set when they are not
 * [sid, topic, payload] or [sid, topic, payload, opts].  Unknown opts keys
 * are skipped, for brokers newer than this library.
 */
int wire_parse_msg(struct mpread r, uint32_t n, struct wire_msg *m, const char **why);

/*
 * Reads `msg` params [sid, topic, payload] from R, which starts just past
 * the params array header and may end anywhere (input still arriving):
 * the payload is found by skipping it.  Returns 0 with R just past the
 * payload, or -1 when the bytes are not there (yet) or not of that shape.
 */
int wire_parse_msg3_stream(struct mpread *r, struct wire_msg *m);

/*
 * Reads an error object: nil gives 0; [code, message] gives the code (> 0)
 * and sets *MSG and *MSG_LEN (borrowed).  Returns -1 when it is neither.
 */
int wire_parse_error(struct mpread r, const char **msg, uint32_t *msg_len);

/* Reads `error` notification params [code, message]; as wire_parse_error. */
int wire_parse_error_params(struct mpread r, uint32_t n, const char **msg, uint32_t *msg_len);

/* What a hello result says; the user's name is borrowed from the frame. */
struct wire_hello_result {
    uint64_t max_payload; /* 0 when absent */
    uint64_t client_id;   /* 0 when absent */
    const char *user;     /* who the broker logged us in as (not NUL-terminated), or NULL */
    uint32_t user_len;
};

/* Reads a hello result map into *OUT. 0 or -1. */
int wire_parse_hello(struct mpread r, struct wire_hello_result *out);

/* Reads an unsigned integer result (a sid, a delivery count). 0 or -1. */
int wire_parse_uint(struct mpread r, uint64_t *v);

/* Passes over one key/value pair of a headers map: the strings, borrowed. 0 or -1. */
int wire_header_next(struct mpread *r, const char **key, uint32_t *klen, const char **val,
                     uint32_t *vlen);

#endif
