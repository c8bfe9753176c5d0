/*  tests/unit/test_broker_replops.c - the bytes of a store write batch
 *  (broker/state/replops.h, proto/PROTOCOL.md 17.5).
 *
 *  Operations of every kind round-trip; one operation's bytes are checked
 *  octet by octet (the lengths are big-endian on every machine); and each
 *  way a batch from a peer can be malformed is refused with its reason,
 *  the operation's number, and the cursor left where it was: a short
 *  head, an unknown operation or database, a key empty or too long, a
 *  delete with a value, a key or value running past the end (lengths
 *  near 2^32 included, which must not wrap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/state/replops.h"
#include "common/error.h"
#include "tests/unit/support/count_alloc.h"

#include <string.h>

#define S_NDB 5

/* The next operation of `b` from *off: must be one. */
static void
s_next(const tw_replops_t *b, size_t *off, tw_replop_t *op)
{
    assert_int_equal(tw_replops_next(b->buf, b->len, S_NDB, off, op, NULL, 0),
                     1);
}

static void
test_round_trip(void **state)
{
    (void)state;
    tw_replops_t b = {0};
    unsigned char key8[8] = {0, 0, 0, 0, 0, 0, 0, 42};
    tw_replops_add(&b, TW_REPLOP_PUT_LAST, 1, key8, 8, "\x81\x01\x2a", 3);
    tw_replops_add(&b, TW_REPLOP_PUT, 0, "ha", 2, "\x80", 1);
    tw_replops_add(&b, TW_REPLOP_DEL, 2, "station-1", 9, NULL, 0);
    tw_replops_add(&b, TW_REPLOP_DEL_PREFIX, 4, "pool\0", 5, NULL, 0);
    assert_int_equal(b.nops, 4);
    size_t n = 0;
    char why[200];
    assert_int_equal(tw_replops_check(b.buf, b.len, S_NDB, &n, why,
                                      sizeof why),
                     0);
    assert_int_equal(n, 4);
    size_t off = 0;
    tw_replop_t op;
    s_next(&b, &off, &op);
    assert_int_equal(op.op, TW_REPLOP_PUT_LAST);
    assert_int_equal(op.db, 1);
    assert_int_equal(op.klen, 8);
    assert_memory_equal(op.key, key8, 8);
    assert_int_equal(op.vlen, 3);
    assert_memory_equal(op.val, "\x81\x01\x2a", 3);
    s_next(&b, &off, &op);
    assert_int_equal(op.op, TW_REPLOP_PUT);
    assert_int_equal(op.db, 0);
    assert_memory_equal(op.key, "ha", 2);
    s_next(&b, &off, &op);
    assert_int_equal(op.op, TW_REPLOP_DEL);
    assert_int_equal(op.vlen, 0);
    assert_null(op.val);
    s_next(&b, &off, &op);
    assert_int_equal(op.op, TW_REPLOP_DEL_PREFIX);
    assert_int_equal(op.klen, 5);
    assert_memory_equal(op.key, "pool\0", 5);
    assert_int_equal(off, b.len);
    assert_int_equal(tw_replops_next(b.buf, b.len, S_NDB, &off, &op, NULL,
                                     0),
                     0);
    tw_replops_reset(&b);
    assert_null(b.buf);
    assert_int_equal(b.len, 0);
    /* An empty batch is well formed. */
    assert_int_equal(tw_replops_check(NULL, 0, S_NDB, &n, NULL, 0), 0);
    assert_int_equal(n, 0);
}

static void
test_wire_bytes(void **state)
{
    (void)state;
    tw_replops_t b = {0};
    unsigned char key8[8] = {0, 0, 0, 0, 0, 0, 0, 0x2a};
    tw_replops_add(&b, TW_REPLOP_DEL, 1, key8, 8, NULL, 0);
    tw_replops_add(&b, TW_REPLOP_PUT, 0, "ha", 2, "\x80", 1);
    /* PROTOCOL.md 17.5: a delete of task 42, then a put of meta/ha. */
    static const unsigned char want[] = {
        0x03, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
        0x68, 0x61, 0x80};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.buf, want, sizeof want);
    /* A batch grows past its first allocation intact. */
    unsigned char big[70000];
    memset(big, 0xab, sizeof big);
    tw_replops_add(&b, TW_REPLOP_PUT, 3, "p", 1, big, sizeof big);
    size_t n;
    assert_int_equal(tw_replops_check(b.buf, b.len, S_NDB, &n, NULL, 0), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(b.buf, want, sizeof want);
    tw_replops_reset(&b);
}

/* One operation's head with the given fields, then `tail` octets. */
static size_t
s_head(unsigned char *p, int op, int db, uint32_t klen, uint32_t vlen)
{
    p[0] = (unsigned char)op;
    p[1] = (unsigned char)db;
    p[2] = (unsigned char)(klen >> 24);
    p[3] = (unsigned char)(klen >> 16);
    p[4] = (unsigned char)(klen >> 8);
    p[5] = (unsigned char)klen;
    p[6] = (unsigned char)(vlen >> 24);
    p[7] = (unsigned char)(vlen >> 16);
    p[8] = (unsigned char)(vlen >> 8);
    p[9] = (unsigned char)vlen;
    return TW_REPLOP_HEAD;
}

/* A good put of "k" -> "v", then the bad operation in `bad` (badlen
 * octets): refused as operation 2 at octet 12, saying `reason`. */
static void
s_refused(const unsigned char *bad, size_t badlen, const char *reason)
{
    unsigned char buf[1200];
    size_t len = s_head(buf, TW_REPLOP_PUT, 0, 1, 1);
    buf[len++] = 'k';
    buf[len++] = 'v';
    memcpy(buf + len, bad, badlen);
    len += badlen;
    char why[240] = "";
    size_t n = 99;
    assert_int_equal(tw_replops_check(buf, len, S_NDB, &n, why, sizeof why),
                     TW_EPROTO);
    assert_int_equal(n, 99);
    if (!strstr(why, "operation 2 (at octet 12)") || !strstr(why, reason)) {
        fail_msg("'%s' does not say '%s'", why, reason);
    }
    /* The walk stops on it and stays there. */
    size_t off = 0;
    tw_replop_t op;
    assert_int_equal(tw_replops_next(buf, len, S_NDB, &off, &op, NULL, 0),
                     1);
    assert_int_equal(off, 12);
    assert_int_equal(tw_replops_next(buf, len, S_NDB, &off, &op, NULL, 0),
                     TW_EPROTO);
    assert_int_equal(off, 12);
}

static void
test_malformed(void **state)
{
    (void)state;
    unsigned char b[1100];
    memset(b, 'x', sizeof b);
    s_refused(b, 9, "9 octets left");
    s_head(b, 0, 0, 1, 0);
    s_refused(b, 11, "unknown operation 0");
    s_head(b, 5, 0, 1, 0);
    s_refused(b, 11, "unknown operation 5");
    s_head(b, TW_REPLOP_PUT, S_NDB, 1, 0);
    s_refused(b, 11, "unknown database 5");
    s_head(b, TW_REPLOP_PUT, 255, 1, 0);
    s_refused(b, 11, "unknown database 255");
    s_head(b, TW_REPLOP_PUT, 0, 0, 1);
    s_refused(b, 11, "a key of 0 octets");
    s_head(b, TW_REPLOP_DEL_PREFIX, 0, 512, 0);
    s_refused(b, 10 + 512, "a key of 512 octets (1 to 511)");
    s_head(b, TW_REPLOP_DEL, 1, 1, 1);
    s_refused(b, 12, "a delete with a value of 1 octets");
    s_head(b, TW_REPLOP_DEL_PREFIX, 1, 1, 4);
    s_refused(b, 15, "a delete with a value of 4 octets");
    s_head(b, TW_REPLOP_PUT, 0, 5, 0);
    s_refused(b, 14, "run past the batch (4 left)");
    s_head(b, TW_REPLOP_PUT, 0, 2, 3);
    s_refused(b, 14, "key and value (2 + 3 octets)");
    /* Lengths near 2^32 must not wrap around the checks. */
    s_head(b, TW_REPLOP_PUT, 0, 1, 0xffffffffu);
    s_refused(b, 20, "run past the batch");
    s_head(b, TW_REPLOP_PUT, 0, 1, 0xfffffff7u);
    s_refused(b, 20, "run past the batch");
    /* At the limits: a key of 511 octets and an empty value are fine. */
    size_t len = s_head(b, TW_REPLOP_PUT, 4, 511, 0);
    size_t n;
    assert_int_equal(tw_replops_check(b, len + 511, S_NDB, &n, NULL, 0), 0);
    assert_int_equal(n, 1);
    /* ndb bounds the databases. */
    s_head(b, TW_REPLOP_PUT, 2, 1, 0);
    assert_int_equal(tw_replops_check(b, 11, 2, NULL, NULL, 0), TW_EPROTO);
    assert_int_equal(tw_replops_check(b, 11, 3, NULL, NULL, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_wire_bytes, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
