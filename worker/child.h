/*  worker/child.h - a program run as a child process on behalf of a call.
 *
 *  The exec and stream handlers both run a program named in the task's
 *  arguments. A tw_child_t is that program: started with uv_spawn in its
 *  own process group, so that a kill reaches everything it started, with
 *  stdout and stderr on pipes and stdin on a pipe or closed. The owner
 *  reads stdout through its callbacks; the child keeps the last
 *  TW_CHILD_ERR_TAIL bytes of stderr itself and turns an unsuccessful end
 *  into the call's error message.
 *
 *  The owner embeds the tw_child_t in its per-call state and frees that
 *  state in the `closed` callback, which fires once, after every handle
 *  has closed, whether the spawn succeeded or not. A child need not run
 *  for one call: the proc handler (worker/proc.h) starts long-lived
 *  children with tw_child_spawn, which knows no call, reads their stderr
 *  as it comes (`err_read`), signals them itself and, once one has
 *  exited, closes its pipes with tw_child_release. Loop thread only.
 *
 *      parse_args --> start --> reading stdout/stderr -------.
 *                       |          | exit, then EOF on        | kill:
 *                       |          | stdout and stderr        | cancel,
 *                       |          v                          | cap, OOM
 *                       |        reap hands the call back <--'
 *                       |          |  (fail, or the owner finishes it)
 *                       `------> handles close --> `closed`
 */
#ifndef TW_CHILD_H
#define TW_CHILD_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "worker/handlers.h"

#define TW_CHILD_ERR_TAIL 1024 /* how much of stderr an error quotes */

/* Why the child was killed; tw_child_t.killed collects them. */
enum {
    TW_CHILD_CANCELLED = 1, /* the call was cancelled */
    TW_CHILD_OVERFLOW = 2,  /* its output went past the owner's cap */
    TW_CHILD_OOM = 4,       /* its output could not be stored */
    TW_CHILD_STOPPED = 8    /* asked to end (tw_child_terminate) */
};

typedef struct tw_child tw_child_t;

/* The owner's callbacks, all on the loop thread. */
typedef struct {
    /* Offer a buffer for the next stdout read; a zero-length buffer makes
     * the next out_read get UV_ENOBUFS. */
    void (*out_alloc)(tw_child_t *c, uv_buf_t *buf);
    /* `n` > 0 bytes of stdout in `buf`, or n < 0 at its end (UV_EOF or an
     * error, UV_ENOBUFS included); after a negative n the child closes
     * stdout itself and calls `changed`. */
    void (*out_read)(tw_child_t *c, ssize_t n, const uv_buf_t *buf);
    /* The child exited, or stdout or stderr reached its end: see whether
     * tw_child_reap says the run is over. */
    void (*changed)(tw_child_t *c);
    /* Every handle has closed: the owner may free the memory holding the
     * child. Fires exactly once per tw_child_spawn. */
    void (*closed)(tw_child_t *c);
    /* Optional: `n` > 0 bytes of stderr in `buf`, as they come (the
     * child keeps its tail besides). */
    void (*err_read)(tw_child_t *c, const char *buf, size_t n);
} tw_child_ops_t;

/* tw_child_spawn's flags. */
#define TW_CHILD_STDIN 1 /* stdin on a pipe (c->in), else closed */
#define TW_CHILD_CHAN 2  /* a socket pair on fd 3 (c->chan) */

struct tw_child {
    void *data;      /* the owner's */
    tw_call_t *call; /* the call it runs for; NULL once reaped */
    char **argv; /* argv[0..n) then the strings, one block; the child's */
    char **env;  /* the owner's, set before the spawn; NULL: the worker's */
    uv_process_t proc;
    uv_pipe_t in, out, err; /* `in` only if has_in */
    int has_in;
    uv_shutdown_t in_end; /* tw_child_end_stdin's */
    int in_ending;
    uv_pipe_t chan; /* fd 3 of the child, both ways, only if has_chan
                       (exec's task channel, worker/handlers/exec.c) */
    int has_chan;
    void *chan_data; /* the fd 3 reader's (worker/exec_chan.h) */
    int exited; /* the exit status is known */
    int64_t status;
    int term_signal;
    int killed; /* TW_CHILD_* reasons, 0 if never killed */
    uv_timer_t term; /* tw_child_terminate's grace, only if has_term */
    int has_term;
    /* Private. */
    const tw_child_ops_t *ops;
    int nopen; /* handles not yet closed */
    char etail[TW_CHILD_ERR_TAIL]; /* ring of the last stderr bytes */
    size_t etotal;
    char escratch[4096];
};

/* Read the program from a call's arguments `args` (`len` bytes, one
 * msgpack value): [program, arg...] or {"argv": [program, arg...]}, where
 * the program is looked up on PATH. If `in` is not NULL the map may also
 * carry "stdin": a STR or BIN (*in and *inlen then point at its bytes
 * inside `args`, else *in is NULL) or nil. Fills c->argv (freed with the
 * child). Returns 0, or TW_EINVAL for anything else, including more than
 * 4096 arguments, an empty program or a string holding NUL; c->argv is
 * then NULL. `c` must be zeroed memory. */
int tw_child_parse_args(tw_child_t *c, const void *args, size_t len,
                        const void **in, size_t *inlen);

/* Run c->argv on `loop` with stdout and stderr on pipes and what `flags`
 * ask for, and start reading stdout and stderr; c->data is set to `data`
 * and `ops` must outlive the child. Returns 0, or the libuv error from
 * uv_spawn. Either way ops->closed fires once all handles have closed,
 * never before this returns. */
int tw_child_spawn(tw_child_t *c, uv_loop_t *loop, int flags,
                   const tw_child_ops_t *ops, void *data);

/* Run c->argv for `call`, on the call's loop, with stdout and stderr on
 * pipes, stdin on a pipe if `with_stdin` (write to c->in) or else closed,
 * and start reading. `ops` must outlive the child; c->data is set to
 * `data`. Returns 0 and makes the child the call's data (tw_call_data);
 * or returns the libuv error from uv_spawn after failing the call
 * ("cannot run ...").
 * Either way ops->closed fires once all handles have closed, never before
 * this returns. */
int tw_child_start(tw_child_t *c, tw_call_t *call, int with_stdin,
                   const tw_child_ops_t *ops, void *data);

/* tw_child_start with, if `with_chan`, a socket pair on the child's fd 3
 * (c->chan, readable and writable; the owner reads and writes it and may
 * close it early with tw_child_close_chan). tw_child_start is this with
 * with_chan 0. */
int tw_child_start_chan(tw_child_t *c, tw_call_t *call, int with_stdin,
                        int with_chan, const tw_child_ops_t *ops,
                        void *data);

/* Stop using fd 3 (dropping pending writes); a no-op without one or if
 * done already. tw_child_reap does it too. */
void tw_child_close_chan(tw_child_t *c);

/* Send `sig` to the child's process group (to the child alone if that
 * fails), unless it has exited already. */
void tw_child_signal(tw_child_t *c, int sig);

/* Note `why` (a TW_CHILD_* reason) and SIGKILL the child's process group,
 * unless it has exited already. Does not call `changed`. */
void tw_child_kill(tw_child_t *c, int why);

/* Ask the child to end: close its stdin, SIGTERM its process group, and
 * SIGKILL it if it has not exited after `grace_ms`. Notes
 * TW_CHILD_STOPPED (so the run ends as soon as the child has exited, and
 * tw_child_fail says "stopped"). Does nothing once it has exited, has
 * been reaped or has been asked already; a later tw_child_cancel still
 * kills it at once. Does not call `changed`. */
void tw_child_terminate(tw_child_t *c, uint64_t grace_ms);

/* The `cancel` function (tw_handler_cancel_fn) of a handler that runs its
 * calls as children: kill the call's child (once) and call `changed`,
 * which ends the run now if it had already exited. Does nothing for a
 * call without a child or once the child has been reaped. */
void tw_child_cancel(tw_call_t *call, void *udata);

/* Stop reading stdout, or stop writing stdin (dropping pending writes).
 * Either is a no-op if already done. */
void tw_child_close_stdout(tw_child_t *c);
void tw_child_close_stdin(tw_child_t *c);

/* Close stdin once the writes queued so far have gone out: the child
 * reads them, then the end of its input. A no-op without stdin or if
 * done already. */
void tw_child_end_stdin(tw_child_t *c);

/* Read, without blocking, what stdout and stderr hold now, through the
 * usual callbacks: once the child has exited, what it wrote last, which
 * its exit may have overtaken. */
void tw_child_drain(tw_child_t *c);

/* Once the child has exited, close its pipes now, without waiting for
 * EOF (a grandchild might hold them open). */
void tw_child_release(tw_child_t *c);

/* Forget the stderr tail kept so far (a long-lived child's next call). */
void tw_child_clear_err(tw_child_t *c);

/* Once the child has exited: how it ended, as text ("exit status 3: <the
 * tail of stderr>", "killed by signal 9", "exit status 0"), in `out`
 * (NUL-terminated, at most `cap` bytes). Returns 1 if it did not end
 * well (a signal or a non-zero status), else 0. */
int tw_child_end_text(const tw_child_t *c, char *out, size_t cap);

/* Once the run is over, hand the call back (c->call becomes NULL) for the
 * owner to end: the child has exited and its stdout and stderr are
 * complete, or, once it has been killed, as soon as it has exited (its
 * pipes are then closed without waiting for EOF, which a grandchild might
 * hold back). Stdin is closed then too. NULL while the run goes on, and
 * after the call has been handed back. */
tw_call_t *tw_child_reap(tw_child_t *c);

/* With the call tw_child_reap handed back: if the run did not succeed,
 * fail `call` with the reason (cancelled, out of memory, output past `max`
 * bytes, a signal, or a non-zero exit status with the tail of stderr) and
 * return 1; return 0 for a clean exit, leaving the call to the owner. */
int tw_child_fail(const tw_child_t *c, tw_call_t *call, size_t max);

#endif /* TW_CHILD_H */
