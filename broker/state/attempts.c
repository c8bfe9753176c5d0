/*  broker/state/attempts.c - the finished runs of a task (see attempts.h).
 */
#include "broker/state/attempts.h"

#include "common/alloc.h"
#include "common/error.h"
#include "proto/mpwalk.h"

#include <string.h>

void
tw_attempts_split(const char *err, size_t elen, size_t *first_len,
                  const char **rest, size_t *rest_len)
{
    const char *nl = err ? memchr(err, '\n', elen) : NULL;
    *rest = NULL;
    *rest_len = 0;
    if (!nl) {
        *first_len = err ? elen : 0;
        return;
    }
    size_t first = (size_t)(nl - err);
    *first_len = first > 0 && err[first - 1] == '\r' ? first - 1 : first;
    size_t after = elen - first - 1;
    if (after > 0) {
        *rest = nl + 1;
        *rest_len = after;
    }
}

static void
s_free_run(tw_attempt_t *a)
{
    tw_free(a->error);
    tw_free(a->traceback);
}

void
tw_attempts_add(tw_attempts_t *h, uint32_t n, uint64_t worker,
                uint64_t started_ms, uint64_t ended_ms, int state,
                const char *err, size_t elen)
{
    if (h->len == TW_ATTEMPTS_MAX) {
        s_free_run(&h->runs[0]);
        memmove(h->runs, h->runs + 1, (h->len - 1) * sizeof *h->runs);
        h->len--;
    } else {
        h->runs = tw_realloc(h->runs, (h->len + 1) * sizeof *h->runs);
    }
    tw_attempt_t *a = &h->runs[h->len++];
    memset(a, 0, sizeof *a);
    a->n = n;
    a->worker = worker;
    a->started_ms = started_ms;
    a->ended_ms = ended_ms;
    a->state = (uint8_t)state;
    size_t first, rlen;
    const char *rest;
    tw_attempts_split(err, elen, &first, &rest, &rlen);
    if (first > 0) {
        a->error = tw_strndup(err, first);
    }
    if (rest) {
        a->traceback = tw_strndup(rest, rlen);
    }
}

void
tw_attempts_free(tw_attempts_t *h)
{
    for (uint32_t i = 0; i < h->len; i++) {
        s_free_run(&h->runs[i]);
    }
    tw_free(h->runs);
    h->runs = NULL;
    h->len = 0;
}

static void
s_opt_str(tw_enc_t *e, const char *s, size_t n)
{
    if (s && n) {
        tw_enc_str(e, s, n);
    } else {
        tw_enc_nil(e);
    }
}

void
tw_attempts_encode_run(tw_enc_t *e, uint32_t n, uint64_t worker,
                       uint64_t started_ms, uint64_t ended_ms, int state,
                       const char *error, size_t error_len,
                       const char *traceback, size_t traceback_len)
{
    tw_enc_map(e, 7);
    tw_enc_cstr(e, "n");
    tw_enc_uint(e, n);
    tw_enc_cstr(e, "worker");
    tw_enc_uint(e, worker);
    tw_enc_cstr(e, "started_ms");
    tw_enc_uint(e, started_ms);
    tw_enc_cstr(e, "ended_ms");
    if (ended_ms) {
        tw_enc_uint(e, ended_ms);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, ended_ms ? tw_proto_state_name(state) : "running");
    tw_enc_cstr(e, "error");
    s_opt_str(e, error, error_len);
    tw_enc_cstr(e, "traceback");
    s_opt_str(e, traceback, traceback_len);
}

void
tw_attempts_encode(const tw_attempts_t *h, tw_enc_t *e)
{
    for (uint32_t i = 0; i < h->len; i++) {
        const tw_attempt_t *a = &h->runs[i];
        tw_attempts_encode_run(e, a->n, a->worker, a->started_ms,
                               a->ended_ms, a->state, a->error,
                               a->error ? strlen(a->error) : 0,
                               a->traceback,
                               a->traceback ? strlen(a->traceback) : 0);
    }
}

/* The state named `s` (n bytes): a TW_ST_* end state, or -1. */
static int
s_state_of(const char *s, size_t n)
{
    for (int st = TW_ST_OK; st <= TW_ST_LOST; st++) {
        const char *name = tw_proto_state_name(st);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            return st;
        }
    }
    return -1;
}

/* One stored run: its map's values, then tw_attempts_add. */
static int
s_decode_run(tw_attempts_t *h, const msgpack_object *m)
{
    if (m->type != MSGPACK_OBJECT_MAP) {
        return TW_EPROTO;
    }
    uint64_t n = 0, worker = 0, started = 0, ended = 0;
    int state = -1;
    const msgpack_object *err = NULL, *tb = NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            return TW_EPROTO;
        }
        const char *ks = k->via.str.ptr;
        size_t kl = k->via.str.size;
#define S_KEY(lit) (kl == sizeof lit - 1 && memcmp(ks, lit, kl) == 0)
        int u = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        int str = v->type == MSGPACK_OBJECT_STR;
        if (S_KEY("n") && u) {
            n = v->via.u64;
        } else if (S_KEY("worker") && u) {
            worker = v->via.u64;
        } else if (S_KEY("started_ms") && u) {
            started = v->via.u64;
        } else if (S_KEY("ended_ms") && u) {
            ended = v->via.u64;
        } else if (S_KEY("state") && str) {
            state = s_state_of(v->via.str.ptr, v->via.str.size);
        } else if (S_KEY("error") && str) {
            err = v;
        } else if (S_KEY("traceback") && str) {
            tb = v;
        }
#undef S_KEY
    }
    if (state < 0 || !ended || n > UINT32_MAX) {
        return TW_EPROTO;
    }
    /* Join error and traceback again for the split in tw_attempts_add. */
    size_t el = err ? err->via.str.size : 0, tl = tb ? tb->via.str.size : 0;
    char *text = tw_malloc(el + 1 + tl + 1);
    if (el) {
        memcpy(text, err->via.str.ptr, el);
    }
    text[el] = '\n';
    if (tl) {
        memcpy(text + el + 1, tb->via.str.ptr, tl);
    }
    tw_attempts_add(h, (uint32_t)n, worker, started, ended, state,
                    el || tl ? text : NULL, tl ? el + 1 + tl : el);
    tw_free(text);
    return 0;
}

int
tw_attempts_decode(tw_attempts_t *h, const void *buf, size_t len)
{
    if (!tw_mp_one(buf, len, TW_MP_DEPTH_DECODE)) {
        return TW_EPROTO;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = TW_EPROTO;
    if (msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_ARRAY) {
        rc = 0;
        for (uint32_t i = 0; rc == 0 && i < up.data.via.array.size; i++) {
            rc = s_decode_run(h, &up.data.via.array.ptr[i]);
        }
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}
