/*  tests/unit/test_broker_bstar.c - the broker pair's state machine.
 *
 *  broker/state/bstar.h does no I/O and reads no clock, so these tests run two
 *  machines in a small simulation: a fake clock that moves in steps, a
 *  link between them that can be cut in either direction, heartbeats
 *  delivered at once while the link is up, a store per broker that
 *  survives a kill (epoch, position, who was active) unless it is wiped,
 *  and an active that writes a batch every step which a passive that
 *  hears it follows. Each test plays one case of docs/HA.md: start-up,
 *  failover (silence AND a vote), a cut between the pair only, a store
 *  not caught up, the old active coming back, both restarted together,
 *  a wiped disk, a healed split, fencing, a misconfigured pair; a last
 *  test runs thousands of random kills, restarts, cuts and requests and
 *  checks the invariants after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/state/bstar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HB 100
#define S_LIVE 3
#define S_WINDOW (S_HB * S_LIVE)
#define S_STEP 10

/* ---- the simulation ----------------------------------------------------- */

typedef struct {
    tw_bstar_t b;
    int up;            /* the process runs */
    int ready;         /* the store is caught up */
    /* The store: what survives a kill. */
    uint64_t st_epoch;
    tw_bstar_pos_t st_pos;
    int st_was_active;
    int alone;         /* --takeover */
    unsigned acts;     /* actions since the test last looked */
    uint64_t active_since;
} s_node_t;

typedef struct {
    s_node_t n[2];
    int link[2];          /* link[i]: what i sends reaches the other */
    uint64_t link_up_since; /* both directions up since */
    uint64_t now;
    uint64_t epochs[256]; /* every epoch an activation took */
    size_t nepochs;
    int check_split;      /* assert the split rule at every activation */
    int check_unique;     /* assert every activation takes a new epoch */
} s_sim_t;

static void
s_persist(s_node_t *n)
{
    n->st_epoch = tw_bstar_epoch(&n->b);
    n->st_pos = n->b.pos;
    n->st_was_active = n->b.was_active;
}

static void
s_on_actions(s_sim_t *s, int i, unsigned a)
{
    s_node_t *n = &s->n[i];
    s_node_t *o = &s->n[1 - i];
    n->acts |= a;
    if (a & TW_BSTAR_ACTIVATE) {
        assert_int_equal(tw_bstar_state(&n->b), TW_BSTAR_ACTIVE);
        /* Epochs are never taken twice, and follow the role's parity. */
        uint64_t e = tw_bstar_epoch(&n->b);
        for (size_t k = 0; s->check_unique && k < s->nepochs; k++) {
            assert_true(s->epochs[k] != e);
        }
        assert_int_equal(e & 1, n->b.cfg.role == TW_BSTAR_PRIMARY ? 1 : 0);
        if (s->nepochs < 256) {
            s->epochs[s->nepochs++] = e;
        }
        n->active_since = s->now;
        /* The first batch of the new epoch. */
        tw_bstar_progress(&n->b,
                          (tw_bstar_pos_t){e, n->b.pos.seq + 1}, n->ready);
        if (s->check_split && o->up &&
            tw_bstar_state(&o->b) == TW_BSTAR_ACTIVE &&
            s->link[0] && s->link[1] &&
            s->link_up_since + S_HB <= s->now &&
            o->active_since + S_HB <= s->now) {
            fail_msg("broker %d activated at %llu while its peer was "
                     "active and the link up", i,
                     (unsigned long long)s->now);
        }
    }
    if (a & TW_BSTAR_HEARTBEAT) {
        if (s->link[i] && o->up) {
            tw_bstar_peer_t hb;
            tw_bstar_self(&n->b, &hb);
            unsigned oa = tw_bstar_peer(&o->b, &hb, s->now);
            /* A passive follows the active's stream while it hears it. */
            if (hb.state == TW_BSTAR_ACTIVE &&
                tw_bstar_state(&o->b) == TW_BSTAR_PASSIVE) {
                tw_bstar_progress(&o->b, hb.pos, o->ready);
            }
            s_on_actions(s, 1 - i, oa);
        }
    }
    s_persist(n);
}

static void
s_start(s_sim_t *s, int i)
{
    s_node_t *n = &s->n[i];
    tw_bstar_config_t cfg = {
        .role = i == 0 ? TW_BSTAR_PRIMARY : TW_BSTAR_BACKUP,
        .hb_ms = S_HB,
        .liveness = S_LIVE,
        .epoch = n->st_epoch,
        .pos = n->st_pos,
        .was_active = n->st_was_active,
        .alone = n->alone,
        .ready = n->ready,
    };
    tw_bstar_init(&n->b, &cfg, s->now);
    n->up = 1;
    n->acts = 0;
    s_on_actions(s, i, tw_bstar_tick(&n->b, s->now));
}

static void
s_init(s_sim_t *s)
{
    memset(s, 0, sizeof *s);
    s->now = 1000;
    s->link[0] = s->link[1] = 1;
    s->n[0].ready = s->n[1].ready = 1;
    s->check_split = 1;
    s->check_unique = 1;
}

static void
s_kill(s_sim_t *s, int i)
{
    s->n[i].up = 0;
}

static void
s_wipe(s_sim_t *s, int i)
{
    s_node_t *n = &s->n[i];
    n->st_epoch = 0;
    n->st_pos = (tw_bstar_pos_t){0, 0};
    n->st_was_active = 0;
}

static void
s_set_link(s_sim_t *s, int from0, int from1)
{
    int was = s->link[0] && s->link[1];
    s->link[0] = from0;
    s->link[1] = from1;
    if (!was && from0 && from1) {
        s->link_up_since = s->now;
    }
}

/* Advance the clock by `ms`, ticking both brokers every step; the active
 * writes one batch per step. */
static void
s_run(s_sim_t *s, uint64_t ms)
{
    uint64_t end = s->now + ms;
    while (s->now < end) {
        s->now += S_STEP;
        for (int i = 0; i < 2; i++) {
            s_node_t *n = &s->n[i];
            if (!n->up) {
                continue;
            }
            if (tw_bstar_state(&n->b) == TW_BSTAR_ACTIVE) {
                tw_bstar_pos_t pos = n->b.pos;
                pos.seq++;
                tw_bstar_progress(&n->b, pos, n->ready);
            }
            s_on_actions(s, i, tw_bstar_tick(&n->b, s->now));
        }
    }
}

static unsigned
s_request(s_sim_t *s, int i, int vote)
{
    assert_true(s->n[i].up);
    unsigned a = tw_bstar_request(&s->n[i].b, vote, s->now);
    assert_true((a & TW_BSTAR_SERVE) != 0 || (a & TW_BSTAR_REFUSE) != 0);
    assert_false((a & TW_BSTAR_SERVE) && (a & TW_BSTAR_REFUSE));
    s_on_actions(s, i, a);
    return a;
}

static tw_bstar_state_t
s_state(const s_sim_t *s, int i)
{
    return tw_bstar_state(&s->n[i].b);
}

static int
s_actives(const s_sim_t *s)
{
    int k = 0;
    for (int i = 0; i < 2; i++) {
        k += s->n[i].up && s_state(s, i) == TW_BSTAR_ACTIVE;
    }
    return k;
}

/* The primary dies; the backup takes over on the first vote after the
 * silence. */
static void
s_takeover(s_sim_t *s)
{
    s_kill(s, 0);
    s_run(s, S_WINDOW + S_HB);
    assert_true(s_request(s, 1, 1) & TW_BSTAR_ACTIVATE);
}

static void
s_expect(const s_sim_t *s, tw_bstar_state_t st0, tw_bstar_state_t st1)
{
    assert_int_equal(s_state(s, 0), st0);
    assert_int_equal(s_state(s, 1), st1);
}

/* A pair started together and settled: primary active, backup passive. */
static void
s_pair(s_sim_t *s)
{
    s_init(s);
    s_start(s, 0);
    s_start(s, 1);
    s_run(s, 2 * S_HB);
    s_expect(s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    s->n[0].acts = s->n[1].acts = 0;
}

/* ---- pure helpers ------------------------------------------------------- */

static void
test_epoch_parity(void **state)
{
    (void)state;
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_PRIMARY, 0), 1);
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_BACKUP, 0), 2);
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_PRIMARY, 1), 3);
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_PRIMARY, 2), 3);
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_BACKUP, 1), 2);
    assert_int_equal(tw_bstar_next_epoch(TW_BSTAR_BACKUP, 2), 4);
    for (uint64_t k = 0; k < 100; k++) {
        uint64_t p = tw_bstar_next_epoch(TW_BSTAR_PRIMARY, k);
        uint64_t b = tw_bstar_next_epoch(TW_BSTAR_BACKUP, k);
        assert_true(p > k && p <= k + 2 && (p & 1) == 1);
        assert_true(b > k && b <= k + 2 && (b & 1) == 0);
    }
}

static void
test_prefer(void **state)
{
    (void)state;
    tw_bstar_peer_t p = {.role = TW_BSTAR_PRIMARY, .ready = 1,
                         .pos = {3, 100}};
    tw_bstar_peer_t b = {.role = TW_BSTAR_BACKUP, .ready = 1,
                         .pos = {3, 100}};
    /* A tie goes to the primary, on both sides. */
    assert_true(tw_bstar_prefer(&p, &b));
    assert_false(tw_bstar_prefer(&b, &p));
    /* The later batch wins. */
    b.pos.seq = 101;
    assert_false(tw_bstar_prefer(&p, &b));
    assert_true(tw_bstar_prefer(&b, &p));
    /* The later epoch wins over more batches of an older one. */
    p.pos = (tw_bstar_pos_t){5, 10};
    assert_true(tw_bstar_prefer(&p, &b));
    assert_false(tw_bstar_prefer(&b, &p));
    /* A store that is caught up wins over everything else. */
    p.ready = 0;
    assert_false(tw_bstar_prefer(&p, &b));
    assert_true(tw_bstar_prefer(&b, &p));
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(tw_bstar_role_name(TW_BSTAR_PRIMARY), "primary");
    assert_string_equal(tw_bstar_role_name(TW_BSTAR_BACKUP), "backup");
    assert_string_equal(tw_bstar_state_name(TW_BSTAR_PENDING), "pending");
    assert_string_equal(tw_bstar_state_name(TW_BSTAR_ACTIVE), "active");
    assert_string_equal(tw_bstar_state_name(TW_BSTAR_PASSIVE), "passive");
    assert_int_equal(tw_bstar_role_parse("primary"), TW_BSTAR_PRIMARY);
    assert_int_equal(tw_bstar_role_parse("backup"), TW_BSTAR_BACKUP);
    assert_int_equal(tw_bstar_role_parse("Primary"), -1);
    assert_int_equal(tw_bstar_role_parse(""), -1);
    assert_int_equal(tw_bstar_role_parse(NULL), -1);
}

/* ---- start-up ----------------------------------------------------------- */

static void
test_start_together(void **state)
{
    (void)state;
    static s_sim_t s;
    s_init(&s);
    s_start(&s, 0);
    s_start(&s, 1);
    /* The backup's first heartbeat reaches the primary, which decides at
     * once; no client is needed. */
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 1);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 1);
    assert_true(s.n[0].acts & TW_BSTAR_ACTIVATE);
    assert_true(s.n[1].acts & TW_BSTAR_PASSIVATE);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_SERVE);
    assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "alive"));
    /* A vote does not move a passive whose active is alive. */
    assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
    /* It stays so. */
    s_run(&s, 50 * S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    assert_false((s.n[0].acts | s.n[1].acts) & TW_BSTAR_PEER_LOST);
    /* The passive followed the active's batches. */
    assert_int_equal(s.n[1].b.pos.epoch, 1);
    assert_true(s.n[1].b.pos.seq + 2 * (S_HB / S_STEP) >= s.n[0].b.pos.seq);
}

static void
test_primary_starts_alone_fresh(void **state)
{
    (void)state;
    static s_sim_t s;
    s_init(&s);
    s_start(&s, 0);
    /* Before the window: it listens for the peer first. */
    s_run(&s, S_WINDOW - 2 * S_STEP);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "listening"));
    assert_int_equal(s_state(&s, 0), TW_BSTAR_PENDING);
    s_run(&s, 2 * S_STEP);
    /* A fresh primary may start alone. */
    unsigned a = s_request(&s, 0, 0);
    assert_int_equal(a, TW_BSTAR_SERVE | TW_BSTAR_ACTIVATE |
                            TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 1);
    /* The backup arrives later and follows. */
    s_start(&s, 1);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
}

static void
test_backup_never_alone_fresh(void **state)
{
    (void)state;
    static s_sim_t s;
    s_init(&s);
    s_start(&s, 1);
    for (int k = 0; k < 20; k++) {
        s_run(&s, S_WINDOW);
        assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
        assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
    }
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "--takeover"));
    assert_int_equal(s_state(&s, 1), TW_BSTAR_PENDING);
    /* The primary comes: the pair forms with the primary active. */
    s_start(&s, 0);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
}

static void
test_start_alone_rules(void **state)
{
    (void)state;
    static s_sim_t s;
    /* A backup whose store says it was the active one starts alone. */
    s_init(&s);
    s.n[1].st_epoch = 2;
    s.n[1].st_pos = (tw_bstar_pos_t){2, 40};
    s.n[1].st_was_active = 1;
    s_start(&s, 1);
    s_run(&s, S_WINDOW);
    assert_true(s_request(&s, 1, 0) & TW_BSTAR_ACTIVATE);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 4);

    /* A primary that last knew the backup as active waits for it... */
    s_init(&s);
    s.n[0].st_epoch = 2;
    s.n[0].st_pos = (tw_bstar_pos_t){2, 40};
    s.n[0].st_was_active = 0;
    s_start(&s, 0);
    s_run(&s, 10 * S_WINDOW);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    assert_int_equal(s_request(&s, 0, 1), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "waiting for the peer"));

    /* ...unless the operator says --takeover, and then only after the
     * window. */
    s_init(&s);
    s.n[0].st_epoch = 2;
    s.n[0].st_pos = (tw_bstar_pos_t){2, 40};
    s.n[0].alone = 1;
    s_start(&s, 0);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    s_run(&s, S_WINDOW);
    assert_true(s_request(&s, 0, 0) & TW_BSTAR_ACTIVATE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 3);

    /* A fresh primary that heard a backup with data (preferred over it)
     * which then fell silent waits for it: the data is there. */
    s_init(&s);
    s.n[1].st_epoch = 1;
    s.n[1].st_pos = (tw_bstar_pos_t){1, 90};
    s_start(&s, 0);
    s_start(&s, 1);
    assert_int_equal(s_state(&s, 0), TW_BSTAR_PENDING);
    s_kill(&s, 1);
    s_run(&s, 10 * S_WINDOW);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "waiting for the peer"));
    /* It comes back: the pair forms around the data. */
    s_start(&s, 1);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 2);
}

/* ---- failover ----------------------------------------------------------- */

static void
test_failover_needs_silence_and_vote(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    uint64_t seq_before = s.n[1].b.pos.seq;
    s_kill(&s, 0);
    uint64_t died = s.now;
    /* Silent, but not for long enough yet. */
    s_run(&s, S_WINDOW - 3 * S_STEP);
    assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
    assert_false(s.n[1].acts & TW_BSTAR_PEER_LOST);
    s_run(&s, S_HB);
    assert_true(s.n[1].acts & TW_BSTAR_PEER_LOST);
    /* Silent long enough, but nobody lost it. */
    assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "silent"));
    assert_int_equal(s_state(&s, 1), TW_BSTAR_PASSIVE);
    /* A worker that lost the active comes: takeover. */
    unsigned a = s_request(&s, 1, 1);
    assert_true(a & TW_BSTAR_SERVE);
    assert_true(a & TW_BSTAR_ACTIVATE);
    assert_int_equal(s_state(&s, 1), TW_BSTAR_ACTIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 2);
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "takeover"));
    assert_true(s.n[1].b.pos.seq > seq_before);
    /* Within liveness heartbeats and one more of the death. */
    assert_true(s.now - died <= S_WINDOW + S_HB);
    /* Everyone is served now, vote or not. */
    assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_SERVE);
}

static void
test_failover_after_a_crash(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    /* The active's process dies: its connection closes at once. */
    s_kill(&s, 0);
    s_run(&s, S_STEP);
    unsigned a = tw_bstar_peer_closed(&s.n[1].b, s.now);
    assert_int_equal(a, TW_BSTAR_PEER_LOST);
    assert_false(tw_bstar_peer_alive(&s.n[1].b, s.now));
    /* Reported once. */
    assert_int_equal(tw_bstar_peer_closed(&s.n[1].b, s.now), 0);
    s_run(&s, S_WINDOW);
    assert_false(s.n[1].acts & TW_BSTAR_PEER_LOST);
    /* Still a vote is needed, and then it is at once. */
    assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
    s_pair(&s);
    s_kill(&s, 0);
    s_run(&s, S_STEP);
    tw_bstar_peer_closed(&s.n[1].b, s.now);
    uint64_t t0 = s.now;
    assert_true(s_request(&s, 1, 1) & TW_BSTAR_ACTIVATE);
    assert_int_equal(s.now, t0);
    /* A closed connection from a peer that is back (a quick restart) is
     * forgotten with its first heartbeat. */
    s_pair(&s);
    tw_bstar_peer_closed(&s.n[1].b, s.now);
    s_run(&s, S_HB);
    assert_true(s.n[1].acts & TW_BSTAR_PEER_BACK);
    assert_true(tw_bstar_peer_alive(&s.n[1].b, s.now));
    assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
    /* Closed before anything was heard: nothing to report. */
    tw_bstar_t b;
    tw_bstar_config_t cfg = {.role = TW_BSTAR_BACKUP, .hb_ms = S_HB,
                             .liveness = S_LIVE, .ready = 1};
    tw_bstar_init(&b, &cfg, 0);
    assert_int_equal(tw_bstar_peer_closed(&b, 0), 0);
}

static void
test_cut_between_the_pair_only(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    uint64_t e = tw_bstar_epoch(&s.n[0].b);
    s_set_link(&s, 0, 0);
    /* Clients and workers still reach the active and keep using it; new
     * ones may try the passive first, but none votes there: they lost
     * nothing. */
    for (int k = 0; k < 100; k++) {
        s_run(&s, S_HB / 2);
        assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_SERVE);
        assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
        assert_int_equal(s_actives(&s), 1);
    }
    /* Both noticed; the active serves alone. */
    assert_true(s.n[0].acts & TW_BSTAR_PEER_LOST);
    assert_true(s.n[1].acts & TW_BSTAR_PEER_LOST);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "alone"));
    s.n[0].acts = s.n[1].acts = 0;
    /* The cut heals: same active, same epoch, both see the peer back. */
    s_set_link(&s, 1, 1);
    s_run(&s, 2 * S_HB);
    assert_true(s.n[0].acts & TW_BSTAR_PEER_BACK);
    assert_true(s.n[1].acts & TW_BSTAR_PEER_BACK);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), e);
    assert_int_equal(s.nepochs, 1);
}

static void
test_one_way_cut(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    /* The passive stops hearing the active, the active still hears it:
     * still no second active without a vote. */
    s_set_link(&s, 0, 1);
    s_run(&s, 10 * S_WINDOW);
    assert_int_equal(s_request(&s, 1, 0), TW_BSTAR_REFUSE);
    assert_int_equal(s_actives(&s), 1);
    assert_false(s.n[0].acts & TW_BSTAR_PEER_LOST);
    assert_true(s.n[1].acts & TW_BSTAR_PEER_LOST);
}

static void
test_not_caught_up_never_takes_over(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    /* A snapshot is under way on the passive. */
    s.n[1].ready = 0;
    tw_bstar_progress(&s.n[1].b, s.n[1].b.pos, 0);
    s_kill(&s, 0);
    s_run(&s, 2 * S_WINDOW);
    assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "not caught up"));
    assert_int_equal(s_state(&s, 1), TW_BSTAR_PASSIVE);
    /* The primary comes back with its data: it becomes active again (the
     * passive yields, its store is not caught up). */
    s_start(&s, 0);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 3);
}

static void
test_old_active_comes_back(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    s_takeover(&s);
    s_run(&s, 5 * S_HB);
    /* The old active restarts on its store (it was active at epoch 1). */
    assert_int_equal(s.n[0].st_was_active, 1);
    s_start(&s, 0);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    s_run(&s, S_HB);
    assert_int_equal(s_state(&s, 0), TW_BSTAR_PASSIVE);
    assert_true(s.n[0].acts & TW_BSTAR_PASSIVATE);
    assert_false(s.n[0].acts & TW_BSTAR_ACTIVATE);
    /* It learnt the new epoch, and is no longer "the active one". */
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 2);
    assert_int_equal(s.n[0].st_was_active, 0);
    assert_int_equal(s_state(&s, 1), TW_BSTAR_ACTIVE);
    /* Recovery is manual: no switch back while both run. */
    s_run(&s, 20 * S_WINDOW);
    s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
}

static void
test_both_restarted_together(void **state)
{
    (void)state;
    static s_sim_t s;
    /* Equal stores: the primary. */
    s_pair(&s);
    s_run(&s, 10 * S_HB);
    s_kill(&s, 0);
    s_kill(&s, 1);
    s.n[1].st_pos = s.n[0].st_pos;
    s_run(&s, S_HB);
    s_start(&s, 1);
    s_start(&s, 0);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 3);

    /* The backup took over earlier and has the later store: the backup,
     * whichever order they start in. */
    for (int order = 0; order < 2; order++) {
        s_pair(&s);
        s_kill(&s, 0);
        s_run(&s, S_WINDOW + S_HB);
        assert_true(s_request(&s, 1, 1) & TW_BSTAR_ACTIVATE);
        s_run(&s, 10 * S_HB);
        s_kill(&s, 1);
        s_run(&s, S_HB);
        s_start(&s, order);
        s_start(&s, 1 - order);
        s_run(&s, S_HB);
        s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
        assert_int_equal(tw_bstar_epoch(&s.n[1].b), 4);
        assert_int_equal(s_actives(&s), 1);
    }

    /* Started one heartbeat apart (neither has heard the other when it
     * starts): the same answer. */
    s_pair(&s);
    s_kill(&s, 0);
    s_kill(&s, 1);
    s.n[0].st_pos.seq += 5; /* the primary wrote a little more */
    s_start(&s, 1);
    s_run(&s, S_HB - S_STEP);
    s_start(&s, 0);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_ACTIVE, TW_BSTAR_PASSIVE);
}

static void
test_active_restarts_with_wiped_disk(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    s_run(&s, 10 * S_HB);
    uint64_t seq = s.n[1].b.pos.seq;
    assert_true(seq > 50);
    /* The active dies with its data directory and is back before the
     * passive even notices: the passive, which has the data, wins. */
    s_kill(&s, 0);
    s_wipe(&s, 0);
    s_run(&s, S_HB);
    s_start(&s, 0);
    s_run(&s, S_HB);
    s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 2);
    assert_non_null(strstr(tw_bstar_why(&s.n[1].b), "restarted"));
    /* Even a client at the wiped one (after the window) cannot make it
     * active. */
    s_run(&s, 2 * S_WINDOW);
    assert_int_equal(s_request(&s, 0, 1), TW_BSTAR_REFUSE);
}

static void
test_wiped_primary_behind_a_cut(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    s_takeover(&s);
    /* The weakness docs/HA.md names: the primary comes back with a wiped
     * disk while the pair's link is cut. It looks like a fresh primary
     * and may start alone: a second active, under an epoch taken before
     * (the store that knew it is gone). */
    s.check_split = 0;
    s.check_unique = 0;
    s_set_link(&s, 0, 0);
    s_wipe(&s, 0);
    s_start(&s, 0);
    s_run(&s, S_WINDOW);
    assert_true(s_request(&s, 0, 0) & TW_BSTAR_ACTIVATE);
    assert_int_equal(s_actives(&s), 2);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 1);
    /* When the link heals the later epoch (the backup's) stays. */
    s_set_link(&s, 1, 1);
    s_run(&s, S_HB + S_STEP);
    assert_int_equal(s_actives(&s), 1);
    s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
}

static void
test_healed_split(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    /* A cut between the pair, and a worker that really lost the active
     * (its own link to it is down too) votes at the passive: a split,
     * which only a cut between the pair allows. */
    s.check_split = 0;
    s_set_link(&s, 0, 0);
    s_run(&s, S_WINDOW + S_HB);
    assert_true(s_request(&s, 1, 1) & TW_BSTAR_ACTIVATE);
    assert_int_equal(s_actives(&s), 2);
    s_run(&s, 3 * S_HB);
    /* The link heals: the older epoch steps down within a heartbeat. */
    s_set_link(&s, 1, 1);
    s_run(&s, S_HB + S_STEP);
    assert_int_equal(s_actives(&s), 1);
    s_expect(&s, TW_BSTAR_PASSIVE, TW_BSTAR_ACTIVE);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "later epoch"));
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), 2);
}

static void
test_fence(void **state)
{
    (void)state;
    static s_sim_t s;
    s_pair(&s);
    uint64_t e = tw_bstar_epoch(&s.n[0].b);
    /* Equal or older epochs change nothing. */
    assert_int_equal(tw_bstar_fence(&s.n[0].b, e, s.now), 0);
    assert_int_equal(tw_bstar_fence(&s.n[0].b, e - 1, s.now), 0);
    assert_int_equal(s_state(&s, 0), TW_BSTAR_ACTIVE);
    /* A later one: someone took over after us. */
    unsigned a = tw_bstar_fence(&s.n[0].b, e + 1, s.now);
    assert_true(a & TW_BSTAR_PASSIVATE);
    assert_true(a & TW_BSTAR_HEARTBEAT);
    assert_int_equal(s_state(&s, 0), TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[0].b), e + 1);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "fenced"));
    /* A passive only remembers it; its next activation goes above. */
    assert_int_equal(tw_bstar_fence(&s.n[1].b, 9, s.now), 0);
    assert_int_equal(s_state(&s, 1), TW_BSTAR_PASSIVE);
    assert_int_equal(tw_bstar_epoch(&s.n[1].b), 9);
    s_on_actions(&s, 0, a);
    /* Both passive now: the pair picks one again (the later store). */
    s.check_split = 0;
    s_run(&s, 2 * S_HB);
    assert_int_equal(s_actives(&s), 1);
    int act = s_state(&s, 0) == TW_BSTAR_ACTIVE ? 0 : 1;
    assert_true(tw_bstar_epoch(&s.n[act].b) > 9);
}

static void
test_misconfigured_pair(void **state)
{
    (void)state;
    static s_sim_t s;
    s_init(&s);
    s_start(&s, 0);
    /* Both say primary. */
    tw_bstar_config_t cfg = {.role = TW_BSTAR_PRIMARY, .hb_ms = S_HB,
                             .liveness = S_LIVE, .ready = 1};
    tw_bstar_init(&s.n[1].b, &cfg, s.now);
    s.n[1].up = 1;
    s_run(&s, 3 * S_HB);
    assert_true(s.n[0].acts & TW_BSTAR_MISCONFIG);
    assert_true(s.n[1].acts & TW_BSTAR_MISCONFIG);
    assert_non_null(strstr(tw_bstar_why(&s.n[0].b), "role"));
    s.n[0].acts = s.n[1].acts = 0;
    /* Reported once; neither becomes active, even after the window. */
    s_run(&s, 10 * S_WINDOW);
    assert_false((s.n[0].acts | s.n[1].acts) & TW_BSTAR_MISCONFIG);
    assert_int_equal(s_request(&s, 0, 0), TW_BSTAR_REFUSE);
    assert_int_equal(s_request(&s, 1, 1), TW_BSTAR_REFUSE);
    assert_int_equal(s_actives(&s), 0);
}

static void
test_deadlines(void **state)
{
    (void)state;
    tw_bstar_t b;
    tw_bstar_config_t cfg = {.role = TW_BSTAR_BACKUP, .hb_ms = 200,
                             .liveness = 4, .ready = 1};
    tw_bstar_init(&b, &cfg, 5000);
    assert_int_equal(tw_bstar_next(&b, 5000), 0);
    assert_int_equal(tw_bstar_tick(&b, 5000), TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_next(&b, 5000), 200);
    assert_int_equal(tw_bstar_next(&b, 5150), 50);
    assert_int_equal(tw_bstar_tick(&b, 5150), 0);
    /* The peer heard at 5100: its expiry is at 5900. */
    tw_bstar_peer_t p = {.role = TW_BSTAR_PRIMARY,
                         .state = TW_BSTAR_ACTIVE, .epoch = 1, .ready = 1};
    assert_int_equal(tw_bstar_peer(&b, &p, 5100), TW_BSTAR_PASSIVATE |
                                                      TW_BSTAR_HEARTBEAT);
    /* Passivating sent a heartbeat at 5100: the next is due at 5300. */
    assert_int_equal(tw_bstar_next(&b, 5100), 200);
    assert_true(tw_bstar_peer_alive(&b, 5899));
    assert_false(tw_bstar_peer_alive(&b, 5900));
    assert_int_equal(tw_bstar_tick(&b, 5300), TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_tick(&b, 5500), TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_tick(&b, 5700), TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_next(&b, 5850), 50);
    assert_int_equal(tw_bstar_tick(&b, 5899), 0);
    assert_int_equal(tw_bstar_tick(&b, 5900),
                     TW_BSTAR_PEER_LOST | TW_BSTAR_HEARTBEAT);
    /* Lost once; afterwards only heartbeats. */
    assert_int_equal(tw_bstar_next(&b, 5900), 200);
    assert_int_equal(tw_bstar_tick(&b, 6100), TW_BSTAR_HEARTBEAT);
    /* The peer comes back. */
    assert_int_equal(tw_bstar_peer(&b, &p, 6150), TW_BSTAR_PEER_BACK);
    /* Progress: a passive's epoch follows the stream's. */
    tw_bstar_progress(&b, (tw_bstar_pos_t){7, 3}, 1);
    assert_int_equal(tw_bstar_epoch(&b), 7);
    tw_bstar_peer_t self;
    tw_bstar_self(&b, &self);
    assert_int_equal(self.role, TW_BSTAR_BACKUP);
    assert_int_equal(self.state, TW_BSTAR_PASSIVE);
    assert_int_equal(self.pos.seq, 3);
    assert_int_equal(self.ready, 1);
}

static void
test_zero_settings(void **state)
{
    (void)state;
    /* Out-of-range settings are clamped, never divide or hang. */
    tw_bstar_t b;
    tw_bstar_config_t cfg = {.role = TW_BSTAR_PRIMARY};
    tw_bstar_init(&b, &cfg, 0);
    assert_int_equal(b.cfg.hb_ms, 1);
    assert_int_equal(b.cfg.liveness, 1);
    assert_int_equal(tw_bstar_tick(&b, 0), TW_BSTAR_HEARTBEAT);
    assert_int_equal(tw_bstar_next(&b, 0), 1);
    assert_true(tw_bstar_request(&b, 0, 1) & TW_BSTAR_ACTIVATE);
}

/* ---- random histories --------------------------------------------------- */

static uint64_t s_rng = 88172645463325252ULL;

static unsigned
s_rand(unsigned n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (unsigned)(s_rng % n);
}

static void
test_random_histories(void **state)
{
    (void)state;
    static s_sim_t s;
    int settled_checks = 0;
    size_t activations = 0;
    for (int run = 0; run < 300; run++) {
        s_init(&s);
        s_start(&s, 0);
        s_start(&s, 1);
        for (int step = 0; step < 300; step++) {
            switch (s_rand(20)) {
            case 0: /* a kill (a wiped disk has its own test) */
            {
                int i = (int)s_rand(2);
                if (s.n[i].up) {
                    s_kill(&s, i);
                }
                break;
            }
            case 1: /* a restart */
            {
                int i = (int)s_rand(2);
                if (!s.n[i].up) {
                    s_start(&s, i);
                }
                break;
            }
            case 2: /* a cut, one way or both */
                s_set_link(&s, (int)s_rand(2), (int)s_rand(2));
                break;
            case 3:
            case 4: /* the link heals */
                s_set_link(&s, 1, 1);
                break;
            default:
                break;
            }
            /* Requests. A client votes only if the broker it used is
             * really gone (dead). */
            for (int i = 0; i < 2; i++) {
                if (s.n[i].up && s_rand(3) == 0) {
                    int other_dead = !s.n[1 - i].up;
                    s_request(&s, i, other_dead && s_rand(2));
                }
            }
            s_run(&s, S_HB / 2);
            /* Convergence: both up and the link up for a few windows:
             * exactly one active. */
            if (s.n[0].up && s.n[1].up && s.link[0] && s.link[1] &&
                s.now >= s.link_up_since + 3 * S_WINDOW &&
                s.now >= s.n[0].b.started_ms + 3 * S_WINDOW &&
                s.now >= s.n[1].b.started_ms + 3 * S_WINDOW) {
                assert_int_equal(s_actives(&s), 1);
                settled_checks++;
            }
        }
        activations += s.nepochs;
    }
    /* The random histories did reach settled pairs many times. */
    assert_true(settled_checks > 1000);
    /* ...and many failovers and restarts (one activation per run is the
     * start). */
    assert_true(activations > 600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_parity),
        cmocka_unit_test(test_prefer),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_start_together),
        cmocka_unit_test(test_primary_starts_alone_fresh),
        cmocka_unit_test(test_backup_never_alone_fresh),
        cmocka_unit_test(test_start_alone_rules),
        cmocka_unit_test(test_failover_needs_silence_and_vote),
        cmocka_unit_test(test_failover_after_a_crash),
        cmocka_unit_test(test_cut_between_the_pair_only),
        cmocka_unit_test(test_one_way_cut),
        cmocka_unit_test(test_not_caught_up_never_takes_over),
        cmocka_unit_test(test_old_active_comes_back),
        cmocka_unit_test(test_both_restarted_together),
        cmocka_unit_test(test_active_restarts_with_wiped_disk),
        cmocka_unit_test(test_wiped_primary_behind_a_cut),
        cmocka_unit_test(test_healed_split),
        cmocka_unit_test(test_fence),
        cmocka_unit_test(test_misconfigured_pair),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_zero_settings),
        cmocka_unit_test(test_random_histories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
