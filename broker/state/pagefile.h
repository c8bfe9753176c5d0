/*  broker/state/pagefile.h - an LMDB data file read page by page, without LMDB.
 *
 *  LMDB maps its file and trusts every page it reaches: a file cut short
 *  raises SIGBUS when a page past its end is touched, and a page with a
 *  damaged header trips an assertion (SIGABRT) or makes it read wild
 *  offsets. The broker must never die of its store, so before LMDB maps a
 *  store (broker/state/verify.h), and when a damaged one is salvaged
 *  (broker/state/salvage.h), the file is read here instead: with pread, one page
 *  at a time, every page number checked against the file's size and every
 *  node, key and value checked against its page before it is used. A
 *  damaged file gives an error with a sentence, never a signal.
 *
 *  The format read is LMDB 0.9's on 64-bit hosts (the only one its
 *  Debian build writes): two meta pages (0 and 1, the newer transaction
 *  wins), then B+trees of branch, leaf and overflow pages, whose page
 *  numbers are 8 bytes. The main tree holds one node per named database
 *  (its root and counts); the free tree lists the pages free for reuse.
 *  Every page from 2 to the meta's last page belongs to exactly one tree
 *  or is listed free exactly once, and pages listed free may lie past the
 *  end of the file (LMDB never wrote them). tw_pagefile_walk visits a
 *  tree in key order; with a page map (tw_pagefile_account) it also checks
 *  that rule and the trees' counts.
 *
 *  Single-threaded; the file is opened read-only and never written.
 */
#ifndef TW_BROKER_PAGEFILE_H
#define TW_BROKER_PAGEFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tw_pagefile tw_pagefile_t;

/* One tree's header (LMDB's MDB_db). */
typedef struct {
    uint16_t flags, depth;
    uint64_t branch_pages, leaf_pages, overflow_pages, entries;
    uint64_t root; /* TW_PAGEFILE_NONE: empty */
} tw_pagefile_db_t;

#define TW_PAGEFILE_NONE UINT64_MAX

/* What the newest meta page says, and the file's size. */
typedef struct {
    uint32_t psize;
    uint64_t txnid, last_pg, mapsize;
    uint64_t file_bytes, file_pages;
    tw_pagefile_db_t free_db, main_db;
} tw_pagefile_info_t;

/* Open `path` (a data.mdb) and read its two meta pages. Returns 0, TW_ENOENT
 * (no such file), or TW_EPROTO with a sentence in `why` ("is not an LMDB
 * file", "is truncated: ..."). */
int tw_pagefile_open(tw_pagefile_t **out, const char *path, char *why,
                     size_t wlen);
void tw_pagefile_close(tw_pagefile_t **fp);

const tw_pagefile_info_t *tw_pagefile_info(const tw_pagefile_t *f);

/* The path it was opened with. Borrowed. */
const char *tw_pagefile_path(const tw_pagefile_t *f);

/* Called for every record of a tree in key order. `val` is the whole
 * value (an overflow value is read into a buffer first); both pointers are
 * valid during the call only. A non-zero return stops the walk and is
 * returned by tw_pagefile_walk. */
typedef int (*tw_pagefile_rec_fn)(const void *key, size_t klen,
                                  const void *val, size_t vlen,
                                  unsigned flags, void *arg);

/* Called for every part of a tree that cannot be read (the walk goes on
 * after it when `salvage` is set): `what` says why, with the page number;
 * `lo`/`hi` are the keys around the part that was lost (NULL: the first or
 * the last record of the tree). A non-zero return stops the walk. */
typedef int (*tw_pagefile_bad_fn)(const char *what, const void *lo,
                                  size_t lolen, const void *hi, size_t hilen,
                                  void *arg);

/* Node flags passed to the record callback (LMDB's). */
#define TW_PAGEFILE_SUBDATA 0x02u /* the main tree: a named database */

/* Walk the tree `db` (its header from the meta, or from a main-tree
 * record by tw_pagefile_db_decode). Returns 0; the first non-zero return
 * of a callback; or, without `bad` or with `bad` returning non-zero, the
 * damage found: TW_EPROTO with the sentence in `why`. With a page map
 * (tw_pagefile_account) every page read is marked there. */
int tw_pagefile_walk(tw_pagefile_t *f, const tw_pagefile_db_t *db,
                     const char *name, tw_pagefile_rec_fn rec,
                     tw_pagefile_bad_fn bad, void *arg, char *why,
                     size_t wlen);

/* Decode a named database's header from its main-tree value. Returns 0 or
 * TW_EPROTO. */
int tw_pagefile_db_decode(const void *val, size_t vlen,
                          tw_pagefile_db_t *db);

/* Page accounting: from now on, walks mark the pages they read (and the
 * trees' page and record counts are compared with their headers). */
void tw_pagefile_account(tw_pagefile_t *f);

/* Walk the free-page list (LMDB reads it whenever a commit needs a page,
 * so a damaged one would fault the writer): every record must list page
 * numbers inside the file's range. With accounting, also check that every
 * page from 2 to the last one was reached exactly once, by a tree or the
 * list. Returns 0 or TW_EPROTO with the sentence in `why`. */
int tw_pagefile_free_list(tw_pagefile_t *f, char *why, size_t wlen);

#endif /* TW_BROKER_PAGEFILE_H */
