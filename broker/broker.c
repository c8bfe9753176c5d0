/*  broker/broker.c - sockets, timers, dispatch and task outcomes.
 *
 *  The broker reacts to messages (dispatch.c) and, at the end of every batch
 *  of messages a socket delivers, runs two steps that turn the state change
 *  into traffic: tw__broker_dispatch() sends pending tasks to workers that
 *  have credit, many per TASKS message, and tw__outbox_flush() sends
 *  each client one ACK and one RESULT message for everything due to it.
 *  Batching per loop turn is what keeps message counts far below task
 *  counts under load, while a lone task still goes out at once.
 *
 *  Two timers: the heartbeat timer (every --heartbeat ms) declares silent
 *  workers dead and keeps the others' liveness fed; the stats timer (every
 *  second) publishes "stats" and collects old results and idle clients.
 */
#include "broker/broker.h"
#include "broker/cmd/metrics.h"
#include "broker/cmd/on_chan.h"
#include "broker/cmd/on_worker.h"
#include "broker/core/core.h"
#include "broker/core/flow.h"
#include "broker/core/lease.h"
#include "broker/core/outbox.h"
#include "broker/core/persist.h"
#include "broker/core/place.h"
#include "broker/core/schedule.h"
#include "broker/core/view.h"
#include "broker/dispatch.h"
#include "broker/ha.h"
#include "common/alloc.h"
#include "common/endpoint.h"
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "taskwheel/version.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define S_OPT_INT(name, lo, hi, dflt, field, help)                           \
    {name, TW_CFG_INT, lo, hi, dflt, offsetof(tw_broker_cfg_t, field), NULL, \
     help}

const tw_cfg_opt_t tw_broker_options[] = {
    {"frontend", TW_CFG_STR, 0, 0, "tcp://127.0.0.1:7710",
     offsetof(tw_broker_cfg_t, frontend), NULL,
     "endpoint clients connect to (ROUTER)"},
    {"backend", TW_CFG_STR, 0, 0, "tcp://127.0.0.1:7711",
     offsetof(tw_broker_cfg_t, backend), NULL,
     "endpoint workers connect to (ROUTER)"},
    {"status", TW_CFG_STR, 0, 0, "tcp://127.0.0.1:7712",
     offsetof(tw_broker_cfg_t, status), NULL,
     "endpoint monitors subscribe to (PUB)"},
    S_OPT_INT("heartbeat", 50, 600000, "1000", heartbeat,
              "milliseconds between heartbeats"),
    S_OPT_INT("liveness", 2, 100, "3", liveness,
              "heartbeats a worker may miss before it is declared dead"),
    S_OPT_INT("max-attempts", 1, 1000, "5", max_attempts,
              "runs of a task before worker losses make it 'lost'"),
    S_OPT_INT("max-payload", 1, 1LL << 30, "1048576", max_payload,
              "largest task argument or result in bytes"),
    S_OPT_INT("payload-budget", 1, 1LL << 24, "256", payload_budget,
              "MiB of task arguments and kept results the broker holds; "
              "beyond, submissions get EFULL and the oldest kept results "
              "are collected"),
    S_OPT_INT("max-msg", 1024, 1LL << 31, "16777216", max_msg,
              "largest ZeroMQ frame in bytes; larger ones drop the peer"),
    S_OPT_INT("max-queue", 1, 1LL << 31, "1000000", max_queue,
              "pending tasks before submissions are refused (EFULL)"),
    S_OPT_INT("max-results", 0, 1LL << 40, "100000", max_results,
              "ended tasks kept for result queries"),
    S_OPT_INT("result-ttl", 0, 1LL << 31, "3600", result_ttl,
              "seconds an ended task is kept for result queries"),
    /* Task records: broker/core/recs.h, PROTOCOL.md 16.2. */
    S_OPT_INT("failed-ttl", 0, 1LL << 31, "604800", failed_ttl,
              "seconds the record of a task that failed (error, timeout, "
              "lost) is kept: a dead-letter set"),
    S_OPT_INT("max-failed", 0, 1LL << 40, "100000", max_failed,
              "records of failed tasks kept at most"),
    S_OPT_INT("record-args", 0, 1LL << 30, "1024", record_args,
              "arguments up to this many bytes stay whole in the record of "
              "a task that ended ok; larger ones become a JSON preview of "
              "at most this many bytes (at least 256)"),
    S_OPT_INT("record-preview", 256, 1LL << 20, "65536", record_preview,
              "bytes of JSON text of arguments or a result the HTTP API "
              "answers whole; beyond, a preview that long"),
    S_OPT_INT("batch", 1, 65536, "512", batch,
              "tasks per TASKS message at most"),
    S_OPT_INT("n2s-backlog", 1, 1000000, "1000", n2s_backlog,
              "n2s messages queued per station while it cannot take them"),
    S_OPT_INT("handler-grace", 0, 3600, "0", handler_grace,
              "seconds after start during which tasks for handlers no "
              "worker has offered yet are queued, not refused"),
    S_OPT_INT("schedule-grace", 1, 600000, "60000", schedule_grace,
              "milliseconds a schedule's tick may be late and still fire; "
              "older ticks were missed and follow the schedule's catch-up "
              "policy"),
    S_OPT_INT("max-stations", 1, 1LL << 31, "100000", max_stations,
              "stations held (running or pending) before an add is "
              "refused (EFULL)"),
    S_OPT_INT("restart-base", 10, 3600000, "1000", restart_base,
              "milliseconds before a failed station's first restart "
              "(doubling per failure, at most 60 s)"),
    S_OPT_INT("retry-base", 0, 3600000, "100", retry_base,
              "milliseconds before a failed task's first retry (doubling "
              "per attempt, at most 30 s, +-25% jitter)"),
    S_OPT_INT("client-idle", 1, 1LL << 31, "600", client_idle,
              "seconds before a silent client with nothing due is forgotten"),
    /* Durability: broker/core/persist.h, docs/STORAGE.md. */
    {"data", TW_CFG_STR, 0, 0, NULL, offsetof(tw_broker_cfg_t, data), NULL,
     "store directory (LMDB); unset or empty: memory only, nothing "
     "survives a restart"},
    {"fsync", TW_CFG_ENUM, 0, 0, "everysec", offsetof(tw_broker_cfg_t, fsync),
     "always|everysec|no",
     "when the store reaches the disk: every turn before its ACKs, once a "
     "second, or when the OS decides"},
    S_OPT_INT("data-size", 1, 1LL << 24, "1024", data_size,
              "MiB of data the store holds; beyond, submissions get EFULL"),
    {"verify-store", TW_CFG_BOOL, 0, 0, "no",
     offsetof(tw_broker_cfg_t, verify_store), NULL,
     "check every page of the store at start, as after an unclean stop "
     "(records are always checked)"},
    {"log-level", TW_CFG_ENUM, 0, 0, "notice",
     offsetof(tw_broker_cfg_t, log_level), "err|warn|notice|info|debug",
     "log threshold"},
    {"log", TW_CFG_ENUM, 0, 0, "stderr", offsetof(tw_broker_cfg_t, log),
     "stderr|syslog", "where log lines go"},
    /* Security: broker/state/auth.h, docs/SECURITY.md. */
    {"curve-secret", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, curve_secret), NULL,
     "CURVE secret key file: authenticate and encrypt all three sockets"},
    {"clients-keys", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, clients_keys), NULL,
     "directory of client public keys allowed on the frontend"},
    {"workers-keys", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, workers_keys), NULL,
     "directory of worker public keys allowed on the backend"},
    {"monitors-keys", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, monitors_keys), NULL,
     "directory of monitor public keys allowed on the status socket"},
    {"insecure", TW_CFG_BOOL, 0, 0, "no", offsetof(tw_broker_cfg_t, insecure),
     NULL, "allow non-loopback endpoints without CURVE (plaintext)"},
    /* Monitoring and the HTTP API: broker/cmd/metrics.h, docs/HTTP.md,
     * docs/OPERATIONS.md. */
    {"http", TW_CFG_STR, 0, 0, NULL, offsetof(tw_broker_cfg_t, metrics),
     NULL, "HOST:PORT serving the HTTP API (/api/v1), the event stream "
     "and /metrics (off when unset; beyond loopback it needs "
     "--http-token-file or --insecure)"},
    {"metrics", TW_CFG_STR, 0, 0, NULL, offsetof(tw_broker_cfg_t, metrics),
     NULL, "the same as --http, its older name"},
    {"http-token-file", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, http_token_file), NULL,
     "file holding the bearer token the HTTP API's actions need (and reads "
     "from beyond loopback); mode 0600; reread on SIGHUP"},
    /* A broker pair: broker/ha.h, docs/HA.md. */
    {"role", TW_CFG_ENUM, 0, 0, NULL, offsetof(tw_broker_cfg_t, role),
     "primary|backup", "one broker of a pair (needs --data, --peer-bind "
     "and --peer); unset: a single broker"},
    {"peer-bind", TW_CFG_STR, 0, 0, NULL,
     offsetof(tw_broker_cfg_t, peer_bind), NULL,
     "endpoint this broker of a pair listens on for its peer"},
    {"peer", TW_CFG_STR, 0, 0, NULL, offsetof(tw_broker_cfg_t, peer), NULL,
     "the other broker's --peer-bind"},
    {"replicate", TW_CFG_ENUM, 0, 0, "sync",
     offsetof(tw_broker_cfg_t, replicate), "sync|async",
     "a pair: ACKs wait until the passive broker has the batch, or not"},
    S_OPT_INT("peer-heartbeat", 0, 600000, "0", peer_heartbeat,
              "milliseconds between a pair's heartbeats (0: --heartbeat)"),
    S_OPT_INT("peer-liveness", 2, 100, "3", peer_liveness,
              "heartbeats of silence after which the peer is lost"),
    S_OPT_INT("repl-backlog", 1, 1LL << 20, "64", repl_backlog,
              "MiB of recent batches kept to resend to the peer"),
    S_OPT_INT("repl-window", 1, 1LL << 20, "16", repl_window,
              "MiB streamed to the peer and not yet acknowledged, at most"),
    {"takeover", TW_CFG_BOOL, 0, 0, "no",
     offsetof(tw_broker_cfg_t, takeover), NULL,
     "a pair: may become active without ever hearing the peer"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL}};


/* ---- the turn --------------------------------------------------------- */

static void s_on_delay(uv_timer_t *h);
static void s_on_more(uv_timer_t *h);
static void s_on_sched(uv_timer_t *h);

/* The schedule timer goes off when the next tick is due (schedule.h);
 * it runs once the broker has recovered its state (sched_at >= -1). */
static void
s_arm_sched(tw_broker_t *b)
{
    if (b->sched_at < -1 || b->closing) {
        return;
    }
    int64_t in = tw__schedule_next(b);
    if (in < 0) {
        if (b->sched_at >= 0) {
            uv_timer_stop(&b->sched_timer);
        }
        b->sched_at = -1;
        return;
    }
    int64_t at = (int64_t)uv_now(b->loop) + in;
    if (at != b->sched_at) {
        b->sched_at = at;
        uv_timer_start(&b->sched_timer, s_on_sched, (uint64_t)in, 0);
    }
}

/* The delay timer fires when the first delayed task is due. */
static void
s_arm_delay(tw_broker_t *b)
{
    uint64_t due = tw__flow_next_due(b);
    if (due == b->delay_at) {
        return;
    }
    b->delay_at = due;
    if (!due) {
        uv_timer_stop(&b->delay_timer);
        return;
    }
    uint64_t now = uv_now(b->loop);
    uv_timer_start(&b->delay_timer, s_on_delay, due > now ? due - now : 0,
                   0);
}

/* The end of a turn: turn state changes into traffic. Stations are
 * placed before tasks are dispatched so a pending station gets the next
 * free slot. */
static void
s_end_of_turn(tw_broker_t *b)
{
    tw__place_pass(b);
    if (tw__flow_dispatch(b) && !b->closing) {
        /* The turn's share is sent: the rest after whatever else waits. */
        uv_timer_start(&b->more_timer, s_on_more, 0, 0);
    }
    s_arm_delay(b);
    s_arm_sched(b);
    tw__place_flush(b);
    tw__outbox_turn_end(b);
}

static void
s_on_drained(tw_zwatch_t *zw)
{
    s_end_of_turn(zw->data);
}

static void
s_on_delay(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    b->delay_at = 0;
    tw__flow_due(b, uv_now(b->loop));
    s_end_of_turn(b);
}

static void
s_on_sched(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    b->sched_at = -1;
    tw__schedule_due(b);
    s_end_of_turn(b);
}

static void
s_on_more(uv_timer_t *h)
{
    s_end_of_turn(h->data);
}

static void
s_on_grace(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    tw__lease_expire(b);
    s_end_of_turn(b);
}

/* ---- timers ----------------------------------------------------------- */

static void
s_on_heartbeat(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    uint64_t now = uv_now(b->loop);
    uint64_t hb = (uint64_t)b->cfg->heartbeat;
    uint64_t dead_after = hb * (uint64_t)b->cfg->liveness;
    for (size_t i = 0; i < b->reg.len;) {
        tw_bworker_t *w = b->reg.list[i];
        if (now - w->last_recv_ms > dead_after) {
            tw__on_worker_lost(b, w, "missed heartbeats");
            continue; /* the list shifted left */
        }
        if (now - w->last_send_ms >= hb) {
            tw_enc_t e;
            tw_enc_init(&e);
            tw_enc_map(&e, b->pair ? 2 : 1);
            tw_enc_key(&e, TW_F_BOOT);
            tw_enc_uint(&e, b->boot);
            if (b->pair) {
                tw_enc_key(&e, TW_F_HA);
                tw_enc_uint(&e, tw_pair_epoch(b->pair));
            }
            w->last_send_ms = now;
            tw_out_send(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                        TW_CMD_HEARTBEAT, &e);
            tw_enc_free(&e);
        }
        i++;
    }
    /* Restart backoffs expire with time, not with messages. */
    b->place_wanted |= b->nunplaced > 0;
    s_end_of_turn(b);
}

static void
s_publish_stats(tw_broker_t *b, uint64_t now)
{
    uint64_t done = b->st.completed + b->st.failed + b->st.cancelled;
    if (now > b->last_rate_ms) {
        b->rate = (double)(done - b->last_rate_done) * 1000.0 /
                  (double)(now - b->last_rate_ms);
    }
    b->last_rate_ms = now;
    b->last_rate_done = done;
    tw__view_ticks(b);
    if (!tw_status_wants(&b->status, "stats")) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw__view_status(b, &e, 1);
    tw_status_send(&b->status, "stats", &e);
    tw_enc_free(&e);
}

static void
s_on_stats(uv_timer_t *h)
{
    tw_broker_t *b = h->data;
    uint64_t now = uv_now(b->loop);
    s_publish_stats(b, now);
    tw__persist_gc(b, now);
    tw__persist_commit(b);
    tw_clients_gc(&b->clients, now, (uint64_t)b->cfg->client_idle * 1000);
    tw__on_clients_probe(b); /* S93: gone submitters close channels */
    tw_quarantine_gc(&b->quarantine, now);
    tw_trim_note(&b->trim, 0, 1, now);
}

/* ---- life cycle ------------------------------------------------------- */

static void
s_bye_client(uint64_t id, void *val, void *arg)
{
    tw_broker_t *b = arg;
    tw_bclient_t *c = val;
    (void)id;
    tw_enc_t e;
    tw_enc_init(&e);
    tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len, TW_CMD_BYE,
                &e);
    tw_enc_free(&e);
}

static void
s_on_signal(uv_signal_t *h, int signum)
{
    tw_broker_t *b = h->data;
    tw_notice("broker.stop", "signal %d: shutting down", signum);
    tw_broker_stop(b);
}

static void *
s_bind(tw_broker_t *b, int type, const char *ep, const char *what,
       tw_role_t role)
{
    void *s = zmq_socket(b->ctx, type);
    int zero = 0, one = 1, hwm = 100000;
    int64_t maxmsg = b->cfg->max_msg;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (type == ZMQ_XPUB) {
        /* libzmq reads a connection's subscriptions at most this far
         * ahead of the broker, which keeps them near the bound
         * (subguard.h). */
        int subhwm = 50;
        zmq_setsockopt(s, ZMQ_RCVHWM, &subhwm, sizeof subhwm);
    }
    if (type == ZMQ_ROUTER) {
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        /* A peer reconnecting with the same routing id takes it over
         * instead of being ignored while the old pipe lingers. */
        zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    }
    if (role == TW_ROLE_CLIENTS) {
        /* ZMTP heartbeats: a client that went silent (cut off, frozen)
         * loses its connection after `liveness` intervals, so it becomes
         * unroutable and its tasks' channels are closed (S93). libzmq
         * answers them itself, so a busy client is not affected. */
        int ivl = (int)b->cfg->heartbeat;
        int timeout = (int)(b->cfg->heartbeat * b->cfg->liveness);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    }
    int rc = tw_auth_socket(b->auth, s, role);
    if (rc == 0 && zmq_bind(s, ep) != 0) {
        rc = -1;
        /* libzmq binds addresses and interface names only: a host name
         * such as "localhost" is resolved here (endpoint.h). */
        char addr[300];
        int v6 = 0;
        int err = zmq_errno();
        int r = err == ENODEV
                    ? tw_endpoint_resolve(ep, addr, sizeof addr, &v6)
                    : 0;
        errno = err; /* the bind's own error, for the message below */
        if (r < 0) {
            tw_err("broker.bind", "cannot bind %s endpoint %s: %s", what, ep,
                   addr);
            zmq_close(s);
            return NULL;
        }
        if (r > 0) {
            zmq_setsockopt(s, ZMQ_IPV6, &v6, sizeof v6);
            rc = zmq_bind(s, addr);
        }
    }
    if (rc != 0) {
        tw_err("broker.bind", "cannot bind %s endpoint %s: %s", what, ep,
               zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Where a socket listens, as libzmq bound it (a resolved host, the port
 * of an ephemeral bind). */
static void
s_last_endpoint(void *s, const char *configured, char *out, size_t len)
{
    size_t n = len;
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, out, &n) != 0 || n == 0) {
        snprintf(out, len, "%s", configured);
    }
}

/* A task record is freed (result TTL, max-results, pool flush): its dedup
 * key stops naming it. */
static void
s_task_freed(tw_task_t *t, void *arg)
{
    tw_broker_t *b = arg;
    tw_pool_t *p = t->key ? tw_pools_by_id(&b->pools, t->pool) : NULL;
    if (p) {
        tw_strmap_del(&p->dedup, t->key, t->key_len);
    }
    tw__persist_task_freed(b, t);
}

int
tw_broker_check(const tw_broker_cfg_t *cfg, char *why, size_t wlen)
{
    int rc = tw_auth_check(cfg, why, wlen);
    if (rc == 0 && cfg->metrics && *cfg->metrics) {
        rc = tw_metrics_check(cfg->metrics, cfg->insecure,
                              cfg->http_token_file, why, wlen);
    }
    if (rc == 0) {
        rc = tw__ha_check(cfg, why, wlen);
    }
    return rc;
}

tw_broker_t *
tw_broker_new(uv_loop_t *loop, const tw_broker_cfg_t *cfg)
{
    tw_broker_t *b = tw_calloc(1, sizeof *b);
    b->cfg = cfg;
    b->loop = loop;
    b->ctx = zmq_ctx_new();
    tw_tasks_init(&b->tasks);
    tw_registry_init(&b->reg);
    tw_clients_init(&b->clients);
    tw_pools_init(&b->pools);
    tw_dedup_init(&b->dedup);
    /* Epochs start from the clock so a restarted broker without a store
     * does not reuse the ones its workers still hold (lease.c). */
    b->next_ep = ((tw_wall_ms() / 1000) & 0xffff) << 16 | 1;
    b->tasks.on_free = s_task_freed;
    b->tasks.on_free_arg = b;
    b->tasks.keep_args = (uint32_t)cfg->record_args;
    tw_stations_init(&b->stations, (size_t)cfg->n2s_backlog);
    static const tw_quarantine_cfg_t qcfg = TW_QUARANTINE_DEFAULTS;
    tw_quarantine_init(&b->quarantine, &qcfg);
    char why[640];
    if (tw_auth_new(&b->auth, cfg, b->ctx, why, sizeof why) != 0) {
        tw_err("broker.security", "%s", why);
        tw_broker_destroy(&b);
        return NULL;
    }
    b->front = s_bind(b, ZMQ_ROUTER, cfg->frontend, "frontend",
                      TW_ROLE_CLIENTS);
    b->back = b->front ? s_bind(b, ZMQ_ROUTER, cfg->backend, "backend",
                                TW_ROLE_WORKERS)
                       : NULL;
    b->pub = b->back ? s_bind(b, ZMQ_XPUB, cfg->status, "status",
                              TW_ROLE_MONITORS)
                     : NULL;
    if (!b->pub) {
        tw_broker_destroy(&b);
        return NULL;
    }
    s_last_endpoint(b->front, cfg->frontend, b->ep_front, sizeof b->ep_front);
    s_last_endpoint(b->back, cfg->backend, b->ep_back, sizeof b->ep_back);
    s_last_endpoint(b->pub, cfg->status, b->ep_pub, sizeof b->ep_pub);
    char hex[17];
    do {
        tw_random_hex(hex, 16);
        b->boot = strtoull(hex, NULL, 16);
    } while (b->boot == 0);
    tw_clients_set_boot(&b->clients, b->boot);
    b->out.st = &b->st;
    b->out.boot = b->boot;
    tw_zwatch_init(loop, &b->out.zw[TW_OUT_FRONT], b->front);
    tw_zwatch_init(loop, &b->out.zw[TW_OUT_BACK], b->back);
    b->out.zw[TW_OUT_FRONT].data = b->out.zw[TW_OUT_BACK].data = b;
    tw_status_init(loop, &b->status, b->pub);
    b->status.boot = b->boot;
    if (tw_status_guard(&b->status, b->ctx) != 0) {
        tw_warn("status.subscriptions", "no socket monitor on the status "
                "socket: subscriptions are not bounded");
    }
    tw_zwatch_start(&b->out.zw[TW_OUT_FRONT], tw__dispatch_front,
                    s_on_drained);
    tw_zwatch_start(&b->out.zw[TW_OUT_BACK], tw__dispatch_back, s_on_drained);
    tw_auth_watch(b->auth, loop);
    uv_timer_init(loop, &b->hb_timer);
    uv_timer_init(loop, &b->stats_timer);
    b->hb_timer.data = b->stats_timer.data = b;
    /* Ticking at half the interval finds a silent worker within half an
     * interval of its deadline rather than a whole one. */
    uint64_t tick = (uint64_t)cfg->heartbeat / 2;
    uv_timer_start(&b->hb_timer, s_on_heartbeat, tick, tick);
    uv_timer_start(&b->stats_timer, s_on_stats, 1000, 1000);
    tw__flow_init(b);
    uv_timer_init(loop, &b->delay_timer);
    uv_timer_init(loop, &b->more_timer);
    uv_timer_init(loop, &b->grace_timer);
    uv_timer_init(loop, &b->sched_timer);
    b->delay_timer.data = b->more_timer.data = b->grace_timer.data = b;
    b->sched_timer.data = b;
    tw_schedtab_init(&b->sched, (uint64_t)cfg->schedule_grace);
    b->sched_at = -2; /* until recovered */
    uv_signal_init(loop, &b->sigterm);
    uv_signal_init(loop, &b->sigint);
    b->sigterm.data = b->sigint.data = b;
    uv_signal_start(&b->sigterm, s_on_signal, SIGTERM);
    uv_signal_start(&b->sigint, s_on_signal, SIGINT);
    b->start_ms = b->serve_ms = b->last_rate_ms = uv_now(loop);
    b->wall_off = (int64_t)tw_wall_ms() - (int64_t)b->start_ms;
    if (cfg->metrics && *cfg->metrics &&
        tw_metrics_start(&b->metrics, b, cfg->metrics, cfg->insecure, why,
                         sizeof why) != 0) {
        tw_err("broker.metrics", "%s", why);
        tw_broker_stop(b);
        uv_run(loop, UV_RUN_DEFAULT); /* let the handles close */
        tw_broker_destroy(&b);
        return NULL;
    }
    b->jitter = uv_hrtime() | 1;
    tw_notice("broker.start",
              "taskwheel-broker %s listening: frontend %s, backend %s, "
              "status %s, heartbeat %lld ms, boot id %016llx",
              tw_version(), b->ep_front, b->ep_back, b->ep_pub,
              cfg->heartbeat, (unsigned long long)b->boot);
    return b;
}

/* A task read from the store: pending ones are queued again, running
 * ones held for their workers (lease.h). */
static void
s_recovered_task(uint64_t id, void *val, void *arg)
{
    tw_broker_t *b = arg;
    tw_task_t *t = val;
    (void)id;
    if (t->state == TW_ST_RUNNING) {
        tw__lease_held(b, t);
    } else if (t->state == TW_ST_PENDING) {
        tw__flow_enqueue(b, t);
    }
}

/* Recover the state from the store and start writing: at start, or when
 * a broker of a pair becomes active (ha.h). */
static int
s_recover(tw_broker_t *b, char *why, size_t wlen)
{
    int rc = tw__persist_open(b, why, wlen);
    /* A store that has seen tasks or handlers: this is a restart, and
     * clients resend before the workers are back (core/admit.c). */
    b->resumed = rc == 0 && b->persist &&
                 (b->tasks.next_id > 1 || b->reg.nhandlers > 0);
    if (rc == 0) {
        b->sched_at = -1; /* schedules may fire from now on */
        s_arm_sched(b);
    }
    b->serve_ms = uv_now(b->loop);
    if (rc != 0 || !b->persist) {
        return rc;
    }
    tw_idmap_each(&b->tasks.by_id, s_recovered_task, b);
    tw__flow_recover_blocked(b);
    for (size_t i = 0; i < b->stations.len; i++) {
        if (!tw_station_ended(b->stations.all[i])) {
            tw__place_unplace(b, b->stations.all[i]);
        }
    }
    tw__persist_start(b);
    tw__outbox_start(b);
    if (b->nheld) {
        uint64_t grace = 2 * (uint64_t)b->cfg->liveness *
                         (uint64_t)b->cfg->heartbeat;
        uv_timer_start(&b->grace_timer, s_on_grace, grace, 0);
    }
    s_arm_delay(b);
    return 0;
}

int
tw_broker_recover(tw_broker_t *b, char *why, size_t wlen)
{
    /* A broker of a pair recovers when it becomes active, if ever. */
    static const tw_ha_hooks_t hooks = {s_recover, tw_broker_stop};
    return b->cfg->role ? tw__ha_open(b, &hooks, why, wlen)
                        : s_recover(b, why, wlen);
}

int
tw_broker_run(tw_broker_t *b)
{
    uv_run(b->loop, UV_RUN_DEFAULT);
    return b->exit_code;
}

static void
s_closed(uv_handle_t *h)
{
    (void)h;
}

static void
s_zw_closed(tw_zwatch_t *zw)
{
    (void)zw;
}

void
tw_broker_stop(tw_broker_t *b)
{
    if (b->closing) {
        return;
    }
    b->closing = 1;
    /* Everything decided so far reaches the store first, then the ACKs
     * and RESULTs it covers, then a BYE to every known client. */
    tw__persist_stop(b);
    tw__ha_stop(b);
    tw__outbox_flush(b);
    tw_idmap_each(&b->clients.by_id, s_bye_client, b);
    /* Tell workers so they reconnect to the next broker at once. */
    for (size_t i = 0; i < b->reg.len; i++) {
        tw_enc_t e;
        tw_enc_init(&e);
        tw_bworker_t *w = b->reg.list[i];
        tw_out_send(&b->out, TW_OUT_BACK, w->ident, w->ident_len, TW_CMD_BYE,
                    &e);
        tw_enc_free(&e);
    }
    tw_zwatch_close(&b->out.zw[TW_OUT_FRONT], s_zw_closed);
    tw_zwatch_close(&b->out.zw[TW_OUT_BACK], s_zw_closed);
    tw_status_close(&b->status, s_zw_closed);
    tw_auth_close(b->auth);
    tw_metrics_stop(b->metrics);
    uv_close((uv_handle_t *)&b->hb_timer, s_closed);
    uv_close((uv_handle_t *)&b->stats_timer, s_closed);
    uv_close((uv_handle_t *)&b->delay_timer, s_closed);
    uv_close((uv_handle_t *)&b->more_timer, s_closed);
    uv_close((uv_handle_t *)&b->grace_timer, s_closed);
    uv_close((uv_handle_t *)&b->sched_timer, s_closed);
    tw__outbox_stop(b);
    uv_close((uv_handle_t *)&b->sigterm, s_closed);
    uv_close((uv_handle_t *)&b->sigint, s_closed);
}

void
tw_broker_destroy(tw_broker_t **self_p)
{
    tw_broker_t *b = *self_p;
    if (!b) {
        return;
    }
    if (b->front) {
        /* The last ACKs, RESULTs and BYEs get the same moment. */
        int linger = 200;
        zmq_setsockopt(b->front, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(b->front);
    }
    if (b->back) {
        /* Give the BYEs sent at shutdown a moment to leave. */
        int linger = 200;
        zmq_setsockopt(b->back, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(b->back);
    }
    if (b->pub) {
        tw_status_unguard(&b->status, b->pub);
        zmq_close(b->pub);
    }
    tw_auth_destroy(&b->auth);
    tw_metrics_destroy(&b->metrics);
    zmq_ctx_term(b->ctx);
    tw__persist_destroy(b);
    tw_dedup_destroy(&b->dedup);
    tw_clients_destroy(&b->clients);
    tw_stations_destroy(&b->stations);
    tw_queue_free(&b->delayed);
    tw_deps_destroy(&b->deps);
    tw_schedtab_destroy(&b->sched);
    tw_free(b->unplaced);
    tw_free(b->held);
    tw_aside_free(&b->aside);
    tw_registry_destroy(&b->reg);
    tw_tasks_destroy(&b->tasks);
    tw_pools_destroy(&b->pools);
    tw_quarantine_free(&b->quarantine);
    tw_free(b);
    *self_p = NULL;
}
