/*  broker/dispatch.c - every message a ROUTER socket delivers, checked and
 *  handed to the handler of its command (see dispatch.h).
 */
#include "broker/dispatch.h"
#include "broker/cmd/on_chan.h"
#include "broker/cmd/on_pool.h"
#include "broker/cmd/on_query.h"
#include "broker/cmd/on_records.h"
#include "broker/cmd/on_schedule.h"
#include "broker/cmd/on_station.h"
#include "broker/cmd/on_task.h"
#include "broker/cmd/on_worker.h"
#include "broker/core/core.h"
#include "broker/core/outbox.h"
#include "broker/core/persist.h"
#include "broker/gate.h"
#include "broker/ha.h"
#include "common/error.h"
#include "common/log.h"

static void
s_front(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    switch (m->cmd) {
    case TW_CMD_SUBMIT:
        tw__on_submit(b, c, m);
        break;
    case TW_CMD_RESULT:
        tw__on_result(b, c, m);
        break;
    case TW_CMD_CANCEL:
        tw__on_cancel(b, c, m);
        break;
    case TW_CMD_QUERY:
        tw__on_query(b, c, m);
        break;
    case TW_CMD_TASK:
        tw__on_task_op(b, c, m);
        break;
    case TW_CMD_STATION:
        tw__on_station_op(b, c, m);
        tw__persist_station_msg(b, m);
        break;
    case TW_CMD_GROUP:
        tw__on_group(b, c, m);
        tw__persist_pool_msg(b, m);
        break;
    case TW_CMD_POOL:
        tw__on_pool(b, c, m);
        tw__persist_pool_msg(b, m);
        break;
    case TW_CMD_WORKER:
        tw__on_worker_op(b, c, m);
        break;
    case TW_CMD_SCHEDULE:
        tw__on_schedule(b, c, m);
        break;
    case TW_CMD_CHAN:
        tw__on_chan_down(b, c, m);
        break;
    case TW_CMD_HEARTBEAT:
        tw__on_ping(b, c);
        break;
    case TW_CMD_BYE:
        /* The record ages out; its tasks' channels close now (S93). */
        tw__on_client_gone(b, c, "submitter said BYE");
        break;
    default:
        break;
    }
}

void
tw__dispatch_front(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_broker_t *b = zw->data;
    tw_msg_t m;
    if (tw__gate_decode(b, msg, &m, TW_C2B) != 0) {
        return;
    }
    if (tw__ha_gate(b, 0, zmq_msg_data(&msg->f[0]), zmq_msg_size(&msg->f[0]),
                    &m)) {
        tw_msg_release(&m);
        return;
    }
    tw_bclient_t *c = tw_clients_touch(&b->clients, zmq_msg_data(&msg->f[0]),
                                       zmq_msg_size(&msg->f[0]),
                                       uv_now(b->loop));
    if (m.cmd != TW_CMD_SUBMIT) {
        /* Replies go out at once; send what this turn already owes the
         * client first, so a reply never overtakes an earlier ACK. */
        tw__outbox_flush(b);
    }
    s_front(b, c, &m);
    tw_msg_release(&m);
    tw__persist_check(b); /* no batch grows past what the store covers */
}

/* A message from a routing id that has not said HELLO (or was dropped). */
static void
s_unknown_worker(tw_broker_t *b, const void *ident, size_t ilen,
                 const tw_msg_t *m)
{
    /* A worker declared dead (a SIGSTOP, a cut link) may still report
     * what it ran: those tasks were requeued, so the outcomes are late
     * duplicates, counted and never applied. */
    if (m->cmd == TW_CMD_DONE) {
        b->st.duplicates += m->nitems;
    }
    if (m->cmd != TW_CMD_BYE) {
        /* A strike like any refusal, or a peer could keep the broker
         * answering EWORKER for ever; a worker that lost its registration
         * sends HELLO on the first one, which forgives the strikes its
         * messages in flight earned. */
        tw__broker_peer_error(b, "backend", ident, ilen);
        tw_out_error(&b->out, TW_OUT_BACK, ident, ilen, TW_EWORKER, 0,
                     "unknown worker: send HELLO first (this is the "
                     "broker's backend, for workers; clients connect to "
                     "the frontend, %s)",
                     b->ep_front);
    }
}

static void
s_back(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    switch (m->cmd) {
    case TW_CMD_READY:
        tw__on_ready(b, w, m);
        break;
    case TW_CMD_DONE:
        tw__on_done(b, w, m);
        break;
    case TW_CMD_BYE:
        tw__on_bye(b, w);
        break;
    case TW_CMD_WORKER:
        tw__on_worker_report(b, w, m);
        break;
    case TW_CMD_STATION:
        tw__on_station_report(b, w, m);
        tw__persist_station_msg(b, m);
        break;
    case TW_CMD_S2N:
        tw__on_s2n(b, w, m);
        break;
    case TW_CMD_CHAN:
        tw__on_chan_up(b, w, m);
        break;
    default: /* HEARTBEAT: liveness was refreshed already. */
        break;
    }
}

void
tw__dispatch_back(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_broker_t *b = zw->data;
    tw_msg_t m;
    if (tw__gate_decode(b, msg, &m, TW_W2B) != 0) {
        return;
    }
    const void *ident = zmq_msg_data(&msg->f[0]);
    size_t ilen = zmq_msg_size(&msg->f[0]);
    if (tw__ha_gate(b, 1, ident, ilen, &m)) {
        tw_msg_release(&m);
        return;
    }
    tw_bworker_t *w = tw_registry_by_ident(&b->reg, ident, ilen);
    if (m.cmd == TW_CMD_HELLO) {
        tw_quarantine_forgive(&b->quarantine, ident, ilen, uv_now(b->loop));
        tw__on_hello(b, ident, ilen, &m);
        tw_msg_release(&m);
        return;
    }
    if (!w) {
        s_unknown_worker(b, ident, ilen, &m);
        tw_msg_release(&m);
        return;
    }
    w->last_recv_ms = uv_now(b->loop);
    s_back(b, w, &m);
    tw_msg_release(&m);
    tw__persist_check(b); /* no batch grows past what the store covers */
}
