/*  broker/core/view.h - the broker's state as maps for people and
 *  monitors: the status map and a worker's map.
 *
 *  The status map answers QUERY "status", is the "status" key of the
 *  snapshot (snapshot.h) and is published every second on the "stats"
 *  topic (PROTOCOL.md 5.14); a worker's map answers QUERY "workers" and
 *  WORKER requests and fills the snapshot's worker list; pools, groups
 *  and queues answer GROUP, POOL and the read-only QUERYs. Read only.
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_VIEW_H
#define TW_BROKER_VIEW_H

#include "broker/state/pools.h"
#include "broker/state/stations.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* The status map; with `publish`, as a status body with "pseq" (the
 * stats topic). */
void tw__view_status(struct tw_broker *b, tw_enc_t *e, int publish);

/* One worker as the 12-key map of QUERY "workers" (PROTOCOL.md 5.14). */
void tw__view_worker(struct tw_broker *b, tw_enc_t *e,
                     const tw_bworker_t *w);

/* A group's info map (PROTOCOL.md 12.4) and a pool's (12.5). */
void tw__view_group(tw_enc_t *e, const tw_pool_t *p, const tw_group_t *g);
void tw__view_pool(tw_enc_t *e, const tw_pool_t *p);

/* A station's map for STATION list (8 keys) or, with `detail`, show (21
 * keys; PROTOCOL.md 11.8). */
void tw__view_station(struct tw_broker *b, tw_enc_t *e,
                      const tw_station_t *st, int detail);

/* Every pool's info map, in creation order (QUERY pools). */
void tw__view_pools(struct tw_broker *b, tw_enc_t *e);

/* The group info maps of every pool, or of `only`; with `at_limit`, only
 * the groups at their limit (QUERY groups). */
void tw__view_groups(struct tw_broker *b, tw_enc_t *e, const tw_pool_t *only,
                     int at_limit);

/* The queues by handler as an array of {handler, ready, workers}: every
 * handler the broker knows, its ready tasks, the workers offering it
 * (QUERY queues, 16.6; the snapshot's "queues"). */
void tw__view_queues(struct tw_broker *b, tw_enc_t *e);

/* Once a second, for watchers of the whole cluster (PROTOCOL.md 16.7):
 * publish tick.workers {workers: [...]} as QUERY workers, and tick.queues
 * {queues, groups}: QUERY queues and the groups at their limit. Each
 * only when subscribed. */
void tw__view_ticks(struct tw_broker *b);

#endif /* TW_BROKER_VIEW_H */
