/*  worker/slots.c - the slot table (see slots.h).
 *
 *  Free slots are a stack of indices, so the slot that just finished is the
 *  next one used and its call buffers are warm. Running tasks are found by
 *  id through an idmap; a slot leaves the map as soon as its outcome has
 *  been reported (ENDED), so a task id can be started again while an old
 *  attempt is still winding down.
 */
#include "worker/slots.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/log.h"
#include "proto/proto.h"
#include "worker/chan.h"

#include <stdio.h>
#include <string.h>

enum { S_FREE, S_BUSY, S_ENDED, S_HELD };

typedef struct {
    tw_call_t call; /* first: the call's owner is the slot */
    uv_timer_t timer;
    tw_slots_t *table;
    uint64_t id;
    int state;
    unsigned idx;
} s_slot_t;

/* Slots embed libuv handles, so they never move: the table grows by
 * blocks (tw_slots_grow) and finds a slot by index through `v`. */
struct tw_slots {
    uv_loop_t *loop;
    const tw_handlers_t *reg;
    s_slot_t **v;
    s_slot_t **blocks;
    unsigned nblocks;
    unsigned n;
    unsigned *free; /* stack of free indices */
    unsigned nfree;
    tw_idmap_t byid;
    tw_slots_outcome_cb cb;
    void *udata;
    unsigned closing; /* timers still to close */
    tw_slots_close_cb close_cb;
    void *close_udata;
    struct tw_chans *chans; /* task channels, attached to every slot */
};

static void
s_report(tw_slots_t *s, uint64_t id, int st, const void *r, size_t rlen,
         const char *err, unsigned credit)
{
    tw_outcome_t o = {id, st, r, rlen, err, credit};
    s->cb(s->udata, &o);
}

static void
s_release(tw_slots_t *s, s_slot_t *slot)
{
    slot->state = S_FREE;
    slot->id = 0;
    s->free[s->nfree++] = slot->idx;
}

static void
s_call_done(tw_call_t *call, int st, const void *r, size_t rlen,
            const char *err)
{
    s_slot_t *slot = call->owner;
    tw_slots_t *s = slot->table;
    uint64_t id = slot->id;
    if (slot->state == S_BUSY) {
        uv_timer_stop(&slot->timer);
        tw_idmap_del(&s->byid, id);
        tw_chans_end(call); /* its channel closes before its DONE */
        s_release(s, slot);
        s_report(s, id, st, r, rlen, err, 1);
    } else {
        /* Its outcome went out already, or nobody wants it. */
        s_release(s, slot);
        s_report(s, 0, 0, NULL, 0, NULL, 1);
    }
}

/* Take `slot` out of the running set: ENDED, timer off, id forgotten. */
static void
s_end(tw_slots_t *s, s_slot_t *slot)
{
    slot->state = S_ENDED;
    uv_timer_stop(&slot->timer);
    tw_idmap_del(&s->byid, slot->id);
    tw_chans_end(&slot->call);
}

static void
s_timeout_cb(uv_timer_t *t)
{
    s_slot_t *slot = t->data;
    tw_slots_cancel(slot->table, slot->id, TW_ST_TIMEOUT);
}

/* Add slots n..to-1 as one block; the new ones go under the free stack,
 * so the lowest free index stays on top. */
static void
s_add_block(tw_slots_t *s, unsigned to)
{
    unsigned add = to - s->n;
    s_slot_t *blk = tw_calloc(add, sizeof *blk);
    s->blocks = tw_realloc(s->blocks, (s->nblocks + 1) * sizeof *s->blocks);
    s->blocks[s->nblocks++] = blk;
    s->v = tw_realloc(s->v, to * sizeof *s->v);
    s->free = tw_realloc(s->free, to * sizeof *s->free);
    memmove(s->free + add, s->free, s->nfree * sizeof *s->free);
    for (unsigned i = 0; i < add; i++) {
        s_slot_t *slot = &blk[i];
        tw_call_init(&slot->call, s->loop, s_call_done, slot);
        uv_timer_init(s->loop, &slot->timer);
        slot->timer.data = slot;
        slot->table = s;
        slot->idx = s->n + i;
        if (s->chans) {
            tw_chans_attach(s->chans, &slot->call);
        }
        s->v[s->n + i] = slot;
        s->free[i] = to - 1 - i;
    }
    s->nfree += add;
    s->n = to;
}

tw_slots_t *
tw_slots_new(uv_loop_t *loop, const tw_handlers_t *reg, unsigned n,
             tw_slots_outcome_cb cb, void *udata)
{
    tw_slots_t *s = tw_calloc(1, sizeof *s);
    s->loop = loop;
    s->reg = reg;
    s->cb = cb;
    s->udata = udata;
    tw_idmap_init(&s->byid);
    s_add_block(s, n);
    return s;
}

int
tw_slots_grow(tw_slots_t *s, unsigned n)
{
    if (s->closing || n > 65536) {
        return TW_EINVAL;
    }
    if (n > s->n) {
        s_add_block(s, n);
    }
    return 0;
}

static void
s_timer_closed(uv_handle_t *h)
{
    s_slot_t *slot = h->data;
    tw_slots_t *s = slot->table;
    if (--s->closing > 0) {
        return;
    }
    tw_slots_close_cb cb = s->close_cb;
    void *udata = s->close_udata;
    for (unsigned i = 0; i < s->n; i++) {
        tw_call_free(&s->v[i]->call);
    }
    tw_idmap_free(&s->byid);
    for (unsigned i = 0; i < s->nblocks; i++) {
        tw_free(s->blocks[i]);
    }
    tw_free(s->blocks);
    tw_free(s->free);
    tw_free(s->v);
    tw_free(s);
    if (cb) {
        cb(udata);
    }
}

int
tw_slots_close(tw_slots_t *s, tw_slots_close_cb cb, void *udata)
{
    if (s->nfree != s->n || s->closing) {
        return TW_ESTATE;
    }
    s->close_cb = cb;
    s->close_udata = udata;
    s->closing = s->n;
    for (unsigned i = 0; i < s->n; i++) {
        uv_close((uv_handle_t *)&s->v[i]->timer, s_timer_closed);
    }
    return 0;
}

int
tw_slots_start(tw_slots_t *s, uint64_t id, const char *h, size_t hlen,
               const void *args, size_t alen, uint64_t timeout_ms,
               uint64_t attempt)
{
    const tw_handler_t *handler = tw_handlers_find(s->reg, h, hlen);
    if (!handler) {
        char msg[192];
        snprintf(msg, sizeof msg, "unknown handler '%.*s'",
                 (int)(hlen > 128 ? 128 : hlen), h);
        s_report(s, id, TW_ST_ERROR, NULL, 0, msg, 1);
        return TW_EHANDLER;
    }
    if (tw_idmap_get(&s->byid, id)) {
        tw_warn("worker.dup", "task %llu is already running here",
                (unsigned long long)id);
        s_report(s, 0, 0, NULL, 0, NULL, 1);
        return TW_EEXIST;
    }
    if (s->nfree == 0) {
        tw_warn("worker.overrun", "task %llu arrived with no free slot",
                (unsigned long long)id);
        s_report(s, id, TW_ST_ERROR, NULL, 0,
                 "worker had no free slot (credit overrun)", 0);
        return TW_EFULL;
    }
    s_slot_t *slot = s->v[s->free[--s->nfree]];
    slot->state = S_BUSY;
    slot->id = id;
    tw_idmap_put(&s->byid, id, slot);
    if (timeout_ms) {
        uv_timer_start(&slot->timer, s_timeout_cb, timeout_ms, 0);
    }
    slot->call.attempt = attempt;
    slot->call.timeout_ms = timeout_ms;
    int rc = tw_call_start(&slot->call, handler, id, args, alen);
    if (rc != 0) {
        s_end(s, slot);
        s_release(s, slot);
        char msg[128];
        snprintf(msg, sizeof msg, "cannot start task: %s",
                 rc == TW_ENOMEM ? tw_strerror(rc) : uv_strerror(rc));
        s_report(s, id, TW_ST_ERROR, NULL, 0, msg, 1);
    }
    return rc;
}

int
tw_slots_cancel(tw_slots_t *s, uint64_t id, int st)
{
    s_slot_t *slot = id ? tw_idmap_get(&s->byid, id) : NULL;
    if (!slot) {
        return TW_ENOENT;
    }
    s_end(s, slot);
    s_report(s, id, st, NULL, 0, NULL, 0);
    tw_call_cancel(&slot->call);
    return 0;
}

void
tw_slots_orphan_all(tw_slots_t *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        s_slot_t *slot = s->v[i];
        if (slot->state == S_BUSY) {
            s_end(s, slot);
            tw_call_cancel(&slot->call);
        } else if (slot->state == S_ENDED) {
            tw_call_cancel(&slot->call);
        }
    }
}

void
tw_slots_attach_chans(tw_slots_t *s, struct tw_chans *ch)
{
    s->chans = ch;
    for (unsigned i = 0; i < s->n; i++) {
        tw_chans_attach(ch, &s->v[i]->call);
    }
}

int
tw_slots_hold(tw_slots_t *s)
{
    if (s->nfree == 0) {
        return TW_EFULL;
    }
    unsigned idx = s->free[--s->nfree];
    s->v[idx]->state = S_HELD;
    return (int)idx;
}

void
tw_slots_unhold(tw_slots_t *s, int idx)
{
    if (idx < 0 || (unsigned)idx >= s->n || s->v[idx]->state != S_HELD) {
        tw_warn("worker.slots", "slot %d was not held", idx);
        return;
    }
    s_release(s, s->v[idx]);
}

unsigned
tw_slots_free_count(const tw_slots_t *s)
{
    return s->nfree;
}

unsigned
tw_slots_busy(const tw_slots_t *s)
{
    return s->n - s->nfree;
}

unsigned
tw_slots_size(const tw_slots_t *s)
{
    return s->n;
}
