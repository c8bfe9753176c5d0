/*  tests/unit/test_broker_bucket.c - the token bucket with a fake clock.
 *
 *  Time is a number the test passes in. Checked: the "N/s" and "N/min"
 *  forms and every malformed one; a bucket starts full with a burst of one
 *  period's worth by default; a rate is exact over a minute (1000/s gives
 *  60,000 tokens plus the burst, 7/min gives 7 with the fraction carried);
 *  tw_bucket_wait names the first millisecond a token is there and not one
 *  earlier; days of idleness and a clock that steps back neither overflow
 *  nor mint tokens; changing the rate keeps the tokens held; and a seeded
 *  random run never hands out more than burst + rate x time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/bucket.h"
#include "common/error.h"
#include "tests/unit/support/rng.h"

static void
test_parse(void **state)
{
    (void)state;
    uint64_t rate, per;
    struct {
        const char *s;
        uint64_t rate, per;
    } good[] = {
        {"10/s", 10, 1000},
        {"1/min", 1, 60000},
        {"1000000000/s", TW_BUCKET_MAX, 1000},
        {"0050/min", 50, 60000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(tw_bucket_parse(good[i].s, strlen(good[i].s), &rate,
                                         &per),
                         0);
        assert_int_equal(rate, good[i].rate);
        assert_int_equal(per, good[i].per);
        char buf[32], again[32];
        tw_bucket_format(rate, per, buf, sizeof buf);
        uint64_t r2, p2;
        assert_int_equal(tw_bucket_parse(buf, strlen(buf), &r2, &p2), 0);
        assert_int_equal(r2, rate);
        assert_int_equal(p2, per);
        assert_string_equal(tw_bucket_format(r2, p2, again, sizeof again),
                            buf);
    }
    static const char *const bad[] = {
        "", "/s", "0/s", "10", "10/", "10/h", "10/sec", "-1/s",
        "1000000001/s", "10/s ", " 10/s", "10/S", "10/m", "1e3/s",
        "99999999999999999999999/s", "10//s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tw_bucket_parse(bad[i], strlen(bad[i]), &rate, &per) !=
            TW_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    /* The length bounds the text: "10/s" cut to "10/" is refused. */
    assert_int_equal(tw_bucket_parse("10/s", 3, &rate, &per), TW_EINVAL);
    assert_int_equal(tw_bucket_parse("10/minute", 6, &rate, &per), 0);
    assert_int_equal(per, 60000);
}

static void
test_full_then_steady(void **state)
{
    (void)state;
    tw_bucket_t b;
    assert_int_equal(tw_bucket_init(&b, 1000, 1000, 0, 500), 0);
    assert_int_equal(b.burst, 1000);
    assert_int_equal(tw_bucket_tokens(&b, 500), 1000);
    assert_int_equal(tw_bucket_wait(&b, 500), 0);
    assert_int_equal(tw_bucket_take(&b, 1500, 500), 1000);
    assert_int_equal(tw_bucket_take(&b, 1, 500), 0);
    assert_int_equal(tw_bucket_wait(&b, 500), 1);
    assert_int_equal(tw_bucket_take(&b, 5, 501), 1);
    assert_int_equal(tw_bucket_take(&b, 5, 511), 5);
    assert_int_equal(tw_bucket_tokens(&b, 511), 5);
    /* Full again after a second; never more than the burst. */
    assert_int_equal(tw_bucket_tokens(&b, 2000), 1000);
    assert_int_equal(tw_bucket_tokens(&b, 100000000), 1000);
    /* An explicit burst. */
    assert_int_equal(tw_bucket_init(&b, 50, 1000, 5, 0), 0);
    assert_int_equal(tw_bucket_take(&b, 100, 0), 5);
    assert_int_equal(tw_bucket_wait(&b, 0), 20);
    assert_int_equal(tw_bucket_take(&b, 100, 19), 0);
    assert_int_equal(tw_bucket_take(&b, 100, 20), 1);
    assert_int_equal(tw_bucket_take(&b, 100, 10000), 5);
}

/* A consumer that takes whatever there is, waking exactly when told. */
static uint64_t
s_greedy(tw_bucket_t *b, uint64_t from, uint64_t until)
{
    uint64_t now = from, taken = 0;
    while (now <= until) {
        taken += tw_bucket_take(b, UINT64_MAX, now);
        uint64_t w = tw_bucket_wait(b, now);
        assert_true(w > 0);
        now += w;
    }
    return taken;
}

static void
test_exact_over_a_minute(void **state)
{
    (void)state;
    tw_bucket_t b;
    /* 1000/s: the burst, then exactly one a millisecond. */
    assert_int_equal(tw_bucket_init(&b, 1000, 1000, 0, 0), 0);
    assert_int_equal(s_greedy(&b, 0, 60000), 1000 + 60000);
    /* 1000/s with a burst of 1. */
    assert_int_equal(tw_bucket_init(&b, 1000, 1000, 1, 0), 0);
    assert_int_equal(s_greedy(&b, 0, 60000), 1 + 60000);
    /* 7/min: 60000/7 ms apart, fractions carried, 7 in a minute. */
    assert_int_equal(tw_bucket_init(&b, 7, 60000, 0, 0), 0);
    assert_int_equal(tw_bucket_take(&b, 9, 0), 7);
    assert_int_equal(tw_bucket_wait(&b, 0), 8572); /* ceil(60000 / 7) */
    assert_int_equal(s_greedy(&b, 1, 60000), 7);
    assert_int_equal(s_greedy(&b, 60001, 7 * 60000), 42);
    /* A burst of 1 holds no more than one token: a consumer that comes
     * back late (waits are whole milliseconds) loses what overflowed,
     * so the rate is at most, not exactly, 7/min. */
    assert_int_equal(tw_bucket_init(&b, 7, 60000, 1, 0), 0);
    assert_int_equal(tw_bucket_take(&b, 9, 0), 1);
    assert_int_equal(s_greedy(&b, 1, 60000), 6);
    /* 3/s over an hour: 10,800 after the first three. */
    assert_int_equal(tw_bucket_init(&b, 3, 1000, 0, 0), 0);
    assert_int_equal(s_greedy(&b, 0, 3600000), 3 + 10800);
}

/* tw_bucket_wait is the first millisecond with a token, not later, not
 * earlier; checked on copies from random states. */
static void
test_wait_is_exact(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        tw_bucket_t b;
        uint64_t rate = 1 + tw_test_rand() % (tw_test_rand() % 2 ? 50 : 100000);
        uint64_t per = tw_test_rand() % 2 ? 1000 : 60000;
        uint64_t burst = 1 + tw_test_rand() % 20;
        uint64_t now = tw_test_rand() % 1000000;
        assert_int_equal(tw_bucket_init(&b, rate, per, burst, now), 0);
        tw_bucket_take(&b, tw_test_rand() % (burst + 2), now);
        now += tw_test_rand() % 100;
        uint64_t w = tw_bucket_wait(&b, now);
        tw_bucket_t c = b;
        assert_true(tw_bucket_tokens(&c, now + w) >= 1);
        if (w > 0) {
            c = b;
            assert_int_equal(tw_bucket_tokens(&c, now + w - 1), 0);
        }
    }
}

static void
test_idle_and_clock_back(void **state)
{
    (void)state;
    tw_bucket_t b;
    assert_int_equal(tw_bucket_init(&b, TW_BUCKET_MAX, 60000, TW_BUCKET_MAX,
                                     0), 0);
    assert_int_equal(tw_bucket_take(&b, UINT64_MAX, 0), TW_BUCKET_MAX);
    /* Ages of idleness: capped, no overflow. */
    assert_int_equal(tw_bucket_tokens(&b, UINT64_MAX), TW_BUCKET_MAX);
    assert_int_equal(tw_bucket_take(&b, 10, UINT64_MAX), 10);
    /* Time going back adds nothing and takes nothing away. */
    assert_int_equal(tw_bucket_init(&b, 10, 1000, 0, 100000), 0);
    assert_int_equal(tw_bucket_take(&b, 10, 100000), 10);
    assert_int_equal(tw_bucket_tokens(&b, 5), 0);
    assert_int_equal(tw_bucket_wait(&b, 5), 100);
    assert_int_equal(tw_bucket_tokens(&b, 100100), 1);
}

static void
test_set_give_invalid(void **state)
{
    (void)state;
    tw_bucket_t b;
    assert_int_equal(tw_bucket_init(&b, 10, 1000, 0, 0), 0);
    assert_int_equal(tw_bucket_take(&b, 4, 0), 4); /* 6 left */
    /* 5/min with a burst of 3: 3 are kept. */
    assert_int_equal(tw_bucket_set(&b, 5, 60000, 3, 0), 0);
    assert_int_equal(tw_bucket_tokens(&b, 0), 3);
    assert_int_equal(tw_bucket_take(&b, 3, 0), 3);
    assert_int_equal(tw_bucket_wait(&b, 0), 12000);
    /* Half a token carried over a change of period. */
    assert_int_equal(tw_bucket_tokens(&b, 6000), 0);
    assert_int_equal(tw_bucket_set(&b, 10, 1000, 0, 6000), 0);
    assert_int_equal(tw_bucket_wait(&b, 6000), 50);
    /* Back to a large burst: the tokens held stay what they were. */
    assert_int_equal(tw_bucket_set(&b, 100, 1000, 0, 6000), 0);
    assert_int_equal(tw_bucket_tokens(&b, 6000), 0);
    assert_int_equal(tw_bucket_wait(&b, 6000), 5);
    /* give: never above the burst. */
    tw_bucket_give(&b, 7);
    assert_int_equal(tw_bucket_tokens(&b, 6000), 7);
    tw_bucket_give(&b, 1000);
    assert_int_equal(tw_bucket_tokens(&b, 6000), 100);
    /* Out of range: refused, nothing changed. */
    tw_bucket_t keep = b;
    assert_int_equal(tw_bucket_set(&b, 0, 1000, 0, 7000), TW_EINVAL);
    assert_int_equal(tw_bucket_set(&b, 1, 999, 0, 7000), TW_EINVAL);
    assert_int_equal(tw_bucket_set(&b, TW_BUCKET_MAX + 1, 1000, 0, 7000),
                     TW_EINVAL);
    assert_int_equal(tw_bucket_set(&b, 5, 1000, TW_BUCKET_MAX + 1, 7000),
                     TW_EINVAL);
    assert_memory_equal(&b, &keep, sizeof b);
    assert_int_equal(tw_bucket_init(&b, 0, 1000, 0, 0), TW_EINVAL);
    assert_memory_equal(&b, &keep, sizeof b);
}

/* Whatever the pattern of takes, no window [0, T] sees more than
 * burst + floor(T x rate / period) tokens, and a consumer that takes every
 * millisecond at a rate its burst absorbs gets exactly that. */
static void
test_random_never_exceeds(void **state)
{
    (void)state;
    for (int round = 0; round < 300; round++) {
        uint64_t rate = 1 + tw_test_rand() % 5000;
        uint64_t per = tw_test_rand() % 2 ? 1000 : 60000;
        uint64_t burst = 1 + tw_test_rand() % 100;
        tw_bucket_t b;
        assert_int_equal(tw_bucket_init(&b, rate, per, burst, 0), 0);
        uint64_t now = 0, taken = 0;
        for (int op = 0; op < 500; op++) {
            now += tw_test_rand() % 50;
            taken += tw_bucket_take(&b, tw_test_rand() % 8, now);
            unsigned __int128 limit =
                burst + (unsigned __int128)now * rate / per;
            assert_true(taken <= limit);
        }
        if (rate + per - 1 <= per * burst) {
            /* Taking every millisecond never lets the bucket overflow. */
            assert_int_equal(tw_bucket_init(&b, rate, per, burst, 0), 0);
            taken = 0;
            for (now = 0; now <= 5000; now++) {
                taken += tw_bucket_take(&b, UINT64_MAX, now);
            }
            assert_int_equal(taken, burst + 5000 * rate / per);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_full_then_steady),
        cmocka_unit_test(test_exact_over_a_minute),
        cmocka_unit_test(test_wait_is_exact),
        cmocka_unit_test(test_idle_and_clock_back),
        cmocka_unit_test(test_set_give_invalid),
        cmocka_unit_test(test_random_never_exceeds),
    };
    return cmocka_run_group_tests_name("broker_bucket", tests, NULL, NULL);
}
