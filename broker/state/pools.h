/*  broker/state/pools.h - pools and groups: the broker's cluster-wide limits.
 *
 *  A pool is a namespace a client names ("default" unless it says); every
 *  task belongs to one pool and to any number of that pool's groups. The
 *  pool is the implicit group () of the multi-group semantics (S94-S95):
 *  its size bounds the running tasks of the whole pool. Each group may
 *  bound its running tasks (limit), its lifetime admissions (calls), and
 *  choose what a full group does to a new task: queue it (wait for room)
 *  or reject it at once.
 *
 *  The broker dispatches every task, so "at most k running" holds on any
 *  number of workers: a pending task whose pool or one of whose groups is
 *  full is parked on that pool or group (a priority heap) instead of being
 *  dispatched, and the first task parked there goes back to its handler's
 *  queue whenever a running task of that pool or group ends or the limit is
 *  raised. Lowering a limit stops nothing that runs (S96).
 *
 *  Tasks refer to pools and groups by id; a forgotten group simply is not
 *  found. Counters (running, pending, ended, cancelled) are exact: the
 *  dispatcher and the task life cycle keep them, this module only stores
 *  them. Broker loop thread only; no I/O, no clock.
 */
#ifndef TW_BROKER_POOLS_H
#define TW_BROKER_POOLS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/queue.h"
#include "common/idmap.h"
#include "common/strmap.h"

typedef enum { TW_FULL_QUEUE = 0, TW_FULL_REJECT = 1 } tw_full_t;

typedef struct {
    uint64_t id;
    uint32_t pool;     /* id of its pool */
    char *name;
    size_t name_len;
    int64_t limit;     /* max running in force; -1 = none */
    int own_limit;     /* `limit` was set for this group; otherwise it
                          is its pool's default_limit (S101) */
    int64_t calls;     /* max admissions ever; -1 = none */
    tw_full_t full;
    uint64_t running, pending, ended, cancelled, admitted;
    uint64_t *ids;     /* every task id it ever held (S60) */
    size_t nids, capids;
    tw_queue_t parked; /* pending tasks waiting for room here */
    int was_full;      /* limit-reached already published */
    int before_lock;   /* existed when its pool was locked: it may keep
                          feeding (S61, F3) */
} tw_group_t;

typedef struct {
    uint32_t id;
    char *name;
    size_t name_len;
    uint64_t size;     /* max running in the pool; 0 = unlimited */
    int64_t default_limit; /* the limit of its groups that have none of
                              their own (S101); -1 = none */
    int locked, closed;
    uint64_t running, pending, ended, cancelled;
    uint64_t next_dseq;
    tw_strmap_t groups;   /* name -> tw_group_t */
    tw_strmap_t dedup;    /* key -> task id, as (void *)(uintptr_t) */
    tw_queue_t parked;    /* pending tasks waiting for pool room */
    tw_task_list_t running_list; /* by dispatch order, newest last */
    uint64_t *clients;    /* ids of clients that used it: they get its
                             pool.closed event (S63-S64) */
    size_t nclients, capclients;
} tw_pool_t;

typedef struct {
    tw_pool_t **all;   /* index = pool id - 1 */
    size_t len, cap;
    tw_strmap_t by_name;
    tw_idmap_t groups; /* group id -> tw_group_t */
    uint64_t next_gid;
} tw_pools_t;

void tw_pools_init(tw_pools_t *ps);
void tw_pools_destroy(tw_pools_t *ps);

/* The pool named `name`, created if `create`; NULL if absent. */
tw_pool_t *tw_pools_get(tw_pools_t *ps, const char *name, size_t len,
                        int create);

/* The pool with id `id`, or NULL. */
tw_pool_t *tw_pools_by_id(const tw_pools_t *ps, uint32_t id);

/* The group `name` of `pool`, created (no limits, queue) if `create`. */
tw_group_t *tw_pools_group(tw_pools_t *ps, tw_pool_t *pool,
                           const char *name, size_t len, int create);

/* The group with id `id`, or NULL if unknown or forgotten. */
tw_group_t *tw_pools_group_by_id(const tw_pools_t *ps, uint64_t id);

/* Most clients a pool remembers for its pool.closed event. */
#define TW_POOL_MAX_CLIENTS 4096

/* Remember that client `id` used `pool` (submitted to it or sent a
 * GROUP or POOL request naming it); at most TW_POOL_MAX_CLIENTS. */
void tw_pool_add_client(tw_pool_t *pool, uint64_t id);

/* Set `pool`'s default group limit (-1 = none, S101) and apply it to
 * every group of the pool without a limit of its own. */
void tw_pools_set_default_limit(tw_pool_t *pool, int64_t limit);

/* Give group `g` a limit of its own (limit >= 0), or drop it (limit -1):
 * the group then takes its pool's default_limit. */
void tw_group_set_limit(tw_pool_t *pool, tw_group_t *g, int64_t limit);

/* Forget a group; its parked queue must be empty. */
void tw_pools_forget_group(tw_pools_t *ps, tw_group_t *g);

/* Record that task `id` joined group `g`. */
void tw_group_add_id(tw_group_t *g, uint64_t id);

/* 1 if `g` may start one more task now. */
static inline int
tw_group_has_room(const tw_group_t *g)
{
    return g->limit < 0 || g->running < (uint64_t)g->limit;
}

/* 1 if `p` may start one more task now. */
static inline int
tw_pool_has_room(const tw_pool_t *p)
{
    return p->size == 0 || p->running < p->size;
}

/* 1 if `g` refuses a new task right now: its lifetime calls are used up
 * (S89), or it rejects when full and its admitted, unfinished tasks
 * (pending or running) already fill its limit (S99: admission is the
 * spawn, so a task admitted but not yet started counts). */
static inline int
tw_group_refuses(const tw_group_t *g)
{
    if (g->calls >= 0 && g->admitted >= (uint64_t)g->calls) {
        return 1;
    }
    return g->full == TW_FULL_REJECT && g->limit >= 0 &&
           g->running + g->pending >= (uint64_t)g->limit;
}

const char *tw_full_name(int full);
int tw_full_parse(const char *s, size_t len);

#endif /* TW_BROKER_POOLS_H */
