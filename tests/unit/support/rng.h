/*  tests/unit/support/rng.h - a small repeatable random number source.
 *
 *  The suites that check a module against a model through long random
 *  runs (tindex, trecs) need numbers that are the same on every run, so
 *  that a failure can be replayed: xorshift64 from a fixed seed. Not for
 *  anything but tests. Test thread only.
 */
#ifndef TW_TEST_RNG_H
#define TW_TEST_RNG_H

#include <stdint.h>

/* The next number of the sequence in *state (never 0; seed it with any
 * number but 0). */
uint64_t tw_test_rand(uint64_t *state);

#endif /* TW_TEST_RNG_H */
