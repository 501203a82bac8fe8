/*
 * units.h - numbers with units, as pigeond's files write them.
 *
 * A size is whole bytes with an optional k, kb, m, mb, g or gb (powers of
 * 1024); a duration whole milliseconds written with ms, s, m, h or d (a bare
 * number is seconds); a count is digits alone.  Digits only: no sign, no
 * blank, no fraction; suffixes in any case.  Each is written back in the
 * largest unit that states it exactly ("64mb", "90s", "7d"), so that what a
 * reload logs reads like the file.  config.c and users.c use it; so may
 * anything else that reads one of pigeond's files.
 */
#ifndef PIGEON_UNITS_H
#define PIGEON_UNITS_H

#include <stddef.h>
#include <stdint.h>

#define UNITS_KIB ((uint64_t)1024)
#define UNITS_MIB (UNITS_KIB * 1024)
#define UNITS_GIB (UNITS_MIB * 1024)

#define UNITS_SEC_MS  ((uint64_t)1000)
#define UNITS_MIN_MS  (UNITS_SEC_MS * 60)
#define UNITS_HOUR_MS (UNITS_MIN_MS * 60)
#define UNITS_DAY_MS  (UNITS_HOUR_MS * 24)

struct unit {
    const char *suffix;
    uint64_t mult;
};

/* A kind of number: its suffixes, and why a malformed one is refused. */
struct units_kind {
    const struct unit *units;
    size_t n_units;
    const char *expected; /* "expected a size: ..." */
};

extern const struct units_kind units_size;     /* bytes */
extern const struct units_kind units_duration; /* milliseconds */
extern const struct units_kind units_count;    /* plain */

/* Reads S as a K: 0 and *OUT, -EINVAL when malformed, -ERANGE past UINT64_MAX. */
int units_parse(const struct units_kind *k, const char *s, uint64_t *out);

/* Writes V as the file would: "1gb", "64kb", "1000"; "1h", "500ms", "0". */
void units_format(const struct units_kind *k, char *buf, size_t len, uint64_t v);

#endif
