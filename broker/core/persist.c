/*  broker/core/persist.c - dirty records, the per-iteration commit, the sync
 *  job, collection and the reading of a store (see persist.h).
 *
 *  Dirty tasks are kept as pointers; a task freed before the commit (a
 *  pool flush, collection) is taken off the list and the deletion of its
 *  record queued instead. The commit encodes everything dirty into one
 *  batch for the writer thread (writer.h), together with the clients'
 *  ACKs and RESULTs, which leave only once it is written. A task keeps one
 *  record, under its
 *  id, from submission until its outcome is collected: ending it rewrites
 *  the record in place rather than moving it, and TW_TASK_STORED says
 *  whether the record exists yet, so a task submitted and finished within
 *  one commit costs one write.
 *
 *  The id and epoch counters are written as reservations: the stored value
 *  is always ahead of anything handed out, by up to TW_STORE_RESERVE, and
 *  is moved forward in the same transaction as the records that use it. A
 *  restart continues from the reservation, so an id or an epoch seen by a
 *  client or a worker is never reused even if the last turn never reached
 *  the disk.
 */
#include "broker/core/persist.h"
#include "broker/core/core.h"
#include "broker/state/deps.h"
#include "broker/state/pair.h"
#include "broker/state/room.h"
#include "broker/state/store.h"
#include "broker/state/verify.h"
#include "broker/state/writer.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define S_GC_PER_TICK 20000u /* ended tasks collected per second at most */
#define S_GC_PER_TURN 4096u  /* and per commit beyond --max-results */
#define S_STOP_GRACE_MS 2000 /* a failing writer's last chance at a stop */
#define S_BATCH_BYTES (4u << 20) /* payload per batch before a hand-over:
                                    no encoding stalls the loop for long */
#define S_SPARE_MAX (32u << 20)  /* batch buffers kept for reuse up to */
#define S_BUDGET_FREE 1024u      /* kept results freed per submission for
                                    the payload budget, at most */
#define S_STATION_JUMP (1u << 20) /* station epochs after a recovery */

/* A reply held until batch `seq` is done, so it does not overtake what
 * that batch holds for the same client. */
typedef struct {
    uint64_t seq;
    zmq_msg_t f[3];
} s_reply_t;

typedef struct tw_persist {
    tw_store_t *store;
    tw_task_t **dtasks; /* dirty tasks (NULL: freed since) */
    size_t ndtasks, capdtasks;
    uint64_t *dfreed;   /* records to delete: id << 2 | S_DEL_* */
    size_t ndfreed, capdfreed;
    char **dsids;     /* dirty station ids (copies) */
    size_t *dsid_lens;
    size_t ndsids, capdsids;
    tw_strmap_t ckset; /* stations with a new checkpoint: written once a
                          second (key and value: an owned copy of the sid) */
    tw_idmap_t dgroups;   /* dirty group ids (value: 1) */
    uint8_t *dpools;      /* per pool id: 1 dirty, 2 rewrite its groups */
    size_t capdpools;
    int any_pool;
    uint64_t id_reserved, ep_reserved;
    int64_t wall_off;     /* wall ms - loop ms */
    tw_room_t room;       /* what the store may still take (room.h) */
    uint64_t growth;      /* estimated growth of the batch being encoded */
    uint64_t dirty_bytes; /* payload of the tasks marked since the last
                             hand-over, roughly */
    unsigned char *spare; /* a written batch's buffer, for the next one */
    size_t spare_cap;
    int recovering;
    uv_timer_t sync_timer;
    uv_work_t sync_work;
    int sync_busy, sync_wanted, timer_on;
    tw_enc_t enc;
    tw_writer_t *writer;  /* NULL: write on the loop (recovery, stop) */
    tw_wbatch_t *cur;     /* the batch being encoded */
    uint64_t last_cid;           /* s_put_task's client cache */
    const tw_bclient_t *last_client;
    uint64_t recovered_running; /* of recovered_tasks: held (lease.h) */
    uint64_t commits, commit_errors, syncs, recovered_tasks,
        recovered_results, recovered_stations, collected;
    uint64_t errors_seen; /* writer errors already logged */
    /* Batches in order: the last handed over and the last done; ids from
     * sealed_id up were created after the last hand-over. */
    uint64_t seal_seq, done_seq, sealed_id;
    uint64_t fail_id;     /* stopping with unwritten batches: tasks from
                             this id up were not recorded (0: none) */
    s_reply_t *after;     /* replies held behind a batch (hold) */
    size_t nafter, capafter;
    int sending;          /* s_batch_done is sending held messages */
    uint64_t unacked;     /* ACK items turned into "not recorded" */
    int failing_logged;
    uint64_t commit_ns, timed; /* commit latency: sum and count */
    /* A broker pair (state/pair.h): the stream's sequence number of the
     * last batch streamed and of the last written here; batches written
     * whose messages wait for the passive (--replicate sync), in order. */
    uint64_t last_rseq, done_rseq;
    tw_wbatch_t *wait_head, *wait_tail;
} tw_persist_t;

static void s_log_writer(tw_broker_t *b, tw_persist_t *p);
static void s_release_replies(tw_broker_t *b, tw_persist_t *p, int all);

/* ---- marking ---------------------------------------------------------- */

#define S_DEL_TASK 1u /* delete the "tasks" record */

/* Queue the deletion of a freed task's records. */
static void
s_mark_freed(tw_persist_t *p, uint64_t id, unsigned what)
{
    if (p->ndfreed == p->capdfreed) {
        p->capdfreed = p->capdfreed ? p->capdfreed * 2 : 1024;
        p->dfreed = tw_realloc(p->dfreed, p->capdfreed * sizeof *p->dfreed);
    }
    p->dfreed[p->ndfreed++] = id << 2 | what;
}

void
tw__persist_task_slow(tw_broker_t *b, tw_task_t *t)
{
    tw_persist_t *p = b->persist;
    if (p->recovering) {
        return;
    }
    t->sflags |= TW_TASK_DIRTY;
    p->dirty_bytes += t->data_len + 128;
    if (p->ndtasks == p->capdtasks) {
        p->capdtasks = p->capdtasks ? p->capdtasks * 2 : 1024;
        p->dtasks = tw_realloc(p->dtasks, p->capdtasks * sizeof *p->dtasks);
    }
    p->dtasks[p->ndtasks++] = t;
}

void
tw__persist_task_freed(tw_broker_t *b, const tw_task_t *t)
{
    tw_persist_t *p = b->persist;
    if (!p || p->recovering) {
        return;
    }
    unsigned what = 0;
    if (t->sflags & TW_TASK_DIRTY) {
        /* Rare (a pool flush in the turn it ended): forget the pointer. */
        for (size_t i = 0; i < p->ndtasks; i++) {
            if (p->dtasks[i] == t) {
                p->dtasks[i] = NULL;
            }
        }
    }
    if (t->sflags & TW_TASK_STORED) {
        what |= S_DEL_TASK;
    }
    if (what) {
        s_mark_freed(p, t->id, what);
    }
}

static void
s_mark_sid(tw_persist_t *p, const char *sid, size_t len)
{
    if (!sid || !len) {
        return;
    }
    if (p->ndsids == p->capdsids) {
        p->capdsids = p->capdsids ? p->capdsids * 2 : 64;
        p->dsids = tw_realloc(p->dsids, p->capdsids * sizeof *p->dsids);
        p->dsid_lens = tw_realloc(p->dsid_lens,
                                  p->capdsids * sizeof *p->dsid_lens);
    }
    p->dsids[p->ndsids] = tw_strndup(sid, len);
    p->dsid_lens[p->ndsids++] = len;
}

void
tw__persist_station_msg(tw_broker_t *b, const tw_msg_t *m)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return;
    }
    size_t len;
    const char *sid = tw_msg_str(m, TW_F_SID, &len);
    s_mark_sid(p, sid, len);
    int report = !m->f[TW_F_OP]; /* a worker's, not a client's */
    for (size_t i = 0; i < m->nitems; i++) {
        sid = tw_item_str(&m->items[i], TW_I_SID, &len);
        size_t el;
        const char *ev = tw_item_str(&m->items[i], TW_I_EV, &el);
        if (report && sid && len && ev && el == 9 &&
            memcmp(ev, "iteration", 9) == 0) {
            /* A bare checkpoint: at most once a second per station, so
             * thousands of busy stations do not rewrite their records
             * ten times a second. State changes go at once. */
            if (!tw_strmap_get(&p->ckset, sid, len)) {
                char *copy = tw_strndup(sid, len);
                tw_strmap_put(&p->ckset, copy, len, copy);
            }
            continue;
        }
        s_mark_sid(p, sid, len);
    }
}

/* Mark the stations whose checkpoints waited (once a second). */
static void
s_flush_ckset(tw_persist_t *p)
{
    if (!p->ckset.len) {
        return;
    }
    for (size_t i = 0; i < p->ckset.cap; i++) {
        char *sid = p->ckset.slots[i].val;
        if (sid) {
            s_mark_sid(p, sid, p->ckset.slots[i].klen);
            tw_free(sid);
        }
    }
    tw_strmap_free(&p->ckset);
    tw_strmap_init(&p->ckset);
}

static void
s_mark_pool(tw_persist_t *p, uint32_t id, uint8_t how)
{
    if (id >= p->capdpools) {
        size_t cap = id * 2 + 8;
        p->dpools = tw_realloc(p->dpools, cap);
        memset(p->dpools + p->capdpools, 0, cap - p->capdpools);
        p->capdpools = cap;
    }
    if (p->dpools[id] < how) {
        p->dpools[id] = how;
    }
    p->any_pool = 1;
}

void
tw__persist_pool_msg(tw_broker_t *b, const tw_msg_t *m)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return;
    }
    size_t len;
    const char *name = tw_msg_str(m, TW_F_POOL, &len);
    if (!name || !len) {
        name = "default";
        len = 7;
    }
    tw_pool_t *pool = tw_pools_get(&b->pools, name, len, 0);
    if (pool) {
        s_mark_pool(p, pool->id, 2);
    }
}

/* ---- encoding the broker's records ------------------------------------ */

static int
s_put_task(tw_broker_t *b, tw_persist_t *p, const tw_task_t *t)
{
    const tw_handler_t *h = &b->reg.handlers[t->handler];
    const tw_pool_t *pool = tw_pools_by_id(&b->pools, t->pool);
    /* Tasks of one turn mostly share a client: remember the last one
     * (reset at every commit; clients are only freed between commits). */
    const tw_bclient_t *c = NULL;
    if (t->client && t->client == p->last_cid) {
        c = p->last_client;
    } else if (t->client) {
        c = tw_clients_get(&b->clients, t->client);
        p->last_cid = t->client;
        p->last_client = c;
    }
    const char *gnames[64];
    size_t glens[64];
    size_t ng = 0;
    for (uint16_t i = 0; i < t->ngroups && ng < 64; i++) {
        const tw_group_t *g = tw_pools_group_by_id(&b->pools, t->groups[i]);
        if (g) {
            gnames[ng] = g->name;
            glens[ng++] = g->name_len;
        }
    }
    /* A blocked task keeps its parents (flow.h), 8 bytes big-endian each:
     * written when it blocks and again, without them, when it is
     * released or ends. */
    size_t npar = 0;
    int amode = 0, awr = 0;
    const uint64_t *par =
        t->state == TW_ST_BLOCKED
            ? tw_deps_parents(b->deps, t->id, &npar, &amode, &awr, NULL)
            : NULL;
    unsigned char pbuf[8 * 16];
    unsigned char *after = npar > 16 ? tw_malloc(8 * npar) : pbuf;
    for (size_t i = 0; par && i < npar; i++) {
        tw_record_id_key(par[i], after + 8 * i);
    }
    /* An outcome needs no epoch or due time any more; its options stay
     * for its record, from which it may be retried (PROTOCOL.md 16.5). */
    int live = t->state > TW_ST_LOST;
    const tw_task_more_t *m = t->more;
    tw_enc_t runs;
    tw_enc_init(&runs);
    if (m && m->runs.len) {
        tw_enc_array(&runs, m->runs.len);
        tw_attempts_encode(&m->runs, &runs);
    }
    tw_record_task_t r = {
        .id = t->id,
        .seq = t->seq,
        .ep = live ? t->ep : 0,
        .shash = t->shash,
        .worker = t->worker,
        .t_wall = (uint64_t)((int64_t)t->t_ms + p->wall_off),
        .due_wall = live && t->due_ms
                        ? (uint64_t)((int64_t)t->due_ms + p->wall_off)
                        : 0,
        .priority = t->priority,
        .timeout_ms = t->timeout_ms,
        .retries = t->retries,
        .attempt = t->attempt,
        .state = t->state,
        .cancel = t->cancel_requested,
        .ident = c ? c->ident : NULL,
        .ident_len = c ? c->ident_len : 0,
        .handler = h->name,
        .handler_len = h->name_len,
        .data = t->data,
        .data_len = t->data_len,
        .error = t->error,
        .error_len = t->error ? strlen(t->error) : 0,
        .pool = pool ? pool->name : "default",
        .pool_len = pool ? pool->name_len : 7,
        .key = t->key,
        .key_len = t->key_len,
        .ngroups = ng,
        .gnames = gnames,
        .glens = glens,
        .after = par ? after : NULL,
        .after_len = par ? 8 * npar : 0,
        .after_mode = (uint8_t)amode,
        .after_wr = (uint8_t)awr,
        .sub_wall = t->sub_wall,
        .run_wall = t->run_wall,
        .retried = m ? m->retried : 0,
        .runs_base = m ? m->runs_base : 0,
        .preview = m ? m->preview : 0,
        .args_bytes = m ? m->args_bytes : 0,
        /* Only arguments a retry needs are stored: an ok task's copy
         * or preview stays in memory, so outcomes take no more room in
         * the store than before records. */
        .args = !live && m && m->counted ? m->args : NULL,
        .args_len = !live && m && m->counted ? m->args_len : 0,
        .runs = tw_enc_size(&runs) ? runs.sb.data : NULL,
        .runs_len = tw_enc_size(&runs),
    };
    /* Encoded straight into the batch: a payload is copied once here. */
    unsigned char key[8];
    tw_record_id_key(t->id, key);
    unsigned char *v = tw_wbatch_put_begin(p->cur, TW_DB_TASKS, key, 8,
                                           tw_record_task_enc_max(&r),
                                           !(t->sflags & TW_TASK_STORED));
    size_t vlen = tw_record_task_enc_to(v, &r);
    tw_wbatch_put_end(p->cur, vlen);
    if (after != pbuf) {
        tw_free(after);
    }
    tw_enc_free(&runs);
    /* A new record grows the store; so may an outcome, whose result
     * replaces the arguments. */
    if (!(t->sflags & TW_TASK_STORED) || (!live && t->data_len)) {
        p->growth += tw_room_est(vlen);
    }
    return 0;
}

static int
s_put_station(tw_broker_t *b, tw_persist_t *p, const tw_station_t *st)
{
    const tw_handler_t *h = &b->reg.handlers[st->handler];
    tw_record_station_t r = {
        .sid = st->sid,
        .sid_len = st->sid_len,
        .handler = h->name,
        .handler_len = h->name_len,
        .args = st->args,
        .args_len = st->args_len,
        .ck = st->ck,
        .ck_len = st->ck_len,
        .code = st->code,
        .code_len = st->code ? strlen(st->code) : 0,
        .last_error = st->last_error,
        .last_error_len = st->last_error ? strlen(st->last_error) : 0,
        .next = st->next,
        .wanted = st->wanted,
        .state = st->state,
        .restart = st->restart,
        .placement = (uint8_t)st->placement,
        .interval_ms = st->interval_ms,
        .timeout_ms = st->timeout_ms,
        .restarts = st->restarts,
        .epoch = st->epoch,
        .iterations = st->iterations,
        .tags = st->tags,
        .ntags = st->ntags,
    };
    tw_record_station_enc(&p->enc, &r);
    tw_wbatch_put(p->cur, TW_DB_STATIONS, st->sid, st->sid_len,
                  p->enc.sb.data, p->enc.sb.size, 0);
    p->growth += tw_room_est(p->enc.sb.size);
    return 0;
}

static int
s_put_group(tw_persist_t *p, const tw_pool_t *pool, const tw_group_t *g)
{
    tw_record_group_t r = {
        .pool = pool->name,
        .pool_len = pool->name_len,
        .name = g->name,
        .name_len = g->name_len,
        .limit = g->limit,
        .calls = g->calls,
        .admitted = g->admitted,
        .ended = g->ended,
        .cancelled = g->cancelled,
        .full = (uint8_t)g->full,
        .before_lock = (uint8_t)g->before_lock,
    };
    tw_record_group_enc(&p->enc, &r);
    char key[2 * TW_PROTO_MAX_NAME + 2];
    size_t klen = tw_record_group_key(key, pool->name, pool->name_len,
                                     g->name, g->name_len);
    tw_wbatch_put(p->cur, TW_DB_GROUPS, key, klen, p->enc.sb.data,
                  p->enc.sb.size, 0);
    return 0;
}

typedef struct {
    tw_broker_t *b;
    tw_persist_t *p;
    const tw_pool_t *pool;
    int rc;
} s_each_t;

static void
s_put_group_cb(uint64_t id, void *val, void *arg)
{
    s_each_t *x = arg;
    tw_group_t *g = val;
    (void)id;
    if (x->rc == 0 && g->pool == x->pool->id) {
        x->rc = s_put_group(x->p, x->pool, g);
    }
}

static int
s_put_pool(tw_broker_t *b, tw_persist_t *p, const tw_pool_t *pool, int all)
{
    tw_record_pool_t r = {
        .name = pool->name,
        .name_len = pool->name_len,
        .size = pool->size,
        .ended = pool->ended,
        .cancelled = pool->cancelled,
        .next_dseq = pool->next_dseq,
        .locked = (uint8_t)pool->locked,
        .closed = (uint8_t)pool->closed,
    };
    tw_record_pool_enc(&p->enc, &r);
    tw_wbatch_put(p->cur, TW_DB_POOLS, pool->name, pool->name_len,
                  p->enc.sb.data, p->enc.sb.size, 0);
    if (!all) {
        return 0;
    }
    /* Groups may have been forgotten: rewrite the pool's whole set. */
    char prefix[TW_PROTO_MAX_NAME + 1];
    memcpy(prefix, pool->name, pool->name_len);
    prefix[pool->name_len] = '\0';
    tw_wbatch_del_prefix(p->cur, TW_DB_GROUPS, prefix, pool->name_len + 1);
    s_each_t x = {b, p, pool, 0};
    tw_idmap_each(&b->pools.groups, s_put_group_cb, &x);
    return x.rc;
}

static void
s_dirty_group_cb(uint64_t id, void *val, void *arg)
{
    s_each_t *x = arg;
    (void)val;
    tw_group_t *g = tw_pools_group_by_id(&x->b->pools, id);
    if (x->rc || !g) {
        return;
    }
    tw_pool_t *pool = tw_pools_by_id(&x->b->pools, g->pool);
    if (pool && !(g->pool < x->p->capdpools && x->p->dpools[g->pool] == 2)) {
        x->rc = s_put_group(x->p, pool, g);
    }
}

/* ---- collection ------------------------------------------------------- */

/* Free up to `max` ended tasks past --result-ttl or beyond --max-results,
 * oldest first; their records go in the next commit. */
static size_t
s_gc(tw_broker_t *b, uint64_t now_ms, size_t max)
{
    tw_tasks_gc_t lim = {(uint64_t)b->cfg->result_ttl * 1000,
                         (size_t)b->cfg->max_results,
                         (uint64_t)b->cfg->payload_budget << 20, max,
                         (uint64_t)b->cfg->failed_ttl * 1000,
                         (size_t)b->cfg->max_failed};
    size_t for_bytes;
    size_t n = tw_tasks_gc(&b->tasks, now_ms, &lim, &for_bytes);
    b->st.collected_budget += for_bytes;
    if (b->persist) {
        b->persist->collected += n;
    }
    return n;
}

int
tw__persist_budget(tw_broker_t *b, size_t bytes, char *why, size_t wlen)
{
    uint64_t budget = (uint64_t)b->cfg->payload_budget << 20;
    tw_tasks_t *ts = &b->tasks;
    /* Kept results yield to new work: the oldest go first, a bounded
     * number per submission; arguments of live tasks never do. */
    size_t freed = 0;
    tw_task_t *t;
    while (ts->payload_bytes + bytes > budget && freed < S_BUDGET_FREE &&
           (t = ts->ended.head)) {
        tw_tasks_forget(ts, t);
        freed++;
    }
    b->st.collected_budget += freed;
    if (b->persist) {
        b->persist->collected += freed;
    }
    if (ts->payload_bytes + bytes <= budget) {
        return 0;
    }
    b->st.over_budget++;
    snprintf(why, wlen,
             "payload budget full (%llu of %llu bytes held in the arguments "
             "of %zu queued and running tasks and %zu kept results; raise "
             "--payload-budget)",
             (unsigned long long)ts->payload_bytes,
             (unsigned long long)budget, ts->live, ts->ended.len);
    return TW_EFULL;
}

/* ---- commit ----------------------------------------------------------- */

/* Move the id and epoch reservation forward if it is half used up. */
static void
s_put_counters(tw_broker_t *b, tw_persist_t *p)
{
    if (b->tasks.next_id + TW_STORE_RESERVE / 2 <= p->id_reserved &&
        b->next_ep + TW_STORE_RESERVE / 2 <= p->ep_reserved) {
        return;
    }
    p->id_reserved = b->tasks.next_id + TW_STORE_RESERVE;
    p->ep_reserved = b->next_ep + TW_STORE_RESERVE;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_cstr(&e, "id");
    tw_enc_uint(&e, p->id_reserved);
    tw_enc_cstr(&e, "ep");
    tw_enc_uint(&e, p->ep_reserved);
    tw_wbatch_put(p->cur, TW_DB_META, "counters", 8, e.sb.data, e.sb.size,
                  0);
    tw_enc_free(&e);
}

/* Encode the deletions of records freed since the last commit, from
 * p->dfreed[from] on, at most `max` of them. Returns how many. */
static size_t
s_write_freed(tw_persist_t *p, size_t from, size_t max)
{
    size_t n = 0;
    for (size_t i = from; i < p->ndfreed && n < max; i++, n++) {
        unsigned char key[8];
        tw_record_id_key(p->dfreed[i] >> 2, key);
        if (p->dfreed[i] & S_DEL_TASK) {
            tw_wbatch_del(p->cur, TW_DB_TASKS, key, 8);
        }
    }
    return n;
}

/* Encode every other dirty record into p->cur, and mark the tasks
 * written: the batch reaches the store in order, whatever happens to
 * later ones. The counters come first, so a reservation is on disk no
 * later than the ids it covers. */
static void
s_write(tw_broker_t *b, tw_persist_t *p)
{
    p->last_cid = 0;
    p->last_client = NULL;
    s_put_counters(b, p);
    for (size_t i = 0; i < p->ndtasks; i++) {
        tw_task_t *t = p->dtasks[i];
        if (!t) {
            continue; /* freed in this turn */
        }
        s_put_task(b, p, t);
        t->sflags = (uint8_t)((t->sflags & ~TW_TASK_DIRTY) | TW_TASK_STORED);
        s_mark_pool(p, t->pool, 1);
        for (uint16_t k = 0; k < t->ngroups; k++) {
            tw_idmap_put(&p->dgroups, t->groups[k], (void *)1);
        }
    }
    for (size_t i = 0; i < p->ndsids; i++) {
        tw_station_t *st = tw_stations_get(&b->stations, p->dsids[i],
                                           p->dsid_lens[i]);
        if (st) {
            s_put_station(b, p, st);
        } else {
            tw_wbatch_del(p->cur, TW_DB_STATIONS, p->dsids[i],
                          p->dsid_lens[i]);
        }
    }
    for (size_t id = 1; p->any_pool && id < p->capdpools; id++) {
        tw_pool_t *pool = tw_pools_by_id(&b->pools, (uint32_t)id);
        if (p->dpools[id] && pool) {
            s_put_pool(b, p, pool, p->dpools[id] == 2);
        }
    }
    if (p->dgroups.len) {
        s_each_t x = {b, p, NULL, 0};
        tw_idmap_each(&p->dgroups, s_dirty_group_cb, &x);
    }
    /* A tick's moved cursor goes with its task, in this batch. */
    tw_schedtab_write(&b->sched, p->cur);
}

/* Forget the dirty marks (after a commit, or when giving up). */
static void
s_clean(tw_persist_t *p)
{
    p->ndtasks = 0;
    p->dirty_bytes = 0;
    p->ndfreed = 0;
    for (size_t i = 0; i < p->ndsids; i++) {
        tw_free(p->dsids[i]);
    }
    p->ndsids = 0;
    if (p->any_pool) {
        memset(p->dpools, 0, p->capdpools);
        p->any_pool = 0;
    }
    if (p->dgroups.len) {
        tw_idmap_free(&p->dgroups);
        tw_idmap_init(&p->dgroups);
    }
}

/* Move every client's pending ACK and RESULT batches into `wb`, to be
 * sent once it is written. */
static void
s_seal_clients(tw_broker_t *b, tw_wbatch_t *wb)
{
    tw_persist_t *p = b->persist;
    /* While the writer fails, refusals alone do not wait for it: they
     * claim nothing is recorded, and a client must hear "no" now. */
    int failing = p->writer && tw_writer_failing(p->writer);
    tw_clients_t *cs = &b->clients;
    for (size_t i = 0; i < cs->ndirty; i++) {
        tw_bclient_t *c = cs->dirty[i];
        c->dirty = 0;
        tw_batch_t *batches[2] = {&c->acks, &c->results};
        tw_cmd_t cmds[2] = {TW_CMD_ACK, TW_CMD_RESULT};
        for (int k = 0; k < 2; k++) {
            if (!batches[k]->n) {
                continue;
            }
            int now = k == 0 && failing && c->refused == c->acks.n;
            zmq_msg_t f[3];
            zmq_msg_init_size(&f[0], c->ident_len);
            memcpy(zmq_msg_data(&f[0]), c->ident, c->ident_len);
            tw_batch_frames(batches[k], cmds[k], &f[1]);
            if (now) {
                int was = tw__persist_bypass(b, 1);
                tw_out_built(&b->out, TW_OUT_FRONT, f);
                tw__persist_bypass(b, was);
            } else {
                tw_wbatch_hold(wb, f);
                c->held_seq = wb->seq;
            }
        }
        c->refused = 0;
    }
    cs->ndirty = 0;
}

/* Does a client with messages due this turn still have messages held in
 * a batch that is not done? Then its new ones must wait too. */
static int
s_clients_held(tw_broker_t *b, tw_persist_t *p)
{
    tw_clients_t *cs = &b->clients;
    for (size_t i = 0; i < cs->ndirty; i++) {
        if (cs->dirty[i]->held_seq > p->done_seq) {
            return 1;
        }
    }
    return 0;
}

/* An ACK held by a batch that was never written: its items for tasks
 * created from p->fail_id on say "not recorded" instead (tasks recorded
 * earlier, resends answered with their id, keep their ACK). */
static void
s_unack(tw_broker_t *b, tw_persist_t *p, zmq_msg_t f[3], int rc,
        const char *why)
{
    tw_msg_t m;
    if (tw_msg_decode(&m, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]),
                      zmq_msg_data(&f[2]), zmq_msg_size(&f[2])) != 0) {
        zmq_msg_close(&f[1]);
        zmq_msg_close(&f[2]);
        zmq_msg_close(&f[0]);
        return;
    }
    char err[400];
    snprintf(err, sizeof err, "not recorded, the broker stopped: %s; "
             "submit again", why);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, m.nitems);
    size_t undone = 0;
    for (size_t i = 0; i < m.nitems; i++) {
        const tw_item_t *it = &m.items[i];
        uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        uint64_t dup = tw_item_uint(it, TW_I_DUP, 0);
        size_t el = 0;
        const char *etext = tw_item_str(it, TW_I_ERR, &el);
        int code = id && id >= p->fail_id
                       ? rc
                       : (int)tw_item_int(it, TW_I_CODE, 0);
        if (id && id >= p->fail_id) {
            etext = err;
            el = strlen(err);
            id = 0;
            undone++;
        }
        tw_enc_map(&e, id ? 2 + (dup != 0) : 3);
        tw_enc_ikey(&e, TW_I_SEQ);
        tw_enc_uint(&e, seq);
        if (id) {
            tw_enc_ikey(&e, TW_I_ID);
            tw_enc_uint(&e, id);
            if (dup) {
                tw_enc_ikey(&e, TW_I_DUP);
                tw_enc_uint(&e, dup);
            }
        } else {
            tw_enc_ikey(&e, TW_I_CODE);
            tw_enc_int(&e, code);
            tw_enc_ikey(&e, TW_I_ERR);
            tw_enc_str(&e, etext ? etext : "", etext ? el : 0);
        }
    }
    tw_msg_release(&m);
    zmq_msg_close(&f[1]);
    zmq_msg_close(&f[2]);
    tw_enc_frames(&e, TW_CMD_ACK, &f[1]);
    tw_enc_free(&e);
    p->unacked += undone;
    tw_out_built(&b->out, TW_OUT_FRONT, f);
}

/* Send the replies held behind batches that are done now. */
static void
s_release_replies(tw_broker_t *b, tw_persist_t *p, int all)
{
    /* Already in order: past tw__persist_route, which must not queue
     * them again while this walks the queue. */
    int was = p->sending;
    p->sending = 1;
    size_t k = 0;
    for (size_t i = 0; i < p->nafter; i++) {
        if (all || p->after[i].seq <= p->done_seq) {
            tw_out_built(&b->out, TW_OUT_FRONT, p->after[i].f);
        } else {
            p->after[k++] = p->after[i];
        }
    }
    p->nafter = k;
    p->sending = was;
}

/* A new batch, with the buffer of one written before if there is one
 * (a fresh buffer of megabytes costs a page fault per page). */
static tw_wbatch_t *
s_batch_new(tw_persist_t *p)
{
    tw_wbatch_t *wb = tw_wbatch_new();
    if (p->spare) {
        wb->ops = p->spare;
        wb->cap = p->spare_cap;
        p->spare = NULL;
    }
    /* Room for what is dirty up front: growing by doubling would copy it
     * all again on the way. */
    size_t want = (size_t)p->dirty_bytes + 64 * 1024;
    if (wb->cap < want) {
        tw_free(wb->ops);
        wb->ops = tw_malloc(want);
        wb->cap = want;
    }
    return wb;
}

/* A batch's messages may leave: it is written (and, in a pair under
 * --replicate sync, the passive has it too); or it was never written (a
 * broker stopping while its store cannot be written), so its submitters
 * hear "not recorded" and its outcomes stay unsent (the tasks run again
 * after a restart; nothing is delivered twice). */
static void
s_batch_finish(tw_broker_t *b, tw_wbatch_t *wb)
{
    tw_persist_t *p = b->persist;
    p->done_seq = wb->seq;
    tw_room_done(&p->room, wb->growth, wb->have_use ? &wb->use : NULL);
    p->sending = 1;
    if (wb->rc != 0) {
        if (!p->fail_id) {
            p->fail_id = wb->first_id ? wb->first_id : 1;
        }
        size_t acks = 0, results = 0;
        for (size_t i = 0; i + 2 < wb->nmsgs; i += 3) {
            int cmd = tw_out_cmd(&wb->msgs[i]);
            if (cmd == TW_CMD_ACK) {
                s_unack(b, p, &wb->msgs[i], wb->rc, wb->err);
                acks++;
            } else if (cmd == TW_CMD_RESULT) {
                for (int k = 0; k < 3; k++) {
                    zmq_msg_close(&wb->msgs[i + (size_t)k]);
                }
                results++;
            } else {
                tw_out_built(&b->out, TW_OUT_FRONT, &wb->msgs[i]);
            }
        }
        tw_err("store.commit",
               "%zu records could not be written (%s); %zu ACK messages "
               "say so instead, %zu RESULT messages are withheld",
               wb->nops, wb->err, acks, results);
        p->commit_errors++;
    } else {
        for (size_t i = 0; i + 2 < wb->nmsgs; i += 3) {
            tw_out_built(&b->out, TW_OUT_FRONT, &wb->msgs[i]);
        }
        if (wb->nops > 0) {
            p->commit_ns += uv_hrtime() - wb->sealed_ns;
            p->timed++;
        }
        p->commits += wb->nops > 0;
        p->sync_wanted = 1;
        if (p->failing_logged) {
            s_log_writer(b, p); /* says at once that it writes again */
        }
    }
    wb->nmsgs = 0;
    s_release_replies(b, p, 0);
    p->sending = 0;
    if (!p->spare && wb->cap <= S_SPARE_MAX) {
        p->spare = wb->ops;
        p->spare_cap = wb->cap;
        wb->ops = NULL;
    }
    /* The writer freed its copies of these payloads too. */
    tw_trim_note(&b->trim, wb->len, 0, uv_now(b->loop));
    tw_wbatch_free(wb);
}

/* A batch is done (writer.h). In a pair it is the active's copy only:
 * under --replicate sync its messages wait until the passive has it too
 * (tw__persist_release), and so do those of every later batch. */
static void
s_batch_done(tw_wbatch_t *wb, void *arg)
{
    tw_broker_t *b = arg;
    tw_persist_t *p = b->persist;
    if (b->pair && wb->rc == 0 && wb->rseq) {
        p->done_rseq = wb->rseq;
        tw_pair_committed(b->pair, wb->rseq);
    }
    if (b->pair && (p->wait_head || (wb->rc == 0 && wb->nmsgs &&
                                     tw_pair_wait(b->pair, wb->rseq)))) {
        wb->next = NULL;
        if (p->wait_tail) {
            p->wait_tail->next = wb;
        } else {
            p->wait_head = wb;
        }
        p->wait_tail = wb;
        return;
    }
    s_batch_finish(b, wb);
}

void
tw__persist_release(tw_broker_t *b, uint64_t rseq)
{
    tw_persist_t *p = b->persist;
    while (p && p->wait_head && p->wait_head->rseq <= rseq) {
        tw_wbatch_t *wb = p->wait_head;
        p->wait_head = wb->next;
        if (!p->wait_head) {
            p->wait_tail = NULL;
        }
        s_batch_finish(b, wb);
    }
}

/* In a pair's active broker: stream batch `wb` to the passive
 * (state/pair.h), which adds the pair's record to it, and note its
 * sequence number. A batch without operations writes nothing; its
 * messages follow the last batch streamed. */
static void
s_stream(tw_broker_t *b, tw_persist_t *p, tw_wbatch_t *wb)
{
    if (!b->pair || tw_pair_state(b->pair) != TW_BSTAR_ACTIVE) {
        return;
    }
    if (wb->nops) {
        tw_replops_t r = {wb->ops, wb->len, wb->cap, wb->nops};
        p->last_rseq = tw_pair_stream(b->pair, &r);
        wb->ops = r.buf;
        wb->len = r.len;
        wb->cap = r.cap;
        wb->nops = r.nops;
    }
    wb->rseq = p->last_rseq;
}

int
tw__persist_walk(tw_broker_t *b, int db, const void *after, size_t alen,
                 int (*fn)(const void *, size_t, const void *, size_t,
                           void *),
                 void *arg, uint64_t *at)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return TW_ENOENT;
    }
    *at = p->done_rseq;
    return tw_store_each_after(p->store, (tw_db_t)db, after, alen, fn, arg);
}

/* Hand batch `wb` over (with the clients' pending ACKs and RESULTs when
 * `clients`), or write it here when there is no writer thread. */
static int
s_hand_over(tw_broker_t *b, tw_persist_t *p, tw_wbatch_t *wb, int clients)
{
    wb->seq = ++p->seal_seq;
    wb->growth = p->growth;
    p->growth = 0;
    wb->first_id = p->sealed_id;
    p->sealed_id = b->tasks.next_id;
    wb->sealed_ns = uv_hrtime();
    tw_room_seal(&p->room, wb->growth);
    if (clients) {
        s_seal_clients(b, wb);
    }
    s_stream(b, p, wb);
    if (p->writer) {
        tw_writer_submit(p->writer, wb);
        return 0;
    }
    if (p->fail_id) {
        /* A batch before it was never written: keep the prefix. */
        wb->rc = TW_EIO;
        snprintf(wb->err, sizeof wb->err, "%s",
                 "an earlier batch could not be written");
    } else {
        wb->rc = tw_wbatch_apply(wb, p->store);
    }
    int rc = wb->rc;
    s_batch_done(wb, b);
    return rc;
}

/* Records per batch: each may dirty a page, and a page copied on write
 * needs room until the transaction after next, so a batch stays well
 * inside the reserve (room.h). */
static size_t
s_batch_records(tw_persist_t *p)
{
    uint64_t n = tw_room_reserve(&p->room) / (2 * 4096);
    return n < 128 ? 128 : n > 4096 ? 4096 : (size_t)n;
}

int
tw__persist_commit(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return 0;
    }
    const tw_trecs_t *rs = &b->tasks.recs;
    if (tw_trecs_count(rs, TW_TREC_OK) + tw_trecs_count(rs, TW_TREC_CANCELLED) >
            (size_t)b->cfg->max_results ||
        tw_trecs_count(rs, TW_TREC_FAILED) > (size_t)b->cfg->max_failed ||
        b->tasks.payload_bytes > (uint64_t)b->cfg->payload_budget << 20) {
        s_gc(b, uv_now(b->loop), S_GC_PER_TURN);
    }
    /* Deletions beyond a batch's worth go first, in batches of their
     * own (collected records: no ACK waits for them). */
    size_t budget = s_batch_records(p), from = 0;
    while (p->ndfreed - from > budget) {
        tw_wbatch_t *wb = s_batch_new(p);
        p->cur = wb;
        from += s_write_freed(p, from, budget);
        p->cur = NULL;
        s_hand_over(b, p, wb, 0);
    }
    int dirty = p->ndtasks || p->ndfreed > from || p->ndsids ||
                p->any_pool || tw_schedtab_marked(&b->sched);
    /* Client messages wait for a batch only if they must: something of
     * theirs is dirty, or an earlier batch they must not overtake is not
     * done. */
    if (!dirty && !s_clients_held(b, p)) {
        p->ndfreed = 0;
        return 0;
    }
    tw_wbatch_t *wb = s_batch_new(p);
    p->cur = wb;
    s_write_freed(p, from, SIZE_MAX);
    s_write(b, p);
    s_clean(p);
    p->cur = NULL;
    return s_hand_over(b, p, wb, 1);
}

void
tw__persist_check(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (p && p->writer &&
        (p->ndtasks + p->ndfreed >= s_batch_records(p) ||
         p->dirty_bytes >= S_BATCH_BYTES)) {
        tw__persist_commit(b);
    }
}

void
tw__persist_flush(tw_broker_t *b)
{
    /* Sealed, not waited for: replies that must not overtake what this
     * seals wait behind it (tw__persist_route). */
    tw__persist_commit(b);
}

int
tw__persist_bypass(tw_broker_t *b, int on)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return 0;
    }
    int was = p->sending;
    p->sending = on;
    return was;
}

int
tw__persist_holding(const tw_broker_t *b)
{
    const tw_persist_t *p = b->persist;
    return p && p->writer && !p->sending;
}

int
tw__persist_hold(tw_broker_t *b, const tw_bclient_t *c, zmq_msg_t f[3])
{
    tw_persist_t *p = b->persist;
    if (c->held_seq <= p->done_seq || tw_writer_failing(p->writer)) {
        /* Nothing of its own in flight; or a store that cannot be written
         * now, which must not keep every answer from the client (held
         * ACKs stay held). */
        return 0;
    }
    if (p->nafter == p->capafter) {
        p->capafter = p->capafter ? p->capafter * 2 : 16;
        p->after = tw_realloc(p->after, p->capafter * sizeof *p->after);
    }
    s_reply_t *r = &p->after[p->nafter++];
    r->seq = c->held_seq;
    for (int i = 0; i < 3; i++) {
        r->f[i] = f[i]; /* moved: the queue owns the frames now */
    }
    return 1;
}

int
tw__persist_admit(tw_broker_t *b, size_t bytes, char *why, size_t wlen)
{
    tw_persist_t *p = b->persist;
    if (p->writer && tw_writer_failing(p->writer)) {
        tw_writer_health_t h;
        tw_writer_health(p->writer, &h);
        snprintf(why, wlen,
                 "data store cannot be written (%s; failing for %llu ms, "
                 "retrying); nothing new is accepted until it can",
                 h.err, (unsigned long long)(tw_now_ms() - h.since_ms));
        return TW_EFULL;
    }
    /* The record: the arguments and about a hundred bytes of fields. */
    if (tw_room_admit(&p->room, tw_room_est(bytes + 128)) != 0) {
        const tw_room_t *r = &p->room;
        snprintf(why, wlen,
                 "data store full (%s: %llu bytes used and %llu on their "
                 "way, of %llu%s, %llu of it kept for outcomes; raise "
                 "--data-size or let results expire)",
                 tw_store_path(p->store),
                 (unsigned long long)r->use.live_bytes,
                 (unsigned long long)(r->flight + r->turn),
                 (unsigned long long)tw_room_cap(r),
                 tw_room_cap(r) < r->data_bytes ? " the disk has room for"
                                                : "",
                 (unsigned long long)tw_room_reserve(r));
        return TW_EFULL;
    }
    return 0;
}

/* ---- sync (everysec) -------------------------------------------------- */

static void
s_sync_work(uv_work_t *req)
{
    tw_persist_t *p = req->data;
    tw_store_sync(p->store);
}

static void
s_sync_done(uv_work_t *req, int status)
{
    tw_persist_t *p = req->data;
    (void)status;
    p->sync_busy = 0;
    p->syncs++;
}

static void
s_on_sync_timer(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    tw_persist_t *p = b->persist;
    if (p->sync_busy || !p->sync_wanted) {
        return;
    }
    p->sync_wanted = 0;
    p->sync_busy = 1;
    p->sync_work.data = p;
    uv_queue_work(b->loop, &p->sync_work, s_sync_work, s_sync_done);
}

/* ---- collection, once a second ---------------------------------------- */

static int
s_client_known(uint64_t cid, void *arg)
{
    tw_broker_t *b = arg;
    return tw_clients_get(&b->clients, cid) != NULL;
}

void
tw__persist_gc(tw_broker_t *b, uint64_t now_ms)
{
    /* Submission rings of clients the broker forgot (dedup.h). */
    tw_dedup_gc(&b->dedup, s_client_known, b);
    if (!b->persist) {
        /* In memory a free costs nothing worth bounding. */
        s_gc(b, now_ms, SIZE_MAX);
        return;
    }
    tw_persist_t *p = b->persist;
    s_gc(b, now_ms, S_GC_PER_TICK);
    s_flush_ckset(p);
    s_log_writer(b, p);
}

/* Once a second: what the writer has been failing on, in its own words
 * (a full disk, LMDB's map, an I/O error), and when it recovers. */
static void
s_log_writer(tw_broker_t *b, tw_persist_t *p)
{
    if (!p->writer) {
        return;
    }
    tw_writer_health_t h;
    tw_writer_health(p->writer, &h);
    if (h.failing) {
        tw_err("store.commit",
               "the writer cannot write: %s (%llu attempts failed, for %llu "
               "ms); it retries by itself; %zu replies and every ACK since "
               "wait, new submissions are refused",
               h.err, (unsigned long long)(h.errors - p->errors_seen),
               (unsigned long long)(tw_now_ms() - h.since_ms), p->nafter);
        p->failing_logged = 1;
        /* Answers must not wait for a store that may not come back. */
        s_release_replies(b, p, 1);
    } else if (p->failing_logged) {
        tw_notice("store.commit",
                  "%s: the writer writes again after %llu failed attempts",
                  tw_store_path(p->store),
                  (unsigned long long)(h.errors - p->errors_seen));
        p->failing_logged = 0;
        p->errors_seen = h.errors;
    }
}

/* ---- status ----------------------------------------------------------- */

size_t
tw__persist_status_count(tw_broker_t *b)
{
    return 3 + (b->persist ? 6 : 0);
}

void
tw__persist_status(tw_broker_t *b, tw_enc_t *e)
{
    tw_persist_t *p = b->persist;
    tw_enc_cstr(e, "stale_done");
    tw_enc_uint(e, b->stale_done);
    tw_enc_cstr(e, "adopted");
    tw_enc_uint(e, b->adopted);
    tw_enc_cstr(e, "resubmitted");
    tw_enc_uint(e, b->st.deduplicated);
    if (p) {
        tw_enc_cstr(e, "store_fsync");
        tw_enc_cstr(e, tw_fsync_name(tw_store_fsync_policy(p->store)));
        tw_enc_cstr(e, "store_used_bytes");
        tw_enc_uint(e, p->room.use.live_bytes);
        tw_enc_cstr(e, "store_cap_bytes");
        tw_enc_uint(e, tw_room_cap(&p->room));
        tw_enc_cstr(e, "store_commits");
        tw_enc_uint(e, p->commits);
        tw_enc_cstr(e, "store_errors");
        tw_enc_uint(e, p->commit_errors +
                           (p->writer ? tw_writer_errors(p->writer) : 0));
        tw_enc_cstr(e, "store_failing");
        tw_enc_uint(e, p->writer ? (uint64_t)tw_writer_failing(p->writer)
                                 : 0);
    }
}

int
tw__persist_figures(tw_broker_t *b, tw_persist_figures_t *out)
{
    const tw_persist_t *p = b->persist;
    memset(out, 0, sizeof *out);
    if (!p) {
        return 0;
    }
    out->commits = p->commits;
    out->errors =
        p->commit_errors + (p->writer ? tw_writer_errors(p->writer) : 0);
    out->used_bytes = p->room.use.live_bytes;
    out->commit_seconds = (double)p->commit_ns / 1e9;
    out->timed = p->timed;
    out->syncs = p->syncs;
    return 1;
}

/* ---- recovery --------------------------------------------------------- */

typedef struct {
    tw_broker_t *b;
    tw_persist_t *p;
    uint64_t now_wall, now_loop;
    uint64_t max_id;
    char *why;
    size_t wlen;
    uint64_t *expired; /* results past their TTL, deleted at the end */
    size_t nexpired, capexpired;
    tw_idmap_t per_client; /* client id -> tasks recovered for it */
} s_rec_t;

static void
s_fill_dedup_cb(uint64_t id, void *val, void *arg)
{
    s_rec_t *x = arg;
    tw_task_t *t = val;
    (void)id;
    if (t->client) {
        uint64_t n =
            (uint64_t)(uintptr_t)tw_idmap_get(&x->per_client, t->client);
        tw_dedup_put(&x->b->dedup, t->client, t->seq, t->id, n);
    }
}

static int
s_bad(s_rec_t *x, const char *db, const void *key, size_t klen)
{
    (void)key;
    snprintf(x->why, x->wlen,
             "%s: a record in '%s' is damaged (%zu-byte key); the store "
             "was left untouched", tw_store_path(x->p->store), db, klen);
    return TW_EPROTO;
}

static int
s_rec_pool(const void *key, size_t klen, const void *val, size_t vlen,
           void *arg)
{
    s_rec_t *x = arg;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_pool_t r;
    int rc = tw_record_pool_dec(&up, val, vlen, &r);
    if (rc == 0 && r.name_len <= TW_PROTO_MAX_NAME) {
        tw_pool_t *pool = tw_pools_get(&x->b->pools, r.name, r.name_len, 1);
        pool->size = r.size;
        pool->ended = r.ended;
        pool->cancelled = r.cancelled;
        pool->next_dseq = r.next_dseq;
        pool->locked = r.locked;
        pool->closed = r.closed;
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "pools", key, klen) : 0;
}

static int
s_rec_group(const void *key, size_t klen, const void *val, size_t vlen,
            void *arg)
{
    s_rec_t *x = arg;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_group_t r;
    int rc = tw_record_group_dec(&up, val, vlen, &r);
    if (rc == 0 && r.pool_len && r.pool_len <= TW_PROTO_MAX_NAME &&
        r.name_len <= TW_PROTO_MAX_NAME) {
        tw_pool_t *pool = tw_pools_get(&x->b->pools, r.pool, r.pool_len, 1);
        tw_group_t *g = tw_pools_group(&x->b->pools, pool, r.name,
                                       r.name_len, 1);
        g->limit = r.limit;
        g->calls = r.calls;
        g->admitted = r.admitted;
        g->ended = r.ended;
        g->cancelled = r.cancelled;
        g->full = r.full ? TW_FULL_REJECT : TW_FULL_QUEUE;
        g->before_lock = r.before_lock;
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "groups", key, klen) : 0;
}

/* Loop time of a stored wall time. */
static uint64_t
s_loop_ms(const s_rec_t *x, uint64_t wall)
{
    if (wall >= x->now_wall) {
        return x->now_loop + (wall - x->now_wall);
    }
    uint64_t ago = x->now_wall - wall;
    return ago < x->now_loop ? x->now_loop - ago : 0;
}

/* A task from its record, registered under its own id, with its pool,
 * groups, handler, client and dedup entries. */
static tw_task_t *
s_make_task(s_rec_t *x, const tw_record_task_t *r)
{
    tw_broker_t *b = x->b;
    b->tasks.next_id = r->id;
    tw_task_t *t = tw_tasks_create(&b->tasks, r->data, r->data_len,
                                   s_loop_ms(x, r->t_wall));
    if (r->id > x->max_id) {
        x->max_id = r->id;
    }
    t->seq = r->seq;
    t->ep = r->ep;
    t->shash = (uint32_t)r->shash;
    t->worker = 0;
    t->priority = r->priority > INT32_MAX   ? INT32_MAX
                  : r->priority < INT32_MIN ? INT32_MIN
                                            : (int32_t)r->priority;
    t->timeout_ms = r->timeout_ms;
    t->retries = r->retries;
    t->attempt = r->attempt;
    t->sub_wall = r->sub_wall ? r->sub_wall : r->t_wall;
    t->run_wall = r->run_wall;
    if (r->retried || r->runs_len) {
        tw_task_more_t *m = tw_tasks_more(t);
        m->retried = r->retried;
        m->runs_base = r->runs_base;
        if (r->runs_len &&
            tw_attempts_decode(&m->runs, r->runs, r->runs_len) != 0) {
            tw_warn("broker.store", "task %llu: its stored runs do not "
                    "read back; its record lists the runs read so far",
                    (unsigned long long)r->id);
        }
    }
    t->cancel_requested = r->cancel;
    t->due_ms = r->due_wall ? s_loop_ms(x, r->due_wall) : 0;
    t->handler = (uint32_t)tw_registry_handler(
        &b->reg, r->handler,
        r->handler_len > TW_PROTO_MAX_NAME ? TW_PROTO_MAX_NAME
                                           : r->handler_len,
        1);
    if (r->error) {
        t->error = tw_strndup(r->error, r->error_len);
    }
    const char *pl = r->pool_len ? r->pool : "default";
    size_t pll = r->pool_len ? r->pool_len : 7;
    if (pll > TW_PROTO_MAX_NAME) {
        pll = TW_PROTO_MAX_NAME;
    }
    tw_pool_t *pool = tw_pools_get(&b->pools, pl, pll, 1);
    t->pool = pool->id;
    if (r->gobj && r->ngroups) {
        t->groups = tw_malloc(r->ngroups * sizeof *t->groups);
        for (size_t i = 0; i < r->ngroups; i++) {
            const msgpack_object *o = &r->gobj->via.array.ptr[i];
            size_t gl = o->via.str.size > TW_PROTO_MAX_NAME
                            ? TW_PROTO_MAX_NAME
                            : o->via.str.size;
            tw_group_t *g = tw_pools_group(&b->pools, pool, o->via.str.ptr,
                                           gl, 1);
            t->groups[t->ngroups++] = g->id;
            tw_group_add_id(g, t->id);
        }
    }
    if (r->key && r->key_len && r->key_len <= TW_PROTO_MAX_NAME) {
        t->key = tw_strndup(r->key, r->key_len);
        t->key_len = (uint16_t)r->key_len;
        tw_strmap_put(&pool->dedup, t->key, t->key_len,
                      (void *)(uintptr_t)t->id);
    }
    if (r->ident_len) {
        tw_bclient_t *c = tw_clients_touch(&b->clients, r->ident,
                                           r->ident_len, x->now_loop);
        t->client = c->id;
        /* The submission rings are filled once every record is in, sized
         * by each client's count (s_fill_dedup). */
        uint64_t n = (uint64_t)(uintptr_t)tw_idmap_get(&x->per_client, c->id);
        tw_idmap_put(&x->per_client, c->id, (void *)(uintptr_t)(n + 1));
    }
    return t;
}

/* One record of "tasks": an outcome to keep (or drop, past its TTL), or
 * a pending or running task to queue or hold. */
static int
s_rec_any(const void *key, size_t klen, const void *val, size_t vlen,
          void *arg)
{
    s_rec_t *x = arg;
    tw_broker_t *b = x->b;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_task_t r;
    int rc = tw_record_task_dec(&up, val, vlen, &r);
    int blocked = rc == 0 && r.state == TW_ST_BLOCKED;
    if (rc == 0 && !tw_record_task_state_ok(&r)) {
        rc = TW_EPROTO;
    }
    int failed = rc == 0 && r.state != TW_ST_OK &&
                 r.state != TW_ST_CANCELLED && r.state <= TW_ST_LOST;
    uint64_t ttl = (uint64_t)(failed ? b->cfg->failed_ttl
                                     : b->cfg->result_ttl) * 1000;
    if (rc != 0) {
        /* reported below */
    } else if (r.state <= TW_ST_LOST && r.t_wall + ttl <= x->now_wall) {
        if (x->nexpired == x->capexpired) {
            x->capexpired = x->capexpired ? x->capexpired * 2 : 256;
            x->expired = tw_realloc(x->expired,
                                    x->capexpired * sizeof *x->expired);
        }
        x->expired[x->nexpired++] = r.id;
    } else if (r.state <= TW_ST_LOST) {
        const void *res = r.data;
        size_t rlen = r.data_len;
        r.data = NULL;
        r.data_len = 0;
        tw_task_t *t = s_make_task(x, &r);
        tw_free(t->error);
        t->error = NULL;
        tw_tasks_end(&b->tasks, t, r.state, res, rlen, r.error,
                     r.error_len, s_loop_ms(x, r.t_wall));
        t->end_wall = r.t_wall;
        if (r.args_len) {
            /* The arguments its record kept (tw_tasks_end had none). */
            tw_task_more_t *m = tw_tasks_more(t);
            m->args = tw_malloc(r.args_len);
            memcpy(m->args, r.args, r.args_len);
            m->args_len = (uint32_t)r.args_len;
            m->args_bytes = r.args_bytes;
            m->preview = r.preview;
            m->counted = r.state != TW_ST_OK;
            if (m->counted) {
                b->tasks.payload_bytes += r.args_len;
            }
        }
        t->worker = r.worker;
        t->sflags |= TW_TASK_STORED;
        x->p->recovered_results++;
    } else {
        tw_task_t *t = s_make_task(x, &r);
        t->sflags |= TW_TASK_STORED;
        tw_bclient_t *c = t->client ? tw_clients_get(&b->clients, t->client)
                                    : NULL;
        if (c) {
            c->outstanding++;
        }
        /* Pending or running: the caller queues or holds it (persist.h,
         * tw__persist_open). Blocked: held by the dependency engine as
         * waiting for every parent, until the caller looks at how they
         * ended (flow.h, tw__flow_recover_blocked). */
        t->state = r.state;
        if (blocked) {
            size_t n = r.after_len / 8;
            uint64_t *par = tw_malloc(n * sizeof *par);
            uint8_t *st = tw_malloc(n);
            for (size_t i = 0; i < n; i++) {
                par[i] = tw_record_key_id((const char *)r.after + 8 * i, 8);
                st[i] = TW_ST_BLOCKED;
            }
            tw_deps_decision_t dec;
            if (tw_deps_add(b->deps, t->id, par, st, n, r.after_mode,
                            r.after_wr, &dec, NULL) != 0) {
                t->state = TW_ST_PENDING; /* names itself: run it */
            }
            tw_free(par);
            tw_free(st);
        }
        t->sub_wall = r.t_wall;
        x->p->recovered_tasks++;
        x->p->recovered_running += r.state == TW_ST_RUNNING;
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "tasks", key, klen) : 0;
}

static int
s_rec_station(const void *key, size_t klen, const void *val, size_t vlen,
              void *arg)
{
    s_rec_t *x = arg;
    tw_broker_t *b = x->b;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_record_station_t r;
    int rc = tw_record_station_dec(&up, val, vlen, &r);
    if (rc == 0 && (r.sid_len > TW_PROTO_MAX_NAME ||
                    r.handler_len > TW_PROTO_MAX_NAME ||
                    r.state > TW_SS_CANCELLED)) {
        rc = TW_EPROTO;
    }
    tw_station_t *st = NULL;
    if (rc == 0) {
        st = tw_stations_add(&b->stations, r.sid, r.sid_len, r.args,
                             r.args_len);
    }
    if (st) {
        st->handler = (uint32_t)tw_registry_handler(&b->reg, r.handler,
                                                    r.handler_len, 1);
        if (r.ck) {
            tw_station_set_checkpoint(st, r.ck, r.ck_len);
        }
        st->next = r.next;
        st->wanted = r.wanted;
        st->restart = r.restart;
        st->placement = (tw_placement_t)r.placement;
        st->interval_ms = r.interval_ms;
        st->timeout_ms = r.timeout_ms;
        st->restarts = r.restarts;
        st->restart_base_ms = (uint32_t)b->cfg->restart_base;
        /* Workers may still hold the old epochs: start far above. */
        st->epoch = r.epoch + S_STATION_JUMP;
        st->iterations = r.iterations;
        if (r.code) {
            st->code = tw_strndup(r.code, r.code_len);
        }
        if (r.last_error) {
            st->last_error = tw_strndup(r.last_error, r.last_error_len);
        }
        if (r.tobj) {
            const msgpack_object *tags = r.tobj;
            st->ntags = 2 * (size_t)tags->via.map.size;
            st->tags = tw_calloc(st->ntags, sizeof *st->tags);
            for (uint32_t i = 0; i < tags->via.map.size; i++) {
                const msgpack_object_kv *kv = &tags->via.map.ptr[i];
                st->tags[2 * i] = tw_strndup(kv->key.via.str.ptr,
                                             kv->key.via.str.size);
                st->tags[2 * i + 1] = tw_strndup(kv->val.via.str.ptr,
                                                 kv->val.via.str.size);
            }
        }
        if (r.state >= TW_SS_STOPPED) {
            st->state = r.state; /* ended: stays ended */
            st->reason = NULL;
        } else {
            /* The caller queues it for placement (tw__persist_open). */
            st->state = TW_SS_PENDING;
            st->reason = "recovered: waiting for a worker";
        }
        x->p->recovered_stations++;
        s_mark_sid(x->p, st->sid, st->sid_len); /* the new epoch */
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "stations", key, klen) : 0;
}

/* A task a schedule's record names is still live (schedtab.h). */
static int
s_sched_alive(uint64_t id, void *arg)
{
    tw_broker_t *b = arg;
    const tw_task_t *t = tw_tasks_get(&b->tasks, id);
    return t && (t->state == TW_ST_PENDING || t->state == TW_ST_RUNNING ||
                 t->state == TW_ST_BLOCKED);
}

int
tw__persist_open(tw_broker_t *b, char *why, size_t wlen)
{
    const tw_broker_cfg_t *cfg = b->cfg;
    if (!cfg->data || !*cfg->data) {
        return 0;
    }
    int policy = tw_fsync_parse(cfg->fsync);
    tw_store_t *store;
    /* LMDB's map is twice --data-size: admission keeps the data below
     * --data-size (room.h), and copy-on-write needs room beyond it for
     * the pages a commit replaces. */
    int rc = tw_store_open(&store, cfg->data,
                           (uint64_t)cfg->data_size << 21, policy,
                           cfg->verify_store ? TW_STORE_VERIFY : 0, why,
                           wlen);
    if (rc != 0) {
        return rc;
    }
    tw_persist_t *p = tw_calloc(1, sizeof *p);
    p->store = store;
    tw_idmap_init(&p->dgroups);
    tw_strmap_init(&p->ckset);
    tw_enc_init(&p->enc);
    b->persist = p;
    uint64_t now_wall = tw_wall_ms(), now_loop = uv_now(b->loop);
    p->wall_off = (int64_t)now_wall - (int64_t)now_loop;
    why[0] = '\0';
    s_rec_t x = {b, p, now_wall, now_loop, 0, why, wlen, NULL, 0, 0, {0}};
    tw_idmap_init(&x.per_client);
    uint64_t next_id, next_ep;
    rc = tw_store_counters_get(store, &next_id, &next_ep);
    if (rc != 0) {
        snprintf(why, wlen, "%s: the counters record is damaged",
                 cfg->data);
        return rc;
    }
    p->recovering = 1; /* until tw__persist_start */
    rc = tw_store_each(store, TW_DB_POOLS, s_rec_pool, &x);
    if (rc == 0) {
        rc = tw_store_each(store, TW_DB_GROUPS, s_rec_group, &x);
    }
    if (rc == 0) {
        rc = tw_store_each(store, TW_DB_TASKS, s_rec_any, &x);
    }
    if (rc == 0) {
        rc = tw_store_each(store, TW_DB_STATIONS, s_rec_station, &x);
    }
    size_t nsched = 0;
    if (rc == 0) {
        rc = tw_schedtab_load(&b->sched, store, NULL, s_sched_alive, b,
                              &nsched, why, wlen);
    }
    tw_idmap_each(&b->tasks.by_id, s_fill_dedup_cb, &x);
    tw_idmap_free(&x.per_client);
    if (rc != 0) {
        s_clean(p); /* a refused store is never written */
        tw_free(x.expired);
        if (!why[0]) {
            snprintf(why, wlen, "%s", tw_store_error(store));
        }
        return rc;
    }
    b->tasks.next_id = next_id > x.max_id ? next_id : x.max_id + 1;
    if (next_ep > b->next_ep) {
        b->next_ep = next_ep;
    }
    p->id_reserved = next_id;
    p->ep_reserved = next_ep;
    /* Results that expired while the broker was down go now. */
    for (size_t i = 0; i < x.nexpired; i++) {
        s_mark_freed(p, x.expired[i], S_DEL_TASK);
    }
    tw_free(x.expired);
    p->room.data_bytes = (uint64_t)cfg->data_size << 20;
    tw_store_use(store, &p->room.use);
    p->sealed_id = b->tasks.next_id;
    return 0;
}

void
tw__persist_start(tw_broker_t *b)
{
    const tw_broker_cfg_t *cfg = b->cfg;
    tw_persist_t *p = b->persist;
    if (!p) {
        return;
    }
    p->recovering = 0;
    tw_store_t *store = p->store;
    int policy = tw_store_fsync_policy(store);
    if (policy == TW_FSYNC_EVERYSEC) {
        uv_timer_init(b->loop, &p->sync_timer);
        p->sync_timer.data = b;
        uv_timer_start(&p->sync_timer, s_on_sync_timer, 1000, 1000);
        p->timer_on = 1;
    }
    const tw_verify_stats_t *vs = tw_store_verified(store);
    tw_notice("store.verify",
              "%s: %s stop; %llu bytes, every record checked%s",
              cfg->data, tw_store_was_clean(store) ? "clean" : "unclean",
              (unsigned long long)vs->bytes,
              vs->deep ? " and every page accounted for" : "");
    tw_notice("store.open",
              "%s (fsync %s, map %lld MiB): recovered %llu tasks (%zu "
              "running, held %llu ms for their workers), %llu results, "
              "%llu stations, %zu pools; next id %llu",
              cfg->data, tw_fsync_name(policy), cfg->data_size,
              (unsigned long long)p->recovered_tasks,
              (size_t)p->recovered_running,
              (unsigned long long)(2 * cfg->liveness * cfg->heartbeat),
              (unsigned long long)p->recovered_results,
              (unsigned long long)p->recovered_stations, b->pools.len,
              (unsigned long long)b->tasks.next_id);
    /* From here on the store is written: until a clean close says
     * otherwise, the next start checks it deeply. */
    if (tw_store_mark_running(store) != 0) {
        /* Emptied at least: the next start checks deeply all the same. */
        tw_warn("store.open", "%s: cannot write broker.lock: %s",
                cfg->data, strerror(errno));
    }
    /* From now on the writer thread does the writing, the first batch
     * (expired results, new station epochs, the counters) included: a
     * store that cannot be written at start is retried like any other. */
    p->writer = tw_writer_new(b->loop, store, s_batch_done, b);
    tw__persist_commit(b);
}

static void
s_closed(uv_handle_t *h)
{
    (void)h;
}

void
tw__persist_stop(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return;
    }
    s_flush_ckset(p);
    tw__persist_commit(b);
    if (p->writer) {
        /* Waits, and sends what the batches held; a store that still
         * cannot be written after the grace period leaves the rest
         * unwritten, and their submitters are told so (s_batch_done). */
        s_log_writer(b, p);
        p->commit_errors += tw_writer_errors(p->writer);
        tw_writer_stop(&p->writer, S_STOP_GRACE_MS);
        /* Stopping: what the passive has not acknowledged is written
         * here, and leaves as after a single broker's commit. */
        tw__persist_release(b, UINT64_MAX);
        s_release_replies(b, p, 1);
    }
    if (p->timer_on) {
        p->timer_on = 0;
        uv_close((uv_handle_t *)&p->sync_timer, s_closed);
    }
}

void
tw__persist_destroy(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return;
    }
    s_flush_ckset(p);
    tw__persist_commit(b);
    tw_notice("store.close",
              "%s: %llu commits (%llu failed), %llu background syncs, %llu "
              "outcomes collected; synced and closed",
              tw_store_path(p->store), (unsigned long long)p->commits,
              (unsigned long long)p->commit_errors,
              (unsigned long long)p->syncs,
              (unsigned long long)p->collected);
    tw_store_close(&p->store);
    s_clean(p);
    tw_idmap_free(&p->dgroups);
    s_flush_ckset(p);
    s_clean(p);
    tw_strmap_free(&p->ckset);
    tw_free(p->dtasks);
    tw_free(p->dfreed);
    tw_free(p->dsids);
    tw_free(p->dsid_lens);
    tw_free(p->dpools);
    for (size_t i = 0; i < p->nafter; i++) {
        for (int k = 0; k < 3; k++) {
            zmq_msg_close(&p->after[i].f[k]);
        }
    }
    tw_free(p->after);
    tw_free(p->spare);
    tw_enc_free(&p->enc);
    tw_free(p);
    b->persist = NULL;
}
