/*  broker/store.c - the LMDB environment and the record codecs (see
 *  store.h).
 *
 *  Opening is careful because a store is somebody's queue: the directory
 *  is locked first (flock on broker.lock: one broker per store), then LMDB
 *  opens data.mdb; a file LMDB does not recognise, a missing meta record or
 *  another format version stops the broker with a sentence naming the path,
 *  and nothing is written. Only a directory without data.mdb gets a fresh
 *  store.
 */
#include "broker/store.h"
#include "broker/verify.h"
#include "common/alloc.h"
#include "common/crc32c.h"
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

static const char *s_db_names[TW_DB__COUNT] = {
    "meta", "tasks", "stations", "pools", "groups"};

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

void
tw_store_id_key(uint64_t id, unsigned char key[8])
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)(id & 0xff);
        id >>= 8;
    }
}

uint64_t
tw_store_key_id(const void *key, size_t klen)
{
    const unsigned char *k = key;
    uint64_t id = 0;
    for (size_t i = 0; i < klen && i < 8; i++) {
        id = id << 8 | k[i];
    }
    return id;
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

/* ---- checksums ---------------------------------------------------------- */

uint32_t
tw_store_crc(tw_db_t db, const void *key, size_t klen, const void *val,
             size_t vlen)
{
    unsigned char d = (unsigned char)db;
    uint32_t crc = tw_crc32c(0, &d, 1);
    crc = tw_crc32c(crc, key, klen);
    return tw_crc32c(crc, val, vlen);
}

/* Write val and its checksum into `out` (vlen + TW_STORE_CRC bytes). */
static void
s_seal(unsigned char *out, tw_db_t db, const void *key, size_t klen,
       const void *val, size_t vlen)
{
    if (vlen) {
        memcpy(out, val, vlen);
    }
    uint32_t crc = tw_store_crc(db, key, klen, val, vlen);
    for (int i = 0; i < TW_STORE_CRC; i++) {
        out[vlen + (size_t)i] = (unsigned char)(crc >> (24 - 8 * i));
    }
}

int
tw_store_unseal(tw_db_t db, const void *key, size_t klen, const void *val,
                size_t *vlen)
{
    if (*vlen < TW_STORE_CRC) {
        return TW_EPROTO;
    }
    size_t n = *vlen - TW_STORE_CRC;
    const unsigned char *t = (const unsigned char *)val + n;
    uint32_t want = (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 |
                    (uint32_t)t[2] << 8 | t[3];
    if (tw_store_crc(db, key, klen, val, n) != want) {
        return TW_EPROTO;
    }
    *vlen = n;
    return 0;
}

/* ---- meta ------------------------------------------------------------- */

static int
s_put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, tw_enc_t *e)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {e->sb.size + TW_STORE_CRC, NULL};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        s_seal(v.mv_data, TW_DB_META, name, k.mv_size, e->sb.data,
               e->sb.size);
    }
    return rc;
}

int
tw_store_format_check(const char *path, const void *val, size_t vlen,
                      char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    uint64_t ver = 0;
    size_t off = 0;
    int ok = msgpack_unpack_next(&up, val, vlen, &off) ==
                 MSGPACK_UNPACK_SUCCESS &&
             up.data.type == MSGPACK_OBJECT_MAP;
    const msgpack_object *v = ok ? tw_mp_get(&up.data, "v") : NULL;
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        ver = v->via.u64;
    }
    msgpack_unpacked_destroy(&up);
    if (!ok || ver == 0) {
        snprintf(why, wlen, "%s: the format record is unreadable (damaged; "
                 "try --salvage)", path);
        return TW_EPROTO;
    }
    if (ver == 1) {
        /* Version 1 had no checksums: the format record is the bare map. */
        snprintf(why, wlen,
                 "%s: store format version 1 (records without checksums); "
                 "this broker reads version %d: convert it with "
                 "'taskwheel-broker --salvage %s --into NEWDIR' (left "
                 "untouched)",
                 path, TW_STORE_VERSION, path);
        return TW_EVERSION;
    }
    if (ver != TW_STORE_VERSION) {
        snprintf(why, wlen,
                 "%s: store format version %llu, this broker reads version "
                 "%d only (left untouched)",
                 path, (unsigned long long)ver, TW_STORE_VERSION);
        return TW_EVERSION;
    }
    size_t n = vlen;
    if (tw_store_unseal(TW_DB_META, "format", 6, val, &n) != 0 || n != off) {
        snprintf(why, wlen, "%s: the format record is damaged (checksum; "
                 "try --salvage)", path);
        return TW_EPROTO;
    }
    return 0;
}

/* Read "format" and check it: 0, or an error with `why` set. */
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
    return tw_store_format_check(s->path, v.mv_data, v.mv_size, why, wlen);
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
        rc = mdb_dbi_open(txn, s_db_names[i], create ? MDB_CREATE : 0,
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
    int rc = tw_store_verify(dir, (flags & TW_STORE_VERIFY) || !s->was_clean,
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
    s_seal(v.mv_data, db, key, klen, val, vlen);
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
             "not match", s->path, tw_store_db_name(db), hex,
             klen > n ? "..." : "");
    return TW_EPROTO;
}

int
tw_store_each(tw_store_t *s, tw_db_t db, tw_store_each_fn fn, void *arg)
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
    MDB_val k, v;
    int out = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !out;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t vlen = v.mv_size;
        if (tw_store_unseal(db, k.mv_data, k.mv_size, v.mv_data, &vlen)) {
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
    if (rc == 0 && tw_store_unseal(db, key, klen, v.mv_data, &n) != 0) {
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

const char *
tw_store_db_name(tw_db_t db)
{
    return db >= 0 && db < TW_DB__COUNT ? s_db_names[db] : "?";
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

/* ---- record codecs ---------------------------------------------------- */

/* Key/value helpers: one-letter and short keys keep records small. */
#define S_KU(e, k, v)                                                        \
    do {                                                                     \
        tw_enc_cstr(e, k);                                                   \
        tw_enc_uint(e, (uint64_t)(v));                                       \
    } while (0)
#define S_KI(e, k, v)                                                        \
    do {                                                                     \
        tw_enc_cstr(e, k);                                                   \
        tw_enc_int(e, (int64_t)(v));                                         \
    } while (0)

static void
s_kstr(tw_enc_t *e, const char *k, const char *v, size_t len)
{
    tw_enc_cstr(e, k);
    tw_enc_str(e, v ? v : "", v ? len : 0);
}

static void
s_kbin(tw_enc_t *e, const char *k, const void *v, size_t len)
{
    tw_enc_cstr(e, k);
    tw_enc_bin(e, v ? v : "", v ? len : 0);
}

/* Start decoding: the map, or NULL. */
static const msgpack_object *
s_dec_map(msgpack_unpacked *up, const void *buf, size_t len)
{
    if (msgpack_unpack_next(up, buf, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    return &up->data;
}

static int
s_key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/* Read a value of a known type; 0 if the type is wrong. */
static int
s_u64(const msgpack_object *v, uint64_t *out)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return 0;
    }
    *out = v->via.u64;
    return 1;
}

static int
s_i64(const msgpack_object *v, int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = (int64_t)v->via.u64;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return 1;
    }
    return 0;
}

static int
s_str(const msgpack_object *v, const char **p, size_t *len)
{
    if (v->type == MSGPACK_OBJECT_STR) {
        *p = v->via.str.ptr;
        *len = v->via.str.size;
        return 1;
    }
    if (v->type == MSGPACK_OBJECT_BIN) {
        *p = v->via.bin.ptr;
        *len = v->via.bin.size;
        return 1;
    }
    return 0;
}

/* The task record is written once or more per task, so it is encoded by
 * hand into one reserved buffer with small-integer keys (one byte each)
 * instead of a packer call per key. */
enum {
    S_T_ID = 0, S_T_SEQ, S_T_EP, S_T_SHASH, S_T_WORKER, S_T_TWALL, S_T_DUE,
    S_T_PRI, S_T_TO, S_T_RE, S_T_AT, S_T_STATE, S_T_CANCEL, S_T_IDENT,
    S_T_HANDLER, S_T_DATA, S_T_POOL, S_T_ERROR, S_T_KEY, S_T_GROUPS
};

static unsigned char *
s_w_uint(unsigned char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (unsigned char)v;
    } else if (v < 256) {
        *p++ = 0xcc;
        *p++ = (unsigned char)v;
    } else if (v < 65536) {
        *p++ = 0xcd;
        *p++ = (unsigned char)(v >> 8);
        *p++ = (unsigned char)v;
    } else if (v < (1ULL << 32)) {
        *p++ = 0xce;
        for (int i = 3; i >= 0; i--) {
            *p++ = (unsigned char)(v >> (8 * i));
        }
    } else {
        *p++ = 0xcf;
        for (int i = 7; i >= 0; i--) {
            *p++ = (unsigned char)(v >> (8 * i));
        }
    }
    return p;
}

static unsigned char *
s_w_int(unsigned char *p, int64_t v)
{
    if (v >= 0) {
        return s_w_uint(p, (uint64_t)v);
    }
    *p++ = 0xd3;
    for (int i = 7; i >= 0; i--) {
        *p++ = (unsigned char)((uint64_t)v >> (8 * i));
    }
    return p;
}

/* A str (bin = 0) or bin (bin = 1) of `len` bytes. */
static unsigned char *
s_w_raw(unsigned char *p, const void *v, size_t len, int bin)
{
    if (!bin && len < 32) {
        *p++ = (unsigned char)(0xa0 | len);
    } else if (len < 256) {
        *p++ = bin ? 0xc4 : 0xd9;
        *p++ = (unsigned char)len;
    } else if (len < 65536) {
        *p++ = bin ? 0xc5 : 0xda;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = bin ? 0xc6 : 0xdb;
        for (int i = 3; i >= 0; i--) {
            *p++ = (unsigned char)(len >> (8 * i));
        }
    }
    if (len) {
        memcpy(p, v, len);
    }
    return p + len;
}

size_t
tw_store_task_enc_max(const tw_store_task_t *r)
{
    size_t need = 20 * 10 + 6 * 5 + r->ident_len + r->handler_len +
                  r->data_len + r->pool_len + r->error_len + r->key_len;
    for (size_t i = 0; i < r->ngroups; i++) {
        need += 5 + r->glens[i];
    }
    return need;
}

void
tw_store_task_enc(tw_enc_t *e, const tw_store_task_t *r)
{
    tw_enc_clear(e);
    size_t need = tw_store_task_enc_max(r);
    if (e->sb.alloc < need) {
        e->sb.data = realloc(e->sb.data, need);
        e->sb.alloc = need;
    }
    e->sb.size = tw_store_task_enc_to((unsigned char *)e->sb.data, r);
}

size_t
tw_store_task_enc_to(unsigned char *out, const tw_store_task_t *r)
{
    unsigned char *p = out;
    /* Zero numbers and the default pool are left out (the decoder reads
     * them as 0 and "default"), so the count is patched at the end. */
    unsigned n = 0;
    *p++ = 0xde; /* map16: more keys than a fixmap holds */
    p += 2;
#define S_U(k, v)                                                            \
    do {                                                                     \
        if ((v) != 0) {                                                      \
            *p++ = (k);                                                      \
            p = s_w_uint(p, (uint64_t)(v));                                  \
            n++;                                                             \
        }                                                                    \
    } while (0)
    S_U(S_T_ID, r->id);
    S_U(S_T_SEQ, r->seq);
    S_U(S_T_EP, r->ep);
    S_U(S_T_SHASH, r->shash);
    S_U(S_T_WORKER, r->worker);
    S_U(S_T_TWALL, r->t_wall);
    S_U(S_T_DUE, r->due_wall);
    if (r->priority) {
        *p++ = S_T_PRI;
        p = s_w_int(p, r->priority);
        n++;
    }
    S_U(S_T_TO, r->timeout_ms);
    S_U(S_T_RE, r->retries);
    S_U(S_T_AT, r->attempt);
    S_U(S_T_STATE, r->state);
    S_U(S_T_CANCEL, r->cancel);
#undef S_U
    if (r->ident && r->ident_len) {
        *p++ = S_T_IDENT;
        p = s_w_raw(p, r->ident, r->ident_len, 1);
        n++;
    }
    *p++ = S_T_HANDLER;
    p = s_w_raw(p, r->handler, r->handler_len, 0);
    n++;
    if (r->data && r->data_len) {
        *p++ = S_T_DATA;
        p = s_w_raw(p, r->data, r->data_len, 1);
        n++;
    }
    if (r->pool && r->pool_len &&
        !(r->pool_len == 7 && memcmp(r->pool, "default", 7) == 0)) {
        *p++ = S_T_POOL;
        p = s_w_raw(p, r->pool, r->pool_len, 0);
        n++;
    }
    if (r->error) {
        *p++ = S_T_ERROR;
        p = s_w_raw(p, r->error, r->error_len, 0);
        n++;
    }
    if (r->key) {
        *p++ = S_T_KEY;
        p = s_w_raw(p, r->key, r->key_len, 1);
        n++;
    }
    if (r->ngroups) {
        *p++ = S_T_GROUPS;
        *p++ = 0xdc; /* array16 */
        *p++ = (unsigned char)(r->ngroups >> 8);
        *p++ = (unsigned char)r->ngroups;
        for (size_t i = 0; i < r->ngroups; i++) {
            p = s_w_raw(p, r->gnames[i], r->glens[i], 0);
        }
        n++;
    }
    out[1] = (unsigned char)(n >> 8);
    out[2] = (unsigned char)n;
    return (size_t)(p - out);
}

int
tw_store_task_dec(msgpack_unpacked *up, const void *buf, size_t len,
                  tw_store_task_t *r)
{
    memset(r, 0, sizeof *r);
    const msgpack_object *m = s_dec_map(up, buf, len);
    if (!m) {
        return TW_EPROTO;
    }
    int have_id = 0, have_h = 0;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            continue; /* a later version's key */
        }
        uint64_t u = 0;
        const char *p = NULL;
        int ok = 1;
        switch (k->via.u64) {
        case S_T_ID:
            ok = have_id = s_u64(v, &r->id);
            break;
        case S_T_SEQ:
            ok = s_u64(v, &r->seq);
            break;
        case S_T_EP:
            ok = s_u64(v, &r->ep);
            break;
        case S_T_SHASH:
            ok = s_u64(v, &r->shash);
            break;
        case S_T_WORKER:
            ok = s_u64(v, &r->worker);
            break;
        case S_T_TWALL:
            ok = s_u64(v, &r->t_wall);
            break;
        case S_T_DUE:
            ok = s_u64(v, &r->due_wall);
            break;
        case S_T_PRI:
            ok = s_i64(v, &r->priority);
            break;
        case S_T_TO:
            ok = s_u64(v, &u);
            r->timeout_ms = (uint32_t)u;
            break;
        case S_T_RE:
            ok = s_u64(v, &u);
            r->retries = (uint16_t)u;
            break;
        case S_T_AT:
            ok = s_u64(v, &u);
            r->attempt = (uint16_t)u;
            break;
        case S_T_STATE:
            ok = s_u64(v, &u) && u <= TW_ST_UNKNOWN;
            r->state = (uint8_t)u;
            break;
        case S_T_CANCEL:
            ok = s_u64(v, &u);
            r->cancel = (uint8_t)u;
            break;
        case S_T_IDENT:
            ok = s_str(v, &p, &r->ident_len);
            r->ident = r->ident_len ? p : NULL;
            break;
        case S_T_HANDLER:
            ok = have_h = s_str(v, &r->handler, &r->handler_len);
            break;
        case S_T_DATA:
            ok = s_str(v, &p, &r->data_len);
            r->data = r->data_len ? p : NULL;
            break;
        case S_T_POOL:
            ok = s_str(v, &r->pool, &r->pool_len);
            break;
        case S_T_ERROR:
            ok = s_str(v, &r->error, &r->error_len);
            break;
        case S_T_KEY:
            ok = s_str(v, &r->key, &r->key_len);
            break;
        case S_T_GROUPS:
            ok = v->type == MSGPACK_OBJECT_ARRAY;
            for (uint32_t j = 0; ok && j < v->via.array.size; j++) {
                ok = v->via.array.ptr[j].type == MSGPACK_OBJECT_STR;
            }
            r->gobj = v;
            r->ngroups = ok ? v->via.array.size : 0;
            break;
        default:
            break;
        }
        if (!ok) {
            return TW_EPROTO;
        }
    }
    return have_id && have_h && r->id ? 0 : TW_EPROTO;
}

void
tw_store_station_enc(tw_enc_t *e, const tw_store_station_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 15 + (r->ck != NULL) + (r->code != NULL) +
                      (r->last_error != NULL));
    s_kstr(e, "sid", r->sid, r->sid_len);
    s_kstr(e, "h", r->handler, r->handler_len);
    s_kbin(e, "a", r->args, r->args_len);
    S_KU(e, "nx", r->next);
    S_KU(e, "wa", r->wanted);
    S_KU(e, "s", r->state);
    S_KU(e, "rs", r->restart);
    S_KU(e, "pl", r->placement);
    S_KU(e, "iv", r->interval_ms);
    S_KU(e, "to", r->timeout_ms);
    S_KU(e, "rn", r->restarts);
    S_KU(e, "ep", r->epoch);
    S_KU(e, "it", r->iterations);
    tw_enc_cstr(e, "tg");
    tw_enc_map(e, r->ntags / 2);
    for (size_t i = 0; i + 1 < r->ntags; i += 2) {
        tw_enc_cstr(e, r->tags[i]);
        tw_enc_cstr(e, r->tags[i + 1]);
    }
    S_KU(e, "v", 1);
    if (r->ck) {
        s_kbin(e, "ck", r->ck, r->ck_len);
    }
    if (r->code) {
        s_kstr(e, "cd", r->code, r->code_len);
    }
    if (r->last_error) {
        s_kstr(e, "le", r->last_error, r->last_error_len);
    }
}

int
tw_store_station_dec(msgpack_unpacked *up, const void *buf, size_t len,
                     tw_store_station_t *r)
{
    memset(r, 0, sizeof *r);
    const msgpack_object *m = s_dec_map(up, buf, len);
    if (!m) {
        return TW_EPROTO;
    }
    int have = 0;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        uint64_t u = 0;
        int ok = 1;
        const char *p = NULL;
        if (s_key_is(k, "sid")) {
            ok = s_str(v, &r->sid, &r->sid_len);
            have |= 1;
        } else if (s_key_is(k, "h")) {
            ok = s_str(v, &r->handler, &r->handler_len);
            have |= 2;
        } else if (s_key_is(k, "a")) {
            ok = s_str(v, &p, &r->args_len);
            r->args = r->args_len ? p : NULL;
        } else if (s_key_is(k, "ck")) {
            ok = s_str(v, &p, &r->ck_len);
            r->ck = p;
        } else if (s_key_is(k, "cd")) {
            ok = s_str(v, &r->code, &r->code_len);
        } else if (s_key_is(k, "le")) {
            ok = s_str(v, &r->last_error, &r->last_error_len);
        } else if (s_key_is(k, "tg")) {
            ok = v->type == MSGPACK_OBJECT_MAP;
            for (uint32_t j = 0; ok && j < v->via.map.size; j++) {
                ok = v->via.map.ptr[j].key.type == MSGPACK_OBJECT_STR &&
                     v->via.map.ptr[j].val.type == MSGPACK_OBJECT_STR;
            }
            r->tobj = v->via.map.size ? v : NULL;
        } else if (s_key_is(k, "ep")) {
            ok = s_u64(v, &r->epoch);
        } else if (s_key_is(k, "it")) {
            ok = s_u64(v, &r->iterations);
        } else if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 2) {
            ok = s_u64(v, &u);
            const char *kp = k->via.str.ptr;
#define S_IS(a) (kp[0] == (a)[0] && kp[1] == (a)[1])
            if (S_IS("nx")) {
                r->next = (uint8_t)u;
            } else if (S_IS("wa")) {
                r->wanted = (uint8_t)u;
            } else if (S_IS("rs")) {
                r->restart = (uint8_t)u;
            } else if (S_IS("pl")) {
                r->placement = (uint8_t)u;
            } else if (S_IS("iv")) {
                r->interval_ms = (uint32_t)u;
            } else if (S_IS("to")) {
                r->timeout_ms = (uint32_t)u;
            } else if (S_IS("rn")) {
                r->restarts = (uint32_t)u;
            }
#undef S_IS
        } else if (s_key_is(k, "s")) {
            ok = s_u64(v, &u);
            r->state = (uint8_t)u;
        }
        if (!ok) {
            return TW_EPROTO;
        }
    }
    return have == 3 && r->sid_len ? 0 : TW_EPROTO;
}

void
tw_store_pool_enc(tw_enc_t *e, const tw_store_pool_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 7);
    s_kstr(e, "n", r->name, r->name_len);
    S_KU(e, "sz", r->size);
    S_KU(e, "en", r->ended);
    S_KU(e, "ca", r->cancelled);
    S_KU(e, "ds", r->next_dseq);
    S_KU(e, "lk", r->locked);
    S_KU(e, "cl", r->closed);
}

int
tw_store_pool_dec(msgpack_unpacked *up, const void *buf, size_t len,
                  tw_store_pool_t *r)
{
    memset(r, 0, sizeof *r);
    const msgpack_object *m = s_dec_map(up, buf, len);
    if (!m) {
        return TW_EPROTO;
    }
    int have = 0;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        uint64_t u = 0;
        int ok;
        if (s_key_is(k, "n")) {
            ok = have = s_str(v, &r->name, &r->name_len);
            continue;
        }
        ok = s_u64(v, &u);
        if (s_key_is(k, "sz")) {
            r->size = u;
        } else if (s_key_is(k, "en")) {
            r->ended = u;
        } else if (s_key_is(k, "ca")) {
            r->cancelled = u;
        } else if (s_key_is(k, "ds")) {
            r->next_dseq = u;
        } else if (s_key_is(k, "lk")) {
            r->locked = (uint8_t)u;
        } else if (s_key_is(k, "cl")) {
            r->closed = (uint8_t)u;
        }
        if (!ok) {
            return TW_EPROTO;
        }
    }
    return have && r->name_len ? 0 : TW_EPROTO;
}

void
tw_store_group_enc(tw_enc_t *e, const tw_store_group_t *r)
{
    tw_enc_clear(e);
    tw_enc_map(e, 10);
    s_kstr(e, "p", r->pool, r->pool_len);
    s_kstr(e, "n", r->name, r->name_len);
    S_KI(e, "li", r->limit);
    S_KI(e, "ca", r->calls);
    S_KU(e, "ad", r->admitted);
    S_KU(e, "en", r->ended);
    S_KU(e, "cn", r->cancelled);
    S_KU(e, "fu", r->full);
    S_KU(e, "bl", r->before_lock);
    S_KU(e, "v", 1);
}

int
tw_store_group_dec(msgpack_unpacked *up, const void *buf, size_t len,
                   tw_store_group_t *r)
{
    memset(r, 0, sizeof *r);
    const msgpack_object *m = s_dec_map(up, buf, len);
    if (!m) {
        return TW_EPROTO;
    }
    int have = 0;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        uint64_t u = 0;
        int ok = 1;
        if (s_key_is(k, "p")) {
            ok = s_str(v, &r->pool, &r->pool_len);
            have |= 1;
        } else if (s_key_is(k, "n")) {
            ok = s_str(v, &r->name, &r->name_len);
            have |= 2;
        } else if (s_key_is(k, "li")) {
            ok = s_i64(v, &r->limit);
        } else if (s_key_is(k, "ca")) {
            ok = s_i64(v, &r->calls);
        } else if (s_key_is(k, "ad")) {
            ok = s_u64(v, &r->admitted);
        } else if (s_key_is(k, "en")) {
            ok = s_u64(v, &r->ended);
        } else if (s_key_is(k, "cn")) {
            ok = s_u64(v, &r->cancelled);
        } else if (s_key_is(k, "fu")) {
            ok = s_u64(v, &u);
            r->full = (uint8_t)u;
        } else if (s_key_is(k, "bl")) {
            ok = s_u64(v, &u);
            r->before_lock = (uint8_t)u;
        }
        if (!ok) {
            return TW_EPROTO;
        }
    }
    return have == 3 && r->name_len ? 0 : TW_EPROTO;
}

size_t
tw_store_group_key(char *key, const char *pool, size_t plen,
                   const char *group, size_t glen)
{
    memcpy(key, pool, plen);
    key[plen] = '\0';
    memcpy(key + plen + 1, group, glen);
    return plen + 1 + glen;
}

/* ---- counters --------------------------------------------------------- */

int
tw_store_counters_dec(const void *buf, size_t len, uint64_t *next_id,
                      uint64_t *next_ep)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *m = s_dec_map(&up, buf, len);
    int rc = m ? 0 : TW_EPROTO;
    for (uint32_t i = 0; m && i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *val = &m->via.map.ptr[i].val;
        if (s_key_is(k, "id") && !s_u64(val, next_id)) {
            rc = TW_EPROTO;
        } else if (s_key_is(k, "ep") && !s_u64(val, next_ep)) {
            rc = TW_EPROTO;
        }
    }
    msgpack_unpacked_destroy(&up);
    return rc;
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
    rc = tw_store_counters_dec(v, vlen, next_id, next_ep);
    tw_free(v);
    return rc;
}

int
tw_store_counters_put(tw_store_t *s, uint64_t next_id, uint64_t next_ep)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    S_KU(&e, "id", next_id);
    S_KU(&e, "ep", next_ep);
    int rc = tw_store_put(s, TW_DB_META, "counters", 8, e.sb.data,
                          e.sb.size);
    tw_enc_free(&e);
    return rc;
}
