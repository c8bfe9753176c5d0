/*  tests/unit/test_client_json.c - the CLI's JSON <-> msgpack conversion.
 *
 *  Round trips JSON text -> msgpack -> JSON text for every JSON type, the
 *  exact msgpack bytes of small values, the msgpack-only types on the way
 *  back (bin, ext, big unsigned integers, non-string keys, bad UTF-8), the
 *  depth limit and the error reported for text that is not JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/cli/json.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON text -> msgpack -> JSON text (compact). Caller frees. */
static char *
roundtrip(const char *text)
{
    void *mp = NULL;
    size_t len = 0;
    char err[256];
    int rc = tw_json_to_msgpack(text, &mp, &len, err, sizeof err);
    if (rc != 0) {
        fail_msg("'%s' did not convert: %s", text, err);
    }
    json_t *v = tw_json_from_msgpack(mp, len);
    assert_non_null(v);
    char *out = tw_json_dumps(v);
    assert_non_null(out);
    json_decref(v);
    free(mp);
    return out;
}

static void
check_same(const char *text)
{
    char *out = roundtrip(text);
    assert_string_equal(out, text);
    free(out);
}

/* The msgpack bytes of `text` must be `want`. */
static void
check_bytes(const char *text, const char *want, size_t wlen)
{
    void *mp = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(tw_json_to_msgpack(text, &mp, &len, err, sizeof err), 0);
    assert_int_equal(len, wlen);
    assert_memory_equal(mp, want, wlen);
    free(mp);
}

/* Convert the msgpack packed by `pk` users into compact JSON text. */
static char *
from_sbuffer(msgpack_sbuffer *sb)
{
    json_t *v = tw_json_from_msgpack(sb->data, sb->size);
    assert_non_null(v);
    char *out = tw_json_dumps(v);
    json_decref(v);
    msgpack_sbuffer_clear(sb);
    return out;
}

static void
test_scalars(void **state)
{
    (void)state;
    const char *cases[] = {
        "null", "true", "false", "0", "1", "-1", "127", "128", "255", "256",
        "-32", "-33", "65536", "4294967296", "-2147483649", "1.5", "-0.25",
        "0.1", "1e+300", "1.0", "\"\"", "\"hello\"", "\"a\\\"b\\\\c\\n\"",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_same(cases[i]);
    }
}

static void
test_exact_bytes(void **state)
{
    (void)state;
    check_bytes("null", "\xc0", 1);
    check_bytes("true", "\xc3", 1);
    check_bytes("5", "\x05", 1);
    check_bytes("-1", "\xff", 1);
    check_bytes("300", "\xcd\x01\x2c", 3);
    check_bytes("[1,\"a\",null]", "\x93\x01\xa1" "a\xc0", 5);
    check_bytes("{\"k\":false}", "\x81\xa1k\xc2", 4);
    check_bytes("1.5", "\xcb\x3f\xf8\0\0\0\0\0\0", 9);
    check_bytes("[]", "\x90", 1);
    check_bytes("{}", "\x80", 1);
}

static void
test_large_ints(void **state)
{
    (void)state;
    check_same("9223372036854775807");
    check_same("-9223372036854775808");
    check_same("[4294967295,-4294967295,9007199254740993]");

    /* Beyond int64: not accepted as JSON input. */
    void *mp = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(tw_json_to_msgpack("18446744073709551615", &mp, &len,
                                        err, sizeof err),
                     TW_EINVAL);
    assert_non_null(strstr(err, "too big"));
    assert_null(mp);

    /* A msgpack uint64 above INT64_MAX comes back as a real. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    char *out = from_sbuffer(&sb);
    assert_string_equal(out, "1.8446744073709552e+19");
    free(out);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_nested(void **state)
{
    (void)state;
    check_same("[]");
    check_same("{}");
    check_same("[[],{},[[]]]");
    check_same("{\"a\":[1,{\"b\":null,\"c\":[true,false]}],\"d\":{\"e\":"
               "{\"f\":\"g\"}},\"h\":2.5}");
    /* Key order is kept, even when not sorted. */
    check_same("{\"z\":1,\"a\":2,\"m\":3}");
}

static void
test_unicode(void **state)
{
    (void)state;
    check_same("\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\"");
    check_same("{\"\xe6\x97\xa5\xe6\x9c\xac\":\"\xd0\xb4\xd0\xb0\"}");
    /* Escapes are decoded on the way in and printed back as UTF-8. */
    char *out = roundtrip("\"\\u00e9\\ud83d\\ude00\"");
    assert_string_equal(out, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    free(out);
    /* An embedded NUL survives. */
    check_same("\"a\\u0000b\"");
    void *mp;
    size_t len;
    char err[256];
    assert_int_equal(
        tw_json_to_msgpack("\"a\\u0000b\"", &mp, &len, err, sizeof err), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(mp, "\xa3" "a\0b", 4);
    free(mp);
}

static void
test_bin(void **state)
{
    (void)state;
    check_bytes("{\"$bin\":\"00ff10\"}", "\xc4\x03\x00\xff\x10", 5);
    check_same("{\"$bin\":\"00ff10\"}");
    check_same("{\"$bin\":\"\"}");
    /* Upper-case hex is accepted, printed back in lower case. */
    char *out = roundtrip("{\"$bin\":\"ABCDEF\"}");
    assert_string_equal(out, "{\"$bin\":\"abcdef\"}");
    free(out);
    /* Not the exact form: stays an ordinary object. */
    check_same("{\"$bin\":\"abc\"}");
    check_same("{\"$bin\":\"zz\"}");
    check_same("{\"$bin\":5}");
    check_same("{\"$bin\":\"00\",\"x\":1}");
    check_bytes("{\"$bin\":\"abc\"}", "\x81\xa4$bin\xa3" "abc", 10);

    /* A long one crosses the converter's chunking. */
    char *text = malloc(2 * 1000 + 16);
    strcpy(text, "{\"$bin\":\"");
    size_t n = strlen(text);
    for (int i = 0; i < 1000; i++) {
        n += (size_t)sprintf(text + n, "%02x", i & 0xff);
    }
    strcpy(text + n, "\"}");
    check_same(text);
    free(text);
}

static void
test_msgpack_only_types(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char *out;

    /* Map keys that are not strings. */
    msgpack_pack_map(&pk, 6);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, -7);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "c", 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "d", 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_double(&pk, 0.5);
    msgpack_pack_str_with_body(&pk, "f", 1);
    out = from_sbuffer(&sb);
    assert_string_equal(out, "{\"1\":\"a\",\"-7\":\"b\",\"true\":\"c\","
                             "\"null\":\"d\",\"[2]\":\"e\",\"0.5\":\"f\"}");
    free(out);

    /* Invalid UTF-8 in a string becomes $bin. */
    msgpack_pack_str_with_body(&pk, "\xff\xfe", 2);
    out = from_sbuffer(&sb);
    assert_string_equal(out, "{\"$bin\":\"fffe\"}");
    free(out);

    /* float32, NaN and infinity. */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_float(&pk, 0.5f);
    msgpack_pack_double(&pk, NAN);
    msgpack_pack_double(&pk, -INFINITY);
    out = from_sbuffer(&sb);
    assert_string_equal(out, "[0.5,null,null]");
    free(out);

    /* ext */
    msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 5);
    out = from_sbuffer(&sb);
    assert_string_equal(out, "{\"$ext\":5,\"data\":\"0102\"}");
    free(out);

    /* Not exactly one value. */
    assert_null(tw_json_from_msgpack("\x01\x02", 2));
    assert_null(tw_json_from_msgpack("\x92\x01", 2));
    assert_null(tw_json_from_msgpack("\xc1", 1));
    assert_null(tw_json_from_msgpack("", 0));
    assert_null(tw_json_from_msgpack(NULL, 3));
    msgpack_sbuffer_destroy(&sb);
}

static void
test_reals_print_short(void **state)
{
    (void)state;
    check_same("[0.1,0.2,0.30000000000000004]");
    check_same("[3.14159,2.5e-10,-1e+100]");
    check_same("123456789.125");
}

static void
test_depth_limit(void **state)
{
    (void)state;
    char text[2 * (TW_JSON_MAX_DEPTH + 2) + 8];
    void *mp;
    size_t len;
    char err[256];
    for (int d = TW_JSON_MAX_DEPTH - 1; d <= TW_JSON_MAX_DEPTH + 1; d++) {
        size_t n = 0;
        for (int i = 0; i < d; i++) {
            text[n++] = '[';
        }
        text[n++] = '1';
        for (int i = 0; i < d; i++) {
            text[n++] = ']';
        }
        text[n] = '\0';
        int rc = tw_json_to_msgpack(text, &mp, &len, err, sizeof err);
        if (d <= TW_JSON_MAX_DEPTH) {
            assert_int_equal(rc, 0);
            /* What we send, msgpack-c can decode. */
            json_t *v = tw_json_from_msgpack(mp, len);
            assert_non_null(v);
            json_decref(v);
            free(mp);
        } else {
            assert_int_equal(rc, TW_E2BIG);
            assert_non_null(strstr(err, "nested"));
        }
    }
    /* An empty array or object counts as a level too. */
    for (int outer = TW_JSON_MAX_DEPTH - 1; outer <= TW_JSON_MAX_DEPTH;
         outer++) {
        for (int obj = 0; obj <= 1; obj++) {
            size_t n = 0;
            for (int i = 0; i < outer; i++) {
                text[n++] = '[';
            }
            n += (size_t)sprintf(text + n, "%s", obj ? "{}" : "[]");
            for (int i = 0; i < outer; i++) {
                text[n++] = ']';
            }
            text[n] = '\0';
            int rc = tw_json_to_msgpack(text, &mp, &len, err, sizeof err);
            if (outer < TW_JSON_MAX_DEPTH) {
                assert_int_equal(rc, 0);
                json_t *v = tw_json_from_msgpack(mp, len);
                assert_non_null(v);
                json_decref(v);
                free(mp);
            } else {
                assert_int_equal(rc, TW_E2BIG);
            }
        }
    }
}

static void
test_invalid_json(void **state)
{
    (void)state;
    const char *bad[] = {"", "[1,", "{'a':1}", "nul", "[1] 2", "{\"a\"}",
                         "\"unterminated", "01", "[1,]", "\"\xff\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *mp = (void *)1;
        size_t len = 99;
        char err[256] = "";
        int rc = tw_json_to_msgpack(bad[i], &mp, &len, err, sizeof err);
        if (rc != TW_EINVAL) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_null(mp);
        assert_int_equal(len, 0);
        assert_non_null(strstr(err, "line 1"));
    }
    char err[256];
    void *mp;
    size_t len;
    assert_int_equal(tw_json_to_msgpack(NULL, &mp, &len, err, sizeof err),
                     TW_EINVAL);
}

static void
test_pack_into_packer(void **state)
{
    (void)state;
    json_error_t je;
    json_t *v = json_loads("{\"x\":[1,2]}", 0, &je);
    assert_non_null(v);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(tw_json_pack(&pk, v, NULL, 0), 0);
    assert_int_equal(sb.size, 6);
    assert_memory_equal(sb.data, "\x81\xa1x\x92\x01\x02", 6);
    json_decref(v);
    msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_large_ints),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_bin),
        cmocka_unit_test(test_msgpack_only_types),
        cmocka_unit_test(test_reals_print_short),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_pack_into_packer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
