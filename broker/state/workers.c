/*  broker/state/workers.c - worker registry and handler table (see
 *  workers.h).
 */
#include "broker/state/workers.h"
#include "common/alloc.h"
#include "common/util.h"

#include <string.h>

void
tw_registry_init(tw_registry_t *r)
{
    memset(r, 0, sizeof *r);
    tw_idmap_init(&r->by_id);
    tw_idmap_init(&r->by_ident);
    r->next_id = 1;
}

static void
s_free_worker(tw_bworker_t *w)
{
    tw_free(w->slot_used);
    tw_batch_free(&w->assign);
    tw_batch_free(&w->n2s);
    tw_batch_free(&w->control);
    tw_batch_free(&w->release);
    tw_free(w->name);
    tw_free(w->host);
    tw_free(w->handlers);
    for (size_t i = 0; i < w->ntags; i++) {
        tw_free(w->tags[i]);
    }
    tw_free(w->tags);
    tw_free(w);
}

void
tw_registry_destroy(tw_registry_t *r)
{
    for (size_t i = 0; i < r->len; i++) {
        s_free_worker(r->list[i]);
    }
    tw_free(r->list);
    for (size_t i = 0; i < r->nhandlers; i++) {
        tw_free(r->handlers[i].name);
        tw_queue_free(r->handlers[i].queue);
        tw_free(r->handlers[i].queue);
    }
    tw_free(r->handlers);
    tw_idmap_free(&r->by_id);
    tw_idmap_free(&r->by_ident);
    memset(r, 0, sizeof *r);
}

int
tw_registry_handler(tw_registry_t *r, const char *name, size_t len,
                    int create)
{
    for (size_t i = 0; i < r->nhandlers; i++) {
        tw_handler_t *h = &r->handlers[i];
        if (h->name_len == len && memcmp(h->name, name, len) == 0) {
            return (int)i;
        }
    }
    if (!create) {
        return -1;
    }
    r->handlers = tw_realloc(r->handlers,
                             (r->nhandlers + 1) * sizeof *r->handlers);
    tw_handler_t *h = &r->handlers[r->nhandlers];
    memset(h, 0, sizeof *h);
    h->name = tw_strndup(name, len);
    h->name_len = len;
    h->queue = tw_malloc(sizeof *h->queue);
    tw_queue_init(h->queue);
    h->queue->ready = 1;
    return (int)r->nhandlers++;
}

tw_bworker_t *
tw_registry_add(tw_registry_t *r, const void *ident, size_t len,
                uint64_t now_ms)
{
    tw_bworker_t *w = tw_calloc(1, sizeof *w);
    w->id = r->next_id++;
    w->ident_len = len < TW_IDENT_MAX ? len : TW_IDENT_MAX;
    memcpy(w->ident, ident, w->ident_len);
    w->joined_ms = w->last_recv_ms = w->last_send_ms = now_ms;
    tw_batch_init(&w->assign, 0);
    tw_batch_init(&w->n2s, 0);
    tw_batch_init(&w->control, 0);
    tw_batch_init(&w->release, 0);
    if (r->len == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->list = tw_realloc(r->list, r->cap * sizeof *r->list);
    }
    r->list[r->len++] = w;
    tw_idmap_put(&r->by_id, w->id, w);
    /* The identity index is keyed by a hash: if another identity with the
     * same hash holds the slot, it keeps it and lookups of this one fall
     * back to a scan (see tw_registry_by_ident). */
    uint64_t h = tw_hash_bytes(w->ident, w->ident_len);
    if (!tw_idmap_get(&r->by_ident, h)) {
        tw_idmap_put(&r->by_ident, h, w);
    }
    return w;
}

static int
s_same_ident(const tw_bworker_t *w, const void *ident, size_t len)
{
    return w->ident_len == len && memcmp(w->ident, ident, len) == 0;
}

tw_bworker_t *
tw_registry_by_ident(const tw_registry_t *r, const void *ident, size_t len)
{
    tw_bworker_t *w =
        tw_idmap_get(&r->by_ident, tw_hash_bytes(ident, len));
    if (!w || s_same_ident(w, ident, len)) {
        return w;
    }
    /* A hash collision: the slot belongs to another identity. */
    for (size_t i = 0; i < r->len; i++) {
        if (s_same_ident(r->list[i], ident, len)) {
            return r->list[i];
        }
    }
    return NULL;
}

tw_bworker_t *
tw_registry_by_id(const tw_registry_t *r, uint64_t id)
{
    return tw_idmap_get(&r->by_id, id);
}

void
tw_registry_set_handlers(tw_registry_t *r, tw_bworker_t *w,
                         const uint32_t *idx, size_t n)
{
    for (size_t i = 0; i < w->nhandlers; i++) {
        r->handlers[w->handlers[i]].nworkers--;
    }
    tw_free(w->handlers);
    w->handlers = n ? tw_malloc(n * sizeof *idx) : NULL;
    if (n) {
        memcpy(w->handlers, idx, n * sizeof *idx);
    }
    w->nhandlers = n;
    for (size_t i = 0; i < n; i++) {
        r->handlers[idx[i]].nworkers++;
    }
}

int
tw_registry_drop_handler(tw_registry_t *r, tw_bworker_t *w, uint32_t idx)
{
    for (size_t i = 0; i < w->nhandlers; i++) {
        if (w->handlers[i] == idx) {
            w->handlers[i] = w->handlers[--w->nhandlers];
            r->handlers[idx].nworkers--;
            return 1;
        }
    }
    return 0;
}

void
tw_registry_remove(tw_registry_t *r, tw_bworker_t *w)
{
    tw_registry_set_handlers(r, w, NULL, 0);
    tw_idmap_del(&r->by_id, w->id);
    uint64_t h = tw_hash_bytes(w->ident, w->ident_len);
    if (tw_idmap_get(&r->by_ident, h) == w) {
        tw_idmap_del(&r->by_ident, h);
        /* Hand the slot to another worker with the same hash, if any. */
        for (size_t i = 0; i < r->len; i++) {
            tw_bworker_t *o = r->list[i];
            if (o != w && tw_hash_bytes(o->ident, o->ident_len) == h) {
                tw_idmap_put(&r->by_ident, h, o);
                break;
            }
        }
    }
    for (size_t i = 0; i < r->len; i++) {
        if (r->list[i] == w) {
            memmove(&r->list[i], &r->list[i + 1],
                    (r->len - i - 1) * sizeof *r->list);
            r->len--;
            break;
        }
    }
    s_free_worker(w);
}

uint32_t
tw_registry_take_slot(tw_bworker_t *w)
{
    if (!w->slot_used) {
        w->slot_used = tw_calloc(w->slots ? w->slots : 1, 1);
    }
    for (uint32_t i = w->slot_hint; i < w->slots; i++) {
        if (!w->slot_used[i]) {
            w->slot_used[i] = 1;
            w->slot_hint = i + 1;
            return i;
        }
    }
    return w->slots;
}

void
tw_registry_put_slot(tw_bworker_t *w, uint32_t slot)
{
    if (w->slot_used && slot < w->slots && w->slot_used[slot]) {
        w->slot_used[slot] = 0;
        if (slot < w->slot_hint) {
            w->slot_hint = slot;
        }
    }
}
