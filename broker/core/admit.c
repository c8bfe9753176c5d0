/*  broker/core/admit.c - S54's checks on a SUBMIT item (see admit.h). */
#include "broker/core/admit.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/persist.h"
#include "proto/mpwalk.h"
#include "common/error.h"

#include <stdio.h>

int
tw__admit_handler(tw_broker_t *b, const char *h, size_t hlen, char *why,
                  size_t wlen)
{
    int idx = hlen ? tw_registry_handler(&b->reg, h, hlen, 0) : -1;
    /* Just restarted, or just took over as a pair's active: its workers
     * may not be back yet. With a store, clients resend at once after a
     * restart (PROTOCOL.md 5.19) or a takeover (17.8), so the grace lasts
     * at least as long as running tasks are held for their workers. It
     * counts from the recovery, not the process's start: a passive may
     * have waited for hours. */
    uint64_t grace = (uint64_t)b->cfg->handler_grace * 1000;
    uint64_t held = b->resumed ? 2 * (uint64_t)b->cfg->liveness *
                                     (uint64_t)b->cfg->heartbeat
                               : 0;
    if (idx < 0 && hlen &&
        uv_now(b->loop) - b->serve_ms < (grace > held ? grace : held)) {
        idx = tw_registry_handler(&b->reg, h, hlen, 1);
    }
    if (idx < 0) {
        snprintf(why, wlen, "unknown handler '%.*s': no worker has offered it",
                 (int)hlen, h ? h : "");
        return TW_EHANDLER;
    }
    return idx;
}

int
tw__admit_item(tw_broker_t *b, const tw_item_t *it, int *hidx,
               tw_pool_t **pool, char *why, size_t wlen)
{
    size_t hlen, alen, plen;
    const char *h = tw_item_str(it, TW_I_H, &hlen);
    const void *a = tw_item_bin(it, TW_I_A, &alen);
    *hidx = tw__admit_handler(b, h, hlen, why, wlen);
    if (*hidx < 0) {
        return *hidx;
    }
    const char *pl = tw_item_str(it, TW_I_PL, &plen);
    if (!pl || !plen) {
        pl = "default";
        plen = 7;
    }
    tw_pool_t *p = tw_pools_get(&b->pools, pl, plen, 0);
    if (p && p->closed) {
        snprintf(why, wlen, "pool '%s' is closed", p->name);
        return TW_ECLOSED;
    }
    const msgpack_object *gs = it->f[TW_I_G];
    if (p && p->locked) {
        /* A locked pool still takes tasks for groups that existed before
         * the lock, so a map or apply already feeding goes on (S61). */
        int feeding = 0;
        for (uint32_t i = 0; gs && i < gs->via.array.size && !feeding; i++) {
            const msgpack_object *o = &gs->via.array.ptr[i];
            tw_group_t *g = tw_pools_group(&b->pools, p, o->via.str.ptr,
                                           o->via.str.size, 0);
            feeding = g && g->before_lock;
        }
        if (!feeding) {
            snprintf(why, wlen, "pool '%s' is locked", p->name);
            return TW_ELOCKED;
        }
    }
    for (uint32_t i = 0; p && gs && i < gs->via.array.size; i++) {
        const msgpack_object *o = &gs->via.array.ptr[i];
        tw_group_t *g =
            tw_pools_group(&b->pools, p, o->via.str.ptr, o->via.str.size, 0);
        if (g && tw_group_refuses(g)) {
            snprintf(why, wlen, "group '%s' %s", g->name,
                     g->calls >= 0 && g->admitted >= (uint64_t)g->calls
                         ? "has used up its calls"
                         : "is at its limit");
            tw__event_limit_reached(b, p, g);
            return TW_ELIMIT;
        }
    }
    if (alen > (uint64_t)b->cfg->max_payload) {
        snprintf(why, wlen, "arguments are %zu bytes; the limit is %lld",
                 alen, b->cfg->max_payload);
        return TW_E2BIG;
    }
    if (alen && !tw_mp_one(a, alen, TW_MP_DEPTH_DECODE)) {
        /* A store never holds arguments a worker could not decode
         * (docs/STORAGE.md, verification). */
        snprintf(why, wlen, "arguments are not one msgpack value");
        return TW_EINVAL;
    }
    if (b->pending >= (uint64_t)b->cfg->max_queue) {
        b->st.overflow++;
        snprintf(why, wlen, "queue full: %zu tasks pending", b->pending);
        return TW_EFULL;
    }
    if (tw__persist_budget(b, alen, why, wlen) != 0) {
        return TW_EFULL;
    }
    if (b->persist && tw__persist_admit(b, alen, why, wlen) != 0) {
        return TW_EFULL;
    }
    *pool = p ? p : tw_pools_get(&b->pools, pl, plen, 1);
    return 0;
}

