/*  tests/fault/08-store-full.c - bursts into a 3 MiB store, a stop in the
 *  middle of one, and the store draining and taking work again.
 *
 *  A broker on --data with --data-size 3 and no worker yet (with
 *  --handler-grace, so "echo" is queued) gets 60,000 pipelined
 *  submissions of ~100 bytes, as fast as one client sends them; the store
 *  holds about a sixth of them. Half way through the burst (A), while the
 *  rest still arrives and batches are on their way to the disk, the
 *  broker gets SIGTERM: it must exit 0, and no ACK may have left for a
 *  task it did not write.
 *
 *  The recovery is a start on the same store, with a worker: every
 *  acknowledged task is found exactly once and completes (a full store
 *  drains: dispatch, outcomes and collection are always written), the
 *  client's resends of what had no answer are admitted or refused once,
 *  no outcome arrives twice. Then (B) with no worker a second burst fills
 *  the store: what does not fit is refused with EFULL and "data store
 *  full" before LMDB's map or the disk can fill, at any rate, and a worker
 *  drains it. Last (C), with the results collected (--max-results 2000),
 *  the store takes 20,000 more in bursts of 1,000 with no refusal: room
 *  that comes back is seen. The writer never failed (store_errors 0).
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdlib.h>

#define S_BURST 60000
#define S_AFTER 20000
#define S_CHUNK 1000

/* Wait for the broker to exit after SIGTERM, polling the client so it
 * takes in what the broker sends while it stops; it must exit 0. */
static void
s_wait_stopped(tw_h_broker_t *b, tw_client_t *c)
{
    uint64_t t = tw_h_now_ms();
    int code = TW_ETIMEDOUT;
    while (code == TW_ETIMEDOUT && tw_h_now_ms() - t < 30000) {
        tw_client_poll(c, 10);
        code = tw_h_wait_exit(b->pid, 0);
    }
    TW_H_ASSERT_EQ(code, 0);
    TW_H_ASSERT(!tw_h_log_contains(b->pid, "could not be written"));
}

int
main(void)
{
    tw_h_init("fault-store-full");
    tw_h_broker_t b;
    /* Few results are kept (--max-results), so collection makes room. */
    const char *opts[] = {"--data-size", "3", "--heartbeat", "200",
                          "--handler-grace", "3600", "--max-results",
                          "2000", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));

    tw_client_t *c = tw_fault_client(b.frontend);
    static tw_fault_t f;
    tw_fault_init(&f, "store-full", c, 2 * S_BURST + 2 * S_AFTER);
    f.refuse_code = TW_EFULL;
    /* A second copy of a refused item (libzmq's queued copy and the
     * client's resend) is refused again, and its answer can overtake the
     * first one's, which waits for the store's commit. */
    f.refuse_text = "data store full|was refused before";
    /* echo returns its args: ~100 bytes each way. */
    unsigned char args[102];
    tw_task_spec_t spec = tw_fault_echo100(args);

    /* A: the burst, with SIGTERM in the middle of it: half is sent, the
     * signal goes out, the other half follows at once, while the broker
     * takes in the first half and its batches are on their way. */
    tw_fault_submit(&f, c, &spec, S_BURST / 2);
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGTERM));
    tw_fault_submit(&f, c, &spec, S_BURST / 2);
    s_wait_stopped(&b, c);
    size_t acked1 = tw_fault_acked(&f), refused1 = tw_fault_refused(&f);
    printf("store-full: A: burst of %d, SIGTERM after half of it: %zu "
           "acknowledged and %zu refused before the stop\n",
           S_BURST, acked1, refused1);

    /* The recovery: start it again on the same store, with a worker. The
     * client resends what had no answer; every acknowledged task is there
     * once and completes. */
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    /* The client back first: outcomes pushed to a client that is not
     * connected are not kept for it beyond --max-results. */
    TW_H_ASSERT_OK(tw_client_ping(c, 10000));
    pid_t w1 = tw_h_start_worker(&b, 64, NULL);
    TW_H_ASSERT(w1 > 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 60000));
    size_t acked2 = tw_fault_acked(&f), refused2 = tw_fault_refused(&f);
    TW_H_ASSERT_EQ(acked2 + refused2, S_BURST);
    TW_H_ASSERT_EQ(tw_fault_completed(&f), acked2);
    printf("store-full: after the restart: %zu acknowledged (%zu after "
           "resends), %zu refused; every acknowledged task completed once\n",
           acked2, acked2 - acked1, refused2);

    /* B: no worker, a second burst: the store fills, and what does not
     * fit is refused with the reason; then a worker drains it. */
    TW_H_ASSERT_EQ(tw_h_stop(w1), 0);
    printf("store-full: B: store %lld of %lld bytes used\n",
           tw_fault_stat(c, "store_used_bytes"),
           tw_fault_stat(c, "store_cap_bytes"));
    tw_fault_submit(&f, c, &spec, S_BURST);
    uint64_t t2 = tw_h_now_ms();
    while (tw_fault_acked(&f) + tw_fault_refused(&f) < 2 * S_BURST &&
           tw_h_now_ms() - t2 < 60000) {
        tw_client_poll(c, 10);
    }
    size_t acked3 = tw_fault_acked(&f), refused3 = tw_fault_refused(&f);
    TW_H_ASSERT_EQ(acked3 + refused3, 2 * S_BURST);
    TW_H_ASSERT_MSG(refused3 > refused2, "the second burst was not "
                    "refused in part");
    printf("store-full: B: burst of %d into the store: %zu acknowledged, "
           "%zu refused (EFULL, 'data store full') in %llu ms\n",
           S_BURST, acked3 - acked2, refused3 - refused2,
           (unsigned long long)(tw_h_now_ms() - t2));
    TW_H_ASSERT(tw_h_start_worker(&b, 64, NULL) > 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 60000));
    TW_H_ASSERT_EQ(tw_fault_completed(&f), acked3);

    /* C: room comes back: bursts of S_CHUNK, none refused. */
    for (int i = 0; i < S_AFTER / S_CHUNK; i++) {
        tw_fault_submit(&f, c, &spec, S_CHUNK);
        TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));
    }
    TW_H_ASSERT_EQ(tw_fault_refused(&f), refused3);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "store_errors"), 0);
    TW_H_ASSERT(!tw_h_log_contains(b.pid, "cannot write"));
    tw_fault_report(&f, c);

    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
