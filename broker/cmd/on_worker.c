/*  broker/cmd/on_worker.c - drain and resize a running worker (see scale.h).
 *
 *  The broker never waits here: a request changes the worker's record
 *  (leaving, resizing, slots), queues what moves, sends one WORKER message
 *  to the worker and answers the client at once. What follows arrives as
 *  ordinary traffic: STATION "released" reports (dispatch_station.c places
 *  those stations again), DONE outcomes, the worker's WORKER "resized"
 *  answer and, for a drain, its BYE. Every step is logged once (logfmt)
 *  and published on the status socket (worker.draining, worker.drained,
 *  worker.resizing, worker.resized).
 */
#include "broker/cmd/on_worker.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

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
    tw__broker_send(b, &b->bzw, w->ident, w->ident_len, TW_CMD_WORKER, &e);
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
    tw__broker_workers_changed(b);
    tw_notice("worker.draining",
              "worker %llu (%s) draining on request: %zu task(s) running, "
              "%u station(s) to move", (unsigned long long)w->id, w->name,
              w->inflight.len, w->nstations);
    s_tell(b, w, "drain", 0);
    tw__broker_publish_worker(b, "worker.draining", w, "requested", 0, 0);
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
    size_t moved = slots < from ? tw__broker_stations_move_off(b, w, slots)
                                : 0;
    s_slots_rebuild(b, w);
    /* Until the worker answers, its credit is unknown: it gets nothing. */
    w->resizing++;
    w->credit = 0;
    tw__broker_workers_changed(b);
    tw_notice("worker.resizing",
              "worker %llu (%s) resized from %u to %u slots on request; "
              "%zu station(s) moved, %zu task(s) running",
              (unsigned long long)w->id, w->name, from, slots, moved,
              w->inflight.len);
    s_tell(b, w, "resize", slots);
    tw__broker_publish_worker(b, "worker.resizing", w, "requested", from, 1);
}

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

void
tw__broker_on_worker_op(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol, nl = 0;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    const char *name = tw_msg_str(m, TW_F_NAME, &nl);
    uint64_t wid = tw_msg_uint(m, TW_F_WID, 0);
    char why[256];
    if (!seq) {
        tw__broker_reply_error(b, c, seq, TW_EINVAL, "WORKER needs a seq");
        return;
    }
    int drain = ol == 5 && memcmp(op, "drain", 5) == 0;
    int resize = ol == 6 && memcmp(op, "resize", 6) == 0;
    if (!drain && !resize) {
        snprintf(why, sizeof why, "unknown worker op '%.*s' (try drain or "
                 "resize)", (int)ol, op);
        tw__broker_reply_error(b, c, seq, TW_EINVAL, why);
        return;
    }
    if (!wid && (!name || !nl)) {
        tw__broker_reply_error(b, c, seq, TW_EINVAL,
                               "WORKER needs a worker name or wid");
        return;
    }
    uint64_t slots = 0;
    if (resize) {
        slots = tw_msg_uint(m, TW_F_SLOTS, 0);
        if (slots < 1 || slots > TW_SCALE_MAX_SLOTS) {
            snprintf(why, sizeof why, "resize needs slots between 1 and %u",
                     TW_SCALE_MAX_SLOTS);
            tw__broker_reply_error(b, c, seq, TW_EINVAL, why);
            return;
        }
    }
    size_t n = 0, leaving = 0;
    for (size_t i = 0; i < b->reg.len; i++) {
        const tw_bworker_t *w = b->reg.list[i];
        if (s_selected(w, wid, name, nl)) {
            n++;
            leaving += w->leaving;
        }
    }
    if (n == 0) {
        if (wid) {
            snprintf(why, sizeof why, "no worker with id %llu",
                     (unsigned long long)wid);
        } else {
            snprintf(why, sizeof why, "no worker named '%.*s'", (int)nl,
                     name);
        }
        tw__broker_reply_error(b, c, seq, TW_ENOENT, why);
        return;
    }
    if (resize && leaving) {
        tw__broker_reply_error(b, c, seq, TW_ESTATE,
                               "cannot resize a draining worker");
        return;
    }
    tw_enc_t e;
    tw__broker_reply_begin(&e, seq);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "op");
    tw_enc_str(&e, op, ol);
    tw_enc_cstr(&e, "workers");
    tw_enc_array(&e, n);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw_bworker_t *w = b->reg.list[i];
        if (!s_selected(w, wid, name, nl)) {
            continue;
        }
        if (drain) {
            s_drain(b, w);
        } else {
            s_resize(b, w, (uint32_t)slots);
        }
        tw__broker_encode_worker(b, &e, w);
    }
    tw__broker_reply_send(b, c, &e);
}

void
tw__broker_on_worker_report(tw_broker_t *b, tw_bworker_t *w,
                            const tw_msg_t *m)
{
    size_t ol;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    if (ol != 7 || memcmp(op, "resized", 7) != 0 || !w->resizing) {
        b->st.stale++;
        tw_debug("worker.report", "WORKER '%.*s' from worker %llu ignored",
                 (int)ol, op, (unsigned long long)w->id);
        return;
    }
    uint64_t slots = tw_msg_uint(m, TW_F_SLOTS, w->slots);
    uint64_t credit = tw_msg_uint(m, TW_F_CREDIT, 0);
    w->resizing--;
    /* The answer is the worker's free capacity after every message it
     * had before the request: it replaces whatever credit came since. */
    w->credit = credit > w->slots ? w->slots : credit;
    tw__broker_workers_changed(b); /* eligible again once resized */
    tw_notice("worker.resized", "worker %llu (%s) now has %llu slots, %llu "
              "free", (unsigned long long)w->id, w->name,
              (unsigned long long)slots, (unsigned long long)w->credit);
    tw__broker_publish_worker(b, "worker.resized", w, NULL, 0, 0);
}

void
tw__broker_worker_bye(tw_broker_t *b, tw_bworker_t *w)
{
    if (!w->leaving) {
        tw__broker_drop_worker(b, w, "said BYE");
        return;
    }
    tw_notice("worker.drained", "worker %llu (%s) drained and left",
              (unsigned long long)w->id, w->name);
    tw__broker_publish_worker(b, "worker.drained", w, "drained", 0, 0);
    tw__broker_drop_worker(b, w, "drained");
}
