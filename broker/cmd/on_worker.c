/*  broker/cmd/on_worker.c - HELLO, READY, BYE and WORKER (see
 *  on_worker.h).
 */
#include "broker/cmd/on_worker.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/flow.h"
#include "broker/core/lease.h"
#include "broker/core/place.h"
#include "broker/core/view.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

/* ---- joining and leaving ----------------------------------------------- */

void
tw__on_worker_lost(tw_broker_t *b, tw_bworker_t *w, const char *reason)
{
    size_t requeued = 0, lost = 0;
    tw_task_t *t;
    while ((t = w->inflight.head)) {
        int st = tw__flow_orphan(b, t);
        lost += st == TW_ST_LOST;
        requeued += st == TW_ST_PENDING;
    }
    tw__place_orphan(b, w);
    tw_notice("worker.down",
              "worker %llu (%s) left: %s; %zu tasks requeued, %zu lost",
              (unsigned long long)w->id, w->name ? w->name : "?", reason,
              requeued, lost);
    tw__event_worker(b, "worker.down", w, reason, 0, 0);
    tw_registry_remove(&b->reg, w);
    tw__place_workers_changed(b);
}

static void
s_worker_up(tw_broker_t *b, tw_bworker_t *w)
{
    tw_notice("worker.up", "worker %llu (%s on %s, pid %llu) joined with %u "
              "slots", (unsigned long long)w->id, w->name, w->host,
              (unsigned long long)w->pid, w->slots);
    tw__event_worker(b, "worker.up", w, "hello", 0, 0);
}

void
tw__on_hello(tw_broker_t *b, const void *ident, size_t ilen,
             const tw_msg_t *m)
{
    tw_bworker_t *old = tw_registry_by_ident(&b->reg, ident, ilen);
    if (old) {
        /* What it re-announces stays running (lease.c). */
        tw__lease_detach(b, old, m);
        tw__on_worker_lost(b, old, "said HELLO again");
    }
    tw_bworker_t *w = tw_registry_add(&b->reg, ident, ilen, uv_now(b->loop));
    size_t len;
    const char *s = tw_msg_str(m, TW_F_NAME, &len);
    w->name = tw_strndup(s, len);
    s = tw_msg_str(m, TW_F_HOST, &len);
    w->host = s ? tw_strndup(s, len) : tw_strdup("");
    w->pid = tw_msg_uint(m, TW_F_PID, 0);
    uint64_t slots = tw_msg_uint(m, TW_F_SLOTS, 0);
    w->slots = slots > TW_CREDIT_MAX ? TW_CREDIT_MAX : (uint32_t)slots;
    const msgpack_object *hs = m->f[TW_F_HANDLERS];
    uint32_t nh = hs->via.array.size;
    uint32_t *idx = tw_malloc((nh ? nh : 1) * sizeof *idx);
    for (uint32_t i = 0; i < nh; i++) {
        const msgpack_object *o = &hs->via.array.ptr[i];
        idx[i] = (uint32_t)tw_registry_handler(&b->reg, o->via.str.ptr,
                                               o->via.str.size, 1);
    }
    tw_registry_set_handlers(&b->reg, w, idx, nh);
    tw_free(idx);
    const msgpack_object *tags = m->f[TW_F_TAGS];
    if (tags && tags->via.map.size) {
        w->ntags = 2 * (size_t)tags->via.map.size;
        w->tags = tw_calloc(w->ntags, sizeof *w->tags);
        for (uint32_t i = 0; i < tags->via.map.size; i++) {
            const msgpack_object_kv *kv = &tags->via.map.ptr[i];
            w->tags[2 * i] = tw_strndup(kv->key.via.str.ptr,
                                        kv->key.via.str.size);
            w->tags[2 * i + 1] = tw_strndup(kv->val.via.str.ptr,
                                            kv->val.via.str.size);
        }
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, b->pair ? 4 : 3);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, w->id);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, (uint64_t)b->cfg->heartbeat);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, b->boot);
    if (b->pair) {
        tw_enc_key(&e, TW_F_HA);
        tw_enc_uint(&e, tw_pair_epoch(b->pair));
    }
    tw_out_send(&b->out, TW_OUT_BACK, ident, ilen, TW_CMD_WELCOME, &e);
    tw_enc_free(&e);
    tw__lease_adopt(b, w, m);
    s_worker_up(b, w);
    tw__place_workers_changed(b);
}

void
tw__on_ready(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    uint64_t n = tw_msg_uint(m, TW_F_CREDIT, 0);
    tw_bworker_add_credit(w, n);
    b->place_wanted |= n > 0 && b->nunplaced > 0;
}

/* ---- scaling ------------------------------------------------------------ */

/* Send WORKER {op, slots?} to worker `w`. */
static void
s_tell(tw_broker_t *b, tw_bworker_t *w, const char *op, uint64_t slots)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, slots ? 2 : 1);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, op);
    if (slots) {
        tw_enc_key(&e, TW_F_SLOTS);
        tw_enc_uint(&e, slots);
    }
    w->last_send_ms = uv_now(b->loop);
    tw_out_send(&b->out, TW_OUT_BACK, w->ident, w->ident_len, TW_CMD_WORKER,
                &e);
    tw_enc_free(&e);
}

static void
s_drain(tw_broker_t *b, tw_bworker_t *w)
{
    if (w->leaving) {
        return; /* asked twice: the first drain is under way */
    }
    w->leaving = 1;
    w->draining = 1; /* no station is placed on it any more */
    tw__place_workers_changed(b);
    tw_notice("worker.draining",
              "worker %llu (%s) draining on request: %zu task(s) running, "
              "%u station(s) to move", (unsigned long long)w->id, w->name,
              w->inflight.len, w->nstations);
    s_tell(b, w, "drain", 0);
    tw__event_worker(b, "worker.draining", w, "requested", 0, 0);
}

/* Mark the station slots of `w` from the stations actually placed on it,
 * for its new slot count. */
static void
s_slots_rebuild(tw_broker_t *b, tw_bworker_t *w)
{
    tw_free(w->slot_used);
    w->slot_used = tw_calloc(w->slots ? w->slots : 1, 1);
    w->slot_hint = 0;
    for (size_t i = 0; i < b->stations.len; i++) {
        const tw_station_t *st = b->stations.all[i];
        if (tw_station_placed(st) && st->worker == w->id &&
            st->slot < w->slots) {
            w->slot_used[st->slot] = 1;
        }
    }
}

static void
s_resize(tw_broker_t *b, tw_bworker_t *w, uint32_t slots)
{
    uint32_t from = w->slots;
    w->slots = slots;
    /* Stations on slots that go away move first: each is released and
     * placed again (elsewhere, or here once there is room). */
    size_t moved = slots < from ? tw__place_move_off(b, w, slots)
                                : 0;
    s_slots_rebuild(b, w);
    /* Until the worker answers, its credit is unknown: it gets nothing. */
    w->resizing++;
    w->credit = 0;
    tw__place_workers_changed(b);
    tw_notice("worker.resizing",
              "worker %llu (%s) resized from %u to %u slots on request; "
              "%zu station(s) moved, %zu task(s) running",
              (unsigned long long)w->id, w->name, from, slots, moved,
              w->inflight.len);
    s_tell(b, w, "resize", slots);
    tw__event_worker(b, "worker.resizing", w, "requested", from, 1);
}

/* One operation on worker `w`: a client's drain or resize (`m` is the
 * request, checked), or the worker's own resized report. */
typedef void s_op_fn(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m);

static void
s_op_drain(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    (void)m;
    s_drain(b, w);
}

static void
s_op_resize(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    s_resize(b, w, (uint32_t)tw_msg_uint(m, TW_F_SLOTS, 0));
}

static void
s_op_resized(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    uint64_t slots = tw_msg_uint(m, TW_F_SLOTS, w->slots);
    uint64_t credit = tw_msg_uint(m, TW_F_CREDIT, 0);
    w->resizing--;
    /* The answer is the worker's free capacity after every message it
     * had before the request: it replaces whatever credit came since. */
    w->credit = credit > w->slots ? w->slots : credit;
    tw__place_workers_changed(b); /* eligible again once resized */
    tw_notice("worker.resized", "worker %llu (%s) now has %llu slots, %llu "
              "free", (unsigned long long)w->id, w->name,
              (unsigned long long)slots, (unsigned long long)w->credit);
    tw__event_worker(b, "worker.resized", w, NULL, 0, 0);
}

/* The operations by tw_op_t, from proto/ops.h. */
static s_op_fn *const s_ops[TW_OP__COUNT] = {
    TW_PROTO_WORKER_OPS(TW_OP_S_FN)
};

/* 1 if `w` is selected by the request's wid or name. */
static int
s_selected(const tw_bworker_t *w, uint64_t wid, const char *name,
           size_t nlen)
{
    if (wid) {
        return w->id == wid;
    }
    return w->name && strlen(w->name) == nlen &&
           memcmp(w->name, name, nlen) == 0;
}

/* Check a client's WORKER request: 0 and its op in *op, or an error code
 * with the reason in `why`. Nothing changes. */
static int
s_check(tw_broker_t *b, const tw_msg_t *m, tw_op_t *op, char *why,
        size_t wlen)
{
    size_t ol, nl = 0;
    const char *ops = tw_msg_str(m, TW_F_OP, &ol);
    const char *name = tw_msg_str(m, TW_F_NAME, &nl);
    uint64_t wid = tw_msg_uint(m, TW_F_WID, 0);
    *op = tw_proto_op(TW_CMD_WORKER, ops, ol);
    if (!*op || !(tw_proto_op_dirs(*op) & TW_C2B)) {
        snprintf(why, wlen, "unknown worker op '%.*s' (try drain or "
                 "resize)", (int)ol, ops);
        return TW_EINVAL;
    }
    if (!wid && (!name || !nl)) {
        snprintf(why, wlen, "WORKER needs a worker name or wid");
        return TW_EINVAL;
    }
    uint64_t slots = tw_msg_uint(m, TW_F_SLOTS, 0);
    if ((tw_proto_op_needs(*op) & TW_FB(SLOTS)) &&
        (slots < 1 || slots > TW_SCALE_MAX_SLOTS)) {
        snprintf(why, wlen, "resize needs slots between 1 and %u",
                 TW_SCALE_MAX_SLOTS);
        return TW_EINVAL;
    }
    size_t n = 0, leaving = 0;
    for (size_t i = 0; i < b->reg.len; i++) {
        const tw_bworker_t *w = b->reg.list[i];
        if (s_selected(w, wid, name, nl)) {
            n++;
            leaving += w->leaving;
        }
    }
    if (n == 0 && wid) {
        snprintf(why, wlen, "no worker with id %llu",
                 (unsigned long long)wid);
    } else if (n == 0) {
        snprintf(why, wlen, "no worker named '%.*s'", (int)nl, name);
    } else if (*op == TW_OP_WORKER_RESIZE && leaving) {
        snprintf(why, wlen, "cannot resize a draining worker");
        return TW_ESTATE;
    }
    return n ? 0 : TW_ENOENT;
}

void
tw__on_worker_op(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    char why[256];
    tw_op_t op;
    int rc = seq ? s_check(b, m, &op, why, sizeof why) : TW_EINVAL;
    if (rc != 0) {
        tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, rc,
                           seq ? why : "WORKER needs a seq");
        return;
    }
    size_t nl = 0, n = 0;
    const char *name = tw_msg_str(m, TW_F_NAME, &nl);
    uint64_t wid = tw_msg_uint(m, TW_F_WID, 0);
    for (size_t i = 0; i < b->reg.len; i++) {
        n += s_selected(b->reg.list[i], wid, name, nl);
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "op");
    tw_enc_cstr(&e, tw_proto_op_name(op));
    tw_enc_cstr(&e, "workers");
    tw_enc_array(&e, n);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw_bworker_t *w = b->reg.list[i];
        if (s_selected(w, wid, name, nl)) {
            s_ops[op](b, w, m);
            tw__view_worker(b, &e, w);
        }
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

void
tw__on_worker_report(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    size_t ol;
    const char *ops = tw_msg_str(m, TW_F_OP, &ol);
    tw_op_t op = tw_proto_op(TW_CMD_WORKER, ops, ol);
    if (!(tw_proto_op_dirs(op) & TW_W2B) || !w->resizing) {
        b->st.stale++;
        tw_debug("worker.report", "WORKER '%.*s' from worker %llu ignored",
                 (int)ol, ops, (unsigned long long)w->id);
        return;
    }
    s_ops[op](b, w, m);
}

void
tw__on_bye(tw_broker_t *b, tw_bworker_t *w)
{
    if (!w->leaving) {
        tw__on_worker_lost(b, w, "said BYE");
        return;
    }
    tw_notice("worker.drained", "worker %llu (%s) drained and left",
              (unsigned long long)w->id, w->name);
    tw__event_worker(b, "worker.drained", w, "drained", 0, 0);
    tw__on_worker_lost(b, w, "drained");
}
