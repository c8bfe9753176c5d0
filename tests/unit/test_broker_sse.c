/*  tests/unit/test_broker_sse.c - status topics as Server-Sent Events.
 *
 *  The engine is driven with made-up events and a clock passed by hand.
 *  Checks: the exact text of hello, events, resync and ping; the default
 *  filter and prefix filters; what tw_sse_wants asks the publisher to
 *  build, including a filter lingering after its stream; resuming with
 *  Last-Event-ID when nothing was lost, and "resync" when the boot
 *  differs, the id is malformed or ahead, the events left the ring, or
 *  the topics were not collected meanwhile; a slow stream that falls
 *  behind; events cut across tiny reads and put back together; the
 *  limits on streams and topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/state/sse.h"
#include "common/error.h"

#define BOOT 0x7f3a9c1e5b20d4e8ull
#define BOOTS "7f3a9c1e5b20d4e8"

static uint64_t s_pseq;

/* Publish `topic` with data {"topic":..,"n":pseq} if the engine wants
 * it; the pseq moves on either way (other subscribers exist). */
static void
s_pub(tw_sse_t *s, const char *topic)
{
    s_pseq++;
    if (!tw_sse_wants(s, topic, strlen(topic))) {
        return;
    }
    char json[256];
    int n = snprintf(json, sizeof json, "{\"topic\":\"%s\",\"n\":%llu}",
                     topic, (unsigned long long)s_pseq);
    tw_sse_publish(s, s_pseq, topic, strlen(topic), json, (size_t)n);
}

/* Everything the stream is owed now, as one string. */
static char *
s_drain(tw_sse_t *s, tw_sse_stream_t *st, size_t chunk, uint64_t now)
{
    size_t cap = 1 << 20, len = 0;
    char *all = calloc(1, cap);
    char buf[4096];
    size_t n;
    while ((n = tw_sse_read(s, st, buf, chunk < sizeof buf ? chunk : sizeof buf,
                            now)) > 0) {
        assert_true(len + n < cap);
        memcpy(all + len, buf, n);
        len += n;
    }
    assert_false(tw_sse_ready(s, st, now));
    return all;
}

static tw_sse_t *
s_new(size_t max_events)
{
    tw_sse_limits_t lim = tw_sse_defaults();
    lim.max_events = max_events;
    s_pseq = 100;
    return tw_sse_new(BOOT, &lim);
}

static tw_sse_stream_t *
s_open(tw_sse_t *s, const char *topics, const char *last, uint64_t now)
{
    tw_sse_stream_t *st;
    char why[128];
    assert_int_equal(tw_sse_open(s, &st, topics, last, s_pseq, now, why,
                                 sizeof why), 0);
    return st;
}

static void
test_hello_events_ping(void **state)
{
    (void)state;
    tw_sse_t *s = s_new(100);
    assert_false(tw_sse_wants(s, "stats", 5));
    tw_sse_stream_t *st = s_open(s, NULL, NULL, 1000);
    char *got = s_drain(s, st, 4096, 1000);
    assert_string_equal(got, "retry: 2000\n\nevent: hello\nid: " BOOTS
                             "-100\ndata: {\"boot\":\"" BOOTS "\",\"pseq\":100,"
                             "\"resumed\":false}\n\n");
    free(got);
    /* The default filter: everything but task. and s2n. */
    assert_true(tw_sse_wants(s, "stats", 5));
    assert_true(tw_sse_wants(s, "worker.up", 9));
    assert_false(tw_sse_wants(s, "task.done", 9));
    assert_false(tw_sse_wants(s, "s2n.x", 5));
    s_pub(s, "stats");     /* 101 */
    s_pub(s, "task.done"); /* 102, not collected */
    s_pub(s, "worker.up"); /* 103 */
    got = s_drain(s, st, 4096, 1500);
    assert_string_equal(got,
                        "id: " BOOTS "-101\ndata: {\"topic\":\"stats\",\"n\":101}\n\n"
                        "id: " BOOTS "-103\ndata: {\"topic\":\"worker.up\","
                        "\"n\":103}\n\n");
    free(got);
    /* Silence: a ping after 15 s, not before. */
    char buf[64];
    assert_int_equal(tw_sse_read(s, st, buf, sizeof buf, 16499), 0);
    assert_int_equal(tw_sse_tick(s, 16499), 1);
    assert_true(tw_sse_ready(s, st, 16500));
    assert_int_equal(tw_sse_read(s, st, buf, sizeof buf, 16500), 8);
    assert_memory_equal(buf, ": ping\n\n", 8);
    tw_sse_close(s, &st, 17000);
    assert_null(st);
    tw_sse_destroy(&s);
    assert_null(s);
}

static void
test_prefix_filters(void **state)
{
    (void)state;
    tw_sse_t *s = s_new(100);
    tw_sse_stream_t *a = s_open(s, "task.exception,stats", NULL, 0);
    tw_sse_stream_t *all = s_open(s, "", NULL, 0);
    free(s_drain(s, a, 4096, 0));
    free(s_drain(s, all, 4096, 0));
    assert_true(tw_sse_wants(s, "task.done", 9)); /* "" wants everything */
    s_pub(s, "task.exception"); /* 101 */
    s_pub(s, "task.done");      /* 102 */
    s_pub(s, "stats");          /* 103 */
    s_pub(s, "s2n.gps");        /* 104 */
    char *got = s_drain(s, a, 4096, 0);
    assert_non_null(strstr(got, "-101\n"));
    assert_null(strstr(got, "-102\n"));
    assert_non_null(strstr(got, "-103\n"));
    assert_null(strstr(got, "-104\n"));
    free(got);
    got = s_drain(s, all, 4096, 0);
    for (int p = 101; p <= 104; p++) {
        char id[32];
        snprintf(id, sizeof id, "-%d\n", p);
        assert_non_null(strstr(got, id));
    }
    free(got);
    /* Same topics text: one shared filter. */
    tw_sse_stream_t *b = s_open(s, "task.exception,stats", NULL, 0);
    assert_int_equal(tw_sse_filters(s), 2);
    tw_sse_close(s, &a, 0);
    tw_sse_close(s, &b, 0);
    tw_sse_close(s, &all, 0);
    tw_sse_destroy(&s);
}

/* A dashboard reconnects: with nothing lost it resumes exactly. */
static void
test_resume(void **state)
{
    (void)state;
    tw_sse_t *s = s_new(100);
    tw_sse_stream_t *st = s_open(s, "stats", NULL, 0);
    free(s_drain(s, st, 4096, 0));
    s_pub(s, "stats"); /* 101 */
    free(s_drain(s, st, 4096, 0));
    tw_sse_close(s, &st, 1000);
    /* While it is away: its filter lingers and is still collected. */
    assert_true(tw_sse_wants(s, "stats", 5));
    s_pub(s, "stats"); /* 102 */
    s_pub(s, "other"); /* 103 */
    s_pub(s, "stats"); /* 104 */
    st = s_open(s, "stats", BOOTS "-101", 5000);
    char *got = s_drain(s, st, 4096, 5000);
    assert_non_null(strstr(got, "\"pseq\":101,\"resumed\":true"));
    assert_null(strstr(got, "resync"));
    assert_non_null(strstr(got, "-102\ndata"));
    assert_non_null(strstr(got, "-104\ndata"));
    assert_null(strstr(got, "-103\ndata"));
    free(got);
    tw_sse_close(s, &st, 6000);
    /* Away past the linger: the filter is gone, nothing is collected,
     * and a later resume must resync. */
    assert_int_equal(tw_sse_tick(s, 65999), 1);
    assert_int_equal(tw_sse_filters(s), 1);
    assert_int_equal(tw_sse_tick(s, 66000), -1);
    assert_int_equal(tw_sse_filters(s), 0);
    assert_false(tw_sse_wants(s, "stats", 5));
    s_pub(s, "stats"); /* 105, lost */
    st = s_open(s, "stats", BOOTS "-104", 70000);
    got = s_drain(s, st, 4096, 70000);
    assert_non_null(strstr(got, "\"resumed\":false"));
    assert_non_null(strstr(got, "event: resync\ndata: {\"reason\":\"these "
                                "topics were not collected meanwhile\"}"));
    free(got);
    tw_sse_close(s, &st, 70000);
    tw_sse_destroy(&s);
}

static void
s_expect_resync(tw_sse_t *s, const char *last, const char *reason)
{
    tw_sse_stream_t *st = s_open(s, NULL, last, 0);
    char *got = s_drain(s, st, 4096, 0);
    assert_non_null(strstr(got, "\"resumed\":false"));
    if (!strstr(got, reason)) {
        fail_msg("for %s: expected '%s' in: %s", last, reason, got);
    }
    free(got);
    tw_sse_close(s, &st, 0);
}

static void
test_resync_reasons(void **state)
{
    (void)state;
    tw_sse_t *s = s_new(4);
    tw_sse_stream_t *keep = s_open(s, NULL, NULL, 0);
    for (int i = 0; i < 10; i++) {
        s_pub(s, "stats"); /* 101..110; the ring keeps 107..110 */
    }
    assert_int_equal(tw_sse_events(s), 4);
    s_expect_resync(s, "0000000000000001-105", "the broker restarted");
    s_expect_resync(s, BOOTS "-999", "ahead of the broker");
    s_expect_resync(s, BOOTS "-105", "too old");
    s_expect_resync(s, "junk", "not one of this broker's");
    s_expect_resync(s, BOOTS "-", "not one of this broker's");
    s_expect_resync(s, BOOTS "-1x", "not one of this broker's");
    s_expect_resync(s, BOOTS "-99999999999999999999999", "not one of");
    /* 106 left the ring last: resuming from it is complete. */
    tw_sse_stream_t *st = s_open(s, NULL, BOOTS "-106", 0);
    char *got = s_drain(s, st, 4096, 0);
    assert_non_null(strstr(got, "\"resumed\":true"));
    assert_non_null(strstr(got, "-107\ndata"));
    assert_non_null(strstr(got, "-110\ndata"));
    free(got);
    tw_sse_close(s, &st, 0);
    tw_sse_close(s, &keep, 0);
    tw_sse_destroy(&s);
}

/* A stream that reads nothing while the ring turns over. */
static void
test_fell_behind(void **state)
{
    (void)state;
    tw_sse_t *s = s_new(4);
    tw_sse_stream_t *slow = s_open(s, NULL, NULL, 0);
    free(s_drain(s, slow, 4096, 0));
    for (int i = 0; i < 6; i++) {
        s_pub(s, "stats"); /* 101..106; ring 103..106 */
    }
    assert_true(tw_sse_ready(s, slow, 0));
    char *got = s_drain(s, slow, 4096, 0);
    assert_string_equal(got, "event: resync\ndata: {\"reason\":\"fell "
                             "behind: events left the ring\"}\n\n");
    free(got);
    s_pub(s, "stats"); /* 107: it goes on from the newest */
    got = s_drain(s, slow, 4096, 0);
    assert_string_equal(got, "id: " BOOTS "-107\ndata: {\"topic\":\"stats\","
                             "\"n\":107}\n\n");
    free(got);
    tw_sse_close(s, &slow, 0);
    tw_sse_destroy(&s);
}

/* Reads of 1 to 7 bytes put the same text together. */
static void
test_small_reads(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        tw_sse_t *s = s_new(100);
        tw_sse_stream_t *a = s_open(s, NULL, NULL, 0);
        tw_sse_stream_t *b = s_open(s, NULL, NULL, 0);
        for (int i = 0; i < 5; i++) {
            s_pub(s, i % 2 ? "worker.up" : "stats");
        }
        char *whole = s_drain(s, a, 4096, 0);
        char *bits = s_drain(s, b, chunk, 0);
        assert_string_equal(whole, bits);
        free(whole);
        free(bits);
        tw_sse_close(s, &a, 0);
        tw_sse_close(s, &b, 0);
        tw_sse_destroy(&s);
    }
}

static void
test_limits(void **state)
{
    (void)state;
    tw_sse_limits_t lim = tw_sse_defaults();
    lim.max_streams = 2;
    tw_sse_t *s = tw_sse_new(BOOT, &lim);
    tw_sse_stream_t *a, *b, *c;
    char why[128];
    assert_int_equal(tw_sse_open(s, &a, NULL, NULL, 0, 0, why, sizeof why),
                     0);
    assert_int_equal(tw_sse_open(s, &b, "x", NULL, 0, 0, why, sizeof why),
                     0);
    assert_int_equal(tw_sse_open(s, &c, NULL, NULL, 0, 0, why, sizeof why),
                     TW_EFULL);
    assert_null(c);
    assert_non_null(strstr(why, "2 event streams"));
    tw_sse_close(s, &b, 0);
    /* 33 prefixes; a prefix of 129 bytes. */
    char many[200] = "";
    for (int i = 0; i < 33; i++) {
        strcat(many, i ? ",a" : "a");
    }
    assert_int_equal(tw_sse_open(s, &c, many, NULL, 0, 0, why, sizeof why),
                     TW_EINVAL);
    assert_non_null(strstr(why, "33 prefixes"));
    char longp[140];
    memset(longp, 'x', 129);
    longp[129] = '\0';
    assert_int_equal(tw_sse_open(s, &c, longp, NULL, 0, 0, why, sizeof why),
                     TW_EINVAL);
    assert_non_null(strstr(why, "129 bytes"));
    assert_int_equal(tw_sse_streams(s), 1);
    assert_int_equal(tw_sse_filters(s), 2); /* default + lingering "x" */
    tw_sse_close(s, &a, 0);
    tw_sse_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_events_ping),
        cmocka_unit_test(test_prefix_filters),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_resync_reasons),
        cmocka_unit_test(test_fell_behind),
        cmocka_unit_test(test_small_reads),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
