/*  broker/state/pair.h - one broker of a pair: the peer socket, the pair's
 *  heartbeats, the replication stream and snapshots (docs/HA.md,
 *  proto/PROTOCOL.md 17).
 *
 *  A broker started with a role opens one tw_pair_t. It binds a ROUTER at
 *  --peer-bind, on which it only receives, and connects a DEALER to
 *  --peer, on which it only sends (each direction is one connection); a
 *  socket monitor on the DEALER reports a closed connection at once. It
 *  runs the state machine (bstar.h) on the PAIR heartbeats, the requests
 *  of clients and workers (tw_pair_request) and a timer, and the
 *  replication log (replog.h):
 *
 *  - active: every batch the broker hands to its writer goes through
 *    tw_pair_stream, which adds the pair's record (meta/ha: epoch, role,
 *    sequence number, lineage) to it, numbers it, keeps it in the backlog
 *    and streams it as REPL; RACK acknowledges; under sync the broker asks
 *    tw_pair_wait before a batch's client messages leave, and is called
 *    back (ops.release) when they may. A passive that must catch up gets
 *    a snapshot: chunks read through ops.snap_read, paced by its
 *    acknowledgements, while the stream goes on.
 *  - passive: REPL batches are checked (replops.h) and handed to
 *    ops.apply in order; the broker calls tw_pair_applied once each is
 *    committed, which acknowledges it. A snapshot goes to ops.snap_begin,
 *    snap_chunk and snap_end (a side store, swapped in at the end); the
 *    stream meanwhile is spooled and applied after it.
 *
 *  What the broker does with the state is its own: ops.activate recovers
 *  it from the store (a takeover), ops.depose stops the process (an
 *  active that meets a later epoch). This module touches no broker state
 *  and no store; it is tested with two of it in one process
 *  (tests/unit/test_broker_pair.c). Loop thread only.
 */
#ifndef TW_BROKER_PAIR_H
#define TW_BROKER_PAIR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/state/bstar.h"
#include "broker/state/replog.h"
#include "broker/state/replops.h"
#include "proto/proto.h"

typedef struct {
    tw_bstar_role_t role;
    const char *peer_bind;      /* this broker's ROUTER for its peer */
    const char *peer;           /* the peer's */
    tw_repl_mode_t mode;
    uint64_t hb_ms;             /* the pair's heartbeat */
    unsigned liveness;          /* heartbeats of silence: the peer is lost */
    size_t backlog_bytes;       /* --repl-backlog */
    size_t window_bytes;        /* --repl-window */
    const char *front, *back, *pub; /* this broker's endpoints, as bound */
    uint64_t boot;              /* this run's boot id */
    int alone;                  /* --takeover */
    int ndb;                    /* databases of the store */
} tw_pair_cfg_t;

/* What the store says about the pair (its meta/ha record). */
typedef struct {
    tw_bstar_pos_t pos;
    uint64_t epoch;             /* the highest epoch it knows */
    int by;                     /* role of the active that wrote it, -1 */
    tw_replog_era_t eras[TW_REPLOG_ERAS];
    size_t neras;
} tw_pair_meta_t;

/* Where a snapshot's walk is: database, and the key after which to go on
 * (none yet: klen 0 and !started). The caller's snap_read moves it. */
typedef struct {
    int db;
    int started;
    unsigned char key[TW_REPLOP_MAX_KEY];
    size_t klen;
} tw_pair_cursor_t;

typedef struct {
    /* This broker is active now under `epoch` (a takeover, or the start
     * of a pair): recover the state from the store and serve. Return 0,
     * or an error with the reason in `why` (the broker cannot serve: it
     * stops). */
    int (*activate)(void *ud, uint64_t epoch, char *why, size_t wlen);
    /* An active broker met a later epoch: stop now (the process exits,
     * docs/HA.md rule 7). */
    void (*depose)(void *ud, const char *why);
    /* Passive: write batch `seq` (checked) to the store, in order; call
     * tw_pair_applied when it is committed. */
    void (*apply)(void *ud, uint64_t epoch, uint64_t seq,
                  const unsigned char *ops, size_t len);
    /* Active: the batches up to `seq` may release their client messages
     * (UINT64_MAX: all, nothing waits for the peer any more). */
    void (*release)(void *ud, uint64_t seq);
    /* Active: read records from `cur` on as a batch of puts into `out`,
     * about `max_bytes`, all of one database (which it returns in *db),
     * and the sequence number the read saw in *at. Returns 1 (more to
     * come), 0 (the walk is over; `out` may hold the last records) or a
     * negative error. */
    int (*snap_read)(void *ud, tw_pair_cursor_t *cur, tw_replops_t *out,
                     size_t max_bytes, int *db, uint64_t *at);
    /* Passive: a snapshot begins (make an empty side store) / one chunk
     * of puts (write it there) / it is complete (swap it in for the
     * store; the old one is kept aside when `diverged`) / it is
     * abandoned (drop the side store). Each returns 0 or an error. */
    int (*snap_begin)(void *ud);
    int (*snap_chunk)(void *ud, const unsigned char *ops, size_t len);
    int (*snap_end)(void *ud, int diverged, char *why, size_t wlen);
    void (*snap_abort)(void *ud);
    /* An ha.* event ("ha.active", "ha.peer-lost"...) with its sentence. */
    void (*event)(void *ud, const char *topic, const char *why);
} tw_pair_ops_t;

typedef struct tw_pair tw_pair_t;

/* Bind and connect the peer sockets (in `ctx`) on `loop` and start
 * PENDING with the store's record `meta`. Returns 0, or an error with
 * the reason in `err` (an endpoint that cannot be bound...). */
int tw_pair_open(tw_pair_t **out, uv_loop_t *loop, void *ctx,
                 const tw_pair_cfg_t *cfg, const tw_pair_meta_t *meta,
                 const tw_pair_ops_t *ops, void *ud, char *err,
                 size_t errlen);

/* Close the sockets and handles; the loop must run once more; the pair
 * is freed then. Sets *pp to NULL. */
void tw_pair_close(tw_pair_t **pp);

tw_bstar_state_t tw_pair_state(const tw_pair_t *p);
uint64_t tw_pair_epoch(const tw_pair_t *p);

/* ---- the frontend and backend ------------------------------------------- */

/* How a message from a client or worker is to be taken. */
enum { TW_PAIR_SERVE = 0, TW_PAIR_REFUSE = 1 };

typedef struct {
    uint64_t ha;              /* this broker's epoch */
    char active[256];         /* the active's endpoint for the socket, or
                                 "" */
    int live;                 /* the active is heard */
    char msg[512];
} tw_pair_refusal_t;

/* A message arrived on the frontend (`worker` 0) or the backend (1),
 * carrying `ha` (0: none) and the vote `lost` (has_lost). Returns
 * TW_PAIR_SERVE (an active broker: process it; a takeover may just have
 * happened) or TW_PAIR_REFUSE with *r filled: answer ERROR ENOTACTIVE. A
 * later `ha` than ours deposes an active broker (ops.depose) and is
 * refused. */
int tw_pair_request(tw_pair_t *p, int worker, uint64_t ha, int has_lost,
                    uint64_t lost, tw_pair_refusal_t *r);

/* ---- the active ---------------------------------------------------------- */

/* A batch the broker hands to its writer: the pair's record is appended
 * to `ops`, the batch numbered, kept and streamed. Returns its sequence
 * number. */
uint64_t tw_pair_stream(tw_pair_t *p, tw_replops_t *ops);

/* The writer committed batch `seq` locally (the snapshot's base comes
 * from it). */
void tw_pair_committed(tw_pair_t *p, uint64_t seq);

/* Must batch `seq`'s client messages wait for the peer? */
int tw_pair_wait(const tw_pair_t *p, uint64_t seq);

/* ---- the passive --------------------------------------------------------- */

/* Batch `seq` (handed to ops.apply) is committed: acknowledge it. */
void tw_pair_applied(tw_pair_t *p, uint64_t seq);

/* ---- the pair's record and figures -------------------------------------- */

/* Encode / decode the meta/ha record {ep, by, seq, eras}. decode returns
 * 0, or TW_EPROTO for a record that is not one. */
void tw_pair_meta_encode(tw_enc_t *e, uint64_t epoch, tw_bstar_role_t by,
                         uint64_t seq, const tw_replog_era_t *eras,
                         size_t neras);
int tw_pair_meta_decode(const void *buf, size_t len, tw_pair_meta_t *out);

typedef struct {
    const char *role, *state, *peer_state, *follower, *mode;
    uint64_t epoch;
    tw_bstar_pos_t pos;
    int peer_alive, ready, sync;
    tw_replog_lag_t lag;
    uint64_t activations, snapshots, batches, diverged;
} tw_pair_figures_t;

void tw_pair_figures(const tw_pair_t *p, tw_pair_figures_t *out);

#endif /* TW_BROKER_PAIR_H */
