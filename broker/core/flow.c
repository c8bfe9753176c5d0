/*  broker/core/flow.c - the task life cycle and dispatch (see flow.h). */
#include "broker/core/flow.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/outbox.h"
#include "broker/core/persist.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- counters --------------------------------------------------------- */

/* Apply `dp` to pending and `dr` to running of the task's pool and
 * groups, publishing group.*.empty when a group drains. */
static void
s_count(tw_broker_t *b, const tw_task_t *t, int dp, int dr)
{
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        p->pending += (uint64_t)(int64_t)dp;
        p->running += (uint64_t)(int64_t)dr;
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (!g) {
            continue;
        }
        g->pending += (uint64_t)(int64_t)dp;
        g->running += (uint64_t)(int64_t)dr;
        if (dr < 0 && tw_group_has_room(g)) {
            g->was_full = 0;
        }
        if ((dp < 0 || dr < 0) && !g->pending && !g->running && p) {
            tw__event_group(b, p, g, "empty");
        }
    }
}

int64_t
tw__flow_run_ms(const tw_broker_t *b, const tw_task_t *t)
{
    if (t->state != TW_ST_RUNNING) {
        return -1;
    }
    uint64_t now = uv_now(b->loop);
    return now > t->due_ms ? (int64_t)(now - t->due_ms) : 0;
}

/* ---- pending ---------------------------------------------------------- */

/* Put a pending task in its ready queue or, if not due yet, in the
 * delayed heap. Counters are not touched. */
static void
s_place_pending(tw_broker_t *b, tw_task_t *t)
{
    if (t->due_ms > uv_now(b->loop)) {
        tw_queue_push(&b->delayed, t); /* the loop arms its timer */
        return;
    }
    tw_queue_push(b->reg.handlers[t->handler].queue, t);
    b->ready++;
}

void
tw__flow_enqueue(tw_broker_t *b, tw_task_t *t)
{
    t->state = TW_ST_PENDING;
    if (!t->sub_wall) {
        t->sub_wall = tw_wall_ms();
    }
    tw_tasks_changed(&b->tasks, t, uv_now(b->loop));
    b->pending++;
    s_count(b, t, +1, 0);
    s_place_pending(b, t);
    TW__PERSIST_TASK(b, t);
}

/* A task leaving a ready queue (cancelled) or parking elsewhere may have
 * been woken by room a stopped task handed over: pass that room on to the
 * next task parked on the same pool or groups, except on `except`. Extra
 * wake-ups are harmless; a woken task is checked again at dispatch. */
static void
s_pass_room(tw_broker_t *b, const tw_task_t *t, const tw_queue_t *except)
{
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p && &p->parked != except && tw_pool_has_room(p)) {
        tw__flow_unpark(b, &p->parked, 1);
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g && &g->parked != except && tw_group_has_room(g)) {
            tw__flow_unpark(b, &g->parked, 1);
        }
    }
}

void
tw__flow_unpend(tw_broker_t *b, tw_task_t *t)
{
    int was_ready = 0;
    if (t->inq) {
        tw_queue_t *q = t->inq;
        tw_queue_remove(q, t);
        was_ready = q->ready;
        if (q->ready) {
            b->ready--;
        }
    }
    b->pending--;
    s_count(b, t, -1, 0);
    if (was_ready) {
        s_pass_room(b, t, NULL);
    }
}

/* Move the most urgent task parked on `q` back to its ready queue. */
static void
s_unpark(tw_broker_t *b, tw_queue_t *q)
{
    tw_task_t *t = tw_queue_pop(q);
    if (t) {
        tw_queue_push(b->reg.handlers[t->handler].queue, t);
        b->ready++;
    }
}

void
tw__flow_unpark(tw_broker_t *b, tw_queue_t *q, size_t n)
{
    while (n-- && q->len) {
        s_unpark(b, q);
    }
}

/* ---- blocked (--after) ------------------------------------------------ */

/* Release blocked (or new) task `t`: with `parents` (its with-results
 * parents, n of them) its arguments become their results followed by its
 * own; then it is pending. `event`: publish task.released and count it. */
static void
s_release(tw_broker_t *b, tw_task_t *t, const uint64_t *parents, size_t n,
          int event)
{
    if (parents) {
        static const unsigned char nil = 0xc0;
        const void **res = tw_malloc(n * sizeof *res);
        size_t *lens = tw_malloc(n * sizeof *lens);
        for (size_t i = 0; i < n; i++) {
            const tw_task_t *p = tw_tasks_get(&b->tasks, parents[i]);
            int ok = p && p->state == TW_ST_OK;
            res[i] = !ok ? NULL : p->data_len ? p->data : &nil;
            lens[i] = !ok ? 0 : p->data_len ? p->data_len : 1;
        }
        void *args = NULL;
        size_t alen = 0;
        int rc = tw_deps_args(res, lens, n, t->data, t->data_len,
                              (size_t)b->cfg->max_payload, &args, &alen);
        tw_free(res);
        tw_free(lens);
        if (rc != 0) {
            char msg[160];
            int m = rc == TW_E2BIG
                        ? snprintf(msg, sizeof msg,
                                   "the parents' results and the arguments "
                                   "exceed max-payload (%lld bytes)",
                                   b->cfg->max_payload)
                        : snprintf(msg, sizeof msg,
                                   "the arguments are not one msgpack "
                                   "value");
            tw__flow_end(b, t, TW_ST_ERROR, NULL, 0, msg, (size_t)m);
            return;
        }
        b->tasks.payload_bytes += alen;
        b->tasks.payload_bytes -= t->data_len;
        tw_free(t->data);
        t->data = args;
        t->data_len = (uint32_t)alen;
    }
    tw__flow_enqueue(b, t);
    if (event) {
        b->st.released++;
        tw__event_task(b, t, "task.released", NULL);
    }
}

/* End blocked (or new) task `t`: a parent did not succeed. */
static void
s_upstream_failed(tw_broker_t *b, tw_task_t *t, const tw_deps_decision_t *d)
{
    char msg[96];
    tw_deps_reason(d, msg, sizeof msg);
    b->st.upstream_failed++;
    tw__flow_end(b, t, TW_ST_CANCELLED, NULL, 0, msg, strlen(msg));
}

/* Task `id` ended with `state`: apply what that settles for the tasks
 * blocked on it (and, through cancellations, on them). */
static void
s_after_ended(tw_broker_t *b, uint64_t id, int state)
{
    if (!tw_deps_count(b->deps)) {
        return;
    }
    tw_deps_out_t out = {0};
    tw_deps_ended(b->deps, id, state, &out);
    for (size_t i = 0; i < out.len; i++) {
        const tw_deps_decision_t *d = &out.v[i];
        tw_task_t *t = tw_tasks_get(&b->tasks, d->child);
        if (!t || t->state != TW_ST_BLOCKED) {
            continue;
        }
        if (d->verdict == TW_DEPS_RELEASE) {
            s_release(b, t, d->parents, d->nparents, 1);
        } else {
            s_upstream_failed(b, t, d);
        }
    }
    tw_deps_out_free(&out);
}

void
tw__flow_after(tw_broker_t *b, tw_task_t *t, const uint64_t *parents,
               size_t n, int mode, int wr, int publish)
{
    uint8_t *st = tw_malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        const tw_task_t *p = tw_tasks_get(&b->tasks, parents[i]);
        /* Only recovery meets a parent the table has forgotten (its
         * outcome expired while the broker was down): lost to us. */
        st[i] = p ? p->state : TW_ST_LOST;
    }
    tw_deps_decision_t d;
    int rc = tw_deps_add(b->deps, t->id, parents, st, n, mode, wr, &d,
                         NULL);
    tw_free(st);
    if (rc != 0) {
        d.verdict = TW_DEPS_RELEASE; /* nothing to wait for */
        wr = 0;
    }
    if (d.verdict == TW_DEPS_WAIT) {
        t->state = TW_ST_BLOCKED;
        TW__PERSIST_TASK(b, t);
    }
    if (publish) {
        tw__event_task(b, t, "task.submitted", NULL);
    }
    if (d.verdict == TW_DEPS_RELEASE) {
        s_release(b, t, wr ? parents : NULL, n, t->state == TW_ST_BLOCKED);
    } else if (d.verdict == TW_DEPS_CANCEL) {
        s_upstream_failed(b, t, &d);
    }
}

/* One blocked task read back from the store: taken out of the engine and
 * added again with its parents' states now. */
static void
s_recover_one(uint64_t id, void *val, void *arg)
{
    tw_broker_t *b = arg;
    tw_task_t *t = val;
    size_t n;
    int mode, wr;
    const uint64_t *par = t->state == TW_ST_BLOCKED
                              ? tw_deps_parents(b->deps, id, &n, &mode, &wr,
                                                NULL)
                              : NULL;
    if (!par) {
        return; /* not blocked, or settled meanwhile by a parent's end */
    }
    uint64_t *copy = tw_malloc(n * sizeof *copy);
    memcpy(copy, par, n * sizeof *copy);
    tw_deps_remove(b->deps, id);
    tw__flow_after(b, t, copy, n, mode, wr, 0);
    tw_free(copy);
}

void
tw__flow_recover_blocked(tw_broker_t *b)
{
    if (tw_deps_count(b->deps)) {
        tw_idmap_each(&b->tasks.by_id, s_recover_one, b);
    }
}

/* ---- delayed ---------------------------------------------------------- */

void
tw__flow_init(tw_broker_t *b)
{
    tw_queue_init_by(&b->delayed, tw_queue_due_before);
    b->deps = tw_deps_new();
}

void
tw__flow_due(tw_broker_t *b, uint64_t now_ms)
{
    tw_task_t *t;
    while ((t = tw_queue_peek(&b->delayed)) && t->due_ms <= now_ms) {
        tw_queue_pop(&b->delayed);
        tw_queue_push(b->reg.handlers[t->handler].queue, t);
        b->ready++;
    }
}

uint64_t
tw__flow_next_due(const tw_broker_t *b)
{
    const tw_task_t *t = tw_queue_peek(&b->delayed);
    return t ? t->due_ms : 0;
}

/* ---- running ---------------------------------------------------------- */

/* The heap a task that cannot start now must wait on, or NULL if it may
 * start: its pool when full, else the first of its groups that is full. */
static tw_queue_t *
s_blocked_on(tw_broker_t *b, tw_task_t *t)
{
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p && !tw_pool_has_room(p)) {
        return &p->parked;
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g && !tw_group_has_room(g)) {
            if (p) {
                tw__event_limit_reached(b, p, g);
            }
            return &g->parked;
        }
    }
    return NULL;
}

static void
s_start(tw_broker_t *b, tw_task_t *t, tw_bworker_t *w)
{
    /* The wait in the queue: since it was due (submitted, or the end of
     * a retry's backoff), to now. */
    uint64_t now = uv_now(b->loop);
    uint64_t from = t->due_ms > t->t_ms ? t->due_ms : t->t_ms;
    tw_hist_add(&b->reg.handlers[t->handler].wait,
                now > from ? now - from : 0);
    s_count(b, t, -1, +1);
    b->pending--;
    t->state = TW_ST_RUNNING;
    t->worker = w->id;
    t->attempt++;
    t->ep = b->next_ep++;
    t->due_ms = uv_now(b->loop); /* the attempt's run time counts from here */
    t->run_wall = tw_wall_ms();
    tw_tasks_changed(&b->tasks, t, t->due_ms);
    t->chan_open = 0;              /* a new attempt opens its own channel */
    tw_task_list_push(&w->inflight, t);
    b->running++;
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        t->dseq = ++p->next_dseq;
        tw_task_plist_push(&p->running_list, t);
    }
    TW__PERSIST_TASK(b, t);
    tw__event_task(b, t, "task.started", NULL);
}

void
tw__flow_hold(tw_broker_t *b, tw_task_t *t)
{
    s_count(b, t, 0, +1);
    t->state = TW_ST_RUNNING;
    t->worker = 0;
    tw_tasks_changed(&b->tasks, t, uv_now(b->loop));
    b->running++;
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        t->dseq = ++p->next_dseq;
        tw_task_plist_push(&p->running_list, t);
    }
}

void
tw__flow_attach(tw_broker_t *b, tw_task_t *t, tw_bworker_t *w)
{
    t->worker = w->id;
    tw_task_list_push(&w->inflight, t);
    b->adopted++;
    TW__PERSIST_TASK(b, t);
}

/* Undo s_start for a TASKS message the socket refused. */
static void
s_unstart(tw_broker_t *b, tw_task_t *t, tw_bworker_t *w)
{
    tw_task_list_remove(&w->inflight, t);
    b->running--;
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        tw_task_plist_remove(&p->running_list, t);
    }
    s_count(b, t, +1, -1);
    b->pending++;
    t->attempt--;
    t->state = TW_ST_PENDING;
    tw_tasks_changed(&b->tasks, t, uv_now(b->loop));
    tw_queue_push(b->reg.handlers[t->handler].queue, t);
    b->ready++;
}

void
tw__flow_halt(tw_broker_t *b, tw_task_t *t)
{
    int64_t run = tw__flow_run_ms(b, t);
    if (run >= 0 && t->worker) {
        tw_hist_add(&b->reg.handlers[t->handler].run, (uint64_t)run);
    }
    tw_bworker_t *w = tw_registry_by_id(&b->reg, t->worker);
    if (w) {
        tw_task_list_remove(&w->inflight, t);
    }
    b->running--;
    s_count(b, t, 0, -1);
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        tw_task_plist_remove(&p->running_list, t);
        tw__flow_unpark(b, &p->parked, 1);
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g) {
            tw__flow_unpark(b, &g->parked, 1);
        }
    }
}

/* ---- ended ------------------------------------------------------------ */

/* "waiting for tasks 12, 13[ and N more]": the parents of blocked task
 * `t` that have not ended, at most 16 named. */
static size_t
s_why_blocked(const tw_broker_t *b, const tw_task_t *t, char *buf,
              size_t cap)
{
    size_t n = 0, named = 0, more = 0;
    uint64_t ids[16];
    const uint64_t *par = tw_deps_parents(b->deps, t->id, &n, NULL, NULL,
                                          NULL);
    for (size_t i = 0; par && i < n; i++) {
        const tw_task_t *p = tw_tasks_get(&b->tasks, par[i]);
        if (p && p->state <= TW_ST_LOST) {
            continue; /* ended */
        }
        if (named < 16) {
            ids[named++] = par[i];
        } else {
            more++;
        }
    }
    if (named == 0) {
        return 0;
    }
    size_t len = (size_t)snprintf(buf, cap, "waiting for task%s",
                                  named > 1 || more ? "s" : "");
    for (size_t i = 0; i < named && len < cap; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "%s %llu",
                                i ? "," : "", (unsigned long long)ids[i]);
    }
    if (more && len < cap) {
        len += (size_t)snprintf(buf + len, cap - len, " and %zu more", more);
    }
    return len < cap ? len : cap - 1;
}

size_t
tw__flow_why(const tw_broker_t *b, const tw_task_t *t, char *buf, size_t cap)
{
    int n = 0;
    if (t->state == TW_ST_BLOCKED) {
        return s_why_blocked(b, t, buf, cap);
    }
    if (t->state != TW_ST_PENDING || !t->inq) {
        return 0;
    }
    const tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (t->inq == &b->delayed) {
        uint64_t now = uv_now(b->loop);
        uint64_t wall = tw_wall_ms() + (t->due_ms > now ? t->due_ms - now : 0);
        time_t sec = (time_t)(wall / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(buf, cap, "not before %s.%03uZ", when,
                     (unsigned)(wall % 1000));
    } else if (p && t->inq == &p->parked) {
        n = snprintf(buf, cap, "pool %s at its size %llu", p->name,
                     (unsigned long long)p->size);
    } else {
        for (uint16_t i = 0; i < t->ngroups; i++) {
            const tw_group_t *g = tw_pools_group_by_id(&b->pools,
                                                       t->groups[i]);
            if (g && t->inq == &g->parked) {
                n = snprintf(buf, cap, "group %s at its limit %lld", g->name,
                             (long long)g->limit);
                break;
            }
        }
    }
    return n > 0 ? ((size_t)n < cap ? (size_t)n : cap - 1) : 0;
}

void
tw__flow_result_item(const tw_broker_t *b, tw_enc_t *e, const tw_task_t *t)
{
    int ended = t->state <= TW_ST_LOST;
    int has_r = ended && t->state == TW_ST_OK;
    int has_err = ended && t->error && t->state != TW_ST_OK;
    char why[256];
    size_t wlen = ended ? 0 : tw__flow_why(b, t, why, sizeof why);
    tw_enc_map(e, 5 + has_r + has_err + (wlen > 0));
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, t->id);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, t->seq);
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, t->state);
    tw_enc_ikey(e, TW_I_W);
    tw_enc_uint(e, t->worker);
    tw_enc_ikey(e, TW_I_AT);
    tw_enc_uint(e, t->attempt);
    if (has_r) {
        static const unsigned char nil = 0xc0;
        tw_enc_ikey(e, TW_I_R);
        if (t->data_len) {
            tw_enc_bin(e, t->data, t->data_len);
        } else {
            tw_enc_bin(e, &nil, 1);
        }
    }
    if (has_err) {
        tw_enc_ikey(e, TW_I_ERR);
        tw_enc_cstr(e, t->error);
    }
    if (wlen) {
        tw_enc_ikey(e, TW_I_WHY);
        tw_enc_str(e, why, wlen);
    }
}

void
tw__flow_end(tw_broker_t *b, tw_task_t *t, int state, const void *r,
               size_t rlen, const char *err, size_t elen)
{
    if (state == TW_ST_OK && t->error) {
        /* Errors of earlier attempts do not outlive a success. */
        tw_free(t->error);
        t->error = NULL;
    }
    /* A task that was running has a run time; a pending one has none. */
    tw_task_event_x_t x = {.run_ms = tw__flow_run_ms(b, t),
                           .retry_in_ms = -1};
    t->end_wall = tw_wall_ms();
    tw_tasks_end(&b->tasks, t, state, r, rlen, err, elen, uv_now(b->loop));
    TW__PERSIST_TASK(b, t);
    int cancelled = state == TW_ST_CANCELLED;
    switch (state) {
    case TW_ST_OK:
        b->st.completed++;
        break;
    case TW_ST_CANCELLED:
        b->st.cancelled++;
        break;
    default:
        b->st.failed++;
        break;
    }
    tw_pool_t *p = tw_pools_by_id(&b->pools, t->pool);
    if (p) {
        if (cancelled) {
            p->cancelled++;
        } else {
            p->ended++;
        }
    }
    for (uint16_t i = 0; i < t->ngroups; i++) {
        tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g) {
            if (cancelled) {
                g->cancelled++;
            } else {
                g->ended++;
            }
        }
    }
    tw_bclient_t *c = t->client ? tw_clients_get(&b->clients, t->client)
                                : NULL;
    if (c) {
        c->outstanding--;
        tw__flow_result_item(b, tw__outbox_item(b, c, &c->results), t);
    }
    /* S47-S48, F3: a cancelled task publishes "cancelled" and then
     * "done", so a monitor counting ends by task.done sees every end; any
     * other end publishes "done" and then its result or its exception. */
    if (cancelled) {
        tw__event_task(b, t, "task.cancelled", &x);
        tw__event_task(b, t, "task.done", &x);
    } else {
        tw__event_task(b, t, "task.done", &x);
        tw__event_task(b, t, state == TW_ST_OK ? "task.result"
                                             : "task.exception",
                     &x);
    }
    /* The tasks blocked on it learn now, in this turn (flow.h). */
    s_after_ended(b, t->id, state);
}

int
tw__flow_orphan(tw_broker_t *b, tw_task_t *t)
{
    tw__flow_halt(b, t);
    static const char lost[] = "its worker was lost";
    tw_tasks_run_ended(t, TW_ST_LOST, lost, sizeof lost - 1, tw_wall_ms());
    if (t->cancel_requested) {
        tw__flow_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        return TW_ST_CANCELLED;
    }
    /* Runs before a TASK retry do not count (PROTOCOL.md 16.5). */
    uint16_t base = t->more ? t->more->runs_base : 0;
    if (t->attempt - base >= b->cfg->max_attempts) {
        char msg[128];
        int n = snprintf(msg, sizeof msg,
                         "given up after %u runs: the last worker "
                         "was lost", (unsigned)t->attempt);
        tw__flow_end(b, t, TW_ST_LOST, NULL, 0, msg, (size_t)n);
        return TW_ST_LOST;
    }
    tw__flow_enqueue(b, t);
    b->st.requeued++;
    return TW_ST_PENDING;
}

/* Keep the error of a failed attempt, as "attempt N: ..." after those of
 * the attempts before. Returns the line added (in `line`, len bytes). */
static const char *
s_attempt_error(tw_task_t *t, const char *err, size_t elen, char *line,
                size_t len)
{
    if (!err || !elen) {
        err = "failed";
        elen = 6;
    }
    int n = snprintf(line, len, "attempt %u: %.*s", (unsigned)t->attempt,
                     (int)(elen > 256 ? 256 : elen), err);
    if (t->error) {
        size_t old = strlen(t->error);
        t->error = tw_realloc(t->error, old + 2 + (size_t)n + 1);
        memcpy(t->error + old, "; ", 2);
        memcpy(t->error + old + 2, line, (size_t)n + 1);
    } else {
        t->error = tw_strndup(line, (size_t)n);
    }
    return line;
}

/* The backoff before attempt t->attempt + 1, jittered. */
static uint64_t
s_backoff(tw_broker_t *b, const tw_task_t *t)
{
    uint64_t delay = (uint64_t)b->cfg->retry_base;
    for (uint16_t i = 1; i < t->attempt && delay < 30000; i++) {
        delay *= 2;
    }
    if (delay > 30000) {
        delay = 30000;
    }
    b->jitter = b->jitter * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t spread = delay / 2;
    if (spread) {
        delay = delay - delay / 4 + (b->jitter >> 33) % (spread + 1);
    }
    return delay;
}

void
tw__flow_retry(tw_broker_t *b, tw_task_t *t, const char *err, size_t elen)
{
    int64_t run_ms = tw__flow_run_ms(b, t);
    char line[320];
    s_attempt_error(t, err, elen, line, sizeof line);
    uint64_t delay = s_backoff(b, t);
    t->due_ms = uv_now(b->loop) + delay;
    b->st.retried++;
    tw__flow_enqueue(b, t);
    tw_task_event_x_t x = {.run_ms = run_ms,
                           .retry_in_ms = (int64_t)delay,
                           .error = line};
    tw__event_task(b, t, "task.retry", &x);
}

/* CANCEL {ids: [id]} to the worker running `t`, if it is still known. */
static void
s_cancel_on_worker(tw_broker_t *b, tw_task_t *t)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, t->worker);
    if (!w) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, t->id);
    tw_out_send(&b->out, TW_OUT_BACK, w->ident, w->ident_len, TW_CMD_CANCEL,
                &e);
    tw_enc_free(&e);
}

int
tw__flow_cancel(tw_broker_t *b, tw_task_t *t)
{
    if (t->state == TW_ST_BLOCKED) {
        tw_deps_remove(b->deps, t->id);
        tw__flow_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        return 1;
    }
    if (t->state == TW_ST_PENDING) {
        tw__flow_unpend(b, t);
        tw__flow_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        return 1;
    }
    if (t->state == TW_ST_RUNNING && !t->cancel_requested) {
        /* Marked at once, so two quick stops pick different tasks. */
        t->cancel_requested = 1;
        TW__PERSIST_TASK(b, t);
        s_cancel_on_worker(b, t);
        return 1;
    }
    return 0;
}

/* ---- dispatch --------------------------------------------------------- */

/* The queue, among the worker's handlers, whose head should run first. */
static tw_queue_t *
s_best_queue(tw_broker_t *b, const tw_bworker_t *w)
{
    tw_queue_t *best = NULL;
    for (size_t i = 0; i < w->nhandlers; i++) {
        tw_queue_t *q = b->reg.handlers[w->handlers[i]].queue;
        tw_task_t *head = tw_queue_peek(q);
        if (head && (!best || tw_queue_before(head, tw_queue_peek(best)))) {
            best = q;
        }
    }
    return best;
}

static void
s_task_item(tw_broker_t *b, tw_enc_t *e, const tw_task_t *t)
{
    static const unsigned char nil = 0xc0;
    const tw_handler_t *h = &b->reg.handlers[t->handler];
    tw_enc_map(e, t->timeout_ms ? 6 : 5);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, t->id);
    tw_enc_ikey_uint(e, TW_I_EP, t->ep);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_str(e, h->name, h->name_len);
    tw_enc_ikey(e, TW_I_A);
    if (t->data_len) {
        tw_enc_bin(e, t->data, t->data_len);
    } else {
        tw_enc_bin(e, &nil, 1);
    }
    tw_enc_ikey(e, TW_I_AT);
    tw_enc_uint(e, t->attempt);
    if (t->timeout_ms) {
        tw_enc_ikey(e, TW_I_TO);
        tw_enc_uint(e, t->timeout_ms);
    }
}

/* Send one TASKS message to `w` with up to min(credit, batch) tasks, each
 * within its pool's and groups' limits. Returns the number sent. */
static size_t
s_dispatch_one(tw_broker_t *b, tw_bworker_t *w, tw_batch_t *batch,
               size_t *bytes)
{
    size_t n = 0;
    size_t limit = w->credit < (uint64_t)b->cfg->batch ? w->credit
                                                       : (size_t)b->cfg->batch;
    tw_queue_t *q;
    while (n < limit && tw_enc_size(&batch->enc) < TW__BATCH_BYTES &&
           (q = s_best_queue(b, w))) {
        tw_task_t *t = tw_queue_pop(q);
        b->ready--;
        tw_queue_t *park = t->ngroups || t->pool ? s_blocked_on(b, t) : NULL;
        if (park) {
            tw_queue_push(park, t);
            s_pass_room(b, t, park);
            continue;
        }
        s_start(b, t, w);
        s_task_item(b, tw_batch_item(batch), t);
        n++;
    }
    if (!n) {
        return 0;
    }
    *bytes += tw_enc_size(&batch->enc);
    if (tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                     TW_CMD_TASKS, batch) != 0) {
        /* Refused (high-water mark, or the peer is gone): the tasks go
         * back where they were, and the worker keeps its credit. */
        for (size_t k = 0; k < n; k++) {
            s_unstart(b, w->inflight.tail, w);
        }
        return 0;
    }
    w->credit -= n;
    w->last_send_ms = uv_now(b->loop);
    b->st.dispatched += n;
    return n;
}

int
tw__flow_dispatch(tw_broker_t *b)
{
    if (!b->ready || !b->reg.len) {
        return 0;
    }
    tw_batch_t batch;
    tw_batch_init(&batch, 0);
    size_t progress = 1, bytes = 0;
    while (b->ready && progress && bytes < TW__DISPATCH_BYTES) {
        progress = 0;
        size_t nw = b->reg.len;
        for (size_t k = 0; k < nw && b->ready; k++) {
            tw_bworker_t *w = b->reg.list[(b->rr + k) % nw];
            if (w->credit && tw_bworker_open(w)) {
                progress += s_dispatch_one(b, w, &batch, &bytes);
            }
        }
        b->rr++;
        tw__persist_check(b);
    }
    tw_batch_free(&batch);
    /* The turn's share is sent: the rest after whatever else waits. */
    return b->ready && progress;
}
