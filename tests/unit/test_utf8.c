/*  tests/unit/test_utf8.c - the one UTF-8 validator, common/utf8.h.
 *
 *  Every code point from U+0000 to U+10FFFF is encoded by hand and must be
 *  valid unless it is a surrogate, and clean unless it is a control
 *  character (C0, DEL, C1) or a bidirectional override; every ill-formed
 *  shape (overlong forms of each length, surrogates, past U+10FFFF, lone
 *  continuation bytes, leads that are never used, a sequence cut at each
 *  byte) must be refused by both checks and scrubbed to '?'. Then the
 *  names the broker's gate has always refused and accepted, and the ASCII
 *  fast path at every alignment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* Encode code point `cp` into out[0..4); returns the length. */
static size_t
s_enc(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static int
s_is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

static int
s_is_bidi(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static void
test_every_code_point(void **state)
{
    (void)state;
    unsigned char b[8];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        size_t n = s_enc(cp, b);
        int surrogate = cp >= 0xd800 && cp <= 0xdfff;
        if (tw_utf8_valid(b, n) != !surrogate) {
            fail_msg("U+%04X: valid %d", (unsigned)cp, !surrogate);
        }
        int clean = !surrogate && !s_is_control(cp) && !s_is_bidi(cp);
        if (tw_utf8_clean(b, n) != clean) {
            fail_msg("U+%04X: clean %d", (unsigned)cp, clean);
        }
        /* Between ASCII, so both the slow and the fast path see it. */
        unsigned char w[24];
        memcpy(w, "abcdefgh", 8);
        memcpy(w + 8, b, n);
        memcpy(w + 8 + n, "ijklmnop", 8);
        if (tw_utf8_valid(w, n + 16) != !surrogate ||
            tw_utf8_clean(w, n + 16) != clean) {
            fail_msg("U+%04X inside ASCII", (unsigned)cp);
        }
    }
}

static void
test_ill_formed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/', two bytes */
        "\xc1\xbf",         /* overlong, two bytes */
        "\xe0\x80\xaf",     /* overlong, three bytes */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xf0\x80\x80\xaf", /* overlong, four bytes */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* a lead never used */
        "\xff",
        "\xfe",
        "\x80", /* a lone continuation byte */
        "\xbf",
        "\xc3\x28",         /* a lead followed by ASCII */
        "\xe2\x28\xa1",
        "\xe2\x82\x28",
        "\xf0\x9f\x98\x28",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n = strlen(bad[i]);
        assert_false(tw_utf8_valid(bad[i], n));
        assert_false(tw_utf8_clean(bad[i], n));
        char s[16];
        memcpy(s, bad[i], n);
        tw_utf8_scrub(s, n);
        assert_true(tw_utf8_valid(s, n));
        assert_non_null(memchr(s, '?', n));
    }
    /* Each well-formed sequence cut at every byte, alone and followed by
     * ASCII: never valid, and scrubbed to exactly one '?' per byte. */
    static const uint32_t cps[] = {0xe9, 0x20ac, 0x1f600, 0x10ffff};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++) {
        unsigned char b[8];
        size_t n = s_enc(cps[i], b);
        for (size_t k = 1; k < n; k++) {
            char s[16];
            memcpy(s, b, k);
            assert_false(tw_utf8_valid(s, k));
            assert_false(tw_utf8_clean(s, k));
            memcpy(s + k, "x", 1);
            assert_false(tw_utf8_valid(s, k + 1));
            tw_utf8_scrub(s, k + 1);
            for (size_t j = 0; j < k; j++) {
                assert_int_equal(s[j], '?');
            }
            assert_int_equal(s[k], 'x');
        }
    }
    char s[] = "ok\xe2\x82 \xff";
    tw_utf8_scrub(s, strlen(s));
    assert_string_equal(s, "ok?? ?");
}

static void
test_names(void **state)
{
    (void)state;
    /* What the broker's gate has accepted and refused in names since it
     * was written; the rule moved here unchanged. */
    static const char *const good[] = {"",       "worker-1", "host.example.org",
                                       "caf\xc3\xa9", "\xe2\x82\xac",
                                       "\xf0\x9f\x98\x80", "a b c"};
    static const char *const bad[] = {
        "tab\there",        "new\nline",      "esc\x1b[0m", "del\x7f",
        "\xc2\x9b" "c1",    /* U+009B, a C1 control (CSI) */
        "\xe2\x80\xae" "x", /* U+202E, right-to-left override */
        "\xe2\x81\xa6" "x", /* U+2066, left-to-right isolate */
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_true(tw_utf8_clean(good[i], strlen(good[i])));
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(tw_utf8_clean(bad[i], strlen(bad[i])));
        assert_true(tw_utf8_valid(bad[i], strlen(bad[i])));
    }
    assert_false(tw_utf8_clean("a\0b", 3));
    assert_true(tw_utf8_valid("a\0b", 3));
}

static void
test_ascii_alignment(void **state)
{
    (void)state;
    /* One bad byte at every position of a long ASCII run, in a buffer of
     * its own length so a read past it would be caught by the sanitizers;
     * the eight-byte fast path must find it at any alignment. */
    for (size_t len = 1; len <= 40; len++) {
        for (size_t at = 0; at < len; at++) {
            char *s = malloc(len);
            memset(s, 'a', len);
            s[at] = (char)0xff;
            assert_false(tw_utf8_valid(s, len));
            s[at] = (char)0x80;
            assert_false(tw_utf8_valid(s, len));
            s[at] = '\n';
            assert_true(tw_utf8_valid(s, len));
            assert_false(tw_utf8_clean(s, len));
            s[at] = 'b';
            assert_true(tw_utf8_valid(s, len));
            assert_true(tw_utf8_clean(s, len));
            free(s);
        }
    }
    assert_true(tw_utf8_valid("", 0));
    assert_true(tw_utf8_clean("", 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_point),
        cmocka_unit_test(test_ill_formed),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ascii_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
