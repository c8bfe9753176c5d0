/*  worker/n2sq.h - n2s messages waiting for a station's program.
 *
 *  Handlers that run a station in another process (stream: a program per
 *  iteration; proc: a child per iteration) can hand an n2s message over
 *  only while a process runs the station's iteration. Messages that come
 *  in between, while paused or while the iteration waits for a child,
 *  wait here, in order, up to TW_N2SQ_MAX messages and TW_N2SQ_MAX_BYTES;
 *  beyond that they are dropped and counted. The queue is the station's
 *  tw_station_data, made on first use and freed by the handler's `end`
 *  through tw_n2sq_end, which logs the drops. Loop thread only.
 */
#ifndef TW_WORKER_N2SQ_H
#define TW_WORKER_N2SQ_H

#include <stddef.h>
#include <stdint.h>

#include "taskwheel/handler.h"

#define TW_N2SQ_MAX 1000
#define TW_N2SQ_MAX_BYTES (1u << 20)

/* One waiting message: `len` bytes of data, its n2s `seq`. */
typedef struct tw_n2sq_msg {
    struct tw_n2sq_msg *next;
    uint64_t seq;
    size_t len;
    char data[];
} tw_n2sq_msg_t;

typedef struct {
    void *run; /* the handler's: what runs the iteration now, or NULL */
    tw_n2sq_msg_t *head, *tail;
    size_t n, bytes;
    uint64_t dropped; /* messages the handler could not deliver */
} tw_n2sq_t;

/* The queue of station `st` (its tw_station_data), made if need be. */
tw_n2sq_t *tw_n2sq_of(tw_station_t *st);

/* Queue a copy of `n` bytes at `p`, followed by `suffix` (`slen` bytes,
 * may be 0). Returns 0, or TW_EFULL when the queue is full (the message
 * is dropped and counted). */
int tw_n2sq_push(tw_n2sq_t *q, uint64_t seq, const void *p, size_t n,
                 const char *suffix, size_t slen);

/* Take the oldest message (free it with tw_free), or NULL. */
tw_n2sq_msg_t *tw_n2sq_pop(tw_n2sq_t *q);

/* Link message `m` (one tw_n2sq_pop gave, or allocated the same way)
 * at the end of `q` whatever its limits: `q` is then a list its owner
 * keeps, such as the messages handed to a program and not yet known to
 * be taken. */
void tw_n2sq_put(tw_n2sq_t *q, tw_n2sq_msg_t *m);

/* Move the messages of list `from` whose seq is above `after` to the
 * front of `q`, in their order, and free the others: a program took
 * those up to `after`, and the rest wait for its next run. */
void tw_n2sq_requeue(tw_n2sq_t *q, tw_n2sq_t *from, uint64_t after);

/* Free every message of `q` (its counters stay). */
void tw_n2sq_clear(tw_n2sq_t *q);

/* The `end` of such a handler: log the drops under `logid`, free the
 * queue and clear the station's data. Nothing if it has none. */
void tw_n2sq_end(tw_station_t *st, const char *logid);

#endif /* TW_WORKER_N2SQ_H */
