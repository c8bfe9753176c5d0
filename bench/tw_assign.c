/*  bench/tw_assign.c - assignment of many stations to many workers.
 *
 *  A real broker (bench/cluster.h, no worker processes) and W simulated
 *  workers in this process: one thread owns W DEALER sockets and speaks
 *  the real backend protocol on each, HELLO {name, slots, handlers:
 *  ["noop"]}, READY {credit: slots}, HEARTBEAT whenever it received one or
 *  sent nothing for half the broker's interval, and counts the ASSIGN
 *  items it receives and when the last one came. Nothing runs: the
 *  stations stay "assigned". Two measures, each over R runs with a fresh
 *  broker, medians reported:
 *
 *    online   the W workers are up and READY; the client adds N `noop`
 *             stations, 5,000 per request (tw_client_stations_add).
 *             Reports how long the adds took (the clock runs from the
 *             first add to the last reply) and the time from the first
 *             add until the workers have received all N ASSIGN items.
 *
 *    pending  the broker's own placement cost: one simulated worker
 *             offers `noop` and leaves (BYE), so that the broker knows the
 *             handler; the N stations are then added with no worker
 *             connected, and stay pending; then the W workers connect,
 *             say HELLO (credit 0: nothing can be placed yet) and, once all
 *             are welcomed, READY together. The clock runs from the first
 *             READY sent to the last ASSIGN item received.
 *
 *  Prints one line with both (and the broker's CPU time per add, read from
 *  /proc, which tells the broker's own work from the round trip):
 *
 *    assign: 100000 stations to 20 workers: online: adds 18.0 s (180 us
 *    each, broker CPU 40 us each), all assigned 18.0 s after the first
 *    add; pending: adds ..., placement 0.120 s from READY to the last
 *    ASSIGN (median of 3 runs)
 *
 *  The simulated workers keep no receive high-water mark, so the broker
 *  never has to drop an ASSIGN for them; the broker's "dropped" counter is
 *  checked after each run anyway. Exit status: 0, 1 when a run failed, 2
 *  for a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/load.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_QUERY_TIMEOUT_MS 5000
#define S_POLL_MS 20
#define S_WAIT_LIMIT_NS 60000000000ull /* a phase may take at most 60 s */

/* One simulated worker: a DEALER, owned by the sims thread. */
typedef struct {
    void *sock;
    char ident[64];
    char name[32];
    uint64_t last_send_ns;
    int welcomed;
    int readied;
} s_sim_t;

/* The simulated workers and the thread that drives them. The atomics are
 * shared with the main thread; everything else belongs to the thread
 * once it runs. */
typedef struct {
    void *ctx;
    const char *endpoint;
    const char *prefix; /* names are "<prefix>-<i>" */
    int n;
    uint64_t slots;
    int ready_at_welcome; /* 1: READY right after WELCOME */
    s_sim_t sims[TW_BENCH_MAX_WORKERS];
    pthread_t thread;
    int started;
    uint64_t hb_ns;          /* half the broker's heartbeat interval */
    atomic_int stop;         /* main -> thread: close (BYE first if 2) */
    atomic_int go_ready;     /* main -> thread: send READY on every sim */
    atomic_int welcomed;     /* sims that got their WELCOME */
    atomic_int failed;       /* the thread gave up (socket error) */
    atomic_uint_fast64_t assigned; /* ASSIGN items received */
    atomic_uint_fast64_t last_ns;  /* when the last ASSIGN arrived */
    atomic_uint_fast64_t ready_ns; /* when the first READY went out */
    atomic_uint_fast64_t rehello;  /* ERROR EWORKER answered with HELLO */
    atomic_uint_fast64_t other;    /* other commands received */
} s_sims_t;

static int
s_send(s_sim_t *s, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    int rc = 0;
    if (zmq_msg_send(&f[0], s->sock, ZMQ_SNDMORE) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return TW_EIO;
    }
    if (zmq_msg_send(&f[1], s->sock, 0) < 0) {
        zmq_msg_close(&f[1]);
        rc = TW_EIO;
    }
    s->last_send_ns = tw_bench_now_ns();
    return rc;
}

/* Send `cmd` from sim `s`: HELLO {name, host, pid, slots, handlers:
 * ["noop"]}, READY {credit: slots}, or an empty body (HEARTBEAT, BYE). */
static int
s_send_cmd(s_sims_t *g, s_sim_t *s, tw_cmd_t cmd)
{
    tw_enc_t e;
    tw_enc_init(&e);
    if (cmd == TW_CMD_HELLO) {
        tw_enc_map(&e, 5);
        tw_enc_key(&e, TW_F_NAME);
        tw_enc_cstr(&e, s->name);
        tw_enc_key(&e, TW_F_HOST);
        tw_enc_cstr(&e, "bench");
        tw_enc_key(&e, TW_F_PID);
        tw_enc_uint(&e, 0);
        tw_enc_key(&e, TW_F_SLOTS);
        tw_enc_uint(&e, g->slots);
        tw_enc_key(&e, TW_F_HANDLERS);
        tw_enc_array(&e, 1);
        tw_enc_cstr(&e, "noop");
    } else if (cmd == TW_CMD_READY) {
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_CREDIT);
        tw_enc_uint(&e, g->slots);
        s->readied = 1;
    } else {
        tw_enc_map(&e, 0);
    }
    int rc = s_send(s, &e, cmd);
    tw_enc_free(&e);
    return rc;
}

/* Handle one message from the broker. */
static int
s_handle(s_sims_t *g, s_sim_t *s, zmq_msg_t *hdr, zmq_msg_t *body)
{
    tw_msg_t m;
    if (tw_msg_decode(&m, zmq_msg_data(hdr), zmq_msg_size(hdr),
                      zmq_msg_data(body), zmq_msg_size(body)) != 0) {
        atomic_fetch_add(&g->other, 1);
        return 0;
    }
    int rc = 0;
    switch (m.cmd) {
    case TW_CMD_ASSIGN:
        atomic_store(&g->last_ns, tw_bench_now_ns());
        atomic_fetch_add(&g->assigned, m.nitems);
        break;
    case TW_CMD_WELCOME: {
        uint64_t hb = tw_msg_uint(&m, TW_F_HB, 1000);
        g->hb_ns = hb * 500000u;
        if (!s->welcomed) {
            s->welcomed = 1;
            atomic_fetch_add(&g->welcomed, 1);
        }
        if (g->ready_at_welcome || s->readied) {
            rc = s_send_cmd(g, s, TW_CMD_READY);
        }
        break;
    }
    case TW_CMD_HEARTBEAT:
        rc = s_send_cmd(g, s, TW_CMD_HEARTBEAT);
        break;
    case TW_CMD_ERROR:
        if (tw_msg_int(&m, TW_F_CODE, 0) == TW_EWORKER) {
            atomic_fetch_add(&g->rehello, 1);
            rc = s_send_cmd(g, s, TW_CMD_HELLO);
        } else {
            atomic_fetch_add(&g->other, 1);
        }
        break;
    default:
        atomic_fetch_add(&g->other, 1);
        break;
    }
    tw_msg_release(&m);
    return rc;
}

/* Take every message waiting on one sim's socket. */
static int
s_drain(s_sims_t *g, s_sim_t *s)
{
    zmq_msg_t hdr, body;
    zmq_msg_init(&hdr);
    zmq_msg_init(&body);
    int rc = 0;
    while (rc == 0 && zmq_msg_recv(&hdr, s->sock, ZMQ_DONTWAIT) >= 0) {
        if (!zmq_msg_more(&hdr) || zmq_msg_recv(&body, s->sock, 0) < 0) {
            atomic_fetch_add(&g->other, 1);
            continue;
        }
        while (zmq_msg_more(&body)) {
            /* A third frame: not ours; skip the rest. */
            zmq_msg_recv(&body, s->sock, 0);
        }
        rc = s_handle(g, s, &hdr, &body);
    }
    zmq_msg_close(&hdr);
    zmq_msg_close(&body);
    return rc;
}

static void *
s_sims_main(void *arg)
{
    s_sims_t *g = arg;
    zmq_pollitem_t items[TW_BENCH_MAX_WORKERS];
    int zero = 0, rc = 0;
    for (int i = 0; i < g->n; i++) {
        s_sim_t *s = &g->sims[i];
        char hex[9];
        tw_random_hex(hex, 8);
        snprintf(s->name, sizeof s->name, "%s-%d", g->prefix, i);
        snprintf(s->ident, sizeof s->ident, "w-%s-%s", s->name, hex);
        s->sock = zmq_socket(g->ctx, ZMQ_DEALER);
        zmq_setsockopt(s->sock, ZMQ_ROUTING_ID, s->ident, strlen(s->ident));
        zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt(s->sock, ZMQ_SNDHWM, &zero, sizeof zero);
        if (zmq_connect(s->sock, g->endpoint) != 0 ||
            s_send_cmd(g, s, TW_CMD_HELLO) != 0) {
            rc = TW_EIO;
        }
        items[i] = (zmq_pollitem_t){s->sock, 0, ZMQ_POLLIN, 0};
    }
    while (rc == 0 && !atomic_load(&g->stop)) {
        if (zmq_poll(items, g->n, S_POLL_MS) < 0 && zmq_errno() != EINTR) {
            rc = TW_EIO;
            break;
        }
        for (int i = 0; rc == 0 && i < g->n; i++) {
            if (items[i].revents & ZMQ_POLLIN) {
                rc = s_drain(g, &g->sims[i]);
            }
        }
        if (rc == 0 && atomic_load(&g->go_ready) == 1) {
            atomic_store(&g->ready_ns, tw_bench_now_ns());
            for (int i = 0; rc == 0 && i < g->n; i++) {
                rc = s_send_cmd(g, &g->sims[i], TW_CMD_READY);
            }
            atomic_store(&g->go_ready, 2);
        }
        uint64_t now = tw_bench_now_ns();
        for (int i = 0; rc == 0 && i < g->n; i++) {
            s_sim_t *s = &g->sims[i];
            if (s->welcomed && now - s->last_send_ns >= g->hb_ns) {
                rc = s_send_cmd(g, s, TW_CMD_HEARTBEAT);
            }
        }
    }
    if (rc != 0) {
        fprintf(stderr, "bench: simulated worker socket error: %s\n",
                zmq_strerror(zmq_errno()));
        atomic_store(&g->failed, 1);
    }
    for (int i = 0; i < g->n; i++) {
        s_sim_t *s = &g->sims[i];
        if (s->sock && atomic_load(&g->stop) == 2) {
            /* Give the BYE time to leave before the socket closes. */
            int linger = 1000;
            zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
            s_send_cmd(g, s, TW_CMD_BYE);
        }
        if (s->sock) {
            zmq_close(s->sock);
            s->sock = NULL;
        }
    }
    return NULL;
}

/* Start `n` simulated workers and wait until the broker welcomed them
 * all. */
static int
s_sims_start(s_sims_t *g, void *ctx, const char *endpoint,
             const char *prefix, int n, uint64_t slots, int ready_at_welcome)
{
    memset(g, 0, sizeof *g);
    g->ctx = ctx;
    g->endpoint = endpoint;
    g->prefix = prefix;
    g->n = n;
    g->slots = slots;
    g->ready_at_welcome = ready_at_welcome;
    g->hb_ns = 500000000u;
    if (pthread_create(&g->thread, NULL, s_sims_main, g) != 0) {
        return TW_EIO;
    }
    g->started = 1;
    uint64_t deadline = tw_bench_now_ns() + 15000000000ull;
    while (atomic_load(&g->welcomed) < n) {
        if (atomic_load(&g->failed) || tw_bench_now_ns() > deadline) {
            fprintf(stderr, "bench: %d of %d simulated workers welcomed\n",
                    atomic_load(&g->welcomed), n);
            return TW_ETIMEDOUT;
        }
        tw_bench_sleep_ms(5);
    }
    return 0;
}

/* Stop the thread and close the sockets, saying BYE first if `bye`. */
static void
s_sims_stop(s_sims_t *g, int bye)
{
    if (!g->started) {
        return;
    }
    atomic_store(&g->stop, bye ? 2 : 1);
    pthread_join(g->thread, NULL);
    g->started = 0;
}

/* Wait until the sims received `n` ASSIGN items. */
static int
s_wait_assigned(tw_bench_cluster_t *cl, s_sims_t *g, uint64_t n)
{
    uint64_t deadline = tw_bench_now_ns() + S_WAIT_LIMIT_NS;
    while (atomic_load(&g->assigned) < n) {
        int rc = tw_bench_cluster_check(cl);
        if (rc != 0) {
            return rc;
        }
        if (atomic_load(&g->failed) || tw_bench_now_ns() > deadline) {
            char why[160];
            snprintf(why, sizeof why, "only %llu of %llu ASSIGN items "
                                      "received",
                     (unsigned long long)atomic_load(&g->assigned),
                     (unsigned long long)n);
            tw_bench_cluster_fail(cl, why);
            return TW_ETIMEDOUT;
        }
        tw_bench_sleep_ms(1);
    }
    return 0;
}

/* The broker's "dropped" counter must stay 0: a dropped ASSIGN would
 * never arrive. Prints it when it is not. */
static void
s_check_dropped(tw_client_t *c)
{
    uint64_t dropped = 0;
    if (tw_bench_status_uint(c, "dropped", S_QUERY_TIMEOUT_MS, &dropped) == 0
        && dropped) {
        fprintf(stderr, "bench: the broker dropped %llu messages\n",
                (unsigned long long)dropped);
    }
}

/* Wait until the broker lists no worker. */
static int
s_wait_no_workers(tw_bench_cluster_t *cl, tw_client_t *c)
{
    uint64_t deadline = tw_bench_now_ns() + 10000000000ull;
    uint64_t nw = 1;
    while (tw_bench_now_ns() < deadline) {
        if (tw_bench_status_uint(c, "workers", S_QUERY_TIMEOUT_MS, &nw) != 0) {
            break;
        }
        if (nw == 0) {
            return 0;
        }
        tw_bench_sleep_ms(5);
    }
    tw_bench_cluster_fail(cl, "the registering worker did not leave");
    return TW_ETIMEDOUT;
}

typedef struct {
    int workers;
    uint64_t slots;
    size_t n;
} s_cfg_t;

/* What one run measured, in seconds. */
typedef struct {
    double add;    /* first add to last add's reply */
    double cpu;    /* the broker's CPU time during the adds */
    double assign; /* online: first add to last ASSIGN; pending: first
                      READY to last ASSIGN */
} s_out_t;

/* One run of a measure, with a fresh broker: "online" (pending 0) or
 * "pending" (see the top of this file). */
static int
s_run(void *ctx, const s_cfg_t *k, int pending, s_out_t *out)
{
    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, 0, 1, NULL);
    if (!c) {
        return TW_EIO;
    }
    s_sims_t *g = calloc(1, sizeof *g);
    int rc;
    if (pending) {
        /* A station needs a handler some worker has offered: one worker
         * offers noop and leaves. */
        rc = s_sims_start(g, ctx, cl.backend, "reg", 1, k->slots, 0);
        s_sims_stop(g, 1);
        if (rc == 0) {
            rc = s_wait_no_workers(&cl, c);
        }
    } else {
        rc = s_sims_start(g, ctx, cl.backend, "sim", k->workers, k->slots,
                          1);
        if (rc == 0) {
            /* The READYs follow the WELCOMEs at once; a ping makes it
             * likely the broker has handled them (a station added before
             * them would wait for them, which only makes the figure
             * worse). */
            tw_bench_sleep_ms(50);
            rc = tw_client_ping(c, S_QUERY_TIMEOUT_MS);
        }
    }
    long long cpu0 = tw_bench_cpu_ns(cl.broker);
    uint64_t t0 = tw_bench_now_ns();
    if (rc == 0) {
        rc = tw_bench_add_stations(&cl, c, "a-", k->n, 0);
    }
    uint64_t t1 = tw_bench_now_ns();
    long long cpu1 = tw_bench_cpu_ns(cl.broker);
    if (rc == 0 && pending) {
        rc = s_sims_start(g, ctx, cl.backend, "sim", k->workers, k->slots,
                          0);
        if (rc == 0) {
            /* The HELLOs may trigger a placement pass (nothing fits: no
             * credit yet); let it end before the clock starts. */
            rc = tw_client_ping(c, S_QUERY_TIMEOUT_MS);
        }
        if (rc == 0) {
            atomic_store(&g->go_ready, 1);
        }
    }
    if (rc == 0) {
        rc = s_wait_assigned(&cl, g, k->n);
    }
    if (rc == 0) {
        /* Online from the first add, pending from the first READY. */
        uint64_t from = pending ? atomic_load(&g->ready_ns) : t0;
        out->add = (double)(t1 - t0) / 1e9;
        out->cpu = (double)(cpu1 - cpu0) / 1e9;
        out->assign = (double)(atomic_load(&g->last_ns) - from) / 1e9;
        s_check_dropped(c);
    }
    s_sims_stop(g, 0);
    if (rc == 0 && !pending &&
        (atomic_load(&g->rehello) || atomic_load(&g->other))) {
        fprintf(stderr, "bench: %llu re-HELLOs, %llu other messages\n",
                (unsigned long long)atomic_load(&g->rehello),
                (unsigned long long)atomic_load(&g->other));
    }
    free(g);
    tw_client_destroy(&c);
    if (rc != 0 && !cl.failed) {
        tw_bench_cluster_fail(&cl, pending ? "pending assignment run failed"
                                           : "online assignment run failed");
    }
    tw_bench_cluster_stop(&cl);
    return rc;
}

/* What one measure (pending 0: online) found, as in the summary line:
 * "adds A s (B us each, broker CPU C us each), <its own figure>"; `us` is
 * 1e6 / the number of stations. */
static void
s_describe(FILE *f, int pending, const s_out_t *o, double us)
{
    fprintf(f, "adds %.2f s (%.0f us each, broker CPU %.0f us each), ",
            o->add, o->add * us, o->cpu * us);
    if (pending) {
        fprintf(f, "placement %.3f s from READY to the last ASSIGN",
                o->assign);
    } else {
        fprintf(f, "all assigned %.2f s after the first add", o->assign);
    }
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-assign [options]\n\n"
            "N no-op stations assigned to W simulated workers (this\n"
            "process) by a real broker: adds with the workers up, and the\n"
            "broker's placement of N pending stations when they connect.\n\n"
            "  --stations N  stations (default 100000)\n"
            "  --workers W   simulated workers (default 20)\n"
            "  --slots S     slots (and READY credit) per worker\n"
            "                (default 5000; W x S must be >= N)\n"
            "  --runs R      runs of each measure; medians are reported\n"
            "                (default 3)\n"
            "  --only M      only the measure M: online or pending\n");
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-assign";
    long long n = 100000, workers = 20, slots = 5000, runs = 3;
    const char *only = NULL;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--stations", &n, 1, 10000000),
        TW_BENCH_NUM("--workers", &workers, 1, TW_BENCH_MAX_WORKERS),
        TW_BENCH_NUM("--slots", &slots, 1, 1 << 24),
        TW_BENCH_NUM("--runs", &runs, 1, 100),
        TW_BENCH_STR("--only", &only),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    static const char *const names[2] = {"online", "pending"};
    int want[2];
    for (int p = 0; p < 2; p++) {
        want[p] = !only || strcmp(only, names[p]) == 0;
    }
    if ((!want[0] && !want[1]) || workers * slots < n) {
        fprintf(stderr, "%s: %s\n", prog,
                workers * slots < n ? "workers x slots must be >= stations"
                                    : "--only takes online or pending");
        s_usage(stderr);
        return 2;
    }
    s_cfg_t k = {(int)workers, (uint64_t)slots, (size_t)n};
    void *ctx = zmq_ctx_new();
    size_t nr = (size_t)runs;
    /* v[3 * p + 0..2]: measure p's add, cpu and assign, run by run. */
    double *v[6];
    for (int i = 0; i < 6; i++) {
        v[i] = calloc(nr, sizeof *v[i]);
    }
    double us = 1e6 / (double)n;
    int rc = 0;
    for (size_t r = 0; rc == 0 && r < nr; r++) {
        for (int p = 0; rc == 0 && p < 2; p++) {
            s_out_t o;
            if (!want[p] || (rc = s_run(ctx, &k, p, &o)) != 0) {
                continue;
            }
            v[3 * p][r] = o.add;
            v[3 * p + 1][r] = o.cpu;
            v[3 * p + 2][r] = o.assign;
            fprintf(stderr, "run %zu/%zu %s: ", r + 1, nr, names[p]);
            s_describe(stderr, p, &o, us);
            fputc('\n', stderr);
        }
    }
    zmq_ctx_term(ctx);
    s_out_t m[2];
    for (int p = 0; p < 2; p++) {
        m[p].add = tw_bench_median(v[3 * p], nr);
        m[p].cpu = tw_bench_median(v[3 * p + 1], nr);
        m[p].assign = tw_bench_median(v[3 * p + 2], nr);
    }
    for (int i = 0; i < 6; i++) {
        free(v[i]);
    }
    if (rc == 0) {
        printf("assign: %lld stations to %lld workers:", n, workers);
        for (int p = 0; p < 2; p++) {
            if (want[p]) {
                printf("%s %s: ", p && want[0] ? ";" : "", names[p]);
                s_describe(stdout, p, &m[p], us);
            }
        }
        printf(" (median of %zu runs)\n", nr);
    }
    return rc == 0 ? 0 : 1;
}
