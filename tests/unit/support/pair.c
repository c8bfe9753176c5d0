/*  tests/unit/support/pair.c - see pair.h. */
#include "tests/unit/support/pair.h"
#include "common/error.h"

void
tw_pair_enc_not_active(tw_enc_t *e, uint64_t ha, const char *active,
                       int live)
{
    tw_enc_map(e, 5);
    tw_enc_key(e, TW_F_CODE);
    tw_enc_int(e, TW_ENOTACTIVE);
    tw_enc_key(e, TW_F_MSG);
    tw_enc_cstr(e, TW_PAIR_NOT_ACTIVE_MSG);
    tw_enc_key(e, TW_F_HA);
    tw_enc_uint(e, ha);
    tw_enc_key(e, TW_F_ACTIVE);
    tw_enc_cstr(e, active);
    tw_enc_key(e, TW_F_LIVE);
    tw_enc_uint(e, (uint64_t)live);
}
