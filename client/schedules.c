/*  client/schedules.c - the SCHEDULE request (proto/PROTOCOL.md 18.11).
 *
 *  One request answered by one REPLY or ERROR. The client checks what it
 *  must to encode the request (lengths, the template's own checks shared
 *  with SUBMIT); the broker judges the name, the expression, the zone and
 *  the policies, so every client refuses the same things with the same
 *  words.
 */
#include "client/internal.h"
#include "common/error.h"

#include <string.h>

/* 1 if `s` (or NULL) fits `max` bytes. */
static int
s_fits(const char *s, size_t max)
{
    return !s || strnlen(s, max + 1) <= max;
}

static void
s_encode(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const tw_schedule_req_t *r = arg;
    int add = strcmp(r->op, "add") == 0;
    size_t n = 2 + (r->name != NULL) +
               (add ? (r->cron != NULL) + (r->tz != NULL) +
                          (r->overlap != NULL) + (r->catchup != NULL) +
                          (r->task != NULL)
                    : 0);
    tw__enc_head(e, n, seq, r->op);
    tw__enc_opt_cstr(e, TW_F_NAME, r->name);
    if (!add) {
        return;
    }
    tw__enc_opt_cstr(e, TW_F_CRON, r->cron);
    tw__enc_opt_cstr(e, TW_F_TZ, r->tz);
    tw__enc_opt_cstr(e, TW_F_OVERLAP, r->overlap);
    tw__enc_opt_cstr(e, TW_F_CATCHUP, r->catchup);
    if (r->task) {
        tw_enc_key(e, TW_F_ITEMS);
        tw_enc_array(e, 1);
        tw__enc_spec_item(e, r->task, NULL, 0);
    }
}

int
tw_client_schedule(tw_client_t *c, const tw_schedule_req_t *req,
                   int timeout_ms, void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
    if (!c || !req || !req->op || (data && !len) || !s_fits(req->op, 32) ||
        !*req->op || !s_fits(req->name, TW_PROTO_MAX_NAME) ||
        !s_fits(req->cron, 256) || !s_fits(req->tz, 128) ||
        !s_fits(req->overlap, 16) || !s_fits(req->catchup, 16)) {
        return TW_EINVAL;
    }
    if (req->task) {
        size_t hlen, alen, glen;
        if (!req->task->handler) {
            return TW_EINVAL;
        }
        int rc = tw__spec_check(req->task, &hlen, &alen, &glen);
        if (rc != 0) {
            return rc;
        }
    }
    return tw__client_request(c, TW_CMD_SCHEDULE, s_encode, req, timeout_ms,
                              data, len);
}
