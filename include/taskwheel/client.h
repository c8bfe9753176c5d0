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
 *
 *  Callbacks run inside tw_client_poll(), tw_client_wait_all() and the
 *  request calls (ping, result, cancel, query), which dispatch whatever
 *  arrives while they wait. A callback may submit and flush; it must not
 *  poll, wait, make a request (that returns TW_ESTATE) or destroy the
 *  client.
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

/* Queue one task; *seq_out (if not NULL) gets its sequence number. Returns
 * 0; TW_EINVAL for a bad spec (no handler, name too long, args that are
 * not exactly one msgpack value or nest deeper than 32 levels); or
 * TW_E2BIG for args that cannot fit in one message (16 MiB). The outbox
 * is sent by itself once it holds 1000 tasks (or 4 MiB). */
int tw_client_submit(tw_client_t *c, const tw_task_spec_t *spec,
                     uint64_t *seq_out);

/* Send every queued task now. Returns 0 or TW_EAGAIN if the socket is
 * full (the rest stays queued; poll and flush again). */
int tw_client_flush(tw_client_t *c);

/* Flush, then receive and dispatch messages: wait up to timeout_ms for at
 * least one (0 = only take what is already there, -1 = no limit), then
 * take whatever else has already arrived, and return. Returns the number
 * of messages handled (0 on timeout or when a signal interrupted the
 * wait), or a negative error. Malformed or unexpected messages are
 * dropped and not counted. */
int tw_client_poll(tw_client_t *c, int timeout_ms);

/* Poll until every submitted task has an outcome, or timeout_ms passes
 * with no message from the broker (idle timeout). Returns 0, or
 * TW_ETIMEDOUT. */
int tw_client_wait_all(tw_client_t *c, int timeout_ms);

/* Tasks submitted whose outcome has not arrived yet, including tasks
 * still queued in the outbox. A task rejected in its ACK counts as having
 * its outcome. */
size_t tw_client_outstanding(const tw_client_t *c);

/* Ask the broker for the state and outcome of task `id`. On 0, *out is a
 * copy the caller frees with tw_result_free. Returns TW_EUNREACH on
 * timeout, or the broker's error code. A task the broker never had comes
 * back with state unknown. */
int tw_client_result(tw_client_t *c, uint64_t id, int timeout_ms,
                     tw_result_t **out);
void tw_result_free(tw_result_t **r);

/* Cancel tasks by id (1 to 65536 of them). Returns 0 once the broker
 * answered, TW_EUNREACH on timeout, or the broker's error code. */
int tw_client_cancel(tw_client_t *c, const uint64_t *ids, size_t n,
                     int timeout_ms);

/* Send QUERY `what` ("status" or "workers") and return the reply's
 * msgpack-encoded "data" value in *data (malloc'ed, caller frees with
 * free()). Returns 0, TW_EUNREACH, or the broker's error code (TW_EINVAL
 * for a query it does not know). */
int tw_client_query(tw_client_t *c, const char *what, int timeout_ms,
                    void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Stations                                                           */

/* A station is a perpetual loop of one handler that the broker places on
 * one slot of one worker (see docs and proto/PROTOCOL.md). Every station
 * operation is one STATION request answered by a REPLY whose "data" is
 * returned as msgpack, or by an ERROR whose code is returned and whose
 * message tw_client_last_error() keeps.
 *
 *   op           fields used            data of the REPLY
 *   "add"        sid, handler, args,    {"station", "state": "assigned",
 *                next, interval_ms,      "worker", "slot"} or {"station",
 *                timeout_ms, code,       "state": "pending" |
 *                tags, placement,        "waiting-for-host", "reason"}
 *                restart
 *   "remove"     sid                    {"station", "state"}
 *   "pause", "continue", "stop", "cancel"
 *                sid                    {"station", "state"}
 *   "send"       sid, payload           {"station", "seq", "queued"}
 *   "list"       -                      [summary, ...]
 *   "show"       sid                    detail map
 *   "rebalance"  -                      {"moved"}
 *
 * Summary and detail maps have the keys station, handler, state, wanted,
 * worker, slot, epoch, iterations, last_error, checkpoint (the msgpack
 * value itself), placement, restart, restarts, n2s_queued, n2s_dropped,
 * code and tags.
 *
 * Broker errors: TW_ENOENT (unknown station), TW_EEXIST (add: the id is
 * taken), TW_EHANDLER (add: no worker ever offered the handler), TW_EFULL
 * (send: the station's n2s backlog is full), TW_EINVAL (a bad next,
 * placement or restart value, a missing field). */

/* One key=value tag a station asks of its worker. */
typedef struct {
    const char *key;   /* 1-128 bytes */
    const char *value; /* 0-128 bytes */
} tw_station_tag_t;

/* One station request. Zero it, then set what the operation uses:
 * NULL strings, NULL payloads, zero numbers and no tags are left out of
 * the message, and the broker applies its defaults (interval 0: each
 * iteration starts as soon as the previous one ends; timeout 0: none;
 * restart "never"). Fields an operation does not use are sent if set and
 * ignored by the broker. Everything is borrowed for the call's duration. */
typedef struct {
    const char *op;        /* required, 1-32 bytes, see the table above */
    const char *sid;       /* station id, 1-128 bytes */
    const char *handler;   /* add: the handler each iteration runs, 1-128 */
    const void *args;      /* add: first input, one msgpack value */
    size_t args_len;
    const char *next;      /* add: "same" | "result" | "handler" */
    uint64_t interval_ms;  /* add: least time between iteration starts */
    uint64_t timeout_ms;   /* add: limit of one iteration */
    const char *code;      /* add: station code ("stcode"), 0-128 bytes,
                              matched against the worker tag "code" */
    const tw_station_tag_t *tags; /* add: tags the worker should have */
    size_t ntags;          /* at most 64, keys distinct */
    const char *placement; /* add: "any" | "prefer" | "pinned" */
    const char *restart;   /* add: "never" | "on-failure" | "always" */
    const void *payload;   /* send: the n2s message, one msgpack value */
    size_t payload_len;
} tw_station_req_t;

/* Send one STATION request and wait up to timeout_ms for its answer
 * (queued tasks are flushed first, so it reaches the broker after them).
 * On 0, if `data` is not NULL, *data holds the REPLY's msgpack-encoded
 * "data" value (malloc'ed, caller frees with free()) and *len its size;
 * pass data and len NULL to ignore it. Returns 0; TW_EINVAL for a bad
 * request (no op, a string too long or empty where a name is needed,
 * args or payload that are not exactly one msgpack value, tags beyond the
 * limits or repeated, data without len); TW_E2BIG for args and payload
 * that cannot fit in one message (16 MiB); TW_EUNREACH on timeout;
 * TW_ESTATE from inside a callback; or the broker's error code. */
int tw_client_station(tw_client_t *c, const tw_station_req_t *req,
                      int timeout_ms, void **data, size_t *len);

/* The message of the last error the broker sent this client, or "". */
const char *tw_client_last_error(const tw_client_t *c);

/* tw_strerror for library users who do not include common/error.h. */
const char *tw_client_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TW_CLIENT_H */
