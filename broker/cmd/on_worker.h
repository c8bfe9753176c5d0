/*  broker/cmd/on_worker.h - scaling a running cluster: drain and resize a worker.
 *
 *  A client sends WORKER {seq, op, name | wid, slots?} (proto/PROTOCOL.md
 *  5.18). "drain" makes the broker stop giving the worker tasks and
 *  stations at once and tells it WORKER {op: "drain"}; the worker then does
 *  what it does on SIGTERM (its stations come back "released" with their
 *  checkpoints at their iteration boundaries and are placed elsewhere, its
 *  running tasks finish) and leaves with BYE, which the broker reports as
 *  worker.drained. "resize" sets the worker's slot count: the broker
 *  moves the stations that sit on slots that go away, stops sending to the
 *  worker and tells it WORKER {op: "resize", slots}; the worker answers
 *  WORKER {op: "resized", slots, credit} with its free capacity under the
 *  new count, which replaces the broker's credit for it. Nothing running
 *  is killed: a worker above its new count simply gets no credit back
 *  until it is below it.
 *
 *  Selection: "wid" picks one worker; "name" picks every live worker with
 *  that name (two processes started with the same --name, or a restarted
 *  worker whose old record has not timed out yet), and the reply lists
 *  them all. Broker loop thread only.
 */
#ifndef TW_BROKER_SCALE_H
#define TW_BROKER_SCALE_H

#include "broker/internal.h"

/* Slot counts a resize may ask for (the worker's own --slots bounds). */
#define TW_SCALE_MAX_SLOTS 65536u

/* A client's WORKER request: answered with REPLY or ERROR. */
void tw__broker_on_worker_op(tw_broker_t *b, tw_bclient_t *c,
                             const tw_msg_t *m);

/* A worker's WORKER report ("resized"). */
void tw__broker_on_worker_report(tw_broker_t *b, tw_bworker_t *w,
                                 const tw_msg_t *m);

/* A worker said BYE: forget it, as "drained" if it was asked to drain. */
void tw__broker_worker_bye(tw_broker_t *b, tw_bworker_t *w);

/* "draining", "resizing" or "ready": a worker's state in replies,
 * QUERY workers and the snapshot. */
static inline const char *
tw__broker_worker_state(const tw_bworker_t *w)
{
    return w->leaving ? "draining" : w->resizing ? "resizing" : "ready";
}

/* 1 if the worker may be given tasks and stations now. */
static inline int
tw__broker_worker_open(const tw_bworker_t *w)
{
    return !w->leaving && !w->resizing;
}

#endif /* TW_BROKER_SCALE_H */
