/*  broker/state/chan.c - the routing rules of task channels (see chan.h).
 */
#include "broker/state/chan.h"
#include "common/error.h"
#include "proto/proto.h"

#include <stdio.h>
#include <string.h>

int
tw_chan_ev_is(const char *ev, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(ev, name, len) == 0;
}

static int
s_ev_up(const char *ev, size_t len)
{
    return tw_chan_ev_is(ev, len, "open") || tw_chan_ev_is(ev, len, "msg") ||
           tw_chan_ev_is(ev, len, "req") || tw_chan_ev_is(ev, len, "close");
}

const char *
tw_chan_up_refusal(const tw_task_t *t, uint64_t wid, const char *ev,
                   size_t evlen, size_t dlen, int has_cr,
                   long long max_payload)
{
    if (!s_ev_up(ev, evlen)) {
        return "unknown event";
    }
    if (!t || t->state != TW_ST_RUNNING || t->worker != wid) {
        return "task not running on this worker";
    }
    if (dlen > (uint64_t)max_payload) {
        return "payload over --max-payload";
    }
    if (tw_chan_ev_is(ev, evlen, "req") && !has_cr) {
        return "request without cr";
    }
    return NULL;
}

int
tw_chan_down_check(const tw_task_t *t, uint64_t id, uint64_t client,
                   int worker_known, const char *ev, size_t evlen,
                   int has_cr, size_t dlen, long long max_payload,
                   char *msg, size_t mlen)
{
    int resp = tw_chan_ev_is(ev, evlen, "resp");
    if (!resp && !tw_chan_ev_is(ev, evlen, "closereq")) {
        snprintf(msg, mlen, "unknown channel event '%.*s' for task %llu "
                 "(a client sends resp or closereq)",
                 (int)(evlen > 32 ? 32 : evlen), ev,
                 (unsigned long long)id);
        return TW_EINVAL;
    }
    if (resp && !has_cr) {
        snprintf(msg, mlen, "resp for task %llu has no cr",
                 (unsigned long long)id);
        return TW_EINVAL;
    }
    if (!t) {
        snprintf(msg, mlen, "no task %llu", (unsigned long long)id);
        return TW_ENOENT;
    }
    if (t->client != client) {
        snprintf(msg, mlen, "task %llu was submitted by another client",
                 (unsigned long long)id);
        return TW_EPERM;
    }
    if (dlen > (uint64_t)max_payload) {
        snprintf(msg, mlen, "channel data for task %llu is %zu bytes; the "
                 "limit is %lld", (unsigned long long)id, dlen, max_payload);
        return TW_E2BIG;
    }
    if (t->state != TW_ST_RUNNING || t->cancel_requested || !worker_known) {
        snprintf(msg, mlen, "task %llu is not running: channel item "
                 "dropped", (unsigned long long)id);
        return TW_ESTATE;
    }
    return 0;
}

