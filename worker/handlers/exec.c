/*  worker/handlers/exec.c - the "exec" handler: one program per call.
 *
 *  Arguments are [program, arg1, ...] or {"argv": [...], "stdin": text}.
 *  The program is found on PATH and started with uv_spawn in its own
 *  process group, so a cancel or timeout can SIGKILL everything it
 *  started. Its stdout is the result: a msgpack STR when it is valid UTF-8,
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
 *  The state outlives the call until its last handle has closed.
 */
#include "common/alloc.h"
#include "common/error.h"
#include "worker/handlers.h"
#include "worker/utf8.h"

#include <msgpack.h>
#include <signal.h>
#include <string.h>

#define S_HEADROOM 5        /* the largest msgpack STR/BIN header */
#define S_READ_CHUNK 65536  /* free space offered to each stdout read */
#define S_ERR_TAIL 1024     /* how much of stderr an error quotes */
#define S_MAX_ARGV 4096

typedef struct {
    tw_call_t *call; /* NULL once finished */
    size_t max;      /* stdout cap */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    int nopen; /* handles not yet closed; the state dies at 0 */
    int has_in;
    int exited, cancelled, overflow, oom;
    int64_t status;
    int term_signal;
    char *obuf; /* S_HEADROOM bytes, then stdout */
    size_t olen, ocap;
    char etail[S_ERR_TAIL]; /* ring of the last stderr bytes */
    size_t etotal;
    char escratch[4096];
    char *stdin_buf;
    uv_write_t wreq;
    char **argv; /* argv[0..n) then the strings, one block */
} s_exec_t;

static void
s_closed(uv_handle_t *h)
{
    s_exec_t *x = h->data;
    if (--x->nopen == 0) {
        tw_free(x->obuf);
        tw_free(x->stdin_buf);
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

/* Kill the child and everything in its process group. */
static void
s_kill(s_exec_t *x)
{
    if (!x->exited && uv_kill(-x->proc.pid, SIGKILL) != 0) {
        uv_process_kill(&x->proc, SIGKILL);
    }
}

/* Copy stderr's tail out of the ring into `out` (S_ERR_TAIL + 1 bytes),
 * without trailing whitespace. Returns its length. */
static size_t
s_err_tail(const s_exec_t *x, char *out)
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

/* Finish the call once the child has exited and its output is complete
 * (or no longer wanted). */
static void
s_maybe_finish(s_exec_t *x)
{
    if (!x->call || !x->exited) {
        return;
    }
    if (x->cancelled || x->overflow || x->oom) {
        /* Do not wait for EOF a grandchild might hold back. */
        s_close((uv_handle_t *)&x->out);
        s_close((uv_handle_t *)&x->err);
    } else if (!uv_is_closing((uv_handle_t *)&x->out) ||
               !uv_is_closing((uv_handle_t *)&x->err)) {
        return;
    }
    if (x->has_in) {
        s_close((uv_handle_t *)&x->in); /* drops a write nobody reads */
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
    } else {
        size_t n = x->olen;
        char *data = x->obuf + S_HEADROOM;
        int str = tw_utf8_valid(data, n);
        unsigned char hdr[S_HEADROOM];
        size_t h;
        if (n < 32 && str) {
            hdr[0] = (unsigned char)(0xa0 | n);
            h = 1;
        } else if (n < 256) {
            hdr[0] = str ? 0xd9 : 0xc4;
            hdr[1] = (unsigned char)n;
            h = 2;
        } else if (n < 65536) {
            hdr[0] = str ? 0xda : 0xc5;
            hdr[1] = (unsigned char)(n >> 8);
            hdr[2] = (unsigned char)n;
            h = 3;
        } else {
            hdr[0] = str ? 0xdb : 0xc6;
            hdr[1] = (unsigned char)(n >> 24);
            hdr[2] = (unsigned char)(n >> 16);
            hdr[3] = (unsigned char)(n >> 8);
            hdr[4] = (unsigned char)n;
            h = 5;
        }
        memcpy(data - h, hdr, h);
        tw_call_finish(call, data - h, n + h);
    }
}

static void
s_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    s_exec_t *x = p->data;
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
    s_exec_t *x = h->data;
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
s_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    s_exec_t *x = s->data;
    if (n > 0) {
        x->olen += (size_t)n;
        if (x->olen > x->max) {
            x->overflow = 1;
            x->olen = x->max;
            s_kill(x);
            s_close((uv_handle_t *)s);
        }
    } else if (n < 0) {
        if (n == UV_ENOBUFS) {
            x->oom = 1;
            s_kill(x);
        }
        s_close((uv_handle_t *)s); /* EOF or error: output complete */
        s_maybe_finish(x);
    }
}

static void
s_err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    s_exec_t *x = h->data;
    *buf = uv_buf_init(x->escratch, sizeof x->escratch);
}

static void
s_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    s_exec_t *x = s->data;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            x->etail[x->etotal++ % S_ERR_TAIL] = buf->base[i];
        }
    } else if (n < 0) {
        s_close((uv_handle_t *)s);
        s_maybe_finish(x);
    }
}

static void
s_write_cb(uv_write_t *req, int status)
{
    (void)status; /* a child that does not read its stdin is its business */
    s_exec_t *x = req->data;
    s_close((uv_handle_t *)&x->in);
}

/* Parse the arguments into x->argv and the optional stdin text. Returns 0
 * or fails the call and returns -1. */
static int
s_parse(s_exec_t *x, tw_call_t *call, const void **in, size_t *inlen)
{
    size_t len;
    const char *a = tw_call_args(call, &len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *argv = NULL;
    *in = NULL;
    *inlen = 0;
    int ok = msgpack_unpack_next(&up, a, len, &off) ==
                 MSGPACK_UNPACK_SUCCESS &&
             off == len;
    if (ok && up.data.type == MSGPACK_OBJECT_ARRAY) {
        argv = &up.data;
    } else if (ok && up.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < up.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) {
                continue;
            }
            const msgpack_object_str *k = &kv->key.via.str;
            if (k->size == 4 && !memcmp(k->ptr, "argv", 4)) {
                argv = &kv->val;
            } else if (k->size == 5 && !memcmp(k->ptr, "stdin", 5)) {
                if (kv->val.type == MSGPACK_OBJECT_STR ||
                    kv->val.type == MSGPACK_OBJECT_BIN) {
                    *in = kv->val.via.str.ptr;
                    *inlen = kv->val.via.str.size;
                } else if (kv->val.type != MSGPACK_OBJECT_NIL) {
                    argv = NULL;
                    break;
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
        tw_call_fail(call, "exec: args must be [program, arg...] or "
                           "{\"argv\": [program, arg...], \"stdin\": text}");
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
    if (*in) {
        /* The text points into the call's arguments, which outlive the
         * write only until the call finishes: keep a copy. */
        x->stdin_buf = tw_malloc(*inlen ? *inlen : 1);
        memcpy(x->stdin_buf, *in, *inlen);
        *in = x->stdin_buf;
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

static void
s_exec(tw_call_t *call, void *udata)
{
    s_exec_t *x = tw_calloc(1, sizeof *x);
    x->call = call;
    x->max = (size_t)(uintptr_t)udata;
    const void *in;
    size_t inlen;
    if (s_parse(x, call, &in, &inlen) != 0) {
        tw_free(x->argv);
        tw_free(x);
        return;
    }
    uv_loop_t *loop = tw_call_loop(call);
    x->has_in = in != NULL;
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
    if (x->has_in) {
        uv_buf_t b = uv_buf_init(x->stdin_buf, (unsigned)inlen);
        x->wreq.data = x;
        if (inlen == 0 || uv_write(&x->wreq, (uv_stream_t *)&x->in, &b, 1,
                                   s_write_cb) != 0) {
            s_close((uv_handle_t *)&x->in);
        }
    }
}

static void
s_exec_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    s_exec_t *x = tw_call_data(call);
    if (!x || !x->call || x->cancelled) {
        return;
    }
    x->cancelled = 1;
    s_kill(x);
    s_maybe_finish(x); /* finishes now if it had already exited */
}

int
tw_handlers_add_exec(tw_handlers_t *reg, size_t stdout_max)
{
    tw_handler_def_t def = {.name = "exec",
                            .flags = TW_HANDLER_ASYNC,
                            .run = s_exec,
                            .cancel = s_exec_cancel,
                            .udata = (void *)(uintptr_t)stdout_max};
    return tw_handlers_add(reg, &def);
}
