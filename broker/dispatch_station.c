/*  broker/dispatch_station.c - stations: operations, reports, placement.
 *
 *  Three sources of change meet here. Clients operate on stations (STATION
 *  with an "op": add, remove, pause, continue, stop, cancel, send, list,
 *  show, rebalance); workers report what their stations do (STATION items
 *  with an "ev", and S2N channel data); and the placement pass puts
 *  unplaced stations on workers with room, whenever something that could
 *  change the answer happened (a station added or unplaced, a worker
 *  joined, a slot freed). Like the rest of the broker, each handler only
 *  changes state and queues items in per-worker batches; the end of the
 *  loop turn sends them (ASSIGN, then N2S, then CONTROL, then RELEASE).
 */
#include "broker/internal.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* ---- events ----------------------------------------------------------- */

/* Publish station.<sid>.<event> with the station's position. */
static void
s_event(tw_broker_t *b, const tw_station_t *st, const char *event,
        const char *detail)
{
    char topic[TW_PROTO_MAX_NAME + 48];
    snprintf(topic, sizeof topic, "station.%s.%s", st->sid, event);
    if (!tw_status_wants(&b->status, topic)) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e, detail ? 7 : 6);
    tw_enc_cstr(&e, "station");
    tw_enc_str(&e, st->sid, st->sid_len);
    tw_enc_cstr(&e, "state");
    tw_enc_cstr(&e, tw_sstate_name(st->state));
    tw_enc_cstr(&e, "worker");
    tw_enc_uint(&e, tw_station_placed(st) ? st->worker : 0);
    tw_enc_cstr(&e, "slot");
    tw_enc_uint(&e, st->slot);
    tw_enc_cstr(&e, "epoch");
    tw_enc_uint(&e, st->epoch);
    tw_enc_cstr(&e, "iterations");
    tw_enc_uint(&e, st->iterations);
    if (detail) {
        tw_enc_cstr(&e, "reason");
        tw_enc_cstr(&e, detail);
    }
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

/* ---- placement -------------------------------------------------------- */

/* One more item in one of a worker's station batches; a batch that is
 * full is sent first, so no message exceeds the decoder's item limit. */
static tw_enc_t *
s_worker_item(tw_broker_t *b, tw_bworker_t *w, tw_batch_t *batch,
              tw_cmd_t cmd)
{
    if (batch->n >= TW__BATCH_ITEMS ||
        tw_enc_size(&batch->enc) >= TW__BATCH_BYTES) {
        w->last_send_ms = uv_now(b->loop);
        tw__broker_send_batch(b, &b->bzw, w->ident, w->ident_len, cmd,
                              batch);
    }
    return tw_batch_item(batch);
}

/* Queue a station for the next placement pass. One that was set aside
 * (stopped there, now pending again) comes back to be tried at once, so
 * its state and reason follow the new try as before. */
void
tw__broker_unplace(tw_broker_t *b, tw_station_t *st)
{
    b->place_wanted = 1;
    if (st->queued == TW_QUEUED_ASIDE) {
        tw_aside_take(&b->aside, st);
    }
    if (st->queued) {
        return;
    }
    st->queued = TW_QUEUED_TRY;
    if (b->nunplaced == b->capunplaced) {
        b->capunplaced = b->capunplaced ? b->capunplaced * 2 : 64;
        b->unplaced = tw_realloc(b->unplaced,
                                 b->capunplaced * sizeof *b->unplaced);
    }
    b->unplaced[b->nunplaced++] = st;
}

/* ops: forget the per-topic counters of a station's topics (tseq.h), so
 * removed stations do not grow the table; a station added again under the
 * same id counts from 1. */
static void
s_forget_topics(tw_broker_t *b, const tw_station_t *st)
{
    static const char *const events[] = {
        "added",   "assigned", "pending",   "waiting-for-host",
        "running", "paused",   "stopped",   "done",
        "failed",  "cancelled", "removed",  "restarting"};
    char topic[TW_PROTO_MAX_NAME + 48];
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        int n = snprintf(topic, sizeof topic, "station.%s.%s", st->sid,
                         events[i]);
        tw_tseq_forget(&b->status.tseq, topic, (size_t)n);
    }
    int n = snprintf(topic, sizeof topic, "s2n.%s", st->sid);
    tw_tseq_forget(&b->status.tseq, topic, (size_t)n);
}

/* Forget a station for good, taking it off the unplaced list first. */
static void
s_forget(tw_broker_t *b, tw_station_t *st)
{
    s_forget_topics(b, st);
    if (st->queued == TW_QUEUED_ASIDE) {
        tw_aside_take(&b->aside, st);
    } else if (st->queued) {
        for (size_t i = 0; i < b->nunplaced; i++) {
            if (b->unplaced[i] == st) {
                b->unplaced[i] = b->unplaced[--b->nunplaced];
                break;
            }
        }
    }
    tw_stations_remove(&b->stations, st);
}

/* Make a station PENDING and queue it for placement. */
static void
s_make_pending(tw_broker_t *b, tw_station_t *st, const char *reason)
{
    st->state = TW_SS_PENDING;
    st->reason = reason;
    st->worker = 0;
    st->moving = 0;
    tw__broker_unplace(b, st);
}

/* Free the slot a placed station holds on its worker (if the worker is
 * still known). */
static void
s_free_slot(tw_broker_t *b, tw_station_t *st)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
    if (w) {
        tw_registry_put_slot(w, st->slot);
        if (w->nstations) {
            w->nstations--;
        }
        b->place_wanted = 1;
    }
}

static void
s_n2s_item(tw_broker_t *b, tw_bworker_t *w, const tw_station_t *st,
           uint64_t seq, const void *d, size_t len)
{
    tw_enc_t *e = s_worker_item(b, w, &w->n2s, TW_CMD_N2S);
    tw_enc_map(e, 4);
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, st->epoch);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_ikey(e, TW_I_D);
    tw_enc_bin(e, d, len);
}

/* 1 if n2s messages can go straight to the station's worker. */
static int
s_n2s_deliverable(const tw_station_t *st)
{
    return (st->state == TW_SS_ASSIGNED || st->state == TW_SS_RUNNING) &&
           st->wanted == TW_WANT_RUN;
}

/* Send the queued n2s messages of a station that became deliverable. */
static void
s_n2s_flush(tw_broker_t *b, tw_station_t *st)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
    if (!w || !st->n2s_len || !s_n2s_deliverable(st)) {
        return;
    }
    for (size_t i = 0; i < st->n2s_len; i++) {
        s_n2s_item(b, w, st, st->n2s[i].seq, st->n2s[i].data, st->n2s[i].len);
    }
    b->st.n2s_sent += st->n2s_len;
    tw_station_n2s_clear(st);
}

static void
s_assign(tw_broker_t *b, tw_station_t *st, tw_bworker_t *w)
{
    st->epoch++;
    st->worker = w->id;
    st->avoid = 0;
    st->slot = tw_registry_take_slot(w);
    st->state = TW_SS_ASSIGNED;
    st->reason = NULL;
    w->nstations++;
    if (w->credit) {
        w->credit--;
    }
    const tw_handler_t *h = &b->reg.handlers[st->handler];
    static const unsigned char nil = 0xc0;
    tw_enc_t *e = s_worker_item(b, w, &w->assign, TW_CMD_ASSIGN);
    tw_enc_map(e, 6 + (st->timeout_ms > 0) + (st->ck != NULL) + 1 +
                      (st->wanted == TW_WANT_PAUSED));
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, st->epoch);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_str(e, h->name, h->name_len);
    tw_enc_ikey(e, TW_I_A);
    if (st->args_len) {
        tw_enc_bin(e, st->args, st->args_len);
    } else {
        tw_enc_bin(e, &nil, 1);
    }
    tw_enc_ikey(e, TW_I_NX);
    tw_enc_uint(e, st->next);
    tw_enc_ikey(e, TW_I_IV);
    tw_enc_uint(e, st->interval_ms);
    if (st->timeout_ms) {
        tw_enc_ikey(e, TW_I_TO);
        tw_enc_uint(e, st->timeout_ms);
    }
    if (st->ck) {
        tw_enc_ikey(e, TW_I_CK);
        tw_enc_bin(e, st->ck, st->ck_len);
    }
    tw_enc_ikey(e, TW_I_IT);
    tw_enc_uint(e, st->iterations);
    if (st->wanted == TW_WANT_PAUSED) {
        tw_enc_ikey(e, TW_I_PS);
        tw_enc_uint(e, 1);
    }
    tw_info("station.assign", "TASK %s ADDED TO %s (worker %llu, slot %u, "
            "epoch %llu)", st->sid, w->name, (unsigned long long)w->id,
            st->slot, (unsigned long long)st->epoch);
    s_event(b, st, "assigned", NULL);
    s_n2s_flush(b, st);
}

/* Fill the assignator's view of the workers. */
static size_t
s_snapshot(tw_broker_t *b, tw_assign_worker_t *ws)
{
    size_t room = 0;
    for (size_t i = 0; i < b->reg.len; i++) {
        const tw_bworker_t *w = b->reg.list[i];
        ws[i] = (tw_assign_worker_t){.id = w->id,
                                     .slots = w->slots,
                                     .stations = w->nstations,
                                     .credit = w->credit,
                                     .draining = w->draining ||
                                                 w->resizing,
                                     .tags = w->tags,
                                     .ntags = w->ntags,
                                     .handlers = w->handlers,
                                     .nhandlers = w->nhandlers};
        room += !ws[i].draining && w->nstations < w->slots && w->credit > 0;
    }
    return room;
}

static tw_assign_need_t
s_need(const tw_station_t *st)
{
    return (tw_assign_need_t){.placement = st->placement,
                              .code = st->code,
                              .tags = st->tags,
                              .ntags = st->ntags,
                              .has_handler = 1,
                              .handler = st->handler,
                              .avoid = st->avoid};
}

/* Try to place one station now. Returns the assignator's result. */
static tw_assign_result_t
s_try_place(tw_broker_t *b, tw_station_t *st, tw_assign_worker_t *ws)
{
    tw_assign_need_t need = s_need(st);
    size_t chosen;
    b->aside.tries++;
    tw_assign_result_t r = tw_assign_choose(ws, b->reg.len, &need, &chosen);
    if (r == TW_ASSIGN_OK) {
        s_assign(b, st, b->reg.list[chosen]);
        ws[chosen].stations++;
        if (ws[chosen].credit) {
            ws[chosen].credit--;
        }
        return r;
    }
    int was = st->state;
    st->state = r == TW_ASSIGN_WAIT_HOST ? TW_SS_WAITING_HOST : TW_SS_PENDING;
    st->reason = tw_assign_reason(r);
    if (was != st->state) {
        s_event(b, st, tw_sstate_name(st->state), st->reason);
    }
    return r;
}

void
tw__broker_workers_changed(tw_broker_t *b)
{
    tw_aside_changed(&b->aside);
    b->place_wanted = 1;
}

size_t
tw__broker_unplaced(const tw_broker_t *b)
{
    return b->nunplaced + b->aside.len;
}

/* The worker set changed since the set-aside stations were tried: put
 * them back on the list, behind the others, to be tried once more. */
static void
s_aside_return(tw_broker_t *b)
{
    if (!tw_aside_due(&b->aside)) {
        return;
    }
    size_t n;
    tw_station_t **list = tw_aside_release(&b->aside, &n);
    for (size_t i = 0; i < n; i++) {
        tw__broker_unplace(b, list[i]);
    }
}

void
tw__broker_place(tw_broker_t *b)
{
    if (!b->place_wanted) {
        return;
    }
    s_aside_return(b);
    if (!b->nunplaced) {
        b->place_wanted = 0;
        return;
    }
    b->place_wanted = 0;
    uint64_t now = uv_now(b->loop);
    tw_assign_worker_t *ws =
        tw_malloc((b->reg.len ? b->reg.len : 1) * sizeof *ws);
    size_t room = s_snapshot(b, ws);
    size_t keep = 0, i;
    for (i = 0; i < b->nunplaced && room; i++) {
        tw_station_t *st = b->unplaced[i];
        /* Entries go stale when a station was placed or ended since it
         * was queued. */
        if (st->state != TW_SS_PENDING && st->state != TW_SS_WAITING_HOST) {
            st->queued = TW_QUEUED_NO;
            continue;
        }
        if (st->restart_at_ms > now) {
            b->unplaced[keep++] = st;
            continue;
        }
        tw_assign_result_t r = s_try_place(b, st, ws);
        if (r == TW_ASSIGN_NO_MATCH || r == TW_ASSIGN_WAIT_HOST ||
            r == TW_ASSIGN_NO_HANDLER) {
            /* Nobody connected can take it (no match, or nobody offers
             * its handler): only a change of the worker set can, so
             * passes leave it alone until then. */
            st->queued = TW_QUEUED_NO;
            tw_aside_put(&b->aside, st);
            continue;
        }
        if (r != TW_ASSIGN_OK) {
            b->unplaced[keep++] = st;
            continue;
        }
        st->queued = TW_QUEUED_NO;
        room = 0;
        for (size_t k = 0; k < b->reg.len; k++) {
            room += !ws[k].draining && ws[k].stations < ws[k].slots &&
                    ws[k].credit > 0;
        }
    }
    /* Nobody has room left: the rest wait as they are, untouched, so a
     * pass costs nothing while the cluster is full. */
    if (keep != i) {
        memmove(&b->unplaced[keep], &b->unplaced[i],
                (b->nunplaced - i) * sizeof *b->unplaced);
    }
    b->nunplaced = keep + (b->nunplaced - i);
    tw_free(ws);
}

void
tw__broker_stations_orphan(tw_broker_t *b, tw_bworker_t *w)
{
    for (size_t i = 0; i < b->stations.len; i++) {
        tw_station_t *st = b->stations.all[i];
        if (!tw_station_placed(st) || st->worker != w->id) {
            continue;
        }
        if (st->removing) {
            s_forget(b, st);
            i--;
            continue;
        }
        if (st->wanted == TW_WANT_STOPPED) {
            /* A stop or cancel was on its way: the worker's loss ended
             * the station, it must not run again elsewhere. */
            st->state = TW_SS_STOPPED;
            st->moving = 0;
            s_event(b, st, "stopped", "its worker was lost");
            continue;
        }
        s_make_pending(b, st, "its worker was lost");
        s_event(b, st, "pending", st->reason);
    }
}

void
tw__broker_flush_workers(tw_broker_t *b)
{
    static const tw_cmd_t cmds[4] = {TW_CMD_ASSIGN, TW_CMD_N2S,
                                     TW_CMD_CONTROL, TW_CMD_RELEASE};
    for (size_t i = 0; i < b->reg.len; i++) {
        tw_bworker_t *w = b->reg.list[i];
        tw_batch_t *batches[4] = {&w->assign, &w->n2s, &w->control,
                                  &w->release};
        for (int k = 0; k < 4; k++) {
            if (batches[k]->n) {
                w->last_send_ms = uv_now(b->loop);
                tw__broker_send_batch(b, &b->bzw, w->ident, w->ident_len,
                                      cmds[k], batches[k]);
            }
        }
    }
}

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
    tw__broker_reply_begin(&e, seq);
    s_encode_state(&e, st);
    tw__broker_reply_send(b, c, &e);
}

/* Queue CONTROL {sid, ep, ev} for a placed station. */
static void
s_control(tw_broker_t *b, tw_station_t *st, const char *ev)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
    if (!w) {
        return;
    }
    tw_enc_t *e = s_worker_item(b, w, &w->control, TW_CMD_CONTROL);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, st->epoch);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, ev);
}

static void
s_release(tw_broker_t *b, tw_station_t *st)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
    if (!w) {
        return;
    }
    tw_enc_t *e = s_worker_item(b, w, &w->release, TW_CMD_RELEASE);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_SID);
    tw_enc_str(e, st->sid, st->sid_len);
    tw_enc_ikey(e, TW_I_EP);
    tw_enc_uint(e, st->epoch);
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
    s_event(b, st, "added", NULL);
    tw__broker_unplace(b, st);
    return st;
}

/* A new station the placement pass skipped (no worker had room at all)
 * still gets a reason: no free slot, or waiting for its host. */
static void
s_explain(tw_broker_t *b, tw_station_t *st, tw_assign_worker_t *ws)
{
    if (st->state == TW_SS_PENDING) {
        s_snapshot(b, ws);
        s_try_place(b, st, ws);
    }
}

static void
s_op_add(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m, uint64_t seq)
{
    char why[256];
    int code;
    s_def_t d;
    s_def_body(m, &d);
    tw_station_t *st = s_create(b, &d, &code, why, sizeof why);
    if (!st) {
        tw__broker_reply_error(b, c, seq, code, why);
        return;
    }
    /* Place it now if possible, so the reply can say where. */
    tw__broker_place(b);
    tw_assign_worker_t *ws =
        tw_malloc((b->reg.len ? b->reg.len : 1) * sizeof *ws);
    s_explain(b, st, ws);
    tw_free(ws);
    s_reply_state(b, c, seq, st);
}

/* add with "items": many stations in one request, placed in one pass.
 * The reply's data is an array with one entry per item, in order: the
 * station's state map, or {station, code, error} if it was refused. */
static void
s_op_add_many(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
              uint64_t seq)
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
    tw__broker_place(b);
    tw_assign_worker_t *ws =
        tw_malloc((b->reg.len ? b->reg.len : 1) * sizeof *ws);
    tw_enc_t e;
    tw__broker_reply_begin(&e, seq);
    tw_enc_array(&e, m->nitems);
    for (size_t i = 0; i < m->nitems; i++) {
        if (made[i]) {
            s_explain(b, made[i], ws);
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
    tw__broker_reply_send(b, c, &e);
    tw_free(ws);
    tw_free(made);
    tw_free(codes);
}

static void
s_op_list(tw_broker_t *b, tw_bclient_t *c, uint64_t seq)
{
    tw_enc_t e;
    tw__broker_reply_begin(&e, seq);
    tw_enc_array(&e, b->stations.len);
    for (size_t i = 0; i < b->stations.len; i++) {
        s_encode_station(b, &e, b->stations.all[i], 0);
    }
    tw__broker_reply_send(b, c, &e);
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
                s_release(b, st);
                excess--;
                moved++;
            }
        }
    }
    return moved;
}

size_t
tw__broker_stations_move_off(tw_broker_t *b, tw_bworker_t *w, uint32_t from)
{
    size_t moved = 0;
    for (size_t k = 0; k < b->stations.len; k++) {
        tw_station_t *st = b->stations.all[k];
        if (tw_station_placed(st) && st->worker == w->id &&
            st->slot >= from && !st->moving && !st->removing) {
            st->moving = 1;
            s_release(b, st);
            moved++;
        }
    }
    return moved;
}

void
tw__broker_on_station_op(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol, sl;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    const char *sid = tw_msg_str(m, TW_F_SID, &sl);
    if (!op || !seq) {
        tw__broker_reply_error(b, c, seq, TW_EINVAL, "STATION needs seq and op");
        return;
    }
#define S_OP(name) (ol == sizeof(name) - 1 && memcmp(op, name, ol) == 0)
    if (S_OP("add")) {
        if (m->f[TW_F_ITEMS]) {
            s_op_add_many(b, c, m, seq);
        } else {
            s_op_add(b, c, m, seq);
        }
        return;
    }
    if (S_OP("list")) {
        s_op_list(b, c, seq);
        return;
    }
    if (S_OP("rebalance")) {
        size_t moved = s_rebalance(b);
        tw_enc_t e;
        tw__broker_reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "moved");
        tw_enc_uint(&e, moved);
        tw__broker_reply_send(b, c, &e);
        return;
    }
    tw_station_t *st = sid ? tw_stations_get(&b->stations, sid, sl) : NULL;
    if (!st) {
        char why[256];
        snprintf(why, sizeof why, "no station '%.*s'", (int)sl,
                 sid ? sid : "");
        tw__broker_reply_error(b, c, seq, TW_ENOENT, why);
        return;
    }
    int placed = tw_station_placed(st);
    if (S_OP("show")) {
        tw_enc_t e;
        tw__broker_reply_begin(&e, seq);
        s_encode_station(b, &e, st, 1);
        tw__broker_reply_send(b, c, &e);
    } else if (S_OP("pause")) {
        st->wanted = TW_WANT_PAUSED;
        if (placed) {
            s_control(b, st, "pause");
        }
        s_reply_state(b, c, seq, st);
    } else if (S_OP("continue")) {
        st->wanted = TW_WANT_RUN;
        if (placed) {
            s_control(b, st, "continue");
        } else if (tw_station_ended(st)) {
            /* Continuing an ended station starts it again from its
             * last checkpoint. */
            st->burst = 0;
            st->restart_at_ms = 0;
            s_make_pending(b, st, "continued");
            tw__broker_place(b);
        }
        s_reply_state(b, c, seq, st);
    } else if (S_OP("stop") || S_OP("cancel")) {
        int cancel = S_OP("cancel");
        st->wanted = TW_WANT_STOPPED;
        if (placed) {
            s_control(b, st, cancel ? "cancel" : "stop");
        } else if (!tw_station_ended(st)) {
            st->state = cancel ? TW_SS_CANCELLED : TW_SS_STOPPED;
            s_event(b, st, tw_sstate_name(st->state), "before placement");
        }
        s_reply_state(b, c, seq, st);
    } else if (S_OP("remove")) {
        st->wanted = TW_WANT_STOPPED;
        tw_enc_t e;
        tw__broker_reply_begin(&e, seq);
        tw_enc_map(&e, 2);
        tw_enc_cstr(&e, "station");
        tw_enc_str(&e, st->sid, st->sid_len);
        tw_enc_cstr(&e, "state");
        tw_enc_cstr(&e, "removed");
        s_event(b, st, "removed", NULL);
        if (placed) {
            /* Forget it once its worker confirms the release. */
            st->removing = 1;
            s_release(b, st);
        } else {
            s_forget(b, st);
        }
        tw__broker_reply_send(b, c, &e);
    } else if (S_OP("send")) {
        const msgpack_object *p = m->f[TW_F_PAYLOAD];
        if (!p) {
            tw__broker_reply_error(b, c, seq, TW_EINVAL, "send needs a payload");
            return;
        }
        if (p->via.bin.size > (uint64_t)b->cfg->max_payload) {
            tw__broker_reply_error(b, c, seq, TW_E2BIG, "n2s payload exceeds --max-payload");
            return;
        }
        uint64_t nseq;
        int queued = 0;
        tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
        if (w && s_n2s_deliverable(st) && !st->n2s_len) {
            nseq = ++st->n2s_seq;
            s_n2s_item(b, w, st, nseq, p->via.bin.ptr, p->via.bin.size);
            b->st.n2s_sent++;
        } else {
            nseq = tw_station_n2s_push(st, b->stations.n2s_limit,
                                       p->via.bin.ptr, p->via.bin.size);
            queued = 1;
            if (!nseq) {
                b->st.n2s_dropped++;
                char why[160];
                snprintf(why, sizeof why,
                         "n2s backlog of station '%s' is full (%zu "
                         "messages)", st->sid, b->stations.n2s_limit);
                tw__broker_reply_error(b, c, seq, TW_EFULL, why);
                return;
            }
        }
        tw_enc_t e;
        tw__broker_reply_begin(&e, seq);
        tw_enc_map(&e, 3);
        tw_enc_cstr(&e, "station");
        tw_enc_str(&e, st->sid, st->sid_len);
        tw_enc_cstr(&e, "seq");
        tw_enc_uint(&e, nseq);
        tw_enc_cstr(&e, "queued");
        tw_enc_bool(&e, queued);
        tw__broker_reply_send(b, c, &e);
    } else {
        char why[96];
        snprintf(why, sizeof why, "unknown station op '%.*s'", (int)ol, op);
        tw__broker_reply_error(b, c, seq, TW_EINVAL, why);
    }
#undef S_OP
}

/* ---- worker reports --------------------------------------------------- */

/* The station ended in `state` (it no longer holds its slot). */
static void
s_ended(tw_broker_t *b, tw_station_t *st, tw_sstate_t state,
        const char *err, size_t elen)
{
    s_free_slot(b, st);
    if (st->removing) {
        /* Removed while its end was on the way: the RELEASE will be
         * ignored by the worker, so forget it now. */
        s_forget(b, st);
        return;
    }
    if (err) {
        tw_free(st->last_error);
        st->last_error = tw_strndup(err, elen);
    }
    st->state = state;
    s_event(b, st, tw_sstate_name(state),
            state == TW_SS_FAILED ? st->last_error : NULL);
    if ((state == TW_SS_FAILED || state == TW_SS_DONE) &&
        tw_station_should_restart(st, state, uv_now(b->loop))) {
        /* A failure may belong to the worker (a missing file, a broken
         * host): the restart goes to another candidate if one has room. */
        st->avoid = state == TW_SS_FAILED ? st->worker : 0;
        s_make_pending(b, st, "restarting after backoff");
        s_event(b, st, "restarting", NULL);
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
    s_free_slot(b, st);
    if (st->removing) {
        s_forget(b, st);
    } else if (st->wanted == TW_WANT_STOPPED) {
        st->state = TW_SS_STOPPED;
        s_event(b, st, "stopped", "refused by its worker");
    } else {
        s_make_pending(b, st, "refused by its worker: it does not offer "
                              "the handler");
        s_event(b, st, "pending", st->reason);
    }
}

void
tw__broker_on_station_report(tw_broker_t *b, tw_bworker_t *w,
                             const tw_msg_t *m)
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
#define S_EV(name) (el == sizeof(name) - 1 && memcmp(ev, name, el) == 0)
        if (S_EV("iteration")) {
            continue;
        }
        if (S_EV("running")) {
            st->state = TW_SS_RUNNING;
            s_event(b, st, "running", NULL);
            s_n2s_flush(b, st);
        } else if (S_EV("paused")) {
            st->state = TW_SS_PAUSED;
            s_event(b, st, "paused", NULL);
        } else if (S_EV("stopped")) {
            s_ended(b, st, TW_SS_STOPPED, NULL, 0);
        } else if (S_EV("done")) {
            s_ended(b, st, TW_SS_DONE, NULL, 0);
        } else if (S_EV("cancelled")) {
            s_ended(b, st, TW_SS_CANCELLED, NULL, 0);
        } else if (S_EV("failed")) {
            s_ended(b, st, TW_SS_FAILED, err ? err : "failed",
                    err ? errl : 6);
        } else if (S_EV("refused")) {
            s_refused(b, w, st, err, errl);
        } else if (S_EV("released")) {
            s_free_slot(b, st);
            if (st->removing) {
                s_forget(b, st);
            } else if (st->wanted == TW_WANT_STOPPED) {
                st->state = TW_SS_STOPPED;
                s_event(b, st, "stopped", "released");
            } else {
                if (!st->moving) {
                    /* Released unasked: the worker is draining (S29), so
                     * it takes no new station. */
                    w->draining = 1;
                    tw__broker_workers_changed(b);
                }
                s_make_pending(b, st, "released by its worker");
                s_event(b, st, "pending", st->reason);
            }
        } else {
            b->st.stale++;
        }
#undef S_EV
    }
    /* Credit for freed slots travels in the same message. */
    uint64_t credit = tw_msg_uint(m, TW_F_CREDIT, 0);
    if (credit) {
        w->credit += credit;
        if (w->credit > (1u << 20)) { /* as READY and DONE (dispatch.c) */
            w->credit = 1u << 20;
        }
        b->place_wanted = 1;
    }
}

void
tw__broker_on_s2n(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
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
