/*  tests/unit/test_worker_pair.c - a worker given the two brokers of a
 *  pair (proto/PROTOCOL.md 17.8), against a fake broker with two ROUTERs
 *  (tests/unit/support/fake_broker.h, tw_fb_second) that play the active
 *  and the passive.
 *
 *  - A passive tried first refuses the HELLO with ENOTACTIVE naming the
 *    active: the worker says HELLO there, with the epoch it learnt and no
 *    vote, and registers.
 *  - The active falls silent: the worker says HELLO to the other broker
 *    with the vote (`lost`: the lost broker's epoch) and the tasks it
 *    still runs, asks again while the passive says the active is silent,
 *    registers once it took over; losing that one, it votes with the new
 *    epoch.
 *  - A deposed active's WELCOME (an epoch below one already seen) is not
 *    acted on: no READY goes to it, the worker leaves for the other one.
 *  - A broker list that cannot be one is refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "tests/unit/support/fake_broker.h"
#include "tests/unit/support/pair.h"
#include "tests/unit/support/suite.h"
#include "worker/handlers.h"

#include <stdio.h>
#include <string.h>

#define S_WAIT 3000

static int
s_setup(void **state)
{
    int rc = tw_fb_setup(state);
    tw_fb_second(*state);
    return rc;
}

/* Start the worker on "<first>,<second>" (0: the first ROUTER, 2: the
 * second). */
static void
s_start(tw_fb_t *fb, int first)
{
    char list[300];
    snprintf(list, sizeof list, "%s,%s", first ? fb->ep2 : fb->ep,
             first ? fb->ep : fb->ep2);
    tw_fb_start_worker_at(fb, list, "w", 2);
    fb->skip_heartbeats = 1;
}

/* Expect `cmd` at router `at` (0 or 2). */
static void
s_expect(tw_fb_t *fb, tw_cmd_t cmd, int at)
{
    int got = tw_fb_recv(fb, S_WAIT);
    if (got != (int)cmd || fb->from != at) {
        fail_msg("expected %s at router %d, got %s at router %d",
                 tw_proto_cmd_name(cmd), at, tw_proto_cmd_name(got),
                 fb->from);
    }
}

static int64_t
s_key(const tw_fb_t *fb, tw_field_t f)
{
    return fb->m.f[f] ? (int64_t)tw_msg_uint(&fb->m, f, 0) : -1;
}

static void
s_welcome(tw_fb_t *fb, uint64_t hb, uint64_t ha)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, 7);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, hb);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, ha);
    tw_fb_send(fb, &e, TW_CMD_WELCOME);
}

static void
s_not_active(tw_fb_t *fb, uint64_t ha, const char *active, int live)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_pair_enc_not_active(&e, ha, active, live);
    tw_fb_send(fb, &e, TW_CMD_ERROR);
}

/* Expect HELLO at router `at`, WELCOME it under epoch `ha` with
 * heartbeat `hb`, expect READY there. */
static void
s_register(tw_fb_t *fb, int at, uint64_t hb, uint64_t ha)
{
    s_expect(fb, TW_CMD_HELLO, at);
    s_welcome(fb, hb, ha);
    s_expect(fb, TW_CMD_READY, at);
}

/* Expect `cmd` at router `at`, passing over what comes to the other one:
 * on a slow machine the worker may give the first broker up before the
 * test answers, try the other, and come back. Returns how many messages
 * were passed over. */
static int
s_expect_at(tw_fb_t *fb, tw_cmd_t cmd, int at)
{
    uint64_t end = tw_now_ms() + 4 * S_WAIT;
    int skipped = 0;
    while (tw_now_ms() < end) {
        int got = tw_fb_recv(fb, 100);
        if (got == (int)cmd && fb->from == at) {
            return skipped;
        }
        skipped += got != 0;
    }
    fail_msg("no %s at router %d", tw_proto_cmd_name(cmd), at);
    return skipped;
}

static void
test_refusal_names_the_active(void **state)
{
    tw_fb_t *fb = *state;
    s_start(fb, 2);
    /* (Unless the machine was so slow that the worker gave this broker
     * up once already: it then votes, having lost it.) */
    int slow = s_expect_at(fb, TW_CMD_HELLO, 2) > 0;
    assert_int_equal(s_key(fb, TW_F_HA), -1);
    if (!slow) {
        assert_int_equal(s_key(fb, TW_F_LOST), -1);
    }
    s_not_active(fb, 3, fb->ep, 1);
    s_expect_at(fb, TW_CMD_HELLO, 0);
    /* The refusal sent it here knowing epoch 3, not as one that lost a
     * broker; unless the machine was so slow that the worker gave router
     * 2 up before the refusal reached it (then it says it lost it, and
     * knows no epoch). */
    if (s_key(fb, TW_F_LOST) == -1) {
        assert_int_equal(s_key(fb, TW_F_HA), 3);
    } else {
        assert_true(slow || s_key(fb, TW_F_HA) == -1);
    }
    s_welcome(fb, 1000, 3);
    s_expect(fb, TW_CMD_READY, 0);
    assert_int_equal(tw_msg_uint(&fb->m, TW_F_CREDIT, 0), 2);
}

static void
test_failover_votes(void **state)
{
    tw_fb_t *fb = *state;
    s_start(fb, 0);
    s_register(fb, 0, 100, 3);
    /* A task runs when the active falls silent. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_fb_enc_items(&e, 1);
    tw_enc_map(&e, 4);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 41);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "sleep");
    tw_enc_ikey(&e, TW_I_A);
    tw_enc_bin(&e, "\x05", 1); /* 5 s */
    tw_enc_ikey(&e, TW_I_EP);
    tw_enc_uint(&e, 900);
    tw_fb_send(fb, &e, TW_CMD_TASKS);
    /* Nothing more from it: after 3 heartbeats the worker goes to the
     * backup, voting, and re-announces the task. */
    s_expect(fb, TW_CMD_HELLO, 2);
    assert_int_equal(s_key(fb, TW_F_HA), 3);
    assert_int_equal(s_key(fb, TW_F_LOST), 3);
    assert_int_equal(fb->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fb->m.items[0], TW_I_ID, 0), 41);
    /* Not yet given up: asked again, still voting. */
    s_not_active(fb, 3, fb->ep, 0);
    s_expect(fb, TW_CMD_HELLO, 2);
    assert_int_equal(s_key(fb, TW_F_LOST), 3);
    /* Taken over. */
    s_welcome(fb, 100, 4);
    s_expect(fb, TW_CMD_READY, 2);
    /* This one falls silent in turn: the vote names epoch 4 now. */
    s_expect(fb, TW_CMD_HELLO, 0);
    assert_int_equal(s_key(fb, TW_F_HA), 4);
    assert_int_equal(s_key(fb, TW_F_LOST), 4);
}

static void
test_deposed_active_ignored(void **state)
{
    tw_fb_t *fb = *state;
    s_start(fb, 0);
    s_register(fb, 0, 100, 5);
    /* Silence: on to the other, which answers under an older epoch. */
    s_expect(fb, TW_CMD_HELLO, 2);
    assert_int_equal(s_key(fb, TW_F_HA), 5);
    s_welcome(fb, 100, 3);
    /* No READY to it: the worker is back at the first one. */
    s_expect(fb, TW_CMD_HELLO, 0);
    assert_int_equal(s_key(fb, TW_F_HA), 5);
    s_welcome(fb, 100, 6);
    s_expect(fb, TW_CMD_READY, 0);
}

static void
test_bad_lists(void **state)
{
    tw_fb_t *fb = *state;
    char err[256];
    tw_worker_t *w = NULL;
    tw_worker_opts_t o = {"tcp://127.0.0.1:1,,tcp://127.0.0.1:2", "w", 1,
                          NULL, 0, 0};
    assert_int_equal(tw_worker_new(&w, &fb->loop, &fb->reg, &o, err,
                                   sizeof err),
                     TW_EINVAL);
    assert_null(w);
    assert_non_null(strstr(err, "endpoint 2 is empty"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusal_names_the_active,
                                        s_setup, tw_fb_teardown),
        cmocka_unit_test_setup_teardown(test_failover_votes, s_setup,
                                        tw_fb_teardown),
        cmocka_unit_test_setup_teardown(test_deposed_active_ignored,
                                        s_setup, tw_fb_teardown),
        cmocka_unit_test_setup_teardown(test_bad_lists, s_setup,
                                        tw_fb_teardown),
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
