/*
 * unit_json.c - the CLI's JSON <-> MessagePack conversion: plain values,
 * every '$' form both ways, float printing, refusals, indenting; and the
 * latency histogram's percentiles.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base64.h"
#include "hist.h"
#include "json.h"

/* JSON -> MessagePack -> JSON. */
static char *round_trip(const char *json)
{
    msgpack_sbuffer sb;
    struct strbuf out;
    char err[256];

    msgpack_sbuffer_init(&sb);
    strbuf_init(&out);
    ck_assert_msg(json_to_msgpack(json, strlen(json), &sb, err, sizeof(err)) == 0, "%s: %s", json,
                  err);
    ck_assert_int_eq(json_from_msgpack(sb.data, sb.size, &out), 0);
    msgpack_sbuffer_destroy(&sb);
    return out.data;
}

static void same(const char *json, const char *expect)
{
    char *got = round_trip(json);
    ck_assert_str_eq(got, expect);
    free(got);
}

/* The JSON form of MessagePack bytes. */
static void shows(const char *mp, size_t len, const char *expect)
{
    struct strbuf out;
    strbuf_init(&out);
    ck_assert_int_eq(json_from_msgpack(mp, len, &out), 0);
    ck_assert_str_eq(out.data, expect);
    strbuf_free(&out);
}

static void refused(const char *json)
{
    msgpack_sbuffer sb;
    char err[256] = "";
    msgpack_sbuffer_init(&sb);
    ck_assert_msg(json_to_msgpack(json, strlen(json), &sb, err, sizeof(err)) < 0, "accepted %s",
                  json);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_uint_eq(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(test_plain_values)
{
    same("null", "null");
    same("true", "true");
    same("[false]", "[false]");
    same("0", "0");
    same("-1", "-1");
    same("9223372036854775807", "9223372036854775807");
    same("-9223372036854775808", "-9223372036854775808");
    same("\"h\\u00e9\\n\\\"\\\\\\u0001\"", "\"h\xc3\xa9\\n\\\"\\\\\\u0001\"");
    same("{\"a\": [1, {\"b\": null}], \"c\": \"\"}", "{\"a\":[1,{\"b\":null}],\"c\":\"\"}");
    same("{}", "{}");
    same("[]", "[]");
    same("\"a\\u0000b\"", "\"a\\u0000b\"");
}
END_TEST

START_TEST(test_floats)
{
    same("0.1", "0.1");
    same("1.0", "1.0");
    same("-2.5e-300", "-2.5e-300");
    same("1e300", "1e+300");
    same("123456789.125", "123456789.125");
    /* float32 1.1f prints at float precision */
    shows("\xca\x3f\x8c\xcc\xcd", 5, "1.1");
    shows("\xca\x3f\x80\x00\x00", 5, "1.0");
    shows("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9, "{\"$float\":\"nan\"}");
    shows("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", 9, "{\"$float\":\"-inf\"}");
    same("{\"$float\": \"inf\"}", "{\"$float\":\"inf\"}");
    same("{\"$float\": \"nan\"}", "{\"$float\":\"nan\"}");
}
END_TEST

START_TEST(test_tags_round_trip)
{
    same("{\"$bin\": \"AAEC/w==\"}", "{\"$bin\":\"AAEC/w==\"}");
    same("{\"$bin\": \"\"}", "{\"$bin\":\"\"}");
    same("{\"$ext\": [-3, \"aGk=\"]}", "{\"$ext\":[-3,\"aGk=\"]}");
    same("{\"$int\": \"18446744073709551615\"}", "{\"$int\":\"18446744073709551615\"}");
    same("{\"$int\": \"5\"}", "5");
    same("{\"$str\": \"/w==\"}", "{\"$str\":\"/w==\"}");
    same("{\"$str\": \"aGk=\"}", "\"hi\"");
    same("{\"$map\": [[1, 2], [null, [3]]]}", "{\"$map\":[[1,2],[null,[3]]]}");
    /* a one-pair map keyed by a tag must not read back as the tag */
    same("{\"$map\": [[\"$bin\", \"x\"]]}", "{\"$map\":[[\"$bin\",\"x\"]]}");
    /* other '$' keys are ordinary */
    same("{\"$SYS\": 1}", "{\"$SYS\":1}");
    same("{\"$bin\": \"AA==\", \"other\": 1}", "{\"$bin\":\"AA==\",\"other\":1}");
    /* repeated keys and non-UTF-8 keys go to $map */
    same("{\"$map\": [[\"a\", 1], [\"a\", 2]]}", "{\"$map\":[[\"a\",1],[\"a\",2]]}");
    same("{\"$map\": [[{\"$str\": \"/w==\"}, 1]]}", "{\"$map\":[[{\"$str\":\"/w==\"},1]]}");
    /* nested tags */
    same("[{\"$bin\": \"AA==\"}, {\"k\": {\"$ext\": [1, \"\"]}}]",
         "[{\"$bin\":\"AA==\"},{\"k\":{\"$ext\":[1,\"\"]}}]");
}
END_TEST

START_TEST(test_refusals)
{
    refused("");
    refused("{");
    refused("[1,]");
    refused("nan");
    refused("18446744073709551616");
    refused("{\"a\": 1, \"a\": 2}");
    refused("{\"$bin\": 5}");
    refused("{\"$bin\": \"***\"}");
    refused("{\"$ext\": [300, \"\"]}");
    refused("{\"$ext\": [1]}");
    refused("{\"$map\": [[1]]}");
    refused("{\"$map\": {}}");
    refused("{\"$int\": \"12x\"}");
    refused("{\"$int\": \"99999999999999999999\"}");
    refused("{\"$float\": \"big\"}");
    refused("[1, {\"$bin\": 1}]");
}
END_TEST

START_TEST(test_base64)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char enc[32];
    uint8_t dec[32];
    for (int i = 0; i < 7; i++) {
        base64_encode((const uint8_t *)in[i], strlen(in[i]), enc);
        ck_assert_str_eq(enc, out[i]);
        long n = base64_decode(out[i], strlen(out[i]), dec);
        ck_assert_int_eq(n, (long)strlen(in[i]));
        ck_assert(memcmp(dec, in[i], (size_t)n) == 0);
    }
    ck_assert_int_eq(base64_decode("Zm9vY", 5, dec), -1);
    ck_assert_int_eq(base64_decode("Zm9=v", 5, dec), -1);
}
END_TEST

START_TEST(test_hist)
{
    struct hist h;
    hist_init(&h);
    ck_assert_uint_eq(hist_percentile(&h, 50), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_add(&h, v * 1000); /* 1 us .. 100 ms */
    ck_assert_uint_eq(h.n, 100000);
    ck_assert_uint_eq(h.max, 100000000);
    double p50 = (double)hist_percentile(&h, 50), p99 = (double)hist_percentile(&h, 99);
    ck_assert(fabs(p50 - 50e6) / 50e6 < 0.04);
    ck_assert(fabs(p99 - 99e6) / 99e6 < 0.04);
    ck_assert_uint_eq(hist_percentile(&h, 100), h.max);
    struct hist g;
    hist_init(&g);
    hist_add(&g, 7);
    hist_add(&g, UINT64_MAX);
    hist_merge(&h, &g);
    ck_assert_uint_eq(h.min, 7);
    ck_assert_uint_eq(h.max, UINT64_MAX);
    ck_assert_uint_eq(hist_percentile(&g, 50), 7);
}
END_TEST

static void indents(const char *json, const char *expect)
{
    struct strbuf out;
    strbuf_init(&out);
    ck_assert_int_eq(json_indent(json, strlen(json), &out), 0);
    ck_assert_str_eq(out.data ? out.data : "", expect);
    strbuf_free(&out);
}

START_TEST(test_indent)
{
    indents("1", "1");
    indents("\"a,b:{[\"", "\"a,b:{[\"");
    indents("{}", "{}");
    indents("[ ]", "[]");
    indents("{\"a\":1,\"b\":[true,null,{}],\"c\":{\"d\":\"x\\\"}y\"}}",
            "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null,\n    {}\n  ],\n  \"c\": {\n"
            "    \"d\": \"x\\\"}y\"\n  }\n}");
    /* What json_from_msgpack writes, whitespace or not, indents the same. */
    indents("{ \"k\" : [ 1 , 2 ] }", "{\n  \"k\": [\n    1,\n    2\n  ]\n}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, test_plain_values);
    tcase_add_test(tc, test_floats);
    tcase_add_test(tc, test_tags_round_trip);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_hist);
    tcase_add_test(tc, test_indent);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
