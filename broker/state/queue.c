/*  broker/state/queue.c - the binary heap behind tw_queue_t (see queue.h). */
#include "broker/state/queue.h"
#include "common/alloc.h"

#include <string.h>

int
tw_queue_before(const tw_task_t *a, const tw_task_t *b)
{
    return a->priority != b->priority ? a->priority > b->priority
                                      : a->id < b->id;
}

int
tw_queue_due_before(const tw_task_t *a, const tw_task_t *b)
{
    return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->id < b->id;
}

void
tw_queue_init_by(tw_queue_t *q,
                 int (*before)(const tw_task_t *, const tw_task_t *))
{
    memset(q, 0, sizeof *q);
    q->before = before;
    q->due = before == tw_queue_due_before;
}

void
tw_queue_init(tw_queue_t *q)
{
    tw_queue_init_by(q, tw_queue_before);
}

void
tw_queue_free(tw_queue_t *q)
{
    tw_free(q->heap);
    tw_free(q->keys);
    q->heap = NULL;
    q->keys = NULL;
    q->len = q->cap = 0;
}

static inline int
s_key_before(const tw_queue_key_t *a, const tw_queue_key_t *b)
{
    return a->k != b->k ? a->k < b->k : a->id < b->id;
}

static void
s_set(tw_queue_t *q, size_t i, tw_task_t *t, const tw_queue_key_t *k)
{
    q->heap[i] = t;
    q->keys[i] = *k;
    t->heap_idx = (uint32_t)i;
}

static void
s_up(tw_queue_t *q, size_t i)
{
    tw_task_t *t = q->heap[i];
    tw_queue_key_t k = q->keys[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!s_key_before(&k, &q->keys[parent])) {
            break;
        }
        s_set(q, i, q->heap[parent], &q->keys[parent]);
        i = parent;
    }
    s_set(q, i, t, &k);
}

static void
s_down(tw_queue_t *q, size_t i)
{
    tw_task_t *t = q->heap[i];
    tw_queue_key_t k = q->keys[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->len) {
            break;
        }
        if (c + 1 < q->len && s_key_before(&q->keys[c + 1], &q->keys[c])) {
            c++;
        }
        if (!s_key_before(&q->keys[c], &k)) {
            break;
        }
        s_set(q, i, q->heap[c], &q->keys[c]);
        i = c;
    }
    s_set(q, i, t, &k);
}

void
tw_queue_push(tw_queue_t *q, tw_task_t *t)
{
    if (q->len == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->heap = tw_realloc(q->heap, q->cap * sizeof *q->heap);
        q->keys = tw_realloc(q->keys, q->cap * sizeof *q->keys);
    }
    tw_queue_key_t k = {
        .k = q->due ? t->due_ms
                    : (uint64_t)((int64_t)INT32_MAX - (int64_t)t->priority),
        .id = t->id,
    };
    s_set(q, q->len++, t, &k);
    t->inq = q;
    s_up(q, q->len - 1);
}

void
tw_queue_remove(tw_queue_t *q, tw_task_t *t)
{
    size_t i = t->heap_idx;
    t->inq = NULL;
    q->len--;
    if (i == q->len) {
        return;
    }
    tw_task_t *last = q->heap[q->len];
    s_set(q, i, last, &q->keys[q->len]);
    s_down(q, i);
    s_up(q, last->heap_idx);
}

tw_task_t *
tw_queue_pop(tw_queue_t *q)
{
    if (!q->len) {
        return NULL;
    }
    tw_task_t *t = q->heap[0];
    tw_queue_remove(q, t);
    return t;
}
