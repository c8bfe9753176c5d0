/*  broker/core/submit.c - a new task from a SUBMIT item (see submit.h). */
#include "broker/core/submit.h"
#include "broker/core/admit.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/flow.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>

/* Join task `t` to the groups an item names (created on demand, S95);
 * duplicates in the list count once. */
static void
s_join_groups(tw_broker_t *b, tw_task_t *t, tw_pool_t *p,
              const msgpack_object *gs)
{
    if (!gs || !gs->via.array.size) {
        return;
    }
    t->groups = tw_malloc(gs->via.array.size * sizeof *t->groups);
    for (uint32_t i = 0; i < gs->via.array.size; i++) {
        const msgpack_object *o = &gs->via.array.ptr[i];
        tw_group_t *g =
            tw_pools_group(&b->pools, p, o->via.str.ptr, o->via.str.size, 1);
        int dup = 0;
        for (uint16_t k = 0; k < t->ngroups; k++) {
            dup |= t->groups[k] == g->id;
        }
        if (!dup) {
            t->groups[t->ngroups++] = g->id;
            g->admitted++;
            tw_group_add_id(g, t->id);
        }
    }
}

/* The parents an item names (`af`, `am`, `wr`; PROTOCOL.md 18.2),
 * checked before anything is counted: 0, or an ACK error code with the
 * reason in `why`. */
static int
s_check_after(tw_broker_t *b, const tw_item_t *it, char *why, size_t wlen)
{
    const msgpack_object *af = it->f[TW_I_AF];
    if (tw_item_uint(it, TW_I_AM, 0) > 1) {
        snprintf(why, wlen, "am must be 0 (all parents ok) or 1 (any end)");
        return TW_EINVAL;
    }
    if (tw_item_uint(it, TW_I_WR, 0) > 1) {
        snprintf(why, wlen, "wr must be 0 or 1");
        return TW_EINVAL;
    }
    if (af && af->via.array.size > TW_DEPS_MAX_PARENTS) {
        snprintf(why, wlen, "%u parents named: at most %d",
                 (unsigned)af->via.array.size, TW_DEPS_MAX_PARENTS);
        return TW_EINVAL;
    }
    for (uint32_t i = 0; af && i < af->via.array.size; i++) {
        uint64_t id = af->via.array.ptr[i].via.u64;
        if (!tw_tasks_get(&b->tasks, id)) {
            snprintf(why, wlen, "parent task %llu is not known (a parent "
                     "must be a task the broker still holds)",
                     (unsigned long long)id);
            return TW_ENOENT;
        }
    }
    return 0;
}

/* A new task from SUBMIT item `it` of client `c` (or none), admitted into pool `p`
 * with handler `hidx`; enqueued unless it names parents (the caller then
 * hands it to tw__flow_after). */
static tw_task_t *
s_create(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it, int hidx,
         tw_pool_t *p, uint32_t shash, int after)
{
    uint64_t now = uv_now(b->loop);
    size_t alen, klen;
    const void *a = tw_item_bin(it, TW_I_A, &alen);
    const char *key = tw_item_str(it, TW_I_K, &klen);
    tw_task_t *t = tw_tasks_create(&b->tasks, a, alen, now);
    int64_t pri = tw_item_int(it, TW_I_PRI, 0);
    uint64_t to = tw_item_uint(it, TW_I_TO, 0);
    uint64_t re = tw_item_uint(it, TW_I_RE, 0);
    uint64_t dl = tw_item_uint(it, TW_I_DL, 0);
    t->seq = c ? tw_item_uint(it, TW_I_SEQ, 0) : 0;
    t->client = c ? c->id : 0;
    t->handler = (uint32_t)hidx;
    t->shash = shash;
    t->priority = pri > INT32_MAX   ? INT32_MAX
                  : pri < INT32_MIN ? INT32_MIN
                                    : (int32_t)pri;
    t->timeout_ms = to > UINT32_MAX ? UINT32_MAX : (uint32_t)to;
    t->retries = re > 1000 ? 1000 : (uint16_t)re;
    t->due_ms = dl ? now + dl : 0;
    uint64_t eta = tw_item_uint(it, TW_I_ETA, 0), wall = tw_wall_ms();
    if (eta > wall) {
        /* The loop's clock read now, not its cached `now`: the task must
         * not start before eta, even by the time this turn has taken. */
        uint64_t at = uv_hrtime() / 1000000 + (eta - wall) + 1;
        t->due_ms = at > t->due_ms ? at : t->due_ms;
    }
    t->pool = p->id;
    s_join_groups(b, t, p, it->f[TW_I_G]);
    if (key && klen) {
        t->key = tw_strndup(key, klen);
        t->key_len = (uint16_t)klen;
        tw_strmap_put(&p->dedup, t->key, klen, (void *)(uintptr_t)t->id);
    }
    if (c) {
        tw_dedup_put(&b->dedup, c->id, t->seq, t->id, c->outstanding);
    }
    if (!after) {
        tw__flow_enqueue(b, t);
    }
    if (c) {
        tw_pool_add_client(p, c->id);
        c->outstanding++;
    }
    b->st.submitted++;
    return t;
}


int
tw__submit_check(tw_broker_t *b, const tw_item_t *it, int *hidx,
                 tw_pool_t **pool, char *why, size_t wlen)
{
    int rc = tw__admit_item(b, it, hidx, pool, why, wlen);
    return rc == 0 ? s_check_after(b, it, why, wlen) : rc;
}

void
tw__submit_accept(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it,
                  int hidx, tw_pool_t *p, uint32_t shash,
                  const uint64_t *extra, size_t nextra, int publish,
                  tw_submit_out_t *out)
{
    out->task = NULL;
    out->known = 0;
    size_t klen;
    const char *key = tw_item_str(it, TW_I_K, &klen);
    void *known = key && klen ? tw_strmap_get(&p->dedup, key, klen) : NULL;
    if (known) {
        out->known = (uint64_t)(uintptr_t)known;
        return;
    }
    const msgpack_object *af = it->f[TW_I_AF];
    size_t naf = af ? af->via.array.size : 0;
    tw_task_t *t = s_create(b, c, it, hidx, p, shash, naf + nextra > 0);
    out->task = t;
    if (naf + nextra) {
        uint64_t *par = tw_malloc((naf + nextra) * sizeof *par);
        for (size_t i = 0; i < naf; i++) {
            par[i] = af->via.array.ptr[i].via.u64;
        }
        for (size_t i = 0; i < nextra; i++) {
            par[naf + i] = extra[i];
        }
        tw__flow_after(b, t, par, naf + nextra,
                       (int)tw_item_uint(it, TW_I_AM, 0),
                       (int)tw_item_uint(it, TW_I_WR, 0), publish);
        tw_free(par);
    } else if (publish) {
        tw__event_task(b, t, "task.submitted", NULL);
    }
}

int
tw__submit_item(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it,
                uint32_t shash, uint64_t after, int publish,
                tw_submit_out_t *out, char *why, size_t wlen)
{
    out->task = NULL;
    out->known = 0;
    int hidx;
    tw_pool_t *p = NULL;
    int rc = tw__submit_check(b, it, &hidx, &p, why, wlen);
    if (rc != 0) {
        return rc;
    }
    if (after && !tw_tasks_get(&b->tasks, after)) {
        after = 0; /* collected since: nothing left to wait for */
    }
    /* The extra parent waits for any end (a schedule's `queue`), so it
     * is given only to an item that names no parents of its own. */
    int extra = after && !it->f[TW_I_AF];
    if (extra) {
        tw_item_t copy = *it;
        static const msgpack_object one = {.type =
                                               MSGPACK_OBJECT_POSITIVE_INTEGER,
                                           .via.u64 = 1};
        copy.f[TW_I_AM] = &one;
        tw__submit_accept(b, c, &copy, hidx, p, shash, &after, 1, publish,
                          out);
    } else {
        tw__submit_accept(b, c, it, hidx, p, shash, NULL, 0, publish, out);
    }
    return 0;
}
