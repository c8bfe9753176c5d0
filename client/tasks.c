/*  client/tasks.c - task records: list, show, retry, purge (QUERY tasks,
 *  QUERY task, TASK; proto/PROTOCOL.md 16).
 *
 *  Each call is one request answered by one REPLY or ERROR. The client
 *  checks only what it must to encode the request (lengths and counts);
 *  the broker judges the filters, so every client refuses the same
 *  things with the same words. Same threading and ownership rules as
 *  the rest of libtaskwheel.
 */
#include "client/internal.h"
#include "common/error.h"

#include <string.h>

typedef struct {
    const char *what; /* QUERY what, or NULL for TASK */
    const char *op;   /* TASK op */
    const tw_tasks_req_t *req;
} s_args_t;

/* The optional filter fields present in `r`. */
static size_t
s_count(const tw_tasks_req_t *r)
{
    return (r->state != NULL) + (r->handler != NULL) + (r->group != NULL) +
           (r->pool != NULL) + (r->text != NULL) + (r->since_ms != 0) +
           (r->limit != 0) + (r->cursor != NULL) + (r->nids != 0);
}

static void
s_encode(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const s_args_t *a = arg;
    const tw_tasks_req_t *r = a->req;
    if (a->what) {
        tw__enc_head(e, 2 + s_count(r), seq, NULL);
        tw_enc_key(e, TW_F_WHAT);
        tw_enc_cstr(e, a->what);
    } else {
        tw__enc_head(e, 2 + s_count(r), seq, a->op);
    }
    tw__enc_opt_cstr(e, TW_F_STATE, r->state);
    tw__enc_opt_cstr(e, TW_F_HANDLER, r->handler);
    tw__enc_opt_cstr(e, TW_F_GROUP, r->group);
    tw__enc_opt_cstr(e, TW_F_POOL, r->pool);
    tw__enc_opt_cstr(e, TW_F_TEXT, r->text);
    tw__enc_opt_uint(e, TW_F_SINCE, r->since_ms);
    if (r->limit) {
        tw_enc_key(e, TW_F_LIMIT);
        tw_enc_int(e, r->limit);
    }
    tw__enc_opt_cstr(e, TW_F_CURSOR, r->cursor);
    if (r->nids) {
        tw_enc_key(e, TW_F_IDS);
        tw_enc_array(e, r->nids);
        for (size_t i = 0; i < r->nids; i++) {
            tw_enc_uint(e, r->ids[i]);
        }
    }
}

/* 1 if `s` (or NULL) fits `max` bytes. */
static int
s_fits(const char *s, size_t max)
{
    return !s || strnlen(s, max + 1) <= max;
}

/* A refused call leaves no reply behind. */
static void
s_clear(void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
}

static int
s_request(tw_client_t *c, const s_args_t *a, int timeout_ms, void **data,
          size_t *len)
{
    const tw_tasks_req_t *r = a->req;
    s_clear(data, len);
    if (!c || !r || (data && !len) || !s_fits(r->state, 16) ||
        !s_fits(r->handler, TW_PROTO_MAX_NAME) ||
        !s_fits(r->group, TW_PROTO_MAX_NAME) ||
        !s_fits(r->pool, TW_PROTO_MAX_NAME) || !s_fits(r->text, 128) ||
        !s_fits(r->cursor, 64) || r->nids > TW_PROTO_MAX_ITEMS ||
        (r->nids && !r->ids)) {
        return TW_EINVAL;
    }
    return tw__client_request(c, a->what ? TW_CMD_QUERY : TW_CMD_TASK,
                              s_encode, a, timeout_ms, data, len);
}

int
tw_client_tasks_list(tw_client_t *c, const tw_tasks_req_t *req,
                     int timeout_ms, void **data, size_t *len)
{
    s_args_t a = {"tasks", NULL, req};
    return s_request(c, &a, timeout_ms, data, len);
}

int
tw_client_tasks_show(tw_client_t *c, const uint64_t *ids, size_t n,
                     int timeout_ms, void **data, size_t *len)
{
    if (n == 0 || n > 100 || !ids) {
        s_clear(data, len);
        return TW_EINVAL;
    }
    tw_tasks_req_t req = {0};
    req.ids = ids;
    req.nids = n;
    s_args_t a = {"task", NULL, &req};
    return s_request(c, &a, timeout_ms, data, len);
}

int
tw_client_tasks_retry(tw_client_t *c, const tw_tasks_req_t *req,
                      int timeout_ms, void **data, size_t *len)
{
    s_args_t a = {NULL, "retry", req};
    return s_request(c, &a, timeout_ms, data, len);
}

int
tw_client_tasks_purge(tw_client_t *c, const tw_tasks_req_t *req,
                      int timeout_ms, void **data, size_t *len)
{
    s_args_t a = {NULL, "purge", req};
    return s_request(c, &a, timeout_ms, data, len);
}
