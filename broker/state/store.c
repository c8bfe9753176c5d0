/*  broker/state/store.c - the LMDB environment and the record codecs (see
 *  store.h).
 *
 *  Opening is careful because a store is somebody's queue: the directory
 *  is locked first (flock on broker.lock: one broker per store), then LMDB
 *  opens data.mdb; a file LMDB does not recognise, a missing meta record or
 *  another format version stops the broker with a sentence naming the path,
 *  and nothing is written. Only a directory without data.mdb gets a fresh
 *  store.
 */
#include "broker/state/store.h"
#include "broker/state/verify.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct tw_store {
    pthread_mutex_t mu; /* the env against a reopen: sync and reopen */
    MDB_env *env;
    MDB_dbi dbi[TW_DB__COUNT];
    MDB_txn *txn; /* the write transaction, between begin and commit */
    int lock_fd;
    int fsync_policy;
    uint64_t map_bytes;
    char *path;
    char err[320]; /* what the last failure was (tw_store_error) */
    unsigned env_flags;
    uint64_t reopens;
    int was_clean;  /* broker.lock said "clean" when opened */
    int last_rc;    /* LMDB's (or errno's) code of the last failure */
    int running;    /* broker.lock says "running" (tw_store_mark_running) */
    tw_verify_stats_t vstats;
};

int
tw_fsync_parse(const char *s)
{
    if (!s || strcmp(s, "everysec") == 0) {
        return TW_FSYNC_EVERYSEC;
    }
    if (strcmp(s, "always") == 0) {
        return TW_FSYNC_ALWAYS;
    }
    if (strcmp(s, "no") == 0) {
        return TW_FSYNC_NO;
    }
    return -1;
}

const char *
tw_fsync_name(int policy)
{
    return policy == TW_FSYNC_ALWAYS ? "always"
           : policy == TW_FSYNC_NO   ? "no"
                                     : "everysec";
}

/* Record what a failed LMDB call said, as a sentence, and map it to
 * TW_EFULL (no room: the map or the disk) or TW_EIO. */
static int
s_note(tw_store_t *s, int rc, const char *doing)
{
    int full = rc == MDB_MAP_FULL || rc == MDB_TXN_FULL || rc == ENOSPC ||
               rc == EDQUOT;
    int fd;
    struct statvfs vfs;
    if (rc == EIO && s->env && mdb_env_get_fd(s->env, &fd) == 0 &&
        fstatvfs(fd, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < (64u << 10)) {
        /* LMDB reports a short write as EIO; on a full filesystem that
         * is what it was. */
        snprintf(s->err, sizeof s->err,
                 "%s: %s: %s (a short write: the filesystem has %llu bytes "
                 "left)", s->path, doing, strerror(ENOSPC),
                 (unsigned long long)vfs.f_bavail * vfs.f_frsize);
        s->last_rc = ENOSPC;
        return TW_EFULL;
    }
    if (rc == MDB_MAP_FULL) {
        snprintf(s->err, sizeof s->err,
                 "%s: %s: LMDB's map of %llu MiB is full (MDB_MAP_FULL)",
                 s->path, doing, (unsigned long long)(s->map_bytes >> 20));
    } else {
        snprintf(s->err, sizeof s->err, "%s: %s: %s", s->path, doing,
                 mdb_strerror(rc));
    }
    s->last_rc = rc;
    return full ? TW_EFULL : TW_EIO;
}

/* ---- meta ------------------------------------------------------------- */

static int
s_put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, tw_enc_t *e)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {e->sb.size + TW_STORE_CRC, NULL};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        tw_record_seal(v.mv_data, TW_DB_META, name, k.mv_size, e->sb.data,
               e->sb.size);
    }
    return rc;
}

static int
s_check_format(tw_store_t *s, MDB_txn *txn, char *why, size_t wlen)
{
    MDB_val k = {6, "format"}, v;
    int rc = mdb_get(txn, s->dbi[TW_DB_META], &k, &v);
    if (rc != 0) {
        snprintf(why, wlen, "%s: not a taskwheel store (no format record)",
                 s->path);
        return TW_EPROTO;
    }
    return tw_record_format_check(s->path, v.mv_data, v.mv_size, why, wlen);
}

/* Open the LMDB environment of s->path and its databases (creating them
 * when `create`). Returns LMDB's code. */
static int
s_env_open(tw_store_t *s, int create, MDB_txn **txn_out)
{
    int rc = mdb_env_create(&s->env);
    if (rc == 0) {
        mdb_env_set_maxdbs(s->env, TW_DB__COUNT + 2);
        rc = mdb_env_set_mapsize(s->env, (size_t)s->map_bytes);
    }
    if (rc == 0) {
        rc = mdb_env_open(s->env, s->path, s->env_flags, 0640);
    }
    if (rc != 0) {
        if (s->env) {
            mdb_env_close(s->env);
            s->env = NULL;
        }
        return rc;
    }
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_bytes) {
        /* LMDB never maps less than the file holds. */
        s->map_bytes = info.me_mapsize;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(s->env, NULL, create ? 0 : MDB_RDONLY, &txn);
    for (int i = 0; rc == 0 && i < TW_DB__COUNT; i++) {
        rc = mdb_dbi_open(txn, tw_record_db_name((tw_db_t)i),
                          create ? MDB_CREATE : 0,
                          &s->dbi[i]);
    }
    if (rc != 0) {
        if (txn) {
            mdb_txn_abort(txn);
        }
        mdb_env_close(s->env);
        s->env = NULL;
        return rc;
    }
    if (txn_out) {
        *txn_out = txn;
        return 0;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    return rc;
}

/* After a failed write of its meta page LMDB refuses every transaction
 * (MDB_PANIC) until the environment is opened again: do that, under the
 * lock the sync job takes. The file is consistent (the meta page that
 * failed is not used). */
static int
s_reopen(tw_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->env) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    int rc = s_env_open(s, 0, NULL);
    s->reopens++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* The stop marker in broker.lock: "clean" after a clean close, anything
 * else (empty: a new directory, or a broker that died) means unclean. */
static int
s_read_marker(int fd)
{
    char buf[16];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    return n >= 5 && memcmp(buf, "clean", 5) == 0;
}

static int
s_write_marker(int fd, const char *text)
{
    /* Emptied first (that needs no room on a full disk): whatever fails
     * after, the marker does not say "clean". */
    size_t n = strlen(text);
    if (ftruncate(fd, 0) != 0 || fdatasync(fd) != 0 ||
        pwrite(fd, text, n, 0) != (ssize_t)n || fdatasync(fd) != 0) {
        return TW_EIO;
    }
    return 0;
}

int
tw_store_open(tw_store_t **out, const char *dir, uint64_t map_bytes,
              int fsync_policy, unsigned flags, char *why, size_t wlen)
{
    *out = NULL;
    /* Like mkdir -p: the parents first. */
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *c = path + 1; *c; c++) {
        if (*c == '/') {
            *c = '\0';
            mkdir(path, 0750);
            *c = '/';
        }
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(why, wlen, "%s: cannot create the data directory: %s", dir,
                 strerror(errno));
        return TW_EIO;
    }
    tw_store_t *s = tw_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->path = tw_strdup(dir);
    s->fsync_policy = fsync_policy;
    s->map_bytes = map_bytes;
    s->lock_fd = -1;
    char file[4096];
    snprintf(file, sizeof file, "%s/broker.lock", dir);
    s->lock_fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(why, wlen, "%s: %s", dir,
                 s->lock_fd < 0 ? strerror(errno)
                                : "in use by another broker (broker.lock "
                                  "is held)");
        tw_store_close(&s);
        return TW_EIO;
    }
    /* Nothing maps data.mdb before it was read through the bounds-checked
     * reader (verify.h): a damaged file is refused here, with a sentence,
     * and never reaches LMDB. After an unclean stop every page is
     * accounted for too. */
    s->was_clean = s_read_marker(s->lock_fd);
    int fresh = 0;
    int rc = tw_verify_store(dir, (flags & TW_STORE_VERIFY) || !s->was_clean,
                             &fresh, &s->vstats, why, wlen);
    if (rc != 0) {
        tw_store_close(&s);
        return rc;
    }
    s->env_flags = MDB_NOTLS;
    if (fsync_policy != TW_FSYNC_ALWAYS) {
        s->env_flags |= MDB_NOSYNC;
    }
    MDB_txn *txn = NULL;
    rc = s_env_open(s, fresh, &txn);
    int out_rc = 0;
    if (rc != 0) {
        snprintf(why, wlen, "%s: %s: %s", dir,
                 fresh ? "cannot create the store" : "cannot open the store",
                 mdb_strerror(rc));
        out_rc = fresh ? TW_EIO : TW_EPROTO;
    } else if (fresh) {
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 2);
        tw_enc_cstr(&e, "v");
        tw_enc_uint(&e, TW_STORE_VERSION);
        tw_enc_cstr(&e, "created");
        tw_enc_uint(&e, tw_wall_ms());
        rc = s_put_meta(txn, s->dbi[TW_DB_META], "format", &e);
        tw_enc_free(&e);
        if (rc != 0) {
            snprintf(why, wlen, "%s: cannot write the format record: %s",
                     dir, mdb_strerror(rc));
            out_rc = TW_EIO;
        }
    } else {
        out_rc = s_check_format(s, txn, why, wlen);
    }
    if (rc == 0 && out_rc == 0) {
        /* Commit even the read-only one: an abort would close the
         * database handles it opened. */
        rc = mdb_txn_commit(txn);
        if (rc != 0) {
            snprintf(why, wlen, "%s: cannot create the store: %s", dir,
                     mdb_strerror(rc));
            out_rc = TW_EIO;
        }
    } else if (txn) {
        mdb_txn_abort(txn);
    }
    if (out_rc != 0) {
        tw_store_close(&s);
        return out_rc;
    }
    *out = s;
    return 0;
}

int
tw_store_mark_running(tw_store_t *s)
{
    char text[64];
    snprintf(text, sizeof text, "running %ld\n", (long)getpid());
    int rc = s_write_marker(s->lock_fd, text);
    s->running = 1; /* not "clean" any more, whatever was written */
    return rc;
}

int
tw_store_was_clean(const tw_store_t *s)
{
    return s->was_clean;
}

const tw_verify_stats_t *
tw_store_verified(const tw_store_t *s)
{
    return &s->vstats;
}

void
tw_store_close(tw_store_t **sp)
{
    tw_store_t *s = *sp;
    if (!s) {
        return;
    }
    if (s->env) {
        if (s->txn) {
            mdb_txn_abort(s->txn);
        }
        int synced = mdb_env_sync(s->env, 1) == 0;
        mdb_env_close(s->env);
        if (s->running && synced) {
            /* Everything is on disk: the next start may skip the deep
             * check. */
            s_write_marker(s->lock_fd, "clean\n");
        }
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    pthread_mutex_destroy(&s->mu);
    tw_free(s->path);
    tw_free(s);
    *sp = NULL;
}

/* ---- transactions ----------------------------------------------------- */

int
tw_store_begin(tw_store_t *s)
{
    if (s->txn) {
        return 0;
    }
    int rc = s->env ? mdb_txn_begin(s->env, NULL, 0, &s->txn) : MDB_PANIC;
    if (rc == MDB_PANIC && (rc = s_reopen(s)) == 0) {
        rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    }
    if (rc != 0) {
        s->txn = NULL;
        return s_note(s, rc, "cannot begin a write");
    }
    return 0;
}

static int
s_fail(tw_store_t *s, int rc)
{
    tw_store_abort(s);
    return s_note(s, rc, "cannot write");
}

/* mdb_put with room reserved for the value and its checksum, which are
 * then written in place (one copy, straight into the page). */
static int
s_put(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
      const void *val, size_t vlen, unsigned flags)
{
    MDB_val k = {klen, (void *)key}, v = {vlen + TW_STORE_CRC, NULL};
    int rc = mdb_put(s->txn, s->dbi[db], &k, &v, flags | MDB_RESERVE);
    if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
        v.mv_size = vlen + TW_STORE_CRC;
        rc = mdb_put(s->txn, s->dbi[db], &k, &v, MDB_RESERVE);
    }
    if (rc != 0) {
        return s_fail(s, rc);
    }
    tw_record_seal(v.mv_data, db, key, klen, val, vlen);
    return 0;
}

int
tw_store_put(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
             const void *val, size_t vlen)
{
    return s_put(s, db, key, klen, val, vlen, 0);
}

int
tw_store_put_last(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    return s_put(s, db, key, klen, val, vlen, MDB_APPEND);
}

int
tw_store_del(tw_store_t *s, tw_db_t db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(s->txn, s->dbi[db], &k, NULL);
    return rc && rc != MDB_NOTFOUND ? s_fail(s, rc) : 0;
}

int
tw_store_del_prefix(tw_store_t *s, tw_db_t db, const void *prefix,
                    size_t plen)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(s->txn, s->dbi[db], &cur);
    if (rc != 0) {
        return s_fail(s, rc);
    }
    for (;;) {
        /* Seek again after each delete: simpler than trusting where a
         * deleted cursor points. */
        MDB_val k = {plen, (void *)prefix}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < plen ||
            memcmp(k.mv_data, prefix, plen) != 0) {
            break;
        }
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0) {
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? s_fail(s, rc) : 0;
}

int
tw_store_commit(tw_store_t *s)
{
    if (!s->txn) {
        return 0;
    }
    int rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    return rc ? s_note(s, rc, "cannot commit") : 0;
}

void
tw_store_abort(tw_store_t *s)
{
    if (s->txn) {
        mdb_txn_abort(s->txn);
        s->txn = NULL;
    }
}

int
tw_store_sync(tw_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->env ? mdb_env_sync(s->env, 1) : 0;
    pthread_mutex_unlock(&s->mu);
    return rc ? TW_EIO : 0;
}

int
tw_store_use(tw_store_t *s, tw_store_use_t *u)
{
    memset(u, 0, sizeof *u);
    u->map_bytes = s->map_bytes;
    MDB_txn *txn;
    if (!s->env || mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0) {
        return TW_EIO;
    }
    /* Pages in use: both meta pages and every page of every tree (the
     * free-page list's own included); the rest up to the last page are
     * free and reused before the file grows. */
    MDB_stat st;
    uint64_t pages = 2, psize = 4096;
    int rc = 0;
    MDB_dbi dbis[TW_DB__COUNT + 2] = {0, 1};
    for (int i = 0; i < TW_DB__COUNT; i++) {
        dbis[2 + i] = s->dbi[i];
    }
    for (int i = 0; i < TW_DB__COUNT + 2 && rc == 0; i++) {
        rc = mdb_stat(txn, dbis[i], &st);
        pages += st.ms_branch_pages + st.ms_leaf_pages +
                 st.ms_overflow_pages;
        psize = st.ms_psize;
    }
    MDB_envinfo info;
    if (rc == 0) {
        rc = mdb_env_info(s->env, &info);
    }
    mdb_txn_abort(txn);
    if (rc != 0) {
        return TW_EIO;
    }
    u->live_bytes = pages * psize;
    u->last_bytes = ((uint64_t)info.me_last_pgno + 1) * psize;
    int fd = -1;
    struct stat sb;
    struct statvfs vfs;
    if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &sb) == 0) {
        u->file_bytes = (uint64_t)sb.st_size;
    }
    if (fd >= 0 && fstatvfs(fd, &vfs) == 0) {
        u->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        u->have_disk = 1;
    }
    return 0;
}

uint64_t
tw_store_reopens(const tw_store_t *s)
{
    return s->reopens;
}

/* Describe a record whose checksum does not match. */
static int
s_damaged(tw_store_t *s, tw_db_t db, const void *key, size_t klen)
{
    char hex[2 * 16 + 1];
    size_t n = klen < 16 ? klen : 16;
    for (size_t i = 0; i < n; i++) {
        snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)key)[i]);
    }
    hex[2 * n] = '\0';
    snprintf(s->err, sizeof s->err,
             "%s: a record in '%s' (key %s%s) is damaged: its checksum does "
             "not match", s->path, tw_record_db_name(db), hex,
             klen > n ? "..." : "");
    return TW_EPROTO;
}

int
tw_store_each(tw_store_t *s, tw_db_t db, tw_store_each_fn fn, void *arg)
{
    return tw_store_each_after(s, db, NULL, 0, fn, arg);
}

int
tw_store_each_after(tw_store_t *s, tw_db_t db, const void *after,
                    size_t alen, tw_store_each_fn fn, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        snprintf(s->err, sizeof s->err, "%s: cannot read the store: %s",
                 s->path, mdb_strerror(rc));
        return TW_EIO;
    }
    rc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (rc != 0) {
        mdb_txn_abort(txn);
        snprintf(s->err, sizeof s->err, "%s: cannot read the store: %s",
                 s->path, mdb_strerror(rc));
        return TW_EIO;
    }
    MDB_val k = {alen, (void *)after}, v;
    int out = 0;
    rc = mdb_cursor_get(cur, &k, &v, after ? MDB_SET_RANGE : MDB_FIRST);
    if (rc == 0 && after && k.mv_size == alen &&
        memcmp(k.mv_data, after, alen) == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    for (; rc == 0 && !out; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t vlen = v.mv_size;
        if (tw_record_unseal(db, k.mv_data, k.mv_size, v.mv_data, &vlen)) {
            out = s_damaged(s, db, k.mv_data, k.mv_size);
            break;
        }
        out = fn(k.mv_data, k.mv_size, v.mv_data, vlen, arg);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (!out && rc != MDB_NOTFOUND) {
        snprintf(s->err, sizeof s->err, "%s: cannot read the store: %s",
                 s->path, mdb_strerror(rc));
        return TW_EIO;
    }
    return out;
}

int
tw_store_get(tw_store_t *s, tw_db_t db, const void *key, size_t klen,
             void **val, size_t *vlen)
{
    MDB_txn *txn = s->txn;
    int own = !txn;
    if (own && mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0) {
        return TW_EIO;
    }
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, s->dbi[db], &k, &v);
    int out = rc == 0 ? 0 : rc == MDB_NOTFOUND ? TW_ENOENT : TW_EIO;
    size_t n = v.mv_size;
    if (rc == 0 && tw_record_unseal(db, key, klen, v.mv_data, &n) != 0) {
        out = s_damaged(s, db, key, klen);
    } else if (rc == 0) {
        *val = tw_malloc(n ? n : 1);
        memcpy(*val, v.mv_data, n);
        *vlen = n;
    }
    if (own) {
        mdb_txn_abort(txn);
    }
    return out;
}

const char *
tw_store_error(const tw_store_t *s)
{
    return s->err;
}

uint64_t
tw_store_map_bytes(const tw_store_t *s)
{
    return s->map_bytes;
}

uint64_t
tw_store_used_bytes(tw_store_t *s)
{
    tw_store_use_t u;
    return tw_store_use(s, &u) == 0 ? u.live_bytes : 0;
}

int
tw_store_fsync_policy(const tw_store_t *s)
{
    return s->fsync_policy;
}

const char *
tw_store_path(const tw_store_t *s)
{
    return s->path;
}

int
tw_store_counters_get(tw_store_t *s, uint64_t *next_id, uint64_t *next_ep)
{
    void *v;
    size_t vlen;
    *next_id = 1;
    *next_ep = 1;
    int rc = tw_store_get(s, TW_DB_META, "counters", 8, &v, &vlen);
    if (rc == TW_ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    rc = tw_record_counters_dec(v, vlen, next_id, next_ep);
    tw_free(v);
    return rc;
}

int
tw_store_counters_put(tw_store_t *s, uint64_t next_id, uint64_t next_ep)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_record_counters_enc(&e, next_id, next_ep);
    int rc = tw_store_put(s, TW_DB_META, "counters", 8, e.sb.data,
                          e.sb.size);
    tw_enc_free(&e);
    return rc;
}
