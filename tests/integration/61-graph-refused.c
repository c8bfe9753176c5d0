/*  tests/integration/61-graph-refused.c - a graph in one SUBMIT is
 *  admitted all or nothing (PROTOCOL.md 18.9).
 *
 *    - `taskwheel chain` with an unknown handler in its middle step exits
 *      1 naming it, and the broker's `submitted` count does not move:
 *      nothing of the chain was created; the same through
 *      tw_client_chord (TW_EHANDLER, the broker's reason in `err`);
 *    - raw SUBMITs: an `as` naming a later item, the item itself, or a
 *      seq not in the request is refused ENOENT; a seq used twice in a
 *      graph EINVAL; each time every item of the SUBMIT is refused, the
 *      others pointing at the bad one ("not submitted: item seq N of
 *      this graph was refused: ..."), and nothing is created;
 *    - a good raw graph is accepted whole and its items ACKed in order,
 *      and a later SUBMIT may name one of its items by seq (a resend may
 *      split a graph): that task runs once its parent ended;
 *    - usage errors of the CLI (no steps, --then in a chain, a chord
 *      without a callback, bad ARGS-JSON) exit 2 and submit nothing.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"
#include "taskwheel/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static tw_h_broker_t s_b;
static tw_client_t *s_c;
static char s_out[8192];

static int
s_cli(const char *const args[])
{
    return tw_h_cli(&s_b, args, s_out, sizeof s_out, NULL);
}

static long long
s_submitted(void)
{
    long long v = -1;
    TW_H_ASSERT_OK(tw_h_status_field(s_c, "submitted", &v));
    return v;
}

static void
s_cli_refused(void)
{
    long long before = s_submitted();
    int rc = s_cli(TW_H_ARGS("chain", "echo", "1", "--", "nosuch", "[2]",
                             "--", "echo", "[3]"));
    TW_H_ASSERT_MSG(rc == 1, "chain exited %d:\n%s", rc, s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "refused, nothing was submitted") &&
                        strstr(s_out, "unknown handler 'nosuch'"),
                    "chain said:\n%s", s_out);
    TW_H_ASSERT_EQ(s_submitted(), before);

    tw_task_spec_t head[2], cb;
    memset(head, 0, sizeof head);
    memset(&cb, 0, sizeof cb);
    head[0].handler = "echo";
    head[1].handler = "echo";
    cb.handler = "not-offered";
    uint64_t ids[3];
    char err[256];
    rc = tw_client_chord(s_c, head, 2, &cb, NULL, ids, 10000, err,
                         sizeof err);
    TW_H_ASSERT_MSG(rc == TW_EHANDLER, "chord gave %d (%s)", rc, err);
    TW_H_ASSERT_MSG(strstr(err, "unknown handler 'not-offered'"),
                    "err: %s", err);
    TW_H_ASSERT_EQ(ids[0], 0);
    TW_H_ASSERT_EQ(s_submitted(), before);
}

/* One raw SUBMIT item {seq, h: "echo"[, as: [..]]}. */
static void
s_item(tw_enc_t *e, uint64_t seq, const uint64_t *as, size_t nas)
{
    tw_enc_map(e, 2 + (nas > 0));
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "echo");
    if (nas) {
        tw_enc_ikey(e, TW_I_AS);
        tw_enc_array(e, nas);
        for (size_t i = 0; i < nas; i++) {
            tw_enc_uint(e, as[i]);
        }
    }
}

/* Send a graph of three items: seqs s[0..2], the second naming the
 * first, the last naming `as` (n); expect every item refused with `code`
 * (0: all accepted), item `bad` saying why and the others pointing at it. */
static void
s_raw(void *sock, const uint64_t s[3], const uint64_t *as, size_t n,
      int code, size_t bad, const char *bad_why)
{
    long long before = s_submitted();
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 3);
    s_item(&e, s[0], NULL, 0);
    uint64_t first = s[0];
    s_item(&e, s[1], &first, 1);
    s_item(&e, s[2], as, n);
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_SUBMIT, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_ACK, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 3);
    for (size_t i = 0; i < 3; i++) {
        const tw_item_t *it = &msg.m.items[i];
        TW_H_ASSERT_EQ(tw_item_uint(it, TW_I_SEQ, 0), s[i]);
        TW_H_ASSERT_EQ(tw_item_int(it, TW_I_CODE, 0), code);
        size_t len = 0;
        const char *err = tw_item_str(it, TW_I_ERR, &len);
        if (code == 0) {
            TW_H_ASSERT(tw_item_uint(it, TW_I_ID, 0) > 0);
            continue;
        }
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)len, err ? err : "");
        TW_H_ASSERT_MSG(strstr(buf, bad_why), "item %zu said: %s", i, buf);
        if (i != bad) {
            TW_H_ASSERT_MSG(strstr(buf, "not submitted: item seq"),
                            "item %zu said: %s", i, buf);
        }
    }
    tw_h_msg_release(&msg);
    TW_H_ASSERT_EQ(s_submitted(), before + (code == 0 ? 3 : 0));
}

static void
s_raw_refusals(void)
{
    void *sock = tw_h_dealer(s_b.frontend, "graph-raw");
    /* Not an earlier item: a later one, itself, none. */
    uint64_t s1[3] = {1, 2, 3}, later = 4;
    uint64_t s2[3] = {11, 12, 13}, self = 13;
    uint64_t s3[3] = {21, 22, 23}, none = 99;
    uint64_t s4[3] = {31, 31, 33}, ok = 31;
    uint64_t s5[3] = {41, 42, 43}, both[2] = {41, 42};
    s_raw(sock, s1, &later, 1, TW_ENOENT, 2,
          "as names seq 4, which is not an earlier item of this SUBMIT");
    s_raw(sock, s2, &self, 1, TW_ENOENT, 2, "as names seq 13");
    s_raw(sock, s3, &none, 1, TW_ENOENT, 2, "as names seq 99");
    s_raw(sock, s4, &ok, 1, TW_EINVAL, 1, "seq 31 appears twice");
    s_raw(sock, s5, both, 2, 0, 0, NULL);
    /* A later SUBMIT may name an item this client had accepted before
     * (what a resend after a reconnection splits off): seq 43 of the
     * graph just accepted. */
    long long before = s_submitted();
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    uint64_t prev = 43;
    s_item(&e, 44, &prev, 1);
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_SUBMIT, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_ACK, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 1);
    TW_H_ASSERT_EQ(tw_item_int(&msg.m.items[0], TW_I_CODE, 0), 0);
    uint64_t id = tw_item_uint(&msg.m.items[0], TW_I_ID, 0);
    tw_h_msg_release(&msg);
    TW_H_ASSERT(id > 0);
    TW_H_ASSERT_EQ(s_submitted(), before + 1);
    TW_H_ASSERT_OK(tw_h_wait_state(s_c, id, TW_ST_OK, 30000));
    zmq_close(sock);
}

static void
s_usage(void)
{
    long long before = s_submitted();
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chain", "echo", "1")), 2);
    TW_H_ASSERT_MSG(strstr(s_out, "at least two steps"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chain", "echo", "--then", "echo")), 2);
    TW_H_ASSERT_MSG(strstr(s_out, "for chords only"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chord", "echo", "--", "echo")), 2);
    TW_H_ASSERT_MSG(strstr(s_out, "--then and ONE callback"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chain", "echo", "--", "--", "echo")), 2);
    TW_H_ASSERT_MSG(strstr(s_out, "an empty step"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chain", "echo", "[1", "--", "echo")), 2);
    TW_H_ASSERT_MSG(strstr(s_out, "not valid JSON"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("chain", "echo", "1", "2", "--", "echo")),
                   2);
    TW_H_ASSERT_MSG(strstr(s_out, "separate steps with --"), "%s", s_out);
    TW_H_ASSERT_EQ(s_submitted(), before);
}

int
main(void)
{
    tw_h_init("61-graph-refused");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&s_b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    s_c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(s_c);

    s_cli_refused();
    s_raw_refusals();
    s_usage();

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    printf("61-graph-refused: ok\n");
    return 0;
}
