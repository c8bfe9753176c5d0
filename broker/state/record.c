/*  broker/state/record.c - the store's record format (see record.h).
 *
 *  Encoders write each kind by hand (the task record, written at least
 *  once per task, straight into a reserved buffer with one-byte keys);
 *  decoders read every kind from one table per kind: key, type and the
 *  field it fills (offsetof), so a field is one row and a wrong type can
 *  only be refused, never written into the wrong field.
 */
#include "broker/state/record.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *s_db_names[TW_DB__COUNT] = {
    "meta", "tasks", "stations", "pools", "groups"};

void
tw_record_id_key(uint64_t id, unsigned char key[8])
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)(id & 0xff);
        id >>= 8;
    }
}

uint64_t
tw_record_key_id(const void *key, size_t klen)
{
    const unsigned char *k = key;
    uint64_t id = 0;
    for (size_t i = 0; i < klen && i < 8; i++) {
        id = id << 8 | k[i];
    }
    return id;
}

uint32_t
tw_record_crc(tw_db_t db, const void *key, size_t klen, const void *val,
             size_t vlen)
{
    unsigned char d = (unsigned char)db;
    uint32_t crc = tw_crc32c(0, &d, 1);
    crc = tw_crc32c(crc, key, klen);
    return tw_crc32c(crc, val, vlen);
}

void
tw_record_seal(unsigned char *out, tw_db_t db, const void *key, size_t klen,
       const void *val, size_t vlen)
{
    if (vlen) {
        memcpy(out, val, vlen);
    }
    uint32_t crc = tw_record_crc(db, key, klen, val, vlen);
    for (int i = 0; i < TW_STORE_CRC; i++) {
        out[vlen + (size_t)i] = (unsigned char)(crc >> (24 - 8 * i));
    }
}

int
tw_record_unseal(tw_db_t db, const void *key, size_t klen, const void *val,
                size_t *vlen)
{
    if (*vlen < TW_STORE_CRC) {
        return TW_EPROTO;
    }
    size_t n = *vlen - TW_STORE_CRC;
    const unsigned char *t = (const unsigned char *)val + n;
    uint32_t want = (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 |
                    (uint32_t)t[2] << 8 | t[3];
    if (tw_record_crc(db, key, klen, val, n) != want) {
        return TW_EPROTO;
    }
    *vlen = n;
    return 0;
}

int
tw_record_format_check(const char *path, const void *val, size_t vlen,
                      char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    uint64_t ver = 0;
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, val, vlen, &off) ==
                 MSGPACK_UNPACK_SUCCESS &&
             up.data.type == MSGPACK_OBJECT_MAP;
    const msgpack_object *v = ok ? tw_mp_get(&up.data, "v") : NULL;
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        ver = v->via.u64;
    }
    msgpack_unpacked_destroy(&up);
    if (!ok || ver == 0) {
        snprintf(why, wlen, "%s: the format record is unreadable (damaged; "
                 "try --salvage)", path);
        return TW_EPROTO;
    }
    if (ver == 1) {
        /* Version 1 had no checksums: the format record is the bare map. */
        snprintf(why, wlen,
                 "%s: store format version 1 (records without checksums); "
                 "this broker reads version %d: convert it with "
                 "'taskwheel-broker --salvage %s --into NEWDIR' (left "
                 "untouched)",
                 path, TW_STORE_VERSION, path);
        return TW_EVERSION;
    }
    if (ver != TW_STORE_VERSION) {
        snprintf(why, wlen,
                 "%s: store format version %llu, this broker reads version "
                 "%d only (left untouched)",
                 path, (unsigned long long)ver, TW_STORE_VERSION);
        return TW_EVERSION;
    }
    size_t n = vlen;
    if (tw_record_unseal(TW_DB_META, "format", 6, val, &n) != 0 || n != off) {
        snprintf(why, wlen, "%s: the format record is damaged (checksum; "
                 "try --salvage)", path);
        return TW_EPROTO;
    }
    return 0;
}

/* Read "format" and check it: 0, or an error with `why` set. */

const char *
tw_record_db_name(tw_db_t db)
{
    return db >= 0 && db < TW_DB__COUNT ? s_db_names[db] : "?";
}

/* ---- record codecs ---------------------------------------------------- */

/* Key/value helpers: one-letter and short keys keep records small. */
#define S_KU(e, k, v)                                                        \
    do {                                                                     \
        tw_enc_cstr(e, k);                                                   \
        tw_enc_uint(e, (uint64_t)(v));                                       \
    } while (0)
#define S_KI(e, k, v)                                                        \
    do {                                                                     \
        tw_enc_cstr(e, k);                                                   \
        tw_enc_int(e, (int64_t)(v));                                         \
    } while (0)

static void
s_kstr(tw_enc_t *e, const char *k, const char *v, size_t len)
{
    tw_enc_cstr(e, k);
    tw_enc_str(e, v ? v : "", v ? len : 0);
}

static void
s_kbin(tw_enc_t *e, const char *k, const void *v, size_t len)
{
    tw_enc_cstr(e, k);
    tw_enc_bin(e, v ? v : "", v ? len : 0);
}

/* Start decoding: the map, or NULL. */
static const msgpack_object *
s_dec_map(msgpack_unpacked *up, const void *buf, size_t len)
{
    if (msgpack_unpack_next(up, buf, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    return &up->data;
}


/* Read a value of a known type; 0 if the type is wrong. */
static int
s_u64(const msgpack_object *v, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return 0;
    }
    *out = v->via.u64;
    return 1;
}

static int
s_i64(const msgpack_object *v, int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = (int64_t)v->via.u64;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 1;
    }
    return 0;
}

static int
s_str(const msgpack_object *v, const char **p, size_t *len)
{
    if (v->type == MSGPACK_OBJECT_STR) {
        *p = v->via.str.ptr;
        *len = v->via.str.size;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_BIN) {
        *p = v->via.bin.ptr;
        *len = v->via.bin.size;
        return 1;
    }
    return 0;
}

/* The task record is written once or more per task, so it is encoded by
 * hand into one reserved buffer with small-integer keys (one byte each)
 * instead of a packer call per key. */
enum {
    S_T_ID = 0, S_T_SEQ, S_T_EP, S_T_SHASH, S_T_WORKER, S_T_TWALL, S_T_DUE,
    S_T_PRI, S_T_TO, S_T_RE, S_T_AT, S_T_STATE, S_T_CANCEL, S_T_IDENT,
    S_T_HANDLER, S_T_DATA, S_T_POOL, S_T_ERROR, S_T_KEY, S_T_GROUPS,
    S_T_AFTER, S_T_AMODE, S_T_AWR
};

static unsigned char *
s_w_uint(unsigned char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (unsigned char)v;
    } else if (v < 256) {
        *p++ = 0xcc;
        *p++ = (unsigned char)v;
    } else if (v < 65536) {
        *p++ = 0xcd;
        *p++ = (unsigned char)(v >> 8);
        *p++ = (unsigned char)v;
    } else if (v < (1ULL << 32)) {
        *p++ = 0xce;
        for (int i = 3; i >= 0; i--) {
            *p++ = (unsigned char)(v >> (8 * i));
        }
    } else {
        *p++ = 0xcf;
        for (int i = 7; i >= 0; i--) {
            *p++ = (unsigned char)(v >> (8 * i));
        }
    }
    return p;
}

static unsigned char *
s_w_int(unsigned char *p, int64_t v)
{
    if (v >= 0) {
        return s_w_uint(p, (uint64_t)v);
    }
    *p++ = 0xd3;
    for (int i = 7; i >= 0; i--) {
        *p++ = (unsigned char)((uint64_t)v >> (8 * i));
    }
    return p;
}

/* A str (bin = 0) or bin (bin = 1) of `len` bytes. */
static unsigned char *
s_w_raw(unsigned char *p, const void *v, size_t len, int bin)
{
    if (!bin && len < 32) {
        *p++ = (unsigned char)(0xa0 | len);
    } else if (len < 256) {
        *p++ = bin ? 0xc4 : 0xd9;
        *p++ = (unsigned char)len;
    } else if (len < 65536) {
        *p++ = bin ? 0xc5 : 0xda;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = bin ? 0xc6 : 0xdb;
        for (int i = 3; i >= 0; i--) {
            *p++ = (unsigned char)(len >> (8 * i));
        }
    }
    if (len) {
        memcpy(p, v, len);
    }
    return p + len;
}

size_t
tw_record_task_enc_max(const tw_record_task_t *r)
{
    size_t need = 20 * 10 + 6 * 5 + r->ident_len + r->handler_len +
                  r->data_len + r->pool_len + r->error_len + r->key_len +
                  r->after_len + 3 * 3;
    for (size_t i = 0; i < r->ngroups; i++) {
        need += 5 + r->glens[i];
    }
    return need;
}

void
tw_record_task_enc(tw_enc_t *e, const tw_record_task_t *r)
{
    tw_enc_clear(e);
    size_t need = tw_record_task_enc_max(r);
    if (e->sb.alloc < need) {
        /* The sbuffer's memory is libc's; tw_realloc is libc's realloc
         * (tests replace it only with wrappers around libc) that stops
         * the broker with a line rather than writing through NULL. */
        e->sb.data = tw_realloc(e->sb.data, need);
        e->sb.alloc = need;
    }
    e->sb.size = tw_record_task_enc_to((unsigned char *)e->sb.data, r);
}

size_t
tw_record_task_enc_to(unsigned char *out, const tw_record_task_t *r)
{
    unsigned char *p = out;
    /* Zero numbers and the default pool are left out (the decoder reads
     * them as 0 and "default"), so the count is patched at the end. */
    unsigned n = 0;
    *p++ = 0xde; /* map16: more keys than a fixmap holds */
    p += 2;
#define S_U(k, v)                                                            \
    do {                                                                     \
        if ((v) != 0) {                                                      \
            *p++ = (k);                                                      \
            p = s_w_uint(p, (uint64_t)(v));                                  \
            n++;                                                             \
        }                                                                    \
    } while (0)
    S_U(S_T_ID, r->id);
    S_U(S_T_SEQ, r->seq);
    S_U(S_T_EP, r->ep);
    S_U(S_T_SHASH, r->shash);
    S_U(S_T_WORKER, r->worker);
    S_U(S_T_TWALL, r->t_wall);
    S_U(S_T_DUE, r->due_wall);
    if (r->priority) {
        *p++ = S_T_PRI;
        p = s_w_int(p, r->priority);
        n++;
    }
    S_U(S_T_TO, r->timeout_ms);
    S_U(S_T_RE, r->retries);
    S_U(S_T_AT, r->attempt);
    S_U(S_T_STATE, r->state);
    S_U(S_T_CANCEL, r->cancel);
    S_U(S_T_AMODE, r->after_mode);
    S_U(S_T_AWR, r->after_wr);
#undef S_U
    if (r->ident && r->ident_len) {
        *p++ = S_T_IDENT;
        p = s_w_raw(p, r->ident, r->ident_len, 1);
        n++;
    }
    *p++ = S_T_HANDLER;
    p = s_w_raw(p, r->handler, r->handler_len, 0);
    n++;
    if (r->data && r->data_len) {
        *p++ = S_T_DATA;
        p = s_w_raw(p, r->data, r->data_len, 1);
        n++;
    }
    if (r->pool && r->pool_len &&
        !(r->pool_len == 7 && memcmp(r->pool, "default", 7) == 0)) {
        *p++ = S_T_POOL;
        p = s_w_raw(p, r->pool, r->pool_len, 0);
        n++;
    }
    if (r->error) {
        *p++ = S_T_ERROR;
        p = s_w_raw(p, r->error, r->error_len, 0);
        n++;
    }
    if (r->key) {
        *p++ = S_T_KEY;
        p = s_w_raw(p, r->key, r->key_len, 1);
        n++;
    }
    if (r->ngroups) {
        *p++ = S_T_GROUPS;
        *p++ = 0xdc; /* array16 */
        *p++ = (unsigned char)(r->ngroups >> 8);
        *p++ = (unsigned char)r->ngroups;
        for (size_t i = 0; i < r->ngroups; i++) {
            p = s_w_raw(p, r->gnames[i], r->glens[i], 0);
        }
        n++;
    }
    if (r->after && r->after_len) {
        *p++ = S_T_AFTER;
        p = s_w_raw(p, r->after, r->after_len, 1);
        n++;
    }
    out[1] = (unsigned char)(n >> 8);
    out[2] = (unsigned char)n;
    return (size_t)(p - out);
}


void
tw_record_station_enc(tw_enc_t *e, const tw_record_station_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 15 + (r->ck != NULL) + (r->code != NULL) +
                      (r->last_error != NULL));
    s_kstr(e, "sid", r->sid, r->sid_len);
    s_kstr(e, "h", r->handler, r->handler_len);
    s_kbin(e, "a", r->args, r->args_len);
    S_KU(e, "nx", r->next);
    S_KU(e, "wa", r->wanted);
    S_KU(e, "s", r->state);
    S_KU(e, "rs", r->restart);
    S_KU(e, "pl", r->placement);
    S_KU(e, "iv", r->interval_ms);
    S_KU(e, "to", r->timeout_ms);
    S_KU(e, "rn", r->restarts);
    S_KU(e, "ep", r->epoch);
    S_KU(e, "it", r->iterations);
    tw_enc_cstr(e, "tg");
    tw_enc_map(e, r->ntags / 2);
    for (size_t i = 0; i + 1 < r->ntags; i += 2) {
        tw_enc_cstr(e, r->tags[i]);
        tw_enc_cstr(e, r->tags[i + 1]);
    }
    S_KU(e, "v", 1);
    if (r->ck) {
        s_kbin(e, "ck", r->ck, r->ck_len);
    }
    if (r->code) {
        s_kstr(e, "cd", r->code, r->code_len);
    }
    if (r->last_error) {
        s_kstr(e, "le", r->last_error, r->last_error_len);
    }
}


void
tw_record_pool_enc(tw_enc_t *e, const tw_record_pool_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 7);
    s_kstr(e, "n", r->name, r->name_len);
    S_KU(e, "sz", r->size);
    S_KU(e, "en", r->ended);
    S_KU(e, "ca", r->cancelled);
    S_KU(e, "ds", r->next_dseq);
    S_KU(e, "lk", r->locked);
    S_KU(e, "cl", r->closed);
}


void
tw_record_group_enc(tw_enc_t *e, const tw_record_group_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 10);
    s_kstr(e, "p", r->pool, r->pool_len);
    s_kstr(e, "n", r->name, r->name_len);
    S_KI(e, "li", r->limit);
    S_KI(e, "ca", r->calls);
    S_KU(e, "ad", r->admitted);
    S_KU(e, "en", r->ended);
    S_KU(e, "cn", r->cancelled);
    S_KU(e, "fu", r->full);
    S_KU(e, "bl", r->before_lock);
    S_KU(e, "v", 1);
}


size_t
tw_record_group_key(char *key, const char *pool, size_t plen,
                   const char *group, size_t glen)
{
    memcpy(key, pool, plen);
    key[plen] = '\0';
    memcpy(key + plen + 1, group, glen);
    return plen + 1 + glen;
}

/* ---- counters --------------------------------------------------------- */

/* ---- decoding, from one table per kind of record ----------------------- */

/* How a known key's value is read into its field. */
typedef enum {
    S_U64,   /* uint */
    S_I64,   /* int */
    S_U32,   /* uint, kept in a uint32_t (truncated) */
    S_U16,   /* uint, kept in a uint16_t (truncated) */
    S_U8,    /* uint, kept in a uint8_t (truncated) */
    S_STATE, /* uint up to TW_ST_BLOCKED, kept in a uint8_t */
    S_STR,   /* str or bin: pointer and length */
    S_BYTES, /* str or bin: pointer (NULL when empty) and length */
    S_STRS,  /* array of str: the array object and its length */
    S_TAGS   /* map of str to str: the map object (NULL when empty) */
} s_kind_t;

/* One known key: an integer (task records) or a string. `off` is the
 * field's offset in the record struct; `len_off` that of its length
 * (S_STR, S_BYTES: size_t; S_STRS: the count). A key read sets `have`
 * in the decoder's mask. */
typedef struct {
    int ikey;
    const char *skey;
    s_kind_t kind;
    size_t off, len_off;
    unsigned have;
} s_field_t;

#define S_NUM(k, kind, type, f) {-1, k, kind, offsetof(type, f), 0, 0}
#define S_TXT(k, kind, type, f, have)                                        \
    {-1, k, kind, offsetof(type, f), offsetof(type, f##_len), have}

/* Read `v` into the field `f` of record `r`; 0 if its type is wrong. */
static int
s_read(const s_field_t *f, const msgpack_object *v, char *r)
{
    uint64_t u = 0;
    void *p = r + f->off;
    switch (f->kind) {
    case S_U64:
        return s_u64(v, p);
    case S_I64:
        return s_i64(v, p);
    case S_U32:
    case S_U16:
    case S_U8:
    case S_STATE:
        if (!s_u64(v, &u) || (f->kind == S_STATE && u > TW_ST_BLOCKED)) {
            return 0;
        }
        if (f->kind == S_U32) {
            *(uint32_t *)p = (uint32_t)u;
        } else if (f->kind == S_U16) {
            *(uint16_t *)p = (uint16_t)u;
        } else {
            *(uint8_t *)p = (uint8_t)u;
        }
        return 1;
    case S_STR:
    case S_BYTES: {
        size_t *len = (size_t *)(r + f->len_off);
        const char *s;
        if (!s_str(v, &s, len)) {
            return 0;
        }
        *(const char **)p = f->kind == S_BYTES && !*len ? NULL : s;
        return 1;
    }
    case S_STRS:
        if (v->type != MSGPACK_OBJECT_ARRAY) {
            return 0;
        }
        for (uint32_t j = 0; j < v->via.array.size; j++) {
            if (v->via.array.ptr[j].type != MSGPACK_OBJECT_STR) {
                return 0;
            }
        }
        *(const msgpack_object **)p = v;
        *(size_t *)(r + f->len_off) = v->via.array.size;
        return 1;
    case S_TAGS:
        if (v->type != MSGPACK_OBJECT_MAP) {
            return 0;
        }
        for (uint32_t j = 0; j < v->via.map.size; j++) {
            if (v->via.map.ptr[j].key.type != MSGPACK_OBJECT_STR ||
                v->via.map.ptr[j].val.type != MSGPACK_OBJECT_STR) {
                return 0;
            }
        }
        *(const msgpack_object **)p = v->via.map.size ? v : NULL;
        return 1;
    }
    return 0;
}

/* The field of key `k` among fs[0..n), or NULL: a key this version does
 * not know (a later version's), which is skipped. */
static const s_field_t *
s_field(const s_field_t *fs, size_t n, const msgpack_object *k)
{
    for (size_t i = 0; i < n; i++) {
        if (fs[i].skey ? k->type == MSGPACK_OBJECT_STR &&
                             k->via.str.size == strlen(fs[i].skey) &&
                             memcmp(k->via.str.ptr, fs[i].skey,
                                    k->via.str.size) == 0
                       : k->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                             k->via.u64 == (uint64_t)fs[i].ikey) {
            return &fs[i];
        }
    }
    return NULL;
}

/* Decode the map in buf[0..len) into record `r` (`size` bytes, zeroed
 * first) by the table fs[0..n). Returns 0 with the keys read in *have, or
 * TW_EPROTO (not a map, or a known key of the wrong type). */
static int
s_decode(msgpack_unpacked *up, const void *buf, size_t len,
         const s_field_t *fs, size_t n, void *r, size_t size, unsigned *have)
{
    memset(r, 0, size);
    *have = 0;
    const msgpack_object *m = s_dec_map(up, buf, len);
    if (!m) {
        return TW_EPROTO;
    }
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const s_field_t *f = s_field(fs, n, &m->via.map.ptr[i].key);
        if (f && !s_read(f, &m->via.map.ptr[i].val, r)) {
            return TW_EPROTO;
        }
        *have |= f ? f->have : 0;
    }
    return 0;
}

#define S_DECODE(up, buf, len, fs, r, have)                                  \
    s_decode(up, buf, len, fs, sizeof fs / sizeof fs[0], r, sizeof *(r),    \
             have)

#define S_T(k, kind, f)                                                      \
    {S_T_##k, NULL, kind, offsetof(tw_record_task_t, f), 0, 0}
#define S_TT(k, kind, f, have)                                               \
    {S_T_##k, NULL, kind, offsetof(tw_record_task_t, f),                     \
     offsetof(tw_record_task_t, f##_len), have}

static const s_field_t s_task_fields[] = {
    {S_T_ID, NULL, S_U64, offsetof(tw_record_task_t, id), 0, 1},
    S_T(SEQ, S_U64, seq),
    S_T(EP, S_U64, ep),
    S_T(SHASH, S_U64, shash),
    S_T(WORKER, S_U64, worker),
    S_T(TWALL, S_U64, t_wall),
    S_T(DUE, S_U64, due_wall),
    S_T(PRI, S_I64, priority),
    S_T(TO, S_U32, timeout_ms),
    S_T(RE, S_U16, retries),
    S_T(AT, S_U16, attempt),
    S_T(STATE, S_STATE, state),
    S_T(CANCEL, S_U8, cancel),
    S_TT(IDENT, S_BYTES, ident, 0),
    S_TT(HANDLER, S_STR, handler, 2),
    S_TT(DATA, S_BYTES, data, 0),
    S_TT(POOL, S_STR, pool, 0),
    S_TT(ERROR, S_STR, error, 0),
    S_TT(KEY, S_STR, key, 0),
    {S_T_GROUPS, NULL, S_STRS, offsetof(tw_record_task_t, gobj),
     offsetof(tw_record_task_t, ngroups), 0},
    S_TT(AFTER, S_BYTES, after, 0),
    S_T(AMODE, S_U8, after_mode),
    S_T(AWR, S_U8, after_wr),
};

int
tw_record_task_state_ok(const tw_record_task_t *r)
{
    if (r->state == TW_ST_BLOCKED) {
        return r->after_len && r->after_len % 8 == 0 &&
               r->after_len / 8 <= 65536 && r->after_mode <= 1;
    }
    return r->state <= TW_ST_RUNNING;
}

int
tw_record_task_dec(msgpack_unpacked *up, const void *buf, size_t len,
                   tw_record_task_t *r)
{
    unsigned have;
    int rc = S_DECODE(up, buf, len, s_task_fields, r, &have);
    return rc == 0 && have == 3 && r->id ? 0 : TW_EPROTO;
}

static const s_field_t s_station_fields[] = {
    S_TXT("sid", S_STR, tw_record_station_t, sid, 1),
    S_TXT("h", S_STR, tw_record_station_t, handler, 2),
    S_TXT("a", S_BYTES, tw_record_station_t, args, 0),
    S_TXT("ck", S_STR, tw_record_station_t, ck, 0),
    S_TXT("cd", S_STR, tw_record_station_t, code, 0),
    S_TXT("le", S_STR, tw_record_station_t, last_error, 0),
    S_NUM("tg", S_TAGS, tw_record_station_t, tobj),
    S_NUM("ep", S_U64, tw_record_station_t, epoch),
    S_NUM("it", S_U64, tw_record_station_t, iterations),
    S_NUM("nx", S_U8, tw_record_station_t, next),
    S_NUM("wa", S_U8, tw_record_station_t, wanted),
    S_NUM("s", S_U8, tw_record_station_t, state),
    S_NUM("rs", S_U8, tw_record_station_t, restart),
    S_NUM("pl", S_U8, tw_record_station_t, placement),
    S_NUM("iv", S_U32, tw_record_station_t, interval_ms),
    S_NUM("to", S_U32, tw_record_station_t, timeout_ms),
    S_NUM("rn", S_U32, tw_record_station_t, restarts),
};

int
tw_record_station_dec(msgpack_unpacked *up, const void *buf, size_t len,
                      tw_record_station_t *r)
{
    unsigned have;
    int rc = S_DECODE(up, buf, len, s_station_fields, r, &have);
    return rc == 0 && have == 3 && r->sid_len ? 0 : TW_EPROTO;
}

static const s_field_t s_pool_fields[] = {
    S_TXT("n", S_STR, tw_record_pool_t, name, 1),
    S_NUM("sz", S_U64, tw_record_pool_t, size),
    S_NUM("en", S_U64, tw_record_pool_t, ended),
    S_NUM("ca", S_U64, tw_record_pool_t, cancelled),
    S_NUM("ds", S_U64, tw_record_pool_t, next_dseq),
    S_NUM("lk", S_U8, tw_record_pool_t, locked),
    S_NUM("cl", S_U8, tw_record_pool_t, closed),
};

int
tw_record_pool_dec(msgpack_unpacked *up, const void *buf, size_t len,
                   tw_record_pool_t *r)
{
    unsigned have;
    int rc = S_DECODE(up, buf, len, s_pool_fields, r, &have);
    return rc == 0 && have == 1 && r->name_len ? 0 : TW_EPROTO;
}

static const s_field_t s_group_fields[] = {
    S_TXT("p", S_STR, tw_record_group_t, pool, 1),
    S_TXT("n", S_STR, tw_record_group_t, name, 2),
    S_NUM("li", S_I64, tw_record_group_t, limit),
    S_NUM("ca", S_I64, tw_record_group_t, calls),
    S_NUM("ad", S_U64, tw_record_group_t, admitted),
    S_NUM("en", S_U64, tw_record_group_t, ended),
    S_NUM("cn", S_U64, tw_record_group_t, cancelled),
    S_NUM("fu", S_U8, tw_record_group_t, full),
    S_NUM("bl", S_U8, tw_record_group_t, before_lock),
};

int
tw_record_group_dec(msgpack_unpacked *up, const void *buf, size_t len,
                    tw_record_group_t *r)
{
    unsigned have;
    int rc = S_DECODE(up, buf, len, s_group_fields, r, &have);
    return rc == 0 && have == 3 && r->name_len ? 0 : TW_EPROTO;
}

static const s_field_t s_counter_fields[] = {
    {-1, "id", S_U64, 0, 0, 0},
    {-1, "ep", S_U64, sizeof(uint64_t), 0, 0},
};

void
tw_record_counters_enc(tw_enc_t *e, uint64_t next_id, uint64_t next_ep)
{
    tw_enc_clear(e);
    tw_enc_map(e, 2);
    S_KU(e, "id", next_id);
    S_KU(e, "ep", next_ep);
}

int
tw_record_counters_dec(const void *buf, size_t len, uint64_t *next_id,
                       uint64_t *next_ep)
{
    uint64_t v[2] = {*next_id, *next_ep};
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *m = s_dec_map(&up, buf, len);
    int rc = m ? 0 : TW_EPROTO;
    for (uint32_t i = 0; m && i < m->via.map.size; i++) {
        const s_field_t *f = s_field(s_counter_fields, 2,
                                     &m->via.map.ptr[i].key);
        if (f && !s_read(f, &m->via.map.ptr[i].val, (char *)v)) {
            rc = TW_EPROTO;
        }
    }
    msgpack_unpacked_destroy(&up);
    *next_id = v[0];
    *next_ep = v[1];
    return rc;
}
