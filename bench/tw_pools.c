/*  bench/tw_pools.c - what a group limit costs: map-style throughput with
 *  a limit in force, and the admission round trip of a full "reject"
 *  group, against the raw relay.
 *
 *  Starts a real broker and W workers (bench/cluster.h), then measures
 *  two things.
 *
 *  Map throughput. R times, alternating which goes first: N `noop` tasks
 *  pipelined with a window outstanding (tw_bench_pipeline, bench/load.h)
 *  without any group, and the same with every task in one group whose
 *  limit (default 400) is set before the runs. The window (default 400)
 *  does not exceed the limit, so the broker checks the limit on every
 *  dispatch but the limit never holds a task back: the difference is the
 *  cost of the check and of the group's bookkeeping. Reports both medians
 *  and the median of the per-run ratios grouped/plain, and the ratio of
 *  the medians (the target: the limit costs under 10 %).
 *
 *  Admission. A group of limit 1 with full "reject" is occupied by one
 *  long `sleep` task; then a second client times N single-task SUBMIT
 *  round trips into that group (submit, flush, poll until the ACK with
 *  its TW_ELIMIT refusal arrives), alternating one by one with the raw
 *  relay's round trip (bench/relay.h), R times. Reports the medians of
 *  each run's p50 and p99 in microseconds and the ratios. Output:
 *
 *    pools map: grouped (limit 400) G tasks/s, plain P tasks/s, ratio Q
 *    (of medians G/P), the limit costs C % (target < 10 %; median of 3
 *    runs each, window 400)
 *    pools admission: reject p50 Aus p99 Bus, relay p50 Xus p99 Yus,
 *    ratio p50 A/X p99 B/Y (median of 3 runs of 2000)
 *
 *  Exit status: 0, 1 when a run failed (a child died, a task was refused
 *  or failed where it should not, a refusal was not TW_ELIMIT, nothing
 *  arrived for 10 s), 2 for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "bench/relay.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_IDLE_LIMIT_NS 10000000000ull /* no message for 10 s: give up */
#define S_REQ_TIMEOUT_MS 10000         /* one GROUP request */
#define S_MAP_GROUP "bench-map"
#define S_FULL_GROUP "bench-full"

/* 3600 seconds, msgpack uint16: the sleep that keeps the group full. */
static const unsigned char s_hour[] = {0xcd, 0x0e, 0x10};

/* The acknowledgements of the admission client. */
typedef struct {
    uint64_t acks;
    uint64_t wrong; /* acks that were not a TW_ELIMIT refusal */
    int err;        /* the first wrong one's code (0: accepted) */
} s_acks_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_acks_t *a = arg;
    a->acks++;
    if (ack->err != TW_ELIMIT && a->wrong++ == 0) {
        a->err = ack->err;
    }
}

/* One GROUP request on the default pool; fails the run on an error. */
static int
s_group(tw_bench_cluster_t *cl, tw_client_t *c, const char *op,
        const char *group, int64_t limit, const char *full)
{
    tw_pool_req_t req;
    memset(&req, 0, sizeof req);
    req.op = op;
    req.group = group;
    req.has_limit = 1;
    req.limit = limit;
    req.full = full;
    int rc = tw_client_group(c, &req, S_REQ_TIMEOUT_MS, NULL, NULL);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "GROUP %s %s: %s (%s)", op, group,
                 tw_strerror(rc), tw_client_last_error(c));
        tw_bench_cluster_fail(cl, why);
    }
    return rc;
}

/* Part 1: R alternating pairs of plain and grouped pipelined runs. */
static int
s_map(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t n, uint64_t window,
      long long runs, double *plain, double *grouped)
{
    int rc = 0;
    for (long long r = 0; rc == 0 && r < runs; r++) {
        /* Odd runs put the grouped side first. */
        for (int side = 0; rc == 0 && side < 2; side++) {
            int g = (int)((side + r) % 2);
            rc = g ? tw_bench_pipeline_group(cl, c, S_MAP_GROUP, n, window,
                                             &grouped[r])
                   : tw_bench_pipeline(cl, c, n, window, &plain[r]);
        }
        if (rc == 0) {
            fprintf(stderr, "map run %lld/%lld: plain %.0f tasks/s, grouped "
                            "%.0f tasks/s, ratio %.3f\n",
                    r + 1, runs, plain[r], grouped[r], grouped[r] / plain[r]);
        }
    }
    return rc;
}

/* One SUBMIT into the full group, timed to its ACK, into *us. */
static int
s_admit(tw_bench_cluster_t *cl, tw_client_t *c2, s_acks_t *a, double *us)
{
    static const char *const groups[] = {S_FULL_GROUP};
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    spec.groups = groups;
    spec.ngroups = 1;
    uint64_t want = a->acks + 1;
    uint64_t t0 = tw_bench_now_ns(), last = t0;
    int rc = tw_client_submit(c2, &spec, NULL);
    if (rc == 0) {
        rc = tw_client_flush(c2);
        if (rc == TW_EAGAIN) {
            rc = 0; /* the poll below flushes again */
        }
    }
    while (rc == 0 && a->acks < want) {
        int m = tw_client_poll(c2, 500);
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
    if (rc == 0 && a->wrong) {
        fprintf(stderr, "bench: a submission into the full group was %s\n",
                a->err ? tw_strerror(a->err) : "accepted");
        rc = TW_EFAILED;
    }
    if (rc == 0) {
        *us = (double)(tw_bench_now_ns() - t0) / 1000.0;
    } else {
        fprintf(stderr, "bench: admission round trip failed: %s\n",
                tw_strerror(rc));
    }
    return rc;
}

/* Fill the reject group: limit 1, one hour-long sleep running in it. */
static int
s_fill(tw_bench_cluster_t *cl, tw_client_t *c)
{
    static const char *const groups[] = {S_FULL_GROUP};
    int rc = s_group(cl, c, "create", S_FULL_GROUP, 1, "reject");
    if (rc != 0) {
        return rc;
    }
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "sleep";
    spec.args = s_hour;
    spec.args_len = sizeof s_hour;
    spec.groups = groups;
    spec.ngroups = 1;
    memset(&cl->outcomes, 0, sizeof cl->outcomes);
    rc = tw_client_submit(c, &spec, NULL);
    for (int i = 0; rc == 0 && i < 100; i++) {
        tw_group_info_t gi;
        rc = tw_client_group_get(c, NULL, S_FULL_GROUP, S_REQ_TIMEOUT_MS,
                                 &gi);
        if (rc == 0 && gi.running == 1) {
            return 0;
        }
        if (rc == 0 && cl->outcomes.done > 0) {
            fprintf(stderr, "bench: the sleep task ended: %s\n",
                    cl->outcomes.why);
            rc = TW_EFAILED;
        } else if (rc == 0) {
            tw_client_poll(c, 50);
        }
    }
    if (rc == 0) {
        rc = TW_ETIMEDOUT;
    }
    tw_bench_cluster_fail(cl, "could not fill the reject group");
    return rc;
}

/* Part 2: R runs of n admission round trips alternating with relay round
 * trips; out[r*4 + 0..3] = p50, p99 of admission, p50, p99 of the relay. */
static int
s_admission(tw_bench_cluster_t *cl, tw_client_t *c2, s_acks_t *a,
            tw_relay_t *rel, size_t n, size_t warmup, size_t runs,
            double *out)
{
    double *tw = malloc((n + warmup + 1) * sizeof *tw);
    double *rl = malloc((n + warmup + 1) * sizeof *rl);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < warmup; i++) {
        rc = s_admit(cl, c2, a, &tw[i]);
        if (rc == 0 && rel) {
            rc = tw_relay_round_trips(rel, 1, &rl[i]);
        }
    }
    for (size_t r = 0; rc == 0 && r < runs; r++) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = s_admit(cl, c2, a, &tw[i]);
            if (rc == 0 && rel) {
                rc = tw_relay_round_trips(rel, 1, &rl[i]);
            }
        }
        if (rc != 0) {
            break;
        }
        double *q = out + r * 4;
        q[0] = tw_bench_quantile(tw, n, 0.50);
        q[1] = tw_bench_quantile(tw, n, 0.99);
        q[2] = rel ? tw_bench_quantile(rl, n, 0.50) : 0;
        q[3] = rel ? tw_bench_quantile(rl, n, 0.99) : 0;
        fprintf(stderr, "admission run %zu/%zu: reject p50 %.0fus p99 "
                        "%.0fus",
                r + 1, runs, q[0], q[1]);
        if (rel) {
            fprintf(stderr, ", relay p50 %.0fus p99 %.0fus", q[2], q[3]);
        }
        fprintf(stderr, "\n");
    }
    free(tw);
    free(rl);
    return rc;
}

/* The median over the runs of column `col` of out[runs][4]. */
static double
s_col_median(const double *out, size_t runs, int col)
{
    double v[1000];
    for (size_t r = 0; r < runs; r++) {
        v[r] = out[r * 4 + (size_t)col];
    }
    return tw_bench_median(v, runs);
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-pools [options]\n\n"
            "Map-style no-op throughput with every task in one group whose\n"
            "limit is in force, against the same run without groups; and\n"
            "the SUBMIT -> ACK round trip of a full \"reject\" group\n"
            "(TW_ELIMIT), against the raw ZeroMQ relay in the same run.\n\n"
            "  --n N           tasks per map run (default 200000)\n"
            "  --window W      tasks outstanding (default 400; keep it at\n"
            "                  most --limit so the limit never binds)\n"
            "  --limit L       the map group's limit (default 400)\n"
            "  --warmup N      untimed tasks first, each side (default "
            "20000)\n"
            "  --workers W     worker processes (default 2)\n"
            "  --slots S       slots per worker (default 256)\n"
            "  --runs R        runs of each measure; medians are reported\n"
            "                  (default 3)\n"
            "  --lat-n N       admission round trips per run (default "
            "2000)\n"
            "  --lat-warmup N  untimed admission round trips (default 200)\n"
            "  --size B        relay payload bytes (default 64)\n"
            "  --no-relay      skip the baseline\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-pools";
    long long n = 200000, window = 400, limit = 400, warmup = 20000;
    long long workers = 2, slots = 256, runs = 3, lat_n = 2000;
    long long lat_warmup = 200, size = 64;
    int relay = 1;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--limit", &limit, 1, 1LL << 31),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--lat-n", &lat_n, 1, 1LL << 30),
        TW_BENCH_NUM("--lat-warmup", &lat_warmup, 0, 1LL << 30),
        TW_RELAY_BASELINE_FLAGS(&size, &relay),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    if (window > limit) {
        fprintf(stderr, "%s: note: window %lld > limit %lld, the limit may "
                        "hold tasks back\n",
                prog, window, limit);
    }
    size_t nr = (size_t)runs;
    tw_relay_opts_t ro = {0, 0, (size_t)size, 1, (size_t)lat_n};

    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, (int)workers, (int)slots,
                                           NULL);
    if (!c) {
        return 1;
    }
    double *plain = calloc(nr, sizeof *plain);
    double *grouped = calloc(nr, sizeof *grouped);
    double *lat = calloc(nr * 4, sizeof *lat);
    tw_client_t *c2 = NULL;
    tw_relay_t *rel = NULL;
    s_acks_t acks = {0, 0, 0};
    double scratch;

    /* Part 1: the map runs. */
    int rc = s_group(&cl, c, "set", S_MAP_GROUP, limit, "queue");
    if (rc == 0 && warmup > 0) {
        rc = tw_bench_pipeline(&cl, c, (uint64_t)warmup, (uint64_t)window,
                               &scratch);
    }
    if (rc == 0 && warmup > 0) {
        rc = tw_bench_pipeline_group(&cl, c, S_MAP_GROUP, (uint64_t)warmup,
                                     (uint64_t)window, &scratch);
    }
    if (rc == 0) {
        rc = s_map(&cl, c, (uint64_t)n, (uint64_t)window, runs, plain,
                   grouped);
    }
    if (rc == 0) {
        /* The limit was there all along and every grouped task went
         * through the group. */
        tw_group_info_t gi;
        rc = tw_client_group_get(c, NULL, S_MAP_GROUP, S_REQ_TIMEOUT_MS,
                                 &gi);
        if (rc == 0) {
            fprintf(stderr, "map group: limit %lld, admitted %llu, ended "
                            "%llu\n",
                    (long long)gi.limit, (unsigned long long)gi.admitted,
                    (unsigned long long)gi.ended);
            if (gi.limit != limit) {
                tw_bench_cluster_fail(&cl, "the map group lost its limit");
                rc = TW_EFAILED;
            }
        }
    }

    /* Part 2: admission into a full reject group, from a second client
     * whose only callback is the ack. */
    if (rc == 0) {
        rc = s_fill(&cl, c);
    }
    if (rc == 0) {
        c2 = tw_client_new(cl.frontend);
        rc = c2 ? tw_client_ping(c2, S_REQ_TIMEOUT_MS) : TW_ENOMEM;
        if (rc == 0) {
            tw_client_on_ack(c2, s_on_ack, &acks);
        }
    }
    if (rc == 0 && relay) {
        rc = tw_relay_start(&ro, &rel);
    }
    if (rc == 0) {
        rc = s_admission(&cl, c2, &acks, rel, (size_t)lat_n,
                         (size_t)lat_warmup, nr, lat);
    }
    if (rc == 0) {
        /* End the sleeper; its cancelled outcome goes to `c`. */
        uint64_t *ids = NULL;
        size_t nids = 0;
        rc = tw_client_cancel_group(c, NULL, S_FULL_GROUP, S_REQ_TIMEOUT_MS,
                                    &ids, &nids);
        free(ids);
    }
    tw_relay_stop(&rel);
    tw_client_destroy(&c2);
    tw_client_destroy(&c);
    if (rc != 0 && !cl.failed) {
        tw_bench_cluster_fail(&cl, "pools run failed");
    }
    tw_bench_cluster_stop(&cl);
    if (rc == 0) {
        /* The ratio of each run's pair, taken side by side, is steadier
         * than the ratio of the two medians on a noisy machine. */
        double *ratio = calloc(nr, sizeof *ratio);
        for (size_t r = 0; r < nr; r++) {
            ratio[r] = grouped[r] / plain[r];
        }
        double rm = tw_bench_median(ratio, nr);
        free(ratio);
        double pm = tw_bench_median(plain, nr);
        double gm = tw_bench_median(grouped, nr);
        printf("pools map: grouped (limit %lld) %.0f tasks/s, plain %.0f "
               "tasks/s, ratio %.3f (of medians %.3f), the limit costs "
               "%.1f %% (target < 10 %%; median of %zu runs each, window "
               "%lld)\n",
               limit, gm, pm, rm, gm / pm, (1.0 - rm) * 100.0, nr, window);
        double a = s_col_median(lat, nr, 0), b = s_col_median(lat, nr, 1);
        if (relay) {
            double x = s_col_median(lat, nr, 2);
            double y = s_col_median(lat, nr, 3);
            printf("pools admission: reject p50 %.0fus p99 %.0fus, relay "
                   "p50 %.0fus p99 %.0fus, ratio p50 %.2f p99 %.2f (median "
                   "of %zu runs of %lld)\n",
                   a, b, x, y, a / x, b / y, nr, lat_n);
        } else {
            printf("pools admission: reject p50 %.0fus p99 %.0fus (median "
                   "of %zu runs of %lld)\n",
                   a, b, nr, lat_n);
        }
    }
    free(plain);
    free(grouped);
    free(lat);
    return rc == 0 ? 0 : 1;
}
