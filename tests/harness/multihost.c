/*  tests/harness/multihost.c - see multihost.h. */
#define _GNU_SOURCE
#include "tests/harness/multihost.h"
#include "tests/harness/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define S_SCRIPT TW_SOURCE_DIR "/deploy/multihost.sh"

static char s_tag[48];
static char s_state[512];
static char s_log[512];
static int s_up;
static int s_home_ns = -1; /* our own network namespace */
static void (*s_hook)(void);

const char *
tw_h_mh_tag(void)
{
    return s_tag;
}

const char *
tw_h_mh_state(void)
{
    return s_state;
}

/* Run the script with `extra` (NULL-terminated) after --name and
 * --state. Returns its exit status, or -1 if it could not start. */
static int
s_run(const char *const extra[])
{
    const char *argv[32] = {"/bin/bash", S_SCRIPT, "--name", s_tag,
                            "--state", s_state};
    size_t n = 6;
    for (size_t i = 0; extra[i] && n < 31; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, s_log,
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
                         environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        return -1;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
tw_h_mh_script(const char *first, ...)
{
    const char *extra[26];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 25; a = va_arg(ap, const char *)) {
        extra[n++] = a;
    }
    va_end(ap);
    extra[n] = NULL;
    return s_run(extra);
}

/* The last non-empty line of the script log (static buffer). */
static const char *
s_last_log_line(void)
{
    static char last[512];
    last[0] = '\0';
    FILE *fp = fopen(s_log, "r");
    if (!fp) {
        return last;
    }
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0]) {
            snprintf(last, sizeof last, "%s", line);
        }
    }
    fclose(fp);
    return last;
}

static void
s_print_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return;
    }
    char buf[1024];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, fp)) > 0) {
        fwrite(buf, 1, r, stderr);
    }
    fclose(fp);
}

void
tw_h_mh_leave(void)
{
    if (s_home_ns >= 0) {
        setns(s_home_ns, CLONE_NEWNET);
        close(s_home_ns);
        s_home_ns = -1;
    }
}

int
tw_h_mh_pid(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.pid", s_state, name);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return -1;
    }
    int pid = -1;
    if (fscanf(fp, "%d", &pid) != 1) {
        pid = -1;
    }
    fclose(fp);
    return pid;
}

int
tw_h_mh_running(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')'. */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

int
tw_h_mh_file_has(const char *path, const char *text)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return 0;
    }
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, fp)) {
        found = strstr(line, text) != NULL;
    }
    fclose(fp);
    return found;
}

void
tw_h_mh_at_exit(void (*fn)(void))
{
    s_hook = fn;
}

/* On exit: show the cluster's logs if the test failed, then tear down. */
static void
s_on_exit(int status, void *arg)
{
    (void)arg;
    if (s_hook) {
        s_hook();
    }
    if (!s_up) {
        return;
    }
    tw_h_mh_leave();
    if (status != 0) {
        /* The script's own output, then (appended by `logs`) the tail of
         * every process's log. */
        tw_h_mh_script("logs", "40", NULL);
        fprintf(stderr, "----- %s -----\n", s_log);
        s_print_file(s_log);
    }
    tw_h_mh_script("down", NULL);
    s_up = 0;
}

/* A process in its own session that runs `down` once we are gone, however
 * we go (SIGKILL included): it waits for EOF on a pipe only we hold. */
static void
s_start_guardian(void)
{
    int fds[2];
    TW_H_ASSERT(pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = fork();
    TW_H_ASSERT(pid >= 0);
    if (pid == 0) {
        setsid();
        for (int sig = 1; sig < NSIG; sig++) {
            signal(sig, SIG_DFL);
        }
        close(fds[1]);
        char c;
        ssize_t r;
        do {
            r = read(fds[0], &c, 1);
        } while (r < 0 && errno == EINTR);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execl("/bin/bash", "bash", S_SCRIPT, "--name", s_tag, "--state",
              s_state, "down", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    /* fds[1] stays open (close-on-exec) until this process ends. */
}

void
tw_h_mh_enter(const char *host)
{
    if (s_home_ns < 0) {
        s_home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        TW_H_ASSERT(s_home_ns >= 0);
    }
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s-%s", s_tag, host);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    TW_H_ASSERT_MSG(fd >= 0, "open %s: %s", path, strerror(errno));
    TW_H_ASSERT_MSG(setns(fd, CLONE_NEWNET) == 0, "setns %s: %s", path,
                    strerror(errno));
    close(fd);
}

int
tw_h_mh_up(const char *prefix, const char *const args[], const char **why)
{
    static char reason[512];
    *why = reason;
    if (geteuid() != 0) {
        snprintf(reason, sizeof reason, "network namespaces need root (run "
                 "the tests as root to include it)");
        return TW_H_SKIP;
    }
    snprintf(s_tag, sizeof s_tag, "%s-%d", prefix, (int)getpid());
    snprintf(s_state, sizeof s_state, "%s/multihost", tw_h_tmpdir());
    snprintf(s_log, sizeof s_log, "%s/multihost.sh.log", tw_h_tmpdir());
    setenv("TW_BROKER_BIN", tw_h_broker_bin(), 1);
    setenv("TW_WORKER_BIN", tw_h_worker_bin(), 1);
    setenv("TW_CLI_BIN", tw_h_cli_bin(), 1);

    s_start_guardian();
    on_exit(s_on_exit, NULL);
    s_up = 1;
    int rc = s_run(args);
    if (rc == TW_H_SKIP) {
        s_up = 0;
        const char *line = s_last_log_line();
        const char *tail = strstr(line, "SKIP: ");
        snprintf(reason, sizeof reason, "%s", tail ? tail + 6 : line);
        return TW_H_SKIP;
    }
    TW_H_ASSERT_MSG(rc == 0, "multihost.sh up exited %d", rc);
    reason[0] = '\0';
    return 0;
}

int
tw_h_mh_down(void)
{
    tw_h_mh_leave();
    int rc = tw_h_mh_script("down", NULL);
    s_up = 0;
    return rc;
}
