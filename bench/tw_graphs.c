/*  bench/tw_graphs.c - bench-graphs: what a chain or a chord in one
 *  request (taskwheel/graph.h, PROTOCOL.md 18.9) costs.
 *
 *  Against a real broker and workers (bench/cluster.h), each run:
 *
 *    plain   N noop tasks submitted in batches, until every outcome came;
 *    chord   the same N noop tasks as a chord's header, plus a noop
 *            callback over all their results, in ONE SUBMIT, until the
 *            callback's outcome came; the ratio chord/plain is the
 *            graph's cost (issue 15's target: at most 1.5);
 *    chain   a chain of --chain-n noop steps in ONE SUBMIT, until the last
 *            step's outcome came: per step, against one task's round
 *            trip (submit one noop, wait for its outcome; the median of
 *            --rt-n).
 *
 *  The median over --runs runs is printed, one "name value" per line.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "common/error.h"
#include "taskwheel/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WAIT_MS 600000

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-graphs [options]\n\n"
            "A chord over N noop tasks against the same N plain, a chain\n"
            "of noop steps against one task's round trip, on a real\n"
            "broker and workers.\n\n"
            "  --n N           tasks of the plain run and the chord's "
            "header (default 10000)\n"
            "  --chain-n N     steps of the chain (default 10000)\n"
            "  --rt-n N        single round trips timed (default 200)\n"
            "  --runs R        runs, medians printed (default 3)\n"
            "  --workers W     workers (default 2)\n"
            "  --slots S       slots of each (default 64)\n");
}

/* Seconds until every task of client `c` has its outcome. */
static int
s_drain(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t t0, double *secs)
{
    int rc = tw_client_wait_all(c, S_WAIT_MS);
    *secs = (double)(tw_bench_now_ns() - t0) / 1e9;
    if (rc != 0 || cl->outcomes.bad || cl->outcomes.refused) {
        tw_bench_cluster_fail(cl, rc ? "outcomes did not come"
                                     : "a task did not end ok");
        return rc ? rc : TW_EFAILED;
    }
    return 0;
}

static int
s_plain(tw_bench_cluster_t *cl, tw_client_t *c, size_t n, double *secs)
{
    tw_task_spec_t s;
    memset(&s, 0, sizeof s);
    s.handler = "noop";
    uint64_t t0 = tw_bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        int rc;
        while ((rc = tw_client_submit(c, &s, NULL)) == TW_EFULL) {
            tw_client_poll(c, 10);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return s_drain(cl, c, t0, secs);
}

static int
s_graph(tw_bench_cluster_t *cl, tw_client_t *c, size_t n, int chord,
        double *secs)
{
    tw_task_spec_t *specs = calloc(n + 1, sizeof *specs);
    uint64_t *ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; i <= n; i++) {
        specs[i].handler = "noop";
    }
    char err[256];
    uint64_t t0 = tw_bench_now_ns();
    int rc = chord ? tw_client_chord(c, specs, n, &specs[n], NULL, ids,
                                     S_WAIT_MS, err, sizeof err)
                   : tw_client_chain(c, specs, n, NULL, ids, S_WAIT_MS, err,
                                     sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bench-graphs: the %s was refused: %s\n",
                chord ? "chord" : "chain", err);
    } else {
        rc = s_drain(cl, c, t0, secs);
    }
    free(ids);
    free(specs);
    return rc;
}

static int
s_round_trips(tw_bench_cluster_t *cl, tw_client_t *c, size_t n, double *ms)
{
    double *v = calloc(n, sizeof *v);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        double s;
        rc = s_plain(cl, c, 1, &s);
        v[i] = s * 1e3;
    }
    *ms = rc == 0 ? tw_bench_median(v, n) : 0;
    free(v);
    return rc;
}

int
main(int argc, char **argv)
{
    long long n = 10000, chain_n = 10000, rt_n = 200, runs = 3;
    long long workers = 2, slots = 64;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, 65535),
        TW_BENCH_NUM("--chain-n", &chain_n, 2, 65536),
        TW_BENCH_NUM("--rt-n", &rt_n, 1, 1 << 20),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
    };
    int pr = tw_bench_parse_flags("bench-graphs", argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, (int)workers, (int)slots,
                                           NULL);
    if (!c) {
        return 1;
    }
    size_t nr = (size_t)runs;
    double *plain = calloc(nr, sizeof *plain);
    double *chord = calloc(nr, sizeof *chord);
    double *chain = calloc(nr, sizeof *chain);
    double rt_ms = 0;
    int rc = s_plain(&cl, c, (size_t)n, &plain[0]); /* warm-up, untimed */
    for (size_t r = 0; r < nr && rc == 0; r++) {
        rc = s_plain(&cl, c, (size_t)n, &plain[r]);
        if (rc == 0) {
            rc = s_graph(&cl, c, (size_t)n, 1, &chord[r]);
        }
        if (rc == 0) {
            rc = s_graph(&cl, c, (size_t)chain_n, 0, &chain[r]);
        }
    }
    if (rc == 0) {
        rc = s_round_trips(&cl, c, (size_t)rt_n, &rt_ms);
    }
    if (rc == 0) {
        double p = tw_bench_median(plain, nr), d = tw_bench_median(chord, nr);
        double ch = tw_bench_median(chain, nr);
        printf("plain_%lld_s %.3f\n", n, p);
        printf("chord_%lld_s %.3f\n", n, d);
        printf("chord_over_plain %.2f\n", d / p);
        printf("chain_%lld_s %.3f\n", chain_n, ch);
        printf("chain_step_ms %.3f\n", ch * 1e3 / (double)chain_n);
        printf("round_trip_ms %.3f\n", rt_ms);
        printf("chain_step_over_round_trip %.2f\n",
               ch * 1e3 / (double)chain_n / rt_ms);
    }
    tw_client_destroy(&c);
    tw_bench_cluster_stop(&cl);
    free(plain);
    free(chord);
    free(chain);
    return rc == 0 ? 0 : 1;
}
