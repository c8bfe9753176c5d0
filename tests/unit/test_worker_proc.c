/*  tests/unit/test_worker_proc.c - the edge of proc handlers
 *  (worker/proc.h) on a real loop with real children.
 *
 *  The engine's decisions are tested alone in test_worker_procpool; here
 *  the pieces around it: splitting a command line, the default number of
 *  children, a pool that cannot start (nothing left running), and a pool
 *  of one Perl child (tests/integration/proc/child.pl) whose handlers are
 *  registered and called through tw_call_t like any handler: a result, an
 *  error with its traceback, a cancel the child answers, then the close
 *  that shuts the child down. Run under valgrind as well (memcheck), this
 *  checks the edge's own memory across spawns, frames and closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "common/error.h"
#include "proto/proto.h"
#include "tests/unit/support/suite.h"
#include "worker/handlers.h"
#include "worker/proc.h"

#include <stdio.h>
#include <string.h>

/* Command lines ----------------------------------------------------------- */

static void
s_split_ok(const char *cmd, const char *const *want)
{
    char **v;
    char err[256];
    assert_int_equal(tw_procs_split(cmd, &v, err, sizeof err), 0);
    size_t i = 0;
    for (; want[i]; i++) {
        assert_non_null(v[i]);
        assert_string_equal(v[i], want[i]);
    }
    assert_null(v[i]);
    tw_free(v);
}

static void
s_split_bad(const char *cmd, const char *why)
{
    char **v = NULL;
    char err[256];
    assert_int_equal(tw_procs_split(cmd, &v, err, sizeof err), TW_EINVAL);
    assert_non_null(strstr(err, why));
}

static void
test_split(void **state)
{
    (void)state;
    s_split_ok("python3 -m taskwheel.handler app",
               (const char *[]){"python3", "-m", "taskwheel.handler", "app",
                                NULL});
    s_split_ok("  perl\t-I 'my lib'  x.pl ",
               (const char *[]){"perl", "-I", "my lib", "x.pl", NULL});
    s_split_ok("sh -c \"echo \\\"hi\\\" \\\\ $HOME\"",
               (const char *[]){"sh", "-c", "echo \"hi\" \\ $HOME", NULL});
    s_split_ok("a\\ b c'd'\"e\" ''",
               (const char *[]){"a b", "cde", "", NULL});
    s_split_ok("x", (const char *[]){"x", NULL});
    s_split_bad("", "no program");
    s_split_bad("   ", "no program");
    s_split_bad("'' x", "no program");
    s_split_bad("perl 'x", "unterminated '");
    s_split_bad("perl \"x", "unterminated \"");
    s_split_bad("perl x\\", "trailing \\");
}

static void
test_default_count(void **state)
{
    (void)state;
    unsigned cpus = (unsigned)uv_available_parallelism();
    unsigned cap = 2 * cpus < 4 ? 4 : 2 * cpus > 64 ? 64 : 2 * cpus;
    assert_int_equal(tw_procs_default_count(1), 1);
    assert_int_equal(tw_procs_default_count(3), 3 < cap ? 3 : cap);
    assert_int_equal(tw_procs_default_count(100000), cap);
    assert_true(tw_procs_default_count(100000) <= TW_PROC_COUNT_CAP);
}

/* A pool that cannot start ----------------------------------------------- */

static void
test_start_fails(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *cmds[] = {"/nonexistent/program"};
    tw_procs_opts_t o = {cmds, 1, 2, 1000, 100};
    tw_procs_t *ps = NULL;
    char err[512];
    assert_int_equal(tw_procs_start(&ps, &loop, &o, err, sizeof err),
                     TW_EFAILED);
    assert_null(ps);
    assert_non_null(strstr(err, "cannot run '/nonexistent/program'"));
    /* Nothing is left open on the loop. */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    uv_loop_init(&loop);
    const char *bad[] = {"perl 'x"};
    o.cmds = bad;
    assert_int_equal(tw_procs_start(&ps, &loop, &o, err, sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "unterminated"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* One Perl child ----------------------------------------------------------- */

typedef struct {
    int done;
    int st;
    char r[64];
    size_t rlen;
    char err[4096];
} s_out_t;

static void
s_done(tw_call_t *call, int st, const void *r, size_t rlen, const char *err)
{
    s_out_t *o = call->owner;
    o->done = 1;
    o->st = st;
    o->rlen = rlen < sizeof o->r ? rlen : sizeof o->r;
    if (r) {
        memcpy(o->r, r, o->rlen);
    }
    snprintf(o->err, sizeof o->err, "%s", err ? err : "");
}

static void
s_wait(uv_loop_t *loop, s_out_t *o)
{
    for (int i = 0; i < 100000 && !o->done; i++) {
        uv_run(loop, UV_RUN_ONCE);
    }
    assert_true(o->done);
}

static void
s_closed(void *ud)
{
    *(int *)ud = 1;
}

static void
test_one_child(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "perl -I '%s/examples/proc' '%s/tests/integration/proc/child.pl'",
             TW_SOURCE_DIR, TW_SOURCE_DIR);
    const char *cmds[] = {cmd};
    tw_procs_opts_t o = {cmds, 1, 1, 20000, 2000};
    tw_procs_t *ps = NULL;
    char err[512];
    assert_int_equal(tw_procs_start(&ps, &loop, &o, err, sizeof err), 0);
    assert_true(tw_procs_nhandlers(ps) > 5);
    tw_handlers_t reg;
    tw_handlers_init(&reg);
    assert_int_equal(tw_procs_register(ps, &reg, err, sizeof err), 0);
    const tw_handler_t *add = tw_handlers_find(&reg, "pl.add", 6);
    const tw_handler_t *fail = tw_handlers_find(&reg, "pl.fail", 7);
    const tw_handler_t *slp = tw_handlers_find(&reg, "pl.sleep", 8);
    assert_non_null(add);
    assert_non_null(fail);
    assert_non_null(slp);
    assert_null(tw_handlers_find(&reg, "pl.count", 8)->n2s);
    assert_non_null(tw_handlers_find(&reg, "pl.n2scount", 11)->n2s);

    /* A result: [2, 40] -> 42. */
    s_out_t out;
    memset(&out, 0, sizeof out);
    tw_call_t call;
    tw_call_init(&call, &loop, s_done, &out);
    call.attempt = 1;
    static const char pair[] = {(char)0x92, 0x02, 0x28};
    assert_int_equal(tw_call_start(&call, add, 7, pair, sizeof pair), 0);
    s_wait(&loop, &out);
    assert_int_equal(out.st, TW_ST_OK);
    assert_int_equal(out.rlen, 1);
    assert_int_equal(out.r[0], 42);

    /* An error with Perl's stack trace. */
    memset(&out, 0, sizeof out);
    static const char why[] = "\xa4nope";
    assert_int_equal(tw_call_start(&call, fail, 8, why, 5), 0);
    s_wait(&loop, &out);
    assert_int_equal(out.st, TW_ST_ERROR);
    assert_non_null(strstr(out.err, "nope\n"));
    assert_non_null(strstr(out.err, "main::inner"));

    /* A cancel the child answers. */
    memset(&out, 0, sizeof out);
    static const char secs[] = "\xa2" "30";
    assert_int_equal(tw_call_start(&call, slp, 9, secs, 3), 0);
    for (int i = 0; i < 20; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_false(out.done);
    tw_call_cancel(&call);
    s_wait(&loop, &out);
    assert_int_equal(out.st, TW_ST_ERROR);
    assert_int_equal(strncmp(out.err, "cancelled\n", 10), 0); /* + trace */
    tw_procpool_stats_t st;
    tw_procs_stats(ps, &st);
    assert_int_equal(st.calls, 3);
    assert_int_equal(st.cancels, 1);
    assert_int_equal(st.terms, 0);
    assert_int_equal(st.spawned, 1);

    int closed = 0;
    tw_procs_close(ps, s_closed, &closed);
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    tw_procs_stats(ps, &st);
    assert_int_equal(st.exits, 1);
    assert_int_equal(st.crashes, 0);
    tw_procs_free(&ps);
    tw_call_free(&call);
    tw_handlers_free(&reg);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_default_count),
        cmocka_unit_test(test_start_fails),
        cmocka_unit_test(test_one_child),
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
