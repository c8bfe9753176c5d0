/*  tests/fuzz/fuzz_broker_deps_args.c - libFuzzer driver for the
 *  arguments a task released with its parents' results gets
 *  (broker/state/deps.h, tw_deps_args).
 *
 *  The task's own arguments come from a client and are read by the
 *  broker only far enough to know whether they are an array (its head),
 *  so that is the part that must never read past its input. The input's
 *  first byte is the number of parent results (0-15, a top bit asks for
 *  one missing result); the next bytes give each result's length, then
 *  come the results and, last, the task's own arguments. The contract
 *  checked: the call returns 0, E2BIG (only when the bound is small) or
 *  EPROTO (only for a truncated array head); when every piece is one
 *  valid msgpack value, the output is exactly one msgpack array of the
 *  results and the arguments' elements, as many as they are.
 */
#include "broker/state/deps.h"
#include "common/alloc.h"
#include "common/error.h"
#include "proto/mpwalk.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1 if [p, p+n) is exactly one msgpack value (judged by the one
 * msgpack walker, proto/mpwalk.h, which allocates nothing, here with no
 * depth limit, unlike msgpack-c); its element count in *elems when it is
 * an array (else 1), 0 for nil. */
static int
s_one(const void *p, size_t n, uint64_t *elems)
{
    if (!tw_mp_one(p, n, TW_MP_DEPTH_ANY)) {
        return 0;
    }
    if (elems) {
        const unsigned char *b = p;
        size_t off = 0;
        uint64_t len, kids;
        if (tw_mp_head(b, n, &off, &len, &kids) != 0) {
            abort(); /* a whole value has a whole head */
        }
        *elems = tw_mp_is_array(b[0]) ? kids : b[0] == 0xc0 ? 0 : 1;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t n = data[0] & 0x0f;
    int hole = (data[0] & 0x80) != 0;
    size_t at = 1;
    if (size < at + n) {
        return 0;
    }
    const void *res[16];
    size_t lens[16];
    const uint8_t *lenb = data + at;
    at += n;
    int valid = 1;
    for (size_t i = 0; i < n; i++) {
        size_t l = lenb[i] % 32;
        if (at + l > size) {
            l = size - at;
        }
        res[i] = l ? data + at : NULL;
        lens[i] = l;
        if (l && !s_one(data + at, l, NULL)) {
            valid = 0;
        }
        at += l;
    }
    if (hole && n) {
        res[0] = NULL; /* a parent that did not succeed */
        lens[0] = 0;
    }
    const uint8_t *a = data + at;
    size_t alen = size - at;
    uint64_t own = 0;
    if (alen && !s_one(a, alen, &own)) {
        valid = 0;
    }
    size_t max = size % 3 == 0 ? 16 : (size_t)1 << 20;
    void *out = NULL;
    size_t outlen = 0;
    int rc = tw_deps_args(res, lens, n, alen ? a : NULL, alen, max, &out,
                          &outlen);
    if (rc == TW_E2BIG) {
        if (max != 16) {
            abort();
        }
        return 0;
    }
    if (rc == TW_EPROTO) {
        if (valid && alen) {
            abort(); /* a whole value is never a truncated head */
        }
        return 0;
    }
    if (rc != 0 || outlen > max) {
        abort();
    }
    s_touch(out, outlen);
    if (valid) {
        uint64_t elems = 0;
        if (!s_one(out, outlen, &elems) || elems != n + own) {
            abort();
        }
    }
    tw_free(out);
    return 0;
}
