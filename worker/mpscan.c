/*  worker/mpscan.c - msgpack values read in place (see mpscan.h).
 *
 *  Everything rests on tw_mpscan_head, which decodes one header and says
 *  how many payload bytes and how many nested values follow; skipping a
 *  value is then a loop that counts the values still to pass, so nesting
 *  costs no recursion, and every step consumes at least one byte, so a
 *  scan of n bytes ends within n steps.
 */
#include "worker/mpscan.h"

#include <string.h>

/* Read a `w`-byte big-endian length at p[*off]; 0 or -1 if truncated. */
static int
s_be(const unsigned char *p, size_t n, size_t *off, unsigned w, uint64_t *v)
{
    if (n - *off < w) {
        return -1;
    }
    *v = 0;
    for (unsigned i = 0; i < w; i++) {
        *v = *v << 8 | p[(*off)++];
    }
    return 0;
}

/* Parse the header of the value at p[*off]: advance *off past it and set
 * *len (payload bytes that follow) and *kids (values that follow). */
int
tw_mpscan_head(const unsigned char *p, size_t n, size_t *off, uint64_t *len,
               uint64_t *kids)
{
    if (*off >= n) {
        return -1;
    }
    unsigned b = p[(*off)++];
    *len = 0;
    *kids = 0;
    if (b <= 0x7f || b >= 0xe0) {
        return 0;
    }
    if (b <= 0x8f) {
        *kids = 2u * (b & 0x0f);
        return 0;
    }
    if (b <= 0x9f) {
        *kids = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        *len = b & 0x1f;
        return 0;
    }
    uint64_t v;
    switch (b) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
        return 0;
    case 0xc4:
    case 0xd9:
        return s_be(p, n, off, 1, len);
    case 0xc5:
    case 0xda:
        return s_be(p, n, off, 2, len);
    case 0xc6:
    case 0xdb:
        return s_be(p, n, off, 4, len);
    case 0xc7:
    case 0xc8:
    case 0xc9:
        if (s_be(p, n, off, b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4, &v) != 0) {
            return -1;
        }
        *len = v + 1; /* the type byte */
        return 0;
    case 0xcc:
    case 0xd0:
        *len = 1;
        return 0;
    case 0xcd:
    case 0xd1:
        *len = 2;
        return 0;
    case 0xca:
    case 0xce:
    case 0xd2:
        *len = 4;
        return 0;
    case 0xcb:
    case 0xcf:
    case 0xd3:
        *len = 8;
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *len = 1 + (1u << (b - 0xd4));
        return 0;
    case 0xdc:
    case 0xdd:
        return s_be(p, n, off, b == 0xdc ? 2 : 4, kids);
    case 0xde:
    case 0xdf:
        if (s_be(p, n, off, b == 0xde ? 2 : 4, &v) != 0) {
            return -1;
        }
        *kids = 2 * v;
        return 0;
    default: /* 0xc1, never used */
        return -1;
    }
}

/* Bytes taken by the one msgpack value at p[0..n), or 0 if p does not
 * start with a complete value. Iterative: `need` counts values to skip,
 * and each step consumes at least one byte, so it ends within n steps. */
size_t
tw_mpscan_skip(const unsigned char *p, size_t n)
{
    size_t off = 0;
    uint64_t need = 1;
    while (need > 0) {
        uint64_t len, kids;
        if (tw_mpscan_head(p, n, &off, &len, &kids) != 0 || len > n - off) {
            return 0;
        }
        off += len;
        need += kids - 1;
    }
    return off;
}

/* 1 if p[0..n) is exactly one msgpack value. */
int
tw_mpscan_one(const void *p, size_t n)
{
    return n > 0 && tw_mpscan_skip(p, n) == n;
}

int
tw_mpscan_is_map(unsigned b)
{
    return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

int
tw_mpscan_is_array(unsigned b)
{
    return (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd;
}

/* Python's truth of the value at p[0..n) (nil, false, zero, empty: 0). */
int
tw_mpscan_truthy(const unsigned char *p, size_t n)
{
    size_t off = 0;
    uint64_t len, kids;
    if (n == 0 || tw_mpscan_head(p, n, &off, &len, &kids) != 0) {
        return 0;
    }
    unsigned b = p[0];
    if (b == 0xc0 || b == 0xc2) {
        return 0;
    }
    if (b <= 0x7f) {
        return b != 0;
    }
    if (b >= 0xcc && b <= 0xd3) { /* integers: zero iff all bytes are */
        for (size_t i = 1; i <= len && i < n; i++) {
            if (p[i]) {
                return 1;
            }
        }
        return 0;
    }
    if (b == 0xca || b == 0xcb) { /* floats: zero iff all but the sign */
        if (len > n - 1) {
            return 1;
        }
        if (p[1] & 0x7f) {
            return 1;
        }
        for (size_t i = 2; i <= len; i++) {
            if (p[i]) {
                return 1;
            }
        }
        return 0;
    }
    if ((b >= 0xa0 && b <= 0xbf) || b == 0xc4 || b == 0xc5 || b == 0xc6 ||
        b == 0xd9 || b == 0xda || b == 0xdb) {
        return len != 0;
    }
    if (tw_mpscan_is_map(b) || tw_mpscan_is_array(b)) {
        return kids != 0;
    }
    return 1; /* true, negative fixint, ext */
}

/* In the map at p[0..n), the value of string key `key`: sets *v and
 * *vlen and returns 1, or returns 0. */
int
tw_mpscan_map_get(const unsigned char *p, size_t n, const char *key,
                  size_t klen, const unsigned char **v, size_t *vlen)
{
    size_t off = 0;
    uint64_t len, pairs;
    if (tw_mpscan_head(p, n, &off, &len, &pairs) != 0) {
        return 0;
    }
    for (uint64_t i = 0; i < pairs / 2; i++) {
        unsigned b = off < n ? p[off] : 0;
        size_t koff = off;
        size_t ksz = tw_mpscan_skip(p + off, n - off);
        if (ksz == 0) {
            return 0;
        }
        off += ksz;
        size_t vsz = tw_mpscan_skip(p + off, n - off);
        if (vsz == 0) {
            return 0;
        }
        int is_str =
            (b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb;
        if (is_str) {
            size_t ho = koff;
            uint64_t sl, sk;
            tw_mpscan_head(p, n, &ho, &sl, &sk);
            if (sl == klen && memcmp(p + ho, key, klen) == 0) {
                *v = p + off;
                *vlen = vsz;
                return 1;
            }
        }
        off += vsz;
    }
    return 0;
}

int
tw_mpscan_text(const unsigned char *p, size_t n, int bin_too, const char **s,
               size_t *len)
{
    if (n == 0) {
        return 0;
    }
    unsigned b = p[0];
    int str = (b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb;
    int bin = b == 0xc4 || b == 0xc5 || b == 0xc6;
    size_t off = 0;
    uint64_t l, kids;
    if (!(str || (bin_too && bin)) ||
        tw_mpscan_head(p, n, &off, &l, &kids) != 0 || l != n - off) {
        return 0;
    }
    *s = (const char *)p + off;
    *len = (size_t)l;
    return 1;
}

int
tw_mpscan_uint(const unsigned char *p, size_t n, uint64_t *v)
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
    size_t w = (size_t)1 << (b - 0xcc);
    if (n != 1 + w) {
        return 0;
    }
    *v = 0;
    for (size_t i = 1; i <= w; i++) {
        *v = *v << 8 | p[i];
    }
    return 1;
}
