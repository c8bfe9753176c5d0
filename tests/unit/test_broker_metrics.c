/*  tests/unit/test_broker_metrics.c - the Prometheus page and its server.
 *
 *  A real tw_broker_t on ephemeral loopback endpoints (no peers) gives the
 *  renderer its state; a worker record is added to the registry by hand
 *  with a name and host that need escaping. Checks: label values escape
 *  backslash, double quote and newline; every sample line is
 *  `name{labels} value` under a # TYPE; the counters follow the stats; the
 *  address rules of --metrics (loopback only without insecure, HOST:PORT
 *  syntax) and a start on port 0 that reports the port it got.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/core/core.h"
#include "broker/cmd/metrics.h"
#include "common/alloc.h"
#include "common/error.h"
#include "tests/unit/support/suite.h"

typedef struct {
    uv_loop_t loop;
    tw_broker_cfg_t cfg;
    tw_broker_t *b;
} s_fix_t;

static int
s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    char err[256];
    char *argv[] = {"broker", "--frontend", "tcp://127.0.0.1:*",
                    "--backend", "tcp://127.0.0.1:*", "--status",
                    "tcp://127.0.0.1:*", NULL};
    assert_int_equal(tw_cfg_parse(tw_broker_options, &f->cfg, 7, argv, "",
                                  err, sizeof err), 0);
    f->b = tw_broker_new(&f->loop, &f->cfg);
    assert_non_null(f->b);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *f = *state;
    tw_broker_stop(f->b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    tw_broker_destroy(&f->b);
    tw_cfg_free(tw_broker_options, &f->cfg);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* The first line that starts with `prefix`, as a copy (static buffer),
 * or NULL. */
static const char *
s_line(const char *page, const char *prefix)
{
    static char line[512];
    const char *p = page;
    while (p && strncmp(p, prefix, strlen(prefix)) != 0) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p) {
        return NULL;
    }
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    n = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

static void
test_render(void **state)
{
    s_fix_t *f = *state;
    tw_broker_t *b = f->b;
    tw_bworker_t *w = tw_registry_add(&b->reg, "w-x", 3, uv_now(&f->loop));
    w->name = tw_strdup("a\"b\\c\nd");
    w->host = tw_strdup("h");
    w->slots = 4;
    w->nstations = 1;
    b->st.submitted = 12;
    b->st.completed = 9;
    b->st.failed = 2;
    b->st.cancelled = 1;
    b->st.n2s_dropped = 5;
    char *page;
    size_t len;
    tw_metrics_render(b, &page, &len);
    assert_int_equal(strlen(page), len);
    assert_string_equal(s_line(page, "taskwheel_worker_slots{"),
                        "taskwheel_worker_slots{wid=\"1\",worker="
                        "\"a\\\"b\\\\c\\nd\",host=\"h\"} 4");
    assert_string_equal(s_line(page, "taskwheel_workers "),
                        "taskwheel_workers 1");
    assert_string_equal(s_line(page, "taskwheel_slots_used "),
                        "taskwheel_slots_used 1");
    assert_string_equal(s_line(page, "taskwheel_submitted_total "),
                        "taskwheel_submitted_total 12");
    assert_string_equal(s_line(page, "taskwheel_n2s_dropped_total "),
                        "taskwheel_n2s_dropped_total 5");
    assert_string_equal(
        s_line(page, "taskwheel_tasks_ended_total{outcome=\"failed\"}"),
        "taskwheel_tasks_ended_total{outcome=\"failed\"} 2");
    assert_non_null(s_line(page, "# TYPE taskwheel_submitted_total counter"));
    assert_non_null(s_line(page, "# TYPE taskwheel_workers gauge"));
    assert_non_null(s_line(page, "taskwheel_stations{state=\"waiting-for-"
                                 "host\"} 0"));
    /* Every sample line: a name, optional labels, one space, a number;
     * the escaped newline never breaks a line. */
    size_t samples = 0;
    for (char *p = page; *p;) {
        char *e = strchr(p, '\n');
        assert_non_null(e);
        *e = '\0';
        if (*p != '#') {
            char *sp = strrchr(p, ' ');
            assert_non_null(sp);
            char *end;
            strtod(sp + 1, &end);
            assert_true(end > sp + 1 && *end == '\0');
            assert_true(p[0] == 't' || p[0] == 'p');
            samples++;
        }
        p = e + 1;
    }
    assert_true(samples > 40);
    tw_free(page);
}

static void
test_addresses(void **state)
{
    s_fix_t *f = *state;
    tw_metrics_t *m = NULL;
    char why[256];
    assert_int_equal(tw_metrics_start(&m, f->b, "0.0.0.0:0", 0, why,
                                      sizeof why), TW_EINVAL);
    assert_non_null(strstr(why, "not a loopback address"));
    assert_int_equal(tw_metrics_start(&m, f->b, "nonsense", 0, why,
                                      sizeof why), TW_EINVAL);
    assert_non_null(strstr(why, "expected HOST:PORT"));
    assert_int_equal(tw_metrics_start(&m, f->b, "127.0.0.1:70000", 0, why,
                                      sizeof why), TW_EINVAL);
    assert_int_equal(tw_metrics_start(&m, f->b, "example.com:80", 1, why,
                                      sizeof why), TW_EINVAL);
    assert_null(m);
    assert_int_equal(tw_metrics_start(&m, f->b, "localhost:0", 0, why,
                                      sizeof why), 0);
    assert_non_null(m);
    assert_true(tw_metrics_port(m) > 0);
    tw_metrics_t *again = NULL;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tw_metrics_port(m));
    assert_int_equal(tw_metrics_start(&again, f->b, addr, 0, why,
                                      sizeof why), TW_EIO);
    tw_metrics_stop(m);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    tw_metrics_destroy(&m);
    assert_null(m);
    tw_metrics_destroy(&m); /* idempotent */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_render, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_addresses, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("broker_metrics", tests,
                                       tw_suite_setup, NULL);
}
