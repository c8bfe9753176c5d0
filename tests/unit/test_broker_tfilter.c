/*  tests/unit/test_broker_tfilter.c - task record filters and cursors.
 *
 *  Every filter with good and bad values (each refusal names its
 *  parameter and leaves the filter as it was); state names including
 *  "failed"; durations; limits against the page and bulk maxima; the
 *  cursor: a round trip of change numbers from 0 to 2^64-1, refused when
 *  malformed or sent with other filters (any one of them changed), told
 *  apart when made by another broker run, and indifferent to the limit;
 *  the case-insensitive text match on text and on ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/tfilter.h"
#include "common/error.h"
#include "proto/proto.h"

#define S(x) x, strlen(x)

static void
test_states(void **state)
{
    (void)state;
    assert_int_equal(tw_tfilter_state_bits(S("ok")), 1u << TW_ST_OK);
    assert_int_equal(tw_tfilter_state_bits(S("pending")),
                     1u << TW_ST_PENDING);
    assert_int_equal(tw_tfilter_state_bits(S("failed")),
                     (1u << TW_ST_ERROR) | (1u << TW_ST_TIMEOUT) |
                         (1u << TW_ST_LOST));
    assert_int_equal(tw_tfilter_state_bits(S("unknown")), 0);
    assert_int_equal(tw_tfilter_state_bits(S("OK")), 0);
    assert_int_equal(tw_tfilter_state_bits(S("")), 0);
    tw_tfilter_t f;
    tw_tfilter_init(&f, 50);
    assert_true(tw_tfilter_has_state(&f, TW_ST_RUNNING));
    char why[200];
    assert_int_equal(tw_tfilter_state(&f, S("failed"), why, sizeof why), 0);
    assert_true(tw_tfilter_has_state(&f, TW_ST_LOST));
    assert_false(tw_tfilter_has_state(&f, TW_ST_OK));
    assert_int_equal(tw_tfilter_state(&f, S("done"), why, sizeof why),
                     TW_EINVAL);
    assert_non_null(strstr(why, "state: 'done' is not one of"));
    assert_true(tw_tfilter_has_state(&f, TW_ST_ERROR)); /* unchanged */
}

static void
test_strings_since_limit(void **state)
{
    (void)state;
    tw_tfilter_t f;
    tw_tfilter_init(&f, 50);
    char why[200];
    assert_int_equal(tw_tfilter_string(&f, "handler", S("resize"), why,
                                       sizeof why), 0);
    assert_int_equal(f.handler_len, 6);
    assert_int_equal(tw_tfilter_string(&f, "group", "", 0, why, sizeof why),
                     TW_EINVAL);
    assert_non_null(strstr(why, "group: 0 bytes"));
    char big[200];
    memset(big, 'x', sizeof big);
    assert_int_equal(tw_tfilter_string(&f, "q", big, 129, why, sizeof why),
                     TW_EINVAL);
    assert_non_null(strstr(why, "q: 129 bytes"));
    assert_null(f.text);
    assert_int_equal(tw_tfilter_string(&f, "q", big, 128, why, sizeof why), 0);

    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {{"90", 90000},        {"90s", 90000},    {"15m", 900000},
                {"2h", 7200000},      {"7d", 604800000}, {"1", 1000},
                {"999999999d", 999999999ull * 86400000ull}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(tw_tfilter_since_text(&f, S(good[i].s), why,
                                               sizeof why), 0);
        assert_int_equal(f.since_ms, good[i].ms);
    }
    const char *bad[] = {"", "0", "s", "1w", "1.5h", "-1", "1h2", "1000000000",
                         "1 h", "h1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tw_tfilter_since_text(&f, S(bad[i]), why,
                                               sizeof why), TW_EINVAL);
        assert_non_null(strstr(why, "since:"));
    }
    assert_int_equal(f.since_ms, 999999999ull * 86400000ull); /* kept */

    assert_int_equal(f.limit, 50);
    assert_int_equal(tw_tfilter_limit_text(&f, S("1000"), TW_TFILTER_MAX_PAGE,
                                           why, sizeof why), 0);
    assert_int_equal(f.limit, 1000);
    assert_int_equal(tw_tfilter_limit_text(&f, S("1001"), TW_TFILTER_MAX_PAGE,
                                           why, sizeof why), TW_EINVAL);
    assert_non_null(strstr(why, "limit: 1001 is not 1 to 1000"));
    assert_int_equal(tw_tfilter_limit_text(&f, S("0"), TW_TFILTER_MAX_PAGE,
                                           why, sizeof why), TW_EINVAL);
    assert_int_equal(tw_tfilter_limit_text(&f, S("12a"), TW_TFILTER_MAX_PAGE,
                                           why, sizeof why), TW_EINVAL);
    assert_non_null(strstr(why, "'12a' is not a number"));
    assert_int_equal(tw_tfilter_limit_text(&f, S("99999999999"),
                                           TW_TFILTER_MAX_PAGE, why,
                                           sizeof why), TW_EINVAL);
    assert_int_equal(tw_tfilter_limit(&f, 10000, TW_TFILTER_MAX_BULK, why,
                                      sizeof why), 0);
    assert_int_equal(tw_tfilter_limit(&f, -5, TW_TFILTER_MAX_BULK, why,
                                      sizeof why), TW_EINVAL);
    assert_int_equal(f.limit, 10000);
}

static void
s_filters(tw_tfilter_t *f)
{
    char why[200];
    tw_tfilter_init(f, 50);
    assert_int_equal(tw_tfilter_state(f, S("failed"), why, sizeof why), 0);
    assert_int_equal(tw_tfilter_string(f, "handler", S("resize"), why,
                                       sizeof why), 0);
    assert_int_equal(tw_tfilter_since_text(f, S("2h"), why, sizeof why), 0);
}

static void
test_cursor_round_trip(void **state)
{
    (void)state;
    const uint64_t boot = 0x7f3a9c1e5b20d4e8ull;
    const uint64_t csns[] = {0, 1, 255, 256, 1ull << 32, 0x0123456789abcdefull,
                             UINT64_MAX};
    for (size_t i = 0; i < sizeof csns / sizeof csns[0]; i++) {
        tw_tfilter_t f, g;
        s_filters(&f);
        char c[TW_TFILTER_CURSOR_LEN + 1];
        tw_tfilter_cursor_make(&f, boot, csns[i], c);
        assert_int_equal(strlen(c), TW_TFILTER_CURSOR_LEN);
        assert_memory_equal(c, "t1.", 3);
        for (size_t k = 3; k < TW_TFILTER_CURSOR_LEN; k++) {
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                   "opqrstuvwxyz0123456789-_", c[k]));
        }
        s_filters(&g);
        g.limit = 7; /* the page size may change between pages */
        char why[200];
        assert_int_equal(tw_tfilter_cursor_parse(&g, boot, c, strlen(c), why,
                                                 sizeof why), 0);
        assert_true(g.has_cursor);
        assert_int_equal(g.below, csns[i]);
    }
}

static void
test_cursor_refusals(void **state)
{
    (void)state;
    const uint64_t boot = 42;
    tw_tfilter_t f, g;
    s_filters(&f);
    char c[TW_TFILTER_CURSOR_LEN + 1];
    tw_tfilter_cursor_make(&f, boot, 12345, c);
    char why[200];
    /* Malformed. */
    const char *bad[] = {"", "t1.", "t2.AAAAAAAAAAAAAAAAAAA",
                         "t1.AAAAAAAAAAAAAAAAAA", "t1.AAAAAAAAAAAAAAAAAAAA",
                         "t1.AAAAAAAAAAAAAAAAAA=", "t1.AAAAAAAAAAAAAAAAAA/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_filters(&g);
        assert_int_equal(tw_tfilter_cursor_parse(&g, boot, S(bad[i]), why,
                                                 sizeof why), TW_EINVAL);
        assert_non_null(strstr(why, "not a cursor this broker made"));
        assert_false(g.has_cursor);
    }
    /* Padding bits that are not zero. */
    char odd[TW_TFILTER_CURSOR_LEN + 1];
    memcpy(odd, c, sizeof odd);
    odd[TW_TFILTER_CURSOR_LEN - 1] = odd[TW_TFILTER_CURSOR_LEN - 1] == 'A'
                                         ? 'B' : 'A';
    s_filters(&g);
    assert_int_not_equal(tw_tfilter_cursor_parse(&g, boot, S(odd), why,
                                                 sizeof why), 0);
    /* Any one filter changed: refused. */
    for (int which = 0; which < 6; which++) {
        s_filters(&g);
        switch (which) {
        case 0:
            tw_tfilter_state(&g, S("error"), why, sizeof why);
            break;
        case 1:
            g.handler = NULL;
            break;
        case 2:
            tw_tfilter_string(&g, "group", S("db"), why, sizeof why);
            break;
        case 3:
            tw_tfilter_string(&g, "pool", S("p"), why, sizeof why);
            break;
        case 4:
            tw_tfilter_string(&g, "q", S("x"), why, sizeof why);
            break;
        default:
            tw_tfilter_since_text(&g, S("3h"), why, sizeof why);
        }
        assert_int_equal(tw_tfilter_cursor_parse(&g, boot, S(c), why,
                                                 sizeof why), TW_EINVAL);
        assert_non_null(strstr(why, "made for other filters"));
    }
    /* Another run of the broker. */
    s_filters(&g);
    assert_int_equal(tw_tfilter_cursor_parse(&g, boot + 1, S(c), why,
                                             sizeof why), TW_TFILTER_GONE);
    assert_non_null(strstr(why, "before a broker restart"));
    assert_false(g.has_cursor);
}

static void
test_text_match(void **state)
{
    (void)state;
    tw_tfilter_t f;
    tw_tfilter_init(&f, 50);
    assert_true(tw_tfilter_text_in(&f, S("anything")));
    assert_true(tw_tfilter_text_in_id(&f, 7));
    char why[200];
    tw_tfilter_string(&f, "q", S("Bad SIZE"), why, sizeof why);
    assert_true(tw_tfilter_text_in(&f, S("ValueError: bad size 7")));
    assert_true(tw_tfilter_text_in(&f, S("BAD size")));
    assert_false(tw_tfilter_text_in(&f, S("bad siz")));
    assert_false(tw_tfilter_text_in(&f, S("")));
    tw_tfilter_string(&f, "q", S("42"), why, sizeof why);
    assert_true(tw_tfilter_text_in_id(&f, 42));
    assert_true(tw_tfilter_text_in_id(&f, 1420));
    assert_false(tw_tfilter_text_in_id(&f, 24));
    /* Bytes above ASCII compare exactly. */
    tw_tfilter_string(&f, "q", S("\xc3\xa9"), why, sizeof why);
    assert_true(tw_tfilter_text_in(&f, S("caf\xc3\xa9")));
    assert_false(tw_tfilter_text_in(&f, S("CAF\xc3\x89")));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_strings_since_limit),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_refusals),
        cmocka_unit_test(test_text_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
