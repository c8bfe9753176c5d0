/*  tests/fault/fault.h - counting what a fault lost, for the scenarios of
 *  tests/fault/ (on top of tests/harness).
 *
 *  Every scenario submits tasks through one tracked client, injects a
 *  fault (a killed or stopped worker, a cut link, a restarted broker) and
 *  then counts, per submission, what the client was told:
 *
 *    submitted   tasks handed to tw_client_submit
 *    acked       submissions the broker acknowledged with a task id (an
 *                outcome also does: it names the task, and the client
 *                takes it for an ACK lost on a broker's way out)
 *    completed   submissions whose outcome arrived with state ok
 *    duplicated  outcomes and acks beyond the first of one submission,
 *                plus what the broker itself counted as late or
 *                repeated outcomes ("duplicates" in its stats)
 *    lost        submissions without an ok outcome at the end
 *
 *  tw_fault_report() prints the line the suite is read by,
 *
 *    scenario=<name> submitted=N acked=N completed=N duplicated=N lost=N
 *
 *  and, in a scenario that expects refusals (refuse_code set), also
 *  refused=N: submissions refused with that code and message. There lost
 *  counts acknowledged submissions without an ok outcome, and every
 *  submission must be either acknowledged or refused, never both.
 *
 *  and fails the test unless lost is 0 and no submission got two acks or
 *  two outcomes at its client (a duplicate the broker absorbed is fine:
 *  that is at-least-once execution with one outcome per task).
 *
 *  A status subscriber (tw_fault_sub_*) reads the broker's status PUB, so
 *  a scenario measures when things happened from the broker's own events
 *  (worker.down, station.<sid>.running) instead of sleeping. The PUB is
 *  lossy by design; the scenarios subscribe only to low-rate topics.
 *
 *  Single-threaded, like the rest of the harness.
 */
#ifndef TW_FAULT_H
#define TW_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "taskwheel/client.h"
#include "tests/harness/harness.h"

/* ------------------------------------------------------------ counter --- */

typedef struct {
    const char *scenario;
    size_t cap;         /* seqs 1..cap are tracked */
    uint8_t *acks;      /* per seq: acknowledgements with an id */
    uint8_t *refused;   /* per seq: refusals (ack errors) */
    uint8_t *outcomes;  /* per seq: final outcomes */
    uint8_t *ok;        /* per seq: outcomes with state ok */
    uint64_t *ids;      /* per seq: the task id acknowledged */
    uint64_t *seqs;     /* the seqs submitted, in order */
    size_t submitted;
    uint64_t watch_wid; /* outcomes that ran on this worker ... */
    size_t on_watch;    /* ... are counted here */
    uint64_t broker_duplicates; /* set by the scenario, or read at report */
    int have_broker_duplicates;
    /* Refusals the scenario expects (a full store): 0 = none allowed;
     * else the error code each refusal must carry and a phrase its
     * message must hold (or one of several, separated by '|'). */
    int refuse_code;
    const char *refuse_text;
    size_t refused_bad;  /* refusals with another code or message */
    size_t refused_first;
    /* A fault that may lose acknowledged submissions (the active of an
     * async broker pair killed): lost may be up to lost_max, which the
     * report line then shows as bound=N. 0: lost must be 0. */
    int lost_bounded;
    size_t lost_max;
} tw_fault_t;

/* Track the submissions of client `c` with seqs up to `cap` (requests
 * take seqs too, so leave room); its ack and result callbacks are
 * taken. */
void tw_fault_init(tw_fault_t *f, const char *scenario, tw_client_t *c,
                   size_t cap);
void tw_fault_free(tw_fault_t *f);

/* Submit `n` tasks of `spec` and flush; fails the test on an error. */
void tw_fault_submit(tw_fault_t *f, tw_client_t *c,
                     const tw_task_spec_t *spec, size_t n);

/* Poll until at least `n` submissions completed ok, for at most
 * timeout_ms. Returns 0 or TW_ETIMEDOUT. */
int tw_fault_wait_completed(tw_fault_t *f, tw_client_t *c, size_t n,
                            int timeout_ms);

/* Poll until every submission has an outcome (or timeout_ms passes with
 * none arriving). Returns 0 or TW_ETIMEDOUT. */
int tw_fault_wait(tw_fault_t *f, tw_client_t *c, int timeout_ms);

/* Counts so far. */
size_t tw_fault_acked(const tw_fault_t *f);
size_t tw_fault_refused(const tw_fault_t *f);
size_t tw_fault_completed(const tw_fault_t *f);
/* Submissions acknowledged and not (yet) ended ok. */
size_t tw_fault_open(const tw_fault_t *f);

/* Read "duplicates" from the broker's status through `c` (if the scenario
 * did not set it), print the scenario line and assert lost == 0 and one
 * ack and one outcome per submission. */
void tw_fault_report(tw_fault_t *f, tw_client_t *c);

/* One integer of the broker's QUERY "status" through `c`; fails the test
 * if it cannot be read. */
long long tw_fault_stat(tw_client_t *c, const char *key);

/* Add `n` counting stations "k-0", "k-1"... (incr from 0, next result,
 * every 500 ms) in one request through `c`; fails the test on an
 * error. */
void tw_fault_add_counters(tw_client_t *c, size_t n);

/* A small msgpack-encoded number (for sleep's seconds as a float64). */
size_t tw_fault_pack_double(unsigned char buf[9], double v);

/* A task of the built-in `sleep` for `secs` seconds; its arguments live
 * in `buf`. */
tw_task_spec_t tw_fault_sleep_spec(unsigned char buf[9], double secs);

/* A client for `endpoint` that notices a lost broker quickly (heartbeat
 * 200 ms, liveness 5) and reconnects within 100-500 ms. */
tw_client_t *tw_fault_client(const char *endpoint);

/* An "echo" task whose arguments are a msgpack string of 100 bytes, in
 * `buf` (which must outlive the spec). */
tw_task_spec_t tw_fault_echo100(unsigned char buf[102]);

/* Wait, polling the client, until the broker's status `key` is `want`
 * (fails the test after ms). */
void tw_fault_wait_stat(tw_client_t *c, const char *key, long long want,
                        int ms);

/* --------------------------------------------------------- subscriber --- */

/* One status event. */
typedef struct {
    char topic[160];
    uint64_t at;        /* tw_h_now_ms() when it was read */
    uint64_t wid;       /* "wid" (worker events) or "worker" (stations) */
    char name[64];      /* "name" (worker events) */
    char state[32];     /* "state" (station events) */
    char station[160];  /* "station" (station events) */
} tw_fault_event_t;

typedef struct tw_fault_sub tw_fault_sub_t;

/* Subscribe to the NULL-terminated topic prefixes at `endpoint` (and
 * "stats") and return once the broker has the subscriptions
 * (tw_h_sub: its welcome answer arrived). */
tw_fault_sub_t *tw_fault_sub_new(const char *endpoint,
                                 const char *const topics[]);
void tw_fault_sub_destroy(tw_fault_sub_t **sub_p);

/* Read one event within timeout_ms. Returns 1, or 0 on timeout. */
int tw_fault_sub_next(tw_fault_sub_t *sub, tw_fault_event_t *ev,
                      int timeout_ms);

/* Read events until one with `topic` ("worker.up"...) about the worker
 * named `name` arrives, polling client `c` (NULL: none) meanwhile so its
 * traffic keeps flowing. Returns the event's wid, or 0 after
 * timeout_ms. */
uint64_t tw_fault_sub_wait_worker(tw_fault_sub_t *sub, tw_client_t *c,
                                  const char *topic, const char *name,
                                  int timeout_ms);

#endif /* TW_FAULT_H */
