/*  tests/harness/harness.c - processes, ports, logs and wire helpers for
 *  the integration tests (see harness.h).
 *
 *  Cleanup is the part that must never fail. Every child runs in its own
 *  process group, so killing the group also takes the worker processes a
 *  supervisor forked. Three paths lead to the same end:
 *
 *    normal exit or TW_H_ASSERT   on_exit handler: stop children politely
 *                                 (SIGTERM, then SIGKILL after 5 s), print
 *                                 the logs if the exit status is non-zero
 *    fatal or terminating signal  handler: SIGKILL every group, print the
 *    (and the SIGALRM deadline)   logs using only async-signal-safe calls,
 *                                 then die of the same signal
 *
 *  The deadline (TW_H_TIMEOUT, default 280 s) is shorter than ctest's 300
 *  s TIMEOUT, because ctest's own kill would not give us a chance to clean
 *  up. Single-threaded, like the tests.
 */
#define _GNU_SOURCE
#include "harness.h"

#include "common/util.h"
#include "taskwheel/client.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef TW_BIN_DIR
#define TW_BIN_DIR "."
#endif
#ifndef TW_BROKER_BIN
#define TW_BROKER_BIN TW_BIN_DIR "/broker/taskwheel-broker"
#endif
#ifndef TW_WORKER_BIN
#define TW_WORKER_BIN TW_BIN_DIR "/worker/taskwheel-worker"
#endif
#ifndef TW_CLI_BIN
#define TW_CLI_BIN TW_BIN_DIR "/client/taskwheel"
#endif

#define S_MAXKIDS 128
#define S_TAIL_BYTES 4096
#define S_STOP_GRACE_MS 5000

typedef struct {
    pid_t pid;
    int alive;
    int status; /* as tw_h_stop returns it, once reaped */
    char log[512];
} s_kid_t;

static s_kid_t s_kids[S_MAXKIDS];
static volatile sig_atomic_t s_nkids;
static int s_inited;
static int s_failed;
static char s_tmp[400];
static char s_name[64];
static int s_ports[512];
static size_t s_nports;
static int s_spawned;
static int s_workers;
static int s_brokers;
static void *s_ctx;

/* ------------------------------------------------------- signal-safe --- */

static void
s_write_str(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Print the last S_TAIL_BYTES of `path` to stderr. Uses only
 * async-signal-safe calls so the signal handler may use it. */
static void
s_print_tail(const char *path)
{
    s_write_str(2, "----- tail of ");
    s_write_str(2, path);
    s_write_str(2, " -----\n");
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        s_write_str(2, "(no log)\n");
        return;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > S_TAIL_BYTES ? end - S_TAIL_BYTES : 0;
    lseek(fd, start, SEEK_SET);
    char buf[1024];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        ssize_t off = 0;
        while (off < r) {
            ssize_t w = write(2, buf + off, (size_t)(r - off));
            if (w <= 0) {
                break;
            }
            off += w;
        }
    }
    close(fd);
    s_write_str(2, "----- end -----\n");
}

static void
s_print_all_tails(void)
{
    for (int i = 0; i < s_nkids; i++) {
        s_print_tail(s_kids[i].log);
    }
    if (s_tmp[0]) {
        s_write_str(2, "harness: logs kept in ");
        s_write_str(2, s_tmp);
        s_write_str(2, "\n");
    }
}

static void
s_kill_all_now(void)
{
    for (int i = 0; i < s_nkids; i++) {
        if (s_kids[i].alive) {
            kill(-s_kids[i].pid, SIGKILL);
            kill(s_kids[i].pid, SIGKILL);
        }
    }
}

static void
s_on_signal(int sig)
{
    if (sig == SIGALRM) {
        s_write_str(2, "harness: test deadline exceeded (TW_H_TIMEOUT)\n");
    } else {
        s_write_str(2, "harness: killed by a signal, cleaning up\n");
    }
    s_kill_all_now();
    s_print_all_tails();
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(128 + sig);
}

/* ------------------------------------------------------------ general --- */

static int
s_rm_entry(const char *path, const struct stat *sb, int flag,
           struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static s_kid_t *
s_find(pid_t pid)
{
    for (int i = 0; i < s_nkids; i++) {
        if (s_kids[i].pid == pid) {
            return &s_kids[i];
        }
    }
    return NULL;
}

static int
s_decode_status(int st)
{
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    if (WIFSIGNALED(st)) {
        return 128 + WTERMSIG(st);
    }
    return 255;
}

/* Reap `k` if it has exited (or wait for it when `block`). Returns 1 if
 * it is gone. */
static int
s_reap(s_kid_t *k, int block)
{
    if (!k->alive) {
        return 1;
    }
    int st = 0;
    pid_t r;
    do {
        r = waitpid(k->pid, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == k->pid) {
        k->alive = 0;
        k->status = s_decode_status(st);
        return 1;
    }
    if (r < 0) {
        /* Not our child any more (reaped elsewhere): treat as gone. */
        k->alive = 0;
        k->status = 255;
        return 1;
    }
    return 0;
}

static void
s_on_exit(int status, void *arg)
{
    (void)arg;
    for (int i = 0; i < s_nkids; i++) {
        if (s_kids[i].alive) {
            tw_h_stop(s_kids[i].pid);
        }
        /* Orphans a supervisor left behind. */
        kill(-s_kids[i].pid, SIGKILL);
    }
    if (status != 0 || s_failed) {
        s_print_all_tails();
        return;
    }
    if (s_tmp[0] && !getenv("TW_H_KEEP")) {
        nftw(s_tmp, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

void
tw_h_init(const char *name)
{
    if (s_inited) {
        return;
    }
    s_inited = 1;
    const char *n = name ? name : program_invocation_short_name;
    snprintf(s_name, sizeof s_name, "%s", n && *n ? n : "test");

    const char *base = getenv("TMPDIR");
    if (!base || !*base) {
        base = "/tmp";
    }
    snprintf(s_tmp, sizeof s_tmp, "%s/tw-%s-XXXXXX", base, s_name);
    if (!mkdtemp(s_tmp)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", s_tmp, strerror(errno));
        exit(1);
    }
    fprintf(stderr, "harness: %s: temp dir %s\n", s_name, s_tmp);

    on_exit(s_on_exit, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM,
                        SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaction(sigs[i], &sa, NULL);
    }
    /* A peer that vanishes must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);

    unsigned deadline = 280;
    const char *t = getenv("TW_H_TIMEOUT");
    if (t && atoi(t) > 0) {
        deadline = (unsigned)atoi(t);
    }
    alarm(deadline);
}

void
tw_h_fail(const char *file, int line, const char *fmt, ...)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    s_failed = 1;
    exit(1);
}

const char *
tw_h_tmpdir(void)
{
    tw_h_init(NULL);
    return s_tmp;
}

uint64_t
tw_h_now_ms(void)
{
    return tw_now_ms();
}

void
tw_h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int
s_port_used(int port)
{
    for (size_t i = 0; i < s_nports; i++) {
        if (s_ports[i] == port) {
            return 1;
        }
    }
    return 0;
}

int
tw_h_free_port(void)
{
    tw_h_init(NULL);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            tw_h_fail(__FILE__, __LINE__, "socket: %s", strerror(errno));
        }
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        socklen_t len = sizeof a;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
            int e = errno;
            close(fd);
            tw_h_fail(__FILE__, __LINE__, "bind 127.0.0.1:0: %s",
                      strerror(e));
        }
        close(fd);
        int port = ntohs(a.sin_port);
        if (!s_port_used(port)) {
            if (s_nports < sizeof s_ports / sizeof s_ports[0]) {
                s_ports[s_nports++] = port;
            }
            return port;
        }
    }
    tw_h_fail(__FILE__, __LINE__, "no fresh free port after 100 tries");
}

/* ---------------------------------------------------------- processes --- */

static const char *
s_bin(const char *env, const char *dflt)
{
    const char *e = getenv(env);
    return e && *e ? e : dflt;
}

const char *
tw_h_broker_bin(void)
{
    return s_bin("TW_BROKER_BIN", TW_BROKER_BIN);
}

const char *
tw_h_worker_bin(void)
{
    return s_bin("TW_WORKER_BIN", TW_WORKER_BIN);
}

const char *
tw_h_cli_bin(void)
{
    return s_bin("TW_CLI_BIN", TW_CLI_BIN);
}

pid_t
tw_h_spawn_log(const char *const argv[], const char *logname)
{
    tw_h_init(NULL);
    if (s_nkids >= S_MAXKIDS) {
        return TW_EAGAIN;
    }
    s_kid_t *k = &s_kids[s_nkids];
    memset(k, 0, sizeof *k);
    s_spawned++;
    if (logname) {
        snprintf(k->log, sizeof k->log, "%s/%s", s_tmp, logname);
    } else {
        const char *slash = strrchr(argv[0], '/');
        snprintf(k->log, sizeof k->log, "%s/%s.%d.log", s_tmp,
                 slash ? slash + 1 : argv[0], s_spawned);
    }

    /* The command line first, so a log explains itself. */
    FILE *fp = fopen(k->log, "a");
    if (fp) {
        fputs("$", fp);
        for (size_t i = 0; argv[i]; i++) {
            fprintf(fp, " %s", argv[i]);
        }
        fputc('\n', fp);
        fclose(fp);
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, k->log,
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    sigset_t all, none;
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        fprintf(stderr, "harness: cannot start %s: %s\n", argv[0],
                strerror(rc));
        return -rc;
    }
    k->pid = pid;
    k->alive = 1;
    s_nkids = s_nkids + 1; /* publish only once the slot is complete */
    return pid;
}

pid_t
tw_h_spawn(const char *const argv[])
{
    return tw_h_spawn_log(argv, NULL);
}

const char *
tw_h_log_path(pid_t pid)
{
    s_kid_t *k = s_find(pid);
    return k ? k->log : NULL;
}

int
tw_h_log_contains(pid_t pid, const char *text)
{
    const char *path = tw_h_log_path(pid);
    if (!path) {
        return 0;
    }
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (!found && getline(&line, &cap, fp) >= 0) {
        found = strstr(line, text) != NULL;
    }
    free(line);
    fclose(fp);
    return found;
}

int
tw_h_wait_log(pid_t pid, const char *text, int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (!tw_h_log_contains(pid, text)) {
        if (tw_h_now_ms() >= end) {
            return TW_ETIMEDOUT;
        }
        tw_h_sleep_ms(10);
    }
    return 0;
}

int
tw_h_wait_exit(pid_t pid, int timeout_ms)
{
    s_kid_t *k = s_find(pid);
    if (!k) {
        return TW_ENOENT;
    }
    uint64_t deadline = tw_now_ms() + (uint64_t)(timeout_ms < 0 ? 0
                                                               : timeout_ms);
    for (;;) {
        if (s_reap(k, 0)) {
            return k->status;
        }
        if (tw_now_ms() >= deadline) {
            return TW_ETIMEDOUT;
        }
        tw_h_sleep_ms(10);
    }
}

/* The pid of a process with an argument equal to `arg`, or 0. */
static pid_t
s_find_process(const char *arg)
{
    DIR *d = opendir("/proc");
    if (!d) {
        return 0;
    }
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0) {
            continue;
        }
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
            if (strcmp(buf + i, arg) == 0) {
                found = (pid_t)pid;
                break;
            }
        }
    }
    closedir(d);
    return found;
}

int
tw_h_wait_process(const char *arg, int timeout_ms)
{
    uint64_t end = tw_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    pid_t pid;
    while ((pid = s_find_process(arg)) == 0) {
        if (tw_now_ms() >= end) {
            return TW_ETIMEDOUT;
        }
        tw_h_sleep_ms(10);
    }
    return (int)pid;
}

int
tw_h_alive(pid_t pid)
{
    s_kid_t *k = s_find(pid);
    return k && !s_reap(k, 0);
}

int
tw_h_kill(pid_t pid, int sig)
{
    return kill(pid, sig) == 0 ? 0 : -errno;
}

int
tw_h_stop(pid_t pid)
{
    s_kid_t *k = s_find(pid);
    if (!k) {
        return TW_ENOENT;
    }
    if (!k->alive) {
        return k->status;
    }
    kill(pid, SIGTERM);
    int rc = tw_h_wait_exit(pid, S_STOP_GRACE_MS);
    if (rc == TW_ETIMEDOUT) {
        fprintf(stderr, "harness: pid %d ignored SIGTERM for %d ms, "
                        "killing it\n",
                (int)pid, S_STOP_GRACE_MS);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        s_reap(k, 1);
        rc = k->status;
    }
    return rc;
}

/* ------------------------------------------------------------ cluster --- */

/* Append `extra` (NULL-terminated, may be NULL) to argv at *n. */
static int
s_append(const char **argv, size_t *n, size_t cap, const char *const extra[])
{
    for (size_t i = 0; extra && extra[i]; i++) {
        if (*n + 1 >= cap) {
            return TW_E2BIG;
        }
        argv[(*n)++] = extra[i];
    }
    argv[*n] = NULL;
    return 0;
}

/* The brokers started, to find one by endpoint in tw_h_wait_ready. */
static tw_h_broker_t *s_broker_list[32];
static int s_nbroker_list;

static int
s_spawn_broker(tw_h_broker_t *b, const char *const extra[])
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = tw_h_broker_bin();
    argv[n++] = "--frontend";
    argv[n++] = b->frontend;
    argv[n++] = "--backend";
    argv[n++] = b->backend;
    argv[n++] = "--status";
    argv[n++] = b->status;
    argv[n++] = "--data";
    argv[n++] = b->data;
    int rc = s_append(argv, &n, 64, extra);
    if (rc != 0) {
        return rc;
    }
    char logname[64];
    b->generation++;
    snprintf(logname, sizeof logname, "broker-%d.%d.log", s_brokers,
             b->generation);
    pid_t pid = tw_h_spawn_log(argv, logname);
    if (pid < 0) {
        return (int)pid;
    }
    b->pid = pid;
    int known = 0;
    for (int i = 0; i < s_nbroker_list; i++) {
        known |= s_broker_list[i] == b;
    }
    if (!known && s_nbroker_list < 32) {
        s_broker_list[s_nbroker_list++] = b;
    }
    return 0;
}

/* 1 if broker `pid` exited because a port it was given was taken: a
 * port is free when tw_h_free_port looks, and on a machine shared with
 * other test runs someone else may bind it before the broker does. Waits
 * until the broker says it is listening or exits (at most 10 s; a broker
 * still silent then is left to the test). */
static int
s_lost_port(pid_t pid)
{
    uint64_t end = tw_now_ms() + 10000;
    while (tw_now_ms() < end) {
        if (tw_h_log_contains(pid, " listening: ")) {
            return 0;
        }
        if (!tw_h_alive(pid)) {
            return tw_h_log_contains(pid, "Address already in use");
        }
        tw_h_sleep_ms(10);
    }
    return 0;
}

int
tw_h_start_broker(tw_h_broker_t *b, const char *const extra[])
{
    tw_h_init(NULL);
    for (int attempt = 1;; attempt++) {
        memset(b, 0, sizeof *b);
        s_brokers++;
        for (int i = 0; i < 3; i++) {
            b->ports[i] = tw_h_free_port();
        }
        snprintf(b->frontend, sizeof b->frontend, "tcp://127.0.0.1:%d",
                 b->ports[0]);
        snprintf(b->backend, sizeof b->backend, "tcp://127.0.0.1:%d",
                 b->ports[1]);
        snprintf(b->status, sizeof b->status, "tcp://127.0.0.1:%d",
                 b->ports[2]);
        snprintf(b->data, sizeof b->data, "%s/broker-%d-data", s_tmp,
                 s_brokers);
        if (mkdir(b->data, 0755) != 0 && errno != EEXIST) {
            return -errno;
        }
        int rc = s_spawn_broker(b, extra);
        if (rc != 0 || attempt == 5 || !s_lost_port(b->pid)) {
            return rc;
        }
        fprintf(stderr, "harness: broker %d lost a port to another "
                        "process; starting it again on new ports\n",
                (int)b->pid);
    }
}

int
tw_h_restart_broker(tw_h_broker_t *b, const char *const extra[])
{
    if (b->pid > 0 && tw_h_alive(b->pid)) {
        return TW_ESTATE;
    }
    return s_spawn_broker(b, extra);
}

int
tw_h_curl(const char *url, const char *method, char **body)
{
    static int ncurl;
    char out[512], logname[32];
    snprintf(out, sizeof out, "%s/curl-%d.out", tw_h_tmpdir(), ++ncurl);
    snprintf(logname, sizeof logname, "curl-%d.log", ncurl);
    const char *argv[] = {"curl", "-s", "--fail", "-X", method, "-o", out,
                          url, NULL};
    const char *path[] = {"/usr/bin/curl", "/bin/curl"};
    argv[0] = access(path[0], X_OK) == 0 ? path[0] : path[1];
    pid_t pid = tw_h_spawn_log(argv, logname);
    TW_H_ASSERT(pid > 0);
    int rc = tw_h_wait_exit(pid, 20000);
    TW_H_ASSERT(rc >= 0);
    if (body) {
        FILE *f = fopen(out, "rb");
        TW_H_ASSERT(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        *body = malloc((size_t)n + 1);
        TW_H_ASSERT(fread(*body, 1, (size_t)n, f) == (size_t)n);
        (*body)[n] = '\0';
        fclose(f);
    }
    return rc;
}

/* The pair's own arguments for broker `i`, then `extra`, in argv. */
static int
s_pair_args(tw_h_pair_t *pr, int i, const char *const extra[],
            const char *argv[], size_t cap)
{
    size_t n = 0;
    argv[n++] = "--role";
    argv[n++] = i == 0 ? "primary" : "backup";
    argv[n++] = "--peer-bind";
    argv[n++] = pr->peer[i];
    argv[n++] = "--peer";
    argv[n++] = pr->peer[1 - i];
    return s_append(argv, &n, cap, extra);
}

int
tw_h_start_pair(tw_h_pair_t *pr, const char *const extra[],
                const char *const primary[])
{
    tw_h_init(NULL);
    memset(pr, 0, sizeof *pr);
    for (int i = 0; i < 2; i++) {
        snprintf(pr->peer[i], sizeof pr->peer[i], "tcp://127.0.0.1:%d",
                 tw_h_free_port());
    }
    for (int i = 0; i < 2; i++) {
        const char *argv[48];
        size_t n = 0;
        int rc = s_pair_args(pr, i, extra, argv, 48);
        while (argv[n]) {
            n++;
        }
        if (rc == 0 && i == 0) {
            rc = s_append(argv, &n, 48, primary);
        }
        if (rc == 0) {
            rc = tw_h_start_broker(&pr->br[i], argv);
        }
        if (rc != 0) {
            return rc;
        }
    }
    snprintf(pr->fronts, sizeof pr->fronts, "%s,%s", pr->br[0].frontend,
             pr->br[1].frontend);
    snprintf(pr->backs, sizeof pr->backs, "%s,%s", pr->br[0].backend,
             pr->br[1].backend);
    return 0;
}

int
tw_h_restart_pair(tw_h_pair_t *pr, int i, const char *const extra[])
{
    const char *argv[48];
    int rc = s_pair_args(pr, i, extra, argv, 48);
    return rc != 0 ? rc : tw_h_restart_broker(&pr->br[i], argv);
}

pid_t
tw_h_start_worker(const tw_h_broker_t *b, int slots,
                  const char *const extra[])
{
    tw_h_init(NULL);
    char slots_s[16], name[32], logname[64];
    s_workers++;
    snprintf(slots_s, sizeof slots_s, "%d", slots);
    snprintf(name, sizeof name, "w%d", s_workers);
    snprintf(logname, sizeof logname, "worker-%d.log", s_workers);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = tw_h_worker_bin();
    argv[n++] = "--broker";
    argv[n++] = b->backend;
    argv[n++] = "--slots";
    argv[n++] = slots_s;
    argv[n++] = "--name";
    argv[n++] = name;
    int rc = s_append(argv, &n, 64, extra);
    if (rc != 0) {
        return rc;
    }
    return tw_h_spawn_log(argv, logname);
}

int
tw_h_wait_ready(const char *frontend, int timeout_ms)
{
    tw_h_init(NULL);
    uint64_t deadline = tw_now_ms() + (uint64_t)timeout_ms;
    /* A broker we started on this endpoint that has died will not
     * answer: say so at once instead of waiting out the timeout. */
    pid_t broker = 0;
    for (int i = s_nbroker_list - 1; i >= 0 && !broker; i--) {
        if (strcmp(s_broker_list[i]->frontend, frontend) == 0) {
            broker = s_broker_list[i]->pid;
        }
    }
    for (;;) {
        uint64_t now = tw_now_ms();
        if (now >= deadline) {
            return TW_ETIMEDOUT;
        }
        if (broker > 0 && s_find(broker) && !tw_h_alive(broker)) {
            fprintf(stderr, "harness: broker %d on %s exited (status %d) "
                            "before it was ready\n",
                    (int)broker, frontend, s_find(broker)->status);
            return TW_EUNREACH;
        }
        int slice = (int)(deadline - now);
        if (slice > 500) {
            slice = 500;
        }
        /* A fresh client each round: nothing stale carries over. */
        tw_client_t *c = tw_client_new(frontend);
        int rc = c ? tw_client_ping(c, slice) : TW_ENOMEM;
        tw_client_destroy(&c);
        if (rc == 0) {
            return 0;
        }
        if (rc != TW_EUNREACH && rc != TW_ETIMEDOUT) {
            tw_h_sleep_ms(50);
        }
    }
}

int
tw_h_cli(const tw_h_broker_t *b, const char *const args[], char *out,
         size_t cap, pid_t *pid_out)
{
    static int runs;
    const char *argv[32];
    int n = 0;
    argv[n++] = tw_h_cli_bin();
    argv[n++] = "--broker";
    argv[n++] = b->frontend;
    for (int i = 0; args[i]; i++) {
        TW_H_ASSERT_MSG(n < 31, "tw_h_cli: too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char logname[32];
    snprintf(logname, sizeof logname, "cli-run.%d.log", ++runs);
    pid_t pid = tw_h_spawn_log(argv, logname);
    TW_H_ASSERT_MSG(pid > 0, "cannot start %s", argv[0]);
    int rc = tw_h_wait_exit(pid, 20000);
    TW_H_ASSERT_MSG(rc >= 0, "%s %s did not end: %s", argv[0], args[0],
                    tw_err_name(rc));
    if (pid_out) {
        *pid_out = pid;
    }
    if (out && cap) {
        out[0] = '\0';
        FILE *f = fopen(tw_h_log_path(pid), "r");
        TW_H_ASSERT(f);
        char line[1024];
        size_t used = 0;
        int first = 1;
        while (fgets(line, sizeof line, f)) {
            if (first && strncmp(line, "$ ", 2) == 0) {
                first = 0;
                continue;
            }
            first = 0;
            size_t len = strlen(line);
            if (used + len >= cap) {
                len = cap - 1 - used;
            }
            memcpy(out + used, line, len);
            used += len;
            out[used] = '\0';
        }
        fclose(f);
    }
    return rc;
}

/* --------------------------------------------------------------- wire --- */

void *
tw_h_zctx(void)
{
    if (!s_ctx) {
        s_ctx = zmq_ctx_new();
        if (!s_ctx) {
            tw_h_fail(__FILE__, __LINE__, "zmq_ctx_new: %s",
                      zmq_strerror(errno));
        }
    }
    return s_ctx;
}

void *
tw_h_dealer(const char *endpoint, const char *identity)
{
    void *s = zmq_socket(tw_h_zctx(), ZMQ_DEALER);
    if (!s) {
        tw_h_fail(__FILE__, __LINE__, "zmq_socket: %s", zmq_strerror(errno));
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (identity) {
        zmq_setsockopt(s, ZMQ_ROUTING_ID, identity, strlen(identity));
    }
    if (zmq_connect(s, endpoint) != 0) {
        tw_h_fail(__FILE__, __LINE__, "zmq_connect %s: %s", endpoint,
                  zmq_strerror(errno));
    }
    return s;
}

int
tw_h_send(void *sock, tw_cmd_t cmd, tw_enc_t *e)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    int rc = tw_zsend_frames(sock, f, 2, 0);
    if (rc != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
    }
    return rc;
}

int
tw_h_send_raw(void *sock, const void *hdr, size_t hlen, const void *body,
              size_t blen)
{
    zmq_msg_t f[2];
    zmq_msg_init_size(&f[0], hlen);
    zmq_msg_init_size(&f[1], blen);
    if (hlen) {
        memcpy(zmq_msg_data(&f[0]), hdr, hlen);
    }
    if (blen) {
        memcpy(zmq_msg_data(&f[1]), body, blen);
    }
    int rc = tw_zsend_frames(sock, f, 2, 0);
    if (rc != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
    }
    return rc;
}

int
tw_h_recv(void *sock, tw_h_msg_t *msg, int timeout_ms)
{
    memset(msg, 0, sizeof *msg);
    uint64_t deadline = tw_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int rc = tw_zrecv_frames(sock, &msg->frames, ZMQ_DONTWAIT);
        if (rc == 0) {
            break;
        }
        if (rc != TW_EAGAIN) {
            return rc;
        }
        uint64_t now = tw_now_ms();
        if (now >= deadline) {
            return TW_ETIMEDOUT;
        }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, (long)(deadline - now));
    }
    if (msg->frames.n < 2) {
        return TW_EPROTO;
    }
    int rc = tw_msg_decode(&msg->m, zmq_msg_data(&msg->frames.f[0]),
                           zmq_msg_size(&msg->frames.f[0]),
                           zmq_msg_data(&msg->frames.f[1]),
                           zmq_msg_size(&msg->frames.f[1]));
    msg->decoded = rc == 0;
    return rc;
}

void
tw_h_msg_release(tw_h_msg_t *msg)
{
    if (msg->decoded) {
        tw_msg_release(&msg->m);
        msg->decoded = 0;
    }
    tw_zframes_close(&msg->frames);
}

void
tw_h_expect(void *sock, tw_cmd_t cmd, tw_h_msg_t *msg, int timeout_ms)
{
    uint64_t deadline = tw_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = tw_now_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int rc = tw_h_recv(sock, msg, left);
        if (rc == TW_ETIMEDOUT) {
            tw_h_fail(__FILE__, __LINE__, "expected %s within %d ms, got "
                      "nothing", tw_proto_cmd_name(cmd), timeout_ms);
        }
        if (rc != 0) {
            tw_h_msg_release(msg);
            tw_h_fail(__FILE__, __LINE__, "expected %s, got a bad message "
                      "(%s)", tw_proto_cmd_name(cmd), tw_err_name(rc));
        }
        if (msg->m.cmd == cmd) {
            return;
        }
        if (msg->m.cmd != TW_CMD_HEARTBEAT) {
            fprintf(stderr, "harness: skipping %s while waiting for %s\n",
                    tw_proto_cmd_name(msg->m.cmd), tw_proto_cmd_name(cmd));
        }
        tw_h_msg_release(msg);
    }
}

/* --------------------------------------------------------- status --- */

int
tw_h_sub_recv(void *sub, char *topic, size_t tlen, zmq_msg_t *body,
              int timeout_ms)
{
    zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, timeout_ms) <= 0) {
        return TW_ETIMEDOUT;
    }
    zmq_msg_t t;
    zmq_msg_init(&t);
    zmq_msg_init(body);
    if (zmq_msg_recv(&t, sub, 0) < 0) {
        zmq_msg_close(&t);
        return TW_ETIMEDOUT;
    }
    size_t n = zmq_msg_size(&t) < tlen - 1 ? zmq_msg_size(&t) : tlen - 1;
    memcpy(topic, zmq_msg_data(&t), n);
    topic[n] = '\0';
    int more = zmq_msg_more(&t);
    zmq_msg_close(&t);
    if (more && zmq_msg_recv(body, sub, 0) >= 0) {
        more = zmq_msg_more(body);
    }
    while (more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sub, 0) < 0) {
            zmq_msg_close(&x);
            break;
        }
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    return 0;
}

void *
tw_h_sub(const char *endpoint, const char *const topics[])
{
    void *sub = zmq_socket(tw_h_zctx(), ZMQ_SUB);
    TW_H_ASSERT(sub != NULL);
    int zero = 0, hwm = 1000000;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    size_t n = 0;
    for (; topics && topics[n]; n++) {
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topics[n], strlen(topics[n]));
    }
    if (n == 0) {
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    }
    char welcome[TW_PROTO_WELCOME_LEN + 17];
    memcpy(welcome, TW_PROTO_WELCOME, TW_PROTO_WELCOME_LEN);
    tw_random_hex(welcome + TW_PROTO_WELCOME_LEN, 16);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, welcome, strlen(welcome));
    TW_H_ASSERT_MSG(zmq_connect(sub, endpoint) == 0, "connect %s: %s",
                    endpoint, zmq_strerror(zmq_errno()));
    uint64_t end = tw_h_now_ms() + TW_H_PATIENCE_MS;
    char topic[64];
    while (tw_h_now_ms() < end) {
        zmq_msg_t body;
        if (tw_h_sub_recv(sub, topic, sizeof topic, &body, 100) != 0) {
            continue;
        }
        zmq_msg_close(&body);
        if (strcmp(topic, welcome) == 0) {
            /* Answered: nothing else will come under it. */
            zmq_setsockopt(sub, ZMQ_UNSUBSCRIBE, welcome, strlen(welcome));
            return sub;
        }
    }
    tw_h_fail(__FILE__, __LINE__, "no welcome from the status endpoint %s "
              "in %d ms", endpoint, TW_H_PATIENCE_MS);
}
