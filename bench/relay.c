/*  bench/relay.c - the raw ZeroMQ relay baseline (see relay.h).
 *
 *  Threads and sockets: the forwarder thread owns both ROUTERs and runs a
 *  zmq_poll loop over them; the worker thread owns the worker DEALER and
 *  echoes every message; the calling thread owns the client DEALER. No
 *  socket is touched by more than one thread. The forwarder and worker
 *  stop when the caller shuts their contexts down (every blocking call
 *  then fails with ETERM).
 *
 *  High-water marks are off (0) and the ROUTERs are "mandatory", so a
 *  full pipe makes a sender wait instead of dropping: the client's window
 *  bounds what is in flight, hence memory.
 *
 *  Compiled twice: into the bench-relay program (with TW_RELAY_MAIN, which
 *  adds main() below) and into the library the taskwheel benchmarks link
 *  to run the same baseline in the same run.
 */
#include "bench/relay.h"
#include "bench/bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_WORKER_ID "relay-worker"
#define S_HELLO "hello"
#define S_BUDGET 256        /* messages per socket per poll round */
#define S_RECV_TIMEOUT 10000 /* ms the client waits before giving up */

typedef struct {
    void *fctx; /* forwarder's context */
    void *wctx; /* worker's context */
    pthread_t fwd, wrk;
    int fwd_started, wrk_started;
    int front_port, back_port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready; /* 1 = endpoints below are set, -1 = forwarder failed */
    char front_ep[256];
    char back_ep[256];
} s_relay_t;

static void
s_sockopts(void *s)
{
    int zero = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
}

static int
s_bind(void *s, int port, char *ep, size_t eplen)
{
    char want[64];
    if (port > 0) {
        snprintf(want, sizeof want, "tcp://127.0.0.1:%d", port);
    } else {
        snprintf(want, sizeof want, "tcp://127.0.0.1:*");
    }
    if (zmq_bind(s, want) != 0) {
        fprintf(stderr, "relay: bind %s: %s\n", want, zmq_strerror(errno));
        return -1;
    }
    size_t len = eplen;
    return zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
}

static void
s_publish(s_relay_t *r, int state)
{
    pthread_mutex_lock(&r->mu);
    r->ready = state;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Move the rest of a multipart message from `in` to `out`, frame by
 * frame, without copying (zmq_msg_send takes the frame's content). The
 * first frame is already in `msg`. Returns 0 or -1 with errno set. */
static int
s_pass(void *in, void *out, zmq_msg_t *msg)
{
    for (;;) {
        int more = zmq_msg_more(msg);
        if (zmq_msg_send(msg, out, more ? ZMQ_SNDMORE : 0) < 0) {
            return -1;
        }
        if (!more) {
            return 0;
        }
        /* The parts of a multipart message arrive together. */
        if (zmq_msg_recv(msg, in, 0) < 0) {
            return -1;
        }
    }
}

static void *
s_forwarder(void *arg)
{
    s_relay_t *r = arg;
    void *front = zmq_socket(r->fctx, ZMQ_ROUTER);
    void *back = zmq_socket(r->fctx, ZMQ_ROUTER);
    int one = 1;
    s_sockopts(front);
    s_sockopts(back);
    zmq_setsockopt(front, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(back, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (s_bind(front, r->front_port, r->front_ep, sizeof r->front_ep) != 0
        || s_bind(back, r->back_port, r->back_ep, sizeof r->back_ep) != 0) {
        s_publish(r, -1);
        goto out;
    }
    s_publish(r, 1);

    /* The worker says hello once; its routing id is the only state. Until
     * then client requests wait in the front ROUTER's queue. */
    char wid[256];
    int wlen = zmq_recv(back, wid, sizeof wid, 0);
    if (wlen <= 0 || wlen > (int)sizeof wid) {
        goto out;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, back, 0) >= 0 && zmq_msg_more(&msg)) {
        /* The hello body; nothing to do with it. */
    }

    zmq_pollitem_t items[2] = {{front, 0, ZMQ_POLLIN, 0},
                               {back, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            break; /* ETERM: the caller is done */
        }
        int failed = 0;
        /* Client -> worker: [client-id][payload] becomes
         * [worker-id][client-id][payload]. */
        for (int i = 0; i < S_BUDGET && (items[0].revents & ZMQ_POLLIN);
             i++) {
            if (zmq_msg_recv(&msg, front, ZMQ_DONTWAIT) < 0) {
                failed = errno != EAGAIN;
                break;
            }
            if (zmq_send(back, wid, (size_t)wlen, ZMQ_SNDMORE) < 0
                || s_pass(front, back, &msg) != 0) {
                failed = 1;
                break;
            }
        }
        /* Worker -> client: drop the worker's id and pass the rest. */
        for (int i = 0; !failed && i < S_BUDGET
                        && (items[1].revents & ZMQ_POLLIN);
             i++) {
            if (zmq_msg_recv(&msg, back, ZMQ_DONTWAIT) < 0) {
                failed = errno != EAGAIN;
                break;
            }
            if (!zmq_msg_more(&msg)) {
                continue; /* a stray single frame */
            }
            if (zmq_msg_recv(&msg, back, 0) < 0
                || s_pass(back, front, &msg) != 0) {
                failed = 1;
                break;
            }
        }
        if (failed) {
            if (errno != ETERM) {
                fprintf(stderr, "relay: forwarder: %s\n",
                        zmq_strerror(errno));
            }
            break;
        }
    }
    zmq_msg_close(&msg);
out:
    zmq_close(front);
    zmq_close(back);
    return NULL;
}

static void *
s_worker(void *arg)
{
    s_relay_t *r = arg;
    void *s = zmq_socket(r->wctx, ZMQ_DEALER);
    s_sockopts(s);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, S_WORKER_ID, strlen(S_WORKER_ID));
    if (zmq_connect(s, r->back_ep) != 0
        || zmq_send(s, S_HELLO, strlen(S_HELLO), 0) < 0) {
        fprintf(stderr, "relay: worker: %s\n", zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    /* Echo: every frame goes straight back with the same "more" flag. */
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, s, 0) >= 0) {
        if (zmq_msg_send(&msg, s, zmq_msg_more(&msg) ? ZMQ_SNDMORE : 0)
            < 0) {
            break;
        }
    }
    zmq_msg_close(&msg);
    zmq_close(s);
    return NULL;
}

/* Tear down whatever s_start built. Safe on a partly built relay. */
static void
s_stop(s_relay_t *r)
{
    if (r->fctx) {
        zmq_ctx_shutdown(r->fctx);
    }
    if (r->wctx) {
        zmq_ctx_shutdown(r->wctx);
    }
    if (r->fwd_started) {
        pthread_join(r->fwd, NULL);
    }
    if (r->wrk_started) {
        pthread_join(r->wrk, NULL);
    }
    if (r->fctx) {
        zmq_ctx_term(r->fctx);
    }
    if (r->wctx) {
        zmq_ctx_term(r->wctx);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static int
s_start(s_relay_t *r, const tw_relay_opts_t *o)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->front_port = o->front_port;
    r->back_port = o->back_port;
    r->fctx = zmq_ctx_new();
    r->wctx = zmq_ctx_new();
    if (!r->fctx || !r->wctx) {
        s_stop(r);
        return -ENOMEM;
    }
    if (pthread_create(&r->fwd, NULL, s_forwarder, r) != 0) {
        s_stop(r);
        return -EAGAIN;
    }
    r->fwd_started = 1;
    pthread_mutex_lock(&r->mu);
    while (r->ready == 0) {
        pthread_cond_wait(&r->cv, &r->mu);
    }
    int ready = r->ready;
    pthread_mutex_unlock(&r->mu);
    if (ready < 0) {
        s_stop(r);
        return -EADDRINUSE;
    }
    if (pthread_create(&r->wrk, NULL, s_worker, r) != 0) {
        s_stop(r);
        return -EAGAIN;
    }
    r->wrk_started = 1;
    return 0;
}

/* The client's socket, connected to the relay's front, in its own
 * context. */
static void *
s_client(const s_relay_t *r, void **ctx)
{
    *ctx = zmq_ctx_new();
    void *s = zmq_socket(*ctx, ZMQ_DEALER);
    int tmo = S_RECV_TIMEOUT;
    s_sockopts(s);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(s, r->front_ep) != 0) {
        fprintf(stderr, "relay: client connect %s: %s\n", r->front_ep,
                zmq_strerror(errno));
        zmq_close(s);
        zmq_ctx_term(*ctx);
        return NULL;
    }
    return s;
}

struct tw_relay {
    s_relay_t r;
    void *ctx;    /* the client's context */
    void *s;      /* the client's DEALER */
    size_t size;  /* payload bytes */
    char *buf;    /* the request payload */
    char *rbuf;   /* replies land here */
    size_t cap;   /* bytes of rbuf */
};

/* `count` round trips one at a time, untimed. */
static int
s_warmup(tw_relay_t *t, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (zmq_send(t->s, t->buf, t->size, 0) < 0
            || zmq_recv(t->s, t->rbuf, t->cap, 0) < 0) {
            fprintf(stderr, "relay: warm-up: %s\n", zmq_strerror(errno));
            return -1;
        }
    }
    return 0;
}

int
tw_relay_start(const tw_relay_opts_t *o, tw_relay_t **out)
{
    *out = NULL;
    tw_relay_t *t = calloc(1, sizeof *t);
    if (!t) {
        return -ENOMEM;
    }
    int rc = s_start(&t->r, o);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->s = s_client(&t->r, &t->ctx);
    if (!t->s) {
        s_stop(&t->r);
        free(t);
        return -EIO;
    }
    t->size = o->size;
    t->cap = o->size + 16;
    t->buf = malloc(t->size + 1);
    t->rbuf = malloc(t->cap);
    memset(t->buf, 'x', t->size + 1);
    /* The first round trip also waits for the worker to connect. */
    if (s_warmup(t, 100) != 0) {
        tw_relay_stop(&t);
        return -EIO;
    }
    *out = t;
    return 0;
}

void
tw_relay_stop(tw_relay_t **tp)
{
    tw_relay_t *t = *tp;
    if (!t) {
        return;
    }
    zmq_close(t->s);
    zmq_ctx_term(t->ctx);
    s_stop(&t->r);
    free(t->buf);
    free(t->rbuf);
    free(t);
    *tp = NULL;
}

int
tw_relay_pipelined(tw_relay_t *t, size_t n, size_t window, double *rate)
{
    void *s = t->s;
    uint64_t sent = 0, recvd = 0;
    if (window < 1) {
        window = 1;
    }
    uint64_t t0 = tw_bench_now_ns();
    while (recvd < n) {
        while (sent < n && sent - recvd < window) {
            if (zmq_send(s, t->buf, t->size, ZMQ_DONTWAIT) < 0) {
                if (errno != EAGAIN) {
                    goto fail;
                }
                break;
            }
            sent++;
        }
        if (zmq_recv(s, t->rbuf, t->cap, 0) < 0) {
            goto fail;
        }
        recvd++;
        while (recvd < sent
               && zmq_recv(s, t->rbuf, t->cap, ZMQ_DONTWAIT) >= 0) {
            recvd++;
        }
    }
    uint64_t t1 = tw_bench_now_ns();
    *rate = (double)n * 1e9 / (double)(t1 > t0 ? t1 - t0 : 1);
    return 0;
fail:
    fprintf(stderr, "relay: %llu of %zu back: %s\n",
            (unsigned long long)recvd, n, zmq_strerror(errno));
    return -EIO;
}

int
tw_relay_round_trips(tw_relay_t *t, size_t n, double *us)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = tw_bench_now_ns();
        if (zmq_send(t->s, t->buf, t->size, 0) < 0
            || zmq_recv(t->s, t->rbuf, t->cap, 0) < 0) {
            fprintf(stderr, "relay: round trip %zu: %s\n", i,
                    zmq_strerror(errno));
            return -EIO;
        }
        us[i] = (double)(tw_bench_now_ns() - t0) / 1000.0;
    }
    return 0;
}

int
tw_relay_throughput(const tw_relay_opts_t *o, double *rate)
{
    tw_relay_t *t;
    int rc = tw_relay_start(o, &t);
    if (rc == 0) {
        rc = tw_relay_pipelined(t, o->n, o->window, rate);
        tw_relay_stop(&t);
    }
    return rc;
}

int
tw_relay_latency(const tw_relay_opts_t *o, double *p50_us, double *p99_us)
{
    size_t n = o->n ? o->n : 1;
    double *us = malloc(n * sizeof *us);
    tw_relay_t *t;
    int rc = tw_relay_start(o, &t);
    if (rc == 0) {
        size_t warm = n / 10 < 1000 ? n / 10 : 1000;
        rc = tw_relay_round_trips(t, warm, us);
        if (rc == 0) {
            rc = tw_relay_round_trips(t, n, us);
        }
        tw_relay_stop(&t);
    }
    if (rc == 0) {
        *p50_us = tw_bench_quantile(us, n, 0.50);
        *p99_us = tw_bench_quantile(us, n, 0.99);
    }
    free(us);
    return rc;
}

#ifdef TW_RELAY_MAIN

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-relay --mode throughput|latency [options]\n\n"
            "Raw ZeroMQ relay: client DEALER -> ROUTER|ROUTER forwarder -> "
            "worker DEALER\n(echo), threads in one process, TCP on "
            "127.0.0.1.\n\n"
            "  --mode M        throughput (pipelined) or latency (one at a "
            "time)\n"
            "  --n N           timed requests (default 1000000 for "
            "throughput,\n"
            "                  10000 for latency)\n"
            "  --size B        payload bytes (default 64)\n"
            "  --window W      requests in flight, throughput only "
            "(default 1000)\n"
            "  --runs R        repeat R times and report the median "
            "(default 1)\n"
            "  --front-port P  forwarder port for the client (default 0: "
            "ephemeral)\n"
            "  --back-port P   forwarder port for the worker (default 0: "
            "ephemeral)\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-relay";
    const char *mode = NULL;
    long long n = -1, size = 64, window = 1000, runs = 1;
    long long fport = 0, bport = 0;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_STR("--mode", &mode),
        TW_BENCH_NUM("--n", &n, 1, 1LL << 40),
        TW_BENCH_NUM("--size", &size, 0, 1 << 26),
        TW_BENCH_NUM("--window", &window, 1, 1 << 24),
        TW_BENCH_NUM("--runs", &runs, 1, 1000),
        TW_BENCH_NUM("--front-port", &fport, 0, 65535),
        TW_BENCH_NUM("--back-port", &bport, 0, 65535),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    int tput;
    if (mode && strcmp(mode, "throughput") == 0) {
        tput = 1;
    } else if (mode && strcmp(mode, "latency") == 0) {
        tput = 0;
    } else {
        fprintf(stderr, "%s: --mode throughput|latency is required\n", prog);
        s_usage(stderr);
        return 2;
    }
    if (n < 0) {
        n = tput ? 1000000 : 10000;
    }
    tw_relay_opts_t o = {(int)fport, (int)bport, (size_t)size,
                         (size_t)window, (size_t)n};
    double *a = calloc((size_t)runs, sizeof *a);
    double *b = calloc((size_t)runs, sizeof *b);
    /* With several runs, each run's line goes to stderr and only the
     * summary to stdout. */
    FILE *out = runs > 1 ? stderr : stdout;
    for (long long r = 0; r < runs; r++) {
        if (tput) {
            if (tw_relay_throughput(&o, &a[r]) != 0) {
                return 1;
            }
            fprintf(out, "relay throughput: %.0f req/s (n %lld, size %lld, "
                         "window %lld)\n",
                    a[r], n, size, window);
        } else {
            if (tw_relay_latency(&o, &a[r], &b[r]) != 0) {
                return 1;
            }
            fprintf(out, "relay latency: p50 %.0fus p99 %.0fus (n %lld, "
                         "size %lld)\n",
                    a[r], b[r], n, size);
        }
        fflush(out);
    }
    if (runs > 1 && tput) {
        printf("relay throughput: median %.0f req/s of %lld runs\n",
               tw_bench_median(a, (size_t)runs), runs);
    } else if (runs > 1) {
        printf("relay latency: median p50 %.0fus p99 %.0fus of %lld runs\n",
               tw_bench_median(a, (size_t)runs),
               tw_bench_median(b, (size_t)runs), runs);
    }
    free(a);
    free(b);
    return 0;
}

#endif /* TW_RELAY_MAIN */
