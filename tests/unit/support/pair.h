/*  tests/unit/support/pair.h - what a broker of a pair says, for the
 *  suites that play one (test_client_pair, test_worker_pair).
 *
 *  The fake frontend and the fake broker send bodies the tests encode;
 *  the refusal of a broker that is not the active one
 *  (proto/PROTOCOL.md 17.8) is the same for clients and workers, so it is
 *  encoded here once. Test thread only.
 */
#ifndef TW_SUPPORT_PAIR_H
#define TW_SUPPORT_PAIR_H

#include <stdint.h>

#include "proto/proto.h"

/* The message of every refusal below. */
#define TW_PAIR_NOT_ACTIVE_MSG "not active: this is the backup broker (passive)"

/* ERROR {code: ENOTACTIVE, msg, ha, active, live} into `e` (initialised
 * by the caller). */
void tw_pair_enc_not_active(tw_enc_t *e, uint64_t ha, const char *active,
                            int live);

#endif /* TW_SUPPORT_PAIR_H */
