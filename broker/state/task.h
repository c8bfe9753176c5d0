/*  broker/state/task.h - a one-shot task as the broker keeps it, and the
 *  table of all tasks.
 *
 *  A task is created when a SUBMIT item is accepted and lives until its
 *  outcome has been kept for the result TTL. Its life:
 *
 *      SUBMIT           dispatch (TASKS)        DONE / cancel / lost
 *     -------> PENDING ------------------> RUNNING -----------------> ENDED
 *                 ^                           |                        |
 *                 '-- worker died, retry -----'     TTL or max-results |
 *                                                          (freed) <---'
 *
 *  The broker owns every task; other records refer to a task by id. A
 *  pending task sits in its handler's queue (heap_idx); a running one is on
 *  its worker's in-flight list; an ended one on the table's ended list,
 *  oldest first, which is what garbage collection walks. The two lists share
 *  the prev/next links because a task is on at most one of them. Broker loop
 *  thread only; no clock reads (callers pass now_ms).
 */
#ifndef TW_BROKER_TASK_H
#define TW_BROKER_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "common/idmap.h"

typedef struct tw_task tw_task_t;

struct tw_task {
    uint64_t id;
    uint64_t seq;    /* the submitter's sequence number */
    uint64_t client; /* submitting client's id, 0 if gone */
    uint64_t worker; /* worker running it (RUNNING), or that ran it last */
    uint64_t t_ms;   /* submitted (PENDING/RUNNING) or ended (ENDED) */
    uint32_t handler;  /* index in the handler table */
    int32_t priority;  /* higher first */
    uint32_t timeout_ms;
    uint32_t heap_idx; /* position in its queue while PENDING */
    uint16_t retries;  /* re-runs allowed after error or timeout */
    uint16_t attempt;  /* runs started so far */
    uint8_t state;     /* TW_ST_* (proto.h): PENDING, RUNNING or an end */
    uint8_t cancel_requested;
    uint8_t chan_open; /* this attempt's channel carried items up and was
                          not closed: its submitter's loss closes it */
    uint32_t data_len;
    void *data;  /* args while PENDING/RUNNING, result once ENDED */
    char *error; /* the failure message once ENDED (or the errors of
                    earlier attempts while it is retried), or NULL */
    tw_task_t *prev, *next;
    /* Pools and groups (pools.h). */
    uint32_t pool;       /* pool id */
    uint16_t ngroups;
    uint64_t *groups;    /* group ids */
    uint64_t dseq;       /* dispatch order within the pool (S67) */
    uint64_t due_ms;     /* PENDING: not before this time (delay, retry
                            backoff); RUNNING: when this attempt was
                            dispatched (its run time counts from here) */
    struct tw_queue *inq;/* the heap holding it while PENDING, or NULL */
    tw_task_t *pprev, *pnext; /* the pool's running list */
    char *key;           /* dedup key (may hold NUL bytes), or NULL */
    uint16_t key_len;
    /* Leases and the store (lease.c, persist.h, dedup.h); the first two
     * fill what was padding, so a task stays in the same malloc size. */
    uint8_t sflags;      /* TW_TASK_DIRTY, TW_TASK_STORED */
    uint32_t shash;      /* hash of the SUBMIT item (handler, args): a
                            resend matches it (dedup.h) */
    uint64_t ep;         /* epoch of its latest dispatch, 0 = never */
};

/* sflags: marked for the turn's store commit; has a record in "tasks". */
#define TW_TASK_DIRTY 1u
#define TW_TASK_STORED 2u

/* A doubly linked list of tasks (in-flight per worker, or ended) through
 * prev/next; tw_task_plist_* do the same through pprev/pnext for the
 * pools' running lists. */
typedef struct {
    tw_task_t *head, *tail;
    size_t len;
} tw_task_list_t;

void tw_task_list_push(tw_task_list_t *l, tw_task_t *t);
void tw_task_list_remove(tw_task_list_t *l, tw_task_t *t);
void tw_task_plist_push(tw_task_list_t *l, tw_task_t *t);
void tw_task_plist_remove(tw_task_list_t *l, tw_task_t *t);

typedef struct {
    tw_idmap_t by_id;
    uint64_t next_id;
    tw_task_list_t ended;
    size_t live; /* PENDING + RUNNING */
    uint64_t payload_bytes; /* data_len summed over every task: the
                               arguments held and the results kept */
    /* Called for each task tw_tasks_gc or tw_tasks_forget frees, before
     * it is freed (the broker drops dedup keys there). May be NULL. */
    void (*on_free)(tw_task_t *t, void *arg);
    void *on_free_arg;
} tw_tasks_t;

void tw_tasks_init(tw_tasks_t *ts);

/* Free every task. */
void tw_tasks_destroy(tw_tasks_t *ts);

/* A new PENDING task with the next id, registered in the table. `data` is
 * copied. Never NULL (aborts on OOM). */
tw_task_t *tw_tasks_create(tw_tasks_t *ts, const void *data, size_t len,
                           uint64_t now_ms);

/* The task with `id`, or NULL. */
tw_task_t *tw_tasks_get(const tw_tasks_t *ts, uint64_t id);

/* Mark a task ended with `state` (TW_ST_OK...), keeping `result`/`error`
 * (both copied, either may be NULL) and putting it on the ended list. The
 * caller has already taken it off any queue or worker list. */
void tw_tasks_end(tw_tasks_t *ts, tw_task_t *t, int state,
                  const void *result, size_t len, const char *error,
                  size_t elen, uint64_t now_ms);

/* What collection keeps: ended tasks younger than ttl_ms, at most
 * max_ended of them, and no more payload (payload_bytes) than max_bytes
 * while ended tasks remain to be freed. At most max_n go per call. */
typedef struct {
    uint64_t ttl_ms;
    size_t max_ended;
    uint64_t max_bytes;
    size_t max_n;
} tw_tasks_gc_t;

/* Free ended tasks, oldest first, until the limits hold. Returns the
 * number freed; *for_bytes (if not NULL) gets how many of them went only
 * because of max_bytes. */
size_t tw_tasks_gc(tw_tasks_t *ts, uint64_t now_ms, const tw_tasks_gc_t *lim,
                   size_t *for_bytes);

/* Free one ended task now (a pool flush). */
void tw_tasks_forget(tw_tasks_t *ts, tw_task_t *t);

#endif /* TW_BROKER_TASK_H */
