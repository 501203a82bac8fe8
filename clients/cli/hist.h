/*
 * hist.h - a latency histogram for `pigeon bench`.
 *
 * Log-linear buckets, as in HdrHistogram: values below 64 have a bucket
 * each; above, each power of two is split into 32 buckets, so a recorded
 * value is known within 1/32 (about 3%) of itself, from nanoseconds to
 * centuries, in 15 KiB.  Adding is a few instructions and no branch on
 * the bucket layout, so a subscriber records every message.  Count, sum,
 * min and max are exact.
 */
#ifndef PIGEON_CLI_HIST_H
#define PIGEON_CLI_HIST_H

#include <stdint.h>

#define HIST_BUCKETS (64 + 58 * 32)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n, sum, min, max;
};

void hist_init(struct hist *h);

/* Records value V. */
void hist_add(struct hist *h, uint64_t v);

/* Adds every value of FROM to TO. */
void hist_merge(struct hist *to, const struct hist *from);

/* The value at percentile P (0 < P <= 100): the bucket's middle, or 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

#endif
