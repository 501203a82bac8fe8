/*
 * json.c - JSON <-> MessagePack, with the '$' forms of json.h.
 *
 * Layers: JSON string escaping (UTF-8 checked with the shared utf8.c);
 * reading (jansson tree -> msgpack-c packer); printing (msgpack-c object ->
 * JSON text).  Both directions recurse once per nesting level: jansson
 * refuses documents nested deeper than 2048, and a payload that came
 * through the broker is at most 30 deep.
 */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base64.h"
#include "utf8.h"

static int add_tagged_b64(struct strbuf *out, const char *tag, const void *data, size_t len)
{
    size_t n = base64_encoded_size(len);
    char *b64 = malloc(n);
    if (b64 == NULL)
        return -1;
    base64_encode(data, len, b64);
    int rc = strbuf_addf(out, "{\"%s\":\"", tag);
    if (rc == 0)
        rc = strbuf_add(out, b64, n - 1);
    if (rc == 0)
        rc = strbuf_lit(out, "\"}");
    free(b64);
    return rc;
}

int json_add_string(struct strbuf *out, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;

    if (!utf8_valid(s, len))
        return add_tagged_b64(out, "$str", s, len);
    if (strbuf_add(out, "\"", 1) < 0)
        return -1;
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (strbuf_add(out, s + run, i - run) < 0)
            return -1;
        int rc;
        switch (c) {
        case '"':
            rc = strbuf_lit(out, "\\\"");
            break;
        case '\\':
            rc = strbuf_lit(out, "\\\\");
            break;
        case '\n':
            rc = strbuf_lit(out, "\\n");
            break;
        case '\r':
            rc = strbuf_lit(out, "\\r");
            break;
        case '\t':
            rc = strbuf_lit(out, "\\t");
            break;
        case '\b':
            rc = strbuf_lit(out, "\\b");
            break;
        case '\f':
            rc = strbuf_lit(out, "\\f");
            break;
        default:
            rc = strbuf_addf(out, "\\u%04x", c);
            break;
        }
        if (rc < 0)
            return -1;
        run = i + 1;
    }
    if (strbuf_add(out, s + run, len - run) < 0)
        return -1;
    return strbuf_add(out, "\"", 1);
}

/* ----------------------------------------------------------- reading ---- */

static const char *const json_tags[] = {"$bin", "$ext", "$map", "$int", "$float", "$str"};

static bool is_tag(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof(json_tags) / sizeof(json_tags[0]); i++)
        if (strlen(json_tags[i]) == len && memcmp(json_tags[i], key, len) == 0)
            return true;
    return false;
}

struct reader {
    msgpack_packer pk;
    char *err;
    size_t errlen;
};

static int reader_fail(struct reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int reader_fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int pack_json(struct reader *r, const json_t *j);

/* Decodes the base64 string J into a fresh buffer *OUT (the caller frees). */
static long decode_b64(struct reader *r, const json_t *j, const char *tag, uint8_t **out)
{
    if (!json_is_string(j))
        return reader_fail(r, "%s takes a base64 string", tag);
    size_t n = json_string_length(j);
    *out = malloc(n / 4 * 3 + 3);
    if (*out == NULL)
        return reader_fail(r, "out of memory");
    long len = base64_decode(json_string_value(j), n, *out);
    if (len < 0) {
        free(*out);
        return reader_fail(r, "%s: not base64", tag);
    }
    return len;
}

static int pack_b64(struct reader *r, const json_t *v, const char *tag)
{
    uint8_t *bytes;
    long n = decode_b64(r, v, tag, &bytes);
    if (n < 0)
        return -1;
    if (strcmp(tag, "$bin") == 0) {
        msgpack_pack_bin(&r->pk, (size_t)n);
        msgpack_pack_bin_body(&r->pk, bytes, (size_t)n);
    } else {
        msgpack_pack_str(&r->pk, (size_t)n);
        msgpack_pack_str_body(&r->pk, bytes, (size_t)n);
    }
    free(bytes);
    return 0;
}

static int pack_ext(struct reader *r, const json_t *v)
{
    uint8_t *bytes;

    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)))
        return reader_fail(r, "$ext takes [type, \"<base64>\"]");
    json_int_t type = json_integer_value(json_array_get(v, 0));
    if (type < -128 || type > 127)
        return reader_fail(r, "$ext type %" JSON_INTEGER_FORMAT " is not in -128..127", type);
    long n = decode_b64(r, json_array_get(v, 1), "$ext", &bytes);
    if (n < 0)
        return -1;
    msgpack_pack_ext(&r->pk, (size_t)n, (int8_t)type);
    msgpack_pack_ext_body(&r->pk, bytes, (size_t)n);
    free(bytes);
    return 0;
}

static int pack_pairs(struct reader *r, const json_t *v)
{
    if (!json_is_array(v))
        return reader_fail(r, "$map takes [[key, value], ...]");
    msgpack_pack_map(&r->pk, json_array_size(v));
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *pair = json_array_get(v, i);
        if (!json_is_array(pair) || json_array_size(pair) != 2)
            return reader_fail(r, "$map takes [[key, value], ...]");
        if (pack_json(r, json_array_get(pair, 0)) < 0 || pack_json(r, json_array_get(pair, 1)) < 0)
            return -1;
    }
    return 0;
}

static int pack_bigint(struct reader *r, const json_t *v)
{
    char *end;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return reader_fail(r, "$int takes a decimal string");
    const char *s = json_string_value(v);
    errno = 0;
    if (s[0] == '-') {
        long long x = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return reader_fail(r, "$int: '%s' is not an integer in -2^63..2^64-1", s);
        msgpack_pack_int64(&r->pk, x);
    } else {
        unsigned long long x = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || s[0] < '0' || s[0] > '9')
            return reader_fail(r, "$int: '%s' is not an integer in -2^63..2^64-1", s);
        msgpack_pack_uint64(&r->pk, x);
    }
    return 0;
}

static int pack_special_float(struct reader *r, const json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    double d;

    if (strcmp(s, "nan") == 0)
        d = NAN;
    else if (strcmp(s, "inf") == 0)
        d = INFINITY;
    else if (strcmp(s, "-inf") == 0)
        d = -INFINITY;
    else
        return reader_fail(r, "$float takes \"nan\", \"inf\" or \"-inf\"");
    msgpack_pack_double(&r->pk, d);
    return 0;
}

static int pack_tagged(struct reader *r, const char *tag, const json_t *v)
{
    if (strcmp(tag, "$bin") == 0 || strcmp(tag, "$str") == 0)
        return pack_b64(r, v, tag);
    if (strcmp(tag, "$ext") == 0)
        return pack_ext(r, v);
    if (strcmp(tag, "$map") == 0)
        return pack_pairs(r, v);
    if (strcmp(tag, "$int") == 0)
        return pack_bigint(r, v);
    return pack_special_float(r, v);
}

static int pack_object(struct reader *r, const json_t *j)
{
    void *it = json_object_iter((json_t *)j);

    if (json_object_size(j) == 1 && is_tag(json_object_iter_key(it), json_object_iter_key_len(it)))
        return pack_tagged(r, json_object_iter_key(it), json_object_iter_value(it));
    msgpack_pack_map(&r->pk, json_object_size(j));
    for (; it != NULL; it = json_object_iter_next((json_t *)j, it)) {
        size_t klen = json_object_iter_key_len(it);
        msgpack_pack_str(&r->pk, klen);
        msgpack_pack_str_body(&r->pk, json_object_iter_key(it), klen);
        if (pack_json(r, json_object_iter_value(it)) < 0)
            return -1;
    }
    return 0;
}

static int pack_json(struct reader *r, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return pack_object(r, j);
    case JSON_ARRAY:
        msgpack_pack_array(&r->pk, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            if (pack_json(r, json_array_get(j, i)) < 0)
                return -1;
        return 0;
    case JSON_STRING:
        msgpack_pack_str(&r->pk, json_string_length(j));
        msgpack_pack_str_body(&r->pk, json_string_value(j), json_string_length(j));
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(&r->pk, json_integer_value(j));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(&r->pk, json_real_value(j));
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(&r->pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(&r->pk);
        return 0;
    case JSON_NULL:
        msgpack_pack_nil(&r->pk);
        return 0;
    }
    return reader_fail(r, "unknown JSON type");
}

/* json_to_msgpack; ONE_LINE: TEXT is a line of a larger input, so a syntax
 * error names only the column (jansson's line would always say 1). */
static int json_convert(const char *text, size_t len, bool one_line, msgpack_sbuffer *out,
                        char *err, size_t errlen)
{
    json_error_t je;
    struct reader r = {.err = err, .errlen = errlen};

    json_t *j =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        if (one_line)
            snprintf(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
        else
            snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", je.line, je.column,
                     je.text);
        return -1;
    }
    size_t before = out->size;
    msgpack_packer_init(&r.pk, out, msgpack_sbuffer_write);
    int rc = pack_json(&r, j);
    json_decref(j);
    if (rc < 0)
        out->size = before;
    return rc;
}

int json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err, size_t errlen)
{
    return json_convert(text, len, false, out, err, errlen);
}

int json_line_to_msgpack(const char *text, size_t len, msgpack_sbuffer *out, char *err,
                         size_t errlen)
{
    return json_convert(text, len, true, out, err, errlen);
}

/* ---------------------------------------------------------- printing ---- */

static int print_obj(struct strbuf *out, const msgpack_object *o);

/* The shortest %g form of D that reads back as D (at float precision when IS_FLOAT). */
static int print_float(struct strbuf *out, double d, bool is_float)
{
    char buf[40];

    if (!isfinite(d))
        return strbuf_addf(out, "{\"$float\":\"%s\"}", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (is_float ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".eE") == NULL)
        strcat(buf, ".0"); /* keep it a float when read back */
    return strbuf_add(out, buf, strlen(buf));
}

static int key_cmp(const void *a, const void *b)
{
    const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
    const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return memcmp(x->ptr, y->ptr, x->size);
}

/* True when map M can be a JSON object: UTF-8 string keys, none repeated, not a tag. */
static int map_is_object(const msgpack_object_map *m, bool *ok)
{
    *ok = false;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || !utf8_valid(k->via.str.ptr, k->via.str.size))
            return 0;
    }
    if (m->size == 1 && is_tag(m->ptr[0].key.via.str.ptr, m->ptr[0].key.via.str.size))
        return 0;
    if (m->size > 1) {
        const msgpack_object_str **keys = malloc(m->size * sizeof(*keys));
        if (keys == NULL)
            return -1;
        for (uint32_t i = 0; i < m->size; i++)
            keys[i] = &m->ptr[i].key.via.str;
        qsort(keys, m->size, sizeof(*keys), key_cmp);
        bool dup = false;
        for (uint32_t i = 1; i < m->size && !dup; i++)
            dup = key_cmp(&keys[i - 1], &keys[i]) == 0;
        free(keys);
        if (dup)
            return 0;
    }
    *ok = true;
    return 0;
}

static int print_map(struct strbuf *out, const msgpack_object_map *m)
{
    bool as_object;

    if (map_is_object(m, &as_object) < 0)
        return -1;
    if (strbuf_lit(out, as_object ? "{" : "{\"$map\":[") < 0)
        return -1;
    for (uint32_t i = 0; i < m->size; i++) {
        if (i > 0 && strbuf_add(out, ",", 1) < 0)
            return -1;
        if (!as_object && strbuf_add(out, "[", 1) < 0)
            return -1;
        if (print_obj(out, &m->ptr[i].key) < 0 || strbuf_add(out, as_object ? ":" : ",", 1) < 0 ||
            print_obj(out, &m->ptr[i].val) < 0)
            return -1;
        if (!as_object && strbuf_add(out, "]", 1) < 0)
            return -1;
    }
    return strbuf_lit(out, as_object ? "}" : "]}");
}

static int print_ext(struct strbuf *out, const msgpack_object_ext *e)
{
    size_t n = base64_encoded_size(e->size);
    char *b64 = malloc(n);
    if (b64 == NULL)
        return -1;
    base64_encode((const uint8_t *)e->ptr, e->size, b64);
    int rc = strbuf_addf(out, "{\"$ext\":[%d,\"", e->type);
    if (rc == 0)
        rc = strbuf_add(out, b64, n - 1);
    if (rc == 0)
        rc = strbuf_lit(out, "\"]}");
    free(b64);
    return rc;
}

static int print_obj(struct strbuf *out, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return strbuf_lit(out, "null");
    case MSGPACK_OBJECT_BOOLEAN:
        return strbuf_lit(out, o->via.boolean ? "true" : "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return strbuf_addf(out, "{\"$int\":\"%" PRIu64 "\"}", o->via.u64);
        return strbuf_addf(out, "%" PRIu64, o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return strbuf_addf(out, "%" PRId64, o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
        return print_float(out, o->via.f64, true);
    case MSGPACK_OBJECT_FLOAT64:
        return print_float(out, o->via.f64, false);
    case MSGPACK_OBJECT_STR:
        return json_add_string(out, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return add_tagged_b64(out, "$bin", o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        return print_ext(out, &o->via.ext);
    case MSGPACK_OBJECT_ARRAY:
        if (strbuf_add(out, "[", 1) < 0)
            return -1;
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if ((i > 0 && strbuf_add(out, ",", 1) < 0) || print_obj(out, &o->via.array.ptr[i]) < 0)
                return -1;
        return strbuf_add(out, "]", 1);
    case MSGPACK_OBJECT_MAP:
        return print_map(out, &o->via.map);
    }
    return -1;
}

int json_from_msgpack(const void *data, size_t len, struct strbuf *out)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;

    if (!msgpack_zone_init(&zone, 2048))
        return -1;
    int rc = -1;
    if (msgpack_unpack(data, len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS)
        rc = print_obj(out, &obj);
    msgpack_zone_destroy(&zone);
    return rc;
}

/* ------------------------------------------------------------ indenting --- */

/* A line break and DEPTH levels of indentation. */
static int indent_line(struct strbuf *out, int depth)
{
    if (strbuf_add(out, "\n", 1) < 0)
        return -1;
    for (int i = 0; i < depth; i++)
        if (strbuf_add(out, "  ", 2) < 0)
            return -1;
    return 0;
}

/* Copies the string that opens at TEXT[*I] (a '"'), escapes and all. */
static int indent_string(const char *text, size_t len, size_t *i, struct strbuf *out)
{
    size_t start = (*i)++;

    while (*i < len && text[*i] != '"')
        *i += text[*i] == '\\' ? 2 : 1;
    *i = *i < len ? *i + 1 : len;
    return strbuf_add(out, text + start, *i - start);
}

int json_indent(const char *text, size_t len, struct strbuf *out)
{
    int depth = 0, rc = 0;

    for (size_t i = 0; i < len && rc == 0;) {
        char c = text[i];
        if (c == '"') {
            rc = indent_string(text, len, &i, out);
            continue;
        }
        i++;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (c == '{' || c == '[') {
            size_t next = i + strspn(text + i, " \t\r\n");
            if (next < len && (text[next] == '}' || text[next] == ']')) {
                rc = strbuf_add(out, c == '{' ? "{}" : "[]", 2); /* empty: stays on its line */
                i = next + 1;
            } else {
                rc = strbuf_add(out, &c, 1) < 0 ? -1 : indent_line(out, ++depth);
            }
        } else if (c == '}' || c == ']') {
            rc = indent_line(out, --depth) < 0 ? -1 : strbuf_add(out, &c, 1);
        } else if (c == ',') {
            rc = strbuf_add(out, ",", 1) < 0 ? -1 : indent_line(out, depth);
        } else if (c == ':') {
            rc = strbuf_add(out, ": ", 2);
        } else {
            rc = strbuf_add(out, &c, 1);
        }
    }
    return rc;
}
