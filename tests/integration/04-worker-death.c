/*  tests/integration/04-worker-death.c - a worker killed mid-run loses
 *  nothing.
 *
 *  Two workers share 400 sleep tasks of 20 ms. Once both are busy, one is
 *  killed with SIGKILL. The broker must notice within its liveness window
 *  (3 heartbeats of 200 ms), requeue what that worker held, and every task
 *  must end ok exactly once (a task may run twice — at-least-once — but
 *  the submitter sees one outcome per task). The broker's counters must
 *  show the requeue and no loss; worker.down must be logged.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

#define N 400

typedef struct {
    uint8_t seen[N + 1];
    size_t ok, other;
    size_t by_worker[4];
} s_state_t;

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_state_t *s = arg;
    TW_H_ASSERT(r->seq >= 1 && r->seq <= N);
    s->seen[r->seq]++;
    if (r->state == 0) {
        s->ok++;
    } else {
        s->other++;
    }
    if (r->worker < 4) {
        s->by_worker[r->worker]++;
    }
}

int
main(void)
{
    tw_h_init("04-worker-death");
    tw_h_broker_t b;
    const char *fast[] = {"--heartbeat", "200", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, fast));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    pid_t w1 = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    pid_t w2 = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 10000));
    TW_H_ASSERT(w1 > 0 && w2 > 0);

    static s_state_t s;
    tw_client_t *c = tw_client_new(b.frontend);
    tw_client_on_result(c, s_on_result, &s);
    static const unsigned char args[] = {0xcb, 0x3f, 0x94, 0x7a, 0xe1,
                                         0x47, 0xae, 0x14, 0x7b}; /* 0.02 */
    for (int i = 0; i < N; i++) {
        tw_task_spec_t spec = {.handler = "sleep",
                               .args = args,
                               .args_len = sizeof args};
        uint64_t seq;
        TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    }
    TW_H_ASSERT_OK(tw_client_flush(c));
    /* Let both workers get going, then kill the first one outright. */
    uint64_t end = tw_h_now_ms() + 10000;
    while ((s.by_worker[1] < 20 || s.by_worker[2] < 20) &&
           tw_h_now_ms() < end) {
        tw_client_poll(c, 20);
    }
    TW_H_ASSERT_MSG(s.by_worker[1] >= 20 && s.by_worker[2] >= 20,
                    "both workers ran tasks before the kill");
    TW_H_ASSERT_OK(tw_h_kill(w1, SIGKILL));
    uint64_t killed_at = tw_h_now_ms();

    TW_H_ASSERT_OK(tw_client_wait_all(c, 30000));
    TW_H_ASSERT_EQ(s.ok, N);
    TW_H_ASSERT_EQ(s.other, 0);
    for (int i = 1; i <= N; i++) {
        TW_H_ASSERT_MSG(s.seen[i] == 1, "task %d seen %d times", i,
                        s.seen[i]);
    }
    long long requeued = 0, workers = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "requeued", &requeued));
    TW_H_ASSERT_OK(tw_h_status_field(c, "workers", &workers));
    TW_H_ASSERT_MSG(requeued > 0, "the dead worker's tasks were requeued");
    TW_H_ASSERT_EQ(workers, 1);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "missed heartbeats"));
    printf("04-worker-death: %d tasks ok, %lld requeued, done %llu ms after "
           "the kill\n", N, requeued,
           (unsigned long long)(tw_h_now_ms() - killed_at));

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
