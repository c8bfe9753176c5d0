/*  bench/tw_schedules.c - how late the broker fires its schedules' ticks
 *  under many schedules (issue 15: 10,000 schedules firing every second,
 *  firing delay p99 under 50 ms).
 *
 *  Starts a real broker and one real worker (bench/cluster.h), subscribes
 *  to the broker's "schedule." topics, adds N schedules '@every 1s' whose
 *  template is a `noop` task (overlap skip), lets W seconds pass, then
 *  reads every schedule.<name>.fired event for S seconds: each carries
 *  late_ms, the time from its tick to the moment the broker submitted the
 *  task (PROTOCOL.md 18.12). Prints one line:
 *
 *    schedules: 10000 schedules @every 1s for 60 s: 600000 firings of
 *    600000 ticks, firing delay p50 3 ms, p99 21 ms, max 40 ms; 0 skipped
 *    events, 0 dropped status messages; broker CPU 9.1 us per firing
 *
 *  The broker's CPU time over the measured window (from /proc), per
 *  firing seen, is the figure a busy machine does not inflate; it covers
 *  everything the broker does for the firing: the engine, the task, its
 *  dispatch and outcome, and the events.
 *  A tick whose event the subscriber did not see (status_dropped counts
 *  those the broker could not send) is not in the figures; the firings
 *  seen are compared with the ticks due. Exit status: 0, 1 when the run
 *  failed (a child died, a request failed, no event came for 10 s), 2 for
 *  a usage error.
 */
#include "bench/bench.h"
#include "bench/cluster.h"
#include "common/error.h"
#include "proto/mpwalk.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-schedules [options]\n\n"
            "N schedules '@every 1s' of noop tasks in one broker: the\n"
            "delay from each tick to its firing, p50 and p99.\n\n"
            "  --schedules N  schedules (default 10000)\n"
            "  --seconds S    seconds measured (default 60)\n"
            "  --warmup W     seconds before measuring (default 5)\n");
}

/* An unsigned field of an event body, or -1. */
static long long
s_field(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = tw_mp_get(m, k);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? (long long)v->via.u64
               : -1;
}

/* Add schedules bs-0 .. bs-(n-1). */
static int
s_add(tw_client_t *c, long long n)
{
    tw_task_spec_t spec = {0};
    spec.handler = "noop";
    for (long long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "bs-%lld", i);
        tw_schedule_req_t req = {.op = "add", .name = name,
                                 .cron = "@every 1s", .task = &spec};
        int rc = tw_client_schedule(c, &req, 10000, NULL, NULL);
        if (rc != 0) {
            fprintf(stderr, "bench-schedules: add %s: %s\n", name,
                    tw_client_last_error(c));
            return rc;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *prog = "bench-schedules";
    long long n = 10000, secs = 60, warm = 5;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--schedules", &n, 1, 1000000),
        TW_BENCH_NUM("--seconds", &secs, 1, 3600),
        TW_BENCH_NUM("--warmup", &warm, 0, 600),
    };
    int pr = tw_bench_parse_flags(prog, argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    tw_bench_cluster_t cl;
    tw_client_t *c = tw_bench_cluster_open(&cl, 1, 256, NULL);
    if (!c) {
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, tmo = 200;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "schedule.", 9);
    zmq_connect(sub, cl.status);
    int rc = s_add(c, n);
    size_t cap = (size_t)(n * secs) + 1024, nlate = 0;
    double *late = malloc(cap * sizeof *late);
    uint64_t skipped = 0, start_ms = 0, end_ms = 0, last_event = 0;
    long long cpu0 = 0, cpu1 = 0; /* the broker's CPU time, ns */
    uint64_t t0 = tw_bench_now_ns();
    while (rc == 0 && late) {
        uint64_t now = tw_bench_now_ns();
        if (now - t0 > (uint64_t)(warm + secs + 5) * 1000000000ull) {
            break; /* the measured window's ticks are all in */
        }
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sub, 0) < 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            if (last_event && now - last_event > 10000000000ull) {
                tw_bench_cluster_fail(&cl, "no schedule event for 10 s");
                rc = TW_EFAILED;
            }
            continue;
        }
        zmq_msg_recv(&body, sub, 0);
        last_event = now;
        const char *t = zmq_msg_data(&topic);
        size_t tl = zmq_msg_size(&topic);
        int fired = tl > 6 && memcmp(t + tl - 6, ".fired", 6) == 0;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, zmq_msg_data(&body), zmq_msg_size(&body),
                                NULL) == MSGPACK_UNPACK_SUCCESS) {
            long long tick = s_field(&up.data, "tick");
            long long lm = s_field(&up.data, "late_ms");
            if (!start_ms && tick > 0 &&
                now - t0 >= (uint64_t)warm * 1000000000ull) {
                /* The first whole second after the warm-up. */
                start_ms = (uint64_t)tick / 1000 * 1000 + 1000;
                end_ms = start_ms + (uint64_t)secs * 1000;
                cpu0 = tw_bench_cpu_ns(cl.broker);
            }
            if (start_ms && !cpu1 && tick >= (long long)end_ms) {
                cpu1 = tw_bench_cpu_ns(cl.broker);
            }
            if (start_ms && tick >= (long long)start_ms &&
                tick < (long long)end_ms) {
                if (fired && lm >= 0 && nlate < cap) {
                    late[nlate++] = (double)lm;
                } else if (!fired) {
                    skipped++;
                }
            }
        }
        msgpack_unpacked_destroy(&up);
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    uint64_t dropped = 0;
    if (rc == 0) {
        rc = tw_bench_status_uint(c, "status_dropped", 10000, &dropped);
    }
    if (rc == 0 && tw_bench_cluster_check(&cl) != 0) {
        rc = TW_EIO;
    }
    if (rc == 0 && nlate == 0) {
        tw_bench_cluster_fail(&cl, "no firing was seen");
        rc = TW_EFAILED;
    }
    if (rc == 0) {
        double max = 0;
        for (size_t i = 0; i < nlate; i++) {
            max = late[i] > max ? late[i] : max;
        }
        double p50 = tw_bench_quantile(late, nlate, 0.5);
        double p99 = tw_bench_quantile(late, nlate, 0.99);
        double cpu = cpu1 > cpu0 && cpu0 > 0
                         ? (double)(cpu1 - cpu0) / 1e3 / (double)nlate
                         : -1;
        printf("schedules: %lld schedules @every 1s for %lld s: %zu firings "
               "of %lld ticks, firing delay p50 %.0f ms, p99 %.0f ms, max "
               "%.0f ms; %llu skipped events, %llu dropped status "
               "messages; broker CPU %.1f us per firing\n",
               n, secs, nlate, n * secs, p50, p99, max,
               (unsigned long long)skipped, (unsigned long long)dropped,
               cpu);
    }
    free(late);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    tw_client_destroy(&c);
    tw_bench_cluster_stop(&cl);
    return rc == 0 ? 0 : 1;
}
