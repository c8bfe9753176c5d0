/*  tests/fuzz/fuzz_worker_frame.c - libFuzzer driver for what a worker
 *  reads from the programs it runs: length-prefixed msgpack frames
 *  (worker/frame.h) and the frames of proc children (worker/proc_codec.h,
 *  proto/PROTOCOL.md 15).
 *
 *  The input is a byte stream as a child would write it. It is fed to a
 *  frame reader in pieces whose sizes come from the input's first byte,
 *  so frames split across reads are covered. Every complete body is
 *  parsed; a parsed frame has its usual keys looked up, and hello and
 *  error frames go through their readers, with every byte they point to
 *  touched, so a pointer that escapes the body shows up under
 *  AddressSanitizer. The contract checked: a parse failure gives a reason
 *  and a known code; names a hello accepts are clean text of 1 to 128
 *  bytes; an error text is NUL-terminated within its buffer.
 *
 *  Build: a separate build directory with CC=clang -DTW_BUILD_FUZZERS=ON.
 *  Run:   fuzz_worker_frame NEW_CORPUS_DIR tests/fuzz/corpus/worker_frame
 */
#include "common/error.h"
#include "common/utf8.h"
#include "proto/mpwalk.h"
#include "worker/frame.h"
#include "worker/proc_codec.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


static tw_proc_hello_t s_hello;

static int
s_body(void *arg, const char *body, size_t len)
{
    (void)arg;
    tw_frame_t f;
    const char *why = NULL;
    int rc = tw_frame_parse(&f, body, len, &why);
    if (rc != 0) {
        if (rc != TW_EPROTO || !why) {
            abort();
        }
        return 0;
    }
    s_touch(f.ev, f.evlen);
    static const char *const keys[] = {"d", "r", "id", "msg", "tb", "v"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t n;
        const void *v = tw_frame_get(&f, keys[i], &n);
        if (v) {
            if (!tw_mp_one(v, n, TW_MP_DEPTH_ANY)) {
                abort(); /* a value is exactly one msgpack value */
            }
            s_touch(v, n);
        }
        uint64_t u;
        tw_frame_uint(&f, keys[i], &u);
    }
    if (tw_frame_is(&f, "hello")) {
        char err[256];
        if (tw_proc_parse_hello(&f, &s_hello, err, sizeof err) == 0) {
            for (size_t i = 0; i < s_hello.n; i++) {
                if (s_hello.lens[i] == 0 || s_hello.lens[i] > 128 ||
                    !tw_utf8_clean(s_hello.names[i], s_hello.lens[i])) {
                    abort();
                }
                s_touch(s_hello.names[i], s_hello.lens[i]);
            }
            if (s_hello.rt) {
                s_touch(s_hello.rt, s_hello.rtlen);
            }
        } else if (!memchr(err, '\0', sizeof err)) {
            abort();
        }
    } else if (tw_frame_is(&f, "error")) {
        char text[300];
        size_t n = tw_proc_error_text(&f, text, sizeof text);
        if (n >= sizeof text || text[n] != '\0') {
            abort();
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t step = (size_t)data[0] * 7 + 1;
    data++;
    size--;
    tw_frame_reader_t r;
    tw_frame_reader_init(&r, 1u << 20);
    size_t at = 0;
    while (at < size) {
        uv_buf_t b = tw_frame_reader_room(&r);
        size_t k = size - at < step ? size - at : step;
        if (k > b.len) {
            k = b.len;
        }
        memcpy(b.base, data + at, k);
        at += k;
        int rc = tw_frame_reader_feed(&r, k, s_body, NULL);
        if (rc != 0 && rc != TW_E2BIG) {
            abort();
        }
        if (rc != 0) {
            char why[160];
            tw_frame_bad_length(r.bad, why, sizeof why);
            break;
        }
    }
    tw_frame_reader_free(&r);
    return 0;
}
