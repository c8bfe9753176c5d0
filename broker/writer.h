/*  broker/writer.h - the store's writer thread.
 *
 *  The broker's loop thread decides what to write; this thread writes it.
 *  At the end of a loop iteration the loop encodes every dirty record into
 *  a batch of operations (put, append, delete, delete by prefix) and hands
 *  it over together with the client messages (ACKs, RESULT pushes) that may
 *  leave only once the batch is in the store. The writer applies batches
 *  strictly in order, one LMDB write transaction each (LMDB allows one
 *  writer; this thread is the only one once it runs), and passes each
 *  finished batch back to the loop through a uv_async, where its messages
 *  are sent. So the loop never waits for LMDB or the disk: with --fsync
 *  always the ACKs still follow the synced commit, and the loop keeps
 *  dispatching meanwhile.
 *
 *  A batch that fails (MDB_MAP_FULL) is retried every 200 ms before any
 *  later one, so order holds and its messages stay held: a submitter is
 *  never told "recorded" for something that is not. tw_writer_wait lets the
 *  loop catch up synchronously (before a direct reply that must not
 *  overtake held ACKs, and at shutdown).
 */
#ifndef TW_BROKER_WRITER_H
#define TW_BROKER_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

#include "broker/store.h"

typedef struct tw_wbatch {
    struct tw_wbatch *next;
    unsigned char *ops; /* [op][db][klen u32][vlen u32][key][value]... */
    size_t len, cap;
    size_t nops;
    zmq_msg_t *msgs;    /* held messages, 3 frames each: ident, header,
                           body */
    size_t nmsgs, capmsgs;
    int rc;             /* result of applying it */
    uint64_t used_bytes; /* the store's use after it */
    uint64_t sealed_ns;  /* uv_hrtime() when the loop handed it over */
} tw_wbatch_t;

tw_wbatch_t *tw_wbatch_new(void);
void tw_wbatch_free(tw_wbatch_t *b);

/* Queue operations (copied). `last`: the key is expected above every key
 * of `db` (tw_store_put_last). */
void tw_wbatch_put(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen,
                   const void *val, size_t vlen, int last);
void tw_wbatch_del(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen);
void tw_wbatch_del_prefix(tw_wbatch_t *b, tw_db_t db, const void *prefix,
                          size_t plen);

/* Hold a message (three frames, taken over) until the batch is written. */
void tw_wbatch_hold(tw_wbatch_t *b, zmq_msg_t f[3]);

/* Apply every operation in one write transaction. Returns 0, TW_EFULL or
 * TW_EIO (then nothing of it was written). */
int tw_wbatch_apply(tw_wbatch_t *b, tw_store_t *s);

typedef struct tw_writer tw_writer_t;

/* Called on the loop thread for every batch written, in order; it owns
 * the batch (send its messages, then tw_wbatch_free). */
typedef void (*tw_writer_done_fn)(tw_wbatch_t *b, void *arg);

/* Start the thread. NULL if it cannot be started (write synchronously
 * then). */
tw_writer_t *tw_writer_new(uv_loop_t *loop, tw_store_t *s,
                           tw_writer_done_fn done, void *arg);

/* Hand a batch over. */
void tw_writer_submit(tw_writer_t *w, tw_wbatch_t *b);

/* Wait until every batch handed over is written, but at most timeout_ms
 * (0: no limit), and run `done` for each batch written so far, here and
 * now. Returns 0, or TW_ETIMEDOUT if batches are still pending (a stuck
 * store must not freeze the loop). */
int tw_writer_wait(tw_writer_t *w, uint64_t timeout_ms);

/* 1 if batches are handed over and not yet done. */
int tw_writer_busy(tw_writer_t *w);

/* Write what is handed over (a batch that fails is tried once more and
 * then returned with its rc), stop the thread, run `done` for the rest and
 * close the async handle (the loop must run once more to finish the
 * close); *wp is freed by the close. */
void tw_writer_stop(tw_writer_t **wp);

/* Failed attempts so far (MDB_MAP_FULL and the like). */
uint64_t tw_writer_errors(tw_writer_t *w);

#endif /* TW_BROKER_WRITER_H */
