/*  broker/state/dedup.h - exactly-once enqueue: which task each submission
 *  made.
 *
 *  A client keeps its routing identity across reconnects and resends the
 *  SUBMIT items it has no ACK for, with the same seq. The broker remembers,
 *  per client, the task each recent seq created; a resent item finds it
 *  here and is answered with the same id, enqueueing nothing. The caller
 *  confirms a hit against the task itself (still known, same client, and a
 *  hash of handler and arguments equal to the item's, tw_dedup_item_hash),
 *  so a stale or reused entry is never taken for a resend.
 *
 *  Per client a ring indexed by seq: clients number their submissions
 *  upwards, so consecutive seqs land in consecutive slots and a lookup or
 *  an insert is one array access, with nothing to delete when a task goes.
 *  The ring holds the client's last W submissions, W a power of two from
 *  256 that doubles (up to 131072) whenever the client has more than W/2
 *  tasks outstanding: that is the bound, per client, for as long as the
 *  broker knows the client (tw_dedup_gc drops the rings of forgotten
 *  clients). With --data the rings are rebuilt from the stored task
 *  records, which carry the submitter's identity and seq, so they survive
 *  a restart. Broker loop thread only.
 */
#ifndef TW_BROKER_DEDUP_H
#define TW_BROKER_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/idmap.h"

#define TW_DEDUP_MIN 256u
#define TW_DEDUP_MAX 131072u

typedef struct {
    uint64_t seq, id; /* id 0 with err set: the submission was refused */
    uint32_t shash;   /* a refused item's hash (tw_dedup_item_hash) */
    int32_t err;      /* the refusal's TW_E code */
} tw_dedup_slot_t;

typedef struct {
    tw_dedup_slot_t *slots;
    uint32_t cap; /* a power of two */
} tw_dedup_ring_t;

typedef struct {
    tw_idmap_t clients; /* client id -> tw_dedup_ring_t */
    uint64_t last_cid;  /* a one-entry cache of the lookup */
    tw_dedup_ring_t *last;
} tw_dedup_t;

void tw_dedup_init(tw_dedup_t *d);
void tw_dedup_destroy(tw_dedup_t *d);

/* The task id client `cid` got for `seq` if still remembered, or 0 (to be
 * confirmed against the task). */
uint64_t tw_dedup_get(tw_dedup_t *d, uint64_t cid, uint64_t seq);

/* Remember that (cid, seq) made task `id`; `outstanding` (the client's
 * tasks not ended, or at recovery all its known tasks) sizes the ring.
 * An entry with a larger seq in the same slot is kept. */
void tw_dedup_put(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id,
                  uint64_t outstanding);

/* Remember that (cid, seq), an item hashing `shash`, was refused with
 * `err`: libzmq may deliver a submission twice (a copy still queued from
 * before a reconnect, and the client's resend), and the second copy must
 * get the first one's answer, not be admitted once room came back. The
 * two copies can be a whole burst apart, so `window` (the client's
 * outstanding tasks plus its refusals so far) sizes the ring as
 * `outstanding` does for tw_dedup_put: a client that has been refused
 * 65,536 times keeps the largest ring (4 MiB) while the broker knows it. */
void tw_dedup_refuse(tw_dedup_t *d, uint64_t cid, uint64_t seq,
                     uint32_t shash, int err, uint64_t window);

/* The error (cid, seq) was refused with, if remembered and the item
 * hashes `shash`; else 0. */
int tw_dedup_refused(tw_dedup_t *d, uint64_t cid, uint64_t seq,
                     uint32_t shash);

/* The hash a resend must match: handler name and argument bytes. */
uint32_t tw_dedup_item_hash(const char *h, size_t hlen, const void *a,
                            size_t alen);

/* Drop the rings of clients `known` says are gone (known returns 0).
 * Returns how many were dropped. */
size_t tw_dedup_gc(tw_dedup_t *d, int (*known)(uint64_t cid, void *arg),
                   void *arg);

#endif /* TW_BROKER_DEDUP_H */
