/*  bench/tw_engines.c - what the workflow engines cost, in process.
 *
 *  The schedule, dependency and rate engines (broker/state/sched.h, deps.h,
 *  bucket.h; common/cron.h) do no I/O and read no clock, so their cost can
 *  be measured alone, with invented times, apart from the sockets and the
 *  store. This says how much of a firing delay, a chord's overhead or a
 *  rate's precision is theirs. One summary line each:
 *
 *    engines: sched 10000 x "@every 1s", 60 s: batch median 2.1 ms, p99
 *             2.9 ms (210 ns per firing)
 *    engines: cron next "30 2 * * *" Europe/Berlin 0.90 us, every five
 *             minutes 0.35 us
 *    engines: deps chord of 10000 0.12 us per parent, chain of 10000
 *             0.20 us per step
 *    engines: bucket 1000/s for 60 s: 61000 tokens (expected 61000), 9 ns
 *             per take
 *
 *  Times are this thread's CPU time, not wall time: on a shared machine
 *  wall time would mostly measure the other processes. "batch" is the CPU
 *  time to hand out every firing due in one second (poll, the task
 *  reported started, and ended): the engine's share of the firing delay
 *  of the last schedule of the batch.
 *
 *  Usage: bench-engines [--schedules N] [--seconds S] [--parents N]
 */
#include "bench/bench.h"
#include "broker/state/bucket.h"
#include "broker/state/deps.h"
#include "broker/state/sched.h"
#include "common/alloc.h"
#include "common/cron.h"
#include "common/tz.h"
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: bench-engines [--schedules N (10000)] "
                 "[--seconds S (60)] [--parents N (10000)]\n");
}

/* This thread's CPU time in ns: what the engines cost, whatever else the
 * shared machine runs meanwhile (wall time would count the preemptions). */
static uint64_t
s_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double
s_us_since(uint64_t t0)
{
    return (double)(s_cpu_ns() - t0) / 1000.0;
}

static int
s_bench_sched(long long n, long long secs)
{
    tw_sched_t *s = tw_sched_new(0);
    for (long long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%lld", i);
        tw_sched_def_t d;
        memset(&d, 0, sizeof d);
        d.name = name;
        d.namelen = strlen(name);
        d.expr = "@every 1s";
        d.tmpl = "\x81\xa1h\xa4noop";
        d.tmpl_len = 7;
        if (tw_sched_add(s, &d, NULL, 0) != 0) {
            fprintf(stderr, "bench-engines: add failed\n");
            return 1;
        }
    }
    double *batch = calloc((size_t)secs, sizeof *batch);
    uint64_t task = 1, fired = 0;
    double total_us = 0;
    for (long long sec = 1; sec <= secs; sec++) {
        uint64_t t0 = s_cpu_ns();
        tw_sched_action_t a;
        while (tw_sched_poll(s, sec * 1000, &a)) {
            tw_sched_started(s, a.name, a.namelen, task);
            tw_sched_task_ended(s, task++);
            fired++;
        }
        batch[sec - 1] = s_us_since(t0);
        total_us += batch[sec - 1];
    }
    double med = tw_bench_median(batch, (size_t)secs);
    double p99 = tw_bench_quantile(batch, (size_t)secs, 0.99);
    printf("engines: sched %lld x \"@every 1s\", %lld s: batch median "
           "%.2f ms, p99 %.2f ms (%.0f ns per firing, %llu fired)\n",
           n, secs, med / 1000, p99 / 1000, total_us * 1000 / (double)fired,
           (unsigned long long)fired);
    free(batch);
    tw_sched_destroy(&s);
    return fired == (uint64_t)(n * secs) ? 0 : 1;
}

static double
s_cron_cost(const char *expr, const tw_tz_t *tz)
{
    tw_cron_t c;
    if (tw_cron_parse(&c, expr, NULL, 0) != 0) {
        return -1;
    }
    /* A year of firings from 2024-01-01, or 20,000 calls. */
    int64_t t = tw_tz_days(2024, 1, 1) * 86400, end = t + 366 * 86400;
    long calls = 0;
    uint64_t t0 = s_cpu_ns();
    while (t < end && calls < 20000) {
        if (tw_cron_next(&c, tz, t, &t) != 0) {
            return -1;
        }
        calls++;
    }
    return s_us_since(t0) / (double)calls;
}

static int
s_bench_cron(void)
{
    tw_tz_t *tz = NULL;
    if (tw_tz_load(NULL, "Europe/Berlin", &tz, NULL) != 0) {
        fprintf(stderr, "bench-engines: no Europe/Berlin zone\n");
        return 1;
    }
    double fixed = s_cron_cost("30 2 * * *", tz);
    double wild = s_cron_cost("*/5 * * * *", tz);
    printf("engines: cron next \"30 2 * * *\" Europe/Berlin %.2f us, "
           "\"*/5 * * * *\" %.2f us\n",
           fixed, wild);
    tw_tz_destroy(&tz);
    return fixed < 0 || wild < 0;
}

static int
s_bench_deps(long long n)
{
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint64_t *p = tw_malloc((size_t)n * sizeof *p);
    uint8_t *st = tw_malloc((size_t)n);
    for (long long i = 0; i < n; i++) {
        p[i] = (uint64_t)i + 1;
        st[i] = TW_ST_PENDING;
    }
    /* A chord: one child of n parents, which then all end. */
    uint64_t t0 = s_cpu_ns();
    tw_deps_add(d, (uint64_t)n + 1, p, st, (size_t)n, TW_DEPS_ALL_OK, 1,
                &dec, NULL);
    for (long long i = 0; i < n; i++) {
        tw_deps_ended(d, p[i], TW_ST_OK, &out);
    }
    double chord = s_us_since(t0) / (double)n;
    int ok = out.len == 1 && out.v[0].verdict == TW_DEPS_RELEASE;
    /* A chain: each step blocked on the one before, released in turn. */
    out.len = 0;
    t0 = s_cpu_ns();
    for (long long i = 1; i <= n; i++) {
        uint64_t parent = (uint64_t)(1000000 + i - 1);
        uint8_t live = TW_ST_RUNNING;
        tw_deps_add(d, (uint64_t)(1000000 + i), &parent, &live, 1,
                    TW_DEPS_ALL_OK, 1, &dec, NULL);
    }
    for (long long i = 0; i < n; i++) {
        tw_deps_ended(d, (uint64_t)(1000000 + i), TW_ST_OK, &out);
    }
    double chain = s_us_since(t0) / (double)n;
    ok = ok && out.len == (size_t)n && tw_deps_count(d) == 0;
    printf("engines: deps chord of %lld %.3f us per parent, chain of %lld "
           "%.3f us per step\n",
           n, chord, n, chain);
    tw_free(p);
    tw_free(st);
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
    return !ok;
}

static int
s_bench_bucket(long long secs)
{
    tw_bucket_t b;
    tw_bucket_init(&b, 1000, 1000, 0, 0);
    uint64_t taken = 0, ops = 0;
    uint64_t t0 = s_cpu_ns();
    for (uint64_t now = 0; now <= (uint64_t)secs * 1000; now++) {
        /* ten tries a millisecond, like a busy dispatcher */
        for (int k = 0; k < 10; k++) {
            taken += tw_bucket_take(&b, 1, now);
            ops++;
        }
    }
    double ns = s_us_since(t0) * 1000 / (double)ops;
    uint64_t want = 1000 + (uint64_t)secs * 1000;
    printf("engines: bucket 1000/s for %lld s: %llu tokens (expected %llu), "
           "%.1f ns per take\n",
           secs, (unsigned long long)taken, (unsigned long long)want, ns);
    return taken != want;
}

int
main(int argc, char **argv)
{
    long long schedules = 10000, secs = 60, parents = 10000;
    const tw_bench_flag_t flags[] = {
        TW_BENCH_NUM("--schedules", &schedules, 1, 1000000),
        TW_BENCH_NUM("--seconds", &secs, 1, 3600),
        TW_BENCH_NUM("--parents", &parents, 1, 65536),
    };
    int pr = tw_bench_parse_flags("bench-engines", argc, argv, flags,
                                  sizeof flags / sizeof *flags, s_usage);
    if (pr != TW_BENCH_FLAGS_RUN) {
        return TW_BENCH_FLAGS_EXIT(pr);
    }
    int rc = s_bench_sched(schedules, secs);
    rc |= s_bench_cron();
    rc |= s_bench_deps(parents);
    rc |= s_bench_bucket(secs);
    return rc;
}
