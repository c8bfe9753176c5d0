/*  tests/unit/test_worker_conn.c - the worker's side of the backend
 *  protocol, against a fake broker.
 *
 *  The test plays the broker with the fixture of
 *  tests/unit/support/fake_broker.h: a ROUTER socket on an ephemeral port,
 *  the worker on a libuv loop in the same thread, tw_fb_recv() turning the
 *  loop and polling the ROUTER in small steps. Each test checks the messages
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
#include "common/util.h"
#include "proto/proto.h"
#include "tests/unit/support/fake_broker.h"
#include "tests/unit/support/suite.h"
#include "worker/handlers.h"
#include "worker/worker.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void
s_start_worker(tw_fb_t *fx, unsigned slots, uint64_t drain_ms)
{
    tw_fb_start_worker(fx, "t1", slots, "zone=a,gpu=no", drain_ms);
}

/* TASKS with `n` items: ids from `id0`, handler `h`, args `a` (`alen`
 * bytes of msgpack), timeout `to` ms (0: none). */
static void
s_send_tasks(tw_fb_t *fx, uint64_t id0, int n, const char *h, const void *a,
             size_t alen, uint64_t to)
{
    tw_enc_t e;
    tw_fb_enc_items(&e, (size_t)n);
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
    tw_fb_send(fx, &e, TW_CMD_TASKS);
}

static void
s_send_cancel(tw_fb_t *fx, uint64_t id)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, id);
    tw_fb_send(fx, &e, TW_CMD_CANCEL);
}

static const char s_nil = (char)0xc0;

/* Tests ------------------------------------------------------------------- */

static void
test_hello_fields(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 3, 1000);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_HELLO);
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
    tw_fb_t *fx = *state;
    char err[256];
    tw_worker_t *w = NULL;
    tw_worker_opts_t o = {fx->ep, NULL, 2, "novalue", 0, 0};
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
    assert_true(tw_worker_start(w, tw_fb_on_exit, err, sizeof err) < 0);
    assert_non_null(strstr(err, "nonsense://x"));
    tw_worker_destroy(&w);
}

static void
test_tasks_batched(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 8, 1000);
    tw_fb_handshake(fx, 8, 1000);
    s_send_tasks(fx, 100, 5, "echo", "\x93\x01\x02\x03", 4, 0);
    /* Five inline tasks: one DONE, five items, five credit. */
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_DONE);
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
        assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_DONE);
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
    tw_fb_t *fx = *state;
    s_start_worker(fx, 2, 1000);
    tw_fb_handshake(fx, 2, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);   /* 30 s */
    s_send_tasks(fx, 2, 1, "sleep", "\x05", 1, 150); /* 5 s, 150 ms */
    assert_int_equal(tw_fb_recv(fx, 100), 0);            /* nothing yet */
    s_send_cancel(fx, 1);
    s_send_cancel(fx, 99); /* not here: ignored */
    /* Two outcomes, in one DONE or two (a slow run may end task 2's
     * 150 ms before the cancel of task 1 is handled): 1 cancelled, and 2
     * timed out, which proves its timeout, not its 5 s sleep, ended it. */
    int st[3] = {-1, -1, -1};
    uint64_t credit = 0;
    while (st[1] < 0 || st[2] < 0) {
        assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_DONE);
        for (size_t i = 0; i < fx->m.nitems; i++) {
            uint64_t id = tw_item_uint(&fx->m.items[i], TW_I_ID, 0);
            assert_true(id == 1 || id == 2);
            assert_int_equal(st[id], -1); /* each reported once */
            st[id] = (int)tw_item_uint(&fx->m.items[i], TW_I_ST, 9);
        }
        credit += tw_msg_uint(&fx->m, TW_F_CREDIT, 0);
    }
    assert_int_equal(st[1], TW_ST_CANCELLED);
    assert_int_equal(st[2], TW_ST_TIMEOUT);
    assert_int_equal(credit, 2);
}

static void
test_heartbeat_and_reconnect(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 1, 1000);
    tw_fb_handshake(fx, 1, 100);
    /* Silent broker: heartbeats every interval... */
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_HEARTBEAT);
    /* ...and after 3 intervals of silence, a new connection and HELLO. */
    int cmd;
    while ((cmd = tw_fb_recv(fx, TW_FB_PATIENCE_MS)) == TW_CMD_HEARTBEAT) {
    }
    assert_int_equal(cmd, TW_CMD_HELLO);
    assert_memory_equal(fx->ident, "w-t1-", 5);
    tw_fb_send_welcome(fx, 1000);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_READY);
}

static void
test_eworker_rehello(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 2, 1000);
    tw_fb_handshake(fx, 2, 1000);
    s_send_tasks(fx, 5, 1, "sleep", "\x1e", 1, 0);
    tw_fb_wait_tasks(fx, 1, TW_FB_PATIENCE_MS);
    tw_fb_send_error(fx, TW_EWORKER, NULL);
    /* A second one while waiting: no storm. */
    tw_fb_send_error(fx, TW_EWORKER, NULL);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_HELLO);
    /* The running task keeps running and is re-announced with its
     * attempt, so the broker adopts it instead of running it twice. */
    assert_int_equal(fx->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ID, 0), 5);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_AT, 0), 1);
    assert_int_equal(tw_fb_recv(fx, 200), 0);
    tw_fb_send_welcome(fx, 1000);
    /* One slot is still busy with it: credit 1, nothing reported yet. */
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 1);
    assert_int_equal(tw_fb_recv(fx, 200), 0);
}

static void
test_drain_timeout(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 1, 100);
    tw_fb_handshake(fx, 1, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);
    tw_fb_wait_tasks(fx, 1, TW_FB_PATIENCE_MS);
    /* The drain's timer counts from the loop's clock: bring it to now,
     * or a stall since the last turn would shorten the wait we see. */
    uv_update_time(&fx->loop);
    uint64_t t = tw_now_ms();
    tw_worker_drain(fx->w);
    /* The task is cut off and left to the broker: only BYE. */
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_BYE);
    assert_true(tw_now_ms() - t >= 90);
    tw_fb_wait_exit(fx, TW_FB_PATIENCE_MS);
    assert_int_equal(fx->exit_code, 0);
}

/* WORKER {op, slots?} from the broker (PROTOCOL.md 5.18). */
static void
s_send_worker_op(tw_fb_t *fx, const char *op, uint64_t slots)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, slots ? 2 : 1);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, op);
    if (slots) {
        tw_enc_key(&e, TW_F_SLOTS);
        tw_enc_uint(&e, slots);
    }
    tw_fb_send(fx, &e, TW_CMD_WORKER);
}

/* Expect WORKER resized {slots, credit}. */
static void
s_expect_resized(tw_fb_t *fx, uint64_t slots, uint64_t credit)
{
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_WORKER);
    size_t len;
    const char *op = tw_msg_str(&fx->m, TW_F_OP, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(op, "resized", 7);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_SLOTS, 0), slots);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 99), credit);
}

/* Collect DONE messages until `n` outcomes arrived; returns the credit
 * they returned in total. */
static uint64_t
s_collect_done(tw_fb_t *fx, size_t n)
{
    size_t got = 0;
    uint64_t credit = 0;
    while (got < n) {
        assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_DONE);
        for (size_t i = 0; i < fx->m.nitems; i++) {
            assert_int_equal(tw_item_uint(&fx->m.items[i], TW_I_ST, 9),
                             TW_ST_OK);
        }
        got += fx->m.nitems;
        credit += tw_msg_uint(&fx->m, TW_F_CREDIT, 0);
    }
    return credit;
}

/* Shrinking under load kills nothing and returns credit only below the
 * new count; growing makes room at once; the new count is what a later
 * HELLO announces. */
static void
test_resize(void **state)
{
    tw_fb_t *fx = *state;
    fx->skip_heartbeats = 1;
    s_start_worker(fx, 2, 1000);
    tw_fb_handshake(fx, 2, 1000);
    static const char tenth[] = "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a";
    static const char fifth[] = "\xcb\x3f\xc9\x99\x99\x99\x99\x99\x9a";
    s_send_tasks(fx, 1, 2, "sleep", fifth, 9, 0); /* 0.2 s each */
    tw_fb_wait_tasks(fx, 2, TW_FB_PATIENCE_MS);
    s_send_worker_op(fx, "resize", 1);
    s_expect_resized(fx, 1, 0); /* both slots busy: nothing free */
    /* Both finish: only the second one brings the worker below 1. */
    assert_int_equal(s_collect_done(fx, 2), 1);

    s_send_worker_op(fx, "resize", 4);
    s_expect_resized(fx, 4, 4);
    s_send_tasks(fx, 10, 4, "sleep", tenth, 9, 0);
    assert_int_equal(s_collect_done(fx, 4), 4); /* four ran at once */

    /* Bad requests are ignored: no answer. */
    s_send_worker_op(fx, "resize", 0);
    s_send_worker_op(fx, "resize", 100000);
    s_send_worker_op(fx, "explode", 0);
    assert_int_equal(tw_fb_recv(fx, 300), 0);

    /* A later registration announces 4 slots. */
    tw_fb_send_error(fx, TW_EWORKER, NULL);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_HELLO);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_SLOTS, 0), 4);
    tw_fb_send_welcome(fx, 1000);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_READY);
    assert_int_equal(tw_msg_uint(&fx->m, TW_F_CREDIT, 0), 4);
}

/* A worker with a 0.2 s task running is told to drain, locally
 * (SIGTERM: tw_worker_drain) or by the broker (WORKER drain, the same
 * drain): the running task finishes (its credit is not returned), a task
 * sent after the drain is not run, BYE, exit 0. */
static void
s_drain_case(tw_fb_t *fx, int by_broker)
{
    s_start_worker(fx, 2, 5000);
    tw_fb_handshake(fx, 2, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\xcb\x3f\xc9\x99\x99\x99\x99\x99\x9a",
                 9, 0); /* 0.2 s */
    tw_fb_wait_tasks(fx, 1, TW_FB_PATIENCE_MS);
    if (by_broker) {
        /* In this order on one connection: the worker drains before it
         * sees the new task. */
        s_send_worker_op(fx, "drain", 0);
    } else {
        tw_worker_drain(fx->w);
    }
    s_send_tasks(fx, 2, 1, "noop", &s_nil, 1, 0);
    assert_int_equal(tw_fb_recv(fx, TW_FB_PATIENCE_MS), TW_CMD_DONE);
    assert_int_equal(fx->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ID, 0), 1);
    assert_int_equal(tw_item_uint(&fx->m.items[0], TW_I_ST, 9), TW_ST_OK);
    assert_null(fx->m.f[TW_F_CREDIT]);
    tw_fb_expect_bye(fx, 0);
    assert_false(fx->stuck);
}

static void
test_drain(void **state)
{
    s_drain_case(*state, 0);
}

static void
test_drain_by_broker(void **state)
{
    s_drain_case(*state, 1);
}

static void
test_abort(void **state)
{
    tw_fb_t *fx = *state;
    s_start_worker(fx, 1, 10000);
    tw_fb_handshake(fx, 1, 1000);
    s_send_tasks(fx, 1, 1, "sleep", "\x1e", 1, 0);
    tw_fb_wait_tasks(fx, 1, TW_FB_PATIENCE_MS);
    tw_worker_drain(fx->w);
    tw_fb_spin(fx, 20); /* a window in which it must not exit */
    assert_false(fx->exited);
    tw_worker_abort(fx->w); /* the second signal */
    tw_fb_expect_bye(fx, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tw_fb_setup, tw_fb_teardown)
        T(test_hello_fields),
        T(test_bad_options),
        T(test_tasks_batched),
        T(test_cancel_and_timeout),
        T(test_heartbeat_and_reconnect),
        T(test_eworker_rehello),
        T(test_drain),
        T(test_drain_timeout),
        T(test_abort),
        T(test_resize),
        T(test_drain_by_broker),
#undef T
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
