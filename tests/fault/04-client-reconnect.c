/*  tests/fault/04-client-reconnect.c - the broker restarts under a client
 *  with unacknowledged submissions: the client reconnects, resends, and
 *  every submission is enqueued once and completes.
 *
 *  A broker in memory mode runs a first batch for two workers, which the
 *  client sees through. Then the broker is killed (SIGKILL) and the client
 *  submits a second batch into the void: nothing acknowledges it. The
 *  client (heartbeat 200 ms, liveness 3) declares the broker lost and
 *  keeps reconnecting with backoff. The broker comes back on the same
 *  ports, empty, with --handler-grace: the workers re-register on their
 *  own, and whichever comes first, the client's resend or the workers'
 *  HELLO, nothing is refused for an unknown handler. The client's next
 *  socket (same routing id) resends the whole second batch with its
 *  original seqs, and the new broker must have enqueued each exactly once
 *  (its "submitted" equals the batch) and every one must complete with a
 *  single ack and a single outcome at the client.
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdlib.h>

#define S_FIRST 500
#define S_SECOND 1000

int
main(void)
{
    tw_h_init("fault-client-reconnect");
    tw_h_broker_t b;
    /* Memory mode: an empty --data overrides the harness's directory. */
    const char *opts[] = {"--heartbeat", "200", "--data", "", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    for (int i = 0; i < 2; i++) {
        TW_H_ASSERT(tw_h_start_worker(&b, 8, NULL) > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 10000));

    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c != NULL);
    tw_client_opts_t o = {.heartbeat_ms = 200,
                          .liveness = 3,
                          .reconnect_min_ms = 100,
                          .reconnect_max_ms = 1000};
    TW_H_ASSERT_OK(tw_client_set_opts(c, &o));
    static tw_fault_t f;
    tw_fault_init(&f, "client-reconnect", c, S_FIRST + S_SECOND + 100);
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 0.005);
    tw_task_spec_t spec = {.handler = "sleep", .args = secs,
                           .args_len = sl};
    tw_fault_submit(&f, c, &spec, S_FIRST);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));

    /* The broker dies; the second batch goes nowhere. */
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(b.pid, 5000) >= 0);
    tw_fault_submit(&f, c, &spec, S_SECOND);
    tw_client_stats_t st;
    uint64_t end = tw_h_now_ms() + 15000;
    do {
        tw_client_poll(c, 50);
        tw_client_stats(c, &st);
    } while (st.lost == 0 && tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(st.lost >= 1, "the client noticed the broker's death");
    TW_H_ASSERT_EQ(st.unacked, S_SECOND);
    TW_H_ASSERT_EQ(tw_fault_acked(&f), S_FIRST);

    /* Back, empty, on the same ports. */
    const char *again[] = {"--heartbeat", "200", "--handler-grace", "10",
                           "--data", "", NULL};
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, again));
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));
    tw_client_stats(c, &st);
    printf("client-reconnect: lost %llu times, %llu reconnects, %llu "
           "resends, %llu pings\n",
           (unsigned long long)st.lost, (unsigned long long)st.reconnects,
           (unsigned long long)st.resends, (unsigned long long)st.pings);
    TW_H_ASSERT(st.reconnects >= 1);
    TW_H_ASSERT(st.resends >= S_SECOND);
    TW_H_ASSERT_EQ(st.unacked, 0);
    TW_H_ASSERT_EQ(st.waiting, 0);
    TW_H_ASSERT_EQ(st.unknown, 0);

    /* The new broker enqueued each resent submission exactly once. */
    long long submitted = 0, completed = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &submitted));
    TW_H_ASSERT_OK(tw_h_status_field(c, "completed", &completed));
    TW_H_ASSERT_EQ(submitted, S_SECOND);
    TW_H_ASSERT_EQ(completed, S_SECOND);
    tw_fault_report(&f, c);

    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
