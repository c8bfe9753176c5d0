/*  broker/cmd/on_records.c - TASK retry and purge (see on_records.h). */
#include "broker/cmd/on_records.h"
#include "broker/core/core.h"
#include "broker/core/recs.h"
#include "common/alloc.h"
#include "common/error.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

/* The TASK ids of `m`, or those its filters select. Returns 0 and sets
 * *ids (malloc'ed), *n and *more, or an error with the reason in `why`. */
static int
s_targets(tw_broker_t *b, const tw_msg_t *m, tw_op_t op, uint64_t **ids,
          size_t *n, int *more, char *why, size_t wlen)
{
    const msgpack_object *arr = m->f[TW_F_IDS];
    int filtered = tw__recs_msg_has_filter(m);
    *more = 0;
    if (arr && filtered) {
        snprintf(why, wlen, "give ids or filters, not both");
        return TW_EINVAL;
    }
    if (arr) {
        uint32_t k = arr->via.array.size;
        if (k == 0 || k > TW_TFILTER_MAX_BULK) {
            snprintf(why, wlen, "ids: give 1 to %d task ids",
                     TW_TFILTER_MAX_BULK);
            return TW_EINVAL;
        }
        *ids = tw_malloc(k * sizeof **ids);
        for (uint32_t i = 0; i < k; i++) {
            (*ids)[i] = arr->via.array.ptr[i].via.u64;
        }
        *n = k;
        return 0;
    }
    if (!filtered) {
        snprintf(why, wlen, "give ids, or filters with a state");
        return TW_EINVAL;
    }
    tw_tfilter_t f;
    int rc = tw__recs_filter_msg(b, m, &f, 1000, TW_TFILTER_MAX_BULK, why,
                                 wlen);
    if (rc != 0) {
        return rc;
    }
    rc = tw__recs_bulk_check(&f, op == TW_OP_TASK_RETRY, why, wlen);
    if (rc == 0) {
        tw__recs_select(b, &f, ids, n, more);
    }
    return rc;
}

void
tw__on_task_op(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    tw_op_t op = tw_proto_msg_op(m);
    char why[256];
    if (!op) {
        size_t ol;
        const char *s = tw_msg_str(m, TW_F_OP, &ol);
        snprintf(why, sizeof why, "unknown task op '%.*s' (try retry or "
                 "purge)", (int)ol, s ? s : "");
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, TW_EINVAL,
                           why);
        return;
    }
    uint64_t *ids = NULL;
    size_t n = 0;
    int more = 0;
    int rc = s_targets(b, m, op, &ids, &n, &more, why, sizeof why);
    if (rc != 0) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, rc, why);
        return;
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw__recs_apply(b, op == TW_OP_TASK_RETRY, ids, n, more, &e);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    tw_free(ids);
}
