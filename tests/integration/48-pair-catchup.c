/*  tests/integration/48-pair-catchup.c - a passive that starts empty
 *  catches up from a snapshot of the active's store, then follows the
 *  stream, and can take over with everything (docs/HA.md section 4).
 *
 *  A pair (200 ms heartbeats, --replicate sync), a worker and a client
 *  given both endpoints:
 *
 *    - tasks run on the primary; the backup is stopped and its data
 *      directory wiped; the primary is restarted (so its backlog of
 *      recent batches, which could replay everything from batch 1, is
 *      empty), finds its peer silent, starts alone on the client's
 *      request as the pair's last active, and more tasks run;
 *    - the backup started again with an empty store is sent a snapshot
 *      (the primary's ha_snapshots becomes 1), swaps it in and follows
 *      (the primary's ha_sync becomes 1 again);
 *    - more tasks run, then the primary is SIGKILLed: the backup takes
 *      over and knows the outcome of every task of all three rounds,
 *      those from before its wipe included.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

#define ROUND 200

/* Submit a round of echo tasks and wait for all; returns their ids. */
static void
s_round(tw_client_t *c, uint64_t *ids, int from)
{
    uint64_t seqs[ROUND];
    for (int i = 0; i < ROUND; i++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", from + i);
        seqs[i] = tw_h_submit_str(c, "echo", arg, 0, 0);
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 60000));
    for (int i = 0; i < ROUND; i++) {
        ids[i] = tw_h_wait_acked(c, seqs[i], 10000);
    }
}

static void
s_wait_status(const char *ep, const char *key, long long want)
{
    uint64_t end = tw_h_now_ms() + 30000;
    long long v = -1;
    while ((v = tw_h_status_of(ep, key)) != want && tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_MSG(v == want, "%s: %s is %lld, not %lld", ep, key, v,
                    want);
}

int
main(void)
{
    tw_h_init("48-pair-catchup");
    tw_h_pair_t pr;
    const char *const args[] = {"--heartbeat", "200", "--replicate", "sync",
                                NULL};
    TW_H_ASSERT_OK(tw_h_start_pair(&pr, args, NULL));
    tw_h_broker_t *p = &pr.br[0], *b = &pr.br[1];
    TW_H_ASSERT_OK(tw_h_wait_ready(pr.fronts, 20000));
    TW_H_ASSERT(tw_h_start_worker(p, 8, TW_H_ARGS("--broker", pr.backs)) >
                0);
    TW_H_ASSERT_OK(tw_h_wait_workers(p->frontend, 1, 20000));
    tw_client_t *c = tw_client_new(pr.fronts);
    TW_H_ASSERT(c != NULL);
    tw_h_track_results(c);
    static uint64_t ids[3][ROUND];
    s_round(c, ids[0], 0);

    /* The backup loses its store; the primary serves alone. */
    TW_H_ASSERT_EQ(tw_h_stop(b->pid), 0);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%.500s' && mkdir '%.500s'", b->data,
             b->data);
    TW_H_ASSERT_EQ(system(cmd), 0);
    TW_H_ASSERT_EQ(tw_h_stop(p->pid), 0);
    TW_H_ASSERT_OK(tw_h_restart_pair(&pr, 0, args));
    s_round(c, ids[1], 1000);

    /* Back empty: a snapshot, then the stream. */
    TW_H_ASSERT_OK(tw_h_restart_pair(&pr, 1, args));
    s_wait_status(p->frontend, "ha_snapshots", 1);
    s_wait_status(p->frontend, "ha_sync", 1);
    TW_H_ASSERT(tw_h_log_contains(b->pid, "ha.catchup"));
    s_round(c, ids[2], 2000);

    /* The backup takes over with everything. */
    TW_H_ASSERT_OK(tw_h_kill(p->pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(p->pid, 10000) >= 0);
    uint64_t seq = tw_h_submit_str(c, "echo", "after", 0, 0);
    tw_result_t *r = tw_h_outcome(c, seq, 30000);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    tw_result_free(&r);
    tw_client_t *cb = tw_client_new(b->frontend);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ROUND; i++) {
            TW_H_ASSERT_OK(tw_client_result(cb, ids[k][i], 5000, &r));
            TW_H_ASSERT_MSG(r->state == TW_ST_OK,
                            "round %d task %llu: state %d", k,
                            (unsigned long long)ids[k][i], r->state);
            char want[16];
            snprintf(want, sizeof want, "%d", 1000 * k + i);
            TW_H_ASSERT_STREQ(tw_h_result_str(r), want);
            tw_result_free(&r);
        }
    }
    tw_client_destroy(&cb);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b->pid), 0);
    printf("48-pair-catchup: ok\n");
    return 0;
}
