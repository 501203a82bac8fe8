/*
 * backoff.c - jittered exponential backoff and xorshift64* (see backoff.h).
 */
#include "backoff.h"

#include <sys/random.h>
#include <time.h>

void backoff_rng_seed(struct backoff_rng *r)
{
    uint64_t seed = 0;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)r;
    }
    r->s = seed != 0 ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t backoff_rng_next(struct backoff_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint32_t backoff_delay_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms,
                          struct backoff_rng *rng)
{
    uint64_t d = min_ms > 0 ? min_ms : 1;

    if (max_ms < d)
        max_ms = (uint32_t)d;
    for (uint32_t i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t half = d / 2;
    return (uint32_t)(half + backoff_rng_next(rng) % (d - half + 1));
}
