/*  worker/procpool.h - the proc pools' state machine: children, calls,
 *  deadlines.
 *
 *  A worker with --proc CMD runs handlers in long-lived children (see
 *  worker/proc.h and proto/PROTOCOL.md 15). This engine decides what
 *  happens to them; it does no I/O and reads no clock. The caller (the
 *  edge, worker/proc.c) feeds it events with the time, acts on what its
 *  callbacks ask (spawn a child, send a frame, signal, fail a call) and
 *  calls tw_procpool_run after every event, which does what is due and
 *  returns when it must run again. So every path, timeouts included, is
 *  unit-tested with a fake clock (tests/unit/test_worker_procpool.c).
 *
 *  Pools are numbered from 0, children from 0 across all pools (pool p
 *  owns a contiguous range). A pool learns its handler names from its
 *  first child's hello; the names of all pools form one list, indexed by
 *  `hid`. A call (tw_pp_job_t) for handler `hid` goes to an idle child of
 *  a pool offering it, or waits in one FIFO queue until one is idle.
 *
 *  Pipelines (PROTOCOL.md 15.9). A child whose hello allows it
 *  (tw_procpool_set_depth) may hold up to `depth` calls: the one it runs
 *  and those it will run next, in order. The engine sends a call to a
 *  busy child only when no child offering it is idle and calls are
 *  waiting, to the least loaded one, so that a child finishing one call
 *  finds the next in its pipe without waiting for the worker. A "solo"
 *  call (a station iteration: its n2s frames must name one call) goes
 *  only to an idle child and nothing is sent behind it; a busy child
 *  takes no queued call behind a waiting solo one it could run, so solo
 *  calls are not starved. A cancelled call that has not started gets its
 *  cancel frame at once and its grace once it is the child's first. When
 *  a child ends, the calls behind its first (which never started) go
 *  back to the front of the queue.
 *
 *  One child:
 *
 *      OFF --due: spawn--> HELLO --hello ok--> IDLE --call--> BUSY
 *       ^                    | timeout, bad     ^  |            | outcome
 *       |                    v                  |  | stop       v (of the
 *       |                   KILL <-- bad frame  |  v          IDLE  last)
 *       |                    |      (any state) | BYE --grace--.
 *       |                    | exit             |              v
 *       |                    v                  |  cancel: CANCEL --grace-->
 *       `-- closed, due -- DEAD <-- exit -------'  TERM (SIGTERM) --grace-->
 *           after backoff        (any state)       KILL (SIGKILL)
 *
 *  Restarts: a child the engine killed for a cancel or timeout is
 *  replaced at once. Any other end (a crash, a bad hello or frame, no
 *  hello in time) counts as a failure of that child and delays its
 *  restart by 100 ms doubling to 5 s; the count resets when the child
 *  finishes a call or had lived 10 s. Three children of one pool in a row
 *  that die before their hello make the pool "failing": calls that only
 *  it could run fail at once with its last error, until a child of it
 *  says hello again.
 *
 *  Callbacks run synchronously from the tw_procpool_* call that caused
 *  them; they must not call back into the engine. `fail` ends a call:
 *  the caller finishes it, which may report a task outcome, but must not
 *  start a new call from inside it. Loop thread only.
 */
#ifndef TW_WORKER_PROCPOOL_H
#define TW_WORKER_PROCPOOL_H

#include <stddef.h>
#include <stdint.h>

#define TW_PP_MAX_NAMES 1024 /* handler names, all pools together */
#define TW_PP_BACKOFF_MIN 100
#define TW_PP_BACKOFF_MAX 5000
#define TW_PP_HEALTHY_MS 10000 /* a child alive this long resets backoff */
#define TW_PP_FAILING 3        /* start failures in a row that fail a pool */

/* Flags a hello may give a handler (PROTOCOL.md 15.3). */
#define TW_PP_F_N2S 1

#define TW_PP_MAX_DEPTH 16 /* calls one child may hold */

/* A call for a proc handler: owned by the caller, linked by the engine
 * from tw_procpool_submit until it ends (an outcome, `fail`). */
typedef struct tw_pp_job {
    struct tw_pp_job *prev, *next; /* the wait queue, or the child's calls */
    unsigned hid;                  /* handler index */
    int solo;                      /* set by the caller: never pipelined */
    int child;                     /* sent to, or -1 */
    int state;                     /* private */
    void *data;                    /* the caller's */
} tw_pp_job_t;

typedef struct {
    /* Start child `child` (of pool `pool`). Return 0, or a negative
     * error with a one-line reason in `err` (the spawn failed; the child
     * is then expected to report tw_procpool_closed later, as after an
     * exit). */
    int (*spawn)(void *ud, unsigned child, unsigned pool, char *err,
                 size_t errlen);
    /* Send the `call` frame of `job` to `child`. */
    void (*send_call)(void *ud, unsigned child, tw_pp_job_t *job);
    /* Send `cancel` for `job` (sent to `child` earlier), or `shutdown`,
     * to `child`. */
    void (*send_cancel)(void *ud, unsigned child, tw_pp_job_t *job);
    void (*send_shutdown)(void *ud, unsigned child);
    /* Send `sig` (SIGTERM, SIGKILL) to the child's process group. */
    void (*signal)(void *ud, unsigned child, int sig);
    /* End `job`'s call with the error `msg` (the job is unlinked). */
    void (*fail)(void *ud, tw_pp_job_t *job, const char *msg);
    /* Something worth a log line about `child`: `level` is TW_LOG_*. */
    void (*note)(void *ud, unsigned child, int level, const char *msg);
} tw_pp_ops_t;

typedef struct {
    uint64_t spawned; /* children started */
    uint64_t exits;   /* children that exited (any way) */
    uint64_t crashes; /* exits counted as failures */
    uint64_t calls;   /* calls sent to children */
    uint64_t waited;  /* calls that had to wait for a child */
    uint64_t piped;   /* calls sent to a child that was running another */
    uint64_t requeued; /* calls taken back from a child that ended */
    uint64_t cancels; /* cancel frames sent */
    uint64_t terms;   /* SIGTERMs after a grace */
    uint64_t kills;   /* SIGKILLs */
    uint64_t bad;     /* protocol errors */
} tw_procpool_stats_t;

typedef struct tw_procpool tw_procpool_t;

/* An engine for `npools` pools of counts[p] children each (each >= 1),
 * with `hello_ms` for a hello and `grace_ms` between a cancel (or a
 * shutdown), SIGTERM and SIGKILL. `ops` is copied. Never NULL. */
tw_procpool_t *tw_procpool_new(size_t npools, const unsigned *counts,
                               uint64_t hello_ms, uint64_t grace_ms,
                               const tw_pp_ops_t *ops, void *ud);

/* Free the engine. No job may be linked. Sets *pp_p to NULL. */
void tw_procpool_free(tw_procpool_t **pp_p);

/* Spawn every child now. */
void tw_procpool_start(tw_procpool_t *pp, uint64_t now);

/* Start-up: 1 once every pool has names (its first hello), -1 if a pool
 * is failing (its last error in `err`), else 0. */
int tw_procpool_started(const tw_procpool_t *pp, char *err, size_t errlen);

/* Child `child` said hello with `n` names (names[i], lens[i] bytes) and
 * flags[i] (TW_PP_F_*; flags may be NULL). The first hello of a pool
 * sets its names; a later one must offer all of them (more are ignored).
 * Returns 0 (the child is idle), or TW_EINVAL with the reason in `err`
 * (a second hello, a missing name, too many names in all): the child is
 * then killed and counts a failure. */
int tw_procpool_hello(tw_procpool_t *pp, unsigned child,
                      const char *const *names, const size_t *lens,
                      const int *flags, size_t n, uint64_t now, char *err,
                      size_t errlen);

/* Child `child` (just greeted) takes up to `depth` calls at once (its
 * hello's "pipeline"; 1 by default, capped at TW_PP_MAX_DEPTH). */
void tw_procpool_set_depth(tw_procpool_t *pp, unsigned child, unsigned depth);

/* Names known so far, all pools together. */
size_t tw_procpool_nnames(const tw_procpool_t *pp);
const char *tw_procpool_name(const tw_procpool_t *pp, unsigned hid,
                             size_t *len);
int tw_procpool_flags(const tw_procpool_t *pp, unsigned hid);

/* The pool of `child`, and the child's state name for logs. */
unsigned tw_procpool_pool_of(const tw_procpool_t *pp, unsigned child);

/* The job `child` runs (busy, or cancelling), or NULL: the first of the
 * calls sent to it, which its frames are about. */
tw_pp_job_t *tw_procpool_job(const tw_procpool_t *pp, unsigned child);

/* Calls sent to `child` and not answered yet. */
unsigned tw_procpool_held(const tw_procpool_t *pp, unsigned child);

/* 1 if `child` has said hello and has not been told to go (frames from
 * it are expected), else 0. */
int tw_procpool_talking(const tw_procpool_t *pp, unsigned child);

/* 1 if `child` has been spawned and its hello is awaited, else 0. */
int tw_procpool_greeting(const tw_procpool_t *pp, unsigned child);

/* Run `job` (job->hid set): sent to a child now (when no call waits),
 * or queued for tw_procpool_run, which places calls in order.
 * Returns 0, or TW_EAGAIN with the reason in `err` when no pool offering
 * it can run it (all failing, or the engine is stopping); the job is
 * then not linked and `fail` is not called. */
int tw_procpool_submit(tw_procpool_t *pp, tw_pp_job_t *job, uint64_t now,
                       char *err, size_t errlen);

/* Cancel `job`: a queued one fails at once ("cancelled"); one sent to a
 * child gets a cancel frame, then, once it is the child's first call,
 * SIGTERM and SIGKILL as the grace runs out. Does nothing for a job
 * already being cancelled. */
void tw_procpool_cancel(tw_procpool_t *pp, tw_pp_job_t *job, uint64_t now);

/* `child` sent an outcome (result or error). Returns the job it ends
 * (its first), unlinked (the caller finishes its call, then calls
 * tw_procpool_run, which gives the child its next call), or NULL when no
 * call runs there (a protocol error: call tw_procpool_bad). */
tw_pp_job_t *tw_procpool_outcome(tw_procpool_t *pp, unsigned child,
                                 uint64_t now);

/* `child` broke the protocol (`why`): its call fails ("protocol error
 * from proc child: why"), the calls behind it go back to the queue, it
 * is killed and counts a failure. */
void tw_procpool_bad(tw_procpool_t *pp, unsigned child, const char *why,
                     uint64_t now);

/* `child` exited; `how` says how ("exit status 1: ...", "killed by
 * signal 9"). A call it ran fails, naming `how`; the calls behind it go
 * back to the queue (cancelled ones fail). */
void tw_procpool_exited(tw_procpool_t *pp, unsigned child, const char *how,
                        uint64_t now);

/* Every handle of `child` has closed: it may be spawned again. */
void tw_procpool_closed(tw_procpool_t *pp, unsigned child, uint64_t now);

/* Do what is due at `now`: expire hello and grace deadlines, spawn
 * children whose backoff is over, give idle children queued calls.
 * Returns ms until the next deadline, or -1 if none. */
int64_t tw_procpool_run(tw_procpool_t *pp, uint64_t now);

/* Wind down: queued calls fail ("the worker is stopping"), idle
 * children get shutdown, busy ones get it after their call, starting
 * ones are told to end; nothing is spawned again. */
void tw_procpool_stop(tw_procpool_t *pp, uint64_t now);

/* SIGKILL every child still running, now. */
void tw_procpool_kill_all(tw_procpool_t *pp);

/* Children not OFF (spawned and not yet closed). */
size_t tw_procpool_live(const tw_procpool_t *pp);

/* Children in all, and idle now. */
size_t tw_procpool_size(const tw_procpool_t *pp);
size_t tw_procpool_idle(const tw_procpool_t *pp);

void tw_procpool_stats(const tw_procpool_t *pp, tw_procpool_stats_t *out);

#endif /* TW_WORKER_PROCPOOL_H */
