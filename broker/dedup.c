/*  broker/dedup.c - the submission table (see dedup.h). */
#include "broker/dedup.h"
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
s_free_client(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_idmap_t *m = val;
    tw_idmap_free(m);
    tw_free(m);
}

void
tw_dedup_destroy(tw_dedup_t *d)
{
    tw_idmap_each(&d->clients, s_free_client, NULL);
    tw_idmap_free(&d->clients);
    memset(d, 0, sizeof *d);
}

uint64_t
tw_dedup_get(const tw_dedup_t *d, uint64_t cid, uint64_t seq)
{
    if (!cid || !seq) {
        return 0;
    }
    const tw_idmap_t *m = tw_idmap_get(&d->clients, cid);
    return m ? (uint64_t)(uintptr_t)tw_idmap_get(m, seq) : 0;
}

void
tw_dedup_put(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id)
{
    if (!cid || !seq || !id) {
        return;
    }
    tw_idmap_t *m = tw_idmap_get(&d->clients, cid);
    if (!m) {
        m = tw_malloc(sizeof *m);
        tw_idmap_init(m);
        tw_idmap_put(&d->clients, cid, m);
    }
    size_t before = m->len;
    tw_idmap_put(m, seq, (void *)(uintptr_t)id);
    d->entries += m->len - before;
}

uint64_t
tw_dedup_item_hash(const char *h, size_t hlen, const void *a, size_t alen)
{
    uint64_t x = tw_hash_bytes(h, hlen);
    return (x * 0x9e3779b97f4a7c15ULL) ^ tw_hash_bytes(a, alen) ^ alen;
}

void
tw_dedup_del(tw_dedup_t *d, uint64_t cid, uint64_t seq, uint64_t id)
{
    if (!cid || !seq) {
        return;
    }
    tw_idmap_t *m = tw_idmap_get(&d->clients, cid);
    if (!m || (uint64_t)(uintptr_t)tw_idmap_get(m, seq) != id) {
        return;
    }
    tw_idmap_del(m, seq);
    d->entries--;
    if (m->len == 0) {
        tw_idmap_del(&d->clients, cid);
        tw_idmap_free(m);
        tw_free(m);
    }
}
