/*  tests/integration/13-multihost.c - a cluster spread over network
 *  namespaces with deploy/multihost.sh, driven from its monitor host.
 *
 *  The script builds a broker host (10.77.0.1), three worker hosts and a
 *  monitor host (10.77.0.2), each a network namespace with its own
 *  hostname on one bridge. This test then moves itself into the monitor
 *  host's namespace (setns) before it makes any ZeroMQ socket, so that
 *  libtaskwheel reaches the broker over the bridge as a remote client
 *  would. It checks:
 *
 *    - the workers registered from three different hosts;
 *    - six counting stations (`incr`, next mode result) are spread two per
 *      host and iterate; tasks run on all three hosts;
 *    - a worker host added later (add-worker) receives work at once: new
 *      stations go to it, being the least loaded, and it runs tasks;
 *    - a worker host removed (remove-worker: `taskwheel workers drain`,
 *      the broker's WORKER drain) has its stations moved to the other
 *      hosts, where they continue from their checkpoints, and its worker
 *      was told to drain by the broker and exited 0;
 *    - the monitor host (examples/monitor.py) saw workers and stations;
 *    - `status` works and `down` leaves no namespace behind.
 *
 *  Namespaces need root. Without it, or where the kernel refuses them
 *  (the script exits 77), the test prints a SKIP line and passes. The
 *  cluster's life cycle and cleanup are tests/harness/multihost.h's.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "tests/harness/multihost.h"
#include "taskwheel/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define S_FRONTEND TW_H_MH_FRONTEND
#define S_NSTATIONS 6
#define S_MAXW 8

static tw_client_t *s_c;

/* Before the cluster goes: the client lives in the monitor's namespace. */
static void
s_destroy_client(void)
{
    tw_client_destroy(&s_c);
}

/* ---- reading the broker ------------------------------------------------- */

/* The registered workers (QUERY workers). Returns how many. */
static size_t
s_workers(tw_h_worker_t *out, size_t cap)
{
    size_t n = tw_h_workers(s_c, out, cap);
    return n < cap ? n : cap;
}

/* The worker id of host `host`, or 0. */
static uint64_t
s_worker_on(const char *host)
{
    tw_h_worker_t ws[S_MAXW];
    size_t n = s_workers(ws, S_MAXW);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ws[i].host, host) == 0) {
            return ws[i].id;
        }
    }
    return 0;
}

static int
s_wait_worker_count(size_t want, int timeout_ms)
{
    tw_h_worker_t ws[S_MAXW];
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    do {
        if (s_workers(ws, S_MAXW) == want) {
            return 0;
        }
        tw_h_sleep_ms(100);
    } while (tw_h_now_ms() < end);
    return TW_ETIMEDOUT;
}

static void
s_add_station(const char *sid)
{
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    tw_station_req_t req = {.op = "add", .sid = sid, .handler = "incr",
                            .args = zero, .args_len = zl,
                            .next = "result", .interval_ms = 50};
    TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
}

static size_t
s_count_on(const char *const *sids, size_t n, uint64_t worker)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sids[i], &st));
        c += st.worker == worker && strcmp(st.state, "running") == 0;
    }
    return c;
}

/* ---- tasks -------------------------------------------------------------- */

typedef struct {
    size_t ok, other;
    uint64_t workers[S_MAXW * 4]; /* worker id of each outcome's runner */
    size_t nw;
} s_outcomes_t;

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_outcomes_t *o = arg;
    if (r->state == 0) {
        o->ok++;
    } else {
        o->other++;
    }
    for (size_t i = 0; i < o->nw; i++) {
        if (o->workers[i] == r->worker) {
            return;
        }
    }
    if (o->nw < sizeof o->workers / sizeof o->workers[0]) {
        o->workers[o->nw++] = r->worker;
    }
}

/* Run `n` sleep tasks of 0.1 s (each worker has 4 slots, so they must
 * spread); returns which workers ran them in `o`. */
static void
s_run_tasks(size_t n, s_outcomes_t *o)
{
    memset(o, 0, sizeof *o);
    tw_client_on_result(s_c, s_on_result, o);
    static const unsigned char tenth[] = {0xcb, 0x3f, 0xb9, 0x99, 0x99,
                                          0x99, 0x99, 0x99, 0x9a}; /* 0.1 */
    for (size_t i = 0; i < n; i++) {
        tw_task_spec_t spec;
        memset(&spec, 0, sizeof spec);
        spec.handler = "sleep";
        spec.args = tenth;
        spec.args_len = sizeof tenth;
        TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, NULL));
    }
    TW_H_ASSERT_OK(tw_client_wait_all(s_c, 20000));
    tw_client_on_result(s_c, NULL, NULL);
    TW_H_ASSERT_EQ(o->ok, n);
    TW_H_ASSERT_EQ(o->other, 0);
}

static int
s_ran_on(const s_outcomes_t *o, uint64_t worker)
{
    for (size_t i = 0; i < o->nw; i++) {
        if (o->workers[i] == worker) {
            return 1;
        }
    }
    return 0;
}

/* ---- the test ----------------------------------------------------------- */

int
main(void)
{
    tw_h_init("13-multihost");
    tw_h_mh_at_exit(s_destroy_client);
    const char *up[] = {"--heartbeat", "500", "up", "3", NULL};
    const char *why = NULL;
    if (tw_h_mh_up("tw13", up, &why) == TW_H_SKIP) {
        printf("13-multihost: SKIP: %s\n", why);
        return 0;
    }

    /* From here on this process is the monitor host. */
    tw_h_mh_enter("monitor");
    s_c = tw_client_new(S_FRONTEND);
    TW_H_ASSERT(s_c != NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(S_FRONTEND, 3, 10000));

    /* Three workers, one per host, each named after its host. */
    tw_h_worker_t ws[S_MAXW];
    size_t nw = s_workers(ws, S_MAXW);
    TW_H_ASSERT_EQ(nw, 3);
    for (size_t i = 0; i < nw; i++) {
        TW_H_ASSERT_STREQ(ws[i].host, ws[i].name);
    }
    uint64_t w1 = s_worker_on("w1"), w2 = s_worker_on("w2");
    uint64_t w3 = s_worker_on("w3");
    TW_H_ASSERT(w1 && w2 && w3);

    /* Stations spread over the hosts and iterate there. */
    const char *sids[S_NSTATIONS + 2] = {"c-1", "c-2", "c-3", "c-4",
                                         "c-5", "c-6", "c-7", "c-8"};
    for (int i = 0; i < S_NSTATIONS; i++) {
        s_add_station(sids[i]);
        TW_H_ASSERT_OK(tw_h_wait_station(s_c, sids[i], "running", 10000,
                                         NULL));
    }
    TW_H_ASSERT_EQ(s_count_on(sids, S_NSTATIONS, w1), 2);
    TW_H_ASSERT_EQ(s_count_on(sids, S_NSTATIONS, w2), 2);
    TW_H_ASSERT_EQ(s_count_on(sids, S_NSTATIONS, w3), 2);
    uint64_t end = tw_h_now_ms() + 10000;
    for (int i = 0; i < S_NSTATIONS; i++) {
        tw_h_station_t st;
        do {
            TW_H_ASSERT_OK(tw_h_station_show(s_c, sids[i], &st));
            if (st.iterations >= 5) {
                break;
            }
            tw_h_sleep_ms(50);
        } while (tw_h_now_ms() < end);
        TW_H_ASSERT_MSG(st.iterations >= 5 && st.checkpoint >= 1,
                        "%s iterates (%llu iterations, checkpoint %lld)",
                        sids[i], (unsigned long long)st.iterations,
                        st.checkpoint);
    }

    /* Tasks run on every host: 24 sleeps over 3 x (4 - 2) free slots. */
    s_outcomes_t o;
    s_run_tasks(24, &o);
    TW_H_ASSERT_MSG(s_ran_on(&o, w1) && s_ran_on(&o, w2) &&
                        s_ran_on(&o, w3),
                    "tasks ran on %zu worker(s), not all three", o.nw);
    printf("13-multihost: 3 hosts up, %d stations, tasks on %zu hosts\n",
           S_NSTATIONS, o.nw);

    /* A worker host added later gets the new stations and tasks. */
    TW_H_ASSERT_EQ(tw_h_mh_script("add-worker", NULL), 0);
    TW_H_ASSERT_OK(s_wait_worker_count(4, 10000));
    uint64_t w4 = s_worker_on("w4");
    TW_H_ASSERT(w4 != 0);
    for (int i = S_NSTATIONS; i < S_NSTATIONS + 2; i++) {
        s_add_station(sids[i]);
        TW_H_ASSERT_OK(tw_h_wait_station(s_c, sids[i], "running", 10000,
                                         NULL));
    }
    TW_H_ASSERT_EQ(s_count_on(sids + S_NSTATIONS, 2, w4), 2);
    s_run_tasks(24, &o);
    TW_H_ASSERT_MSG(s_ran_on(&o, w4), "the new host w4 ran none of the "
                                      "tasks");
    printf("13-multihost: w4 added, took the new stations and tasks\n");

    /* A worker host removed: its stations move and keep counting. */
    uint64_t before[S_NSTATIONS + 2];
    for (int i = 0; i < S_NSTATIONS + 2; i++) {
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sids[i], &st));
        before[i] = st.iterations;
    }
    TW_H_ASSERT_EQ(tw_h_mh_script("remove-worker", "w2", NULL), 0);
    TW_H_ASSERT_OK(s_wait_worker_count(3, 10000));
    TW_H_ASSERT_EQ(s_worker_on("w2"), 0);
    end = tw_h_now_ms() + 10000;
    size_t placed;
    do {
        placed = s_count_on(sids, S_NSTATIONS + 2, w1) +
                 s_count_on(sids, S_NSTATIONS + 2, w3) +
                 s_count_on(sids, S_NSTATIONS + 2, w4);
        if (placed == S_NSTATIONS + 2) {
            break;
        }
        tw_h_sleep_ms(100);
    } while (tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(placed == S_NSTATIONS + 2,
                    "%zu of %d stations running on the remaining hosts",
                    placed, S_NSTATIONS + 2);
    for (int i = 0; i < S_NSTATIONS + 2; i++) {
        tw_h_station_t st;
        tw_h_wait_iterations(s_c, sids[i], before[i] + 1, 10000, &st);
        TW_H_ASSERT_MSG(st.worker != w2 && st.iterations > before[i],
                        "%s moved on and continued (worker %llu, %llu > "
                        "%llu iterations)",
                        sids[i], (unsigned long long)st.worker,
                        (unsigned long long)st.iterations,
                        (unsigned long long)before[i]);
    }
    s_run_tasks(12, &o);
    TW_H_ASSERT(!s_ran_on(&o, w2));
    /* The drain went through the broker, not a signal, and was clean. */
    char path[600];
    snprintf(path, sizeof path, "%s/log/w2.log", tw_h_mh_state());
    TW_H_ASSERT_MSG(tw_h_mh_file_has(path, "the broker asked this worker "
                                           "to drain"),
                    "%s shows the broker's WORKER drain", path);
    snprintf(path, sizeof path, "%s/w2.exit", tw_h_mh_state());
    int code = -1;
    FILE *fp = fopen(path, "r");
    if (fp) {
        if (fscanf(fp, "%d", &code) != 1) {
            code = -1;
        }
        fclose(fp);
    }
    TW_H_ASSERT_MSG(code == 0, "the worker of w2 exited %d (%s)", code,
                    path);
    printf("13-multihost: w2 drained, its stations run elsewhere\n");

    /* The monitor on its own host saw the workers and the stations. */
    char mon[600];
    snprintf(mon, sizeof mon, "%s/log/monitor.log", tw_h_mh_state());
    end = tw_h_now_ms() + 5000;
    while (!(tw_h_mh_file_has(mon, "worker.down") &&
             tw_h_mh_file_has(mon, "w2")) &&
           tw_h_now_ms() < end) {
        tw_h_sleep_ms(100);
    }
    TW_H_ASSERT_MSG(tw_h_mh_file_has(mon, "worker.up") &&
                        tw_h_mh_file_has(mon, "worker.down") &&
                        tw_h_mh_file_has(mon, "station.c-1.running") &&
                        tw_h_mh_file_has(mon, "station.c-8.running"),
                    "the monitor host's log %s shows the workers and the "
                    "stations",
                    mon);

    /* status works from the outside; down removes every namespace. */
    TW_H_ASSERT_EQ(tw_h_mh_script("status", NULL), 0);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_mh_down(), 0);
    static const char *const hosts[] = {"sw", "broker", "monitor", "w1",
                                        "w2", "w3", "w4"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char path[128];
        struct stat sb;
        snprintf(path, sizeof path, "/run/netns/%s-%s", tw_h_mh_tag(),
                 hosts[i]);
        TW_H_ASSERT_MSG(stat(path, &sb) != 0, "%s is still there", path);
    }
    printf("13-multihost: ok\n");
    return 0;
}
