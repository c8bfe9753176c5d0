/*  tests/unit/test_broker_sched.c - the schedule engine with a fake clock.
 *
 *  Wall-clock times are numbers passed in. Checked: names and policies;
 *  every refusal of tw_sched_add; a tick fires when due and not before;
 *  each overlap policy (skip, queue with its chain of "after" ids and its
 *  limit, cancel-previous); each catch-up policy after a downtime, with
 *  and without an on-time tick, and the catch-up limit; a year of
 *  downtime and a very uneven expression, where only the latest ticks may
 *  be walked; pause and resume; run-now; a tick in a DST gap. Then the
 *  exactly-once protocol of sched.h against a model store: the broker
 *  crashes at random before or after committing a tick with its task, the
 *  engine is rebuilt from what was committed, and every tick of the run is
 *  committed exactly once. Finally 10,000 schedules firing every second
 *  come out of the heap in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/state/sched.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/tz.h"
#include "tests/unit/support/rng.h"

static int64_t
U(int64_t y, int mo, int d, int h, int mi)
{
    return (tw_tz_days(y, mo, d) * 86400 + h * 3600 + mi * 60) * 1000;
}

static tw_sched_def_t
s_def(const char *name, const char *expr, int64_t cursor)
{
    tw_sched_def_t d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.namelen = strlen(name);
    d.expr = expr;
    d.cursor_ms = cursor;
    d.tmpl = "\x81\xa1h\xa4noop";
    d.tmpl_len = 7;
    return d;
}

static void
s_add(tw_sched_t *s, tw_sched_def_t d)
{
    char err[128];
    if (tw_sched_add(s, &d, err, sizeof err) != 0) {
        fail_msg("add %s: %s", d.name, err);
    }
}

/* Poll once, expecting a FIRE of `tick`; report it started as `task`. */
static tw_sched_action_t
s_expect_fire(tw_sched_t *s, int64_t now, int64_t tick, uint64_t task)
{
    tw_sched_action_t a;
    assert_int_equal(tw_sched_poll(s, now, &a), 1);
    if (a.kind != TW_SCHED_FIRE || a.tick_ms != tick) {
        fail_msg("expected FIRE %lld, got kind %d tick %lld reason %s",
                 (long long)tick, a.kind, (long long)a.tick_ms,
                 tw_skip_name(a.reason));
    }
    assert_int_equal(tw_sched_started(s, a.name, a.namelen, task), 0);
    return a;
}

static tw_sched_action_t
s_expect_skip(tw_sched_t *s, int64_t now, int reason, int64_t first,
              int64_t last, uint64_t count)
{
    tw_sched_action_t a;
    assert_int_equal(tw_sched_poll(s, now, &a), 1);
    if (a.kind != TW_SCHED_SKIP || a.reason != reason ||
        a.first_ms != first || a.tick_ms != last || a.count != count) {
        fail_msg("expected SKIP %s %lld..%lld x%llu, got kind %d %s "
                 "%lld..%lld x%llu",
                 tw_skip_name(reason), (long long)first, (long long)last,
                 (unsigned long long)count, a.kind, tw_skip_name(a.reason),
                 (long long)a.first_ms, (long long)a.tick_ms,
                 (unsigned long long)a.count);
    }
    return a;
}

static void
s_expect_nothing(tw_sched_t *s, int64_t now)
{
    tw_sched_action_t a;
    assert_int_equal(tw_sched_poll(s, now, &a), 0);
}

static void
test_names(void **state)
{
    (void)state;
    assert_int_equal(tw_overlap_parse("skip", 4), TW_OVERLAP_SKIP);
    assert_int_equal(tw_overlap_parse("queue", 5), TW_OVERLAP_QUEUE);
    assert_int_equal(tw_overlap_parse("cancel-previous", 15),
                     TW_OVERLAP_CANCEL);
    assert_int_equal(tw_overlap_parse("cancel", 6), TW_EINVAL);
    assert_int_equal(tw_overlap_parse("skipx", 4), TW_OVERLAP_SKIP);
    assert_int_equal(tw_catchup_parse("none", 4), TW_CATCHUP_NONE);
    assert_int_equal(tw_catchup_parse("last", 4), TW_CATCHUP_LAST);
    assert_int_equal(tw_catchup_parse("all", 3), TW_CATCHUP_ALL);
    assert_int_equal(tw_catchup_parse("ALL", 3), TW_EINVAL);
    assert_int_equal(tw_catchup_parse("", 0), TW_EINVAL);
    assert_string_equal(tw_overlap_name(2), "cancel-previous");
    assert_string_equal(tw_catchup_name(1), "last");
    assert_string_equal(tw_overlap_name(9), "?");
    assert_string_equal(tw_skip_name(TW_SKIP_LIMIT), "catch-up limit");
    assert_string_equal(tw_skip_name(TW_SKIP_QUEUE_FULL), "queue full");
    assert_string_equal(tw_skip_name(0), "?");
}

static void
test_add_refusals(void **state)
{
    (void)state;
    tw_sched_t *s = tw_sched_new(0);
    char err[128];
    tw_sched_def_t d = s_def("nightly", "0 3 * * *", 0);
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), 0);
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EEXIST);
    assert_string_equal(err, "schedule \"nightly\" exists");
    d = s_def("bad", "0 3 * * * *", 0);
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EINVAL);
    assert_non_null(strstr(err, "expected 5 fields"));
    d = s_def("bad", NULL, 0);
    assert_int_equal(tw_sched_add(s, &d, NULL, 0), TW_EINVAL);
    static const char *const names[] = {"", "a.b", "a b", "x/y", "é"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        d = s_def(names[i], "@daily", 0);
        assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EINVAL);
        assert_non_null(strstr(err, "schedule name"));
    }
    char longname[TW_SCHED_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    d = s_def(longname, "@daily", 0);
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EINVAL);
    d.namelen = TW_SCHED_NAME_MAX;
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), 0);
    d = s_def("p", "@daily", 0);
    d.overlap = 3;
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EINVAL);
    d.overlap = 0;
    d.catchup = -1;
    assert_int_equal(tw_sched_add(s, &d, err, sizeof err), TW_EINVAL);
    assert_int_equal(tw_sched_count(s), 2);
    assert_int_equal(tw_sched_remove(s, "nope", 4), TW_ENOENT);
    assert_int_equal(tw_sched_pause(s, "nope", 4), TW_ENOENT);
    assert_int_equal(tw_sched_resume(s, "nope", 4, 0), TW_ENOENT);
    assert_int_equal(tw_sched_started(s, "nope", 4, 1), TW_ENOENT);
    tw_sched_action_t a;
    assert_int_equal(tw_sched_run_now(s, "nope", 4, 0, &a), TW_ENOENT);
    tw_sched_info_t info;
    assert_int_equal(tw_sched_get(s, "nope", 4, &info), TW_ENOENT);
    tw_sched_destroy(&s);
    assert_null(s);
    tw_sched_destroy(&s);
}

static void
test_fire_and_overlap_skip(void **state)
{
    (void)state;
    tw_sched_t *s = tw_sched_new(5000);
    s_add(s, s_def("ten", "@every 10s", 0));
    assert_int_equal(tw_sched_next_due(s), 10000);
    s_expect_nothing(s, 9999);
    tw_sched_action_t a = s_expect_fire(s, 10000, 10000, 1);
    assert_int_equal(a.after, 0);
    assert_false(a.cancel_live);
    assert_false(a.manual);
    assert_int_equal(a.tmpl_len, 7);
    assert_memory_equal(a.tmpl, "\x81\xa1h\xa4noop", 7);
    assert_string_equal(a.name, "ten");
    s_expect_nothing(s, 10000);
    assert_int_equal(tw_sched_next_due(s), 20000);
    /* Task 1 still runs at the next tick: skipped. */
    s_expect_skip(s, 20005, TW_SKIP_OVERLAP, 20000, 20000, 1);
    s_expect_nothing(s, 20005);
    assert_int_equal(tw_sched_task_ended(s, 1), 1);
    assert_int_equal(tw_sched_task_ended(s, 1), 0);
    assert_int_equal(tw_sched_task_ended(s, 77), 0);
    s_expect_fire(s, 30000, 30000, 2);
    tw_sched_info_t info;
    assert_int_equal(tw_sched_get(s, "ten", 3, &info), 0);
    assert_string_equal(info.expr, "@every 10s");
    assert_string_equal(info.tz, "UTC");
    assert_int_equal(info.fired, 2);
    assert_int_equal(info.skipped, 1);
    assert_int_equal(info.cursor_ms, 30000);
    assert_int_equal(info.next_ms, 40000);
    assert_int_equal(info.live, 1);
    assert_int_equal(info.live_ids[0], 2);
    /* A FIRE that made no task counts as skipped and leaves nothing
     * live. */
    assert_int_equal(tw_sched_task_ended(s, 2), 1);
    assert_int_equal(tw_sched_poll(s, 40000, &a), 1);
    tw_sched_unfired(s, "ten", 3);
    assert_int_equal(tw_sched_get(s, "ten", 3, &info), 0);
    assert_int_equal(info.skipped, 2);
    assert_int_equal(info.live, 0);
    tw_sched_destroy(&s);
}

static void
test_overlap_queue_and_cancel(void **state)
{
    (void)state;
    tw_sched_t *s = tw_sched_new(5000);
    tw_sched_def_t d = s_def("q", "@every 1s", 0);
    d.overlap = TW_OVERLAP_QUEUE;
    s_add(s, d);
    d = s_def("c", "@every 1s", 0);
    d.overlap = TW_OVERLAP_CANCEL;
    s_add(s, d);
    /* Both due at 1000: q (added first) then c. */
    tw_sched_action_t a = s_expect_fire(s, 1000, 1000, 100);
    assert_string_equal(a.name, "q");
    assert_int_equal(a.after, 0);
    a = s_expect_fire(s, 1000, 1000, 200);
    assert_string_equal(a.name, "c");
    assert_false(a.cancel_live);
    /* Next tick: q runs after 100, c cancels 200. */
    a = s_expect_fire(s, 2000, 2000, 101);
    assert_int_equal(a.after, 100);
    a = s_expect_fire(s, 2000, 2000, 201);
    assert_true(a.cancel_live);
    assert_int_equal(a.after, 0);
    a = s_expect_fire(s, 3000, 3000, 102);
    assert_int_equal(a.after, 101); /* the latest live one */
    tw_sched_task_ended(s, 200);
    tw_sched_task_ended(s, 201);
    a = s_expect_fire(s, 3000, 3000, 202);
    assert_false(a.cancel_live);
    tw_sched_destroy(&s);

    /* The queue is bounded. */
    s = tw_sched_new(0);
    d = s_def("q", "@every 1s", 0);
    d.overlap = TW_OVERLAP_QUEUE;
    s_add(s, d);
    for (uint64_t i = 1; i <= TW_SCHED_MAX_LIVE; i++) {
        a = s_expect_fire(s, (int64_t)i * 1000, (int64_t)i * 1000, i);
        assert_int_equal(a.after, i - 1);
    }
    int64_t t = (TW_SCHED_MAX_LIVE + 1) * 1000;
    s_expect_skip(s, t, TW_SKIP_QUEUE_FULL, t, t, 1);
    tw_sched_task_ended(s, 1);
    s_expect_fire(s, t + 1000, t + 1000, 5000);
    tw_sched_destroy(&s);
}

/* Ten ticks 10 s apart were due while the broker was down. */
static void
test_catchup(void **state)
{
    (void)state;
    /* none, with the last tick on time (3 s late, grace 5 s) */
    tw_sched_t *s = tw_sched_new(5000);
    tw_sched_def_t d = s_def("n", "@every 10s", 0);
    s_add(s, d);
    s_expect_skip(s, 103000, TW_SKIP_MISSED, 10000, 90000, 9);
    s_expect_fire(s, 103000, 100000, 1);
    s_expect_nothing(s, 103000);
    tw_sched_destroy(&s);
    /* none, nothing on time: all ten skipped, nothing fires */
    s = tw_sched_new(5000);
    s_add(s, d);
    s_expect_skip(s, 106000, TW_SKIP_MISSED, 10000, 100000, 10);
    s_expect_nothing(s, 106000);
    assert_int_equal(tw_sched_next_due(s), 110000);
    tw_sched_destroy(&s);
    /* last: nothing on time, so the latest missed one fires */
    s = tw_sched_new(5000);
    d.catchup = TW_CATCHUP_LAST;
    s_add(s, d);
    s_expect_skip(s, 106000, TW_SKIP_MISSED, 10000, 90000, 9);
    s_expect_fire(s, 106000, 100000, 1);
    s_expect_nothing(s, 106000);
    tw_sched_destroy(&s);
    /* last, with an on-time tick: that one, and only it */
    s = tw_sched_new(5000);
    s_add(s, d);
    s_expect_skip(s, 103000, TW_SKIP_MISSED, 10000, 90000, 9);
    s_expect_fire(s, 103000, 100000, 1);
    s_expect_nothing(s, 103000);
    tw_sched_destroy(&s);
    /* last, a single missed tick: it fires, nothing skipped */
    s = tw_sched_new(5000);
    s_add(s, d);
    s_expect_fire(s, 16000, 10000, 1);
    s_expect_nothing(s, 16000);
    tw_sched_destroy(&s);
    /* all: each, oldest first, each tick its own task */
    s = tw_sched_new(5000);
    d.catchup = TW_CATCHUP_ALL;
    d.overlap = TW_OVERLAP_QUEUE;
    s_add(s, d);
    for (uint64_t i = 1; i <= 10; i++) {
        tw_sched_action_t a =
            s_expect_fire(s, 106000, (int64_t)i * 10000, i);
        assert_int_equal(a.after, i - 1);
    }
    s_expect_nothing(s, 106000);
    tw_sched_destroy(&s);
    /* Several on-time ticks (a stalled loop) all fire, whatever the
     * policy. */
    s = tw_sched_new(5000);
    d = s_def("n", "@every 1s", 0);
    d.overlap = TW_OVERLAP_QUEUE;
    s_add(s, d);
    for (uint64_t i = 1; i <= 4; i++) {
        s_expect_fire(s, 4500, (int64_t)i * 1000, i);
    }
    s_expect_nothing(s, 4500);
    tw_sched_destroy(&s);
}

/* Catching up with `all` past TW_SCHED_MAX_CATCHUP: one LIMIT skip of
 * the ticks from `skip_first` up to the one before `first` (`skipped`
 * counted), then every tick from `first` to `last`, `step` apart, fired
 * and ended in turn (task ids are the ticks), then nothing. */
static void
s_expect_catchup(tw_sched_t *s, int64_t now, int64_t skip_first,
                 uint64_t skipped, int64_t first, int64_t last, int64_t step)
{
    s_expect_skip(s, now, TW_SKIP_LIMIT, skip_first, first - step, skipped);
    for (int64_t t = first; t <= last; t += step) {
        s_expect_fire(s, now, t, (uint64_t)t);
        tw_sched_task_ended(s, (uint64_t)t);
    }
    s_expect_nothing(s, now);
}

static void
test_catchup_limit(void **state)
{
    (void)state;
    /* 2,000 missed ticks one second apart and one on time: `all` fires
     * the latest TW_SCHED_MAX_CATCHUP and the on-time one. */
    tw_sched_t *s = tw_sched_new(500);
    tw_sched_def_t d = s_def("every", "@every 1s", 0);
    d.catchup = TW_CATCHUP_ALL;
    s_add(s, d);
    int64_t now = 2001000 + 100;
    int64_t first_fired = (2001 - TW_SCHED_MAX_CATCHUP) * 1000;
    s_expect_catchup(s, now, 1000, 2000 - TW_SCHED_MAX_CATCHUP, first_fired,
                     2001000, 1000);
    tw_sched_info_t info;
    assert_int_equal(tw_sched_get(s, "every", 5, &info), 0);
    assert_int_equal(info.fired, TW_SCHED_MAX_CATCHUP + 1);
    assert_int_equal(info.skipped, 2000 - TW_SCHED_MAX_CATCHUP);
    tw_sched_destroy(&s);
}

/* A year down: only the latest ticks are walked, the skip is not
 * counted, and the tick before now fires. */
static void
test_long_downtime(void **state)
{
    (void)state;
    tw_sched_t *s = tw_sched_new(60000);
    tw_sched_def_t d = s_def("m", "* * * * *", U(2023, 1, 1, 0, 0));
    d.catchup = TW_CATCHUP_LAST;
    s_add(s, d);
    int64_t now = U(2024, 1, 1, 0, 0) + 30000;
    s_expect_skip(s, now, TW_SKIP_MISSED, U(2023, 1, 1, 0, 1),
                  U(2023, 12, 31, 23, 59), 0);
    s_expect_fire(s, now, U(2024, 1, 1, 0, 0), 1);
    s_expect_nothing(s, now);
    assert_int_equal(tw_sched_next_due(s), U(2024, 1, 1, 0, 1));
    tw_sched_destroy(&s);
    /* Every minute of 1 January only, down for two years, back in
     * December: the window has to be narrowed onto 1 January. */
    s = tw_sched_new(60000);
    d = s_def("ny", "* * 1 1 *", U(2022, 6, 1, 0, 0));
    d.catchup = TW_CATCHUP_LAST;
    s_add(s, d);
    now = U(2024, 12, 15, 0, 0);
    s_expect_skip(s, now, TW_SKIP_MISSED, U(2023, 1, 1, 0, 0),
                  U(2024, 1, 1, 23, 58), 0);
    s_expect_fire(s, now, U(2024, 1, 1, 23, 59), 1);
    assert_int_equal(tw_sched_next_due(s), U(2025, 1, 1, 0, 0));
    tw_sched_destroy(&s);
    /* The same with `all`: the last 1,000 minutes of that day. */
    s = tw_sched_new(60000);
    d.catchup = TW_CATCHUP_ALL;
    s_add(s, d);
    int64_t first = U(2024, 1, 1, 23, 59) - (TW_SCHED_MAX_CATCHUP - 1) *
                                                60000;
    s_expect_catchup(s, now, U(2023, 1, 1, 0, 0), 0, first,
                     U(2024, 1, 1, 23, 59), 60000);
    tw_sched_destroy(&s);
}

static void
test_pause_resume_run_now(void **state)
{
    (void)state;
    tw_sched_t *s = tw_sched_new(5000);
    tw_sched_def_t d = s_def("p", "@every 10s", 0);
    d.catchup = TW_CATCHUP_ALL;
    s_add(s, d);
    assert_int_equal(tw_sched_pause(s, "p", 1), 0);
    assert_int_equal(tw_sched_pause(s, "p", 1), 0);
    assert_int_equal(tw_sched_next_due(s), INT64_MAX);
    s_expect_nothing(s, 1000000);
    /* run-now fires a paused schedule, and moves no cursor. */
    tw_sched_action_t a;
    assert_int_equal(tw_sched_run_now(s, "p", 1, 1000000, &a), 0);
    assert_int_equal(a.kind, TW_SCHED_FIRE);
    assert_true(a.manual);
    assert_int_equal(a.tick_ms, 1000000);
    assert_int_equal(tw_sched_started(s, "p", 1, 9), 0);
    /* Resuming skips nothing and fires nothing of the pause. */
    assert_int_equal(tw_sched_resume(s, "p", 1, 1000500), 0);
    assert_int_equal(tw_sched_resume(s, "p", 1, 1000500), 0);
    assert_int_equal(tw_sched_next_due(s), 1010000);
    tw_sched_info_t info;
    assert_int_equal(tw_sched_get(s, "p", 1, &info), 0);
    assert_int_equal(info.cursor_ms, 1000500);
    assert_int_equal(info.skipped, 0);
    assert_int_equal(info.fired, 1);
    assert_false(info.paused);
    /* run-now ignores `skip`: task 9 is live and it fires anyway. */
    assert_int_equal(tw_sched_run_now(s, "p", 1, 1001000, &a), 0);
    assert_int_equal(a.kind, TW_SCHED_FIRE);
    tw_sched_unfired(s, "p", 1);
    /* ... but a tick is skipped. */
    s_expect_skip(s, 1010000, TW_SKIP_OVERLAP, 1010000, 1010000, 1);
    /* Pausing in the middle of a catch-up drops the rest of it. */
    tw_sched_task_ended(s, 9);
    assert_int_equal(tw_sched_poll(s, 1100000, &a), 1);
    assert_int_equal(a.tick_ms, 1020000);
    tw_sched_started(s, "p", 1, 10);
    assert_int_equal(tw_sched_pause(s, "p", 1), 0);
    s_expect_nothing(s, 1100000);
    /* Removing forgets the schedule; its live task is still recognised
     * when it ends. */
    assert_int_equal(tw_sched_remove(s, "p", 1), 0);
    assert_int_equal(tw_sched_count(s), 0);
    assert_int_equal(tw_sched_task_ended(s, 10), 1);
    tw_sched_destroy(&s);
}

/* "30 2 * * *" in Berlin fires at the jump on 31 March 2024. */
static void
test_dst_gap(void **state)
{
    (void)state;
    tw_tz_t *tz = NULL;
    assert_int_equal(tw_tz_load(NULL, "Europe/Berlin", &tz, NULL), 0);
    tw_sched_t *s = tw_sched_new(0);
    tw_sched_def_t d = s_def("b", "30 2 * * *", U(2024, 3, 30, 12, 0));
    d.tz = tz;
    s_add(s, d);
    assert_int_equal(tw_sched_next_due(s), U(2024, 3, 31, 1, 0));
    s_expect_fire(s, U(2024, 3, 31, 1, 0), U(2024, 3, 31, 1, 0), 1);
    assert_int_equal(tw_sched_next_due(s), U(2024, 4, 1, 0, 30));
    tw_sched_info_t info;
    assert_int_equal(tw_sched_get(s, "b", 1, &info), 0);
    assert_string_equal(info.tz, "Europe/Berlin");
    tw_sched_destroy(&s);
    tw_tz_destroy(&tz);
}

/* ---- exactly once, against a model store ---- */

typedef struct {
    int64_t cursor;            /* committed */
    uint64_t next_task;
    int64_t fired[4096];       /* committed ticks, in commit order */
    size_t nfired;
    uint64_t live[16];         /* committed live tasks */
    size_t nlive;
} s_store_t;

static void
test_exactly_once_across_crashes(void **state)
{
    (void)state;
    static s_store_t st;
    for (int round = 0; round < 40; round++) {
        memset(&st, 0, sizeof st);
        st.next_task = 1;
        const int64_t end = 600000; /* ten minutes of one a second */
        tw_sched_t *s = NULL;
        int64_t now = 0;
        while (st.cursor < end) {
            if (!s) {
                /* (Re)start: the engine from what was committed. */
                s = tw_sched_new(2000);
                tw_sched_def_t d = s_def("x", "@every 1s", st.cursor);
                d.catchup = TW_CATCHUP_ALL;
                d.overlap = (int)(tw_test_rand() % 3);
                s_add(s, d);
                for (size_t i = 0; i < st.nlive; i++) {
                    tw_sched_started(s, "x", 1, st.live[i]);
                }
            }
            now += 1 + (int64_t)(tw_test_rand() % 2500);
            if (now > end) {
                now = end;
            }
            /* One broker turn: the actions, then one commit. */
            int64_t cursor = st.cursor;
            int64_t turn[4096];
            size_t nturn = 0;
            uint64_t tasks[4096];
            tw_sched_action_t a;
            while (tw_sched_poll(s, now, &a)) {
                cursor = a.tick_ms;
                if (a.kind == TW_SCHED_SKIP) {
                    assert_int_equal(a.reason, TW_SKIP_OVERLAP);
                    assert_int_equal(a.count, 1);
                    turn[nturn] = -a.tick_ms; /* a skip, committed too */
                    tasks[nturn++] = 0;
                    continue;
                }
                uint64_t id = st.next_task++;
                tw_sched_started(s, "x", 1, id);
                turn[nturn] = a.tick_ms;
                tasks[nturn++] = id;
            }
            int crash = tw_test_rand() % 5 == 0;
            if (crash && tw_test_rand() % 2) {
                tw_sched_destroy(&s); /* before the commit: all lost */
                continue;
            }
            st.cursor = cursor;
            for (size_t i = 0; i < nturn; i++) {
                assert_true(st.nfired < 4096);
                st.fired[st.nfired++] = turn[i];
                if (tasks[i] && st.nlive < 16) {
                    st.live[st.nlive++] = tasks[i];
                }
            }
            /* Some live tasks end (and that is committed too). */
            while (st.nlive > 0 && tw_test_rand() % 3) {
                uint64_t id = st.live[--st.nlive];
                if (s) {
                    tw_sched_task_ended(s, id);
                }
            }
            if (crash) {
                tw_sched_destroy(&s); /* after the commit */
            }
        }
        tw_sched_destroy(&s);
        /* Every second of the ten minutes was dealt with exactly once,
         * in order (fired or, by the overlap policy, skipped). The
         * downtimes were short, so catch-up `all` lost none. */
        size_t k = 0;
        for (int64_t t = 1000; t <= end; t += 1000, k++) {
            assert_true(k < st.nfired);
            int64_t got = st.fired[k] < 0 ? -st.fired[k] : st.fired[k];
            if (got != t) {
                fail_msg("round %d: tick %lld dealt with as %lld", round,
                         (long long)t, (long long)st.fired[k]);
            }
        }
        assert_int_equal(k, st.nfired);
    }
}

/* 10,000 schedules every second: each second all of them fire, in the
 * order they were added, and nothing else comes out. */
static void
test_ten_thousand(void **state)
{
    (void)state;
    enum { N = 10000 };
    tw_sched_t *s = tw_sched_new(0);
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%05d", i);
        s_add(s, s_def(name, "@every 1s", (int64_t)(i % 7) * 100));
    }
    /* A few removed, a few paused. */
    assert_int_equal(tw_sched_remove(s, "s00007", 6), 0);
    assert_int_equal(tw_sched_pause(s, "s00011", 6), 0);
    uint64_t task = 1;
    for (int64_t sec = 1; sec <= 5; sec++) {
        assert_int_equal(tw_sched_next_due(s), sec * 1000);
        tw_sched_action_t a;
        int count = 0;
        char prev[16] = "";
        while (tw_sched_poll(s, sec * 1000 + 3, &a)) {
            assert_int_equal(a.kind, TW_SCHED_FIRE);
            assert_int_equal(a.tick_ms, sec * 1000);
            char name[16];
            snprintf(name, sizeof name, "%.*s", (int)a.namelen, a.name);
            assert_true(strcmp(prev, name) < 0);
            strcpy(prev, name);
            tw_sched_started(s, a.name, a.namelen, task);
            tw_sched_task_ended(s, task++);
            count++;
        }
        assert_int_equal(count, N - 2);
    }
    tw_sched_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_add_refusals),
        cmocka_unit_test(test_fire_and_overlap_skip),
        cmocka_unit_test(test_overlap_queue_and_cancel),
        cmocka_unit_test(test_catchup),
        cmocka_unit_test(test_catchup_limit),
        cmocka_unit_test(test_long_downtime),
        cmocka_unit_test(test_pause_resume_run_now),
        cmocka_unit_test(test_dst_gap),
        cmocka_unit_test(test_exactly_once_across_crashes),
        cmocka_unit_test(test_ten_thousand),
    };
    return cmocka_run_group_tests_name("broker_sched", tests, NULL, NULL);
}
