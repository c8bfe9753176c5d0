/*  tests/unit/test_client_oom.c - libtaskwheel under out-of-memory.
 *
 *  The library never ends its caller's process (taskwheel/client.h): a
 *  constructor returns NULL and a call TW_ENOMEM with nothing kept. Each
 *  case sweeps an API call over its allocations with the countdown
 *  allocator of tests/unit/support/faultsim.h: run k lets k allocations
 *  succeed and fails the next one, for k = 0, 1, ... until a run needs
 *  no failure at all. Every run must end in a clean error or success (an
 *  abort would end the suite), give back every block, and leave the
 *  client as if the failed call had not been made.
 *
 *  No broker is needed: the client connects in the background and a
 *  submission only queues the task (the endpoint is a closed port).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/error.h"
#include "taskwheel/client.h"
#include "taskwheel/graph.h"
#include "tests/unit/support/faultsim.h"

#include <string.h>

#define S_EP "tcp://127.0.0.1:1"
#define S_MAX_RUNS 1000 /* a sweep that never ends is a failure */

/* tw_client_new fails cleanly at each of its allocations. */
static void
test_new_sweep(void **state)
{
    (void)state;
    long k = 0;
    for (; k < S_MAX_RUNS; k++) {
        assert_int_equal(tw_fs_install(k, 1), 0);
        tw_client_t *c = tw_client_new(S_EP);
        long failed = tw_fs.fails;
        if (failed) {
            assert_null(c);
        } else {
            assert_non_null(c);
            tw_client_destroy(&c);
        }
        assert_int_equal(tw_fs.live, 0);
        if (!failed) {
            break;
        }
    }
    assert_true(k > 0 && k < S_MAX_RUNS); /* it did allocate, and ended */
}

/* One submission of `spec` with allocation number k failing; returns
 * the call's code after checking what the client kept. */
static int
s_submit_once(tw_client_t *c, const tw_task_spec_t *spec, long k,
              uint64_t *next_seq)
{
    tw_client_stats_t before, after;
    tw_client_stats(c, &before);
    tw_fs.delay = k;
    tw_fs.repeat = 1;
    tw_fs.fails = 0;
    uint64_t seq = 0;
    int rc = tw_client_submit(c, spec, &seq);
    tw_fs.delay = -1;
    tw_client_stats(c, &after);
    if (rc == 0) {
        assert_int_equal(seq, *next_seq);
        assert_int_equal(after.unacked, before.unacked + 1);
        (*next_seq)++;
    } else {
        /* Nothing kept: no seq used, nothing waiting to be sent. */
        assert_int_equal(rc, TW_ENOMEM);
        assert_true(tw_fs.fails > 0);
        assert_int_equal(after.unacked, before.unacked);
    }
    return rc;
}

static void
s_on_event(void *arg, const tw_event_t *ev)
{
    (void)arg;
    (void)ev;
}

/* tw_client_submit (with and without a session record) at each of its
 * allocations: TW_ENOMEM leaves the outbox and the sequence numbers as
 * they were, and the next call goes through. */
static void
test_submit_sweep(void **state)
{
    (void)state;
    assert_int_equal(tw_fs_install(-1, 0), 0);
    tw_client_t *c = tw_client_new(S_EP);
    assert_non_null(c);
    static const unsigned char args[] = {0x92, 0x01, 0xa1, 'x'}; /* [1,"x"] */
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "echo";
    spec.args = args;
    spec.args_len = sizeof args;
    tw_task_spec_t evspec = spec;
    evspec.on_event = s_on_event;
    const tw_task_spec_t *specs[2] = {&spec, &evspec};
    uint64_t next_seq = 1;
    int refused = 0;
    for (int s = 0; s < 2; s++) {
        long k = 0;
        /* Enough submissions that the maps grow while failures come. */
        for (int i = 0; i < 200; i++) {
            int rc = s_submit_once(c, specs[s], k, &next_seq);
            refused += rc != 0;
            k = rc == 0 ? k + 1 : 0;
            if (k > 8) {
                k = 0;
            }
        }
    }
    assert_true(refused > 0);
    tw_client_stats_t st;
    tw_client_stats(c, &st);
    assert_int_equal(st.unacked, next_seq - 1);
    tw_client_destroy(&c);
    assert_int_equal(tw_fs.live, 0);
}

/* tw_client_graph_submit of a chord (two parents, one child) at each of
 * its allocations: a graph is queued whole or not at all. */
static void
test_graph_sweep(void **state)
{
    (void)state;
    assert_int_equal(tw_fs_install(-1, 0), 0);
    tw_client_t *c = tw_client_new(S_EP);
    assert_non_null(c);
    static const size_t parents[2] = {0, 1};
    tw_graph_node_t nodes[3];
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < 3; i++) {
        nodes[i].spec.handler = "noop";
    }
    nodes[2].parents = parents;
    nodes[2].nparents = 2;
    size_t queued = 0;
    long k = 0;
    for (; k < S_MAX_RUNS; k++) {
        tw_fs.delay = k;
        tw_fs.repeat = 1;
        tw_fs.fails = 0;
        uint64_t seqs[3];
        int rc = tw_client_graph_submit(c, nodes, 3, seqs);
        long failed = tw_fs.fails;
        tw_fs.delay = -1;
        tw_client_stats_t st;
        tw_client_stats(c, &st);
        if (rc == 0) {
            queued += 3;
            assert_int_equal(seqs[1], seqs[0] + 1);
            assert_int_equal(seqs[2], seqs[0] + 2);
        } else {
            assert_int_equal(rc, TW_ENOMEM);
        }
        assert_int_equal(st.unacked, queued); /* all three or none */
        if (!failed) {
            break;
        }
    }
    assert_true(k > 0 && k < S_MAX_RUNS);
    tw_client_destroy(&c);
    assert_int_equal(tw_fs.live, 0);
}

/* tw_client_flush and the session setters: TW_ENOMEM, then success. */
static void
test_flush_and_setters(void **state)
{
    (void)state;
    assert_int_equal(tw_fs_install(-1, 0), 0);
    tw_client_t *c = tw_client_new(S_EP);
    assert_non_null(c);
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = "noop";
    assert_int_equal(tw_client_submit(c, &spec, NULL), 0);

    tw_fs.delay = 0;
    tw_fs.repeat = 1;
    int rc = tw_client_flush(c);
    assert_int_equal(rc, TW_ENOMEM);
    rc = tw_client_flush(c); /* the task was still in the outbox */
    assert_true(rc == 0 || rc == TW_EAGAIN);

    tw_fs.delay = 0;
    tw_fs.repeat = 1;
    assert_int_equal(tw_client_set_policy(c, TW_POLICY_CONTINUE,
                                          TW_POLICY_CONTINUE),
                     TW_ENOMEM);
    tw_fs.delay = 0;
    tw_fs.repeat = 1;
    assert_int_equal(tw_client_on_event(c, s_on_event, NULL), TW_ENOMEM);
    assert_int_equal(tw_client_on_event(c, s_on_event, NULL), 0);
    assert_int_equal(tw_client_set_policy(c, TW_POLICY_CONTINUE,
                                          TW_POLICY_CONTINUE),
                     0);
    assert_string_equal(tw_client_last_error(c), "");
    tw_client_destroy(&c);
    assert_int_equal(tw_fs.live, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_new_sweep, tw_fs_teardown),
        cmocka_unit_test_teardown(test_submit_sweep, tw_fs_teardown),
        cmocka_unit_test_teardown(test_graph_sweep, tw_fs_teardown),
        cmocka_unit_test_teardown(test_flush_and_setters, tw_fs_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
