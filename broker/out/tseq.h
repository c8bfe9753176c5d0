/*  broker/out/tseq.h - per-topic sequence numbers of the status stream.
 *
 *  Every status message carries "pseq" (one counter over all topics) and
 *  "tseq", the number of messages published so far under its own topic,
 *  starting at 1. A subscriber to a prefix sees pseq jump whenever a topic
 *  it did not ask for was published, but each topic's tseq runs without a
 *  hole unless a message was really lost (the XPUB high-water mark), so a
 *  gap in tseq is a loss and a gap in pseq is not. The snapshot query
 *  (QUERY "snapshot", snapshot.c) returns the last tseq of every topic:
 *  the ZeroMQ clone pattern (subscribe, snapshot, then apply the deltas
 *  whose tseq is above the snapshot's).
 *
 *  Counters exist only for topics that were published. The counters of a
 *  station's topics are forgotten with the station; a topic that comes
 *  back counts from 1 again. At most TW_TSEQ_MAX topics are tracked; past
 *  that a new topic is published with tseq 0 ("not tracked"), and logged
 *  once. Broker loop thread only.
 */
#ifndef TW_BROKER_TSEQ_H
#define TW_BROKER_TSEQ_H

#include <stddef.h>
#include <stdint.h>

#include "common/strmap.h"
#include "proto/proto.h"

#define TW_TSEQ_MAX (1u << 20)

typedef struct {
    tw_strmap_t map; /* topic -> counter record (tseq.c) */
    int capped;      /* TW_TSEQ_MAX was reached (logged once) */
} tw_tseq_t;

void tw_tseq_init(tw_tseq_t *t);

/* Free every counter. */
void tw_tseq_free(tw_tseq_t *t);

/* Count one more message under `topic` and return its number (1 for the
 * first), or 0 when the topic cannot be tracked (TW_TSEQ_MAX). */
uint64_t tw_tseq_next(tw_tseq_t *t, const char *topic, size_t len);

/* The last number given under `topic`, 0 if none. */
uint64_t tw_tseq_last(const tw_tseq_t *t, const char *topic, size_t len);

/* Forget `topic`. Returns 1 if it was tracked, else 0. */
int tw_tseq_forget(tw_tseq_t *t, const char *topic, size_t len);

/* Forget every topic that starts with `prefix`. Returns how many. */
size_t tw_tseq_forget_prefix(tw_tseq_t *t, const char *prefix, size_t len);

/* Topics tracked now. */
size_t tw_tseq_count(const tw_tseq_t *t);

/* Encode the map {topic: last tseq} of every tracked topic into `e`. */
void tw_tseq_encode(const tw_tseq_t *t, tw_enc_t *e);

#endif /* TW_BROKER_TSEQ_H */
