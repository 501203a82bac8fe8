/*
 * hist.c - log-linear latency histogram (see hist.h).
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned hist_bucket(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 5; /* v >> shift is in [32, 64) */
    return 64 + (shift - 1) * 32 + (unsigned)((v >> shift) - 32);
}

/* The middle of bucket B. */
static uint64_t hist_value(unsigned b)
{
    if (b < 64)
        return b;
    unsigned shift = (b - 64) / 32 + 1;
    uint64_t low = (uint64_t)((b - 64) % 32 + 32) << shift;
    return low + ((uint64_t)1 << shift) / 2;
}

void hist_add(struct hist *h, uint64_t v)
{
    h->counts[hist_bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(struct hist *to, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        to->counts[i] += from->counts[i];
    to->n += from->n;
    to->sum += from->sum;
    if (from->min < to->min)
        to->min = from->min;
    if (from->max > to->max)
        to->max = from->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
    if (rank == 0)
        rank = 1;
    if (rank >= h->n)
        return h->max; /* exact, not a bucket's middle */
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}
