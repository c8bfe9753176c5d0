/*  tests/fault/02-worker-stop.c - a worker frozen (SIGSTOP) past the
 *  failure timeout, then thawed (SIGCONT): its work is done elsewhere and
 *  its late outcomes change nothing.
 *
 *  Three workers of 8 slots run 600 sleep tasks of 250 ms (long enough
 *  that a stopped worker is always in the middle of some). One worker is
 *  stopped while it holds tasks; the broker (heartbeat 1 s, liveness 2)
 *  declares it dead after 2 s of silence and requeues its tasks to the
 *  others. The test resumes it the moment worker.down arrives on the
 *  status stream, so it is back before its own 3-heartbeat bound on the
 *  broker's silence: it finishes what it was running and reports it in a
 *  DONE from a registration the broker no longer has. Those items must be
 *  counted as duplicates (stats "duplicates") and ignored; the worker then
 *  registers again (EWORKER, HELLO). In the end the broker's counts are
 *  exact (completed = submitted, nothing queued or running) and every
 *  task has exactly one outcome at its client.
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdlib.h>

#define S_TASKS 600

int
main(void)
{
    tw_h_init("fault-worker-stop");
    tw_h_broker_t b;
    const char *opts[] = {"--heartbeat", "1000", "--liveness", "2", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    const char *topics[] = {"worker.", NULL};
    tw_fault_sub_t *sub = tw_fault_sub_new(b.status, topics);
    pid_t w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = tw_h_start_worker(&b, 8, NULL);
        TW_H_ASSERT(w[i] > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 3, 10000));

    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c != NULL);
    static tw_fault_t f;
    tw_fault_init(&f, "worker-stop", c, S_TASKS + 100);
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 0.25);
    tw_task_spec_t spec = {.handler = "sleep", .args = secs,
                           .args_len = sl};
    tw_fault_submit(&f, c, &spec, S_TASKS);
    uint64_t end = tw_h_now_ms() + 30000;
    while (tw_fault_completed(&f) < 48 && tw_h_now_ms() < end) {
        tw_client_poll(c, 10);
    }
    TW_H_ASSERT(tw_fault_completed(&f) >= 48);
    long long dup0 = -1;
    TW_H_ASSERT_OK(tw_h_status_field(c, "duplicates", &dup0));

    /* Freeze w1 while it is busy; thaw it when the broker gives up. */
    TW_H_ASSERT_OK(tw_h_kill(w[0], SIGSTOP));
    uint64_t stopped_at = tw_h_now_ms();
    tw_fault_event_t ev;
    uint64_t down_at = 0;
    end = tw_h_now_ms() + 15000;
    while (down_at == 0 && tw_h_now_ms() < end) {
        tw_client_poll(c, 0);
        if (tw_fault_sub_next(sub, &ev, 10) &&
            strcmp(ev.topic, "worker.down") == 0 &&
            strcmp(ev.name, "w1") == 0) {
            down_at = ev.at;
        }
    }
    TW_H_ASSERT_OK(tw_h_kill(w[0], SIGCONT));
    TW_H_ASSERT_MSG(down_at != 0, "w1 was not declared dead in 15 s");
    printf("worker-stop: w1 stopped %llu ms (liveness 2 x 1000 ms)\n",
           (unsigned long long)(down_at - stopped_at));
    TW_H_ASSERT(down_at - stopped_at >= 2000);

    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));
    /* The thawed worker reports late, then registers again. */
    int back = 0;
    long long dup = 0;
    end = tw_h_now_ms() + 10000;
    while (tw_h_now_ms() < end && !(back && dup > dup0)) {
        if (tw_fault_sub_next(sub, &ev, 100) &&
            strcmp(ev.topic, "worker.up") == 0 &&
            strcmp(ev.name, "w1") == 0) {
            back = 1;
        }
        TW_H_ASSERT_OK(tw_h_status_field(c, "duplicates", &dup));
    }
    TW_H_ASSERT_MSG(dup > dup0, "late outcomes counted as duplicates "
                    "(%lld before, %lld after)", dup0, dup);
    TW_H_ASSERT_MSG(back, "w1 registered again after SIGCONT");
    TW_H_ASSERT(tw_h_log_contains(w[0], "sending HELLO again") ||
                tw_h_log_contains(w[0], "reconnecting"));

    /* Counts exact: the late outcomes were not applied. */
    long long completed = 0, queued = -1, running = -1, requeued = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "completed", &completed));
    TW_H_ASSERT_OK(tw_h_status_field(c, "queued", &queued));
    TW_H_ASSERT_OK(tw_h_status_field(c, "running", &running));
    TW_H_ASSERT_OK(tw_h_status_field(c, "requeued", &requeued));
    TW_H_ASSERT_EQ(completed, S_TASKS);
    TW_H_ASSERT_EQ(queued, 0);
    TW_H_ASSERT_EQ(running, 0);
    TW_H_ASSERT_MSG(requeued > 0, "w1's tasks were requeued");
    f.broker_duplicates = (uint64_t)dup;
    f.have_broker_duplicates = 1;
    printf("worker-stop: %lld requeued, %lld late outcomes counted as "
           "duplicates\n", requeued, dup);
    tw_fault_report(&f, c);

    tw_fault_free(&f);
    tw_fault_sub_destroy(&sub);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
