/*  broker/core/flow.h - a task's way through the broker, and its counters.
 *
 *      submit ──> PENDING ──dispatch──> RUNNING ──DONE/cancel/lost──> ENDED
 *        │        ^ │  ^ ^                  │                           ^
 *        │ release│ │  │ '── worker lost, ──'                           │
 *        v        │ │  │     retry (after backoff)                      │
 *      BLOCKED ───' v  │                       cancel, upstream failed  │
 *        │     parked on a full pool or group, or delayed until due_ms  │
 *        '──────────────────────────────────────────────────────────────'
 *
 *  A task submitted --after others is BLOCKED (counted nowhere, in no
 *  heap) until they end; the dependency engine (state/deps.h) decides,
 *  and every end of a task goes through tw__flow_end, which applies what
 *  it decides in the same turn: release (PENDING, with the parents'
 *  results as arguments if asked) or cancel ("upstream failed").
 *
 *  A pending task is in exactly one heap (t->inq): its handler's ready
 *  queue, the parked heap of the pool or group that is full, or the
 *  delayed heap. Every move between states goes through one function here,
 *  which keeps the pool and group counters (pending, running, ended,
 *  cancelled) exact and publishes the task and group events; nothing else
 *  in the broker touches those counters. Dispatch lives here too, because
 *  it is where limits are enforced: a task whose pool or group has no room
 *  is parked there instead of being sent, and the first parked task goes
 *  back to its ready queue whenever a task of that pool or group stops
 *  running. No timers: the loop asks when the next delayed task is due
 *  and calls tw__flow_due then. Broker loop thread only.
 */
#ifndef TW_BROKER_FLOW_H
#define TW_BROKER_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/queue.h"
#include "broker/state/task.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* Payload bytes dispatched in one turn at most: beyond, the rest goes in
 * the next turns, so large payloads never hold the loop for long. */
#define TW__DISPATCH_BYTES (4u << 20)

/* Set up the delayed heap. */
void tw__flow_init(struct tw_broker *b);

/* Make a task pending: counted, and in its ready queue or delayed. */
void tw__flow_enqueue(struct tw_broker *b, tw_task_t *t);

/* A new task `t` (not yet enqueued) that names `n` parents, each a task
 * the broker knows, under policy `mode` (tw_deps_mode_t), with `wr` 1 to
 * pass their results: BLOCKED if some have not ended, enqueued if all
 * ended as `mode` requires, or ended cancelled ("upstream failed: task
 * <id> ended <state>") if, under all-ok, one ended otherwise. With
 * `publish`, task.submitted goes out first (state "blocked" when it
 * waits). */
void tw__flow_after(struct tw_broker *b, tw_task_t *t,
                    const uint64_t *parents, size_t n, int mode, int wr,
                    int publish);

/* After recovery: decide every blocked task read back from the store by
 * how its parents ended (a parent the store no longer holds counts as
 * lost), as tw__flow_after does, without events. */
void tw__flow_recover_blocked(struct tw_broker *b);

/* Take a pending task out of whatever heap holds it and uncount it (to
 * cancel it, or to adopt it as running). */
void tw__flow_unpend(struct tw_broker *b, tw_task_t *t);

/* Move up to n tasks parked on `q` back to their ready queues (a limit
 * was raised or cleared). */
void tw__flow_unpark(struct tw_broker *b, tw_queue_t *q, size_t n);

/* A running task stops running (outcome, cancel, worker lost): off its
 * worker, uncounted, and room handed to a parked task. The caller then
 * ends it or enqueues it again. */
void tw__flow_halt(struct tw_broker *b, tw_task_t *t);

/* End a task that is neither pending nor running any more: record the
 * outcome, count it, route it to its client, publish. */
void tw__flow_end(struct tw_broker *b, tw_task_t *t, int state,
                  const void *r, size_t rlen, const char *err, size_t elen);

/* Run a failed task again after a backoff: --retry-base ms doubling per
 * attempt, at most 30 s, with +-25 % jitter so retries of many tasks
 * spread out. The attempt's error is kept ("attempt N: ...") and the
 * attempt is published as task.retry (PROTOCOL.md 12.8). The task must
 * have been halted. */
void tw__flow_retry(struct tw_broker *b, tw_task_t *t, const char *err,
                    size_t elen);

/* A task whose worker is gone (lost, or not re-announced after a
 * restart): ended cancelled if a cancel was asked, ended lost once it had
 * max-attempts runs, else queued again (counted in `requeued`). Returns
 * TW_ST_CANCELLED, TW_ST_LOST or TW_ST_PENDING. */
int tw__flow_orphan(struct tw_broker *b, tw_task_t *t);

/* Cancel one task whatever its state: a pending or blocked one ends at
 * once, a running one is marked and its worker sent CANCEL. Returns 1 if
 * it was pending, blocked or running, 0 if it had already ended or was
 * being cancelled. */
int tw__flow_cancel(struct tw_broker *b, tw_task_t *t);

/* Count task `t` as running with no worker yet: it was running when the
 * broker stopped, or its worker is re-registering (lease.h). */
void tw__flow_hold(struct tw_broker *b, tw_task_t *t);

/* A held task runs on worker `w` (re-announced, or reported by ep). */
void tw__flow_attach(struct tw_broker *b, tw_task_t *t, tw_bworker_t *w);

/* How long the running task `t` has run in its current attempt (since
 * its dispatch), or -1 if it is not running. */
int64_t tw__flow_run_ms(const struct tw_broker *b, const tw_task_t *t);

/* Encode one outcome/state item for task `t` into `e` (ACK-side RESULT
 * items and RESULT answers), with `why` for a task that waits. */
void tw__flow_result_item(const struct tw_broker *b, tw_enc_t *e,
                          const tw_task_t *t);

/* Why task `t` is not running (PROTOCOL.md 18.9), in buf (cap octets):
 * "waiting for tasks 12, 13" (blocked), "not before <RFC 3339 time>"
 * (delayed), "group g at its limit 2" or "pool p at its size 4"
 * (parked). Returns the length, or 0 (running, ended, or ready and only
 * waiting for a worker's free slot). */
size_t tw__flow_why(const struct tw_broker *b, const tw_task_t *t, char *buf,
                    size_t cap);

/* Send pending tasks to workers with credit, at most TW__DISPATCH_BYTES
 * of them. Returns 1 if ready tasks were left for another turn. */
int tw__flow_dispatch(struct tw_broker *b);

/* Move the delayed tasks due at `now_ms` to their ready queues. */
void tw__flow_due(struct tw_broker *b, uint64_t now_ms);

/* When the first delayed task is due (loop ms), or 0 if none is. */
uint64_t tw__flow_next_due(const struct tw_broker *b);

#endif /* TW_BROKER_FLOW_H */
