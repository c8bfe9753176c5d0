/*  bench/cluster.c - start, watch and stop a broker and workers (see
 *  cluster.h).
 *
 *  Every child pid goes into s_live until it is reaped. The atexit hook
 *  and the signal handlers walk that table and SIGKILL what is there, so
 *  no broker or worker outlives a benchmark that crashes on an assertion,
 *  exits early or is interrupted.
 */
#include "bench/cluster.h"
#include "bench/bench.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
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

#define S_MAX_LIVE 256
#define S_GRACE_MS 3000
#define S_READY_MS 15000 /* for the children to come up */

static pid_t s_live[S_MAX_LIVE];
static int s_hooked;

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
    /* Only async-signal-safe calls here. */
    s_kill_live();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
s_hook(void)
{
    if (s_hooked) {
        return;
    }
    s_hooked = 1;
    atexit(s_kill_live);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static void
s_track(pid_t pid)
{
    for (int i = 0; i < S_MAX_LIVE; i++) {
        if (s_live[i] == 0) {
            s_live[i] = pid;
            return;
        }
    }
}

static void
s_untrack(pid_t pid)
{
    for (int i = 0; i < S_MAX_LIVE; i++) {
        if (s_live[i] == pid) {
            s_live[i] = 0;
        }
    }
}

static const char *
s_bin(const char *env, const char *dflt)
{
    const char *v = getenv(env);
    return v && *v ? v : dflt;
}

/* Start argv[0] with stdin from /dev/null and stdout and stderr into
 * `log`. Returns the pid or -1 after printing why. */
static pid_t
s_spawn(const char *const argv[], const char *log)
{
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
    s_track(pid);
    return pid;
}

static void
s_log_path(const tw_bench_cluster_t *cl, int worker, char *buf, size_t len)
{
    if (worker < 0) {
        snprintf(buf, len, "%s/broker.log", cl->dir);
    } else {
        snprintf(buf, len, "%s/worker-%d.log", cl->dir, worker);
    }
}

/* `base` (`nbase` words) then the NULL-terminated `extra` (may be NULL)
 * into argv, NULL-terminated; argv holds TW_BENCH_MAX_EXTRA_ARGS + 16
 * words. Returns 0, or TW_EINVAL when there are too many. */
static int
s_argv(const char *argv[], const char *const *base, size_t nbase,
       const char *const *extra)
{
    size_t n = 0;
    for (; n < nbase; n++) {
        argv[n] = base[n];
    }
    for (int i = 0; extra && extra[i]; i++) {
        if (i == TW_BENCH_MAX_EXTRA_ARGS) {
            fprintf(stderr, "bench: more than %d extra arguments\n",
                    TW_BENCH_MAX_EXTRA_ARGS);
            return TW_EINVAL;
        }
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    return 0;
}

/* A client of the cluster, plain or CURVE; NULL after printing why. */
static tw_client_t *
s_client_new(tw_bench_cluster_t *cl)
{
    char err[512] = "out of memory";
    tw_client_t *c =
        cl->opts.client_secret
            ? tw_client_new_curve(cl->frontend, cl->opts.client_secret,
                                  cl->opts.broker_key, err, sizeof err)
            : tw_client_new(cl->frontend);
    if (!c) {
        char why[600];
        snprintf(why, sizeof why, "cannot make a client: %s", err);
        tw_bench_cluster_fail(cl, why);
    }
    return c;
}

/* Call fn(path) for the broker's log and then each worker's. */
static void
s_each_log(const tw_bench_cluster_t *cl, void (*fn)(const char *path))
{
    char path[256];
    for (int i = -1; i < cl->nworkers; i++) {
        s_log_path(cl, i, path, sizeof path);
        fn(path);
    }
}

/* The last ~1.5 KB of a log on stderr. */
static void
s_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    fprintf(stderr, "---- %s (tail) ----\n", path);
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > 1536 ? end - 1536 : 0, SEEK_SET);
    }
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        fwrite(buf, 1, n, stderr);
    }
    fclose(f);
}

void
tw_bench_cluster_fail(tw_bench_cluster_t *cl, const char *why)
{
    cl->failed = 1;
    fprintf(stderr, "bench: %s\n", why);
    s_each_log(cl, s_tail);
    fprintf(stderr, "bench: logs kept in %s\n", cl->dir);
}

/* Has `*pid` exited? Reaps it and clears *pid if so. */
static int
s_exited(pid_t *pid, int *status)
{
    if (*pid <= 0) {
        return 0;
    }
    pid_t r = waitpid(*pid, status, WNOHANG);
    if (r == *pid || (r < 0 && errno == ECHILD)) {
        s_untrack(*pid);
        *pid = 0;
        return 1;
    }
    return 0;
}

int
tw_bench_cluster_check(tw_bench_cluster_t *cl)
{
    int st = 0;
    char why[128];
    if (s_exited(&cl->broker, &st)) {
        snprintf(why, sizeof why, "the broker exited (status 0x%x)", st);
        tw_bench_cluster_fail(cl, why);
        return TW_EIO;
    }
    for (int i = 0; i < cl->nworkers; i++) {
        if (s_exited(&cl->workers[i], &st)) {
            snprintf(why, sizeof why, "worker %d exited (status 0x%x)", i,
                     st);
            tw_bench_cluster_fail(cl, why);
            return TW_EIO;
        }
    }
    return 0;
}

/* How many workers the broker lists, or a negative error. */
static int
s_count_workers(tw_client_t *c)
{
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_query(c, "workers", 1000, &data, &len);
    if (rc != 0) {
        return rc;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int n = TW_EPROTO;
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS
        && u.data.type == MSGPACK_OBJECT_ARRAY) {
        n = (int)u.data.via.array.size;
    }
    msgpack_unpacked_destroy(&u);
    free(data);
    return n;
}

static int
s_wait_ready(tw_bench_cluster_t *cl, int timeout_ms)
{
    uint64_t deadline = tw_bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    tw_client_t *c = s_client_new(cl);
    if (!c) {
        return TW_ENOMEM;
    }
    int rc = TW_ETIMEDOUT, have = 0;
    while (tw_bench_now_ns() < deadline) {
        if ((rc = tw_bench_cluster_check(cl)) != 0) {
            break;
        }
        uint64_t epoch;
        if (cl->opts.passive
                ? tw_bench_status_uint(c, "ha_epoch", 250, &epoch) != 0
                : tw_client_ping(c, 250) != 0) {
            rc = TW_EUNREACH;
            continue;
        }
        if (cl->opts.passive) {
            rc = 0;
            break;
        }
        have = s_count_workers(c);
        if (have == cl->nworkers) {
            rc = 0;
            break;
        }
        rc = TW_ETIMEDOUT;
        tw_bench_sleep_ms(20);
    }
    tw_client_destroy(&c);
    if (rc != 0 && !cl->failed) {
        char why[160];
        snprintf(why, sizeof why,
                 "cluster not ready after %d ms: %s (%d of %d workers "
                 "registered)",
                 timeout_ms, tw_strerror(rc), have < 0 ? 0 : have,
                 cl->nworkers);
        tw_bench_cluster_fail(cl, why);
    }
    return rc;
}

/* Start the children and wait for them (tw_bench_cluster_open). Returns
 * 0 or a negative error after printing why. */
static int
s_start(tw_bench_cluster_t *cl, int workers, int slots,
        const tw_bench_cluster_opts_t *opts, int timeout_ms)
{
    memset(cl, 0, sizeof *cl);
    if (workers < 0 || workers > TW_BENCH_MAX_WORKERS || slots < 1) {
        fprintf(stderr, "bench: a cluster of %d workers of %d slots?\n",
                workers, slots);
        return TW_EINVAL;
    }
    if (opts) {
        cl->opts = *opts;
    }
    /* The command lines point at the endpoints in `cl`, written below once
     * the ports are known, and at `name`, written for each worker. */
    const char *bargv[TW_BENCH_MAX_EXTRA_ARGS + 16];
    const char *wargv[TW_BENCH_MAX_EXTRA_ARGS + 16];
    const char *bbase[] = {s_bin("TW_BROKER_BIN", TW_BENCH_BROKER_BIN),
                           "--frontend", cl->frontend,
                           "--backend", cl->backend,
                           "--status", cl->status,
                           "--log-level", "warn"};
    char slots_s[24], name[32];
    snprintf(slots_s, sizeof slots_s, "%d", slots);
    const char *wbase[] = {s_bin("TW_WORKER_BIN", TW_BENCH_WORKER_BIN),
                           "--broker", cl->wbroker,
                           "--slots", slots_s,
                           "--name", name,
                           "--log-level", "warn"};
    if (s_argv(bargv, bbase, sizeof bbase / sizeof bbase[0],
               cl->opts.broker_args) != 0 ||
        s_argv(wargv, wbase, sizeof wbase / sizeof wbase[0],
               cl->opts.worker_args) != 0) {
        return TW_EINVAL;
    }
    s_hook();
    cl->nworkers = workers;
    cl->slots = slots;
    snprintf(cl->dir, sizeof cl->dir, "/tmp/tw-bench-XXXXXX");
    if (!mkdtemp(cl->dir)) {
        fprintf(stderr, "bench: mkdtemp: %s\n", strerror(errno));
        return TW_EIO;
    }
    int ports[3];
    for (int i = 0; i < 3; i++) {
        ports[i] = tw_bench_free_port();
        if (ports[i] < 0) {
            fprintf(stderr, "bench: no free port: %s\n", strerror(-ports[i]));
            cl->failed = 1;
            return TW_EIO;
        }
    }
    snprintf(cl->frontend, sizeof cl->frontend, "tcp://127.0.0.1:%d",
             ports[0]);
    snprintf(cl->backend, sizeof cl->backend, "tcp://127.0.0.1:%d",
             ports[1]);
    snprintf(cl->status, sizeof cl->status, "tcp://127.0.0.1:%d", ports[2]);
    snprintf(cl->wbroker, sizeof cl->wbroker, "%s%s%s", cl->backend,
             cl->opts.also_backend ? "," : "",
             cl->opts.also_backend ? cl->opts.also_backend : "");

    char log[256];
    s_log_path(cl, -1, log, sizeof log);
    cl->broker = s_spawn(bargv, log);
    if (cl->broker < 0) {
        cl->broker = 0;
        cl->failed = 1;
        tw_bench_cluster_stop(cl);
        return TW_EIO;
    }
    for (int i = 0; i < workers; i++) {
        snprintf(name, sizeof name, "bench-%d", i);
        s_log_path(cl, i, log, sizeof log);
        cl->workers[i] = s_spawn(wargv, log);
        if (cl->workers[i] < 0) {
            cl->workers[i] = 0;
            cl->failed = 1;
            tw_bench_cluster_stop(cl);
            return TW_EIO;
        }
    }
    int rc = s_wait_ready(cl, timeout_ms);
    if (rc != 0) {
        tw_bench_cluster_stop(cl);
    }
    return rc;
}

static int
s_any_alive(tw_bench_cluster_t *cl)
{
    int st, alive = 0;
    s_exited(&cl->broker, &st);
    alive |= cl->broker > 0;
    for (int i = 0; i < cl->nworkers; i++) {
        s_exited(&cl->workers[i], &st);
        alive |= cl->workers[i] > 0;
    }
    return alive;
}

static void
s_signal_all(tw_bench_cluster_t *cl, int sig)
{
    /* Workers first, so they leave before their broker goes away. */
    for (int i = 0; i < cl->nworkers; i++) {
        if (cl->workers[i] > 0) {
            kill(cl->workers[i], sig);
        }
    }
    if (cl->broker > 0) {
        kill(cl->broker, sig);
    }
}

static void
s_unlink(const char *path)
{
    unlink(path);
}

static void
s_remove_logs(tw_bench_cluster_t *cl)
{
    s_each_log(cl, s_unlink);
    rmdir(cl->dir);
}

void
tw_bench_cluster_stop(tw_bench_cluster_t *cl)
{
    if (cl->dir[0] == '\0') {
        return;
    }
    s_signal_all(cl, SIGTERM);
    uint64_t deadline = tw_bench_now_ns() + S_GRACE_MS * 1000000ull;
    while (s_any_alive(cl) && tw_bench_now_ns() < deadline) {
        tw_bench_sleep_ms(10);
    }
    if (s_any_alive(cl)) {
        fprintf(stderr, "bench: children still running after %d ms, "
                        "sending SIGKILL\n", S_GRACE_MS);
        s_signal_all(cl, SIGKILL);
        while (s_any_alive(cl)) {
            tw_bench_sleep_ms(5);
        }
    }
    const char *keep = getenv("TW_BENCH_KEEP");
    if (cl->failed || (keep && *keep)) {
        fprintf(stderr, "bench: logs in %s\n", cl->dir);
    } else {
        s_remove_logs(cl);
    }
    cl->dir[0] = '\0';
}

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    tw_bench_outcomes_t *k = arg;
    if (ack->err == 0) {
        return;
    }
    /* A refused task gets no result: it is finished here. */
    k->done++;
    if (k->refused++ == 0 && k->err == 0) {
        k->err = ack->err;
        snprintf(k->why, sizeof k->why, "refused: %s (%s)",
                 tw_client_strerror(ack->err), ack->msg ? ack->msg : "");
    }
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    tw_bench_outcomes_t *k = arg;
    k->done++;
    if (r->state != 0 && k->bad++ == 0 && k->err == 0) {
        k->err = TW_EFAILED;
        snprintf(k->why, sizeof k->why, "task state %d: %s", r->state,
                 r->error ? r->error : "");
    }
}

tw_client_t *
tw_bench_cluster_open(tw_bench_cluster_t *cl, int workers, int slots,
                      const tw_bench_cluster_opts_t *opts)
{
    if (s_start(cl, workers, slots, opts, S_READY_MS) != 0) {
        return NULL;
    }
    tw_client_t *c = s_client_new(cl);
    if (!c) {
        tw_bench_cluster_stop(cl);
        return NULL;
    }
    tw_client_on_ack(c, s_on_ack, &cl->outcomes);
    tw_client_on_result(c, s_on_result, &cl->outcomes);
    return c;
}

/* QUERY "status" and read `key`: an unsigned integer into *u, or (u NULL)
 * a string into str (cap bytes with its NUL). */
static int
s_status_value(tw_client_t *c, const char *key, int timeout_ms, uint64_t *u,
               char *str, size_t cap)
{
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_query(c, "status", timeout_ms, &data, &len);
    if (rc != 0) {
        return rc;
    }
    msgpack_unpacked m0;
    msgpack_unpacked_init(&m0);
    size_t off = 0, klen = strlen(key);
    rc = TW_EPROTO;
    if (msgpack_unpack_next(&m0, data, len, &off) == MSGPACK_UNPACK_SUCCESS
        && m0.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &m0.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            const msgpack_object *v = &m->ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
                && memcmp(k->via.str.ptr, key, klen) == 0) {
                if (u && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                    *u = v->via.u64;
                    rc = 0;
                } else if (!u && v->type == MSGPACK_OBJECT_STR && cap > 0) {
                    size_t n = v->via.str.size < cap - 1 ? v->via.str.size
                                                         : cap - 1;
                    memcpy(str, v->via.str.ptr, n);
                    str[n] = '\0';
                    rc = 0;
                }
                break;
            }
        }
    }
    msgpack_unpacked_destroy(&m0);
    free(data);
    return rc;
}

int
tw_bench_status_uint(tw_client_t *c, const char *key, int timeout_ms,
                     uint64_t *out)
{
    return s_status_value(c, key, timeout_ms, out, NULL, 0);
}

int
tw_bench_status_str(tw_client_t *c, const char *key, int timeout_ms,
                    char *out, size_t cap)
{
    return s_status_value(c, key, timeout_ms, NULL, out, cap);
}
