/*
 * config.c - pigeond's settings: defaults, the INI file, validation.
 *
 * One path serves start-up, `pigeond -t` and SIGHUP: the text is read whole,
 * parsed into a fresh struct config that starts from the built-in defaults,
 * validated, and handed out only when nothing failed.  A config that fails is
 * freed here; the caller's running snapshot is never touched.
 *
 * inih splits "key = value" lines and calls handler_cb() for each.  Between
 * the text and inih sits our own line reader, reader_cb(), because of how
 * inih r55 behaves as Debian 12 builds it (its defaults: INI_MAX_LINE 200 on
 * the stack, multi-line values and inline ';' comments on, no stop on the
 * first error, no line number passed to the handler):
 *
 *  - Line numbers.  inih never reads ahead, so the reader's count is the line
 *    inih is on when it calls the handler: every error gets its exact line.
 *  - Long lines.  inih cuts a line longer than INI_MAX_LINE into pieces and
 *    parses each as a line of its own: the value is silently truncated, the
 *    tail may parse as another key, and every later line number is off.  The
 *    reader refuses such a line (comments may be any length).
 *  - Sections.  inih truncates section names to 49 bytes, says nothing of a
 *    section with no keys (an unknown one would pass unnoticed), and after a
 *    malformed header files the next keys under the previous section.  The
 *    reader parses headers itself and hands inih a blank line instead, so the
 *    handler ignores inih's section argument and uses ours.
 *  - Indentation.  An indented line after a key is a multi-line continuation
 *    to inih ("  max_payload = 1m" would become a second value of the key
 *    above); the reader strips leading blanks so that never happens.
 *  - Comments and separators.  The reader cuts a comment that starts with
 *    ';' or '#' after a blank, so `key = 5 # why` means what it says (inih
 *    knows only ';').  It refuses "key: value", which inih takes as Python's
 *    configparser does, so "key = value" is the one form and a stray
 *    "unix:/path" line is a syntax error rather than a key named "unix".
 *
 * Debian's libinih also exports these settings as variables (ini_allow_multiline
 * and the like).  We leave them alone: they are process-wide, and other builds
 * of inih do not have them.
 *
 * What inih still decides: the split at the first '=', trimming, and the
 * syntax error for a line without one.  Errors are "first wins": the reader
 * stops feeding inih after the first failure we record, and inih's own
 * return value (the line of its first error) wins where it is earlier.
 *
 * Sections: [broker], [listener NAME] (one per listener) and [http] (the
 * monitoring endpoint, at most once; off without it).
 *
 * The keys live in one table, keys[]: section, name, setter, and for numbers
 * the field and its range.  Everything the file can say is in that table, and
 * conf/pigeond.conf documents every row (a unit test checks it).
 *
 * The file is opened non-blocking and checked with fstat before it is read:
 * only a regular file is read (file_open_regular), so a FIFO given as the
 * config cannot hang start-up or stall the loop at SIGHUP.
 *
 * Also here, since they need the parsers and the table: the command line's
 * listeners (pigeond -p/-b), which replace the file's and survive reloads,
 * and config_diff, which walks the table to say what a reload changed, each
 * value written back in the units the file uses (size_format and
 * duration_format, as in error messages).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "addr.h"
#include "xalloc.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

#define SEC_MS  ((uint64_t)1000)
#define MIN_MS  (SEC_MS * 60)
#define HOUR_MS (MIN_MS * 60)

#define DEFAULT_LISTENER_NAME "default"
#define DEFAULT_LISTENER_BIND "127.0.0.1:7400"
#define DEFAULT_UNIX_MODE     0660u

#define CONFIG_FILE_MAX   MIB /* a config file is a page or two; refuse /dev/zero */
#define LISTENER_NAME_MAX 64
#define KEYS_MAX          24 /* room in struct parse; checked against keys[] below */

/* inih's syntax error (a line without '='), worded by us; the reader's too for "key: value". */
#define SYNTAX_ERROR "syntax error: expected 'key = value' or '[section]'"

/* ------------------------------------------------------------ names ---- */

static const char *const io_backend_names[] = {
    [CONFIG_IO_AUTO] = "auto", [CONFIG_IO_EPOLL] = "epoll",   [CONFIG_IO_KQUEUE] = "kqueue",
    [CONFIG_IO_POLL] = "poll", [CONFIG_IO_SELECT] = "select",
};

static const char *const slow_policy_names[] = {
    [CONFIG_SLOW_DISCONNECT] = "disconnect",
    [CONFIG_SLOW_DROP] = "drop",
};

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

const char *config_io_backend_name(enum config_io_backend b)
{
    return (size_t)b < ARRAY_SIZE(io_backend_names) ? io_backend_names[b] : "unknown";
}

const char *config_slow_policy_name(enum config_slow_policy p)
{
    return (size_t)p < ARRAY_SIZE(slow_policy_names) ? slow_policy_names[p] : "unknown";
}

/* Index of VALUE in NAMES, or -1. */
static int names_find(const char *const *names, size_t n, const char *value)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], value) == 0)
            return (int)i;
    return -1;
}

/* Appends S to the string in BUF (LEN bytes in all), cutting it to fit. */
static void str_append(char *buf, size_t len, const char *s)
{
    size_t used = strnlen(buf, len), n = strlen(s);

    if (used + 1 >= len)
        return;
    if (n > len - used - 1)
        n = len - used - 1;
    memcpy(buf + used, s, n);
    buf[used + n] = '\0';
}

/* "expected one of: a, b, c" into WHY. */
static void names_expected(const char *const *names, size_t n, char *why, size_t why_len)
{
    why[0] = '\0';
    str_append(why, why_len, "expected one of: ");
    for (size_t i = 0; i < n; i++) {
        str_append(why, why_len, i ? ", " : "");
        str_append(why, why_len, names[i]);
    }
}

/* ------------------------------------------------ numbers and units ---- */

/*
 * Reads the decimal digits at S (at least one; no sign, no blank) into *OUT
 * and sets *END past them.  0, or -EINVAL without digits, -ERANGE on
 * overflow (after every digit was read, so *END is right either way).
 */
static int digits_parse(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    bool overflow = false;
    const char *c = s;

    for (; *c >= '0' && *c <= '9'; c++) {
        unsigned d = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    *end = c;
    if (c == s)
        return -EINVAL;
    if (overflow)
        return -ERANGE;
    *out = v;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

static const struct unit size_units[] = {
    {"", 1}, {"k", KIB}, {"kb", KIB}, {"m", MIB}, {"mb", MIB}, {"g", GIB}, {"gb", GIB},
};

static const struct unit duration_units[] = {
    {"", SEC_MS}, {"ms", 1}, {"s", SEC_MS}, {"m", MIN_MS}, {"h", HOUR_MS},
};

/* A number with a unit suffix from UNITS: 0, -EINVAL if malformed, -ERANGE. */
static int unit_parse(const char *s, const struct unit *units, size_t n, uint64_t *out)
{
    const char *end;
    uint64_t v = 0;
    int rc = digits_parse(s, &end, &v);

    if (rc == -EINVAL)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (rc < 0 || v > UINT64_MAX / units[i].mult)
            return -ERANGE;
        *out = v * units[i].mult;
        return 0;
    }
    return -EINVAL;
}

int config_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (unit_parse(s, size_units, ARRAY_SIZE(size_units), &v) < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
    uint64_t v;

    if (unit_parse(s, duration_units, ARRAY_SIZE(duration_units), &v) < 0 || v > max_ms)
        return -1;
    *out = v;
    return 0;
}

/* A plain unsigned integer, digits only: 0, -EINVAL, -ERANGE. */
static int count_parse(const char *s, uint64_t *out)
{
    const char *end;
    int rc = digits_parse(s, &end, out);

    if (rc == -EINVAL || *end != '\0')
        return -EINVAL;
    return rc;
}

/* V in the largest unit that states it exactly: "1gb", "64kb", "1000". */
static void size_format(char *buf, size_t len, uint64_t v)
{
    static const struct unit units[] = {{"gb", GIB}, {"mb", MIB}, {"kb", KIB}};

    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (v != 0 && v % units[i].mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / units[i].mult, units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, v);
}

/* V milliseconds in the largest unit that states it exactly: "1h", "500ms". */
static void duration_format(char *buf, size_t len, uint64_t v)
{
    static const struct unit units[] = {{"h", HOUR_MS}, {"m", MIN_MS}, {"s", SEC_MS}};

    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (v != 0 && v % units[i].mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", v / units[i].mult, units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, v ? "%" PRIu64 "ms" : "%" PRIu64, v);
}

/* ------------------------------------------------------- listeners ---- */

/* Appends a listener named NAME (copied) with no bind yet; returns it. */
static struct config_listener *listener_add(struct config *conf, const char *name, size_t len,
                                            int line)
{
    struct config_listener *l;

    conf->listeners = xrealloc(conf->listeners, (conf->n_listeners + 1) * sizeof(*conf->listeners));
    l = &conf->listeners[conf->n_listeners++];
    memset(l, 0, sizeof(*l));
    l->name = xstrndup(name, len);
    l->line = line;
    l->mode = DEFAULT_UNIX_MODE;
    return l;
}

static void listener_release(struct config_listener *l)
{
    free(l->name);
    free(l->bind);
    free(l->host);
    free(l->path);
}

static bool listener_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > LISTENER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

/* Copies the address A, parsed from the bind value V, into L. */
static void bind_set(struct config_listener *l, const char *v, const struct addr *a)
{
    if (a->kind == ADDR_UNIX) {
        l->kind = CONFIG_LISTEN_UNIX;
        l->path = xstrdup(a->path);
    } else {
        l->kind = CONFIG_LISTEN_TCP;
        l->host = xstrdup(a->host);
        l->port = a->port;
        l->mode = 0; /* no file to chmod; a mode key here fails in section_finish() */
    }
    l->bind = xstrdup(v);
}

/* Fills L's address from the bind value V (src/common/addr.h's forms, to
 * listen); 0, or -1 with WHY. */
static int bind_parse(const char *v, struct config_listener *l, char *why, size_t why_len)
{
    struct addr a;

    if (addr_parse(v, ADDR_LISTEN, &a, why, why_len) < 0)
        return -1;
    bind_set(l, v, &a);
    return 0;
}

/* Same host: numeric addresses compared as addresses, names without case. */
static bool host_same(const char *a, const char *b)
{
    struct in6_addr a6, b6;
    struct in_addr a4, b4;

    if (inet_pton(AF_INET, a, &a4) == 1 && inet_pton(AF_INET, b, &b4) == 1)
        return a4.s_addr == b4.s_addr;
    if (inet_pton(AF_INET6, a, &a6) == 1 && inet_pton(AF_INET6, b, &b6) == 1)
        return memcmp(&a6, &b6, sizeof(a6)) == 0;
    return strcasecmp(a, b) == 0;
}

/* Same socket address, whatever the mode. */
static bool listener_addr_same(const struct config_listener *a, const struct config_listener *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == CONFIG_LISTEN_UNIX)
        return strcmp(a->path, b->path) == 0;
    return a->port == b->port && host_same(a->host, b->host);
}

/* Two listeners that cannot both bind: the same address, unless it is a TCP port 0. */
static bool listener_addr_clash(const struct config_listener *a, const struct config_listener *b)
{
    return listener_addr_same(a, b) && !(a->kind == CONFIG_LISTEN_TCP && a->port == 0);
}

bool config_listener_same(const struct config_listener *a, const struct config_listener *b)
{
    return listener_addr_same(a, b) && a->mode == b->mode;
}

/* ------------------------------------------------------ parse state ---- */

enum section {
    SEC_NONE,     /* before the first header */
    SEC_BROKER,   /* [broker] */
    SEC_LISTENER, /* [listener NAME]: the last of conf->listeners */
    SEC_HTTP,     /* [http]: conf->http */
    SEC_INVALID,  /* a header that failed; its keys are ignored */
};

struct parse {
    struct config *conf;       /* being built; freed by the caller on failure */
    struct config_error *err;  /* the first error, once FAILED */
    bool failed;               /* an error is recorded: stop, unless collecting */
    struct config_error *errs; /* collecting every error (config_check_file), or NULL */
    size_t max_errs, n_errs;
    const char *pos;               /* text not yet handed to inih */
    const char *end;               /* end of the text */
    int line;                      /* the line inih is on (1-based) */
    enum section sec;              /* the section that line is in */
    int sec_line;                  /* line of that section's header */
    int broker_line;               /* line of [broker], 0 before it */
    int http_line;                 /* line of [http], 0 before it */
    int key_line[KEYS_MAX];        /* where each key of this section was set, 0 if not */
    int broker_key_line[KEYS_MAX]; /* key_line of [broker], kept for config_validate */
};

/* Records LINE and REASON in the error, whatever was there. */
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

/* True while parsing goes on: no error yet, or collecting them all. */
static bool parse_going(const struct parse *p)
{
    return !p->failed || p->errs != NULL;
}

/*
 * Records an error unless one is recorded already: the first one wins.
 * When collecting (P->errs), every error is appended, up to max_errs.
 */
static void __attribute__((format(printf, 3, 4)))
parse_fail(struct parse *p, int line, const char *fmt, ...)
{
    struct config_error *err = p->err;
    va_list ap;

    if (p->errs != NULL) {
        if (p->n_errs == p->max_errs)
            return;
        err = &p->errs[p->n_errs++];
        memcpy(err->file, p->err->file, sizeof(err->file));
    } else if (p->failed) {
        return;
    }
    p->failed = true;
    va_start(ap, fmt);
    error_vset(err, line, fmt, ap);
    va_end(ap);
}

static struct config_listener *parse_listener(struct parse *p)
{
    return &p->conf->listeners[p->conf->n_listeners - 1];
}

/* --------------------------------------------------------- the keys ---- */

struct key_def;

/* Sets a key from VALUE (non-empty): 0, or -1 with a reason in WHY. */
typedef int (*key_set_fn)(struct parse *p, const struct key_def *k, const char *value, char *why,
                          size_t why_len);

struct key_def {
    enum section sec;
    const char *name;
    key_set_fn set;
    size_t offset; /* numbers: the field in struct config */
    uint64_t min, max;
};

static uint32_t *field_u32(struct parse *p, const struct key_def *k)
{
    return (uint32_t *)(void *)((char *)p->conf + k->offset);
}

static uint64_t *field_u64(struct parse *p, const struct key_def *k)
{
    return (uint64_t *)(void *)((char *)p->conf + k->offset);
}

static int set_io_backend(struct parse *p, const struct key_def *k, const char *value, char *why,
                          size_t why_len)
{
    int i = names_find(io_backend_names, ARRAY_SIZE(io_backend_names), value);

    (void)k;
    if (i < 0) {
        names_expected(io_backend_names, ARRAY_SIZE(io_backend_names), why, why_len);
        return -1;
    }
    p->conf->io_backend = (enum config_io_backend)i;
    return 0;
}

static int set_log_level(struct parse *p, const struct key_def *k, const char *value, char *why,
                         size_t why_len)
{
    (void)k;
    if (log_level_parse(value, &p->conf->log_level) < 0) {
        names_expected(level_names, ARRAY_SIZE(level_names), why, why_len);
        return -1;
    }
    return 0;
}

static int set_slow_consumer(struct parse *p, const struct key_def *k, const char *value, char *why,
                             size_t why_len)
{
    int i = names_find(slow_policy_names, ARRAY_SIZE(slow_policy_names), value);

    (void)k;
    if (i < 0) {
        names_expected(slow_policy_names, ARRAY_SIZE(slow_policy_names), why, why_len);
        return -1;
    }
    p->conf->slow_consumer = (enum config_slow_policy)i;
    return 0;
}

/* A size in K's range: 0, or -1 with WHY. */
static int size_in_range(const struct key_def *k, const char *value, uint64_t *out, char *why,
                         size_t why_len)
{
    char lo[32], hi[32];
    int rc = unit_parse(value, size_units, ARRAY_SIZE(size_units), out);

    if (rc == -EINVAL) {
        snprintf(why, why_len, "expected a size: a number with an optional k, kb, m, mb, g or gb");
        return -1;
    }
    if (rc < 0 || *out < k->min || *out > k->max) {
        size_format(lo, sizeof(lo), k->min);
        size_format(hi, sizeof(hi), k->max);
        snprintf(why, why_len, "must be from %s to %s", lo, hi);
        return -1;
    }
    return 0;
}

static int set_size32(struct parse *p, const struct key_def *k, const char *value, char *why,
                      size_t why_len)
{
    uint64_t v;

    if (size_in_range(k, value, &v, why, why_len) < 0)
        return -1;
    *field_u32(p, k) = (uint32_t)v; /* the table's max fits */
    return 0;
}

static int set_size64(struct parse *p, const struct key_def *k, const char *value, char *why,
                      size_t why_len)
{
    return size_in_range(k, value, field_u64(p, k), why, why_len);
}

static int set_count32(struct parse *p, const struct key_def *k, const char *value, char *why,
                       size_t why_len)
{
    uint64_t v;
    int rc = count_parse(value, &v);

    if (rc == -EINVAL) {
        snprintf(why, why_len, "expected a whole number, digits only");
        return -1;
    }
    if (rc < 0 || v < k->min || v > k->max) {
        snprintf(why, why_len, "must be from %" PRIu64 " to %" PRIu64, k->min, k->max);
        return -1;
    }
    *field_u32(p, k) = (uint32_t)v;
    return 0;
}

/* Durations below this are refused for stats_interval, 0 (off) aside. */
#define STATS_INTERVAL_MIN_MS 100

static int set_duration32(struct parse *p, const struct key_def *k, const char *value, char *why,
                          size_t why_len)
{
    char lo[32], hi[32];
    uint64_t v;
    int rc = unit_parse(value, duration_units, ARRAY_SIZE(duration_units), &v);

    if (rc == -EINVAL) {
        snprintf(why, why_len,
                 "expected a duration: a number with ms, s, m or h (seconds if bare)");
        return -1;
    }
    if (rc < 0 || v < k->min || v > k->max) {
        duration_format(lo, sizeof(lo), k->min);
        duration_format(hi, sizeof(hi), k->max);
        snprintf(why, why_len, "must be from %s to %s", lo, hi);
        return -1;
    }
    *field_u32(p, k) = (uint32_t)v;
    return 0;
}

/* A duration, or 0 for off: a shorter interval would publish stats faster
 * than anyone reads them, on the broker's own loop. */
static int set_stats_interval(struct parse *p, const struct key_def *k, const char *value,
                              char *why, size_t why_len)
{
    if (set_duration32(p, k, value, why, why_len) < 0)
        return -1;
    uint32_t v = *field_u32(p, k);
    if (v != 0 && v < STATS_INTERVAL_MIN_MS) {
        snprintf(why, why_len, "must be 0 (off) or from %dms to 1h", STATS_INTERVAL_MIN_MS);
        return -1;
    }
    return 0;
}

/* "auto" (0: budget.h works it out from the machine), or a size in K's range. */
static int set_max_memory(struct parse *p, const struct key_def *k, const char *value, char *why,
                          size_t why_len)
{
    if (strcmp(value, "auto") == 0) {
        *field_u64(p, k) = 0;
        return 0;
    }
    if (size_in_range(k, value, field_u64(p, k), why, why_len) < 0) {
        str_append(why, why_len, ", or auto");
        return -1;
    }
    return 0;
}

static int set_bind(struct parse *p, const struct key_def *k, const char *value, char *why,
                    size_t why_len)
{
    (void)k;
    return bind_parse(value, parse_listener(p), why, why_len);
}

/* Octal permission bits, 0 to 0777, as chmod takes them. */
static int set_mode(struct parse *p, const struct key_def *k, const char *value, char *why,
                    size_t why_len)
{
    size_t len = strlen(value);
    unsigned long v;

    (void)k;
    if (len > 4 || strspn(value, "01234567") != len || (v = strtoul(value, NULL, 8)) > 0777) {
        snprintf(why, why_len, "expected octal permission bits from 0 to 0777, such as 0660");
        return -1;
    }
    parse_listener(p)->mode = (unsigned)v;
    return 0;
}

/* [http] bind: host:port or [v6addr]:port; no unix socket (evhttp binds TCP). */
static int set_http_bind(struct parse *p, const struct key_def *k, const char *value, char *why,
                         size_t why_len)
{
    struct addr a;

    (void)k;
    if (strncmp(value, "unix:", 5) == 0) {
        snprintf(why, why_len, "the HTTP endpoint listens on TCP only: host:port or [v6addr]:port");
        return -1;
    }
    if (addr_parse(value, ADDR_LISTEN, &a, why, why_len) < 0)
        return -1;
    p->conf->http.bind = xstrdup(value);
    p->conf->http.host = xstrdup(a.host);
    p->conf->http.port = a.port;
    return 0;
}

#define FIELD(f) offsetof(struct config, f)

static const struct key_def keys[] = {
    {SEC_BROKER, "io_backend", set_io_backend, 0, 0, 0},
    {SEC_BROKER, "log_level", set_log_level, 0, 0, 0},
    {SEC_BROKER, "max_payload", set_size32, FIELD(max_payload), KIB, GIB},
    {SEC_BROKER, "max_connections", set_count32, FIELD(max_connections), 1, 1000000},
    {SEC_BROKER, "max_subscriptions", set_count32, FIELD(max_subscriptions), 1, 100000000},
    {SEC_BROKER, "max_subscriptions_per_connection", set_count32,
     FIELD(max_subscriptions_per_connection), 1, 10000000},
    {SEC_BROKER, "max_outbound", set_size64, FIELD(max_outbound), KIB, 1024 * GIB},
    {SEC_BROKER, "slow_consumer", set_slow_consumer, 0, 0, 0},
    {SEC_BROKER, "max_retained", set_size64, FIELD(max_retained), 0, 1024 * GIB},
    {SEC_BROKER, "max_memory", set_max_memory, FIELD(max_memory), 16 * MIB, 16 * 1024 * GIB},
    {SEC_BROKER, "idle_timeout", set_duration32, FIELD(idle_timeout_ms), 0, 24 * HOUR_MS},
    {SEC_BROKER, "drain_timeout", set_duration32, FIELD(drain_timeout_ms), 0, HOUR_MS},
    {SEC_BROKER, "stats_interval", set_stats_interval, FIELD(stats_interval_ms), 0, HOUR_MS},
    {SEC_LISTENER, "bind", set_bind, 0, 0, 0},
    {SEC_LISTENER, "mode", set_mode, 0, 0, 0},
    {SEC_HTTP, "bind", set_http_bind, 0, 0, 0},
    {SEC_HTTP, "max_clients", set_count32, FIELD(http.max_clients), 1, 10000},
    {SEC_HTTP, "timeout", set_duration32, FIELD(http.timeout_ms), SEC_MS, HOUR_MS},
    {SEC_HTTP, "header_timeout", set_duration32, FIELD(http.header_timeout_ms), SEC_MS, HOUR_MS},
    {SEC_HTTP, "max_clients_per_address", set_count32, FIELD(http.max_clients_per_address), 1,
     10000},
};

_Static_assert(ARRAY_SIZE(keys) <= KEYS_MAX, "KEYS_MAX is too small for keys[]");

static const char *section_name(enum section sec)
{
    return sec == SEC_BROKER ? "broker" : sec == SEC_HTTP ? "http" : "listener";
}

static const struct key_def *key_find(enum section sec, const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (keys[i].sec == sec && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

bool config_key_at(size_t i, const char **section, const char **key)
{
    if (i >= ARRAY_SIZE(keys))
        return false;
    *section = section_name(keys[i].sec);
    *key = keys[i].name;
    return true;
}

/* --------------------------------------------------------- sections ---- */

/* Checks the section that ends here: a listener or [http] needs a bind, and mode only on unix. */
static void section_finish(struct parse *p)
{
    const struct config_listener *l;
    int mode_line;

    if (p->sec == SEC_BROKER)
        memcpy(p->broker_key_line, p->key_line, sizeof(p->key_line));
    /* A bind key that failed has its own error: no second one for it here. */
    if (p->sec == SEC_HTTP && p->conf->http.bind == NULL &&
        !p->key_line[key_find(SEC_HTTP, "bind") - keys])
        parse_fail(p, p->sec_line, "[http] has no bind: bind = 127.0.0.1:7480");
    if (p->sec != SEC_LISTENER)
        return;
    l = parse_listener(p);
    mode_line = p->key_line[key_find(SEC_LISTENER, "mode") - keys];
    if (l->bind == NULL && !p->key_line[key_find(SEC_LISTENER, "bind") - keys])
        parse_fail(p, p->sec_line, "listener '%s' has no bind", l->name);
    else if (l->bind != NULL && mode_line && l->kind != CONFIG_LISTEN_UNIX)
        parse_fail(p, mode_line, "mode applies to unix sockets only; listener '%s' binds %s",
                   l->name, l->bind);
}

static void listener_begin(struct parse *p, const char *name, size_t len)
{
    if (len == 0) {
        parse_fail(p, p->line, "a listener section needs a name: [listener NAME]");
        return;
    }
    if (!listener_name_ok(name, len)) {
        parse_fail(p, p->line, "bad listener name '%.*s': use 1 to %d of A-Z a-z 0-9 _ . -",
                   (int)(len > 64 ? 64 : len), name, LISTENER_NAME_MAX);
        return;
    }
    listener_add(p->conf, name, len, p->line);
    p->sec = SEC_LISTENER;
}

/* Starts the section named NAME (LEN bytes, trimmed) at the current line. */
static void section_begin(struct parse *p, const char *name, size_t len)
{
    section_finish(p);
    p->sec = SEC_INVALID;
    p->sec_line = p->line;
    memset(p->key_line, 0, sizeof(p->key_line));

    if (len == 6 && memcmp(name, "broker", 6) == 0) {
        if (p->broker_line)
            parse_fail(p, p->line, "duplicate section [broker] (first at line %d)", p->broker_line);
        p->broker_line = p->line;
        p->sec = SEC_BROKER;
    } else if (len == 4 && memcmp(name, "http", 4) == 0) {
        if (p->http_line)
            parse_fail(p, p->line, "duplicate section [http] (first at line %d)", p->http_line);
        p->http_line = p->line;
        p->conf->http.enabled = true;
        p->conf->http.line = p->line;
        p->sec = SEC_HTTP;
    } else if (len >= 8 && memcmp(name, "listener", 8) == 0 &&
               (len == 8 || isspace((unsigned char)name[8]))) {
        for (name += 8, len -= 8; len && isspace((unsigned char)*name); len--)
            name++;
        listener_begin(p, name, len);
    } else {
        parse_fail(p, p->line,
                   "unknown section [%.*s]: expected [broker], [listener NAME] or [http]",
                   (int)(len > 64 ? 64 : len), name);
    }
}

/* ---------------------------------------------- the reader for inih ---- */

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
static void header_lex(struct parse *p, const char *s, const char *e)
{
    const char *rb = memchr(s, ']', (size_t)(e - s));
    const char *after, *name, *name_end;

    if (rb == NULL) {
        parse_fail(p, p->line, "syntax error: expected ']' after the section name");
        return;
    }
    after = skip_blank(rb + 1, e);
    if (after < e && *after != ';' && *after != '#') {
        parse_fail(p, p->line, "syntax error: unexpected text after ']'");
        return;
    }
    name = skip_blank(s + 1, rb);
    name_end = trim_end(name, rb);
    section_begin(p, name, (size_t)(name_end - name));
}

/*
 * Turns the line S..E into what inih gets in BUF (SIZE bytes): "" for a
 * blank line, a comment or a section header (handled here), else the line
 * without its leading blanks and inline comment, plus "\n".  The newline
 * matters to an inih built with INI_ALLOW_REALLOC, which would otherwise
 * take a full buffer without one for half a line and read on.
 */
static void line_lex(struct parse *p, const char *s, const char *e, char *buf, size_t size)
{
    const char *sep;
    size_t len;

    buf[0] = '\0';
    s = skip_blank(s, e);
    e = trim_end(s, e);
    if (s == e || *s == ';' || *s == '#')
        return;
    if (*s == '[') {
        header_lex(p, s, e);
        return;
    }
    e = trim_end(s, comment_start(s, e));
    for (sep = s; sep < e && *sep != '=' && *sep != ':'; sep++)
        ;
    if (sep < e && *sep == ':') { /* inih would take "key: value" too */
        parse_fail(p, p->line, SYNTAX_ERROR);
        return;
    }
    if (sep == e && p->errs != NULL) { /* no '=': inih's error, but inih tells only its first */
        parse_fail(p, p->line, SYNTAX_ERROR);
        return;
    }
    len = (size_t)(e - s);
    if (size < 2 || len > size - 2) {
        parse_fail(p, p->line, "line too long: at most %zu characters before a comment",
                   size < 2 ? 0 : size - 2);
        return;
    }
    memcpy(buf, s, len);
    memcpy(buf + len, "\n", 2);
}

/* inih's fgets-like reader: one line of P's text at a time, until an error. */
static char *reader_cb(char *buf, int size, void *user)
{
    struct parse *p = user;
    const char *start = p->pos, *nl;

    if (!parse_going(p) || p->pos >= p->end || size <= 0)
        return NULL;
    nl = memchr(start, '\n', (size_t)(p->end - start));
    p->pos = nl ? nl + 1 : p->end;
    p->line++;
    line_lex(p, start, nl ? nl : p->end, buf, (size_t)size);
    return buf;
}

/* A key that is not in this section: say where it belongs, if anywhere. */
static void unknown_key_fail(struct parse *p, const char *name)
{
    static const enum section all[] = {SEC_BROKER, SEC_LISTENER, SEC_HTTP};
    enum section other = SEC_INVALID;

    for (size_t i = 0; i < ARRAY_SIZE(all) && other == SEC_INVALID; i++)
        if (all[i] != p->sec && key_find(all[i], name))
            other = all[i];
    if (other != SEC_INVALID)
        parse_fail(p, p->line, "unknown key '%s' in [%s]: it belongs in [%s%s]", name,
                   section_name(p->sec), section_name(other), other == SEC_LISTENER ? " NAME" : "");
    else
        parse_fail(p, p->line, "unknown key '%.64s' in [%s]", name, section_name(p->sec));
}

/* Applies one "name = value" to the section the reader is in (see the top). */
static int handler_cb(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    const struct key_def *k;
    char why[160];

    (void)section; /* always "": the reader keeps headers from inih */
    if (p->sec == SEC_INVALID || !parse_going(p))
        return 0;
    if (name[0] == '\0') {
        parse_fail(p, p->line, "syntax error: missing key before '='");
        return 0;
    }
    if (p->sec == SEC_NONE) {
        parse_fail(p, p->line,
                   "key '%.64s' is outside any section: put it under [broker] or "
                   "[listener NAME]",
                   name);
        return 0;
    }
    k = key_find(p->sec, name);
    if (k == NULL) {
        unknown_key_fail(p, name);
        return 0;
    }
    if (p->key_line[k - keys]) {
        parse_fail(p, p->line, "duplicate key '%s' in [%s] (first at line %d)", name,
                   section_name(p->sec), p->key_line[k - keys]);
        return 0;
    }
    p->key_line[k - keys] = p->line;
    if (value[0] == '\0') {
        parse_fail(p, p->line, "missing value for '%s'", name);
        return 0;
    }
    if (k->set(p, k, value, why, sizeof(why)) < 0) {
        parse_fail(p, p->line, "bad %s '%.48s%s': %s", name, value, strlen(value) > 48 ? "..." : "",
                   why);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------- validation ---- */

/* The listener of a file that has none: [listener default], 127.0.0.1:7400. */
static void listener_add_default(struct config *conf)
{
    struct config_listener *l =
        listener_add(conf, DEFAULT_LISTENER_NAME, strlen(DEFAULT_LISTENER_NAME), 0);
    char why[128];

    if (bind_parse(DEFAULT_LISTENER_BIND, l, why, sizeof(why)) < 0)
        abort(); /* a constant that parses */
}

/*
 * max_payload above max_outbound would make every message that large a
 * slow-consumer event for each subscriber, however fast it reads.  Reported
 * at the line of whichever of the two the file sets (max_payload first).
 */
static void validate_payload_outbound(struct parse *p)
{
    const struct config *conf = p->conf;
    int payload_line = p->broker_key_line[key_find(SEC_BROKER, "max_payload") - keys];
    int outbound_line = p->broker_key_line[key_find(SEC_BROKER, "max_outbound") - keys];

    if ((uint64_t)conf->max_payload <= conf->max_outbound)
        return;
    parse_fail(p, payload_line ? payload_line : outbound_line,
               "max_payload %" PRIu32 " is larger than max_outbound %" PRIu64
               ": every message that large would trip the slow-consumer rule; "
               "lower max_payload or raise max_outbound",
               conf->max_payload, conf->max_outbound);
}

/* Checks what spans sections; adds the default listener to a file without one. */
static void config_validate(struct parse *p)
{
    struct config *conf = p->conf;

    validate_payload_outbound(p);
    if (conf->n_listeners == 0)
        listener_add_default(conf);
    for (size_t j = 1; j < conf->n_listeners && parse_going(p); j++) {
        const struct config_listener *b = &conf->listeners[j];
        for (size_t i = 0; i < j && parse_going(p); i++) {
            const struct config_listener *a = &conf->listeners[i];
            if (a->bind == NULL || b->bind == NULL) /* failed already (collecting) */
                continue;
            if (strcmp(a->name, b->name) == 0)
                parse_fail(p, b->line, "duplicate listener '%s' (first at line %d)", b->name,
                           a->line);
            else if (listener_addr_clash(a, b))
                parse_fail(p, b->line, "listener '%s' binds %s, as listener '%s' does (line %d)",
                           b->name, b->bind, a->name, a->line);
        }
    }
}

/* ------------------------------------------------------ the public API ---- */

/* The [broker] defaults, no listeners. */
static void config_defaults_fill(struct config *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->refs = 1;
    conf->io_backend = CONFIG_IO_AUTO;
    conf->log_level = LOG_LEVEL_INFO;
    conf->max_payload = (uint32_t)MIB;
    conf->max_connections = 10000;
    conf->max_subscriptions = 1000000;
    conf->max_subscriptions_per_connection = 10000;
    conf->max_outbound = 64 * MIB;
    conf->slow_consumer = CONFIG_SLOW_DISCONNECT;
    conf->max_retained = 64 * MIB;
    conf->idle_timeout_ms = (uint32_t)(5 * MIN_MS);
    conf->drain_timeout_ms = (uint32_t)(5 * SEC_MS);
    conf->stats_interval_ms = (uint32_t)(10 * SEC_MS);
    conf->http.max_clients = 16;
    conf->http.timeout_ms = (uint32_t)(10 * SEC_MS);
    conf->http.header_timeout_ms = (uint32_t)(10 * SEC_MS);
    conf->http.max_clients_per_address = 4;
}

struct config *config_new_defaults(void)
{
    struct config *conf = xmalloc(sizeof(*conf));

    config_defaults_fill(conf);
    listener_add_default(conf);
    return conf;
}

struct config *config_ref(struct config *conf)
{
    conf->refs++;
    return conf;
}

void config_stream_release(struct config_stream *cs)
{
    for (size_t i = 0; i < cs->n_patterns; i++)
        free(cs->patterns[i]);
    free(cs->patterns);
    free(cs->name);
    memset(cs, 0, sizeof(*cs));
}

void config_stream_copy(struct config_stream *dst, const struct config_stream *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->patterns = xcalloc(src->n_patterns ? src->n_patterns : 1, sizeof(*dst->patterns));
    for (size_t i = 0; i < src->n_patterns; i++)
        dst->patterns[i] = xstrdup(src->patterns[i]);
}

void config_unref(struct config *conf)
{
    if (conf == NULL || --conf->refs > 0)
        return;
    for (size_t i = 0; i < conf->n_streams; i++)
        config_stream_release(&conf->streams[i]);
    free(conf->streams);
    free(conf->store.dir);
    for (size_t i = 0; i < conf->n_listeners; i++)
        listener_release(&conf->listeners[i]);
    free(conf->listeners);
    free(conf->http.bind);
    free(conf->http.host);
    free(conf->path);
    free(conf);
}

static void error_begin(struct config_error *err, const char *name)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->file, sizeof(err->file), "%s", name);
}

/* Sorts the N errors at ERRS by line, keeping the order of those on one line; returns N. */
static size_t errors_sort(struct config_error *errs, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct config_error e = errs[i];
        size_t j = i;
        for (; j > 0 && errs[j - 1].line > e.line; j--)
            errs[j] = errs[j - 1];
        errs[j] = e;
    }
    return n;
}

/* The one path: LEN bytes of TEXT, named NAME, into a new validated config. */
static int config_parse_text(const char *text, size_t len, const char *name, struct config **out,
                             struct config_error *err, struct config_error *errs, size_t max_errs,
                             size_t *n_errs)
{
    struct parse p = {
        .err = err, .pos = text, .end = text + len, .errs = errs, .max_errs = max_errs};
    int rc;

    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        p.pos += 3; /* a UTF-8 byte order mark */
    p.conf = xmalloc(sizeof(*p.conf));
    config_defaults_fill(p.conf);
    p.conf->path = xstrdup(name);

    rc = ini_parse_stream(reader_cb, &p, handler_cb, &p);
    if (parse_going(&p))
        section_finish(&p);
    if (rc > 0 && errs != NULL) {
        /* Collecting: inih's line is one our handler failed (recorded) or a
         * syntax error line_lex already recorded.  Nothing new. */
    } else if (rc > 0 && (!p.failed || rc < err->line)) {
        error_set(err, rc, SYNTAX_ERROR);
        p.failed = true;
    } else if (rc < 0 && parse_going(&p)) {
        parse_fail(&p, 0, "inih failed (%d)", rc);
    }
    if (parse_going(&p))
        config_validate(&p);
    if (errs != NULL)
        *n_errs = errors_sort(errs, p.n_errs);
    if (p.failed) {
        config_unref(p.conf);
        return -1;
    }
    *out = p.conf;
    return 0;
}

int config_load_string(const char *text, const char *name, struct config **out,
                       struct config_error *err)
{
    struct config_error scratch;

    if (err == NULL)
        err = &scratch;
    if (name == NULL)
        name = "<string>";
    error_begin(err, name);
    return config_parse_text(text, strlen(text), name, out, err, NULL, 0, NULL);
}

/*
 * Opens PATH for reading and checks that it is a regular file: 0 and *FD, or
 * -1 with ERR set.  The open is non-blocking because opening a FIFO for
 * reading blocks until a writer comes, and pigeond reads this file on its
 * event loop at SIGHUP; only then does fstat tell what PATH is.  Anything
 * but a regular file is refused: a FIFO or a terminal could block each read
 * or never end, and a device (/dev/zero) could be endless.  A regular file
 * never blocks a read, and is at most CONFIG_FILE_MAX bytes.
 */
static int file_open_regular(const char *path, int *fd, struct config_error *err)
{
    struct stat st;

    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) {
        error_set(err, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (fstat(*fd, &st) < 0)
        error_set(err, 0, "cannot read: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode)) /* what read() would say: names what it is */
        error_set(err, 0, "cannot read: %s", strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        error_set(err, 0, "not a regular file");
    else if (st.st_size > (off_t)CONFIG_FILE_MAX)
        error_set(err, 0, "file too large: a config file is at most 1 MiB");
    else
        return 0;
    close(*fd);
    return -1;
}

/*
 * Reads the regular file FD whole into *BUF (owned by the caller), at most
 * CONFIG_FILE_MAX + 1 bytes, so a file that grew since fstat is still
 * caught as too large.
 */
static int file_slurp(int fd, char **buf, size_t *len)
{
    size_t cap = 4096;
    ssize_t n;

    *buf = xmalloc(cap);
    *len = 0;
    while (*len <= CONFIG_FILE_MAX) {
        if (*len == cap) {
            cap *= 2;
            *buf = xrealloc(*buf, cap);
        }
        n = read(fd, *buf + *len, cap - *len);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0)
            *len += (size_t)n;
    }
    return 0;
}

/* The line a byte offset is on. */
static int line_of(const char *text, size_t off)
{
    int line = 1;

    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

/* config_load_file, collecting every error into ERRS when it is not NULL. */
static int config_load_file_errs(const char *path, struct config **out, struct config_error *err,
                                 struct config_error *errs, size_t max_errs, size_t *n_errs)
{
    const char *nul;
    char *text = NULL;
    size_t len = 0;
    int fd, rc = -1;

    error_begin(err, path);
    if (file_open_regular(path, &fd, err) < 0)
        return -1;
    if (file_slurp(fd, &text, &len) < 0)
        error_set(err, 0, "cannot read: %s", strerror(errno));
    else if (len > CONFIG_FILE_MAX)
        error_set(err, 0, "file too large: a config file is at most 1 MiB");
    else if ((nul = memchr(text, '\0', len)) != NULL)
        error_set(err, line_of(text, (size_t)(nul - text)), "NUL byte in the file");
    else
        rc = config_parse_text(text, len, path, out, err, errs, max_errs, n_errs);
    free(text);
    close(fd);
    return rc;
}

int config_load_file(const char *path, struct config **out, struct config_error *err)
{
    struct config_error scratch;

    return config_load_file_errs(path, out, err != NULL ? err : &scratch, NULL, 0, NULL);
}

int config_check_file(const char *path, struct config_error *errs, size_t max, size_t *n)
{
    struct config *conf = NULL;
    struct config_error first;

    *n = 0;
    if (config_load_file_errs(path, &conf, &first, errs, max, n) == 0) {
        config_unref(conf);
        return 0;
    }
    if (*n == 0 && max > 0) { /* the file could not be read: one error, not tied to a line */
        errs[0] = first;
        *n = 1;
    }
    return -1;
}

/* ---------------------------------------- the command line's listeners ---- */

#define ARG_LISTENER_PREFIX "cmdline"

/* A deep copy of L into DST. */
static void listener_copy(struct config_listener *dst, const struct config_listener *l)
{
    *dst = *l;
    dst->name = xstrdup(l->name);
    dst->bind = l->bind != NULL ? xstrdup(l->bind) : NULL;
    dst->host = l->host != NULL ? xstrdup(l->host) : NULL;
    dst->path = l->path != NULL ? xstrdup(l->path) : NULL;
}

static void listeners_free(struct config_listener *ls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        listener_release(&ls[i]);
    free(ls);
}

int config_set_listeners(struct config *conf, const char *const *binds, size_t n, char *why,
                         size_t why_len)
{
    struct config tmp = {0};
    char name[32], reason[160];

    for (size_t i = 0; i < n; i++) {
        int len = snprintf(name, sizeof(name), ARG_LISTENER_PREFIX "%zu", i + 1);
        struct config_listener *l = listener_add(&tmp, name, (size_t)len, 0);
        if (bind_parse(binds[i], l, reason, sizeof(reason)) < 0) {
            snprintf(why, why_len, "'%.64s': %s", binds[i], reason);
            listeners_free(tmp.listeners, tmp.n_listeners);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (listener_addr_clash(&tmp.listeners[j], l)) {
                snprintf(why, why_len, "'%.64s' is given twice", binds[i]);
                listeners_free(tmp.listeners, tmp.n_listeners);
                return -1;
            }
        }
    }
    listeners_free(conf->listeners, conf->n_listeners);
    conf->listeners = tmp.listeners;
    conf->n_listeners = tmp.n_listeners;
    conf->listeners_from_args = true;
    return 0;
}

void config_keep_arg_listeners(struct config *next, const struct config *from)
{
    if (!from->listeners_from_args)
        return;
    listeners_free(next->listeners, next->n_listeners);
    next->listeners = xcalloc(from->n_listeners, sizeof(*next->listeners));
    for (size_t i = 0; i < from->n_listeners; i++)
        listener_copy(&next->listeners[i], &from->listeners[i]);
    next->n_listeners = from->n_listeners;
    next->listeners_from_args = true;
}

/* ------------------------------------------------ comparing two configs ---- */

/* K's value in CONF as the file writes it: 0, or -1 for a setter not known here. */
static int key_format(const struct config *conf, const struct key_def *k, char *buf, size_t len)
{
    const char *field = (const char *)conf + k->offset;
    uint32_t u32;
    uint64_t u64;

    buf[0] = '\0';
    if (k->sec == SEC_HTTP && !conf->http.enabled)
        return 0;
    memcpy(&u32, field, sizeof(u32));
    if (k->set == set_size32) {
        size_format(buf, len, u32);
    } else if (k->set == set_size64 || k->set == set_max_memory) {
        memcpy(&u64, field, sizeof(u64));
        if (k->set == set_max_memory && u64 == 0)
            snprintf(buf, len, "auto");
        else
            size_format(buf, len, u64);
    } else if (k->set == set_count32) {
        snprintf(buf, len, "%" PRIu32, u32);
    } else if (k->set == set_duration32 || k->set == set_stats_interval) {
        duration_format(buf, len, u32);
    } else if (k->set == set_io_backend) {
        snprintf(buf, len, "%s", config_io_backend_name(conf->io_backend));
    } else if (k->set == set_log_level) {
        snprintf(buf, len, "%s", log_level_name(conf->log_level));
    } else if (k->set == set_slow_consumer) {
        snprintf(buf, len, "%s", config_slow_policy_name(conf->slow_consumer));
    } else if (k->set == set_http_bind) {
        snprintf(buf, len, "%s", conf->http.bind != NULL ? conf->http.bind : "");
    } else {
        return -1;
    }
    return 0;
}

int config_value_format(const struct config *conf, const char *section, const char *key, char *buf,
                        size_t len)
{
    enum section sec = strcmp(section, "broker") == 0 ? SEC_BROKER
                       : strcmp(section, "http") == 0 ? SEC_HTTP
                                                      : SEC_INVALID;
    const struct key_def *k = sec != SEC_INVALID ? key_find(sec, key) : NULL;

    if (k == NULL) {
        buf[0] = '\0';
        return -1;
    }
    return key_format(conf, k, buf, len);
}

struct diff {
    config_diff_fn fn;
    void *arg;
    size_t n;
};

static void diff_report(struct diff *d, const char *section, const char *key, const char *a,
                        const char *b)
{
    d->fn(d->arg, section, key, a, b);
    d->n++;
}

/* The keys of SEC that differ between A and B. */
static void diff_keys(struct diff *d, enum section sec, const struct config *a,
                      const struct config *b)
{
    char va[128], vb[128];

    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (keys[i].sec != sec)
            continue;
        key_format(a, &keys[i], va, sizeof(va));
        key_format(b, &keys[i], vb, sizeof(vb));
        if (strcmp(va, vb) != 0)
            diff_report(d, section_name(sec), keys[i].name, va, vb);
    }
}

static const struct config_listener *listener_by_name(const struct config *conf, const char *name)
{
    for (size_t i = 0; i < conf->n_listeners; i++)
        if (strcmp(conf->listeners[i].name, name) == 0)
            return &conf->listeners[i];
    return NULL;
}

/* A listener's mode as the file writes it; "" for TCP, which has none. */
static void mode_format(const struct config_listener *l, char *buf, size_t len)
{
    if (l->kind == CONFIG_LISTEN_UNIX)
        snprintf(buf, len, "%04o", l->mode);
    else
        buf[0] = '\0';
}

/* Listeners by name: removed ones, changed ones (in OLD's order), then added ones. */
static void diff_listeners(struct diff *d, const struct config *a, const struct config *b)
{
    char section[16 + LISTENER_NAME_MAX], ma[8], mb[8];

    for (size_t i = 0; i < a->n_listeners; i++) {
        const struct config_listener *la = &a->listeners[i];
        const struct config_listener *lb = listener_by_name(b, la->name);
        snprintf(section, sizeof(section), "listener %s", la->name);
        if (lb == NULL) {
            diff_report(d, section, "bind", la->bind, NULL);
            continue;
        }
        if (strcmp(la->bind, lb->bind) != 0)
            diff_report(d, section, "bind", la->bind, lb->bind);
        mode_format(la, ma, sizeof(ma));
        mode_format(lb, mb, sizeof(mb));
        if (strcmp(ma, mb) != 0)
            diff_report(d, section, "mode", ma, mb);
    }
    for (size_t i = 0; i < b->n_listeners; i++) {
        if (listener_by_name(a, b->listeners[i].name) != NULL)
            continue;
        snprintf(section, sizeof(section), "listener %s", b->listeners[i].name);
        diff_report(d, section, "bind", NULL, b->listeners[i].bind);
    }
}

size_t config_diff(const struct config *old, const struct config *new, config_diff_fn fn, void *arg)
{
    struct diff d = {.fn = fn, .arg = arg};

    diff_keys(&d, SEC_BROKER, old, new);
    if (old->http.enabled && new->http.enabled)
        diff_keys(&d, SEC_HTTP, old, new);
    else if (old->http.enabled != new->http.enabled)
        diff_report(&d, "http", "bind", old->http.enabled ? old->http.bind : NULL,
                    new->http.enabled ? new->http.bind : NULL);
    diff_listeners(&d, old, new);
    return d.n;
}
