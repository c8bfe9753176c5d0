/*  client/outbox.c - unacknowledged submissions (see outbox.h).
 *
 *  A doubly-linked list in seq order for resending oldest first, and an
 *  idmap from seq to node for the ACKs, which come roughly in order but
 *  may skip (a refused item is answered like the others, an ERROR may
 *  name one seq). Each node and its bytes are one allocation.
 */
#include "client/outbox.h"
#include "common/alloc.h"
#include "common/error.h"

#include <string.h>

void
tw__outbox_init(tw__outbox_t *o)
{
    memset(o, 0, sizeof *o);
    tw_idmap_init(&o->byseq);
}

void
tw__outbox_free(tw__outbox_t *o)
{
    tw__ob_item_t *it = o->head;
    while (it) {
        tw__ob_item_t *next = it->next;
        tw_free(it);
        it = next;
    }
    tw_idmap_free(&o->byseq);
    memset(o, 0, sizeof *o);
}

int
tw__outbox_add(tw__outbox_t *o, uint64_t seq, const void *bytes, size_t len)
{
    tw__ob_item_t *it = tw_try_malloc(sizeof *it + len);
    if (!it || tw_idmap_reserve(&o->byseq, 1) != 0) {
        tw_free(it);
        return TW_ENOMEM;
    }
    it->seq = seq;
    it->len = len;
    memcpy(it->bytes, bytes, len);
    it->next = NULL;
    it->prev = o->tail;
    if (o->tail) {
        o->tail->next = it;
    } else {
        o->head = it;
    }
    o->tail = it;
    tw_idmap_put(&o->byseq, seq, it);
    o->len++;
    o->bytes += len;
    return 0;
}

int
tw__outbox_ack(tw__outbox_t *o, uint64_t seq)
{
    tw__ob_item_t *it = seq ? tw_idmap_del(&o->byseq, seq) : NULL;
    if (!it) {
        return 0;
    }
    if (it->prev) {
        it->prev->next = it->next;
    } else {
        o->head = it->next;
    }
    if (it->next) {
        it->next->prev = it->prev;
    } else {
        o->tail = it->prev;
    }
    o->len--;
    o->bytes -= it->len;
    tw_free(it);
    return 1;
}
