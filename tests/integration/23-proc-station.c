/*  tests/integration/23-proc-station.c - a station written as a proc
 *  handler moves with its checkpoint when its worker dies, and a worker
 *  with proc children drains (proto/PROTOCOL.md 15, 11; S16, S29).
 *
 *  Two workers, each with one Perl child (tests/integration/proc/
 *  child.pl), run a counting station ("pl.count", next mode result). The
 *  worker holding it is killed with SIGKILL: the station must run on the
 *  other worker within a few heartbeats, from its last checkpoint rather
 *  than from its first input, and keep counting. Then the surviving
 *  worker is drained (SIGTERM) while a proc task runs: the task finishes
 *  with its result, the station is handed back to the broker with its
 *  checkpoint, the worker exits 0 and its child is gone.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>

#define HB 300

static tw_client_t *s_c;

/* The pid of the child that ran a pl.info task. */
static int
s_child_pid(void)
{
    tw_result_t *r =
        tw_h_outcome(s_c, tw_h_submit_str(s_c, "pl.info", NULL, 0, 0), 20000);
    TW_H_ASSERT_EQ(r->state, 0);
    int pid = (int)tw_h_result_field_int(r, "pid");
    TW_H_ASSERT(pid > 0);
    tw_result_free(&r);
    return pid;
}

/* Wait until the station's checkpoint reaches `n`; returns the report. */
static tw_h_station_t
s_wait_count(const char *sid, long long n, uint64_t worker)
{
    tw_h_station_t st;
    uint64_t t0 = tw_h_now_ms();
    for (;;) {
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        if (strcmp(st.state, "running") == 0 && st.checkpoint >= n &&
            (!worker || st.worker == worker)) {
            return st;
        }
        TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < TW_H_PATIENCE_MS,
                        "%s: %s on worker %llu at %lld, waiting for %lld", sid,
                        st.state, (unsigned long long)st.worker,
                        st.checkpoint, n);
        tw_h_sleep_ms(10);
    }
}

int
main(void)
{
    tw_h_init("23-proc-station");
    tw_h_broker_t b;
    char hb[16];
    snprintf(hb, sizeof hb, "%d", HB);
    const char *bargs[] = {"--heartbeat", hb, "--liveness", "2", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "perl -I '%s/examples/proc' '%s/tests/integration/proc/child.pl'",
             TW_SOURCE_DIR, TW_SOURCE_DIR);
    const char *extra[] = {"--proc", cmd, "--proc-count", "1", NULL};
    pid_t w[3];
    w[1] = tw_h_start_worker(&b, 2, extra);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 20000));
    w[2] = tw_h_start_worker(&b, 2, extra);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 20000));
    s_c = tw_client_new(b.frontend);
    tw_h_track_results(s_c);

    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    tw_station_req_t req = {.op = "add",
                            .sid = "counter",
                            .handler = "pl.count",
                            .args = zero,
                            .args_len = zl,
                            .next = "result",
                            .interval_ms = 10};
    int rc = tw_client_station(s_c, &req, 5000, NULL, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add: %s", tw_client_last_error(s_c));
    tw_h_station_t st = s_wait_count("counter", 10, 0);
    uint64_t from = st.worker;
    TW_H_ASSERT(from == 1 || from == 2);
    uint64_t to = 3 - from;

    /* Kill the worker that holds it; read the checkpoint just before. */
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "counter", &st));
    long long before = st.checkpoint;
    TW_H_ASSERT_EQ(tw_h_kill(w[from], SIGKILL), 0);
    uint64_t t0 = tw_h_now_ms();
    st = s_wait_count("counter", 0, to);
    uint64_t took = tw_h_now_ms() - t0;
    printf("23: the proc station moved after %llu ms, from %lld (it was "
           "at %lld)\n",
           (unsigned long long)took, st.checkpoint, before);
    TW_H_ASSERT_MSG(st.checkpoint >= before, "resumed from %lld, before the "
                    "kill %lld", st.checkpoint, before);
    /* How soon is a speed (bench-failover measures it); that it moved
     * and resumed is what this checks. */
    st = s_wait_count("counter", st.checkpoint + 5, to);

    /* Drain the survivor while a proc task runs. */
    int child = s_child_pid();
    uint64_t seq = tw_h_submit_str(s_c, "pl.sleep", "1", 0, 0);
    uint64_t id = tw_h_wait_acked(s_c, seq, 5000);
    TW_H_ASSERT_OK(tw_h_wait_state(s_c, id, TW_ST_RUNNING, 5000));
    /* RUNNING means dispatched; a worker that is told to drain before it
     * has read the task hands it back, as it should. Wait until the
     * child is running it (its stderr line is in the worker's log). */
    TW_H_ASSERT_OK(tw_h_wait_log(w[to], "pl.sleep: sleeping", 10000));
    TW_H_ASSERT_EQ(tw_h_kill(w[to], SIGTERM), 0);
    tw_result_t *r = tw_h_outcome(s_c, seq, 20000);
    TW_H_ASSERT_MSG(r->state == 0, "the task of a draining worker: %s",
                    r->error);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "slept");
    tw_result_free(&r);
    TW_H_ASSERT_EQ(tw_h_wait_exit(w[to], 15000), 0);
    TW_H_ASSERT_MSG(kill(child, 0) != 0 && errno == ESRCH,
                    "child %d outlived its drained worker", child);
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "counter", &st));
    TW_H_ASSERT_MSG(strcmp(st.state, "running") != 0 &&
                        st.checkpoint >= before + 5,
                    "after the drain: %s at %lld", st.state, st.checkpoint);

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("23-proc-station: ok\n");
    return 0;
}
