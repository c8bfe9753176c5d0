/*  tests/unit/test_zwatch.c - a ZeroMQ socket inside a libuv loop.
 *
 *  The regressions STYLE.md section 3 asks for, on a real uv loop over
 *  inproc and over TCP loopback:
 *
 *    burst     a peer thread sends 10,000 messages into a ROUTER whose
 *              high-water marks are 100; every one must arrive, in order,
 *              through the zwatch callback, in batches of at most the
 *              budget
 *    ping-pong send-then-expect-reply with no other traffic, thousands of
 *              times, with both ends in one loop or the echo in a thread:
 *              the classic edge-trigger hang. A watchdog fails the test
 *              when 5 s pass without one more message: a hang stalls, while
 *              a slow run (valgrind on a busy machine) only takes longer
 *    refusals  tw_zwatch_send gives TW_EAGAIN at the high-water mark and
 *              TW_ENOENT for an unroutable ROUTER_MANDATORY peer, and the
 *              caller still owns the frames. The high-water mark is
 *              reached on an ipc:// path in a directory of the test's own,
 *              which nothing can listen on
 *    lifecycle close_cb fires exactly once, stop keeps messages queued,
 *              over-long messages are truncated and flagged
 *
 *  Nothing sleeps: the loop runs until a callback or the watchdog stops it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/zwatch.h"

#define S_WATCHDOG_MS 5000
#define S_BURST 10000
#define S_HWM 100

/* ------------------------------------------------------------ fixture --- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t watchdog;
    uint64_t watchdog_ms;
    int timed_out;
    void *ctx;
} s_fx_t;

static int s_endpoint_seq;

static void
s_on_watchdog(uv_timer_t *t)
{
    s_fx_t *fx = t->data;
    fx->timed_out = 1;
    uv_stop(&fx->loop);
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0) {
        return -1;
    }
    fx->ctx = zmq_ctx_new();
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = fx;
    *state = fx;
    return fx->ctx ? 0 : -1;
}

static void
s_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    uv_timer_stop(&fx->watchdog);
    if (!uv_is_closing((uv_handle_t *)&fx->watchdog)) {
        uv_close((uv_handle_t *)&fx->watchdog, NULL);
    }
    /* A failed test may leave handles open; close them all. */
    uv_walk(&fx->loop, s_walk_close, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    zmq_ctx_term(fx->ctx);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* Run the loop until a callback stops it or the watchdog fires.
 *
 * The watchdog bounds the whole run, not each step, on purpose: when the
 * adapter loses an edge, the watchdog's own wake-up lets the check phase
 * deliver the stuck message before the timer callback runs, so a "time
 * since the last progress" watchdog would be reset by the very hang it
 * is meant to catch, and the test would merely crawl. */
static void
s_run(s_fx_t *fx, uint64_t watchdog_ms)
{
    fx->timed_out = 0;
    fx->watchdog_ms = watchdog_ms;
    uv_timer_start(&fx->watchdog, s_on_watchdog, watchdog_ms, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&fx->watchdog);
}

/* A message arrived: the watchdog counts its time from now, so that it
 * fires on a stall, never on a run that is merely slow. */
static void
s_progress(s_fx_t *fx)
{
    uv_timer_start(&fx->watchdog, s_on_watchdog, fx->watchdog_ms, 0);
}

static void *
s_socket(s_fx_t *fx, int type, int hwm)
{
    void *s = zmq_socket(fx->ctx, type);
    assert_non_null(s);
    int linger = 0;
    assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger),
                     0);
    if (hwm > 0) {
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    return s;
}

/* Bind `s` on a fresh endpoint of `transport` ("tcp" or "inproc") and
 * write the connectable address to ep. */
static void
s_bind(void *s, const char *transport, char *ep, size_t eplen)
{
    if (strcmp(transport, "tcp") == 0) {
        assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
        size_t len = eplen;
        assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    } else {
        snprintf(ep, eplen, "inproc://zwatch-%d", ++s_endpoint_seq);
        assert_int_equal(zmq_bind(s, ep), 0);
    }
}

/* Close bookkeeping shared by the tests. */
typedef struct {
    int closed;
} s_closer_t;

static void
s_on_close(tw_zwatch_t *zw)
{
    s_closer_t *c = zw->data;
    c->closed++;
}

/* Close `zw` and run the loop until its callback fired. */
static void
s_close_watch(s_fx_t *fx, tw_zwatch_t *zw)
{
    s_closer_t *c = zw->data;
    int before = c->closed;
    tw_zwatch_close(zw, s_on_close);
    tw_zwatch_close(zw, s_on_close); /* idempotent */
    while (c->closed == before) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(c->closed, before + 1);
}

/* -------------------------------------------------------------- burst --- */

typedef struct {
    void *ctx;
    char ep[128];
    int n;
    int rc;
} s_sender_t;

/* The peer: a DEALER with small HWMs that sends n messages, blocking when
 * the pipe is full, each [header-ish frame][8-byte sequence number]. */
static void *
s_sender_main(void *arg)
{
    s_sender_t *s = arg;
    void *sock = zmq_socket(s->ctx, ZMQ_DEALER);
    int hwm = S_HWM, linger = 10000;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, s->ep) != 0) {
        s->rc = -1;
        zmq_close(sock);
        return NULL;
    }
    for (uint64_t i = 0; i < (uint64_t)s->n; i++) {
        if (zmq_send(sock, "TW", 2, ZMQ_SNDMORE) != 2 ||
            zmq_send(sock, &i, sizeof i, 0) != (int)sizeof i) {
            s->rc = -2;
            break;
        }
    }
    zmq_close(sock);
    return NULL;
}

typedef struct {
    s_closer_t closer; /* first: zw->data points here */
    s_fx_t *fx;
    uint64_t got;
    uint64_t expect_n;
    int out_of_order;
    int bad_shape;
    unsigned batch;     /* messages since the last drained call */
    unsigned max_batch;
    unsigned drained_calls;
} s_burst_t;

static void
s_burst_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    s_burst_t *b = zw->data;
    /* ROUTER: [identity]["TW"][seq]. */
    if (msg->n != 3 || msg->truncated || zmq_msg_size(&msg->f[2]) != 8) {
        b->bad_shape++;
    } else {
        uint64_t seq;
        memcpy(&seq, zmq_msg_data(&msg->f[2]), sizeof seq);
        if (seq != b->got) {
            b->out_of_order++;
        }
    }
    b->got++;
    b->batch++;
    s_progress(b->fx);
    if (b->got == b->expect_n) {
        uv_stop(&b->fx->loop);
    }
}

static void
s_burst_drained(tw_zwatch_t *zw)
{
    s_burst_t *b = zw->data;
    if (b->batch > b->max_batch) {
        b->max_batch = b->batch;
    }
    b->batch = 0;
    b->drained_calls++;
}

static void
s_burst(s_fx_t *fx, const char *transport)
{
    void *router = s_socket(fx, ZMQ_ROUTER, S_HWM);
    s_sender_t snd = {fx->ctx, "", S_BURST, 0};
    s_bind(router, transport, snd.ep, sizeof snd.ep);

    s_burst_t b;
    memset(&b, 0, sizeof b);
    b.fx = fx;
    b.expect_n = S_BURST;
    tw_zwatch_t zw;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, router), 0);
    zw.data = &b;
    assert_int_equal(tw_zwatch_start(&zw, s_burst_msg, s_burst_drained), 0);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_sender_main, &snd), 0);
    /* A stall of 60 s: the sender thread may be starved for a while. */
    s_run(fx, 60000);
    int timed_out = fx->timed_out;
    if (timed_out) {
        /* Unblock the sender so it can be joined: drain by hand. */
        int timeo = 2000;
        zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
        tw_zframes_t m;
        while (b.got < S_BURST &&
               tw_zrecv_frames(router, &m, 0) == 0) {
            tw_zframes_close(&m);
            b.got++;
        }
    }
    pthread_join(th, NULL);
    s_close_watch(fx, &zw);
    zmq_close(router);

    assert_false(timed_out);
    assert_int_equal(snd.rc, 0);
    assert_int_equal(b.got, S_BURST);
    assert_int_equal(zw.received, S_BURST);
    assert_int_equal(b.bad_shape, 0);
    assert_int_equal(b.out_of_order, 0);
    assert_true(b.drained_calls > 0);
    assert_true(b.max_batch <= TW_ZWATCH_BUDGET);
    assert_int_equal(b.closer.closed, 1);
}

static void
test_burst_over_hwm_tcp(void **state)
{
    s_burst(*state, "tcp");
}

static void
test_burst_over_hwm_inproc(void **state)
{
    s_burst(*state, "inproc");
}

/* ---------------------------------------------------------- ping-pong --- */

typedef struct {
    s_closer_t closer;
    s_fx_t *fx;
    tw_zwatch_t *self;
    int rounds;      /* round trips wanted */
    int done;        /* replies received */
    int send_errors;
    int mismatched;
} s_pp_t;

static int
s_pp_send(s_pp_t *p)
{
    uint32_t n = (uint32_t)p->done;
    const void *bufs[2] = {"ping", &n};
    const size_t lens[2] = {4, sizeof n};
    return tw_zwatch_sendb(p->self, bufs, lens, 2);
}

/* DEALER side: each reply triggers the next request from inside the
 * callback, so the only thing that can wake the loop is that reply. */
static void
s_pp_dealer_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    s_pp_t *p = zw->data;
    uint32_t n = 0;
    if (msg->n == 2 && zmq_msg_size(&msg->f[1]) == sizeof n) {
        memcpy(&n, zmq_msg_data(&msg->f[1]), sizeof n);
    }
    if (msg->n != 2 || n != (uint32_t)p->done) {
        p->mismatched++;
    }
    p->done++;
    s_progress(p->fx);
    if (p->done == p->rounds) {
        uv_stop(&p->fx->loop);
        return;
    }
    if (s_pp_send(p) != 0) {
        p->send_errors++;
        uv_stop(&p->fx->loop);
    }
}

/* ROUTER side in the same loop: echo every message back as it came. */
static void
s_pp_router_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    s_pp_t *p = zw->data;
    if (tw_zwatch_send(zw, msg->f, msg->n) != 0) {
        p->send_errors++;
        uv_stop(&p->fx->loop);
    }
}

static void
s_pingpong_one_loop(s_fx_t *fx, const char *transport, int rounds)
{
    char ep[128];
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    s_bind(router, transport, ep, sizeof ep);
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    s_pp_t pd, pr;
    memset(&pd, 0, sizeof pd);
    memset(&pr, 0, sizeof pr);
    tw_zwatch_t zd, zr;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zd, dealer), 0);
    assert_int_equal(tw_zwatch_init(&fx->loop, &zr, router), 0);
    pd.fx = pr.fx = fx;
    pd.self = &zd;
    pr.self = &zr;
    pd.rounds = rounds;
    zd.data = &pd;
    zr.data = &pr;
    tw_zwatch_start(&zd, s_pp_dealer_msg, NULL);
    tw_zwatch_start(&zr, s_pp_router_msg, NULL);

    /* The first request goes out before the loop ever runs. */
    assert_int_equal(s_pp_send(&pd), 0);
    s_run(fx, S_WATCHDOG_MS);
    int timed_out = fx->timed_out;

    s_close_watch(fx, &zd);
    s_close_watch(fx, &zr);
    zmq_close(dealer);
    zmq_close(router);
    if (timed_out) {
        fail_msg("%s ping-pong hung after %d of %d round trips", transport,
                 pd.done, rounds);
    }
    assert_int_equal(pd.done, rounds);
    assert_int_equal(pd.mismatched, 0);
    assert_int_equal(pd.send_errors + pr.send_errors, 0);
    assert_int_equal(zd.sent, (uint64_t)rounds);
    assert_int_equal(zr.received, (uint64_t)rounds);
}

static void
test_pingpong_one_loop_inproc(void **state)
{
    s_pingpong_one_loop(*state, "inproc", 5000);
}

static void
test_pingpong_one_loop_tcp(void **state)
{
    s_pingpong_one_loop(*state, "tcp", 2000);
}

/* Echo in a thread: only the loop's DEALER is watched. */
typedef struct {
    void *router; /* bound by the main thread, used only by this one */
    int rounds;
    int rc;
} s_echo_t;

static void *
s_echo_main(void *arg)
{
    s_echo_t *e = arg;
    for (int i = 0; i < e->rounds; i++) {
        tw_zframes_t m;
        if (tw_zrecv_frames(e->router, &m, 0) != 0) {
            e->rc = -1;
            return NULL;
        }
        if (tw_zsend_frames(e->router, m.f, m.n, 0) != 0) {
            e->rc = -2;
            tw_zframes_close(&m);
            return NULL;
        }
        tw_zframes_close(&m);
    }
    return NULL;
}

static void
s_pingpong_thread(s_fx_t *fx, const char *transport, int rounds)
{
    char ep[128];
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    int rcvtimeo = 10000; /* the echo thread must end even on failure */
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
    s_bind(router, transport, ep, sizeof ep);
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    s_echo_t echo = {router, rounds, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_echo_main, &echo), 0);

    s_pp_t pd;
    memset(&pd, 0, sizeof pd);
    tw_zwatch_t zd;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zd, dealer), 0);
    pd.fx = fx;
    pd.self = &zd;
    pd.rounds = rounds;
    zd.data = &pd;
    tw_zwatch_start(&zd, s_pp_dealer_msg, NULL);
    assert_int_equal(s_pp_send(&pd), 0);
    s_run(fx, S_WATCHDOG_MS);
    int timed_out = fx->timed_out;

    s_close_watch(fx, &zd);
    zmq_close(dealer); /* linger 0: the echo thread's recv times out */
    pthread_join(th, NULL);
    zmq_close(router);
    if (timed_out) {
        fail_msg("%s ping-pong with a thread hung after %d of %d round "
                 "trips",
                 transport, pd.done, rounds);
    }
    assert_int_equal(pd.done, rounds);
    assert_int_equal(pd.mismatched, 0);
    assert_int_equal(pd.send_errors, 0);
    assert_int_equal(echo.rc, 0);
}

static void
test_pingpong_thread_inproc(void **state)
{
    s_pingpong_thread(*state, "inproc", 3000);
}

static void
test_pingpong_thread_tcp(void **state)
{
    s_pingpong_thread(*state, "tcp", 1000);
}

/* ----------------------------------------------------------- refusals --- */

static void
s_init_frames(zmq_msg_t *f, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init_size(&f[i], strlen(text));
        memcpy(zmq_msg_data(&f[i]), text, strlen(text));
    }
}

static void
s_ignore_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    (void)zw;
    (void)msg;
}

static void
test_send_eagain_at_hwm(void **state)
{
    s_fx_t *fx = *state;
    /* A DEALER whose peer is not there: messages queue for the pending
     * connection up to the HWM, then the socket refuses. The endpoint is
     * an ipc:// path in a directory of our own, which nothing listens on
     * or can. (A TCP port bound and closed again is no such place:
     * zmq_close is asynchronous, so the closing listener may still take
     * the connection, and another process may take the freed port;
     * either way the messages leave and the HWM is never reached, which
     * is what happened under valgrind on a busy machine.) */
    char dir[] = "/tmp/tw-zwatch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/nobody", dir);

    const int hwm = 10;
    void *dealer = s_socket(fx, ZMQ_DEALER, hwm);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    tw_zwatch_t zw;
    s_closer_t c = {0};
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, dealer), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_ignore_msg, NULL);

    int accepted = 0, rc = 0;
    for (int i = 0; i < 10 * hwm; i++) {
        zmq_msg_t f[2];
        s_init_frames(f, 2, "payload");
        rc = tw_zwatch_send(&zw, f, 2);
        if (rc != 0) {
            /* Refused: the caller still owns both frames, intact. */
            assert_int_equal(zmq_msg_size(&f[0]), 7);
            assert_memory_equal(zmq_msg_data(&f[1]), "payload", 7);
            zmq_msg_close(&f[0]);
            zmq_msg_close(&f[1]);
            break;
        }
        assert_int_equal(zmq_msg_size(&f[0]), 0); /* handed over */
        accepted++;
    }
    assert_int_equal(rc, TW_EAGAIN);
    assert_true(accepted >= 1 && accepted <= 2 * hwm);
    assert_int_equal(zw.sent, (uint64_t)accepted);
    assert_int_equal(zw.send_fail, 1);
    /* Back-pressure is stable: asking again gives the same answer. */
    const void *bufs[1] = {"x"};
    const size_t lens[1] = {1};
    assert_int_equal(tw_zwatch_sendb(&zw, bufs, lens, 1), TW_EAGAIN);
    assert_int_equal(zw.send_fail, 2);

    s_close_watch(fx, &zw);
    zmq_close(dealer);
    assert_int_equal(rmdir(dir), 0);
}

static void
test_send_eagain_immediate(void **state)
{
    s_fx_t *fx = *state;
    /* With ZMQ_IMMEDIATE and no connection there is no pipe at all. */
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    int one = 1;
    zmq_setsockopt(dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    assert_int_equal(zmq_connect(dealer, "tcp://127.0.0.1:1"), 0);
    tw_zwatch_t zw;
    s_closer_t c = {0};
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, dealer), 0);
    zw.data = &c;
    const void *bufs[2] = {"TW", "{}"};
    const size_t lens[2] = {2, 2};
    assert_int_equal(tw_zwatch_sendb(&zw, bufs, lens, 2), TW_EAGAIN);
    s_close_watch(fx, &zw);
    zmq_close(dealer);
}

static void
test_send_enoent_router_mandatory(void **state)
{
    s_fx_t *fx = *state;
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    int one = 1;
    assert_int_equal(zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one,
                                    sizeof one),
                     0);
    char ep[128];
    s_bind(router, "inproc", ep, sizeof ep);
    tw_zwatch_t zw;
    s_closer_t c = {0};
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, router), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_ignore_msg, NULL);

    zmq_msg_t f[3];
    s_init_frames(f, 3, "nobody");
    assert_int_equal(tw_zwatch_send(&zw, f, 3), TW_ENOENT);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(zmq_msg_size(&f[i]), 6); /* still ours */
        zmq_msg_close(&f[i]);
    }
    assert_int_equal(zw.send_fail, 1);
    assert_int_equal(zw.sent, 0);

    /* A peer that is there is routable. */
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "peer", 4);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    /* inproc connects synchronously; the routing id arrives with the
     * first message from the peer. */
    assert_int_equal(zmq_send(dealer, "hi", 2, 0), 2);
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 5000), 1);
    tw_zframes_t in;
    assert_int_equal(tw_zrecv_frames(router, &in, ZMQ_DONTWAIT), 0);
    tw_zframes_close(&in);
    const void *bufs[2] = {"peer", "back"};
    const size_t lens[2] = {4, 4};
    assert_int_equal(tw_zwatch_sendb(&zw, bufs, lens, 2), 0);
    char buf[8];
    assert_int_equal(zmq_recv(dealer, buf, sizeof buf, 0), 4);
    assert_memory_equal(buf, "back", 4);

    s_close_watch(fx, &zw);
    zmq_close(dealer);
    zmq_close(router);
}

static void
test_sendb_too_many_frames(void **state)
{
    s_fx_t *fx = *state;
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    tw_zwatch_t zw;
    s_closer_t c = {0};
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, dealer), 0);
    zw.data = &c;
    const void *bufs[TW_ZWATCH_MAXFRAMES + 1];
    size_t lens[TW_ZWATCH_MAXFRAMES + 1];
    for (int i = 0; i <= TW_ZWATCH_MAXFRAMES; i++) {
        bufs[i] = "f";
        lens[i] = 1;
    }
    assert_int_equal(tw_zwatch_sendb(&zw, bufs, lens,
                                     TW_ZWATCH_MAXFRAMES + 1),
                     TW_EINVAL);
    s_close_watch(fx, &zw);
    zmq_close(dealer);
}

/* ---------------------------------------------------------- lifecycle --- */

static void
test_close_cb_once(void **state)
{
    s_fx_t *fx = *state;
    void *sock = s_socket(fx, ZMQ_DEALER, 0);
    s_closer_t c = {0};

    /* Closed without ever starting. */
    tw_zwatch_t zw;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, sock), 0);
    zw.data = &c;
    tw_zwatch_close(&zw, s_on_close);
    tw_zwatch_close(&zw, s_on_close);
    assert_int_equal(c.closed, 0); /* asynchronous, like uv_close */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closed, 1);

    /* Started, stopped, closed; a later run adds no second call. */
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, sock), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_ignore_msg, NULL);
    tw_zwatch_stop(&zw);
    tw_zwatch_close(&zw, s_on_close);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(c.closed, 2);

    /* Closed while active, with a NULL callback: no crash, no call. */
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, sock), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_ignore_msg, NULL);
    tw_zwatch_close(&zw, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closed, 2);
    zmq_close(sock);
}

typedef struct {
    s_closer_t closer;
    s_fx_t *fx;
    int got;
    int want;
    int truncated;
    size_t nframes;
    tw_zwatch_t *close_me; /* close from inside the callback */
} s_count_t;

static void
s_count_msg(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    s_count_t *c = zw->data;
    c->got++;
    c->truncated += msg->truncated;
    c->nframes = msg->n;
    if (c->close_me) {
        tw_zwatch_close(c->close_me, s_on_close);
        c->close_me = NULL;
    }
    if (c->got == c->want) {
        uv_stop(&c->fx->loop);
    }
}

static void
test_stop_keeps_messages_queued(void **state)
{
    s_fx_t *fx = *state;
    char ep[128];
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    s_bind(router, "inproc", ep, sizeof ep);
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    s_count_t c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.want = 5;
    tw_zwatch_t zw;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, router), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_count_msg, NULL);
    tw_zwatch_stop(&zw);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(zmq_send(dealer, "m", 1, 0), 1);
    }
    /* Stopped: turning the loop delivers nothing (inproc has queued the
     * messages already, so there is nothing to wait for). */
    for (int i = 0; i < 10; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(c.got, 0);
    /* Started again: all five, without any new traffic. */
    tw_zwatch_start(&zw, s_count_msg, NULL);
    s_run(fx, S_WATCHDOG_MS);
    assert_false(fx->timed_out);
    assert_int_equal(c.got, 5);

    s_close_watch(fx, &zw);
    zmq_close(dealer);
    zmq_close(router);
}

static void
test_truncated_message(void **state)
{
    s_fx_t *fx = *state;
    char ep[128];
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    s_bind(router, "inproc", ep, sizeof ep);
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    s_count_t c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.want = 2;
    tw_zwatch_t zw;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, router), 0);
    zw.data = &c;
    tw_zwatch_start(&zw, s_count_msg, NULL);
    /* Identity + 9 frames > TW_ZWATCH_MAXFRAMES, then a normal message:
     * the extra frames are dropped without desynchronising the next. */
    for (int i = 0; i < 9; i++) {
        zmq_send(dealer, "x", 1, i < 8 ? ZMQ_SNDMORE : 0);
    }
    zmq_send(dealer, "y", 1, 0);
    s_run(fx, S_WATCHDOG_MS);
    assert_false(fx->timed_out);
    assert_int_equal(c.got, 2);
    assert_int_equal(c.truncated, 1);
    assert_int_equal(c.nframes, 2); /* the second: identity + "y" */

    s_close_watch(fx, &zw);
    zmq_close(dealer);
    zmq_close(router);
}

static void
test_close_from_callback(void **state)
{
    s_fx_t *fx = *state;
    char ep[128];
    void *router = s_socket(fx, ZMQ_ROUTER, 0);
    s_bind(router, "inproc", ep, sizeof ep);
    void *dealer = s_socket(fx, ZMQ_DEALER, 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    s_count_t c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.want = 1000; /* never reached: the watch closes after the first */
    tw_zwatch_t zw;
    assert_int_equal(tw_zwatch_init(&fx->loop, &zw, router), 0);
    zw.data = &c;
    c.close_me = &zw;
    tw_zwatch_start(&zw, s_count_msg, NULL);
    for (int i = 0; i < 10; i++) {
        zmq_send(dealer, "m", 1, 0);
    }
    /* Closing from the callback ends delivery at once; with no handle
     * left but the stopped watchdog, the loop returns by itself. */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.got, 1);
    assert_int_equal(c.closer.closed, 1);
    zmq_close(dealer);
    zmq_close(router);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_over_hwm_tcp, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_burst_over_hwm_inproc, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pingpong_one_loop_inproc,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pingpong_one_loop_tcp, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pingpong_thread_inproc, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pingpong_thread_tcp, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_send_eagain_at_hwm, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_send_eagain_immediate, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_send_enoent_router_mandatory,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sendb_too_many_frames, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_close_cb_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_stop_keeps_messages_queued,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_message, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("zwatch", tests, NULL, NULL);
}
