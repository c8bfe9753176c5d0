/*  tests/unit/test_broker_clients.c - the registry of clients.
 *
 *  A client record is made the first time an identity speaks on the
 *  frontend and refreshed on every later message; it is what ACK and
 *  RESULT batches are routed through. The suite checks that touching
 *  creates a record once per identity and moves last_seen, that the dirty
 *  list holds each client once however often it is marked, and that
 *  collection forgets exactly the clients that have been silent longer than
 *  the idle limit and have nothing outstanding and nothing waiting to be
 *  flushed. Time is numbers passed in. The last case feeds two identities
 *  with the same tw_hash_bytes() value (the identity index is keyed by it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/state/clients.h"
#include "common/util.h"

/* The clients under test, in `*state`, destroyed even after a failure. */
static int
s_setup(void **state)
{
    tw_clients_t *cs = test_malloc(sizeof *cs);
    tw_clients_init(cs);
    *state = cs;
    return 0;
}

static int
s_teardown(void **state)
{
    tw_clients_t *cs = *state;
    tw_clients_destroy(cs);
    test_free(cs);
    return 0;
}

/* A client identity as libtaskwheel makes them, "c-<16 hex>". */
static size_t
s_ident(char *buf, size_t cap, unsigned n)
{
    return (size_t)snprintf(buf, cap, "c-%016llx",
                            (unsigned long long)n * 0x9e3779b97f4a7c15ULL);
}

static tw_bclient_t *
s_touch(tw_clients_t *cs, unsigned n, uint64_t now_ms)
{
    char id[64];
    size_t len = s_ident(id, sizeof id, n);
    return tw_clients_touch(cs, id, len, now_ms);
}

/* What the broker does after a loop turn: send and clear the batches. */
static void
s_flush(tw_clients_t *cs)
{
    for (size_t i = 0; i < cs->ndirty; i++) {
        cs->dirty[i]->dirty = 0;
    }
    cs->ndirty = 0;
}

static void
test_touch_creates_once(void **state)
{
    tw_clients_t *cs = *state;
    assert_int_equal(tw_clients_count(cs), 0);
    assert_null(tw_clients_get(cs, 1));

    tw_bclient_t *a = s_touch(cs, 1, 100);
    assert_non_null(a);
    assert_int_equal(a->id, 1);
    assert_int_equal(a->last_seen_ms, 100);
    assert_int_equal(a->outstanding, 0);
    assert_int_equal(a->dirty, 0);
    assert_int_equal(a->acks.n, 0);
    assert_int_equal(a->results.n, 0);
    assert_int_equal(tw_clients_count(cs), 1);

    /* Again: the same record, seen later. */
    assert_ptr_equal(s_touch(cs, 1, 250), a);
    assert_int_equal(a->last_seen_ms, 250);
    assert_int_equal(tw_clients_count(cs), 1);

    tw_bclient_t *b = s_touch(cs, 2, 300);
    assert_ptr_not_equal(a, b);
    assert_int_equal(b->id, 2);
    assert_int_equal(tw_clients_count(cs), 2);
    assert_ptr_equal(tw_clients_get(cs, 1), a);
    assert_ptr_equal(tw_clients_get(cs, 2), b);
    assert_null(tw_clients_get(cs, 0));
    assert_null(tw_clients_get(cs, 3));
    assert_int_equal(a->last_seen_ms, 250); /* untouched by b */

    /* The identity is copied and compared by length and bytes. */
    char id[64];
    size_t len = s_ident(id, sizeof id, 1);
    assert_int_equal(a->ident_len, len);
    assert_memory_equal(a->ident, id, len);
    tw_bclient_t *p = tw_clients_touch(cs, id, len - 1, 400);
    assert_ptr_not_equal(p, a);
    assert_int_equal(p->id, 3);
    assert_int_equal(tw_clients_count(cs), 3);
    assert_ptr_equal(tw_clients_touch(cs, id, len, 500), a);
    assert_int_equal(a->last_seen_ms, 500);

    /* ROUTER-generated binary identities. */
    static const unsigned char bin[5] = {0x00, 0x80, 0x00, 0x00, 0x29};
    tw_bclient_t *r = tw_clients_touch(cs, bin, sizeof bin, 600);
    assert_ptr_equal(tw_clients_touch(cs, bin, sizeof bin, 601), r);
    assert_int_equal(r->last_seen_ms, 601);
    assert_int_equal(tw_clients_count(cs), 4);

    /* Many clients, each touched twice: still one record each. */
    for (unsigned n = 10; n < 1010; n++) {
        tw_bclient_t *c = s_touch(cs, n, n);
        assert_ptr_equal(s_touch(cs, n, n + 1), c);
        assert_int_equal(c->last_seen_ms, n + 1);
    }
    assert_int_equal(tw_clients_count(cs), 1004);
}

static void
test_mark_once(void **state)
{
    tw_clients_t *cs = *state;
    tw_bclient_t *a = s_touch(cs, 1, 0);
    tw_bclient_t *b = s_touch(cs, 2, 0);
    assert_int_equal(cs->ndirty, 0);

    tw_clients_mark(cs, a);
    assert_int_equal(cs->ndirty, 1);
    assert_ptr_equal(cs->dirty[0], a);
    assert_int_equal(a->dirty, 1);
    tw_clients_mark(cs, a);
    tw_clients_mark(cs, a);
    assert_int_equal(cs->ndirty, 1);

    tw_clients_mark(cs, b);
    tw_clients_mark(cs, a);
    assert_int_equal(cs->ndirty, 2);
    assert_ptr_equal(cs->dirty[1], b);
    assert_int_equal(b->dirty, 1);

    /* After the end-of-turn flush they can be marked again. */
    s_flush(cs);
    assert_int_equal(a->dirty, 0);
    tw_clients_mark(cs, b);
    tw_clients_mark(cs, b);
    assert_int_equal(cs->ndirty, 1);
    assert_ptr_equal(cs->dirty[0], b);
    s_flush(cs);

    /* Past the initial capacity, each once, in marking order. */
    tw_bclient_t *c[100];
    for (unsigned i = 0; i < 100; i++) {
        c[i] = s_touch(cs, 100 + i, 0);
    }
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 100; i++) {
            tw_clients_mark(cs, c[i]);
        }
    }
    assert_int_equal(cs->ndirty, 100);
    for (unsigned i = 0; i < 100; i++) {
        assert_ptr_equal(cs->dirty[i], c[i]);
    }
}

static void
test_gc_idle_only(void **state)
{
    tw_clients_t *cs = *state;
    tw_bclient_t *idle = s_touch(cs, 1, 100);
    tw_bclient_t *busy = s_touch(cs, 2, 100);
    tw_bclient_t *dirty = s_touch(cs, 3, 100);
    tw_bclient_t *recent = s_touch(cs, 4, 900);
    tw_bclient_t *edge = s_touch(cs, 5, 500);
    busy->outstanding = 1;
    tw_clients_mark(cs, dirty);
    uint64_t ids[5] = {idle->id, busy->id, dirty->id, recent->id, edge->id};

    /* Nobody has been silent longer than 1000 ms yet. */
    assert_int_equal(tw_clients_gc(cs, 1100, 1000), 0);
    assert_int_equal(tw_clients_count(cs), 5);

    /* At 1000 with a 500 ms limit: idle (900 ms) goes; busy and dirty
     * are as old but have something due; recent is 100 ms; edge is
     * exactly 500 ms, which is not longer than the limit. */
    assert_int_equal(tw_clients_gc(cs, 1000, 500), 1);
    assert_int_equal(tw_clients_count(cs), 4);
    assert_null(tw_clients_get(cs, ids[0]));
    assert_ptr_equal(tw_clients_get(cs, ids[1]), busy);
    assert_ptr_equal(tw_clients_get(cs, ids[2]), dirty);
    assert_ptr_equal(tw_clients_get(cs, ids[3]), recent);
    assert_ptr_equal(tw_clients_get(cs, ids[4]), edge);
    assert_int_equal(tw_clients_gc(cs, 1000, 500), 0);

    /* The identity is forgotten too: it comes back as a new client. */
    tw_bclient_t *back = s_touch(cs, 1, 1000);
    assert_int_equal(back->id, 6);
    assert_int_equal(tw_clients_count(cs), 5);

    /* One ms later edge is over the limit. */
    assert_int_equal(tw_clients_gc(cs, 1001, 500), 1);
    assert_null(tw_clients_get(cs, ids[4]));

    /* Once their tasks have ended and their batches gone out, the other
     * two are collectable like anyone else. */
    busy->outstanding = 0;
    s_flush(cs);
    assert_int_equal(tw_clients_gc(cs, 1001, 500), 2);
    assert_null(tw_clients_get(cs, ids[1]));
    assert_null(tw_clients_get(cs, ids[2]));
    assert_ptr_equal(tw_clients_get(cs, ids[3]), recent);
    assert_ptr_equal(tw_clients_get(cs, back->id), back);
    assert_int_equal(tw_clients_count(cs), 2);

    /* Touching refreshes: recent, seen again, survives a later pass. */
    assert_ptr_equal(s_touch(cs, 4, 5000), recent);
    assert_int_equal(tw_clients_gc(cs, 5400, 500), 1); /* back goes */
    assert_ptr_equal(tw_clients_get(cs, ids[3]), recent);
    assert_int_equal(tw_clients_count(cs), 1);
}

static void
test_gc_many(void **state)
{
    tw_clients_t *cs = *state;
    /* 1000 clients with a batch item each (freed by collection and by
     * destroy); every third one silent, every seventh one busy. */
    for (unsigned n = 0; n < 1000; n++) {
        tw_bclient_t *c = s_touch(cs, n, n % 3 == 0 ? 0 : 10000);
        c->outstanding = n % 7 == 0;
        tw_enc_t *e = tw_batch_item(&c->results);
        tw_enc_map(e, 1);
        tw_enc_ikey(e, TW_I_ID);
        tw_enc_uint(e, n);
    }
    size_t want = 0;
    for (unsigned n = 0; n < 1000; n++) {
        want += n % 3 == 0 && n % 7 != 0;
    }
    assert_int_equal(tw_clients_gc(cs, 10000, 5000), want);
    assert_int_equal(tw_clients_count(cs), 1000 - want);
    /* The survivors are still found by identity, the others are new. */
    uint64_t next = 1001;
    for (unsigned n = 0; n < 1000; n++) {
        tw_bclient_t *c = s_touch(cs, n, 10001);
        if (n % 3 == 0 && n % 7 != 0) {
            assert_int_equal(c->id, next);
            next++;
        } else {
            assert_int_equal(c->id, n + 1);
            assert_int_equal(c->results.n, 1);
        }
    }
    assert_int_equal(tw_clients_count(cs), 1000);
}

/* Two identities with equal tw_hash_bytes() (0x93ec4ca1c015b91b). */
static const unsigned char s_coll_a[16] = {
    0x32, 0x69, 0x6c, 0xc5, 0xae, 0x0b, 0x56, 0x4c,
    0x37, 0xe9, 0x07, 0x21, 0x22, 0x31, 0x08, 0x98};
static const unsigned char s_coll_b[16] = {
    0x32, 0x69, 0x6f, 0xfa, 0xe2, 0x0a, 0x48, 0x32,
    0x4c, 0x7e, 0x11, 0x12, 0x2b, 0x2a, 0x03, 0x9d};

static void
test_identity_hash_collision(void **state)
{
    tw_clients_t *cs = *state;
    assert_int_equal(tw_hash_bytes(s_coll_a, 16), tw_hash_bytes(s_coll_b, 16));
    tw_bclient_t *a = tw_clients_touch(cs, s_coll_a, 16, 0);
    tw_bclient_t *b = tw_clients_touch(cs, s_coll_b, 16, 500);
    /* Two identities, two records, each with its own identity to route
     * to; the newcomer has the index slot. */
    assert_ptr_not_equal(a, b);
    assert_memory_equal(a->ident, s_coll_a, 16);
    assert_memory_equal(b->ident, s_coll_b, 16);
    assert_ptr_equal(tw_clients_get(cs, a->id), a);
    assert_ptr_equal(tw_clients_touch(cs, s_coll_b, 16, 600), b);
    /* Collecting the older one must leave the newcomer's slot alone. */
    assert_int_equal(tw_clients_gc(cs, 1000, 500), 1);
    assert_null(tw_clients_get(cs, 1));
    assert_ptr_equal(tw_clients_touch(cs, s_coll_b, 16, 1000), b);
    assert_int_equal(tw_clients_count(cs), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_touch_creates_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_mark_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_gc_idle_only, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_gc_many, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_identity_hash_collision,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("broker_clients", tests, NULL, NULL);
}
