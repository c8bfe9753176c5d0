/*  tests/unit/test_broker_task.c - the broker's task table.
 *
 *  The table hands out ids from 1 upwards, owns a private copy of each
 *  task's arguments and later of its result and error message, keeps ended
 *  tasks on a list in the order they ended, and garbage-collects that list
 *  from the oldest end by age (result TTL) and by count (max results).
 *  Time is plain numbers passed in. Every test runs under a counting
 *  allocator installed with tw_replace_allocator(), so besides the values
 *  the suite checks that copies really are separate blocks, that ending a
 *  task frees its arguments, that collection frees exactly the collected
 *  tasks, and that destroy leaves nothing behind (independently of ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "broker/state/task.h"
#include "common/alloc.h"
#include "proto/proto.h"
#include "tests/unit/support/count_alloc.h"

#define S_TEST(f)                                                            \
    cmocka_unit_test_setup_teardown(f, tw_count_setup, tw_count_teardown)

/* ---- helpers ---------------------------------------------------------- */

/* The ids on the ended list, head first, must be `ids` (n of them), and
 * the links must agree both ways. */
static void
s_expect_ended(const tw_tasks_t *ts, const uint64_t *ids, size_t n)
{
    assert_int_equal(ts->ended.len, n);
    const tw_task_t *prev = NULL;
    const tw_task_t *t = ts->ended.head;
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t);
        assert_int_equal(t->id, ids[i]);
        assert_ptr_equal(t->prev, prev);
        assert_ptr_equal(tw_tasks_get(ts, ids[i]), t);
        prev = t;
        t = t->next;
    }
    assert_null(t);
    assert_ptr_equal(ts->ended.tail, prev);
}

/* End `t` with a result and an error message, both distinct per id. */
/* Collect by age and count only. */
static size_t
s_gc(tw_tasks_t *ts, uint64_t now_ms, uint64_t ttl_ms, size_t max_ended)
{
    tw_tasks_gc_t lim = {ttl_ms, max_ended, UINT64_MAX, SIZE_MAX};
    return tw_tasks_gc(ts, now_ms, &lim, NULL);
}

static void
s_end(tw_tasks_t *ts, tw_task_t *t, uint64_t now_ms)
{
    char r[32], e[32];
    int rl = snprintf(r, sizeof r, "result-%llu", (unsigned long long)t->id);
    int el = snprintf(e, sizeof e, "error-%llu", (unsigned long long)t->id);
    tw_tasks_end(ts, t, TW_ST_ERROR, r, (size_t)rl, e, (size_t)el, now_ms);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_ids_from_one(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    assert_int_equal(ts.live, 0);
    assert_int_equal(ts.ended.len, 0);
    assert_null(tw_tasks_get(&ts, 0));
    assert_null(tw_tasks_get(&ts, 1));

    tw_task_t *t[5];
    for (size_t i = 0; i < 5; i++) {
        t[i] = tw_tasks_create(&ts, "x", 1, 100 + i);
        assert_non_null(t[i]);
        assert_int_equal(t[i]->id, i + 1);
        assert_int_equal(t[i]->state, TW_ST_PENDING);
        assert_int_equal(t[i]->t_ms, 100 + i);
        assert_int_equal(t[i]->attempt, 0);
        assert_null(t[i]->error);
        assert_null(t[i]->prev);
        assert_null(t[i]->next);
        assert_int_equal(ts.live, i + 1);
    }
    for (size_t i = 0; i < 5; i++) {
        assert_ptr_equal(tw_tasks_get(&ts, i + 1), t[i]);
    }
    assert_null(tw_tasks_get(&ts, 0));
    assert_null(tw_tasks_get(&ts, 6));
    assert_null(tw_tasks_get(&ts, UINT64_MAX));
    assert_int_equal(ts.ended.len, 0);
    tw_tasks_destroy(&ts);
}

static void
test_create_copies_data(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    long before = tw_count_blocks;

    unsigned char args[6] = {0x93, 0x01, 0x02, 0xa1, 'x', 0x00};
    tw_task_t *t = tw_tasks_create(&ts, args, sizeof args, 0);
    assert_int_equal(t->data_len, sizeof args);
    assert_non_null(t->data);
    assert_ptr_not_equal(t->data, args);
    memset(args, 0xee, sizeof args); /* the caller's buffer is reused */
    static const unsigned char want[6] = {0x93, 0x01, 0x02, 0xa1, 'x', 0x00};
    assert_memory_equal(t->data, want, sizeof want);

    /* No arguments: no buffer at all. */
    tw_task_t *u = tw_tasks_create(&ts, NULL, 0, 0);
    assert_null(u->data);
    assert_int_equal(u->data_len, 0);
    tw_task_t *v = tw_tasks_create(&ts, args, 0, 0);
    assert_null(v->data);
    assert_int_equal(v->data_len, 0);

    /* Each task is a block, plus one for the first one's arguments (and
     * whatever the id map grew by, which is at least nothing). */
    assert_true(tw_count_blocks - before >= 4);
    tw_tasks_destroy(&ts);
    assert_int_equal(tw_count_blocks, before);
}

static void
test_end_keeps_copies(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    tw_task_t *a = tw_tasks_create(&ts, "args-a", 6, 10);
    tw_task_t *b = tw_tasks_create(&ts, "args-b", 6, 11);
    tw_task_t *c = tw_tasks_create(&ts, "args-c", 6, 12);
    assert_int_equal(ts.live, 3);

    /* An outcome with a result: the arguments are replaced by a copy. */
    char result[] = "\xa2ok";
    tw_tasks_end(&ts, a, TW_ST_OK, result, 3, NULL, 0, 500);
    result[1] = 'X';
    assert_int_equal(a->state, TW_ST_OK);
    assert_int_equal(a->t_ms, 500); /* now the end time */
    assert_int_equal(a->data_len, 3);
    assert_memory_equal(a->data, "\xa2ok", 3);
    assert_ptr_not_equal(a->data, result);
    assert_null(a->error);
    assert_int_equal(ts.live, 2);
    static const uint64_t one[] = {1};
    s_expect_ended(&ts, one, 1);

    /* A failure: the message is copied up to elen and terminated, even if
     * the source runs on (as a msgpack string does). */
    char err[] = "boom and more";
    long before = tw_count_blocks;
    tw_tasks_end(&ts, b, TW_ST_ERROR, NULL, 0, err, 4, 600);
    err[0] = 'X';
    /* The args were freed and the message allocated. */
    assert_int_equal(tw_count_blocks, before);
    assert_int_equal(b->state, TW_ST_ERROR);
    assert_string_equal(b->error, "boom");
    assert_ptr_not_equal(b->error, err);
    assert_null(b->data);
    assert_int_equal(b->data_len, 0);
    assert_int_equal(ts.live, 1);

    /* Cancelled: neither result nor error; a result pointer with length
     * 0 keeps nothing either. */
    before = tw_count_blocks;
    tw_tasks_end(&ts, c, TW_ST_CANCELLED, "ignored", 0, NULL, 0, 700);
    assert_int_equal(tw_count_blocks, before - 1); /* only the args went */
    assert_null(c->data);
    assert_int_equal(c->data_len, 0);
    assert_null(c->error);
    assert_int_equal(c->state, TW_ST_CANCELLED);
    assert_int_equal(ts.live, 0);

    static const uint64_t three[] = {1, 2, 3};
    s_expect_ended(&ts, three, 3);
    /* Ended tasks stay findable by id until collected. */
    assert_ptr_equal(tw_tasks_get(&ts, 2), b);
    tw_tasks_destroy(&ts);
}

static void
test_ended_list_in_end_order(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    tw_task_t *t[5];
    for (size_t i = 0; i < 5; i++) {
        t[i] = tw_tasks_create(&ts, "a", 1, 0);
    }
    /* They end in an order that is not id order. */
    static const size_t order[] = {3, 0, 4, 1, 2};
    for (size_t k = 0; k < 5; k++) {
        s_end(&ts, t[order[k]], 100 * (k + 1));
    }
    static const uint64_t want[] = {4, 1, 5, 2, 3};
    s_expect_ended(&ts, want, 5);
    assert_string_equal(t[3]->error, "error-4");
    assert_memory_equal(t[3]->data, "result-4", 8);
    assert_int_equal(ts.live, 0);
    tw_tasks_destroy(&ts);
}

static void
test_gc_by_ttl(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    tw_task_t *t[5];
    for (size_t i = 0; i < 5; i++) {
        t[i] = tw_tasks_create(&ts, "args", 4, 0);
    }
    /* Ended at 1000, 2000, 3000, 4000 (ids 3, 1, 4, 2); id 5 stays live. */
    s_end(&ts, t[2], 1000);
    s_end(&ts, t[0], 2000);
    s_end(&ts, t[3], 3000);
    s_end(&ts, t[1], 4000);
    const size_t many = 1000;

    /* Nothing is old enough yet. */
    assert_int_equal(s_gc(&ts, 1500, 1000, many), 0);
    assert_int_equal(s_gc(&ts, 1999, 1000, many), 0);
    assert_int_equal(ts.ended.len, 4);

    /* At 2500 with a 1 s TTL only the one ended at 1000 goes: one task,
     * its result and its message, so three blocks. */
    long before = tw_count_blocks;
    assert_int_equal(s_gc(&ts, 2500, 1000, many), 1);
    assert_int_equal(tw_count_blocks, before - 3);
    assert_null(tw_tasks_get(&ts, 3));
    static const uint64_t left[] = {1, 4, 2};
    s_expect_ended(&ts, left, 3);

    /* The next is 999 ms old: still kept. */
    assert_int_equal(s_gc(&ts, 2999, 1000, many), 0);

    /* Much later everything ended goes, the live task stays. */
    before = tw_count_blocks;
    assert_int_equal(s_gc(&ts, 10000, 1000, many), 3);
    assert_int_equal(tw_count_blocks, before - 9);
    s_expect_ended(&ts, NULL, 0);
    assert_null(ts.ended.head);
    assert_null(ts.ended.tail);
    for (uint64_t id = 1; id <= 4; id++) {
        assert_null(tw_tasks_get(&ts, id));
    }
    assert_ptr_equal(tw_tasks_get(&ts, 5), t[4]);
    assert_int_equal(t[4]->state, TW_ST_PENDING);
    assert_int_equal(ts.live, 1);

    /* Collecting an empty list is a no-op. */
    assert_int_equal(s_gc(&ts, 20000, 0, 0), 0);
    assert_ptr_equal(tw_tasks_get(&ts, 5), t[4]);
    tw_tasks_destroy(&ts);
}

static void
test_gc_by_count(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    tw_task_t *t[6];
    for (size_t i = 0; i < 6; i++) {
        t[i] = tw_tasks_create(&ts, NULL, 0, 0);
    }
    /* All end at the same time, in the order 5, 3, 1, 4, 2, 6. */
    static const size_t order[] = {4, 2, 0, 3, 1, 5};
    for (size_t k = 0; k < 6; k++) {
        s_end(&ts, t[order[k]], 100);
    }
    const uint64_t ttl = 1000000;

    /* Within the limit: nothing. */
    assert_int_equal(s_gc(&ts, 100, ttl, 6), 0);
    assert_int_equal(s_gc(&ts, 100, ttl, 100), 0);

    /* Over it: the oldest ended go first, not the lowest ids. */
    long before = tw_count_blocks;
    assert_int_equal(s_gc(&ts, 100, ttl, 3), 3);
    assert_int_equal(tw_count_blocks, before - 9);
    static const uint64_t left[] = {4, 2, 6};
    s_expect_ended(&ts, left, 3);
    assert_null(tw_tasks_get(&ts, 5));
    assert_null(tw_tasks_get(&ts, 3));
    assert_null(tw_tasks_get(&ts, 1));

    /* Repeating is stable. */
    assert_int_equal(s_gc(&ts, 100, ttl, 3), 0);

    /* The count alone: a limit of 1 takes two more. */
    assert_int_equal(s_gc(&ts, 120, ttl, 1), 2);
    static const uint64_t last[] = {6};
    s_expect_ended(&ts, last, 1);
    /* The age alone: within the limit, but 51 ms old with a 50 ms TTL. */
    assert_int_equal(s_gc(&ts, 151, 50, 1), 1);
    s_expect_ended(&ts, NULL, 0);

    /* A limit of 0 keeps no outcome at all. */
    tw_task_t *x = tw_tasks_create(&ts, NULL, 0, 200);
    uint64_t xid = x->id;
    s_end(&ts, x, 200);
    assert_int_equal(s_gc(&ts, 200, ttl, 0), 1);
    assert_null(tw_tasks_get(&ts, xid));
    assert_int_equal(ts.live, 0);
    tw_tasks_destroy(&ts);
}

static void
test_ids_not_reused(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    for (int i = 0; i < 3; i++) {
        tw_task_t *t = tw_tasks_create(&ts, "a", 1, 0);
        s_end(&ts, t, 0);
    }
    assert_int_equal(s_gc(&ts, 10, 1, 100), 3);
    assert_int_equal(ts.ended.len, 0);
    tw_task_t *t = tw_tasks_create(&ts, "a", 1, 10);
    assert_int_equal(t->id, 4);
    assert_null(tw_tasks_get(&ts, 1));
    assert_ptr_equal(tw_tasks_get(&ts, 4), t);
    tw_tasks_destroy(&ts);
}

static void
test_live_count(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    tw_task_t *t[4];
    for (size_t i = 0; i < 4; i++) {
        t[i] = tw_tasks_create(&ts, "a", 1, 0);
    }
    assert_int_equal(ts.live, 4);
    /* A running task is still live; the table does not track that state
     * change, the broker does. */
    t[0]->state = TW_ST_RUNNING;
    assert_int_equal(ts.live, 4);
    s_end(&ts, t[0], 5);
    s_end(&ts, t[2], 6);
    assert_int_equal(ts.live, 2);
    assert_int_equal(ts.ended.len, 2);
    /* Collection never touches live tasks, even with no TTL and no room. */
    assert_int_equal(s_gc(&ts, 1000, 0, 0), 2);
    assert_int_equal(ts.live, 2);
    assert_ptr_equal(tw_tasks_get(&ts, 2), t[1]);
    assert_ptr_equal(tw_tasks_get(&ts, 4), t[3]);
    assert_memory_equal(t[1]->data, "a", 1);
    tw_tasks_destroy(&ts);
}

static void
test_task_list(void **state)
{
    (void)state;
    tw_task_t t[4];
    memset(t, 0, sizeof t);
    tw_task_list_t l = {NULL, NULL, 0};
    for (size_t i = 0; i < 4; i++) {
        t[i].id = i + 1;
        tw_task_list_push(&l, &t[i]);
    }
    assert_int_equal(l.len, 4);
    assert_ptr_equal(l.head, &t[0]);
    assert_ptr_equal(l.tail, &t[3]);

    tw_task_list_remove(&l, &t[1]); /* middle */
    assert_int_equal(l.len, 3);
    assert_ptr_equal(t[0].next, &t[2]);
    assert_ptr_equal(t[2].prev, &t[0]);
    assert_null(t[1].prev);
    assert_null(t[1].next);

    tw_task_list_remove(&l, &t[0]); /* head */
    assert_ptr_equal(l.head, &t[2]);
    assert_null(t[2].prev);

    tw_task_list_remove(&l, &t[3]); /* tail */
    assert_ptr_equal(l.tail, &t[2]);
    assert_null(t[2].next);

    tw_task_list_remove(&l, &t[2]); /* last one */
    assert_int_equal(l.len, 0);
    assert_null(l.head);
    assert_null(l.tail);

    /* A removed task can join another list (requeue, then dispatch). */
    tw_task_list_push(&l, &t[1]);
    assert_ptr_equal(l.head, &t[1]);
    assert_ptr_equal(l.tail, &t[1]);
    assert_null(t[1].prev);
    assert_null(t[1].next);
}

static void
test_destroy_frees_everything(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    for (int i = 0; i < 300; i++) {
        tw_task_t *t = tw_tasks_create(&ts, "payload", 7, (uint64_t)i);
        if (i % 3 == 0) {
            s_end(&ts, t, (uint64_t)i);
        } else if (i % 3 == 1) {
            t->state = TW_ST_RUNNING;
        }
    }
    assert_int_equal(ts.live, 200);
    assert_int_equal(ts.ended.len, 100);
    tw_tasks_destroy(&ts);
    assert_int_equal(tw_count_blocks, 0);
    /* And the table can be used again after init. */
    tw_tasks_init(&ts);
    tw_task_t *t = tw_tasks_create(&ts, NULL, 0, 0);
    assert_int_equal(t->id, 1);
    tw_tasks_destroy(&ts);
    assert_int_equal(tw_count_blocks, 0);
}

/* payload_bytes follows every task's arguments and then its result;
 * collection by bytes takes the oldest ended tasks, at most max_n per
 * call, and says how many went for the bytes alone. */
static void
test_gc_by_bytes(void **state)
{
    (void)state;
    tw_tasks_t ts;
    tw_tasks_init(&ts);
    static char big[1000];
    tw_task_t *t[4];
    for (size_t i = 0; i < 4; i++) {
        t[i] = tw_tasks_create(&ts, big, 100, 0);
    }
    assert_int_equal(ts.payload_bytes, 400);
    for (size_t i = 0; i < 3; i++) {
        tw_tasks_end(&ts, t[i], TW_ST_OK, big, 1000, NULL, 0, 10 + i);
    }
    /* Three results of 1000 and one argument of 100. */
    assert_int_equal(ts.payload_bytes, 3100);
    tw_tasks_gc_t lim = {1000000, 100, 2500, SIZE_MAX};
    size_t bytes_only = 0;
    assert_int_equal(tw_tasks_gc(&ts, 20, &lim, &bytes_only), 1);
    assert_int_equal(bytes_only, 1);
    assert_int_equal(ts.payload_bytes, 2100);
    assert_null(tw_tasks_get(&ts, 1)); /* the oldest ended */
    lim.max_bytes = 0;
    lim.max_n = 1;
    assert_int_equal(tw_tasks_gc(&ts, 20, &lim, &bytes_only), 1);
    assert_int_equal(ts.payload_bytes, 1100);
    lim.max_n = SIZE_MAX;
    /* Only ended tasks go: the live one's arguments stay. */
    assert_int_equal(tw_tasks_gc(&ts, 20, &lim, &bytes_only), 1);
    assert_int_equal(ts.payload_bytes, 100);
    assert_ptr_equal(tw_tasks_get(&ts, 4), t[3]);
    tw_tasks_destroy(&ts);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        S_TEST(test_ids_from_one),
        S_TEST(test_create_copies_data),
        S_TEST(test_end_keeps_copies),
        S_TEST(test_ended_list_in_end_order),
        S_TEST(test_gc_by_ttl),
        S_TEST(test_gc_by_count),
        S_TEST(test_gc_by_bytes),
        S_TEST(test_ids_not_reused),
        S_TEST(test_live_count),
        S_TEST(test_task_list),
        S_TEST(test_destroy_frees_everything),
    };
    return cmocka_run_group_tests_name("broker_task", tests, NULL, NULL);
}
