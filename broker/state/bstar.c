/*  broker/state/bstar.c - the broker pair's state machine (see bstar.h).
 *
 *  One static function per transition (s_activate, s_passivate); the event
 *  functions only decide which applies. Every function that returns
 *  TW_BSTAR_HEARTBEAT goes through s_done, which moves the next heartbeat
 *  a full interval on, since the caller sends one now.
 */
#include "broker/state/bstar.h"

#include <string.h>

static uint64_t
s_window(const tw_bstar_t *b)
{
    return (uint64_t)b->cfg.liveness * b->cfg.hb_ms;
}

int
tw_bstar_peer_alive(const tw_bstar_t *b, uint64_t now_ms)
{
    return b->heard && !b->closed && now_ms < b->seen_ms + s_window(b);
}

uint64_t
tw_bstar_next_epoch(tw_bstar_role_t role, uint64_t known)
{
    uint64_t e = known + 1;
    uint64_t parity = role == TW_BSTAR_PRIMARY ? 1 : 0;
    if ((e & 1) != parity) {
        e++;
    }
    return e;
}

void
tw_bstar_self(const tw_bstar_t *b, tw_bstar_peer_t *out)
{
    memset(out, 0, sizeof *out);
    out->role = b->cfg.role;
    out->state = b->state;
    out->epoch = b->epoch;
    out->pos = b->pos;
    out->ready = b->ready;
}

int
tw_bstar_prefer(const tw_bstar_peer_t *self, const tw_bstar_peer_t *peer)
{
    if (!self->ready != !peer->ready) {
        return self->ready != 0;
    }
    if (self->pos.epoch != peer->pos.epoch) {
        return self->pos.epoch > peer->pos.epoch;
    }
    if (self->pos.seq != peer->pos.seq) {
        return self->pos.seq > peer->pos.seq;
    }
    return self->role == TW_BSTAR_PRIMARY;
}

static int
s_prefer_self(const tw_bstar_t *b)
{
    tw_bstar_peer_t self;
    tw_bstar_self(b, &self);
    return tw_bstar_prefer(&self, &b->peer);
}

static unsigned
s_done(tw_bstar_t *b, unsigned actions, uint64_t now_ms)
{
    if (actions & TW_BSTAR_HEARTBEAT) {
        b->hb_due_ms = now_ms + b->cfg.hb_ms;
    }
    return actions;
}

/* Become active under an epoch above every one we know of. */
static unsigned
s_activate(tw_bstar_t *b, const char *why)
{
    uint64_t known = b->epoch;
    if (b->peer.epoch > known) {
        known = b->peer.epoch;
    }
    if (b->pos.epoch > known) {
        known = b->pos.epoch;
    }
    b->epoch = tw_bstar_next_epoch(b->cfg.role, known);
    b->state = TW_BSTAR_ACTIVE;
    b->was_active = 1;
    b->activations++;
    b->why = why;
    return TW_BSTAR_ACTIVATE | TW_BSTAR_HEARTBEAT;
}

static unsigned
s_passivate(tw_bstar_t *b, const char *why)
{
    b->state = TW_BSTAR_PASSIVE;
    b->was_active = 0;
    b->why = why;
    return TW_BSTAR_PASSIVATE | TW_BSTAR_HEARTBEAT;
}

void
tw_bstar_init(tw_bstar_t *b, const tw_bstar_config_t *cfg, uint64_t now_ms)
{
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    if (b->cfg.hb_ms == 0) {
        b->cfg.hb_ms = 1;
    }
    if (b->cfg.liveness == 0) {
        b->cfg.liveness = 1;
    }
    b->state = TW_BSTAR_PENDING;
    b->epoch = cfg->epoch > cfg->pos.epoch ? cfg->epoch : cfg->pos.epoch;
    b->pos = cfg->pos;
    b->ready = cfg->ready;
    b->was_active = cfg->was_active;
    b->started_ms = now_ms;
    b->hb_due_ms = now_ms;
    b->peer.role = cfg->role == TW_BSTAR_PRIMARY ? TW_BSTAR_BACKUP
                                                  : TW_BSTAR_PRIMARY;
    b->why = "started: listening for the peer";
}

/* The peer was heard and is not any more: report it once. */
static unsigned
s_lose(tw_bstar_t *b, uint64_t now_ms)
{
    if (!b->heard || b->lost || tw_bstar_peer_alive(b, now_ms)) {
        return 0;
    }
    b->lost = 1;
    b->why = b->state == TW_BSTAR_ACTIVE ? "the peer is silent: serving alone"
                                         : "the peer is silent";
    return TW_BSTAR_PEER_LOST;
}

unsigned
tw_bstar_tick(tw_bstar_t *b, uint64_t now_ms)
{
    unsigned a = s_lose(b, now_ms);
    if (now_ms >= b->hb_due_ms) {
        a |= TW_BSTAR_HEARTBEAT;
    }
    return s_done(b, a, now_ms);
}

unsigned
tw_bstar_peer_closed(tw_bstar_t *b, uint64_t now_ms)
{
    b->closed = 1;
    return s_lose(b, now_ms);
}

unsigned
tw_bstar_peer(tw_bstar_t *b, const tw_bstar_peer_t *p, uint64_t now_ms)
{
    unsigned a = 0;
    b->closed = 0;
    if (b->lost) {
        a |= TW_BSTAR_PEER_BACK;
        b->lost = 0;
    }
    b->heard = 1;
    b->seen_ms = now_ms;
    if (p->role == b->cfg.role) {
        /* Heard, so it blocks failover and starting alone; never
         * followed. */
        if (!b->misconfig) {
            b->misconfig = 1;
            a |= TW_BSTAR_MISCONFIG;
            b->why = "the peer is configured with this broker's role: "
                     "one must be primary, the other backup";
        }
        return s_done(b, a, now_ms);
    }
    b->peer = *p;
    if (b->state != TW_BSTAR_ACTIVE && p->epoch > b->epoch) {
        b->epoch = p->epoch;
    }
    switch (b->state) {
    case TW_BSTAR_PENDING:
        if (p->state == TW_BSTAR_ACTIVE) {
            a |= s_passivate(b, "the peer is active");
        } else if (s_prefer_self(b)) {
            a |= s_activate(b, p->state == TW_BSTAR_PENDING
                                   ? "both brokers started: this one has "
                                     "the later store or is the primary"
                                   : "the peer is passive: this broker "
                                     "has the later store");
        }
        break;
    case TW_BSTAR_PASSIVE:
        if (p->state != TW_BSTAR_ACTIVE && s_prefer_self(b)) {
            a |= s_activate(b, p->state == TW_BSTAR_PENDING
                                   ? "the peer restarted: this broker has "
                                     "the later store"
                                   : "both brokers passive: this one has "
                                     "the later store or is the primary");
        }
        break;
    case TW_BSTAR_ACTIVE:
        if (p->state == TW_BSTAR_ACTIVE) {
            if (p->epoch > b->epoch) {
                b->epoch = p->epoch;
                a |= s_passivate(b, "the peer is active under a later "
                                    "epoch: it took over from this one");
            } else {
                /* Let it learn at once that it is the stale one. */
                a |= TW_BSTAR_HEARTBEAT;
            }
        }
        break;
    }
    return s_done(b, a, now_ms);
}

/* May a PENDING broker that has not heard its peer become active? */
static int
s_may_start_alone(const tw_bstar_t *b)
{
    if (b->cfg.alone) {
        return 1;
    }
    if (b->heard) {
        return 0; /* it was heard and did not yield to us: wait for it */
    }
    if (b->was_active) {
        return 1;
    }
    return b->cfg.role == TW_BSTAR_PRIMARY && b->pos.epoch == 0 &&
           b->pos.seq == 0 && b->epoch == 0;
}

unsigned
tw_bstar_request(tw_bstar_t *b, int vote, uint64_t now_ms)
{
    unsigned a = 0;
    switch (b->state) {
    case TW_BSTAR_ACTIVE:
        a = TW_BSTAR_SERVE;
        break;
    case TW_BSTAR_PASSIVE:
        if (tw_bstar_peer_alive(b, now_ms)) {
            b->why = "not active: the active broker is alive";
            a = TW_BSTAR_REFUSE;
        } else if (!vote) {
            b->why = "not active: the active broker is silent; a client "
                     "or worker that lost it takes this one over";
            a = TW_BSTAR_REFUSE;
        } else if (!b->ready) {
            b->why = "not active: this broker's store is not caught up, "
                     "so it cannot take over";
            a = TW_BSTAR_REFUSE;
        } else {
            a = s_activate(b, "takeover: the active broker was silent "
                              "and a client or worker lost it") |
                TW_BSTAR_SERVE;
        }
        break;
    case TW_BSTAR_PENDING:
        if (tw_bstar_peer_alive(b, now_ms)) {
            b->why = "not active yet: the pair is deciding";
            a = TW_BSTAR_REFUSE;
        } else if (!b->heard && now_ms < b->started_ms + s_window(b)) {
            b->why = "not active yet: listening for the peer";
            a = TW_BSTAR_REFUSE;
        } else if (!s_may_start_alone(b)) {
            b->why = "not active: waiting for the peer, which was active "
                     "after this broker (start with --takeover to serve "
                     "without it)";
            a = TW_BSTAR_REFUSE;
        } else {
            a = s_activate(b, "started alone: the peer is silent and this "
                              "broker was the active one") |
                TW_BSTAR_SERVE;
        }
        break;
    }
    return s_done(b, a, now_ms);
}

unsigned
tw_bstar_fence(tw_bstar_t *b, uint64_t epoch, uint64_t now_ms)
{
    if (epoch <= b->epoch) {
        return 0;
    }
    b->epoch = epoch;
    if (b->state != TW_BSTAR_ACTIVE) {
        return 0;
    }
    return s_done(b,
                  s_passivate(b, "fenced: a client or worker carried a "
                                 "later epoch, so another broker took "
                                 "over"),
                  now_ms);
}

void
tw_bstar_progress(tw_bstar_t *b, tw_bstar_pos_t pos, int ready)
{
    b->pos = pos;
    b->ready = ready;
    if (pos.epoch > b->epoch) {
        b->epoch = pos.epoch;
    }
}

uint64_t
tw_bstar_next(const tw_bstar_t *b, uint64_t now_ms)
{
    uint64_t t = b->hb_due_ms;
    if (b->heard && !b->lost && !b->closed) {
        uint64_t expiry = b->seen_ms + s_window(b);
        if (expiry < t) {
            t = expiry;
        }
    }
    return t > now_ms ? t - now_ms : 0;
}

const char *
tw_bstar_role_name(tw_bstar_role_t role)
{
    return role == TW_BSTAR_PRIMARY ? "primary" : "backup";
}

const char *
tw_bstar_state_name(tw_bstar_state_t state)
{
    switch (state) {
    case TW_BSTAR_ACTIVE:
        return "active";
    case TW_BSTAR_PASSIVE:
        return "passive";
    default:
        return "pending";
    }
}

int
tw_bstar_role_parse(const char *s)
{
    if (s && strcmp(s, "primary") == 0) {
        return TW_BSTAR_PRIMARY;
    }
    if (s && strcmp(s, "backup") == 0) {
        return TW_BSTAR_BACKUP;
    }
    return -1;
}
