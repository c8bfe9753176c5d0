/*  tests/fuzz/fuzz_mpwalk.c - libFuzzer driver for the msgpack walker,
 *  proto/mpwalk.h, checked against msgpack-c.
 *
 *  The input is any bytes. Every reader of the walker runs over them (so a
 *  read past the input shows up under AddressSanitizer), and the walker's
 *  answers must agree with each other and with msgpack-c's decoder:
 *
 *    - a walk within a depth limit is the unlimited walk or nothing, and a
 *      larger limit never refuses what a smaller one accepts;
 *    - when the unlimited walk finds a value (so every count in it is
 *      bounded by the input and decoding it allocates little), msgpack-c
 *      decodes exactly that many bytes if and only if the value is within
 *      32 levels;
 *    - for a value msgpack-c decoded: the header's counts, truthiness,
 *      text, names, unsigned integers and every str key's lookup in place
 *      match the decoded tree (a looked-up value decodes to the tree's
 *      value for that key, the first of repeated keys), and tw_mp_get
 *      finds the same value in the tree.
 *
 *  Build: a separate build directory with CC=clang -DTW_BUILD_FUZZERS=ON.
 *  Run:   fuzz_mpwalk NEW_CORPUS_DIR tests/fuzz/corpus/mpwalk
 */
#include "common/utf8.h"
#include "proto/mpwalk.h"

#include "tests/fuzz/touch.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Python's truth of a decoded value. */
static int
s_truth(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 != 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return o->via.f64 != 0.0;
    case MSGPACK_OBJECT_STR:
        return o->via.str.size != 0;
    case MSGPACK_OBJECT_BIN:
        return o->via.bin.size != 0;
    case MSGPACK_OBJECT_ARRAY:
        return o->via.array.size != 0;
    case MSGPACK_OBJECT_MAP:
        return o->via.map.size != 0;
    default: /* negative integers, ext */
        return 1;
    }
}

/* `o` packed again by msgpack-c into `sb` (initialised here). Objects
 * compare by these bytes: msgpack_object_equal says a NaN differs from
 * itself. */
static void
s_repack(msgpack_sbuffer *sb, const msgpack_object *o)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
}

/* 1 if msgpack-c decodes p[0..n) to an object equal to `want`. */
static int
s_decodes_to(const unsigned char *p, size_t n, const msgpack_object *want)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, (const char *)p, n, &off) ==
                 MSGPACK_UNPACK_SUCCESS &&
             off == n;
    if (ok) {
        msgpack_sbuffer a, b;
        s_repack(&a, &up.data);
        s_repack(&b, want);
        ok = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
        msgpack_sbuffer_destroy(&a);
        msgpack_sbuffer_destroy(&b);
    }
    msgpack_unpacked_destroy(&up);
    return ok;
}

/* Check the readers on the value p[0..n) that msgpack-c decoded to `o`. */
static void
s_agree(const unsigned char *p, size_t n, const msgpack_object *o)
{
    size_t off = 0;
    uint64_t len, kids;
    if (tw_mp_head(p, n, &off, &len, &kids) != 0) {
        abort();
    }
    if ((o->type == MSGPACK_OBJECT_MAP && kids != 2ULL * o->via.map.size) ||
        (o->type == MSGPACK_OBJECT_ARRAY && kids != o->via.array.size) ||
        (o->type == MSGPACK_OBJECT_STR && len != o->via.str.size) ||
        (o->type == MSGPACK_OBJECT_BIN && len != o->via.bin.size)) {
        abort();
    }
    if (tw_mp_truthy(p, n) != s_truth(o)) {
        abort();
    }
    const char *s;
    size_t sl;
    int text = tw_mp_text(p, n, 1, &s, &sl);
    if (text != (o->type == MSGPACK_OBJECT_STR ||
                 o->type == MSGPACK_OBJECT_BIN)) {
        abort();
    }
    if (text) {
        s_touch(s, sl);
        const char *want = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr
                                                         : o->via.bin.ptr;
        size_t wl = o->type == MSGPACK_OBJECT_STR ? o->via.str.size
                                                  : o->via.bin.size;
        /* msgpack-c gives an empty string a NULL pointer. */
        if (sl != wl || (sl && memcmp(s, want, sl) != 0)) {
            abort();
        }
    }
    int name = tw_mp_name(p, n, 128, &s, &sl);
    if (name != (o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 &&
                 o->via.str.size <= 128 &&
                 tw_utf8_clean(o->via.str.ptr, o->via.str.size))) {
        abort();
    }
    uint64_t v;
    if (tw_mp_uint(p, n, &v) &&
        (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 != v)) {
        abort();
    }
    if (o->type != MSGPACK_OBJECT_MAP) {
        return;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            continue;
        }
        /* The first pair with this key is the one a lookup finds. */
        const msgpack_object *want = NULL;
        for (uint32_t j = 0; j <= i && !want; j++) {
            const msgpack_object *kj = &o->via.map.ptr[j].key;
            if (kj->type == MSGPACK_OBJECT_STR &&
                kj->via.str.size == k->via.str.size &&
                (!k->via.str.size ||
                 memcmp(kj->via.str.ptr, k->via.str.ptr, k->via.str.size) ==
                     0)) {
                want = &o->via.map.ptr[j].val;
            }
        }
        const unsigned char *val;
        size_t vlen;
        if (!tw_mp_map_get(p, n, k->via.str.ptr, k->via.str.size, &val,
                           &vlen) ||
            !s_decodes_to(val, vlen, want)) {
            abort();
        }
        if (k->via.str.size > 0 && k->via.str.size < 64 &&
            !memchr(k->via.str.ptr, '\0', k->via.str.size)) {
            char key[64];
            memcpy(key, k->via.str.ptr, k->via.str.size);
            key[k->via.str.size] = '\0';
            if (tw_mp_get(o, key) != want) {
                abort();
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t any = tw_mp_skip(data, size);
    int one = any == size && size > 0;
    if (any > size || tw_mp_one(data, size, TW_MP_DEPTH_ANY) != one) {
        abort();
    }
    size_t prev = 0;
    static const unsigned depths[] = {1, 2, 8, 31, TW_MP_DEPTH_DECODE};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        size_t k = tw_mp_walk(data, size, depths[i]);
        if ((k != 0 && k != any) || (prev != 0 && k != prev)) {
            abort();
        }
        prev = k;
    }
    size_t dec = prev; /* within TW_MP_DEPTH_DECODE */

    /* Readers on anything: they must stay inside the input. */
    const unsigned char *v;
    size_t vlen;
    static const char *const keys[] = {"stop", "exception", "ev", "chan", ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (tw_mp_map_get(data, size, keys[i], strlen(keys[i]), &v,
                          &vlen)) {
            if (vlen == 0 || v < data || v + vlen > data + size) {
                abort();
            }
            s_touch(v, vlen);
            s_sink += (uint64_t)tw_mp_truthy(v, vlen);
        }
    }
    s_sink += (uint64_t)tw_mp_truthy(data, size);
    const char *s;
    size_t sl;
    if (tw_mp_text(data, size, 1, &s, &sl)) {
        s_touch(s, sl);
    }
    uint64_t u;
    s_sink += (uint64_t)tw_mp_uint(data, size, &u);

    if (any == 0) {
        return 0;
    }
    /* Every count in the value is bounded by the input, so msgpack-c
     * allocates little for it. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, (const char *)data, any, &off) ==
             MSGPACK_UNPACK_SUCCESS;
    if (ok != (dec != 0) || (ok && off != any)) {
        abort();
    }
    if (ok) {
        s_agree(data, any, &up.data);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}
