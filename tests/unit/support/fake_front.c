/*  tests/unit/support/fake_front.c - see fake_front.h. */
#include "tests/unit/support/fake_front.h"
#include "common/error.h"
#include "common/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_release(tw_ff_t *ff)
{
    if (ff->have) {
        tw_msg_release(&ff->m);
        zmq_msg_close(&ff->body);
        ff->have = 0;
    }
}

/* Bind `ep` ("...:*" the first time), retrying while the old listener's
 * port is still being released. */
static void
s_bind(tw_ff_t *ff, const char *ep)
{
    ff->router = zmq_socket(ff->ctx, ZMQ_ROUTER);
    assert_non_null(ff->router);
    int zero = 0, one = 1;
    zmq_setsockopt(ff->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(ff->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    uint64_t end = tw_now_ms() + 3000;
    while (zmq_bind(ff->router, ep) != 0) {
        assert_true(zmq_errno() == EADDRINUSE && tw_now_ms() < end);
        usleep(10000);
    }
}

tw_ff_t *
tw_ff_new(void)
{
    tw_ff_t *ff = calloc(1, sizeof *ff);
    assert_non_null(ff);
    ff->ctx = zmq_ctx_new();
    assert_non_null(ff->ctx);
    s_bind(ff, "tcp://127.0.0.1:*");
    size_t len = sizeof ff->ep;
    assert_int_equal(
        zmq_getsockopt(ff->router, ZMQ_LAST_ENDPOINT, ff->ep, &len), 0);
    return ff;
}

void
tw_ff_destroy(tw_ff_t **ff_p)
{
    tw_ff_t *ff = *ff_p;
    if (!ff) {
        return;
    }
    s_release(ff);
    if (ff->router) {
        zmq_close(ff->router);
    }
    zmq_ctx_term(ff->ctx);
    free(ff);
    *ff_p = NULL;
}

void
tw_ff_kill(tw_ff_t *ff)
{
    s_release(ff);
    zmq_close(ff->router);
    ff->router = NULL;
}

void
tw_ff_restart(tw_ff_t *ff)
{
    assert_null(ff->router);
    s_bind(ff, ff->ep);
}

/* Read one message if one is there. Returns 1, or 0 if none. */
static int
s_take(tw_ff_t *ff)
{
    zmq_msg_t id, hdr;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, ff->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return 0;
    }
    s_release(ff);
    zmq_msg_init(&hdr);
    zmq_msg_init(&ff->body);
    assert_true(zmq_msg_more(&id));
    ff->ilen = zmq_msg_size(&id);
    assert_true(ff->ilen < sizeof ff->ident);
    memcpy(ff->ident, zmq_msg_data(&id), ff->ilen);
    assert_true(zmq_msg_recv(&hdr, ff->router, 0) >= 0);
    assert_true(zmq_msg_more(&hdr));
    assert_true(zmq_msg_recv(&ff->body, ff->router, 0) >= 0);
    assert_false(zmq_msg_more(&ff->body));
    assert_int_equal(tw_msg_decode(&ff->m, zmq_msg_data(&hdr),
                                   zmq_msg_size(&hdr),
                                   zmq_msg_data(&ff->body),
                                   zmq_msg_size(&ff->body)),
                     0);
    ff->have = 1;
    zmq_msg_close(&id);
    zmq_msg_close(&hdr);
    return 1;
}

int
tw_ff_recv(tw_ff_t *ff, tw_client_t *c, int timeout_ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)timeout_ms;
    do {
        while (ff->router && s_take(ff)) {
            if (ff->m.cmd != TW_CMD_HEARTBEAT) {
                return 0;
            }
            ff->heartbeats++;
            if (!ff->mute) {
                tw_enc_t e;
                tw_enc_init(&e);
                tw_enc_map(&e, 0);
                tw_ff_send(ff, TW_CMD_HEARTBEAT, &e);
                tw_enc_free(&e);
            }
            if (ff->pings) {
                return 0;
            }
        }
        if (c) {
            tw_client_poll(c, 5);
        } else {
            usleep(5000);
        }
    } while (tw_now_ms() < end);
    return TW_ETIMEDOUT;
}

void
tw_ff_send(tw_ff_t *ff, tw_cmd_t cmd, tw_enc_t *e)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    assert_int_equal(zmq_send(ff->router, ff->ident, ff->ilen, ZMQ_SNDMORE),
                     (int)ff->ilen);
    assert_true(zmq_msg_send(&f[0], ff->router, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_msg_send(&f[1], ff->router, 0) >= 0);
}

void
tw_ff_idle(tw_ff_t *ff, tw_client_t *c, int ms)
{
    int pings = ff->pings;
    ff->pings = 0;
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    for (uint64_t now = tw_now_ms(); now < end; now = tw_now_ms()) {
        /* Anything other than a HEARTBEAT is dropped. */
        tw_ff_recv(ff, c, (int)(end - now));
    }
    ff->pings = pings;
}
