/*  broker/state/replops.c - the bytes of a store write batch (see
 *  replops.h). */
#include "broker/state/replops.h"
#include "common/alloc.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
tw_replops_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

uint32_t
tw_replops_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

unsigned char *
tw_replops_begin(unsigned char **buf, size_t *cap, size_t len, int op,
                 int db, const void *key, size_t klen, size_t vlen)
{
    size_t need = len + TW_REPLOP_HEAD + klen + vlen;
    if (need > *cap) {
        size_t c = *cap ? *cap * 2 : 65536;
        while (c < need) {
            c *= 2;
        }
        *buf = tw_realloc(*buf, c);
        *cap = c;
    }
    unsigned char *p = *buf + len;
    p[0] = (unsigned char)op;
    p[1] = (unsigned char)db;
    tw_replops_put_u32(p + 2, (uint32_t)klen);
    tw_replops_put_u32(p + 6, (uint32_t)vlen);
    if (klen) {
        memcpy(p + TW_REPLOP_HEAD, key, klen);
    }
    return p + TW_REPLOP_HEAD + klen;
}

void
tw_replops_add(tw_replops_t *b, int op, int db, const void *key,
               size_t klen, const void *val, size_t vlen)
{
    unsigned char *v = tw_replops_begin(&b->buf, &b->cap, b->len, op, db,
                                        key, klen, vlen);
    if (vlen) {
        memcpy(v, val, vlen);
    }
    b->len += TW_REPLOP_HEAD + klen + vlen;
    b->nops++;
}

void
tw_replops_reset(tw_replops_t *b)
{
    tw_free(b->buf);
    memset(b, 0, sizeof *b);
}

static int s_bad(char *why, size_t wlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_bad(char *why, size_t wlen, const char *fmt, ...)
{
    if (why && wlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, wlen, fmt, ap);
        va_end(ap);
    }
    return TW_EPROTO;
}

int
tw_replops_next(const unsigned char *buf, size_t len, int ndb, size_t *off,
                tw_replop_t *out, char *why, size_t wlen)
{
    size_t at = *off;
    if (at >= len) {
        return 0;
    }
    size_t left = len - at;
    if (left < TW_REPLOP_HEAD) {
        return s_bad(why, wlen, "%zu octets left, an operation's head "
                                "takes 10", left);
    }
    const unsigned char *p = buf + at;
    int op = p[0], db = p[1];
    size_t klen = tw_replops_get_u32(p + 2), vlen = tw_replops_get_u32(p + 6);
    if (op < TW_REPLOP_PUT || op > TW_REPLOP_DEL_PREFIX) {
        return s_bad(why, wlen, "unknown operation %d", op);
    }
    if (db >= ndb) {
        return s_bad(why, wlen, "unknown database %d", db);
    }
    if (klen == 0 || klen > TW_REPLOP_MAX_KEY) {
        return s_bad(why, wlen, "a key of %zu octets (1 to %d)", klen,
                     TW_REPLOP_MAX_KEY);
    }
    if ((op == TW_REPLOP_DEL || op == TW_REPLOP_DEL_PREFIX) && vlen) {
        return s_bad(why, wlen, "a delete with a value of %zu octets",
                     vlen);
    }
    if (klen > left - TW_REPLOP_HEAD ||
        vlen > left - TW_REPLOP_HEAD - klen) {
        return s_bad(why, wlen, "key and value (%zu + %zu octets) run past "
                                "the batch (%zu left)",
                     klen, vlen, left - TW_REPLOP_HEAD);
    }
    out->op = op;
    out->db = db;
    out->key = p + TW_REPLOP_HEAD;
    out->klen = klen;
    out->val = vlen ? p + TW_REPLOP_HEAD + klen : NULL;
    out->vlen = vlen;
    *off = at + TW_REPLOP_HEAD + klen + vlen;
    return 1;
}

int
tw_replops_check(const unsigned char *buf, size_t len, int ndb,
                 size_t *nops, char *why, size_t wlen)
{
    size_t off = 0, n = 0;
    tw_replop_t op;
    int rc;
    char inner[160];
    while ((rc = tw_replops_next(buf, len, ndb, &off, &op, inner,
                                 sizeof inner)) == 1) {
        n++;
    }
    if (rc != 0) {
        return s_bad(why, wlen, "operation %zu (at octet %zu): %s", n + 1,
                     off, inner);
    }
    if (nops) {
        *nops = n;
    }
    return 0;
}
