/*  tests/unit/test_broker_pools.c - the pool and group tables, their limit
 *  predicates, and the queue bits that parking and delays rely on.
 *
 *  broker/state/pools.c is pure bookkeeping: pools are found by name or by a
 *  dense id (1, 2, 3...), groups by name within their pool or by a global
 *  id that a forgotten group gives up for good, and every group remembers
 *  the ids of the tasks it ever held (S60). The predicates in pools.h are
 *  what admission and dispatch ask: has_room (may one more task start
 *  now: S49, S94-S96) and refuses (must a new task be turned away at
 *  SUBMIT: the reject mode of S99, which counts admitted tasks, pending
 *  and running, and the lifetime calls cap of S87-S89, which refuses in
 *  either mode). The queue part checks what flow.c builds on: the due
 *  order of the delayed heap, that a task records the heap holding it
 *  (t->inq) and loses it when taken out, and that a task moves cleanly
 *  from one heap to another, as an unparked task does. No broker, loop or
 *  socket is involved; leaks are left to the sanitizer build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "broker/state/pools.h"
#include "broker/state/queue.h"
#include "broker/state/task.h"
#include "tests/unit/support/rng.h"

/* ---- helpers ---------------------------------------------------------- */

static tw_pool_t *
s_pool(tw_pools_t *ps, const char *name, int create)
{
    return tw_pools_get(ps, name, strlen(name), create);
}

static tw_group_t *
s_group(tw_pools_t *ps, tw_pool_t *p, const char *name, int create)
{
    return tw_pools_group(ps, p, name, strlen(name), create);
}

/* A free-standing group with these settings and counters, as the
 * predicates see it. */
static tw_group_t
s_rule(int64_t limit, int64_t calls, tw_full_t full, uint64_t running,
       uint64_t pending, uint64_t admitted)
{
    tw_group_t g;
    memset(&g, 0, sizeof g);
    g.limit = limit;
    g.calls = calls;
    g.full = full;
    g.running = running;
    g.pending = pending;
    g.admitted = admitted;
    return g;
}

static void
s_task(tw_task_t *t, uint64_t id, int32_t priority, uint64_t due_ms)
{
    memset(t, 0, sizeof *t);
    t->id = id;
    t->priority = priority;
    t->due_ms = due_ms;
}

/* Every slot's task knows its slot and its heap, and no child comes
 * before its parent. */
static void
s_check_heap(const tw_queue_t *q)
{
    for (size_t i = 0; i < q->len; i++) {
        assert_int_equal(q->heap[i]->heap_idx, i);
        assert_ptr_equal(q->heap[i]->inq, q);
        if (i > 0) {
            assert_false(q->before(q->heap[i], q->heap[(i - 1) / 2]));
        }
    }
}

/* ---- pools ------------------------------------------------------------ */

static void
test_pools_empty(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    assert_int_equal(ps.len, 0);
    assert_int_equal(ps.next_gid, 1);
    assert_null(tw_pools_by_id(&ps, 0));
    assert_null(tw_pools_by_id(&ps, 1));
    assert_null(s_pool(&ps, "default", 0));
    assert_null(tw_pools_group_by_id(&ps, 1));
    tw_pools_destroy(&ps);

    /* Usable again after destroy and init. */
    tw_pools_init(&ps);
    assert_non_null(s_pool(&ps, "x", 1));
    tw_pools_destroy(&ps);
}

static void
test_pool_create_and_lookup(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);

    tw_pool_t *d = s_pool(&ps, "default", 1);
    assert_non_null(d);
    assert_int_equal(d->id, 1);
    assert_int_equal(d->name_len, 7);
    assert_string_equal(d->name, "default");
    /* A new pool: unlimited (size 0, S49's infinite default), open, no
     * counters, no groups, nothing parked or running. */
    assert_int_equal(d->size, 0);
    assert_false(d->locked);
    assert_false(d->closed);
    assert_int_equal(d->running, 0);
    assert_int_equal(d->pending, 0);
    assert_int_equal(d->ended, 0);
    assert_int_equal(d->cancelled, 0);
    assert_int_equal(d->next_dseq, 0);
    assert_int_equal(d->groups.len, 0);
    assert_int_equal(d->dedup.len, 0);
    assert_int_equal(d->parked.len, 0);
    assert_ptr_equal(d->parked.before, tw_queue_before);
    assert_int_equal(d->running_list.len, 0);
    assert_true(tw_pool_has_room(d));

    /* Found again by name (with or without create) and by id. */
    assert_ptr_equal(s_pool(&ps, "default", 0), d);
    assert_ptr_equal(s_pool(&ps, "default", 1), d);
    assert_ptr_equal(tw_pools_by_id(&ps, 1), d);
    assert_int_equal(ps.len, 1);

    /* Names are byte strings: a prefix, a longer name or a different case
     * is another pool, and so is a name with a NUL byte inside. */
    tw_pool_t *a = s_pool(&ps, "a", 1);
    tw_pool_t *anul = tw_pools_get(&ps, "a\0b", 3, 1);
    tw_pool_t *ab = s_pool(&ps, "ab", 1);
    tw_pool_t *up = s_pool(&ps, "Default", 1);
    assert_int_equal(a->id, 2);
    assert_int_equal(anul->id, 3);
    assert_int_equal(ab->id, 4);
    assert_int_equal(up->id, 5);
    assert_int_equal(anul->name_len, 3);
    assert_memory_equal(anul->name, "a\0b", 3);
    assert_ptr_equal(tw_pools_get(&ps, "a\0b", 3, 0), anul);
    assert_ptr_equal(tw_pools_get(&ps, "a\0c", 3, 0), NULL);
    assert_ptr_equal(s_pool(&ps, "a", 0), a);
    assert_ptr_equal(s_pool(&ps, "ab", 0), ab);
    assert_null(s_pool(&ps, "abc", 0));
    assert_null(tw_pools_by_id(&ps, 6));
    assert_null(tw_pools_by_id(&ps, 0));

    /* The caller's buffer is copied: changing it afterwards changes
     * nothing. */
    char buf[8] = "tmp";
    tw_pool_t *t = tw_pools_get(&ps, buf, 3, 1);
    memcpy(buf, "xyz", 3);
    assert_string_equal(t->name, "tmp");
    assert_ptr_equal(s_pool(&ps, "tmp", 0), t);
    assert_null(s_pool(&ps, "xyz", 0));

    tw_pools_destroy(&ps);
}

static void
test_pool_ids_survive_growth(void **state)
{
    (void)state;
    /* Past the first capacity (8) and several doublings: ids stay dense
     * and every pool is still found by id and by name. */
    enum { N = 200 };
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *all[N];
    char name[16];
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "pool-%zu", i);
        all[i] = tw_pools_get(&ps, name, (size_t)n, 1);
        assert_int_equal(all[i]->id, i + 1);
    }
    assert_int_equal(ps.len, N);
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "pool-%zu", i);
        assert_ptr_equal(tw_pools_by_id(&ps, (uint32_t)(i + 1)), all[i]);
        assert_ptr_equal(tw_pools_get(&ps, name, (size_t)n, 0), all[i]);
    }
    assert_null(tw_pools_by_id(&ps, N + 1));
    tw_pools_destroy(&ps);
}

/* ---- groups ----------------------------------------------------------- */

static void
test_group_create_and_lookup(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *p = s_pool(&ps, "default", 1);
    tw_pool_t *q = s_pool(&ps, "other", 1);

    assert_null(s_group(&ps, p, "g", 0));
    assert_int_equal(p->groups.len, 0);

    /* Created on demand (S95) with no limits and the queue mode. */
    tw_group_t *g = s_group(&ps, p, "g", 1);
    assert_non_null(g);
    assert_int_equal(g->id, 1);
    assert_int_equal(g->pool, p->id);
    assert_string_equal(g->name, "g");
    assert_int_equal(g->name_len, 1);
    assert_int_equal(g->limit, -1);
    assert_int_equal(g->calls, -1);
    assert_int_equal(g->full, TW_FULL_QUEUE);
    assert_int_equal(g->running, 0);
    assert_int_equal(g->pending, 0);
    assert_int_equal(g->ended, 0);
    assert_int_equal(g->cancelled, 0);
    assert_int_equal(g->admitted, 0);
    assert_int_equal(g->nids, 0);
    assert_int_equal(g->parked.len, 0);
    assert_ptr_equal(g->parked.before, tw_queue_before);
    assert_false(g->was_full);
    assert_true(tw_group_has_room(g));
    assert_false(tw_group_refuses(g));
    assert_int_equal(p->groups.len, 1);

    /* Found again by name and by id; create does not make a second. */
    assert_ptr_equal(s_group(&ps, p, "g", 0), g);
    assert_ptr_equal(s_group(&ps, p, "g", 1), g);
    assert_ptr_equal(tw_pools_group_by_id(&ps, g->id), g);
    assert_int_equal(p->groups.len, 1);

    /* The same name in another pool is another group (names are per
     * pool, S44-S46); ids are global and keep increasing. */
    assert_null(s_group(&ps, q, "g", 0));
    tw_group_t *qg = s_group(&ps, q, "g", 1);
    assert_ptr_not_equal(qg, g);
    assert_int_equal(qg->id, 2);
    assert_int_equal(qg->pool, q->id);
    assert_ptr_equal(s_group(&ps, p, "g", 0), g);
    assert_ptr_equal(s_group(&ps, q, "g", 0), qg);
    assert_int_equal(q->groups.len, 1);

    tw_group_t *h = s_group(&ps, p, "h", 1);
    assert_int_equal(h->id, 3);
    assert_int_equal(p->groups.len, 2);
    assert_ptr_equal(tw_pools_group_by_id(&ps, 3), h);
    assert_null(tw_pools_group_by_id(&ps, 4));
    assert_null(tw_pools_group_by_id(&ps, 0));

    /* Group keys are opaque byte strings (S95). */
    tw_group_t *nul = tw_pools_group(&ps, p, "g\0x", 3, 1);
    assert_ptr_not_equal(nul, g);
    assert_int_equal(nul->name_len, 3);
    assert_ptr_equal(tw_pools_group(&ps, p, "g\0x", 3, 0), nul);
    assert_null(tw_pools_group(&ps, p, "g\0y", 3, 0));

    tw_pools_destroy(&ps);
}

static void
test_forget_group(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *p = s_pool(&ps, "default", 1);
    tw_group_t *g = s_group(&ps, p, "g", 1);
    tw_group_t *h = s_group(&ps, p, "h", 1);
    uint64_t gid = g->id, hid = h->id;

    /* Give g everything a live group owns: settings, counters, ids and
     * a parked heap that has held tasks (so it has a buffer). */
    g->limit = 2;
    g->calls = 10;
    g->full = TW_FULL_REJECT;
    g->admitted = 3;
    g->ended = 3;
    for (uint64_t id = 1; id <= 40; id++) {
        tw_group_add_id(g, id);
    }
    tw_task_t t;
    s_task(&t, 7, 0, 0);
    tw_queue_push(&g->parked, &t);
    tw_queue_remove(&g->parked, &t);
    assert_null(t.inq);

    tw_pools_forget_group(&ps, g);
    assert_null(s_group(&ps, p, "g", 0));
    assert_null(tw_pools_group_by_id(&ps, gid));
    assert_int_equal(p->groups.len, 1);
    assert_ptr_equal(s_group(&ps, p, "h", 0), h);
    assert_ptr_equal(tw_pools_group_by_id(&ps, hid), h);

    /* The name can be used again: a fresh group with a new id and no
     * settings, counters or ids (S58: the old group is gone; S60: its ids
     * are forgotten with it). The old id stays unknown. */
    tw_group_t *g2 = s_group(&ps, p, "g", 1);
    assert_int_not_equal(g2->id, gid);
    assert_int_equal(g2->id, hid + 1);
    assert_int_equal(g2->limit, -1);
    assert_int_equal(g2->calls, -1);
    assert_int_equal(g2->full, TW_FULL_QUEUE);
    assert_int_equal(g2->admitted, 0);
    assert_int_equal(g2->ended, 0);
    assert_int_equal(g2->nids, 0);
    assert_null(tw_pools_group_by_id(&ps, gid));
    assert_ptr_equal(tw_pools_group_by_id(&ps, g2->id), g2);

    /* Forgetting every group empties the pool's table; the pool stays. */
    tw_pools_forget_group(&ps, h);
    tw_pools_forget_group(&ps, g2);
    assert_int_equal(p->groups.len, 0);
    assert_int_equal(ps.groups.len, 0);
    assert_ptr_equal(s_pool(&ps, "default", 0), p);

    tw_pools_destroy(&ps);
}

static void
test_forget_many_groups(void **state)
{
    (void)state;
    /* Enough groups that both maps grow, then forget every other one and
     * check that the rest are all still found both ways. */
    enum { N = 300 };
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *p = s_pool(&ps, "p", 1);
    tw_group_t *g[N];
    char name[16];
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "g%zu", i);
        g[i] = tw_pools_group(&ps, p, name, (size_t)n, 1);
        assert_int_equal(g[i]->id, i + 1);
    }
    for (size_t i = 0; i < N; i += 2) {
        tw_pools_forget_group(&ps, g[i]);
    }
    assert_int_equal(p->groups.len, N / 2);
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "g%zu", i);
        tw_group_t *byname = tw_pools_group(&ps, p, name, (size_t)n, 0);
        tw_group_t *byid = tw_pools_group_by_id(&ps, i + 1);
        if (i % 2) {
            assert_ptr_equal(byname, g[i]);
            assert_ptr_equal(byid, g[i]);
        } else {
            assert_null(byname);
            assert_null(byid);
        }
    }
    tw_pools_destroy(&ps);
}

static void
test_add_id_growth(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_group_t *g = s_group(&ps, s_pool(&ps, "p", 1), "g", 1);
    assert_null(g->ids);
    assert_int_equal(g->capids, 0);

    /* 16 first, then doubling; the ids stay in the order they joined,
     * ended or not (S60: every id the group ever held). */
    tw_group_add_id(g, 100);
    assert_int_equal(g->nids, 1);
    assert_int_equal(g->capids, 16);
    for (uint64_t i = 1; i < 16; i++) {
        tw_group_add_id(g, 100 + i);
    }
    assert_int_equal(g->capids, 16);
    tw_group_add_id(g, 116);
    assert_int_equal(g->capids, 32);
    for (uint64_t i = 17; i < 5000; i++) {
        tw_group_add_id(g, 100 + i);
        assert_true(g->nids <= g->capids);
    }
    assert_int_equal(g->nids, 5000);
    assert_int_equal(g->capids, 8192);
    for (size_t i = 0; i < g->nids; i++) {
        assert_int_equal(g->ids[i], 100 + i);
    }
    /* The table does not deduplicate; the broker never adds an id twice
     * (s_join_groups skips a group named twice in one item). */
    tw_group_add_id(g, 100);
    assert_int_equal(g->nids, 5001);
    assert_int_equal(g->ids[5000], 100);
    tw_pools_destroy(&ps);
}

/* ---- limits: may a task start now? ------------------------------------ */

static void
test_group_has_room(void **state)
{
    (void)state;
    /* No limit (-1): always room, however many run (S97: cleared). */
    tw_group_t g = s_rule(-1, -1, TW_FULL_QUEUE, 0, 0, 0);
    assert_true(tw_group_has_room(&g));
    g.running = 1000000;
    assert_true(tw_group_has_room(&g));
    g.running = UINT64_MAX;
    assert_true(tw_group_has_room(&g));

    /* Limit 0: nothing new may start (S96: 0 is allowed). */
    g = s_rule(0, -1, TW_FULL_QUEUE, 0, 0, 0);
    assert_false(tw_group_has_room(&g));

    /* Limit n: room while running < n (S51, S99). */
    g = s_rule(3, -1, TW_FULL_QUEUE, 0, 0, 0);
    for (uint64_t r = 0; r < 3; r++) {
        g.running = r;
        assert_true(tw_group_has_room(&g));
    }
    g.running = 3;
    assert_false(tw_group_has_room(&g));

    /* A limit lowered below what runs kills nothing; there is simply no
     * room until the count drops below it (S96). */
    g.running = 5;
    assert_false(tw_group_has_room(&g));
    g.running = 2;
    assert_true(tw_group_has_room(&g));

    /* Pending tasks do not take room: only running ones do (S98). */
    g = s_rule(1, -1, TW_FULL_QUEUE, 0, 1000, 1000);
    assert_true(tw_group_has_room(&g));

    /* The mode does not matter for room. */
    g = s_rule(1, -1, TW_FULL_REJECT, 0, 0, 0);
    assert_true(tw_group_has_room(&g));
    g.running = 1;
    assert_false(tw_group_has_room(&g));

    /* The largest limit the wire allows. */
    g = s_rule(INT64_MAX, -1, TW_FULL_QUEUE, (uint64_t)INT64_MAX - 1, 0, 0);
    assert_true(tw_group_has_room(&g));
    g.running = (uint64_t)INT64_MAX;
    assert_false(tw_group_has_room(&g));
}

static void
test_pool_has_room(void **state)
{
    (void)state;
    /* The pool is the implicit group () (S94-S95): its size bounds the
     * running tasks of the whole pool; 0 is unlimited (S49's default). */
    tw_pool_t p;
    memset(&p, 0, sizeof p);
    assert_true(tw_pool_has_room(&p));
    p.running = 1000000;
    assert_true(tw_pool_has_room(&p));

    p.size = 2;
    p.running = 0;
    assert_true(tw_pool_has_room(&p));
    p.running = 1;
    assert_true(tw_pool_has_room(&p));
    p.running = 2;
    assert_false(tw_pool_has_room(&p));
    p.running = 7; /* size lowered below what runs */
    assert_false(tw_pool_has_room(&p));

    /* Pending tasks never count: a full pool queues (S49). */
    p.running = 1;
    p.pending = 100;
    assert_true(tw_pool_has_room(&p));
}

/* ---- admission: must a new task be refused? ---------------------------- */

static void
test_queue_mode_never_refuses_for_room(void **state)
{
    (void)state;
    /* Queue mode (the default, S49/S51): a full group makes a task wait,
     * never fail, whatever the limit and the counts. */
    static const int64_t limits[] = {-1, 0, 1, 5};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        tw_group_t g = s_rule(limits[i], -1, TW_FULL_QUEUE, 0, 0, 0);
        assert_false(tw_group_refuses(&g));
        g.running = 10;
        assert_false(tw_group_refuses(&g));
        g.pending = 10;
        assert_false(tw_group_refuses(&g));
        g.admitted = 1000000;
        assert_false(tw_group_refuses(&g));
    }
}

static void
test_reject_mode(void **state)
{
    (void)state;
    /* Reject mode without a limit: nothing to be full of. */
    tw_group_t g = s_rule(-1, -1, TW_FULL_REJECT, 50, 50, 100);
    assert_false(tw_group_refuses(&g));

    /* Limit 0 in reject mode refuses every task (S96 + S99). */
    g = s_rule(0, -1, TW_FULL_REJECT, 0, 0, 0);
    assert_true(tw_group_refuses(&g));

    /* Limit 2: the check counts what was admitted and has not finished,
     * pending as well as running (S99: admission is the spawn, so a task
     * accepted but not dispatched yet already holds its place). */
    g = s_rule(2, -1, TW_FULL_REJECT, 0, 0, 0);
    assert_false(tw_group_refuses(&g)); /* 0 + 0 */
    g.pending = 1;
    assert_false(tw_group_refuses(&g)); /* 0 + 1 */
    g.pending = 2;
    assert_true(tw_group_refuses(&g)); /* 0 + 2: none runs yet */
    g.pending = 1;
    g.running = 1;
    assert_true(tw_group_refuses(&g)); /* 1 + 1 */
    g.pending = 0;
    g.running = 2;
    assert_true(tw_group_refuses(&g)); /* 2 + 0 */
    g.running = 1;
    assert_false(tw_group_refuses(&g)); /* one ended: room again */

    /* While it refuses, a running task may still have room to start a
     * pending one: reject mode is about admission, has_room about
     * dispatch. */
    g = s_rule(2, -1, TW_FULL_REJECT, 1, 1, 2);
    assert_true(tw_group_refuses(&g));
    assert_true(tw_group_has_room(&g));

    /* Ended and cancelled tasks hold no place. */
    g = s_rule(1, -1, TW_FULL_REJECT, 0, 0, 500);
    g.ended = 400;
    g.cancelled = 100;
    assert_false(tw_group_refuses(&g));

    /* A limit lowered below what is admitted keeps refusing until the
     * count falls below it (S96). */
    g = s_rule(1, -1, TW_FULL_REJECT, 3, 2, 5);
    assert_true(tw_group_refuses(&g));
}

static void
test_calls_cap(void **state)
{
    (void)state;
    /* calls is a lifetime cap on admissions (S87-S89): it refuses in
     * queue mode as well as in reject mode, and nothing frees it. */
    static const tw_full_t modes[] = {TW_FULL_QUEUE, TW_FULL_REJECT};
    for (size_t m = 0; m < 2; m++) {
        tw_group_t g = s_rule(-1, 3, modes[m], 0, 0, 0);
        for (uint64_t a = 0; a < 3; a++) {
            g.admitted = a;
            assert_false(tw_group_refuses(&g));
        }
        g.admitted = 3;
        assert_true(tw_group_refuses(&g));
        /* Everything admitted has ended: still used up. */
        g.ended = 3;
        assert_true(tw_group_refuses(&g));
        g.admitted = 4; /* cap lowered below the admissions so far */
        assert_true(tw_group_refuses(&g));
    }

    /* No cap. */
    tw_group_t g = s_rule(-1, -1, TW_FULL_QUEUE, 0, 0, UINT64_MAX);
    assert_false(tw_group_refuses(&g));

    /* The predicate treats calls 0 as "used up" (the GROUP request
     * refuses to set it: calls must be at least 1). */
    g = s_rule(-1, 0, TW_FULL_QUEUE, 0, 0, 0);
    assert_true(tw_group_refuses(&g));

    /* Cap and limit together: either one refuses. */
    g = s_rule(5, 2, TW_FULL_REJECT, 0, 0, 2);
    assert_true(tw_group_refuses(&g)); /* calls */
    g = s_rule(1, 10, TW_FULL_REJECT, 1, 0, 1);
    assert_true(tw_group_refuses(&g)); /* limit */
    g = s_rule(2, 10, TW_FULL_REJECT, 1, 0, 1);
    assert_false(tw_group_refuses(&g));
}

static void
test_full_names(void **state)
{
    (void)state;
    assert_string_equal(tw_full_name(TW_FULL_QUEUE), "queue");
    assert_string_equal(tw_full_name(TW_FULL_REJECT), "reject");
    assert_string_equal(tw_full_name(7), "queue"); /* anything else */

    assert_int_equal(tw_full_parse("queue", 5), TW_FULL_QUEUE);
    assert_int_equal(tw_full_parse("reject", 6), TW_FULL_REJECT);
    /* Exact and case-sensitive; the length is the caller's. */
    assert_int_equal(tw_full_parse("Queue", 5), -1);
    assert_int_equal(tw_full_parse("REJECT", 6), -1);
    assert_int_equal(tw_full_parse("queue", 4), -1);
    assert_int_equal(tw_full_parse("rejects", 7), -1);
    assert_int_equal(tw_full_parse("reject", 5), -1);
    assert_int_equal(tw_full_parse("", 0), -1);
    assert_int_equal(tw_full_parse("wait", 4), -1);
}

/* ---- queues: order, inq and the ready flag ----------------------------- */

static void
test_queue_init_flags(void **state)
{
    (void)state;
    tw_queue_t q;
    memset(&q, 0xff, sizeof q);
    tw_queue_init(&q);
    assert_ptr_equal(q.before, tw_queue_before);
    assert_int_equal(q.ready, 0);
    assert_int_equal(q.len, 0);
    assert_null(q.heap);

    memset(&q, 0xff, sizeof q);
    tw_queue_init_by(&q, tw_queue_due_before);
    assert_ptr_equal(q.before, tw_queue_due_before);
    assert_int_equal(q.ready, 0);
    assert_int_equal(q.len, 0);

    /* free keeps the order and the flag: a ready queue stays one. */
    q.ready = 1;
    tw_task_t t;
    s_task(&t, 1, 0, 0);
    tw_queue_push(&q, &t);
    tw_queue_free(&q);
    assert_int_equal(q.len, 0);
    assert_null(q.heap);
    assert_int_equal(q.ready, 1);
    assert_ptr_equal(q.before, tw_queue_due_before);
}

static void
test_due_before(void **state)
{
    (void)state;
    tw_task_t a, b;
    /* Earlier due first, whatever the priorities and ids. */
    s_task(&a, 9, -100, 10);
    s_task(&b, 1, 100, 20);
    assert_true(tw_queue_due_before(&a, &b));
    assert_false(tw_queue_due_before(&b, &a));
    /* Equal due: older id first; priority is ignored. */
    s_task(&a, 1, -5, 10);
    s_task(&b, 2, 5, 10);
    assert_true(tw_queue_due_before(&a, &b));
    assert_false(tw_queue_due_before(&b, &a));
    /* Irreflexive. */
    assert_false(tw_queue_due_before(&a, &a));
    /* Extremes. */
    s_task(&a, 5, 0, 0);
    s_task(&b, 4, 0, UINT64_MAX);
    assert_true(tw_queue_due_before(&a, &b));

    /* The ready order, by contrast, is priority then id, and ignores
     * due_ms. */
    s_task(&a, 2, 1, 1000);
    s_task(&b, 1, 0, 0);
    assert_true(tw_queue_before(&a, &b));
    assert_false(tw_queue_due_before(&a, &b));
}

static void
test_due_order_queue(void **state)
{
    (void)state;
    /* The delayed heap: pops by due time, ties by id, priority ignored. */
    static const uint64_t due[] = {500, 100, 300, 100, 0, 300, 900, 100};
    static const int32_t pri[] = {9, -3, 0, 7, -9, 5, 100, 0};
    enum { N = sizeof due / sizeof due[0] };
    static const uint64_t want[N] = {5, 2, 4, 8, 3, 6, 1, 7};
    tw_task_t t[N];
    tw_queue_t q;
    tw_queue_init_by(&q, tw_queue_due_before);
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], i + 1, pri[i], due[i]);
        tw_queue_push(&q, &t[i]);
        s_check_heap(&q);
    }
    for (size_t i = 0; i < N; i++) {
        tw_task_t *x = tw_queue_peek(&q);
        assert_ptr_equal(tw_queue_pop(&q), x);
        assert_int_equal(x->id, want[i]);
        assert_null(x->inq);
        s_check_heap(&q);
    }
    assert_null(tw_queue_pop(&q));

    /* Removing the earliest from the middle of a larger heap (a delayed
     * task cancelled before it is due) keeps the order of the rest. */
    enum { M = 100 };
    static tw_task_t u[M];
    for (size_t i = 0; i < M; i++) {
        /* due times in a scrambled order: 37 is prime to 100. */
        s_task(&u[i], i + 1, 0, (uint64_t)((i * 37) % M) * 10);
        tw_queue_push(&q, &u[i]);
    }
    s_check_heap(&q);
    for (size_t i = 0; i < M; i += 3) {
        tw_queue_remove(&q, &u[i]);
        assert_null(u[i].inq);
        s_check_heap(&q);
    }
    uint64_t last = 0;
    size_t n = 0;
    tw_task_t *x;
    while ((x = tw_queue_pop(&q))) {
        assert_true(x->due_ms >= last);
        assert_int_not_equal((x - u) % 3, 0);
        last = x->due_ms;
        n++;
    }
    assert_int_equal(n, M - (M + 2) / 3);
    tw_queue_free(&q);
}

static void
test_inq_tracking(void **state)
{
    (void)state;
    tw_queue_t q;
    tw_queue_init(&q);
    tw_task_t t[5];
    for (size_t i = 0; i < 5; i++) {
        s_task(&t[i], i + 1, 0, 0);
        assert_null(t[i].inq);
        tw_queue_push(&q, &t[i]);
        assert_ptr_equal(t[i].inq, &q);
    }
    /* remove clears inq, whether the task is the last slot, the head or
     * in the middle. */
    tw_queue_remove(&q, q.heap[q.len - 1]);
    tw_queue_remove(&q, &t[0]);
    assert_null(t[0].inq);
    tw_queue_remove(&q, &t[2]);
    assert_null(t[2].inq);
    s_check_heap(&q);
    assert_int_equal(q.len, 2);
    /* pop clears it too; the others still point at the queue. */
    tw_task_t *x = tw_queue_pop(&q);
    assert_null(x->inq);
    assert_ptr_equal(q.heap[0]->inq, &q);
    x = tw_queue_pop(&q);
    assert_null(x->inq);
    for (size_t i = 0; i < 5; i++) {
        assert_null(t[i].inq);
    }
    tw_queue_free(&q);
}

static void
test_move_between_heaps(void **state)
{
    (void)state;
    /* What dispatch and unparking do: a task popped from its ready queue
     * is pushed onto a group's parked heap, later popped from there and
     * pushed back; a cancel then removes it from wherever t->inq says. */
    tw_queue_t ready, parked, delayed;
    tw_queue_init(&ready);
    ready.ready = 1;
    tw_queue_init(&parked);
    tw_queue_init_by(&delayed, tw_queue_due_before);
    tw_task_t t[6];
    for (size_t i = 0; i < 6; i++) {
        s_task(&t[i], i + 1, (int32_t)(i % 3), 1000 - 10 * i);
        tw_queue_push(&ready, &t[i]);
    }
    /* Park the three most urgent; the parked heap keeps the ready order
     * (priority, then id). */
    for (size_t k = 0; k < 3; k++) {
        tw_task_t *x = tw_queue_pop(&ready);
        assert_null(x->inq);
        tw_queue_push(&parked, x);
        assert_ptr_equal(x->inq, &parked);
    }
    s_check_heap(&ready);
    s_check_heap(&parked);
    assert_int_equal(ready.len, 3);
    assert_int_equal(parked.len, 3);
    /* Priorities 0,1,2,0,1,2 for ids 1..6: parked got 3, 6, 2. */
    assert_ptr_equal(t[2].inq, &parked);
    assert_ptr_equal(t[5].inq, &parked);
    assert_ptr_equal(t[1].inq, &parked);
    assert_ptr_equal(tw_queue_peek(&parked), &t[2]);

    /* A cancel finds its heap through inq, and only the ready one is
     * flagged as the dispatcher's input. */
    tw_queue_t *where = t[5].inq;
    assert_false(where->ready);
    tw_queue_remove(where, &t[5]);
    where = t[3].inq;
    assert_true(where->ready);
    tw_queue_remove(where, &t[3]);
    s_check_heap(&ready);
    s_check_heap(&parked);

    /* Unpark the most urgent back to the ready queue. */
    tw_task_t *x = tw_queue_pop(&parked);
    assert_ptr_equal(x, &t[2]);
    tw_queue_push(&ready, x);
    assert_ptr_equal(x->inq, &ready);
    assert_ptr_equal(tw_queue_peek(&ready), &t[2]);

    /* A delayed task ordered by due_ms, then moved to ready when due. */
    tw_queue_remove(&ready, &t[4]);
    tw_queue_push(&delayed, &t[4]);
    tw_queue_remove(&ready, &t[0]);
    tw_queue_push(&delayed, &t[0]);
    assert_ptr_equal(tw_queue_peek(&delayed), &t[4]); /* due 960 < 1000 */
    x = tw_queue_pop(&delayed);
    tw_queue_push(&ready, x);
    assert_ptr_equal(x->inq, &ready);
    s_check_heap(&ready);
    s_check_heap(&delayed);
    assert_ptr_equal(t[0].inq, &delayed);

    tw_queue_free(&ready);
    tw_queue_free(&parked);
    tw_queue_free(&delayed);
}

static void
test_due_random_vs_reference(void **state)
{
    (void)state;
    /* Pushes, pops and removals on a delayed heap against a flat
     * reference: the head is always the earliest due, oldest first. */
    enum { N = 400, OPS = 20000 };
    static tw_task_t t[N];
    static int in[N];
    size_t nin = 0;
    memset(in, 0, sizeof in);
    tw_test_rng = 0x5eed5eed5eed5eedULL;
    tw_queue_t q;
    tw_queue_init_by(&q, tw_queue_due_before);
    for (size_t i = 0; i < N; i++) {
        s_task(&t[i], i + 1, (int32_t)(tw_test_rand() % 7) - 3, tw_test_rand() % 50);
    }
    for (size_t op = 0; op < OPS; op++) {
        unsigned r = (unsigned)(tw_test_rand() % 100);
        if (r < 50 && nin < N) {
            size_t i = tw_test_rand() % N;
            while (in[i]) {
                i = (i + 1) % N;
            }
            t[i].due_ms = tw_test_rand() % 50; /* ties are common */
            tw_queue_push(&q, &t[i]);
            in[i] = 1;
            nin++;
        } else if (r < 75) {
            tw_task_t *best = NULL;
            for (size_t i = 0; i < N; i++) {
                if (in[i] && (!best || tw_queue_due_before(&t[i], best))) {
                    best = &t[i];
                }
            }
            tw_task_t *x = tw_queue_pop(&q);
            assert_ptr_equal(x, best);
            if (x) {
                assert_null(x->inq);
                in[x - t] = 0;
                nin--;
            }
        } else if (nin) {
            size_t k = tw_test_rand() % nin;
            for (size_t i = 0; i < N; i++) {
                if (in[i] && k-- == 0) {
                    tw_queue_remove(&q, &t[i]);
                    assert_null(t[i].inq);
                    in[i] = 0;
                    nin--;
                    break;
                }
            }
        }
        assert_int_equal(q.len, nin);
        s_check_heap(&q);
    }
    tw_queue_free(&q);
}

/* ---- default_limit (S101) and pool clients (S63-S64) ------------------ */

/* S101: the pool's default limit is the limit of every group without one
 * of its own, those created before and after it was set; never the
 * pool's own size. Clearing it (-1, S96's None) leaves them unlimited. */
static void
test_default_limit(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *p = s_pool(&ps, "default", 1);
    assert_int_equal(p->default_limit, -1);
    tw_group_t *before = s_group(&ps, p, "before", 1);
    tw_group_t *own = s_group(&ps, p, "own", 1);
    tw_group_set_limit(p, own, 5);
    assert_true(own->own_limit);

    tw_pools_set_default_limit(p, 2);
    assert_int_equal(p->default_limit, 2);
    assert_int_equal(before->limit, 2);
    assert_int_equal(own->limit, 5);
    tw_group_t *after = s_group(&ps, p, "after", 1);
    assert_int_equal(after->limit, 2);
    assert_false(after->own_limit);
    assert_int_equal(p->size, 0); /* the pool itself stays unlimited */
    assert_true(tw_pool_has_room(p));

    /* The default bounds running tasks like a limit of the group's own. */
    after->running = 2;
    assert_false(tw_group_has_room(after));
    after->running = 0;

    /* 0 is allowed: nothing new starts in those groups (S96). */
    tw_pools_set_default_limit(p, 0);
    assert_int_equal(before->limit, 0);
    assert_false(tw_group_has_room(before));

    /* A group's own limit wins; clearing it falls back to the default. */
    tw_group_set_limit(p, before, 7);
    tw_pools_set_default_limit(p, 3);
    assert_int_equal(before->limit, 7);
    tw_group_set_limit(p, before, -1);
    assert_false(before->own_limit);
    assert_int_equal(before->limit, 3);

    /* Cleared: groups without their own limit have none again. */
    tw_pools_set_default_limit(p, -5);
    assert_int_equal(p->default_limit, -1);
    assert_int_equal(before->limit, -1);
    assert_int_equal(after->limit, -1);
    assert_int_equal(own->limit, 5);
    /* Another pool is not touched. */
    tw_pool_t *q = s_pool(&ps, "other", 1);
    tw_pools_set_default_limit(p, 1);
    assert_int_equal(s_group(&ps, q, "g", 1)->limit, -1);
    tw_pools_destroy(&ps);
}

/* The clients told about pool.closed: each once, at most the cap. */
static void
test_pool_clients(void **state)
{
    (void)state;
    tw_pools_t ps;
    tw_pools_init(&ps);
    tw_pool_t *p = s_pool(&ps, "default", 1);
    tw_pool_add_client(p, 7);
    tw_pool_add_client(p, 7);
    tw_pool_add_client(p, 3);
    tw_pool_add_client(p, 7);
    assert_int_equal(p->nclients, 2);
    assert_int_equal(p->clients[0], 7);
    assert_int_equal(p->clients[1], 3);
    for (uint64_t id = 100; id < 100 + 2 * TW_POOL_MAX_CLIENTS; id++) {
        tw_pool_add_client(p, id);
    }
    assert_int_equal(p->nclients, TW_POOL_MAX_CLIENTS);
    tw_pools_destroy(&ps);
}

/* ---- destroy with everything in use ----------------------------------- */

static void
test_destroy_full_tables(void **state)
{
    (void)state;
    /* Pools with groups, ids, parked buffers and dedup entries: destroy
     * frees what the tables own and nothing they borrow (the tasks, and
     * the dedup keys, which belong to the tasks). The sanitizer build
     * reports a leak or a double free here. */
    tw_pools_t ps;
    tw_pools_init(&ps);
    static char keys[4][8] = {"k0", "k1", "k2", "k3"};
    tw_task_t t[4];
    for (int i = 0; i < 4; i++) {
        char name[8];
        int n = snprintf(name, sizeof name, "p%d", i);
        tw_pool_t *p = tw_pools_get(&ps, name, (size_t)n, 1);
        for (int j = 0; j < 5; j++) {
            n = snprintf(name, sizeof name, "g%d", j);
            tw_group_t *g = tw_pools_group(&ps, p, name, (size_t)n, 1);
            for (uint64_t id = 1; id <= 20; id++) {
                tw_group_add_id(g, id);
            }
        }
        s_task(&t[i], (uint64_t)i + 1, 0, 0);
        tw_queue_push(&p->parked, &t[i]);
        tw_queue_remove(&p->parked, &t[i]);
        tw_strmap_put(&p->dedup, keys[i], 2, (void *)(uintptr_t)(i + 1));
    }
    tw_pools_destroy(&ps);
    assert_int_equal(ps.len, 0);
    assert_null(ps.all);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_empty),
        cmocka_unit_test(test_pool_create_and_lookup),
        cmocka_unit_test(test_pool_ids_survive_growth),
        cmocka_unit_test(test_group_create_and_lookup),
        cmocka_unit_test(test_forget_group),
        cmocka_unit_test(test_forget_many_groups),
        cmocka_unit_test(test_add_id_growth),
        cmocka_unit_test(test_group_has_room),
        cmocka_unit_test(test_pool_has_room),
        cmocka_unit_test(test_queue_mode_never_refuses_for_room),
        cmocka_unit_test(test_reject_mode),
        cmocka_unit_test(test_calls_cap),
        cmocka_unit_test(test_full_names),
        cmocka_unit_test(test_queue_init_flags),
        cmocka_unit_test(test_due_before),
        cmocka_unit_test(test_due_order_queue),
        cmocka_unit_test(test_inq_tracking),
        cmocka_unit_test(test_move_between_heaps),
        cmocka_unit_test(test_due_random_vs_reference),
        cmocka_unit_test(test_default_limit),
        cmocka_unit_test(test_pool_clients),
        cmocka_unit_test(test_destroy_full_tables),
    };
    return cmocka_run_group_tests_name("broker_pools", tests, NULL, NULL);
}
