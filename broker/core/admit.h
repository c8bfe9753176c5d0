/*  broker/core/admit.h - may a submission enter: S54's checks.
 *
 *  A SUBMIT item becomes a task only if it passes, in this order: its
 *  handler is known (some worker offered it, or the broker started less
 *  than --handler-grace ago), its pool is not closed, not locked (unless
 *  one of its groups existed before the lock), none of its groups refuses
 *  it (at its limit with full=reject, or out of calls), its arguments are
 *  within --max-payload and one msgpack value, the queue is not full, and
 *  the payload budget and the store have room. A refusal changes nothing
 *  but the counters of the refusal (overflow, over_budget) and the
 *  group's limit-reached event. Broker loop thread only.
 */
#ifndef TW_BROKER_ADMIT_H
#define TW_BROKER_ADMIT_H

#include <stddef.h>

#include "broker/state/pools.h"
#include "proto/proto.h"

struct tw_broker;

/* The index of handler `h` (hlen bytes) if a SUBMIT may name it: some
 * worker offered it, or the broker started less than handler-grace
 * seconds ago (then it is interned). Otherwise TW_EHANDLER with the reason
 * in `why` (S54's first check). */
int tw__admit_handler(struct tw_broker *b, const char *h, size_t hlen,
                      char *why, size_t wlen);

/* Decide whether SUBMIT item `it` may enter. Returns 0 with its handler
 * index in *hidx and its pool (created if new) in *pool, or an error code
 * with the reason in `why`. */
int tw__admit_item(struct tw_broker *b, const tw_item_t *it, int *hidx,
                   tw_pool_t **pool, char *why, size_t wlen);

#endif /* TW_BROKER_ADMIT_H */
