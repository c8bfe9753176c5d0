/*  taskwheel/handler.h - the native handler (plugin) ABI.
 *
 *  A plugin is a shared object loaded by `taskwheel-worker --plugin lib.so`.
 *  The worker calls its exported entry point
 *
 *      int tw_plugin_init(tw_plugin_t *plugin, int abi_version);
 *
 *  once, on the worker's loop thread. The plugin checks abi_version against
 *  TW_HANDLER_ABI (return non-zero to refuse), then registers its handlers
 *  with tw_plugin_register(). Each handler is a function called once per
 *  task with a tw_call_t, the task's handle:
 *
 *    - async (default): `run` is called on the worker's libuv loop thread
 *      and must not block. It may finish the call before returning or
 *      later, from a loop callback (tw_call_loop() gives the loop).
 *    - blocking (TW_HANDLER_BLOCKING): `run` is called on libuv's thread
 *      pool and may block; it must finish the call before it returns.
 *
 *  Every call is finished exactly once, by tw_call_finish() (success, with a
 *  msgpack-encoded result) or tw_call_fail() (an exception, with a message).
 *  A blocking handler that returns without finishing fails the task.
 *  When a task is cancelled or times out, `cancel` (if given) is called on
 *  the loop thread; an async handler must then stop its work and still
 *  finish the call (its outcome is discarded); a blocking handler should
 *  poll tw_call_cancelled() and return early. After a call is finished the
 *  handle is invalid.
 *
 *  Arguments and results are msgpack-encoded values (any msgpack value: the
 *  taskwheel CLI turns JSON arguments into msgpack). Functions that can
 *  fail return 0 or a negative TW_E* code from taskwheel/errors.h, the
 *  same codes the rest of taskwheel uses (TW_EINVAL is -EINVAL). Handlers
 *  run with the worker's privileges: load only plugins you trust.
 *
 *  Stations. The same handler also runs stations: perpetual loops that the
 *  broker places on one slot of a worker. Each iteration is one call whose
 *  arguments are the station's current payload; what the next payload is
 *  depends on the station's next mode ("same": unchanged; "result": the
 *  call's result; "handler": what the call gave tw_call_set_next, else
 *  unchanged). A result that is a map with a truthy "stop" key ends the
 *  station cleanly, one with an "exception" key ends it failed. During a
 *  station's iterations tw_call_station() gives the station handle:
 *
 *    - tw_station_emit() / tw_call_emit() send an s2n (service to network)
 *      message, published by the broker to subscribers;
 *    - `n2s` (if given) receives, on the loop thread and in order, the n2s
 *      (network to service) messages clients send to the station, also
 *      between iterations;
 *    - tw_station_data() keeps per-station state across iterations; the
 *      handler owns it and frees it in `end`, which the worker calls once,
 *      on the loop thread, when the station leaves the worker (ended,
 *      failed, cancelled, released) and no iteration of it runs any more.
 *
 *  A station handle is valid from the first call the handler gets for it
 *  (an iteration or an n2s message) until `end` returns.
 *
 *  Task channels (S90-S93). A one-shot task run by an async handler may
 *  open a channel to the client that submitted it: tw_call_open(), then
 *  tw_call_send() messages and tw_call_request() requests, whose replies
 *  (or errors) come back to a callback on the loop thread, then
 *  tw_call_close(). The submitter sees comm-open, comm-message,
 *  comm-request and comm-close events in the order they were sent. A
 *  channel still open when the call finishes is closed for it.
 */
#ifndef TW_HANDLER_H
#define TW_HANDLER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <taskwheel/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TW_HANDLER_ABI 1

/* Handler flags. */
#define TW_HANDLER_ASYNC 0
#define TW_HANDLER_BLOCKING 1

typedef struct tw_call tw_call_t;
typedef struct tw_plugin tw_plugin_t;
typedef struct tw_station tw_station_t;

typedef void (*tw_handler_run_fn)(tw_call_t *call, void *udata);
typedef void (*tw_handler_cancel_fn)(tw_call_t *call, void *udata);
/* One n2s message for station `st`: `data` is the msgpack value a client
 * sent (check it), `len` bytes, borrowed for the duration of the
 * callback. Loop thread. */
typedef void (*tw_handler_n2s_fn)(tw_station_t *st, const void *data,
                                  size_t len, void *udata);
/* Station `st` leaves the worker; free its tw_station_data. Loop thread. */
typedef void (*tw_handler_end_fn)(tw_station_t *st, void *udata);

typedef struct {
    const char *name;            /* 1-128 bytes, unique in the worker */
    int flags;                   /* TW_HANDLER_ASYNC or _BLOCKING */
    tw_handler_run_fn run;       /* required */
    tw_handler_cancel_fn cancel; /* optional */
    void *udata;                 /* passed to every function here */
    tw_handler_n2s_fn n2s;       /* optional: stations' n2s messages */
    tw_handler_end_fn end;       /* optional: a station leaves */
} tw_handler_def_t;

/* The plugin's entry point, exported by every plugin. Return 0 to load. */
int tw_plugin_init(tw_plugin_t *plugin, int abi_version);

/* Register a handler. `def` is copied (its name too); `def_size` is the
 * size of the tw_handler_def_t the plugin was compiled with, which is how
 * the struct grows without breaking plugins: fields a plugin's (older)
 * header did not have read as zero, and a plugin built with a newer
 * header than the worker's loads as long as the fields this worker does
 * not know are zero. Returns 0, or a negative error: TW_EEXIST for a name
 * already taken, TW_EINVAL for a bad definition (a `def_size` below
 * TW_HANDLER_DEF_MIN, or a field this worker does not know that is set).
 * Only valid during tw_plugin_init. Call it through tw_plugin_register. */
int tw_plugin_register_def(tw_plugin_t *plugin, const tw_handler_def_t *def,
                           size_t def_size);

/* The fields every version of tw_handler_def_t has (name to udata). */
#define TW_HANDLER_DEF_MIN offsetof(tw_handler_def_t, n2s)

/* tw_plugin_register_def with the size of the caller's struct. Plugins
 * built before the size was passed call the function of this name, which
 * the worker still exports: their struct is the one of TW_HANDLER_ABI 1
 * with n2s and end. */
int(tw_plugin_register)(tw_plugin_t *plugin, const tw_handler_def_t *def);
#define tw_plugin_register(plugin, def)                                      \
    tw_plugin_register_def((plugin), (def), sizeof *(def))

/* The task's msgpack-encoded arguments; borrowed until the call ends. */
const void *tw_call_args(const tw_call_t *call, size_t *len);

/* The broker's task id; 0 for a station's iteration. */
uint64_t tw_call_id(const tw_call_t *call);

/* The name of the handler being run. Borrowed. */
const char *tw_call_handler(const tw_call_t *call);

/* The worker's loop, for timers and I/O of async handlers. */
uv_loop_t *tw_call_loop(const tw_call_t *call);

/* A slot of user data that lives as long as the call. */
void tw_call_set_data(tw_call_t *call, void *data);
void *tw_call_data(const tw_call_t *call);

/* 1 once the task was cancelled or timed out, else 0. Thread-safe. */
int tw_call_cancelled(const tw_call_t *call);

/* Finish the call successfully; `result` (msgpack-encoded, may be NULL for
 * nil) is copied. Returns 0, or TW_EALREADY if the call already finished. */
int tw_call_finish(tw_call_t *call, const void *result, size_t len);

/* Finish the call with an exception described by a printf-style message.
 * Returns 0, or TW_EALREADY. */
int tw_call_fail(tw_call_t *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Stations ---------------------------------------------------------------
 * Unless said otherwise these are for the loop thread, or for a blocking
 * handler's `run` during its own station's iteration. */

/* The station this call is an iteration of, or NULL for a plain task. */
tw_station_t *tw_call_station(const tw_call_t *call);

/* The station's id ("sid"), NUL-terminated. Borrowed. */
const char *tw_station_id(const tw_station_t *st);

/* During an iteration, its number (1 for the station's first iteration
 * ever, counted across reassignments); between iterations, the number of
 * iterations completed. */
uint64_t tw_station_iteration(const tw_station_t *st);

/* Per-station user state that survives iterations (NULL at first). The
 * worker never frees it: do that in the handler's `end`. */
void *tw_station_data(const tw_station_t *st);
void tw_station_set_data(tw_station_t *st, void *data);

/* Queue an s2n message: `msgpack` is exactly one msgpack value, `len`
 * bytes, copied (NULL or 0 bytes send nil). Messages get per-station
 * sequence numbers from 1 and leave at the end of the loop turn. Any
 * thread while the station runs: from another thread (a blocking
 * handler) they are handed to the loop and keep their order. Returns 0,
 * TW_EINVAL (not one msgpack value), TW_E2BIG (larger than the broker
 * accepts) or TW_ESHUTDOWN (the station has ended). */
int tw_station_emit(tw_station_t *st, const void *msgpack, size_t len);

/* tw_station_emit() on the call's station; TW_EINVAL for a plain task. */
int tw_call_emit(tw_call_t *call, const void *msgpack, size_t len);

/* Set the payload of the station's next iteration (next mode "handler";
 * ignored in the other modes): one msgpack value, copied. Returns 0,
 * TW_EINVAL (a plain task, or not one msgpack value) or TW_E2BIG. */
int tw_call_set_next(tw_call_t *call, const void *msgpack, size_t len);

/* End the station cleanly after its current iteration (or at once if
 * none runs), as if that iteration had returned {"stop": true}. */
void tw_station_stop(tw_station_t *st);

/* Task channels ----------------------------------------------------------
 * Loop thread only, async handlers of one-shot tasks only (a station's
 * iteration or a blocking handler gets TW_EINVAL). Payloads are exactly
 * one msgpack value, copied; NULL or 0 bytes mean nil. Besides the codes
 * listed, each returns TW_E2BIG (a payload larger than 16 MiB - 64 KiB),
 * TW_ENOBUFS (64 MiB of channel data not yet sent: the broker is not
 * keeping up) or TW_EINVAL. TW_ECLOSEREQ means the submitter asked to
 * close the channel (CloseRequestError, S93), or it is gone. */

/* The older name of TW_ECLOSEREQ, kept for plugins that use it. */
#define TW_CHAN_ECLOSEREQ TW_ECLOSEREQ

/* A request's outcome: status 0 with the submitter's reply (one msgpack
 * value, `len` bytes, borrowed for the callback), or TW_ETIMEDOUT (no
 * reply within the timeout, S93), TW_ECLOSEREQ (close requested) or
 * TW_ECANCELED (the channel closed or the task ended first: cancelled or
 * timed out, and then the call must still be finished; or finished by
 * the handler, and then the call handle is no longer valid). Fires
 * exactly once per request that tw_call_request accepted, on the loop
 * thread. */
typedef void (*tw_chan_reply_fn)(void *udata, int status, const void *reply,
                                 size_t len);

/* Open the task's channel with an optional first message (the submitter's
 * comm-open event carries it). Returns 0, TW_EALREADY (opened before) or
 * TW_ESHUTDOWN (the task was cancelled or timed out). */
int tw_call_open(tw_call_t *call, const void *msgpack, size_t len);

/* Send one message (comm-message). Returns 0, TW_ENOTCONN (not open),
 * TW_ESHUTDOWN (closed) or TW_ECLOSEREQ. */
int tw_call_send(tw_call_t *call, const void *msgpack, size_t len);

/* Send a request (comm-request) and have `cb` called with the reply.
 * `timeout_ms` 0 means 30 s. Returns 0 (then `cb` fires exactly once), or
 * TW_ENOTCONN, TW_ESHUTDOWN, TW_ECLOSEREQ, TW_ENOBUFS (1024 requests wait
 * already), and then `cb` never fires. */
int tw_call_request(tw_call_t *call, const void *msgpack, size_t len,
                    uint64_t timeout_ms, tw_chan_reply_fn cb, void *udata);

/* Close the channel (comm-close); requests still waiting fire with
 * TW_ECANCELED. Returns 0, TW_ENOTCONN or TW_ESHUTDOWN (closed
 * already). */
int tw_call_close(tw_call_t *call);

#ifdef __cplusplus
}
#endif

#endif /* TW_HANDLER_H */
