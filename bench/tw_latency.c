/*  bench/tw_latency.c - one task's round trip, submit -> result, against
 *  the raw relay.
 *
 *  Starts a real broker and W workers (bench/cluster.h) and a raw relay
 *  (bench/relay.h), then R runs. A taskwheel round trip submits one `noop`
 *  task and waits for its result before the next (tw_client_submit to the
 *  result callback); a relay round trip sends 64 bytes and waits for the
 *  echo. Each run makes N of each in alternating blocks of K (default 1:
 *  one of each in turn), so a busy moment of a shared machine hits both
 *  sides alike, and takes each side's p50 and p99. Reports the medians
 *  over the runs, in microseconds, and the ratios:
 *
 *    latency: taskwheel p50 180us p99 400us, relay p50 166us p99 300us,
 *    ratio p50 1.08 p99 1.33 (median of 3 runs)
 *
 *  Exit status: 0, 1 when a run failed, 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/relay.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_IDLE_LIMIT_NS 10000000000ull /* no message for 10 s: give up */

/* `n` round trips one at a time into us[0..n-1], in microseconds. */
static int
s_round_trips(tw_bench_cluster_t *cl, tw_client_t *c, size_t n, double *us)
{
    tw_bench_outcomes_t *st = &cl->outcomes;
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t want = st->done + 1;
        uint64_t t0 = tw_bench_now_ns(), last = t0;
        rc = tw_client_submit(c, &spec, NULL);
        while (rc == 0 && st->done < want) {
            int m = tw_client_poll(c, 500);
            uint64_t now = tw_bench_now_ns();
            if (m < 0) {
                rc = m;
            } else if (m > 0) {
                last = now;
            } else if ((rc = tw_bench_cluster_check(cl)) == 0
                       && now - last > S_IDLE_LIMIT_NS) {
                rc = TW_ETIMEDOUT;
            }
        }
        if (rc == 0 && st->err != 0) {
            rc = st->err;
            fprintf(stderr, "bench: %s\n", st->why);
        }
        if (rc == 0) {
            us[i] = (double)(tw_bench_now_ns() - t0) / 1000.0;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "bench: round trip failed: %s\n", tw_strerror(rc));
    }
    return rc;
}

/* One run: `n` taskwheel and (if `relay`) `n` relay round trips, in
 * alternating blocks of `block`; each side's p50 and p99. */
static int
s_run(tw_bench_cluster_t *cl, tw_client_t *c, tw_relay_t *relay, size_t n,
      size_t block, double out[4])
{
    double *tw = malloc(n * sizeof *tw), *rl = malloc(n * sizeof *rl);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n; off += block) {
        size_t m = n - off < block ? n - off : block;
        rc = s_round_trips(cl, c, m, tw + off);
        if (rc == 0 && relay) {
            rc = tw_relay_round_trips(relay, m, rl + off);
        }
    }
    if (rc == 0) {
        out[0] = tw_bench_quantile(tw, n, 0.50);
        out[1] = tw_bench_quantile(tw, n, 0.99);
        out[2] = relay ? tw_bench_quantile(rl, n, 0.50) : 0;
        out[3] = relay ? tw_bench_quantile(rl, n, 0.99) : 0;
    }
    free(tw);
    free(rl);
    return rc;
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-latency [options]\n\n"
            "One no-op task at a time, submit -> result, against the raw\n"
            "ZeroMQ relay's round trip in the same run.\n\n"
            "  --n N        timed round trips per run (default 10000)\n"
            "  --warmup N   untimed round trips first (default 1000)\n"
            "  --workers W  worker processes (default 1)\n"
            "  --slots S    slots per worker (default 256)\n"
            "  --runs R     runs; medians of the percentiles are reported\n"
            "               (default 3)\n"
            "  --block K    alternate blocks of K taskwheel and K relay round\n"
            "               trips (default 1: strictly alternating)\n"
            "  --size B     relay payload bytes (default 64)\n"
            "  --no-relay   skip the baseline\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-latency";
    long long n = 10000, warmup = 1000, workers = 1, slots = 256, runs = 3;
    long long size = 64, block = 1;
    int relay = 1;
    const long long big = 1LL << 32;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--block", &block, 1, big),
        TW_RELAY_BASELINE_FLAGS(&size, &relay),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    size_t nr = (size_t)runs;
    tw_relay_opts_t ro = {0, 0, (size_t)size, 1, (size_t)n};

    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, (int)workers, (int)slots,
                                           NULL);
    if (!c) {
        return 1;
    }
    double *t50 = calloc(nr, sizeof *t50), *t99 = calloc(nr, sizeof *t99);
    double *r50 = calloc(nr, sizeof *r50), *r99 = calloc(nr, sizeof *r99);
    tw_relay_t *rel = NULL;
    int rc = 0;
    if (relay) {
        rc = tw_relay_start(&ro, &rel);
    }
    /* Untimed warm-up of both sides. */
    double *scratch = malloc((size_t)(warmup + 1) * sizeof *scratch);
    if (rc == 0) {
        rc = s_round_trips(&cl, c, (size_t)warmup, scratch);
    }
    if (rc == 0 && rel) {
        rc = tw_relay_round_trips(rel, (size_t)warmup, scratch);
    }
    free(scratch);
    for (size_t r = 0; rc == 0 && r < nr; r++) {
        double q[4];
        rc = s_run(&cl, c, rel, (size_t)n, (size_t)block, q);
        if (rc != 0) {
            break;
        }
        t50[r] = q[0];
        t99[r] = q[1];
        r50[r] = q[2];
        r99[r] = q[3];
        fprintf(stderr, "run %zu/%zu: taskwheel p50 %.0fus p99 %.0fus", r + 1,
                nr, t50[r], t99[r]);
        if (relay) {
            fprintf(stderr, ", relay p50 %.0fus p99 %.0fus", r50[r], r99[r]);
        }
        fprintf(stderr, "\n");
    }
    tw_relay_stop(&rel);
    tw_client_destroy(&c);
    if (rc != 0) {
        if (!cl.failed) {
            tw_bench_cluster_fail(&cl, "latency run failed");
        }
    }
    tw_bench_cluster_stop(&cl);
    if (rc == 0) {
        double a = tw_bench_median(t50, nr), b = tw_bench_median(t99, nr);
        if (relay) {
            double x = tw_bench_median(r50, nr), y = tw_bench_median(r99, nr);
            printf("latency: taskwheel p50 %.0fus p99 %.0fus, relay p50 "
                   "%.0fus p99 %.0fus, ratio p50 %.2f p99 %.2f (median of "
                   "%zu runs)\n",
                   a, b, x, y, a / x, b / y, nr);
        } else {
            printf("latency: taskwheel p50 %.0fus p99 %.0fus (median of "
                   "%zu runs)\n",
                   a, b, nr);
        }
    }
    free(t50);
    free(t99);
    free(r50);
    free(r99);
    return rc == 0 ? 0 : 1;
}
