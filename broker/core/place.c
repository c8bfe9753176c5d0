/*  broker/core/place.c - placement and the station messages to workers
 *  (see place.h).
 */
#include "broker/core/place.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "common/alloc.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* One more item in one of a worker's station batches; a batch that is
 * full is sent first, so no message exceeds the decoder's item limit. */
static tw_enc_t *
s_worker_item(tw_broker_t *b, tw_bworker_t *w, tw_batch_t *batch,
              tw_cmd_t cmd)
{
    if (batch->n >= TW__BATCH_ITEMS ||
        tw_enc_size(&batch->enc) >= TW__BATCH_BYTES) {
        w->last_send_ms = uv_now(b->loop);
        tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len, cmd,
                     batch);
    }
    return tw_batch_item(batch);
}

/* Queue a station for the next placement pass. One that was set aside
 * (stopped there, now pending again) comes back to be tried at once, so
 * its state and reason follow the new try as before. */
void
tw__place_unplace(tw_broker_t *b, tw_station_t *st)
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

/* Make a station PENDING and queue it for placement. */
void
tw__place_pending(tw_broker_t *b, tw_station_t *st, const char *reason)
{
    st->state = TW_SS_PENDING;
    st->reason = reason;
    st->worker = 0;
    st->moving = 0;
    tw__place_unplace(b, st);
}

/* Forget a station for good, taking it off the unplaced list first. */
void
tw__place_forget(tw_broker_t *b, tw_station_t *st)
{
    tw__event_forget_station(b, st);
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

/* Free the slot a placed station holds on its worker (if the worker is
 * still known). */
void
tw__place_free_slot(tw_broker_t *b, tw_station_t *st)
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

uint64_t
tw__place_n2s_send(tw_broker_t *b, tw_station_t *st, const void *d,
                   size_t len, int *queued)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, st->worker);
    if (w && s_n2s_deliverable(st) && !st->n2s_len) {
        *queued = 0;
        s_n2s_item(b, w, st, ++st->n2s_seq, d, len);
        b->st.n2s_sent++;
        return st->n2s_seq;
    }
    *queued = 1;
    uint64_t seq = tw_station_n2s_push(st, b->stations.n2s_limit, d, len);
    if (!seq) {
        b->st.n2s_dropped++;
    }
    return seq;
}

/* Send the queued n2s messages of a station that became deliverable. */
void
tw__place_n2s_flush(tw_broker_t *b, tw_station_t *st)
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
    tw__event_station(b, st, "assigned", NULL);
    tw__place_n2s_flush(b, st);
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
        tw__event_station(b, st, tw_sstate_name(st->state), st->reason);
    }
    return r;
}

void
tw__place_workers_changed(tw_broker_t *b)
{
    tw_aside_changed(&b->aside);
    b->place_wanted = 1;
}

size_t
tw__place_unplaced(const tw_broker_t *b)
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
        tw__place_unplace(b, list[i]);
    }
}

void
tw__place_pass(tw_broker_t *b)
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
tw__place_explain(tw_broker_t *b, tw_station_t *const *sts, size_t n)
{
    tw_assign_worker_t *ws =
        tw_malloc((b->reg.len ? b->reg.len : 1) * sizeof *ws);
    for (size_t i = 0; i < n; i++) {
        if (sts[i] && sts[i]->state == TW_SS_PENDING) {
            s_snapshot(b, ws);
            s_try_place(b, sts[i], ws);
        }
    }
    tw_free(ws);
}

void
tw__place_orphan(tw_broker_t *b, tw_bworker_t *w)
{
    for (size_t i = 0; i < b->stations.len; i++) {
        tw_station_t *st = b->stations.all[i];
        if (!tw_station_placed(st) || st->worker != w->id) {
            continue;
        }
        if (st->removing) {
            tw__place_forget(b, st);
            i--;
            continue;
        }
        if (st->wanted == TW_WANT_STOPPED) {
            /* A stop or cancel was on its way: the worker's loss ended
             * the station, it must not run again elsewhere. */
            st->state = TW_SS_STOPPED;
            st->moving = 0;
            tw__event_station(b, st, "stopped", "its worker was lost");
            continue;
        }
        tw__place_pending(b, st, "its worker was lost");
        tw__event_station(b, st, "pending", st->reason);
    }
}

/* Queue CONTROL {sid, ep, ev} for a placed station. */
void
tw__place_control(tw_broker_t *b, tw_station_t *st, const char *ev)
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

void
tw__place_release(tw_broker_t *b, tw_station_t *st)
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

size_t
tw__place_move_off(tw_broker_t *b, tw_bworker_t *w, uint32_t from)
{
    size_t moved = 0;
    for (size_t k = 0; k < b->stations.len; k++) {
        tw_station_t *st = b->stations.all[k];
        if (tw_station_placed(st) && st->worker == w->id &&
            st->slot >= from && !st->moving && !st->removing) {
            st->moving = 1;
            tw__place_release(b, st);
            moved++;
        }
    }
    return moved;
}

void
tw__place_flush(tw_broker_t *b)
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
                tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                                      cmds[k], batches[k]);
            }
        }
    }
}
