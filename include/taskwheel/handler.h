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
 *  taskwheel CLI turns JSON arguments into msgpack). Handlers run with the
 *  worker's privileges: load only plugins you trust.
 */
#ifndef TW_HANDLER_H
#define TW_HANDLER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TW_HANDLER_ABI 1

/* Handler flags. */
#define TW_HANDLER_ASYNC 0
#define TW_HANDLER_BLOCKING 1

typedef struct tw_call tw_call_t;
typedef struct tw_plugin tw_plugin_t;

typedef void (*tw_handler_run_fn)(tw_call_t *call, void *udata);
typedef void (*tw_handler_cancel_fn)(tw_call_t *call, void *udata);

typedef struct {
    const char *name;            /* 1-128 bytes, unique in the worker */
    int flags;                   /* TW_HANDLER_ASYNC or _BLOCKING */
    tw_handler_run_fn run;       /* required */
    tw_handler_cancel_fn cancel; /* optional */
    void *udata;                 /* passed to run and cancel */
} tw_handler_def_t;

/* The plugin's entry point, exported by every plugin. Return 0 to load. */
int tw_plugin_init(tw_plugin_t *plugin, int abi_version);

/* Register a handler. `def` is copied (its name too). Returns 0, or a
 * negative error: -EEXIST for a name already taken, -EINVAL for a bad
 * definition. Only valid during tw_plugin_init. */
int tw_plugin_register(tw_plugin_t *plugin, const tw_handler_def_t *def);

/* The task's msgpack-encoded arguments; borrowed until the call ends. */
const void *tw_call_args(const tw_call_t *call, size_t *len);

/* The broker's task id. */
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
 * nil) is copied. Returns 0, or -EALREADY if the call already finished. */
int tw_call_finish(tw_call_t *call, const void *result, size_t len);

/* Finish the call with an exception described by a printf-style message.
 * Returns 0, or -EALREADY. */
int tw_call_fail(tw_call_t *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* TW_HANDLER_H */
