/*  tests/unit/support/rng.c - xorshift64* for the suites (see rng.h). */
#include "rng.h"

uint64_t tw_test_rng = 0x9e3779b97f4a7c15ULL;

uint64_t
tw_test_rand(void)
{
    tw_test_rng ^= tw_test_rng >> 12;
    tw_test_rng ^= tw_test_rng << 25;
    tw_test_rng ^= tw_test_rng >> 27;
    return tw_test_rng * 0x2545f4914f6cdd1dULL;
}
