/*  worker/supervisor.c - fork, reap, restart, forward (see supervisor.h).
 *
 *  The parent blocks SIGCHLD, SIGTERM and SIGINT and takes them with
 *  sigtimedwait(), whose timeout is the next scheduled restart: one loop,
 *  no handlers racing the bookkeeping. Children get the original mask
 *  back before they run.
 */
#include "worker/supervisor.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define S_BACKOFF_MIN 100   /* ms */
#define S_BACKOFF_MAX 5000  /* ms */
#define S_HEALTHY_MS 10000  /* a child that lived this long resets backoff */

typedef struct {
    pid_t pid;          /* 0 when not running */
    uint64_t started;   /* ms */
    uint64_t backoff;   /* ms before the next restart */
    uint64_t restart_at;/* ms; 0 = no restart scheduled */
} s_child_t;

static void
s_on_chld(int sig)
{
    (void)sig; /* only so that SIGCHLD is not discarded */
}

static void
s_spawn(s_child_t *c, unsigned idx, tw_supervise_fn fn, void *arg,
        const sigset_t *child_mask)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        tw_err("supervisor.fork", "cannot fork child %u: %s", idx,
               strerror(errno));
        c->restart_at = tw_now_ms() + c->backoff;
        return;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_SETMASK, child_mask, NULL);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        if (getppid() != parent) {
            exit(1); /* the supervisor died while we were starting */
        }
        exit(fn(idx, arg));
    }
    c->pid = pid;
    c->started = tw_now_ms();
    c->restart_at = 0;
    tw_info("supervisor.spawn", "child %u started (pid %d)", idx, (int)pid);
}

static void
s_forward(s_child_t *kids, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (kids[i].pid > 0) {
            kill(kids[i].pid, SIGTERM);
        }
        kids[i].restart_at = 0;
    }
}

int
tw_supervise(unsigned n, tw_supervise_fn fn, void *arg)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_chld;
    sigaction(SIGCHLD, &sa, NULL);

    s_child_t *kids = tw_calloc(n, sizeof *kids);
    for (unsigned i = 0; i < n; i++) {
        kids[i].backoff = S_BACKOFF_MIN;
        s_spawn(&kids[i], i, fn, arg, &old);
    }
    tw_notice("supervisor.start", "supervising %u worker processes", n);

    int stopping = 0, failed = 0, config_error = 0;
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            unsigned i = 0;
            while (i < n && kids[i].pid != pid) {
                i++;
            }
            if (i == n) {
                continue;
            }
            s_child_t *c = &kids[i];
            c->pid = 0;
            int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!clean && stopping) {
                failed = 1; /* a last exit, not followed by a restart */
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && !stopping) {
                tw_err("supervisor.child",
                       "child %u exited with a configuration error; "
                       "stopping", i);
                config_error = 1;
                stopping = 1;
                s_forward(kids, n);
            } else if (stopping || clean) {
                tw_info("supervisor.child", "child %u (pid %d) exited", i,
                        (int)pid);
            } else {
                uint64_t now = tw_now_ms();
                if (now - c->started >= S_HEALTHY_MS) {
                    c->backoff = S_BACKOFF_MIN;
                }
                if (WIFSIGNALED(status)) {
                    tw_warn("supervisor.child",
                            "child %u (pid %d) killed by signal %d; "
                            "restarting in %llu ms",
                            i, (int)pid, WTERMSIG(status),
                            (unsigned long long)c->backoff);
                } else {
                    tw_warn("supervisor.child",
                            "child %u (pid %d) exited with status %d; "
                            "restarting in %llu ms",
                            i, (int)pid, WEXITSTATUS(status),
                            (unsigned long long)c->backoff);
                }
                c->restart_at = now + c->backoff;
                c->backoff = c->backoff * 2 > S_BACKOFF_MAX
                                 ? S_BACKOFF_MAX
                                 : c->backoff * 2;
            }
        }
        unsigned alive = 0;
        uint64_t next = 0;
        for (unsigned i = 0; i < n; i++) {
            alive += kids[i].pid > 0;
            if (kids[i].restart_at &&
                (!next || kids[i].restart_at < next)) {
                next = kids[i].restart_at;
            }
        }
        if (alive == 0 && !next) {
            break;
        }
        uint64_t now = tw_now_ms();
        if (next && next <= now) {
            for (unsigned i = 0; i < n; i++) {
                if (kids[i].restart_at && kids[i].restart_at <= now) {
                    s_spawn(&kids[i], i, fn, arg, &old);
                }
            }
            continue;
        }
        uint64_t wait = next ? next - now : 1000;
        struct timespec ts = {(time_t)(wait / 1000),
                              (long)(wait % 1000) * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            tw_notice("supervisor.stop", "%s: stopping %u child(ren)",
                      sig == SIGTERM ? "SIGTERM" : "SIGINT", alive);
            stopping = 1;
            s_forward(kids, n);
        }
    }
    tw_free(kids);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return config_error ? 2 : failed ? 1 : 0;
}
