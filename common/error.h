/*  common/error.h - taskwheel's error codes.
 *
 *  Every function that can fail returns int: 0 on success or a negative
 *  TW_E* code. The codes are listed once, in TW_ERRNO_MAP, which generates
 *  the enum, tw_strerror() and tw_err_name(). Codes that have a POSIX errno
 *  reuse its negative value; taskwheel's own codes live from -4000 down so
 *  they never collide. The same numbers travel on the wire in ERROR bodies
 *  and per-item acknowledgements (proto/PROTOCOL.md, "Error codes").
 */
#ifndef TW_ERROR_H
#define TW_ERROR_H

#include <errno.h>

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

/* A sentence describing `err` ("queue full"). Never NULL; borrowed, static. */
const char *tw_strerror(int err);

/* The symbolic name of `err` ("EFULL"). Never NULL; borrowed, static. */
const char *tw_err_name(int err);

#endif /* TW_ERROR_H */
