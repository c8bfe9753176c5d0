/*  broker/cmd/on_task.c - SUBMIT, RESULT, CANCEL and DONE (see on_task.h).
 */
#include "broker/cmd/on_task.h"
#include "broker/core/admit.h"
#include "broker/core/core.h"
#include "broker/core/events.h"
#include "broker/core/flow.h"
#include "broker/core/lease.h"
#include "broker/core/outbox.h"
#include "broker/state/graph.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

/* ---- SUBMIT ------------------------------------------------------------ */

static void
s_ack_error(tw_enc_t *e, uint64_t seq, int code, const char *msg)
{
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_ikey(e, TW_I_CODE);
    tw_enc_int(e, code);
    tw_enc_ikey(e, TW_I_ERR);
    tw_enc_cstr(e, msg);
}

/* Join task `t` to the groups an item names (created on demand, S95);
 * duplicates in the list count once. */
static void
s_join_groups(tw_broker_t *b, tw_task_t *t, tw_pool_t *p,
              const msgpack_object *gs)
{
    if (!gs || !gs->via.array.size) {
        return;
    }
    t->groups = tw_malloc(gs->via.array.size * sizeof *t->groups);
    for (uint32_t i = 0; i < gs->via.array.size; i++) {
        const msgpack_object *o = &gs->via.array.ptr[i];
        tw_group_t *g =
            tw_pools_group(&b->pools, p, o->via.str.ptr, o->via.str.size, 1);
        int dup = 0;
        for (uint16_t k = 0; k < t->ngroups; k++) {
            dup |= t->groups[k] == g->id;
        }
        if (!dup) {
            t->groups[t->ngroups++] = g->id;
            g->admitted++;
            tw_group_add_id(g, t->id);
        }
    }
}

/* An ACK item {seq, id[, dup: 1]}. */
static void
s_ack(tw_enc_t *e, uint64_t seq, uint64_t id, int dup)
{
    tw_enc_map(e, 2 + (dup != 0));
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, id);
    if (dup) {
        tw_enc_ikey(e, TW_I_DUP);
        tw_enc_uint(e, 1);
    }
}

/* The hash a resend of item `it` must match (dedup.h). */
static uint32_t
s_item_hash(const tw_item_t *it)
{
    size_t hl, al;
    const char *hn = tw_item_str(it, TW_I_H, &hl);
    const void *av = tw_item_bin(it, TW_I_A, &al);
    return tw_dedup_item_hash(hn, hl, av, al);
}

/* The task client `c` already made from this item (seq), if the item is
 * a resend of it (lease.c, dedup.h): the same seq and the same handler
 * and arguments (their hash `shash`). */
static tw_task_t *
s_resent(tw_broker_t *b, tw_bclient_t *c, uint64_t seq, uint32_t shash)
{
    uint64_t sent = tw_dedup_get(&b->dedup, c->id, seq);
    tw_task_t *st = sent ? tw_tasks_get(&b->tasks, sent) : NULL;
    if (!st || st->client != c->id || st->seq != seq) {
        return NULL;
    }
    return shash == st->shash ? st : NULL; /* else the seq was reused */
}

/* The parents an item names (`af`, `am`, `wr`; PROTOCOL.md 18.2),
 * checked before anything is counted: 0, or an ACK error code with the
 * reason in `why`. */
static int
s_check_after(tw_broker_t *b, const tw_item_t *it, char *why, size_t wlen)
{
    const msgpack_object *af = it->f[TW_I_AF];
    if (tw_item_uint(it, TW_I_AM, 0) > 1) {
        snprintf(why, wlen, "am must be 0 (all parents ok) or 1 (any end)");
        return TW_EINVAL;
    }
    if (tw_item_uint(it, TW_I_WR, 0) > 1) {
        snprintf(why, wlen, "wr must be 0 or 1");
        return TW_EINVAL;
    }
    if (af && af->via.array.size > TW_DEPS_MAX_PARENTS) {
        snprintf(why, wlen, "%u parents named: at most %d",
                 (unsigned)af->via.array.size, TW_DEPS_MAX_PARENTS);
        return TW_EINVAL;
    }
    for (uint32_t i = 0; af && i < af->via.array.size; i++) {
        uint64_t id = af->via.array.ptr[i].via.u64;
        if (!tw_tasks_get(&b->tasks, id)) {
            snprintf(why, wlen, "parent task %llu is not known (a parent "
                     "must be a task the broker still holds)",
                     (unsigned long long)id);
            return TW_ENOENT;
        }
    }
    return 0;
}

/* A new task from SUBMIT item `it` of client `c`, admitted into pool `p`
 * with handler `hidx`; enqueued unless it names parents (the caller then
 * hands it to tw__flow_after). */
static tw_task_t *
s_create(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it, int hidx,
         tw_pool_t *p, uint32_t shash, int after)
{
    uint64_t now = uv_now(b->loop);
    size_t alen, klen;
    const void *a = tw_item_bin(it, TW_I_A, &alen);
    const char *key = tw_item_str(it, TW_I_K, &klen);
    tw_task_t *t = tw_tasks_create(&b->tasks, a, alen, now);
    int64_t pri = tw_item_int(it, TW_I_PRI, 0);
    uint64_t to = tw_item_uint(it, TW_I_TO, 0);
    uint64_t re = tw_item_uint(it, TW_I_RE, 0);
    uint64_t dl = tw_item_uint(it, TW_I_DL, 0);
    t->seq = tw_item_uint(it, TW_I_SEQ, 0);
    t->client = c->id;
    t->handler = (uint32_t)hidx;
    t->shash = shash;
    t->priority = pri > INT32_MAX   ? INT32_MAX
                  : pri < INT32_MIN ? INT32_MIN
                                    : (int32_t)pri;
    t->timeout_ms = to > UINT32_MAX ? UINT32_MAX : (uint32_t)to;
    t->retries = re > 1000 ? 1000 : (uint16_t)re;
    t->due_ms = dl ? now + dl : 0;
    uint64_t eta = tw_item_uint(it, TW_I_ETA, 0), wall = tw_wall_ms();
    if (eta > wall) {
        /* The loop's clock read now, not its cached `now`: the task must
         * not start before eta, even by the time this turn has taken. */
        uint64_t at = uv_hrtime() / 1000000 + (eta - wall) + 1;
        t->due_ms = at > t->due_ms ? at : t->due_ms;
    }
    t->pool = p->id;
    s_join_groups(b, t, p, it->f[TW_I_G]);
    if (key && klen) {
        t->key = tw_strndup(key, klen);
        t->key_len = (uint16_t)klen;
        tw_strmap_put(&p->dedup, t->key, klen, (void *)(uintptr_t)t->id);
    }
    tw_dedup_put(&b->dedup, c->id, t->seq, t->id, c->outstanding);
    if (!after) {
        tw__flow_enqueue(b, t);
    }
    tw_pool_add_client(p, c->id);
    c->outstanding++;
    b->st.submitted++;
    return t;
}

/* A resend of an item already recorded: the same ACK, nothing enqueued,
 * and the outcome again if it has one. */
static void
s_ack_resent(tw_broker_t *b, tw_bclient_t *c, tw_enc_t *e, uint64_t seq,
             const tw_task_t *st)
{
    s_ack(e, seq, st->id, 0);
    b->st.deduplicated++;
    if (st->state <= TW_ST_LOST) {
        tw__flow_result_item(b, tw__outbox_item(b, c, &c->results), st);
    }
}

/* A second copy of a refused item: 0, or the same answer as the first
 * time, even if room came back in between (dedup.h), ACKed in `e`. */
static int
s_refused_before(tw_broker_t *b, tw_bclient_t *c, tw_enc_t *e, uint64_t seq,
                 uint32_t shash)
{
    int rc = tw_dedup_refused(&b->dedup, c->id, seq, shash);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "%s: seq %llu was refused before, and a "
                 "resend gets the same answer", tw_strerror(rc),
                 (unsigned long long)seq);
        s_ack_error(e, seq, rc, why);
        b->st.deduplicated++;
        c->refused++;
    }
    return rc;
}

/* Refuse an item: its ACK error in `e`, remembered for resends. */
static void
s_refuse(tw_broker_t *b, tw_bclient_t *c, tw_enc_t *e, uint64_t seq,
         uint32_t shash, int rc, const char *why)
{
    s_ack_error(e, seq, rc, why);
    tw_dedup_refuse(&b->dedup, c->id, seq, shash, rc,
                    c->outstanding + ++c->refusals);
    b->st.rejected++;
    c->refused++; /* need not wait for the store (persist.c) */
}

/* Accept a checked item: a new task (blocked on its `af` parents and the
 * `nextra` more in `extra`, if any), or the known task of its key. ACKs
 * it in `e`; returns the task id. */
static uint64_t
s_accept(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it, tw_enc_t *e,
         int hidx, tw_pool_t *p, uint32_t shash, const uint64_t *extra,
         size_t nextra, int publish)
{
    uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
    size_t klen;
    const char *key = tw_item_str(it, TW_I_K, &klen);
    void *known = key && klen ? tw_strmap_get(&p->dedup, key, klen) : NULL;
    if (known) {
        /* The same key while the first task is known: its id. */
        s_ack(e, seq, (uint64_t)(uintptr_t)known, 1);
        b->st.deduplicated++;
        return (uint64_t)(uintptr_t)known;
    }
    const msgpack_object *af = it->f[TW_I_AF];
    size_t naf = af ? af->via.array.size : 0;
    tw_task_t *t = s_create(b, c, it, hidx, p, shash, naf + nextra > 0);
    s_ack(e, seq, t->id, 0);
    if (naf + nextra) {
        uint64_t *par = tw_malloc((naf + nextra) * sizeof *par);
        for (size_t i = 0; i < naf; i++) {
            par[i] = af->via.array.ptr[i].via.u64;
        }
        for (size_t i = 0; i < nextra; i++) {
            par[naf + i] = extra[i];
        }
        tw__flow_after(b, t, par, naf + nextra,
                       (int)tw_item_uint(it, TW_I_AM, 0),
                       (int)tw_item_uint(it, TW_I_WR, 0), publish);
        tw_free(par);
    } else if (publish) {
        tw__event_task(b, t, "task.submitted", NULL);
    }
    return t->id;
}

/* One SUBMIT item: its ACK item goes in `e`. */
static void
s_submit_item(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it,
              tw_enc_t *e, int publish)
{
    uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
    uint32_t shash = s_item_hash(it);
    tw_task_t *st = s_resent(b, c, seq, shash);
    if (st) {
        s_ack_resent(b, c, e, seq, st);
        return;
    }
    if (s_refused_before(b, c, e, seq, shash) != 0) {
        return;
    }
    char why[256];
    int hidx;
    tw_pool_t *p = NULL;
    int rc = tw__admit_item(b, it, &hidx, &p, why, sizeof why);
    if (rc == 0) {
        rc = s_check_after(b, it, why, sizeof why);
    }
    if (rc != 0) {
        s_refuse(b, c, e, seq, shash, rc, why);
        return;
    }
    s_accept(b, c, it, e, hidx, p, shash, NULL, 0, publish);
}

/* ---- A graph: items naming earlier items (`as`, PROTOCOL.md 18.9) ------ */

/* What the first pass learnt of one item of a graph. */
typedef struct {
    uint32_t shash;
    int hidx;
    tw_pool_t *pool;
    tw_task_t *resent; /* accepted before: a resend */
    uint64_t *as;      /* its `as` parents (tw_graph_parents' out) */
    size_t nas;
} s_gitem_t;

/* What a graph's client `c` had accepted before (tw_graph_known_fn). */
typedef struct {
    tw_broker_t *b;
    tw_bclient_t *c;
} s_known_t;

static uint64_t
s_known(void *arg, uint64_t seq)
{
    s_known_t *k = arg;
    uint64_t id = tw_dedup_get(&k->b->dedup, k->c->id, seq);
    const tw_task_t *t = id ? tw_tasks_get(&k->b->tasks, id) : NULL;
    return t && t->client == k->c->id && t->seq == seq ? id : 0;
}

/* Check item `i` of a graph, after items 0..i-1: 0 or an error code with
 * the reason in `why`. */
static int
s_graph_check(tw_broker_t *b, tw_bclient_t *c, const tw_item_t *it,
              tw_graph_t *g, s_gitem_t *gi, char *why, size_t wlen)
{
    uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
    const msgpack_object *as = it->f[TW_I_AS];
    const msgpack_object *af = it->f[TW_I_AF];
    size_t nas = as ? as->via.array.size : 0;
    size_t naf = af ? af->via.array.size : 0;
    int rc = 0;
    gi->shash = s_item_hash(it);
    gi->resent = s_resent(b, c, seq, gi->shash);
    if (!gi->resent) {
        rc = tw_dedup_refused(&b->dedup, c->id, seq, gi->shash);
        if (rc != 0) {
            snprintf(why, wlen, "%s: seq %llu was refused before, and a "
                     "resend gets the same answer", tw_strerror(rc),
                     (unsigned long long)seq);
            return rc;
        }
        rc = tw__admit_item(b, it, &gi->hidx, &gi->pool, why, wlen);
        if (rc == 0) {
            rc = s_check_after(b, it, why, wlen);
        }
        if (rc == 0 && naf + nas > TW_DEPS_MAX_PARENTS) {
            snprintf(why, wlen, "%zu parents named (af and as): at most %d",
                     naf + nas, TW_DEPS_MAX_PARENTS);
            rc = TW_EINVAL;
        }
        if (rc == 0 && nas) {
            uint64_t *seqs = tw_malloc(nas * sizeof *seqs);
            for (size_t k = 0; k < nas; k++) {
                seqs[k] = as->via.array.ptr[k].via.u64;
            }
            gi->as = tw_malloc(nas * sizeof *gi->as);
            gi->nas = nas;
            s_known_t kn = {b, c};
            rc = tw_graph_parents(g, seqs, nas, s_known, &kn, gi->as, why,
                                  wlen);
            tw_free(seqs);
        }
    }
    if (rc == 0) {
        int64_t k = tw_graph_add(g, seq, why, wlen);
        rc = k < 0 ? (int)k : 0;
    }
    return rc;
}

/* A SUBMIT whose items name earlier items by seq is one graph, admitted
 * all or nothing (PROTOCOL.md 18.9): every item is checked first; if one
 * is refused, every item is, the others naming it, and nothing is
 * created (items accepted before, resent now, keep their tasks). */
static void
s_submit_graph(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m,
               int publish)
{
    size_t n = m->nitems;
    s_gitem_t *gi = tw_calloc(n, sizeof *gi);
    uint64_t *ids = tw_calloc(n, sizeof *ids);
    tw_graph_t g;
    tw_graph_init(&g);
    char why[256];
    int rc = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s_graph_check(b, c, &m->items[i], &g, &gi[i], why, sizeof why);
        bad = i;
    }
    uint64_t badseq = tw_item_uint(&m->items[bad], TW_I_SEQ, 0);
    for (size_t i = 0; i < n; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
        tw_enc_t *e = tw__outbox_item(b, c, &c->acks);
        if (gi[i].resent) {
            s_ack_resent(b, c, e, seq, gi[i].resent);
            ids[i] = gi[i].resent->id;
        } else if (rc != 0) {
            char other[384];
            if (i != bad) {
                snprintf(other, sizeof other, "not submitted: item seq %llu "
                         "of this graph was refused: %s",
                         (unsigned long long)badseq, why);
            }
            s_refuse(b, c, e, seq, gi[i].shash, rc, i == bad ? why : other);
        } else {
            uint64_t *par = tw_malloc((gi[i].nas ? gi[i].nas : 1) *
                                      sizeof *par);
            for (size_t k = 0; k < gi[i].nas; k++) {
                uint64_t a = gi[i].as[k];
                par[k] = a & TW_GRAPH_ID ? a & ~TW_GRAPH_ID : ids[a];
            }
            ids[i] = s_accept(b, c, it, e, gi[i].hidx, gi[i].pool,
                              gi[i].shash, par, gi[i].nas, publish);
            tw_free(par);
        }
        tw_free(gi[i].as);
    }
    tw_graph_free(&g);
    tw_free(ids);
    tw_free(gi);
}

void
tw__on_submit(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    int publish = tw_status_wants(&b->status, "task.submitted");
    for (size_t i = 0; i < m->nitems; i++) {
        if (m->items[i].f[TW_I_AS]) {
            s_submit_graph(b, c, m, publish);
            return;
        }
    }
    for (size_t i = 0; i < m->nitems; i++) {
        tw_enc_t *e = tw__outbox_item(b, c, &c->acks);
        s_submit_item(b, c, &m->items[i], e, publish);
    }
    if (m->nitems == 0) {
        /* An empty batch still gets its (empty) acknowledgement. */
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_BOOT);
        tw_enc_uint(&e, b->boot);
        tw_enc_key(&e, TW_F_ITEMS);
        tw_enc_array(&e, 0);
        tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                    TW_CMD_ACK, &e);
        tw_enc_free(&e);
    }
}

/* ---- RESULT and CANCEL ------------------------------------------------- */

void
tw__on_result(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    const msgpack_object *ids = m->f[TW_F_IDS];
    tw_batch_t batch;
    tw_batch_init(&batch, 1);
    tw_batch_head(&batch, TW_F_BOOT, b->boot);
    for (uint32_t i = 0; ids && i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        tw_enc_t *e = tw_batch_item(&batch);
        const tw_task_t *t = tw_tasks_get(&b->tasks, id);
        if (t) {
            tw__flow_result_item(b, e, t);
        } else {
            tw_enc_map(e, 2);
            tw_enc_ikey(e, TW_I_ID);
            tw_enc_uint(e, id);
            tw_enc_ikey(e, TW_I_ST);
            tw_enc_uint(e, TW_ST_UNKNOWN);
        }
    }
    tw_batch_close_items(&batch);
    tw_enc_key(&batch.enc, TW_F_SEQ);
    tw_enc_uint(&batch.enc, tw_msg_uint(m, TW_F_SEQ, 0));
    tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len, TW_CMD_RESULT,
                &batch.enc);
    tw_batch_free(&batch);
}

/* CANCEL with op "strict": every id is checked before any is cancelled
 * (S56). */
static void
s_op_strict(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    const msgpack_object *ids = m->f[TW_F_IDS];
    char why[160];
    /* S56: validate every id before cancelling any. */
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        const tw_task_t *t = tw_tasks_get(&b->tasks, id);
        int code = 0;
        const char *what = NULL;
        if (!t) {
            code = TW_ENOENT;
            what = "is not a known task (InvalidTaskID)";
        } else if (t->state == TW_ST_RUNNING && t->cancel_requested) {
            code = TW_ECANCELED;
            what = "is already being cancelled (AlreadyCancelled)";
        } else if (t->state != TW_ST_PENDING && t->state != TW_ST_RUNNING &&
                   t->state != TW_ST_BLOCKED) {
            code = TW_EENDED;
            what = "has already ended (AlreadyEnded)";
        }
        if (code) {
            snprintf(why, sizeof why, "task %llu %s; nothing was cancelled",
                     (unsigned long long)id, what);
            tw_out_reply_error(&b->out, c->ident, c->ident_len, seq, code, why);
            return;
        }
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "cancelled");
    tw_enc_array(&e, ids->via.array.size);
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        tw__flow_cancel(b, tw_tasks_get(&b->tasks, id));
        tw_enc_uint(&e, id);
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
}

/* CANCEL by ids: REPLY {cancelled, ended, unknown}. */
static void
s_cancel_ids(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    const msgpack_object *ids = m->f[TW_F_IDS];
    uint32_t n = ids->via.array.size;
    uint64_t *out = tw_malloc((n ? n : 1) * sizeof *out);
    uint8_t *kind = tw_malloc(n ? n : 1); /* 0 cancelled 1 ended 2 unknown */
    size_t count[3] = {0, 0, 0};
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        tw_task_t *t = tw_tasks_get(&b->tasks, id);
        out[i] = id;
        if (!t) {
            kind[i] = 2;
        } else if (t->state == TW_ST_PENDING ||
                   t->state == TW_ST_RUNNING || t->state == TW_ST_BLOCKED) {
            tw__flow_cancel(b, t);
            kind[i] = 0;
        } else {
            kind[i] = 1;
        }
        count[kind[i]]++;
    }
    static const char *names[3] = {"cancelled", "ended", "unknown"};
    tw_enc_t e;
    tw_out_reply_begin(&e, tw_msg_uint(m, TW_F_SEQ, 0));
    tw_enc_map(&e, 3);
    for (int k = 0; k < 3; k++) {
        tw_enc_cstr(&e, names[k]);
        tw_enc_array(&e, count[k]);
        for (uint32_t i = 0; i < n; i++) {
            if (kind[i] == k) {
                tw_enc_uint(&e, out[i]);
            }
        }
    }
    tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    tw_free(out);
    tw_free(kind);
}

/* The CANCEL operations by tw_op_t, from proto/ops.h. */
typedef void s_op_fn(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m);
static s_op_fn *const s_cancel_ops[TW_OP__COUNT] = {
    TW_PROTO_CANCEL_OPS(TW_OP_S_FN)
};

void
tw__on_cancel(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    size_t ol;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    if (!op) {
        s_cancel_ids(b, c, m);
        return;
    }
    tw_op_t o = tw_proto_op(TW_CMD_CANCEL, op, ol);
    if (!o) {
        tw_out_error(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                     TW_EINVAL, tw_msg_uint(m, TW_F_SEQ, 0),
                     "unknown cancel op '%.*s' (try strict)", (int)ol, op);
        return;
    }
    s_cancel_ops[o](b, c, m);
}


/* ---- DONE -------------------------------------------------------------- */

void
tw__on_done(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        tw_task_t *t = tw_tasks_get(&b->tasks, tw_item_uint(it, TW_I_ID, 0));
        if (!tw__lease_done_ok(b, w, t, it)) {
            continue; /* stale ep or duplicate, counted there */
        }
        tw__flow_halt(b, t);
        w->done++;
        uint64_t st = tw_item_uint(it, TW_I_ST, TW_ST_ERROR);
        size_t rlen = 0, elen = 0;
        const void *r = tw_item_bin(it, TW_I_R, &rlen);
        const char *err = tw_item_str(it, TW_I_ERR, &elen);
        char why[160];
        if (st == TW_ST_TIMEOUT && !err) {
            err = "timed out";
            elen = strlen(err);
        }
        tw_tasks_run_ended(t, st > TW_ST_CANCELLED ? TW_ST_ERROR : (int)st,
                           err, elen, tw_wall_ms());
        /* S57, F3: a cancel the worker has not confirmed does not
         * override a DONE that reports an outcome: the task finished
         * before the CANCEL reached it, and the first to arrive wins. It
         * ends with that outcome, kept and delivered, and is not
         * retried. */
        if (t->cancel_requested && st == TW_ST_CANCELLED) {
            /* The worker confirmed the cancel. */
            tw__flow_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        } else if (st > TW_ST_CANCELLED) {
            int n = snprintf(why, sizeof why,
                             "worker reported unknown status %llu",
                             (unsigned long long)st);
            tw__flow_end(b, t, TW_ST_ERROR, NULL, 0, why, (size_t)n);
        } else if ((st == TW_ST_ERROR || st == TW_ST_TIMEOUT) &&
                   t->attempt <= t->retries && !t->cancel_requested &&
                   !(t->more && t->more->retried)) {
            tw__flow_retry(b, t, err, elen);
        } else if (st == TW_ST_OK && rlen > (uint64_t)b->cfg->max_payload) {
            int n = snprintf(why, sizeof why,
                             "result is %zu bytes; the limit is %lld", rlen,
                             b->cfg->max_payload);
            tw__flow_end(b, t, TW_ST_ERROR, NULL, 0, why, (size_t)n);
        } else {
            if (t->error && err) {
                /* Retried before: label the last attempt like the others. */
                int n = snprintf(why, sizeof why, "attempt %u: %.*s",
                                 (unsigned)t->attempt, (int)elen, err);
                err = why;
                elen = (size_t)n < sizeof why ? (size_t)n : sizeof why - 1;
            }
            tw__flow_end(b, t, (int)st, st == TW_ST_OK ? r : NULL, rlen,
                           err, elen);
        }
    }
    uint64_t credit = tw_msg_uint(m, TW_F_CREDIT, 0);
    tw_bworker_add_credit(w, credit);
    b->place_wanted |= credit > 0 && b->nunplaced > 0;
}

