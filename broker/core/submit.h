/*  broker/core/submit.h - a new task from a SUBMIT item: admission, the
 *  task itself, its groups, its parents and its event.
 *
 *  Two callers make tasks: a client's SUBMIT (cmd/on_task.c), which first
 *  settles what belongs to the client (a resend, a refused seq), and a
 *  schedule's tick (core/schedule.h), which has no client. Both go through
 *  tw__submit_item, so a fired task passes the same checks (S54, the
 *  parents of PROTOCOL.md 18.2), is counted, stored (the task is marked
 *  dirty by the flow) and announced exactly like a submitted one. Broker
 *  loop thread only.
 */
#ifndef TW_BROKER_SUBMIT_H
#define TW_BROKER_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/clients.h"
#include "broker/state/pools.h"
#include "broker/state/task.h"
#include "proto/proto.h"

struct tw_broker;

/* What tw__submit_item made of an item. */
typedef struct {
    tw_task_t *task;  /* the new task, or NULL */
    uint64_t known;   /* a task with the item's key is known: its id (and
                         no task was made) */
} tw_submit_out_t;

/* The checks of item `it`, creating nothing: admission (admit.h), then
 * its `af` parents (PROTOCOL.md 18.2). Returns 0 with its handler index
 * and pool, or an ACK error code with the reason in `why`. */
int tw__submit_check(struct tw_broker *b, const tw_item_t *it, int *hidx,
                     tw_pool_t **pool, char *why, size_t wlen);

/* Accept item `it`, checked: the known task of its key (out->known), or
 * a new task (out->task) for client `c` (NULL: none), blocked on its `af`
 * parents and the `nextra` more at `extra` (a graph's items named by
 * `as`) if any, else queued; `publish`: announce task.submitted. */
void tw__submit_accept(struct tw_broker *b, tw_bclient_t *c,
                       const tw_item_t *it, int hidx, tw_pool_t *p,
                       uint32_t shash, const uint64_t *extra, size_t nextra,
                       int publish, tw_submit_out_t *out);

/* Check and accept item `it` for client `c` (NULL: the broker itself, for a
 * schedule; the task then belongs to no client). `shash` is the item's
 * hash (dedup.h; 0 without a client). `after`, if non-zero, is one more
 * parent, waited for whatever its outcome (a schedule's overlap `queue`),
 * used only when the item names none. `publish`: announce
 * task.submitted. Returns 0 with *out filled, or an ACK error code with
 * the reason in `why`, having changed nothing but the refusal's counters
 * (admit.h). */
int tw__submit_item(struct tw_broker *b, tw_bclient_t *c, const tw_item_t *it,
                    uint32_t shash, uint64_t after, int publish,
                    tw_submit_out_t *out, char *why, size_t wlen);

#endif /* TW_BROKER_SUBMIT_H */
