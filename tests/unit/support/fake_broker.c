/*  tests/unit/support/fake_broker.c - a fake broker and a real worker
 *  (see fake_broker.h).
 *
 *  The fixture's sockets and loop are torn down in the order the worker
 *  needs: the worker first (it closes its DEALER and watcher on the loop),
 *  then the loop, then the ROUTER and the context, whose linger is 0 so
 *  zmq_ctx_term never waits for a peer that is gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/support/fake_broker.h"
#include "common/error.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static tw_fb_t *s_current; /* for the exit callback */

tw_fb_t *
tw_fb_new(void)
{
    tw_fb_t *fb = calloc(1, sizeof *fb);
    assert_non_null(fb);
    s_current = fb;
    assert_int_equal(uv_loop_init(&fb->loop), 0);
    tw_handlers_init(&fb->reg);
    fb->ctx = zmq_ctx_new();
    fb->router = zmq_socket(fb->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fb->router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(fb->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fb->ep;
    zmq_getsockopt(fb->router, ZMQ_LAST_ENDPOINT, fb->ep, &len);
    return fb;
}

void
tw_fb_second(tw_fb_t *fb)
{
    fb->router2 = zmq_socket(fb->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fb->router2, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(fb->router2, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fb->ep2;
    zmq_getsockopt(fb->router2, ZMQ_LAST_ENDPOINT, fb->ep2, &len);
}

void
tw_fb_destroy(tw_fb_t **fb_p)
{
    tw_fb_t *fb = *fb_p;
    if (!fb) {
        return;
    }
    tw_fb_release(fb);
    if (fb->w && !fb->exited) {
        tw_worker_abort(fb->w);
    }
    uint64_t end = tw_now_ms() + 3000;
    while (fb->w && !fb->exited && tw_now_ms() < end) {
        uv_run(&fb->loop, UV_RUN_NOWAIT);
    }
    assert_true(!fb->w || fb->exited);
    uv_run(&fb->loop, UV_RUN_DEFAULT);
    tw_worker_destroy(&fb->w);
    assert_int_equal(uv_loop_close(&fb->loop), 0);
    tw_handlers_free(&fb->reg);
    zmq_close(fb->router);
    if (fb->router2) {
        zmq_close(fb->router2);
    }
    zmq_ctx_term(fb->ctx);
    if (s_current == fb) {
        s_current = NULL;
    }
    free(fb);
    *fb_p = NULL;
}

int
tw_fb_setup(void **state)
{
    tw_fb_t *fb = tw_fb_new();
    assert_int_equal(tw_handlers_add_builtin(&fb->reg), 0);
    *state = fb;
    return 0;
}

int
tw_fb_teardown(void **state)
{
    tw_fb_destroy((tw_fb_t **)state);
    return 0;
}

void
tw_fb_on_exit(tw_worker_t *w, int code, int stuck)
{
    (void)w;
    s_current->exited = 1;
    s_current->exit_code = code;
    s_current->stuck = stuck;
}

void
tw_fb_start_worker_at(tw_fb_t *fb, const char *brokers, const char *name,
                      unsigned slots)
{
    char err[256];
    tw_worker_opts_t o = {brokers, name, slots, NULL, 0, 0};
    assert_int_equal(tw_worker_new(&fb->w, &fb->loop, &fb->reg, &o, err,
                                   sizeof err),
                     0);
    assert_int_equal(tw_worker_start(fb->w, tw_fb_on_exit, err, sizeof err),
                     0);
}

void
tw_fb_start_worker(tw_fb_t *fb, const char *name, unsigned slots,
                   const char *tags, uint64_t drain_ms)
{
    char err[256];
    tw_worker_opts_t o = {fb->ep, name, slots, tags, drain_ms, 0};
    assert_int_equal(tw_worker_new(&fb->w, &fb->loop, &fb->reg, &o, err,
                                   sizeof err),
                     0);
    assert_int_equal(tw_worker_start(fb->w, tw_fb_on_exit, err, sizeof err),
                     0);
}

void
tw_fb_release(tw_fb_t *fb)
{
    fb->cur = 0;
    tw_msg_release(&fb->m);
    tw_zframes_close(&fb->in);
}

int
tw_fb_recv(tw_fb_t *fb, int ms)
{
    tw_fb_release(fb);
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    do {
        uv_run(&fb->loop, UV_RUN_NOWAIT);
        zmq_pollitem_t pi[2] = {{fb->router, 0, ZMQ_POLLIN, 0},
                                {fb->router2, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(pi, fb->router2 ? 2 : 1, 1) > 0) {
            fb->from = (pi[0].revents & ZMQ_POLLIN) ? 0 : 2;
            void *r = fb->from ? fb->router2 : fb->router;
            assert_int_equal(tw_zrecv_frames(r, &fb->in, 0), 0);
            assert_int_equal(fb->in.n, 3);
            fb->ilen = zmq_msg_size(&fb->in.f[0]);
            memcpy(fb->ident, zmq_msg_data(&fb->in.f[0]), fb->ilen);
            assert_int_equal(tw_msg_decode(&fb->m, zmq_msg_data(&fb->in.f[1]),
                                           zmq_msg_size(&fb->in.f[1]),
                                           zmq_msg_data(&fb->in.f[2]),
                                           zmq_msg_size(&fb->in.f[2])),
                             0);
            fb->at = tw_now_ms();
            if (fb->skip_heartbeats && fb->m.cmd == TW_CMD_HEARTBEAT) {
                tw_fb_release(fb);
                continue;
            }
            return fb->m.cmd;
        }
    } while (tw_now_ms() < end);
    return 0;
}

void
tw_fb_spin(tw_fb_t *fb, int ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    while (tw_now_ms() < end) {
        uv_run(&fb->loop, UV_RUN_NOWAIT);
        zmq_poll(NULL, 0, 1);
    }
}

/* 1 once fb's worker has exited, or has started `tasks` tasks. */
static int
s_reached(tw_fb_t *fb, int exited, uint64_t tasks)
{
    if (exited) {
        return fb->exited;
    }
    tw_worker_stats_t st;
    tw_worker_stats(fb->w, &st);
    return st.tasks >= tasks;
}

/* Turn the loop until s_reached; fail the test after `ms`. */
static void
s_spin_until(tw_fb_t *fb, int exited, uint64_t tasks, int ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    while (!s_reached(fb, exited, tasks)) {
        if (tw_now_ms() >= end) {
            fail_msg("waited %d ms for the worker to %s", ms,
                     exited ? "exit" : "start its tasks");
        }
        uv_run(&fb->loop, UV_RUN_NOWAIT);
        zmq_poll(NULL, 0, 1);
    }
}

void
tw_fb_wait_tasks(tw_fb_t *fb, uint64_t n, int ms)
{
    s_spin_until(fb, 0, n, ms);
}

void
tw_fb_wait_exit(tw_fb_t *fb, int ms)
{
    s_spin_until(fb, 1, 0, ms);
}

void
tw_fb_enc_items(tw_enc_t *e, size_t n)
{
    tw_enc_init(e);
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, n);
}

void
tw_fb_send(tw_fb_t *fb, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[3];
    zmq_msg_init_size(&f[0], fb->ilen);
    memcpy(zmq_msg_data(&f[0]), fb->ident, fb->ilen);
    tw_enc_frames(e, cmd, &f[1]);
    assert_int_equal(tw_zsend_frames(fb->from ? fb->router2 : fb->router, f,
                                     3, 0),
                     0);
    tw_enc_free(e);
}

void
tw_fb_send_welcome(tw_fb_t *fb, uint64_t hb)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, 7);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, hb);
    tw_fb_send(fb, &e, TW_CMD_WELCOME);
}

void
tw_fb_send_error(tw_fb_t *fb, int code, const char *msg)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, code);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, msg ? msg : tw_strerror(code));
    tw_fb_send(fb, &e, TW_CMD_ERROR);
}

void
tw_fb_handshake(tw_fb_t *fb, unsigned slots, uint64_t hb)
{
    int cmd = tw_fb_recv(fb, TW_FB_PATIENCE_MS);
    assert_int_equal(cmd, TW_CMD_HELLO);
    while (cmd == TW_CMD_HELLO) {
        tw_fb_send_welcome(fb, hb);
        cmd = tw_fb_recv(fb, TW_FB_PATIENCE_MS);
    }
    assert_int_equal(cmd, TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&fb->m, TW_F_CREDIT, 0), slots);
}

void
tw_fb_expect_bye(tw_fb_t *fb, int exit_code)
{
    assert_int_equal(tw_fb_recv(fb, TW_FB_PATIENCE_MS), TW_CMD_BYE);
    tw_fb_wait_exit(fb, TW_FB_PATIENCE_MS);
    assert_int_equal(fb->exit_code, exit_code);
}
