/*  broker/persist.c - dirty records, the per-iteration commit, the sync
 *  job, collection and recovery (see persist.h).
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
#include "broker/internal.h"
#include "broker/store.h"
#include "broker/verify.h"
#include "broker/writer.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define S_GC_PER_TICK 20000u /* ended tasks collected per second at most */
#define S_GC_PER_TURN 4096u  /* and per commit beyond --max-results */
#define S_STATION_JUMP (1u << 20) /* station epochs after a recovery */

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
    uint64_t pending_bytes; /* admitted since the last commit */
    uint64_t used_bytes;    /* after the last commit */
    int recovering;
    uv_timer_t sync_timer;
    uv_work_t sync_work;
    int sync_busy, sync_wanted, timer_on;
    uv_timer_t grace_timer;
    int grace_on;
    uv_prepare_t prepare; /* commit, then ACKs and RESULTs */
    int prepare_init, prepare_on;
    uint64_t *held;       /* ids recovered as running */
    size_t nheld;
    tw_enc_t enc;
    tw_writer_t *writer;  /* NULL: write on the loop (recovery, stop) */
    tw_wbatch_t *cur;     /* the batch being encoded */
    uint64_t last_cid;           /* s_put_task's client cache */
    const tw_bclient_t *last_client;
    uint64_t commits, commit_errors, syncs, recovered_tasks,
        recovered_results, recovered_stations, collected;
    uint64_t errors_seen; /* writer errors already logged */
    uint64_t commit_ns, timed; /* commit latency: sum and count */
} tw_persist_t;

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
    /* An outcome needs no epoch, due time or options any more. */
    int live = t->state > TW_ST_LOST;
    tw_store_task_t r = {
        .id = t->id,
        .seq = t->seq,
        .ep = live ? t->ep : 0,
        .shash = t->shash,
        .worker = t->worker,
        .t_wall = (uint64_t)((int64_t)t->t_ms + p->wall_off),
        .due_wall = live && t->due_ms
                        ? (uint64_t)((int64_t)t->due_ms + p->wall_off)
                        : 0,
        .priority = live ? t->priority : 0,
        .timeout_ms = live ? t->timeout_ms : 0,
        .retries = live ? t->retries : 0,
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
    };
    tw_store_task_enc(&p->enc, &r);
    unsigned char key[8];
    tw_store_id_key(t->id, key);
    tw_wbatch_put(p->cur, TW_DB_TASKS, key, 8, p->enc.sb.data,
                  p->enc.sb.size, !(t->sflags & TW_TASK_STORED));
    return 0;
}

static int
s_put_station(tw_broker_t *b, tw_persist_t *p, const tw_station_t *st)
{
    const tw_handler_t *h = &b->reg.handlers[st->handler];
    tw_store_station_t r = {
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
    tw_store_station_enc(&p->enc, &r);
    tw_wbatch_put(p->cur, TW_DB_STATIONS, st->sid, st->sid_len,
                  p->enc.sb.data, p->enc.sb.size, 0);
    return 0;
}

static int
s_put_group(tw_persist_t *p, const tw_pool_t *pool, const tw_group_t *g)
{
    tw_store_group_t r = {
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
    tw_store_group_enc(&p->enc, &r);
    char key[2 * TW_PROTO_MAX_NAME + 2];
    size_t klen = tw_store_group_key(key, pool->name, pool->name_len,
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
    tw_store_pool_t r = {
        .name = pool->name,
        .name_len = pool->name_len,
        .size = pool->size,
        .ended = pool->ended,
        .cancelled = pool->cancelled,
        .next_dseq = pool->next_dseq,
        .locked = (uint8_t)pool->locked,
        .closed = (uint8_t)pool->closed,
    };
    tw_store_pool_enc(&p->enc, &r);
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
    uint64_t ttl = (uint64_t)b->cfg->result_ttl * 1000;
    size_t lim = (size_t)b->cfg->max_results;
    size_t n = 0;
    tw_task_t *t;
    while (n < max && (t = b->tasks.ended.head) &&
           (b->tasks.ended.len > lim || now_ms - t->t_ms >= ttl)) {
        tw_tasks_forget(&b->tasks, t);
        n++;
    }
    if (b->persist) {
        b->persist->collected += n;
    }
    return n;
}

/* ---- commit ----------------------------------------------------------- */

/* Encode every dirty record into p->cur, and mark the tasks written: the
 * batch reaches the store in order, whatever happens to later ones. */
static void
s_write(tw_broker_t *b, tw_persist_t *p)
{
    p->last_cid = 0;
    p->last_client = NULL;
    for (size_t i = 0; i < p->ndfreed; i++) {
        unsigned char key[8];
        tw_store_id_key(p->dfreed[i] >> 2, key);
        if (p->dfreed[i] & S_DEL_TASK) {
            tw_wbatch_del(p->cur, TW_DB_TASKS, key, 8);
        }
    }
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
    if (b->tasks.next_id + TW_STORE_RESERVE / 2 > p->id_reserved ||
        b->next_ep + TW_STORE_RESERVE / 2 > p->ep_reserved) {
        p->id_reserved = b->tasks.next_id + TW_STORE_RESERVE;
        p->ep_reserved = b->next_ep + TW_STORE_RESERVE;
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 2);
        tw_enc_cstr(&e, "id");
        tw_enc_uint(&e, p->id_reserved);
        tw_enc_cstr(&e, "ep");
        tw_enc_uint(&e, p->ep_reserved);
        tw_wbatch_put(p->cur, TW_DB_META, "counters", 8, e.sb.data,
                      e.sb.size, 0);
        tw_enc_free(&e);
    }
}

/* Forget the dirty marks (after a commit, or when giving up). */
static void
s_clean(tw_persist_t *p)
{
    p->ndtasks = 0;
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
            zmq_msg_t f[3];
            zmq_msg_init_size(&f[0], c->ident_len);
            memcpy(zmq_msg_data(&f[0]), c->ident, c->ident_len);
            tw_batch_frames(batches[k], cmds[k], &f[1]);
            tw_wbatch_hold(wb, f);
        }
    }
    cs->ndirty = 0;
}

/* A batch is in the store (writer.h): its messages may leave. */
static void
s_batch_done(tw_wbatch_t *wb, void *arg)
{
    tw_broker_t *b = arg;
    tw_persist_t *p = b->persist;
    if (wb->rc != 0) {
        /* Never written (the broker is stopping with a full store): its
         * ACKs must not say "recorded". The clients resend. */
        tw_err("store.commit", "%zu records could not be written (%s); "
               "their %zu acknowledgements are withheld",
               wb->nops, tw_strerror(wb->rc), wb->nmsgs / 3);
        if (p) {
            p->commit_errors++;
        }
        tw_wbatch_free(wb);
        return;
    }
    for (size_t i = 0; i + 2 < wb->nmsgs; i += 3) {
        tw__broker_send_built(b, &b->fzw, &wb->msgs[i]);
    }
    wb->nmsgs = 0;
    if (p) {
        p->used_bytes = wb->used_bytes;
        if (wb->nops > 0) {
            p->commit_ns += uv_hrtime() - wb->sealed_ns;
            p->timed++;
        }
        p->commits += wb->nops > 0;
        p->sync_wanted = 1;
    }
    tw_wbatch_free(wb);
}

int
tw__persist_commit(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (!p) {
        return 0;
    }
    if (b->tasks.ended.len > (size_t)b->cfg->max_results) {
        s_gc(b, uv_now(b->loop), S_GC_PER_TURN);
    }
    int dirty = p->ndtasks || p->ndfreed || p->ndsids || p->any_pool;
    /* Client messages wait for a batch only if they must: something of
     * theirs is dirty, or an earlier batch they must not overtake is
     * still in flight. */
    int held = p->writer && b->clients.ndirty && tw_writer_busy(p->writer);
    if (!dirty && !held) {
        return 0;
    }
    tw_wbatch_t *wb = tw_wbatch_new();
    p->cur = wb;
    if (dirty) {
        s_write(b, p);
        s_clean(p);
    }
    p->cur = NULL;
    p->pending_bytes = 0;
    wb->sealed_ns = uv_hrtime();
    if (p->writer) {
        /* ACKs and RESULTs of this iteration wait for the batch. */
        s_seal_clients(b, wb);
        tw_writer_submit(p->writer, wb);
        return 0;
    }
    int rc = tw_wbatch_apply(wb, p->store);
    wb->rc = rc;
    s_batch_done(wb, b);
    return rc;
}

void
tw__persist_flush(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (p && p->writer) {
        tw__persist_commit(b);
        /* Bounded: a store stuck full must not freeze the loop (the reply
         * may then overtake ACKs that are held anyway). */
        tw_writer_wait(p->writer, 1000);
    }
}

static void
s_on_prepare(uv_prepare_t *h)
{
    tw_broker_t *b = h->data;
    tw_persist_t *p = b->persist;
    p->prepare_on = 0;
    uv_prepare_stop(h);
    tw__persist_commit(b);
    if (b->clients.ndirty) {
        /* Nothing to wait for (no store change, no batch in flight). */
        tw__broker_flush_clients(b);
    }
}

int
tw__persist_turn_end(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    if (!p || !p->prepare_init || b->closing) {
        tw__persist_commit(b);
        return 0;
    }
    if (!p->prepare_on) {
        p->prepare_on = 1;
        uv_prepare_start(&p->prepare, s_on_prepare);
    }
    return 1;
}

int
tw__persist_admit(tw_broker_t *b, size_t bytes, char *why, size_t wlen)
{
    tw_persist_t *p = b->persist;
    uint64_t map = tw_store_map_bytes(p->store);
    /* Keep an eighth of the map (at least 1 MiB) for the records a turn
     * writes besides new tasks: results, stations, deletions. */
    uint64_t headroom = map / 8 > (1u << 20) ? map / 8 : (1u << 20);
    p->pending_bytes += bytes + 160;
    if (p->used_bytes + p->pending_bytes + headroom > map) {
        p->pending_bytes -= bytes + 160;
        snprintf(why, wlen,
                 "data store full (%s: %llu of %llu bytes used; raise "
                 "--data-size or let results expire)",
                 tw_store_path(p->store),
                 (unsigned long long)p->used_bytes, (unsigned long long)map);
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
        tw_tasks_gc(&b->tasks, now_ms, (uint64_t)b->cfg->result_ttl * 1000,
                    (size_t)b->cfg->max_results);
        return;
    }
    tw_persist_t *p = b->persist;
    s_gc(b, now_ms, S_GC_PER_TICK);
    s_flush_ckset(p);
    uint64_t errors = p->writer ? tw_writer_errors(p->writer) : 0;
    if (errors > p->errors_seen) {
        p->errors_seen = errors;
        tw_err("store.commit",
               "%s: the writer cannot write (%llu attempts failed so far: "
               "store full?); ACKs wait, new submissions are refused",
               tw_store_path(p->store), (unsigned long long)errors);
        p->used_bytes = tw_store_map_bytes(p->store);
    }
}

/* ---- status ----------------------------------------------------------- */

size_t
tw__persist_status_count(tw_broker_t *b)
{
    return 3 + (b->persist ? 4 : 0);
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
        tw_enc_uint(e, p->used_bytes);
        tw_enc_cstr(e, "store_commits");
        tw_enc_uint(e, p->commits);
        tw_enc_cstr(e, "store_errors");
        tw_enc_uint(e, p->commit_errors +
                           (p->writer ? tw_writer_errors(p->writer) : 0));
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
    out->used_bytes = p->used_bytes;
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
    tw_store_pool_t r;
    int rc = tw_store_pool_dec(&up, val, vlen, &r);
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
    tw_store_group_t r;
    int rc = tw_store_group_dec(&up, val, vlen, &r);
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
s_make_task(s_rec_t *x, const tw_store_task_t *r)
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
    tw_store_task_t r;
    int rc = tw_store_task_dec(&up, val, vlen, &r);
    if (rc == 0 && r.state > TW_ST_RUNNING) {
        rc = TW_EPROTO;
    }
    uint64_t ttl = (uint64_t)b->cfg->result_ttl * 1000;
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
        if (r.state == TW_ST_RUNNING) {
            tw__lease_hold(b, t);
            if (x->p->nheld % 256 == 0) {
                x->p->held = tw_realloc(x->p->held, (x->p->nheld + 256) *
                                                        sizeof *x->p->held);
            }
            x->p->held[x->p->nheld++] = t->id;
        } else {
            tw__broker_enqueue(b, t);
        }
        x->p->recovered_tasks++;
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "tasks", key, klen) : 0;
}

/* Queue a recovered station for placement (as dispatch_station.c does for
 * a new one). */
static void
s_unplace(tw_broker_t *b, tw_station_t *st)
{
    st->state = TW_SS_PENDING;
    st->reason = "recovered: waiting for a worker";
    tw__broker_unplace(b, st);
}

static int
s_rec_station(const void *key, size_t klen, const void *val, size_t vlen,
              void *arg)
{
    s_rec_t *x = arg;
    tw_broker_t *b = x->b;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    tw_store_station_t r;
    int rc = tw_store_station_dec(&up, val, vlen, &r);
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
            s_unplace(b, st);
        }
        x->p->recovered_stations++;
        s_mark_sid(x->p, st->sid, st->sid_len); /* the new epoch */
    }
    msgpack_unpacked_destroy(&up);
    return rc ? s_bad(x, "stations", key, klen) : 0;
}

static void
s_on_grace(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    tw__lease_expire(b);
    tw__broker_end_of_turn(b);
}

void
tw__lease_expire(tw_broker_t *b)
{
    tw_persist_t *p = b->persist;
    size_t requeued = 0;
    for (size_t i = 0; p && i < p->nheld; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, p->held[i]);
        if (!t || t->state != TW_ST_RUNNING || t->worker != 0) {
            continue; /* adopted, or ended meanwhile */
        }
        /* As after a worker loss (drop_worker). */
        requeued += tw__broker_orphan_task(b, t) == TW_ST_PENDING;
    }
    if (p && p->nheld) {
        tw_notice("store.grace",
                  "grace period over: %zu of %zu recovered running tasks "
                  "were not re-announced and are queued again",
                  requeued, p->nheld);
        tw_free(p->held);
        p->held = NULL;
        p->nheld = 0;
    }
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
    int rc = tw_store_open(&store, cfg->data,
                           (uint64_t)cfg->data_size << 20, policy,
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
    p->recovering = 1;
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
    p->recovering = 0;
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
    p->used_bytes = tw_store_used_bytes(store);
    if (policy == TW_FSYNC_EVERYSEC) {
        uv_timer_init(b->loop, &p->sync_timer);
        p->sync_timer.data = b;
        uv_timer_start(&p->sync_timer, s_on_sync_timer, 1000, 1000);
        p->timer_on = 1;
    }
    uv_timer_init(b->loop, &p->grace_timer);
    p->grace_timer.data = b;
    p->grace_on = 1;
    uv_prepare_init(b->loop, &p->prepare);
    p->prepare.data = b;
    p->prepare_init = 1;
    if (p->nheld) {
        uint64_t grace = 2 * (uint64_t)cfg->liveness *
                         (uint64_t)cfg->heartbeat;
        uv_timer_start(&p->grace_timer, s_on_grace, grace, 0);
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
              (unsigned long long)p->recovered_tasks, p->nheld,
              (unsigned long long)(2 * cfg->liveness * cfg->heartbeat),
              (unsigned long long)p->recovered_results,
              (unsigned long long)p->recovered_stations, b->pools.len,
              (unsigned long long)b->tasks.next_id);
    /* From here on the store is written: until a clean close says
     * otherwise, the next start checks it deeply. */
    if (tw_store_mark_running(store) != 0) {
        snprintf(why, wlen, "%s: cannot write broker.lock: %s", cfg->data,
                 strerror(errno));
        s_clean(p);
        return TW_EIO;
    }
    tw__persist_commit(b);
    /* From now on the writer thread does the writing. */
    p->writer = tw_writer_new(b->loop, store, s_batch_done, b);
    return 0;
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
        p->commit_errors += tw_writer_errors(p->writer);
        tw_writer_stop(&p->writer); /* waits, sends what it held */
    }
    if (p->timer_on) {
        p->timer_on = 0;
        uv_close((uv_handle_t *)&p->sync_timer, s_closed);
    }
    if (p->grace_on) {
        p->grace_on = 0;
        uv_close((uv_handle_t *)&p->grace_timer, s_closed);
    }
    if (p->prepare_init) {
        p->prepare_init = 0;
        p->prepare_on = 0;
        uv_close((uv_handle_t *)&p->prepare, s_closed);
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
    tw_free(p->held);
    tw_enc_free(&p->enc);
    tw_free(p);
    b->persist = NULL;
}
