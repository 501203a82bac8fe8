/*
 * backoff.h - reconnect delays: exponential, capped, with jitter; and the
 * small per-client random generator behind the jitter and the inbox name.
 *
 * Attempt n (0-based) waits a delay drawn uniformly from [d/2, d], where
 * d = min(max, min * 2^n).  The jitter keeps a crowd of clients that lost
 * the same broker from coming back in lockstep; the lower half-bound keeps
 * each from hammering it.  The generator is xorshift64*, seeded per client
 * from getrandom(): no global state, nothing shared between threads.
 */
#ifndef PIGEON_BACKOFF_H
#define PIGEON_BACKOFF_H

#include <stdint.h>

struct backoff_rng {
    uint64_t s;
};

/* Seeds R from the system's random source (falls back on time and address). */
void backoff_rng_seed(struct backoff_rng *r);

/* The next 64 random bits of R. */
uint64_t backoff_rng_next(struct backoff_rng *r);

/*
 * The delay in ms before reconnect attempt ATTEMPT (0 for the first retry),
 * for delays from MIN_MS doubling up to MAX_MS, jittered with RNG.
 */
uint32_t backoff_delay_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms,
                          struct backoff_rng *rng);

#endif
