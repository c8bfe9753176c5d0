/*  tests/unit/test_broker_deps.c - the dependency engine, by numbers.
 *
 *  No broker: task ids and outcome codes go in, release and cancel
 *  decisions come out. Checked: every refusal of tw_deps_add; the
 *  verdicts when parents have already ended; both policies; a failure
 *  cascading down a chain while an any-end task on it is released; a
 *  chord of 10,000 parents ending in random order, pinned until the
 *  last; a parent named twice; a client cancelling a blocked task; the
 *  reason text; the arguments built from results, decoded back with
 *  msgpack-c. Then seeded random graphs are run to the end and every
 *  decision is checked against the parents' recorded outcomes: nothing is
 *  released before its parents ended as required, nothing is cancelled
 *  without a failed parent, and nothing is left blocked or settled twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <string.h>

#include "broker/state/deps.h"
#include "common/alloc.h"
#include "common/error.h"
#include "proto/proto.h"
#include "tests/unit/support/rng.h"

#define LIVE TW_ST_PENDING

static void
test_add_refusals(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_decision_t dec;
    uint64_t p[3] = {1, 2, 3};
    uint8_t st[3] = {LIVE, LIVE, LIVE};
    size_t bad = 99;
    assert_int_equal(tw_deps_add(d, 10, p, st, 0, 0, 0, &dec, &bad),
                     TW_EINVAL);
    assert_int_equal(tw_deps_add(d, 0, p, st, 3, 0, 0, &dec, &bad),
                     TW_EINVAL);
    assert_int_equal(tw_deps_add(d, 2, p, st, 3, 0, 0, &dec, &bad),
                     TW_EINVAL);
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, 7, 0, &dec, &bad),
                     TW_EINVAL);
    assert_int_equal(tw_deps_add(d, 10, p, st, TW_DEPS_MAX_PARENTS + 1, 0,
                                 0, &dec, &bad),
                     TW_EINVAL);
    uint64_t zero[1] = {0};
    assert_int_equal(tw_deps_add(d, 10, zero, st, 1, 0, 0, &dec, &bad),
                     TW_EINVAL);
    st[2] = TW_ST_UNKNOWN;
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, 0, 0, &dec, &bad),
                     TW_ENOENT);
    assert_int_equal(bad, 2);
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, 0, 0, &dec, NULL),
                     TW_ENOENT);
    assert_int_equal(tw_deps_count(d), 0);
    st[2] = LIVE;
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, 0, 0, &dec, &bad), 0);
    assert_int_equal(dec.verdict, TW_DEPS_WAIT);
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, 0, 0, &dec, &bad),
                     TW_EEXIST);
    assert_int_equal(tw_deps_count(d), 1);
    tw_deps_destroy(&d);
    assert_null(d);
    tw_deps_destroy(&d);
}

static void
test_already_ended(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_decision_t dec;
    uint64_t p[3] = {1, 2, 3};
    uint8_t ok[3] = {TW_ST_OK, TW_ST_OK, TW_ST_OK};
    assert_int_equal(tw_deps_add(d, 10, p, ok, 3, TW_DEPS_ALL_OK, 1, &dec,
                                 NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_RELEASE);
    assert_int_equal(dec.child, 10);
    assert_false(tw_deps_is_blocked(d, 10));
    assert_int_equal(tw_deps_pins(d, 1), 0); /* not kept, not pinned */
    /* all-ok: the first parent named that did not succeed */
    uint8_t mixed[3] = {TW_ST_OK, TW_ST_TIMEOUT, TW_ST_ERROR};
    assert_int_equal(tw_deps_add(d, 11, p, mixed, 3, TW_DEPS_ALL_OK, 0, &dec,
                                 NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_CANCEL);
    assert_int_equal(dec.parent, 2);
    assert_int_equal(dec.parent_st, TW_ST_TIMEOUT);
    /* ... even while another is still live */
    uint8_t live_failed[3] = {LIVE, TW_ST_LOST, LIVE};
    assert_int_equal(tw_deps_add(d, 12, p, live_failed, 3, TW_DEPS_ALL_OK,
                                 0, &dec, NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_CANCEL);
    assert_int_equal(dec.parent, 2);
    /* any-end: all ended, however */
    assert_int_equal(tw_deps_add(d, 13, p, mixed, 3, TW_DEPS_ANY_END, 0,
                                 &dec, NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_RELEASE);
    assert_int_equal(tw_deps_add(d, 14, p, live_failed, 3, TW_DEPS_ANY_END,
                                 0, &dec, NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_WAIT);
    assert_int_equal(tw_deps_count(d), 1);
    tw_deps_destroy(&d);
}

static void
test_all_ok(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint64_t p[2] = {1, 2};
    uint8_t st[2] = {TW_ST_RUNNING, TW_ST_PENDING};
    assert_int_equal(tw_deps_add(d, 10, p, st, 2, TW_DEPS_ALL_OK, 0, &dec,
                                 NULL), 0);
    assert_int_equal(tw_deps_add(d, 11, p, st, 2, TW_DEPS_ALL_OK, 0, &dec,
                                 NULL), 0);
    size_t n, waiting;
    int mode, wr;
    const uint64_t *got = tw_deps_parents(d, 10, &n, &mode, &wr, &waiting);
    assert_non_null(got);
    assert_int_equal(n, 2);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 2);
    assert_int_equal(mode, TW_DEPS_ALL_OK);
    assert_int_equal(wr, 0);
    assert_int_equal(waiting, 2);
    assert_null(tw_deps_parents(d, 99, NULL, NULL, NULL, NULL));
    assert_int_equal(tw_deps_ended(d, 1, TW_ST_OK, &out), 0);
    tw_deps_parents(d, 10, NULL, NULL, NULL, &waiting);
    assert_int_equal(waiting, 1);
    assert_int_equal(tw_deps_ended(d, 2, TW_ST_OK, &out), 2);
    assert_int_equal(out.v[0].child, 10);
    assert_int_equal(out.v[0].verdict, TW_DEPS_RELEASE);
    assert_int_equal(out.v[1].child, 11);
    assert_int_equal(out.v[1].verdict, TW_DEPS_RELEASE);
    assert_int_equal(tw_deps_count(d), 0);
    /* A failure cancels at once, naming the parent; the other parent's
     * later end finds nothing. */
    tw_deps_out_clear(&out);
    assert_int_equal(tw_deps_add(d, 20, p, st, 2, TW_DEPS_ALL_OK, 0, &dec,
                                 NULL), 0);
    assert_int_equal(tw_deps_ended(d, 2, TW_ST_ERROR, &out), 1);
    assert_int_equal(out.v[0].child, 20);
    assert_int_equal(out.v[0].verdict, TW_DEPS_CANCEL);
    assert_int_equal(out.v[0].parent, 2);
    assert_int_equal(out.v[0].parent_st, TW_ST_ERROR);
    char why[64];
    assert_string_equal(tw_deps_reason(&out.v[0], why, sizeof why),
                        "upstream failed: task 2 ended error");
    assert_int_equal(tw_deps_ended(d, 1, TW_ST_OK, &out), 0);
    assert_int_equal(tw_deps_ended(d, 12345, TW_ST_OK, &out), 0);
    /* Each way of not succeeding cancels. */
    static const int fails[] = {TW_ST_ERROR, TW_ST_TIMEOUT, TW_ST_CANCELLED,
                                TW_ST_LOST};
    static const char *const names[] = {"error", "timeout", "cancelled",
                                        "lost"};
    for (int i = 0; i < 4; i++) {
        tw_deps_out_clear(&out);
        uint64_t one[1] = {100 + (uint64_t)i};
        assert_int_equal(tw_deps_add(d, 200 + (uint64_t)i, one, st, 1,
                                     TW_DEPS_ALL_OK, 0, &dec, NULL), 0);
        assert_int_equal(tw_deps_ended(d, one[0], fails[i], &out), 1);
        assert_int_equal(out.v[0].verdict, TW_DEPS_CANCEL);
        char want[64];
        snprintf(want, sizeof want, "upstream failed: task %d ended %s",
                 100 + i, names[i]);
        assert_string_equal(tw_deps_reason(&out.v[0], why, sizeof why),
                            want);
    }
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
}

static void
test_any_end(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint64_t p[3] = {1, 2, 3};
    uint8_t st[3] = {LIVE, LIVE, LIVE};
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, TW_DEPS_ANY_END, 1, &dec,
                                 NULL), 0);
    assert_int_equal(tw_deps_ended(d, 3, TW_ST_ERROR, &out), 0);
    assert_int_equal(tw_deps_ended(d, 1, TW_ST_CANCELLED, &out), 0);
    assert_int_equal(tw_deps_pins(d, 2), 1);
    assert_int_equal(tw_deps_ended(d, 2, TW_ST_OK, &out), 1);
    assert_int_equal(out.v[0].verdict, TW_DEPS_RELEASE);
    assert_int_equal(tw_deps_pins(d, 1), 0);
    assert_int_equal(tw_deps_pins(d, 2), 0);
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
}

/* A chain 1 <- 2 <- 3 <- 4 (all-ok), 5 any-end after 3, and 6 all-ok
 * after 1 and 5. A timeout of 1 cancels 2 and 6 (both name 1), then 3
 * (after 2) and 4 (after 3), and releases 5, whose parent 3 has ended,
 * if not well: children before grandchildren. */
static void
test_cascade(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint8_t live[2] = {LIVE, LIVE};
    for (uint64_t i = 2; i <= 4; i++) {
        uint64_t p[1] = {i - 1};
        assert_int_equal(tw_deps_add(d, i, p, live, 1, TW_DEPS_ALL_OK, 0,
                                     &dec, NULL), 0);
    }
    uint64_t p5[1] = {3};
    assert_int_equal(tw_deps_add(d, 5, p5, live, 1, TW_DEPS_ANY_END, 0, &dec,
                                 NULL), 0);
    uint64_t p6[2] = {1, 5};
    assert_int_equal(tw_deps_add(d, 6, p6, live, 2, TW_DEPS_ALL_OK, 0, &dec,
                                 NULL), 0);
    assert_int_equal(tw_deps_count(d), 5);
    assert_int_equal(tw_deps_ended(d, 1, TW_ST_TIMEOUT, &out), 5);
    struct {
        uint64_t child;
        int verdict;
        uint64_t parent;
        int st;
    } want[] = {
        {2, TW_DEPS_CANCEL, 1, TW_ST_TIMEOUT},
        {6, TW_DEPS_CANCEL, 1, TW_ST_TIMEOUT},
        {3, TW_DEPS_CANCEL, 2, TW_ST_CANCELLED},
        {4, TW_DEPS_CANCEL, 3, TW_ST_CANCELLED},
        {5, TW_DEPS_RELEASE, 0, 0},
    };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(out.v[i].child, want[i].child);
        assert_int_equal(out.v[i].verdict, want[i].verdict);
        if (want[i].verdict == TW_DEPS_CANCEL) {
            assert_int_equal(out.v[i].parent, want[i].parent);
            assert_int_equal(out.v[i].parent_st, want[i].st);
        }
    }
    assert_int_equal(tw_deps_count(d), 0);
    /* 5 then runs and ends: 6 is gone, nothing more. */
    tw_deps_out_clear(&out);
    assert_int_equal(tw_deps_ended(d, 5, TW_ST_OK, &out), 0);
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
}

static void
test_chord_of_10000(void **state)
{
    (void)state;
    enum { N = 10000 };
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint64_t *p = tw_malloc(N * sizeof *p);
    uint8_t *st = tw_malloc(N);
    for (size_t i = 0; i < N; i++) {
        p[i] = i + 1;
        st[i] = LIVE;
    }
    st[17] = TW_ST_OK; /* one already done */
    assert_int_equal(tw_deps_add(d, N + 1, p, st, N, TW_DEPS_ALL_OK, 1,
                                 &dec, NULL), 0);
    assert_int_equal(dec.verdict, TW_DEPS_WAIT);
    assert_int_equal(tw_deps_pins(d, 18), 1);
    /* End them in a random order (a shuffle of the ids). */
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = tw_test_rand() % (i + 1);
        uint64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    size_t ends = 0;
    for (size_t i = 0; i < N; i++) {
        if (p[i] == 18) {
            continue;
        }
        size_t k = tw_deps_ended(d, p[i], TW_ST_OK, &out);
        ends++;
        assert_int_equal(k, ends == N - 1 ? 1 : 0);
        assert_int_equal(tw_deps_pins(d, p[i]), ends == N - 1 ? 0 : 1);
    }
    assert_int_equal(out.len, 1);
    assert_int_equal(out.v[0].child, N + 1);
    assert_int_equal(out.v[0].verdict, TW_DEPS_RELEASE);
    assert_int_equal(tw_deps_pins(d, 18), 0);
    tw_free(p);
    tw_free(st);
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
}

static void
test_twice_named_and_remove(void **state)
{
    (void)state;
    tw_deps_t *d = tw_deps_new();
    tw_deps_out_t out = {0};
    tw_deps_decision_t dec;
    uint64_t p[3] = {1, 2, 1};
    uint8_t st[3] = {LIVE, LIVE, LIVE};
    assert_int_equal(tw_deps_add(d, 10, p, st, 3, TW_DEPS_ALL_OK, 1, &dec,
                                 NULL), 0);
    assert_int_equal(tw_deps_pins(d, 1), 2);
    assert_int_equal(tw_deps_ended(d, 1, TW_ST_OK, &out), 0);
    size_t waiting;
    tw_deps_parents(d, 10, NULL, NULL, NULL, &waiting);
    assert_int_equal(waiting, 1);
    assert_int_equal(tw_deps_ended(d, 2, TW_ST_OK, &out), 1);
    assert_int_equal(tw_deps_pins(d, 1), 0);
    /* Released with results: the decision carries the parents, in the
     * order named, until the list is cleared. */
    assert_int_equal(out.v[0].verdict, TW_DEPS_RELEASE);
    assert_int_equal(out.v[0].nparents, 3);
    assert_non_null(out.v[0].parents);
    assert_int_equal(out.v[0].parents[0], 1);
    assert_int_equal(out.v[0].parents[1], 2);
    assert_int_equal(out.v[0].parents[2], 1);

    /* A client cancels blocked task 20; 21 waits for 20. */
    tw_deps_out_clear(&out);
    assert_int_equal(out.len, 0);
    uint64_t q[1] = {5};
    assert_int_equal(tw_deps_add(d, 20, q, st, 1, TW_DEPS_ALL_OK, 1, &dec,
                                 NULL), 0);
    uint64_t r[1] = {20};
    uint8_t blocked[1] = {8}; /* any live code */
    assert_int_equal(tw_deps_add(d, 21, r, blocked, 1, TW_DEPS_ALL_OK, 0,
                                 &dec, NULL), 0);
    assert_int_equal(tw_deps_remove(d, 20), 0);
    assert_int_equal(tw_deps_remove(d, 20), TW_ENOENT);
    assert_false(tw_deps_is_blocked(d, 20));
    assert_int_equal(tw_deps_pins(d, 5), 0);
    assert_int_equal(tw_deps_ended(d, 20, TW_ST_CANCELLED, &out), 1);
    assert_int_equal(out.v[0].child, 21);
    assert_int_equal(out.v[0].verdict, TW_DEPS_CANCEL);
    /* 5 ends later: nobody is told. */
    assert_int_equal(tw_deps_ended(d, 5, TW_ST_OK, &out), 0);
    assert_int_equal(tw_deps_count(d), 0);
    tw_deps_out_free(&out);
    tw_deps_destroy(&d);
}

/* ---- arguments from results ---- */

static msgpack_object
s_decode(msgpack_unpacked *u, const void *buf, size_t len)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(u, buf, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    return u->data;
}

static void
test_args(void **state)
{
    (void)state;
    const uint8_t r1[] = {0x2a};                  /* 42 */
    const uint8_t r2[] = {0xa2, 'h', 'i'};        /* "hi" */
    const void *res[3] = {r1, r2, NULL};
    size_t lens[3] = {sizeof r1, sizeof r2, 0};
    struct {
        const uint8_t *a;
        size_t alen;
        size_t n;      /* results used */
        uint32_t size; /* elements of the array made */
    } cases[] = {
        {NULL, 0, 2, 2},
        {(const uint8_t *)"\xc0", 1, 2, 2},
        {(const uint8_t *)"\x92\x01\x02", 3, 2, 4},
        {(const uint8_t *)"\x05", 1, 2, 3},
        {(const uint8_t *)"\x81\xa1k\x01", 4, 2, 3}, /* a map: one arg */
        {(const uint8_t *)"\xdc\x00\x01\x07", 4, 3, 4},
        {(const uint8_t *)"\xdd\x00\x00\x00\x01\x07", 6, 1, 2},
        {(const uint8_t *)"\x90", 1, 3, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *out = NULL;
        size_t outlen = 0;
        assert_int_equal(tw_deps_args(res, lens, cases[i].n, cases[i].a,
                                      cases[i].alen, 1 << 20, &out, &outlen),
                         0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_object o = s_decode(&u, out, outlen);
        assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(o.via.array.size, cases[i].size);
        assert_int_equal(o.via.array.ptr[0].via.u64, 42);
        if (cases[i].n >= 2) {
            assert_int_equal(o.via.array.ptr[1].type, MSGPACK_OBJECT_STR);
        }
        if (cases[i].n == 3) {
            assert_int_equal(o.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
        }
        msgpack_unpacked_destroy(&u);
        tw_free(out);
    }
    /* Own arguments come after the results, in order. */
    void *out;
    size_t outlen;
    assert_int_equal(tw_deps_args(res, lens, 1, "\x92\x01\x02", 3, 100, &out,
                                  &outlen), 0);
    assert_int_equal(outlen, 4);
    assert_memory_equal(out, "\x93\x2a\x01\x02", 4);
    tw_free(out);
    /* Refusals. */
    assert_int_equal(tw_deps_args(res, lens, 2, "\xdc\x00", 2, 100, &out,
                                  &outlen), TW_EPROTO);
    assert_int_equal(tw_deps_args(res, lens, 2, "\xdd\x00\x00", 3, 100, &out,
                                  &outlen), TW_EPROTO);
    assert_int_equal(tw_deps_args(res, lens, 2, NULL, 0, 4, &out, &outlen),
                     TW_E2BIG);
    /* 16 and 70,000 results: array16 and array32 heads. */
    enum { M = 70000 };
    const void **many = tw_malloc(M * sizeof *many);
    size_t *ml = tw_malloc(M * sizeof *ml);
    for (size_t i = 0; i < M; i++) {
        many[i] = r1;
        ml[i] = 1;
    }
    size_t sizes[2] = {16, M};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tw_deps_args((const void *const *)many, ml,
                                      sizes[k], "\x07", 1, 1 << 20, &out,
                                      &outlen), 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_object o = s_decode(&u, out, outlen);
        assert_int_equal(o.via.array.size, sizes[k] + 1);
        assert_int_equal(o.via.array.ptr[sizes[k]].via.u64, 7);
        msgpack_unpacked_destroy(&u);
        tw_free(out);
    }
    tw_free(many);
    tw_free(ml);
}

/* ---- random graphs against their own record ---- */

enum { S_MAXT = 400 };

typedef struct {
    int mode;
    size_t n;
    uint64_t parents[6];
    int outcome;  /* -1 until ended */
    int released; /* times released */
    int cancelled;
} s_task_t;

static void
test_random_graphs(void **state)
{
    (void)state;
    static s_task_t t[S_MAXT + 1];
    for (int round = 0; round < 60; round++) {
        memset(t, 0, sizeof t);
        tw_deps_t *d = tw_deps_new();
        tw_deps_out_t out = {0};
        uint64_t runnable[S_MAXT + 1];
        size_t nrun = 0;
        size_t ntasks = 50 + tw_test_rand() % (S_MAXT - 50);
        size_t ended = 0;
        /* Tasks are added in id order while earlier ones run, so parents
         * are in every state when named. */
        size_t added = 0;
        while (ended < ntasks) {
            int add = added < ntasks && (nrun == 0 || tw_test_rand() % 3 != 0);
            if (add) {
                uint64_t id = ++added;
                s_task_t *k = &t[id];
                k->outcome = -1;
                k->mode = (int)(tw_test_rand() % 2);
                k->n = id > 1 ? tw_test_rand() % 5 : 0;
                uint8_t st[6];
                for (size_t i = 0; i < k->n; i++) {
                    k->parents[i] = 1 + tw_test_rand() % (id - 1);
                    int o = t[k->parents[i]].outcome;
                    st[i] = o >= 0 ? (uint8_t)o : LIVE;
                }
                if (k->n == 0) {
                    runnable[nrun++] = id;
                    continue;
                }
                tw_deps_decision_t dec;
                assert_int_equal(tw_deps_add(d, id, k->parents, st, k->n,
                                             k->mode, (int)(id % 2), &dec,
                                             NULL), 0);
                /* An immediate decision is checked like the others; a
                 * cancelled task has no dependents yet, so its end
                 * decides nothing. */
                tw_deps_out_clear(&out);
                if (dec.verdict != TW_DEPS_WAIT) {
                    out.v = out.cap ? out.v : tw_malloc(sizeof *out.v);
                    out.cap = out.cap ? out.cap : 1;
                    out.v[0] = dec;
                    out.len = 1;
                }
            } else {
                size_t pick = tw_test_rand() % nrun;
                uint64_t id = runnable[pick];
                runnable[pick] = runnable[--nrun];
                static const int outcomes[] = {TW_ST_OK, TW_ST_OK, TW_ST_OK,
                                               TW_ST_ERROR, TW_ST_TIMEOUT,
                                               TW_ST_CANCELLED, TW_ST_LOST};
                t[id].outcome = outcomes[tw_test_rand() % 7];
                ended++;
                tw_deps_out_clear(&out);
                tw_deps_ended(d, id, t[id].outcome, &out);
            }
            /* Apply and check what was decided. */
            for (size_t i = 0; i < out.len; i++) {
                tw_deps_decision_t *dp = &out.v[i];
                s_task_t *k = &t[dp->child];
                assert_true(dp->child >= 1 && dp->child <= added);
                assert_int_equal(k->outcome, -1);
                assert_int_equal(k->released, 0);
                if (dp->verdict == TW_DEPS_RELEASE) {
                    for (size_t j = 0; j < k->n; j++) {
                        int o = t[k->parents[j]].outcome;
                        assert_true(o >= 0);
                        if (k->mode == TW_DEPS_ALL_OK) {
                            assert_int_equal(o, TW_ST_OK);
                        }
                    }
                    k->released++;
                    runnable[nrun++] = dp->child;
                } else {
                    assert_int_equal(dp->verdict, TW_DEPS_CANCEL);
                    assert_int_equal(k->mode, TW_DEPS_ALL_OK);
                    int named = 0;
                    for (size_t j = 0; j < k->n; j++) {
                        named |= k->parents[j] == dp->parent;
                    }
                    assert_true(named);
                    assert_int_equal(t[dp->parent].outcome, dp->parent_st);
                    assert_int_not_equal(dp->parent_st, TW_ST_OK);
                    k->cancelled++;
                    k->outcome = TW_ST_CANCELLED;
                    ended++;
                }
            }
        }
        /* Everything settled exactly once; nothing left blocked. */
        assert_int_equal(tw_deps_count(d), 0);
        for (uint64_t id = 1; id <= ntasks; id++) {
            assert_true(t[id].outcome >= 0);
            assert_true(t[id].released + t[id].cancelled <= 1);
            assert_int_equal(tw_deps_pins(d, id), 0);
            if (t[id].n > 0 && !t[id].cancelled) {
                assert_int_equal(t[id].released, 1);
            }
        }
        tw_deps_out_free(&out);
        tw_deps_destroy(&d);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_refusals),
        cmocka_unit_test(test_already_ended),
        cmocka_unit_test(test_all_ok),
        cmocka_unit_test(test_any_end),
        cmocka_unit_test(test_cascade),
        cmocka_unit_test(test_chord_of_10000),
        cmocka_unit_test(test_twice_named_and_remove),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_random_graphs),
    };
    return cmocka_run_group_tests_name("broker_deps", tests, NULL, NULL);
}
