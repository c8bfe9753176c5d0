/*  tests/unit/support/rng.h - the suites' deterministic random numbers.
 *
 *  Random runs (against a reference model, or of random inputs) must
 *  replay exactly when they fail, so they draw from this one small
 *  generator (xorshift64*) whose whole state is tw_test_rng: a suite seeds
 *  a run by assigning it. It starts at a fixed non-zero value. Test
 *  thread only.
 */
#ifndef TW_TEST_RNG_H
#define TW_TEST_RNG_H

#include <stdint.h>

/* The generator's state; assign a non-zero seed to start a run. */
extern uint64_t tw_test_rng;

/* The next 64 random bits. */
uint64_t tw_test_rand(void);

#endif /* TW_TEST_RNG_H */
