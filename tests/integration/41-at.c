/*  tests/integration/41-at.c - `submit --at TIME`: a task starts no earlier
 *  than the wall-clock time it names, across a broker restart too.
 *
 *  A real broker (with its --data) and worker; each task runs the exec
 *  handler with `date +%s%3N`, so its result is the wall-clock millisecond
 *  at which the worker started it, read from the same clock the test uses
 *  (PROTOCOL.md 18.3, docs/WORKFLOWS.md section 4):
 *
 *    - `--at` a few seconds ahead, written with a +02:00 offset: the task
 *      starts at or after that instant, and is pending until then;
 *    - a time in the past starts the task at once;
 *    - with `--delay` too, the later of the two holds (both orders);
 *    - a task waiting for its time can be cancelled;
 *    - a broker stopped and restarted on its data while a task waits for
 *      its time still runs it once, and not before the time;
 *    - a malformed time (no offset, a month 13, a word, no value) is a
 *      usage error (exit 2) that names the expected form, and submits
 *      nothing.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"
#include "common/tz.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static tw_tz_t *s_plus2; /* a fixed zone at +02:00, for the offsets */

/* `ms` as RFC 3339 at +02:00, in buf. */
static const char *
s_at(uint64_t ms, char *buf, size_t cap)
{
    return tw_tz_format(s_plus2, (int64_t)ms, buf, cap);
}

/* Run the CLI's `submit` with `args`; returns the task id it printed. */
static uint64_t
s_submit(const tw_h_broker_t *b, const char *const args[])
{
    char out[4096];
    int rc = tw_h_cli(b, args, out, sizeof out, NULL);
    TW_H_ASSERT_MSG(rc == 0, "submit exited %d:\n%s", rc, out);
    char *end;
    unsigned long long id = strtoull(out, &end, 10);
    TW_H_ASSERT_MSG(id > 0 && end != out, "no id in:\n%s", out);
    return id;
}

/* Wait for task `id` to end ok and return the wall-clock ms its `date`
 * printed: when the worker started it. */
static uint64_t
s_started(tw_client_t *c, uint64_t id, int timeout_ms)
{
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, TW_ST_OK, timeout_ms));
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, id, 5000, &r));
    const char *s = tw_h_result_str(r);
    uint64_t ms = strtoull(s, NULL, 10);
    TW_H_ASSERT_MSG(ms > 0, "task %" PRIu64 " printed '%s'", id, s);
    tw_result_free(&r);
    return ms;
}

/* The state of task `id` now (TW_ST_*). */
static int
s_state(tw_client_t *c, uint64_t id)
{
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(c, id, 5000, &r));
    int st = r->state;
    tw_result_free(&r);
    return st;
}

#define DATE "[\"date\", \"+%s%3N\"]"

int
main(void)
{
    tw_h_init("41-at");
    const char *why = NULL;
    TW_H_ASSERT_MSG(tw_tz_posix("<+02>-2", &s_plus2, &why) == 0, "%s", why);
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    char t1[TW_TZ_RFC3339_MAX], t2[TW_TZ_RFC3339_MAX], t3[TW_TZ_RFC3339_MAX];

    /* Ahead: pending until its time, then started at or after it. The
     * --delay cases run meanwhile: --delay later than --at, and earlier. */
    uint64_t at1 = tw_wall_ms() + 2500;
    uint64_t id1 =
        s_submit(&b, TW_H_ARGS("submit", "exec", DATE, "--at",
                               s_at(at1, t1, sizeof t1)));
    uint64_t t0 = tw_wall_ms();
    uint64_t id2 = s_submit(&b, TW_H_ARGS("submit", "exec", DATE, "--at",
                                          s_at(t0 + 300, t2, sizeof t2),
                                          "--delay", "2"));
    uint64_t at3 = tw_wall_ms() + 2000;
    uint64_t id3 = s_submit(&b, TW_H_ARGS("submit", "exec", DATE, "--delay",
                                          "0.2", "--at",
                                          s_at(at3, t3, sizeof t3)));
    /* Cancellable while it waits. */
    uint64_t id4 = s_submit(&b, TW_H_ARGS("submit", "exec", DATE, "--at",
                                          s_at(tw_wall_ms() + 60000, t2,
                                               sizeof t2)));
    if (tw_wall_ms() < at1) {
        TW_H_ASSERT_EQ(s_state(c, id1), TW_ST_PENDING);
    }
    TW_H_ASSERT_EQ(s_state(c, id4), TW_ST_PENDING);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%" PRIu64, id4);
    char out[4096];
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("cancel", idtext), out, sizeof out,
                            NULL),
                   0);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id4, TW_ST_CANCELLED, 10000));

    uint64_t s1 = s_started(c, id1, 30000);
    TW_H_ASSERT_MSG(s1 >= at1, "task 1 started at %" PRIu64 ", before %s",
                    s1, t1);
    uint64_t s2 = s_started(c, id2, 30000);
    TW_H_ASSERT_MSG(s2 >= t0 + 2000, "task 2 started %" PRIu64
                    " ms after its submit, before its --delay 2",
                    s2 - t0);
    uint64_t s3 = s_started(c, id3, 30000);
    TW_H_ASSERT_MSG(s3 >= at3, "task 3 started at %" PRIu64 ", before %s",
                    s3, t3);

    /* In the past: at once, and --wait prints its result. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("submit", "echo", "\"then\"",
                                          "--at", "2000-01-01T00:00:00Z",
                                          "--wait"),
                            out, sizeof out, NULL),
                   0);
    TW_H_ASSERT_MSG(strstr(out, "\"then\""), "--wait printed:\n%s", out);

    /* Malformed times: usage errors, nothing submitted. */
    long long before = -1, after = -1;
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &before));
    static const char *const bad[] = {"2025-01-01T03:00:00",
                                      "2025-13-01T00:00:00Z", "tomorrow"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("submit", "echo", "1", "--at",
                                              bad[i]),
                                out, sizeof out, NULL),
                       2);
        TW_H_ASSERT_MSG(strstr(out, "--at needs an RFC 3339 time"),
                        "'%s' said:\n%s", bad[i], out);
    }
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("submit", "echo", "1", "--at"), out,
                            sizeof out, NULL),
                   2);
    TW_H_ASSERT_OK(tw_h_status_field(c, "submitted", &after));
    TW_H_ASSERT_EQ(after, before);

    /* Across a restart: the time is stored with the task. */
    uint64_t at5 = tw_wall_ms() + 4000;
    uint64_t id5 = s_submit(&b, TW_H_ARGS("submit", "exec", DATE, "--at",
                                          s_at(at5, t1, sizeof t1)));
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    uint64_t s5 = s_started(c, id5, 30000);
    /* The store keeps the time as wall-clock milliseconds and maps it to
     * the new loop's clock at recovery, to within that clock's tick. */
    TW_H_ASSERT_MSG(s5 + 10 >= at5, "task 5 started at %" PRIu64
                    ", before %s", s5, t1);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    tw_tz_destroy(&s_plus2);
    printf("41-at: ok\n");
    return 0;
}
