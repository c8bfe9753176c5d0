/*  tests/unit/test_broker_workers.c - the worker registry and handler table.
 *
 *  The registry finds a worker by routing identity (every message on the
 *  backend) and by the id WELCOME gave it (tasks name their worker by id),
 *  and keeps workers in joining order for the dispatcher's round robin.
 *  The handler table interns names to small indices, creating one only when
 *  asked, and counts how many live workers offer each handler; those counts
 *  must stay right when a worker re-announces its handlers and when it
 *  leaves. The last case uses two 16-byte identities that have the same
 *  tw_hash_bytes() value (found offline by lattice reduction on FNV-1a's
 *  multiply-xor rounds), because the identity index is keyed by that hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/state/workers.h"
#include "common/alloc.h"
#include "common/util.h"

/* A worker identity as workers make them, "w-<name>-<8 hex>". */
static size_t
s_ident(char *buf, size_t cap, unsigned n)
{
    return (size_t)snprintf(buf, cap, "w-node%u-%08x", n, n * 2654435761u);
}

static tw_bworker_t *
s_add(tw_registry_t *r, unsigned n, uint64_t now_ms)
{
    char id[64];
    size_t len = s_ident(id, sizeof id, n);
    return tw_registry_add(r, id, len, now_ms);
}

static tw_bworker_t *
s_find(const tw_registry_t *r, unsigned n)
{
    char id[64];
    size_t len = s_ident(id, sizeof id, n);
    return tw_registry_by_ident(r, id, len);
}

static int
s_h(tw_registry_t *r, const char *name, int create)
{
    return tw_registry_handler(r, name, strlen(name), create);
}

static void
test_add_and_lookup(void **state)
{
    (void)state;
    tw_registry_t r;
    tw_registry_init(&r);
    assert_null(tw_registry_by_id(&r, 1));
    assert_null(s_find(&r, 1));

    tw_bworker_t *w[3];
    for (unsigned i = 0; i < 3; i++) {
        w[i] = s_add(&r, i + 1, 1000 + i);
        assert_non_null(w[i]);
        assert_int_equal(w[i]->id, i + 1);
        assert_int_equal(w[i]->joined_ms, 1000 + i);
        assert_int_equal(w[i]->last_recv_ms, 1000 + i);
        assert_int_equal(w[i]->last_send_ms, 1000 + i);
        assert_int_equal(w[i]->credit, 0);
        assert_int_equal(w[i]->nhandlers, 0);
        assert_int_equal(w[i]->inflight.len, 0);
    }
    assert_int_equal(r.len, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_ptr_equal(r.list[i], w[i]);
        assert_ptr_equal(tw_registry_by_id(&r, i + 1), w[i]);
        assert_ptr_equal(s_find(&r, i + 1), w[i]);
    }
    assert_null(tw_registry_by_id(&r, 0));
    assert_null(tw_registry_by_id(&r, 4));
    assert_null(s_find(&r, 4));

    /* The identity is copied, and compared by bytes and length. */
    char id[64];
    size_t len = s_ident(id, sizeof id, 1);
    assert_int_equal(w[0]->ident_len, len);
    assert_memory_equal(w[0]->ident, id, len);
    assert_null(tw_registry_by_ident(&r, id, len - 1));
    id[len] = 'x';
    assert_null(tw_registry_by_ident(&r, id, len + 1));
    id[2] ^= 0x20;
    assert_null(tw_registry_by_ident(&r, id, len));

    /* Binary identities (ROUTER-made ones start with a zero byte). */
    static const unsigned char bin[5] = {0x00, 0x6b, 0x8b, 0x45, 0x67};
    tw_bworker_t *b = tw_registry_add(&r, bin, sizeof bin, 5);
    assert_ptr_equal(tw_registry_by_ident(&r, bin, sizeof bin), b);
    assert_int_equal(b->id, 4);
    tw_registry_destroy(&r);
}

static void
test_handler_interning(void **state)
{
    (void)state;
    tw_registry_t r;
    tw_registry_init(&r);

    /* Unknown and not created. */
    assert_int_equal(s_h(&r, "resize", 0), -1);
    assert_int_equal(r.nhandlers, 0);
    assert_int_equal(s_h(&r, "resize", 0), -1);
    assert_int_equal(r.nhandlers, 0);

    /* Created once, then found with or without create. */
    char name[] = "resize";
    assert_int_equal(tw_registry_handler(&r, name, 6, 1), 0);
    name[0] = 'R'; /* the table keeps its own copy */
    assert_int_equal(r.nhandlers, 1);
    assert_string_equal(r.handlers[0].name, "resize");
    assert_int_equal(r.handlers[0].name_len, 6);
    assert_int_equal(r.handlers[0].nworkers, 0);
    assert_int_equal(r.handlers[0].queue->len, 0);
    assert_int_equal(s_h(&r, "resize", 1), 0);
    assert_int_equal(s_h(&r, "resize", 0), 0);
    assert_int_equal(r.nhandlers, 1);

    /* Names are compared by length and bytes: prefixes are different. */
    assert_int_equal(s_h(&r, "resiz", 0), -1);
    assert_int_equal(s_h(&r, "resizer", 0), -1);
    assert_int_equal(s_h(&r, "Resize", 0), -1);
    assert_int_equal(s_h(&r, "resize2", 1), 1);
    assert_int_equal(s_h(&r, "res", 1), 2);
    assert_int_equal(tw_registry_handler(&r, "resize2", 6, 0), 0);
    assert_int_equal(r.nhandlers, 3);

    /* Not NUL-terminated input, as msgpack strings are. */
    const char *buf = "thumbnailXYZ";
    assert_int_equal(tw_registry_handler(&r, buf, 9, 1), 3);
    assert_string_equal(r.handlers[3].name, "thumbnail");
    assert_int_equal(s_h(&r, "thumbnail", 0), 3);

    /* Many names keep their indices as the table grows. */
    char nm[32];
    for (int i = 0; i < 200; i++) {
        snprintf(nm, sizeof nm, "h%d", i);
        assert_int_equal(s_h(&r, nm, 1), 4 + i);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(nm, sizeof nm, "h%d", i);
        assert_int_equal(s_h(&r, nm, 0), 4 + i);
        assert_string_equal(r.handlers[4 + i].name, nm);
    }
    assert_int_equal(s_h(&r, "resize", 0), 0);
    assert_int_equal(s_h(&r, "thumbnail", 0), 3);
    tw_registry_destroy(&r);
}

static void
s_expect_counts(const tw_registry_t *r, const uint32_t *want, size_t n)
{
    assert_int_equal(r->nhandlers, n);
    for (size_t i = 0; i < n; i++) {
        if (r->handlers[i].nworkers != want[i]) {
            fail_msg("handler %zu (%s): %u workers, want %u", i,
                     r->handlers[i].name, r->handlers[i].nworkers, want[i]);
        }
    }
}

static void
test_set_handlers_counts(void **state)
{
    (void)state;
    tw_registry_t r;
    tw_registry_init(&r);
    uint32_t a = (uint32_t)s_h(&r, "a", 1);
    uint32_t b = (uint32_t)s_h(&r, "b", 1);
    uint32_t c = (uint32_t)s_h(&r, "c", 1);
    tw_bworker_t *w1 = s_add(&r, 1, 0);
    tw_bworker_t *w2 = s_add(&r, 2, 0);
    tw_bworker_t *w3 = s_add(&r, 3, 0);

    uint32_t ab[2] = {a, b};
    tw_registry_set_handlers(&r, w1, ab, 2);
    ab[0] = c; /* the worker keeps its own copy */
    assert_int_equal(w1->nhandlers, 2);
    assert_int_equal(w1->handlers[0], a);
    assert_int_equal(w1->handlers[1], b);
    const uint32_t bc[2] = {b, c};
    tw_registry_set_handlers(&r, w2, bc, 2);
    s_expect_counts(&r, (const uint32_t[]){1, 2, 1}, 3);

    /* Re-set replaces, it does not add. */
    const uint32_t onlyc[1] = {c};
    tw_registry_set_handlers(&r, w1, onlyc, 1);
    s_expect_counts(&r, (const uint32_t[]){0, 1, 2}, 3);
    tw_registry_set_handlers(&r, w1, onlyc, 1);
    s_expect_counts(&r, (const uint32_t[]){0, 1, 2}, 3);

    /* None at all. */
    tw_registry_set_handlers(&r, w3, NULL, 0);
    assert_int_equal(w3->nhandlers, 0);
    s_expect_counts(&r, (const uint32_t[]){0, 1, 2}, 3);
    const uint32_t abc[3] = {a, b, c};
    tw_registry_set_handlers(&r, w3, abc, 3);
    s_expect_counts(&r, (const uint32_t[]){1, 2, 3}, 3);
    tw_registry_set_handlers(&r, w2, NULL, 0);
    assert_null(w2->handlers);
    s_expect_counts(&r, (const uint32_t[]){1, 1, 2}, 3);

    /* A handler interned after workers joined starts at zero, and the
     * existing counts survive the table growing. */
    uint32_t d = (uint32_t)s_h(&r, "d", 1);
    s_expect_counts(&r, (const uint32_t[]){1, 1, 2, 0}, 4);
    const uint32_t dd[2] = {d, a};
    tw_registry_set_handlers(&r, w2, dd, 2);
    s_expect_counts(&r, (const uint32_t[]){2, 1, 2, 1}, 4);

    /* A worker that refused a station of a handler stops offering it
     * (PROTOCOL.md 11.2); dropping one it does not offer changes
     * nothing. */
    assert_int_equal(tw_registry_drop_handler(&r, w3, b), 1);
    assert_int_equal(w3->nhandlers, 2);
    for (size_t i = 0; i < w3->nhandlers; i++) {
        assert_int_not_equal(w3->handlers[i], b);
    }
    s_expect_counts(&r, (const uint32_t[]){2, 0, 2, 1}, 4);
    assert_int_equal(tw_registry_drop_handler(&r, w3, b), 0);
    assert_int_equal(tw_registry_drop_handler(&r, w3, d), 0);
    s_expect_counts(&r, (const uint32_t[]){2, 0, 2, 1}, 4);

    /* Removing a worker takes its handlers off the counts; the names stay
     * known (their tasks wait for a new worker). */
    tw_registry_remove(&r, w3);
    s_expect_counts(&r, (const uint32_t[]){1, 0, 1, 1}, 4);
    tw_registry_remove(&r, w1);
    s_expect_counts(&r, (const uint32_t[]){1, 0, 0, 1}, 4);
    tw_registry_remove(&r, w2);
    s_expect_counts(&r, (const uint32_t[]){0, 0, 0, 0}, 4);
    assert_int_equal(r.len, 0);
    assert_int_equal(s_h(&r, "b", 0), 1);
    tw_registry_destroy(&r);
}

static void
s_expect_order(const tw_registry_t *r, const unsigned *ns, size_t n)
{
    assert_int_equal(r->len, n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(r->list[i], s_find(r, ns[i]));
        assert_ptr_equal(r->list[i], tw_registry_by_id(r, ns[i]));
    }
}

static void
test_remove_keeps_order(void **state)
{
    (void)state;
    tw_registry_t r;
    tw_registry_init(&r);
    for (unsigned i = 1; i <= 6; i++) {
        s_add(&r, i, i);
    }
    tw_registry_remove(&r, s_find(&r, 3)); /* middle */
    s_expect_order(&r, (const unsigned[]){1, 2, 4, 5, 6}, 5);
    assert_null(s_find(&r, 3));
    assert_null(tw_registry_by_id(&r, 3));
    tw_registry_remove(&r, s_find(&r, 1)); /* first */
    s_expect_order(&r, (const unsigned[]){2, 4, 5, 6}, 4);
    tw_registry_remove(&r, s_find(&r, 6)); /* last */
    s_expect_order(&r, (const unsigned[]){2, 4, 5}, 3);

    /* The same identity joining again is a new worker with a new id, at
     * the end of the order. */
    tw_bworker_t *again = s_add(&r, 1, 100);
    assert_int_equal(again->id, 7);
    assert_ptr_equal(r.list[3], again);
    assert_ptr_equal(s_find(&r, 1), again);
    assert_null(tw_registry_by_id(&r, 1));
    assert_ptr_equal(tw_registry_by_id(&r, 7), again);

    tw_registry_remove(&r, s_find(&r, 2));
    tw_registry_remove(&r, s_find(&r, 4));
    tw_registry_remove(&r, s_find(&r, 5));
    tw_registry_remove(&r, again);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.by_id.len, 0);
    assert_int_equal(r.by_ident.len, 0);
    tw_registry_destroy(&r);
}

static void
test_churn(void **state)
{
    (void)state;
    /* Many joins and leaves: the registry, the list and both indexes stay
     * consistent, and the destroy at the end frees owned strings. */
    tw_registry_t r;
    tw_registry_init(&r);
    uint32_t h[4];
    for (int i = 0; i < 4; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "h%d", i);
        h[i] = (uint32_t)s_h(&r, nm, 1);
    }
    unsigned present[400] = {0};
    uint32_t count[4] = {0};
    uint64_t s = 12345;
    for (unsigned step = 0; step < 4000; step++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned n = (unsigned)(s >> 33) % 400;
        tw_bworker_t *w = s_find(&r, n + 1);
        assert_true((w != NULL) == (present[n] != 0));
        if (w) {
            for (size_t k = 0; k < w->nhandlers; k++) {
                count[w->handlers[k]]--;
            }
            tw_registry_remove(&r, w);
            present[n] = 0;
        } else {
            w = s_add(&r, n + 1, step);
            w->name = tw_strdup("worker");
            w->host = tw_strdup("host");
            unsigned mask = (unsigned)(s >> 20) % 16;
            uint32_t idx[4];
            size_t ni = 0;
            for (int k = 0; k < 4; k++) {
                if (mask & (1u << k)) {
                    idx[ni++] = h[k];
                    count[h[k]]++;
                }
            }
            tw_registry_set_handlers(&r, w, idx, ni);
            present[n] = 1;
        }
        for (int k = 0; k < 4; k++) {
            assert_int_equal(r.handlers[h[k]].nworkers, count[h[k]]);
        }
    }
    size_t live = 0;
    for (unsigned n = 0; n < 400; n++) {
        live += present[n];
    }
    assert_int_equal(r.len, live);
    assert_int_equal(r.by_id.len, live);
    assert_int_equal(r.by_ident.len, live);
    /* Joining order is id order, since ids only grow. */
    for (size_t i = 1; i < r.len; i++) {
        assert_true(r.list[i - 1]->id < r.list[i]->id);
    }
    tw_registry_destroy(&r);
}

/* Two identities with equal tw_hash_bytes() (0x93ec4ca1c015b91b). */
static const unsigned char s_coll_a[16] = {
    0x32, 0x69, 0x6c, 0xc5, 0xae, 0x0b, 0x56, 0x4c,
    0x37, 0xe9, 0x07, 0x21, 0x22, 0x31, 0x08, 0x98};
static const unsigned char s_coll_b[16] = {
    0x32, 0x69, 0x6f, 0xfa, 0xe2, 0x0a, 0x48, 0x32,
    0x4c, 0x7e, 0x11, 0x12, 0x2b, 0x2a, 0x03, 0x9d};

/* A registry in `*state`, destroyed even when an assertion fails. */
static int
s_reg_setup(void **state)
{
    tw_registry_t *r = test_malloc(sizeof *r);
    tw_registry_init(r);
    *state = r;
    return 0;
}

static int
s_reg_teardown(void **state)
{
    tw_registry_t *r = *state;
    tw_registry_destroy(r);
    test_free(r);
    return 0;
}

static void
test_identity_hash_collision(void **state)
{
    tw_registry_t *r = *state;
    assert_memory_not_equal(s_coll_a, s_coll_b, 16);
    assert_int_equal(tw_hash_bytes(s_coll_a, 16), tw_hash_bytes(s_coll_b, 16));

    tw_bworker_t *a = tw_registry_add(r, s_coll_a, 16, 0);
    tw_bworker_t *b = tw_registry_add(r, s_coll_b, 16, 0);
    /* Both workers are registered, so each must be found by its own
     * identity: otherwise its READY/DONE get "unknown worker" forever. */
    assert_ptr_equal(tw_registry_by_ident(r, s_coll_b, 16), b);
    assert_ptr_equal(tw_registry_by_ident(r, s_coll_a, 16), a);
    /* One leaving must not make the other unreachable, whichever joined
     * first. */
    tw_registry_remove(r, a);
    assert_ptr_equal(tw_registry_by_ident(r, s_coll_b, 16), b);
    assert_null(tw_registry_by_ident(r, s_coll_a, 16));
    a = tw_registry_add(r, s_coll_a, 16, 0);
    tw_registry_remove(r, b);
    assert_ptr_equal(tw_registry_by_ident(r, s_coll_a, 16), a);
    assert_null(tw_registry_by_ident(r, s_coll_b, 16));
    tw_registry_remove(r, a);
    assert_null(tw_registry_by_ident(r, s_coll_a, 16));
    assert_int_equal(r->by_ident.len, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_lookup),
        cmocka_unit_test(test_handler_interning),
        cmocka_unit_test(test_set_handlers_counts),
        cmocka_unit_test(test_remove_keeps_order),
        cmocka_unit_test(test_churn),
        cmocka_unit_test_setup_teardown(test_identity_hash_collision,
                                        s_reg_setup, s_reg_teardown),
    };
    return cmocka_run_group_tests_name("broker_workers", tests, NULL, NULL);
}
