/*  tests/integration/10-pools.c - pools and groups enforced by the broker.
 *
 *  Spoken on the wire by a raw DEALER (GROUP, POOL, SUBMIT and CANCEL are
 *  plain requests), against a real broker and three real workers of four
 *  slots each, while a SUB socket records every task and group event:
 *   - a group limited to 3 never has more than 3 tasks running, counted
 *     from task.started / task.done on the status socket, not from sleeps
 *     (S51, S98, F3 "at most k running" across the cluster);
 *   - a full "reject" group refuses at submission and changes nothing,
 *     a "queue" group makes tasks wait (S99, S49);
 *   - a group's calls cap refuses past its count (S89);
 *   - stop n cancels the most recently started tasks first (S67);
 *   - strict cancel is all-or-nothing with AlreadyEnded / InvalidTaskID
 *     (S56), and a running exec child is killed (S57);
 *   - retries wait with backoff and keep each attempt's error, and each
 *     retried attempt is published as task.retry;
 *   - a dedup key returns the first task's id;
 *   - events come in S73's order: done then result, done then exception,
 *     and a cancelled task publishes cancelled then done (S47-S48, F3).
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"

#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *s_sock;
static void *s_sub;
static uint64_t s_seq = 1000;

/* ---- wire ---------------------------------------------------------- */

/* Send a request built in `e` as `cmd` and wait for the REPLY or ERROR
 * with its seq. Returns 0 (REPLY, *out holds it) or the ERROR's code. */
static int
s_request(tw_cmd_t cmd, tw_enc_t *e, tw_h_msg_t *out)
{
    TW_H_ASSERT_OK(tw_h_send(s_sock, cmd, e));
    for (;;) {
        tw_h_msg_t msg;
        TW_H_ASSERT_OK(tw_h_recv(s_sock, &msg, 5000));
        if (msg.m.cmd == TW_CMD_REPLY || msg.m.cmd == TW_CMD_ERROR) {
            if (tw_msg_uint(&msg.m, TW_F_SEQ, 0) == s_seq) {
                if (msg.m.cmd == TW_CMD_ERROR) {
                    int code = (int)tw_msg_int(&msg.m, TW_F_CODE, 0);
                    tw_h_msg_release(&msg);
                    return code;
                }
                *out = msg;
                return 0;
            }
        }
        tw_h_msg_release(&msg);
    }
}

/* Start the body of a request with an "op": a map of `nfields` more
 * fields after a fresh seq and the op. */
static void
s_op_head(tw_enc_t *e, const char *op, uint32_t nfields)
{
    tw_enc_map(e, 2 + nfields);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, ++s_seq);
    tw_enc_key(e, TW_F_OP);
    tw_enc_cstr(e, op);
}

/* A strict CANCEL of the `n` tasks `ids`: s_request's answer. */
static int
s_strict_cancel(const uint64_t *ids, uint32_t n, tw_h_msg_t *out)
{
    tw_enc_t e;
    tw_enc_init(&e);
    s_op_head(&e, "strict", 1);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, n);
    for (uint32_t i = 0; i < n; i++) {
        tw_enc_uint(&e, ids[i]);
    }
    int rc = s_request(TW_CMD_CANCEL, &e, out);
    tw_enc_free(&e);
    return rc;
}

/* GROUP op on group `g` of the default pool; limit < -1 means "leave out". */
static int
s_group(const char *op, const char *g, long long limit, const char *full,
        long long calls)
{
    tw_enc_t e;
    tw_enc_init(&e);
    s_op_head(&e, op, 1 + (limit >= -1) + (full != NULL) + (calls > 0));
    tw_enc_key(&e, TW_F_GROUP);
    tw_enc_cstr(&e, g);
    if (limit >= -1) {
        tw_enc_key(&e, TW_F_LIMIT);
        tw_enc_int(&e, limit);
    }
    if (full) {
        tw_enc_key(&e, TW_F_FULL);
        tw_enc_cstr(&e, full);
    }
    if (calls > 0) {
        tw_enc_key(&e, TW_F_CALLS);
        tw_enc_int(&e, calls);
    }
    tw_h_msg_t msg;
    int rc = s_request(TW_CMD_GROUP, &e, &msg);
    if (rc == 0) {
        tw_h_msg_release(&msg);
    }
    tw_enc_free(&e);
    return rc;
}

/* Submit n tasks of `handler` with msgpack args in group g (NULL: none);
 * ids[] receive the ids (0 for a refused item, *codes its code). */
static void
s_submit(int n, const char *handler, const void *a, size_t alen,
         const char *g, uint32_t retries, const char *key, uint64_t *ids,
         int *codes)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, (size_t)n);
    for (int i = 0; i < n; i++) {
        tw_enc_map(&e, 3 + (g != NULL) + (retries > 0) + (key != NULL));
        /* Unique per submission: the broker takes a repeated seq with
         * the same content for a resend (PROTOCOL.md section 7). */
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, ++s_seq);
        tw_enc_ikey(&e, TW_I_H);
        tw_enc_cstr(&e, handler);
        tw_enc_ikey(&e, TW_I_A);
        tw_enc_bin(&e, a, alen);
        if (g) {
            tw_enc_ikey(&e, TW_I_G);
            tw_enc_array(&e, 1);
            tw_enc_cstr(&e, g);
        }
        if (retries) {
            tw_enc_ikey(&e, TW_I_RE);
            tw_enc_uint(&e, retries);
        }
        if (key) {
            tw_enc_ikey(&e, TW_I_K);
            tw_enc_cstr(&e, key);
        }
    }
    TW_H_ASSERT_OK(tw_h_send(s_sock, TW_CMD_SUBMIT, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    tw_h_expect(s_sock, TW_CMD_ACK, &msg, 5000);
    TW_H_ASSERT_EQ(msg.m.nitems, n);
    for (int i = 0; i < n; i++) {
        ids[i] = tw_item_uint(&msg.m.items[i], TW_I_ID, 0);
        if (codes) {
            codes[i] = (int)tw_item_int(&msg.m.items[i], TW_I_CODE, 0);
        }
    }
    tw_h_msg_release(&msg);
}

/* ---- the event log ----------------------------------------------------- */

typedef struct {
    char topic[64];
    uint64_t id;
} s_event_t;

static s_event_t s_log[20000];
static size_t s_nlog;

/* Drain the SUB socket into the log for up to ms milliseconds, or until
 * `until` (a topic) has been seen for task `id` (id 0: any). */
static void
s_collect(int ms, const char *until, uint64_t id)
{
    uint64_t end = tw_h_now_ms() + (uint64_t)ms;
    while (tw_h_now_ms() < end) {
        zmq_pollitem_t pi = {s_sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 20) != 1) {
            continue;
        }
        tw_zframes_t f;
        TW_H_ASSERT_OK(tw_zrecv_frames(s_sub, &f, 0));
        s_event_t *ev = &s_log[s_nlog < 20000 ? s_nlog++ : 19999];
        size_t tl = zmq_msg_size(&f.f[0]);
        snprintf(ev->topic, sizeof ev->topic, "%.*s", (int)tl,
                 (char *)zmq_msg_data(&f.f[0]));
        ev->id = 0;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, zmq_msg_data(&f.f[1]),
                                zmq_msg_size(&f.f[1]), NULL) ==
            MSGPACK_UNPACK_SUCCESS) {
            for (uint32_t k = 0; k < up.data.via.map.size; k++) {
                msgpack_object *key = &up.data.via.map.ptr[k].key;
                if (key->via.str.size == 2 &&
                    !memcmp(key->via.str.ptr, "id", 2)) {
                    ev->id = up.data.via.map.ptr[k].val.via.u64;
                }
            }
        }
        msgpack_unpacked_destroy(&up);
        tw_zframes_close(&f);
        if (until && strcmp(ev->topic, until) == 0 &&
            (!id || ev->id == id)) {
            return;
        }
    }
}

/* The topics logged for task `id`, in order, joined by spaces. */
static const char *
s_topics_of(uint64_t id)
{
    static char buf[512];
    buf[0] = '\0';
    for (size_t i = 0; i < s_nlog; i++) {
        if (s_log[i].id == id && strncmp(s_log[i].topic, "task.", 5) == 0 &&
            strcmp(s_log[i].topic, "task.submitted") != 0 &&
            strcmp(s_log[i].topic, "task.started") != 0) {
            strncat(buf, s_log[i].topic + 5, sizeof buf - strlen(buf) - 2);
            strcat(buf, " ");
        }
    }
    return buf;
}

/* ---- scenarios ----------------------------------------------------------- */

static const unsigned char s_sleep02[] = {0xcb, 0x3f, 0xc9, 0x99, 0x99,
                                          0x99, 0x99, 0x99, 0x9a}; /* 0.2 */

static void
s_limit_never_exceeded(void)
{
    TW_H_ASSERT_OK(s_group("create", "lim", 3, NULL, 0));
    TW_H_ASSERT_EQ(s_group("create", "lim", 3, NULL, 0), TW_EEXIST);
    static uint64_t ids[30];
    s_nlog = 0;
    s_submit(30, "sleep", s_sleep02, sizeof s_sleep02, "lim", 0, NULL, ids,
             NULL);
    /* Replay the event stream: running = started - done for our ids. */
    int running = 0, max = 0, done = 0;
    uint64_t end = tw_h_now_ms() + 20000;
    size_t seen = 0;
    while (done < 30 && tw_h_now_ms() < end) {
        s_collect(100, NULL, 0);
        for (; seen < s_nlog; seen++) {
            uint64_t id = s_log[seen].id;
            if (id < ids[0] || id > ids[29]) {
                continue;
            }
            if (!strcmp(s_log[seen].topic, "task.started")) {
                running++;
                max = running > max ? running : max;
            } else if (!strcmp(s_log[seen].topic, "task.done")) {
                running--;
                done++;
            }
        }
    }
    TW_H_ASSERT_EQ(done, 30);
    TW_H_ASSERT_MSG(max == 3, "at most 3 running at once, saw %d", max);
    printf("10: limit 3 over 12 slots: max running %d\n", max);
}

static void
s_reject_and_calls(void)
{
    TW_H_ASSERT_OK(s_group("create", "rej", 1, "reject", 0));
    uint64_t ids[3];
    int codes[3];
    s_submit(3, "sleep", s_sleep02, sizeof s_sleep02, "rej", 0, NULL, ids,
             codes);
    TW_H_ASSERT(ids[0] > 0 && codes[0] == 0);
    TW_H_ASSERT_EQ(codes[1], TW_ELIMIT);
    TW_H_ASSERT_EQ(codes[2], TW_ELIMIT);
    TW_H_ASSERT_EQ(ids[1], 0);
    s_collect(3000, "task.done", ids[0]);
    /* Room again once it ended. */
    s_submit(1, "noop", s_sleep02, sizeof s_sleep02, "rej", 0, NULL, ids,
             codes);
    TW_H_ASSERT_EQ(codes[0], 0);
    /* A calls cap refuses past its count, queue or not (S89). */
    TW_H_ASSERT_OK(s_group("create", "twice", -2, NULL, 2));
    uint64_t c[4];
    int cc[4];
    s_submit(4, "noop", s_sleep02, sizeof s_sleep02, "twice", 0, NULL, c,
             cc);
    TW_H_ASSERT(cc[0] == 0 && cc[1] == 0);
    TW_H_ASSERT(cc[2] == TW_ELIMIT && cc[3] == TW_ELIMIT);
    /* Limit below zero is refused (S96). */
    TW_H_ASSERT_EQ(s_group("set", "twice", -1, NULL, 0), TW_EINVAL);
}

static void
s_stop_lifo_and_strict_cancel(void)
{
    static const unsigned char thirty[] = {0x1e};
    uint64_t ids[4];
    s_nlog = 0;
    s_submit(4, "sleep", thirty, 1, "lifo", 0, NULL, ids, NULL);
    for (int i = 0; i < 4; i++) {
        s_collect(5000, "task.started", ids[i]);
    }
    /* Started order is the order of task.started on the stream. */
    uint64_t order[4];
    int k = 0;
    for (size_t i = 0; i < s_nlog && k < 4; i++) {
        if (!strcmp(s_log[i].topic, "task.started") &&
            s_log[i].id >= ids[0] && s_log[i].id <= ids[3]) {
            order[k++] = s_log[i].id;
        }
    }
    TW_H_ASSERT_EQ(k, 4);
    tw_enc_t e;
    tw_enc_init(&e);
    s_op_head(&e, "stop", 1);
    tw_enc_key(&e, TW_F_N);
    tw_enc_uint(&e, 2);
    tw_h_msg_t msg;
    TW_H_ASSERT_OK(s_request(TW_CMD_POOL, &e, &msg));
    const msgpack_object *d = msg.m.f[TW_F_DATA];
    TW_H_ASSERT_EQ(d->via.array.size, 2);
    TW_H_ASSERT_EQ(d->via.array.ptr[0].via.u64, order[3]); /* newest */
    TW_H_ASSERT_EQ(d->via.array.ptr[1].via.u64, order[2]);
    tw_h_msg_release(&msg);
    s_collect(5000, "task.cancelled", order[2]);

    /* Strict cancel: one id already ended -> nothing is cancelled. */
    const uint64_t ended[2] = {order[0], order[2]};
    const uint64_t unknown[2] = {order[0], 987654321};
    TW_H_ASSERT_EQ(s_strict_cancel(ended, 2, &msg), TW_EENDED);
    TW_H_ASSERT_EQ(s_strict_cancel(unknown, 2, &msg), TW_ENOENT);
    s_collect(300, NULL, 0);
    for (size_t i = 0; i < s_nlog; i++) {
        TW_H_ASSERT_MSG(!(s_log[i].id == order[0] &&
                          !strcmp(s_log[i].topic, "task.cancelled")),
                        "a refused strict cancel cancelled nothing");
    }
    /* Now the two running ones, together. */
    TW_H_ASSERT_OK(s_strict_cancel(order, 2, &msg));
    tw_h_msg_release(&msg);
    s_collect(5000, "task.cancelled", order[0]);
    s_collect(5000, "task.cancelled", order[1]);
    tw_enc_free(&e);
}

static void
s_exec_cancel_retries_dedup_and_order(void)
{
    /* A running exec child is killed by cancel (S57): ["/bin/sleep",
     * "30.<our pid>"], a seconds argument no other test's child has, so
     * that we can see the child run before we cancel. */
    char secs[32];
    snprintf(secs, sizeof secs, "30.%06d", (int)getpid() % 1000000);
    unsigned char argv[64];
    size_t alen = 0;
    argv[alen++] = 0x92;
    argv[alen++] = 0xaa;
    memcpy(argv + alen, "/bin/sleep", 10);
    alen += 10;
    argv[alen++] = (unsigned char)(0xa0 | strlen(secs));
    memcpy(argv + alen, secs, strlen(secs));
    alen += strlen(secs);
    uint64_t id;
    s_nlog = 0;
    s_submit(1, "exec", argv, alen, NULL, 0, NULL, &id, NULL);
    s_collect(5000, "task.started", id);
    int child = tw_h_wait_process(secs, 10000);
    TW_H_ASSERT_MSG(child > 0, "the worker started /bin/sleep %s", secs);
    uint64_t t0 = tw_h_now_ms();
    tw_h_msg_t msg;
    TW_H_ASSERT_OK(s_strict_cancel(&id, 1, &msg));
    tw_h_msg_release(&msg);
    s_collect(TW_H_PATIENCE_MS, "task.cancelled", id);
    TW_H_ASSERT(tw_h_now_ms() - t0 < 15000); /* not the 30 s sleep */
    s_collect(5000, "task.done", id);
    TW_H_ASSERT_STREQ(s_topics_of(id), "cancelled done ");
    /* The cancel killed the child, which the worker reaps. */
    TW_H_WAIT(kill(child, 0) != 0, 10000);

    /* Retries back off and keep every attempt's error. */
    static const unsigned char boom[] = {0xa4, 'b', 'o', 'o', 'm'};
    uint64_t rid;
    t0 = tw_h_now_ms();
    s_submit(1, "fail", boom, sizeof boom, NULL, 2, NULL, &rid, NULL);
    s_collect(10000, "task.exception", rid);
    uint64_t took = tw_h_now_ms() - t0;
    TW_H_ASSERT_MSG(took >= 200, "two backoffs of >= 75 and 150 ms took "
                    "%llu ms", (unsigned long long)took);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, ++s_seq);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, rid);
    TW_H_ASSERT_OK(tw_h_send(s_sock, TW_CMD_RESULT, &e));
    for (;;) {
        tw_h_expect(s_sock, TW_CMD_RESULT, &msg, 5000);
        if (tw_msg_uint(&msg.m, TW_F_SEQ, 0) == s_seq) {
            break;
        }
        tw_h_msg_release(&msg);
    }
    TW_H_ASSERT_EQ(tw_item_uint(&msg.m.items[0], TW_I_AT, 0), 3);
    size_t el;
    const char *err = tw_item_str(&msg.m.items[0], TW_I_ERR, &el);
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)el, err ? err : "");
    TW_H_ASSERT_MSG(strstr(buf, "attempt 1: boom") &&
                        strstr(buf, "attempt 3: boom"),
                    "error history: %s", buf);
    tw_h_msg_release(&msg);

    /* Event order (S73): done then result; done then exception. */
    uint64_t ok;
    s_submit(1, "noop", s_sleep02, sizeof s_sleep02, NULL, 0, NULL, &ok,
             NULL);
    s_collect(5000, "task.result", ok);
    TW_H_ASSERT_STREQ(s_topics_of(ok), "done result ");
    TW_H_ASSERT_STREQ(s_topics_of(rid), "retry retry done exception ");

    /* Dedup: the same key gives the first id and creates nothing. */
    uint64_t k1, k2;
    s_submit(1, "noop", s_sleep02, sizeof s_sleep02, NULL, 0, "once", &k1,
             NULL);
    s_submit(1, "noop", s_sleep02, sizeof s_sleep02, NULL, 0, "once", &k2,
             NULL);
    TW_H_ASSERT(k1 > 0);
    TW_H_ASSERT_EQ(k2, k1);
    tw_enc_free(&e);
}

int
main(void)
{
    tw_h_init("10-pools");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    for (int i = 0; i < 3; i++) {
        TW_H_ASSERT(tw_h_start_worker(&b, 4, NULL) > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 3, 10000));
    s_sock = tw_h_dealer(b.frontend, "c-pools-test");
    static const char *const topics[] = {"task.", "group.", NULL};
    s_sub = tw_h_sub(b.status, topics);
    s_limit_never_exceeded();
    s_reject_and_calls();
    s_stop_lifo_and_strict_cancel();
    s_exec_cancel_retries_dedup_and_order();
    zmq_close(s_sub);
    zmq_close(s_sock);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("10-pools: ok\n");
    return 0;
}
