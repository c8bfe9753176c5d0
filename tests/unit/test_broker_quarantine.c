/*  tests/unit/test_broker_quarantine.c - peers that keep sending garbage
 *  (broker/state/quarantine.h).
 *
 *  Time is numbers passed in. The suite checks that `bound` strikes in one
 *  window, and not one fewer, put a peer in quarantine, and that the call
 *  reports it once; that strikes spread over windows never add up; that a
 *  hold ends on time and the peer is answered again; that peers are
 *  counted apart; that the table stays within max_peers and collects what
 *  expired. Every case runs under the counting allocator: gc and free give
 *  back every block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/state/quarantine.h"
#include "tests/unit/support/count_alloc.h"

static const tw_quarantine_cfg_t s_cfg = {5, 1000, 3000, 4};

static int
s_strike(tw_quarantine_t *q, const char *id, uint64_t now)
{
    return tw_quarantine_strike(q, id, strlen(id), now);
}

static int
s_held(const tw_quarantine_t *q, const char *id, uint64_t now)
{
    return tw_quarantine_held(q, id, strlen(id), now);
}

static void
test_bound_in_window(void **state)
{
    (void)state;
    tw_quarantine_t q;
    tw_quarantine_init(&q, &s_cfg);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_strike(&q, "c-bad", 100 + (uint64_t)i), 0);
        assert_false(s_held(&q, "c-bad", 100 + (uint64_t)i));
    }
    assert_int_equal(s_strike(&q, "c-bad", 200), 1);
    assert_true(s_held(&q, "c-bad", 200));
    /* Reported once: more garbage while held changes nothing. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(s_strike(&q, "c-bad", 300), 0);
    }
    assert_int_equal(q.held, 1);
    /* Held for hold_ms, then answered again. */
    assert_true(s_held(&q, "c-bad", 200 + 2999));
    assert_false(s_held(&q, "c-bad", 200 + 3000));
    /* Others are not affected. */
    assert_false(s_held(&q, "c-good", 300));
    tw_quarantine_free(&q);
}

static void
test_windows_do_not_add_up(void **state)
{
    (void)state;
    tw_quarantine_t q;
    tw_quarantine_init(&q, &s_cfg);
    /* Four strikes per window, for ten windows: never held. */
    for (uint64_t w = 0; w < 10; w++) {
        for (int i = 0; i < 4; i++) {
            assert_int_equal(s_strike(&q, "c-slow", w * 1000 + 10), 0);
        }
    }
    assert_false(s_held(&q, "c-slow", 10000));
    assert_int_equal(q.held, 0);
    tw_quarantine_free(&q);
}

static void
test_again_after_hold(void **state)
{
    (void)state;
    tw_quarantine_t q;
    tw_quarantine_init(&q, &s_cfg);
    for (int i = 0; i < 5; i++) {
        s_strike(&q, "w-x", 0);
    }
    assert_true(s_held(&q, "w-x", 1));
    /* The hold ended: a fresh window, bound strikes again to go back. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s_strike(&q, "w-x", 3000), 0);
    }
    assert_int_equal(s_strike(&q, "w-x", 3001), 1);
    assert_int_equal(q.held, 2);
    tw_quarantine_free(&q);
}

static void
test_bounded_and_gc(void **state)
{
    (void)state;
    tw_quarantine_t q;
    tw_quarantine_init(&q, &s_cfg);
    char id[16];
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "c-%d", i);
        s_strike(&q, id, 0);
    }
    assert_int_equal(tw_quarantine_tracked(&q), 4);
    /* Full, nothing expired: a fifth peer is not tracked. */
    assert_int_equal(s_strike(&q, "c-new", 500), 0);
    assert_int_equal(tw_quarantine_tracked(&q), 4);
    /* Windows over: the table makes room. */
    for (int i = 0; i < 5; i++) {
        s_strike(&q, "c-new", 1000);
    }
    assert_true(s_held(&q, "c-new", 1000));
    assert_int_equal(tw_quarantine_tracked(&q), 1);
    /* gc keeps a held peer until its hold is over. */
    tw_quarantine_gc(&q, 2000);
    assert_int_equal(tw_quarantine_tracked(&q), 1);
    tw_quarantine_gc(&q, 4000);
    assert_int_equal(tw_quarantine_tracked(&q), 0);
    assert_false(s_held(&q, "c-new", 4000));
    tw_quarantine_free(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bound_in_window, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_windows_do_not_add_up,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_again_after_hold,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_bounded_and_gc, tw_count_setup,
                                        tw_count_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
