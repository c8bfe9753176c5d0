/*  common/strmap.c - string-keyed open-addressing map (see strmap.h). */
#include "common/strmap.h"
#include "common/alloc.h"
#include "common/util.h"

#include <string.h>

void
tw_strmap_init(tw_strmap_t *m)
{
    memset(m, 0, sizeof *m);
}

void
tw_strmap_free(tw_strmap_t *m)
{
    tw_free(m->slots);
    memset(m, 0, sizeof *m);
}

static int
s_eq(const tw_strmap_entry_t *e, const char *key, size_t klen, uint64_t h)
{
    return e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0;
}

static void
s_grow(tw_strmap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    tw_strmap_entry_t *old = m->slots;
    size_t ocap = m->cap;
    m->slots = tw_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    m->len = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].key) {
            tw_strmap_put(m, old[i].key, old[i].klen, old[i].val);
        }
    }
    tw_free(old);
}

int
tw_strmap_put(tw_strmap_t *m, const char *key, size_t klen, void *val)
{
    if ((m->len + 1) * 2 > m->cap) {
        s_grow(m);
    }
    uint64_t h = tw_hash_bytes(key, klen);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        tw_strmap_entry_t *e = &m->slots[i];
        if (!e->key) {
            e->key = key;
            e->klen = klen;
            e->hash = h;
            e->val = val;
            m->len++;
            return 0;
        }
        if (s_eq(e, key, klen, h)) {
            e->key = key;
            e->val = val;
            return 0;
        }
    }
}

static size_t
s_find(const tw_strmap_t *m, const char *key, size_t klen)
{
    if (!m->cap) {
        return (size_t)-1;
    }
    uint64_t h = tw_hash_bytes(key, klen);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (!m->slots[i].key) {
            return (size_t)-1;
        }
        if (s_eq(&m->slots[i], key, klen, h)) {
            return i;
        }
    }
}

void *
tw_strmap_get(const tw_strmap_t *m, const char *key, size_t klen)
{
    size_t i = s_find(m, key, klen);
    return i == (size_t)-1 ? NULL : m->slots[i].val;
}

void *
tw_strmap_del(tw_strmap_t *m, const char *key, size_t klen)
{
    size_t i = s_find(m, key, klen);
    if (i == (size_t)-1) {
        return NULL;
    }
    void *val = m->slots[i].val;
    size_t mask = m->cap - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        int in_range = hole <= j ? (home > hole && home <= j)
                                 : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    m->len--;
    return val;
}
