/*  taskwheel/client.h - libtaskwheel, the client library.
 *
 *  A tw_client_t is one connection (a ZeroMQ DEALER) to a broker's frontend.
 *  It is not thread-safe: use one per thread. Nothing here starts a thread
 *  or an event loop; the caller drives I/O through tw_client_poll() and the
 *  waiting calls, which invoke the callbacks.
 *
 *  Submitting is pipelined: tw_client_submit() only queues the task in an
 *  outbox and returns its client sequence number; queued tasks go out in
 *  batches (one SUBMIT message for many tasks) when the outbox fills, on
 *  tw_client_flush(), or when the client waits. The broker acknowledges each
 *  task once it has recorded it (the ack callback receives the task id) and
 *  later pushes its outcome (the result callback). Payloads are
 *  msgpack-encoded values.
 *
 *  Errors are negative TW_E* codes and task states TW_ST_* codes, both
 *  from taskwheel/errors.h (included here); tw_client_strerror turns an
 *  error into a sentence and tw_version (taskwheel/version.h) names the
 *  library. TW_EUNREACH means no answer came from the broker in time.
 *
 *  Out of memory never ends the caller's process: a constructor returns
 *  NULL and a call TW_ENOMEM, having kept nothing of what it was asked
 *  to do (a submission is not queued, a request not sent). Where memory
 *  runs out in the background (a reply's text, a resend after a
 *  reconnection), the client goes on without it: an error's text reads
 *  "(out of memory)", and what could not be asked is asked again later.
 *  (libzmq's and msgpack-c's own buffers are theirs: libzmq may abort on
 *  out-of-memory itself.)
 *
 *  Callbacks run inside tw_client_poll(), tw_client_wait_all() and the
 *  request calls (ping, result, cancel, query), which dispatch whatever
 *  arrives while they wait. A callback may submit and flush; it must not
 *  poll, wait, make a request (that returns TW_ESTATE) or destroy the
 *  client.
 */
#ifndef TW_CLIENT_H
#define TW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <taskwheel/errors.h>
#include <taskwheel/version.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tw_client tw_client_t;

/* A session event (see "Events and the session run" below). */
typedef struct tw_event tw_event_t;
typedef void (*tw_event_cb)(void *arg, const tw_event_t *ev);

/* Most groups one task may join. */
#define TW_CLIENT_MAX_GROUPS 64

/* Most parents one task may name (tw_task_spec_t after). */
#define TW_CLIENT_MAX_AFTER 65536

/* What to run. Zero every field you do not set: the fields after
 * `retries` were added later and zero means "not used". */
typedef struct {
    const char *handler; /* required, 1-128 bytes */
    const void *args;    /* msgpack-encoded value; NULL means nil */
    size_t args_len;
    uint32_t timeout_ms; /* 0 = no limit */
    int32_t priority;    /* higher runs first; default 0 */
    uint32_t retries;    /* re-runs after the handler fails or times out,
                            each after a backoff; default 0 (a lost worker
                            always requeues) */
    const char *pool;    /* "pl": the pool (broker namespace), 1-128 bytes;
                            NULL = "default" */
    const char *const *groups; /* "g": groups of that pool the task joins,
                                  created on demand; each 1-128 bytes */
    size_t ngroups;      /* at most TW_CLIENT_MAX_GROUPS */
    uint64_t delay_ms;   /* "dl": earliest start, this long after the
                            broker accepted it; 0 = at once */
    const char *key;     /* "k": dedup key, 1-128 bytes: while a task with
                            this key is known in the pool, submitting
                            another one returns the first one's id (the
                            ack reports dup) and creates nothing */
    tw_event_cb on_event; /* task-level events of this task (S85-S86),
                             fired after the client-level ones; NULL =
                             none */
    void *event_arg;
    uint64_t at_ms;      /* "eta": earliest start as a wall-clock time,
                            milliseconds since the Unix epoch (UTC); 0 =
                            none. With delay_ms too, the later holds; a
                            time in the past starts it at once */
    const uint64_t *after; /* "af": ids of the tasks it waits for (its
                              parents), in order; each must be a task the
                              broker holds. The task is blocked until they
                              end, then runs if all succeeded, or ends
                              cancelled "upstream failed: task <id> ended
                              <state>" */
    size_t nafter;       /* at most TW_CLIENT_MAX_AFTER */
    int after_any_end;   /* "am" 1: run once they all ended, whatever
                            their outcome */
    int with_results;    /* "wr" 1: its arguments become an array of the
                            parents' results, in order (nil for one that
                            did not succeed), then its own arguments */
} tw_task_spec_t;

/* An outcome, borrowed by the callback for its duration. */
typedef struct {
    uint64_t id;        /* broker task id */
    uint64_t seq;       /* client sequence number, 0 if not ours */
    int state;          /* TW_ST_* (errors.h): 0 ok, 1 error, 2 timeout... */
    const void *result; /* msgpack-encoded result when state is ok */
    size_t result_len;
    const char *error;  /* NUL-terminated message for failed states */
    uint64_t worker;    /* id of the worker that ran it, 0 if none */
    uint32_t attempt;   /* 1 for the first run */
} tw_result_t;

typedef void (*tw_result_cb)(void *arg, const tw_result_t *r);

/* An acknowledgement, borrowed by the callback for its duration. */
typedef struct {
    uint64_t seq;    /* client sequence number */
    uint64_t id;     /* broker task id; 0 when refused */
    int err;         /* 0, or why the broker refused the task */
    const char *msg; /* the broker's message when refused, else NULL */
    int dup;         /* 1: a dedup hit (same key, same pool): `id` is the
                        first task's and nothing new was created. This
                        seq then gets no outcome of its own; the first
                        task's outcome goes to whoever submitted it. */
} tw_ack_t;

/* Called once per acknowledged or refused submission. (Before 1.0 this
 * callback took (arg, seq, id, err, msg), and tw_ack2_cb took the struct:
 * the two are this one shape now.) */
typedef void (*tw_ack_cb)(void *arg, const tw_ack_t *ack);

/* Deprecated: the old name of tw_ack_cb. */
typedef tw_ack_cb tw_ack2_cb;

/* Connect to `endpoint` ("tcp://127.0.0.1:7710"); the connection is made
 * in the background. NULL on out-of-memory or a bad endpoint. For a
 * broker pair (docs/HA.md) give both, comma-separated
 * ("tcp://b1:7710,tcp://b2:7710"): the client uses the active one, goes
 * where a passive one points, and moves to the other when it loses one
 * (see "Reconnection and the outbox"). */
tw_client_t *tw_client_new(const char *endpoint);

/* Like tw_client_new, over CURVE (encrypted and authenticated): the
 * client proves itself with the secret key in `secret_file` (the broker
 * must list its public key in --clients-keys) and talks only to the
 * holder of the secret of the public key in `broker_key_file`. Key files
 * are those `taskwheel keygen` writes (README, "Security"); the secret
 * file must be readable by its owner only. NULL on a bad endpoint or key
 * file, with the reason in `err` (errlen bytes; err may be NULL). A key
 * the broker refuses shows later as TW_EUNREACH. */
tw_client_t *tw_client_new_curve(const char *endpoint,
                                 const char *secret_file,
                                 const char *broker_key_file, char *err,
                                 size_t errlen);

/* Say BYE to the broker (the channels of this client's running tasks are
 * closed, S93), close the connection and free everything; waits at most
 * 100 ms for the BYE to leave. Sets *self_p to NULL. */
void tw_client_destroy(tw_client_t **self_p);

/* Callbacks for acknowledgements and outcomes. Either may be NULL. */
void tw_client_on_ack(tw_client_t *c, tw_ack_cb cb, void *arg);
void tw_client_on_result(tw_client_t *c, tw_result_cb cb, void *arg);

/* Deprecated: the same as tw_client_on_ack (one callback: setting either
 * replaces the other). Kept so that code written against 0.x builds. */
#if defined(__GNUC__)
__attribute__((deprecated("use tw_client_on_ack")))
#endif
void tw_client_on_ack2(tw_client_t *c, tw_ack2_cb cb, void *arg);

/* Round trip to the broker. Returns 0 or TW_EUNREACH after timeout_ms. */
int tw_client_ping(tw_client_t *c, int timeout_ms);

/* Queue one task; *seq_out (if not NULL) gets its sequence number. Returns
 * 0; TW_EINVAL for a bad spec (no handler, name too long, args that are
 * not exactly one msgpack value or nest deeper than 32 levels, an empty or
 * too long pool, group or key, more than TW_CLIENT_MAX_GROUPS groups);
 * TW_E2BIG for args that cannot fit in one message (16 MiB); TW_ENOMEM
 * (nothing queued); TW_EFULL
 * when max_outbox submissions are not acknowledged yet (see "Reconnection
 * and the outbox"); or TW_ESTATE from the moment tw_stop is called, or a
 * tw_run's running phase ends, until that tw_run returns (S80: a stopped
 * session takes no more work; outside tw_run submitting is always open).
 * The outbox is sent by itself once it holds 1000 tasks (or 4 MiB). */
int tw_client_submit(tw_client_t *c, const tw_task_spec_t *spec,
                     uint64_t *seq_out);

/* Send every queued task now. Returns 0 or TW_EAGAIN if the socket is
 * full (the rest stays queued; poll and flush again). */
int tw_client_flush(tw_client_t *c);

/* Flush, then receive and dispatch messages: wait up to timeout_ms for at
 * least one (0 = only take what is already there, -1 = no limit), then
 * take whatever else has already arrived, and return. Returns the number
 * of messages handled (0 on timeout or when a signal interrupted the
 * wait), or a negative error. Malformed or unexpected messages are
 * dropped and not counted. */
int tw_client_poll(tw_client_t *c, int timeout_ms);

/* Poll until every submitted task has an outcome, or timeout_ms passes
 * with no message from the broker (idle timeout). Returns 0, or
 * TW_ETIMEDOUT. */
int tw_client_wait_all(tw_client_t *c, int timeout_ms);

/* Tasks submitted whose outcome has not arrived yet, including tasks
 * still queued in the outbox. A task rejected in its ACK counts as having
 * its outcome. */
size_t tw_client_outstanding(const tw_client_t *c);

/* Ask the broker for the state and outcome of task `id`. On 0, *out is a
 * copy the caller frees with tw_result_free. Returns TW_EUNREACH on
 * timeout, or the broker's error code. A task the broker never had comes
 * back with state unknown. */
int tw_client_result(tw_client_t *c, uint64_t id, int timeout_ms,
                     tw_result_t **out);
void tw_result_free(tw_result_t **r);

/* Cancel tasks by id (1 to 65536 of them). Returns 0 once the broker
 * answered, TW_EUNREACH on timeout, or the broker's error code. */
int tw_client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                     int timeout_ms);

/* Send QUERY `what` ("status" or "workers") and return the reply's
 * msgpack-encoded "data" value in *data (malloc'ed, caller frees with
 * free()). Returns 0, TW_EUNREACH, or the broker's error code (TW_EINVAL
 * for a query it does not know). */
int tw_client_query(tw_client_t *c, const char *what, int timeout_ms,
                    void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Scaling workers                                                    */

/* A WORKER request (proto/PROTOCOL.md 5.18).
 *
 *   op        "drain": the worker gets no more tasks or stations, its
 *             stations move to other workers at their iteration
 *             boundaries, its running tasks finish, then it exits 0.
 *             "resize": the worker runs `slots` slots from now on; growing
 *             adds capacity at once, shrinking moves the stations on the
 *             slots that go away and never kills a running task.
 *   name      every live worker with this name (the reply lists them), or
 *   wid       (non-zero) exactly the worker with this id (`workers` shows
 *             ids); wid wins when both are given.
 *   slots     resize only: 1..65536.
 *
 * The REPLY data is {"op": op, "workers": [{id, name, host, slots, running,
 * stations, state}, ...]}. Broker errors: TW_ENOENT (no such worker),
 * TW_EINVAL (unknown op, no name, bad slots), TW_ESTATE (resizing a
 * draining worker). */
typedef struct {
    const char *op;
    const char *name;
    uint64_t wid;
    uint64_t slots;
} tw_worker_req_t;

/* Send a WORKER request; `data`/`len` as in tw_client_query (may be NULL).
 * Returns 0, TW_EINVAL (op missing or longer than 32 bytes, name longer
 * than 128), TW_EUNREACH, or the broker's error code. */
int tw_client_worker(tw_client_t *c, const tw_worker_req_t *req,
                     int timeout_ms, void **data, size_t *len);

/* tw_client_worker with op "drain" / "resize" and a name. */
int tw_client_worker_drain(tw_client_t *c, const char *name, int timeout_ms,
                           void **data, size_t *len);
int tw_client_worker_resize(tw_client_t *c, const char *name, unsigned slots,
                            int timeout_ms, void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Task records                                                       */

/* The broker keeps a record of every task it holds: handler, arguments,
 * timings, each run's error and traceback, the result (proto/PROTOCOL.md
 * 16). These requests list records a page at a time, read them whole,
 * send failed tasks back to their queue (retry: same id, history kept)
 * and forget ended ones (purge). The REPLY data comes back as msgpack,
 * as for tw_client_query; an ERROR's code is returned and its message
 * kept by tw_client_last_error(). A broker without task records answers
 * TW_ECOMMAND.
 *
 * Which records a request means. Every field may be left out (NULL, 0):
 *
 *   state     "pending", "running", "ok", "failed" (error, timeout and
 *             lost), "error", "timeout", "lost" or "cancelled"
 *   handler, group, pool    exactly that name
 *   text      in the id, the handler or the error (ASCII either case)
 *   since_ms  changed at most this long ago
 *   limit     list: a page of 1..1000 (default 50); retry and purge:
 *             1..10000 tasks per request (default 1000)
 *   cursor    list: the "next" of the previous page, with the same filters
 *   ids/nids  retry and purge: exactly these tasks (1..10000), instead of
 *             the filters; with filters, retry and purge need a state
 */
typedef struct {
    const char *state;
    const char *handler;
    const char *group;
    const char *pool;
    const char *text;
    uint64_t since_ms;
    uint32_t limit;
    const char *cursor;
    const uint64_t *ids;
    size_t nids;
} tw_tasks_req_t;

/* One page of records, newest change first (QUERY tasks). The data is
 * {"tasks": [summary, ...], "next": cursor or nil, "scanned": n}; keep
 * asking with cursor = next while next is not nil. Returns 0,
 * TW_EINVAL (a string longer than its field allows), TW_EUNREACH, or
 * the broker's code (TW_EINVAL for a bad filter or cursor). */
int tw_client_tasks_list(tw_client_t *c, const tw_tasks_req_t *req,
                         int timeout_ms, void **data, size_t *len);

/* Whole records of 1..100 tasks (QUERY task): an array with, for each
 * id in order, its record or {"id", "state": "unknown"}. */
int tw_client_tasks_show(tw_client_t *c, const uint64_t *ids, size_t n,
                         int timeout_ms, void **data, size_t *len);

/* TASK retry / purge. The data is {"done": [id, ...], "refused": [{"id",
 * "code", "error"}, ...], "more": bool}; with filters, repeat while
 * "more" is true. */
int tw_client_tasks_retry(tw_client_t *c, const tw_tasks_req_t *req,
                          int timeout_ms, void **data, size_t *len);
int tw_client_tasks_purge(tw_client_t *c, const tw_tasks_req_t *req,
                          int timeout_ms, void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Schedules                                                          */

/* A cron schedule the broker fires itself (proto/PROTOCOL.md 18.11,
 * docs/WORKFLOWS.md 3): at every tick of `cron` in zone `tz` it submits
 * the task `task` describes, stored with its state so each tick fires
 * exactly once across restarts.
 *
 *   op        "add", "list", "show", "pause", "resume", "remove",
 *             "run-now" (fire the task now, outside the ticks)
 *   name      the schedule, 1-128 letters, digits, '_', '-', ':'; every
 *             op but list
 *   cron      add: five fields or a macro (@hourly, @every 1s, ...)
 *   tz        add: a zone of the broker's tz database; NULL: UTC
 *   overlap   add: "skip" (NULL), "queue", "cancel-previous"
 *   catchup   add: "none" (NULL), "last", "all"
 *   task      add: the task each tick submits: handler, args, timeout,
 *             priority, retries, pool, groups, delay, at; no key and no
 *             parents
 *
 * The REPLY data is schedule info {name, cron, tz, overlap, catchup,
 * paused, next, cursor, live, fired, skipped, template} (an array of them
 * for list, nil for remove, {id} for run-now). Returns 0, TW_EINVAL (a
 * bad request, or the broker's refusal: bad name, cron, tz or policy,
 * with its reason in tw_client_last_error), TW_EEXIST (add: the name is
 * taken), TW_ENOENT (no such schedule), TW_EUNREACH, or for run-now the
 * SUBMIT refusal's code (TW_EHANDLER...). */
typedef struct {
    const char *op;
    const char *name;
    const char *cron;
    const char *tz;
    const char *overlap;
    const char *catchup;
    const tw_task_spec_t *task;
} tw_schedule_req_t;

int tw_client_schedule(tw_client_t *c, const tw_schedule_req_t *req,
                       int timeout_ms, void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Stations                                                           */

/* A station is a perpetual loop of one handler that the broker places on
 * one slot of one worker (see docs and proto/PROTOCOL.md). Every station
 * operation is one STATION request answered by a REPLY whose "data" is
 * returned as msgpack, or by an ERROR whose code is returned and whose
 * message tw_client_last_error() keeps.
 *
 *   op           fields used            data of the REPLY
 *   "add"        sid, handler, args,    {"station", "state": "assigned",
 *                next, interval_ms,      "worker", "slot"} or {"station",
 *                timeout_ms, code,       "state": "pending" |
 *                tags, placement,        "waiting-for-host", "reason"}
 *                restart
 *   "remove"     sid                    {"station", "state"}
 *   "pause", "continue", "stop", "cancel"
 *                sid                    {"station", "state"}
 *   "send"       sid, payload           {"station", "seq", "queued"}
 *   "list"       -                      [summary, ...]
 *   "show"       sid                    detail map
 *   "rebalance"  -                      {"moved"}
 *
 * Summary and detail maps have the keys station, handler, state, wanted,
 * worker, slot, epoch, iterations, last_error, checkpoint (the msgpack
 * value itself), placement, restart, restarts, n2s_queued, n2s_dropped,
 * code and tags.
 *
 * Broker errors: TW_ENOENT (unknown station), TW_EEXIST (add: the id is
 * taken), TW_EHANDLER (add: no worker ever offered the handler), TW_EFULL
 * (send: the station's n2s backlog is full), TW_EINVAL (a bad next,
 * placement or restart value, a missing field). */

/* One key=value tag a station asks of its worker. */
typedef struct {
    const char *key;   /* 1-128 bytes */
    const char *value; /* 0-128 bytes */
} tw_station_tag_t;

/* One station request. Zero it, then set what the operation uses:
 * NULL strings, NULL payloads, zero numbers and no tags are left out of
 * the message, and the broker applies its defaults (interval 0: each
 * iteration starts as soon as the previous one ends; timeout 0: none;
 * restart "never"). Fields an operation does not use are sent if set and
 * ignored by the broker. Everything is borrowed for the call's duration. */
typedef struct {
    const char *op;        /* required, 1-32 bytes, see the table above */
    const char *sid;       /* station id, 1-128 bytes */
    const char *handler;   /* add: the handler each iteration runs, 1-128 */
    const void *args;      /* add: first input, one msgpack value */
    size_t args_len;
    const char *next;      /* add: "same" | "result" | "handler" */
    uint64_t interval_ms;  /* add: least time between iteration starts */
    uint64_t timeout_ms;   /* add: limit of one iteration */
    const char *code;      /* add: station code ("stcode"), 0-128 bytes,
                              matched against the worker tag "code" */
    const tw_station_tag_t *tags; /* add: tags the worker should have */
    size_t ntags;          /* at most 64, keys distinct */
    const char *placement; /* add: "any" | "prefer" | "pinned" */
    const char *restart;   /* add: "never" | "on-failure" | "always" */
    const void *payload;   /* send: the n2s message, one msgpack value */
    size_t payload_len;
} tw_station_req_t;

/* Send one STATION request and wait up to timeout_ms for its answer
 * (queued tasks are flushed first, so it reaches the broker after them).
 * On 0, if `data` is not NULL, *data holds the REPLY's msgpack-encoded
 * "data" value (malloc'ed, caller frees with free()) and *len its size;
 * pass data and len NULL to ignore it. Returns 0; TW_EINVAL for a bad
 * request (no op, a string too long or empty where a name is needed,
 * args or payload that are not exactly one msgpack value, tags beyond the
 * limits or repeated, data without len); TW_E2BIG for args and payload
 * that cannot fit in one message (16 MiB); TW_EUNREACH on timeout;
 * TW_ESTATE from inside a callback; or the broker's error code. */
int tw_client_station(tw_client_t *c, const tw_station_req_t *req,
                      int timeout_ms, void **data, size_t *len);

/* Add n stations (1 to 65536) in one request: reqs[i] are "add" requests
 * (op is ignored). One placement pass places them all. On 0, *data holds
 * the REPLY's array with one entry per request, in order: the state map
 * {"station", "state", "wanted", "worker"/"slot" or "reason"}, or
 * {"station", "code", "error"} for a station the broker refused (the
 * others are still added). Returns 0, TW_EINVAL for a bad request,
 * TW_E2BIG if they cannot fit in one message, TW_EUNREACH, or the
 * broker's error code. */
int tw_client_stations_add(tw_client_t *c, const tw_station_req_t *reqs,
                           size_t n, int timeout_ms, void **data,
                           size_t *len);

/* ------------------------------------------------------------------ */
/* Pools and groups                                                   */

/* A pool is a broker namespace named by the client ("default" unless a
 * spec or request names another); every task belongs to one pool and to
 * any number of its groups. The pool's size limits the running tasks of
 * the whole pool (0 = unlimited); a group's limit limits its own running
 * tasks, across every worker (S94-S99). The broker checks a submission in
 * S54's order: unknown handler (TW_EHANDLER), pool closed (TW_ECLOSED),
 * pool locked (TW_ELOCKED), a "reject" group at its limit or a group
 * whose calls are used up (TW_ELIMIT); such refusals come back in the
 * ack. Seed-semantics numbers (S43...) name the behaviour each call has.
 *
 * Every GROUP and POOL operation is one request answered by a REPLY whose
 * "data" is returned as msgpack (like tw_client_station), or by an ERROR
 * whose code is returned and whose message tw_client_last_error keeps.
 *
 *   GROUP op   fields used             data
 *   "create"   group, limit?, calls?,  group info; TW_EEXIST if the group
 *              full?                   exists (TaskGroupAlreadyExists)
 *   "set"      group, limit?, calls?,  group info; creates it on demand;
 *              full?                   a negative limit is TW_EINVAL;
 *                                      TW_CLIENT_LIMIT_NONE removes it,
 *                                      as "clear" (S96)
 *   "clear"    group                   group info, or nil if unknown
 *                                      (removes the limit; idempotent)
 *   "get"      group                   group info; a group never used
 *                                      reads as an empty one, counts 0,
 *                                      and is not created (S98)
 *   "list"     -                       [group info, ...] of the pool
 *   "ids"      group                   [every id the group ever held]
 *                                      (S60); TW_ENOENT if unknown
 *
 *   POOL op    fields used             data
 *   "size"     limit (0 = unlimited)   pool info
 *   "default_limit"  limit (has_limit 0 pool info: the limit of every
 *              clears it; >= 0)        group without one of its own
 *                                      (S101; 0: nothing new starts)
 *   "stats"    handler?                pool info; with a handler, first
 *                                      TW_EHANDLER if no worker has
 *                                      offered it (S54's first check)
 *   "lock", "unlock", "close"          pool info (S61, S63: a closed
 *                                      pool stays locked for good)
 *   "flush"    -                       {"forgotten": n} (S62)
 *   "stop"     n                       [ids cancelled, newest start
 *                                      first] (S67)
 *   "cancel_group"  group              {"cancelled": [ids]} (S58);
 *                                      TW_ENOENT if unknown
 *   "cancel_all"    -                  {"cancelled": [ids]} (S59)
 *
 * group info = {pool, group, limit (nil: none), calls (nil: none), full
 * ("queue" | "reject"), running, pending, ended, cancelled, admitted};
 * pool info = {pool, default_limit (nil: none), size, free (nil:
 * unlimited), running, pending, ended, cancelled, locked, closed, groups};
 * a group's "limit" is the one in force: its own, else the default. */
typedef struct {
    const char *op;    /* required, 1-32 bytes, see the tables above */
    const char *pool;  /* 1-128 bytes; NULL = "default" */
    const char *group; /* 1-128 bytes */
    int has_limit;     /* send `limit` */
    int64_t limit;     /* GROUP: most running (0 allowed: nothing new
                          starts); POOL size: the size;
                          TW_CLIENT_LIMIT_NONE: nil, "no limit" (S96) */
    int has_calls;     /* send `calls` */
    int64_t calls;     /* GROUP: lifetime admissions cap, >= 1 */
    const char *full;  /* GROUP: "queue" (wait for room) | "reject" */
    uint64_t n;        /* POOL stop: how many; 0 is left out */
    const char *handler; /* POOL stats: check it first (S54); NULL: no */
} tw_pool_req_t;

/* A `limit` sent as nil: no limit. For GROUP set it removes the group's
 * own limit, exactly as "clear" does; for POOL default_limit it clears
 * the default; for POOL size it means 0, unlimited (S96). */
#define TW_CLIENT_LIMIT_NONE INT64_MIN

/* Send one GROUP / POOL request and wait up to timeout_ms for its answer.
 * `data` and `len` work as in tw_client_station (both NULL to ignore the
 * data). Returns 0; TW_EINVAL for a bad request; TW_EUNREACH on timeout;
 * TW_ESTATE from inside a callback; or the broker's error code. */
int tw_client_group(tw_client_t *c, const tw_pool_req_t *req,
                    int timeout_ms, void **data, size_t *len);
int tw_client_pool(tw_client_t *c, const tw_pool_req_t *req, int timeout_ms,
                   void **data, size_t *len);

/* A group's settings and counters, decoded from group info. */
typedef struct {
    int64_t limit;  /* -1: none */
    int64_t calls;  /* -1: none */
    int reject;     /* 1 if full is "reject" */
    uint64_t running, pending, ended, cancelled, admitted;
} tw_group_info_t;

/* A pool's settings and counters, decoded from pool info. */
typedef struct {
    uint64_t size;  /* 0: unlimited */
    int64_t free;   /* -1: unlimited */
    uint64_t running, pending, ended, cancelled, groups;
    int locked, closed;
    int64_t default_limit; /* -1: none (S101) */
} tw_pool_info_t;

/* POOL default_limit (S101): `limit` >= 0 becomes the limit of every
 * group of `pool` that has none of its own; < 0 clears it. Returns 0 or
 * as tw_client_pool. */
int tw_client_pool_default_limit(tw_client_t *c, const char *pool,
                                 int64_t limit, int timeout_ms);

/* GROUP get, decoded. Returns 0 or as tw_client_group; a group never
 * used reads as empty (counts 0, the pool's default limit) without being
 * created (S98). `pool` NULL = "default". */
int tw_client_group_get(tw_client_t *c, const char *pool, const char *group,
                        int timeout_ms, tw_group_info_t *out);

/* POOL stats, decoded. Returns 0 or as tw_client_pool. */
int tw_client_pool_stats(tw_client_t *c, const char *pool, int timeout_ms,
                         tw_pool_info_t *out);

/* A POOL operation without fields ("lock", "unlock", "close", "flush"),
 * its data ignored. Returns 0 or as tw_client_pool. */
int tw_client_pool_op(tw_client_t *c, const char *pool, const char *op,
                      int timeout_ms);

/* The operations whose data is a list of task ids. On 0, *ids is a
 * malloc'ed array of *nids ids (NULL when empty; free() it).
 *   tw_client_group_ids     GROUP ids: every id the group held (S60).
 *   tw_client_pool_stop     POOL stop: cancel the n most recently started
 *                           running tasks of the pool, newest first
 *                           (S67; n >= running cancels all, 0 none).
 *   tw_client_pool_stop_all stop(running) (S68).
 *   tw_client_cancel_group  POOL cancel_group (group given, S58) or
 *                           cancel_all (group NULL, S59): pending tasks
 *                           end cancelled at once, running ones are asked
 *                           to stop, and the group(s) are forgotten. Maps
 *                           and applies this client is feeding into that
 *                           group (or pool) stop taking items. */
int tw_client_group_ids(tw_client_t *c, const char *pool, const char *group,
                        int timeout_ms, uint64_t **ids, size_t *nids);
int tw_client_pool_stop(tw_client_t *c, const char *pool, uint64_t n,
                        int timeout_ms, uint64_t **ids, size_t *nids);
int tw_client_pool_stop_all(tw_client_t *c, const char *pool, int timeout_ms,
                            uint64_t **ids, size_t *nids);
int tw_client_cancel_group(tw_client_t *c, const char *pool,
                           const char *group, int timeout_ms, uint64_t **ids,
                           size_t *nids);

/* Cancel tasks all-or-nothing (S56): the broker checks every id first and
 * cancels none if one is unknown or forgotten (TW_ENOENT, InvalidTaskID),
 * already being cancelled (TW_ECANCELED, AlreadyCancelled) or already
 * ended (TW_EENDED, AlreadyEnded); tw_client_last_error names the id.
 * A pending task ends cancelled at once; a running one is asked to stop
 * and ends when its worker confirms (S57). Returns 0, one of those codes,
 * TW_EINVAL (no ids, more than 65536), TW_EUNREACH or TW_ESTATE. */
int tw_client_cancel_strict(tw_client_t *c, const uint64_t *ids, size_t n,
                            int timeout_ms);

/* ------------------------------------------------------------------ */
/* apply, map, start                                                  */

/* These submit many tasks as one group and return the group's name at
 * once; the tasks are fed lazily from inside tw_client_poll, tw_run and
 * the other waiting calls, as earlier ones end (a "feeder", S50-S51). The
 * spec gives the handler, pool, extra groups, options and task-level
 * events of every task; its key is ignored (one key would make every task
 * after the first a duplicate). Each task's events carry the group name
 * and its item's index (from 0).
 *
 * Default group names (S45) are "apply-{handler}-group-{i}",
 * "map-...", "starmap-..." and "doublestarmap-..." (kwmap), with i the
 * smallest index whose group the broker does not know (GROUP create is
 * tried from 0 up and EEXIST moves on, so the index of a forgotten group
 * is reused); TW_EINVAL if that name would be longer than 128 bytes. A
 * group name given explicitly must be new: TW_EEXIST otherwise (S46), and
 * nothing is submitted.
 *
 * Checks, in S54's order, before anything is submitted and before the
 * first item is taken from the iterator: a bad spec (TW_EINVAL), then an
 * unknown handler (TW_EHANDLER: no worker has offered it), then the pool
 * closed (TW_ECLOSED) or locked (TW_ELOCKED) - these three from one POOL
 * stats request - then bad numbers (TW_EINVAL), then the group exists
 * (TW_EEXIST). A handler that becomes unknown later (it cannot, while the
 * broker runs) would be refused per item with TW_EHANDLER.
 *
 * Output: the group name in `name` (at most `size` - 1 bytes; names are
 * at most 128 bytes, so 129 always fits), if `name` is not NULL.
 * timeout_ms bounds each request made before the first submission. Not
 * from inside a callback (TW_ESTATE). */
#define TW_CLIENT_NAME_SIZE 129

/* The next item of a map: set *item to ONE msgpack-encoded value (borrowed
 * until the next call) and *len to its size, and return 1; return 0 when
 * there are no more items; return a negative TW_E* code if this item
 * could not be built: it is skipped (a TW_EV_SKIPPED event with that code,
 * S53) and the map goes on. Called from inside the waiting calls, like a
 * callback (the same rules apply). */
typedef int (*tw_iter_cb)(void *arg, const void **item, size_t *len);

typedef struct {
    const tw_task_spec_t *task; /* required: handler and options */
    tw_iter_cb next;            /* required */
    void *next_arg;
    uint32_t num_concurrent;    /* >= 1 (TW_EINVAL otherwise, S52) */
    const char *group;          /* NULL: the S45 default name */
} tw_map_t;

/* map: each item is one task's args (S51). starmap: each item must be an
 * array, the positional arguments; kwmap (doublestarmap): each item must
 * be a map with string keys, the keyword arguments (S52). An item that is
 * not one valid msgpack value, has the wrong shape or is too big is
 * skipped and reported with TW_EV_SKIPPED (S53).
 *
 * The group is created with limit num_concurrent, so at most that many of
 * its tasks run at once across the cluster, and the client holds at most
 * 2 * num_concurrent submitted but unfinished tasks of the map: it takes
 * the next item only when one ends (by result, exception, cancel or
 * refusal), so an endless iterator runs in bounded memory. The map ends
 * when the iterator returns 0, or when its group is cancelled
 * (tw_client_cancel_group), a tw_run it runs in ends, or the client is
 * destroyed; the rest of the iterator is then abandoned (S58). */
int tw_client_map(tw_client_t *c, const tw_map_t *m, char *name, size_t size,
                  int timeout_ms);
int tw_client_starmap(tw_client_t *c, const tw_map_t *m, char *name,
                      size_t size, int timeout_ms);
int tw_client_kwmap(tw_client_t *c, const tw_map_t *m, char *name,
                    size_t size, int timeout_ms);

/* apply: `num` (>= 1) tasks of `spec` with its args, in group `group`
 * (NULL: the S45 default), created without a limit (S50). Fed like a map
 * with at most 1024 unfinished tasks held at once. */
int tw_client_apply(tw_client_t *c, const tw_task_spec_t *spec, uint64_t num,
                    const char *group, char *name, size_t size,
                    int timeout_ms);

/* A SimpleTaskPool's start (S65-S66): `num` (>= 1) tasks of `spec` in a
 * new group "start-group-{k}", k counting this client's earlier
 * successful starts (a k whose group already exists in the broker is
 * passed over). The pool is spec->pool; stop with tw_client_pool_stop /
 * tw_client_pool_stop_all (S67-S68). */
int tw_client_start(tw_client_t *c, const tw_task_spec_t *spec, uint64_t num,
                    char *name, size_t size, int timeout_ms);

/* gather_and_close (S63): wait until every map, apply and start this
 * client feeds into the pool has taken its last item (an endless one
 * blocks until cancelled), lock the pool, wait until none of its tasks is
 * pending or running (from POOL stats, dispatching events meanwhile),
 * then close it: later submissions get TW_ECLOSED and unlock does not
 * reopen it. Feeders are drained before the lock because the broker
 * refuses every submission to a locked pool. Returns 0; TW_ETIMEDOUT
 * when timeout_ms (-1: none) passed first (the pool may then be locked
 * but is not closed); or a request's error. */
int tw_client_gather_and_close(tw_client_t *c, const char *pool,
                               int timeout_ms);

/* until_closed (S64): wait until the pool is closed: at once if it is,
 * else until the broker's pool.closed event arrives (with a POOL stats
 * check every 5 s in case it cannot), dispatching events meanwhile;
 * never closes it. Returns 0, TW_ETIMEDOUT or a request's error. */
int tw_client_until_closed(tw_client_t *c, const char *pool, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Task channels (S90-S93)                                            */

/* A running task may open a channel to the client that submitted it
 * (handler.h: tw_call_open...). Its items arrive here, per task in the
 * order the task sent them (S92): OPEN first, then MSG and REQ, CLOSE
 * last. A REQ carries a correlation id `cr` to answer with
 * tw_client_respond(); an unanswered request times out on the worker.
 * Channel items arrive while the client dispatches (poll, the waiting
 * calls), like every callback. */
typedef enum {
    TW_CHAN_OPEN = 1, /* data: the optional first message (nil if none) */
    TW_CHAN_MSG,      /* data: the message */
    TW_CHAN_REQ,      /* data: the request; answer with cr */
    TW_CHAN_CLOSE     /* the task closed it, or ended */
} tw_chan_kind_t;

/* Borrowed by the callback for its duration. */
typedef struct {
    uint64_t id;         /* broker task id */
    tw_chan_kind_t kind;
    const void *data;    /* one msgpack value ("\xc0", nil, if none) */
    size_t len;
    uint64_t cr;         /* REQ: its correlation id; else 0 */
} tw_chan_msg_t;

/* Return 0; non-zero means the handler failed, and the client then sends
 * a close request for that task's channel (S93: the task's waiting and
 * later requests fail with CloseRequestError). */
typedef int (*tw_chan_cb)(void *arg, const tw_chan_msg_t *msg);

/* The channel callback for every task this client submitted; NULL to
 * remove it. Items also become TW_EV_COMM_* session events. */
void tw_client_on_channel(tw_client_t *c, tw_chan_cb cb, void *arg);

/* Answer request `cr` of task `task_id` with `data` (one msgpack value,
 * `len` bytes; NULL = nil). Queued and sent at once if the socket takes
 * it; callable from callbacks. Returns 0, TW_EINVAL (bad msgpack, cr 0),
 * TW_E2BIG (over 16 MiB - 4 KiB) or TW_EIO. The broker answers an item
 * for a task that is not running (any more) with an ERROR that shows in
 * tw_client_last_error. */
int tw_client_respond(tw_client_t *c, uint64_t task_id, uint64_t cr,
                      const void *data, size_t len);

/* Ask the task to close its channel (closereq): its waiting and later
 * requests fail with CloseRequestError (S93). Returns 0 or TW_EIO. */
int tw_client_close_channel(tw_client_t *c, uint64_t task_id);

/* ------------------------------------------------------------------ */
/* Events and the session run                                         */

/* Events are built from ACKs and RESULT pushes (the broker runs no user
 * code) and delivered to the client-level callback (tw_client_on_event)
 * and then to the task's own spec->on_event (S85-S86). For one task:
 *
 *   TW_EV_SUBMITTED       at its ACK (dup set for a dedup hit, which ends
 *                         its tracking: no outcome events follow), or
 *   TW_EV_REFUSED         the broker refused it (err, msg); nothing
 *                         follows;
 *   then for its outcome (S73):
 *   TW_EV_CANCELLED       alone, if it was cancelled; otherwise
 *   TW_EV_DONE, then exactly one of TW_EV_RESULT (state ok) or
 *   TW_EV_EXCEPTION (error, timeout, lost).
 *   TW_EV_SKIPPED         a map item that could not be built (S53).
 *   While it runs, its channel items, in order (S91-S92, `chan` set):
 *   TW_EV_COMM_OPEN, TW_EV_COMM_MESSAGE, TW_EV_COMM_REQUEST and
 *   TW_EV_COMM_CLOSE, after the tw_client_on_channel callback saw them.
 * TW_EV_POOL_CLOSED (client-level only, msg = the pool's name): a pool
 * this client used was closed (S63), whoever closed it.
 *
 * The client-level callback sees a task's events before the task-level
 * one does: client DONE, client RESULT, task DONE, task RESULT. Only
 * tw_run fires START, EMPTY, STOP, TIMEOUT, FINISHING and FINISHED (S76).
 * Event callbacks follow the callback rules at the top of this file; they
 * may also call tw_stop. */
typedef enum {
    TW_EV_START = 1,
    TW_EV_SUBMITTED,
    TW_EV_REFUSED,
    TW_EV_DONE,
    TW_EV_RESULT,
    TW_EV_EXCEPTION,
    TW_EV_CANCELLED,
    TW_EV_SKIPPED,
    TW_EV_EMPTY,
    TW_EV_STOP,
    TW_EV_TIMEOUT,
    TW_EV_FINISHING,
    TW_EV_FINISHED,
    TW_EV_COMM_OPEN,
    TW_EV_COMM_MESSAGE,
    TW_EV_COMM_REQUEST,
    TW_EV_COMM_CLOSE,
    TW_EV_POOL_CLOSED
} tw_event_kind_t;

/* How a tw_run ended (S75). */
typedef enum {
    TW_EXIT_UNKNOWN = 0, /* an I/O error ended it */
    TW_EXIT_STOPPED,     /* tw_stop was called */
    TW_EXIT_TIMEOUT,     /* timeout_ms passed */
    TW_EXIT_EXHAUSTED,   /* empty, with end_on_empty */
    TW_EXIT_CANCELLED,   /* a task was cancelled, policy raise or end */
    TW_EXIT_EXCEPTION    /* a task failed, policy raise or end */
} tw_exit_code_t;

typedef struct {
    tw_exit_code_t code;
    uint64_t id;   /* CANCELLED, EXCEPTION: the task that ended the run */
    uint64_t seq;
    int state;     /* its TW_ST_* */
    char msg[256]; /* STOPPED: the stop message; EXCEPTION: the task's
                      error (truncated) */
} tw_exit_state_t;

/* Borrowed by the callback for its duration. */
struct tw_event {
    tw_event_kind_t kind;
    tw_client_t *client;
    uint64_t seq;              /* the task's; 0 for run events */
    uint64_t id;               /* broker task id once known */
    int err;                   /* REFUSED, SKIPPED: why */
    int dup;                   /* SUBMITTED: a dedup hit */
    const char *msg;           /* REFUSED: the broker's message; STOP: the
                                  stop message */
    const tw_result_t *result; /* DONE, RESULT, EXCEPTION, CANCELLED */
    const char *group;         /* map / apply / start group, else NULL */
    uint64_t index;            /* the item's index in that group's feed */
    const tw_exit_state_t *exit; /* FINISHED */
    const tw_chan_msg_t *chan;   /* COMM_*: the channel item */
};

/* The client-level event callback; NULL to remove it. Returns 0 or
 * TW_ENOMEM (nothing changed). */
int tw_client_on_event(tw_client_t *c, tw_event_cb cb, void *arg);

/* What a task outcome does to a tw_run (S81-S82). */
typedef enum {
    TW_POLICY_RAISE = 0, /* end the run; tw_run returns TW_EFAILED or
                            TW_ECANCELED (the default) */
    TW_POLICY_END,       /* end the run; tw_run returns 0 */
    TW_POLICY_CONTINUE   /* only the events fire */
} tw_policy_t;

/* Policies for failed (error, timeout, lost) and cancelled tasks.
 * Returns 0 or TW_ENOMEM (nothing changed). */
int tw_client_set_policy(tw_client_t *c, tw_policy_t on_exception,
                         tw_policy_t on_cancelled);

/* Run a session (S70, S75-S80, F4): fire START (submit the first work
 * there or before), then dispatch until it ends, in this priority:
 * tw_stop was called (STOP, code STOPPED); a task outcome ended it by
 * policy (EXCEPTION / CANCELLED); "empty" - every task this client
 * submitted has its outcome and no map, apply or start is still feeding
 * - fires EMPTY once per drain, and if it is still empty after the EMPTY
 * handlers ran (S78) and end_on_empty is set, the code is EXHAUSTED;
 * timeout_ms (-1: none; counted once START's handlers returned) passed
 * (TIMEOUT, code TIMEOUT). Then: feeders stop taking items and new
 * submissions are refused with TW_ESTATE until tw_run returns (S80),
 * FINISHING fires; with wait = 0 the tasks still in flight are cancelled (strict
 * CANCEL, then the lenient form for those that ended meanwhile) and their
 * CANCELLED events awaited for up to 10 s; with wait = 1 their outcomes
 * are awaited (up to timeout_ms more, if set). FINISHED fires last.
 * *st (if not NULL) gets the exit state. Returns 0; TW_EFAILED or
 * TW_ECANCELED when a policy "raise" ended it; TW_ESTATE if a run is
 * already going or from a callback; TW_EIO. */
int tw_run(tw_client_t *c, int timeout_ms, int end_on_empty, int wait,
           tw_exit_state_t *st);

/* End the current run (S80) with `msg` (NULL: "tw_stop() was called.").
 * The run is no longer running at once: from here until tw_run returns,
 * tw_client_submit, map, apply and start return TW_ESTATE and feeders
 * take no more items, so nothing new runs inside the finished session.
 * Returns 0, or TW_ESTATE (doing nothing) when no run is going. */
int tw_stop(tw_client_t *c, const char *msg);

/* ------------------------------------------------------------------ */
/* Reconnection and the outbox                                        */

/* The client watches the broker from inside the waiting calls (poll,
 * wait_all, the requests); nothing happens between them. When it has
 * heard nothing for heartbeat_ms it sends a ping (HEARTBEAT, which the
 * broker answers). When it has heard nothing for liveness * heartbeat_ms
 * and a ping has been out for (liveness - 1) * heartbeat_ms, the broker is
 * lost: the socket is closed and, after a backoff (reconnect_min_ms,
 * doubling per failed attempt up to reconnect_max_ms, +-20 % jitter), a
 * new one connects with the SAME routing id, so outcomes a restarted
 * broker pushes still reach this client. Then the client
 *
 *   - resends every submission not acknowledged yet, in order, with its
 *     original seq (a broker with a durable store answers a repeat with
 *     the first task id; one that restarted empty enqueues it once);
 *   - asks (a RESULT query) about every acknowledged task whose outcome
 *     has not arrived: an ended one is delivered to the result callback,
 *     a pending or running one is waited for as before, and one the
 *     broker says it never had (state unknown, 7) is delivered as state
 *     lost (4) with an error saying so, never waited on forever.
 *
 * A broker killed and back within that window never looks lost, so the
 * client also does both at once, on the same socket, when ZeroMQ's socket
 * monitor reports that its connection dropped, and when a message from
 * the broker carries a boot id other than the last one seen (each broker
 * run has its own: proto/PROTOCOL.md 5.19). Connection problems the
 * monitor reports (a refused port, a peer that is not a broker frontend,
 * a refused CURVE key) are logged in one line and, after a request ends
 * with TW_EUNREACH, are what tw_client_last_error() says.
 *
 * Given the two brokers of a pair (proto/PROTOCOL.md 17.8), a lost broker
 * (silence, BYE, or a dropped connection, which here means it at once)
 * sends the client to the other endpoint, where its first message, a
 * ping, says which broker it lost (the vote that lets a passive take
 * over); a passive's refusal (TW_ENOTACTIVE) sends it where the active
 * is, or has it ask again while the active is silent; and an answer under
 * a fencing epoch below one already seen (a deposed active) is ignored
 * and the other broker tried. What is resent and asked about is the same
 * as above.
 *
 * Submissions not acknowledged yet (the outbox) are bounded by max_outbox;
 * tw_client_submit returns TW_EFULL when it is full (poll to take ACKs,
 * then submit again). A request running while the broker is lost is not
 * resent: it ends with TW_EUNREACH at its timeout (or TW_ENOTACTIVE when a
 * passive broker refused it). */
typedef struct {
    uint32_t heartbeat_ms;     /* default 1000 */
    uint32_t liveness;         /* heartbeats of silence; default 3, >= 2 */
    uint32_t reconnect_min_ms; /* default 100 */
    uint32_t reconnect_max_ms; /* default 5000 */
    size_t max_outbox;         /* default 1000000 */
} tw_client_opts_t;

/* Change the options; a zero field keeps the current value. Returns 0, or
 * TW_EINVAL (liveness 1, reconnect_min_ms > reconnect_max_ms). */
int tw_client_set_opts(tw_client_t *c, const tw_client_opts_t *opts);

/* What reconnection did so far, and what is outstanding now. */
typedef struct {
    uint64_t lost;       /* times the broker was declared lost */
    uint64_t reconnects; /* new sockets connected after a loss */
    uint64_t resends;    /* submissions sent again after a reconnect */
    uint64_t requeries;  /* task ids asked about after a reconnect */
    uint64_t unknown;    /* tasks reported lost: the broker had no record */
    uint64_t pings;      /* pings sent while idle */
    size_t unacked;      /* submissions not acknowledged yet */
    size_t waiting;      /* acknowledged tasks without an outcome yet */
} tw_client_stats_t;

void tw_client_stats(const tw_client_t *c, tw_client_stats_t *out);

/* The message of the last error the broker sent this client, or "". */
const char *tw_client_last_error(const tw_client_t *c);

/* A sentence for the error code `err` (taskwheel/errors.h), such as
 * "queue full" for TW_EFULL. Never NULL; static. */
const char *tw_client_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TW_CLIENT_H */
