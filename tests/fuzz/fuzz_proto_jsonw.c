/*  tests/fuzz/fuzz_proto_jsonw.c - libFuzzer driver for proto/jsonw.h.
 *
 *  The broker turns payloads clients chose (task arguments and results)
 *  into JSON for its HTTP API, so the converter reads untrusted bytes.
 *  The first input byte picks a limit (0: none, else 1..255 times 4
 *  bytes); the rest is converted as a payload and as a map's payload
 *  value. The driver enforces the writer's contract: the text never
 *  passes the limit, is always valid UTF-8 (a cut never splits a
 *  character), and is cut only when the unlimited text is longer, of
 *  which it is then a prefix.
 *
 *  Build: a separate build directory with CC=clang -DTW_BUILD_FUZZERS=ON.
 *  Run:   fuzz_proto_jsonw NEW_CORPUS_DIR tests/fuzz/corpus/proto_jsonw
 */
#include "common/utf8.h"
#include "proto/jsonw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_payload[] = {"args", "result", NULL};
static const char *const s_hex[] = {"boot", NULL};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t limit = (size_t)data[0] * 4;
    data++;
    size--;
    tw_jsonw_opts_t o = {s_payload, s_hex};
    tw_jsonw_t full, w;
    tw_jsonw_init(&full, 0);
    tw_jsonw_init(&w, limit);
    tw_jsonw_msgpack(&full, data, size, &o);
    tw_jsonw_msgpack(&w, data, size, &o);
    if (full.len && !tw_utf8_valid(full.p, full.len)) {
        abort();
    }
    if (limit && w.len > limit) {
        abort();
    }
    if (w.len && !tw_utf8_valid(w.p, w.len)) {
        abort();
    }
    if (w.cut != (limit && full.len > limit)) {
        abort();
    }
    if (w.len > full.len || (w.len && memcmp(w.p, full.p, w.len) != 0)) {
        abort();
    }
    tw_jsonw_free(&full);
    tw_jsonw_free(&w);
    return 0;
}
