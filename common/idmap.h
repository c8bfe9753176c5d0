/*  common/idmap.h - a hash map from 64-bit ids to pointers.
 *
 *  Components refer to each other by id, never by pointer (a vanished
 *  worker then gives TW_ENOENT, not a use-after-free); this map is how an id
 *  becomes a pointer again. Open addressing with linear probing and
 *  backward-shift deletion, so there are no tombstones and lookups stay
 *  short under churn. Id 0 is reserved as the empty marker. Values are
 *  borrowed: the map never frees them. Single-threaded.
 */
#ifndef TW_IDMAP_H
#define TW_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;
    void **vals;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} tw_idmap_t;

/* Make an empty map (no allocation until the first put). */
void tw_idmap_init(tw_idmap_t *m);

/* Free the table (not the values). The map may be reused after init. */
void tw_idmap_free(tw_idmap_t *m);

/* Insert or replace. `id` must not be 0. Returns 0 or TW_EINVAL; aborts
 * (common/alloc.h) when the table cannot grow. */
int tw_idmap_put(tw_idmap_t *m, uint64_t id, void *val);

/* Make room for `extra` more entries, so that that many puts of new ids
 * do not allocate (and cannot abort). Returns 0 or TW_ENOMEM with the
 * map unchanged. */
int tw_idmap_reserve(tw_idmap_t *m, size_t extra);

/* The value for `id`, or NULL. */
void *tw_idmap_get(const tw_idmap_t *m, uint64_t id);

/* Remove `id`; returns its value, or NULL if it was absent. */
void *tw_idmap_del(tw_idmap_t *m, uint64_t id);

/* Call `fn` for every entry; `fn` must not change the map. */
void tw_idmap_each(const tw_idmap_t *m,
                   void (*fn)(uint64_t id, void *val, void *arg), void *arg);

#endif /* TW_IDMAP_H */
