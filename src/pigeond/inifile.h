/*
 * inifile.h - reading an INI file the way pigeond reads its files: the
 * file itself (regular files only, size-capped, whole), and a line reader
 * between the text and inih that gives every error its exact line.
 *
 * Why a layer in front of inih (r55, as Debian 12 builds it): inih passes
 * no line number to its handler, cuts lines longer than 200 bytes into
 * pieces that parse as lines of their own, truncates section names to 49
 * bytes, takes an indented line as the continuation of the previous value,
 * knows only ';' as an inline comment, and accepts "key: value".  The reader
 * here feeds inih one line at a time, so its count is the line inih is on;
 * it refuses lines too long for inih, parses section headers itself (inih
 * gets a blank line instead), strips leading blanks, cuts comments that
 * start with ';' or '#' after a blank, and refuses "key: value".  What inih
 * still decides: the split at the first '=', trimming, and the syntax error
 * for a line without one.  pigeond.conf (config.c) and the users file
 * (users.c) are both read through it.
 *
 * Errors are "FILE:LINE: reason" (struct config_error, config.h).  A parse
 * either stops at its first error (loading) or collects every error up to a
 * maximum (checking, `pigeond -t`); the owner's callbacks report theirs with
 * inifile_fail and ask inifile_going whether to go on.
 */
#ifndef PIGEON_INIFILE_H
#define PIGEON_INIFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct inifile;

/* A section header's name, LEN bytes, trimmed (not NUL-terminated), at f->line. */
typedef void (*inifile_section_fn)(struct inifile *f, const char *name, size_t len);

/* A "name = value" line at f->line: NAME non-empty, VALUE trimmed (maybe empty), both borrowed. */
typedef void (*inifile_key_fn)(struct inifile *f, const char *name, const char *value);

/*
 * The end of the text, before inih's own syntax error (a line without '=')
 * is weighed against the errors recorded: checks that close the last
 * section report here, so that the earliest error by line still wins.
 */
typedef void (*inifile_end_fn)(struct inifile *f);

struct inifile {
    /* Set by the owner before inifile_parse. */
    inifile_section_fn section;
    inifile_key_fn key;
    inifile_end_fn finish;     /* or NULL */
    void *arg;                 /* for the callbacks */
    struct config_error *err;  /* the first error (its file set by inifile_error_begin) */
    struct config_error *errs; /* collecting every error, or NULL */
    size_t max_errs;
    /* Kept by the parse. */
    size_t n_errs; /* errors collected */
    bool failed;   /* an error was recorded */
    int line;      /* the line being read (1-based) */
    const char *pos, *end;
};

/* Clears ERR and names its file NAME. */
void inifile_error_begin(struct config_error *err, const char *name);

/*
 * Reads PATH whole into *TEXT (owned by the caller; NUL-terminated) and
 * *LEN: 0, or -1 with ERR's reason set ("cannot open: ...", "not a regular
 * file", "file too large: ...", "NUL byte in the file" with its line).
 * Only a regular file is read, opened non-blocking and checked with fstat
 * before any read, so a FIFO or a device given as the file cannot stall
 * the loop that reloads it.  At most MAX bytes.
 */
int inifile_read(const char *path, size_t max, char **text, size_t *len, struct config_error *err);

/*
 * Parses LEN bytes of TEXT (a UTF-8 byte order mark is skipped), calling
 * F's callbacks.  Returns 0, or -1 when any error was recorded.
 */
int inifile_parse(struct inifile *f, const char *text, size_t len);

/*
 * Records an error at LINE: the first one (loading), or one more (collecting,
 * up to max_errs).  Later errors are dropped when not collecting.
 */
void inifile_fail(struct inifile *f, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True while the parse goes on: no error yet, or collecting them all. */
bool inifile_going(const struct inifile *f);

/* Sorts F's collected errors by line (stable); returns their count. */
size_t inifile_errors_sort(struct inifile *f);

#endif
