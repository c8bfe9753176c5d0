/*  broker/state/room.h - how much the store may still take: admission against
 *  what is measured plus what is on its way.
 *
 *  The store's use is measured by the writer thread after every batch
 *  (tw_store_use: pages in use, the file's size, the room its filesystem
 *  has left). Between two measurements the loop keeps admitting work, and
 *  several batches may be on their way to the writer, so a measurement
 *  alone says too little under a burst: 60,000 submissions arrive faster
 *  than one commit. tw_room_t adds what is on the way:
 *
 *      used     live bytes measured after the last batch written
 *    + flight   estimated growth of the batches handed over, not yet done
 *    + turn     estimated growth admitted since the last hand-over
 *    + need     the submission being judged
 *   <= cap - reserve
 *
 *  where cap is the smaller of --data-size and what the file may grow to
 *  on its filesystem (its size plus the free space there), and reserve is
 *  an eighth of cap, at least 1 MiB: room kept for what is never refused -
 *  outcomes, dispatch and station records, deletions - so a full store
 *  still drains. Estimates are generous (a record counts twice its bytes:
 *  half-full pages and copy-on-write), and each is replaced by the
 *  measurement once its batch is done.
 *
 *  No I/O and no clock: the loop feeds it numbers (rule 23 of the style
 *  guide), so the unit suite drives it by hand. Broker loop thread only.
 */
#ifndef TW_BROKER_ROOM_H
#define TW_BROKER_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/store.h"

typedef struct {
    uint64_t data_bytes; /* --data-size */
    tw_store_use_t use;  /* the last measurement */
    uint64_t flight;     /* growth of batches handed over, not done */
    uint64_t turn;       /* growth admitted since the last hand-over */
} tw_room_t;

/* What a record of `vlen` value bytes may take in the store, generously:
 * twice its node inline, its overflow pages beyond LMDB's inline limit. */
uint64_t tw_room_est(size_t vlen);

/* The capacity (cap) and the reserve, from the last measurement. */
uint64_t tw_room_cap(const tw_room_t *r);
uint64_t tw_room_reserve(const tw_room_t *r);

/* May `need` more bytes enter? 0 (and counted in `turn`), or TW_EFULL. */
int tw_room_admit(tw_room_t *r, uint64_t need);

/* A batch of estimated `growth` is handed over: `turn` becomes flight. */
void tw_room_seal(tw_room_t *r, uint64_t growth);

/* A batch handed over with `growth` is done; `use` (may be NULL) is the
 * measurement after it. */
void tw_room_done(tw_room_t *r, uint64_t growth, const tw_store_use_t *use);

#endif /* TW_BROKER_ROOM_H */
