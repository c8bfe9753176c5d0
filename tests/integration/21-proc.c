/*  tests/integration/21-proc.c - proc handlers: handlers in long-lived
 *  children written in another language (proto/PROTOCOL.md 15).
 *
 *  The children are Perl programs on examples/proc/TaskwheelProc.pm
 *  (tests/integration/proc/child.pl), so this also proves the protocol
 *  can be spoken by something other than C. Through a real broker and
 *  worker (`--proc CMD`):
 *   - tasks run in the children and their results come back; a handler
 *     error comes back with its message and Perl's stack trace; the call
 *     tells the child the task id, attempt and timeout, and
 *     TASKWHEEL_PROC=1 is in its environment;
 *   - a child's stderr lines, and what handler code prints to stdout
 *     (which the runtime sends to stderr), are in the worker's log with
 *     the task id;
 *   - more tasks than children wait for a child in their slot, and a
 *     900 KiB argument and result cross the pipes intact;
 *   - a task channel works through a child (S90-S93): open, msg, req
 *     answered by the submitter, close, in order;
 *   - stations run as proc handlers: next mode "handler" with set_next
 *     and stop (S5, S19), and n2s messages reach the child (S31);
 *   - a worker stopped by SIGTERM shuts its children down and exits 0;
 *   - start-up failures stop the worker with status 2 and a clear error:
 *     a program that cannot run, a child that exits before its hello,
 *     one that says hello in version 2, one that never says hello, one
 *     that offers a built-in's name, a command line that cannot be split.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static tw_h_broker_t s_b;
static char s_cmd[1024];

/* The command line of a pool of test children. */
static const char *
s_child_cmd(void)
{
    snprintf(s_cmd, sizeof s_cmd,
             "perl -I '%s/examples/proc' '%s/tests/integration/proc/child.pl'",
             TW_SOURCE_DIR, TW_SOURCE_DIR);
    return s_cmd;
}

/* ---- arguments and outcomes ----------------------------------------- */

/* [a, b] as msgpack, into `sb` (initialised here). */
static void
s_pair(msgpack_sbuffer *sb, long long a, long long b)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_long_long(&pk, a);
    msgpack_pack_long_long(&pk, b);
}

/* Submit with one string argument (NULL: nil), wait for the outcome
 * (the caller frees it); its task id in *id if not NULL. */
static tw_result_t *
s_run(tw_client_t *c, const char *h, const char *arg, uint32_t timeout_ms,
      uint64_t *id)
{
    tw_result_t *r =
        tw_h_outcome(c, tw_h_submit_str(c, h, arg, timeout_ms, 0), 30000);
    if (id) {
        *id = r->id;
    }
    return r;
}

/* ---- tasks ------------------------------------------------------------ */

static int s_pids[16];
static int s_npids;

static void
s_tasks(tw_client_t *c, pid_t w)
{
    msgpack_sbuffer sb;
    s_pair(&sb, 2, 40);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "pl.add";
    spec.args = sb.data;
    spec.args_len = sb.size;
    uint64_t seq;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    msgpack_sbuffer_destroy(&sb);
    tw_result_t *r = tw_h_outcome(c, seq, 30000);
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(tw_h_result_int(r), 42);
    tw_result_free(&r);

    /* What the call frame told the child. */
    uint64_t id;
    r = s_run(c, "pl.info", NULL, 5000, &id);
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_EQ(tw_h_result_field_int(r, "task"), (long long)id);
    TW_H_ASSERT_EQ(tw_h_result_field_int(r, "attempt"), 1);
    TW_H_ASSERT_EQ(tw_h_result_field_int(r, "to"), 5000);
    TW_H_ASSERT_STREQ(tw_h_result_field_str(r, "kind"), "task");
    TW_H_ASSERT_STREQ(tw_h_result_field_str(r, "proc"), "1");
    s_pids[s_npids++] = (int)tw_h_result_field_int(r, "pid");
    tw_result_free(&r);

    /* An error: its message, then the language's stack trace. */
    r = s_run(c, "pl.fail", "oops, bad input", 0, NULL);
    TW_H_ASSERT_EQ(r->state, 1);
    TW_H_ASSERT_MSG(strncmp(r->error, "oops, bad input\n", 16) == 0 &&
                        strstr(r->error, "main::inner") &&
                        strstr(r->error, "main::deep"),
                    "error with a traceback: %s", r->error);
    tw_result_free(&r);

    /* stderr, and a stray print to stdout, in the log with the task. */
    r = s_run(c, "pl.stderr", "tag-21", 0, &id);
    TW_H_ASSERT_EQ(r->state, 0);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "tag-21");
    tw_result_free(&r);
    char want[128], want2[128];
    snprintf(want, sizeof want, "task %llu: stderr line from tag-21",
             (unsigned long long)id);
    snprintf(want2, sizeof want2, "task %llu: stdout line from tag-21",
             (unsigned long long)id);
    uint64_t t0 = tw_h_now_ms();
    while (!(tw_h_log_contains(w, want) && tw_h_log_contains(w, want2))) {
        TW_H_ASSERT_MSG(tw_h_now_ms() - t0 < 10000, "no '%s' or '%s' in the "
                        "worker's log", want, want2);
        tw_h_sleep_ms(20);
    }

    /* 900 KiB there and back (the broker's --max-payload is 1 MiB). */
    size_t big = 900u << 10;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++) {
        s[i] = (char)('a' + i % 26);
    }
    s[big] = '\0';
    r = s_run(c, "pl.echo", s, 0, NULL);
    TW_H_ASSERT_EQ(r->state, 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    TW_H_ASSERT(msgpack_unpack_next(&up, r->result, r->result_len, NULL) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_STR);
    TW_H_ASSERT_EQ(up.data.via.str.size, big);
    TW_H_ASSERT(memcmp(up.data.via.str.ptr, s, big) == 0);
    msgpack_unpacked_destroy(&up);
    tw_result_free(&r);
    free(s);

    /* 200 tasks on 4 slots and 2 children: calls wait for a child. */
    uint64_t seqs[200];
    for (int i = 0; i < 200; i++) {
        s_pair(&sb, i, 1000);
        spec.args = sb.data;
        spec.args_len = sb.size;
        TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seqs[i]));
        msgpack_sbuffer_destroy(&sb);
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 60000));
    for (int i = 0; i < 200; i++) {
        TW_H_ASSERT_OK(tw_h_last_result(c, seqs[i], &r));
        TW_H_ASSERT_EQ(r->state, 0);
        TW_H_ASSERT_EQ(tw_h_result_int(r), 1000 + i);
        tw_result_free(&r);
    }
}

/* ---- a task channel through a child ---------------------------------- */

static tw_chan_kind_t s_kinds[16];
static int s_nkinds;

static int
s_on_chan(void *arg, const tw_chan_msg_t *msg)
{
    tw_client_t *c = arg;
    if (s_nkinds < 16) {
        s_kinds[s_nkinds++] = msg->kind;
    }
    if (msg->kind == TW_CHAN_REQ) {
        static const char yes[] = "\xa3yes"; /* msgpack "yes" */
        TW_H_ASSERT_OK(tw_client_respond(c, msg->id, msg->cr, yes, 4));
    }
    return 0;
}

static void
s_channel(tw_client_t *c)
{
    tw_client_on_channel(c, s_on_chan, c);
    tw_result_t *r = s_run(c, "pl.chan", "continue?", 10000, NULL);
    TW_H_ASSERT_MSG(r->state == 0, "pl.chan: %s", r->error);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "got yes");
    tw_result_free(&r);
    TW_H_ASSERT_EQ(s_nkinds, 4);
    TW_H_ASSERT_EQ(s_kinds[0], TW_CHAN_OPEN);
    TW_H_ASSERT_EQ(s_kinds[1], TW_CHAN_MSG);
    TW_H_ASSERT_EQ(s_kinds[2], TW_CHAN_REQ);
    TW_H_ASSERT_EQ(s_kinds[3], TW_CHAN_CLOSE);
    tw_client_on_channel(c, NULL, NULL);
}

/* ---- stations -------------------------------------------------------- */

static void
s_stations(tw_client_t *c)
{
    /* Next mode "handler": 1, 2, 4 ... 64, then the child stops it. */
    msgpack_sbuffer sb;
    s_pair(&sb, 1, 64);
    tw_station_req_t req = {.op = "add",
                            .sid = "pl-next",
                            .handler = "pl.next",
                            .args = sb.data,
                            .args_len = sb.size,
                            .next = "handler"};
    int rc = tw_client_station(c, &req, 5000, NULL, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add: %s", tw_client_last_error(c));
    msgpack_sbuffer_destroy(&sb);
    tw_h_station_t st;
    TW_H_ASSERT_OK(tw_h_wait_station(c, "pl-next", "done", 15000, &st));
    TW_H_ASSERT_EQ(st.iterations, 6);

    /* n2s messages reach the child: it counts them. */
    unsigned char zero[9];
    size_t zl = tw_h_pack_int(zero, 0);
    tw_station_req_t add = {.op = "add",
                            .sid = "pl-n2s",
                            .handler = "pl.n2scount",
                            .args = zero,
                            .args_len = zl,
                            .next = "result",
                            .interval_ms = 20};
    rc = tw_client_station(c, &add, 5000, NULL, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add: %s", tw_client_last_error(c));
    TW_H_ASSERT_OK(tw_h_wait_station(c, "pl-n2s", "running", 10000, &st));
    static const char ping[] = "\xa4ping"; /* msgpack "ping" */
    tw_station_req_t send = {.op = "send",
                             .sid = "pl-n2s",
                             .payload = ping,
                             .payload_len = 5};
    for (int i = 0; i < 3; i++) {
        rc = tw_client_station(c, &send, 5000, NULL, NULL);
        TW_H_ASSERT_MSG(rc == 0, "send: %s", tw_client_last_error(c));
    }
    uint64_t t0 = tw_h_now_ms();
    for (;;) {
        TW_H_ASSERT_OK(tw_h_station_show(c, "pl-n2s", &st));
        if (st.checkpoint == 3) {
            break;
        }
        TW_H_ASSERT_MSG(st.checkpoint < 3 && tw_h_now_ms() - t0 < 15000,
                        "n2s count %lld", st.checkpoint);
        tw_h_sleep_ms(20);
    }
    tw_h_station_op(c, "remove", "pl-n2s", 0);
}

/* ---- start-up failures ------------------------------------------------ */

static void
s_bad_start(const char *env, const char *cmd, const char *extra,
            const char *want)
{
    if (env) {
        setenv("TW_TEST_CHILD", env, 1);
    }
    const char *args[6] = {"--proc", cmd, NULL, NULL, NULL, NULL};
    if (extra) {
        args[2] = "--proc-hello-timeout";
        args[3] = extra;
    }
    pid_t w = tw_h_start_worker(&s_b, 1, args);
    unsetenv("TW_TEST_CHILD");
    TW_H_ASSERT(w > 0);
    int rc = tw_h_wait_exit(w, 30000);
    TW_H_ASSERT_MSG(rc == 2, "a worker whose pool cannot start (%s) exits "
                    "with %d", want, rc);
    TW_H_ASSERT_MSG(tw_h_log_contains(w, want), "no '%s' in the log", want);
}

int
main(void)
{
    tw_h_init("21-proc");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    const char *extra[] = {"--proc", s_child_cmd(), "--proc-count", "2",
                           NULL};
    pid_t w = tw_h_start_worker(&s_b, 4, extra);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 20000));
    TW_H_ASSERT(tw_h_log_contains(w, "1 proc pool(s) of 2 child(ren) ready"));
    tw_client_t *c = tw_client_new(s_b.frontend);
    tw_h_track_results(c);

    s_tasks(c, w);
    s_channel(c);
    s_stations(c);

    /* SIGTERM: the worker drains, its children go, it exits 0. */
    TW_H_ASSERT_EQ(tw_h_stop(w), 0);
    for (int i = 0; i < s_npids; i++) {
        TW_H_ASSERT_MSG(kill(s_pids[i], 0) != 0 && errno == ESRCH,
                        "child %d outlived its worker", s_pids[i]);
    }

    s_bad_start(NULL, "/nonexistent/program --x", NULL,
                "cannot run '/nonexistent/program --x'");
    s_bad_start("exit", s_child_cmd(), NULL,
                "exited before its hello: exit status 7: bad child: exiting "
                "before hello");
    s_bad_start("v2", s_child_cmd(), NULL,
                "it speaks protocol version 2; this worker speaks 1");
    s_bad_start("nohello", s_child_cmd(), "300", "no hello within 300 ms");
    s_bad_start("echo", s_child_cmd(), NULL,
                "handler 'echo' is also a built-in or plugin handler");
    s_bad_start(NULL, "perl 'unterminated", NULL, "unterminated '");

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    printf("21-proc: ok\n");
    return 0;
}
