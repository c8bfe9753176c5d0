/*  broker/out/status.c - the XPUB publisher (see status.h). */
#include "broker/out/status.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/util.h"
#include "common/zmon.h"

#include <errno.h>
#include <string.h>

/* Distinct subscription prefixes the broker tracks; beyond this a new
 * prefix is not tracked (libzmq still filters for it), so a subscriber
 * cannot grow the broker's memory without bound. */
#define S_MAX_SUBS 4096

static void
s_add(tw_status_t *st, const char *p, size_t len)
{
    uintptr_t at = (uintptr_t)tw_strmap_get(&st->subidx, p, len);
    if (at) {
        st->subref[at - 1]++;
        return;
    }
    if (st->nsubs >= S_MAX_SUBS) {
        if (!st->subs_capped) {
            st->subs_capped = 1;
            tw_warn("status.subscriptions", "more than %d subscription "
                    "prefixes: further ones are not tracked", S_MAX_SUBS);
        }
        return;
    }
    st->subs = tw_realloc(st->subs, (st->nsubs + 1) * sizeof *st->subs);
    st->sublen = tw_realloc(st->sublen, (st->nsubs + 1) * sizeof(size_t));
    st->subref = tw_realloc(st->subref, (st->nsubs + 1) * sizeof(size_t));
    st->subs[st->nsubs] = tw_strndup(p, len);
    st->sublen[st->nsubs] = len;
    st->subref[st->nsubs] = 1;
    tw_strmap_put(&st->subidx, st->subs[st->nsubs], len,
                  (void *)(uintptr_t)(st->nsubs + 1));
    st->nsubs++;
}

static void
s_del(tw_status_t *st, const char *p, size_t len)
{
    uintptr_t at = (uintptr_t)tw_strmap_get(&st->subidx, p, len);
    if (!at || --st->subref[at - 1] > 0) {
        return;
    }
    size_t i = at - 1, last = st->nsubs - 1;
    tw_strmap_del(&st->subidx, st->subs[i], st->sublen[i]);
    tw_free(st->subs[i]);
    if (i != last) {
        st->subs[i] = st->subs[last];
        st->sublen[i] = st->sublen[last];
        st->subref[i] = st->subref[last];
        tw_strmap_put(&st->subidx, st->subs[i], st->sublen[i],
                      (void *)(uintptr_t)(i + 1));
    }
    st->nsubs--;
    st->unsubs++;
}

/* Send [topic][body of `e`] (status messages carry no protocol header)
 * and leave `e` empty; a refusal is counted. */
static void
s_publish(tw_status_t *st, const char *topic, size_t tl, tw_enc_t *e)
{
    zmq_msg_t tmp[2], f[2];
    tw_enc_frames(e, TW_CMD_NONE, tmp);
    zmq_msg_close(&tmp[0]);
    zmq_msg_init_size(&f[0], tl);
    memcpy(zmq_msg_data(&f[0]), topic, tl);
    zmq_msg_init(&f[1]);
    zmq_msg_move(&f[1], &tmp[1]);
    zmq_msg_close(&tmp[1]);
    if (tw_zwatch_send(&st->zw, f, 2) != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        st->dropped++;
    }
}

/* A subscription to "welcome.<token>" (PROTOCOL.md 8.2): answer it at
 * once on that exact topic. libzmq has applied the subscription before
 * handing it to us, and a subscriber's subscriptions arrive in the order
 * it made them, so when the answer reaches it every subscription it made
 * before the token is in effect. The answer is not numbered (tseq 0) and
 * the token is not tracked: nothing else is ever published under it. */
static void
s_welcome(tw_status_t *st, const char *topic, size_t len)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 4);
    tw_enc_cstr(&e, "pseq");
    tw_enc_uint(&e, st->pseq);
    tw_enc_cstr(&e, "welcome");
    tw_enc_str(&e, topic + TW_PROTO_WELCOME_LEN,
               len - TW_PROTO_WELCOME_LEN);
    tw_enc_cstr(&e, "boot");
    tw_enc_uint(&e, st->boot);
    tw_enc_cstr(&e, "tseq");
    tw_enc_uint(&e, 0);
    s_publish(st, topic, len, &e);
    tw_enc_free(&e);
}

/* XPUB delivers each new subscription as "\x01prefix" and each last
 * unsubscription as "\x00prefix". */
static void
s_on_sub(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_status_t *st = zw->data;
    if (msg->n < 1 || zmq_msg_size(&msg->f[0]) < 1) {
        return;
    }
    const char *d = zmq_msg_data(&msg->f[0]);
    size_t len = zmq_msg_size(&msg->f[0]) - 1;
    if (len > TW_PROTO_WELCOME_LEN &&
        memcmp(d + 1, TW_PROTO_WELCOME, TW_PROTO_WELCOME_LEN) == 0) {
        if (d[0] == 1) {
            s_welcome(st, d + 1, len);
        }
        return;
    }
    if (st->guarded && (d[0] == 0 || d[0] == 1)) {
        /* libzmq gives the peer's address with a subscription, not with
         * the unsubscriptions of a connection that closed. */
        const char *addr = zmq_msg_gets(&msg->f[0], "Peer-Address");
        if (addr) {
            tw_subguard_count(&st->guard, addr, strlen(addr),
                              d[0] == 1 ? 1 : -1, uv_now(st->loop));
        }
        if (st->guard.cuts != st->cut_logged) {
            st->cut_logged = st->guard.cuts;
            tw_warn("status.subscriptions",
                    "monitor at %s passed its subscription bound (%zu per "
                    "address, %zu in all): its connections are cut and "
                    "refused for %llu ms",
                    addr ? addr : "?", st->guard.cfg.per_addr,
                    st->guard.cfg.total,
                    (unsigned long long)st->guard.cfg.hold_ms);
        }
    }
    if (d[0] == 1) {
        s_add(st, d + 1, len);
        tw_debug("status.subscribe", "prefix '%.*s'", (int)len, d + 1);
    } else if (d[0] == 0) {
        s_del(st, d + 1, len);
    }
}

/* The XPUB's socket monitor: connections accepted and closed. */
static void
s_on_monitor(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_status_t *st = zw->data;
    tw_zmon_event_t ev;
    if (msg->n < 2 ||
        tw_zmon_parse(zmq_msg_data(&msg->f[0]), zmq_msg_size(&msg->f[0]),
                      zmq_msg_data(&msg->f[1]), zmq_msg_size(&msg->f[1]),
                      &ev) != 0) {
        return;
    }
    if (ev.kind == TW_ZMON_ACCEPTED) {
        tw_subguard_accepted(&st->guard, (int)ev.value, uv_now(st->loop));
    } else if (ev.kind == TW_ZMON_DOWN) {
        tw_subguard_closed(&st->guard, (int)ev.value);
    }
}

static void
s_mzw_closed(tw_zwatch_t *zw)
{
    (void)zw;
}

int
tw_status_guard(tw_status_t *st, void *ctx)
{
    static const tw_subguard_cfg_t cfg = TW_SUBGUARD_DEFAULTS;
    int one = 1;
    zmq_setsockopt(st->zw.sock, ZMQ_XPUB_VERBOSER, &one, sizeof one);
    st->mon = tw_zmon_start(ctx, st->zw.sock);
    if (!st->mon) {
        return -errno;
    }
    int rc = tw_zwatch_init(st->loop, &st->mzw, st->mon);
    if (rc != 0) {
        tw_zmon_stop(st->zw.sock, st->mon);
        st->mon = NULL;
        return rc;
    }
    tw_subguard_init(&st->guard, &cfg);
    st->mzw.data = st;
    st->mzw_open = 1;
    st->guarded = 1;
    /* Read subscriptions as fast as they come, so that the bound is
     * checked before libzmq has read far ahead. */
    st->zw.budget = 4096;
    return tw_zwatch_start(&st->mzw, s_on_monitor, NULL);
}

void
tw_status_unguard(tw_status_t *st, void *sock)
{
    tw_zmon_stop(sock, st->mon);
    st->mon = NULL;
}

int
tw_status_init(uv_loop_t *loop, tw_status_t *st, void *sock)
{
    memset(st, 0, sizeof *st);
    st->loop = loop;
    tw_strmap_init(&st->subidx);
    tw_tseq_init(&st->tseq);
    int rc = tw_zwatch_init(loop, &st->zw, sock);
    if (rc != 0) {
        return rc;
    }
    st->zw.data = st;
    return tw_zwatch_start(&st->zw, s_on_sub, NULL);
}

void
tw_status_close(tw_status_t *st, tw_zwatch_close_cb cb)
{
    for (size_t i = 0; i < st->nsubs; i++) {
        tw_free(st->subs[i]);
    }
    tw_free(st->subs);
    tw_free(st->sublen);
    tw_free(st->subref);
    tw_strmap_free(&st->subidx);
    st->subs = NULL;
    st->sublen = NULL;
    st->subref = NULL;
    st->nsubs = 0;
    tw_tseq_free(&st->tseq);
    if (st->guarded) {
        tw_subguard_free(&st->guard);
        st->guarded = 0;
    }
    if (st->mzw_open) {
        st->mzw_open = 0;
        tw_zwatch_close(&st->mzw, s_mzw_closed);
    }
    tw_zwatch_close(&st->zw, cb);
}

int
tw_status_wants(const tw_status_t *st, const char *topic)
{
    size_t tl = strlen(topic);
    for (size_t i = 0; i < st->nsubs; i++) {
        if (st->sublen[i] <= tl &&
            memcmp(st->subs[i], topic, st->sublen[i]) == 0) {
            return 1;
        }
    }
    return st->tap_wants && st->tap_wants(st->tap_arg, topic, tl);
}

void
tw_status_begin(tw_status_t *st, tw_enc_t *e, size_t nfields)
{
    tw_enc_map(e, nfields + 3);
    tw_enc_cstr(e, "pseq");
    tw_enc_uint(e, st->pseq + 1);
}

void
tw_status_send(tw_status_t *st, const char *topic, tw_enc_t *e)
{
    size_t tl = strlen(topic);
    tw_enc_cstr(e, "tseq");
    tw_enc_uint(e, tw_tseq_next(&st->tseq, topic, tl));
    tw_enc_cstr(e, "ts");
    tw_enc_uint(e, tw_wall_ms());
    if (st->tap) {
        st->tap(st->tap_arg, st->pseq + 1, topic, tl, e->sb.data,
                e->sb.size);
    }
    s_publish(st, topic, tl, e);
    st->pseq++;
}
