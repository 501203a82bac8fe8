/*
 * subfmt.c - printing a message for `pigeon sub` (see subfmt.h).
 *
 * A template is compiled once into parts, literal text or a field, so that
 * each message costs a walk over the parts and no parsing; a bad template
 * is a usage error before connecting.
 */
#include "subfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

enum subfmt_field {
    SUBFMT_TEXT,
    SUBFMT_TOPIC,
    SUBFMT_PAYLOAD,
    SUBFMT_TIME,
    SUBFMT_SID,
    SUBFMT_HEADERS,
    SUBFMT_REPLY_TO,
    SUBFMT_RETAINED,
};

struct subfmt_part {
    enum subfmt_field field;
    char *text; /* SUBFMT_TEXT: owned, LEN bytes */
    size_t len;
};

static const struct {
    const char *name;
    enum subfmt_field field;
} subfmt_fields[] = {
    {"topic", SUBFMT_TOPIC},       {"payload", SUBFMT_PAYLOAD}, {"time", SUBFMT_TIME},
    {"sid", SUBFMT_SID},           {"headers", SUBFMT_HEADERS}, {"reply_to", SUBFMT_REPLY_TO},
    {"retained", SUBFMT_RETAINED},
};

#define SUBFMT_N_FIELDS (sizeof(subfmt_fields) / sizeof(subfmt_fields[0]))

/* ----------------------------------------------------------- compiling --- */

/* Appends a part: FIELD, or the text TEXT[0..LEN) (copied). 0, or -1. */
static int subfmt_add(struct subfmt *f, enum subfmt_field field, const char *text, size_t len)
{
    struct subfmt_part *p = realloc(f->parts, (f->n_parts + 1) * sizeof(*p));

    if (p == NULL)
        return -1;
    f->parts = p;
    p = &f->parts[f->n_parts];
    p->field = field;
    p->text = NULL;
    p->len = len;
    if (field == SUBFMT_TEXT) {
        if ((p->text = malloc(len + 1)) == NULL)
            return -1;
        memcpy(p->text, text, len);
    }
    f->n_parts++;
    return 0;
}

/* The field named NAME[0..LEN), or -1. */
static int subfmt_field_named(const char *name, size_t len)
{
    for (size_t i = 0; i < SUBFMT_N_FIELDS; i++)
        if (strlen(subfmt_fields[i].name) == len && memcmp(subfmt_fields[i].name, name, len) == 0)
            return (int)subfmt_fields[i].field;
    return -1;
}

/* The character an escape "\C" stands for, or 0 when it is none. */
static char subfmt_escape(char c)
{
    return c == 'n' ? '\n' : c == 't' ? '\t' : c == '\\' ? '\\' : 0;
}

/* Compiles T into F's parts, collecting literal text in LIT. */
static int subfmt_parse(struct subfmt *f, const char *t, struct strbuf *lit, char *err,
                        size_t errlen)
{
    for (const char *c = t; *c != '\0'; c++) {
        char ch = *c;
        if ((ch == '{' && c[1] == '{') || (ch == '}' && c[1] == '}')) {
            c++;
        } else if (ch == '\\' && subfmt_escape(c[1]) != 0) {
            ch = subfmt_escape(*++c);
        } else if (ch == '}') {
            return snprintf(err, errlen, "a '}' with no '{' (write '}}' for a brace)"), -1;
        } else if (ch == '{') {
            const char *end = strchr(c, '}');
            size_t n = end != NULL ? (size_t)(end - c - 1) : 0;
            int field = end != NULL ? subfmt_field_named(c + 1, n) : -1;
            if (end == NULL)
                return snprintf(err, errlen, "'{' with no '}' (write '{{' for a brace)"), -1;
            if (field < 0)
                return snprintf(err, errlen,
                                "no field {%.*s}: {topic} {payload} {time} {sid} {headers} "
                                "{reply_to} {retained}",
                                (int)(n > 32 ? 32 : n), c + 1),
                       -1;
            if ((lit->len > 0 && subfmt_add(f, SUBFMT_TEXT, lit->data, lit->len) < 0) ||
                subfmt_add(f, (enum subfmt_field)field, NULL, 0) < 0)
                return snprintf(err, errlen, "out of memory"), -1;
            lit->len = 0;
            c = end;
            continue;
        }
        if (strbuf_add(lit, &ch, 1) < 0)
            return snprintf(err, errlen, "out of memory"), -1;
    }
    if (lit->len > 0 && subfmt_add(f, SUBFMT_TEXT, lit->data, lit->len) < 0)
        return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

int subfmt_compile(struct subfmt *f, const char *template, bool pretty, char *err, size_t errlen)
{
    struct strbuf lit;

    memset(f, 0, sizeof(*f));
    f->pretty = pretty;
    if (template == NULL)
        return 0;
    if (*template == '\0')
        return snprintf(err, errlen, "an empty template"), -1;
    strbuf_init(&lit);
    int rc = subfmt_parse(f, template, &lit, err, errlen);
    strbuf_free(&lit);
    if (rc < 0)
        subfmt_free(f);
    return rc;
}

void subfmt_free(struct subfmt *f)
{
    for (size_t i = 0; i < f->n_parts; i++)
        free(f->parts[i].text);
    free(f->parts);
    f->parts = NULL;
    f->n_parts = 0;
}

/* ----------------------------------------------------------- rendering --- */

/* Appends the headers of M as a JSON object. */
static int subfmt_headers(struct strbuf *sb, const pigeon_msg *m)
{
    if (strbuf_add(sb, "{", 1) < 0)
        return -1;
    for (size_t i = 0; i < pigeon_msg_header_count(m); i++) {
        const char *k, *v;
        size_t kl, vl;
        pigeon_msg_header_at(m, i, &k, &kl, &v, &vl);
        if ((i > 0 && strbuf_add(sb, ",", 1) < 0) || json_add_string(sb, k, kl) < 0 ||
            strbuf_add(sb, ":", 1) < 0 || json_add_string(sb, v, vl) < 0)
            return -1;
    }
    return strbuf_add(sb, "}", 1);
}

/* Appends M's JSON line object: topic and payload, and what else it has. */
static int subfmt_object(struct strbuf *sb, const pigeon_msg *m)
{
    size_t tlen, plen;
    const char *topic = pigeon_msg_topic(m, &tlen);
    const void *payload = pigeon_msg_data(m, &plen);
    const char *reply_to = pigeon_msg_reply_to(m);

    if (strbuf_add(sb, "{\"topic\":", 9) < 0 || json_add_string(sb, topic, tlen) < 0 ||
        strbuf_add(sb, ",\"payload\":", 11) < 0 || json_from_msgpack(payload, plen, sb) < 0)
        return -1;
    if (reply_to != NULL && (strbuf_add(sb, ",\"reply_to\":", 12) < 0 ||
                             json_add_string(sb, reply_to, strlen(reply_to)) < 0))
        return -1;
    if (pigeon_msg_header_count(m) > 0 &&
        (strbuf_add(sb, ",\"headers\":", 11) < 0 || subfmt_headers(sb, m) < 0))
        return -1;
    if (pigeon_msg_retained(m) && strbuf_add(sb, ",\"retained\":true", 16) < 0)
        return -1;
    return strbuf_add(sb, "}", 1);
}

/* Appends the time now, UTC, to the millisecond. */
static int subfmt_time(struct strbuf *sb)
{
    struct timespec ts;
    struct tm tm;
    char buf[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    return strbuf_addf(sb, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
}

/* Appends JSON made by BUILD(M), indented when F says so. */
static int subfmt_json(const struct subfmt *f, struct strbuf *sb, const pigeon_msg *m,
                       int (*build)(struct strbuf *, const pigeon_msg *))
{
    struct strbuf tmp;

    if (!f->pretty)
        return build(sb, m);
    strbuf_init(&tmp);
    int rc = build(&tmp, m) < 0 ? -1 : json_indent(tmp.data, tmp.len, sb);
    strbuf_free(&tmp);
    return rc;
}

static int subfmt_payload(struct strbuf *sb, const pigeon_msg *m)
{
    size_t plen;
    const void *payload = pigeon_msg_data(m, &plen);
    return json_from_msgpack(payload, plen, sb);
}

static int subfmt_part_render(const struct subfmt *f, const struct subfmt_part *p,
                              const pigeon_msg *m, struct strbuf *sb)
{
    size_t tlen;
    const char *s;

    switch (p->field) {
    case SUBFMT_TEXT:
        return strbuf_add(sb, p->text, p->len);
    case SUBFMT_TOPIC:
        s = pigeon_msg_topic(m, &tlen);
        return strbuf_add(sb, s, tlen);
    case SUBFMT_PAYLOAD:
        return subfmt_json(f, sb, m, subfmt_payload);
    case SUBFMT_TIME:
        return subfmt_time(sb);
    case SUBFMT_SID:
        return strbuf_addf(sb, "%" PRIu64, pigeon_msg_sid(m));
    case SUBFMT_HEADERS:
        return subfmt_json(f, sb, m, subfmt_headers);
    case SUBFMT_REPLY_TO:
        s = pigeon_msg_reply_to(m);
        return s != NULL ? strbuf_lit(sb, s) : 0;
    case SUBFMT_RETAINED:
        return strbuf_lit(sb, pigeon_msg_retained(m) ? "true" : "false");
    }
    return -1;
}

int subfmt_render(const struct subfmt *f, const pigeon_msg *m, struct strbuf *out)
{
    if (f->parts == NULL && subfmt_json(f, out, m, subfmt_object) < 0)
        return -1;
    for (size_t i = 0; i < f->n_parts; i++)
        if (subfmt_part_render(f, &f->parts[i], m, out) < 0)
            return -1;
    return strbuf_add(out, "\n", 1);
}
