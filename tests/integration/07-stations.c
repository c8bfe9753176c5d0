/*  tests/integration/07-stations.c - stations on a real cluster.
 *
 *  Three workers with 400 slots each carry 1,000 stations of `incr` in
 *  `result` mode: every one must be placed (S36: never more than a
 *  worker's slots), spread over all three, and make progress, its
 *  checkpoint counting its own iterations (S4). Then, one station at a
 *  time: `same` mode keeps its input (S3); {"stop": true} ends a loop
 *  cleanly (S19); pause holds the slot and stops iterating (S15), continue
 *  resumes from the last payload (S16), stop ends after the current
 *  iteration (S17), cancel aborts a long iteration at once (S18); a
 *  failing handler ends the station failed with its error (S20, S23), and
 *  with restart on-failure it is restarted with backoff until the burst
 *  limit leaves it failed; n2s messages reach the station in order and its
 *  s2n messages reach a subscriber in order (S31) and `station tail`
 *  prints them and ends once the station stops; a station whose code no
 *  worker carries stays pending with the reason (S40-S41) and runs once a
 *  matching worker joins.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>

#define NSTATIONS 1000

static tw_client_t *s_c;

static void
s_add(const char *sid, const char *handler, const void *args, size_t alen,
      const char *next, uint64_t interval_ms, const char *code,
      const char *restart)
{
    tw_station_req_t req = {.op = "add",
                            .sid = sid,
                            .handler = handler,
                            .args = args,
                            .args_len = alen,
                            .next = next,
                            .interval_ms = interval_ms,
                            .code = code,
                            .restart = restart};
    int rc = tw_client_station(s_c, &req, 5000, NULL, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add %s: %s", sid, tw_client_last_error(s_c));
}

/* Count stations per state and per worker from "station list". */
static void
s_census(size_t *running, size_t per_worker[8], uint64_t *min_iter)
{
    tw_station_req_t req = {.op = "list"};
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_station(s_c, &req, 10000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_ARRAY);
    *running = 0;
    *min_iter = UINT64_MAX;
    memset(per_worker, 0, 8 * sizeof *per_worker);
    for (uint32_t i = 0; i < up.data.via.array.size; i++) {
        msgpack_object *m = &up.data.via.array.ptr[i];
        int is_incr = 0, is_running = 0;
        uint64_t worker = 0, iters = 0;
        for (uint32_t k = 0; k < m->via.map.size; k++) {
            msgpack_object *key = &m->via.map.ptr[k].key;
            msgpack_object *v = &m->via.map.ptr[k].val;
            if (key->via.str.size == 7 &&
                !memcmp(key->via.str.ptr, "station", 7)) {
                is_incr = v->via.str.size > 2 &&
                          !memcmp(v->via.str.ptr, "s-", 2);
            } else if (key->via.str.size == 5 &&
                       !memcmp(key->via.str.ptr, "state", 5)) {
                is_running = v->via.str.size == 7 &&
                             !memcmp(v->via.str.ptr, "running", 7);
            } else if (key->via.str.size == 6 &&
                       !memcmp(key->via.str.ptr, "worker", 6)) {
                worker = v->via.u64;
            } else if (key->via.str.size == 10 &&
                       !memcmp(key->via.str.ptr, "iterations", 10)) {
                iters = v->via.u64;
            }
        }
        if (!is_incr) {
            continue;
        }
        *running += is_running;
        if (worker < 8) {
            per_worker[worker]++;
        }
        if (iters < *min_iter) {
            *min_iter = iters;
        }
    }
    msgpack_unpacked_destroy(&up);
    free(data);
}

static void
s_many_stations(void)
{
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    /* All in one request (tw_client_stations_add), plus one item that is
     * refused (a sid already taken) without stopping the others. */
    static char sids[NSTATIONS + 1][32];
    static tw_station_req_t reqs[NSTATIONS + 1];
    for (int i = 0; i <= NSTATIONS; i++) {
        snprintf(sids[i], sizeof sids[i], "s-%04d", i < NSTATIONS ? i : 7);
        reqs[i] = (tw_station_req_t){.sid = sids[i],
                                     .handler = "incr",
                                     .args = zero,
                                     .args_len = zl,
                                     .next = "result",
                                     .interval_ms = 200};
    }
    void *data = NULL;
    size_t len = 0;
    TW_H_ASSERT_OK(tw_client_stations_add(s_c, reqs, NSTATIONS + 1, 10000,
                                          &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT_EQ(up.data.via.array.size, NSTATIONS + 1);
    const msgpack_object *last = &up.data.via.array.ptr[NSTATIONS];
    int refused = 0;
    for (uint32_t k = 0; k < last->via.map.size; k++) {
        const msgpack_object *key = &last->via.map.ptr[k].key;
        if (key->via.str.size == 4 && !memcmp(key->via.str.ptr, "code", 4)) {
            refused = last->via.map.ptr[k].val.via.i64 == TW_EEXIST;
        }
    }
    TW_H_ASSERT_MSG(refused, "the duplicate sid was refused with EEXIST");
    msgpack_unpacked_destroy(&up);
    free(data);
    size_t running = 0, per[8];
    uint64_t min_iter = 0;
    uint64_t end = tw_h_now_ms() + 30000;
    do {
        tw_h_sleep_ms(200);
        s_census(&running, per, &min_iter);
    } while ((running < NSTATIONS || min_iter < 3) && tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(running == NSTATIONS, "%zu of %d stations running",
                    running, NSTATIONS);
    TW_H_ASSERT_MSG(min_iter >= 3, "every station iterated (min %llu)",
                    (unsigned long long)min_iter);
    for (int w = 1; w <= 3; w++) {
        TW_H_ASSERT_MSG(per[w] > 0 && per[w] <= 400,
                        "worker %d holds %zu stations", w, per[w]);
    }
    /* In result mode incr's output is the next input: the checkpoint is
     * the number of iterations behind it (S4). */
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "s-0007", &st));
    TW_H_ASSERT_MSG(st.checkpoint > 0 &&
                        (uint64_t)st.checkpoint <= st.iterations + 1 &&
                        (uint64_t)st.checkpoint + 10 >= st.iterations,
                    "checkpoint %lld follows iterations %llu",
                    st.checkpoint, (unsigned long long)st.iterations);
    for (int i = 0; i < NSTATIONS; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "s-%04d", i);
        tw_h_station_op(s_c, "remove", sid, 0);
    }
    printf("07: %d stations running on 3 workers (%zu/%zu/%zu)\n",
           NSTATIONS, per[1], per[2], per[3]);
}

static void
s_modes_and_controls(void)
{
    unsigned char five[9];
    size_t fl = tw_h_pack_int(five, 5);
    tw_h_station_t st;

    /* same: the input never changes (S3). */
    s_add("same", "incr", five, fl, "same", 20, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "same", "running", 5000, NULL));
    TW_H_ASSERT_OK(tw_h_wait_iterations(s_c, "same", 3, 10000, &st));
    TW_H_ASSERT_EQ(st.checkpoint, 5);

    /* {"stop": true} ends the loop cleanly (S19). */
    static const unsigned char stop[] = {0x81, 0xa4, 's', 't', 'o',
                                         'p', 0xc3};
    s_add("selfstop", "echo", stop, sizeof stop, "same", 0, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "selfstop", "done", 5000, &st));
    TW_H_ASSERT_EQ(st.iterations, 1);

    /* pause keeps the slot and stops iterating (S15); continue resumes
     * from the last payload (S16); stop ends it (S17). */
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    s_add("ctl", "incr", zero, zl, "result", 20, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "ctl", "running", 5000, NULL));
    TW_H_ASSERT_OK(tw_h_wait_iterations(s_c, "ctl", 3, 10000, NULL));
    tw_h_station_op(s_c, "pause", "ctl", 0);
    /* The worker pauses at an iteration boundary and its "paused" report
     * carries the last checkpoint, so from here nothing may change. */
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "ctl", "paused", 5000, NULL));
    tw_h_station_t p1, p2;
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "ctl", &p1));
    tw_h_sleep_ms(400); /* a window for iterations that must not come */
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "ctl", &p2));
    TW_H_ASSERT_EQ(p2.iterations, p1.iterations);
    TW_H_ASSERT(p1.worker != 0); /* still holds its slot */
    tw_h_station_op(s_c, "continue", "ctl", 0);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "ctl", "running", 5000, NULL));
    TW_H_ASSERT_OK(tw_h_wait_iterations(s_c, "ctl", p1.iterations + 2,
                                        10000, &p2));
    TW_H_ASSERT_MSG(p2.checkpoint > p1.checkpoint &&
                        p2.checkpoint >= (long long)p1.iterations,
                    "resumed from %lld, now %lld", p1.checkpoint,
                    p2.checkpoint);
    tw_h_station_op(s_c, "stop", "ctl", 0);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "ctl", "stopped", 5000, NULL));

    /* cancel aborts a long iteration at once (S18). */
    unsigned char thirty[9];
    size_t tl = tw_h_pack_int(thirty, 30);
    s_add("long", "sleep", thirty, tl, "same", 0, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "long", "running", 5000, NULL));
    uint64_t t0 = tw_h_now_ms();
    tw_h_station_op(s_c, "cancel", "long", 0);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "long", "cancelled",
                                     TW_H_PATIENCE_MS, NULL));
    TW_H_ASSERT(tw_h_now_ms() - t0 < 15000); /* not the 30 s iteration */

    /* A failing handler ends it failed, error kept (S20, S23). */
    static const unsigned char boom[] = {0xa4, 'b', 'o', 'o', 'm'};
    s_add("fails", "fail", boom, sizeof boom, "same", 0, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "fails", "failed", 5000, &st));
    TW_H_ASSERT_MSG(strstr(st.last_error, "boom"), "error: %s",
                    st.last_error);
    TW_H_ASSERT_EQ(st.restarts, 0);

    /* With restart on-failure: restarted with backoff, then left failed
     * once more than 5 failures fall in the window. */
    s_add("flaky", "fail", boom, sizeof boom, "same", 0, NULL,
          "on-failure");
    uint64_t end = tw_h_now_ms() + 20000;
    do {
        tw_h_sleep_ms(100);
        TW_H_ASSERT_OK(tw_h_station_show(s_c, "flaky", &st));
    } while (!(strcmp(st.state, "failed") == 0 && st.restarts == 5) &&
             tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(strcmp(st.state, "failed") == 0 && st.restarts == 5,
                    "state %s after %llu restarts", st.state,
                    (unsigned long long)st.restarts);
    tw_h_sleep_ms(500); /* a window for restarts that must not come */
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "flaky", &st));
    TW_H_ASSERT_STREQ(st.state, "failed");
}

/* `station tail` prints the station's s2n data and ends by itself, with
 * exit 0, once the station is stopped. */
static void
s_tail_until_stopped(const tw_h_broker_t *b)
{
    const char *argv[] = {tw_h_cli_bin(), "--broker", b->frontend,
                          "--status", b->status, "station", "tail", "chat",
                          NULL};
    pid_t tail = tw_h_spawn_log(argv, "tail.log");
    TW_H_ASSERT(tail > 0);
    /* It says so on stderr once the broker has its subscription. */
    TW_H_ASSERT_OK(tw_h_wait_log(tail, "subscribed at", 10000));
    unsigned char v[9];
    size_t vl = tw_h_pack_int(v, 4242);
    tw_station_req_t req = {.op = "send",
                            .sid = "chat",
                            .payload = v,
                            .payload_len = vl};
    TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
    uint64_t until = tw_h_now_ms() + 5000;
    while (!tw_h_log_contains(tail, "4242") && tw_h_now_ms() < until) {
        tw_h_sleep_ms(20);
    }
    TW_H_ASSERT_MSG(tw_h_log_contains(tail, "4242"), "tail printed s2n");
    TW_H_ASSERT(tw_h_alive(tail));
    TW_H_ASSERT_EQ(tw_h_station_op(s_c, "stop", "chat", 0), 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(tail, 5000), 0);
}

static void
s_channels(const tw_h_broker_t *b)
{
    static const char *const topics[] = {"s2n.chat", NULL};
    void *sub = tw_h_sub(b->status, topics);
    unsigned char nil = 0xc0;
    s_add("chat", "mirror", &nil, 1, "same", 10, NULL, NULL);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "chat", "running", 5000, NULL));
    for (int i = 1; i <= 20; i++) {
        unsigned char v[9];
        size_t vl = tw_h_pack_int(v, i * 11);
        tw_station_req_t req = {.op = "send",
                                .sid = "chat",
                                .payload = v,
                                .payload_len = vl};
        TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
    }
    uint64_t expect_seq = 0;
    for (int i = 1; i <= 20; i++) {
        tw_zframes_t msg;
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        TW_H_ASSERT_MSG(zmq_poll(&pi, 1, 5000) == 1, "s2n %d arrived", i);
        TW_H_ASSERT_OK(tw_zrecv_frames(sub, &msg, 0));
        TW_H_ASSERT_EQ(msg.n, 2);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        TW_H_ASSERT(msgpack_unpack_next(&up, zmq_msg_data(&msg.f[1]),
                                        zmq_msg_size(&msg.f[1]), NULL) ==
                    MSGPACK_UNPACK_SUCCESS);
        long long data = -1;
        uint64_t seq = 0;
        for (uint32_t k = 0; k < up.data.via.map.size; k++) {
            msgpack_object *key = &up.data.via.map.ptr[k].key;
            msgpack_object *v = &up.data.via.map.ptr[k].val;
            if (key->via.str.size == 4 && !memcmp(key->via.str.ptr, "data", 4)
                && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                data = (long long)v->via.u64;
            } else if (key->via.str.size == 3 &&
                       !memcmp(key->via.str.ptr, "seq", 3)) {
                seq = v->via.u64;
            }
        }
        msgpack_unpacked_destroy(&up);
        tw_zframes_close(&msg);
        TW_H_ASSERT_MSG(data == i * 11, "s2n %d carries %lld", i, data);
        TW_H_ASSERT(seq > expect_seq);
        expect_seq = seq;
    }
    zmq_close(sub);
    s_tail_until_stopped(b);
}

static void
s_code_waits(const tw_h_broker_t *b)
{
    unsigned char nil = 0xc0;
    s_add("coded", "noop", &nil, 1, "same", 50, "rtk", NULL);
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_station_show(s_c, "coded", &st));
    TW_H_ASSERT_STREQ(st.state, "pending");
    const char *tags[] = {"--tags", "code=rtk", NULL};
    TW_H_ASSERT(tw_h_start_worker(b, 2, tags) > 0);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "coded", "running", 10000, &st));
    TW_H_ASSERT_EQ(st.worker, 4);
}

int
main(void)
{
    tw_h_init("07-stations");
    tw_h_broker_t b;
    const char *args[] = {"--restart-base", "50", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, args));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    for (int i = 0; i < 3; i++) {
        TW_H_ASSERT(tw_h_start_worker(&b, 400, NULL) > 0);
        TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, i + 1, 10000));
    }
    s_c = tw_client_new(b.frontend);
    s_many_stations();
    s_modes_and_controls();
    s_channels(&b);
    s_code_waits(&b);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("07-stations: ok\n");
    return 0;
}
