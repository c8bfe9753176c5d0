/*  tests/unit/support/pair.c - see pair.h. */
#include "tests/unit/support/pair.h"
#include "common/error.h"

void
tw_pair_enc_not_active(tw_enc_t *e, uint64_t ha, const char *active,
                       int live)
{
    tw_enc_not_active(e, TW_PAIR_NOT_ACTIVE_MSG, ha, active, live);
}
