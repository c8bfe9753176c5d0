/*  broker/cmd/on_pool.c - GROUP and POOL requests (see on_pool.h). */
#include "broker/cmd/on_pool.h"
#include "broker/core/admit.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "common/error.h"
#include "proto/ops.h"

#include <stdio.h>
#include <string.h>

static void
s_int_or_nil(tw_enc_t *e, int64_t v)
{
    if (v >= 0) {
        tw_enc_int(e, v);
    } else {
        tw_enc_nil(e);
    }
}

static void
s_encode_group(tw_enc_t *e, const tw_pool_t *p, const tw_group_t *g)
{
    tw_enc_map(e, 10);
    tw_enc_cstr(e, "pool");
    tw_enc_str(e, p->name, p->name_len);
    tw_enc_cstr(e, "group");
    tw_enc_str(e, g->name, g->name_len);
    tw_enc_cstr(e, "limit");
    s_int_or_nil(e, g->limit);
    tw_enc_cstr(e, "calls");
    s_int_or_nil(e, g->calls);
    tw_enc_cstr(e, "full");
    tw_enc_cstr(e, tw_full_name(g->full));
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, g->running);
    tw_enc_cstr(e, "pending");
    tw_enc_uint(e, g->pending);
    tw_enc_cstr(e, "ended");
    tw_enc_uint(e, g->ended);
    tw_enc_cstr(e, "cancelled");
    tw_enc_uint(e, g->cancelled);
    tw_enc_cstr(e, "admitted");
    tw_enc_uint(e, g->admitted);
}

static void
s_encode_pool(tw_enc_t *e, const tw_pool_t *p)
{
    tw_enc_map(e, 11);
    tw_enc_cstr(e, "pool");
    tw_enc_str(e, p->name, p->name_len);
    tw_enc_cstr(e, "default_limit");
    s_int_or_nil(e, p->default_limit);
    tw_enc_cstr(e, "size");
    tw_enc_uint(e, p->size);
    tw_enc_cstr(e, "free");
    if (p->size) {
        tw_enc_uint(e, p->running < p->size ? p->size - p->running : 0);
    } else {
        tw_enc_nil(e);
    }
    tw_enc_cstr(e, "running");
    tw_enc_uint(e, p->running);
    tw_enc_cstr(e, "pending");
    tw_enc_uint(e, p->pending);
    tw_enc_cstr(e, "ended");
    tw_enc_uint(e, p->ended);
    tw_enc_cstr(e, "cancelled");
    tw_enc_uint(e, p->cancelled);
    tw_enc_cstr(e, "locked");
    tw_enc_bool(e, p->locked);
    tw_enc_cstr(e, "closed");
    tw_enc_bool(e, p->closed);
    tw_enc_cstr(e, "groups");
    tw_enc_uint(e, p->groups.len);
}

/* 1 if the request's `limit` is nil: "none", the same as leaving the
 * limit out where that clears it (S96). */
static int
s_limit_nil(const tw_msg_t *m)
{
    return m->f[TW_F_LIMIT] && m->f[TW_F_LIMIT]->type == MSGPACK_OBJECT_NIL;
}

/* The limit a request gives: its value, or -1 (none) when it is nil or
 * absent. */
static int64_t
s_limit(const tw_msg_t *m)
{
    return s_limit_nil(m) ? -1 : tw_msg_int(m, TW_F_LIMIT, -1);
}

/* The pool a request names ("default" if none), created on demand. */
static tw_pool_t *
s_pool(tw_broker_t *b, const tw_msg_t *m)
{
    size_t len;
    const char *name = tw_msg_str(m, TW_F_POOL, &len);
    if (!name || !len) {
        name = "default";
        len = 7;
    }
    return tw_pools_get(&b->pools, name, len, 1);
}

/* S63-S64: tell the status socket and every client that used pool `p`
 * that it is closed: topic "pool.closed" {pool, running, pending}, and to
 * each client an unsolicited REPLY {seq: 0, data: {event: "pool.closed",
 * pool}} (seq 0 never answers a request). */
static void
s_pool_closed(tw_broker_t *b, const tw_pool_t *p)
{
    if (tw_status_wants(&b->status, "pool.closed")) {
        tw_enc_t e;
        tw_enc_init(&e);
        tw_status_begin(&b->status, &e, 3);
        tw_enc_cstr(&e, "pool");
        tw_enc_str(&e, p->name, p->name_len);
        tw_enc_cstr(&e, "running");
        tw_enc_uint(&e, p->running);
        tw_enc_cstr(&e, "pending");
        tw_enc_uint(&e, p->pending);
        tw_status_send(&b->status, "pool.closed", &e);
        tw_enc_free(&e);
    }
    for (size_t i = 0; i < p->nclients; i++) {
        tw_bclient_t *c = tw_clients_get(&b->clients, p->clients[i]);
        if (!c) {
            continue;
        }
        tw_enc_t e;
        tw_out_reply_begin(&e, 0);
        tw_enc_map(&e, 2);
        tw_enc_cstr(&e, "event");
        tw_enc_cstr(&e, "pool.closed");
        tw_enc_cstr(&e, "pool");
        tw_enc_str(&e, p->name, p->name_len);
        tw_out_reply(&b->out, c->ident, c->ident_len, &e);
    }
}

/* Hand room freed in `g` (or all of it, with no limit) to parked tasks. */
static void
s_room_changed(tw_broker_t *b, tw_group_t *g)
{
    if (g->limit < 0) {
        tw__flow_unpark(b, &g->parked, g->parked.len);
    } else if (g->running < (uint64_t)g->limit) {
        tw__flow_unpark(b, &g->parked,
                          (size_t)((uint64_t)g->limit - g->running));
    }
    if (tw_group_has_room(g)) {
        g->was_full = 0;
    }
}

/* Apply limit, calls and full from the request. Returns 0 or EINVAL. */
static int
s_group_settings(tw_pool_t *p, tw_group_t *g, const tw_msg_t *m, char *why,
                 size_t wlen)
{
    size_t fl;
    const char *full = tw_msg_str(m, TW_F_FULL, &fl);
    int f = full ? tw_full_parse(full, fl) : (int)g->full;
    if (f < 0) {
        snprintf(why, wlen, "full must be queue or reject");
        return TW_EINVAL;
    }
    if (m->f[TW_F_LIMIT] && !s_limit_nil(m) && s_limit(m) < 0) {
        snprintf(why, wlen, "a limit must not be negative (S96); nil "
                 "removes it");
        return TW_EINVAL;
    }
    if (m->f[TW_F_CALLS] && tw_msg_int(m, TW_F_CALLS, 0) < 1) {
        snprintf(why, wlen, "calls must be at least 1");
        return TW_EINVAL;
    }
    if (m->f[TW_F_LIMIT]) {
        /* nil: no limit of its own, as `clear` (S96). */
        tw_group_set_limit(p, g, s_limit(m));
    }
    if (m->f[TW_F_CALLS]) {
        g->calls = tw_msg_int(m, TW_F_CALLS, -1);
    }
    g->full = (tw_full_t)f;
    return 0;
}

/* One GROUP or POOL request: the pool it names (created on demand) and,
 * for the operations that need one, its group (NULL if it has none). */
typedef struct {
    tw_broker_t *b;
    tw_bclient_t *c;
    const tw_msg_t *m;
    uint64_t seq;
    tw_pool_t *p;
    tw_group_t *g;
    const char *name; /* the group's name in the request */
    size_t nlen;
} s_req_t;

typedef void s_op_fn(s_req_t *r);

/* ERROR {code, msg, seq} for the request. */
static void
s_refuse(s_req_t *r, int code, const char *msg)
{
    tw_out_reply_error(&r->b->out, r->c->ident, r->c->ident_len, r->seq,
                       code, msg);
}

/* REPLY with group info for `g`, or nil for none. */
static void
s_reply_group(s_req_t *r, const tw_group_t *g)
{
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    if (g) {
        s_encode_group(&e, r->p, g);
    } else {
        tw_enc_nil(&e); /* clear of a group that never existed */
    }
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

/* REPLY with pool info. */
static void
s_reply_pool(s_req_t *r)
{
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    s_encode_pool(&e, r->p);
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

/* ENOENT: no group of the request's name in its pool (TaskGroupNotFound). */
static void
s_no_group(s_req_t *r)
{
    char why[256];
    snprintf(why, sizeof why, "no group '%.*s' in pool '%s' "
             "(TaskGroupNotFound)", (int)r->nlen, r->name ? r->name : "",
             r->p->name);
    s_refuse(r, TW_ENOENT, why);
}

/* ---- GROUP ------------------------------------------------------------ */

/* create and set: the group (created if new) takes the request's
 * settings; a group this request created is forgotten again if they are
 * refused. */
static void
s_settings(s_req_t *r, int create)
{
    char why[256];
    tw_group_t *g = r->g;
    if (g && create) {
        snprintf(why, sizeof why, "group '%.*s' already exists "
                 "(TaskGroupAlreadyExists)", (int)r->nlen, r->name);
        s_refuse(r, TW_EEXIST, why);
        return;
    }
    if (!g) {
        g = tw_pools_group(&r->b->pools, r->p, r->name, r->nlen, 1);
    }
    int rc = s_group_settings(r->p, g, r->m, why, sizeof why);
    if (rc != 0) {
        if (!r->g) {
            tw_pools_forget_group(&r->b->pools, g);
        }
        s_refuse(r, rc, why);
        return;
    }
    s_room_changed(r->b, g);
    s_reply_group(r, g);
}

static void
s_op_create(s_req_t *r)
{
    s_settings(r, 1);
}

static void
s_op_set(s_req_t *r)
{
    s_settings(r, 0);
}

static void
s_op_clear(s_req_t *r)
{
    if (r->g) {
        tw_group_set_limit(r->p, r->g, -1); /* back to the pool's default */
        s_room_changed(r->b, r->g);
    }
    s_reply_group(r, r->g);
}

static void
s_op_get(s_req_t *r)
{
    /* S98: a group never used reads as an empty one, with the limit it
     * would have; reading it does not create it. */
    tw_group_t none = {.name = (char *)r->name,
                       .name_len = r->nlen,
                       .limit = r->p->default_limit,
                       .calls = -1,
                       .full = TW_FULL_QUEUE};
    s_reply_group(r, r->g ? r->g : &none);
}

static void
s_op_ids(s_req_t *r)
{
    if (!r->g) {
        s_no_group(r);
        return;
    }
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    tw_enc_array(&e, r->g->nids);
    for (size_t i = 0; i < r->g->nids; i++) {
        tw_enc_uint(&e, r->g->ids[i]);
    }
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

static void
s_op_list(s_req_t *r)
{
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    tw_enc_array(&e, r->p->groups.len);
    for (size_t i = 0; i < r->p->groups.cap; i++) {
        const tw_strmap_entry_t *en = &r->p->groups.slots[i];
        if (en->key) {
            s_encode_group(&e, r->p, en->val);
        }
    }
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

/* The GROUP operations by tw_op_t, from proto/ops.h. */
static s_op_fn *const s_group_ops[TW_OP__COUNT] = {
    TW_PROTO_GROUP_OPS(TW_OP_S_FN)
};

void
tw__on_group(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    s_req_t r = {.b = b, .c = c, .m = m,
                 .seq = tw_msg_uint(m, TW_F_SEQ, 0), .p = s_pool(b, m)};
    r.name = tw_msg_str(m, TW_F_GROUP, &r.nlen);
    tw_pool_add_client(r.p, c->id);
    /* The errors in PROTOCOL.md 12.4's order: a group is needed first
     * (by every op but list, known or not), then it must exist for an
     * op this broker does not know. */
    tw_op_t op = tw_proto_msg_op(m);
    if (op && !(tw_proto_op_needs(op) & TW_FB(GROUP))) {
        s_group_ops[op](&r);
        return;
    }
    if (!r.name || !r.nlen) {
        s_refuse(&r, TW_EINVAL, "this group operation needs a group");
        return;
    }
    r.g = tw_pools_group(&b->pools, r.p, r.name, r.nlen, 0);
    if (op) {
        s_group_ops[op](&r);
    } else if (!r.g) {
        s_no_group(&r);
    } else {
        char why[96];
        size_t ol;
        const char *ops = tw_msg_str(m, TW_F_OP, &ol);
        snprintf(why, sizeof why, "unknown group op '%.*s'", (int)ol, ops);
        s_refuse(&r, TW_EINVAL, why);
    }
}

/* Cancel every task of group `g` (pending ones end now, running ones are
 * asked to stop), appending their ids to `out`, then forget the group. */
static void
s_cancel_group(tw_broker_t *b, tw_group_t *g, tw_enc_t *ids, size_t *n)
{
    /* Parked tasks are pending and among g->ids too. */
    for (size_t i = 0; i < g->nids; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, g->ids[i]);
        if (t && tw__flow_cancel(b, t)) {
            tw_enc_uint(ids, t->id);
            (*n)++;
        }
    }
    tw_pools_forget_group(&b->pools, g);
}

typedef struct {
    tw_broker_t *b;
    tw_pool_t *p;
    tw_enc_t *e;
    size_t n;
} s_pool_cancel_t;

static void
s_cancel_in_pool(uint64_t id, void *val, void *arg)
{
    s_pool_cancel_t *pc = arg;
    tw_task_t *t = val;
    if (t->pool == pc->p->id && tw__flow_cancel(pc->b, t)) {
        tw_enc_uint(pc->e, id);
        pc->n++;
    }
}

/* ---- POOL ------------------------------------------------------------- */

static void
s_op_size(s_req_t *r)
{
    /* nil: no size, as 0 (S96). */
    tw_pool_t *p = r->p;
    int64_t n = s_limit_nil(r->m) ? 0 : tw_msg_int(r->m, TW_F_LIMIT, -1);
    if (n < 0) {
        s_refuse(r, TW_EINVAL, "size needs a limit of 0 (unlimited) or more");
        return;
    }
    p->size = (uint64_t)n;
    tw__flow_unpark(r->b, &p->parked,
                    p->size == 0           ? p->parked.len
                    : p->running < p->size ? p->size - p->running
                                           : 0);
    s_reply_pool(r);
}

static void
s_op_default_limit(s_req_t *r)
{
    /* S101 with S96's rules: absent clears, negative is refused, 0 lets
     * nothing new start in groups without a limit of their own. */
    tw_pool_t *p = r->p;
    int64_t n = s_limit(r->m);
    if (r->m->f[TW_F_LIMIT] && !s_limit_nil(r->m) && n < 0) {
        s_refuse(r, TW_EINVAL, "a default limit must not be negative "
                 "(S96); leave limit out to clear it");
        return;
    }
    tw_pools_set_default_limit(p, n);
    for (size_t i = 0; i < p->groups.cap; i++) {
        if (p->groups.slots[i].key) {
            s_room_changed(r->b, p->groups.slots[i].val);
        }
    }
    s_reply_pool(r);
}

static void
s_op_stats(s_req_t *r)
{
    s_reply_pool(r); /* its handler was checked first (tw__on_pool) */
}

static void
s_op_lock(s_req_t *r)
{
    /* Groups accepted before the lock keep feeding (S61, F3). */
    tw_pool_t *p = r->p;
    for (size_t i = 0; !p->locked && i < p->groups.cap; i++) {
        if (p->groups.slots[i].key) {
            ((tw_group_t *)p->groups.slots[i].val)->before_lock = 1;
        }
    }
    p->locked = 1;
    s_reply_pool(r);
}

static void
s_op_unlock(s_req_t *r)
{
    r->p->locked = r->p->closed; /* a closed pool stays locked (S63) */
    s_reply_pool(r);
}

static void
s_op_close(s_req_t *r)
{
    int was = r->p->closed;
    r->p->locked = r->p->closed = 1;
    if (!was) {
        s_pool_closed(r->b, r->p);
    }
    s_reply_pool(r);
}

static void
s_op_flush(s_req_t *r)
{
    size_t n = 0;
    tw_task_t *t = r->b->tasks.ended.head;
    while (t) {
        tw_task_t *next = t->next;
        if (t->pool == r->p->id) {
            tw_tasks_forget(&r->b->tasks, t);
            n++;
        }
        t = next;
    }
    r->p->ended = r->p->cancelled = 0;
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "forgotten");
    tw_enc_uint(&e, n);
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

static void
s_op_stop(s_req_t *r)
{
    /* S67: the n most recently started running tasks, newest first;
     * tasks already being cancelled are not picked again. */
    uint64_t want = tw_msg_uint(r->m, TW_F_N, 0);
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    size_t off = tw_enc_array_begin(&e);
    uint32_t n = 0;
    tw_task_t *t = r->p->running_list.tail;
    while (t && n < want) {
        tw_task_t *prev = t->pprev;
        if (tw__flow_cancel(r->b, t)) {
            tw_enc_uint(&e, t->id);
            n++;
        }
        t = prev;
    }
    tw_enc_array_end(&e, off, n);
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

/* cancel_group (g set) and cancel_all (g NULL): REPLY {cancelled: [id]}. */
static void
s_cancel(s_req_t *r, tw_group_t *g)
{
    tw_enc_t e;
    tw_out_reply_begin(&e, r->seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "cancelled");
    size_t off = tw_enc_array_begin(&e);
    size_t n = 0;
    if (g) {
        s_cancel_group(r->b, g, &e, &n);
    } else {
        /* Every pending or running task of the pool, in a group or not,
         * then every group is forgotten (S59). */
        s_pool_cancel_t pc = {r->b, r->p, &e, 0};
        tw_idmap_each(&r->b->tasks.by_id, s_cancel_in_pool, &pc);
        n = pc.n;
        while (r->p->groups.len) {
            for (size_t i = 0; i < r->p->groups.cap; i++) {
                if (r->p->groups.slots[i].key) {
                    tw_pools_forget_group(&r->b->pools,
                                          r->p->groups.slots[i].val);
                    break;
                }
            }
        }
    }
    tw_enc_array_end(&e, off, (uint32_t)n);
    tw_out_reply(&r->b->out, r->c->ident, r->c->ident_len, &e);
}

static void
s_op_cancel_group(s_req_t *r)
{
    tw_group_t *g = r->name ? tw_pools_group(&r->b->pools, r->p, r->name,
                                             r->nlen, 0)
                            : NULL;
    if (!g) {
        s_no_group(r);
        return;
    }
    s_cancel(r, g);
}

static void
s_op_cancel_all(s_req_t *r)
{
    s_cancel(r, NULL);
}

/* The POOL operations by tw_op_t, from proto/ops.h. */
static s_op_fn *const s_pool_ops[TW_OP__COUNT] = {
    TW_PROTO_POOL_OPS(TW_OP_S_FN)
};

void
tw__on_pool(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    s_req_t r = {.b = b, .c = c, .m = m, .seq = tw_msg_uint(m, TW_F_SEQ, 0)};
    r.name = tw_msg_str(m, TW_F_GROUP, &r.nlen);
    tw_op_t op = tw_proto_msg_op(m);
    char why[256];
    size_t hl;
    const char *h = tw_msg_str(m, TW_F_HANDLER, &hl);
    if (op == TW_OP_POOL_STATS && h) {
        /* S54: a map checks its handler first, before the pool's state
         * and before it takes an item; an unknown one changes nothing
         * (the pool is not created). */
        int rc = tw__admit_handler(b, h, hl, why, sizeof why);
        if (rc < 0) {
            s_refuse(&r, rc, why);
            return;
        }
    }
    r.p = s_pool(b, m);
    tw_pool_add_client(r.p, c->id);
    if (!op) {
        size_t ol;
        const char *ops = tw_msg_str(m, TW_F_OP, &ol);
        snprintf(why, sizeof why, "unknown pool op '%.*s'", (int)ol, ops);
        s_refuse(&r, TW_EINVAL, why);
        return;
    }
    s_pool_ops[op](&r);
}
