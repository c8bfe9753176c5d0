/*  tests/fuzz/fuzz_broker_replops.c - libFuzzer driver for the bytes of a
 *  store write batch as a passive broker receives them from its peer
 *  (broker/state/replops.h, proto/PROTOCOL.md 17.5).
 *
 *  The input is a batch. tw_replops_check judges it whole; the walk with
 *  tw_replops_next must agree with it (as many operations, the same
 *  verdict) and every key and value it hands out is touched, so a pointer
 *  past the input shows up under AddressSanitizer. A batch judged well
 *  formed is encoded again operation by operation with tw_replops_add,
 *  which must give back the input octet for octet: the encoding has one
 *  form, so a passive never applies something other than what was sent.
 *
 *  Build: a separate build directory with CC=clang -DTW_BUILD_FUZZERS=ON.
 *  Run:   fuzz_broker_replops NEW_CORPUS_DIR tests/fuzz/corpus/broker_replops
 */
#include "broker/state/replops.h"
#include "common/error.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_NDB 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256] = "";
    size_t n = 0;
    int rc = tw_replops_check(data, size, S_NDB, &n, why, sizeof why);
    if (rc != 0 && (rc != TW_EPROTO || !why[0])) {
        abort();
    }
    size_t off = 0, walked = 0;
    tw_replop_t op;
    tw_replops_t again = {0};
    int w;
    while ((w = tw_replops_next(data, size, S_NDB, &off, &op, NULL, 0)) ==
           1) {
        walked++;
        s_touch(op.key, op.klen);
        if (op.vlen) {
            s_touch(op.val, op.vlen);
        }
        if (off > size) {
            abort();
        }
        tw_replops_add(&again, op.op, op.db, op.key, op.klen, op.val,
                       op.vlen);
    }
    if ((rc == 0) != (w == 0)) {
        abort(); /* the walk and the check disagree */
    }
    if (rc == 0) {
        if (walked != n || again.len != size ||
            (size && memcmp(again.buf, data, size) != 0)) {
            abort();
        }
    }
    tw_replops_reset(&again);
    return 0;
}
