/*
 * errreply.h - the error reply: how `pigeon reply` tells a requester that
 * it could not answer, and how `pigeon req` recognises one.
 *
 * On the wire it is an ordinary payload, so that any client can send and
 * recognise it without help from the broker: a MessagePack map with exactly
 * one key, the string "error", whose value says what went wrong (`pigeon
 * reply` sends a string; any value is recognised):
 *
 *   {"error": "command 'sh' exited with status 3"}
 *
 * A map with other keys besides "error" is an ordinary answer.  docs/cli.md
 * (pigeon reply) documents this for the writers of other requesters.
 */
#ifndef PIGEON_CLI_ERRREPLY_H
#define PIGEON_CLI_ERRREPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#define ERRREPLY_KEY "error"

/* Appends the error reply {"error": TEXT[0..LEN)} to OUT. 0, or -1 (out of memory). */
int errreply_pack(msgpack_sbuffer *out, const char *text, size_t len);

/*
 * True when the payload DATA[0..LEN) is an error reply; *VALUE and
 * *VALUE_LEN then delimit the MessagePack bytes of its value (borrowed
 * from DATA).
 */
bool errreply_find(const void *data, size_t len, const void **value, size_t *value_len);

#endif
