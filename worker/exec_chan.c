/*  worker/exec_chan.c - the fd 3 relay between an exec program and its
 *  task channel (see exec_chan.h).
 *
 *  Bytes read from fd 3 collect in one buffer; each complete frame is
 *  decoded and turned into a tw_call_open/_send/_request/_close on the
 *  child's call while the child runs (c->call; NULL once reaped, and then
 *  frames are ignored). Answers are written as frames, each with its own
 *  uv_write whose request and bytes share one allocation. A request's
 *  callback can fire after the child's fd 3 has closed (the task ended):
 *  the answer is then dropped. The relay outlives every callback because
 *  the task's channel fails its requests when the task ends, before the
 *  child's handles close and the owner frees the relay.
 */
#include "worker/exec_chan.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/proto.h"

#include <msgpack.h>
#include <string.h>

#define S_MAX_FRAME (16u << 20)
#define S_READ_CHUNK 65536

struct tw_exec_chan {
    tw_child_t *c;
    char *buf; /* unparsed bytes from fd 3 */
    size_t len, cap;
    int dead;  /* the relay stopped: fd 3 closed */
};

/* A request in flight: the relay and the program's "id" (msgpack, or
 * none). */
typedef struct {
    tw_exec_chan_t *x;
    size_t idlen;
    char id[];
} s_req_t;

typedef struct {
    uv_write_t w;
    char bytes[];
} s_write_t;

static void
s_written(uv_write_t *w, int status)
{
    (void)status; /* a program that stopped reading is its business */
    tw_free(w);
}

/* Write the frame {"ev": ev, "d"|"err": ..., "id"?} to fd 3. `d` is one
 * msgpack value (for resp) or NULL; `err` a name (for error) or NULL. */
static void
s_answer(tw_exec_chan_t *x, const char *ev, const void *d, size_t dlen,
         const char *err, const void *id, size_t idlen)
{
    if (x->dead || uv_is_closing((uv_handle_t *)&x->c->chan)) {
        return;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (idlen > 0));
    msgpack_pack_str_with_body(&pk, "ev", 2);
    msgpack_pack_str_with_body(&pk, ev, strlen(ev));
    if (err) {
        msgpack_pack_str_with_body(&pk, "err", 3);
        msgpack_pack_str_with_body(&pk, err, strlen(err));
    } else {
        msgpack_pack_str_with_body(&pk, "d", 1);
        msgpack_sbuffer_write(&sb, d, dlen);
    }
    if (idlen) {
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_sbuffer_write(&sb, id, idlen);
    }
    s_write_t *w = tw_malloc(sizeof *w + 4 + sb.size);
    uint32_t n = (uint32_t)sb.size;
    w->bytes[0] = (char)(n >> 24);
    w->bytes[1] = (char)(n >> 16);
    w->bytes[2] = (char)(n >> 8);
    w->bytes[3] = (char)n;
    memcpy(w->bytes + 4, sb.data, sb.size);
    uv_buf_t b = uv_buf_init(w->bytes, 4 + n);
    if (uv_write(&w->w, (uv_stream_t *)&x->c->chan, &b, 1, s_written) != 0) {
        tw_free(w);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void
s_reply(void *udata, int status, const void *reply, size_t len)
{
    s_req_t *r = udata;
    if (status == 0) {
        s_answer(r->x, "resp", reply, len, NULL, r->id, r->idlen);
    } else {
        s_answer(r->x, "error", NULL, 0, tw_err_name(status), r->id,
                 r->idlen);
    }
    tw_free(r);
}

static int
s_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR &&
           o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Stop relaying: close fd 3. */
static void
s_stop(tw_exec_chan_t *x, const char *why)
{
    if (!x->dead) {
        tw_debug("worker.exec", "exec channel closed: %s", why);
    }
    x->dead = 1;
    tw_child_close_chan(x->c);
}

/* Act on one frame's map. Returns 0, or -1 for a frame that is not a
 * map with a string "ev" (the relay stops). */
static int
s_frame(tw_exec_chan_t *x, const char *p, size_t n)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, p, n, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != n || up.data.type != MSGPACK_OBJECT_MAP ||
        !tw_mp_get(&up.data, "ev") ||
        tw_mp_get(&up.data, "ev")->type != MSGPACK_OBJECT_STR) {
        msgpack_unpacked_destroy(&up);
        return -1;
    }
    const msgpack_object *ev = tw_mp_get(&up.data, "ev");
    const msgpack_object *d = tw_mp_get(&up.data, "d");
    const msgpack_object *to = tw_mp_get(&up.data, "timeout");
    const msgpack_object *id = tw_mp_get(&up.data, "id");
    msgpack_sbuffer db, ib;
    msgpack_packer pk;
    msgpack_sbuffer_init(&db);
    msgpack_sbuffer_init(&ib);
    if (d) {
        msgpack_packer_init(&pk, &db, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *d);
    }
    if (id) {
        msgpack_packer_init(&pk, &ib, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *id);
    }
    tw_call_t *call = x->c->call;
    int rc = 0;
    if (!call) {
        rc = 0; /* the run is over: nothing to say it to */
    } else if (s_is(ev, "open")) {
        rc = tw_call_open(call, db.data, db.size);
    } else if (s_is(ev, "msg")) {
        rc = tw_call_send(call, db.data, db.size);
    } else if (s_is(ev, "close")) {
        rc = tw_call_close(call);
    } else if (s_is(ev, "req")) {
        s_req_t *r = tw_malloc(sizeof *r + ib.size);
        r->x = x;
        r->idlen = ib.size;
        if (ib.size) {
            memcpy(r->id, ib.data, ib.size);
        }
        uint64_t ms = to && to->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                          ? to->via.u64
                          : 0;
        rc = tw_call_request(call, db.data, db.size, ms, s_reply, r);
        if (rc != 0) {
            tw_free(r);
        }
    } else {
        rc = TW_EINVAL;
    }
    if (rc != 0) {
        s_answer(x, "error", NULL, 0, tw_err_name(rc), ib.data, ib.size);
    }
    msgpack_sbuffer_destroy(&db);
    msgpack_sbuffer_destroy(&ib);
    msgpack_unpacked_destroy(&up);
    return 0;
}

static void
s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tw_child_t *c = h->data;
    tw_exec_chan_t *x = c->chan_data;
    if (x->cap - x->len < S_READ_CHUNK) {
        x->cap = x->len + S_READ_CHUNK;
        x->buf = tw_realloc(x->buf, x->cap);
    }
    *buf = uv_buf_init(x->buf + x->len, (unsigned)(x->cap - x->len));
}

static void
s_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    tw_child_t *c = s->data;
    tw_exec_chan_t *x = c->chan_data;
    if (n < 0) {
        s_stop(x, "end of fd 3");
        return;
    }
    x->len += (size_t)n;
    size_t at = 0;
    while (!x->dead && x->len - at >= 4) {
        const unsigned char *p = (const unsigned char *)x->buf + at;
        uint32_t flen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                        (uint32_t)p[2] << 8 | p[3];
        if (flen > S_MAX_FRAME) {
            s_stop(x, "frame too big");
            break;
        }
        if (x->len - at - 4 < flen) {
            break;
        }
        if (s_frame(x, (const char *)p + 4, flen) != 0) {
            s_stop(x, "a frame that is not a map with \"ev\"");
            break;
        }
        at += 4 + flen;
    }
    if (x->dead) {
        x->len = 0;
        return;
    }
    memmove(x->buf, x->buf + at, x->len - at);
    x->len -= at;
}

int
tw_exec_chan_wanted(const void *args, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int want = 0;
    if (msgpack_unpack_next(&up, args, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *v = tw_mp_get(&up.data, "chan");
        want = v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
    }
    msgpack_unpacked_destroy(&up);
    return want;
}

tw_exec_chan_t *
tw_exec_chan_start(tw_child_t *c)
{
    tw_exec_chan_t *x = tw_calloc(1, sizeof *x);
    x->c = c;
    c->chan_data = x;
    if (uv_read_start((uv_stream_t *)&c->chan, s_alloc, s_read) != 0) {
        s_stop(x, "cannot read fd 3");
    }
    return x;
}

void
tw_exec_chan_free(tw_exec_chan_t *x)
{
    if (x) {
        tw_free(x->buf);
        tw_free(x);
    }
}
