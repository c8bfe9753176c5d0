/*  broker/state/sched.h - cron schedules inside the broker: which tick fires.
 *
 *  A schedule (`taskwheel schedule add NAME 'CRON' HANDLER ...`) submits a
 *  task from its template at every tick of its cron expression (common/
 *  cron.h) in its time zone. There is no separate "beat" process: the
 *  broker owns the schedules, stores them with its other state and fires
 *  each tick exactly once across restarts. This engine decides what to do
 *  and when; the broker creates the tasks, writes the store and publishes
 *  the events. It does no I/O and reads no clock: times are wall-clock
 *  milliseconds since the epoch passed in by the caller (ticks are instants,
 *  and a zone's rules are about wall time), and the caller arms its timer
 *  for tw_sched_next_due.
 *
 *  Per schedule, a cursor: every tick at or before it has been dealt with
 *  (fired or skipped). The ticks due at `now` are those after the cursor
 *  and at or before now. One is *on time* if now - tick <= grace (the
 *  misfire threshold, a broker setting, 60 s by default); older ones were
 *  *missed* (the broker was down or stalled). On-time ticks always fire.
 *  Missed ones follow the catch-up policy:
 *
 *      none  skip them all (one `skipped` event, reason "missed")
 *      last  if no tick is on time, fire the latest missed one; skip the
 *            rest
 *      all   fire each, oldest first, at most TW_SCHED_MAX_CATCHUP of the
 *            latest; skip older ones (reason "catch-up limit")
 *
 *  Each firing then meets the overlap policy, about the tasks this
 *  schedule fired that have not ended (its *live* tasks):
 *
 *      skip             a live task: skip this tick (reason "overlap")
 *      queue            fire, the new task to run after the latest live one
 *                       ends (a dependency, any-end); at most
 *                       TW_SCHED_MAX_LIVE live (then reason "queue full")
 *      cancel-previous  cancel the live tasks, then fire
 *
 *  A schedule's life:
 *
 *       add                 tick due: FIRE / SKIP, cursor = tick
 *     -----> ACTIVE <-------------------------------------.
 *              |  ^ resume (cursor = now: the paused      |
 *        pause |  |  ticks are neither fired nor skipped)  |
 *              v  |                                       |
 *             PAUSED                          ACTIVE -----'
 *       remove from either: forgotten (its live tasks run on)
 *
 *  Exactly once. The broker drives the engine with tw_sched_poll, one
 *  action at a time; the engine moves the schedule's cursor to the tick as
 *  it hands the action out. For a FIRE the broker creates the task, marks
 *  it with the schedule's name and tick, and writes the task record and
 *  the schedule record (with the new cursor) in one store transaction, then
 *  calls tw_sched_started. A crash before that commit loses both, and the
 *  tick, still after the stored cursor, comes due again after the restart;
 *  a crash after it keeps both, and the tick is at or before the cursor,
 *  so it never fires again. After a restart the broker re-adds each
 *  schedule with its stored cursor and calls tw_sched_started for each
 *  live task marked with a schedule, before the first poll.
 *
 *  Broker loop thread only.
 */
#ifndef TW_BROKER_SCHED_H
#define TW_BROKER_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "common/cron.h"
#include "common/tz.h"

/* Missed ticks fired at most by catch-up `all`. */
#define TW_SCHED_MAX_CATCHUP 1000

/* Live tasks one schedule may have under overlap `queue`. */
#define TW_SCHED_MAX_LIVE 1000

/* The misfire threshold's default and largest value, in ms. */
#define TW_SCHED_GRACE_DEFAULT 60000
#define TW_SCHED_GRACE_MAX 600000

/* A schedule's name: 1..128 octets. */
#define TW_SCHED_NAME_MAX 128

typedef enum {
    TW_OVERLAP_SKIP = 0,
    TW_OVERLAP_QUEUE = 1,
    TW_OVERLAP_CANCEL = 2
} tw_overlap_t;

typedef enum {
    TW_CATCHUP_NONE = 0,
    TW_CATCHUP_LAST = 1,
    TW_CATCHUP_ALL = 2
} tw_catchup_t;

/* Why ticks were skipped. */
typedef enum {
    TW_SKIP_OVERLAP = 1,
    TW_SKIP_MISSED = 2,
    TW_SKIP_LIMIT = 3,
    TW_SKIP_QUEUE_FULL = 4
} tw_skip_t;

typedef enum {
    TW_SCHED_FIRE = 1,
    TW_SCHED_SKIP = 2
} tw_sched_kind_t;

/* The policy named by `len` octets at `s` ("skip", "queue",
 * "cancel-previous"; "none", "last", "all"), or TW_EINVAL; and back. */
int tw_overlap_parse(const char *s, size_t len);
int tw_catchup_parse(const char *s, size_t len);
const char *tw_overlap_name(int overlap);
const char *tw_catchup_name(int catchup);
const char *tw_skip_name(int reason); /* "overlap", "missed", ... */

/* What a schedule is made of. Everything is copied by tw_sched_add except
 * the zone, which is borrowed and must outlive the schedule (the broker
 * keeps the zones it loaded until it exits). */
typedef struct {
    const char *name;
    size_t namelen;
    const char *expr;   /* the cron text, NUL-terminated */
    const tw_tz_t *tz;  /* NULL: UTC */
    int overlap;        /* tw_overlap_t */
    int catchup;        /* tw_catchup_t */
    int paused;
    int64_t cursor_ms;  /* a new schedule: its creation time */
    const void *tmpl;   /* the task to submit: opaque to the engine */
    size_t tmpl_len;
} tw_sched_def_t;

/* One thing to do, from tw_sched_poll or tw_sched_run_now. */
typedef struct {
    int kind;           /* TW_SCHED_FIRE or TW_SCHED_SKIP */
    const char *name;   /* borrowed until the schedule is removed */
    size_t namelen;
    int64_t tick_ms;    /* FIRE: the tick; SKIP: the latest tick skipped */
    int64_t first_ms;   /* SKIP: the earliest tick skipped */
    uint64_t count;     /* SKIP: ticks skipped, 0 if not counted (after a
                           long downtime only the latest are enumerated) */
    int reason;         /* SKIP: tw_skip_t */
    int manual;         /* FIRE: from run-now, not a tick */
    int cancel_live;    /* FIRE: cancel the live tasks first */
    uint64_t after;     /* FIRE: run after this live task ends (queue), 0
                           if none */
    const void *tmpl;   /* FIRE: the template, borrowed like name */
    size_t tmpl_len;
} tw_sched_action_t;

/* What tw_sched_get tells about one schedule. Pointers are borrowed
 * until the schedule is changed or removed. */
typedef struct {
    const char *name;
    size_t namelen;
    const char *expr;
    const char *tz;     /* the zone's name */
    int overlap, catchup, paused;
    int64_t cursor_ms;
    int64_t next_ms;    /* the next tick after the cursor, INT64_MAX if
                           none within the cron horizon */
    size_t live;
    const uint64_t *live_ids; /* oldest first */
    uint64_t fired, skipped;  /* since it was added to this engine */
    const void *tmpl;
    size_t tmpl_len;
} tw_sched_info_t;

typedef struct tw_sched tw_sched_t;

/* An empty engine; `grace_ms` is the misfire threshold (0: the default;
 * clamped to TW_SCHED_GRACE_MAX). Never NULL. */
tw_sched_t *tw_sched_new(uint64_t grace_ms);

/* Free the engine; sets *s_p to NULL. Idempotent. */
void tw_sched_destroy(tw_sched_t **s_p);

/* Add a schedule. Returns 0; TW_EINVAL with a sentence in `err` (errlen
 * octets, may be NULL) for a bad name, expression or policy; TW_EEXIST if
 * the name is taken. */
int tw_sched_add(tw_sched_t *s, const tw_sched_def_t *def, char *err,
                 size_t errlen);

/* Forget a schedule. Returns 0 or TW_ENOENT. */
int tw_sched_remove(tw_sched_t *s, const char *name, size_t namelen);

/* Pause, or resume at now_ms (the cursor moves to now: the ticks missed
 * while paused are neither fired nor skipped). Idempotent. Returns 0 or
 * TW_ENOENT. */
int tw_sched_pause(tw_sched_t *s, const char *name, size_t namelen);
int tw_sched_resume(tw_sched_t *s, const char *name, size_t namelen,
                    int64_t now_ms);

/* The next thing due at now_ms: returns 1 and fills *act, or 0 when
 * nothing is due. The schedule's cursor has moved when it returns 1; a
 * FIRE must be followed, before the next poll, by tw_sched_started (the
 * task was created) or tw_sched_unfired (it could not be: the tick then
 * counts as skipped). Call until it returns 0. */
int tw_sched_poll(tw_sched_t *s, int64_t now_ms, tw_sched_action_t *act);

/* A FIRE for `name` now, not a tick (run-now): the cursor does not move,
 * the overlap policy `skip` does not apply (queue and cancel-previous
 * do), a paused schedule fires too. Returns 0 or TW_ENOENT. */
int tw_sched_run_now(tw_sched_t *s, const char *name, size_t namelen,
                     int64_t now_ms, tw_sched_action_t *act);

/* The task `task_id` was created for the FIRE just handed out (or for a
 * live task found in the store after a restart, with its schedule's
 * name). Returns 0, TW_ENOENT (no such schedule) or TW_EFULL. */
int tw_sched_started(tw_sched_t *s, const char *name, size_t namelen,
                     uint64_t task_id);

/* The FIRE just handed out for `name` made no task. */
void tw_sched_unfired(tw_sched_t *s, const char *name, size_t namelen);

/* Task `task_id` ended; if a schedule fired it, it is no longer live
 * there. Returns 1 if it was a schedule's task, else 0. */
int tw_sched_task_ended(tw_sched_t *s, uint64_t task_id);

/* The earliest tick due, in ms since the epoch, of any active schedule:
 * INT64_MAX if none, INT64_MIN while a catch-up is being handed out (poll
 * again at once). The broker's timer is due at this - now. */
int64_t tw_sched_next_due(const tw_sched_t *s);

/* Read one schedule. Returns 0 or TW_ENOENT. */
int tw_sched_get(const tw_sched_t *s, const char *name, size_t namelen,
                 tw_sched_info_t *out);

/* Call fn for every schedule, in no particular order; fn must not change
 * the engine. */
void tw_sched_each(const tw_sched_t *s,
                   void (*fn)(const tw_sched_info_t *info, void *arg),
                   void *arg);

/* The number of schedules. */
size_t tw_sched_count(const tw_sched_t *s);

#endif /* TW_BROKER_SCHED_H */
