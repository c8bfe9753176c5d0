/*  tests/integration/42-after.c - `submit --after`: tasks that wait for
 *  other tasks, through the real broker, worker and CLI.
 *
 *  Parents are held back by a group whose limit is 0 (nothing of it
 *  starts, S96) until the test lifts it, so "the child is blocked while
 *  its parent has not ended" is a fact here, not a race
 *  (PROTOCOL.md 18.2, docs/WORKFLOWS.md section 1):
 *
 *    - all-ok (the default): a child of two parents is blocked (state
 *      "blocked" in a RESULT query, counted in status "blocked", published
 *      as task.submitted with state "blocked"), and a grandchild with it;
 *      once both parents end ok the child is released (task.released) and
 *      runs with --with-results: its arguments are the parents' results
 *      in the order named, then its own;
 *    - a parent that fails cancels its child with "upstream failed: task
 *      <id> ended error", which cancels the grandchild in turn ("... ended
 *      cancelled"), while a task waiting --after-any-end for the child
 *      runs, with nil for the child's result;
 *    - parents that already ended: all-ok after a failed one ends the new
 *      task at once (submit --wait exits 1 naming the parent), any-end
 *      runs it at once;
 *    - results that would not fit max-payload (200 bytes here) end the
 *      child `error`, saying so, instead of running it;
 *    - a blocked task cancels by id and by its group, and its parent's
 *      end later changes nothing;
 *    - refused at submit, nothing created: a parent the broker does not
 *      know (exit 1, named), malformed --after values (exit 2);
 *    - durable: a broker stopped while a task is blocked comes back with
 *      it blocked and releases it, with results, when its parent ends;
 *      and a broker SIGKILLed as soon as a parent has ended runs the
 *      child exactly once after the restart.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

static tw_h_broker_t s_b;
static tw_client_t *s_c;
static void *s_sub;

/* Run the CLI; returns its exit code, what it printed in s_out. */
static char s_out[8192];

static int
s_cli(const char *const args[])
{
    return tw_h_cli(&s_b, args, s_out, sizeof s_out, NULL);
}

/* `submit ARGS...` that must succeed; returns the id it printed. */
static uint64_t
s_submit(const char *const args[])
{
    int rc = s_cli(args);
    TW_H_ASSERT_MSG(rc == 0, "submit exited %d:\n%s", rc, s_out);
    char *end;
    unsigned long long id = strtoull(s_out, &end, 10);
    TW_H_ASSERT_MSG(id > 0 && end != s_out, "no id in:\n%s", s_out);
    return id;
}

static const char *
s_id(uint64_t id, char *buf)
{
    snprintf(buf, 24, "%" PRIu64, id);
    return buf;
}

/* The state of task `id` now, and (if `err`) its error text. */
static int
s_state(uint64_t id, char *err, size_t elen)
{
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(s_c, id, 5000, &r));
    int st = r->state;
    if (err) {
        snprintf(err, elen, "%s", r->error ? r->error : "");
    }
    tw_result_free(&r);
    return st;
}

/* Wait for task `id` to be in `state`; returns its result as JSON text
 * (`taskwheel --json result`), in s_out. */
static void
s_wait(uint64_t id, int state)
{
    int rc = tw_h_wait_state(s_c, id, state, 30000);
    TW_H_ASSERT_MSG(rc == 0, "task %" PRIu64 " never reached state %d "
                    "(now %d)", id, state, s_state(id, NULL, 0));
}

static long long
s_status(const char *key)
{
    long long v = -1;
    TW_H_ASSERT_OK(tw_h_status_field(s_c, key, &v));
    return v;
}

/* The value of string key `k` in a msgpack map, or "" (static). */
static const char *
s_map_str(const msgpack_object *m, const char *k)
{
    static char buf[64];
    buf[0] = '\0';
    for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size;
         i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == strlen(k) &&
            memcmp(kv->key.via.str.ptr, k, strlen(k)) == 0) {
            if (kv->val.type == MSGPACK_OBJECT_STR) {
                snprintf(buf, sizeof buf, "%.*s", (int)kv->val.via.str.size,
                         kv->val.via.str.ptr);
            } else if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(buf, sizeof buf, "%" PRIu64, kv->val.via.u64);
            }
        }
    }
    return buf;
}

/* Read status messages until `topic` for task `id` comes; returns its
 * "state". Fails the test after 20 s. */
static const char *
s_event(const char *topic, uint64_t id)
{
    static char state[64];
    char want[24];
    s_id(id, want);
    uint64_t end = tw_h_now_ms() + 20000;
    while (tw_h_now_ms() < end) {
        char t[128];
        zmq_msg_t body;
        if (tw_h_sub_recv(s_sub, t, sizeof t, &body, 500) != 0) {
            continue;
        }
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        int hit = 0;
        if (strcmp(t, topic) == 0 &&
            msgpack_unpack_next(&up, zmq_msg_data(&body), zmq_msg_size(&body),
                                NULL) == MSGPACK_UNPACK_SUCCESS &&
            strcmp(s_map_str(&up.data, "id"), want) == 0) {
            snprintf(state, sizeof state, "%s", s_map_str(&up.data, "state"));
            hit = 1;
        }
        msgpack_unpacked_destroy(&up);
        zmq_msg_close(&body);
        if (hit) {
            return state;
        }
    }
    tw_h_fail(__FILE__, __LINE__, "no %s for task %" PRIu64, topic, id);
}

static void
s_gate(const char *limit)
{
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("group", "limit", "gate", limit)), 0);
}

/* All-ok, with results; events and status. */
static void
s_release_with_results(void)
{
    char a[24], b2[24], c[24];
    s_gate("0");
    uint64_t p1 = s_submit(TW_H_ARGS("submit", "echo", "\"one\"", "--group",
                                     "gate"));
    uint64_t p2 = s_submit(TW_H_ARGS("submit", "echo", "{\"two\": 2}",
                                     "--group", "gate"));
    char list[64];
    snprintf(list, sizeof list, "%s,%s", s_id(p1, a), s_id(p2, b2));
    uint64_t ch = s_submit(TW_H_ARGS("submit", "echo", "[\"mine\", 3]",
                                     "--after", list, "--with-results"));
    TW_H_ASSERT_STREQ(s_event("task.submitted", ch), "blocked");
    uint64_t gc = s_submit(TW_H_ARGS("submit", "echo", "\"last\"", "--after",
                                     s_id(ch, c)));
    TW_H_ASSERT_EQ(s_state(ch, NULL, 0), TW_ST_BLOCKED);
    TW_H_ASSERT_EQ(s_state(gc, NULL, 0), TW_ST_BLOCKED);
    TW_H_ASSERT_EQ(s_status("blocked"), 2);
    /* The CLI shows the state by name. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "result", s_id(ch, c))), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "\"state\":\"blocked\""),
                    "result said:\n%s", s_out);

    s_gate("none");
    TW_H_ASSERT_STREQ(s_event("task.released", ch), "pending");
    s_wait(ch, TW_ST_OK);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "result", s_id(ch, c))), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "[\"one\",{\"two\":2},\"mine\",3]"),
                    "the child's result:\n%s", s_out);
    s_wait(gc, TW_ST_OK);
    TW_H_ASSERT_EQ(s_status("blocked"), 0);
    TW_H_ASSERT(s_status("released") >= 2);
}

/* A failure travels down; any-end runs anyway. */
static void
s_upstream_failed(void)
{
    char a[24], b2[24];
    char err[256];
    s_gate("0");
    uint64_t f = s_submit(TW_H_ARGS("submit", "fail", "\"boom\"", "--group",
                                    "gate"));
    uint64_t d1 = s_submit(TW_H_ARGS("submit", "echo", "1", "--after",
                                     s_id(f, a)));
    uint64_t d2 = s_submit(TW_H_ARGS("submit", "echo", "2", "--after",
                                     s_id(d1, a)));
    uint64_t e = s_submit(TW_H_ARGS("submit", "echo", "\"e\"", "--after",
                                    s_id(d1, a), "--after-any-end",
                                    "--with-results"));
    TW_H_ASSERT_EQ(s_state(d2, NULL, 0), TW_ST_BLOCKED);
    s_gate("none");
    s_wait(d2, TW_ST_CANCELLED);
    TW_H_ASSERT_EQ(s_state(f, NULL, 0), TW_ST_ERROR);
    TW_H_ASSERT_EQ(s_state(d1, err, sizeof err), TW_ST_CANCELLED);
    char want[96];
    snprintf(want, sizeof want, "upstream failed: task %" PRIu64
             " ended error", f);
    TW_H_ASSERT_STREQ(err, want);
    s_state(d2, err, sizeof err);
    snprintf(want, sizeof want, "upstream failed: task %" PRIu64
             " ended cancelled", d1);
    TW_H_ASSERT_STREQ(err, want);
    s_wait(e, TW_ST_OK);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "result", s_id(e, b2))), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "[null,\"e\"]"), "any-end result:\n%s",
                    s_out);
    TW_H_ASSERT(s_status("upstream_failed") >= 2);

    /* Parents that already ended. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("submit", "echo", "1", "--after",
                                   s_id(f, a), "--wait")),
                   1);
    snprintf(want, sizeof want, "upstream failed: task %" PRIu64
             " ended error", f);
    TW_H_ASSERT_MSG(strstr(s_out, want), "--wait said:\n%s", s_out);
    char list[64];
    snprintf(list, sizeof list, "%s,%s", s_id(f, a), s_id(d1, b2));
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("submit", "echo", "\"ran\"", "--after",
                                   list, "--after-any-end", "--wait")),
                   0);
    TW_H_ASSERT_MSG(strstr(s_out, "\"ran\""), "--wait said:\n%s", s_out);
}

/* The parents' results and the child's own arguments over max-payload. */
static void
s_results_too_big(void)
{
    char a[24], err[256];
    char big[160];
    memset(big, 'x', sizeof big);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = '\0';
    s_gate("0");
    uint64_t p = s_submit(TW_H_ARGS("submit", "echo", big, "--group",
                                    "gate"));
    uint64_t k = s_submit(TW_H_ARGS("submit", "echo", big, "--after",
                                    s_id(p, a), "--with-results"));
    s_gate("none");
    s_wait(k, TW_ST_ERROR);
    TW_H_ASSERT_EQ(s_state(p, NULL, 0), TW_ST_OK);
    s_state(k, err, sizeof err);
    TW_H_ASSERT_STREQ(err, "the parents' results and the arguments exceed "
                           "max-payload (200 bytes)");
}

/* Cancel while blocked; refusals. */
static void
s_cancel_and_refusals(void)
{
    char a[24], b2[24];
    s_gate("0");
    uint64_t g = s_submit(TW_H_ARGS("submit", "echo", "1", "--group",
                                    "gate"));
    uint64_t h = s_submit(TW_H_ARGS("submit", "echo", "1", "--after",
                                    s_id(g, a)));
    uint64_t j = s_submit(TW_H_ARGS("submit", "echo", "1", "--after",
                                    s_id(g, a), "--group", "job"));
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("cancel", s_id(h, b2))), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "cancelled"), "cancel said:\n%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("cancel", "--group", "job")), 0);
    TW_H_ASSERT_EQ(s_state(h, NULL, 0), TW_ST_CANCELLED);
    TW_H_ASSERT_EQ(s_state(j, NULL, 0), TW_ST_CANCELLED);
    s_gate("none");
    s_wait(g, TW_ST_OK);
    TW_H_ASSERT_EQ(s_state(h, NULL, 0), TW_ST_CANCELLED);
    TW_H_ASSERT_EQ(s_state(j, NULL, 0), TW_ST_CANCELLED);

    long long before = s_status("submitted");
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("submit", "echo", "1", "--after",
                                   "999999")),
                   1);
    TW_H_ASSERT_MSG(strstr(s_out, "parent task 999999 is not known"),
                    "submit said:\n%s", s_out);
    static const char *const bad[] = {"x", "1,,2", "1,", "-3", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("submit", "echo", "1", "--after",
                                       bad[i])),
                       2);
        TW_H_ASSERT_MSG(strstr(s_out, "--after needs task ids"),
                        "'%s' said:\n%s", bad[i], s_out);
    }
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("submit", "echo", "1", "--after")), 2);
    TW_H_ASSERT_EQ(s_status("submitted"), before);
}

/* Lines in file `path` (0 if it does not exist). */
static int
s_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    while (f && (ch = fgetc(f)) != EOF) {
        n += ch == '\n';
    }
    if (f) {
        fclose(f);
    }
    return n;
}

/* Across restarts. */
static void
s_restarts(void)
{
    char a[24];
    s_gate("0");
    uint64_t p = s_submit(TW_H_ARGS("submit", "echo", "\"kept\"", "--group",
                                    "gate"));
    uint64_t k = s_submit(TW_H_ARGS("submit", "echo", "null", "--after",
                                    s_id(p, a), "--with-results"));
    tw_client_destroy(&s_c);
    zmq_close(s_sub);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    TW_H_ASSERT_OK(tw_h_restart_broker(&s_b, TW_H_ARGS("--max-payload",
                                                       "200")));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    s_c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(s_c);
    TW_H_ASSERT_EQ(s_state(k, NULL, 0), TW_ST_BLOCKED);
    TW_H_ASSERT_EQ(s_status("blocked"), 1);
    s_gate("none");
    s_wait(k, TW_ST_OK);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "result", s_id(k, a))), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "[\"kept\"]"), "result:\n%s", s_out);

    /* SIGKILL as soon as the parent has ended, the child's release with
     * it: the child (held by a second gate so that it cannot start yet)
     * is released once, and runs once. */
    char path[600], script[700];
    snprintf(path, sizeof path, "%s/runs", tw_h_tmpdir());
    snprintf(script, sizeof script, "[\"sh\", \"-c\", \"echo run >> %s\"]",
             path);
    s_gate("0");
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("group", "limit", "gate2", "0")), 0);
    p = s_submit(TW_H_ARGS("submit", "noop", "null", "--group", "gate"));
    k = s_submit(TW_H_ARGS("submit", "exec", script, "--after", s_id(p, a),
                           "--group", "gate2"));
    s_gate("none");
    s_wait(p, TW_ST_OK);
    TW_H_ASSERT_OK(tw_h_kill(s_b.pid, SIGKILL));
    tw_h_wait_exit(s_b.pid, 10000);
    tw_client_destroy(&s_c);
    TW_H_ASSERT_OK(tw_h_restart_broker(&s_b, TW_H_ARGS("--max-payload",
                                                       "200")));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    s_c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(s_c);
    /* Blocked still (the parent's end was lost with the broker: it runs
     * again) or released; never both, never twice. */
    int st = s_state(k, NULL, 0);
    TW_H_ASSERT_MSG(st == TW_ST_BLOCKED || st == TW_ST_PENDING,
                    "child in state %d after the restart", st);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("group", "limit", "gate2", "none")), 0);
    s_wait(k, TW_ST_OK);
    TW_H_ASSERT_EQ(s_state(p, NULL, 0), TW_ST_OK);
    tw_h_sleep_ms(300); /* a second run, if any, would show here */
    TW_H_ASSERT_EQ(s_lines(path), 1);
}

int
main(void)
{
    tw_h_init("42-after");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, TW_H_ARGS("--max-payload",
                                                     "200")));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&s_b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    s_c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(s_c);
    s_sub = tw_h_sub(s_b.status, TW_H_ARGS("task."));

    s_release_with_results();
    s_upstream_failed();
    s_results_too_big();
    s_cancel_and_refusals();
    s_restarts();

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    printf("42-after: ok\n");
    return 0;
}
