/*  broker/cmd/on_station.h - the station commands: STATION from clients
 *  and workers, S2N from workers (PROTOCOL.md 11.6 - 11.8).
 *
 *  Two sources of change meet here. Clients operate on stations (STATION
 *  with an "op" of proto/ops.h: add, remove, pause, continue, stop,
 *  cancel, send, list, show, rebalance), one s_op_<name>() each; workers
 *  report what their stations do (STATION items with an "ev", and S2N
 *  channel data). Each handler changes state through core/place.h, which
 *  queues the worker traffic for the end of the turn, and answers the
 *  client at once. Broker loop thread only.
 */
#ifndef TW_BROKER_ON_STATION_H
#define TW_BROKER_ON_STATION_H

#include "broker/state/clients.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* A client's STATION operation: answered with REPLY or ERROR. */
void tw__on_station_op(struct tw_broker *b, tw_bclient_t *c,
                       const tw_msg_t *m);

/* A worker's STATION report (items with an "ev") and the credit in it. */
void tw__on_station_report(struct tw_broker *b, tw_bworker_t *w,
                           const tw_msg_t *m);

/* A worker's S2N items: published on s2n.<sid> (PROTOCOL.md 11.7). */
void tw__on_s2n(struct tw_broker *b, tw_bworker_t *w, const tw_msg_t *m);

#endif /* TW_BROKER_ON_STATION_H */
