/*  broker/ha.c - this broker's side of a broker pair (see ha.h).
 *
 *  The passive's store has a writer thread of its own (state/writer.h)
 *  that applies the stream's batches as they come; the active's store is
 *  the broker's own (core/persist.c), which streams. A snapshot for a
 *  passive is read by tw__persist_walk in pieces of about a megabyte, each
 *  in its own read transaction, and written on the passive into a side
 *  store that is swapped in whole.
 */
#include "broker/ha.h"
#include "broker/core/persist.h"
#include "broker/state/auth.h"
#include "broker/state/pair.h"
#include "broker/state/replops.h"
#include "broker/state/store.h"
#include "broker/state/writer.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_STOP_GRACE_MS 2000 /* the passive's writer, at a swap or a stop */

typedef struct tw_ha {
    tw_broker_t *b;
    tw_ha_hooks_t hooks;
    tw_store_t *store;    /* passive: the store the stream is applied to */
    tw_writer_t *writer;
    tw_store_t *side;     /* passive: a snapshot being received */
    uv_timer_t stop_timer; /* deposed: stop once this turn is over */
} tw_ha_t;

int
tw__ha_check(const tw_broker_cfg_t *cfg, char *why, size_t wlen)
{
    int pair = cfg->role != NULL;
    if (!pair && (cfg->peer_bind || cfg->peer)) {
        snprintf(why, wlen, "--peer-bind and --peer are for a broker pair: "
                 "give --role primary or --role backup too");
        return TW_EINVAL;
    }
    if (pair && (!cfg->data || !*cfg->data)) {
        snprintf(why, wlen, "--role %s needs --data: each broker of a pair "
                 "keeps its copy of the state in its own store", cfg->role);
        return TW_EINVAL;
    }
    if (pair && (!cfg->peer_bind || !*cfg->peer_bind || !cfg->peer ||
                 !*cfg->peer)) {
        snprintf(why, wlen, "--role %s needs --peer-bind (this broker's "
                 "endpoint for its peer) and --peer (the other broker's "
                 "--peer-bind)", cfg->role);
        return TW_EINVAL;
    }
    if (pair && !cfg->insecure && !tw_auth_endpoint_local(cfg->peer_bind)) {
        snprintf(why, wlen, "--peer-bind %s is not a loopback endpoint and "
                 "the peer socket has no CURVE yet: its traffic (every "
                 "task) would cross the network in plaintext; allow it "
                 "with --insecure", cfg->peer_bind);
        return TW_EINVAL;
    }
    return 0;
}

/* ---- the passive's store ---------------------------------------------- */

/* A batch of the stream is written: acknowledge it. */
static void
s_applied(tw_wbatch_t *wb, void *arg)
{
    tw_ha_t *ha = arg;
    if (wb->rc != 0) {
        tw_err("ha.apply", "batch %llu of the stream was not written: %s",
               (unsigned long long)wb->rseq, wb->err);
    } else if (ha->b->pair) {
        tw_pair_applied(ha->b->pair, wb->rseq);
    }
    tw_wbatch_free(wb);
}

static int
s_open_store(tw_ha_t *ha, tw_store_t **out, const char *dir, char *why,
             size_t wlen)
{
    const tw_broker_cfg_t *cfg = ha->b->cfg;
    return tw_store_open(out, dir, (uint64_t)cfg->data_size << 21,
                         tw_fsync_parse(cfg->fsync),
                         cfg->verify_store ? TW_STORE_VERIFY : 0, why, wlen);
}

/* Open the store at --data and start its writer. */
static int
s_passive_open(tw_ha_t *ha, char *why, size_t wlen)
{
    int rc = s_open_store(ha, &ha->store, ha->b->cfg->data, why, wlen);
    if (rc != 0) {
        return rc;
    }
    if (tw_store_mark_running(ha->store) != 0) {
        tw_warn("store.open", "%s: cannot write broker.lock: %s",
                ha->b->cfg->data, strerror(errno));
    }
    ha->writer = tw_writer_new(ha->b->loop, ha->store, s_applied, ha);
    if (!ha->writer) {
        snprintf(why, wlen, "%s: cannot start the store's writer thread",
                 ha->b->cfg->data);
        tw_store_close(&ha->store);
        return TW_EIO;
    }
    return 0;
}

/* Write what was handed over, stop the writer, close the store. */
static void
s_passive_close(tw_ha_t *ha)
{
    if (ha->writer) {
        tw_writer_stop(&ha->writer, S_STOP_GRACE_MS);
    }
    tw_store_close(&ha->store);
}

/* The store's pair record (meta/ha); none: a store that never was in a
 * pair. */
static int
s_read_meta(tw_ha_t *ha, tw_pair_meta_t *meta, char *why, size_t wlen)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = tw_store_get(ha->store, TW_DB_META, "ha", 2, &val, &vlen);
    if (rc == TW_ENOENT) {
        memset(meta, 0, sizeof *meta);
        meta->by = -1;
        return 0;
    }
    if (rc == 0) {
        rc = tw_pair_meta_decode(val, vlen, meta);
    }
    tw_free(val);
    if (rc != 0) {
        snprintf(why, wlen, "%s: the pair's record (meta/ha) cannot be "
                 "read: %s", ha->b->cfg->data, tw_strerror(rc));
    }
    return rc;
}

/* ---- what the pair asks of the broker --------------------------------- */

static int
s_activate(void *ud, uint64_t epoch, char *why, size_t wlen)
{
    tw_ha_t *ha = ud;
    tw_notice("ha.active", "active under epoch %llu: recovering the state "
              "from the store", (unsigned long long)epoch);
    s_passive_close(ha);
    /* What clients are sent from now on says who sends it. */
    tw_clients_set_ha(&ha->b->clients, epoch);
    ha->b->out.ha = epoch;
    return ha->hooks.recover(ha->b, why, wlen);
}

static void
s_on_stop(uv_timer_t *t)
{
    tw_ha_t *ha = t->data;
    ha->hooks.stop(ha->b);
}

static void
s_depose(void *ud, const char *why)
{
    tw_ha_t *ha = ud;
    if (ha->b->exit_code == 3 || ha->b->closing) {
        return;
    }
    tw_err("ha.deposed", "%s: stopping (exit status 3; started again, this "
           "broker comes back passive)", why);
    ha->b->exit_code = 3;
    uv_timer_start(&ha->stop_timer, s_on_stop, 0, 0);
}

static void
s_apply(void *ud, uint64_t epoch, uint64_t seq, const unsigned char *ops,
        size_t len)
{
    tw_ha_t *ha = ud;
    (void)epoch;
    if (!ha->writer) {
        return; /* active already: a late batch of the old stream */
    }
    size_t nops = 0;
    tw_replops_check(ops, len, TW_DB__COUNT, &nops, NULL, 0);
    tw_wbatch_t *wb = tw_wbatch_new();
    wb->ops = tw_malloc(len ? len : 1);
    memcpy(wb->ops, ops, len);
    wb->len = wb->cap = len;
    wb->nops = nops;
    wb->rseq = seq;
    tw_writer_submit(ha->writer, wb);
}

static void
s_release(void *ud, uint64_t seq)
{
    tw_ha_t *ha = ud;
    tw__persist_release(ha->b, seq);
}

/* ---- snapshots -------------------------------------------------------- */

typedef struct {
    tw_replops_t *out;
    size_t max;
    tw_pair_cursor_t *cur;
} s_walk_t;

static int
s_walk_one(const void *key, size_t klen, const void *val, size_t vlen,
           void *arg)
{
    s_walk_t *w = arg;
    if (klen > TW_REPLOP_MAX_KEY) {
        return TW_EPROTO;
    }
    tw_replops_add(w->out, TW_REPLOP_PUT, w->cur->db, key, klen, val, vlen);
    memcpy(w->cur->key, key, klen);
    w->cur->klen = klen;
    w->cur->started = 1;
    return w->out->len >= w->max ? 1 : 0;
}

static int
s_snap_read(void *ud, tw_pair_cursor_t *cur, tw_replops_t *out,
            size_t max_bytes, int *db, uint64_t *at)
{
    tw_ha_t *ha = ud;
    s_walk_t w = {out, max_bytes, cur};
    while (cur->db < TW_DB__COUNT) {
        *db = cur->db;
        int rc = tw__persist_walk(ha->b, cur->db,
                                  cur->started ? cur->key : NULL, cur->klen,
                                  s_walk_one, &w, at);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            return 1; /* a chunk's worth; this database goes on */
        }
        cur->db++;
        cur->started = 0;
        cur->klen = 0;
        if (out->nops > 0) {
            return cur->db < TW_DB__COUNT;
        }
    }
    return 0;
}

static void
s_side_path(tw_ha_t *ha, const char *file, char *out, size_t len)
{
    snprintf(out, len, "%s/catchup%s%s", ha->b->cfg->data, file ? "/" : "",
             file ? file : "");
}

/* Close and remove the side store. */
static void
s_side_drop(tw_ha_t *ha)
{
    tw_store_close(&ha->side);
    static const char *const files[] = {"data.mdb", "lock.mdb",
                                        "broker.lock"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        s_side_path(ha, files[i], path, sizeof path);
        unlink(path);
    }
    s_side_path(ha, NULL, path, sizeof path);
    rmdir(path);
}

static int
s_snap_begin(void *ud)
{
    tw_ha_t *ha = ud;
    s_side_drop(ha);
    char path[4096], why[512];
    s_side_path(ha, NULL, path, sizeof path);
    int rc = s_open_store(ha, &ha->side, path, why, sizeof why);
    if (rc != 0) {
        tw_err("ha.catchup", "cannot make the side store: %s", why);
    }
    return rc;
}

static int
s_snap_chunk(void *ud, const unsigned char *ops, size_t len)
{
    tw_ha_t *ha = ud;
    if (!ha->side) {
        return TW_ESTATE;
    }
    int rc = tw_store_begin(ha->side);
    size_t off = 0;
    tw_replop_t op;
    while (rc == 0 &&
           tw_replops_next(ops, len, TW_DB__COUNT, &off, &op, NULL, 0) == 1) {
        rc = tw_store_put(ha->side, (tw_db_t)op.db, op.key, op.klen, op.val,
                          op.vlen);
    }
    if (rc == 0) {
        rc = tw_store_commit(ha->side);
    }
    if (rc != 0) {
        tw_err("ha.catchup", "the side store cannot be written: %s",
               tw_store_error(ha->side));
    }
    return rc;
}

static int
s_snap_end(void *ud, int diverged, char *why, size_t wlen)
{
    tw_ha_t *ha = ud;
    const char *dir = ha->b->cfg->data;
    char from[4096], to[4096], old[4096];
    tw_store_close(&ha->side); /* synced */
    s_passive_close(ha);
    snprintf(to, sizeof to, "%s/data.mdb", dir);
    snprintf(old, sizeof old, "%s/replaced.mdb", dir);
    s_side_path(ha, "data.mdb", from, sizeof from);
    if (diverged && rename(to, old) != 0 && errno != ENOENT) {
        snprintf(why, wlen, "cannot keep %s aside as %s: %s", to, old,
                 strerror(errno));
    } else if (rename(from, to) != 0) {
        snprintf(why, wlen, "cannot move %s to %s: %s", from, to,
                 strerror(errno));
    } else {
        why[0] = '\0';
    }
    s_side_drop(ha);
    int rc = s_passive_open(ha, why[0] ? why + strlen(why) : why,
                            why[0] ? wlen - strlen(why) : wlen);
    return rc != 0 ? rc : why[0] ? TW_EIO : 0;
}

static void
s_snap_abort(void *ud)
{
    s_side_drop(ud);
}

static void
s_event(void *ud, const char *topic, const char *why)
{
    tw_ha_t *ha = ud;
    tw_broker_t *b = ha->b;
    if (!b->pair || !tw_status_wants(&b->status, topic)) {
        return;
    }
    tw_pair_figures_t f;
    tw_pair_figures(b->pair, &f);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_status_begin(&b->status, &e, 5);
    tw_enc_cstr(&e, "role");
    tw_enc_cstr(&e, f.role);
    tw_enc_cstr(&e, "state");
    tw_enc_cstr(&e, f.state);
    tw_enc_cstr(&e, "ha");
    tw_enc_uint(&e, f.epoch);
    tw_enc_cstr(&e, "peer");
    tw_enc_cstr(&e, f.peer_state);
    tw_enc_cstr(&e, "why");
    tw_enc_cstr(&e, why);
    tw_status_send(&b->status, topic, &e);
    tw_enc_free(&e);
}

static const tw_pair_ops_t s_ops = {
    .activate = s_activate,
    .depose = s_depose,
    .apply = s_apply,
    .release = s_release,
    .snap_read = s_snap_read,
    .snap_begin = s_snap_begin,
    .snap_chunk = s_snap_chunk,
    .snap_end = s_snap_end,
    .snap_abort = s_snap_abort,
    .event = s_event,
};

/* ---- opening and closing ---------------------------------------------- */

int
tw__ha_open(tw_broker_t *b, const tw_ha_hooks_t *hooks, char *why,
            size_t wlen)
{
    const tw_broker_cfg_t *cfg = b->cfg;
    tw_ha_t *ha = tw_calloc(1, sizeof *ha);
    ha->b = b;
    ha->hooks = *hooks;
    b->ha = ha;
    uv_timer_init(b->loop, &ha->stop_timer);
    ha->stop_timer.data = ha;
    int rc = s_open_store(ha, &ha->store, cfg->data, why, wlen);
    tw_pair_meta_t meta;
    if (rc == 0) {
        rc = s_read_meta(ha, &meta, why, wlen);
        tw_store_close(&ha->store);
    }
    if (rc == 0) {
        rc = s_passive_open(ha, why, wlen);
    }
    if (rc != 0) {
        return rc;
    }
    tw_pair_cfg_t pc = {
        .role = (tw_bstar_role_t)tw_bstar_role_parse(cfg->role),
        .peer_bind = cfg->peer_bind,
        .peer = cfg->peer,
        .mode = (tw_repl_mode_t)tw_repl_mode_parse(cfg->replicate),
        .hb_ms = (uint64_t)(cfg->peer_heartbeat ? cfg->peer_heartbeat
                                                : cfg->heartbeat),
        .liveness = (unsigned)cfg->peer_liveness,
        .backlog_bytes = (size_t)cfg->repl_backlog << 20,
        .window_bytes = (size_t)cfg->repl_window << 20,
        .front = b->ep_front,
        .back = b->ep_back,
        .pub = b->ep_pub,
        .boot = b->boot,
        .alone = cfg->takeover,
        .ndb = TW_DB__COUNT,
    };
    return tw_pair_open(&b->pair, b->loop, b->ctx, &pc, &meta, &s_ops, ha,
                        why, wlen);
}

int
tw__ha_gate(tw_broker_t *b, int worker, const void *ident, size_t ilen,
            const tw_msg_t *m)
{
    if (!b->pair) {
        return 0;
    }
    if (!worker && m->cmd == TW_CMD_QUERY) {
        size_t n = 0;
        const char *what = tw_msg_str(m, TW_F_WHAT, &n);
        if (what && n == 6 && memcmp(what, "status", 6) == 0) {
            return 0;
        }
    }
    tw_pair_refusal_t r;
    if (tw_pair_request(b->pair, worker, tw_msg_uint(m, TW_F_HA, 0),
                        m->f[TW_F_LOST] != NULL, tw_msg_uint(m, TW_F_LOST, 0),
                        &r) == TW_PAIR_SERVE) {
        return 0;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_not_active(&e, r.msg, r.ha, r.active, r.live);
    tw_out_send(&b->out, worker ? TW_OUT_BACK : TW_OUT_FRONT, ident, ilen,
                TW_CMD_ERROR, &e);
    tw_enc_free(&e);
    return 1;
}

static void
s_closed(uv_handle_t *h)
{
    tw_free(((uv_timer_t *)h)->data);
}

void
tw__ha_stop(tw_broker_t *b)
{
    tw_ha_t *ha = b->ha;
    if (!ha) {
        return;
    }
    s_passive_close(ha);
    s_side_drop(ha);
    tw_pair_close(&b->pair);
    uv_close((uv_handle_t *)&ha->stop_timer, s_closed);
    b->ha = NULL;
}
