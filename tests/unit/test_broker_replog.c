/*  tests/unit/test_broker_replog.c - the replication log of a broker pair.
 *
 *  broker/state/replog.h is bookkeeping without I/O or clock, so these cases
 *  drive it with numbers: sequence numbers and eras on the active and on
 *  the passive, the backlog and its budget, what an active plans for a
 *  peer at each kind of position (fresh, behind within the backlog,
 *  behind beyond it, diverged after a takeover, of an unknown lineage),
 *  the follower's window, acknowledgements and sync waits, lag, and a
 *  failed allocation. Two logs played against each other act out the old
 *  active coming back after an async takeover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/state/replog.h"
#include "common/alloc.h"
#include "common/error.h"
#include "tests/unit/support/count_alloc.h"

#include <stdlib.h>
#include <string.h>

static tw_replog_t *
s_log(tw_repl_mode_t mode, size_t backlog, size_t window)
{
    tw_replog_config_t cfg = {.mode = mode, .backlog_bytes = backlog,
                              .window_bytes = window};
    tw_replog_t *r = tw_replog_new(&cfg);
    assert_non_null(r);
    return r;
}

/* Append batch number k: its bytes are k repeated `len` times. */
static uint64_t
s_append(tw_replog_t *r, unsigned char k, size_t len, uint64_t now)
{
    unsigned char buf[512];
    assert_true(len <= sizeof buf);
    memset(buf, k, len);
    return tw_replog_append(r, buf, len, now);
}

static void
s_check_batch(const tw_replog_batch_t *b, uint64_t seq, uint64_t epoch,
              size_t len)
{
    assert_int_equal(b->seq, seq);
    assert_int_equal(b->epoch, epoch);
    assert_int_equal(b->len, len);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(b->data[i], (unsigned char)seq);
    }
}

/* The plan for a peer at (epoch, seq): a stream from `from`... */
static void
s_plan_stream(const tw_replog_t *r, uint64_t epoch, uint64_t seq,
              uint64_t from)
{
    tw_replog_plan_t p;
    tw_replog_plan(r, (tw_bstar_pos_t){epoch, seq}, &p);
    assert_int_equal(p.snapshot, 0);
    assert_int_equal(p.from_seq, from);
}

/* ...or a snapshot, with what it says about the peer's store. */
static void
s_plan_snapshot(const tw_replog_t *r, uint64_t epoch, uint64_t seq,
                uint64_t diverged, int unknown)
{
    tw_replog_plan_t p;
    tw_replog_plan(r, (tw_bstar_pos_t){epoch, seq}, &p);
    assert_int_equal(p.snapshot, 1);
    assert_int_equal(p.diverged, diverged);
    assert_int_equal(p.unknown_lineage, unknown);
}

static void
test_mode_names(void **state)
{
    (void)state;
    assert_int_equal(tw_repl_mode_parse("sync"), TW_REPL_SYNC);
    assert_int_equal(tw_repl_mode_parse("async"), TW_REPL_ASYNC);
    assert_int_equal(tw_repl_mode_parse("SYNC"), -1);
    assert_int_equal(tw_repl_mode_parse(""), -1);
    assert_int_equal(tw_repl_mode_parse(NULL), -1);
    assert_string_equal(tw_repl_mode_name(TW_REPL_SYNC), "sync");
    assert_string_equal(tw_repl_mode_name(TW_REPL_ASYNC), "async");
}

static void
test_seqs_and_eras(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_SYNC, 1 << 20, 1 << 20);
    const tw_replog_era_t *eras;
    assert_int_equal(tw_replog_eras(r, &eras), 0);
    assert_int_equal(tw_replog_begin_epoch(r, 1), 0);
    for (unsigned char k = 1; k <= 3; k++) {
        assert_int_equal(s_append(r, k, 10, 100), k);
    }
    tw_bstar_pos_t pos = tw_replog_pos(r);
    assert_int_equal(pos.epoch, 1);
    assert_int_equal(pos.seq, 3);
    /* Epochs only go up. */
    assert_int_equal(tw_replog_begin_epoch(r, 1), TW_EINVAL);
    assert_int_equal(tw_replog_begin_epoch(r, 0), TW_EINVAL);
    assert_int_equal(tw_replog_begin_epoch(r, 4), 0);
    assert_int_equal(s_append(r, 4, 10, 100), 4);
    assert_int_equal(tw_replog_eras(r, &eras), 2);
    assert_int_equal(eras[0].epoch, 1);
    assert_int_equal(eras[0].first_seq, 1);
    assert_int_equal(eras[1].epoch, 4);
    assert_int_equal(eras[1].first_seq, 4);
    tw_replog_batch_t b;
    assert_int_equal(tw_replog_get(r, 4, &b), 1);
    s_check_batch(&b, 4, 4, 10);
    assert_int_equal(tw_replog_get(r, 5, &b), 0);
    assert_int_equal(tw_replog_get(r, 0, &b), 0);
    tw_replog_destroy(&r);
    assert_null(r);
    tw_replog_destroy(&r);

    /* A log reopened on a store continues its seqs and its lineage. */
    tw_replog_era_t lineage[] = {{1, 1}, {2, 50}};
    tw_replog_config_t cfg = {.backlog_bytes = 4096, .window_bytes = 4096,
                              .pos = {2, 80}, .eras = lineage,
                              .neras = 2};
    r = tw_replog_new(&cfg);
    assert_int_equal(s_append(r, 81, 1, 0), 81);
    assert_int_equal(tw_replog_pos(r).epoch, 2);
    assert_int_equal(tw_replog_eras(r, &eras), 2);
    /* With nothing to follow it, nothing waits and nothing is sent. */
    assert_int_equal(tw_replog_follower(r), TW_REPLOG_DETACHED);
    assert_int_equal(tw_replog_wait(r, 81), 0);
    assert_int_equal(tw_replog_next(r, &b), 0);
    tw_replog_destroy(&r);
}

static void
test_backlog_budget(void **state)
{
    (void)state;
    /* Room for a few batches of 200 bytes (plus their overhead). */
    tw_replog_t *r = s_log(TW_REPL_ASYNC, 1000, 1 << 20);
    tw_replog_begin_epoch(r, 1);
    for (unsigned char k = 1; k <= 10; k++) {
        s_append(r, k, 200, k);
    }
    uint64_t first = tw_replog_backlog_first(r);
    assert_true(first > 1);
    assert_true(first <= 10);
    /* Consecutive, intact, and within the budget. */
    size_t bytes = 0;
    for (uint64_t s = first; s <= 10; s++) {
        tw_replog_batch_t b;
        assert_int_equal(tw_replog_get(r, s, &b), 1);
        s_check_batch(&b, s, 1, 200);
        bytes += b.len;
    }
    assert_true(bytes <= 1000);
    tw_replog_batch_t b;
    assert_int_equal(tw_replog_get(r, first - 1, &b), 0);
    /* A batch larger than the budget empties it. */
    unsigned char big[2000];
    memset(big, 11, sizeof big);
    assert_int_equal(tw_replog_append(r, big, sizeof big, 11), 11);
    assert_int_equal(tw_replog_backlog_first(r), 0);
    /* Empty batches still cost something: the ring stays bounded. */
    for (int k = 0; k < 10000; k++) {
        tw_replog_append(r, NULL, 0, 12);
    }
    first = tw_replog_backlog_first(r);
    assert_true(tw_replog_pos(r).seq - first < 100);
    tw_replog_destroy(&r);
}

static void
test_plan(void **state)
{
    (void)state;
    /* An active at (1, 0): even a fresh peer follows from the start. */
    tw_replog_t *r = s_log(TW_REPL_SYNC, 1000, 1 << 20);
    s_plan_stream(r, 0, 0, 1);
    tw_replog_begin_epoch(r, 1);
    for (unsigned char k = 1; k <= 3; k++) {
        s_append(r, k, 100, 0);
    }
    /* Fresh peer, whole history in the backlog: the stream from 1. */
    s_plan_stream(r, 0, 0, 1);
    /* Behind within the backlog. */
    s_plan_stream(r, 1, 2, 3);
    /* Caught up: nothing to send. */
    s_plan_stream(r, 1, 3, 4);
    /* The backlog moves past the start. */
    for (unsigned char k = 4; k <= 20; k++) {
        s_append(r, k, 100, 0);
    }
    uint64_t first = tw_replog_backlog_first(r);
    assert_true(first > 2);
    s_plan_snapshot(r, 0, 0, 0, 0);
    s_plan_snapshot(r, 1, first - 2, 0, 0);
    s_plan_stream(r, 1, first - 1, first);
    /* An epoch we never had, or a seq before its era began. */
    s_plan_snapshot(r, 7, 5, 0, 1);
    tw_replog_begin_epoch(r, 3);
    s_append(r, 21, 100, 0);
    s_plan_snapshot(r, 3, 20, 0, 1);
    /* Ahead of where its epoch ended in our lineage: diverged. */
    s_plan_snapshot(r, 1, 24, 4, 0);
    /* Exactly at the end of its era: follows into ours. */
    s_plan_stream(r, 1, 20, 21);
    tw_replog_destroy(&r);
}

/* The old active comes back after an async takeover. */
static void
test_old_active_returns(void **state)
{
    (void)state;
    tw_replog_t *a = s_log(TW_REPL_ASYNC, 1 << 20, 1 << 20);
    tw_replog_t *b = s_log(TW_REPL_ASYNC, 1 << 20, 1 << 20);
    tw_replog_begin_epoch(a, 1);
    for (unsigned char k = 1; k <= 10; k++) {
        s_append(a, k, 50, k);
    }
    /* b got 1..7 before a died. */
    tw_replog_follow(a, 1, 0);
    tw_replog_batch_t batch;
    for (int k = 1; k <= 7; k++) {
        assert_int_equal(tw_replog_next(a, &batch), 1);
        assert_int_equal(tw_replog_apply(b, batch.epoch, batch.seq,
                                         batch.data, batch.len, 20),
                         0);
    }
    assert_int_equal(tw_replog_pos(b).seq, 7);
    /* b takes over under epoch 2 and writes 8..12. */
    assert_int_equal(tw_replog_begin_epoch(b, 2), 0);
    for (unsigned char k = 8; k <= 12; k++) {
        s_append(b, k, 50, 30);
    }
    /* a returns at (1, 10): 8, 9 and 10 of its were never b's. */
    tw_replog_plan_t p;
    tw_replog_plan(b, tw_replog_pos(a), &p);
    assert_int_equal(p.snapshot, 1);
    assert_int_equal(p.diverged, 3);
    /* Had it written nothing more than b had (sync), it would follow
     * from where it stopped, out of b's backlog: the batches b applied
     * as a passive are there too. */
    s_plan_stream(b, 1, 7, 8);
    s_plan_stream(b, 1, 5, 6);
    tw_replog_follow(b, 6, 0);
    assert_int_equal(tw_replog_next(b, &batch), 1);
    s_check_batch(&batch, 6, 1, 50);
    assert_int_equal(tw_replog_next(b, &batch), 1);
    assert_int_equal(tw_replog_next(b, &batch), 1);
    s_check_batch(&batch, 8, 2, 50);
    /* a takes a snapshot of b at (2, 12) with b's lineage. */
    const tw_replog_era_t *eras;
    size_t n = tw_replog_eras(b, &eras);
    tw_replog_reset(a, tw_replog_pos(b), eras, n);
    assert_int_equal(tw_replog_pos(a).epoch, 2);
    assert_int_equal(tw_replog_pos(a).seq, 12);
    assert_int_equal(tw_replog_backlog_first(a), 0);
    assert_int_equal(tw_replog_follower(a), TW_REPLOG_DETACHED);
    /* It now follows b's stream. */
    s_append(b, 13, 50, 40);
    assert_int_equal(tw_replog_get(b, 13, &batch), 1);
    assert_int_equal(tw_replog_apply(a, batch.epoch, batch.seq, batch.data,
                                     batch.len, 40),
                     0);
    tw_replog_plan(b, tw_replog_pos(a), &p);
    assert_int_equal(p.snapshot, 0);
    assert_int_equal(p.from_seq, 14);
    tw_replog_destroy(&a);
    tw_replog_destroy(&b);
}

static void
test_follower_window_and_sync(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_SYNC, 1 << 20, 250);
    tw_replog_begin_epoch(r, 1);
    for (unsigned char k = 1; k <= 6; k++) {
        s_append(r, k, 100, 1000 + k);
    }
    tw_replog_follow(r, 1, 0);
    assert_int_equal(tw_replog_follower(r), TW_REPLOG_FOLLOWING);
    tw_replog_batch_t b;
    /* 250 bytes of window: three batches of 100 leave (the third goes
     * because fewer than 250 were in flight), then it is full. */
    assert_int_equal(tw_replog_next(r, &b), 1);
    s_check_batch(&b, 1, 1, 100);
    assert_int_equal(tw_replog_next(r, &b), 1);
    assert_int_equal(tw_replog_next(r, &b), 1);
    assert_int_equal(tw_replog_next(r, &b), 0);
    assert_int_equal(tw_replog_sent(r), 3);
    /* Sync: every batch not acknowledged waits. */
    assert_int_equal(tw_replog_wait(r, 1), 1);
    assert_int_equal(tw_replog_wait(r, 6), 1);
    assert_int_equal(tw_replog_ack(r, 2), 0);
    assert_int_equal(tw_replog_acked(r), 2);
    assert_int_equal(tw_replog_wait(r, 2), 0);
    assert_int_equal(tw_replog_wait(r, 3), 1);
    /* Old and repeated acknowledgements are harmless; one for a batch
     * never sent is refused. */
    assert_int_equal(tw_replog_ack(r, 1), 0);
    assert_int_equal(tw_replog_ack(r, 2), 0);
    assert_int_equal(tw_replog_ack(r, 5), TW_EINVAL);
    assert_int_equal(tw_replog_acked(r), 2);
    /* The window opened. */
    assert_int_equal(tw_replog_next(r, &b), 1);
    s_check_batch(&b, 4, 1, 100);
    assert_int_equal(tw_replog_next(r, &b), 1);
    assert_int_equal(tw_replog_next(r, &b), 0);
    /* Lag: 4 batches, 400 bytes, the oldest (3) appended at 1003. */
    tw_replog_lag_t lag;
    tw_replog_lag(r, 1500, &lag);
    assert_int_equal(lag.batches, 4);
    assert_int_equal(lag.bytes, 400);
    assert_int_equal(lag.ms, 497);
    assert_int_equal(tw_replog_ack(r, 5), 0);
    assert_int_equal(tw_replog_next(r, &b), 1);
    s_check_batch(&b, 6, 1, 100);
    assert_int_equal(tw_replog_next(r, &b), 0);
    assert_int_equal(tw_replog_ack(r, 6), 0);
    tw_replog_lag(r, 1600, &lag);
    assert_int_equal(lag.batches, 0);
    assert_int_equal(lag.bytes, 0);
    assert_int_equal(lag.ms, 0);
    /* The peer is lost: nothing waits for it, nothing is sent. */
    s_append(r, 7, 100, 1700);
    assert_int_equal(tw_replog_wait(r, 7), 1);
    tw_replog_detach(r);
    assert_int_equal(tw_replog_wait(r, 7), 0);
    assert_int_equal(tw_replog_next(r, &b), 0);
    /* A peer catching up (snapshot under way) gets the stream but is not
     * waited for, until it is attached. */
    tw_replog_follow(r, 7, 1);
    assert_int_equal(tw_replog_follower(r), TW_REPLOG_CATCHUP);
    assert_int_equal(tw_replog_wait(r, 7), 0);
    assert_int_equal(tw_replog_next(r, &b), 1);
    s_check_batch(&b, 7, 1, 100);
    tw_replog_attach(r);
    assert_int_equal(tw_replog_follower(r), TW_REPLOG_FOLLOWING);
    assert_int_equal(tw_replog_wait(r, 7), 1);
    tw_replog_attach(r);
    assert_int_equal(tw_replog_follower(r), TW_REPLOG_FOLLOWING);
    tw_replog_destroy(&r);

    /* Async never waits. */
    r = s_log(TW_REPL_ASYNC, 1 << 20, 1 << 20);
    tw_replog_begin_epoch(r, 1);
    s_append(r, 1, 10, 0);
    tw_replog_follow(r, 1, 0);
    assert_int_equal(tw_replog_wait(r, 1), 0);
    tw_replog_lag(r, 50, &lag);
    assert_int_equal(lag.batches, 1);
    assert_int_equal(lag.ms, 50);
    tw_replog_destroy(&r);
}

static void
test_next_past_the_backlog(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_ASYNC, 600, 1 << 20);
    tw_replog_begin_epoch(r, 1);
    s_append(r, 1, 100, 0);
    tw_replog_follow(r, 1, 0);
    tw_replog_batch_t b;
    assert_int_equal(tw_replog_next(r, &b), 1);
    /* A slow peer: the batches it needs leave the backlog. */
    for (unsigned char k = 2; k <= 20; k++) {
        s_append(r, k, 100, k);
    }
    assert_true(tw_replog_backlog_first(r) > 2);
    assert_int_equal(tw_replog_next(r, &b), TW_ENOENT);
    /* Its lag is still counted in full. */
    tw_replog_lag_t lag;
    tw_replog_lag(r, 100, &lag);
    assert_int_equal(lag.batches, 20);
    assert_int_equal(lag.bytes, 2000);
    assert_true(lag.ms > 0 && lag.ms <= 100);
    tw_replog_destroy(&r);
}

static void
test_passive_apply(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_SYNC, 1 << 20, 1 << 20);
    unsigned char x[4] = {1, 1, 1, 1};
    /* Out of order, a repeat, epoch 0: refused, nothing moves. */
    assert_int_equal(tw_replog_apply(r, 1, 2, x, 4, 0), TW_EPROTO);
    assert_int_equal(tw_replog_apply(r, 0, 1, x, 4, 0), TW_EPROTO);
    assert_int_equal(tw_replog_apply(r, 1, 1, x, 4, 0), 0);
    assert_int_equal(tw_replog_apply(r, 1, 1, x, 4, 0), TW_EPROTO);
    x[0] = x[1] = x[2] = x[3] = 2;
    assert_int_equal(tw_replog_apply(r, 1, 2, x, 4, 0), 0);
    /* A new epoch starts an era; an older one is refused. */
    x[0] = x[1] = x[2] = x[3] = 3;
    assert_int_equal(tw_replog_apply(r, 4, 3, x, 4, 0), 0);
    assert_int_equal(tw_replog_apply(r, 2, 4, x, 4, 0), TW_EPROTO);
    const tw_replog_era_t *eras;
    assert_int_equal(tw_replog_eras(r, &eras), 2);
    assert_int_equal(eras[1].epoch, 4);
    assert_int_equal(eras[1].first_seq, 3);
    assert_int_equal(tw_replog_pos(r).epoch, 4);
    assert_int_equal(tw_replog_pos(r).seq, 3);
    tw_replog_batch_t b;
    assert_int_equal(tw_replog_get(r, 3, &b), 1);
    s_check_batch(&b, 3, 4, 4);
    /* A passive owes nobody: no lag. */
    tw_replog_lag_t lag;
    tw_replog_lag(r, 99, &lag);
    assert_int_equal(lag.batches, 0);
    /* It takes over: its own batches follow under its epoch. */
    assert_int_equal(tw_replog_begin_epoch(r, 3), TW_EINVAL);
    assert_int_equal(tw_replog_begin_epoch(r, 6), 0);
    assert_int_equal(s_append(r, 4, 4, 0), 4);
    assert_int_equal(tw_replog_eras(r, &eras), 3);
    tw_replog_destroy(&r);
}

static void
test_lineage_bounded(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_ASYNC, 1 << 20, 1 << 20);
    for (uint64_t e = 1; e <= 40; e++) {
        assert_int_equal(tw_replog_begin_epoch(r, e), 0);
        s_append(r, (unsigned char)e, 1, 0);
    }
    const tw_replog_era_t *eras;
    assert_int_equal(tw_replog_eras(r, &eras), TW_REPLOG_ERAS);
    assert_int_equal(eras[0].epoch, 40 - TW_REPLOG_ERAS + 1);
    assert_int_equal(eras[TW_REPLOG_ERAS - 1].epoch, 40);
    /* A peer of a forgotten era: its lineage cannot be told. */
    s_plan_snapshot(r, 2, 2, 0, 1);
    /* A lineage handed over longer than the bound keeps its newest. */
    tw_replog_era_t many[40];
    for (int i = 0; i < 40; i++) {
        many[i].epoch = (uint64_t)i + 1;
        many[i].first_seq = (uint64_t)i + 1;
    }
    tw_replog_reset(r, (tw_bstar_pos_t){40, 40}, many, 40);
    assert_int_equal(tw_replog_eras(r, &eras), TW_REPLOG_ERAS);
    assert_int_equal(eras[TW_REPLOG_ERAS - 1].epoch, 40);
    tw_replog_destroy(&r);
}

/* ---- allocation failure ------------------------------------------------- */

static int s_fail;

static void *
s_malloc(size_t n)
{
    return s_fail ? NULL : malloc(n);
}

static void *
s_realloc(void *p, size_t n)
{
    return s_fail ? NULL : realloc(p, n);
}

static void
test_no_memory_for_a_copy(void **state)
{
    (void)state;
    tw_replog_t *r = s_log(TW_REPL_ASYNC, 1 << 20, 1 << 20);
    tw_replog_begin_epoch(r, 1);
    s_append(r, 1, 10, 0);
    tw_replog_follow(r, 1, 0);
    assert_int_equal(tw_replace_allocator(s_malloc, s_realloc, free), 0);
    s_fail = 1;
    /* The batch still counts (its seq, the position); only its copy is
     * missing, and a follower that needs it is told to take a snapshot. */
    assert_int_equal(s_append(r, 2, 10, 0), 2);
    s_fail = 0;
    assert_int_equal(tw_replace_allocator(NULL, NULL, NULL), 0);
    assert_int_equal(tw_replog_pos(r).seq, 2);
    assert_int_equal(tw_replog_backlog_first(r), 0);
    tw_replog_batch_t b;
    assert_int_equal(tw_replog_next(r, &b), TW_ENOENT);
    /* Later batches are kept again. */
    s_append(r, 3, 10, 0);
    assert_int_equal(tw_replog_backlog_first(r), 3);
    tw_replog_destroy(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode_names, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_seqs_and_eras, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_backlog_budget, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_plan, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_old_active_returns,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_follower_window_and_sync,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_next_past_the_backlog,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_passive_apply, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_lineage_bounded,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test(test_no_memory_for_a_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
