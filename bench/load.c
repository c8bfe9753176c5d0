/*  bench/load.c - the pipelined no-op run (optionally in a group) and
 *  station adds (see load.h).
 */
#include "bench/load.h"
#include "bench/bench.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_IDLE_LIMIT_NS 10000000000ull /* no message for 10 s: give up */
#define S_REQ_TIMEOUT_MS 10000         /* one station add */

int
tw_bench_pipeline(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t n,
                  uint64_t window, double *rate)
{
    return tw_bench_pipeline_group(cl, c, NULL, n, window, rate);
}

int
tw_bench_pipeline_group(tw_bench_cluster_t *cl, tw_client_t *c,
                        const char *group, uint64_t n, uint64_t window,
                        double *rate)
{
    tw_bench_outcomes_t *k = &cl->outcomes;
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    if (group) {
        /* Every task joins the one group of the default pool. */
        spec.groups = &group;
        spec.ngroups = 1;
    }
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
                k->why);
        return TW_EFAILED;
    }
    *rate = (double)n * 1e9 / (double)(t1 > t0 ? t1 - t0 : 1);
    return 0;
}

int
tw_bench_add_stations(tw_bench_cluster_t *cl, tw_client_t *c,
                      const char *prefix, size_t n, uint64_t interval_ms)
{
    /* Batches of S_ADD_BATCH definitions, one request each. */
    enum { S_ADD_BATCH = 5000 };
    static char sids[S_ADD_BATCH][32];
    static tw_station_req_t reqs[S_ADD_BATCH];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < S_ADD_BATCH ? n - done : S_ADD_BATCH;
        for (size_t i = 0; i < k; i++) {
            snprintf(sids[i], sizeof sids[i], "%s%06zu", prefix, done + i);
            reqs[i] = (tw_station_req_t){.op = "add",
                                         .sid = sids[i],
                                         .handler = "noop",
                                         .next = "same",
                                         .interval_ms = interval_ms};
        }
        int rc = tw_client_stations_add(c, reqs, k, S_REQ_TIMEOUT_MS, NULL,
                                        NULL);
        if (rc != 0) {
            char why[256];
            snprintf(why, sizeof why, "station add %s..: %s (%s)", sids[0],
                     tw_strerror(rc), tw_client_last_error(c));
            tw_bench_cluster_fail(cl, why);
            return rc;
        }
        done += k;
    }
    return 0;
}

int
tw_bench_wait_stations(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t n,
                       long limit_ms)
{
    uint64_t deadline = tw_bench_now_ns() + (uint64_t)limit_ms * 1000000u;
    uint64_t running = 0;
    for (;;) {
        int rc = tw_bench_cluster_check(cl);
        if (rc != 0) {
            return rc;
        }
        rc = tw_bench_status_uint(c, "stations_running", S_REQ_TIMEOUT_MS,
                                  &running);
        if (rc != 0) {
            tw_bench_cluster_fail(cl, "status query failed");
            return rc;
        }
        if (running >= n) {
            return 0;
        }
        if (tw_bench_now_ns() > deadline) {
            char why[160];
            snprintf(why, sizeof why,
                     "only %llu of %llu stations running after %ld ms",
                     (unsigned long long)running, (unsigned long long)n,
                     limit_ms);
            tw_bench_cluster_fail(cl, why);
            return TW_ETIMEDOUT;
        }
        tw_bench_sleep_ms(20);
    }
}

int
tw_bench_sides_open(tw_bench_side_t side[2],
                    const tw_bench_cluster_opts_t *const opts[2],
                    int workers, int slots, size_t runs)
{
    for (int i = 0; i < 2; i++) {
        side[i].c = NULL;
        side[i].rate = calloc(runs, sizeof *side[i].rate);
    }
    for (int i = 0; i < 2; i++) {
        side[i].c = tw_bench_cluster_open(&side[i].cl, workers, slots,
                                          opts[i]);
        if (!side[i].c) {
            if (i == 1) {
                tw_client_destroy(&side[0].c);
                tw_bench_cluster_stop(&side[0].cl);
            }
            for (int k = 0; k < 2; k++) {
                free(side[k].rate);
                side[k].rate = NULL;
            }
            return TW_EIO;
        }
    }
    return 0;
}

int
tw_bench_sides_run(tw_bench_side_t side[2], uint64_t n, uint64_t window,
                   uint64_t warmup, size_t runs)
{
    double scratch;
    int rc = 0;
    for (int i = 0; rc == 0 && warmup > 0 && i < 2; i++) {
        rc = tw_bench_pipeline(&side[i].cl, side[i].c, warmup, window,
                               &scratch);
    }
    for (size_t r = 0; rc == 0 && r < runs; r++) {
        for (size_t k = 0; rc == 0 && k < 2; k++) {
            tw_bench_side_t *s = &side[(r + k) % 2];
            rc = tw_bench_pipeline(&s->cl, s->c, n, window, &s->rate[r]);
        }
        if (rc == 0) {
            fprintf(stderr, "run %zu/%zu: %s %.0f tasks/s, %s %.0f "
                    "tasks/s, ratio %.2f\n", r + 1, runs, side[0].name,
                    side[0].rate[r], side[1].name, side[1].rate[r],
                    side[1].rate[r] / side[0].rate[r]);
        }
    }
    return rc;
}

void
tw_bench_sides_close(tw_bench_side_t side[2], int rc)
{
    for (int i = 0; i < 2; i++) {
        tw_client_destroy(&side[i].c);
    }
    if (rc != 0) {
        tw_bench_side_t *bad = side[0].cl.failed ? &side[0] : &side[1];
        tw_bench_cluster_fail(&bad->cl, "run failed");
    }
    for (int i = 0; i < 2; i++) {
        tw_bench_cluster_stop(&side[i].cl);
        free(side[i].rate);
        side[i].rate = NULL;
    }
}
