/*  worker/handlers/stream.c - the "stream" handler: a program as a
 *  station.
 *
 *  Arguments are [program, arg...] or {"argv": [program, arg...]}. Each
 *  iteration of a station runs the program once, as a long-lived child
 *  (uv_spawn, its own process group so a cancel can SIGKILL everything it
 *  started):
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
 *  A station timeout would kill the child, so stream stations normally
 *  have none (seed-semantics F1 on S6). As a plain task, stream runs the
 *  program once with stdin closed and returns the array of its stdout
 *  lines, failing past the configured output cap.
 *
 *  Two pieces of state: s_sta_t lives as the station's tw_station_data
 *  (the stdin queue, dropped counts; freed by `end`), s_run_t lives for
 *  one child, until its last handle has closed, and is the call's data.
 *  All on the loop thread.
 */
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "worker/handlers.h"
#include "worker/utf8.h"

#include <msgpack.h>
#include <signal.h>
#include <string.h>

#define S_MAX_LINE (1u << 20)      /* bytes of one s2n message */
#define S_MAX_QUEUED 1000          /* n2s lines waiting for a child */
#define S_MAX_QUEUED_BYTES (1u << 20)
#define S_MAX_STDIN_BACKLOG (4u << 20) /* unwritten stdin bytes */
#define S_ERR_TAIL 1024
#define S_MAX_ARGV 4096
#define S_READ_CHUNK 65536

typedef struct s_line {
    struct s_line *next;
    size_t len;
    char data[]; /* the message's bytes and "\n" */
} s_line_t;

typedef struct s_run s_run_t;

typedef struct {
    s_run_t *run; /* the child of the running iteration, or NULL */
    s_line_t *head, *tail;
    size_t nq, qbytes;
    uint64_t dropped;
} s_sta_t;

typedef struct {
    uv_write_t req;
    char data[];
} s_write_t;

struct s_run {
    tw_call_t *call;  /* NULL once finished */
    tw_station_t *st; /* NULL for a plain task */
    s_sta_t *sd;      /* the station's state while the child runs */
    size_t max;       /* a plain task's output cap */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    int nopen; /* handles not yet closed; the state dies at 0 */
    int has_in;
    int exited, cancelled, overflow, oom;
    int64_t status;
    int term_signal;
    char *lbuf; /* the line being read */
    size_t llen, lcap;
    char *enc; /* one message, msgpack-encoded */
    size_t ecap;
    msgpack_sbuffer res; /* a plain task's result: array32, lines */
    size_t nlines;
    char obuf[S_READ_CHUNK];
    char etail[S_ERR_TAIL];
    size_t etotal;
    char escratch[4096];
    char **argv;
};

/* Handles and ending ------------------------------------------------------ */

static void
s_closed(uv_handle_t *h)
{
    s_run_t *x = h->data;
    if (--x->nopen == 0) {
        tw_free(x->lbuf);
        tw_free(x->enc);
        msgpack_sbuffer_destroy(&x->res);
        tw_free(x->argv);
        tw_free(x);
    }
}

static void
s_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, s_closed);
    }
}

static void
s_kill(s_run_t *x)
{
    if (!x->exited && uv_kill(-x->proc.pid, SIGKILL) != 0) {
        uv_process_kill(&x->proc, SIGKILL);
    }
}

static size_t
s_err_tail(const s_run_t *x, char *out)
{
    size_t n = x->etotal < S_ERR_TAIL ? x->etotal : S_ERR_TAIL;
    size_t start = x->etotal < S_ERR_TAIL ? 0 : x->etotal % S_ERR_TAIL;
    for (size_t i = 0; i < n; i++) {
        out[i] = x->etail[(start + i) % S_ERR_TAIL];
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                     out[n - 1] == ' ' || out[n - 1] == '\t')) {
        n--;
    }
    out[n] = '\0';
    return n;
}

/* Lines ------------------------------------------------------------------- */

/* msgpack STR (valid UTF-8) or BIN header for `n` bytes into hdr[5]. */
static size_t
s_str_header(unsigned char *hdr, const char *p, size_t n)
{
    int str = tw_utf8_valid(p, n);
    if (n < 32 && str) {
        hdr[0] = (unsigned char)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        hdr[0] = str ? 0xd9 : 0xc4;
        hdr[1] = (unsigned char)n;
        return 2;
    }
    if (n < 65536) {
        hdr[0] = str ? 0xda : 0xc5;
        hdr[1] = (unsigned char)(n >> 8);
        hdr[2] = (unsigned char)n;
        return 3;
    }
    hdr[0] = str ? 0xdb : 0xc6;
    hdr[1] = (unsigned char)(n >> 24);
    hdr[2] = (unsigned char)(n >> 16);
    hdr[3] = (unsigned char)(n >> 8);
    hdr[4] = (unsigned char)n;
    return 5;
}

/* One complete stdout line: an s2n message, or an element of the task's
 * result. */
static void
s_line(s_run_t *x, const char *p, size_t n)
{
    if (!x->call || x->overflow || x->oom) {
        return;
    }
    unsigned char hdr[5];
    size_t h = s_str_header(hdr, p, n);
    if (!x->st) {
        if (x->res.size + h + n > x->max + 5) {
            x->overflow = 1;
            s_kill(x);
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
            x->oom = 1;
            s_kill(x);
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
                x->oom = 1;
                s_kill(x);
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
    if (!x->has_in || uv_is_closing((uv_handle_t *)&x->in) ||
        uv_stream_get_write_queue_size((uv_stream_t *)&x->in) + n >
            S_MAX_STDIN_BACKLOG) {
        return -1;
    }
    s_write_t *w = tw_malloc(sizeof *w + n + 1);
    w->req.data = w;
    memcpy(w->data, p, n);
    if (nl) {
        w->data[n++] = '\n';
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&x->in, &b, 1, s_write_cb) != 0) {
        tw_free(w);
        return -1;
    }
    return 0;
}

/* Hand the lines that waited for a child to this one. */
static void
s_flush_queue(s_run_t *x, s_sta_t *sd)
{
    while (sd->head) {
        s_line_t *l = sd->head;
        sd->head = l->next;
        if (s_write(x, l->data, l->len, 0) != 0) {
            sd->dropped++;
        }
        tw_free(l);
    }
    sd->tail = NULL;
    sd->nq = sd->qbytes = 0;
}

static s_sta_t *
s_station_state(tw_station_t *st)
{
    s_sta_t *sd = tw_station_data(st);
    if (!sd) {
        sd = tw_calloc(1, sizeof *sd);
        tw_station_set_data(st, sd);
    }
    return sd;
}

/* The bytes of a msgpack STR or BIN that is all of p[0..n), or NULL. */
static const char *
s_text(const unsigned char *p, size_t n, size_t *len)
{
    size_t h, k;
    if (n < 1) {
        return NULL;
    }
    unsigned b = p[0];
    if (b >= 0xa0 && b <= 0xbf) {
        h = 1;
        k = b & 0x1f;
    } else if ((b == 0xd9 || b == 0xc4) && n >= 2) {
        h = 2;
        k = p[1];
    } else if ((b == 0xda || b == 0xc5) && n >= 3) {
        h = 3;
        k = (size_t)p[1] << 8 | p[2];
    } else if ((b == 0xdb || b == 0xc6) && n >= 5) {
        h = 5;
        k = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 |
            p[4];
    } else {
        return NULL;
    }
    if (h + k != n) {
        return NULL;
    }
    *len = k;
    return (const char *)p + h;
}

static void
s_stream_n2s(tw_station_t *st, const void *data, size_t len, void *udata)
{
    (void)udata;
    s_sta_t *sd = s_station_state(st);
    size_t n;
    const char *p = s_text(data, len, &n);
    if (!p) {
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
    if (sd->nq >= S_MAX_QUEUED || sd->qbytes + n + 1 > S_MAX_QUEUED_BYTES) {
        sd->dropped++;
        return;
    }
    s_line_t *l = tw_malloc(sizeof *l + n + 1);
    l->next = NULL;
    l->len = n + 1;
    memcpy(l->data, p, n);
    l->data[n] = '\n';
    if (sd->tail) {
        sd->tail->next = l;
    } else {
        sd->head = l;
    }
    sd->tail = l;
    sd->nq++;
    sd->qbytes += n + 1;
}

static void
s_stream_end(tw_station_t *st, void *udata)
{
    (void)udata;
    s_sta_t *sd = tw_station_data(st);
    if (!sd) {
        return;
    }
    if (sd->dropped) {
        tw_info("worker.stream", "%s: %llu n2s message(s) dropped",
                tw_station_id(st), (unsigned long long)sd->dropped);
    }
    while (sd->head) {
        s_line_t *l = sd->head;
        sd->head = l->next;
        tw_free(l);
    }
    tw_free(sd);
    tw_station_set_data(st, NULL);
}

/* The child's life -------------------------------------------------------- */

static void
s_maybe_finish(s_run_t *x)
{
    if (!x->call || !x->exited) {
        return;
    }
    if (x->cancelled || x->overflow || x->oom) {
        s_close((uv_handle_t *)&x->out);
        s_close((uv_handle_t *)&x->err);
    } else if (!uv_is_closing((uv_handle_t *)&x->out) ||
               !uv_is_closing((uv_handle_t *)&x->err)) {
        return; /* wait for the rest of its output */
    }
    if (x->has_in) {
        s_close((uv_handle_t *)&x->in); /* drops writes nobody reads */
    }
    if (x->sd) {
        x->sd->run = NULL;
        x->sd = NULL;
    }
    tw_call_t *call = x->call;
    x->call = NULL;
    if (x->cancelled) {
        tw_call_fail(call, "cancelled");
    } else if (x->oom) {
        tw_call_fail(call, "out of memory reading the program's output");
    } else if (x->overflow) {
        tw_call_fail(call, "output exceeded %zu bytes (exec-stdout-max)",
                     x->max);
    } else if (x->term_signal) {
        tw_call_fail(call, "killed by signal %d", x->term_signal);
    } else if (x->status != 0) {
        char tail[S_ERR_TAIL + 1];
        if (s_err_tail(x, tail)) {
            tw_call_fail(call, "exit status %lld: %s", (long long)x->status,
                         tail);
        } else {
            tw_call_fail(call, "exit status %lld", (long long)x->status);
        }
    } else if (x->st) {
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
s_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    s_run_t *x = p->data;
    x->exited = 1;
    x->status = status;
    x->term_signal = term_signal;
    s_close((uv_handle_t *)p);
    s_maybe_finish(x);
}

static void
s_out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    s_run_t *x = h->data;
    *buf = uv_buf_init(x->obuf, sizeof x->obuf);
}

static void
s_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    s_run_t *x = s->data;
    if (n > 0) {
        s_chunk(x, buf->base, (size_t)n);
    } else if (n < 0) {
        if (x->llen) {
            s_line(x, x->lbuf, x->llen); /* a last line without "\n" */
            x->llen = 0;
        }
        s_close((uv_handle_t *)s);
        s_maybe_finish(x);
    }
}

static void
s_err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    s_run_t *x = h->data;
    *buf = uv_buf_init(x->escratch, sizeof x->escratch);
}

static void
s_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    s_run_t *x = s->data;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            x->etail[x->etotal++ % S_ERR_TAIL] = buf->base[i];
        }
    } else if (n < 0) {
        s_close((uv_handle_t *)s);
        s_maybe_finish(x);
    }
}

/* Parse the arguments into x->argv. Returns 0 or fails the call. */
static int
s_parse(s_run_t *x, tw_call_t *call)
{
    size_t len;
    const char *a = tw_call_args(call, &len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *argv = NULL;
    if (msgpack_unpack_next(&up, a, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len) {
        if (up.data.type == MSGPACK_OBJECT_ARRAY) {
            argv = &up.data;
        } else if (up.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < up.data.via.map.size; i++) {
                const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
                if (kv->key.type == MSGPACK_OBJECT_STR &&
                    kv->key.via.str.size == 4 &&
                    !memcmp(kv->key.via.str.ptr, "argv", 4)) {
                    argv = &kv->val;
                }
            }
        }
    }
    size_t n = 0, bytes = 0;
    if (argv && argv->type == MSGPACK_OBJECT_ARRAY) {
        n = argv->via.array.size;
        for (size_t i = 0; i < n; i++) {
            const msgpack_object *s = &argv->via.array.ptr[i];
            if (s->type != MSGPACK_OBJECT_STR ||
                memchr(s->via.str.ptr, '\0', s->via.str.size) ||
                (i == 0 && s->via.str.size == 0)) {
                n = 0;
                break;
            }
            bytes += s->via.str.size + 1;
        }
    }
    if (n == 0 || n > S_MAX_ARGV) {
        msgpack_unpacked_destroy(&up);
        tw_call_fail(call, "stream: args must be [program, arg...] or "
                           "{\"argv\": [program, arg...]}");
        return -1;
    }
    x->argv = tw_malloc((n + 1) * sizeof(char *) + bytes);
    char *p = (char *)(x->argv + n + 1);
    for (size_t i = 0; i < n; i++) {
        const msgpack_object_str *s = &argv->via.array.ptr[i].via.str;
        memcpy(p, s->ptr, s->size);
        p[s->size] = '\0';
        x->argv[i] = p;
        p += s->size + 1;
    }
    x->argv[n] = NULL;
    msgpack_unpacked_destroy(&up);
    return 0;
}

static void
s_stream(tw_call_t *call, void *udata)
{
    s_run_t *x = tw_calloc(1, sizeof *x);
    x->call = call;
    x->st = tw_call_station(call);
    x->max = (size_t)(uintptr_t)udata;
    msgpack_sbuffer_init(&x->res);
    if (s_parse(x, call) != 0) {
        msgpack_sbuffer_destroy(&x->res);
        tw_free(x);
        return;
    }
    if (!x->st) {
        static const char arr32[5] = {(char)0xdd, 0, 0, 0, 0};
        msgpack_sbuffer_write(&x->res, arr32, sizeof arr32);
    }
    uv_loop_t *loop = tw_call_loop(call);
    x->has_in = x->st != NULL;
    uv_pipe_init(loop, &x->out, 0);
    uv_pipe_init(loop, &x->err, 0);
    x->nopen = 3;
    if (x->has_in) {
        uv_pipe_init(loop, &x->in, 0);
        x->nopen++;
    }
    x->proc.data = x->out.data = x->err.data = x->in.data = x;

    uv_stdio_container_t stdio[3];
    if (x->has_in) {
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&x->in;
    } else {
        stdio[0].flags = UV_IGNORE;
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&x->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&x->err;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.file = x->argv[0];
    opt.args = x->argv;
    opt.exit_cb = s_exit_cb;
    opt.flags = UV_PROCESS_DETACHED; /* its own process group, for kill */
    opt.stdio_count = 3;
    opt.stdio = stdio;

    int rc = uv_spawn(loop, &x->proc, &opt);
    if (rc != 0) {
        x->call = NULL;
        tw_call_fail(call, "cannot run '%s': %s", x->argv[0],
                     uv_strerror(rc));
        s_close((uv_handle_t *)&x->proc);
        s_close((uv_handle_t *)&x->out);
        s_close((uv_handle_t *)&x->err);
        if (x->has_in) {
            s_close((uv_handle_t *)&x->in);
        }
        return;
    }
    tw_call_set_data(call, x);
    uv_read_start((uv_stream_t *)&x->out, s_out_alloc, s_out_read);
    uv_read_start((uv_stream_t *)&x->err, s_err_alloc, s_err_read);
    if (x->st) {
        x->sd = s_station_state(x->st);
        x->sd->run = x;
        s_flush_queue(x, x->sd);
    }
}

static void
s_stream_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    s_run_t *x = tw_call_data(call);
    if (!x || !x->call || x->cancelled) {
        return;
    }
    x->cancelled = 1;
    s_kill(x);
    s_maybe_finish(x);
}

int
tw_handlers_add_stream(tw_handlers_t *reg, size_t stdout_max)
{
    tw_handler_def_t def = {.name = "stream",
                            .flags = TW_HANDLER_ASYNC,
                            .run = s_stream,
                            .cancel = s_stream_cancel,
                            .udata = (void *)(uintptr_t)stdout_max,
                            .n2s = s_stream_n2s,
                            .end = s_stream_end};
    return tw_handlers_add(reg, &def);
}
