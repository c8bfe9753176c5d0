/*  broker/state/queue.h - the pending tasks of one handler, most urgent first.
 *
 *  A binary heap ordered by priority (higher first) then by id (older
 *  first), so equal priorities run in submission order and a task requeued
 *  after its worker died goes back ahead of newer ones. Each task records
 *  its heap position, so a cancelled pending task is removed in O(log n).
 *  The heap keeps each task's sort key beside its pointer (`keys`), taken
 *  when the task is pushed: sifting compares neighbouring keys in one array
 *  instead of reading two tasks scattered over the heap for every compare.
 *  A task's priority and due time are therefore read once, on push; code
 *  that changes them removes the task and pushes it again.
 *  The queue borrows tasks; the task table owns them. Broker loop thread
 *  only.
 */
#ifndef TW_BROKER_QUEUE_H
#define TW_BROKER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/task.h"

/* A task's place in a queue's order: ascending (k, id). */
typedef struct {
    uint64_t k; /* priority queues: INT32_MAX - priority; due: due_ms */
    uint64_t id;
} tw_queue_key_t;

typedef struct tw_queue {
    tw_task_t **heap;
    tw_queue_key_t *keys; /* keys[i] belongs to heap[i] */
    size_t len, cap;
    int (*before)(const tw_task_t *a, const tw_task_t *b);
    int due;   /* 1 when `before` is tw_queue_due_before */
    int ready; /* 1 for a handler's ready queue (the dispatcher's input) */
} tw_queue_t;

/* An empty queue ordered by priority then id (tw_queue_before). */
void tw_queue_init(tw_queue_t *q);

/* An empty queue ordered by `before`: tw_queue_before or
 * tw_queue_due_before (the keys are derived from which one it is). */
void tw_queue_init_by(tw_queue_t *q,
                      int (*before)(const tw_task_t *, const tw_task_t *));
void tw_queue_free(tw_queue_t *q);

/* Add a task; it records the queue in t->inq. */
void tw_queue_push(tw_queue_t *q, tw_task_t *t);

/* The most urgent task without removing it, or NULL. */
static inline tw_task_t *
tw_queue_peek(const tw_queue_t *q)
{
    return q->len ? q->heap[0] : NULL;
}

/* Remove and return the most urgent task, or NULL. */
tw_task_t *tw_queue_pop(tw_queue_t *q);

/* Remove a task that is in the queue (t->inq becomes NULL). */
void tw_queue_remove(tw_queue_t *q, tw_task_t *t);

/* 1 if a should run before b. */
int tw_queue_before(const tw_task_t *a, const tw_task_t *b);

/* 1 if a is due before b (the delayed tasks' order). */
int tw_queue_due_before(const tw_task_t *a, const tw_task_t *b);

#endif /* TW_BROKER_QUEUE_H */
