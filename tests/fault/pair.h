/*  tests/fault/pair.h - the stage of the broker pair's fault scenarios
 *  (tests/fault/5N-pair-*.c, docs/HA.md section 6).
 *
 *  Each scenario brings up `deploy/multihost.sh --pair` (the primary on
 *  the broker host 10.77.0.1, the backup on 10.77.0.3, worker hosts w1..
 *  given both backends), joins the monitor host and drives one client
 *  given both frontends, as a remote client would. It adds counting
 *  stations, streams sleep tasks (a window outstanding, so that the
 *  stream is steady and tasks are running on the workers whenever the
 *  fault strikes), injects its fault through the script (kill-broker,
 *  wipe, cut, heal, start-broker) at a point of the stream, and ends
 *  with tw_fault_report's line and assertions (tests/fault/fault.h).
 *
 *  Sizes: the stream of 20,000 sleep tasks (10 ms each) and the 200
 *  stations of docs/HA.md section 9; each worker has a slot per station
 *  it may hold and 40 for tasks. A scenario takes 5 to 20 s on a quiet
 *  2-core machine.
 *
 *  Conditions are waited for with deadlines: a broker's ha_state or
 *  follower (QUERY status, which a passive answers too), the stations
 *  running on the active, the client's own counters.
 */
#ifndef TW_FAULT_PAIR_H
#define TW_FAULT_PAIR_H

#include "tests/fault/fault.h"

#include <stddef.h>
#include <stdint.h>

#define TW_FPAIR_HB 300 /* the brokers' (and the peers') heartbeat, ms */
#define TW_FPAIR_TASKS 20000
#define TW_FPAIR_STATIONS 200

typedef struct tw_fpair tw_fpair_t;

/* What a scenario's stream calls once, in the middle (see stream). */
typedef void (*tw_fpair_fault_fn)(tw_fpair_t *p);

struct tw_fpair {
    const char *name;   /* the scenario, for its report line */
    const char *mode;   /* --replicate: "sync" or "async" */
    size_t tasks;       /* the stream's length */
    size_t stations;    /* counting stations */
    int workers;        /* worker hosts */
    tw_client_t *c;     /* both frontends, in the monitor host */
    tw_fault_t f;       /* its counters */
    tw_task_spec_t spec;
    unsigned char secs[9];
    uint64_t fault_at;  /* tw_h_now_ms() when the fault was injected */
};

/* Bring the pair up (`--replicate mode`, `workers` worker hosts) for
 * scenario `name` under namespace prefix `prefix`, join the monitor host,
 * open the client, wait until the primary is active with a following
 * backup and every worker registered, and add the stations (running on
 * the primary). Returns 0, or TW_H_SKIP after printing why (not root,
 * no namespaces). */
int tw_fpair_up(tw_fpair_t *p, const char *prefix, const char *name,
                const char *mode, int workers);

/* Stream the scenario's tasks with at most `window` outstanding; once
 * `fault_after` are submitted and a tenth of them ended ok, call `fault`
 * (NULL: none) once. Returns when every task is submitted (not ended). */
void tw_fpair_stream(tw_fpair_t *p, size_t window, size_t fault_after,
                     tw_fpair_fault_fn fault);

/* Wait until every submission has its outcome and `active_front` (the
 * broker that should be active) runs every station; print the report line
 * and check it (tw_fault_report). */
void tw_fpair_finish(tw_fpair_t *p, const char *active_front);

/* Close the client and tear the cluster down. */
void tw_fpair_down(tw_fpair_t *p);

/* A string / an integer of the status of the broker at `front` (its own
 * client, one query); the string is "" and the integer -1 when it does
 * not answer within 2 s. */
void tw_fpair_str(const char *front, const char *key, char *out,
                  size_t cap);
long long tw_fpair_int(const char *front, const char *key);

/* Wait up to `ms` (polling the scenario's client meanwhile) until the
 * broker at `front` reports `key` as `want`; fails the test otherwise. */
void tw_fpair_wait_str(tw_fpair_t *p, const char *front, const char *key,
                       const char *want, int ms);

/* Poll the scenario's client for `ms`, or until `done(p)` returns 1. */
int tw_fpair_poll_until(tw_fpair_t *p, int (*done)(tw_fpair_t *p), int ms);

/* Run the script (tw_h_mh_script) and fail the test unless it exits 0. */
void tw_fpair_script(const char *cmd, const char *a, const char *b);

/* Milliseconds from the fault until a task submitted now is
 * acknowledged (by whichever broker is active then); fails the test
 * after `ms`. */
uint64_t tw_fpair_probe(tw_fpair_t *p, int ms);

/* The kill scenarios (50 to 52): the active (the primary) SIGKILLed in
 * the middle of the stream, its data directory deleted too if `wipe`;
 * the backup takes over on the workers' and the client's votes; the time
 * from the kill to the first task the new active accepted is printed in
 * heartbeats; then, with the stream submitted, the old primary starts
 * again (on its store, or on none) and must come back passive, the
 * new active streaming to it (from batch 1, or a snapshot, if it was
 * wiped); a wiped one must then hold the whole state: the backup is
 * killed in turn and it takes over with every station. Under sync
 * nothing acknowledged may be lost; under async at most what was
 * acknowledged and had not ended when the client noticed the loss (the
 * report line's bound). Returns the exit status. */
int tw_fpair_kill_scenario(const char *prefix, const char *name,
                           const char *mode, int wipe);

/* The cut scenarios (53, 54), where no takeover may happen: under sync,
 * `fault` cuts and heals links halfway through the stream; the backup's
 * ha.* events are watched from the start (tw_fpair_backup_not_active, which
 * `fault` may call as often as it likes); at the end every submission
 * ended ok once, the primary runs every station under its first epoch and
 * the backup is passive and never took over. Returns the exit status. */
int tw_fpair_no_takeover_scenario(const char *prefix, const char *name,
                                  tw_fpair_fault_fn fault);

/* Fail the test if the backup published ha.active since the last call, or
 * reports itself active now. */
void tw_fpair_backup_not_active(void);

#endif /* TW_FAULT_PAIR_H */
