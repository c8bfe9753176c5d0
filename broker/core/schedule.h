/*  broker/core/schedule.h - schedules firing: ticks become tasks.
 *
 *  The broker's cron schedules (PROTOCOL.md 18.11, docs/WORKFLOWS.md 3)
 *  are decided by the engine of state/sched.h and kept, with their zones
 *  and records, in b->sched (state/schedtab.h). This module acts on what
 *  the engine hands out: a FIRE becomes a task made from the schedule's
 *  template through the same path as a client's SUBMIT (submit.h), with
 *  no client; a SKIP is counted. Each publishes schedule.<name>.fired or
 *  .skipped on the status socket and marks the schedule's record, which
 *  the turn's commit writes in the same transaction as the fired task
 *  (persist.h). The loop (broker.c) runs tw__schedule_due when its timer,
 *  armed for tw__schedule_next, goes off. Broker loop thread only.
 */
#ifndef TW_BROKER_SCHEDULE_H
#define TW_BROKER_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/sched.h"
#include "proto/proto.h"

struct tw_broker;

/* Fire and skip everything due now (wall clock). */
void tw__schedule_due(struct tw_broker *b);

/* In how many ms the next tick is due: 0 (at once) or more, or -1 when
 * no schedule is due ever (the timer stops). */
int64_t tw__schedule_next(const struct tw_broker *b);

/* Act on one action of the engine for schedule act->name: a FIRE makes
 * its task (*id), a SKIP is counted; either is published and marks the
 * record. Returns 0, or for a FIRE the SUBMIT refusal's code with the
 * reason in `why` (the tick then counts as skipped, "refused: ENAME"). */
int tw__schedule_act(struct tw_broker *b, const tw_sched_action_t *act,
                     uint64_t *id, char *why, size_t wlen);

/* Schedule `name` changed: its record is written with the turn's commit
 * (nothing to write without a store). */
void tw__schedule_mark(struct tw_broker *b, const char *name, size_t len);

/* The schedule figures of QUERY status: TW__SCHEDULE_STATUS_KEYS keys
 * ("schedules", "schedule_fired", "schedule_skipped") and their values. */
#define TW__SCHEDULE_STATUS_KEYS 3
void tw__schedule_status(const struct tw_broker *b, tw_enc_t *e);

#endif /* TW_BROKER_SCHEDULE_H */
