/*  tests/unit/test_mpwalk.c - the msgpack walker, proto/mpwalk.h.
 *
 *  One table holds a value of every msgpack type in every encoding (fix,
 *  8, 16, 32, 64 bit; empty and not), with the header's length and child
 *  count. Each must walk to its exact size under both depth limits, agree
 *  with msgpack-c, and be refused when cut at every byte (each prefix in
 *  an allocation of its own, so a read past it is caught by the
 *  sanitizers) or followed by another byte. Then: the size limits (a
 *  container or a string announcing more than is left), the reserved byte
 *  anywhere in a value, the depth limit at and around 32 against
 *  msgpack-c, any depth without a limit (past the walker's stack),
 *  truthiness, map lookups in place and in a decoded tree, strings, names
 *  (clean text, common/utf8.h) and unsigned integers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mpwalk.h"

/* ------------------------------------------------------------ helpers --- */

/* A value as hex digits ("cd0102"), with what its header says. */
typedef struct {
    const char *hex;
    uint64_t len;  /* payload bytes after the header */
    uint64_t kids; /* values after the header */
    int truth;     /* tw_mp_truthy */
} s_case_t;

/* Every type and encoding. Containers hold scalars. */
static const s_case_t s_cases[] = {
    {"00", 0, 0, 0},           /* positive fixint 0 */
    {"7f", 0, 0, 1},           /* positive fixint 127 */
    {"e0", 0, 0, 1},           /* negative fixint -32 */
    {"ff", 0, 0, 1},           /* negative fixint -1 */
    {"c0", 0, 0, 0},           /* nil */
    {"c2", 0, 0, 0},           /* false */
    {"c3", 0, 0, 1},           /* true */
    {"cc00", 1, 0, 0},         /* uint 8 */
    {"ccff", 1, 0, 1},
    {"cd0000", 2, 0, 0},       /* uint 16 */
    {"cd0100", 2, 0, 1},
    {"ce00000000", 4, 0, 0},   /* uint 32 */
    {"ce00000001", 4, 0, 1},
    {"cf0000000000000000", 8, 0, 0}, /* uint 64 */
    {"cf8000000000000000", 8, 0, 1},
    {"d000", 1, 0, 0},         /* int 8 */
    {"d080", 1, 0, 1},
    {"d10000", 2, 0, 0},       /* int 16 */
    {"d1ff00", 2, 0, 1},
    {"d200000000", 4, 0, 0},   /* int 32 */
    {"d2ffffffff", 4, 0, 1},
    {"d30000000000000000", 8, 0, 0}, /* int 64 */
    {"d30000000000000001", 8, 0, 1},
    {"ca00000000", 4, 0, 0},   /* float 32: 0.0 */
    {"ca80000000", 4, 0, 0},   /* -0.0 */
    {"ca3f800000", 4, 0, 1},   /* 1.0 */
    {"cb0000000000000000", 8, 0, 0}, /* float 64: 0.0 */
    {"cb8000000000000000", 8, 0, 0}, /* -0.0 */
    {"cb3fe0000000000000", 8, 0, 1}, /* 0.5 */
    {"cb0000000000000001", 8, 0, 1}, /* the smallest subnormal */
    {"a0", 0, 0, 0},           /* fixstr "" */
    {"a3616263", 3, 0, 1},     /* "abc" */
    {"bf" "61616161616161616161616161616161"
     "616161616161616161616161616161", 31, 0, 1}, /* the longest fixstr */
    {"d900", 0, 0, 0},         /* str 8 */
    {"d9026869", 2, 0, 1},
    {"da0000", 0, 0, 0},       /* str 16 */
    {"da00026869", 2, 0, 1},
    {"db00000000", 0, 0, 0},   /* str 32 */
    {"db000000026869", 2, 0, 1},
    {"c400", 0, 0, 0},         /* bin 8 */
    {"c401ff", 1, 0, 1},
    {"c50000", 0, 0, 0},       /* bin 16 */
    {"c5000100", 1, 0, 1},
    {"c600000000", 0, 0, 0},   /* bin 32 */
    {"c6000000020a1b", 2, 0, 1},
    {"d40501", 2, 0, 1},       /* fixext 1: type, 1 byte */
    {"d5050102", 3, 0, 1},     /* fixext 2 */
    {"d605" "01020304", 5, 0, 1}, /* fixext 4 */
    {"d705" "0102030405060708", 9, 0, 1}, /* fixext 8 */
    {"d805" "0102030405060708090a0b0c0d0e0f10", 17, 0, 1}, /* fixext 16 */
    {"c70005", 1, 0, 1},       /* ext 8, empty: type only */
    {"c7020501ff", 3, 0, 1},
    {"c8000105aa", 2, 0, 1},   /* ext 16 */
    {"c9000000010501", 2, 0, 1}, /* ext 32 */
    {"90", 0, 0, 0},           /* fixarray [] */
    {"9301c0a0", 0, 3, 1},     /* [1, nil, ""] */
    {"dc0000", 0, 0, 0},       /* array 16 */
    {"dc000201c3", 0, 2, 1},
    {"dd00000000", 0, 0, 0},   /* array 32 */
    {"dd0000000101", 0, 1, 1},
    {"80", 0, 0, 0},           /* fixmap {} */
    {"82a16101a162c0", 0, 4, 1}, /* {"a": 1, "b": nil} */
    {"de0000", 0, 0, 0},       /* map 16 */
    {"de0001a16101", 0, 2, 1},
    {"df00000000", 0, 0, 0},   /* map 32 */
    {"df0000000101c3", 0, 2, 1}, /* {1: true}: keys need not be str */
};
#define S_NCASES (sizeof s_cases / sizeof s_cases[0])

/* Decode hex into a fresh allocation of exactly its size (at least 1
 * byte, so malloc(0) never matters); *n gets the length. */
static unsigned char *
s_hex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    unsigned char *p = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        p[i] = (unsigned char)v;
    }
    *n = len;
    return p;
}

/* A copy of p[0..n) in an allocation of exactly n bytes. */
static unsigned char *
s_dup(const unsigned char *p, size_t n)
{
    unsigned char *q = malloc(n ? n : 1);
    memcpy(q, p, n);
    return q;
}

/* What msgpack-c makes of p[0..n): the bytes its first value takes, or 0
 * if it does not decode one. */
static size_t
s_msgpack_c(const unsigned char *p, size_t n)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, (const char *)p, n, &off) ==
             MSGPACK_UNPACK_SUCCESS;
    msgpack_unpacked_destroy(&up);
    return ok ? off : 0;
}

/* ------------------------------------------------------------- types --- */

static void
test_every_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCASES; i++) {
        size_t n;
        unsigned char *p = s_hex(s_cases[i].hex, &n);
        size_t off = 0;
        uint64_t len = 99, kids = 99;
        if (tw_mp_head(p, n, &off, &len, &kids) != 0 ||
            len != s_cases[i].len || kids != s_cases[i].kids) {
            fail_msg("%s: head len %llu kids %llu", s_cases[i].hex,
                     (unsigned long long)len, (unsigned long long)kids);
        }
        if (s_cases[i].kids == 0) {
            assert_int_equal(off + len, n);
        }
        assert_int_equal(tw_mp_skip(p, n), n);
        assert_int_equal(tw_mp_walk(p, n, TW_MP_DEPTH_DECODE), n);
        assert_true(tw_mp_one(p, n, TW_MP_DEPTH_ANY));
        assert_true(tw_mp_one(p, n, TW_MP_DEPTH_DECODE));
        assert_true(tw_mp_one(p, n, 1));
        assert_int_equal(s_msgpack_c(p, n), n);
        if (tw_mp_truthy(p, n) != s_cases[i].truth) {
            fail_msg("%s: truth %d", s_cases[i].hex, s_cases[i].truth);
        }
        /* The byte classes agree with what the header says. */
        int container = tw_mp_is_map(p[0]) || tw_mp_is_array(p[0]);
        assert_int_equal(container, p[0] == 0x90 || p[0] == 0x80 ||
                                        s_cases[i].kids > 0 ||
                                        (p[0] >= 0xdc && p[0] <= 0xdf));
        free(p);
    }
    /* Each first byte belongs to at most one class, and the classes hold
     * 16 + 2 maps, 16 + 2 arrays, 32 + 3 strs and 3 bins. */
    int maps = 0, arrays = 0, strs = 0, bins = 0;
    for (unsigned b = 0; b < 256; b++) {
        int k = tw_mp_is_map(b) + tw_mp_is_array(b) + tw_mp_is_str(b) +
                tw_mp_is_bin(b);
        assert_true(k <= 1);
        maps += tw_mp_is_map(b);
        arrays += tw_mp_is_array(b);
        strs += tw_mp_is_str(b);
        bins += tw_mp_is_bin(b);
    }
    assert_int_equal(maps, 18);
    assert_int_equal(arrays, 18);
    assert_int_equal(strs, 35);
    assert_int_equal(bins, 3);
}

/* Every case inside one big map, itself inside an array. */
static unsigned char *
s_composite(size_t *n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, S_NCASES);
    for (size_t i = 0; i < S_NCASES; i++) {
        size_t len;
        unsigned char *p = s_hex(s_cases[i].hex, &len);
        msgpack_pack_uint64(&pk, i);
        msgpack_sbuffer_write(&sb, (const char *)p, len);
        free(p);
    }
    msgpack_pack_nil(&pk);
    *n = sb.size;
    unsigned char *out = s_dup((const unsigned char *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void
test_truncated_everywhere(void **state)
{
    (void)state;
    /* Every case, and the composite of all of them, cut at every byte. */
    for (size_t i = 0; i <= S_NCASES; i++) {
        size_t n;
        unsigned char *p = i < S_NCASES ? s_hex(s_cases[i].hex, &n)
                                        : s_composite(&n);
        assert_int_equal(tw_mp_skip(p, n), n);
        for (size_t k = 0; k < n; k++) {
            unsigned char *cut = s_dup(p, k);
            if (tw_mp_skip(cut, k) != 0 ||
                tw_mp_walk(cut, k, TW_MP_DEPTH_DECODE) != 0 ||
                tw_mp_one(cut, k, TW_MP_DEPTH_ANY) ||
                s_msgpack_c(cut, k) != 0) {
                fail_msg("value %zu cut at %zu of %zu walked", i, k, n);
            }
            free(cut);
        }
        /* One more byte: the value still walks to its size, but is not
         * exactly one value any more. */
        unsigned char *more = malloc(n + 1);
        memcpy(more, p, n);
        more[n] = 0xc0;
        assert_int_equal(tw_mp_skip(more, n + 1), n);
        assert_false(tw_mp_one(more, n + 1, TW_MP_DEPTH_ANY));
        assert_false(tw_mp_one(more, n + 1, TW_MP_DEPTH_DECODE));
        free(more);
        free(p);
    }
    assert_int_equal(tw_mp_skip(NULL, 0), 0);
    assert_int_equal(tw_mp_skip(NULL, 10), 0);
    assert_false(tw_mp_one(NULL, 0, TW_MP_DEPTH_DECODE));
    assert_false(tw_mp_one("", 0, TW_MP_DEPTH_DECODE));
}

static void
test_reserved_byte(void **state)
{
    (void)state;
    /* 0xc1 in place of any one value of the composite: never a value. */
    size_t n;
    unsigned char *p = s_composite(&n);
    size_t off = 1; /* past the array header */
    size_t mhdr = 0;
    uint64_t len, kids;
    assert_int_equal(tw_mp_head(p + off, n - off, &mhdr, &len, &kids), 0);
    off += mhdr;
    for (size_t i = 0; i < kids; i++) {
        size_t sz = tw_mp_skip(p + off, n - off);
        assert_true(sz > 0);
        unsigned char *q = s_dup(p, n);
        q[off] = 0xc1;
        assert_int_equal(tw_mp_skip(q, n), 0);
        assert_int_equal(s_msgpack_c(q, n), 0);
        free(q);
        off += sz;
    }
    free(p);
    assert_int_equal(tw_mp_skip("\xc1", 1), 0);
    size_t o = 0;
    assert_int_equal(tw_mp_head((const unsigned char *)"\xc1", 1, &o, &len,
                                &kids),
                     -1);
}

/* ------------------------------------------------------------ limits --- */

static void
test_size_limits(void **state)
{
    (void)state;
    /* A container may not announce more elements than bytes are left,
     * and a string or bin not more bytes: refused at the header, before
     * anything is read (or allocated, by a decoder trusting the count). */
    static const char *const hostile[] = {
        "ddffffffff",             /* array 32 of 4G elements */
        "dfffffffff",             /* map 32 of 4G pairs */
        "dc0003" "0102",          /* array 16 of 3, 2 bytes left */
        "de0002" "010203",        /* map 16 of 2 pairs, 3 bytes left */
        "93" "0102",              /* fixarray of 3, 2 bytes left */
        "82" "010203",            /* fixmap of 2 pairs, 3 bytes left */
        "dbffffffff" "61",        /* str 32 of 4G bytes */
        "c6ffffffff",             /* bin 32 of 4G bytes */
        "c9ffffffff05",           /* ext 32 of 4G bytes */
        "d9056162",               /* str 8 of 5, 2 left */
        "91" "dd7fffffff" "00",   /* nested: the inner count is too big */
        "92" "92" "92" "9f" "00", /* due values add up past the end */
    };
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        size_t n;
        unsigned char *p = s_hex(hostile[i], &n);
        if (tw_mp_skip(p, n) != 0 ||
            tw_mp_walk(p, n, TW_MP_DEPTH_DECODE) != 0) {
            fail_msg("%s walked", hostile[i]);
        }
        free(p);
    }
    /* Exactly as many elements as bytes: fine. */
    assert_int_equal(tw_mp_skip("\x93\x01\x02\x03", 4), 4);
    assert_int_equal(tw_mp_skip("\xdc\x00\x02\xc0\xc0", 5), 5);
}

/* `d` nested one-element arrays around nil; with `empty`, the innermost
 * array is empty instead. Returns the length written into buf. */
static size_t
s_nest(unsigned char *buf, size_t d, int empty)
{
    memset(buf, 0x91, d);
    if (empty) {
        buf[d - 1] = 0x90;
        return d;
    }
    buf[d] = 0xc0;
    return d + 1;
}

static void
test_depth(void **state)
{
    (void)state;
    /* 32 containers open at once are what msgpack-c decodes; a 33rd is
     * refused even when it is empty. The walker agrees at every depth. */
    unsigned char buf[64];
    for (size_t d = 1; d <= 40; d++) {
        for (int empty = 0; empty <= 1; empty++) {
            size_t n = s_nest(buf, d, empty);
            int ok = d <= TW_MP_DEPTH_DECODE;
            unsigned char *p = s_dup(buf, n);
            if (tw_mp_one(p, n, TW_MP_DEPTH_DECODE) != ok ||
                (s_msgpack_c(p, n) == n) != ok) {
                fail_msg("depth %zu empty %d: want %d", d, empty, ok);
            }
            assert_true(tw_mp_one(p, n, TW_MP_DEPTH_ANY));
            /* A smaller limit counts the same way. */
            assert_int_equal(tw_mp_one(p, n, 3), d <= 3);
            free(p);
        }
    }
    /* Maps count as arrays do, keys included: {[[...31 deep...]]: 1}
     * holds 32 open containers around its nil; an empty array there
     * instead is a 33rd. */
    unsigned char m[40];
    m[0] = 0x81;
    memset(m + 1, 0x91, 31);
    m[32] = 0xc0;
    m[33] = 0x01;
    assert_int_equal(tw_mp_walk(m, 34, TW_MP_DEPTH_DECODE), 34);
    assert_int_equal(s_msgpack_c(m, 34), 34);
    m[32] = 0x90;
    assert_int_equal(tw_mp_walk(m, 34, TW_MP_DEPTH_DECODE), 0);
    assert_int_equal(s_msgpack_c(m, 34), 0);
    assert_int_equal(tw_mp_walk(m, 34, TW_MP_DEPTH_ANY), 34);
    /* Depth is what is open at once: siblings do not add up. Two
     * 31-deep arrays side by side inside one more are 32 levels. */
    unsigned char sib[80];
    sib[0] = 0x92;
    size_t k = 1 + s_nest(sib + 1, 31, 0);
    k += s_nest(sib + k, 31, 0);
    assert_int_equal(tw_mp_walk(sib, k, TW_MP_DEPTH_DECODE), k);
    assert_int_equal(s_msgpack_c(sib, k), k);
}

static void
test_depth_any(void **state)
{
    (void)state;
    /* Without a limit, nesting past the walker's stack is only counted:
     * [[[...[nil, 1]..., 1], 1], 1] 1000 deep walks to its exact size,
     * and the same cut at any byte does not walk. */
    size_t d = 1000, n = 0;
    unsigned char *p = malloc(3 * d + 1);
    for (size_t i = 0; i < d; i++) {
        p[n++] = 0x92;
    }
    p[n++] = 0xc0;
    for (size_t i = 0; i < d; i++) {
        p[n++] = 0x01;
    }
    assert_int_equal(tw_mp_skip(p, n), n);
    assert_false(tw_mp_one(p, n, TW_MP_DEPTH_DECODE));
    for (size_t k = 0; k < n; k++) {
        unsigned char *cut = s_dup(p, k);
        assert_int_equal(tw_mp_skip(cut, k), 0);
        free(cut);
    }
    /* A wide value past the stack: 40 levels of {k: [..], k2: "x"}. */
    n = 0;
    for (size_t i = 0; i < 40; i++) {
        p[n++] = 0x82;
        p[n++] = 0x01;
    }
    p[n++] = 0xc0;
    for (size_t i = 0; i < 40; i++) {
        p[n++] = 0x02;
        p[n++] = 0xa1;
        p[n++] = 'x';
    }
    assert_int_equal(tw_mp_skip(p, n), n);
    assert_int_equal(tw_mp_skip(p, n - 1), 0);
    free(p);
}

/* ---------------------------------------------------------- readers --- */

static void
test_truthy(void **state)
{
    (void)state;
    /* The table covers every type; here what is cut short or empty. */
    assert_false(tw_mp_truthy((const unsigned char *)"", 0));
    assert_false(tw_mp_truthy((const unsigned char *)"\xcd\x01", 2));
    assert_false(tw_mp_truthy((const unsigned char *)"\xcb\x3f", 2));
    assert_false(tw_mp_truthy((const unsigned char *)"\xdc\x00", 2));
    assert_false(tw_mp_truthy((const unsigned char *)"\xc1", 1));
    /* A container is judged by its count, without reading its elements;
     * a string by its length. */
    assert_true(tw_mp_truthy((const unsigned char *)"\x91", 1));
    assert_true(tw_mp_truthy((const unsigned char *)"\xa1", 1));
}

static void
test_map_get(void **state)
{
    (void)state;
    /* {1: "int key", "stop": true, "exc": [1, 2], "stop": false,
     *  str8 "long": nil} */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "int key", 7);
    msgpack_pack_str_with_body(&pk, "stop", 4);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "exc", 3);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, "stop", 4);
    msgpack_pack_false(&pk);
    msgpack_sbuffer_write(&sb, "\xd9\x04long\xc0", 7);
    size_t n = sb.size;
    unsigned char *p = s_dup((const unsigned char *)sb.data, n);
    msgpack_sbuffer_destroy(&sb);

    const unsigned char *v;
    size_t vlen;
    assert_true(tw_mp_map_get(p, n, "stop", 4, &v, &vlen));
    assert_int_equal(vlen, 1);
    assert_int_equal(v[0], 0xc3); /* the first of two */
    assert_true(tw_mp_map_get(p, n, "exc", 3, &v, &vlen));
    assert_int_equal(vlen, 3);
    assert_memory_equal(v, "\x92\x01\x02", 3);
    assert_true(tw_mp_map_get(p, n, "long", 4, &v, &vlen));
    assert_int_equal(v[0], 0xc0);
    assert_false(tw_mp_map_get(p, n, "sto", 3, &v, &vlen));
    assert_false(tw_mp_map_get(p, n, "stopp", 5, &v, &vlen));
    assert_false(tw_mp_map_get(p, n, "int key", 7, &v, &vlen));
    /* Cut anywhere before "exc"'s value ends: that key is not found. */
    for (size_t k = 0; k < n; k++) {
        unsigned char *cut = s_dup(p, k);
        int found = tw_mp_map_get(cut, k, "exc", 3, &v, &vlen);
        assert_int_equal(found, k >= 23);
        free(cut);
    }
    free(p);
    /* Only a map is looked into: an array of key, value is not one. */
    assert_false(tw_mp_map_get((const unsigned char *)"\x92\xa1k\x01", 4,
                               "k", 1, &v, &vlen));
    assert_false(tw_mp_map_get((const unsigned char *)"", 0, "k", 1, &v,
                               &vlen));

    /* The same lookup in a tree msgpack-c built. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, "\x83\x01\xa1x\xa1k\x05\xa1k"
                                              "\x06", 10, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *o = tw_mp_get(&up.data, "k");
    assert_non_null(o);
    assert_int_equal(o->via.u64, 5);
    assert_null(tw_mp_get(&up.data, "x")); /* the int key 1 is no str */
    assert_null(tw_mp_get(&up.data, ""));
    assert_null(tw_mp_get(&o[0], "k")); /* not a map */
    assert_null(tw_mp_get(NULL, "k"));
    msgpack_unpacked_destroy(&up);
}

static void
test_text_name_uint(void **state)
{
    (void)state;
    const char *s;
    size_t len;
    const unsigned char *str = (const unsigned char *)"\xa3" "abc";
    assert_true(tw_mp_text(str, 4, 0, &s, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(s, "abc", 3);
    assert_false(tw_mp_text(str, 3, 0, &s, &len)); /* cut */
    assert_false(tw_mp_text((const unsigned char *)"\xa3" "abcd", 5, 0, &s,
                            &len)); /* a byte too many */
    const unsigned char *bin = (const unsigned char *)"\xc4\x02\x00\x0a";
    assert_false(tw_mp_text(bin, 4, 0, &s, &len));
    assert_true(tw_mp_text(bin, 4, 1, &s, &len));
    assert_int_equal(len, 2);
    assert_true(tw_mp_text((const unsigned char *)"\xda\x00\x01z", 4, 0, &s,
                           &len));
    assert_false(tw_mp_text((const unsigned char *)"\x01", 1, 1, &s, &len));
    assert_false(tw_mp_text((const unsigned char *)"", 0, 1, &s, &len));

    /* Names: a str of 1 to max bytes of clean text. */
    assert_true(tw_mp_name(str, 4, 3, &s, &len));
    assert_false(tw_mp_name(str, 4, 2, &s, &len));
    assert_false(tw_mp_name((const unsigned char *)"\xa0", 1, 8, &s, &len));
    assert_false(tw_mp_name((const unsigned char *)"\xa2" "a\n", 3, 8, &s,
                            &len));
    assert_false(tw_mp_name((const unsigned char *)"\xa2\xc3\x28", 3, 8, &s,
                            &len));
    assert_true(tw_mp_name((const unsigned char *)"\xa2\xc3\xa9", 3, 8, &s,
                           &len));
    assert_false(tw_mp_name(bin, 4, 8, &s, &len));

    /* Unsigned integers in their unsigned encodings only. */
    uint64_t v;
    assert_true(tw_mp_uint((const unsigned char *)"\x05", 1, &v));
    assert_int_equal(v, 5);
    assert_true(tw_mp_uint((const unsigned char *)"\xcd\x01\x00", 3, &v));
    assert_int_equal(v, 256);
    assert_true(tw_mp_uint((const unsigned char *)"\xcf\xff\xff\xff\xff"
                                                  "\xff\xff\xff\xff",
                           9, &v));
    assert_true(v == UINT64_MAX);
    assert_false(tw_mp_uint((const unsigned char *)"\xcd\x01", 2, &v));
    assert_false(tw_mp_uint((const unsigned char *)"\x05\x00", 2, &v));
    assert_false(tw_mp_uint((const unsigned char *)"\xd0\x05", 2, &v));
    assert_false(tw_mp_uint((const unsigned char *)"\xff", 1, &v));
    assert_false(tw_mp_uint((const unsigned char *)"", 0, &v));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_reserved_byte),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_depth_any),
        cmocka_unit_test(test_truthy),
        cmocka_unit_test(test_map_get),
        cmocka_unit_test(test_text_name_uint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
