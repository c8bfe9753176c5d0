/*  tests/unit/test_broker_dedup.c - the submission rings (broker/state/dedup.c):
 *  which task each (client, seq) made, and which seqs were refused, so a
 *  second copy of a submission gets the first copy's answer
 *  (proto/PROTOCOL.md 7.8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/state/dedup.h"
#include "common/error.h"

/* A put names the task; a lookup of another seq or client finds none. */
static void
test_put_get(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    tw_dedup_put(&d, 7, 1, 100, 1);
    tw_dedup_put(&d, 7, 2, 101, 2);
    assert_int_equal(tw_dedup_get(&d, 7, 1), 100);
    assert_int_equal(tw_dedup_get(&d, 7, 2), 101);
    assert_int_equal(tw_dedup_get(&d, 7, 3), 0);
    assert_int_equal(tw_dedup_get(&d, 8, 1), 0);
    /* Nothing for client 0 or seq 0: they are not submissions. */
    tw_dedup_put(&d, 0, 5, 1, 1);
    tw_dedup_put(&d, 7, 0, 1, 1);
    assert_int_equal(tw_dedup_get(&d, 0, 5), 0);
    assert_int_equal(tw_dedup_get(&d, 7, 0), 0);
    tw_dedup_destroy(&d);
}

/* A refused seq answers with its error, for the same item only; it names
 * no task; an admission of the same seq (another item: a seq reused)
 * replaces it. */
static void
test_refused(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    uint32_t h = tw_dedup_item_hash("echo", 4, "\x01", 1);
    uint32_t h2 = tw_dedup_item_hash("echo", 4, "\x02", 1);
    assert_int_not_equal(h, h2);
    tw_dedup_refuse(&d, 7, 3, h, TW_EFULL, 1);
    assert_int_equal(tw_dedup_refused(&d, 7, 3, h), TW_EFULL);
    assert_int_equal(tw_dedup_refused(&d, 7, 3, h2), 0);
    assert_int_equal(tw_dedup_refused(&d, 7, 4, h), 0);
    assert_int_equal(tw_dedup_refused(&d, 9, 3, h), 0);
    assert_int_equal(tw_dedup_get(&d, 7, 3), 0);
    tw_dedup_put(&d, 7, 3, 55, 1);
    assert_int_equal(tw_dedup_get(&d, 7, 3), 55);
    assert_int_equal(tw_dedup_refused(&d, 7, 3, h), 0);
    tw_dedup_destroy(&d);
}

/* A slot keeps the newest seq: an older seq that maps to it (a ring of
 * TW_DEDUP_MIN slots) neither evicts it nor is found. */
static void
test_newest_keeps_slot(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    uint64_t hi = 5 + TW_DEDUP_MIN;
    tw_dedup_put(&d, 7, hi, 9, 1);
    tw_dedup_put(&d, 7, 5, 8, 1);
    tw_dedup_refuse(&d, 7, 5, 1u, TW_EFULL, 1);
    assert_int_equal(tw_dedup_get(&d, 7, hi), 9);
    assert_int_equal(tw_dedup_get(&d, 7, 5), 0);
    assert_int_equal(tw_dedup_refused(&d, 7, 5, 1u), 0);
    tw_dedup_destroy(&d);
}

/* The ring grows with the client's outstanding tasks, keeping every
 * entry, refusals included. */
static void
test_grows(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    for (uint64_t s = 1; s <= 4000; s++) {
        if (s % 10 == 0) {
            tw_dedup_refuse(&d, 7, s, (uint32_t)s | 1u, TW_ELIMIT, s);
        } else {
            tw_dedup_put(&d, 7, s, 1000 + s, s);
        }
    }
    for (uint64_t s = 1; s <= 4000; s++) {
        if (s % 10 == 0) {
            assert_int_equal(tw_dedup_refused(&d, 7, s, (uint32_t)s | 1u),
                             TW_ELIMIT);
        } else {
            assert_int_equal(tw_dedup_get(&d, 7, s), 1000 + s);
        }
    }
    tw_dedup_destroy(&d);
}

/* A burst refused whole, then the same burst again (the copy libzmq had
 * queued and the client's resend): the ring grew with the refusals, so
 * every second copy finds its first one's answer. */
static void
test_refused_burst(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    const uint64_t n = 60000;
    for (uint64_t s = 1; s <= n; s++) {
        tw_dedup_refuse(&d, 7, s, (uint32_t)s | 1u, TW_EFULL, s);
    }
    for (uint64_t s = 1; s <= n; s++) {
        assert_int_equal(tw_dedup_refused(&d, 7, s, (uint32_t)s | 1u),
                         TW_EFULL);
    }
    tw_dedup_destroy(&d);
}

static int
s_known(uint64_t cid, void *arg)
{
    (void)arg;
    return cid != 8;
}

/* gc drops the rings of clients that are gone, and only those. */
static void
test_gc(void **state)
{
    (void)state;
    tw_dedup_t d;
    tw_dedup_init(&d);
    tw_dedup_put(&d, 7, 1, 100, 1);
    tw_dedup_put(&d, 8, 1, 200, 1);
    assert_int_equal(tw_dedup_gc(&d, s_known, NULL), 1);
    assert_int_equal(tw_dedup_get(&d, 7, 1), 100);
    assert_int_equal(tw_dedup_get(&d, 8, 1), 0);
    tw_dedup_destroy(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_newest_keeps_slot),
        cmocka_unit_test(test_grows),
        cmocka_unit_test(test_refused_burst),
        cmocka_unit_test(test_gc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
