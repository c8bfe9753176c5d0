/*  broker/state/replops.h - the bytes of a store write batch: what the writer
 *  applies, and what the broker pair's stream carries.
 *
 *  A batch (writer.h) is a run of operations, each
 *
 *      +----+----+---------------+---------------+--------+----------+
 *      | op | db | klen (u32 BE) | vlen (u32 BE) | key    | value    |
 *      | 1  | 1  | 4             | 4             | klen   | vlen     |
 *      +----+----+---------------+---------------+--------+----------+
 *
 *  op: put, put of a key above every other (append), delete, delete by
 *  prefix (deletes carry no value); db: a tw_db_t. The lengths are
 *  big-endian so that the same bytes travel in a REPL message
 *  (proto/PROTOCOL.md 17.5) and in a snapshot chunk (17.7, as puts) to a
 *  passive broker, which applies them to its own store.
 *
 *  A passive must not trust them: tw_replops_next checks every operation
 *  against the buffer before it hands it out, and a batch that is not
 *  well formed is refused whole (tw_replops_check), with a reason. Keys
 *  are 1 to 511 octets (LMDB's limit). Fuzzed by
 *  tests/fuzz/fuzz_broker_replops.c. Any thread; no state.
 */
#ifndef TW_BROKER_REPLOPS_H
#define TW_BROKER_REPLOPS_H

#include <stddef.h>
#include <stdint.h>

enum {
    TW_REPLOP_PUT = 1,
    TW_REPLOP_PUT_LAST = 2,
    TW_REPLOP_DEL = 3,
    TW_REPLOP_DEL_PREFIX = 4
};

#define TW_REPLOP_HEAD 10     /* op, db, klen, vlen */
#define TW_REPLOP_MAX_KEY 511 /* LMDB's largest key */

/* One operation; key and value point into the batch. */
typedef struct {
    int op;
    int db;
    const unsigned char *key;
    size_t klen;
    const unsigned char *val;
    size_t vlen;
} tw_replop_t;

/* A growing batch. Zero it to start; tw_replops_reset frees it. */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t nops;
} tw_replops_t;

/* Append one operation (copied). The caller passes a valid op, db and
 * lengths (the broker's own writes). */
void tw_replops_add(tw_replops_t *b, int op, int db, const void *key,
                    size_t klen, const void *val, size_t vlen);

/* The lengths of an operation's head: big-endian u32 at `p`. */
void tw_replops_put_u32(unsigned char *p, uint32_t v);
uint32_t tw_replops_get_u32(const unsigned char *p);

/* The same in a buffer of one's own (`*buf` of `*cap` bytes, `len` used,
 * grown as needed): the head and key of an operation with up to `vlen`
 * bytes of value written at `len`; returns where the value goes (the
 * caller moves its length on). */
unsigned char *tw_replops_begin(unsigned char **buf, size_t *cap, size_t len,
                                int op, int db, const void *key, size_t klen,
                                size_t vlen);

/* Free the buffer and zero the batch. */
void tw_replops_reset(tw_replops_t *b);

/* The operation at *off: 1 and *out (and *off moves past it), 0 at the
 * end of the batch, or TW_EPROTO if what is there is not a well-formed
 * operation (then *off does not move; `why`, if not NULL, says what).
 * `ndb`: the number of databases (a db at or above it is refused). */
int tw_replops_next(const unsigned char *buf, size_t len, int ndb,
                    size_t *off, tw_replop_t *out, char *why, size_t wlen);

/* Walk a whole batch: 0 and the number of operations in *nops (may be
 * NULL), or TW_EPROTO with the reason and the offending operation's
 * number (from 1) in `why`. */
int tw_replops_check(const unsigned char *buf, size_t len, int ndb,
                     size_t *nops, char *why, size_t wlen);

#endif /* TW_BROKER_REPLOPS_H */
