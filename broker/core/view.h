/*  broker/core/view.h - the broker's state as maps for people and
 *  monitors: the status map and a worker's map.
 *
 *  The status map answers QUERY "status", is the "status" key of the
 *  snapshot (snapshot.h) and is published every second on the "stats"
 *  topic (PROTOCOL.md 5.14); a worker's map answers QUERY "workers" and
 *  WORKER requests and fills the snapshot's worker list. Read only.
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_VIEW_H
#define TW_BROKER_VIEW_H

#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* The status map; with `publish`, as a status body with "pseq" (the
 * stats topic). */
void tw__view_status(struct tw_broker *b, tw_enc_t *e, int publish);

/* One worker as the 12-key map of QUERY "workers" (PROTOCOL.md 5.14). */
void tw__view_worker(struct tw_broker *b, tw_enc_t *e,
                     const tw_bworker_t *w);

#endif /* TW_BROKER_VIEW_H */
