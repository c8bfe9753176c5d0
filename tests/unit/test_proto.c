/*  tests/unit/test_proto.c - the wire codec, driven by its own X-macros.
 *
 *  The command, field and item-field lists are expanded here from
 *  TW_PROTO_COMMANDS, TW_PROTO_FIELDS and TW_PROTO_ITEM_FIELDS, so a command
 *  or field added to proto.h is tested without touching this file. For
 *  every command: a body with its required fields (and items with their
 *  required fields) and a body with every field both round-trip through
 *  tw_enc_frames() and tw_msg_decode(); dropping any one required field or
 *  item field, cutting the body anywhere, or adding a byte fails with
 *  TW_EPROTO. For every field type: values of the wrong type, strings and
 *  arrays just over their limit fail, values at the limit pass. Then the
 *  header checks, non-map bodies, duplicate and non-string keys, unknown
 *  keys (ignored), hostile container sizes and the accessors. Last the
 *  text check (tw_msg_decode_clean): each field's text rule in the table,
 *  an unclean string in every clean field of every command, in keys and
 *  under unknown keys, the set of commands it applies to, and what wins
 *  when a message is both unclean and malformed. Last the operations
 *  (proto/ops.h): every row found by its name and only by it, a request
 *  for every row decoded to that row, and PROTOCOL.md 4.9 listing exactly
 *  the rows of the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "proto/ops.h"
#include "proto/proto.h"
#include "tests/unit/support/files.h"
#include "tests/unit/support/proto_msgs.h"

/* ------------------------------------------------ tables from proto.h --- */

typedef struct {
    int id;
    const char *name;
    int dirs;
    uint64_t req;
    uint64_t ireq;
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
#define S_CMD(id, name, dirs, req, ireq) {id, #name, dirs, req, ireq},
    TW_PROTO_COMMANDS(S_CMD)
#undef S_CMD
};
#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

typedef struct {
    const char *key;
    tw_type_t type;
    size_t max;
    int text;
} s_fdef_t;

static const s_fdef_t s_fields[TW_F__COUNT] = {
#define S_FIELD(e, key, type, max, text) {key, type, max, text},
    TW_PROTO_FIELDS(S_FIELD)
#undef S_FIELD
};

static const s_fdef_t s_ifields[TW_I__COUNT] = {
#define S_IFIELD(e, key, type, max, text) {key, type, max, text},
    TW_PROTO_ITEM_FIELDS(S_IFIELD)
#undef S_IFIELD
};

#define S_ALL_FIELDS ((1ULL << TW_F__COUNT) - 1)
#define S_ALL_IFIELDS ((1ULL << TW_I__COUNT) - 1)
#define S_NITEMS 3

/* ------------------------------------------------------------ helpers --- */

static size_t
s_popcount(uint64_t x)
{
    size_t n = 0;
    for (; x; x &= x - 1) {
        n++;
    }
    return n;
}

/* A finished body: bytes plus length, owned. */
typedef struct {
    char *data;
    size_t size;
} s_body_t;

static s_body_t
s_take(tw_enc_t *e)
{
    s_body_t b = {e->sb.data, e->sb.size};
    /* Detach the buffer from the encoder (as tw_enc_frames does). */
    b.data = msgpack_sbuffer_release(&e->sb);
    return b;
}

static void
s_body_free(s_body_t *b)
{
    free(b->data);
    b->data = NULL;
}

static int
s_decode(tw_msg_t *m, int cmd, const void *body, size_t blen)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make((tw_cmd_t)cmd, hdr);
    return tw_msg_decode(m, hdr, sizeof hdr, body, blen);
}

/* Decode and expect `want`; on success release. */
static void
s_expect(int cmd, const s_body_t *b, int want)
{
    tw_msg_t m;
    int rc = s_decode(&m, cmd, b->data, b->size);
    if (rc != want) {
        fail_msg("command %s: decode gave %s, want %s",
                 tw_proto_cmd_name(cmd), tw_err_name(rc), tw_err_name(want));
    }
    if (rc == 0) {
        tw_msg_release(&m);
    }
}

/* A correct value of `type` derived from `seed`; strings are short. */
static void
s_enc_good(tw_enc_t *e, tw_type_t type, uint64_t seed)
{
    char buf[32];
    switch (type) {
    case TW_T_UINT:
        tw_enc_uint(e, seed);
        break;
    case TW_T_INT:
    case TW_T_INTN:
        tw_enc_int(e, -(int64_t)seed);
        break;
    case TW_T_STR:
        snprintf(buf, sizeof buf, "s%llu", (unsigned long long)seed);
        tw_enc_cstr(e, buf);
        break;
    case TW_T_BIN: {
        unsigned char p[3] = {0xcd, (unsigned char)(seed >> 8),
                              (unsigned char)seed};
        tw_enc_bin(e, p, sizeof p);
        break;
    }
    case TW_T_ANY:
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "k");
        tw_enc_uint(e, seed);
        break;
    case TW_T_STRS:
        tw_enc_array(e, 2);
        tw_enc_cstr(e, "h1");
        snprintf(buf, sizeof buf, "h%llu", (unsigned long long)seed);
        tw_enc_cstr(e, buf);
        break;
    case TW_T_TAGS:
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "zone");
        snprintf(buf, sizeof buf, "z%llu", (unsigned long long)seed);
        tw_enc_cstr(e, buf);
        break;
    case TW_T_UINTS:
        tw_enc_array(e, 3);
        tw_enc_uint(e, seed);
        tw_enc_uint(e, seed + 1);
        tw_enc_uint(e, seed + 2);
        break;
    case TW_T_ITEMS:
        fail_msg("items are encoded by s_enc_items");
        break;
    }
}

/* Check a decoded value written by s_enc_good(type, seed). */
static void
s_check_good(const msgpack_object *o, tw_type_t type, uint64_t seed)
{
    char buf[32];
    assert_non_null(o);
    switch (type) {
    case TW_T_UINT:
        assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(o->via.u64, seed);
        break;
    case TW_T_INT:
    case TW_T_INTN:
        assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        assert_int_equal(o->via.i64, -(int64_t)seed);
        break;
    case TW_T_STR:
        snprintf(buf, sizeof buf, "s%llu", (unsigned long long)seed);
        assert_int_equal(o->type, MSGPACK_OBJECT_STR);
        assert_int_equal(o->via.str.size, strlen(buf));
        assert_memory_equal(o->via.str.ptr, buf, strlen(buf));
        break;
    case TW_T_BIN:
        assert_int_equal(o->type, MSGPACK_OBJECT_BIN);
        assert_int_equal(o->via.bin.size, 3);
        assert_int_equal((unsigned char)o->via.bin.ptr[2],
                         (unsigned char)seed);
        break;
    case TW_T_ANY:
        assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(o->via.map.size, 1);
        assert_int_equal(o->via.map.ptr[0].val.via.u64, seed);
        break;
    case TW_T_STRS:
        assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(o->via.array.size, 2);
        break;
    case TW_T_TAGS:
        assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(o->via.map.size, 1);
        break;
    case TW_T_UINTS:
        assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(o->via.array.size, 3);
        assert_int_equal(o->via.array.ptr[2].via.u64, seed + 2);
        break;
    case TW_T_ITEMS:
        assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
        break;
    }
}

static uint64_t
s_fseed(int f)
{
    return 1000 + (uint64_t)f;
}

static uint64_t
s_iseed(size_t item, int f)
{
    return 100 * (item + 1) + (uint64_t)f;
}

/* One item map with the fields in `mask`, plus an unknown key if `junk`. */
static void
s_enc_item(tw_enc_t *e, size_t idx, uint64_t mask, int junk)
{
    tw_enc_map(e, s_popcount(mask) + (junk ? 1 : 0));
    for (int f = 0; f < TW_I__COUNT; f++) {
        if (mask & (1ULL << f)) {
            tw_enc_ikey(e, (tw_ifield_t)f);
            s_enc_good(e, s_ifields[f].type, s_iseed(idx, f));
        }
    }
    if (junk) {
        tw_enc_cstr(e, "x-future-item-field");
        tw_enc_array(e, 2);
        tw_enc_nil(e);
        tw_enc_bool(e, 1);
    }
}

/* A body description. */
typedef struct {
    uint64_t fields;  /* body fields to encode */
    uint64_t ifields; /* fields of each item */
    int short_item;   /* index of an item lacking `short_bit`, or -1 */
    uint64_t short_bit;
    int junk;         /* add unknown keys to body and items */
    const char *op;   /* the "op" and "what" string, or NULL: any */
} s_spec_t;

static s_body_t
s_enc_body(const s_spec_t *sp)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, s_popcount(sp->fields) + (sp->junk ? 2 : 0));
    if (sp->junk) {
        /* Unknown keys before and after the known ones. */
        tw_enc_cstr(&e, "x-future");
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "deep");
        tw_enc_array(&e, 1);
        tw_enc_int(&e, -7);
    }
    for (int f = 0; f < TW_F__COUNT; f++) {
        if (!(sp->fields & (1ULL << f))) {
            continue;
        }
        tw_enc_key(&e, (tw_field_t)f);
        if (s_fields[f].type == TW_T_ITEMS) {
            tw_enc_array(&e, S_NITEMS);
            for (size_t i = 0; i < S_NITEMS; i++) {
                uint64_t mask = sp->ifields;
                if ((int)i == sp->short_item) {
                    mask &= ~sp->short_bit;
                }
                s_enc_item(&e, i, mask, sp->junk);
            }
        } else if (sp->op && (f == TW_F_OP || f == TW_F_WHAT)) {
            tw_enc_cstr(&e, sp->op);
        } else {
            s_enc_good(&e, s_fields[f].type, s_fseed(f));
        }
    }
    if (sp->junk) {
        tw_enc_cstr(&e, "");
        tw_enc_bin(&e, "\0\1", 2);
    }
    return s_take(&e);
}

/* The body fields a command needs: its required ones, plus "items" when
 * its items have required fields. */
static uint64_t
s_needed(const s_cmd_t *c)
{
    return c->req | (c->ireq ? TW_FB(ITEMS) : 0);
}

/* Decode `b` as `c` and check every field `sp` wrote, and that no other
 * field appears. */
static void
s_check_decoded(const s_cmd_t *c, const s_spec_t *sp, const s_body_t *b)
{
    tw_msg_t m;
    int rc = s_decode(&m, c->id, b->data, b->size);
    if (rc != 0) {
        fail_msg("%s round trip: %s", c->name, tw_err_name(rc));
    }
    assert_int_equal(m.cmd, c->id);
    for (int f = 0; f < TW_F__COUNT; f++) {
        if (!(sp->fields & (1ULL << f))) {
            assert_null(m.f[f]);
            continue;
        }
        s_check_good(m.f[f], s_fields[f].type, s_fseed(f));
    }
    if (sp->fields & TW_FB(ITEMS)) {
        assert_int_equal(m.nitems, S_NITEMS);
        assert_non_null(m.items);
        for (size_t i = 0; i < S_NITEMS; i++) {
            for (int f = 0; f < TW_I__COUNT; f++) {
                if (sp->ifields & (1ULL << f)) {
                    s_check_good(m.items[i].f[f], s_ifields[f].type,
                                 s_iseed(i, f));
                } else {
                    assert_null(m.items[i].f[f]);
                }
            }
        }
    } else {
        assert_int_equal(m.nitems, 0);
    }
    tw_msg_release(&m);
    tw_msg_release(&m); /* idempotent */
    assert_int_equal(m.cmd, TW_CMD_NONE);
    /* Every string the helpers write is clean text. */
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make((tw_cmd_t)c->id, hdr);
    rc = tw_msg_decode_clean(&m, hdr, sizeof hdr, b->data, b->size,
                             TW_CMD_ALL);
    if (rc != 0) {
        fail_msg("%s round trip, clean: %s", c->name, tw_err_name(rc));
    }
    tw_msg_release(&m);
}

/* ---------------------------------------------------------- commands --- */

static void
test_command_table(void **state)
{
    (void)state;
    /* Ids increase from 1 (a gap is an id reserved for work on another
     * branch), the enum ends right after the last, and each name and
     * direction set is what the X-macro says. */
    assert_true(S_NCMDS <= TW_CMD__MAX - 1);
    assert_int_equal(s_cmds[S_NCMDS - 1].id, TW_CMD__MAX - 1);
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        assert_true(c->id >= (int)i + 1);
        assert_true(i == 0 || c->id > s_cmds[i - 1].id);
        assert_string_equal(tw_proto_cmd_name(c->id), c->name);
        assert_int_equal(tw_proto_cmd_dirs(c->id), c->dirs);
        assert_true(c->dirs != 0);
        /* ireq only makes sense for a command that can carry items. */
        unsigned char hdr[TW_PROTO_HDRLEN];
        tw_proto_header_make((tw_cmd_t)c->id, hdr);
        tw_cmd_t got = TW_CMD_NONE;
        assert_int_equal(tw_proto_header(hdr, sizeof hdr, &got), 0);
        assert_int_equal(got, c->id);
    }
    assert_string_equal(tw_proto_cmd_name(0), "?");
    assert_string_equal(tw_proto_cmd_name(TW_CMD__MAX), "?");
    assert_string_equal(tw_proto_cmd_name(-1), "?");
    assert_string_equal(tw_proto_cmd_name(1000), "?");
    assert_int_equal(tw_proto_cmd_dirs(0), 0);
    assert_int_equal(tw_proto_cmd_dirs(TW_CMD__MAX), 0);
    assert_int_equal(tw_proto_cmd_dirs(-5), 0);
    /* Field keys are unique within each table. */
    for (int a = 0; a < TW_F__COUNT; a++) {
        for (int b = a + 1; b < TW_F__COUNT; b++) {
            assert_string_not_equal(s_fields[a].key, s_fields[b].key);
        }
    }
    for (int a = 0; a < TW_I__COUNT; a++) {
        for (int b = a + 1; b < TW_I__COUNT; b++) {
            assert_string_not_equal(s_ifields[a].key, s_ifields[b].key);
        }
    }
}

static void
test_round_trip_required(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        s_spec_t sp = {s_needed(c), c->ireq, -1, 0, 0, NULL};
        s_body_t b = s_enc_body(&sp);
        s_check_decoded(c, &sp, &b);
        s_body_free(&b);
    }
}

static void
test_round_trip_everything(void **state)
{
    (void)state;
    /* Every field, every item field, and unknown keys everywhere. */
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        s_spec_t sp = {S_ALL_FIELDS, S_ALL_IFIELDS, -1, 0, 1, NULL};
        s_body_t b = s_enc_body(&sp);
        s_check_decoded(c, &sp, &b);
        s_body_free(&b);
    }
}

static void
test_round_trip_frames(void **state)
{
    (void)state;
    /* The same through tw_enc_frames, reusing one encoder. */
    tw_enc_t e;
    tw_enc_init(&e);
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        s_spec_t sp = {s_needed(c), c->ireq, -1, 0, 0, NULL};
        s_body_t ref = s_enc_body(&sp);
        /* Re-encode into `e` by copying the bytes: tw_enc_frames must
         * hand over exactly what was written. */
        msgpack_sbuffer_write(&e.sb, ref.data, ref.size);
        assert_int_equal(tw_enc_size(&e), ref.size);
        zmq_msg_t f[2];
        assert_int_equal(tw_enc_frames(&e, (tw_cmd_t)c->id, f), 0);
        assert_int_equal(tw_enc_size(&e), 0);
        assert_int_equal(zmq_msg_size(&f[0]), TW_PROTO_HDRLEN);
        assert_int_equal(zmq_msg_size(&f[1]), ref.size);
        assert_memory_equal(zmq_msg_data(&f[1]), ref.data, ref.size);
        tw_msg_t m;
        assert_int_equal(tw_msg_decode(&m, zmq_msg_data(&f[0]),
                                       zmq_msg_size(&f[0]),
                                       zmq_msg_data(&f[1]),
                                       zmq_msg_size(&f[1])),
                         0);
        assert_int_equal(m.cmd, c->id);
        tw_msg_release(&m);
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        s_body_free(&ref);
    }
    tw_enc_free(&e);
}

static void
test_empty_body_frames(void **state)
{
    (void)state;
    /* Nothing encoded: the body is still one (empty) map. */
    tw_enc_t e;
    tw_enc_init(&e);
    zmq_msg_t f[2];
    assert_int_equal(tw_enc_frames(&e, TW_CMD_HEARTBEAT, f), 0);
    assert_int_equal(zmq_msg_size(&f[1]), 1);
    assert_int_equal(((unsigned char *)zmq_msg_data(&f[1]))[0], 0x80);
    tw_msg_t m;
    assert_int_equal(tw_msg_decode(&m, zmq_msg_data(&f[0]), 4,
                                   zmq_msg_data(&f[1]), 1),
                     0);
    assert_int_equal(m.cmd, TW_CMD_HEARTBEAT);
    assert_int_equal(m.nitems, 0);
    tw_msg_release(&m);
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    tw_enc_free(&e);
}

static void
test_missing_required_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        uint64_t need = s_needed(c);
        for (int f = 0; f < TW_F__COUNT; f++) {
            uint64_t bit = 1ULL << f;
            if (!(need & bit)) {
                continue;
            }
            s_spec_t sp = {need & ~bit, c->ireq, -1, 0, 0, NULL};
            s_body_t b = s_enc_body(&sp);
            /* A command whose items have required fields but which does
             * not itself require "items" (RESULT, whose query form has
             * none) may leave it out. */
            s_expect(c->id, &b, (c->req & bit) ? TW_EPROTO : 0);
            s_body_free(&b);
        }
    }
}

static void
test_missing_required_item_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        for (int f = 0; f < TW_I__COUNT; f++) {
            uint64_t bit = 1ULL << f;
            if (!(c->ireq & bit)) {
                continue;
            }
            /* Only the middle item lacks the field. */
            s_spec_t sp = {s_needed(c), c->ireq, 1, bit, 0, NULL};
            s_body_t b = s_enc_body(&sp);
            s_expect(c->id, &b, TW_EPROTO);
            s_body_free(&b);
        }
        /* Optional item fields may be missing: items 0 and 2 have every
         * field, item 1 only the required ones. */
        s_spec_t sp = {s_needed(c), S_ALL_IFIELDS, 1, ~c->ireq, 0, NULL};
        s_body_t b = s_enc_body(&sp);
        s_expect(c->id, &b, 0);
        s_body_free(&b);
    }
}

static void
test_truncated_and_trailing(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        s_spec_t sp = {S_ALL_FIELDS, S_ALL_IFIELDS, -1, 0, 1, NULL};
        s_body_t b = s_enc_body(&sp);
        /* Every proper prefix is malformed, including the empty body.
         * Each is copied to its own allocation so a read past the end
         * is caught by the sanitizers. */
        for (size_t n = 0; n < b.size; n++) {
            char *cut = malloc(n ? n : 1);
            memcpy(cut, b.data, n);
            tw_msg_t m;
            int rc = s_decode(&m, c->id, cut, n);
            if (rc != TW_EPROTO) {
                fail_msg("%s cut at %zu of %zu: %s", c->name, n, b.size,
                         tw_err_name(rc));
            }
            free(cut);
        }
        /* One byte too many, and a second whole map. */
        const unsigned char extra[] = {0x00, 0xc0, 0x80, 0xff};
        for (size_t k = 0; k < sizeof extra; k++) {
            char *more = malloc(b.size + 1);
            memcpy(more, b.data, b.size);
            more[b.size] = (char)extra[k];
            tw_msg_t m;
            assert_int_equal(s_decode(&m, c->id, more, b.size + 1),
                             TW_EPROTO);
            free(more);
        }
        s_body_free(&b);
    }
}

/* ------------------------------------------------------------ header --- */

static void
test_header(void **state)
{
    (void)state;
    const unsigned char body[] = {0x80}; /* {} */
    tw_msg_t m;
    tw_cmd_t cmd;
    unsigned char h[8] = {'T', 'W', 1, TW_CMD_HEARTBEAT, 0, 0, 0, 0};

    assert_int_equal(tw_msg_decode(&m, h, 4, body, 1), 0);
    tw_msg_release(&m);
    /* Wrong length. */
    for (size_t len = 0; len <= 8; len++) {
        if (len == 4) {
            continue;
        }
        assert_int_equal(tw_proto_header(h, len, &cmd), TW_EPROTO);
        assert_int_equal(tw_msg_decode(&m, h, len, body, 1), TW_EPROTO);
    }
    /* Wrong signature. */
    const unsigned char bad_sig[][4] = {{'X', 'W', 1, 7}, {'T', 'X', 1, 7},
                                        {'t', 'w', 1, 7}, {'W', 'T', 1, 7},
                                        {0, 0, 1, 7}};
    for (size_t i = 0; i < sizeof bad_sig / sizeof bad_sig[0]; i++) {
        assert_int_equal(tw_msg_decode(&m, bad_sig[i], 4, body, 1),
                         TW_EPROTO);
    }
    /* Wrong version. */
    const unsigned char versions[] = {0, 2, 3, 127, 255};
    for (size_t i = 0; i < sizeof versions; i++) {
        unsigned char v[4] = {'T', 'W', versions[i], TW_CMD_HEARTBEAT};
        assert_int_equal(tw_proto_header(v, 4, &cmd), TW_EVERSION);
        assert_int_equal(tw_msg_decode(&m, v, 4, body, 1), TW_EVERSION);
    }
    /* Unknown commands. */
    const int cmds[] = {0, TW_CMD__MAX, TW_CMD__MAX + 1, 100, 200, 255};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        unsigned char v[4] = {'T', 'W', 1, (unsigned char)cmds[i]};
        assert_int_equal(tw_proto_header(v, 4, &cmd), TW_ECOMMAND);
        assert_int_equal(tw_msg_decode(&m, v, 4, body, 1), TW_ECOMMAND);
    }
    /* The header is checked before the body: a bad header with a bad
     * body reports the header's problem. */
    const unsigned char junk[] = {0xc1};
    unsigned char v2[4] = {'T', 'W', 2, 200};
    assert_int_equal(tw_msg_decode(&m, v2, 4, junk, 1), TW_EVERSION);
    unsigned char c200[4] = {'T', 'W', 1, 200};
    assert_int_equal(tw_msg_decode(&m, c200, 4, junk, 1), TW_ECOMMAND);
    /* A failed decode needs no release, but a release is harmless. */
    tw_msg_release(&m);
}

/* -------------------------------------------------------------- body --- */

/* Build a body for command `cmd` from a callback writing raw msgpack. */
typedef void (*s_writer_t)(tw_enc_t *e, void *arg);

static int
s_try(int cmd, s_writer_t w, void *arg)
{
    tw_enc_t e;
    tw_enc_init(&e);
    w(&e, arg);
    s_body_t b = s_take(&e);
    tw_msg_t m;
    int rc = s_decode(&m, cmd, b.data, b.size);
    if (rc == 0) {
        tw_msg_release(&m);
    }
    s_body_free(&b);
    return rc;
}

static void
s_w_array(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_array(e, 1);
    tw_enc_uint(e, 1);
}

static void
s_w_int(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_uint(e, 5);
}

static void
s_w_str(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_cstr(e, "credit");
}

static void
s_w_nil(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_nil(e);
}

static void
s_w_bin(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_bin(e, "\x81\xa1x\x01", 4);
}

static void
test_body_not_a_map(void **state)
{
    (void)state;
    s_writer_t ws[] = {s_w_array, s_w_int, s_w_str, s_w_nil, s_w_bin};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        for (size_t c = 0; c < S_NCMDS; c++) {
            assert_int_equal(s_try(s_cmds[c].id, ws[i], NULL), TW_EPROTO);
        }
    }
    /* Raw garbage: the never-used byte, a lone map header. */
    const unsigned char bad1[] = {0xc1};
    const unsigned char bad2[] = {0x81};
    tw_msg_t m;
    assert_int_equal(s_decode(&m, TW_CMD_HEARTBEAT, bad1, 1), TW_EPROTO);
    assert_int_equal(s_decode(&m, TW_CMD_HEARTBEAT, bad2, 1), TW_EPROTO);
    assert_int_equal(s_decode(&m, TW_CMD_HEARTBEAT, "", 0), TW_EPROTO);
}

static void
s_w_dup(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 2);
}

static void
s_w_dup_item(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
}

static void
s_w_unknown_dup(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_map(e, 3);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 9);
    tw_enc_cstr(e, "zz");
    tw_enc_uint(e, 1);
    tw_enc_cstr(e, "zz");
    tw_enc_cstr(e, "again");
}

static void
test_duplicate_keys(void **state)
{
    (void)state;
    assert_int_equal(s_try(TW_CMD_READY, s_w_dup, NULL), TW_EPROTO);
    assert_int_equal(s_try(TW_CMD_ACK, s_w_dup_item, NULL), TW_EPROTO);
    /* Unknown keys are not looked at, repeated or not. */
    assert_int_equal(s_try(TW_CMD_READY, s_w_unknown_dup, NULL), 0);
}

static void
s_w_int_key(tw_enc_t *e, void *arg)
{
    int where = *(int *)arg;
    tw_enc_map(e, where == 2 ? 1 : 2);
    if (where == 0) {
        tw_enc_uint(e, 1); /* integer key in the body */
        tw_enc_uint(e, 2);
    } else if (where == 1) {
        tw_enc_bin(e, "credit", 6); /* a bin key spelling a field */
        tw_enc_uint(e, 2);
    }
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, where == 2 ? 2 : 1);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
    if (where == 2) {
        tw_enc_nil(e); /* nil key in an item */
        tw_enc_uint(e, 3);
    }
}

static void
test_non_string_keys(void **state)
{
    (void)state;
    for (int where = 0; where < 3; where++) {
        assert_int_equal(s_try(TW_CMD_ACK, s_w_int_key, &where), TW_EPROTO);
    }
}

static void
s_w_item_not_map(tw_enc_t *e, void *arg)
{
    int kind = *(int *)arg;
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    s_enc_item(e, 0, TW_IB(SEQ), 0);
    switch (kind) {
    case 0:
        tw_enc_uint(e, 1);
        break;
    case 1:
        tw_enc_array(e, 1);
        tw_enc_ikey(e, TW_I_SEQ);
        break;
    case 2:
        tw_enc_nil(e);
        break;
    default:
        tw_enc_cstr(e, "seq");
        break;
    }
}

static void
test_item_not_a_map(void **state)
{
    (void)state;
    for (int kind = 0; kind < 4; kind++) {
        assert_int_equal(s_try(TW_CMD_ACK, s_w_item_not_map, &kind),
                         TW_EPROTO);
    }
}

static void
s_w_unknown_only(tw_enc_t *e, void *arg)
{
    (void)arg;
    tw_enc_map(e, 4);
    tw_enc_cstr(e, "credi"); /* near-misses of real keys */
    tw_enc_cstr(e, "x");
    tw_enc_cstr(e, "creditx");
    tw_enc_nil(e);
    tw_enc_cstr(e, "CREDIT");
    tw_enc_int(e, -1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 77);
}

static void
test_unknown_keys_ignored(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    s_w_unknown_only(&e, NULL);
    s_body_t b = s_take(&e);
    tw_msg_t m;
    assert_int_equal(s_decode(&m, TW_CMD_READY, b.data, b.size), 0);
    assert_int_equal(tw_msg_uint(&m, TW_F_CREDIT, 0), 77);
    for (int f = 0; f < TW_F__COUNT; f++) {
        if (f != TW_F_CREDIT) {
            assert_null(m.f[f]);
        }
    }
    tw_msg_release(&m);
    s_body_free(&b);
    /* (Round-trip "everything" already adds unknown keys to items.) */
}

/* ------------------------------------------------------ wrong types --- */

/* Wrong values for each type; the variants end with -1. */
static int
s_enc_bad(tw_enc_t *e, tw_type_t type, size_t max, int variant)
{
    static char big[TW_PROTO_MAX_TEXT + 2];
    switch (type) {
    case TW_T_UINT:
        switch (variant) {
        case 0: tw_enc_int(e, -1); return 1;
        case 1: tw_enc_cstr(e, "1"); return 1;
        case 2: msgpack_pack_double(&e->pk, 1.0); return 1;
        case 3: tw_enc_nil(e); return 1;
        case 4: tw_enc_bool(e, 1); return 1;
        case 5: tw_enc_array(e, 1); tw_enc_uint(e, 1); return 1;
        }
        return 0;
    case TW_T_INT:
        switch (variant) {
        case 0: tw_enc_cstr(e, "-1"); return 1;
        case 1: msgpack_pack_float(&e->pk, -1.0f); return 1;
        case 2: tw_enc_nil(e); return 1;
        case 3: tw_enc_map(e, 0); return 1;
        }
        return 0;
    case TW_T_INTN: /* nil is a value here ("none", S96) */
        switch (variant) {
        case 0: tw_enc_cstr(e, "-1"); return 1;
        case 1: msgpack_pack_float(&e->pk, -1.0f); return 1;
        case 2: tw_enc_bool(e, 0); return 1;
        case 3: tw_enc_map(e, 0); return 1;
        }
        return 0;
    case TW_T_STR:
        switch (variant) {
        case 0: tw_enc_uint(e, 1); return 1;
        case 1: tw_enc_bin(e, "x", 1); return 1;
        case 2: tw_enc_nil(e); return 1;
        case 3:
            memset(big, 'a', sizeof big);
            tw_enc_str(e, big, max + 1); /* one byte over the limit */
            return 1;
        }
        return 0;
    case TW_T_BIN:
        switch (variant) {
        case 0: tw_enc_cstr(e, "payload"); return 1;
        case 1: tw_enc_uint(e, 1); return 1;
        case 2: tw_enc_nil(e); return 1;
        }
        return 0;
    case TW_T_ANY:
        return 0;
    case TW_T_STRS:
        switch (variant) {
        case 0: tw_enc_cstr(e, "echo"); return 1;
        case 1: tw_enc_array(e, 1); tw_enc_uint(e, 1); return 1;
        case 2: tw_enc_array(e, 1); tw_enc_cstr(e, ""); return 1;
        case 3:
            memset(big, 'a', sizeof big);
            tw_enc_array(e, 1);
            tw_enc_str(e, big, TW_PROTO_MAX_NAME + 1);
            return 1;
        case 4:
            tw_enc_array(e, TW_PROTO_MAX_HANDLERS + 1);
            for (int i = 0; i <= TW_PROTO_MAX_HANDLERS; i++) {
                tw_enc_cstr(e, "h");
            }
            return 1;
        case 5: tw_enc_map(e, 0); return 1;
        }
        return 0;
    case TW_T_TAGS:
        switch (variant) {
        case 0: tw_enc_array(e, 0); return 1;
        case 1: tw_enc_map(e, 1); tw_enc_cstr(e, "k"); tw_enc_uint(e, 1);
            return 1;
        case 2: tw_enc_map(e, 1); tw_enc_cstr(e, ""); tw_enc_cstr(e, "v");
            return 1;
        case 3: tw_enc_map(e, 1); tw_enc_uint(e, 1); tw_enc_cstr(e, "v");
            return 1;
        case 4:
            memset(big, 'a', sizeof big);
            tw_enc_map(e, 1);
            tw_enc_cstr(e, "k");
            tw_enc_str(e, big, TW_PROTO_MAX_NAME + 1);
            return 1;
        case 5:
            tw_enc_map(e, TW_PROTO_MAX_TAGS + 1);
            for (int i = 0; i <= TW_PROTO_MAX_TAGS; i++) {
                char k[16];
                snprintf(k, sizeof k, "k%d", i);
                tw_enc_cstr(e, k);
                tw_enc_cstr(e, "v");
            }
            return 1;
        case 6: tw_enc_cstr(e, "k=v"); return 1;
        }
        return 0;
    case TW_T_UINTS:
        switch (variant) {
        case 0: tw_enc_uint(e, 1); return 1;
        case 1: tw_enc_array(e, 1); tw_enc_int(e, -1); return 1;
        case 2: tw_enc_array(e, 1); tw_enc_cstr(e, "1"); return 1;
        case 3: tw_enc_array(e, 2); tw_enc_uint(e, 1); tw_enc_nil(e);
            return 1;
        case 4:
            tw_enc_array(e, TW_PROTO_MAX_ITEMS + 1);
            for (int i = 0; i <= TW_PROTO_MAX_ITEMS; i++) {
                tw_enc_uint(e, 1);
            }
            return 1;
        }
        return 0;
    case TW_T_ITEMS:
        switch (variant) {
        case 0: tw_enc_map(e, 0); return 1;
        case 1: tw_enc_uint(e, 1); return 1;
        case 2: tw_enc_nil(e); return 1;
        case 3:
            /* Too many items (each a valid ACK item). */
            tw_enc_array(e, TW_PROTO_MAX_ITEMS + 1);
            for (int i = 0; i <= TW_PROTO_MAX_ITEMS; i++) {
                tw_enc_map(e, 1);
                tw_enc_ikey(e, TW_I_SEQ);
                tw_enc_uint(e, (uint64_t)i);
            }
            return 1;
        }
        return 0;
    }
    return 0;
}

static void
test_wrong_field_type(void **state)
{
    (void)state;
    /* One bad field in an otherwise empty ACK body... unless the field is
     * "items", which ACK requires; ACK items need only "seq". */
    int tried = 0;
    for (int f = 0; f < TW_F__COUNT; f++) {
        for (int v = 0;; v++) {
            tw_enc_t e;
            tw_enc_init(&e);
            int has_items = f != TW_F_ITEMS;
            tw_enc_map(&e, has_items ? 2 : 1);
            tw_enc_key(&e, (tw_field_t)f);
            if (!s_enc_bad(&e, s_fields[f].type, s_fields[f].max, v)) {
                tw_enc_free(&e);
                break;
            }
            if (has_items) {
                tw_enc_key(&e, TW_F_ITEMS);
                tw_enc_array(&e, 1);
                s_enc_item(&e, 0, TW_IB(SEQ), 0);
            }
            s_body_t b = s_take(&e);
            tw_msg_t m;
            int rc = s_decode(&m, TW_CMD_ACK, b.data, b.size);
            if (rc != TW_EPROTO) {
                fail_msg("field %s, bad variant %d: %s", s_fields[f].key, v,
                         tw_err_name(rc));
            }
            s_body_free(&b);
            tried++;
        }
    }
    assert_true(tried > 30);
}

static void
test_wrong_item_field_type(void **state)
{
    (void)state;
    int tried = 0;
    for (int f = 0; f < TW_I__COUNT; f++) {
        for (int v = 0;; v++) {
            tw_enc_t e;
            tw_enc_init(&e);
            tw_enc_map(&e, 1);
            tw_enc_key(&e, TW_F_ITEMS);
            tw_enc_array(&e, 1);
            /* An ACK item: "seq" plus the bad field (which may be
             * "seq" itself). */
            int extra = f != TW_I_SEQ;
            tw_enc_map(&e, extra ? 2 : 1);
            tw_enc_ikey(&e, (tw_ifield_t)f);
            if (!s_enc_bad(&e, s_ifields[f].type, s_ifields[f].max, v)) {
                tw_enc_free(&e);
                break;
            }
            if (extra) {
                tw_enc_ikey(&e, TW_I_SEQ);
                tw_enc_uint(&e, 1);
            }
            s_body_t b = s_take(&e);
            tw_msg_t m;
            int rc = s_decode(&m, TW_CMD_ACK, b.data, b.size);
            if (rc != TW_EPROTO) {
                fail_msg("item field %s, bad variant %d: %s",
                         s_ifields[f].key, v, tw_err_name(rc));
            }
            s_body_free(&b);
            tried++;
        }
    }
    assert_true(tried > 20);
}

/* ------------------------------------------------------ nil limit --- */

/* GROUP set {seq, op, group, <f>: nil}, decoded into *m; returns the
 * decoder's code. */
static int
s_group_set_nil(tw_field_t f, tw_msg_t *m, s_body_t *b)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 4);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "set");
    tw_enc_key(&e, TW_F_GROUP);
    tw_enc_cstr(&e, "g");
    tw_enc_key(&e, f);
    tw_enc_nil(&e);
    *b = s_take(&e);
    tw_enc_free(&e);
    return s_decode(m, TW_CMD_GROUP, b->data, b->size);
}

/* S96: GROUP set {limit: nil} is "no limit", as clear_limit; the codec
 * takes nil for `limit` (type int/nil) and nowhere else an int goes. */
static void
test_limit_nil(void **state)
{
    (void)state;
    tw_msg_t m;
    s_body_t b;
    assert_int_equal(s_group_set_nil(TW_F_LIMIT, &m, &b), 0);
    assert_non_null(m.f[TW_F_LIMIT]);
    assert_int_equal(m.f[TW_F_LIMIT]->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(tw_msg_int(&m, TW_F_LIMIT, -7), -7);
    tw_msg_release(&m);
    s_body_free(&b);
    /* `calls` stays an integer: nil there is malformed. */
    assert_int_equal(s_group_set_nil(TW_F_CALLS, &m, &b), TW_EPROTO);
    s_body_free(&b);
}

/* ----------------------------------------------------------- limits --- */

static void
test_limits_accepted(void **state)
{
    (void)state;
    static char big[TW_PROTO_MAX_TEXT + 1];
    memset(big, 'b', sizeof big);
    /* Every string field at exactly its limit passes (body and item). */
    for (int f = 0; f < TW_F__COUNT; f++) {
        if (s_fields[f].type != TW_T_STR) {
            continue;
        }
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 1);
        tw_enc_key(&e, (tw_field_t)f);
        tw_enc_str(&e, big, s_fields[f].max);
        s_body_t b = s_take(&e);
        tw_msg_t m;
        assert_int_equal(s_decode(&m, TW_CMD_HEARTBEAT, b.data, b.size), 0);
        size_t len = 0;
        assert_non_null(tw_msg_str(&m, (tw_field_t)f, &len));
        assert_int_equal(len, s_fields[f].max);
        tw_msg_release(&m);
        s_body_free(&b);
    }
    for (int f = 0; f < TW_I__COUNT; f++) {
        if (s_ifields[f].type != TW_T_STR) {
            continue;
        }
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_ITEMS);
        tw_enc_array(&e, 1);
        tw_enc_map(&e, 1);
        tw_enc_ikey(&e, (tw_ifield_t)f);
        tw_enc_str(&e, big, s_ifields[f].max);
        s_body_t b = s_take(&e);
        tw_msg_t m;
        assert_int_equal(s_decode(&m, TW_CMD_HEARTBEAT, b.data, b.size), 0);
        size_t len = 0;
        assert_non_null(tw_item_str(&m.items[0], (tw_ifield_t)f, &len));
        assert_int_equal(len, s_ifields[f].max);
        tw_msg_release(&m);
        s_body_free(&b);
    }

    /* The most items, ids, handlers and tags allowed. */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 4);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, TW_PROTO_MAX_ITEMS);
    for (int i = 0; i < TW_PROTO_MAX_ITEMS; i++) {
        tw_enc_map(&e, 1);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, (uint64_t)i);
    }
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, TW_PROTO_MAX_ITEMS);
    for (int i = 0; i < TW_PROTO_MAX_ITEMS; i++) {
        tw_enc_uint(&e, (uint64_t)i);
    }
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, TW_PROTO_MAX_HANDLERS);
    for (int i = 0; i < TW_PROTO_MAX_HANDLERS; i++) {
        tw_enc_str(&e, big, TW_PROTO_MAX_NAME);
    }
    tw_enc_key(&e, TW_F_TAGS);
    tw_enc_map(&e, TW_PROTO_MAX_TAGS);
    for (int i = 0; i < TW_PROTO_MAX_TAGS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        tw_enc_cstr(&e, k);
        tw_enc_str(&e, big, TW_PROTO_MAX_NAME);
    }
    s_body_t b = s_take(&e);
    tw_msg_t m;
    assert_int_equal(s_decode(&m, TW_CMD_ACK, b.data, b.size), 0);
    assert_int_equal(m.nitems, TW_PROTO_MAX_ITEMS);
    assert_int_equal(tw_item_uint(&m.items[TW_PROTO_MAX_ITEMS - 1], TW_I_SEQ,
                                  0),
                     TW_PROTO_MAX_ITEMS - 1);
    tw_msg_release(&m);
    s_body_free(&b);
}

static void
test_hostile_sizes(void **state)
{
    (void)state;
    /* Tiny bodies that announce huge containers or strings must fail
     * fast without reserving memory for what they announce. */
    static const unsigned char cases[][12] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff},            /* array32 4G */
        {0xdf, 0xff, 0xff, 0xff, 0xff},            /* map32 4G */
        {0xdd, 0x0f, 0xff, 0xff, 0xff},            /* array32 268M */
        {0xdf, 0x01, 0x00, 0x00, 0x00},            /* map32 16M */
        {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},       /* str32 4G */
        {0xc6, 0x7f, 0xff, 0xff, 0xff, 0},         /* bin32 2G */
        {0xc9, 0xff, 0xff, 0xff, 0xff, 1, 0},      /* ext32 4G */
        {0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0x01, 0, 0, 0},
        {0x81, 0xa3, 'i', 'd', 's', 0xdc, 0xff, 0xff, 0x01},
    };
    static const size_t lens[] = {5, 5, 5, 5, 6, 6, 7, 12, 9};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        tw_msg_t m;
        assert_int_equal(s_decode(&m, TW_CMD_RESULT, cases[i], lens[i]),
                         TW_EPROTO);
    }
    /* Deep nesting under an unknown key: malformed or accepted, never a
     * crash. */
    size_t depth = 100000;
    unsigned char *deep = malloc(depth + 8);
    size_t n = 0;
    deep[n++] = 0x81;
    deep[n++] = 0xa1;
    deep[n++] = 'z';
    for (size_t i = 0; i < depth; i++) {
        deep[n++] = 0x91; /* [ */
    }
    deep[n++] = 0xc0;
    tw_msg_t m;
    int rc = s_decode(&m, TW_CMD_HEARTBEAT, deep, n);
    assert_true(rc == 0 || rc == TW_EPROTO);
    if (rc == 0) {
        tw_msg_release(&m);
    }
    free(deep);
}

/* Every msgpack format, under an unknown key: the decoder's pre-scan must
 * step over each of them exactly as msgpack-c does. The packer picks the
 * smallest format, so the values are chosen to force each one. */
static void
s_w_every_format(tw_enc_t *e, void *arg)
{
    (void)arg;
    static char big[65536];
    msgpack_packer *pk = &e->pk;
    const size_t strs[] = {0, 31, 32, 255, 256, 65535, 65536};
    const size_t bins[] = {0, 1, 255, 256, 65535, 65536};
    const size_t exts[] = {1, 2, 4, 8, 16, 0, 3, 255, 256, 65535, 65536};
    const size_t nstr = sizeof strs / sizeof strs[0];
    const size_t nbin = sizeof bins / sizeof bins[0];
    const size_t next = sizeof exts / sizeof exts[0];

    memset(big, 'q', sizeof big);
    tw_enc_map(e, 2);
    tw_enc_cstr(e, "x-every-format");
    tw_enc_array(e, 20 + nstr + nbin + next + 3);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_uint64(pk, 5);            /* positive fixint */
    msgpack_pack_int64(pk, -5);            /* negative fixint */
    msgpack_pack_uint64(pk, 200);          /* uint 8 */
    msgpack_pack_uint64(pk, 60000);        /* uint 16 */
    msgpack_pack_uint64(pk, 70000);        /* uint 32 */
    msgpack_pack_uint64(pk, 1ULL << 40);   /* uint 64 */
    msgpack_pack_int64(pk, -100);          /* int 8 */
    msgpack_pack_int64(pk, -1000);         /* int 16 */
    msgpack_pack_int64(pk, -100000);       /* int 32 */
    msgpack_pack_int64(pk, -(1LL << 40));  /* int 64 */
    msgpack_pack_float(pk, 1.5f);          /* float 32 */
    msgpack_pack_double(pk, 2.5);          /* float 64 */
    msgpack_pack_map(pk, 16);              /* map 16 */
    for (int i = 0; i < 16; i++) {
        msgpack_pack_int64(pk, i);
        msgpack_pack_nil(pk);
    }
    msgpack_pack_array(pk, 16);            /* array 16 */
    for (int i = 0; i < 16; i++) {
        msgpack_pack_nil(pk);
    }
    msgpack_pack_array(pk, 65536);         /* array 32 */
    for (int i = 0; i < 65536; i++) {
        msgpack_pack_true(pk);
    }
    msgpack_pack_map(pk, 65536);           /* map 32 */
    for (int i = 0; i < 65536; i++) {
        msgpack_pack_int64(pk, i);
        msgpack_pack_false(pk);
    }
    msgpack_pack_map(pk, 0);
    for (size_t i = 0; i < nstr; i++) {    /* fixstr, str 8, 16, 32 */
        msgpack_pack_str(pk, strs[i]);
        msgpack_pack_str_body(pk, big, strs[i]);
    }
    for (size_t i = 0; i < nbin; i++) {    /* bin 8, 16, 32 */
        msgpack_pack_bin(pk, bins[i]);
        msgpack_pack_bin_body(pk, big, bins[i]);
    }
    for (size_t i = 0; i < next; i++) {    /* fixext 1-16, ext 8, 16, 32 */
        msgpack_pack_ext(pk, exts[i], 7);
        msgpack_pack_ext_body(pk, big, exts[i]);
    }
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_nil(pk);
    /* And the one known field, after all that. */
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 3);
}

static void
test_every_msgpack_format_skipped(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    s_w_every_format(&e, NULL);
    s_body_t b = s_take(&e);
    tw_msg_t m;
    assert_int_equal(s_decode(&m, TW_CMD_READY, b.data, b.size), 0);
    assert_int_equal(tw_msg_uint(&m, TW_F_CREDIT, 0), 3);
    tw_msg_release(&m);
    s_body_free(&b);
}

/* -------------------------------------------------------------- text --- */

static void
test_text_rules(void **state)
{
    (void)state;
    /* Every field that can hold a string is checked, so a receiver that
     * asks for clean text sees only clean strings; the others hold none. */
    for (int f = 0; f < TW_F__COUNT; f++) {
        tw_type_t t = s_fields[f].type;
        int strings = t == TW_T_STR || t == TW_T_STRS || t == TW_T_TAGS ||
                      t == TW_T_ANY || t == TW_T_ITEMS;
        if (s_fields[f].text != (strings ? TW_TX_CLEAN : TW_TX_NONE)) {
            fail_msg("field %s: text rule %d", s_fields[f].key,
                     s_fields[f].text);
        }
    }
    for (int f = 0; f < TW_I__COUNT; f++) {
        tw_type_t t = s_ifields[f].type;
        int strings = t == TW_T_STR || t == TW_T_STRS || t == TW_T_TAGS ||
                      t == TW_T_ANY;
        if (s_ifields[f].text != (strings ? TW_TX_CLEAN : TW_TX_NONE)) {
            fail_msg("item field %s: text rule %d", s_ifields[f].key,
                     s_ifields[f].text);
        }
    }
}

/* A value of `type` that is well typed but holds one string that is not
 * clean text; variants end with 0. */
static int
s_enc_unclean(tw_enc_t *e, tw_type_t type, int variant)
{
    switch (type) {
    case TW_T_STR:
        switch (variant) {
        case 0: tw_enc_cstr(e, "bad\nname"); return 1;
        case 1: tw_enc_cstr(e, "\xe2\x80\xae" "txt"); return 1;
        case 2: tw_enc_cstr(e, "caf\xc3"); return 1; /* cut short */
        }
        return 0;
    case TW_T_STRS:
        switch (variant) {
        case 0:
            tw_enc_array(e, 2);
            tw_enc_cstr(e, "fine");
            tw_enc_cstr(e, "es\x1b[2J");
            return 1;
        }
        return 0;
    case TW_T_TAGS:
        switch (variant) {
        case 0:
            tw_enc_map(e, 1);
            tw_enc_cstr(e, "zo\x07ne");
            tw_enc_cstr(e, "eu");
            return 1;
        case 1:
            tw_enc_map(e, 1);
            tw_enc_cstr(e, "zone");
            tw_enc_cstr(e, "eu\xc2\x9b");
            return 1;
        }
        return 0;
    case TW_T_ANY:
        switch (variant) {
        case 0:
            tw_enc_map(e, 1);
            tw_enc_cstr(e, "k");
            tw_enc_array(e, 2);
            tw_enc_uint(e, 1);
            tw_enc_cstr(e, "\x7f");
            return 1;
        case 1:
            tw_enc_map(e, 1);
            tw_enc_cstr(e, "k\r");
            tw_enc_nil(e);
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* A body for command `c`: its required fields and items, and body field
 * `bf` (or item field `itf` of the middle item, with the item fields the
 * command requires) holding unclean variant `v`. Returns 0 when there is
 * no such variant. */
static int
s_enc_unclean_body(const s_cmd_t *c, int bf, int itf, int v, s_body_t *out)
{
    tw_enc_t e;
    tw_enc_init(&e);
    uint64_t fields = s_needed(c) | (itf >= 0 ? TW_FB(ITEMS) : 0);
    if (bf >= 0) {
        fields |= 1ULL << bf;
    }
    int ok = 0;
    tw_enc_map(&e, s_popcount(fields));
    for (int f = 0; f < TW_F__COUNT; f++) {
        if (!(fields & (1ULL << f))) {
            continue;
        }
        tw_enc_key(&e, (tw_field_t)f);
        if (f == bf) {
            ok = s_enc_unclean(&e, s_fields[f].type, v);
        } else if (f == TW_F_ITEMS) {
            tw_enc_array(&e, S_NITEMS);
            for (size_t i = 0; i < S_NITEMS; i++) {
                uint64_t mask = c->ireq;
                if (i != 1 || itf < 0) {
                    s_enc_item(&e, i, mask, 0);
                    continue;
                }
                mask &= ~(1ULL << itf);
                tw_enc_map(&e, s_popcount(mask) + 1);
                for (int k = 0; k < TW_I__COUNT; k++) {
                    if (mask & (1ULL << k)) {
                        tw_enc_ikey(&e, (tw_ifield_t)k);
                        s_enc_good(&e, s_ifields[k].type, s_iseed(i, k));
                    }
                }
                tw_enc_ikey(&e, (tw_ifield_t)itf);
                ok = s_enc_unclean(&e, s_ifields[itf].type, v);
            }
        } else {
            s_enc_good(&e, s_fields[f].type, s_fseed(f));
        }
    }
    *out = s_take(&e);
    if (!ok) {
        s_body_free(out);
    }
    return ok;
}

/* Decode `b` as `c`: plainly it decodes; with the text check it is
 * refused with TW_EINVAL and stays decoded; with the check asked for
 * every command but this one, it decodes. */
static void
s_expect_unclean(const s_cmd_t *c, const s_body_t *b, const char *what)
{
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make((tw_cmd_t)c->id, hdr);
    tw_msg_t m;
    int rc = tw_msg_decode(&m, hdr, sizeof hdr, b->data, b->size);
    if (rc != 0) {
        fail_msg("%s %s, unchecked: %s", c->name, what, tw_err_name(rc));
    }
    tw_msg_release(&m);
    rc = tw_msg_decode_clean(&m, hdr, sizeof hdr, b->data, b->size,
                             TW_CMD_ALL);
    if (rc != TW_EINVAL) {
        fail_msg("%s %s, checked: %s", c->name, what, tw_err_name(rc));
    }
    assert_int_equal(m.cmd, c->id); /* left decoded */
    tw_msg_release(&m);
    rc = tw_msg_decode_clean(&m, hdr, sizeof hdr, b->data, b->size,
                             TW_CMD_ALL & ~TW_CMD_BIT(c->id));
    if (rc != 0) {
        fail_msg("%s %s, others checked: %s", c->name, what,
                 tw_err_name(rc));
    }
    tw_msg_release(&m);
}

static void
test_text_every_field(void **state)
{
    (void)state;
    int tried = 0;
    char what[64];
    for (size_t i = 0; i < S_NCMDS; i++) {
        const s_cmd_t *c = &s_cmds[i];
        for (int f = 0; f < TW_F__COUNT; f++) {
            for (int v = 0;; v++) {
                s_body_t b;
                if (!s_enc_unclean_body(c, f, -1, v, &b)) {
                    break;
                }
                snprintf(what, sizeof what, "\"%s\" %d", s_fields[f].key, v);
                s_expect_unclean(c, &b, what);
                s_body_free(&b);
                tried++;
            }
        }
        for (int f = 0; f < TW_I__COUNT; f++) {
            for (int v = 0;; v++) {
                s_body_t b;
                if (!s_enc_unclean_body(c, -1, f, v, &b)) {
                    break;
                }
                snprintf(what, sizeof what, "item \"%s\" %d",
                         s_ifields[f].key, v);
                s_expect_unclean(c, &b, what);
                s_body_free(&b);
                tried++;
            }
        }
    }
    /* Every command, every string-bearing field and item field. */
    assert_true(tried > (int)S_NCMDS * 20);
}

/* Writers of bodies with an unclean string in a key or under a key the
 * codec does not know; `where` picks one. */
static void
s_w_unclean_unknown(tw_enc_t *e, void *arg)
{
    int where = *(int *)arg;
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 77);
    switch (where) {
    case 0: /* an unknown key that is not clean */
        tw_enc_cstr(e, "x\n");
        tw_enc_uint(e, 1);
        break;
    case 1: /* an unclean string deep under an unknown key */
        tw_enc_cstr(e, "x-future");
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "deep");
        tw_enc_array(e, 2);
        tw_enc_nil(e);
        tw_enc_cstr(e, "\x1b]0;title\x07");
        break;
    case 2: /* an unclean key of a map under an unknown key */
        tw_enc_cstr(e, "x-future");
        tw_enc_map(e, 1);
        tw_enc_cstr(e, "d\x7f");
        tw_enc_nil(e);
        break;
    case 3: /* an unknown key of an item */
        tw_enc_key(e, TW_F_ITEMS);
        tw_enc_array(e, 1);
        tw_enc_map(e, 2);
        tw_enc_ikey(e, TW_I_SEQ);
        tw_enc_uint(e, 1);
        tw_enc_cstr(e, "x-later");
        tw_enc_cstr(e, "\xe2\x81\xa6");
        break;
    case 4: /* control bytes in payloads are nobody's business */
        tw_enc_key(e, TW_F_ITEMS);
        tw_enc_array(e, 1);
        tw_enc_map(e, 3);
        tw_enc_ikey(e, TW_I_SEQ);
        tw_enc_uint(e, 1);
        tw_enc_ikey(e, TW_I_A);
        tw_enc_bin(e, "\n\x1b\0", 3);
        tw_enc_cstr(e, "x-later");
        tw_enc_bin(e, "\x7f", 1);
        break;
    }
}

static void
test_text_keys_and_unknown(void **state)
{
    (void)state;
    for (int where = 0; where <= 4; where++) {
        tw_enc_t e;
        tw_enc_init(&e);
        s_w_unclean_unknown(&e, &where);
        s_body_t b = s_take(&e);
        unsigned char hdr[TW_PROTO_HDRLEN];
        tw_proto_header_make(TW_CMD_HEARTBEAT, hdr);
        tw_msg_t m;
        /* Unknown keys are still ignored by a plain decode. */
        assert_int_equal(tw_msg_decode(&m, hdr, 4, b.data, b.size), 0);
        tw_msg_release(&m);
        int rc = tw_msg_decode_clean(&m, hdr, 4, b.data, b.size,
                                     TW_CMD_BIT(TW_CMD_HEARTBEAT));
        if (rc != (where == 4 ? 0 : TW_EINVAL)) {
            fail_msg("case %d: %s", where, tw_err_name(rc));
        }
        /* The refusal can answer the request's seq. */
        assert_int_equal(tw_msg_uint(&m, TW_F_SEQ, 0), 77);
        tw_msg_release(&m);
        s_body_free(&b);
    }
}

static void
test_text_precedence(void **state)
{
    (void)state;
    /* QUERY {what: "a\n", seq: 5} is refused for its text... */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "a\n");
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 5);
    s_body_t b = s_take(&e);
    unsigned char hdr[TW_PROTO_HDRLEN];
    tw_proto_header_make(TW_CMD_QUERY, hdr);
    tw_msg_t m;
    assert_int_equal(tw_msg_decode_clean(&m, hdr, 4, b.data, b.size,
                                         TW_CMD_ALL),
                     TW_EINVAL);
    assert_int_equal(tw_msg_uint(&m, TW_F_SEQ, 0), 5);
    tw_msg_release(&m);
    /* ...but a message that is also malformed gets the decoder's answer,
     * and leaves nothing to release: a wrong version, an unknown command,
     * a missing required field (QUERY needs "seq"), a cut body. */
    unsigned char v2[4] = {'T', 'W', 2, TW_CMD_QUERY};
    assert_int_equal(tw_msg_decode_clean(&m, v2, 4, b.data, b.size,
                                         TW_CMD_ALL),
                     TW_EVERSION);
    unsigned char c200[4] = {'T', 'W', 1, 200};
    assert_int_equal(tw_msg_decode_clean(&m, c200, 4, b.data, b.size,
                                         TW_CMD_ALL),
                     TW_ECOMMAND);
    tw_proto_header_make(TW_CMD_DONE, hdr); /* DONE requires "items" */
    assert_int_equal(tw_msg_decode_clean(&m, hdr, 4, b.data, b.size,
                                         TW_CMD_ALL),
                     TW_EPROTO);
    assert_int_equal(m.cmd, TW_CMD_NONE);
    tw_proto_header_make(TW_CMD_QUERY, hdr);
    assert_int_equal(tw_msg_decode_clean(&m, hdr, 4, b.data, b.size - 1,
                                         TW_CMD_ALL),
                     TW_EPROTO);
    s_body_free(&b);
    /* A field of the wrong type after the unclean one: malformed. */
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "a\n");
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 5);
    tw_enc_key(&e, TW_F_CREDIT);
    tw_enc_cstr(&e, "x");
    b = s_take(&e);
    assert_int_equal(tw_msg_decode_clean(&m, hdr, 4, b.data, b.size,
                                         TW_CMD_ALL),
                     TW_EPROTO);
    assert_int_equal(m.cmd, TW_CMD_NONE);
    s_body_free(&b);
    tw_enc_free(&e);
}

/* --------------------------------------------------------- accessors --- */

static void
test_accessors(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 5);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_uint(&e, UINT64_MAX); /* an INT field given a huge uint */
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_str(&e, "no\0nul", 6);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, UINT64_MAX);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_str(&e, "", 0);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_enc_map(&e, 5);
    tw_enc_ikey(&e, TW_I_ID);
    tw_enc_uint(&e, 5);
    tw_enc_ikey(&e, TW_I_ST);
    tw_enc_uint(&e, 0);
    tw_enc_ikey(&e, TW_I_PRI);
    tw_enc_int(&e, INT64_MIN);
    tw_enc_ikey(&e, TW_I_R);
    tw_enc_bin(&e, "\x93\x01\x02\x03", 4);
    tw_enc_ikey(&e, TW_I_ERR);
    tw_enc_cstr(&e, "boom");
    s_body_t b = s_take(&e);
    tw_msg_t m;
    assert_int_equal(s_decode(&m, TW_CMD_ERROR, b.data, b.size), 0);

    assert_int_equal(tw_msg_int(&m, TW_F_CODE, 0), INT64_MAX); /* clamped */
    assert_true(tw_msg_uint(&m, TW_F_SEQ, 0) == UINT64_MAX);
    size_t len = 99;
    const char *s = tw_msg_str(&m, TW_F_MSG, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(s, "no\0nul", 6);
    assert_non_null(tw_msg_str(&m, TW_F_MSG, NULL)); /* len optional */
    s = tw_msg_str(&m, TW_F_NAME, &len);
    assert_int_equal(len, 0);
    /* Absent fields give the default / NULL with length 0. */
    assert_int_equal(tw_msg_uint(&m, TW_F_CREDIT, 42), 42);
    assert_int_equal(tw_msg_int(&m, TW_F_CREDIT, -42), -42);
    len = 99;
    assert_null(tw_msg_str(&m, TW_F_HOST, &len));
    assert_int_equal(len, 0);
    /* A field of another type is not converted. */
    assert_int_equal(tw_msg_uint(&m, TW_F_MSG, 7), 7);
    assert_int_equal(tw_msg_int(&m, TW_F_MSG, 7), 7);
    assert_null(tw_msg_str(&m, TW_F_SEQ, &len));

    assert_int_equal(m.nitems, 1);
    const tw_item_t *it = &m.items[0];
    assert_int_equal(tw_item_uint(it, TW_I_ID, 0), 5);
    assert_int_equal(tw_item_uint(it, TW_I_ST, 9), 0);
    assert_true(tw_item_int(it, TW_I_PRI, 0) == INT64_MIN);
    assert_int_equal(tw_item_uint(it, TW_I_PRI, 3), 3); /* negative: dflt */
    assert_int_equal(tw_item_int(it, TW_I_ID, 0), 5);
    const void *p = tw_item_bin(it, TW_I_R, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "\x93\x01\x02\x03", 4);
    len = 99;
    assert_null(tw_item_bin(it, TW_I_A, &len));
    assert_int_equal(len, 0);
    assert_null(tw_item_bin(it, TW_I_ERR, &len)); /* a string, not bin */
    s = tw_item_str(it, TW_I_ERR, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(s, "boom", 4);
    assert_null(tw_item_str(it, TW_I_H, NULL));
    assert_int_equal(tw_item_uint(it, TW_I_TO, 11), 11);
    tw_msg_release(&m);
    s_body_free(&b);
}

static void
test_state_names(void **state)
{
    (void)state;
    const char *names[] = {"ok",      "error",   "timeout",
                           "cancelled", "lost",  "pending",
                           "running", "unknown", "blocked"};
    for (int st = TW_ST_OK; st <= TW_ST_BLOCKED; st++) {
        assert_string_equal(tw_proto_state_name(st), names[st]);
    }
    assert_string_equal(tw_proto_state_name(-1), "?");
    assert_string_equal(tw_proto_state_name(TW_ST_BLOCKED + 1), "?");
}

/* tw_enc_ikey_uint writes the bytes tw_enc_ikey + tw_enc_uint write, at
 * every width of msgpack's unsigned forms. */
static void
test_ikey_uint(void **state)
{
    (void)state;
    static const uint64_t vals[] = {0,      1,          127,        128,
                                    255,    256,        65535,      65536,
                                    1ULL << 32 ^ 1,     UINT32_MAX,
                                    1ULL << 32,         UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        tw_enc_t a, b;
        tw_enc_init(&a);
        tw_enc_init(&b);
        tw_enc_ikey_uint(&a, TW_I_EP, vals[i]);
        tw_enc_ikey(&b, TW_I_EP);
        tw_enc_uint(&b, vals[i]);
        assert_int_equal(a.sb.size, b.sb.size);
        assert_memory_equal(a.sb.data, b.sb.data, a.sb.size);
        tw_enc_free(&a);
        tw_enc_free(&b);
    }
}

/* -------------------------------------------------------- operations --- */

typedef struct {
    tw_op_t op;
    int cmd;
    const char *name;
    int dirs;
    uint64_t needs;
} s_op_t;

static const s_op_t s_ops[] = {
#define S_OP(cmd, NAME, name, dirs, needs)                                   \
    {TW_OP_##cmd##_##NAME, TW_CMD_##cmd, #name, dirs, needs},
    TW_PROTO_OPS(S_OP)
#undef S_OP
};
#define S_NOPS (sizeof s_ops / sizeof s_ops[0])

/* The command table's row of command `id`. */
static const s_cmd_t *
s_cmd_row(int id)
{
    for (size_t i = 0; i < S_NCMDS; i++) {
        if (s_cmds[i].id == id) {
            return &s_cmds[i];
        }
    }
    fail_msg("no command %d", id);
    return NULL;
}

static void
test_op_table(void **state)
{
    (void)state;
    assert_int_equal(S_NOPS, TW_OP__COUNT - 1);
    for (size_t i = 0; i < S_NOPS; i++) {
        const s_op_t *o = &s_ops[i];
        size_t n = strlen(o->name);
        assert_int_equal(o->op, (tw_op_t)(i + 1));
        assert_int_equal(tw_proto_op(o->cmd, o->name, n), o->op);
        assert_string_equal(tw_proto_op_name(o->op), o->name);
        assert_int_equal(tw_proto_op_cmd(o->op), o->cmd);
        assert_int_equal(tw_proto_op_dirs(o->op), o->dirs);
        assert_int_equal(tw_proto_op_needs(o->op), o->needs);
        /* An operation travels only where its command does, somewhere,
         * and needs only fields the codec knows. */
        assert_int_not_equal(o->dirs, 0);
        assert_int_equal(o->dirs & ~tw_proto_cmd_dirs(o->cmd), 0);
        assert_int_equal(o->needs & ~S_ALL_FIELDS, 0);
        /* Names are lower case and matched exactly: not in upper case,
         * not cut short, not longer, not by length alone. */
        char buf[40];
        assert_true(n > 0 && n + 1 < sizeof buf);
        for (size_t k = 0; k < n; k++) {
            assert_false(isupper((unsigned char)o->name[k]));
            buf[k] = (char)toupper((unsigned char)o->name[k]);
        }
        assert_int_equal(tw_proto_op(o->cmd, buf, n), TW_OP_NONE);
        assert_int_not_equal(tw_proto_op(o->cmd, o->name, n - 1), o->op);
        memcpy(buf, o->name, n);
        buf[n] = 'x';
        assert_int_not_equal(tw_proto_op(o->cmd, buf, n + 1), o->op);
        buf[n - 1] ^= 0x20;
        assert_int_not_equal(tw_proto_op(o->cmd, buf, n), o->op);
        /* Under any other command the name is that command's op or
         * none. */
        for (size_t c = 0; c < S_NCMDS; c++) {
            tw_op_t r = tw_proto_op(s_cmds[c].id, o->name, n);
            if (s_cmds[c].id != o->cmd && r != TW_OP_NONE) {
                assert_int_equal(tw_proto_op_cmd(r), s_cmds[c].id);
            }
        }
    }
    assert_int_equal(tw_proto_op(TW_CMD_POOL, NULL, 0), TW_OP_NONE);
    assert_int_equal(tw_proto_op(TW_CMD_POOL, "", 0), TW_OP_NONE);
    assert_int_equal(tw_proto_op(TW_CMD_SUBMIT, "list", 4), TW_OP_NONE);
    assert_int_equal(tw_proto_op(TW_CMD_NONE, "list", 4), TW_OP_NONE);
    tw_op_t bad[] = {TW_OP_NONE, TW_OP__COUNT, (tw_op_t)-1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(tw_proto_op_name(bad[i]), "?");
        assert_int_equal(tw_proto_op_cmd(bad[i]), TW_CMD_NONE);
        assert_int_equal(tw_proto_op_dirs(bad[i]), 0);
        assert_int_equal(tw_proto_op_needs(bad[i]), 0);
    }
    assert_int_equal(tw_proto_op_field(TW_CMD_QUERY), TW_F_WHAT);
    assert_int_equal(tw_proto_op_field(TW_CMD_POOL), TW_F_OP);
}

/* Every operation, encoded with its command's required fields and the
 * fields it needs, decodes to a message that names it; its name under a
 * command that lacks it names nothing. */
static void
test_op_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < S_NOPS; i++) {
        const s_op_t *o = &s_ops[i];
        const s_cmd_t *c = s_cmd_row(o->cmd);
        uint64_t of = 1ULL << tw_proto_op_field(o->cmd);
        s_spec_t sp = {s_needed(c) | o->needs | of, c->ireq, -1, 0, 0,
                       o->name};
        s_body_t b = s_enc_body(&sp);
        tw_msg_t m;
        int rc = s_decode(&m, o->cmd, b.data, b.size);
        if (rc != 0) {
            fail_msg("%s %s: %s", c->name, o->name, tw_err_name(rc));
        }
        assert_int_equal(tw_proto_msg_op(&m), o->op);
        for (int f = 0; f < TW_F__COUNT; f++) {
            if (o->needs & (1ULL << f)) {
                assert_non_null(m.f[f]);
            }
        }
        tw_msg_release(&m);
        for (size_t k = 0; k < S_NOPS; k++) {
            if (s_ops[k].cmd == o->cmd ||
                tw_proto_op(s_ops[k].cmd, o->name, strlen(o->name))) {
                continue;
            }
            /* Another command with the same op field and this name. */
            const s_cmd_t *oc = s_cmd_row(s_ops[k].cmd);
            if (tw_proto_op_field(oc->id) != tw_proto_op_field(o->cmd)) {
                continue;
            }
            s_spec_t osp = {s_needed(oc) | of, oc->ireq, -1, 0, 0, o->name};
            s_body_t ob = s_enc_body(&osp);
            assert_int_equal(s_decode(&m, oc->id, ob.data, ob.size), 0);
            assert_int_equal(tw_proto_msg_op(&m), TW_OP_NONE);
            tw_msg_release(&m);
            s_body_free(&ob);
        }
        s_body_free(&b);
    }
    /* No op field at all: none. */
    const s_cmd_t *pool = s_cmd_row(TW_CMD_POOL);
    s_spec_t sp = {TW_FB(SEQ), 0, -1, 0, 0, NULL};
    s_body_t b = s_enc_body(&sp);
    tw_msg_t m;
    assert_int_equal(s_decode(&m, pool->id, b.data, b.size), TW_EPROTO);
    s_body_free(&b);
    const s_cmd_t *st = s_cmd_row(TW_CMD_STATION);
    sp.fields = s_needed(st);
    sp.ifields = st->ireq;
    b = s_enc_body(&sp);
    assert_int_equal(s_decode(&m, st->id, b.data, b.size), 0);
    assert_int_equal(tw_proto_msg_op(&m), TW_OP_NONE);
    tw_msg_release(&m);
    s_body_free(&b);
}

/* The direction bits of "C->B, B->W" (cells of PROTOCOL.md's tables). */
static int
s_md_dirs(const char *cell)
{
    static const struct {
        const char *s;
        int bit;
    } names[] = {{"W->B", TW_W2B}, {"B->W", TW_B2W}, {"C->B", TW_C2B},
                 {"B->C", TW_B2C}};
    int dirs = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strstr(cell, names[i].s)) {
            dirs |= names[i].bit;
        }
    }
    return dirs;
}

/* The field bits of "`sid` `handler`"; fails on a key the codec lacks. */
static uint64_t
s_md_fields(const char *cell)
{
    uint64_t bits = 0;
    const char *p = cell;
    while ((p = strchr(p, '`')) != NULL) {
        const char *q = strchr(++p, '`');
        assert_non_null(q);
        int found = 0;
        for (int f = 0; f < TW_F__COUNT; f++) {
            if (strlen(s_fields[f].key) == (size_t)(q - p) &&
                memcmp(s_fields[f].key, p, (size_t)(q - p)) == 0) {
                bits |= 1ULL << f;
                found = 1;
            }
        }
        if (!found) {
            fail_msg("PROTOCOL.md 4.9: no field `%.*s`", (int)(q - p), p);
        }
        p = q + 1;
    }
    return bits;
}

/* Split a table row "| a | b |" into at most `max` trimmed cells, in
 * place. Returns how many. */
static int
s_md_cells(char *line, char **cells, int max)
{
    int n = 0;
    char *p = strchr(line, '|');
    while (p && n < max) {
        char *q = strchr(p + 1, '|');
        if (!q) {
            break;
        }
        *q = '\0';
        p++;
        while (*p == ' ') {
            p++;
        }
        for (char *e = q - 1; e >= p && *e == ' '; e--) {
            *e = '\0';
        }
        cells[n++] = p;
        p = q;
    }
    return n;
}

/* PROTOCOL.md 4.9 lists every row of TW_PROTO_OPS once, with the same
 * directions and needs, and nothing else. */
static void
test_op_protocol_md(void **state)
{
    (void)state;
    char *doc = tw_suite_read_file(TW_SOURCE_DIR "/proto/PROTOCOL.md", NULL);
    char *sec = strstr(doc, "\n### 4.9 Operations (`TW_PROTO_OPS`)\n");
    assert_non_null(sec);
    char *end = strstr(sec + 1, "\n#");
    assert_non_null(end);
    *end = '\0';
    int seen[TW_OP__COUNT] = {0};
    char *save = NULL;
    for (char *line = strtok_r(sec, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *cell[5];
        if (line[0] != '|' || strncmp(line, "|--", 3) == 0 ||
            strncmp(line, "| Command ", 10) == 0) {
            continue;
        }
        if (s_md_cells(line, cell, 5) != 4) {
            fail_msg("PROTOCOL.md 4.9: a row without 4 cells: %s", line);
        }
        int cmd = TW_CMD_NONE;
        for (size_t i = 0; i < S_NCMDS; i++) {
            if (strcmp(s_cmds[i].name, cell[0]) == 0) {
                cmd = s_cmds[i].id;
            }
        }
        size_t nl = strlen(cell[1]);
        assert_true(nl > 2 && cell[1][0] == '`' && cell[1][nl - 1] == '`');
        tw_op_t op = tw_proto_op(cmd, cell[1] + 1, nl - 2);
        if (op == TW_OP_NONE) {
            fail_msg("PROTOCOL.md 4.9 lists %s %s, which proto/ops.h does "
                     "not", cell[0], cell[1]);
        }
        seen[op]++;
        if (s_md_dirs(cell[2]) != tw_proto_op_dirs(op) ||
            s_md_fields(cell[3]) != tw_proto_op_needs(op)) {
            fail_msg("PROTOCOL.md 4.9: %s %s: directions or needs differ "
                     "from proto/ops.h", cell[0], cell[1]);
        }
    }
    for (size_t i = 0; i < S_NOPS; i++) {
        if (seen[s_ops[i].op] != 1) {
            fail_msg("PROTOCOL.md 4.9 lists %s %s %d times, not once",
                     tw_proto_cmd_name(s_ops[i].cmd), s_ops[i].name,
                     seen[s_ops[i].op]);
        }
    }
    free(doc);
}

/* The messages of the fuzz corpus (support/proto_msgs.h, which
 * tests/fuzz/make_corpus.c writes) stay meaningful as the protocol
 * changes: each realistic one decodes, each near-miss fails with the code
 * its row names, and the committed tests/fuzz/corpus/proto/ holds exactly
 * these messages, byte for byte. */
static void
test_seed_corpus(void **state)
{
    (void)state;
    assert_true(tw_test_proto_nmsgs >= 20);
    for (size_t i = 0; i < tw_test_proto_nmsgs; i++) {
        const tw_test_proto_msg_t *row = &tw_test_proto_msgs[i];
        unsigned char hdr[TW_PROTO_HDRLEN];
        tw_enc_t e;
        tw_enc_init(&e);
        size_t n = tw_test_proto_msg_build(row, hdr, &e);
        tw_msg_t m;
        int rc = tw_msg_decode(&m, hdr, sizeof hdr, e.sb.data, n);
        if (rc != row->want) {
            fail_msg("seed %s: decode gave %s, want %s", row->name,
                     tw_err_name(rc), tw_err_name(row->want));
        }
        if (rc == 0) {
            assert_int_equal(m.cmd, row->cmd);
            tw_msg_release(&m);
        }
#ifdef TW_SOURCE_DIR
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/proto/%s",
                 TW_SOURCE_DIR, row->name);
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            fail_msg("seed %s is not in the corpus: run tw_make_corpus",
                     row->name);
        }
        static unsigned char buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        if (len != sizeof hdr + n || memcmp(buf, hdr, sizeof hdr) != 0 ||
            memcmp(buf + sizeof hdr, e.sb.data, n) != 0) {
            fail_msg("seed %s differs from its row: run tw_make_corpus",
                     row->name);
        }
#endif
        tw_enc_free(&e);
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_table),
        cmocka_unit_test(test_round_trip_required),
        cmocka_unit_test(test_round_trip_everything),
        cmocka_unit_test(test_round_trip_frames),
        cmocka_unit_test(test_empty_body_frames),
        cmocka_unit_test(test_missing_required_field),
        cmocka_unit_test(test_missing_required_item_field),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_body_not_a_map),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_non_string_keys),
        cmocka_unit_test(test_item_not_a_map),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_wrong_field_type),
        cmocka_unit_test(test_wrong_item_field_type),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_limit_nil),
        cmocka_unit_test(test_hostile_sizes),
        cmocka_unit_test(test_every_msgpack_format_skipped),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_seed_corpus),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_ikey_uint),
        cmocka_unit_test(test_text_rules),
        cmocka_unit_test(test_text_every_field),
        cmocka_unit_test(test_text_keys_and_unknown),
        cmocka_unit_test(test_text_precedence),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_op_round_trip),
        cmocka_unit_test(test_op_protocol_md),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
