/*  worker/handlers.h - the handler registry and the call that runs one task.
 *
 *  The registry maps handler names to the definitions that built-ins,
 *  exec and plugins registered (include/taskwheel/handler.h is the plugin
 *  side of the same contract). It is filled at start-up and read-only
 *  while tasks run: pointers from tw_handlers_find() stay valid until the
 *  next tw_handlers_add().
 *
 *  A tw_call_t is the handle a handler sees for one task. The slot table
 *  embeds one per slot and reuses it task after task, so running a task
 *  allocates nothing once the call's buffers have grown to fit:
 *
 *      tw_call_start --> run (async: on the loop; blocking: thread pool)
 *            |                 |
 *       tw_call_cancel     tw_call_finish / tw_call_fail (exactly once)
 *            |                 |
 *            `--> cancel fn    `--> done callback, on the loop, once
 *
 *  An async call that finishes during `run` delivers its outcome before
 *  tw_call_start returns, without copying the result. A blocking call keeps
 *  its outcome in the call until the pool hands the work back to the loop.
 *  Everything here runs on the loop thread except a blocking handler's
 *  `run` and what it calls: tw_call_args/_id/_handler/_data,
 *  tw_call_cancelled, tw_call_finish and tw_call_fail.
 */
#ifndef TW_HANDLERS_H
#define TW_HANDLERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "taskwheel/handler.h"

/* A registered handler; the registry owns `name`. */
typedef struct {
    char *name; /* NUL-terminated */
    size_t nlen;
    int flags; /* TW_HANDLER_ASYNC or TW_HANDLER_BLOCKING */
    tw_handler_run_fn run;
    tw_handler_cancel_fn cancel;
    void *udata;
    tw_handler_n2s_fn n2s; /* stations only; may be NULL */
    tw_handler_end_fn end; /* stations only; may be NULL */
    /* Stations only, may be NULL; not part of the plugin ABI. A handler
     * with `stop` runs open-ended iterations (the stream handler: one
     * iteration lasts as long as its program). The engine calls it
     * instead of `cancel` to end a running iteration politely, at once,
     * on a drain, a RELEASE or a STOP (the call must still end, within a
     * short grace), and treats the station's timeout as an idle timeout
     * (no s2n output for that long). See proto/PROTOCOL.md 11. */
    tw_handler_cancel_fn stop;
} tw_handler_t;

typedef struct {
    tw_handler_t *v;
    size_t n, cap;
    void **libs; /* dlopen handles of loaded plugins, closed on free */
    size_t nlibs;
} tw_handlers_t;

/* Make an empty registry. */
void tw_handlers_init(tw_handlers_t *reg);

/* Free every definition and dlclose every adopted plugin. No call may be
 * running. The registry may be reused after tw_handlers_init. */
void tw_handlers_free(tw_handlers_t *reg);

/* Register a handler; `def` and its name are copied. Returns 0, TW_EEXIST
 * if the name is taken, or TW_EINVAL for an empty or longer than 128 byte
 * name, a missing run function, unknown flags or a full registry (1024
 * handlers, what HELLO can carry). */
int tw_handlers_add(tw_handlers_t *reg, const tw_handler_def_t *def);

/* The handler called `name` (`len` bytes, no NUL needed), or NULL. */
const tw_handler_t *tw_handlers_find(const tw_handlers_t *reg,
                                     const char *name, size_t len);

/* Drop the handlers registered after the first `n` (a plugin that failed
 * to load takes its registrations back). */
void tw_handlers_truncate(tw_handlers_t *reg, size_t n);

/* Keep `dl` (a dlopen handle) until tw_handlers_free. */
void tw_handlers_adopt_lib(tw_handlers_t *reg, void *dl);

/* Register every built-in handler, as a worker offers them (the five
 * families below, in this order); exec and stream cap a program's output
 * at `stdout_max` bytes. docs/HANDLERS.md documents each one. Returns 0
 * or tw_handlers_add's error. */
int tw_handlers_add_all(tw_handlers_t *reg, size_t stdout_max);

/* Register the built-ins "noop", "echo", "sleep" and "fail"
 * (worker/handlers/builtin.c). Returns 0 or tw_handlers_add's error. */
int tw_handlers_add_builtin(tw_handlers_t *reg);

/* Register "ask" (worker/handlers/ask.c): a task that opens its channel,
 * sends each element of its array argument as a message (or of "msgs"
 * in a map {msgs, req, timeout, delay}), makes one request and returns
 * the reply, or the error's name ("ETIMEDOUT", "ECLOSEREQ"). */
int tw_handlers_add_chan_builtins(tw_handlers_t *reg);

/* Register the station built-ins (worker/handlers/builtin.c): "incr"
 * (a number n -> n + 1), "mirror" (returns its input; as a station every
 * n2s message comes back as s2n, in order) and "ticker" (returns its
 * input; as a station each iteration emits s2n {"it": <iteration>}). */
int tw_handlers_add_station_builtins(tw_handlers_t *reg);

/* Register "stream" (worker/handlers/stream.c): a program whose stdout
 * lines are s2n messages and whose stdin receives n2s messages, one child
 * per station iteration (exit 0 returns the iteration's arguments, so the
 * next one runs the program again); as a plain task it runs the program
 * once and returns its stdout lines, failing past `stdout_max` bytes. The
 * process must ignore SIGPIPE. */
int tw_handlers_add_stream(tw_handlers_t *reg, size_t stdout_max);

/* Register "exec" (worker/handlers/exec.c): a program per call; output
 * beyond `stdout_max` bytes fails the task. With "chan": true in its
 * argument map the program gets its task channel on fd 3
 * (worker/exec_chan.h). The process must ignore
 * SIGPIPE, since a child may close its stdin before reading it all. */
int tw_handlers_add_exec(tw_handlers_t *reg, size_t stdout_max);

/* The outcome of a call, delivered once per tw_call_start on the loop
 * thread. `st` is TW_ST_OK (`r`/`rlen` the msgpack result, r NULL for nil)
 * or TW_ST_ERROR (`err` a NUL-terminated UTF-8 message). Everything is
 * borrowed for the duration of the callback; the call may be started again
 * from the moment the callback is entered. */
typedef void (*tw_call_done_cb)(tw_call_t *call, int st, const void *r,
                                size_t rlen, const char *err);

struct tw_call {
    uv_loop_t *loop;
    void *owner; /* the caller's, e.g. the slot */
    tw_call_done_cb done;
    const tw_handler_t *h;
    uint64_t id;
    uint64_t attempt;    /* the task's attempt (1 = first run), 0 unknown */
    uint64_t timeout_ms; /* the task's or iteration's timeout, 0 = none */
    tw_station_t *station; /* set by the taskloop for its iterations */
    struct tw_chans *chans; /* task channels (chan.h), or NULL */
    struct tw_chan *chan;   /* this task's open channel, or NULL */
    char *args; /* a copy of the task's arguments; grows, never shrinks */
    size_t alen, acap;
    void *data; /* the handler's, reset at each start */
    atomic_int finished;
    atomic_int cancelled;
    int running; /* between tw_call_start and the done callback */
    /* Blocking calls park their outcome here until after_work. */
    uv_work_t work;
    int st;
    int has_r;
    char *rbuf;
    size_t rlen, rcap;
    char *err; /* a message buffer, grows, never shrinks */
    size_t ecap;
};

/* Prepare a reusable call whose outcomes go to `done`. */
void tw_call_init(tw_call_t *call, uv_loop_t *loop, tw_call_done_cb done,
                  void *owner);

/* Free the call's buffers. It must not be running. */
void tw_call_free(tw_call_t *call);

/* Run task `id` with handler `h` on `args` (copied). An async handler runs
 * before this returns, a blocking one is queued on the thread pool.
 * Returns 0, after which `done` fires exactly once; or TW_ENOMEM (the
 * arguments could not be copied) or a libuv error, and `done` never
 * fires. */
int tw_call_start(tw_call_t *call, const tw_handler_t *h, uint64_t id,
                  const void *args, size_t alen);

/* Ask a running call to stop: mark it cancelled, call the handler's cancel
 * function on this (the loop) thread, and drop a blocking call that the
 * pool has not started yet. The call still ends through `done`, maybe
 * before this returns. Calling it again, or on a call that is not running,
 * does nothing. */
void tw_call_cancel(tw_call_t *call);

#endif /* TW_HANDLERS_H */
