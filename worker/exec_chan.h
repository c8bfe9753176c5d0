/*  worker/exec_chan.h - a task channel spoken by a program in frames.
 *
 *  A program the worker runs can talk to its task's submitter through
 *  the task channel (worker/chan.h, S90-S93) in the frames of
 *  worker/frame.h. Two kinds of program do: an exec task whose arguments
 *  are a map with "chan": true gets fd 3 open both ways (a socket pair)
 *  for it, and a proc child sends the same frames on its stdout among its
 *  others (worker/proc.h, proto/PROTOCOL.md 15).
 *
 *      program -> worker   {"ev": "open" | "msg" | "req" | "close",
 *                           "d": value, "timeout": ms, "id": any}
 *      worker -> program   {"ev": "resp", "d": value, "id": any}
 *                          {"ev": "error", "err": "ETIMEDOUT" |
 *                           "ECLOSEREQ" | ..., "id": any}
 *
 *  "d" is the message, request or first message of open (nil if absent);
 *  "timeout" a request's timeout (default 30 s); "id", if given, is copied
 *  into the answer so a program may have several requests out at once.
 *  Every request gets exactly one answer, in the order answers come (not
 *  necessarily the order of the requests). open, msg and close get an
 *  answer only when they fail ({"ev": "error", "err": ...}).
 *
 *  On fd 3, a frame over 16 MiB or one that is not a map with "ev" ends
 *  the relay: fd 3 is closed and the task goes on without its channel.
 *  When the program exits, its channel closes with the task. Loop thread
 *  only.
 */
#ifndef TW_WORKER_EXEC_CHAN_H
#define TW_WORKER_EXEC_CHAN_H

#include <stddef.h>

#include "worker/child.h"
#include "worker/frame.h"

typedef struct tw_exec_chan tw_exec_chan_t;

/* 1 if exec arguments `args` (one msgpack value, `len` bytes) ask for a
 * channel: a map whose "chan" is true. */
int tw_exec_chan_wanted(const void *args, size_t len);

/* Act on frame `f` if it is a channel item (open, msg, req, close) of
 * `call` (NULL: the run is over, the item is dropped), writing any
 * answer as a frame to `out`, the program's end of the pipe. `out` must
 * stay valid until `call` ends: requests are answered by then. Returns 1
 * if `f` was a channel item, 0 if its "ev" is another. */
int tw_exec_chan_item(tw_call_t *call, const tw_frame_t *f,
                      uv_stream_t *out);

/* Write {"ev": "error", "err": tw_err_name(code)} to `out`, with "id"
 * (one msgpack value, `idlen` bytes) if `id` is not NULL: how any
 * program frame that failed is answered. */
void tw_exec_chan_error(uv_stream_t *out, int code, const void *id,
                        size_t idlen);

/* Relay fd 3 of child `c` (started by tw_child_start_chan with a channel)
 * to its call's task channel. Never NULL. Free it with tw_exec_chan_free
 * once the child's handles have all closed. */
tw_exec_chan_t *tw_exec_chan_start(tw_child_t *c);
void tw_exec_chan_free(tw_exec_chan_t *x);

#endif /* TW_WORKER_EXEC_CHAN_H */
