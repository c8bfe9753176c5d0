/*  proto/mpwalk.c - the msgpack walker (see mpwalk.h).
 *
 *  Everything rests on s_head(), which decodes one header and says how
 *  many payload bytes and how many nested values follow. tw_mp_walk() is
 *  a loop over it with a stack of the values still due in each open
 *  container: the stack is what measures depth, and when a value may nest
 *  without limit the containers past the stack's size are folded into its
 *  top entry (only the count of values still due matters then). The sum
 *  of the stack is kept too, and may never exceed the bytes left, which is
 *  the size limit and keeps every count far from overflowing.
 */
#include "proto/mpwalk.h"
#include "common/utf8.h"

#include <assert.h>
#include <string.h>

/* Read a `w`-byte big-endian number at p[*off]; 0, or -1 if truncated. */
static int
s_be(const unsigned char *p, size_t n, size_t *off, unsigned w, uint64_t *v)
{
    if (n - *off < w) {
        return -1;
    }
    uint64_t x = 0;
    for (unsigned i = 0; i < w; i++) {
        x = x << 8 | p[*off + i];
    }
    *off += w;
    *v = x;
    return 0;
}

/* The header of the value at p[*off] (see tw_mp_head). Returns 1 for an
 * array or a map, 0 for anything else, -1 if malformed. */
static int
s_head(const unsigned char *p, size_t n, size_t *off, uint64_t *len,
       uint64_t *kids)
{
    if (*off >= n) {
        return -1;
    }
    unsigned b = p[(*off)++];
    uint64_t v;
    *len = 0;
    *kids = 0;
    if (b <= 0x7f || b >= 0xe0) { /* positive and negative fixint */
        return 0;
    }
    if (b <= 0x8f) { /* fixmap */
        *kids = 2u * (b & 0x0fu);
        return 1;
    }
    if (b <= 0x9f) { /* fixarray */
        *kids = b & 0x0fu;
        return 1;
    }
    if (b <= 0xbf) { /* fixstr */
        *len = b & 0x1fu;
        return 0;
    }
    switch (b) {
    case 0xc0: /* nil, false, true */
    case 0xc2:
    case 0xc3:
        return 0;
    case 0xc4: /* bin 8, str 8 */
    case 0xd9:
        return s_be(p, n, off, 1, len);
    case 0xc5: /* bin 16, str 16 */
    case 0xda:
        return s_be(p, n, off, 2, len);
    case 0xc6: /* bin 32, str 32 */
    case 0xdb:
        return s_be(p, n, off, 4, len);
    case 0xc7: /* ext 8, 16, 32: a length, then a type byte and the data */
    case 0xc8:
    case 0xc9:
        if (s_be(p, n, off, 1u << (b - 0xc7), &v) != 0) {
            return -1;
        }
        *len = v + 1;
        return 0;
    case 0xcc: /* uint 8, int 8 */
    case 0xd0:
        *len = 1;
        return 0;
    case 0xcd: /* uint 16, int 16 */
    case 0xd1:
        *len = 2;
        return 0;
    case 0xca: /* float 32, uint 32, int 32 */
    case 0xce:
    case 0xd2:
        *len = 4;
        return 0;
    case 0xcb: /* float 64, uint 64, int 64 */
    case 0xcf:
    case 0xd3:
        *len = 8;
        return 0;
    case 0xd4: /* fixext 1, 2, 4, 8, 16: a type byte and the data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *len = 1 + (1u << (b - 0xd4));
        return 0;
    case 0xdc: /* array 16, 32 */
    case 0xdd:
        return s_be(p, n, off, b == 0xdc ? 2 : 4, kids) != 0 ? -1 : 1;
    case 0xde: /* map 16, 32 */
    case 0xdf:
        if (s_be(p, n, off, b == 0xde ? 2 : 4, &v) != 0) {
            return -1;
        }
        *kids = 2 * v;
        return 1;
    default: /* 0xc1, never used */
        return -1;
    }
}

int
tw_mp_is_map(unsigned b)
{
    return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

int
tw_mp_is_array(unsigned b)
{
    return (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
}

int
tw_mp_is_str(unsigned b)
{
    return (b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb;
}

int
tw_mp_is_bin(unsigned b)
{
    return b == 0xc4 || b == 0xc5 || b == 0xc6;
}

int
tw_mp_head(const unsigned char *p, size_t n, size_t *off, uint64_t *len,
           uint64_t *kids)
{
    return s_head(p, n, off, len, kids) < 0 ? -1 : 0;
}

size_t
tw_mp_walk(const void *p, size_t n, unsigned max_depth)
{
    const unsigned char *u = p;
    uint64_t due[TW_MP_DEPTH_DECODE + 1]; /* [k]: values left at depth k */
    unsigned top = 0;                     /* containers open */
    uint64_t total = 1;                   /* the sum of due[0..top] */
    size_t off = 0;
    assert(max_depth <= TW_MP_DEPTH_DECODE);
    if (!p) {
        return 0;
    }
    due[0] = 1;
    for (;;) {
        while (due[top] == 0) {
            if (top == 0) {
                return off;
            }
            top--;
        }
        due[top]--;
        total--;
        uint64_t len, kids;
        int kind = s_head(u, n, &off, &len, &kids);
        if (kind < 0 || len > n - off) {
            return 0;
        }
        off += (size_t)len;
        if (kind == 0) {
            continue;
        }
        /* A container. msgpack-c refuses one inside 32 open ones even
         * when it is empty, so depth is checked before the count. */
        if (max_depth != TW_MP_DEPTH_ANY && top >= max_depth) {
            return 0;
        }
        total += kids;
        if (total > n - off) {
            return 0; /* more values due than bytes left */
        }
        if (kids > 0 && top < TW_MP_DEPTH_DECODE) {
            due[++top] = kids;
        } else {
            due[top] += kids; /* past the stack: only the count matters */
        }
    }
}

size_t
tw_mp_skip(const void *p, size_t n)
{
    return tw_mp_walk(p, n, TW_MP_DEPTH_ANY);
}

int
tw_mp_one(const void *p, size_t n, unsigned max_depth)
{
    return n > 0 && tw_mp_walk(p, n, max_depth) == n;
}

int
tw_mp_truthy(const unsigned char *p, size_t n)
{
    size_t off = 0;
    uint64_t len, kids;
    if (n == 0 || s_head(p, n, &off, &len, &kids) < 0) {
        return 0;
    }
    unsigned b = p[0];
    if (b == 0xc0 || b == 0xc2) { /* nil, false */
        return 0;
    }
    if (b <= 0x7f) {
        return b != 0;
    }
    if ((b >= 0xcc && b <= 0xd3) || b == 0xca || b == 0xcb) {
        if (len > n - off) {
            return 0; /* the number is cut short */
        }
        /* Integers are zero when all their bytes are; floats when all but
         * the sign bit are (0.0 and -0.0). */
        unsigned sign = b == 0xca || b == 0xcb ? 0x7f : 0xff;
        if (p[off] & sign) {
            return 1;
        }
        for (size_t i = 1; i < len; i++) {
            if (p[off + i]) {
                return 1;
            }
        }
        return 0;
    }
    if (tw_mp_is_str(b) || tw_mp_is_bin(b)) {
        return len != 0;
    }
    if (tw_mp_is_map(b) || tw_mp_is_array(b)) {
        return kids != 0;
    }
    return 1; /* true, negative fixint, ext */
}

int
tw_mp_map_get(const unsigned char *p, size_t n, const char *key, size_t klen,
              const unsigned char **v, size_t *vlen)
{
    size_t off = 0;
    uint64_t len, kids;
    if (n == 0 || !tw_mp_is_map(p[0]) || s_head(p, n, &off, &len, &kids) < 0) {
        return 0;
    }
    for (uint64_t i = 0; i < kids / 2; i++) {
        size_t ksz = tw_mp_skip(p + off, n - off);
        if (ksz == 0) {
            return 0;
        }
        const char *k;
        size_t kl;
        int match = tw_mp_text(p + off, ksz, 0, &k, &kl) && kl == klen &&
                    (klen == 0 || memcmp(k, key, klen) == 0);
        off += ksz;
        size_t vsz = tw_mp_skip(p + off, n - off);
        if (vsz == 0) {
            return 0;
        }
        if (match) {
            *v = p + off;
            *vlen = vsz;
            return 1;
        }
        off += vsz;
    }
    return 0;
}

int
tw_mp_text(const unsigned char *p, size_t n, int bin_too, const char **s,
           size_t *len)
{
    size_t off = 0;
    uint64_t l, kids;
    if (n == 0 || !(tw_mp_is_str(p[0]) || (bin_too && tw_mp_is_bin(p[0]))) ||
        s_head(p, n, &off, &l, &kids) < 0 || l != n - off) {
        return 0;
    }
    *s = (const char *)p + off;
    *len = (size_t)l;
    return 1;
}

int
tw_mp_name(const unsigned char *p, size_t n, size_t max, const char **s,
           size_t *len)
{
    const char *t;
    size_t tl;
    if (!tw_mp_text(p, n, 0, &t, &tl) || tl == 0 || tl > max ||
        !tw_utf8_clean(t, tl)) {
        return 0;
    }
    *s = t;
    *len = tl;
    return 1;
}

int
tw_mp_uint(const unsigned char *p, size_t n, uint64_t *v)
{
    if (n == 0) {
        return 0;
    }
    unsigned b = p[0];
    if (b <= 0x7f) {
        *v = b;
        return n == 1;
    }
    if (b < 0xcc || b > 0xcf) {
        return 0;
    }
    size_t off = 1;
    return n == 1 + (1u << (b - 0xcc)) &&
           s_be(p, n, &off, 1u << (b - 0xcc), v) == 0;
}

const msgpack_object *
tw_mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0) {
            return &map->via.map.ptr[i].val;
        }
    }
    return NULL;
}
