/*  bench/tw_throughput.c - no-op tasks end to end, pipelined, against the
 *  raw relay.
 *
 *  Starts a real broker and W workers (bench/cluster.h), then R times:
 *  submits N `noop` tasks through libtaskwheel keeping a window of them
 *  outstanding (submit until the window is full, tw_client_poll while
 *  results arrive, top up: tw_bench_pipeline, bench/load.h), timed from
 *  the first submit to the last result; and right after, in the same run,
 *  the raw relay's pipelined rate (bench/relay.h). Runs alternate so that
 *  slow phases of a noisy machine hit both. Prints one line with the
 *  medians and their ratio:
 *
 *    throughput: taskwheel T tasks/s, relay R req/s, ratio T/R (median of
 *    5 runs)
 *
 *  With --data DIR the broker runs on a store in DIR (created if missing;
 *  start from an empty one) with --fsync P (default everysec): the
 *  durable throughput, to compare with a run without --data
 *  (docs/STORAGE.md, docs/BENCHMARKS.md).
 *
 *  Exit status: 0, 1 when a run failed (a child died, a task was refused
 *  or failed, nothing arrived for 10 s), 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "bench/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-throughput [options]\n\n"
            "No-op tasks end to end (client -> broker -> worker -> result),\n"
            "pipelined, against the raw ZeroMQ relay in the same run.\n\n"
            "  --n N             tasks per run (default 200000)\n"
            "  --window W        tasks outstanding (default 20000)\n"
            "  --warmup N        untimed tasks first (default 20000)\n"
            "  --workers W       worker processes (default 2)\n"
            "  --slots S         slots per worker (default 256)\n"
            "  --runs R          runs; medians are reported (default 5)\n"
            "  --relay-n N       relay requests per run (default 500000)\n"
            "  --relay-window W  relay requests in flight (default 1000)\n"
            "  --size B          relay payload bytes (default 64)\n"
            "  --no-relay        skip the baseline\n"
            "  --data DIR        run the broker on a store in DIR\n"
            "  --fsync P         with --data: always|everysec|no "
            "(default everysec)\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-throughput";
    long long n = 200000, window = 20000, warmup = 20000, workers = 2;
    long long slots = 256, runs = 5, relay_n = 500000, relay_window = 1000;
    long long size = 64;
    int relay = 1;
    const char *data = NULL, *fsync = "everysec";
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--relay-n", &relay_n, 1, big),
        TW_BENCH_NUM("--relay-window", &relay_window, 1, 1 << 24),
        TW_RELAY_BASELINE_FLAGS(&size, &relay),
        TW_BENCH_STR("--data", &data),
        TW_BENCH_STR("--fsync", &fsync),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    tw_relay_opts_t ro = {0, 0, (size_t)size, (size_t)relay_window,
                          (size_t)relay_n};

    tw_bench_cluster_t cl;
    const char *const bargs[] = {"--data", data, "--fsync", fsync, NULL};
    tw_bench_cluster_opts_t copts = {.broker_args = data ? bargs : NULL};
    tw_client_t *c = tw_bench_cluster_open(&cl, (int)workers, (int)slots,
                                           data ? &copts : NULL);
    if (!c) {
        return 1;
    }
    double *tw = calloc((size_t)runs, sizeof *tw);
    double *rl = calloc((size_t)runs, sizeof *rl);
    double scratch;
    int rc = 0;
    if (warmup > 0) {
        rc = tw_bench_pipeline(&cl, c, (uint64_t)warmup, (uint64_t)window,
                               &scratch);
    }
    for (long long r = 0; rc == 0 && r < runs; r++) {
        rc = tw_bench_pipeline(&cl, c, (uint64_t)n, (uint64_t)window,
                               &tw[r]);
        if (rc == 0 && relay) {
            rc = tw_relay_throughput(&ro, &rl[r]);
        }
        if (rc == 0) {
            fprintf(stderr, "run %lld/%lld: taskwheel %.0f tasks/s", r + 1,
                    runs, tw[r]);
            if (relay) {
                fprintf(stderr, ", relay %.0f req/s, ratio %.2f", rl[r],
                        tw[r] / rl[r]);
            }
            fprintf(stderr, "\n");
        }
    }
    tw_client_destroy(&c);
    if (rc != 0) {
        if (!cl.failed) {
            tw_bench_cluster_fail(&cl, "throughput run failed");
        }
        tw_bench_cluster_stop(&cl);
        free(tw);
        free(rl);
        return 1;
    }
    tw_bench_cluster_stop(&cl);

    double tm = tw_bench_median(tw, (size_t)runs);
    if (relay) {
        double rm = tw_bench_median(rl, (size_t)runs);
        printf("throughput: taskwheel %.0f tasks/s, relay %.0f req/s, "
               "ratio %.2f (median of %lld runs)%s%s\n",
               tm, rm, tm / rm, runs, data ? ", store fsync " : "",
               data ? fsync : "");
    } else {
        printf("throughput: taskwheel %.0f tasks/s (median of %lld runs)"
               "%s%s\n",
               tm, runs, data ? ", store fsync " : "", data ? fsync : "");
    }
    free(tw);
    free(rl);
    return 0;
}
