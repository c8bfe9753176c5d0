/*  tests/integration/52-schedule-overlap.c - a tick that comes while the
 *  schedule's last task still runs meets the overlap policy (PROTOCOL.md
 *  18.11, docs/WORKFLOWS.md 3.5).
 *
 *  A real broker and worker; each schedule fires `sleep` tasks longer
 *  than its period, and a SUB socket reads its events:
 *
 *    - skip: while the first task runs, the next tick is skipped with
 *      reason "overlap"; run-now still fires (skip does not apply to it);
 *    - queue: the next tick fires a task that runs after the live one
 *      (its event names it in "after"), blocked until that one ended,
 *      and both end ok;
 *    - cancel-previous: the next tick cancels the running task and fires.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

static tw_h_broker_t s_b;
static void *s_sub;

static void
s_add(const char *name, const char *secs, const char *overlap)
{
    char out[4096];
    int rc = tw_h_cli(&s_b, TW_H_ARGS("schedule", "add", name, "@every 1s",
                                      "sleep", secs, "--overlap", overlap),
                      out, sizeof out, NULL);
    TW_H_ASSERT_MSG(rc == 0, "add %s exited %d:\n%s", name, rc, out);
}

static void
s_remove(const char *name)
{
    char out[4096];
    TW_H_ASSERT_EQ(tw_h_cli(&s_b, TW_H_ARGS("schedule", "remove", name), out,
                            sizeof out, NULL),
                   0);
}

/* The next event of `name`; fails the test after 30 s. */
static tw_h_sched_ev_t
s_event(const char *name)
{
    tw_h_sched_ev_t ev;
    TW_H_ASSERT_MSG(tw_h_schedule_event(s_sub, name, &ev, 30000) == 0,
                    "no event of schedule %s", name);
    return ev;
}

static tw_h_sched_ev_t
s_fired(const char *name)
{
    tw_h_sched_ev_t ev;
    do {
        ev = s_event(name);
    } while (!ev.fired);
    return ev;
}

/* The state of task `id` now. */
static int
s_state(tw_client_t *c, uint64_t id)
{
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, id, 5000, &r));
    int st = r->state;
    tw_result_free(&r);
    return st;
}

int
main(void)
{
    tw_h_init("52-schedule-overlap");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&s_b, 8, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(c);
    static const char *const topics[] = {"schedule.", NULL};
    s_sub = tw_h_sub(s_b.status, topics);

    /* skip: a tick while the task sleeps is skipped; run-now fires. */
    s_add("ov-skip", "30", "skip");
    tw_h_sched_ev_t first = s_fired("ov-skip");
    tw_h_sched_ev_t ev = s_event("ov-skip");
    TW_H_ASSERT_MSG(!ev.fired && strcmp(ev.reason, "overlap") == 0,
                    "after the first tick: fired %d, reason '%s'", ev.fired,
                    ev.reason);
    TW_H_ASSERT(ev.tick > first.tick);
    TW_H_ASSERT_EQ(s_state(c, first.id), TW_ST_RUNNING);
    char out[4096];
    TW_H_ASSERT_EQ(tw_h_cli(&s_b, TW_H_ARGS("schedule", "run-now", "ov-skip"),
                            out, sizeof out, NULL),
                   0);
    do {
        ev = s_event("ov-skip");
    } while (!ev.fired);
    TW_H_ASSERT(ev.manual);
    TW_H_ASSERT_EQ(ev.id, strtoull(out, NULL, 10));
    s_remove("ov-skip");
    uint64_t stop[2] = {first.id, ev.id};
    TW_H_ASSERT_OK(tw_client_cancel(c, stop, 2, 5000));

    /* queue: the next task waits for the live one, then runs. */
    s_add("ov-queue", "1.5", "queue");
    tw_h_sched_ev_t q1 = s_fired("ov-queue");
    tw_h_sched_ev_t q2 = s_fired("ov-queue");
    s_remove("ov-queue");
    TW_H_ASSERT_EQ(q2.after, q1.id);
    int st = s_state(c, q2.id);
    if (s_state(c, q1.id) == TW_ST_RUNNING) {
        TW_H_ASSERT_MSG(st == TW_ST_BLOCKED, "task %" PRIu64 " is in state "
                        "%d while %" PRIu64 " runs", q2.id, st, q1.id);
    }
    TW_H_ASSERT_OK(tw_h_wait_state(c, q1.id, TW_ST_OK, 30000));
    TW_H_ASSERT_OK(tw_h_wait_state(c, q2.id, TW_ST_OK, 30000));

    /* cancel-previous: the next tick cancels the running task. */
    s_add("ov-cancel", "30", "cancel-previous");
    tw_h_sched_ev_t c1 = s_fired("ov-cancel");
    tw_h_sched_ev_t c2 = s_fired("ov-cancel");
    s_remove("ov-cancel");
    TW_H_ASSERT(c2.id != c1.id);
    TW_H_ASSERT_OK(tw_h_wait_state(c, c1.id, TW_ST_CANCELLED, 30000));
    TW_H_ASSERT_OK(tw_client_cancel(c, &c2.id, 1, 5000));

    zmq_close(s_sub);
    tw_client_destroy(&c);
    return 0;
}
