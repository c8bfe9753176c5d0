/*  tests/fault/40-netns-broker-restart.c - over network namespaces, a
 *  worker host cut off and healed, then the broker SIGKILLed and started
 *  again on its store: nothing is lost.
 *
 *  This is the stage the broker pair's scenarios play on (docs/HA.md),
 *  exercised with one broker: deploy/multihost.sh --data gives the broker
 *  a store; `cut broker w1` makes blackhole routes between the two hosts
 *  (packets vanish, no connection closes) and `heal` removes them;
 *  `kill-broker` sends SIGKILL and waits for the process to go;
 *  `start-broker` starts it again on the same store; `wipe` deletes a
 *  stopped broker's store and refuses a running one.
 *
 *  The test joins the monitor host and is the client. While two workers
 *  run sleep tasks, w1's link to the broker is cut until the broker
 *  declares it dead, then healed: w1 registers again. Then the broker is
 *  killed under load with tasks still pending and running and a second
 *  batch submitted into the void; started again, it recovers the tasks
 *  from its store, the workers come back and re-announce what they ran,
 *  the client resends what was not acknowledged (and gets the ids it was
 *  first given), and every submission ends ok with one ack and one
 *  outcome.
 *
 *  Needs root for the namespaces: without it, or where the kernel refuses
 *  them, it prints SKIP and exits 77 (ctest shows it skipped).
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"
#include "tests/harness/multihost.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FIRST 600
#define S_MID 600
#define S_SECOND 300

static tw_client_t *s_c;

static void
s_destroy_client(void)
{
    tw_client_destroy(&s_c);
}

static void
s_poll_for(int ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (tw_h_now_ms() < end) {
        tw_client_poll(s_c, 10);
    }
}

int
main(void)
{
    tw_h_init("fault-netns-broker-restart");
    tw_h_mh_at_exit(s_destroy_client);
    const char *up[] = {"--data", "--heartbeat", "300", "--slots", "8",
                        "up", "2", NULL};
    const char *why = NULL;
    if (tw_h_mh_up("twha40", up, &why) == TW_H_SKIP) {
        printf("netns-broker-restart: SKIP: %s\n", why);
        return TW_H_SKIP;
    }
    char datadir[600];
    snprintf(datadir, sizeof datadir, "%s/data/broker", tw_h_mh_state());
    struct stat st;
    TW_H_ASSERT_MSG(stat(datadir, &st) == 0, "no store at %s", datadir);
    int first_pid = tw_h_mh_pid("broker");
    TW_H_ASSERT(first_pid > 0 && tw_h_mh_running(first_pid));
    /* A running broker's store is not wiped. */
    TW_H_ASSERT(tw_h_mh_script("wipe", "broker", NULL) != 0);
    TW_H_ASSERT(stat(datadir, &st) == 0);
    /* Unknown hosts are refused. */
    TW_H_ASSERT(tw_h_mh_script("cut", "broker", "w9", NULL) != 0);
    TW_H_ASSERT(tw_h_mh_script("kill-broker", "backup", NULL) != 0);

    /* From here on this process is the monitor host. */
    tw_h_mh_enter("monitor");
    s_c = tw_client_new(TW_H_MH_FRONTEND);
    TW_H_ASSERT(s_c != NULL);
    tw_client_opts_t o = {.heartbeat_ms = 300,
                          .liveness = 3,
                          .reconnect_min_ms = 100,
                          .reconnect_max_ms = 1000};
    TW_H_ASSERT_OK(tw_client_set_opts(s_c, &o));
    TW_H_ASSERT_OK(tw_h_wait_workers(TW_H_MH_FRONTEND, 2, 10000));
    const char *topics[] = {"worker.", NULL};
    tw_fault_sub_t *sub = tw_fault_sub_new(TW_H_MH_STATUS, topics);

    static tw_fault_t f;
    tw_fault_init(&f, "netns-broker-restart", s_c,
                  S_FIRST + S_MID + S_SECOND + 200);
    unsigned char secs[9];
    tw_task_spec_t spec = tw_fault_sleep_spec(secs, 0.03);
    tw_fault_submit(&f, s_c, &spec, S_FIRST);
    TW_H_ASSERT_OK(tw_fault_wait_completed(&f, s_c, 50, 20000));

    /* Cut w1 from the broker: silence, not a closed connection. */
    TW_H_ASSERT_EQ(tw_h_mh_script("cut", "broker", "w1", NULL), 0);
    uint64_t cut_at = tw_h_now_ms();
    TW_H_ASSERT_MSG(
        tw_fault_sub_wait_worker(sub, s_c, "worker.down", "w1", 10000),
        "w1 not declared dead within 10 s of the cut");
    uint64_t down_at = tw_h_now_ms();
    TW_H_ASSERT_EQ(tw_h_mh_script("heal", "broker", "w1", NULL), 0);
    TW_H_ASSERT_MSG(
        tw_fault_sub_wait_worker(sub, s_c, "worker.up", "w1", 15000),
        "w1 did not come back within 15 s of the heal");
    printf("netns-broker-restart: w1 declared dead %llu ms after the cut, "
           "back %llu ms after the heal\n",
           (unsigned long long)(down_at - cut_at),
           (unsigned long long)(tw_h_now_ms() - down_at));

    /* The broker dies under load: a batch half done. */
    tw_fault_submit(&f, s_c, &spec, S_MID);
    TW_H_ASSERT_OK(tw_fault_wait_completed(&f, s_c,
                                           tw_fault_completed(&f) + 100,
                                           20000));
    size_t done_before = tw_fault_completed(&f);
    TW_H_ASSERT_MSG(done_before + 200 <= S_FIRST + S_MID,
                    "only %zu tasks were left when the broker was killed",
                    S_FIRST + S_MID - done_before);
    TW_H_ASSERT_EQ(tw_h_mh_script("kill-broker", "broker", "KILL", NULL), 0);
    TW_H_ASSERT_EQ(tw_h_mh_pid("broker"), -1);
    TW_H_ASSERT(!tw_h_mh_running(first_pid));
    uint64_t killed_at = tw_h_now_ms();
    /* A second batch goes nowhere meanwhile. */
    tw_fault_submit(&f, s_c, &spec, S_SECOND);
    s_poll_for(1500);
    tw_client_stats_t cst;
    tw_client_stats(s_c, &cst);
    TW_H_ASSERT_MSG(cst.lost >= 1, "the client noticed the broker's death");
    TW_H_ASSERT(cst.unacked >= S_SECOND);

    /* Back on its store. */
    TW_H_ASSERT_EQ(tw_h_mh_script("start-broker", "broker", NULL), 0);
    int second_pid = tw_h_mh_pid("broker");
    TW_H_ASSERT(second_pid > 0 && second_pid != first_pid);
    TW_H_ASSERT(tw_h_mh_running(second_pid));
    TW_H_ASSERT(tw_h_mh_script("start-broker", "broker", NULL) != 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, s_c, 60000));
    tw_client_stats(s_c, &cst);
    printf("netns-broker-restart: broker down %llu ms; %zu of %d tasks "
           "had ended before; %llu resends\n",
           (unsigned long long)(tw_h_now_ms() - killed_at), done_before,
           S_FIRST + S_MID, (unsigned long long)cst.resends);
    tw_fault_report(&f, s_c);

    tw_fault_free(&f);
    tw_fault_sub_destroy(&sub);
    tw_client_destroy(&s_c);

    /* A stopped broker's store can be wiped. */
    TW_H_ASSERT_EQ(tw_h_mh_script("kill-broker", "broker", "TERM", NULL), 0);
    TW_H_ASSERT_EQ(tw_h_mh_script("wipe", "broker", NULL), 0);
    TW_H_ASSERT(stat(datadir, &st) != 0);
    TW_H_ASSERT_EQ(tw_h_mh_down(), 0);
    return 0;
}
