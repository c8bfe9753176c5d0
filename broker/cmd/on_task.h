/*  broker/cmd/on_task.h - the task commands: SUBMIT, RESULT and CANCEL
 *  from clients, DONE from workers (PROTOCOL.md 5.5, 5.6, 5.11, 5.13,
 *  12.6).
 *
 *  Each handler acts on one decoded message from a known peer (the
 *  dispatcher, broker/dispatch.h, found or created the record) and only
 *  changes state and queues answers: ACK and RESULT items wait in the
 *  client's batches for the end of the turn (core/outbox.h), REPLY and
 *  ERROR leave at once. Broker loop thread only.
 */
#ifndef TW_BROKER_ON_TASK_H
#define TW_BROKER_ON_TASK_H

#include "broker/state/clients.h"
#include "broker/state/workers.h"
#include "proto/proto.h"

struct tw_broker;

/* SUBMIT: each item is deduplicated (a resend, or a known key), admitted
 * (core/admit.h) and enqueued, and gets its ACK item. */
void tw__on_submit(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

/* RESULT query: one RESULT message with an item per id. */
void tw__on_result(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

/* CANCEL: by ids, answered with {cancelled, ended, unknown}; with an "op",
 * all-or-nothing (strict, PROTOCOL.md 12.6). */
void tw__on_cancel(struct tw_broker *b, tw_bclient_t *c, const tw_msg_t *m);

/* DONE from worker `w`: each outcome ends its task, or retries it; the
 * credit that comes with it is added. */
void tw__on_done(struct tw_broker *b, tw_bworker_t *w, const tw_msg_t *m);

#endif /* TW_BROKER_ON_TASK_H */
