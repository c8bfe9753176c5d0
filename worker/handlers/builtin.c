/*  worker/handlers/builtin.c - the handlers every worker has: noop, echo,
 *  sleep and fail.
 *
 *  They exist for tests, benchmarks and health checks. noop and echo
 *  finish inside `run`, touching nothing but the call, so they measure the
 *  scheduler itself; sleep holds a slot on a uv_timer without blocking the
 *  loop and honours cancellation; fail exercises the error path. All are
 *  async and run on the loop thread.
 */
#include "common/alloc.h"
#include "worker/handlers.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

/* noop: nil, whatever the arguments. */
static void
s_noop(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_call_finish(call, NULL, 0);
}

/* echo: the arguments, byte for byte. */
static void
s_echo(tw_call_t *call, void *udata)
{
    (void)udata;
    size_t len;
    const void *a = tw_call_args(call, &len);
    tw_call_finish(call, a, len);
}

/* fail: an error whose message is the arguments if they are a string. */
static void
s_fail(tw_call_t *call, void *udata)
{
    (void)udata;
    size_t len;
    const unsigned char *a = tw_call_args(call, &len);
    size_t hdr = 0, n = 0;
    if (len >= 1 && a[0] >= 0xa0 && a[0] <= 0xbf) {
        hdr = 1;
        n = a[0] & 0x1f;
    } else if (len >= 2 && a[0] == 0xd9) {
        hdr = 2;
        n = a[1];
    } else if (len >= 3 && a[0] == 0xda) {
        hdr = 3;
        n = (size_t)a[1] << 8 | a[2];
    } else if (len >= 5 && a[0] == 0xdb) {
        hdr = 5;
        n = (size_t)a[1] << 24 | (size_t)a[2] << 16 | (size_t)a[3] << 8 |
            a[4];
    }
    if (hdr && hdr + n == len) {
        tw_call_fail(call, "%.*s", (int)n, (const char *)a + hdr);
    } else {
        tw_call_fail(call, "fail handler called");
    }
}

/* sleep: nil after `args` seconds (a number, or an array of one). */
typedef struct {
    uv_timer_t timer;
    tw_call_t *call; /* NULL once finished */
} s_sleep_t;

static void
s_sleep_closed(uv_handle_t *h)
{
    tw_free(h->data);
}

static void
s_sleep_end(s_sleep_t *s, int cancelled)
{
    tw_call_t *call = s->call;
    s->call = NULL;
    uv_close((uv_handle_t *)&s->timer, s_sleep_closed);
    if (cancelled) {
        tw_call_fail(call, "sleep cancelled");
    } else {
        tw_call_finish(call, NULL, 0);
    }
}

static void
s_sleep_fired(uv_timer_t *t)
{
    s_sleep_end(t->data, 0);
}

/* Seconds from a msgpack number; -1 if `o` is not one or is negative. */
static double
s_seconds(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 1) {
        o = &o->via.array.ptr[0];
    }
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return (double)o->via.u64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) && o->via.f64 >= 0 ? o->via.f64 : -1;
    default:
        return -1;
    }
}

static void
s_sleep(tw_call_t *call, void *udata)
{
    (void)udata;
    size_t len;
    const char *a = tw_call_args(call, &len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    double secs = -1;
    if (msgpack_unpack_next(&up, a, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len) {
        secs = s_seconds(&up.data);
    }
    msgpack_unpacked_destroy(&up);
    if (secs < 0 || secs > 1e9) {
        tw_call_fail(call, "sleep: args must be a number of seconds "
                           "(0 to 1e9) or [seconds]");
        return;
    }
    s_sleep_t *s = tw_malloc(sizeof *s);
    s->call = call;
    uv_timer_init(tw_call_loop(call), &s->timer);
    s->timer.data = s;
    tw_call_set_data(call, s);
    uv_timer_start(&s->timer, s_sleep_fired, (uint64_t)llround(secs * 1e3),
                   0);
}

static void
s_sleep_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    s_sleep_t *s = tw_call_data(call);
    if (s && s->call) {
        s_sleep_end(s, 1);
    }
}

int
tw_handlers_add_builtin(tw_handlers_t *reg)
{
    static const tw_handler_def_t defs[] = {
        {"noop", TW_HANDLER_ASYNC, s_noop, NULL, NULL},
        {"echo", TW_HANDLER_ASYNC, s_echo, NULL, NULL},
        {"sleep", TW_HANDLER_ASYNC, s_sleep, s_sleep_cancel, NULL},
        {"fail", TW_HANDLER_ASYNC, s_fail, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        int rc = tw_handlers_add(reg, &defs[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
