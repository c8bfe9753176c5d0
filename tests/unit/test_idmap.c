/*  tests/unit/test_idmap.c - the u64 -> pointer map against a reference.
 *
 *  The map uses open addressing with backward-shift deletion, whose bugs
 *  hide in long probe runs and in runs that wrap around the end of the
 *  table. So besides the plain cases, a seeded random sequence of puts,
 *  gets and deletes over a fixed pool of ids is replayed against a flat
 *  reference array, and after every phase the whole map is compared with
 *  it, through both get() and each().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/error.h"
#include "common/idmap.h"
#include "tests/unit/support/rng.h"

/* A distinct fake value per id. */
static void *
s_val(uint64_t id)
{
    return (void *)(uintptr_t)(id * 2 + 1);
}

static void
test_empty(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    assert_int_equal(m.len, 0);
    assert_int_equal(m.cap, 0);
    assert_null(tw_idmap_get(&m, 1));
    assert_null(tw_idmap_get(&m, 0));
    assert_null(tw_idmap_del(&m, 1));
    assert_null(tw_idmap_del(&m, 0));
    tw_idmap_free(&m);
    tw_idmap_free(&m); /* idempotent on an empty map */
}

static void
test_zero_id_rejected(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    assert_int_equal(tw_idmap_put(&m, 0, s_val(1)), TW_EINVAL);
    assert_int_equal(m.len, 0);
    assert_int_equal(tw_idmap_put(&m, 1, s_val(1)), 0);
    assert_int_equal(tw_idmap_put(&m, 0, s_val(1)), TW_EINVAL);
    assert_null(tw_idmap_get(&m, 0));
    assert_null(tw_idmap_del(&m, 0));
    assert_int_equal(m.len, 1);
    tw_idmap_free(&m);
}

static void
test_replace(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    assert_int_equal(tw_idmap_put(&m, 42, s_val(1)), 0);
    assert_int_equal(tw_idmap_put(&m, 42, s_val(2)), 0);
    assert_int_equal(m.len, 1);
    assert_ptr_equal(tw_idmap_get(&m, 42), s_val(2));
    assert_ptr_equal(tw_idmap_del(&m, 42), s_val(2));
    assert_null(tw_idmap_get(&m, 42));
    assert_null(tw_idmap_del(&m, 42));
    assert_int_equal(m.len, 0);
    tw_idmap_free(&m);
}

static void
test_extreme_ids(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    const uint64_t ids[] = {1, 2, UINT64_MAX, UINT64_MAX - 1, 1ULL << 63,
                            (1ULL << 32), (1ULL << 32) + 1, 0xffffffffULL};
    size_t n = sizeof ids / sizeof ids[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tw_idmap_put(&m, ids[i], s_val(i)), 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(tw_idmap_get(&m, ids[i]), s_val(i));
    }
    for (size_t i = 0; i < n; i += 2) {
        assert_ptr_equal(tw_idmap_del(&m, ids[i]), s_val(i));
    }
    for (size_t i = 0; i < n; i++) {
        if (i % 2) {
            assert_ptr_equal(tw_idmap_get(&m, ids[i]), s_val(i));
        } else {
            assert_null(tw_idmap_get(&m, ids[i]));
        }
    }
    tw_idmap_free(&m);
}

static void
test_sequential_and_growth(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    const uint64_t n = 100000;
    size_t last_cap = 0;
    for (uint64_t id = 1; id <= n; id++) {
        assert_int_equal(tw_idmap_put(&m, id, s_val(id)), 0);
        assert_int_equal(m.len, id);
        /* The table is a power of two and at most half full. */
        assert_true(m.cap >= 2 * m.len);
        assert_int_equal(m.cap & (m.cap - 1), 0);
        assert_true(m.cap >= last_cap);
        last_cap = m.cap;
    }
    for (uint64_t id = 1; id <= n; id++) {
        assert_ptr_equal(tw_idmap_get(&m, id), s_val(id));
    }
    assert_null(tw_idmap_get(&m, n + 1));
    /* Delete every third id, then check all of them. */
    for (uint64_t id = 3; id <= n; id += 3) {
        assert_ptr_equal(tw_idmap_del(&m, id), s_val(id));
    }
    assert_int_equal(m.len, n - n / 3);
    for (uint64_t id = 1; id <= n; id++) {
        if (id % 3 == 0) {
            assert_null(tw_idmap_get(&m, id));
        } else {
            assert_ptr_equal(tw_idmap_get(&m, id), s_val(id));
        }
    }
    /* Delete everything else; the map ends empty and still works. */
    for (uint64_t id = 1; id <= n; id++) {
        void *v = tw_idmap_del(&m, id);
        if (id % 3 == 0) {
            assert_null(v);
        } else {
            assert_ptr_equal(v, s_val(id));
        }
    }
    assert_int_equal(m.len, 0);
    for (size_t i = 0; i < m.cap; i++) {
        assert_int_equal(m.keys[i], 0);
    }
    assert_int_equal(tw_idmap_put(&m, 7, s_val(7)), 0);
    assert_ptr_equal(tw_idmap_get(&m, 7), s_val(7));
    tw_idmap_free(&m);

    /* Reusable after free. */
    tw_idmap_init(&m);
    assert_int_equal(tw_idmap_put(&m, 9, s_val(9)), 0);
    assert_ptr_equal(tw_idmap_get(&m, 9), s_val(9));
    tw_idmap_free(&m);
}

/* The random test: ids come from a fixed pool; ref[i] is the value the
 * map must hold for pool[i], or NULL. */
#define S_POOL 3000

typedef struct {
    uint64_t pool[S_POOL];
    void *ref[S_POOL];
    size_t live;
    size_t seen;      /* entries visited by each() */
    int bad;          /* each() visited something unexpected */
} s_ref_t;

static s_ref_t s_r;

static void
s_each_cb(uint64_t id, void *val, void *arg)
{
    s_ref_t *r = arg;
    r->seen++;
    /* Values carry their pool index above bit 24 (see s_random_run). */
    size_t i = (size_t)(((uintptr_t)val >> 24) - 1);
    if (i >= S_POOL || r->pool[i] != id || r->ref[i] != val) {
        r->bad = 1;
    }
}

static void
s_compare(const tw_idmap_t *m, s_ref_t *r)
{
    assert_int_equal(m->len, r->live);
    for (size_t i = 0; i < S_POOL; i++) {
        assert_ptr_equal(tw_idmap_get(m, r->pool[i]), r->ref[i]);
    }
    r->seen = 0;
    r->bad = 0;
    tw_idmap_each(m, s_each_cb, r);
    assert_int_equal(r->seen, r->live);
    assert_false(r->bad);
}

static void
s_random_run(uint64_t (*make_id)(size_t i), unsigned ops)
{
    s_ref_t *r = &s_r;
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < S_POOL; i++) {
        r->pool[i] = make_id(i);
        for (size_t j = 0; j < i; j++) {
            if (r->pool[j] == r->pool[i] || r->pool[i] == 0) {
                r->pool[i] = (uint64_t)i + 0x100000000ULL;
                break;
            }
        }
    }
    tw_idmap_t m;
    tw_idmap_init(&m);
    for (unsigned op = 0; op < ops; op++) {
        size_t i = tw_test_rand() % S_POOL;
        uint64_t k = r->pool[i];
        /* Phases skew toward insertion, then deletion, to cross many
         * table sizes and densities in both directions. */
        unsigned phase = (op / 20000) % 3;
        unsigned dice = (unsigned)(tw_test_rand() % 10);
        int do_put = phase == 0 ? dice < 7 : phase == 1 ? dice < 3 : dice < 5;
        if (do_put) {
            void *v = (void *)(uintptr_t)(((uint64_t)(i + 1) << 24) |
                                          (tw_test_rand() & 0xffffffULL));
            assert_int_equal(tw_idmap_put(&m, k, v), 0);
            if (!r->ref[i]) {
                r->live++;
            }
            r->ref[i] = v;
        } else if (dice == 9) {
            assert_ptr_equal(tw_idmap_get(&m, k), r->ref[i]);
        } else {
            assert_ptr_equal(tw_idmap_del(&m, k), r->ref[i]);
            if (r->ref[i]) {
                r->live--;
            }
            r->ref[i] = NULL;
        }
        if (op % 5000 == 4999) {
            s_compare(&m, r);
        }
    }
    s_compare(&m, r);
    tw_idmap_free(&m);
}

static uint64_t
s_id_random(size_t i)
{
    (void)i;
    return tw_test_rand();
}

static uint64_t
s_id_sequential(size_t i)
{
    return (uint64_t)i + 1;
}

static uint64_t
s_id_strided(size_t i)
{
    /* Multiples of a large power of two: equal low bits everywhere. */
    return ((uint64_t)i + 1) << 20;
}

static void
test_random_vs_reference(void **state)
{
    (void)state;
    s_random_run(s_id_random, 120000);
}

static void
test_sequential_vs_reference(void **state)
{
    (void)state;
    s_random_run(s_id_sequential, 120000);
}

static void
test_strided_vs_reference(void **state)
{
    (void)state;
    s_random_run(s_id_strided, 120000);
}

/* Dense churn at a fixed size: the table stays at one capacity while
 * ids come and go, which exercises long runs and wrap-around shifts. */
static void
test_churn_fixed_size(void **state)
{
    (void)state;
    tw_idmap_t m;
    tw_idmap_init(&m);
    uint64_t window[200];
    for (size_t i = 0; i < 200; i++) {
        window[i] = i + 1;
        assert_int_equal(tw_idmap_put(&m, window[i], s_val(window[i])), 0);
    }
    size_t cap = m.cap;
    uint64_t next = 201;
    for (unsigned op = 0; op < 200000; op++) {
        size_t slot = tw_test_rand() % 200;
        assert_ptr_equal(tw_idmap_del(&m, window[slot]), s_val(window[slot]));
        window[slot] = next++;
        assert_int_equal(tw_idmap_put(&m, window[slot], s_val(window[slot])),
                         0);
        if (op % 10000 == 0) {
            for (size_t i = 0; i < 200; i++) {
                assert_ptr_equal(tw_idmap_get(&m, window[i]),
                                 s_val(window[i]));
            }
        }
    }
    assert_int_equal(m.len, 200);
    assert_int_equal(m.cap, cap); /* no tombstones, so no growth */
    for (size_t i = 0; i < 200; i++) {
        assert_ptr_equal(tw_idmap_get(&m, window[i]), s_val(window[i]));
    }
    tw_idmap_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_zero_id_rejected),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_extreme_ids),
        cmocka_unit_test(test_sequential_and_growth),
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_sequential_vs_reference),
        cmocka_unit_test(test_strided_vs_reference),
        cmocka_unit_test(test_churn_fixed_size),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
