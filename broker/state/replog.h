/*  broker/state/replog.h - the replication log of a broker pair: sequence
 *  numbers, lineage, backlog and the follower's progress.
 *
 *  The active broker streams its store's write batches (writer.h: one per
 *  loop iteration) to the passive one, which applies them to its own store
 *  (docs/HA.md, proto/PROTOCOL.md 17). This module is the bookkeeping of
 *  that stream on both sides; it does no I/O and reads no clock.
 *
 *  - Every batch gets the next sequence number of the store (1, 2, 3...,
 *    continuing across restarts and takeovers) and is labelled with the
 *    fencing epoch of the active that wrote it. (epoch, seq) of the last
 *    batch applied is the store's *position* (bstar.h).
 *  - The *lineage* is the list of eras, (epoch, first seq), of the stream
 *    this store has applied: the active appends one when it takes over,
 *    the passive when the stream's epoch changes. Two stores hold the same
 *    history up to seq s if their eras agree up to s: that is how an
 *    active tells a peer that can follow the stream from where it stopped
 *    from one that must take a snapshot, and counts the batches a
 *    returning broker has that the new active never had (lost under
 *    --replicate async).
 *  - The *backlog* keeps copies of the latest batches, up to a byte
 *    budget, on both sides: the active to resend to a passive that was
 *    away briefly, the passive so that after a takeover it can serve the
 *    old active the batches it missed.
 *  - The *follower* (active side) is the passive's progress: the last seq
 *    sent and the last acknowledged, a window of bytes in flight, and its
 *    state: DETACHED (no peer), CATCHUP (a snapshot is under way; the
 *    stream is sent too and spooled by the passive) or FOLLOWING. Under
 *    --replicate sync a batch's ACKs wait for the passive's
 *    acknowledgement only while it is FOLLOWING (tw_replog_wait).
 *
 *           follow(from, catchup)           attach (snapshot applied)
 *  DETACHED ---------------------> CATCHUP -----------------------> FOLLOWING
 *     ^  ^        follow(from, 0)                                     |
 *     |  '--------------------------------------------------------->  |
 *     '------------------ detach (peer lost, or it must resync) ------'
 *
 *  Loop thread only.
 */
#ifndef TW_BROKER_REPLOG_H
#define TW_BROKER_REPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "broker/state/bstar.h"

typedef enum { TW_REPL_ASYNC = 0, TW_REPL_SYNC = 1 } tw_repl_mode_t;

/* Parse "sync" or "async"; -1 if neither. */
int tw_repl_mode_parse(const char *s);
const char *tw_repl_mode_name(tw_repl_mode_t mode);

/* One era of the lineage: batches from first_seq on carry `epoch`. */
typedef struct {
    uint64_t epoch;
    uint64_t first_seq;
} tw_replog_era_t;

#define TW_REPLOG_ERAS 32 /* eras kept; older ones are forgotten */

typedef struct {
    tw_repl_mode_t mode;
    size_t backlog_bytes;          /* batches kept, at most (>= 1) */
    size_t window_bytes;           /* sent and not acknowledged, at most */
    tw_bstar_pos_t pos;            /* the store's position */
    const tw_replog_era_t *eras;   /* the store's lineage, oldest first */
    size_t neras;
} tw_replog_config_t;

/* A batch in the backlog. `data` is borrowed until the next call that
 * appends, applies or resets. */
typedef struct {
    uint64_t epoch;
    uint64_t seq;
    const unsigned char *data;
    size_t len;
    uint64_t at_ms; /* appended or applied */
} tw_replog_batch_t;

typedef enum {
    TW_REPLOG_DETACHED = 0,
    TW_REPLOG_CATCHUP,
    TW_REPLOG_FOLLOWING
} tw_replog_follower_t;

/* What to do with a peer at some position. */
typedef struct {
    int snapshot;         /* 1: it needs a snapshot; 0: stream from... */
    uint64_t from_seq;    /* ...this seq (pos.seq + 1 when nothing is
                             missing) */
    uint64_t diverged;    /* batches it applied that are not ours (they
                             were never replicated before a takeover) */
    int unknown_lineage;  /* its epoch is not in our lineage (or too old,
                             or inconsistent): how much diverged is
                             unknown */
} tw_replog_plan_t;

typedef struct {
    uint64_t batches; /* appended and not acknowledged */
    uint64_t bytes;   /* their size (at least) */
    uint64_t ms;      /* age of the oldest of them */
} tw_replog_lag_t;

typedef struct tw_replog tw_replog_t;

/* A new log at cfg->pos with cfg's lineage (copied). NULL on OOM. */
tw_replog_t *tw_replog_new(const tw_replog_config_t *cfg);

/* Free it and its backlog; sets *rp to NULL. Idempotent. */
void tw_replog_destroy(tw_replog_t **rp);

tw_bstar_pos_t tw_replog_pos(const tw_replog_t *r);
tw_repl_mode_t tw_replog_mode(const tw_replog_t *r);

/* The lineage, oldest era first (borrowed until the next change). */
size_t tw_replog_eras(const tw_replog_t *r, const tw_replog_era_t **out);

/* ---- the active --------------------------------------------------------- */

/* A takeover: batches appended from now on carry `epoch` (> every epoch
 * of the lineage; a lower or equal one is ignored and returns TW_EINVAL). */
int tw_replog_begin_epoch(tw_replog_t *r, uint64_t epoch);

/* A batch handed to the writer: copied into the backlog (the oldest
 * batches leave it beyond the budget). Returns its seq. */
uint64_t tw_replog_append(tw_replog_t *r, const void *data, size_t len,
                          uint64_t now_ms);

/* Decide how a peer at position `peer` catches up. */
void tw_replog_plan(const tw_replog_t *r, tw_bstar_pos_t peer,
                    tw_replog_plan_t *out);

/* Stream to the peer from `from_seq` on (as planned; after a snapshot:
 * its base seq + 1). `catchup`: a snapshot is under way. */
void tw_replog_follow(tw_replog_t *r, uint64_t from_seq, int catchup);

/* The peer applied its snapshot: from now on it is FOLLOWING. */
void tw_replog_attach(tw_replog_t *r);

/* The peer is gone (or must start over): DETACHED. Nothing waits for it
 * any more. */
void tw_replog_detach(tw_replog_t *r);

tw_replog_follower_t tw_replog_follower(const tw_replog_t *r);

/* The next batch to send: 1 and *out (the cursor moves on); 0 if there
 * is none, the window is full or nobody follows; TW_ENOENT if the next
 * batch has left the backlog (the peer needs a snapshot). */
int tw_replog_next(tw_replog_t *r, tw_replog_batch_t *out);

/* The peer acknowledged every batch up to `seq`. 0 (an older or repeated
 * acknowledgement too), or TW_EINVAL for a seq never sent. */
int tw_replog_ack(tw_replog_t *r, uint64_t seq);

/* Last seq sent and acknowledged. */
uint64_t tw_replog_sent(const tw_replog_t *r);
uint64_t tw_replog_acked(const tw_replog_t *r);

/* Must the ACKs of batch `seq` wait for the peer? (sync, FOLLOWING, and
 * not acknowledged yet.) */
int tw_replog_wait(const tw_replog_t *r, uint64_t seq);

/* How far behind the peer is. */
void tw_replog_lag(const tw_replog_t *r, uint64_t now_ms,
                   tw_replog_lag_t *out);

/* ---- the passive -------------------------------------------------------- */

/* A batch from the stream: 0 (applied: the position moves, a new epoch
 * starts an era, a copy goes to the backlog), or TW_EPROTO if it is not
 * the next one (a gap, a repeat, an older epoch): nothing changes and
 * the passive must resynchronise. */
int tw_replog_apply(tw_replog_t *r, uint64_t epoch, uint64_t seq,
                    const void *data, size_t len, uint64_t now_ms);

/* A snapshot was applied: the store is now at `pos` with the active's
 * lineage; the backlog is emptied (it held another history). */
void tw_replog_reset(tw_replog_t *r, tw_bstar_pos_t pos,
                     const tw_replog_era_t *eras, size_t neras);

/* The oldest seq still in the backlog, or 0 if it is empty. */
uint64_t tw_replog_backlog_first(const tw_replog_t *r);

/* Look a batch up in the backlog: 1 and *out, or 0. */
int tw_replog_get(const tw_replog_t *r, uint64_t seq,
                  tw_replog_batch_t *out);

#endif /* TW_BROKER_REPLOG_H */
