/*  broker/core/outbox.c - client batches and the order of client messages
 *  (see outbox.h).
 */
#include "broker/core/outbox.h"
#include "broker/core/core.h"
#include "broker/core/persist.h"

static void
s_flush_client(tw_broker_t *b, tw_bclient_t *c)
{
    if ((c->acks.n || c->results.n) && b->persist) {
        /* An ACK leaves only once its task is recorded, an outcome only
         * once its end is: the commit takes them into its batch whenever
         * anything of theirs is unwritten. What is left may go now. */
        tw__persist_commit(b);
    }
    int was = tw__persist_bypass(b, 1);
    if (c->acks.n) {
        tw_out_batch(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                     TW_CMD_ACK, &c->acks);
        c->refused = 0;
    }
    if (c->results.n) {
        tw_out_batch(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                     TW_CMD_RESULT, &c->results);
    }
    tw__persist_bypass(b, was);
}

tw_enc_t *
tw__outbox_item(tw_broker_t *b, tw_bclient_t *c, tw_batch_t *batch)
{
    if (batch->n >= TW__BATCH_ITEMS ||
        tw_enc_size(&batch->enc) >= TW__BATCH_BYTES) {
        s_flush_client(b, c);
    }
    tw_clients_mark(&b->clients, c);
    return tw_batch_item(batch);
}

void
tw__outbox_flush(tw_broker_t *b)
{
    tw__persist_flush(b);
    tw_clients_t *cs = &b->clients;
    for (size_t i = 0; i < cs->ndirty; i++) {
        tw_bclient_t *c = cs->dirty[i];
        c->dirty = 0;
        s_flush_client(b, c);
    }
    cs->ndirty = 0;
}

/* out.h's hold hook for messages to clients: a reply must not overtake
 * what the client is owed (PROTOCOL.md 6, ordering). */
static int
s_hold(void *arg, zmq_msg_t f[3])
{
    tw_broker_t *b = arg;
    if (!tw__persist_holding(b) || b->closing) {
        return 0;
    }
    int cmd = tw_out_cmd(f);
    if (cmd == TW_CMD_HEARTBEAT || cmd == TW_CMD_BYE) {
        return 0; /* liveness, not content */
    }
    tw_bclient_t *c = tw_clients_find(&b->clients, zmq_msg_data(&f[0]),
                                      zmq_msg_size(&f[0]));
    if (!c) {
        return 0;
    }
    if (c->acks.n || c->results.n) {
        /* This turn's items go first: in a batch if anything must wait,
         * else right now. */
        tw__persist_commit(b);
        if (c->acks.n || c->results.n) {
            tw__outbox_flush(b);
        }
    }
    return tw__persist_hold(b, c, f);
}

static void
s_on_prepare(uv_prepare_t *h)
{
    tw_broker_t *b = h->data;
    b->prepare_on = 0;
    uv_prepare_stop(h);
    tw__persist_commit(b);
    if (b->clients.ndirty) {
        /* Nothing to wait for (no store change, no batch in flight). */
        tw__outbox_flush(b);
    }
}

void
tw__outbox_start(tw_broker_t *b)
{
    if (!b->persist || b->prepare_init) {
        return; /* without a store nothing waits */
    }
    b->out.hold = s_hold;
    b->out.hold_arg = b;
    uv_prepare_init(b->loop, &b->prepare);
    b->prepare.data = b;
    b->prepare_init = 1;
}

static void
s_closed(uv_handle_t *h)
{
    (void)h;
}

void
tw__outbox_stop(tw_broker_t *b)
{
    if (b->prepare_init) {
        b->prepare_init = 0;
        b->prepare_on = 0;
        uv_close((uv_handle_t *)&b->prepare, s_closed);
    }
}

void
tw__outbox_turn_end(tw_broker_t *b)
{
    if (!b->prepare_init || b->closing) {
        tw__persist_commit(b);
        tw__outbox_flush(b);
        return;
    }
    if (!b->prepare_on) {
        b->prepare_on = 1;
        uv_prepare_start(&b->prepare, s_on_prepare);
    }
}
