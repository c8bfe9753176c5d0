/*  broker/state/attempts.c - the finished runs of a task (see attempts.h).
 */
#include "broker/state/attempts.h"

#include "common/alloc.h"

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
