/*  broker/core/view.c - the status map and a worker's map (see view.h). */
#include "broker/core/view.h"
#include "broker/core/core.h"
#include "broker/core/persist.h"
#include "broker/core/place.h"
#include "broker/core/schedule.h"

#include <string.h>

#define S_HA_KEYS 15

/* A broker pair's keys (docs/HA.md, "Observing a pair"). */
static void
s_ha_status(tw_broker_t *b, tw_enc_t *e)
{
    tw_pair_figures_t f;
    tw_pair_figures(b->pair, &f);
    tw_enc_cstr(e, "ha_role");
    tw_enc_cstr(e, f.role);
    tw_enc_cstr(e, "ha_state");
    tw_enc_cstr(e, f.state);
    tw_enc_cstr(e, "ha_epoch");
    tw_enc_uint(e, f.epoch);
    tw_enc_cstr(e, "ha_peer");
    tw_enc_cstr(e, f.peer_state);
    tw_enc_cstr(e, "ha_peer_alive");
    tw_enc_uint(e, (uint64_t)f.peer_alive);
    tw_enc_cstr(e, "ha_replicate");
    tw_enc_cstr(e, f.mode);
    tw_enc_cstr(e, "ha_sync");
    tw_enc_uint(e, (uint64_t)f.sync);
    tw_enc_cstr(e, "ha_follower");
    tw_enc_cstr(e, f.follower);
    tw_enc_cstr(e, "ha_pos");
    tw_enc_array(e, 2);
    tw_enc_uint(e, f.pos.epoch);
    tw_enc_uint(e, f.pos.seq);
    tw_enc_cstr(e, "ha_lag_batches");
    tw_enc_uint(e, f.lag.batches);
    tw_enc_cstr(e, "ha_lag_bytes");
    tw_enc_uint(e, f.lag.bytes);
    tw_enc_cstr(e, "ha_lag_ms");
    tw_enc_uint(e, f.lag.ms);
    tw_enc_cstr(e, "ha_takeovers");
    tw_enc_uint(e, f.activations);
    tw_enc_cstr(e, "ha_snapshots");
    tw_enc_uint(e, f.snapshots);
    tw_enc_cstr(e, "ha_batches");
    tw_enc_uint(e, f.batches);
}

void
tw__view_status(tw_broker_t *b, tw_enc_t *e, int publish)
{
    uint64_t slots = 0;
    for (size_t i = 0; i < b->reg.len; i++) {
        slots += b->reg.list[i]->slots;
    }
    static const struct {
        const char *key;
        size_t off;
    } counters[] = {
#define S_C(field, key, help) {key, offsetof(tw_broker_stats_t, field)},
        TW_BROKER_COUNTERS(S_C)
#undef S_C
    };
    size_t ncounters = 0;
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
        ncounters += counters[i].key != NULL;
    }
    size_t n = 17 + ncounters + tw__persist_status_count(b) + /* 17: below */
               (b->pair ? S_HA_KEYS : 0) + TW__SCHEDULE_STATUS_KEYS;
    if (publish) {
        tw_status_begin(&b->status, e, n);
    } else {
        tw_enc_map(e, n);
    }
#define S_KV(k, v)                                                           \
    tw_enc_cstr(e, k);                                                       \
    tw_enc_uint(e, (uint64_t)(v))
    S_KV("workers", b->reg.len);
    S_KV("slots", slots);
    S_KV("queued", b->pending);
    S_KV("running", b->running);
    S_KV("blocked", tw_deps_count(b->deps));
    S_KV("kept", b->tasks.ended.len);
    S_KV("payload_bytes", b->tasks.payload_bytes);
    S_KV("payload_budget", (uint64_t)b->cfg->payload_budget << 20);
    S_KV("clients", tw_clients_count(&b->clients));
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
        if (counters[i].key) {
            uint64_t v;
            memcpy(&v, (const char *)&b->st + counters[i].off, sizeof v);
            S_KV(counters[i].key, v);
        }
    }
    /* Every refused send, the status socket's included. */
    S_KV("dropped", b->st.dropped + b->status.dropped);
    S_KV("uptime_ms", uv_now(b->loop) - b->start_ms);
    size_t running = 0;
    for (size_t i = 0; i < b->stations.len; i++) {
        running += b->stations.all[i]->state == TW_SS_RUNNING;
    }
    S_KV("stations", b->stations.len);
    S_KV("stations_running", running);
    S_KV("stations_unplaced", tw__place_unplaced(b));
    S_KV("status_dropped", b->status.dropped);
    S_KV("quarantined_peers", b->quarantine.held);
#undef S_KV
    tw__schedule_status(b, e);
    tw__persist_status(b, e);
    if (b->pair) {
        s_ha_status(b, e);
    }
    tw_enc_cstr(e, "rate");
    msgpack_pack_double(&e->pk, b->rate);
}

void
tw__view_worker(tw_broker_t *b, tw_enc_t *e, const tw_bworker_t *w)
{
    tw_enc_map(e, 12);
    tw_enc_cstr(e, "id");
    tw_enc_uint(e, w->id);
    tw_enc_cstr(e, "name");
    tw_enc_cstr(e, w->name ? w->name : "");
    tw_enc_cstr(e, "host");
    tw_enc_cstr(e, w->host ? w->host : "");
    tw_enc_cstr(e, "pid");
    tw_enc_uint(e, w->pid);
    tw_enc_cstr(e, "slots");
    tw_enc_uint(e, w->slots);
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, w->inflight.len);
    tw_enc_cstr(e, "credit");
    tw_enc_uint(e, w->credit);
    tw_enc_cstr(e, "done");
    tw_enc_uint(e, w->done);
    tw_enc_cstr(e, "handlers");
    tw_enc_array(e, w->nhandlers);
    for (size_t i = 0; i < w->nhandlers; i++) {
        const tw_handler_t *h = &b->reg.handlers[w->handlers[i]];
        tw_enc_str(e, h->name, h->name_len);
    }
    tw_enc_cstr(e, "age_ms");
    tw_enc_uint(e, uv_now(b->loop) - w->last_recv_ms);
    tw_enc_cstr(e, "stations");
    tw_enc_uint(e, w->nstations);
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, tw_bworker_state(w));
}

static void
s_int_or_nil(tw_enc_t *e, int64_t v)
{
    if (v >= 0) {
        tw_enc_int(e, v);
    } else {
        tw_enc_nil(e);
    }
}

void
tw__view_group(tw_enc_t *e, const tw_pool_t *p, const tw_group_t *g)
{
    tw_enc_map(e, 10);
    tw_enc_cstr(e, "pool");
    tw_enc_str(e, p->name, p->name_len);
    tw_enc_cstr(e, "group");
    tw_enc_str(e, g->name, g->name_len);
    tw_enc_cstr(e, "limit");
    s_int_or_nil(e, g->limit);
    tw_enc_cstr(e, "calls");
    s_int_or_nil(e, g->calls);
    tw_enc_cstr(e, "full");
    tw_enc_cstr(e, tw_full_name(g->full));
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, g->running);
    tw_enc_cstr(e, "pending");
    tw_enc_uint(e, g->pending);
    tw_enc_cstr(e, "ended");
    tw_enc_uint(e, g->ended);
    tw_enc_cstr(e, "cancelled");
    tw_enc_uint(e, g->cancelled);
    tw_enc_cstr(e, "admitted");
    tw_enc_uint(e, g->admitted);
}

void
tw__view_pool(tw_enc_t *e, const tw_pool_t *p)
{
    tw_enc_map(e, 11);
    tw_enc_cstr(e, "pool");
    tw_enc_str(e, p->name, p->name_len);
    tw_enc_cstr(e, "default_limit");
    s_int_or_nil(e, p->default_limit);
    tw_enc_cstr(e, "size");
    tw_enc_uint(e, p->size);
    tw_enc_cstr(e, "free");
    if (p->size) {
        tw_enc_uint(e, p->running < p->size ? p->size - p->running : 0);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, p->running);
    tw_enc_cstr(e, "pending");
    tw_enc_uint(e, p->pending);
    tw_enc_cstr(e, "ended");
    tw_enc_uint(e, p->ended);
    tw_enc_cstr(e, "cancelled");
    tw_enc_uint(e, p->cancelled);
    tw_enc_cstr(e, "locked");
    tw_enc_bool(e, p->locked);
    tw_enc_cstr(e, "closed");
    tw_enc_bool(e, p->closed);
    tw_enc_cstr(e, "groups");
    tw_enc_uint(e, p->groups.len);
}

void
tw__view_queues(tw_broker_t *b, tw_enc_t *e)
{
    tw_enc_array(e, b->reg.nhandlers);
    for (size_t i = 0; i < b->reg.nhandlers; i++) {
        const tw_handler_t *h = &b->reg.handlers[i];
        tw_enc_map(e, 3);
        tw_enc_cstr(e, "handler");
        tw_enc_str(e, h->name, h->name_len);
        tw_enc_cstr(e, "ready");
        tw_enc_uint(e, h->queue ? h->queue->len : 0);
        tw_enc_cstr(e, "workers");
        tw_enc_uint(e, h->nworkers);
    }
}

void
tw__view_pools(tw_broker_t *b, tw_enc_t *e)
{
    size_t n = 0;
    for (size_t i = 0; i < b->pools.len; i++) {
        n += b->pools.all[i] != NULL;
    }
    tw_enc_array(e, n);
    for (size_t i = 0; i < b->pools.len; i++) {
        if (b->pools.all[i]) {
            tw__view_pool(e, b->pools.all[i]);
        }
    }
}

/* Each group asked for, encoded, or counted into *n. */
static void
s_groups_each(tw_broker_t *b, const tw_pool_t *only, int at_limit,
              tw_enc_t *e, size_t *n)
{
    for (size_t i = 0; i < b->pools.len; i++) {
        const tw_pool_t *p = b->pools.all[i];
        if (!p || (only && p != only)) {
            continue;
        }
        for (size_t k = 0; k < p->groups.cap; k++) {
            const tw_group_t *g = p->groups.slots[k].val;
            if (!p->groups.slots[k].key ||
                (at_limit && !(g->limit >= 0 && !tw_group_has_room(g)))) {
                continue;
            }
            if (n) {
                (*n)++;
            } else {
                tw__view_group(e, p, g);
            }
        }
    }
}

void
tw__view_groups(tw_broker_t *b, tw_enc_t *e, const tw_pool_t *only,
                int at_limit)
{
    size_t n = 0;
    s_groups_each(b, only, at_limit, e, &n);
    tw_enc_array(e, n);
    s_groups_each(b, only, at_limit, e, NULL);
}

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

void
tw__view_station(tw_broker_t *b, tw_enc_t *e, const tw_station_t *st,
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


void
tw__view_ticks(tw_broker_t *b)
{
    tw_enc_t e;
    if (tw_status_wants(&b->status, "tick.workers")) {
        tw_enc_init(&e);
        tw_status_begin(&b->status, &e, 1);
        tw_enc_cstr(&e, "workers");
        tw_enc_array(&e, b->reg.len);
        for (size_t i = 0; i < b->reg.len; i++) {
            tw__view_worker(b, &e, b->reg.list[i]);
        }
        tw_status_send(&b->status, "tick.workers", &e);
        tw_enc_free(&e);
    }
    if (tw_status_wants(&b->status, "tick.queues")) {
        tw_enc_init(&e);
        tw_status_begin(&b->status, &e, 2);
        tw_enc_cstr(&e, "queues");
        tw__view_queues(b, &e);
        tw_enc_cstr(&e, "groups");
        tw__view_groups(b, &e, NULL, 1);
        tw_status_send(&b->status, "tick.queues", &e);
        tw_enc_free(&e);
    }
}
