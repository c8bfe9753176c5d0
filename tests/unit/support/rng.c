/*  tests/unit/support/rng.c - xorshift64 (see rng.h). */
#include "tests/unit/support/rng.h"

uint64_t
tw_test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}
