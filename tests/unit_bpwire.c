/*
 * unit_bpwire.c - the backplane's messages: a batch of records written and
 * read back byte for byte (topic and payload untouched, opts, groups, a
 * nil payload); retained records with their sequence number; control
 * messages of each kind; and the refusals: a wrong version, a cut batch,
 * a bad topic, a record over its bound, a hostile container header,
 * trailing bytes.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "bpwire.h"

/* The body a `pub` frame would carry: topic then payload, encoded by msgpack-c. */
static size_t body_of(msgpack_sbuffer *sb, const char *topic, const char *payload)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, strlen(topic));
    msgpack_pack_str_body(&pk, topic, strlen(topic));
    if (payload == NULL) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "v", 1);
        msgpack_pack_bin(&pk, strlen(payload));
        msgpack_pack_bin_body(&pk, payload, strlen(payload));
    }
    return sb->size;
}

START_TEST(test_batch_roundtrip)
{
    msgpack_sbuffer batch, body, opts;
    msgpack_packer pk;
    struct mpread r, g;
    struct bpwire_record rec;
    const char *origin, *why, *p, *q;
    uint32_t olen, plen, qlen;
    const char *groups[] = {"jobs.*", "w", "jobs.>", "audit"};

    msgpack_sbuffer_init(&batch);
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&opts);
    msgpack_packer_init(&pk, &opts, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 8);
    msgpack_pack_str_body(&pk, "reply_to", 8);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "_INBOX.", 7);

    bpwire_batch_begin(&batch, 0, "a1", 2);
    body_of(&body, "jobs.x", "payload one");
    bpwire_record_write(&batch, 0, (const uint8_t *)body.data, body.size,
                        (const uint8_t *)opts.data, opts.size, groups, 2);
    char first_body[64];
    size_t first_len = body.size;
    memcpy(first_body, body.data, body.size);
    body_of(&body, "orders.eu", NULL);
    bpwire_record_write(&batch, 0, (const uint8_t *)body.data, body.size, NULL, 0, NULL, 0);

    ck_assert_int_eq(bpwire_batch_open(batch.data, batch.size, &r, &origin, &olen, &why), 0);
    ck_assert_uint_eq(olen, 2);
    ck_assert_int_eq(memcmp(origin, "a1", 2), 0);

    ck_assert_int_eq(bpwire_record_read(&r, 4096, &rec, &why), 1);
    ck_assert_uint_eq(rec.flags, 0);
    ck_assert_uint_eq(rec.topic_len, 6);
    ck_assert_int_eq(memcmp(rec.topic, "jobs.x", 6), 0);
    ck_assert_uint_eq(rec.body_len, first_len);
    ck_assert_int_eq(memcmp(rec.body, first_body, first_len), 0); /* byte for byte */
    ck_assert(!rec.payload_nil);
    ck_assert_uint_eq(rec.opts_len, opts.size);
    ck_assert_int_eq(memcmp(rec.opts, opts.data, opts.size), 0);
    const char *rt;
    uint32_t rtlen;
    ck_assert(bpwire_record_reply_to(&rec, &rt, &rtlen));
    ck_assert(rtlen == 7 && memcmp(rt, "_INBOX.", 7) == 0);
    ck_assert_uint_eq(rec.n_groups, 2);
    mpread_init(&g, rec.groups, rec.groups_len);
    ck_assert(bpwire_groups_next(&g, &p, &plen, &q, &qlen));
    ck_assert(plen == 6 && memcmp(p, "jobs.*", 6) == 0 && qlen == 1 && q[0] == 'w');
    ck_assert(bpwire_groups_next(&g, &p, &plen, &q, &qlen));
    ck_assert(qlen == 5 && memcmp(q, "audit", 5) == 0);
    ck_assert(!bpwire_groups_next(&g, &p, &plen, &q, &qlen));

    ck_assert_int_eq(bpwire_record_read(&r, 4096, &rec, &why), 1);
    ck_assert(rec.payload_nil);
    ck_assert_ptr_null(rec.opts);
    ck_assert(!bpwire_record_reply_to(&rec, &rt, &rtlen));
    ck_assert_uint_eq(rec.n_groups, 0);
    ck_assert_int_eq(bpwire_record_read(&r, 4096, &rec, &why), 0); /* the end */

    msgpack_sbuffer_destroy(&batch);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&opts);
}
END_TEST

/* Reads every record of DATA; the first status that is not 1. */
static int read_all(const void *data, size_t len, uint32_t max, const char **why)
{
    struct mpread r;
    struct bpwire_record rec;
    const char *origin;
    uint32_t olen;
    int rc;

    if (bpwire_batch_open(data, len, &r, &origin, &olen, why) < 0)
        return -2;
    while ((rc = bpwire_record_read(&r, max, &rec, why)) == 1)
        ;
    return rc;
}

START_TEST(test_batch_refusals)
{
    msgpack_sbuffer batch, body;
    const char *why;

    msgpack_sbuffer_init(&batch);
    msgpack_sbuffer_init(&body);
    bpwire_batch_begin(&batch, 40, "a1", 2); /* room for a header the caller writes */
    ck_assert_uint_eq(batch.size, 40 + 5);
    memmove(batch.data, batch.data + 40, 5);
    batch.size = 5;
    body_of(&body, "t", "x");
    bpwire_record_write(&batch, 0, (const uint8_t *)body.data, body.size, NULL, 0, NULL, 0);
    ck_assert_int_eq(read_all(batch.data, batch.size, 4096, &why), 0);

    /* Cut anywhere inside the record (after the 5-byte header): refused, never read past the end.
     */
    for (size_t cut = 6; cut < batch.size; cut++)
        ck_assert_int_eq(read_all(batch.data, cut, 4096, &why), -1);
    /* A record larger than the bound. */
    ck_assert_int_eq(read_all(batch.data, batch.size, 8, &why), -1);

    /* A version we do not know. */
    char v2[] = {(char)0x92, 0x02, (char)0xa2, 'a', '1'};
    ck_assert_int_eq(read_all(v2, sizeof(v2), 4096, &why), -2);
    ck_assert_str_eq(why, "unknown batch format version");

    /* A record with a wildcard topic, or of the wrong shape. */
    const char head[] = {(char)0x92, 0x01, (char)0xa2, 'a', '1'};
    const char wild[] = {(char)0x95, 0x00, (char)0xa1, '*', 0x01, (char)0xc0, (char)0xc0};
    const char four[] = {(char)0x94, 0x00, (char)0xa1, 't', 0x01, (char)0xc0};
    const char hostile[] = {(char)0xdd, 0x7f, (char)0xff, (char)0xff, (char)0xff};
    const char *bad[] = {wild, four, hostile};
    const size_t bad_len[] = {sizeof(wild), sizeof(four), sizeof(hostile)};
    for (size_t i = 0; i < 3; i++) {
        char buf[64];
        memcpy(buf, head, sizeof(head));
        memcpy(buf + sizeof(head), bad[i], bad_len[i]);
        ck_assert_int_eq(read_all(buf, sizeof(head) + bad_len[i], 4096, &why), -1);
    }
    msgpack_sbuffer_destroy(&batch);
    msgpack_sbuffer_destroy(&body);
}
END_TEST

START_TEST(test_retained)
{
    msgpack_sbuffer buf, body;
    msgpack_packer pk;
    struct bpwire_record rec;
    uint64_t seq;
    const char *why;
    const uint8_t opts[] = {0x81, 0xa8, 'r', 'e', 't', 'a', 'i', 'n', 'e', 'd', 0xc3};

    msgpack_sbuffer_init(&buf);
    msgpack_sbuffer_init(&body);
    body_of(&body, "config.x", "v1");
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, 70000); /* as the script's cmsgpack.pack(seq) */
    size_t at = buf.size;
    bpwire_record_write(&buf, BPWIRE_RETAINED, (const uint8_t *)body.data, body.size, opts,
                        sizeof(opts), NULL, 0);
    ck_assert_int_eq(bpwire_retained_read(buf.data, buf.size, 4096, &seq, &rec, &why), 0);
    ck_assert_uint_eq(seq, 70000);
    ck_assert_uint_eq(rec.flags, BPWIRE_RETAINED);
    ck_assert_uint_eq(rec.opts_len, sizeof(opts));
    ck_assert_int_eq(bpwire_retained_value_read(buf.data + at, buf.size - at, 4096, &rec, &why), 0);
    ck_assert_uint_eq(rec.body_len, body.size);

    /* A live record is not a retained one; trailing bytes are refused. */
    msgpack_sbuffer_clear(&buf);
    bpwire_record_write(&buf, 0, (const uint8_t *)body.data, body.size, NULL, 0, NULL, 0);
    ck_assert_int_eq(bpwire_retained_value_read(buf.data, buf.size, 4096, &rec, &why), -1);
    msgpack_sbuffer_clear(&buf);
    bpwire_record_write(&buf, BPWIRE_RETAINED, (const uint8_t *)body.data, body.size, NULL, 0, NULL,
                        0);
    msgpack_sbuffer_write(&buf, "\x01", 1);
    ck_assert_int_eq(bpwire_retained_value_read(buf.data, buf.size, 4096, &rec, &why), -1);
    msgpack_sbuffer_destroy(&buf);
    msgpack_sbuffer_destroy(&body);
}
END_TEST

START_TEST(test_control)
{
    msgpack_sbuffer buf;
    struct bpwire_ctl m;
    const char *why, *field;
    uint32_t flen, count;

    msgpack_sbuffer_init(&buf);
    bpwire_ctl_write(&buf, BPWIRE_HB, "node-1", 6, 1ULL << 62, 42);
    ck_assert_int_eq(bpwire_ctl_read(buf.data, buf.size, &m, &why), 0);
    ck_assert_int_eq(m.kind, BPWIRE_HB);
    ck_assert(m.node_len == 6 && memcmp(m.node, "node-1", 6) == 0);
    ck_assert_uint_eq(m.instance, 1ULL << 62);
    ck_assert_uint_eq(m.version, 42);

    bpwire_ctl_write(&buf, BPWIRE_BYE, "n", 1, 7, 0);
    ck_assert_int_eq(bpwire_ctl_read(buf.data, buf.size, &m, &why), 0);
    ck_assert_int_eq(m.kind, BPWIRE_BYE);
    ck_assert_uint_eq(m.instance, 7);

    bpwire_delta_begin(&buf, "n", 1, 7, 3, 2);
    bpwire_change_write(&buf, "a.>", 3, 2);
    bpwire_change_write(&buf, "a.* w", 5, 0);
    ck_assert_int_eq(bpwire_ctl_read(buf.data, buf.size, &m, &why), 0);
    ck_assert_int_eq(m.kind, BPWIRE_DELTA);
    ck_assert_uint_eq(m.version, 3);
    ck_assert_uint_eq(m.n_changes, 2);
    struct mpread cur = m.changes;
    ck_assert(bpwire_change_next(&cur, &field, &flen, &count));
    ck_assert(flen == 3 && count == 2);
    ck_assert(bpwire_change_next(&cur, &field, &flen, &count));
    ck_assert(flen == 5 && memcmp(field, "a.* w", 5) == 0 && count == 0);
    ck_assert(!bpwire_change_next(&cur, &field, &flen, &count));

    /* Refused: trailing bytes, an unknown kind, a cut message. */
    msgpack_sbuffer_write(&buf, "\x00", 1);
    ck_assert_int_eq(bpwire_ctl_read(buf.data, buf.size, &m, &why), -1);
    const char odd[] = {(char)0x94, (char)0xa2, 'h', 'i', (char)0xa1, 'n', 0x01, 0x01};
    ck_assert_int_eq(bpwire_ctl_read(odd, sizeof(odd), &m, &why), -1);
    bpwire_ctl_write(&buf, BPWIRE_HELLO, "n", 1, 7, 9);
    ck_assert_int_eq(bpwire_ctl_read(buf.data, buf.size - 1, &m, &why), -1);
    msgpack_sbuffer_destroy(&buf);
}
END_TEST

static Suite *bpwire_suite(void)
{
    Suite *s = suite_create("bpwire");
    TCase *tc = tcase_create("messages");

    tcase_add_test(tc, test_batch_roundtrip);
    tcase_add_test(tc, test_batch_refusals);
    tcase_add_test(tc, test_retained);
    tcase_add_test(tc, test_control);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bpwire_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
