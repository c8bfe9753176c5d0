/*  client/cli/json.c - JSON <-> msgpack conversion (see json.h for the
 *  mapping rules).
 *
 *  Both directions recurse over the value. JSON input is bounded by
 *  jansson's parser depth and by TW_JSON_MAX_DEPTH; msgpack input comes from
 *  msgpack_unpack_next, whose decoder refuses more than 32 levels, and the
 *  converter stops at S_MAX_DEPTH anyway in case an object is built by
 *  hand.
 */
#include "client/cli/json.h"

#include "common/error.h"
#include "common/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH 64 /* msgpack -> JSON: deeper levels become null */

static const char s_hex[] = "0123456789abcdef";

/* ------------------------------------------------------------------ */
/* JSON -> msgpack                                                    */

/* If `v` is {"$bin": "<hex>"} with valid hex, set *hex / *len and return
 * 1; otherwise 0. */
static int
s_is_bin(json_t *v, const char **hex, size_t *len)
{
    if (json_object_size(v) != 1) {
        return 0;
    }
    json_t *s = json_object_get(v, "$bin");
    if (!s || !json_is_string(s)) {
        return 0;
    }
    const char *p = json_string_value(s);
    size_t n = json_string_length(s);
    if (n % 2 != 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (tw_hex_digit(p[i]) < 0) {
            return 0;
        }
    }
    *hex = p;
    *len = n;
    return 1;
}

static void
s_pack_bin(msgpack_packer *pk, const char *hex, size_t hexlen)
{
    unsigned char buf[256];
    size_t n = hexlen / 2;
    msgpack_pack_bin(pk, n);
    for (size_t i = 0; i < n; i += sizeof buf) {
        size_t chunk = n - i < sizeof buf ? n - i : sizeof buf;
        for (size_t j = 0; j < chunk; j++) {
            const char *h = hex + 2 * (i + j);
            buf[j] = (unsigned char)(tw_hex_digit(h[0]) << 4 | tw_hex_digit(h[1]));
        }
        msgpack_pack_bin_body(pk, buf, chunk);
    }
}

static int
s_too_deep(char *err, size_t errlen)
{
    if (err && errlen) {
        snprintf(err, errlen,
                 "nested deeper than %d arrays and objects (msgpack limit)",
                 TW_JSON_MAX_DEPTH);
    }
    return TW_E2BIG;
}

/* `depth` counts the arrays and objects around `v`. */
static int
s_pack(msgpack_packer *pk, json_t *v, int depth, char *err, size_t errlen)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        return 0;
    case JSON_STRING: {
        size_t n = json_string_length(v);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, json_string_value(v), n);
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (depth >= TW_JSON_MAX_DEPTH) {
            return s_too_deep(err, errlen);
        }
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
            int rc = s_pack(pk, json_array_get(v, i), depth + 1, err,
                            errlen);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *hex;
        size_t hexlen;
        if (s_is_bin(v, &hex, &hexlen)) {
            s_pack_bin(pk, hex, hexlen);
            return 0;
        }
        size_t n = json_object_size(v);
        if (depth >= TW_JSON_MAX_DEPTH) {
            return s_too_deep(err, errlen);
        }
        msgpack_pack_map(pk, n);
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            const char *k = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            msgpack_pack_str(pk, klen);
            msgpack_pack_str_body(pk, k, klen);
            int rc = s_pack(pk, json_object_iter_value(it), depth + 1, err,
                            errlen);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    }
    msgpack_pack_nil(pk);
    return 0;
}

int
tw_json_pack(msgpack_packer *pk, const json_t *v, char *err, size_t errlen)
{
    /* jansson's accessors take non-const pointers but do not modify. */
    return s_pack(pk, (json_t *)v, 0, err, errlen);
}

int
tw_json_to_msgpack(const char *text, void **out, size_t *len, char *err,
                   size_t errlen)
{
    json_error_t je;
    *out = NULL;
    *len = 0;
    if (!text) {
        snprintf(err, errlen, "no text");
        return TW_EINVAL;
    }
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        snprintf(err, errlen, "%s (line %d, column %d)", je.text, je.line,
                 je.column);
        return TW_EINVAL;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = s_pack(&pk, v, 0, err, errlen);
    json_decref(v);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    *len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return *out ? 0 : TW_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* msgpack -> JSON                                                    */

static json_t *
s_real(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

static char *
s_tohex(const void *p, size_t n)
{
    const unsigned char *b = p;
    char *s = malloc(2 * n + 1);
    if (!s) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = s_hex[b[i] >> 4];
        s[2 * i + 1] = s_hex[b[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

/* {"$bin": "<hex of p>"} */
static json_t *
s_hexobj(const void *p, size_t n)
{
    char *hex = s_tohex(p, n);
    if (!hex) {
        return NULL;
    }
    json_t *o = json_object();
    if (o && json_object_set_new(o, "$bin", json_stringn(hex, 2 * n)) != 0) {
        json_decref(o);
        o = NULL;
    }
    free(hex);
    return o;
}

static json_t *s_from(const msgpack_object *o, int depth);

/* Add `key` -> `val` to `obj`, stringifying keys that are not strings.
 * Takes `val`. Returns 0 or -1. */
static int
s_set_key(json_t *obj, const msgpack_object *key, json_t *val, int depth)
{
    json_t *k = s_from(key, depth);
    int rc = -1;
    if (!k) {
        json_decref(val);
        return -1;
    }
    if (json_is_string(k)) {
        rc = json_object_setn_new(obj, json_string_value(k),
                                  json_string_length(k), val);
    } else {
        char *s = tw_json_dumps(k);
        if (s) {
            rc = json_object_set_new(obj, s, val);
            free(s);
        } else {
            json_decref(val);
        }
    }
    json_decref(k);
    return rc;
}

static json_t *
s_from(const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            return json_real((double)o->via.u64);
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return s_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        if (o->via.str.size == 0) {
            return json_string(""); /* the pointer may be NULL */
        }
        json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
        return s ? s : s_hexobj(o->via.str.ptr, o->via.str.size);
    }
    case MSGPACK_OBJECT_BIN:
        return s_hexobj(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT: {
        char *hex = s_tohex(o->via.ext.ptr, o->via.ext.size);
        json_t *e = hex ? json_pack("{s:i, s:s}", "$ext",
                                    (int)o->via.ext.type, "data", hex)
                        : NULL;
        free(hex);
        return e;
    }
    case MSGPACK_OBJECT_ARRAY: {
        if (depth >= S_MAX_DEPTH) {
            return json_null();
        }
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            if (json_array_append_new(a, s_from(&o->via.array.ptr[i],
                                                depth + 1)) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        if (depth >= S_MAX_DEPTH) {
            return json_null();
        }
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *val = s_from(&kv->val, depth + 1);
            if (!val || s_set_key(m, &kv->key, val, depth + 1) != 0) {
                json_decref(m);
                m = NULL;
            }
        }
        return m;
    }
    }
    return json_null();
}

json_t *
tw_json_from_object(const msgpack_object *o)
{
    return s_from(o, 0);
}

json_t *
tw_json_from_msgpack(const void *buf, size_t len)
{
    msgpack_unpacked up;
    size_t off = 0;
    json_t *v = NULL;
    if (!buf || len == 0) {
        return NULL;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len) {
        v = s_from(&up.data, 0);
    }
    msgpack_unpacked_destroy(&up);
    return v;
}

/* ------------------------------------------------------------------ */
/* Printing                                                           */

/* The fewest significant digits (1-17) that read back as `d`. */
static int
s_digits(double d)
{
    char buf[40];
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, d);
        if (strtod(buf, NULL) == d) {
            return p;
        }
    }
    return 17;
}

/* A growing output buffer; `failed` sticks after an allocation failure. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int failed;
} s_buf_t;

static void
s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A string, escaped by jansson (which knows JSON's escaping rules). */
static void
s_put_string(s_buf_t *b, const char *s, size_t n)
{
    json_t *j = json_stringn_nocheck(s, n);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (t) {
        s_put(b, t, strlen(t));
    } else {
        b->failed = 1;
    }
    free(t);
    json_decref(j);
}

static void
s_dump(s_buf_t *b, json_t *v)
{
    char num[48];
    switch (json_typeof(v)) {
    case JSON_NULL:
        s_put(b, "null", 4);
        return;
    case JSON_TRUE:
        s_put(b, "true", 4);
        return;
    case JSON_FALSE:
        s_put(b, "false", 5);
        return;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        s_put(b, num, strlen(num));
        return;
    case JSON_REAL: {
        double d = json_real_value(v);
        snprintf(num, sizeof num, "%.*g", s_digits(d), d);
        if (!strpbrk(num, ".eE")) {
            strcat(num, ".0"); /* keep it a real when read back */
        }
        s_put(b, num, strlen(num));
        return;
    }
    case JSON_STRING:
        s_put_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_ARRAY:
        s_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                s_put(b, ",", 1);
            }
            s_dump(b, json_array_get(v, i));
        }
        s_put(b, "]", 1);
        return;
    case JSON_OBJECT: {
        int first = 1;
        s_put(b, "{", 1);
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            if (!first) {
                s_put(b, ",", 1);
            }
            first = 0;
            s_put_string(b, json_object_iter_key(it),
                         json_object_iter_key_len(it));
            s_put(b, ":", 1);
            s_dump(b, json_object_iter_value(it));
        }
        s_put(b, "}", 1);
        return;
    }
    }
}

char *
tw_json_dumps(const json_t *v)
{
    s_buf_t b = {NULL, 0, 0, 0};
    s_dump(&b, (json_t *)v);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
