/*  tests/unit/test_broker_stations.c - the broker's station table and
 *  restart policy.
 *
 *  The table keeps stations by sid (a hash map) and in insertion order
 *  (list and show answer in that order), refuses a second station with the
 *  same sid, and owns private copies of the sid, the args, the checkpoint
 *  and every queued n2s message. The checkpoint is the next iteration's
 *  input (F1 S11-S18, S16: a station resumes from it); without one the
 *  input falls back to the definition's args. The n2s backlog (F2 S31) is
 *  bounded: a push beyond the limit is refused with seq 0 and counted as
 *  dropped, and sequence numbers are given only to accepted messages.
 *
 *  The restart policy is a pure decision with the time passed in (STYLE
 *  rule 23): "never" leaves a failed station failed (S20, S23: no silent
 *  retry); "on-failure" restarts a failed one after 1, 2, 4, 8, 16 s (or
 *  doubling from the station's own base, the broker's --restart-base,
 *  never beyond 60 s) and gives up on the sixth failure within 60 s of
 *  the first of the window;
 *  a failure after the window starts a new one; "always" also restarts
 *  after done (S19) with the base delay; a station the operator stopped
 *  (wanted stopped, or ended stopped / cancelled, S17-S18) never restarts.
 *
 *  Every test runs under a counting allocator installed with
 *  tw_replace_allocator(), so destroy and remove must give back every
 *  block, independently of ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/state/stations.h"
#include "common/alloc.h"
#include "tests/unit/support/count_alloc.h"

#define S_TEST(f)                                                            \
    cmocka_unit_test_setup_teardown(f, tw_count_setup, tw_count_teardown)

/* ---- helpers ---------------------------------------------------------- */

static tw_station_t *
s_add(tw_stations_t *ss, const char *sid, const char *args)
{
    return tw_stations_add(ss, sid, strlen(sid), args,
                           args ? strlen(args) : 0);
}

static tw_station_t *
s_get(const tw_stations_t *ss, const char *sid)
{
    return tw_stations_get(ss, sid, strlen(sid));
}

/* The input must be exactly these bytes. */
static void
s_expect_input(const tw_station_t *st, const void *bytes, size_t len)
{
    size_t got = 99;
    const void *in = tw_station_input(st, &got);
    assert_int_equal(got, len);
    if (len) {
        assert_non_null(in);
        assert_memory_equal(in, bytes, len);
    }
}

/* ---- table ------------------------------------------------------------ */

/* add / get / remove; a new station's defaults; insertion order kept
 * across removals; copies are private. */
static void
test_add_get_remove(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 10);
    assert_int_equal(ss.n2s_limit, 10);
    assert_null(s_get(&ss, "a"));

    char sid[8] = "alpha";
    unsigned char args[3] = {0xa2, 'h', 'i'}; /* msgpack "hi" */
    tw_station_t *a = tw_stations_add(&ss, sid, 5, args, 3);
    assert_non_null(a);
    sid[0] = 'X'; /* the table has its own copies */
    args[1] = 'X';
    assert_string_equal(a->sid, "alpha");
    assert_int_equal(a->sid_len, 5);
    assert_int_equal(a->args_len, 3);
    assert_memory_equal(a->args, "\xa2hi", 3);
    assert_int_equal(a->state, TW_SS_PENDING);
    assert_int_equal(a->wanted, TW_WANT_RUN);
    assert_int_equal(a->restart, TW_RESTART_NEVER);
    assert_int_equal(a->placement, TW_PLACE_ANY);
    assert_int_equal(a->epoch, 0);
    assert_int_equal(a->iterations, 0);
    assert_int_equal(a->worker, 0);
    assert_null(a->ck);
    assert_null(a->last_error);
    assert_non_null(a->reason); /* pending always says why (S41) */
    assert_false(tw_station_placed(a));
    assert_false(tw_station_ended(a));

    tw_station_t *b = s_add(&ss, "beta", NULL);
    tw_station_t *c = s_add(&ss, "gamma", "\x01");
    assert_non_null(b);
    assert_non_null(c);
    assert_null(b->args);
    assert_int_equal(b->args_len, 0);
    assert_int_equal(ss.len, 3);
    assert_ptr_equal(s_get(&ss, "alpha"), a);
    assert_ptr_equal(s_get(&ss, "beta"), b);
    assert_ptr_equal(s_get(&ss, "gamma"), c);
    /* Lookups use the given length, not a terminator. */
    assert_ptr_equal(tw_stations_get(&ss, "alphabet", 5), a);
    assert_null(tw_stations_get(&ss, "alp", 3));
    assert_null(tw_stations_get(&ss, "alphaX", 6));
    assert_ptr_equal(ss.all[0], a);
    assert_ptr_equal(ss.all[1], b);
    assert_ptr_equal(ss.all[2], c);

    tw_stations_remove(&ss, b);
    assert_null(s_get(&ss, "beta"));
    assert_int_equal(ss.len, 2);
    assert_ptr_equal(ss.all[0], a);
    assert_ptr_equal(ss.all[1], c);
    assert_ptr_equal(s_get(&ss, "gamma"), c);

    tw_stations_remove(&ss, a);
    tw_stations_remove(&ss, c);
    assert_int_equal(ss.len, 0);
    assert_null(s_get(&ss, "alpha"));
    tw_stations_destroy(&ss);
}

/* A second station with a taken sid is refused and leaves the first one
 * alone; once the first is removed the sid is free again. sids that only
 * share a prefix are different stations. */
static void
test_duplicate_sid_refused(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 4);
    tw_station_t *a = s_add(&ss, "s1", "\x01");
    assert_non_null(a);
    assert_null(s_add(&ss, "s1", "\x02"));
    assert_null(tw_stations_add(&ss, "s1xyz", 2, NULL, 0));
    assert_int_equal(ss.len, 1);
    assert_ptr_equal(s_get(&ss, "s1"), a);
    s_expect_input(a, "\x01", 1);

    tw_station_t *p = s_add(&ss, "s", NULL);
    tw_station_t *q = s_add(&ss, "s10", NULL);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal(ss.len, 3);

    tw_stations_remove(&ss, a);
    tw_station_t *a2 = s_add(&ss, "s1", "\x03");
    assert_non_null(a2);
    assert_ptr_equal(s_get(&ss, "s1"), a2);
    s_expect_input(a2, "\x03", 1);
    assert_ptr_equal(ss.all[2], a2); /* re-added: at the end */
    tw_stations_destroy(&ss);
}

/* Many stations, removed in a scrambled order: the map and the ordered
 * list stay in step. */
static void
test_many_stations(void **state)
{
    (void)state;
    enum { N = 2000 };
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    char sid[32];
    for (int i = 0; i < N; i++) {
        snprintf(sid, sizeof sid, "station-%d", i);
        assert_non_null(s_add(&ss, sid, NULL));
    }
    assert_int_equal(ss.len, N);
    /* Remove every index i with i*7 mod N (a permutation) for the first
     * half, checking the order of the survivors at the end. */
    static char gone[N];
    memset(gone, 0, sizeof gone);
    for (int k = 0; k < N / 2; k++) {
        int i = (k * 7) % N;
        snprintf(sid, sizeof sid, "station-%d", i);
        tw_station_t *st = s_get(&ss, sid);
        assert_non_null(st);
        tw_stations_remove(&ss, st);
        gone[i] = 1;
    }
    assert_int_equal(ss.len, N - N / 2);
    size_t at = 0;
    for (int i = 0; i < N; i++) {
        snprintf(sid, sizeof sid, "station-%d", i);
        tw_station_t *st = s_get(&ss, sid);
        if (gone[i]) {
            assert_null(st);
            continue;
        }
        assert_non_null(st);
        assert_ptr_equal(ss.all[at], st);
        at++;
    }
    tw_stations_destroy(&ss);
}

/* ---- checkpoint ------------------------------------------------------- */

/* The input is the checkpoint when there is one, else the args; a new
 * checkpoint replaces the old one (any length); an equal one changes
 * nothing; an empty one clears it and the input falls back to the args. */
static void
test_checkpoint_and_input(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 4);
    tw_station_t *st = s_add(&ss, "ck", "\x93\x01\x02\x03");
    s_expect_input(st, "\x93\x01\x02\x03", 4);

    unsigned char ck[5] = {0xa4, 'a', 'b', 'c', 'd'};
    tw_station_set_checkpoint(st, ck, 5);
    ck[1] = 'X'; /* copied */
    s_expect_input(st, "\xa4" "abcd", 5);
    assert_int_equal(st->ck_len, 5);

    void *before = st->ck;
    tw_station_set_checkpoint(st, "\xa4" "abcd", 5); /* same bytes */
    assert_ptr_equal(st->ck, before);
    s_expect_input(st, "\xa4" "abcd", 5);

    tw_station_set_checkpoint(st, "\x2a", 1); /* shorter */
    s_expect_input(st, "\x2a", 1);
    tw_station_set_checkpoint(st, "\xa6" "abcdef", 7); /* longer */
    s_expect_input(st, "\xa6" "abcdef", 7);
    tw_station_set_checkpoint(st, "\xa6" "abcdeX", 7); /* same length */
    s_expect_input(st, "\xa6" "abcdeX", 7);

    tw_station_set_checkpoint(st, NULL, 0); /* cleared: back to args */
    assert_null(st->ck);
    assert_int_equal(st->ck_len, 0);
    s_expect_input(st, "\x93\x01\x02\x03", 4);

    /* No args and no checkpoint: an empty input. */
    tw_station_t *bare = s_add(&ss, "bare", NULL);
    size_t len = 99;
    assert_null(tw_station_input(bare, &len));
    assert_int_equal(len, 0);
    tw_station_set_checkpoint(bare, "\xc0", 1);
    s_expect_input(bare, "\xc0", 1);
    tw_stations_destroy(&ss);
}

/* ---- n2s backlog ------------------------------------------------------ */

/* Pushes get seq 1, 2, 3... up to the limit; beyond it the push returns 0,
 * counts a drop and uses no seq. Data is copied. Clearing frees the
 * messages but keeps the numbering going, so a worker never sees a seq
 * twice. */
static void
test_n2s_queue(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 3);
    tw_station_t *st = s_add(&ss, "n", NULL);
    char msg[4] = {(char)0xa2, 'm', '1', 0};
    for (uint64_t i = 1; i <= 3; i++) {
        msg[2] = (char)('0' + i);
        assert_int_equal(tw_station_n2s_push(st, ss.n2s_limit, msg, 3), i);
    }
    msg[2] = 'Z';
    assert_int_equal(st->n2s_len, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(st->n2s[i].seq, i + 1);
        assert_int_equal(st->n2s[i].len, 3);
        char want[3] = {(char)0xa2, 'm', (char)('1' + i)};
        assert_memory_equal(st->n2s[i].data, want, 3);
    }
    /* Full: refused, counted, no seq used. */
    assert_int_equal(tw_station_n2s_push(st, ss.n2s_limit, msg, 3), 0);
    assert_int_equal(tw_station_n2s_push(st, ss.n2s_limit, msg, 3), 0);
    assert_int_equal(st->n2s_dropped, 2);
    assert_int_equal(st->n2s_len, 3);
    assert_int_equal(st->n2s_seq, 3);

    tw_station_n2s_clear(st);
    assert_int_equal(st->n2s_len, 0);
    assert_int_equal(tw_station_n2s_push(st, ss.n2s_limit, "\xc0", 1), 4);
    assert_int_equal(st->n2s_dropped, 2);

    /* A larger limit than the first allocation: the array grows and keeps
     * every message in order. */
    tw_station_t *big = s_add(&ss, "big", NULL);
    for (uint64_t i = 1; i <= 100; i++) {
        unsigned char v = (unsigned char)i;
        assert_int_equal(tw_station_n2s_push(big, 100, &v, 1), i);
    }
    assert_int_equal(tw_station_n2s_push(big, 100, "\x01", 1), 0);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(big->n2s[i].seq, i + 1);
        assert_int_equal(((unsigned char *)big->n2s[i].data)[0], i + 1);
    }

    /* Limit 0: everything is dropped. */
    tw_station_t *none = s_add(&ss, "none", NULL);
    assert_int_equal(tw_station_n2s_push(none, 0, "\x01", 1), 0);
    assert_int_equal(none->n2s_dropped, 1);
    assert_int_equal(none->n2s_seq, 0);

    /* Destroy frees whatever is still queued (the allocator checks). */
    tw_stations_destroy(&ss);
}

/* An empty n2s message (length 0) is queued like any other. */
static void
test_n2s_empty_message(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 2);
    tw_station_t *st = s_add(&ss, "e", NULL);
    static const char empty[1] = {0};
    assert_int_equal(tw_station_n2s_push(st, 2, empty, 0), 1);
    assert_int_equal(st->n2s[0].len, 0);
    tw_stations_destroy(&ss);
}

/* ---- restart policy --------------------------------------------------- */

/* "never" (the default): failed and done stay ended (S20, S23). */
static void
test_restart_never(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "never", NULL);
    assert_int_equal(st->restart, TW_RESTART_NEVER);
    for (uint64_t t = 0; t < 10; t++) {
        assert_false(tw_station_should_restart(st, TW_SS_FAILED, t * 1000));
        assert_false(tw_station_should_restart(st, TW_SS_DONE, t * 1000));
    }
    assert_int_equal(st->restarts, 0);
    assert_int_equal(st->restart_at_ms, 0);
    tw_stations_destroy(&ss);
}

/* "on-failure": a station that fails at once after each restart waits
 * 1, 2, 4, 8 and 16 s; the sixth failure within the window leaves it
 * failed. done does not restart it. */
static void
test_restart_on_failure_backoff(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "of", NULL);
    st->restart = TW_RESTART_ON_FAILURE;
    assert_false(tw_station_should_restart(st, TW_SS_DONE, 500));
    assert_int_equal(st->restarts, 0);

    const uint64_t delays[5] = {1000, 2000, 4000, 8000, 16000};
    uint64_t now = 100000;
    for (int i = 0; i < 5; i++) {
        assert_true(tw_station_should_restart(st, TW_SS_FAILED, now));
        assert_int_equal(st->restart_at_ms, now + delays[i]);
        assert_int_equal(st->restarts, (uint32_t)(i + 1));
        now = st->restart_at_ms; /* restarted on time, failed at once */
    }
    /* Sixth failure, 31 s after the first: more than 5 in 60 s. */
    assert_int_equal(now, 100000 + 31000);
    uint64_t at = st->restart_at_ms;
    assert_false(tw_station_should_restart(st, TW_SS_FAILED, now));
    assert_int_equal(st->restarts, 5);
    assert_int_equal(st->restart_at_ms, at); /* nothing scheduled */
    /* Every further failure in the window is refused as well. */
    assert_false(tw_station_should_restart(st, TW_SS_FAILED, now + 1000));
    tw_stations_destroy(&ss);
}

/* The window is counted from its first failure: a failure more than 60 s
 * after it starts a new window with the base delay again; one exactly
 * 60 s after still counts in the old window. */
static void
test_restart_window_reset(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "win", NULL);
    st->restart = TW_RESTART_ON_FAILURE;

    /* Three failures: delays 1, 2, 4 s. */
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 10000));
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 20000));
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 30000));
    assert_int_equal(st->restart_at_ms, 30000 + 4000);
    /* Exactly 60 s after the first: same window, fourth failure. */
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 70000));
    assert_int_equal(st->restart_at_ms, 70000 + 8000);
    /* 60.001 s after the first: a new window, base delay. */
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 70001));
    assert_int_equal(st->restart_at_ms, 70001 + 1000);
    assert_int_equal(st->burst, 1);
    assert_int_equal(st->burst_start_ms, 70001);

    /* A slow-failing station (a failure every 61 s) restarts forever,
     * always after the base delay. */
    uint64_t now = 70001;
    for (int i = 0; i < 20; i++) {
        now += 61000;
        assert_true(tw_station_should_restart(st, TW_SS_FAILED, now));
        assert_int_equal(st->restart_at_ms, now + 1000);
    }
    assert_int_equal(st->restarts, 5 + 20);

    /* Five quick failures in a fresh window are allowed, the sixth is
     * not, even though the previous windows were long. */
    now += 61000;
    for (int i = 0; i < 5; i++) {
        assert_true(tw_station_should_restart(st, TW_SS_FAILED, now + i));
    }
    assert_false(tw_station_should_restart(st, TW_SS_FAILED, now + 5));
    tw_stations_destroy(&ss);
}

/* "always": restarts after done with the base delay, however often, and
 * after failed with the same backoff and burst limit as on-failure. */
static void
test_restart_always(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "al", NULL);
    st->restart = TW_RESTART_ALWAYS;
    uint64_t now = 5000;
    for (int i = 0; i < 20; i++) {
        assert_true(tw_station_should_restart(st, TW_SS_DONE, now));
        assert_int_equal(st->restart_at_ms, now + TW_RESTART_BASE_MS);
        now += 10;
    }
    assert_int_equal(st->restarts, 20);
    assert_int_equal(st->burst, 0); /* done is not a failure */

    assert_true(tw_station_should_restart(st, TW_SS_FAILED, now));
    assert_int_equal(st->restart_at_ms, now + 1000);
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, now + 1));
    assert_int_equal(st->restart_at_ms, now + 1 + 2000);
    /* A done between failures restarts after the base delay and does not
     * reset the failure count. */
    assert_true(tw_station_should_restart(st, TW_SS_DONE, now + 2));
    assert_int_equal(st->restart_at_ms, now + 2 + 1000);
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, now + 3));
    assert_int_equal(st->restart_at_ms, now + 3 + 4000);
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, now + 4));
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, now + 5));
    assert_false(tw_station_should_restart(st, TW_SS_FAILED, now + 6));
    tw_stations_destroy(&ss);
}

/* A station's own base delay (the broker's --restart-base) replaces the
 * 1 s default: the failure backoff doubles from it and is capped at 60 s;
 * restarts after done use the base delay. */
static void
test_restart_base(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "base", NULL);
    st->restart = TW_RESTART_ALWAYS;
    st->restart_base_ms = 100;
    const uint64_t fast[5] = {100, 200, 400, 800, 1600};
    uint64_t now = 1000;
    for (int i = 0; i < 5; i++) {
        assert_true(tw_station_should_restart(st, TW_SS_FAILED, now));
        assert_int_equal(st->restart_at_ms, now + fast[i]);
        now = st->restart_at_ms;
    }
    assert_false(tw_station_should_restart(st, TW_SS_FAILED, now));
    assert_true(tw_station_should_restart(st, TW_SS_DONE, now));
    assert_int_equal(st->restart_at_ms, now + 100);

    /* A large base: the failure backoff never exceeds 60 s. */
    tw_station_t *slow = s_add(&ss, "slow", NULL);
    slow->restart = TW_RESTART_ON_FAILURE;
    slow->restart_base_ms = 40000;
    now = 0;
    const uint64_t capped[3] = {40000, TW_RESTART_MAX_MS, TW_RESTART_MAX_MS};
    for (int i = 0; i < 3; i++) {
        assert_true(tw_station_should_restart(slow, TW_SS_FAILED, now + i));
        assert_int_equal(slow->restart_at_ms, now + i + capped[i]);
    }
    tw_stations_destroy(&ss);
}

/* Stopped never restarts: a station whose operator asked it to stop
 * (wanted stopped) stays ended whatever the policy and however it ended
 * (S17); and the operator's ended states, stopped and cancelled (S17,
 * S18), never restart even under "always". */
static void
test_restart_stopped_never(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 1);
    tw_station_t *st = s_add(&ss, "stop", NULL);
    for (int r = TW_RESTART_NEVER; r <= TW_RESTART_ALWAYS; r++) {
        st->restart = (uint8_t)r;
        st->wanted = TW_WANT_STOPPED;
        assert_false(tw_station_should_restart(st, TW_SS_FAILED, 1000));
        assert_false(tw_station_should_restart(st, TW_SS_DONE, 1000));
        assert_false(tw_station_should_restart(st, TW_SS_STOPPED, 1000));
        assert_false(tw_station_should_restart(st, TW_SS_CANCELLED, 1000));
    }
    assert_int_equal(st->restarts, 0);
    assert_int_equal(st->burst, 0); /* refused failures are not counted */

    /* Wanted "paused" is not stopped: it restarts (and is assigned
     * paused). */
    st->restart = TW_RESTART_ON_FAILURE;
    st->wanted = TW_WANT_PAUSED;
    assert_true(tw_station_should_restart(st, TW_SS_FAILED, 2000));
    tw_stations_destroy(&ss);
}

/* The ended states the operator causes, stopped and cancelled (S17,
 * S18), are not restarted even under "always" with wanted still "run"
 * (stations.h: "STOPPED and CANCELLED come from the operator and never
 * restart"). The station lives on the stack: nothing to leak if this
 * fails. */
static void
test_restart_not_after_stopped_or_cancelled(void **state)
{
    (void)state;
    tw_station_t st;
    memset(&st, 0, sizeof st);
    st.restart = TW_RESTART_ALWAYS;
    st.wanted = TW_WANT_RUN;
    assert_false(tw_station_should_restart(&st, TW_SS_STOPPED, 3000));
    assert_false(tw_station_should_restart(&st, TW_SS_CANCELLED, 3000));
    st.restart = TW_RESTART_ON_FAILURE;
    assert_false(tw_station_should_restart(&st, TW_SS_STOPPED, 3000));
    assert_false(tw_station_should_restart(&st, TW_SS_CANCELLED, 3000));
    assert_int_equal(st.restarts, 0);
    assert_int_equal(st.restart_at_ms, 0);
}

/* ---- names ------------------------------------------------------------ */

static void
test_names_round_trip(void **state)
{
    (void)state;
    int (*parse[3])(const char *, size_t) = {tw_station_parse_next,
                                             tw_station_parse_placement,
                                             tw_station_parse_restart};
    const char *(*name[3])(int) = {tw_station_next_name,
                                   tw_station_placement_name,
                                   tw_station_restart_name};
    const char *const expect[3][3] = {{"same", "result", "handler"},
                                      {"any", "prefer", "pinned"},
                                      {"never", "on-failure", "always"}};
    for (int k = 0; k < 3; k++) {
        for (int v = 0; v < 3; v++) {
            const char *n = name[k](v);
            assert_string_equal(n, expect[k][v]);
            assert_int_equal(parse[k](n, strlen(n)), v);
            /* Exact match only: prefixes, extensions, case, padding. */
            assert_int_equal(parse[k](n, strlen(n) - 1), -1);
            char buf[32];
            snprintf(buf, sizeof buf, "%sx", n);
            assert_int_equal(parse[k](buf, strlen(buf)), -1);
            assert_int_equal(parse[k](buf, strlen(n)), v); /* length rules */
            snprintf(buf, sizeof buf, "%s", n);
            buf[0] = (char)(buf[0] - 'a' + 'A');
            assert_int_equal(parse[k](buf, strlen(buf)), -1);
            snprintf(buf, sizeof buf, " %s", n);
            assert_int_equal(parse[k](buf, strlen(buf)), -1);
        }
        assert_int_equal(parse[k]("", 0), -1);
        assert_string_equal(name[k](-1), "?");
        assert_string_equal(name[k](3), "?");
    }
    /* The enums and the wire values agree. */
    assert_int_equal(tw_station_parse_placement("pinned", 6),
                     TW_PLACE_PINNED);
    assert_int_equal(tw_station_parse_restart("on-failure", 10),
                     TW_RESTART_ON_FAILURE);

    const char *const states[] = {"pending", "waiting-for-host", "assigned",
                                  "running", "paused",           "stopped",
                                  "done",    "failed",           "cancelled"};
    for (int s = TW_SS_PENDING; s <= TW_SS_CANCELLED; s++) {
        assert_string_equal(tw_sstate_name(s), states[s]);
    }
    assert_string_equal(tw_sstate_name(-1), "?");
    assert_string_equal(tw_sstate_name(TW_SS_CANCELLED + 1), "?");
    assert_string_equal(tw_swant_name(TW_WANT_RUN), "run");
    assert_string_equal(tw_swant_name(TW_WANT_PAUSED), "paused");
    assert_string_equal(tw_swant_name(TW_WANT_STOPPED), "stopped");
    assert_string_equal(tw_swant_name(3), "?");
    assert_string_equal(tw_swant_name(-1), "?");
}

/* placed: the states that hold a slot; ended: stopped and after. */
static void
test_state_predicates(void **state)
{
    (void)state;
    tw_station_t st;
    memset(&st, 0, sizeof st);
    const int placed[] = {0, 0, 1, 1, 1, 0, 0, 0, 0};
    const int ended[] = {0, 0, 0, 0, 0, 1, 1, 1, 1};
    for (int s = TW_SS_PENDING; s <= TW_SS_CANCELLED; s++) {
        st.state = (uint8_t)s;
        assert_int_equal(tw_station_placed(&st), placed[s]);
        assert_int_equal(tw_station_ended(&st), ended[s]);
    }
}

/* Destroy frees everything a station can own: args, checkpoint, queued
 * n2s, code, tags, last error (the counting allocator checks). */
static void
test_destroy_frees_all(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 8);
    for (int i = 0; i < 100; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "d%d", i);
        tw_station_t *st = s_add(&ss, sid, "\x01");
        tw_station_set_checkpoint(st, "\x02", 1);
        tw_station_n2s_push(st, ss.n2s_limit, "\x03", 1);
        st->code = tw_strdup("A");
        st->ntags = 2;
        st->tags = tw_calloc(2, sizeof *st->tags);
        st->tags[0] = tw_strdup("zone");
        st->tags[1] = tw_strdup("eu");
        st->last_error = tw_strdup("boom");
        if (i % 3 == 0) {
            tw_stations_remove(&ss, st);
        }
    }
    tw_stations_destroy(&ss);
    assert_int_equal(ss.len, 0);
    assert_null(ss.all);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        S_TEST(test_add_get_remove),
        S_TEST(test_duplicate_sid_refused),
        S_TEST(test_many_stations),
        S_TEST(test_checkpoint_and_input),
        S_TEST(test_n2s_queue),
        S_TEST(test_n2s_empty_message),
        S_TEST(test_restart_never),
        S_TEST(test_restart_on_failure_backoff),
        S_TEST(test_restart_window_reset),
        S_TEST(test_restart_always),
        S_TEST(test_restart_base),
        S_TEST(test_restart_stopped_never),
        S_TEST(test_restart_not_after_stopped_or_cancelled),
        S_TEST(test_names_round_trip),
        S_TEST(test_state_predicates),
        S_TEST(test_destroy_frees_all),
    };
    return cmocka_run_group_tests_name("broker_stations", tests, NULL, NULL);
}
