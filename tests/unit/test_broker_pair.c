/*  tests/unit/test_broker_pair.c - two brokers of a pair, without the
 *  brokers: two tw_pair_t (broker/state/pair.h) in one process, on one libuv
 *  loop, talking over ipc:// peer sockets, each with a small in-memory
 *  "store" (records by database and key) standing in for LMDB.
 *
 *  The fake ops do what the broker will: activate writes a takeover batch
 *  through tw_pair_stream; apply writes a batch into the store and calls
 *  tw_pair_applied at once (a writer that commits instantly); snap_read
 *  walks the store in key order; snap_begin/chunk/end build a side store
 *  and swap it in. The cases:
 *
 *    - the pair forms: the primary activates (epoch 1), the backup turns
 *      passive and follows; batches written by the active reach the
 *      passive's store in order, and under sync tw_pair_wait holds each
 *      until the passive acknowledged it (ops.release says when);
 *    - a passive refuses requests with the active's endpoint, and is not
 *      moved by a vote while it hears the active;
 *    - the active's process goes (its sockets close): the passive hears
 *      the connection close, and the first vote makes it active (epoch 2)
 *      with the data;
 *    - a passive that starts empty behind an active whose backlog no
 *      longer holds batch 1 catches up from a snapshot while the stream
 *      goes on, ending with the same store;
 *    - both restarted: the later store is active, the other catches up
 *      (a restarted broker has no backlog: from a snapshot);
 *    - the old active comes back with batches the new one never had
 *      (async): it turns passive, is told its store diverged, catches up
 *      from a snapshot (keeping its old store aside) and follows;
 *    - a request carrying a later epoch deposes an active;
 *    - a passive faced with a raw socket playing the active refuses a
 *      batch with a bad CRC, one that does not parse and one out of
 *      order (asking to resync), applies and acknowledges the right one,
 *      and abandons a snapshot whose chunk holds a delete.
 *
 *  Time is real (the loop's), with a 50 ms heartbeat; every wait is for a
 *  condition, with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/state/pair.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "common/zwatch.h"
#include "tests/unit/support/suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_HB 50
/* Heartbeats of silence before the peer is lost: a few hundred ms, so a
 * busy machine (or valgrind) stalling the loop does not look like a
 * dead peer; the cases that cut the link wait for the loss by deadline. */
#define S_LIVENESS 8
#define S_WAIT 5000
#define S_NDB 5
#define S_MAXREC 4096

/* ---- a store ---------------------------------------------------------- */

typedef struct {
    int db;
    size_t klen, vlen;
    unsigned char key[64];
    unsigned char val[64];
} s_rec_t;

typedef struct {
    s_rec_t r[S_MAXREC];
    size_t n;
} s_store_t;

static int
s_cmp(int db, const unsigned char *k, size_t kl, const s_rec_t *r)
{
    if (db != r->db) {
        return db < r->db ? -1 : 1;
    }
    size_t m = kl < r->klen ? kl : r->klen;
    int c = memcmp(k, r->key, m);
    if (c) {
        return c;
    }
    return kl == r->klen ? 0 : (kl < r->klen ? -1 : 1);
}

/* Index of the first record >= (db, key). */
static size_t
s_find(const s_store_t *s, int db, const unsigned char *k, size_t kl)
{
    size_t i = 0;
    while (i < s->n && s_cmp(db, k, kl, &s->r[i]) > 0) {
        i++;
    }
    return i;
}

static void
s_put(s_store_t *s, int db, const unsigned char *k, size_t kl,
      const unsigned char *v, size_t vl)
{
    assert_true(kl <= 64 && vl <= 64);
    size_t i = s_find(s, db, k, kl);
    if (i == s->n || s_cmp(db, k, kl, &s->r[i]) != 0) {
        assert_true(s->n < S_MAXREC);
        memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof s->r[0]);
        s->n++;
    }
    s_rec_t *r = &s->r[i];
    r->db = db;
    r->klen = kl;
    memcpy(r->key, k, kl);
    r->vlen = vl;
    memcpy(r->val, v, vl);
}

static void
s_del(s_store_t *s, int db, const unsigned char *k, size_t kl, int prefix)
{
    size_t i = s_find(s, db, k, kl);
    while (i < s->n && s->r[i].db == db && s->r[i].klen >= kl &&
           memcmp(s->r[i].key, k, kl) == 0 &&
           (prefix || s->r[i].klen == kl)) {
        memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof s->r[0]);
        s->n--;
    }
}

static void
s_apply_ops(s_store_t *s, const unsigned char *ops, size_t len)
{
    size_t off = 0;
    tw_replop_t op;
    while (tw_replops_next(ops, len, S_NDB, &off, &op, NULL, 0) == 1) {
        if (op.op == TW_REPLOP_DEL || op.op == TW_REPLOP_DEL_PREFIX) {
            s_del(s, op.db, op.key, op.klen, op.op == TW_REPLOP_DEL_PREFIX);
        } else {
            s_put(s, op.db, op.key, op.klen, op.val, op.vlen);
        }
    }
}

static int
s_same(const s_store_t *a, const s_store_t *b)
{
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (s_cmp(a->r[i].db, a->r[i].key, a->r[i].klen, &b->r[i]) != 0 ||
            a->r[i].vlen != b->r[i].vlen ||
            memcmp(a->r[i].val, b->r[i].val, a->r[i].vlen) != 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- one broker ------------------------------------------------------- */

typedef struct {
    tw_pair_t *p;
    tw_bstar_role_t role;
    char bind[128], peer[128], front[64], back[64];
    s_store_t store, side;
    uint64_t activated;  /* epoch of the last activation, 0 none */
    int deposed;
    uint64_t applied;    /* batches applied as a passive */
    uint64_t last_seq;   /* the last one */
    uint64_t released;   /* the highest release */
    int snap_begins, snap_ends, snap_aborts, kept_aside;
    char events[2048];
    uint64_t written;    /* batches written as the active */
    uint64_t store_seq;  /* the last batch in the store */
} s_node_t;

static uv_loop_t s_loop;
static int s_alone; /* s_open gives --takeover */
static void *s_ctx;
static char s_dir[64];
static s_node_t *s_nodes[2];

static s_node_t *
s_other(const s_node_t *n)
{
    return s_nodes[0] == n ? s_nodes[1] : s_nodes[0];
}

/* Write one batch as the active broker would: a record in `tasks`, into
 * the local store and to the pair. */
static uint64_t
s_write(s_node_t *n, const char *key, const char *val)
{
    tw_replops_t ops = {0};
    tw_replops_add(&ops, TW_REPLOP_PUT, 1, key, strlen(key), val,
                   strlen(val));
    uint64_t seq = tw_pair_stream(n->p, &ops);
    s_apply_ops(&n->store, ops.buf, ops.len);
    n->store_seq = seq;
    tw_pair_committed(n->p, seq);
    tw_replops_reset(&ops);
    n->written++;
    return seq;
}

/* Write `count` batches of keys "<prefix><i>" (i from `from`, two
 * digits) holding `val`; returns the last seq. */
static uint64_t
s_write_n(s_node_t *n, const char *prefix, int from, int count,
          const char *val)
{
    uint64_t seq = 0;
    for (int i = from; i < from + count; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s%02d", prefix, i);
        seq = s_write(n, k, val);
    }
    return seq;
}

static int
s_op_activate(void *ud, uint64_t epoch, char *why, size_t wlen)
{
    s_node_t *n = ud;
    (void)why;
    (void)wlen;
    n->activated = epoch;
    /* The takeover batch (the broker's counters jump). */
    char v[32];
    snprintf(v, sizeof v, "{id:+65536,ep:%llu}", (unsigned long long)epoch);
    tw_replops_t ops = {0};
    tw_replops_add(&ops, TW_REPLOP_PUT, 0, "counters", 8, v, strlen(v));
    uint64_t seq = tw_pair_stream(n->p, &ops);
    s_apply_ops(&n->store, ops.buf, ops.len);
    n->store_seq = seq;
    tw_pair_committed(n->p, seq);
    tw_replops_reset(&ops);
    return 0;
}

static void
s_op_depose(void *ud, const char *why)
{
    s_node_t *n = ud;
    (void)why;
    n->deposed = 1;
}

static void
s_op_apply(void *ud, uint64_t epoch, uint64_t seq, const unsigned char *ops,
           size_t len)
{
    s_node_t *n = ud;
    (void)epoch;
    s_apply_ops(&n->store, ops, len);
    n->applied++;
    n->last_seq = seq;
    n->store_seq = seq;
    tw_pair_applied(n->p, seq);
}

static void
s_op_release(void *ud, uint64_t seq)
{
    s_node_t *n = ud;
    if (seq > n->released) {
        n->released = seq;
    }
}

static int
s_op_snap_read(void *ud, tw_pair_cursor_t *cur, tw_replops_t *out,
               size_t max_bytes, int *db, uint64_t *at)
{
    s_node_t *n = ud;
    (void)max_bytes;
    size_t i = 0;
    if (cur->started) {
        i = s_find(&n->store, cur->db, cur->key, cur->klen);
        if (i < n->store.n &&
            s_cmp(cur->db, cur->key, cur->klen, &n->store.r[i]) == 0) {
            i++;
        }
    }
    *at = n->store_seq;
    if (i == n->store.n) {
        return 0;
    }
    /* Small chunks of one database, so that a snapshot takes several. */
    *db = n->store.r[i].db;
    for (size_t k = 0; k < 8 && i < n->store.n && n->store.r[i].db == *db;
         k++, i++) {
        const s_rec_t *r = &n->store.r[i];
        tw_replops_add(out, TW_REPLOP_PUT, r->db, r->key, r->klen, r->val,
                       r->vlen);
        cur->db = r->db;
        memcpy(cur->key, r->key, r->klen);
        cur->klen = r->klen;
        cur->started = 1;
    }
    return i < n->store.n;
}

static int
s_op_snap_begin(void *ud)
{
    s_node_t *n = ud;
    n->side.n = 0;
    n->snap_begins++;
    return 0;
}

static int
s_op_snap_chunk(void *ud, const unsigned char *ops, size_t len)
{
    s_node_t *n = ud;
    s_apply_ops(&n->side, ops, len);
    return 0;
}

static int
s_op_snap_end(void *ud, int diverged, char *why, size_t wlen)
{
    s_node_t *n = ud;
    (void)why;
    (void)wlen;
    n->kept_aside += diverged;
    n->store = n->side;
    n->snap_ends++;
    return 0;
}

static void
s_op_snap_abort(void *ud)
{
    s_node_t *n = ud;
    n->snap_aborts++;
}

static void
s_op_event(void *ud, const char *topic, const char *why)
{
    s_node_t *n = ud;
    (void)why;
    size_t len = strlen(n->events);
    snprintf(n->events + len, sizeof n->events - len, "%s ", topic);
}

static const tw_pair_ops_t s_ops = {
    s_op_activate,   s_op_depose,     s_op_apply,     s_op_release,
    s_op_snap_read,  s_op_snap_begin, s_op_snap_chunk, s_op_snap_end,
    s_op_snap_abort, s_op_event,
};

/* Open broker `i` (0 primary, 1 backup) on its store's record `meta`. */
static void
s_open(s_node_t *n, int i, tw_repl_mode_t mode, size_t backlog,
       const tw_pair_meta_t *meta)
{
    n->role = i == 0 ? TW_BSTAR_PRIMARY : TW_BSTAR_BACKUP;
    n->activated = 0;
    n->deposed = 0;
    snprintf(n->bind, sizeof n->bind, "ipc://%s/peer-%d", s_dir, i);
    snprintf(n->peer, sizeof n->peer, "ipc://%s/peer-%d", s_dir, 1 - i);
    snprintf(n->front, sizeof n->front, "tcp://10.0.0.%d:7710", i + 1);
    snprintf(n->back, sizeof n->back, "tcp://10.0.0.%d:7711", i + 1);
    tw_pair_cfg_t cfg = {
        .role = n->role,
        .peer_bind = n->bind,
        .peer = n->peer,
        .mode = mode,
        .hb_ms = S_HB,
        .liveness = S_LIVENESS,
        .backlog_bytes = backlog,
        .window_bytes = 1 << 20,
        .front = n->front,
        .back = n->back,
        .pub = "tcp://10.0.0.9:7712",
        .boot = (uint64_t)(100 + i) * 1000 + n->written,
        .ndb = S_NDB,
        .alone = s_alone,
    };
    tw_pair_meta_t fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.by = -1;
    char err[256];
    assert_int_equal(tw_pair_open(&n->p, &s_loop, s_ctx, &cfg,
                                  meta ? meta : &fresh, &s_ops, n, err,
                                  sizeof err),
                     0);
    s_nodes[i] = n;
}

/* What node n's store says about the pair (its meta/ha record). */
static void
s_meta(const s_node_t *n, tw_pair_meta_t *meta)
{
    size_t i = s_find(&n->store, 0, (const unsigned char *)"ha", 2);
    assert_true(i < n->store.n && n->store.r[i].db == 0);
    assert_int_equal(tw_pair_meta_decode(n->store.r[i].val,
                                         n->store.r[i].vlen, meta),
                     0);
}

static void
s_close(s_node_t *n)
{
    tw_pair_close(&n->p);
    uv_run(&s_loop, UV_RUN_NOWAIT);
}

/* Turn the loop until cond(arg) or S_WAIT ms. */
static int
s_until(int (*cond)(void *), void *arg)
{
    uint64_t end = tw_now_ms() + S_WAIT;
    while (!cond(arg)) {
        if (tw_now_ms() >= end) {
            return 0;
        }
        uv_run(&s_loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return 1;
}

static int
s_is_active(void *arg)
{
    s_node_t *n = arg;
    return n->p && tw_pair_state(n->p) == TW_BSTAR_ACTIVE;
}

static int
s_is_passive(void *arg)
{
    s_node_t *n = arg;
    return n->p && tw_pair_state(n->p) == TW_BSTAR_PASSIVE;
}

static int
s_in_sync(void *arg)
{
    s_node_t *n = arg;
    s_node_t *o = s_other(n);
    return n->p && o->p && s_same(&n->store, &o->store) &&
           tw_pair_wait(o->p, o->store_seq) == 0;
}

/* The active sees its passive following in sync, at s_want_seq. */
static uint64_t s_want_seq;

static int
s_active_synced(void *arg)
{
    s_node_t *n = arg;
    tw_pair_figures_t f;
    tw_pair_figures(n->p, &f);
    return f.sync == 1 && f.lag.batches == 0 && f.pos.seq == s_want_seq &&
           strcmp(f.peer_state, "passive") == 0;
}

/* The peer is not heard now: lost, and no late message of its since. */
static int
s_peer_silent(void *arg)
{
    s_node_t *n = arg;
    tw_pair_figures_t f;
    tw_pair_figures(n->p, &f);
    return strstr(n->events, "ha.peer-lost") != NULL && !f.peer_alive;
}

static int
s_following(void *arg)
{
    s_node_t *n = arg;
    tw_pair_figures_t f;
    tw_pair_figures(n->p, &f);
    return strcmp(f.follower, "following") == 0;
}

/* ---- fixture ---------------------------------------------------------- */

static int
s_setup(void **state)
{
    tw_suite_setup(state);
    snprintf(s_dir, sizeof s_dir, "/tmp/tw-pair-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    assert_int_equal(uv_loop_init(&s_loop), 0);
    s_ctx = zmq_ctx_new();
    s_node_t *n = calloc(2, sizeof *n);
    assert_non_null(n);
    *state = n;
    return 0;
}

static int
s_teardown(void **state)
{
    s_node_t *n = *state;
    for (int i = 0; i < 2; i++) {
        if (n[i].p) {
            tw_pair_close(&n[i].p);
        }
    }
    uv_run(&s_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&s_loop), 0);
    zmq_ctx_term(s_ctx);
    free(n);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* A settled pair: the primary active, the backup following. */
static void
s_pair(s_node_t *n, tw_repl_mode_t mode, size_t backlog)
{
    s_open(&n[0], 0, mode, backlog, NULL);
    s_open(&n[1], 1, mode, backlog, NULL);
    assert_true(s_until(s_is_active, &n[0]));
    assert_true(s_until(s_is_passive, &n[1]));
    assert_int_equal(n[0].activated, 1);
    assert_true(s_until(s_following, &n[0]));
    assert_true(s_until(s_in_sync, &n[1]));
}

/* ---- cases ------------------------------------------------------------ */

static void
test_pair_forms_and_streams(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_SYNC, 1 << 20);
    assert_non_null(strstr(n[1].events, "ha.passive"));
    assert_int_equal(n[1].activated, 0);
    /* Batches in order; under sync each waits for the passive. */
    uint64_t seq = 0;
    for (int i = 0; i < 50; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "task-%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        seq = s_write(&n[0], k, v);
    }
    assert_int_equal(tw_pair_wait(n[0].p, seq), 1);
    assert_true(s_until(s_in_sync, &n[1]));
    assert_int_equal(tw_pair_wait(n[0].p, seq), 0);
    assert_true(n[0].released >= seq);
    assert_int_equal(n[1].last_seq, seq);
    /* Both stores hold the pair's record, at this batch. */
    tw_pair_meta_t m0, m1;
    s_meta(&n[0], &m0);
    s_meta(&n[1], &m1);
    assert_int_equal(m0.pos.seq, seq);
    assert_int_equal(m1.pos.seq, seq);
    assert_int_equal(m1.epoch, 1);
    assert_int_equal(m1.by, TW_BSTAR_PRIMARY);
    /* The active's own view follows the passive's answers: wait for it
     * (a slow run, valgrind on a busy machine, may lose and find the peer
     * again on the way). */
    s_want_seq = seq;
    assert_true(s_until(s_active_synced, &n[0]));
    tw_pair_figures_t f;
    tw_pair_figures(n[0].p, &f);
    assert_string_equal(f.state, "active");
    assert_string_equal(f.peer_state, "passive");
    assert_int_equal(f.sync, 1);
    assert_int_equal(f.lag.batches, 0);
    assert_int_equal(f.pos.seq, seq);
}

static void
test_passive_refuses(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_SYNC, 1 << 20);
    tw_pair_refusal_t r;
    assert_int_equal(tw_pair_request(n[1].p, 0, 0, 0, 0, &r),
                     TW_PAIR_REFUSE);
    assert_string_equal(r.active, n[0].front);
    assert_int_equal(r.live, 1);
    assert_int_equal(r.ha, 1);
    assert_non_null(strstr(r.msg, "the active broker is the primary at "
                                  "tcp://10.0.0.1:7710"));
    /* A worker is pointed at the backend; a vote while the active is
     * heard changes nothing. */
    assert_int_equal(tw_pair_request(n[1].p, 1, 1, 1, 1, &r),
                     TW_PAIR_REFUSE);
    assert_string_equal(r.active, n[0].back);
    assert_int_equal(tw_pair_state(n[1].p), TW_BSTAR_PASSIVE);
    /* The active serves. */
    assert_int_equal(tw_pair_request(n[0].p, 0, 1, 0, 0, &r),
                     TW_PAIR_SERVE);
}

static void
test_failover(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_SYNC, 1 << 20);
    s_write_n(&n[0], "t", 0, 20, "x");
    assert_true(s_until(s_in_sync, &n[1]));
    /* The active's process goes: its connections close. A message it
     * sent before may still arrive after the close is reported. */
    s_close(&n[0]);
    assert_true(s_until(s_peer_silent, &n[1]));
    tw_pair_refusal_t r;
    /* Not without a vote. */
    assert_int_equal(tw_pair_request(n[1].p, 1, 1, 0, 0, &r),
                     TW_PAIR_REFUSE);
    assert_int_equal(r.live, 0);
    /* A worker that lost epoch 1 comes: takeover under epoch 2. */
    assert_int_equal(tw_pair_request(n[1].p, 1, 1, 1, 1, &r),
                     TW_PAIR_SERVE);
    assert_int_equal(tw_pair_state(n[1].p), TW_BSTAR_ACTIVE);
    assert_int_equal(n[1].activated, 2);
    /* With the data: the 20 records are there, and the takeover batch
     * continues the sequence numbers. */
    tw_pair_meta_t m;
    s_meta(&n[1], &m);
    assert_int_equal(m.epoch, 2);
    assert_int_equal(m.by, TW_BSTAR_BACKUP);
    assert_int_equal(m.neras, 2);
    assert_int_equal(m.eras[1].epoch, 2);
    assert_int_equal(m.eras[1].first_seq, m.pos.seq);
    size_t i = s_find(&n[1].store, 1, (const unsigned char *)"t19", 3);
    assert_true(i < n[1].store.n &&
                s_cmp(1, (const unsigned char *)"t19", 3,
                      &n[1].store.r[i]) == 0);
    /* A vote naming an older epoch than the one it follows is no vote. */
    assert_non_null(strstr(n[1].events, "ha.active"));
}

static void
test_snapshot_catch_up(void **state)
{
    s_node_t *n = *state;
    /* A backlog too small to hold the history from batch 1. */
    s_open(&n[0], 0, TW_REPL_ASYNC, 2048, NULL);
    tw_pair_refusal_t r;
    /* Alone, fresh: it starts after the window on a client's request. */
    uint64_t end = tw_now_ms() + S_WAIT;
    while (tw_pair_request(n[0].p, 0, 0, 0, 0, &r) != TW_PAIR_SERVE &&
           tw_now_ms() < end) {
        uv_run(&s_loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(tw_pair_state(n[0].p), TW_BSTAR_ACTIVE);
    for (int i = 0; i < 100; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "task-%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        s_write(&n[0], k, v);
    }
    /* The backup joins empty: a snapshot. */
    s_open(&n[1], 1, TW_REPL_ASYNC, 1 << 20, NULL);
    assert_true(s_until(s_is_passive, &n[1]));
    /* The stream goes on meanwhile. */
    for (int i = 100; i < 130; i++) {
        char k[16];
        snprintf(k, sizeof k, "task-%03d", i);
        s_write(&n[0], k, "late");
        uv_run(&s_loop, UV_RUN_NOWAIT);
    }
    assert_true(s_until(s_in_sync, &n[1]));
    assert_int_equal(n[1].snap_begins, 1);
    assert_int_equal(n[1].snap_ends, 1);
    assert_int_equal(n[1].kept_aside, 0);
    assert_true(s_until(s_following, &n[0]));
    assert_non_null(strstr(n[0].events, "ha.catchup"));
    /* And follows the stream after it. */
    s_write(&n[0], "after", "1");
    assert_true(s_until(s_in_sync, &n[1]));
    tw_pair_figures_t f;
    tw_pair_figures(n[0].p, &f);
    assert_int_equal(f.snapshots, 1);
}

static void
test_both_restarted(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_ASYNC, 1 << 20);
    s_write_n(&n[0], "a", 0, 10, "x");
    assert_true(s_until(s_in_sync, &n[1]));
    /* The backup dies first; the primary writes 5 more, then dies. */
    s_close(&n[1]);
    s_write_n(&n[0], "b", 0, 5, "x");
    tw_pair_meta_t m0, m1;
    s_meta(&n[0], &m0);
    s_meta(&n[1], &m1);
    s_close(&n[0]);
    /* Both come back on their stores, the backup first: the later store
     * (the primary's) is active, under epoch 3. */
    s_open(&n[1], 1, TW_REPL_ASYNC, 1 << 20, &m1);
    s_open(&n[0], 0, TW_REPL_ASYNC, 1 << 20, &m0);
    assert_true(s_until(s_is_active, &n[0]));
    assert_true(s_until(s_is_passive, &n[1]));
    assert_int_equal(n[0].activated, 3);
    /* The backup's store is a prefix of the primary's, but a restarted
     * broker has no backlog: it catches up from a snapshot, keeping
     * nothing aside. */
    assert_true(s_until(s_in_sync, &n[1]));
    assert_int_equal(n[1].snap_ends, 1);
    assert_int_equal(n[1].kept_aside, 0);
    assert_int_equal(n[1].activated, 0);
}

static void
test_old_active_returns_diverged(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_ASYNC, 1 << 20);
    s_write_n(&n[0], "a", 0, 10, "x");
    assert_true(s_until(s_in_sync, &n[1]));
    /* The backup is cut off; the primary writes 5 batches it never
     * gets, then dies. */
    s_close(&n[1]);
    s_write_n(&n[0], "lost", 0, 5, "x");
    tw_pair_meta_t m0, m1;
    s_meta(&n[0], &m0);
    s_meta(&n[1], &m1);
    s_close(&n[0]);
    /* The operator starts the backup alone (--takeover): it serves under
     * epoch 2 and writes 3 batches of its own. */
    s_alone = 1;
    s_open(&n[1], 1, TW_REPL_ASYNC, 1 << 20, &m1);
    s_alone = 0;
    tw_pair_refusal_t r;
    uint64_t end = tw_now_ms() + S_WAIT;
    while (tw_pair_request(n[1].p, 0, 0, 0, 0, &r) != TW_PAIR_SERVE &&
           tw_now_ms() < end) {
        uv_run(&s_loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(n[1].activated, 2);
    s_write_n(&n[1], "new", 0, 3, "y");
    /* The old active comes back: it finds the backup active, turns
     * passive, is told its last 5 batches were never the backup's, and
     * catches up from a snapshot, keeping its old store aside. */
    s_open(&n[0], 0, TW_REPL_ASYNC, 1 << 20, &m0);
    assert_true(s_until(s_is_passive, &n[0]));
    assert_true(s_until(s_in_sync, &n[0]));
    assert_int_equal(n[0].activated, 0);
    assert_int_equal(n[0].snap_ends, 1);
    assert_int_equal(n[0].kept_aside, 1);
    assert_non_null(strstr(n[1].events, "ha.diverged"));
    tw_pair_figures_t f;
    tw_pair_figures(n[1].p, &f);
    assert_int_equal(f.diverged, 5);
    /* Its "lost" records are gone from the store it follows with. */
    size_t i = s_find(&n[0].store, 1, (const unsigned char *)"lost00", 6);
    assert_true(i == n[0].store.n ||
                s_cmp(1, (const unsigned char *)"lost00", 6,
                      &n[0].store.r[i]) != 0);
    /* ...and the backup's own are there. */
    i = s_find(&n[0].store, 1, (const unsigned char *)"new02", 5);
    assert_true(i < n[0].store.n &&
                s_cmp(1, (const unsigned char *)"new02", 5,
                      &n[0].store.r[i]) == 0);
}

static void
test_later_epoch_deposes(void **state)
{
    s_node_t *n = *state;
    s_pair(n, TW_REPL_SYNC, 1 << 20);
    tw_pair_refusal_t r;
    assert_int_equal(tw_pair_request(n[0].p, 1, 4, 0, 0, &r),
                     TW_PAIR_REFUSE);
    assert_int_equal(n[0].deposed, 1);
    assert_non_null(strstr(r.msg, "deposed"));
    assert_non_null(strstr(n[0].events, "ha.deposed"));
    /* The passive only remembers the epoch. */
    assert_int_equal(tw_pair_request(n[1].p, 1, 6, 0, 0, &r),
                     TW_PAIR_REFUSE);
    assert_int_equal(n[1].deposed, 0);
    assert_int_equal(tw_pair_epoch(n[1].p), 6);
}

static void
test_meta_record(void **state)
{
    (void)state;
    tw_replog_era_t eras[2] = {{1, 1}, {4, 90}};
    tw_enc_t e;
    tw_enc_init(&e);
    tw_pair_meta_encode(&e, 4, TW_BSTAR_BACKUP, 120, eras, 2);
    tw_pair_meta_t m;
    assert_int_equal(tw_pair_meta_decode(e.sb.data, e.sb.size, &m), 0);
    assert_int_equal(m.epoch, 4);
    assert_int_equal(m.pos.epoch, 4);
    assert_int_equal(m.pos.seq, 120);
    assert_int_equal(m.by, TW_BSTAR_BACKUP);
    assert_int_equal(m.neras, 2);
    assert_int_equal(m.eras[1].first_seq, 90);
    /* Anything else is refused. */
    assert_int_equal(tw_pair_meta_decode(e.sb.data, e.sb.size - 1, &m),
                     TW_EPROTO);
    assert_int_equal(tw_pair_meta_decode("\x80", 1, &m), TW_EPROTO);
    assert_int_equal(tw_pair_meta_decode("\x01", 1, &m), TW_EPROTO);
    tw_enc_clear(&e);
    tw_enc_map(&e, 4);
    tw_enc_cstr(&e, "ep");
    tw_enc_uint(&e, 1);
    tw_enc_cstr(&e, "by");
    tw_enc_cstr(&e, "tertiary");
    tw_enc_cstr(&e, "seq");
    tw_enc_uint(&e, 1);
    tw_enc_cstr(&e, "eras");
    tw_enc_array(&e, 0);
    assert_int_equal(tw_pair_meta_decode(e.sb.data, e.sb.size, &m),
                     TW_EPROTO);
    tw_enc_free(&e);
}

/* ---- a peer that is only a socket ------------------------------------- */

/* Broker 1 (the backup) faces a "primary" that is two raw sockets: a
 * DEALER that talks to its ROUTER, and a ROUTER at its --peer where its
 * answers arrive. */
typedef struct {
    void *out, *in;
} s_raw_t;

static void
s_raw_open(s_raw_t *r, const s_node_t *n)
{
    int linger = 0;
    r->in = zmq_socket(s_ctx, ZMQ_ROUTER);
    zmq_setsockopt(r->in, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(r->in, n->peer), 0);
    r->out = zmq_socket(s_ctx, ZMQ_DEALER);
    zmq_setsockopt(r->out, ZMQ_ROUTING_ID, "p-primary", 9);
    zmq_setsockopt(r->out, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(r->out, n->bind), 0);
}

static void
s_raw_close(s_raw_t *r)
{
    zmq_close(r->out);
    zmq_close(r->in);
}

static void
s_raw_send(s_raw_t *r, tw_cmd_t cmd, tw_enc_t *e)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    assert_true(zmq_msg_send(&f[0], r->out, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_msg_send(&f[1], r->out, 0) >= 0);
}

/* Wait for a message of `cmd` from the broker; returns it decoded (the
 * caller releases it and the frames). */
static void
s_raw_expect(s_raw_t *r, tw_cmd_t cmd, tw_msg_t *m, tw_zframes_t *fr,
             tw_field_t with)
{
    uint64_t end = tw_now_ms() + S_WAIT;
    while (tw_now_ms() < end) {
        uv_run(&s_loop, UV_RUN_NOWAIT);
        if (tw_zrecv_frames(r->in, fr, ZMQ_DONTWAIT) != 0) {
            usleep(1000);
            continue;
        }
        assert_int_equal(fr->n, 3);
        assert_int_equal(tw_msg_decode(m, zmq_msg_data(&fr->f[1]),
                                       zmq_msg_size(&fr->f[1]),
                                       zmq_msg_data(&fr->f[2]),
                                       zmq_msg_size(&fr->f[2])),
                         0);
        if (m->cmd == cmd && (with == TW_F__COUNT || m->f[with])) {
            return;
        }
        tw_msg_release(m);
        tw_zframes_close(fr);
    }
    fail_msg("no %s from the broker", tw_proto_cmd_name(cmd));
}

static void
s_raw_repl(s_raw_t *r, uint64_t seq, const tw_replops_t *ops, int bad_crc)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 4);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, seq);
    tw_enc_key(&e, TW_F_OPS);
    tw_enc_bin(&e, ops->buf, ops->len);
    tw_enc_key(&e, TW_F_CRC);
    tw_enc_uint(&e, tw_crc32c(0, ops->buf, ops->len) ^ (bad_crc ? 1 : 0));
    s_raw_send(r, TW_CMD_REPL, &e);
    tw_enc_free(&e);
}

static void
test_hostile_active(void **state)
{
    s_node_t *n = *state;
    s_open(&n[1], 1, TW_REPL_SYNC, 1 << 20, NULL);
    s_raw_t r;
    s_raw_open(&r, &n[1]);
    /* "I am the primary, active under epoch 1, at batch 0." */
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 5);
    tw_enc_key(&e, TW_F_ROLE);
    tw_enc_cstr(&e, "primary");
    tw_enc_key(&e, TW_F_STATE);
    tw_enc_cstr(&e, "active");
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_POS);
    tw_enc_array(&e, 2);
    tw_enc_uint(&e, 1);
    tw_enc_uint(&e, 0);
    tw_enc_key(&e, TW_F_READY);
    tw_enc_uint(&e, 1);
    s_raw_send(&r, TW_CMD_PAIR, &e);
    tw_enc_free(&e);
    assert_true(s_until(s_is_passive, &n[1]));
    tw_replops_t ops = {0};
    tw_replops_add(&ops, TW_REPLOP_PUT, 1, "k", 1, "v", 1);
    tw_msg_t m;
    tw_zframes_t fr;
    /* A damaged batch is not applied: the passive asks to resync. */
    s_raw_repl(&r, 1, &ops, 1);
    s_raw_expect(&r, TW_CMD_PAIR, &m, &fr, TW_F_RESYNC);
    tw_msg_release(&m);
    tw_zframes_close(&fr);
    assert_int_equal(n[1].applied, 0);
    /* So is a batch of operations that do not parse. */
    tw_replops_t bad = {0};
    tw_replops_add(&bad, TW_REPLOP_PUT, 9, "k", 1, "v", 1); /* no db 9 */
    s_raw_repl(&r, 1, &bad, 0);
    uv_run(&s_loop, UV_RUN_NOWAIT);
    assert_int_equal(n[1].applied, 0);
    /* Nor one out of order. */
    s_raw_repl(&r, 2, &ops, 0);
    uv_run(&s_loop, UV_RUN_NOWAIT);
    assert_int_equal(n[1].applied, 0);
    /* The right one is applied and acknowledged. */
    s_raw_repl(&r, 1, &ops, 0);
    s_raw_expect(&r, TW_CMD_RACK, &m, &fr, TW_F_SEQ);
    assert_int_equal(tw_msg_uint(&m, TW_F_SEQ, 0), 1);
    tw_msg_release(&m);
    tw_zframes_close(&fr);
    assert_int_equal(n[1].applied, 1);
    assert_int_equal(n[1].last_seq, 1);
    /* A snapshot chunk holding a delete is refused. */
    tw_enc_init(&e);
    tw_enc_map(&e, 7);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "begin");
    tw_enc_key(&e, TW_F_SNAP);
    tw_enc_uint(&e, 7);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_BASE);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_ERAS);
    tw_enc_array(&e, 2);
    tw_enc_uint(&e, 1);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_COUNT);
    tw_enc_uint(&e, 0);
    tw_enc_key(&e, TW_F_RESYNC);
    tw_enc_uint(&e, 0);
    s_raw_send(&r, TW_CMD_SNAP, &e);
    tw_replops_t del = {0};
    tw_replops_add(&del, TW_REPLOP_DEL, 1, "k", 1, NULL, 0);
    tw_enc_clear(&e);
    tw_enc_map(&e, 6);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "chunk");
    tw_enc_key(&e, TW_F_SNAP);
    tw_enc_uint(&e, 7);
    tw_enc_key(&e, TW_F_N);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_DB);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_AT);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_OPS);
    tw_enc_bin(&e, del.buf, del.len);
    s_raw_send(&r, TW_CMD_SNAP, &e);
    tw_enc_free(&e);
    s_raw_expect(&r, TW_CMD_PAIR, &m, &fr, TW_F_RESYNC);
    tw_msg_release(&m);
    tw_zframes_close(&fr);
    assert_int_equal(n[1].snap_begins, 1);
    assert_int_equal(n[1].snap_aborts, 1);
    assert_int_equal(n[1].snap_ends, 0);
    tw_replops_reset(&ops);
    tw_replops_reset(&bad);
    tw_replops_reset(&del);
    s_raw_close(&r);
}

int
main(void)
{
    tw_log_level = TW_LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_record),
        cmocka_unit_test_setup_teardown(test_pair_forms_and_streams,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_passive_refuses, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_failover, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_catch_up, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_both_restarted, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_old_active_returns_diverged,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_later_epoch_deposes, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_active, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
