/*  tests/unit/test_client_reconnect.c - the client's heartbeats, loss
 *  detection, reconnection, outbox and re-queries, against a fake broker
 *  frontend that dies and comes back (tests/unit/support/fake_front.h).
 *
 *  Every case runs with short intervals (heartbeat 100 ms, liveness 3,
 *  backoff 50..200 ms) so a loss is noticed within half a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/internal.h"
#include "client/outbox.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/fake_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound for anything that should happen; see test_client_api.c. */
#define WAIT_MS 30000

typedef struct {
    tw_ff_t *ff;
    tw_client_t *c;
    int acks;           /* ack callbacks */
    uint64_t ack_seq[16];
    int results;        /* result callbacks */
    tw_result_t last;   /* the last one (error copied below) */
    char error[256];
} s_fx_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    s_fx_t *fx = arg;
    if (fx->acks < 16) {
        fx->ack_seq[fx->acks] = ack->seq;
    }
    fx->acks++;
}

static void
s_on_result(void *arg, const tw_result_t *r)
{
    s_fx_t *fx = arg;
    fx->results++;
    fx->last = *r;
    snprintf(fx->error, sizeof fx->error, "%s", r->error ? r->error : "");
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    fx->ff = tw_ff_new();
    fx->c = tw_client_new(fx->ff->ep);
    assert_non_null(fx->c);
    tw_client_opts_t o = {.heartbeat_ms = 100,
                          .liveness = 3,
                          .reconnect_min_ms = 50,
                          .reconnect_max_ms = 200};
    assert_int_equal(tw_client_set_opts(fx->c, &o), 0);
    tw_client_on_ack(fx->c, s_on_ack, fx);
    tw_client_on_result(fx->c, s_on_result, fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    tw_client_destroy(&fx->c);
    tw_ff_destroy(&fx->ff);
    free(fx);
    return 0;
}

static uint64_t
s_submit(tw_client_t *c, const char *handler)
{
    tw_task_spec_t spec = {.handler = handler};
    uint64_t seq = 0;
    assert_int_equal(tw_client_submit(c, &spec, &seq), 0);
    return seq;
}

/* Wait for a message of `cmd` (others are skipped). */
static void
s_expect(s_fx_t *fx, tw_cmd_t cmd)
{
    uint64_t end = tw_now_ms() + WAIT_MS;
    while (tw_now_ms() < end) {
        if (tw_ff_recv(fx->ff, fx->c, 100) == 0 && fx->ff->m.cmd == cmd) {
            return;
        }
    }
    fail_msg("no %s within %d ms", tw_proto_cmd_name(cmd), WAIT_MS);
}

/* ACK {items: [{seq, id}...]} for n (seq, id) pairs. */
static void
s_ack(s_fx_t *fx, const uint64_t *seqs, const uint64_t *ids, size_t n)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, n);
    for (size_t i = 0; i < n; i++) {
        tw_enc_map(&e, 2);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, seqs[i]);
        tw_enc_ikey(&e, TW_I_ID);
        tw_enc_uint(&e, ids[i]);
    }
    tw_ff_send(fx->ff, TW_CMD_ACK, &e);
    tw_enc_free(&e);
}

/* Kill the fake broker, wait until the client gave it up, restart it. */
static void
s_bounce(s_fx_t *fx)
{
    tw_ff_kill(fx->ff);
    tw_client_stats_t st;
    uint64_t end = tw_now_ms() + WAIT_MS;
    do {
        tw_client_poll(fx->c, 10);
        tw_client_stats(fx->c, &st);
    } while (st.lost == 0 && tw_now_ms() < end);
    assert_int_equal(st.lost, 1);
    tw_ff_restart(fx->ff);
}

/* One item of the answer to a re-query: a task id, the seq it names (0:
 * none), its state, and for an ok one a nil result. */
typedef struct {
    uint64_t id;
    uint64_t seq;
    int st;
} s_item_t;

/* Answer the re-query `qseq` with RESULT {seq, items}. */
static void
s_answer(s_fx_t *fx, uint64_t qseq, const s_item_t *items, size_t n)
{
    static const unsigned char nil = 0xc0;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, qseq);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, n);
    for (size_t i = 0; i < n; i++) {
        const s_item_t *it = &items[i];
        tw_enc_map(&e, 2 + (it->seq != 0) + (it->st == TW_ST_OK));
        tw_enc_ikey(&e, TW_I_ID);
        tw_enc_uint(&e, it->id);
        if (it->seq) {
            tw_enc_ikey(&e, TW_I_SEQ);
            tw_enc_uint(&e, it->seq);
        }
        tw_enc_ikey(&e, TW_I_ST);
        tw_enc_uint(&e, (uint64_t)it->st);
        if (it->st == TW_ST_OK) {
            tw_enc_ikey(&e, TW_I_R);
            tw_enc_bin(&e, &nil, 1);
        }
    }
    tw_ff_send(fx->ff, TW_CMD_RESULT, &e);
    tw_enc_free(&e);
}

/* An idle client pings; a broker that answers is never declared lost.
 * The fake answers from this same thread, between the client's polls, so
 * a stall of the whole process (valgrind on a busy machine) would look to
 * the client like a broker that stopped answering: liveness is raised to
 * 30 s here, still pinging every 100 ms, so only a broker that really
 * does not answer could be declared lost. */
static void
test_idle_pings(void **state)
{
    s_fx_t *fx = *state;
    tw_client_opts_t o = {.liveness = 300};
    assert_int_equal(tw_client_set_opts(fx->c, &o), 0);
    uint64_t end = tw_now_ms() + WAIT_MS;
    while (fx->ff->heartbeats < 2 && tw_now_ms() < end) {
        tw_ff_idle(fx->ff, fx->c, 100);
    }
    tw_client_stats_t st;
    tw_client_stats(fx->c, &st);
    assert_true(fx->ff->heartbeats >= 2);
    assert_true(st.pings >= 2);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.reconnects, 0);
}

/* A broker that says BYE (it is stopping) is given up at once, though it
 * still answers pings, and what it did not acknowledge goes again. */
static void
test_bye_reconnects_now(void **state)
{
    s_fx_t *fx = *state;
    uint64_t s1 = s_submit(fx->c, "one");
    assert_int_equal(tw_client_flush(fx->c), 0);
    s_expect(fx, TW_CMD_SUBMIT);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 0);
    tw_ff_send(fx->ff, TW_CMD_BYE, &e);
    tw_enc_free(&e);
    s_expect(fx, TW_CMD_SUBMIT);
    assert_int_equal(fx->ff->m.nitems, 1);
    assert_int_equal(tw_item_uint(&fx->ff->m.items[0], TW_I_SEQ, 0), s1);
    tw_client_stats_t st;
    tw_client_stats(fx->c, &st);
    assert_int_equal(st.lost, 1);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.resends, 1);
}

/* Unacknowledged submissions are resent with their seqs after the broker
 * came back; acknowledged ones without an outcome are asked about. */
static void
test_resend_and_requery(void **state)
{
    s_fx_t *fx = *state;
    uint64_t s1 = s_submit(fx->c, "one");
    uint64_t s2 = s_submit(fx->c, "two");
    uint64_t s3 = s_submit(fx->c, "three");
    assert_int_equal(tw_client_flush(fx->c), 0);
    s_expect(fx, TW_CMD_SUBMIT);
    assert_int_equal(fx->ff->m.nitems, 3);
    char ident[256];
    size_t ilen = fx->ff->ilen;
    memcpy(ident, fx->ff->ident, ilen);
    uint64_t seq = s1, id = 101;
    s_ack(fx, &seq, &id, 1);
    tw_ff_idle(fx->ff, fx->c, 50);
    assert_int_equal(fx->acks, 1);

    s_bounce(fx);
    /* The same routing id, the same seqs and bytes, then the re-query. */
    s_expect(fx, TW_CMD_SUBMIT);
    assert_int_equal(fx->ff->ilen, ilen);
    assert_memory_equal(fx->ff->ident, ident, ilen);
    assert_int_equal(fx->ff->m.nitems, 2);
    assert_int_equal(tw_item_uint(&fx->ff->m.items[0], TW_I_SEQ, 0), s2);
    assert_int_equal(tw_item_uint(&fx->ff->m.items[1], TW_I_SEQ, 0), s3);
    size_t hl = 0;
    const char *h = tw_item_str(&fx->ff->m.items[1], TW_I_H, &hl);
    assert_int_equal(hl, 5);
    assert_memory_equal(h, "three", 5);
    s_expect(fx, TW_CMD_RESULT);
    const msgpack_object *ids = fx->ff->m.f[TW_F_IDS];
    assert_non_null(ids);
    assert_int_equal(ids->via.array.size, 1);
    assert_int_equal(ids->via.array.ptr[0].via.u64, 101);
    uint64_t qseq = tw_msg_uint(&fx->ff->m, TW_F_SEQ, 0);
    assert_true(qseq > s3);

    /* Answer: task 101 ended ok; ack the resent ones. */
    const s_item_t done[] = {{101, s1, TW_ST_OK}};
    s_answer(fx, qseq, done, 1);
    uint64_t seqs[2] = {s2, s3}, nids[2] = {201, 202};
    s_ack(fx, seqs, nids, 2);
    /* A repeated ACK (a resend answered twice) is not reported again. */
    s_ack(fx, seqs, nids, 2);
    uint64_t end = tw_now_ms() + WAIT_MS;
    while ((fx->results < 1 || fx->acks < 3) && tw_now_ms() < end) {
        tw_ff_idle(fx->ff, fx->c, 20);
    }
    tw_ff_idle(fx->ff, fx->c, 100); /* a window for a second report */
    assert_int_equal(fx->results, 1);
    assert_int_equal(fx->last.seq, s1);
    assert_int_equal(fx->last.state, TW_ST_OK);
    assert_int_equal(fx->acks, 3);
    assert_int_equal(fx->ack_seq[1], s2);
    assert_int_equal(fx->ack_seq[2], s3);
    assert_int_equal(tw_client_outstanding(fx->c), 2);

    tw_client_stats_t st;
    tw_client_stats(fx->c, &st);
    assert_int_equal(st.reconnects, 1);
    /* Twice each: once at once when the socket monitor saw the
     * connection drop (into the old socket, closed unsent when the
     * broker stayed silent), once on the new socket. */
    assert_int_equal(st.resends, 4);
    assert_int_equal(st.requeries, 2);
    assert_int_equal(st.unacked, 0);
    assert_int_equal(st.waiting, 2);
}

/* A task the restarted broker never had is reported lost, not waited
 * on; so is one whose id now names another submission. */
static void
test_unknown_is_lost(void **state)
{
    s_fx_t *fx = *state;
    uint64_t s1 = s_submit(fx->c, "one");
    uint64_t s2 = s_submit(fx->c, "two");
    assert_int_equal(tw_client_flush(fx->c), 0);
    s_expect(fx, TW_CMD_SUBMIT);
    uint64_t seqs[2] = {s1, s2}, ids[2] = {7, 8};
    s_ack(fx, seqs, ids, 2);
    tw_ff_idle(fx->ff, fx->c, 50);
    s_bounce(fx);
    s_expect(fx, TW_CMD_RESULT);
    uint64_t qseq = tw_msg_uint(&fx->ff->m, TW_F_SEQ, 0);
    const s_item_t answer[] = {
        {7, 0, TW_ST_UNKNOWN},
        {8, 999, TW_ST_PENDING}, /* id 8 is someone else's pending task */
    };
    s_answer(fx, qseq, answer, 2);
    tw_ff_idle(fx->ff, fx->c, 100);
    assert_int_equal(fx->results, 2);
    assert_int_equal(fx->last.state, TW_ST_LOST);
    assert_non_null(strstr(fx->error, "no record"));
    assert_int_equal(tw_client_outstanding(fx->c), 0);
    assert_int_equal(tw_client_wait_all(fx->c, 10), 0);
    tw_client_stats_t st;
    tw_client_stats(fx->c, &st);
    assert_int_equal(st.unknown, 2);
    assert_int_equal(st.waiting, 0);
}

/* A pending task stays waited for after the re-query. */
static void
test_pending_stays(void **state)
{
    s_fx_t *fx = *state;
    uint64_t s1 = s_submit(fx->c, "one");
    assert_int_equal(tw_client_flush(fx->c), 0);
    s_expect(fx, TW_CMD_SUBMIT);
    uint64_t id = 5;
    s_ack(fx, &s1, &id, 1);
    tw_ff_idle(fx->ff, fx->c, 50);
    s_bounce(fx);
    s_expect(fx, TW_CMD_RESULT);
    uint64_t qseq = tw_msg_uint(&fx->ff->m, TW_F_SEQ, 0);
    const s_item_t running[] = {{5, s1, TW_ST_RUNNING}};
    s_answer(fx, qseq, running, 1);
    tw_ff_idle(fx->ff, fx->c, 100);
    assert_int_equal(fx->results, 0);
    assert_int_equal(tw_client_outstanding(fx->c), 1);
    tw_client_stats_t st;
    tw_client_stats(fx->c, &st);
    assert_int_equal(st.waiting, 1);
}

/* The outbox is bounded: TW_EFULL until an ACK makes room. */
static void
test_outbox_full(void **state)
{
    s_fx_t *fx = *state;
    tw_client_opts_t o = {.max_outbox = 2};
    assert_int_equal(tw_client_set_opts(fx->c, &o), 0);
    uint64_t s1 = s_submit(fx->c, "one");
    s_submit(fx->c, "two");
    tw_task_spec_t spec = {.handler = "three"};
    assert_int_equal(tw_client_submit(fx->c, &spec, NULL), TW_EFULL);
    assert_int_equal(tw_client_flush(fx->c), 0);
    s_expect(fx, TW_CMD_SUBMIT);
    uint64_t id = 1;
    s_ack(fx, &s1, &id, 1);
    tw_ff_idle(fx->ff, fx->c, 50);
    assert_int_equal(tw_client_submit(fx->c, &spec, NULL), 0);
}

static void
test_bad_opts(void **state)
{
    s_fx_t *fx = *state;
    tw_client_opts_t o = {.liveness = 1};
    assert_int_equal(tw_client_set_opts(fx->c, &o), TW_EINVAL);
    o = (tw_client_opts_t){.reconnect_min_ms = 500, .reconnect_max_ms = 100};
    assert_int_equal(tw_client_set_opts(fx->c, &o), TW_EINVAL);
    assert_int_equal(tw_client_set_opts(fx->c, NULL), TW_EINVAL);
}

/* The outbox keeps items in seq order and forgets any one of them. */
static void
test_outbox_order(void **state)
{
    (void)state;
    tw__outbox_t o;
    tw__outbox_init(&o);
    char item[8];
    for (uint64_t seq = 1; seq <= 5; seq++) {
        memset(item, (int)seq, sizeof item);
        tw__outbox_add(&o, seq, item, (size_t)seq);
    }
    assert_int_equal(o.len, 5);
    assert_int_equal(o.bytes, 15);
    assert_int_equal(tw__outbox_ack(&o, 3), 1); /* middle */
    assert_int_equal(tw__outbox_ack(&o, 1), 1); /* head */
    assert_int_equal(tw__outbox_ack(&o, 5), 1); /* tail */
    assert_int_equal(tw__outbox_ack(&o, 3), 0); /* again */
    assert_int_equal(tw__outbox_ack(&o, 9), 0); /* never there */
    assert_int_equal(tw__outbox_ack(&o, 0), 0);
    assert_int_equal(o.len, 2);
    assert_int_equal(o.bytes, 6);
    const tw__ob_item_t *it = o.head;
    assert_int_equal(it->seq, 2);
    assert_int_equal(it->len, 2);
    assert_int_equal(it->bytes[1], 2);
    it = it->next;
    assert_int_equal(it->seq, 4);
    assert_null(it->next);
    assert_ptr_equal(o.tail, it);
    tw__outbox_free(&o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox_order),
        cmocka_unit_test_setup_teardown(test_idle_pings, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_bye_reconnects_now, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_resend_and_requery, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_is_lost, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pending_stays, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_outbox_full, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_opts, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
