/*  worker/handlers/ask.c - "ask", the built-in that shows task channels.
 *
 *  It opens its task's channel, sends each message it was given, waits
 *  `delay` ms if asked to, makes one request and returns the submitter's
 *  reply, or the name of the error the request got ("ETIMEDOUT" when no
 *  reply came in time, "ECLOSEREQ" when the submitter asked to close or is
 *  gone, S93). Its arguments are either an array (the messages) or a map
 *  {"msgs": [...], "req": value, "timeout": ms, "delay": ms}; the request
 *  carries "req" (default the string "ask") and times out after "timeout"
 *  ms (default 30 s). Tests and the CLI's channel demo use it; it is async
 *  and runs on the loop thread like the other built-ins.
 */
#include "common/alloc.h"
#include "common/error.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"
#include "worker/handlers.h"

#include <msgpack.h>
#include <string.h>

typedef struct {
    tw_call_t *call;
    uv_timer_t timer; /* the delay before the request */
    msgpack_sbuffer req;
    uint64_t timeout;
    int finished;
} s_ask_t;

static void
s_closed(uv_handle_t *h)
{
    s_ask_t *a = h->data;
    msgpack_sbuffer_destroy(&a->req);
    tw_free(a);
}

/* Finish the call once with a result or an error name, then free. */
static void
s_end(s_ask_t *a, int status, const void *reply, size_t len)
{
    if (a->finished) {
        return;
    }
    a->finished = 1;
    uv_timer_stop(&a->timer);
    if (status == 0) {
        tw_call_finish(a->call, reply, len);
    } else if (status == TW_ECANCELED && tw_call_cancelled(a->call)) {
        tw_call_fail(a->call, "cancelled");
    } else {
        /* The error's name, as a msgpack string. */
        const char *name = tw_err_name(status);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        tw_call_finish(a->call, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    uv_close((uv_handle_t *)&a->timer, s_closed);
}

static void
s_reply(void *udata, int status, const void *reply, size_t len)
{
    s_end(udata, status, reply, len);
}

static void
s_request(s_ask_t *a)
{
    int rc = tw_call_request(a->call, a->req.data, a->req.size, a->timeout,
                             s_reply, a);
    if (rc != 0) {
        s_end(a, rc, NULL, 0);
    }
}

static void
s_delay_cb(uv_timer_t *t)
{
    s_request(t->data);
}

static uint64_t
s_uint(const msgpack_object *o, uint64_t dflt)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64
                                                            : dflt;
}

static void
s_ask_run(tw_call_t *call, void *udata)
{
    (void)udata;
    size_t len;
    const char *args = tw_call_args(call, &len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, args, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        (up.data.type != MSGPACK_OBJECT_ARRAY &&
         up.data.type != MSGPACK_OBJECT_MAP)) {
        msgpack_unpacked_destroy(&up);
        tw_call_fail(call, "ask: arguments must be an array of messages or "
                           "a map {msgs, req, timeout, delay}");
        return;
    }
    const msgpack_object *o = &up.data;
    const msgpack_object *msgs = o, *req = NULL;
    uint64_t delay = 0;
    s_ask_t *a = tw_calloc(1, sizeof *a);
    a->call = call;
    msgpack_sbuffer_init(&a->req);
    if (o->type == MSGPACK_OBJECT_MAP) {
        msgs = tw_mp_get(o, "msgs");
        req = tw_mp_get(o, "req");
        a->timeout = s_uint(tw_mp_get(o, "timeout"), 0);
        delay = s_uint(tw_mp_get(o, "delay"), 0);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a->req, msgpack_sbuffer_write);
    if (req) {
        msgpack_pack_object(&pk, *req);
    } else {
        msgpack_pack_str_with_body(&pk, "ask", 3);
    }
    uv_timer_init(tw_call_loop(call), &a->timer);
    a->timer.data = a;
    tw_call_set_data(call, a);
    int rc = tw_call_open(call, NULL, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t i = 0; rc == 0 && msgs &&
                         msgs->type == MSGPACK_OBJECT_ARRAY &&
                         i < msgs->via.array.size;
         i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, msgs->via.array.ptr[i]);
        rc = tw_call_send(call, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    if (rc != 0) {
        s_end(a, rc, NULL, 0);
    } else if (delay) {
        uv_timer_start(&a->timer, s_delay_cb, delay, 0);
    } else {
        s_request(a);
    }
}

/* Cancelled or timed out while waiting for the delay (a waiting request
 * is failed with TW_ECANCELED by the channel before this runs). */
static void
s_ask_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    s_ask_t *a = tw_call_data(call);
    if (a) {
        s_end(a, TW_ECANCELED, NULL, 0);
    }
}

int
tw_handlers_add_chan_builtins(tw_handlers_t *reg)
{
    static const tw_handler_def_t def = {
        .name = "ask",
        .flags = TW_HANDLER_ASYNC,
        .run = s_ask_run,
        .cancel = s_ask_cancel,
    };
    return tw_handlers_add(reg, &def);
}
