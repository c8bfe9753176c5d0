/*  broker/dedup.h - exactly-once enqueue: which task each submission made.
 *
 *  A client keeps its routing identity across reconnects and resends the
 *  SUBMIT items it has no ACK for, with the same seq. The broker remembers,
 *  per client and seq, the task that item created; a resent item finds it
 *  here and is answered with the same id, enqueueing nothing. An entry lives
 *  exactly as long as its task record (pending, running, then its result
 *  until --result-ttl or --max-results collects it), so the table is
 *  bounded by --max-queue plus --max-results. With --data the entries are
 *  rebuilt from the stored task and result records, which carry the
 *  submitter's identity and seq, so they survive a broker restart too.
 *
 *  A client that reuses a seq for a different submission (raw peers
 *  numbering each message's items from 1) is not mistaken for a resend:
 *  the entry only matches an item whose handler and arguments hash to what
 *  the task was submitted with (tw_dedup_item_hash); otherwise the item is
 *  new and takes the entry over.
 *
 *  Two levels of idmap: client id -> (seq -> task id). seq 0 is never
 *  remembered (idmap keys are non-zero). Broker loop thread only.
 */
#ifndef TW_BROKER_DEDUP_H
#define TW_BROKER_DEDUP_H

#include <stdint.h>

#include "common/idmap.h"

typedef struct {
    tw_idmap_t clients; /* client id -> tw_idmap_t * (seq -> task id) */
    uint64_t entries;
} tw_dedup_t;

void tw_dedup_init(tw_dedup_t *d);
void tw_dedup_destroy(tw_dedup_t *d);

/* The task id client `cid` got for `seq`, or 0. */
uint64_t tw_dedup_get(const tw_dedup_t *d, uint64_t cid, uint64_t seq);

/* Remember that (cid, seq) made task `id`. */
void tw_dedup_put(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id);

/* The hash a resend must match: handler name and argument bytes. */
uint64_t tw_dedup_item_hash(const char *h, size_t hlen, const void *a,
                            size_t alen);

/* Forget (cid, seq) if it still names task `id`. */
void tw_dedup_del(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id);

#endif /* TW_BROKER_DEDUP_H */
