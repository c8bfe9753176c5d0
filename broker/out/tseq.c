/*  broker/out/tseq.c - per-topic sequence numbers (see tseq.h).
 *
 *  One heap record per topic holds the topic's bytes and its counter; the
 *  strmap borrows the record's copy of the topic as its key, so an entry
 *  and its key live and die together.
 */
#include "broker/out/tseq.h"
#include "common/alloc.h"
#include "common/log.h"

#include <string.h>

typedef struct {
    uint64_t n;
    size_t len;
    char topic[]; /* len bytes, NUL-terminated for logs */
} s_rec_t;

void
tw_tseq_init(tw_tseq_t *t)
{
    memset(t, 0, sizeof *t);
    tw_strmap_init(&t->map);
}

void
tw_tseq_free(tw_tseq_t *t)
{
    for (size_t i = 0; i < t->map.cap; i++) {
        if (t->map.slots[i].key) {
            tw_free(t->map.slots[i].val);
        }
    }
    tw_strmap_free(&t->map);
    t->capped = 0;
}

uint64_t
tw_tseq_next(tw_tseq_t *t, const char *topic, size_t len)
{
    s_rec_t *r = tw_strmap_get(&t->map, topic, len);
    if (!r) {
        if (t->map.len >= TW_TSEQ_MAX) {
            if (!t->capped) {
                t->capped = 1;
                tw_warn("status.topics", "more than %u status topics: new "
                        "ones are published with tseq 0", TW_TSEQ_MAX);
            }
            return 0;
        }
        r = tw_malloc(sizeof *r + len + 1);
        r->n = 0;
        r->len = len;
        memcpy(r->topic, topic, len);
        r->topic[len] = '\0';
        tw_strmap_put(&t->map, r->topic, len, r);
    }
    return ++r->n;
}

uint64_t
tw_tseq_last(const tw_tseq_t *t, const char *topic, size_t len)
{
    const s_rec_t *r = tw_strmap_get(&t->map, topic, len);
    return r ? r->n : 0;
}

int
tw_tseq_forget(tw_tseq_t *t, const char *topic, size_t len)
{
    s_rec_t *r = tw_strmap_del(&t->map, topic, len);
    tw_free(r);
    return r != NULL;
}

size_t
tw_tseq_forget_prefix(tw_tseq_t *t, const char *prefix, size_t len)
{
    size_t n = 0;
    /* Deleting shifts entries backwards, so rescan a slot after a hit. */
    for (size_t i = 0; i < t->map.cap;) {
        const tw_strmap_entry_t *en = &t->map.slots[i];
        if (en->key && en->klen >= len && memcmp(en->key, prefix, len) == 0) {
            s_rec_t *r = tw_strmap_del(&t->map, en->key, en->klen);
            tw_free(r);
            n++;
            continue;
        }
        i++;
    }
    return n;
}

size_t
tw_tseq_count(const tw_tseq_t *t)
{
    return t->map.len;
}

void
tw_tseq_encode(const tw_tseq_t *t, tw_enc_t *e)
{
    tw_enc_map(e, t->map.len);
    for (size_t i = 0; i < t->map.cap; i++) {
        const tw_strmap_entry_t *en = &t->map.slots[i];
        if (en->key) {
            const s_rec_t *r = en->val;
            tw_enc_str(e, r->topic, r->len);
            tw_enc_uint(e, r->n);
        }
    }
}
