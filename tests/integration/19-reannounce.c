/*  tests/integration/19-reannounce.c - a long task survives a broker
 *  restart and a network cut without running twice.
 *
 *  The task is `exec sh -c 'echo start >> FILE; sleep 3; echo finished'`,
 *  so every run leaves one line in FILE: the test counts runs, not only
 *  outcomes. The worker has free slots throughout, so a task the broker
 *  requeued instead of adopting would visibly run a second time there.
 *
 *  A. Broker restart: while the task runs, the broker (--data,
 *     --fsync always) is SIGKILLed and restarted on the same store. It
 *     recovers the task as running and holds it; the worker reconnects and
 *     re-announces it in HELLO ({id, at, ep}); the broker adopts it. The
 *     task completes ok, FILE has one line, status "adopted" counts it.
 *  B. Network cut: the worker is stopped (SIGSTOP) for longer than the
 *     broker's liveness timeout, so the broker declares it dead and
 *     requeues its task; on SIGCONT the worker (which kept the task
 *     running in its child) registers again and re-announces it; the
 *     task, still pending with the same dispatch epoch, is adopted rather
 *     than started again. One line in FILE, outcome ok.
 *  C. (first) The same rules byte for byte with a raw worker: see
 *     s_leases.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

/* Lines in `path` (0 if it does not exist). */
static int
s_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) {
        n += ch == '\n';
    }
    fclose(f);
    return n;
}

static uint64_t s_acked;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    (void)arg;
    s_acked = ack->err ? 0 : ack->id;
}

/* Submit the marker task writing to `path`; returns its id. */
static uint64_t
s_submit_marker(tw_client_t *c, const char *path)
{
    char script[600];
    snprintf(script, sizeof script,
             "echo start >> '%s'; sleep 3; echo finished", path);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sh", 2);
    msgpack_pack_str_with_body(&pk, "-c", 2);
    msgpack_pack_str_with_body(&pk, script, strlen(script));
    tw_task_spec_t spec = {.handler = "exec", .args = sb.data,
                           .args_len = sb.size};
    uint64_t seq;
    s_acked = 0;
    tw_client_on_ack(c, s_on_ack, NULL);
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&sb);
    uint64_t until = tw_h_now_ms() + 5000;
    while (!s_acked && tw_h_now_ms() < until) {
        tw_client_poll(c, 50);
    }
    uint64_t id = s_acked;
    TW_H_ASSERT(id > 0);
    /* Wait until it runs. */
    uint64_t end = tw_h_now_ms() + 5000;
    while (s_lines(path) == 0 && tw_h_now_ms() < end) {
        tw_h_sleep_ms(10);
    }
    TW_H_ASSERT_EQ(s_lines(path), 1);
    return id;
}

static void
s_expect_once(const tw_h_broker_t *b, uint64_t id, const char *path)
{
    tw_client_t *c = tw_client_new(b->frontend);
    TW_H_ASSERT(c);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, TW_ST_OK, 15000));
    /* A window past the grace period (2 x liveness x heartbeat = 1.2 s)
     * in which a requeued copy would run: it must not. */
    tw_h_sleep_ms(2000);
    TW_H_ASSERT_MSG(s_lines(path) == 1, "the task ran %d times",
                    s_lines(path));
    long long adopted = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "adopted", &adopted));
    TW_H_ASSERT(adopted >= 1);
    tw_client_destroy(&c);
}

static void
s_restart(void)
{
    static const char *const bargs[] = {"--fsync", "always", "--heartbeat",
                                        "200", NULL};
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    pid_t w = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 5000));
    char path[600];
    snprintf(path, sizeof path, "%s/runs-a", tw_h_tmpdir());
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    uint64_t id = s_submit_marker(c, path);
    tw_client_destroy(&c);
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(b.pid, 5000) >= 0);
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    s_expect_once(&b, id, path);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "re-announced 1 running task(s): "
                                         "1 adopted"));
    printf("19: task %llu survived a broker restart and ran once\n",
           (unsigned long long)id);
    tw_h_stop(w);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

static void
s_cut(void)
{
    static const char *const bargs[] = {"--heartbeat", "200", NULL};
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    pid_t w = tw_h_start_worker(&b, 4, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 5000));
    char path[600];
    snprintf(path, sizeof path, "%s/runs-b", tw_h_tmpdir());
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    uint64_t id = s_submit_marker(c, path);
    TW_H_ASSERT_OK(tw_h_kill(w, SIGSTOP));
    /* Frozen until the broker has given up on it (after 600 ms). */
    TW_H_ASSERT_OK(tw_h_wait_log(b.pid, "missed heartbeats", 15000));
    TW_H_ASSERT_OK(tw_h_kill(w, SIGCONT));
    tw_client_destroy(&c);
    s_expect_once(&b, id, path);
    printf("19: task %llu survived a cut of its worker and ran once\n",
           (unsigned long long)id);
    tw_h_stop(w);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

/* HELLO from the raw worker `sock`, with `n` re-announced items, then
 * expect WELCOME and send READY with `credit`. */
static void
s_raw_hello(void *sock, const uint64_t *ids, const uint64_t *eps, int n,
            uint64_t credit)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3 + (n > 0));
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "raw");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 4);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "echo");
    if (n > 0) {
        tw_enc_key(&e, TW_F_ITEMS);
        tw_enc_array(&e, (size_t)n);
        for (int i = 0; i < n; i++) {
            tw_enc_map(&e, 2);
            tw_enc_ikey(&e, TW_I_ID);
            tw_enc_uint(&e, ids[i]);
            tw_enc_ikey(&e, TW_I_EP);
            tw_enc_uint(&e, eps[i]);
        }
    }
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_HELLO, &e));
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_WELCOME, &msg, 5000);
    tw_h_msg_release(&msg);
    if (credit) {
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_CREDIT);
        tw_enc_uint(&e, credit);
        TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_READY, &e));
    }
    tw_enc_free(&e);
}

/* Expect one TASKS item; returns its id and sets *ep. */
static uint64_t
s_raw_task(void *sock, uint64_t *ep)
{
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_TASKS, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, 1);
    uint64_t id = tw_item_uint(&msg.m.items[0], TW_I_ID, 0);
    *ep = tw_item_uint(&msg.m.items[0], TW_I_EP, 0);
    tw_h_msg_release(&msg);
    TW_H_ASSERT(id > 0 && *ep > 0);
    return id;
}

/* DONE {id, st 0, r, ep?} from the raw worker (ep 0: left out). */
static void
s_raw_done(void *sock, uint64_t id, uint64_t ep)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 3 + (ep != 0));
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, id);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, TW_ST_OK);
    tw_enc_ikey(&e, TW_I_R);
    tw_enc_bin(&e, "\x07", 1);
    if (ep) {
        tw_enc_ikey(&e, TW_I_EP);
        tw_enc_uint(&e, ep);
    }
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_uint(&e, 1);
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_DONE, &e));
    tw_enc_free(&e);
}

/* C. Leases on the wire, with a raw worker: every dispatch carries a new
 * ep; a re-HELLO that does not re-announce a task gets it requeued and
 * sent again with a new ep; a DONE with the old ep is refused and counted
 * (stale_done), never applied; the new ep's DONE ends it; a DONE without
 * ep (an older worker) is judged as before. And a SUBMIT item resent with
 * the same seq is answered with the same id (exactly-once enqueue). */
static void
s_leases(void)
{
    static const char *const bargs[] = {"--heartbeat", "1000", NULL};
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, bargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 5000));
    void *wk = tw_h_dealer(b.backend, "w-raw-19");
    s_raw_hello(wk, NULL, NULL, 0, 1);
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    tw_task_spec_t spec = {.handler = "echo", .args = "\x07",
                           .args_len = 1};
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    TW_H_ASSERT_OK(tw_client_flush(c));
    uint64_t ep1, ep2;
    uint64_t id = s_raw_task(wk, &ep1);
    /* Registers again without re-announcing it: requeued, sent again. */
    s_raw_hello(wk, NULL, NULL, 0, 1);
    TW_H_ASSERT_EQ(s_raw_task(wk, &ep2), id);
    TW_H_ASSERT(ep2 > ep1);
    s_raw_done(wk, id, ep1); /* the lost dispatch's late outcome */
    long long stale = 0, completed = 0;
    /* The DONE travels on another socket than the status query: poll. */
    uint64_t until = tw_h_now_ms() + 5000;
    while (stale == 0 && tw_h_now_ms() < until) {
        TW_H_ASSERT_OK(tw_h_status_field(c, "stale_done", &stale));
        if (!stale) {
            tw_h_sleep_ms(10);
        }
    }
    TW_H_ASSERT_EQ(stale, 1);
    TW_H_ASSERT_OK(tw_h_status_field(c, "completed", &completed));
    TW_H_ASSERT_EQ(completed, 0);
    s_raw_done(wk, id, ep2);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, TW_ST_OK, 5000));
    /* An older worker sends no ep: accepted as before. */
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    TW_H_ASSERT_OK(tw_client_flush(c));
    uint64_t id2 = s_raw_task(wk, &ep1);
    s_raw_done(wk, id2, 0);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id2, TW_ST_OK, 5000));
    /* A re-announce with a wrong ep is not adopted but cancelled. */
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    TW_H_ASSERT_OK(tw_client_flush(c));
    uint64_t id3 = s_raw_task(wk, &ep1);
    uint64_t wrong = ep1 + 1000;
    s_raw_hello(wk, &id3, &wrong, 1, 0);
    tw_h_msg_t msg;
    tw_h_expect(wk, TW_CMD_CANCEL, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.f[TW_F_IDS]->via.array.ptr[0].via.u64, id3);
    tw_h_msg_release(&msg);
    /* ...and with the right one it is adopted: no TASKS, its DONE ends
     * it. */
    uint64_t ep3;
    s_raw_hello(wk, NULL, NULL, 0, 1);
    TW_H_ASSERT_EQ(s_raw_task(wk, &ep3), id3); /* requeued by that HELLO */
    s_raw_hello(wk, &id3, &ep3, 1, 1);
    TW_H_ASSERT_EQ(tw_h_recv(wk, &msg, 300), TW_ETIMEDOUT);
    s_raw_done(wk, id3, ep3);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id3, TW_ST_OK, 5000));
    long long adopted = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "adopted", &adopted));
    TW_H_ASSERT_EQ(adopted, 1);

    /* Exactly-once enqueue: the same SUBMIT twice from one identity. */
    void *cl = tw_h_dealer(b.frontend, "c-raw-19");
    uint64_t ids[2];
    for (int k = 0; k < 2; k++) {
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_ITEMS);
        tw_enc_array(&e, 1);
        tw_enc_map(&e, 3);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, 77);
        tw_enc_ikey(&e, TW_I_H);
        tw_enc_cstr(&e, "echo");
        tw_enc_ikey(&e, TW_I_A);
        tw_enc_bin(&e, "\x2a", 1);
        TW_H_ASSERT_OK(tw_h_send(cl, TW_CMD_SUBMIT, &e));
        tw_enc_free(&e);
        tw_h_expect(cl, TW_CMD_ACK, &msg, 5000);
        ids[k] = tw_item_uint(&msg.m.items[0], TW_I_ID, 0);
        tw_h_msg_release(&msg);
    }
    TW_H_ASSERT(ids[0] > 0);
    TW_H_ASSERT_EQ(ids[1], ids[0]);
    long long resub = 0, submitted = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "resubmitted", &resub));
    TW_H_ASSERT_EQ(resub, 1);
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &submitted));
    TW_H_ASSERT_EQ(submitted, 4);
    printf("19: leases: a stale DONE refused, an ep-less DONE accepted, a "
           "wrong-ep re-announce cancelled, a right one adopted; a resent "
           "SUBMIT got id %llu again\n", (unsigned long long)ids[0]);
    zmq_close(cl);
    zmq_close(wk);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
}

int
main(void)
{
    tw_h_init("19-reannounce");
    s_leases();
    s_restart();
    s_cut();
    return 0;
}
