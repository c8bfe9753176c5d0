/*  bench/tw_soak.c - a long steady load, and the memory of every process
 *  over time.
 *
 *  Starts a real broker and W workers (bench/cluster.h) and submits small
 *  echo tasks from this process, a libtaskwheel client, at a set rate for
 *  a set duration (paced against the clock; at most `rate` x 5 tasks are
 *  outstanding, so a slow cluster shows as a rate shortfall, not as an
 *  ever-growing backlog). Once a second it reads VmRSS of the broker, of
 *  every worker and of itself from /proc. At the end it prints a table
 *  (one row every --every seconds), then per process the resident size
 *  after warm-up and its slope over the rest of the run by least squares:
 *
 *    soak: PROC rss first=KB last=KB slope=KB/min (after Ns warm-up)
 *
 *  The broker keeps up to --max-results ended tasks (default 100,000), so
 *  its memory rises until that many have ended, and then must be flat: a
 *  slope that stays positive after warm-up is a leak. --max-slope fails
 *  the run (exit 1) when any process grows faster than that many KB/min.
 *
 *  Exit status: 0, 1 when a run failed (a child died, a task failed, a
 *  slope past --max-slope), 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAXP (TW_BENCH_MAX_WORKERS + 2) /* broker, workers, client */

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-soak [options]\n\n"
            "Echo tasks at a steady rate for a long time; VmRSS of the\n"
            "broker, every worker and the client sampled every second.\n\n"
            "  --duration S   seconds of load (default 300)\n"
            "  --rate R       tasks per second (default 2000)\n"
            "  --warmup S     seconds left out of the slope (default 60)\n"
            "  --workers W    worker processes (default 2)\n"
            "  --slots S      slots per worker (default 64)\n"
            "  --every S      print one table row every S seconds "
            "(default 10)\n"
            "  --max-slope K  fail if a process grows faster than K KB/min "
            "after warm-up (default: report only)\n");
}

/* Least-squares slope of y over x. */
static double
s_slope(const double *x, const double *y, size_t n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    double d = (double)n * sxx - sx * sx;
    return n < 2 || d == 0 ? 0 : ((double)n * sxy - sx * sy) / d;
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-soak";
    long long duration = 300, rate = 2000, warmup = 60, workers = 2;
    long long slots = 64, every = 10, max_slope = -1;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--duration", &duration, 1, 7 * 24 * 3600),
        TW_BENCH_NUM("--rate", &rate, 1, 10000000),
        TW_BENCH_NUM("--warmup", &warmup, 0, 7 * 24 * 3600),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--every", &every, 1, 3600),
        TW_BENCH_NUM("--max-slope", &max_slope, 0, 1LL << 40),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    if (warmup >= duration) {
        fprintf(stderr, "%s: --warmup must be shorter than --duration\n",
                prog);
        return 2;
    }

    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, (int)workers, (int)slots,
                                           NULL);
    if (!c) {
        return 1;
    }
    size_t np = (size_t)workers + 2;
    pid_t pids[S_MAXP];
    char names[S_MAXP][16];
    pids[0] = cl.broker;
    snprintf(names[0], sizeof names[0], "broker");
    for (size_t i = 0; i < (size_t)workers; i++) {
        pids[1 + i] = cl.workers[i];
        snprintf(names[1 + i], sizeof names[1 + i], "worker%zu", i + 1);
    }
    pids[np - 1] = getpid();
    snprintf(names[np - 1], sizeof names[np - 1], "client");
    size_t cap = (size_t)duration + 2;
    double *t = calloc(cap, sizeof *t);
    double *kb = calloc(cap * np, sizeof *kb);

    static const unsigned char arg[] = {0xa8, 's', 'o', 'a', 'k',
                                        '-', 'a', 'r', 'g'};
    tw_task_spec_t spec = {.handler = "echo", .args = arg,
                           .args_len = sizeof arg};
    uint64_t t0 = tw_bench_now_ns(), next_sample = t0;
    uint64_t submitted = 0, window = (uint64_t)rate * 5;
    size_t ns = 0;
    int rc = 0;
    while (rc == 0) {
        uint64_t now = tw_bench_now_ns();
        double el = (double)(now - t0) / 1e9;
        if (now >= next_sample) {
            if (ns < cap) {
                t[ns] = el;
                for (size_t p = 0; p < np; p++) {
                    long long b = tw_bench_rss_bytes(pids[p]);
                    kb[ns * np + p] = b > 0 ? (double)b / 1024.0 : 0;
                }
                ns++;
            }
            next_sample += 1000000000ULL;
            rc = tw_bench_cluster_check(&cl);
        }
        if (el >= (double)duration) {
            break;
        }
        uint64_t due = (uint64_t)(el * (double)rate);
        while (submitted < due &&
               submitted - cl.outcomes.done < window) {
            if (tw_client_submit(c, &spec, NULL) != 0) {
                rc = 1;
                break;
            }
            submitted++;
        }
        if (tw_client_poll(c, 1) < 0) {
            rc = 1;
        }
        if (cl.outcomes.err) {
            fprintf(stderr, "%s: %s\n", prog, cl.outcomes.why);
            rc = 1;
        }
    }
    /* Let the last ones end. */
    if (rc == 0 && tw_client_wait_all(c, 10000) != 0) {
        rc = 1;
    }
    uint64_t done = cl.outcomes.done;
    double secs = (double)(tw_bench_now_ns() - t0) / 1e9;
    tw_client_destroy(&c);
    if (rc != 0) {
        tw_bench_cluster_fail(&cl, "soak run failed");
        tw_bench_cluster_stop(&cl);
        free(t);
        free(kb);
        return 1;
    }
    tw_bench_cluster_stop(&cl);

    printf("%8s", "t(s)");
    for (size_t p = 0; p < np; p++) {
        printf(" %10s", names[p]);
    }
    printf("   (VmRSS, KB)\n");
    for (size_t i = 0; i < ns; i++) {
        if (i % (size_t)every != 0 && i + 1 != ns) {
            continue;
        }
        printf("%8.0f", t[i]);
        for (size_t p = 0; p < np; p++) {
            printf(" %10.0f", kb[i * np + p]);
        }
        printf("\n");
    }
    printf("soak: %llu tasks in %.0f s (%.0f tasks/s, target %lld)\n",
           (unsigned long long)done, secs, (double)done / secs, rate);
    size_t w0 = 0;
    while (w0 < ns && t[w0] < (double)warmup) {
        w0++;
    }
    int bad = 0;
    double *x = calloc(ns + 1, sizeof *x), *y = calloc(ns + 1, sizeof *y);
    for (size_t p = 0; p < np; p++) {
        size_t m = 0;
        for (size_t i = w0; i < ns; i++) {
            x[m] = t[i] / 60.0;
            y[m] = kb[i * np + p];
            m++;
        }
        double slope = s_slope(x, y, m);
        printf("soak: %-8s rss first=%.0f KB last=%.0f KB slope=%+.1f "
               "KB/min (after %lld s warm-up)\n",
               names[p], m ? y[0] : 0, m ? y[m - 1] : 0, slope, warmup);
        if (max_slope >= 0 && slope > (double)max_slope) {
            bad = 1;
        }
    }
    free(x);
    free(y);
    free(t);
    free(kb);
    if (bad) {
        fprintf(stderr, "%s: a process grew faster than %lld KB/min\n",
                prog, max_slope);
        return 1;
    }
    return 0;
}
