/*  tests/fault/03-link-cut.c - cut a worker host's link past the failure
 *  timeout, restore it: the cluster heals and nothing is lost.
 *
 *  deploy/multihost.sh (through tests/harness/multihost.h) puts the broker
 *  in one network namespace and two workers in two others, each host on
 *  a veth link into a bridge; this test joins the monitor host and is the
 *  client. While the workers run sleep tasks, w1's link goes down
 *  (`ip link set eth0 down` on its host). The broker (heartbeat 300 ms,
 *  liveness 3) declares w1 dead and requeues its tasks to w2; w1, hearing
 *  nothing for three heartbeats, drops its socket and keeps reconnecting
 *  with backoff. The link stays down a second longer, then comes back:
 *  w1 registers again (worker.up on the status stream) and gets work
 *  again (tasks submitted after that run on its new registration). Every
 *  task ends ok with one outcome at its client.
 *
 *  Needs root for the namespaces: without it, or where the kernel refuses
 *  them, it prints SKIP and exits 77 (ctest shows it skipped).
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"
#include "tests/harness/multihost.h"

#include <stdlib.h>
#include <unistd.h>

#define S_FIRST 600  /* tasks around the cut */
#define S_SECOND 200 /* tasks after the link is back */

static tw_client_t *s_c;

static void
s_destroy_client(void)
{
    tw_client_destroy(&s_c);
}

int
main(void)
{
    tw_h_init("fault-link-cut");
    tw_h_mh_at_exit(s_destroy_client);
    const char *up[] = {"--heartbeat", "300", "--slots", "8", "up", "2",
                        NULL};
    const char *why = NULL;
    if (tw_h_mh_up("twfl", up, &why) == TW_H_SKIP) {
        printf("link-cut: SKIP: %s\n", why);
        return TW_H_SKIP;
    }
    /* From here on this process is the monitor host. */
    tw_h_mh_enter("monitor");
    s_c = tw_client_new(TW_H_MH_FRONTEND);
    TW_H_ASSERT(s_c != NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(TW_H_MH_FRONTEND, 2, 10000));
    const char *topics[] = {"worker.", NULL};
    tw_fault_sub_t *sub = tw_fault_sub_new(TW_H_MH_STATUS, topics);

    static tw_fault_t f;
    tw_fault_init(&f, "link-cut", s_c, S_FIRST + S_SECOND + 100);
    unsigned char secs[9];
    tw_task_spec_t spec = tw_fault_sleep_spec(secs, 0.05);
    tw_fault_submit(&f, s_c, &spec, S_FIRST);
    TW_H_ASSERT_OK(tw_fault_wait_completed(&f, s_c, 50, 20000));

    /* Cut w1 off; keep it off a second past its being declared dead. */
    TW_H_ASSERT_EQ(tw_h_mh_script("exec", "w1", "ip", "link", "set", "eth0",
                                  "down", NULL),
                   0);
    uint64_t cut_at = tw_h_now_ms();
    TW_H_ASSERT_MSG(
        tw_fault_sub_wait_worker(sub, s_c, "worker.down", "w1", 10000),
        "w1 not declared dead within 10 s of the cut");
    uint64_t down_at = tw_h_now_ms();
    uint64_t end = down_at + 1000;
    while (tw_h_now_ms() < end) {
        tw_client_poll(s_c, 10);
    }
    TW_H_ASSERT_EQ(tw_h_mh_script("exec", "w1", "ip", "link", "set", "eth0",
                                  "up", NULL),
                   0);
    uint64_t restored_at = tw_h_now_ms();
    uint64_t w1 =
        tw_fault_sub_wait_worker(sub, s_c, "worker.up", "w1", 15000);
    TW_H_ASSERT_MSG(w1 != 0, "w1 did not come back within 15 s of the "
                               "link");
    uint64_t back_at = tw_h_now_ms();
    printf("link-cut: w1 declared dead %llu ms after the cut, link down "
           "%llu ms, back %llu ms after the link\n",
           (unsigned long long)(down_at - cut_at),
           (unsigned long long)(restored_at - cut_at),
           (unsigned long long)(back_at - restored_at));

    /* The first batch ends without w1's help if need be. */
    TW_H_ASSERT_OK(tw_fault_wait(&f, s_c, 30000));
    /* The healed cluster: w1 takes work again. */
    f.watch_wid = w1;
    tw_fault_submit(&f, s_c, &spec, S_SECOND);
    TW_H_ASSERT_OK(tw_fault_wait(&f, s_c, 30000));
    printf("link-cut: %zu of %d later tasks ran on w1's new registration\n",
           f.on_watch, S_SECOND);
    TW_H_ASSERT_MSG(f.on_watch > 0, "w1 got no work after it came back");
    tw_fault_report(&f, s_c);

    tw_fault_free(&f);
    tw_fault_sub_destroy(&sub);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_mh_down(), 0);
    return 0;
}
