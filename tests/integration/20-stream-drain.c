/*  tests/integration/20-stream-drain.c - stream stations do not hold up a
 *  drain and move at once.
 *
 *  A stream station's one iteration lasts as long as its program
 *  (examples/stream/chat.sh here), so it never reaches the iteration
 *  boundary where an ordinary station is released (proto/PROTOCOL.md
 *  11.14). Worker w1, with a 30 s --drain-timeout, runs the station; a
 *  second worker joins; `workers drain` of w1 must release the station at
 *  once and end its program, so w1 exits 0 in well under its drain
 *  timeout, and the station runs again on the other worker (a new program:
 *  its "ready" line shows up on s2n a second time). Then STOP ends the
 *  moved station at once too, instead of waiting for chat.sh to exit.
 */
#define _GNU_SOURCE /* memmem */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DRAIN_TIMEOUT "30000"

static tw_client_t *s_c;

/* Count the frames on the status socket holding chat.sh's "ready" line
 * (one per program started): wait up to `ms` for the first, then read
 * 300 ms more for any other. */
static int
s_count_ready(void *sub, int ms)
{
    int n = 0;
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (tw_h_now_ms() < end) {
        if (n > 0 && end > tw_h_now_ms() + 300) {
            end = tw_h_now_ms() + 300;
        }
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 50) <= 0) {
            continue;
        }
        zmq_msg_t f;
        zmq_msg_init(&f);
        while (zmq_msg_recv(&f, sub, ZMQ_DONTWAIT) >= 0) {
            if (memmem(zmq_msg_data(&f), zmq_msg_size(&f), "ready pid=",
                       10)) {
                n++;
            }
        }
        zmq_msg_close(&f);
    }
    return n;
}

int
main(void)
{
    tw_h_init("20-stream-drain");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    const char *slow[] = {"--drain-timeout", S_DRAIN_TIMEOUT, NULL};
    pid_t w1 = tw_h_start_worker(&b, 2, slow);
    TW_H_ASSERT(w1 > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);

    static const char *const topics[] = {"s2n.chat", NULL};
    void *sub = tw_h_sub(b.status, topics);

    /* ["/bin/bash", ".../chat.sh", "0.2"]: a tick every 0.2 s. */
    const char *path = TW_SOURCE_DIR "/examples/stream/chat.sh";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "/bin/bash", 9);
    msgpack_pack_str_with_body(&pk, path, strlen(path));
    msgpack_pack_str_with_body(&pk, "0.2", 3);
    tw_station_req_t req = {.op = "add", .sid = "chat", .handler = "stream",
                            .args = sb.data, .args_len = sb.size,
                            .next = "same", .interval_ms = 100};
    TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
    msgpack_sbuffer_destroy(&sb);
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "chat", "running", 5000, &st));
    uint64_t wid1 = st.worker;
    TW_H_ASSERT_EQ(s_count_ready(sub, 15000), 1);

    pid_t w2 = tw_h_start_worker(&b, 2, NULL);
    TW_H_ASSERT(w2 > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 2, 10000));

    /* ---- drain w1: the stream station does not hold it up ---- */
    uint64_t t0 = tw_h_now_ms();
    tw_worker_req_t dr = {"drain", NULL, wid1, 0};
    TW_H_ASSERT_OK(tw_client_worker(s_c, &dr, 5000, NULL, NULL));
    TW_H_ASSERT_EQ(tw_h_wait_exit(w1, TW_H_PATIENCE_MS + 30000), 0);
    uint64_t took = tw_h_now_ms() - t0;
    TW_H_ASSERT_MSG(took < 15000, /* half the drain timeout */
                    "w1 drained in %llu ms, not after its %s ms "
                    "drain timeout",
                    (unsigned long long)took, S_DRAIN_TIMEOUT);
    TW_H_ASSERT(tw_h_log_contains(w1, "asked this worker to drain"));
    TW_H_ASSERT(!tw_h_log_contains(w1, "drain timeout"));

    /* ---- the station runs again on w2, with a new program ---- */
    uint64_t end = tw_h_now_ms() + 10000;
    do {
        TW_H_ASSERT_OK(tw_h_station_show(s_c, "chat", &st));
        if (strcmp(st.state, "running") == 0 && st.worker != wid1 &&
            st.worker != 0) {
            break;
        }
        tw_h_sleep_ms(50);
    } while (tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(strcmp(st.state, "running") == 0 && st.worker != wid1,
                    "chat runs elsewhere (state %s, worker %llu)", st.state,
                    (unsigned long long)st.worker);
    TW_H_ASSERT_MSG(s_count_ready(sub, 15000) >= 1,
                    "the moved station started its program again");
    printf("20-stream-drain: w1 drained in %llu ms, chat moved\n",
           (unsigned long long)took);

    /* ---- STOP ends it now: chat.sh would never exit by itself ---- */
    tw_h_station_op(s_c, "stop", "chat", 0);
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "chat", "stopped",
                                     TW_H_PATIENCE_MS, &st));

    zmq_close(sub);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(w2), 0);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("20-stream-drain: ok\n");
    return 0;
}
