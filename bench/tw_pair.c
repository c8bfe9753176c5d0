/*  bench/tw_pair.c - a broker pair (docs/HA.md): its throughput against
 *  one broker, and its failover time in heartbeats.
 *
 *  Throughput: three real clusters side by side (bench/cluster.h), each
 *  with W workers on a store with --fsync P: a single broker, a pair
 *  under --replicate sync and a pair under --replicate async (the backup
 *  a broker of its own, started first, passive once the primary is
 *  active and following it). Then R times, rotating which goes first so
 *  that slow phases of a noisy machine hit all three: N `noop` tasks
 *  pipelined through each active (tw_bench_pipeline). Prints the medians
 *  and the ratios docs/BENCHMARKS.md records (targets: sync >= 0.6,
 *  async >= 0.9 of the single broker):
 *
 *    pair: single (fsync P) S tasks/s, sync pair Y tasks/s (ratio Y/S;
 *    per run y; target 0.6), async pair A tasks/s (ratio A/S; per run a;
 *    target 0.9), medians of R runs
 *
 *  (Y/S is the ratio of the medians, y the median of each run's own
 *  ratio: on a busy machine the second is steadier.)
 *
 *  Failover: F times, a fresh sync pair with --heartbeat H (the peers'
 *  heartbeat too) and a client given both frontends (heartbeat H,
 *  liveness 3); the primary is either SIGKILLed (its connections close at
 *  once, as when its process crashes) or SIGSTOPped (silence, as when its
 *  machine dies: everyone must count missed heartbeats), and the time
 *  from the signal to the ACK of a task submitted right after it, which
 *  only the new active can give, is measured. Prints, per signal, the
 *  median and the worst, in ms and in heartbeats, against the target of
 *  docs/HA.md section 7 (3 heartbeats plus the grace: the client's
 *  reconnect, 100-500 ms, and the takeover):
 *
 *    failover (SIGSTOP: a dead machine): heartbeat 300 ms: median M ms =
 *    m heartbeats, worst X ms = x heartbeats (F runs); target 3
 *    heartbeats + 500 ms = 1400 ms: within
 *
 *  Each run's figures go to stderr. Exit status: 0, 1 when a run failed,
 *  2 for a usage error (the targets are reported, not enforced: the
 *  machine decides them as much as the code).
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "common/error.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_GRACE_MS 500 /* the client's reconnect at most, and a takeover */
#define S_LIMIT_MS 30000

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-pair [options]\n\n"
            "A broker pair: no-op throughput (sync, async) as ratios of one\n"
            "broker on a store, and the failover time in heartbeats.\n\n"
            "  --n N             tasks per throughput run (default 20000)\n"
            "  --window W        tasks outstanding (default 2000)\n"
            "  --warmup N        untimed tasks first (default 2000)\n"
            "  --workers W       worker processes per cluster (default 2)\n"
            "  --slots S         slots per worker (default 256)\n"
            "  --runs R          throughput runs; medians (default 3)\n"
            "  --fsync P         every store's --fsync (default everysec)\n"
            "  --heartbeat H     the brokers' heartbeat in ms (default 300)\n"
            "  --failovers F     failover runs per signal (default 3)\n"
            "  --only WHAT       throughput or failover (default both)\n");
}

/* One pair: the primary's cluster (with the workers) and the backup's
 * (alone); the strings are what their options point at. */
typedef struct {
    tw_bench_cluster_t p, b;
    tw_client_t *cp; /* the primary cluster's client */
    char pdata[96], bdata[96], ppeer[48], bpeer[48];
    char fronts[140];
    const char *pargs[TW_BENCH_MAX_EXTRA_ARGS];
    const char *bargs[TW_BENCH_MAX_EXTRA_ARGS];
} s_pair_t;

static char s_base[64] = "/tmp/tw-bench-pair-XXXXXX";
static int s_serial;

/* The arguments of one broker of a pair into `argv`. */
static void
s_pair_args(const char **argv, const char *role, const char *bind,
            const char *peer, const char *mode, const char *data,
            const char *fsync, const char *hb)
{
    const char *a[] = {"--role", role, "--peer-bind", bind, "--peer", peer,
                       "--replicate", mode, "--data", data, "--fsync", fsync,
                       "--heartbeat", hb, NULL};
    memcpy(argv, a, sizeof a);
}

/* Start a pair: the backup first (it waits, pending, for a fresh
 * primary), then the primary with the workers given both backends; wait
 * until the primary is active and the backup follows it. */
static int
s_pair_open(s_pair_t *pp, const char *mode, int workers, int slots,
            const char *fsync, const char *hb)
{
    memset(pp, 0, sizeof *pp);
    int n = s_serial++;
    snprintf(pp->pdata, sizeof pp->pdata, "%s/%s-%d-p", s_base, mode, n);
    snprintf(pp->bdata, sizeof pp->bdata, "%s/%s-%d-b", s_base, mode, n);
    int pport = tw_bench_free_port(), bport = tw_bench_free_port();
    if (pport < 0 || bport < 0) {
        fprintf(stderr, "bench-pair: no free port\n");
        return TW_EIO;
    }
    snprintf(pp->ppeer, sizeof pp->ppeer, "tcp://127.0.0.1:%d", pport);
    snprintf(pp->bpeer, sizeof pp->bpeer, "tcp://127.0.0.1:%d", bport);
    s_pair_args(pp->bargs, "backup", pp->bpeer, pp->ppeer, mode, pp->bdata,
                fsync, hb);
    tw_bench_cluster_opts_t bo = {.broker_args = pp->bargs, .passive = 1};
    tw_client_t *cb = tw_bench_cluster_open(&pp->b, 0, 1, &bo);
    if (!cb) {
        return TW_EIO;
    }
    tw_client_destroy(&cb);
    s_pair_args(pp->pargs, "primary", pp->ppeer, pp->bpeer, mode, pp->pdata,
                fsync, hb);
    tw_bench_cluster_opts_t po = {.broker_args = pp->pargs,
                                  .also_backend = pp->b.backend};
    pp->cp = tw_bench_cluster_open(&pp->p, workers, slots, &po);
    if (!pp->cp) {
        tw_bench_cluster_stop(&pp->b);
        return TW_EIO;
    }
    snprintf(pp->fronts, sizeof pp->fronts, "%s,%s", pp->p.frontend,
             pp->b.frontend);
    uint64_t end = tw_bench_now_ns() + (uint64_t)S_LIMIT_MS * 1000000u;
    char follower[32] = "";
    while (tw_bench_now_ns() < end) {
        if (tw_bench_status_str(pp->cp, "ha_follower", 1000, follower,
                                sizeof follower) == 0 &&
            strcmp(follower, "following") == 0) {
            return 0;
        }
        tw_bench_sleep_ms(20);
    }
    tw_bench_cluster_fail(&pp->p, "the backup never followed the primary");
    tw_client_destroy(&pp->cp);
    tw_bench_cluster_stop(&pp->p);
    tw_bench_cluster_stop(&pp->b);
    return TW_ETIMEDOUT;
}

static void
s_pair_close(s_pair_t *pp)
{
    tw_client_destroy(&pp->cp);
    tw_bench_cluster_stop(&pp->p);
    tw_bench_cluster_stop(&pp->b);
}

/* ---------------------------------------------------------- throughput --- */

static int
s_throughput(long long n, long long window, long long warmup, int workers,
             int slots, long long runs, const char *fsync, const char *hb)
{
    char sdata[96];
    snprintf(sdata, sizeof sdata, "%s/single", s_base);
    const char *const sargs[] = {"--data", sdata, "--fsync", fsync,
                                 "--heartbeat", hb, NULL};
    tw_bench_cluster_opts_t so = {.broker_args = sargs};
    tw_bench_cluster_t single;
    static s_pair_t pairs[2];
    tw_client_t *cs = tw_bench_cluster_open(&single, workers, slots, &so);
    if (!cs) {
        return 1;
    }
    if (s_pair_open(&pairs[0], "sync", workers, slots, fsync, hb) != 0) {
        tw_client_destroy(&cs);
        tw_bench_cluster_stop(&single);
        return 1;
    }
    if (s_pair_open(&pairs[1], "async", workers, slots, fsync, hb) != 0) {
        s_pair_close(&pairs[0]);
        tw_client_destroy(&cs);
        tw_bench_cluster_stop(&single);
        return 1;
    }
    tw_bench_cluster_t *cl[3] = {&single, &pairs[0].p, &pairs[1].p};
    tw_client_t *c[3] = {cs, pairs[0].cp, pairs[1].cp};
    double *v[5]; /* rates: single, sync, async; ratios: sync, async */
    for (int k = 0; k < 5; k++) {
        v[k] = calloc((size_t)runs, sizeof *v[k]);
    }
    double scratch;
    int rc = 0;
    for (int k = 0; rc == 0 && warmup > 0 && k < 3; k++) {
        rc = tw_bench_pipeline(cl[k], c[k], (uint64_t)warmup,
                               (uint64_t)window, &scratch);
    }
    /* CPU time of the single broker and of each pair's two brokers over
     * the timed runs: what the passive costs where it shares the cores. */
    pid_t pids[5] = {single.broker, pairs[0].p.broker, pairs[0].b.broker,
                     pairs[1].p.broker, pairs[1].b.broker};
    long long cpu[5];
    for (int k = 0; k < 5; k++) {
        cpu[k] = tw_bench_cpu_ns(pids[k]);
    }
    for (long long r = 0; rc == 0 && r < runs; r++) {
        for (int i = 0; rc == 0 && i < 3; i++) {
            int k = (int)((r + i) % 3);
            rc = tw_bench_pipeline(cl[k], c[k], (uint64_t)n,
                                   (uint64_t)window, &v[k][r]);
        }
        if (rc == 0) {
            fprintf(stderr,
                    "run %lld/%lld: single %.0f tasks/s, sync pair %.0f "
                    "(%.2f), async pair %.0f (%.2f)\n",
                    r + 1, runs, v[0][r], v[1][r], v[1][r] / v[0][r],
                    v[2][r], v[2][r] / v[0][r]);
        }
    }
    if (rc == 0) {
        /* Medians of the rates, and of each run's own ratios (the three
         * of one run met the same moment of a noisy machine). */
        double *ry = v[3], *ra = v[4];
        for (long long r = 0; r < runs; r++) {
            ry[r] = v[1][r] / v[0][r];
            ra[r] = v[2][r] / v[0][r];
        }
        for (int k = 0; k < 5; k++) {
            cpu[k] = tw_bench_cpu_ns(pids[k]) - cpu[k];
        }
        printf("pair: broker CPU over the runs: single %.1f s; sync pair "
               "primary %.1f s, backup %.1f s; async pair primary %.1f s, "
               "backup %.1f s\n",
               cpu[0] / 1e9, cpu[1] / 1e9, cpu[2] / 1e9, cpu[3] / 1e9,
               cpu[4] / 1e9);
        double s = tw_bench_median(v[0], (size_t)runs);
        double y = tw_bench_median(v[1], (size_t)runs);
        double a = tw_bench_median(v[2], (size_t)runs);
        printf("pair: single (fsync %s) %.0f tasks/s, sync pair %.0f "
               "tasks/s (ratio %.2f; per run %.2f; target 0.6), async pair "
               "%.0f tasks/s (ratio %.2f; per run %.2f; target 0.9), "
               "medians of %lld runs\n",
               fsync, s, y, y / s, tw_bench_median(ry, (size_t)runs), a,
               a / s, tw_bench_median(ra, (size_t)runs), runs);
    }
    tw_client_destroy(&cs);
    tw_bench_cluster_stop(&single);
    s_pair_close(&pairs[0]);
    s_pair_close(&pairs[1]);
    for (int k = 0; k < 5; k++) {
        free(v[k]);
    }
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ failover --- */

typedef struct {
    uint64_t want; /* the seq whose ACK ends the measure */
    int acked;
} s_probe_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_probe_t *pr = arg;
    if (ack->seq == pr->want && ack->err == 0) {
        pr->acked = 1;
    }
}

/* One failover: a fresh pair, `sig` to the primary, *ms until a task
 * submitted after it is acknowledged. */
static int
s_failover(int sig, int workers, int slots, const char *fsync,
           const char *hb, double *ms)
{
    s_pair_t pp;
    if (s_pair_open(&pp, "sync", workers, slots, fsync, hb) != 0) {
        return TW_EIO;
    }
    tw_client_t *c = tw_client_new(pp.fronts);
    int rc = c ? 0 : TW_ENOMEM;
    tw_client_opts_t o = {.heartbeat_ms = (uint32_t)atoi(hb),
                          .liveness = 3,
                          .reconnect_min_ms = 100,
                          .reconnect_max_ms = 500};
    if (rc == 0) {
        rc = tw_client_set_opts(c, &o);
    }
    s_probe_t pr = {0, 0};
    tw_task_spec_t spec = {.handler = "noop"};
    uint64_t seq = 0;
    /* The client knows the active, and the active has served it. */
    for (int i = 0; rc == 0 && i < 100; i++) {
        rc = tw_client_submit(c, &spec, &seq);
    }
    if (rc == 0) {
        tw_client_on_ack(c, s_on_ack, &pr);
        rc = tw_client_wait_all(c, S_LIMIT_MS);
    }
    if (rc == 0) {
        uint64_t t0 = tw_bench_now_ns();
        kill(pp.p.broker, sig);
        rc = tw_client_submit(c, &spec, &seq);
        pr.want = seq;
        if (rc == 0) {
            rc = tw_client_flush(c);
            rc = rc == TW_EAGAIN ? 0 : rc;
        }
        uint64_t end = t0 + (uint64_t)S_LIMIT_MS * 1000000u;
        while (rc == 0 && !pr.acked) {
            if (tw_bench_now_ns() > end) {
                rc = TW_ETIMEDOUT;
                break;
            }
            /* Errors while the pair changes hands are the client's to
             * recover from; the deadline bounds the wait. */
            (void)tw_client_poll(c, 1);
        }
        *ms = (double)(tw_bench_now_ns() - t0) / 1e6;
    }
    char state[32] = "";
    if (rc == 0 &&
        (tw_bench_status_str(c, "ha_state", 2000, state, sizeof state) !=
             0 ||
         strcmp(state, "active") != 0)) {
        rc = TW_EPROTO;
    }
    if (sig == SIGSTOP) {
        kill(pp.p.broker, SIGKILL);
    }
    tw_client_destroy(&c);
    if (rc != 0) {
        fprintf(stderr, "bench-pair: failover run failed: %s (state of the "
                "new active: \"%s\")\n", tw_strerror(rc), state);
        tw_bench_cluster_fail(&pp.b, "failover failed");
    }
    s_pair_close(&pp);
    return rc;
}

static int
s_failovers(long long runs, int workers, int slots, const char *fsync,
            const char *hb)
{
    static const struct {
        int sig;
        const char *what;
    } kinds[] = {{SIGKILL, "SIGKILL: a crashed process"},
                 {SIGSTOP, "SIGSTOP: a dead machine"}};
    double hbms = atof(hb);
    double target = 3 * hbms + S_GRACE_MS;
    double *v = calloc((size_t)runs, sizeof *v);
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < 2; k++) {
        for (long long r = 0; rc == 0 && r < runs; r++) {
            rc = s_failover(kinds[k].sig, workers, slots, fsync, hb, &v[r]);
            if (rc == 0) {
                fprintf(stderr, "failover %lld/%lld (%s): %.0f ms\n", r + 1,
                        runs, kinds[k].what, v[r]);
            }
        }
        if (rc != 0) {
            break;
        }
        double worst = 0;
        for (long long r = 0; r < runs; r++) {
            worst = v[r] > worst ? v[r] : worst;
        }
        double med = tw_bench_median(v, (size_t)runs);
        printf("failover (%s): heartbeat %.0f ms: median %.0f ms = %.1f "
               "heartbeats, worst %.0f ms = %.1f heartbeats (%lld runs); "
               "target 3 heartbeats + %d ms = %.0f ms: %s\n",
               kinds[k].what, hbms, med, med / hbms, worst, worst / hbms,
               runs, S_GRACE_MS, target,
               worst <= target ? "within" : "over");
        fflush(stdout);
    }
    free(v);
    return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-pair";
    long long n = 20000, window = 2000, warmup = 2000, workers = 2;
    long long slots = 256, runs = 3, failovers = 3, hbn = 300;
    const char *fsync = "everysec", *only = NULL;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_STR("--fsync", &fsync),
        TW_BENCH_NUM("--heartbeat", &hbn, 50, 60000),
        TW_BENCH_NUM("--failovers", &failovers, 1, 1000),
        TW_BENCH_STR("--only", &only),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    if (only && strcmp(only, "throughput") != 0 &&
        strcmp(only, "failover") != 0) {
        fprintf(stderr, "%s: --only: throughput or failover\n", prog);
        s_usage(stderr);
        return 2;
    }
    if (!mkdtemp(s_base)) {
        perror("bench-pair: mkdtemp");
        return 1;
    }
    char hb[24];
    snprintf(hb, sizeof hb, "%lld", hbn);
    int rc = 0;
    if (!only || strcmp(only, "throughput") == 0) {
        rc = s_throughput(n, window, warmup, (int)workers, (int)slots, runs,
                          fsync, hb);
    }
    if (rc == 0 && (!only || strcmp(only, "failover") == 0)) {
        rc = s_failovers(failovers, (int)workers, (int)slots, fsync, hb);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_base);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s: could not remove %s\n", prog, s_base);
    }
    return rc;
}
