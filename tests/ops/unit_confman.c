/*
 * unit_confman.c - pigeond.conf(5) documents every key config.c accepts,
 * each under its own section's heading (as conf/pigeond.conf and
 * docs/configuration.md must, which unit_config checks).
 *
 * Environment (set by meson): PIGEON_CONF_MAN, the path of man/pigeond.conf.5.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* The whole of PATH, NUL-terminated; the caller frees it. */
static char *file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long len;

    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* The text of the man page's section for config SECTION, up to the next .SH; in place. */
static const char *man_section(char *text, const char *section, size_t *len)
{
    char heading[64];
    const char *start, *end;

    snprintf(heading, sizeof(heading), "\n.SH [%s%s]\n", section,
             strcmp(section, "listener") == 0 || strcmp(section, "stream") == 0 ? " NAME" : "");
    start = strstr(text, heading);
    ck_assert_msg(start != NULL, "no '%s' heading", heading + 1);
    start += strlen(heading);
    end = strstr(start, "\n.SH ");
    *len = end != NULL ? (size_t)(end - start) : strlen(start);
    return start;
}

START_TEST(test_every_key_in_man_page)
{
    const char *path = getenv("PIGEON_CONF_MAN");
    const char *section, *key;
    char *text;

    if (path == NULL) {
        fprintf(stderr, "PIGEON_CONF_MAN unset, not checked\n");
        return;
    }
    text = file_read(path);
    for (size_t i = 0; config_key_at(i, &section, &key); i++) {
        size_t len;
        const char *body = man_section(text, section, &len);
        char bi[64], br[64];
        snprintf(bi, sizeof(bi), "\n.BI %s \"", key);
        snprintf(br, sizeof(br), "\n.BR %s \"", key);
        char *region = strndup(body - 1, len + 1); /* keep the newline before the first line */
        ck_assert_ptr_nonnull(region);
        ck_assert_msg(strstr(region, bi) != NULL || strstr(region, br) != NULL,
                      "%s: [%s] %s has no .TP entry", path, section, key);
        free(region);
    }
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("confman");
    TCase *tc = tcase_create("keys");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_every_key_in_man_page);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
