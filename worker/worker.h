/*  worker/worker.h - one worker process's conversation with the broker.
 *
 *  A DEALER socket inside the libuv loop (through common/zwatch.h) speaks
 *  the backend protocol of notes/CONTEXT.md and proto/PROTOCOL.md:
 *
 *      DOWN --connect, HELLO--> HELLO --WELCOME, READY{free}--> READY
 *        ^                        |                               |
 *        |   3*hb of silence:     |   ERROR EWORKER: HELLO again   |
 *        `-- close, backoff <-----+<------------------------------'
 *
 *  In READY, TASKS fill the slot table, CANCEL ends tasks, and outcomes
 *  are batched into DONE messages that also return the freed credit; they
 *  are flushed after each batch of received messages and from a uv_check,
 *  so many outcomes share one message and none waits for a timer. Each
 *  (re-)HELLO makes the broker requeue what this worker had in flight, so
 *  at that point running tasks are cancelled silently and unsent outcomes
 *  dropped, and READY offers only the slots that are really free.
 *
 *  Stations (notes/STATIONS.md): ASSIGN puts a station on a slot of the
 *  taskloop engine (taskloop.h), RELEASE, CONTROL and N2S act on it when
 *  their epoch matches the one held (others are ignored and counted), and
 *  the worker reports STATION state changes at the end of the loop turn,
 *  checkpoints coalesced at most every 100 ms, and S2N messages. A station
 *  that leaves its slot returns one credit.
 *
 *  Task channels (chan.h): a running task's CHAN items (open, msg, req,
 *  close) are batched and sent before the DONE batch of the same flush,
 *  so they reach the broker before the task's outcome; CHAN from the
 *  broker (resp, closereq) goes to the task's channel, and items for a
 *  task without one are dropped and counted there.
 *
 *  tw_worker_drain() is the graceful stop: no new tasks or stations are
 *  taken, stations are released with their checkpoint after their
 *  current iteration (open-ended ones, stream, at once: their program is
 *  asked to end), running tasks get up to drain_timeout_ms (then what
 *  is left is cancelled, stations still reported released), then the last
 *  reports and a BYE go out and the worker closes. Loop thread only.
 */
#ifndef TW_WORKER_H
#define TW_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/keys.h"
#include "worker/chan.h"
#include "worker/handlers.h"
#include "worker/taskloop.h"

typedef struct {
    const char *broker;        /* endpoint, e.g. tcp://127.0.0.1:7711 */
    const char *name;          /* NULL: <hostname>-<pid> */
    unsigned slots;            /* 1..65536 */
    const char *tags;          /* "k=v,k2=v2" or NULL */
    uint64_t drain_timeout_ms; /* how long a drain waits for tasks */
    uint64_t stop_grace_ms;    /* how long cancelled tasks get to end
                                  when the worker stops; 0: 1000 */
} tw_worker_opts_t;

typedef struct tw_worker tw_worker_t;

/* Fires once when the worker has stopped. `code` is 0 after a drain and 1
 * after tw_worker_abort. `stuck` is 1 when some task would not stop (a
 * blocking handler that ignores cancellation): its handles are still
 * open, so the caller should exit the process instead of waiting for the
 * loop to end. */
typedef void (*tw_worker_exit_cb)(tw_worker_t *w, int code, int stuck);

/* Check `o` and make a worker running `reg`'s handlers (borrowed, must
 * outlive it) on `loop`. Returns 0 and sets *out, or TW_EINVAL with a
 * one-line reason in `err` (bad tags, slots out of range). */
int tw_worker_new(tw_worker_t **out, uv_loop_t *loop,
                  const tw_handlers_t *reg, const tw_worker_opts_t *o,
                  char *err, size_t errlen);

/* Connect with CURVE using `curve`'s keys (borrowed: they must outlive
 * the worker; worker/security.h loads them); NULL, the default, means
 * plaintext. Call before tw_worker_start. */
void tw_worker_set_curve(tw_worker_t *w, const tw_curve_client_t *curve);

/* Connect and say HELLO; from now on the worker reconnects by itself.
 * Returns 0, after which `cb` fires exactly once; or a negative error
 * (e.g. an endpoint ZeroMQ rejects) with the reason in `err`. */
int tw_worker_start(tw_worker_t *w, tw_worker_exit_cb cb, char *err,
                    size_t errlen);

/* Stop gracefully (see above). Idempotent. */
void tw_worker_drain(tw_worker_t *w);

/* Stop now: cancel running tasks, send BYE if connected, close. */
void tw_worker_abort(tw_worker_t *w);

/* Free a worker whose exit callback has fired (or that never started).
 * Sets *w_p to NULL. */
void tw_worker_destroy(tw_worker_t **w_p);

/* The routing identity, "w-<name>-<8 hex>". Borrowed. */
const char *tw_worker_ident(const tw_worker_t *w);

typedef struct {
    uint64_t tasks;       /* tasks started */
    uint64_t stations;    /* live stations now */
    uint64_t stale;       /* station messages ignored: epoch or sid */
    uint64_t refused;     /* ASSIGN items refused */
    uint64_t s2n_dropped; /* s2n not sent: too much pending */
    tw_taskloop_stats_t tl;
    tw_chans_stats_t chan; /* task channels */
} tw_worker_stats_t;

/* Counters since tw_worker_new. */
void tw_worker_stats(const tw_worker_t *w, tw_worker_stats_t *out);

#endif /* TW_WORKER_H */
