/*
 * config.c - pigeond's settings: defaults, the INI file, validation.
 *
 * One path serves start-up, `pigeond -t` and SIGHUP: the text is read whole,
 * parsed into a fresh struct config that starts from the built-in defaults,
 * validated, and handed out only when nothing failed.  A config that fails is
 * freed here; the caller's running snapshot is never touched.
 *
 * Two kinds of table say all the file can hold; no other code here names a
 * section or a key.  sections[] has a row per kind of section: one that
 * comes once ([broker]; [http], optional: off until its header) is a struct
 * inside struct config; a named one ([listener NAME]) repeats, one element
 * of an array in struct config per NAME.  Each kind has a key table
 * (broker_keys[], ...): a key's name, value type, field offset, default (as
 * the file writes it) and, as the type needs, range or names.  One handler
 * parses, one formatter writes back and one differ compares every key,
 * through its type (struct key_type).  A rule of one key is its type's
 * (stats_interval's floor, max_memory's "auto", [http] bind's TCP only); a
 * rule across one section's keys is the section's finish hook; a rule
 * across sections is in config_validate().
 *
 * To add a key: its field in its section's struct (config.h), a row with
 * its default in the section's key table, and a line in conf/pigeond.conf,
 * docs/configuration.md and man/pigeond.conf.5 (unit tests check all
 * three).  A new kind of value is one more struct key_type.
 *
 * To add a section: its struct in config.h (for one that comes once, a
 * member of struct config, with `bool enabled; int line;` if optional; for
 * a named one, an array and a size_t count in struct config, of elements
 * with `char *name; int line;`), its key table, its id in enum section_id
 * and its row in sections[] (OPTIONAL() and NAMED() fill in the offsets).
 * Its hooks, each optional: finish checks across its keys as it ends,
 * release frees what its struct owns, clash refuses two elements of a
 * named kind that cannot both be.  The rest follows from the tables:
 * headers, names, duplicates, required keys, "it belongs in" hints,
 * defaults, freeing, config_value_format and config_diff.
 *
 * The file is read, and its lines handed to inih, by inifile.c, which the
 * users file shares: only a regular file (opened non-blocking, checked
 * with fstat, so a FIFO given as the config cannot hang start-up or stall
 * the loop at SIGHUP), every error with its exact line, overlong lines,
 * indentation, '#' comments and "key: value" dealt with before inih sees
 * them (inifile.h says why each).  Here are the sections and keys it reports
 * (section_cb, key_cb, end_cb).  Errors are "first wins" by line.
 *
 * Also here: the command line's listeners (pigeond -p/-b), which replace
 * the file's and survive reloads.
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

#include "addr.h"
#include "inifile.h"
#include "topic.h"
#include "units.h"
#include "xalloc.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The struct TYPE whose MEMBER is at PTR. */
#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define KIB UNITS_KIB
#define MIB UNITS_MIB
#define GIB UNITS_GIB

#define SEC_MS  UNITS_SEC_MS
#define HOUR_MS UNITS_HOUR_MS
#define MIN_MS  UNITS_MIN_MS

#define DEFAULT_LISTENER_NAME "default"
#define DEFAULT_LISTENER_BIND "127.0.0.1:7400"

#define CONFIG_FILE_MAX MIB /* a config file is a page or two; refuse /dev/zero */
#define NAME_MAX_LEN    64  /* of a named section's NAME */
#define KEYS_MAX        32  /* keys in one section; checked against each key table */
#define VALUE_MAX       256 /* a value as the file writes it: at most a line */

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

/* As log.c names them (log_level_name); by number. */
static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

_Static_assert(ARRAY_SIZE(level_names) == LOG_LEVEL_ERROR + 1, "a log level has no name");

const char *config_io_backend_name(enum config_io_backend b)
{
    return (size_t)b < ARRAY_SIZE(io_backend_names) ? io_backend_names[b] : "unknown";
}

const char *config_slow_policy_name(enum config_slow_policy p)
{
    return (size_t)p < ARRAY_SIZE(slow_policy_names) ? slow_policy_names[p] : "unknown";
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

/* ------------------------------------------------------------ units ---- */

static int parse_max(const struct units_kind *k, const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (units_parse(k, s, &v) < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int config_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    return parse_max(&units_size, s, max, out);
}

int config_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
    return parse_max(&units_duration, s, max_ms, out);
}

/* ------------------------------------------------------- listeners ---- */

static void listener_release(void *obj)
{
    struct config_listener *l = obj;

    free(l->bind);
    free(l->host);
    free(l->path);
    free(l->group);
    free(l->tls_cert);
    free(l->tls_key);
    free(l->tls_ca);
}

void config_listener_release(struct config_listener *l)
{
    free(l->name);
    listener_release(l);
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
        l->mode = 0; /* no file to chmod; a mode key here fails in listener_finish() */
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

/* ------------------------------------------------------------ streams ---- */

static void stream_patterns_free(struct config_stream *cs)
{
    for (size_t i = 0; i < cs->n_patterns; i++)
        free(cs->patterns[i]);
    free(cs->patterns);
    cs->patterns = NULL;
    cs->n_patterns = 0;
}

static void stream_release(void *obj)
{
    stream_patterns_free(obj);
}

void config_stream_release(struct config_stream *cs)
{
    stream_patterns_free(cs);
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

static void store_release(void *obj)
{
    struct config_store *st = obj;

    free(st->dir);
    st->dir = NULL;
}

/*
 * True when some topic matches both patterns A and B (tokens TA[0..NA),
 * TB[0..NB)): '*' meets any one token, '>' one or more, and a wildcard in
 * the first place never meets a '$' token (topic.h's rule).
 */
static bool tokens_overlap(const struct topic_token *ta, size_t na, const struct topic_token *tb,
                           size_t nb, bool first)
{
    if (na == 0 || nb == 0)
        return na == nb;
    bool wa = ta->len == 1 && (ta->p[0] == '*' || ta->p[0] == '>');
    bool wb = tb->len == 1 && (tb->p[0] == '*' || tb->p[0] == '>');
    if (first && ((wa && !wb && tb->p[0] == '$') || (wb && !wa && ta->p[0] == '$')))
        return false;
    if ((wa && ta->p[0] == '>') || (wb && tb->p[0] == '>'))
        return true; /* the rest of the other one is at least one token */
    if (!wa && !wb && (ta->len != tb->len || memcmp(ta->p, tb->p, ta->len) != 0))
        return false;
    return tokens_overlap(ta + 1, na - 1, tb + 1, nb - 1, false);
}

bool config_patterns_overlap(const char *a, const char *b)
{
    struct topic_token ta[TOPIC_MAX_TOKENS], tb[TOPIC_MAX_TOKENS];
    size_t na = topic_tokenize(a, strlen(a), ta), nb = topic_tokenize(b, strlen(b), tb);

    return tokens_overlap(ta, na, tb, nb, true);
}

static void http_release(void *obj)
{
    struct config_http *h = obj;

    free(h->bind);
    free(h->host);
    free(h->token);
}

static void auth_release(void *obj)
{
    free(((struct config_auth *)obj)->users_file);
}

static void cluster_release(void *obj)
{
    struct config_cluster *c = obj;

    free(c->redis);
    free(c->redis_host);
    free(c->redis_path);
    free(c->redis_user);
    if (c->redis_password != NULL)
        memset(c->redis_password, 0, strlen(c->redis_password));
    free(c->redis_password);
    free(c->node);
    free(c->prefix);
}

/* ------------------------------------------------------ the key types ---- */

/* The member of type T at offset AT in OBJ: the tables hold offsets, the structs the types. */
#define MEMBER(T, obj, at) (*(T *)(void *)((char *)(obj) + (at)))

struct key_def;

/* A kind of value: how the file's text becomes a key's field, and back. */
struct key_type {
    /* Sets FIELD from VALUE (non-empty): 0, or -1 with the reason in WHY. */
    int (*parse)(const struct key_def *k, void *field, const char *value, char *why,
                 size_t why_len);
    /* FIELD's value into BUF as the file would write it. */
    void (*format)(const struct key_def *k, const void *field, char *buf, size_t len);
    const struct units_kind *units; /* numbers: their units */
    bool wide;                     /* numbers: a uint64_t field, else a uint32_t (or an enum) */
};

/* A row of a section's key table. */
struct key_def {
    const char *name;
    const struct key_type *type;
    size_t at;                /* the field's offset in the section's struct */
    uint64_t min, max;        /* numbers: the range, in the field's unit */
    const char *const *names; /* type_names: the field is the index of one */
    size_t n_names;
    bool required;       /* the section is incomplete without it */
    const char *example; /* a required key's value, for the error when it is missing */
    const char *def;     /* its default, as the file writes it; NULL: none (zero) */
};

static uint64_t number_get(const struct key_def *k, const void *field)
{
    return k->type->wide ? MEMBER(uint64_t, field, 0) : MEMBER(uint32_t, field, 0);
}

/* V fits: it is in the key's range, which fits the field. */
static void number_put(const struct key_def *k, void *field, uint64_t v)
{
    if (k->type->wide)
        MEMBER(uint64_t, field, 0) = v;
    else
        MEMBER(uint32_t, field, 0) = (uint32_t)v;
}

/* "must be [PREFIX]from K's min to K's max", in K's units. */
static void range_why(const struct key_def *k, const char *prefix, char *why, size_t why_len)
{
    char lo[32], hi[32];

    units_format(k->type->units, lo, sizeof(lo), k->min);
    units_format(k->type->units, hi, sizeof(hi), k->max);
    snprintf(why, why_len, "must be %sfrom %s to %s", prefix, lo, hi);
}

/* A number in K's units and range: sizes, counts, durations. */
static int number_parse(const struct key_def *k, void *field, const char *value, char *why,
                        size_t why_len)
{
    uint64_t v = 0;
    int rc = units_parse(k->type->units, value, &v);

    if (rc == -EINVAL) {
        snprintf(why, why_len, "%s", k->type->units->expected);
        return -1;
    }
    if (rc < 0 || v < k->min || v > k->max) {
        range_why(k, "", why, why_len);
        return -1;
    }
    number_put(k, field, v);
    return 0;
}

static void number_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    units_format(k->type->units, buf, len, number_get(k, field));
}

/* "auto" (0: budget.h works it out from the machine), or a size in K's range. */
static int size_auto_parse(const struct key_def *k, void *field, const char *value, char *why,
                           size_t why_len)
{
    if (strcmp(value, "auto") == 0) {
        number_put(k, field, 0);
        return 0;
    }
    if (number_parse(k, field, value, why, why_len) < 0) {
        str_append(why, why_len, ", or auto");
        return -1;
    }
    return 0;
}

static void size_auto_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    if (number_get(k, field) == 0)
        snprintf(buf, len, "auto");
    else
        number_format(k, field, buf, len);
}

/*
 * A duration up to K's max where 0 is off and anything else is at least K's
 * min: a shorter stats interval would publish faster than anyone reads, on
 * the broker's own loop.
 */
static int interval_parse(const struct key_def *k, void *field, const char *value, char *why,
                          size_t why_len)
{
    struct key_def or_off = *k;
    uint64_t v;

    or_off.min = 0;
    if (number_parse(&or_off, field, value, why, why_len) < 0)
        return -1;
    v = number_get(k, field);
    if (v != 0 && v < k->min) {
        range_why(k, "0 (off) or ", why, why_len);
        return -1;
    }
    return 0;
}

/* One of K's names; the field holds its index. */
static int names_parse(const struct key_def *k, void *field, const char *value, char *why,
                       size_t why_len)
{
    for (size_t i = 0; i < k->n_names; i++) {
        if (strcmp(k->names[i], value) == 0) {
            number_put(k, field, i);
            return 0;
        }
    }
    snprintf(why, why_len, "expected one of: ");
    for (size_t i = 0; i < k->n_names; i++) {
        str_append(why, why_len, i ? ", " : "");
        str_append(why, why_len, k->names[i]);
    }
    return -1;
}

static void names_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    uint64_t v = number_get(k, field);

    snprintf(buf, len, "%s", v < k->n_names ? k->names[v] : "unknown");
}

/* A string the parse owns (char *), written back as is; "" when unset. */
static void string_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    const char *s = MEMBER(const char *, field, 0);

    snprintf(buf, len, "%s", s != NULL ? s : "");
}

/* A string kept as written (a path, a name, a secret): the field is an owned char *. */
static int string_parse(const struct key_def *k, void *field, const char *value, char *why,
                        size_t why_len)
{
    char **s = &MEMBER(char *, field, 0);

    free(*s); /* set already by a duplicate section (collecting errors) */
    *s = xstrdup(value);
    return 0;
}

/* A secret kept as written, never shown: a reload logs "(changed)", not the value. */
static void secret_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    const char *s = MEMBER(const char *, field, 0);

    snprintf(buf, len, "%s", s == NULL ? "" : "(set)");
}

/* yes or no (also true/false, on/off); the field is a bool. */
static int bool_parse(const struct key_def *k, void *field, const char *value, char *why,
                      size_t why_len)
{
    static const char *const yes[] = {"yes", "true", "on"}, *const no[] = {"no", "false", "off"};

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
            MEMBER(bool, field, 0) = strcmp(value, yes[i]) == 0;
            return 0;
        }
    }
    snprintf(why, why_len, "expected yes or no");
    return -1;
}

static void bool_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    snprintf(buf, len, "%s", MEMBER(bool, field, 0) ? "yes" : "no");
}

/* A listener's bind (config_listener.bind), which sets its whole address. */
static int listen_bind_parse(const struct key_def *k, void *field, const char *value, char *why,
                             size_t why_len)
{
    return bind_parse(value, CONTAINER_OF(field, struct config_listener, bind), why, why_len);
}

/* [http] bind (config_http.bind): host:port or [v6addr]:port, since evhttp binds TCP only. */
static int http_bind_parse(const struct key_def *k, void *field, const char *value, char *why,
                           size_t why_len)
{
    struct config_http *h = CONTAINER_OF(field, struct config_http, bind);
    struct addr a;

    if (strncmp(value, "unix:", 5) == 0) {
        snprintf(why, why_len, "the HTTP endpoint listens on TCP only: host:port or [v6addr]:port");
        return -1;
    }
    if (addr_parse(value, ADDR_LISTEN, &a, why, why_len) < 0)
        return -1;
    http_release(h); /* set already by a duplicate [http] (collecting errors) */
    h->bind = xstrdup(value);
    h->host = xstrdup(a.host);
    h->port = a.port;
    return 0;
}

/* [store] dir: an absolute path, kept as written (config_store.dir). */
static int path_parse(const struct key_def *k, void *field, const char *value, char *why,
                      size_t why_len)
{
    char **dir = field;

    if (value[0] != '/') {
        snprintf(why, why_len, "expected an absolute path, such as /var/lib/pigeon");
        return -1;
    }
    free(*dir); /* set already by a duplicate [store] (collecting errors) */
    *dir = xstrdup(value);
    return 0;
}

/* [stream NAME] patterns: a comma-separated list of patterns (config_stream.patterns). */
static int patterns_parse(const struct key_def *k, void *field, const char *value, char *why,
                          size_t why_len)
{
    struct config_stream *cs = CONTAINER_OF(field, struct config_stream, patterns);
    struct config_stream got = {0};
    const char *p = value;

    while (*p != '\0') {
        const char *comma = strchr(p, ','), *end = comma != NULL ? comma : p + strlen(p);
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *e = end;
        while (e > p && isspace((unsigned char)e[-1]))
            e--;
        enum topic_error te = topic_check(p, (size_t)(e - p), TOPIC_PATTERN);
        if (te != TOPIC_OK) {
            snprintf(why, why_len, "pattern '%.*s': %s", (int)(e - p > 64 ? 64 : e - p), p,
                     topic_strerror(te));
            stream_patterns_free(&got);
            return -1;
        }
        got.patterns = xrealloc(got.patterns, (got.n_patterns + 1) * sizeof(*got.patterns));
        got.patterns[got.n_patterns++] = xstrndup(p, (size_t)(e - p));
        p = comma != NULL ? comma + 1 : end;
    }
    if (got.n_patterns == 0) {
        snprintf(why, why_len, "expected one or more patterns, separated by commas");
        return -1;
    }
    stream_patterns_free(cs);
    cs->patterns = got.patterns;
    cs->n_patterns = got.n_patterns;
    return 0;
}

static void patterns_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    const struct config_stream *cs = CONTAINER_OF(field, struct config_stream, patterns);

    buf[0] = '\0';
    for (size_t i = 0; i < cs->n_patterns; i++) {
        str_append(buf, len, i ? ", " : "");
        str_append(buf, len, cs->patterns[i]);
    }
}

/* Octal permission bits, 0 to 0777, as chmod takes them (config_listener.mode). */
static int mode_parse(const struct key_def *k, void *field, const char *value, char *why,
                      size_t why_len)
{
    size_t len = strlen(value);
    unsigned long v;

    if (len > 4 || strspn(value, "01234567") != len || (v = strtoul(value, NULL, 8)) > 0777) {
        snprintf(why, why_len, "expected octal permission bits from 0 to 0777, such as 0660");
        return -1;
    }
    number_put(k, field, v);
    return 0;
}

/* "0660"; "" for a TCP listener, which has no mode. */
static void mode_format(const struct key_def *k, const void *field, char *buf, size_t len)
{
    if (CONTAINER_OF(field, struct config_listener, mode)->kind == CONFIG_LISTEN_UNIX)
        snprintf(buf, len, "%04o", (unsigned)number_get(k, field));
    else
        buf[0] = '\0';
}

/* True when the address V (addr.h's forms) names a port: "host" and "[v6]" do not. */
static bool addr_has_port(const char *v)
{
    if (v[0] == '[')
        return strstr(v, "]:") != NULL;
    return strchr(v, ':') != NULL || strspn(v, "0123456789") == strlen(v);
}

/* [cluster] redis (config_cluster.redis): host:port (6379 if none), [v6]:port, or unix:/path. */
static int redis_addr_parse(const struct key_def *k, void *field, const char *value, char *why,
                            size_t why_len)
{
    struct config_cluster *c = CONTAINER_OF(field, struct config_cluster, redis);
    struct addr a;

    if (addr_parse(value, ADDR_CONNECT, &a, why, why_len) < 0)
        return -1;
    free(c->redis); /* set already by a duplicate key (collecting errors) */
    free(c->redis_host);
    free(c->redis_path);
    c->redis_host = c->redis_path = NULL;
    c->redis = xstrdup(value);
    if (a.kind == ADDR_UNIX) {
        c->redis_path = xstrdup(a.path);
    } else {
        c->redis_host = xstrdup(a.host);
        c->redis_port = addr_has_port(value) ? a.port : 6379;
    }
    return 0;
}

static bool name_ok(const char *s, size_t len);

/* A name that goes into Redis keys and channels ([cluster] node, prefix): 1 to 64 of A-Z a-z 0-9 _
 * . - */
static int name_parse(const struct key_def *k, void *field, const char *value, char *why,
                      size_t why_len)
{
    if (!name_ok(value, strlen(value))) {
        snprintf(why, why_len, "use 1 to 64 of A-Z a-z 0-9 _ . -");
        return -1;
    }
    return string_parse(k, field, value, why, why_len);
}

/* A word: 1 to 128 printable bytes, no blank ([cluster] redis_user). */
static int word_parse(const struct key_def *k, void *field, const char *value, char *why,
                      size_t why_len)
{
    size_t len = strlen(value);

    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)value[i] <= 0x20 || value[i] == 0x7f) {
            snprintf(why, why_len, "expected a word: no blank or control character");
            return -1;
        }
    }
    if (len > 128) {
        snprintf(why, why_len, "at most 128 bytes");
        return -1;
    }
    return string_parse(k, field, value, why, why_len);
}

static const struct key_type type_size32 = {number_parse, number_format, &units_size, false};
static const struct key_type type_size64 = {number_parse, number_format, &units_size, true};
static const struct key_type type_size_auto = {size_auto_parse, size_auto_format, &units_size,
                                               true};
static const struct key_type type_count32 = {number_parse, number_format, &units_count, false};
static const struct key_type type_duration = {number_parse, number_format, &units_duration, false};
static const struct key_type type_interval = {interval_parse, number_format, &units_duration,
                                              false};
static const struct key_type type_names = {names_parse, names_format, NULL, false};
static const struct key_type type_listen_bind = {listen_bind_parse, string_format, NULL, false};
static const struct key_type type_http_bind = {http_bind_parse, string_format, NULL, false};
static const struct key_type type_mode = {mode_parse, mode_format, NULL, false};
static const struct key_type type_string = {string_parse, string_format, NULL, false};
static const struct key_type type_secret = {string_parse, secret_format, NULL, false};
static const struct key_type type_bool = {bool_parse, bool_format, NULL, false};
static const struct key_type type_redis_addr = {redis_addr_parse, string_format, NULL, false};
static const struct key_type type_name = {name_parse, string_format, NULL, false};
static const struct key_type type_word = {word_parse, string_format, NULL, false};
static const struct key_type type_count64 = {number_parse, number_format, &units_count, true};
static const struct key_type type_duration64 = {number_parse, number_format, &units_duration, true};
static const struct key_type type_path = {path_parse, string_format, NULL, false};
static const struct key_type type_patterns = {patterns_parse, patterns_format, NULL, false};

/* Enums and modes go through uint32_t, as their field's type (unsigned int) is. */
_Static_assert(sizeof(enum config_io_backend) == 4 && sizeof(enum config_slow_policy) == 4 &&
                   sizeof(enum log_level) == 4 && sizeof(unsigned) == 4 &&
                   sizeof(enum config_discard) == 4,
               "type_names and type_mode need 4-byte fields");

/* ------------------------------------------------------ the key tables ---- */

#define KEY(n, t, s, f) .name = (n), .type = &(t), .at = offsetof(struct s, f)
#define NAMES(a)        .names = (a), .n_names = ARRAY_SIZE(a)
#define RANGE(lo, hi)   .min = (lo), .max = (hi)
#define KEYS_FIT(t)     _Static_assert(ARRAY_SIZE(t) <= KEYS_MAX, #t ": raise KEYS_MAX")

/* [broker]: in struct config itself. */
static const struct key_def broker_keys[] = {
    {KEY("io_backend", type_names, config, io_backend), NAMES(io_backend_names), .def = "auto"},
    {KEY("log_level", type_names, config, log_level), NAMES(level_names), .def = "info"},
    {KEY("max_payload", type_size32, config, max_payload), RANGE(KIB, GIB), .def = "1mb"},
    {KEY("max_connections", type_count32, config, max_connections), RANGE(1, 1000000),
     .def = "10000"},
    {KEY("max_subscriptions", type_count32, config, max_subscriptions), RANGE(1, 100000000),
     .def = "1000000"},
    {KEY("max_subscriptions_per_connection", type_count32, config,
         max_subscriptions_per_connection),
     RANGE(1, 10000000), .def = "10000"},
    {KEY("max_outbound", type_size64, config, max_outbound), RANGE(KIB, 1024 * GIB), .def = "64mb"},
    {KEY("slow_consumer", type_names, config, slow_consumer), NAMES(slow_policy_names),
     .def = "disconnect"},
    {KEY("max_retained", type_size64, config, max_retained), RANGE(0, 1024 * GIB), .def = "64mb"},
    {KEY("max_memory", type_size_auto, config, max_memory), RANGE(16 * MIB, 16 * 1024 * GIB),
     .def = "auto"},
    {KEY("idle_timeout", type_duration, config, idle_timeout_ms), RANGE(0, 24 * HOUR_MS),
     .def = "5m"},
    {KEY("drain_timeout", type_duration, config, drain_timeout_ms), RANGE(0, HOUR_MS), .def = "5s"},
    {KEY("stats_interval", type_interval, config, stats_interval_ms), RANGE(100, HOUR_MS),
     .def = "10s"},
};
KEYS_FIT(broker_keys);

/* [listener NAME]: struct config_listener. */
static const char *const listener_auth_names[] = {
    [CONFIG_AUTH_REQUIRED] = "required",
    [CONFIG_AUTH_NONE] = "none",
};

static const struct key_def listener_keys[] = {
    {KEY("bind", type_listen_bind, config_listener, bind), .required = true},
    {KEY("mode", type_mode, config_listener, mode), .def = "0660"},
    {KEY("group", type_string, config_listener, group)},
    {KEY("tls_cert", type_string, config_listener, tls_cert)},
    {KEY("tls_key", type_string, config_listener, tls_key)},
    {KEY("tls_ca", type_string, config_listener, tls_ca)},
    {KEY("auth", type_names, config_listener, auth), NAMES(listener_auth_names),
     .def = "required"},
};
KEYS_FIT(listener_keys);

/* [http]: struct config_http. */
static const struct key_def http_keys[] = {
    {KEY("bind", type_http_bind, config_http, bind), .required = true, .example = "127.0.0.1:7480"},
    {KEY("max_clients", type_count32, config_http, max_clients), RANGE(1, 10000), .def = "16"},
    {KEY("timeout", type_duration, config_http, timeout_ms), RANGE(SEC_MS, HOUR_MS), .def = "10s"},
    {KEY("header_timeout", type_duration, config_http, header_timeout_ms), RANGE(SEC_MS, HOUR_MS),
     .def = "10s"},
    {KEY("max_clients_per_address", type_count32, config_http, max_clients_per_address),
     RANGE(1, 10000), .def = "4"},
    {KEY("token", type_secret, config_http, token)},
};
KEYS_FIT(http_keys);

/* [auth]: struct config_auth. */
static const struct key_def auth_keys[] = {
    {KEY("users_file", type_string, config_auth, users_file)},
    {KEY("allow_anonymous", type_bool, config_auth, allow_anonymous), .def = "no"},
};
KEYS_FIT(auth_keys);

/* [cluster]: struct config_cluster (docs/scale-out.md). */
static const struct key_def cluster_keys[] = {
    {KEY("redis", type_redis_addr, config_cluster, redis)},
    {KEY("node", type_name, config_cluster, node)},
    {KEY("redis_user", type_word, config_cluster, redis_user)},
    {KEY("redis_password", type_secret, config_cluster, redis_password)},
    {KEY("prefix", type_name, config_cluster, prefix), .def = "pigeon"},
    {KEY("heartbeat", type_duration, config_cluster, heartbeat_ms), RANGE(100, MIN_MS),
     .def = "1s"},
    {KEY("node_timeout", type_duration, config_cluster, node_timeout_ms), RANGE(500, 10 * MIN_MS),
     .def = "5s"},
    {KEY("max_pending", type_size64, config_cluster, max_pending), RANGE(MIB, 16 * GIB),
     .def = "16mb"},
};
KEYS_FIT(cluster_keys);
static const char *const discard_names[] = {[CONFIG_DISCARD_OLD] = "old",
                                            [CONFIG_DISCARD_NEW] = "new"};

/* [store]: struct config_store.  dir falls back on $STATE_DIRECTORY (store_finish). */
static const struct key_def store_keys[] = {
    {KEY("dir", type_path, config_store, dir)},
    {KEY("fsync", type_bool, config_store, fsync), .def = "yes"},
    {KEY("segment_size", type_size64, config_store, segment_size), RANGE(MIB, 4 * GIB),
     .def = "64mb"},
};
KEYS_FIT(store_keys);

/* [stream NAME]: struct config_stream. */
static const struct key_def stream_keys[] = {
    {KEY("patterns", type_patterns, config_stream, patterns), .required = true},
    {KEY("max_messages", type_count64, config_stream, max_messages), RANGE(0, UINT64_MAX / 2),
     .def = "0"},
    {KEY("max_bytes", type_size64, config_stream, max_bytes), RANGE(0, 1024 * 1024 * GIB),
     .def = "0"},
    {KEY("max_age", type_duration64, config_stream, max_age_ms), RANGE(0, 100 * 365 * UNITS_DAY_MS),
     .def = "0"},
    {KEY("discard", type_names, config_stream, discard), NAMES(discard_names), .def = "old"},
    {KEY("duplicate_window", type_duration, config_stream, duplicate_window_ms),
     RANGE(0, UNITS_DAY_MS), .def = "2m"},
};
KEYS_FIT(stream_keys);

/* ------------------------------------------------------ parse state ---- */

/* The kinds of section: sections[]'s rows, in the order of messages and config_key_at. */
enum section_id {
    SEC_BROKER,
    SEC_LISTENER,
    SEC_HTTP,
    SEC_AUTH,
    SEC_CLUSTER,
    SEC_STORE,
    SEC_STREAM,
    SEC_COUNT
};

struct parse {
    struct inifile f;                  /* the reader: line, errors (inifile.h) */
    struct config *conf;               /* being built; freed by the caller on failure */
    bool header_seen;                  /* a key is no longer outside any section */
    const struct section_def *sec;     /* the section that line is in; NULL after a bad header */
    void *obj;                         /* its struct: in conf, or the last of its array */
    int sec_line;                      /* line of its header */
    int first_line[SEC_COUNT];         /* line of each kind's last header, 0 before it */
    int key_line[SEC_COUNT][KEYS_MAX]; /* where each key of each kind's last section was set */
};

/* True while parsing goes on: no error yet, or collecting them all. */
static bool parse_going(const struct parse *p)
{
    return inifile_going(&p->f);
}

#define parse_fail(p, ...) inifile_fail(&(p)->f, __VA_ARGS__)

/* ------------------------------------------------------- the sections ---- */

/* A row of sections[]: a kind of section (see the top of the file). */
struct section_def {
    const char *name; /* as in its header: [broker], [listener NAME] */
    const struct key_def *keys;
    size_t n_keys;
    bool named;              /* [KIND NAME]: an element of an array in struct config per NAME */
    bool optional;           /* once only, and off until its header: has enabled and line */
    size_t at;               /* offset in struct config of its struct, or of its array */
    size_t count, size;      /* named: offset of the array's size_t count; element size */
    size_t name_at, line_at; /* named: char *name and int line; optional: int line */
    size_t enabled_at;       /* optional: bool enabled */
    void (*finish)(struct parse *p, void *obj); /* checks across its keys, as it ends */
    void (*release)(void *obj);                 /* frees what it owns (not a name) */
    void (*clash)(struct parse *p, const void *a, const void *b); /* named: A before B */
};

static void listener_finish(struct parse *p, void *obj);
static void listener_clash(struct parse *p, const void *a, const void *b);
static void cluster_finish(struct parse *p, void *obj);
static void store_finish(struct parse *p, void *obj);
static void stream_finish(struct parse *p, void *obj);
static void stream_clash(struct parse *p, const void *a, const void *b);

#define FIELD(s, f) offsetof(struct s, f)
#define KEYS(t)     .keys = (t), .n_keys = ARRAY_SIZE(t)
/* An optional once-only section, struct config's member M of type struct S. */
#define OPTIONAL(s, m)                                                                             \
    .optional = true, .at = FIELD(config, m), .line_at = FIELD(s, line),                           \
    .enabled_at = FIELD(s, enabled)
/* A named section: struct config's array ARR of struct S, with CNT elements. */
#define NAMED(s, arr, cnt)                                                                         \
    .named = true, .at = FIELD(config, arr), .count = FIELD(config, cnt),                          \
    .size = sizeof(struct s), .name_at = FIELD(s, name), .line_at = FIELD(s, line)

static const struct section_def sections[SEC_COUNT] = {
    [SEC_BROKER] = {.name = "broker", KEYS(broker_keys)},
    [SEC_LISTENER] = {.name = "listener",
                      KEYS(listener_keys),
                      NAMED(config_listener, listeners, n_listeners),
                      .finish = listener_finish,
                      .release = listener_release,
                      .clash = listener_clash},
    [SEC_HTTP] = {.name = "http",
                  KEYS(http_keys),
                  OPTIONAL(config_http, http),
                  .release = http_release},
    [SEC_AUTH] = {.name = "auth",
                  KEYS(auth_keys),
                  OPTIONAL(config_auth, auth),
                  .release = auth_release},
    [SEC_CLUSTER] = {.name = "cluster",
                     KEYS(cluster_keys),
                     OPTIONAL(config_cluster, cluster),
                     .finish = cluster_finish,
                     .release = cluster_release},
    [SEC_STORE] = {.name = "store",
                   KEYS(store_keys),
                   OPTIONAL(config_store, store),
                   .finish = store_finish,
                   .release = store_release},
    [SEC_STREAM] = {.name = "stream",
                    KEYS(stream_keys),
                    NAMED(config_stream, streams, n_streams),
                    .finish = stream_finish,
                    .release = stream_release,
                    .clash = stream_clash},
};

static const struct key_def *key_find(const struct section_def *sec, const char *name)
{
    for (size_t i = 0; i < sec->n_keys; i++)
        if (strcmp(sec->keys[i].name, name) == 0)
            return &sec->keys[i];
    return NULL;
}

/* The line that set KEY in the last section of kind ID, 0 if none did. */
static int key_line_of(const struct parse *p, enum section_id id, const char *key)
{
    return p->key_line[id][key_find(&sections[id], key) - sections[id].keys];
}

bool config_key_at(size_t i, const char **section, const char **key)
{
    for (size_t s = 0; s < SEC_COUNT; i -= sections[s++].n_keys) {
        if (i < sections[s].n_keys) {
            *section = sections[s].name;
            *key = sections[s].keys[i].name;
            return true;
        }
    }
    return false;
}

/* A once-only section's struct in CONF; NULL while an optional one is off. */
static const void *once_get(const struct config *conf, const struct section_def *sec)
{
    const char *obj = (const char *)conf + sec->at;

    return !sec->optional || MEMBER(bool, obj, sec->enabled_at) ? obj : NULL;
}

/* A named kind's array in CONF, and its count in *N. */
static char *named_array(const struct config *conf, const struct section_def *sec, size_t *n)
{
    char *base;

    memcpy(&base, (const char *)conf + sec->at, sizeof(base)); /* a struct pointer, as char * */
    *n = MEMBER(size_t, conf, sec->count);
    return base;
}

#define NAME_OF(sec, obj) MEMBER(char *, obj, (sec)->name_at)
#define LINE_OF(sec, obj) MEMBER(int, obj, (sec)->line_at)

/* Sets each key of SEC in OBJ, its struct, that has a default to it. */
static void defaults_set(const struct section_def *sec, void *obj)
{
    char why[160];

    for (const struct key_def *k = sec->keys; k < sec->keys + sec->n_keys; k++)
        if (k->def != NULL && k->type->parse(k, (char *)obj + k->at, k->def, why, sizeof(why)) < 0)
            abort(); /* a default of the table that does not parse: every test fails */
}

/* Appends an element named NAME (LEN bytes, copied), its header at LINE; returns it. */
static void *named_add(struct config *conf, const struct section_def *sec, const char *name,
                       size_t len, int line)
{
    size_t n;
    char *base = named_array(conf, sec, &n);

    base = xrealloc(base, (n + 1) * sec->size);
    memcpy((char *)conf + sec->at, &base, sizeof(base));
    MEMBER(size_t, conf, sec->count) = n + 1;
    base += n * sec->size;
    memset(base, 0, sec->size);
    NAME_OF(sec, base) = xstrndup(name, len);
    LINE_OF(sec, base) = line;
    defaults_set(sec, base);
    return base;
}

/* Frees the N elements at BASE of named kind SEC, and the array. */
static void named_free(const struct section_def *sec, char *base, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(NAME_OF(sec, base + i * sec->size));
        if (sec->release != NULL)
            sec->release(base + i * sec->size);
    }
    free(base);
}

/* The element of SEC named NAME in CONF, or NULL. */
static const void *named_find(const struct config *conf, const struct section_def *sec,
                              const char *name)
{
    size_t n;
    const char *e = named_array(conf, sec, &n);

    for (; n > 0; n--, e += sec->size)
        if (strcmp(NAME_OF(sec, e), name) == 0)
            return e;
    return NULL;
}

static void listeners_free(struct config_listener *ls, size_t n)
{
    named_free(&sections[SEC_LISTENER], (char *)ls, n);
}

/* mode applies only to a listener that binds a unix socket. */
static void listener_finish(struct parse *p, void *obj)
{
    const struct config_listener *l = obj;
    int mode_line = key_line_of(p, SEC_LISTENER, "mode");
    int group_line = key_line_of(p, SEC_LISTENER, "group");
    int cert_line = key_line_of(p, SEC_LISTENER, "tls_cert");
    int key_line = key_line_of(p, SEC_LISTENER, "tls_key");
    int ca_line = key_line_of(p, SEC_LISTENER, "tls_ca");

    if (l->bind != NULL && mode_line && l->kind != CONFIG_LISTEN_UNIX)
        parse_fail(p, mode_line, "mode applies to unix sockets only; listener '%s' binds %s",
                   l->name, l->bind);
    if (l->bind != NULL && group_line && l->kind != CONFIG_LISTEN_UNIX)
        parse_fail(p, group_line, "group applies to unix sockets only; listener '%s' binds %s",
                   l->name, l->bind);
    if (cert_line && !key_line)
        parse_fail(p, cert_line, "tls_cert needs tls_key (its private key) in listener '%s'",
                   l->name);
    else if (key_line && !cert_line)
        parse_fail(p, key_line, "tls_key needs tls_cert in listener '%s'", l->name);
    else if (ca_line && !cert_line)
        parse_fail(p, ca_line,
                   "tls_ca asks for client certificates, which needs TLS: tls_cert and tls_key "
                   "in listener '%s'",
                   l->name);
}

static void listener_clash(struct parse *p, const void *obj_a, const void *obj_b)
{
    const struct config_listener *a = obj_a, *b = obj_b;

    if (a->bind != NULL && b->bind != NULL && listener_addr_clash(a, b)) /* NULL: failed */
        parse_fail(p, b->line, "listener '%s' binds %s, as listener '%s' does (line %d)", b->name,
                   b->bind, a->name, a->line);
}

/* A node is declared dead after node_timeout without a heartbeat: at least two must fit in it. */
static void cluster_finish(struct parse *p, void *obj)
{
    const struct config_cluster *c = obj;
    int line = key_line_of(p, SEC_CLUSTER, "node_timeout");

    if ((uint64_t)c->node_timeout_ms < 2 * (uint64_t)c->heartbeat_ms)
        parse_fail(p, line ? line : key_line_of(p, SEC_CLUSTER, "heartbeat"),
                   "node_timeout %" PRIu32 " ms is less than twice heartbeat %" PRIu32
                   " ms: a node would expire between two of its heartbeats",
                   c->node_timeout_ms, c->heartbeat_ms);
}

/* No dir: the unit's StateDirectory= (systemd sets $STATE_DIRECTORY), or an error. */
static void store_finish(struct parse *p, void *obj)
{
    struct config_store *st = obj;
    const char *env = getenv("STATE_DIRECTORY");

    if (st->dir != NULL || key_line_of(p, SEC_STORE, "dir"))
        return;
    if (env == NULL || env[0] != '/') {
        parse_fail(p, p->sec_line,
                   "[store] has no dir: dir = /var/lib/pigeon (under systemd, the unit's "
                   "StateDirectory= is the default)");
        return;
    }
    size_t n = strcspn(env, ":"); /* several directories: the first */
    st->dir = xstrndup(env, n);
}

static void stream_finish(struct parse *p, void *obj)
{
    struct config_stream *cs = obj;

    cs->patterns_line = key_line_of(p, SEC_STREAM, "patterns");
    if (strchr(cs->name, '.') != NULL) /* the section rule allows it; the protocol does not */
        parse_fail(p, p->sec_line, "bad stream name '%s': use 1 to 64 of A-Z a-z 0-9 _ -",
                   cs->name);
}

/* Two streams may not capture the same topic. */
static void stream_clash(struct parse *p, const void *obj_a, const void *obj_b)
{
    const struct config_stream *a = obj_a, *b = obj_b;

    for (size_t i = 0; i < a->n_patterns; i++)
        for (size_t k = 0; k < b->n_patterns; k++)
            if (config_patterns_overlap(a->patterns[i], b->patterns[k])) {
                parse_fail(p, b->patterns_line ? b->patterns_line : b->line,
                           "stream '%s' pattern '%s' can capture the same topics as stream "
                           "'%s' pattern '%s' (line %d): two streams may not capture one topic",
                           b->name, b->patterns[k], a->name, a->patterns[i],
                           a->patterns_line ? a->patterns_line : a->line);
                return;
            }
}

/* Checks the section that ends here: its required keys, then its finish hook. */
static void section_finish(struct parse *p)
{
    const struct section_def *sec = p->sec;

    for (size_t i = 0; i < sec->n_keys; i++) {
        const struct key_def *k = &sec->keys[i];
        if (!k->required || p->key_line[sec - sections][i]) /* a key that failed: its own error */
            continue;
        if (sec->named)
            parse_fail(p, p->sec_line, "%s '%s' has no %s", sec->name, NAME_OF(sec, p->obj),
                       k->name);
        else if (k->example != NULL)
            parse_fail(p, p->sec_line, "[%s] has no %s: %s = %s", sec->name, k->name, k->name,
                       k->example);
        else
            parse_fail(p, p->sec_line, "[%s] has no %s", sec->name, k->name);
    }
    if (sec->finish != NULL)
        sec->finish(p, p->obj);
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

/* Enters a section of kind SEC at the current line; NAME (LEN bytes) names a named one. */
static void section_enter(struct parse *p, const struct section_def *sec, const char *name,
                          size_t len)
{
    int *first = &p->first_line[sec - sections];

    if (sec->named && len == 0) {
        parse_fail(p, p->f.line, "a %s section needs a name: [%s NAME]", sec->name, sec->name);
        return;
    }
    if (sec->named && !name_ok(name, len)) {
        parse_fail(p, p->f.line, "bad %s name '%.*s': use 1 to %d of A-Z a-z 0-9 _ . -", sec->name,
                   (int)(len > 64 ? 64 : len), name, NAME_MAX_LEN);
        return;
    }
    if (!sec->named && *first)
        parse_fail(p, p->f.line, "duplicate section [%s] (first at line %d)", sec->name, *first);
    *first = p->f.line;
    memset(p->key_line[sec - sections], 0, sizeof(p->key_line[0]));
    p->sec = sec;
    if (sec->named) {
        p->obj = named_add(p->conf, sec, name, len, p->f.line);
    } else {
        p->obj = (char *)p->conf + sec->at;
        if (sec->optional) {
            MEMBER(bool, p->obj, sec->enabled_at) = true;
            LINE_OF(sec, p->obj) = p->f.line;
        }
    }
}

/* Starts the section named NAME..END (trimmed) at the current line. */
static void section_begin(struct parse *p, const char *name, const char *end)
{
    size_t len = (size_t)(end - name);
    char list[128] = "";

    if (p->sec != NULL)
        section_finish(p);
    p->header_seen = true;
    p->sec = NULL;
    p->sec_line = p->f.line;
    for (size_t i = 0; i < SEC_COUNT; i++) {
        const struct section_def *sec = &sections[i];
        size_t n = strlen(sec->name);
        if (len < n || memcmp(name, sec->name, n) != 0 ||
            (len > n && !(sec->named && isspace((unsigned char)name[n]))))
            continue;
        for (name += n, len -= n; len && isspace((unsigned char)*name); len--)
            name++;
        section_enter(p, sec, name, len);
        return;
    }
    for (size_t i = 0; i < SEC_COUNT; i++) { /* "[broker], [listener NAME] or [http]" */
        str_append(list, sizeof(list), i == 0 ? "[" : i + 1 < SEC_COUNT ? ", [" : " or [");
        str_append(list, sizeof(list), sections[i].name);
        str_append(list, sizeof(list), sections[i].named ? " NAME]" : "]");
    }
    parse_fail(p, p->f.line, "unknown section [%.*s]: expected %s", (int)(len > 64 ? 64 : len), name,
               list);
}

/* ------------------------------------------------------- the keys ---- */

/* A key that is not in this section: say where it belongs, if anywhere. */
static void unknown_key_fail(struct parse *p, const char *name)
{
    for (size_t i = 0; i < SEC_COUNT; i++) {
        if (&sections[i] != p->sec && key_find(&sections[i], name) != NULL) {
            parse_fail(p, p->f.line, "unknown key '%s' in [%s]: it belongs in [%s%s]", name,
                       p->sec->name, sections[i].name, sections[i].named ? " NAME" : "");
            return;
        }
    }
    parse_fail(p, p->f.line, "unknown key '%.64s' in [%s]", name, p->sec->name);
}

/* The end of the text: the last section's checks. */
static void end_cb(struct inifile *f)
{
    struct parse *p = f->arg;

    if (p->sec != NULL)
        section_finish(p);
}

/* The reader's section header: starts the section NAME (LEN bytes, trimmed). */
static void section_cb(struct inifile *f, const char *name, size_t len)
{
    section_begin(f->arg, name, name + len);
}

/* The reader's "name = value": applies it to the section it is in (see the top). */
static void key_cb(struct inifile *f, const char *name, const char *value)
{
    struct parse *p = f->arg;
    const struct key_def *k;
    int *line;
    char why[160];

    if (p->header_seen && p->sec == NULL)
        return; /* in a section whose header failed: its keys are ignored */
    if (p->sec == NULL) {
        parse_fail(p, p->f.line,
                   "key '%.64s' is outside any section: put it under [broker] or "
                   "[listener NAME]",
                   name);
        return;
    }
    k = key_find(p->sec, name);
    if (k == NULL) {
        unknown_key_fail(p, name);
        return;
    }
    line = &p->key_line[p->sec - sections][k - p->sec->keys];
    if (*line) {
        parse_fail(p, p->f.line, "duplicate key '%s' in [%s] (first at line %d)", name, p->sec->name,
                   *line);
        return;
    }
    *line = p->f.line;
    if (value[0] == '\0') {
        parse_fail(p, p->f.line, "missing value for '%s'", name);
        return;
    }
    if (k->type->parse(k, (char *)p->obj + k->at, value, why, sizeof(why)) < 0) {
        parse_fail(p, p->f.line, "bad %s '%.48s%s': %s", name, value, strlen(value) > 48 ? "..." : "",
                   why);
        return;
    }
}

/* ------------------------------------------------------- validation ---- */

/* The listener of a file that has none: [listener default], 127.0.0.1:7400. */
static void listener_add_default(struct config *conf)
{
    struct config_listener *l = named_add(conf, &sections[SEC_LISTENER], DEFAULT_LISTENER_NAME,
                                          strlen(DEFAULT_LISTENER_NAME), 0);
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
    int payload_line = key_line_of(p, SEC_BROKER, "max_payload");
    int outbound_line = key_line_of(p, SEC_BROKER, "max_outbound");

    if ((uint64_t)conf->max_payload <= conf->max_outbound)
        return;
    parse_fail(p, payload_line ? payload_line : outbound_line,
               "max_payload %" PRIu32 " is larger than max_outbound %" PRIu64
               ": every message that large would trip the slow-consumer rule; "
               "lower max_payload or raise max_outbound",
               conf->max_payload, conf->max_outbound);
}

/* [cluster] max_pending must let the largest message through to the backplane. */
static void validate_pending_payload(struct parse *p)
{
    const struct config *conf = p->conf;
    int line = key_line_of(p, SEC_CLUSTER, "max_pending");

    if (!conf->cluster.enabled || conf->cluster.max_pending >= (uint64_t)conf->max_payload)
        return;
    parse_fail(p, line ? line : key_line_of(p, SEC_BROKER, "max_payload"),
               "[cluster] max_pending %" PRIu64 " is smaller than max_payload %" PRIu32
               ": the largest messages could never reach other nodes",
               conf->cluster.max_pending, conf->max_payload);
}

/* Each pair of a named kind, in file order: no name twice, nothing its clash hook refuses. */
static void validate_named(struct parse *p, const struct section_def *sec)
{
    size_t n;
    const char *base = named_array(p->conf, sec, &n);

    for (size_t j = 1; j < n && parse_going(p); j++) {
        const char *b = base + j * sec->size;
        for (size_t i = 0; i < j && parse_going(p); i++) {
            const char *a = base + i * sec->size;
            if (strcmp(NAME_OF(sec, a), NAME_OF(sec, b)) == 0)
                parse_fail(p, LINE_OF(sec, b), "duplicate %s '%s' (first at line %d)", sec->name,
                           NAME_OF(sec, b), LINE_OF(sec, a));
            else if (sec->clash != NULL)
                sec->clash(p, a, b);
        }
    }
}

bool config_listener_authenticates(const struct config *conf, const struct config_listener *l)
{
    return conf->auth.enabled && conf->auth.users_file != NULL && l->auth == CONFIG_AUTH_REQUIRED;
}

/* True when HOST (an address or a name, as bound) reaches only this machine. */
static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * Secure defaults, as Mosquitto 2.0 has them: a listener anyone off this
 * machine can reach must authenticate its clients, unless [auth]
 * allow_anonymous = yes says otherwise; and the [http] endpoint, which
 * names every client, stays on loopback unless it requires a token.
 */
static void validate_exposure(struct parse *p)
{
    const struct config *conf = p->conf;

    for (size_t i = 0; i < conf->n_listeners; i++) {
        const struct config_listener *l = &conf->listeners[i];
        if (l->bind == NULL || l->kind != CONFIG_LISTEN_TCP || host_is_loopback(l->host) ||
            config_listener_authenticates(conf, l) || conf->auth.allow_anonymous)
            continue;
        parse_fail(p, l->line,
                   "listener '%s' binds %s, off loopback, without authentication: set [auth] "
                   "users_file (and no auth = none), or [auth] allow_anonymous = yes to let "
                   "anyone in",
                   l->name, l->bind);
    }
    if (conf->http.enabled && conf->http.host != NULL && !host_is_loopback(conf->http.host) &&
        conf->http.token == NULL)
        parse_fail(p, conf->http.line,
                   "[http] binds %s, off loopback, without a token: set [http] token, or bind it "
                   "to 127.0.0.1",
                   conf->http.bind);
}

/* Checks what spans sections; adds the default listener to a file without one. */
static void config_validate(struct parse *p)
{
    validate_payload_outbound(p);
    validate_pending_payload(p);
    if (p->conf->n_streams > 0 && !p->conf->store.enabled)
        parse_fail(p, p->conf->streams[0].line,
                   "stream '%s' needs a [store] section (where its messages are kept)",
                   p->conf->streams[0].name);
    if (p->conf->n_listeners == 0)
        listener_add_default(p->conf);
    for (size_t i = 0; i < SEC_COUNT; i++)
        if (sections[i].named)
            validate_named(p, &sections[i]);
    if (parse_going(p))
        validate_exposure(p);
}

/* ------------------------------------------------------ the public API ---- */

/* The defaults of every section that comes once; no listeners. */
static void config_defaults_fill(struct config *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->refs = 1;
    for (size_t i = 0; i < SEC_COUNT; i++)
        if (!sections[i].named)
            defaults_set(&sections[i], (char *)conf + sections[i].at);
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

void config_unref(struct config *conf)
{
    size_t n;
    char *base;

    if (conf == NULL || --conf->refs > 0)
        return;
    for (size_t i = 0; i < SEC_COUNT; i++) {
        const struct section_def *sec = &sections[i];
        if (sec->named) {
            base = named_array(conf, sec, &n);
            named_free(sec, base, n);
        } else if (sec->release != NULL) {
            sec->release((char *)conf + sec->at);
        }
    }
    free(conf->path);
    free(conf);
}

/* The one path: LEN bytes of TEXT, named NAME, into a new validated config. */
static int config_parse_text(const char *text, size_t len, const char *name, struct config **out,
                             struct config_error *err, struct config_error *errs, size_t max_errs,
                             size_t *n_errs)
{
    struct parse p = {.f = {.section = section_cb, .key = key_cb, .finish = end_cb, .err = err,
                            .errs = errs, .max_errs = max_errs}};

    p.f.arg = &p;
    p.conf = xmalloc(sizeof(*p.conf));
    config_defaults_fill(p.conf);
    p.conf->path = xstrdup(name);
    inifile_parse(&p.f, text, len);
    if (parse_going(&p))
        config_validate(&p);
    if (errs != NULL)
        *n_errs = inifile_errors_sort(&p.f);
    if (p.f.failed) {
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
    inifile_error_begin(err, name);
    return config_parse_text(text, strlen(text), name, out, err, NULL, 0, NULL);
}

/* config_load_file, collecting every error into ERRS when it is not NULL. */
static int config_load_file_errs(const char *path, struct config **out, struct config_error *err,
                                 struct config_error *errs, size_t max_errs, size_t *n_errs)
{
    char *text;
    size_t len;

    inifile_error_begin(err, path);
    if (inifile_read(path, CONFIG_FILE_MAX, &text, &len, err) < 0)
        return -1;
    int rc = config_parse_text(text, len, path, out, err, errs, max_errs, n_errs);
    free(text);
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
void config_listener_copy(struct config_listener *dst, const struct config_listener *l)
{
    *dst = *l;
    dst->name = xstrdup(l->name);
    dst->bind = l->bind != NULL ? xstrdup(l->bind) : NULL;
    dst->host = l->host != NULL ? xstrdup(l->host) : NULL;
    dst->path = l->path != NULL ? xstrdup(l->path) : NULL;
    dst->group = l->group != NULL ? xstrdup(l->group) : NULL;
    dst->tls_cert = l->tls_cert != NULL ? xstrdup(l->tls_cert) : NULL;
    dst->tls_key = l->tls_key != NULL ? xstrdup(l->tls_key) : NULL;
    dst->tls_ca = l->tls_ca != NULL ? xstrdup(l->tls_ca) : NULL;
}

int config_set_listeners(struct config *conf, const char *const *binds, size_t n, char *why,
                         size_t why_len)
{
    struct config tmp = {0};
    char name[32], reason[160];

    for (size_t i = 0; i < n; i++) {
        int len = snprintf(name, sizeof(name), ARG_LISTENER_PREFIX "%zu", i + 1);
        struct config_listener *l = named_add(&tmp, &sections[SEC_LISTENER], name, (size_t)len, 0);
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
        config_listener_copy(&next->listeners[i], &from->listeners[i]);
    next->n_listeners = from->n_listeners;
    next->listeners_from_args = true;
}

/* ------------------------------------------------ comparing two configs ---- */

/* K's value in OBJ, its section's struct, as the file writes it. */
static void key_format(const struct key_def *k, const void *obj, char *buf, size_t len)
{
    k->type->format(k, (const char *)obj + k->at, buf, len);
}

/* The struct of section SECTION ("broker", "http", "listener NAME") in CONF, and its kind. */
static const void *section_get(const struct config *conf, const char *section,
                               const struct section_def **kind)
{
    for (size_t i = 0; i < SEC_COUNT; i++) {
        const struct section_def *sec = &sections[i];
        size_t n = strlen(sec->name);
        if (strncmp(section, sec->name, n) != 0)
            continue;
        if (section[n] != (sec->named ? ' ' : '\0'))
            continue;
        *kind = sec;
        return sec->named ? named_find(conf, sec, section + n + 1) : once_get(conf, sec);
    }
    return NULL;
}

int config_value_format(const struct config *conf, const char *section, const char *key, char *buf,
                        size_t len)
{
    const struct section_def *sec = NULL;
    const void *obj = section_get(conf, section, &sec);
    const struct key_def *k = sec != NULL ? key_find(sec, key) : NULL;

    buf[0] = '\0';
    if (k == NULL || (obj == NULL && sec->named))
        return -1;
    if (obj != NULL) /* an optional section that is off reads as "" */
        key_format(k, obj, buf, len);
    return 0;
}

struct diff {
    config_diff_fn fn;
    void *arg;
    size_t n;
};

/*
 * One section of kind SEC, titled TITLE, in two configs (A and B its
 * structs, NULL where it is absent): the keys that differ, in table order;
 * or, when only one config has it, its first key, once.
 */
static void diff_section(struct diff *d, const struct section_def *sec, const char *title,
                         const void *a, const void *b)
{
    char va[VALUE_MAX], vb[VALUE_MAX];

    if (a == NULL || b == NULL) {
        if (a == NULL && b == NULL)
            return;
        key_format(&sec->keys[0], a != NULL ? a : b, va, sizeof(va));
        d->fn(d->arg, title, sec->keys[0].name, a != NULL ? va : NULL, b != NULL ? va : NULL);
        d->n++;
        return;
    }
    for (size_t i = 0; i < sec->n_keys; i++) {
        key_format(&sec->keys[i], a, va, sizeof(va));
        key_format(&sec->keys[i], b, vb, sizeof(vb));
        if (strcmp(va, vb) != 0) {
            d->fn(d->arg, title, sec->keys[i].name, va, vb);
            d->n++;
        }
    }
}

/* A named kind's elements by name: removed or changed ones (in A's order), then added ones. */
static void diff_named(struct diff *d, const struct section_def *sec, const struct config *a,
                       const struct config *b)
{
    char title[16 + NAME_MAX_LEN];
    size_t na, nb;
    const char *ea = named_array(a, sec, &na), *eb = named_array(b, sec, &nb);

    for (size_t i = 0; i < na; i++, ea += sec->size) {
        snprintf(title, sizeof(title), "%s %s", sec->name, NAME_OF(sec, ea));
        diff_section(d, sec, title, ea, named_find(b, sec, NAME_OF(sec, ea)));
    }
    for (size_t i = 0; i < nb; i++, eb += sec->size) {
        snprintf(title, sizeof(title), "%s %s", sec->name, NAME_OF(sec, eb));
        if (named_find(a, sec, NAME_OF(sec, eb)) == NULL)
            diff_section(d, sec, title, NULL, eb);
    }
}

size_t config_diff(const struct config *old, const struct config *new, config_diff_fn fn, void *arg)
{
    struct diff d = {.fn = fn, .arg = arg};

    for (size_t i = 0; i < SEC_COUNT; i++)
        if (!sections[i].named)
            diff_section(&d, &sections[i], sections[i].name, once_get(old, &sections[i]),
                         once_get(new, &sections[i]));
    for (size_t i = 0; i < SEC_COUNT; i++)
        if (sections[i].named)
            diff_named(&d, &sections[i], old, new);
    return d.n;
}
