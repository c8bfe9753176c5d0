/*  tests/integration/19-reannounce.c - a long task survives a broker
 *  restart and a network cut without running twice.
 *
 *  The task is `exec sh -c 'echo start >> FILE; sleep 3; echo finished'`,
 *  so every run leaves one line in FILE: the test counts runs, not only
 *  outcomes. The worker has free slots throughout, so a task the broker
 *  requeued instead of adopting would visibly run a second time there.
 *
 *  A. Broker restart: while the task runs, the broker (--data,
 *     --fsync always) is SIGKILLed and restarted on the same store. It
 *     recovers the task as running and holds it; the worker reconnects and
 *     re-announces it in HELLO ({id, at, ep}); the broker adopts it. The
 *     task completes ok, FILE has one line, status "adopted" counts it.
 *  B. Network cut: the worker is stopped (SIGSTOP) for longer than the
 *     broker's liveness timeout, so the broker declares it dead and
 *     requeues its task; on SIGCONT the worker (which kept the task
 *     running in its child) registers again and re-announces it; the
 *     task, still pending with the same dispatch epoch, is adopted rather
 *     than started again. One line in FILE, outcome ok.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

/* Lines in `path` (0 if it does not exist). */
static int
s_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) {
        n += ch == '\n';
    }
    fclose(f);
    return n;
}

static uint64_t s_acked;

static void
s_on_ack(void *arg, uint64_t seq, uint64_t id, int err, const char *msg)
{
    (void)arg;
    (void)seq;
    (void)msg;
    s_acked = err ? 0 : id;
}

/* Submit the marker task writing to `path`; returns its id. */
static uint64_t
s_submit_marker(tw_client_t *c, const char *path)
{
    char script[600];
    snprintf(script, sizeof script,
             "echo start >> '%s'; sleep 3; echo finished", path);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sh", 2);
    msgpack_pack_str_with_body(&pk, "-c", 2);
    msgpack_pack_str_with_body(&pk, script, strlen(script));
    tw_task_spec_t spec = {.handler = "exec", .args = sb.data,
                           .args_len = sb.size};
    uint64_t seq;
    s_acked = 0;
    tw_client_on_ack(c, s_on_ack, NULL);
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&sb);
    uint64_t until = tw_h_now_ms() + 5000;
    while (!s_acked && tw_h_now_ms() < until) {
        tw_client_poll(c, 50);
    }
    uint64_t id = s_acked;
    TW_H_ASSERT(id > 0);
    /* Wait until it runs. */
    uint64_t end = tw_h_now_ms() + 5000;
    while (s_lines(path) == 0 && tw_h_now_ms() < end) {
        tw_h_sleep_ms(10);
    }
    TW_H_ASSERT_EQ(s_lines(path), 1);
    return id;
}

static void
s_expect_once(const tw_h_broker_t *b, uint64_t id, const char *path)
{
    tw_client_t *c = tw_client_new(b->frontend);
    TW_H_ASSERT(c);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, TW_ST_OK, 15000));
    /* Past the grace period (2 x liveness x heartbeat = 1.2 s) and a
     * little more: a requeued copy would have run by now. */
    tw_h_sleep_ms(2000);
    TW_H_ASSERT_MSG(s_lines(path) == 1, "the task ran %d times",
                    s_lines(path));
    long long adopted = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "adopted", &adopted));
    TW_H_ASSERT(adopted >= 1);
    tw_client_destroy(&c);
}

static void
s_restart(void)
{
    static const char *const bargs[] = {"--fsync", "always", "--heartbeat",
                                        "200", NULL};
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    pid_t w = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 5000));
    char path[600];
    snprintf(path, sizeof path, "%s/runs-a", tw_h_tmpdir());
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    uint64_t id = s_submit_marker(c, path);
    tw_client_destroy(&c);
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(b.pid, 5000) >= 0);
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    s_expect_once(&b, id, path);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "re-announced 1 running task(s): "
                                         "1 adopted"));
    printf("19: task %llu survived a broker restart and ran once\n",
           (unsigned long long)id);
    tw_h_stop(w);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

static void
s_cut(void)
{
    static const char *const bargs[] = {"--heartbeat", "200", NULL};
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    pid_t w = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 5000));
    char path[600];
    snprintf(path, sizeof path, "%s/runs-b", tw_h_tmpdir());
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    uint64_t id = s_submit_marker(c, path);
    TW_H_ASSERT_OK(tw_h_kill(w, SIGSTOP));
    tw_h_sleep_ms(1200); /* the broker gives up on it after 600 ms */
    TW_H_ASSERT_OK(tw_h_kill(w, SIGCONT));
    tw_client_destroy(&c);
    s_expect_once(&b, id, path);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "missed heartbeats"));
    printf("19: task %llu survived a cut of its worker and ran once\n",
           (unsigned long long)id);
    tw_h_stop(w);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

int
main(void)
{
    tw_h_init("19-reannounce");
    s_restart();
    s_cut();
    return 0;
}
