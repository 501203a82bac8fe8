/*
 * siphash.h - SipHash-c-d, the keyed hash of Aumasson and Bernstein
 * ("SipHash: a fast short-input PRF", 2012), with 64-bit output.
 *
 * hmap.c hashes every topic, token and sid with SipHash-1-3 under a random
 * 128-bit key: whoever knows the algorithm but not the key cannot tell which
 * keys share a slot, so a peer cannot choose topics that collide.  SipHash-1-3
 * (one compression round per 8-byte block, three finalisation rounds) is the
 * variant Python, Rust's HashMap and the Linux kernel use for hash tables;
 * SipHash-2-4 is the conservative PRF.  The round counts are parameters so
 * that the unit test can check this code against the published SipHash-2-4
 * vectors; hmap.c calls it with constants, which the compiler folds, so the
 * loops cost nothing.
 *
 * Written from the paper's definition: the state v0..v3 is the key xored
 * into "somepseudorandomlygeneratedbytes", each little-endian 8-byte block
 * m is absorbed as v3 ^= m, C rounds, v0 ^= m; the last block holds the
 * 0..7 leftover bytes and the length's low byte in its top byte; then
 * v2 ^= 0xff, D rounds, and the output is v0 ^ v1 ^ v2 ^ v3.
 */
#ifndef PIGEON_SIPHASH_H
#define PIGEON_SIPHASH_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SIPHASH_KEY_BYTES 16

static inline uint64_t siphash_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound over the state V. */
static inline void siphash_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = siphash_rotl(v[1], 13);
    v[1] ^= v[0];
    v[0] = siphash_rotl(v[0], 32);
    v[2] += v[3];
    v[3] = siphash_rotl(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = siphash_rotl(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = siphash_rotl(v[1], 17);
    v[1] ^= v[2];
    v[2] = siphash_rotl(v[2], 32);
}

static inline void siphash_absorb(uint64_t v[4], uint64_t m, int c_rounds)
{
    v[3] ^= m;
    for (int i = 0; i < c_rounds; i++)
        siphash_round(v);
    v[0] ^= m;
}

static inline uint64_t siphash_load(const unsigned char *p, size_t n)
{
    uint64_t w = 0;

    memcpy(&w, p, n);
    return le64toh(w);
}

/*
 * The R (1..7) bytes at P as the low bytes of a word, with no loop: where
 * the message has 8 bytes before its end, one load of its last 8, shifted;
 * else two overlapping 4-byte loads, or three single bytes, that together
 * cover the R bytes (a byte read twice lands in the same place twice).
 */
static inline uint64_t siphash_tail(const unsigned char *p, size_t r, size_t len)
{
    if (len >= 8)
        return siphash_load(p + r - 8, 8) >> (64 - 8 * r);
    if (r >= 4)
        return siphash_load(p, 4) | siphash_load(p + r - 4, 4) << (8 * (r - 4));
    return (uint64_t)p[0] | (uint64_t)p[r >> 1] << (8 * (r >> 1)) |
           (uint64_t)p[r - 1] << (8 * (r - 1));
}

/*
 * SipHash-C_ROUNDS-D_ROUNDS of IN[0..LEN) under the key K (k0, k1: the 16
 * key bytes read as two little-endian words).
 */
static inline uint64_t siphash(const uint64_t k[2], const void *in, size_t len, int c_rounds,
                               int d_rounds)
{
    const unsigned char *p = in;
    const unsigned char *end = p + (len & ~(size_t)7);
    uint64_t v[4] = {
        k[0] ^ UINT64_C(0x736f6d6570736575),
        k[1] ^ UINT64_C(0x646f72616e646f6d),
        k[0] ^ UINT64_C(0x6c7967656e657261),
        k[1] ^ UINT64_C(0x7465646279746573),
    };
    uint64_t last = (uint64_t)len << 56;

    for (; p != end; p += 8)
        siphash_absorb(v, siphash_load(p, 8), c_rounds);
    if (len & 7)
        last |= siphash_tail(p, len & 7, len);
    siphash_absorb(v, last, c_rounds);
    v[2] ^= 0xff;
    for (int i = 0; i < d_rounds; i++)
        siphash_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The 16 key bytes as siphash() takes them. */
static inline void siphash_key(uint64_t k[2], const unsigned char bytes[SIPHASH_KEY_BYTES])
{
    uint64_t w[2];

    memcpy(w, bytes, sizeof w);
    k[0] = le64toh(w[0]);
    k[1] = le64toh(w[1]);
}

#endif
