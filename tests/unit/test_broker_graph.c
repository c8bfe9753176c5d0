/*  tests/unit/test_broker_graph.c - parents named within one SUBMIT
 *  (broker/state/graph.h, PROTOCOL.md 18.9).
 *
 *  Checked: items are numbered in the order added; an `as` list resolves
 *  to the indexes of earlier items, in order; a seq not added yet (a
 *  later item, the item itself) or never is ENOENT naming the seq; a seq
 *  used twice or seq 0 is EINVAL; a seq not in this SUBMIT but one the
 *  client had accepted before (the callback) is that task's id; and a 10,000-step chain and a chord over
 *  10,000 items resolve (the map does not degrade).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/graph.h"
#include "common/error.h"

static void
test_resolve(void **state)
{
    (void)state;
    tw_graph_t g;
    tw_graph_init(&g);
    char why[160];
    assert_int_equal(tw_graph_add(&g, 10, why, sizeof why), 0);
    assert_int_equal(tw_graph_add(&g, 7, why, sizeof why), 1);
    uint64_t as[2] = {7, 10};
    uint64_t idx[2];
    assert_int_equal(tw_graph_parents(&g, as, 2, NULL, NULL, idx, why,
                                      sizeof why), 0);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 0);
    assert_int_equal(tw_graph_find(&g, 10), 0);
    assert_int_equal(tw_graph_find(&g, 11), -1);
    tw_graph_free(&g);
}

static void
test_refusals(void **state)
{
    (void)state;
    tw_graph_t g;
    tw_graph_init(&g);
    char why[160];
    assert_int_equal(tw_graph_add(&g, 1, why, sizeof why), 0);
    /* The item itself (seq 2, not added yet), a later one, none. */
    uint64_t self = 2;
    uint64_t idx;
    assert_int_equal(tw_graph_parents(&g, &self, 1, NULL, NULL, &idx, why,
                                      sizeof why), TW_ENOENT);
    assert_string_equal(why, "as names seq 2, which is not an earlier item "
                        "of this SUBMIT");
    assert_int_equal(tw_graph_add(&g, 2, why, sizeof why), 1);
    uint64_t bad[2] = {1, 5};
    uint64_t two[2];
    assert_int_equal(tw_graph_parents(&g, bad, 2, NULL, NULL, two, why,
                                      sizeof why), TW_ENOENT);
    assert_non_null(strstr(why, "seq 5"));
    /* Twice, and 0. */
    assert_int_equal(tw_graph_add(&g, 1, why, sizeof why), TW_EINVAL);
    assert_non_null(strstr(why, "seq 1 appears twice"));
    assert_int_equal(tw_graph_add(&g, 0, why, sizeof why), TW_EINVAL);
    assert_int_equal(g.n, 2);
    tw_graph_free(&g);
}

/* A fake "accepted before" table: seqs 500 and 501 are tasks 90, 91. */
static uint64_t
s_known(void *arg, uint64_t seq)
{
    (*(int *)arg)++;
    return seq == 500 ? 90 : seq == 501 ? 91 : 0;
}

static void
test_known_before(void **state)
{
    (void)state;
    tw_graph_t g;
    tw_graph_init(&g);
    char why[160];
    int asked = 0;
    assert_int_equal(tw_graph_add(&g, 1, why, sizeof why), 0);
    /* This SUBMIT's items first; the earlier ones only when not here. */
    uint64_t as[3] = {501, 1, 500}, out[3];
    assert_int_equal(tw_graph_parents(&g, as, 3, s_known, &asked, out, why,
                                      sizeof why), 0);
    assert_int_equal(out[0], TW_GRAPH_ID | 91);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], TW_GRAPH_ID | 90);
    assert_int_equal(asked, 2);
    uint64_t none = 502;
    assert_int_equal(tw_graph_parents(&g, &none, 1, s_known, &asked, out,
                                      why, sizeof why), TW_ENOENT);
    assert_non_null(strstr(why, "seq 502"));
    tw_graph_free(&g);
}

static void
test_large(void **state)
{
    (void)state;
    enum { N = 10000 };
    tw_graph_t g;
    tw_graph_init(&g);
    char why[160];
    static uint64_t all[N];
    static uint64_t idx[N];
    for (uint64_t i = 0; i < N; i++) {
        if (i > 0) {
            uint64_t prev = 1000 + i - 1;
            uint64_t k;
            assert_int_equal(tw_graph_parents(&g, &prev, 1, NULL, NULL, &k,
                                              why, sizeof why), 0);
            assert_int_equal(k, i - 1);
        }
        assert_int_equal(tw_graph_add(&g, 1000 + i, why, sizeof why),
                         (int64_t)i);
        all[i] = 1000 + i;
    }
    assert_int_equal(tw_graph_parents(&g, all, N, NULL, NULL, idx, why,
                                      sizeof why), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(idx[i], i);
    }
    tw_graph_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_known_before),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
