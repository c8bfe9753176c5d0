/*  tests/integration/17-channels.c - task channels, default group limits
 *  and the pool.closed event, against a real broker and a real worker.
 *
 *  Task channels (S90-S93, F5) use the worker's built-in "ask" handler,
 *  which opens its channel, sends each message it was given, makes one
 *  request and returns the reply or the error's name:
 *   - messages arrive in the order the task sent them, OPEN first and
 *     CLOSE last, as callbacks and as comm-* session events (S91, S92);
 *   - a request gets the submitter's response back (S91);
 *   - an unanswered request times out on the worker, and a response that
 *     comes after the task ended is refused by the broker (S93);
 *   - a submitter whose channel callback fails sends a close request, and
 *     the task's request fails with CloseRequestError (S93);
 *   - a submitter that dies makes the broker close the channel, and the
 *     task's next request fails with CloseRequestError (S93);
 *   - a cancelled task's channel closes before its cancelled outcome;
 *   - bad CHAN input (unknown ev, missing id, task not running, another
 *     client's task, data over --max-payload) gets an ERROR and a counted
 *     drop.
 *  An exec program gets its channel on fd 3, and the CLI prints a task's
 *  channel items. Then default_limit bounds every group without a limit
 *  of its own, not the pool (S101), until_closed returns on the
 *  pool.closed event (S63-S64), and a task whose worker is lost mid-
 *  channel opens a new channel on its next attempt.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"

#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static tw_h_broker_t s_b;

/* ---- msgpack helpers ---------------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} s_mp_t;

static void
s_mp_init(s_mp_t *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void
s_mp_str(s_mp_t *m, const char *s)
{
    msgpack_pack_str_with_body(&m->pk, s, strlen(s));
}

/* ask's arguments {"msgs": [1..nmsgs], "timeout": t, "delay": d}. */
static void
s_ask_args(s_mp_t *m, int nmsgs, unsigned timeout, unsigned delay)
{
    s_mp_init(m);
    msgpack_pack_map(&m->pk, 3);
    s_mp_str(m, "msgs");
    msgpack_pack_array(&m->pk, (size_t)nmsgs);
    for (int i = 1; i <= nmsgs; i++) {
        msgpack_pack_int(&m->pk, i);
    }
    s_mp_str(m, "timeout");
    msgpack_pack_unsigned_int(&m->pk, timeout);
    s_mp_str(m, "delay");
    msgpack_pack_unsigned_int(&m->pk, delay);
}

/* The msgpack integer in data, or -1. */
static long long
s_int(const void *data, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    long long v = -1;
    if (msgpack_unpack_next(&up, data, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        v = (long long)up.data.via.u64;
    }
    msgpack_unpacked_destroy(&up);
    return v;
}

/* ---- what the channel callback and the session saw ---------------- */

enum { S_MODE_ANSWER, S_MODE_SILENT, S_MODE_FAIL };

typedef struct {
    int mode;
    uint64_t id;           /* the task watched */
    tw_chan_kind_t kinds[256];
    long long vals[256];
    int n;
    int events[256];       /* TW_EV_COMM_* then the outcome */
    int nev;
    uint64_t cr;           /* the last request's */
} s_seen_t;

static s_seen_t s_seen;

static int
s_on_chan(void *arg, const tw_chan_msg_t *msg)
{
    tw_client_t *c = arg;
    if (s_seen.n < 256) {
        s_seen.kinds[s_seen.n] = msg->kind;
        s_seen.vals[s_seen.n] = s_int(msg->data, msg->len);
        s_seen.n++;
    }
    s_seen.id = msg->id;
    if (msg->kind == TW_CHAN_REQ) {
        s_seen.cr = msg->cr;
        if (s_seen.mode == S_MODE_ANSWER) {
            s_mp_t m;
            s_mp_init(&m);
            s_mp_str(&m, "pong");
            TW_H_ASSERT_OK(tw_client_respond(c, msg->id, msg->cr, m.sb.data,
                                             m.sb.size));
            msgpack_sbuffer_destroy(&m.sb);
        }
    }
    return s_seen.mode == S_MODE_FAIL && msg->kind == TW_CHAN_MSG;
}

static void
s_on_event(void *arg, const tw_event_t *ev)
{
    (void)arg;
    if (ev->kind >= TW_EV_COMM_OPEN || ev->kind == TW_EV_DONE ||
        ev->kind == TW_EV_CANCELLED) {
        if (s_seen.nev < 256) {
            s_seen.events[s_seen.nev++] = (int)ev->kind;
        }
    }
}

static tw_client_t *
s_client(void)
{
    tw_client_t *c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(c != NULL);
    tw_h_track_results(c);
    tw_client_on_channel(c, s_on_chan, c);
    tw_client_on_event(c, s_on_event, NULL);
    return c;
}

/* Submit "ask" with `args`, wait for its outcome and return it. */
static tw_result_t *
s_ask(tw_client_t *c, s_mp_t *args, uint64_t *id)
{
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "ask";
    spec.args = args->sb.data;
    spec.args_len = args->sb.size;
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&args->sb);
    *id = tw_h_wait_acked(c, seq, 5000);
    TW_H_ASSERT_OK(tw_client_wait_all(c, 20000));
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    return r;
}

static void
s_reset(int mode)
{
    memset(&s_seen, 0, sizeof s_seen);
    s_seen.mode = mode;
}

/* ---- channels ------------------------------------------------------ */

/* S91, S92: OPEN, 50 messages in order, REQ, CLOSE; the reply returns. */
static void
s_order_and_round_trip(tw_client_t *c)
{
    s_reset(S_MODE_ANSWER);
    s_mp_t a;
    s_ask_args(&a, 50, 5000, 0);
    uint64_t id;
    tw_result_t *r = s_ask(c, &a, &id);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "pong");
    tw_result_free(&r);
    TW_H_ASSERT_EQ(s_seen.id, id);
    TW_H_ASSERT_EQ(s_seen.n, 53);
    TW_H_ASSERT_EQ(s_seen.kinds[0], TW_CHAN_OPEN);
    for (int i = 1; i <= 50; i++) {
        TW_H_ASSERT_EQ(s_seen.kinds[i], TW_CHAN_MSG);
        TW_H_ASSERT_EQ(s_seen.vals[i], i);
    }
    TW_H_ASSERT_EQ(s_seen.kinds[51], TW_CHAN_REQ);
    TW_H_ASSERT_EQ(s_seen.kinds[52], TW_CHAN_CLOSE);
    /* The same order as session events, and the channel closes before
     * the outcome's events (S92). */
    TW_H_ASSERT_EQ(s_seen.nev, 54);
    TW_H_ASSERT_EQ(s_seen.events[0], TW_EV_COMM_OPEN);
    TW_H_ASSERT_EQ(s_seen.events[1], TW_EV_COMM_MESSAGE);
    TW_H_ASSERT_EQ(s_seen.events[51], TW_EV_COMM_REQUEST);
    TW_H_ASSERT_EQ(s_seen.events[52], TW_EV_COMM_CLOSE);
    TW_H_ASSERT_EQ(s_seen.events[53], TW_EV_DONE);
    printf("  channel order and round trip: ok (S91, S92)\n");
}

/* S93: nobody answers, the worker times the request out; a response
 * after the task ended is refused and counted. */
static void
s_request_timeout(tw_client_t *c)
{
    s_reset(S_MODE_SILENT);
    s_mp_t a;
    s_ask_args(&a, 0, 300, 0);
    uint64_t id;
    uint64_t t0 = tw_h_now_ms();
    tw_result_t *r = s_ask(c, &a, &id);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "ETIMEDOUT");
    tw_result_free(&r);
    TW_H_ASSERT(tw_h_now_ms() - t0 >= 300);
    TW_H_ASSERT(s_seen.cr != 0);
    long long before = 0, after = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "chan_dropped", &before));
    TW_H_ASSERT_OK(tw_client_respond(c, id, s_seen.cr, NULL, 0));
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    TW_H_ASSERT(strstr(tw_client_last_error(c), "not running") != NULL);
    TW_H_ASSERT_OK(tw_h_status_field(c, "chan_dropped", &after));
    TW_H_ASSERT_EQ(after, before + 1);
    printf("  request timeout and late response: ok (S93)\n");
}

/* S93: the host's handler fails -> closereq -> CloseRequestError. */
static void
s_client_closereq(tw_client_t *c)
{
    s_reset(S_MODE_FAIL);
    s_mp_t a;
    s_ask_args(&a, 1, 60000, 500);
    uint64_t id;
    uint64_t t0 = tw_h_now_ms();
    tw_result_t *r = s_ask(c, &a, &id);
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "ECLOSEREQ");
    tw_result_free(&r);
    /* It failed at once, without waiting for the 60 s timeout. */
    TW_H_ASSERT(tw_h_now_ms() - t0 < 30000);
    printf("  client close request: ok (S93)\n");
}

/* S93: the submitter dies after the channel opened; the broker cannot
 * route the request and closes the channel for it. */
static void
s_submitter_gone(tw_client_t *c)
{
    int fds[2];
    TW_H_ASSERT(pipe(fds) == 0);
    pid_t pid = fork();
    TW_H_ASSERT(pid >= 0);
    if (pid == 0) {
        /* The submitter: its own client, gone once the channel opened. */
        close(fds[0]);
        s_reset(S_MODE_ANSWER);
        tw_client_t *k = tw_client_new(s_b.frontend);
        tw_client_on_channel(k, s_on_chan, k);
        s_mp_t a;
        s_ask_args(&a, 1, 5000, 800);
        tw_task_spec_t spec;
        memset(&spec, 0, sizeof spec);
        spec.handler = "ask";
        spec.args = a.sb.data;
        spec.args_len = a.sb.size;
        tw_client_submit(k, &spec, NULL);
        while (s_seen.n == 0) {
            tw_client_poll(k, 100);
        }
        uint64_t id = s_seen.id; /* the OPEN item's task */
        if (write(fds[1], &id, sizeof id) != sizeof id) {
            _exit(2);
        }
        _exit(0); /* no goodbye: the connection just closes */
    }
    close(fds[1]);
    uint64_t id = 0;
    TW_H_ASSERT(read(fds[0], &id, sizeof id) == sizeof id);
    close(fds[0]);
    int st;
    TW_H_ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == 0);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, TW_ST_OK, 10000));
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, id, 5000, &r));
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "ECLOSEREQ");
    tw_result_free(&r);
    long long closereqs = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "chan_closereq", &closereqs));
    TW_H_ASSERT(closereqs >= 1);
    printf("  submitter gone: ok (S93)\n");
}

/* A cancelled task's channel closes (and is freed) before the cancelled
 * outcome arrives; talking to it afterwards is refused. */
static void
s_cancelled_task(tw_client_t *c)
{
    s_reset(S_MODE_ANSWER);
    s_mp_t a;
    s_ask_args(&a, 1, 60000, 30000);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "ask";
    spec.args = a.sb.data;
    spec.args_len = a.sb.size;
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&a.sb);
    uint64_t id = tw_h_wait_acked(c, seq, 5000);
    uint64_t deadline = tw_h_now_ms() + 5000;
    while (s_seen.n < 2 && tw_h_now_ms() < deadline) {
        tw_client_poll(c, 100);
    }
    TW_H_ASSERT_EQ(s_seen.n, 2); /* open, msg */
    TW_H_ASSERT_OK(tw_client_cancel(c, &id, 1, 5000));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));
    TW_H_ASSERT_EQ(s_seen.n, 3);
    TW_H_ASSERT_EQ(s_seen.kinds[2], TW_CHAN_CLOSE);
    TW_H_ASSERT_EQ(s_seen.events[s_seen.nev - 2], TW_EV_COMM_CLOSE);
    TW_H_ASSERT_EQ(s_seen.events[s_seen.nev - 1], TW_EV_CANCELLED);
    TW_H_ASSERT_OK(tw_client_close_channel(c, id));
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    TW_H_ASSERT(strstr(tw_client_last_error(c), "not running") != NULL);
    printf("  cancelled task's channel: ok\n");
}

/* The CLI: `submit ask ARGS --wait --respond JSON` prints the result on
 * stdout and the channel items as JSON lines on stderr, in order (S92);
 * without --respond it refuses the request (CloseRequestError, S93). */
static void
s_cli(void)
{
    char out[512], err[512], cmd[2048];
    snprintf(out, sizeof out, "%s/cli.out", tw_h_tmpdir());
    snprintf(err, sizeof err, "%s/cli.err", tw_h_tmpdir());
    snprintf(cmd, sizeof cmd,
             "'%s' --broker %s submit ask '[1, \"two\"]' --wait "
             "--respond '{\"ok\": true}' >%s 2>%s",
             tw_h_cli_bin(), s_b.frontend, out, err);
    TW_H_ASSERT_EQ(system(cmd), 0);
    char buf[2048];
    FILE *fp = fopen(out, "r");
    TW_H_ASSERT(fp && fgets(buf, sizeof buf, fp));
    fclose(fp);
    TW_H_ASSERT_STREQ(buf, "{\"ok\":true}\n");
    static const char *const want[] = {"\"open\"", "\"msg\"", "\"two\"",
                                       "\"req\"", "\"close\""};
    fp = fopen(err, "r");
    TW_H_ASSERT(fp != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *at = buf;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *p = strstr(at, want[i]);
        TW_H_ASSERT_MSG(p != NULL, "no %s in order in: %s", want[i], buf);
        at = p + 1;
    }
    snprintf(cmd, sizeof cmd,
             "'%s' --broker %s submit ask '[]' --wait >%s 2>%s",
             tw_h_cli_bin(), s_b.frontend, out, err);
    TW_H_ASSERT_EQ(system(cmd), 0);
    fp = fopen(out, "r");
    TW_H_ASSERT(fp && fgets(buf, sizeof buf, fp));
    fclose(fp);
    TW_H_ASSERT_STREQ(buf, "\"ECLOSEREQ\"\n");
    printf("  cli submit --wait --respond: ok (S92, S93)\n");
}

/* An exec program talks on fd 3 in length-prefixed msgpack frames: open,
 * a message and a request go up in order (S92), the answer comes back on
 * fd 3 (S91), and the channel closes when the program exits. */
static void
s_exec_frame(FILE *fp, s_mp_t *m)
{
    uint32_t n = (uint32_t)m->sb.size;
    unsigned char hdr[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(hdr, 1, 4, fp);
    fwrite(m->sb.data, 1, m->sb.size, fp);
    msgpack_sbuffer_destroy(&m->sb);
}

static void
s_exec_channel(tw_client_t *c)
{
    char frames[512];
    snprintf(frames, sizeof frames, "%s/frames", tw_h_tmpdir());
    FILE *fp = fopen(frames, "wb");
    TW_H_ASSERT(fp != NULL);
    s_mp_t m;
    s_mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    s_mp_str(&m, "ev");
    s_mp_str(&m, "open");
    s_exec_frame(fp, &m);
    s_mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    s_mp_str(&m, "ev");
    s_mp_str(&m, "msg");
    s_mp_str(&m, "d");
    msgpack_pack_int(&m.pk, 41);
    s_exec_frame(fp, &m);
    s_mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    s_mp_str(&m, "ev");
    s_mp_str(&m, "req");
    s_mp_str(&m, "d");
    s_mp_str(&m, "q");
    s_mp_str(&m, "timeout");
    msgpack_pack_int(&m.pk, 5000);
    s_exec_frame(fp, &m);
    fclose(fp);
    /* The answer {"ev": "resp", "d": "pong"} is a 20-byte frame whose
     * last 4 bytes are "pong": the program prints them. */
    char script[1024];
    snprintf(script, sizeof script,
             "cat '%s' >&3 && head -c 20 <&3 | tail -c 4", frames);
    s_reset(S_MODE_ANSWER);
    s_mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    s_mp_str(&m, "argv");
    msgpack_pack_array(&m.pk, 3);
    s_mp_str(&m, "sh");
    s_mp_str(&m, "-c");
    s_mp_str(&m, script);
    s_mp_str(&m, "chan");
    msgpack_pack_true(&m.pk);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "exec";
    spec.args = m.sb.data;
    spec.args_len = m.sb.size;
    spec.timeout_ms = 10000;
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&m.sb);
    TW_H_ASSERT_OK(tw_client_wait_all(c, 20000));
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    TW_H_ASSERT_MSG(r->state == TW_ST_OK, "exec failed: %s",
                    r->error ? r->error : "?");
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "pong");
    tw_result_free(&r);
    TW_H_ASSERT_EQ(s_seen.n, 4);
    TW_H_ASSERT_EQ(s_seen.kinds[0], TW_CHAN_OPEN);
    TW_H_ASSERT_EQ(s_seen.kinds[1], TW_CHAN_MSG);
    TW_H_ASSERT_EQ(s_seen.vals[1], 41);
    TW_H_ASSERT_EQ(s_seen.kinds[2], TW_CHAN_REQ);
    TW_H_ASSERT_EQ(s_seen.kinds[3], TW_CHAN_CLOSE);

    /* A frame that is not a map ends the relay; the program goes on. */
    s_reset(S_MODE_ANSWER);
    s_mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    s_mp_str(&m, "argv");
    msgpack_pack_array(&m.pk, 3);
    s_mp_str(&m, "sh");
    s_mp_str(&m, "-c");
    s_mp_str(&m, "printf '\\000\\000\\000\\001\\300' >&3; echo done");
    s_mp_str(&m, "chan");
    msgpack_pack_true(&m.pk);
    spec.args = m.sb.data;
    spec.args_len = m.sb.size;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&m.sb);
    TW_H_ASSERT_OK(tw_client_wait_all(c, 20000));
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "done\n");
    tw_result_free(&r);
    TW_H_ASSERT_EQ(s_seen.n, 0);
    printf("  exec channel on fd 3: ok (S91, S92)\n");
}

/* ---- bad input on the wire ----------------------------------------- */

/* Send CHAN {items: [item]} where `item` is written by the caller into
 * `e` after this begins it; expect ERROR `code`. */
static void
s_expect_error(void *sock, tw_enc_t *e, int code, const char *what)
{
    TW_H_ASSERT_OK(tw_h_send(sock, TW_CMD_CHAN, e));
    tw_h_msg_t msg;
    tw_h_expect(sock, TW_CMD_ERROR, &msg, 5000);
    int got = (int)tw_msg_int(&msg.m, TW_F_CODE, 0);
    TW_H_ASSERT_MSG(got == code, "%s: got %s, want %s", what,
                    tw_err_name(got), tw_err_name(code));
    tw_h_msg_release(&msg);
}

static void
s_item_head(tw_enc_t *e, size_t fields)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, fields);
}

static void
s_bad_input(tw_client_t *c)
{
    /* A task that ended, owned by `c`, and a running one of `c`. */
    s_reset(S_MODE_ANSWER);
    s_mp_t a;
    s_ask_args(&a, 0, 5000, 0);
    uint64_t ended;
    tw_result_t *r = s_ask(c, &a, &ended);
    tw_result_free(&r);
    long long before = 0, after = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "chan_dropped", &before));

    void *sock = tw_h_dealer(s_b.frontend, "c-chan-raw");
    tw_enc_t e;
    tw_enc_init(&e);
    /* Unknown event. */
    s_item_head(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, ended);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "shout");
    s_expect_error(sock, &e, TW_EINVAL, "unknown ev");
    /* Missing id: the codec refuses the message. */
    s_item_head(&e, 1);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "closereq");
    s_expect_error(sock, &e, TW_EPROTO, "missing id");
    /* Another client's task. */
    s_item_head(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, ended);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "closereq");
    s_expect_error(sock, &e, TW_EPERM, "not the submitter");
    /* Unknown task. */
    s_item_head(&e, 2);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 999999);
    tw_enc_ikey(&e, TW_I_EV);
    tw_enc_cstr(&e, "closereq");
    s_expect_error(sock, &e, TW_ENOENT, "unknown task");
    tw_enc_free(&e);
    zmq_close(sock);

    /* The submitter itself: a task not running, and data too big. */
    TW_H_ASSERT_OK(tw_client_close_channel(c, ended));
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    TW_H_ASSERT(strstr(tw_client_last_error(c), "not running") != NULL);
    size_t big = (1u << 20) + 16;
    unsigned char *buf = calloc(1, big + 5);
    buf[0] = 0xc6; /* bin 32 */
    buf[1] = (unsigned char)(big >> 24);
    buf[2] = (unsigned char)(big >> 16);
    buf[3] = (unsigned char)(big >> 8);
    buf[4] = (unsigned char)big;
    TW_H_ASSERT_OK(tw_client_respond(c, ended, 7, buf, big + 5));
    free(buf);
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    TW_H_ASSERT(strstr(tw_client_last_error(c), "limit") != NULL);
    TW_H_ASSERT_OK(tw_h_status_field(c, "chan_dropped", &after));
    TW_H_ASSERT_EQ(after, before + 5);
    printf("  bad CHAN input: ok\n");
}

/* ---- default_limit and pool.closed --------------------------------- */

/* Submit `sleep secs` into pool `pool`, in group `group` (NULL: none). */
static void
s_sleep_task(tw_client_t *c, const char *pool, const char *group,
             double secs)
{
    s_mp_t m;
    s_mp_init(&m);
    msgpack_pack_double(&m.pk, secs);
    const char *groups[1] = {group};
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "sleep";
    spec.args = m.sb.data;
    spec.args_len = m.sb.size;
    spec.pool = pool;
    spec.groups = group ? groups : NULL;
    spec.ngroups = group ? 1 : 0;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, NULL));
    msgpack_sbuffer_destroy(&m.sb);
}

/* S101: default_limit bounds every group without a limit of its own, not
 * the pool; a group's own limit wins; clearing it lifts the bound. */
static void
s_default_limit(void)
{
    tw_client_t *c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(c != NULL);
    TW_H_ASSERT_EQ(tw_client_pool_default_limit(c, "dl", -1, 5000), 0);
    tw_pool_req_t neg = {.op = "default_limit", .pool = "dl",
                         .has_limit = 1, .limit = -2};
    TW_H_ASSERT_EQ(tw_client_pool(c, &neg, 5000, NULL, NULL), TW_EINVAL);
    TW_H_ASSERT_OK(tw_client_pool_default_limit(c, "dl", 1, 5000));
    tw_pool_req_t own = {.op = "set", .pool = "dl", .group = "wide",
                         .has_limit = 1, .limit = 2};
    TW_H_ASSERT_OK(tw_client_group(c, &own, 5000, NULL, NULL));
    tw_pool_info_t pi;
    TW_H_ASSERT_OK(tw_client_pool_stats(c, "dl", 5000, &pi));
    TW_H_ASSERT_EQ(pi.default_limit, 1);
    TW_H_ASSERT_EQ(pi.size, 0);
    for (int i = 0; i < 3; i++) {
        s_sleep_task(c, "dl", "narrow", 0.4); /* default: 1 at a time */
    }
    s_sleep_task(c, "dl", "wide", 0.4);       /* its own: 2 at a time */
    s_sleep_task(c, "dl", "wide", 0.4);
    TW_H_ASSERT_OK(tw_client_flush(c));
    /* While they run: narrow never has more than one running, wide has
     * two, and the pool runs three at once (its size is not bounded). */
    int max_narrow = 0, saw_pool3 = 0;
    uint64_t deadline = tw_h_now_ms() + 10000;
    while (tw_client_outstanding(c) > 0 && tw_h_now_ms() < deadline) {
        tw_group_info_t gi;
        TW_H_ASSERT_OK(tw_client_group_get(c, "dl", "narrow", 5000, &gi));
        TW_H_ASSERT_EQ(gi.limit, 1);
        if ((int)gi.running > max_narrow) {
            max_narrow = (int)gi.running;
        }
        TW_H_ASSERT_OK(tw_client_pool_stats(c, "dl", 5000, &pi));
        saw_pool3 |= pi.running == 3;
        tw_client_poll(c, 20);
    }
    TW_H_ASSERT_EQ(tw_client_outstanding(c), 0);
    TW_H_ASSERT_EQ(max_narrow, 1);
    TW_H_ASSERT(saw_pool3);
    tw_group_info_t gi;
    TW_H_ASSERT_OK(tw_client_group_get(c, "dl", "wide", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, 2);
    /* Cleared: the group has no limit any more. */
    TW_H_ASSERT_OK(tw_client_pool_default_limit(c, "dl", -1, 5000));
    TW_H_ASSERT_OK(tw_client_group_get(c, "dl", "narrow", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, -1);
    TW_H_ASSERT_OK(tw_client_pool_stats(c, "dl", 5000, &pi));
    TW_H_ASSERT_EQ(pi.default_limit, -1);
    tw_client_destroy(&c);
    printf("  default_limit: ok (S101)\n");
}

static int s_pool_closed_events;

static void
s_count_closed(void *arg, const tw_event_t *ev)
{
    (void)arg;
    if (ev->kind == TW_EV_POOL_CLOSED && strcmp(ev->msg, "pc") == 0) {
        s_pool_closed_events++;
    }
}

/* S63-S64: until_closed returns on the pool.closed event, well before
 * its 5 s fallback check, and the event is on the status socket. The
 * client asks for the pool's stats first, which makes the broker count
 * it among the pool's clients, so the event reaches it whether the close
 * comes while until_closed waits (as it nearly always does: the closing
 * program starts only once the parent is about to wait) or just before. */
static void
s_until_closed(void)
{
    static const char *const topics[] = {"pool.", NULL};
    void *sub = tw_h_sub(s_b.status, topics);
    tw_client_t *c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(c != NULL);
    tw_client_on_event(c, s_count_closed, NULL);
    tw_pool_info_t info;
    TW_H_ASSERT_OK(tw_client_pool_stats(c, "pc", 10000, &info));
    TW_H_ASSERT(!info.closed);
    int go[2];
    TW_H_ASSERT(pipe(go) == 0);
    pid_t pid = fork();
    TW_H_ASSERT(pid >= 0);
    if (pid == 0) {
        char x;
        close(go[1]);
        if (read(go[0], &x, 1) != 1) {
            _exit(126);
        }
        execl(tw_h_cli_bin(), tw_h_cli_bin(), "--broker", s_b.frontend,
              "--pool", "pc", "pool", "close", (char *)NULL);
        _exit(127);
    }
    close(go[0]);
    uint64_t t0 = tw_h_now_ms();
    TW_H_ASSERT(write(go[1], "x", 1) == 1);
    close(go[1]);
    TW_H_ASSERT_OK(tw_client_until_closed(c, "pc", 20000));
    uint64_t took = tw_h_now_ms() - t0;
    int st;
    TW_H_ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                WEXITSTATUS(st) == 0);
    /* Woken by the event, not by the recheck 5 s after it began. */
    TW_H_ASSERT_MSG(took < 4000, "until_closed took %llu ms",
                    (unsigned long long)took);
    TW_H_ASSERT_EQ(s_pool_closed_events, 1);
    /* Closed already: it returns at once, not at the 5 s recheck. */
    t0 = tw_h_now_ms();
    TW_H_ASSERT_OK(tw_client_until_closed(c, "pc", 20000));
    TW_H_ASSERT(tw_h_now_ms() - t0 < 4000);
    /* The status socket carried pool.closed for "pc". */
    zmq_msg_t topic;
    zmq_msg_init(&topic);
    zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
    TW_H_ASSERT(zmq_poll(&pi, 1, 2000) == 1);
    TW_H_ASSERT(zmq_msg_recv(&topic, sub, 0) >= 0);
    TW_H_ASSERT(zmq_msg_size(&topic) == 11 &&
                memcmp(zmq_msg_data(&topic), "pool.closed", 11) == 0);
    zmq_msg_close(&topic);
    zmq_close(sub);
    tw_client_destroy(&c);
    printf("  until_closed on pool.closed: ok (S63, S64)\n");
}

/* Worker loss: the first attempt's channel goes with its worker (no
 * close); the task is requeued and its second attempt opens a new
 * channel on another worker, whose request is answered. */
static void
s_worker_lost(pid_t w1)
{
    tw_client_t *c = s_client();
    s_reset(S_MODE_ANSWER);
    s_mp_t a;
    s_ask_args(&a, 1, 10000, 1500);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "ask";
    spec.args = a.sb.data;
    spec.args_len = a.sb.size;
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&a.sb);
    uint64_t deadline = tw_h_now_ms() + 5000;
    while (s_seen.n < 2 && tw_h_now_ms() < deadline) {
        tw_client_poll(c, 50);
    }
    TW_H_ASSERT_EQ(s_seen.n, 2); /* open, msg on the first worker */
    TW_H_ASSERT(tw_h_start_worker(&s_b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 2, 10000));
    TW_H_ASSERT_OK(tw_h_kill(w1, SIGKILL));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 20000));
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_h_last_result(c, seq, &r));
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "pong");
    TW_H_ASSERT_EQ(r->attempt, 2);
    tw_result_free(&r);
    static const tw_chan_kind_t want[] = {TW_CHAN_OPEN, TW_CHAN_MSG,
                                          TW_CHAN_OPEN, TW_CHAN_MSG,
                                          TW_CHAN_REQ,  TW_CHAN_CLOSE};
    TW_H_ASSERT_EQ(s_seen.n, 6);
    for (int i = 0; i < 6; i++) {
        TW_H_ASSERT_EQ(s_seen.kinds[i], want[i]);
    }
    tw_client_destroy(&c);
    printf("  worker lost mid-channel: ok\n");
}

int
main(void)
{
    tw_h_init("17-channels");
    /* Fast heartbeats, so a killed worker is noticed within 600 ms. */
    const char *fast[] = {"--heartbeat", "200", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, fast));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    pid_t w1 = tw_h_start_worker(&s_b, 4, NULL);
    TW_H_ASSERT(w1 > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    tw_client_t *c = s_client();
    s_order_and_round_trip(c);
    s_request_timeout(c);
    s_client_closereq(c);
    s_submitter_gone(c);
    s_cancelled_task(c);
    s_bad_input(c);
    s_exec_channel(c);
    tw_client_destroy(&c);
    s_cli();
    s_default_limit();
    s_until_closed();
    s_worker_lost(w1);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    printf("17-channels: ok\n");
    return 0;
}
