/*  worker/main.c - taskwheel-worker: configuration, signals, processes.
 *
 *  Reads the option table below (flags, or `--config FILE`), then either
 *  runs one worker in this process or, with --procs P > 1, hands P
 *  children to the supervisor. Each worker process loads its handlers
 *  (built-ins, exec, then every --plugin in order), connects and runs its
 *  loop until a signal stops it: the first SIGTERM or SIGINT drains, a
 *  second one stops at once. Exit status: 0 after a drain, 1 after a forced
 *  stop or a runtime failure, 2 for a usage or configuration error.
 */
#include "common/alloc.h"
#include "common/config.h"
#include "common/error.h"
#include "common/log.h"
#include "worker/handlers.h"
#include "worker/plugin.h"
#include "worker/proc.h"
#include "worker/security.h"
#include "worker/supervisor.h"
#include "worker/worker.h"
#include "taskwheel/version.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *broker;
    long long slots;
    long long procs;
    char *tags;
    tw_strlist_t plugin;
    char *name;
    char *log_level;
    char *log;
    long long drain_timeout;
    long long exec_stdout_max;
    char *curve_secret;
    char *broker_key;
    tw_strlist_t exec_allow;
    tw_strlist_t proc;
    long long proc_count;
    long long proc_hello_timeout;
    long long proc_grace;
} s_cfg_t;

#define S_OPT(name, type, min, max, dflt, field, choices, help)              \
    {name, type, min, max, dflt, offsetof(s_cfg_t, field), choices, help}

static const tw_cfg_opt_t s_opts[] = {
    S_OPT("broker", TW_CFG_STR, 0, 0, "tcp://127.0.0.1:7711", broker, NULL,
          "the broker's backend endpoint; a broker pair's two, "
          "comma-separated (docs/HA.md)"),
    S_OPT("slots", TW_CFG_INT, 1, 65536, "4", slots, NULL,
          "tasks each worker process runs at once"),
    S_OPT("procs", TW_CFG_INT, 1, 1024, "1", procs, NULL,
          "worker processes, under a supervisor when more than one"),
    S_OPT("tags", TW_CFG_STR, 0, 0, NULL, tags, NULL,
          "labels sent to the broker, k=v,k2=v2"),
    S_OPT("plugin", TW_CFG_LIST, 0, 0, NULL, plugin, NULL,
          "a native handler plugin (.so) to load"),
    S_OPT("name", TW_CFG_STR, 0, 0, NULL, name, NULL,
          "worker name [default: <hostname>-<pid>]"),
    S_OPT("log-level", TW_CFG_ENUM, 0, 0, "notice", log_level,
          "err|warn|notice|info|debug", "log lines up to this level"),
    S_OPT("log", TW_CFG_ENUM, 0, 0, "stderr", log, "stderr|syslog",
          "where log lines go"),
    S_OPT("drain-timeout", TW_CFG_INT, 0, 86400000, "10000", drain_timeout,
          NULL, "ms running tasks get to finish after SIGTERM"),
    S_OPT("exec-stdout-max", TW_CFG_INT, 0, 1LL << 30, "16777216",
          exec_stdout_max, NULL,
          "bytes of output an exec (or stream) task may produce"),
    /* Security: worker/security.h, docs/SECURITY.md. */
    S_OPT("curve-secret", TW_CFG_STR, 0, 0, NULL, curve_secret, NULL,
          "this worker's CURVE secret key file (with --broker-key)"),
    S_OPT("broker-key", TW_CFG_STR, 0, 0, NULL, broker_key, NULL,
          "the broker's CURVE public key file"),
    S_OPT("exec-allow", TW_CFG_LIST, 0, 0, NULL, exec_allow, NULL,
          "run exec/stream programs only from under this directory "
          "(default: any program)"),
    /* Proc handlers: worker/proc.h, proto/PROTOCOL.md 15. */
    S_OPT("proc", TW_CFG_LIST, 0, 0, NULL, proc, NULL,
          "a command whose children run handlers, one pool each"),
    S_OPT("proc-count", TW_CFG_INT, 0, 1024, "0", proc_count, NULL,
          "children per --proc pool; 0: the slots, at most 2 per CPU"),
    S_OPT("proc-hello-timeout", TW_CFG_INT, 1, 3600000, "30000",
          proc_hello_timeout, NULL, "ms a proc child has to say hello"),
    S_OPT("proc-grace", TW_CFG_INT, 0, 60000, "1000", proc_grace, NULL,
          "ms from a cancel frame to SIGTERM, and to SIGKILL"),
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const char s_usage[] =
    "usage: taskwheel-worker [--broker EP] [--slots N] [--procs P] "
    "[--tags k=v,...]\n"
    "                        [--plugin LIB.so]... [--name NAME] "
    "[--config FILE]\n"
    "                        [--log stderr|syslog] [--log-level LEVEL]\n"
    "                        [--curve-secret FILE --broker-key FILE] "
    "[--exec-allow DIR]...\n"
    "                        [--proc CMD]... [--proc-count K]\n"
    "\n"
    "Runs tasks and stations for a taskwheel broker. Built-in handlers:\n"
    "noop, echo, sleep, fail, incr, mirror, ticker, ask, exec, stream;\n"
    "their arguments and results are in docs/HANDLERS.md (installed as\n"
    "share/doc/taskwheel/HANDLERS.md). --plugin adds native handlers\n"
    "(include/taskwheel/handler.h), --proc handlers served by a\n"
    "long-lived child program (proto/PROTOCOL.md 15).";

/* Where log lines go (--log), for this process and every child. */
static tw_log_sink_t s_sink = TW_LOG_STDERR;

/* The CURVE keys, read once before any child is forked. */
static tw_curve_client_t s_curve;
static int s_curve_on;

/* One worker process ------------------------------------------------------ */

/* The process's signal handles and outcome; one worker per process. */
static struct {
    uv_signal_t sigterm, sigint;
    tw_worker_t *worker;
    tw_procs_t *procs; /* --proc pools, or NULL */
    int signals;
    int code;
} s_proc;

static void
s_on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (s_proc.signals++ == 0) {
        tw_notice("worker.signal", "%s: draining (signal again to stop now)",
                  signum == SIGTERM ? "SIGTERM" : "SIGINT");
        tw_worker_drain(s_proc.worker);
    } else {
        tw_worker_abort(s_proc.worker);
    }
}

static void
s_on_exit(tw_worker_t *w, int code, int stuck)
{
    (void)w;
    s_proc.code = code;
    if (stuck) {
        /* A handler ignores cancellation; its thread cannot be waited
         * for, and BYE has gone out: leave now, and take the proc
         * children along. */
        if (s_proc.procs) {
            tw_procs_kill(s_proc.procs);
        }
        exit(code);
    }
    uv_close((uv_handle_t *)&s_proc.sigterm, NULL);
    uv_close((uv_handle_t *)&s_proc.sigint, NULL);
    if (s_proc.procs) {
        /* No task runs any more: the children may go. */
        tw_procs_close(s_proc.procs, NULL, NULL);
    }
}

static void
s_flag(void *ud)
{
    *(int *)ud = 1;
}

/* Start the --proc pools and register their handlers. Returns 0, or an
 * error with the reason in `err` (nothing is left running then). */
static int
s_start_procs(const s_cfg_t *cfg, uv_loop_t *loop, tw_handlers_t *reg,
              tw_procs_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->proc.n == 0) {
        return 0;
    }
    unsigned count = cfg->proc_count
                         ? (unsigned)cfg->proc_count
                         : tw_procs_default_count((unsigned)cfg->slots);
    tw_procs_opts_t po = {
        .cmds = (const char *const *)cfg->proc.v,
        .npools = cfg->proc.n,
        .count = count,
        .hello_ms = (uint64_t)cfg->proc_hello_timeout,
        .grace_ms = (uint64_t)cfg->proc_grace,
    };
    tw_procs_t *ps;
    int rc = tw_procs_start(&ps, loop, &po, err, errlen);
    if (rc != 0) {
        return rc;
    }
    rc = tw_procs_register(ps, reg, err, errlen);
    if (rc != 0) {
        int done = 0;
        tw_procs_close(ps, s_flag, &done);
        while (!done) {
            uv_run(loop, UV_RUN_ONCE);
        }
        tw_procs_free(&ps);
        return rc;
    }
    tw_notice("worker.proc", "%zu proc pool(s) of %u child(ren) ready: %zu "
                             "handler(s)",
              cfg->proc.n, count, tw_procs_nhandlers(ps));
    *out = ps;
    return 0;
}

static int
s_run(const s_cfg_t *cfg, unsigned idx)
{
    char err[512];
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_handlers_t reg;
    tw_handlers_init(&reg);
    int rc = tw_handlers_add_all(&reg, (size_t)cfg->exec_stdout_max);
    if (rc != 0) {
        snprintf(err, sizeof err, "cannot register the built-in handlers: %s",
                 tw_strerror(rc));
    }
    for (size_t i = 0; rc == 0 && i < cfg->plugin.n; i++) {
        rc = tw_plugin_load(&reg, cfg->plugin.v[i], err, sizeof err);
    }
    tw_procs_t *procs = NULL;
    if (rc == 0) {
        rc = s_start_procs(cfg, &loop, &reg, &procs, err, sizeof err);
    }
    char name[160];
    const char *pname = cfg->name;
    if (cfg->name && cfg->procs > 1) {
        snprintf(name, sizeof name, "%s-%u", cfg->name, idx);
        pname = name;
    }
    tw_worker_opts_t o = {cfg->broker, pname, (unsigned)cfg->slots,
                          cfg->tags, (uint64_t)cfg->drain_timeout, 0};
    if (procs) {
        /* A cancelled proc call may take a cancel frame, SIGTERM and
         * SIGKILL, a grace apart, to end. */
        o.stop_grace_ms = 2 * (uint64_t)cfg->proc_grace + 500;
    }
    tw_worker_t *w = NULL;
    if (rc == 0) {
        rc = tw_worker_new(&w, &loop, &reg, &o, err, sizeof err);
    }
    if (rc == 0) {
        tw_worker_set_curve(w, s_curve_on ? &s_curve : NULL);
        rc = tw_worker_start(w, s_on_exit, err, sizeof err);
    }
    if (rc != 0) {
        tw_err("worker.config", "%s", err);
        tw_worker_destroy(&w);
        if (procs) {
            int done = 0;
            tw_procs_close(procs, s_flag, &done);
            while (!done) {
                uv_run(&loop, UV_RUN_ONCE);
            }
            tw_procs_free(&procs);
        }
        uv_loop_close(&loop);
        tw_handlers_free(&reg);
        return 2;
    }
    memset(&s_proc, 0, sizeof s_proc);
    s_proc.worker = w;
    s_proc.procs = procs;
    uv_signal_init(&loop, &s_proc.sigterm);
    uv_signal_init(&loop, &s_proc.sigint);
    uv_signal_start(&s_proc.sigterm, s_on_signal, SIGTERM);
    uv_signal_start(&s_proc.sigint, s_on_signal, SIGINT);
    tw_notice("worker.start",
              "%s: taskwheel-worker %s, %lld slot(s), %zu handler(s), "
              "broker %s",
              tw_worker_ident(w), tw_version(), cfg->slots, reg.n,
              cfg->broker);

    uv_run(&loop, UV_RUN_DEFAULT);

    tw_worker_destroy(&w);
    tw_procs_free(&procs);
    if (uv_loop_close(&loop) != 0) {
        tw_warn("worker.exit", "loop closed with handles still open");
    }
    tw_handlers_free(&reg);
    return s_proc.code;
}

static int
s_child(unsigned idx, void *arg)
{
    char ident[48];
    snprintf(ident, sizeof ident, "taskwheel-worker.%u", idx);
    tw_log_open(ident, s_sink);
    return s_run(arg, idx);
}

int
main(int argc, char **argv)
{
    s_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    int rc = tw_cfg_parse(s_opts, &cfg, argc, argv, s_usage, err, sizeof err);
    if (rc == TW_CFG_EXIT) {
        tw_cfg_free(s_opts, &cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "taskwheel-worker: %s\n%s\n", err, s_usage);
        tw_cfg_free(s_opts, &cfg);
        return 2;
    }
    tw_log_level = tw_log_level_parse(cfg.log_level);
    if (strcmp(cfg.log, "syslog") == 0) {
        s_sink = TW_LOG_SYSLOG;
    }
    tw_log_open("taskwheel-worker", s_sink);
    /* A child of the exec handler may close its stdin early. */
    signal(SIGPIPE, SIG_IGN);
    if (tw_worker_curve_load(cfg.curve_secret, cfg.broker_key, &s_curve,
                             &s_curve_on, err, sizeof err) != 0 ||
        tw_exec_allow_set((const char *const *)cfg.exec_allow.v,
                          cfg.exec_allow.n, err, sizeof err) != 0) {
        fprintf(stderr, "taskwheel-worker: %s\n", err);
        tw_cfg_free(s_opts, &cfg);
        return 2;
    }
    tw_worker_security_log(s_curve_on ? &s_curve : NULL);
    if (cfg.procs > 1) {
        rc = tw_supervise((unsigned)cfg.procs, s_child, &cfg);
    } else {
        rc = s_run(&cfg, 0);
    }
    tw_keys_wipe(&s_curve.self);
    tw_exec_allow_set(NULL, 0, err, sizeof err);
    tw_cfg_free(s_opts, &cfg);
    return rc;
}
