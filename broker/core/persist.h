/*  broker/core/persist.h - the broker's state in the store: what changed this
 *  turn goes to disk once, and a restarted broker gets it all back.
 *
 *  Without --data nothing here runs (b->persist is NULL and every hook is
 *  one branch). With it, the task life cycle (flow.c) marks a task dirty
 *  whenever it is enqueued, dispatched or ended, and the frontend and
 *  backend mark the stations, pools and groups a message touched. At the
 *  end of the turn tw__persist_commit writes every dirty record in one
 *  write transaction, before any ACK of that turn leaves, so that "a task
 *  is acknowledged only once recorded" holds under every fsync policy:
 *
 *      always    the commit itself is synced (LMDB's default): an ACK
 *                means the task is on disk.
 *      everysec  MDB_NOSYNC; a thread-pool job runs mdb_env_sync once a
 *                second, so the loop never waits for the disk.
 *      no        MDB_NOSYNC; the OS writes back when it likes.
 *
 *  Recovery (tw__persist_open) rebuilds pools, groups, tasks, results and
 *  stations, and the id and epoch counters continue past a reservation
 *  written ahead, so no id is ever handed out twice. The caller then
 *  queues the pending tasks again (flow.h), holds those that were running
 *  (lease.h) until their worker re-announces them or the grace period
 *  ends, and places the stations again from their checkpoints with their
 *  wanted state (place.h), before tw__persist_start lets the writer run.
 *  docs/STORAGE.md is the operator's description.
 *
 *  Messages to clients that must wait for a batch are queued here too
 *  (tw__persist_hold); core/outbox.h decides which. Broker loop thread
 *  only, but for the writer thread of writer.h.
 */
#ifndef TW_BROKER_PERSIST_H
#define TW_BROKER_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/clients.h"
#include "broker/state/task.h"
#include "proto/proto.h"

typedef struct tw_broker tw_broker_t;
struct tw_persist;

/* Open the store named by cfg->data and read its records into `b`: pools,
 * groups, stations (not ended ones PENDING, not yet queued for
 * placement), ended tasks, and pending and running tasks (in those states
 * but counted nowhere yet). Returns 0 (also without --data), or an error
 * with the reason (path and problem) in `why`: the store is left as it
 * was. Nothing is marked dirty until tw__persist_start. */
int tw__persist_open(tw_broker_t *b, char *why, size_t wlen);

/* After tw__persist_open and the caller's queuing: start the sync timer
 * and the writer thread and write the first batch (expired results, new
 * station epochs, the counters). A no-op without --data. */
void tw__persist_start(tw_broker_t *b);

/* Write what is dirty and close the timers (shutdown, loop still
 * running). */
void tw__persist_stop(tw_broker_t *b);

/* Sync and close the store, free everything (after the loop ended). */
void tw__persist_destroy(tw_broker_t *b);

/* Mark task `t` for the next commit (call after any change that matters
 * after a restart). */
void tw__persist_task_slow(tw_broker_t *b, tw_task_t *t);
#define TW__PERSIST_TASK(b, t)                                               \
    do {                                                                     \
        if ((b)->persist && !((t)->sflags & TW_TASK_DIRTY)) {                \
            tw__persist_task_slow((b), (t));                                 \
        }                                                                    \
    } while (0)

/* A task record is being freed: its records go. */
void tw__persist_task_freed(tw_broker_t *b, const tw_task_t *t);

/* A STATION message was handled: its stations' records are rewritten. */
void tw__persist_station_msg(tw_broker_t *b, const tw_msg_t *m);

/* A GROUP or POOL request was handled: the pool it names (or "default")
 * and all its groups are rewritten. */
void tw__persist_pool_msg(tw_broker_t *b, const tw_msg_t *m);

/* Encode every dirty record into one batch and hand it to the writer
 * thread (writer.h) together with every client's pending ACKs and RESULTs,
 * which leave once the batch is written. Before the writer runs (recovery)
 * and after it stopped, writes on the calling thread and returns 0 or the
 * error. A no-op when nothing is dirty or held. */
int tw__persist_commit(tw_broker_t *b);

/* Hand over what is dirty now, with the clients' pending ACKs and
 * RESULTs if anything of theirs must wait (called by tw__outbox_flush).
 * Never waits for the writer. */
void tw__persist_flush(tw_broker_t *b);

/* A message and the turns before it left a large dirty set: hand it over
 * now, so no batch grows past what the store's reserve covers (called
 * between messages and between dispatch rounds). */
void tw__persist_check(tw_broker_t *b);

/* 1 while a message to a client may have to wait for the store: there is
 * a writer thread and this module is not sending held messages itself
 * (then they are in order already). */
int tw__persist_holding(const tw_broker_t *b);

/* A message to client `c` (three built frames) is about to be sent while
 * tw__persist_holding. Returns 1 if it was taken over, to be sent once
 * the batch holding the client's earlier messages is done (PROTOCOL.md 6,
 * ordering), or 0 to send it now: nothing of the client's is in flight,
 * or the writer is failing and answers must not wait for it. */
int tw__persist_hold(tw_broker_t *b, const tw_bclient_t *c, zmq_msg_t f[3]);

/* Messages sent while `on` is set are already in order and are not held.
 * Returns the previous setting. */
int tw__persist_bypass(tw_broker_t *b, int on);

/* A broker pair under --replicate sync (broker/ha.h): the passive has
 * every batch streamed up to `rseq`, so their client messages leave
 * (UINT64_MAX: all, nothing waits for the passive any more). */
void tw__persist_release(tw_broker_t *b, uint64_t rseq);

/* A pair's snapshot for its passive: walk database `db` of the store from
 * the first key above `after` (NULL: from the first) with `fn`, as
 * tw_store_each_after does; *at is the stream's sequence number of the
 * last batch written (the walk holds at least everything up to it).
 * TW_ENOENT without a store. */
int tw__persist_walk(tw_broker_t *b, int db, const void *after, size_t alen,
                     int (*fn)(const void *, size_t, const void *, size_t,
                               void *),
                     void *arg, uint64_t *at);

/* Admission: 0 if `bytes` more of task data fit in the store, else
 * TW_EFULL with the reason in `why`. */
int tw__persist_admit(tw_broker_t *b, size_t bytes, char *why, size_t wlen);

/* The payload budget (--payload-budget): 0 if `bytes` more of arguments
 * fit, after freeing, oldest first, up to 1,024 kept results if they must
 * (counted in collected_budget); else TW_EFULL with the reason in `why`
 * (counted in over_budget). With or without a store. */
int tw__persist_budget(tw_broker_t *b, size_t bytes, char *why, size_t wlen);

/* Collect ended tasks past --result-ttl or beyond --max-results, at most
 * a bounded number per call, so collection never stalls the loop. */
void tw__persist_gc(tw_broker_t *b, uint64_t now_ms);

/* Figures of the store for the metrics page: 0 (and zeros) without
 * --data. commit_seconds sums, over `timed` batches that wrote something,
 * the time from the loop handing a batch over to its ACKs leaving. */
typedef struct {
    uint64_t commits, errors, used_bytes, timed, syncs;
    double commit_seconds;
} tw_persist_figures_t;
int tw__persist_figures(tw_broker_t *b, tw_persist_figures_t *out);

/* Extra keys of the status map ("stale_done", "adopted", "store_*"):
 * how many, then write them. */
size_t tw__persist_status_count(tw_broker_t *b);
void tw__persist_status(tw_broker_t *b, tw_enc_t *e);

#endif /* TW_BROKER_PERSIST_H */
