/*
 * encode.h - the frames the broker sends, encoded with msgpack-c's packer.
 *
 * Responses ([1, msgid, error, result]), error notifications ([2, "error",
 * [code, message]]), the hello result, the opts map of a `msg`, and the
 * header of every `msg` a subscription receives: no other file writes
 * MessagePack bytes by hand.  Frames are appended to a msgpack_sbuffer the
 * caller owns (the loop's frame buffer, see loop_frame_buf) and queued from
 * there in one copy.
 *
 * The payload of a message is never encoded here: it travels as the bytes
 * the publisher sent (see router.c).  The one thing read back here is the
 * reply_to of a `msg` opts map (encode_msg_opts_reply_to), for the places
 * that hold only the packed map: the backplane and stored messages.
 */
#ifndef PIGEON_ENCODE_H
#define PIGEON_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include <msgpack.h>

/* 93 02 a3 "msg" 93|94 <sid>: at most 7 + 5 bytes. */
#define ENCODE_MSG_PREFIX_MAX 12
/* Offset in the prefix of the params array header: 0x93, or 0x94 with opts. */
#define ENCODE_MSG_PARAMS_AT 6

/* The `msg` prefix for subscription SID, with a 3-element params array. */
size_t encode_msg_prefix(uint8_t out[ENCODE_MSG_PREFIX_MAX], uint32_t sid);

/*
 * Writes a `msg` header to DST: PREFIX (PLEN bytes, from encode_msg_prefix),
 * its params array made 4 long when the message carries an opts map.
 */
static inline void encode_msg_header(uint8_t *dst, const uint8_t *prefix, size_t plen,
                                     bool with_opts)
{
    memcpy(dst, prefix, plen);
    if (with_opts)
        dst[ENCODE_MSG_PARAMS_AT] = 0x94; /* fixarray of 4 */
}

/*
 * Starts [1, msgid, nil, ... in OUT with PK (initialized here): the caller
 * packs the result, one object.
 */
void encode_result_begin(msgpack_packer *pk, msgpack_sbuffer *out, uint32_t msgid);

/* [1, msgid, nil, v] */
void encode_result_uint(msgpack_sbuffer *out, uint32_t msgid, uint64_t v);
/* [1, msgid, nil, true] */
void encode_result_true(msgpack_sbuffer *out, uint32_t msgid);
/* [1, msgid, nil, s] (S is a NUL-terminated string) */
void encode_result_str(msgpack_sbuffer *out, uint32_t msgid, const char *s);

/* [1, msgid, nil, false] */
void encode_result_false(msgpack_sbuffer *out, uint32_t msgid);

/* [1, msgid, nil, {delivered, stream, seq}], with duplicate: true when DUPLICATE (1.1). */
void encode_result_stored(msgpack_sbuffer *out, uint32_t msgid, uint64_t delivered,
                          const char *stream, uint64_t seq, bool duplicate);

/* The hello result map. */
struct encode_hello {
    const char *server;
    const char *version;
    uint64_t client_id;
    uint64_t max_payload;
    const char *user; /* who the client logged in as, or NULL: the key is left out */
};
void encode_result_hello(msgpack_sbuffer *out, uint32_t msgid, const struct encode_hello *h);

/* [1, msgid, [code, message], nil] */
void encode_response_error(msgpack_sbuffer *out, uint32_t msgid, int code, const char *message);

/* [2, "error", [code, message]] */
void encode_error_notification(msgpack_sbuffer *out, int code, const char *message);

/*
 * The opts map of a delivered `msg`: reply_to (when REPLY_TO is not NULL),
 * headers (when HEADERS is not NULL: a map object, packed as it was
 * decoded), and retained: true (when RETAINED).  Appends to BUF and returns
 * the bytes added (0 when there is nothing to say: no map at all).
 */
size_t encode_msg_opts(msgpack_sbuffer *buf, const char *reply_to, size_t reply_to_len,
                       const msgpack_object *headers, bool retained);

/*
 * The reply_to of a `msg` opts map (OPTS, LEN bytes), as encode_msg_opts
 * packs it, with or without keys added (a stream delivery's): *S
 * (borrowed, not NUL-terminated) and *SLEN.  False when it has none, or
 * OPTS is not a map.
 */
bool encode_msg_opts_reply_to(const uint8_t *opts, size_t len, const char **s, uint32_t *slen);

#endif
