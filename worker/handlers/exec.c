/*  worker/handlers/exec.c - the "exec" handler: one program per call.
 *
 *  Arguments are [program, arg1, ...] or {"argv": [...], "stdin": text}.
 *  The program runs as a tw_child_t (worker/child.h): found on PATH, in
 *  its own process group, so a cancel or timeout can SIGKILL everything
 *  it started. Its stdout is the result: a msgpack STR when it is valid UTF-8,
 *  else BIN, built in place behind five bytes of headroom so a large output
 *  is never copied to add the header. A non-zero exit fails the task with
 *  the tail of stderr; output beyond the configured cap fails it too.
 *
 *  Life of one call (all on the loop thread):
 *
 *      spawn --> reading stdout/stderr, writing stdin --.
 *                     | exit, then EOF on both pipes     | cancel / cap:
 *                     v                                  | SIGKILL group,
 *                  finish (result or error) <-----------'  exit, finish
 *                     |
 *              handles close --> state freed
 *
 *  The state embeds the child and outlives the call until the child's
 *  last handle has closed. With "chan": true in the argument map the
 *  program also gets fd 3, relayed to the task's channel (exec_chan.h).
 */
#include "common/alloc.h"
#include "common/error.h"
#include "proto/proto.h"
#include "worker/child.h"
#include "worker/exec_chan.h"
#include "worker/handlers.h"
#include "worker/security.h"

#include <string.h>

#define S_HEADROOM 5        /* the largest msgpack STR/BIN header */
#define S_READ_CHUNK 65536  /* free space offered to each stdout read */

typedef struct {
    tw_child_t child;
    size_t max;  /* stdout cap */
    char *obuf;  /* S_HEADROOM bytes, then stdout */
    size_t olen, ocap;
    char *stdin_buf;
    uv_write_t wreq;
    tw_exec_chan_t *chan; /* fd 3, if asked for */
} s_exec_t;

static void
s_closed(tw_child_t *c)
{
    s_exec_t *x = c->data;
    tw_free(x->obuf);
    tw_free(x->stdin_buf);
    tw_exec_chan_free(x->chan);
    tw_free(x);
}

/* Finish the call once the child has exited and its output is complete
 * (or no longer wanted). */
static void
s_changed(tw_child_t *c)
{
    s_exec_t *x = c->data;
    tw_call_t *call = tw_child_reap(c);
    if (!call || tw_child_fail(c, call, x->max)) {
        return;
    }
    size_t n = x->olen;
    char *data = x->obuf + S_HEADROOM;
    unsigned char hdr[S_HEADROOM];
    size_t h = tw_enc_text_header(hdr, data, n);
    memcpy(data - h, hdr, h);
    tw_call_finish(call, data - h, n + h);
}

static void
s_out_alloc(tw_child_t *c, uv_buf_t *buf)
{
    s_exec_t *x = c->data;
    /* Offer at most one byte past the cap: enough to notice overflow. */
    size_t want = x->max - x->olen + 1;
    if (want > S_READ_CHUNK) {
        want = S_READ_CHUNK;
    }
    size_t need = S_HEADROOM + x->olen + want;
    if (need > x->ocap) {
        size_t cap = x->ocap ? x->ocap : 4096;
        while (cap < need) {
            cap *= 2;
        }
        char *p = tw_try_realloc(x->obuf, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        x->obuf = p;
        x->ocap = cap;
    }
    *buf = uv_buf_init(x->obuf + S_HEADROOM + x->olen, (unsigned)want);
}

static void
s_out_read(tw_child_t *c, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    s_exec_t *x = c->data;
    if (n > 0) {
        x->olen += (size_t)n;
        if (x->olen > x->max) {
            x->olen = x->max;
            tw_child_kill(c, TW_CHILD_OVERFLOW);
            tw_child_close_stdout(c);
        }
    } else if (n == UV_ENOBUFS) {
        tw_child_kill(c, TW_CHILD_OOM);
    }
}

static const tw_child_ops_t s_ops = {.out_alloc = s_out_alloc,
                                     .out_read = s_out_read,
                                     .changed = s_changed,
                                     .closed = s_closed};

static void
s_write_cb(uv_write_t *req, int status)
{
    (void)status; /* a child that does not read its stdin is its business */
    s_exec_t *x = req->data;
    tw_child_close_stdin(&x->child);
}

static void
s_exec(tw_call_t *call, void *udata)
{
    s_exec_t *x = tw_calloc(1, sizeof *x);
    x->max = (size_t)(uintptr_t)udata;
    size_t len;
    const void *a = tw_call_args(call, &len);
    const void *in;
    size_t inlen;
    if (tw_child_parse_args(&x->child, a, len, &in, &inlen) != 0) {
        tw_free(x);
        tw_call_fail(call, "exec: args must be [program, arg...] or "
                           "{\"argv\": [program, arg...], \"stdin\": text}");
        return;
    }
    char why[1024];
    if (tw_exec_allow_check(x->child.argv[0], why, sizeof why) != 0) {
        tw_free(x->child.argv);
        tw_free(x);
        tw_call_fail(call, "exec: %s", why);
        return;
    }
    if (in) {
        /* The text points into the call's arguments, which outlive the
         * write only until the call finishes: keep a copy. */
        x->stdin_buf = tw_malloc(inlen ? inlen : 1);
        memcpy(x->stdin_buf, in, inlen);
    }
    int chan = tw_exec_chan_wanted(a, len);
    if (tw_child_start_chan(&x->child, call, in != NULL, chan, &s_ops, x) !=
        0) {
        return;
    }
    if (chan) {
        x->chan = tw_exec_chan_start(&x->child);
    }
    if (in) {
        uv_buf_t b = uv_buf_init(x->stdin_buf, (unsigned)inlen);
        x->wreq.data = x;
        if (inlen == 0 ||
            uv_write(&x->wreq, (uv_stream_t *)&x->child.in, &b, 1,
                     s_write_cb) != 0) {
            tw_child_close_stdin(&x->child);
        }
    }
}

int
tw_handlers_add_exec(tw_handlers_t *reg, size_t stdout_max)
{
    tw_handler_def_t def = {.name = "exec",
                            .flags = TW_HANDLER_ASYNC,
                            .run = s_exec,
                            .cancel = tw_child_cancel,
                            .udata = (void *)(uintptr_t)stdout_max};
    return tw_handlers_add(reg, &def);
}
