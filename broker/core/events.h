/*  broker/core/events.h - what the broker publishes on the status socket
 *  about tasks, groups, workers and stations (PROTOCOL.md 8.3, 11.12,
 *  12.8).
 *
 *  Each function builds one status message from the records it is given
 *  and publishes it under its topic, and does nothing when no subscriber
 *  wants that topic (tw_status_wants), so an unwatched broker pays one
 *  lookup per event. It reads state and changes none, except the "was
 *  full" mark of tw__event_limit_reached, which is what makes that event
 *  once per filling. Broker loop thread only.
 */
#ifndef TW_BROKER_EVENTS_H
#define TW_BROKER_EVENTS_H

#include <stdint.h>

#include "broker/state/pools.h"
#include "broker/state/stations.h"
#include "broker/state/task.h"
#include "broker/state/workers.h"

struct tw_broker;

/* What a task event adds to the task's body (PROTOCOL.md 12.8): the run
 * time of the attempt that just stopped, the backoff before a retry, and
 * the error of a failed attempt that is retried. A negative number or a
 * NULL error is left out. */
typedef struct {
    int64_t run_ms;
    int64_t retry_in_ms;
    const char *error;
} tw_task_event_x_t;

/* Task event `topic` ("task.submitted"...) for `t`, with the extra keys
 * of `x` (NULL: none). */
void tw__event_task(struct tw_broker *b, const tw_task_t *t,
                    const char *topic, const tw_task_event_x_t *x);

/* group.<pool>.<group>.<event> {pool, group, running, pending, limit}. */
void tw__event_group(struct tw_broker *b, const tw_pool_t *p,
                     const tw_group_t *g, const char *event);

/* group.<pool>.<group>.limit-reached, once per filling of `g`. */
void tw__event_limit_reached(struct tw_broker *b, const tw_pool_t *p,
                             tw_group_t *g);

/* Worker event `topic` (worker.up, worker.down, worker.drain*,
 * worker.resiz*): {wid, name, host, slots, running, stations, reason?,
 * from?} (PROTOCOL.md 8). */
void tw__event_worker(struct tw_broker *b, const char *topic,
                      const tw_bworker_t *w, const char *reason,
                      uint64_t from, int has_from);

/* station.<sid>.<event> with the station's position, and `detail` as its
 * "reason" if not NULL. */
void tw__event_station(struct tw_broker *b, const tw_station_t *st,
                       const char *event, const char *detail);

/* Forget the per-topic counters of a station's topics (tseq.h), so
 * removed stations do not grow the table; a station added again under
 * the same id counts from 1. */
void tw__event_forget_station(struct tw_broker *b, const tw_station_t *st);

#endif /* TW_BROKER_EVENTS_H */
