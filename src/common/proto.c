/*
 * proto.c - names of the protocol's error codes (see proto.h).
 */
#include "proto.h"

const char *proto_error_name(int code)
{
    static const char *const names[] = {
        [PROTO_OK] = "ok",
        [PROTO_ERR_BAD_FRAME] = "bad_frame",
        [PROTO_ERR_UNKNOWN_METHOD] = "unknown_method",
        [PROTO_ERR_BAD_PARAMS] = "bad_params",
        [PROTO_ERR_BAD_TOPIC] = "bad_topic",
        [PROTO_ERR_TOO_LARGE] = "too_large",
        [PROTO_ERR_AUTH_REQUIRED] = "auth_required",
        [PROTO_ERR_AUTH_FAILED] = "auth_failed",
        [PROTO_ERR_FORBIDDEN] = "forbidden",
        [PROTO_ERR_SLOW_CONSUMER] = "slow_consumer",
        [PROTO_ERR_LIMIT] = "limit",
        [PROTO_ERR_NO_STREAM] = "no_stream",
        [PROTO_ERR_NOT_STORED] = "not_stored",
    };
    if (code < 0 || code >= (int)(sizeof(names) / sizeof(names[0])))
        return "unknown";
    return names[code];
}
