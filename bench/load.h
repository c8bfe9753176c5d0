/*  bench/load.h - what the benchmarks put through a cluster.
 *
 *  The pieces of load more than one benchmark program drives through the
 *  client of a bench/cluster.h cluster: pushing N no-op tasks through with
 *  a window outstanding (bench-throughput, bench-curve; bench-pools puts
 *  them all in one group), adding N no-op stations one request at a time
 *  (bench-stations, bench-assign, bench-failover) and waiting until they
 *  run.
 *  Each reports a failure the way cluster.h does: it prints why and
 *  returns a negative TW_E* code, and marks the run failed
 *  (tw_bench_cluster_fail) where it says so. Main thread only.
 */
#ifndef TW_BENCH_LOAD_H
#define TW_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "bench/cluster.h"
#include "taskwheel/client.h"

/* Push `n` no-op tasks through `c`, the client tw_bench_cluster_open
 * returned for `cl`, with at most `window` outstanding, timed from the
 * first submit to the last outcome (cl->outcomes, zeroed first); *rate
 * gets tasks per second. Returns 0, or a negative error after printing
 * why: the submit's or poll's, TW_EIO when a child died, TW_ETIMEDOUT
 * after 10 s without a message, or TW_EFAILED when a task was refused or
 * did not end "ok". */
int tw_bench_pipeline(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t n,
                      uint64_t window, double *rate);

/* tw_bench_pipeline with every task joining `group` of the default pool
 * (NULL: no group, the same as tw_bench_pipeline); bench-pools sets the
 * group's limit first. */
int tw_bench_pipeline_group(tw_bench_cluster_t *cl, tw_client_t *c,
                            const char *group, uint64_t n, uint64_t window,
                            double *rate);

/* One of two clusters side by side that a benchmark compares
 * (bench-durable, bench-keep): its name for the run lines, the cluster,
 * its client and the rate of each run. */
typedef struct {
    const char *name;
    tw_bench_cluster_t cl;
    tw_client_t *c;
    double *rate; /* runs entries, tasks/s */
} tw_bench_side_t;

/* Start both sides (opts[i]: that side's options, NULL for a plain
 * cluster) with `workers` workers of `slots` slots each, and allocate
 * `runs` rates each. Names are set by the caller first. Returns 0, or
 * TW_EIO after stopping whatever started. */
int tw_bench_sides_open(tw_bench_side_t side[2],
                        const tw_bench_cluster_opts_t *const opts[2],
                        int workers, int slots, size_t runs);

/* `warmup` untimed tasks through each side, then `runs` times `n` no-op
 * tasks pipelined through each (tw_bench_pipeline), alternating which
 * side goes first so that slow phases of a noisy machine hit both; one
 * line per run on stderr with both rates and side 1's ratio to side 0.
 * Returns 0 or the first failure. */
int tw_bench_sides_run(tw_bench_side_t side[2], uint64_t n, uint64_t window,
                       uint64_t warmup, size_t runs);

/* Destroy the clients and stop both clusters; after a failure (rc != 0)
 * keep the failed side's logs. Frees the rates. */
void tw_bench_sides_close(tw_bench_side_t side[2], int rc);

/* Add `n` stations "<prefix><i>" (i in six digits) of the `noop` handler,
 * next "same", interval `interval_ms`, 5,000 per request
 * (tw_client_stations_add). Returns 0, or the first request's error after
 * failing the run. */
int tw_bench_add_stations(tw_bench_cluster_t *cl, tw_client_t *c,
                          const char *prefix, size_t n, uint64_t interval_ms);

/* Poll QUERY "status" every 20 ms until "stations_running" reaches `n`.
 * Returns 0, TW_EIO when a child died, or (after failing the run) the
 * query's error or TW_ETIMEDOUT after `limit_ms`. */
int tw_bench_wait_stations(tw_bench_cluster_t *cl, tw_client_t *c, uint64_t n,
                           long limit_ms);

#endif /* TW_BENCH_LOAD_H */
