/*  broker/cmd/on_schedule.h - the SCHEDULE command (PROTOCOL.md 18.11).
 *
 *  A client adds, lists, shows, pauses, resumes and removes the broker's
 *  cron schedules, and fires one at once (run-now). Each request is
 *  answered with REPLY {seq, data} or ERROR {seq, code, msg}; a refused
 *  request changes nothing. Firing is core/schedule.h. Broker loop thread
 *  only.
 */
#ifndef TW_BROKER_ON_SCHEDULE_H
#define TW_BROKER_ON_SCHEDULE_H

#include "broker/state/clients.h"
#include "proto/proto.h"

struct tw_broker;

/* A client's SCHEDULE request. */
void tw__on_schedule(struct tw_broker *b, tw_bclient_t *c,
                     const tw_msg_t *m);

#endif /* TW_BROKER_ON_SCHEDULE_H */
