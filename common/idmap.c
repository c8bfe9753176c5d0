/*  common/idmap.c - open-addressing id map (see idmap.h).
 *
 *  The load factor stays under 1/2; ids are mixed with a 64-bit finalizer
 *  because broker ids are sequential and would otherwise cluster.
 */
#include "common/idmap.h"
#include "common/alloc.h"
#include "common/error.h"

#include <string.h>

static inline size_t
s_hash(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (size_t)x;
}

void
tw_idmap_init(tw_idmap_t *m)
{
    memset(m, 0, sizeof *m);
}

void
tw_idmap_free(tw_idmap_t *m)
{
    tw_free(m->keys);
    tw_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Double the table. Returns 0, or TW_ENOMEM with the map unchanged. */
static int
s_grow(tw_idmap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    uint64_t *ok = m->keys;
    void **ov = m->vals;
    size_t ocap = m->cap;
    uint64_t *nk = tw_try_calloc(ncap, sizeof *m->keys);
    void **nv = tw_try_calloc(ncap, sizeof *m->vals);
    if (!nk || !nv) {
        tw_free(nk);
        tw_free(nv);
        return TW_ENOMEM;
    }
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    m->len = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (ok[i]) {
            tw_idmap_put(m, ok[i], ov[i]);
        }
    }
    tw_free(ok);
    tw_free(ov);
    return 0;
}

int
tw_idmap_reserve(tw_idmap_t *m, size_t extra)
{
    while ((m->len + extra) * 2 > m->cap) {
        if (s_grow(m) != 0) {
            return TW_ENOMEM;
        }
    }
    return 0;
}

int
tw_idmap_put(tw_idmap_t *m, uint64_t id, void *val)
{
    if (id == 0) {
        return TW_EINVAL;
    }
    if ((m->len + 1) * 2 > m->cap && s_grow(m) != 0) {
        tw_oom(m->cap * 2 * (sizeof *m->keys + sizeof *m->vals));
    }
    size_t mask = m->cap - 1;
    for (size_t i = s_hash(id) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == id) {
            m->vals[i] = val;
            return 0;
        }
        if (m->keys[i] == 0) {
            m->keys[i] = id;
            m->vals[i] = val;
            m->len++;
            return 0;
        }
    }
}

void *
tw_idmap_get(const tw_idmap_t *m, uint64_t id)
{
    if (!m->cap || id == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    for (size_t i = s_hash(id) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == id) {
            return m->vals[i];
        }
        if (m->keys[i] == 0) {
            return NULL;
        }
    }
}

void *
tw_idmap_del(tw_idmap_t *m, uint64_t id)
{
    if (!m->cap || id == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    size_t i = s_hash(id) & mask;
    while (m->keys[i] != id) {
        if (m->keys[i] == 0) {
            return NULL;
        }
        i = (i + 1) & mask;
    }
    void *val = m->vals[i];
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = s_hash(m->keys[j]) & mask;
        /* Move j into the hole unless its home lies in (hole, j]. */
        int in_range = hole <= j ? (home > hole && home <= j)
                                 : (home > hole || home <= j);
        if (!in_range) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->len--;
    return val;
}

void
tw_idmap_each(const tw_idmap_t *m, void (*fn)(uint64_t, void *, void *),
              void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            fn(m->keys[i], m->vals[i], arg);
        }
    }
}
