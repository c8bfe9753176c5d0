/*  broker/state/chan.h - the routing rules of task channels (used by
 *  broker/cmd/on_chan.c).
 *
 *  The broker forwards CHAN items by task id (proto/PROTOCOL.md section
 *  14): up from the worker running the task to the client that submitted
 *  it, down from that client to that worker. These two checks decide, for
 *  one item, whether it goes through; they read only the task and the
 *  item, so the broker's unit tests call them directly. The message
 *  handlers themselves are cmd/on_chan.h. Broker loop thread only; no
 *  I/O.
 */
#ifndef TW_BROKER_CHAN_H
#define TW_BROKER_CHAN_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/task.h"

/* 1 if the event `ev` (len bytes) is `name`. */
int tw_chan_ev_is(const char *ev, size_t len, const char *name);

/* An item from worker `wid` for task `t` (NULL if unknown): NULL when it
 * goes to the submitter, else why it is dropped (a static string):
 * unknown `ev` (open, msg, req, close are the worker's), the task not
 * running on that worker, `d` of dlen bytes over max_payload, a req
 * without cr. */
const char *tw_chan_up_refusal(const tw_task_t *t, uint64_t wid,
                               const char *ev, size_t evlen, size_t dlen,
                               int has_cr, long long max_payload);

/* An item from client `client` for task `id` (`t`, NULL if unknown;
 * worker_known: the task's worker is registered). Returns 0 to forward it
 * to the worker, or TW_EINVAL (unknown ev, resp without cr), TW_ENOENT
 * (no task), TW_EPERM (another client's task), TW_E2BIG (d over
 * max_payload) or TW_ESTATE (not running, being cancelled, or its worker
 * is gone), with a one-line reason in `msg`. Checked in that order. */
int tw_chan_down_check(const tw_task_t *t, uint64_t id, uint64_t client,
                       int worker_known, const char *ev, size_t evlen,
                       int has_cr, size_t dlen, long long max_payload,
                       char *msg, size_t mlen);

#endif /* TW_BROKER_CHAN_H */
