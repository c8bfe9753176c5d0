/*  bench/tw_stations.c - iterations per second of many no-op stations on
 *  one worker, and the broker's memory per station.
 *
 *  Starts a real broker and one real worker (bench/cluster.h) with as many
 *  slots as stations, reads the broker's resident memory, then adds N
 *  stations of the built-in `noop` handler (next "same", interval 0) with
 *  5,000 per tw_client_stations_add request, and polls QUERY "status"
 *  until "stations_running" reaches N. It reads the broker's memory again:
 *  the growth divided by N is the broker's memory per station. After a
 *  settling second it measures W windows of T ms each: the growth of the
 *  status counter "iterations" (which the broker adds up from the
 *  workers' STATION reports) over the window's measured length. The
 *  reports are coalesced every 100 ms per worker, so a window's edges are
 *  blurred by at most that much. Prints one line:
 *
 *    stations: 10000 noop stations on 1 worker: 123456 iterations/s
 *    (median of 3 windows of 5 s), broker 812 bytes/station (RSS 9.1 ->
 *    17.2 MiB), adds 1.52 s (152 us each), all running after 0.10 s
 *
 *  Each window's figures, and the CPU share the broker and the worker used
 *  in it, go to stderr. Exit status: 0, 1 when the run failed (a child
 *  died, an add was refused, the stations did not all run within the
 *  limit), 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_QUERY_TIMEOUT_MS 5000

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-stations [options]\n\n"
            "N no-op stations on one worker: iterations/s from the broker's\n"
            "status counter, and the broker's memory per station.\n\n"
            "  --stations N   stations to add (default 10000)\n"
            "  --slots S      the worker's slots (default: N)\n"
            "  --window-ms T  length of one measuring window (default 5000)\n"
            "  --windows W    windows; the median rate is reported\n"
            "                 (default 3)\n"
            "  --settle-ms M  wait after all run, before measuring\n"
            "                 (default 1000)\n"
            "  --interval I   the stations' interval in ms (default 0)\n"
            "  --limit-ms L   how long the stations may take to be all\n"
            "                 running (default 60000)\n");
}

static double
s_mib(long long bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* One window: iterations/s over about `ms` milliseconds. */
static int
s_window(tw_bench_cluster_t *cl, tw_client_t *c, long ms, double *rate,
         double *bcpu, double *wcpu)
{
    uint64_t it0, it1;
    long long b0 = tw_bench_cpu_ns(cl->broker);
    long long w0 = tw_bench_cpu_ns(cl->workers[0]);
    int rc = tw_bench_status_uint(c, "iterations", S_QUERY_TIMEOUT_MS, &it0);
    uint64_t t0 = tw_bench_now_ns();
    if (rc == 0) {
        tw_bench_sleep_ms(ms);
        rc = tw_bench_status_uint(c, "iterations", S_QUERY_TIMEOUT_MS, &it1);
    }
    uint64_t t1 = tw_bench_now_ns();
    long long b1 = tw_bench_cpu_ns(cl->broker);
    long long w1 = tw_bench_cpu_ns(cl->workers[0]);
    if (rc != 0) {
        tw_bench_cluster_fail(cl, "status query failed");
        return rc;
    }
    if ((rc = tw_bench_cluster_check(cl)) != 0) {
        return rc;
    }
    double secs = (double)(t1 - t0) / 1e9;
    *rate = (double)(it1 - it0) / secs;
    *bcpu = (double)(b1 - b0) / 1e9 / secs;
    *wcpu = (double)(w1 - w0) / 1e9 / secs;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-stations";
    long long n = 10000, slots = 0, window_ms = 5000, windows = 3;
    long long settle_ms = 1000, interval = 0, limit_ms = 60000;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--stations", &n, 1, 65536),
        TW_BENCH_NUM("--slots", &slots, 1, 65536),
        TW_BENCH_NUM("--window-ms", &window_ms, 100, 600000),
        TW_BENCH_NUM("--windows", &windows, 1, 100),
        TW_BENCH_NUM("--settle-ms", &settle_ms, 0, 600000),
        TW_BENCH_NUM("--interval", &interval, 0, 3600000),
        TW_BENCH_NUM("--limit-ms", &limit_ms, 100, 3600000),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    if (slots == 0) {
        slots = n;
    }

    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, 1, (int)slots, NULL);
    if (!c) {
        return 1;
    }
    double *rates = calloc((size_t)windows, sizeof *rates);
    long long rss0 = tw_bench_rss_bytes(cl.broker);
    long long wrss0 = tw_bench_rss_bytes(cl.workers[0]);
    uint64_t t0 = tw_bench_now_ns();
    int rc = tw_bench_add_stations(&cl, c, "bench-", (size_t)n,
                                   (uint64_t)interval);
    uint64_t t1 = tw_bench_now_ns();
    if (rc == 0) {
        rc = tw_bench_wait_stations(&cl, c, (uint64_t)n, (long)limit_ms);
    }
    uint64_t t2 = tw_bench_now_ns();
    long long rss1 = tw_bench_rss_bytes(cl.broker);
    long long wrss1 = tw_bench_rss_bytes(cl.workers[0]);
    double add_s = (double)(t1 - t0) / 1e9, run_s = (double)(t2 - t1) / 1e9;
    if (rc == 0) {
        fprintf(stderr, "added %lld stations in %.2f s (%.0f us each), all "
                        "running %.2f s later; broker RSS %.1f -> %.1f MiB, "
                        "worker RSS %.1f -> %.1f MiB\n",
                n, add_s, add_s * 1e6 / (double)n, run_s, s_mib(rss0),
                s_mib(rss1), s_mib(wrss0), s_mib(wrss1));
        tw_bench_sleep_ms((long)settle_ms);
    }
    for (long long w = 0; rc == 0 && w < windows; w++) {
        double bcpu, wcpu;
        rc = s_window(&cl, c, (long)window_ms, &rates[w], &bcpu, &wcpu);
        if (rc == 0) {
            fprintf(stderr, "window %lld/%lld: %.0f iterations/s, CPU "
                            "broker %.0f%% worker %.0f%%\n",
                    w + 1, windows, rates[w], bcpu * 100, wcpu * 100);
        }
    }
    long long rss2 = tw_bench_rss_bytes(cl.broker);
    tw_client_destroy(&c);
    if (rc != 0 && !cl.failed) {
        tw_bench_cluster_fail(&cl, "stations run failed");
    }
    tw_bench_cluster_stop(&cl);
    if (rc == 0) {
        fprintf(stderr, "broker RSS after measuring: %.1f MiB\n",
                s_mib(rss2));
        double per = (double)(rss1 - rss0) / (double)n;
        printf("stations: %lld noop stations on 1 worker: %.0f "
               "iterations/s (median of %lld windows of %.1f s), broker "
               "%.0f bytes/station (RSS %.1f -> %.1f MiB), adds %.2f s "
               "(%.0f us each), all running after %.2f s\n",
               n, tw_bench_median(rates, (size_t)windows), windows,
               (double)window_ms / 1000.0, per, s_mib(rss0), s_mib(rss1),
               add_s, add_s * 1e6 / (double)n, run_s);
    }
    free(rates);
    return rc == 0 ? 0 : 1;
}
