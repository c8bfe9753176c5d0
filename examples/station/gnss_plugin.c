/*  examples/station/gnss_plugin.c - a station handler to copy from.
 *
 *  "example.gnss" pretends to be a GNSS receiver. Run as a station, each
 *  iteration emits one fake position fix as an s2n message,
 *
 *      {"fix": n, "lat": -33.45..., "lon": -70.66..., "rate": ms}
 *
 *  then waits `rate` milliseconds on a uv_timer (an async handler must not
 *  block the loop) and ends, returning its input so the station goes on.
 *  Clients change the rate while it runs with an n2s message, either a
 *  number of milliseconds or {"rate": ms} (10 to 60000):
 *
 *      taskwheel station add gps example.gnss --next same
 *      taskwheel station tail gps
 *      taskwheel station send gps '{"rate": 200}'
 *
 *  It shows the station half of include/taskwheel/handler.h:
 *    - tw_call_station() tells a station iteration from a plain task (a
 *      plain task call returns one fix as its result instead);
 *    - tw_station_data() keeps the receiver's state (rate, fix count, the
 *      timer) from one iteration to the next;
 *    - `n2s` receives the rate changes on the loop thread, also between
 *      iterations;
 *    - `cancel` stops the wait when the station is cancelled, released or
 *      times out;
 *    - `end` frees the state when the station leaves the worker: the timer
 *      is a libuv handle, so the memory goes in its close callback.
 */
#include <taskwheel/handler.h>

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define S_RATE_MIN 10
#define S_RATE_MAX 60000
#define S_RATE_DEFAULT 1000

/* One receiver's state, the station's tw_station_data. */
typedef struct {
    uint64_t rate_ms;
    uint64_t fixes;
    uv_timer_t timer;
    int timer_open;
    tw_call_t *call; /* the iteration waiting on the timer, or NULL */
} s_gnss_t;

/* Pack one fake fix: a slow circle around a point. */
static void
s_pack_fix(msgpack_packer *pk, uint64_t n, uint64_t rate_ms)
{
    double a = (double)n / 60.0;
    msgpack_pack_map(pk, 4);
    msgpack_pack_str_with_body(pk, "fix", 3);
    msgpack_pack_uint64(pk, n);
    msgpack_pack_str_with_body(pk, "lat", 3);
    msgpack_pack_double(pk, -33.45 + 0.001 * sin(a));
    msgpack_pack_str_with_body(pk, "lon", 3);
    msgpack_pack_double(pk, -70.66 + 0.001 * cos(a));
    msgpack_pack_str_with_body(pk, "rate", 4);
    msgpack_pack_uint64(pk, rate_ms);
}

static void
s_fired(uv_timer_t *t)
{
    s_gnss_t *g = t->data;
    tw_call_t *call = g->call;
    g->call = NULL;
    size_t len;
    const void *a = tw_call_args(call, &len);
    tw_call_finish(call, a, len); /* the input again: next mode "same" */
}

static void
s_run(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_station_t *st = tw_call_station(call);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (!st) {
        /* A plain task: one fix as the result. */
        s_pack_fix(&pk, 0, 0);
        tw_call_finish(call, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    s_gnss_t *g = tw_station_data(st);
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g) {
            msgpack_sbuffer_destroy(&sb);
            tw_call_fail(call, "example.gnss: out of memory");
            return;
        }
        g->rate_ms = S_RATE_DEFAULT;
        tw_station_set_data(st, g);
    }
    if (!g->timer_open) {
        uv_timer_init(tw_call_loop(call), &g->timer);
        g->timer.data = g;
        g->timer_open = 1;
    }
    s_pack_fix(&pk, ++g->fixes, g->rate_ms);
    tw_station_emit(st, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    g->call = call;
    uv_timer_start(&g->timer, s_fired, g->rate_ms, 0);
}

static void
s_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_station_t *st = tw_call_station(call);
    s_gnss_t *g = st ? tw_station_data(st) : NULL;
    if (g && g->call == call) {
        uv_timer_stop(&g->timer);
        g->call = NULL;
        tw_call_fail(call, "example.gnss: cancelled");
    }
}

/* n2s: a number of ms, or {"rate": ms}. Anything else is ignored. */
static void
s_n2s(tw_station_t *st, const void *data, size_t len, void *udata)
{
    (void)udata;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        return;
    }
    const msgpack_object *o = &up.data;
    if (o->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *v = NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 4 &&
                !memcmp(k->via.str.ptr, "rate", 4)) {
                v = &o->via.map.ptr[i].val;
            }
        }
        o = v;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        uint64_t r = o->via.u64;
        r = r < S_RATE_MIN ? S_RATE_MIN : r > S_RATE_MAX ? S_RATE_MAX : r;
        s_gnss_t *g = tw_station_data(st);
        if (!g) {
            g = calloc(1, sizeof *g); /* a message before the first fix */
            if (!g) {
                msgpack_unpacked_destroy(&up);
                return;
            }
            tw_station_set_data(st, g);
        }
        g->rate_ms = r; /* from the next fix on */
    }
    msgpack_unpacked_destroy(&up);
}

static void
s_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The station leaves the worker: no iteration runs any more. */
static void
s_end(tw_station_t *st, void *udata)
{
    (void)udata;
    s_gnss_t *g = tw_station_data(st);
    tw_station_set_data(st, NULL);
    if (!g) {
        return;
    }
    if (g->timer_open) {
        uv_close((uv_handle_t *)&g->timer, s_timer_closed);
    } else {
        free(g);
    }
}

int
tw_plugin_init(tw_plugin_t *plugin, int abi_version)
{
    if (abi_version != TW_HANDLER_ABI) {
        return -1;
    }
    static const tw_handler_def_t def = {
        .name = "example.gnss",
        .flags = TW_HANDLER_ASYNC,
        .run = s_run,
        .cancel = s_cancel,
        .n2s = s_n2s,
        .end = s_end,
    };
    return tw_plugin_register(plugin, &def);
}
