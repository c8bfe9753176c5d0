/*  tests/fault/05-bad-peer.c - garbage and overload at the broker's door:
 *  refused with a clear error, bounded, and counted.
 *
 *    quarantine   a peer sending nothing but garbage gets exactly 100
 *                 ERROR replies (one per message, 100 strikes in 10 s),
 *                 then nothing: the rest is dropped unread and counted in
 *                 "quarantined", and the broker logs it once, not per
 *                 message. A well-behaved client is served throughout.
 *    unroutable   an outcome pushed to a client that went away is counted
 *                 in "unroutable" (ROUTER_MANDATORY), not silently lost.
 *    max-queue    past --max-queue pending tasks, SUBMIT items get EFULL
 *                 with a message, counted in "overflow".
 *    max-stations past --max-stations, STATION add gets EFULL.
 *    n2s-backlog  past --n2s-backlog queued messages, STATION send gets
 *                 EFULL (n2s_dropped).
 *    max-msg      a frame over --max-msg on the backend makes libzmq drop
 *                 that peer: no reply, and nothing else is disturbed
 *                 (05-bad-input checks the frontend).
 */
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <stdlib.h>
#include <zmq.h>

/* Count ERROR replies on `sock` until none comes for quiet_ms. */
static int
s_count_errors(void *sock, int quiet_ms)
{
    int n = 0;
    tw_h_msg_t msg;
    while (tw_h_recv(sock, &msg, quiet_ms) != TW_ETIMEDOUT) {
        if (msg.decoded && msg.m.cmd == TW_CMD_ERROR) {
            n++;
        }
        tw_h_msg_release(&msg);
    }
    return n;
}

/* Lines of `pid`'s log that contain `text`. */
static int
s_log_count(pid_t pid, const char *text)
{
    FILE *fp = fopen(tw_h_log_path(pid), "r");
    TW_H_ASSERT(fp != NULL);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        n += strstr(line, text) != NULL;
    }
    fclose(fp);
    return n;
}

static int
s_station(tw_client_t *c, const char *op, const char *sid,
          const void *payload, size_t plen)
{
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    tw_station_req_t req = {.op = op,
                            .sid = sid,
                            .handler = "incr",
                            .args = zero,
                            .args_len = zl,
                            .next = "result",
                            .payload = payload,
                            .payload_len = plen};
    if (strcmp(op, "send") == 0) {
        req.handler = NULL;
        req.args = NULL;
        req.next = NULL;
    }
    return tw_client_station(c, &req, 5000, NULL, NULL);
}

static void
s_quarantine(const tw_h_broker_t *b, tw_client_t *c)
{
    void *bad = tw_h_dealer(b->frontend, "c-garbage");
    static const unsigned char junk[] = {0xc1, 0xff, 0x00, 0x13};
    for (int i = 0; i < 150; i++) {
        TW_H_ASSERT_OK(tw_h_send_raw(bad, "TW", 2, junk, sizeof junk));
    }
    int errors = s_count_errors(bad, 1000);
    printf("bad-peer: 150 garbage messages, %d ERROR replies\n", errors);
    TW_H_ASSERT_EQ(errors, 100);
    /* Held: even a good message goes unanswered now. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 0);
    TW_H_ASSERT_OK(tw_h_send(bad, TW_CMD_HEARTBEAT, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    TW_H_ASSERT_EQ(tw_h_recv(bad, &msg, 500), TW_ETIMEDOUT);
    tw_h_msg_release(&msg);
    zmq_close(bad);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "quarantined"), 51);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "quarantined_peers"), 1);
    TW_H_ASSERT_EQ(s_log_count(b->pid, "input.quarantine"), 1);
    /* Others are served. */
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
}

static void
s_max_msg(const tw_h_broker_t *b, tw_client_t *c)
{
    static const unsigned char hello[4] = {'T', 'W', 1, TW_CMD_HELLO};
    void *huge = tw_h_dealer(b->backend, "w-huge");
    size_t hsz = 200000;
    unsigned char *body = calloc(1, hsz);
    TW_H_ASSERT(body != NULL);
    body[0] = 0x80;
    TW_H_ASSERT_OK(tw_h_send_raw(huge, hello, 4, body, hsz));
    free(body);
    tw_h_msg_t none;
    TW_H_ASSERT_EQ(tw_h_recv(huge, &none, 1000), TW_ETIMEDOUT);
    tw_h_msg_release(&none);
    zmq_close(huge);
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    printf("bad-peer: a %zu-byte frame on the backend dropped its peer\n",
           hsz);
}

static void
s_unroutable(const tw_h_broker_t *b, tw_client_t *c)
{
    long long before = tw_fault_stat(c, "unroutable");
    void *gone = tw_h_dealer(b->frontend, "c-gone");
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 0.3);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 3);
    tw_enc_ikey(&e, TW_I_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_ikey(&e, TW_I_H);
    tw_enc_cstr(&e, "sleep");
    tw_enc_ikey(&e, TW_I_A);
    tw_enc_bin(&e, secs, sl);
    TW_H_ASSERT_OK(tw_h_send(gone, TW_CMD_SUBMIT, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    tw_h_expect(gone, TW_CMD_ACK, &msg, 5000);
    tw_h_msg_release(&msg);
    zmq_close(gone);
    uint64_t end = tw_h_now_ms() + 5000;
    long long unroutable = before;
    while (unroutable == before && tw_h_now_ms() < end) {
        tw_h_sleep_ms(50);
        unroutable = tw_fault_stat(c, "unroutable");
    }
    printf("bad-peer: a push to a departed client counted: unroutable "
           "%lld -> %lld\n", before, unroutable);
    TW_H_ASSERT(unroutable > before);
}

static void
s_overflow(tw_client_t *c)
{
    static tw_fault_t f;
    tw_fault_init(&f, "overflow", c, 1000);
    unsigned char secs[9];
    size_t sl = tw_fault_pack_double(secs, 30);
    tw_task_spec_t spec = {.handler = "sleep", .args = secs,
                           .args_len = sl};
    tw_fault_submit(&f, c, &spec, 60);
    uint64_t end = tw_h_now_ms() + 5000;
    size_t refused = 0;
    while (tw_h_now_ms() < end) {
        tw_client_poll(c, 20);
        refused = 0;
        for (size_t i = 0; i < f.submitted; i++) {
            refused += f.refused[f.seqs[i]];
        }
        if (tw_fault_acked(&f) + refused == 60) {
            break;
        }
    }
    printf("bad-peer: 60 submitted over --max-queue 50 with one slot: %zu "
           "acked, %zu refused\n", tw_fault_acked(&f), refused);
    /* One SUBMIT: every item is checked before the turn's dispatch. */
    TW_H_ASSERT_EQ(tw_fault_acked(&f), 50);
    TW_H_ASSERT_EQ(refused, 10);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "overflow"), 10);
    tw_fault_free(&f);
    tw_client_on_ack(c, NULL, NULL);
    tw_client_on_result(c, NULL, NULL);
}

int
main(void)
{
    tw_h_init("fault-bad-peer");
    tw_h_broker_t b;
    const char *opts[] = {"--max-queue", "50", "--max-stations", "3",
                          "--n2s-backlog", "2", "--max-msg", "65536",
                          NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c != NULL);

    s_quarantine(&b, c);
    s_max_msg(&b, c);

    /* One worker with one slot, for the pushes and the queue. */
    TW_H_ASSERT(tw_h_start_worker(&b, 1, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    s_unroutable(&b, c);
    s_overflow(c);

    /* Stations: the worker's one slot is busy, so they stay pending and
     * their n2s messages queue in the broker. */
    TW_H_ASSERT_OK(s_station(c, "add", "s-1", NULL, 0));
    TW_H_ASSERT_OK(s_station(c, "add", "s-2", NULL, 0));
    TW_H_ASSERT_OK(s_station(c, "add", "s-3", NULL, 0));
    TW_H_ASSERT_EQ(s_station(c, "add", "s-4", NULL, 0), TW_EFULL);
    printf("bad-peer: 4th station refused: %s\n", tw_client_last_error(c));
    TW_H_ASSERT(strstr(tw_client_last_error(c), "max-stations") != NULL);
    static const unsigned char one = 0x01;
    TW_H_ASSERT_OK(s_station(c, "send", "s-1", &one, 1));
    TW_H_ASSERT_OK(s_station(c, "send", "s-1", &one, 1));
    TW_H_ASSERT_EQ(s_station(c, "send", "s-1", &one, 1), TW_EFULL);
    printf("bad-peer: 3rd n2s message refused: %s\n",
           tw_client_last_error(c));
    TW_H_ASSERT_EQ(tw_fault_stat(c, "n2s_dropped"), 1);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
