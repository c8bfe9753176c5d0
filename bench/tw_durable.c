/*  bench/tw_durable.c - durable throughput as a ratio to in-memory.
 *
 *  Starts two real clusters side by side (bench/cluster.h), the same but
 *  for the broker's store: one in memory, one with --data in a fresh
 *  directory and --fsync P. Then R times, alternating which goes first so
 *  that slow phases of a noisy machine hit both: N `noop` tasks pipelined
 *  through each (tw_bench_pipeline, bench/load.h). Prints the medians and
 *  their ratio, the figure docs/BENCHMARKS.md records (target >= 0.70 with
 *  everysec):
 *
 *    durable: memory M tasks/s, store (fsync P) D tasks/s, ratio D/M
 *    (median of R runs)
 *
 *  Exit status: 0, 1 when a run failed, 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-durable [options]\n\n"
            "No-op tasks end to end against a broker in memory and one on a\n"
            "store, alternating in the same run.\n\n"
            "  --n N             tasks per run (default 200000)\n"
            "  --window W        tasks outstanding (default 20000)\n"
            "  --warmup N        untimed tasks first (default 20000)\n"
            "  --workers W       worker processes per cluster (default 2)\n"
            "  --slots S         slots per worker (default 256)\n"
            "  --runs R          runs; medians are reported (default 5)\n"
            "  --fsync P         always|everysec|no (default everysec)\n"
            "  --data DIR        the store directory (default: a fresh one\n"
            "                    under /tmp, removed at the end)\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-durable";
    long long n = 200000, window = 20000, warmup = 20000, workers = 2;
    long long slots = 256, runs = 5;
    const char *fsync = "everysec", *data = NULL;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_STR("--fsync", &fsync),
        TW_BENCH_STR("--data", &data),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    char tmp[64] = "/tmp/tw-bench-durable-XXXXXX";
    if (!data) {
        if (!mkdtemp(tmp)) {
            perror("bench-durable: mkdtemp");
            return 1;
        }
        data = tmp;
    }
    const char *const bargs[] = {"--data", data, "--fsync", fsync, NULL};
    tw_bench_cluster_opts_t dopts = {.broker_args = bargs};
    const tw_bench_cluster_opts_t *const opts[2] = {NULL, &dopts};
    tw_bench_side_t side[2] = {{.name = "memory"}, {.name = "store"}};
    double mm = 0, dm = 0;
    int rc = tw_bench_sides_open(side, opts, (int)workers, (int)slots,
                                 (size_t)runs);
    if (rc == 0) {
        rc = tw_bench_sides_run(side, (uint64_t)n, (uint64_t)window,
                                (uint64_t)warmup, (size_t)runs);
        if (rc == 0) {
            mm = tw_bench_median(side[0].rate, (size_t)runs);
            dm = tw_bench_median(side[1].rate, (size_t)runs);
        }
        tw_bench_sides_close(side, rc);
    }
    if (data == tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench-durable: could not remove %s\n", tmp);
        }
    }
    if (rc == 0) {
        printf("durable: memory %.0f tasks/s, store (fsync %s) %.0f "
               "tasks/s, ratio %.2f (median of %lld runs)\n",
               mm, fsync, dm, dm / mm, runs);
    }
    return rc == 0 ? 0 : 1;
}
