/*  worker/handlers/builtin.c - the handlers every worker has: noop, echo,
 *  sleep and fail, and the station built-ins incr, mirror and ticker.
 *
 *  They exist for tests, benchmarks and health checks. noop and echo
 *  finish inside `run`, touching nothing but the call, so they measure the
 *  scheduler itself; sleep holds a slot on a uv_timer without blocking the
 *  loop and honours cancellation; fail exercises the error path. The
 *  station built-ins exercise the taskloop engine: incr counts with next
 *  mode "result", mirror sends every n2s message back as s2n, ticker emits
 *  one s2n message per iteration. All are async and run on the loop
 *  thread.
 */
#include "common/alloc.h"
#include "proto/mpwalk.h"
#include "worker/handlers.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

/* Unpack the call's arguments into `up` (which the caller destroys).
 * Returns 1 if they are exactly one msgpack value, else 0. */
static int
s_unpack_args(tw_call_t *call, msgpack_unpacked *up)
{
    size_t len;
    const char *a = tw_call_args(call, &len);
    size_t off = 0;
    msgpack_unpacked_init(up);
    return msgpack_unpack_next(up, a, len, &off) == MSGPACK_UNPACK_SUCCESS &&
           off == len;
}

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
    size_t len, n;
    const unsigned char *a = tw_call_args(call, &len);
    const char *s;
    if (tw_mp_text(a, len, 0, &s, &n)) {
        tw_call_fail(call, "%.*s", (int)n, s);
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
    msgpack_unpacked up;
    double secs = -1;
    if (s_unpack_args(call, &up)) {
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

/* incr: a number n -> n + 1 (integers stay integers, floats floats). */
static void
s_incr(tw_call_t *call, void *udata)
{
    (void)udata;
    msgpack_unpacked up;
    int ok = s_unpack_args(call, &up);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const msgpack_object *o = &up.data;
    if (ok && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 1) {
        o = &o->via.array.ptr[0];
    }
    if (!ok) {
        /* fall through to the error below */
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 == UINT64_MAX) {
            msgpack_pack_double(&pk, (double)o->via.u64 + 1.0);
        } else {
            msgpack_pack_uint64(&pk, o->via.u64 + 1);
        }
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        msgpack_pack_int64(&pk, o->via.i64 + 1);
    } else if (o->type == MSGPACK_OBJECT_FLOAT32 ||
               o->type == MSGPACK_OBJECT_FLOAT64) {
        msgpack_pack_double(&pk, o->via.f64 + 1.0);
    } else {
        ok = 0;
    }
    msgpack_unpacked_destroy(&up);
    if (ok) {
        tw_call_finish(call, sb.data, sb.size);
    } else {
        tw_call_fail(call, "incr: args must be a number or [number]");
    }
    msgpack_sbuffer_destroy(&sb);
}

/* mirror: the arguments, like echo; as a station its n2s messages come
 * back as s2n, in the order they arrived. */
static void
s_mirror_n2s(tw_station_t *st, const void *data, size_t len, void *udata)
{
    (void)udata;
    tw_station_emit(st, data, len);
}

/* ticker: the arguments; as a station each iteration first emits
 * {"it": <iteration number>}. */
static void
s_ticker(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_station_t *st = tw_call_station(call);
    if (st) {
        /* {"it": n}: a fixmap of one, fixstr "it", n in its shortest
         * msgpack form. */
        unsigned char buf[16] = {0x81, 0xa2, 'i', 't'};
        size_t k = 4;
        uint64_t n = tw_station_iteration(st);
        int w = n < 128 ? 0 : n < 256 ? 1 : n < 65536 ? 2
              : n <= UINT32_MAX ? 4 : 8;
        if (w) {
            buf[k++] = w == 1 ? 0xcc : w == 2 ? 0xcd : w == 4 ? 0xce : 0xcf;
        }
        for (int i = (w ? w : 1) - 1; i >= 0; i--) {
            buf[k++] = (unsigned char)(n >> (8 * i));
        }
        tw_station_emit(st, buf, k);
    }
    size_t len;
    const void *a = tw_call_args(call, &len);
    tw_call_finish(call, a, len);
}

/* Register the `n` definitions of `defs`; stop at the first error. */
static int
s_add_all(tw_handlers_t *reg, const tw_handler_def_t *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = tw_handlers_add(reg, &defs[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
tw_handlers_add_builtin(tw_handlers_t *reg)
{
    static const tw_handler_def_t defs[] = {
        {.name = "noop", .flags = TW_HANDLER_ASYNC, .run = s_noop},
        {.name = "echo", .flags = TW_HANDLER_ASYNC, .run = s_echo},
        {.name = "sleep",
         .flags = TW_HANDLER_ASYNC,
         .run = s_sleep,
         .cancel = s_sleep_cancel},
        {.name = "fail", .flags = TW_HANDLER_ASYNC, .run = s_fail},
    };
    return s_add_all(reg, defs, sizeof defs / sizeof defs[0]);
}

int
tw_handlers_add_station_builtins(tw_handlers_t *reg)
{
    static const tw_handler_def_t defs[] = {
        {.name = "incr", .flags = TW_HANDLER_ASYNC, .run = s_incr},
        {.name = "mirror",
         .flags = TW_HANDLER_ASYNC,
         .run = s_echo,
         .n2s = s_mirror_n2s},
        {.name = "ticker", .flags = TW_HANDLER_ASYNC, .run = s_ticker},
    };
    return s_add_all(reg, defs, sizeof defs / sizeof defs[0]);
}
