/*  worker/exec_chan.c - a task channel spoken in frames (see exec_chan.h).
 *
 *  Each channel item becomes a tw_call_open/_send/_request/_close on the
 *  program's call. Answers go out as frames (worker/frame.h). A request
 *  remembers where to answer and the program's "id"; its callback fires
 *  by the time the call ends (the task's channel fails its requests
 *  then), so the stream it writes to is still there, though maybe
 *  closing, in which case the answer is dropped.
 *
 *  The fd 3 relay of exec programs reads frames with a tw_frame_reader_t
 *  while the child runs (c->call; NULL once reaped, and then frames are
 *  ignored) and closes fd 3 on the first frame it cannot read.
 */
#include "worker/exec_chan.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#define S_MAX_FRAME (16u << 20)

struct tw_exec_chan {
    tw_child_t *c;
    tw_frame_reader_t rd; /* frames from fd 3 */
    int dead;             /* the relay stopped: fd 3 closed */
};

/* A request in flight: where to answer, and the program's "id" (msgpack,
 * or none). */
typedef struct {
    uv_stream_t *out;
    size_t idlen;
    char id[];
} s_req_t;

/* Write the frame {"ev": ev, "d"|"err": ..., "id"?}. `d` is one msgpack
 * value (for resp) or NULL; `err` a name (for error) or NULL. */
static void
s_answer(uv_stream_t *out, const char *ev, const void *d, size_t dlen,
         const char *err, const void *id, size_t idlen)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_frame_begin(&e);
    tw_enc_map(&e, 2 + (id != NULL));
    tw_enc_str(&e, "ev", 2);
    tw_enc_cstr(&e, ev);
    if (err) {
        tw_enc_str(&e, "err", 3);
        tw_enc_cstr(&e, err);
    } else {
        tw_enc_str(&e, "d", 1);
        msgpack_sbuffer_write(&e.sb, d, dlen);
    }
    if (id) {
        tw_enc_str(&e, "id", 2);
        msgpack_sbuffer_write(&e.sb, id, idlen);
    }
    tw_frame_send(&e, out);
    tw_enc_free(&e);
}

/* The name a program sees for a failure: the channel calls of the
 * handler ABI also return errno values that have no TW_E* code. */
static const char *
s_err_name(int code)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {-ENOTCONN, "ENOTCONN"},
        {-ESHUTDOWN, "ESHUTDOWN"},
        {-EALREADY, "EALREADY"},
        {-ENOBUFS, "ENOBUFS"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].code == code) {
            return names[i].name;
        }
    }
    return tw_err_name(code);
}

void
tw_exec_chan_error(uv_stream_t *out, int code, const void *id, size_t idlen)
{
    s_answer(out, "error", NULL, 0, s_err_name(code), id, idlen);
}

static void
s_reply(void *udata, int status, const void *reply, size_t len)
{
    s_req_t *r = udata;
    const void *id = r->idlen ? r->id : NULL;
    if (status == 0) {
        static const char nil = (char)0xc0;
        s_answer(r->out, "resp", reply ? reply : &nil, reply ? len : 1,
                 NULL, id, r->idlen);
    } else {
        tw_exec_chan_error(r->out, status, id, r->idlen);
    }
    tw_free(r);
}

int
tw_exec_chan_item(tw_call_t *call, const tw_frame_t *f, uv_stream_t *out)
{
    int open = tw_frame_is(f, "open"), msg = tw_frame_is(f, "msg");
    int req = tw_frame_is(f, "req"), close = tw_frame_is(f, "close");
    if (!open && !msg && !req && !close) {
        return 0;
    }
    size_t dlen = 0, idlen = 0;
    const void *d = tw_frame_get(f, "d", &dlen);
    const void *id = tw_frame_get(f, "id", &idlen);
    if (!call) {
        return 1; /* the run is over: nothing to say it to */
    }
    int rc;
    if (open) {
        rc = tw_call_open(call, d, dlen);
    } else if (msg) {
        rc = tw_call_send(call, d, dlen);
    } else if (close) {
        rc = tw_call_close(call);
    } else {
        s_req_t *r = tw_malloc(sizeof *r + idlen);
        r->out = out;
        r->idlen = id ? idlen : 0;
        if (id) {
            memcpy(r->id, id, idlen);
        }
        uint64_t ms = 0;
        tw_frame_uint(f, "timeout", &ms);
        rc = tw_call_request(call, d, dlen, ms, s_reply, r);
        if (rc != 0) {
            tw_free(r);
        }
    }
    if (rc != 0) {
        tw_exec_chan_error(out, rc, id, idlen);
    }
    return 1;
}

/* The fd 3 relay ----------------------------------------------------------- */

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

/* One frame from fd 3: a channel item, or the end of the relay. */
static int
s_frame(void *arg, const char *p, size_t n)
{
    tw_exec_chan_t *x = arg;
    tw_frame_t f;
    const char *why;
    if (tw_frame_parse(&f, p, n, &why) != 0) {
        s_stop(x, why);
        return -1;
    }
    uv_stream_t *out = (uv_stream_t *)&x->c->chan;
    if (!tw_exec_chan_item(x->c->call, &f, out) && x->c->call) {
        size_t idlen = 0;
        const void *id = tw_frame_get(&f, "id", &idlen);
        tw_exec_chan_error(out, TW_EINVAL, id, idlen); /* unknown "ev" */
    }
    return 0;
}

static void
s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tw_child_t *c = h->data;
    tw_exec_chan_t *x = c->chan_data;
    *buf = tw_frame_reader_room(&x->rd);
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
    if (x->dead) {
        return;
    }
    if (tw_frame_reader_feed(&x->rd, (size_t)n, s_frame, x) == TW_E2BIG) {
        s_stop(x, "frame too big");
    }
}

int
tw_exec_chan_wanted(const void *args, size_t len)
{
    const unsigned char *v;
    size_t vlen;
    return tw_mp_one(args, len, TW_MP_DEPTH_ANY) &&
           tw_mp_map_get(args, len, "chan", 4, &v, &vlen) && vlen == 1 &&
           v[0] == 0xc3;
}

tw_exec_chan_t *
tw_exec_chan_start(tw_child_t *c)
{
    tw_exec_chan_t *x = tw_calloc(1, sizeof *x);
    x->c = c;
    tw_frame_reader_init(&x->rd, S_MAX_FRAME);
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
        tw_frame_reader_free(&x->rd);
        tw_free(x);
    }
}
