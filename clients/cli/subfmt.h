/*
 * subfmt.h - how `pigeon sub` prints a message: the default JSON line,
 * `-v` (topic, then payload) or a --format template; indented with
 * --pretty.
 *
 * A template is text with fields in braces, expanded for each message and
 * followed by a line end:
 *
 *   {topic}     the topic, as it is
 *   {payload}   the payload as JSON (docs/cli.md, JSON and MessagePack)
 *   {time}      when sub took the message, UTC: 2026-12-07T10:15:03.123Z
 *   {sid}       the subscription's id (a number)
 *   {headers}   the headers as a JSON object, {} when there are none
 *   {reply_to}  reply_to, or nothing
 *   {retained}  true for a retained value replayed on subscribing, else false
 *   {{ }}       a literal brace;  \n \t \\  a line end, a tab, a backslash
 *
 *   valid:   "{topic} {payload}"   "{time}\t{topic}\t{headers}"   "{{{sid}}}"
 *   invalid: "{nope}" (no such field)   "{topic" (unclosed)   "a}b" (stray '}')
 *
 * -v is the template "{topic} {payload}", as mosquitto_sub -v prints.
 */
#ifndef PIGEON_CLI_SUBFMT_H
#define PIGEON_CLI_SUBFMT_H

#include <stdbool.h>
#include <stddef.h>

#include <pigeon.h>

#include "strbuf.h"

#define SUBFMT_VERBOSE "{topic} {payload}"

struct subfmt_part;

struct subfmt {
    struct subfmt_part *parts; /* owned; NULL: the default JSON line */
    size_t n_parts;
    bool pretty; /* JSON indented (json_indent): the line, or each JSON field */
};

/*
 * Compiles TEMPLATE (NULL: the default JSON line) into F.  Returns 0, or
 * -1 with what is wrong in ERR (ERRLEN bytes); F then holds nothing to
 * free.
 */
int subfmt_compile(struct subfmt *f, const char *template, bool pretty, char *err, size_t errlen);

/* Frees F's parts. */
void subfmt_free(struct subfmt *f);

/* Appends M (borrowed for the call), as F says, and a line end to OUT. 0, or -1. */
int subfmt_render(const struct subfmt *f, const pigeon_msg *m, struct strbuf *out);

#endif
