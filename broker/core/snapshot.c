/*  broker/core/snapshot.c - QUERY "snapshot": the whole picture in one answer.
 *
 *  The status socket sends deltas; a monitor that starts late or lost
 *  messages needs the state they apply to. This is the ZeroMQ guide's
 *  clone pattern: subscribe first, then ask for the snapshot, then apply
 *  the deltas whose "tseq" is above the snapshot's for their topic (and
 *  drop the older ones, which the snapshot already contains). The map is
 *  built within one callback of the broker's loop, so it is consistent:
 *  no message is published between its parts, and "pseq"/"tseq" say
 *  exactly which messages it includes. Broker loop thread only.
 *
 *      {pseq, tseq: {topic: n}, status: {...QUERY status...},
 *       workers: [{id, name, host, pid, slots, running, credit, stations,
 *                  state, age_ms}],
 *       stations: {state: [sid, ...]},   every station state, in order
 *       tasks: {pending, running, completed, failed, cancelled, kept},
 *       groups: [{pool, group, running, pending, limit}]}   at their limit
 */
#include "broker/core/snapshot.h"
#include "broker/core/core.h"
#include "broker/core/view.h"

#include <string.h>

static void
s_workers(tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_array(e, b->reg.len);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw__view_worker(b, e, b->reg.list[i]);
    }
}

/* {state: [sid...]} with every state, empty or not, so the shape never
 * changes. */
static void
s_stations(tw_broker_t *b, tw_enc_t *e)
{
    enum { S_NSTATES = TW_SS_CANCELLED + 1 };
    tw_enc_map(e, S_NSTATES);
    for (int s = 0; s < S_NSTATES; s++) {
        size_t n = 0;
        for (size_t i = 0; i < b->stations.len; i++) {
            n += (int)b->stations.all[i]->state == s;
        }
        tw_enc_cstr(e, tw_sstate_name(s));
        tw_enc_array(e, n);
        for (size_t i = 0; i < b->stations.len; i++) {
            const tw_station_t *st = b->stations.all[i];
            if ((int)st->state == s) {
                tw_enc_str(e, st->sid, st->sid_len);
            }
        }
    }
}

static void
s_tasks(tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_map(e, 6);
    tw_enc_cstr(e, "pending");
    tw_enc_uint(e, b->pending);
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, b->running);
    tw_enc_cstr(e, "completed");
    tw_enc_uint(e, b->st.completed);
    tw_enc_cstr(e, "failed");
    tw_enc_uint(e, b->st.failed);
    tw_enc_cstr(e, "cancelled");
    tw_enc_uint(e, b->st.cancelled);
    tw_enc_cstr(e, "kept");
    tw_enc_uint(e, b->tasks.ended.len);
}

static int
s_at_limit(const tw_group_t *g)
{
    return g->limit >= 0 && !tw_group_has_room(g);
}

static void
s_group_each(tw_broker_t *b, tw_enc_t *e, size_t *count)
{
    for (size_t p = 0; p < b->pools.len; p++) {
        const tw_pool_t *pool = b->pools.all[p];
        if (!pool) {
            continue;
        }
        for (size_t i = 0; i < pool->groups.cap; i++) {
            const tw_group_t *g = pool->groups.slots[i].val;
            if (!pool->groups.slots[i].key || !s_at_limit(g)) {
                continue;
            }
            if (count) {
                (*count)++;
                continue;
            }
            tw_enc_map(e, 5);
            tw_enc_cstr(e, "pool");
            tw_enc_str(e, pool->name, pool->name_len);
            tw_enc_cstr(e, "group");
            tw_enc_str(e, g->name, g->name_len);
            tw_enc_cstr(e, "running");
            tw_enc_uint(e, g->running);
            tw_enc_cstr(e, "pending");
            tw_enc_uint(e, g->pending);
            tw_enc_cstr(e, "limit");
            tw_enc_int(e, g->limit);
        }
    }
}

void
tw__snapshot(tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_map(e, 7);
    tw_enc_cstr(e, "pseq");
    tw_enc_uint(e, b->status.pseq);
    tw_enc_cstr(e, "tseq");
    tw_tseq_encode(&b->status.tseq, e);
    tw_enc_cstr(e, "status");
    tw__view_status(b, e, 0);
    tw_enc_cstr(e, "workers");
    s_workers(b, e);
    tw_enc_cstr(e, "stations");
    s_stations(b, e);
    tw_enc_cstr(e, "tasks");
    s_tasks(b, e);
    tw_enc_cstr(e, "groups");
    size_t n = 0;
    s_group_each(b, e, &n);
    tw_enc_array(e, n);
    s_group_each(b, e, NULL);
}
