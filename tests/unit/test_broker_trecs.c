/*  tests/unit/test_broker_trecs.c - task records by state, paged.
 *
 *  Thousands of records move through random life cycles (pending,
 *  running, back to pending, an end, sometimes dropped) on a clock
 *  passed by hand. Then every kind of filter (no state, one state,
 *  "failed", since, a match callback, limits from 1 to 100) is paged
 *  with cursors from the newest change to the end, with a scan budget
 *  from tiny to unlimited, and the pages put together must equal a
 *  brute-force listing of the same records, in the same order, without
 *  repeats. Also: a page that fills stops before records it has not
 *  examined, the budget bounds every page, and the sets sweep oldest
 *  first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "broker/state/trecs.h"
#include "proto/proto.h"
#include "tests/unit/support/rng.h"

enum { N = 3000 };

typedef struct {
    tw_trec_t rec; /* first: a tw_trec_t * is a s_task_t * */
    int alive;
    int handler; /* for the match callback */
} s_task_t;

static s_task_t s_tasks[N];
static tw_trecs_t s_r;
static uint64_t s_now;
static uint64_t
s_rand(void)
{
    return tw_test_rand();
}

static const int s_ends[] = {TW_ST_OK, TW_ST_OK, TW_ST_OK, TW_ST_ERROR,
                             TW_ST_TIMEOUT, TW_ST_LOST, TW_ST_CANCELLED};

static void
s_build(void)
{
    memset(s_tasks, 0, sizeof s_tasks);
    tw_trecs_init(&s_r);
    s_now = 1000;
    for (int i = 0; i < N; i++) {
        s_tasks[i].rec.set = TW_TREC_NONE;
        s_tasks[i].handler = (int)(s_rand() % 4);
    }
    size_t made = 0;
    for (int step = 0; step < 6 * N; step++) {
        s_now += s_rand() % 3; /* several changes may share a ms */
        if (made < N && s_rand() % 3 == 0) {
            s_tasks[made].alive = 1;
            tw_trecs_move(&s_r, &s_tasks[made].rec, TW_ST_PENDING, s_now);
            made++;
            continue;
        }
        if (made == 0) {
            continue;
        }
        s_task_t *t = &s_tasks[s_rand() % made];
        if (!t->alive) {
            continue;
        }
        switch (t->rec.state) {
        case TW_ST_PENDING:
            tw_trecs_move(&s_r, &t->rec, TW_ST_RUNNING, s_now);
            break;
        case TW_ST_RUNNING:
            tw_trecs_move(&s_r, &t->rec,
                          s_rand() % 5 == 0
                              ? TW_ST_PENDING
                              : s_ends[s_rand() % (sizeof s_ends /
                                                   sizeof s_ends[0])],
                          s_now);
            break;
        default:
            if (s_rand() % 4 == 0) {
                tw_trecs_drop(&s_r, &t->rec);
                t->alive = 0;
            } else if (s_rand() % 4 == 0 && t->rec.state != TW_ST_OK) {
                tw_trecs_move(&s_r, &t->rec, TW_ST_PENDING, s_now); /* retry */
            }
        }
    }
}

static int
s_match(const tw_trec_t *rec, void *arg)
{
    int want = *(int *)arg;
    return ((const s_task_t *)rec)->handler == want;
}

static int
s_by_csn_desc(const void *a, const void *b)
{
    uint64_t x = (*(s_task_t *const *)a)->rec.csn;
    uint64_t y = (*(s_task_t *const *)b)->rec.csn;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The brute-force answer: alive records the filter admits, newest first. */
static size_t
s_model(const tw_tfilter_t *f, int *handler, s_task_t **out)
{
    size_t n = 0;
    uint64_t oldest = f->since_ms && f->since_ms < s_now
                          ? s_now - f->since_ms : 0;
    for (int i = 0; i < N; i++) {
        s_task_t *t = &s_tasks[i];
        if (t->alive && tw_tfilter_has_state(f, t->rec.state) &&
            t->rec.changed_ms >= oldest &&
            (!handler || t->handler == *handler)) {
            out[n++] = t;
        }
    }
    qsort(out, n, sizeof *out, s_by_csn_desc);
    return n;
}

static void
s_page_all(tw_tfilter_t *f, int *handler, size_t budget)
{
    s_task_t **want = calloc(N, sizeof *want);
    size_t nwant = s_model(f, handler, want);
    tw_trec_t **page = calloc(f->limit, sizeof *page);
    size_t got = 0, pages = 0;
    f->has_cursor = 0;
    for (;;) {
        tw_trecs_page_t pg;
        tw_trecs_page(&s_r, f, s_now, budget, handler ? s_match : NULL,
                      handler, page, &pg);
        assert_true(pg.n <= f->limit);
        /* The budget bounds the walk (a page may end on a hole run). */
        assert_true(pg.scanned <= budget + 64 || budget >= 1000000);
        for (size_t i = 0; i < pg.n; i++) {
            assert_true(got < nwant);
            assert_ptr_equal(page[i], &want[got]->rec);
            got++;
        }
        if (!pg.more) {
            break;
        }
        f->has_cursor = 1;
        f->below = pg.next;
        assert_true(++pages < 100000);
    }
    assert_int_equal(got, nwant);
    free(want);
    free(page);
}

static void
test_pages_match_the_model(void **state)
{
    (void)state;
    s_build();
    static const char *const states[] = {NULL, "pending", "running", "ok",
                                         "failed", "error", "cancelled",
                                         "lost"};
    static const size_t budgets[] = {1, 3, 50, 1000000};
    static const uint32_t limits[] = {1, 7, 100};
    char why[128];
    for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
        for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
            for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
                for (int h = -1; h < 2; h++) {
                    tw_tfilter_t f;
                    tw_tfilter_init(&f, limits[l]);
                    if (states[s]) {
                        assert_int_equal(tw_tfilter_state(
                            &f, states[s], strlen(states[s]), why,
                            sizeof why), 0);
                    }
                    if (h == 1) {
                        f.since_ms = 500; /* the last 500 ms */
                    }
                    int handler = 2;
                    s_page_all(&f, h == 0 ? &handler : NULL, budgets[b]);
                }
            }
        }
    }
    tw_trecs_free(&s_r);
}

static void
test_sets_and_sweep(void **state)
{
    (void)state;
    s_build();
    size_t total = 0;
    for (int s = 0; s < TW_TREC_NSETS; s++) {
        total += tw_trecs_count(&s_r, (tw_trec_set_t)s);
        /* The oldest of a set has the smallest change number in it. */
        tw_trec_t *o = tw_trecs_oldest(&s_r, (tw_trec_set_t)s);
        for (int i = 0; o && i < N; i++) {
            if (s_tasks[i].alive && s_tasks[i].rec.set == s) {
                assert_true(s_tasks[i].rec.csn >= o->csn);
            }
        }
    }
    size_t alive = 0;
    for (int i = 0; i < N; i++) {
        alive += s_tasks[i].alive;
    }
    assert_int_equal(total, alive);
    /* Sweep the ok set oldest first until it is empty. */
    uint64_t last = 0;
    tw_trec_t *o;
    while ((o = tw_trecs_oldest(&s_r, TW_TREC_OK)) != NULL) {
        assert_true(o->csn > last);
        last = o->csn;
        tw_trecs_drop(&s_r, o);
        ((s_task_t *)o)->alive = 0;
    }
    assert_int_equal(tw_trecs_count(&s_r, TW_TREC_OK), 0);
    /* Restore: records put back keep their numbers. */
    tw_trecs_t r2;
    tw_trecs_init(&r2);
    s_task_t a = {{.csn = 40, .changed_ms = 7, .state = TW_ST_ERROR}, 1, 0};
    s_task_t b = {{.csn = 41, .changed_ms = 8, .state = TW_ST_PENDING}, 1, 0};
    tw_trecs_restore(&r2, &a.rec);
    tw_trecs_restore(&r2, &b.rec);
    assert_int_equal(a.rec.set, TW_TREC_FAILED);
    assert_int_equal(r2.next_csn, 42);
    tw_trecs_move(&r2, &b.rec, TW_ST_RUNNING, 9);
    assert_int_equal(b.rec.csn, 42);
    assert_int_equal(tw_trecs_count(&r2, TW_TREC_PENDING), 0);
    tw_trecs_free(&r2);
    tw_trecs_free(&s_r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_match_the_model),
        cmocka_unit_test(test_sets_and_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
