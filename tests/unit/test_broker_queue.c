/*  tests/unit/test_broker_queue.c - the per-handler pending queue.
 *
 *  The queue is a binary heap of borrowed tasks ordered by priority (higher
 *  first) and then by id (lower, i.e. older, first), and every task records
 *  its own heap position so it can be removed from the middle. The suite
 *  checks the order on hand-built cases (including a removal whose
 *  replacement has to move up, not down), the empty-queue answers, and then
 *  replays a seeded random mix of pushes, pops, peeks, removals and
 *  requeues against a flat reference set. After every operation the heap
 *  shape and every task's heap_idx are verified, so a stale position is
 *  caught at the step that made it, not at a later pop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/queue.h"
#include "broker/state/task.h"
#include "tests/unit/support/rng.h"

/* Fill `t` as a pending task with this id and priority. */
static void
s_task(tw_task_t *t, uint64_t id, int32_t priority)
{
    memset(t, 0, sizeof *t);
    t->id = id;
    t->priority = priority;
}

/* Every slot's task knows its slot, and no child runs before its parent. */
static void
s_check_heap(const tw_queue_t *q)
{
    assert_true(q->len <= q->cap);
    for (size_t i = 0; i < q->len; i++) {
        assert_non_null(q->heap[i]);
        assert_int_equal(q->heap[i]->heap_idx, i);
        if (i > 0) {
            assert_false(tw_queue_before(q->heap[i], q->heap[(i - 1) / 2]));
        }
    }
}

/* Pop everything, checking the ids come out as `ids` (n of them). */
static void
s_drain_expect(tw_queue_t *q, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tw_task_t *peek = tw_queue_peek(q);
        tw_task_t *t = tw_queue_pop(q);
        assert_non_null(t);
        assert_ptr_equal(peek, t);
        assert_int_equal(t->id, ids[i]);
        s_check_heap(q);
    }
    assert_int_equal(q->len, 0);
    assert_null(tw_queue_peek(q));
    assert_null(tw_queue_pop(q));
}

static void
test_empty(void **state)
{
    (void)state;
    tw_queue_t q;
    tw_queue_init(&q);
    assert_int_equal(q.len, 0);
    assert_null(tw_queue_peek(&q));
    assert_null(tw_queue_pop(&q));
    assert_null(tw_queue_pop(&q));
    assert_int_equal(q.len, 0);

    /* Empty again after a push and a pop. */
    tw_task_t t;
    s_task(&t, 1, 0);
    tw_queue_push(&q, &t);
    assert_ptr_equal(tw_queue_pop(&q), &t);
    assert_null(tw_queue_peek(&q));
    assert_null(tw_queue_pop(&q));
    assert_int_equal(q.len, 0);

    tw_queue_free(&q);
    assert_null(q.heap);
    assert_int_equal(q.len, 0);
    assert_int_equal(q.cap, 0);
    tw_queue_free(&q); /* harmless twice */
}

static void
test_peek_does_not_remove(void **state)
{
    (void)state;
    tw_queue_t q;
    tw_queue_init(&q);
    tw_task_t a, b;
    s_task(&a, 1, 0);
    s_task(&b, 2, 5);
    tw_queue_push(&q, &a);
    assert_ptr_equal(tw_queue_peek(&q), &a);
    tw_queue_push(&q, &b);
    assert_ptr_equal(tw_queue_peek(&q), &b);
    assert_ptr_equal(tw_queue_peek(&q), &b);
    assert_int_equal(q.len, 2);
    assert_ptr_equal(tw_queue_pop(&q), &b);
    assert_ptr_equal(tw_queue_peek(&q), &a);
    assert_int_equal(q.len, 1);
    tw_queue_free(&q);
}

static void
test_priority_order(void **state)
{
    (void)state;
    /* Pushed in an order unrelated to priority; ids differ so that each
     * priority is unique here and only priority decides. */
    static const int32_t pri[] = {3, -7, 100, 0, INT32_MIN, 42, -1, INT32_MAX,
                                  17, 1};
    enum { N = sizeof pri / sizeof pri[0] };
    static const uint64_t want[N] = {8, 3, 6, 9, 1, 10, 4, 7, 2, 5};
    tw_task_t t[N];
    tw_queue_t q;
    tw_queue_init(&q);
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], i + 1, pri[i]);
        tw_queue_push(&q, &t[i]);
        s_check_heap(&q);
    }
    assert_int_equal(q.len, N);
    s_drain_expect(&q, want, N);
    tw_queue_free(&q);
}

static void
test_fifo_among_equal_priorities(void **state)
{
    (void)state;
    /* Ids pushed out of order (a requeued task has an older id than the
     * ones queued meanwhile): equal priorities still come out by id. */
    static const uint64_t ids[] = {5, 2, 9, 1, 7, 3, 8, 4, 6, 10};
    enum { N = sizeof ids / sizeof ids[0] };
    static const uint64_t want[N] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    tw_task_t t[N];
    tw_queue_t q;
    tw_queue_init(&q);
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], ids[i], 4);
        tw_queue_push(&q, &t[i]);
    }
    s_drain_expect(&q, want, N);

    /* Mixed: priority first, then id. */
    static const int32_t pri[N] = {1, 1, 2, 1, 2, 0, 2, 0, 1, 2};
    static const uint64_t want2[N] = {3, 5, 7, 10, 1, 2, 4, 9, 6, 8};
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], i + 1, pri[i]);
    }
    for (size_t i = N; i-- > 0;) {
        tw_queue_push(&q, &t[i]);
    }
    s_drain_expect(&q, want2, N);
    tw_queue_free(&q);
}

static void
test_many_equal_in_submission_order(void **state)
{
    (void)state;
    /* Past the initial capacity (64), all one priority, pushed in id
     * order: the queue is a plain FIFO. */
    enum { N = 1000 };
    static tw_task_t t[N];
    tw_queue_t q;
    tw_queue_init(&q);
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], i + 1, 0);
        tw_queue_push(&q, &t[i]);
    }
    s_check_heap(&q);
    for (size_t i = 0; i < N; i++) {
        tw_task_t *x = tw_queue_pop(&q);
        assert_non_null(x);
        assert_int_equal(x->id, i + 1);
    }
    assert_null(tw_queue_pop(&q));
    tw_queue_free(&q);
}

static void
test_remove_cases(void **state)
{
    (void)state;
    tw_queue_t q;
    tw_queue_init(&q);
    tw_task_t t[7];

    /* The only task. */
    s_task(&t[0], 1, 0);
    tw_queue_push(&q, &t[0]);
    tw_queue_remove(&q, &t[0]);
    assert_int_equal(q.len, 0);
    assert_null(tw_queue_peek(&q));

    /* The head, then the last slot. */
    for (size_t i = 0; i < 3; i++) {
        s_task(&t[i], i + 1, 0);
        tw_queue_push(&q, &t[i]);
    }
    tw_queue_remove(&q, &t[0]);
    s_check_heap(&q);
    assert_ptr_equal(tw_queue_peek(&q), &t[1]);
    tw_queue_remove(&q, q.heap[q.len - 1]);
    s_check_heap(&q);
    assert_int_equal(q.len, 1);
    assert_ptr_equal(tw_queue_pop(&q), &t[1]);

    /* Pushing in falling priority builds exactly the heap
     *
     *                 10
     *            5          9
     *          4   3      8   7
     *
     * Removing 4 moves the last task (7) into its slot, below 5: it must
     * go up, not down. */
    static const int32_t pri[7] = {10, 5, 9, 4, 3, 8, 7};
    for (size_t i = 0; i < 7; i++) {
        s_task(&t[i], i + 1, pri[i]);
        tw_queue_push(&q, &t[i]);
        assert_int_equal(t[i].heap_idx, i);
    }
    tw_queue_remove(&q, &t[3]);
    s_check_heap(&q);
    assert_int_equal(t[6].heap_idx, 1);
    assert_int_equal(t[1].heap_idx, 3);
    static const uint64_t want[6] = {1, 3, 6, 7, 2, 5};
    s_drain_expect(&q, want, 6);

    /* A removed task can be pushed again (a cancel that raced a requeue
     * never happens, but a requeue after a pop does). */
    for (size_t i = 0; i < 7; i++) {
        s_task(&t[i], i + 1, 0);
        tw_queue_push(&q, &t[i]);
    }
    tw_queue_remove(&q, &t[2]);
    tw_queue_remove(&q, &t[4]);
    s_check_heap(&q);
    tw_queue_push(&q, &t[4]);
    s_check_heap(&q);
    static const uint64_t want2[6] = {1, 2, 4, 5, 6, 7};
    s_drain_expect(&q, want2, 6);
    tw_queue_free(&q);
}

/* ---- randomized against a reference ---------------------------------- */

#define S_POOL 600

static tw_task_t s_pool[S_POOL];
static int s_in[S_POOL]; /* 1 if s_pool[i] is queued */
static size_t s_nin;

/* The task the reference says runs first, or NULL. */
static tw_task_t *
s_ref_best(void)
{
    tw_task_t *best = NULL;
    for (size_t i = 0; i < S_POOL; i++) {
        if (s_in[i] && (!best || tw_queue_before(&s_pool[i], best))) {
            best = &s_pool[i];
        }
    }
    return best;
}

/* A random queued task (the reference has at least one). */
static tw_task_t *
s_ref_random_in(void)
{
    size_t k = tw_test_rand() % s_nin;
    for (size_t i = 0; i < S_POOL; i++) {
        if (s_in[i] && k-- == 0) {
            return &s_pool[i];
        }
    }
    fail_msg("reference count is wrong");
    return NULL;
}

static void
s_random_run(uint64_t seed, int32_t npri, size_t ops)
{
    tw_test_rng = seed;
    memset(s_in, 0, sizeof s_in);
    s_nin = 0;
    for (size_t i = 0; i < S_POOL; i++) {
        /* Priorities from a small range so that ties (and the id rule)
         * are the common case. */
        s_task(&s_pool[i], i + 1, (int32_t)(tw_test_rand() % (uint64_t)npri) -
                                      npri / 2);
    }
    tw_queue_t q;
    tw_queue_init(&q);
    size_t pushes = 0, pops = 0, removes = 0, empty_pops = 0;
    for (size_t op = 0; op < ops; op++) {
        /* Grow for the first half and shrink in the second, so both long
         * and empty queues are visited. */
        unsigned r = (unsigned)(tw_test_rand() % 100);
        int grow = (op / (ops / 8)) % 2 == 0;
        if (r < (grow ? 55u : 30u)) {
            if (s_nin == S_POOL) {
                continue;
            }
            size_t i = tw_test_rand() % S_POOL;
            while (s_in[i]) {
                i = (i + 1) % S_POOL;
            }
            /* Sometimes change its priority, like a fresh submission. */
            if (tw_test_rand() % 4 == 0) {
                s_pool[i].priority =
                    (int32_t)(tw_test_rand() % (uint64_t)npri) - npri / 2;
            }
            tw_queue_push(&q, &s_pool[i]);
            s_in[i] = 1;
            s_nin++;
            pushes++;
        } else if (r < 75) {
            tw_task_t *want = s_ref_best();
            assert_ptr_equal(tw_queue_peek(&q), want);
            tw_task_t *got = tw_queue_pop(&q);
            assert_ptr_equal(got, want);
            if (got) {
                s_in[got - s_pool] = 0;
                s_nin--;
                pops++;
            } else {
                empty_pops++;
            }
        } else {
            if (!s_nin) {
                assert_int_equal(q.len, 0);
                continue;
            }
            tw_task_t *t = s_ref_random_in();
            tw_queue_remove(&q, t);
            s_in[t - s_pool] = 0;
            s_nin--;
            removes++;
        }
        assert_int_equal(q.len, s_nin);
        s_check_heap(&q);
        assert_ptr_equal(tw_queue_peek(&q), s_ref_best());
    }
    /* Drain: the whole remaining order matches the reference. */
    tw_task_t *t;
    while ((t = tw_queue_pop(&q))) {
        assert_ptr_equal(t, s_ref_best());
        s_in[t - s_pool] = 0;
        s_nin--;
        s_check_heap(&q);
    }
    assert_int_equal(s_nin, 0);
    /* The mix really exercised every operation. */
    assert_true(pushes > ops / 4);
    assert_true(pops > ops / 10);
    assert_true(removes > ops / 10);
    tw_queue_free(&q);
    (void)empty_pops;
}

static void
test_random_vs_reference(void **state)
{
    (void)state;
    s_random_run(0x9e3779b97f4a7c15ULL, 5, 20000);
}

static void
test_random_all_equal_priority(void **state)
{
    (void)state;
    s_random_run(0xdeadbeefcafef00dULL, 1, 10000);
}

static void
test_random_wide_priorities(void **state)
{
    (void)state;
    s_random_run(0x0123456789abcdefULL, 1000, 10000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_peek_does_not_remove),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_fifo_among_equal_priorities),
        cmocka_unit_test(test_many_equal_in_submission_order),
        cmocka_unit_test(test_remove_cases),
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_random_all_equal_priority),
        cmocka_unit_test(test_random_wide_priorities),
    };
    return cmocka_run_group_tests_name("broker_queue", tests, NULL, NULL);
}
