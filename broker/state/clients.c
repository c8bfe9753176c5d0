/*  broker/state/clients.c - the client registry (see clients.h). */
#include "broker/state/clients.h"
#include "common/alloc.h"
#include "common/util.h"

#include <string.h>

void
tw_clients_init(tw_clients_t *cs)
{
    memset(cs, 0, sizeof *cs);
    tw_idmap_init(&cs->by_id);
    tw_idmap_init(&cs->by_ident);
    cs->next_id = 1;
}

static void
s_free(tw_bclient_t *c)
{
    tw_batch_free(&c->acks);
    tw_batch_free(&c->results);
    tw_free(c);
}

static void
s_free_cb(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    s_free(val);
}

void
tw_clients_destroy(tw_clients_t *cs)
{
    tw_idmap_each(&cs->by_id, s_free_cb, NULL);
    tw_idmap_free(&cs->by_id);
    tw_idmap_free(&cs->by_ident);
    tw_free(cs->dirty);
    memset(cs, 0, sizeof *cs);
}

void
tw_clients_set_boot(tw_clients_t *cs, uint64_t boot)
{
    cs->boot = boot;
}

static void
s_set_ha(uint64_t id, void *val, void *arg)
{
    tw_bclient_t *c = val;
    const uint64_t *ha = arg;
    (void)id;
    tw_batch_head(&c->acks, TW_F_HA, *ha);
    tw_batch_head(&c->results, TW_F_HA, *ha);
}

void
tw_clients_set_ha(tw_clients_t *cs, uint64_t ha)
{
    cs->ha = ha;
    tw_idmap_each(&cs->by_id, s_set_ha, &ha);
}

tw_bclient_t *
tw_clients_find(const tw_clients_t *cs, const void *ident, size_t len)
{
    tw_bclient_t *c = tw_idmap_get(&cs->by_ident, tw_hash_bytes(ident, len));
    return c && c->ident_len == len && memcmp(c->ident, ident, len) == 0
               ? c
               : NULL;
}

tw_bclient_t *
tw_clients_touch(tw_clients_t *cs, const void *ident, size_t len,
                 uint64_t now_ms)
{
    uint64_t h = tw_hash_bytes(ident, len);
    tw_bclient_t *c = tw_idmap_get(&cs->by_ident, h);
    if (c && c->ident_len == len && memcmp(c->ident, ident, len) == 0) {
        c->last_seen_ms = now_ms;
        c->gone = 0;
        return c;
    }
    if (c) {
        /* A hash collision between two identities: the newcomer takes the
         * slot; the older client keeps its id record for routing. */
        tw_idmap_del(&cs->by_ident, h);
    }
    c = tw_calloc(1, sizeof *c);
    c->id = cs->next_id++;
    c->ident_len = len < TW_IDENT_MAX ? len : TW_IDENT_MAX;
    memcpy(c->ident, ident, c->ident_len);
    c->last_seen_ms = now_ms;
    tw_batch_init(&c->acks, 0);
    tw_batch_init(&c->results, 0);
    if (cs->boot) {
        tw_batch_head(&c->acks, TW_F_BOOT, cs->boot);
        tw_batch_head(&c->results, TW_F_BOOT, cs->boot);
    }
    if (cs->ha) {
        tw_batch_head(&c->acks, TW_F_HA, cs->ha);
        tw_batch_head(&c->results, TW_F_HA, cs->ha);
    }
    tw_idmap_put(&cs->by_id, c->id, c);
    tw_idmap_put(&cs->by_ident, h, c);
    return c;
}

tw_bclient_t *
tw_clients_get(const tw_clients_t *cs, uint64_t id)
{
    return tw_idmap_get(&cs->by_id, id);
}

void
tw_clients_mark(tw_clients_t *cs, tw_bclient_t *c)
{
    if (c->dirty) {
        return;
    }
    if (cs->ndirty == cs->capdirty) {
        cs->capdirty = cs->capdirty ? cs->capdirty * 2 : 16;
        cs->dirty = tw_realloc(cs->dirty, cs->capdirty * sizeof *cs->dirty);
    }
    cs->dirty[cs->ndirty++] = c;
    c->dirty = 1;
}

typedef struct {
    uint64_t now_ms, idle_ms;
    uint64_t *victims;
    size_t n, cap;
} s_gc_t;

static void
s_gc_scan(uint64_t id, void *val, void *arg)
{
    s_gc_t *g = arg;
    tw_bclient_t *c = val;
    if (!c->outstanding && !c->dirty &&
        g->now_ms - c->last_seen_ms > g->idle_ms) {
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 16;
            g->victims = tw_realloc(g->victims, g->cap * sizeof *g->victims);
        }
        g->victims[g->n++] = id;
    }
}

size_t
tw_clients_gc(tw_clients_t *cs, uint64_t now_ms, uint64_t idle_ms)
{
    s_gc_t g = {now_ms, idle_ms, NULL, 0, 0};
    tw_idmap_each(&cs->by_id, s_gc_scan, &g);
    for (size_t i = 0; i < g.n; i++) {
        tw_bclient_t *c = tw_idmap_del(&cs->by_id, g.victims[i]);
        uint64_t h = tw_hash_bytes(c->ident, c->ident_len);
        if (tw_idmap_get(&cs->by_ident, h) == c) {
            tw_idmap_del(&cs->by_ident, h);
        }
        s_free(c);
    }
    tw_free(g.victims);
    return g.n;
}
