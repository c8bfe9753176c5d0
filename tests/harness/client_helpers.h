/*  tests/harness/client_helpers.h - libtaskwheel conveniences for the
 *  integration tests: wait for workers, read the broker's counters, and
 *  remember what a client was told about each of its submissions.
 *
 *  tw_h_track_results() installs ack and result callbacks on one client
 *  that record, per sequence number, the task id (or the refusal) and
 *  whether the outcome arrived; the other calls read that record. One
 *  tracked client at a time; single-threaded like the rest of the harness.
 */
#ifndef TW_HARNESS_CLIENT_HELPERS_H
#define TW_HARNESS_CLIENT_HELPERS_H

#include <stdint.h>

#include "taskwheel/client.h"

/* Wait until the broker at `frontend` has at least `n` workers. Returns 0
 * or TW_ETIMEDOUT. */
int tw_h_wait_workers(const char *frontend, int n, int timeout_ms);

/* One registered worker as QUERY "workers" shows it. */
typedef struct {
    uint64_t id;
    char name[64];
    char host[64];
    char handlers[512]; /* its handlers, each followed by one space */
    uint64_t running;   /* tasks the broker counts in flight on it */
    uint64_t credit;    /* the free capacity the broker counts for it */
} tw_h_worker_t;

/* The registered workers, in joining order, at most `cap` of them (fails
 * the test if the query fails). Returns how many there are. */
size_t tw_h_workers(tw_client_t *c, tw_h_worker_t *out, size_t cap);

/* The worker named `name` (NULL if none) in `ws[0..n)`. */
const tw_h_worker_t *tw_h_worker_named(const tw_h_worker_t *ws, size_t n,
                                       const char *name);

/* Read one integer field of QUERY "status". Returns 0 or an error. */
int tw_h_status_field(tw_client_t *c, const char *key, long long *out);

/* Integer field `key` of the status of the broker at `ep` (one broker of
 * a pair, say), asked by a client of its own; fails the test if there is
 * none. */
long long tw_h_status_of(const char *ep, const char *key);

/* Read one string field of QUERY "status" into `out` (cut to cap - 1).
 * Returns 0 or an error. */
int tw_h_status_str(tw_client_t *c, const char *key, char *out, size_t cap);

/* Poll QUERY "status" until field `key` is at least `min`. Returns 0, or
 * TW_ETIMEDOUT after timeout_ms. */
int tw_h_wait_status(tw_client_t *c, const char *key, long long min,
                     int timeout_ms);

/* Record acks and outcomes of `c` from now on. */
void tw_h_track_results(tw_client_t *c);

/* The task id acknowledged for `seq`, polling up to timeout_ms; fails the
 * test if it was refused or never acknowledged. */
uint64_t tw_h_wait_acked(tw_client_t *c, uint64_t seq, int timeout_ms);

/* The outcome of submission `seq` (queried from the broker by id once the
 * outcome was pushed). Returns 0 or TW_ENOENT / TW_ETIMEDOUT. */
int tw_h_last_result(tw_client_t *c, uint64_t seq, tw_result_t **out);

/* Poll tw_client_result until task `id` is in `state`. Returns 0 or
 * TW_ETIMEDOUT. */
int tw_h_wait_state(tw_client_t *c, uint64_t id, int state, int timeout_ms);

/* The state of task `id` now (TW_ST_*), its error text in `err` (elen
 * bytes) if not NULL; fails the test if the broker does not answer. */
int tw_h_state_of(tw_client_t *c, uint64_t id, char *err, size_t elen);

/* tw_h_wait_state within 30 s, failing the test (naming the state the
 * task is in) if it never gets there. */
void tw_h_expect_state(tw_client_t *c, uint64_t id, int state);

/* The result decoded as an integer / a string (static buffer). */
long long tw_h_result_int(const tw_result_t *r);
const char *tw_h_result_str(const tw_result_t *r);

/* The same for the value of `key` in a result that is a map: -1 / ""
 * when the key is absent or holds another type. */
long long tw_h_result_field_int(const tw_result_t *r, const char *key);
const char *tw_h_result_field_str(const tw_result_t *r, const char *key);

/* Submit `handler` with one string argument `arg` (NULL: nil), a timeout
 * and retries (0: none); returns the sequence number. Fails the test if
 * the client refuses it. */
uint64_t tw_h_submit_str(tw_client_t *c, const char *handler,
                         const char *arg, uint32_t timeout_ms,
                         uint32_t retries);

/* Wait for every outstanding task of `c`, then return the outcome of
 * `seq` (free it with tw_result_free); fails the test after timeout_ms. */
tw_result_t *tw_h_outcome(tw_client_t *c, uint64_t seq, int timeout_ms);

/* What QUERY-free station tests read from "station show". */
typedef struct {
    char state[32];
    char wanted[16];
    uint64_t worker;
    uint64_t epoch;
    uint64_t iterations;
    long long checkpoint; /* the checkpoint as an integer, -1 if not one */
    uint64_t restarts;
    char last_error[256];
    char reason[128];     /* why it waits ("" while placed or ended) */
} tw_h_station_t;

/* A station request with only op and sid; fails the test on an error
 * other than `expect` (0 for success). Returns the broker's code. */
int tw_h_station_op(tw_client_t *c, const char *op, const char *sid,
                    int expect);

/* "station show"; returns 0 or the broker's error code. */
int tw_h_station_show(tw_client_t *c, const char *sid, tw_h_station_t *out);

/* Poll "station show" until the station is in `state`. Returns 0 or
 * TW_ETIMEDOUT (with the last state seen in *last if not NULL). */
int tw_h_wait_station(tw_client_t *c, const char *sid, const char *state,
                      int timeout_ms, tw_h_station_t *last);

/* Poll "station show" until the station has done at least `n`
 * iterations. Returns 0 or TW_ETIMEDOUT; *last (if not NULL) gets what
 * was seen last. */
int tw_h_wait_iterations(tw_client_t *c, const char *sid, uint64_t n,
                         int timeout_ms, tw_h_station_t *last);

/* A msgpack-encoded integer in buf (9 bytes at most); returns its size. */
size_t tw_h_pack_int(unsigned char *buf, long long v);

#endif /* TW_HARNESS_CLIENT_HELPERS_H */
