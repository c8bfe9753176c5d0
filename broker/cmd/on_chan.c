/*  broker/cmd/on_chan.c - routing task channels (CHAN) between a running task's
 *  worker and the client that submitted it (S90-S93, F5).
 *
 *  The broker keeps no channel state: every task already knows its
 *  submitter (t->client) and, while it runs, its worker (t->worker), so
 *  an item is routed by its task id alone:
 *
 *      worker --open/msg/req/close--> broker --> submitting client
 *      worker <--resp/closereq------- broker <-- submitting client
 *
 *  Items of one incoming message leave in one message per peer, in the
 *  order they came, and are sent at once rather than at the end of the
 *  turn, so a task's channel items reach its client before its RESULT
 *  (which waits for the end of the turn) and keep their order (S92).
 *
 *  Nothing is stored but a flag on the task ("its channel is open"), so
 *  nothing leaks: an item for a task that is not running on the sending
 *  worker (ended, cancelled, requeued elsewhere) is dropped and counted.
 *  When the submitter is gone - forgotten, said BYE, or its connection
 *  closed so the ROUTER cannot route to it (ZMQ_ROUTER_MANDATORY makes
 *  that an error, which is the broker's liveness test for clients, and
 *  ZMTP heartbeats on the frontend close a connection that went silent) -
 *  the broker sends the worker a closereq for the task, and its waiting
 *  and later requests fail with CloseRequestError (S93). It learns of the
 *  departure from an item it cannot deliver, from a BYE, or from the
 *  probe it sends once a second to every client with tasks not ended, so
 *  a request already delivered to a client that then went away fails
 *  within about a second, not at its timeout.
 *  A client's bad item gets one ERROR per message naming the first
 *  problem; the rest of the message still goes through.
 */
#include "broker/cmd/on_chan.h"
#include "broker/core/core.h"
#include "broker/state/chan.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

/* Copy item `it` (id, ev, cr, d, err) into `e`. */
static void
s_copy_item(tw_enc_t *e, const tw_item_t *it)
{
    size_t evlen, dlen, elen;
    const char *ev = tw_item_str(it, TW_I_EV, &evlen);
    const void *d = tw_item_bin(it, TW_I_D, &dlen);
    const char *err = tw_item_str(it, TW_I_ERR, &elen);
    tw_chan_item_t ci = {.id = tw_item_uint(it, TW_I_ID, 0),
                         .cr = tw_item_uint(it, TW_I_CR, 0),
                         .ev = ev, .evlen = evlen, .d = d, .dlen = dlen,
                         .err = err, .errlen = elen};
    tw_enc_chan_item(e, &ci);
}

/* Append a closereq item for task `id` to `batch`. */
static void
s_closereq_item(tw_batch_t *batch, uint64_t id, const char *why)
{
    tw_chan_item_t ci = {.id = id, .ev = "closereq", .evlen = 8,
                         .err = why, .errlen = strlen(why)};
    tw_enc_chan_item(tw_batch_item(batch), &ci);
}

/* Items for one client, with the task ids they carry (to answer the
 * worker with closereqs if the client cannot be reached). */
typedef struct {
    tw_bclient_t *c;
    tw_batch_t batch;
    uint64_t *ids;
    size_t n, cap;
} s_out_t;

/* Send what `o` holds to its client; if the client is unreachable, ask
 * the worker to close those tasks' channels. */
static void
s_out_flush(tw_broker_t *b, s_out_t *o, tw_batch_t *closereqs)
{
    if (!o->c || o->batch.n == 0) {
        o->n = 0;
        return;
    }
    uint32_t items = o->batch.n;
    int rc = tw_out_batch(&b->out, TW_OUT_FRONT, o->c->ident,
                                   o->c->ident_len, TW_CMD_CHAN, &o->batch);
    if (rc == 0) {
        b->st.chan_fwd += items;
    } else if (rc != TW_ENOENT) {
        /* The client is there but not reading (its queue is full): the
         * items are lost and counted; a request among them times out on
         * the worker. */
        b->st.chan_dropped += items;
    } else {
        tw_debug("broker.chan", "client %llu unreachable (%s): closing "
                 "%zu channel(s)", (unsigned long long)o->c->id,
                 tw_strerror(rc), o->n);
        b->st.chan_dropped += items;
        for (size_t i = 0; i < o->n; i++) {
            s_closereq_item(closereqs, o->ids[i], "submitter unreachable");
            b->st.chan_closereq++;
            tw_task_t *t = tw_tasks_get(&b->tasks, o->ids[i]);
            if (t) {
                t->chan_open = 0;
            }
        }
    }
    o->n = 0;
}

void
tw__on_chan_up(tw_broker_t *b, tw_bworker_t *w, const tw_msg_t *m)
{
    s_out_t o = {0};
    tw_batch_init(&o.batch, 0);
    tw_batch_t closereqs;
    tw_batch_init(&closereqs, 0);
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        size_t evlen, dlen = 0;
        const char *ev = tw_item_str(it, TW_I_EV, &evlen);
        tw_item_bin(it, TW_I_D, &dlen);
        tw_task_t *t = tw_tasks_get(&b->tasks, id);
        const char *why =
            tw_chan_up_refusal(t, w->id, ev, evlen, dlen,
                               it->f[TW_I_CR] != NULL, b->cfg->max_payload);
        if (why) {
            b->st.chan_dropped++;
            if (b->st.chan_dropped <= 10 ||
                b->st.chan_dropped % 1000 == 0) {
                tw_notice("broker.chan", "CHAN item '%.*s' for task %llu "
                          "from %s dropped: %s (%llu so far)", (int)evlen,
                          ev, (unsigned long long)id, w->name, why,
                          (unsigned long long)b->st.chan_dropped);
            }
            continue;
        }
        tw_bclient_t *c = t->client ? tw_clients_get(&b->clients, t->client)
                                    : NULL;
        t->chan_open = !tw_chan_ev_is(ev, evlen, "close");
        if (!c || c->gone) {
            if (t->chan_open) {
                s_closereq_item(&closereqs, id, "submitter gone");
                b->st.chan_closereq++;
                t->chan_open = 0;
            }
            b->st.chan_dropped++;
            continue;
        }
        if (c != o.c) {
            s_out_flush(b, &o, &closereqs);
            o.c = c;
        }
        if (o.batch.n && (tw_enc_size(&o.batch.enc) + dlen > TW__BATCH_BYTES ||
                          o.batch.n >= TW__BATCH_ITEMS)) {
            s_out_flush(b, &o, &closereqs);
        }
        s_copy_item(tw_batch_item(&o.batch), it);
        if (!tw_chan_ev_is(ev, evlen, "close")) {
            if (o.n == o.cap) {
                o.cap = o.cap ? 2 * o.cap : 16;
                o.ids = tw_realloc(o.ids, o.cap * sizeof *o.ids);
            }
            o.ids[o.n++] = id;
        }
    }
    s_out_flush(b, &o, &closereqs);
    if (closereqs.n) {
        tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                              TW_CMD_CHAN, &closereqs);
    }
    tw_batch_free(&o.batch);
    tw_batch_free(&closereqs);
    tw_free(o.ids);
}

void
tw__on_chan_down(tw_broker_t *b, tw_bclient_t *c, const tw_msg_t *m)
{
    tw_bworker_t *to = NULL;
    tw_batch_t batch;
    tw_batch_init(&batch, 0);
    int first = 0;
    char why[256];
    size_t bad = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        uint64_t id = tw_item_uint(it, TW_I_ID, 0);
        size_t evlen, dlen = 0;
        const char *ev = tw_item_str(it, TW_I_EV, &evlen);
        tw_item_bin(it, TW_I_D, &dlen);
        tw_task_t *t = tw_tasks_get(&b->tasks, id);
        int resp = tw_chan_ev_is(ev, evlen, "resp");
        char msg[200];
        int code = tw_chan_down_check(
            t, id, c->id, t && tw_registry_by_id(&b->reg, t->worker), ev,
            evlen, it->f[TW_I_CR] != NULL, dlen, b->cfg->max_payload, msg,
            sizeof msg);
        if (code) {
            b->st.chan_dropped++;
            if (!bad++) {
                first = code;
                snprintf(why, sizeof why, "%s", msg);
            }
            continue;
        }
        tw_bworker_t *w = tw_registry_by_id(&b->reg, t->worker);
        if (w != to || tw_enc_size(&batch.enc) + dlen > TW__BATCH_BYTES ||
            batch.n >= TW__BATCH_ITEMS) {
            if (to && batch.n) {
                b->st.chan_fwd += batch.n;
                tw_out_batch(&b->out, TW_OUT_BACK, to->ident, to->ident_len,
                                      TW_CMD_CHAN, &batch);
            }
            to = w;
        }
        s_copy_item(tw_batch_item(&batch), it);
        b->st.chan_closereq += !resp;
    }
    if (to && batch.n) {
        b->st.chan_fwd += batch.n;
        tw_out_batch(&b->out, TW_OUT_BACK, to->ident, to->ident_len,
                              TW_CMD_CHAN, &batch);
    }
    tw_batch_free(&batch);
    if (bad) {
        tw_out_error(&b->out, TW_OUT_FRONT, c->ident, c->ident_len, first, 0,
                         "%s%s", why,
                         bad > 1 ? " (and more items of that CHAN)" : "");
    }
}

void
tw__on_client_gone(tw_broker_t *b, tw_bclient_t *c, const char *why)
{
    if (c->gone) {
        return;
    }
    c->gone = 1;
    size_t closed = 0;
    tw_batch_t batch;
    tw_batch_init(&batch, 0);
    for (size_t i = 0; i < b->reg.len; i++) {
        tw_bworker_t *w = b->reg.list[i];
        for (tw_task_t *t = w->inflight.head; t; t = t->next) {
            if (t->client != c->id || !t->chan_open) {
                continue;
            }
            if (batch.n >= TW__BATCH_ITEMS) {
                tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                                      TW_CMD_CHAN, &batch);
            }
            s_closereq_item(&batch, t->id, why);
            t->chan_open = 0;
            b->st.chan_closereq++;
            closed++;
        }
        if (batch.n) {
            tw_out_batch(&b->out, TW_OUT_BACK, w->ident, w->ident_len,
                                  TW_CMD_CHAN, &batch);
        }
    }
    tw_batch_free(&batch);
    if (closed) {
        tw_info("broker.chan", "client %llu is gone (%s): closed %zu "
                "channel(s)", (unsigned long long)c->id, why, closed);
    }
}

static void
s_probe(uint64_t id, void *val, void *arg)
{
    tw_broker_t *b = arg;
    tw_bclient_t *c = val;
    (void)id;
    if (!c->outstanding || c->gone) {
        return;
    }
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_BOOT); /* a restarted broker shows itself (5.19) */
    tw_enc_uint(&e, b->boot);
    int rc = tw_out_send(&b->out, TW_OUT_FRONT, c->ident, c->ident_len,
                             TW_CMD_HEARTBEAT, &e);
    tw_enc_free(&e);
    if (rc == TW_ENOENT) {
        tw__on_client_gone(b, c, "submitter unreachable");
    }
}

void
tw__on_clients_probe(tw_broker_t *b)
{
    tw_idmap_each(&b->clients.by_id, s_probe, b);
}
