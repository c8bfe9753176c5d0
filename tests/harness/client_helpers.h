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

/* Read one integer field of QUERY "status". Returns 0 or an error. */
int tw_h_status_field(tw_client_t *c, const char *key, long long *out);

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

/* The result decoded as an integer / a string (static buffer). */
long long tw_h_result_int(const tw_result_t *r);
const char *tw_h_result_str(const tw_result_t *r);

#endif /* TW_HARNESS_CLIENT_HELPERS_H */
