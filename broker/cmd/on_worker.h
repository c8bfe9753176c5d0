/*  broker/cmd/on_worker.h - the worker commands: HELLO, READY and BYE from
 *  workers, WORKER from clients and workers (PROTOCOL.md 5.1 - 5.3, 5.9,
 *  5.18); and a worker's departure.
 *
 *  Scaling a running cluster: a client sends WORKER {seq, op, name | wid,
 *  slots?}. "drain" makes the broker stop giving the worker tasks and
 *  stations at once and tells it WORKER {op: "drain"}; the worker then does
 *  what it does on SIGTERM (its stations come back "released" with their
 *  checkpoints at their iteration boundaries and are placed elsewhere, its
 *  running tasks finish) and leaves with BYE, which the broker reports as
 *  worker.drained. "resize" sets the worker's slot count: the broker moves
 *  the stations that sit on slots that go away, stops sending to the
 *  worker and tells it WORKER {op: "resize", slots}; the worker answers
 *  WORKER {op: "resized", slots, credit} with its free capacity under the
 *  new count, which replaces the broker's credit for it. Nothing running
 *  is killed: a worker above its new count simply gets no credit back
 *  until it is below it. "wid" picks one worker; "name" picks every live
 *  worker with that name, and the reply lists them all.
 *
 *  The broker never waits: a request changes the worker's record, queues
 *  what moves, sends one WORKER message and answers the client at once.
 *  Every step is logged once and published on the status socket
 *  (worker.up, worker.down, worker.draining, worker.drained,
 *  worker.resizing, worker.resized). Broker loop thread only.
 */
#ifndef TW_BROKER_ON_WORKER_H
#define TW_BROKER_ON_WORKER_H

#include <stddef.h>

#include "broker/state/clients.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* Slot counts a resize may ask for (the worker's own --slots bounds). */
#define TW_SCALE_MAX_SLOTS 65536u

/* HELLO from routing id `ident`: a new registration (an older one with
 * that id is dropped, keeping what it re-announces), answered WELCOME. */
void tw__on_hello(struct tw_broker *b, const void *ident, size_t ilen,
                  const tw_msg_t *m);

/* READY: more credit. */
void tw__on_ready(struct tw_broker *b, tw_bworker_t *w, const tw_msg_t *m);

/* BYE: forget the worker, as "drained" if it was asked to drain. */
void tw__on_bye(struct tw_broker *b, tw_bworker_t *w);

/* A client's WORKER request: answered with REPLY or ERROR. */
void tw__on_worker_op(struct tw_broker *b, tw_bclient_t *c,
                      const tw_msg_t *m);

/* A worker's WORKER report ("resized"). */
void tw__on_worker_report(struct tw_broker *b, tw_bworker_t *w,
                          const tw_msg_t *m);

/* Worker `w` is gone (`reason`: missed heartbeats, said BYE...): its
 * running tasks are requeued or given up, its stations placed again, and
 * it is forgotten. */
void tw__on_worker_lost(struct tw_broker *b, tw_bworker_t *w,
                        const char *reason);

#endif /* TW_BROKER_ON_WORKER_H */
