/*
 * inifile.c - an INI file as pigeond reads one: the file, and the line
 * reader between its text and inih (see inifile.h for why each rule).
 *
 * Errors are "first wins" while loading: the reader stops feeding inih
 * after the first failure, and inih's own return value (the line of its
 * first syntax error) wins where it is earlier.  While collecting, the
 * reader records the syntax errors inih would report (it tells only its
 * first) and goes on.
 */
#include "inifile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "xalloc.h"

/* inih's syntax error (a line without '='), worded by us; the reader's too for "key: value". */
#define SYNTAX_ERROR "syntax error: expected 'key = value' or '[section]'"

/* ----------------------------------------------------------- errors ---- */

void inifile_error_begin(struct config_error *err, const char *name)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", name);
}

static void __attribute__((format(printf, 3, 0)))
error_vset(struct config_error *err, int line, const char *fmt, va_list ap)
{
    err->line = line;
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
}

static void __attribute__((format(printf, 3, 4)))
error_set(struct config_error *err, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_vset(err, line, fmt, ap);
    va_end(ap);
}

bool inifile_going(const struct inifile *f)
{
    return !f->failed || f->errs != NULL;
}

void inifile_fail(struct inifile *f, int line, const char *fmt, ...)
{
    struct config_error *err = f->err;
    va_list ap;

    if (f->errs != NULL) {
        if (f->n_errs == f->max_errs)
            return;
        err = &f->errs[f->n_errs++];
        memcpy(err->file, f->err->file, sizeof(err->file));
    } else if (f->failed) {
        return;
    }
    f->failed = true;
    va_start(ap, fmt);
    error_vset(err, line, fmt, ap);
    va_end(ap);
}

size_t inifile_errors_sort(struct inifile *f)
{
    struct config_error *errs = f->errs;

    for (size_t i = 1; i < f->n_errs; i++) {
        struct config_error e = errs[i];
        size_t j = i;
        for (; j > 0 && errs[j - 1].line > e.line; j--)
            errs[j] = errs[j - 1];
        errs[j] = e;
    }
    return f->n_errs;
}

/* ------------------------------------------------------------- file ---- */

/* Opens PATH and checks it is a regular file of at most MAX bytes: 0 and *FD, or -1. */
static int file_open_regular(const char *path, size_t max, int *fd, struct config_error *err)
{
    struct stat st;

    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) {
        error_set(err, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (fstat(*fd, &st) < 0)
        error_set(err, 0, "cannot read: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        error_set(err, 0, "cannot read: %s", strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        error_set(err, 0, "not a regular file");
    else if ((uint64_t)st.st_size > max)
        error_set(err, 0, "file too large: at most %zu bytes", max);
    else
        return 0;
    close(*fd);
    return -1;
}

/* Reads FD whole into *BUF, at most MAX + 1 bytes (so a file that grew is still caught). */
static int file_slurp(int fd, size_t max, char **buf, size_t *len)
{
    size_t cap = 4096;
    ssize_t n;

    *buf = xmalloc(cap);
    *len = 0;
    while (*len <= max) {
        if (*len + 1 >= cap) {
            cap *= 2;
            *buf = xrealloc(*buf, cap);
        }
        n = read(fd, *buf + *len, cap - *len - 1);
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            *len += (size_t)n;
    }
    (*buf)[*len] = '\0';
    return 0;
}

static int line_of(const char *text, size_t off)
{
    int line = 1;

    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

int inifile_read(const char *path, size_t max, char **text, size_t *len, struct config_error *err)
{
    const char *nul;
    int fd;

    *text = NULL;
    if (file_open_regular(path, max, &fd, err) < 0)
        return -1;
    if (file_slurp(fd, max, text, len) < 0)
        error_set(err, 0, "cannot read: %s", strerror(errno));
    else if (*len > max)
        error_set(err, 0, "file too large: at most %zu bytes", max);
    else if ((nul = memchr(*text, '\0', *len)) != NULL)
        error_set(err, line_of(*text, (size_t)(nul - *text)), "NUL byte in the file");
    else {
        close(fd);
        return 0;
    }
    close(fd);
    free(*text);
    *text = NULL;
    return -1;
}

/* ------------------------------------------------- the reader ---- */

static const char *skip_blank(const char *s, const char *e)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    return s;
}

static const char *trim_end(const char *s, const char *e)
{
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return e;
}

/* Where an inline comment starts: ';' or '#' after a blank; else E. */
static const char *comment_start(const char *s, const char *e)
{
    for (const char *c = s + 1; c < e; c++)
        if ((*c == ';' || *c == '#') && isspace((unsigned char)c[-1]))
            return c;
    return e;
}

/* "[name]" at S..E (trimmed, S at '['), with an optional comment after it. */
static void header_lex(struct inifile *f, const char *s, const char *e)
{
    const char *rb = memchr(s, ']', (size_t)(e - s));
    const char *after, *name, *name_end;

    if (rb == NULL) {
        inifile_fail(f, f->line, "syntax error: expected ']' after the section name");
        return;
    }
    after = skip_blank(rb + 1, e);
    if (after < e && *after != ';' && *after != '#') {
        inifile_fail(f, f->line, "syntax error: unexpected text after ']'");
        return;
    }
    name = skip_blank(s + 1, rb);
    name_end = trim_end(name, rb);
    f->section(f, name, (size_t)(name_end - name));
}

/*
 * Turns the line S..E into what inih gets in BUF (SIZE bytes): "" for a
 * blank line, a comment or a section header (handled here), else the line
 * without its leading blanks and inline comment, plus "\n".
 */
static void line_lex(struct inifile *f, const char *s, const char *e, char *buf, size_t size)
{
    const char *sep;
    size_t len;

    buf[0] = '\0';
    s = skip_blank(s, e);
    e = trim_end(s, e);
    if (s == e || *s == ';' || *s == '#')
        return;
    if (*s == '[') {
        header_lex(f, s, e);
        return;
    }
    e = trim_end(s, comment_start(s, e));
    for (sep = s; sep < e && *sep != '=' && *sep != ':'; sep++)
        ;
    if ((sep < e && *sep == ':') || (sep == e && f->errs != NULL)) {
        inifile_fail(f, f->line, SYNTAX_ERROR);
        return;
    }
    len = (size_t)(e - s);
    if (size < 2 || len > size - 2) {
        inifile_fail(f, f->line, "line too long: at most %zu characters before a comment",
                     size < 2 ? 0 : size - 2);
        return;
    }
    memcpy(buf, s, len);
    memcpy(buf + len, "\n", 2);
}

static char *reader_cb(char *buf, int size, void *user)
{
    struct inifile *f = user;
    const char *start = f->pos, *nl;

    if (!inifile_going(f) || f->pos >= f->end || size <= 0)
        return NULL;
    nl = memchr(start, '\n', (size_t)(f->end - start));
    f->pos = nl ? nl + 1 : f->end;
    f->line++;
    line_lex(f, start, nl ? nl : f->end, buf, (size_t)size);
    return buf;
}

static int handler_cb(void *user, const char *section, const char *name, const char *value)
{
    struct inifile *f = user;

    (void)section; /* always "": the reader keeps headers from inih */
    if (!inifile_going(f))
        return 0;
    if (name[0] == '\0') {
        inifile_fail(f, f->line, "syntax error: missing key before '='");
        return 0;
    }
    f->key(f, name, value);
    return 1;
}

int inifile_parse(struct inifile *f, const char *text, size_t len)
{
    int rc;

    f->pos = text;
    f->end = text + len;
    f->line = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        f->pos += 3; /* a UTF-8 byte order mark */
    rc = ini_parse_stream(reader_cb, f, handler_cb, f);
    if (f->finish != NULL && inifile_going(f))
        f->finish(f);
    if (rc > 0 && f->errs == NULL && (!f->failed || rc < f->err->line)) {
        error_set(f->err, rc, SYNTAX_ERROR);
        f->failed = true;
    } else if (rc < 0 && inifile_going(f)) {
        inifile_fail(f, 0, "inih failed (%d)", rc);
    }
    return f->failed ? -1 : 0;
}
