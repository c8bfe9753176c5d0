/*  bench/tw_curve.c - end-to-end throughput with CURVE on, as a ratio to
 *  CURVE off.
 *
 *  Starts two clusters side by side on 127.0.0.1 (bench/cluster.h), each
 *  a real broker and W workers: one in plaintext, one whose programs get
 *  --curve-secret and the key directories as extra arguments (keys made
 *  fresh in a temp directory with common/keys.h) and whose client uses
 *  CURVE. Then, R times, pushes N no-op tasks through each with a window
 *  of them outstanding (tw_bench_pipeline, bench/load.h, the loop of
 *  bench-throughput), alternating plaintext and CURVE so that slow phases
 *  of a noisy machine hit both. The idle cluster only exchanges heartbeats
 *  meanwhile. Prints one line:
 *
 *    curve: plaintext P tasks/s, CURVE C tasks/s, ratio C/P (median of R
 *    runs; per-run ratios min..max)
 *
 *  The ratio is the median of the per-run ratios. Exit status: 0, 1 when
 *  a run failed (the failing cluster's logs are kept and tailed), 2 for a
 *  usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "common/error.h"
#include "common/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The key files of the CURVE cluster, in a temp directory. */
typedef struct {
    char dir[64];
    char bsec[128], bpub[128], wsec[128], csec[128], dc[128], dw[128];
} s_keys_t;

static void
s_key_path(const s_keys_t *k, char *out, size_t len, const char *name,
           const char *ext)
{
    snprintf(out, len, "%s/%s%s", k->dir, name, ext);
}

/* Make the broker, worker and client keys and the two role directories
 * in a new temp directory. */
static int
s_make_keys(s_keys_t *k)
{
    snprintf(k->dir, sizeof k->dir, "/tmp/tw-bench-curve-XXXXXX");
    if (!mkdtemp(k->dir)) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        k->dir[0] = '\0';
        return TW_EIO;
    }
    const char *names[] = {"broker", "worker", "client"};
    for (int i = 0; i < 3; i++) {
        char base[128], err[512];
        tw_keypair_t kp;
        s_key_path(k, base, sizeof base, names[i], "");
        if (tw_keys_generate(&kp) != 0 ||
            tw_keys_write(base, &kp, err, sizeof err) != 0) {
            fprintf(stderr, "bench: keys: %s\n",
                    tw_keys_available() ? err : "libzmq has no CURVE");
            return TW_EIO;
        }
        tw_keys_wipe(&kp);
    }
    const char *dirs[][2] = {{"clients", "client"}, {"workers", "worker"}};
    for (int i = 0; i < 2; i++) {
        char d[128], from[128], to[160];
        s_key_path(k, d, sizeof d, dirs[i][0], "");
        s_key_path(k, from, sizeof from, dirs[i][1], ".pub");
        snprintf(to, sizeof to, "%s/%s.pub", d, dirs[i][1]);
        if (mkdir(d, 0755) != 0 || link(from, to) != 0) {
            fprintf(stderr, "bench: %s: %s\n", d, strerror(errno));
            return TW_EIO;
        }
    }
    s_key_path(k, k->bsec, sizeof k->bsec, "broker", ".key");
    s_key_path(k, k->bpub, sizeof k->bpub, "broker", ".pub");
    s_key_path(k, k->wsec, sizeof k->wsec, "worker", ".key");
    s_key_path(k, k->csec, sizeof k->csec, "client", ".key");
    s_key_path(k, k->dc, sizeof k->dc, "clients", "");
    s_key_path(k, k->dw, sizeof k->dw, "workers", "");
    return 0;
}

/* Remove the key directory, unless TW_BENCH_KEEP is set. */
static void
s_remove_keys(const s_keys_t *k)
{
    if (!k->dir[0]) {
        return;
    }
    const char *keep = getenv("TW_BENCH_KEEP");
    if (keep && *keep) {
        fprintf(stderr, "bench: keys in %s\n", k->dir);
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: could not remove %s\n", k->dir);
    }
}

/* One of the two clusters and its client. */
typedef struct {
    const char *name; /* "plaintext" or "curve" */
    tw_bench_cluster_t cl;
    tw_client_t *c;
    double *rate; /* tasks/s of each run */
} s_side_t;

/* Push `n` no-op tasks through `sd`; a failure fails its cluster's run. */
static int
s_run(s_side_t *sd, uint64_t n, uint64_t window, double *rate)
{
    int rc = tw_bench_pipeline(&sd->cl, sd->c, n, window, rate);
    if (rc != 0 && !sd->cl.failed) {
        char why[64];
        snprintf(why, sizeof why, "%s run failed", sd->name);
        tw_bench_cluster_fail(&sd->cl, why);
    }
    return rc;
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-curve [options]\n\n"
            "No-op tasks end to end, pipelined, through a plaintext cluster\n"
            "and a CURVE cluster, alternating; prints the ratio.\n\n"
            "  --n N        tasks per run (default 200000)\n"
            "  --window W   tasks outstanding (default 20000)\n"
            "  --warmup N   untimed tasks first, each cluster (default "
            "20000)\n"
            "  --workers W  worker processes per cluster (default 2)\n"
            "  --slots S    slots per worker (default 256)\n"
            "  --runs R     runs of each; medians are reported (default 5)\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-curve";
    long long n = 200000, window = 20000, warmup = 20000, workers = 2;
    long long slots = 256, runs = 5;
    const long long big = 1LL << 40;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--n", &n, 1, big),
        TW_BENCH_NUM("--window", &window, 1, big),
        TW_BENCH_NUM("--warmup", &warmup, 0, big),
        TW_BENCH_CLUSTER_FLAGS(&workers, &slots),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    s_keys_t keys;
    memset(&keys, 0, sizeof keys);
    int rc = s_make_keys(&keys);
    const char *const bargs[] = {"--curve-secret", keys.bsec,
                                 "--clients-keys", keys.dc,
                                 "--workers-keys", keys.dw,
                                 NULL};
    const char *const wargs[] = {"--curve-secret", keys.wsec,
                                 "--broker-key", keys.bpub,
                                 NULL};
    const tw_bench_cluster_opts_t curve = {.broker_args = bargs,
                                           .worker_args = wargs,
                                           .client_secret = keys.csec,
                                           .broker_key = keys.bpub};
    s_side_t side[2];
    memset(side, 0, sizeof side);
    side[0].name = "plaintext";
    side[1].name = "curve";
    for (int i = 0; i < 2; i++) {
        side[i].rate = calloc((size_t)runs, sizeof *side[i].rate);
        if (rc == 0) {
            side[i].c = tw_bench_cluster_open(&side[i].cl, (int)workers,
                                              (int)slots, i ? &curve : NULL);
            rc = side[i].c ? 0 : TW_EIO;
        }
    }
    double scratch;
    for (int i = 0; rc == 0 && warmup > 0 && i < 2; i++) {
        rc = s_run(&side[i], (uint64_t)warmup, (uint64_t)window, &scratch);
    }
    double *ratio = calloc((size_t)runs, sizeof *ratio);
    double lo = 1e300, hi = 0;
    for (long long r = 0; rc == 0 && r < runs; r++) {
        double *plain = &side[0].rate[r], *sec = &side[1].rate[r];
        rc = s_run(&side[0], (uint64_t)n, (uint64_t)window, plain);
        if (rc == 0) {
            rc = s_run(&side[1], (uint64_t)n, (uint64_t)window, sec);
        }
        if (rc == 0) {
            ratio[r] = *sec / *plain;
            lo = ratio[r] < lo ? ratio[r] : lo;
            hi = ratio[r] > hi ? ratio[r] : hi;
            fprintf(stderr, "run %lld/%lld: plaintext %.0f tasks/s, CURVE "
                    "%.0f tasks/s, ratio %.2f\n",
                    r + 1, runs, *plain, *sec, ratio[r]);
        }
    }
    for (int i = 0; i < 2; i++) {
        tw_client_destroy(&side[i].c);
        tw_bench_cluster_stop(&side[i].cl);
    }
    if (rc == 0) {
        printf("curve: plaintext %.0f tasks/s, CURVE %.0f tasks/s, ratio "
               "%.2f (median of %lld runs; per-run ratios %.2f..%.2f)\n",
               tw_bench_median(side[0].rate, (size_t)runs),
               tw_bench_median(side[1].rate, (size_t)runs),
               tw_bench_median(ratio, (size_t)runs), runs, lo, hi);
    }
    s_remove_keys(&keys);
    free(side[0].rate);
    free(side[1].rate);
    free(ratio);
    return rc == 0 ? 0 : 1;
}
