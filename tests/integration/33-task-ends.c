/*  tests/integration/33-task-ends.c - how tasks end, and what the status
 *  socket says about it, with a raw worker that answers on cue.
 *
 *  A real broker; a worker played byte for byte by this test (a DEALER on
 *  the backend offering handler "cue"), so a DONE can be sent after the
 *  broker's CANCEL has gone out, exactly when the race happens; a
 *  libtaskwheel client; and a SUB on the status socket. Checked:
 *
 *    S57, F3   a DONE with an outcome that arrives before the worker
 *              confirms a CANCEL wins: the task ends with its result
 *              (kept, delivered to the client, published as task.done +
 *              task.result), and a failure that overtook the cancel ends
 *              the task failed without a retry
 *    S47-S48   a cancelled task publishes task.cancelled and then
 *              task.done, whether it was running (the worker confirmed)
 *              or pending (ended in the broker)
 *    12.8      every status message has "ts" (wall-clock ms); task.done,
 *              task.result, task.exception and task.cancelled of a task
 *              that ran carry "run_ms", a pending one's do not; a failed
 *              attempt that will be retried is published as task.retry
 *              with the attempt's error, its run_ms and retry_in_ms;
 *              examples/monitor.py (when python3-zmq is installed) shows
 *              them on its human lines
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "common/util.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

static tw_client_t *s_c;
static void *s_raw; /* the worker */
static void *s_sub; /* the status subscriber */

/* ---- the status subscriber ------------------------------------------- */

typedef struct {
    char topic[64];
    uint64_t id, attempt, ts;
    int64_t run_ms, retry_in_ms; /* -1: absent */
    char state[16];
    char error[256];
} s_ev_t;

static int
s_key(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
           memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

/* The next status message within timeout_ms, parsed; 0 on timeout. */
static int
s_next(s_ev_t *ev, int timeout_ms)
{
    zmq_pollitem_t pi = {s_sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, timeout_ms) != 1) {
        return 0;
    }
    tw_zframes_t f;
    TW_H_ASSERT_OK(tw_zrecv_frames(s_sub, &f, 0));
    TW_H_ASSERT_EQ(f.n, 2);
    memset(ev, 0, sizeof *ev);
    ev->run_ms = ev->retry_in_ms = -1;
    snprintf(ev->topic, sizeof ev->topic, "%.*s", (int)zmq_msg_size(&f.f[0]),
             (char *)zmq_msg_data(&f.f[0]));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, zmq_msg_data(&f.f[1]),
                                    zmq_msg_size(&f.f[1]), NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key;
        const msgpack_object *v = &up.data.via.map.ptr[i].val;
        uint64_t u = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64
                                                                : 0;
        if (s_key(k, "id")) {
            ev->id = u;
        } else if (s_key(k, "attempt")) {
            ev->attempt = u;
        } else if (s_key(k, "ts")) {
            TW_H_ASSERT(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            ev->ts = u;
        } else if (s_key(k, "run_ms")) {
            TW_H_ASSERT(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            ev->run_ms = (int64_t)u;
        } else if (s_key(k, "retry_in_ms")) {
            TW_H_ASSERT(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            ev->retry_in_ms = (int64_t)u;
        } else if (s_key(k, "state") && v->type == MSGPACK_OBJECT_STR) {
            snprintf(ev->state, sizeof ev->state, "%.*s",
                     (int)v->via.str.size, v->via.str.ptr);
        } else if (s_key(k, "error") && v->type == MSGPACK_OBJECT_STR) {
            snprintf(ev->error, sizeof ev->error, "%.*s",
                     (int)v->via.str.size, v->via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&up);
    tw_zframes_close(&f);
    /* Every status message says when it was published. */
    uint64_t now = tw_wall_ms();
    TW_H_ASSERT_MSG(ev->ts && ev->ts <= now + 1000 && ev->ts + 60000 > now,
                    "%s: ts %llu, now %llu", ev->topic,
                    (unsigned long long)ev->ts, (unsigned long long)now);
    return 1;
}

/* The task events of task `id` up to and including `last`, as "a b c "
 * in *order; the events themselves in evs (at most 8). */
static int
s_events_of(uint64_t id, const char *last, s_ev_t evs[8], char *order,
            size_t olen)
{
    int n = 0;
    order[0] = '\0';
    uint64_t end = tw_h_now_ms() + 10000;
    while (tw_h_now_ms() < end) {
        s_ev_t ev;
        if (!s_next(&ev, 100) || ev.id != id ||
            strncmp(ev.topic, "task.", 5) != 0) {
            continue;
        }
        if (n < 8) {
            evs[n++] = ev;
        }
        strncat(order, ev.topic + 5, olen - strlen(order) - 2);
        strcat(order, " ");
        if (strcmp(ev.topic, last) == 0) {
            return n;
        }
    }
    TW_H_ASSERT_MSG(0, "task %llu: no %s; saw %s", (unsigned long long)id,
                    last, order);
    return n;
}

static void
s_sub_open(const tw_h_broker_t *b)
{
    s_sub = zmq_socket(tw_h_zctx(), ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(s_sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s_sub, ZMQ_SUBSCRIBE, "task.", 5);
    zmq_setsockopt(s_sub, ZMQ_SUBSCRIBE, "stats", 5);
    TW_H_ASSERT(zmq_connect(s_sub, b->status) == 0);
    /* Subscribed once the first "stats" (one a second) arrives. */
    s_ev_t ev;
    uint64_t end = tw_h_now_ms() + 10000;
    while (tw_h_now_ms() < end) {
        if (s_next(&ev, 100) && strcmp(ev.topic, "stats") == 0) {
            return;
        }
    }
    TW_H_ASSERT_MSG(0, "no stats on %s", b->status);
}

/* ---- the raw worker --------------------------------------------------- */

static void
s_raw_open(const tw_h_broker_t *b)
{
    s_raw = tw_h_dealer(b->backend, "w-cue-33");
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "cue");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 8);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "cue");
    TW_H_ASSERT_OK(tw_h_send(s_raw, TW_CMD_HELLO, &e));
    tw_h_msg_t msg;
    tw_h_expect(s_raw, TW_CMD_WELCOME, &msg, 5000);
    tw_h_msg_release(&msg);
    tw_enc_free(&e);
}

/* Give the broker `n` credit. */
static void
s_raw_credit(uint64_t n)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, n);
    TW_H_ASSERT_OK(tw_h_send(s_raw, TW_CMD_READY, &e));
    tw_enc_free(&e);
}

/* Expect one TASKS item for task `id`; returns its ep. */
static uint64_t
s_raw_task(uint64_t id, uint64_t attempt)
{
    tw_h_msg_t msg;
    tw_h_expect(s_raw, TW_CMD_TASKS, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 1);
    TW_H_ASSERT_EQ(tw_item_uint(&msg.m.items[0], TW_I_ID, 0), id);
    TW_H_ASSERT_EQ(tw_item_uint(&msg.m.items[0], TW_I_AT, 0), attempt);
    uint64_t ep = tw_item_uint(&msg.m.items[0], TW_I_EP, 0);
    tw_h_msg_release(&msg);
    return ep;
}

/* Expect CANCEL {ids: [id]}. */
static void
s_raw_cancelled(uint64_t id)
{
    tw_h_msg_t msg;
    tw_h_expect(s_raw, TW_CMD_CANCEL, &msg, 5000);
    const msgpack_object *ids = msg.m.f[TW_F_IDS];
    TW_H_ASSERT(ids && ids->via.array.size == 1);
    TW_H_ASSERT_EQ(ids->via.array.ptr[0].via.u64, id);
    tw_h_msg_release(&msg);
}

/* DONE {items: [{id, ep, st, r | err}], credit}. */
static void
s_raw_done(uint64_t id, uint64_t ep, int st, const char *err,
           uint64_t credit)
{
    static const unsigned char answer = 0x2a; /* 42 */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 4);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, id);
    tw_enc_ikey(&e, TW_I_EP);
    tw_enc_uint(&e, ep);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, (uint64_t)st);
    if (err) {
        tw_enc_ikey(&e, TW_I_ERR);
        tw_enc_cstr(&e, err);
    } else {
        tw_enc_ikey(&e, TW_I_R);
        tw_enc_bin(&e, &answer, 1);
    }
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, credit);
    TW_H_ASSERT_OK(tw_h_send(s_raw, TW_CMD_DONE, &e));
    tw_enc_free(&e);
}

/* ---- the client -------------------------------------------------------- */

/* Submit one "cue" task with `retries`; returns its seq, *id its id. */
static uint64_t
s_submit(uint16_t retries, uint64_t *id)
{
    static const unsigned char nil = 0xc0;
    tw_task_spec_t spec = {.handler = "cue", .args = &nil, .args_len = 1,
                           .retries = retries};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, &seq));
    TW_H_ASSERT_OK(tw_client_flush(s_c));
    *id = tw_h_wait_acked(s_c, seq, 5000);
    return seq;
}

static void
s_cancel(uint64_t id)
{
    TW_H_ASSERT_OK(tw_client_cancel(s_c, &id, 1, 5000));
}

/* The outcome delivered to the client for `seq`. */
static tw_result_t *
s_outcome(uint64_t seq)
{
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_h_last_result(s_c, seq, &r));
    return r;
}

/* ---- scenarios --------------------------------------------------------- */

/* S57: the result overtakes the cancel. */
static void
s_done_wins(void)
{
    uint64_t id;
    uint64_t seq = s_submit(0, &id);
    uint64_t ep = s_raw_task(id, 1);
    s_cancel(id);
    s_raw_cancelled(id);
    /* The task had finished before the CANCEL reached the worker. */
    s_raw_done(id, ep, TW_ST_OK, NULL, 1);
    s_ev_t evs[8];
    char order[128];
    s_events_of(id, "task.result", evs, order, sizeof order);
    TW_H_ASSERT_STREQ(order, "submitted started done result ");
    TW_H_ASSERT_STREQ(evs[2].state, "ok");
    TW_H_ASSERT(evs[2].run_ms >= 0);
    TW_H_ASSERT_EQ(evs[2].run_ms, evs[3].run_ms);
    TW_H_ASSERT_EQ(evs[1].run_ms, -1); /* task.started: no run time yet */
    tw_result_t *r = s_outcome(seq);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_EQ(tw_h_result_int(r), 42);
    tw_result_free(&r);

    /* A failure that overtook the cancel ends it failed: the cancel
     * stands in for the retry it would have had. */
    seq = s_submit(3, &id);
    ep = s_raw_task(id, 1);
    s_cancel(id);
    s_raw_cancelled(id);
    s_raw_done(id, ep, TW_ST_ERROR, "boom", 1);
    s_events_of(id, "task.exception", evs, order, sizeof order);
    TW_H_ASSERT_STREQ(order, "submitted started done exception ");
    TW_H_ASSERT_STREQ(evs[3].error, "boom");
    r = s_outcome(seq);
    TW_H_ASSERT_EQ(r->state, TW_ST_ERROR);
    TW_H_ASSERT_STREQ(r->error, "boom");
    tw_result_free(&r);
    tw_h_msg_t msg;
    TW_H_ASSERT_EQ(tw_h_recv(s_raw, &msg, 300), TW_ETIMEDOUT);
    tw_h_msg_release(&msg);
}

/* S47-S48: cancelled, then done. */
static void
s_cancel_then_done(void)
{
    uint64_t id;
    uint64_t seq = s_submit(0, &id);
    uint64_t ep = s_raw_task(id, 1);
    s_cancel(id);
    s_raw_cancelled(id);
    /* The slot's credit stays out, so the next task waits pending. */
    s_raw_done(id, ep, TW_ST_CANCELLED, "cancelled", 0);
    s_ev_t evs[8];
    char order[128];
    s_events_of(id, "task.done", evs, order, sizeof order);
    TW_H_ASSERT_STREQ(order, "submitted started cancelled done ");
    TW_H_ASSERT_STREQ(evs[2].state, "cancelled");
    TW_H_ASSERT_STREQ(evs[3].state, "cancelled");
    TW_H_ASSERT(evs[2].run_ms >= 0 && evs[2].run_ms == evs[3].run_ms);
    tw_result_t *r = s_outcome(seq);
    TW_H_ASSERT_EQ(r->state, TW_ST_CANCELLED);
    tw_result_free(&r);

    /* A pending task (the worker has no credit left): ended in the
     * broker, with the same two events and no run time. */
    seq = s_submit(0, &id);
    s_cancel(id);
    s_events_of(id, "task.done", evs, order, sizeof order);
    TW_H_ASSERT_STREQ(order, "submitted cancelled done ");
    TW_H_ASSERT_EQ(evs[1].run_ms, -1);
    TW_H_ASSERT_EQ(evs[2].run_ms, -1);
    r = s_outcome(seq);
    TW_H_ASSERT_EQ(r->state, TW_ST_CANCELLED);
    tw_result_free(&r);
}

/* examples/monitor.py on "task." and "stats", human lines; returns its
 * pid once it is subscribed (it printed a stats line), or 0 without
 * python3-zmq. */
static pid_t
s_monitor_start(const tw_h_broker_t *b)
{
    const char *py = "/usr/bin/python3";
    const char *probe[] = {py, "-c", "import zmq, msgpack", NULL};
    pid_t pp = tw_h_spawn_log(probe, "probe.log");
    if (pp <= 0 || tw_h_wait_exit(pp, 20000) != 0) {
        printf("33-task-ends: SKIP monitor.py (no python3-zmq/msgpack)\n");
        return 0;
    }
    const char *argv[] = {py, "-u", TW_SOURCE_DIR "/examples/monitor.py",
                          "--endpoint", b->status, "task.", "stats", NULL};
    pid_t mon = tw_h_spawn_log(argv, "monitor.log");
    TW_H_ASSERT(mon > 0);
    uint64_t end = tw_h_now_ms() + 10000;
    while (!tw_h_log_contains(mon, " stats ") && tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_MSG(tw_h_log_contains(mon, " stats "),
                    "monitor.py printed no stats line");
    return mon;
}

/* The line of monitor.py's log with `topic` and task id `id`. */
static void
s_monitor_line(pid_t mon, const char *topic, uint64_t id, char *out,
               size_t cap)
{
    char want[64];
    snprintf(want, sizeof want, "id=%llu ", (unsigned long long)id);
    uint64_t end = tw_h_now_ms() + 10000;
    do {
        FILE *f = fopen(tw_h_log_path(mon), "r");
        TW_H_ASSERT(f);
        while (fgets(out, (int)cap, f)) {
            if (strstr(out, topic) && strstr(out, want)) {
                fclose(f);
                return;
            }
        }
        fclose(f);
        tw_h_sleep_ms(50);
    } while (tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(0, "monitor.py showed no %s for task %llu", topic,
                    (unsigned long long)id);
}

/* 12.8: a retried attempt is published. */
static void
s_retry_published(const tw_h_broker_t *b)
{
    pid_t mon = s_monitor_start(b);
    uint64_t id;
    uint64_t seq = s_submit(1, &id);
    uint64_t ep = s_raw_task(id, 1);
    tw_h_sleep_ms(30); /* a run time above zero */
    s_raw_done(id, ep, TW_ST_ERROR, "flaky", 1);
    ep = s_raw_task(id, 2);
    s_raw_done(id, ep, TW_ST_OK, NULL, 1);
    s_ev_t evs[8];
    char order[128];
    s_events_of(id, "task.result", evs, order, sizeof order);
    TW_H_ASSERT_STREQ(order, "submitted started retry started done result ");
    const s_ev_t *retry = &evs[2];
    TW_H_ASSERT_STREQ(retry->state, "pending");
    TW_H_ASSERT_EQ(retry->attempt, 1);
    TW_H_ASSERT_STREQ(retry->error, "attempt 1: flaky");
    TW_H_ASSERT(retry->run_ms >= 25);
    TW_H_ASSERT(retry->retry_in_ms >= 0);
    TW_H_ASSERT_EQ(evs[4].attempt, 2);
    TW_H_ASSERT(evs[4].run_ms >= 0);
    TW_H_ASSERT_EQ(evs[4].retry_in_ms, -1);
    tw_result_t *r = s_outcome(seq);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    tw_result_free(&r);
    if (mon) {
        char line[1024];
        s_monitor_line(mon, " task.retry ", id, line, sizeof line);
        TW_H_ASSERT_MSG(strstr(line, "run_ms=") &&
                            strstr(line, "retry_in_ms=") &&
                            strstr(line, "error=\"attempt 1: flaky\"") &&
                            !strstr(line, "ts="),
                        "%s", line);
        s_monitor_line(mon, " task.result ", id, line, sizeof line);
        TW_H_ASSERT_MSG(strstr(line, "run_ms="), "%s", line);
        TW_H_ASSERT_EQ(tw_h_stop(mon), 0);
    }
}

int
main(void)
{
    tw_h_init("33-task-ends");
    tw_h_broker_t b;
    /* Retries at once: the test drives the worker itself, and a long
     * heartbeat keeps the quiet raw worker registered on a busy host. */
    const char *args[] = {"--retry-base", "0", "--heartbeat", "3000",
                          NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, args));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);
    tw_h_track_results(s_c);
    s_sub_open(&b);
    s_raw_open(&b);

    s_raw_credit(1);
    s_done_wins();
    s_cancel_then_done();
    s_raw_credit(1);
    s_retry_published(&b);

    zmq_close(s_raw);
    zmq_close(s_sub);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("33-task-ends: ok\n");
    return 0;
}
