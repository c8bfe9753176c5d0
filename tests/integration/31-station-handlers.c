/*  tests/integration/31-station-handlers.c - stations go only where their
 *  handler is (proto/PROTOCOL.md 11.2, 11.9).
 *
 *  Placement treats "offers the handler" as eligibility, exactly as task
 *  dispatch does (S26: an unknown handler is refused at add, a known one
 *  runs only where it is offered). Checked on a real broker with real
 *  workers, one built-ins-only worker `plain` joining first (so it is the
 *  least loaded and the earliest joiner, which wins every tie):
 *
 *    1. a station of a plugin handler goes to the worker that loaded the
 *       plugin, never to `plain`;
 *    2. when that worker leaves, the station waits `pending` with the
 *       reason "no eligible worker offers its handler" (set aside: it is
 *       not tried, failed or restarted on `plain`), and runs again as soon
 *       as a worker with the plugin joins;
 *    3. with restart on-failure, a station whose iterations time out is
 *       restarted on the other worker: the one it failed on comes last;
 *    4. a worker that announced a handler but refuses an ASSIGN of it
 *       (a raw worker speaking the wire, answering STATION ev "refused")
 *       is not sent it again: the station runs on the next candidate, and
 *       `workers` no longer lists the handler for the refusing worker.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#ifndef TW_EXAMPLE_PLUGIN
#error "needs the example plugin (TW_EXAMPLE_PLUGIN)"
#endif

static tw_client_t *s_c;

/* The id of the worker named `name`, or 0. With `has` not NULL, *has is
 * 1 if it offers handler `handler`. */
static uint64_t
s_worker(const char *name, const char *handler, int *has)
{
    tw_h_worker_t ws[8];
    size_t n = tw_h_workers(s_c, ws, 8);
    const tw_h_worker_t *w = tw_h_worker_named(ws, n < 8 ? n : 8, name);
    if (w && has) {
        char hay[sizeof w->handlers + 1], needle[140];
        snprintf(hay, sizeof hay, " %s", w->handlers);
        snprintf(needle, sizeof needle, " %s ", handler);
        *has = strstr(hay, needle) != NULL;
    }
    return w ? w->id : 0;
}

/* The credit the broker counts for the worker named `name`, or 0. */
static uint64_t
s_credit(const char *name)
{
    tw_h_worker_t ws[8];
    size_t n = tw_h_workers(s_c, ws, 8);
    const tw_h_worker_t *w = tw_h_worker_named(ws, n < 8 ? n : 8, name);
    return w ? w->credit : 0;
}

/* Start a worker named `name` (with the example plugin if `plugin`) and
 * wait until the broker lists it; returns its pid, *wid its id. */
static pid_t
s_start(tw_h_broker_t *b, const char *name, int plugin, uint64_t *wid)
{
    const char *with[] = {"--name", name, "--plugin", TW_EXAMPLE_PLUGIN,
                          NULL};
    const char *without[] = {"--name", name, NULL};
    pid_t pid = tw_h_start_worker(b, 2, plugin ? with : without);
    TW_H_ASSERT(pid > 0);
    uint64_t end = tw_h_now_ms() + TW_H_PATIENCE_MS;
    while (!(*wid = s_worker(name, NULL, NULL)) && tw_h_now_ms() < end) {
        tw_h_sleep_ms(20);
    }
    TW_H_ASSERT_MSG(*wid, "worker %s never registered", name);
    return pid;
}

static void
s_add(const char *sid, const char *handler, const void *args, size_t alen,
      uint64_t timeout_ms, const char *restart)
{
    tw_station_req_t req = {.op = "add",
                            .sid = sid,
                            .handler = handler,
                            .args = args,
                            .args_len = alen,
                            .next = "same",
                            .timeout_ms = timeout_ms,
                            .restart = restart};
    int rc = tw_client_station(s_c, &req, TW_H_PATIENCE_MS, NULL, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add %s: %s", sid, tw_client_last_error(s_c));
}

/* Wait until station `sid` runs; returns its worker. */
static uint64_t
s_running_on(const char *sid)
{
    tw_h_station_t st;
    int rc = tw_h_wait_station(s_c, sid, "running", TW_H_PATIENCE_MS, &st);
    TW_H_ASSERT_MSG(rc == 0, "%s: state %s (%s)", sid, st.state, st.reason);
    return st.worker;
}

/* 1 and 2: a plugin handler's station follows the plugin. */
static void
s_follows_plugin(tw_h_broker_t *b, uint64_t plain)
{
    uint64_t p1;
    pid_t pid = s_start(b, "plugged-1", 1, &p1);
    static const unsigned char abc[] = {0xa3, 'a', 'b', 'c'};
    s_add("up", "example.upper", abc, sizeof abc, 0, "on-failure");
    TW_H_ASSERT_EQ(s_running_on("up"), p1);

    /* Its worker leaves: only `plain` is left, and it lacks the handler.
     * The station waits and says why; it is never sent to `plain`. */
    TW_H_ASSERT_EQ(tw_h_stop(pid), 0);
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "up", "pending", TW_H_PATIENCE_MS, &st));
    uint64_t end = tw_h_now_ms() + TW_H_PATIENCE_MS;
    while (strstr(st.reason, "offers its handler") == NULL &&
           tw_h_now_ms() < end) {
        tw_h_sleep_ms(20);
        TW_H_ASSERT_OK(tw_h_station_show(s_c, "up", &st));
    }
    TW_H_ASSERT_STREQ(st.reason, "no eligible worker offers its handler");
    uint64_t epoch = st.epoch;
    /* A credit return makes placement passes run: none of them may place
     * it on `plain` (a refused ASSIGN would bump the epoch and fail it). */
    for (int i = 0; i < 10; i++) {
        static const unsigned char nil = 0xc0;
        tw_task_spec_t spec = {.handler = "noop", .args = &nil,
                               .args_len = 1};
        uint64_t seq;
        TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, &seq));
    }
    TW_H_ASSERT_OK(tw_client_wait_all(s_c, TW_H_PATIENCE_MS));
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "up", &st));
    TW_H_ASSERT_STREQ(st.state, "pending");
    TW_H_ASSERT_EQ(st.epoch, epoch);
    TW_H_ASSERT_EQ(st.restarts, 0);
    TW_H_ASSERT_STREQ(st.last_error, "");

    /* A worker with the plugin joins: the station runs there. */
    uint64_t p2;
    pid = s_start(b, "plugged-2", 1, &p2);
    TW_H_ASSERT_EQ(s_running_on("up"), p2);
    TW_H_ASSERT(p2 != plain);
    TW_H_ASSERT_OK(tw_h_station_op(s_c, "remove", "up", 0));
    TW_H_ASSERT_EQ(tw_h_stop(pid), 0);
}

/* 3: a failing station's restart goes to the other worker. */
static void
s_restart_elsewhere(tw_h_broker_t *b, uint64_t plain)
{
    uint64_t other;
    pid_t pid = s_start(b, "other", 0, &other);
    /* sleep 30 s with a 1 s timeout: each run fails after a second. */
    static const unsigned char thirty = 0x1e;
    s_add("flaky", "sleep", &thirty, 1, 1000, "on-failure");
    uint64_t first = s_running_on("flaky");
    TW_H_ASSERT(first == plain || first == other);
    /* Its first failure, then its restart (restart-base 200 ms). */
    tw_h_station_t st;
    uint64_t end = tw_h_now_ms() + TW_H_PATIENCE_MS;
    do {
        tw_h_sleep_ms(5);
        TW_H_ASSERT_OK(tw_h_station_show(s_c, "flaky", &st));
    } while (!(st.restarts >= 1 && strcmp(st.state, "running") == 0) &&
             tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(st.restarts >= 1 && strcmp(st.state, "running") == 0,
                    "flaky: state %s, restarts %llu", st.state,
                    (unsigned long long)st.restarts);
    TW_H_ASSERT_STREQ(st.last_error, "timeout");
    /* A busy machine may let a second run fail before the look above:
     * each restart goes to the worker the last run did not fail on, so
     * with two workers an odd restart runs on the other one. */
    TW_H_ASSERT_MSG((st.restarts % 2 == 1) == (st.worker != first),
                    "restart %llu on worker %llu, the first was %llu",
                    (unsigned long long)st.restarts,
                    (unsigned long long)st.worker,
                    (unsigned long long)first);
    TW_H_ASSERT(st.worker == plain || st.worker == other);
    TW_H_ASSERT_OK(tw_h_station_op(s_c, "remove", "flaky", 0));
    TW_H_ASSERT_EQ(tw_h_stop(pid), 0);
}

/* Send one STATION item {sid, ep, ev[, err]} (credit 1 with "refused")
 * from the raw worker. */
static void
s_raw_report(void *sock, const char *sid, uint64_t ep, const char *ev)
{
    int refused = strcmp(ev, "refused") == 0;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1 + refused);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 3 + refused);
    tw_enc_ikey(&e, TW_I_SID);
    tw_enc_cstr(&e, sid);
    tw_enc_ikey(&e, TW_I_EP);
    tw_enc_uint(&e, ep);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, ev);
    if (refused) {
        tw_enc_ikey(&e, TW_I_ERR);
        tw_enc_cstr(&e, "unknown handler 'mirror'");
        tw_enc_key(&e, TW_F_CREDIT);
        tw_enc_uint(&e, 1);
    }
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_STATION, &e));
    tw_enc_free(&e);
}

/* 4: a refusing worker is not sent the handler again. */
static void
s_refusal(tw_h_broker_t *b, uint64_t plain)
{
    /* A raw worker announcing `mirror`, joined after `plain` but idle
     * and with more credit, so the station goes to it first. */
    void *raw = tw_h_dealer(b->backend, "w-raw-refuses");
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "raw");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 8);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "mirror");
    TW_H_ASSERT_OK(tw_h_send(raw, TW_CMD_HELLO, &e));
    tw_h_msg_t msg;
    tw_h_expect(raw, TW_CMD_WELCOME, &msg, TW_H_PATIENCE_MS);
    tw_h_msg_release(&msg);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 8);
    TW_H_ASSERT_OK(tw_h_send(raw, TW_CMD_READY, &e));
    tw_enc_free(&e);
    /* The READY travels on the backend, the query below on the frontend:
     * until the broker has counted the credit, `plain` would win. */
    int has = 0;
    uint64_t rid = 0;
    TW_H_WAIT((rid = s_worker("raw", "mirror", &has)) != 0 &&
                  s_credit("raw") == 8,
              TW_H_PATIENCE_MS);
    TW_H_ASSERT(has);

    static const unsigned char one = 0x01;
    s_add("m", "mirror", &one, 1, 0, "on-failure");
    tw_h_expect(raw, TW_CMD_ASSIGN, &msg, TW_H_PATIENCE_MS);
    TW_H_ASSERT_EQ(msg.m.nitems, 1);
    uint64_t ep = tw_item_uint(&msg.m.items[0], TW_I_EP, 0);
    tw_h_msg_release(&msg);
    s_raw_report(raw, "m", ep, "refused");

    /* The station runs on `plain`, without a failure or a restart. */
    TW_H_ASSERT_EQ(s_running_on("m"), plain);
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "m", &st));
    TW_H_ASSERT_EQ(st.restarts, 0);
    TW_H_ASSERT_STREQ(st.last_error, "");
    TW_H_ASSERT_EQ(s_worker("raw", "mirror", &has), rid);
    TW_H_ASSERT_EQ(has, 0);

    /* Moved off `plain` by a removal and added again: it never goes back
     * to the raw worker, which keeps heartbeating meanwhile. */
    TW_H_ASSERT_OK(tw_h_station_op(s_c, "remove", "m", 0));
    s_add("m2", "mirror", &one, 1, 0, NULL);
    TW_H_ASSERT_EQ(s_running_on("m2"), plain);
    uint64_t end = tw_h_now_ms() + 500;
    while (tw_h_now_ms() < end) {
        tw_enc_init(&e);
        tw_enc_map(&e, 0);
        TW_H_ASSERT_OK(tw_h_send(raw, TW_CMD_HEARTBEAT, &e));
        tw_enc_free(&e);
        if (tw_h_recv(raw, &msg, 100) == 0) {
            TW_H_ASSERT_MSG(!msg.decoded || msg.m.cmd != TW_CMD_ASSIGN,
                            "the refusing worker got another ASSIGN");
        }
        tw_h_msg_release(&msg);
    }
    TW_H_ASSERT_OK(tw_h_station_op(s_c, "remove", "m2", 0));
    zmq_close(raw);
}

int
main(void)
{
    tw_h_init("31-station-handlers");
    tw_h_broker_t b;
    const char *args[] = {"--restart-base", "200", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, args));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);
    uint64_t plain;
    s_start(&b, "plain", 0, &plain);

    s_follows_plugin(&b, plain);
    s_restart_elsewhere(&b, plain);
    s_refusal(&b, plain);

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("31-station-handlers: ok\n");
    return 0;
}
