/*  worker/proc.h - proc handlers: handlers that run in long-lived child
 *  processes, in any language.
 *
 *  `taskwheel-worker --proc CMD` starts CMD a number of times (a pool)
 *  and talks to each child in the frames of proto/PROTOCOL.md 15 on its
 *  stdin and stdout: the child says which handlers it offers (hello),
 *  the worker registers those names like any other handler, and each
 *  task or station iteration of them becomes a call frame to an idle
 *  child, whose result or error frame finishes it. Channel items (S90-
 *  S93) go through the task's channel (worker/exec_chan.h), station
 *  frames through the station ABI (next, stop, emit, n2s).
 *
 *  Everything the protocol decides about children (hello deadlines,
 *  dispatch, cancel grace, SIGTERM and SIGKILL, restarts and backoff) is
 *  the engine in worker/procpool.h; this module is its edge: child
 *  processes (worker/child.h), the frame reader and writer (frame.h),
 *  one timer for the engine's deadlines, and stderr lines logged with
 *  the task (or station) of the call the child runs.
 *
 *  Slots and children: a proc task holds one slot, as every task does,
 *  and one child of a pool offering its handler. `--slots` bounds the
 *  tasks of all handlers; a pool's children bound its calls. A call
 *  finding no idle child waits for one in its slot (its timeout runs),
 *  or, when the child's hello allows a pipeline (PROTOCOL.md 15.9), goes
 *  ahead to a busy child, which runs it next. A station's n2s messages
 *  handed to a child are taken back unless its outcome acknowledges them
 *  (15.10).
 *
 *  Life: tw_procs_start runs the loop until every pool has said hello
 *  (so the names are known before the worker's HELLO), tw_procs_register
 *  adds the handlers, tw_procs_close winds the children down once the
 *  worker has stopped. Loop thread only.
 */
#ifndef TW_WORKER_PROC_H
#define TW_WORKER_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "worker/handlers.h"
#include "worker/procpool.h"

/* Children per pool when --proc-count is not given: the slot count, but
 * at most twice the CPUs and never above this. */
#define TW_PROC_COUNT_CAP 64

typedef struct {
    const char *const *cmds; /* one command line per pool */
    size_t npools;
    unsigned count;    /* children per pool, >= 1 */
    uint64_t hello_ms; /* a child's time to say hello */
    uint64_t grace_ms; /* cancel -> SIGTERM -> SIGKILL */
} tw_procs_opts_t;

typedef struct tw_procs tw_procs_t;

/* The default children per pool for `slots` slots (see above). */
unsigned tw_procs_default_count(unsigned slots);

/* Split command line `cmd` into words, as a shell would without its
 * expansions: blanks separate words, '...' keeps everything literally,
 * "..." keeps all but \" and \\, a backslash outside quotes escapes the
 * next character. Returns 0 and a NULL-terminated array in *argv (one
 * block: free it with tw_free), or TW_EINVAL with the reason in `err`
 * (no words, an unterminated quote, a trailing backslash). */
int tw_procs_split(const char *cmd, char ***argv, char *err, size_t errlen);

/* Start the pools on `loop` and run the loop until every pool has said
 * hello. Returns 0 and sets *out, or TW_EINVAL (a bad command line) or
 * TW_EFAILED (a pool could not start: its first three children in a row
 * failed) with the reason in `err`; then nothing is left running. */
int tw_procs_start(tw_procs_t **out, uv_loop_t *loop, const tw_procs_opts_t *o,
                   char *err, size_t errlen);

/* Register every handler name the pools offer in `reg` (which must
 * outlive the children). Returns 0, or TW_EEXIST / TW_EINVAL with the
 * reason in `err` (a name taken by a built-in or a plugin). */
int tw_procs_register(tw_procs_t *ps, tw_handlers_t *reg, char *err,
                      size_t errlen);

/* Wind down: idle children get shutdown, then SIGTERM and SIGKILL after
 * the grace; `cb` fires once every child is gone and every handle has
 * closed. No call may start any more. */
void tw_procs_close(tw_procs_t *ps, void (*cb)(void *ud), void *ud);

/* Free what tw_procs_close left. Sets *ps_p to NULL. */
void tw_procs_free(tw_procs_t **ps_p);

/* SIGKILL every child now: the process is about to exit without waiting
 * (a worker whose tasks would not stop). */
void tw_procs_kill(tw_procs_t *ps);

/* Handler names the pools offer. */
size_t tw_procs_nhandlers(const tw_procs_t *ps);

/* The engine's counters. */
void tw_procs_stats(const tw_procs_t *ps, tw_procpool_stats_t *out);

#endif /* TW_WORKER_PROC_H */
