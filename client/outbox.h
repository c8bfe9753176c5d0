/*  client/outbox.h - the client's record of submissions the broker has not
 *  acknowledged yet, kept so they can be sent again after a reconnect.
 *
 *  Each submitted task's SUBMIT item (the msgpack map {seq, h, a?, ...},
 *  exactly as first encoded) is copied into one block and kept, in seq
 *  order, until its ACK (or a refusal) arrives. After the client lost the
 *  broker and reconnected, every item still here is packed into new
 *  SUBMIT messages, oldest first, with its ORIGINAL seq: a broker that
 *  keeps submissions (the durable store) answers a repeat of a (client
 *  routing id, seq) it already accepted with the same task id, and one
 *  that restarted empty simply enqueues it once.
 *
 *  The outbox is bounded by count (tw_client_opts_t.max_outbox): a full
 *  one makes tw_client_submit return TW_EFULL. Single-threaded.
 */
#ifndef TW_CLIENT_OUTBOX_H
#define TW_CLIENT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/idmap.h"

typedef struct tw__ob_item {
    struct tw__ob_item *prev, *next;
    uint64_t seq;
    size_t len;
    unsigned char bytes[]; /* the encoded item */
} tw__ob_item_t;

typedef struct {
    tw__ob_item_t *head, *tail; /* oldest first */
    tw_idmap_t byseq;           /* seq -> item */
    size_t len;                 /* items */
    size_t bytes;               /* sum of their encoded sizes */
} tw__outbox_t;

void tw__outbox_init(tw__outbox_t *o);

/* Free every item and the index. The outbox may be reused after init. */
void tw__outbox_free(tw__outbox_t *o);

/* Keep a copy of the `len` bytes of item `seq` (seqs only grow).
 * Returns 0, or TW_ENOMEM with nothing kept. */
int tw__outbox_add(tw__outbox_t *o, uint64_t seq, const void *bytes,
                   size_t len);

/* Forget item `seq` (it was acknowledged or refused). Returns 1 if it was
 * there, 0 if not (a repeated ACK, or one for a seq never submitted). */
int tw__outbox_ack(tw__outbox_t *o, uint64_t seq);

#endif /* TW_CLIENT_OUTBOX_H */
