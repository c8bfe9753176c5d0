/*  broker/state/writer.c - the store's writer thread (see writer.h).
 *
 *  Two lists under one mutex: `todo` (handed over, oldest first) and
 *  `done` (written, waiting for the loop). The thread takes the head of
 *  `todo`, applies it with the mutex released, and moves it to `done`;
 *  the loop drains `done` from the uv_async callback, or from
 *  tw_writer_wait after waiting on `idle` until `todo` is empty and the
 *  thread is between batches. A failing batch waits for its next attempt
 *  on `work` with a timeout, so a stop wakes it at once.
 */
#include "broker/state/writer.h"
#include "broker/state/replops.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

tw_wbatch_t *
tw_wbatch_new(void)
{
    return tw_calloc(1, sizeof(tw_wbatch_t));
}

void
tw_wbatch_free(tw_wbatch_t *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < b->nmsgs; i++) {
        zmq_msg_close(&b->msgs[i]);
    }
    tw_free(b->msgs);
    tw_free(b->ops);
    tw_free(b);
}

/* Room for an operation with a value of up to `vlen` bytes; its header
 * and key written, the value's place returned. */
static unsigned char *
s_op_begin(tw_wbatch_t *b, int op, tw_db_t db, const void *key, size_t klen,
           size_t vlen)
{
    b->open = b->len;
    return tw_replops_begin(&b->ops, &b->cap, b->len, op, (int)db, key, klen,
                            vlen);
}

/* The operation begun last holds `vlen` bytes of value. */
static void
s_op_end(tw_wbatch_t *b, size_t vlen)
{
    unsigned char *p = b->ops + b->open;
    tw_replops_put_u32(p + 6, (uint32_t)vlen);
    b->len = b->open + 10 + tw_replops_get_u32(p + 2) + vlen;
    b->nops++;
}

static void
s_op(tw_wbatch_t *b, int op, tw_db_t db, const void *key, size_t klen,
     const void *val, size_t vlen)
{
    unsigned char *v = s_op_begin(b, op, db, key, klen, vlen);
    if (vlen) {
        memcpy(v, val, vlen);
    }
    s_op_end(b, vlen);
}

unsigned char *
tw_wbatch_put_begin(tw_wbatch_t *b, tw_db_t db, const void *key,
                    size_t klen, size_t max, int last)
{
    return s_op_begin(b, last ? TW_REPLOP_PUT_LAST : TW_REPLOP_PUT, db, key,
                      klen, max);
}

void
tw_wbatch_put_end(tw_wbatch_t *b, size_t vlen)
{
    s_op_end(b, vlen);
}

void
tw_wbatch_put(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen,
              const void *val, size_t vlen, int last)
{
    s_op(b, last ? TW_REPLOP_PUT_LAST : TW_REPLOP_PUT, db, key, klen, val,
         vlen);
}

void
tw_wbatch_del(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen)
{
    s_op(b, TW_REPLOP_DEL, db, key, klen, NULL, 0);
}

void
tw_wbatch_del_prefix(tw_wbatch_t *b, tw_db_t db, const void *prefix,
                     size_t plen)
{
    s_op(b, TW_REPLOP_DEL_PREFIX, db, prefix, plen, NULL, 0);
}

void
tw_wbatch_hold(tw_wbatch_t *b, zmq_msg_t f[3])
{
    if (b->nmsgs + 3 > b->capmsgs) {
        b->capmsgs = b->capmsgs ? b->capmsgs * 2 : 48;
        b->msgs = tw_realloc(b->msgs, b->capmsgs * sizeof *b->msgs);
    }
    for (int i = 0; i < 3; i++) {
        /* zmq_msg_t is moved by copy: its owner is now the batch. */
        b->msgs[b->nmsgs++] = f[i];
    }
}

int
tw_wbatch_apply(tw_wbatch_t *b, tw_store_t *s)
{
    int rc = b->nops ? tw_store_begin(s) : 0;
    const unsigned char *p = b->ops, *end = b->ops + b->len;
    while (rc == 0 && p < end) {
        int op = p[0];
        tw_db_t db = (tw_db_t)p[1];
        uint32_t klen = tw_replops_get_u32(p + 2);
        uint32_t vlen = tw_replops_get_u32(p + 6);
        const unsigned char *key = p + 10, *val = p + 10 + klen;
        switch (op) {
        case TW_REPLOP_PUT:
            rc = tw_store_put(s, db, key, klen, val, vlen);
            break;
        case TW_REPLOP_PUT_LAST:
            rc = tw_store_put_last(s, db, key, klen, val, vlen);
            break;
        case TW_REPLOP_DEL:
            rc = tw_store_del(s, db, key, klen);
            break;
        default:
            rc = tw_store_del_prefix(s, db, key, klen);
            break;
        }
        p += 10 + klen + vlen;
    }
    if (rc == 0) {
        rc = tw_store_commit(s);
    }
    if (rc != 0) {
        snprintf(b->err, sizeof b->err, "%s", tw_store_error(s));
    }
    b->have_use = tw_store_use(s, &b->use) == 0;
    return rc;
}

/* ---- the thread --------------------------------------------------------- */

#define S_RETRY_MIN_MS 50
#define S_RETRY_MAX_MS 2000

struct tw_writer {
    tw_store_t *store;
    tw_writer_done_fn done_fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    tw_wbatch_t *todo, *todo_tail;
    tw_wbatch_t *done, *done_tail;
    int busy, stop;
    uint64_t stop_at_ms;   /* stopping: give a failing batch up then */
    int given_up;          /* ... and every later one: rc, err */
    int given_rc;
    char given_err[320];
    tw_writer_health_t health;
    _Atomic int failing;
    uv_async_t async;
};

static void
s_push(tw_wbatch_t **head, tw_wbatch_t **tail, tw_wbatch_t *b)
{
    b->next = NULL;
    if (*tail) {
        (*tail)->next = b;
    } else {
        *head = b;
    }
    *tail = b;
}

/* Absolute CLOCK_REALTIME `ms` from now, for the condition waits. */
static struct timespec
s_deadline(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Apply `b`, again and again while it fails (mutex not held). */
static int
s_write(tw_writer_t *w, tw_wbatch_t *b)
{
    uint64_t delay = S_RETRY_MIN_MS;
    for (;;) {
        int rc = tw_wbatch_apply(b, w->store);
        pthread_mutex_lock(&w->mu);
        if (rc == 0) {
            if (w->health.failing) {
                w->health.failing = 0;
                w->health.recovered++;
                w->failing = 0;
            }
            pthread_mutex_unlock(&w->mu);
            return 0;
        }
        w->health.errors++;
        if (!w->health.failing) {
            w->health.failing = 1;
            w->health.since_ms = tw_now_ms();
            w->failing = 1;
        }
        w->health.rc = rc;
        snprintf(w->health.err, sizeof w->health.err, "%s", b->err);
        /* Wait for the next attempt, or for a stop whose grace is over. */
        uint64_t wake = tw_now_ms() + delay;
        for (;;) {
            uint64_t now = tw_now_ms();
            uint64_t limit =
                w->stop && w->stop_at_ms < wake ? w->stop_at_ms : wake;
            if (now >= limit) {
                break;
            }
            struct timespec until = s_deadline(limit - now);
            pthread_cond_timedwait(&w->work, &w->mu, &until);
        }
        int give_up = w->stop && tw_now_ms() >= w->stop_at_ms;
        if (give_up) {
            w->given_up = 1;
            w->given_rc = rc;
            snprintf(w->given_err, sizeof w->given_err, "%s", b->err);
        }
        pthread_mutex_unlock(&w->mu);
        if (give_up) {
            return rc;
        }
        delay = delay * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : delay * 2;
    }
}

static void *
s_main(void *arg)
{
    tw_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo && !w->stop) {
            pthread_cond_wait(&w->work, &w->mu);
        }
        if (!w->todo) {
            break; /* stopping, nothing left */
        }
        tw_wbatch_t *b = w->todo;
        w->busy = 1;
        int given_up = w->given_up;
        pthread_mutex_unlock(&w->mu);
        if (given_up) {
            /* A batch before it could not be written: neither is this
             * one, so the store keeps a prefix of the batches. */
            b->rc = w->given_rc;
            snprintf(b->err, sizeof b->err, "%s", w->given_err);
        } else {
            b->rc = s_write(w, b);
        }
        pthread_mutex_lock(&w->mu);
        w->todo = b->next;
        if (!w->todo) {
            w->todo_tail = NULL;
        }
        s_push(&w->done, &w->done_tail, b);
        w->busy = 0;
        pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->async);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Run `done` for every written batch (loop thread). */
static void
s_drain(tw_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    tw_wbatch_t *b = w->done;
    w->done = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (b) {
        tw_wbatch_t *next = b->next;
        w->done_fn(b, w->arg);
        b = next;
    }
}

static void
s_on_async(uv_async_t *h)
{
    s_drain(h->data);
}

static void
s_closed(uv_handle_t *h)
{
    tw_writer_t *w = h->data;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->idle);
    tw_free(w);
}

tw_writer_t *
tw_writer_new(uv_loop_t *loop, tw_store_t *s, tw_writer_done_fn done,
              void *arg)
{
    tw_writer_t *w = tw_calloc(1, sizeof *w);
    w->store = s;
    w->done_fn = done;
    w->arg = arg;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->idle, NULL);
    if (uv_async_init(loop, &w->async, s_on_async) != 0) {
        tw_free(w);
        return NULL;
    }
    w->async.data = w;
    if (pthread_create(&w->thread, NULL, s_main, w) != 0) {
        tw_warn("store.writer", "no writer thread: writing on the loop");
        uv_close((uv_handle_t *)&w->async, s_closed);
        return NULL;
    }
    return w;
}

void
tw_writer_submit(tw_writer_t *w, tw_wbatch_t *b)
{
    pthread_mutex_lock(&w->mu);
    s_push(&w->todo, &w->todo_tail, b);
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

int
tw_writer_wait(tw_writer_t *w, uint64_t timeout_ms)
{
    struct timespec until = s_deadline(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    while ((w->todo || w->busy) && rc == 0) {
        if (timeout_ms) {
            rc = pthread_cond_timedwait(&w->idle, &w->mu, &until);
        } else {
            pthread_cond_wait(&w->idle, &w->mu);
        }
    }
    int pending = w->todo || w->busy;
    pthread_mutex_unlock(&w->mu);
    s_drain(w);
    return pending ? TW_ETIMEDOUT : 0;
}

int
tw_writer_busy(tw_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    int busy = w->todo || w->busy || w->done;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

void
tw_writer_health(tw_writer_t *w, tw_writer_health_t *h)
{
    pthread_mutex_lock(&w->mu);
    *h = w->health;
    pthread_mutex_unlock(&w->mu);
}

int
tw_writer_failing(tw_writer_t *w)
{
    return w->failing;
}

uint64_t
tw_writer_errors(tw_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->health.errors;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void
tw_writer_stop(tw_writer_t **wp, uint64_t grace_ms)
{
    tw_writer_t *w = *wp;
    if (!w) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    w->stop_at_ms = tw_now_ms() + grace_ms;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    s_drain(w);
    uv_close((uv_handle_t *)&w->async, s_closed);
    *wp = NULL;
}
