/*  worker/exec_chan.h - a task channel for exec programs, on fd 3.
 *
 *  An exec task whose arguments are a map with "chan": true runs its
 *  program with fd 3 open both ways (a socket pair); the program talks on
 *  it to the task's submitter through the task channel (worker/chan.h,
 *  S90-S93). Both directions carry frames: a 4-byte big-endian length,
 *  then that many bytes holding one msgpack map.
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
 *  answer only when they fail ({"ev": "error", "err": ...}). A frame over
 *  16 MiB or one that is not a map with "ev" ends the relay: fd 3 is
 *  closed and the task goes on without its channel. When the program
 *  exits, its channel closes with the task. Loop thread only.
 */
#ifndef TW_WORKER_EXEC_CHAN_H
#define TW_WORKER_EXEC_CHAN_H

#include <stddef.h>

#include "worker/child.h"

typedef struct tw_exec_chan tw_exec_chan_t;

/* 1 if exec arguments `args` (one msgpack value, `len` bytes) ask for a
 * channel: a map whose "chan" is true. */
int tw_exec_chan_wanted(const void *args, size_t len);

/* Relay fd 3 of child `c` (started by tw_child_start_chan with a channel)
 * to its call's task channel. Never NULL. Free it with tw_exec_chan_free
 * once the child's handles have all closed. */
tw_exec_chan_t *tw_exec_chan_start(tw_child_t *c);
void tw_exec_chan_free(tw_exec_chan_t *x);

#endif /* TW_WORKER_EXEC_CHAN_H */
