/*  tests/fault/06-broker-restart.c - the broker is SIGKILLed and back 0.3 s
 *  later, well inside every peer's liveness window: nothing acknowledged
 *  is lost and nobody waits for ever.
 *
 *  libzmq reconnects a DEALER by itself, so a broker that comes back
 *  quickly looks, from a socket, like nothing happened. The peers notice
 *  anyway (PROTOCOL.md 13): the socket monitor reports the dropped
 *  connection, and every broker run has its own boot id in its replies.
 *
 *    pipelined   a client submits 22,000 tasks as fast as it can; the
 *                broker (on --data) is killed after about half of them
 *                were sent, right after a burst of 2,000 it cannot have
 *                acknowledged, and restarted 0.3 s later while the client
 *                is still sending. The client resends what had no ACK and
 *                asks about what had no outcome, so tw_client_wait_all
 *                returns, every submission is acknowledged once and
 *                completes: lost = 0.
 *    running     16 tasks of 1.5 s run on two workers when the broker is
 *                killed and restarted 0.3 s later: the workers re-announce
 *                them (HELLO items), the broker adopts them, and every one
 *                completes once at the client: lost = 0.
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <signal.h>
#include <stdlib.h>

#define S_PIPELINED 20000 /* plus the 2,000 of the burst at the kill */
#define S_KILL_AT 10000
#define S_RUNNING 16

static void
s_kill_and_restart(tw_h_broker_t *b, tw_client_t *c, int keep_polling)
{
    TW_H_ASSERT_OK(tw_h_kill(b->pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(b->pid, 5000) >= 0);
    uint64_t back = tw_h_now_ms() + 300;
    while (keep_polling && tw_h_now_ms() < back) {
        tw_client_poll(c, 10);
    }
    if (!keep_polling) {
        tw_h_sleep_ms(300);
    }
    TW_H_ASSERT_OK(tw_h_restart_broker(b, NULL));
}

/* A broker on --data (the harness's), two workers of 8 slots, a client. */
static tw_client_t *
s_cluster(tw_h_broker_t *b)
{
    TW_H_ASSERT_OK(tw_h_start_broker(b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b->frontend, 10000));
    for (int i = 0; i < 2; i++) {
        TW_H_ASSERT(tw_h_start_worker(b, 8, NULL) > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b->frontend, 2, 10000));
    tw_client_t *c = tw_client_new(b->frontend);
    TW_H_ASSERT(c != NULL);
    return c;
}

static void
s_pipelined(void)
{
    tw_h_broker_t b;
    tw_client_t *c = s_cluster(&b);
    static tw_fault_t f;
    tw_fault_init(&f, "broker-quick-restart", c, S_PIPELINED + 3000);
    unsigned char one[1] = {0x01};
    tw_task_spec_t spec = {.handler = "echo", .args = one, .args_len = 1};
    int killed = 0;
    for (int sent = 0; sent < S_PIPELINED; sent += 500) {
        tw_fault_submit(&f, c, &spec, 500);
        tw_client_poll(c, 0);
        if (!killed && sent + 500 >= S_KILL_AT) {
            /* Mid-stream: some acknowledged, many more on their way. */
            uint64_t end = tw_h_now_ms() + 10000;
            while (tw_fault_acked(&f) < S_KILL_AT / 4 &&
                   tw_h_now_ms() < end) {
                tw_client_poll(c, 5);
            }
            /* And a burst the broker cannot have answered yet. */
            tw_fault_submit(&f, c, &spec, 2000);
            printf("broker-quick-restart: SIGKILL with %zu of %zu "
                   "acknowledged\n", tw_fault_acked(&f), f.submitted);
            s_kill_and_restart(&b, c, 1);
            killed = 1;
        }
    }
    size_t acked = tw_fault_acked(&f);
    uint64_t t0 = tw_h_now_ms();
    int rc = tw_fault_wait(&f, c, 60000);
    tw_client_stats_t st;
    tw_client_stats(c, &st);
    printf("broker-quick-restart: %zu acked when the last was sent; "
           "wait_all %s after %llu ms; %llu resends, %llu re-queries, "
           "%llu reported lost\n",
           acked, rc == 0 ? "returned" : "timed out",
           (unsigned long long)(tw_h_now_ms() - t0),
           (unsigned long long)st.resends, (unsigned long long)st.requeries,
           (unsigned long long)st.unknown);
    TW_H_ASSERT_OK(rc);
    TW_H_ASSERT(st.resends > 0);
    TW_H_ASSERT_EQ(st.unknown, 0);
    tw_fault_report(&f, c);
    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

static void
s_running(void)
{
    tw_h_broker_t b;
    tw_client_t *c = s_cluster(&b);
    static tw_fault_t f;
    tw_fault_init(&f, "broker-restart-running", c, S_RUNNING + 100);
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 1.5);
    tw_task_spec_t spec = {.handler = "sleep", .args = secs,
                           .args_len = sl};
    tw_fault_submit(&f, c, &spec, S_RUNNING);
    /* All of them running on the workers. */
    long long running = 0;
    uint64_t end = tw_h_now_ms() + 10000;
    while (running < S_RUNNING && tw_h_now_ms() < end) {
        tw_client_poll(c, 20);
        TW_H_ASSERT_OK(tw_h_status_field(c, "running", &running));
    }
    TW_H_ASSERT_EQ(running, S_RUNNING);
    s_kill_and_restart(&b, c, 0);
    uint64_t t0 = tw_h_now_ms();
    int rc = tw_fault_wait(&f, c, 30000);
    long long adopted = -1;
    if (rc == 0) {
        TW_H_ASSERT_OK(tw_h_status_field(c, "adopted", &adopted));
    }
    printf("broker-restart-running: wait_all %s %llu ms after the "
           "restart; %lld tasks adopted by the new broker run\n",
           rc == 0 ? "returned" : "timed out",
           (unsigned long long)(tw_h_now_ms() - t0), adopted);
    TW_H_ASSERT_OK(rc);
    TW_H_ASSERT(adopted >= 1);
    tw_fault_report(&f, c);
    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

int
main(void)
{
    tw_h_init("fault-broker-restart");
    s_pipelined();
    s_running();
    return 0;
}
