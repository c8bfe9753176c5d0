/*  worker/security.h - what a worker trusts: the broker's key and the
 *  programs it runs.
 *
 *  A worker runs whatever its broker sends, with its own privileges
 *  (docs/SECURITY.md). Two settings narrow that down:
 *
 *    --curve-secret FILE --broker-key FILE
 *        connect with CURVE: the worker proves who it is with its secret
 *        key and accepts only the broker holding the secret of the given
 *        public key (tw_worker_opts_t.curve; see common/keys.h);
 *    --exec-allow PATH-PREFIX (repeatable)
 *        the `exec` and `stream` handlers run a program only when its real
 *        path (PATH searched as execvp does, then every symbolic link and
 *        ".." resolved) lies under one of the prefixes; anything else
 *        fails the task with a message naming the program and the
 *        prefixes. With no prefix every program may run.
 *
 *  The prefixes are process-wide, set once at start-up before the loop
 *  (and any --procs children) start; the check itself only reads them and
 *  the file system.
 */
#ifndef TW_WORKER_SECURITY_H
#define TW_WORKER_SECURITY_H

#include <stddef.h>

#include "common/keys.h"

/* Read the worker's CURVE keys. Both paths NULL: CURVE off, returns 0
 * with *on = 0. One without the other is TW_EINVAL. Otherwise returns 0
 * with *on = 1 and `out` filled, or an error with the reason in `err`. */
int tw_worker_curve_load(const char *secret_path, const char *broker_path,
                         tw_curve_client_t *out, int *on, char *err,
                         size_t errlen);

/* Log at start-up what the worker trusts: CURVE on (its key's and the
 * broker's fingerprints) or off, and the --exec-allow prefixes. */
void tw_worker_security_log(const tw_curve_client_t *curve);

/* Trust the programs under `prefixes` (n of them; each must exist and is
 * resolved to its real path now). Replaces earlier prefixes; n = 0 trusts
 * everything again. Returns 0, or TW_EINVAL / TW_ENOENT with the reason in
 * `err` (then nothing changed). */
int tw_exec_allow_set(const char *const *prefixes, size_t n, char *err,
                      size_t errlen);

/* Number of prefixes in force (0: every program may run). */
size_t tw_exec_allow_count(void);

/* 0 if `program` (argv[0] of a task) may run; TW_EPERM (outside every
 * prefix) or TW_ENOENT (not found) with a one-line reason in `err`. */
int tw_exec_allow_check(const char *program, char *err, size_t errlen);

#endif /* TW_WORKER_SECURITY_H */
