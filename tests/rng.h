/*
 * rng.h: the small seedable generators the tests and test tools use, so a
 * seed gives the same run everywhere. Not for anything but tests.
 */
#ifndef TRP_TEST_RNG_H
#define TRP_TEST_RNG_H

#include <stdint.h>

/* xorshift64: state must start non-zero. */
static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* splitmix64: any state, including 0. */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
