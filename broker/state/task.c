/*  broker/state/task.c - the task table (see task.h). */
#include "broker/state/task.h"
#include "common/alloc.h"
#include "proto/jsonw.h"
#include "proto/proto.h"

#include <stddef.h>
#include <string.h>

void
tw_task_list_push(tw_task_list_t *l, tw_task_t *t)
{
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail) {
        l->tail->next = t;
    } else {
        l->head = t;
    }
    l->tail = t;
    l->len++;
}

void
tw_task_list_remove(tw_task_list_t *l, tw_task_t *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        l->head = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    } else {
        l->tail = t->prev;
    }
    t->prev = t->next = NULL;
    l->len--;
}

void
tw_task_plist_push(tw_task_list_t *l, tw_task_t *t)
{
    t->pnext = NULL;
    t->pprev = l->tail;
    if (l->tail) {
        l->tail->pnext = t;
    } else {
        l->head = t;
    }
    l->tail = t;
    l->len++;
}

void
tw_task_plist_remove(tw_task_list_t *l, tw_task_t *t)
{
    if (t->pprev) {
        t->pprev->pnext = t->pnext;
    } else {
        l->head = t->pnext;
    }
    if (t->pnext) {
        t->pnext->pprev = t->pprev;
    } else {
        l->tail = t->pprev;
    }
    t->pprev = t->pnext = NULL;
    l->len--;
}

void
tw_tasks_init(tw_tasks_t *ts)
{
    memset(ts, 0, sizeof *ts);
    tw_idmap_init(&ts->by_id);
    tw_trecs_init(&ts->recs);
    ts->next_id = 1;
}

static void
s_free_task(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_task_t *t = val;
    if (t->more) {
        tw_free(t->more->args);
        tw_attempts_free(&t->more->runs);
        tw_free(t->more);
    }
    tw_free(t->data);
    tw_free(t->error);
    tw_free(t->groups);
    tw_free(t->key);
    tw_free(t);
}

void
tw_tasks_destroy(tw_tasks_t *ts)
{
    tw_idmap_each(&ts->by_id, s_free_task, NULL);
    tw_idmap_free(&ts->by_id);
    tw_trecs_free(&ts->recs);
    memset(ts, 0, sizeof *ts);
}

void
tw_tasks_changed(tw_tasks_t *ts, tw_task_t *t, uint64_t now_ms)
{
    tw_trecs_move(&ts->recs, &t->rec, t->state, now_ms);
}

tw_task_more_t *
tw_tasks_more(tw_task_t *t)
{
    if (!t->more) {
        t->more = tw_calloc(1, sizeof *t->more);
    }
    return t->more;
}

void
tw_tasks_run_ended(tw_task_t *t, int state, const char *err, size_t elen,
                   uint64_t now_wall)
{
    if (state == TW_ST_OK && t->attempt <= 1 && !t->more) {
        return;
    }
    tw_task_more_t *m = tw_tasks_more(t);
    tw_attempts_add(&m->runs, t->attempt, t->worker, t->run_wall, now_wall,
                    state, err, elen);
}

tw_task_t *
tw_tasks_of_rec(const tw_trec_t *rec)
{
    return (tw_task_t *)((const char *)rec - offsetof(tw_task_t, rec));
}

/* An ended task's arguments (t->data, about to be replaced by its
 * result) go to its record: whole and counted in payload_bytes if it did
 * not end ok (it may be retried); for an ok task whole up to keep_args,
 * else a JSON preview of at most keep_args bytes (at least 256), and not
 * counted: bounded per record like its error text. */
static void
s_keep_args(tw_tasks_t *ts, tw_task_t *t, int state)
{
    if (!t->data_len) {
        return;
    }
    tw_task_more_t *m = tw_tasks_more(t);
    tw_free(m->args);
    m->args_bytes = t->data_len;
    m->counted = state != TW_ST_OK;
    if (state != TW_ST_OK || t->data_len <= ts->keep_args) {
        m->args = t->data;
        m->args_len = t->data_len;
        m->preview = 0;
        if (!m->counted) {
            ts->payload_bytes -= t->data_len;
        }
        t->data = NULL;
        t->data_len = 0;
        return;
    }
    tw_jsonw_t w;
    tw_jsonw_init(&w, ts->keep_args > 256 ? ts->keep_args : 256);
    tw_jsonw_msgpack(&w, t->data, t->data_len, NULL);
    size_t n;
    m->args = tw_jsonw_take(&w, &n);
    m->args_len = (uint32_t)n;
    m->preview = 1;
}

tw_task_t *
tw_tasks_create(tw_tasks_t *ts, const void *data, size_t len,
                uint64_t now_ms)
{
    tw_task_t *t = tw_calloc(1, sizeof *t);
    t->id = ts->next_id++;
    t->state = TW_ST_PENDING;
    t->t_ms = now_ms;
    if (len) {
        t->data = tw_malloc(len);
        memcpy(t->data, data, len);
        t->data_len = (uint32_t)len;
        ts->payload_bytes += len;
    }
    tw_idmap_put(&ts->by_id, t->id, t);
    ts->live++;
    t->rec.set = TW_TREC_NONE;
    tw_trecs_move(&ts->recs, &t->rec, t->state, now_ms);
    return t;
}

tw_task_t *
tw_tasks_get(const tw_tasks_t *ts, uint64_t id)
{
    return tw_idmap_get(&ts->by_id, id);
}

void
tw_tasks_end(tw_tasks_t *ts, tw_task_t *t, int state, const void *result,
             size_t len, const char *error, size_t elen, uint64_t now_ms)
{
    s_keep_args(ts, t, state);
    tw_free(t->data);
    ts->payload_bytes -= t->data_len;
    t->data = NULL;
    t->data_len = 0;
    if (result && len) {
        t->data = tw_malloc(len);
        memcpy(t->data, result, len);
        t->data_len = (uint32_t)len;
        ts->payload_bytes += len;
    }
    if (error && t->error) {
        /* Earlier attempts' errors come first (retries keep them all). */
        size_t old = strlen(t->error);
        char *both = tw_malloc(old + elen + 2 + 1);
        memcpy(both, t->error, old);
        memcpy(both + old, "; ", 2);
        memcpy(both + old + 2, error, elen);
        both[old + 2 + elen] = '\0';
        tw_free(t->error);
        t->error = both;
    } else if (error) {
        t->error = tw_strndup(error, elen);
    }
    t->state = (uint8_t)state;
    t->t_ms = now_ms;
    ts->live--;
    tw_task_list_push(&ts->ended, t);
    tw_trecs_move(&ts->recs, &t->rec, state, now_ms);
}

int
tw_tasks_revive(tw_tasks_t *ts, tw_task_t *t)
{
    tw_task_more_t *m = t->more;
    if (m && m->preview) {
        return TW_ESTATE;
    }
    tw_task_list_remove(&ts->ended, t);
    ts->payload_bytes -= t->data_len; /* a failed task keeps no result */
    tw_free(t->data);
    t->data = NULL;
    t->data_len = 0;
    if (m && m->args) {
        t->data = m->args; /* counted in payload_bytes from now on */
        t->data_len = m->args_len;
        if (!m->counted) {
            ts->payload_bytes += m->args_len;
        }
        m->counted = 0;
        m->args = NULL;
        m->args_len = 0;
    }
    ts->live++;
    return 0;
}

/* The task that is next due in the sets `a` and `b` (or `a` alone when b
 * is TW_TREC_NONE), oldest change first. */
static tw_task_t *
s_oldest(const tw_tasks_t *ts, tw_trec_set_t a, tw_trec_set_t b)
{
    tw_trec_t *ra = tw_trecs_oldest(&ts->recs, a);
    tw_trec_t *rb = b == TW_TREC_NONE ? NULL : tw_trecs_oldest(&ts->recs, b);
    tw_trec_t *r = !ra ? rb : !rb ? ra : ra->csn < rb->csn ? ra : rb;
    return r ? tw_tasks_of_rec(r) : NULL;
}

size_t
tw_tasks_gc(tw_tasks_t *ts, uint64_t now_ms, const tw_tasks_gc_t *lim,
            size_t *for_bytes)
{
    size_t n = 0, bytes_only = 0;
    tw_task_t *t;
    /* Ok and cancelled records by --result-ttl and --max-results. */
    while (n < lim->max_n &&
           (t = s_oldest(ts, TW_TREC_OK, TW_TREC_CANCELLED))) {
        size_t kept = tw_trecs_count(&ts->recs, TW_TREC_OK) +
                      tw_trecs_count(&ts->recs, TW_TREC_CANCELLED);
        if (kept <= lim->max_ended && now_ms - t->t_ms < lim->ttl_ms) {
            break;
        }
        tw_tasks_forget(ts, t);
        n++;
    }
    /* Failed ones by their own limits: a dead-letter set. */
    while (n < lim->max_n && (t = s_oldest(ts, TW_TREC_FAILED, TW_TREC_NONE))) {
        if (tw_trecs_count(&ts->recs, TW_TREC_FAILED) <= lim->max_failed &&
            now_ms - t->t_ms < lim->failed_ttl_ms) {
            break;
        }
        tw_tasks_forget(ts, t);
        n++;
    }
    /* Payload pressure: the oldest ended task first, whatever its end. */
    while (n < lim->max_n && ts->payload_bytes > lim->max_bytes &&
           (t = ts->ended.head)) {
        bytes_only++;
        tw_tasks_forget(ts, t);
        n++;
    }
    if (for_bytes) {
        *for_bytes = bytes_only;
    }
    return n;
}

void
tw_tasks_forget(tw_tasks_t *ts, tw_task_t *t)
{
    tw_task_list_remove(&ts->ended, t);
    tw_idmap_del(&ts->by_id, t->id);
    tw_trecs_drop(&ts->recs, &t->rec);
    if (ts->on_free) {
        ts->on_free(t, ts->on_free_arg);
    }
    ts->payload_bytes -= t->data_len;
    if (t->more && t->more->counted) {
        ts->payload_bytes -= t->more->args_len;
    }
    s_free_task(t->id, t, NULL);
}
