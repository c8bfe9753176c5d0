/*  broker/state/pair.c - one broker of a pair (see pair.h).
 *
 *  Two engines do the thinking: bstar (who is active) and replog (what was
 *  streamed, acknowledged, kept). This file is their edge: it turns peer
 *  messages, client and worker requests, the monitor's events and the
 *  timer into engine events, and the engines' answers into messages and
 *  calls of the broker's ops. s_act is the one place the state machine's
 *  actions are carried out.
 *
 *  Peer sockets: the DEALER (ours -> the peer's ROUTER) is only ever
 *  written, with ZMQ_DONTWAIT and ZMQ_IMMEDIATE (nothing queues for a peer
 *  that is not connected), so it needs no watch; the ROUTER and the
 *  DEALER's monitor are watched (common/zwatch.h). A REPL that cannot be
 *  sent detaches the follower: the peer's next PAIR gets a new plan.
 */
#include "broker/state/pair.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "common/log.h"
#include "common/zmon.h"
#include "common/zwatch.h"

#include <stdio.h>
#include <string.h>

#define S_CHUNK_BYTES (1u << 20) /* a snapshot chunk, about */
#define S_CHUNK_WINDOW 4         /* chunks sent beyond the last acked */

/* A batch received during a snapshot, applied after it. */
typedef struct s_spooled {
    struct s_spooled *next;
    uint64_t epoch, seq;
    size_t len;
    unsigned char ops[];
} s_spooled_t;

struct tw_pair {
    uv_loop_t *loop;
    void *ctx;
    tw_pair_cfg_t cfg;
    char *peer_bind, *peer, *front, *back, *pub;
    tw_pair_ops_t ops;
    void *ud;
    void *router, *dealer, *mon;
    tw_zwatch_t rzw, mzw;
    uv_timer_t timer;
    int open_handles;
    int closing;

    tw_bstar_t bs;
    tw_replog_t *log;

    /* The peer, as its last PAIR said. */
    uint64_t peer_boot;
    char peer_front[256], peer_back[256];
    int peer_passive_ready;

    /* Active. */
    uint64_t committed;  /* the last batch the writer committed */
    struct {
        int on;          /* a walk is under way */
        int done;        /* the walk ended: `end` was sent */
        uint64_t id;
        tw_pair_cursor_t cur;
        uint64_t sent, acked; /* chunks */
        uint64_t count;  /* records sent */
        uint64_t max_at;
    } snap;
    uint64_t snap_ids;

    /* Passive. */
    int resync;          /* ask the active to plan again */
    struct {
        int on;
        uint64_t id, base, next_n, count;
        int diverged;
        tw_replog_era_t eras[TW_REPLOG_ERAS];
        size_t neras;
        uint64_t epoch;  /* the active's, from begin */
        s_spooled_t *head, *tail;
        size_t bytes;
    } cu;

    uint64_t snapshots, batches, diverged;
};

static const char *const s_state_names[] = {"pending", "active", "passive"};

static int
s_state_parse(const char *s, size_t len)
{
    for (int i = 0; i < 3; i++) {
        if (strlen(s_state_names[i]) == len &&
            memcmp(s_state_names[i], s, len) == 0) {
            return i;
        }
    }
    return -1;
}

static uint64_t
s_now(const tw_pair_t *p)
{
    return uv_now(p->loop);
}

static void
s_event(tw_pair_t *p, const char *topic, const char *why)
{
    tw_notice(topic, "%s (%s, %s, epoch %llu)", why,
              tw_bstar_role_name(p->cfg.role),
              tw_bstar_state_name(tw_bstar_state(&p->bs)),
              (unsigned long long)tw_bstar_epoch(&p->bs));
    if (p->ops.event) {
        p->ops.event(p->ud, topic, why);
    }
}

/* ---- sending -------------------------------------------------------- */

/* Send `e` as `cmd` to the peer; `e` is left empty. 0, or an error when
 * the peer is not connected or its queue is full. */
static int
s_send(tw_pair_t *p, tw_cmd_t cmd, tw_enc_t *e)
{
    zmq_msg_t f[2];
    tw_enc_frames(e, cmd, f);
    if (zmq_msg_send(&f[0], p->dealer, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        return TW_EAGAIN;
    }
    if (zmq_msg_send(&f[1], p->dealer, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f[1]); /* cannot happen once the first part went */
        return TW_EAGAIN;
    }
    return 0;
}

static void
s_enc_pos(tw_enc_t *e, tw_bstar_pos_t pos)
{
    tw_enc_key(e, TW_F_POS);
    tw_enc_array(e, 2);
    tw_enc_uint(e, pos.epoch);
    tw_enc_uint(e, pos.seq);
}

static void
s_enc_eras(tw_enc_t *e, const tw_replog_era_t *eras, size_t n)
{
    tw_enc_key(e, TW_F_ERAS);
    tw_enc_array(e, 2 * n);
    for (size_t i = 0; i < n; i++) {
        tw_enc_uint(e, eras[i].epoch);
        tw_enc_uint(e, eras[i].first_seq);
    }
}

static void
s_send_pair(tw_pair_t *p)
{
    tw_bstar_peer_t self;
    tw_bstar_self(&p->bs, &self);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 10 + (p->resync != 0));
    tw_enc_key(&e, TW_F_ROLE);
    tw_enc_cstr(&e, tw_bstar_role_name(self.role));
    tw_enc_key(&e, TW_F_STATE);
    tw_enc_cstr(&e, tw_bstar_state_name(self.state));
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, self.epoch);
    s_enc_pos(&e, self.pos);
    tw_enc_key(&e, TW_F_READY);
    tw_enc_uint(&e, (uint64_t)self.ready);
    tw_enc_key(&e, TW_F_BOOT);
    tw_enc_uint(&e, p->cfg.boot);
    tw_enc_key(&e, TW_F_FRONT);
    tw_enc_cstr(&e, p->front);
    tw_enc_key(&e, TW_F_BACK);
    tw_enc_cstr(&e, p->back);
    tw_enc_key(&e, TW_F_PUB);
    tw_enc_cstr(&e, p->pub);
    tw_enc_key(&e, TW_F_MODE);
    tw_enc_cstr(&e, tw_repl_mode_name(p->cfg.mode));
    if (p->resync) {
        tw_enc_key(&e, TW_F_RESYNC);
        tw_enc_uint(&e, 1);
    }
    s_send(p, TW_CMD_PAIR, &e);
    tw_enc_free(&e);
}

/* RACK {seq} or, with `snap`, RACK {snap, n}. */
static void
s_send_rack(tw_pair_t *p, uint64_t seq, uint64_t snap, uint64_t n)
{
    tw_enc_t e;
    tw_enc_init(&e);
    if (snap) {
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_SNAP);
        tw_enc_uint(&e, snap);
        tw_enc_key(&e, TW_F_N);
        tw_enc_uint(&e, n);
    } else {
        tw_enc_map(&e, 1);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, seq);
    }
    s_send(p, TW_CMD_RACK, &e);
    tw_enc_free(&e);
}

/* ---- the active: stream and snapshot -------------------------------- */

static void s_snap_stop(tw_pair_t *p);

/* Send what the follower may be sent now. */
static void
s_pump(tw_pair_t *p)
{
    tw_replog_batch_t b;
    int rc;
    while ((rc = tw_replog_next(p->log, &b)) == 1) {
        tw_enc_t e;
        tw_enc_init(&e);
        tw_enc_map(&e, 4);
        tw_enc_key(&e, TW_F_HA);
        tw_enc_uint(&e, b.epoch);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, b.seq);
        tw_enc_key(&e, TW_F_OPS);
        tw_enc_bin(&e, b.data, b.len);
        tw_enc_key(&e, TW_F_CRC);
        tw_enc_uint(&e, tw_crc32c(0, b.data, b.len));
        int sent = s_send(p, TW_CMD_REPL, &e);
        tw_enc_free(&e);
        if (sent != 0) {
            rc = TW_EAGAIN;
            break;
        }
    }
    if (rc < 0) {
        /* Not connected, or the batches it needs are gone: its next PAIR
         * gets a new plan. */
        tw_debug("ha.stream", "stream to the peer stops at %llu: %s",
                 (unsigned long long)tw_replog_sent(p->log),
                 rc == TW_ENOENT ? "it needs batches the backlog no longer "
                                   "holds"
                                 : "it is not connected");
        tw_replog_detach(p->log);
        s_snap_stop(p);
        if (p->ops.release) {
            p->ops.release(p->ud, UINT64_MAX);
        }
    }
}

static void
s_snap_stop(tw_pair_t *p)
{
    p->snap.on = 0;
    p->snap.done = 0;
}

/* Send snapshot chunks while the window allows. */
static void
s_snap_pump(tw_pair_t *p)
{
    while (p->snap.on && !p->snap.done &&
           p->snap.sent < p->snap.acked + S_CHUNK_WINDOW) {
        tw_replops_t out = {0};
        int db = 0;
        uint64_t at = 0;
        int more = p->ops.snap_read(p->ud, &p->snap.cur, &out, S_CHUNK_BYTES,
                                    &db, &at);
        if (more < 0) {
            tw_err("ha.snapshot", "the snapshot for the peer stopped: "
                   "reading the store failed (%s)", tw_strerror(more));
            tw_replops_reset(&out);
            s_snap_stop(p);
            tw_replog_detach(p->log);
            return;
        }
        if (at > p->snap.max_at) {
            p->snap.max_at = at;
        }
        tw_enc_t e;
        tw_enc_init(&e);
        if (out.nops > 0) {
            p->snap.sent++;
            p->snap.count += out.nops;
            tw_enc_map(&e, 7);
            tw_enc_key(&e, TW_F_CRC);
            tw_enc_uint(&e, tw_crc32c(0, out.buf, out.len));
            tw_enc_key(&e, TW_F_OP);
            tw_enc_cstr(&e, "chunk");
            tw_enc_key(&e, TW_F_SNAP);
            tw_enc_uint(&e, p->snap.id);
            tw_enc_key(&e, TW_F_N);
            tw_enc_uint(&e, p->snap.sent);
            tw_enc_key(&e, TW_F_DB);
            tw_enc_uint(&e, (uint64_t)db);
            tw_enc_key(&e, TW_F_AT);
            tw_enc_uint(&e, at);
            tw_enc_key(&e, TW_F_OPS);
            tw_enc_bin(&e, out.buf, out.len);
            s_send(p, TW_CMD_SNAP, &e);
        }
        tw_replops_reset(&out);
        if (!more) {
            tw_enc_clear(&e);
            tw_enc_map(&e, 5);
            tw_enc_key(&e, TW_F_OP);
            tw_enc_cstr(&e, "end");
            tw_enc_key(&e, TW_F_SNAP);
            tw_enc_uint(&e, p->snap.id);
            tw_enc_key(&e, TW_F_N);
            tw_enc_uint(&e, p->snap.sent);
            tw_enc_key(&e, TW_F_COUNT);
            tw_enc_uint(&e, p->snap.count);
            tw_enc_key(&e, TW_F_AT);
            tw_enc_uint(&e, p->snap.max_at);
            s_send(p, TW_CMD_SNAP, &e);
            p->snap.done = 1;
        }
        tw_enc_free(&e);
    }
}

/* A passive peer at `pos` needs a plan: stream, or a snapshot. */
static void
s_plan(tw_pair_t *p, tw_bstar_pos_t pos)
{
    tw_replog_plan_t plan;
    tw_replog_plan(p->log, pos, &plan);
    s_snap_stop(p);
    if (!plan.snapshot) {
        tw_info("ha.stream", "the peer follows from batch %llu",
                (unsigned long long)plan.from_seq);
        tw_replog_follow(p->log, plan.from_seq, 0);
        s_pump(p);
        return;
    }
    if (plan.diverged || plan.unknown_lineage) {
        char why[200];
        if (plan.unknown_lineage) {
            snprintf(why, sizeof why, "the peer's store (epoch %llu, batch "
                     "%llu) is not of this store's lineage: it is kept "
                     "aside and replaced",
                     (unsigned long long)pos.epoch,
                     (unsigned long long)pos.seq);
        } else {
            snprintf(why, sizeof why, "the peer's store has %llu batches "
                     "this one never had (never replicated before a "
                     "takeover): it is kept aside and replaced",
                     (unsigned long long)plan.diverged);
        }
        p->diverged += plan.diverged;
        s_event(p, "ha.diverged", why);
    }
    uint64_t base = p->committed;
    p->snap.on = 1;
    p->snap.done = 0;
    p->snap.id = ++p->snap_ids;
    memset(&p->snap.cur, 0, sizeof p->snap.cur);
    p->snap.sent = p->snap.acked = p->snap.count = 0;
    p->snap.max_at = base;
    p->snapshots++;
    tw_replog_follow(p->log, base + 1, 1);
    const tw_replog_era_t *eras;
    size_t neras = tw_replog_eras(p->log, &eras);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 7);
    tw_enc_key(&e, TW_F_OP);
    tw_enc_cstr(&e, "begin");
    tw_enc_key(&e, TW_F_SNAP);
    tw_enc_uint(&e, p->snap.id);
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, tw_bstar_epoch(&p->bs));
    tw_enc_key(&e, TW_F_BASE);
    tw_enc_uint(&e, base);
    s_enc_eras(&e, eras, neras);
    tw_enc_key(&e, TW_F_COUNT);
    tw_enc_uint(&e, plan.diverged);
    tw_enc_key(&e, TW_F_RESYNC);
    tw_enc_uint(&e, (uint64_t)plan.unknown_lineage);
    s_send(p, TW_CMD_SNAP, &e);
    tw_enc_free(&e);
    char why[160];
    snprintf(why, sizeof why, "a snapshot for the peer (at batch %llu, epoch "
             "%llu), the stream from batch %llu meanwhile",
             (unsigned long long)pos.seq, (unsigned long long)pos.epoch,
             (unsigned long long)(base + 1));
    s_event(p, "ha.catchup", why);
    s_snap_pump(p);
    s_pump(p);
}

/* ---- the passive: catching up --------------------------------------- */

static void
s_spool_free(tw_pair_t *p)
{
    s_spooled_t *s = p->cu.head;
    while (s) {
        s_spooled_t *next = s->next;
        tw_free(s);
        s = next;
    }
    p->cu.head = p->cu.tail = NULL;
    p->cu.bytes = 0;
}

/* Stop catching up: the side store goes, the active is asked again. */
static void
s_cu_abort(tw_pair_t *p, const char *why)
{
    if (p->cu.on) {
        tw_warn("ha.catchup", "catching up stops: %s; asking again", why);
        if (p->ops.snap_abort) {
            p->ops.snap_abort(p->ud);
        }
    }
    p->cu.on = 0;
    s_spool_free(p);
    p->resync = 1;
    s_send_pair(p);
}

/* Apply a checked batch: the log, the engine's position, the store. */
static void
s_apply(tw_pair_t *p, uint64_t epoch, uint64_t seq, const unsigned char *ops,
        size_t len)
{
    tw_replog_apply(p->log, epoch, seq, ops, len, s_now(p));
    tw_bstar_progress(&p->bs, tw_replog_pos(p->log), 1);
    p->batches++;
    p->ops.apply(p->ud, epoch, seq, ops, len);
}

/* Check a batch from the peer: its CRC-32C if `m` carries one, then
 * every operation (only puts in a snapshot chunk). */
static int
s_check_ops(const tw_pair_t *p, const tw_msg_t *m, const unsigned char *ops,
            size_t len, int puts_only, size_t *nops, char *why, size_t wlen)
{
    if (m->f[TW_F_CRC] &&
        tw_msg_uint(m, TW_F_CRC, 0) != tw_crc32c(0, ops, len)) {
        snprintf(why, wlen, "its CRC-32C does not match");
        return TW_EPROTO;
    }
    int rc = tw_replops_check(ops, len, p->cfg.ndb, nops, why, wlen);
    if (rc != 0 || !puts_only) {
        return rc;
    }
    size_t off = 0;
    tw_replop_t op;
    while (tw_replops_next(ops, len, p->cfg.ndb, &off, &op, NULL, 0) == 1) {
        if (op.op != TW_REPLOP_PUT && op.op != TW_REPLOP_PUT_LAST) {
            snprintf(why, wlen, "a snapshot chunk holds an operation other "
                     "than a put");
            return TW_EPROTO;
        }
    }
    return 0;
}

static void
s_on_repl(tw_pair_t *p, const tw_msg_t *m)
{
    if (tw_bstar_state(&p->bs) != TW_BSTAR_PASSIVE) {
        return;
    }
    uint64_t epoch = tw_msg_uint(m, TW_F_HA, 0);
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    const msgpack_object *o = m->f[TW_F_OPS];
    const unsigned char *ops = (const unsigned char *)o->via.bin.ptr;
    size_t len = o->via.bin.size;
    char why[240];
    if (s_check_ops(p, m, ops, len, 0, NULL, why, sizeof why) != 0) {
        tw_err("ha.stream", "batch %llu from the active is malformed (%s)",
               (unsigned long long)seq, why);
        s_cu_abort(p, "a malformed batch");
        return;
    }
    if (p->cu.on) {
        uint64_t want = p->cu.tail ? p->cu.tail->seq + 1 : p->cu.base + 1;
        if (seq != want || p->cu.bytes + len > p->cfg.backlog_bytes) {
            s_cu_abort(p, seq != want ? "a batch out of order"
                                      : "the stream outgrew the spool");
            return;
        }
        s_spooled_t *s = tw_try_malloc(sizeof *s + len);
        if (!s) {
            s_cu_abort(p, "no memory for the spool");
            return;
        }
        s->next = NULL;
        s->epoch = epoch;
        s->seq = seq;
        s->len = len;
        memcpy(s->ops, ops, len);
        if (p->cu.tail) {
            p->cu.tail->next = s;
        } else {
            p->cu.head = s;
        }
        p->cu.tail = s;
        p->cu.bytes += len;
        s_send_rack(p, seq, 0, 0);
        return;
    }
    tw_bstar_pos_t pos = tw_replog_pos(p->log);
    if (seq != pos.seq + 1 || epoch < pos.epoch || epoch == 0) {
        if (!p->resync) {
            tw_warn("ha.stream", "batch %llu (epoch %llu) from the active "
                    "does not follow batch %llu: asking it to resend",
                    (unsigned long long)seq, (unsigned long long)epoch,
                    (unsigned long long)pos.seq);
            p->resync = 1;
            s_send_pair(p);
        }
        return;
    }
    p->resync = 0;
    s_apply(p, epoch, seq, ops, len);
}

static void
s_on_snap(tw_pair_t *p, const tw_msg_t *m)
{
    if (tw_bstar_state(&p->bs) != TW_BSTAR_PASSIVE) {
        return;
    }
    size_t oplen;
    const char *op = tw_msg_str(m, TW_F_OP, &oplen);
    uint64_t id = tw_msg_uint(m, TW_F_SNAP, 0);
    char why[240];
    if (oplen == 5 && memcmp(op, "begin", 5) == 0) {
        if (p->cu.on) {
            s_cu_abort(p, "another snapshot begins");
        }
        const msgpack_object *eras = m->f[TW_F_ERAS];
        if (!eras || eras->via.array.size % 2 ||
            eras->via.array.size / 2 > TW_REPLOG_ERAS) {
            s_cu_abort(p, "a snapshot without a lineage");
            return;
        }
        if (p->ops.snap_begin(p->ud) != 0) {
            s_cu_abort(p, "the side store cannot be made");
            return;
        }
        p->cu.on = 1;
        p->cu.id = id;
        p->cu.base = tw_msg_uint(m, TW_F_BASE, 0);
        p->cu.epoch = tw_msg_uint(m, TW_F_HA, 0);
        p->cu.next_n = 1;
        p->cu.count = 0;
        p->cu.neras = eras->via.array.size / 2;
        for (size_t i = 0; i < p->cu.neras; i++) {
            p->cu.eras[i].epoch = eras->via.array.ptr[2 * i].via.u64;
            p->cu.eras[i].first_seq =
                eras->via.array.ptr[2 * i + 1].via.u64;
        }
        /* Kept aside if it holds anything the active never had. */
        p->cu.diverged = tw_msg_uint(m, TW_F_COUNT, 0) > 0 ||
                         tw_msg_uint(m, TW_F_RESYNC, 0) != 0;
        p->resync = 0;
        tw_bstar_progress(&p->bs, tw_replog_pos(p->log), 0);
        snprintf(why, sizeof why, "catching up from a snapshot of the active "
                 "(from batch %llu)", (unsigned long long)p->cu.base);
        s_event(p, "ha.catchup", why);
        s_send_rack(p, 0, id, 0);
        return;
    }
    if (!p->cu.on || id != p->cu.id) {
        return; /* of a snapshot given up */
    }
    uint64_t n = tw_msg_uint(m, TW_F_N, 0);
    if (oplen == 5 && memcmp(op, "chunk", 5) == 0) {
        const msgpack_object *o = m->f[TW_F_OPS];
        size_t nops = 0;
        if (n != p->cu.next_n || !o || o->type != MSGPACK_OBJECT_BIN) {
            s_cu_abort(p, "a snapshot chunk out of order");
            return;
        }
        const unsigned char *ops = (const unsigned char *)o->via.bin.ptr;
        if (s_check_ops(p, m, ops, o->via.bin.size, 1, &nops, why,
                        sizeof why) != 0) {
            tw_err("ha.catchup", "snapshot chunk %llu is malformed (%s)",
                   (unsigned long long)n, why);
            s_cu_abort(p, "a malformed snapshot chunk");
            return;
        }
        if (p->ops.snap_chunk(p->ud, ops, o->via.bin.size) != 0) {
            s_cu_abort(p, "the side store cannot be written");
            return;
        }
        p->cu.next_n++;
        p->cu.count += nops;
        s_send_rack(p, 0, id, n);
        return;
    }
    if (oplen == 3 && memcmp(op, "end", 3) == 0) {
        if (n != p->cu.next_n - 1 ||
            tw_msg_uint(m, TW_F_COUNT, 0) != p->cu.count) {
            s_cu_abort(p, "a snapshot that did not all arrive");
            return;
        }
        if (p->ops.snap_end(p->ud, p->cu.diverged, why, sizeof why) != 0) {
            tw_err("ha.catchup", "the snapshot cannot be swapped in: %s",
                   why);
            s_cu_abort(p, "the swap failed");
            return;
        }
        /* The store is the snapshot now: at base with the active's
         * lineage, then the spool replayed on it, in order. */
        tw_bstar_pos_t pos = {p->cu.epoch, p->cu.base};
        if (p->cu.neras) {
            pos.epoch = p->cu.eras[p->cu.neras - 1].epoch;
        }
        tw_replog_reset(p->log, pos, p->cu.eras, p->cu.neras);
        p->cu.on = 0;
        s_spooled_t *s = p->cu.head;
        p->cu.head = p->cu.tail = NULL;
        p->cu.bytes = 0;
        while (s) {
            s_spooled_t *next = s->next;
            s_apply(p, s->epoch, s->seq, s->ops, s->len);
            tw_free(s);
            s = next;
        }
        tw_bstar_progress(&p->bs, tw_replog_pos(p->log), 1);
        snprintf(why, sizeof why, "caught up: %llu records in %llu chunks, "
                 "now at batch %llu",
                 (unsigned long long)p->cu.count, (unsigned long long)n,
                 (unsigned long long)tw_replog_pos(p->log).seq);
        s_event(p, "ha.caughtup", why);
        s_send_rack(p, 0, id, n);
        s_send_pair(p);
    }
}

static void
s_on_rack(tw_pair_t *p, const tw_msg_t *m)
{
    if (tw_bstar_state(&p->bs) != TW_BSTAR_ACTIVE) {
        return;
    }
    if (m->f[TW_F_SNAP]) {
        if (!p->snap.on || tw_msg_uint(m, TW_F_SNAP, 0) != p->snap.id) {
            return;
        }
        uint64_t n = tw_msg_uint(m, TW_F_N, 0);
        if (n > p->snap.acked && n <= p->snap.sent) {
            p->snap.acked = n;
        }
        if (p->snap.done && n == p->snap.sent) {
            /* The snapshot is in: the stream it spooled is being
             * replayed; from now on the peer follows. */
            s_snap_stop(p);
            tw_replog_attach(p->log);
            s_event(p, "ha.follower", "the peer caught up and follows the "
                                      "stream");
        }
        s_snap_pump(p);
        return;
    }
    uint64_t seq = tw_msg_uint(m, TW_F_SEQ, 0);
    if (tw_replog_ack(p->log, seq) != 0) {
        tw_debug("ha.stream", "an acknowledgement of batch %llu, never sent",
                 (unsigned long long)seq);
        return;
    }
    if (p->ops.release) {
        p->ops.release(p->ud, tw_replog_acked(p->log));
    }
    s_pump(p);
}

/* ---- the state machine's actions ------------------------------------ */

static void
s_act(tw_pair_t *p, unsigned a, tw_bstar_state_t was)
{
    if (a & TW_BSTAR_MISCONFIG) {
        s_event(p, "ha.misconfig", tw_bstar_why(&p->bs));
    }
    if (a & TW_BSTAR_PEER_LOST) {
        if (was == TW_BSTAR_ACTIVE && !(a & TW_BSTAR_PASSIVATE)) {
            s_snap_stop(p);
            tw_replog_detach(p->log);
            if (p->ops.release) {
                p->ops.release(p->ud, UINT64_MAX);
            }
            s_event(p, "ha.alone", "the peer is silent: serving alone, "
                                   "acknowledgements no longer wait for it");
        } else {
            s_event(p, "ha.peer-lost", tw_bstar_why(&p->bs));
        }
    }
    if (a & TW_BSTAR_PEER_BACK) {
        s_event(p, "ha.peer-back", "the peer is heard again");
    }
    if (a & TW_BSTAR_ACTIVATE) {
        uint64_t epoch = tw_bstar_epoch(&p->bs);
        tw_replog_begin_epoch(p->log, epoch);
        tw_replog_detach(p->log);
        if (p->cu.on) {
            s_cu_abort(p, "this broker became active");
        }
        s_event(p, "ha.active", tw_bstar_why(&p->bs));
        char why[256] = "";
        if (p->ops.activate(p->ud, epoch, why, sizeof why) != 0) {
            tw_err("ha.active", "cannot serve as the active broker: %s",
                   why);
            p->ops.depose(p->ud, why);
            return;
        }
    }
    if (a & TW_BSTAR_PASSIVATE) {
        if (was == TW_BSTAR_ACTIVE) {
            s_event(p, "ha.deposed", tw_bstar_why(&p->bs));
            p->ops.depose(p->ud, tw_bstar_why(&p->bs));
            return;
        }
        s_event(p, "ha.passive", tw_bstar_why(&p->bs));
    }
    if (a & TW_BSTAR_HEARTBEAT) {
        s_send_pair(p);
    }
}

static void s_arm(tw_pair_t *p);

static void
s_on_timer(uv_timer_t *t)
{
    tw_pair_t *p = t->data;
    tw_bstar_state_t was = tw_bstar_state(&p->bs);
    s_act(p, tw_bstar_tick(&p->bs, s_now(p)), was);
    s_arm(p);
}

static void
s_arm(tw_pair_t *p)
{
    if (p->closing) {
        return;
    }
    uint64_t ms = tw_bstar_next(&p->bs, s_now(p));
    uv_timer_start(&p->timer, s_on_timer, ms ? ms : 1, 0);
}

/* ---- receiving -------------------------------------------------------- */

static void
s_copy_str(char *dst, size_t cap, const tw_msg_t *m, tw_field_t f)
{
    size_t len = 0;
    const char *s = tw_msg_str(m, f, &len);
    if (!s || len >= cap) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

static void
s_on_pair(tw_pair_t *p, const tw_msg_t *m)
{
    size_t rl, sl;
    const char *role = tw_msg_str(m, TW_F_ROLE, &rl);
    const char *st = tw_msg_str(m, TW_F_STATE, &sl);
    const msgpack_object *pos = m->f[TW_F_POS];
    char rbuf[17];
    snprintf(rbuf, sizeof rbuf, "%.*s", (int)rl, role);
    int r = tw_bstar_role_parse(rbuf);
    int state = s_state_parse(st, sl);
    if (r < 0 || state < 0 || pos->via.array.size != 2) {
        tw_warn("ha.peer", "a PAIR from the peer that makes no sense "
                "(role '%.*s', state '%.*s'): ignored", (int)rl, role,
                (int)sl, st);
        return;
    }
    tw_bstar_peer_t peer = {
        .role = (tw_bstar_role_t)r,
        .state = (tw_bstar_state_t)state,
        .epoch = tw_msg_uint(m, TW_F_HA, 0),
        .pos = {pos->via.array.ptr[0].via.u64, pos->via.array.ptr[1].via.u64},
        .ready = tw_msg_uint(m, TW_F_READY, 0) != 0,
    };
    s_copy_str(p->peer_front, sizeof p->peer_front, m, TW_F_FRONT);
    s_copy_str(p->peer_back, sizeof p->peer_back, m, TW_F_BACK);
    uint64_t boot = tw_msg_uint(m, TW_F_BOOT, 0);
    int restarted = p->peer_boot && boot != p->peer_boot;
    p->peer_boot = boot;
    tw_bstar_state_t was = tw_bstar_state(&p->bs);
    s_act(p, tw_bstar_peer(&p->bs, &peer, s_now(p)), was);
    if (p->closing || tw_bstar_state(&p->bs) != TW_BSTAR_ACTIVE ||
        peer.state != TW_BSTAR_PASSIVE || peer.role == p->cfg.role) {
        return;
    }
    if (restarted || tw_msg_uint(m, TW_F_RESYNC, 0) ||
        (tw_replog_follower(p->log) == TW_REPLOG_DETACHED && !p->snap.on)) {
        s_plan(p, peer.pos);
    }
    s_arm(p);
}

static void
s_on_router(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_pair_t *p = zw->data;
    if (msg->n != 3 || msg->truncated) {
        return;
    }
    size_t il = zmq_msg_size(&msg->f[0]);
    const char *id = zmq_msg_data(&msg->f[0]);
    if (!((il == 9 && memcmp(id, "p-primary", 9) == 0) ||
          (il == 8 && memcmp(id, "p-backup", 8) == 0))) {
        tw_debug("ha.peer", "a message from an unknown peer on the peer "
                 "socket: dropped");
        return;
    }
    tw_msg_t m;
    if (tw_msg_decode(&m, zmq_msg_data(&msg->f[1]), zmq_msg_size(&msg->f[1]),
                      zmq_msg_data(&msg->f[2]),
                      zmq_msg_size(&msg->f[2])) != 0) {
        tw_warn("ha.peer", "a malformed message on the peer socket: "
                "dropped");
        return;
    }
    switch (m.cmd) {
    case TW_CMD_PAIR:
        s_on_pair(p, &m);
        break;
    case TW_CMD_REPL:
        s_on_repl(p, &m);
        break;
    case TW_CMD_RACK:
        s_on_rack(p, &m);
        break;
    case TW_CMD_SNAP:
        s_on_snap(p, &m);
        break;
    default:
        tw_debug("ha.peer", "%s on the peer socket: dropped",
                 tw_proto_cmd_name(m.cmd));
        break;
    }
    tw_msg_release(&m);
}

static void
s_on_monitor(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_pair_t *p = zw->data;
    tw_zmon_event_t ev;
    if (msg->n != 2 ||
        tw_zmon_parse(zmq_msg_data(&msg->f[0]), zmq_msg_size(&msg->f[0]),
                      zmq_msg_data(&msg->f[1]), zmq_msg_size(&msg->f[1]),
                      &ev) != 0 ||
        ev.kind != TW_ZMON_DOWN) {
        return;
    }
    tw_bstar_state_t was = tw_bstar_state(&p->bs);
    s_act(p, tw_bstar_peer_closed(&p->bs, s_now(p)), was);
}

/* ---- the frontend and backend --------------------------------------- */

int
tw_pair_request(tw_pair_t *p, int worker, uint64_t ha, int has_lost,
                uint64_t lost, tw_pair_refusal_t *r)
{
    uint64_t now = s_now(p);
    tw_bstar_state_t was = tw_bstar_state(&p->bs);
    memset(r, 0, sizeof *r);
    if (ha > tw_bstar_epoch(&p->bs)) {
        s_act(p, tw_bstar_fence(&p->bs, ha, now), was);
        if (was == TW_BSTAR_ACTIVE) {
            r->ha = tw_bstar_epoch(&p->bs);
            snprintf(r->msg, sizeof r->msg, "not active: this broker was "
                     "deposed (a peer carried epoch %llu)",
                     (unsigned long long)ha);
            return TW_PAIR_REFUSE;
        }
    }
    int vote = has_lost && (lost == 0 || lost >= tw_bstar_epoch(&p->bs));
    unsigned a = tw_bstar_request(&p->bs, vote, now);
    s_act(p, a & ~(TW_BSTAR_SERVE | TW_BSTAR_REFUSE), was);
    if ((a & TW_BSTAR_SERVE) && tw_bstar_state(&p->bs) == TW_BSTAR_ACTIVE) {
        if (a & TW_BSTAR_ACTIVATE) {
            s_arm(p);
        }
        return TW_PAIR_SERVE;
    }
    r->ha = tw_bstar_epoch(&p->bs);
    r->live = tw_bstar_peer_alive(&p->bs, now);
    const char *ep = worker ? p->peer_back : p->peer_front;
    snprintf(r->active, sizeof r->active, "%s", ep);
    const char *peer_role =
        tw_bstar_role_name(p->cfg.role == TW_BSTAR_PRIMARY ? TW_BSTAR_BACKUP
                                                           : TW_BSTAR_PRIMARY);
    if (ep[0] && r->live) {
        snprintf(r->msg, sizeof r->msg, "not active: this is the %s broker "
                 "(%s); the active broker is the %s at %s",
                 tw_bstar_role_name(p->cfg.role),
                 tw_bstar_state_name(tw_bstar_state(&p->bs)), peer_role, ep);
    } else {
        snprintf(r->msg, sizeof r->msg, "%s (this is the %s broker, %s)",
                 tw_bstar_why(&p->bs), tw_bstar_role_name(p->cfg.role),
                 tw_bstar_state_name(tw_bstar_state(&p->bs)));
    }
    return TW_PAIR_REFUSE;
}

/* ---- the active ------------------------------------------------------- */

uint64_t
tw_pair_stream(tw_pair_t *p, tw_replops_t *ops)
{
    tw_bstar_pos_t pos = tw_replog_pos(p->log);
    uint64_t epoch = tw_bstar_epoch(&p->bs);
    const tw_replog_era_t *eras;
    size_t neras = tw_replog_eras(p->log, &eras);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_pair_meta_encode(&e, epoch, p->cfg.role, pos.seq + 1, eras, neras);
    tw_replops_add(ops, TW_REPLOP_PUT, 0, "ha", 2, e.sb.data, e.sb.size);
    tw_enc_free(&e);
    uint64_t seq = tw_replog_append(p->log, ops->buf, ops->len, s_now(p));
    tw_bstar_progress(&p->bs, tw_replog_pos(p->log), 1);
    p->batches++;
    s_pump(p);
    return seq;
}

void
tw_pair_committed(tw_pair_t *p, uint64_t seq)
{
    if (seq > p->committed) {
        p->committed = seq;
    }
}

int
tw_pair_wait(const tw_pair_t *p, uint64_t seq)
{
    return tw_bstar_state(&p->bs) == TW_BSTAR_ACTIVE &&
           tw_replog_wait(p->log, seq);
}

/* ---- the passive ------------------------------------------------------ */

void
tw_pair_applied(tw_pair_t *p, uint64_t seq)
{
    if (p->committed < seq) {
        p->committed = seq;
    }
    s_send_rack(p, seq, 0, 0);
}

/* ---- the record ------------------------------------------------------- */

void
tw_pair_meta_encode(tw_enc_t *e, uint64_t epoch, tw_bstar_role_t by,
                    uint64_t seq, const tw_replog_era_t *eras, size_t neras)
{
    tw_enc_map(e, 4);
    tw_enc_cstr(e, "ep");
    tw_enc_uint(e, epoch);
    tw_enc_cstr(e, "by");
    tw_enc_cstr(e, tw_bstar_role_name(by));
    tw_enc_cstr(e, "seq");
    tw_enc_uint(e, seq);
    tw_enc_cstr(e, "eras");
    tw_enc_array(e, 2 * neras);
    for (size_t i = 0; i < neras; i++) {
        tw_enc_uint(e, eras[i].epoch);
        tw_enc_uint(e, eras[i].first_seq);
    }
}

int
tw_pair_meta_decode(const void *buf, size_t len, tw_pair_meta_t *out)
{
    memset(out, 0, sizeof *out);
    out->by = -1;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = TW_EPROTO;
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || up.data.type != MSGPACK_OBJECT_MAP) {
        goto done;
    }
    const msgpack_object *ep = tw_mp_get(&up.data, "ep");
    const msgpack_object *by = tw_mp_get(&up.data, "by");
    const msgpack_object *seq = tw_mp_get(&up.data, "seq");
    const msgpack_object *eras = tw_mp_get(&up.data, "eras");
    if (!ep || ep->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !seq ||
        seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !by ||
        by->type != MSGPACK_OBJECT_STR || !eras ||
        eras->type != MSGPACK_OBJECT_ARRAY || eras->via.array.size % 2 ||
        eras->via.array.size / 2 > TW_REPLOG_ERAS) {
        goto done;
    }
    char role[17];
    snprintf(role, sizeof role, "%.*s", (int)by->via.str.size,
             by->via.str.ptr);
    out->by = tw_bstar_role_parse(role);
    out->epoch = ep->via.u64;
    out->pos.epoch = ep->via.u64;
    out->pos.seq = seq->via.u64;
    out->neras = eras->via.array.size / 2;
    for (size_t i = 0; i < 2 * out->neras; i++) {
        if (eras->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            goto done;
        }
    }
    for (size_t i = 0; i < out->neras; i++) {
        out->eras[i].epoch = eras->via.array.ptr[2 * i].via.u64;
        out->eras[i].first_seq = eras->via.array.ptr[2 * i + 1].via.u64;
    }
    rc = out->by < 0 ? TW_EPROTO : 0;
done:
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---- life cycle ------------------------------------------------------ */

/* Free the pair and its strings (sockets and handles are closed). */
static void
s_free(tw_pair_t *p)
{
    tw_free(p->peer_bind);
    tw_free(p->peer);
    tw_free(p->front);
    tw_free(p->back);
    tw_free(p->pub);
    tw_free(p);
}

static void
s_closed(tw_pair_t *p)
{
    if (--p->open_handles > 0) {
        return;
    }
    if (p->mon) {
        tw_zmon_stop(p->dealer, p->mon);
    }
    zmq_close(p->dealer);
    zmq_close(p->router);
    tw_replog_destroy(&p->log);
    s_spool_free(p);
    s_free(p);
}

static void
s_zw_closed(tw_zwatch_t *zw)
{
    s_closed(zw->data);
}

static void
s_timer_closed(uv_handle_t *h)
{
    s_closed(h->data);
}

int
tw_pair_open(tw_pair_t **out, uv_loop_t *loop, void *ctx,
             const tw_pair_cfg_t *cfg, const tw_pair_meta_t *meta,
             const tw_pair_ops_t *ops, void *ud, char *err, size_t errlen)
{
    *out = NULL;
    tw_pair_t *p = tw_calloc(1, sizeof *p);
    p->loop = loop;
    p->ctx = ctx;
    p->cfg = *cfg;
    p->peer_bind = tw_strdup(cfg->peer_bind);
    p->peer = tw_strdup(cfg->peer);
    p->front = tw_strdup(cfg->front ? cfg->front : "");
    p->back = tw_strdup(cfg->back ? cfg->back : "");
    p->pub = tw_strdup(cfg->pub ? cfg->pub : "");
    p->ops = *ops;
    p->ud = ud;
    int linger = 0, one = 1, zero = 0;
    p->router = zmq_socket(ctx, ZMQ_ROUTER);
    zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->router, ZMQ_RCVHWM, &zero, sizeof zero);
    if (zmq_bind(p->router, p->peer_bind) != 0) {
        snprintf(err, errlen, "cannot bind the peer socket at %s: %s",
                 p->peer_bind, zmq_strerror(zmq_errno()));
        zmq_close(p->router);
        s_free(p);
        return TW_EIO;
    }
    p->dealer = zmq_socket(ctx, ZMQ_DEALER);
    const char *rid = cfg->role == TW_BSTAR_PRIMARY ? "p-primary"
                                                    : "p-backup";
    zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, rid, strlen(rid));
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->dealer, ZMQ_SNDHWM, &zero, sizeof zero);
    p->mon = tw_zmon_start(ctx, p->dealer);
    if (zmq_connect(p->dealer, p->peer) != 0) {
        snprintf(err, errlen, "cannot connect the peer socket to %s: %s",
                 p->peer, zmq_strerror(zmq_errno()));
        tw_zmon_stop(p->dealer, p->mon);
        zmq_close(p->dealer);
        zmq_close(p->router);
        s_free(p);
        return TW_EINVAL;
    }
    tw_replog_config_t rc = {
        .mode = cfg->mode,
        .backlog_bytes = cfg->backlog_bytes,
        .window_bytes = cfg->window_bytes,
        .pos = meta->pos,
        .eras = meta->eras,
        .neras = meta->neras,
    };
    p->log = tw_replog_new(&rc);
    p->committed = meta->pos.seq;
    tw_bstar_config_t bc = {
        .role = cfg->role,
        .hb_ms = cfg->hb_ms,
        .liveness = cfg->liveness,
        .epoch = meta->epoch,
        .pos = meta->pos,
        .was_active = meta->by == (int)cfg->role,
        .alone = cfg->alone,
        .ready = 1,
    };
    tw_bstar_init(&p->bs, &bc, uv_now(loop));
    tw_zwatch_init(loop, &p->rzw, p->router);
    p->rzw.data = p;
    tw_zwatch_start(&p->rzw, s_on_router, NULL);
    p->open_handles = 2;
    if (p->mon) {
        tw_zwatch_init(loop, &p->mzw, p->mon);
        p->mzw.data = p;
        tw_zwatch_start(&p->mzw, s_on_monitor, NULL);
        p->open_handles++;
    }
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    tw_notice("ha.start", "%s broker of a pair: peer socket %s, peer %s, "
              "--replicate %s; store at batch %llu (epoch %llu)",
              tw_bstar_role_name(cfg->role), p->peer_bind, p->peer,
              tw_repl_mode_name(cfg->mode),
              (unsigned long long)meta->pos.seq,
              (unsigned long long)meta->epoch);
    s_act(p, tw_bstar_tick(&p->bs, uv_now(loop)), TW_BSTAR_PENDING);
    s_arm(p);
    *out = p;
    return 0;
}

void
tw_pair_close(tw_pair_t **pp)
{
    tw_pair_t *p = *pp;
    if (!p) {
        return;
    }
    *pp = NULL;
    p->closing = 1;
    if (p->cu.on && p->ops.snap_abort) {
        p->ops.snap_abort(p->ud);
        p->cu.on = 0;
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, s_timer_closed);
    tw_zwatch_close(&p->rzw, s_zw_closed);
    if (p->mon) {
        tw_zwatch_close(&p->mzw, s_zw_closed);
    }
}

tw_bstar_state_t
tw_pair_state(const tw_pair_t *p)
{
    return tw_bstar_state(&p->bs);
}

uint64_t
tw_pair_epoch(const tw_pair_t *p)
{
    return tw_bstar_epoch(&p->bs);
}

void
tw_pair_figures(const tw_pair_t *p, tw_pair_figures_t *out)
{
    static const char *const follower[] = {"detached", "catching up",
                                           "following"};
    memset(out, 0, sizeof *out);
    out->role = tw_bstar_role_name(p->cfg.role);
    out->state = tw_bstar_state_name(tw_bstar_state(&p->bs));
    out->peer_state = p->bs.heard ? tw_bstar_state_name(p->bs.peer.state)
                                  : "unknown";
    out->follower = follower[tw_replog_follower(p->log)];
    out->mode = tw_repl_mode_name(p->cfg.mode);
    out->epoch = tw_bstar_epoch(&p->bs);
    out->pos = tw_replog_pos(p->log);
    out->peer_alive = tw_bstar_peer_alive(&p->bs, uv_now(p->loop));
    out->ready = p->bs.ready;
    out->sync = p->cfg.mode == TW_REPL_SYNC &&
                tw_replog_follower(p->log) == TW_REPLOG_FOLLOWING;
    tw_replog_lag(p->log, uv_now(p->loop), &out->lag);
    out->activations = p->bs.activations;
    out->snapshots = p->snapshots;
    out->batches = p->batches;
    out->diverged = p->diverged;
}
