/*  tests/integration/24-connect.c - connection problems say what is wrong,
 *  at once, and the status endpoint is found, not guessed.
 *
 *    refused      `taskwheel status` at a local port nobody listens on:
 *                 exit 3 long before its timeout (30 s here), saying
 *                 nothing accepts connections there (the socket
 *                 monitor's refused connect, not the timeout; on a quiet
 *                 machine it takes a few ms).
 *    backend      the worker port given to the CLI: the broker answers
 *                 ERROR naming its frontend; exit 2.
 *    status port  the status port given to the CLI: the handshake fails
 *                 (an XPUB is no ROUTER); exit 3 at once, saying so.
 *    worker       a worker pointed at the frontend: the broker refuses
 *                 its HELLO naming the backend, and the worker exits 2
 *                 instead of retrying for ever.
 *    events       with only --broker, `events` asks the broker for its
 *                 status endpoint and prints events; pointed at a status
 *                 endpoint where nothing answers, it exits 3.
 *    tail         `station tail` of an unknown station says so (exit 1);
 *                 of one that has ended, it ends at once (exit 0).
 *    localhost    a broker bound to tcp://localhost:PORT (resolved, as
 *                 docs/SECURITY.md promises) serves clients; a host name
 *                 that does not resolve stops it with one clear line.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <stdlib.h>

/* `taskwheel --broker <b's frontend> args...` (a later --broker wins):
 * its exit code, its pid in *pid, the time it took in *ms. */
static int
s_cli(const tw_h_broker_t *b, const char *const args[], pid_t *pid,
      uint64_t *ms)
{
    uint64_t t0 = tw_h_now_ms();
    int rc = tw_h_cli(b, args, NULL, 0, pid);
    if (ms) {
        *ms = tw_h_now_ms() - t0;
    }
    return rc;
}

/* The commands above that must fail (or end) at once get a timeout far
 * longer than any busy machine delays them: ending well before it shows
 * they did not wait for it, and the message says what they saw. How
 * many milliseconds they take is printed, not asserted: a busy machine
 * may delay any process by seconds. */
#define S_LONG_MS 30000
#define S_LONG "--timeout-ms", "30000"
#define S_BEFORE_TIMEOUT(ms)                                                 \
    TW_H_ASSERT_MSG((ms) < S_LONG_MS / 2,                                    \
                    "ended after %llu ms: it waited for its timeout",        \
                    (unsigned long long)(ms))

int
main(void)
{
    tw_h_init("24-connect");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    pid_t p;
    uint64_t ms;

    /* Refused: a free local port. */
    char nobody[64];
    snprintf(nobody, sizeof nobody, "tcp://127.0.0.1:%d", tw_h_free_port());
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", nobody, S_LONG, "status"),
                         &p, &ms),
                   3);
    TW_H_ASSERT(tw_h_log_contains(p, "nothing accepts connections at"));
    S_BEFORE_TIMEOUT(ms);
    printf("21: refused local port: exit 3 after %llu ms\n",
           (unsigned long long)ms);
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", nobody, S_LONG, "submit",
                                "echo", "1"),
                         &p, &ms),
                   3);
    TW_H_ASSERT(tw_h_log_contains(p, "nothing accepts connections at"));
    S_BEFORE_TIMEOUT(ms);

    /* The backend given to a client: the broker names its frontend. */
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.backend, S_LONG, "status"),
                         &p, &ms),
                   2);
    TW_H_ASSERT(tw_h_log_contains(p, "clients connect to the frontend"));
    TW_H_ASSERT(tw_h_log_contains(p, b.frontend));
    S_BEFORE_TIMEOUT(ms);
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.backend, "submit", "echo",
                                "1"),
                         &p, &ms),
                   2);
    TW_H_ASSERT(tw_h_log_contains(p, b.frontend));

    /* The status port given to a client. */
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.status, S_LONG, "ping"),
                         &p, &ms),
                   3);
    TW_H_ASSERT(tw_h_log_contains(p, "during the ZeroMQ handshake"));
    S_BEFORE_TIMEOUT(ms);

    /* A worker pointed at the frontend exits 2, naming the backend. */
    const char *wargv[] = {tw_h_worker_bin(), "--broker", b.frontend,
                           "--slots", "1", NULL};
    pid_t w = tw_h_spawn_log(wargv, "wrong-worker.log");
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(w, 10000), 2);
    TW_H_ASSERT(tw_h_log_contains(w, "refused HELLO"));
    TW_H_ASSERT(tw_h_log_contains(w, b.backend));
    printf("21: wrong ports named; a worker at the frontend exits 2\n");

    /* events with only the broker's frontend: it finds the status
     * endpoint, and is subscribed before the task below is submitted. */
    const char *ev[] = {tw_h_cli_bin(), "--broker", b.frontend, "--json",
                        "events", "task.done", "--count", "1", NULL};
    pid_t events = tw_h_spawn_log(ev, "events.log");
    TW_H_ASSERT(events > 0);
    TW_H_ASSERT_OK(tw_h_wait_log(events, "subscribed at", 10000));
    TW_H_ASSERT(tw_h_log_contains(events, b.status));
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.frontend, "submit", "echo",
                                "7", "--wait"),
                         &p, NULL),
                   0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(events, 10000), 0);
    TW_H_ASSERT(tw_h_log_contains(events, "\"task.done\""));
    /* A status endpoint that sends nothing: exit 3, not silence. */
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--status", nobody, "--timeout-ms", "1500",
                                "events"),
                         &p, &ms),
                   3);
    TW_H_ASSERT(tw_h_log_contains(p, "nothing from the status endpoint"));
    printf("21: events found the status endpoint; a silent one exits 3 "
           "after %llu ms\n", (unsigned long long)ms);

    /* station tail: unknown, then ended. */
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.frontend, "station", "tail",
                                "nope-21"),
                         &p, NULL),
                   1);
    TW_H_ASSERT(tw_h_log_contains(p, "there is no station 'nope-21'"));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c != NULL);
    unsigned char zero[9];
    tw_station_req_t add = {.op = "add", .sid = "ended-21",
                            .handler = "incr", .next = "result",
                            .interval_ms = 50};
    add.args = zero;
    add.args_len = tw_h_pack_int(zero, 0);
    TW_H_ASSERT_OK(tw_client_station(c, &add, 5000, NULL, NULL));
    TW_H_ASSERT_OK(tw_h_wait_station(c, "ended-21", "running", 5000, NULL));
    tw_h_station_op(c, "stop", "ended-21", 0);
    TW_H_ASSERT_OK(tw_h_wait_station(c, "ended-21", "stopped", 5000, NULL));
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", b.frontend, S_LONG, "station",
                                "tail", "ended-21"),
                         &p, &ms),
                   0);
    TW_H_ASSERT(tw_h_log_contains(p, "has already ended"));
    S_BEFORE_TIMEOUT(ms);
    tw_client_destroy(&c);
    printf("21: station tail: unknown says so, ended ends at once\n");
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);

    /* localhost is resolved for bind, and is loopback (no --insecure). */
    char lf[64], lb[64], ls[64], lf_client[64];
    int port = tw_h_free_port();
    snprintf(lf, sizeof lf, "tcp://localhost:%d", port);
    snprintf(lf_client, sizeof lf_client, "tcp://127.0.0.1:%d", port);
    snprintf(lb, sizeof lb, "tcp://localhost:%d", tw_h_free_port());
    snprintf(ls, sizeof ls, "tcp://localhost:%d", tw_h_free_port());
    const char *bargv[] = {tw_h_broker_bin(), "--frontend", lf, "--backend",
                           lb, "--status", ls, NULL};
    pid_t lbp = tw_h_spawn_log(bargv, "localhost-broker.log");
    TW_H_ASSERT(lbp > 0);
    TW_H_ASSERT_OK(tw_h_wait_ready(lf, 10000));
    TW_H_ASSERT_OK(tw_h_wait_ready(lf_client, 10000));
    TW_H_ASSERT_EQ(s_cli(&b, TW_H_ARGS("--broker", lf, "events", "stats",
                                "--count", "1"),
                         &p, NULL),
                   0);
    TW_H_ASSERT_EQ(tw_h_stop(lbp), 0);
    const char *badargv[] = {tw_h_broker_bin(), "--frontend",
                             "tcp://no-such-host.invalid:7710", NULL};
    pid_t bad = tw_h_spawn_log(badargv, "bad-host-broker.log");
    TW_H_ASSERT(bad > 0);
    TW_H_ASSERT(tw_h_wait_exit(bad, 10000) > 0);
    TW_H_ASSERT(tw_h_log_contains(bad, "no-such-host.invalid"));
    printf("21: tcp://localhost binds; an unknown host is refused\n");
    return 0;
}
