/*  client/pool.c - pools, groups, maps and the session run of libtaskwheel.
 *
 *  The broker owns pools and groups and enforces their limits across the
 *  cluster (broker/state/pools.h); this file is the client's side of them:
 *
 *    - the SUBMIT item fields a spec adds: pool "pl", groups "g", delay
 *      "dl", absolute start "eta", dedup key "k" and parents "af" (with
 *      "am", "wr");
 *    - GROUP and POOL requests and strict CANCEL, each one REPLY-or-ERROR
 *      request through tw__client_request;
 *    - feeders: apply, map, starmap, kwmap and start submit many tasks in
 *      one group. A feeder takes its next item only when one of its tasks
 *      ends, so it never holds more than `window` submitted but unfinished
 *      tasks (2 * num_concurrent for a map) and an endless iterator runs
 *      in bounded memory:
 *
 *          iterator --item--> submit --ACK--> in flight --RESULT--> ended
 *             ^                                                      |
 *             '------------- room again: take the next item ---------'
 *
 *    - events and tw_run: client.c reports every submission, ACK and
 *      final RESULT (tw__sess_*); they become TW_EV_* events for the
 *      client-level callback and then the task's own (S73, S86), and drive
 *      the feeders and the session run's end conditions (S74-S82).
 *
 *  The session state hangs off the client (tw__client_sess) and is made
 *  on first use. It keeps one record per task submitted while it exists
 *  (seq -> feeder, item index, task id, task-level callback), dropped when
 *  the task's outcome arrives, so its size follows the tasks in flight.
 *
 *  Not thread-safe, like the client. Callbacks run inside the client's
 *  waiting calls; `in_cb` counts the callbacks running so that requests
 *  and runs started from one are refused (TW_ESTATE) instead of
 *  re-entering the dispatcher.
 */
#include "taskwheel/client.h"

#include "client/internal.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/util.h"
#include "proto/mpwalk.h"
#include "proto/ops.h"
#include "proto/proto.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_APPLY_WINDOW 1024     /* unfinished tasks of an apply or start */
#define S_CANCEL_GRACE_MS 10000 /* tw_run wait=0: time for cancels */
#define S_REQ_MS 5000           /* a request inside a longer wait */
#define S_STATS_EVERY_MS 50     /* POOL stats polling period */
#define S_CLOSED_RECHECK_MS 5000 /* until_closed: stats between events */
#define S_STOP_MSG "tw_stop() was called."

/* What a feeder submits. */
typedef enum {
    S_APPLY,
    S_MAP,
    S_STARMAP,
    S_KWMAP,
    S_START
} s_kind_t;

typedef struct s_feeder {
    struct s_feeder *next;
    s_kind_t kind;
    char *group;
    tw_task_spec_t spec;  /* the base spec; strings below are copies */
    char *handler;
    char *pool;
    char **groups;        /* the spec's groups, then `group` */
    tw_iter_cb iter;      /* maps: the caller's iterator */
    void *iter_arg;
    void *args;           /* apply, start: the args of every task */
    size_t args_len;
    uint64_t left;        /* apply, start: tasks still to submit */
    uint64_t window;      /* most unfinished tasks held at once */
    uint64_t inflight;
    uint64_t index;       /* index of the next item */
    int exhausted;        /* takes no more items */
} s_feeder_t;

/* One task submitted while the session exists. */
typedef struct {
    s_feeder_t *f;  /* the feeder that submitted it, or NULL */
    uint64_t index; /* its item's index in that feeder */
    uint64_t id;    /* once acknowledged */
    tw_event_cb cb; /* its task-level callback */
    void *arg;
    int cancel_sent;
} s_rec_t;

typedef struct {
    tw_client_t *c;
    tw_event_cb cb;
    void *cb_arg;
    tw_idmap_t recs;       /* seq -> s_rec_t */
    tw_idmap_t byid;       /* task id -> seq, once acknowledged */
    s_feeder_t *feeders;
    s_feeder_t *feeding;   /* the feeder submitting right now */
    uint64_t feeding_index;
    int in_cb;             /* callbacks running */
    tw_policy_t on_exception;
    tw_policy_t on_cancelled;
    int running;           /* inside tw_run's running phase */
    int stop;              /* tw_stop was called */
    int finishing;         /* tw_stop was called or the running phase
                              ended, and tw_run has not returned: no
                              submissions (S80) */
    tw_exit_code_t end;    /* a policy ended the run with this code */
    int end_rc;
    tw_exit_state_t exit;  /* details of the end */
    uint64_t start_k;      /* next k of start-group-k */
    const char *wait_pool; /* until_closed: the pool waited for */
    int pool_closed;       /* its pool.closed event came */
} s_sess_t;

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */

/* 1 if `s` is a string of 1..max bytes. */
static int
s_name_ok(const char *s, size_t max)
{
    if (!s) {
        return 0;
    }
    size_t n = strnlen(s, max + 1);
    return n >= 1 && n <= max;
}

static const char *
s_pool_name(const char *pool)
{
    return pool && *pool ? pool : "default";
}

static int
s_pool_eq(const char *a, const char *b)
{
    return strcmp(s_pool_name(a), s_pool_name(b)) == 0;
}

static uint64_t
s_left_ms(int64_t deadline)
{
    int64_t left = deadline - (int64_t)tw_now_ms();
    return left > 0 ? (uint64_t)left : 0;
}

/* The timeout of one request inside a wait until `deadline` (-1: none). */
static int
s_req_timeout(int64_t deadline)
{
    if (deadline < 0) {
        return S_REQ_MS;
    }
    uint64_t left = s_left_ms(deadline);
    return left < S_REQ_MS ? (int)(left ? left : 1) : S_REQ_MS;
}

static int64_t
s_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : (int64_t)tw_now_ms() + timeout_ms;
}

/* Dispatch for `ms` milliseconds (or until `deadline`, if sooner).
 * Returns 0 or a negative error from tw_client_poll. */
static int
s_pump_for(tw_client_t *c, uint64_t ms, int64_t deadline)
{
    int64_t end = (int64_t)(tw_now_ms() + ms);
    if (deadline >= 0 && deadline < end) {
        end = deadline;
    }
    for (;;) {
        uint64_t left = s_left_ms(end);
        int rc = tw_client_poll(c, (int)left);
        if (rc < 0) {
            return rc;
        }
        if (left == 0) {
            return 0;
        }
    }
}

/* ------------------------------------------------------------------ */
/* SUBMIT item fields: pl, g, dl, k                                   */

int
tw__spec_names_check(const tw_task_spec_t *spec, size_t *bytes)
{
    size_t b = 0;
    if (spec->pool) {
        if (!s_name_ok(spec->pool, TW_PROTO_MAX_NAME)) {
            return TW_EINVAL;
        }
        b += strlen(spec->pool) + 8;
    }
    if (spec->ngroups > 0) {
        if (!spec->groups || spec->ngroups > TW_CLIENT_MAX_GROUPS) {
            return TW_EINVAL;
        }
        b += 8;
        for (size_t i = 0; i < spec->ngroups; i++) {
            if (!s_name_ok(spec->groups[i], TW_PROTO_MAX_NAME)) {
                return TW_EINVAL;
            }
            b += strlen(spec->groups[i]) + 2;
        }
    }
    if (spec->key) {
        if (!s_name_ok(spec->key, TW_PROTO_MAX_NAME)) {
            return TW_EINVAL;
        }
        b += strlen(spec->key) + 8;
    }
    if (spec->delay_ms) {
        b += 12;
    }
    if (spec->at_ms) {
        b += 13;
    }
    if (spec->nafter) {
        if (!spec->after || spec->nafter > TW_CLIENT_MAX_AFTER) {
            return TW_EINVAL;
        }
        b += 8 + 9 * spec->nafter;
    }
    if (spec->after_any_end || spec->with_results) {
        b += 8;
    }
    *bytes = b;
    return 0;
}

size_t
tw__spec_names_fields(const tw_task_spec_t *spec)
{
    return (spec->pool != NULL) + (spec->ngroups > 0) +
           (spec->delay_ms != 0) + (spec->at_ms != 0) + (spec->key != NULL) +
           (spec->nafter != 0) + (spec->after_any_end != 0) +
           (spec->with_results != 0);
}

void
tw__spec_names_encode(tw_enc_t *e, const tw_task_spec_t *spec)
{
    if (spec->pool) {
        tw_enc_ikey(e, TW_I_PL);
        tw_enc_cstr(e, spec->pool);
    }
    if (spec->ngroups > 0) {
        tw_enc_ikey(e, TW_I_G);
        tw_enc_array(e, spec->ngroups);
        for (size_t i = 0; i < spec->ngroups; i++) {
            tw_enc_cstr(e, spec->groups[i]);
        }
    }
    if (spec->delay_ms) {
        tw_enc_ikey(e, TW_I_DL);
        tw_enc_uint(e, spec->delay_ms);
    }
    if (spec->at_ms) {
        tw_enc_ikey(e, TW_I_ETA);
        tw_enc_uint(e, spec->at_ms);
    }
    if (spec->nafter) {
        tw_enc_ikey(e, TW_I_AF);
        tw_enc_array(e, spec->nafter);
        for (size_t i = 0; i < spec->nafter; i++) {
            tw_enc_uint(e, spec->after[i]);
        }
    }
    if (spec->after_any_end) {
        tw_enc_ikey(e, TW_I_AM);
        tw_enc_uint(e, 1);
    }
    if (spec->with_results) {
        tw_enc_ikey(e, TW_I_WR);
        tw_enc_uint(e, 1);
    }
    if (spec->key) {
        tw_enc_ikey(e, TW_I_K);
        tw_enc_cstr(e, spec->key);
    }
}

/* ------------------------------------------------------------------ */
/* The session                                                        */

static s_sess_t *
s_sess(tw_client_t *c, int create)
{
    void **slot = tw__client_sess(c);
    if (!*slot && create) {
        s_sess_t *s = tw_try_calloc(1, sizeof *s);
        if (!s) {
            return NULL;
        }
        s->c = c;
        tw_idmap_init(&s->recs);
        tw_idmap_init(&s->byid);
        s->on_exception = TW_POLICY_RAISE;
        s->on_cancelled = TW_POLICY_RAISE;
        *slot = s;
    }
    return *slot;
}

/* 1 if a callback of this client is running (requests are refused). */
static int
s_in_cb(tw_client_t *c)
{
    s_sess_t *s = s_sess(c, 0);
    return s && s->in_cb > 0;
}

static void
s_feeder_free(s_feeder_t *f)
{
    tw_free(f->group);
    tw_free(f->handler);
    tw_free(f->pool);
    for (size_t i = 0; i + 1 < f->spec.ngroups; i++) {
        tw_free(f->groups[i]); /* the last one is f->group */
    }
    tw_free(f->groups);
    tw_free(f->args);
    tw_free(f);
}

static void
s_rec_free(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_free(val);
}

void
tw__sess_free(tw_client_t *c)
{
    s_sess_t *s = s_sess(c, 0);
    if (!s) {
        return;
    }
    tw_idmap_each(&s->recs, s_rec_free, NULL);
    tw_idmap_free(&s->recs);
    tw_idmap_free(&s->byid);
    while (s->feeders) {
        s_feeder_t *f = s->feeders;
        s->feeders = f->next;
        s_feeder_free(f);
    }
    tw_free(s);
    *tw__client_sess(c) = NULL;
}

/* Fire `ev` at one callback (none if NULL). */
static void
s_call(s_sess_t *s, tw_event_t *ev, tw_event_cb cb, void *arg)
{
    if (!cb) {
        return;
    }
    ev->client = s->c;
    s->in_cb++;
    cb(arg, ev);
    s->in_cb--;
}

/* Fire `ev` at the client-level callback, then at the task's. */
static void
s_emit(s_sess_t *s, tw_event_t *ev, tw_event_cb task_cb, void *task_arg)
{
    s_call(s, ev, s->cb, s->cb_arg);
    s_call(s, ev, task_cb, task_arg);
}

/* A run-level event. */
static void
s_emit_run(s_sess_t *s, tw_event_kind_t kind, const char *msg)
{
    tw_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.msg = msg;
    if (kind == TW_EV_FINISHED) {
        ev.exit = &s->exit;
    }
    s_emit(s, &ev, NULL, NULL);
}

/* Unlink and free a feeder that takes no more items and has nothing in
 * flight. */
static void
s_feeder_reap(s_sess_t *s, s_feeder_t *f)
{
    if (!f->exhausted || f->inflight > 0) {
        return;
    }
    for (s_feeder_t **p = &s->feeders; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            s_feeder_free(f);
            return;
        }
    }
}

/* Stop feeders of `pool` (in `group`; NULL: every group) from taking
 * items; pool_all: every feeder of the client. */
static void
s_abandon(s_sess_t *s, int pool_all, const char *pool, const char *group)
{
    s_feeder_t *f = s->feeders;
    while (f) {
        s_feeder_t *next = f->next;
        if (pool_all || (s_pool_eq(f->pool, pool) &&
                         (!group || strcmp(f->group, group) == 0))) {
            f->exhausted = 1;
            s_feeder_reap(s, f);
        }
        f = next;
    }
}

/* 1 if a feeder of `pool` (any, if pool_all) still takes items. */
static int
s_feeding(const s_sess_t *s, int pool_all, const char *pool)
{
    for (const s_feeder_t *f = s->feeders; f; f = f->next) {
        if (!f->exhausted && (pool_all || s_pool_eq(f->pool, pool))) {
            return 1;
        }
    }
    return 0;
}

/* Check a map item's shape: starmap needs an array, kwmap a map with
 * string keys. Returns 0 or TW_EINVAL. */
static int
s_item_check(s_kind_t kind, const void *item, size_t len)
{
    if (kind != S_STARMAP && kind != S_KWMAP) {
        return 0; /* tw_client_submit checks the encoding */
    }
    if (!item || !tw_mp_one(item, len, TW_MP_DEPTH_DECODE)) {
        return TW_EINVAL;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = TW_EINVAL;
    if (msgpack_unpack_next(&up, item, len, NULL) ==
        MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *o = &up.data;
        if (kind == S_STARMAP && o->type == MSGPACK_OBJECT_ARRAY) {
            rc = 0;
        } else if (kind == S_KWMAP && o->type == MSGPACK_OBJECT_MAP) {
            rc = 0;
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) {
                    rc = TW_EINVAL;
                }
            }
        }
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* Submit items of `f` while it has room and items. */
static void
s_feed(s_sess_t *s, s_feeder_t *f)
{
    /* S80: once the run stops, no feeder takes another item. */
    while (!s->finishing && !f->exhausted && f->inflight < f->window) {
        const void *item = NULL;
        size_t len = 0;
        int rc;
        if (f->iter) {
            s->in_cb++;
            rc = f->iter(f->iter_arg, &item, &len);
            s->in_cb--;
        } else if (f->left > 0) {
            f->left--;
            item = f->args;
            len = f->args_len;
            rc = 1;
        } else {
            rc = 0;
        }
        if (rc == 0) {
            f->exhausted = 1;
            break;
        }
        uint64_t index = f->index++;
        if (rc > 0) {
            rc = s_item_check(f->kind, item, len);
        }
        if (rc == 0) {
            f->spec.args = item;
            f->spec.args_len = len;
            s->feeding = f;
            s->feeding_index = index;
            rc = tw_client_submit(s->c, &f->spec, NULL);
            s->feeding = NULL;
            if (rc == 0) {
                f->inflight++;
                continue;
            }
        }
        /* S53: this item is skipped; the rest go on. */
        tw_event_t ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = TW_EV_SKIPPED;
        ev.err = rc < 0 ? rc : TW_EINVAL;
        ev.group = f->group;
        ev.index = index;
        s_emit(s, &ev, f->spec.on_event, f->spec.event_arg);
    }
}

/* A task's tracking ended: free its record and give its feeder room. */
static void
s_rec_end(s_sess_t *s, uint64_t seq, s_rec_t *r)
{
    if (!r) {
        return;
    }
    tw_idmap_del(&s->recs, seq);
    if (r->id && tw_idmap_get(&s->byid, r->id) ==
                     (void *)(uintptr_t)seq) {
        tw_idmap_del(&s->byid, r->id);
    }
    s_feeder_t *f = r->f;
    tw_free(r);
    if (f) {
        f->inflight--;
        s_feed(s, f);
        s_feeder_reap(s, f);
    }
}

int
tw__sess_submitted(tw_client_t *c, uint64_t seq, const tw_task_spec_t *spec)
{
    s_sess_t *s = s_sess(c, spec->on_event != NULL);
    if (!s) {
        return spec->on_event ? TW_ENOMEM : 0;
    }
    s_rec_t *r = tw_try_calloc(1, sizeof *r);
    if (!r || tw_idmap_reserve(&s->recs, 1) != 0 ||
        tw_idmap_reserve(&s->byid, s->recs.len + 1) != 0) {
        tw_free(r);
        return TW_ENOMEM;
    }
    r->cb = spec->on_event;
    r->arg = spec->event_arg;
    if (s->feeding) {
        r->f = s->feeding;
        r->index = s->feeding_index;
    }
    tw_idmap_put(&s->recs, seq, r);
    return 0;
}

void
tw__sess_unsubmitted(tw_client_t *c, uint64_t seq)
{
    s_sess_t *s = s_sess(c, 0);
    s_rec_t *r = s ? tw_idmap_del(&s->recs, seq) : NULL;
    tw_free(r);
}

/* The record of task `seq` (NULL if none) and, in *ev, an event about
 * it: its seq, id, and its feeder's group and item index. */
static s_rec_t *
s_rec_event(s_sess_t *s, uint64_t seq, uint64_t id, tw_event_t *ev)
{
    s_rec_t *r = tw_idmap_get(&s->recs, seq);
    memset(ev, 0, sizeof *ev);
    ev->seq = seq;
    ev->id = id;
    if (r) {
        ev->group = r->f ? r->f->group : NULL;
        ev->index = r->index;
    }
    return r;
}

void
tw__sess_ack(tw_client_t *c, const tw_ack_t *ack)
{
    s_sess_t *s = s_sess(c, 0);
    if (!s) {
        return;
    }
    tw_event_t ev;
    s_rec_t *r = s_rec_event(s, ack->seq, ack->id, &ev);
    ev.err = ack->err;
    ev.dup = ack->dup;
    ev.msg = ack->msg;
    if (r) {
        r->id = ack->id;
        /* Room was made when it was submitted (tw__sess_submitted). */
        if (ack->id && !ack->err && tw_idmap_reserve(&s->byid, 1) == 0) {
            tw_idmap_put(&s->byid, ack->id, (void *)(uintptr_t)ack->seq);
        }
    }
    ev.kind = ack->err ? TW_EV_REFUSED : TW_EV_SUBMITTED;
    s_emit(s, &ev, r ? r->cb : NULL, r ? r->arg : NULL);
    if (ack->err || ack->dup) {
        s_rec_end(s, ack->seq, r);
    }
}

/* Record why a policy ends the running session. */
static void
s_policy_end(s_sess_t *s, const tw_result_t *r, tw_exit_code_t code,
             tw_policy_t policy)
{
    if (!s->running || s->end || policy == TW_POLICY_CONTINUE) {
        return;
    }
    s->end = code;
    s->end_rc = policy == TW_POLICY_RAISE
                    ? (code == TW_EXIT_EXCEPTION ? TW_EFAILED : TW_ECANCELED)
                    : 0;
    s->exit.id = r->id;
    s->exit.seq = r->seq;
    s->exit.state = r->state;
    snprintf(s->exit.msg, sizeof s->exit.msg, "%s",
             r->error ? r->error : tw_proto_state_name(r->state));
}

void
tw__sess_result(tw_client_t *c, const tw_result_t *res)
{
    tw_event_t ev;
    s_sess_t *s = s_sess(c, 0);
    if (!s) {
        return;
    }
    s_rec_t *r = s_rec_event(s, res->seq, res->id, &ev);
    tw_event_cb tcb = r ? r->cb : NULL;
    void *targ = r ? r->arg : NULL;
    ev.result = res;
    if (res->state == TW_ST_CANCELLED) {
        /* S73: a cancelled task fires cancelled only. */
        ev.kind = TW_EV_CANCELLED;
        s_emit(s, &ev, tcb, targ);
        s_policy_end(s, res, TW_EXIT_CANCELLED, s->on_cancelled);
    } else {
        /* S73, S86: done then result or exception, client level first. */
        tw_event_kind_t second =
            res->state == TW_ST_OK ? TW_EV_RESULT : TW_EV_EXCEPTION;
        ev.kind = TW_EV_DONE;
        s_call(s, &ev, s->cb, s->cb_arg);
        ev.kind = second;
        s_call(s, &ev, s->cb, s->cb_arg);
        ev.kind = TW_EV_DONE;
        s_call(s, &ev, tcb, targ);
        ev.kind = second;
        s_call(s, &ev, tcb, targ);
        if (second == TW_EV_EXCEPTION) {
            s_policy_end(s, res, TW_EXIT_EXCEPTION, s->on_exception);
        }
    }
    s_rec_end(s, res->seq, r);
}

void
tw__sess_chan(tw_client_t *c, const tw_chan_msg_t *msg)
{
    static const tw_event_kind_t kinds[] = {
        [TW_CHAN_OPEN] = TW_EV_COMM_OPEN,
        [TW_CHAN_MSG] = TW_EV_COMM_MESSAGE,
        [TW_CHAN_REQ] = TW_EV_COMM_REQUEST,
        [TW_CHAN_CLOSE] = TW_EV_COMM_CLOSE,
    };
    s_sess_t *s = s_sess(c, 0);
    if (!s) {
        return;
    }
    uint64_t seq = (uint64_t)(uintptr_t)tw_idmap_get(&s->byid, msg->id);
    tw_event_t ev;
    s_rec_t *r = seq ? s_rec_event(s, seq, msg->id, &ev) : NULL;
    if (!seq) {
        memset(&ev, 0, sizeof ev);
        ev.id = msg->id;
    }
    ev.kind = kinds[msg->kind];
    ev.chan = msg;
    s_emit(s, &ev, r ? r->cb : NULL, r ? r->arg : NULL);
}

int
tw_client_on_event(tw_client_t *c, tw_event_cb cb, void *arg)
{
    s_sess_t *s = s_sess(c, 1);
    if (!s) {
        return TW_ENOMEM;
    }
    s->cb = cb;
    s->cb_arg = arg;
    return 0;
}

int
tw_client_set_policy(tw_client_t *c, tw_policy_t on_exception,
                     tw_policy_t on_cancelled)
{
    s_sess_t *s = s_sess(c, 1);
    if (!s) {
        return TW_ENOMEM;
    }
    s->on_exception = on_exception;
    s->on_cancelled = on_cancelled;
    return 0;
}

/* ------------------------------------------------------------------ */
/* GROUP, POOL and strict CANCEL requests                             */

static int
s_req_check(const tw_pool_req_t *r)
{
    if (!r || !s_name_ok(r->op, 32) ||
        (r->pool && !s_name_ok(r->pool, TW_PROTO_MAX_NAME)) ||
        (r->group && !s_name_ok(r->group, TW_PROTO_MAX_NAME)) ||
        (r->handler && !s_name_ok(r->handler, TW_PROTO_MAX_NAME)) ||
        (r->full && !s_name_ok(r->full, 16))) {
        return TW_EINVAL;
    }
    return 0;
}

/* The optional integer field `f`, sent when `has` is set;
 * TW_CLIENT_LIMIT_NONE is sent as nil. */
static void
s_enc_opt_int(tw_enc_t *e, tw_field_t f, int has, int64_t v)
{
    if (has) {
        tw_enc_key(e, f);
        if (v == TW_CLIENT_LIMIT_NONE) {
            tw_enc_nil(e);
        } else {
            tw_enc_int(e, v);
        }
    }
}

/* Body of GROUP and POOL: {seq, op, pool?, group?, limit?, calls?,
 * full?, n?, handler?}. */
static void
s_encode_req(tw_enc_t *e, uint64_t seq, const void *arg)
{
    const tw_pool_req_t *r = arg;
    size_t n = 2 + (r->pool != NULL) + (r->group != NULL) +
               (r->has_limit != 0) + (r->has_calls != 0) +
               (r->full != NULL) + (r->n != 0) + (r->handler != NULL);
    tw__enc_head(e, n, seq, r->op);
    tw__enc_opt_cstr(e, TW_F_HANDLER, r->handler);
    tw__enc_opt_cstr(e, TW_F_POOL, r->pool);
    tw__enc_opt_cstr(e, TW_F_GROUP, r->group);
    s_enc_opt_int(e, TW_F_LIMIT, r->has_limit, r->limit);
    s_enc_opt_int(e, TW_F_CALLS, r->has_calls, r->calls);
    tw__enc_opt_cstr(e, TW_F_FULL, r->full);
    tw__enc_opt_uint(e, TW_F_N, r->n);
}

static int
s_pool_request(tw_client_t *c, tw_cmd_t cmd, const tw_pool_req_t *req,
               int timeout_ms, void **data, size_t *len)
{
    if (data) {
        *data = NULL;
    }
    if (len) {
        *len = 0;
    }
    if (s_req_check(req) != 0 || (data && !len)) {
        return TW_EINVAL;
    }
    if (s_in_cb(c)) {
        return TW_ESTATE;
    }
    return tw__client_request(c, cmd, s_encode_req, req, timeout_ms, data,
                              len);
}

int
tw_client_group(tw_client_t *c, const tw_pool_req_t *req, int timeout_ms,
                void **data, size_t *len)
{
    return s_pool_request(c, TW_CMD_GROUP, req, timeout_ms, data, len);
}

int
tw_client_pool(tw_client_t *c, const tw_pool_req_t *req, int timeout_ms,
               void **data, size_t *len)
{
    return s_pool_request(c, TW_CMD_POOL, req, timeout_ms, data, len);
}

/* An integer value (nil or absent: `dflt`). */
static int64_t
s_int(const msgpack_object *o, const char *key, int64_t dflt)
{
    const msgpack_object *v = tw_mp_get(o, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return v->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->via.u64;
    }
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return v->via.i64;
    }
    return dflt;
}

static uint64_t
s_uint(const msgpack_object *o, const char *key)
{
    int64_t v = s_int(o, key, 0);
    return v > 0 ? (uint64_t)v : 0;
}

static int
s_bool(const msgpack_object *o, const char *key)
{
    const msgpack_object *v = tw_mp_get(o, key);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* Reads the reply data `o` of a request into `out`; returns 0 or an
 * error. */
typedef int (*s_decode_fn)(const msgpack_object *o, void *out);

/* Send a GROUP or POOL request and hand its reply data, one msgpack value
 * (else TW_EPROTO), to `decode`. Returns the request's or decode's code. */
static int
s_decoded_request(tw_client_t *c, tw_cmd_t cmd, const tw_pool_req_t *req,
                  int timeout_ms, s_decode_fn decode, void *out)
{
    void *data;
    size_t len;
    int rc = s_pool_request(c, cmd, req, timeout_ms, &data, &len);
    if (rc != 0) {
        return rc;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (!data || msgpack_unpack_next(&up, data, len, NULL) !=
                     MSGPACK_UNPACK_SUCCESS) {
        rc = TW_EPROTO;
    } else {
        rc = decode(&up.data, out);
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return rc;
}

static int
s_decode_group(const msgpack_object *o, void *arg)
{
    tw_group_info_t *out = arg;
    const msgpack_object *full = tw_mp_get(o, "full");
    out->limit = s_int(o, "limit", -1);
    out->calls = s_int(o, "calls", -1);
    out->reject = full && full->type == MSGPACK_OBJECT_STR &&
                  full->via.str.size == 6 &&
                  memcmp(full->via.str.ptr, "reject", 6) == 0;
    out->running = s_uint(o, "running");
    out->pending = s_uint(o, "pending");
    out->ended = s_uint(o, "ended");
    out->cancelled = s_uint(o, "cancelled");
    out->admitted = s_uint(o, "admitted");
    return 0;
}

int
tw_client_group_get(tw_client_t *c, const char *pool, const char *group,
                    int timeout_ms, tw_group_info_t *out)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_GROUP_GET),
                         .pool = pool,
                         .group = group};
    if (!group || !out) {
        return TW_EINVAL;
    }
    return s_decoded_request(c, TW_CMD_GROUP, &req, timeout_ms,
                             s_decode_group, out);
}

static int
s_decode_pool(const msgpack_object *o, void *arg)
{
    tw_pool_info_t *out = arg;
    out->size = s_uint(o, "size");
    out->free = s_int(o, "free", -1);
    out->running = s_uint(o, "running");
    out->pending = s_uint(o, "pending");
    out->ended = s_uint(o, "ended");
    out->cancelled = s_uint(o, "cancelled");
    out->groups = s_uint(o, "groups");
    out->locked = s_bool(o, "locked");
    out->closed = s_bool(o, "closed");
    out->default_limit = s_int(o, "default_limit", -1);
    return 0;
}

/* POOL stats, with `handler` (if not NULL) checked first (S54). */
static int
s_pool_stats(tw_client_t *c, const char *pool, const char *handler,
             int timeout_ms, tw_pool_info_t *out)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_POOL_STATS),
                         .pool = pool,
                         .handler = handler};
    if (!out) {
        return TW_EINVAL;
    }
    return s_decoded_request(c, TW_CMD_POOL, &req, timeout_ms,
                             s_decode_pool, out);
}

int
tw_client_pool_stats(tw_client_t *c, const char *pool, int timeout_ms,
                     tw_pool_info_t *out)
{
    return s_pool_stats(c, pool, NULL, timeout_ms, out);
}

int
tw_client_pool_default_limit(tw_client_t *c, const char *pool,
                             int64_t limit, int timeout_ms)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_POOL_DEFAULT_LIMIT),
                         .pool = pool,
                         .has_limit = limit >= 0, .limit = limit};
    return tw_client_pool(c, &req, timeout_ms, NULL, NULL);
}

int
tw_client_pool_op(tw_client_t *c, const char *pool, const char *op,
                  int timeout_ms)
{
    tw_pool_req_t req = {.op = op, .pool = pool};
    return tw_client_pool(c, &req, timeout_ms, NULL, NULL);
}

/* Where s_decode_ids puts the ids it finds at the top or under `key`. */
typedef struct {
    const char *key;
    uint64_t **ids;
    size_t *nids;
} s_ids_out_t;

static int
s_decode_ids(const msgpack_object *o, void *arg)
{
    s_ids_out_t *out = arg;
    const msgpack_object *a = out->key ? tw_mp_get(o, out->key) : o;
    if (!a || a->type != MSGPACK_OBJECT_ARRAY) {
        return TW_EPROTO;
    }
    if (a->via.array.size == 0) {
        return 0;
    }
    uint64_t *ids = malloc(a->via.array.size * sizeof *ids);
    if (!ids) {
        return TW_ENOMEM;
    }
    *out->ids = ids;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *v = &a->via.array.ptr[i];
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            ids[(*out->nids)++] = v->via.u64;
        }
    }
    return 0;
}

/* Send a request and decode its data as an array of ids, found at the
 * top or under `key`. */
static int
s_ids_request(tw_client_t *c, tw_cmd_t cmd, const tw_pool_req_t *req,
              const char *key, int timeout_ms, uint64_t **ids, size_t *nids)
{
    if (!ids || !nids) {
        return TW_EINVAL;
    }
    *ids = NULL;
    *nids = 0;
    s_ids_out_t out = {key, ids, nids};
    return s_decoded_request(c, cmd, req, timeout_ms, s_decode_ids, &out);
}

int
tw_client_group_ids(tw_client_t *c, const char *pool, const char *group,
                    int timeout_ms, uint64_t **ids, size_t *nids)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_GROUP_IDS),
                         .pool = pool,
                         .group = group};
    if (!group) {
        return TW_EINVAL;
    }
    return s_ids_request(c, TW_CMD_GROUP, &req, NULL, timeout_ms, ids, nids);
}

int
tw_client_pool_stop(tw_client_t *c, const char *pool, uint64_t n,
                    int timeout_ms, uint64_t **ids, size_t *nids)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_POOL_STOP),
                         .pool = pool,
                         .n = n};
    return s_ids_request(c, TW_CMD_POOL, &req, NULL, timeout_ms, ids, nids);
}

int
tw_client_pool_stop_all(tw_client_t *c, const char *pool, int timeout_ms,
                        uint64_t **ids, size_t *nids)
{
    /* The broker cancels every running task when n >= running. */
    return tw_client_pool_stop(c, pool, UINT32_MAX, timeout_ms, ids, nids);
}

int
tw_client_cancel_group(tw_client_t *c, const char *pool, const char *group,
                       int timeout_ms, uint64_t **ids, size_t *nids)
{
    tw_op_t op = group ? TW_OP_POOL_CANCEL_GROUP : TW_OP_POOL_CANCEL_ALL;
    tw_pool_req_t req = {.op = tw_proto_op_name(op),
                         .pool = pool,
                         .group = group};
    if (ids) {
        *ids = NULL;
    }
    if (nids) {
        *nids = 0;
    }
    if (!ids || !nids || s_req_check(&req) != 0) {
        return TW_EINVAL;
    }
    /* S58: no more items start from this client's feeders of the group;
     * their tasks already submitted are the broker's to cancel. */
    s_sess_t *s = s_sess(c, 0);
    if (s && s->in_cb == 0) {
        s_abandon(s, 0, pool, group);
    }
    return s_ids_request(c, TW_CMD_POOL, &req, "cancelled", timeout_ms, ids,
                         nids);
}

int
tw_client_cancel_strict(tw_client_t *c, const uint64_t *ids, size_t n,
                        int timeout_ms)
{
    if (!ids || n == 0 || n > TW_PROTO_MAX_ITEMS) {
        return TW_EINVAL;
    }
    if (s_in_cb(c)) {
        return TW_ESTATE;
    }
    tw__ids_t st = {tw_proto_op_name(TW_OP_CANCEL_STRICT), ids, n};
    return tw__client_request(c, TW_CMD_CANCEL, tw__encode_ids, &st,
                              timeout_ms, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* apply, map, start                                                  */

static int
s_group_create(tw_client_t *c, const char *pool, const char *group,
               int has_limit, int64_t limit, int timeout_ms)
{
    tw_pool_req_t req = {.op = tw_proto_op_name(TW_OP_GROUP_CREATE),
                         .pool = pool,
                         .group = group,
                         .has_limit = has_limit,
                         .limit = limit};
    return tw_client_group(c, &req, timeout_ms, NULL, NULL);
}

/* Create the feeder's group, choosing its name (S45, S46, S66) into
 * `name`. */
static int
s_make_group(s_sess_t *s, s_kind_t kind, const tw_task_spec_t *spec,
             const char *group, int has_limit, int64_t limit,
             char name[TW_CLIENT_NAME_SIZE], int timeout_ms)
{
    static const char *const prefix[] = {"apply", "map", "starmap",
                                         "doublestarmap"};
    tw_client_t *c = s->c;
    if (group) {
        snprintf(name, TW_CLIENT_NAME_SIZE, "%s", group);
        return s_group_create(c, spec->pool, group, has_limit, limit,
                              timeout_ms);
    }
    for (uint64_t i = kind == S_START ? s->start_k : 0;; i++) {
        int n = kind == S_START
                    ? snprintf(name, TW_CLIENT_NAME_SIZE,
                               "start-group-%llu", (unsigned long long)i)
                    : snprintf(name, TW_CLIENT_NAME_SIZE, "%s-%s-group-%llu",
                               prefix[kind], spec->handler,
                               (unsigned long long)i);
        if (n < 0 || n >= TW_CLIENT_NAME_SIZE) {
            return TW_EINVAL;
        }
        /* The smallest index the broker does not know: create refuses
         * every known one with EEXIST. */
        int rc = s_group_create(c, spec->pool, name, has_limit, limit,
                                timeout_ms);
        if (rc == 0 && kind == S_START) {
            s->start_k = i + 1;
        }
        if (rc != TW_EEXIST) {
            return rc;
        }
    }
}

/* A feeder with copies of `spec`'s strings (and of its args unless it
 * maps), `name` as its last group; NULL when out of memory. */
static s_feeder_t *
s_feeder_new(s_kind_t kind, const tw_task_spec_t *spec, const char *name,
             int map)
{
    s_feeder_t *f = tw_try_calloc(1, sizeof *f);
    if (!f) {
        return NULL;
    }
    f->kind = kind;
    f->group = tw_try_strdup(name);
    f->spec = *spec;
    f->handler = tw_try_strdup(spec->handler);
    f->spec.handler = f->handler;
    f->pool = spec->pool ? tw_try_strdup(spec->pool) : NULL;
    f->spec.pool = f->pool;
    f->groups = tw_try_calloc(spec->ngroups + 1, sizeof *f->groups);
    int ok = f->group && f->handler && (f->pool || !spec->pool) && f->groups;
    for (size_t i = 0; ok && i < spec->ngroups; i++) {
        f->groups[i] = tw_try_strdup(spec->groups[i]);
        ok = f->groups[i] != NULL;
    }
    if (ok && !map && spec->args) {
        f->args = tw_try_malloc(spec->args_len ? spec->args_len : 1);
        ok = f->args != NULL;
        if (ok) {
            memcpy(f->args, spec->args, spec->args_len);
            f->args_len = spec->args_len;
        }
    }
    if (!ok) {
        for (size_t i = 0; f->groups && i < spec->ngroups; i++) {
            tw_free(f->groups[i]);
        }
        tw_free(f->groups);
        tw_free(f->group);
        tw_free(f->handler);
        tw_free(f->pool);
        tw_free(f->args);
        tw_free(f);
        return NULL;
    }
    f->groups[spec->ngroups] = f->group;
    f->spec.groups = (const char *const *)f->groups;
    f->spec.ngroups = spec->ngroups + 1;
    f->spec.key = NULL;
    f->spec.args = NULL;
    f->spec.args_len = 0;
    return f;
}

/* Everything apply, map and start share: checks in S54's order, the
 * group, the feeder and its first items. */
static int
s_feed_start(tw_client_t *c, s_kind_t kind, const tw_task_spec_t *spec,
             const tw_map_t *m, uint64_t num, const char *group, char *name,
             size_t size, int timeout_ms)
{
    s_sess_t *s = s_sess(c, 1);
    size_t bytes;
    if (name && size > 0) {
        name[0] = '\0';
    }
    if (!s) {
        return TW_ENOMEM;
    }
    if (s->in_cb || s->finishing) {
        return TW_ESTATE;
    }
    int map = kind != S_APPLY && kind != S_START;
    if (!spec || !s_name_ok(spec->handler, TW_PROTO_MAX_NAME) ||
        tw__spec_names_check(spec, &bytes) != 0 ||
        spec->ngroups >= TW_CLIENT_MAX_GROUPS ||
        (group && !s_name_ok(group, TW_PROTO_MAX_NAME)) ||
        (map && !m->next) ||
        (!map && spec->args &&
         !tw_mp_one(spec->args, spec->args_len, TW_MP_DEPTH_DECODE))) {
        return TW_EINVAL;
    }
    /* S54: the handler first (the broker answers EHANDLER before it looks
     * at the pool), then the pool, all before any item is taken. */
    tw_pool_info_t pi;
    int rc = s_pool_stats(c, spec->pool, spec->handler, timeout_ms, &pi);
    if (rc != 0) {
        return rc;
    }
    if (pi.closed) {
        return TW_ECLOSED;
    }
    if (pi.locked) {
        return TW_ELOCKED;
    }
    if ((map && m->num_concurrent < 1) || (!map && num < 1)) {
        return TW_EINVAL; /* S52 */
    }
    char gname[TW_CLIENT_NAME_SIZE];
    rc = s_make_group(s, kind, spec, group, map, map ? m->num_concurrent : 0,
                      gname, timeout_ms);
    if (rc != 0) {
        return rc;
    }
    s_feeder_t *f = s_feeder_new(kind, spec, gname, map);
    if (!f) {
        /* The group stays on the broker, empty, like one whose feeding
         * ended at once. */
        return TW_ENOMEM;
    }
    if (map) {
        f->iter = m->next;
        f->iter_arg = m->next_arg;
        f->window = 2 * (uint64_t)m->num_concurrent;
    } else {
        f->left = num;
        f->window = num < S_APPLY_WINDOW ? num : S_APPLY_WINDOW;
    }
    /* The name is out before the first items' events can fire. */
    if (name && size > 0) {
        snprintf(name, size, "%s", gname);
    }
    f->next = s->feeders;
    s->feeders = f;
    s_feed(s, f);
    s_feeder_reap(s, f);
    tw_client_flush(c); /* a full socket keeps the rest queued */
    return 0;
}

/* map, starmap and kwmap: a feeder of `kind` over the map `m`. */
static int
s_map_start(tw_client_t *c, s_kind_t kind, const tw_map_t *m, char *name,
            size_t size, int timeout_ms)
{
    return m ? s_feed_start(c, kind, m->task, m, 0, m->group, name, size,
                            timeout_ms)
             : TW_EINVAL;
}

int
tw_client_map(tw_client_t *c, const tw_map_t *m, char *name, size_t size,
              int timeout_ms)
{
    return s_map_start(c, S_MAP, m, name, size, timeout_ms);
}

int
tw_client_starmap(tw_client_t *c, const tw_map_t *m, char *name,
                  size_t size, int timeout_ms)
{
    return s_map_start(c, S_STARMAP, m, name, size, timeout_ms);
}

int
tw_client_kwmap(tw_client_t *c, const tw_map_t *m, char *name, size_t size,
                int timeout_ms)
{
    return s_map_start(c, S_KWMAP, m, name, size, timeout_ms);
}

int
tw_client_apply(tw_client_t *c, const tw_task_spec_t *spec, uint64_t num,
                const char *group, char *name, size_t size, int timeout_ms)
{
    return s_feed_start(c, S_APPLY, spec, NULL, num, group, name, size,
                        timeout_ms);
}

int
tw_client_start(tw_client_t *c, const tw_task_spec_t *spec, uint64_t num,
                char *name, size_t size, int timeout_ms)
{
    return s_feed_start(c, S_START, spec, NULL, num, NULL, name, size,
                        timeout_ms);
}

int
tw_client_gather_and_close(tw_client_t *c, const char *pool, int timeout_ms)
{
    s_sess_t *s = s_sess(c, 1);
    if (!s) {
        return TW_ENOMEM;
    }
    int64_t deadline = s_deadline(timeout_ms);
    if (s->in_cb) {
        return TW_ESTATE;
    }
    /* Step 2 of S63 first: the broker refuses a locked pool's items. */
    while (s_feeding(s, 0, pool)) {
        if (deadline >= 0 && s_left_ms(deadline) == 0) {
            return TW_ETIMEDOUT;
        }
        int rc = tw_client_poll(c, s_req_timeout(deadline));
        if (rc < 0) {
            return rc;
        }
    }
    int rc = tw_client_pool_op(c, pool, tw_proto_op_name(TW_OP_POOL_LOCK),
                               s_req_timeout(deadline));
    if (rc != 0) {
        return rc;
    }
    for (;;) {
        tw_pool_info_t pi;
        rc = tw_client_pool_stats(c, pool, s_req_timeout(deadline), &pi);
        if (rc != 0) {
            return rc;
        }
        if (pi.running == 0 && pi.pending == 0) {
            break;
        }
        if (deadline >= 0 && s_left_ms(deadline) == 0) {
            return TW_ETIMEDOUT;
        }
        rc = s_pump_for(c, S_STATS_EVERY_MS, deadline);
        if (rc < 0) {
            return rc;
        }
    }
    return tw_client_pool_op(c, pool, tw_proto_op_name(TW_OP_POOL_CLOSE),
                             s_req_timeout(deadline));
}

void
tw__sess_broker_event(tw_client_t *c, const msgpack_object *data)
{
    const msgpack_object *ev = tw_mp_get(data, "event");
    const msgpack_object *pool = tw_mp_get(data, "pool");
    if (!ev || ev->type != MSGPACK_OBJECT_STR || !pool ||
        pool->type != MSGPACK_OBJECT_STR || ev->via.str.size != 11 ||
        memcmp(ev->via.str.ptr, "pool.closed", 11) != 0) {
        return;
    }
    s_sess_t *s = s_sess(c, 0);
    if (!s) {
        return;
    }
    char name[TW_PROTO_MAX_NAME + 1];
    size_t n = pool->via.str.size < TW_PROTO_MAX_NAME ? pool->via.str.size
                                                       : TW_PROTO_MAX_NAME;
    memcpy(name, pool->via.str.ptr, n);
    name[n] = '\0';
    if (s->wait_pool && strcmp(s_pool_name(s->wait_pool), name) == 0) {
        s->pool_closed = 1;
    }
    tw_event_t e;
    memset(&e, 0, sizeof e);
    e.kind = TW_EV_POOL_CLOSED;
    e.msg = name;
    s_emit(s, &e, NULL, NULL);
}

int
tw_client_until_closed(tw_client_t *c, const char *pool, int timeout_ms)
{
    int64_t deadline = s_deadline(timeout_ms);
    if (s_in_cb(c)) {
        return TW_ESTATE;
    }
    /* S64: wait for the broker's pool.closed event; the stats request
     * first answers at once for a pool closed already and makes the
     * broker count this client among the pool's. A stats request every
     * S_CLOSED_RECHECK_MS covers an event that cannot come (the broker
     * forgot this client while it sat idle). */
    s_sess_t *s = s_sess(c, 1);
    if (!s) {
        return TW_ENOMEM;
    }
    for (;;) {
        tw_pool_info_t pi;
        int rc = tw_client_pool_stats(c, pool, s_req_timeout(deadline), &pi);
        if (rc == TW_EUNREACH && deadline >= 0 && s_left_ms(deadline) == 0) {
            /* The answer did not come before our own deadline. */
            return TW_ETIMEDOUT;
        }
        if (rc != 0) {
            return rc;
        }
        if (pi.closed) {
            return 0;
        }
        s->wait_pool = pool;
        s->pool_closed = 0;
        uint64_t slice_end = tw_now_ms() + S_CLOSED_RECHECK_MS;
        while (!s->pool_closed && tw_now_ms() < slice_end) {
            if (deadline >= 0 && s_left_ms(deadline) == 0) {
                s->wait_pool = NULL;
                return TW_ETIMEDOUT;
            }
            uint64_t left = s_left_ms((int64_t)slice_end);
            if (deadline >= 0 && s_left_ms(deadline) < left) {
                left = s_left_ms(deadline);
            }
            rc = tw_client_poll(c, (int)left);
            if (rc < 0) {
                s->wait_pool = NULL;
                return rc;
            }
        }
        s->wait_pool = NULL;
        if (s->pool_closed) {
            return 0;
        }
    }
}

/* ------------------------------------------------------------------ */
/* The session run                                                    */

/* Every task this session submitted has its outcome, and no feeder
 * takes items any more. */
static int
s_empty(const s_sess_t *s)
{
    return tw_client_outstanding(s->c) == 0 && !s_feeding(s, 1, NULL);
}

typedef struct {
    uint64_t *ids;
    size_t n;
    size_t cap;
} s_idlist_t;

static void
s_collect_uncancelled(uint64_t seq, void *val, void *arg)
{
    (void)seq;
    s_rec_t *r = val;
    s_idlist_t *l = arg;
    if (r->id && !r->cancel_sent && l->n < TW_PROTO_MAX_ITEMS) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 64;
            uint64_t *ids = tw_try_realloc(l->ids, cap * sizeof *ids);
            if (!ids) {
                return; /* not sent yet: the next round takes it */
            }
            l->ids = ids;
            l->cap = cap;
        }
        l->ids[l->n++] = r->id;
        r->cancel_sent = 1;
    }
}

/* S76 step 5, S79: cancel what is still in flight and wait (a while) for
 * the cancellations to be confirmed. */
static int
s_cancel_inflight(s_sess_t *s)
{
    int64_t deadline = (int64_t)tw_now_ms() + S_CANCEL_GRACE_MS;
    while (s->recs.len > 0 && s_left_ms(deadline) > 0) {
        s_idlist_t l = {NULL, 0, 0};
        tw_idmap_each(&s->recs, s_collect_uncancelled, &l);
        if (l.n > 0) {
            int rc = tw_client_cancel_strict(s->c, l.ids, l.n, S_REQ_MS);
            if (rc == TW_EENDED || rc == TW_ECANCELED || rc == TW_ENOENT) {
                /* One ended meanwhile: cancel the others leniently. */
                rc = tw_client_cancel(s->c, l.ids, l.n, S_REQ_MS);
            }
            tw_free(l.ids);
            if (rc == TW_EUNREACH || rc == TW_EIO) {
                return rc;
            }
        }
        int rc = tw_client_poll(s->c, s_req_timeout(deadline));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int
tw_run(tw_client_t *c, int timeout_ms, int end_on_empty, int wait,
       tw_exit_state_t *st)
{
    s_sess_t *s = s_sess(c, 1);
    if (!s) {
        return TW_ENOMEM;
    }
    if (s->running || s->in_cb) {
        return TW_ESTATE;
    }
    memset(&s->exit, 0, sizeof s->exit);
    s->running = 1;
    s->stop = 0;
    s->finishing = 0;
    s->end = TW_EXIT_UNKNOWN;
    s->end_rc = 0;
    s_emit_run(s, TW_EV_START, NULL);
    int64_t deadline = s_deadline(timeout_ms); /* S79 */
    int drained = 0; /* EMPTY fired for the current drain */
    int rc = 0;
    tw_exit_code_t code = TW_EXIT_UNKNOWN;
    for (;;) {
        /* S77: stop, then empty, then the timeout. */
        if (s->stop) {
            code = TW_EXIT_STOPPED;
            s_emit_run(s, TW_EV_STOP, s->exit.msg);
            break;
        }
        if (s->end) {
            code = s->end;
            rc = s->end_rc;
            break;
        }
        if (s_empty(s)) {
            if (!drained) {
                drained = 1;
                s_emit_run(s, TW_EV_EMPTY, NULL);
                continue; /* its handlers may have stopped or refilled */
            }
            if (end_on_empty) {
                code = TW_EXIT_EXHAUSTED; /* S74, S78 */
                break;
            }
        } else {
            drained = 0;
        }
        if (deadline >= 0 && s_left_ms(deadline) == 0) {
            code = TW_EXIT_TIMEOUT;
            s_emit_run(s, TW_EV_TIMEOUT, NULL);
            break;
        }
        int n = tw_client_poll(c, deadline < 0 ? -1
                                               : (int)s_left_ms(deadline));
        if (n < 0) {
            rc = n;
            break;
        }
    }
    /* S80: no longer running; feeders take no more items and submissions
     * are refused until tw_run returns, so nothing new runs inside a
     * finished session. */
    s->running = 0;
    s->finishing = 1;
    s->exit.code = code;
    s_abandon(s, 1, NULL, NULL);
    s_emit_run(s, TW_EV_FINISHING, NULL);
    if (rc == 0 || rc == TW_EFAILED || rc == TW_ECANCELED) {
        int wrc = 0;
        if (!wait) {
            wrc = s_cancel_inflight(s);
        } else {
            int64_t wdl = s_deadline(timeout_ms);
            while (tw_client_outstanding(c) > 0 &&
                   (wdl < 0 || s_left_ms(wdl) > 0)) {
                wrc = tw_client_poll(c, wdl < 0 ? -1 : (int)s_left_ms(wdl));
                if (wrc < 0) {
                    break;
                }
                wrc = 0;
            }
        }
        if (wrc < 0 && rc == 0) {
            rc = wrc;
        }
    }
    s_emit_run(s, TW_EV_FINISHED, NULL);
    s->finishing = 0;
    if (st) {
        *st = s->exit;
    }
    return rc;
}

int
tw__sess_closed(tw_client_t *c)
{
    const s_sess_t *s = s_sess(c, 0);
    return s && s->finishing ? TW_ESTATE : 0;
}

int
tw_stop(tw_client_t *c, const char *msg)
{
    s_sess_t *s = s_sess(c, 0);
    if (!s || !s->running || s->stop || s->end) {
        return TW_ESTATE;
    }
    s->stop = 1;
    s->finishing = 1; /* S80: later submissions raise at once */
    snprintf(s->exit.msg, sizeof s->exit.msg, "%s", msg ? msg : S_STOP_MSG);
    return 0;
}
