/*  broker/state/pagefile.c - LMDB 0.9's file format, read defensively (see
 *  pagefile.h).
 *
 *  Layouts (64-bit LMDB 0.9, host byte order; offsets in bytes):
 *
 *    page header  0 pgno (8) | 8 pad (2) | 10 flags (2) |
 *                 12 lower (2) | 14 upper (2)    (overflow: 12 pages (4))
 *                 16 node offsets, 2 bytes each, (lower - 16) / 2 of them
 *    node         0 lo (2) | 2 hi (2) | 4 flags (2) | 6 ksize (2) |
 *                 8 key, then the value (leaf) or nothing (branch)
 *                 leaf: value size lo | hi << 16; F_BIGDATA: the value is
 *                 the 8-byte number of its first overflow page
 *                 branch: child page lo | hi << 16 | flags << 32
 *    meta (at 16) 0 magic (4) | 4 version (4) | 8 address (8) |
 *                 16 mapsize (8) | 24 free db (48) | 72 main db (48) |
 *                 120 last page (8) | 128 txnid (8)
 *    db header    0 pad (4, the page size in the free db of a meta) |
 *                 4 flags (2) | 6 depth (2) | 8 branch pages | 16 leaf
 *                 pages | 24 overflow pages | 32 entries | 40 root (8 each)
 *
 *  Each tree level has its own page buffer, so a branch page's keys stay
 *  valid while its children are read.
 */
#include "broker/state/pagefile.h"
#include "common/alloc.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HDR 16u           /* page header */
#define S_NODE 8u           /* node header */
#define S_MAGIC 0xbeefc0deu
#define S_VERSION 1u
#define S_DEPTH 32          /* LMDB's cursor stack */
#define S_P_BRANCH 0x01u
#define S_P_LEAF 0x02u
#define S_P_OVERFLOW 0x04u
#define S_P_META 0x08u
#define S_P_LEAF2 0x20u
#define S_F_BIGDATA 0x01u
#define S_F_SUBDATA 0x02u
#define S_F_DUPDATA 0x04u
#define S_INTEGERKEY 0x08u  /* mdb_dbi_open's MDB_INTEGERKEY */

_Static_assert(sizeof(size_t) == 8, "the 64-bit LMDB format only");

struct tw_pagefile {
    int fd;
    char *path;
    tw_pagefile_info_t info;
    unsigned char *pages[S_DEPTH + 1]; /* one buffer per tree level */
    unsigned char *ov;                 /* an overflow value */
    size_t ovcap;
    uint8_t *seen;                     /* page map, or NULL */
    /* The tree being walked. */
    const tw_pagefile_db_t *db;
    const char *name;
    uint64_t nbranch, nleaf, nover, nentries;
    unsigned char *last;               /* the previous key */
    size_t lastlen, lastcap;
    int have_last;
};

static uint16_t
s_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t
s_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t
s_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int
s_why(char *why, size_t wlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_why(char *why, size_t wlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wlen, fmt, ap);
    va_end(ap);
    return TW_EPROTO;
}

static void
s_db(const unsigned char *p, tw_pagefile_db_t *db)
{
    db->flags = s_u16(p + 4);
    db->depth = s_u16(p + 6);
    db->branch_pages = s_u64(p + 8);
    db->leaf_pages = s_u64(p + 16);
    db->overflow_pages = s_u64(p + 24);
    db->entries = s_u64(p + 32);
    db->root = s_u64(p + 40);
}

int
tw_pagefile_db_decode(const void *val, size_t vlen, tw_pagefile_db_t *db)
{
    if (vlen != 48) {
        return TW_EPROTO;
    }
    s_db(val, db);
    return 0;
}

/* Read one meta page at `off`: 0, or TW_EPROTO. */
static int
s_meta(tw_pagefile_t *f, off_t off, uint64_t *txnid, uint32_t *psize,
       unsigned char *buf)
{
    ssize_t n = pread(f->fd, buf, S_HDR + 136, off);
    if (n != (ssize_t)(S_HDR + 136)) {
        return TW_EPROTO;
    }
    const unsigned char *m = buf + S_HDR;
    if (!(s_u16(buf + 10) & S_P_META) || s_u32(m) != S_MAGIC ||
        s_u32(m + 4) != S_VERSION) {
        return TW_EPROTO;
    }
    *psize = s_u32(m + 24); /* the free db's pad */
    *txnid = s_u64(m + 128);
    return 0;
}

int
tw_pagefile_open(tw_pagefile_t **out, const char *path, char *why,
                 size_t wlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return TW_ENOENT;
        }
        return s_why(why, wlen, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return s_why(why, wlen, "%s: %s", path, strerror(errno));
    }
    tw_pagefile_t *f = tw_calloc(1, sizeof *f);
    f->fd = fd;
    f->path = tw_strdup(path);
    f->info.file_bytes = (uint64_t)sb.st_size;
    unsigned char m0[S_HDR + 136], m1[S_HDR + 136];
    uint64_t t0 = 0, t1 = 0;
    uint32_t p0 = 0, p1 = 0;
    int rc = s_meta(f, 0, &t0, &p0, m0);
    if (rc == 0 && (p0 < 512 || p0 > 65536 || (p0 & (p0 - 1)))) {
        rc = TW_EPROTO;
    }
    if (rc != 0) {
        tw_pagefile_close(&f);
        return s_why(why, wlen,
                     "%s is not an LMDB data file, or its first page is "
                     "damaged (%llu bytes)",
                     path, (unsigned long long)sb.st_size);
    }
    if (s_meta(f, (off_t)p0, &t1, &p1, m1) != 0 || p1 != p0) {
        tw_pagefile_close(&f);
        return s_why(why, wlen,
                     "%s is truncated or damaged: its second meta page "
                     "(bytes %u to %u) is missing or invalid (%llu bytes)",
                     path, p0, 2 * p0, (unsigned long long)sb.st_size);
    }
    const unsigned char *m = (t1 > t0 ? m1 : m0) + S_HDR;
    tw_pagefile_info_t *in = &f->info;
    in->psize = p0;
    in->txnid = t1 > t0 ? t1 : t0;
    in->mapsize = s_u64(m + 16);
    s_db(m + 24, &in->free_db);
    s_db(m + 72, &in->main_db);
    in->last_pg = s_u64(m + 120);
    in->file_pages = in->file_bytes / in->psize;
    if (in->last_pg < 1 || in->last_pg > UINT64_MAX / in->psize / 2) {
        tw_pagefile_close(&f);
        return s_why(why, wlen, "%s: its meta page is damaged (last page "
                     "%llu)", path, (unsigned long long)in->last_pg);
    }
    for (int i = 0; i <= S_DEPTH; i++) {
        f->pages[i] = tw_malloc(in->psize);
    }
    *out = f;
    return 0;
}

void
tw_pagefile_close(tw_pagefile_t **fp)
{
    tw_pagefile_t *f = *fp;
    if (!f) {
        return;
    }
    close(f->fd);
    for (int i = 0; i <= S_DEPTH; i++) {
        tw_free(f->pages[i]);
    }
    tw_free(f->ov);
    tw_free(f->seen);
    tw_free(f->last);
    tw_free(f->path);
    tw_free(f);
    *fp = NULL;
}

const tw_pagefile_info_t *
tw_pagefile_info(const tw_pagefile_t *f)
{
    return &f->info;
}

const char *
tw_pagefile_path(const tw_pagefile_t *f)
{
    return f->path;
}

/* ---- pages ------------------------------------------------------------ */

/* Mark `n` pages from `pg` as reached (page accounting). */
static int
s_mark(tw_pagefile_t *f, uint64_t pg, uint64_t n, char *why, size_t wlen)
{
    if (!f->seen) {
        return 0;
    }
    for (uint64_t i = pg; i < pg + n; i++) {
        if (f->seen[i >> 3] & (1u << (i & 7))) {
            return s_why(why, wlen,
                         "%s is damaged: page %llu is used twice (in '%s')",
                         f->path, (unsigned long long)i, f->name);
        }
        f->seen[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    return 0;
}

/* Check that pages [pg, pg + n) lie inside the file. */
static int
s_inside(tw_pagefile_t *f, uint64_t pg, uint64_t n, char *why, size_t wlen)
{
    const tw_pagefile_info_t *in = &f->info;
    if (pg < 2 || pg > in->last_pg || n > in->last_pg + 1 - pg) {
        return s_why(why, wlen,
                     "%s is damaged: '%s' names page %llu, outside the "
                     "%llu pages its meta page counts",
                     f->path, f->name, (unsigned long long)pg,
                     (unsigned long long)(in->last_pg + 1));
    }
    if (pg + n > in->file_pages) {
        return s_why(why, wlen,
                     "%s is truncated: %llu bytes, but '%s' uses page %llu "
                     "(bytes up to %llu)",
                     f->path, (unsigned long long)in->file_bytes, f->name,
                     (unsigned long long)(pg + n - 1),
                     (unsigned long long)((pg + n) * in->psize));
    }
    return 0;
}

/* Read page `pg` into `buf` and check its header. */
static int
s_page(tw_pagefile_t *f, uint64_t pg, unsigned char *buf, char *why,
       size_t wlen)
{
    uint32_t ps = f->info.psize;
    int rc = s_inside(f, pg, 1, why, wlen);
    if (rc != 0) {
        return rc;
    }
    ssize_t n = pread(f->fd, buf, ps, (off_t)(pg * ps));
    if (n != (ssize_t)ps) {
        return s_why(why, wlen, "%s: cannot read page %llu: %s", f->path,
                     (unsigned long long)pg,
                     n < 0 ? strerror(errno) : "short read");
    }
    if (s_u64(buf) != pg) {
        return s_why(why, wlen,
                     "%s is damaged: page %llu (in '%s') has a wrong header",
                     f->path, (unsigned long long)pg, f->name);
    }
    return 0;
}

/* The address of node `i` of a branch or leaf page, checked to lie in the
 * page with its key (and, for a leaf, its inline value). */
static const unsigned char *
s_node(tw_pagefile_t *f, const unsigned char *pg, unsigned i, int leaf)
{
    uint32_t ps = f->info.psize;
    uint16_t upper = s_u16(pg + 14);
    uint16_t off = s_u16(pg + S_HDR + 2 * i);
    if (off < upper || (uint32_t)off + S_NODE > ps) {
        return NULL;
    }
    const unsigned char *n = pg + off;
    size_t end = (size_t)off + S_NODE + s_u16(n + 6);
    if (leaf) {
        uint16_t fl = s_u16(n + 4);
        end += fl & S_F_BIGDATA
                   ? 8
                   : ((size_t)s_u16(n) | (size_t)s_u16(n + 2) << 16);
    }
    return end <= ps ? n : NULL;
}

/* ---- walking a tree --------------------------------------------------- */

static int
s_cmp(const tw_pagefile_t *f, const void *a, size_t al, const void *b,
      size_t bl)
{
    if ((f->db->flags & S_INTEGERKEY) && al == 8 && bl == 8) {
        uint64_t x = s_u64(a), y = s_u64(b);
        return x < y ? -1 : x > y;
    }
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : al < bl ? -1 : al > bl;
}

typedef struct {
    tw_pagefile_rec_fn rec;
    tw_pagefile_bad_fn bad;
    void *arg;
    char *why;
    size_t wlen;
} s_walk_t;

/* A part of the tree is unreadable: report it, and go on if salvaging. */
static int
s_lost(tw_pagefile_t *f, s_walk_t *w, const void *lo, size_t lol,
       const void *hi, size_t hil)
{
    (void)f;
    if (!w->bad) {
        return TW_EPROTO;
    }
    return w->bad(w->why, lo, lol, hi, hil, w->arg) ? TW_EPROTO : 0;
}

static int
s_leaf(tw_pagefile_t *f, s_walk_t *w, const unsigned char *pg,
       unsigned nkeys)
{
    uint32_t ps = f->info.psize;
    for (unsigned i = 0; i < nkeys; i++) {
        const unsigned char *n = s_node(f, pg, i, 1);
        if (!n) {
            s_why(w->why, w->wlen,
                  "%s is damaged: page %llu (in '%s') has a node outside "
                  "it", f->path, (unsigned long long)s_u64(pg), f->name);
            return s_lost(f, w, NULL, 0, NULL, 0);
        }
        uint16_t fl = s_u16(n + 4), ks = s_u16(n + 6);
        size_t dsz = (size_t)s_u16(n) | (size_t)s_u16(n + 2) << 16;
        const unsigned char *key = n + S_NODE, *val = key + ks;
        if (fl & S_F_DUPDATA) {
            s_why(w->why, w->wlen,
                  "%s: '%s' holds duplicate-sorted data, which a "
                  "taskwheel store never does (page %llu)",
                  f->path, f->name, (unsigned long long)s_u64(pg));
            return s_lost(f, w, key, ks, NULL, 0);
        }
        if (f->have_last && s_cmp(f, f->last, f->lastlen, key, ks) >= 0) {
            s_why(w->why, w->wlen,
                  "%s is damaged: the keys of '%s' are out of order "
                  "(page %llu)",
                  f->path, f->name, (unsigned long long)s_u64(pg));
            return s_lost(f, w, key, ks, NULL, 0);
        }
        if (fl & S_F_BIGDATA) {
            uint64_t opg = s_u64(val);
            uint64_t np = (S_HDR - 1 + (uint64_t)dsz) / ps + 1;
            int rc = s_inside(f, opg, np, w->why, w->wlen);
            if (rc == 0 && dsz > f->ovcap) {
                f->ovcap = dsz;
                f->ov = tw_realloc(f->ov, dsz);
            }
            unsigned char hdr[S_HDR];
            if (rc == 0 &&
                (pread(f->fd, hdr, S_HDR, (off_t)(opg * ps)) !=
                     (ssize_t)S_HDR ||
                 s_u64(hdr) != opg || !(s_u16(hdr + 10) & S_P_OVERFLOW) ||
                 s_u32(hdr + 12) != np ||
                 pread(f->fd, f->ov, dsz, (off_t)(opg * ps + S_HDR)) !=
                     (ssize_t)dsz)) {
                rc = s_why(w->why, w->wlen,
                           "%s is damaged: the overflow pages at %llu (in "
                           "'%s') are not what their node says",
                           f->path, (unsigned long long)opg, f->name);
            }
            if (rc == 0) {
                rc = s_mark(f, opg, np, w->why, w->wlen);
            }
            if (rc != 0) {
                int r2 = s_lost(f, w, key, ks, key, ks);
                if (r2) {
                    return r2;
                }
                continue;
            }
            f->nover += np;
            val = f->ov;
        }
        if (ks > f->lastcap) {
            f->lastcap = ks;
            f->last = tw_realloc(f->last, ks);
        }
        memcpy(f->last, key, ks);
        f->lastlen = ks;
        f->have_last = 1;
        f->nentries++;
        int rc = w->rec ? w->rec(key, ks, val, dsz, fl, w->arg) : 0;
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int
s_walk(tw_pagefile_t *f, s_walk_t *w, uint64_t pgno, int depth,
       const void *lo, size_t lol, const void *hi, size_t hil)
{
    unsigned char *pg = f->pages[depth];
    int rc = s_page(f, pgno, pg, w->why, w->wlen);
    if (rc == 0) {
        rc = s_mark(f, pgno, 1, w->why, w->wlen);
    }
    if (rc != 0) {
        return s_lost(f, w, lo, lol, hi, hil);
    }
    uint16_t flags = s_u16(pg + 10);
    uint16_t lower = s_u16(pg + 12), upper = s_u16(pg + 14);
    int leaf = (flags & (S_P_BRANCH | S_P_LEAF | S_P_OVERFLOW | S_P_META |
                         S_P_LEAF2)) == S_P_LEAF;
    int branch = (flags & (S_P_BRANCH | S_P_LEAF | S_P_OVERFLOW |
                           S_P_META | S_P_LEAF2)) == S_P_BRANCH;
    int want_leaf = depth + 1 >= (int)f->db->depth;
    if ((!leaf && !branch) || leaf != want_leaf || lower < S_HDR ||
        lower > upper || upper > f->info.psize ||
        (branch && lower < S_HDR + 2)) {
        s_why(w->why, w->wlen,
              "%s is damaged: page %llu (in '%s') is not a valid %s page",
              f->path, (unsigned long long)pgno, f->name,
              want_leaf ? "leaf" : "branch");
        return s_lost(f, w, lo, lol, hi, hil);
    }
    unsigned nkeys = (unsigned)(lower - S_HDR) >> 1;
    if (leaf) {
        f->nleaf++;
        return s_leaf(f, w, pg, nkeys);
    }
    f->nbranch++;
    if (depth >= S_DEPTH - 1) {
        s_why(w->why, w->wlen, "%s is damaged: '%s' is deeper than %d "
              "levels", f->path, f->name, S_DEPTH);
        return s_lost(f, w, lo, lol, hi, hil);
    }
    for (unsigned i = 0; i < nkeys; i++) {
        const unsigned char *n = s_node(f, pg, i, 0);
        const unsigned char *nx = i + 1 < nkeys ? s_node(f, pg, i + 1, 0)
                                                : NULL;
        if (!n || (i + 1 < nkeys && !nx)) {
            s_why(w->why, w->wlen,
                  "%s is damaged: page %llu (in '%s') has a node outside "
                  "it", f->path, (unsigned long long)pgno, f->name);
            return s_lost(f, w, lo, lol, hi, hil);
        }
        uint64_t child = (uint64_t)s_u16(n) | (uint64_t)s_u16(n + 2) << 16 |
                         (uint64_t)s_u16(n + 4) << 32;
        const void *clo = i ? n + S_NODE : lo;
        size_t clol = i ? s_u16(n + 6) : lol;
        const void *chi = nx ? nx + S_NODE : hi;
        size_t chil = nx ? s_u16(nx + 6) : hil;
        rc = s_walk(f, w, child, depth + 1, clo, clol, chi, chil);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int
tw_pagefile_walk(tw_pagefile_t *f, const tw_pagefile_db_t *db,
                 const char *name, tw_pagefile_rec_fn rec,
                 tw_pagefile_bad_fn bad, void *arg, char *why, size_t wlen)
{
    s_walk_t w = {rec, bad, arg, why, wlen};
    f->db = db;
    f->name = name;
    f->nbranch = f->nleaf = f->nover = f->nentries = 0;
    f->have_last = 0;
    if (db->root == TW_PAGEFILE_NONE) {
        return db->entries == 0 ? 0
                                : s_why(why, wlen,
                                        "%s is damaged: '%s' counts %llu "
                                        "records but has none",
                                        f->path, name,
                                        (unsigned long long)db->entries);
    }
    if (db->depth < 1 || db->depth > S_DEPTH) {
        s_why(why, wlen, "%s is damaged: '%s' has a depth of %u", f->path,
              name, db->depth);
        return s_lost(f, &w, NULL, 0, NULL, 0);
    }
    int rc = s_walk(f, &w, db->root, 0, NULL, 0, NULL, 0);
    if (rc != 0 || !f->seen) {
        return rc;
    }
    /* With accounting (a walk that lost nothing): the counts must match
     * the tree's header. */
    if (f->nbranch != db->branch_pages || f->nleaf != db->leaf_pages ||
        f->nover != db->overflow_pages || f->nentries != db->entries) {
        return s_why(why, wlen,
                     "%s is damaged: '%s' has %llu records on %llu pages, "
                     "its header says %llu on %llu",
                     f->path, name, (unsigned long long)f->nentries,
                     (unsigned long long)(f->nbranch + f->nleaf + f->nover),
                     (unsigned long long)db->entries,
                     (unsigned long long)(db->branch_pages +
                                          db->leaf_pages +
                                          db->overflow_pages));
    }
    return 0;
}

/* ---- page accounting -------------------------------------------------- */

void
tw_pagefile_account(tw_pagefile_t *f)
{
    if (!f->seen) {
        f->seen = tw_calloc(f->info.file_pages / 8 + 1, 1);
        /* The meta pages. */
        f->seen[0] |= 3;
    }
}

typedef struct {
    tw_pagefile_t *f;
    uint64_t beyond; /* free pages past the end of the file */
    char *why;
    size_t wlen;
} s_free_t;

static int
s_free_rec(const void *key, size_t klen, const void *val, size_t vlen,
           unsigned flags, void *arg)
{
    s_free_t *x = arg;
    tw_pagefile_t *f = x->f;
    (void)key;
    (void)flags;
    const unsigned char *v = val;
    uint64_t n = vlen >= 8 ? s_u64(v) : 0;
    if (klen != 8 || vlen < 8 || n > vlen / 8 - 1) {
        return s_why(x->why, x->wlen,
                     "%s is damaged: a record of the free-page list is "
                     "malformed", f->path);
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pg = s_u64(v + 8 * (i + 1));
        if (pg < 2 || pg > f->info.last_pg) {
            return s_why(x->why, x->wlen,
                         "%s is damaged: the free-page list names page "
                         "%llu, outside the file's %llu pages",
                         f->path, (unsigned long long)pg,
                         (unsigned long long)(f->info.last_pg + 1));
        }
        if (pg >= f->info.file_pages) {
            x->beyond++;
            continue;
        }
        if (!f->seen) {
            continue; /* no accounting: the list's shape is enough */
        }
        if (f->seen[pg >> 3] & (1u << (pg & 7))) {
            return s_why(x->why, x->wlen,
                         "%s is damaged: page %llu is both free and in use "
                         "(or listed free twice)",
                         f->path, (unsigned long long)pg);
        }
        f->seen[pg >> 3] |= (uint8_t)(1u << (pg & 7));
    }
    return 0;
}

int
tw_pagefile_free_list(tw_pagefile_t *f, char *why, size_t wlen)
{
    s_free_t x = {f, 0, why, wlen};
    int rc = tw_pagefile_walk(f, &f->info.free_db, "free-page list",
                              s_free_rec, NULL, &x, why, wlen);
    if (rc != 0 || !f->seen) {
        return rc;
    }
    const tw_pagefile_info_t *in = &f->info;
    uint64_t top = in->last_pg + 1 < in->file_pages ? in->last_pg + 1
                                                    : in->file_pages;
    for (uint64_t pg = 2; pg < top; pg++) {
        if (!(f->seen[pg >> 3] & (1u << (pg & 7)))) {
            return s_why(why, wlen,
                         "%s is damaged: page %llu belongs to no tree and "
                         "is not listed free",
                         f->path, (unsigned long long)pg);
        }
    }
    uint64_t want = in->last_pg + 1 > in->file_pages
                        ? in->last_pg + 1 - in->file_pages
                        : 0;
    if (x.beyond != want) {
        return s_why(why, wlen,
                     "%s is truncated: %llu bytes, but its meta page counts "
                     "%llu pages of %u bytes",
                     f->path, (unsigned long long)in->file_bytes,
                     (unsigned long long)(in->last_pg + 1), in->psize);
    }
    return 0;
}
