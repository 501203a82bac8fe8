/*
 * bpwire.c - the backplane's messages, written and read (see bpwire.h).
 *
 * Writing appends to a msgpack_sbuffer: headers through msgpack-c's
 * packer, and the publisher's topic, payload and opts bytes copied as they
 * are.  Reading runs the frame scanner over each frame first (bounds,
 * depth, declared sizes), then takes it apart with the mpread cursor, so
 * msgpack-c never sees a byte from the backplane.
 */
#include "bpwire.h"

#include <string.h>

#include "encode.h"
#include "frame.h"
#include "topic.h"

/* Bytes a control message or batch header may take: a node name and a few numbers. */
#define BPWIRE_SMALL_MAX 4096
/* Bytes of a delta: up to a few thousand changes of two topics each. */
#define BPWIRE_CTL_MAX (8 * 1024 * 1024)

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

/*
 * The length of the frame at R, which must be an array of at most MAX
 * bytes, checked by the frame scanner; 0 (and *WHY) when it is not.
 */
static size_t frame_bound(const struct mpread *r, uint32_t max, const char **why)
{
    struct frame_scanner scan;
    size_t used = 0;

    frame_scanner_init(&scan, max);
    enum frame_status st = frame_scan(&scan, r->p, mpread_left(r), &used);
    if (st == FRAME_DONE)
        return used;
    *why = st == FRAME_MORE ? "truncated" : frame_strerror(st);
    return 0;
}

/* --------------------------------------------------------------- batches */

void bpwire_batch_begin(msgpack_sbuffer *buf, size_t headroom, const char *origin, size_t olen)
{
    static const char zeros[256];
    msgpack_packer pk;

    msgpack_sbuffer_clear(buf);
    for (size_t left = headroom; left > 0; left -= left < sizeof(zeros) ? left : sizeof(zeros))
        msgpack_sbuffer_write(buf, zeros, left < sizeof(zeros) ? left : sizeof(zeros));
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, BPWIRE_VERSION);
    pack_str(&pk, origin, olen);
}

void bpwire_record_write(msgpack_sbuffer *buf, uint8_t flags, const uint8_t *body, size_t body_len,
                         const uint8_t *opts, size_t opts_len, const char *const *groups,
                         size_t n_groups)
{
    static const char nil = (char)0xc0;
    const char head[2] = {(char)0x95, (char)(flags & 0x7f)}; /* fixarray 5, positive fixint */
    msgpack_packer pk;

    msgpack_sbuffer_write(buf, head, sizeof(head));
    msgpack_sbuffer_write(buf, (const char *)body, body_len);
    if (opts_len > 0)
        msgpack_sbuffer_write(buf, (const char *)opts, opts_len);
    else
        msgpack_sbuffer_write(buf, &nil, 1);
    if (n_groups == 0) {
        msgpack_sbuffer_write(buf, &nil, 1);
        return;
    }
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2 * n_groups);
    for (size_t i = 0; i < 2 * n_groups; i++)
        pack_str(&pk, groups[i], strlen(groups[i]));
}

int bpwire_batch_open(const void *data, size_t len, struct mpread *r, const char **origin,
                      uint32_t *olen, const char **why)
{
    uint32_t n;
    uint64_t version;

    mpread_init(r, data, len);
    size_t flen = frame_bound(r, BPWIRE_SMALL_MAX, why);
    if (flen == 0)
        return -1;
    struct mpread h = {.p = r->p, .end = r->p + flen};
    if (!mpread_array(&h, &n) || n < 2 || !mpread_uint(&h, &version) ||
        !mpread_str(&h, origin, olen)) {
        *why = "bad batch header";
        return -1;
    }
    if (version != BPWIRE_VERSION) {
        *why = "unknown batch format version";
        return -1;
    }
    r->p += flen;
    return 0;
}

/* Reads the groups element at R into OUT: nil, or an array of strings in pairs. */
static bool read_groups(struct mpread *r, struct bpwire_record *out)
{
    uint32_t n;

    if (mpread_nil(r))
        return true;
    if (!mpread_array(r, &n) || n % 2 != 0)
        return false;
    out->groups = r->p;
    out->n_groups = n / 2;
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t len;
        if (!mpread_str(r, &s, &len))
            return false;
    }
    out->groups_len = (size_t)(r->p - out->groups);
    return true;
}

/* Reads one record of exactly the bytes at R (bounded by the scanner). */
static int record_parse(struct mpread *r, struct bpwire_record *out, const char **why)
{
    uint32_t n;
    uint64_t flags;

    memset(out, 0, sizeof(*out));
    if (!mpread_array(r, &n) || n != 5 || !mpread_uint(r, &flags) || flags > 0x7f) {
        *why = "bad record";
        return -1;
    }
    out->flags = (uint8_t)flags;
    out->body = r->p;
    if (!mpread_str(r, &out->topic, &out->topic_len) ||
        topic_check(out->topic, out->topic_len, TOPIC_PUBLISH) != TOPIC_OK) {
        *why = "bad topic in record";
        return -1;
    }
    out->payload_nil = mpread_is_nil(r);
    if (!mpread_skip(r)) {
        *why = "bad payload in record";
        return -1;
    }
    out->body_len = (size_t)(r->p - out->body);
    if (!mpread_nil(r)) {
        const uint8_t *opts = r->p;
        uint32_t pairs;
        struct mpread m = *r;
        if (!mpread_map(&m, &pairs) || !mpread_skip(r)) {
            *why = "bad opts in record";
            return -1;
        }
        out->opts = opts;
        out->opts_len = (size_t)(r->p - opts);
    }
    if (!read_groups(r, out) || r->p != r->end) {
        *why = "bad groups in record";
        return -1;
    }
    return 0;
}

int bpwire_record_read(struct mpread *r, uint32_t max_record, struct bpwire_record *out,
                       const char **why)
{
    if (mpread_left(r) == 0)
        return 0;
    size_t flen = frame_bound(r, max_record, why);
    if (flen == 0)
        return -1;
    struct mpread rec = {.p = r->p, .end = r->p + flen};
    if (record_parse(&rec, out, why) < 0)
        return -1;
    r->p += flen;
    return 1;
}

bool bpwire_groups_next(struct mpread *cur, const char **pattern, uint32_t *plen,
                        const char **queue, uint32_t *qlen)
{
    return mpread_left(cur) > 0 && mpread_str(cur, pattern, plen) && mpread_str(cur, queue, qlen);
}

bool bpwire_record_reply_to(const struct bpwire_record *rec, const char **s, uint32_t *len)
{
    return rec->opts != NULL && encode_msg_opts_reply_to(rec->opts, rec->opts_len, s, len);
}

/* ------------------------------------------------------ retained values */

int bpwire_retained_value_read(const void *data, size_t len, uint32_t max_record,
                               struct bpwire_record *out, const char **why)
{
    struct mpread r;

    mpread_init(&r, data, len);
    if (bpwire_record_read(&r, max_record, out, why) != 1)
        return -1;
    if (mpread_left(&r) != 0 || !(out->flags & BPWIRE_RETAINED) || out->n_groups != 0) {
        *why = "bad retained record";
        return -1;
    }
    return 0;
}

int bpwire_retained_read(const void *data, size_t len, uint32_t max_record, uint64_t *seq,
                         struct bpwire_record *out, const char **why)
{
    struct mpread r;

    mpread_init(&r, data, len);
    if (!mpread_uint(&r, seq)) {
        *why = "no sequence number";
        return -1;
    }
    return bpwire_retained_value_read(r.p, mpread_left(&r), max_record, out, why);
}

/* --------------------------------------------------------------- control */

static const char *const ctl_names[] = {
    [BPWIRE_HB] = "hb",
    [BPWIRE_HELLO] = "hello",
    [BPWIRE_DELTA] = "delta",
    [BPWIRE_BYE] = "bye",
};

static void ctl_head(msgpack_packer *pk, enum bpwire_ctl_kind kind, size_t n, const char *node,
                     size_t nlen, uint64_t instance)
{
    msgpack_pack_array(pk, n);
    pack_str(pk, ctl_names[kind], strlen(ctl_names[kind]));
    pack_str(pk, node, nlen);
    msgpack_pack_uint64(pk, instance);
}

void bpwire_ctl_write(msgpack_sbuffer *buf, enum bpwire_ctl_kind kind, const char *node,
                      size_t nlen, uint64_t instance, uint64_t version)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    ctl_head(&pk, kind, kind == BPWIRE_BYE ? 3 : 4, node, nlen, instance);
    if (kind != BPWIRE_BYE)
        msgpack_pack_uint64(&pk, version);
}

void bpwire_delta_begin(msgpack_sbuffer *buf, const char *node, size_t nlen, uint64_t instance,
                        uint64_t version, size_t n_changes)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    ctl_head(&pk, BPWIRE_DELTA, 5, node, nlen, instance);
    msgpack_pack_uint64(&pk, version);
    msgpack_pack_array(&pk, 2 * n_changes);
}

void bpwire_change_write(msgpack_sbuffer *buf, const char *field, size_t flen, uint32_t count)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    pack_str(&pk, field, flen);
    msgpack_pack_uint32(&pk, count);
}

static int ctl_kind(const char *s, uint32_t len, enum bpwire_ctl_kind *kind)
{
    for (size_t i = 0; i < sizeof(ctl_names) / sizeof(ctl_names[0]); i++) {
        if (strlen(ctl_names[i]) == len && memcmp(ctl_names[i], s, len) == 0) {
            *kind = (enum bpwire_ctl_kind)i;
            return 0;
        }
    }
    return -1;
}

int bpwire_ctl_read(const void *data, size_t len, struct bpwire_ctl *out, const char **why)
{
    struct mpread r;
    uint32_t n, klen;
    const char *k;

    memset(out, 0, sizeof(*out));
    mpread_init(&r, data, len);
    if (frame_bound(&r, BPWIRE_CTL_MAX, why) != len) {
        *why = "not one frame";
        return -1;
    }
    if (!mpread_array(&r, &n) || n < 3 || !mpread_str(&r, &k, &klen) ||
        ctl_kind(k, klen, &out->kind) < 0 || !mpread_str(&r, &out->node, &out->node_len) ||
        !mpread_uint(&r, &out->instance)) {
        *why = "bad control message";
        return -1;
    }
    if (out->kind == BPWIRE_BYE)
        return 0;
    if (n < 4 || !mpread_uint(&r, &out->version)) {
        *why = "control message without a version";
        return -1;
    }
    if (out->kind != BPWIRE_DELTA)
        return 0;
    uint32_t nc;
    if (n < 5 || !mpread_array(&r, &nc) || nc % 2 != 0) {
        *why = "bad delta";
        return -1;
    }
    out->changes = r;
    out->n_changes = nc / 2;
    return 0;
}

bool bpwire_change_next(struct mpread *cur, const char **field, uint32_t *flen, uint32_t *count)
{
    uint64_t c;

    if (mpread_left(cur) == 0 || !mpread_str(cur, field, flen) || !mpread_uint(cur, &c) ||
        c > UINT32_MAX)
        return false;
    *count = (uint32_t)c;
    return true;
}
