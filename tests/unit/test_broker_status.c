/*  tests/unit/test_broker_status.c - the status XPUB and its subscriptions.
 *
 *  The broker builds a per-task event only if tw_status_wants() says some
 *  subscriber would receive its topic, and it learns that from the
 *  subscription messages its XPUB socket delivers inside the libuv loop. So
 *  this suite runs the real thing on one thread: an XPUB bound to an inproc
 *  endpoint and watched by tw_status_init() on a uv loop, and plain SUB
 *  sockets that subscribe, unsubscribe and go away. Nothing sleeps: the
 *  loop is turned (UV_RUN_ONCE) until the expected answer appears, with a
 *  loop timer as a watchdog that fails the test instead of hanging it. To
 *  check that something did NOT change, a subscriber sends a marker
 *  subscription after it; a socket's subscriptions arrive in order, so once
 *  the marker is seen the earlier one has been handled. Last, published
 *  messages are received on a SUB: topic frame, body with "pseq" first,
 *  then "tseq" and "ts", the wall-clock time of publication, last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/out/status.h"
#include "common/zwatch.h"
#include "common/util.h"
#include "proto/proto.h"

#define S_ENDPOINT "inproc://test-broker-status"
#define S_WATCHDOG_MS 10000

typedef struct {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    int closed;
    void *ctx;
    void *xpub;
    void *subs[4]; /* open SUB sockets, closed by the teardown if a test
                    * failed before closing them (or zmq_ctx_term hangs) */
    tw_status_t st;
} s_fix_t;

static void
s_on_watchdog(uv_timer_t *h)
{
    s_fix_t *f = h->data;
    f->expired = 1;
}

static void
s_on_status_closed(tw_zwatch_t *zw)
{
    tw_status_t *st = zw->data;
    s_fix_t *f = (s_fix_t *)((char *)st - offsetof(s_fix_t, st));
    f->closed = 1;
}

static void
s_on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static int
s_setup(void **state)
{
    s_fix_t *f = test_calloc(1, sizeof *f);
    if (uv_loop_init(&f->loop) != 0) {
        return -1;
    }
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    f->ctx = zmq_ctx_new();
    f->xpub = zmq_socket(f->ctx, ZMQ_XPUB);
    int zero = 0;
    zmq_setsockopt(f->xpub, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->xpub, S_ENDPOINT) != 0) {
        return -1;
    }
    if (tw_status_init(&f->loop, &f->st, f->xpub) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *f = *state;
    for (size_t i = 0; i < 4; i++) {
        if (f->subs[i]) {
            zmq_close(f->subs[i]);
        }
    }
    /* The watch first, then the socket (docs/design.md shutdown order). */
    tw_status_close(&f->st, s_on_status_closed);
    uv_close((uv_handle_t *)&f->watchdog, s_on_handle_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = f->closed ? 0 : -1;
    if (uv_loop_close(&f->loop) != 0) {
        rc = -1;
    }
    zmq_close(f->xpub);
    zmq_ctx_term(f->ctx);
    test_free(f);
    return rc;
}

static void *
s_sub(s_fix_t *f)
{
    void *s = zmq_socket(f->ctx, ZMQ_SUB);
    int zero = 0, timeout = S_WATCHDOG_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(s, S_ENDPOINT), 0);
    for (size_t i = 0; i < 4; i++) {
        if (!f->subs[i]) {
            f->subs[i] = s;
            return s;
        }
    }
    fail_msg("too many SUB sockets");
    return NULL;
}

static void
s_close_sub(s_fix_t *f, void *s)
{
    for (size_t i = 0; i < 4; i++) {
        if (f->subs[i] == s) {
            f->subs[i] = NULL;
        }
    }
    zmq_close(s);
}

static void
s_subscribe(void *sub, const char *prefix)
{
    assert_int_equal(
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix)), 0);
}

static void
s_unsubscribe(void *sub, const char *prefix)
{
    assert_int_equal(
        zmq_setsockopt(sub, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix)), 0);
}

/* Turn the loop until tw_status_wants(topic) is `want`, or fail. */
static void
s_wait_wants(s_fix_t *f, const char *topic, int want)
{
    f->expired = 0;
    uv_timer_start(&f->watchdog, s_on_watchdog, S_WATCHDOG_MS, 0);
    while (tw_status_wants(&f->st, topic) != want && !f->expired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->watchdog);
    if (tw_status_wants(&f->st, topic) != want) {
        fail_msg("tw_status_wants(\"%s\") stayed %d", topic, !want);
    }
}

static void
test_nobody_subscribed(void **state)
{
    s_fix_t *f = *state;
    assert_int_equal(f->st.nsubs, 0);
    assert_int_equal(tw_status_wants(&f->st, "task.done"), 0);
    assert_int_equal(tw_status_wants(&f->st, "stats"), 0);
    assert_int_equal(tw_status_wants(&f->st, ""), 0);
    /* A connected SUB that subscribed to nothing changes nothing; a
     * marker subscription proves its (absent) traffic was handled. */
    void *sub = s_sub(f);
    s_subscribe(sub, "marker");
    s_wait_wants(f, "marker", 1);
    assert_int_equal(f->st.nsubs, 1);
    assert_int_equal(tw_status_wants(&f->st, "task.done"), 0);
    s_close_sub(f, sub);
}

static void
test_prefix_matching(void **state)
{
    s_fix_t *f = *state;
    void *sub = s_sub(f);
    s_subscribe(sub, "task.");
    s_wait_wants(f, "task.done", 1);
    assert_int_equal(f->st.nsubs, 1);
    assert_int_equal(tw_status_wants(&f->st, "task.submitted"), 1);
    assert_int_equal(tw_status_wants(&f->st, "task."), 1);
    assert_int_equal(tw_status_wants(&f->st, "task"), 0);
    assert_int_equal(tw_status_wants(&f->st, "tas"), 0);
    assert_int_equal(tw_status_wants(&f->st, "worker.up"), 0);
    assert_int_equal(tw_status_wants(&f->st, "stats"), 0);
    assert_int_equal(tw_status_wants(&f->st, "Task.done"), 0);

    /* A full topic as the prefix. */
    s_subscribe(sub, "stats");
    s_wait_wants(f, "stats", 1);
    assert_int_equal(f->st.nsubs, 2);
    assert_int_equal(tw_status_wants(&f->st, "stat"), 0);

    /* Dropping one leaves the other. */
    s_unsubscribe(sub, "task.");
    s_wait_wants(f, "task.done", 0);
    assert_int_equal(tw_status_wants(&f->st, "stats"), 1);
    assert_int_equal(f->st.nsubs, 1);

    /* The empty prefix is everything. */
    s_subscribe(sub, "");
    s_wait_wants(f, "worker.down", 1);
    assert_int_equal(tw_status_wants(&f->st, "task.done"), 1);
    assert_int_equal(tw_status_wants(&f->st, ""), 1);
    s_unsubscribe(sub, "");
    s_wait_wants(f, "worker.down", 0);
    assert_int_equal(tw_status_wants(&f->st, "stats"), 1);
    s_unsubscribe(sub, "stats");
    s_wait_wants(f, "stats", 0);
    assert_int_equal(f->st.nsubs, 0);
    s_close_sub(f, sub);
}

static void
test_two_subscribers_same_prefix(void **state)
{
    s_fix_t *f = *state;
    void *a = s_sub(f);
    void *b = s_sub(f);
    s_subscribe(a, "worker.");
    s_wait_wants(f, "worker.up", 1);
    s_subscribe(b, "worker.");
    s_subscribe(b, "marker-b");
    s_wait_wants(f, "marker-b", 1);
    assert_int_equal(f->st.nsubs, 2); /* "worker." once */

    /* a leaves the prefix; b still wants it. */
    s_unsubscribe(a, "worker.");
    s_subscribe(a, "marker-a");
    s_wait_wants(f, "marker-a", 1);
    assert_int_equal(tw_status_wants(&f->st, "worker.up"), 1);

    /* b leaves it too: nobody does. */
    s_unsubscribe(b, "worker.");
    s_wait_wants(f, "worker.up", 0);
    assert_int_equal(tw_status_wants(&f->st, "marker-a"), 1);
    assert_int_equal(tw_status_wants(&f->st, "marker-b"), 1);
    s_close_sub(f, a);
    s_close_sub(f, b);
}

static void
test_subscriber_goes_away(void **state)
{
    s_fix_t *f = *state;
    /* A monitor that disconnects without unsubscribing must not leave
     * per-task events switched on. */
    void *sub = s_sub(f);
    s_subscribe(sub, "task.done");
    s_subscribe(sub, "stats");
    s_wait_wants(f, "stats", 1);
    assert_int_equal(tw_status_wants(&f->st, "task.done"), 1);
    s_close_sub(f, sub);
    s_wait_wants(f, "task.done", 0);
    s_wait_wants(f, "stats", 0);
    assert_int_equal(f->st.nsubs, 0);
}

/* The "tseq" of the message s_recv_pseq read last. */
static uint64_t s_tseq;

/* Receive one published message on `sub`: its topic and its "pseq" (and
 * its "tseq" in s_tseq). */
static uint64_t
s_recv_pseq(void *sub, const char *topic, uint64_t *id)
{
    tw_zframes_t m;
    assert_int_equal(tw_zrecv_frames(sub, &m, 0), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(zmq_msg_size(&m.f[0]), strlen(topic));
    assert_memory_equal(zmq_msg_data(&m.f[0]), topic, strlen(topic));

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, zmq_msg_data(&m.f[1]),
                                         zmq_msg_size(&m.f[1]), &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, zmq_msg_size(&m.f[1])); /* no header, one map */
    const msgpack_object *o = &up.data;
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o->via.map.size, 4);
    const msgpack_object_kv *kv = o->via.map.ptr;
    assert_int_equal(kv[0].key.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[0].key.via.str.size, 4);
    assert_memory_equal(kv[0].key.via.str.ptr, "pseq", 4);
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t pseq = kv[0].val.via.u64;
    assert_memory_equal(kv[1].key.via.str.ptr, "id", 2);
    *id = kv[1].val.via.u64;
    assert_memory_equal(kv[2].key.via.str.ptr, "tseq", 4);
    assert_int_equal(kv[2].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    s_tseq = kv[2].val.via.u64;
    /* Every status message carries its time (Unix ms, wall clock). */
    assert_memory_equal(kv[3].key.via.str.ptr, "ts", 2);
    assert_int_equal(kv[3].key.via.str.size, 2);
    assert_int_equal(kv[3].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t now = tw_wall_ms();
    assert_true(kv[3].val.via.u64 <= now && kv[3].val.via.u64 + 60000 > now);
    msgpack_unpacked_destroy(&up);
    tw_zframes_close(&m);
    return pseq;
}

static void
s_publish(s_fix_t *f, const char *topic, uint64_t id)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&f->st, &e, 1);
    tw_enc_cstr(&e, "id");
    tw_enc_uint(&e, id);
    tw_status_send(&f->st, topic, &e);
    tw_enc_free(&e);
}

static void
test_publish(void **state)
{
    s_fix_t *f = *state;
    void *sub = s_sub(f);
    s_subscribe(sub, "task.");
    s_wait_wants(f, "task.done", 1);
    assert_int_equal(f->st.pseq, 0);

    uint64_t id;
    s_publish(f, "task.done", 7);
    assert_int_equal(f->st.pseq, 1);
    assert_int_equal(s_recv_pseq(sub, "task.done", &id), 1);
    assert_int_equal(id, 7);
    s_publish(f, "task.submitted", 8);
    assert_int_equal(s_recv_pseq(sub, "task.submitted", &id), 2);
    assert_int_equal(id, 8);

    /* A topic nobody wants still takes a number, so the subscriber sees a
     * gap (3 went to nobody). */
    s_publish(f, "worker.up", 9);
    s_publish(f, "task.done", 10);
    assert_int_equal(f->st.pseq, 4);
    assert_int_equal(s_recv_pseq(sub, "task.done", &id), 4);
    assert_int_equal(id, 10);
    assert_int_equal(f->st.dropped, 0);
    s_close_sub(f, sub);
}

/* ops: a subscriber to a prefix sees pseq jump over topics it did not ask
 * for, while each topic's tseq runs 1, 2, 3... without a hole: a gap in
 * tseq is a loss, a gap in pseq is not. */
static void
test_tseq_per_topic(void **state)
{
    s_fix_t *f = *state;
    void *sub = s_sub(f);
    s_subscribe(sub, "task.");
    s_wait_wants(f, "task.done", 1);
    static const char *const topics[] = {
        "task.done", "worker.up", "task.done", "stats", "task.submitted",
        "worker.up", "task.done", "task.submitted", "stats", "task.done"};
    for (size_t i = 0; i < 10; i++) {
        s_publish(f, topics[i], i);
    }
    uint64_t done = 0, submitted = 0, last_pseq = 0, id;
    int pseq_gaps = 0;
    for (int k = 0; k < 6; k++) {
        /* Messages arrive in publishing order; read each as its topic. */
        const char *want = NULL;
        for (size_t i = 0, seen = 0; i < 10; i++) {
            if (strncmp(topics[i], "task.", 5) == 0 && seen++ == (size_t)k) {
                want = topics[i];
            }
        }
        uint64_t pseq = s_recv_pseq(sub, want, &id);
        pseq_gaps += pseq != last_pseq + 1;
        last_pseq = pseq;
        uint64_t *n = strcmp(want, "task.done") == 0 ? &done : &submitted;
        assert_int_equal(s_tseq, *n + 1);
        *n = s_tseq;
    }
    assert_int_equal(done, 4);
    assert_int_equal(submitted, 2);
    assert_true(pseq_gaps >= 3);
    /* Topics nobody received are counted too: the snapshot knows them. */
    assert_int_equal(tw_tseq_last(&f->st.tseq, "worker.up", 9), 2);
    assert_int_equal(tw_tseq_last(&f->st.tseq, "stats", 5), 2);
    assert_int_equal(tw_tseq_count(&f->st.tseq), 4);
    s_close_sub(f, sub);
}

/* The counter table alone: forget, forget by prefix, encode. */
static void
test_tseq_table(void **state)
{
    (void)state;
    tw_tseq_t t;
    tw_tseq_init(&t);
    assert_int_equal(tw_tseq_last(&t, "a", 1), 0);
    assert_int_equal(tw_tseq_next(&t, "station.a.running", 17), 1);
    assert_int_equal(tw_tseq_next(&t, "station.a.running", 17), 2);
    assert_int_equal(tw_tseq_next(&t, "station.a.b.running", 19), 1);
    assert_int_equal(tw_tseq_next(&t, "s2n.a", 5), 1);
    char topic[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(topic, sizeof topic, "group.p.g%d.empty", i);
        assert_int_equal(tw_tseq_next(&t, topic, (size_t)n), 1);
    }
    assert_int_equal(tw_tseq_count(&t), 103);
    assert_int_equal(tw_tseq_forget(&t, "s2n.a", 5), 1);
    assert_int_equal(tw_tseq_forget(&t, "s2n.a", 5), 0);
    assert_int_equal(tw_tseq_forget_prefix(&t, "group.", 6), 100);
    assert_int_equal(tw_tseq_count(&t), 2);
    /* A topic forgotten and seen again counts from 1. */
    assert_int_equal(tw_tseq_next(&t, "s2n.a", 5), 1);

    tw_enc_t e;
    tw_enc_init(&e);
    tw_tseq_encode(&t, &e);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, e.sb.data, e.sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(up.data.via.map.size, 3);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        sum += up.data.via.map.ptr[i].val.via.u64;
    }
    assert_int_equal(sum, 2 + 1 + 1);
    msgpack_unpacked_destroy(&up);
    tw_enc_free(&e);
    tw_tseq_free(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nobody_subscribed, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_matching, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_two_subscribers_same_prefix,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_goes_away, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_publish, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tseq_per_topic, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_tseq_table),
    };
    return cmocka_run_group_tests_name("broker_status", tests, NULL, NULL);
}
