/*  broker/internal.h - the broker's state, shared by broker.c (sockets,
 *  timers, dispatch) and dispatch.c (one handler per protocol command).
 *  Not a public header: nothing outside broker/ includes it.
 */
#ifndef TW_BROKER_INTERNAL_H
#define TW_BROKER_INTERNAL_H

#include "broker/aside.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/clients.h"
#include "broker/dedup.h"
#include "broker/pools.h"
#include "broker/quarantine.h"
#include "broker/stations.h"
#include "broker/status.h"
#include "broker/task.h"
#include "broker/workers.h"
#include "common/zwatch.h"
#include "proto/proto.h"

/* The broker's counters, one list for three uses: the fields of
 * tw_broker_stats_t, the status map (QUERY "status" and the stats topic,
 * PROTOCOL.md 5.14: the key, or NULL where another part writes it) and
 * the metrics page (taskwheel_<field>_total, with the help text). */
#define TW_BROKER_COUNTERS(XX)                                               \
    XX(submitted, "submitted", "Tasks accepted.")                            \
    XX(rejected, "rejected", "SUBMIT items refused.")                        \
    XX(dispatched, "dispatched", "Tasks sent to workers (each attempt).")    \
    XX(completed, "completed", "Tasks ended ok.")                            \
    XX(failed, "failed", "Tasks ended with an error, a timeout or lost.")    \
    XX(cancelled, "cancelled", "Tasks ended cancelled.")                     \
    XX(requeued, "requeued",                                                 \
       "Tasks returned to the queue after a worker loss.")                   \
    XX(retried, "retried", "Failed tasks run again (per-task retries).")     \
    XX(duplicates, "duplicates",                                             \
       "Outcomes for tasks not in flight on that worker.")                   \
    /* "resubmitted" in the status map (persist.c) */                        \
    XX(deduplicated, NULL, "Submissions answered with a known task id.")     \
    /* "dropped" in the status map adds the status socket's refusals */      \
    XX(dropped, NULL, "Messages the frontend or backend socket refused.")    \
    XX(malformed, "malformed", "Messages that failed to decode.")            \
    XX(stale, "stale", "Station reports from an old epoch.")                 \
    XX(iterations, "iterations", "Station iterations reported.")             \
    XX(n2s_sent, "n2s_sent", "n2s messages delivered to workers.")           \
    XX(n2s_dropped, "n2s_dropped",                                           \
       "n2s messages refused: a station backlog was full.")                  \
    XX(s2n, "s2n", "s2n messages accepted.")                                 \
    XX(chan_fwd, "chan_fwd", "Task channel items forwarded.")                \
    XX(chan_dropped, "chan_dropped", "Task channel items dropped.")          \
    XX(chan_closereq, "chan_closereq",                                       \
       "Task channel close requests the broker sent.")                       \
    XX(hwm, "dropped_hwm", "Sends refused at a peer's high-water mark.")     \
    XX(unroutable, "unroutable", "Sends to a peer that is gone.")            \
    XX(overflow, "overflow", "Submissions refused: the queue was full.")     \
    XX(over_budget, "over_budget",                                           \
       "Submissions refused: the payload budget was full.")                  \
    XX(collected_budget, "collected_budget",                                 \
       "Kept results collected early to stay within the payload budget.")    \
    XX(quarantined, "quarantined",                                           \
       "Messages dropped unread from quarantined peers.")

typedef struct {
#define TW__STAT_FIELD(field, key, help) uint64_t field;
    TW_BROKER_COUNTERS(TW__STAT_FIELD)
#undef TW__STAT_FIELD
} tw_broker_stats_t;

struct tw_broker {
    const tw_broker_cfg_t *cfg;
    uv_loop_t *loop;
    void *ctx;
    void *front, *back, *pub;
    tw_auth_t *auth;         /* CURVE and the loopback rule (auth.h) */
    tw_zwatch_t fzw, bzw;
    tw_status_t status;
    uv_timer_t hb_timer, stats_timer;
    uv_signal_t sigterm, sigint;
    tw_tasks_t tasks;
    tw_registry_t reg;
    tw_clients_t clients;
    tw_pools_t pools;
    tw_queue_t delayed;      /* pending tasks not due yet */
    uv_timer_t delay_timer;
    uv_timer_t more_timer;   /* dispatch stopped at its byte budget for a
                                turn: another turn at once (flow.c) */
    size_t ready;            /* tasks in handler ready queues */
    tw_stations_t stations;
    tw_station_t **unplaced; /* stations waiting for a slot (may hold
                                stale entries; checked when used); those
                                no worker matches wait on `aside` */
    size_t nunplaced, capunplaced;
    tw_aside_t aside;        /* stations no worker matches (aside.h) */
    int place_wanted;        /* something changed: run placement */
    size_t pending;       /* pending tasks: ready, parked or delayed */
    size_t running;       /* tasks in flight on workers */
    size_t rr;            /* round-robin start for dispatch */
    tw_broker_stats_t st;
    uint64_t start_ms;
    uint64_t last_rate_ms, last_rate_done;
    double rate;          /* outcomes per second over the last tick */
    uint64_t jitter;      /* state of the retry jitter generator */
    tw_quarantine_t quarantine; /* peers sending garbage (quarantine.h) */
    int closing;
    int open_handles;
    struct tw_metrics *metrics; /* ops: --metrics (metrics.h), or NULL */
    /* Durability and leases (persist.h, lease.c, dedup.h). */
    struct tw_persist *persist; /* NULL without --data */
    tw_dedup_t dedup;        /* (client, seq) -> task id */
    uint64_t next_ep;        /* dispatch epoch of the next TASKS item */
    uint64_t stale_done;     /* DONE items of an older dispatch */
    uint64_t adopted;        /* tasks re-announced and kept running */
    /* This run's identity and where it listens (PROTOCOL.md 5.8, 13). */
    uint64_t boot;           /* random, new at every start, never 0 */
    int resumed;             /* recovered a store that had been used */
    char ep_front[256], ep_back[256], ep_pub[256]; /* as bound */
    uint64_t trim_bytes, trim_ms; /* payload freed since the heap was
                                     last trimmed, and when (broker.c) */
};

/* dispatch.c: handle one message from a client / a worker. */
void tw__broker_on_front(tw_zwatch_t *zw, tw_zframes_t *msg);
void tw__broker_on_back(tw_zwatch_t *zw, tw_zframes_t *msg);

/* broker.c helpers used by dispatch.c. */

/* Publish a worker event `topic` (worker.up, worker.down, worker.drain*,
 * worker.resiz*): {wid, name, host, slots, running, stations, reason?,
 * from?} (PROTOCOL.md 8). */
void tw__broker_publish_worker(tw_broker_t *b, const char *topic,
                               const tw_bworker_t *w, const char *reason,
                               uint64_t from, int has_from);

/* A task whose worker is gone (lost, or not re-announced after a
 * restart): ended cancelled if a cancel was asked, ended lost once it had
 * max-attempts runs, else queued again (counted in `requeued`). Returns
 * TW_ST_CANCELLED, TW_ST_LOST or TW_ST_PENDING. */
int tw__broker_orphan_task(tw_broker_t *b, tw_task_t *t);

/* Queue station `st` for the next placement pass (dispatch_station.c);
 * one set aside comes back to be tried at once. */
void tw__broker_unplace(tw_broker_t *b, tw_station_t *st);

/* One worker as the 12-key map of QUERY "workers" (PROTOCOL.md 5.14),
 * also used by the snapshot and the WORKER reply. */
void tw__broker_encode_worker(tw_broker_t *b, tw_enc_t *e,
                              const tw_bworker_t *w);

/* Send three built frames [ident][header][body] on a ROUTER watch. A
 * refused send closes the frames and is counted (dropped, and unroutable
 * or hwm by cause). Returns 0 or the zwatch error. */
int tw__broker_send_built(tw_broker_t *b, tw_zwatch_t *zw, zmq_msg_t f[3]);

/* Send [ident][header][body] on a ROUTER watch; `e` is consumed. */
int tw__broker_send(tw_broker_t *b, tw_zwatch_t *zw, const void *ident,
                    size_t ilen, tw_cmd_t cmd, tw_enc_t *e);

/* Send a batch as [ident][header][body]; the batch is left empty. */
int tw__broker_send_batch(tw_broker_t *b, tw_zwatch_t *zw, const void *ident,
                          size_t ilen, tw_cmd_t cmd, tw_batch_t *batch);

/* REPLY {seq, data, boot}: begin writes the envelope, the caller writes the
 * data value, send sends it to client `c` and frees `e`. */
void tw__broker_reply_begin(tw_enc_t *e, uint64_t seq);
void tw__broker_reply_send(tw_broker_t *b, tw_bclient_t *c, tw_enc_t *e);

/* ERROR {code, msg, seq} to client `c`. */
void tw__broker_reply_error(tw_broker_t *b, tw_bclient_t *c, uint64_t seq,
                            int code, const char *msg);

/* Reply ERROR {code, msg[, seq]} to a peer. */
void tw__broker_error(tw_broker_t *b, tw_zwatch_t *zw, const void *ident,
                      size_t ilen, int code, uint64_t seq, const char *fmt,
                      ...) __attribute__((format(printf, 7, 8)));

/* flow.c: the task life cycle (the only code that changes the pool and
 * group counters). */

/* A batch message stops growing past this many bytes or items, so every
 * message the broker sends stays far below --max-msg and the decoder's
 * item limit. */
#define TW__BATCH_BYTES (4u << 20)
#define TW__BATCH_ITEMS 4096u

/* Payload bytes dispatched in one turn at most: beyond, the rest goes in
 * the next turns, so large payloads never hold the loop for long. */
#define TW__DISPATCH_BYTES (4u << 20)

/* Make a task pending: counted, and in its ready queue or delayed. */
void tw__broker_enqueue(tw_broker_t *b, tw_task_t *t);

/* Take a pending task out of whatever heap holds it and uncount it (to
 * cancel it). */
void tw__broker_unpend(tw_broker_t *b, tw_task_t *t);

/* A running task stops running (outcome, cancel, worker lost): off its
 * worker, uncounted, and room handed to a parked task. The caller then
 * ends it or enqueues it again. */
void tw__broker_halt(tw_broker_t *b, tw_task_t *t);

/* End a task that is neither pending nor running any more: record the
 * outcome, count it, route it to its client, publish. */
void tw__broker_end(tw_broker_t *b, tw_task_t *t, int state,
                    const void *r, size_t rlen, const char *err,
                    size_t elen);

/* Move up to n tasks parked on `q` back to their ready queues (a limit
 * was raised or cleared). */
void tw__broker_unpark(tw_broker_t *b, tw_queue_t *q, size_t n);

/* What a task event adds to the task's body (PROTOCOL.md 12.8): the run
 * time of the attempt that just stopped, the backoff before a retry, and
 * the error of a failed attempt that is retried. A negative number or a
 * NULL error is left out. */
typedef struct {
    int64_t run_ms;
    int64_t retry_in_ms;
    const char *error;
} tw_task_event_x_t;

/* Publish task event `topic` ("task.submitted"...) for `t`, with the
 * extra keys of `x` (NULL: none). */
void tw__broker_task_event(tw_broker_t *b, const tw_task_t *t,
                           const char *topic, const tw_task_event_x_t *x);

/* How long the running task `t` has run in its current attempt (since
 * its dispatch), or -1 if it is not running. */
int64_t tw__broker_run_ms(const tw_broker_t *b, const tw_task_t *t);

/* Publish group.<pool>.<group>.limit-reached once per filling. */
void tw__broker_limit_reached(tw_broker_t *b, tw_pool_t *p, tw_group_t *g);

/* Set up the delayed heap and its timer. */
void tw__broker_delay_init(tw_broker_t *b);

/* Place stations, dispatch tasks, send what the turn owes everyone. */
void tw__broker_end_of_turn(tw_broker_t *b);

/* The index of handler `h` if a SUBMIT may name it: some worker offered
 * it, or the broker started less than handler-grace seconds ago (then it
 * is interned). Otherwise TW_EHANDLER with the reason in `why` (S54's
 * first check). */
int tw__broker_handler_known(tw_broker_t *b, const char *h, size_t hlen,
                             char *why, size_t wlen);

/* chan.c: client `c` went away (said BYE, or a probe found it
 * unroutable): ask the workers to close the channels of its running
 * tasks, so their waiting and later requests fail now (S93), not at their
 * timeouts. Once per departure. */
void tw__broker_client_gone(tw_broker_t *b, tw_bclient_t *c,
                            const char *why);

/* chan.c: probe every client with tasks not ended (an empty HEARTBEAT;
 * ROUTER_MANDATORY makes a gone one unroutable) and treat the unroutable
 * ones as gone. Called once a second. */
void tw__broker_clients_probe(tw_broker_t *b);

/* dispatch_pool.c: GROUP and POOL requests, and strict CANCEL. */
void tw__broker_on_group(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m);
void tw__broker_on_pool(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m);
void tw__broker_cancel_strict(tw_broker_t *b, tw_bclient_t *c,
                              const tw_msg_t *m);

/* Cancel one task whatever its state: a pending one ends at once, a
 * running one is asked to stop. Returns 1 if it was pending or running,
 * 0 if it had already ended or was being cancelled. */
int tw__broker_cancel_task(tw_broker_t *b, tw_task_t *t);

/* Requeue (or give up) every task in flight on `w` and forget `w`. */
void tw__broker_drop_worker(tw_broker_t *b, tw_bworker_t *w,
                            const char *reason);

/* Send pending tasks to workers with credit. */
void tw__broker_dispatch(tw_broker_t *b);

/* `freed` bytes of payload went back to the heap: trim it once a second
 * (`tick`), or sooner once 32 MiB were freed, at most ten times a second,
 * so the broker's memory follows what it holds (main.c). */
void tw__broker_trim(tw_broker_t *b, size_t freed, int tick);

/* Send every client's ACK and RESULT batches. */
void tw__broker_flush_clients(tw_broker_t *b);

/* Begin one more ACK or RESULT item for client `c` in `batch` (one of its
 * two batches), sending the batch first if it is full, and mark the client
 * for the end-of-turn flush. Returns the encoder for the item. */
tw_enc_t *tw__broker_client_item(tw_broker_t *b, tw_bclient_t *c,
                                 tw_batch_t *batch);

/* Encode one outcome/state item for task `t` into `e`. */
void tw__broker_result_item(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t);

/* Encode the status snapshot map (QUERY "status" and the "stats" topic;
 * with `publish`, as a status body with "pseq"). */
void tw__broker_encode_status(tw_broker_t *b, tw_enc_t *e, int publish);

/* snapshot.c (ops): the QUERY "snapshot" map, for the clone pattern. */
void tw__broker_encode_snapshot(tw_broker_t *b, tw_enc_t *e);

/* Log and publish that a worker joined. */
void tw__broker_worker_up(tw_broker_t *b, tw_bworker_t *w);

/* dispatch_station.c: stations. */

/* A client STATION operation / a worker STATION report / S2N. */
void tw__broker_on_station_op(tw_broker_t *b, tw_bclient_t *c,
                              const tw_msg_t *m);
void tw__broker_on_station_report(tw_broker_t *b, tw_bworker_t *w,
                                  const tw_msg_t *m);
void tw__broker_on_s2n(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m);

/* Place unplaced stations on workers with room. */
void tw__broker_place(tw_broker_t *b);

/* The worker set or a worker's eligibility for stations changed (joined,
 * left, drained, resized): stations set aside because nobody matched them
 * are tried again on the next pass. Every such change must call this. */
void tw__broker_workers_changed(tw_broker_t *b);

/* Stations waiting for placement: on the list and set aside. */
size_t tw__broker_unplaced(const tw_broker_t *b);

/* A worker is going away: its stations become unplaced (same wanted
 * state, same checkpoint). */
void tw__broker_stations_orphan(tw_broker_t *b, tw_bworker_t *w);

/* Send every worker's pending ASSIGN, N2S, CONTROL and RELEASE batches. */
void tw__broker_flush_workers(tw_broker_t *b);

/* ops: release every station of `w` on slot `from` or above, to be placed
 * again (a resize took those slots away). Returns how many. */
size_t tw__broker_stations_move_off(tw_broker_t *b, tw_bworker_t *w,
                                    uint32_t from);
/* chan.c: task channels. CHAN items from a worker go to the tasks'
 * submitters; CHAN items from a client go to the workers running them. */
void tw__broker_on_chan_up(tw_broker_t *b, tw_bworker_t *w,
                           const tw_msg_t *m);
void tw__broker_on_chan_down(tw_broker_t *b, tw_bclient_t *c,
                             const tw_msg_t *m);
#include "broker/persist.h"

#endif /* TW_BROKER_INTERNAL_H */
