/*  examples/plugin/example_plugin.c - a native handler plugin to copy from.
 *
 *  Shows the three shapes a handler takes (include/taskwheel/handler.h):
 *
 *    example.sum    async: [numbers] -> their sum (an integer while every
 *                   input is one, else a float); finishes inside `run`.
 *    example.upper  async: a string -> the same string in ASCII uppercase.
 *    example.slow   blocking: sleeps `args` seconds on the thread pool in
 *                   10 ms steps, polling tw_call_cancelled(), then "done".
 *
 *  Arguments and results are msgpack; the plugin uses msgpack-c to read
 *  and write them. Build it as a shared object and load it with
 *  `taskwheel-worker --plugin tw_example_plugin.so` (examples/README.md).
 */
#include <taskwheel/handler.h>

#include <ctype.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>

/* Unpack the call's arguments into `up`. Returns 0, or fails the call. */
static int
s_args(tw_call_t *call, msgpack_unpacked *up)
{
    size_t len, off = 0;
    const char *a = tw_call_args(call, &len);
    msgpack_unpacked_init(up);
    if (msgpack_unpack_next(up, a, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(up);
        tw_call_fail(call, "%s: arguments are not msgpack",
                     tw_call_handler(call));
        return -1;
    }
    return 0;
}

/* Send one packed value as the call's result. */
static void
s_finish(tw_call_t *call, msgpack_sbuffer *sb)
{
    tw_call_finish(call, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

static void
s_sum(tw_call_t *call, void *udata)
{
    (void)udata;
    msgpack_unpacked up;
    if (s_args(call, &up) != 0) {
        return;
    }
    const msgpack_object *o = &up.data;
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        msgpack_unpacked_destroy(&up);
        tw_call_fail(call, "example.sum: args must be an array of numbers");
        return;
    }
    int64_t isum = 0;
    double fsum = 0;
    int is_float = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *v = &o->via.array.ptr[i];
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            /* Past int64's range the sum continues as a float. */
            if (v->via.u64 > INT64_MAX ||
                __builtin_add_overflow(isum, (int64_t)v->via.u64, &isum)) {
                is_float = 1;
            }
            fsum += (double)v->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            if (__builtin_add_overflow(isum, v->via.i64, &isum)) {
                is_float = 1;
            }
            fsum += (double)v->via.i64;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            fsum += v->via.f64;
            is_float = 1;
            break;
        default:
            msgpack_unpacked_destroy(&up);
            tw_call_fail(call, "example.sum: element %u is not a number", i);
            return;
        }
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (is_float) {
        msgpack_pack_double(&pk, fsum);
    } else {
        msgpack_pack_int64(&pk, isum);
    }
    s_finish(call, &sb);
}

static void
s_upper(tw_call_t *call, void *udata)
{
    (void)udata;
    msgpack_unpacked up;
    if (s_args(call, &up) != 0) {
        return;
    }
    if (up.data.type != MSGPACK_OBJECT_STR) {
        msgpack_unpacked_destroy(&up);
        tw_call_fail(call, "example.upper: args must be a string");
        return;
    }
    const msgpack_object_str *s = &up.data.via.str;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str(&pk, s->size);
    size_t start = sb.size;
    msgpack_pack_str_body(&pk, s->ptr, s->size);
    for (size_t i = start; i < sb.size; i++) {
        sb.data[i] = (char)toupper((unsigned char)sb.data[i]);
    }
    msgpack_unpacked_destroy(&up);
    s_finish(call, &sb);
}

/* Blocking: runs on a thread-pool thread, so it may sleep; it watches
 * tw_call_cancelled() to give the slot back soon after a cancel. */
static void
s_slow(tw_call_t *call, void *udata)
{
    (void)udata;
    msgpack_unpacked up;
    if (s_args(call, &up) != 0) {
        return;
    }
    double secs = -1;
    if (up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        secs = (double)up.data.via.u64;
    } else if (up.data.type == MSGPACK_OBJECT_FLOAT32 ||
               up.data.type == MSGPACK_OBJECT_FLOAT64) {
        secs = up.data.via.f64;
    }
    msgpack_unpacked_destroy(&up);
    if (!(secs >= 0 && secs <= 86400)) {
        tw_call_fail(call, "example.slow: args must be seconds (0-86400)");
        return;
    }
    long steps = lround(secs * 100);
    struct timespec step = {0, 10 * 1000 * 1000};
    for (long i = 0; i < steps; i++) {
        if (tw_call_cancelled(call)) {
            tw_call_fail(call, "example.slow: cancelled");
            return;
        }
        nanosleep(&step, NULL);
    }
    static const char done[] = {(char)0xa4, 'd', 'o', 'n', 'e'};
    tw_call_finish(call, done, sizeof done);
}

int
tw_plugin_init(tw_plugin_t *plugin, int abi_version)
{
    if (abi_version != TW_HANDLER_ABI) {
        return -1;
    }
    static const tw_handler_def_t defs[] = {
        {.name = "example.sum", .flags = TW_HANDLER_ASYNC, .run = s_sum},
        {.name = "example.upper", .flags = TW_HANDLER_ASYNC, .run = s_upper},
        {.name = "example.slow", .flags = TW_HANDLER_BLOCKING,
         .run = s_slow},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        int rc = tw_plugin_register(plugin, &defs[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
