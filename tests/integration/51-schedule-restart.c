/*  tests/integration/51-schedule-restart.c - a broker SIGKILLed and
 *  restarted on its --data across ticks of a schedule fires each tick
 *  exactly once, under each catch-up policy (PROTOCOL.md 18.11, docs/
 *  WORKFLOWS.md 3.4 and 3.6).
 *
 *  For each of none, last and all, a fresh broker (--schedule-grace 300,
 *  so a tick older than 0.3 s when the broker gets to it was missed) and
 *  a worker run `@every 1s` with overlap queue (every fired tick makes a
 *  task, none is skipped for overlap). After two ticks fired, a marker
 *  task is submitted and its ACK awaited (an ACK leaves only once its
 *  batch and every earlier one is written), the broker is SIGKILLed, left
 *  down for 3.5 s of wall-clock time (three ticks or more) and restarted
 *  on the same data. Once its cursor is past two more ticks:
 *
 *    - every tick from the stored cursor to the new cursor was dealt with
 *      once: fired + skipped since the restart equals the ticks in
 *      between, and the broker holds exactly one echo task per fired tick
 *      (those fired before the kill and written, and those since). The
 *      stored cursor is the last tick seen fired before the kill, or the
 *      one before it if the kill came between that tick's event and its
 *      write; exactly one of the two fits;
 *    - none: the missed ticks (three or more) were skipped;
 *    - last: all of them but at most one were skipped, and ticks fired;
 *    - all: nothing was skipped: each missed tick fired.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"
#include "common/util.h"
#include "proto/mpwalk.h"

#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

/* One reply's map: an integer field, or -1. */
static long long
s_int(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = tw_mp_get(m, k);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? (long long)v->via.u64
               : -1;
}

typedef struct {
    long long cursor, fired, skipped;
} s_info_t;

static s_info_t
s_show(tw_client_t *c, const char *name)
{
    tw_schedule_req_t req = {.op = "show", .name = name};
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_schedule(c, &req, 10000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    s_info_t in = {s_int(&up.data, "cursor"), s_int(&up.data, "fired"),
                   s_int(&up.data, "skipped")};
    msgpack_unpacked_destroy(&up);
    free(data);
    return in;
}

/* The echo tasks the broker holds (every one a tick fired). */
static size_t
s_echo_tasks(tw_client_t *c)
{
    tw_tasks_req_t req = {0};
    req.handler = "echo";
    req.limit = 1000;
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_tasks_list(c, &req, 10000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *ts = tw_mp_get(&up.data, "tasks");
    TW_H_ASSERT(ts && ts->type == MSGPACK_OBJECT_ARRAY);
    size_t n = ts->via.array.size;
    msgpack_unpacked_destroy(&up);
    free(data);
    return n;
}

/* The tick of the next schedule.s.fired event within timeout_ms, or 0. */
static uint64_t
s_fired(void *sub, int timeout_ms)
{
    tw_h_sched_ev_t ev;
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_h_now_ms() < end) {
        if (tw_h_schedule_event(sub, "s", &ev, 100) == 0 && ev.fired) {
            return ev.tick;
        }
    }
    return 0;
}

static void
s_policy(const char *policy)
{
    tw_h_broker_t b;
    static const char *const extra[] = {"--schedule-grace", "300",
                                        "--handler-grace", "60", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, extra));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    pid_t w = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    static const char *const topics[] = {"schedule.s.", NULL};
    void *sub = tw_h_sub(b.status, topics);
    char out[4096];
    int rc = tw_h_cli(&b, TW_H_ARGS("schedule", "add", "s", "@every 1s",
                                    "echo", "\"x\"", "--overlap", "queue",
                                    "--catch-up", policy),
                      out, sizeof out, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add exited %d:\n%s", rc, out);

    /* Two ticks fired; then everything so far is written. */
    uint64_t ticks[64];
    size_t nt = 0;
    while (nt < 2) {
        uint64_t t = s_fired(sub, 30000);
        TW_H_ASSERT_MSG(t, "%s: no tick fired", policy);
        ticks[nt++] = t;
    }
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    tw_h_track_results(c);
    uint64_t seq = tw_h_submit_str(c, "noop", "null", 0, 0);
    tw_h_wait_acked(c, seq, 10000);
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(b.pid, 10000) >= 0);
    uint64_t down = tw_wall_ms();
    tw_client_destroy(&c);
    /* Ticks published before the kill, the marker's wait included. */
    uint64_t t;
    while (nt < 64 && (t = s_fired(sub, 300)) != 0) {
        ticks[nt++] = t;
    }
    zmq_close(sub);
    for (size_t i = 1; i < nt; i++) {
        TW_H_ASSERT_EQ(ticks[i], ticks[i - 1] + 1000);
    }
    /* Down across three ticks or more. */
    while (tw_wall_ms() < down + 3500) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, extra));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    uint64_t up = tw_wall_ms();
    c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    s_info_t in;
    uint64_t end = tw_h_now_ms() + 60000;
    do {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end, "%s: the cursor stays at %lld",
                        policy, s_show(c, "s").cursor);
        tw_h_sleep_ms(100);
        in = s_show(c, "s");
    } while (in.cursor < (long long)up + 2000);
    size_t echo = s_echo_tasks(c);
    /* Which tick the store held as its cursor. */
    int fits = 0;
    for (int h = 0; h < 2; h++) {
        long long stored = (long long)ticks[nt - 1] - 1000 * h;
        long long written = (long long)nt - h;
        long long span = (in.cursor - stored) / 1000;
        if (in.fired + in.skipped == span &&
            (long long)echo == written + in.fired) {
            fits++;
        }
    }
    TW_H_ASSERT_MSG(fits == 1,
                    "%s: ticks fired before the kill %" PRIu64 "..%" PRIu64
                    ", cursor now %lld, fired %lld and skipped %lld since, "
                    "%zu echo tasks: no single stored cursor explains it",
                    policy, ticks[0], ticks[nt - 1], in.cursor, in.fired,
                    in.skipped, echo);
    /* The stored tick is at most the kill's time, and the broker came
     * back at least 3.5 s later: the ticks of the 3.2 s after the kill
     * (three or more) were more than 0.3 s old, missed. */
    if (strcmp(policy, "none") == 0) {
        TW_H_ASSERT_MSG(in.skipped >= 3, "none: %lld skipped", in.skipped);
    } else if (strcmp(policy, "last") == 0) {
        TW_H_ASSERT_MSG(in.skipped >= 2 && in.fired >= 1,
                        "last: %lld skipped, %lld fired", in.skipped,
                        in.fired);
    } else {
        TW_H_ASSERT_MSG(in.skipped == 0, "all: %lld skipped", in.skipped);
        TW_H_ASSERT_MSG(in.fired >= 3, "all: %lld fired", in.fired);
    }
    tw_client_destroy(&c);
    TW_H_ASSERT_OK(tw_h_stop(b.pid));
    TW_H_ASSERT_OK(tw_h_stop(w));
}

int
main(void)
{
    tw_h_init("51-schedule-restart");
    s_policy("none");
    s_policy("last");
    s_policy("all");
    return 0;
}
