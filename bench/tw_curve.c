/*  bench/tw_curve.c - end-to-end throughput with CURVE on, as a ratio to
 *  CURVE off.
 *
 *  Starts two clusters side by side on 127.0.0.1, each a real broker and W
 *  workers: one in plaintext, one with --curve-secret and key directories
 *  (keys made fresh in a temp directory with common/keys.h), its workers
 *  and its client using CURVE. Then, R times, pushes N no-op tasks through
 *  each with a window of them outstanding (the same loop as
 *  bench-throughput), alternating plaintext and CURVE so that slow phases
 *  of a noisy machine hit both. The idle cluster only exchanges heartbeats
 *  meanwhile. Prints one line:
 *
 *    curve: plaintext P tasks/s, CURVE C tasks/s, ratio C/P (median of R
 *    runs; per-run ratios min..max)
 *
 *  The ratio is the median of the per-run ratios. bench/cluster.h starts
 *  its programs without extra flags, so this file spawns its own
 *  (stdout and stderr of each child in a log file in the temp directory,
 *  kept and tailed when a run fails, SIGKILL for every child if the
 *  benchmark dies). Exit status: 0, 1 when a run failed, 2 for a usage
 *  error.
 */
#include "bench/bench.h"
#include "bench/cluster.h" /* tw_bench_status_uint */
#include "common/error.h"
#include "common/keys.h"
#include "taskwheel/client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef TW_BENCH_BROKER_BIN
#define TW_BENCH_BROKER_BIN "taskwheel-broker"
#endif
#ifndef TW_BENCH_WORKER_BIN
#define TW_BENCH_WORKER_BIN "taskwheel-worker"
#endif

#define S_IDLE_LIMIT_NS 10000000000ull /* no message for 10 s: give up */
#define S_MAX_LIVE (2 * (TW_BENCH_MAX_WORKERS + 1))

/* ---- children --------------------------------------------------------- */

static pid_t s_live[S_MAX_LIVE];
static char s_dir[64];

static void
s_kill_live(void)
{
    for (int i = 0; i < S_MAX_LIVE; i++) {
        if (s_live[i] > 0) {
            kill(s_live[i], SIGKILL);
        }
    }
}

static void
s_on_signal(int sig)
{
    s_kill_live();
    signal(sig, SIG_DFL);
    raise(sig);
}

static const char *
s_bin(const char *env, const char *dflt)
{
    const char *v = getenv(env);
    return v && *v ? v : dflt;
}

static pid_t
s_spawn(const char *const argv[], const char *logname)
{
    char log[128];
    snprintf(log, sizeof log, "%s/%s", s_dir, logname);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench: cannot start %s: %s\n", argv[0],
                strerror(rc));
        return -1;
    }
    for (int i = 0; i < S_MAX_LIVE; i++) {
        if (s_live[i] == 0) {
            s_live[i] = pid;
            break;
        }
    }
    return pid;
}

/* SIGTERM, up to 3 s, then SIGKILL; reap. */
static void
s_stop(pid_t pid)
{
    if (pid <= 0) {
        return;
    }
    kill(pid, SIGTERM);
    int st;
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            goto reaped;
        }
        tw_bench_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
reaped:
    for (int i = 0; i < S_MAX_LIVE; i++) {
        if (s_live[i] == pid) {
            s_live[i] = 0;
        }
    }
}

/* ---- clusters --------------------------------------------------------- */

typedef struct {
    const char *name; /* "plaintext" or "curve" */
    int curve;
    char frontend[64], backend[64], status[64];
    pid_t broker;
    pid_t workers[TW_BENCH_MAX_WORKERS];
    int nworkers;
    tw_client_t *c;
} s_cluster_t;

static void
s_key_path(char *out, size_t len, const char *name, const char *ext)
{
    snprintf(out, len, "%s/%s%s", s_dir, name, ext);
}

/* Make the broker, worker and client keys and the two role directories. */
static int
s_make_keys(void)
{
    const char *names[] = {"broker", "worker", "client"};
    for (int i = 0; i < 3; i++) {
        char base[128], err[512];
        tw_keypair_t kp;
        s_key_path(base, sizeof base, names[i], "");
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
        s_key_path(d, sizeof d, dirs[i][0], "");
        s_key_path(from, sizeof from, dirs[i][1], ".pub");
        snprintf(to, sizeof to, "%s/%s.pub", d, dirs[i][1]);
        if (mkdir(d, 0755) != 0 || link(from, to) != 0) {
            fprintf(stderr, "bench: %s: %s\n", d, strerror(errno));
            return TW_EIO;
        }
    }
    return 0;
}

static void
s_tail_logs(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "for f in %s/*.log; do echo \"--- $f\"; tail -n 15 \"$f\"; "
             "done >&2",
             s_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: logs are in %s\n", s_dir);
    }
}

static int
s_start(s_cluster_t *cl, int curve, int workers, int slots)
{
    memset(cl, 0, sizeof *cl);
    cl->name = curve ? "curve" : "plaintext";
    cl->curve = curve;
    cl->nworkers = workers;
    char *eps[3] = {cl->frontend, cl->backend, cl->status};
    for (int i = 0; i < 3; i++) {
        int port = tw_bench_free_port();
        if (port < 0) {
            fprintf(stderr, "bench: no free port\n");
            return TW_EIO;
        }
        snprintf(eps[i], sizeof cl->frontend, "tcp://127.0.0.1:%d", port);
    }
    char bsec[128], bpub[128], wsec[128], csec[128], dc[128], dw[128];
    s_key_path(bsec, sizeof bsec, "broker", ".key");
    s_key_path(bpub, sizeof bpub, "broker", ".pub");
    s_key_path(wsec, sizeof wsec, "worker", ".key");
    s_key_path(csec, sizeof csec, "client", ".key");
    s_key_path(dc, sizeof dc, "clients", "");
    s_key_path(dw, sizeof dw, "workers", "");
    const char *bargv[20] = {s_bin("TW_BROKER_BIN", TW_BENCH_BROKER_BIN),
                             "--frontend", cl->frontend, "--backend",
                             cl->backend, "--status", cl->status,
                             "--log-level", "warn"};
    int n = 9;
    if (curve) {
        bargv[n++] = "--curve-secret";
        bargv[n++] = bsec;
        bargv[n++] = "--clients-keys";
        bargv[n++] = dc;
        bargv[n++] = "--workers-keys";
        bargv[n++] = dw;
    }
    bargv[n] = NULL;
    char log[64];
    snprintf(log, sizeof log, "%s-broker.log", cl->name);
    cl->broker = s_spawn(bargv, log);
    if (cl->broker < 0) {
        return TW_EIO;
    }
    char slots_s[24];
    snprintf(slots_s, sizeof slots_s, "%d", slots);
    for (int i = 0; i < workers; i++) {
        char name[48];
        snprintf(name, sizeof name, "bench-%s-%d", cl->name, i);
        const char *wargv[16] = {s_bin("TW_WORKER_BIN", TW_BENCH_WORKER_BIN),
                                 "--broker", cl->backend, "--slots", slots_s,
                                 "--name", name, "--log-level", "warn"};
        n = 9;
        if (curve) {
            wargv[n++] = "--curve-secret";
            wargv[n++] = wsec;
            wargv[n++] = "--broker-key";
            wargv[n++] = bpub;
        }
        wargv[n] = NULL;
        snprintf(log, sizeof log, "%s-worker-%d.log", cl->name, i);
        cl->workers[i] = s_spawn(wargv, log);
        if (cl->workers[i] < 0) {
            return TW_EIO;
        }
    }
    char err[512];
    cl->c = curve ? tw_client_new_curve(cl->frontend, csec, bpub, err,
                                        sizeof err)
                  : tw_client_new(cl->frontend);
    if (!cl->c) {
        fprintf(stderr, "bench: client: %s\n", curve ? err : "no memory");
        return TW_EIO;
    }
    /* Ready when the broker answers and lists every worker. */
    uint64_t deadline = tw_bench_now_ns() + 15000000000ull;
    for (;;) {
        uint64_t nw = 0;
        if (tw_client_ping(cl->c, 500) == 0 &&
            tw_bench_status_uint(cl->c, "workers", 2000, &nw) == 0 &&
            nw == (uint64_t)workers) {
            return 0;
        }
        if (tw_bench_now_ns() > deadline) {
            fprintf(stderr, "bench: the %s cluster did not come up\n",
                    cl->name);
            return TW_ETIMEDOUT;
        }
        tw_bench_sleep_ms(100);
    }
}

static void
s_cluster_stop(s_cluster_t *cl)
{
    tw_client_destroy(&cl->c);
    for (int i = 0; i < cl->nworkers; i++) {
        s_stop(cl->workers[i]);
    }
    s_stop(cl->broker);
}

/* ---- one run ---------------------------------------------------------- */

typedef struct {
    uint64_t done, bad, refused;
} s_counts_t;

static void
s_on_ack(void *arg, uint64_t seq, uint64_t id, int err, const char *msg)
{
    (void)seq;
    (void)id;
    (void)msg;
    s_counts_t *k = arg;
    if (err) {
        k->refused++;
        k->done++;
    }
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_counts_t *k = arg;
    k->done++;
    k->bad += r->state != 0;
}

/* Push `n` no-op tasks through `cl` with at most `window` outstanding;
 * *rate gets tasks per second. Returns 0 or a negative error. */
static int
s_run(s_cluster_t *cl, uint64_t n, uint64_t window, double *rate)
{
    s_counts_t k;
    memset(&k, 0, sizeof k);
    tw_client_on_ack(cl->c, s_on_ack, &k);
    tw_client_on_result(cl->c, s_on_result, &k);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    uint64_t submitted = 0;
    uint64_t t0 = tw_bench_now_ns(), last = t0;
    while (k.done < n) {
        while (submitted < n && submitted - k.done < window) {
            int rc = tw_client_submit(cl->c, &spec, NULL);
            if (rc != 0) {
                fprintf(stderr, "bench: submit: %s\n", tw_strerror(rc));
                return rc;
            }
            submitted++;
        }
        int m = tw_client_poll(cl->c, 500);
        if (m < 0) {
            fprintf(stderr, "bench: poll: %s\n", tw_strerror(m));
            return m;
        }
        uint64_t now = tw_bench_now_ns();
        if (m > 0) {
            last = now;
        } else if (now - last > S_IDLE_LIMIT_NS) {
            fprintf(stderr, "bench: %s: nothing for 10 s; %llu of %llu\n",
                    cl->name, (unsigned long long)k.done,
                    (unsigned long long)n);
            return TW_ETIMEDOUT;
        }
    }
    uint64_t t1 = tw_bench_now_ns();
    if (k.refused || k.bad) {
        fprintf(stderr, "bench: %s: %llu refused, %llu not ok\n", cl->name,
                (unsigned long long)k.refused, (unsigned long long)k.bad);
        return TW_EFAILED;
    }
    *rate = (double)n * 1e9 / (double)(t1 > t0 ? t1 - t0 : 1);
    return 0;
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
        TW_BENCH_NUM("--workers", &workers, 1, TW_BENCH_MAX_WORKERS),
        TW_BENCH_NUM("--slots", &slots, 1, 1 << 20),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    atexit(s_kill_live);
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-bench-curve-XXXXXX");
    if (!mkdtemp(s_dir)) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    s_cluster_t cl[2];
    memset(cl, 0, sizeof cl);
    int rc = s_make_keys();
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = s_start(&cl[i], i, (int)workers, (int)slots);
    }
    double scratch;
    for (int i = 0; rc == 0 && warmup > 0 && i < 2; i++) {
        rc = s_run(&cl[i], (uint64_t)warmup, (uint64_t)window, &scratch);
    }
    double *plain = calloc((size_t)runs, sizeof *plain);
    double *curve = calloc((size_t)runs, sizeof *curve);
    double *ratio = calloc((size_t)runs, sizeof *ratio);
    double lo = 1e300, hi = 0;
    for (long long r = 0; rc == 0 && r < runs; r++) {
        rc = s_run(&cl[0], (uint64_t)n, (uint64_t)window, &plain[r]);
        if (rc == 0) {
            rc = s_run(&cl[1], (uint64_t)n, (uint64_t)window, &curve[r]);
        }
        if (rc == 0) {
            ratio[r] = curve[r] / plain[r];
            lo = ratio[r] < lo ? ratio[r] : lo;
            hi = ratio[r] > hi ? ratio[r] : hi;
            fprintf(stderr, "run %lld/%lld: plaintext %.0f tasks/s, CURVE "
                    "%.0f tasks/s, ratio %.2f\n",
                    r + 1, runs, plain[r], curve[r], ratio[r]);
        }
    }
    for (int i = 0; i < 2; i++) {
        s_cluster_stop(&cl[i]);
    }
    if (rc != 0) {
        s_tail_logs();
        fprintf(stderr, "bench: failed; logs kept in %s\n", s_dir);
    } else {
        printf("curve: plaintext %.0f tasks/s, CURVE %.0f tasks/s, ratio "
               "%.2f (median of %lld runs; per-run ratios %.2f..%.2f)\n",
               tw_bench_median(plain, (size_t)runs),
               tw_bench_median(curve, (size_t)runs),
               tw_bench_median(ratio, (size_t)runs), runs, lo, hi);
        if (!getenv("TW_BENCH_KEEP")) {
            char cmd[128];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
            if (system(cmd) != 0) {
                fprintf(stderr, "bench: could not remove %s\n", s_dir);
            }
        }
    }
    free(plain);
    free(curve);
    free(ratio);
    return rc == 0 ? 0 : 1;
}
