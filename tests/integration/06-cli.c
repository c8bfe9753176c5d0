/*  tests/integration/06-cli.c - the taskwheel CLI against a real cluster.
 *
 *  Exit codes are the contract (0 ok, 1 the operation failed, 2 usage,
 *  3 broker unreachable), and each failure is one clear line. Checked:
 *  submit --wait with --json prints the result; submit --key --wait of a
 *  dedup hit waits for the first task's outcome; a failing task exits 1;
 *  an unknown handler exits 1 naming the handler; malformed ARGS-JSON and
 *  an unknown flag exit 2; a broker nobody listens for exits 3; workers,
 *  status and result answer; events prints task events as JSON lines.
 *  Help and versions: `taskwheel help CMD [SUB]` and `CMD [SUB] --help`
 *  print that command's help, not the manual; an unknown one exits 2;
 *  all three programs answer --version with the project's version, and
 *  the daemons log it when they start.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"

#include "taskwheel/version.h"

#include <stdio.h>
#include <stdlib.h>

static int s_n;

/* Run `prog` with the words of `pre` and then of `args` (both
 * NULL-terminated; `pre` may be NULL); return its exit code; *log_pid
 * gets its pid, for its log. */
static int
s_exec(const char *prog, const char *const *pre, const char *const *args,
       pid_t *log_pid)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = prog;
    for (int i = 0; pre && pre[i] && n < 31; i++) {
        argv[n++] = pre[i];
    }
    for (int i = 0; args[i] && n < 31; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char logname[64];
    snprintf(logname, sizeof logname, "run.%d.log", ++s_n);
    pid_t pid = tw_h_spawn_log(argv, logname);
    TW_H_ASSERT(pid > 0);
    *log_pid = pid;
    int rc = tw_h_wait_exit(pid, 20000);
    TW_H_ASSERT_MSG(rc >= 0, "%s finished (%d)", prog, rc);
    return rc;
}

/* Run the CLI with `args` after --broker/--status; see s_exec. */
static int
s_cli(const tw_h_broker_t *b, const char *frontend, const char *const *args,
      pid_t *log_pid)
{
    const char *pre[] = {"--broker",     frontend, "--status", b->status,
                         "--timeout-ms", "1500",   NULL};
    return s_exec(tw_h_cli_bin(), pre, args, log_pid);
}

#define S_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Run `prog` with `args` alone; see s_exec. */
static int
s_run(const char *prog, const char *const *args, pid_t *log_pid)
{
    return s_exec(prog, NULL, args, log_pid);
}

/* One command's help, not the manual; --version of all three programs. */
static void
s_help_and_versions(const tw_h_broker_t *b, pid_t worker)
{
    pid_t p;
    const char *cli = tw_h_cli_bin();
    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("--help"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "  submit HANDLER"));
    TW_H_ASSERT(tw_h_log_contains(p, "  station tail ID"));
    TW_H_ASSERT(tw_h_log_contains(p, "Global flags:"));

    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("help", "submit"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "  submit HANDLER"));
    TW_H_ASSERT(!tw_h_log_contains(p, "station"));
    TW_H_ASSERT(!tw_h_log_contains(p, "Global flags:"));

    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("submit", "echo", "1", "--help"), &p),
                   0);
    TW_H_ASSERT(tw_h_log_contains(p, "  submit HANDLER"));
    TW_H_ASSERT(!tw_h_log_contains(p, "  map HANDLER"));

    /* A subcommand alone, or every row of its command. */
    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("station", "add", "--help"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "--restart never|on-failure|always"));
    TW_H_ASSERT(!tw_h_log_contains(p, "station tail"));
    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("help", "workers"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "  workers drain NAME|ID"));
    TW_H_ASSERT(tw_h_log_contains(p, "  workers resize NAME|ID SLOTS"));
    TW_H_ASSERT(!tw_h_log_contains(p, "  submit"));

    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("help", "no-such-command"), &p), 2);
    TW_H_ASSERT(tw_h_log_contains(p, "no-such-command"));
    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("no-such-command", "--help"), &p), 2);

    TW_H_ASSERT_EQ(s_run(cli, S_ARGS("--version"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "taskwheel " TW_VERSION_STRING "\n"));
    TW_H_ASSERT_EQ(s_run(tw_h_broker_bin(), S_ARGS("--version"), &p), 0);
    TW_H_ASSERT(
        tw_h_log_contains(p, "taskwheel-broker " TW_VERSION_STRING "\n"));
    TW_H_ASSERT_EQ(s_run(tw_h_worker_bin(), S_ARGS("--help"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "docs/HANDLERS.md"));
    TW_H_ASSERT_EQ(s_run(tw_h_worker_bin(), S_ARGS("--version"), &p), 0);
    TW_H_ASSERT(
        tw_h_log_contains(p, "taskwheel-worker " TW_VERSION_STRING "\n"));

    /* The daemons say which version runs. */
    TW_H_ASSERT(tw_h_log_contains(b->pid, "taskwheel-broker "
                                          TW_VERSION_STRING));
    TW_H_ASSERT(tw_h_log_contains(worker, "taskwheel-worker "
                                          TW_VERSION_STRING));
}

int
main(void)
{
    tw_h_init("06-cli");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    pid_t worker = tw_h_start_worker(&b, 2, NULL);
    TW_H_ASSERT(worker > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    pid_t p;
    s_help_and_versions(&b, worker);

    /* events runs in the background while the rest happens; it finds the
     * status endpoint by asking the broker, and says when it is
     * subscribed. */
    const char *ev[] = {tw_h_cli_bin(), "--broker", b.frontend, "--json",
                        "events", "task.", "--for", "6", NULL};
    pid_t events = tw_h_spawn_log(ev, "events.log");
    TW_H_ASSERT_OK(tw_h_wait_log(events, "subscribed at", 10000));

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("--json", "submit", "echo",
                                "{\"answer\": [4, 2]}", "--wait"),
                         &p),
                   0);
    TW_H_ASSERT(tw_h_log_contains(p, "\"answer\""));
    TW_H_ASSERT(tw_h_log_contains(p, "4, 2") || tw_h_log_contains(p, "4,2"));

    /* --key: a second submit --wait with the key of a running task gets
     * the first task's outcome, which is pushed to the first submitter
     * only, and so does one after that task ended. */
    const char *first[] = {tw_h_cli_bin(), "--broker", b.frontend, "--json",
                           "submit", "sleep", "0.8", "--key", "k1", "--wait",
                           NULL};
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    long long submitted = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &submitted));
    pid_t p1 = tw_h_spawn_log(first, "key-first.log");
    /* The second one must find the first known by its key. */
    TW_H_ASSERT_OK(tw_h_wait_status(c, "submitted", submitted + 1, 10000));
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("--json", "submit", "sleep", "0.8", "--key",
                                "k1", "--wait"),
                         &p),
                   0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(p1, 5000), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "\"state\""));
    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("submit", "echo", "77", "--key", "k1",
                                "--wait"),
                         &p),
                   0);

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("submit", "fail", "\"on purpose\"", "--wait"),
                         &p),
                   1);
    TW_H_ASSERT(tw_h_log_contains(p, "on purpose"));

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("submit", "no-such-handler", "1"), &p),
                   1);
    TW_H_ASSERT(tw_h_log_contains(p, "no-such-handler"));

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend,
                         S_ARGS("submit", "echo", "{not json"), &p),
                   2);
    TW_H_ASSERT(tw_h_log_contains(p, "JSON"));

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend, S_ARGS("submit", "--bogus-flag"),
                         &p),
                   2);
    TW_H_ASSERT_EQ(s_cli(&b, b.frontend, S_ARGS("no-such-command"), &p), 2);

    char nobody[64];
    snprintf(nobody, sizeof nobody, "tcp://127.0.0.1:%d", tw_h_free_port());
    TW_H_ASSERT_EQ(s_cli(&b, nobody, S_ARGS("submit", "echo", "1"), &p), 3);
    TW_H_ASSERT(tw_h_log_contains(p, "unreachable"));

    TW_H_ASSERT_EQ(s_cli(&b, b.frontend, S_ARGS("--json", "workers"), &p),
                   0);
    TW_H_ASSERT(tw_h_log_contains(p, "\"slots\""));
    TW_H_ASSERT_EQ(s_cli(&b, b.frontend, S_ARGS("status"), &p), 0);
    TW_H_ASSERT(tw_h_log_contains(p, "workers"));
    TW_H_ASSERT_EQ(s_cli(&b, b.frontend, S_ARGS("--json", "result", "1"), &p),
                   0);
    TW_H_ASSERT(tw_h_log_contains(p, "answer"));

    int erc = tw_h_wait_exit(events, 15000);
    TW_H_ASSERT_EQ(erc, 0);
    TW_H_ASSERT(tw_h_log_contains(events, "\"task.done\""));
    TW_H_ASSERT(tw_h_log_contains(events, "\"task.submitted\""));

    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("06-cli: ok\n");
    return 0;
}
