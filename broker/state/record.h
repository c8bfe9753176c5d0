/*  broker/state/record.h - what a store holds: its databases and the
 *  encoding of each kind of record.
 *
 *  The store (store.h) keeps records in five named databases:
 *
 *      meta      "format" {v, created}; "counters" {id, ep}
 *      tasks     u64 id (big-endian) -> task record: pending, running,
 *                or ended (an outcome kept until its TTL)
 *      stations  sid -> station record
 *      pools     name -> pool record
 *      groups    pool NUL group -> group record
 *
 *  Records are msgpack maps with short keys (small integers for the task
 *  record, written often), so a later version may add fields an older one
 *  ignores: a decoder skips keys it does not know, and refuses a known key
 *  whose value has the wrong type. Every stored value ends with a
 *  checksum. This module is the format only: no LMDB, no I/O, so the store,
 *  the check of a store before it is opened (verify.h) and the salvage of
 *  a damaged one (salvage.h) share it, and the unit suite checks that each
 *  kind round-trips. Pure functions, any thread.
 */
#ifndef TW_BROKER_RECORD_H
#define TW_BROKER_RECORD_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define TW_STORE_VERSION 2

/* Every stored value ends with a checksum of this many bytes: CRC-32C
 * (common/crc32c.h) of the database number (one byte), the key and the
 * value, big-endian. The store's put/get/each add and check it; its
 * callers never see it. */
#define TW_STORE_CRC 4

typedef enum {
    TW_DB_META = 0,
    TW_DB_TASKS,
    TW_DB_STATIONS,
    TW_DB_POOLS,
    TW_DB_GROUPS,
    TW_DB__COUNT
} tw_db_t;

/* The name of database `db` ("tasks"...). */
const char *tw_record_db_name(tw_db_t db);

/* The checksum of a record (see TW_STORE_CRC). */
uint32_t tw_record_crc(tw_db_t db, const void *key, size_t klen,
                      const void *val, size_t vlen);

/* Write `val` and its checksum into `out` (vlen + TW_STORE_CRC bytes). */
void tw_record_seal(unsigned char *out, tw_db_t db, const void *key,
                    size_t klen, const void *val, size_t vlen);

/* Check the checksum at the end of a stored value of *vlen bytes: 0 and
 * *vlen without it, or TW_EPROTO. */
int tw_record_unseal(tw_db_t db, const void *key, size_t klen,
                    const void *val, size_t *vlen);

/* Check a "format" record (a stored value, checksum included): 0 if it
 * is this broker's version, else TW_EVERSION or TW_EPROTO with the
 * sentence for `path` in `why`. */
int tw_record_format_check(const char *path, const void *val, size_t vlen,
                          char *why, size_t wlen);

/* Keys of the id databases: 8 bytes big-endian, so LMDB's order is the
 * id order. */
void tw_record_id_key(uint64_t id, unsigned char key[8]);
uint64_t tw_record_key_id(const void *key, size_t klen);

/* ---- records ---------------------------------------------------------- */

/* A task, live or ended (its outcome). Strings and bytes are borrowed:
 * from the caller when encoding, from the unpacked buffer after decoding.
 * Groups: encoding reads gnames/glens; decoding sets gobj (an array of
 * strings, or NULL). */
typedef struct {
    uint64_t id, seq, ep, worker;
    uint64_t shash;    /* the submission's hash (dedup.h) */
    uint64_t t_wall;   /* submitted (live) or ended (result), wall ms */
    uint64_t due_wall; /* not before (wall ms), 0 = now */
    int64_t priority;
    uint32_t timeout_ms;
    uint16_t retries, attempt;
    uint8_t state, cancel;
    const void *ident;  /* submitter's routing identity */
    size_t ident_len;
    const char *handler;
    size_t handler_len;
    const void *data;   /* args (live) or result (ended) */
    size_t data_len;
    const char *error;
    size_t error_len;
    const char *pool;
    size_t pool_len;
    const char *key;    /* dedup key "k" */
    size_t key_len;
    size_t ngroups;
    const char *const *gnames;
    const size_t *glens;
    const msgpack_object *gobj;
    /* A blocked task (--after): its parents, 8 bytes big-endian each, in
     * the order named; its policy (tw_deps_mode_t) and 1 to pass their
     * results. */
    const void *after;
    size_t after_len;
    uint8_t after_mode, after_wr;
} tw_record_task_t;

typedef struct {
    const char *sid;
    size_t sid_len;
    const char *handler;
    size_t handler_len;
    const void *args;
    size_t args_len;
    const void *ck;    /* NULL: none */
    size_t ck_len;
    const char *code;  /* NULL: none */
    size_t code_len;
    const char *last_error;
    size_t last_error_len;
    uint8_t next, wanted, state, restart, placement;
    uint32_t interval_ms, timeout_ms, restarts;
    uint64_t epoch, iterations;
    /* tags: encoding reads tags/ntags (key, value pairs); decoding sets
     * tobj (a map, or NULL). */
    char *const *tags;
    size_t ntags;
    const msgpack_object *tobj;
} tw_record_station_t;

typedef struct {
    const char *name;
    size_t name_len;
    uint64_t size, ended, cancelled, next_dseq;
    uint8_t locked, closed;
} tw_record_pool_t;

typedef struct {
    const char *pool;
    size_t pool_len;
    const char *name;
    size_t name_len;
    int64_t limit, calls;
    uint64_t admitted, ended, cancelled;
    uint8_t full, before_lock;
} tw_record_group_t;

/* Encode a record into `e` (cleared first). */
void tw_record_task_enc(tw_enc_t *e, const tw_record_task_t *r);
/* A task record straight into `out`, which holds at least
 * tw_record_task_enc_max(r) bytes; returns its size. */
size_t tw_record_task_enc_max(const tw_record_task_t *r);
size_t tw_record_task_enc_to(unsigned char *out, const tw_record_task_t *r);
void tw_record_station_enc(tw_enc_t *e, const tw_record_station_t *r);
void tw_record_pool_enc(tw_enc_t *e, const tw_record_pool_t *r);
void tw_record_group_enc(tw_enc_t *e, const tw_record_group_t *r);

/* Decode into *r (zeroed first), pointing into `up`, which the caller
 * initialised and destroys after use. Returns 0 or TW_EPROTO. */
/* 1 if a decoded task record's state is one a store may hold: an
 * outcome, pending, running, or blocked with 1 to 65536 parents and a
 * known policy. */
int tw_record_task_state_ok(const tw_record_task_t *r);

int tw_record_task_dec(msgpack_unpacked *up, const void *buf, size_t len,
                      tw_record_task_t *r);
int tw_record_station_dec(msgpack_unpacked *up, const void *buf, size_t len,
                         tw_record_station_t *r);
int tw_record_pool_dec(msgpack_unpacked *up, const void *buf, size_t len,
                      tw_record_pool_t *r);
int tw_record_group_dec(msgpack_unpacked *up, const void *buf, size_t len,
                       tw_record_group_t *r);

/* Group keys: pool NUL group, into `key` (room for 2 names + 1). */
size_t tw_record_group_key(char *key, const char *pool, size_t plen,
                          const char *group, size_t glen);

/* The counters record {id, ep}: encode into `e` (cleared first), or
 * decode (0 or TW_EPROTO). */
void tw_record_counters_enc(tw_enc_t *e, uint64_t next_id, uint64_t next_ep);
int tw_record_counters_dec(const void *buf, size_t len, uint64_t *next_id,
                          uint64_t *next_ep);


#endif /* TW_BROKER_RECORD_H */
