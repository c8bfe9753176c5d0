/*  broker/out/stats.h - the broker's counters: one list, three uses.
 *
 *  TW_BROKER_COUNTERS gives the fields of tw_broker_stats_t, the keys of
 *  the status map (QUERY "status" and the stats topic, PROTOCOL.md 5.14:
 *  the key, or NULL where another part writes it) and the metrics page
 *  (taskwheel_<field>_total, with the help text). A new counter is one
 *  row. Every layer of the broker counts into the same struct; it lives
 *  at the bottom because sending (out.h) counts refusals. Definitions
 *  only; broker loop thread only.
 */
#ifndef TW_BROKER_STATS_H
#define TW_BROKER_STATS_H

#include <stdint.h>

#define TW_BROKER_COUNTERS(XX)                                               \
    XX(submitted, "submitted", "Tasks accepted.")                            \
    XX(rejected, "rejected", "SUBMIT items refused.")                        \
    XX(dispatched, "dispatched", "Tasks sent to workers (each attempt).")    \
    XX(completed, "completed", "Tasks ended ok.")                            \
    XX(failed, "failed", "Tasks ended with an error, a timeout or lost.")    \
    XX(cancelled, "cancelled", "Tasks ended cancelled.")                     \
    XX(requeued, "requeued",                                                 \
       "Tasks returned to the queue after a worker loss.")                   \
    XX(retried, "retried", "Failed tasks run again (per-task retries).")     \
    XX(released, "released",                                                 \
       "Blocked tasks released: their parents ended as required.")           \
    XX(upstream_failed, "upstream_failed",                                   \
       "Blocked tasks cancelled because a parent did not succeed.")          \
    XX(duplicates, "duplicates",                                             \
       "Outcomes for tasks not in flight on that worker.")                   \
    /* "resubmitted" in the status map (persist.c) */                        \
    XX(deduplicated, NULL, "Submissions answered with a known task id.")     \
    /* "dropped" in the status map adds the status socket's refusals */      \
    XX(dropped, NULL, "Messages the frontend or backend socket refused.")    \
    XX(malformed, "malformed", "Messages that failed to decode.")            \
    XX(stale, "stale", "Station reports from an old epoch.")                 \
    XX(iterations, "iterations", "Station iterations reported.")             \
    XX(n2s_sent, "n2s_sent", "n2s messages delivered to workers.")           \
    XX(n2s_dropped, "n2s_dropped",                                           \
       "n2s messages refused: a station backlog was full.")                  \
    XX(s2n, "s2n", "s2n messages accepted.")                                 \
    XX(chan_fwd, "chan_fwd", "Task channel items forwarded.")                \
    XX(chan_dropped, "chan_dropped", "Task channel items dropped.")          \
    XX(chan_closereq, "chan_closereq",                                       \
       "Task channel close requests the broker sent.")                       \
    XX(hwm, "dropped_hwm", "Sends refused at a peer's high-water mark.")     \
    XX(unroutable, "unroutable", "Sends to a peer that is gone.")            \
    XX(overflow, "overflow", "Submissions refused: the queue was full.")     \
    XX(over_budget, "over_budget",                                           \
       "Submissions refused: the payload budget was full.")                  \
    XX(collected_budget, "collected_budget",                                 \
       "Kept results collected early to stay within the payload budget.")    \
    XX(quarantined, "quarantined",                                           \
       "Messages dropped unread from quarantined peers.")

typedef struct {
#define TW__STAT_FIELD(field, key, help) uint64_t field;
    TW_BROKER_COUNTERS(TW__STAT_FIELD)
#undef TW__STAT_FIELD
} tw_broker_stats_t;

#endif /* TW_BROKER_STATS_H */
