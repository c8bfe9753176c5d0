/*  common/strmap.h - a hash map from byte-string keys to pointers.
 *
 *  The companion of idmap.h for names chosen by users (station ids). Open
 *  addressing with linear probing and backward-shift deletion. Keys are
 *  borrowed: the map stores the pointer and length it was given, so a key
 *  must live as long as its entry (typically it is a field of the value).
 *  Values are borrowed too. Single-threaded.
 */
#ifndef TW_STRMAP_H
#define TW_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;
    size_t klen;
    uint64_t hash;
    void *val;
} tw_strmap_entry_t;

typedef struct {
    tw_strmap_entry_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} tw_strmap_t;

void tw_strmap_init(tw_strmap_t *m);
void tw_strmap_free(tw_strmap_t *m);

/* Insert or replace. Returns 0. */
int tw_strmap_put(tw_strmap_t *m, const char *key, size_t klen, void *val);

/* The value for `key`, or NULL. */
void *tw_strmap_get(const tw_strmap_t *m, const char *key, size_t klen);

/* Remove `key`; returns its value or NULL. */
void *tw_strmap_del(tw_strmap_t *m, const char *key, size_t klen);

#endif /* TW_STRMAP_H */
