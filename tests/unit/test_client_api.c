/*  tests/unit/test_client_api.c - libtaskwheel against a fake broker.
 *
 *  The fake broker is a raw ROUTER socket on an ephemeral TCP port that
 *  speaks the wire protocol through proto/proto.h. Tests that only need
 *  the client to send, or the broker to push, drive both sockets from the
 *  test thread; tests of blocking requests run the fake broker in a thread
 *  that answers each request (after some junk it must ignore). The client
 *  itself is only ever used from the test thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/internal.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Upper bound for anything that should happen: long, since a wait ends
 * when it happens and only a failing test waits it out (valgrind on a
 * busy machine is slow). */
#define WAIT_MS 30000

/* ------------------------------------------------------------------ */
/* The fake broker                                                    */

typedef struct {
    void *ctx;
    void *router;
    char endpoint[256];
    char peer[256]; /* routing id of the last sender */
    size_t peer_len;
} fake_t;

static void
fake_open(fake_t *fb)
{
    memset(fb, 0, sizeof *fb);
    fb->ctx = zmq_ctx_new();
    assert_non_null(fb->ctx);
    fb->router = zmq_socket(fb->ctx, ZMQ_ROUTER);
    assert_non_null(fb->router);
    int linger = 0;
    zmq_setsockopt(fb->router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(fb->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fb->endpoint;
    assert_int_equal(
        zmq_getsockopt(fb->router, ZMQ_LAST_ENDPOINT, fb->endpoint, &len), 0);
}

static void
fake_close(fake_t *fb)
{
    zmq_close(fb->router);
    zmq_ctx_term(fb->ctx);
}

/* Receive one [id][hdr][body] message within `ms` and decode it into *m,
 * keeping the body frame alive in *body (the decoded message points into
 * it). Returns 0, -1 on timeout, or a decode error. */
static int
fake_recv(fake_t *fb, int ms, tw_msg_t *m, zmq_msg_t *body)
{
    zmq_pollitem_t pi = {fb->router, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, ms) <= 0) {
        return -1;
    }
    zmq_msg_t id, hdr;
    zmq_msg_init(&id);
    zmq_msg_init(&hdr);
    zmq_msg_init(body);
    assert_true(zmq_msg_recv(&id, fb->router, 0) >= 0);
    assert_true(zmq_msg_more(&id));
    fb->peer_len = zmq_msg_size(&id);
    assert_true(fb->peer_len < sizeof fb->peer);
    memcpy(fb->peer, zmq_msg_data(&id), fb->peer_len);
    assert_true(zmq_msg_recv(&hdr, fb->router, 0) >= 0);
    assert_true(zmq_msg_more(&hdr));
    assert_true(zmq_msg_recv(body, fb->router, 0) >= 0);
    assert_false(zmq_msg_more(body));
    int rc = tw_msg_decode(m, zmq_msg_data(&hdr), zmq_msg_size(&hdr),
                           zmq_msg_data(body), zmq_msg_size(body));
    zmq_msg_close(&id);
    zmq_msg_close(&hdr);
    return rc;
}

static void
fake_done(tw_msg_t *m, zmq_msg_t *body)
{
    tw_msg_release(m);
    zmq_msg_close(body);
}

/* Send raw frames to the last peer. */
static void
fake_send_raw(fake_t *fb, const void *const *frames, const size_t *lens,
              int n)
{
    assert_int_equal(
        zmq_send(fb->router, fb->peer, fb->peer_len, ZMQ_SNDMORE),
        (int)fb->peer_len);
    for (int i = 0; i < n; i++) {
        assert_int_equal(zmq_send(fb->router, frames[i], lens[i],
                                  i + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)lens[i]);
    }
}

/* Send the body encoded in `e` as command `cmd` to the last peer. */
static void
fake_send(fake_t *fb, tw_enc_t *e, tw_cmd_t cmd)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    assert_int_equal(
        zmq_send(fb->router, fb->peer, fb->peer_len, ZMQ_SNDMORE),
        (int)fb->peer_len);
    assert_true(zmq_msg_send(&f[0], fb->router, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_msg_send(&f[1], fb->router, 0) >= 0);
}

/* Send a header plus a raw body. */
static void
fake_send_body(fake_t *fb, tw_cmd_t cmd, const void *body, size_t len)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(cmd, hdr);
    const void *frames[2] = {hdr, body};
    size_t lens[2] = {sizeof hdr, len};
    fake_send_raw(fb, frames, lens, 2);
}

/* ------------------------------------------------------------------ */
/* Recording callbacks                                                */

#define MAXREC 8

typedef struct {
    int nacks;
    struct {
        uint64_t seq, id;
        int err;
        char msg[128];
    } acks[MAXREC];
    int nresults;
    struct {
        tw_result_t r;
        unsigned char result[64];
        char error[128];
    } results[MAXREC];
} rec_t;

static void
rec_ack(void *arg, const tw_ack_t *ack)
{
    rec_t *rec = arg;
    assert_true(rec->nacks < MAXREC);
    rec->acks[rec->nacks].seq = ack->seq;
    rec->acks[rec->nacks].id = ack->id;
    rec->acks[rec->nacks].err = ack->err;
    snprintf(rec->acks[rec->nacks].msg, sizeof rec->acks[0].msg, "%s",
             ack->msg ? ack->msg : "(null)");
    rec->nacks++;
}

static void
rec_result(void *arg, const tw_result_t *r)
{
    rec_t *rec = arg;
    assert_true(rec->nresults < MAXREC);
    rec->results[rec->nresults].r = *r;
    assert_true(r->result_len <= sizeof rec->results[0].result);
    if (r->result_len) {
        memcpy(rec->results[rec->nresults].result, r->result, r->result_len);
    }
    snprintf(rec->results[rec->nresults].error, sizeof rec->results[0].error,
             "%s", r->error ? r->error : "(null)");
    rec->nresults++;
}

static int
setup(void **state)
{
    fake_t *fb = malloc(sizeof *fb);
    fake_open(fb);
    *state = fb;
    return 0;
}

static int
teardown(void **state)
{
    fake_close(*state);
    free(*state);
    return 0;
}

/* Submit a no-argument task to `handler` and return its seq. */
static uint64_t
submit_simple(tw_client_t *c, const char *handler)
{
    tw_task_spec_t spec = {.handler = handler};
    uint64_t seq = 0;
    assert_int_equal(tw_client_submit(c, &spec, &seq), 0);
    return seq;
}

/* ------------------------------------------------------------------ */
/* Submitting                                                         */

static void
test_submit_batch(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_non_null(c);

    static const unsigned char args[] = {0x92, 0x01, 0xa1, 'x'}; /* [1,"x"] */
    static const unsigned char nil[] = {0xc0};
    tw_task_spec_t a = {.handler = "echo",
                        .args = args,
                        .args_len = sizeof args,
                        .timeout_ms = 1500,
                        .priority = -3,
                        .retries = 2};
    tw_task_spec_t b = {.handler = "noop"};
    tw_task_spec_t d = {.handler = "x", .args = nil, .args_len = 1};
    uint64_t s1, s2, s3;
    assert_int_equal(tw_client_submit(c, &a, &s1), 0);
    assert_int_equal(tw_client_submit(c, &b, &s2), 0);
    assert_int_equal(tw_client_submit(c, &d, &s3), 0);
    assert_true(s1 > 0 && s2 == s1 + 1 && s3 == s2 + 1);
    assert_int_equal(tw_client_outstanding(c), 3);

    /* Nothing leaves before a flush. */
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(fake_recv(fb, 100, &m, &body), -1);

    assert_int_equal(tw_client_flush(c), 0);
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    assert_int_equal(fb->peer_len, 18);
    assert_memory_equal(fb->peer, "c-", 2);
    assert_int_equal(m.cmd, TW_CMD_SUBMIT);
    assert_int_equal(m.nitems, 3);

    size_t len;
    const char *h = tw_item_str(&m.items[0], TW_I_H, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(h, "echo", 4);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_SEQ, 0), s1);
    const void *p = tw_item_bin(&m.items[0], TW_I_A, &len);
    assert_int_equal(len, sizeof args);
    assert_memory_equal(p, args, sizeof args);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_TO, 0), 1500);
    assert_int_equal(tw_item_int(&m.items[0], TW_I_PRI, 0), -3);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_RE, 0), 2);

    h = tw_item_str(&m.items[1], TW_I_H, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(h, "noop", 4);
    assert_int_equal(tw_item_uint(&m.items[1], TW_I_SEQ, 0), s2);
    for (int f = 0; f < TW_I__COUNT; f++) {
        if (f != TW_I_SEQ && f != TW_I_H) {
            assert_null(m.items[1].f[f]);
        }
    }
    p = tw_item_bin(&m.items[2], TW_I_A, &len);
    assert_int_equal(len, 1);
    assert_int_equal(*(const unsigned char *)p, 0xc0);
    fake_done(&m, &body);

    tw_client_destroy(&c);
    assert_null(c);
    tw_client_destroy(&c); /* idempotent */
}

static void
test_submit_autoflush(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_non_null(c);
    uint64_t first = 0;
    for (int i = 0; i < TW__CLIENT_BATCH_ITEMS + 1; i++) {
        uint64_t seq = submit_simple(c, "noop");
        if (i == 0) {
            first = seq;
        }
    }
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    assert_int_equal(m.cmd, TW_CMD_SUBMIT);
    assert_int_equal(m.nitems, TW__CLIENT_BATCH_ITEMS);
    for (size_t i = 0; i < m.nitems; i++) {
        assert_int_equal(tw_item_uint(&m.items[i], TW_I_SEQ, 0), first + i);
    }
    fake_done(&m, &body);
    /* The 1001st stays in the outbox until a flush. */
    assert_int_equal(fake_recv(fb, 100, &m, &body), -1);
    assert_int_equal(tw_client_outstanding(c), TW__CLIENT_BATCH_ITEMS + 1);
    assert_int_equal(tw_client_flush(c), 0);
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    assert_int_equal(m.nitems, 1);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_SEQ, 0),
                     first + TW__CLIENT_BATCH_ITEMS);
    fake_done(&m, &body);
    /* Flushing an empty outbox sends nothing. */
    assert_int_equal(tw_client_flush(c), 0);
    assert_int_equal(fake_recv(fb, 100, &m, &body), -1);
    tw_client_destroy(&c);
}

static void
test_submit_invalid(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_non_null(c);
    char longname[TW_PROTO_MAX_NAME + 2];
    memset(longname, 'h', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    static const unsigned char bad[] = {0xc1};
    static const unsigned char trailing[] = {0x01, 0x02};
    static const unsigned char truncated[] = {0x92, 0x01};
    tw_task_spec_t specs[] = {
        {.handler = NULL},
        {.handler = ""},
        {.handler = longname},
        {.handler = "h", .args = bad, .args_len = sizeof bad},
        {.handler = "h", .args = trailing, .args_len = sizeof trailing},
        {.handler = "h", .args = truncated, .args_len = sizeof truncated},
        {.handler = "h", .args = trailing, .args_len = 0},
    };
    uint64_t seq = 0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        assert_int_equal(tw_client_submit(c, &specs[i], &seq), TW_EINVAL);
    }
    assert_int_equal(tw_client_submit(c, NULL, &seq), TW_EINVAL);
    longname[TW_PROTO_MAX_NAME] = '\0'; /* exactly the limit is fine */
    tw_task_spec_t ok = {.handler = longname};
    assert_int_equal(tw_client_submit(c, &ok, &seq), 0);
    assert_int_equal(tw_client_outstanding(c), 1);
    tw_client_destroy(&c);
}

/* ------------------------------------------------------------------ */
/* What the broker pushes                                             */

static void
test_ack_and_result_callbacks(void **state)
{
    fake_t *fb = *state;
    rec_t rec;
    memset(&rec, 0, sizeof rec);
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    assert_non_null(c);
    tw_client_on_ack(c, rec_ack, &rec);
    tw_client_on_result(c, rec_result, &rec);
    uint64_t s1 = submit_simple(c, "echo");
    uint64_t s2 = submit_simple(c, "nope");
    uint64_t s3 = submit_simple(c, "fail");
    assert_int_equal(tw_client_flush(c), 0);

    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    assert_int_equal(m.nitems, 3);
    fake_done(&m, &body);

    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 3);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s1);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 101);
    tw_enc_map(&e, 3); /* the per-item error form {seq, code, msg} */
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s2);
    tw_enc_ikey(&e, TW_I_CODE);
    tw_enc_int(&e, TW_EHANDLER);
    tw_enc_cstr(&e, "msg");
    tw_enc_cstr(&e, "unknown handler 'nope'");
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s3);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 103);
    fake_send(fb, &e, TW_CMD_ACK);

    static const unsigned char res[] = {0xa2, 'o', 'k'};
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 2);
    tw_enc_map(&e, 6);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 101);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s1);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, TW_ST_OK);
    tw_enc_ikey(&e, TW_I_R);
    tw_enc_bin(&e, res, sizeof res);
    tw_enc_ikey(&e, TW_I_W);
    tw_enc_uint(&e, 7);
    tw_enc_ikey(&e, TW_I_AT);
    tw_enc_uint(&e, 1);
    tw_enc_map(&e, 5);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 103);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s3);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, TW_ST_ERROR);
    tw_enc_ikey(&e, TW_I_ERR);
    tw_enc_cstr(&e, "boom");
    tw_enc_ikey(&e, TW_I_AT);
    tw_enc_uint(&e, 2);
    fake_send(fb, &e, TW_CMD_RESULT);
    tw_enc_free(&e);

    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);
    assert_int_equal(tw_client_outstanding(c), 0);

    assert_int_equal(rec.nacks, 3);
    assert_int_equal(rec.acks[0].seq, s1);
    assert_int_equal(rec.acks[0].id, 101);
    assert_int_equal(rec.acks[0].err, 0);
    assert_string_equal(rec.acks[0].msg, "(null)");
    assert_int_equal(rec.acks[1].seq, s2);
    assert_int_equal(rec.acks[1].id, 0);
    assert_int_equal(rec.acks[1].err, TW_EHANDLER);
    assert_string_equal(rec.acks[1].msg, "unknown handler 'nope'");
    assert_int_equal(rec.acks[2].id, 103);

    assert_int_equal(rec.nresults, 2);
    assert_int_equal(rec.results[0].r.id, 101);
    assert_int_equal(rec.results[0].r.seq, s1);
    assert_int_equal(rec.results[0].r.state, TW_ST_OK);
    assert_int_equal(rec.results[0].r.result_len, sizeof res);
    assert_memory_equal(rec.results[0].result, res, sizeof res);
    assert_string_equal(rec.results[0].error, "(null)");
    assert_int_equal(rec.results[0].r.worker, 7);
    assert_int_equal(rec.results[0].r.attempt, 1);
    assert_int_equal(rec.results[1].r.id, 103);
    assert_int_equal(rec.results[1].r.state, TW_ST_ERROR);
    assert_int_equal(rec.results[1].r.result_len, 0);
    assert_string_equal(rec.results[1].error, "boom");
    assert_int_equal(rec.results[1].r.attempt, 2);
    tw_client_destroy(&c);
}

/* A client that records its acks and results in *rec, with one "echo"
 * submitted (its seq in *seq) and taken by the fake broker. */
static tw_client_t *
s_echo_taken(fake_t *fb, rec_t *rec, uint64_t *seq)
{
    memset(rec, 0, sizeof *rec);
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    tw_client_on_ack(c, rec_ack, rec);
    tw_client_on_result(c, rec_result, rec);
    *seq = submit_simple(c, "echo");
    assert_int_equal(tw_client_flush(c), 0);
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    fake_done(&m, &body);
    return c;
}

static void
test_error_with_seq_completes(void **state)
{
    fake_t *fb = *state;
    rec_t rec;
    uint64_t s1;
    tw_client_t *c = s_echo_taken(fb, &rec, &s1);

    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, TW_EFULL);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, "queue full");
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, s1);
    fake_send(fb, &e, TW_CMD_ERROR);
    tw_enc_free(&e);

    assert_int_equal(tw_client_wait_all(c, WAIT_MS), 0);
    assert_int_equal(rec.nacks, 1);
    assert_int_equal(rec.acks[0].seq, s1);
    assert_int_equal(rec.acks[0].err, TW_EFULL);
    assert_string_equal(rec.acks[0].msg, "queue full");
    assert_string_equal(tw_client_last_error(c), "queue full");
    tw_client_destroy(&c);
}

static void
test_wait_all_idle_timeout(void **state)
{
    fake_t *fb = *state;
    tw_client_t *c = tw_suite_client_new(fb->endpoint);
    submit_simple(c, "echo");
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_client_wait_all(c, 150), TW_ETIMEDOUT);
    uint64_t took = tw_now_ms() - t0;
    assert_true(took >= 140 && took < WAIT_MS);
    assert_int_equal(tw_client_outstanding(c), 1);
    /* wait_all flushed: the broker got the task. */
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(fake_recv(fb, WAIT_MS, &m, &body), 0);
    assert_int_equal(m.cmd, TW_CMD_SUBMIT);
    fake_done(&m, &body);
    tw_client_destroy(&c);
}

static void
test_malformed_ignored(void **state)
{
    fake_t *fb = *state;
    rec_t rec;
    uint64_t s1;
    tw_client_t *c = s_echo_taken(fb, &rec, &s1);

    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_ACK, hdr);
    static const unsigned char empty_map[] = {0x80};
    /* One frame only. */
    {
        const void *f[1] = {hdr};
        size_t l[1] = {sizeof hdr};
        fake_send_raw(fb, f, l, 1);
    }
    /* Three frames. */
    {
        const void *f[3] = {hdr, empty_map, empty_map};
        size_t l[3] = {sizeof hdr, 1, 1};
        fake_send_raw(fb, f, l, 3);
    }
    /* Bad signature, bad version, unknown command, short header. */
    {
        static const unsigned char bads[4][4] = {
            {'X', 'W', 1, TW_CMD_ACK},
            {'T', 'W', 9, TW_CMD_ACK},
            {'T', 'W', 1, 99},
            {'T', 'W', 1, 0}};
        for (int i = 0; i < 4; i++) {
            const void *f[2] = {bads[i], empty_map};
            size_t l[2] = {4, 1};
            fake_send_raw(fb, f, l, 2);
        }
        const void *f[2] = {hdr, empty_map};
        size_t l[2] = {3, 1};
        fake_send_raw(fb, f, l, 2);
    }
    /* Bodies that are not one valid map. */
    {
        static const unsigned char notmp[] = {0xc1};
        static const unsigned char trailing[] = {0x80, 0x80};
        static const unsigned char trunc[] = {0x81, 0xa5, 'i', 't'};
        static const unsigned char notmap[] = {0x93, 1, 2, 3};
        fake_send_body(fb, TW_CMD_ACK, notmp, sizeof notmp);
        fake_send_body(fb, TW_CMD_ACK, trailing, sizeof trailing);
        fake_send_body(fb, TW_CMD_ACK, trunc, sizeof trunc);
        fake_send_body(fb, TW_CMD_ACK, notmap, sizeof notmap);
        fake_send_body(fb, TW_CMD_ACK, "", 0);
    }
    tw_enc_t e;
    tw_enc_init(&e);
    /* ACK whose items is not an array; ACK item without seq; RESULT item
     * whose st is a string; REPLY nobody asked for; a broker-to-worker
     * command. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_uint(&e, 5);
    fake_send(fb, &e, TW_CMD_ACK);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 1);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 5);
    fake_send(fb, &e, TW_CMD_ACK);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 5);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_cstr(&e, "ok");
    fake_send(fb, &e, TW_CMD_RESULT);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 999999);
    tw_enc_key(&e, TW_F_DATA);
    tw_enc_nil(&e);
    fake_send(fb, &e, TW_CMD_REPLY);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 0);
    fake_send(fb, &e, TW_CMD_TASKS);
    /* Finally a good ACK. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 2);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, s1);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 77);
    fake_send(fb, &e, TW_CMD_ACK);

    int handled = 0;
    uint64_t deadline = tw_now_ms() + WAIT_MS;
    while (rec.nacks == 0 && tw_now_ms() < deadline) {
        int n = tw_client_poll(c, 100);
        assert_true(n >= 0);
        handled += n;
    }
    assert_int_equal(handled, 1);
    assert_int_equal(rec.nacks, 1);
    assert_int_equal(rec.acks[0].seq, s1);
    assert_int_equal(rec.acks[0].id, 77);
    assert_int_equal(rec.nresults, 0);
    assert_int_equal(tw_client_poll(c, 0), 0);

    /* An ERROR without seq is recorded, nothing else. */
    assert_string_equal(tw_client_last_error(c), "");
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, TW_EPROTO);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, "bad body");
    fake_send(fb, &e, TW_CMD_ERROR);
    tw_enc_free(&e);
    assert_int_equal(tw_client_poll(c, WAIT_MS), 1);
    assert_string_equal(tw_client_last_error(c), "bad body");
    assert_int_equal(tw_client_outstanding(c), 1);
    tw_client_destroy(&c);
}

/* ------------------------------------------------------------------ */
/* Requests, answered by a fake broker thread                         */

typedef struct {
    fake_t fb;
    atomic_int stop;
    int served;
} server_t;

/* Junk and a stale answer the client must skip before the real one. */
static void
server_junk(fake_t *fb, uint64_t seq)
{
    static const unsigned char garbage[] = {0xc1, 0xc1};
    fake_send_body(fb, TW_CMD_REPLY, garbage, sizeof garbage);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, seq + 1000);
    tw_enc_key(&e, TW_F_DATA);
    tw_enc_cstr(&e, "stale");
    fake_send(fb, &e, TW_CMD_REPLY);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, seq + 1000);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 0);
    fake_send(fb, &e, TW_CMD_RESULT);
    tw_enc_free(&e);
}

static void
server_answer(fake_t *fb, const tw_msg_t *m)
{
    tw_enc_t e;
    tw_enc_init(&e);
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t len;
    switch (m->cmd) {
    case TW_CMD_HEARTBEAT:
        server_junk(fb, 0);
        tw_enc_map(&e, 0);
        fake_send(fb, &e, TW_CMD_HEARTBEAT);
        break;
    case TW_CMD_QUERY: {
        const char *what = tw_msg_str(m, TW_F_WHAT, &len);
        server_junk(fb, seq);
        if (len == 6 && memcmp(what, "status", 6) == 0) {
            tw_enc_map(&e, 2);
            tw_enc_key(&e, TW_F_SEQ);
            tw_enc_uint(&e, seq);
            tw_enc_key(&e, TW_F_DATA);
            tw_enc_map(&e, 2);
            tw_enc_cstr(&e, "workers");
            tw_enc_uint(&e, 2);
            tw_enc_cstr(&e, "rate");
            msgpack_pack_double(&e.pk, 1.5);
            fake_send(fb, &e, TW_CMD_REPLY);
        } else if (len == 4 && memcmp(what, "slow", 4) == 0) {
            /* No answer: the client must time out. */
        } else {
            tw_enc_map(&e, 3);
            tw_enc_key(&e, TW_F_SEQ);
            tw_enc_uint(&e, seq);
            tw_enc_key(&e, TW_F_CODE);
            tw_enc_int(&e, TW_EINVAL);
            tw_enc_key(&e, TW_F_MSG);
            tw_enc_cstr(&e, "unknown query");
            fake_send(fb, &e, TW_CMD_ERROR);
        }
        break;
    }
    case TW_CMD_RESULT: {
        const msgpack_object *ids = m->f[TW_F_IDS];
        assert_non_null(ids);
        assert_int_equal(ids->via.array.size, 1);
        uint64_t id = ids->via.array.ptr[0].via.u64;
        server_junk(fb, seq);
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, seq);
        tw_enc_key(&e, TW_F_ITEMS);
        if (id == 5) {
            static const unsigned char r[] = {0x2a}; /* 42 */
            tw_enc_array(&e, 1);
            tw_enc_map(&e, 4);
            tw_enc_ikey(&e, TW_I_ID);
            tw_enc_uint(&e, 5);
            tw_enc_ikey(&e, TW_I_ST);
            tw_enc_uint(&e, TW_ST_OK);
            tw_enc_ikey(&e, TW_I_R);
            tw_enc_bin(&e, r, sizeof r);
            tw_enc_ikey(&e, TW_I_ERR);
            tw_enc_cstr(&e, "");
        } else {
            tw_enc_array(&e, 0); /* the broker forgot the id */
        }
        fake_send(fb, &e, TW_CMD_RESULT);
        break;
    }
    case TW_CMD_CANCEL: {
        const msgpack_object *ids = m->f[TW_F_IDS];
        server_junk(fb, seq);
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, seq);
        tw_enc_key(&e, TW_F_DATA);
        tw_enc_map(&e, 3);
        tw_enc_cstr(&e, "cancelled");
        tw_enc_array(&e, ids->via.array.size);
        for (uint32_t i = 0; i < ids->via.array.size; i++) {
            tw_enc_uint(&e, ids->via.array.ptr[i].via.u64);
        }
        tw_enc_cstr(&e, "ended");
        tw_enc_array(&e, 0);
        tw_enc_cstr(&e, "unknown");
        tw_enc_array(&e, 0);
        fake_send(fb, &e, TW_CMD_REPLY);
        break;
    }
    default:
        break;
    }
    tw_enc_free(&e);
}

static void *
server_main(void *arg)
{
    server_t *s = arg;
    while (!atomic_load(&s->stop)) {
        tw_msg_t m;
        zmq_msg_t body;
        int rc = fake_recv(&s->fb, 20, &m, &body);
        if (rc == -1) {
            continue;
        }
        if (rc == 0) {
            server_answer(&s->fb, &m);
            s->served++;
            fake_done(&m, &body);
        } else {
            zmq_msg_close(&body);
        }
    }
    return NULL;
}

static void
test_requests(void **state)
{
    (void)state;
    server_t s;
    memset(&s, 0, sizeof s);
    fake_open(&s.fb);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, server_main, &s), 0);

    tw_client_t *c = tw_suite_client_new(s.fb.endpoint);
    assert_non_null(c);
    assert_int_equal(tw_client_ping(c, WAIT_MS), 0);

    void *data = NULL;
    size_t len = 0;
    assert_int_equal(tw_client_query(c, "status", WAIT_MS, &data, &len), 0);
    assert_non_null(data);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, data, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(up.data.via.map.size, 2);
    assert_int_equal(up.data.via.map.ptr[0].val.via.u64, 2);
    msgpack_unpacked_destroy(&up);
    free(data);

    assert_int_equal(tw_client_query(c, "bogus", WAIT_MS, &data, &len),
                     TW_EINVAL);
    assert_null(data);
    assert_string_equal(tw_client_last_error(c), "unknown query");
    assert_int_equal(tw_client_query(c, "", WAIT_MS, &data, &len),
                     TW_EINVAL);

    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_client_query(c, "slow", 150, &data, &len),
                     TW_EUNREACH);
    assert_true(tw_now_ms() - t0 >= 140);

    tw_result_t *r = NULL;
    assert_int_equal(tw_client_result(c, 5, WAIT_MS, &r), 0);
    assert_non_null(r);
    assert_int_equal(r->id, 5);
    assert_int_equal(r->state, TW_ST_OK);
    assert_int_equal(r->result_len, 1);
    assert_int_equal(*(const unsigned char *)r->result, 0x2a);
    assert_string_equal(r->error, "");
    tw_result_free(&r);
    assert_null(r);
    tw_result_free(&r);

    assert_int_equal(tw_client_result(c, 9, WAIT_MS, &r), 0);
    assert_int_equal(r->id, 9);
    assert_int_equal(r->state, TW_ST_UNKNOWN);
    assert_null(r->result);
    tw_result_free(&r);

    uint64_t ids[] = {3, 4};
    assert_int_equal(tw_client_cancel(c, ids, 2, WAIT_MS), 0);
    assert_int_equal(tw_client_cancel(c, ids, 0, WAIT_MS), TW_EINVAL);
    assert_int_equal(tw__client_cancel(c, ids, 2, WAIT_MS, &data, &len), 0);
    assert_non_null(data);
    msgpack_unpacked_init(&up);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&up, data, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(up.data.via.map.ptr[0].val.via.array.size, 2);
    msgpack_unpacked_destroy(&up);
    free(data);

    /* The stale answer of the timed-out query is still ignored. */
    assert_int_equal(tw_client_ping(c, WAIT_MS), 0);

    tw_client_destroy(&c);
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    fake_close(&s.fb);
}

static void
test_ping_unreachable(void **state)
{
    (void)state;
    char ep[64];
    char hex[17];
    tw_random_hex(hex, 16);
    snprintf(ep, sizeof ep, "ipc:///tmp/tw-test-nobody-%s", hex);
    tw_client_t *c = tw_client_new(ep);
    assert_non_null(c);
    uint64_t t0 = tw_now_ms();
    assert_int_equal(tw_client_ping(c, 200), TW_EUNREACH);
    uint64_t took = tw_now_ms() - t0;
    assert_true(took >= 190 && took < WAIT_MS);
    tw_result_t *r = NULL;
    assert_int_equal(tw_client_result(c, 1, 50, &r), TW_EUNREACH);
    assert_null(r);
    tw_client_destroy(&c);
}

static void
test_new_bad_endpoint(void **state)
{
    (void)state;
    assert_null(tw_client_new(NULL));
    assert_null(tw_client_new("not an endpoint"));
    assert_null(tw_client_new("bogus://x"));
    assert_string_equal(tw_client_strerror(TW_EUNREACH),
                        "broker unreachable");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_autoflush, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_submit_invalid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_and_result_callbacks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_with_seq_completes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wait_all_idle_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_ignored, setup,
                                        teardown),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_ping_unreachable),
        cmocka_unit_test(test_new_bad_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
