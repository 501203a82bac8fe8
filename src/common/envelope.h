/*
 * envelope.h - the MessagePack-RPC shape of a Pigeon frame.
 *
 * Every frame is [0, msgid, method, params] (request), [1, msgid, error,
 * result] (response) or [2, method, params] (notification).  envelope_parse
 * checks that shape on a frame the scanner has already bounded, and records
 * where each part lies without copying or decoding it: the params, error and
 * result stay bytes inside the frame for the caller to read as it needs.
 */
#ifndef PIGEON_ENVELOPE_H
#define PIGEON_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "mpread.h"

struct envelope {
    int kind;           /* enum proto_kind */
    uint32_t msgid;     /* requests and responses */
    const char *method; /* requests and notifications; borrowed, not NUL-terminated */
    uint32_t method_len;
    struct mpread params; /* requests and notifications: the params' elements */
    uint32_t n_params;
    struct mpread error;  /* responses: the error object (nil on success) */
    struct mpread result; /* responses: the result object */
};

/*
 * Parses the frame FRAME[0..LEN) into ENV, whose cursors borrow FRAME.
 * Returns 0, or -1 with *WHY set to a static phrase when the frame is not of
 * one of the three shapes (the protocol's bad_frame).
 */
int envelope_parse(const uint8_t *frame, size_t len, struct envelope *env, const char **why);

#endif
