/*  tests/unit/test_cron.c - cron expressions: parsing and next times.
 *
 *  A table of expressions, zones and instants with the next firing time
 *  worked out by hand, covering every syntax form, the day-of-month /
 *  day-of-week OR rule, leap years, and the daylight-saving rule of
 *  cron.h in Europe/Berlin, America/New_York and Australia/Sydney: a
 *  fixed time in the skipped hour fires once when the clock jumps, a
 *  fixed time in the repeated hour fires once, wildcard expressions follow
 *  the clock. Then seeded random expressions are checked against a
 *  brute-force reference that walks the instants minute by minute and
 *  applies that rule literally, starting near the 2024 and 2100 changes
 *  of five zones (one with a 30-minute change, one at +05:45). Then every
 *  way to write a bad expression, each refused with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/cron.h"
#include "common/error.h"
#include "common/tz.h"
#include "tests/unit/support/rng.h"

static int64_t
U(int64_t y, int mo, int d, int h, int mi)
{
    return tw_tz_days(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static tw_tz_t *
s_zone(const char *name)
{
    if (strcmp(name, "UTC") == 0) {
        return tw_tz_utc();
    }
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    if (tw_tz_load(NULL, name, &tz, &why) != 0) {
        fail_msg("%s: %s", name, why);
    }
    return tz;
}

typedef struct {
    const char *expr;
    const char *zone;
    int64_t after, next;
} s_case_t;

static void
test_table(void **state)
{
    (void)state;
    const s_case_t cases[] = {
        /* syntax, in UTC */
        {"* * * * *", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 1, 0, 1)},
        {"* * * * *", "UTC", U(2024, 1, 1, 0, 0) + 30, U(2024, 1, 1, 0, 1)},
        {"*/15 * * * *", "UTC", U(2024, 1, 1, 0, 14) + 59,
         U(2024, 1, 1, 0, 15)},
        {"0 0 1 1 *", "UTC", U(2024, 6, 1, 0, 0), U(2025, 1, 1, 0, 0)},
        {"@yearly", "UTC", U(2024, 6, 1, 0, 0), U(2025, 1, 1, 0, 0)},
        {"@annually", "UTC", U(2024, 1, 1, 0, 0), U(2025, 1, 1, 0, 0)},
        {"@monthly", "UTC", U(2024, 1, 31, 0, 0), U(2024, 2, 1, 0, 0)},
        {"@weekly", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 7, 0, 0)},
        {"@daily", "UTC", U(2024, 2, 28, 0, 0), U(2024, 2, 29, 0, 0)},
        {"@midnight", "UTC", U(2024, 12, 31, 0, 0), U(2025, 1, 1, 0, 0)},
        {"@hourly", "UTC", U(2024, 1, 1, 10, 59) + 59, U(2024, 1, 1, 11, 0)},
        {"0 0 29 2 *", "UTC", U(2024, 3, 1, 0, 0), U(2028, 2, 29, 0, 0)},
        {"0 0 29 2 *", "UTC", U(2096, 3, 1, 0, 0), U(2104, 2, 29, 0, 0)},
        {"0 0 31 * *", "UTC", U(2024, 4, 1, 0, 0), U(2024, 5, 31, 0, 0)},
        {"0 12 * * mon-fri", "UTC", U(2024, 3, 29, 12, 0),
         U(2024, 4, 1, 12, 0)},
        {"0 12 * * MON-Fri", "UTC", U(2024, 3, 30, 0, 0),
         U(2024, 4, 1, 12, 0)},
        {"30 2 * * 7", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 7, 2, 30)},
        {"30 2 * * 0", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 7, 2, 30)},
        {"0 0 * * 5-7", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 5, 0, 0)},
        {"0 0 * jan,jul *", "UTC", U(2024, 1, 31, 23, 59),
         U(2024, 7, 1, 0, 0)},
        {"0 0 1 feb-apr/2 *", "UTC", U(2024, 2, 1, 0, 0),
         U(2024, 4, 1, 0, 0)},
        {"0 9-17/4 * * *", "UTC", U(2024, 1, 1, 13, 0), U(2024, 1, 1, 17, 0)},
        {"0 9-17/4 * * *", "UTC", U(2024, 1, 1, 17, 0), U(2024, 1, 2, 9, 0)},
        {"5/20 * * * *", "UTC", U(2024, 1, 1, 0, 45), U(2024, 1, 1, 1, 5)},
        {"1,2,3,58 * * * *", "UTC", U(2024, 1, 1, 0, 3), U(2024, 1, 1, 0, 58)},
        {"  0\t0  * * *  ", "UTC", U(2024, 1, 1, 0, 0), U(2024, 1, 2, 0, 0)},
        {"59 23 31 12 *", "UTC", U(2024, 12, 31, 23, 59),
         U(2025, 12, 31, 23, 59)},
        /* day of month OR day of week when both are restricted */
        {"0 0 1,15 * mon", "UTC", U(2024, 4, 1, 0, 0), U(2024, 4, 8, 0, 0)},
        {"0 0 1,15 * mon", "UTC", U(2024, 4, 9, 0, 0), U(2024, 4, 15, 0, 0)},
        {"0 0 1,15 * mon", "UTC", U(2024, 4, 15, 0, 0), U(2024, 4, 22, 0, 0)},
        {"0 0 1,15 * mon", "UTC", U(2024, 4, 29, 0, 0), U(2024, 5, 1, 0, 0)},
        {"0 0 13 * fri", "UTC", U(2024, 9, 1, 0, 0), U(2024, 9, 6, 0, 0)},
        {"0 0 13 * fri", "UTC", U(2024, 9, 6, 0, 0), U(2024, 9, 13, 0, 0)},
        /* ... and AND when one starts with a star, */
        {"0 0 */10 * mon", "UTC", U(2024, 1, 1, 0, 0), U(2024, 3, 11, 0, 0)},
        {"0 0 * 2 mon", "UTC", U(2024, 2, 26, 0, 0), U(2025, 2, 3, 0, 0)},
        /* ... so a restricted day with a starred weekday is that day */
        {"0 0 30 * *", "UTC", U(2024, 2, 1, 0, 0), U(2024, 3, 30, 0, 0)},
        {"0 0 30 2 mon", "UTC", U(2024, 2, 1, 0, 0), U(2024, 2, 5, 0, 0)},
        /* @every counts from the epoch, in UTC, whatever the zone */
        {"@every 1s", "UTC", 100, 101},
        {"@every 90s", "UTC", 0, 90},
        {"@every 90s", "UTC", 89, 90},
        {"@every 90s", "Europe/Berlin", 90, 180},
        {"@every 90s", "UTC", -1, 0},
        {"@every 1h30m", "America/New_York", 0, 5400},
        {"@every 1d", "UTC", U(2024, 3, 31, 0, 0), U(2024, 4, 1, 0, 0)},
        {"@every 366d", "UTC", 0, 366 * 86400},

        /* Europe/Berlin, 2024-03-31: 02:00-03:00 CET does not exist */
        {"30 2 * * *", "Europe/Berlin", U(2024, 3, 30, 12, 0),
         U(2024, 3, 31, 1, 0)}, /* moved to the jump, 03:00 CEST */
        {"30 2 * * *", "Europe/Berlin", U(2024, 3, 31, 1, 0),
         U(2024, 4, 1, 0, 30)},
        {"0 2 * * *", "Europe/Berlin", U(2024, 3, 30, 12, 0),
         U(2024, 3, 31, 1, 0)},
        {"0,30 2 * * *", "Europe/Berlin", U(2024, 3, 30, 12, 0),
         U(2024, 3, 31, 1, 0)}, /* both skipped times: once */
        {"0,30 2 * * *", "Europe/Berlin", U(2024, 3, 31, 1, 0),
         U(2024, 4, 1, 0, 0)},
        {"0 3 * * *", "Europe/Berlin", U(2024, 3, 30, 12, 0),
         U(2024, 3, 31, 1, 0)},
        {"30 * * * *", "Europe/Berlin", U(2024, 3, 31, 0, 30),
         U(2024, 3, 31, 1, 30)}, /* wildcard: 02:30 just does not fire */
        {"@daily", "Europe/Berlin", U(2024, 3, 30, 23, 0),
         U(2024, 3, 31, 22, 0)},
        /* Europe/Berlin, 2024-10-27: 02:00-03:00 happens twice */
        {"30 2 * * *", "Europe/Berlin", U(2024, 10, 26, 12, 0),
         U(2024, 10, 27, 0, 30)}, /* the first 02:30, CEST */
        {"30 2 * * *", "Europe/Berlin", U(2024, 10, 27, 0, 30),
         U(2024, 10, 28, 1, 30)}, /* not again at 02:30 CET */
        {"30 2 * * *", "Europe/Berlin", U(2024, 10, 27, 1, 0),
         U(2024, 10, 28, 1, 30)},
        {"30 * * * *", "Europe/Berlin", U(2024, 10, 27, 0, 30),
         U(2024, 10, 27, 1, 30)}, /* wildcard: 02:30 CET too */
        {"*/30 2 * * *", "Europe/Berlin", U(2024, 10, 27, 0, 30),
         U(2024, 10, 27, 1, 0)},
        {"@hourly", "Europe/Berlin", U(2024, 10, 27, 0, 0),
         U(2024, 10, 27, 1, 0)},
        /* past the file's table: the POSIX rule (2100-03-28) */
        {"30 2 * * *", "Europe/Berlin", U(2100, 3, 27, 12, 0),
         U(2100, 3, 28, 1, 0)},
        {"30 2 * * *", "Europe/Berlin", U(2100, 10, 30, 12, 0),
         U(2100, 10, 31, 0, 30)},

        /* America/New_York, 2024-03-10: 02:00-03:00 EST does not exist */
        {"30 2 * * *", "America/New_York", U(2024, 3, 10, 0, 0),
         U(2024, 3, 10, 7, 0)},
        {"30 2 * * *", "America/New_York", U(2024, 3, 10, 7, 0),
         U(2024, 3, 11, 6, 30)},
        {"0 * * * *", "America/New_York", U(2024, 3, 10, 6, 0),
         U(2024, 3, 10, 7, 0)},
        {"0 2 * * sun", "America/New_York", U(2024, 3, 9, 0, 0),
         U(2024, 3, 10, 7, 0)},
        /* America/New_York, 2024-11-03: 01:00-02:00 happens twice */
        {"30 1 * * *", "America/New_York", U(2024, 11, 3, 0, 0),
         U(2024, 11, 3, 5, 30)},
        {"30 1 * * *", "America/New_York", U(2024, 11, 3, 5, 30),
         U(2024, 11, 4, 6, 30)},
        {"*/20 1 * * *", "America/New_York", U(2024, 11, 3, 5, 40),
         U(2024, 11, 3, 6, 0)},
        {"*/20 1 * * *", "America/New_York", U(2024, 11, 3, 6, 40),
         U(2024, 11, 4, 6, 0)},
        {"*/30 * * * *", "America/New_York", U(2024, 11, 3, 5, 30),
         U(2024, 11, 3, 6, 0)},

        /* Australia/Sydney (southern): 2024-10-06 02:00-03:00 skipped */
        {"30 2 * * *", "Australia/Sydney", U(2024, 10, 5, 0, 0),
         U(2024, 10, 5, 16, 0)},
        {"30 2 * * *", "Australia/Sydney", U(2024, 10, 5, 16, 0),
         U(2024, 10, 6, 15, 30)},
        /* ... and 2024-04-07 02:00-03:00 repeated */
        {"30 2 * * *", "Australia/Sydney", U(2024, 4, 6, 0, 0),
         U(2024, 4, 6, 15, 30)},
        {"30 2 * * *", "Australia/Sydney", U(2024, 4, 6, 15, 30),
         U(2024, 4, 7, 16, 30)},
        {"@hourly", "Australia/Sydney", U(2024, 4, 6, 15, 0),
         U(2024, 4, 6, 16, 0)},
        {"0 0 1 1 *", "Australia/Sydney", U(2024, 6, 1, 0, 0),
         U(2024, 12, 31, 13, 0)}, /* New Year in summer time, +11 */

        /* Asia/Kathmandu, +05:45 */
        {"0 0 * * *", "Asia/Kathmandu", U(2024, 1, 1, 0, 0),
         U(2024, 1, 1, 18, 15)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const s_case_t *k = &cases[i];
        tw_cron_t c;
        char err[128];
        if (tw_cron_parse(&c, k->expr, err, sizeof err) != 0) {
            fail_msg("\"%s\": %s", k->expr, err);
        }
        tw_tz_t *tz = s_zone(k->zone);
        int64_t next = 0;
        assert_int_equal(tw_cron_next(&c, tz, k->after, &next), 0);
        if (next != k->next) {
            fail_msg("\"%s\" in %s after %lld: %lld, expected %lld (%+lld s)",
                     k->expr, k->zone, (long long)k->after, (long long)next,
                     (long long)k->next, (long long)(next - k->next));
        }
        tw_tz_destroy(&tz);
    }
}

static void
test_flags_and_matches(void **state)
{
    (void)state;
    tw_cron_t c;
    assert_int_equal(tw_cron_parse(&c, "0 3 * * *", NULL, 0), 0);
    assert_int_equal(c.flags, TW_CRON_DOM_STAR | TW_CRON_DOW_STAR);
    assert_int_equal(tw_cron_parse(&c, "*/5 3 1 * mon", NULL, 0), 0);
    assert_int_equal(c.flags, TW_CRON_WILD);
    assert_int_equal(tw_cron_parse(&c, "@hourly", NULL, 0), 0);
    assert_true(c.flags & TW_CRON_WILD);
    assert_int_equal(tw_cron_parse(&c, "@daily", NULL, 0), 0);
    assert_false(c.flags & TW_CRON_WILD);
    assert_int_equal(tw_cron_parse(&c, "* * * * 0,7", NULL, 0), 0);
    assert_int_equal(c.wdays, 1);
    assert_int_equal(tw_cron_parse(&c, "* * * * 0-7", NULL, 0), 0);
    assert_int_equal(c.wdays, 0x7f);
    assert_int_equal(tw_cron_parse(&c, "0-59/30 0-23/12 * * *", NULL, 0), 0);
    assert_int_equal(c.minutes, (1ull << 0) | (1ull << 30));
    assert_int_equal(c.hours, (1u << 0) | (1u << 12));
    assert_int_equal(tw_cron_parse(&c, "15 10 * * tue", NULL, 0), 0);
    assert_true(tw_cron_matches(&c, U(2024, 4, 2, 10, 15))); /* Tuesday */
    assert_true(tw_cron_matches(&c, U(2024, 4, 2, 10, 15) + 59));
    assert_false(tw_cron_matches(&c, U(2024, 4, 3, 10, 15)));
    assert_false(tw_cron_matches(&c, U(2024, 4, 2, 10, 16)));
    assert_int_equal(tw_cron_parse(&c, "@every 5s", NULL, 0), 0);
    assert_int_equal(c.every, 5);
    assert_false(tw_cron_matches(&c, 5));
    /* An unparsed (zeroed) expression is refused, not looped on. */
    tw_cron_t z;
    memset(&z, 0, sizeof z);
    int64_t next;
    tw_tz_t *utc = tw_tz_utc();
    assert_int_equal(tw_cron_next(&z, utc, 0, &next), TW_EINVAL);
    z.flags = TW_CRON_EVERY;
    assert_int_equal(tw_cron_next(&z, utc, 0, &next), TW_EINVAL);
    /* At the edge of time there is no next. */
    assert_int_equal(tw_cron_parse(&c, "* * * * *", NULL, 0), 0);
    assert_int_equal(tw_cron_next(&c, utc, TW_TZ_LIMIT, &next), TW_ENOENT);
    assert_int_equal(tw_cron_next(&c, utc, INT64_MIN, &next), 0);
    tw_tz_destroy(&utc);
}

typedef struct {
    const char *expr;
    const char *why; /* a part of the message */
} s_bad_t;

static void
test_errors(void **state)
{
    (void)state;
    char big[TW_CRON_TEXT_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const s_bad_t bad[] = {
        {"", "expected 5 fields"},
        {"   ", "expected 5 fields"},
        {"* * * *", "found 4"},
        {"* * * * * *", "found more than 5"},
        {"60 * * * *", "minute: 60 is out of range 0-59"},
        {"* 24 * * *", "hour: 24 is out of range 0-23"},
        {"* * 0 * *", "day of month: 0 is out of range 1-31"},
        {"* * 32 * *", "day of month: 32"},
        {"* * * 13 *", "month: 13 is out of range 1-12"},
        {"* * * 0 *", "month: 0"},
        {"* * * * 8", "day of week: 8 is out of range 0-7"},
        {"99999999999 * * * *", "out of range"},
        {"*/0 * * * *", "minute: step 0 is out of range"},
        {"*/60 * * * *", "minute: step 60"},
        {"5-1 * * * *", "minute: range 5-1 goes backwards"},
        {"* * * * fri-mon", "range 5-1 goes backwards"},
        {"a * * * *", "minute: names are not allowed"},
        {"* * * foo *", "month: unknown name \"foo\""},
        {"* * * * sux", "day of week: unknown name \"sux\""},
        {"* * * * monday", "unknown name \"monday\""},
        {"1,,2 * * * *", "minute: a value is missing"},
        {"1, * * * *", "minute: a value is missing"},
        {"1- * * * *", "minute: a value is missing"},
        {"*/ * * * *", "minute: a step needs a number"},
        {"*/x * * * *", "minute: a step needs a number"},
        {"1-2-3 * * * *", "minute: unexpected character '-'"},
        {"** * * * *", "minute: unexpected character '*'"},
        {"? * * * *", "minute: unexpected character '?'"},
        {"* * L * *", "names are not allowed"},
        {"* * * * 5#3", "unexpected character '#'"},
        {"* * * jan-dec/0 *", "month: step 0"},
        {"0 0 30 2 *", "never fires"},
        {"0 0 31 4,6,9,11 *", "never fires"},
        {"0 0 30,31 feb *", "never fires"},
        {"@reboot", "@reboot is not supported"},
        {"@fortnightly", "unknown macro \"@fortnightly\""},
        {"@", "unknown macro"},
        {"@daily 5", "@daily takes no fields"},
        {"@every", "@every: the period must be 1s to 366d"},
        {"@every 0s", "@every: the period must be"},
        {"@every 367d", "@every: the period must be"},
        {"@every 99999999999s", "@every: number too long"},
        {"@every 5x", "@every: a duration is numbers with units"},
        {"@every 10", "@every: a duration is numbers with units"},
        {"@every h", "@every: a unit without a number"},
        {"@every 1h x", "@every: trailing characters"},
        {big, "longer than 256 characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tw_cron_t c;
        char err[128] = "";
        int rc = tw_cron_parse(&c, bad[i].expr, err, sizeof err);
        if (rc != TW_EINVAL || !strstr(err, bad[i].why)) {
            fail_msg("\"%s\": rc %d, \"%s\", expected \"%s\"", bad[i].expr,
                     rc, err, bad[i].why);
        }
        /* A refused expression leaves nothing that would fire. */
        assert_int_equal(c.months | c.every, 0);
    }
    /* The message is cut to the buffer, and a NULL buffer is fine. */
    tw_cron_t c;
    char small[8];
    assert_int_equal(tw_cron_parse(&c, "61 * * * *", small, sizeof small),
                     TW_EINVAL);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(tw_cron_parse(&c, "61 * * * *", NULL, 0), TW_EINVAL);
    /* Things that look odd but are fine. */
    static const char *const good[] = {
        "0 0 30 2 mon", "0 0 31 4,5 *", "0 0 29 2 *", "@every 1h30m15s",
        "@every 2d", "0-59 0-23 1-31 1-12 0-7", "*/59 */23 */31 */12 */7",
        "0 0 * * SUN,sat", "0 0 1 JAN-mar *", "@every 1s  "};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char err[128];
        if (tw_cron_parse(&c, good[i], err, sizeof err) != 0) {
            fail_msg("\"%s\": %s", good[i], err);
        }
    }
}

/* ---- the brute-force reference ---- */

/* Walk the instants minute by minute from a day before `after` and
 * apply cron.h's rule literally: a wildcard expression fires whenever the
 * clock shows a matching time; a fixed one when the clock first shows a
 * matching time, or jumps over one. */
static int64_t
s_brute(const tw_cron_t *c, const tw_tz_t *tz, int64_t after, int64_t span)
{
    int wild = (c->flags & TW_CRON_WILD) != 0;
    int64_t start = tw_tz_floordiv(after, 60) * 60 - 86400;
    int64_t maxlocal = INT64_MIN, prev = INT64_MIN;
    for (int64_t u = start; u <= after + span; u += 60) {
        int64_t l = tw_tz_local(tz, u);
        int fire = 0;
        if (wild) {
            fire = tw_cron_matches(c, l);
        } else {
            fire = l > maxlocal && tw_cron_matches(c, l);
            if (prev != INT64_MIN && l - prev > 60) {
                for (int64_t x = prev + 60; x < l && !fire; x += 60) {
                    fire = x > maxlocal && tw_cron_matches(c, x);
                }
            }
        }
        if (l > maxlocal) {
            maxlocal = l;
        }
        prev = l;
        if (fire && u > after) {
            return u;
        }
    }
    return INT64_MAX;
}

/* A random field: star, star with step, value, range, range with step,
 * or a list, within [lo, hi]. */
static void
s_rand_field(char *out, size_t cap, int lo, int hi, int dense)
{
    int span = hi - lo + 1;
    int a = lo + (int)(tw_test_rand() % (uint64_t)span);
    int b = a + (int)(tw_test_rand() % (uint64_t)(hi - a + 1));
    int k = 1 + (int)(tw_test_rand() % 7);
    switch (tw_test_rand() % (dense ? 7 : 9)) {
    case 0:
    case 1:
    case 2:
        snprintf(out, cap, "*");
        break;
    case 3:
        snprintf(out, cap, "*/%d", k);
        break;
    case 4:
        snprintf(out, cap, "%d-%d", a, b);
        break;
    case 5:
        snprintf(out, cap, "%d-%d/%d", a, b, k);
        break;
    case 6:
        snprintf(out, cap, "%d,%d", a, b);
        break;
    default:
        snprintf(out, cap, "%d", a);
        break;
    }
}

static void
s_random_vs_brute(const char *zone, const int64_t *near, size_t nnear,
                  int rounds)
{
    tw_tz_t *tz = s_zone(zone);
    const int64_t span = 3 * 86400;
    for (int r = 0; r < rounds; r++) {
        char f[5][32], expr[200];
        s_rand_field(f[0], sizeof f[0], 0, 59, 0);
        s_rand_field(f[1], sizeof f[1], 0, 23, 0);
        s_rand_field(f[2], sizeof f[2], 1, 31, 1);
        snprintf(f[3], sizeof f[3], "*");
        s_rand_field(f[4], sizeof f[4], 0, 7, 1);
        snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3],
                 f[4]);
        tw_cron_t c;
        if (tw_cron_parse(&c, expr, NULL, 0) != 0) {
            continue;
        }
        int64_t after = near[tw_test_rand() % nnear] +
                        (int64_t)(tw_test_rand() % (3 * 86400)) - 2 * 86400;
        int64_t want = s_brute(&c, tz, after, span), got = 0;
        int rc = tw_cron_next(&c, tz, after, &got);
        if (want == INT64_MAX) {
            assert_true(rc == TW_ENOENT || got > after + span);
            continue;
        }
        if (rc != 0 || got != want) {
            fail_msg("\"%s\" in %s after %lld: %lld, brute force %lld", expr,
                     zone, (long long)after, (long long)got,
                     (long long)want);
        }
    }
    tw_tz_destroy(&tz);
}

static void
test_random_vs_brute(void **state)
{
    (void)state;
    const int64_t berlin[] = {U(2024, 3, 31, 1, 0), U(2024, 10, 27, 1, 0),
                              U(2100, 3, 28, 1, 0), U(2100, 10, 31, 1, 0)};
    const int64_t ny[] = {U(2024, 3, 10, 7, 0), U(2024, 11, 3, 6, 0),
                          U(2101, 3, 13, 7, 0), U(2101, 11, 6, 6, 0)};
    const int64_t sydney[] = {U(2024, 4, 6, 16, 0), U(2024, 10, 5, 16, 0)};
    /* Lord Howe moves its clock by 30 minutes. */
    const int64_t lord_howe[] = {U(2024, 4, 6, 15, 0),
                                 U(2024, 10, 5, 15, 30)};
    const int64_t plain[] = {U(2024, 1, 1, 0, 0), U(2024, 7, 1, 0, 0)};
    s_random_vs_brute("Europe/Berlin", berlin, 4, 150);
    s_random_vs_brute("America/New_York", ny, 4, 150);
    s_random_vs_brute("Australia/Sydney", sydney, 2, 100);
    s_random_vs_brute("Australia/Lord_Howe", lord_howe, 2, 100);
    s_random_vs_brute("Asia/Kathmandu", plain, 2, 50);
}

/* Firing again and again from each firing walks a whole DST year without
 * repeating or going backwards, and fixed times fire once a day. */
static void
test_walk_a_year(void **state)
{
    (void)state;
    static const char *const zones[] = {"Europe/Berlin", "America/New_York",
                                        "Australia/Sydney"};
    for (size_t z = 0; z < 3; z++) {
        tw_tz_t *tz = s_zone(zones[z]);
        tw_cron_t c;
        assert_int_equal(tw_cron_parse(&c, "30 2 * * *", NULL, 0), 0);
        int64_t t = U(2024, 1, 1, 0, 0), end = U(2025, 1, 1, 0, 0), n;
        int fires = 0;
        for (;;) {
            assert_int_equal(tw_cron_next(&c, tz, t, &n), 0);
            assert_true(n > t);
            if (n >= end) {
                break;
            }
            t = n;
            fires++;
        }
        /* One a local day: 366 in 2024 in each zone, the day the clock
         * skips 02:30 and the day it shows it twice included. */
        assert_int_equal(fires, 366);
        assert_int_equal(tw_cron_parse(&c, "@hourly", NULL, 0), 0);
        t = U(2024, 1, 1, 0, 0);
        fires = 0;
        for (;;) {
            assert_int_equal(tw_cron_next(&c, tz, t, &n), 0);
            if (n >= end) {
                break;
            }
            /* These zones' offsets are whole hours: every elapsed hour
             * fires, whatever the clock did. */
            assert_int_equal(n - t, 3600);
            t = n;
            fires++;
        }
        assert_int_equal(fires, 366 * 24 - 1);
        tw_tz_destroy(&tz);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_flags_and_matches),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_vs_brute),
        cmocka_unit_test(test_walk_a_year),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
