/*  broker/state/store.h - the broker's durable state: one LMDB environment.
 *
 *  With --data DIR the broker keeps everything a restart must not lose in
 *  an LMDB environment in DIR (data.mdb, lock.mdb, and broker.lock, which
 *  keeps a second broker away): tasks, results, stations, pools, groups
 *  and the counters. Each kind of record has its own named database:
 *
 *      meta      "format" {v, created}; "counters" {id, ep}
 *      tasks     u64 id (big-endian) -> task record: pending, running,
 *                or ended (an outcome kept until its TTL)
 *      stations  sid -> station record
 *      pools     name -> pool record
 *      groups    pool NUL group -> group record
 *
 *  Records are msgpack maps with short keys, so a later version may add
 *  fields an older one ignores. The format version lives in meta: a store
 *  of another version, or one LMDB refuses to open, is reported with the
 *  path and the problem and never written to.
 *
 *  This module is storage only: the broker marks what changed during a
 *  loop turn and writes it with tw_store_begin / put / del / commit, one
 *  write transaction per turn (LMDB allows one writer at a time; the loop
 *  thread is the only one). The fsync policy decides whether a commit waits
 *  for the disk (always) or not (everysec, no: MDB_NOSYNC); tw_store_sync
 *  may then run on another thread (mdb_env_sync is safe beside the
 *  writer). MDB_MAP_FULL comes back as TW_EFULL with the transaction
 *  aborted, so nothing half-written remains. What the records hold and
 *  how they are encoded is record.h.
 */
#ifndef TW_BROKER_STORE_H
#define TW_BROKER_STORE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/state/record.h"
#include "proto/proto.h"

/* The id and epoch counters are stored this far ahead of what is handed
 * out (persist.c), so no id is reused after a restart. */
#define TW_STORE_RESERVE 65536u

typedef enum {
    TW_FSYNC_ALWAYS = 0,
    TW_FSYNC_EVERYSEC,
    TW_FSYNC_NO
} tw_fsync_t;

typedef struct tw_store tw_store_t;

/* Parse "always|everysec|no"; -1 if none of them. */
int tw_fsync_parse(const char *s);
const char *tw_fsync_name(int policy);

/* Open (creating DIR and a fresh store if DIR holds none) with a map of
 * `map_bytes`. An existing data.mdb is verified first (verify.h), deeply
 * after an unclean stop or with TW_STORE_VERIFY in `flags`. Returns 0, or
 * an error with one sentence naming the path and the problem in `why`:
 * TW_EIO (cannot create, lock or read), TW_EVERSION (another format
 * version), TW_EPROTO (damaged, truncated, not a taskwheel store).
 * Nothing is written on failure, and a damaged file is never mapped. */
#define TW_STORE_VERIFY 1u
int tw_store_open(tw_store_t **out, const char *dir, uint64_t map_bytes,
                  int fsync_policy, unsigned flags, char *why, size_t wlen);

/* The clean-stop marker, which lives in DIR/broker.lock: "clean" once a
 * close synced everything, "running PID" from tw_store_mark_running (call
 * it before the first write) until then. A store found without "clean"
 * (a broker that died, a data.mdb copied in) gets the deep check. */
int tw_store_mark_running(tw_store_t *s);
int tw_store_was_clean(const tw_store_t *s);

/* What the check at open found (records per database, deep or not). */
struct tw_verify_stats;
const struct tw_verify_stats *tw_store_verified(const tw_store_t *s);

/* Sync whatever the policy (a clean stop is the moment to), close and
 * free. Sets *sp to NULL. Idempotent. */
void tw_store_close(tw_store_t **sp);

/* Write transactions: begin, any number of put/del, then commit or abort.
 * begin/put/del/commit return 0, TW_EFULL (no room: LMDB's map is full,
 * or the filesystem said ENOSPC or EDQUOT) or TW_EIO (any other failure);
 * on failure the transaction is aborted already, nothing of it is written,
 * and tw_store_error says what happened. del of an absent key is 0. */
int tw_store_begin(tw_store_t *s);
int tw_store_put(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
                 const void *val, size_t vlen);
int tw_store_del(tw_store_t *s, tw_db_t db, const void *key, size_t klen);
/* put for a key expected above every key of `db` (a new id): appended
 * without a search, which also packs pages full; falls back to a plain put
 * when the key is not the largest. */
int tw_store_put_last(tw_store_t *s, tw_db_t db, const void *key,
                      size_t klen, const void *val, size_t vlen);
/* Delete every key of `db` that starts with `prefix`. */
int tw_store_del_prefix(tw_store_t *s, tw_db_t db, const void *prefix,
                        size_t plen);
int tw_store_commit(tw_store_t *s);
void tw_store_abort(tw_store_t *s);

/* Flush to disk now (mdb_env_sync with force). Any thread. */
int tw_store_sync(tw_store_t *s);

/* Call `fn` for every record of `db` in key order inside one read
 * transaction; a non-zero return from `fn` stops and is returned. A
 * record whose checksum does not match stops the walk with TW_EPROTO, a
 * read error with TW_EIO; tw_store_error then says which and where. */
typedef int (*tw_store_each_fn)(const void *key, size_t klen,
                                const void *val, size_t vlen, void *arg);
int tw_store_each(tw_store_t *s, tw_db_t db, tw_store_each_fn fn,
                  void *arg);

/* The same from the first key above `after` (alen bytes; NULL: from the
 * first), in a read transaction of its own whichever thread writes: a
 * walk in pieces, each piece consistent by itself (a broker pair's
 * snapshot, docs/HA.md). */
int tw_store_each_after(tw_store_t *s, tw_db_t db, const void *after,
                        size_t alen, tw_store_each_fn fn, void *arg);

/* One value by key: 0 and a copy in *val (tw_free it), TW_ENOENT,
 * TW_EPROTO (its checksum does not match), TW_EIO. */
int tw_store_get(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
                 void **val, size_t *vlen);

/* How full the store is, measured (by the writer after each batch). */
typedef struct {
    uint64_t live_bytes; /* pages holding records or tree structure */
    uint64_t last_bytes; /* up to the last page used: live + free pages */
    uint64_t map_bytes;  /* LMDB's map: the most the file may hold */
    uint64_t file_bytes; /* data.mdb's size */
    uint64_t disk_free;  /* bytes its filesystem still has for it */
    int have_disk;
} tw_store_use_t;

/* Measure: 0, or TW_EIO. Whichever thread writes (it reads stats in a
 * short read transaction). */
int tw_store_use(tw_store_t *s, tw_store_use_t *u);

/* Bytes the map may hold, and bytes in use (live pages). */
uint64_t tw_store_map_bytes(const tw_store_t *s);
uint64_t tw_store_used_bytes(tw_store_t *s);

/* Times the environment was opened again after LMDB gave it up
 * (MDB_PANIC: a meta page could not be written); tw_store_begin does it
 * by itself. */
uint64_t tw_store_reopens(const tw_store_t *s);
int tw_store_fsync_policy(const tw_store_t *s);
const char *tw_store_path(const tw_store_t *s);

/* One sentence on the last failure (path, what and why), or "". */
const char *tw_store_error(const tw_store_t *s);

/* The counters record: the next task id and dispatch epoch not yet
 * handed out (the broker writes a reservation ahead of both). */
int tw_store_counters_get(tw_store_t *s, uint64_t *next_id,
                          uint64_t *next_ep);
int tw_store_counters_put(tw_store_t *s, uint64_t next_id, uint64_t next_ep);
#endif /* TW_BROKER_STORE_H */
