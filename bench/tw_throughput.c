/*  bench/tw_throughput.c - no-op tasks end to end, pipelined, against the
 *  raw relay.
 *
 *  Starts a real broker and W workers (bench/cluster.h), then R times:
 *  submits N `noop` tasks through libtaskwheel keeping a window of them
 *  outstanding (submit until the window is full, tw_client_poll while
 *  results arrive, top up), timed from the first submit to the last
 *  result; and right after, in the same run, the raw relay's pipelined
 *  rate (bench/relay.h). Runs alternate so that slow phases of a noisy
 *  machine hit both. Prints one line with the medians and their ratio:
 *
 *    throughput: taskwheel T tasks/s, relay R req/s, ratio T/R (median of
 *    5 runs)
 *
 *  Exit status: 0, 1 when a run failed (a child died, a task was refused
 *  or failed, nothing arrived for 10 s), 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/relay.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_IDLE_LIMIT_NS 10000000000ull /* no message for 10 s: give up */

typedef struct {
    uint64_t done;     /* outcomes: results and refused submissions */
    uint64_t bad;      /* results that were not "ok" */
    uint64_t refused;  /* per-task ACK errors */
    char first_err[160];
} s_counts_t;

static void
s_on_ack(void *arg, uint64_t seq, uint64_t id, int err, const char *msg)
{
    s_counts_t *k = arg;
    if (err == 0) {
        return;
    }
    /* A refused task gets no result: it is finished here. */
    if (k->refused++ == 0) {
        snprintf(k->first_err, sizeof k->first_err, "refused: %s (%s)",
                 tw_client_strerror(err), msg ? msg : "");
    }
    k->done++;
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_counts_t *k = arg;
    k->done++;
    if (r->state != 0 && k->bad++ == 0 && k->refused == 0) {
        snprintf(k->first_err, sizeof k->first_err, "task state %d: %s",
                 r->state, r->error ? r->error : "");
    }
}

/* Push `n` no-op tasks through with at most `window` outstanding; *rate
 * gets tasks per second. Returns 0 or a negative error. */
static int
s_run(tw_bench_cluster_t *cl, tw_client_t *c, s_counts_t *k, uint64_t n,
      uint64_t window, double *rate)
{
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    memset(k, 0, sizeof *k);
    uint64_t submitted = 0;
    uint64_t t0 = tw_bench_now_ns(), last = t0;
    while (k->done < n) {
        while (submitted < n && submitted - k->done < window) {
            int rc = tw_client_submit(c, &spec, NULL);
            if (rc != 0) {
                fprintf(stderr, "bench: submit: %s\n", tw_strerror(rc));
                return rc;
            }
            submitted++;
        }
        int m = tw_client_poll(c, 500);
        if (m < 0) {
            fprintf(stderr, "bench: poll: %s\n", tw_strerror(m));
            return m;
        }
        uint64_t now = tw_bench_now_ns();
        if (m > 0) {
            last = now;
        } else if (tw_bench_cluster_check(cl) != 0) {
            return TW_EIO;
        } else if (now - last > S_IDLE_LIMIT_NS) {
            fprintf(stderr, "bench: nothing from the broker for 10 s; "
                            "%llu of %llu outcomes\n",
                    (unsigned long long)k->done, (unsigned long long)n);
            return TW_ETIMEDOUT;
        }
    }
    uint64_t t1 = tw_bench_now_ns();
    if (k->refused || k->bad) {
        fprintf(stderr, "bench: %llu refused, %llu not ok; first: %s\n",
                (unsigned long long)k->refused, (unsigned long long)k->bad,
                k->first_err);
        return TW_EFAILED;
    }
    *rate = (double)n * 1e9 / (double)(t1 > t0 ? t1 - t0 : 1);
    return 0;
}

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
            "  --no-relay        skip the baseline\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-throughput";
    long long n = 200000, window = 20000, warmup = 20000, workers = 2;
    long long slots = 256, runs = 5, relay_n = 500000, relay_window = 1000;
    long long size = 64;
    int relay = 1;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_NUM("--workers", &workers, 1, TW_BENCH_MAX_WORKERS),
        TW_BENCH_NUM("--slots", &slots, 1, 1 << 20),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--relay-n", &relay_n, 1, big),
        TW_BENCH_NUM("--relay-window", &relay_window, 1, 1 << 24),
        TW_BENCH_NUM("--size", &size, 0, 1 << 26),
        TW_BENCH_SWITCH("--no-relay", &relay, 0),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }

    tw_bench_cluster_t cl;
    if (tw_bench_cluster_start(&cl, (int)workers, (int)slots, 15000) != 0) {
        return 1;
    }
    tw_client_t *c = tw_bench_cluster_client(&cl);
    s_counts_t k;
    if (!c) {
        return 1;
    }
    tw_client_on_ack(c, s_on_ack, &k);
    tw_client_on_result(c, s_on_result, &k);

    double *tw = calloc((size_t)runs, sizeof *tw);
    double *rl = calloc((size_t)runs, sizeof *rl);
    double scratch;
    int rc = 0;
    if (warmup > 0) {
        rc = s_run(&cl, c, &k, (uint64_t)warmup, (uint64_t)window, &scratch);
    }
    tw_relay_opts_t ro = {0, 0, (size_t)size, (size_t)relay_window,
                          (size_t)relay_n};
    for (long long r = 0; rc == 0 && r < runs; r++) {
        rc = s_run(&cl, c, &k, (uint64_t)n, (uint64_t)window, &tw[r]);
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
               "ratio %.2f (median of %lld runs)\n",
               tm, rm, tm / rm, runs);
    } else {
        printf("throughput: taskwheel %.0f tasks/s (median of %lld runs)\n",
               tm, runs);
    }
    free(tw);
    free(rl);
    return 0;
}
