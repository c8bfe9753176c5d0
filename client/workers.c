/*  client/workers.c - drain and resize a running worker (WORKER, command
 *  23; proto/PROTOCOL.md 5.18).
 *
 *  One request, one REPLY whose data lists the workers it applied to, or
 *  an ERROR whose code is returned and whose message tw_client_last_error()
 *  keeps. The client checks only what it must to encode the request
 *  (string lengths); the broker judges the op, the selection and the slot
 *  count, so every refusal reads the same from any client. Same threading
 *  and ownership rules as the rest of libtaskwheel.
 */
#include "client/internal.h"
#include "common/error.h"
#include "proto/ops.h"

#include <string.h>

/* A tw__encode_fn for a tw_worker_req_t. */
static void
s_encode(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const tw_worker_req_t *r = arg;
    size_t n = 2 + (r->name != NULL) + (r->wid != 0) + (r->slots != 0);
    tw__enc_head(e, n, seq, r->op);
    tw__enc_opt_cstr(e, TW_F_NAME, r->name);
    tw__enc_opt_uint(e, TW_F_WID, r->wid);
    tw__enc_opt_uint(e, TW_F_SLOTS, r->slots);
}

int
tw_client_worker(tw_client_t *c, const tw_worker_req_t *req, int timeout_ms,
                 void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
    if (!c || !req || !req->op || (data && !len)) {
        return TW_EINVAL;
    }
    size_t ol = strnlen(req->op, 33);
    size_t nl = req->name ? strnlen(req->name, TW_PROTO_MAX_NAME + 1) : 0;
    if (ol == 0 || ol > 32 || nl > TW_PROTO_MAX_NAME) {
        return TW_EINVAL;
    }
    return tw__client_request(c, TW_CMD_WORKER, s_encode, req, timeout_ms,
                              data, len);
}

int
tw_client_worker_drain(tw_client_t *c, const char *name, int timeout_ms,
                       void **data, size_t *len)
{
    tw_worker_req_t req = {tw_proto_op_name(TW_OP_WORKER_DRAIN), name, 0, 0};
    return tw_client_worker(c, &req, timeout_ms, data, len);
}

int
tw_client_worker_resize(tw_client_t *c, const char *name, unsigned slots,
                        int timeout_ms, void **data, size_t *len)
{
    tw_worker_req_t req = {tw_proto_op_name(TW_OP_WORKER_RESIZE), name, 0,
                           slots};
    return tw_client_worker(c, &req, timeout_ms, data, len);
}
