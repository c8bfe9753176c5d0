/*  tests/integration/50-schedule.c - cron schedules in the broker: ticks
 *  fire tasks that run, and every SCHEDULE op does what PROTOCOL.md 18.11
 *  says, through the CLI and libtaskwheel.
 *
 *  A real broker and worker on loopback; a SUB socket on the status
 *  endpoint reads schedule.<name>.fired|skipped (18.12):
 *
 *    - `schedule add every1 '@every 1s' echo '"tick"'`: ticks fire, each
 *      event names a task, and those tasks end ok with the template's
 *      result; `show` and `list` tell the schedule with its counts, and
 *      status counts schedules and firings;
 *    - pause: show says paused with no next tick, and no tick fires while
 *      paused; run-now fires the paused schedule at once (manual); resume
 *      fires ticks again;
 *    - remove: the schedule is gone (show says so), its tasks ran on;
 *    - a refused firing (a handler no worker offers) is a skipped event
 *      with reason "refused: EHANDLER", and run-now returns the refusal;
 *    - bad requests (a cron field out of range, an unknown zone, a name
 *      with a dot, an unknown policy, a name taken, an unknown name, an
 *      unknown op) exit 1 with the broker's reason and change nothing.
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

/* Run the CLI; its exit code, its output in s_out. */
static char s_out[8192];
static int
s_cli(const char *const args[])
{
    return tw_h_cli(&s_b, args, s_out, sizeof s_out, NULL);
}

typedef tw_h_sched_ev_t s_ev_t;

/* The next event of schedule `name` within timeout_ms: 0, or not. */
static int
s_next_event(const char *name, s_ev_t *ev, int timeout_ms)
{
    return tw_h_schedule_event(s_sub, name, ev, timeout_ms);
}

/* Wait for the next tick's (not run-now's) fired event of `name`. */
static s_ev_t
s_wait_fired(const char *name)
{
    s_ev_t ev;
    do {
        TW_H_ASSERT_MSG(s_next_event(name, &ev, 30000) == 0,
                        "no event of schedule %s", name);
    } while (!ev.fired || ev.manual);
    TW_H_ASSERT(ev.id > 0 && ev.tick > 0);
    return ev;
}

/* A bad request: exit 1, `why` in the message, nothing changed. */
static void
s_refused(tw_client_t *c, const char *const args[], const char *why)
{
    long long before = -1, after = -1;
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedules", &before));
    int rc = s_cli(args);
    TW_H_ASSERT_MSG(rc == 1, "exit %d, not 1:\n%s", rc, s_out);
    TW_H_ASSERT_MSG(strstr(s_out, why), "no '%s' in:\n%s", why, s_out);
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedules", &after));
    TW_H_ASSERT_EQ(after, before);
}

int
main(void)
{
    tw_h_init("50-schedule");
    TW_H_ASSERT_OK(tw_h_start_broker(&s_b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(s_b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&s_b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(s_b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(s_b.frontend);
    TW_H_ASSERT(c);
    static const char *const topics[] = {"schedule.", NULL};
    s_sub = tw_h_sub(s_b.status, topics);

    /* Ticks fire and their tasks run. */
    TW_H_ASSERT_MSG(s_cli(TW_H_ARGS("schedule", "add", "every1", "@every 1s",
                                    "echo", "\"tick\"")) == 0,
                    "%s", s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "every1") && strstr(s_out, "@every 1s"),
                    "add printed:\n%s", s_out);
    s_ev_t e1 = s_wait_fired("every1");
    s_ev_t e2 = s_wait_fired("every1");
    TW_H_ASSERT_MSG(e2.tick >= e1.tick + 1000, "ticks %" PRIu64 ", %" PRIu64,
                    e1.tick, e2.tick);
    TW_H_ASSERT(e2.id != e1.id);
    uint64_t ids[2] = {e1.id, e2.id};
    for (int i = 0; i < 2; i++) {
        TW_H_ASSERT_OK(tw_h_wait_state(c, ids[i], TW_ST_OK, 30000));
        tw_result_t *r = NULL;
        TW_H_ASSERT_OK(tw_client_result(c, ids[i], 5000, &r));
        TW_H_ASSERT_MSG(strcmp(tw_h_result_str(r), "tick") == 0,
                        "task %" PRIu64 " gave '%s'", ids[i],
                        tw_h_result_str(r));
        tw_result_free(&r);
    }
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "show", "every1", "--json")),
                   0);
    TW_H_ASSERT_MSG(strstr(s_out, "\"name\": \"every1\"") ||
                        strstr(s_out, "\"name\":\"every1\""),
                    "show printed:\n%s", s_out);
    TW_H_ASSERT_MSG(strstr(s_out, "\"tz\": \"UTC\"") ||
                        strstr(s_out, "\"tz\":\"UTC\""),
                    "show printed:\n%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "list")), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "NAME") && strstr(s_out, "every1"),
                    "list printed:\n%s", s_out);
    long long n = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedules", &n));
    TW_H_ASSERT_EQ(n, 1);
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedule_fired", &n));
    TW_H_ASSERT(n >= 2);

    /* Pause: no next tick, nothing fires; run-now fires anyway. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "pause", "every1")), 0);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "show", "every1", "--json")),
                   0);
    TW_H_ASSERT_MSG(strstr(s_out, "\"paused\": true") ||
                        strstr(s_out, "\"paused\":true"),
                    "show printed:\n%s", s_out);
    /* What was in flight when the pause arrived drains first. */
    s_ev_t ev;
    while (s_next_event("every1", &ev, 300) == 0) {
    }
    long long fired_paused = 0;
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedule_fired", &fired_paused));
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "run-now", "every1")), 0);
    uint64_t now_id = strtoull(s_out, NULL, 10);
    TW_H_ASSERT_MSG(now_id > 0, "run-now printed:\n%s", s_out);
    TW_H_ASSERT_OK(s_next_event("every1", &ev, 10000));
    TW_H_ASSERT(ev.fired && ev.manual);
    TW_H_ASSERT_EQ(ev.id, now_id);
    TW_H_ASSERT_OK(tw_h_wait_state(c, now_id, TW_ST_OK, 30000));
    /* Over two periods of the expression, no tick fires while paused. */
    TW_H_ASSERT_MSG(s_next_event("every1", &ev, 2500) != 0,
                    "an event while paused (fired %d manual %d)", ev.fired,
                    ev.manual);
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedule_fired", &n));
    TW_H_ASSERT_EQ(n, fired_paused + 1);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "resume", "every1")), 0);
    s_ev_t e3 = s_wait_fired("every1");
    TW_H_ASSERT_OK(tw_h_wait_state(c, e3.id, TW_ST_OK, 30000));

    /* Remove: gone, nothing more fires. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "remove", "every1")), 0);
    s_refused(c, TW_H_ARGS("schedule", "show", "every1"),
              "no schedule 'every1'");
    TW_H_ASSERT_OK(tw_h_status_field(c, "schedules", &n));
    TW_H_ASSERT_EQ(n, 0);

    /* A firing the broker refuses is a skipped tick. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "add", "nohandler",
                                   "@every 1s", "no-such-handler")),
                   0);
    do {
        TW_H_ASSERT_OK(s_next_event("nohandler", &ev, 30000));
    } while (ev.fired);
    TW_H_ASSERT_MSG(strcmp(ev.reason, "refused: EHANDLER") == 0,
                    "reason '%s'", ev.reason);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "run-now", "nohandler")), 1);
    TW_H_ASSERT_MSG(strstr(s_out, "unknown handler"), "%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "remove", "nohandler")), 0);

    /* Bad requests change nothing. */
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "add", "keep", "0 3 * * *",
                                   "echo", "--tz", "Europe/Berlin")),
                   0);
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "61 * * * *", "echo"),
              "minute");
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "0 0 * * sux", "echo"),
              "day of week");
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "@daily", "echo", "--tz",
                           "Mars/Olympus_Mons"),
              "no such zone");
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "@daily", "echo", "--tz",
                           "../etc/passwd"),
              "tz");
    s_refused(c, TW_H_ARGS("schedule", "add", "a.b", "@daily", "echo"),
              "schedule name");
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "@daily", "echo",
                           "--overlap", "sometimes"),
              "overlap 'sometimes'");
    s_refused(c, TW_H_ARGS("schedule", "add", "x", "@daily", "echo",
                           "--catch-up", "most"),
              "catchup 'most'");
    s_refused(c, TW_H_ARGS("schedule", "add", "keep", "@daily", "echo"),
              "exists");
    s_refused(c, TW_H_ARGS("schedule", "pause", "nosuch"),
              "no schedule 'nosuch'");
    s_refused(c, TW_H_ARGS("schedule", "run-now", "nosuch"),
              "no schedule 'nosuch'");
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "show", "keep", "--json")), 0);
    TW_H_ASSERT_MSG(strstr(s_out, "Europe/Berlin") && strstr(s_out, "0 3 * * *"),
                    "the first 'keep' changed:\n%s", s_out);
    TW_H_ASSERT_EQ(s_cli(TW_H_ARGS("schedule", "add", "x")), 2);
    tw_schedule_req_t bad = {.op = "bogus", .name = "keep"};
    TW_H_ASSERT_EQ(tw_client_schedule(c, &bad, 5000, NULL, NULL), TW_EINVAL);
    TW_H_ASSERT_MSG(strstr(tw_client_last_error(c), "unknown schedule op"),
                    "%s", tw_client_last_error(c));

    zmq_close(s_sub);
    tw_client_destroy(&c);
    return 0;
}
