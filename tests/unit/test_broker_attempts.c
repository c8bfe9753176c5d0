/*  tests/unit/test_broker_attempts.c - the finished runs of a task.
 *
 *  The split of a worker's error text into error line and traceback
 *  (no newline, CRLF, a newline at the very end, an empty first line);
 *  runs added and kept oldest first, the seventeenth pushing out the
 *  first; and the exact msgpack of a run, with nil for what is unknown
 *  and "running" for a run that has not ended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "broker/state/attempts.h"

#define S(x) x, sizeof x - 1

static void
s_split(const char *err, size_t n, const char *first, const char *rest)
{
    size_t fl, rl;
    const char *r;
    tw_attempts_split(err, n, &fl, &r, &rl);
    assert_int_equal(fl, strlen(first));
    assert_memory_equal(err, first, fl);
    if (rest) {
        assert_non_null(r);
        assert_int_equal(rl, strlen(rest));
        assert_memory_equal(r, rest, rl);
    } else {
        assert_null(r);
        assert_int_equal(rl, 0);
    }
}

static void
test_split(void **state)
{
    (void)state;
    s_split(S("boom"), "boom", NULL);
    s_split(S("ValueError: x\nTraceback\n  line 3\n"), "ValueError: x",
            "Traceback\n  line 3\n");
    s_split(S("E\r\ntb"), "E", "tb");
    s_split(S("E\n"), "E", NULL);
    s_split(S("\ntb"), "", "tb");
    s_split(S(""), "", NULL);
    size_t fl, rl;
    const char *r;
    tw_attempts_split(NULL, 0, &fl, &r, &rl);
    assert_int_equal(fl, 0);
    assert_null(r);
}

static void
test_keep_last_sixteen(void **state)
{
    (void)state;
    tw_attempts_t h = {NULL, 0};
    for (uint32_t n = 1; n <= 20; n++) {
        tw_attempts_add(&h, n, 100 + n, 1000 * n, 1000 * n + 5,
                        n % 2 ? TW_ST_ERROR : TW_ST_TIMEOUT,
                        S("bad size\nTraceback: here"));
        assert_int_equal(h.len, n < TW_ATTEMPTS_MAX ? n : TW_ATTEMPTS_MAX);
    }
    assert_int_equal(h.runs[0].n, 5);
    assert_int_equal(h.runs[15].n, 20);
    assert_int_equal(h.runs[15].worker, 120);
    assert_string_equal(h.runs[15].error, "bad size");
    assert_string_equal(h.runs[15].traceback, "Traceback: here");
    tw_attempts_add(&h, 21, 1, 1, 2, TW_ST_LOST, NULL, 0);
    assert_null(h.runs[15].error);
    assert_null(h.runs[15].traceback);
    tw_attempts_free(&h);
    assert_int_equal(h.len, 0);
    assert_null(h.runs);
    tw_attempts_free(&h); /* idempotent */
}

static void
test_encode(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_attempts_encode_run(&e, 2, 7, 1000, 0, TW_ST_RUNNING, NULL, 0, NULL,
                           0);
    /* {n:2, worker:7, started_ms:1000, ended_ms:nil, state:"running",
     *  error:nil, traceback:nil} */
    const char want[] = "\x87"
                        "\xa1n\x02"
                        "\xa6worker\x07"
                        "\xaastarted_ms\xcd\x03\xe8"
                        "\xa8" "ended_ms\xc0"
                        "\xa5state\xa7running"
                        "\xa5" "error\xc0"
                        "\xa9traceback\xc0";
    assert_int_equal(tw_enc_size(&e), sizeof want - 1);
    assert_memory_equal(e.sb.data, want, sizeof want - 1);
    tw_enc_free(&e);

    tw_attempts_t h = {NULL, 0};
    tw_attempts_add(&h, 1, 3, 10, 20, TW_ST_ERROR, S("E\ntb"));
    tw_enc_init(&e);
    tw_attempts_encode(&h, &e);
    const char want2[] = "\x87"
                         "\xa1n\x01"
                         "\xa6worker\x03"
                         "\xaastarted_ms\x0a"
                         "\xa8" "ended_ms\x14"
                         "\xa5state\xa5" "error"
                         "\xa5" "error\xa1" "E"
                         "\xa9traceback\xa2tb";
    assert_int_equal(tw_enc_size(&e), sizeof want2 - 1);
    assert_memory_equal(e.sb.data, want2, sizeof want2 - 1);
    tw_enc_free(&e);
    tw_attempts_free(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_keep_last_sixteen),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
