/*
 * proto.h - constants of the Pigeon wire protocol, version 1.
 *
 * Shared by the broker and every client built from this tree.  The contract
 * itself is docs/protocol.md; this header only names its numbers so that no
 * file spells a literal error code or message kind.
 */
#ifndef PIGEON_PROTO_H
#define PIGEON_PROTO_H

#define PROTO_VERSION      1
#define PROTO_MINOR        1   /* 1.1: authentication, permissions, streams */
#define PROTO_DEFAULT_PORT 7400
#define PROTO_MAX_DEPTH    32  /* nesting limit; the frame's own array is level 1 */
#define PROTO_TOPIC_MAX    255 /* bytes in a topic or pattern */

/* Element 0 of every frame: the MessagePack-RPC message kind. */
enum proto_kind {
    PROTO_REQUEST = 0,      /* [0, msgid, method, params] */
    PROTO_RESPONSE = 1,     /* [1, msgid, error, result] */
    PROTO_NOTIFICATION = 2, /* [2, method, params] */
};

/* Error codes, as in the table of docs/protocol.md. */
enum proto_error {
    PROTO_OK = 0,
    PROTO_ERR_BAD_FRAME = 1,
    PROTO_ERR_UNKNOWN_METHOD = 2,
    PROTO_ERR_BAD_PARAMS = 3,
    PROTO_ERR_BAD_TOPIC = 4,
    PROTO_ERR_TOO_LARGE = 5,
    PROTO_ERR_AUTH_REQUIRED = 6,
    PROTO_ERR_AUTH_FAILED = 7,
    PROTO_ERR_FORBIDDEN = 8,
    PROTO_ERR_SLOW_CONSUMER = 9,
    PROTO_ERR_LIMIT = 10,
    PROTO_ERR_NO_STREAM = 11,  /* 1.1 */
    PROTO_ERR_NOT_STORED = 12, /* 1.1 */
};

/* The table's name for CODE ("bad_frame", ...), or "unknown". Static. */
const char *proto_error_name(int code);

#endif
