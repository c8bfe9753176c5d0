/*  tests/unit/test_worker_conn.c - the worker's side of the backend
 *  protocol, against a fake broker.
 *
 *  The test plays the broker with a ROUTER socket on an ephemeral port and
 *  the worker runs on a libuv loop in the same thread; s_recv() turns the
 *  loop and polls the ROUTER in small steps. Each test checks the messages
 *  the worker sends (HELLO, READY, DONE batching and credit, HEARTBEAT,
 *  BYE) for the broker messages it receives (WELCOME, TASKS, CANCEL,
 *  ERROR, silence), and ends with the worker stopped and the loop closed
 *  without leftover handles.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/zwatch.h"
#include "proto/proto.h"
#include "worker/handlers.h"
#include "worker/worker.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    uv_loop_t loop;
    tw_handlers_t reg;
    tw_worker_t *w;
    int exited, exit_code, stuck;
    void *ctx, *router;
    char ep[128];
    char ident[256];
    size_t ilen;
    tw_zframes_t in; /* the last message received, kept for `m` */
    tw_msg_t m;
} s_fx_t;

static s_fx_t *s_fx; /* for the exit callback */

static void
s_on_exit(tw_worker_t *w, int code, int stuck)
{
    (void)w;
    s_fx->exited = 1;
    s_fx->exit_code = code;
    s_fx->stuck = stuck;
}

static void
s_start_worker(s_fx_t *fx, unsigned slots, uint64_t drain_ms)
{
    char err[256];
    tw_worker_opts_t o = {fx->ep, "t1", slots, "zone=a,gpu=no", drain_ms};
    assert_int_equal(tw_worker_new(&fx->w, &fx->loop, &fx->reg, &o, err,
                                   sizeof err),
                     0);
    assert_int_equal(tw_worker_start(fx->w, s_on_exit, err, sizeof err), 0);
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    tw_handlers_init(&fx->reg);
    assert_int_equal(tw_handlers_add_builtin(&fx->reg), 0);
    fx->ctx = zmq_ctx_new();
    fx->router = zmq_socket(fx->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fx->router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(fx->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fx->ep;
    zmq_getsockopt(fx->router, ZMQ_LAST_ENDPOINT, fx->ep, &len);
    *state = fx;
    return 0;
}

static void
s_release(s_fx_t *fx)
{
    tw_msg_release(&fx->m);
    tw_zframes_close(&fx->in);
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    s_release(fx);
    if (fx->w && !fx->exited) {
        tw_worker_abort(fx->w);
    }
    uint64_t end = tw_now_ms() + 3000;
    while (fx->w && !fx->exited && tw_now_ms() < end) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    assert_true(!fx->w || fx->exited);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    tw_worker_destroy(&fx->w);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    tw_handlers_free(&fx->reg);
    zmq_close(fx->router);
    zmq_ctx_term(fx->ctx);
    free(fx);
    return 0;
}

/* Turn the loop and poll the router until a message arrives (then decode
 * it into fx->m and return its command) or `ms` pass (return 0). */
static int
s_recv(s_fx_t *fx, int ms)
{
    s_release(fx);
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    do {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        zmq_pollitem_t pi = {fx->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 2) == 1) {
            assert_int_equal(tw_zrecv_frames(fx->router, &fx->in, 0), 0);
            assert_int_equal(fx->in.n, 3);
            fx->ilen = zmq_msg_size(&fx->in.f[0]);
            memcpy(fx->ident, zmq_msg_data(&fx->in.f[0]), fx->ilen);
            assert_int_equal(tw_msg_decode(&fx->m, zmq_msg_data(&fx->in.f[1]),
                                           zmq_msg_size(&fx->in.f[1]),
                                           zmq_msg_data(&fx->in.f[2]),
                                           zmq_msg_size(&fx->in.f[2])),
                             0);
            return fx->m.cmd;
        }
    } while (tw_now_ms() < end);
    return 0;
}

/* Turn the loop for `ms` without reading the router. */
static void
s_spin(s_fx_t *fx, int ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)ms;
    while (tw_now_ms() < end) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        zmq_poll(NULL, 0, 1);
    }
}

static void
s_send(s_fx_t *fx, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[3];
    zmq_msg_init_size(&f[0], fx->ilen);
    memcpy(zmq_msg_data(&f[0]), fx->ident, fx->ilen);
    tw_enc_frames(e, cmd, &f[1]);
    assert_int_equal(tw_zsend_frames(fx->router, f, 3, 0), 0);
    tw_enc_free(e);
}

static void
s_send_welcome(s_fx_t *fx, uint64_t hb)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, 7);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, hb);
    s_send(fx, &e, TW_CMD_WELCOME);
}

/* TASKS with `n` items: ids from `id0`, handler `h`, args `a` (`alen`
 * bytes of msgpack), timeout `to` ms (0: none). */
static void
s_send_tasks(s_fx_t *fx, uint64_t id0, int n, const char *h, const void *a,
             size_t alen, uint64_t to)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, (size_t)n);
    for (int i = 0; i < n; i++) {
        tw_enc_map(&e, to ? 5 : 4);
        tw_enc_ikey(&e, TW_I_ID);
        tw_enc_uint(&e, id0 + (uint64_t)i);
        tw_enc_ikey(&e, TW_I_H);
        tw_enc_cstr(&e, h);
        tw_enc_ikey(&e, TW_I_A);
        tw_enc_bin(&e, a, alen);
        tw_enc_ikey(&e, TW_I_AT);
        tw_enc_uint(&e, 1);
        if (to) {
            tw_enc_ikey(&e, TW_I_TO);
            tw_enc_uint(&e, to);
        }
    }
    s_send(fx, &e, TW_CMD_TASKS);
}

static void
s_send_cancel(s_fx_t *fx, uint64_t id)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, id);
    s_send(fx, &e, TW_CMD_CANCEL);
}

static void
s_send_error(s_fx_t *fx, int code)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, code);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, tw_strerror(code));
    s_send(fx, &e, TW_CMD_ERROR);
}

/* Expect HELLO, answer WELCOME, expect READY with all slots. */
static void
s_handshake(s_fx_t *fx, unsigned slots, uint64_t hb)
{
    assert_int_equal(s_recv(fx, 3000), TW_CMD_HELLO);
    s_send_welcome(fx, hb);
    assert_int_equal(s_recv(fx, 3000), TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), slots);
}

static const char s_nil = (char)0xc0;

/* Tests ------------------------------------------------------------------- */

static void
test_hello_fields(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 3, 1000);
    assert_int_equal(s_recv(fx, 3000), TW_CMD_HELLO);
    size_t len;
    const char *name = tw_msg_str(&fx->m, TW_F_NAME, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(name, "t1", 2);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_SLOTS, 0), 3);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_PID, 0), (uint64_t)getpid());
    assert_non_null(fx->m.f[TW_F_VER]);
    assert_non_null(fx->m.f[TW_F_HOST]);
    const msgpack_object *h = fx->m.f[TW_F_HANDLERS];
    assert_int_equal(h->via.array.size, 4);
    assert_int_equal(h->via.array.ptr[0].via.str.size, 4);
    assert_memory_equal(h->via.array.ptr[0].via.str.ptr, "noop", 4);
    const msgpack_object *t = fx->m.f[TW_F_TAGS];
    assert_int_equal(t->via.map.size, 2);
    assert_memory_equal(t->via.map.ptr[0].key.via.str.ptr, "zone", 4);
    assert_memory_equal(t->via.map.ptr[0].val.via.str.ptr, "a", 1);
    /* The routing identity is w-<name>-<8 hex>. */
    assert_int_equal(fx->ilen, strlen("w-t1-") + 8);
    assert_memory_equal(fx->ident, "w-t1-", 5);
    assert_int_equal(strlen(tw_worker_ident(fx->w)), fx->ilen);
    assert_memory_equal(tw_worker_ident(fx->w), fx->ident, fx->ilen);
}

static void
test_bad_options(void **state)
{
    s_fx_t *fx = *state;
    char err[256];
    tw_worker_t *w = NULL;
    tw_worker_opts_t o = {fx->ep, NULL, 2, "novalue", 0};
    assert_int_equal(tw_worker_new(&w, &fx->loop, &fx->reg, &o, err,
                                   sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "novalue"));
    o.tags = "a=1,a=2";
    assert_int_equal(tw_worker_new(&w, &fx->loop, &fx->reg, &o, err,
                                   sizeof err),
                     TW_EINVAL);
    o.tags = "a=1,,b=,";
    assert_int_equal(tw_worker_new(&w, &fx->loop, &fx->reg, &o, err,
                                   sizeof err),
                     0);
    tw_worker_destroy(&w);
    o.tags = NULL;
    o.broker = "nonsense://x";
    assert_int_equal(tw_worker_new(&w, &fx->loop, &fx->reg, &o, err,
                                   sizeof err),
                     0);
    assert_true(tw_worker_start(w, s_on_exit, err, sizeof err) < 0);
    assert_non_null(strstr(err, "nonsense://x"));
    tw_worker_destroy(&w);
}

static void
test_tasks_batched(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 8, 1000);
    s_handshake(fx, 8, 1000);
    s_send_tasks(fx, 100, 5, "echo", "\x93\x01\x02\x03", 4, 0);
    /* Five inline tasks: one DONE, five items, five credit. */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_DONE);
    assert_int_equal(fx->m.nitems, 5);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 5);
    for (size_t i = 0; i < 5; i++) {
        const tw_item_t *it = &fx->m.items[i];
        assert_int_equal(tw_item_uint(it, TW_I_ID, 0), 100 + i);
        assert_int_equal(tw_item_uint(it, TW_I_ST, 9), TW_ST_OK);
        size_t rlen;
        const void *r = tw_item_bin(it, TW_I_R, &rlen);
        assert_int_equal(rlen, 4);
        assert_memory_equal(r, "\x93\x01\x02\x03", 4);
    }
    /* Errors carry err; noop's nil is a BIN holding msgpack nil. */
    s_send_tasks(fx, 200, 1, "fail", "\xa3" "bad", 4, 0);
    s_send_tasks(fx, 300, 1, "noop", &s_nil, 1, 0);
    s_send_tasks(fx, 400, 1, "missing", &s_nil, 1, 0);
    int seen = 0;
    while (seen < 3) {
        assert_int_equal(s_recv(fx, 3000), TW_CMD_DONE);
        for (size_t i = 0; i < fx->m.nitems; i++, seen++) {
            const tw_item_t *it = &fx->m.items[i];
            uint64_t id = tw_item_uint(it, TW_I_ID, 0);
            size_t len;
            if (id == 200 || id == 400) {
                assert_int_equal(tw_item_uint(it, TW_I_ST, 9), TW_ST_ERROR);
                const char *e = tw_item_str(it, TW_I_ERR, &len);
                if (id == 200) {
                    assert_int_equal(len, 3);
                    assert_memory_equal(e, "bad", 3);
                } else {
                    assert_non_null(memmem(e, len, "unknown handler", 15));
                }
            } else {
                assert_int_equal(id, 300);
                const void *r = tw_item_bin(it, TW_I_R, &len);
                assert_int_equal(len, 1);
                assert_memory_equal(r, &s_nil, 1);
            }
        }
    }
}

static void
test_cancel_and_timeout(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 2, 1000);
    s_handshake(fx, 2, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);   /* 30 s */
    s_send_tasks(fx, 2, 1, "sleep", "\x05", 1, 150); /* 5 s, 150 ms */
    assert_int_equal(s_recv(fx, 100), 0);            /* nothing yet */
    s_send_cancel(fx, 1);
    s_send_cancel(fx, 99); /* not here: ignored */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_DONE);
    assert_int_equal(fx->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ID, 0), 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ST, 9),
                     TW_ST_CANCELLED);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 1);
    uint64_t t = tw_now_ms();
    assert_int_equal(s_recv(fx, 3000), TW_CMD_DONE);
    assert_true(tw_now_ms() - t < 1000);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ID, 0), 2);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ST, 9),
                     TW_ST_TIMEOUT);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 1);
}

static void
test_heartbeat_and_reconnect(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 1, 1000);
    s_handshake(fx, 1, 100);
    /* Silent broker: a heartbeat within about one interval... */
    assert_int_equal(s_recv(fx, 500), TW_CMD_HEARTBEAT);
    /* ...and after 3 intervals of silence, a new connection and HELLO. */
    int cmd;
    while ((cmd = s_recv(fx, 2000)) == TW_CMD_HEARTBEAT) {
    }
    assert_int_equal(cmd, TW_CMD_HELLO);
    assert_memory_equal(fx->ident, "w-t1-", 5);
    s_send_welcome(fx, 1000);
    assert_int_equal(s_recv(fx, 3000), TW_CMD_READY);
}

static void
test_eworker_rehello(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 2, 1000);
    s_handshake(fx, 2, 1000);
    s_send_tasks(fx, 5, 1, "sleep", "\x1e", 1, 0);
    s_spin(fx, 50);
    s_send_error(fx, TW_EWORKER);
    s_send_error(fx, TW_EWORKER); /* a second one while waiting: no storm */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_HELLO);
    assert_int_equal(s_recv(fx, 200), 0);
    s_send_welcome(fx, 1000);
    /* The running task was dropped (the broker requeues it), so every
     * slot is free and nothing is reported for task 5. */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 2);
    assert_int_equal(s_recv(fx, 200), 0);
}

static void
test_drain(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 2, 5000);
    s_handshake(fx, 2, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\xcb\x3f\xc9\x99\x99\x99\x99\x99\x9a",
                 9, 0); /* 0.2 s */
    s_spin(fx, 20);
    tw_worker_drain(fx->w);
    /* New tasks are not run while draining. */
    s_send_tasks(fx, 2, 1, "noop", &s_nil, 1, 0);
    assert_int_equal(s_recv(fx, 3000), TW_CMD_DONE);
    assert_int_equal(fx->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ID, 0), 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ST, 9), TW_ST_OK);
    assert_null(fx->m.f[TW_F_CREDIT]);
    assert_int_equal(s_recv(fx, 3000), TW_CMD_BYE);
    s_spin(fx, 50);
    assert_true(fx->exited);
    assert_int_equal(fx->exit_code, 0);
    assert_false(fx->stuck);
}

static void
test_drain_timeout(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 1, 100);
    s_handshake(fx, 1, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);
    s_spin(fx, 20);
    uint64_t t = tw_now_ms();
    tw_worker_drain(fx->w);
    /* The task is cut off and left to the broker: only BYE. */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_BYE);
    assert_true(tw_now_ms() - t >= 90);
    s_spin(fx, 50);
    assert_true(fx->exited);
    assert_int_equal(fx->exit_code, 0);
}

static void
test_abort(void **state)
{
    s_fx_t *fx = *state;
    s_start_worker(fx, 1, 10000);
    s_handshake(fx, 1, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);
    s_spin(fx, 20);
    tw_worker_drain(fx->w);
    s_spin(fx, 20);
    assert_false(fx->exited);
    tw_worker_abort(fx->w); /* the second signal */
    assert_int_equal(s_recv(fx, 3000), TW_CMD_BYE);
    s_spin(fx, 50);
    assert_true(fx->exited);
    assert_int_equal(fx->exit_code, 1);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tw_log_level = TW_LOG_ERR;
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
        T(test_hello_fields),
        T(test_bad_options),
        T(test_tasks_batched),
        T(test_cancel_and_timeout),
        T(test_heartbeat_and_reconnect),
        T(test_eworker_rehello),
        T(test_drain),
        T(test_drain_timeout),
        T(test_abort),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
