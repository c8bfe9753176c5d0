/*  broker/state/tindex.h - records in change order, paged newest first.
 *
 *  A task record is listed by its change number (PROTOCOL.md 16.1): a
 *  broker-wide counter that grows at every state change, so a record
 *  always joins the newest end of the index of its state. Pages walk
 *  from the newest end down, and a cursor is a change number: a page
 *  starts below it with a binary search, so the millionth record is as
 *  quick to reach as the first and no reply walks more than it must.
 *
 *  The index is an array of slots in key order. A slot holds an item (a
 *  pointer, at least 2-aligned) or, once its item has gone, a hole that
 *  remembers the item's key (key << 1 | 1), so the array stays sorted and
 *  searchable without touching the items. Items carry their own key,
 *  read through the `key` function; the index stores nothing else, so it
 *  costs one pointer per record and never writes into an item. Removing
 *  the oldest item (the retention sweep) or the newest is O(1); removing
 *  one in the middle finds it by binary search and leaves a hole. Holes
 *  are squeezed out when they are more than half of the array, and the
 *  array's unused front is given back when it is more than half of it,
 *  so the amortised cost of every operation is O(1) plus the search.
 *
 *      start                                 len
 *        v                                     v
 *      [ a3 | hole(5) | a7 | a8 | hole(9) | a12 ]     keys 3 < 5 < ... < 12
 *                                               ^ walks start here, downward
 *
 *  Positions (size_t) are valid until the next push or remove. No I/O,
 *  no clock; broker loop thread only.
 */
#ifndef TW_BROKER_TINDEX_H
#define TW_BROKER_TINDEX_H

#include <stddef.h>
#include <stdint.h>

/* The key of an item: fixed while it is in the index, below 2^63. */
typedef uint64_t (*tw_tindex_key_fn)(const void *item);

typedef struct {
    uintptr_t *slots;
    size_t start, len, cap; /* slots[start..len) are in use */
    size_t holes;           /* holes among them */
    tw_tindex_key_fn key;
} tw_tindex_t;

/* An empty index whose items' keys `key` reads. */
void tw_tindex_init(tw_tindex_t *ix, tw_tindex_key_fn key);

/* Free the array (not the items). The index is empty afterwards. */
void tw_tindex_free(tw_tindex_t *ix);

/* Add `item` at the newest end. Its key must be above every key the
 * index holds or held (holes included): asserted. Aborts on OOM. */
void tw_tindex_push(tw_tindex_t *ix, void *item);

/* Take `item` out. Returns 0, or TW_ENOENT if it is not in the index. */
int tw_tindex_remove(tw_tindex_t *ix, const void *item);

/* Items in the index. */
size_t tw_tindex_count(const tw_tindex_t *ix);

/* The oldest item, or NULL. */
void *tw_tindex_oldest(const tw_tindex_t *ix);

/* Walking newest first: tw_tindex_end is the position above the newest
 * item; tw_tindex_below the position above the newest item whose key is
 * below `key`. tw_tindex_prev moves *pos down to the next item and
 * returns it, or returns NULL at the oldest end; *holes (if not NULL)
 * counts the holes it stepped over, for a caller that bounds its work. */
size_t tw_tindex_end(const tw_tindex_t *ix);
size_t tw_tindex_below(const tw_tindex_t *ix, uint64_t key);
void *tw_tindex_prev(const tw_tindex_t *ix, size_t *pos, size_t *holes);

#endif /* TW_BROKER_TINDEX_H */
