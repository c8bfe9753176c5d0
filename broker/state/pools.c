/*  broker/state/pools.c - the pool and group tables (see pools.h). */
#include "broker/state/pools.h"
#include "common/alloc.h"

#include <string.h>

void
tw_pools_init(tw_pools_t *ps)
{
    memset(ps, 0, sizeof *ps);
    tw_strmap_init(&ps->by_name);
    tw_idmap_init(&ps->groups);
    ps->next_gid = 1;
}

static void
s_free_group(tw_group_t *g)
{
    tw_queue_free(&g->parked);
    tw_free(g->ids);
    tw_free(g->name);
    tw_free(g);
}

static void
s_free_group_cb(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    s_free_group(val);
}

void
tw_pools_destroy(tw_pools_t *ps)
{
    tw_idmap_each(&ps->groups, s_free_group_cb, NULL);
    tw_idmap_free(&ps->groups);
    for (size_t i = 0; i < ps->len; i++) {
        tw_pool_t *p = ps->all[i];
        tw_strmap_free(&p->groups);
        /* Dedup keys are owned by their tasks. */
        tw_strmap_free(&p->dedup);
        tw_queue_free(&p->parked);
        tw_free(p->clients);
        tw_free(p->name);
        tw_free(p);
    }
    tw_free(ps->all);
    tw_strmap_free(&ps->by_name);
    memset(ps, 0, sizeof *ps);
}

tw_pool_t *
tw_pools_get(tw_pools_t *ps, const char *name, size_t len, int create)
{
    tw_pool_t *p = tw_strmap_get(&ps->by_name, name, len);
    if (p || !create) {
        return p;
    }
    p = tw_calloc(1, sizeof *p);
    p->name = tw_strndup(name, len);
    p->name_len = len;
    p->default_limit = -1;
    tw_strmap_init(&p->groups);
    tw_strmap_init(&p->dedup);
    tw_queue_init(&p->parked);
    if (ps->len == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        ps->all = tw_realloc(ps->all, ps->cap * sizeof *ps->all);
    }
    ps->all[ps->len++] = p;
    p->id = (uint32_t)ps->len;
    tw_strmap_put(&ps->by_name, p->name, p->name_len, p);
    return p;
}

tw_pool_t *
tw_pools_by_id(const tw_pools_t *ps, uint32_t id)
{
    return id >= 1 && id <= ps->len ? ps->all[id - 1] : NULL;
}

tw_group_t *
tw_pools_group(tw_pools_t *ps, tw_pool_t *pool, const char *name,
               size_t len, int create)
{
    tw_group_t *g = tw_strmap_get(&pool->groups, name, len);
    if (g || !create) {
        return g;
    }
    g = tw_calloc(1, sizeof *g);
    g->id = ps->next_gid++;
    g->pool = pool->id;
    g->name = tw_strndup(name, len);
    g->name_len = len;
    g->limit = pool->default_limit;
    g->calls = -1;
    tw_queue_init(&g->parked);
    tw_strmap_put(&pool->groups, g->name, g->name_len, g);
    tw_idmap_put(&ps->groups, g->id, g);
    return g;
}

void
tw_pool_add_client(tw_pool_t *pool, uint64_t id)
{
    /* The newest first: a client submitting a batch hits at once. */
    for (size_t i = pool->nclients; i > 0; i--) {
        if (pool->clients[i - 1] == id) {
            return;
        }
    }
    if (pool->nclients == TW_POOL_MAX_CLIENTS) {
        return;
    }
    if (pool->nclients == pool->capclients) {
        pool->capclients = pool->capclients ? 2 * pool->capclients : 4;
        pool->clients = tw_realloc(pool->clients,
                                   pool->capclients * sizeof *pool->clients);
    }
    pool->clients[pool->nclients++] = id;
}

void
tw_pools_set_default_limit(tw_pool_t *pool, int64_t limit)
{
    pool->default_limit = limit < 0 ? -1 : limit;
    for (size_t i = 0; i < pool->groups.cap; i++) {
        tw_group_t *g = pool->groups.slots[i].val;
        if (pool->groups.slots[i].key && !g->own_limit) {
            g->limit = pool->default_limit;
        }
    }
}

void
tw_group_set_limit(tw_pool_t *pool, tw_group_t *g, int64_t limit)
{
    g->own_limit = limit >= 0;
    g->limit = limit >= 0 ? limit : pool->default_limit;
}

tw_group_t *
tw_pools_group_by_id(const tw_pools_t *ps, uint64_t id)
{
    return tw_idmap_get(&ps->groups, id);
}

void
tw_pools_forget_group(tw_pools_t *ps, tw_group_t *g)
{
    tw_pool_t *p = tw_pools_by_id(ps, g->pool);
    if (p) {
        tw_strmap_del(&p->groups, g->name, g->name_len);
    }
    tw_idmap_del(&ps->groups, g->id);
    s_free_group(g);
}

void
tw_group_add_id(tw_group_t *g, uint64_t id)
{
    if (g->nids == g->capids) {
        g->capids = g->capids ? g->capids * 2 : 16;
        g->ids = tw_realloc(g->ids, g->capids * sizeof *g->ids);
    }
    g->ids[g->nids++] = id;
}

const char *
tw_full_name(int full)
{
    return full == TW_FULL_REJECT ? "reject" : "queue";
}

int
tw_full_parse(const char *s, size_t len)
{
    if (len == 5 && memcmp(s, "queue", 5) == 0) {
        return TW_FULL_QUEUE;
    }
    if (len == 6 && memcmp(s, "reject", 6) == 0) {
        return TW_FULL_REJECT;
    }
    return -1;
}
