/*  tests/unit/test_jsonw.c - JSON text from msgpack, within a bound.
 *
 *  Each msgpack type against the exact text expected; escapes, U+FFFD
 *  for bytes that are not UTF-8, U+2028/9; the fewest float digits;
 *  payload keys (a bin holding msgpack written as its value) and hex
 *  keys; bytes that are not exactly one msgpack value; and the limit:
 *  the text stops at a character boundary, never in a UTF-8 sequence or
 *  an escape, and never passes the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <string.h>

#include "common/alloc.h"
#include "common/utf8.h"
#include "proto/jsonw.h"

/* msgpack bytes -> JSON text, compared with `want`. */
static void
s_conv(const char *mp, size_t n, const tw_jsonw_opts_t *o, const char *want)
{
    tw_jsonw_t w;
    tw_jsonw_init(&w, 0);
    tw_jsonw_msgpack(&w, mp, n, o);
    assert_string_equal(w.p, want);
    assert_int_equal(w.len, strlen(want));
    assert_false(w.cut);
    tw_jsonw_free(&w);
}

#define S_CONV(lit, want) s_conv(lit, sizeof lit - 1, NULL, want)

static void
test_scalars(void **state)
{
    (void)state;
    S_CONV("\xc0", "null");
    S_CONV("\xc3", "true");
    S_CONV("\xc2", "false");
    S_CONV("\x05", "5");
    S_CONV("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "18446744073709551615");
    S_CONV("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "-9223372036854775808");
    S_CONV("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", "0.1");
    S_CONV("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", "null"); /* NaN */
    S_CONV("\xca\x3f\xc0\x00\x00", "1.5");                  /* float32 */
    S_CONV("\xa2hi", "\"hi\"");
    S_CONV("\xc4\x02\x00\xff", "{\"$bin\":\"00ff\"}");
    S_CONV("\xa2\xff\xfe", "{\"$bin\":\"fffe\"}"); /* str, not UTF-8 */
    S_CONV("\xd4\x07\x2a", "{\"$ext\":7,\"data\":\"2a\"}");
}

static void
test_containers(void **state)
{
    (void)state;
    S_CONV("\x93\x01\xa1x\xc0", "[1,\"x\",null]");
    S_CONV("\x82\xa1" "a\x01\xa1" "b\x90", "{\"a\":1,\"b\":[]}");
    /* Keys that are not strings: their JSON text, as a string. */
    S_CONV("\x83\x05\xa1" "a\xc3\x01\x92\x01\x02\xc0",
           "{\"5\":\"a\",\"true\":1,\"[1,2]\":null}");
    S_CONV("\x80", "{}");
    /* Empty strings and bins (msgpack-c gives them a NULL pointer). */
    S_CONV("\x82\xa0\xa0\xa1k\xc4\x00", "{\"\":\"\",\"k\":{\"$bin\":\"\"}}");
}

static void
test_strings(void **state)
{
    (void)state;
    tw_jsonw_t w;
    tw_jsonw_init(&w, 0);
    const char s[] = "q\"b\\n\nr\rt\tc\x01\x7f"
                     "\xc3\xa9"          /* é */
                     "\xe2\x80\xa8"      /* U+2028 */
                     "\xff"              /* not UTF-8 */
                     "\xf0\x9f\x98\x80"; /* U+1F600 */
    tw_jsonw_str(&w, s, sizeof s - 1);
    assert_string_equal(w.p, "\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\u007f"
                             "\xc3\xa9\\u2028\xef\xbf\xbd"
                             "\xf0\x9f\x98\x80\"");
    assert_true(tw_utf8_valid(w.p, w.len));
    tw_jsonw_free(&w);
    /* Embedded NUL. */
    tw_jsonw_init(&w, 0);
    tw_jsonw_str(&w, "a\0b", 3);
    assert_string_equal(w.p, "\"a\\u0000b\"");
    tw_jsonw_free(&w);
}

static void
test_payload_and_hex_keys(void **state)
{
    (void)state;
    static const char *const payload[] = {"args", "result", NULL};
    static const char *const hex[] = {"boot", NULL};
    tw_jsonw_opts_t o = {payload, hex};
    /* {"args": bin([1,2]), "other": bin(01), "boot": 0x1234,
     *  "result": bin(not msgpack: c1)} */
    const char mp[] = "\x84"
                      "\xa4" "args\xc4\x03\x92\x01\x02"
                      "\xa5" "other\xc4\x01\x01"
                      "\xa4" "boot\xcd\x12\x34"
                      "\xa6" "result\xc4\x01\xc1";
    s_conv(mp, sizeof mp - 1, &o,
           "{\"args\":[1,2],\"other\":{\"$bin\":\"01\"},"
           "\"boot\":\"0000000000001234\",\"result\":{\"$bin\":\"c1\"}}");
    /* Without options the same map keeps its bins. */
    s_conv(mp, sizeof mp - 1, NULL,
           "{\"args\":{\"$bin\":\"920102\"},\"other\":{\"$bin\":\"01\"},"
           "\"boot\":4660,\"result\":{\"$bin\":\"c1\"}}");
}

static void
test_not_one_value(void **state)
{
    (void)state;
    S_CONV("\x01\x02", "{\"$bin\":\"0102\"}"); /* two values */
    S_CONV("\x92\x01", "{\"$bin\":\"9201\"}"); /* truncated */
    S_CONV("\xc1", "{\"$bin\":\"c1\"}");       /* reserved byte */
    s_conv("", 0, NULL, "{\"$bin\":\"\"}");
}

static void
test_limit(void **state)
{
    (void)state;
    /* "ééééé": the quote and two é (5 bytes) fit in 6, not a half é. */
    tw_jsonw_t w;
    tw_jsonw_init(&w, 6);
    tw_jsonw_str(&w, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 10);
    assert_true(w.cut);
    assert_string_equal(w.p, "\"\xc3\xa9\xc3\xa9");
    tw_jsonw_free(&w);
    /* An escape is kept whole or not at all. */
    tw_jsonw_init(&w, 4);
    tw_jsonw_str(&w, "ab\n", 3);
    assert_true(w.cut);
    assert_string_equal(w.p, "\"ab");
    tw_jsonw_free(&w);
    /* Every limit over a mixed value: never past it, always UTF-8, and
     * uncut exactly when the whole text fits. */
    const char mp[] = "\x82\xa1" "a\xa9\xc3\xa9\"x\xe2\x82\xac\nyz"
                      "\xa1" "b\x93\x01\xcb\x3f\xb9\x99\x99\x99\x99\x99"
                      "\x9a\xc4\x02\xab\xcd";
    tw_jsonw_t full;
    tw_jsonw_init(&full, 0);
    tw_jsonw_msgpack(&full, mp, sizeof mp - 1, NULL);
    for (size_t lim = 1; lim <= full.len + 2; lim++) {
        tw_jsonw_init(&w, lim);
        tw_jsonw_msgpack(&w, mp, sizeof mp - 1, NULL);
        assert_true(w.len <= lim);
        assert_true(w.len == 0 || tw_utf8_valid(w.p, w.len));
        assert_int_equal(w.cut, lim < full.len);
        if (w.len) {
            assert_memory_equal(w.p, full.p, w.len); /* a prefix */
        }
        tw_jsonw_free(&w);
    }
    tw_jsonw_free(&full);
}

static void
test_take(void **state)
{
    (void)state;
    tw_jsonw_t w;
    tw_jsonw_init(&w, 0);
    size_t n;
    char *p = tw_jsonw_take(&w, &n); /* nothing written */
    assert_string_equal(p, "");
    assert_int_equal(n, 0);
    tw_free(p);
    tw_jsonw_lit(&w, "{");
    tw_jsonw_key(&w, "k");
    tw_jsonw_int(&w, -3);
    tw_jsonw_lit(&w, "}");
    p = tw_jsonw_take(&w, &n);
    assert_string_equal(p, "{\"k\":-3}");
    assert_int_equal(n, 8);
    assert_null(w.p);
    tw_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_payload_and_hex_keys),
        cmocka_unit_test(test_not_one_value),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_take),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
