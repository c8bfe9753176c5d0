/*  tests/unit/test_broker_chan.c - the routing rules of task channels.
 *
 *  broker/state/chan.c forwards CHAN items by task id and keeps no state (F5,
 *  S90-S93): an item from a worker goes to the task's submitter only if
 *  the task runs on that worker; an item from a client goes to the task's
 *  worker only if that client submitted it and it is running. These
 *  cases check each rule and the order of the client-side checks, which
 *  decides the ERROR a client gets (proto/PROTOCOL.md 14.2, rule 5). The
 *  rules read only a task and an item: no broker, loop or socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/chan.h"
#include "common/error.h"
#include "proto/proto.h"

#define S_MAX 1024LL

static tw_task_t
s_running(uint64_t id, uint64_t client, uint64_t worker)
{
    tw_task_t t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.client = client;
    t.worker = worker;
    t.state = TW_ST_RUNNING;
    return t;
}

static const char *
s_up(const tw_task_t *t, uint64_t wid, const char *ev, size_t dlen,
     int has_cr)
{
    return tw_chan_up_refusal(t, wid, ev, strlen(ev), dlen, has_cr, S_MAX);
}

static int
s_down(const tw_task_t *t, uint64_t client, int worker_known,
       const char *ev, int has_cr, size_t dlen, char *msg)
{
    return tw_chan_down_check(t, 7, client, worker_known, ev, strlen(ev),
                              has_cr, dlen, S_MAX, msg, 200);
}

/* Every worker event of a running task goes through (S91, S92). */
static void
test_up_forwards_running(void **state)
{
    (void)state;
    tw_task_t t = s_running(7, 3, 2);
    assert_null(s_up(&t, 2, "open", 0, 0));
    assert_null(s_up(&t, 2, "msg", 10, 0));
    assert_null(s_up(&t, 2, "req", 10, 1));
    assert_null(s_up(&t, 2, "close", 0, 0));
    assert_null(s_up(&t, 2, "msg", S_MAX, 0)); /* the limit is inclusive */
}

/* Items for tasks that do not run on the sender are dropped: unknown,
 * ended, pending again (requeued), or running on another worker. */
static void
test_up_drops_not_running(void **state)
{
    (void)state;
    assert_non_null(s_up(NULL, 2, "msg", 1, 0));
    tw_task_t t = s_running(7, 3, 2);
    assert_non_null(s_up(&t, 9, "msg", 1, 0));
    t.state = TW_ST_OK;
    assert_non_null(s_up(&t, 2, "msg", 1, 0));
    t.state = TW_ST_PENDING;
    assert_non_null(s_up(&t, 2, "close", 0, 0));
}

static void
test_up_drops_bad_items(void **state)
{
    (void)state;
    tw_task_t t = s_running(7, 3, 2);
    assert_string_equal(s_up(&t, 2, "shout", 0, 0), "unknown event");
    /* Down events are not a worker's to send. */
    assert_non_null(s_up(&t, 2, "resp", 0, 1));
    assert_non_null(s_up(&t, 2, "closereq", 0, 0));
    assert_non_null(s_up(&t, 2, "msg", S_MAX + 1, 0));
    assert_string_equal(s_up(&t, 2, "req", 1, 0), "request without cr");
}

static void
test_down_forwards(void **state)
{
    (void)state;
    char msg[200];
    tw_task_t t = s_running(7, 3, 2);
    assert_int_equal(s_down(&t, 3, 1, "resp", 1, 5, msg), 0);
    assert_int_equal(s_down(&t, 3, 1, "closereq", 0, 0, msg), 0);
}

/* S93: only the submitter may answer or close, only while it runs. */
static void
test_down_errors(void **state)
{
    (void)state;
    char msg[200];
    tw_task_t t = s_running(7, 3, 2);
    assert_int_equal(s_down(&t, 3, 1, "open", 0, 0, msg), TW_EINVAL);
    assert_non_null(strstr(msg, "unknown channel event 'open'"));
    assert_int_equal(s_down(&t, 3, 1, "resp", 0, 0, msg), TW_EINVAL);
    assert_non_null(strstr(msg, "no cr"));
    assert_int_equal(s_down(NULL, 3, 1, "resp", 1, 0, msg), TW_ENOENT);
    assert_int_equal(s_down(&t, 4, 1, "resp", 1, 0, msg), TW_EPERM);
    assert_int_equal(s_down(&t, 3, 1, "resp", 1, S_MAX + 1, msg), TW_E2BIG);
    assert_non_null(strstr(msg, "limit"));
    assert_int_equal(s_down(&t, 3, 0, "resp", 1, 0, msg), TW_ESTATE);
    t.cancel_requested = 1;
    assert_int_equal(s_down(&t, 3, 1, "closereq", 0, 0, msg), TW_ESTATE);
    t.cancel_requested = 0;
    t.state = TW_ST_CANCELLED;
    assert_int_equal(s_down(&t, 3, 1, "resp", 1, 0, msg), TW_ESTATE);
    assert_non_null(strstr(msg, "task 7 is not running"));
}

/* The checks run in a fixed order, so one item gets one predictable
 * error: the event first, then the task, the owner, the size, the state. */
static void
test_down_order(void **state)
{
    (void)state;
    char msg[200];
    tw_task_t t = s_running(7, 3, 2);
    t.state = TW_ST_OK;
    assert_int_equal(s_down(NULL, 4, 0, "bad", 0, S_MAX + 1, msg),
                     TW_EINVAL);
    assert_int_equal(s_down(NULL, 4, 0, "resp", 1, S_MAX + 1, msg),
                     TW_ENOENT);
    assert_int_equal(s_down(&t, 4, 0, "resp", 1, S_MAX + 1, msg), TW_EPERM);
    assert_int_equal(s_down(&t, 3, 0, "resp", 1, S_MAX + 1, msg), TW_E2BIG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_forwards_running),
        cmocka_unit_test(test_up_drops_not_running),
        cmocka_unit_test(test_up_drops_bad_items),
        cmocka_unit_test(test_down_forwards),
        cmocka_unit_test(test_down_errors),
        cmocka_unit_test(test_down_order),
    };
    return cmocka_run_group_tests_name("broker_chan", tests, NULL, NULL);
}
