/*  broker/cmd/on_station.c - STATION operations and reports, and S2N (see
 *  on_station.h).
 */
#include "broker/cmd/on_station.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/place.h"
#include "proto/ops.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* ---- events ----------------------------------------------------------- */


/* ---- placement -------------------------------------------------------- */




















/* ---- client operations ------------------------------------------------ */

static void
s_tags_copy(tw_station_t *st, const msgpack_object *tags)
{
    if (!tags || !tags->via.map.size) {
        return;
    }
    st->ntags = 2 * (size_t)tags->via.map.size;
    st->tags = tw_calloc(st->ntags, sizeof *st->tags);
    for (uint32_t i = 0; i < tags->via.map.size; i++) {
        const msgpack_object_kv *kv = &tags->via.map.ptr[i];
        st->tags[2 * i] = tw_strndup(kv->key.via.str.ptr,
                                     kv->key.via.str.size);
        st->tags[2 * i + 1] = tw_strndup(kv->val.via.str.ptr,
                                         kv->val.via.str.size);
    }
}

/* Write a station's summary (list) or detail (show) map. */
/* A string, or nil when absent. */
static void
s_str_or_nil(tw_enc_t *e, const char *s)
{
    if (s) {
        tw_enc_cstr(e, s);
    } else {
        tw_enc_nil(e);
    }
}

/* A number, or nil when `present` is 0. */
static void
s_uint_or_nil(tw_enc_t *e, uint64_t v, int present)
{
    if (present) {
        tw_enc_uint(e, v);
    } else {
        tw_enc_nil(e);
    }
}

static void
s_encode_station(tw_broker_t *b, tw_enc_t *e, const tw_station_t *st,
                 int detail)
{
    const tw_handler_t *h = &b->reg.handlers[st->handler];
    tw_enc_map(e, detail ? 21 : 8);
    tw_enc_cstr(e, "station");
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_cstr(e, "handler");
    tw_enc_str(e, h->name, h->name_len);
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, tw_sstate_name(st->state));
    tw_enc_cstr(e, "wanted");
    tw_enc_cstr(e, tw_swant_name(st->wanted));
    /* Worker and slot are nil while the station holds no slot. */
    int placed = tw_station_placed(st);
    tw_enc_cstr(e, "worker");
    s_uint_or_nil(e, st->worker, placed);
    tw_enc_cstr(e, "slot");
    s_uint_or_nil(e, st->slot, placed);
    tw_enc_cstr(e, "iterations");
    tw_enc_uint(e, st->iterations);
    tw_enc_cstr(e, "last_error");
    s_str_or_nil(e, st->last_error);
    if (!detail) {
        return;
    }
    tw_enc_cstr(e, "epoch");
    tw_enc_uint(e, st->epoch);
    tw_enc_cstr(e, "checkpoint");
    size_t len;
    const void *in = tw_station_input(st, &len);
    if (len) {
        /* The payload is one msgpack value: embed it as it is. */
        msgpack_sbuffer_write(&e->sb, in, len);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "next");
    tw_enc_cstr(e, tw_station_next_name(st->next));
    tw_enc_cstr(e, "interval_ms");
    tw_enc_uint(e, st->interval_ms);
    tw_enc_cstr(e, "timeout_ms");
    tw_enc_uint(e, st->timeout_ms);
    tw_enc_cstr(e, "placement");
    tw_enc_cstr(e, tw_station_placement_name(st->placement));
    tw_enc_cstr(e, "restart");
    tw_enc_cstr(e, tw_station_restart_name(st->restart));
    tw_enc_cstr(e, "restarts");
    tw_enc_uint(e, st->restarts);
    tw_enc_cstr(e, "reason");
    s_str_or_nil(e, tw_station_placed(st) ? NULL : st->reason);
    tw_enc_cstr(e, "n2s_queued");
    tw_enc_uint(e, st->n2s_len);
    tw_enc_cstr(e, "n2s_dropped");
    tw_enc_uint(e, st->n2s_dropped);
    tw_enc_cstr(e, "code");
    s_str_or_nil(e, st->code);
    tw_enc_cstr(e, "tags");
    tw_enc_map(e, st->ntags / 2);
    for (size_t i = 0; i + 1 < st->ntags; i += 2) {
        tw_enc_cstr(e, st->tags[i]);
        tw_enc_cstr(e, st->tags[i + 1]);
    }
}

/* The map {station, state, wanted[, worker, slot | reason]}. */
static void
s_encode_state(tw_enc_t *e, const tw_station_t *st)
{
    int placed = tw_station_placed(st);
    int reason = !placed && !tw_station_ended(st) && st->reason;
    tw_enc_map(e, 3 + 2 * placed + reason);
    tw_enc_cstr(e, "station");
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, tw_sstate_name(st->state));
    tw_enc_cstr(e, "wanted");
    tw_enc_cstr(e, tw_swant_name(st->wanted));
    if (placed) {
        tw_enc_cstr(e, "worker");
        tw_enc_uint(e, st->worker);
        tw_enc_cstr(e, "slot");
        tw_enc_uint(e, st->slot);
    }
    if (reason) {
        tw_enc_cstr(e, "reason");
        tw_enc_cstr(e, st->reason);
    }
}

/* REPLY {seq, data: <state map>}. */
static void
s_reply_state(tw_broker_t *b, tw_bclient_t *c, uint64_t seq,
              const tw_station_t *st)
{
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    s_encode_state(&e, st);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}



/* A station definition, read from a STATION add body or from one item of
 * an add with "items" (many stations in one request). */
typedef struct {
    const char *sid, *h, *next, *place, *restart, *code;
    size_t sl, hl, nl, pl, rl, cl;
    int nx; /* from an item's "nx", or -1 */
    const msgpack_object *args, *tags;
    uint64_t iv, to;
} s_def_t;

static void
s_def_body(const tw_msg_t *m, s_def_t *d)
{
    memset(d, 0, sizeof *d);
    d->sid = tw_msg_str(m, TW_F_SID, &d->sl);
    d->h = tw_msg_str(m, TW_F_HANDLER, &d->hl);
    d->next = tw_msg_str(m, TW_F_NEXT, &d->nl);
    d->place = tw_msg_str(m, TW_F_PLACEMENT, &d->pl);
    d->restart = tw_msg_str(m, TW_F_RESTART, &d->rl);
    d->code = tw_msg_str(m, TW_F_STCODE, &d->cl);
    d->nx = -1;
    d->args = m->f[TW_F_ARGS];
    d->tags = m->f[TW_F_TAGS];
    d->iv = tw_msg_uint(m, TW_F_INTERVAL, 0);
    d->to = tw_msg_uint(m, TW_F_TIMEOUT, 0);
}

static void
s_def_item(const tw_item_t *it, s_def_t *d)
{
    memset(d, 0, sizeof *d);
    d->sid = tw_item_str(it, TW_I_SID, &d->sl);
    d->h = tw_item_str(it, TW_I_H, &d->hl);
    d->place = tw_item_str(it, TW_I_PLACE, &d->pl);
    d->restart = tw_item_str(it, TW_I_RESTART, &d->rl);
    d->code = tw_item_str(it, TW_I_STCODE, &d->cl);
    d->nx = it->f[TW_I_NX] ? (int)tw_item_uint(it, TW_I_NX, 9) : -1;
    d->args = it->f[TW_I_A];
    d->tags = it->f[TW_I_TAGS];
    d->iv = tw_item_uint(it, TW_I_IV, 0);
    d->to = tw_item_uint(it, TW_I_TO, 0);
}

/* Create the station `d` describes and queue it for placement. Returns
 * it, or NULL with an error code in *code and the reason in `why`. */
static tw_station_t *
s_create(tw_broker_t *b, const s_def_t *d, int *code, char *why,
         size_t wlen)
{
    *code = TW_EINVAL;
    if (!d->sid || !d->sl || !d->h || !d->hl) {
        snprintf(why, wlen, "station add needs sid and handler");
        return NULL;
    }
    int hidx = tw_registry_handler(&b->reg, d->h, d->hl, 0);
    if (hidx < 0) {
        snprintf(why, wlen, "unknown handler '%.*s': no worker has offered "
                 "it", (int)d->hl, d->h);
        *code = TW_EHANDLER;
        return NULL;
    }
    int next = d->nx >= 0 ? d->nx : 1;
    int place = TW_PLACE_ANY, restart = TW_RESTART_NEVER;
    if ((d->next && (next = tw_station_parse_next(d->next, d->nl)) < 0) ||
        next > 2) {
        snprintf(why, wlen, "next must be same, result or handler");
        return NULL;
    }
    if (d->place &&
        (place = tw_station_parse_placement(d->place, d->pl)) < 0) {
        snprintf(why, wlen, "placement must be any, prefer or pinned");
        return NULL;
    }
    if (d->restart &&
        (restart = tw_station_parse_restart(d->restart, d->rl)) < 0) {
        snprintf(why, wlen, "restart must be never, on-failure or always");
        return NULL;
    }
    size_t alen = d->args ? d->args->via.bin.size : 0;
    if (alen > (uint64_t)b->cfg->max_payload) {
        snprintf(why, wlen, "station args exceed --max-payload");
        *code = TW_E2BIG;
        return NULL;
    }
    if (b->stations.len >= (uint64_t)b->cfg->max_stations) {
        snprintf(why, wlen, "too many stations: %zu held (--max-stations)",
                 b->stations.len);
        *code = TW_EFULL;
        return NULL;
    }
    tw_station_t *st = tw_stations_add(&b->stations, d->sid, d->sl,
                                       d->args ? d->args->via.bin.ptr : NULL,
                                       alen);
    if (!st) {
        snprintf(why, wlen, "station '%.*s' already exists", (int)d->sl,
                 d->sid);
        *code = TW_EEXIST;
        return NULL;
    }
    st->handler = (uint32_t)hidx;
    st->next = (uint8_t)next;
    st->placement = (tw_placement_t)place;
    st->restart = (uint8_t)restart;
    st->restart_base_ms = (uint32_t)b->cfg->restart_base;
    st->interval_ms = d->iv > UINT32_MAX ? UINT32_MAX : (uint32_t)d->iv;
    st->timeout_ms = d->to > UINT32_MAX ? UINT32_MAX : (uint32_t)d->to;
    if (d->code && d->cl) {
        st->code = tw_strndup(d->code, d->cl);
    }
    s_tags_copy(st, d->tags);
    tw__event_station(b, st, "added", NULL);
    tw__place_unplace(b, st);
    return st;
}


/* One operation: `st` is the station its sid names, NULL for the
 * operations that need none (add, list, rebalance). */
typedef void s_op_fn(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
                     uint64_t seq, tw_station_t *st);

/* add with "items": many stations in one request, placed in one pass.
 * The reply's data is an array with one entry per item, in order: the
 * station's state map, or {station, code, error} if it was refused. */
static void
s_add_many(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq)
{
    tw_station_t **made = tw_calloc(m->nitems ? m->nitems : 1,
                                    sizeof *made);
    int *codes = tw_calloc(m->nitems ? m->nitems : 1, sizeof *codes);
    for (size_t i = 0; i < m->nitems; i++) {
        char why[256];
        s_def_t d;
        s_def_item(&m->items[i], &d);
        made[i] = s_create(b, &d, &codes[i], why, sizeof why);
    }
    tw__place_pass(b);
    tw__place_explain(b, made, m->nitems);
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_array(&e, m->nitems);
    for (size_t i = 0; i < m->nitems; i++) {
        if (made[i]) {
            s_encode_state(&e, made[i]);
            continue;
        }
        size_t sl;
        const char *sid = tw_item_str(&m->items[i], TW_I_SID, &sl);
        tw_enc_map(&e, 3);
        tw_enc_cstr(&e, "station");
        tw_enc_str(&e, sid ? sid : "", sid ? sl : 0);
        tw_enc_cstr(&e, "code");
        tw_enc_int(&e, codes[i]);
        tw_enc_cstr(&e, "error");
        tw_enc_cstr(&e, tw_strerror(codes[i]));
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    tw_free(made);
    tw_free(codes);
}

static void
s_op_add(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
         tw_station_t *st)
{
    if (m->f[TW_F_ITEMS]) {
        s_add_many(b, c, m, seq);
        return;
    }
    char why[256];
    int code;
    s_def_t d;
    s_def_body(m, &d);
    st = s_create(b, &d, &code, why, sizeof why);
    if (!st) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, code, why);
        return;
    }
    /* Place it now if possible, so the reply can say where. */
    tw__place_pass(b);
    tw__place_explain(b, &st, 1);
    s_reply_state(b, c, seq, st);
}

static void
s_op_list(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
          tw_station_t *st)
{
    (void)m;
    (void)st;
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_array(&e, b->stations.len);
    for (size_t i = 0; i < b->stations.len; i++) {
        s_encode_station(b, &e, b->stations.all[i], 0);
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

/* Move stations off the busiest workers until the spread is at most one;
 * each moved station is released at its iteration boundary and placed
 * again (least loaded first) when its worker reports it released. */
static size_t
s_rebalance(tw_broker_t *b)
{
    size_t n = b->reg.len;
    if (n < 2) {
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += b->reg.list[i]->nstations;
    }
    size_t target = (total + n - 1) / n; /* ceil: at most this many */
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        tw_bworker_t *w = b->reg.list[i];
        size_t excess = w->nstations > target ? w->nstations - target : 0;
        for (size_t k = 0; excess && k < b->stations.len; k++) {
            tw_station_t *st = b->stations.all[k];
            if (tw_station_placed(st) && st->worker == w->id &&
                !st->moving && !st->removing) {
                st->moving = 1;
                tw__place_release(b, st);
                excess--;
                moved++;
            }
        }
    }
    return moved;
}

static void
s_op_rebalance(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
               uint64_t seq, tw_station_t *st)
{
    (void)m;
    (void)st;
    size_t moved = s_rebalance(b);
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "moved");
    tw_enc_uint(&e, moved);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

static void
s_op_show(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
          tw_station_t *st)
{
    (void)m;
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    s_encode_station(b, &e, st, 1);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

static void
s_op_pause(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
           tw_station_t *st)
{
    (void)m;
    st->wanted = TW_WANT_PAUSED;
    if (tw_station_placed(st)) {
        tw__place_control(b, st, "pause");
    }
    s_reply_state(b, c, seq, st);
}

static void
s_op_continue(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
              uint64_t seq, tw_station_t *st)
{
    (void)m;
    st->wanted = TW_WANT_RUN;
    if (tw_station_placed(st)) {
        tw__place_control(b, st, "continue");
    } else if (tw_station_ended(st)) {
        /* Continuing an ended station starts it again from its last
         * checkpoint. */
        st->burst = 0;
        st->restart_at_ms = 0;
        tw__place_pending(b, st, "continued");
        tw__place_pass(b);
    }
    s_reply_state(b, c, seq, st);
}

/* stop and cancel: the station ends after its current iteration, or now. */
static void
s_stop(tw_broker_t *b, tw_bclient_t *c, uint64_t seq, tw_station_t *st,
       int cancel)
{
    st->wanted = TW_WANT_STOPPED;
    if (tw_station_placed(st)) {
        tw__place_control(b, st, cancel ? "cancel" : "stop");
    } else if (!tw_station_ended(st)) {
        st->state = cancel ? TW_SS_CANCELLED : TW_SS_STOPPED;
        tw__event_station(b, st, tw_sstate_name(st->state),
                          "before placement");
    }
    s_reply_state(b, c, seq, st);
}

static void
s_op_stop(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
          tw_station_t *st)
{
    (void)m;
    s_stop(b, c, seq, st, 0);
}

static void
s_op_cancel(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
            uint64_t seq, tw_station_t *st)
{
    (void)m;
    s_stop(b, c, seq, st, 1);
}

static void
s_op_remove(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
            uint64_t seq, tw_station_t *st)
{
    (void)m;
    st->wanted = TW_WANT_STOPPED;
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "station");
    tw_enc_str(&e, st->sid, st->sid_len);
    tw_enc_cstr(&e, "state");
    tw_enc_cstr(&e, "removed");
    tw__event_station(b, st, "removed", NULL);
    if (tw_station_placed(st)) {
        /* Forget it once its worker confirms the release. */
        st->removing = 1;
        tw__place_release(b, st);
    } else {
        tw__place_forget(b, st);
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

static void
s_op_send(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq,
          tw_station_t *st)
{
    const msgpack_object *p = m->f[TW_F_PAYLOAD];
    char why[160];
    int code = 0;
    int queued = 0;
    uint64_t nseq = 0;
    if (!p) {
        code = TW_EINVAL;
        snprintf(why, sizeof why, "send needs a payload");
    } else if (p->via.bin.size > (uint64_t)b->cfg->max_payload) {
        code = TW_E2BIG;
        snprintf(why, sizeof why, "n2s payload exceeds --max-payload");
    } else if (!(nseq = tw__place_n2s_send(b, st, p->via.bin.ptr,
                                           p->via.bin.size, &queued))) {
        code = TW_EFULL;
        snprintf(why, sizeof why,
                 "n2s backlog of station '%s' is full (%zu messages)",
                 st->sid, b->stations.n2s_limit);
    }
    if (code) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, code, why);
        return;
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_map(&e, 3);
    tw_enc_cstr(&e, "station");
    tw_enc_str(&e, st->sid, st->sid_len);
    tw_enc_cstr(&e, "seq");
    tw_enc_uint(&e, nseq);
    tw_enc_cstr(&e, "queued");
    tw_enc_bool(&e, queued);
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

/* The operations by tw_op_t, from proto/ops.h. */
static s_op_fn *const s_ops[TW_OP__COUNT] = {
    TW_PROTO_STATION_OPS(TW_OP_S_FN)
};

void
tw__on_station_op(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol, sl;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    const char *sid = tw_msg_str(m, TW_F_SID, &sl);
    char why[256];
    if (!op || !seq) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, TW_EINVAL,
                           "STATION needs seq and op");
        return;
    }
    /* add makes the station its sid names; the others that need a sid
     * need the station to exist, and an unknown op is judged after that
     * (PROTOCOL.md 11.8). */
    tw_op_t o = tw_proto_op(TW_CMD_STATION, op, ol);
    if (o == TW_OP_STATION_ADD ||
        (o && !(tw_proto_op_needs(o) & TW_FB(SID)))) {
        s_ops[o](b, c, m, seq, NULL);
        return;
    }
    tw_station_t *st = sid ? tw_stations_get(&b->stations, sid, sl) : NULL;
    if (!st || !o) {
        if (!st) {
            snprintf(why, sizeof why, "no station '%.*s'", (int)sl,
                     sid ? sid : "");
        } else {
            snprintf(why, sizeof why, "unknown station op '%.*s'", (int)ol,
                     op);
        }
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq,
                           st ? TW_EINVAL : TW_ENOENT, why);
        return;
    }
    s_ops[o](b, c, m, seq, st);
}

/* ---- worker reports --------------------------------------------------- */

/* The station ended in `state` (it no longer holds its slot). */
static void
s_ended(tw_broker_t *b, tw_station_t *st, tw_sstate_t state,
        const char *err, size_t elen)
{
    tw__place_free_slot(b, st);
    if (st->removing) {
        /* Removed while its end was on the way: the RELEASE will be
         * ignored by the worker, so forget it now. */
        tw__place_forget(b, st);
        return;
    }
    if (err) {
        tw_free(st->last_error);
        st->last_error = tw_strndup(err, elen);
    }
    st->state = state;
    tw__event_station(b, st, tw_sstate_name(state),
            state == TW_SS_FAILED ? st->last_error : NULL);
    if ((state == TW_SS_FAILED || state == TW_SS_DONE) &&
        tw_station_should_restart(st, state, uv_now(b->loop))) {
        /* A failure may belong to the worker (a missing file, a broken
         * host): the restart goes to another candidate if one has room. */
        st->avoid = state == TW_SS_FAILED ? st->worker : 0;
        tw__place_pending(b, st, "restarting after backoff");
        tw__event_station(b, st, "restarting", NULL);
    }
}

/* The worker answered an ASSIGN with "refused": it does not offer the
 * station's handler (PROTOCOL.md 11.2). It stops counting as offering it,
 * for stations and tasks alike, until it registers again, so the broker
 * never sends it there twice; the station is placed again among the
 * workers that do offer it, or waits aside saying that none does. */
static void
s_refused(tw_broker_t *b, tw_bworker_t *w, tw_station_t *st, const char *err,
          size_t elen)
{
    const tw_handler_t *h = &b->reg.handlers[st->handler];
    tw_warn("station.refused", "worker %llu (%s) refused station %s: %.*s; "
            "it no longer counts as offering '%s'",
            (unsigned long long)w->id, w->name, st->sid,
            (int)(elen > 200 ? 200 : elen), err ? err : "",
            h->name);
    tw_registry_drop_handler(&b->reg, w, st->handler);
    tw__place_free_slot(b, st);
    if (st->removing) {
        tw__place_forget(b, st);
    } else if (st->wanted == TW_WANT_STOPPED) {
        st->state = TW_SS_STOPPED;
        tw__event_station(b, st, "stopped", "refused by its worker");
    } else {
        tw__place_pending(b, st, "refused by its worker: it does not offer "
                              "the handler");
        tw__event_station(b, st, "pending", st->reason);
    }
}

/* A placed station reported released: placed again, unless it was
 * being removed or stopped. */
static void
s_released(tw_broker_t *b, tw_bworker_t *w, tw_station_t *st)
{
    tw__place_free_slot(b, st);
    if (st->removing) {
        tw__place_forget(b, st);
    } else if (st->wanted == TW_WANT_STOPPED) {
        st->state = TW_SS_STOPPED;
        tw__event_station(b, st, "stopped", "released");
    } else {
        if (!st->moving) {
            /* Released unasked: the worker is draining (S29), so it
             * takes no new station. */
            w->draining = 1;
            tw__place_workers_changed(b);
        }
        tw__place_pending(b, st, "released by its worker");
        tw__event_station(b, st, "pending", st->reason);
    }
}

/* Act on event `ev` (el bytes) of a report item for station `st`.
 * Returns 0, or -1 for an event this broker does not know. */
static int
s_report_ev(tw_broker_t *b, tw_bworker_t *w, tw_station_t *st,
            const char *ev, size_t el, const char *err, size_t errl)
{
#define S_EV(name) (el == sizeof(name) - 1 && memcmp(ev, name, el) == 0)
    if (S_EV("iteration")) {
        return 0;
    }
    if (S_EV("running")) {
        st->state = TW_SS_RUNNING;
        tw__event_station(b, st, "running", NULL);
        tw__place_n2s_flush(b, st);
    } else if (S_EV("paused")) {
        st->state = TW_SS_PAUSED;
        tw__event_station(b, st, "paused", NULL);
    } else if (S_EV("stopped")) {
        s_ended(b, st, TW_SS_STOPPED, NULL, 0);
    } else if (S_EV("done")) {
        s_ended(b, st, TW_SS_DONE, NULL, 0);
    } else if (S_EV("cancelled")) {
        s_ended(b, st, TW_SS_CANCELLED, NULL, 0);
    } else if (S_EV("failed")) {
        s_ended(b, st, TW_SS_FAILED, err ? err : "failed", err ? errl : 6);
    } else if (S_EV("refused")) {
        s_refused(b, w, st, err, errl);
    } else if (S_EV("released")) {
        s_released(b, w, st);
    } else {
        return -1;
    }
    return 0;
#undef S_EV
}

void
tw__on_station_report(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        size_t sl, el, errl;
        const char *sid = tw_item_str(it, TW_I_SID, &sl);
        const char *ev = tw_item_str(it, TW_I_EV, &el);
        const char *err = tw_item_str(it, TW_I_ERR, &errl);
        tw_station_t *st = tw_stations_get(&b->stations, sid, sl);
        if (!ev || !st || !tw_station_placed(st) || st->worker != w->id ||
            tw_item_uint(it, TW_I_EP, 0) != st->epoch) {
            b->st.stale++;
            continue;
        }
        uint64_t iters = tw_item_uint(it, TW_I_IT, st->iterations);
        if (iters > st->iterations) {
            b->st.iterations += iters - st->iterations;
            st->iterations = iters;
        }
        size_t cl;
        const void *ck = tw_item_bin(it, TW_I_CK, &cl);
        if (ck && cl) {
            tw_station_set_checkpoint(st, ck, cl);
        }
        if (s_report_ev(b, w, st, ev, el, err, errl) != 0) {
            b->st.stale++;
        }
    }
    /* Credit for freed slots travels in the same message. */
    uint64_t credit = tw_msg_uint(m, TW_F_CREDIT, 0);
    if (credit) {
        tw_bworker_add_credit(w, credit);
        b->place_wanted = 1;
    }
}

void
tw__on_s2n(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        size_t sl, dl;
        const char *sid = tw_item_str(it, TW_I_SID, &sl);
        const void *d = tw_item_bin(it, TW_I_D, &dl);
        tw_station_t *st = tw_stations_get(&b->stations, sid, sl);
        if (!st || st->worker != w->id ||
            tw_item_uint(it, TW_I_EP, 0) != st->epoch) {
            b->st.stale++;
            continue;
        }
        b->st.s2n++;
        char topic[TW_PROTO_MAX_NAME + 8];
        snprintf(topic, sizeof topic, "s2n.%s", st->sid);
        if (!tw_status_wants(&b->status, topic)) {
            continue;
        }
        tw_enc_t e;
        tw_enc_init(&e);
        tw_status_begin(&b->status, &e, 3);
        tw_enc_cstr(&e, "station");
        tw_enc_str(&e, st->sid, st->sid_len);
        tw_enc_cstr(&e, "seq");
        tw_enc_uint(&e, tw_item_uint(it, TW_I_SEQ, 0));
        tw_enc_cstr(&e, "data");
        if (dl) {
            msgpack_sbuffer_write(&e.sb, d, dl);
        } else {
            tw_enc_nil(&e);
        }
        tw_status_send(&b->status, topic, &e);
        tw_enc_free(&e);
    }
}
