/*  bench/tw_place.c - what a credit return costs while stations wait for
 *  a worker that never comes.
 *
 *  The broker runs its placement pass (tw__place_pass) whenever a READY
 *  or DONE returns credit while stations are unplaced. This benchmark
 *  runs that pass in process, over a broker with no sockets: W workers
 *  tagged code=busy with room, N stations wanting code=idle (nobody
 *  matches them: "no eligible worker"), and C credit returns, each one
 *  credit on the next worker and one pass, as dispatch.c does. It times
 *  the C passes and reports the median over R runs, in microseconds per
 *  credit return, with the number of stations the passes tried:
 *
 *    place: 10000 unmatched stations, 20 workers: 0.010 us per credit
 *    return (stations tried per return 0.0, median of 5 runs of 2000)
 *
 *  Before the aside list (broker/state/aside.h) every pass tried all N, one
 *  scan of the W workers each. The source also builds against a broker
 *  without aside.h, for that comparison (docs/BENCHMARKS.md).
 *
 *  Usage: bench-place [-n stations] [-w workers] [-c returns] [-r runs]
 */
#include "bench/bench.h"
#include "broker/broker.h"
#include "broker/core/core.h"
#include "broker/core/place.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long long n, w, c, r;
} s_opts_t;

static int
s_flags(int argc, char **argv, s_opts_t *o)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        long long v = atoll(argv[i + 1]);
        if (v <= 0) {
            return -1;
        }
        if (strcmp(argv[i], "-n") == 0) {
            o->n = v;
        } else if (strcmp(argv[i], "-w") == 0) {
            o->w = v;
        } else if (strcmp(argv[i], "-c") == 0) {
            o->c = v;
        } else if (strcmp(argv[i], "-r") == 0) {
            o->r = v;
        } else {
            return -1;
        }
    }
    return argc % 2 == 1 ? 0 : -1;
}

static void
s_tag(char ***tags, size_t *ntags, const char *code)
{
    *ntags = 2;
    *tags = tw_calloc(2, sizeof **tags);
    (*tags)[0] = tw_strdup("code");
    (*tags)[1] = tw_strdup(code);
}

/* One run: returns microseconds per credit return; *tried gets the
 * stations tried per return (-1 when the broker does not count them). */
static double
s_run(const s_opts_t *o, double *tried)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_broker_t *b = calloc(1, sizeof *b);
    b->loop = &loop;
    tw_registry_init(&b->reg);
    tw_stations_init(&b->stations, 16);
    uint32_t h = (uint32_t)tw_registry_handler(&b->reg, "noop", 4, 1);
    tw_bworker_t **ws = calloc((size_t)o->w, sizeof *ws);
    for (long long i = 0; i < o->w; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "w%lld", i);
        ws[i] = tw_registry_add(&b->reg, id, (size_t)len, 0);
        ws[i]->name = tw_strdup(id);
        ws[i]->host = tw_strdup("h");
        ws[i]->slots = 1000;
        ws[i]->credit = 1000;
        s_tag(&ws[i]->tags, &ws[i]->ntags, "busy");
    }
    b->capunplaced = (size_t)o->n;
    b->unplaced = tw_malloc(b->capunplaced * sizeof *b->unplaced);
    for (long long i = 0; i < o->n; i++) {
        char sid[32];
        int len = snprintf(sid, sizeof sid, "s%lld", i);
        tw_station_t *st = tw_stations_add(&b->stations, sid, (size_t)len,
                                           NULL, 0);
        st->handler = h;
        st->code = tw_strdup("idle");
        st->state = TW_SS_PENDING;
        st->queued = 1;
        b->unplaced[b->nunplaced++] = st;
    }
    b->place_wanted = 1;
    tw__place_pass(b); /* the first pass tries every one */
#ifdef TW_BROKER_ASIDE_H
    uint64_t tries0 = b->aside.tries;
#endif
    uint64_t t0 = tw_bench_now_ns();
    for (long long k = 0; k < o->c; k++) {
        tw_bworker_t *w = ws[k % o->w];
        w->credit++; /* dispatch.c s_add_credit */
        b->place_wanted |= b->nunplaced > 0;
        tw__place_pass(b);
    }
    uint64_t t1 = tw_bench_now_ns();
#ifdef TW_BROKER_ASIDE_H
    *tried = (double)(b->aside.tries - tries0) / (double)o->c;
    tw_aside_free(&b->aside);
#else
    *tried = -1;
#endif
    tw_stations_destroy(&b->stations);
    tw_registry_destroy(&b->reg);
    tw_free(b->unplaced);
    free(b);
    free(ws);
    uv_loop_close(&loop);
    return (double)(t1 - t0) / 1e3 / (double)o->c;
}

int
main(int argc, char **argv)
{
    s_opts_t o = {.n = 10000, .w = 20, .c = 2000, .r = 5};
    if (s_flags(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: %s [-n stations] [-w workers] [-c returns] "
                        "[-r runs]\n", argv[0]);
        return 2;
    }
    double *us = calloc((size_t)o.r, sizeof *us);
    double tried = 0;
    for (long long i = 0; i < o.r; i++) {
        us[i] = s_run(&o, &tried);
    }
    char t[32] = "n/a";
    if (tried >= 0) {
        snprintf(t, sizeof t, "%.1f", tried);
    }
    printf("place: %lld unmatched stations, %lld workers: %.3f us per "
           "credit return (stations tried per return %s, median of %lld "
           "runs of %lld)\n", o.n, o.w, tw_bench_median(us, (size_t)o.r), t,
           o.r, o.c);
    free(us);
    return 0;
}
