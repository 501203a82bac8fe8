/*
 * dispatch.h - the broker's side of the protocol: one complete frame in,
 * the method it names carried out, its response queued.
 *
 * The envelope and the params are read with the mpread cursor; the maps the
 * broker must understand (hello params, pub and sub opts) are decoded by
 * msgpack-c from bytes the frame scanner has already bounded.  A payload is
 * only ever skipped over.
 */
#ifndef PIGEON_DISPATCH_H
#define PIGEON_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

struct block;
struct session;

/*
 * Handles FRAME[0..LEN), one complete frame checked by the frame scanner,
 * from the client of session S (its connection open).  FRAME is borrowed
 * for the call; when BLK is not NULL, FRAME lies in that block and may be
 * shared by reference.
 */
void dispatch_frame(struct session *s, const uint8_t *frame, size_t len, struct block *blk);

#endif
