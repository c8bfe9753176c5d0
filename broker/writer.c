/*  broker/writer.c - the store's writer thread (see writer.h).
 *
 *  Two lists under one mutex: `todo` (handed over, oldest first) and
 *  `done` (written, waiting for the loop). The thread takes the head of
 *  `todo`, applies it with the mutex released, and moves it to `done`;
 *  the loop drains `done` from the uv_async callback, or from
 *  tw_writer_wait after waiting on `idle` until `todo` is empty and the
 *  thread is between batches.
 */
#include "broker/writer.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

enum { S_OP_PUT = 1, S_OP_PUT_LAST, S_OP_DEL, S_OP_DEL_PREFIX };

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

static void
s_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t
s_get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void
s_op(tw_wbatch_t *b, int op, tw_db_t db, const void *key, size_t klen,
     const void *val, size_t vlen)
{
    size_t need = b->len + 10 + klen + vlen;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < need) {
            cap *= 2;
        }
        b->ops = tw_realloc(b->ops, cap);
        b->cap = cap;
    }
    unsigned char *p = b->ops + b->len;
    p[0] = (unsigned char)op;
    p[1] = (unsigned char)db;
    s_u32(p + 2, (uint32_t)klen);
    s_u32(p + 6, (uint32_t)vlen);
    if (klen) {
        memcpy(p + 10, key, klen);
    }
    if (vlen) {
        memcpy(p + 10 + klen, val, vlen);
    }
    b->len = need;
    b->nops++;
}

void
tw_wbatch_put(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen,
              const void *val, size_t vlen, int last)
{
    s_op(b, last ? S_OP_PUT_LAST : S_OP_PUT, db, key, klen, val, vlen);
}

void
tw_wbatch_del(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen)
{
    s_op(b, S_OP_DEL, db, key, klen, NULL, 0);
}

void
tw_wbatch_del_prefix(tw_wbatch_t *b, tw_db_t db, const void *prefix,
                     size_t plen)
{
    s_op(b, S_OP_DEL_PREFIX, db, prefix, plen, NULL, 0);
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
    if (!b->nops) {
        b->used_bytes = tw_store_used_bytes(s);
        return 0;
    }
    int rc = tw_store_begin(s);
    const unsigned char *p = b->ops, *end = b->ops + b->len;
    while (rc == 0 && p < end) {
        int op = p[0];
        tw_db_t db = (tw_db_t)p[1];
        uint32_t klen = s_get_u32(p + 2), vlen = s_get_u32(p + 6);
        const unsigned char *key = p + 10, *val = p + 10 + klen;
        switch (op) {
        case S_OP_PUT:
            rc = tw_store_put(s, db, key, klen, val, vlen);
            break;
        case S_OP_PUT_LAST:
            rc = tw_store_put_last(s, db, key, klen, val, vlen);
            break;
        case S_OP_DEL:
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
    b->used_bytes = tw_store_used_bytes(s);
    return rc;
}

/* ---- the thread --------------------------------------------------------- */

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
    uint64_t errors;
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
        pthread_mutex_unlock(&w->mu);
        int rc;
        while ((rc = tw_wbatch_apply(b, w->store)) != 0) {
            /* Nothing of it was written: try again, before anything
             * later, until it fits (collection frees room) or the
             * broker stops. */
            pthread_mutex_lock(&w->mu);
            w->errors++;
            int stop = w->stop;
            pthread_mutex_unlock(&w->mu);
            if (stop) {
                break;
            }
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        b->rc = rc;
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
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(timeout_ms / 1000);
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
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

uint64_t
tw_writer_errors(tw_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->errors;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void
tw_writer_stop(tw_writer_t **wp)
{
    tw_writer_t *w = *wp;
    if (!w) {
        return;
    }
    /* Stop first: a batch stuck retrying gives up (rc set) instead of
     * holding the stop forever; the others are still written. */
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    s_drain(w);
    uv_close((uv_handle_t *)&w->async, s_closed);
    *wp = NULL;
}
