/*  broker/state/writer.h - the store's writer thread.
 *
 *  The broker's loop thread decides what to write; this thread writes it.
 *  At the end of a loop iteration the loop encodes every dirty record into
 *  a batch of operations (put, append, delete, delete by prefix) and hands
 *  it over together with the client messages (ACKs, RESULT pushes, and
 *  replies that must not overtake them) that may leave only once the
 *  batch is in the store. The writer applies batches strictly in order,
 *  one LMDB write transaction each (LMDB allows one writer; this thread is
 *  the only one once it runs), measures the store after each
 *  (tw_store_use: the loop admits new work against that), and passes each
 *  finished batch back to the loop through a uv_async, where its messages
 *  are sent. So the loop never waits for LMDB or the disk: with --fsync
 *  always the ACKs still follow the synced commit, and the loop keeps
 *  dispatching meanwhile.
 *
 *  A batch that fails is never skipped: nothing of it was written, and it
 *  is tried again, before any later one, after 50 ms doubling to 2 s,
 *  until it succeeds - when the disk has room again, say. Meanwhile the
 *  writer says it is failing (tw_writer_health: since when, how often, and
 *  what LMDB or the filesystem said: "No space left on device",
 *  "MDB_MAP_FULL"...), so the loop refuses new submissions with that
 *  reason and its messages stay held: a submitter is never told
 *  "recorded" for something that is not. An environment LMDB gave up
 *  (MDB_PANIC) is opened again by the store (store.h).
 *
 *  Stopping waits for the batches handed over, retrying a failing one for
 *  at most the grace period given; then that batch and every later one
 *  come back failed (rc set, unwritten), so the store keeps a prefix of
 *  the batches and the loop can tell their submitters "not recorded".
 */
#ifndef TW_BROKER_WRITER_H
#define TW_BROKER_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

#include "broker/state/store.h"

typedef struct tw_wbatch {
    struct tw_wbatch *next;
    unsigned char *ops; /* [op][db][klen u32][vlen u32][key][value]...:
                           the bytes of broker/state/replops.h */
    size_t len, cap;
    size_t open;        /* offset of the operation begun last */
    size_t nops;
    zmq_msg_t *msgs;    /* held messages, 3 frames each: ident, header,
                           body */
    size_t nmsgs, capmsgs;
    /* Set by the loop when it hands the batch over. */
    uint64_t seq;        /* 1, 2, 3... in the order handed over */
    uint64_t growth;     /* what it may add to the store, estimated */
    uint64_t first_id;   /* task ids from this one up were created in this
                            batch or later ones */
    uint64_t sealed_ns;  /* uv_hrtime() when the loop handed it over */
    uint64_t rseq;       /* a pair's stream: the sequence number it was
                            streamed under (state/pair.h), 0: none */
    /* Set by the writer. */
    int rc;              /* 0 written, else TW_EFULL / TW_EIO: unwritten */
    char err[320];       /* what went wrong (rc != 0) */
    tw_store_use_t use;  /* the store measured after it */
    int have_use;
} tw_wbatch_t;

tw_wbatch_t *tw_wbatch_new(void);
void tw_wbatch_free(tw_wbatch_t *b);

/* Queue operations (copied). `last`: the key is expected above every key
 * of `db` (tw_store_put_last). */
void tw_wbatch_put(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen,
                   const void *val, size_t vlen, int last);
void tw_wbatch_del(tw_wbatch_t *b, tw_db_t db, const void *key, size_t klen);

/* A put whose value is written in place: begin returns room for up to
 * `max` bytes of it, end says how many were written. Nothing else may be
 * queued in between. */
unsigned char *tw_wbatch_put_begin(tw_wbatch_t *b, tw_db_t db,
                                   const void *key, size_t klen, size_t max,
                                   int last);
void tw_wbatch_put_end(tw_wbatch_t *b, size_t vlen);
void tw_wbatch_del_prefix(tw_wbatch_t *b, tw_db_t db, const void *prefix,
                          size_t plen);

/* Hold a message (three frames, taken over) until the batch is written. */
void tw_wbatch_hold(tw_wbatch_t *b, zmq_msg_t f[3]);

/* Apply every operation in one write transaction. Returns 0, TW_EFULL or
 * TW_EIO (then nothing of it was written, and b->err says why). */
int tw_wbatch_apply(tw_wbatch_t *b, tw_store_t *s);

typedef struct tw_writer tw_writer_t;

/* Called on the loop thread for every batch done, in order; it owns the
 * batch (send its messages, then tw_wbatch_free). */
typedef void (*tw_writer_done_fn)(tw_wbatch_t *b, void *arg);

/* Start the thread. NULL if it cannot be started (write synchronously
 * then). */
tw_writer_t *tw_writer_new(uv_loop_t *loop, tw_store_t *s,
                           tw_writer_done_fn done, void *arg);

/* Hand a batch over. */
void tw_writer_submit(tw_writer_t *w, tw_wbatch_t *b);

/* Wait until every batch handed over is done, but at most timeout_ms (0:
 * no limit), and run `done` for each batch done so far, here and now.
 * Returns 0, or TW_ETIMEDOUT if batches are still pending. For tests and
 * shutdown; the loop never waits otherwise. */
int tw_writer_wait(tw_writer_t *w, uint64_t timeout_ms);

/* 1 if batches are handed over and not yet done. */
int tw_writer_busy(tw_writer_t *w);

/* Write what is handed over, trying a failing batch for at most grace_ms
 * more (then it and every later one are done with rc set), stop the
 * thread, run `done` for the rest and close the async handle (the loop
 * must run once more to finish the close); *wp is freed by the close. */
void tw_writer_stop(tw_writer_t **wp, uint64_t grace_ms);

/* Is the writer stuck on a batch? `failing` (the batch at the head has
 * failed and waits for its next attempt), `since_ms` (tw_now_ms() of its
 * first failure), the attempts that failed in all, and the last error in
 * `err`. Any thread; the flag alone is also tw_writer_failing. */
typedef struct {
    int failing;
    int rc;
    uint64_t since_ms;
    uint64_t errors;
    uint64_t recovered; /* failing spells that ended in success */
    char err[320];
} tw_writer_health_t;
void tw_writer_health(tw_writer_t *w, tw_writer_health_t *h);
int tw_writer_failing(tw_writer_t *w);

/* Failed attempts so far. */
uint64_t tw_writer_errors(tw_writer_t *w);

#endif /* TW_BROKER_WRITER_H */
