/*  broker/core/place.h - where stations run: placement, and the messages
 *  that move them (ASSIGN, CONTROL, N2S, RELEASE).
 *
 *  A station waiting for a slot is on the unplaced list; a placement pass
 *  puts unplaced stations on workers with room, whenever something that
 *  could change the answer happened (a station added or unplaced, a worker
 *  joined, a slot freed: place_wanted). A station no connected worker can
 *  take waits aside (state/aside.h) until the worker set changes, so a
 *  pass costs nothing while nobody can take it. Every move of a placed
 *  station is an item in one of its worker's batches; tw__place_flush
 *  sends them at the end of the turn, ASSIGN first, then N2S, CONTROL and
 *  RELEASE. The station table itself and the restart policy are
 *  state/stations.h; the requests and reports that drive all this are
 *  cmd/on_station.h. Broker loop thread only.
 */
#ifndef TW_BROKER_PLACE_H
#define TW_BROKER_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/stations.h"
#include "broker/state/workers.h"

struct tw_broker;

/* Queue station `st` for the next placement pass; one set aside comes
 * back to be tried at once, so its state and reason follow the new try. */
void tw__place_unplace(struct tw_broker *b, tw_station_t *st);

/* Make a station PENDING for `reason` and queue it for placement. */
void tw__place_pending(struct tw_broker *b, tw_station_t *st,
                       const char *reason);

/* Place unplaced stations on workers with room (if anything changed). */
void tw__place_pass(struct tw_broker *b);

/* New stations `sts` (n of them, NULL entries skipped) the last pass left
 * pending because no worker had room at all still get a reason: no free
 * slot, or waiting for their host. */
void tw__place_explain(struct tw_broker *b, tw_station_t *const *sts,
                       size_t n);

/* The worker set or a worker's eligibility for stations changed (joined,
 * left, drained, resized): stations set aside because nobody matched them
 * are tried again on the next pass. Every such change must call this. */
void tw__place_workers_changed(struct tw_broker *b);

/* Stations waiting for placement: on the list and set aside. */
size_t tw__place_unplaced(const struct tw_broker *b);

/* Forget a station for good, taking it off the unplaced list first. */
void tw__place_forget(struct tw_broker *b, tw_station_t *st);

/* Free the slot a placed station holds on its worker (if the worker is
 * still known). */
void tw__place_free_slot(struct tw_broker *b, tw_station_t *st);

/* Queue CONTROL {sid, ep, ev} / RELEASE {sid, ep} for a placed station
 * (nothing if its worker is gone). */
void tw__place_control(struct tw_broker *b, tw_station_t *st,
                       const char *ev);
void tw__place_release(struct tw_broker *b, tw_station_t *st);

/* An n2s message for the station: sent at once if its worker can take it
 * and none waits before it, else queued (up to --n2s-backlog). Returns
 * its sequence number and sets *queued, or returns 0 if the backlog is
 * full. Counted in n2s_sent or n2s_dropped. */
uint64_t tw__place_n2s_send(struct tw_broker *b, tw_station_t *st,
                            const void *d, size_t len, int *queued);

/* Send the queued n2s messages of a station that became deliverable. */
void tw__place_n2s_flush(struct tw_broker *b, tw_station_t *st);

/* A worker is going away: its stations become unplaced (same wanted
 * state, same checkpoint). */
void tw__place_orphan(struct tw_broker *b, tw_bworker_t *w);

/* Release every station of `w` on slot `from` or above, to be placed
 * again (a resize took those slots away). Returns how many. */
size_t tw__place_move_off(struct tw_broker *b, tw_bworker_t *w,
                          uint32_t from);

/* Send every worker's pending ASSIGN, N2S, CONTROL and RELEASE batches. */
void tw__place_flush(struct tw_broker *b);

#endif /* TW_BROKER_PLACE_H */
