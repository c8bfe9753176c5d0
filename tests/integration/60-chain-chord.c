/*  tests/integration/60-chain-chord.c - chains and chords submitted in one
 *  request (PROTOCOL.md 18.9, docs/WORKFLOWS.md section 2), through the
 *  real broker, worker, CLI and libtaskwheel (taskwheel/graph.h):
 *
 *    - `taskwheel chain --wait`: each step's result is passed to the next
 *      (echo "a" -> echo ["b"] -> echo ["c"] prints [["a","b"],"c"]);
 *    - tw_client_chain over five incr steps: 1 -> 2 -> ... -> 6, one SUBMIT
 *      (the ids come back in order, each step blocked until the one
 *      before ended);
 *    - `taskwheel chord --wait`: the callback gets the fan-out's results in
 *      order, then its own arguments; tw_client_chord gives n + 1 ids;
 *    - a step that fails cancels the rest of its chain ("upstream failed:
 *      task <id> ended error") and a chord's callback;
 *    - a graph under a group cancels as one unit: its first step held by
 *      the group's limit 0 (nothing of it starts, S96), `cancel --group`
 *      ends every task of the chain, the blocked ones included; before
 *      that, `tasks show` says why each waits ("group job-7 at its limit
 *      0", "waiting for task <id>").
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"
#include "taskwheel/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tw_h_broker_t s_b;
static tw_client_t *s_c;
static char s_out[8192];

static int
s_cli(const char *const args[])
{
    return tw_h_cli(&s_b, args, s_out, sizeof s_out, NULL);
}

static int
s_state(uint64_t id, char *err, size_t elen)
{
    return tw_h_state_of(s_c, id, err, elen);
}

static void
s_wait(uint64_t id, int state)
{
    tw_h_expect_state(s_c, id, state);
}

/* The ids a `chain`/`chord` printed, one a line; returns how many. */
static size_t
s_ids(uint64_t *ids, size_t cap)
{
    size_t n = 0;
    char *p = s_out, *end;
    while (n < cap && (ids[n] = strtoull(p, &end, 10)) > 0 && end != p) {
        n++;
        p = end;
    }
    return n;
}

static void
s_chain_cli(void)
{
    int rc = s_cli(TW_H_ARGS("chain", "--wait", "echo", "\"a\"", "--", "echo",
                             "[\"b\"]", "--", "echo", "[\"c\"]"));
    TW_H_ASSERT_MSG(rc == 0, "chain exited %d:\n%s", rc, s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "[[\"a\",\"b\"],\"c\"]"),
                    "chain printed:\n%s", s_out);
    /* Without --wait: the ids, in order, the later ones waiting for the
     * earlier (consecutive ids: one SUBMIT). */
    rc = s_cli(TW_H_ARGS("chain", "echo", "1", "--", "echo", "[2]"));
    TW_H_ASSERT_MSG(rc == 0, "chain exited %d:\n%s", rc, s_out);
    uint64_t ids[4];
    TW_H_ASSERT_EQ(s_ids(ids, 4), 2);
    TW_H_ASSERT_EQ(ids[1], ids[0] + 1);
    s_wait(ids[1], TW_ST_OK);
}

static void
s_chain_lib(void)
{
    tw_task_spec_t steps[5];
    memset(steps, 0, sizeof steps);
    unsigned char one[1];
    size_t ol = tw_h_pack_int(one, 1);
    for (int i = 0; i < 5; i++) {
        steps[i].handler = "incr";
    }
    steps[0].args = one;
    steps[0].args_len = ol;
    uint64_t ids[5];
    char err[256];
    TW_H_ASSERT_OK(tw_client_chain(s_c, steps, 5, NULL, ids, 10000, err,
                                   sizeof err));
    for (int i = 1; i < 5; i++) {
        TW_H_ASSERT_MSG(ids[i] > ids[i - 1], "ids not in order");
    }
    s_wait(ids[4], TW_ST_OK);
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(s_c, ids[4], 5000, &r));
    TW_H_ASSERT_EQ(tw_h_result_int(r), 6);
    tw_result_free(&r);
}

static void
s_chord(void)
{
    int rc = s_cli(TW_H_ARGS("chord", "--wait", "incr", "1", "--", "incr",
                             "2", "--", "incr", "3", "--then", "echo",
                             "\"sum\""));
    TW_H_ASSERT_MSG(rc == 0, "chord exited %d:\n%s", rc, s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "[2,3,4,\"sum\"]"), "chord printed:\n%s",
                    s_out);

    tw_task_spec_t head[3], cb;
    memset(head, 0, sizeof head);
    memset(&cb, 0, sizeof cb);
    unsigned char a[3][9];
    for (int i = 0; i < 3; i++) {
        head[i].handler = "incr";
        head[i].args = a[i];
        head[i].args_len = tw_h_pack_int(a[i], 10 * (i + 1));
    }
    cb.handler = "echo";
    uint64_t ids[4];
    char err[256];
    TW_H_ASSERT_OK(tw_client_chord(s_c, head, 3, &cb, "chord-lib", ids, 10000,
                                   err, sizeof err));
    s_wait(ids[3], TW_ST_OK);
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, ids[3]);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "result", id)), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "[11,21,31]"), "callback result:\n%s",
                    s_out);
    /* Every task joined the group. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("--json", "group", "get", "chord-lib")),
                   0);
    TW_H_ASSERT_MSG(strstr(s_out, "\"admitted\":4"), "group:\n%s", s_out);
}

static void
s_failures(void)
{
    int rc = s_cli(TW_H_ARGS("chain", "--wait", "echo", "\"a\"", "--",
                             "fail", "\"boom\"", "--", "echo", "[1]"));
    TW_H_ASSERT_MSG(rc == 1, "chain exited %d:\n%s", rc, s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "upstream failed: task") &&
                        strstr(s_out, "ended error"),
                    "chain said:\n%s", s_out);
    rc = s_cli(TW_H_ARGS("chord", "incr", "1", "--", "fail", "\"no\"",
                         "--then", "echo", "\"cb\""));
    TW_H_ASSERT_MSG(rc == 0, "chord exited %d:\n%s", rc, s_out);
    uint64_t ids[4];
    TW_H_ASSERT_EQ(s_ids(ids, 4), 3);
    s_wait(ids[2], TW_ST_CANCELLED);
    char err[256];
    s_state(ids[2], err, sizeof err);
    char want[64];
    snprintf(want, sizeof want, "upstream failed: task %" PRIu64
             " ended error", ids[1]);
    TW_H_ASSERT_STREQ(err, want);
}

static void
s_cancel_group(void)
{
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("group", "limit", "job-7", "0")), 0);
    int rc = s_cli(TW_H_ARGS("chain", "--group", "job-7", "echo", "1", "--",
                             "echo", "[2]", "--", "echo", "[3]"));
    TW_H_ASSERT_MSG(rc == 0, "chain exited %d:\n%s", rc, s_out);
    uint64_t ids[4];
    TW_H_ASSERT_EQ(s_ids(ids, 4), 3);
    TW_H_ASSERT_EQ(s_state(ids[0], NULL, 0), TW_ST_PENDING);
    TW_H_ASSERT_EQ(s_state(ids[1], NULL, 0), TW_ST_BLOCKED);
    TW_H_ASSERT_EQ(s_state(ids[2], NULL, 0), TW_ST_BLOCKED);
    /* Each says why it waits (PROTOCOL.md 18.9). */
    char id[24], want[64];
    snprintf(id, sizeof id, "%" PRIu64, ids[0]);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("tasks", "show", id)), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "waits: group job-7 at its limit 0"),
                    "tasks show said:\n%s", s_out);
    snprintf(id, sizeof id, "%" PRIu64, ids[2]);
    snprintf(want, sizeof want, "waits: waiting for task %" PRIu64, ids[1]);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("tasks", "show", id)), 0);
    TW_H_ASSERT_MSG(strstr(s_out, want), "tasks show said:\n%s", s_out);
    rc = s_cli(TW_H_ARGS("cancel", "--group", "job-7"));
    TW_H_ASSERT_MSG(rc == 0, "cancel exited %d:\n%s", rc, s_out);
    for (int i = 0; i < 3; i++) {
        s_wait(ids[i], TW_ST_CANCELLED);
    }
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("group", "limit", "job-7", "none")), 0);
}

int
main(void)
{
    tw_h_init("60-chain-chord");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&s_b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    s_c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(s_c);

    s_chain_cli();
    s_chain_lib();
    s_chord();
    s_failures();
    s_cancel_group();

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(s_b.pid), 0);
    printf("60-chain-chord: ok\n");
    return 0;
}
