/*  tests/unit/test_tz.c - the TZif reader and the zone lookups.
 *
 *  Three kinds of evidence. Fixed tables: the DST changes of 2024 in
 *  Europe/Berlin, America/New_York and Australia/Sydney (southern
 *  hemisphere), with the instants written out, including the local times
 *  a change skips and the ones it repeats. The C library as a reference:
 *  in this test process only, TZ is set and localtime_r is asked about
 *  thousands of seeded random instants from 1901 to 2242 in zones with
 *  odd rules (negative DST, 45-minute offsets, southern summers), and
 *  every answer must agree; the years past 2037 exercise the POSIX rule
 *  at the end of each file. And hostile input: every prefix of a real
 *  file, and hand-built files with one defect each, are refused with a
 *  reason. Every file of the installed database must load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/error.h"
#include "common/tz.h"
#include "tests/unit/support/rng.h"

/* The instant of a UTC date and time. */
static int64_t
U(int64_t y, int mo, int d, int h, int mi)
{
    return tw_tz_days(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static tw_tz_t *
s_load(const char *name)
{
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    int rc = tw_tz_load(NULL, name, &tz, &why);
    if (rc != 0) {
        fail_msg("loading %s: %s (%d)", name, why ? why : "?", rc);
    }
    return tz;
}

static void
test_calendar(void **state)
{
    (void)state;
    assert_int_equal(tw_tz_days(1970, 1, 1), 0);
    assert_int_equal(tw_tz_days(2000, 3, 1), 11017);
    assert_int_equal(tw_tz_days(1969, 12, 31), -1);
    assert_int_equal(U(2024, 3, 31, 1, 0), 1711846800);
    assert_int_equal(U(2024, 11, 3, 6, 0), 1730613600);
    assert_int_equal(tw_tz_weekday(0), 4);                          /* Thu */
    assert_int_equal(tw_tz_weekday(tw_tz_days(2024, 3, 31)), 0);    /* Sun */
    assert_int_equal(tw_tz_weekday(tw_tz_days(1900, 1, 1)), 1);     /* Mon */
    assert_int_equal(tw_tz_month_days(2024, 2), 29);
    assert_int_equal(tw_tz_month_days(2100, 2), 28);
    assert_int_equal(tw_tz_month_days(2000, 2), 29);
    assert_int_equal(tw_tz_month_days(2023, 4), 30);
    assert_int_equal(tw_tz_month_days(2023, 13), 0);
    assert_int_equal(tw_tz_floordiv(-1, 60), -1);
    assert_int_equal(tw_tz_floordiv(-60, 60), -1);
    assert_int_equal(tw_tz_floordiv(59, 60), 0);
    /* Every day for about 5,500 years each side of 1970: civil() inverts
     * days(), dates follow each other, weekdays cycle. */
    int64_t py;
    int pm, pd;
    tw_tz_civil(-2000001, &py, &pm, &pd);
    for (int64_t z = -2000000; z <= 2000000; z++) {
        int64_t y;
        int m, d;
        tw_tz_civil(z, &y, &m, &d);
        if (tw_tz_days(y, m, d) != z) {
            fail_msg("day %lld -> %lld-%d-%d", (long long)z, (long long)y, m,
                     d);
        }
        int next = (d == 1) && (m == 1 ? y == py + 1 && pm == 12 && pd == 31
                                       : y == py && pm == m - 1 &&
                                             pd == tw_tz_month_days(y, pm));
        if (!(next || (y == py && m == pm && d == pd + 1))) {
            fail_msg("day %lld does not follow the one before",
                     (long long)z);
        }
        if (tw_tz_weekday(z) != (int)(((z % 7) + 7 + 4) % 7)) {
            fail_msg("weekday of %lld", (long long)z);
        }
        py = y;
        pm = m;
        pd = d;
    }
}

static void
test_names(void **state)
{
    (void)state;
    static const char *const good[] = {
        "UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires",
        "Etc/GMT+5", "Etc/GMT-14", "America/Port-au-Prince", "EST5EDT",
        "posixrules", "a.b"};
    static const char *const bad[] = {
        "", "/etc/passwd", "../etc/passwd", "Europe/../../etc", "Europe/",
        "Europe//Berlin", ".", "..", "-x", "Europe/Ber lin", "Europe\\x",
        "a/./b", "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(tw_tz_name_ok(good[i], strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tw_tz_name_ok(bad[i], strlen(bad[i]))) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    char longname[TW_TZ_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(tw_tz_name_ok(longname, strlen(longname)));
    assert_true(tw_tz_name_ok(longname, TW_TZ_NAME_MAX));
    assert_false(tw_tz_name_ok("Europe/Berlin", 0));
}

static void
test_load_errors(void **state)
{
    (void)state;
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    assert_int_equal(tw_tz_load(NULL, "No/Such_Zone", &tz, &why), TW_ENOENT);
    assert_string_equal(why, "no such time zone");
    assert_int_equal(tw_tz_load(NULL, "Europe/Berlin/x", &tz, &why),
                     TW_ENOENT);
    assert_int_equal(tw_tz_load(NULL, "../../etc/passwd", &tz, &why),
                     TW_EINVAL);
    assert_string_equal(why, "not a time zone name");
    assert_int_equal(tw_tz_load(NULL, NULL, &tz, &why), TW_EINVAL);
    assert_int_equal(tw_tz_load(NULL, "Europe", &tz, &why), TW_EINVAL);
    assert_string_equal(why, "not a time zone file");
    /* A file that is not TZif. */
    assert_int_equal(tw_tz_load(TW_SOURCE_DIR, "README.md", &tz, &why),
                     TW_EINVAL);
    assert_string_equal(why, "not a TZif file (bad magic)");
    assert_null(tz);
}

typedef struct {
    int64_t t;
    int32_t utoff;
    int isdst;
    const char *abbr;
} s_at_t;

static void
s_check_at(const char *zone, const s_at_t *rows, size_t n)
{
    tw_tz_t *tz = s_load(zone);
    assert_string_equal(tw_tz_name(tz), zone);
    for (size_t i = 0; i < n; i++) {
        tw_tz_info_t in;
        tw_tz_at(tz, rows[i].t, &in);
        if (in.utoff != rows[i].utoff || in.isdst != rows[i].isdst ||
            strcmp(in.abbr, rows[i].abbr) != 0) {
            fail_msg("%s row %zu: %d %d %s", zone, i, in.utoff, in.isdst,
                     in.abbr);
        }
        assert_true(in.since <= rows[i].t && rows[i].t < in.until);
        assert_int_equal(tw_tz_local(tz, rows[i].t),
                         rows[i].t + rows[i].utoff);
    }
    tw_tz_destroy(&tz);
    assert_null(tz);
    tw_tz_destroy(&tz);
}

typedef struct {
    int64_t local;
    int n;
    int64_t u0, u1; /* the instants, or (n == 0) the end of the gap */
} s_res_t;

static void
s_check_resolve(const char *zone, const s_res_t *rows, size_t n)
{
    tw_tz_t *tz = s_load(zone);
    for (size_t i = 0; i < n; i++) {
        int64_t u[2] = {0, 0}, gap = 0;
        int k = tw_tz_resolve(tz, rows[i].local, u, &gap);
        if (k != rows[i].n) {
            fail_msg("%s row %zu: %d instants", zone, i, k);
        }
        if (k == 0) {
            assert_int_equal(gap, rows[i].u0);
        } else {
            assert_int_equal(u[0], rows[i].u0);
        }
        if (k == 2) {
            assert_int_equal(u[1], rows[i].u1);
        }
    }
    tw_tz_destroy(&tz);
}

/* Europe/Berlin, 2024: CEST from 31 March 01:00Z (02:00 CET becomes
 * 03:00 CEST) to 27 October 01:00Z (03:00 CEST becomes 02:00 CET). */
static void
test_berlin(void **state)
{
    (void)state;
    const s_at_t at[] = {
        {U(2024, 3, 31, 0, 59) + 59, 3600, 0, "CET"},
        {1711846800, 7200, 1, "CEST"},
        {U(2024, 10, 27, 0, 59) + 59, 7200, 1, "CEST"},
        {U(2024, 10, 27, 1, 0), 3600, 0, "CET"},
        {U(1970, 1, 1, 0, 0), 3600, 0, "CET"},
        {U(1945, 6, 1, 0, 0), 10800, 1, "CEMT"}, /* double summer time */
        /* past the table (2037): the rule CET-1CEST,M3.5.0,M10.5.0/3 */
        {U(2100, 3, 28, 0, 59), 3600, 0, "CET"},
        {U(2100, 3, 28, 1, 0), 7200, 1, "CEST"},
        {U(2100, 10, 31, 0, 59), 7200, 1, "CEST"},
        {U(2100, 10, 31, 1, 0), 3600, 0, "CET"},
    };
    s_check_at("Europe/Berlin", at, sizeof at / sizeof at[0]);
    const s_res_t res[] = {
        /* 02:30 on 31 March does not exist: the clock jumps at 01:00Z */
        {U(2024, 3, 31, 2, 30), 0, 1711846800, 0},
        {U(2024, 3, 31, 2, 0), 0, 1711846800, 0},
        {U(2024, 3, 31, 1, 59), 1, U(2024, 3, 31, 0, 59), 0},
        {U(2024, 3, 31, 3, 0), 1, U(2024, 3, 31, 1, 0), 0},
        /* 02:30 on 27 October happens twice: CEST then CET */
        {U(2024, 10, 27, 2, 30), 2, U(2024, 10, 27, 0, 30),
         U(2024, 10, 27, 1, 30)},
        {U(2024, 10, 27, 2, 0), 2, U(2024, 10, 27, 0, 0),
         U(2024, 10, 27, 1, 0)},
        {U(2024, 10, 27, 3, 0), 1, U(2024, 10, 27, 2, 0), 0},
        {U(2024, 10, 27, 1, 59), 1, U(2024, 10, 27, 0, 0) - 60, 0},
        {U(2100, 3, 28, 2, 30), 0, U(2100, 3, 28, 1, 0), 0},
    };
    s_check_resolve("Europe/Berlin", res, sizeof res / sizeof res[0]);
}

/* America/New_York, 2024: EDT from 10 March 07:00Z (02:00 EST becomes
 * 03:00 EDT) to 3 November 06:00Z (02:00 EDT becomes 01:00 EST). */
static void
test_new_york(void **state)
{
    (void)state;
    const s_at_t at[] = {
        {1710054000 - 1, -18000, 0, "EST"},
        {1710054000, -14400, 1, "EDT"},
        {1730613600 - 1, -14400, 1, "EDT"},
        {1730613600, -18000, 0, "EST"},
        {U(1883, 11, 18, 0, 0), -17762, 0, "LMT"},
        {U(2050, 7, 1, 0, 0), -14400, 1, "EDT"},
    };
    s_check_at("America/New_York", at, sizeof at / sizeof at[0]);
    const s_res_t res[] = {
        {U(2024, 3, 10, 2, 30), 0, 1710054000, 0},
        {U(2024, 3, 10, 1, 59), 1, U(2024, 3, 10, 6, 59), 0},
        {U(2024, 3, 10, 3, 0), 1, 1710054000, 0},
        {U(2024, 11, 3, 1, 30), 2, 1730611800, 1730615400},
        {U(2024, 11, 3, 1, 0), 2, U(2024, 11, 3, 5, 0),
         U(2024, 11, 3, 6, 0)},
        {U(2024, 11, 3, 2, 0), 1, U(2024, 11, 3, 7, 0), 0},
        {U(2024, 11, 3, 0, 59), 1, U(2024, 11, 3, 4, 59), 0},
    };
    s_check_resolve("America/New_York", res, sizeof res / sizeof res[0]);
}

/* Australia/Sydney, 2024: summer time ends 7 April at 03:00 AEDT
 * (2024-04-06 16:00Z), the clock going back to 02:00 AEST, and starts 6
 * October at 02:00 AEST (2024-10-05 16:00Z), going on to 03:00 AEDT. */
static void
test_sydney(void **state)
{
    (void)state;
    const s_at_t at[] = {
        {U(2024, 1, 15, 0, 0), 39600, 1, "AEDT"},
        {1712419200 - 1, 39600, 1, "AEDT"},
        {1712419200, 36000, 0, "AEST"},
        {1728144000 - 1, 36000, 0, "AEST"},
        {1728144000, 39600, 1, "AEDT"},
        {U(2099, 12, 31, 23, 0), 39600, 1, "AEDT"}, /* summer at new year */
    };
    s_check_at("Australia/Sydney", at, sizeof at / sizeof at[0]);
    const s_res_t res[] = {
        {U(2024, 4, 7, 2, 30), 2, 1712417400, 1712421000},
        {U(2024, 4, 7, 3, 0), 1, U(2024, 4, 6, 17, 0), 0},
        {U(2024, 10, 6, 2, 30), 0, 1728144000, 0},
        {U(2024, 10, 6, 3, 0), 1, 1728144000, 0},
        {U(2024, 10, 6, 1, 59), 1, 1728144000 - 60, 0},
    };
    s_check_resolve("Australia/Sydney", res, sizeof res / sizeof res[0]);
}

/* The C library, told the zone through TZ, as the reference. */
static void
s_vs_libc(const char *zone, int64_t from, int64_t to, int samples)
{
    char env[160];
    snprintf(env, sizeof env, ":%s", zone);
    setenv("TZ", env, 1);
    tzset();
    tw_tz_t *tz = s_load(zone);
    for (int i = 0; i < samples; i++) {
        int64_t t = from + (int64_t)(tw_test_rand() % (uint64_t)(to - from));
        time_t tt = (time_t)t;
        struct tm tm;
        assert_non_null(localtime_r(&tt, &tm));
        tw_tz_info_t in;
        tw_tz_at(tz, t, &in);
        if (in.utoff != tm.tm_gmtoff || in.isdst != (tm.tm_isdst > 0) ||
            strcmp(in.abbr, tm.tm_zone) != 0) {
            fail_msg("%s at %lld: %d %d %s, libc %ld %d %s", zone,
                     (long long)t, in.utoff, in.isdst, in.abbr,
                     tm.tm_gmtoff, tm.tm_isdst, tm.tm_zone);
        }
        /* Local times map back: each instant shows its own local time,
         * and a gap's end is where the clock passed it. */
        int64_t local = t + in.utoff, u[2], gap;
        int n = tw_tz_resolve(tz, local, u, &gap);
        assert_in_range(n, 1, 2);
        assert_true(u[0] == t || (n == 2 && u[1] == t));
        for (int k = 0; k < n; k++) {
            assert_int_equal(tw_tz_local(tz, u[k]), local);
        }
        int64_t probe = local + (int64_t)(tw_test_rand() % 7200) - 3600;
        n = tw_tz_resolve(tz, probe, u, &gap);
        for (int k = 0; k < n; k++) {
            assert_int_equal(tw_tz_local(tz, u[k]), probe);
        }
        if (n == 0) {
            assert_true(tw_tz_local(tz, gap - 1) < probe);
            assert_true(tw_tz_local(tz, gap) > probe);
        }
    }
    tw_tz_destroy(&tz);
    unsetenv("TZ");
    tzset();
}

static void
test_vs_libc(void **state)
{
    (void)state;
    static const char *const zones[] = {
        "Europe/Berlin",    "America/New_York", "Australia/Sydney",
        "Europe/Dublin",    "Asia/Kathmandu",   "Pacific/Chatham",
        "America/Santiago", "Africa/Casablanca", "Antarctica/Troll",
        "Australia/Lord_Howe", "Asia/Tehran",   "America/St_Johns",
        "Pacific/Apia",     "UTC",              "Etc/GMT+5"};
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        s_vs_libc(zones[i], -((int64_t)1 << 31), (int64_t)1 << 33, 3000);
    }
}

typedef struct {
    const char *spec;
    const char *zone; /* the file it must agree with, or NULL */
    int64_t from, to;
} s_posix_case_t;

static void
test_posix(void **state)
{
    (void)state;
    const s_posix_case_t agree[] = {
        {"EST5EDT,M3.2.0,M11.1.0", "America/New_York", U(2007, 1, 1, 0, 0),
         U(2300, 1, 1, 0, 0)},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin", U(1996, 1, 1, 0, 0),
         U(2300, 1, 1, 0, 0)},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney",
         U(2008, 6, 1, 0, 0), U(2300, 1, 1, 0, 0)},
        {"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", "Australia/Lord_Howe",
         U(2008, 6, 1, 0, 0), U(2300, 1, 1, 0, 0)},
    };
    for (size_t i = 0; i < sizeof agree / sizeof agree[0]; i++) {
        tw_tz_t *p = NULL, *z = s_load(agree[i].zone);
        const char *why = NULL;
        assert_int_equal(tw_tz_posix(agree[i].spec, &p, &why), 0);
        assert_string_equal(tw_tz_name(p), agree[i].spec);
        for (int k = 0; k < 5000; k++) {
            int64_t t = agree[i].from +
                        (int64_t)(tw_test_rand() % (uint64_t)(agree[i].to -
                                                        agree[i].from));
            tw_tz_info_t a, b;
            tw_tz_at(p, t, &a);
            tw_tz_at(z, t, &b);
            if (a.utoff != b.utoff || a.isdst != b.isdst ||
                strcmp(a.abbr, b.abbr) != 0) {
                fail_msg("%s at %lld: %d vs %d", agree[i].spec,
                         (long long)t, a.utoff, b.utoff);
            }
        }
        tw_tz_destroy(&p);
        tw_tz_destroy(&z);
    }

    tw_tz_t *tz = NULL;
    tw_tz_info_t in;
    /* A fixed offset with a quoted name. */
    assert_int_equal(tw_tz_posix("<+0545>-5:45", &tz, NULL), 0);
    tw_tz_at(tz, U(2024, 6, 1, 0, 0), &in);
    assert_int_equal(in.utoff, 20700);
    assert_string_equal(in.abbr, "+0545");
    assert_true(in.since == INT64_MIN && in.until == INT64_MAX);
    tw_tz_destroy(&tz);
    /* Daylight time all year: the end (Dec 31, 25:00 DST) meets the
     * next start (Jan 1, 00:00 standard). */
    assert_int_equal(tw_tz_posix("EST5EDT,0/0,J365/25", &tz, NULL), 0);
    for (int y = 2020; y < 2030; y++) {
        for (int64_t t = U(y, 1, 1, 4, 0) - 7200; t < U(y, 1, 1, 6, 0);
             t += 600) {
            tw_tz_at(tz, t, &in);
            assert_int_equal(in.utoff, -14400);
            assert_true(in.isdst);
        }
        tw_tz_at(tz, U(y, 7, 1, 0, 0), &in);
        assert_int_equal(in.utoff, -14400);
    }
    tw_tz_destroy(&tz);
    /* Julian days skip February 29; zero-based days count it. */
    assert_int_equal(tw_tz_posix("AAA3BBB,J60/0,J300/0", &tz, NULL), 0);
    tw_tz_at(tz, U(2024, 3, 1, 3, 0) - 1, &in);
    assert_int_equal(in.utoff, -10800);
    tw_tz_at(tz, U(2024, 3, 1, 3, 0), &in);
    assert_int_equal(in.utoff, -7200);
    assert_string_equal(in.abbr, "BBB");
    tw_tz_destroy(&tz);
    assert_int_equal(tw_tz_posix("AAA3BBB,59/0,300/0", &tz, NULL), 0);
    tw_tz_at(tz, U(2024, 2, 29, 3, 0) - 1, &in);
    assert_int_equal(in.utoff, -10800);
    tw_tz_at(tz, U(2024, 2, 29, 3, 0), &in);
    assert_int_equal(in.utoff, -7200);
    tw_tz_at(tz, U(2023, 3, 1, 3, 0), &in); /* day 59 of 2023 is Mar 1 */
    assert_int_equal(in.utoff, -7200);
    tw_tz_at(tz, U(2023, 3, 1, 3, 0) - 1, &in);
    assert_int_equal(in.utoff, -10800);
    tw_tz_destroy(&tz);
    /* A negative rule time: 23:00 the evening before. */
    assert_int_equal(tw_tz_posix("AAA3BBB,M3.2.0/-1,M11.1.0", &tz, NULL),
                     0);
    tw_tz_at(tz, U(2024, 3, 10, 2, 0), &in); /* Sat 23:00 standard */
    assert_int_equal(in.utoff, -7200);
    tw_tz_at(tz, U(2024, 3, 10, 2, 0) - 1, &in);
    assert_int_equal(in.utoff, -10800);
    tw_tz_destroy(&tz);

    static const char *const bad[] = {
        "", "E5", "EST", "EST5EDT", "EST5EDT,M13.1.0,M11.1.0",
        "EST5EDT,M3.6.0,M11.1.0", "EST5EDT,M3.2.7,M11.1.0", "EST25",
        "<AB>5", "EST5EDT,M3.2.0", "EST5EDT,M3.2.0,M11.1.0x",
        "EST5EDT,J0,J365", "EST5EDT,366,1", "EST5EDT,M3.2.0/168,M11.1.0",
        "EST5:60", "EST5EDT6,M3.2.0,M11.1.0,", "<+05", "EST5EDT,M0.1.0,M1.1.0",
        "ESTABCDEFGHIJKLMNOP5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        tz = NULL;
        if (tw_tz_posix(bad[i], &tz, &why) != TW_EINVAL || !why || tz) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

static void
test_utc_and_offsets(void **state)
{
    (void)state;
    tw_tz_t *tz = tw_tz_utc();
    assert_string_equal(tw_tz_name(tz), "UTC");
    tw_tz_info_t in;
    tw_tz_at(tz, 0, &in);
    assert_int_equal(in.utoff, 0);
    assert_string_equal(in.abbr, "UTC");
    int64_t u[2];
    assert_int_equal(tw_tz_resolve(tz, 12345, u, NULL), 1);
    assert_int_equal(u[0], 12345);
    /* Clamped far out, and still answers. */
    tw_tz_at(tz, INT64_MAX, &in);
    assert_int_equal(tw_tz_local(tz, INT64_MIN), -TW_TZ_LIMIT);
    tw_tz_destroy(&tz);

    tz = s_load("Europe/Berlin");
    int32_t lo, hi;
    tw_tz_offsets(tz, U(2024, 1, 1, 0, 0), U(2024, 12, 31, 0, 0), &lo, &hi);
    assert_int_equal(lo, 3600);
    assert_int_equal(hi, 7200);
    tw_tz_offsets(tz, U(2024, 1, 1, 0, 0), U(2024, 2, 1, 0, 0), &lo, &hi);
    assert_int_equal(lo, 3600);
    assert_int_equal(hi, 3600);
    tw_tz_offsets(tz, U(2124, 1, 1, 0, 0), U(2124, 12, 31, 0, 0), &lo, &hi);
    assert_int_equal(lo, 3600);
    assert_int_equal(hi, 7200);
    /* Far beyond any table, the rule still turns and the loops end. */
    tw_tz_offsets(tz, TW_TZ_LIMIT - 400 * 86400, INT64_MAX, &lo, &hi);
    assert_int_equal(lo, 3600);
    assert_int_equal(hi, 7200);
    assert_in_range(tw_tz_resolve(tz, INT64_MAX, u, NULL), 0, 2);
    assert_in_range(tw_tz_resolve(tz, INT64_MIN, u, NULL), 0, 2);
    tw_tz_destroy(&tz);
}

static void
test_rfc3339(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"2024-03-31T01:00:00Z", 1711846800000},
        {"2024-03-31T03:00:00+02:00", 1711846800000},
        {"2024-03-30t20:00:00-05:00", 1711846800000},
        {"2024-03-31 01:00:00z", 1711846800000},
        {"2024-03-31T01:00:00.25Z", 1711846800250},
        {"2024-03-31T01:00:00.123456789Z", 1711846800123},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59.999Z", -1},
        {"2016-12-31T23:59:60Z", U(2017, 1, 1, 0, 0) * 1000},
        {"2024-02-29T12:00:00+05:45", (U(2024, 2, 29, 12, 0) - 20700) * 1000},
        {"0001-01-01T00:00:00Z", tw_tz_days(1, 1, 1) * 86400000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = 0;
        const char *why = NULL;
        if (tw_tz_rfc3339(good[i].s, strlen(good[i].s), &ms, &why) != 0 ||
            ms != good[i].ms) {
            fail_msg("\"%s\": %s, %lld", good[i].s, why ? why : "-",
                     (long long)ms);
        }
    }
    struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"", "expected a date"},
        {"2024-3-31T01:00:00Z", "expected a date"},
        {"2024-13-01T01:00:00Z", "expected a date"},
        {"2024-00-01T01:00:00Z", "expected a date"},
        {"2023-02-29T01:00:00Z", "no such day"},
        {"2024-04-31T01:00:00Z", "no such day"},
        {"2024-03-31", "expected T"},
        {"2024-03-31X01:00:00Z", "expected T"},
        {"2024-03-31T24:00:00Z", "expected a time"},
        {"2024-03-31T01:60:00Z", "expected a time"},
        {"2024-03-31T01:00:61Z", "expected a time"},
        {"2024-03-31T01:00Z", "expected a time"},
        {"2024-03-31T01:00:00", "expected an offset"},
        {"2024-03-31T01:00:00+0200", "expected an offset +hh:mm"},
        {"2024-03-31T01:00:00+24:00", "expected an offset +hh:mm"},
        {"2024-03-31T01:00:00.Z", "digits after the decimal point"},
        {"2024-03-31T01:00:00Z ", "trailing characters"},
        {"2024-03-31T01:00:00ZZ", "trailing characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        const char *why = NULL;
        if (tw_tz_rfc3339(bad[i].s, strlen(bad[i].s), &ms, &why) !=
                TW_EINVAL ||
            !why || !strstr(why, bad[i].why) || ms != 42) {
            fail_msg("\"%s\": %s", bad[i].s, why ? why : "accepted");
        }
    }
    /* The length bounds the text. */
    int64_t ms;
    assert_int_equal(tw_tz_rfc3339("2024-03-31T01:00:00Zjunk", 20, &ms, NULL),
                     0);
    assert_int_equal(ms, 1711846800000);
    /* Written in a zone and read back, across the DST changes. */
    tw_tz_t *tz = s_load("Europe/Berlin");
    char buf[TW_TZ_RFC3339_MAX];
    assert_string_equal(tw_tz_format(tz, 1711846800000, buf, sizeof buf),
                        "2024-03-31T03:00:00+02:00");
    assert_string_equal(tw_tz_format(tz, 1711846800000 - 1, buf, sizeof buf),
                        "2024-03-31T01:59:59.999+01:00");
    assert_string_equal(tw_tz_format(NULL, -1, buf, sizeof buf),
                        "1969-12-31T23:59:59.999Z");
    tw_tz_t *ny = s_load("America/New_York");
    for (int i = 0; i < 20000; i++) {
        int64_t t = (int64_t)(tw_test_rand() % (1ull << 43)) - (1ll << 41);
        const tw_tz_t *z = i % 3 == 0 ? NULL : i % 3 == 1 ? tz : ny;
        tw_tz_format(z, t, buf, sizeof buf);
        int64_t back = 0;
        const char *why = NULL;
        if (t >= tw_tz_days(1, 1, 1) * 86400000 + 86400000 &&
            t < tw_tz_days(9999, 12, 31) * 86400000) {
            if (tw_tz_rfc3339(buf, strlen(buf), &back, &why) != 0 ||
                back != t) {
                fail_msg("%lld -> %s -> %lld (%s)", (long long)t, buf,
                         (long long)back, why ? why : "-");
            }
        }
    }
    tw_tz_destroy(&ny);
    tw_tz_destroy(&tz);
}

/* ---- hand-built TZif files ---- */

typedef struct {
    uint8_t b[4096];
    size_t len;
} s_buf_t;

static void
s_put(s_buf_t *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof b->b);
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

static void
s_put32(s_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    s_put(b, x, 4);
}

static void
s_put64(s_buf_t *b, int64_t v)
{
    s_put32(b, (uint32_t)((uint64_t)v >> 32));
    s_put32(b, (uint32_t)v);
}

/* What a hand-built file holds; the defaults make a valid zone with two
 * types (AAA +1h, BBB +2h DST) and transitions at 1000 and 2000. */
typedef struct {
    char version; /* 0, '2', '3', '4' */
    uint32_t counts[6]; /* isut, isstd, leap, time, type, char */
    int64_t times[4];
    uint8_t idx[4];
    int32_t utoff[3];
    uint8_t isdst[3], desig[3];
    const char *chars; /* charcnt octets */
    const char *footer; /* between the newlines; NULL: no footer at all */
    char version2; /* the second header's version, 0: same */
} s_spec_t;

static s_spec_t
s_spec_default(void)
{
    s_spec_t s;
    memset(&s, 0, sizeof s);
    s.version = '2';
    s.counts[3] = 2;
    s.counts[4] = 2;
    s.counts[5] = 8;
    s.times[0] = 1000;
    s.times[1] = 2000;
    s.idx[0] = 1;
    s.idx[1] = 0;
    s.utoff[0] = 3600;
    s.utoff[1] = 7200;
    s.isdst[1] = 1;
    s.desig[1] = 4;
    s.chars = "AAA\0BBB";
    s.footer = "AAA-1";
    return s;
}

static void
s_block_put(s_buf_t *b, const s_spec_t *s, char version, int wide)
{
    s_put(b, "TZif", 4);
    s_put(b, &version, 1);
    uint8_t zero[15] = {0};
    s_put(b, zero, 15);
    for (int i = 0; i < 6; i++) {
        s_put32(b, s->counts[i]);
    }
    for (uint32_t i = 0; i < s->counts[3] && i < 4; i++) {
        if (wide) {
            s_put64(b, s->times[i]);
        } else {
            s_put32(b, (uint32_t)s->times[i]);
        }
    }
    s_put(b, s->idx, s->counts[3] < 4 ? s->counts[3] : 4);
    for (uint32_t i = 0; i < s->counts[4] && i < 3; i++) {
        s_put32(b, (uint32_t)s->utoff[i]);
        s_put(b, &s->isdst[i], 1);
        s_put(b, &s->desig[i], 1);
    }
    s_put(b, s->chars, s->counts[5] < 64 ? s->counts[5] : 0);
    for (uint32_t i = 0; i < s->counts[2] && i < 2; i++) {
        s_put(b, zero, wide ? 12 : 8);
    }
    for (uint32_t i = 0; i < s->counts[1] + s->counts[0] && i < 6; i++) {
        s_put(b, zero, 1);
    }
}

static void
s_build(s_buf_t *b, const s_spec_t *s)
{
    b->len = 0;
    s_block_put(b, s, s->version, 0);
    if (s->version != 0) {
        s_block_put(b, s, s->version2 ? s->version2 : s->version, 1);
        if (s->footer) {
            s_put(b, "\n", 1);
            s_put(b, s->footer, strlen(s->footer));
            s_put(b, "\n", 1);
        }
    }
}

static void
s_expect_bad(const s_spec_t *s, const char *why_part)
{
    s_buf_t b;
    s_build(&b, s);
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    assert_int_equal(tw_tz_parse(b.b, b.len, "x", &tz, &why), TW_EINVAL);
    assert_null(tz);
    assert_non_null(why);
    if (!strstr(why, why_part)) {
        fail_msg("expected \"%s\", got \"%s\"", why_part, why);
    }
}

static void
test_synthetic(void **state)
{
    (void)state;
    s_buf_t b;
    tw_tz_t *tz = NULL;
    tw_tz_info_t in;
    /* Valid, in each version. */
    const char versions[] = {0, '2', '3', '4'};
    for (size_t v = 0; v < sizeof versions; v++) {
        s_spec_t s = s_spec_default();
        s.version = versions[v];
        s_build(&b, &s);
        assert_int_equal(tw_tz_parse(b.b, b.len, "syn", &tz, NULL), 0);
        tw_tz_at(tz, 999, &in); /* before the first: type 0 */
        assert_int_equal(in.utoff, 3600);
        assert_string_equal(in.abbr, "AAA");
        assert_true(in.since == INT64_MIN && in.until == 1000);
        tw_tz_at(tz, 1000, &in);
        assert_int_equal(in.utoff, 7200);
        assert_string_equal(in.abbr, "BBB");
        assert_true(in.isdst && in.since == 1000 && in.until == 2000);
        tw_tz_at(tz, 5000, &in); /* after the last: the footer */
        assert_int_equal(in.utoff, 3600);
        assert_true(in.since == 2000 && in.until == INT64_MAX);
        tw_tz_destroy(&tz);
    }
    /* An empty footer: the last type holds for ever. */
    s_spec_t s = s_spec_default();
    s.footer = "";
    s.idx[1] = 1;
    s_build(&b, &s);
    assert_int_equal(tw_tz_parse(b.b, b.len, "syn", &tz, NULL), 0);
    tw_tz_at(tz, (int64_t)1 << 35, &in);
    assert_int_equal(in.utoff, 7200);
    tw_tz_destroy(&tz);
    /* A footer with a rule and no transitions at all. */
    s = s_spec_default();
    s.counts[3] = 0;
    s.footer = "EST5EDT,M3.2.0,M11.1.0";
    s_build(&b, &s);
    assert_int_equal(tw_tz_parse(b.b, b.len, "syn", &tz, NULL), 0);
    tw_tz_at(tz, 1730613600, &in);
    assert_int_equal(in.utoff, -18000);
    tw_tz_at(tz, 1730613600 - 1, &in);
    assert_int_equal(in.utoff, -14400);
    tw_tz_destroy(&tz);

    /* One defect each. */
    s = s_spec_default();
    s.version = '9';
    s_expect_bad(&s, "unknown TZif version");
    s = s_spec_default();
    s.version2 = '3';
    s_expect_bad(&s, "disagree on the version");
    s = s_spec_default();
    s.counts[4] = 0;
    s_expect_bad(&s, "local time types");
    s = s_spec_default();
    s.counts[5] = 0;
    s_expect_bad(&s, "designations");
    s = s_spec_default();
    s.counts[0] = 1;
    s_expect_bad(&s, "indicator counts");
    s = s_spec_default();
    s.counts[2] = 1;
    s_expect_bad(&s, "leap-second");
    s = s_spec_default();
    s.times[1] = 1000;
    s_expect_bad(&s, "not ascending");
    s = s_spec_default();
    s.idx[0] = 2;
    s_expect_bad(&s, "unknown type");
    s = s_spec_default();
    s.utoff[1] = 93600;
    s_expect_bad(&s, "UT offset");
    s = s_spec_default();
    s.utoff[1] = INT32_MIN;
    s_expect_bad(&s, "UT offset");
    s = s_spec_default();
    s.isdst[0] = 2;
    s_expect_bad(&s, "DST flag");
    s = s_spec_default();
    s.desig[1] = 8;
    s_expect_bad(&s, "designation index");
    s = s_spec_default();
    s.footer = NULL;
    s_expect_bad(&s, "missing footer");
    s = s_spec_default();
    s.footer = "EST5EDT";
    s_expect_bad(&s, "without a rule");
    s = s_spec_default();
    s.counts[3] = 3000000000u; /* far more than the file holds */
    s_expect_bad(&s, "truncated");
    /* Bad magic. */
    s = s_spec_default();
    s_build(&b, &s);
    b.b[0] = 'X';
    const char *why = NULL;
    assert_int_equal(tw_tz_parse(b.b, b.len, "x", &tz, &why), TW_EINVAL);
    assert_string_equal(why, "not a TZif file (bad magic)");
}

static int
s_read_file(const char *path, s_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -1;
    }
    b->len = fread(b->b, 1, sizeof b->b, f);
    int big = !feof(f);
    fclose(f);
    return big ? -1 : 0;
}

/* Every proper prefix of a real file is refused; every one-octet change
 * is either refused with a reason or gives a zone that answers. */
static void
test_truncations_and_flips(void **state)
{
    (void)state;
    s_buf_t b;
    assert_int_equal(s_read_file(TW_TZ_DIR "/America/New_York", &b), 0);
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    assert_int_equal(tw_tz_parse(b.b, b.len, "ny", &tz, &why), 0);
    tw_tz_destroy(&tz);
    for (size_t n = 0; n < b.len; n++) {
        why = NULL;
        if (tw_tz_parse(b.b, n, "ny", &tz, &why) != TW_EINVAL || !why) {
            fail_msg("prefix of %zu octets accepted", n);
        }
    }
    for (size_t i = 0; i < b.len; i++) {
        uint8_t keep = b.b[i];
        b.b[i] ^= (uint8_t)(1u << (tw_test_rand() % 8));
        if (tw_tz_parse(b.b, b.len, "ny", &tz, &why) == 0) {
            tw_tz_info_t in;
            int64_t u[2];
            tw_tz_at(tz, (int64_t)(tw_test_rand() % (1ull << 34)) - (1ll << 33),
                     &in);
            tw_tz_resolve(tz, (int64_t)(tw_test_rand() % (1ull << 34)), u, NULL);
            tw_tz_destroy(&tz);
        } else {
            assert_non_null(why);
        }
        b.b[i] = keep;
    }
}

/* Every zone of the installed database loads (leap-second ones refuse). */
static size_t s_loaded;

static void
s_walk(const char *dir, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char sub[1024], full[2048];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (stat(full, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (strcmp(sub, "right") != 0) {
                s_walk(dir, sub);
            }
            continue;
        }
        s_buf_t b;
        if (s_read_file(full, &b) != 0 || b.len < 4 ||
            memcmp(b.b, "TZif", 4) != 0) {
            continue; /* zone1970.tab, leapseconds, ... */
        }
        tw_tz_t *tz = NULL;
        const char *why = NULL;
        int rc = tw_tz_load(dir, sub, &tz, &why);
        if (rc != 0) {
            fail_msg("%s: %s", sub, why);
        }
        tw_tz_destroy(&tz);
        s_loaded++;
    }
    closedir(d);
}

static void
test_whole_database(void **state)
{
    (void)state;
    s_walk(TW_TZ_DIR, "");
    assert_true(s_loaded > 300);
    tw_tz_t *tz = NULL;
    const char *why = NULL;
    struct stat st;
    if (stat(TW_TZ_DIR "/right/Europe/Berlin", &st) == 0) {
        assert_int_equal(tw_tz_load(NULL, "right/Europe/Berlin", &tz, &why),
                         TW_EINVAL);
        assert_non_null(strstr(why, "leap-second"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_new_york),
        cmocka_unit_test(test_sydney),
        cmocka_unit_test(test_vs_libc),
        cmocka_unit_test(test_posix),
        cmocka_unit_test(test_utc_and_offsets),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_synthetic),
        cmocka_unit_test(test_truncations_and_flips),
        cmocka_unit_test(test_whole_database),
    };
    return cmocka_run_group_tests_name("tz", tests, NULL, NULL);
}
