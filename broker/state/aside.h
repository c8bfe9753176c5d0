/*  broker/state/aside.h - stations no connected worker can take, set aside.
 *
 *  Whether a station matches some worker (assign.h) depends only on the
 *  set of connected workers and on their eligibility: tags, draining,
 *  resizing. It does not depend on credit or free slots. So a station whose
 *  last try said "no eligible worker" or "waiting for its host" would give
 *  the same answer on every placement pass until that set changes, and
 *  trying it again on every credit return would cost one scan of all the
 *  workers per such station for nothing.
 *
 *  The placement pass (dispatch_station.c) moves those stations here,
 *  stamped with the worker-set generation `gen` of the try. Every change
 *  that could make a worker eligible for more stations (a worker joined,
 *  left, drained, was resized or confirmed a resize) bumps `gen`; the next
 *  pass then puts every set-aside station back on the placement list and
 *  tries it once more. Between two changes, a pass does not look at them.
 *
 *      placement list --- try: no match / waiting for host ---> aside
 *            ^                                                    |
 *            '------------- next pass after gen changed ----------'
 *
 *  A station on the list has `queued` TW_QUEUED_ASIDE and knows its index
 *  (`aside_ix`), so it is taken off in O(1) when it is forgotten or made
 *  pending again. The list does not own its stations. Broker loop thread
 *  only; no I/O, no clock.
 */
#ifndef TW_BROKER_ASIDE_H
#define TW_BROKER_ASIDE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/stations.h"

typedef struct {
    tw_station_t **list; /* borrowed stations, in no particular order */
    size_t len, cap;
    uint64_t gen;        /* worker-set generation, bumped by changes */
    uint64_t at;         /* generation the stations here were tried at */
    uint64_t tries;      /* stations tried by placement passes (each try is
                            one tw_assign_choose over every worker) */
} tw_aside_t;

/* Free the list (not the stations). The struct is zero-initialised to
 * start. */
void tw_aside_free(tw_aside_t *a);

/* Set `st` aside: it was tried at generation a->gen and matched nobody.
 * It must not be on any list (`queued` 0); it is marked TW_QUEUED_ASIDE. */
void tw_aside_put(tw_aside_t *a, tw_station_t *st);

/* Take `st` off the list (it must be on it); `queued` becomes 0. */
void tw_aside_take(tw_aside_t *a, tw_station_t *st);

/* The worker set or a worker's eligibility changed. */
void tw_aside_changed(tw_aside_t *a);

/* 1 if stations are set aside and the worker set changed since they were
 * tried: they must be tried again. */
int tw_aside_due(const tw_aside_t *a);

/* Empty the list for a new try: returns the stations (borrowed until the
 * next put) and their number in *n, each with `queued` 0, and records the
 * current generation. */
tw_station_t **tw_aside_release(tw_aside_t *a, size_t *n);

#endif /* TW_BROKER_ASIDE_H */
