/*  tests/unit/test_broker_aside.c - stations no worker matches are set
 *  aside, and tried again only when the worker set changes.
 *
 *  The aside list (broker/state/aside.h) keeps the stations whose last try found
 *  no eligible worker ("no eligible worker", "waiting for its host"); the
 *  placement pass (tw__place_pass, core/place.c) does not look at
 *  them while the workers stay the same, so a credit return under task
 *  load costs nothing for them. These cases check the list itself (O(1)
 *  take by index, release marks the generation) and then run real
 *  placement passes over a minimal broker (a loop for uv_now, a registry,
 *  the station table, no sockets): N unmatched stations are tried once,
 *  further passes with fresh credit try none of them, a worker that
 *  matches joining makes the next pass try them again and place them, and
 *  removing a set-aside station leaves no entry behind. Stations whose
 *  handler no connected worker offers are set aside the same way, with a
 *  reason that says so, and placed only on a worker that offers it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/core/core.h"
#include "broker/core/place.h"
#include "common/alloc.h"

#define S_N 500

/* ---- the list --------------------------------------------------------- */

static tw_station_t *
s_station(tw_stations_t *ss, const char *sid)
{
    return tw_stations_add(ss, sid, strlen(sid), NULL, 0);
}

static void
test_list_take_and_release(void **state)
{
    (void)state;
    tw_stations_t ss;
    tw_stations_init(&ss, 4);
    tw_aside_t a;
    memset(&a, 0, sizeof a);
    tw_station_t *st[100];
    for (int i = 0; i < 100; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "s%d", i);
        st[i] = s_station(&ss, sid);
        tw_aside_put(&a, st[i]);
        assert_int_equal(st[i]->queued, TW_QUEUED_ASIDE);
    }
    assert_false(tw_aside_due(&a)); /* tried at the current generation */
    /* Taking any one keeps every other index right. */
    for (int i = 0; i < 100; i += 3) {
        tw_aside_take(&a, st[i]);
        assert_int_equal(st[i]->queued, TW_QUEUED_NO);
    }
    for (size_t k = 0; k < a.len; k++) {
        assert_int_equal(a.list[k]->aside_ix, k);
    }
    assert_int_equal(a.len, 100 - 34);
    tw_aside_changed(&a);
    assert_true(tw_aside_due(&a));
    size_t n;
    tw_station_t **out = tw_aside_release(&a, &n);
    assert_int_equal(n, 66);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(out[k]->queued, TW_QUEUED_NO);
    }
    assert_int_equal(a.len, 0);
    assert_false(tw_aside_due(&a));
    tw_aside_free(&a);
    tw_stations_destroy(&ss);
}

/* ---- placement passes over a minimal broker --------------------------- */

typedef struct {
    uv_loop_t loop;
    tw_broker_t *b;
    uint32_t handler;
} s_fix_t;

static int
s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->b = calloc(1, sizeof *f->b);
    f->b->loop = &f->loop;
    tw_registry_init(&f->b->reg);
    tw_stations_init(&f->b->stations, 16);
    f->handler = (uint32_t)tw_registry_handler(&f->b->reg, "noop", 4, 1);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *f = *state;
    tw_stations_destroy(&f->b->stations);
    tw_registry_destroy(&f->b->reg);
    tw_free(f->b->unplaced);
    tw_aside_free(&f->b->aside);
    free(f->b);
    uv_loop_close(&f->loop);
    free(f);
    return 0;
}

/* A worker as HELLO leaves it, with one tag code=<code> (or none),
 * offering the fixture's handler `noop`. */
static tw_bworker_t *
s_worker(s_fix_t *f, const char *ident, const char *code, uint32_t slots)
{
    tw_bworker_t *w = tw_registry_add(&f->b->reg, ident, strlen(ident), 0);
    tw_registry_set_handlers(&f->b->reg, w, &f->handler, 1);
    w->name = tw_strdup(ident);
    w->host = tw_strdup("h");
    w->slots = slots;
    w->credit = slots;
    if (code) {
        w->ntags = 2;
        w->tags = tw_calloc(2, sizeof *w->tags);
        w->tags[0] = tw_strdup("code");
        w->tags[1] = tw_strdup(code);
    }
    tw__place_workers_changed(f->b);
    return w;
}

/* A new PENDING station wanting `code`, queued as an add queues it. */
static tw_station_t *
s_add(s_fix_t *f, const char *sid, const char *code, tw_placement_t p)
{
    tw_broker_t *b = f->b;
    tw_station_t *st = s_station(&b->stations, sid);
    st->handler = f->handler;
    st->placement = p;
    st->code = code ? tw_strdup(code) : NULL;
    st->state = TW_SS_PENDING;
    st->queued = TW_QUEUED_TRY;
    if (b->nunplaced == b->capunplaced) {
        b->capunplaced = b->capunplaced ? b->capunplaced * 2 : 64;
        b->unplaced = tw_realloc(b->unplaced,
                                 b->capunplaced * sizeof *b->unplaced);
    }
    b->unplaced[b->nunplaced++] = st;
    b->place_wanted = 1;
    return st;
}

/* A READY or DONE returned credit: what dispatch.c does, then a pass. */
static void
s_credit(s_fix_t *f, tw_bworker_t *w)
{
    w->credit++;
    f->b->place_wanted |= f->b->nunplaced > 0;
    tw__place_pass(f->b);
}

static void
test_unmatched_tried_once(void **state)
{
    s_fix_t *f = *state;
    tw_broker_t *b = f->b;
    tw_bworker_t *w[4];
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "w%d", i);
        w[i] = s_worker(f, id, "gpu", 2);
    }
    tw_station_t *st[S_N];
    for (int i = 0; i < S_N; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "s%d", i);
        st[i] = s_add(f, sid, "rtk", i % 2 ? TW_PLACE_PINNED : TW_PLACE_ANY);
    }
    tw__place_pass(b);
    assert_int_equal(b->aside.tries, S_N);
    assert_int_equal(b->nunplaced, 0);
    assert_int_equal(b->aside.len, S_N);
    assert_int_equal(tw__place_unplaced(b), S_N);
    /* States and reasons are those of the try. */
    assert_int_equal(st[0]->state, TW_SS_PENDING);
    assert_string_equal(st[0]->reason, "no eligible worker");
    assert_int_equal(st[1]->state, TW_SS_WAITING_HOST);
    /* Credit returns by the thousand: no station is tried again. */
    for (int k = 0; k < 1000; k++) {
        s_credit(f, w[k % 4]);
    }
    assert_int_equal(b->aside.tries, S_N);
    assert_int_equal(b->aside.len, S_N);
    /* A worker that matches joins: the next pass tries them all again and
     * places as many as it has slots; the rest wait for room, on the list
     * (they match now). */
    tw_bworker_t *m = s_worker(f, "wm", "rtk", 10);
    tw__place_pass(b);
    assert_int_equal(b->aside.tries, 2 * S_N);
    assert_int_equal(m->nstations, 10);
    assert_int_equal(b->aside.len, 0);
    assert_int_equal(b->nunplaced, S_N - 10);
    assert_int_equal(st[0]->state, TW_SS_ASSIGNED);
    assert_int_equal(st[0]->worker, m->id);
    assert_int_equal(st[1]->state, TW_SS_ASSIGNED);
    assert_int_equal(st[S_N - 1]->state, TW_SS_PENDING);
    assert_string_equal(st[S_N - 1]->reason,
                        "no free slot on an eligible worker");
}

/* A worker that stops matching (draining) sends the stations still
 * waiting for it aside; every change of the workers brings them back for
 * one more try. */
static void
test_changes_bring_back(void **state)
{
    s_fix_t *f = *state;
    tw_broker_t *b = f->b;
    tw_bworker_t *w = s_worker(f, "w0", "rtk", 2);
    tw_bworker_t *other = s_worker(f, "w1", "gpu", 2);
    for (int i = 0; i < 10; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "s%d", i);
        s_add(f, sid, "rtk", TW_PLACE_ANY);
    }
    tw__place_pass(b);
    assert_int_equal(w->nstations, 2);
    assert_int_equal(b->aside.len, 0); /* no room, but they match */
    assert_int_equal(b->nunplaced, 8);
    /* The only matching worker drains: the rest are set aside. */
    w->draining = 1;
    tw__place_workers_changed(b);
    tw__place_pass(b);
    assert_int_equal(b->aside.len, 8);
    assert_int_equal(b->nunplaced, 0);
    uint64_t tries = b->aside.tries;
    for (int k = 0; k < 100; k++) {
        s_credit(f, other);
    }
    assert_int_equal(b->aside.tries, tries);
    /* Any change of the workers: they are tried once more. */
    tw__place_workers_changed(b);
    tw__place_pass(b);
    assert_int_equal(b->aside.tries, tries + 8);
    assert_int_equal(b->aside.len, 8);
}

/* A set-aside station that is stopped, continued or removed: no stale
 * entry is left behind and nothing points at freed memory. */
static void
test_removed_while_aside(void **state)
{
    s_fix_t *f = *state;
    tw_broker_t *b = f->b;
    s_worker(f, "w0", "gpu", 2);
    tw_station_t *a = s_add(f, "a", "rtk", TW_PLACE_ANY);
    tw_station_t *c = s_add(f, "c", "rtk", TW_PLACE_ANY);
    s_add(f, "d", "rtk", TW_PLACE_ANY);
    tw__place_pass(b);
    assert_int_equal(b->aside.len, 3);
    /* Stopped before placement (the STATION op's effect), then dropped
     * as stale by the first pass after a change. */
    a->state = TW_SS_STOPPED;
    tw__place_workers_changed(b);
    tw__place_pass(b);
    assert_int_equal(b->aside.len, 2);
    assert_int_equal(a->queued, TW_QUEUED_NO);
    assert_int_equal(c->queued, TW_QUEUED_ASIDE);
    /* Removed while aside: taken off the list by its index. */
    tw_aside_take(&b->aside, c);
    tw_stations_remove(&b->stations, c);
    assert_int_equal(b->aside.len, 1);
    assert_int_equal(b->aside.list[0]->aside_ix, 0);
    tw__place_workers_changed(b);
    tw__place_pass(b);
    assert_int_equal(b->aside.len, 1);
}

/* Placement treats "offers the handler" as eligibility (PROTOCOL.md
 * 11.9): workers with room that lack it are passed over, the stations
 * wait aside saying why, credit returns do not try them again, and a
 * worker offering the handler joining places them there only. */
static void
test_no_handler_set_aside(void **state)
{
    s_fix_t *f = *state;
    tw_broker_t *b = f->b;
    tw_bworker_t *w = s_worker(f, "w0", NULL, 8);
    uint32_t other = (uint32_t)tw_registry_handler(&b->reg, "other", 5, 1);
    tw_station_t *st[4];
    for (int i = 0; i < 4; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "s%d", i);
        st[i] = s_add(f, sid, NULL, i % 2 ? TW_PLACE_PINNED : TW_PLACE_ANY);
        st[i]->handler = other;
    }
    tw__place_pass(b);
    assert_int_equal(w->nstations, 0);
    assert_int_equal(b->aside.len, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st[i]->state, TW_SS_PENDING);
        assert_string_equal(st[i]->reason,
                            "no eligible worker offers its handler");
    }
    uint64_t tries = b->aside.tries;
    for (int k = 0; k < 100; k++) {
        s_credit(f, w);
    }
    assert_int_equal(b->aside.tries, tries);
    /* A worker offering it joins: all four go there, none to w0. */
    tw_bworker_t *h = s_worker(f, "w1", NULL, 8);
    tw_registry_set_handlers(&b->reg, h, &other, 1);
    tw__place_pass(b);
    assert_int_equal(b->aside.len, 0);
    assert_int_equal(h->nstations, 4);
    assert_int_equal(w->nstations, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st[i]->state, TW_SS_ASSIGNED);
        assert_int_equal(st[i]->worker, h->id);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_take_and_release),
        cmocka_unit_test_setup_teardown(test_unmatched_tried_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_changes_bring_back, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_removed_while_aside, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_no_handler_set_aside, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
