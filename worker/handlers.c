/*  worker/handlers.c - the registry and the tw_call_t half of the plugin
 *  ABI (see handlers.h and include/taskwheel/handler.h).
 *
 *  "Exactly once" rests on one atomic flag per call: tw_call_finish and
 *  tw_call_fail claim it with an exchange, so a second finish, or a finish
 *  racing the pool's "returned without finishing" check, loses cleanly with
 *  -EALREADY. The tw_call_* functions are exported from the worker
 *  executable so that dlopen'ed plugins resolve them there.
 */
#include "worker/handlers.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/utf8.h"
#include "proto/proto.h"

#include <assert.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Mirrors proto.h's limits without making handlers depend on the codec. */
#define S_MAX_NAME 128
#define S_MAX_HANDLERS 1024
#define S_MAX_TEXT 65535 /* an error message, in bytes */

/* Registry -------------------------------------------------------------- */

void
tw_handlers_init(tw_handlers_t *reg)
{
    memset(reg, 0, sizeof *reg);
}

void
tw_handlers_truncate(tw_handlers_t *reg, size_t n)
{
    while (reg->n > n) {
        tw_free(reg->v[--reg->n].name);
    }
}

void
tw_handlers_free(tw_handlers_t *reg)
{
    tw_handlers_truncate(reg, 0);
    tw_free(reg->v);
    for (size_t i = 0; i < reg->nlibs; i++) {
        dlclose(reg->libs[i]);
    }
    tw_free(reg->libs);
    memset(reg, 0, sizeof *reg);
}

void
tw_handlers_adopt_lib(tw_handlers_t *reg, void *dl)
{
    reg->libs = tw_realloc(reg->libs, (reg->nlibs + 1) * sizeof *reg->libs);
    reg->libs[reg->nlibs++] = dl;
}

int
tw_handlers_add_all(tw_handlers_t *reg, size_t stdout_max)
{
    int rc = tw_handlers_add_builtin(reg);
    if (rc == 0) {
        rc = tw_handlers_add_station_builtins(reg);
    }
    if (rc == 0) {
        rc = tw_handlers_add_chan_builtins(reg);
    }
    if (rc == 0) {
        rc = tw_handlers_add_exec(reg, stdout_max);
    }
    if (rc == 0) {
        rc = tw_handlers_add_stream(reg, stdout_max);
    }
    return rc;
}

const tw_handler_t *
tw_handlers_find(const tw_handlers_t *reg, const char *name, size_t len)
{
    for (size_t i = 0; i < reg->n; i++) {
        const tw_handler_t *h = &reg->v[i];
        if (h->nlen == len && h->name[0] == name[0] &&
            memcmp(h->name, name, len) == 0) {
            return h;
        }
    }
    return NULL;
}

int
tw_handlers_add(tw_handlers_t *reg, const tw_handler_def_t *def)
{
    if (!def || !def->name || !def->run ||
        (def->flags != TW_HANDLER_ASYNC &&
         def->flags != TW_HANDLER_BLOCKING)) {
        return TW_EINVAL;
    }
    size_t len = strlen(def->name);
    if (len == 0 || len > S_MAX_NAME || reg->n >= S_MAX_HANDLERS) {
        return TW_EINVAL;
    }
    if (tw_handlers_find(reg, def->name, len)) {
        return TW_EEXIST;
    }
    if (reg->n == reg->cap) {
        reg->cap = reg->cap ? reg->cap * 2 : 8;
        reg->v = tw_realloc(reg->v, reg->cap * sizeof *reg->v);
    }
    tw_handler_t *h = &reg->v[reg->n++];
    memset(h, 0, sizeof *h); /* fields the def does not carry (stop) */
    h->name = tw_strndup(def->name, len);
    h->nlen = len;
    h->flags = def->flags;
    h->run = def->run;
    h->cancel = def->cancel;
    h->udata = def->udata;
    h->n2s = def->n2s;
    h->end = def->end;
    return 0;
}

/* Calls ----------------------------------------------------------------- */

static int
s_blocking(const tw_call_t *call)
{
    return call->h->flags & TW_HANDLER_BLOCKING;
}

static void
s_deliver(tw_call_t *call, int st, const void *r, size_t rlen,
          const char *err)
{
    call->running = 0;
    call->done(call, st, r, rlen, err);
}

/* Format an error message into the call's buffer: capped, valid UTF-8. */
static void
s_vformat(tw_call_t *call, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    size_t n = need < 0 ? 0 : (size_t)need;
    if (n > S_MAX_TEXT) {
        n = S_MAX_TEXT;
    }
    if (call->ecap < n + 1) {
        size_t cap = n + 1 < 256 ? 256 : n + 1;
        call->err = tw_realloc(call->err, cap);
        call->ecap = cap;
    }
    if (need < 0) {
        call->err[0] = '\0';
    } else {
        vsnprintf(call->err, n + 1, fmt, ap);
    }
    tw_utf8_scrub(call->err, n);
}

static void
s_format(tw_call_t *call, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vformat(call, fmt, ap);
    va_end(ap);
}

static void
s_work_cb(uv_work_t *w)
{
    tw_call_t *call = w->data;
    call->h->run(call, call->h->udata);
    if (!atomic_exchange(&call->finished, 1)) {
        call->st = TW_ST_ERROR;
        s_format(call, "handler '%s' returned without finishing the call",
                 call->h->name);
    }
}

static void
s_after_work_cb(uv_work_t *w, int status)
{
    tw_call_t *call = w->data;
    if (status == UV_ECANCELED) {
        atomic_store(&call->finished, 1);
        call->st = TW_ST_ERROR;
        s_format(call, "cancelled before it started");
    }
    if (call->st == TW_ST_OK) {
        s_deliver(call, TW_ST_OK, call->has_r ? call->rbuf : NULL,
                  call->has_r ? call->rlen : 0, NULL);
    } else {
        s_deliver(call, TW_ST_ERROR, NULL, 0, call->err);
    }
}

void
tw_call_init(tw_call_t *call, uv_loop_t *loop, tw_call_done_cb done,
             void *owner)
{
    memset(call, 0, sizeof *call);
    call->loop = loop;
    call->done = done;
    call->owner = owner;
    atomic_init(&call->finished, 1);
    atomic_init(&call->cancelled, 0);
}

void
tw_call_free(tw_call_t *call)
{
    assert(!call->running);
    tw_free(call->args);
    tw_free(call->rbuf);
    tw_free(call->err);
    call->args = call->rbuf = call->err = NULL;
    call->acap = call->rcap = call->ecap = 0;
}

int
tw_call_start(tw_call_t *call, const tw_handler_t *h, uint64_t id,
              const void *args, size_t alen)
{
    assert(!call->running);
    if (alen > call->acap) {
        char *p = tw_try_realloc(call->args, alen);
        if (!p) {
            return TW_ENOMEM;
        }
        call->args = p;
        call->acap = alen;
    }
    if (alen) {
        memcpy(call->args, args, alen);
    }
    call->alen = alen;
    call->h = h;
    call->id = id;
    call->data = NULL;
    call->chan = NULL; /* a new task: no channel yet (worker/chan.h) */
    atomic_store_explicit(&call->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&call->cancelled, 0, memory_order_relaxed);
    call->running = 1;
    if (h->flags & TW_HANDLER_BLOCKING) {
        call->st = TW_ST_ERROR;
        call->has_r = 0;
        call->rlen = 0;
        call->work.data = call;
        int rc = uv_queue_work(call->loop, &call->work, s_work_cb,
                               s_after_work_cb);
        if (rc != 0) {
            call->running = 0;
            atomic_store(&call->finished, 1);
        }
        return rc;
    }
    h->run(call, h->udata);
    return 0;
}

void
tw_call_cancel(tw_call_t *call)
{
    if (!call->running || atomic_exchange(&call->cancelled, 1)) {
        return;
    }
    if (s_blocking(call) &&
        uv_cancel((uv_req_t *)&call->work) == 0) {
        return; /* never started: after_work reports it */
    }
    if (call->h->cancel && !atomic_load(&call->finished)) {
        call->h->cancel(call, call->h->udata);
    }
}

/* The plugin ABI (include/taskwheel/handler.h) ----------------------------- */

const void *
tw_call_args(const tw_call_t *call, size_t *len)
{
    if (len) {
        *len = call->alen;
    }
    return call->args;
}

uint64_t
tw_call_id(const tw_call_t *call)
{
    return call->id;
}

const char *
tw_call_handler(const tw_call_t *call)
{
    return call->h->name;
}

uv_loop_t *
tw_call_loop(const tw_call_t *call)
{
    return call->loop;
}

void
tw_call_set_data(tw_call_t *call, void *data)
{
    call->data = data;
}

void *
tw_call_data(const tw_call_t *call)
{
    return call->data;
}

int
tw_call_cancelled(const tw_call_t *call)
{
    return atomic_load(&((tw_call_t *)call)->cancelled);
}

int
tw_call_finish(tw_call_t *call, const void *result, size_t len)
{
    if (atomic_exchange(&call->finished, 1)) {
        return -EALREADY;
    }
    if (!result) {
        len = 0;
    }
    if (!s_blocking(call)) {
        s_deliver(call, TW_ST_OK, len ? result : NULL, len, NULL);
        return 0;
    }
    /* On a pool thread: park a copy until after_work. */
    if (len > call->rcap) {
        char *p = tw_try_realloc(call->rbuf, len);
        if (!p) {
            call->st = TW_ST_ERROR;
            s_format(call, "out of memory keeping a %zu byte result", len);
            return 0;
        }
        call->rbuf = p;
        call->rcap = len;
    }
    if (len) {
        memcpy(call->rbuf, result, len);
    }
    call->rlen = len;
    call->has_r = len > 0;
    call->st = TW_ST_OK;
    return 0;
}

int
tw_call_fail(tw_call_t *call, const char *fmt, ...)
{
    if (atomic_exchange(&call->finished, 1)) {
        return -EALREADY;
    }
    va_list ap;
    va_start(ap, fmt);
    s_vformat(call, fmt, ap);
    va_end(ap);
    call->st = TW_ST_ERROR;
    if (!s_blocking(call)) {
        s_deliver(call, TW_ST_ERROR, NULL, 0, call->err);
    }
    return 0;
}
