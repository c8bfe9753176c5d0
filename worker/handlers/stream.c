/*  worker/handlers/stream.c - the "stream" handler: a program as a
 *  station.
 *
 *  Arguments are [program, arg...] or {"argv": [program, arg...]}. Each
 *  iteration of a station runs the program once, as a long-lived child
 *  (a tw_child_t, worker/child.h: its own process group so a cancel can
 *  SIGKILL everything it started):
 *
 *    - every line it writes to stdout (without the newline) becomes an s2n
 *      message: a msgpack STR when it is valid UTF-8, else BIN; a line
 *      longer than S_MAX_LINE is cut into several messages;
 *    - every n2s message that is a msgpack STR or BIN is written to its
 *      stdin followed by "\n"; other values are dropped and counted.
 *      Messages that arrive while no child runs (between iterations, while
 *      paused) wait for the next child, up to S_MAX_QUEUED of them;
 *    - its exit ends the iteration: status 0 finishes it with the
 *      iteration's own arguments as the result, so that the next
 *      iteration starts the program again in next mode "result" (the
 *      default) as well as "same"; anything else fails it with the tail
 *      of stderr, which ends the station failed.
 *
 *  An iteration lasts as long as the program, so it never reaches the
 *  boundary where drains and STOP apply. The handler therefore has a
 *  `stop` (worker/handlers.h): a drain, a RELEASE or a STOP ends a running
 *  station at once, reported as the engine decides (released, stopped),
 *  and the child is asked to end: stdin closed, SIGTERM to its process
 *  group, SIGKILL after S_STOP_GRACE ms. A station timeout is an idle
 *  timeout for stream stations: the engine fails the station after that
 *  long without an stdout line (proto/PROTOCOL.md 11). As a plain task,
 *  stream runs the
 *  program once with stdin closed and returns the array of its stdout
 *  lines, failing past the configured output cap.
 *
 *  Two pieces of state: a tw_n2sq_t lives as the station's
 *  tw_station_data (the lines waiting for a child, dropped counts;
 *  worker/n2sq.h, freed by `end`), s_run_t lives for one child, until
 *  its last handle has closed, and is the call's data. All on the loop
 *  thread.
 */
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "proto/mpwalk.h"
#include "proto/proto.h"
#include "worker/child.h"
#include "worker/handlers.h"
#include "worker/n2sq.h"
#include "worker/security.h"
#include "worker/taskloop.h"

#include <msgpack.h>
#include <string.h>

#define S_MAX_LINE (1u << 20)      /* bytes of one s2n message */
#define S_MAX_STDIN_BACKLOG (4u << 20) /* unwritten stdin bytes */
#define S_READ_CHUNK 65536
/* ms between the SIGTERM of a stop and the SIGKILL; below the worker's
 * own stop grace (worker/worker.c S_STOP_GRACE), so a drain or shutdown
 * never leaves the child behind. */
#define S_STOP_GRACE 500

typedef struct s_run s_run_t;

typedef struct {
    uv_write_t req;
    char data[];
} s_write_t;

struct s_run {
    tw_child_t child; /* child.call is NULL once finished */
    tw_station_t *st; /* NULL for a plain task */
    tw_n2sq_t *sd;    /* the station's queue while the child runs */
    size_t max;       /* a plain task's output cap */
    char *lbuf; /* the line being read */
    size_t llen, lcap;
    char *enc; /* one message, msgpack-encoded */
    size_t ecap;
    msgpack_sbuffer res; /* a plain task's result: array32, lines */
    size_t nlines;
    char obuf[S_READ_CHUNK];
};

/* Lines ------------------------------------------------------------------- */

/* One complete stdout line: an s2n message, or an element of the task's
 * result. */
static void
s_line(s_run_t *x, const char *p, size_t n)
{
    if (!x->child.call ||
        (x->child.killed & (TW_CHILD_OVERFLOW | TW_CHILD_OOM))) {
        return;
    }
    unsigned char hdr[5];
    size_t h = tw_enc_text_header(hdr, p, n);
    if (!x->st) {
        if (x->res.size + h + n > x->max + 5) {
            tw_child_kill(&x->child, TW_CHILD_OVERFLOW);
            return;
        }
        msgpack_sbuffer_write(&x->res, (const char *)hdr, h);
        msgpack_sbuffer_write(&x->res, p, n);
        x->nlines++;
        return;
    }
    if (h + n > x->ecap) {
        char *e = tw_try_realloc(x->enc, h + n);
        if (!e) {
            tw_child_kill(&x->child, TW_CHILD_OOM);
            return;
        }
        x->enc = e;
        x->ecap = h + n;
    }
    memcpy(x->enc, hdr, h);
    memcpy(x->enc + h, p, n);
    tw_station_emit(x->st, x->enc, h + n);
}

/* Add bytes to the partial line, emitting it whenever it reaches the
 * line size limit. */
static void
s_partial(s_run_t *x, const char *p, size_t n)
{
    while (n > 0) {
        size_t room = S_MAX_LINE - x->llen;
        size_t k = n < room ? n : room;
        if (x->llen + k > x->lcap) {
            size_t cap = x->lcap ? x->lcap : 256;
            while (cap < x->llen + k) {
                cap *= 2;
            }
            char *b = tw_try_realloc(x->lbuf, cap);
            if (!b) {
                tw_child_kill(&x->child, TW_CHILD_OOM);
                return;
            }
            x->lbuf = b;
            x->lcap = cap;
        }
        memcpy(x->lbuf + x->llen, p, k);
        x->llen += k;
        p += k;
        n -= k;
        if (x->llen == S_MAX_LINE) {
            s_line(x, x->lbuf, x->llen);
            x->llen = 0;
        }
    }
}

static void
s_chunk(s_run_t *x, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            s_partial(x, p, n);
            return;
        }
        size_t k = (size_t)(nl - p);
        if (x->llen == 0) {
            s_line(x, p, k); /* straight from the read buffer */
        } else {
            s_partial(x, p, k);
            s_line(x, x->lbuf, x->llen);
            x->llen = 0;
        }
        p = nl + 1;
        n -= k + 1;
    }
}

/* stdin -------------------------------------------------------------------- */

static void
s_write_cb(uv_write_t *req, int status)
{
    (void)status; /* a child that does not read its stdin is its business */
    tw_free(req->data);
}

/* Write `n` bytes, and a newline if `nl`, to the child's stdin. */
static int
s_write(s_run_t *x, const char *p, size_t n, int nl)
{
    uv_stream_t *in = (uv_stream_t *)&x->child.in;
    if (!x->child.has_in || uv_is_closing((uv_handle_t *)in) ||
        uv_stream_get_write_queue_size(in) + n > S_MAX_STDIN_BACKLOG) {
        return -1;
    }
    s_write_t *w = tw_malloc(sizeof *w + n + 1);
    w->req.data = w;
    memcpy(w->data, p, n);
    if (nl) {
        w->data[n++] = '\n';
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, in, &b, 1, s_write_cb) != 0) {
        tw_free(w);
        return -1;
    }
    return 0;
}

/* Hand the lines that waited for a child to this one. */
static void
s_flush_queue(s_run_t *x, tw_n2sq_t *sd)
{
    tw_n2sq_msg_t *m;
    while ((m = tw_n2sq_pop(sd)) != NULL) {
        if (s_write(x, m->data, m->len, 0) != 0) {
            sd->dropped++;
        }
        tw_free(m);
    }
}

static void
s_stream_n2s(tw_station_t *st, const void *data, size_t len, void *udata)
{
    (void)udata;
    tw_n2sq_t *sd = tw_n2sq_of(st);
    size_t n;
    const char *p;
    if (!tw_mp_text(data, len, 1, &p, &n)) {
        sd->dropped++;
        tw_debug("worker.stream", "%s: n2s message is not a string: "
                 "dropped", tw_station_id(st));
        return;
    }
    if (sd->run) {
        if (s_write(sd->run, p, n, 1) != 0) {
            sd->dropped++;
        }
        return;
    }
    tw_n2sq_push(sd, tw_station_n2s_seq(st), p, n, "\n", 1);
}

static void
s_stream_end(tw_station_t *st, void *udata)
{
    (void)udata;
    tw_n2sq_end(st, "worker.stream");
}

/* The child's life -------------------------------------------------------- */

static void
s_closed(tw_child_t *c)
{
    s_run_t *x = c->data;
    tw_free(x->lbuf);
    tw_free(x->enc);
    msgpack_sbuffer_destroy(&x->res);
    tw_free(x);
}

static void
s_changed(tw_child_t *c)
{
    s_run_t *x = c->data;
    tw_call_t *call = tw_child_reap(c);
    if (!call) {
        return;
    }
    if (x->sd) {
        x->sd->run = NULL;
        x->sd = NULL;
    }
    if (tw_child_fail(c, call, x->max)) {
        return;
    }
    if (x->st) {
        size_t len;
        const void *a = tw_call_args(call, &len);
        tw_call_finish(call, a, len); /* run the same program next time */
    } else {
        unsigned char *p = (unsigned char *)x->res.data;
        size_t n = x->nlines;
        p[0] = 0xdd;
        p[1] = (unsigned char)(n >> 24);
        p[2] = (unsigned char)(n >> 16);
        p[3] = (unsigned char)(n >> 8);
        p[4] = (unsigned char)n;
        tw_call_finish(call, x->res.data, x->res.size);
    }
}

static void
s_out_alloc(tw_child_t *c, uv_buf_t *buf)
{
    s_run_t *x = c->data;
    *buf = uv_buf_init(x->obuf, sizeof x->obuf);
}

static void
s_out_read(tw_child_t *c, ssize_t n, const uv_buf_t *buf)
{
    s_run_t *x = c->data;
    if (n > 0) {
        s_chunk(x, buf->base, (size_t)n);
    } else if (x->llen) {
        s_line(x, x->lbuf, x->llen); /* a last line without "\n" */
        x->llen = 0;
    }
}

static const tw_child_ops_t s_ops = {.out_alloc = s_out_alloc,
                                     .out_read = s_out_read,
                                     .changed = s_changed,
                                     .closed = s_closed};

static void
s_stream(tw_call_t *call, void *udata)
{
    s_run_t *x = tw_calloc(1, sizeof *x);
    x->st = tw_call_station(call);
    x->max = (size_t)(uintptr_t)udata;
    size_t len;
    const void *a = tw_call_args(call, &len);
    if (tw_child_parse_args(&x->child, a, len, NULL, NULL) != 0) {
        tw_free(x);
        tw_call_fail(call, "stream: args must be [program, arg...] or "
                           "{\"argv\": [program, arg...]}");
        return;
    }
    char why[1024];
    if (tw_exec_allow_check(x->child.argv[0], why, sizeof why) != 0) {
        tw_free(x->child.argv);
        tw_free(x);
        tw_call_fail(call, "stream: %s", why);
        return;
    }
    msgpack_sbuffer_init(&x->res);
    if (!x->st) {
        static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
        msgpack_sbuffer_write(&x->res, arr32, sizeof arr32);
    }
    if (tw_child_start(&x->child, call, x->st != NULL, &s_ops, x) != 0) {
        return;
    }
    if (x->st) {
        x->sd = tw_n2sq_of(x->st);
        x->sd->run = x;
        s_flush_queue(x, x->sd);
    }
}

/* The `stop` of a stream station: ask the program to end. */
static void
s_stream_stop(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_child_t *c = tw_call_data(call);
    if (c && c->call) {
        tw_child_terminate(c, S_STOP_GRACE);
    }
}

int
tw_handlers_add_stream(tw_handlers_t *reg, size_t stdout_max)
{
    tw_handler_def_t def = {.name = "stream",
                            .flags = TW_HANDLER_ASYNC,
                            .run = s_stream,
                            .cancel = tw_child_cancel,
                            .udata = (void *)(uintptr_t)stdout_max,
                            .n2s = s_stream_n2s,
                            .end = s_stream_end};
    int rc = tw_handlers_add(reg, &def);
    if (rc == 0) {
        /* `stop` is not in the plugin ABI's definition: set it on the
         * registry's copy, which tw_handlers_add appended. */
        reg->v[reg->n - 1].stop = s_stream_stop;
    }
    return rc;
}
