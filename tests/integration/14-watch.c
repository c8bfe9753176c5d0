/*  tests/integration/14-watch.c - `taskwheel watch` on a real terminal.
 *
 *  The live view needs a terminal, so the test runs the CLI inside a
 *  detached tmux session of 120x40 on a tmux server of its own (-L), reads
 *  the screen with `tmux capture-pane -p` until the worker's name and the
 *  "workers" line show, presses `q` with send-keys and checks that the CLI
 *  exited 0 (the shell in the pane writes the exit code to a file). Then
 *  it checks that with stdout not a terminal watch prints one snapshot and
 *  exits 0. Without tmux the test prints "SKIP: tmux not installed" and
 *  passes. Everything it started is stopped by pid.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The tmux server's socket name, unique to this test run. */
static char s_sock[64];

/* Run a shell command and return its output (at most `len` bytes,
 * NUL-terminated) and its exit status (-1 if it could not run). */
static int
s_sh(const char *cmd, char *out, size_t len)
{
    FILE *f = popen(cmd, "r");
    if (!f) {
        return -1;
    }
    size_t n = 0;
    if (out && len > 0) {
        n = fread(out, 1, len - 1, f);
        out[n] = '\0';
    } else {
        char buf[256];
        while (fread(buf, 1, sizeof buf, f) > 0) {
        }
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The contents of file `path`, or "" (into buf). */
static void
s_read(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, len - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
}

int
main(void)
{
    tw_h_init("14-watch");
    if (s_sh("command -v tmux >/dev/null 2>&1", NULL, 0) != 0) {
        printf("SKIP: tmux not installed\n");
        return 0;
    }
    if (!getenv("TERM")) {
        setenv("TERM", "xterm", 1);
    }
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    pid_t w = tw_h_start_worker(&b, 3, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));

    /* The live view, in tmux. The worker is "w1" (tw_h_start_worker). */
    snprintf(s_sock, sizeof s_sock, "tw-watch-%d", (int)getpid());
    char rcfile[600], cmd[2048], out[16384];
    snprintf(rcfile, sizeof rcfile, "%s/watch.rc", tw_h_tmpdir());
    snprintf(cmd, sizeof cmd,
             "tmux -L %s -f /dev/null new-session -d -x 120 -y 40 -s watch "
             "\"'%s' --broker '%s' watch --interval 0.2; "
             "echo \\$? > '%s'\"",
             s_sock, tw_h_cli_bin(), b.frontend, rcfile);
    TW_H_ASSERT_EQ(s_sh(cmd, NULL, 0), 0);
    char pidcmd[256], pidtxt[64];
    snprintf(pidcmd, sizeof pidcmd, "tmux -L %s display -p -t watch "
             "'#{pid}'", s_sock);
    TW_H_ASSERT_EQ(s_sh(pidcmd, pidtxt, sizeof pidtxt), 0);
    pid_t server = (pid_t)atoi(pidtxt);
    TW_H_ASSERT(server > 0);

    snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t watch",
             s_sock);
    int seen = 0;
    for (uint64_t end = tw_h_now_ms() + 10000; tw_h_now_ms() < end;) {
        if (s_sh(cmd, out, sizeof out) == 0 && strstr(out, "workers") &&
            strstr(out, "w1 ") && strstr(out, "0/3")) {
            seen = 1;
            break;
        }
        tw_h_sleep_ms(100);
    }
    TW_H_ASSERT_MSG(seen, "the screen shows the worker:\n%s", out);

    snprintf(cmd, sizeof cmd, "tmux -L %s send-keys -t watch q", s_sock);
    TW_H_ASSERT_EQ(s_sh(cmd, NULL, 0), 0);
    char rc[32] = "";
    for (uint64_t end = tw_h_now_ms() + 10000;
         tw_h_now_ms() < end && rc[0] == '\0';) {
        tw_h_sleep_ms(100);
        s_read(rcfile, rc, sizeof rc);
    }
    TW_H_ASSERT_MSG(strcmp(rc, "0\n") == 0, "watch exited '%s' after q", rc);
    /* The session ended with its only pane; stop the server if it stays. */
    if (kill(server, 0) == 0) {
        kill(server, SIGTERM);
    }

    /* Not a terminal: one snapshot, exit 0. */
    const char *argv[] = {tw_h_cli_bin(), "--broker", b.frontend, "watch",
                          NULL};
    pid_t p = tw_h_spawn_log(argv, "watch-once.log");
    TW_H_ASSERT(p > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(p, 10000), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "workers 1"));
    TW_H_ASSERT(tw_h_log_contains(p, "w1 "));

    TW_H_ASSERT_EQ(tw_h_stop(w), 0);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("ok\n");
    return 0;
}
