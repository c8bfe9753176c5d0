/*  broker/core/recs.c - task records, pages, retry and purge (see recs.h).
 *
 *  Times: the sets order records by loop time (a clock that never goes
 *  back); the maps answer wall-clock milliseconds, taken when a task was
 *  submitted, dispatched and ended, and for `changed_ms` converted from
 *  loop time by the offset between the clocks at start.
 */
#include "broker/core/recs.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/flow.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/jsonw.h"

#include <stdio.h>
#include <string.h>

/* The longest `error` of a summary (PROTOCOL.md 16.1). */
#define S_ERROR_MAX 256

/* Wall-clock ms of loop time `loop_ms`, by the offset taken at start, so
 * that a record answers the same time every time it is read. */
static uint64_t
s_wall_of(tw_broker_t *b, uint64_t loop_ms)
{
    int64_t w = (int64_t)loop_ms + b->wall_off;
    return w > 0 ? (uint64_t)w : 0;
}

/* `n` cut to at most `max` bytes at a UTF-8 character boundary. */
static size_t
s_cut(const char *s, size_t n, size_t max)
{
    if (n <= max) {
        return n;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) {
        max--;
    }
    return max;
}

/* The summary's error: the first line of the last run's error, or of
 * the task's error text; NULL when there is none. */
static const char *
s_error(const tw_task_t *t, size_t *len)
{
    const char *s = NULL;
    if (t->state == TW_ST_OK) {
        return NULL;
    }
    if (t->more && t->more->runs.len) {
        s = t->more->runs.runs[t->more->runs.len - 1].error;
    }
    if (!s && t->state <= TW_ST_LOST) {
        s = t->error;
    }
    if (!s) {
        return NULL;
    }
    size_t n = strcspn(s, "\n");
    *len = s_cut(s, n, S_ERROR_MAX);
    return s;
}

static void
s_opt_wall(tw_enc_t *e, uint64_t wall)
{
    if (wall) {
        tw_enc_uint(e, wall);
    } else {
        tw_enc_nil(e);
    }
}

/* The 13 summary pairs, without the map header. */
static void
s_summary_pairs(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t)
{
    const tw_handler_t *h = &b->reg.handlers[t->handler];
    const tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    tw_enc_cstr(e, "id");
    tw_enc_uint(e, t->id);
    tw_enc_cstr(e, "handler");
    tw_enc_str(e, h->name, h->name_len);
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, tw_proto_state_name(t->state));
    tw_enc_cstr(e, "pool");
    tw_enc_str(e, p ? p->name : "default", p ? p->name_len : 7);
    tw_enc_cstr(e, "groups");
    tw__event_task_groups(b, e, t);
    tw_enc_cstr(e, "priority");
    tw_enc_int(e, t->priority);
    tw_enc_cstr(e, "attempt");
    tw_enc_uint(e, t->attempt);
    tw_enc_cstr(e, "worker");
    tw_enc_uint(e, t->worker);
    tw_enc_cstr(e, "submitted_ms");
    tw_enc_uint(e, t->sub_wall);
    tw_enc_cstr(e, "started_ms");
    s_opt_wall(e, t->run_wall);
    tw_enc_cstr(e, "ended_ms");
    s_opt_wall(e, t->state <= TW_ST_LOST ? t->end_wall : 0);
    tw_enc_cstr(e, "changed_ms");
    tw_enc_uint(e, s_wall_of(b, t->rec.changed_ms));
    tw_enc_cstr(e, "error");
    size_t el = 0;
    const char *err = s_error(t, &el);
    if (err) {
        tw_enc_str(e, err, el);
    } else {
        tw_enc_nil(e);
    }
}

void
tw__recs_summary(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t)
{
    tw_enc_map(e, 13);
    s_summary_pairs(b, e, t);
}

/* A payload value (4.7): the bytes, or msgpack nil for none. */
static void
s_payload(tw_enc_t *e, const void *p, size_t n)
{
    static const unsigned char nil = 0xc0;
    if (n) {
        tw_enc_bin(e, p, n);
    } else {
        tw_enc_bin(e, &nil, 1);
    }
}

/* The runs of `t`: those kept, then the one in progress, or the only
 * run of a task that succeeded at once. */
static void
s_runs(tw_enc_t *e, const tw_task_t *t)
{
    const tw_attempts_t *h = t->more ? &t->more->runs : NULL;
    uint32_t kept = h ? h->len : 0;
    int running = t->state == TW_ST_RUNNING && t->run_wall;
    int only_ok = t->state == TW_ST_OK && kept == 0 && t->attempt > 0;
    tw_enc_array(e, kept + (size_t)running + (size_t)only_ok);
    if (h) {
        tw_attempts_encode(h, e);
    }
    if (running || only_ok) {
        tw_attempts_encode_run(e, t->attempt, t->worker, t->run_wall,
                               only_ok ? t->end_wall : 0, t->state, NULL, 0,
                               NULL, 0);
    }
}

/* A payload as JSON text cut to `max` bytes: NULL when it fits whole
 * (then it is sent as bytes), else the cut text (malloc'ed). */
static char *
s_cut_json(const void *p, size_t n, size_t max, size_t *len)
{
    tw_jsonw_t w;
    tw_jsonw_init(&w, max);
    tw_jsonw_msgpack(&w, p, n, NULL);
    if (!w.cut) {
        tw_jsonw_free(&w);
        return NULL;
    }
    return tw_jsonw_take(&w, len);
}

/* `key` (args or result) of a detail: the payload, or for the HTTP API
 * (preview_max > 0) null with its preview when its JSON text is longer;
 * then "<key>_truncated" for the HTTP API. A `kept_preview` (the record
 * kept only a preview) counts as cut. Returns the pairs written. */
static size_t
s_detail_payload(tw_enc_t *e, const char *key, const void *p, size_t n,
                 const char *kept_preview, size_t kpl, int has,
                 size_t preview_max, int count_only)
{
    size_t cl = 0;
    char *cut = NULL;
    if (preview_max && has && !kept_preview) {
        cut = s_cut_json(p, n, preview_max, &cl);
    }
    const char *pv = kept_preview ? kept_preview : cut;
    size_t pl = kept_preview ? kpl : cl;
    size_t pairs = 1 + (preview_max ? 1 : 0) + (pv != NULL);
    if (count_only) {
        tw_free(cut);
        return pairs;
    }
    char name[32];
    tw_enc_cstr(e, key);
    if (pv && preview_max) {
        tw_enc_nil(e);
    } else if (pv) {
        /* The wire: a kept preview instead of the bytes. */
        tw_enc_nil(e);
    } else if (has) {
        s_payload(e, p, n);
    } else {
        tw_enc_nil(e);
    }
    if (preview_max) {
        snprintf(name, sizeof name, "%s_truncated", key);
        tw_enc_cstr(e, name);
        tw_enc_bool(e, pv != NULL);
    }
    if (pv) {
        snprintf(name, sizeof name, "%s_preview", key);
        tw_enc_cstr(e, name);
        tw_enc_str(e, pv, pl);
    }
    tw_free(cut);
    return pairs;
}

void
tw__recs_detail(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t,
                size_t preview_max)
{
    const tw_task_more_t *m = t->more;
    int ended = t->state <= TW_ST_LOST;
    const void *ap = !ended ? t->data : m ? m->args : NULL;
    size_t an = !ended ? t->data_len : m ? m->args_len : 0;
    const char *kp = ended && m && m->preview ? m->args : NULL;
    int ok = t->state == TW_ST_OK;
    char why[256];
    size_t wlen = tw__flow_why(b, t, why, sizeof why);
    size_t pairs = 13 + 9 +
                   s_detail_payload(e, "args", ap, an, kp, an, 1,
                                    preview_max, 1) +
                   s_detail_payload(e, "result", t->data, t->data_len, NULL,
                                    0, ok, preview_max, 1);
    tw_enc_map(e, pairs);
    s_summary_pairs(b, e, t);
    tw_enc_cstr(e, "timeout_ms");
    tw_enc_uint(e, t->timeout_ms);
    tw_enc_cstr(e, "retries");
    tw_enc_uint(e, t->retries);
    tw_enc_cstr(e, "key");
    if (t->key) {
        tw_enc_str(e, t->key, t->key_len);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "cancel_requested");
    tw_enc_bool(e, t->cancel_requested);
    tw_enc_cstr(e, "retried");
    tw_enc_uint(e, m ? m->retried : 0);
    s_detail_payload(e, "args", ap, an, kp, an, 1, preview_max, 0);
    tw_enc_cstr(e, "args_bytes");
    tw_enc_uint(e, !ended ? t->data_len : m ? m->args_bytes : 0);
    s_detail_payload(e, "result", t->data, t->data_len, NULL, 0, ok,
                     preview_max, 0);
    tw_enc_cstr(e, "result_bytes");
    tw_enc_uint(e, ok ? t->data_len : 0);
    tw_enc_cstr(e, "attempts");
    s_runs(e, t);
    tw_enc_cstr(e, "why"); /* why it waits (PROTOCOL.md 18.9) */
    if (wlen) {
        tw_enc_str(e, why, wlen);
    } else {
        tw_enc_nil(e);
    }
}

/* 1 if the `n` bytes at `s` are exactly the filter string `f`. */
static int
s_is(const char *f, size_t fl, const char *s, size_t n)
{
    return fl == n && memcmp(f, s, n) == 0;
}

int
tw__recs_match(tw_broker_t *b, const tw_task_t *t, const tw_tfilter_t *f)
{
    if (!tw_tfilter_has_state(f, t->state)) {
        return 0;
    }
    const tw_handler_t *h = &b->reg.handlers[t->handler];
    if (f->handler &&
        !s_is(f->handler, f->handler_len, h->name, h->name_len)) {
        return 0;
    }
    if (f->pool) {
        const tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
        if (!p || !s_is(f->pool, f->pool_len, p->name, p->name_len)) {
            return 0;
        }
    }
    if (f->group) {
        int in = 0;
        for (uint16_t i = 0; i < t->ngroups && !in; i++) {
            const tw_group_t *g = tw_pools_group_by_id(&b->pools,
                                                       t->groups[i]);
            in = g && s_is(f->group, f->group_len, g->name, g->name_len);
        }
        if (!in) {
            return 0;
        }
    }
    if (f->text) {
        size_t el = 0;
        const char *err = s_error(t, &el);
        if (!tw_tfilter_text_in_id(f, t->id) &&
            !tw_tfilter_text_in(f, h->name, h->name_len) &&
            !(err && tw_tfilter_text_in(f, err, el))) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    tw_broker_t *b;
    const tw_tfilter_t *f;
} s_match_t;

static int
s_match_cb(const tw_trec_t *rec, void *arg)
{
    s_match_t *x = arg;
    return tw__recs_match(x->b, tw_tasks_of_rec(rec), x->f);
}

/* Walk one page of `f` into a malloc'ed array of f->limit records. */
static tw_trec_t **
s_walk(tw_broker_t *b, const tw_tfilter_t *f, tw_trecs_page_t *pg)
{
    tw_trec_t **out = tw_malloc((f->limit ? f->limit : 1) * sizeof *out);
    s_match_t x = {b, f};
    tw_trecs_page(&b->tasks.recs, f, uv_now(b->loop), TW__RECS_BUDGET,
                  s_match_cb, &x, out, pg);
    return out;
}

void
tw__recs_page(tw_broker_t *b, tw_enc_t *e, const tw_tfilter_t *f)
{
    tw_trecs_page_t pg;
    tw_trec_t **out = s_walk(b, f, &pg);
    tw_enc_map(e, 3);
    tw_enc_cstr(e, "tasks");
    tw_enc_array(e, pg.n);
    for (size_t i = 0; i < pg.n; i++) {
        tw__recs_summary(b, e, tw_tasks_of_rec(out[i]));
    }
    tw_enc_cstr(e, "next");
    if (pg.more) {
        char cur[TW_TFILTER_CURSOR_LEN + 1];
        tw_tfilter_cursor_make(f, b->boot, pg.next, cur);
        tw_enc_cstr(e, cur);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "scanned");
    tw_enc_uint(e, pg.scanned);
    tw_free(out);
}

void
tw__recs_select(tw_broker_t *b, const tw_tfilter_t *f, uint64_t **ids,
                size_t *n, int *more)
{
    tw_trecs_page_t pg;
    tw_trec_t **out = s_walk(b, f, &pg);
    *ids = tw_malloc((pg.n ? pg.n : 1) * sizeof **ids);
    for (size_t i = 0; i < pg.n; i++) {
        (*ids)[i] = tw_tasks_of_rec(out[i])->id;
    }
    *n = pg.n;
    *more = pg.more;
    tw_free(out);
}

/* ESTATE with the reason: what state `t` is in. */
static int
s_wrong_state(const tw_task_t *t, const char *need, char *why, size_t wlen)
{
    snprintf(why, wlen, "task %llu is %s: %s",
             (unsigned long long)t->id, tw_proto_state_name(t->state), need);
    return TW_ESTATE;
}

int
tw__recs_retry(tw_broker_t *b, tw_task_t *t, char *why, size_t wlen)
{
    if (t->state > TW_ST_LOST || t->state == TW_ST_OK) {
        return s_wrong_state(t, "only a task that ended and did not "
                                "succeed can be retried", why, wlen);
    }
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p && p->closed) {
        snprintf(why, wlen, "task %llu: pool %s is closed",
                 (unsigned long long)t->id, p->name);
        return TW_ECLOSED;
    }
    int was_cancelled = t->state == TW_ST_CANCELLED;
    if (tw_tasks_revive(&b->tasks, t) != 0) {
        return s_wrong_state(t, "its arguments were not kept", why, wlen);
    }
    /* Undo what its end counted; it ends again later. */
    if (p) {
        if (was_cancelled && p->cancelled) {
            p->cancelled--;
        } else if (!was_cancelled && p->ended) {
            p->ended--;
        }
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g && was_cancelled && g->cancelled) {
            g->cancelled--;
        } else if (g && !was_cancelled && g->ended) {
            g->ended--;
        }
    }
    tw_task_more_t *m = tw_tasks_more(t);
    m->retried++;
    m->runs_base = t->attempt;
    t->cancel_requested = 0;
    t->due_ms = 0;
    t->end_wall = 0;
    tw_bclient_t *c = t->client ? tw_clients_get(&b->clients, t->client)
                                : NULL;
    if (c) {
        c->outstanding++; /* its outcome is pushed again */
    }
    b->st.retried_manual++;
    tw__flow_enqueue(b, t);
    tw_task_event_x_t x = {.run_ms = -1, .retry_in_ms = 0, .manual = 1};
    tw__event_task(b, t, "task.retry", &x);
    return 0;
}

int
tw__recs_purge(tw_broker_t *b, tw_task_t *t, char *why, size_t wlen)
{
    if (t->state > TW_ST_LOST) {
        return s_wrong_state(t, "only an ended task can be purged", why,
                             wlen);
    }
    tw_tasks_forget(&b->tasks, t);
    return 0;
}

int
tw__recs_msg_has_filter(const tw_msg_t *m)
{
    return m->f[TW_F_STATE] || m->f[TW_F_HANDLER] || m->f[TW_F_GROUP] ||
           m->f[TW_F_POOL] || m->f[TW_F_SINCE] || m->f[TW_F_TEXT] ||
           m->f[TW_F_CURSOR];
}

int
tw__recs_filter_msg(tw_broker_t *b, const tw_msg_t *m, tw_tfilter_t *f,
                    uint32_t default_limit, uint32_t max_limit, char *why,
                    size_t wlen)
{
    static const struct {
        tw_field_t field;
        const char *name;
    } strs[] = {{TW_F_HANDLER, "handler"},
                {TW_F_GROUP, "group"},
                {TW_F_POOL, "pool"},
                {TW_F_TEXT, "text"}};
    tw_tfilter_init(f, default_limit);
    size_t n;
    const char *s = tw_msg_str(m, TW_F_STATE, &n);
    int rc = 0;
    if (s) {
        rc = tw_tfilter_state(f, s, n, why, wlen);
    }
    for (size_t i = 0; rc == 0 && i < sizeof strs / sizeof *strs; i++) {
        s = tw_msg_str(m, strs[i].field, &n);
        if (s) {
            rc = tw_tfilter_string(f, strs[i].name, s, n, why, wlen);
        }
    }
    if (rc == 0 && m->f[TW_F_SINCE]) {
        uint64_t since = tw_msg_uint(m, TW_F_SINCE, 0);
        if (since == 0) {
            snprintf(why, wlen, "since: must be above 0 ms");
            rc = TW_EINVAL;
        }
        f->since_ms = since;
    }
    if (rc == 0 && m->f[TW_F_LIMIT]) {
        rc = tw_tfilter_limit(f, tw_msg_int(m, TW_F_LIMIT, 0), max_limit,
                              why, wlen);
    }
    s = tw_msg_str(m, TW_F_CURSOR, &n);
    if (rc == 0 && s) {
        rc = tw_tfilter_cursor_parse(f, b->boot, s, n, why, wlen);
    }
    return rc == 0 ? 0 : TW_EINVAL;
}

/* The states a bulk request may name: ended and not ok for a retry, any
 * ended state for a purge. */
#define S_FAILED_BITS                                                        \
    ((1u << TW_ST_ERROR) | (1u << TW_ST_TIMEOUT) | (1u << TW_ST_LOST))
#define S_RETRY_BITS (S_FAILED_BITS | (1u << TW_ST_CANCELLED))
#define S_PURGE_BITS (S_RETRY_BITS | (1u << TW_ST_OK))

int
tw__recs_bulk_check(const tw_tfilter_t *f, int retry, char *why, size_t wlen)
{
    uint32_t allowed = retry ? S_RETRY_BITS : S_PURGE_BITS;
    if (!f->states || (f->states & ~allowed)) {
        snprintf(why, wlen, "state: %s needs a state of ended tasks%s",
                 retry ? "retry" : "purge",
                 retry ? " that did not succeed (failed, error, timeout, "
                         "lost, cancelled)"
                       : "");
        return TW_EINVAL;
    }
    return 0;
}

void
tw__recs_apply(tw_broker_t *b, int retry, const uint64_t *ids, size_t n,
               int more, tw_enc_t *e)
{
    /* Apply each, remembering the refusals to answer after the ids done. */
    int *codes = tw_calloc(n ? n : 1, sizeof *codes);
    char **whys = tw_calloc(n ? n : 1, sizeof *whys);
    char why[256];
    size_t ndone = 0;
    for (size_t i = 0; i < n; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, ids[i]);
        if (!t) {
            codes[i] = TW_ENOENT;
            snprintf(why, sizeof why, "task %llu is not known",
                     (unsigned long long)ids[i]);
        } else if (retry) {
            codes[i] = tw__recs_retry(b, t, why, sizeof why);
        } else {
            codes[i] = tw__recs_purge(b, t, why, sizeof why);
        }
        if (codes[i]) {
            whys[i] = tw_strdup(why);
        } else {
            ndone++;
        }
    }
    tw_enc_map(e, 3);
    tw_enc_cstr(e, "done");
    tw_enc_array(e, ndone);
    for (size_t i = 0; i < n; i++) {
        if (!codes[i]) {
            tw_enc_uint(e, ids[i]);
        }
    }
    tw_enc_cstr(e, "refused");
    tw_enc_array(e, n - ndone);
    for (size_t i = 0; i < n; i++) {
        if (codes[i]) {
            tw_enc_map(e, 3);
            tw_enc_cstr(e, "id");
            tw_enc_uint(e, ids[i]);
            tw_enc_cstr(e, "code");
            tw_enc_int(e, codes[i]);
            tw_enc_cstr(e, "error");
            tw_enc_cstr(e, whys[i]);
            tw_free(whys[i]);
        }
    }
    tw_enc_cstr(e, "more");
    tw_enc_bool(e, more);
    tw_free(whys);
    tw_free(codes);
}
