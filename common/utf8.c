/*  common/utf8.c - UTF-8 validation and scrubbing (see utf8.h).
 *
 *  One decoder, s_seq(), measures the well-formed sequence at a position
 *  (RFC 3629, table 3-7 of the Unicode standard); validation, the clean
 *  text rule and scrubbing are all loops over it. ASCII, most of what
 *  passes here, takes a short path in each loop.
 */
#include "common/utf8.h"

#include <stdint.h>
#include <string.h>

/* Length of the well-formed sequence starting at p[0] (p[0..n) valid to
 * read, n >= 1), or 0 if there is none. */
static size_t
s_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) {
            lo = 0xa0; /* no overlongs */
        } else if (c == 0xed) {
            hi = 0x9f; /* no surrogates */
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f; /* nothing above U+10FFFF */
        }
    } else {
        return 0; /* a continuation byte, or an overlong or unused lead */
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

int
tw_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        /* Skip ASCII eight bytes at a time: most output is ASCII. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) {
                break;
            }
            i += 8;
        }
        if (i >= n) {
            break;
        }
        size_t len = s_seq(s + i, n - i);
        if (len == 0) {
            return 0;
        }
        i += len;
    }
    return 1;
}

int
tw_utf8_clean(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) {
                return 0;
            }
            i++;
            continue;
        }
        size_t len = s_seq(s + i, n - i);
        if (len == 0) {
            return 0;
        }
        uint32_t cp = c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
            (cp >= 0x2066 && cp <= 0x2069)) {
            return 0; /* C1 (every shorter code point is ASCII), bidi */
        }
        i += len;
    }
    return 1;
}

void
tw_utf8_scrub(char *s, size_t n)
{
    unsigned char *p = (unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = s_seq(p + i, n - i);
        if (len == 0) {
            p[i] = '?';
            len = 1;
        }
        i += len;
    }
}
