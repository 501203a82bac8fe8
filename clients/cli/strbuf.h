/*
 * strbuf.h - a growable NUL-terminated string, for building output lines.
 */
#ifndef PIGEON_CLI_STRBUF_H
#define PIGEON_CLI_STRBUF_H

#include <stddef.h>

/* A growable string; the caller owns DATA (strbuf_free). */
struct strbuf {
    char *data; /* owned, NUL-terminated once anything was appended */
    size_t len, cap;
};

void strbuf_init(struct strbuf *b);
void strbuf_free(struct strbuf *b);
/* Appends; returns 0, or -1 when out of memory (the buffer keeps what it had). */
int strbuf_add(struct strbuf *b, const char *s, size_t n);
int strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends the NUL-terminated S. 0, or -1 when out of memory. */
int strbuf_lit(struct strbuf *b, const char *s);

#endif
