/*  broker/state/salvage.c - copy the intact records of a damaged store (see
 *  salvage.h).
 */
#include "broker/state/salvage.h"
#include "broker/state/pagefile.h"
#include "broker/state/store.h"
#include "broker/state/verify.h"
#include "common/alloc.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TXN_RECORDS 2000        /* records per write transaction */
#define S_TXN_BYTES (16u << 20)   /* or bytes */

typedef struct {
    FILE *out;
    tw_store_t *to;
    tw_db_t db;
    int version;             /* of the source: 1 has no checksums */
    tw_pagefile_db_t dbs[TW_DB__COUNT];
    int have[TW_DB__COUNT];
    uint64_t copied[TW_DB__COUNT], lost, lost_parts;
    size_t txn_records, txn_bytes;
    uint64_t next_id, next_ep;   /* from the counters record */
    int have_counters;
    void *counters;              /* its value, until judged */
    size_t counters_len;
    uint64_t max_id, max_ep;     /* of the tasks saved */
    int rc;                      /* a write error */
} s_ctx_t;

/* "task 42" or "the first record" for a key. */
static void
s_keyname(const s_ctx_t *x, const void *k, size_t kl, const char *none,
          char *out, size_t olen)
{
    if (!k) {
        snprintf(out, olen, "%s", none);
        return;
    }
    tw_verify_key_name(x->db, k, kl, out, olen);
}

static int
s_bad(const char *what, const void *lo, size_t lol, const void *hi,
      size_t hil, void *arg)
{
    s_ctx_t *x = arg;
    char a[120], b[120];
    s_keyname(x, lo, lol, "its first record", a, sizeof a);
    s_keyname(x, hi, hil, "its last record", b, sizeof b);
    fprintf(x->out, "lost: '%s' from %s up to %s%s: %s\n",
            tw_record_db_name(x->db), a, b, hi ? " (not included)" : "",
            what);
    x->lost_parts++;
    return 0;
}

static void
s_lost_record(s_ctx_t *x, const void *k, size_t kl, const char *what)
{
    char name[120];
    tw_verify_key_name(x->db, k, kl, name, sizeof name);
    fprintf(x->out, "lost: '%s' %s: %s\n", tw_record_db_name(x->db), name,
            what);
    x->lost++;
}

static int
s_flush(s_ctx_t *x, int force)
{
    if (!x->txn_records || (!force && x->txn_records < S_TXN_RECORDS &&
                            x->txn_bytes < S_TXN_BYTES)) {
        return 0;
    }
    x->txn_records = x->txn_bytes = 0;
    return tw_store_commit(x->to);
}

/* The meta tree: the version and the counters. */
static int
s_meta_rec(const void *key, size_t klen, const void *val, size_t vlen,
           unsigned flags, void *arg)
{
    s_ctx_t *x = arg;
    (void)flags;
    if (klen == 6 && memcmp(key, "format", 6) == 0) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, val, vlen, NULL) ==
                MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *v = tw_mp_get(&up.data, "v");
            if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                x->version = (int)v->via.u64;
            }
        }
        msgpack_unpacked_destroy(&up);
        return 0;
    }
    if (klen == 8 && memcmp(key, "counters", 8) == 0 && !x->counters) {
        /* Judged once the version is known ("counters" sorts first). */
        x->counters = tw_malloc(vlen ? vlen : 1);
        memcpy(x->counters, val, vlen);
        x->counters_len = vlen;
    }
    return 0;
}

static void
s_counters(s_ctx_t *x)
{
    size_t n = x->counters_len;
    if (x->counters &&
        (x->version == 1 || tw_record_unseal(TW_DB_META, "counters", 8,
                                            x->counters, &n) == 0) &&
        tw_record_counters_dec(x->counters, n, &x->next_id,
                              &x->next_ep) == 0) {
        x->have_counters = 1;
    } else {
        fprintf(x->out, "lost: the id counters (computed again from the "
                        "tasks saved)\n");
    }
    tw_free(x->counters);
    x->counters = NULL;
}

/* Any other tree: check each record and copy it. */
static int
s_rec(const void *key, size_t klen, const void *val, size_t vlen,
      unsigned flags, void *arg)
{
    s_ctx_t *x = arg;
    (void)flags;
    size_t n = vlen;
    char what[200];
    if (x->version != 1 &&
        tw_record_unseal(x->db, key, klen, val, &n) != 0) {
        s_lost_record(x, key, klen, "its checksum does not match");
        return 0;
    }
    if (tw_verify_record(x->db, key, klen, val, n, what, sizeof what)) {
        s_lost_record(x, key, klen, what);
        return 0;
    }
    if (x->db == TW_DB_TASKS) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        tw_record_task_t r;
        if (tw_record_task_dec(&up, val, n, &r) == 0) {
            x->max_id = r.id > x->max_id ? r.id : x->max_id;
            x->max_ep = r.ep > x->max_ep ? r.ep : x->max_ep;
        }
        msgpack_unpacked_destroy(&up);
    }
    if (!x->txn_records && (x->rc = tw_store_begin(x->to)) != 0) {
        return x->rc;
    }
    if ((x->rc = tw_store_put(x->to, x->db, key, klen, val, n)) != 0) {
        return x->rc;
    }
    x->txn_records++;
    x->txn_bytes += klen + n;
    x->copied[x->db]++;
    return (x->rc = s_flush(x, 0));
}

/* A damaged part of meta, met the second time: told the first. */
static int
s_bad_told(const char *what, const void *lo, size_t lol, const void *hi,
           size_t hil, void *arg)
{
    (void)what, (void)lo, (void)lol, (void)hi, (void)hil, (void)arg;
    return 0;
}

/* The other meta records (a schedule's, the pair's): checked and copied
 * like any record. "format" and "counters" are not copied: the new store
 * writes its own. */
static int
s_meta_copy(const void *key, size_t klen, const void *val, size_t vlen,
            unsigned flags, void *arg)
{
    if ((klen == 6 && memcmp(key, "format", 6) == 0) ||
        (klen == 8 && memcmp(key, "counters", 8) == 0)) {
        return 0;
    }
    return s_rec(key, klen, val, vlen, flags, arg);
}

/* Lock DIR against a running broker without creating anything in it. */
static int
s_lock_source(const char *from, char *why, size_t wlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/broker.lock", from);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1; /* none: nobody can hold it */
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(why, wlen, "%s: in use by another broker (broker.lock is "
                 "held); stop it first", from);
        close(fd);
        return TW_EIO;
    }
    return fd;
}

int
tw_store_salvage(const char *from, const char *into, FILE *out, char *why,
                 size_t wlen)
{
    char path[4096], rfrom[PATH_MAX], rinto[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", into);
    if (stat(path, &sb) == 0) {
        snprintf(why, wlen, "%s already holds a store; salvage into a new "
                 "directory", into);
        return TW_EEXIST;
    }
    if (realpath(from, rfrom) && realpath(into, rinto) &&
        strcmp(rfrom, rinto) == 0) {
        snprintf(why, wlen, "%s: salvage into another directory", into);
        return TW_EINVAL;
    }
    int lock = s_lock_source(from, why, wlen);
    if (lock == TW_EIO) {
        return TW_EIO;
    }
    snprintf(path, sizeof path, "%s/data.mdb", from);
    tw_pagefile_t *f;
    char pwhy[512];
    int rc = tw_pagefile_open(&f, path, pwhy, sizeof pwhy);
    if (rc != 0) {
        snprintf(why, wlen, "%s: nothing can be salvaged: %s", from,
                 rc == TW_ENOENT ? "there is no data.mdb" : pwhy);
        if (lock >= 0) {
            close(lock);
        }
        return rc == TW_ENOENT ? TW_ENOENT : TW_EPROTO;
    }
    const tw_pagefile_info_t *in = tw_pagefile_info(f);
    s_ctx_t x = {.out = out, .version = 0};
    /* First the list of databases and the meta records: which version,
     * and which counters. */
    x.db = TW_DB_META;
    tw_verify_dbs(f, x.dbs, x.have, s_bad, &x, pwhy, sizeof pwhy);
    if (x.have[TW_DB_META]) {
        tw_pagefile_walk(f, &x.dbs[TW_DB_META], "meta", s_meta_rec, s_bad,
                         &x, pwhy, sizeof pwhy);
    }
    if (!x.version) {
        fprintf(out, "lost: the format record (reading the rest as version "
                     "%d)\n", TW_STORE_VERSION);
        x.version = TW_STORE_VERSION;
    }
    s_counters(&x);
    if (x.version != 1 && x.version != TW_STORE_VERSION) {
        snprintf(why, wlen, "%s: store format version %d, which this "
                 "broker cannot read", from, x.version);
        tw_pagefile_close(&f);
        if (lock >= 0) {
            close(lock);
        }
        return TW_EVERSION;
    }
    uint64_t map = in->mapsize;
    if (map < 2 * in->file_bytes + (16u << 20)) {
        map = 2 * in->file_bytes + (16u << 20);
    }
    tw_store_t *to;
    rc = tw_store_open(&to, into, map, TW_FSYNC_NO, 0, why, wlen);
    if (rc != 0) {
        tw_pagefile_close(&f);
        if (lock >= 0) {
            close(lock);
        }
        return rc;
    }
    x.to = to;
    for (int i = TW_DB_META; i < TW_DB__COUNT; i++) {
        x.db = (tw_db_t)i;
        const char *name = tw_record_db_name(x.db);
        if (!x.have[i]) {
            if (i != TW_DB_META) { /* meta's loss is told above */
                fprintf(out, "lost: the whole '%s' database (its entry in "
                             "the database list is gone)\n", name);
                x.lost_parts++;
            }
            continue;
        }
        rc = i == TW_DB_META
                 ? tw_pagefile_walk(f, &x.dbs[i], name, s_meta_copy,
                                    s_bad_told, &x, pwhy, sizeof pwhy)
                 : tw_pagefile_walk(f, &x.dbs[i], name, s_rec, s_bad, &x,
                                    pwhy, sizeof pwhy);
        if (rc == 0) {
            rc = s_flush(&x, 1);
        }
        if (rc != 0) {
            snprintf(why, wlen, "%s: cannot write the new store: %s", into,
                     tw_strerror(rc));
            break;
        }
    }
    if (rc == 0) {
        /* Nothing handed out before may be handed out again. */
        uint64_t id = x.max_id + TW_STORE_RESERVE;
        uint64_t ep = x.max_ep + TW_STORE_RESERVE;
        if (x.have_counters) {
            id = x.next_id > id ? x.next_id : id;
            ep = x.next_ep > ep ? x.next_ep : ep;
        }
        rc = tw_store_begin(to);
        if (rc == 0) {
            rc = tw_store_counters_put(to, id, ep);
        }
        if (rc == 0) {
            rc = tw_store_commit(to);
        }
        if (rc != 0) {
            snprintf(why, wlen, "%s: cannot write the new store: %s", into,
                     tw_strerror(rc));
        }
    }
    if (rc == 0) {
        tw_store_mark_running(to); /* closed cleanly just below */
    }
    tw_store_close(&to);
    tw_pagefile_close(&f);
    if (lock >= 0) {
        close(lock);
    }
    if (rc != 0) {
        return rc;
    }
    fprintf(out,
            "salvage: %s (format version %d) -> %s: copied %llu tasks, "
            "%llu stations, %llu pools, %llu groups, %llu other records "
            "(schedules, the pair's); lost %llu records and %llu "
            "unreadable parts\n",
            from, x.version, into,
            (unsigned long long)x.copied[TW_DB_TASKS],
            (unsigned long long)x.copied[TW_DB_STATIONS],
            (unsigned long long)x.copied[TW_DB_POOLS],
            (unsigned long long)x.copied[TW_DB_GROUPS],
            (unsigned long long)x.copied[TW_DB_META],
            (unsigned long long)x.lost, (unsigned long long)x.lost_parts);
    return x.lost || x.lost_parts ? 1 : 0;
}
