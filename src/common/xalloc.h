/*
 * xalloc.h - the one out-of-memory policy shared by every Pigeon program.
 *
 * Pigeon bounds what any peer can make it allocate (frame, queue, retained
 * and subscription limits), so running out of memory means the host itself is
 * exhausted.  Like Redis and tmux we do not try to limp on: these wrappers
 * print one line and abort.  Every heap allocation in the project goes
 * through them, so no caller checks for NULL and no error path is untested.
 */
#ifndef PIGEON_XALLOC_H
#define PIGEON_XALLOC_H

#include <stddef.h>

/* Each returns memory the caller owns (free with free()); never NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
