/*  broker/state/stations.h - stations as the broker keeps them.
 *
 *  A station is a perpetual loop the broker places on one slot of one
 *  worker (the assignator's job, assign.h) and follows from the worker's
 *  reports. The broker is the authority on where a station runs and what
 *  its operator wants; the worker is the authority on what it is doing.
 *
 *          add                 ASSIGN            ev running / paused
 *     ---------> PENDING ---------------> ASSIGNED --------------> RUNNING
 *                 ^  |                                            PAUSED
 *     worker lost |  '-- pinned, host gone --> WAITING-FOR-HOST      |
 *     or released |                                                  |
 *                 '----------------- restart (backoff) <-- FAILED <--+
 *                                                          STOPPED, DONE,
 *                                                          CANCELLED <-'
 *
 *  `wanted` (run, paused, stopped) is what the operator asked for; it
 *  survives reassignment, so a paused station stays paused on its next
 *  worker (F1). `epoch` grows with every assignment: reports carrying an
 *  older epoch come from a worker that lost the station and are refused, so
 *  a station never has two owners whose reports both count (S42).
 *  The checkpoint is the last payload the worker reported: the input of the
 *  next iteration, from which a reassigned station resumes.
 *
 *  This module keeps the table and makes the time-driven decisions (the
 *  restart policy) with now_ms passed in; it sends nothing. Broker loop
 *  thread only.
 */
#ifndef TW_BROKER_STATIONS_H
#define TW_BROKER_STATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/assign.h"
#include "common/strmap.h"

typedef enum {
    TW_SS_PENDING = 0,
    TW_SS_WAITING_HOST,
    TW_SS_ASSIGNED,
    TW_SS_RUNNING,
    TW_SS_PAUSED,
    TW_SS_STOPPED,
    TW_SS_DONE,
    TW_SS_FAILED,
    TW_SS_CANCELLED
} tw_sstate_t;

/* Where a station waits for placement: nowhere, on the broker's unplaced
 * list (tried by every pass), or set aside because no connected worker
 * matches it (tried again when the worker set changes, aside.h). */
typedef enum {
    TW_QUEUED_NO = 0,
    TW_QUEUED_TRY = 1,
    TW_QUEUED_ASIDE = 2
} tw_squeued_t;

typedef enum { TW_WANT_RUN = 0, TW_WANT_PAUSED, TW_WANT_STOPPED } tw_swant_t;

typedef enum {
    TW_RESTART_NEVER = 0,
    TW_RESTART_ON_FAILURE,
    TW_RESTART_ALWAYS
} tw_srestart_t;

/* Restart policy constants: backoff 1 s doubling to 60 s; more than
 * TW_RESTART_BURST failures within TW_RESTART_WINDOW_MS leaves it failed. */
#define TW_RESTART_BASE_MS 1000
#define TW_RESTART_MAX_MS 60000
#define TW_RESTART_BURST 5
#define TW_RESTART_WINDOW_MS 60000

/* One queued n2s message. */
typedef struct {
    uint64_t seq;
    void *data;
    uint32_t len;
} tw_n2s_msg_t;

typedef struct tw_station {
    char *sid;
    size_t sid_len;
    uint32_t handler;  /* index in the handler table */
    void *args;        /* the definition's first input */
    uint32_t args_len;
    void *ck;          /* last checkpoint, or NULL */
    uint32_t ck_len;
    uint8_t next;      /* 0 same, 1 result, 2 handler */
    uint8_t state;     /* tw_sstate_t */
    uint8_t wanted;    /* tw_swant_t */
    uint8_t restart;   /* tw_srestart_t */
    uint8_t removing;  /* forget it once its worker released it */
    uint8_t moving;    /* released for a rebalance: place it again */
    uint8_t queued;    /* tw_squeued_t: on which placement list */
    tw_placement_t placement;
    uint32_t interval_ms;
    uint32_t timeout_ms;
    char *code;        /* NULL: none */
    char **tags;       /* key, value pairs */
    size_t ntags;
    uint64_t worker;   /* worker id while ASSIGNED/RUNNING/PAUSED */
    uint64_t avoid;    /* the worker it last failed on, placed last by its
                          restart (assign.h); 0 once placed again */
    uint32_t slot;
    uint64_t epoch;
    uint64_t iterations;
    char *last_error;
    const char *reason; /* why it is pending; static text */
    uint32_t restart_base_ms; /* first backoff; 0 = TW_RESTART_BASE_MS */
    uint32_t restarts;
    uint32_t burst;     /* failures in the current window */
    uint64_t burst_start_ms;
    uint64_t restart_at_ms; /* PENDING until then; 0 = now */
    uint64_t n2s_seq;   /* last n2s sequence number given */
    uint64_t n2s_dropped;
    tw_n2s_msg_t *n2s;  /* queued while not deliverable, oldest first */
    size_t n2s_len, n2s_cap;
    size_t aside_ix;    /* index on the aside list (aside.h) */
} tw_station_t;

typedef struct {
    tw_strmap_t by_sid;
    tw_station_t **all; /* insertion order */
    size_t len, cap;
    size_t n2s_limit;   /* queued n2s per station */
} tw_stations_t;

void tw_stations_init(tw_stations_t *ss, size_t n2s_limit);
void tw_stations_destroy(tw_stations_t *ss);

/* A new PENDING station; `sid` and `args` are copied. Returns NULL if the
 * sid is taken. */
tw_station_t *tw_stations_add(tw_stations_t *ss, const char *sid,
                              size_t sid_len, const void *args,
                              size_t args_len);

tw_station_t *tw_stations_get(const tw_stations_t *ss, const char *sid,
                              size_t len);

/* Forget and free a station. */
void tw_stations_remove(tw_stations_t *ss, tw_station_t *st);

/* Replace the checkpoint (copied). */
void tw_station_set_checkpoint(tw_station_t *st, const void *ck,
                               size_t len);

/* The input of the next iteration: the checkpoint, else the args. */
const void *tw_station_input(const tw_station_t *st, size_t *len);

/* Queue an n2s message (copied). Returns its seq, or 0 if the queue is
 * full (the message is counted as dropped). */
uint64_t tw_station_n2s_push(tw_station_t *st, size_t limit,
                             const void *data, size_t len);

/* Free every queued n2s message. */
void tw_station_n2s_clear(tw_station_t *st);

/* Apply the restart policy to a station that just ended in `state`
 * (FAILED or DONE; STOPPED and CANCELLED come from the operator and never
 * restart). Returns 1 and schedules restart_at_ms if it should restart,
 * 0 if it stays ended. */
int tw_station_should_restart(tw_station_t *st, tw_sstate_t state,
                              uint64_t now_ms);

/* 1 for states in which the station holds a worker slot. */
static inline int
tw_station_placed(const tw_station_t *st)
{
    return st->state == TW_SS_ASSIGNED || st->state == TW_SS_RUNNING ||
           st->state == TW_SS_PAUSED;
}

/* 1 for the ended states. */
static inline int
tw_station_ended(const tw_station_t *st)
{
    return st->state >= TW_SS_STOPPED;
}

const char *tw_sstate_name(int state);
const char *tw_swant_name(int want);

/* Parse "same|result|handler", "any|prefer|pinned",
 * "never|on-failure|always". Return the value or -1. */
int tw_station_parse_next(const char *s, size_t len);
int tw_station_parse_placement(const char *s, size_t len);
int tw_station_parse_restart(const char *s, size_t len);
const char *tw_station_next_name(int next);
const char *tw_station_placement_name(int p);
const char *tw_station_restart_name(int r);

#endif /* TW_BROKER_STATIONS_H */
