/*  tests/integration/09-scaling.c - workers come and go while stations run.
 *
 *  Twenty counting stations start on one worker. A second worker joins and
 *  `station rebalance` evens them out (moved at iteration boundaries). The
 *  first worker then gets SIGTERM: it finishes its iterations, hands its
 *  stations back and exits 0 (S29), and they continue on the other worker
 *  from their checkpoints. A worker started with --procs 2 appears as two
 *  workers; when one of its children is killed the supervisor starts a new
 *  one, which registers again. Last, a stream station runs an ordinary
 *  shell program: its stdout lines arrive as s2n, and an n2s message
 *  reaches its stdin.
 */
#define _GNU_SOURCE /* memmem */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20

static tw_client_t *s_c;

/* Worker ids and pids from QUERY workers. Returns how many. */
static size_t
s_workers(uint64_t *ids, uint64_t *pids, size_t cap)
{
    void *data = NULL;
    size_t len = 0, n = 0;
    TW_H_ASSERT_OK(tw_client_query(s_c, "workers", 5000, &data, &len));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    for (uint32_t i = 0; i < up.data.via.array.size && n < cap; i++) {
        msgpack_object *m = &up.data.via.array.ptr[i];
        for (uint32_t k = 0; k < m->via.map.size; k++) {
            msgpack_object *key = &m->via.map.ptr[k].key;
            uint64_t v = m->via.map.ptr[k].val.via.u64;
            if (key->via.str.size == 2 && !memcmp(key->via.str.ptr, "id", 2)) {
                ids[n] = v;
            } else if (key->via.str.size == 3 &&
                       !memcmp(key->via.str.ptr, "pid", 3)) {
                pids[n] = v;
            }
        }
        n++;
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    return n;
}

static size_t
s_count_on(uint64_t worker)
{
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "r-%02d", i);
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        n += st.worker == worker && strcmp(st.state, "running") == 0;
    }
    return n;
}

static void
s_drain_and_rebalance(const tw_h_broker_t *b)
{
    pid_t w1 = tw_h_start_worker(b, 50, NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(b->frontend, 1, 10000));
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    for (int i = 0; i < N; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "r-%02d", i);
        tw_station_req_t req = {.op = "add", .sid = sid, .handler = "incr",
                                .args = zero, .args_len = zl,
                                .next = "result", .interval_ms = 20};
        TW_H_ASSERT_OK(tw_client_station(s_c, &req, 5000, NULL, NULL));
        TW_H_ASSERT_OK(tw_h_wait_station(s_c, sid, "running", 5000, NULL));
    }
    TW_H_ASSERT_EQ(s_count_on(1), N);

    pid_t w2 = tw_h_start_worker(b, 50, NULL);
    TW_H_ASSERT_OK(tw_h_wait_workers(b->frontend, 2, 10000));
    TW_H_ASSERT(w1 > 0 && w2 > 0);
    tw_station_req_t rb = {.op = "rebalance"};
    TW_H_ASSERT_OK(tw_client_station(s_c, &rb, 5000, NULL, NULL));
    uint64_t end = tw_h_now_ms() + 10000;
    size_t on1, on2;
    do {
        tw_h_sleep_ms(100);
        on1 = s_count_on(1);
        on2 = s_count_on(2);
    } while ((on1 != N / 2 || on2 != N / 2) && tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(on1 == N / 2 && on2 == N / 2,
                    "after rebalance %zu and %zu", on1, on2);

    /* SIGTERM: worker 1 hands its stations back and exits cleanly. */
    uint64_t iters[N];
    for (int i = 0; i < N; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "r-%02d", i);
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        iters[i] = st.iterations;
    }
    TW_H_ASSERT_OK(tw_h_kill(w1, SIGTERM));
    TW_H_ASSERT_EQ(tw_h_wait_exit(w1, 15000), 0);
    end = tw_h_now_ms() + 10000;
    while (s_count_on(2) != N && tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_EQ(s_count_on(2), N);
    for (int i = 0; i < N; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "r-%02d", i);
        tw_h_station_t st;
        TW_H_ASSERT_OK(tw_h_station_show(s_c, sid, &st));
        TW_H_ASSERT_MSG(st.iterations >= iters[i] && st.checkpoint >= 1,
                        "%s continued (%llu >= %llu, checkpoint %lld)", sid,
                        (unsigned long long)st.iterations,
                        (unsigned long long)iters[i], st.checkpoint);
    }
}

static void
s_procs(const tw_h_broker_t *b)
{
    const char *two[] = {"--procs", "2", NULL};
    TW_H_ASSERT(tw_h_start_worker(b, 4, two) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b->frontend, 3, 10000));
    uint64_t ids[8], pids[8];
    size_t n = s_workers(ids, pids, 8);
    TW_H_ASSERT_EQ(n, 3);
    /* Workers 3 and 4 are the supervisor's children; kill one. */
    uint64_t victim = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= 3) {
            victim = pids[i];
        }
    }
    TW_H_ASSERT(victim > 0);
    TW_H_ASSERT_EQ(kill((pid_t)victim, SIGKILL), 0);
    uint64_t end = tw_h_now_ms() + 15000;
    int replaced = 0;
    while (!replaced && tw_h_now_ms() < end) {
        tw_h_sleep_ms(100);
        n = s_workers(ids, pids, 8);
        for (size_t i = 0; i < n; i++) {
            replaced |= ids[i] >= 5 && pids[i] != victim;
        }
    }
    TW_H_ASSERT_MSG(replaced, "the supervisor restarted its child");
}

static void
s_stream(const tw_h_broker_t *b)
{
    static const char *const topics[] = {"s2n.chat", NULL};
    void *sub = tw_h_sub(b->status, topics);
    /* ["bash", ".../chat.sh", "0.2"] */
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
    TW_H_ASSERT_OK(tw_h_wait_station(s_c, "chat", "running", 5000, NULL));
    static const unsigned char hello[] = {0xa5, 'h', 'e', 'l', 'l', 'o'};
    int sent = 0, got_ready = 0, got_echo = 0;
    uint64_t end = tw_h_now_ms() + 10000;
    while (!got_echo && tw_h_now_ms() < end) {
        zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 200) == 1) {
            tw_zframes_t msg;
            TW_H_ASSERT_OK(tw_zrecv_frames(sub, &msg, 0));
            const char *body = zmq_msg_data(&msg.f[1]);
            size_t blen = zmq_msg_size(&msg.f[1]);
            got_ready |= memmem(body, blen, "ready pid=", 10) != NULL;
            got_echo |= memmem(body, blen, "echo: hello", 11) != NULL;
            tw_zframes_close(&msg);
        }
        if (got_ready && !sent) {
            tw_station_req_t s = {.op = "send", .sid = "chat",
                                  .payload = hello,
                                  .payload_len = sizeof hello};
            TW_H_ASSERT_OK(tw_client_station(s_c, &s, 5000, NULL, NULL));
            sent = 1;
        }
    }
    TW_H_ASSERT_MSG(got_ready && got_echo,
                    "stream output seen (ready %d, echo %d)", got_ready,
                    got_echo);
    tw_h_station_op(s_c, "remove", "chat", 0);
    zmq_close(sub);
}

int
main(void)
{
    tw_h_init("09-scaling");
    tw_h_broker_t b;
    const char *args[] = {"--heartbeat", "300", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, args));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    s_c = tw_client_new(b.frontend);
    s_drain_and_rebalance(&b);
    s_procs(&b);
    s_stream(&b);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("09-scaling: ok\n");
    return 0;
}
