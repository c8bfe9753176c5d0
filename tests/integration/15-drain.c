/*  tests/integration/15-drain.c - drain and resize running workers.
 *
 *  Three workers (w1, w2, w3) run four counting stations and a stream of
 *  sleeping tasks. `workers drain w1` (WORKER op "drain") stops w1 from
 *  getting work at once: its stations continue on the others from their
 *  checkpoints (S29), its running tasks finish, every task ends ok (none
 *  lost), it exits 0 and the status socket says worker.draining,
 *  worker.drained and worker.down (reason "drained"). A child of a
 *  `--procs 2` worker drained by name exits 0 and the supervisor does not
 *  start it again. Then w2 is resized down (its stations move off the
 *  slots that go away; the QUERY workers figures follow) and up (credit
 *  comes back), w3 is shrunk while its tasks run (none is killed), and
 *  work still flows. Bad requests get clear errors: unknown op, no name,
 *  slots 0 or absurd, unknown worker, resizing a draining worker; and the
 *  CLI forms behave.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>

#define NST 4

static tw_client_t *s_c;

typedef struct {
    uint64_t id, slots, credit, running, stations;
    char name[32], state[16];
} s_worker_t;

static int
s_key(const msgpack_object *k, const char *s)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
           memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

static void
s_copy(char *dst, size_t cap, const msgpack_object *v)
{
    size_t n = v->type == MSGPACK_OBJECT_STR ? v->via.str.size : 0;
    n = n < cap - 1 ? n : cap - 1;
    memcpy(dst, n ? v->via.str.ptr : "", n);
    dst[n] = '\0';
}

/* Parse one worker map (QUERY workers or a WORKER reply). */
static void
s_parse_worker(const msgpack_object *m, s_worker_t *w)
{
    memset(w, 0, sizeof *w);
    for (uint32_t k = 0; k < m->via.map.size; k++) {
        const msgpack_object *key = &m->via.map.ptr[k].key;
        const msgpack_object *v = &m->via.map.ptr[k].val;
        uint64_t u = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64
                                                                : 0;
        if (s_key(key, "id")) {
            w->id = u;
        } else if (s_key(key, "slots")) {
            w->slots = u;
        } else if (s_key(key, "credit")) {
            w->credit = u;
        } else if (s_key(key, "running")) {
            w->running = u;
        } else if (s_key(key, "stations")) {
            w->stations = u;
        } else if (s_key(key, "name")) {
            s_copy(w->name, sizeof w->name, v);
        } else if (s_key(key, "state")) {
            s_copy(w->state, sizeof w->state, v);
        }
    }
}

/* QUERY workers; returns how many (at most cap). */
static size_t
s_workers(s_worker_t *ws, size_t cap)
{
    void *data = NULL;
    size_t len = 0, n = 0;
    TW_H_ASSERT_OK(tw_client_query(s_c, "workers", 5000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    for (uint32_t i = 0; i < up.data.via.array.size && n < cap; i++) {
        s_parse_worker(&up.data.via.array.ptr[i], &ws[n++]);
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return n;
}

/* The worker named `name`, or 0 if none is registered. */
static int
s_find(const char *name, s_worker_t *out)
{
    s_worker_t ws[16];
    size_t n = s_workers(ws, 16);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ws[i].name, name) == 0) {
            *out = ws[i];
            return 1;
        }
    }
    return 0;
}

/* A WORKER request; returns the broker's code, the reply's first worker
 * in *first when it succeeded. */
static int
s_request(const char *op, const char *name, uint64_t wid, uint64_t slots,
          s_worker_t *first, size_t *count)
{
    tw_worker_req_t req = {op, name, wid, slots};
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_worker(s_c, &req, 5000, &data, &len);
    if (rc == 0) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                    MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *ws = NULL;
        for (uint32_t k = 0; k < up.data.via.map.size; k++) {
            if (s_key(&up.data.via.map.ptr[k].key, "workers")) {
                ws = &up.data.via.map.ptr[k].val;
            }
        }
        TW_H_ASSERT(ws && ws->type == MSGPACK_OBJECT_ARRAY);
        if (count) {
            *count = ws->via.array.size;
        }
        if (first && ws->via.array.size) {
            s_parse_worker(&ws->via.array.ptr[0], first);
        }
        msgpack_unpacked_destroy(&up);
    }
    free(data);
    return rc;
}

static size_t
s_stations_on(uint64_t wid, size_t *running)
{
    size_t n = 0;
    *running = 0;
    for (int i = 0; i < NST; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "d-%d", i);
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        n += st.worker == wid;
        *running += strcmp(st.state, "running") == 0;
    }
    return n;
}

/* Submit n sleep tasks of `secs` seconds; returns the first seq. */
static uint64_t
s_submit_sleeps(int n, double secs)
{
    unsigned char a[9];
    a[0] = 0xcb; /* float 64 */
    uint64_t bits;
    memcpy(&bits, &secs, 8);
    for (int i = 0; i < 8; i++) {
        a[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    tw_task_spec_t spec = {.handler = "sleep", .args = a, .args_len = 9};
    uint64_t first = 0, seq;
    for (int i = 0; i < n; i++) {
        TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, &seq));
        first = first ? first : seq;
    }
    TW_H_ASSERT_OK(tw_client_flush(s_c));
    return first;
}

/* Every task from seq `first` on ends ok (none lost, none cancelled). */
static void
s_all_ok(uint64_t first, int n)
{
    TW_H_ASSERT_OK(tw_client_wait_all(s_c, 60000));
    for (int i = 0; i < n; i++) {
        tw_result_t *r = NULL;
        TW_H_ASSERT_OK(tw_h_last_result(s_c, first + (uint64_t)i, &r));
        TW_H_ASSERT_MSG(r->state == TW_ST_OK, "task seq %llu ended in state "
                        "%d (%s)", (unsigned long long)(first + i), r->state,
                        r->error ? r->error : "");
        tw_result_free(&r);
    }
}

/* Wait until a status message with `topic` whose body contains `text`
 * arrives on `sub`. Returns 1 if it did. */
static int
s_saw(void *sub, const char *topic, const char *text, int timeout_ms)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)timeout_ms;
    while (tw_h_now_ms() < end) {
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 100) != 1) {
            continue;
        }
        tw_zframes_t msg;
        TW_H_ASSERT_OK(tw_zrecv_frames(sub, &msg, 0));
        int hit = msg.n == 2 && zmq_msg_size(&msg.f[0]) == strlen(topic) &&
                  memcmp(zmq_msg_data(&msg.f[0]), topic, strlen(topic)) == 0;
        if (hit && text) {
            const char *b = zmq_msg_data(&msg.f[1]);
            size_t bl = zmq_msg_size(&msg.f[1]), tl = strlen(text);
            hit = 0;
            for (size_t i = 0; i + tl <= bl && !hit; i++) {
                hit = memcmp(b + i, text, tl) == 0;
            }
        }
        tw_zframes_close(&msg);
        if (hit) {
            return 1;
        }
    }
    return 0;
}

static void
s_bad_requests(void)
{
    TW_H_ASSERT_EQ(s_request("explode", "w2", 0, 0, NULL, NULL), TW_EINVAL);
    TW_H_ASSERT(strstr(tw_client_last_error(s_c), "unknown worker op"));
    TW_H_ASSERT_EQ(s_request("drain", NULL, 0, 0, NULL, NULL), TW_EINVAL);
    TW_H_ASSERT(strstr(tw_client_last_error(s_c), "name or wid"));
    TW_H_ASSERT_EQ(s_request("resize", "w2", 0, 0, NULL, NULL), TW_EINVAL);
    TW_H_ASSERT(strstr(tw_client_last_error(s_c), "between 1 and 65536"));
    TW_H_ASSERT_EQ(s_request("resize", "w2", 0, 1u << 30, NULL, NULL),
                   TW_EINVAL);
    TW_H_ASSERT_EQ(s_request("drain", "nobody", 0, 0, NULL, NULL),
                   TW_ENOENT);
    TW_H_ASSERT(strstr(tw_client_last_error(s_c), "no worker named"));
    TW_H_ASSERT_EQ(s_request("drain", NULL, 999, 0, NULL, NULL), TW_ENOENT);
    /* The client refuses what it cannot encode. */
    TW_H_ASSERT_EQ(s_request("", "w2", 0, 0, NULL, NULL), TW_EINVAL);
}

static int s_n_cli;

static int
s_cli(const tw_h_broker_t *b, const char *const *args)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = tw_h_cli_bin();
    argv[n++] = "--broker";
    argv[n++] = b->frontend;
    for (int i = 0; args[i] && n < 15; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char logname[32];
    snprintf(logname, sizeof logname, "cli.%d.log", ++s_n_cli);
    pid_t pid = tw_h_spawn_log(argv, logname);
    TW_H_ASSERT(pid > 0);
    int rc = tw_h_wait_exit(pid, 20000);
    TW_H_ASSERT(rc >= 0);
    return rc;
}

#define S_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

int
main(void)
{
    tw_h_init("15-drain");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    pid_t w1 = tw_h_start_worker(&b, 4, NULL);
    pid_t w2 = tw_h_start_worker(&b, 4, NULL);
    pid_t w3 = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w1 > 0 && w2 > 0 && w3 > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 3, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);
    tw_h_track_results(s_c);
    s_bad_requests();

    static const char *const topics[] = {"worker.", NULL};
    void *sub = tw_h_sub(b.status, topics);

    /* Four counting stations, spread over the three workers. */
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    for (int i = 0; i < NST; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "d-%d", i);
        tw_station_req_t req = {.op = "add", .sid = sid, .handler = "incr",
                                .args = zero, .args_len = zl,
                                .next = "result", .interval_ms = 20};
        TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
        TW_H_ASSERT_OK(tw_h_wait_station(s_c, sid, "running", 5000, NULL));
    }
    s_worker_t one;
    TW_H_ASSERT(s_find("w1", &one));
    size_t running;
    TW_H_ASSERT_MSG(s_stations_on(one.id, &running) >= 1,
                    "w1 holds a station before the drain");

    /* ---- drain w1 while it runs tasks (S29: stations move) ---- */
    uint64_t first = s_submit_sleeps(24, 0.4);
    uint64_t end = tw_h_now_ms() + 5000;
    while (one.running == 0 && tw_h_now_ms() < end) {
        tw_h_sleep_ms(20);
        TW_H_ASSERT(s_find("w1", &one));
    }
    TW_H_ASSERT_MSG(one.running > 0, "w1 runs tasks before the drain");
    s_worker_t got;
    size_t count = 0;
    TW_H_ASSERT_OK(s_request("drain", "w1", 0, 0, &got, &count));
    TW_H_ASSERT_EQ(count, 1);
    TW_H_ASSERT_EQ(got.id, one.id);
    TW_H_ASSERT_STREQ(got.state, "draining");
    /* Its tasks are still running: a resize is refused meanwhile, and a
     * second drain is harmless. */
    TW_H_ASSERT_EQ(s_request("resize", "w1", 0, 2, NULL, NULL), TW_ESTATE);
    TW_H_ASSERT_OK(s_request("drain", "w1", 0, 0, NULL, NULL));
    TW_H_ASSERT_MSG(s_saw(sub, "worker.draining", "w1", 5000),
                    "worker.draining published");
    TW_H_ASSERT_EQ(tw_h_wait_exit(w1, 20000), 0);
    TW_H_ASSERT_MSG(s_saw(sub, "worker.drained", "w1", 5000),
                    "worker.drained published");
    TW_H_ASSERT_MSG(s_saw(sub, "worker.down", "drained", 5000),
                    "worker.down says drained");
    TW_H_ASSERT(!s_find("w1", &got));
    TW_H_ASSERT(tw_h_log_contains(w1, "asked this worker to drain"));
    s_all_ok(first, 24);
    end = tw_h_now_ms() + 10000;
    size_t on1;
    do {
        tw_h_sleep_ms(50);
        on1 = s_stations_on(one.id, &running);
    } while ((on1 != 0 || running != NST) && tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(on1 == 0 && running == NST,
                    "stations moved off w1 and run (%zu on w1, %zu running)",
                    on1, running);
    for (int i = 0; i < NST; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "d-%d", i);
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        TW_H_ASSERT_MSG(st.checkpoint >= 1 && st.iterations >= 1,
                        "%s kept counting from its checkpoint", sid);
    }

    /* ---- a --procs child drained by name is not restarted ---- */
    /* At info level the supervisor logs each child's exit, and whether it
     * restarts it, when the child exits. */
    const char *two[] = {"--procs", "2", "--log-level", "info", NULL};
    pid_t sup = tw_h_start_worker(&b, 1, two);
    TW_H_ASSERT(sup > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 4, 10000));
    s_worker_t kid;
    TW_H_ASSERT(s_find("w4-0", &kid));
    TW_H_ASSERT_OK(s_request("drain", "w4-0", 0, 0, NULL, NULL));
    end = tw_h_now_ms() + 10000;
    while (s_find("w4-0", &got) && tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT(!s_find("w4-0", &got));
    /* A clean exit is logged as "child 0 (pid N) exited", a restart as
     * "... restarting in N ms"; the supervisor decides as it reaps. */
    TW_H_ASSERT_OK(tw_h_wait_log(sup, ") exited\"", 10000));
    TW_H_ASSERT_MSG(!tw_h_log_contains(sup, "restarting"),
                    "a drained child is not restarted");
    TW_H_ASSERT_MSG(!s_find("w4-0", &got), "a drained child stays gone");
    TW_H_ASSERT(s_find("w4-1", &got));
    TW_H_ASSERT(tw_h_alive(sup));

    /* ---- resize w2 down: its stations leave the slots that go ---- */
    s_worker_t two_w;
    TW_H_ASSERT(s_find("w2", &two_w));
    TW_H_ASSERT_OK(s_request("resize", "w2", 0, 1, &got, NULL));
    TW_H_ASSERT_EQ(got.slots, 1);
    TW_H_ASSERT_MSG(s_saw(sub, "worker.resized", "w2", 5000),
                    "worker.resized published");
    end = tw_h_now_ms() + 10000;
    do {
        tw_h_sleep_ms(50);
        TW_H_ASSERT(s_find("w2", &two_w));
    } while ((two_w.stations > 1 || two_w.credit + two_w.stations != 1) &&
             tw_h_now_ms() < end);
    TW_H_ASSERT_EQ(two_w.slots, 1);
    TW_H_ASSERT_STREQ(two_w.state, "ready");
    TW_H_ASSERT_MSG(two_w.stations <= 1 && two_w.credit + two_w.stations == 1,
                    "w2 at 1 slot: %llu station(s), credit %llu",
                    (unsigned long long)two_w.stations,
                    (unsigned long long)two_w.credit);

    /* ---- and up: credit for the new slots comes at once ---- */
    TW_H_ASSERT_OK(s_request("resize", NULL, two_w.id, 6, &got, NULL));
    end = tw_h_now_ms() + 5000;
    do {
        tw_h_sleep_ms(50);
        TW_H_ASSERT(s_find("w2", &two_w));
    } while (two_w.credit + two_w.stations != 6 && tw_h_now_ms() < end);
    TW_H_ASSERT_EQ(two_w.slots, 6);
    TW_H_ASSERT_EQ(two_w.credit + two_w.stations, 6);

    /* ---- shrink w3 while its tasks run: none is killed ---- */
    first = s_submit_sleeps(16, 0.5);
    s_worker_t three;
    TW_H_ASSERT(s_find("w3", &three));
    end = tw_h_now_ms() + 5000;
    while (three.running == 0 && tw_h_now_ms() < end) {
        tw_h_sleep_ms(20);
        TW_H_ASSERT(s_find("w3", &three));
    }
    TW_H_ASSERT_OK(s_request("resize", "w3", 0, 1, NULL, NULL));
    s_all_ok(first, 16);
    end = tw_h_now_ms() + 5000;
    do {
        tw_h_sleep_ms(50);
        TW_H_ASSERT(s_find("w3", &three));
    } while (three.credit + three.stations != 1 && tw_h_now_ms() < end);
    TW_H_ASSERT_EQ(three.slots, 1);
    TW_H_ASSERT_MSG(three.credit + three.stations == 1 && three.running == 0,
                    "w3 wound down to 1 slot (credit %llu, stations %llu)",
                    (unsigned long long)three.credit,
                    (unsigned long long)three.stations);
    TW_H_ASSERT(tw_h_log_contains(w3, "resized from 4 to 1 slots"));

    /* ---- work still flows everywhere ---- */
    first = s_submit_sleeps(20, 0.05);
    s_all_ok(first, 20);
    s_stations_on(0, &running);
    TW_H_ASSERT_EQ(running, NST);

    /* ---- the CLI ---- */
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "resize", "w2", "3")), 0);
    TW_H_ASSERT(s_find("w2", &two_w));
    TW_H_ASSERT_EQ(two_w.slots, 3);
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%llu", (unsigned long long)two_w.id);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "resize", idtxt, "2")), 0);
    TW_H_ASSERT(s_find("w2", &two_w));
    TW_H_ASSERT_EQ(two_w.slots, 2);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "drain", "nobody")), 1);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "resize", "w2", "lots")), 2);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "resize", "w2", "0")), 1);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "drain")), 2);
    TW_H_ASSERT_EQ(s_cli(&b, S_ARGS("workers", "drain", "w3")), 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(w3, 20000), 0);

    zmq_close(sub);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(w2), 0);
    TW_H_ASSERT_EQ(tw_h_stop(sup), 0);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("15-drain: ok\n");
    return 0;
}
