/*  tests/unit/test_worker_procpool.c - the proc pools' state machine.
 *
 *  worker/procpool.h does no I/O and reads no clock, so these tests play
 *  the edge: every callback is recorded as a line of text ("spawn 0",
 *  "call 1 j2", "signal 0 TERM", "fail j1 cancelled"), time is a number
 *  passed in, and each test checks the exact sequence of actions for a
 *  sequence of events: start-up, dispatch and queueing, cancel with its
 *  grace, SIGTERM and SIGKILL, crashes and their backoff, protocol
 *  errors, failing pools and the stop. The process handler protocol is
 *  proto/PROTOCOL.md 15; rule numbers below are those of 15.5.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/log.h"
#include "tests/unit/support/suite.h"
#include "worker/procpool.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAXLOG 256
#define S_HELLO_MS 1000
#define S_GRACE_MS 300

typedef struct {
    tw_procpool_t *pp;
    char log[S_MAXLOG][160]; /* actions, in order */
    int n;
    int fail_spawn; /* spawns to refuse */
    tw_pp_job_t jobs[16];
    int next_note;
    char last_note[512];
} s_fx_t;

static void
s_add(s_fx_t *fx, const char *fmt, ...)
{
    assert_true(fx->n < S_MAXLOG);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fx->log[fx->n++], sizeof fx->log[0], fmt, ap);
    va_end(ap);
}

static int
s_jobno(s_fx_t *fx, const tw_pp_job_t *j)
{
    return (int)(j - fx->jobs);
}

static int
s_spawn(void *ud, unsigned child, unsigned pool, char *err, size_t errlen)
{
    s_fx_t *fx = ud;
    if (fx->fail_spawn > 0) {
        fx->fail_spawn--;
        snprintf(err, errlen, "cannot run 'nope': no such file");
        s_add(fx, "spawn %u failed", child);
        return TW_ENOENT;
    }
    (void)pool;
    s_add(fx, "spawn %u", child);
    return 0;
}

static void
s_call(void *ud, unsigned child, tw_pp_job_t *job)
{
    s_fx_t *fx = ud;
    s_add(fx, "call %u j%d", child, s_jobno(fx, job));
}

static void
s_cancel(void *ud, unsigned child, tw_pp_job_t *job)
{
    s_fx_t *fx = ud;
    s_add(fx, "cancel %u j%d", child, s_jobno(fx, job));
}

static void
s_shutdown(void *ud, unsigned child)
{
    s_add(ud, "shutdown %u", child);
}

static void
s_signal(void *ud, unsigned child, int sig)
{
    s_add(ud, "signal %u %s", child, sig == SIGKILL ? "KILL" : "TERM");
}

static void
s_fail(void *ud, tw_pp_job_t *job, const char *msg)
{
    s_fx_t *fx = ud;
    s_add(fx, "fail j%d %s", s_jobno(fx, job), msg);
}

static void
s_note(void *ud, unsigned child, int level, const char *msg)
{
    s_fx_t *fx = ud;
    (void)child;
    (void)level;
    snprintf(fx->last_note, sizeof fx->last_note, "%s", msg);
}

static const tw_pp_ops_t s_ops = {
    .spawn = s_spawn,
    .send_call = s_call,
    .send_cancel = s_cancel,
    .send_shutdown = s_shutdown,
    .signal = s_signal,
    .fail = s_fail,
    .note = s_note,
};

/* The log so far, as one string, then cleared. */
static const char *
s_take(s_fx_t *fx)
{
    static char all[S_MAXLOG * 160];
    all[0] = '\0';
    for (int i = 0; i < fx->n; i++) {
        if (i) {
            strcat(all, "; ");
        }
        strcat(all, fx->log[i]);
    }
    fx->n = 0;
    return all;
}

static s_fx_t *
s_new(size_t npools, const unsigned *counts)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    fx->pp =
        tw_procpool_new(npools, counts, S_HELLO_MS, S_GRACE_MS, &s_ops, fx);
    return fx;
}

static void
s_free(s_fx_t *fx)
{
    tw_procpool_free(&fx->pp);
    free(fx);
}

/* Child `c` says hello with the names in `csv` ("a,b"). */
static int
s_hello(s_fx_t *fx, unsigned c, const char *csv, uint64_t now)
{
    const char *names[16];
    size_t lens[16];
    int flags[16];
    size_t n = 0;
    const char *p = csv;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        names[n] = p;
        lens[n] = len;
        flags[n] = (len > 4 && !memcmp(p, "n2s.", 4)) ? TW_PP_F_N2S : 0;
        n++;
        p += len + (e != NULL);
    }
    char err[256];
    return tw_procpool_hello(fx->pp, c, names, lens, flags, n, now, err,
                             sizeof err);
}

/* Submit job `j` for handler `hid`. */
static int
s_submit(s_fx_t *fx, int j, unsigned hid, uint64_t now)
{
    char err[256];
    fx->jobs[j].hid = hid;
    return tw_procpool_submit(fx->pp, &fx->jobs[j], now, err, sizeof err);
}

/* One pool of `count`, every child greeted with "a,b". */
static s_fx_t *
s_ready(unsigned count)
{
    s_fx_t *fx = s_new(1, &count);
    tw_procpool_start(fx->pp, 0);
    for (unsigned c = 0; c < count; c++) {
        assert_int_equal(s_hello(fx, c, "a,b", 0), 0);
    }
    s_take(fx);
    return fx;
}

/* Tests ------------------------------------------------------------------- */

/* Start-up: every child is spawned, the pool's names come from its first
 * hello, and start-up is over once every pool has them (15.5 rule 2). */
static void
test_startup(void **state)
{
    (void)state;
    unsigned counts[2] = {2, 1};
    s_fx_t *fx = s_new(2, counts);
    tw_procpool_start(fx->pp, 5);
    assert_string_equal(s_take(fx), "spawn 0; spawn 1; spawn 2");
    char err[256];
    assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), 0);
    assert_int_equal(s_hello(fx, 1, "a,b", 10), 0);
    assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), 0);
    assert_int_equal(s_hello(fx, 2, "b,n2s.c", 10), 0);
    assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), 1);
    assert_int_equal(tw_procpool_nnames(fx->pp), 3);
    size_t len;
    assert_memory_equal(tw_procpool_name(fx->pp, 2, &len), "n2s.c", 5);
    assert_int_equal(tw_procpool_flags(fx->pp, 2), TW_PP_F_N2S);
    assert_int_equal(tw_procpool_flags(fx->pp, 0), 0);
    assert_int_equal(tw_procpool_pool_of(fx->pp, 2), 1);
    /* Child 0 is still in its hello: no call for it. */
    assert_int_equal(tw_procpool_idle(fx->pp), 2);
    assert_string_equal(s_take(fx), "");
    s_free(fx);
}

/* A call goes to an idle child of a pool offering its handler; others
 * wait in order and start when a child is free and the engine runs. */
static void
test_dispatch_and_queue(void **state)
{
    (void)state;
    unsigned counts[2] = {1, 1};
    s_fx_t *fx = s_new(2, counts);
    tw_procpool_start(fx->pp, 0);
    assert_int_equal(s_hello(fx, 0, "a", 0), 0);
    assert_int_equal(s_hello(fx, 1, "a,b", 0), 0);
    s_take(fx);
    /* "b" (hid 1) only in pool 1. */
    assert_int_equal(s_submit(fx, 1, 1, 1), 0);
    assert_int_equal(s_submit(fx, 2, 0, 1), 0);
    assert_int_equal(s_submit(fx, 3, 0, 1), 0);
    assert_int_equal(s_submit(fx, 4, 1, 1), 0);
    assert_string_equal(s_take(fx), "call 1 j1; call 0 j2");
    assert_int_equal(tw_procpool_run(fx->pp, 2), -1);
    assert_string_equal(s_take(fx), "");
    /* Child 1 finishes j1: the run gives it j3 (first in the queue that
     * it can run), and j4 waits for it again. */
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 1, 3), &fx->jobs[1]);
    assert_string_equal(s_take(fx), "");
    assert_int_equal(tw_procpool_run(fx->pp, 3), -1);
    assert_string_equal(s_take(fx), "call 1 j3");
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 0, 4), &fx->jobs[2]);
    tw_procpool_run(fx->pp, 4);
    assert_string_equal(s_take(fx), ""); /* child 0 cannot run "b" */
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 1, 5), &fx->jobs[3]);
    tw_procpool_run(fx->pp, 5);
    assert_string_equal(s_take(fx), "call 1 j4");
    assert_ptr_equal(tw_procpool_job(fx->pp, 1), &fx->jobs[4]);
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 1, 6), &fx->jobs[4]);
    /* An outcome with no call running is the caller's protocol error. */
    assert_null(tw_procpool_outcome(fx->pp, 1, 7));
    tw_procpool_stats_t st;
    tw_procpool_stats(fx->pp, &st);
    assert_int_equal(st.calls, 4);
    assert_int_equal(st.waited, 2);
    s_free(fx);
}

/* A queued call that is cancelled fails at once without a child. */
static void
test_cancel_queued(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    s_submit(fx, 1, 0, 1);
    s_submit(fx, 2, 0, 1);
    tw_procpool_cancel(fx->pp, &fx->jobs[2], 2);
    assert_string_equal(s_take(fx), "call 0 j1; fail j2 cancelled");
    tw_procpool_outcome(fx->pp, 0, 3);
    tw_procpool_run(fx->pp, 3);
    assert_string_equal(s_take(fx), "");
    s_free(fx);
}

/* 15.5 rule 4: a running call that is cancelled gets a cancel frame; a
 * child that answers within the grace keeps its place. */
static void
test_cancel_answered(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    s_submit(fx, 1, 0, 100);
    tw_procpool_cancel(fx->pp, &fx->jobs[1], 110);
    tw_procpool_cancel(fx->pp, &fx->jobs[1], 120); /* again: nothing */
    assert_string_equal(s_take(fx), "call 0 j1; cancel 0 j1");
    assert_int_equal(tw_procpool_run(fx->pp, 200), 110 + S_GRACE_MS - 200);
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 0, 250), &fx->jobs[1]);
    assert_int_equal(tw_procpool_run(fx->pp, 250), -1);
    assert_int_equal(tw_procpool_run(fx->pp, 10000), -1);
    assert_string_equal(s_take(fx), "");
    assert_int_equal(tw_procpool_idle(fx->pp), 1);
    s_free(fx);
}

/* 15.5 rule 4: no answer within the grace: SIGTERM, then SIGKILL after
 * the grace again; the call ends when the child is gone and the child is
 * replaced at once (its death was the worker's doing). */
static void
test_cancel_unanswered(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    s_submit(fx, 1, 0, 0);
    tw_procpool_cancel(fx->pp, &fx->jobs[1], 1000);
    assert_string_equal(s_take(fx), "call 0 j1; cancel 0 j1");
    tw_procpool_run(fx->pp, 1000 + S_GRACE_MS - 1);
    assert_string_equal(s_take(fx), "");
    assert_int_equal(tw_procpool_run(fx->pp, 1000 + S_GRACE_MS), S_GRACE_MS);
    assert_string_equal(s_take(fx), "signal 0 TERM");
    assert_int_equal(tw_procpool_run(fx->pp, 1000 + 2 * S_GRACE_MS), -1);
    assert_string_equal(s_take(fx), "signal 0 KILL");
    tw_procpool_exited(fx->pp, 0, "killed by signal 9", 1700);
    assert_string_equal(s_take(fx), "fail j1 cancelled");
    tw_procpool_closed(fx->pp, 0, 1701);
    assert_int_equal(tw_procpool_run(fx->pp, 1701), S_HELLO_MS);
    assert_string_equal(s_take(fx), "spawn 0");
    tw_procpool_stats_t st;
    tw_procpool_stats(fx->pp, &st);
    assert_int_equal(st.crashes, 0);
    assert_int_equal(st.terms, 1);
    assert_int_equal(st.kills, 1);
    s_free(fx);
}

/* A child that answers its cancel by exiting is replaced at once too. */
static void
test_cancel_exit(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    s_submit(fx, 1, 0, 0);
    tw_procpool_cancel(fx->pp, &fx->jobs[1], 10);
    tw_procpool_exited(fx->pp, 0, "exit status 0", 20);
    tw_procpool_closed(fx->pp, 0, 21);
    tw_procpool_run(fx->pp, 21);
    assert_string_equal(s_take(fx),
                        "call 0 j1; cancel 0 j1; fail j1 cancelled; spawn 0");
    s_free(fx);
}

/* 15.5 rule 5: a child that dies mid-call fails the call with how it
 * ended, and restarts after 100 ms, doubling on each failure in a row;
 * a finished call resets the backoff. */
static void
test_crash_backoff(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    s_submit(fx, 1, 0, 0);
    tw_procpool_exited(fx->pp, 0, "exit status 3: boom", 50);
    assert_string_equal(s_take(fx),
                        "call 0 j1; fail j1 proc child exited while running "
                        "the call: exit status 3: boom");
    tw_procpool_closed(fx->pp, 0, 60);
    assert_int_equal(tw_procpool_run(fx->pp, 60), 100);
    assert_string_equal(s_take(fx), "");
    /* A call now waits for the child. */
    s_submit(fx, 2, 0, 61);
    assert_string_equal(s_take(fx), "");
    tw_procpool_run(fx->pp, 160);
    assert_string_equal(s_take(fx), "spawn 0");
    s_hello(fx, 0, "a,b", 170);
    tw_procpool_run(fx->pp, 170);
    assert_string_equal(s_take(fx), "call 0 j2");
    tw_procpool_exited(fx->pp, 0, "killed by signal 11", 180);
    tw_procpool_closed(fx->pp, 0, 180);
    assert_int_equal(tw_procpool_run(fx->pp, 180), 200);
    tw_procpool_run(fx->pp, 380);
    s_hello(fx, 0, "a,b", 390);
    s_submit(fx, 3, 0, 390);
    tw_procpool_exited(fx->pp, 0, "killed by signal 11", 400);
    tw_procpool_closed(fx->pp, 0, 400);
    assert_int_equal(tw_procpool_run(fx->pp, 400), 400);
    tw_procpool_run(fx->pp, 800);
    s_hello(fx, 0, "a,b", 810);
    s_submit(fx, 4, 0, 810);
    tw_procpool_outcome(fx->pp, 0, 820); /* a call done: backoff reset */
    tw_procpool_exited(fx->pp, 0, "exit status 1", 830);
    tw_procpool_closed(fx->pp, 0, 830);
    assert_int_equal(tw_procpool_run(fx->pp, 830), 100);
    s_take(fx);
    s_free(fx);
}

/* The backoff stops doubling at 5 s, and a child that lived 10 s
 * restarts after 100 ms again. */
static void
test_backoff_cap_and_healthy(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    uint64_t now = 0;
    uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tw_procpool_exited(fx->pp, 0, "exit status 1", now);
        tw_procpool_closed(fx->pp, 0, now);
        assert_int_equal(tw_procpool_run(fx->pp, now), want[i]);
        now += want[i];
        tw_procpool_run(fx->pp, now);
        assert_int_equal(s_hello(fx, 0, "a,b", now), 0);
    }
    now += TW_PP_HEALTHY_MS;
    tw_procpool_exited(fx->pp, 0, "exit status 1", now);
    tw_procpool_closed(fx->pp, 0, now);
    assert_int_equal(tw_procpool_run(fx->pp, now), 100);
    s_free(fx);
}

/* 15.5 rules 1 and 2: no hello in time is a failure before the hello;
 * three in a row make the pool failing: start-up fails with the last
 * error, calls only it runs fail at once; a hello heals it. */
static void
test_hello_timeout_failing(void **state)
{
    (void)state;
    unsigned count = 1;
    s_fx_t *fx = s_new(1, &count);
    tw_procpool_start(fx->pp, 0);
    assert_int_equal(tw_procpool_run(fx->pp, 0), S_HELLO_MS);
    uint64_t now = S_HELLO_MS;
    uint64_t backoff = 100;
    char err[256];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), 0);
        tw_procpool_run(fx->pp, now);
        assert_string_equal(s_take(fx), "spawn 0; signal 0 KILL");
        tw_procpool_exited(fx->pp, 0, "killed by signal 9", now);
        tw_procpool_closed(fx->pp, 0, now);
        assert_int_equal(tw_procpool_run(fx->pp, now), (int64_t)backoff);
        now += backoff;
        backoff *= 2;
        tw_procpool_run(fx->pp, now);
        now += S_HELLO_MS;
    }
    assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), -1);
    assert_string_equal(err, "3 children in a row failed to start: no hello "
                             "within 1000 ms");
    s_free(fx);
}

/* A failing pool fails the calls only it can run, and takes new ones
 * again once a child of it says hello. */
static void
test_failing_pool_calls(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    /* The child dies idle; its successors die before their hello. */
    tw_procpool_exited(fx->pp, 0, "exit status 1", 0);
    s_submit(fx, 1, 0, 1);
    uint64_t now = 1;
    for (int i = 0; i < 3; i++) {
        tw_procpool_closed(fx->pp, 0, now);
        now += 10000;
        tw_procpool_run(fx->pp, now);
        tw_procpool_exited(fx->pp, 0, "exit status 2: ImportError", now);
    }
    assert_string_equal(s_take(fx),
                        "spawn 0; spawn 0; spawn 0; fail j1 proc pool 0 "
                        "cannot start a child: exited before its hello: "
                        "exit status 2: ImportError");
    char err[256];
    fx->jobs[2].hid = 0;
    assert_int_equal(
        tw_procpool_submit(fx->pp, &fx->jobs[2], now, err, sizeof err),
        TW_EAGAIN);
    tw_procpool_closed(fx->pp, 0, now);
    tw_procpool_run(fx->pp, now + 10000);
    assert_int_equal(s_hello(fx, 0, "a,b", now + 10000), 0);
    assert_int_equal(s_submit(fx, 2, 0, now + 10000), 0);
    assert_string_equal(s_take(fx), "spawn 0; call 0 j2");
    s_free(fx);
}

/* A program that cannot be started counts as a start failure too. */
static void
test_spawn_failure(void **state)
{
    (void)state;
    unsigned count = 1;
    s_fx_t *fx = s_new(1, &count);
    fx->fail_spawn = 3;
    tw_procpool_start(fx->pp, 0);
    tw_procpool_closed(fx->pp, 0, 0);
    tw_procpool_run(fx->pp, 100);
    tw_procpool_closed(fx->pp, 0, 100);
    tw_procpool_run(fx->pp, 300);
    tw_procpool_closed(fx->pp, 0, 300);
    assert_string_equal(s_take(fx),
                        "spawn 0 failed; spawn 0 failed; spawn 0 failed");
    char err[256];
    assert_int_equal(tw_procpool_started(fx->pp, err, sizeof err), -1);
    assert_string_equal(err, "3 children in a row failed to start: cannot "
                             "run 'nope': no such file");
    s_free(fx);
}

/* 15.5 rule 6: a protocol error fails the call, kills the child and is a
 * failure; its exit does not fail the call twice. */
static void
test_bad_frame(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(2);
    s_submit(fx, 1, 1, 0);
    tw_procpool_bad(fx->pp, 0, "not a map", 5);
    tw_procpool_bad(fx->pp, 0, "again", 6); /* dying already: nothing */
    assert_string_equal(s_take(fx),
                        "call 0 j1; signal 0 KILL; fail j1 protocol error "
                        "from proc child: not a map");
    assert_string_equal(fx->last_note, "protocol error: not a map; killing "
                                       "it");
    assert_int_equal(tw_procpool_talking(fx->pp, 0), 0);
    assert_int_equal(tw_procpool_talking(fx->pp, 1), 1);
    tw_procpool_exited(fx->pp, 0, "killed by signal 9", 7);
    tw_procpool_closed(fx->pp, 0, 8);
    assert_int_equal(tw_procpool_run(fx->pp, 8), 100);
    assert_string_equal(s_take(fx), "");
    tw_procpool_stats_t st;
    tw_procpool_stats(fx->pp, &st);
    assert_int_equal(st.bad, 1);
    assert_int_equal(st.crashes, 1);
    s_free(fx);
}

/* A later child must offer every name of its pool; a second hello is a
 * protocol error too. */
static void
test_hello_rules(void **state)
{
    (void)state;
    unsigned count = 3;
    s_fx_t *fx = s_new(1, &count);
    tw_procpool_start(fx->pp, 0);
    s_take(fx);
    assert_int_equal(s_hello(fx, 0, "a,b", 1), 0);
    assert_int_equal(s_hello(fx, 1, "b,a,extra", 1), 0);
    assert_int_equal(tw_procpool_nnames(fx->pp), 2); /* extra ignored */
    assert_int_equal(s_hello(fx, 2, "a", 1), TW_EINVAL);
    assert_string_equal(s_take(fx), "signal 2 KILL");
    assert_string_equal(fx->last_note, "protocol error: its hello lacks "
                                       "handler 'b' that this pool "
                                       "announced; killing it");
    assert_int_equal(s_hello(fx, 0, "a,b", 2), TW_EINVAL);
    assert_string_equal(s_take(fx), "signal 0 KILL");
    s_free(fx);
}

/* 15.5 rule 7: a stop fails what waits, sends shutdown to idle children
 * (busy ones after their call), never spawns again, and escalates to
 * SIGTERM and SIGKILL for children that stay. */
static void
test_stop(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(3);
    s_submit(fx, 1, 0, 0);
    s_submit(fx, 2, 0, 0);
    s_submit(fx, 3, 0, 0);
    s_submit(fx, 4, 0, 0);
    tw_procpool_exited(fx->pp, 2, "exit status 1", 0); /* j3 fails */
    s_take(fx);
    tw_procpool_stop(fx->pp, 100);
    assert_string_equal(s_take(fx),
                        "fail j4 the worker is stopping; cancel 0 j1; cancel 1 j2");
    char err[256];
    fx->jobs[5].hid = 0;
    assert_int_equal(
        tw_procpool_submit(fx->pp, &fx->jobs[5], 100, err, sizeof err),
        TW_EAGAIN);
    assert_string_equal(err, "the worker is stopping");
    /* Child 0 answers: shutdown; child 1 does not. */
    tw_procpool_outcome(fx->pp, 0, 110);
    tw_procpool_run(fx->pp, 110);
    assert_string_equal(s_take(fx), "shutdown 0");
    tw_procpool_closed(fx->pp, 2, 120);
    tw_procpool_exited(fx->pp, 0, "exit status 0", 130);
    tw_procpool_closed(fx->pp, 0, 130);
    tw_procpool_run(fx->pp, 100 + S_GRACE_MS);
    assert_string_equal(s_take(fx), "signal 1 TERM");
    tw_procpool_run(fx->pp, 100 + 2 * S_GRACE_MS);
    assert_string_equal(s_take(fx), "signal 1 KILL");
    tw_procpool_exited(fx->pp, 1, "killed by signal 9", 800);
    assert_string_equal(s_take(fx), "fail j2 cancelled");
    assert_int_equal(tw_procpool_live(fx->pp), 1);
    tw_procpool_closed(fx->pp, 1, 800);
    assert_int_equal(tw_procpool_live(fx->pp), 0);
    assert_int_equal(tw_procpool_run(fx->pp, 100000), -1);
    assert_string_equal(s_take(fx), "");
    s_free(fx);
}

/* An idle child that ignores shutdown is signalled after the grace. */
static void
test_stop_ignored(void **state)
{
    (void)state;
    s_fx_t *fx = s_ready(1);
    tw_procpool_stop(fx->pp, 0);
    assert_string_equal(s_take(fx), "shutdown 0");
    assert_int_equal(tw_procpool_run(fx->pp, 1), S_GRACE_MS - 1);
    tw_procpool_run(fx->pp, S_GRACE_MS);
    tw_procpool_run(fx->pp, 2 * S_GRACE_MS);
    assert_string_equal(s_take(fx), "signal 0 TERM; signal 0 KILL");
    s_free(fx);
}

/* A stop during start-up ends children still in their hello; one that
 * says hello anyway is told to go. */
static void
test_stop_starting(void **state)
{
    (void)state;
    unsigned count = 2;
    s_fx_t *fx = s_new(1, &count);
    tw_procpool_start(fx->pp, 0);
    s_take(fx);
    tw_procpool_stop(fx->pp, 10);
    assert_string_equal(s_take(fx), "signal 0 TERM; signal 1 TERM");
    tw_procpool_kill_all(fx->pp);
    assert_string_equal(s_take(fx), "signal 0 KILL; signal 1 KILL");
    s_free(fx);
}

/* Pipelines (PROTOCOL.md 15.9) ------------------------------------------- */

/* `count` children greeted with "a,b", each taking `depth` calls. */
static s_fx_t *
s_piped(unsigned count, unsigned depth)
{
    s_fx_t *fx = s_ready(count);
    for (unsigned c = 0; c < count; c++) {
        tw_procpool_set_depth(fx->pp, c, depth);
    }
    return fx;
}

/* Idle children first; then, when nothing waits, the least loaded busy
 * child with room; then the queue, which fills pipelines as outcomes
 * come, fewest held first. A child answers its calls in order. */
static void
test_pipeline_dispatch(void **state)
{
    (void)state;
    s_fx_t *fx = s_piped(2, 2);
    for (int j = 1; j <= 6; j++) {
        assert_int_equal(s_submit(fx, j, 0, 1), 0);
    }
    assert_string_equal(s_take(fx),
                        "call 0 j1; call 1 j2; call 0 j3; call 1 j4");
    assert_int_equal(tw_procpool_held(fx->pp, 0), 2);
    assert_ptr_equal(tw_procpool_job(fx->pp, 0), &fx->jobs[1]);
    assert_int_equal(tw_procpool_idle(fx->pp), 0);
    /* Child 1 answers j2 and j4 (j4 was in its pipe); child 0 nothing. */
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 1, 2), &fx->jobs[2]);
    assert_ptr_equal(tw_procpool_job(fx->pp, 1), &fx->jobs[4]);
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 1, 2), &fx->jobs[4]);
    assert_int_equal(tw_procpool_idle(fx->pp), 1);
    tw_procpool_run(fx->pp, 2);
    /* Idle child 1 first, then its pipeline; child 0 is full. */
    assert_string_equal(s_take(fx), "call 1 j5; call 1 j6");
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 0, 3), &fx->jobs[1]);
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 0, 3), &fx->jobs[3]);
    assert_null(tw_procpool_outcome(fx->pp, 0, 3));
    tw_procpool_stats_t st;
    tw_procpool_stats(fx->pp, &st);
    assert_int_equal(st.calls, 6);
    assert_int_equal(st.piped, 3);
    assert_int_equal(st.waited, 2);
    s_free(fx);
}

/* A solo call (a station iteration) goes to an idle child only, nothing
 * is sent behind it, and busy children take nothing queued behind a
 * waiting one, so the children drain for it. */
static void
test_pipeline_solo(void **state)
{
    (void)state;
    s_fx_t *fx = s_piped(2, 3);
    s_submit(fx, 1, 0, 0);
    fx->jobs[2].solo = 1;
    s_submit(fx, 2, 0, 0);
    s_submit(fx, 3, 0, 0);
    assert_string_equal(s_take(fx), "call 0 j1; call 1 j2; call 0 j3");
    fx->jobs[4].solo = 1;
    s_submit(fx, 4, 0, 0);
    s_submit(fx, 5, 0, 0);
    tw_procpool_run(fx->pp, 1);
    assert_string_equal(s_take(fx), ""); /* j5 waits behind j4 */
    tw_procpool_outcome(fx->pp, 0, 2);
    tw_procpool_run(fx->pp, 2);
    assert_string_equal(s_take(fx), ""); /* child 0 still runs j3 */
    tw_procpool_outcome(fx->pp, 1, 3);
    tw_procpool_run(fx->pp, 3);
    /* Child 1 takes j4 alone; j5 may now go behind j3. */
    assert_string_equal(s_take(fx), "call 1 j4; call 0 j5");
    assert_int_equal(tw_procpool_held(fx->pp, 1), 1);
    assert_int_equal(tw_procpool_held(fx->pp, 0), 2);
    s_free(fx);
}

/* A call cancelled while it waits in a child's pipe gets its cancel
 * frame at once, and its grace only once it is the child's first. */
static void
test_pipeline_cancel_behind(void **state)
{
    (void)state;
    s_fx_t *fx = s_piped(1, 2);
    s_submit(fx, 1, 0, 0);
    s_submit(fx, 2, 0, 0);
    tw_procpool_cancel(fx->pp, &fx->jobs[2], 10);
    tw_procpool_cancel(fx->pp, &fx->jobs[2], 11); /* again: nothing */
    assert_string_equal(s_take(fx), "call 0 j1; call 0 j2; cancel 0 j2");
    assert_int_equal(tw_procpool_run(fx->pp, 5000), -1); /* no grace yet */
    s_submit(fx, 3, 0, 5000);
    assert_string_equal(s_take(fx), ""); /* not behind a cancelled call */
    assert_ptr_equal(tw_procpool_outcome(fx->pp, 0, 6000), &fx->jobs[1]);
    assert_int_equal(tw_procpool_run(fx->pp, 6000), S_GRACE_MS);
    assert_string_equal(s_take(fx), "");
    tw_procpool_run(fx->pp, 6000 + S_GRACE_MS);
    assert_string_equal(s_take(fx), "signal 0 TERM");
    tw_procpool_exited(fx->pp, 0, "exit status 0", 6000 + S_GRACE_MS);
    assert_string_equal(s_take(fx), "fail j2 cancelled");
    tw_procpool_closed(fx->pp, 0, 6400);
    tw_procpool_run(fx->pp, 6400);
    s_hello(fx, 0, "a,b", 6400);
    tw_procpool_run(fx->pp, 6400);
    assert_string_equal(s_take(fx), "spawn 0; call 0 j3");
    s_free(fx);
}

/* A child that ends holding calls: its first fails, those behind it
 * (never started) go back to the front of the queue in order, and a
 * cancelled one fails; a protocol error does the same. */
static void
test_pipeline_take_back(void **state)
{
    (void)state;
    s_fx_t *fx = s_piped(2, 3);
    for (int j = 1; j <= 7; j++) {
        s_submit(fx, j, 0, 0);
    }
    assert_string_equal(s_take(fx), "call 0 j1; call 1 j2; call 0 j3; "
                                    "call 1 j4; call 0 j5; call 1 j6");
    tw_procpool_cancel(fx->pp, &fx->jobs[3], 1);
    s_take(fx);
    tw_procpool_exited(fx->pp, 0, "exit status 1", 2);
    assert_string_equal(s_take(fx),
                        "fail j3 cancelled; fail j1 proc child exited "
                        "while running the call: exit status 1");
    /* j5 is back before j7; child 1 takes them in that order. */
    tw_procpool_outcome(fx->pp, 1, 3);
    tw_procpool_run(fx->pp, 3);
    assert_string_equal(s_take(fx), "call 1 j5");
    tw_procpool_bad(fx->pp, 1, "not a map", 4);
    assert_string_equal(s_take(fx),
                        "signal 1 KILL; fail j4 protocol error from proc "
                        "child: not a map");
    tw_procpool_stats_t st;
    tw_procpool_stats(fx->pp, &st);
    assert_int_equal(st.requeued, 3); /* j5, then j6 and j5 again */
    /* Both children restart; the queue holds j6, j5, j7 in that order. */
    tw_procpool_exited(fx->pp, 1, "killed by signal 9", 5);
    tw_procpool_closed(fx->pp, 0, 5);
    tw_procpool_closed(fx->pp, 1, 5);
    tw_procpool_run(fx->pp, 1000);
    s_hello(fx, 0, "a,b", 1000);
    tw_procpool_set_depth(fx->pp, 0, 3);
    tw_procpool_run(fx->pp, 1000);
    assert_string_equal(s_take(fx),
                        "spawn 0; spawn 1; call 0 j6; call 0 j5; call 0 j7");
    s_free(fx);
}

/* A stop cancels every call a child holds. */
static void
test_pipeline_stop(void **state)
{
    (void)state;
    s_fx_t *fx = s_piped(1, 2);
    s_submit(fx, 1, 0, 0);
    s_submit(fx, 2, 0, 0);
    s_take(fx);
    tw_procpool_stop(fx->pp, 10);
    assert_string_equal(s_take(fx), "cancel 0 j1; cancel 0 j2");
    tw_procpool_outcome(fx->pp, 0, 20);
    tw_procpool_outcome(fx->pp, 0, 30);
    tw_procpool_run(fx->pp, 30);
    assert_string_equal(s_take(fx), "shutdown 0");
    s_free(fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup),
        cmocka_unit_test(test_dispatch_and_queue),
        cmocka_unit_test(test_cancel_queued),
        cmocka_unit_test(test_cancel_answered),
        cmocka_unit_test(test_cancel_unanswered),
        cmocka_unit_test(test_cancel_exit),
        cmocka_unit_test(test_crash_backoff),
        cmocka_unit_test(test_backoff_cap_and_healthy),
        cmocka_unit_test(test_hello_timeout_failing),
        cmocka_unit_test(test_failing_pool_calls),
        cmocka_unit_test(test_spawn_failure),
        cmocka_unit_test(test_bad_frame),
        cmocka_unit_test(test_hello_rules),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_stop_ignored),
        cmocka_unit_test(test_stop_starting),
        cmocka_unit_test(test_pipeline_dispatch),
        cmocka_unit_test(test_pipeline_solo),
        cmocka_unit_test(test_pipeline_cancel_behind),
        cmocka_unit_test(test_pipeline_take_back),
        cmocka_unit_test(test_pipeline_stop),
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
