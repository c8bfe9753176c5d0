/*  worker/slots.h - the slot table: which task runs in which slot.
 *
 *  A worker started with --slots N runs at most N tasks at once; the
 *  broker's credit for this worker mirrors the free slots. Each slot embeds
 *  a reusable tw_call_t and a timeout timer, so starting a task costs an
 *  id-map insert and a copy of its arguments, no allocation. The table
 *  knows no sockets: it reports every outcome through one callback and the
 *  worker turns those into DONE items and credit.
 *
 *      start         handler finishes (outcome + credit)
 *    ------> BUSY ------------------------------------> FREE
 *              |                                          ^
 *              | timeout / cancel: outcome (st 2 or 3)     | handler
 *              | reported now; orphan: nothing reported    | finishes:
 *              v                                           | credit only
 *            ENDED -----------------------------------------'
 *
 *  ENDED slots are still occupied: their credit comes back only when the
 *  handler has really stopped, so capacity is never overstated. A slot
 *  can also be HELD by a station from ASSIGN until it leaves; the table
 *  only counts it. Loop thread only.
 */
#ifndef TW_SLOTS_H
#define TW_SLOTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "worker/handlers.h"

/* What the table reports. With id != 0 it is a task outcome to send: st is
 * TW_ST_OK (r/rlen the msgpack result, r NULL for nil), TW_ST_ERROR (err),
 * TW_ST_TIMEOUT or TW_ST_CANCELLED. `credit` is 1 when this returns one
 * unit of the broker's credit (a slot freed, or a task refused without
 * taking one). id == 0 carries credit only. All borrowed for the call. */
typedef struct {
    uint64_t id;
    int st;
    const void *r;
    size_t rlen;
    const char *err;
    unsigned credit;
} tw_outcome_t;

typedef struct tw_slots tw_slots_t;
typedef void (*tw_slots_outcome_cb)(void *udata, const tw_outcome_t *o);
typedef void (*tw_slots_close_cb)(void *udata);

/* A table of `n` (1..65536) free slots running handlers from `reg`
 * (borrowed, must outlive the table) on `loop`. Never NULL. */
tw_slots_t *tw_slots_new(uv_loop_t *loop, const tw_handlers_t *reg,
                         unsigned n, tw_slots_outcome_cb cb, void *udata);

/* Free the table once its timers have closed, then call `cb` (may be
 * NULL). Returns 0, or TW_ESTATE if a slot is still occupied (nothing is
 * done then: orphan the tasks and wait for tw_slots_busy() to reach 0). */
int tw_slots_close(tw_slots_t *s, tw_slots_close_cb cb, void *udata);

/* Run attempt `attempt` of task `id` with handler `h` (`hlen` bytes) on
 * msgpack `args` (copied), with a timeout of `timeout_ms` (0 = none); the
 * call carries both (tw_call_t attempt, timeout_ms). Every outcome,
 * including refusals, goes through the callback, possibly before this
 * returns (a handler that finishes at once). Returns 0 when the task
 * runs; TW_EHANDLER (unknown handler: an error outcome with credit),
 * TW_EFULL (no free slot: an error outcome without credit), TW_EEXIST
 * (id already running here: credit only, the running one reports) or
 * TW_ENOMEM (error outcome with credit). */
int tw_slots_start(tw_slots_t *s, uint64_t id, const char *h, size_t hlen,
                   const void *args, size_t alen, uint64_t timeout_ms,
                   uint64_t attempt);

/* End task `id` now with `st` (TW_ST_CANCELLED or TW_ST_TIMEOUT): report
 * that outcome without credit and cancel the handler; its slot returns
 * credit when the handler stops. Returns 0 or TW_ENOENT. */
int tw_slots_cancel(tw_slots_t *s, uint64_t id, int st);

/* Cancel every running task without reporting outcomes (the broker has
 * requeued them); slots still return credit as they free. */
void tw_slots_orphan_all(tw_slots_t *s);

/* Let the tasks of every slot open task channels through `ch`
 * (worker/chan.h); a task's channel is ended with the task. */
struct tw_chans;
void tw_slots_attach_chans(tw_slots_t *s, struct tw_chans *ch);

/* Take a free slot for a station (worker/taskloop.h runs it with a call of
 * its own): it counts as busy, reports nothing, and is skipped by
 * tw_slots_orphan_all. Returns the slot's index, or TW_EFULL. */
int tw_slots_hold(tw_slots_t *s);

/* Give back a slot taken by tw_slots_hold (nothing is reported: the
 * caller returns the credit). */
void tw_slots_unhold(tw_slots_t *s, int idx);

/* Grow the table to `n` slots (more slots than now; nothing happens if
 * `n` is not larger). The new ones are free at once. Shrinking is the
 * caller's business: it simply uses fewer (worker.c keeps a limit).
 * Returns 0, or TW_EINVAL when closing or above 65536. */
int tw_slots_grow(tw_slots_t *s, unsigned n);

/* Slots free now. */
unsigned tw_slots_free_count(const tw_slots_t *s);

/* Slots occupied now, BUSY or ENDED. */
unsigned tw_slots_busy(const tw_slots_t *s);

/* Total slots. */
unsigned tw_slots_size(const tw_slots_t *s);

#endif /* TW_SLOTS_H */
