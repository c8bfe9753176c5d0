/*  taskwheel/errors.h - taskwheel's error codes and task states.
 *
 *  Installed with client.h and handler.h, which both speak in these
 *  numbers, and the one place they are written: the broker, the worker,
 *  the client library and the CLI all take them from here (common/error.h
 *  includes this file and adds the lookups tw_strerror and tw_err_name).
 *
 *  Every function that can fail returns int: 0 on success or a negative
 *  TW_E* code. Codes that have a POSIX errno reuse its negative value, so
 *  TW_EINVAL == -EINVAL; taskwheel's own codes live from -4000 down so
 *  they never collide. The same numbers travel on the wire in ERROR
 *  bodies and per-item acknowledgements (proto/PROTOCOL.md, "Error
 *  codes"). tw_client_strerror (client.h) turns one into a sentence.
 *
 *  A task's state is one TW_ST_* code: the "st" field on the wire, the
 *  `state` of a tw_result_t. The first five are ends, the rest are not.
 *
 *  Both lists are X-macros, XX(NAME, value, text), so a program can build
 *  its own tables from them (a switch, a name table) without copying.
 */
#ifndef TW_ERRORS_H
#define TW_ERRORS_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, sentence) for each error code. */
#define TW_ERRNO_MAP(XX)                                                     \
    XX(ENOMEM, -ENOMEM, "out of memory")                                     \
    XX(EINVAL, -EINVAL, "invalid argument")                                  \
    XX(ENOENT, -ENOENT, "not found")                                         \
    XX(EEXIST, -EEXIST, "already exists")                                    \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                  \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                   \
    XX(ECANCELED, -ECANCELED, "cancelled")                                   \
    XX(EPERM, -EPERM, "operation not permitted")                             \
    XX(E2BIG, -E2BIG, "too big")                                             \
    XX(EIO, -EIO, "input/output error")                                      \
    XX(EALREADY, -EALREADY, "already done")                                  \
    XX(ESHUTDOWN, -ESHUTDOWN, "already ended")                               \
    XX(ENOTCONN, -ENOTCONN, "not open")                                      \
    XX(ENOBUFS, -ENOBUFS, "too much data waiting to be sent")                \
    XX(EPROTO, -4001, "malformed message")                                   \
    XX(EVERSION, -4002, "unsupported protocol version")                      \
    XX(ECOMMAND, -4003, "unknown command")                                   \
    XX(EHANDLER, -4004, "unknown handler")                                   \
    XX(EFULL, -4005, "queue full")                                           \
    XX(EUNREACH, -4006, "broker unreachable")                                \
    XX(EFAILED, -4007, "task failed")                                        \
    XX(ESTATE, -4008, "wrong state for this operation")                      \
    XX(EWORKER, -4009, "unknown worker: send HELLO first")                   \
    XX(ELOST, -4010, "task lost: retries exhausted after worker failures")   \
    XX(ELIMIT, -4011, "group limit reached")                                 \
    XX(ELOCKED, -4012, "pool is locked")                                     \
    XX(ECLOSED, -4013, "pool is closed")                                     \
    XX(EENDED, -4014, "task already ended")                                  \
    XX(ECLOSEREQ, -4017, "the submitter asked to close the channel")        \
    XX(ENOTACTIVE, -4020, "not the active broker of its pair")

typedef enum {
#define TW__ERR_ENUM(name, val, msg) TW_##name = (val),
    TW_ERRNO_MAP(TW__ERR_ENUM)
#undef TW__ERR_ENUM
    TW_OK = 0
} tw_err_t;

/* XX(NAME, code, name on the wire and in output) for each task state. */
#define TW_STATE_MAP(XX)                                                     \
    XX(OK, 0, "ok")               /* ended, "r" holds the result */          \
    XX(ERROR, 1, "error")         /* ended, the handler failed */            \
    XX(TIMEOUT, 2, "timeout")     /* ended, its timeout expired */           \
    XX(CANCELLED, 3, "cancelled") /* ended, cancelled */                     \
    XX(LOST, 4, "lost")           /* ended, worker failures used it up */    \
    XX(PENDING, 5, "pending")     /* queued, not yet dispatched */           \
    XX(RUNNING, 6, "running")     /* dispatched to a worker */               \
    XX(UNKNOWN, 7, "unknown")     /* the broker has no record of it */   \
    XX(BLOCKED, 8, "blocked")     /* waiting for the tasks it names */

typedef enum {
#define TW__ST_ENUM(name, code, text) TW_ST_##name = (code),
    TW_STATE_MAP(TW__ST_ENUM)
#undef TW__ST_ENUM
} tw_state_t;

#ifdef __cplusplus
}
#endif

#endif /* TW_ERRORS_H */
