/*  tests/unit/test_error.c - the error-code table.
 *
 *  TW_ERRNO_MAP generates the enum, tw_strerror() and tw_err_name(); these
 *  tests walk the same X-macro so a code added later is checked too: every
 *  code is negative and distinct, has a distinct name equal to its symbol
 *  and a distinct sentence, and unknown codes get a fallback, never NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/error.h"

typedef struct {
    const char *sym;
    int val;
    const char *msg;
} s_code_t;

static const s_code_t s_codes[] = {
#define S_CODE(name, val, msg) {#name, val, msg},
    TW_ERRNO_MAP(S_CODE)
#undef S_CODE
};

#define S_NCODES (sizeof s_codes / sizeof s_codes[0])

static void
test_codes_negative_and_distinct(void **state)
{
    (void)state;
    assert_true(S_NCODES > 10);
    for (size_t i = 0; i < S_NCODES; i++) {
        assert_true(s_codes[i].val < 0);
        for (size_t j = i + 1; j < S_NCODES; j++) {
            assert_int_not_equal(s_codes[i].val, s_codes[j].val);
        }
    }
}

static void
test_names_match_symbols(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCODES; i++) {
        const char *name = tw_err_name(s_codes[i].val);
        assert_non_null(name);
        assert_string_equal(name, s_codes[i].sym);
        for (size_t j = i + 1; j < S_NCODES; j++) {
            assert_string_not_equal(name, tw_err_name(s_codes[j].val));
        }
    }
}

static void
test_messages_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCODES; i++) {
        const char *msg = tw_strerror(s_codes[i].val);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_equal(msg, s_codes[i].msg);
        assert_string_not_equal(msg, "unknown error");
        assert_string_not_equal(msg, "success");
        for (size_t j = i + 1; j < S_NCODES; j++) {
            assert_string_not_equal(msg, tw_strerror(s_codes[j].val));
        }
    }
}

static void
test_known_values(void **state)
{
    (void)state;
    /* Codes that have an errno reuse it; our own live from -4000 down. */
    assert_int_equal(TW_ENOMEM, -ENOMEM);
    assert_int_equal(TW_EAGAIN, -EAGAIN);
    assert_int_equal(TW_ENOENT, -ENOENT);
    assert_int_equal(TW_EPROTO, -4001);
    assert_int_equal(TW_EWORKER, -4009);
    assert_int_equal(TW_OK, 0);
    assert_string_equal(tw_err_name(TW_EFULL), "EFULL");
    assert_string_equal(tw_strerror(TW_EFULL), "queue full");
}

static void
test_success(void **state)
{
    (void)state;
    assert_string_equal(tw_err_name(0), "OK");
    assert_string_equal(tw_strerror(0), "success");
}

static void
test_unknown(void **state)
{
    (void)state;
    const int unknown[] = {1, 12345, -3999, -4999, -99999, INT32_MIN,
                           INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int known = 0;
        for (size_t j = 0; j < S_NCODES; j++) {
            known |= s_codes[j].val == unknown[i];
        }
        assert_false(known);
        assert_non_null(tw_err_name(unknown[i]));
        assert_non_null(tw_strerror(unknown[i]));
        assert_string_equal(tw_err_name(unknown[i]), "EUNKNOWN");
        assert_string_equal(tw_strerror(unknown[i]), "unknown error");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_negative_and_distinct),
        cmocka_unit_test(test_names_match_symbols),
        cmocka_unit_test(test_messages_distinct),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
