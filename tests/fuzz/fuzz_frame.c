/*
 * fuzz_frame.c - libFuzzer target for the frame scanner and the envelope.
 *
 * The input is a byte stream cut into slices whose sizes come from the
 * input's first byte, the way a socket would deliver it.  For every frame
 * the scanner calls complete, msgpack-c must agree on where it ends (the
 * oracle), the envelope parser must accept or refuse it without reading
 * out of bounds, and skipping its params must stay inside it.  Refused
 * streams stop, as the broker stops reading them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "envelope.h"
#include "frame.h"

#define FUZZ_MAX_FRAME (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *frame, size_t len)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;

    msgpack_zone_init(&zone, 1024);
    msgpack_unpack_return rc = msgpack_unpack((const char *)frame, len, &off, &zone, &obj);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len)
        abort(); /* the scanner and msgpack-c disagree */
    msgpack_zone_destroy(&zone);

    struct envelope env;
    const char *why;
    if (envelope_parse(frame, len, &env, &why) == 0 && env.kind != 1) {
        for (uint32_t i = 0; i < env.n_params; i++)
            if (!mpread_skip(&env.params))
                abort(); /* a checked frame holds every param it declares */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 17;
    data++;
    size--;

    /* Contiguous copy of the current frame, as the broker would pull it up. */
    uint8_t *frame = malloc(FUZZ_MAX_FRAME);
    size_t have = 0, off = 0;
    struct frame_scanner s;
    frame_scanner_init(&s, FUZZ_MAX_FRAME);
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used;
        enum frame_status st = frame_scan(&s, data + off, n, &used);
        if (st < 0 || used > n)
            break;
        if (have + used > FUZZ_MAX_FRAME)
            abort(); /* the scanner let a frame pass its limit */
        memcpy(frame + have, data + off, used);
        have += used;
        off += used;
        if (st == FRAME_DONE) {
            if (have != s.len)
                abort();
            check_frame(frame, have);
            have = 0;
            frame_scanner_reset(&s);
        }
    }
    free(frame);
    return 0;
}
