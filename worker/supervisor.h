/*  worker/supervisor.h - run N worker processes and keep them running.
 *
 *  `taskwheel-worker --procs P` gets its parallelism from processes, not
 *  threads (docs: one ZeroMQ socket, one loop, one thread). The supervisor
 *  forks P children, each in its own process group so a terminal's Ctrl-C
 *  reaches only the supervisor, and each set to receive SIGTERM if the
 *  supervisor dies. It restarts a child that crashes (killed by a signal,
 *  or a non-zero exit) after a backoff of 100 ms doubling to 5 s, reset
 *  once a child has lived 10 s. SIGTERM or SIGINT is forwarded to every
 *  child as SIGTERM, so a second signal makes the children exit at once.
 *  A child that exits 0 on its own is not restarted; one that exits 2
 *  (configuration error) stops them all, since a restart would fail alike.
 *  Runs in the parent before any loop, thread or ZeroMQ context exists.
 */
#ifndef TW_SUPERVISOR_H
#define TW_SUPERVISOR_H

/* The body of child `idx` (0..n-1); its return value is its exit status. */
typedef int (*tw_supervise_fn)(unsigned idx, void *arg);

/* Run `n` children of `fn` until they have all exited after a stop signal
 * (or on their own). Returns the supervisor's exit status: 0 if every
 * child ended with 0, 2 after a configuration error, else 1. */
int tw_supervise(unsigned n, tw_supervise_fn fn, void *arg);

#endif /* TW_SUPERVISOR_H */
