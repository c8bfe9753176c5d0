/*  broker/state/task.c - the task table (see task.h). */
#include "broker/state/task.h"
#include "common/alloc.h"
#include "proto/proto.h"

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
    ts->next_id = 1;
}

static void
s_free_task(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_task_t *t = val;
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
    memset(ts, 0, sizeof *ts);
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
}

size_t
tw_tasks_gc(tw_tasks_t *ts, uint64_t now_ms, const tw_tasks_gc_t *lim,
            size_t *for_bytes)
{
    size_t n = 0, bytes_only = 0;
    tw_task_t *t;
    while (n < lim->max_n && (t = ts->ended.head)) {
        int due = ts->ended.len > lim->max_ended ||
                  now_ms - t->t_ms >= lim->ttl_ms;
        if (!due && ts->payload_bytes <= lim->max_bytes) {
            break;
        }
        bytes_only += !due;
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
    if (ts->on_free) {
        ts->on_free(t, ts->on_free_arg);
    }
    ts->payload_bytes -= t->data_len;
    s_free_task(t->id, t, NULL);
}
