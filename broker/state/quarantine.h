/*  broker/state/quarantine.h - peers that keep sending garbage are ignored for
 *  a while.
 *
 *  Every message the broker cannot use (it does not decode, comes on the
 *  wrong socket, or fails the gate's checks) is answered with ERROR, which
 *  costs an encode and a send per message: a peer stuck in a loop, or one
 *  trying to, could keep the broker busy answering it. So each protocol
 *  error is a strike against the routing id that sent it; `bound` strikes
 *  within one `window_ms` put that routing id in quarantine for `hold_ms`:
 *  everything it sends is dropped unread and unanswered, and only counted.
 *  The caller logs the moment a peer goes in (once per quarantine, never
 *  per message). A peer that behaves again simply leaves when its hold
 *  ends; strikes from an expired window are forgotten.
 *
 *  Memory is bounded: at most `max_peers` routing ids are tracked; when a
 *  new one would pass that, entries whose window and hold are both over
 *  are collected, and if none are, the new peer is not tracked (it is
 *  answered as before). tw_quarantine_gc() collects expired entries; the
 *  broker calls it every second. Broker loop thread only.
 */
#ifndef TW_BROKER_QUARANTINE_H
#define TW_BROKER_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/strmap.h"

typedef struct {
    uint32_t bound;     /* strikes within a window that quarantine */
    uint64_t window_ms; /* length of the counting window */
    uint64_t hold_ms;   /* how long a quarantined peer is ignored */
    size_t max_peers;   /* routing ids tracked at most */
} tw_quarantine_cfg_t;

/* The broker's defaults: 100 errors in 10 s, held for 60 s, 4096 peers. */
#define TW_QUARANTINE_DEFAULTS {100, 10000, 60000, 4096}

typedef struct {
    tw_quarantine_cfg_t cfg;
    tw_strmap_t peers;  /* routing id -> entry (quarantine.c) */
    uint64_t held;      /* quarantines started so far */
} tw_quarantine_t;

void tw_quarantine_init(tw_quarantine_t *q, const tw_quarantine_cfg_t *cfg);
void tw_quarantine_free(tw_quarantine_t *q);

/* Count one protocol error from routing id `ident` at `now` (ms).
 * Returns 1 if this strike put the peer in quarantine, else 0. */
int tw_quarantine_strike(tw_quarantine_t *q, const void *ident, size_t ilen,
                         uint64_t now);

/* `ident` proved itself (a worker's HELLO was accepted): forget its
 * strikes, unless it is held. */
void tw_quarantine_forgive(tw_quarantine_t *q, const void *ident,
                           size_t ilen, uint64_t now);

/* 1 if messages from `ident` are to be dropped at `now`, else 0. */
int tw_quarantine_held(const tw_quarantine_t *q, const void *ident,
                       size_t ilen, uint64_t now);

/* Forget peers whose window and hold are both over at `now`. */
void tw_quarantine_gc(tw_quarantine_t *q, uint64_t now);

/* Peers tracked (for tests and stats). */
size_t tw_quarantine_tracked(const tw_quarantine_t *q);

#endif /* TW_BROKER_QUARANTINE_H */
