/*  tests/unit/test_crc32c.c - CRC-32C against published check values.
 *
 *  The vectors are those of RFC 3720 (iSCSI), appendix B.4, and the
 *  customary check value of "123456789". Both implementations (the
 *  hardware one where the CPU has it, and the table-driven one) must give
 *  them, at every alignment and however the input is split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/crc32c.h"

static void
s_both(const void *p, size_t len, uint32_t want)
{
    assert_int_equal(tw_crc32c(0, p, len), want);
    assert_int_equal(tw__crc32c_soft(0, p, len), want);
}

static void
test_vectors(void **state)
{
    (void)state;
    unsigned char buf[32];
    s_both("123456789", 9, 0xe3069283u);
    memset(buf, 0, sizeof buf);
    s_both(buf, 32, 0x8a9136aau);
    memset(buf, 0xff, sizeof buf);
    s_both(buf, 32, 0x62a8ab43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (unsigned char)i;
    }
    s_both(buf, 32, 0x46dd794eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (unsigned char)(31 - i);
    }
    s_both(buf, 32, 0x113fdb5cu);
    s_both("", 0, 0);
}

/* Any alignment, any split: the same value, and both agree. */
static void
test_split_and_align(void **state)
{
    (void)state;
    unsigned char data[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof data; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++) {
        size_t len = sizeof data - off;
        uint32_t whole = tw_crc32c(0, data + off, len);
        assert_int_equal(tw__crc32c_soft(0, data + off, len), whole);
        for (size_t cut = 0; cut <= len; cut += 37) {
            uint32_t a = tw_crc32c(0, data + off, cut);
            assert_int_equal(tw_crc32c(a, data + off + cut, len - cut),
                             whole);
            a = tw__crc32c_soft(0, data + off, cut);
            assert_int_equal(tw__crc32c_soft(a, data + off + cut,
                                             len - cut),
                             whole);
        }
    }
    /* One flipped bit changes it. */
    uint32_t before = tw_crc32c(0, data, sizeof data);
    data[150] ^= 0x10;
    assert_int_not_equal(tw_crc32c(0, data, sizeof data), before);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_split_and_align),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
