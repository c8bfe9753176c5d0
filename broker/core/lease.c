/*  broker/core/lease.c - leases and re-announcement (see lease.h). */
#include "broker/core/lease.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "common/alloc.h"
#include "common/log.h"

/* 1 if a task announced with `ep` (0: none given) may be taken over. A
 * pending task with no dispatch on record (ep 0) qualifies only with a
 * store: its dispatch was sent in the broker's last iteration before a
 * crash and never recorded, and ids are never reused, so the worker can
 * only hold this very task. */
static int
s_adoptable(const tw_broker_t *b, const tw_task_t *t, uint64_t ep)
{
    if (t->state == TW_ST_RUNNING && t->worker == 0) {
        return ep == 0 || ep == t->ep;
    }
    return t->state == TW_ST_PENDING && ep &&
           (ep == t->ep || (b->persist && t->ep == 0));
}

/* Take `t` (held, or pending) onto worker `w`, as dispatch `ep` (0: keep
 * its own) and attempt `at` (0: keep its own). */
static void
s_adopt(tw_broker_t *b, tw_task_t *t, tw_bworker_t *w, uint64_t ep,
        uint64_t at)
{
    if (t->state == TW_ST_PENDING) {
        tw__flow_unpend(b, t);
        tw__flow_hold(b, t);
    }
    if (ep) {
        t->ep = ep;
    }
    if (at > t->attempt) {
        t->attempt = at > 0xffff ? 0xffff : (uint16_t)at;
    }
    tw__flow_attach(b, t, w);
}

void
tw__lease_detach(tw_broker_t *b, tw_bworker_t *old, const tw_msg_t *m)
{
    const msgpack_object *items = m->f[TW_F_ITEMS];
    if (!old || !items) {
        return;
    }
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        tw_task_t *t = tw_tasks_get(&b->tasks, tw_item_uint(it, TW_I_ID, 0));
        uint64_t ep = tw_item_uint(it, TW_I_EP, 0);
        if (t && t->state == TW_ST_RUNNING && t->worker == old->id &&
            (ep == 0 || ep == t->ep)) {
            /* Still running there: off the old registration, which is
             * about to requeue whatever it keeps, and held. */
            tw_task_list_remove(&old->inflight, t);
            t->worker = 0;
        }
    }
}

void
tw__lease_adopt(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    if (!m->f[TW_F_ITEMS] || !m->nitems) {
        return;
    }
    size_t adopted = 0, refused = 0;
    tw_enc_t e;
    tw_enc_init(&e);
    size_t off = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        tw_task_t *t = tw_tasks_get(&b->tasks, id);
        uint64_t ep = tw_item_uint(it, TW_I_EP, 0);
        if (t && s_adoptable(b, t, ep)) {
            s_adopt(b, t, w, ep, tw_item_uint(it, TW_I_AT, 0));
            adopted++;
            continue;
        }
        if (!id) {
            continue;
        }
        if (!refused++) {
            tw_enc_map(&e, 1);
            tw_enc_key(&e, TW_F_IDS);
            off = tw_enc_array_begin(&e);
        }
        tw_enc_uint(&e, id);
    }
    if (refused) {
        /* Not ours any more: free the worker's slots. Its DONE st=3 is
         * then refused as stale or a duplicate. */
        tw_enc_array_end(&e, off, (uint32_t)refused);
        tw_out_send(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                    TW_CMD_CANCEL, &e);
    }
    tw_enc_free(&e);
    tw_notice("worker.reannounce",
              "worker %llu (%s) re-announced %zu running task(s): %zu "
              "adopted, %zu cancelled",
              (unsigned long long)w->id, w->name ? w->name : "?",
              m->nitems, adopted, refused);
}

int
tw__lease_done_ok(tw_broker_t *b, tw_bworker_t *w, tw_task_t *t,
                  const tw_item_t *it)
{
    uint64_t ep = tw_item_uint(it, TW_I_EP, 0);
    if (t && ep && s_adoptable(b, t, ep)) {
        /* It finished while its worker was cut off or the broker was
         * down: the ep proves it is this dispatch's outcome. */
        s_adopt(b, t, w, ep, 0);
        return 1;
    }
    if (t && ep && ep != t->ep) {
        b->stale_done++;
        return 0;
    }
    if (!t || t->state != TW_ST_RUNNING || t->worker != w->id) {
        b->st.duplicates++;
        return 0;
    }
    return 1;
}

void
tw__lease_held(tw_broker_t *b, tw_task_t *t)
{
    tw__flow_hold(b, t);
    if (b->nheld % 256 == 0) {
        b->held = tw_realloc(b->held, (b->nheld + 256) * sizeof *b->held);
    }
    b->held[b->nheld++] = t->id;
}

void
tw__lease_expire(tw_broker_t *b)
{
    size_t requeued = 0;
    for (size_t i = 0; i < b->nheld; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, b->held[i]);
        if (!t || t->state != TW_ST_RUNNING || t->worker != 0) {
            continue; /* adopted, or ended meanwhile */
        }
        /* As after a worker loss. */
        requeued += tw__flow_orphan(b, t) == TW_ST_PENDING;
    }
    if (b->nheld) {
        tw_notice("store.grace",
                  "grace period over: %zu of %zu recovered running tasks "
                  "were not re-announced and are queued again",
                  requeued, b->nheld);
        tw_free(b->held);
        b->held = NULL;
        b->nheld = 0;
    }
}
