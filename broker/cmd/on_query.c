/*  broker/cmd/on_query.c - QUERY and a client's ping (see on_query.h). */
#include "broker/cmd/on_query.h"
#include "broker/core/core.h"
#include "broker/core/snapshot.h"
#include "broker/core/view.h"
#include "common/error.h"
#include "proto/ops.h"

/* One "what": writes the REPLY's data into `e`. */
typedef void s_op_fn(tw_broker_t *b, tw_enc_t *e);

static void
s_op_status(tw_broker_t *b, tw_enc_t *e)
{
    tw__view_status(b, e, 0);
}

static void
s_op_snapshot(tw_broker_t *b, tw_enc_t *e)
{
    tw__snapshot(b, e);
}

static void
s_op_workers(tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_array(e, b->reg.len);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw__view_worker(b, e, b->reg.list[i]);
    }
}

/* The operations by tw_op_t, from proto/ops.h. */
static s_op_fn *const s_ops[TW_OP__COUNT] = {
    TW_PROTO_QUERY_OPS(TW_OP_S_FN)
};

void
tw__on_query(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    tw_op_t op = tw_proto_msg_op(m);
    if (!op) {
        size_t wl;
        const char *what = tw_msg_str(m, TW_F_WHAT, &wl);
        tw_out_error(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                     TW_EINVAL, seq,
                     "unknown query '%.*s' (try status, workers or "
                     "snapshot)",
                     (int)wl, what);
        return;
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    s_ops[op](b, &e);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

void
tw__on_ping(tw_broker_t *b, tw_bclient_t *c)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, b->boot);
    tw_enc_key(&e, TW_F_PUB);
    tw_enc_cstr(&e, b->ep_pub);
    tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                TW_CMD_HEARTBEAT, &e);
    tw_enc_free(&e);
}
