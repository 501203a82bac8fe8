/*
 * error.c - pigeon_strerror: one phrase per error code, library and broker.
 *
 * The broker's codes keep their protocol names (from proto.c) in
 * parentheses, so a log line can be matched against docs/protocol.md.
 */
#include "pigeon.h"

#include "proto.h"

/* The broker's codes are the protocol's, unchanged. */
_Static_assert((int)PIGEON_ERR_BAD_FRAME == (int)PROTO_ERR_BAD_FRAME &&
                   (int)PIGEON_ERR_BAD_TOPIC == (int)PROTO_ERR_BAD_TOPIC &&
                   (int)PIGEON_ERR_TOO_LARGE == (int)PROTO_ERR_TOO_LARGE &&
                   (int)PIGEON_ERR_LIMIT == (int)PROTO_ERR_LIMIT,
               "pigeon.h and proto.h disagree on error codes");

static const char *broker_phrase(int err)
{
    switch (err) {
    case PIGEON_ERR_BAD_FRAME:
        return "malformed frame (bad_frame)";
    case PIGEON_ERR_UNKNOWN_METHOD:
        return "unknown method (unknown_method)";
    case PIGEON_ERR_BAD_PARAMS:
        return "bad parameters (bad_params)";
    case PIGEON_ERR_BAD_TOPIC:
        return "bad topic or pattern (bad_topic)";
    case PIGEON_ERR_TOO_LARGE:
        return "frame larger than the broker's max_payload (too_large)";
    case PIGEON_ERR_AUTH_REQUIRED:
        return "authentication required (auth_required)";
    case PIGEON_ERR_AUTH_FAILED:
        return "authentication failed (auth_failed)";
    case PIGEON_ERR_FORBIDDEN:
        return "not allowed (forbidden)";
    case PIGEON_ERR_SLOW_CONSUMER:
        return "slow consumer (slow_consumer)";
    case PIGEON_ERR_LIMIT:
        return "broker limit reached (limit)";
    default:
        return "broker error (unknown code)";
    }
}

const char *pigeon_strerror(int err)
{
    if (err > 0)
        return broker_phrase(err);
    switch (err) {
    case PIGEON_OK:
        return "success";
    case PIGEON_ENOMEM:
        return "out of memory";
    case PIGEON_EINVAL:
        return "invalid argument";
    case PIGEON_EADDRESS:
        return "bad address";
    case PIGEON_ECONNECT:
        return "cannot connect to the broker";
    case PIGEON_ECONNLOST:
        return "connection to the broker lost";
    case PIGEON_ENOTCONN:
        return "not connected";
    case PIGEON_EFULL:
        return "buffer full";
    case PIGEON_ETIMEDOUT:
        return "timed out";
    case PIGEON_ECLOSED:
        return "client closed";
    case PIGEON_EPROTO:
        return "protocol error from the broker";
    case PIGEON_ENOREPLY:
        return "message has no reply_to";
    case PIGEON_ENORESPONDERS:
        return "no responders for the request";
    case PIGEON_ESYS:
        return "system error";
    case PIGEON_ETLS:
        return "TLS failed";
    default:
        return "unknown error";
    }
}
