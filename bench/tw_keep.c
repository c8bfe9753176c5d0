/*  bench/tw_keep.c - what keeping task records costs the broker.
 *
 *  1. Two real clusters side by side (bench/cluster.h), the same but for
 *     what the broker keeps of ended tasks: "on" runs with the defaults
 *     (records kept, up to --max-results 100000 ended and --max-failed
 *     100000 failed ones, swept as they go past), "off" keeps none
 *     (--max-results 0 --result-ttl 0 --record-args 0: a record goes as
 *     soon as its task ends). R times, alternating which goes first so
 *     that slow phases of a noisy machine hit both: N `noop` tasks
 *     pipelined through each (tw_bench_pipeline, bench/load.h); the
 *     medians and their ratio on/off (target >= 0.9).
 *  2. Then a third cluster that keeps everything (--max-results 2000000
 *     --result-ttl 86400): K no-op tasks through it; the broker's memory
 *     per kept record is its VmRSS growth over K.
 *  3. The first page of `tasks list` (tw_client_tasks_list, limit 50)
 *     over those K records, end to end through the broker's frontend, P
 *     times for each of three filters: none; state=ok; handler=nosuch,
 *     which matches nothing and so is the worst case (the broker walks
 *     to its scan budget of 100,000 records and answers a short page).
 *     Median and largest (target: under 50 ms).
 *
 *    keep: records on T1 tasks/s, off T0 tasks/s, ratio T1/T0 (median
 *    of R runs); K records kept: broker RSS +M MiB, B bytes/record;
 *    first page of 50 (median of P): all X ms, state=ok Y ms, matching
 *    nothing Z ms (largest W ms)
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
            "usage: bench-keep [options]\n\n"
            "No-op tasks end to end against a broker that keeps task\n"
            "records (the defaults) and one that keeps none, alternating\n"
            "in the same run; then memory per kept record and a first page\n"
            "of tasks list over K records.\n\n"
            "  --n N             tasks per run (default 200000)\n"
            "  --window W        tasks outstanding (default 20000)\n"
            "  --warmup N        untimed tasks first (default 20000)\n"
            "  --workers W       worker processes per cluster (default 2)\n"
            "  --slots S         slots per worker (default 256)\n"
            "  --runs R          runs; medians are reported (default 5)\n"
            "  --keep K          records kept for the memory and list\n"
            "                    figures (default 1000000)\n"
            "  --pages P         first pages timed per filter (default 20)\n");
}

/* The first page (limit 50) for `req`, `pages` times, each timed from
 * the request to the decoded reply: the median and the largest in ms. */
static int
s_pages(tw_client_t *c, tw_tasks_req_t req, long long pages, double *med,
        double *max)
{
    double *ms = calloc((size_t)pages, sizeof *ms);
    int rc = 0;
    req.limit = 50;
    for (long long i = 0; rc == 0 && i < pages; i++) {
        void *data = NULL;
        size_t len = 0;
        uint64_t t0 = tw_bench_now_ns();
        rc = tw_client_tasks_list(c, &req, 10000, &data, &len);
        ms[i] = (double)(tw_bench_now_ns() - t0) / 1e6;
        free(data);
        if (rc != 0) {
            fprintf(stderr, "bench-keep: tasks list: %s (%s)\n",
                    tw_client_strerror(rc), tw_client_last_error(c));
        }
    }
    if (rc == 0) {
        *med = tw_bench_median(ms, (size_t)pages);
        *max = tw_bench_quantile(ms, (size_t)pages, 1.0);
    }
    free(ms);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-keep";
    long long n = 200000, window = 20000, warmup = 20000, workers = 2;
    long long slots = 256, runs = 5, keep = 1000000, pages = 20;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--keep", &keep, 1, 1900000),
        TW_BENCH_NUM("--pages", &pages, 1, 10000),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    const char *const off_args[] = {"--max-results", "0", "--result-ttl",
                                    "0", "--record-args", "0", NULL};
    const char *const many_args[] = {"--max-results", "2000000",
                                     "--result-ttl", "86400", NULL};
    tw_bench_cluster_opts_t off_opts = {.broker_args = off_args};
    tw_bench_cluster_opts_t many_opts = {.broker_args = many_args};
    const tw_bench_cluster_opts_t *const opts[2] = {&off_opts, NULL};
    tw_bench_side_t side[2] = {{.name = "records off"},
                               {.name = "records on"}};
    double m0 = 0, m1 = 0, scratch;
    int rc = tw_bench_sides_open(side, opts, (int)workers, (int)slots,
                                 (size_t)runs);
    if (rc != 0) {
        return 1;
    }
    rc = tw_bench_sides_run(side, (uint64_t)n, (uint64_t)window,
                            (uint64_t)warmup, (size_t)runs);
    if (rc == 0) {
        m0 = tw_bench_median(side[0].rate, (size_t)runs);
        m1 = tw_bench_median(side[1].rate, (size_t)runs);
    }
    tw_bench_sides_close(side, rc);

    /* K records kept: memory, then first pages. */
    long long rss0 = 0, rss1 = 0;
    double med[3] = {0}, max[3] = {0};
    static const char *const names[3] = {"all", "state=ok",
                                         "matching nothing"};
    tw_bench_cluster_t many;
    tw_client_t *cb = NULL;
    if (rc == 0) {
        cb = tw_bench_cluster_open(&many, (int)workers, (int)slots,
                                   &many_opts);
        rc = cb ? 0 : TW_EIO;
    }
    if (rc == 0) {
        rss0 = tw_bench_rss_bytes(many.broker);
        rc = tw_bench_pipeline(&many, cb, (uint64_t)keep, (uint64_t)window,
                               &scratch);
    }
    if (rc == 0) {
        rss1 = tw_bench_rss_bytes(many.broker);
        fprintf(stderr, "%lld records kept at %.0f tasks/s; broker RSS "
                "%.1f -> %.1f MiB\n", keep, scratch,
                (double)rss0 / 1048576.0, (double)rss1 / 1048576.0);
        tw_tasks_req_t reqs[3] = {{0}, {0}, {0}};
        reqs[1].state = "ok";
        reqs[2].handler = "nosuch"; /* walks to the scan budget */
        for (int i = 0; rc == 0 && i < 3; i++) {
            rc = s_pages(cb, reqs[i], pages, &med[i], &max[i]);
            if (rc == 0) {
                fprintf(stderr, "first page, %s: median %.2f ms, largest "
                        "%.2f ms\n", names[i], med[i], max[i]);
            }
        }
    }
    if (cb) {
        tw_client_destroy(&cb);
        if (rc != 0) {
            tw_bench_cluster_fail(&many, "run failed");
        }
        tw_bench_cluster_stop(&many);
    }
    if (rc == 0) {
        printf("keep: records on %.0f tasks/s, off %.0f tasks/s, ratio "
               "%.2f (median of %lld runs); %lld records kept: broker RSS "
               "+%.1f MiB, %.0f bytes/record; first page of 50 (median of "
               "%lld): %s %.2f ms, %s %.2f ms, %s %.2f ms (largest %.2f "
               "ms)\n",
               m1, m0, m1 / m0, runs, keep,
               (double)(rss1 - rss0) / 1048576.0,
               (double)(rss1 - rss0) / (double)keep, pages, names[0],
               med[0], names[1], med[1], names[2], med[2],
               max[0] > max[1] ? (max[0] > max[2] ? max[0] : max[2])
                               : (max[1] > max[2] ? max[1] : max[2]));
    }
    return rc == 0 ? 0 : 1;
}
