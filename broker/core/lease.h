/*  broker/core/lease.h - who owns a running task: leases and
 *  re-announcement.
 *
 *  Three clocks are kept apart. Liveness (heartbeats) finds a dead worker
 *  in seconds; the user's budget (a task's timeout) belongs to the worker;
 *  ownership is the lease this module keeps. Every dispatch of a task gets
 *  a new epoch from one broker-wide counter, sent as "ep" in the TASKS
 *  item; the worker echoes it in DONE. An outcome whose ep is not the
 *  task's latest dispatch comes from a worker that lost the task (it was
 *  requeued and sent elsewhere): it is refused and counted (stale_done), so
 *  no outcome is ever applied twice. An item without ep (an older worker)
 *  is judged as before: the task must be running on that worker.
 *
 *  A worker that reconnects (network cut, broker restart) lists in its
 *  HELLO the tasks it is still running, {id, at, ep}. Such a task is
 *  adopted as running on the worker instead of being requeued, so a long
 *  task is not started twice: when the broker still has it in flight on
 *  the worker's previous registration, when it was recovered from the
 *  store as running (held, tw__lease_held, until re-announced or the
 *  grace period ends), or when it was requeued but not yet sent anywhere
 *  else (pending with the same ep). A re-announced task that cannot be
 *  adopted (ended, unknown, running elsewhere) is cancelled on that
 *  worker. A DONE whose ep matches a held or requeued task is the same
 *  proof of ownership, for tasks that finished while the worker was cut
 *  off. Broker loop thread only.
 */
#ifndef TW_BROKER_LEASE_H
#define TW_BROKER_LEASE_H

#include <stddef.h>

#include "broker/state/task.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* A task recovered as running: counted as running with no worker, and
 * held until a worker re-announces it or tw__lease_expire. */
void tw__lease_held(struct tw_broker *b, tw_task_t *t);

/* Requeue the held tasks that no worker has re-announced (the grace
 * period of 2 x liveness x heartbeat after a recovery is over). */
void tw__lease_expire(struct tw_broker *b);

/* HELLO from a worker: detach the tasks it re-announces from its previous
 * registration (`old`, may be NULL) before that is dropped... */
void tw__lease_detach(struct tw_broker *b, tw_bworker_t *old,
                      const tw_msg_t *m);

/* ...and adopt them on the new one (`w`); announced tasks that cannot be
 * adopted are cancelled on the worker. */
void tw__lease_adopt(struct tw_broker *b, tw_bworker_t *w,
                     const tw_msg_t *m);

/* May this DONE item be applied to `t` (NULL: unknown id) for worker `w`?
 * Checks the item's "ep" against the task's current dispatch (stale ones
 * are counted in stale_done), adopts a held or requeued task whose
 * dispatch it reports, and counts duplicates as before. */
int tw__lease_done_ok(struct tw_broker *b, tw_bworker_t *w, tw_task_t *t,
                      const tw_item_t *it);

#endif /* TW_BROKER_LEASE_H */
