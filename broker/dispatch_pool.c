/*  broker/dispatch_pool.c - GROUP and POOL requests, and strict CANCEL.
 *
 *  The client side of pools and groups (pools.h): create, set, clear and
 *  read group limits; size, lock, close and flush a pool; stop its most
 *  recently started tasks; cancel a group or the whole pool; and cancel a
 *  list of tasks all-or-nothing. Each request is answered with REPLY
 *  {seq, data} or ERROR {seq, code, msg}. Changes that free room (a limit
 *  raised or cleared) hand it to parked tasks at once; the end of the turn
 *  dispatches them.
 */
#include "broker/internal.h"
#include "common/alloc.h"
#include "common/error.h"

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
        tw__broker_reply_begin(&e, 0);
        tw_enc_map(&e, 2);
        tw_enc_cstr(&e, "event");
        tw_enc_cstr(&e, "pool.closed");
        tw_enc_cstr(&e, "pool");
        tw_enc_str(&e, p->name, p->name_len);
        tw__broker_reply_send(b, c, &e);
    }
}

/* Hand room freed in `g` (or all of it, with no limit) to parked tasks. */
static void
s_room_changed(tw_broker_t *b, tw_group_t *g)
{
    if (g->limit < 0) {
        tw__broker_unpark(b, &g->parked, g->parked.len);
    } else if (g->running < (uint64_t)g->limit) {
        tw__broker_unpark(b, &g->parked,
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

void
tw__broker_on_group(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol, gl;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    const char *name = tw_msg_str(m, TW_F_GROUP, &gl);
    tw_pool_t *p = s_pool(b, m);
    char why[256];
    tw_enc_t e;
    tw_pool_add_client(p, c->id);
#define S_OP(s) (ol == sizeof(s) - 1 && memcmp(op, s, ol) == 0)
    if (S_OP("list")) {
        tw__broker_reply_begin(&e, seq);
        tw_enc_array(&e, p->groups.len);
        for (size_t i = 0; i < p->groups.cap; i++) {
            const tw_strmap_entry_t *en = &p->groups.slots[i];
            if (en->key) {
                s_encode_group(&e, p, en->val);
            }
        }
        tw__broker_reply_send(b, c, &e);
        return;
    }
    if (!name || !gl) {
        tw__broker_reply_error(b, c, seq, TW_EINVAL, "this group operation needs a group");
        return;
    }
    tw_group_t *g = tw_pools_group(&b->pools, p, name, gl, 0);
    if (S_OP("create") || S_OP("set")) {
        if (g && S_OP("create")) {
            snprintf(why, sizeof why, "group '%.*s' already exists "
                     "(TaskGroupAlreadyExists)", (int)gl, name);
            tw__broker_reply_error(b, c, seq, TW_EEXIST, why);
            return;
        }
        int created = !g;
        if (!g) {
            g = tw_pools_group(&b->pools, p, name, gl, 1);
        }
        int rc = s_group_settings(p, g, m, why, sizeof why);
        if (rc != 0) {
            if (created) {
                tw_pools_forget_group(&b->pools, g);
            }
            tw__broker_reply_error(b, c, seq, rc, why);
            return;
        }
        s_room_changed(b, g);
    } else if (S_OP("clear")) {
        if (g) {
            tw_group_set_limit(p, g, -1); /* back to the pool's default */
            s_room_changed(b, g);
        }
    } else if (!g && S_OP("get")) {
        /* S98: a group never used reads as an empty one, with the limit
         * it would have; reading it does not create it. */
        tw_group_t none = {.name = (char *)name,
                           .name_len = gl,
                           .limit = p->default_limit,
                           .calls = -1,
                           .full = TW_FULL_QUEUE};
        tw__broker_reply_begin(&e, seq);
        s_encode_group(&e, p, &none);
        tw__broker_reply_send(b, c, &e);
        return;
    } else if (!g) {
        snprintf(why, sizeof why, "no group '%.*s' in pool '%s' "
                 "(TaskGroupNotFound)", (int)gl, name, p->name);
        tw__broker_reply_error(b, c, seq, TW_ENOENT, why);
        return;
    } else if (S_OP("ids")) {
        tw__broker_reply_begin(&e, seq);
        tw_enc_array(&e, g->nids);
        for (size_t i = 0; i < g->nids; i++) {
            tw_enc_uint(&e, g->ids[i]);
        }
        tw__broker_reply_send(b, c, &e);
        return;
    } else if (!S_OP("get")) {
        snprintf(why, sizeof why, "unknown group op '%.*s'", (int)ol, op);
        tw__broker_reply_error(b, c, seq, TW_EINVAL, why);
        return;
    }
#undef S_OP
    tw__broker_reply_begin(&e, seq);
    if (g) {
        s_encode_group(&e, p, g);
    } else {
        tw_enc_nil(&e); /* clear of a group that never existed */
    }
    tw__broker_reply_send(b, c, &e);
}

/* Cancel every task of group `g` (pending ones end now, running ones are
 * asked to stop), appending their ids to `out`, then forget the group. */
static void
s_cancel_group(tw_broker_t *b, tw_group_t *g, tw_enc_t *ids, size_t *n)
{
    /* Parked tasks are pending and among g->ids too. */
    for (size_t i = 0; i < g->nids; i++) {
        tw_task_t *t = tw_tasks_get(&b->tasks, g->ids[i]);
        if (t && tw__broker_cancel_task(b, t)) {
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
    if (t->pool == pc->p->id && tw__broker_cancel_task(pc->b, t)) {
        tw_enc_uint(pc->e, id);
        pc->n++;
    }
}

void
tw__broker_on_pool(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    size_t ol;
    const char *op = tw_msg_str(m, TW_F_OP, &ol);
    char why[256];
#define S_OP(s) (ol == sizeof(s) - 1 && memcmp(op, s, ol) == 0)
    size_t hl;
    const char *h = tw_msg_str(m, TW_F_HANDLER, &hl);
    if (S_OP("stats") && h) {
        /* S54: a map checks its handler first, before the pool's state
         * and before it takes an item; an unknown one changes nothing
         * (the pool is not created). */
        int rc = tw__broker_handler_known(b, h, hl, why, sizeof why);
        if (rc < 0) {
            tw__broker_reply_error(b, c, seq, rc, why);
            return;
        }
    }
    tw_pool_t *p = s_pool(b, m);
    tw_enc_t e;
    tw_pool_add_client(p, c->id);
    if (S_OP("size")) {
        /* nil: no size, as 0 (S96). */
        int64_t n = s_limit_nil(m) ? 0 : tw_msg_int(m, TW_F_LIMIT, -1);
        if (n < 0) {
            tw__broker_reply_error(b, c, seq, TW_EINVAL,
                    "size needs a limit of 0 (unlimited) or more");
            return;
        }
        p->size = (uint64_t)n;
        tw__broker_unpark(b, &p->parked,
                          p->size == 0           ? p->parked.len
                          : p->running < p->size ? p->size - p->running
                                                 : 0);
    } else if (S_OP("default_limit")) {
        /* S101 with S96's rules: absent clears, negative is refused, 0
         * lets nothing new start in groups without a limit of their own. */
        int64_t n = s_limit(m);
        if (m->f[TW_F_LIMIT] && !s_limit_nil(m) && n < 0) {
            tw__broker_reply_error(b, c, seq, TW_EINVAL,
                    "a default limit must not be negative (S96); leave "
                    "limit out to clear it");
            return;
        }
        tw_pools_set_default_limit(p, n);
        for (size_t i = 0; i < p->groups.cap; i++) {
            if (p->groups.slots[i].key) {
                s_room_changed(b, p->groups.slots[i].val);
            }
        }
    } else if (S_OP("lock")) {
        /* Groups accepted before the lock keep feeding (S61, F3). */
        for (size_t i = 0; !p->locked && i < p->groups.cap; i++) {
            if (p->groups.slots[i].key) {
                ((tw_group_t *)p->groups.slots[i].val)->before_lock = 1;
            }
        }
        p->locked = 1;
    } else if (S_OP("unlock")) {
        p->locked = p->closed; /* a closed pool stays locked (S63) */
    } else if (S_OP("close")) {
        int was = p->closed;
        p->locked = p->closed = 1;
        if (!was) {
            s_pool_closed(b, p);
        }
    } else if (S_OP("flush")) {
        size_t n = 0;
        tw_task_t *t = b->tasks.ended.head;
        while (t) {
            tw_task_t *next = t->next;
            if (t->pool == p->id) {
                tw_tasks_forget(&b->tasks, t);
                n++;
            }
            t = next;
        }
        p->ended = p->cancelled = 0;
        tw__broker_reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "forgotten");
        tw_enc_uint(&e, n);
        tw__broker_reply_send(b, c, &e);
        return;
    } else if (S_OP("stop")) {
        /* S67: the n most recently started running tasks, newest first;
         * tasks already being cancelled are not picked again. */
        uint64_t want = tw_msg_uint(m, TW_F_N, 0);
        tw__broker_reply_begin(&e, seq);
        size_t off = tw_enc_array_begin(&e);
        uint32_t n = 0;
        tw_task_t *t = p->running_list.tail;
        while (t && n < want) {
            tw_task_t *prev = t->pprev;
            if (tw__broker_cancel_task(b, t)) {
                tw_enc_uint(&e, t->id);
                n++;
            }
            t = prev;
        }
        tw_enc_array_end(&e, off, n);
        tw__broker_reply_send(b, c, &e);
        return;
    } else if (S_OP("cancel_group") || S_OP("cancel_all")) {
        int all = S_OP("cancel_all");
        size_t gl;
        const char *name = tw_msg_str(m, TW_F_GROUP, &gl);
        tw_group_t *g = all || !name
                            ? NULL
                            : tw_pools_group(&b->pools, p, name, gl, 0);
        if (!all && !g) {
            snprintf(why, sizeof why, "no group '%.*s' in pool '%s' "
                     "(TaskGroupNotFound)", (int)gl, name ? name : "",
                     p->name);
            tw__broker_reply_error(b, c, seq, TW_ENOENT, why);
            return;
        }
        tw__broker_reply_begin(&e, seq);
        tw_enc_map(&e, 1);
        tw_enc_cstr(&e, "cancelled");
        size_t off = tw_enc_array_begin(&e);
        size_t n = 0;
        if (g) {
            s_cancel_group(b, g, &e, &n);
        } else {
            /* Every pending or running task of the pool, in a group or
             * not, then every group is forgotten (S59). */
            s_pool_cancel_t pc = {b, p, &e, 0};
            tw_idmap_each(&b->tasks.by_id, s_cancel_in_pool, &pc);
            n = pc.n;
            while (p->groups.len) {
                for (size_t i = 0; i < p->groups.cap; i++) {
                    if (p->groups.slots[i].key) {
                        tw_pools_forget_group(&b->pools,
                                              p->groups.slots[i].val);
                        break;
                    }
                }
            }
        }
        tw_enc_array_end(&e, off, (uint32_t)n);
        tw__broker_reply_send(b, c, &e);
        return;
    } else if (!S_OP("stats")) {
        snprintf(why, sizeof why, "unknown pool op '%.*s'", (int)ol, op);
        tw__broker_reply_error(b, c, seq, TW_EINVAL, why);
        return;
    }
#undef S_OP
    tw__broker_reply_begin(&e, seq);
    s_encode_pool(&e, p);
    tw__broker_reply_send(b, c, &e);
}

void
tw__broker_cancel_strict(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
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
        } else if (t->state != TW_ST_PENDING && t->state != TW_ST_RUNNING) {
            code = TW_EENDED;
            what = "has already ended (AlreadyEnded)";
        }
        if (code) {
            snprintf(why, sizeof why, "task %llu %s; nothing was cancelled",
                     (unsigned long long)id, what);
            tw__broker_reply_error(b, c, seq, code, why);
            return;
        }
    }
    tw_enc_t e;
    tw__broker_reply_begin(&e, seq);
    tw_enc_map(&e, 1);
    tw_enc_cstr(&e, "cancelled");
    tw_enc_array(&e, ids->via.array.size);
    for (uint32_t i = 0; i < ids->via.array.size; i++) {
        uint64_t id = ids->via.array.ptr[i].via.u64;
        tw__broker_cancel_task(b, tw_tasks_get(&b->tasks, id));
        tw_enc_uint(&e, id);
    }
    tw__broker_reply_send(b, c, &e);
}
