/*  worker/child.c - a program run as a child process (see child.h).
 *
 *  The child counts its open handles (the process, stdout, stderr and
 *  maybe stdin) and tells the owner `closed` when the last one has gone,
 *  so the owner's state outlives every libuv callback that could still
 *  reach it. stderr is read into a scratch buffer and kept as a ring of
 *  its last bytes; stdout belongs to the owner.
 */
#include "worker/child.h"
#include "common/alloc.h"
#include "common/error.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_ARGV 4096

static void
s_closed(uv_handle_t *h)
{
    tw_child_t *c = h->data;
    if (--c->nopen == 0) {
        tw_free(c->argv);
        c->argv = NULL;
        c->ops->closed(c);
    }
}

static void
s_close(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, s_closed);
    }
}

/* Copy stderr's tail out of the ring into `out` (TW_CHILD_ERR_TAIL + 1
 * bytes), without trailing whitespace. Returns its length. */
static size_t
s_err_tail(const tw_child_t *c, char *out)
{
    size_t n = c->etotal < TW_CHILD_ERR_TAIL ? c->etotal : TW_CHILD_ERR_TAIL;
    size_t start = c->etotal < TW_CHILD_ERR_TAIL
                       ? 0
                       : c->etotal % TW_CHILD_ERR_TAIL;
    for (size_t i = 0; i < n; i++) {
        out[i] = c->etail[(start + i) % TW_CHILD_ERR_TAIL];
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                     out[n - 1] == ' ' || out[n - 1] == '\t')) {
        n--;
    }
    out[n] = '\0';
    return n;
}

static void
s_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    tw_child_t *c = p->data;
    c->exited = 1;
    c->status = status;
    c->term_signal = term_signal;
    s_close((uv_handle_t *)p);
    if (c->has_term) {
        s_close((uv_handle_t *)&c->term); /* no SIGKILL needed any more */
    }
    c->ops->changed(c);
}

static void
s_out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tw_child_t *c = h->data;
    c->ops->out_alloc(c, buf);
}

static void
s_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tw_child_t *c = s->data;
    if (n == 0) {
        return;
    }
    c->ops->out_read(c, n, buf);
    if (n < 0) {
        s_close((uv_handle_t *)s); /* EOF or error: output complete */
        c->ops->changed(c);
    }
}

static void
s_err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tw_child_t *c = h->data;
    *buf = uv_buf_init(c->escratch, sizeof c->escratch);
}

static void
s_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tw_child_t *c = s->data;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            c->etail[c->etotal++ % TW_CHILD_ERR_TAIL] = buf->base[i];
        }
        if (c->ops->err_read) {
            c->ops->err_read(c, buf->base, (size_t)n);
        }
    } else if (n < 0) {
        s_close((uv_handle_t *)s);
        c->ops->changed(c);
    }
}

int
tw_child_parse_args(tw_child_t *c, const void *args, size_t len,
                    const void **in, size_t *inlen)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *argv = NULL;
    if (in) {
        *in = NULL;
        *inlen = 0;
    }
    int ok = msgpack_unpack_next(&up, args, len, &off) ==
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
            } else if (in && k->size == 5 && !memcmp(k->ptr, "stdin", 5)) {
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
        return TW_EINVAL;
    }
    c->argv = tw_malloc((n + 1) * sizeof(char *) + bytes);
    char *p = (char *)(c->argv + n + 1);
    for (size_t i = 0; i < n; i++) {
        const msgpack_object_str *s = &argv->via.array.ptr[i].via.str;
        memcpy(p, s->ptr, s->size);
        p[s->size] = '\0';
        c->argv[i] = p;
        p += s->size + 1;
    }
    c->argv[n] = NULL;
    msgpack_unpacked_destroy(&up);
    return 0;
}

int
tw_child_start(tw_child_t *c, tw_call_t *call, int with_stdin,
               const tw_child_ops_t *ops, void *data)
{
    return tw_child_start_chan(c, call, with_stdin, 0, ops, data);
}

int
tw_child_spawn(tw_child_t *c, uv_loop_t *loop, int flags,
               const tw_child_ops_t *ops, void *data)
{
    c->ops = ops;
    c->data = data;
    c->has_in = (flags & TW_CHILD_STDIN) != 0;
    c->has_chan = (flags & TW_CHILD_CHAN) != 0;
    uv_pipe_init(loop, &c->out, 0);
    uv_pipe_init(loop, &c->err, 0);
    c->nopen = 3;
    if (c->has_in) {
        uv_pipe_init(loop, &c->in, 0);
        c->nopen++;
    }
    if (c->has_chan) {
        uv_pipe_init(loop, &c->chan, 0);
        c->nopen++;
    }
    c->proc.data = c->out.data = c->err.data = c->in.data = c;
    c->chan.data = c;

    uv_stdio_container_t stdio[4];
    if (c->has_in) {
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&c->in;
    } else {
        stdio[0].flags = UV_IGNORE;
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&c->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&c->err;
    stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)&c->chan;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.file = c->argv[0];
    opt.args = c->argv;
    opt.env = c->env;
    opt.exit_cb = s_exit_cb;
    opt.flags = UV_PROCESS_DETACHED; /* its own process group, for kill */
    opt.stdio_count = c->has_chan ? 4 : 3;
    opt.stdio = stdio;

    int rc = uv_spawn(loop, &c->proc, &opt);
    if (rc != 0) {
        s_close((uv_handle_t *)&c->proc);
        s_close((uv_handle_t *)&c->out);
        s_close((uv_handle_t *)&c->err);
        if (c->has_in) {
            s_close((uv_handle_t *)&c->in);
        }
        tw_child_close_chan(c);
        return rc;
    }
    uv_read_start((uv_stream_t *)&c->out, s_out_alloc, s_out_read);
    uv_read_start((uv_stream_t *)&c->err, s_err_alloc, s_err_read);
    return 0;
}

int
tw_child_start_chan(tw_child_t *c, tw_call_t *call, int with_stdin,
                    int with_chan, const tw_child_ops_t *ops, void *data)
{
    int flags = (with_stdin ? TW_CHILD_STDIN : 0) |
                (with_chan ? TW_CHILD_CHAN : 0);
    int rc = tw_child_spawn(c, tw_call_loop(call), flags, ops, data);
    if (rc != 0) {
        tw_call_fail(call, "cannot run '%s': %s", c->argv[0],
                     uv_strerror(rc));
        return rc;
    }
    c->call = call;
    tw_call_set_data(call, c);
    return 0;
}

void
tw_child_signal(tw_child_t *c, int sig)
{
    if (!c->exited && uv_kill(-c->proc.pid, sig) != 0) {
        uv_process_kill(&c->proc, sig);
    }
}

void
tw_child_kill(tw_child_t *c, int why)
{
    c->killed |= why;
    tw_child_signal(c, SIGKILL);
}

static void
s_term_cb(uv_timer_t *t)
{
    tw_child_t *c = t->data;
    tw_child_kill(c, TW_CHILD_STOPPED); /* the grace is over */
    s_close((uv_handle_t *)t);
}

void
tw_child_terminate(tw_child_t *c, uint64_t grace_ms)
{
    if (!c->call || c->exited || c->has_term) {
        return;
    }
    c->killed |= TW_CHILD_STOPPED;
    tw_child_close_stdin(c);
    tw_child_signal(c, SIGTERM);
    uv_timer_init(tw_call_loop(c->call), &c->term);
    c->term.data = c;
    c->has_term = 1;
    c->nopen++;
    uv_timer_start(&c->term, s_term_cb, grace_ms, 0);
}

void
tw_child_cancel(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_child_t *c = tw_call_data(call);
    if (!c || !c->call || (c->killed & TW_CHILD_CANCELLED)) {
        return;
    }
    tw_child_kill(c, TW_CHILD_CANCELLED);
    c->ops->changed(c);
}

void
tw_child_close_stdout(tw_child_t *c)
{
    s_close((uv_handle_t *)&c->out);
}

void
tw_child_close_chan(tw_child_t *c)
{
    if (c->has_chan) {
        s_close((uv_handle_t *)&c->chan);
    }
}

void
tw_child_close_stdin(tw_child_t *c)
{
    if (c->has_in) {
        s_close((uv_handle_t *)&c->in);
    }
}

/* Read pipe `p` until it would block, into `cb`'s buffers. */
static void
s_drain_pipe(uv_pipe_t *p, uv_alloc_cb alloc, uv_read_cb cb)
{
    uv_os_fd_t fd;
    if (uv_is_closing((uv_handle_t *)p) ||
        uv_fileno((uv_handle_t *)p, &fd) != 0) {
        return;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 ||
        (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
        return;
    }
    for (int i = 0; i < 64 && !uv_is_closing((uv_handle_t *)p); i++) {
        uv_buf_t b;
        alloc((uv_handle_t *)p, 65536, &b);
        if (!b.base || b.len == 0) {
            return;
        }
        ssize_t n = read(fd, b.base, b.len);
        if (n <= 0) {
            return; /* EAGAIN: all there is; EOF: the read callback's */
        }
        cb((uv_stream_t *)p, n, &b);
    }
}

void
tw_child_drain(tw_child_t *c)
{
    s_drain_pipe(&c->out, s_out_alloc, s_out_read);
    s_drain_pipe(&c->err, s_err_alloc, s_err_read);
}

void
tw_child_release(tw_child_t *c)
{
    s_close((uv_handle_t *)&c->out);
    s_close((uv_handle_t *)&c->err);
    tw_child_close_stdin(c); /* drops writes nobody reads */
    tw_child_close_chan(c);
}

void
tw_child_clear_err(tw_child_t *c)
{
    c->etotal = 0;
}

static void
s_in_ended(uv_shutdown_t *req, int status)
{
    (void)status;
    tw_child_t *c = req->data;
    tw_child_close_stdin(c);
}

void
tw_child_end_stdin(tw_child_t *c)
{
    uv_stream_t *in = (uv_stream_t *)&c->in;
    if (!c->has_in || c->in_ending || uv_is_closing((uv_handle_t *)in)) {
        return;
    }
    c->in_end.data = c;
    if (uv_shutdown(&c->in_end, in, s_in_ended) == 0) {
        c->in_ending = 1;
    } else {
        tw_child_close_stdin(c);
    }
}

tw_call_t *
tw_child_reap(tw_child_t *c)
{
    if (!c->call || !c->exited) {
        return NULL;
    }
    if (!c->killed && (!uv_is_closing((uv_handle_t *)&c->out) ||
                       !uv_is_closing((uv_handle_t *)&c->err))) {
        return NULL; /* wait for the rest of its output */
    }
    /* Killed: do not wait for EOF a grandchild might hold back. */
    tw_child_release(c);
    tw_call_t *call = c->call;
    c->call = NULL;
    return call;
}

int
tw_child_end_text(const tw_child_t *c, char *out, size_t cap)
{
    char tail[TW_CHILD_ERR_TAIL + 1];
    if (c->term_signal) {
        snprintf(out, cap, "killed by signal %d", c->term_signal);
    } else if (c->status != 0 && s_err_tail(c, tail)) {
        snprintf(out, cap, "exit status %lld: %s", (long long)c->status,
                 tail);
    } else {
        snprintf(out, cap, "exit status %lld", (long long)c->status);
    }
    return c->term_signal || c->status != 0;
}

int
tw_child_fail(const tw_child_t *c, tw_call_t *call, size_t max)
{
    if (c->killed & TW_CHILD_CANCELLED) {
        tw_call_fail(call, "cancelled");
    } else if (c->killed & TW_CHILD_STOPPED) {
        tw_call_fail(call, "stopped");
    } else if (c->killed & TW_CHILD_OOM) {
        tw_call_fail(call, "out of memory reading the program's output");
    } else if (c->killed & TW_CHILD_OVERFLOW) {
        tw_call_fail(call, "output exceeded %zu bytes (exec-stdout-max)",
                     max);
    } else {
        char text[TW_CHILD_ERR_TAIL + 64];
        if (!tw_child_end_text(c, text, sizeof text)) {
            return 0;
        }
        tw_call_fail(call, "%s", text);
    }
    return 1;
}
