/*  tests/unit/test_client_chan.c - the submitter's end of task channels,
 *  and broker events, in libtaskwheel, against a fake broker.
 *
 *  A ROUTER socket in the test plays the broker. It learns the client's
 *  routing id from a ping, then sends CHAN items and an unsolicited REPLY
 *  and reads what the client sends back. The cases check that channel
 *  items reach the callback and the session in order (S91, S92), that a
 *  request is answered with its correlation id (S91), that a failing
 *  callback sends a close request (S93), that bad items are dropped, that
 *  respond and close refuse bad arguments, and that a REPLY with seq 0
 *  becomes a pool.closed event (S63-S64).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/internal.h"
#include "common/error.h"
#include "proto/proto.h"
#include "taskwheel/client.h"
#include "tests/unit/support/client.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Upper bound for anything that should happen; see test_client_api.c. */
#define WAIT_MS 30000

typedef struct {
    void *ctx, *router;
    char endpoint[256];
    char peer[256];
    size_t peer_len;
    tw_client_t *c;
    /* What the callbacks saw. */
    tw_chan_kind_t kinds[16];
    uint64_t crs[16];
    size_t lens[16];
    int n;
    int events[16];
    int nev;
    char closed_pool[64];
    int fail_on_msg;
    int respond;
} s_fx_t;

/* Receive one message from the client within WAIT_MS; its command, or
 * TW_CMD_NONE on timeout. *m holds it (release with tw_msg_release and
 * close *body). */
static tw_cmd_t
s_recv_any(s_fx_t *fx, tw_msg_t *m, zmq_msg_t *body)
{
    zmq_pollitem_t pi = {fx->router, 0, ZMQ_POLLIN, 0};
    for (int i = 0; i < WAIT_MS / 10; i++) {
        /* The client only sends from inside its own calls. */
        tw_client_poll(fx->c, 10);
        if (zmq_poll(&pi, 1, 0) > 0) {
            break;
        }
    }
    if (zmq_poll(&pi, 1, 0) <= 0) {
        return TW_CMD_NONE;
    }
    zmq_msg_t id, hdr;
    zmq_msg_init(&id);
    zmq_msg_init(&hdr);
    zmq_msg_init(body);
    assert_true(zmq_msg_recv(&id, fx->router, 0) >= 0);
    fx->peer_len = zmq_msg_size(&id);
    memcpy(fx->peer, zmq_msg_data(&id), fx->peer_len);
    assert_true(zmq_msg_recv(&hdr, fx->router, 0) >= 0);
    assert_true(zmq_msg_recv(body, fx->router, 0) >= 0);
    assert_int_equal(tw_msg_decode(m, zmq_msg_data(&hdr),
                                   zmq_msg_size(&hdr), zmq_msg_data(body),
                                   zmq_msg_size(body)),
                     0);
    zmq_msg_close(&id);
    zmq_msg_close(&hdr);
    return m->cmd;
}

/* s_recv_any, passing over the HEARTBEATs the client sends by itself
 * when the fake has been silent for a second, which a slow run makes
 * likely. */
static tw_cmd_t
s_recv(s_fx_t *fx, tw_msg_t *m, zmq_msg_t *body)
{
    for (;;) {
        tw_cmd_t cmd = s_recv_any(fx, m, body);
        if (cmd != TW_CMD_HEARTBEAT) {
            return cmd;
        }
        tw_msg_release(m);
        zmq_msg_close(body);
    }
}

/* Send the body encoded in `e` as `cmd` to the client. */
static void
s_send(s_fx_t *fx, tw_cmd_t cmd, tw_enc_t *e)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(cmd, hdr);
    assert_true(zmq_send(fx->router, fx->peer, fx->peer_len, ZMQ_SNDMORE) >=
                0);
    assert_true(zmq_send(fx->router, hdr, sizeof hdr, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(fx->router, e->sb.data, e->sb.size, 0) >= 0);
    tw_enc_clear(e);
}

static int
s_on_chan(void *arg, const tw_chan_msg_t *msg)
{
    s_fx_t *fx = arg;
    if (fx->n < 16) {
        fx->kinds[fx->n] = msg->kind;
        fx->crs[fx->n] = msg->cr;
        fx->lens[fx->n] = msg->len;
        fx->n++;
    }
    if (msg->kind == TW_CHAN_REQ && fx->respond) {
        assert_int_equal(tw_client_respond(fx->c, msg->id, msg->cr, "\xa2ok",
                                           3),
                         0);
    }
    return fx->fail_on_msg && msg->kind == TW_CHAN_MSG;
}

static void
s_on_event(void *arg, const tw_event_t *ev)
{
    s_fx_t *fx = arg;
    if (fx->nev < 16) {
        fx->events[fx->nev++] = (int)ev->kind;
    }
    if (ev->kind == TW_EV_POOL_CLOSED) {
        snprintf(fx->closed_pool, sizeof fx->closed_pool, "%s", ev->msg);
    }
    if (ev->kind >= TW_EV_COMM_OPEN && ev->kind <= TW_EV_COMM_CLOSE) {
        assert_non_null(ev->chan);
        assert_int_equal(ev->id, 7);
    }
}

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    fx->ctx = zmq_ctx_new();
    fx->router = zmq_socket(fx->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fx->router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(fx->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fx->endpoint;
    zmq_getsockopt(fx->router, ZMQ_LAST_ENDPOINT, fx->endpoint, &len);
    fx->c = tw_suite_client_new(fx->endpoint);
    assert_non_null(fx->c);
    tw_client_on_channel(fx->c, s_on_chan, fx);
    tw_client_on_event(fx->c, s_on_event, fx);
    /* A ping teaches the fake broker the client's routing id. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 0);
    assert_int_equal(tw__client_send(fx->c, &e, TW_CMD_HEARTBEAT), 0);
    tw_enc_free(&e);
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(s_recv_any(fx, &m, &body), TW_CMD_HEARTBEAT);
    tw_msg_release(&m);
    zmq_msg_close(&body);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    tw_client_destroy(&fx->c);
    zmq_close(fx->router);
    zmq_ctx_term(fx->ctx);
    free(fx);
    return 0;
}

/* Append item {id: 7, ev, cr?, d?} to a CHAN body begun by the caller. */
static void
s_item(tw_enc_t *e, const char *ev, uint64_t cr, const char *d, size_t dlen)
{
    tw_enc_map(e, 2 + (cr != 0) + (d != NULL));
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 7);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, ev);
    if (cr) {
        tw_enc_ikey(e, TW_I_CR);
        tw_enc_uint(e, cr);
    }
    if (d) {
        tw_enc_ikey(e, TW_I_D);
        tw_enc_bin(e, d, dlen);
    }
}

static void
s_items(tw_enc_t *e, size_t n)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, n);
}

/* S91, S92: items in order to the callback and as comm-* events; a
 * request is answered with its cr. */
static void
test_order_and_respond(void **state)
{
    s_fx_t *fx = *state;
    fx->respond = 1;
    tw_enc_t e;
    tw_enc_init(&e);
    s_items(&e, 4);
    s_item(&e, "open", 0, NULL, 0);
    s_item(&e, "msg", 0, "\x01", 1);
    s_item(&e, "req", 9, "\xa1?", 2);
    s_item(&e, "close", 0, NULL, 0);
    s_send(fx, TW_CMD_CHAN, &e);
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(s_recv(fx, &m, &body), TW_CMD_CHAN);
    assert_int_equal(m.nitems, 1);
    size_t len;
    const char *ev = tw_item_str(&m.items[0], TW_I_EV, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(ev, "resp", 4);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_CR, 0), 9);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_ID, 0), 7);
    const void *d = tw_item_bin(&m.items[0], TW_I_D, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "\xa2ok", 3);
    tw_msg_release(&m);
    zmq_msg_close(&body);
    assert_int_equal(fx->n, 4);
    assert_int_equal(fx->kinds[0], TW_CHAN_OPEN);
    assert_int_equal(fx->lens[0], 1); /* nil */
    assert_int_equal(fx->kinds[1], TW_CHAN_MSG);
    assert_int_equal(fx->kinds[2], TW_CHAN_REQ);
    assert_int_equal(fx->crs[2], 9);
    assert_int_equal(fx->kinds[3], TW_CHAN_CLOSE);
    assert_int_equal(fx->nev, 4);
    assert_int_equal(fx->events[0], TW_EV_COMM_OPEN);
    assert_int_equal(fx->events[1], TW_EV_COMM_MESSAGE);
    assert_int_equal(fx->events[2], TW_EV_COMM_REQUEST);
    assert_int_equal(fx->events[3], TW_EV_COMM_CLOSE);
    tw_enc_free(&e);
}

/* S93: a callback that fails makes the client send a close request. */
static void
test_failing_callback_closes(void **state)
{
    s_fx_t *fx = *state;
    fx->fail_on_msg = 1;
    tw_enc_t e;
    tw_enc_init(&e);
    s_items(&e, 1);
    s_item(&e, "msg", 0, "\x01", 1);
    s_send(fx, TW_CMD_CHAN, &e);
    tw_enc_free(&e);
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(s_recv(fx, &m, &body), TW_CMD_CHAN);
    size_t len;
    const char *ev = tw_item_str(&m.items[0], TW_I_EV, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(ev, "closereq", 8);
    assert_int_equal(tw_item_uint(&m.items[0], TW_I_ID, 0), 7);
    tw_msg_release(&m);
    zmq_msg_close(&body);
}

/* Unknown events, bad data and a request without cr are dropped; the
 * good item after them still arrives. */
static void
test_bad_items_dropped(void **state)
{
    s_fx_t *fx = *state;
    tw_enc_t e;
    tw_enc_init(&e);
    s_items(&e, 4);
    s_item(&e, "shout", 0, NULL, 0);
    s_item(&e, "msg", 0, "\x92\x01", 2); /* not one msgpack value */
    s_item(&e, "req", 0, "\x01", 1);     /* no cr */
    s_item(&e, "msg", 0, "\x02", 1);
    s_send(fx, TW_CMD_CHAN, &e);
    tw_enc_free(&e);
    for (int i = 0; i < 100 && fx->n == 0; i++) {
        tw_client_poll(fx->c, 10);
    }
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->kinds[0], TW_CHAN_MSG);
}

static void
test_respond_arguments(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(tw_client_respond(fx->c, 7, 0, NULL, 0), TW_EINVAL);
    assert_int_equal(tw_client_respond(fx->c, 0, 1, NULL, 0), TW_EINVAL);
    assert_int_equal(tw_client_respond(fx->c, 7, 1, "\x92\x01", 2),
                     TW_EINVAL);
    assert_int_equal(tw_client_close_channel(fx->c, 0), TW_EINVAL);
    /* NULL data is nil. */
    assert_int_equal(tw_client_respond(fx->c, 7, 1, NULL, 0), 0);
    tw_msg_t m;
    zmq_msg_t body;
    assert_int_equal(s_recv(fx, &m, &body), TW_CMD_CHAN);
    size_t len;
    const void *d = tw_item_bin(&m.items[0], TW_I_D, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(d, "\xc0", 1);
    tw_msg_release(&m);
    zmq_msg_close(&body);
}

/* S63-S64: a REPLY with seq 0 is a broker event, never a request's
 * answer: pool.closed reaches the client-level callback. */
static void
test_pool_closed_event(void **state)
{
    s_fx_t *fx = *state;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 0);
    tw_enc_key(&e, TW_F_DATA);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "event");
    tw_enc_cstr(&e, "pool.closed");
    tw_enc_cstr(&e, "pool");
    tw_enc_cstr(&e, "web");
    s_send(fx, TW_CMD_REPLY, &e);
    /* An event it does not know is ignored. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 0);
    tw_enc_key(&e, TW_F_DATA);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "event");
    tw_enc_cstr(&e, "pool.exploded");
    s_send(fx, TW_CMD_REPLY, &e);
    tw_enc_free(&e);
    for (int i = 0; i < 100 && fx->nev == 0; i++) {
        tw_client_poll(fx->c, 10);
    }
    tw_client_poll(fx->c, 50);
    assert_int_equal(fx->nev, 1);
    assert_int_equal(fx->events[0], TW_EV_POOL_CLOSED);
    assert_string_equal(fx->closed_pool, "web");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_respond, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_failing_callback_closes,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_items_dropped, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_respond_arguments, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pool_closed_event, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("client_chan", tests, NULL, NULL);
}
