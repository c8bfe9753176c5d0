/*  broker/state/workers.h - the worker registry and the handler table.
 *
 *  A worker is one DEALER connection that said HELLO on the backend. The
 *  registry finds it by its ZeroMQ routing identity (every message) and by
 *  the id the broker gave it in WELCOME (tasks refer to workers by id, so a
 *  worker that vanished is simply not found). Workers are kept in joining
 *  order, which is the order the dispatcher and later the assignator scan.
 *
 *  The handler table interns handler names: every name any worker has
 *  announced gets a small index and its own queue of pending tasks. Names
 *  stay known after their workers leave, so tasks for them wait rather than
 *  fail. Broker loop thread only.
 */
#ifndef TW_BROKER_WORKERS_H
#define TW_BROKER_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/queue.h"
#include "broker/state/task.h"
#include "common/idmap.h"
#include "proto/proto.h"

#define TW_IDENT_MAX 255

typedef struct {
    char *name;
    size_t name_len;
    tw_queue_t *queue; /* its ready tasks; allocated on its own so that
                          tasks may point at it while the table grows */
    uint32_t nworkers; /* live workers offering it */
} tw_handler_t;

typedef struct {
    uint64_t id;
    unsigned char ident[TW_IDENT_MAX];
    size_t ident_len;
    char *name;
    char *host;
    uint64_t pid;
    uint32_t slots;
    uint64_t credit;     /* tasks it may still be sent */
    uint32_t *handlers;  /* indices into the handler table */
    size_t nhandlers;
    char **tags;         /* key, value, key, value... */
    size_t ntags;
    uint64_t joined_ms, last_recv_ms, last_send_ms;
    uint64_t done;       /* outcomes received */
    tw_task_list_t inflight;
    uint32_t nstations;  /* stations placed here */
    uint8_t *slot_used;  /* per slot: 1 if a station holds it */
    uint32_t slot_hint;  /* no free slot below this index */
    uint8_t draining;    /* released a station unasked: leaving (S29) */
    /* Station traffic due to this worker at the end of the turn. */
    tw_batch_t assign, n2s, control, release;
    /* ops: scaling (broker/cmd/on_worker.h). `leaving`: a client asked it to drain,
     * so it gets no tasks and no stations and its BYE means "drained".
     * `resizing`: resize requests it has not confirmed yet; while any is
     * out it gets nothing either (its credit is re-set by the answer). */
    uint8_t leaving;
    uint32_t resizing;
} tw_bworker_t;

typedef struct {
    tw_handler_t *handlers;
    size_t nhandlers;
    tw_bworker_t **list; /* joining order */
    size_t len, cap;
    tw_idmap_t by_id;
    tw_idmap_t by_ident;
    uint64_t next_id;
} tw_registry_t;

void tw_registry_init(tw_registry_t *r);

/* Free every worker and handler (not the tasks). */
void tw_registry_destroy(tw_registry_t *r);

/* Index of handler `name`; with `create`, intern it if new. Returns -1 if
 * unknown and not created. */
int tw_registry_handler(tw_registry_t *r, const char *name, size_t len,
                        int create);

/* A new worker for routing identity `ident`, with the next id. */
tw_bworker_t *tw_registry_add(tw_registry_t *r, const void *ident,
                              size_t len, uint64_t now_ms);

/* The worker with this routing identity / id, or NULL. */
tw_bworker_t *tw_registry_by_ident(const tw_registry_t *r, const void *ident,
                                   size_t len);
tw_bworker_t *tw_registry_by_id(const tw_registry_t *r, uint64_t id);

/* Forget a worker and free it; its in-flight list must be empty (the
 * caller requeues those tasks first). Handler counts are updated. */
void tw_registry_remove(tw_registry_t *r, tw_bworker_t *w);

/* Take the lowest free station slot of `w` and return its index, or
 * return w->slots if every slot holds a station. */
uint32_t tw_registry_take_slot(tw_bworker_t *w);

/* Give back a slot taken with tw_registry_take_slot. */
void tw_registry_put_slot(tw_bworker_t *w, uint32_t slot);

/* Record the handlers a worker offers (indices from tw_registry_handler). */
void tw_registry_set_handlers(tw_registry_t *r, tw_bworker_t *w,
                              const uint32_t *idx, size_t n);

/* `w` no longer offers handler `idx` (it refused a station of it): take
 * it off the worker's list. Returns 1 if it was there, else 0. */
int tw_registry_drop_handler(tw_registry_t *r, tw_bworker_t *w,
                             uint32_t idx);

/* "draining", "resizing" or "ready": a worker's state in replies,
 * QUERY workers and the snapshot (scaling: cmd/on_worker.h). */
static inline const char *
tw_bworker_state(const tw_bworker_t *w)
{
    return w->leaving ? "draining" : w->resizing ? "resizing" : "ready";
}

/* 1 if the worker may be given tasks and stations now. */
static inline int
tw_bworker_open(const tw_bworker_t *w)
{
    return !w->leaving && !w->resizing;
}

/* Credit a worker may hold, and slots it may announce, at most. */
#define TW_CREDIT_MAX (1u << 20)

/* Worker `w` announced `n` more free slots (READY, DONE, STATION). */
static inline void
tw_bworker_add_credit(tw_bworker_t *w, uint64_t n)
{
    w->credit += n;
    if (w->credit > TW_CREDIT_MAX) {
        w->credit = TW_CREDIT_MAX;
    }
}

#endif /* TW_BROKER_WORKERS_H */
