/*  broker/state/verify.c - every page and record of a store checked before
 *  it is opened (see verify.h).
 */
#include "broker/state/verify.h"
#include "broker/state/pagefile.h"
#include "broker/state/stations.h"
#include "broker/state/workers.h"
#include "common/error.h"
#include "proto/mpwalk.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

/* Appended to every refusal of a damaged store, with its directory. */
#define S_HINT                                                               \
    " (left untouched; 'taskwheel-broker --salvage %s --into NEWDIR' "       \
    "copies what is intact)"

/* ---- one record ------------------------------------------------------- */

static int
s_bad(char *why, size_t wlen, const char *what)
{
    snprintf(why, wlen, "%s", what);
    return TW_EPROTO;
}

static int
s_task(const void *key, size_t klen, const void *val, size_t vlen,
       char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_task_t r;
    int rc = 0;
    if (klen != 8) {
        rc = s_bad(why, wlen, "its key is not a task id");
    } else if (tw_record_task_dec(&up, val, vlen, &r) != 0) {
        rc = s_bad(why, wlen, "it does not decode as a task");
    } else if (r.id != tw_record_key_id(key, klen)) {
        rc = s_bad(why, wlen, "it names another task id than its key");
    } else if (!tw_record_task_state_ok(&r)) {
        rc = s_bad(why, wlen, "its state is invalid");
    } else if (!r.handler_len || r.handler_len > TW_PROTO_MAX_NAME ||
               r.pool_len > TW_PROTO_MAX_NAME ||
               r.key_len > TW_PROTO_MAX_NAME ||
               r.ident_len > TW_IDENT_MAX) {
        rc = s_bad(why, wlen, "a name in it is empty or too long");
    } else if (r.state >= TW_ST_PENDING && r.data_len &&
               !tw_mp_one(r.data, r.data_len, TW_MP_DEPTH_DECODE)) {
        /* What a worker would be handed: the broker only ever records
         * arguments that are one msgpack value (PROTOCOL.md 4.7). */
        rc = s_bad(why, wlen, "its arguments are not one msgpack value");
    }
    for (size_t i = 0; rc == 0 && r.gobj && i < r.ngroups; i++) {
        if (r.gobj->via.array.ptr[i].via.str.size > TW_PROTO_MAX_NAME) {
            rc = s_bad(why, wlen, "a group name in it is too long");
        }
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

static int
s_station(const void *key, size_t klen, const void *val, size_t vlen,
          char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_station_t r;
    int rc = 0;
    if (tw_record_station_dec(&up, val, vlen, &r) != 0) {
        rc = s_bad(why, wlen, "it does not decode as a station");
    } else if (r.sid_len != klen || memcmp(r.sid, key, klen) != 0) {
        rc = s_bad(why, wlen, "it names another station than its key");
    } else if (r.sid_len > TW_PROTO_MAX_NAME || !r.handler_len ||
               r.handler_len > TW_PROTO_MAX_NAME) {
        rc = s_bad(why, wlen, "a name in it is empty or too long");
    } else if (r.state > TW_SS_CANCELLED) {
        rc = s_bad(why, wlen, "its state is invalid");
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

static int
s_pool(const void *key, size_t klen, const void *val, size_t vlen,
       char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_pool_t r;
    int rc = 0;
    if (tw_record_pool_dec(&up, val, vlen, &r) != 0) {
        rc = s_bad(why, wlen, "it does not decode as a pool");
    } else if (r.name_len != klen || memcmp(r.name, key, klen) != 0 ||
               klen > TW_PROTO_MAX_NAME) {
        rc = s_bad(why, wlen, "it names another pool than its key");
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

static int
s_group(const void *key, size_t klen, const void *val, size_t vlen,
        char *why, size_t wlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_group_t r;
    int rc = 0;
    char k[2 * TW_PROTO_MAX_NAME + 2];
    if (tw_record_group_dec(&up, val, vlen, &r) != 0) {
        rc = s_bad(why, wlen, "it does not decode as a group");
    } else if (!r.pool_len || r.pool_len > TW_PROTO_MAX_NAME ||
               r.name_len > TW_PROTO_MAX_NAME ||
               tw_record_group_key(k, r.pool, r.pool_len, r.name,
                                  r.name_len) != klen ||
               memcmp(k, key, klen) != 0) {
        rc = s_bad(why, wlen, "it names another group than its key");
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

int
tw_verify_record(tw_db_t db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *why, size_t wlen)
{
    switch (db) {
    case TW_DB_TASKS:
        return s_task(key, klen, val, vlen, why, wlen);
    case TW_DB_STATIONS:
        return s_station(key, klen, val, vlen, why, wlen);
    case TW_DB_POOLS:
        return s_pool(key, klen, val, vlen, why, wlen);
    case TW_DB_GROUPS:
        return s_group(key, klen, val, vlen, why, wlen);
    default:
        break;
    }
    uint64_t id, ep;
    if (klen == 8 && memcmp(key, "counters", 8) == 0 &&
        tw_record_counters_dec(val, vlen, &id, &ep) != 0) {
        return s_bad(why, wlen, "it does not decode as the counters");
    }
    return 0;
}

/* Printable bytes of a name, at most 40 of them. */
static void
s_printable(char *out, size_t olen, const void *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < 40 && k + 2 < olen; i++) {
        unsigned char c = ((const unsigned char *)p)[i];
        out[k++] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
    }
    out[k] = '\0';
}

void
tw_verify_key_name(tw_db_t db, const void *key, size_t klen, char *out,
                   size_t olen)
{
    char name[48];
    if (db == TW_DB_TASKS && klen == 8) {
        snprintf(out, olen, "task %llu",
                 (unsigned long long)tw_record_key_id(key, klen));
        return;
    }
    if (db == TW_DB_GROUPS) {
        const char *nul = memchr(key, '\0', klen);
        size_t pl = nul ? (size_t)(nul - (const char *)key) : klen;
        char g[48];
        s_printable(name, sizeof name, key, pl);
        s_printable(g, sizeof g, (const char *)key + pl + (nul != NULL),
                    klen - pl - (nul != NULL));
        snprintf(out, olen, "group '%s' of pool '%s'", g, name);
        return;
    }
    s_printable(name, sizeof name, key, klen);
    snprintf(out, olen, "%s '%s'",
             db == TW_DB_STATIONS ? "station"
             : db == TW_DB_POOLS  ? "pool"
                                  : "key",
             name);
}

/* ---- the walk --------------------------------------------------------- */

typedef struct {
    const char *dir;
    tw_db_t db;
    int have_format;
    tw_verify_stats_t *st;
    char *why;
    size_t wlen;
} s_ctx_t;

typedef struct {
    tw_pagefile_db_t *dbs;
    int *have;
    int bad;
    tw_pagefile_bad_fn bad_fn; /* the caller's, with its argument */
    void *bad_arg;
} s_dbs_t;

static int
s_main_bad(const char *what, const void *lo, size_t lol, const void *hi,
           size_t hil, void *arg)
{
    s_dbs_t *x = arg;
    return x->bad_fn(what, lo, lol, hi, hil, x->bad_arg);
}

static int
s_main_rec(const void *key, size_t klen, const void *val, size_t vlen,
           unsigned flags, void *arg)
{
    s_dbs_t *x = arg;
    for (int i = 0; (flags & TW_PAGEFILE_SUBDATA) && i < TW_DB__COUNT;
         i++) {
        const char *name = tw_record_db_name((tw_db_t)i);
        if (klen == strlen(name) && memcmp(key, name, klen) == 0) {
            if (tw_pagefile_db_decode(val, vlen, &x->dbs[i]) == 0) {
                x->have[i] = 1;
            } else {
                x->bad = i + 1;
            }
        }
    }
    return 0;
}

int
tw_verify_dbs(tw_pagefile_t *f, tw_pagefile_db_t dbs[TW_DB__COUNT],
              int have[TW_DB__COUNT], tw_pagefile_bad_fn bad, void *arg,
              char *why, size_t wlen)
{
    s_dbs_t x = {dbs, have, 0, bad, arg};
    memset(have, 0, TW_DB__COUNT * sizeof *have);
    int rc = tw_pagefile_walk(f, &tw_pagefile_info(f)->main_db,
                              "database list", s_main_rec,
                              bad ? s_main_bad : NULL, &x, why, wlen);
    if (rc == 0 && x.bad) {
        snprintf(why, wlen, "%s is damaged: the header of database '%s' "
                 "is unreadable", tw_pagefile_path(f),
                 tw_record_db_name((tw_db_t)(x.bad - 1)));
        rc = bad ? bad(why, NULL, 0, NULL, 0, arg) : TW_EPROTO;
    }
    return rc;
}

static int
s_rec(const void *key, size_t klen, const void *val, size_t vlen,
      unsigned flags, void *arg)
{
    s_ctx_t *x = arg;
    (void)flags;
    char what[200], kname[120];
    if (x->db == TW_DB_META && klen == 6 && memcmp(key, "format", 6) == 0) {
        x->have_format = 1;
        return tw_record_format_check(x->dir, val, vlen, x->why, x->wlen);
    }
    size_t n = vlen;
    int rc = 0;
    if (tw_record_unseal(x->db, key, klen, val, &n) != 0) {
        snprintf(what, sizeof what, "its checksum does not match");
        rc = TW_EPROTO;
    } else {
        rc = tw_verify_record(x->db, key, klen, val, n, what, sizeof what);
    }
    if (rc != 0) {
        tw_verify_key_name(x->db, key, klen, kname, sizeof kname);
        snprintf(x->why, x->wlen,
                 "%s: a record in '%s' (%s) is damaged: %s" S_HINT, x->dir,
                 tw_record_db_name(x->db), kname, what, x->dir);
        return TW_EPROTO;
    }
    if (x->st) {
        x->st->records[x->db]++;
    }
    return 0;
}

int
tw_verify_store(const char *dir, int deep, int *fresh,
                tw_verify_stats_t *st, char *why, size_t wlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (st) {
        memset(st, 0, sizeof *st);
    }
    *fresh = 0;
    tw_pagefile_t *f;
    char pwhy[512];
    int rc = tw_pagefile_open(&f, path, pwhy, sizeof pwhy);
    if (rc == TW_ENOENT) {
        *fresh = 1;
        return 0;
    }
    if (rc != 0) {
        /* Not an LMDB file at all: nothing to salvage either. */
        snprintf(why, wlen, "%s: cannot open the store: %s (left untouched)",
                 dir, pwhy);
        return rc;
    }
    if (st) {
        st->bytes = tw_pagefile_info(f)->file_bytes;
        st->deep = deep;
    }
    if (deep) {
        tw_pagefile_account(f);
    }
    s_ctx_t x = {.dir = dir, .st = st, .why = why, .wlen = wlen};
    tw_pagefile_db_t dbs[TW_DB__COUNT];
    int have[TW_DB__COUNT];
    why[0] = '\0';
    rc = tw_verify_dbs(f, dbs, have, NULL, NULL, pwhy, sizeof pwhy);
    for (int i = 0; rc == 0 && i < TW_DB__COUNT; i++) {
        if (!have[i]) {
            snprintf(why, wlen,
                     "%s: not a taskwheel store (no '%s' database; left "
                     "untouched)", dir, tw_record_db_name((tw_db_t)i));
            rc = TW_EPROTO;
            break;
        }
        x.db = (tw_db_t)i;
        rc = tw_pagefile_walk(f, &dbs[i], tw_record_db_name(x.db), s_rec,
                              NULL, &x, pwhy, sizeof pwhy);
    }
    if (rc == 0 && !x.have_format) {
        snprintf(why, wlen,
                 "%s: not a taskwheel store (no format record; left "
                 "untouched)", dir);
        rc = TW_EPROTO;
    }
    if (rc == 0) {
        rc = tw_pagefile_free_list(f, pwhy, sizeof pwhy);
    }
    if (rc != 0 && !why[0]) {
        /* The damage was found by the page reader. */
        snprintf(why, wlen, "%s" S_HINT, pwhy, dir);
    }
    tw_pagefile_close(&f);
    return rc;
}
