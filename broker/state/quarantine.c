/*  broker/state/quarantine.c - strikes and holds per routing id (see
 *  quarantine.h).
 *
 *  One entry per routing id that erred recently: its copy of the id (the
 *  strmap's key), the start of its counting window, the strikes in it and
 *  the end of its hold. A strike past the window starts a new window.
 */
#include "broker/state/quarantine.h"
#include "common/alloc.h"

#include <string.h>

typedef struct {
    char *ident;
    size_t ilen;
    uint64_t window_start;
    uint32_t strikes;
    uint64_t until; /* end of the hold, 0 if not held */
} s_peer_t;

void
tw_quarantine_init(tw_quarantine_t *q, const tw_quarantine_cfg_t *cfg)
{
    memset(q, 0, sizeof *q);
    q->cfg = *cfg;
    tw_strmap_init(&q->peers);
}

static void
s_peer_free(s_peer_t *p)
{
    tw_free(p->ident);
    tw_free(p);
}

void
tw_quarantine_free(tw_quarantine_t *q)
{
    for (size_t i = 0; i < q->peers.cap; i++) {
        if (q->peers.slots[i].key) {
            s_peer_free(q->peers.slots[i].val);
        }
    }
    tw_strmap_free(&q->peers);
}

static int
s_expired(const tw_quarantine_t *q, const s_peer_t *p, uint64_t now)
{
    return now >= p->until && now - p->window_start >= q->cfg.window_ms;
}

void
tw_quarantine_gc(tw_quarantine_t *q, uint64_t now)
{
    /* Deleting shifts entries back, so rescan the slot just emptied. */
    size_t i = 0;
    while (i < q->peers.cap) {
        tw_strmap_entry_t *e = &q->peers.slots[i];
        if (e->key && s_expired(q, e->val, now)) {
            s_peer_t *p = e->val;
            tw_strmap_del(&q->peers, p->ident, p->ilen);
            s_peer_free(p);
            continue;
        }
        i++;
    }
}

void
tw_quarantine_forgive(tw_quarantine_t *q, const void *ident, size_t ilen,
                      uint64_t now)
{
    s_peer_t *p = tw_strmap_get(&q->peers, ident, ilen);
    if (p && now >= p->until) {
        p->strikes = 0;
        p->window_start = now;
    }
}

int
tw_quarantine_strike(tw_quarantine_t *q, const void *ident, size_t ilen,
                     uint64_t now)
{
    s_peer_t *p = tw_strmap_get(&q->peers, ident, ilen);
    if (!p) {
        if (q->peers.len >= q->cfg.max_peers) {
            tw_quarantine_gc(q, now);
            if (q->peers.len >= q->cfg.max_peers) {
                return 0;
            }
        }
        p = tw_calloc(1, sizeof *p);
        p->ident = tw_malloc(ilen ? ilen : 1);
        memcpy(p->ident, ident, ilen);
        p->ilen = ilen;
        p->window_start = now;
        tw_strmap_put(&q->peers, p->ident, p->ilen, p);
    }
    if (now < p->until) {
        return 0; /* already held */
    }
    if (now - p->window_start >= q->cfg.window_ms) {
        p->window_start = now;
        p->strikes = 0;
    }
    if (++p->strikes < q->cfg.bound) {
        return 0;
    }
    p->until = now + q->cfg.hold_ms;
    p->strikes = 0;
    p->window_start = now;
    q->held++;
    return 1;
}

int
tw_quarantine_held(const tw_quarantine_t *q, const void *ident, size_t ilen,
                   uint64_t now)
{
    if (q->peers.len == 0) {
        return 0;
    }
    const s_peer_t *p = tw_strmap_get(&q->peers, ident, ilen);
    return p && now < p->until;
}

size_t
tw_quarantine_tracked(const tw_quarantine_t *q)
{
    return q->peers.len;
}
