/*  taskwheel/client.h - libtaskwheel, the client library.
 *
 *  A tw_client_t is one connection (a ZeroMQ DEALER) to a broker's frontend.
 *  It is not thread-safe: use one per thread. Nothing here starts a thread
 *  or an event loop; the caller drives I/O through tw_client_poll() and the
 *  waiting calls, which invoke the callbacks.
 *
 *  Submitting is pipelined: tw_client_submit() only queues the task in an
 *  outbox and returns its client sequence number; queued tasks go out in
 *  batches (one SUBMIT message for many tasks) when the outbox fills, on
 *  tw_client_flush(), or when the client waits. The broker acknowledges each
 *  task once it has recorded it (the ack callback receives the task id) and
 *  later pushes its outcome (the result callback). Payloads are
 *  msgpack-encoded values.
 *
 *  Errors are negative TW_E* codes (see tw_strerror in common/error.h, also
 *  exported as tw_client_strerror). TW_EUNREACH means no answer came from
 *  the broker in time.
 */
#ifndef TW_CLIENT_H
#define TW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tw_client tw_client_t;

/* What to run. */
typedef struct {
    const char *handler; /* required, 1-128 bytes */
    const void *args;    /* msgpack-encoded value; NULL means nil */
    size_t args_len;
    uint32_t timeout_ms; /* 0 = no limit */
    int32_t priority;    /* higher runs first; default 0 */
    uint32_t retries;    /* re-runs after the handler fails or times out;
                            default 0 (a lost worker always requeues) */
} tw_task_spec_t;

/* An outcome, borrowed by the callback for its duration. */
typedef struct {
    uint64_t id;        /* broker task id */
    uint64_t seq;       /* client sequence number, 0 if not ours */
    int state;          /* TW_ST_* from proto: 0 ok, 1 error, 2 timeout... */
    const void *result; /* msgpack-encoded result when state is ok */
    size_t result_len;
    const char *error;  /* NUL-terminated message for failed states */
    uint64_t worker;    /* id of the worker that ran it, 0 if none */
    uint32_t attempt;   /* 1 for the first run */
} tw_result_t;

typedef void (*tw_ack_cb)(void *arg, uint64_t seq, uint64_t id, int err,
                          const char *msg);
typedef void (*tw_result_cb)(void *arg, const tw_result_t *r);

/* Connect to `endpoint` ("tcp://127.0.0.1:7710"); the connection is made
 * in the background. NULL on out-of-memory or a bad endpoint. */
tw_client_t *tw_client_new(const char *endpoint);

/* Close the connection and free everything. Sets *self_p to NULL. */
void tw_client_destroy(tw_client_t **self_p);

/* Callbacks for acknowledgements and outcomes. Either may be NULL. */
void tw_client_on_ack(tw_client_t *c, tw_ack_cb cb, void *arg);
void tw_client_on_result(tw_client_t *c, tw_result_cb cb, void *arg);

/* Round trip to the broker. Returns 0 or TW_EUNREACH after timeout_ms. */
int tw_client_ping(tw_client_t *c, int timeout_ms);

/* Queue one task; *seq_out gets its sequence number. Returns 0, or
 * TW_EINVAL for a bad spec (no handler, name too long). */
int tw_client_submit(tw_client_t *c, const tw_task_spec_t *spec,
                     uint64_t *seq_out);

/* Send every queued task now. Returns 0 or TW_EAGAIN if the socket is
 * full (the rest stays queued; poll and flush again). */
int tw_client_flush(tw_client_t *c);

/* Flush, then receive and dispatch messages for up to timeout_ms (0 = only
 * what is already there, -1 = wait for at least one message). Returns the
 * number of messages handled, or a negative error. */
int tw_client_poll(tw_client_t *c, int timeout_ms);

/* Poll until every submitted task has an outcome, or timeout_ms passes
 * with no message from the broker (idle timeout). Returns 0, or
 * TW_ETIMEDOUT. */
int tw_client_wait_all(tw_client_t *c, int timeout_ms);

/* Tasks submitted whose outcome has not arrived yet. */
size_t tw_client_outstanding(const tw_client_t *c);

/* Ask the broker for the state and outcome of task `id`. On 0, *out is a
 * copy the caller frees with tw_result_free. Returns TW_EUNREACH on
 * timeout. A task the broker never had comes back with state unknown. */
int tw_client_result(tw_client_t *c, uint64_t id, int timeout_ms,
                     tw_result_t **out);
void tw_result_free(tw_result_t **r);

/* Cancel tasks by id. Returns 0 once the broker answered. */
int tw_client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                     int timeout_ms);

/* Send QUERY `what` ("status", "workers", "task") and return the reply's
 * msgpack-encoded "data" value in *data (malloc'ed, caller frees).
 * Returns 0, TW_EUNREACH, or the broker's error code. */
int tw_client_query(tw_client_t *c, const char *what, int timeout_ms,
                    void **data, size_t *len);

/* The message of the last error the broker sent this client, or "". */
const char *tw_client_last_error(const tw_client_t *c);

/* tw_strerror for library users who do not include common/error.h. */
const char *tw_client_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TW_CLIENT_H */
