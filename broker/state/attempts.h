/*  broker/state/attempts.h - the finished runs of a task, for its record.
 *
 *  A task record (PROTOCOL.md 16.1) lists every run of the task: where
 *  and when it ran, how it ended, and the error and traceback a failed
 *  run reported. The run in progress, and the last one, are described
 *  by the task itself; this is the history behind them, kept only when
 *  there is something to tell (a task that ran once and succeeded, the
 *  common case, allocates nothing here). At most TW_ATTEMPTS_MAX runs are
 *  kept: the oldest leaves first.
 *
 *  A worker's error text (DONE `err`, at most 65536 octets) is split at
 *  its first newline: the first line is the run's error, the rest its
 *  traceback (what a proc child sends as `tb`, PROTOCOL.md 15.3, arrives
 *  that way). Texts are copied. No I/O, no clock: callers pass wall-clock
 *  times. Broker loop thread only.
 */
#ifndef TW_BROKER_ATTEMPTS_H
#define TW_BROKER_ATTEMPTS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define TW_ATTEMPTS_MAX 16

typedef struct {
    uint64_t worker;     /* wid it was dispatched to */
    uint64_t started_ms; /* ms since the Unix epoch */
    uint64_t ended_ms;
    uint32_t n;          /* its `at`: 1 for the first run */
    uint8_t state;       /* TW_ST_OK, ERROR, TIMEOUT, CANCELLED or LOST */
    char *error;         /* the first line of its error text, or NULL */
    char *traceback;     /* the rest of it, or NULL */
} tw_attempt_t;

typedef struct {
    tw_attempt_t *runs; /* oldest first */
    uint32_t len;
} tw_attempts_t;

/* Split `err` (`elen` bytes) at its first newline: *first_len bytes of
 * error line, then *rest / *rest_len (NULL / 0 when there is no
 * newline, or nothing after it). A "\r\n" ending counts as one. */
void tw_attempts_split(const char *err, size_t elen, size_t *first_len,
                       const char **rest, size_t *rest_len);

/* Add a finished run: its number, worker, times, end state and error
 * text (may be NULL), split as above and copied. The oldest run goes when
 * TW_ATTEMPTS_MAX are kept. Aborts on OOM. */
void tw_attempts_add(tw_attempts_t *h, uint32_t n, uint64_t worker,
                     uint64_t started_ms, uint64_t ended_ms, int state,
                     const char *err, size_t elen);

/* Free every run; the history is empty afterwards. */
void tw_attempts_free(tw_attempts_t *h);

/* Encode one run as the map of PROTOCOL.md 16.1: {n, worker, started_ms,
 * ended_ms, state, error, traceback}, with nil for what is not known
 * (ended_ms 0 means still running). */
void tw_attempts_encode_run(tw_enc_t *e, uint32_t n, uint64_t worker,
                            uint64_t started_ms, uint64_t ended_ms,
                            int state, const char *error, size_t error_len,
                            const char *traceback, size_t traceback_len);

/* Encode every kept run with tw_attempts_encode_run (no array header:
 * the caller counts the runs it adds after them). */
void tw_attempts_encode(const tw_attempts_t *h, tw_enc_t *e);

/* Add to `h` the runs of a msgpack array of the maps above (what the
 * store keeps: tw_attempts_encode after an array header). Returns 0, or
 * TW_EPROTO for anything else (the runs read before it stay). */
int tw_attempts_decode(tw_attempts_t *h, const void *buf, size_t len);

#endif /* TW_BROKER_ATTEMPTS_H */
