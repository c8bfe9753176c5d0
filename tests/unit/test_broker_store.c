/*  tests/unit/test_broker_store.c - the broker's LMDB store (store.h) and
 *  the broker's use of it (persist.h).
 *
 *  The store is somebody's queue, so the suite checks the promises of
 *  docs/STORAGE.md one by one in throw-away directories: a fresh directory
 *  becomes a store; what is committed is there after a reopen; every kind
 *  of record (task, result, station, pool, group, counters) decodes to
 *  what was encoded; a store of another format version, a damaged file or
 *  a directory another broker holds is refused with a sentence naming the
 *  path and is left byte for byte as it was; a full map answers TW_EFULL
 *  with the transaction rolled back; the writer thread writes batches in
 *  order and hands back, with its error, one that never fits. Then a real
 *  tw_broker_t (ephemeral
 *  loopback ports) writes tasks through its turn commit, collects an
 *  expired result, refuses submissions when its store is nearly full, and
 *  a second broker on the same directory recovers the tasks and continues
 *  the id counter.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "broker/core/lease.h"
#include "broker/core/persist.h"
#include "broker/state/store.h"
#include "broker/state/room.h"
#include "broker/state/salvage.h"
#include "broker/state/verify.h"
#include <lmdb.h>
#include "broker/state/writer.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

/* ---- helpers ---------------------------------------------------------- */

static char s_dir[256];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-store-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    tw_log_level = TW_LOG_ERR;
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The whole content of DIR/data.mdb (tw_free it). */
static char *
s_slurp(size_t *len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = tw_malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int
s_count_cb(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    (*(size_t *)arg)++;
    return 0;
}

static size_t
s_count(tw_store_t *s, tw_db_t db)
{
    size_t n = 0;
    assert_int_equal(tw_store_each(s, db, s_count_cb, &n), 0);
    return n;
}

static tw_store_t *
s_open(int policy)
{
    tw_store_t *s;
    char why[512];
    int rc = tw_store_open(&s, s_dir, 16u << 20, policy, 0, why, sizeof why);
    if (rc != 0) {
        fail_msg("open: %s", why);
    }
    return s;
}

/* Put a minimal valid task record `id` (args: one msgpack value). */
static void
s_put_task(tw_store_t *s, uint64_t id)
{
    tw_enc_t e;
    tw_enc_init(&e);
    unsigned char k[8], a[1] = {0x2a};
    tw_record_task_t r = {.id = id, .state = TW_ST_PENDING, .handler = "echo",
                         .handler_len = 4, .data = a, .data_len = 1};
    tw_record_task_enc(&e, &r);
    tw_record_id_key(id, k);
    assert_int_equal(tw_store_put(s, TW_DB_TASKS, k, 8, e.sb.data,
                                  e.sb.size), 0);
    tw_enc_free(&e);
}

/* Put a group record for pool/name; the encoded value in *val if asked
 * (tw_free it). */
static void
s_put_group(tw_store_t *s, const char *pool, const char *name, void **val,
            size_t *vlen)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_record_group_t r = {.pool = pool, .pool_len = strlen(pool),
                          .name = name, .name_len = strlen(name),
                          .limit = 3};
    tw_record_group_enc(&e, &r);
    char key[64];
    size_t kl = tw_record_group_key(key, pool, strlen(pool), name,
                                   strlen(name));
    assert_int_equal(tw_store_put(s, TW_DB_GROUPS, key, kl, e.sb.data,
                                  e.sb.size), 0);
    if (val) {
        *val = tw_malloc(e.sb.size);
        memcpy(*val, e.sb.data, e.sb.size);
        *vlen = e.sb.size;
    }
    tw_enc_free(&e);
}

/* ---- the store -------------------------------------------------------- */

/* A fresh directory becomes a store; what is committed survives a reopen,
 * what is aborted does not; deletes and prefix deletes work. */
static void
test_open_write_reopen(void **state)
{
    (void)state;
    tw_store_t *s = s_open(TW_FSYNC_ALWAYS);
    unsigned char k[8];
    void *qa;
    size_t qal;
    assert_int_equal(tw_store_begin(s), 0);
    for (uint64_t id = 1; id <= 10; id++) {
        s_put_task(s, id);
    }
    s_put_group(s, "p", "a", NULL, NULL);
    s_put_group(s, "p", "b", NULL, NULL);
    s_put_group(s, "q", "a", &qa, &qal);
    assert_int_equal(tw_store_commit(s), 0);
    /* An aborted transaction leaves nothing. */
    assert_int_equal(tw_store_begin(s), 0);
    s_put_task(s, 11);
    tw_store_abort(s);
    /* Deletes, of present and absent keys, and by prefix. */
    assert_int_equal(tw_store_begin(s), 0);
    tw_record_id_key(3, k);
    assert_int_equal(tw_store_del(s, TW_DB_TASKS, k, 8), 0);
    tw_record_id_key(99, k);
    assert_int_equal(tw_store_del(s, TW_DB_TASKS, k, 8), 0);
    assert_int_equal(tw_store_del_prefix(s, TW_DB_GROUPS, "p", 2), 0);
    assert_int_equal(tw_store_counters_put(s, 70000, 123456), 0);
    assert_int_equal(tw_store_commit(s), 0);
    assert_int_equal(tw_store_sync(s), 0);
    tw_store_close(&s);
    assert_null(s);

    s = s_open(TW_FSYNC_EVERYSEC);
    assert_int_equal(s_count(s, TW_DB_TASKS), 9);
    assert_int_equal(s_count(s, TW_DB_GROUPS), 1);
    void *v;
    size_t vl;
    assert_int_equal(tw_store_get(s, TW_DB_GROUPS, "q\0a", 3, &v, &vl), 0);
    assert_int_equal(vl, qal);
    assert_memory_equal(v, qa, qal);
    tw_free(v);
    tw_free(qa);
    tw_record_id_key(3, k);
    assert_int_equal(tw_store_get(s, TW_DB_TASKS, k, 8, &v, &vl),
                     TW_ENOENT);
    uint64_t next_id, next_ep;
    assert_int_equal(tw_store_counters_get(s, &next_id, &next_ep), 0);
    assert_int_equal(next_id, 70000);
    assert_int_equal(next_ep, 123456);
    assert_int_equal(tw_store_fsync_policy(s), TW_FSYNC_EVERYSEC);
    assert_true(tw_store_used_bytes(s) > 0);
    tw_store_close(&s);
}

/* Ids as keys sort like numbers. */
static void
test_id_keys(void **state)
{
    (void)state;
    unsigned char a[8], b[8];
    tw_record_id_key(255, a);
    tw_record_id_key(256, b);
    assert_true(memcmp(a, b, 8) < 0);
    assert_int_equal(tw_record_key_id(b, 8), 256);
    tw_record_id_key(UINT64_MAX - 1, a);
    assert_int_equal(tw_record_key_id(a, 8), UINT64_MAX - 1);
    assert_int_equal(tw_fsync_parse("always"), TW_FSYNC_ALWAYS);
    assert_int_equal(tw_fsync_parse("no"), TW_FSYNC_NO);
    assert_int_equal(tw_fsync_parse("sometimes"), -1);
    assert_string_equal(tw_fsync_name(TW_FSYNC_EVERYSEC), "everysec");
}

/* Every record kind decodes to what was encoded. */
static void
test_records_round_trip(void **state)
{
    (void)state;
    tw_enc_t e;
    tw_enc_init(&e);
    msgpack_unpacked up;

    const char *gn[2] = {"g1", "second"};
    size_t gl[2] = {2, 6};
    tw_record_task_t t = {
        .id = 42, .seq = 7, .ep = 1ULL << 40, .shash = 0xfeedULL << 48,
        .worker = 3,
        .t_wall = 1700000000123ULL, .due_wall = 1700000001000ULL,
        .priority = -5, .timeout_ms = 2500, .retries = 3, .attempt = 2,
        .state = TW_ST_RUNNING, .cancel = 1,
        .ident = "c-0123", .ident_len = 6, .handler = "echo",
        .handler_len = 4, .data = "\x93\x01\x02\x03", .data_len = 4,
        .error = "attempt 1: boom", .error_len = 15, .pool = "pl",
        .pool_len = 2, .key = "k\0y", .key_len = 3, .ngroups = 2,
        .gnames = gn, .glens = gl};
    tw_record_task_enc(&e, &t);
    tw_record_task_t d;
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_task_dec(&up, e.sb.data, e.sb.size, &d), 0);
    assert_int_equal(d.id, 42);
    assert_int_equal(d.seq, 7);
    assert_int_equal(d.ep, 1ULL << 40);
    assert_int_equal(d.shash, 0xfeedULL << 48);
    assert_int_equal(d.worker, 3);
    assert_int_equal(d.t_wall, 1700000000123ULL);
    assert_int_equal(d.due_wall, 1700000001000ULL);
    assert_int_equal(d.priority, -5);
    assert_int_equal(d.timeout_ms, 2500);
    assert_int_equal(d.retries, 3);
    assert_int_equal(d.attempt, 2);
    assert_int_equal(d.state, TW_ST_RUNNING);
    assert_int_equal(d.cancel, 1);
    assert_int_equal(d.ident_len, 6);
    assert_memory_equal(d.ident, "c-0123", 6);
    assert_int_equal(d.handler_len, 4);
    assert_memory_equal(d.handler, "echo", 4);
    assert_int_equal(d.data_len, 4);
    assert_memory_equal(d.data, "\x93\x01\x02\x03", 4);
    assert_int_equal(d.error_len, 15);
    assert_memory_equal(d.error, "attempt 1: boom", 15);
    assert_int_equal(d.pool_len, 2);
    assert_int_equal(d.key_len, 3);
    assert_memory_equal(d.key, "k\0y", 3);
    assert_int_equal(d.ngroups, 2);
    assert_int_equal(d.gobj->via.array.ptr[1].via.str.size, 6);
    assert_memory_equal(d.gobj->via.array.ptr[1].via.str.ptr, "second", 6);
    msgpack_unpacked_destroy(&up);

    /* A result: no error, key or groups, an empty result. */
    tw_record_task_t r = {.id = 9, .state = TW_ST_OK, .handler = "noop",
                         .handler_len = 4, .t_wall = 5};
    tw_record_task_enc(&e, &r);
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_task_dec(&up, e.sb.data, e.sb.size, &d), 0);
    assert_int_equal(d.id, 9);
    assert_null(d.error);
    assert_null(d.key);
    assert_null(d.data);
    assert_int_equal(d.ngroups, 0);
    assert_null(d.after);
    assert_int_equal(d.after_mode, 0);
    assert_int_equal(d.after_wr, 0);
    msgpack_unpacked_destroy(&up);

    /* A blocked task: its parents (8 bytes each), policy and results
     * flag come back as written. */
    static const unsigned char parents[16] = {0, 0, 0, 0, 0, 0, 0, 41,
                                              0, 0, 0, 1, 0, 0, 0, 2};
    tw_record_task_t bl = {.id = 50, .state = TW_ST_BLOCKED,
                           .handler = "echo", .handler_len = 4,
                           .after = parents, .after_len = 16,
                           .after_mode = 1, .after_wr = 1};
    tw_record_task_enc(&e, &bl);
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_task_dec(&up, e.sb.data, e.sb.size, &d), 0);
    assert_int_equal(d.state, TW_ST_BLOCKED);
    assert_int_equal(d.after_len, 16);
    assert_memory_equal(d.after, parents, 16);
    assert_int_equal(d.after_mode, 1);
    assert_int_equal(d.after_wr, 1);
    msgpack_unpacked_destroy(&up);

    char *tags[4] = {"code", "gnss", "site", "north"};
    tw_record_station_t st = {
        .sid = "rx-1", .sid_len = 4, .handler = "incr", .handler_len = 4,
        .args = "\x01", .args_len = 1, .ck = "\x2a", .ck_len = 1,
        .code = "gnss", .code_len = 4, .last_error = "timeout",
        .last_error_len = 7, .next = 1, .wanted = 1, .state = 4,
        .restart = 2, .placement = 1, .interval_ms = 100,
        .timeout_ms = 900, .restarts = 3, .epoch = 17, .iterations = 12345,
        .tags = tags, .ntags = 4};
    tw_record_station_enc(&e, &st);
    tw_record_station_t sd;
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_station_dec(&up, e.sb.data, e.sb.size, &sd),
                     0);
    assert_int_equal(sd.sid_len, 4);
    assert_memory_equal(sd.sid, "rx-1", 4);
    assert_memory_equal(sd.handler, "incr", 4);
    assert_int_equal(sd.args_len, 1);
    assert_int_equal(sd.ck_len, 1);
    assert_memory_equal(sd.ck, "\x2a", 1);
    assert_memory_equal(sd.code, "gnss", 4);
    assert_memory_equal(sd.last_error, "timeout", 7);
    assert_int_equal(sd.next, 1);
    assert_int_equal(sd.wanted, 1);
    assert_int_equal(sd.state, 4);
    assert_int_equal(sd.restart, 2);
    assert_int_equal(sd.placement, 1);
    assert_int_equal(sd.interval_ms, 100);
    assert_int_equal(sd.timeout_ms, 900);
    assert_int_equal(sd.restarts, 3);
    assert_int_equal(sd.epoch, 17);
    assert_int_equal(sd.iterations, 12345);
    assert_non_null(sd.tobj);
    assert_int_equal(sd.tobj->via.map.size, 2);
    assert_memory_equal(sd.tobj->via.map.ptr[1].val.via.str.ptr, "north", 5);
    msgpack_unpacked_destroy(&up);

    tw_record_pool_t p = {.name = "default", .name_len = 7, .size = 4,
                         .ended = 100, .cancelled = 2, .next_dseq = 77,
                         .locked = 1, .closed = 0};
    tw_record_pool_enc(&e, &p);
    tw_record_pool_t pd;
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_pool_dec(&up, e.sb.data, e.sb.size, &pd), 0);
    assert_memory_equal(pd.name, "default", 7);
    assert_int_equal(pd.size, 4);
    assert_int_equal(pd.ended, 100);
    assert_int_equal(pd.cancelled, 2);
    assert_int_equal(pd.next_dseq, 77);
    assert_int_equal(pd.locked, 1);
    assert_int_equal(pd.closed, 0);
    msgpack_unpacked_destroy(&up);

    tw_record_group_t g = {.pool = "default", .pool_len = 7, .name = "db",
                          .name_len = 2, .limit = 0, .calls = -1,
                          .admitted = 9, .ended = 8, .cancelled = 1,
                          .full = 1, .before_lock = 1};
    tw_record_group_enc(&e, &g);
    tw_record_group_t gd;
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_group_dec(&up, e.sb.data, e.sb.size, &gd), 0);
    assert_memory_equal(gd.pool, "default", 7);
    assert_memory_equal(gd.name, "db", 2);
    assert_int_equal(gd.limit, 0);
    assert_int_equal(gd.calls, -1);
    assert_int_equal(gd.admitted, 9);
    assert_int_equal(gd.ended, 8);
    assert_int_equal(gd.cancelled, 1);
    assert_int_equal(gd.full, 1);
    assert_int_equal(gd.before_lock, 1);
    msgpack_unpacked_destroy(&up);

    /* Garbage and wrong types are refused, never half-read. */
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_task_dec(&up, "\xc1\x00", 2, &d), TW_EPROTO);
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    assert_int_equal(tw_record_pool_dec(&up, "\x81\xa1n\x05", 4, &pd),
                     TW_EPROTO);
    msgpack_unpacked_destroy(&up);
    tw_enc_free(&e);
}

/* Open must refuse with `rc`, a sentence holding the path and `text`, and
 * leave data.mdb byte for byte as it was. */
static void
s_refused(int rc, const char *text)
{
    size_t n1, n2;
    char *before = s_slurp(&n1);
    tw_store_t *s;
    char why[1024];
    assert_int_equal(tw_store_open(&s, s_dir, 16u << 20, TW_FSYNC_NO, 0,
                                   why, sizeof why),
                     rc);
    assert_null(s);
    assert_non_null(strstr(why, s_dir));
    if (!strstr(why, text)) {
        fail_msg("'%s' does not say '%s'", why, text);
    }
    assert_null(strchr(why, '\n'));
    char *after = s_slurp(&n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    tw_free(before);
    tw_free(after);
}

/* Creates a store in s_dir and overwrites its format record with
 * `version`. */
static void
s_put_format(uint64_t version)
{
    tw_store_t *s = s_open(TW_FSYNC_NO);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "v");
    tw_enc_uint(&e, version);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_put(s, TW_DB_META, "format", 6, e.sb.data,
                                  e.sb.size), 0);
    assert_int_equal(tw_store_commit(s), 0);
    tw_enc_free(&e);
    tw_store_close(&s);
}

/* A store of another format version is refused, names the path and the
 * versions, and is not touched. */
static void
test_other_version_refused(void **state)
{
    (void)state;
    s_put_format(99);
    s_refused(TW_EVERSION, "version 99");
}

/* A damaged data file is refused with the path and the problem, and left
 * as it was. */
static void
test_corrupt_refused(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++) {
        fputc((i * 7919) & 0xff, f);
    }
    fclose(f);
    s_refused(TW_EPROTO, "not an LMDB data file");

    /* An LMDB file without taskwheel's format record is refused too. */
    s_teardown(NULL);
    s_setup(NULL);
    char why[512];
    tw_store_t *s = s_open(TW_FSYNC_ALWAYS);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_del(s, TW_DB_META, "format", 6), 0);
    assert_int_equal(tw_store_commit(s), 0);
    tw_store_close(&s);
    assert_int_equal(tw_store_open(&s, s_dir, 16u << 20, TW_FSYNC_ALWAYS, 0,
                                   why, sizeof why),
                     TW_EPROTO);
    assert_non_null(strstr(why, "not a taskwheel store"));
}

/* ---- verification (verify.h) ----------------------------------------- */

#define S_PSIZE 4096

/* A store of `n` tasks whose args are the msgpack string "TWMARKnnnnnn",
 * one task with 10,000 bytes of args (overflow pages), and every third
 * task deleted again in later transactions (free pages). Closed cleanly
 * as far as LMDB is concerned. */
static void
s_build(int n)
{
    tw_store_t *s = s_open(TW_FSYNC_NO);
    tw_enc_t e;
    tw_enc_init(&e);
    unsigned char k[8];
    for (int batch = 0; batch < 4; batch++) {
        assert_int_equal(tw_store_begin(s), 0);
        for (int id = batch * n / 4 + 1; id <= (batch + 1) * n / 4; id++) {
            char a[16];
            a[0] = (char)(0xa0 | 12);
            snprintf(a + 1, sizeof a - 1, "TWMARK%06d", id);
            tw_record_task_t r = {.id = (uint64_t)id, .state = TW_ST_PENDING,
                                 .handler = "echo", .handler_len = 4,
                                 .data = a, .data_len = 13, .seq = 7};
            tw_record_task_enc(&e, &r);
            tw_record_id_key((uint64_t)id, k);
            assert_int_equal(tw_store_put_last(s, TW_DB_TASKS, k, 8,
                                               e.sb.data, e.sb.size),
                             0);
        }
        assert_int_equal(tw_store_commit(s), 0);
    }
    static unsigned char big[10003];
    big[0] = 0xc5; /* bin 16 of 10,000 bytes */
    big[1] = 0x27;
    big[2] = 0x10;
    memset(big + 3, 'B', 10000);
    tw_record_task_t r = {.id = 1000000, .state = TW_ST_PENDING,
                         .handler = "echo", .handler_len = 4, .data = big,
                         .data_len = sizeof big};
    tw_record_task_enc(&e, &r);
    tw_record_id_key(1000000, k);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_put(s, TW_DB_TASKS, k, 8, e.sb.data,
                                  e.sb.size), 0);
    for (int id = 3; id <= n; id += 3) {
        tw_record_id_key((uint64_t)id, k);
        assert_int_equal(tw_store_del(s, TW_DB_TASKS, k, 8), 0);
    }
    assert_int_equal(tw_store_commit(s), 0);
    tw_enc_free(&e);
    tw_store_close(&s);
}

static void
s_write_file(const char *buf, size_t len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}


/* The page of a value LMDB returned: the map is page-aligned, so the page
 * starts at the value's address rounded down, and its header begins with
 * its number. */
static long
s_page_at(const void *p)
{
    uint64_t pgno;
    memcpy(&pgno, (const void *)((uintptr_t)p & ~(uintptr_t)4095), 8);
    return (long)pgno;
}

/* The page holding task `id`'s live record, found through LMDB itself (a
 * scan of the file would also find stale copies on free pages), and how
 * many live task records that page holds, in *on_page if not NULL. */
static long
s_page_of2(uint64_t id, size_t *on_page)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, s_dir, MDB_RDONLY | MDB_NOLOCK, 0),
                     0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "tasks", 0, &dbi), 0);
    unsigned char k[8];
    tw_record_id_key(id, k);
    MDB_val key = {8, k}, val;
    assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
    long pg = s_page_at(val.mv_data);
    if (on_page) {
        *on_page = 0;
        assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
        while (mdb_cursor_get(cur, &key, &val, MDB_NEXT) == 0) {
            *on_page += s_page_at(val.mv_data) == pg;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return pg;
}

static long
s_page_of(uint64_t id)
{
    return s_page_of2(id, NULL);
}

/* A healthy store passes both checks, with or without page accounting,
 * however much it was churned. */
static void
test_verify_healthy(void **state)
{
    (void)state;
    s_build(3000);
    tw_store_t *s;
    char why[1024];
    for (int deep = 0; deep < 2; deep++) {
        assert_int_equal(tw_store_open(&s, s_dir, 16u << 20, TW_FSYNC_NO,
                                       deep ? TW_STORE_VERIFY : 0, why,
                                       sizeof why),
                         0);
        const tw_verify_stats_t *vs = tw_store_verified(s);
        /* Never marked running, so never "clean": always deep. */
        assert_int_equal(vs->deep, 1);
        assert_int_equal(vs->records[TW_DB_TASKS], 3000 - 1000 + 1);
        assert_int_equal(s_count(s, TW_DB_TASKS), 3000 - 1000 + 1);
        assert_int_equal(tw_store_was_clean(s), 0);
        tw_store_close(&s);
    }
    /* Marked running and closed: clean, so the next open is not deep
     * unless asked. */
    s = s_open(TW_FSYNC_NO);
    assert_int_equal(tw_store_mark_running(s), 0);
    tw_store_close(&s);
    s = s_open(TW_FSYNC_NO);
    assert_int_equal(tw_store_was_clean(s), 1);
    assert_int_equal(tw_store_verified(s)->deep, 0);
    tw_store_close(&s);
    assert_int_equal(tw_store_open(&s, s_dir, 16u << 20, TW_FSYNC_NO,
                                   TW_STORE_VERIFY, why, sizeof why),
                     0);
    assert_int_equal(tw_store_verified(s)->deep, 1);
    tw_store_close(&s);
}

/* A file cut to 8 KiB (its two meta pages) or to half its size is
 * refused as truncated, before anything maps it. */
static void
test_verify_truncated(void **state)
{
    (void)state;
    s_build(3000);
    size_t len;
    char *buf = s_slurp(&len);
    assert_true(len > 16 * S_PSIZE);
    s_write_file(buf, 2 * S_PSIZE);
    s_refused(TW_EPROTO, "truncated");
    s_write_file(buf, len / 2 / S_PSIZE * S_PSIZE);
    s_refused(TW_EPROTO, "truncated");
    s_write_file(buf, len / 2 + 100);
    s_refused(TW_EPROTO, "truncated");
    /* Shorter than one meta page. */
    s_write_file(buf, 100);
    s_refused(TW_EPROTO, "cannot open the store");
    tw_free(buf);
}

/* A damaged page in the middle: its header, or its body. */
static void
test_verify_damaged_page(void **state)
{
    (void)state;
    s_build(3000);
    size_t len;
    char *buf = s_slurp(&len);
    long pg = s_page_of(1000);
    assert_true(pg > 2);
    char *copy = tw_malloc(len);
    /* The header. */
    memcpy(copy, buf, len);
    memset(copy + pg * S_PSIZE, 0xa5, 16);
    s_write_file(copy, len);
    s_refused(TW_EPROTO, "damaged");
    /* The body, past the node offsets: records no longer check out. */
    memcpy(copy, buf, len);
    for (size_t i = 600; i < S_PSIZE; i++) {
        copy[pg * S_PSIZE + (long)i] = (char)(i * 31 + 7);
    }
    s_write_file(copy, len);
    s_refused(TW_EPROTO, "damaged");
    /* One bit of one record. */
    memcpy(copy, buf, len);
    char *m = memmem(copy + pg * S_PSIZE, S_PSIZE, "TWMARK001000", 12);
    assert_non_null(m);
    m[11] ^= 0x01;
    s_write_file(copy, len);
    s_refused(TW_EPROTO, "(task 1000) is damaged: its checksum does not "
                         "match");
    /* A whole page of zeros. */
    memcpy(copy, buf, len);
    memset(copy + pg * S_PSIZE, 0, S_PSIZE);
    s_write_file(copy, len);
    s_refused(TW_EPROTO, "damaged");
    tw_free(copy);
    tw_free(buf);
}

/* A task record with a valid checksum whose arguments are not one msgpack
 * value is never handed to a worker: the store is refused. */
static void
test_verify_bad_args(void **state)
{
    (void)state;
    tw_store_t *s = s_open(TW_FSYNC_NO);
    tw_enc_t e;
    tw_enc_init(&e);
    unsigned char k[8], bad[3] = {0x92, 0x01, 0xc1}; /* array of 2, 1 */
    tw_record_task_t r = {.id = 5, .state = TW_ST_PENDING, .handler = "echo",
                         .handler_len = 4, .data = bad, .data_len = 3};
    tw_record_task_enc(&e, &r);
    tw_record_id_key(5, k);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_put(s, TW_DB_TASKS, k, 8, e.sb.data,
                                  e.sb.size), 0);
    assert_int_equal(tw_store_commit(s), 0);
    tw_store_close(&s);
    s_refused(TW_EPROTO, "(task 5) is damaged: its arguments are not one "
                         "msgpack value");
    /* A record under another task's key. */
    s_teardown(NULL);
    s_setup(NULL);
    s = s_open(TW_FSYNC_NO);
    bad[2] = 0x02;
    tw_record_task_enc(&e, &r);
    tw_record_id_key(6, k);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_put(s, TW_DB_TASKS, k, 8, e.sb.data,
                                  e.sb.size), 0);
    assert_int_equal(tw_store_commit(s), 0);
    tw_store_close(&s);
    s_refused(TW_EPROTO, "(task 6) is damaged: it names another task id");
    tw_enc_free(&e);
}

/* A version-1 store (no checksums) is sent to --salvage, untouched. */
static void
test_verify_version_1(void **state)
{
    (void)state;
    s_put_format(1);
    s_refused(TW_EVERSION, "--salvage");
}

/* ---- salvage (salvage.h) --------------------------------------------- */

/* Salvage s_dir into s_dir/new; returns tw_store_salvage's code, the
 * report in *report (tw_free it). */
static int
s_salvage(char **report, char *into, size_t ilen)
{
    snprintf(into, ilen, "%s/new", s_dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char why[1024] = "";
    int rc = tw_store_salvage(s_dir, into, out, why, sizeof why);
    fclose(out);
    *report = tw_strdup(buf);
    free(buf);
    if (rc < 0) {
        fail_msg("salvage: %s", why);
    }
    return rc;
}

/* Open the salvaged store and count its tasks; each id at most once, and
 * no task deleted before (every third) is back. */
static size_t
s_salvaged_tasks(const char *into)
{
    char saved[256];
    snprintf(saved, sizeof saved, "%s", s_dir);
    snprintf(s_dir, sizeof s_dir, "%s", into);
    tw_store_t *s = s_open(TW_FSYNC_NO);
    assert_int_equal(tw_store_was_clean(s), 1);
    size_t n = s_count(s, TW_DB_TASKS);
    unsigned char k[8];
    void *v;
    size_t vl;
    for (uint64_t id = 3; id <= 3000; id += 3) {
        tw_record_id_key(id, k);
        assert_int_equal(tw_store_get(s, TW_DB_TASKS, k, 8, &v, &vl),
                         TW_ENOENT);
    }
    uint64_t next_id, next_ep;
    assert_int_equal(tw_store_counters_get(s, &next_id, &next_ep), 0);
    assert_true(next_id > 1000000);
    tw_store_close(&s);
    snprintf(s_dir, sizeof s_dir, "%s", saved);
    return n;
}

/* The salvaged store in `into` holds meta record `key` with value `val`. */
static void
s_salvaged_meta(const char *into, const char *key, const void *val,
                size_t vlen)
{
    char saved[256];
    snprintf(saved, sizeof saved, "%s", s_dir);
    snprintf(s_dir, sizeof s_dir, "%.255s", into);
    tw_store_t *s = s_open(TW_FSYNC_NO);
    void *v;
    size_t vl;
    assert_int_equal(tw_store_get(s, TW_DB_META, key, strlen(key), &v, &vl),
                     0);
    assert_int_equal(vl, vlen);
    assert_memory_equal(v, val, vl);
    tw_free(v);
    tw_store_close(&s);
    snprintf(s_dir, sizeof s_dir, "%s", saved);
}

/* A damaged page loses the records on it, and only those; a record whose
 * checksum fails is lost alone; the rest is copied into a store the broker
 * opens, and the damaged one is left as it was. */
static void
test_salvage(void **state)
{
    (void)state;
    s_build(3000);
    /* A schedule's record in meta (schedtab.h) travels too. */
    static const char sk[] = "schedule/nightly", sv[] = "\x81\xa4" "cron\xa1*";
    tw_store_t *s = s_open(TW_FSYNC_NO);
    assert_int_equal(tw_store_begin(s), 0);
    assert_int_equal(tw_store_put(s, TW_DB_META, sk, sizeof sk - 1, sv,
                                  sizeof sv - 1), 0);
    assert_int_equal(tw_store_commit(s), 0);
    tw_store_close(&s);
    size_t len;
    char *buf = s_slurp(&len);
    size_t on_page;
    long pg = s_page_of2(1000, &on_page);
    assert_true(on_page > 10);
    memset(buf + pg * S_PSIZE, 0x5a, S_PSIZE);
    s_write_file(buf, len);
    size_t n1;
    char *before = s_slurp(&n1);
    char into[300], *report;
    assert_int_equal(s_salvage(&report, into, sizeof into), 1);
    if (!strstr(report, "lost: 'tasks' from task") ||
        !strstr(report, "1 other records (schedules") ||
        !strstr(report, "lost 0 records and 1 unreadable parts")) {
        fail_msg("report: %s", report);
    }
    assert_int_equal(s_salvaged_tasks(into), 3000 - 1000 + 1 - on_page);
    s_salvaged_meta(into, sk, sv, sizeof sv - 1);
    char *after = s_slurp(&n1);
    assert_memory_equal(before, after, n1);
    tw_free(before);
    tw_free(after);
    tw_free(report);

    /* One flipped bit: that record alone. */
    s_teardown(NULL);
    s_setup(NULL);
    s_build(3000);
    tw_free(buf);
    buf = s_slurp(&len);
    pg = s_page_of(1000);
    char *m = memmem(buf + pg * S_PSIZE, S_PSIZE, "TWMARK001000", 12);
    assert_non_null(m);
    m[8] ^= 0x04;
    s_write_file(buf, len);
    assert_int_equal(s_salvage(&report, into, sizeof into), 1);
    if (!strstr(report, "lost: 'tasks' task 1000: its checksum") ||
        !strstr(report, "lost 1 records and 0 unreadable parts")) {
        fail_msg("report: %s", report);
    }
    assert_int_equal(s_salvaged_tasks(into), 3000 - 1000 + 1 - 1);
    tw_free(report);
    /* Never into a store. */
    char why[512];
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(tw_store_salvage(s_dir, into, out, why, sizeof why),
                     TW_EEXIST);
    fclose(out);
    tw_free(buf);
}

/* A version-1 store (records without checksums, written here through
 * LMDB itself) is converted: every record copied, the new one current. */
static void
test_salvage_converts_version_1(void **state)
{
    (void)state;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi[TW_DB__COUNT];
    static const char *names[] = {"meta", "tasks", "stations", "pools",
                                  "groups"};
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, s_dir, 0, 0640), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (int i = 0; i < TW_DB__COUNT; i++) {
        assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, &dbi[i]),
                         0);
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "v");
    tw_enc_uint(&e, 1);
    MDB_val k = {6, "format"}, v = {e.sb.size, e.sb.data};
    assert_int_equal(mdb_put(txn, dbi[TW_DB_META], &k, &v, 0), 0);
    for (uint64_t id = 1; id <= 500; id++) {
        unsigned char key[8], a[1] = {0x07};
        tw_record_task_t r = {.id = id, .state = TW_ST_PENDING,
                             .handler = "echo", .handler_len = 4,
                             .data = a, .data_len = 1};
        tw_record_task_enc(&e, &r);
        tw_record_id_key(id, key);
        MDB_val kk = {8, key}, vv = {e.sb.size, e.sb.data};
        assert_int_equal(mdb_put(txn, dbi[TW_DB_TASKS], &kk, &vv, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    tw_enc_free(&e);
    s_refused(TW_EVERSION, "version 1");

    char into[300], *report;
    assert_int_equal(s_salvage(&report, into, sizeof into), 0);
    if (!strstr(report, "(format version 1)") ||
        !strstr(report, "copied 500 tasks")) {
        fail_msg("report: %s", report);
    }
    tw_free(report);
    snprintf(s_dir + strlen(s_dir), sizeof s_dir - strlen(s_dir), "/new");
    tw_store_t *s = s_open(TW_FSYNC_NO);
    assert_int_equal(s_count(s, TW_DB_TASKS), 500);
    tw_store_close(&s);
    s_dir[strlen(s_dir) - 4] = '\0';
}

/* One broker per directory. */
static void
test_locked_by_another(void **state)
{
    (void)state;
    tw_store_t *s = s_open(TW_FSYNC_NO);
    tw_store_t *s2;
    char why[512];
    assert_int_equal(tw_store_open(&s2, s_dir, 16u << 20, TW_FSYNC_NO, 0, why,
                                   sizeof why),
                     TW_EIO);
    assert_non_null(strstr(why, "another broker"));
    tw_store_close(&s);
}

/* A full map: TW_EFULL, the transaction rolled back, and the store still
 * usable for smaller writes. */
static void
test_map_full(void **state)
{
    (void)state;
    tw_store_t *s;
    char why[512];
    assert_int_equal(tw_store_open(&s, s_dir, 256u << 10, TW_FSYNC_NO, 0, why,
                                   sizeof why),
                     0);
    static char big[8192];
    memset(big, 'x', sizeof big);
    unsigned char k[8];
    int rc = 0;
    assert_int_equal(tw_store_begin(s), 0);
    for (uint64_t id = 1; id < 1000 && rc == 0; id++) {
        tw_record_id_key(id, k);
        rc = tw_store_put(s, TW_DB_TASKS, k, 8, big, sizeof big);
    }
    assert_int_equal(rc, TW_EFULL);
    assert_int_equal(tw_store_commit(s), 0); /* nothing left to commit */
    assert_int_equal(s_count(s, TW_DB_TASKS), 0);
    assert_int_equal(tw_store_begin(s), 0);
    tw_record_id_key(1, k);
    assert_int_equal(tw_store_put(s, TW_DB_TASKS, k, 8, "small", 5), 0);
    assert_int_equal(tw_store_commit(s), 0);
    assert_int_equal(s_count(s, TW_DB_TASKS), 1);
    tw_store_close(&s);
}

/* ---- admission (room.h) ---------------------------------------------- */

/* Admission counts what is measured, what is on its way to the writer and
 * what this turn admitted, against the smaller of --data-size and the
 * disk, minus the reserve for outcomes; a done batch's estimate gives way
 * to the measurement. */
static void
test_room(void **state)
{
    (void)state;
    tw_room_t r = {.data_bytes = 3u << 20};
    r.use.live_bytes = 16384;
    assert_int_equal(tw_room_cap(&r), 3u << 20);
    assert_int_equal(tw_room_reserve(&r), 1u << 20); /* at least 1 MiB */
    /* 2 MiB - 16 KiB of room: exactly what fits is admitted. */
    uint64_t room = (2u << 20) - 16384;
    assert_int_equal(tw_room_admit(&r, room - 100), 0);
    assert_int_equal(tw_room_admit(&r, 101), TW_EFULL);
    assert_int_equal(tw_room_admit(&r, 100), 0);
    assert_int_equal(tw_room_admit(&r, 1), TW_EFULL);
    /* Handed over: still counted while on its way... */
    tw_room_seal(&r, room);
    assert_int_equal(r.turn, 0);
    assert_int_equal(tw_room_admit(&r, 1), TW_EFULL);
    /* ...until done: then the measurement counts (half the estimate). */
    tw_store_use_t u = {.live_bytes = 16384 + room / 2,
                        .map_bytes = 6u << 20};
    tw_room_done(&r, room, &u);
    assert_int_equal(r.flight, 0);
    assert_int_equal(tw_room_admit(&r, room / 2), 0);
    assert_int_equal(tw_room_admit(&r, 1), TW_EFULL);
    /* A disk with less room than --data-size is the capacity, and the
     * reserve is an eighth of it. */
    tw_room_t d = {.data_bytes = 64u << 20};
    d.use.have_disk = 1;
    d.use.file_bytes = 4u << 20;
    d.use.disk_free = 12u << 20;
    d.use.live_bytes = 1u << 20;
    assert_int_equal(tw_room_cap(&d), 16u << 20);
    assert_int_equal(tw_room_reserve(&d), 2u << 20);
    assert_int_equal(tw_room_admit(&d, (13u << 20) + 1), TW_EFULL);
    assert_int_equal(tw_room_admit(&d, 13u << 20), 0);
    /* Estimates: inline records count twice, overflow values by page. */
    assert_int_equal(tw_room_est(100), 2 * (100 + 24));
    assert_int_equal(tw_room_est(10000), 3 * 4096 + 48);
    /* Nothing fits a store smaller than its reserve. */
    tw_room_t z = {.data_bytes = 1u << 20};
    assert_int_equal(tw_room_admit(&z, 1), TW_EFULL);
}

/* ---- the writer thread ------------------------------------------------ */

typedef struct {
    int calls;
    int rcs[8];
    size_t msgs[8];
    size_t nops[8];
} s_done_t;

static void
s_done(tw_wbatch_t *b, void *arg)
{
    s_done_t *d = arg;
    if (d->calls < 8) {
        d->rcs[d->calls] = b->rc;
        d->msgs[d->calls] = b->nmsgs / 3;
        d->nops[d->calls] = b->nops;
    }
    d->calls++;
    tw_wbatch_free(b);
}

static void
s_hold_one(tw_wbatch_t *b)
{
    zmq_msg_t f[3];
    for (int i = 0; i < 3; i++) {
        zmq_msg_init_size(&f[i], 4);
        memcpy(zmq_msg_data(&f[i]), "abcd", 4);
    }
    tw_wbatch_hold(b, f);
}

/* Batches are written in order, one transaction each, their held messages
 * come back with them; a batch that cannot fit keeps the writer busy and
 * failing (a bounded wait and the health say so, with LMDB's reason), is
 * handed back with its error at stop together with every later batch, and
 * nothing of them is in the store. */
static void
test_writer(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_store_t *s;
    char why[512];
    assert_int_equal(tw_store_open(&s, s_dir, 256u << 10, TW_FSYNC_NO, 0, why,
                                   sizeof why),
                     0);
    s_done_t d = {0};
    tw_writer_t *w = tw_writer_new(&loop, s, s_done, &d);
    assert_non_null(w);
    unsigned char k[8];
    for (int n = 0; n < 3; n++) {
        tw_wbatch_t *b = tw_wbatch_new();
        for (uint64_t id = 1; id <= 10; id++) {
            tw_record_id_key((uint64_t)n * 100 + id, k);
            tw_wbatch_put(b, TW_DB_TASKS, k, 8, "v", 1, 1);
        }
        if (n == 2) {
            tw_record_id_key(101, k); /* a delete in a later batch */
            tw_wbatch_del(b, TW_DB_TASKS, k, 8);
        }
        s_hold_one(b);
        tw_writer_submit(w, b);
    }
    assert_int_equal(tw_writer_wait(w, 0), 0);
    assert_int_equal(d.calls, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d.rcs[i], 0);
        assert_int_equal(d.msgs[i], 1);
    }
    assert_int_equal(d.nops[2], 11);
    assert_int_equal(s_count(s, TW_DB_TASKS), 29);
    /* A batch larger than the whole map. */
    static char big[8192];
    memset(big, 'x', sizeof big);
    tw_wbatch_t *b = tw_wbatch_new();
    for (uint64_t id = 1000; id < 1100; id++) {
        tw_record_id_key(id, k);
        tw_wbatch_put(b, TW_DB_TASKS, k, 8, big, sizeof big, 1);
    }
    s_hold_one(b);
    tw_writer_submit(w, b);
    /* A small one behind it, which would fit. */
    b = tw_wbatch_new();
    tw_record_id_key(2000, k);
    tw_wbatch_put(b, TW_DB_TASKS, k, 8, "v", 1, 1);
    s_hold_one(b);
    tw_writer_submit(w, b);
    assert_int_equal(tw_writer_wait(w, 300), TW_ETIMEDOUT);
    assert_int_equal(d.calls, 3);
    assert_true(tw_writer_errors(w) > 0);
    tw_writer_health_t h;
    tw_writer_health(w, &h);
    assert_int_equal(h.failing, 1);
    assert_int_equal(tw_writer_failing(w), 1);
    assert_int_equal(h.rc, TW_EFULL);
    assert_non_null(strstr(h.err, "MDB_MAP_FULL"));
    assert_non_null(strstr(h.err, s_dir));
    tw_writer_stop(&w, 100);
    assert_null(w);
    /* Given up at the stop: it and every later batch come back unwritten,
     * so the store keeps a prefix of the batches. */
    assert_int_equal(d.calls, 5);
    assert_int_equal(d.rcs[3], TW_EFULL);
    assert_int_equal(d.rcs[4], TW_EFULL);
    assert_int_equal(s_count(s, TW_DB_TASKS), 29);
    uv_run(&loop, UV_RUN_DEFAULT); /* finishes the async handle's close */
    assert_int_equal(uv_loop_close(&loop), 0);
    tw_store_close(&s);
}

/* ---- the broker on a store -------------------------------------------- */

static tw_broker_cfg_t s_cfg;

static tw_broker_t *
s_broker(uv_loop_t *loop, const char *size_mb, const char *ttl)
{
    memset(&s_cfg, 0, sizeof s_cfg);
    char *argv[] = {"broker", "--frontend", "tcp://127.0.0.1:*",
                    "--backend", "tcp://127.0.0.1:*", "--status",
                    "tcp://127.0.0.1:*", "--data", s_dir, "--fsync",
                    "always", "--data-size", (char *)size_mb,
                    "--result-ttl", (char *)ttl, "--log-level", "err"};
    char err[256];
    assert_int_equal(tw_cfg_parse(tw_broker_options, &s_cfg,
                                  (int)(sizeof argv / sizeof *argv), argv,
                                  "", err, sizeof err),
                     0);
    tw_broker_t *b = tw_broker_new(loop, &s_cfg);
    assert_non_null(b);
    char why[512];
    int rc = tw_broker_recover(b, why, sizeof why);
    if (rc != 0) {
        fail_msg("recover: %s", why);
    }
    return b;
}

static void
s_broker_end(uv_loop_t *loop, tw_broker_t **b)
{
    tw_broker_stop(*b);
    uv_run(loop, UV_RUN_DEFAULT);
    tw_broker_destroy(b);
    tw_cfg_free(tw_broker_options, &s_cfg);
}

/* A task as SUBMIT would make it, for client identity `ident`. */
static tw_task_t *
s_task(tw_broker_t *b, const char *ident, uint64_t seq)
{
    tw_bclient_t *c = tw_clients_touch(&b->clients, ident, strlen(ident),
                                       uv_now(b->loop));
    tw_task_t *t = tw_tasks_create(&b->tasks, "\x91\x01", 2,
                                   uv_now(b->loop));
    t->handler = (uint32_t)tw_registry_handler(&b->reg, "echo", 4, 1);
    t->pool = tw_pools_get(&b->pools, "default", 7, 1)->id;
    t->seq = seq;
    t->client = c->id;
    c->outstanding++;
    tw_dedup_put(&b->dedup, c->id, seq, t->id, c->outstanding);
    tw__flow_enqueue(b, t);
    return t;
}

/* Tasks go to disk in the turn's commit; an ended one moves to results;
 * a result past its TTL is collected and its record deleted; a second
 * broker recovers the pending tasks, their submitters' dedup entries and
 * continues the ids. */
static void
test_broker_commit_gc_recover(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_broker_t *b = s_broker(&loop, "16", "1");
    tw_task_t *t1 = s_task(b, "c-one", 1);
    tw_task_t *t2 = s_task(b, "c-one", 2);
    tw_task_t *t3 = s_task(b, "c-two", 1);
    assert_int_equal(t1->id, 1);
    assert_int_equal(tw__persist_commit(b), 0);
    assert_true(t1->sflags & TW_TASK_STORED);
    assert_false(t1->sflags & TW_TASK_DIRTY);
    /* t2 ends: its record moves from tasks to results. */
    tw__flow_unpend(b, t2);
    tw__flow_end(b, t2, TW_ST_OK, "\x2a", 1, NULL, 0);
    assert_int_equal(tw__persist_commit(b), 0);
    /* The TTL (1 s) passes for t2: collected, record deleted. */
    tw__persist_gc(b, uv_now(b->loop) + 1500);
    assert_null(tw_tasks_get(&b->tasks, 2));
    /* Its submission entry may linger but names no task any more. */
    assert_null(tw_tasks_get(&b->tasks,
                             tw_dedup_get(&b->dedup, t1->client, 2)));
    assert_int_equal(tw__persist_commit(b), 0);
    (void)t3;
    s_broker_end(&loop, &b);

    b = s_broker(&loop, "16", "1");
    tw_task_t *r1 = tw_tasks_get(&b->tasks, 1);
    tw_task_t *r3 = tw_tasks_get(&b->tasks, 3);
    assert_non_null(r1);
    assert_non_null(r3);
    assert_null(tw_tasks_get(&b->tasks, 2));
    assert_int_equal(r1->state, TW_ST_PENDING);
    assert_int_equal(r1->data_len, 2);
    assert_memory_equal(r1->data, "\x91\x01", 2);
    assert_int_equal(b->pending, 2);
    /* The submitter's identity came back: (c-one, 1) still names task 1. */
    tw_bclient_t *c = tw_clients_touch(&b->clients, "c-one", 5,
                                       uv_now(b->loop));
    assert_int_equal(tw_dedup_get(&b->dedup, c->id, 1), 1);
    /* Ids continue past everything handed out before. */
    tw_task_t *t4 = s_task(b, "c-one", 3);
    assert_true(t4->id > 3);
    s_broker_end(&loop, &b);
    uv_loop_close(&loop);
}

/* Leases with a store (lease.c): a pending task with no dispatch on
 * record is adopted by a worker that reports it with any ep (its dispatch
 * left just before a crash); one that was dispatched as ep X is not, for
 * another ep: that DONE is stale and counted. */
static void
test_broker_lease_adopt(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_broker_t *b = s_broker(&loop, "16", "3600");
    tw_bworker_t *w = tw_registry_add(&b->reg, "w-x", 3, uv_now(b->loop));
    tw_task_t *t1 = s_task(b, "c-one", 1);
    tw_task_t *t2 = s_task(b, "c-one", 2);
    t2->ep = 500; /* requeued after a dispatch as ep 500 */
    msgpack_object id, ep;
    tw_item_t it;
    memset(&it, 0, sizeof it);
    id.type = ep.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    it.f[TW_I_ID] = &id;
    it.f[TW_I_EP] = &ep;
    id.via.u64 = t1->id;
    ep.via.u64 = 777;
    assert_int_equal(tw__lease_done_ok(b, w, t1, &it), 1);
    assert_int_equal(t1->state, TW_ST_RUNNING);
    assert_int_equal(t1->worker, w->id);
    assert_int_equal(t1->ep, 777);
    assert_int_equal(w->inflight.len, 1);
    id.via.u64 = t2->id;
    ep.via.u64 = 501;
    assert_int_equal(tw__lease_done_ok(b, w, t2, &it), 0);
    assert_int_equal(b->stale_done, 1);
    assert_int_equal(t2->state, TW_ST_PENDING);
    ep.via.u64 = 500;
    assert_int_equal(tw__lease_done_ok(b, w, t2, &it), 1);
    assert_int_equal(t2->state, TW_ST_RUNNING);
    assert_int_equal(b->adopted, 2);
    /* Their outcomes end them (as s_on_done would). */
    tw__flow_halt(b, t1);
    tw__flow_end(b, t1, TW_ST_OK, NULL, 0, NULL, 0);
    tw__flow_halt(b, t2);
    tw__flow_end(b, t2, TW_ST_OK, NULL, 0, NULL, 0);
    s_broker_end(&loop, &b);
    uv_loop_close(&loop);
}

/* Near the end of the map, admission answers TW_EFULL with a sentence
 * that names the store; nothing is created. */
static void
test_broker_store_full(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_broker_t *b = s_broker(&loop, "1", "3600");
    char why[256];
    assert_int_equal(tw__persist_admit(b, 100, why, sizeof why), TW_EFULL);
    assert_non_null(strstr(why, "data store full"));
    assert_non_null(strstr(why, s_dir));
    s_broker_end(&loop, &b);
    b = s_broker(&loop, "64", "3600");
    assert_int_equal(tw__persist_admit(b, 100, why, sizeof why), 0);
    s_broker_end(&loop, &b);
    uv_loop_close(&loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_write_reopen, s_setup,
                                        s_teardown),
        cmocka_unit_test(test_id_keys),
        cmocka_unit_test(test_records_round_trip),
        cmocka_unit_test_setup_teardown(test_other_version_refused, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_refused, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_healthy, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_truncated, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_damaged_page, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_bad_args, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_version_1, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_salvage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_salvage_converts_version_1,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_locked_by_another, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_map_full, s_setup, s_teardown),
        cmocka_unit_test(test_room),
        cmocka_unit_test_setup_teardown(test_writer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_broker_commit_gc_recover,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_broker_lease_adopt, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_broker_store_full, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
