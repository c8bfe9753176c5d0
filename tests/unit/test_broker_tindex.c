/*  tests/unit/test_broker_tindex.c - records in change order, paged.
 *
 *  The index is checked against a plain model (an array of the keys it
 *  should hold) through long random runs of pushes and removals from
 *  the oldest end, the newest end and the middle, which pass through
 *  every tidy path (holes squeezed, front given back, trailing holes
 *  dropped); after each step the count, the oldest item and a walk from
 *  a random key down must match the model. Plus the small cases: an
 *  empty index, removing what is not there, and a walk that counts the
 *  holes it steps over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "broker/state/tindex.h"
#include "common/error.h"
#include "tests/unit/support/rng.h"

typedef struct {
    uint64_t key;
} s_item_t;

static uint64_t
s_key(const void *item)
{
    return ((const s_item_t *)item)->key;
}

static uint64_t
s_rand(void)
{
    return tw_test_rand();
}

static void
test_empty(void **state)
{
    (void)state;
    tw_tindex_t ix;
    tw_tindex_init(&ix, s_key);
    s_item_t a = {5};
    assert_int_equal(tw_tindex_count(&ix), 0);
    assert_null(tw_tindex_oldest(&ix));
    assert_int_equal(tw_tindex_remove(&ix, &a), TW_ENOENT);
    size_t pos = tw_tindex_end(&ix);
    assert_null(tw_tindex_prev(&ix, &pos, NULL));
    pos = tw_tindex_below(&ix, 100);
    assert_null(tw_tindex_prev(&ix, &pos, NULL));
    tw_tindex_free(&ix);
}

static void
test_walk_and_holes(void **state)
{
    (void)state;
    tw_tindex_t ix;
    tw_tindex_init(&ix, s_key);
    s_item_t it[10];
    for (int i = 0; i < 10; i++) {
        it[i].key = 10 + 10 * (uint64_t)i; /* 10, 20, ... 100 */
        tw_tindex_push(&ix, &it[i]);
    }
    assert_int_equal(tw_tindex_remove(&ix, &it[4]), 0); /* 50 */
    assert_int_equal(tw_tindex_remove(&ix, &it[5]), 0); /* 60 */
    assert_int_equal(tw_tindex_remove(&ix, &it[5]), TW_ENOENT);
    s_item_t stranger = {55};
    assert_int_equal(tw_tindex_remove(&ix, &stranger), TW_ENOENT);
    assert_int_equal(tw_tindex_count(&ix), 8);
    /* Below 70 (a cursor at 70): 40, 30, 20, 10, over two holes. */
    size_t pos = tw_tindex_below(&ix, 70), holes = 0;
    uint64_t want[] = {40, 30, 20, 10};
    for (int i = 0; i < 4; i++) {
        s_item_t *x = tw_tindex_prev(&ix, &pos, &holes);
        assert_non_null(x);
        assert_int_equal(x->key, want[i]);
    }
    assert_null(tw_tindex_prev(&ix, &pos, &holes));
    assert_int_equal(holes, 2);
    /* A cursor at a hole's key (55, 60) starts below it. */
    pos = tw_tindex_below(&ix, 60);
    assert_int_equal(((s_item_t *)tw_tindex_prev(&ix, &pos, NULL))->key, 40);
    pos = tw_tindex_below(&ix, 1000);
    assert_int_equal(((s_item_t *)tw_tindex_prev(&ix, &pos, NULL))->key,
                     100);
    pos = tw_tindex_below(&ix, 10);
    assert_null(tw_tindex_prev(&ix, &pos, NULL));
    /* The oldest and the newest go without a search. */
    assert_int_equal(tw_tindex_remove(&ix, &it[0]), 0);
    assert_int_equal(tw_tindex_remove(&ix, &it[9]), 0);
    assert_ptr_equal(tw_tindex_oldest(&ix), &it[1]);
    assert_int_equal(tw_tindex_count(&ix), 6);
    tw_tindex_free(&ix);
}

/* The model: the keys the index should hold, in order. */
static void
s_compare(tw_tindex_t *ix, const uint64_t *keys, size_t n)
{
    assert_int_equal(tw_tindex_count(ix), n);
    if (n == 0) {
        assert_null(tw_tindex_oldest(ix));
        return;
    }
    assert_int_equal(((s_item_t *)tw_tindex_oldest(ix))->key, keys[0]);
    /* A walk from a random key down, a page of up to 50. */
    uint64_t from = keys[s_rand() % n] + (s_rand() % 3);
    size_t i = n;
    while (i > 0 && keys[i - 1] >= from) {
        i--;
    }
    size_t pos = tw_tindex_below(ix, from);
    for (int k = 0; k < 50; k++) {
        s_item_t *x = tw_tindex_prev(ix, &pos, NULL);
        if (i == 0) {
            assert_null(x);
            break;
        }
        assert_non_null(x);
        assert_int_equal(x->key, keys[--i]);
    }
}

static void
test_random_against_model(void **state)
{
    (void)state;
    enum { N = 20000 };
    s_item_t *items = calloc(N, sizeof *items);
    uint64_t *keys = calloc(N, sizeof *keys); /* model, sorted */
    size_t n = 0;
    uint64_t next = 1;
    size_t made = 0;
    tw_tindex_t ix;
    tw_tindex_init(&ix, s_key);
    for (int round = 0; round < 6; round++) {
        /* Rounds lean towards growing, then towards each kind of removal. */
        for (int step = 0; step < 8000; step++) {
            unsigned r = (unsigned)(s_rand() % 100);
            int grow = round % 2 == 0 ? r < 65 : r < 35;
            if ((grow || n == 0) && made < N) {
                items[made].key = next;
                next += 1 + s_rand() % 3;
                tw_tindex_push(&ix, &items[made]);
                keys[n++] = items[made].key;
                made++;
            } else if (n > 0) {
                size_t at;
                unsigned kind = (unsigned)(s_rand() % 3);
                at = kind == 0 ? 0 : kind == 1 ? n - 1 : s_rand() % n;
                /* Find the item with that key (keys are unique). */
                s_item_t *x = NULL;
                for (size_t j = 0; j < made; j++) {
                    if (items[j].key == keys[at]) {
                        x = &items[j];
                        break;
                    }
                }
                assert_non_null(x);
                assert_int_equal(tw_tindex_remove(&ix, x), 0);
                assert_int_equal(tw_tindex_remove(&ix, x), TW_ENOENT);
                memmove(keys + at, keys + at + 1,
                        (n - at - 1) * sizeof *keys);
                n--;
            }
            if (step % 97 == 0) {
                s_compare(&ix, keys, n);
            }
            /* The array never wastes more than it holds (plus slack). */
            assert_true(ix.holes * 2 <= (ix.len - ix.start) + 64);
        }
        s_compare(&ix, keys, n);
    }
    /* Empty it from the middle out. */
    while (n > 0) {
        size_t at = n / 2;
        for (size_t j = 0; j < made; j++) {
            if (items[j].key == keys[at]) {
                assert_int_equal(tw_tindex_remove(&ix, &items[j]), 0);
                break;
            }
        }
        memmove(keys + at, keys + at + 1, (n - at - 1) * sizeof *keys);
        n--;
    }
    s_compare(&ix, keys, 0);
    assert_int_equal(ix.len, 0);
    tw_tindex_free(&ix);
    free(items);
    free(keys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_walk_and_holes),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
