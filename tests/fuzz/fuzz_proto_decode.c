/*  tests/fuzz/fuzz_proto_decode.c - libFuzzer driver for tw_msg_decode().
 *
 *  The input is one message laid end to end: the first 4 bytes are the
 *  header frame and the rest is the body frame (an input shorter than 4
 *  bytes is all header, which exercises the length check). A decoded
 *  message has every body field and every item field read through each
 *  accessor, and every byte of every string and payload touched, so a
 *  pointer that escapes its buffer shows up under AddressSanitizer. The
 *  driver also enforces the decoder's contract: a failure is one of the
 *  three protocol codes (or ENOMEM) and leaves nothing to release. The
 *  same input is decoded again with the text check (tw_msg_decode_clean):
 *  a malformed message fails the same way; a well-formed one decodes, or
 *  is refused with TW_EINVAL and left decoded, exactly when some string
 *  anywhere in its body (keys included) is not clean text, which is what
 *  the broker has always refused.
 *
 *  Build: a separate build directory with CC=clang -DTW_BUILD_FUZZERS=ON.
 *  Run:   fuzz_proto_decode NEW_CORPUS_DIR tests/fuzz/corpus/proto
 */
#include "common/error.h"
#include "common/utf8.h"
#include "proto/proto.h"

#include "tests/fuzz/touch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>


/* Walk any msgpack value (bounded depth: the decoder's tree is finite and
 * msgpack-c limits nesting, but be safe). */
static void
s_walk(const msgpack_object *o, int depth)
{
    if (!o || depth > 64) {
        return;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        s_touch(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        s_touch(o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        s_touch(o->via.ext.ptr, o->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            s_walk(&o->via.array.ptr[i], depth + 1);
        }
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            s_walk(&o->via.map.ptr[i].key, depth + 1);
            s_walk(&o->via.map.ptr[i].val, depth + 1);
        }
        break;
    default:
        s_sink += o->via.u64;
        break;
    }
}

/* 1 if every string anywhere in `o`, map keys included, is clean. */
static int
s_all_clean(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return tw_utf8_clean(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!s_all_clean(&o->via.array.ptr[i])) {
                return 0;
            }
        }
        return 1;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (!s_all_clean(&o->via.map.ptr[i].key) ||
                !s_all_clean(&o->via.map.ptr[i].val)) {
                return 0;
            }
        }
        return 1;
    default:
        return 1;
    }
}

/* The text check agrees with the plain decode's result `rc` on `m`. */
static void
s_check_clean(const uint8_t *data, size_t hlen, const uint8_t *body,
              size_t blen, int rc, const tw_msg_t *m)
{
    tw_msg_t c;
    int crc = tw_msg_decode_clean(&c, data, hlen, body, blen, TW_CMD_ALL);
    if (rc != 0) {
        if (crc != rc || c.cmd != TW_CMD_NONE) {
            abort();
        }
        return;
    }
    int want = s_all_clean(&m->up.data) ? 0 : TW_EINVAL;
    if (crc != want || c.cmd != m->cmd || c.nitems != m->nitems) {
        abort();
    }
    tw_msg_release(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t hlen = size < TW_PROTO_HDRLEN ? size : TW_PROTO_HDRLEN;
    const uint8_t *body = data + hlen;
    size_t blen = size - hlen;

    tw_msg_t m;
    int rc = tw_msg_decode(&m, data, hlen, body, blen);
    if (rc != 0) {
        if (rc != TW_EPROTO && rc != TW_EVERSION && rc != TW_ECOMMAND &&
            rc != TW_ENOMEM) {
            abort(); /* an error code the contract does not allow */
        }
        if (m.cmd != TW_CMD_NONE || m.items != NULL || m.nitems != 0) {
            abort(); /* a failed decode must leave nothing behind */
        }
        tw_msg_release(&m); /* harmless on a failed decode */
        s_check_clean(data, hlen, body, blen, rc, &m);
        return 0;
    }
    s_check_clean(data, hlen, body, blen, rc, &m);

    s_touch(tw_proto_cmd_name(m.cmd), strlen(tw_proto_cmd_name(m.cmd)));
    s_sink += (uint64_t)tw_proto_cmd_dirs(m.cmd);
    for (int f = 0; f < TW_F__COUNT; f++) {
        size_t len = 0;
        s_sink += tw_msg_uint(&m, (tw_field_t)f, 1);
        s_sink += (uint64_t)tw_msg_int(&m, (tw_field_t)f, -1);
        const char *s = tw_msg_str(&m, (tw_field_t)f, &len);
        if (s) {
            s_touch(s, len);
        }
        s_walk(m.f[f], 0);
    }
    if (m.nitems && !m.f[TW_F_ITEMS]) {
        abort(); /* items without the field they came from */
    }
    for (size_t i = 0; i < m.nitems; i++) {
        const tw_item_t *it = &m.items[i];
        for (int f = 0; f < TW_I__COUNT; f++) {
            size_t len = 0;
            s_sink += tw_item_uint(it, (tw_ifield_t)f, 1);
            s_sink += (uint64_t)tw_item_int(it, (tw_ifield_t)f, -1);
            const char *s = tw_item_str(it, (tw_ifield_t)f, &len);
            if (s) {
                s_touch(s, len);
            }
            const void *b = tw_item_bin(it, (tw_ifield_t)f, &len);
            if (b) {
                s_touch(b, len);
            }
            s_walk(it->f[f], 0);
        }
    }
    if (m.nitems) {
        int st = (int)tw_item_uint(&m.items[0], TW_I_ST, 0);
        s_sink += (uint64_t)tw_proto_state_name(st)[0];
    }
    tw_msg_release(&m);
    tw_msg_release(&m);
    return 0;
}
