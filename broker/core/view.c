/*  broker/core/view.c - the status map and a worker's map (see view.h). */
#include "broker/core/view.h"
#include "broker/core/core.h"
#include "broker/core/persist.h"
#include "broker/core/place.h"

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
               (b->pair ? S_HA_KEYS : 0);
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
