/*  broker/cmd/on_records.h - TASK: retry and purge of task records
 *  (PROTOCOL.md 16.5).
 *
 *  A TASK request names its tasks by `ids` or by the filters of a list
 *  (16.3) with a `state`; each task is retried or purged on its own by
 *  core/recs.h, and the REPLY tells which were done and which refused
 *  and why. Broker loop thread only.
 */
#ifndef TW_BROKER_ON_RECORDS_H
#define TW_BROKER_ON_RECORDS_H

#include "broker/state/clients.h"
#include "proto/proto.h"

struct tw_broker;

/* TASK: REPLY {seq, data: {done, refused, more}}, or ERROR EINVAL. */
void tw__on_task_op(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

#endif /* TW_BROKER_ON_RECORDS_H */
