/*  tests/integration/05-bad-input.c - garbage on both ROUTER sockets.
 *
 *  A raw DEALER sends, to the frontend and to the backend in turn: one
 *  frame of garbage, a short header, a good header with a garbage body, a
 *  body with trailing bytes, a wrong protocol version, an unknown command,
 *  a command that belongs to the other socket, and a message with a field
 *  of the wrong type. Each must be answered with ERROR carrying the
 *  documented code, and change nothing. Strings that are not clean text
 *  (broker/gate.h) are refused with EINVAL and the request's seq in any
 *  frontend message (a known field, under an unknown key) and in a HELLO,
 *  while control bytes in payloads pass. A frame larger than --max-msg makes
 *  libzmq drop that peer (no reply). A worker command from a peer that
 *  never said HELLO gets EWORKER. Oversized arguments are refused per item
 *  with E2BIG, arguments that are not one msgpack value with EINVAL.
 *  Through all of it a well-behaved client keeps being served,
 *  and the broker keeps running.
 */
#define _GNU_SOURCE
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <stdlib.h>

static const unsigned char s_hdr_submit[4] = {'T', 'W', 1, TW_CMD_SUBMIT};
static const unsigned char s_hdr_hello[4] = {'T', 'W', 1, TW_CMD_HELLO};

static void
s_expect_error(void *sock, int code)
{
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_ERROR, &msg, 5000);
    int64_t got = tw_msg_int(&msg.m, TW_F_CODE, 0);
    TW_H_ASSERT_MSG(got == code, "ERROR code %lld (%s), wanted %d (%s)",
                    (long long)got, tw_err_name((int)got), code,
                    tw_err_name(code));
    size_t len;
    TW_H_ASSERT(tw_msg_str(&msg.m, TW_F_MSG, &len) && len > 0);
    tw_h_msg_release(&msg);
}

/* The same battery against one socket; `own` is a valid header for a
 * command of this socket, `other` one for the other socket. */
static void
s_battery(void *sock, const unsigned char *own, const unsigned char *other)
{
    static const unsigned char empty_map = 0x80;
    static const unsigned char junk[] = {0xc1, 0xff, 0x00, 0x13};
    /* One frame only. */
    TW_H_ASSERT_OK(zmq_send(sock, "garbage", 7, 0) == 7 ? 0 : -1);
    s_expect_error(sock, TW_EPROTO);
    /* Short header. */
    TW_H_ASSERT_OK(tw_h_send_raw(sock, "TW", 2, &empty_map, 1));
    s_expect_error(sock, TW_EPROTO);
    /* Garbage body. */
    TW_H_ASSERT_OK(tw_h_send_raw(sock, own, 4, junk, sizeof junk));
    s_expect_error(sock, TW_EPROTO);
    /* A valid map followed by trailing bytes. */
    static const unsigned char trailing[] = {0x80, 0x01};
    TW_H_ASSERT_OK(tw_h_send_raw(sock, own, 4, trailing, sizeof trailing));
    s_expect_error(sock, TW_EPROTO);
    /* Truncated body: a map that announces one pair and stops. */
    static const unsigned char cut[] = {0x81, 0xa5, 'i', 't'};
    TW_H_ASSERT_OK(tw_h_send_raw(sock, own, 4, cut, sizeof cut));
    s_expect_error(sock, TW_EPROTO);
    /* Version 2. */
    unsigned char v2[4] = {'T', 'W', 2, own[3]};
    TW_H_ASSERT_OK(tw_h_send_raw(sock, v2, 4, &empty_map, 1));
    s_expect_error(sock, TW_EVERSION);
    /* Unknown command. */
    unsigned char unk[4] = {'T', 'W', 1, 200};
    TW_H_ASSERT_OK(tw_h_send_raw(sock, unk, 4, &empty_map, 1));
    s_expect_error(sock, TW_ECOMMAND);
    /* The other socket's command, well formed: */
    tw_enc_t e;
    tw_enc_init(&e);
    if (other[3] == TW_CMD_HELLO) {
        tw_enc_map(&e, 3);
        tw_enc_key(&e, TW_F_NAME);
        tw_enc_cstr(&e, "x");
        tw_enc_key(&e, TW_F_SLOTS);
        tw_enc_uint(&e, 1);
        tw_enc_key(&e, TW_F_HANDLERS);
        tw_enc_array(&e, 0);
        TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_HELLO, &e));
    } else {
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_ITEMS);
        tw_enc_array(&e, 0);
        TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_SUBMIT, &e));
    }
    s_expect_error(sock, TW_ECOMMAND);
    /* A required field of the wrong type ("items" as a string). */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_cstr(&e, "not an array");
    TW_H_ASSERT_OK(tw_h_send(sock, own[3], &e));
    s_expect_error(sock, TW_EPROTO);
    tw_enc_free(&e);
}

/* Expect ERROR `code` answering request `seq`. */
static void
s_expect_error_seq(void *sock, int code, uint64_t seq)
{
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_ERROR, &msg, 5000);
    TW_H_ASSERT_EQ(tw_msg_int(&msg.m, TW_F_CODE, 0), code);
    TW_H_ASSERT_EQ(tw_msg_uint(&msg.m, TW_F_SEQ, 0), seq);
    tw_h_msg_release(&msg);
}

/* Text that is not clean, on both sockets: 3 refusals. */
static void
s_unclean(void *front, void *back)
{
    tw_enc_t e;
    tw_enc_init(&e);
    /* A known field of a request: refused, with its seq. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 41);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "status\n");
    TW_H_ASSERT_OK(tw_h_send(front, TW_CMD_QUERY, &e));
    s_expect_error_seq(front, TW_EINVAL, 41);
    /* Under a key no version of the protocol knows, deep down. */
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 42);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "status");
    tw_enc_cstr(&e, "x-future");
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "\xe2\x80\xae" "evil");
    TW_H_ASSERT_OK(tw_h_send(front, TW_CMD_QUERY, &e));
    s_expect_error_seq(front, TW_EINVAL, 42);
    /* Control bytes in a payload are the task's business. */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 43);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "echo");
    tw_enc_ikey(&e, TW_I_A);
    tw_enc_bin(&e, "\xa3\n\x1b\x7f", 4); /* the str "\n\x1b\x7f" */
    TW_H_ASSERT_OK(tw_h_send(front, TW_CMD_SUBMIT, &e));
    tw_h_msg_t msg;
    tw_h_expect(front, TW_CMD_ACK, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 1);
    TW_H_ASSERT(tw_item_uint(&msg.m.items[0], TW_I_ID, 0) > 0);
    tw_h_msg_release(&msg);
    /* A HELLO with a tag that is not clean: refused (no seq there). */
    tw_enc_map(&e, 4);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "fine");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 0);
    tw_enc_key(&e, TW_F_TAGS);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "zone");
    tw_enc_cstr(&e, "eu\x1b]0;pwned\x07");
    TW_H_ASSERT_OK(tw_h_send(back, TW_CMD_HELLO, &e));
    s_expect_error_seq(back, TW_EINVAL, 0);
    /* Other backend messages are not looked at for text: this READY is
     * refused only because its sender never said HELLO. */
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 1);
    tw_enc_cstr(&e, "x-note\n");
    tw_enc_nil(&e);
    TW_H_ASSERT_OK(tw_h_send(back, TW_CMD_READY, &e));
    s_expect_error(back, TW_EWORKER);
    tw_enc_free(&e);
}

/* A well-behaved client still gets echo answered. */
static void
s_still_serving(const char *frontend)
{
    tw_client_t *c = tw_client_new(frontend);
    tw_h_track_results(c);
    static const unsigned char one = 0x01;
    tw_task_spec_t spec = {.handler = "echo", .args = &one, .args_len = 1};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));
    tw_result_t *r;
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(tw_h_result_int(r), 1);
    tw_result_free(&r);
    tw_client_destroy(&c);
}

int
main(void)
{
    tw_h_init("05-bad-input");
    tw_h_broker_t b;
    const char *limits[] = {"--max-msg", "65536", "--max-payload", "1000",
                            NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, limits));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));

    void *front = tw_h_dealer(b.frontend, "c-bad-client");
    void *back = tw_h_dealer(b.backend, "w-bad-worker");
    s_battery(front, s_hdr_submit, s_hdr_hello);
    s_still_serving(b.frontend);
    s_battery(back, s_hdr_hello, s_hdr_submit);
    s_still_serving(b.frontend);
    s_unclean(front, back);
    s_still_serving(b.frontend);

    /* A worker command before HELLO. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 5);
    TW_H_ASSERT_OK(tw_h_send(back, TW_CMD_READY, &e));
    s_expect_error(back, TW_EWORKER);

    /* Arguments over --max-payload: refused per item, E2BIG; arguments
     * that are not one msgpack value (an array short of an element, a
     * value with bytes after it): EINVAL (PROTOCOL.md 4.7). */
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 4);
    static unsigned char big[2000];
    static const unsigned char shortarr[2] = {0x92, 0x01};
    static const unsigned char trailing[2] = {0x01, 0x02};
    for (int i = 0; i < 4; i++) {
        tw_enc_map(&e, 3);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, (uint64_t)i + 1);
        tw_enc_ikey(&e, TW_I_H);
        tw_enc_cstr(&e, "noop");
        tw_enc_ikey(&e, TW_I_A);
        if (i == 0) {
            tw_enc_bin(&e, big, sizeof big);
        } else if (i == 1) {
            tw_enc_bin(&e, big, 1);
        } else {
            tw_enc_bin(&e, i == 2 ? shortarr : trailing, 2);
        }
    }
    TW_H_ASSERT_OK(tw_h_send(front, TW_CMD_SUBMIT, &e));
    tw_h_msg_t msg;
    tw_h_expect(front, TW_CMD_ACK, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 4);
    TW_H_ASSERT_EQ(tw_item_int(&msg.m.items[0], TW_I_CODE, 0), TW_E2BIG);
    TW_H_ASSERT(tw_item_uint(&msg.m.items[1], TW_I_ID, 0) > 0);
    TW_H_ASSERT_EQ(tw_item_int(&msg.m.items[2], TW_I_CODE, 0), TW_EINVAL);
    TW_H_ASSERT_EQ(tw_item_int(&msg.m.items[3], TW_I_CODE, 0), TW_EINVAL);
    size_t el;
    const char *etext = tw_item_str(&msg.m.items[2], TW_I_ERR, &el);
    TW_H_ASSERT(etext && el > 10 && memmem(etext, el, "msgpack", 7));
    tw_h_msg_release(&msg);

    /* A frame over --max-msg: libzmq drops the connection; no reply. */
    void *huge = tw_h_dealer(b.frontend, "c-huge");
    size_t hsz = 200000;
    unsigned char *hbody = calloc(1, hsz);
    TW_H_ASSERT_OK(tw_h_send_raw(huge, s_hdr_submit, 4, hbody, hsz));
    free(hbody);
    tw_h_msg_t none;
    TW_H_ASSERT_EQ(tw_h_recv(huge, &none, 1000), TW_ETIMEDOUT);
    zmq_close(huge);
    s_still_serving(b.frontend);

    long long malformed = 0;
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT_OK(tw_h_status_field(c, "malformed", &malformed));
    TW_H_ASSERT_EQ(malformed, 21);
    tw_client_destroy(&c);
    tw_enc_free(&e);
    zmq_close(front);
    zmq_close(back);
    TW_H_ASSERT(tw_h_alive(b.pid));
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("05-bad-input: ok\n");
    return 0;
}
