/*  tests/unit/test_client_pair.c - libtaskwheel given the two brokers of
 *  a pair (proto/PROTOCOL.md 17.8), against two fake frontends
 *  (tests/unit/support/fake_front.h) that play the active and the
 *  passive.
 *
 *  - A passive tried first refuses with ENOTACTIVE naming the active: the
 *    client goes there, pings with the epoch it learnt, resends what was
 *    not acknowledged, and is acknowledged once.
 *  - The active dies (its connection closes): the client moves to the
 *    other broker at once and votes (`lost` with the lost broker's epoch)
 *    on its first message, waits there while it says the active is
 *    silent but not yet given up, and is served once it took over under
 *    a later epoch; the vote is then spent.
 *  - A deposed active answers under an epoch below one already seen: its
 *    acknowledgement is not acted on, the client moves on, and the item
 *    is acknowledged once, by the new active.
 *  - A list that cannot be one is refused.
 *
 *  Backoff 50..200 ms; heartbeats of 1 s, so that only what a test does
 *  moves the client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/fake_front.h"
#include "tests/unit/support/pair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 3000

typedef struct {
    tw_ff_t *a, *b; /* a: the primary; b: the backup */
    tw_client_t *c;
    int acks;
    uint64_t acked[16]; /* acks per seq */
} s_fx_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_fx_t *fx = arg;
    fx->acks++;
    if (ack->seq < 16) {
        fx->acked[ack->seq]++;
    }
}

/* A client given `first` then `second` (the fakes' endpoints). */
static s_fx_t *
s_fx(int backup_first)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    fx->a = tw_ff_new();
    fx->b = tw_ff_new();
    char list[160];
    snprintf(list, sizeof list, "%s,%s",
             backup_first ? fx->b->ep : fx->a->ep,
             backup_first ? fx->a->ep : fx->b->ep);
    fx->c = tw_client_new(list);
    assert_non_null(fx->c);
    /* Heartbeats slow enough that a busy machine (valgrind) never makes
     * the client give a fake up on its own: every move below is one the
     * test causes (a refusal, a closed connection, an old epoch). */
    tw_client_opts_t o = {.heartbeat_ms = 1000,
                          .liveness = 3,
                          .reconnect_min_ms = 50,
                          .reconnect_max_ms = 200};
    assert_int_equal(tw_client_set_opts(fx->c, &o), 0);
    tw_client_on_ack(fx->c, s_on_ack, fx);
    return fx;
}

static void
s_fx_free(s_fx_t *fx)
{
    tw_client_destroy(&fx->c);
    tw_ff_destroy(&fx->a);
    tw_ff_destroy(&fx->b);
    free(fx);
}

static uint64_t
s_submit(s_fx_t *fx)
{
    tw_task_spec_t spec = {.handler = "noop"};
    uint64_t seq = 0;
    assert_int_equal(tw_client_submit(fx->c, &spec, &seq), 0);
    return seq;
}

/* Wait at `ff` for a message of `cmd` (others are skipped). */
static void
s_expect(s_fx_t *fx, tw_ff_t *ff, tw_cmd_t cmd)
{
    uint64_t end = tw_now_ms() + WAIT_MS;
    while (tw_now_ms() < end) {
        if (tw_ff_recv(ff, fx->c, 100) == 0 && ff->m.cmd == cmd) {
            return;
        }
    }
    fail_msg("no %s within %d ms", tw_proto_cmd_name(cmd), WAIT_MS);
}

/* The last message's `ha` and `lost` (-1 when absent). */
static int64_t
s_key(const tw_ff_t *ff, tw_field_t f)
{
    return ff->m.f[f] ? (int64_t)tw_msg_uint(&ff->m, f, 0) : -1;
}

/* ACK every item of the last SUBMIT at `ff`, under epoch `ha`. */
static size_t
s_ack_all(tw_ff_t *ff, uint64_t ha)
{
    assert_int_equal(ff->m.cmd, TW_CMD_SUBMIT);
    size_t n = ff->m.nitems;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, ha);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, n);
    for (size_t i = 0; i < n; i++) {
        tw_enc_map(&e, 2);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, tw_item_uint(&ff->m.items[i], TW_I_SEQ, 0));
        tw_enc_ikey(&e, TW_I_ID);
        tw_enc_uint(&e, 100 + i);
    }
    tw_ff_send(ff, TW_CMD_ACK, &e);
    tw_enc_free(&e);
    return n;
}

static void
s_not_active(tw_ff_t *ff, uint64_t ha, const char *active, int live)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_pair_enc_not_active(&e, ha, active, live);
    tw_ff_send(ff, TW_CMD_ERROR, &e);
    tw_enc_free(&e);
}

static void
s_heartbeat(tw_ff_t *ff, uint64_t ha)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, ha);
    tw_ff_send(ff, TW_CMD_HEARTBEAT, &e);
    tw_enc_free(&e);
}

static void
s_wait_acks(s_fx_t *fx, int n)
{
    uint64_t end = tw_now_ms() + WAIT_MS;
    while (fx->acks < n && tw_now_ms() < end) {
        tw_client_poll(fx->c, 10);
    }
    assert_int_equal(fx->acks, n);
}

static void
test_refusal_names_the_active(void **state)
{
    (void)state;
    s_fx_t *fx = s_fx(1);
    for (int i = 0; i < 3; i++) {
        s_submit(fx);
    }
    /* The backup, tried first, is passive. */
    s_expect(fx, fx->b, TW_CMD_SUBMIT);
    s_not_active(fx->b, 3, fx->a->ep, 1);
    /* On to the primary: the ping first, with the epoch learnt and no
     * vote (nothing was lost), then the three resent. */
    fx->a->pings = 1;
    s_expect(fx, fx->a, TW_CMD_HEARTBEAT);
    assert_int_equal(s_key(fx->a, TW_F_HA), 3);
    assert_int_equal(s_key(fx->a, TW_F_LOST), -1);
    fx->a->pings = 0;
    s_expect(fx, fx->a, TW_CMD_SUBMIT);
    assert_int_equal(s_ack_all(fx->a, 3), 3);
    s_wait_acks(fx, 3);
    for (int seq = 1; seq <= 3; seq++) {
        assert_int_equal(fx->acked[seq], 1);
    }
    assert_string_equal(tw_client_last_error(fx->c), TW_PAIR_NOT_ACTIVE_MSG);
    s_fx_free(fx);
}

static void
test_failover_votes(void **state)
{
    (void)state;
    s_fx_t *fx = s_fx(0);
    s_submit(fx);
    s_submit(fx);
    s_expect(fx, fx->a, TW_CMD_SUBMIT);
    s_ack_all(fx->a, 3);
    s_wait_acks(fx, 2);
    /* The primary dies; a third task waits in the outbox. */
    tw_ff_kill(fx->a);
    s_submit(fx);
    fx->b->pings = 1;
    fx->b->mute = 1;
    s_expect(fx, fx->b, TW_CMD_HEARTBEAT);
    assert_int_equal(s_key(fx->b, TW_F_HA), 3);
    assert_int_equal(s_key(fx->b, TW_F_LOST), 3);
    /* Not yet: the backup still waits for the silence to last. The
     * client asks it again, voting again. */
    s_not_active(fx->b, 3, fx->a->ep, 0);
    s_expect(fx, fx->b, TW_CMD_HEARTBEAT);
    assert_int_equal(s_key(fx->b, TW_F_LOST), 3);
    /* Taken over, under epoch 4. */
    s_heartbeat(fx->b, 4);
    fx->b->pings = 0;
    s_expect(fx, fx->b, TW_CMD_SUBMIT);
    assert_int_equal(s_ack_all(fx->b, 4), 1);
    s_wait_acks(fx, 3);
    /* The vote is spent: the next ping carries the new epoch alone. */
    fx->b->pings = 1;
    s_expect(fx, fx->b, TW_CMD_HEARTBEAT);
    assert_int_equal(s_key(fx->b, TW_F_HA), 4);
    assert_int_equal(s_key(fx->b, TW_F_LOST), -1);
    s_fx_free(fx);
}

static void
test_deposed_active_ignored(void **state)
{
    (void)state;
    s_fx_t *fx = s_fx(0);
    s_submit(fx);
    s_expect(fx, fx->a, TW_CMD_SUBMIT);
    s_ack_all(fx->a, 5);
    s_wait_acks(fx, 1);
    /* The primary was deposed meanwhile and answers under an old epoch:
     * its acknowledgement must not count. */
    uint64_t seq = s_submit(fx);
    s_expect(fx, fx->a, TW_CMD_SUBMIT);
    s_ack_all(fx->a, 3);
    /* The client goes to the backup with the epoch it knows, and resends
     * the item there. */
    fx->b->pings = 1;
    s_expect(fx, fx->b, TW_CMD_HEARTBEAT);
    assert_int_equal(s_key(fx->b, TW_F_HA), 5);
    assert_int_equal(fx->acked[seq], 0);
    fx->b->pings = 0;
    s_expect(fx, fx->b, TW_CMD_SUBMIT);
    assert_int_equal(fx->b->m.nitems, 1);
    s_ack_all(fx->b, 6);
    s_wait_acks(fx, 2);
    assert_int_equal(fx->acked[seq], 1);
    s_fx_free(fx);
}

static void
test_bad_lists(void **state)
{
    (void)state;
    tw_client_t *c = tw_client_new("tcp://127.0.0.1:1,");
    assert_null(c);
    c = tw_client_new("tcp://127.0.0.1:1,tcp://127.0.0.1:1");
    assert_null(c);
    c = tw_client_new("127.0.0.1:1");
    assert_null(c);
    c = tw_client_new("tcp://127.0.0.1:1, tcp://127.0.0.1:2");
    assert_non_null(c);
    tw_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusal_names_the_active),
        cmocka_unit_test(test_failover_votes),
        cmocka_unit_test(test_deposed_active_ignored),
        cmocka_unit_test(test_bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
