/*  tests/unit/test_worker_chan.c - the worker's end of task channels.
 *
 *  A slot table runs test handlers whose calls open channels through a
 *  worker/chan.h table, on a libuv loop that is never run while a case
 *  acts: time is passed to tw_chans_expire by hand (a request's deadline
 *  is the loop's cached now plus its timeout). The cases check what goes
 *  up (the CHAN items, in order: S92), request timeouts (S93), matched
 *  and late responses, close requests (CloseRequestError, S93), the
 *  channel closed and freed when the task ends or is cancelled, the
 *  ABI's error codes, and bad items from the broker, each dropped and
 *  counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/error.h"
#include "proto/proto.h"
#include "tests/unit/support/suite.h"
#include "worker/chan.h"
#include "worker/handlers.h"
#include "worker/slots.h"

typedef struct {
    uv_loop_t loop;
    tw_handlers_t reg;
    tw_slots_t *slots;
    tw_chans_t *ch;
    int outcomes;
    int last_st;
} s_fx_t;

/* What the test handler saw. */
static struct {
    tw_call_t *call;
    int fired;
    int status;
    char reply[16];
    size_t rlen;
    int finish_on_reply;
    int nreq; /* requests to make */
} s_h;

static void
s_reply(void *udata, int status, const void *reply, size_t len)
{
    (void)udata;
    s_h.fired++;
    s_h.status = status;
    s_h.rlen = len < sizeof s_h.reply ? len : sizeof s_h.reply;
    if (reply) {
        memcpy(s_h.reply, reply, s_h.rlen);
    }
    if (s_h.finish_on_reply && status != TW_ECANCELED) {
        tw_call_finish(s_h.call, NULL, 0);
    }
}

/* "talk": open, two messages, s_h.nreq requests with a 100 ms timeout. */
static void
s_talk(tw_call_t *call, void *udata)
{
    (void)udata;
    s_h.call = call;
    assert_int_equal(tw_call_send(call, "\x01", 1), -ENOTCONN);
    assert_int_equal(tw_call_open(call, NULL, 0), 0);
    assert_int_equal(tw_call_open(call, NULL, 0), -EALREADY);
    assert_int_equal(tw_call_send(call, "\x01", 1), 0);
    assert_int_equal(tw_call_send(call, "\x02", 1), 0);
    for (int i = 0; i < s_h.nreq; i++) {
        assert_int_equal(tw_call_request(call, "\xa1?", 2, 100, s_reply,
                                          NULL),
                         0);
    }
}

static void
s_talk_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_call_fail(call, "cancelled");
}

static void
s_outcome(void *udata, const tw_outcome_t *o)
{
    s_fx_t *fx = udata;
    if (o->id) {
        fx->outcomes++;
        fx->last_st = o->st;
    }
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    memset(&s_h, 0, sizeof s_h);
    s_h.nreq = 1;
    uv_loop_init(&fx->loop);
    tw_handlers_init(&fx->reg);
    tw_handler_def_t def = {.name = "talk",
                            .flags = TW_HANDLER_ASYNC,
                            .run = s_talk,
                            .cancel = s_talk_cancel};
    assert_int_equal(tw_handlers_add(&fx->reg, &def), 0);
    fx->slots = tw_slots_new(&fx->loop, &fx->reg, 2, s_outcome, fx);
    fx->ch = tw_chans_new(&fx->loop, NULL, NULL);
    tw_slots_attach_chans(fx->slots, fx->ch);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    tw_slots_orphan_all(fx->slots);
    assert_int_equal(tw_slots_close(fx->slots, NULL, NULL), 0);
    tw_chans_close(fx->ch, NULL, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    tw_handlers_free(&fx->reg);
    free(fx);
    return 0;
}

static void
s_start(s_fx_t *fx, uint64_t id)
{
    assert_int_equal(
        tw_slots_start(fx->slots, id, "talk", 4, "\xc0", 1, 0, 1), 0);
}

/* Take the waiting CHAN items and check their events, in order. */
static void
s_expect_up(s_fx_t *fx, const char *const *evs, size_t n, uint64_t *cr)
{
    zmq_msg_t f[2];
    if (n == 0) {
        assert_int_equal(tw_chans_frames(fx->ch, f), 0);
        return;
    }
    assert_int_equal(tw_chans_frames(fx->ch, f), 1);
    tw_msg_t m;
    assert_int_equal(tw_msg_decode(&m, zmq_msg_data(&f[0]),
                                   zmq_msg_size(&f[0]), zmq_msg_data(&f[1]),
                                   zmq_msg_size(&f[1])),
                     0);
    assert_int_equal(m.cmd, TW_CMD_CHAN);
    assert_int_equal(m.nitems, n);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *ev = tw_item_str(&m.items[i], TW_I_EV, &len);
        assert_int_equal(len, strlen(evs[i]));
        assert_memory_equal(ev, evs[i], len);
        if (cr && strcmp(evs[i], "req") == 0) {
            *cr = tw_item_uint(&m.items[i], TW_I_CR, 0);
        }
    }
    tw_msg_release(&m);
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    assert_int_equal(tw_chans_pending(fx->ch), 0);
}

/* Feed one down item {id, ev, cr?, d?} as the broker would send it. */
static int
s_down(s_fx_t *fx, uint64_t id, const char *ev, uint64_t cr, const char *d)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 2 + (cr != 0) + (d != NULL));
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, id);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, ev);
    if (cr) {
        tw_enc_ikey(&e, TW_I_CR);
        tw_enc_uint(&e, cr);
    }
    if (d) {
        tw_enc_ikey(&e, TW_I_D);
        tw_enc_bin(&e, d, strlen(d));
    }
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_CHAN, hdr);
    tw_msg_t m;
    assert_int_equal(tw_msg_decode(&m, hdr, sizeof hdr, e.sb.data,
                                   e.sb.size),
                     0);
    int rc = tw_chans_on_item(fx->ch, &m.items[0]);
    tw_msg_release(&m);
    tw_enc_free(&e);
    return rc;
}

static const char *const s_opened[] = {"open", "msg", "msg", "req"};

/* Slots added by a resize (tw_slots_grow) carry channels like the first
 * ones: three tasks on a table grown from two slots open three channels. */
static void
test_grown_slots_have_channels(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(tw_slots_grow(fx->slots, 3), 0);
    for (uint64_t id = 21; id <= 23; id++) {
        s_start(fx, id);
    }
    static const char *const three[] = {"open", "msg", "msg", "req",
                                        "open", "msg", "msg", "req",
                                        "open", "msg", "msg", "req"};
    s_expect_up(fx, three, 12, NULL);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.opened, 3);
}

/* S91: the reply comes back to the callback, matched by cr. */
static void
test_round_trip(void **state)
{
    s_fx_t *fx = *state;
    s_h.finish_on_reply = 1;
    s_start(fx, 11);
    uint64_t cr = 0;
    s_expect_up(fx, s_opened, 4, &cr);
    assert_true(cr > 0);
    assert_int_equal(s_down(fx, 11, "resp", cr, "\xa2ok"), 0);
    assert_int_equal(s_h.fired, 1);
    assert_int_equal(s_h.status, 0);
    assert_int_equal(s_h.rlen, 3);
    assert_memory_equal(s_h.reply, "\xa2ok", 3);
    /* The task finished: its channel closed before its DONE. */
    assert_int_equal(fx->outcomes, 1);
    static const char *const closed[] = {"close"};
    s_expect_up(fx, closed, 1, NULL);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.replies, 1);
    assert_int_equal(st.live, 0);
}

/* S93: with time passed in, the request fails exactly at its deadline;
 * a response after that is dropped and counted as late. */
static void
test_request_timeout(void **state)
{
    s_fx_t *fx = *state;
    uint64_t now = uv_now(&fx->loop);
    s_start(fx, 12);
    uint64_t cr = 0;
    s_expect_up(fx, s_opened, 4, &cr);
    assert_int_equal(tw_chans_expire(fx->ch, now + 40), 60);
    assert_int_equal(s_h.fired, 0);
    assert_int_equal(tw_chans_expire(fx->ch, now + 100), -1);
    assert_int_equal(s_h.fired, 1);
    assert_int_equal(s_h.status, TW_ETIMEDOUT);
    /* The task still runs; the late answer finds no request. */
    assert_int_equal(s_down(fx, 12, "resp", cr, "\xc0"), TW_ETIMEDOUT);
    assert_int_equal(s_h.fired, 1);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.live, 1);
}

/* Several requests expire one by one, earliest first. */
static void
test_timeouts_in_order(void **state)
{
    s_fx_t *fx = *state;
    s_h.nreq = 3;
    uint64_t now = uv_now(&fx->loop);
    s_start(fx, 13);
    assert_int_equal(tw_chans_pending(fx->ch), 6);
    assert_int_equal(tw_chans_expire(fx->ch, now + 99), 1);
    assert_int_equal(tw_chans_expire(fx->ch, now + 100), -1);
    assert_int_equal(s_h.fired, 3);
}

/* S93: a close request fails the waiting request and every later one
 * with CloseRequestError; messages are refused too. */
static void
test_closereq(void **state)
{
    s_fx_t *fx = *state;
    s_start(fx, 14);
    s_expect_up(fx, s_opened, 4, NULL);
    assert_int_equal(s_down(fx, 14, "closereq", 0, NULL), 0);
    assert_int_equal(s_h.fired, 1);
    assert_int_equal(s_h.status, TW_ECLOSEREQ);
    assert_int_equal(TW_ECLOSEREQ, TW_CHAN_ECLOSEREQ);
    assert_int_equal(tw_call_request(s_h.call, NULL, 0, 0, s_reply, NULL),
                     TW_ECLOSEREQ);
    assert_int_equal(tw_call_send(s_h.call, NULL, 0), TW_ECLOSEREQ);
    assert_int_equal(s_h.fired, 1);
    /* Closing is still allowed, once. */
    assert_int_equal(tw_call_close(s_h.call), 0);
    assert_int_equal(tw_call_close(s_h.call), -ESHUTDOWN);
    assert_int_equal(tw_call_send(s_h.call, NULL, 0), -ESHUTDOWN);
    static const char *const closed[] = {"close"};
    s_expect_up(fx, closed, 1, NULL);
}

/* The reply callback finishes the call from inside the close request,
 * which ends and frees the channel while its requests are being failed:
 * the worker's "ask" does exactly this (S93). */
static void
test_closereq_finishes_call(void **state)
{
    s_fx_t *fx = *state;
    s_h.nreq = 2;
    s_h.finish_on_reply = 1;
    s_start(fx, 18);
    assert_int_equal(s_down(fx, 18, "closereq", 0, NULL), 0);
    assert_int_equal(s_h.fired, 2); /* the second fires after the finish */
    assert_int_equal(fx->outcomes, 1);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.live, 0);
    assert_int_equal(tw_chans_expire(fx->ch, uv_now(&fx->loop) + 1000), -1);
}

/* A cancelled task's channel closes at once: the waiting request fires
 * TW_ECANCELED, a close goes up, the record is freed, and later items
 * for the task are dropped. */
static void
test_cancel_frees(void **state)
{
    s_fx_t *fx = *state;
    s_start(fx, 15);
    uint64_t cr = 0;
    s_expect_up(fx, s_opened, 4, &cr);
    assert_int_equal(tw_slots_cancel(fx->slots, 15, TW_ST_CANCELLED), 0);
    assert_int_equal(s_h.fired, 1);
    assert_int_equal(s_h.status, TW_ECANCELED);
    static const char *const closed[] = {"close"};
    s_expect_up(fx, closed, 1, NULL);
    assert_int_equal(s_down(fx, 15, "resp", cr, "\xc0"), TW_ENOENT);
    /* The task is over: no new channel for it. */
    assert_int_equal(tw_call_open(s_h.call, NULL, 0), -ESHUTDOWN);
    assert_int_equal(tw_chans_expire(fx->ch, uv_now(&fx->loop) + 1000), -1);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.dropped, 1);
}

/* The broker is lost (or the worker stops): running tasks are orphaned
 * and their channels freed like a cancelled task's, with no outcome. */
static void
test_orphan_frees(void **state)
{
    s_fx_t *fx = *state;
    s_start(fx, 19);
    s_expect_up(fx, s_opened, 4, NULL);
    tw_slots_orphan_all(fx->slots);
    assert_int_equal(s_h.fired, 1);
    assert_int_equal(s_h.status, TW_ECANCELED);
    assert_int_equal(fx->outcomes, 0);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.live, 0);
    /* The close is queued; the worker discards it with the rest of what
     * the lost broker will never get. */
    assert_int_equal(tw_chans_pending(fx->ch), 1);
    tw_chans_discard(fx->ch);
    assert_int_equal(tw_chans_pending(fx->ch), 0);
}

/* Bad payloads and calls outside a task channel's rules. */
static void
test_abi_errors(void **state)
{
    s_fx_t *fx = *state;
    s_h.nreq = 0;
    s_start(fx, 16);
    tw_call_t *call = s_h.call;
    assert_int_equal(tw_call_send(call, "\x92\x01", 2), -EINVAL);
    assert_int_equal(tw_call_send(call, "\x01\x02", 2), -EINVAL);
    assert_int_equal(tw_call_request(call, NULL, 0, 0, NULL, NULL), -EINVAL);
    static char big[TW_CHAN_MAX_PAYLOAD + 1];
    assert_int_equal(tw_call_send(call, big, sizeof big), -E2BIG);
    /* A call of no slot (a station's, say) has no channel. */
    tw_call_t other;
    tw_call_init(&other, &fx->loop, NULL, NULL);
    assert_int_equal(tw_call_open(&other, NULL, 0), -EINVAL);
    tw_call_free(&other);
    tw_call_finish(call, NULL, 0);
    assert_int_equal(fx->outcomes, 1);
}

/* Items from the broker that fit no channel are dropped and counted. */
static void
test_bad_items(void **state)
{
    s_fx_t *fx = *state;
    s_start(fx, 17);
    assert_int_equal(s_down(fx, 17, "shout", 0, NULL), TW_EINVAL);
    assert_int_equal(s_down(fx, 17, "resp", 0, "\xc0"), TW_EINVAL);
    assert_int_equal(s_down(fx, 99, "closereq", 0, NULL), TW_ENOENT);
    assert_int_equal(s_down(fx, 17, "resp", 12345, NULL), TW_ETIMEDOUT);
    tw_chans_stats_t st;
    tw_chans_stats(fx->ch, &st);
    assert_int_equal(st.dropped, 3);
    assert_int_equal(st.late, 1);
    assert_int_equal(s_h.fired, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_in_order, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_closereq, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_closereq_finishes_call, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_frees, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_orphan_frees, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_abi_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_items, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_grown_slots_have_channels,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("worker_chan", tests, tw_suite_setup,
                                       NULL);
}
