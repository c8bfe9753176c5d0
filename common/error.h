/*  common/error.h - taskwheel's error codes.
 *
 *  Every function that can fail returns int: 0 on success or a negative
 *  TW_E* code. The codes, and the task states, are listed once, in the
 *  installed header taskwheel/errors.h (TW_ERRNO_MAP, TW_STATE_MAP), which
 *  generates the enums there and tw_strerror() and tw_err_name() here.
 *  Codes that have a POSIX errno reuse its negative value; taskwheel's own
 *  codes live from -4000 down so they never collide. The same numbers
 *  travel on the wire in ERROR bodies and per-item acknowledgements
 *  (proto/PROTOCOL.md, "Error codes").
 */
#ifndef TW_ERROR_H
#define TW_ERROR_H

#include "taskwheel/errors.h"

/* A sentence describing `err` ("queue full"). Never NULL; borrowed, static. */
const char *tw_strerror(int err);

/* The symbolic name of `err` ("EFULL"). Never NULL; borrowed, static. */
const char *tw_err_name(int err);

#endif /* TW_ERROR_H */
