/*  broker/state/bstar.h - the broker pair's state machine (Binary Star).
 *
 *  Two brokers run as a pair (docs/HA.md): a primary and a backup, each
 *  with its own store. One is ACTIVE (serves clients and workers and
 *  streams its store's write batches to the other); the other is PASSIVE
 *  (applies the stream and refuses clients and workers with "not active",
 *  naming the active). Both start PENDING. This engine decides, from what
 *  the peer says in its heartbeats, from the clients and workers that
 *  come, and from time, which one is active. It does no I/O and reads no
 *  clock: the caller passes now_ms to every call, acts on the action bits
 *  returned, and re-arms its timer with tw_bstar_next. So every rule below
 *  is unit-tested with a fake clock (tests/unit/test_broker_bstar.c).
 *
 *     PENDING --- peer PENDING or PASSIVE, self preferred ---> ACTIVE
 *        |    --- a client; the peer unheard since the start;     ^  |
 *        |        this broker may start alone -------------------'   |
 *        | peer ACTIVE                                                |
 *        v                                                            |
 *     PASSIVE <--- peer ACTIVE with a later epoch, or a client or ---'
 *        |         worker carried a later epoch (fenced)
 *        |--- the peer silent for `liveness` heartbeats (or its
 *        |    connection closed) AND a client or worker that lost the
 *        |    active comes AND this store is caught up ---------> ACTIVE
 *        '--- peer PENDING or PASSIVE, self preferred ----------> ACTIVE
 *
 *  The rules, in words:
 *
 *  - Failover needs two things (Binary Star's rule): the peer silent for
 *    `liveness` heartbeats (or its connection closed: a crashed process),
 *    and a request that *votes*: a client or worker that lost the active
 *    and came here (its message says so). A cut
 *    between the two brokers alone therefore never makes a second active:
 *    the clients and workers still reach the active and never vote here.
 *    A passive whose store is not caught up (a snapshot under way) never
 *    takes over.
 *  - A broker that starts (PENDING) and hears an ACTIVE peer becomes
 *    PASSIVE. Two that meet while neither is active (both restarted, or a
 *    passive meeting a restarted peer) pick one deterministically, the
 *    same on both sides: the one whose store is caught up, then the one
 *    with the later replication position (epoch, then batch sequence),
 *    then the primary. So a restarted active whose disk was wiped never
 *    wins over a passive that has the data.
 *  - A PENDING broker that has not heard its peer since it started, for
 *    `liveness` heartbeats, becomes ACTIVE on a client's request only if
 *    it may start alone: it was the active one when its store last knew,
 *    or it is a primary with a fresh store, or the operator said so
 *    (`alone`). A broker that last knew the other as active waits for it.
 *  - Every activation raises the fencing epoch above every epoch this
 *    broker knows of (its store's, the peer's, any a client or worker
 *    carried). Primaries take odd epochs and backups even ones, so two
 *    activations never share an epoch even when the brokers cannot talk.
 *  - Two ACTIVE brokers that hear each other (a healed split): the one
 *    with the lower epoch becomes PASSIVE. An ACTIVE broker that meets a
 *    higher epoch from a client or worker (tw_bstar_fence) becomes PASSIVE:
 *    someone took over after it.
 *  - A peer that says it has our role is a misconfiguration: reported once
 *    (TW_BSTAR_MISCONFIG), counted as heard (so it blocks failover and
 *    starting alone), and never followed.
 *
 *  Loop thread only; the struct is the caller's, its fields private.
 */
#ifndef TW_BROKER_BSTAR_H
#define TW_BROKER_BSTAR_H

#include <stdint.h>

typedef enum { TW_BSTAR_PRIMARY = 0, TW_BSTAR_BACKUP = 1 } tw_bstar_role_t;

typedef enum {
    TW_BSTAR_PENDING = 0, /* started; has not decided */
    TW_BSTAR_ACTIVE,      /* serves clients and workers, streams its store */
    TW_BSTAR_PASSIVE      /* follows the active's stream, refuses peers */
} tw_bstar_state_t;

/* A replication position: the fencing epoch of the stream a store last
 * applied a batch of, and that batch's sequence number. (0, 0) is a fresh
 * store. Ordered by epoch, then seq. */
typedef struct {
    uint64_t epoch;
    uint64_t seq;
} tw_bstar_pos_t;

typedef struct {
    tw_bstar_role_t role;
    uint64_t hb_ms;     /* the pair's heartbeat interval, >= 1 */
    unsigned liveness;  /* heartbeats of silence: the peer is gone, >= 1 */
    uint64_t epoch;     /* the highest fencing epoch the store knows */
    tw_bstar_pos_t pos; /* the store's position */
    int was_active;     /* the store says this broker was the active one
                           at pos.epoch */
    int alone;          /* the operator allows starting without the peer */
    int ready;          /* the store is a consistent copy (not a snapshot
                           left half-applied) */
} tw_bstar_config_t;

/* What a broker says about itself in every heartbeat to its peer. */
typedef struct {
    tw_bstar_role_t role;
    tw_bstar_state_t state;
    uint64_t epoch;     /* its fencing epoch (active: its own) */
    tw_bstar_pos_t pos;
    int ready;
} tw_bstar_peer_t;

/* Action bits returned by the event functions. */
enum {
    TW_BSTAR_SERVE = 1u << 0,     /* answer this request as the active */
    TW_BSTAR_REFUSE = 1u << 1,    /* answer it "not active" (tw_bstar_why) */
    TW_BSTAR_ACTIVATE = 1u << 2,  /* become active now: recover the state
                                     from the store, serve under
                                     tw_bstar_epoch (raised), stream to the
                                     peer */
    TW_BSTAR_PASSIVATE = 1u << 3, /* become passive now: stop serving (drop
                                     clients, workers and state if active),
                                     follow the peer's stream */
    TW_BSTAR_HEARTBEAT = 1u << 4, /* send the peer tw_bstar_self now */
    TW_BSTAR_PEER_LOST = 1u << 5, /* the peer fell silent (an active stops
                                     waiting for its acknowledgements) */
    TW_BSTAR_PEER_BACK = 1u << 6, /* the peer is heard again after a loss */
    TW_BSTAR_MISCONFIG = 1u << 7  /* the peer claims our role (once) */
};

typedef struct {
    tw_bstar_config_t cfg;
    tw_bstar_state_t state;
    uint64_t epoch;      /* ours while active; the highest known otherwise */
    tw_bstar_pos_t pos;
    int ready;
    int was_active;
    uint64_t started_ms;
    uint64_t hb_due_ms;
    int heard;           /* the peer was heard since the start */
    int lost;            /* PEER_LOST reported, not heard since */
    int closed;          /* its connection closed, not heard since */
    uint64_t seen_ms;    /* its last heartbeat */
    tw_bstar_peer_t peer;
    int misconfig;       /* MISCONFIG reported */
    uint64_t activations;
    const char *why;
} tw_bstar_t;

/* Start PENDING at now_ms; the first heartbeat is due at once. */
void tw_bstar_init(tw_bstar_t *b, const tw_bstar_config_t *cfg,
                   uint64_t now_ms);

/* Time passed: returns HEARTBEAT when one is due, PEER_LOST when the peer
 * has just fallen silent. */
unsigned tw_bstar_tick(tw_bstar_t *b, uint64_t now_ms);

/* A heartbeat from the peer. */
unsigned tw_bstar_peer(tw_bstar_t *b, const tw_bstar_peer_t *p,
                       uint64_t now_ms);

/* The link says the peer's connection closed (a process that dies closes
 * its sockets; a machine that dies, or a cut, says nothing): the peer
 * counts as silent for `liveness` heartbeats from now on, so failover
 * after a crash does not wait for the heartbeats to run out. A vote is
 * still needed. Returns PEER_LOST if the peer was heard and not lost. */
unsigned tw_bstar_peer_closed(tw_bstar_t *b, uint64_t now_ms);

/* A client or worker sent a request. `vote`: it says it lost the active
 * and came here for that (only a PASSIVE broker looks at it). Returns
 * SERVE (possibly with ACTIVATE: this request made us active) or REFUSE. */
unsigned tw_bstar_request(tw_bstar_t *b, int vote, uint64_t now_ms);

/* A client or worker carried fencing epoch `epoch`: one above ours means
 * another broker took over after us. Returns PASSIVATE (and HEARTBEAT) if
 * we were active, else 0; the epoch is remembered either way. */
unsigned tw_bstar_fence(tw_bstar_t *b, uint64_t epoch, uint64_t now_ms);

/* The store moved on (a batch applied, a snapshot finished or begun). */
void tw_bstar_progress(tw_bstar_t *b, tw_bstar_pos_t pos, int ready);

/* Milliseconds until tw_bstar_tick has something to do (a heartbeat due,
 * the peer's expiry, the end of the start-up wait), >= 0. */
uint64_t tw_bstar_next(const tw_bstar_t *b, uint64_t now_ms);

/* What to put in our heartbeat. */
void tw_bstar_self(const tw_bstar_t *b, tw_bstar_peer_t *out);

/* 1 if the peer was heard within `liveness` heartbeats. */
int tw_bstar_peer_alive(const tw_bstar_t *b, uint64_t now_ms);

/* 1 if self rather than peer should be active when neither is (the
 * deterministic tie-break both sides compute alike). */
int tw_bstar_prefer(const tw_bstar_peer_t *self, const tw_bstar_peer_t *peer);

/* The smallest epoch above `known` that `role` may take (primaries odd,
 * backups even). */
uint64_t tw_bstar_next_epoch(tw_bstar_role_t role, uint64_t known);

static inline tw_bstar_state_t
tw_bstar_state(const tw_bstar_t *b)
{
    return b->state;
}

static inline uint64_t
tw_bstar_epoch(const tw_bstar_t *b)
{
    return b->epoch;
}

/* Why the last transition or refusal happened: a static sentence for logs,
 * ha.* events and the "not active" answer. */
static inline const char *
tw_bstar_why(const tw_bstar_t *b)
{
    return b->why;
}

/* "primary"/"backup", "pending"/"active"/"passive". */
const char *tw_bstar_role_name(tw_bstar_role_t role);
const char *tw_bstar_state_name(tw_bstar_state_t state);

/* Parse "primary" or "backup"; -1 if neither. */
int tw_bstar_role_parse(const char *s);

#endif /* TW_BROKER_BSTAR_H */
