/*  broker/state/dedup.c - the submission rings (see dedup.h). */
#include "broker/state/dedup.h"
#include "common/alloc.h"
#include "common/util.h"

#include <string.h>

void
tw_dedup_init(tw_dedup_t *d)
{
    memset(d, 0, sizeof *d);
    tw_idmap_init(&d->clients);
}

static void
s_free_ring(tw_dedup_ring_t *r)
{
    tw_free(r->slots);
    tw_free(r);
}

static void
s_free_cb(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    s_free_ring(val);
}

void
tw_dedup_destroy(tw_dedup_t *d)
{
    tw_idmap_each(&d->clients, s_free_cb, NULL);
    tw_idmap_free(&d->clients);
    memset(d, 0, sizeof *d);
}

static tw_dedup_ring_t *
s_ring(tw_dedup_t *d, uint64_t cid)
{
    if (cid != d->last_cid || !d->last) {
        d->last = tw_idmap_get(&d->clients, cid);
        d->last_cid = cid;
    }
    return d->last;
}

uint64_t
tw_dedup_get(tw_dedup_t *d, uint64_t cid, uint64_t seq)
{
    if (!cid || !seq) {
        return 0;
    }
    tw_dedup_ring_t *r = s_ring(d, cid);
    if (!r) {
        return 0;
    }
    const tw_dedup_slot_t *s = &r->slots[seq & (r->cap - 1)];
    return s->seq == seq ? s->id : 0;
}

/* Double the ring, keeping every entry (each lands in its new slot). */
static void
s_grow(tw_dedup_ring_t *r)
{
    uint32_t cap = r->cap * 2;
    tw_dedup_slot_t *slots = tw_calloc(cap, sizeof *slots);
    for (uint32_t i = 0; i < r->cap; i++) {
        if (r->slots[i].seq) {
            slots[r->slots[i].seq & (cap - 1)] = r->slots[i];
        }
    }
    tw_free(r->slots);
    r->slots = slots;
    r->cap = cap;
}

/* The slot for (cid, seq), taken for it; NULL if it holds a newer seq
 * (recovery puts in any order). */
static tw_dedup_slot_t *
s_take(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t outstanding)
{
    tw_dedup_ring_t *r = s_ring(d, cid);
    if (!r) {
        r = tw_malloc(sizeof *r);
        r->cap = TW_DEDUP_MIN;
        r->slots = tw_calloc(r->cap, sizeof *r->slots);
        tw_idmap_put(&d->clients, cid, r);
        d->last = r;
        d->last_cid = cid;
    }
    while (r->cap < TW_DEDUP_MAX && outstanding > r->cap / 2) {
        s_grow(r);
    }
    tw_dedup_slot_t *s = &r->slots[seq & (r->cap - 1)];
    if (seq < s->seq) {
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->seq = seq;
    return s;
}

void
tw_dedup_put(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id,
             uint64_t outstanding)
{
    if (!cid || !seq || !id) {
        return;
    }
    tw_dedup_slot_t *s = s_take(d, cid, seq, outstanding);
    if (s) {
        s->id = id;
    }
}

void
tw_dedup_refuse(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint32_t shash,
                int err, uint64_t window)
{
    if (!cid || !seq || !err) {
        return;
    }
    tw_dedup_slot_t *s = s_take(d, cid, seq, window);
    if (s) {
        s->shash = shash;
        s->err = err;
    }
}

int
tw_dedup_refused(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint32_t shash)
{
    tw_dedup_ring_t *r = cid && seq ? s_ring(d, cid) : NULL;
    if (!r) {
        return 0;
    }
    const tw_dedup_slot_t *s = &r->slots[seq & (r->cap - 1)];
    return s->seq == seq && !s->id && s->shash == shash ? s->err : 0;
}

uint32_t
tw_dedup_item_hash(const char *h, size_t hlen, const void *a, size_t alen)
{
    /* Constant time whatever the payload: the handler, the length and the
     * first and last 32 bytes of the arguments. */
    const unsigned char *p = a;
    uint64_t x = tw_hash_bytes(h, hlen) * 0x9e3779b97f4a7c15ULL;
    x ^= alen;
    if (alen <= 64) {
        x ^= tw_hash_bytes(p, alen);
    } else {
        x ^= tw_hash_bytes(p, 32) * 31 + tw_hash_bytes(p + alen - 32, 32);
    }
    x ^= x >> 29;
    return (uint32_t)(x ^ (x >> 32)) | 1u;
}

typedef struct {
    int (*known)(uint64_t, void *);
    void *arg;
    uint64_t *gone;
    size_t ngone, cap;
} s_gc_t;

static void
s_gc_scan(uint64_t id, void *val, void *arg)
{
    s_gc_t *g = arg;
    (void)val;
    if (!g->known(id, g->arg)) {
        if (g->ngone == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 16;
            g->gone = tw_realloc(g->gone, g->cap * sizeof *g->gone);
        }
        g->gone[g->ngone++] = id;
    }
}

size_t
tw_dedup_gc(tw_dedup_t *d, int (*known)(uint64_t cid, void *arg), void *arg)
{
    s_gc_t g = {known, arg, NULL, 0, 0};
    tw_idmap_each(&d->clients, s_gc_scan, &g);
    for (size_t i = 0; i < g.ngone; i++) {
        s_free_ring(tw_idmap_del(&d->clients, g.gone[i]));
    }
    if (g.ngone) {
        d->last = NULL;
        d->last_cid = 0;
    }
    tw_free(g.gone);
    return g.ngone;
}
