/*  broker/state/replog.c - the replication log of a broker pair (see
 *  replog.h).
 *
 *  The backlog is a ring of entries, oldest at `head`, each owning a copy
 *  of its batch and costing the budget its length plus S_OVERHEAD; seqs
 *  in it are consecutive, so entry k holds seq
 *  first + k. `end_off` is the running total of bytes appended up to and
 *  including a batch, which makes "bytes in flight" and "bytes behind" a
 *  subtraction. The follower's cursor is `sent`; `acked` is its last
 *  acknowledgement, with the offsets of both.
 */
#include "broker/state/replog.h"
#include "common/alloc.h"
#include "common/error.h"

#include <string.h>

/* What an entry costs the budget besides its bytes, so that a stream of
 * empty batches cannot grow the ring without bound. */
#define S_OVERHEAD 64

typedef struct {
    uint64_t epoch, seq, at_ms;
    uint64_t end_off;
    unsigned char *data;
    size_t len;
} s_entry_t;

struct tw_replog {
    tw_repl_mode_t mode;
    size_t budget, window;
    tw_bstar_pos_t pos;
    uint64_t epoch; /* the epoch of the next batch appended */
    tw_replog_era_t eras[TW_REPLOG_ERAS];
    size_t neras;
    /* backlog */
    s_entry_t *ring;
    size_t cap, head, count;
    size_t bytes;
    uint64_t total_off; /* bytes appended or applied, ever */
    /* follower */
    tw_replog_follower_t follower;
    uint64_t sent, acked;
    uint64_t sent_off, acked_off;
};

int
tw_repl_mode_parse(const char *s)
{
    if (s && strcmp(s, "sync") == 0) {
        return TW_REPL_SYNC;
    }
    if (s && strcmp(s, "async") == 0) {
        return TW_REPL_ASYNC;
    }
    return -1;
}

const char *
tw_repl_mode_name(tw_repl_mode_t mode)
{
    return mode == TW_REPL_SYNC ? "sync" : "async";
}

/* ---- the lineage -------------------------------------------------------- */

static void
s_add_era(tw_replog_t *r, uint64_t epoch, uint64_t first_seq)
{
    if (r->neras && r->eras[r->neras - 1].epoch == epoch) {
        return;
    }
    if (r->neras == TW_REPLOG_ERAS) {
        memmove(r->eras, r->eras + 1, (TW_REPLOG_ERAS - 1) * sizeof *r->eras);
        r->neras--;
    }
    r->eras[r->neras].epoch = epoch;
    r->eras[r->neras].first_seq = first_seq;
    r->neras++;
}

static void
s_set_eras(tw_replog_t *r, const tw_replog_era_t *eras, size_t n)
{
    r->neras = 0;
    size_t skip = n > TW_REPLOG_ERAS ? n - TW_REPLOG_ERAS : 0;
    for (size_t i = skip; i < n; i++) {
        s_add_era(r, eras[i].epoch, eras[i].first_seq);
    }
}

size_t
tw_replog_eras(const tw_replog_t *r, const tw_replog_era_t **out)
{
    *out = r->eras;
    return r->neras;
}

/* ---- the backlog -------------------------------------------------------- */

static s_entry_t *
s_at(const tw_replog_t *r, size_t k)
{
    return &r->ring[(r->head + k) % r->cap];
}

static const s_entry_t *
s_find(const tw_replog_t *r, uint64_t seq)
{
    if (!r->count) {
        return NULL;
    }
    uint64_t first = s_at(r, 0)->seq;
    if (seq < first || seq - first >= r->count) {
        return NULL;
    }
    return s_at(r, (size_t)(seq - first));
}

static void
s_drop_oldest(tw_replog_t *r)
{
    s_entry_t *e = s_at(r, 0);
    r->bytes -= e->len + S_OVERHEAD;
    tw_free(e->data);
    e->data = NULL;
    r->head = (r->head + 1) % r->cap;
    r->count--;
}

static void
s_clear(tw_replog_t *r)
{
    while (r->count) {
        s_drop_oldest(r);
    }
    r->head = 0;
}

/* Keep a copy of batch (epoch, seq); the batch before it must be the
 * newest entry (or the backlog is emptied first). */
static void
s_keep(tw_replog_t *r, uint64_t epoch, uint64_t seq, const void *data,
       size_t len, uint64_t now_ms)
{
    r->total_off += len;
    if (r->count && s_at(r, r->count - 1)->seq + 1 != seq) {
        s_clear(r);
    }
    /* A batch larger than the whole budget is not kept, and nothing older
     * can be resent past it. */
    if (len + S_OVERHEAD > r->budget) {
        s_clear(r);
        return;
    }
    while (r->count && r->bytes + len + S_OVERHEAD > r->budget) {
        s_drop_oldest(r);
    }
    unsigned char *copy = tw_try_malloc(len ? len : 1);
    if (!copy) {
        s_clear(r);
        return;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        s_entry_t *ring = tw_calloc(cap, sizeof *ring);
        for (size_t k = 0; k < r->count; k++) {
            ring[k] = *s_at(r, k);
        }
        tw_free(r->ring);
        r->ring = ring;
        r->cap = cap;
        r->head = 0;
    }
    if (len) {
        memcpy(copy, data, len);
    }
    s_entry_t *e = s_at(r, r->count);
    e->epoch = epoch;
    e->seq = seq;
    e->at_ms = now_ms;
    e->end_off = r->total_off;
    e->data = copy;
    e->len = len;
    r->count++;
    r->bytes += len + S_OVERHEAD;
}

uint64_t
tw_replog_backlog_first(const tw_replog_t *r)
{
    return r->count ? s_at(r, 0)->seq : 0;
}

static void
s_view(const s_entry_t *e, tw_replog_batch_t *out)
{
    out->epoch = e->epoch;
    out->seq = e->seq;
    out->data = e->data;
    out->len = e->len;
    out->at_ms = e->at_ms;
}

int
tw_replog_get(const tw_replog_t *r, uint64_t seq, tw_replog_batch_t *out)
{
    const s_entry_t *e = s_find(r, seq);
    if (!e) {
        return 0;
    }
    s_view(e, out);
    return 1;
}

/* ---- life cycle --------------------------------------------------------- */

tw_replog_t *
tw_replog_new(const tw_replog_config_t *cfg)
{
    tw_replog_t *r = tw_calloc(1, sizeof *r);
    r->mode = cfg->mode;
    r->budget = cfg->backlog_bytes ? cfg->backlog_bytes : 1;
    r->window = cfg->window_bytes;
    r->pos = cfg->pos;
    s_set_eras(r, cfg->eras, cfg->neras);
    r->epoch = r->neras ? r->eras[r->neras - 1].epoch : cfg->pos.epoch;
    if (cfg->pos.epoch > r->epoch) {
        r->epoch = cfg->pos.epoch;
    }
    r->sent = r->acked = cfg->pos.seq;
    return r;
}

void
tw_replog_destroy(tw_replog_t **rp)
{
    tw_replog_t *r = *rp;
    if (!r) {
        return;
    }
    s_clear(r);
    tw_free(r->ring);
    tw_free(r);
    *rp = NULL;
}

tw_bstar_pos_t
tw_replog_pos(const tw_replog_t *r)
{
    return r->pos;
}

tw_repl_mode_t
tw_replog_mode(const tw_replog_t *r)
{
    return r->mode;
}

/* ---- the active --------------------------------------------------------- */

int
tw_replog_begin_epoch(tw_replog_t *r, uint64_t epoch)
{
    uint64_t last = r->neras ? r->eras[r->neras - 1].epoch : 0;
    if (epoch <= last || epoch <= r->pos.epoch) {
        return TW_EINVAL;
    }
    r->epoch = epoch;
    s_add_era(r, epoch, r->pos.seq + 1);
    return 0;
}

uint64_t
tw_replog_append(tw_replog_t *r, const void *data, size_t len,
                 uint64_t now_ms)
{
    uint64_t seq = r->pos.seq + 1;
    if (!r->neras || r->eras[r->neras - 1].epoch != r->epoch) {
        s_add_era(r, r->epoch, seq);
    }
    s_keep(r, r->epoch, seq, data, len, now_ms);
    r->pos.epoch = r->epoch;
    r->pos.seq = seq;
    return seq;
}

void
tw_replog_plan(const tw_replog_t *r, tw_bstar_pos_t peer,
               tw_replog_plan_t *out)
{
    memset(out, 0, sizeof *out);
    out->snapshot = 1;
    uint64_t first = tw_replog_backlog_first(r);
    if (peer.epoch == 0 && peer.seq == 0) {
        /* A fresh store: the stream from the very start, if we have it. */
        if (r->pos.seq == 0 || first == 1) {
            out->snapshot = 0;
            out->from_seq = 1;
        }
        return;
    }
    size_t i = 0;
    while (i < r->neras && r->eras[i].epoch != peer.epoch) {
        i++;
    }
    if (i == r->neras || peer.seq < r->eras[i].first_seq) {
        out->unknown_lineage = 1;
        return;
    }
    uint64_t end = i + 1 < r->neras ? r->eras[i + 1].first_seq - 1
                                    : r->pos.seq;
    if (peer.seq > end) {
        out->diverged = peer.seq - end;
        return;
    }
    if (peer.seq == r->pos.seq || (first && first <= peer.seq + 1)) {
        out->snapshot = 0;
        out->from_seq = peer.seq + 1;
    }
}

void
tw_replog_follow(tw_replog_t *r, uint64_t from_seq, int catchup)
{
    r->follower = catchup ? TW_REPLOG_CATCHUP : TW_REPLOG_FOLLOWING;
    r->sent = r->acked = from_seq ? from_seq - 1 : 0;
    const s_entry_t *e = s_find(r, r->sent);
    uint64_t off = e ? e->end_off : 0;
    if (!e) {
        /* The batch before the cursor left the backlog (or never was):
         * the bytes behind count from the oldest batch kept. */
        const s_entry_t *next = s_find(r, from_seq);
        off = next ? next->end_off - next->len : r->total_off;
    }
    r->sent_off = r->acked_off = off;
}

void
tw_replog_attach(tw_replog_t *r)
{
    if (r->follower == TW_REPLOG_CATCHUP) {
        r->follower = TW_REPLOG_FOLLOWING;
    }
}

void
tw_replog_detach(tw_replog_t *r)
{
    r->follower = TW_REPLOG_DETACHED;
}

tw_replog_follower_t
tw_replog_follower(const tw_replog_t *r)
{
    return r->follower;
}

int
tw_replog_next(tw_replog_t *r, tw_replog_batch_t *out)
{
    if (r->follower == TW_REPLOG_DETACHED || r->sent >= r->pos.seq) {
        return 0;
    }
    if (r->sent > r->acked && r->sent_off - r->acked_off >= r->window) {
        return 0;
    }
    const s_entry_t *e = s_find(r, r->sent + 1);
    if (!e) {
        return TW_ENOENT;
    }
    s_view(e, out);
    r->sent = e->seq;
    r->sent_off = e->end_off;
    return 1;
}

int
tw_replog_ack(tw_replog_t *r, uint64_t seq)
{
    if (seq > r->sent) {
        return TW_EINVAL;
    }
    if (seq <= r->acked) {
        return 0;
    }
    r->acked = seq;
    const s_entry_t *e = s_find(r, seq);
    if (e) {
        r->acked_off = e->end_off;
    }
    return 0;
}

uint64_t
tw_replog_sent(const tw_replog_t *r)
{
    return r->sent;
}

uint64_t
tw_replog_acked(const tw_replog_t *r)
{
    return r->acked;
}

int
tw_replog_wait(const tw_replog_t *r, uint64_t seq)
{
    return r->mode == TW_REPL_SYNC && r->follower == TW_REPLOG_FOLLOWING &&
           r->acked < seq;
}

void
tw_replog_lag(const tw_replog_t *r, uint64_t now_ms, tw_replog_lag_t *out)
{
    memset(out, 0, sizeof *out);
    if (r->acked >= r->pos.seq) {
        return;
    }
    out->batches = r->pos.seq - r->acked;
    out->bytes = r->total_off - r->acked_off;
    const s_entry_t *e = s_find(r, r->acked + 1);
    if (!e && r->count) {
        e = s_at(r, 0); /* older ones left the backlog: at least this */
    }
    if (e && now_ms > e->at_ms) {
        out->ms = now_ms - e->at_ms;
    }
}

/* ---- the passive -------------------------------------------------------- */

int
tw_replog_apply(tw_replog_t *r, uint64_t epoch, uint64_t seq,
                const void *data, size_t len, uint64_t now_ms)
{
    if (seq != r->pos.seq + 1 || epoch < r->pos.epoch || epoch == 0) {
        return TW_EPROTO;
    }
    if (!r->neras || epoch > r->eras[r->neras - 1].epoch) {
        s_add_era(r, epoch, seq);
    }
    s_keep(r, epoch, seq, data, len, now_ms);
    r->epoch = epoch;
    r->pos.epoch = epoch;
    r->pos.seq = seq;
    /* What a passive has applied, it has: were it to take over, nothing
     * of it is owed to anyone. */
    r->sent = r->acked = seq;
    r->sent_off = r->acked_off = r->total_off;
    return 0;
}

void
tw_replog_reset(tw_replog_t *r, tw_bstar_pos_t pos,
                const tw_replog_era_t *eras, size_t neras)
{
    s_clear(r);
    s_set_eras(r, eras, neras);
    r->pos = pos;
    r->epoch = r->neras ? r->eras[r->neras - 1].epoch : pos.epoch;
    if (pos.epoch > r->epoch) {
        r->epoch = pos.epoch;
    }
    r->sent = r->acked = pos.seq;
    r->sent_off = r->acked_off = r->total_off;
    r->follower = TW_REPLOG_DETACHED;
}
