/*  broker/state/verify.h - a store checked before LMDB maps it.
 *
 *  tw_store_open (store.h) calls tw_verify_store before it lets LMDB near
 *  a data.mdb, so a damaged file is refused with one sentence instead of
 *  killing the broker (SIGBUS on a file cut short, SIGABRT on a page LMDB's
 *  assertions reject). Every check reads the file through pagefile.h:
 *  pread, bounds-checked, never a mapping.
 *
 *  Always (every start):
 *    - both meta pages are LMDB's, and every page a tree reaches lies
 *      inside the file (a truncated file is found here) and is a valid
 *      branch, leaf or overflow page of the right depth, with its nodes,
 *      keys and values inside it and its keys in order;
 *    - the five databases exist; "format" is this version (a version-1
 *      store is sent to --salvage, which converts it);
 *    - every record's checksum matches (store.h, TW_STORE_CRC) and it
 *      decodes as its kind (tw_verify_record): a task record names its own
 *      id, a valid state, names of at most 128 bytes, and, pending or
 *      running, arguments that are exactly one msgpack value;
 *    - the free-page list (which LMDB reads whenever a commit needs a
 *      page) is well formed and names pages inside the file's range.
 *  Deep (after an unclean stop, or asked for with --verify-store):
 *    - page accounting: every page up to the meta's last one belongs to
 *      exactly one tree or is listed free exactly once, and each tree's
 *      page and record counts match its header; a page both free and in
 *      use would be overwritten by the next commit, so it is caught here.
 *
 *  The whole walk reads the file once (plus the free-page list when deep),
 *  which recovery then reads again through LMDB, from the page cache.
 */
#ifndef TW_BROKER_VERIFY_H
#define TW_BROKER_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/pagefile.h"
#include "broker/state/record.h"

typedef struct tw_verify_stats {
    uint64_t records[TW_DB__COUNT]; /* records per database */
    uint64_t bytes;                 /* the file's size */
    int deep;                       /* page accounting was done */
} tw_verify_stats_t;

/* Check DIR/data.mdb. Returns 0 (also when there is no data.mdb: *fresh
 * is then set), or TW_EPROTO (damaged, truncated, not a taskwheel store),
 * TW_EVERSION (another format version) or TW_EIO (cannot read), with one
 * sentence naming the path and the problem in `why`. `st` may be NULL. */
int tw_verify_store(const char *dir, int deep, int *fresh,
                    tw_verify_stats_t *st, char *why, size_t wlen);

/* Check one record of `db` (its value without the checksum): 0, or
 * TW_EPROTO with what is wrong in `why` (a phrase: "its arguments are not
 * one msgpack value"). The format record is checked by
 * tw_record_format_check instead. */
int tw_verify_record(tw_db_t db, const void *key, size_t klen,
                     const void *val, size_t vlen, char *why, size_t wlen);

/* The headers of the store's five databases, from the list of databases
 * (LMDB's main tree) of `f`: have[i] says which were found. `bad` and
 * `arg` as for tw_pagefile_walk (NULL: stop at the first damage). Returns
 * 0, or the damage (TW_EPROTO) with the sentence in `why`. */
int tw_verify_dbs(tw_pagefile_t *f, tw_pagefile_db_t dbs[TW_DB__COUNT],
                  int have[TW_DB__COUNT], tw_pagefile_bad_fn bad, void *arg,
                  char *why, size_t wlen);

/* A record's key as people read it ("task 42", "station 'gnss'"). */
void tw_verify_key_name(tw_db_t db, const void *key, size_t klen, char *out,
                        size_t olen);

#endif /* TW_BROKER_VERIFY_H */
