/*  tests/integration/22-proc-faults.c - proc children that fail, hang,
 *  crash or break the protocol (proto/PROTOCOL.md 15.5), against a real
 *  broker and worker with one Perl child (tests/integration/proc/child.pl)
 *  and a grace of 300 ms:
 *   - a child that exits mid-task fails its task with the exit status and
 *     the end of its stderr, and is restarted (a new pid); the broker's
 *     retry policy applies: a task that crashed its first attempt
 *     succeeds on its second, one that always crashes ends after its
 *     last retry;
 *   - a child killed by a signal mid-task: the task names the signal;
 *   - a child that hangs past its task's timeout, ignoring the cancel
 *     frame and SIGTERM: the task times out at once, the child gets
 *     SIGTERM after the grace and SIGKILL after another, and is replaced;
 *   - a cancel reaches a running call: the child stops it and stays (the
 *     same pid serves the next task);
 *   - bad frames (a length over the limit, text on the frame stream, a
 *     body that is not a map, a map without "ev") fail the task with a
 *     protocol error and replace the child, without harm to the worker;
 *     a frame with an unknown "ev" is ignored; an outcome when no call
 *     runs kills the child but keeps the task's first result;
 *   - an idle child killed from outside is restarted.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static tw_client_t *s_c;
static pid_t s_w;

static tw_result_t *
s_run(const char *h, const char *arg, uint32_t timeout_ms, uint32_t retries)
{
    return tw_h_outcome(s_c, tw_h_submit_str(s_c, h, arg, timeout_ms, retries),
                        30000);
}

/* The pid of the (one) child, asked through a task. */
static int
s_child_pid(void)
{
    tw_result_t *r = s_run("pl.info", NULL, 0, 0);
    TW_H_ASSERT_MSG(r->state == 0, "pl.info: %s", r->error);
    int pid = (int)tw_h_result_field_int(r, "pid");
    TW_H_ASSERT(pid > 0);
    tw_result_free(&r);
    return pid;
}

static void
s_wait_log(const char *text)
{
    uint64_t t0 = tw_h_now_ms();
    while (!tw_h_log_contains(s_w, text)) {
        TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 10000,
                        "no '%s' in the worker's log", text);
        tw_h_sleep_ms(20);
    }
}

static void
s_expect_error(tw_result_t *r, const char *want)
{
    TW_H_ASSERT_MSG(r->state == 1 && r->error && strstr(r->error, want),
                    "state %d, error '%s', wanted '%s'", r->state,
                    r->error ? r->error : "", want);
    tw_result_free(&r);
}

static void
s_crashes(void)
{
    int pid = s_child_pid();
    s_expect_error(s_run("pl.crash", NULL, 0, 0),
                   "proc child exited while running the call: exit status "
                   "3: crashing now, as asked");
    s_wait_log("exited while running a call: exit status 3");
    int pid2 = s_child_pid();
    TW_H_ASSERT_MSG(pid2 != pid, "the crashed child %d was not replaced",
                    pid);

    /* Retries: the second attempt runs on the restarted child. */
    tw_result_t *r = s_run("pl.flaky", NULL, 0, 1);
    TW_H_ASSERT_MSG(r->state == 0, "flaky: %s", r->error);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "ok on attempt 2");
    TW_H_ASSERT_EQ(r->attempt, 2);
    tw_result_free(&r);
    r = s_run("pl.crash", NULL, 0, 1);
    TW_H_ASSERT_EQ(r->attempt, 2);
    s_expect_error(r, "exit status 3");

    /* Killed by a signal while running (one child: the one asked). */
    int busy = s_child_pid();
    uint64_t seq = tw_h_submit_str(s_c, "pl.sleep", "30", 0, 0);
    uint64_t id = tw_h_wait_acked(s_c, seq, 5000);
    TW_H_ASSERT_OK(tw_h_wait_state(s_c, id, TW_ST_RUNNING, 5000));
    TW_H_ASSERT_EQ(tw_h_kill(busy, SIGKILL), 0);
    s_expect_error(tw_h_outcome(s_c, seq, 30000),
                   "proc child exited while running the call: killed by "
                   "signal 9");
    TW_H_ASSERT(s_child_pid() != busy);
}

/* A hang past the timeout: cancel, SIGTERM, SIGKILL, replaced. */
static void
s_hang(void)
{
    int pid = s_child_pid();
    uint64_t t0 = tw_h_now_ms();
    tw_result_t *r = s_run("pl.hang", NULL, 300, 0);
    TW_H_ASSERT_EQ(r->state, 2);
    TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 15000, "the timeout took %llu ms",
                    (unsigned long long)(tw_h_now_ms() - t0));
    tw_result_free(&r);
    s_wait_log("no answer to cancel within 300 ms: SIGTERM");
    s_wait_log("still there 300 ms after SIGTERM: SIGKILL");
    TW_H_ASSERT(s_child_pid() != pid);
}

/* A cancel reaches the running call, and the child keeps serving. */
static void
s_cancel(void)
{
    int pid = s_child_pid();
    uint64_t seq = tw_h_submit_str(s_c, "pl.sleep", "30", 0, 0);
    uint64_t id = tw_h_wait_acked(s_c, seq, 5000);
    TW_H_ASSERT_OK(tw_h_wait_state(s_c, id, TW_ST_RUNNING, 5000));
    uint64_t t0 = tw_h_now_ms();
    TW_H_ASSERT_OK(tw_client_cancel(s_c, &id, 1, 5000));
    tw_result_t *r = tw_h_outcome(s_c, seq, 30000);
    TW_H_ASSERT_EQ(r->state, 3);
    tw_result_free(&r);
    /* Within the grace (no SIGTERM): the child answered the cancel. */
    TW_H_ASSERT_EQ(s_child_pid(), pid);
    TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 15000, "cancel took %llu ms",
                    (unsigned long long)(tw_h_now_ms() - t0));
}

static void
s_bad_frames(void)
{
    static const struct {
        const char *what, *want;
    } bad[] = {
        {"big", "protocol error from proc child: a frame length of "
                "2147483647"},
        {"text", "text written to the frame stream?"},
        {"notmap", "protocol error from proc child: not a map"},
        {"noev", "protocol error from proc child: no str \"ev\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int pid = s_child_pid();
        s_expect_error(s_run("pl.bad", bad[i].what, 0, 0), bad[i].want);
        TW_H_ASSERT_MSG(s_child_pid() != pid, "%s: child not replaced",
                        bad[i].what);
    }
    /* An unknown "ev" is ignored. */
    int pid = s_child_pid();
    tw_result_t *r = s_run("pl.bad", "unknown", 0, 0);
    TW_H_ASSERT_MSG(r->state == 0, "unknown ev: %s", r->error);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "survived");
    tw_result_free(&r);
    s_wait_log("ignored a frame with an unknown ev 'bogus'");
    TW_H_ASSERT_EQ(s_child_pid(), pid);
    /* Two results for one call: the first counts, the child goes. */
    r = s_run("pl.bad", "twice", 0, 0);
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(tw_h_result_int(r), 1);
    tw_result_free(&r);
    s_wait_log("protocol error: a result when no call runs");
    TW_H_ASSERT(s_child_pid() != pid);
}

/* An idle child killed from outside is restarted. */
static void
s_idle_kill(void)
{
    int pid = s_child_pid();
    TW_H_ASSERT_EQ(tw_h_kill(pid, SIGKILL), 0);
    /* Reaped: the worker has seen the exit (a call sent before that
     * would fail with it, as it should). */
    uint64_t t0 = tw_h_now_ms();
    while (kill(pid, 0) == 0) {
        TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 10000, "child %d not reaped",
                        pid);
        tw_h_sleep_ms(5);
    }
    char want[64];
    snprintf(want, sizeof want, "(pid %d, ", pid);
    s_wait_log(want);
    s_wait_log("exited: killed by signal 9; restarting in");
    TW_H_ASSERT(s_child_pid() != pid);
}

int
main(void)
{
    tw_h_init("22-proc-faults");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "perl -I '%s/examples/proc' '%s/tests/integration/proc/child.pl'",
             TW_SOURCE_DIR, TW_SOURCE_DIR);
    const char *extra[] = {"--proc",       cmd, "--proc-count", "1",
                           "--proc-grace", "300", NULL};
    s_w = tw_h_start_worker(&b, 2, extra);
    TW_H_ASSERT(s_w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 20000));
    s_c = tw_client_new(b.frontend);
    tw_h_track_results(s_c);

    s_crashes();
    s_hang();
    s_cancel();
    s_bad_frames();
    s_idle_kill();

    TW_H_ASSERT(tw_h_alive(s_w));
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(s_w), 0);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("22-proc-faults: ok\n");
    return 0;
}
