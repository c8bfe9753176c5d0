/*  client/stations.c - many stations in one request.
 *
 *  tw_client_station() costs one round trip per station; a client that
 *  brings up thousands of stations (a fleet of receivers, a benchmark)
 *  sends them with tw_client_stations_add() instead: one STATION add whose
 *  "items" hold every definition, answered by one REPLY with an entry per
 *  item (PROTOCOL.md 11.8, "add, many at once"). The broker places them all
 *  in one pass. Same threading and ownership rules as the rest of
 *  libtaskwheel.
 */
#include "client/internal.h"
#include "common/error.h"
#include "proto/mpwalk.h"
#include "proto/ops.h"

#include <string.h>

typedef struct {
    const tw_station_req_t *reqs;
    size_t n;
} s_many_t;

static int
s_next_code(const char *next)
{
    if (!next) {
        return -1;
    }
    return !strcmp(next, "same") ? 0 : !strcmp(next, "result") ? 1
           : !strcmp(next, "handler") ? 2 : 3;
}

static void
s_item(tw_enc_t *e, const tw_station_req_t *r)
{
    int nx = s_next_code(r->next);
    size_t n = 2 + (r->args != NULL) + (nx >= 0) + (r->interval_ms > 0) +
               (r->timeout_ms > 0) + (r->code != NULL) + (r->ntags > 0) +
               (r->placement != NULL) + (r->restart != NULL);
    tw_enc_map(e, n);
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_cstr(e, r->sid);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, r->handler);
    if (r->args) {
        tw_enc_ikey(e, TW_I_A);
        tw_enc_bin(e, r->args, r->args_len);
    }
    if (nx >= 0) {
        tw_enc_ikey(e, TW_I_NX);
        tw_enc_uint(e, (uint64_t)nx);
    }
    if (r->interval_ms) {
        tw_enc_ikey(e, TW_I_IV);
        tw_enc_uint(e, r->interval_ms);
    }
    if (r->timeout_ms) {
        tw_enc_ikey(e, TW_I_TO);
        tw_enc_uint(e, r->timeout_ms);
    }
    if (r->code) {
        tw_enc_ikey(e, TW_I_STCODE);
        tw_enc_cstr(e, r->code);
    }
    if (r->ntags) {
        tw_enc_ikey(e, TW_I_TAGS);
        tw_enc_map(e, r->ntags);
        for (size_t i = 0; i < r->ntags; i++) {
            tw_enc_cstr(e, r->tags[i].key);
            tw_enc_cstr(e, r->tags[i].value ? r->tags[i].value : "");
        }
    }
    if (r->placement) {
        tw_enc_ikey(e, TW_I_PLACE);
        tw_enc_cstr(e, r->placement);
    }
    if (r->restart) {
        tw_enc_ikey(e, TW_I_RESTART);
        tw_enc_cstr(e, r->restart);
    }
}

static void
s_encode(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const s_many_t *m = arg;
    tw__enc_head(e, 3, seq, tw_proto_op_name(TW_OP_STATION_ADD));
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, m->n);
    for (size_t i = 0; i < m->n; i++) {
        s_item(e, &m->reqs[i]);
    }
}

static int
s_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= TW_PROTO_MAX_NAME;
}

static int
s_check(const tw_station_req_t *r, size_t *bytes)
{
    if (!s_name_ok(r->sid) || !s_name_ok(r->handler) ||
        s_next_code(r->next) > 2 || r->ntags > TW_PROTO_MAX_TAGS ||
        (r->code && strlen(r->code) > TW_PROTO_MAX_NAME) ||
        (r->args && !tw_mp_one(r->args, r->args_len, TW_MP_DEPTH_DECODE))) {
        return TW_EINVAL;
    }
    for (size_t i = 0; i < r->ntags; i++) {
        if (!s_name_ok(r->tags[i].key) ||
            (r->tags[i].value &&
             strlen(r->tags[i].value) > TW_PROTO_MAX_NAME)) {
            return TW_EINVAL;
        }
    }
    *bytes += r->args_len + 512;
    return 0;
}

int
tw_client_stations_add(tw_client_t *c, const tw_station_req_t *reqs,
                       size_t n, int timeout_ms, void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
    if ((data && !len) || !reqs || n == 0 || n > TW_PROTO_MAX_ITEMS) {
        return TW_EINVAL;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = s_check(&reqs[i], &bytes);
        if (rc != 0) {
            return rc;
        }
    }
    if (bytes > (16u << 20) - 4096) {
        return TW_E2BIG;
    }
    s_many_t m = {reqs, n};
    return tw__client_request(c, TW_CMD_STATION, s_encode, &m, timeout_ms,
                              data, len);
}
