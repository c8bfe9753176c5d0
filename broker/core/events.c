/*  broker/core/events.c - status messages about tasks, groups, workers and
 *  stations (see events.h).
 */
#include "broker/core/events.h"
#include "broker/core/core.h"

#include <stdio.h>

void
tw__event_group(tw_broker_t *b, const tw_pool_t *p, const tw_group_t *g,
                const char *event)
{
    char topic[2 * TW_PROTO_MAX_NAME + 32];
    snprintf(topic, sizeof topic, "group.%s.%s.%s", p->name, g->name, event);
    if (!tw_status_wants(&b->status, topic)) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e, 5);
    tw_enc_cstr(&e, "pool");
    tw_enc_str(&e, p->name, p->name_len);
    tw_enc_cstr(&e, "group");
    tw_enc_str(&e, g->name, g->name_len);
    tw_enc_cstr(&e, "running");
    tw_enc_uint(&e, g->running);
    tw_enc_cstr(&e, "pending");
    tw_enc_uint(&e, g->pending);
    tw_enc_cstr(&e, "limit");
    if (g->limit >= 0) {
        tw_enc_int(&e, g->limit);
    } else {
        tw_enc_nil(&e);
    }
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

void
tw__event_limit_reached(tw_broker_t *b, const tw_pool_t *p, tw_group_t *g)
{
    if (!g->was_full) {
        g->was_full = 1;
        tw__event_group(b, p, g, "limit-reached");
    }
}

/* The task's groups that still exist, as an array of names. */
static void
s_task_groups(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t)
{
    size_t ng = 0;
    for (uint16_t i = 0; i < t->ngroups; i++) {
        ng += tw_pools_group_by_id(&b->pools, t->groups[i]) != NULL;
    }
    tw_enc_array(e, ng);
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g) {
            tw_enc_str(e, g->name, g->name_len);
        }
    }
}

void
tw__event_task(tw_broker_t *b, const tw_task_t *t, const char *topic,
               const tw_task_event_x_t *x)
{
    if (!tw_status_wants(&b->status, topic)) {
        return;
    }
    const tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    const tw_handler_t *h = &b->reg.handlers[t->handler];
    const char *err = x && x->error ? x->error
                      : t->error && t->state != TW_ST_OK &&
                              t->state <= TW_ST_LOST
                          ? t->error
                          : NULL;
    int has_run = x && x->run_ms >= 0;
    int has_retry = x && x->retry_in_ms >= 0;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e,
                    8 + (err != NULL) + has_run + has_retry);
    tw_enc_cstr(&e, "id");
    tw_enc_uint(&e, t->id);
    tw_enc_cstr(&e, "pool");
    tw_enc_str(&e, p ? p->name : "", p ? p->name_len : 0);
    tw_enc_cstr(&e, "groups");
    s_task_groups(b, &e, t);
    tw_enc_cstr(&e, "handler");
    tw_enc_str(&e, h->name, h->name_len);
    tw_enc_cstr(&e, "state");
    tw_enc_cstr(&e, tw_proto_state_name(t->state));
    tw_enc_cstr(&e, "worker");
    tw_enc_uint(&e, t->worker);
    tw_enc_cstr(&e, "attempt");
    tw_enc_uint(&e, t->attempt);
    tw_enc_cstr(&e, "priority");
    tw_enc_int(&e, t->priority);
    if (err) {
        tw_enc_cstr(&e, "error");
        tw_enc_cstr(&e, err);
    }
    if (has_run) {
        tw_enc_cstr(&e, "run_ms");
        tw_enc_uint(&e, (uint64_t)x->run_ms);
    }
    if (has_retry) {
        tw_enc_cstr(&e, "retry_in_ms");
        tw_enc_uint(&e, (uint64_t)x->retry_in_ms);
    }
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

void
tw__event_worker(tw_broker_t *b, const char *topic, const tw_bworker_t *w,
                 const char *reason, uint64_t from, int has_from)
{
    if (!tw_status_wants(&b->status, topic)) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e, 6 + (reason != NULL) + has_from);
    tw_enc_cstr(&e, "wid");
    tw_enc_uint(&e, w->id);
    tw_enc_cstr(&e, "name");
    tw_enc_cstr(&e, w->name ? w->name : "");
    tw_enc_cstr(&e, "host");
    tw_enc_cstr(&e, w->host ? w->host : "");
    tw_enc_cstr(&e, "slots");
    tw_enc_uint(&e, w->slots);
    tw_enc_cstr(&e, "running");
    tw_enc_uint(&e, w->inflight.len);
    tw_enc_cstr(&e, "stations");
    tw_enc_uint(&e, w->nstations);
    if (reason) {
        tw_enc_cstr(&e, "reason");
        tw_enc_cstr(&e, reason);
    }
    if (has_from) {
        tw_enc_cstr(&e, "from");
        tw_enc_uint(&e, from);
    }
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

void
tw__event_station(tw_broker_t *b, const tw_station_t *st, const char *event,
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

void
tw__event_forget_station(tw_broker_t *b, const tw_station_t *st)
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
