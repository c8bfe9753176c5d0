/*  broker/dispatch.c - one handler per protocol command.
 *
 *  Each incoming message is checked in the same order before any state
 *  changes (broker/gate.h): frame count, header (signature, version,
 *  command), body (types, sizes, required fields: all in tw_msg_decode),
 *  text, then the direction (a command a peer of this socket may send). A
 *  message that fails any check is answered with ERROR and otherwise
 *  ignored: it changes nothing. Then s_on_<command>() acts; each is small
 *  and named after its command, like the actions of a state machine. The
 *  per-peer state table lives in proto/PROTOCOL.md.
 */
#include "broker/internal.h"
#include "broker/scale.h"
#include "broker/gate.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/mpwalk.h"

#include <string.h>

#define S_MAX_CREDIT (1u << 20)

/* ---- client commands -------------------------------------------------- */

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

int
tw__broker_handler_known(tw_broker_t *b, const char *h, size_t hlen,
                         char *why, size_t wlen)
{
    int idx = hlen ? tw_registry_handler(&b->reg, h, hlen, 0) : -1;
    /* Just restarted: its workers may not be back yet. With a store,
     * clients resend at once after a restart (PROTOCOL.md 5.19), so the
     * grace lasts at least as long as running tasks are held for their
     * workers. */
    uint64_t grace = (uint64_t)b->cfg->handler_grace * 1000;
    uint64_t held = b->resumed ? 2 * (uint64_t)b->cfg->liveness *
                                     (uint64_t)b->cfg->heartbeat
                               : 0;
    if (idx < 0 && hlen &&
        uv_now(b->loop) - b->start_ms < (grace > held ? grace : held)) {
        idx = tw_registry_handler(&b->reg, h, hlen, 1);
    }
    if (idx < 0) {
        snprintf(why, wlen, "unknown handler '%.*s': no worker has offered it",
                 (int)hlen, h ? h : "");
        return TW_EHANDLER;
    }
    return idx;
}

/* Decide whether a SUBMIT item may enter, in S54's order. Returns 0, or
 * an error code with the reason in `why`. Nothing changes on refusal. */
static int
s_admit(tw_broker_t *b, const tw_item_t *it, int *hidx, tw_pool_t **pool,
        char *why, size_t wlen)
{
    size_t hlen, alen, plen;
    const char *h = tw_item_str(it, TW_I_H, &hlen);
    const void *a = tw_item_bin(it, TW_I_A, &alen);
    *hidx = tw__broker_handler_known(b, h, hlen, why, wlen);
    if (*hidx < 0) {
        return *hidx;
    }
    const char *pl = tw_item_str(it, TW_I_PL, &plen);
    if (!pl || !plen) {
        pl = "default";
        plen = 7;
    }
    tw_pool_t *p = tw_pools_get(&b->pools, pl, plen, 0);
    if (p && p->closed) {
        snprintf(why, wlen, "pool '%s' is closed", p->name);
        return TW_ECLOSED;
    }
    const msgpack_object *gs = it->f[TW_I_G];
    if (p && p->locked) {
        /* A locked pool still takes tasks for groups that existed before
         * the lock, so a map or apply already feeding goes on (S61). */
        int feeding = 0;
        for (uint32_t i = 0; gs && i < gs->via.array.size && !feeding; i++) {
            const msgpack_object *o = &gs->via.array.ptr[i];
            tw_group_t *g = tw_pools_group(&b->pools, p, o->via.str.ptr,
                                           o->via.str.size, 0);
            feeding = g && g->before_lock;
        }
        if (!feeding) {
            snprintf(why, wlen, "pool '%s' is locked", p->name);
            return TW_ELOCKED;
        }
    }
    for (uint32_t i = 0; p && gs && i < gs->via.array.size; i++) {
        const msgpack_object *o = &gs->via.array.ptr[i];
        tw_group_t *g =
            tw_pools_group(&b->pools, p, o->via.str.ptr, o->via.str.size, 0);
        if (g && tw_group_refuses(g)) {
            snprintf(why, wlen, "group '%s' %s", g->name,
                     g->calls >= 0 && g->admitted >= (uint64_t)g->calls
                         ? "has used up its calls"
                         : "is at its limit");
            tw__broker_limit_reached(b, p, g);
            return TW_ELIMIT;
        }
    }
    if (alen > (uint64_t)b->cfg->max_payload) {
        snprintf(why, wlen, "arguments are %zu bytes; the limit is %lld",
                 alen, b->cfg->max_payload);
        return TW_E2BIG;
    }
    if (alen && !tw_mp_one(a, alen, TW_MP_DEPTH_DECODE)) {
        /* A store never holds arguments a worker could not decode
         * (docs/STORAGE.md, verification). */
        snprintf(why, wlen, "arguments are not one msgpack value");
        return TW_EINVAL;
    }
    if (b->pending >= (uint64_t)b->cfg->max_queue) {
        b->st.overflow++;
        snprintf(why, wlen, "queue full: %zu tasks pending", b->pending);
        return TW_EFULL;
    }
    if (tw__persist_budget(b, alen, why, wlen) != 0) {
        return TW_EFULL;
    }
    if (b->persist && tw__persist_admit(b, alen, why, wlen) != 0) {
        return TW_EFULL;
    }
    *pool = p ? p : tw_pools_get(&b->pools, pl, plen, 1);
    return 0;
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

static void
s_on_submit(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t now = uv_now(b->loop);
    int publish = tw_status_wants(&b->status, "task.submitted");
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t seq = tw_item_uint(it, TW_I_SEQ, 0);
        tw_enc_t *e = tw__broker_client_item(b, c, &c->acks);
        uint64_t sent = tw_dedup_get(&b->dedup, c->id, seq);
        tw_task_t *st = sent ? tw_tasks_get(&b->tasks, sent) : NULL;
        uint32_t shash = 0;
        if (st && (st->client != c->id || st->seq != seq)) {
            st = NULL;
        }
        if (st) {
            size_t hl, al;
            const char *hn = tw_item_str(it, TW_I_H, &hl);
            const void *av = tw_item_bin(it, TW_I_A, &al);
            shash = tw_dedup_item_hash(hn, hl, av, al);
            if (shash != st->shash) {
                st = NULL; /* the seq reused for another submission */
            }
        }
        if (st) {
            /* A resend of an item already recorded (lease.c, dedup.h):
             * the same ACK, nothing enqueued, and the outcome again if
             * it has one. */
            tw_enc_map(e, 2);
            tw_enc_ikey(e, TW_I_SEQ);
            tw_enc_uint(e, seq);
            tw_enc_ikey(e, TW_I_ID);
            tw_enc_uint(e, st->id);
            b->st.deduplicated++;
            if (st->state <= TW_ST_LOST) {
                tw__broker_result_item(
                    b, tw__broker_client_item(b, c, &c->results), st);
            }
            continue;
        }
        if (!shash) {
            size_t hl, al;
            const char *hn = tw_item_str(it, TW_I_H, &hl);
            const void *av = tw_item_bin(it, TW_I_A, &al);
            shash = tw_dedup_item_hash(hn, hl, av, al);
        }
        char why[256];
        int rc = tw_dedup_refused(&b->dedup, c->id, seq, shash);
        if (rc != 0) {
            /* A second copy of a refused item: the same answer, even if
             * room came back in between (dedup.h). */
            snprintf(why, sizeof why, "%s (a resend of seq %llu, which "
                     "was refused)", tw_strerror(rc),
                     (unsigned long long)seq);
            s_ack_error(e, seq, rc, why);
            b->st.deduplicated++;
            c->refused++;
            continue;
        }
        int hidx;
        tw_pool_t *p = NULL;
        rc = s_admit(b, it, &hidx, &p, why, sizeof why);
        if (rc != 0) {
            s_ack_error(e, seq, rc, why);
            tw_dedup_refuse(&b->dedup, c->id, seq, shash, rc);
            b->st.rejected++;
            c->refused++; /* need not wait for the store (persist.c) */
            continue;
        }
        size_t klen;
        const char *key = tw_item_str(it, TW_I_K, &klen);
        if (key && klen) {
            void *known = tw_strmap_get(&p->dedup, key, klen);
            if (known) {
                /* The same key while the first task is known: its id. */
                tw_enc_map(e, 3);
                tw_enc_ikey(e, TW_I_SEQ);
                tw_enc_uint(e, seq);
                tw_enc_ikey(e, TW_I_ID);
                tw_enc_uint(e, (uint64_t)(uintptr_t)known);
                tw_enc_ikey(e, TW_I_DUP);
                tw_enc_uint(e, 1);
                b->st.deduplicated++;
                continue;
            }
        }
        size_t alen;
        const void *a = tw_item_bin(it, TW_I_A, &alen);
        tw_task_t *t = tw_tasks_create(&b->tasks, a, alen, now);
        int64_t pri = tw_item_int(it, TW_I_PRI, 0);
        uint64_t to = tw_item_uint(it, TW_I_TO, 0);
        uint64_t re = tw_item_uint(it, TW_I_RE, 0);
        uint64_t dl = tw_item_uint(it, TW_I_DL, 0);
        t->seq = seq;
        t->client = c->id;
        t->handler = (uint32_t)hidx;
        t->shash = shash;
        t->priority = pri > INT32_MAX   ? INT32_MAX
                      : pri < INT32_MIN ? INT32_MIN
                                        : (int32_t)pri;
        t->timeout_ms = to > UINT32_MAX ? UINT32_MAX : (uint32_t)to;
        t->retries = re > 1000 ? 1000 : (uint16_t)re;
        t->due_ms = dl ? now + dl : 0;
        t->pool = p->id;
        s_join_groups(b, t, p, it->f[TW_I_G]);
        if (key && klen) {
            t->key = tw_strndup(key, klen);
            t->key_len = (uint16_t)klen;
            tw_strmap_put(&p->dedup, t->key, klen,
                          (void *)(uintptr_t)t->id);
        }
        tw_dedup_put(&b->dedup, c->id, seq, t->id, c->outstanding);
        tw__broker_enqueue(b, t);
        tw_pool_add_client(p, c->id);
        c->outstanding++;
        b->st.submitted++;
        tw_enc_map(e, 2);
        tw_enc_ikey(e, TW_I_SEQ);
        tw_enc_uint(e, seq);
        tw_enc_ikey(e, TW_I_ID);
        tw_enc_uint(e, t->id);
        if (publish) {
            tw__broker_task_event(b, t, "task.submitted", NULL);
        }
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
        tw__broker_send(b, &b->fzw, c->ident, c->ident_len, TW_CMD_ACK, &e);
        tw_enc_free(&e);
    }
}

static void
s_on_result(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
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
            tw__broker_result_item(b, e, t);
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
    tw__broker_send(b, &b->fzw, c->ident, c->ident_len, TW_CMD_RESULT,
                    &batch.enc);
    tw_batch_free(&batch);
}

static void
s_cancel_on_worker(tw_broker_t *b, tw_task_t *t)
{
    tw_bworker_t *w = tw_registry_by_id(&b->reg, t->worker);
    if (!w) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_IDS);
    tw_enc_array(&e, 1);
    tw_enc_uint(&e, t->id);
    tw__broker_send(b, &b->bzw, w->ident, w->ident_len, TW_CMD_CANCEL, &e);
    tw_enc_free(&e);
}

int
tw__broker_cancel_task(tw_broker_t *b, tw_task_t *t)
{
    if (t->state == TW_ST_PENDING) {
        tw__broker_unpend(b, t);
        tw__broker_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        return 1;
    }
    if (t->state == TW_ST_RUNNING && !t->cancel_requested) {
        /* Marked at once, so two quick stops pick different tasks. */
        t->cancel_requested = 1;
        TW__PERSIST_TASK(b, t);
        s_cancel_on_worker(b, t);
        return 1;
    }
    return 0;
}

static void
s_on_cancel(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    size_t ol;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    if (op) {
        if (ol == 6 && memcmp(op, "strict", 6) == 0) {
            tw__broker_cancel_strict(b, c, m);
        } else {
            tw__broker_error(b, &b->fzw, c->ident, c->ident_len, TW_EINVAL,
                             tw_msg_uint(m, TW_F_SEQ, 0),
                             "unknown cancel op '%.*s' (try strict)",
                             (int)ol, op);
        }
        return;
    }
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
                   t->state == TW_ST_RUNNING) {
            tw__broker_cancel_task(b, t);
            kind[i] = 0;
        } else {
            kind[i] = 1;
        }
        count[kind[i]]++;
    }
    static const char *names[3] = {"cancelled", "ended", "unknown"};
    tw_enc_t e;
    tw__broker_reply_begin(&e, tw_msg_uint(m, TW_F_SEQ, 0));
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
    tw__broker_reply_send(b, c, &e);
    tw_free(out);
    tw_free(kind);
}

void
tw__broker_encode_worker(tw_broker_t *b, tw_enc_t *e, const tw_bworker_t *w)
{
    tw_enc_map(e, 12);
    tw_enc_cstr(e, "id");
    tw_enc_uint(e, w->id);
    tw_enc_cstr(e, "name");
    tw_enc_cstr(e, w->name ? w->name : "");
    tw_enc_cstr(e, "host");
    tw_enc_cstr(e, w->host ? w->host : "");
    tw_enc_cstr(e, "pid");
    tw_enc_uint(e, w->pid);
    tw_enc_cstr(e, "slots");
    tw_enc_uint(e, w->slots);
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, w->inflight.len);
    tw_enc_cstr(e, "credit");
    tw_enc_uint(e, w->credit);
    tw_enc_cstr(e, "done");
    tw_enc_uint(e, w->done);
    tw_enc_cstr(e, "handlers");
    tw_enc_array(e, w->nhandlers);
    for (size_t i = 0; i < w->nhandlers; i++) {
        const tw_handler_t *h = &b->reg.handlers[w->handlers[i]];
        tw_enc_str(e, h->name, h->name_len);
    }
    tw_enc_cstr(e, "age_ms");
    tw_enc_uint(e, uv_now(b->loop) - w->last_recv_ms);
    tw_enc_cstr(e, "stations");
    tw_enc_uint(e, w->nstations);
    tw_enc_cstr(e, "state");
    tw_enc_cstr(e, tw__broker_worker_state(w));
}

static void
s_on_query(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    size_t wl;
    const char *what = tw_msg_str(m, TW_F_WHAT, &wl);
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    tw_enc_t e;
    tw__broker_reply_begin(&e, seq);
    if (wl == 6 && memcmp(what, "status", 6) == 0) {
        tw__broker_encode_status(b, &e, 0);
    } else if (wl == 8 && memcmp(what, "snapshot", 8) == 0) {
        tw__broker_encode_snapshot(b, &e);
    } else if (wl == 7 && memcmp(what, "workers", 7) == 0) {
        tw_enc_array(&e, b->reg.len);
        for (size_t i = 0; i < b->reg.len; i++) {
            tw__broker_encode_worker(b, &e, b->reg.list[i]);
        }
    } else {
        tw_enc_free(&e);
        tw__broker_error(b, &b->fzw, c->ident, c->ident_len, TW_EINVAL, seq,
                         "unknown query '%.*s' (try status, workers or "
                         "snapshot)",
                         (int)wl, what);
        return;
    }
    tw__broker_reply_send(b, c, &e);
}

/* A client's ping: HEARTBEAT {boot, pub}, this run's identity and the
 * status endpoint to subscribe to (PROTOCOL.md 5.8). */
static void
s_on_ping(tw_broker_t *b, tw_zwatch_t *zw, tw_bclient_t *c)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, b->boot);
    tw_enc_key(&e, TW_F_PUB);
    tw_enc_cstr(&e, b->ep_pub);
    tw__broker_send(b, zw, c->ident, c->ident_len, TW_CMD_HEARTBEAT, &e);
    tw_enc_free(&e);
}

void
tw__broker_on_front(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_broker_t *b = zw->data;
    tw_msg_t m;
    if (msg->n < 1 || tw__broker_gate_decode(b, zw, msg, &m, TW_C2B)) {
        return;
    }
    tw_bclient_t *c = tw_clients_touch(&b->clients, zmq_msg_data(&msg->f[0]),
                                       zmq_msg_size(&msg->f[0]),
                                       uv_now(b->loop));
    if (m.cmd != TW_CMD_SUBMIT) {
        /* Replies go out at once; send what this turn already owes the
         * client first, so a reply never overtakes an earlier ACK. */
        tw__broker_flush_clients(b);
    }
    switch (m.cmd) {
    case TW_CMD_SUBMIT:
        s_on_submit(b, c, &m);
        break;
    case TW_CMD_RESULT:
        s_on_result(b, c, &m);
        break;
    case TW_CMD_CANCEL:
        s_on_cancel(b, c, &m);
        break;
    case TW_CMD_QUERY:
        s_on_query(b, c, &m);
        break;
    case TW_CMD_STATION:
        tw__broker_on_station_op(b, c, &m);
        tw__persist_station_msg(b, &m);
        break;
    case TW_CMD_GROUP:
        tw__broker_on_group(b, c, &m);
        tw__persist_pool_msg(b, &m);
        break;
    case TW_CMD_POOL:
        tw__broker_on_pool(b, c, &m);
        tw__persist_pool_msg(b, &m);
        break;
    case TW_CMD_WORKER:
        tw__broker_on_worker_op(b, c, &m);
        break;
    case TW_CMD_CHAN:
        tw__broker_on_chan_down(b, c, &m);
        break;
    case TW_CMD_HEARTBEAT:
        s_on_ping(b, zw, c);
        break;
    case TW_CMD_BYE:
        /* The record ages out; its tasks' channels close now (S93). */
        tw__broker_client_gone(b, c, "submitter said BYE");
        break;
    default:
        break;
    }
    tw_msg_release(&m);
    tw__persist_check(b); /* no batch grows past what the store covers */
}

/* ---- worker commands -------------------------------------------------- */

static void
s_on_hello(tw_broker_t *b, tw_zwatch_t *zw, const void *ident, size_t ilen,
           const tw_msg_t *m)
{
    tw_bworker_t *old = tw_registry_by_ident(&b->reg, ident, ilen);
    if (old) {
        /* What it re-announces stays running (lease.c). */
        tw__lease_detach(b, old, m);
        tw__broker_drop_worker(b, old, "said HELLO again");
    }
    tw_bworker_t *w = tw_registry_add(&b->reg, ident, ilen, uv_now(b->loop));
    size_t len;
    const char *s = tw_msg_str(m, TW_F_NAME, &len);
    w->name = tw_strndup(s, len);
    s = tw_msg_str(m, TW_F_HOST, &len);
    w->host = s ? tw_strndup(s, len) : tw_strdup("");
    w->pid = tw_msg_uint(m, TW_F_PID, 0);
    uint64_t slots = tw_msg_uint(m, TW_F_SLOTS, 0);
    w->slots = slots > S_MAX_CREDIT ? S_MAX_CREDIT : (uint32_t)slots;
    const msgpack_object *hs = m->f[TW_F_HANDLERS];
    uint32_t nh = hs->via.array.size;
    uint32_t *idx = tw_malloc((nh ? nh : 1) * sizeof *idx);
    for (uint32_t i = 0; i < nh; i++) {
        const msgpack_object *o = &hs->via.array.ptr[i];
        idx[i] = (uint32_t)tw_registry_handler(&b->reg, o->via.str.ptr,
                                               o->via.str.size, 1);
    }
    tw_registry_set_handlers(&b->reg, w, idx, nh);
    tw_free(idx);
    const msgpack_object *tags = m->f[TW_F_TAGS];
    if (tags && tags->via.map.size) {
        w->ntags = 2 * (size_t)tags->via.map.size;
        w->tags = tw_calloc(w->ntags, sizeof *w->tags);
        for (uint32_t i = 0; i < tags->via.map.size; i++) {
            const msgpack_object_kv *kv = &tags->via.map.ptr[i];
            w->tags[2 * i] = tw_strndup(kv->key.via.str.ptr,
                                        kv->key.via.str.size);
            w->tags[2 * i + 1] = tw_strndup(kv->val.via.str.ptr,
                                            kv->val.via.str.size);
        }
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_WID);
    tw_enc_uint(&e, w->id);
    tw_enc_key(&e, TW_F_HB);
    tw_enc_uint(&e, (uint64_t)b->cfg->heartbeat);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, b->boot);
    tw__broker_send(b, zw, ident, ilen, TW_CMD_WELCOME, &e);
    tw_enc_free(&e);
    tw__lease_adopt(b, w, m);
    tw__broker_worker_up(b, w);
    tw__broker_workers_changed(b);
}

static void
s_add_credit(tw_broker_t *b, tw_bworker_t *w, uint64_t n)
{
    w->credit += n;
    b->place_wanted |= n > 0 && b->nunplaced > 0;
    if (w->credit > S_MAX_CREDIT) {
        w->credit = S_MAX_CREDIT;
    }
}

/* Run a failed task again after a backoff: 100 ms doubling per attempt,
 * at most 30 s, with +-25 % jitter so retries of many tasks spread out.
 * The attempt's error is kept ("attempt N: ...") and the attempt is
 * published as task.retry (12.8). */
static void
s_retry(tw_broker_t *b, tw_task_t *t, const char *err, size_t elen)
{
    int64_t run_ms = tw__broker_run_ms(b, t);
    char line[320];
    if (!err || !elen) {
        err = "failed";
        elen = 6;
    }
    int n = snprintf(line, sizeof line, "attempt %u: %.*s",
                     (unsigned)t->attempt, (int)(elen > 256 ? 256 : elen),
                     err);
    if (t->error) {
        size_t old = strlen(t->error);
        t->error = tw_realloc(t->error, old + 2 + (size_t)n + 1);
        memcpy(t->error + old, "; ", 2);
        memcpy(t->error + old + 2, line, (size_t)n + 1);
    } else {
        t->error = tw_strndup(line, (size_t)n);
    }
    uint64_t delay = (uint64_t)b->cfg->retry_base;
    for (uint16_t i = 1; i < t->attempt && delay < 30000; i++) {
        delay *= 2;
    }
    if (delay > 30000) {
        delay = 30000;
    }
    b->jitter = b->jitter * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t spread = delay / 2;
    if (spread) {
        delay = delay - delay / 4 + (b->jitter >> 33) % (spread + 1);
    }
    t->due_ms = uv_now(b->loop) + delay;
    b->st.retried++;
    tw__broker_enqueue(b, t);
    tw_task_event_x_t x = {.run_ms = run_ms,
                           .retry_in_ms = (int64_t)delay,
                           .error = line};
    tw__broker_task_event(b, t, "task.retry", &x);
}

static void
s_on_done(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        tw_task_t *t = tw_tasks_get(&b->tasks, tw_item_uint(it, TW_I_ID, 0));
        if (!tw__lease_done_ok(b, w, t, it)) {
            continue; /* stale ep or duplicate, counted there */
        }
        tw__broker_halt(b, t);
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
        /* S57, F3: a cancel the worker has not confirmed does not
         * override a DONE that reports an outcome: the task finished
         * before the CANCEL reached it, and the first to arrive wins. It
         * ends with that outcome, kept and delivered, and is not
         * retried. */
        if (t->cancel_requested && st == TW_ST_CANCELLED) {
            /* The worker confirmed the cancel. */
            tw__broker_end(b, t, TW_ST_CANCELLED, NULL, 0, NULL, 0);
        } else if (st > TW_ST_CANCELLED) {
            int n = snprintf(why, sizeof why,
                             "worker reported unknown status %llu",
                             (unsigned long long)st);
            tw__broker_end(b, t, TW_ST_ERROR, NULL, 0, why, (size_t)n);
        } else if ((st == TW_ST_ERROR || st == TW_ST_TIMEOUT) &&
                   t->attempt <= t->retries && !t->cancel_requested) {
            s_retry(b, t, err, elen);
        } else if (st == TW_ST_OK && rlen > (uint64_t)b->cfg->max_payload) {
            int n = snprintf(why, sizeof why,
                             "result is %zu bytes; the limit is %lld", rlen,
                             b->cfg->max_payload);
            tw__broker_end(b, t, TW_ST_ERROR, NULL, 0, why, (size_t)n);
        } else {
            if (t->error && err) {
                /* Retried before: label the last attempt like the others. */
                int n = snprintf(why, sizeof why, "attempt %u: %.*s",
                                 (unsigned)t->attempt, (int)elen, err);
                err = why;
                elen = (size_t)n < sizeof why ? (size_t)n : sizeof why - 1;
            }
            tw__broker_end(b, t, (int)st, st == TW_ST_OK ? r : NULL, rlen,
                           err, elen);
        }
    }
    s_add_credit(b, w, tw_msg_uint(m, TW_F_CREDIT, 0));
}

void
tw__broker_on_back(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_broker_t *b = zw->data;
    tw_msg_t m;
    if (msg->n < 1 || tw__broker_gate_decode(b, zw, msg, &m, TW_W2B)) {
        return;
    }
    const void *ident = zmq_msg_data(&msg->f[0]);
    size_t ilen = zmq_msg_size(&msg->f[0]);
    if (m.cmd == TW_CMD_HELLO) {
        tw_quarantine_forgive(&b->quarantine, ident, ilen, uv_now(b->loop));
        s_on_hello(b, zw, ident, ilen, &m);
        tw_msg_release(&m);
        return;
    }
    tw_bworker_t *w = tw_registry_by_ident(&b->reg, ident, ilen);
    if (!w) {
        /* A worker declared dead (a SIGSTOP, a cut link) may still report
         * what it ran: those tasks were requeued, so the outcomes are
         * late duplicates, counted and never applied. */
        if (m.cmd == TW_CMD_DONE) {
            b->st.duplicates += m.nitems;
        }
        if (m.cmd != TW_CMD_BYE) {
            /* A strike like any refusal, or a peer could keep the broker
             * answering EWORKER for ever; a worker that lost its
             * registration sends HELLO on the first one, which forgives
             * the strikes its messages in flight earned. */
            tw__broker_peer_error(b, "backend", ident, ilen);
            tw__broker_error(b, zw, ident, ilen, TW_EWORKER, 0,
                             "unknown worker: send HELLO first (this is "
                             "the broker's backend, for workers; clients "
                             "connect to the frontend, %s)",
                             b->ep_front);
        }
        tw_msg_release(&m);
        return;
    }
    w->last_recv_ms = uv_now(b->loop);
    switch (m.cmd) {
    case TW_CMD_READY:
        s_add_credit(b, w, tw_msg_uint(&m, TW_F_CREDIT, 0));
        break;
    case TW_CMD_DONE:
        s_on_done(b, w, &m);
        break;
    case TW_CMD_BYE:
        tw__broker_worker_bye(b, w);
        break;
    case TW_CMD_WORKER:
        tw__broker_on_worker_report(b, w, &m);
        break;
    case TW_CMD_STATION:
        tw__broker_on_station_report(b, w, &m);
        tw__persist_station_msg(b, &m);
        break;
    case TW_CMD_S2N:
        tw__broker_on_s2n(b, w, &m);
        break;
    case TW_CMD_CHAN:
        tw__broker_on_chan_up(b, w, &m);
        break;
    default: /* HEARTBEAT: liveness was refreshed above. */
        break;
    }
    tw_msg_release(&m);
    tw__persist_check(b); /* no batch grows past what the store covers */
}
