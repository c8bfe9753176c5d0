/*  tests/unit/test_worker_frame.c - length-prefixed msgpack frames and
 *  the frames of the process handler protocol.
 *
 *  worker/frame.h is the one reader and writer of the frames the worker
 *  exchanges with programs (an exec program's fd 3, a proc child's stdin
 *  and stdout); worker/proc_codec.h writes and reads the frames of
 *  proto/PROTOCOL.md 15. The reader and the parsers are pure and are fed
 *  bytes directly, in pieces and with every kind of damage; the writer is
 *  checked through a real pipe. The worked example of PROTOCOL.md 15.8 is
 *  checked byte for byte, so the document cannot drift from the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "proto/proto.h"
#include "tests/unit/support/suite.h"
#include "worker/exec_chan.h"
#include "worker/frame.h"
#include "worker/proc_codec.h"
#include "worker/procpool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes from "00 0a ff" text. */
static size_t
s_hex(const char *text, unsigned char *out)
{
    size_t n = 0;
    unsigned v;
    int k;
    while (sscanf(text, " %2x%n", &v, &k) == 1) {
        out[n++] = (unsigned char)v;
        text += k;
    }
    return n;
}

/* The reader --------------------------------------------------------------- */

typedef struct {
    char got[8][64];
    size_t len[8];
    int n;
    int stop_at; /* return 1 from this frame on (-1: never) */
} s_sink_t;

static int
s_collect(void *arg, const char *body, size_t len)
{
    s_sink_t *s = arg;
    assert_true(s->n < 8 && len <= 64);
    memcpy(s->got[s->n], body, len);
    s->len[s->n] = len;
    s->n++;
    return s->stop_at >= 0 && s->n > s->stop_at ? 1 : 0;
}

/* Feed `p[0..n)` in pieces of `step` bytes. */
static int
s_feed(tw_frame_reader_t *r, const void *p, size_t n, size_t step,
       s_sink_t *sink)
{
    const char *c = p;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += step) {
        size_t k = n - i < step ? n - i : step;
        uv_buf_t b = tw_frame_reader_room(r);
        assert_true(b.len >= k);
        memcpy(b.base, c + i, k);
        rc = tw_frame_reader_feed(r, k, s_collect, sink);
    }
    return rc;
}

static void
test_reader_pieces(void **state)
{
    (void)state;
    static const char two[] = "\0\0\0\x03"
                              "abc"
                              "\0\0\0\x01"
                              "z";
    for (size_t step = 1; step <= sizeof two; step++) {
        tw_frame_reader_t r;
        tw_frame_reader_init(&r, 100);
        s_sink_t sink = {.stop_at = -1};
        assert_int_equal(s_feed(&r, two, sizeof two - 1, step, &sink), 0);
        assert_int_equal(sink.n, 2);
        assert_int_equal(sink.len[0], 3);
        assert_memory_equal(sink.got[0], "abc", 3);
        assert_int_equal(sink.len[1], 1);
        assert_int_equal(r.len, 0);
        tw_frame_reader_free(&r);
    }
}

static void
test_reader_limits(void **state)
{
    (void)state;
    tw_frame_reader_t r;
    tw_frame_reader_init(&r, 4);
    s_sink_t sink = {.stop_at = -1};
    /* 4 bytes is the limit; 5 is refused, and so is 0. */
    assert_int_equal(s_feed(&r, "\0\0\0\x04wxyz", 8, 8, &sink), 0);
    assert_int_equal(sink.n, 1);
    assert_int_equal(s_feed(&r, "\0\0\0\x05vwxyz", 9, 9, &sink), TW_E2BIG);
    assert_int_equal(r.bad, 5);
    assert_int_equal(r.len, 0);
    assert_int_equal(s_feed(&r, "\0\0\0\0", 4, 4, &sink), TW_E2BIG);
    assert_int_equal(r.bad, 0);
    /* Text where a frame should be. */
    assert_int_equal(s_feed(&r, "Hello", 5, 5, &sink), TW_E2BIG);
    char why[160];
    tw_frame_bad_length(r.bad, why, sizeof why);
    assert_string_equal(why, "1214606444 (the bytes \"Hell\": text written "
                             "to the frame stream?)");
    tw_frame_bad_length(0x01020304, why, sizeof why);
    assert_string_equal(why, "16909060");
    /* A callback that stops the reading empties the reader. */
    sink.n = 0;
    sink.stop_at = 0;
    assert_int_equal(s_feed(&r,
                            "\0\0\0\x01"
                            "a\0\0\0\x01"
                            "b",
                            10, 10, &sink),
                     1);
    assert_int_equal(sink.n, 1);
    assert_int_equal(r.len, 0);
    tw_frame_reader_free(&r);
}

/* A large frame grows the buffer, which shrinks back afterwards. */
static int
s_count_big(void *arg, const char *body, size_t len)
{
    size_t *got = arg;
    *got = len;
    return body[0] == 'x' && body[len - 1] == 'x' ? 0 : -1;
}

static void
test_reader_large(void **state)
{
    (void)state;
    tw_frame_reader_t r;
    tw_frame_reader_init(&r, 8u << 20);
    size_t n = 3u << 20;
    char *f = malloc(4 + n);
    f[0] = (char)(n >> 24);
    f[1] = (char)(n >> 16);
    f[2] = (char)(n >> 8);
    f[3] = (char)n;
    memset(f + 4, 'x', n);
    size_t at = 0, got = 0;
    while (at < 4 + n) {
        uv_buf_t b = tw_frame_reader_room(&r);
        size_t k = 4 + n - at < b.len ? 4 + n - at : b.len;
        memcpy(b.base, f + at, k);
        at += k;
        assert_int_equal(tw_frame_reader_feed(&r, k, s_count_big, &got), 0);
        assert_int_equal(got, at < 4 + n ? 0 : n);
    }
    assert_int_equal(r.len, 0);
    assert_int_equal(r.cap, 0); /* given back */
    free(f);
    tw_frame_reader_free(&r);
}

/* Parsing ----------------------------------------------------------------- */

static int
s_parse_hex(tw_frame_t *f, const char *hex, unsigned char *buf,
            const char **why)
{
    size_t n = s_hex(hex, buf);
    return tw_frame_parse(f, buf, n, why);
}

static void
test_parse(void **state)
{
    (void)state;
    unsigned char buf[256];
    tw_frame_t f;
    const char *why = NULL;
    /* {"ev": "x", "n": 300, "s": "hi", "a": [1]} */
    assert_int_equal(s_parse_hex(&f,
                                 "84 a2 65 76 a1 78 a1 6e cd 01 2c a1 73 "
                                 "a2 68 69 a1 61 91 01",
                                 buf, &why),
                     0);
    assert_true(tw_frame_is(&f, "x"));
    assert_false(tw_frame_is(&f, "xy"));
    uint64_t v;
    assert_true(tw_frame_uint(&f, "n", &v));
    assert_int_equal(v, 300);
    assert_false(tw_frame_uint(&f, "s", &v));
    size_t len;
    const char *s = tw_frame_str(&f, "s", &len);
    assert_non_null(s);
    assert_memory_equal(s, "hi", 2);
    assert_null(tw_frame_str(&f, "n", &len));
    const unsigned char *a = tw_frame_get(&f, "a", &len);
    assert_int_equal(len, 2);
    assert_int_equal(a[0], 0x91);
    assert_null(tw_frame_get(&f, "missing", &len));

    struct {
        const char *hex, *why;
    } bad[] = {
        {"", "not one msgpack value"},
        {"81 a2 65 76", "not one msgpack value"},          /* truncated */
        {"81 a2 65 76 a1 78 c0", "not one msgpack value"}, /* trailing */
        {"93 01 02 03", "not a map"},
        {"a5 68 65 6c 6c 6f", "not a map"},
        {"82 a2 65 76 a1 78 01 02", "a key that is not a str"},
        {"81 a1 72 01", "no str \"ev\""},
        {"81 a2 65 76 01", "no str \"ev\""},
        {"81 a2 65 76 c4 01 78", "no str \"ev\""},
        {"c1", "not one msgpack value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(s_parse_hex(&f, bad[i].hex, buf, &why), TW_EPROTO);
        assert_string_equal(why, bad[i].why);
    }
}

/* Proc frames against PROTOCOL.md 15.8 ---------------------------------- */

/* `e` holds exactly the frame `hex`, its length included; it is emptied
 * for the next. */
static void
s_expect_enc(tw_enc_t *e, const char *hex)
{
    unsigned char want[256];
    size_t n = s_hex(hex, want);
    assert_int_equal(e->sb.size, n);
    assert_memory_equal(e->sb.data, want, n);
    assert_int_equal(want[0] << 24 | want[1] << 16 | want[2] << 8 | want[3],
                     n - 4);
    tw_enc_clear(e);
}

static void
test_spec_worker_frames(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    static const unsigned char args[] = {0x92, 0xcd, 0x02, 0x80,
                                         0xcd, 0x01, 0xe0};
    tw_proc_call_t c = {
        .h = "resize",
        .hlen = 6,
        .task = 42,
        .at = 1,
        .to = 30000,
        .dl = 1700000030000ull,
        .a = args,
        .alen = sizeof args,
    };
    tw_proc_enc_call(&e, &c);
    s_expect_enc(&e, "00 00 00 41 88 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a4 74 61 73 6b a1 68 a6 72 65 73 69 7a 65 a4 74 61 73 "
                     "6b 2a a2 61 74 01 a2 74 6f cd 75 30 a2 64 6c cf 00 00 "
                     "01 8b cf e5 dd 30 a1 61 92 cd 02 80 cd 01 e0");
    static const unsigned char seven = 0x07;
    tw_proc_call_t sc = {
        .station = 1,
        .h = "tick",
        .hlen = 4,
        .sid = "t1",
        .sidlen = 2,
        .it = 8,
        .a = &seven,
        .alen = 1,
    };
    tw_proc_enc_call(&e, &sc);
    s_expect_enc(&e, "00 00 00 2b 86 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a7 73 74 61 74 69 6f 6e a1 68 a4 74 69 63 6b a3 73 69 "
                     "64 a2 74 31 a2 69 74 08 a1 61 07");
    tw_proc_enc_cancel(&e, 42);
    s_expect_enc(&e, "00 00 00 11 82 a2 65 76 a6 63 61 6e 63 65 6c a4 74 61 "
                     "73 6b 2a");
    tw_proc_enc_cancel(&e, 0);
    s_expect_enc(&e, "00 00 00 0b 81 a2 65 76 a6 63 61 6e 63 65 6c");
    tw_proc_enc_bare(&e, "cancel");
    s_expect_enc(&e, "00 00 00 0b 81 a2 65 76 a6 63 61 6e 63 65 6c");
    tw_proc_enc_bare(&e, "shutdown");
    s_expect_enc(&e, "00 00 00 0d 81 a2 65 76 a8 73 68 75 74 64 6f 77 6e");
    static const unsigned char go[] = {0xa2, 0x67, 0x6f};
    tw_proc_enc_n2s(&e, 3, go, sizeof go);
    s_expect_enc(&e, "00 00 00 12 83 a2 65 76 a3 6e 32 73 a3 73 65 71 03 a1 "
                     "64 a2 67 6f");
    /* No arguments: nil. */
    tw_proc_call_t nc = {.h = "x", .hlen = 1, .task = 1, .at = 1};
    tw_proc_enc_call(&e, &nc);
    assert_int_equal((unsigned char)e.sb.data[e.sb.size - 1], 0xc0);
    /* Frames append: a call, then a cancel, each with its own length. */
    size_t first = e.sb.size;
    tw_proc_enc_cancel(&e, 1);
    assert_int_equal(e.sb.size, first + 4 + 0x11);
    assert_memory_equal(e.sb.data + first, "\x00\x00\x00\x11\x82", 5);
    assert_int_equal(e.sb.data[3], (char)(first - 4));
    tw_enc_free(&e);
}

/* The worked examples of 15.9 (pipelines) and 15.10 (n2s acknowledged). */
static void
test_spec_pipeline_and_n2s(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    unsigned char buf[256];
    tw_frame_t f;
    const char *why;
    char err[256];
    tw_proc_hello_t *h = malloc(sizeof *h);
    size_t n = s_hex("00 00 00 28 84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 "
                     "68 61 6e 64 6c 65 72 73 91 a6 72 65 73 69 7a 65 a8 70 "
                     "69 70 65 6c 69 6e 65 02",
                     buf);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err), 0);
    assert_int_equal(h->pipeline, 2);
    static const unsigned char a43[] = {0x92, 0x40, 0x30};
    static const unsigned char a44[] = {0x92, 0x20, 0x18};
    tw_proc_call_t c = {.h = "resize", .hlen = 6, .task = 43, .at = 1,
                        .a = a43, .alen = sizeof a43};
    tw_proc_enc_call(&e, &c);
    s_expect_enc(&e, "00 00 00 2b 86 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a4 74 61 73 6b a1 68 a6 72 65 73 69 7a 65 a4 74 61 73 "
                     "6b 2b a2 61 74 01 a1 61 92 40 30");
    c.task = 44;
    c.a = a44;
    tw_proc_enc_call(&e, &c);
    s_expect_enc(&e, "00 00 00 2b 86 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a4 74 61 73 6b a1 68 a6 72 65 73 69 7a 65 a4 74 61 73 "
                     "6b 2c a2 61 74 01 a1 61 92 20 18");
    tw_proc_enc_cancel(&e, 44);
    s_expect_enc(&e, "00 00 00 11 82 a2 65 76 a6 63 61 6e 63 65 6c a4 74 61 "
                     "73 6b 2c");
    n = s_hex("00 00 00 10 82 a2 65 76 a6 72 65 73 75 6c 74 a1 72 cd 0c 00",
              buf);
    assert_int_equal(n - 4, 0x10);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_true(tw_frame_is(&f, "result"));
    n = s_hex("00 00 00 18 82 a2 65 76 a5 65 72 72 6f 72 a3 6d 73 67 a9 63 "
              "61 6e 63 65 6c 6c 65 64",
              buf);
    assert_int_equal(n - 4, 0x18);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    char text[32];
    tw_proc_error_text(&f, text, sizeof text);
    assert_string_equal(text, "cancelled");

    /* 15.10 */
    static const unsigned char zero = 0x00, five = 0x05, six = 0x06;
    tw_proc_call_t sc = {.station = 1, .h = "inbox", .hlen = 5, .sid = "s1",
                         .sidlen = 2, .it = 3, .n2s = 1, .a = &zero,
                         .alen = 1};
    tw_proc_enc_call(&e, &sc);
    s_expect_enc(&e, "00 00 00 31 87 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a7 73 74 61 74 69 6f 6e a1 68 a5 69 6e 62 6f 78 a3 73 "
                     "69 64 a2 73 31 a2 69 74 03 a3 6e 32 73 c3 a1 61 00");
    tw_proc_enc_n2s(&e, 7, &five, 1);
    s_expect_enc(&e, "00 00 00 10 83 a2 65 76 a3 6e 32 73 a3 73 65 71 07 a1 "
                     "64 05");
    tw_proc_enc_n2s(&e, 8, &six, 1);
    s_expect_enc(&e, "00 00 00 10 83 a2 65 76 a3 6e 32 73 a3 73 65 71 08 a1 "
                     "64 06");
    n = s_hex("00 00 00 13 83 a2 65 76 a6 72 65 73 75 6c 74 a1 72 05 a3 6e "
              "32 73 07",
              buf);
    assert_int_equal(n - 4, 0x13);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    uint64_t took = 0;
    assert_true(tw_frame_uint(&f, "n2s", &took));
    assert_int_equal(took, 7);
    sc.it = 4;
    sc.a = &five;
    tw_proc_enc_call(&e, &sc);
    s_expect_enc(&e, "00 00 00 31 87 a2 65 76 a4 63 61 6c 6c a4 6b 69 6e 64 "
                     "a7 73 74 61 74 69 6f 6e a1 68 a5 69 6e 62 6f 78 a3 73 "
                     "69 64 a2 73 31 a2 69 74 04 a3 6e 32 73 c3 a1 61 05");
    free(h);
    tw_enc_free(&e);
}

static void
test_spec_child_frames(void **state)
{
    (void)state;
    unsigned char buf[512];
    tw_frame_t f;
    const char *why;
    tw_proc_hello_t *h = malloc(sizeof *h);
    char err[256];
    /* The hello of 15.8, without its length. */
    size_t n = s_hex("00 00 00 23 83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 "
                     "68 61 6e 64 6c 65 72 73 92 a6 72 65 73 69 7a 65 a4 74 "
                     "69 63 6b",
                     buf);
    assert_int_equal(n - 4, 0x23);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_true(tw_frame_is(&f, "hello"));
    assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err), 0);
    assert_int_equal(h->v, 1);
    assert_int_equal(h->pipeline, 1); /* absent: one call at a time */
    assert_int_equal(h->n, 2);
    assert_memory_equal(h->names[0], "resize", 6);
    assert_memory_equal(h->names[1], "tick", 4);
    assert_int_equal(h->flags[0], 0);
    assert_null(h->rt);
    /* result: "r": 307200, then a result with no "r". */
    n = s_hex("00 00 00 12 82 a2 65 76 a6 72 65 73 75 6c 74 a1 72 ce 00 04 b0 "
              "00",
              buf);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    size_t rlen;
    const unsigned char *r = tw_frame_get(&f, "r", &rlen);
    assert_int_equal(rlen, 5);
    assert_int_equal(r[0], 0xce);
    n = s_hex("00 00 00 0b 81 a2 65 76 a6 72 65 73 75 6c 74", buf);
    assert_int_equal(n - 4, 0x0b);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_null(tw_frame_get(&f, "r", &rlen));
    /* error: the task's text is msg, newline, tb. */
    n = s_hex("00 00 00 2d 83 a2 65 76 a5 65 72 72 6f 72 a3 6d 73 67 b4 56 61 "
              "6c 75 65 45 72 72 6f 72 3a 20 62 61 64 20 73 69 7a 65 a2 74 62 "
              "a6 6c 69 6e 65 20 33",
              buf);
    assert_int_equal(n - 4, 0x2d);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    char text[64];
    assert_int_equal(tw_proc_error_text(&f, text, sizeof text), 27);
    assert_string_equal(text, "ValueError: bad size\nline 3");
    assert_int_equal(tw_proc_error_text(&f, text, 10), 9);
    assert_string_equal(text, "ValueErro");
    /* req and next of 15.8. */
    n = s_hex("00 00 00 12 83 a2 65 76 a3 72 65 71 a1 64 a3 6f 6b 3f a2 69 64 "
              "01",
              buf);
    assert_int_equal(n - 4, 0x12);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_true(tw_frame_is(&f, "req"));
    n = s_hex("00 00 00 0c 82 a2 65 76 a4 6e 65 78 74 a1 64 08", buf);
    assert_int_equal(n - 4, 0x0c);
    assert_int_equal(tw_frame_parse(&f, buf + 4, n - 4, &why), 0);
    assert_true(tw_frame_is(&f, "next"));
    free(h);
}

static void
test_hello_parse(void **state)
{
    (void)state;
    unsigned char buf[512];
    tw_frame_t f;
    const char *why;
    tw_proc_hello_t *h = malloc(sizeof *h);
    char err[256];
    /* {"ev": "hello", "v": 1, "handlers": ["a", "b"], "flags": {"b":
     * ["n2s", "later"], "zz": ["n2s"]}, "rt": "perl"} */
    size_t n = s_hex("85 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 "
                     "6c 65 72 73 92 a1 61 a1 62 a5 66 6c 61 67 73 82 a1 62 "
                     "92 a3 6e 32 73 a5 6c 61 74 65 72 a2 7a 7a 91 a3 6e 32 "
                     "73 a2 72 74 a4 70 65 72 6c",
                     buf);
    assert_int_equal(tw_frame_parse(&f, buf, n, &why), 0);
    assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err), 0);
    assert_int_equal(h->n, 2);
    assert_int_equal(h->flags[0], 0);
    assert_int_equal(h->flags[1], TW_PP_F_N2S);
    assert_int_equal(h->rtlen, 4);
    /* Non-ASCII text is fine: ["größe"]. */
    n = s_hex("83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 "
              "73 91 a7 67 72 c3 b6 c3 9f 65",
              buf);
    assert_int_equal(tw_frame_parse(&f, buf, n, &why), 0);
    assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err), 0);
    assert_int_equal(h->lens[0], 7);

    struct {
        const char *hex, *err;
    } bad[] = {
        /* no v */
        {"82 a2 65 76 a5 68 65 6c 6c 6f a8 68 61 6e 64 6c 65 72 73 91 a1 61",
         "hello without a uint \"v\""},
        /* v: -1 */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 ff a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61",
         "hello without a uint \"v\""},
        /* handlers: [] */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "90",
         "hello \"handlers\" is not an array of 1 to 1024 names"},
        /* handlers: "a" */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "a1 61",
         "hello \"handlers\" is not an array of 1 to 1024 names"},
        /* handlers: [""] */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a0",
         "hello handler name 1 is not a str of 1 to 128 bytes of clean text"},
        /* handlers: ["a", 5] */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "92 a1 61 05",
         "hello handler name 2 is not a str of 1 to 128 bytes of clean text"},
        /* handlers: ["a\x1b[31m"]: a terminal escape */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a6 61 1b 5b 33 31 6d",
         "hello handler name 1 is not a str of 1 to 128 bytes of clean text"},
        /* handlers: ["a\u202e"]: a bidirectional override */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a4 61 e2 80 ae",
         "hello handler name 1 is not a str of 1 to 128 bytes of clean text"},
        /* handlers: ["a\xc2\x85"]: C1 */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a3 61 c2 85",
         "hello handler name 1 is not a str of 1 to 128 bytes of clean text"},
        /* handlers: ["a", "a"] */
        {"83 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "92 a1 61 a1 61",
         "hello names handler 'a' twice"},
        /* flags: [1] */
        {"84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61 a5 66 6c 61 67 73 91 01",
         "hello \"flags\" is not a map"},
        /* flags: {"a": "n2s"} */
        {"84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61 a5 66 6c 61 67 73 81 a1 61 a3 6e 32 73",
         "hello \"flags\" is not a map of arrays"},
        /* flags: {"a": [1]} */
        {"84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61 a5 66 6c 61 67 73 81 a1 61 91 01",
         "hello flags of 'a' are not str"},
        /* pipeline: 0 */
        {"84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61 a8 70 69 70 65 6c 69 6e 65 00",
         "hello \"pipeline\" is not a uint of 1 or more"},
        /* pipeline: "2" */
        {"84 a2 65 76 a5 68 65 6c 6c 6f a1 76 01 a8 68 61 6e 64 6c 65 72 73 "
         "91 a1 61 a8 70 69 70 65 6c 69 6e 65 a1 32",
         "hello \"pipeline\" is not a uint of 1 or more"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = s_hex(bad[i].hex, buf);
        assert_int_equal(tw_frame_parse(&f, buf, n, &why), 0);
        assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err),
                         TW_EPROTO);
        assert_string_equal(err, bad[i].err);
    }
    /* A name of 129 bytes. */
    unsigned char big[200] = {0x83, 0xa2, 'e', 'v',  0xa5, 'h',  'e', 'l', 'l',
                              'o',  0xa1, 'v', 0x01, 0xa8, 'h',  'a', 'n', 'd',
                              'l',  'e',  'r', 's',  0x91, 0xd9, 129};
    memset(big + 25, 'x', 129);
    assert_int_equal(tw_frame_parse(&f, big, 25 + 129, &why), 0);
    assert_int_equal(tw_proc_parse_hello(&f, h, err, sizeof err), TW_EPROTO);
    free(h);
}

/* The writer, through a pipe ------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    uv_pipe_t w;
    int fds[2];
} s_pipe_t;

static void
s_pipe_open(s_pipe_t *p)
{
    assert_int_equal(uv_loop_init(&p->loop), 0);
    assert_int_equal(pipe(p->fds), 0);
    uv_pipe_init(&p->loop, &p->w, 0);
    assert_int_equal(uv_pipe_open(&p->w, p->fds[1]), 0);
}

static size_t
s_pipe_read(s_pipe_t *p, unsigned char *buf, size_t cap)
{
    uv_run(&p->loop, UV_RUN_NOWAIT);
    ssize_t n = read(p->fds[0], buf, cap);
    assert_true(n >= 0);
    return (size_t)n;
}

static void
test_writer(void **state)
{
    (void)state;
    s_pipe_t p;
    s_pipe_open(&p);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_proc_enc_bare(&e, "cancel");
    assert_int_equal(tw_frame_send(&e, (uv_stream_t *)&p.w), 0);
    assert_int_equal(e.sb.size, 0);   /* the buffer went with the write */
    tw_proc_enc_bare(&e, "shutdown"); /* reusable */
    assert_int_equal(tw_frame_send(&e, (uv_stream_t *)&p.w), 0);
    unsigned char buf[96], want[96];
    size_t n = s_pipe_read(&p, buf, sizeof buf);
    size_t w = s_hex("00 00 00 0b 81 a2 65 76 a6 63 61 6e 63 65 6c "
                     "00 00 00 0d 81 a2 65 76 a8 73 68 75 74 64 6f 77 6e",
                     want);
    assert_int_equal(n, w);
    assert_memory_equal(buf, want, w);
    /* Several frames, one write. */
    tw_proc_enc_bare(&e, "cancel");
    tw_proc_enc_bare(&e, "shutdown");
    assert_int_equal(tw_frame_write(&e, (uv_stream_t *)&p.w), 0);
    assert_int_equal(e.sb.size, 0);
    n = s_pipe_read(&p, buf, sizeof buf);
    assert_int_equal(n, w);
    assert_memory_equal(buf, want, w);
    /* The channel's answers: an errno name the handler ABI returns, and a
     * TW_E* one, with and without "id". */
    static const unsigned char id = 0x01;
    tw_exec_chan_error((uv_stream_t *)&p.w, -ENOTCONN, &id, 1);
    tw_exec_chan_error((uv_stream_t *)&p.w, TW_ETIMEDOUT, NULL, 0);
    n = s_pipe_read(&p, buf, sizeof buf);
    w = s_hex("00 00 00 1b 83 a2 65 76 a5 65 72 72 6f 72 a3 65 72 72 a8 45 4e "
              "4f 54 43 4f 4e 4e a2 69 64 01 "
              "00 00 00 18 82 a2 65 76 a5 65 72 72 6f 72 a3 65 72 72 a9 45 54 "
              "49 4d 45 44 4f 55 54",
              want);
    assert_int_equal(n, w);
    assert_memory_equal(buf, want, w);
    /* A closing stream takes nothing. */
    uv_close((uv_handle_t *)&p.w, NULL);
    tw_proc_enc_bare(&e, "cancel");
    assert_int_equal(tw_frame_send(&e, (uv_stream_t *)&p.w), UV_EPIPE);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    close(p.fds[0]);
    assert_int_equal(uv_loop_close(&p.loop), 0);
    tw_enc_free(&e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_pieces),
        cmocka_unit_test(test_reader_limits),
        cmocka_unit_test(test_reader_large),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_spec_worker_frames),
        cmocka_unit_test(test_spec_child_frames),
        cmocka_unit_test(test_spec_pipeline_and_n2s),
        cmocka_unit_test(test_hello_parse),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, tw_suite_setup, NULL);
}
