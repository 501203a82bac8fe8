/*
 * encode.c - frames the broker sends (see encode.h).
 *
 * Everything is packed by msgpack-c into the caller's sbuffer (which grows
 * as needed: reused, it stops allocating once it has grown).  The `msg`
 * prefix is packed into a stack buffer, once per subscription.
 */
#include "encode.h"

#include <string.h>

#include "mpread.h"
#include "proto.h"

/* Bigger than any frame packed here: the longest is an error with a message
 * truncated to ENCODE_MESSAGE_MAX bytes. */
#define ENCODE_STACK_MAX   512
#define ENCODE_MESSAGE_MAX 400

struct stackbuf {
    char data[ENCODE_STACK_MAX];
    size_t len;
};

/* msgpack_packer_write: appends to a stackbuf, refusing to overflow. */
static int stackbuf_write(void *arg, const char *buf, size_t len)
{
    struct stackbuf *sb = arg;
    if (len > sizeof(sb->data) - sb->len)
        return -1;
    memcpy(sb->data + sb->len, buf, len);
    sb->len += len;
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    pack_str(pk, s, len > ENCODE_MESSAGE_MAX ? ENCODE_MESSAGE_MAX : len);
}

/* Starts [1, msgid, ... into OUT. */
static void begin_response(msgpack_packer *pk, msgpack_sbuffer *out, uint32_t msgid)
{
    msgpack_packer_init(pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, PROTO_RESPONSE);
    msgpack_pack_uint32(pk, msgid);
}

size_t encode_msg_prefix(uint8_t out[ENCODE_MSG_PREFIX_MAX], uint32_t sid)
{
    struct stackbuf sb = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, stackbuf_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, PROTO_NOTIFICATION);
    pack_str(&pk, "msg", 3);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, sid);
    memcpy(out, sb.data, sb.len);
    return sb.len;
}

void encode_result_begin(msgpack_packer *pk, msgpack_sbuffer *out, uint32_t msgid)
{
    begin_response(pk, out, msgid);
    msgpack_pack_nil(pk);
}

void encode_result_uint(msgpack_sbuffer *out, uint32_t msgid, uint64_t v)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint64(&pk, v);
}

void encode_result_true(msgpack_sbuffer *out, uint32_t msgid)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
}

void encode_result_false(msgpack_sbuffer *out, uint32_t msgid)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_false(&pk);
}

void encode_result_stored(msgpack_sbuffer *out, uint32_t msgid, uint64_t delivered,
                          const char *stream, uint64_t seq, bool duplicate)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, duplicate ? 4 : 3);
    pack_cstr(&pk, "delivered");
    msgpack_pack_uint64(&pk, delivered);
    pack_cstr(&pk, "stream");
    pack_cstr(&pk, stream);
    pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    if (duplicate) {
        pack_cstr(&pk, "duplicate");
        msgpack_pack_true(&pk);
    }
}

void encode_result_str(msgpack_sbuffer *out, uint32_t msgid, const char *s)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    pack_cstr(&pk, s);
}

void encode_result_hello(msgpack_sbuffer *out, uint32_t msgid, const struct encode_hello *h)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, h->user ? 7 : 6);
    pack_cstr(&pk, "server");
    pack_cstr(&pk, h->server);
    pack_cstr(&pk, "version");
    pack_cstr(&pk, h->version);
    pack_cstr(&pk, "proto");
    msgpack_pack_uint8(&pk, PROTO_VERSION);
    pack_cstr(&pk, "minor");
    msgpack_pack_uint8(&pk, PROTO_MINOR);
    pack_cstr(&pk, "client_id");
    msgpack_pack_uint64(&pk, h->client_id);
    pack_cstr(&pk, "max_payload");
    msgpack_pack_uint64(&pk, h->max_payload);
    if (h->user) {
        pack_cstr(&pk, "user");
        pack_cstr(&pk, h->user);
    }
}

static void pack_error_pair(msgpack_packer *pk, int code, const char *message)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, code);
    pack_cstr(pk, message);
}

void encode_response_error(msgpack_sbuffer *out, uint32_t msgid, int code, const char *message)
{
    msgpack_packer pk;
    begin_response(&pk, out, msgid);
    pack_error_pair(&pk, code, message);
    msgpack_pack_nil(&pk);
}

void encode_error_notification(msgpack_sbuffer *out, int code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, PROTO_NOTIFICATION);
    pack_str(&pk, "error", 5);
    pack_error_pair(&pk, code, message);
}

size_t encode_msg_opts(msgpack_sbuffer *buf, const char *reply_to, size_t reply_to_len,
                       const msgpack_object *headers, bool retained)
{
    size_t before = buf->size;
    unsigned n = (reply_to != NULL) + (headers != NULL) + retained;
    msgpack_packer pk;

    if (n == 0)
        return 0;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    if (reply_to != NULL) {
        pack_str(&pk, "reply_to", 8);
        pack_str(&pk, reply_to, reply_to_len);
    }
    if (headers != NULL) {
        pack_str(&pk, "headers", 7);
        msgpack_pack_object(&pk, *headers);
    }
    if (retained) {
        pack_str(&pk, "retained", 8);
        msgpack_pack_true(&pk);
    }
    return buf->size - before;
}

bool encode_msg_opts_reply_to(const uint8_t *opts, size_t len, const char **s, uint32_t *slen)
{
    struct mpread r;
    uint32_t pairs;

    mpread_init(&r, opts, len);
    if (!mpread_map(&r, &pairs))
        return false;
    for (uint32_t i = 0; i < pairs; i++) {
        const char *k;
        uint32_t klen;
        if (!mpread_str(&r, &k, &klen))
            return false;
        if (klen == 8 && memcmp(k, "reply_to", 8) == 0)
            return mpread_str(&r, s, slen);
        if (!mpread_skip(&r))
            return false;
    }
    return false;
}
