/*  worker/leases.h - the tasks this worker runs, with the dispatch epoch
 *  ("ep") and attempt ("at") each arrived with.
 *
 *  The broker gives every dispatch of a task a new epoch; the worker echoes
 *  it in the task's DONE item, so the broker can tell this dispatch's
 *  outcome from a late one of an older dispatch. When the connection to the
 *  broker is lost, running tasks keep running; the next HELLO lists them
 *  ({id, at, ep} in "items") and the broker adopts them instead of running
 *  them a second time (proto/PROTOCOL.md section 7). One idmap entry per
 *  running task, the epoch and attempt packed into the value: ep in the low
 *  48 bits, at in the high 16. Loop thread only.
 */
#ifndef TW_WORKER_LEASES_H
#define TW_WORKER_LEASES_H

#include <stdint.h>

#include "common/idmap.h"
#include "proto/proto.h"

typedef struct {
    tw_idmap_t byid;
} tw_leases_t;

void tw_leases_init(tw_leases_t *l);
void tw_leases_free(tw_leases_t *l);

/* Task `id` started (or was dispatched again while it runs) with `ep`
 * (0 if the broker sent none) and attempt `at`. */
void tw_leases_put(tw_leases_t *l, uint64_t id, uint64_t ep, uint64_t at);

/* Its outcome is being reported: forget it and return its ep (0 if
 * unknown). */
uint64_t tw_leases_take(tw_leases_t *l, uint64_t id);

/* Tasks held now. */
size_t tw_leases_count(const tw_leases_t *l);

/* Write the HELLO field "items": [{id, at, ep}...] (key included). */
void tw_leases_encode(const tw_leases_t *l, tw_enc_t *e);

#endif /* TW_WORKER_LEASES_H */
