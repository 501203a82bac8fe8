/*
 * units.c - numbers with units (see units.h).
 */
#include "units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct unit size_units[] = {
    {"", 1},
    {"k", UNITS_KIB},
    {"kb", UNITS_KIB},
    {"m", UNITS_MIB},
    {"mb", UNITS_MIB},
    {"g", UNITS_GIB},
    {"gb", UNITS_GIB},
};
static const struct unit duration_units[] = {
    {"", UNITS_SEC_MS}, {"ms", 1}, {"s", UNITS_SEC_MS}, {"m", UNITS_MIN_MS},
    {"h", UNITS_HOUR_MS}, {"d", UNITS_DAY_MS},
};
static const struct unit count_units[] = {{"", 1}};

const struct units_kind units_size = {
    size_units, ARRAY_SIZE(size_units),
    "expected a size: a number with an optional k, kb, m, mb, g or gb"};
const struct units_kind units_duration = {
    duration_units, ARRAY_SIZE(duration_units),
    "expected a duration: a number with ms, s, m, h or d (seconds if bare)"};
const struct units_kind units_count = {count_units, ARRAY_SIZE(count_units),
                                       "expected a whole number, digits only"};

int units_parse(const struct units_kind *k, const char *s, uint64_t *out)
{
    char *end;
    uint64_t v;
    bool overflow;

    if (*s < '0' || *s > '9') /* strtoull would skip a blank and take a sign */
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    overflow = errno == ERANGE;
    for (size_t i = 0; i < k->n_units; i++) {
        if (strcasecmp(end, k->units[i].suffix) != 0)
            continue;
        if (overflow || v > UINT64_MAX / k->units[i].mult)
            return -ERANGE;
        *out = v * k->units[i].mult;
        return 0;
    }
    return -EINVAL;
}

void units_format(const struct units_kind *k, char *buf, size_t len, uint64_t v)
{
    const struct unit *u = NULL;

    for (size_t i = 0; i < k->n_units && v != 0; i++)
        if (v % k->units[i].mult == 0 && (u == NULL || k->units[i].mult >= u->mult))
            u = &k->units[i];
    snprintf(buf, len, "%" PRIu64 "%s", u != NULL ? v / u->mult : v, u != NULL ? u->suffix : "");
}
