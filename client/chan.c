/*  client/chan.c - the submitter's end of task channels (S90-S93).
 *
 *  A running task's channel items come down as CHAN {items: [{id, ev,
 *  cr?, d?}]} from the broker, which routes them from the task's worker to
 *  the client that submitted it. Each item goes to the channel callback
 *  (tw_client_on_channel), then to the session layer as a TW_EV_COMM_*
 *  event, in the order the message holds them, which is the order the
 *  task sent them (S92). Answers go up as CHAN items of their own: "resp"
 *  with the request's correlation id, and "closereq" when the program
 *  wants the channel closed or its channel callback failed (S93). Nothing
 *  is kept between messages: a channel is only a task id to this side.
 *
 *  Like the rest of the client: one thread, no state of its own; respond
 *  and close only queue a message and try to send it, so callbacks may
 *  call them.
 */
#include "taskwheel/client.h"

#include "client/internal.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <string.h>

static const char s_nil = (char)0xc0;

static int
s_kind(const char *ev, size_t len)
{
    static const struct {
        const char *name;
        tw_chan_kind_t kind;
    } names[] = {{"open", TW_CHAN_OPEN},
                 {"msg", TW_CHAN_MSG},
                 {"req", TW_CHAN_REQ},
                 {"close", TW_CHAN_CLOSE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (len == strlen(names[i].name) &&
            memcmp(ev, names[i].name, len) == 0) {
            return (int)names[i].kind;
        }
    }
    return 0;
}

/* Send CHAN {items: [{id, ev, cr?, d?}]}. */
static int
s_send_item(tw_client_t *c, uint64_t id, const char *ev, uint64_t cr,
            const void *d, size_t len)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 1);
    tw_enc_key(&e, TW_F_ITEMS);
    tw_enc_array(&e, 1);
    tw_chan_item_t ci = {.id = id, .cr = cr, .ev = ev, .evlen = strlen(ev),
                         .d = d, .dlen = len};
    tw_enc_chan_item(&e, &ci);
    int rc = tw__client_send(c, &e, TW_CMD_CHAN);
    tw_enc_free(&e);
    return rc == TW_EAGAIN ? 0 : rc;
}

int
tw__client_on_chan(tw_client_t *c, const tw_msg_t *m, tw_chan_cb cb,
                   void *arg)
{
    for (size_t i = 0; i < m->nitems; i++) {
        const tw_item_t *it = &m->items[i];
        size_t evlen, len = 0;
        const char *ev = tw_item_str(it, TW_I_EV, &evlen);
        const void *d = tw_item_bin(it, TW_I_D, &len);
        tw_chan_msg_t msg;
        memset(&msg, 0, sizeof msg);
        msg.id = tw_item_uint(it, TW_I_ID, 0);
        msg.kind = (tw_chan_kind_t)s_kind(ev, evlen);
        msg.cr = tw_item_uint(it, TW_I_CR, 0);
        if (!d || !len) {
            d = &s_nil;
            len = 1;
        }
        if (!msg.kind || !tw_mp_one(d, len, TW_MP_DEPTH_DECODE) ||
            (msg.kind == TW_CHAN_REQ && !msg.cr)) {
            tw_debug("client.chan", "dropping a bad channel item for task "
                     "%llu", (unsigned long long)msg.id);
            continue;
        }
        msg.data = d;
        msg.len = len;
        if (cb && cb(arg, &msg) != 0 && msg.kind != TW_CHAN_CLOSE) {
            /* The host's handler failed: close the channel (S93). */
            tw_client_close_channel(c, msg.id);
        }
        tw__sess_chan(c, &msg);
    }
    return 1;
}

int
tw_client_respond(tw_client_t *c, uint64_t task_id, uint64_t cr,
                  const void *data, size_t len)
{
    if (!cr || !task_id ||
        (data && len && !tw_mp_one(data, len, TW_MP_DEPTH_DECODE))) {
        return TW_EINVAL;
    }
    if (!data || !len) {
        data = &s_nil;
        len = 1;
    }
    if (len > TW__CLIENT_MAX_ARGS) {
        return TW_E2BIG;
    }
    return s_send_item(c, task_id, "resp", cr, data, len);
}

int
tw_client_close_channel(tw_client_t *c, uint64_t task_id)
{
    if (!task_id) {
        return TW_EINVAL;
    }
    return s_send_item(c, task_id, "closereq", 0, NULL, 0);
}
