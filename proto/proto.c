/*  proto/proto.c - the codec: header check, body validation, encoding.
 *
 *  Validation happens once, in tw_msg_decode: after it returns 0 every
 *  field pointer in the message and in each item has the declared type and
 *  size, and every required field is present, so the processes can read
 *  fields without re-checking types. The text check rides on the same
 *  pass: s_index() visits every key and value once, and checks the
 *  strings of those whose text rule asks for it.
 */
#include "proto/proto.h"
#include "common/error.h"
#include "common/utf8.h"
#include "proto/mpwalk.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key;
    size_t klen;
    tw_type_t type;
    size_t max;
    int text; /* TW_TX_* */
} s_field_def_t;

static const s_field_def_t s_fields[TW_F__COUNT] = {
#define TW__F_DEF(e, key, type, max, text)                                   \
    {key, sizeof(key) - 1, type, max, text},
    TW_PROTO_FIELDS(TW__F_DEF)
#undef TW__F_DEF
};

static const s_field_def_t s_ifields[TW_I__COUNT] = {
#define TW__I_DEF(e, key, type, max, text)                                   \
    {key, sizeof(key) - 1, type, max, text},
    TW_PROTO_ITEM_FIELDS(TW__I_DEF)
#undef TW__I_DEF
};

typedef struct {
    const char *name;
    int dirs;
    uint64_t req;
    uint64_t ireq;
} s_cmd_def_t;

static const s_cmd_def_t s_cmds[TW_CMD__MAX] = {
#define TW__C_DEF(id, name, dirs, req, ireq) [id] = {#name, dirs, req, ireq},
    TW_PROTO_COMMANDS(TW__C_DEF)
#undef TW__C_DEF
};

const char *
tw_proto_cmd_name(int cmd)
{
    if (cmd <= 0 || cmd >= TW_CMD__MAX || !s_cmds[cmd].name) {
        return "?";
    }
    return s_cmds[cmd].name;
}

int
tw_proto_cmd_dirs(int cmd)
{
    if (cmd <= 0 || cmd >= TW_CMD__MAX) {
        return 0;
    }
    return s_cmds[cmd].dirs;
}

const char *
tw_proto_state_name(int st)
{
    switch (st) {
#define TW__ST_NAME(name, code, text)                                        \
    case code:                                                               \
        return text;
        TW_STATE_MAP(TW__ST_NAME)
#undef TW__ST_NAME
    default:
        return "?";
    }
}

int
tw_proto_header(const void *hdr, size_t len, tw_cmd_t *cmd)
{
    const unsigned char *h = hdr;
    if (len != TW_PROTO_HDRLEN || h[0] != TW_PROTO_SIG0 ||
        h[1] != TW_PROTO_SIG1) {
        return TW_EPROTO;
    }
    if (h[2] != TW_PROTO_VERSION) {
        return TW_EVERSION;
    }
    if (h[3] == 0 || h[3] >= TW_CMD__MAX || !s_cmds[h[3]].name) {
        return TW_ECOMMAND;
    }
    *cmd = (tw_cmd_t)h[3];
    return 0;
}

void
tw_proto_header_make(tw_cmd_t cmd, unsigned char *hdr)
{
    hdr[0] = TW_PROTO_SIG0;
    hdr[1] = TW_PROTO_SIG1;
    hdr[2] = TW_PROTO_VERSION;
    hdr[3] = (unsigned char)cmd;
}

static int
s_is_uint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

static int
s_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static int
s_is_name(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 0 &&
           o->via.str.size <= TW_PROTO_MAX_NAME;
}

/* Check that `o` has the type and size `def` declares. Item arrays are
 * checked by the caller. */
static int
s_check(const msgpack_object *o, const s_field_def_t *def)
{
    switch (def->type) {
    case TW_T_UINT:
        return s_is_uint(o);
    case TW_T_INT:
        return s_is_int(o);
    case TW_T_INTN:
        return s_is_int(o) || o->type == MSGPACK_OBJECT_NIL;
    case TW_T_STR:
        return o->type == MSGPACK_OBJECT_STR && o->via.str.size <= def->max;
    case TW_T_BIN:
        return o->type == MSGPACK_OBJECT_BIN;
    case TW_T_ANY:
        return 1;
    case TW_T_STRS:
        if (o->type != MSGPACK_OBJECT_ARRAY ||
            o->via.array.size > TW_PROTO_MAX_HANDLERS) {
            return 0;
        }
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!s_is_name(&o->via.array.ptr[i])) {
                return 0;
            }
        }
        return 1;
    case TW_T_TAGS:
        if (o->type != MSGPACK_OBJECT_MAP ||
            o->via.map.size > TW_PROTO_MAX_TAGS) {
            return 0;
        }
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (!s_is_name(&kv->key) || kv->val.type != MSGPACK_OBJECT_STR ||
                kv->val.via.str.size > TW_PROTO_MAX_NAME) {
                return 0;
            }
        }
        return 1;
    case TW_T_UINTS:
        if (o->type != MSGPACK_OBJECT_ARRAY ||
            o->via.array.size > TW_PROTO_MAX_ITEMS) {
            return 0;
        }
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!s_is_uint(&o->via.array.ptr[i])) {
                return 0;
            }
        }
        return 1;
    case TW_T_ITEMS:
        return o->type == MSGPACK_OBJECT_ARRAY &&
               o->via.array.size <= TW_PROTO_MAX_ITEMS;
    }
    return 0;
}

/* 1 if the str `o` is clean text. */
static int
s_clean_str(const msgpack_object *o)
{
    return tw_utf8_clean(o->via.str.ptr, o->via.str.size);
}

/* 1 if every string anywhere in `o` (keys too) is clean text. The tree
 * is msgpack-c's, at most 32 levels deep, so recursion is bounded. */
static int
s_clean_any(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return s_clean_str(o);
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!s_clean_any(&o->via.array.ptr[i])) {
                return 0;
            }
        }
        return 1;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (!s_clean_any(&o->via.map.ptr[i].key) ||
                !s_clean_any(&o->via.map.ptr[i].val)) {
                return 0;
            }
        }
        return 1;
    default:
        return 1;
    }
}

/* 1 if the value `o` of a field `def` (already type-checked) passes its
 * text rule. Items are checked by their own fields' rules (s_index). */
static int
s_clean(const msgpack_object *o, const s_field_def_t *def)
{
    if (def->text != TW_TX_CLEAN) {
        return 1;
    }
    switch (def->type) {
    case TW_T_STR:
        return s_clean_str(o);
    case TW_T_STRS:
    case TW_T_TAGS:
    case TW_T_ANY:
        return s_clean_any(o);
    default:
        return 1;
    }
}

/* Index the keys of map `o` by the table `defs` into `out`. Returns 0, or
 * TW_EPROTO for a non-map, a non-string key, a repeated known key or a
 * value of the wrong type. Unknown keys are skipped. With `clean`, a key
 * that is not clean text, or a value that fails its field's text rule (an
 * unknown key's value: every string in it), sets *unclean. */
static int
s_index(const msgpack_object *o, const s_field_def_t *defs, size_t ndefs,
        const msgpack_object **out, int clean, int *unclean)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        return TW_EPROTO;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            return TW_EPROTO;
        }
        const char *k = kv->key.via.str.ptr;
        size_t kl = kv->key.via.str.size;
        const s_field_def_t *def = NULL;
        for (size_t f = 0; f < ndefs; f++) {
            if (defs[f].klen == kl && defs[f].key[0] == k[0] &&
                memcmp(defs[f].key, k, kl) == 0) {
                if (out[f] || !s_check(&kv->val, &defs[f])) {
                    return TW_EPROTO;
                }
                out[f] = &kv->val;
                def = &defs[f];
                break;
            }
        }
        if (clean && !*unclean &&
            (!s_clean_str(&kv->key) ||
             !(def ? s_clean(&kv->val, def) : s_clean_any(&kv->val)))) {
            *unclean = 1;
        }
    }
    return 0;
}

static int
s_has_required(const msgpack_object *const *f, size_t n, uint64_t req)
{
    for (size_t i = 0; i < n; i++) {
        if ((req & (1ULL << i)) && !f[i]) {
            return 0;
        }
    }
    return 1;
}

int
tw_msg_decode_clean(tw_msg_t *m, const void *hdr, size_t hlen,
                    const void *body, size_t blen, uint64_t clean)
{
    memset(m, 0, sizeof *m);
    int rc = tw_proto_header(hdr, hlen, &m->cmd);
    if (rc != 0) {
        return rc;
    }
    /* msgpack-c reserves room for a container's declared size before it
     * reads the elements, so without the walk a five-byte body (an
     * array32 header claiming 2^32-1 elements) would make it allocate
     * gigabytes. */
    if (!tw_mp_one(body, blen, TW_MP_DEPTH_DECODE)) {
        memset(m, 0, sizeof *m);
        return TW_EPROTO;
    }
    msgpack_unpacked_init(&m->up);
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack_next(&m->up, body, blen, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != blen) {
        msgpack_unpacked_destroy(&m->up);
        memset(m, 0, sizeof *m);
        return TW_EPROTO;
    }
    const s_cmd_def_t *def = &s_cmds[m->cmd];
    int text = (clean & TW_CMD_BIT(m->cmd)) != 0, unclean = 0;
    rc = s_index(&m->up.data, s_fields, TW_F__COUNT, m->f, text, &unclean);
    if (rc == 0 && !s_has_required(m->f, TW_F__COUNT, def->req)) {
        rc = TW_EPROTO;
    }
    const msgpack_object *items = m->f[TW_F_ITEMS];
    text = text && s_fields[TW_F_ITEMS].text == TW_TX_CLEAN;
    if (rc == 0 && items && items->via.array.size > 0) {
        m->nitems = items->via.array.size;
        m->items = msgpack_zone_malloc(m->up.zone,
                                       m->nitems * sizeof(tw_item_t));
        if (!m->items) {
            rc = TW_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < m->nitems; i++) {
            memset(&m->items[i], 0, sizeof m->items[i]);
            rc = s_index(&items->via.array.ptr[i], s_ifields, TW_I__COUNT,
                         m->items[i].f, text, &unclean);
            if (rc == 0 &&
                !s_has_required(m->items[i].f, TW_I__COUNT, def->ireq)) {
                rc = TW_EPROTO;
            }
        }
    }
    if (rc != 0) {
        msgpack_unpacked_destroy(&m->up);
        memset(m, 0, sizeof *m);
        return rc;
    }
    return unclean ? TW_EINVAL : 0;
}

int
tw_msg_decode(tw_msg_t *m, const void *hdr, size_t hlen, const void *body,
              size_t blen)
{
    return tw_msg_decode_clean(m, hdr, hlen, body, blen, 0);
}

void
tw_msg_release(tw_msg_t *m)
{
    if (m->cmd != TW_CMD_NONE) {
        msgpack_unpacked_destroy(&m->up);
    }
    memset(m, 0, sizeof *m);
}

static uint64_t
s_uint(const msgpack_object *o, uint64_t dflt)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64
                                                           : dflt;
}

static int64_t
s_int(const msgpack_object *o, int64_t dflt)
{
    if (!o) {
        return dflt;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        return o->via.i64;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)o->via.u64;
    }
    return dflt;
}

static const char *
s_str(const msgpack_object *o, size_t *len)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    if (len) {
        *len = o->via.str.size;
    }
    return o->via.str.ptr;
}

uint64_t
tw_msg_uint(const tw_msg_t *m, tw_field_t f, uint64_t dflt)
{
    return s_uint(m->f[f], dflt);
}

int64_t
tw_msg_int(const tw_msg_t *m, tw_field_t f, int64_t dflt)
{
    return s_int(m->f[f], dflt);
}

const char *
tw_msg_str(const tw_msg_t *m, tw_field_t f, size_t *len)
{
    return s_str(m->f[f], len);
}

uint64_t
tw_item_uint(const tw_item_t *it, tw_ifield_t f, uint64_t dflt)
{
    return s_uint(it->f[f], dflt);
}

int64_t
tw_item_int(const tw_item_t *it, tw_ifield_t f, int64_t dflt)
{
    return s_int(it->f[f], dflt);
}

const char *
tw_item_str(const tw_item_t *it, tw_ifield_t f, size_t *len)
{
    return s_str(it->f[f], len);
}

const void *
tw_item_bin(const tw_item_t *it, tw_ifield_t f, size_t *len)
{
    const msgpack_object *o = it->f[f];
    if (!o || o->type != MSGPACK_OBJECT_BIN) {
        *len = 0;
        return NULL;
    }
    *len = o->via.bin.size;
    return o->via.bin.ptr;
}

void
tw_enc_init(tw_enc_t *e)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
}

void
tw_enc_free(tw_enc_t *e)
{
    msgpack_sbuffer_destroy(&e->sb);
    msgpack_sbuffer_init(&e->sb);
}

void
tw_enc_cstr(tw_enc_t *e, const char *s)
{
    tw_enc_str(e, s, strlen(s));
}

size_t
tw_enc_text_header(unsigned char *hdr, const void *p, size_t n)
{
    int str = tw_utf8_valid(p, n);
    if (n < 32 && str) {
        hdr[0] = (unsigned char)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        hdr[0] = str ? 0xd9 : 0xc4;
        hdr[1] = (unsigned char)n;
        return 2;
    }
    if (n < 65536) {
        hdr[0] = str ? 0xda : 0xc5;
        hdr[1] = (unsigned char)(n >> 8);
        hdr[2] = (unsigned char)n;
        return 3;
    }
    hdr[0] = str ? 0xdb : 0xc6;
    hdr[1] = (unsigned char)(n >> 24);
    hdr[2] = (unsigned char)(n >> 16);
    hdr[3] = (unsigned char)(n >> 8);
    hdr[4] = (unsigned char)n;
    return 5;
}

void
tw_enc_key(tw_enc_t *e, tw_field_t f)
{
    tw_enc_str(e, s_fields[f].key, s_fields[f].klen);
}

void
tw_enc_ikey(tw_enc_t *e, tw_ifield_t f)
{
    tw_enc_str(e, s_ifields[f].key, s_ifields[f].klen);
}

void
tw_enc_chan_item(tw_enc_t *e, const tw_chan_item_t *ci)
{
    tw_enc_map(e, 2 + (ci->cr != 0) + (ci->d != NULL) + (ci->err != NULL));
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, ci->id);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_str(e, ci->ev, ci->evlen);
    if (ci->cr) {
        tw_enc_ikey(e, TW_I_CR);
        tw_enc_uint(e, ci->cr);
    }
    if (ci->d) {
        tw_enc_ikey(e, TW_I_D);
        tw_enc_bin(e, ci->d, ci->dlen);
    }
    if (ci->err) {
        tw_enc_ikey(e, TW_I_ERR);
        tw_enc_str(e, ci->err, ci->errlen);
    }
}

void
tw_enc_ikey_uint(tw_enc_t *e, tw_ifield_t f, uint64_t v)
{
    /* Item keys are short (fixstr); the value takes msgpack's smallest
     * unsigned form, as msgpack_pack_uint64 would write it. */
    unsigned char buf[1 + 31 + 9];
    size_t klen = s_ifields[f].klen, n = 0;
    buf[n++] = (unsigned char)(0xa0 | klen);
    memcpy(buf + n, s_ifields[f].key, klen);
    n += klen;
    int width;
    if (v < 128) {
        buf[n++] = (unsigned char)v;
        width = 0;
    } else if (v < (1ULL << 8)) {
        buf[n++] = 0xcc;
        width = 1;
    } else if (v < (1ULL << 16)) {
        buf[n++] = 0xcd;
        width = 2;
    } else if (v < (1ULL << 32)) {
        buf[n++] = 0xce;
        width = 4;
    } else {
        buf[n++] = 0xcf;
        width = 8;
    }
    for (int i = width - 1; i >= 0; i--) {
        buf[n++] = (unsigned char)(v >> (8 * i));
    }
    msgpack_sbuffer_write(&e->sb, (const char *)buf, n);
}

size_t
tw_enc_array_begin(tw_enc_t *e)
{
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    size_t off = e->sb.size;
    msgpack_sbuffer_write(&e->sb, hdr, sizeof hdr);
    return off;
}

void
tw_enc_array_end(tw_enc_t *e, size_t off, uint32_t n)
{
    unsigned char *p = (unsigned char *)e->sb.data + off + 1;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

void
tw_enc_not_active(tw_enc_t *e, const char *msg, uint64_t ha,
                  const char *active, int live)
{
    tw_enc_map(e, active && *active ? 5 : 4);
    tw_enc_key(e, TW_F_CODE);
    tw_enc_int(e, TW_ENOTACTIVE);
    tw_enc_key(e, TW_F_MSG);
    tw_enc_cstr(e, msg);
    tw_enc_key(e, TW_F_HA);
    tw_enc_uint(e, ha);
    if (active && *active) {
        tw_enc_key(e, TW_F_ACTIVE);
        tw_enc_cstr(e, active);
    }
    tw_enc_key(e, TW_F_LIVE);
    tw_enc_uint(e, (uint64_t)(live != 0));
}

static void
s_free_body(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int
tw_enc_frames(tw_enc_t *e, tw_cmd_t cmd, zmq_msg_t out[2])
{
    zmq_msg_init_size(&out[0], TW_PROTO_HDRLEN);
    tw_proto_header_make(cmd, zmq_msg_data(&out[0]));
    size_t size = e->sb.size;
    if (size == 0) {
        /* An empty body is still one msgpack map. */
        tw_enc_map(e, 0);
        size = e->sb.size;
    }
    char *data = msgpack_sbuffer_release(&e->sb);
    zmq_msg_init_data(&out[1], data, size, s_free_body, NULL);
    return 0;
}

void
tw_batch_init(tw_batch_t *b, unsigned extra)
{
    tw_enc_init(&b->enc);
    b->off = 0;
    b->n = 0;
    b->extra = extra;
    b->nhead = 0;
}

void
tw_batch_head(tw_batch_t *b, tw_field_t f, uint64_t v)
{
    int i = 0;
    while (i < b->nhead && b->head_f[i] != f) {
        i++;
    }
    if (i == 2) {
        return;
    }
    b->head_f[i] = f;
    b->head_v[i] = v;
    b->nhead += i == b->nhead;
}

void
tw_batch_free(tw_batch_t *b)
{
    tw_enc_free(&b->enc);
}

static void
s_batch_open(tw_batch_t *b)
{
    tw_enc_map(&b->enc, 1 + b->extra + (unsigned)b->nhead);
    for (int i = 0; i < b->nhead; i++) {
        tw_enc_key(&b->enc, b->head_f[i]);
        tw_enc_uint(&b->enc, b->head_v[i]);
    }
    tw_enc_key(&b->enc, TW_F_ITEMS);
    b->off = tw_enc_array_begin(&b->enc);
}

tw_enc_t *
tw_batch_item(tw_batch_t *b)
{
    if (b->enc.sb.size == 0) {
        s_batch_open(b);
    }
    b->n++;
    return &b->enc;
}

void
tw_batch_close_items(tw_batch_t *b)
{
    if (b->enc.sb.size == 0) {
        s_batch_open(b);
    }
    tw_enc_array_end(&b->enc, b->off, b->n);
}

int
tw_batch_frames(tw_batch_t *b, tw_cmd_t cmd, zmq_msg_t out[2])
{
    if (b->enc.sb.size == 0 || b->extra == 0) {
        tw_batch_close_items(b);
    }
    b->n = 0;
    return tw_enc_frames(&b->enc, cmd, out);
}
