/*  proto/jsonw.c - JSON text from msgpack (see jsonw.h).
 *
 *  Every byte goes through s_put, which enforces the limit: a piece that
 *  does not fit whole is not written, except plain string text, which is
 *  cut at the last character boundary that fits. Strings are walked
 *  with tw_utf8_seq, so escaping, the U+FFFD replacement and the cut
 *  all see the same characters. Payload bytes pass tw_mp_one
 *  (proto/mpwalk.h) before msgpack-c unpacks them, so a few bytes
 *  announcing a huge array cannot make it reserve gigabytes.
 */
#include "proto/jsonw.h"

#include "common/alloc.h"
#include "common/utf8.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
tw_jsonw_init(tw_jsonw_t *w, size_t limit)
{
    memset(w, 0, sizeof *w);
    w->limit = limit;
}

void
tw_jsonw_free(tw_jsonw_t *w)
{
    tw_free(w->p);
    memset(w, 0, sizeof *w);
}

char *
tw_jsonw_take(tw_jsonw_t *w, size_t *len)
{
    char *p = w->p ? w->p : tw_strdup("");
    *len = w->len;
    memset(w, 0, sizeof *w);
    return p;
}

/* Room for `n` more bytes and a NUL. */
static void
s_grow(tw_jsonw_t *w, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) {
            cap *= 2;
        }
        w->p = tw_realloc(w->p, cap);
        w->cap = cap;
    }
}

/* Append `n` bytes whole, or set cut. Returns 1 if written. */
static int
s_put(tw_jsonw_t *w, const char *s, size_t n)
{
    if (w->cut) {
        return 0;
    }
    if (w->limit && w->len + n > w->limit) {
        w->cut = 1;
        return 0;
    }
    s_grow(w, n);
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
    return 1;
}

void
tw_jsonw_raw(tw_jsonw_t *w, const char *s, size_t n)
{
    s_put(w, s, n);
}

void
tw_jsonw_lit(tw_jsonw_t *w, const char *s)
{
    s_put(w, s, strlen(s));
}

/* Append the run s[0..n) of characters that need no escaping; if it
 * does not fit, as much of it as ends on a character boundary. */
static void
s_plain(tw_jsonw_t *w, const char *s, size_t n)
{
    if (n == 0 || w->cut) {
        return;
    }
    if (w->limit && w->len + n > w->limit) {
        size_t room = w->limit - w->len;
        while (room > 0 && ((unsigned char)s[room] & 0xc0) == 0x80) {
            room--;
        }
        s_put(w, s, room);
        w->cut = 1;
        return;
    }
    s_put(w, s, n);
}

void
tw_jsonw_str(tw_jsonw_t *w, const char *s, size_t n)
{
    if (n == 0) {
        s_put(w, "\"\"", 2); /* s may be NULL (msgpack-c's empty str) */
        return;
    }
    if (!s_put(w, "\"", 1)) {
        return;
    }
    size_t run = 0; /* start of the pending plain run */
    size_t i = 0;
    while (i < n && !w->cut) {
        unsigned char c = (unsigned char)s[i];
        size_t len = tw_utf8_seq(s + i, n - i);
        const char *esc = NULL;
        char buf[8];
        if (len == 0) {
            esc = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
            len = 1;
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(buf, sizeof buf, "\\u%04x", c);
            esc = buf;
        } else if (len == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
                   ((unsigned char)s[i + 2] == 0xa8 ||
                    (unsigned char)s[i + 2] == 0xa9)) {
            /* U+2028, U+2029: valid JSON, but not in JavaScript source. */
            snprintf(buf, sizeof buf, "\\u202%c",
                     (unsigned char)s[i + 2] == 0xa8 ? '8' : '9');
            esc = buf;
        }
        if (esc) {
            s_plain(w, s + run, i - run);
            s_put(w, esc, strlen(esc));
            run = i + len;
        }
        i += len;
    }
    s_plain(w, s + run, i - run);
    s_put(w, "\"", 1);
}

void
tw_jsonw_key(tw_jsonw_t *w, const char *key)
{
    tw_jsonw_str(w, key, strlen(key));
    s_put(w, ":", 1);
}

void
tw_jsonw_uint(tw_jsonw_t *w, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, v);
    s_put(w, buf, (size_t)n);
}

void
tw_jsonw_int(tw_jsonw_t *w, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    s_put(w, buf, (size_t)n);
}

void
tw_jsonw_double(tw_jsonw_t *w, double v)
{
    if (!isfinite(v)) {
        tw_jsonw_null(w);
        return;
    }
    char buf[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    s_put(w, buf, (size_t)n);
}

void
tw_jsonw_bool(tw_jsonw_t *w, int v)
{
    tw_jsonw_lit(w, v ? "true" : "false");
}

void
tw_jsonw_null(tw_jsonw_t *w)
{
    tw_jsonw_lit(w, "null");
}

static void
s_hex(tw_jsonw_t *w, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    char buf[64];
    size_t k = 0;
    s_put(w, "\"", 1);
    for (size_t i = 0; i < n && !w->cut; i++) {
        buf[k++] = digits[b[i] >> 4];
        buf[k++] = digits[b[i] & 15];
        if (k == sizeof buf) {
            s_put(w, buf, k);
            k = 0;
        }
    }
    s_put(w, buf, k);
    s_put(w, "\"", 1);
}

void
tw_jsonw_bin(tw_jsonw_t *w, const void *p, size_t n)
{
    tw_jsonw_lit(w, "{\"$bin\":");
    s_hex(w, p, n);
    tw_jsonw_lit(w, "}");
}

static int
s_listed(const char *const *keys, const msgpack_object *k)
{
    if (!keys || k->type != MSGPACK_OBJECT_STR) {
        return 0;
    }
    for (; *keys; keys++) {
        if (strlen(*keys) == k->via.str.size &&
            memcmp(*keys, k->via.str.ptr, k->via.str.size) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A map key: a string as itself, anything else as its JSON text. */
static void
s_key(tw_jsonw_t *w, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR &&
        tw_utf8_valid(k->via.str.ptr, k->via.str.size)) {
        tw_jsonw_str(w, k->via.str.ptr, k->via.str.size);
    } else {
        tw_jsonw_t t;
        tw_jsonw_init(&t, 0);
        tw_jsonw_object(&t, k, NULL);
        tw_jsonw_str(w, t.p ? t.p : "", t.len);
        tw_jsonw_free(&t);
    }
    s_put(w, ":", 1);
}

void
tw_jsonw_object(tw_jsonw_t *w, const msgpack_object *o,
                const tw_jsonw_opts_t *opts)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        tw_jsonw_null(w);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        tw_jsonw_bool(w, o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        tw_jsonw_uint(w, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        tw_jsonw_int(w, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        tw_jsonw_double(w, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        if (tw_utf8_valid(o->via.str.ptr, o->via.str.size)) {
            tw_jsonw_str(w, o->via.str.ptr, o->via.str.size);
        } else {
            tw_jsonw_bin(w, o->via.str.ptr, o->via.str.size);
        }
        break;
    case MSGPACK_OBJECT_BIN:
        tw_jsonw_bin(w, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        tw_jsonw_lit(w, "{\"$ext\":");
        tw_jsonw_int(w, o->via.ext.type);
        tw_jsonw_lit(w, ",\"data\":");
        s_hex(w, o->via.ext.ptr, o->via.ext.size);
        tw_jsonw_lit(w, "}");
        break;
    case MSGPACK_OBJECT_ARRAY:
        tw_jsonw_lit(w, "[");
        for (uint32_t i = 0; i < o->via.array.size && !w->cut; i++) {
            if (i) {
                tw_jsonw_lit(w, ",");
            }
            tw_jsonw_object(w, &o->via.array.ptr[i], opts);
        }
        tw_jsonw_lit(w, "]");
        break;
    case MSGPACK_OBJECT_MAP:
        tw_jsonw_lit(w, "{");
        for (uint32_t i = 0; i < o->via.map.size && !w->cut; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i) {
                tw_jsonw_lit(w, ",");
            }
            s_key(w, &kv->key);
            if (kv->val.type == MSGPACK_OBJECT_BIN && opts &&
                s_listed(opts->payload_keys, &kv->key)) {
                tw_jsonw_msgpack(w, kv->val.via.bin.ptr, kv->val.via.bin.size,
                                 NULL);
            } else if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                       opts && s_listed(opts->hex_keys, &kv->key)) {
                char buf[24];
                int n = snprintf(buf, sizeof buf, "\"%016" PRIx64 "\"",
                                 kv->val.via.u64);
                s_put(w, buf, (size_t)n);
            } else {
                tw_jsonw_object(w, &kv->val, opts);
            }
        }
        tw_jsonw_lit(w, "}");
        break;
    default:
        tw_jsonw_null(w);
        break;
    }
}

void
tw_jsonw_msgpack(tw_jsonw_t *w, const void *buf, size_t len,
                 const tw_jsonw_opts_t *opts)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (tw_mp_one(buf, len, TW_MP_DEPTH_DECODE) &&
        msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len) {
        tw_jsonw_object(w, &u.data, opts);
    } else {
        tw_jsonw_bin(w, buf, len);
    }
    msgpack_unpacked_destroy(&u);
}
