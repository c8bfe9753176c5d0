/*  bench/tw_records.c - a page of task records out of a million.
 *
 *  `taskwheel tasks list`, QUERY tasks and GET /api/v1/tasks answer one
 *  page of the records the broker keeps (PROTOCOL.md 16.3). This times
 *  the broker's part of a first page in process, with no sockets: N
 *  records in the record sets (broker/state/trecs.h) the way a long run leaves
 *  them (most ended ok, some failed or cancelled, a few pending or
 *  running, some dropped by the sweep or purged from the middle), then a
 *  first page of 50 for several filters, each repeated R times; it
 *  reports the median time, the records examined, and the index's bytes
 *  per record:
 *
 *    records: 1000000 kept; first page of 50 (median of 20): all 0.004 ms
 *    (50 examined), failed 0.005 ms, failed for 1 handler in 50 0.1 ms,
 *    nothing matching 4.2 ms (100000 examined, the budget); index 8.4
 *    bytes per record
 *
 *  The match callback stands for the broker's (handler, group, text);
 *  "nothing matching" is the worst case a filter can make, which the
 *  scan budget bounds. The end-to-end figure, through the broker's
 *  sockets or its HTTP port, is the broker benchmark's.
 *
 *  Usage: bench-records [-n records] [-r runs]
 */
#include "bench/bench.h"
#include "broker/state/trecs.h"
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tw_trec_t rec;
    uint32_t handler;
} s_task_t;

static int
s_handler_is(const tw_trec_t *rec, void *arg)
{
    return ((const s_task_t *)rec)->handler == *(uint32_t *)arg;
}

static int
s_never(const tw_trec_t *rec, void *arg)
{
    (void)rec;
    (void)arg;
    return 0;
}

typedef struct {
    const char *name;
    const char *state;
    tw_trecs_match_fn match;
} s_case_t;

int
main(int argc, char **argv)
{
    long long n = 1000000, runs = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        long long v = atoll(argv[i + 1]);
        if (v <= 0 || (strcmp(argv[i], "-n") && strcmp(argv[i], "-r"))) {
            fprintf(stderr, "usage: bench-records [-n records] [-r runs]\n");
            return 2;
        }
        *(strcmp(argv[i], "-n") == 0 ? &n : &runs) = v;
    }
    s_task_t *t = calloc((size_t)n, sizeof *t);
    tw_trecs_t r;
    tw_trecs_init(&r);
    uint64_t now = 1, rng = 88172645463325252ull;
    for (long long i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        t[i].handler = (uint32_t)(rng % 50);
        t[i].rec.set = TW_TREC_NONE;
        tw_trecs_move(&r, &t[i].rec, TW_ST_PENDING, now);
        tw_trecs_move(&r, &t[i].rec, TW_ST_RUNNING, now);
        unsigned k = (unsigned)(rng >> 40) % 100;
        int end = k < 90 ? TW_ST_OK : k < 96 ? TW_ST_ERROR
                  : k < 98 ? TW_ST_CANCELLED : TW_ST_RUNNING;
        if (end != TW_ST_RUNNING) {
            tw_trecs_move(&r, &t[i].rec, end, now);
        }
        if (k == 99 && i % 2) {
            tw_trecs_drop(&r, &t[i].rec); /* purged from the middle */
        }
        now += (i % 16 == 0);
    }
    size_t kept = 0, slots = 0;
    for (int s = 0; s < TW_TREC_NSETS; s++) {
        kept += tw_trecs_count(&r, (tw_trec_set_t)s);
        slots += r.sets[s].cap;
    }
    uint32_t one = 7;
    s_case_t cases[] = {{"all", NULL, NULL},
                        {"failed", "failed", NULL},
                        {"failed for 1 handler in 50", "failed", s_handler_is},
                        {"nothing matching", NULL, s_never}};
    tw_trec_t *out[50];
    printf("records: %zu kept; first page of 50 (median of %lld):", kept,
           runs);
    double *ms = calloc((size_t)runs, sizeof *ms);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tw_tfilter_t f;
        tw_tfilter_init(&f, 50);
        char why[128];
        if (cases[c].state) {
            tw_tfilter_state(&f, cases[c].state, strlen(cases[c].state), why,
                             sizeof why);
        }
        tw_trecs_page_t pg = {0};
        for (long long i = 0; i < runs; i++) {
            uint64_t t0 = tw_bench_now_ns();
            tw_trecs_page(&r, &f, now, 100000, cases[c].match, &one, out,
                          &pg);
            ms[i] = (double)(tw_bench_now_ns() - t0) / 1e6;
        }
        printf("%s %s %.3f ms (%zu examined)", c ? "," : "", cases[c].name,
               tw_bench_median(ms, (size_t)runs), pg.scanned);
    }
    printf("; index %.1f bytes per record\n",
           (double)slots * sizeof(uintptr_t) / (double)kept);
    free(ms);
    tw_trecs_free(&r);
    free(t);
    return 0;
}
