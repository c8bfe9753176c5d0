/*  bench/cluster.h - a real broker and workers for one benchmark run.
 *
 *  The taskwheel benchmarks measure the real programs: this starts one
 *  taskwheel-broker and W taskwheel-worker processes (posix_spawn) on
 *  127.0.0.1 with ports that were free a moment before, each child's
 *  stdout and stderr going to a log file in a fresh temp directory, and
 *  waits until the broker answers a ping and every worker has registered
 *  (QUERY "workers" lists them all); then it hands out one client of the
 *  frontend whose task outcomes it counts. Options add arguments to the
 *  programs' command lines (CURVE keys, say) and make that client a CURVE
 *  one; several clusters may run side by side.
 *
 *  Children are stopped by pid, SIGTERM then SIGKILL after a grace period,
 *  by tw_bench_cluster_stop; and, if the benchmark dies first, by an
 *  atexit hook and SIGINT/SIGTERM/SIGHUP handlers that SIGKILL every child
 *  still registered. On failure the logs are kept and their tails printed;
 *  on success the directory is removed unless TW_BENCH_KEEP is set.
 *
 *  Program paths come from the compile definitions TW_BENCH_BROKER_BIN and
 *  TW_BENCH_WORKER_BIN; the environment variables TW_BROKER_BIN and
 *  TW_WORKER_BIN override them. Main thread only.
 */
#ifndef TW_BENCH_CLUSTER_H
#define TW_BENCH_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#include "bench/bench.h"
#include "taskwheel/client.h"

#define TW_BENCH_MAX_WORKERS 64
#define TW_BENCH_MAX_EXTRA_ARGS 16 /* in each of the option lists */

/* What tw_bench_cluster_open adds to a plain cluster; everything is
 * borrowed and must outlive the cluster. */
typedef struct {
    const char *const *broker_args; /* NULL-terminated, appended to the
                                       broker's arguments; NULL: none */
    const char *const *worker_args; /* likewise for every worker */
    const char *client_secret;      /* the clients' CURVE secret key file
                                       and the broker's public key file */
    const char *broker_key;         /* (tw_client_new_curve); NULL: plain */
    const char *also_backend;       /* a broker pair's other backend: the
                                       workers get --broker OURS,THIS */
    int passive;                    /* the broker joins a broker pair as
                                       its passive one (docs/HA.md), which
                                       refuses pings: ready when it answers
                                       QUERY "status"; with 0 workers */
} tw_bench_cluster_opts_t;

/* The flags --workers W and --slots S of the benchmarks whose clusters
 * have them, as entries of a tw_bench_flag_t table. */
#define TW_BENCH_CLUSTER_FLAGS(workers, slots)                               \
    TW_BENCH_NUM("--workers", (workers), 1, TW_BENCH_MAX_WORKERS),           \
    TW_BENCH_NUM("--slots", (slots), 1, 1 << 20)

/* The outcomes of the tasks of a cluster's client, counted by its ack and
 * result callbacks. */
typedef struct {
    uint64_t done;    /* outcomes: results and refused submissions */
    uint64_t bad;     /* results that were not "ok" */
    uint64_t refused; /* per-task ACK errors */
    int err;          /* the first failure: a refusal's code or TW_EFAILED */
    char why[160];    /* and what it was */
} tw_bench_outcomes_t;

typedef struct {
    int nworkers;
    int slots;
    char frontend[64]; /* clients connect here */
    char backend[64];  /* workers connect here */
    char wbroker[140]; /* the workers' --broker (backend, also_backend) */
    char status[64];   /* the broker's XPUB */
    char dir[128];     /* the children's logs */
    pid_t broker;
    pid_t workers[TW_BENCH_MAX_WORKERS];
    int failed; /* set by tw_bench_cluster_fail: keep the logs */
    tw_bench_cluster_opts_t opts;
    tw_bench_outcomes_t outcomes; /* of the client tw_bench_cluster_open
                                     returned */
} tw_bench_cluster_t;

/* Start the broker and `workers` workers (0 to TW_BENCH_MAX_WORKERS; 0
 * for a broker alone) of `slots` slots each, with `opts` (NULL: none),
 * wait up to 15 s until they are all up, and return a new client of the
 * frontend (a CURVE one if the options name the keys) whose ack and
 * result callbacks count into cl->outcomes; the caller destroys it before
 * tw_bench_cluster_stop. Returns NULL after printing why (and the logs)
 * and stopping whatever started. */
tw_client_t *tw_bench_cluster_open(tw_bench_cluster_t *cl, int workers,
                                   int slots,
                                   const tw_bench_cluster_opts_t *opts);

/* 0 while every child runs; TW_EIO after printing which one exited. */
int tw_bench_cluster_check(tw_bench_cluster_t *cl);

/* Mark the run as failed: print `why` and the tail of every log, keep the
 * log directory. */
void tw_bench_cluster_fail(tw_bench_cluster_t *cl, const char *why);

/* Stop every child (SIGTERM, then SIGKILL after 3 s) and reap it; remove
 * the logs unless the run failed or TW_BENCH_KEEP is set. Idempotent. */
void tw_bench_cluster_stop(tw_bench_cluster_t *cl);

/* QUERY "status" and read the unsigned integer `key` of its map into *out.
 * Returns 0, the query's error, or TW_EPROTO when the key is missing or
 * not an unsigned integer. */
int tw_bench_status_uint(tw_client_t *c, const char *key, int timeout_ms,
                         uint64_t *out);

/* Likewise for the string `key` (a broker pair's "ha_state"...), into
 * `out` of `cap` bytes (cut to fit). */
int tw_bench_status_str(tw_client_t *c, const char *key, int timeout_ms,
                        char *out, size_t cap);

#endif /* TW_BENCH_CLUSTER_H */
