/*
 * json.h - JSON <-> MessagePack for the command line, reversibly.
 *
 * People type and read JSON; the broker carries MessagePack.  JSON maps
 * onto MessagePack directly (null, true/false, integers, floats, strings,
 * arrays, objects with string keys).  What JSON cannot show is written as
 * an object with exactly one key starting with '$', and read back the same:
 *
 *   {"$bin": "<base64>"}            binary
 *   {"$ext": [type, "<base64>"]}    ext, type -128..127
 *   {"$map": [[key, value], ...]}   a map JSON cannot show as an object:
 *                                   a key that is not a string, a repeated
 *                                   key, or a one-pair map whose key is one
 *                                   of these tags
 *   {"$int": "<decimal>"}           an integer outside -2^63..2^63-1
 *                                   (uint64 above 2^63-1)
 *   {"$float": "nan" | "inf" | "-inf"}
 *   {"$str": "<base64>"}            a string that is not valid UTF-8
 *
 * An object with one key that is not one of these six is an ordinary map.
 * Floats print as the shortest decimal that reads back to the same value
 * (a float32 at float32 precision); they are read back as float64, and
 * integers take the smallest encoding, so a round trip keeps every value
 * but not necessarily the exact bytes.  `--raw` keeps the bytes.
 *
 * Parsing is jansson's; printing is ours, to control float formatting and
 * to print straight from the MessagePack bytes.
 */
#ifndef PIGEON_CLI_JSON_H
#define PIGEON_CLI_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "strbuf.h"

/*
 * Converts the JSON document TEXT[0..LEN) to one MessagePack object
 * appended to OUT.  Returns 0, or -1 with a message in ERR (ERRLEN bytes).
 */
int json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err, size_t errlen);

/*
 * json_to_msgpack for one line of a larger input (pub's stdin): a syntax
 * error names the column only, for the caller to say which line it was.
 */
int json_line_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err,
                         size_t errlen);

/*
 * Appends the JSON form of the MessagePack object DATA[0..LEN) to OUT.
 * Returns 0, or -1 when DATA is not one object (or out of memory).
 */
int json_from_msgpack(const void *data, size_t len, struct strbuf *out);

/* Appends S[0..LEN) as a JSON string, or as {"$str": ...} when not UTF-8. */
int json_add_string(struct strbuf *out, const char *s, size_t len);

/*
 * Appends the JSON text TEXT[0..LEN) (one document, such as
 * json_from_msgpack writes) to OUT indented: a member or element per line,
 * two spaces a level, ": " after keys; empty objects and arrays stay "{}"
 * and "[]".  No line end after the last line.  0, or -1 (out of memory).
 */
int json_indent(const char *text, size_t len, struct strbuf *out);

#endif
