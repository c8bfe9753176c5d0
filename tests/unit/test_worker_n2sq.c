/*  tests/unit/test_worker_n2sq.c - n2s messages waiting for a station's
 *  program, and those handed to it and not yet taken (worker/n2sq.h).
 *
 *  The queue's limits (messages and bytes, drops counted), its order, and
 *  the requeue a proc child's outcome asks for (PROTOCOL.md 15.10): the
 *  messages it did not take go back to the front of the queue, in order,
 *  before those that came meanwhile, and the ones it took are freed. Run
 *  under valgrind as well (memcheck), which checks that every message
 *  moved between lists is freed once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "common/error.h"
#include "tests/unit/support/suite.h"
#include "worker/n2sq.h"

#include <stdio.h>
#include <string.h>

/* Queue message `seq` with the text of its number as data. */
static int
s_push(tw_n2sq_t *q, uint64_t seq)
{
    char d[32];
    int n = snprintf(d, sizeof d, "m%llu", (unsigned long long)seq);
    return tw_n2sq_push(q, seq, d, (size_t)n, NULL, 0);
}

/* The seqs of `q`, oldest first, as "1 2 3". */
static const char *
s_seqs(const tw_n2sq_t *q)
{
    static char out[512];
    size_t at = 0;
    out[0] = '\0';
    for (const tw_n2sq_msg_t *m = q->head; m; m = m->next) {
        at += (size_t)snprintf(out + at, sizeof out - at, "%s%llu",
                               at ? " " : "", (unsigned long long)m->seq);
    }
    return out;
}

static void
test_fifo_and_suffix(void **state)
{
    (void)state;
    tw_n2sq_t q = {0};
    assert_int_equal(s_push(&q, 1), 0);
    assert_int_equal(tw_n2sq_push(&q, 2, "ab", 2, "\n", 1), 0);
    assert_int_equal(q.n, 2);
    assert_int_equal(q.bytes, 2 + 3);
    tw_n2sq_msg_t *m = tw_n2sq_pop(&q);
    assert_int_equal(m->seq, 1);
    assert_memory_equal(m->data, "m1", 2);
    tw_free(m);
    m = tw_n2sq_pop(&q);
    assert_int_equal(m->len, 3);
    assert_memory_equal(m->data, "ab\n", 3);
    tw_free(m);
    assert_null(tw_n2sq_pop(&q));
    assert_null(q.tail);
    assert_int_equal(q.bytes, 0);
}

/* Past TW_N2SQ_MAX messages or TW_N2SQ_MAX_BYTES, a message is dropped
 * and counted. */
static void
test_limits(void **state)
{
    (void)state;
    tw_n2sq_t q = {0};
    for (uint64_t i = 1; i <= TW_N2SQ_MAX; i++) {
        assert_int_equal(s_push(&q, i), 0);
    }
    assert_int_equal(s_push(&q, TW_N2SQ_MAX + 1), TW_EFULL);
    assert_int_equal(q.dropped, 1);
    tw_n2sq_clear(&q);
    assert_int_equal(q.n, 0);
    assert_null(q.head);
    static char big[TW_N2SQ_MAX_BYTES];
    assert_int_equal(tw_n2sq_push(&q, 1, big, sizeof big - 1, NULL, 0), 0);
    assert_int_equal(tw_n2sq_push(&q, 2, "xy", 2, NULL, 0), TW_EFULL);
    assert_int_equal(q.dropped, 2);
    tw_n2sq_clear(&q);
}

/* Messages handed to a program are kept in a second list; its outcome
 * names the last it took: the others go back to the front of the queue,
 * in order, before those that came since. */
static void
test_requeue(void **state)
{
    (void)state;
    tw_n2sq_t q = {0}, sent = {0};
    for (uint64_t i = 4; i <= 8; i++) {
        s_push(&q, i);
    }
    tw_n2sq_msg_t *m;
    while ((m = tw_n2sq_pop(&q)) != NULL) {
        tw_n2sq_put(&sent, m);
    }
    assert_string_equal(s_seqs(&sent), "4 5 6 7 8");
    s_push(&q, 9); /* came after the outcome was read */
    tw_n2sq_requeue(&q, &sent, 5);
    assert_string_equal(s_seqs(&q), "6 7 8 9");
    assert_int_equal(q.n, 4);
    assert_int_equal(q.bytes, 8);
    assert_int_equal(sent.n, 0);
    assert_null(sent.head);
    assert_null(sent.tail);
    /* All taken: nothing moves; none taken, into an empty queue: all. */
    tw_n2sq_put(&sent, tw_n2sq_pop(&q));
    tw_n2sq_requeue(&q, &sent, 6);
    assert_string_equal(s_seqs(&q), "7 8 9");
    while ((m = tw_n2sq_pop(&q)) != NULL) {
        tw_n2sq_put(&sent, m);
    }
    tw_n2sq_requeue(&q, &sent, 0);
    assert_string_equal(s_seqs(&q), "7 8 9");
    assert_ptr_equal(q.tail->next, NULL);
    assert_int_equal(q.tail->seq, 9);
    s_push(&q, 10); /* the tail is right */
    assert_string_equal(s_seqs(&q), "7 8 9 10");
    tw_n2sq_clear(&q);
    tw_n2sq_clear(&sent);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_suffix),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_requeue),
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
