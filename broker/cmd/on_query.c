/*  broker/cmd/on_query.c - QUERY and a client's ping (see on_query.h). */
#include "broker/cmd/on_query.h"
#include "broker/core/core.h"
#include "broker/core/recs.h"
#include "broker/core/snapshot.h"
#include "broker/core/view.h"
#include "common/error.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

/* One "what": writes the REPLY's data into `e` and returns 0, or returns
 * an error code with the reason in `why` (`e` is then discarded). */
typedef int s_op_fn(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e,
                    char *why, size_t wlen);

static int
s_op_status(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
            size_t wlen)
{
    (void)m, (void)why, (void)wlen;
    tw__view_status(b, e, 0);
    return 0;
}

static int
s_op_snapshot(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
              size_t wlen)
{
    (void)m, (void)why, (void)wlen;
    tw__snapshot(b, e);
    return 0;
}

static int
s_op_workers(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
             size_t wlen)
{
    (void)m, (void)why, (void)wlen;
    tw_enc_array(e, b->reg.len);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw__view_worker(b, e, b->reg.list[i]);
    }
    return 0;
}

/* A page of task records (PROTOCOL.md 16.3). */
static int
s_op_tasks(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
           size_t wlen)
{
    tw_tfilter_t f;
    int rc = tw__recs_filter_msg(b, m, &f, 50, TW_TFILTER_MAX_PAGE, why,
                                 wlen);
    if (rc == 0) {
        tw__recs_page(b, e, &f);
    }
    return rc;
}

/* Whole records by id (16.4). */
static int
s_op_task(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
          size_t wlen)
{
    const msgpack_object *ids = m->f[TW_F_IDS];
    uint32_t n = ids ? ids->via.array.size : 0;
    if (n == 0 || n > TW__RECS_MAX_SHOW) {
        snprintf(why, wlen, "ids: give 1 to %d task ids", TW__RECS_MAX_SHOW);
        return TW_EINVAL;
    }
    tw_enc_array(e, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        const tw_task_t *t = tw_tasks_get(&b->tasks, id);
        if (t) {
            tw__recs_detail(b, e, t, 0);
            continue;
        }
        tw_enc_map(e, 2);
        tw_enc_cstr(e, "id");
        tw_enc_uint(e, id);
        tw_enc_cstr(e, "state");
        tw_enc_cstr(e, "unknown");
    }
    return 0;
}

/* Read-only lists (16.6): pools, groups (of one pool, or at their
 * limit), queues. */
static int
s_op_pools(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
           size_t wlen)
{
    (void)m, (void)why, (void)wlen;
    tw__view_pools(b, e);
    return 0;
}

static int
s_op_groups(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
            size_t wlen)
{
    size_t pl, fl;
    const char *pool = tw_msg_str(m, TW_F_POOL, &pl);
    const char *full = tw_msg_str(m, TW_F_FULL, &fl);
    const tw_pool_t *only = NULL;
    if (pool) {
        only = tw_pools_get(&b->pools, pool, pl, 0);
        if (!only) {
            snprintf(why, wlen, "no pool '%.*s'", (int)pl, pool);
            return TW_ENOENT;
        }
    }
    int at_limit = full && fl == 5 && memcmp(full, "limit", 5) == 0;
    if (full && !at_limit) {
        snprintf(why, wlen, "full: only \"limit\" selects groups");
        return TW_EINVAL;
    }
    tw__view_groups(b, e, only, at_limit);
    return 0;
}

static int
s_op_queues(tw_broker_t *b, const tw_msg_t *m, tw_enc_t *e, char *why,
            size_t wlen)
{
    (void)m, (void)why, (void)wlen;
    tw__view_queues(b, e);
    return 0;
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
                     "unknown query '%.*s' (try status, workers, "
                     "snapshot, tasks, task, pools, groups or queues)",
                     (int)wl, what);
        return;
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    char why[256];
    int rc = s_ops[op](b, m, &e, why, sizeof why);
    if (rc != 0) {
        tw_enc_free(&e);
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, rc, why);
        return;
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

void
tw__on_ping(tw_broker_t *b, tw_bclient_t *c)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, b->out.ha ? 3 : 2);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, b->boot);
    tw_enc_key(&e, TW_F_PUB);
    tw_enc_cstr(&e, b->ep_pub);
    if (b->out.ha) {
        tw_enc_key(&e, TW_F_HA);
        tw_enc_uint(&e, b->out.ha);
    }
    tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                TW_CMD_HEARTBEAT, &e);
    tw_enc_free(&e);
}
