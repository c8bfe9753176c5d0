/*  tests/unit/test_broker_schedtab.c - the broker's schedules beside the
 *  engine (broker/state/schedtab.h): zones loaded once, records written
 *  into a store batch and read back into a fresh engine.
 *
 *  A throw-away store directory per test:
 *
 *    - a zone is loaded once and shared; "" is UTC; an unknown zone is
 *      TW_ENOENT and a name that is no zone name TW_EINVAL, with a reason;
 *    - marked schedules are written (one record each, the marks cleared),
 *      and a fresh table loading the store gets each one back as it was:
 *      expression, zone, policies, paused, cursor, template bytes, and of
 *      its recorded tasks those still live;
 *    - a removed schedule's record is deleted by the next write;
 *    - a record that cannot be read back (its zone is no longer known)
 *      is skipped and the others load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/state/schedtab.h"
#include "common/error.h"
#include "common/log.h"

static char s_dir[256];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-schedtab-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    tw_log_level = TW_LOG_ERR;
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static tw_store_t *
s_open(void)
{
    tw_store_t *s = NULL;
    char why[512];
    assert_int_equal(tw_store_open(&s, s_dir, 16u << 20, TW_FSYNC_NO, 0, why,
                                   sizeof why),
                     0);
    assert_int_equal(tw_store_mark_running(s), 0);
    return s;
}

/* Write the marked records of `t` into store `s`. */
static void
s_write(tw_schedtab_t *t, tw_store_t *s)
{
    tw_wbatch_t *wb = tw_wbatch_new();
    tw_schedtab_write(t, wb);
    assert_int_equal(tw_wbatch_apply(wb, s), 0);
    tw_wbatch_free(wb);
    assert_int_equal(tw_schedtab_marked(t), 0);
}

static void
s_add(tw_schedtab_t *t, const char *name, const char *expr, const char *tz,
      int overlap, int catchup, int paused, int64_t cursor, const char *tmpl)
{
    const tw_tz_t *zone;
    const char *why = NULL;
    assert_int_equal(tw_schedtab_zone(t, NULL, tz, strlen(tz), &zone, &why),
                     0);
    tw_sched_def_t def = {.name = name, .namelen = strlen(name),
                          .expr = expr, .tz = zone, .overlap = overlap,
                          .catchup = catchup, .paused = paused,
                          .cursor_ms = cursor, .tmpl = tmpl,
                          .tmpl_len = strlen(tmpl)};
    char err[200];
    assert_int_equal(tw_sched_add(t->eng, &def, err, sizeof err), 0);
    tw_schedtab_mark(t, name, strlen(name));
}

/* Live: only odd ids. */
static int
s_odd_alive(uint64_t id, void *arg)
{
    (*(int *)arg)++;
    return (int)(id & 1);
}

static void
test_zones(void **state)
{
    (void)state;
    tw_schedtab_t t;
    tw_schedtab_init(&t, 0);
    const tw_tz_t *a = NULL, *b = NULL, *u = NULL;
    const char *why = NULL;
    assert_int_equal(tw_schedtab_zone(&t, NULL, "Europe/Berlin", 13, &a,
                                      &why),
                     0);
    assert_int_equal(tw_schedtab_zone(&t, NULL, "Europe/Berlin", 13, &b,
                                      &why),
                     0);
    assert_ptr_equal(a, b);
    assert_string_equal(tw_tz_name(a), "Europe/Berlin");
    assert_int_equal(tw_schedtab_zone(&t, NULL, "", 0, &u, &why), 0);
    assert_string_equal(tw_tz_name(u), "UTC");
    assert_int_equal(tw_schedtab_zone(&t, NULL, "Mars/Olympus", 12, &u,
                                      &why),
                     TW_ENOENT);
    why = NULL;
    assert_int_equal(tw_schedtab_zone(&t, NULL, "../etc/passwd", 13, &u,
                                      &why),
                     TW_EINVAL);
    assert_non_null(why);
    tw_schedtab_destroy(&t);
}

static void
test_round_trip(void **state)
{
    (void)state;
    tw_store_t *s = s_open();
    tw_schedtab_t t;
    tw_schedtab_init(&t, 0);
    s_add(&t, "nightly", "0 3 * * *", "Europe/Berlin", TW_OVERLAP_QUEUE,
          TW_CATCHUP_ALL, 1, 1700000000000, "template-1");
    s_add(&t, "often", "@every 5s", "", TW_OVERLAP_CANCEL, TW_CATCHUP_LAST,
          0, 1700000001000, "template-2");
    assert_int_equal(tw_sched_started(t.eng, "often", 5, 41), 0);
    assert_int_equal(tw_sched_started(t.eng, "often", 5, 42), 0);
    assert_int_equal(tw_schedtab_marked(&t), 2);
    s_write(&t, s);

    tw_schedtab_t r;
    tw_schedtab_init(&r, 0);
    size_t n = 0;
    int asked = 0;
    char why[256];
    assert_int_equal(tw_schedtab_load(&r, s, NULL, s_odd_alive, &asked, &n,
                                      why, sizeof why),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(asked, 2);
    tw_sched_info_t in;
    assert_int_equal(tw_sched_get(r.eng, "nightly", 7, &in), 0);
    assert_string_equal(in.expr, "0 3 * * *");
    assert_string_equal(in.tz, "Europe/Berlin");
    assert_int_equal(in.overlap, TW_OVERLAP_QUEUE);
    assert_int_equal(in.catchup, TW_CATCHUP_ALL);
    assert_int_equal(in.paused, 1);
    assert_int_equal(in.cursor_ms, 1700000000000);
    assert_int_equal(in.tmpl_len, 10);
    assert_memory_equal(in.tmpl, "template-1", 10);
    assert_int_equal(in.live, 0);
    assert_int_equal(tw_sched_get(r.eng, "often", 5, &in), 0);
    assert_string_equal(in.tz, "UTC");
    assert_int_equal(in.overlap, TW_OVERLAP_CANCEL);
    assert_int_equal(in.catchup, TW_CATCHUP_LAST);
    assert_int_equal(in.paused, 0);
    assert_int_equal(in.cursor_ms, 1700000001000);
    assert_int_equal(in.live, 1); /* 42 has ended since */
    assert_int_equal(in.live_ids[0], 41);
    tw_schedtab_destroy(&r);

    /* Removed: the next write deletes its record. */
    assert_int_equal(tw_sched_remove(t.eng, "nightly", 7), 0);
    tw_schedtab_mark(&t, "nightly", 7);
    s_write(&t, s);
    tw_schedtab_init(&r, 0);
    assert_int_equal(tw_schedtab_load(&r, s, NULL, s_odd_alive, &asked, &n,
                                      why, sizeof why),
                     0);
    assert_int_equal(n, 1);
    assert_int_not_equal(tw_sched_get(r.eng, "nightly", 7, &in), 0);
    tw_schedtab_destroy(&r);
    tw_schedtab_destroy(&t);
    tw_store_close(&s);
}

static void
test_unreadable_record(void **state)
{
    (void)state;
    tw_store_t *s = s_open();
    tw_schedtab_t t;
    tw_schedtab_init(&t, 0);
    s_add(&t, "good", "@hourly", "", TW_OVERLAP_SKIP, TW_CATCHUP_NONE, 0, 0,
          "x");
    s_write(&t, s);
    /* A record naming a zone the database does not have. */
    tw_sched_info_t in;
    assert_int_equal(tw_sched_get(t.eng, "good", 4, &in), 0);
    in.tz = "Atlantis/Capital";
    tw_enc_t e;
    tw_enc_init(&e);
    tw_schedtab_encode(&in, &e);
    tw_wbatch_t *wb = tw_wbatch_new();
    tw_wbatch_put(wb, TW_DB_META, "schedule/lost", 13, e.sb.data, e.sb.size,
                  0);
    tw_wbatch_put(wb, TW_DB_META, "schedule/junk", 13, "\xc1", 1, 0);
    assert_int_equal(tw_wbatch_apply(wb, s), 0);
    tw_wbatch_free(wb);
    tw_enc_free(&e);
    tw_schedtab_t r;
    tw_schedtab_init(&r, 0);
    size_t n = 0;
    int asked = 0;
    char why[256];
    assert_int_equal(tw_schedtab_load(&r, s, NULL, s_odd_alive, &asked, &n,
                                      why, sizeof why),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(tw_sched_get(r.eng, "good", 4, &in), 0);
    assert_int_not_equal(tw_sched_get(r.eng, "lost", 4, &in), 0);
    tw_schedtab_destroy(&r);
    tw_schedtab_destroy(&t);
    tw_store_close(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zones),
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_record, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
