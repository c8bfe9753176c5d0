/*  worker/taskloop.h - the taskloop engine: the stations one worker runs.
 *
 *  A station is a perpetual loop the broker places on one slot of this
 *  worker ("the async while", seed-semantics S1-S23). The engine runs each
 *  station's handler again and again through a tw_call_t of its own, each
 *  iteration's input derived from the last by the station's next mode, and
 *  applies the controls the broker forwards:
 *
 *      add ---> WAIT ---- due: start ----> RUN
 *       |        ^  ^                       |  iteration ends: ck, it++;
 *       | ps=1   |   `---- boundary <------'   controls apply here (S13)
 *       v        | continue      |
 *     PAUSED <---+---- pause ----'       timeout, cancel, release now,
 *                                        stop/stop-key/error/exception
 *                   ENDED <------------- at the boundary or at once
 *                     |  last call finished: `left` (the slot is free)
 *                     v
 *                   freed by the next tw_taskloop_run (handler's `end`)
 *
 *  The engine does no I/O and reads no clock: tw_taskloop_run(now_ms)
 *  starts what is due, expires timeouts and returns how long until it must
 *  run again, and the caller (the worker) owns the libuv idle handle and
 *  timer that call it. An iteration's outcome never starts the next one
 *  from inside the handler's finish: the station is queued for the next
 *  run, so every iteration yields to the loop and many stations interleave
 *  (S22). Everything the engine has to say goes through the callbacks
 *  below, synchronously: state changes (`event`, carrying the station's
 *  iteration count and checkpoint as they are at that moment), s2n
 *  messages, and the slot becoming free (`left`). Checkpoints of ordinary
 *  iterations are not reported one by one: stations whose checkpoint moved
 *  are kept on a dirty list the caller takes when it wants (at most every
 *  100 ms), one entry per station however many iterations passed.
 *
 *  Threads: everything here is for the loop thread, except what the plugin
 *  ABI allows a blocking handler (tw_station_emit from a pool thread is
 *  queued under a lock and handed over by the `async` callback).
 */
#ifndef TW_TASKLOOP_H
#define TW_TASKLOOP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "worker/handlers.h"

/* The largest payload (checkpoint, s2n message) a station may produce:
 * what fits in one message under the broker's default 16 MiB frame. */
#define TW_STATION_MAX_PAYLOAD ((16u << 20) - 65536)

/* State changes reported through `event`; names as on the wire ("ev"). */
typedef enum {
    TW_SEV_RUNNING,   /* started or resumed */
    TW_SEV_PAUSED,    /* paused at a boundary, or assigned paused */
    TW_SEV_STOPPED,   /* ended by a STOP control (S17) */
    TW_SEV_DONE,      /* ended by {"stop": true} or tw_station_stop (S19) */
    TW_SEV_FAILED,    /* ended by an error, exception or timeout (S20-S23) */
    TW_SEV_CANCELLED, /* ended by a CANCEL control (S18) */
    TW_SEV_RELEASED,  /* given back to the broker (RELEASE, drain) */
    TW_SEV_ITERATION  /* a checkpoint report (never passed to `event`) */
} tw_sev_t;

/* The wire name of `ev` ("running"...), "?" if unknown. Static. */
const char *tw_sev_name(int ev);

/* Next modes, as carried in "nx" (S3-S5). */
typedef enum {
    TW_NEXT_SAME = 0,
    TW_NEXT_RESULT = 1,
    TW_NEXT_HANDLER = 2
} tw_next_t;

/* Controls, as carried in CONTROL's "ev". */
typedef enum {
    TW_CTL_PAUSE = 1,
    TW_CTL_CONTINUE,
    TW_CTL_STOP,
    TW_CTL_CANCEL
} tw_ctl_t;

/* The control named by `len` bytes at `s`, or TW_EINVAL. */
int tw_ctl_parse(const char *s, size_t len);

/* What ASSIGN says about one station. Everything is copied by add. */
typedef struct {
    const char *sid; /* 1-128 bytes */
    size_t sidlen;
    uint64_t ep;           /* epoch, echoed in every report */
    const tw_handler_t *h; /* borrowed from the registry */
    const void *input;     /* ck if given, else a; one msgpack value */
    size_t ilen;           /* 0: nil */
    int next;              /* tw_next_t */
    uint64_t interval_ms;  /* min ms from one start to the next */
    uint64_t timeout_ms;   /* per iteration, 0 = none; for open-ended
                              iterations, the longest time without s2n */
    int paused;            /* start paused */
    uint64_t it;           /* iterations completed before */
    int slot;              /* the caller's, see tw_station_slot */
} tw_station_def_t;

/* The engine's output. All but `async` are called on the loop thread,
 * from inside the tw_taskloop_* call or handler finish that caused them;
 * they must not call back into the engine. */
typedef struct {
    /* The engine has work: call tw_taskloop_run on the next loop turn. */
    void (*wake)(void *udata);
    /* A state change of `st` to report; `err` for TW_SEV_FAILED. */
    void (*event)(void *udata, tw_station_t *st, int ev, const char *err);
    /* The dirty list just became non-empty. */
    void (*dirty)(void *udata);
    /* An s2n message of `st`: `d` is one msgpack value, borrowed. */
    void (*s2n)(void *udata, tw_station_t *st, uint64_t seq, const void *d,
                size_t len);
    /* `st` no longer occupies its slot (no call of it runs any more). It
     * has ended, so it is no longer found by sid; freed on a later run. */
    void (*left)(void *udata, tw_station_t *st);
    /* Any thread: like wake, but thread-safe (uv_async_send). May be NULL:
     * messages from other threads then wait for the next run. */
    void (*async)(void *udata);
} tw_taskloop_cbs_t;

typedef struct {
    uint64_t stations;   /* added */
    uint64_t iterations; /* finished (ok or not) */
    uint64_t timeouts;
    uint64_t n2s;         /* delivered to handlers */
    uint64_t n2s_dropped; /* no n2s callback, or station ended */
    uint64_t n2s_dup;     /* seq not above the last one delivered */
    uint64_t s2n;         /* emitted */
    uint64_t s2n_dropped; /* emitted after the station ended */
} tw_taskloop_stats_t;

typedef struct tw_taskloop tw_taskloop_t;

/* An engine whose calls run on `loop`, created on the loop's thread. The
 * callbacks are copied. Never NULL. */
tw_taskloop_t *tw_taskloop_new(uv_loop_t *loop, const tw_taskloop_cbs_t *cbs,
                               void *udata);

/* Free the engine and every station left, calling their handlers' `end`.
 * No iteration may be running (end them and wait for `left`). Sets *tl_p
 * to NULL; idempotent. */
void tw_taskloop_destroy(tw_taskloop_t **tl_p);

/* Stop calling `async` (the caller is about to close what it wakes).
 * Thread-safe. */
void tw_taskloop_no_async(tw_taskloop_t *tl);

/* Add a station; reports TW_SEV_RUNNING (its first iteration starts on
 * the next run) or TW_SEV_PAUSED. Returns 0 and sets *out (may be NULL),
 * TW_EEXIST if a live station has this sid, or TW_EINVAL (bad sid, next
 * mode, no handler, input too big). Nothing is reported on error. */
int tw_taskloop_add(tw_taskloop_t *tl, const tw_station_def_t *def,
                    tw_station_t **out);

/* The live (not ended) station with this sid, or NULL. */
tw_station_t *tw_taskloop_find(const tw_taskloop_t *tl, const char *sid,
                               size_t len);

/* Apply a control (S11-S18). CANCEL ends the station now (the running
 * iteration is cancelled, its outcome discarded); the others are noted
 * and applied at the next boundary, the last one noted winning (S13),
 * except STOP of a running open-ended iteration (a handler with `stop`,
 * worker/handlers.h), which reports TW_SEV_STOPPED now and asks the
 * iteration to end. Returns 0, TW_EINVAL (unknown control) or TW_ESTATE
 * (ended). */
int tw_taskloop_control(tw_taskloop_t *tl, tw_station_t *st, int ctl);

/* Give the station back to the broker: TW_SEV_RELEASED with its
 * checkpoint. With `graceful` a running iteration finishes first (and its
 * result counts); otherwise it is cancelled. A running open-ended
 * iteration is neither waited for nor cancelled: the station is released
 * now and the handler's `stop` asks the iteration to end (`left` follows
 * when it has). Returns 0 or TW_ESTATE. */
int tw_taskloop_release(tw_taskloop_t *tl, tw_station_t *st, int graceful);

/* tw_taskloop_release on every live station. */
void tw_taskloop_release_all(tw_taskloop_t *tl, int graceful);

/* End every live station silently (the broker forgot them): running
 * iterations are cancelled, nothing is reported but `left`. */
void tw_taskloop_drop_all(tw_taskloop_t *tl);

/* Cancel every iteration still running, including those already asked
 * to end politely (a forced stop: no grace for open-ended ones). */
void tw_taskloop_kill_all(tw_taskloop_t *tl);

/* End one station silently, like tw_taskloop_drop_all. */
void tw_taskloop_drop(tw_taskloop_t *tl, tw_station_t *st);

/* Deliver n2s message `seq` to the station's handler now. Returns 0, or
 * TW_EEXIST (seq not above the last delivered: a duplicate), TW_ENOENT
 * (the handler takes no n2s) or TW_ESTATE (ended); those are dropped and
 * counted. */
int tw_taskloop_n2s(tw_taskloop_t *tl, tw_station_t *st, uint64_t seq,
                    const void *data, size_t len);

/* Do what is due at `now_ms`: apply controls at boundaries, start due
 * iterations, expire timeouts, free stations that have left. Returns 0
 * if more work is ready (call again on the next loop turn), the ms until
 * the next deadline, or -1 if nothing is scheduled. */
int64_t tw_taskloop_run(tw_taskloop_t *tl, uint64_t now_ms);

/* Take the dirty list: `fn` once per station whose checkpoint moved since
 * it was last taken or reported. `fn` must not call into the engine. */
void tw_taskloop_take_dirty(tw_taskloop_t *tl,
                            void (*fn)(void *arg, tw_station_t *st),
                            void *arg);

/* Live stations (not ended), and all stations still allocated. */
size_t tw_taskloop_live(const tw_taskloop_t *tl);
size_t tw_taskloop_count(const tw_taskloop_t *tl);

/* Counters since creation. */
void tw_taskloop_stats(const tw_taskloop_t *tl, tw_taskloop_stats_t *out);

/* Station accessors for reports. Borrowed until the station is freed. */
const char *tw_station_sid(const tw_station_t *st, size_t *len);
uint64_t tw_station_ep(const tw_station_t *st);
uint64_t tw_station_done_count(const tw_station_t *st); /* "it" */
const void *tw_station_ck(const tw_station_t *st, size_t *len); /* "ck" */
int tw_station_slot(const tw_station_t *st);
/* The seq of the last n2s message delivered (during an n2s callback: the
 * message being delivered), 0 before the first. */
uint64_t tw_station_n2s_seq(const tw_station_t *st);
const char *tw_station_handler(const tw_station_t *st);

#endif /* TW_TASKLOOP_H */
