/*  worker/proc.c - proc handlers: the edge of the procpool engine (see
 *  proc.h).
 *
 *  Each child slot (s_kid_t) lives as long as the tw_procs_t and holds
 *  one life of a child at a time: a tw_child_t that is zeroed and spawned
 *  again after the last one's handles have closed. Each call gets an
 *  s_job_t, linked to the engine as its tw_pp_job_t and to the tw_call_t
 *  as the call's data; it is freed when the call is finished, which the
 *  engine reports by `fail` or the edge does on an outcome frame.
 *
 *  Order matters in two places. An outcome first unlinks the job from
 *  the engine, then finishes the call (its channel answers what it still
 *  owes the child), and only then does the engine give the child its
 *  next call (tw_procpool_run). And a station's queued n2s messages are
 *  written right after its iteration's call frame.
 *
 *  n2s messages handed to a child are kept with the iteration's job
 *  until its outcome says which the handler took (PROTOCOL.md 15.10):
 *  the others go back to the front of the station's queue and follow
 *  its next iteration's call, in whichever child that runs. An outcome
 *  without that word (a child older than it) takes them all.
 *
 *  After every event the edge runs the engine once (s_tick), which
 *  re-arms the one timer for the next deadline.
 *
 *  Frames for a child collect in its encoder and go out together in one
 *  write at the next idle phase of the loop (a uv_idle, active while any
 *  child has frames waiting, so the loop does not block before): what
 *  one loop iteration's events make for a child, such as its pipeline
 *  refill, the n2s messages behind a call or a cancel, costs one system
 *  call and one wake-up of the child. The channel's answers (exec_chan)
 *  are written at once; they concern the call the child runs, so they
 *  may pass frames for later calls, never frames for that one.
 */
#include "worker/proc.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "worker/child.h"
#include "worker/exec_chan.h"
#include "worker/frame.h"
#include "worker/n2sq.h"
#include "worker/proc_codec.h"
#include "worker/taskloop.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

extern char **environ;

#define S_MAX_LINE 4096           /* a logged stderr line, in bytes */
#define S_MAX_BACKLOG (16u << 20) /* unwritten bytes to a child's stdin */

typedef struct s_kid s_kid_t;
typedef struct s_job s_job_t;

/* A handler name's registration: its udata. */
typedef struct {
    tw_procs_t *ps;
    unsigned hid;
} s_hid_t;

struct s_job {
    tw_pp_job_t job;
    tw_procs_t *ps;
    tw_call_t *call;
    uint64_t started; /* loop time of the start, for the timeout left */
    tw_n2sq_t *sd;    /* the station's n2s queue, for iterations */
    tw_n2sq_t sent;   /* n2s messages handed to the child, not yet taken */
};

struct s_kid {
    tw_child_t child; /* first: the child's data is the kid */
    tw_procs_t *ps;
    unsigned idx;
    int alive;  /* handles open: spawned and not yet closed */
    int exited; /* this life's exit was reported */
    int pid;
    tw_frame_reader_t rd;
    char line[S_MAX_LINE];
    size_t llen;
    uint64_t last_task;     /* its last call, for stderr lines: a task, */
    char last_sid[129];     /* or a station ("" and 0: none yet) */
    int unknown;            /* frames with an unknown "ev" this life */
    tw_enc_t enc;           /* frames waiting for the flush */
};

struct tw_procs {
    uv_loop_t *loop;
    tw_procpool_t *pp;
    size_t npools;
    char ***argv; /* per pool, one block each */
    char **cmds;  /* per pool, as given */
    s_kid_t *kids;
    size_t nkids;
    char **env;
    uv_timer_t timer;
    uv_idle_t flush; /* writes what the children's encoders hold */
    int open;        /* handles not closed yet: the timer, the idle */
    int flush_on;
    s_hid_t *hids;
    size_t nhids;
    int closing;
    void (*close_cb)(void *ud);
    void *close_ud;
    tw_proc_hello_t *hello; /* scratch for hello frames */
};

static void s_tick(tw_procs_t *ps);

/* Command lines ----------------------------------------------------------- */

int
tw_procs_split(const char *cmd, char ***argv, char *err, size_t errlen)
{
    size_t len = strlen(cmd);
    /* At most len/2 + 1 words, each no longer than the line. */
    size_t maxw = len / 2 + 2;
    char **v = tw_malloc(maxw * sizeof *v + len + maxw);
    char *out = (char *)(v + maxw);
    size_t n = 0;
    const char *p = cmd;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') {
            p++;
        }
        if (!*p) {
            break;
        }
        v[n++] = out;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) {
                    snprintf(err, errlen, "unterminated ' in '%s'", cmd);
                    tw_free(v);
                    return TW_EINVAL;
                }
                memcpy(out, p + 1, (size_t)(e - p - 1));
                out += e - p - 1;
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                        p++;
                    }
                    *out++ = *p++;
                }
                if (!*p) {
                    snprintf(err, errlen, "unterminated \" in '%s'", cmd);
                    tw_free(v);
                    return TW_EINVAL;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    snprintf(err, errlen, "trailing \\ in '%s'", cmd);
                    tw_free(v);
                    return TW_EINVAL;
                }
                *out++ = p[1];
                p += 2;
            } else {
                *out++ = *p++;
            }
        }
        *out++ = '\0';
    }
    if (n == 0 || v[0][0] == '\0') {
        snprintf(err, errlen, "no program in '%s'", cmd);
        tw_free(v);
        return TW_EINVAL;
    }
    v[n] = NULL;
    *argv = v;
    return 0;
}

/* A copy of NULL-terminated `argv` in one block, for tw_child_t. */
static char **
s_argv_copy(char *const *argv)
{
    size_t n = 0, bytes = 0;
    while (argv[n]) {
        bytes += strlen(argv[n++]) + 1;
    }
    char **v = tw_malloc((n + 1) * sizeof *v + bytes);
    char *p = (char *)(v + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(argv[i]) + 1;
        memcpy(p, argv[i], k);
        v[i] = p;
        p += k;
    }
    v[n] = NULL;
    return v;
}

/* The worker's environment with TASKWHEEL_PROC set, one block. */
static char **
s_env(void)
{
    static const char mine[] = "TASKWHEEL_PROC=1";
    size_t n = 0;
    while (environ[n]) {
        n++;
    }
    char **v = tw_malloc((n + 2) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "TASKWHEEL_PROC=", 15) != 0) {
            v[k++] = environ[i];
        }
    }
    v[k++] = (char *)mine;
    v[k] = NULL;
    return v;
}

unsigned
tw_procs_default_count(unsigned slots)
{
    unsigned cap = 2 * (unsigned)uv_available_parallelism();
    if (cap < 4) {
        cap = 4;
    }
    if (cap > TW_PROC_COUNT_CAP) {
        cap = TW_PROC_COUNT_CAP;
    }
    return slots < cap ? slots : cap;
}

/* Logging ---------------------------------------------------------------- */

static s_job_t *s_job_of(tw_pp_job_t *j);

/* Remember the call `j` as the last one `k` ran (or runs). */
static void
s_kid_saw(s_kid_t *k, const s_job_t *j)
{
    tw_station_t *st = tw_call_station(j->call);
    if (st) {
        k->last_task = 0;
        snprintf(k->last_sid, sizeof k->last_sid, "%s", tw_station_id(st));
    } else {
        k->last_task = tw_call_id(j->call);
        k->last_sid[0] = '\0';
    }
}

/* One stderr line of a child, with the call it runs (or ran last). */
static void
s_log_line(s_kid_t *k, const char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n')) {
        n--;
    }
    tw_pp_job_t *run = tw_procpool_job(k->ps->pp, k->idx);
    if (run) {
        s_kid_saw(k, s_job_of(run));
    }
    char ctx[160] = "";
    if (k->last_sid[0]) {
        snprintf(ctx, sizeof ctx, " station %s", k->last_sid);
    } else if (k->last_task) {
        snprintf(ctx, sizeof ctx, " task %llu",
                 (unsigned long long)k->last_task);
    }
    tw_notice("worker.proc.stderr", "proc %u pid %d%s: %.*s",
              tw_procpool_pool_of(k->ps->pp, k->idx), k->pid, ctx, (int)n,
              p);
}

static void
s_err_read(tw_child_t *c, const char *buf, size_t n)
{
    s_kid_t *k = (s_kid_t *)c;
    while (n > 0) {
        const char *nl = memchr(buf, '\n', n);
        size_t take = nl ? (size_t)(nl - buf) : n;
        size_t room = S_MAX_LINE - k->llen;
        size_t copy = take < room ? take : room;
        memcpy(k->line + k->llen, buf, copy);
        k->llen += copy;
        if (nl || k->llen == S_MAX_LINE) {
            s_log_line(k, k->line, k->llen);
            k->llen = 0;
        }
        if (nl) {
            take++;
        } else {
            take = copy;
        }
        buf += take;
        n -= take;
    }
}

static void
s_note(void *ud, unsigned child, int level, const char *msg)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    TW_LOG(level, "worker.proc", "proc %u child %u (pid %d, '%s'): %s",
           tw_procpool_pool_of(ps->pp, child), child, k->pid,
           ps->cmds[tw_procpool_pool_of(ps->pp, child)], msg);
}

/* Jobs and stations ---------------------------------------------------------
 */

static s_job_t *
s_job_of(tw_pp_job_t *j)
{
    return (s_job_t *)j;
}

/* Forget `j` (its call has just been finished): n2s messages it still
 * keeps were handed over and are not given again (at most once). */
static void
s_job_free(s_job_t *j)
{
    if (j->sd && j->sd->run == j) {
        j->sd->run = NULL;
    }
    tw_n2sq_clear(&j->sent);
    tw_free(j);
}

static int
s_stdin_gone(s_kid_t *k)
{
    return !k->alive || k->exited ||
           uv_is_closing((uv_handle_t *)&k->child.in);
}

/* Write what k->enc holds to the child's stdin, in one write. */
static void
s_flush_kid(s_kid_t *k)
{
    if (tw_enc_size(&k->enc) == 0) {
        return;
    }
    if (s_stdin_gone(k)) {
        tw_enc_clear(&k->enc);
        return;
    }
    tw_frame_write(&k->enc, (uv_stream_t *)&k->child.in);
}

static void
s_flush_cb(uv_idle_t *h)
{
    tw_procs_t *ps = h->data;
    for (size_t i = 0; i < ps->nkids; i++) {
        s_flush_kid(&ps->kids[i]);
    }
    ps->flush_on = 0;
    uv_idle_stop(&ps->flush);
}

/* The frame appended to k->enc at offset `at` goes out with the next
 * flush, before the loop waits again, unless stdin is gone or, for an
 * `optional` frame, too much waits unwritten (then it is taken back and
 * -1 returned). */
static int
s_queue(s_kid_t *k, size_t at, int optional)
{
    uv_stream_t *in = (uv_stream_t *)&k->child.in;
    if (s_stdin_gone(k) ||
        (optional &&
         uv_stream_get_write_queue_size(in) + at > S_MAX_BACKLOG)) {
        k->enc.sb.size = at;
        return -1;
    }
    tw_procs_t *ps = k->ps;
    if (!ps->flush_on && !uv_is_closing((uv_handle_t *)&ps->flush)) {
        ps->flush_on = 1;
        uv_idle_start(&ps->flush, s_flush_cb);
    }
    return 0;
}

/* Hand n2s message `m` to the child running `j`'s iteration, and keep
 * it with `j` until the outcome says whether it was taken (at most
 * TW_N2SQ_MAX of them and TW_N2SQ_MAX_BYTES: beyond, the oldest are
 * forgotten, as taken). */
static void
s_send_n2s(s_kid_t *k, s_job_t *j, tw_n2sq_msg_t *m)
{
    size_t at = tw_enc_size(&k->enc);
    tw_proc_enc_n2s(&k->enc, m->seq, m->data, m->len);
    if (s_queue(k, at, 1) != 0) {
        j->sd->dropped++;
        tw_free(m);
        return;
    }
    tw_n2sq_put(&j->sent, m);
    while (j->sent.n > TW_N2SQ_MAX || j->sent.bytes > TW_N2SQ_MAX_BYTES) {
        tw_free(tw_n2sq_pop(&j->sent));
    }
}

/* The engine's callbacks ------------------------------------------------ */

static void s_child_changed(tw_child_t *c);
static void s_child_closed(tw_child_t *c);
static void s_out_alloc(tw_child_t *c, uv_buf_t *buf);
static void s_out_read(tw_child_t *c, ssize_t n, const uv_buf_t *buf);

static const tw_child_ops_t s_child_ops = {
    .out_alloc = s_out_alloc,
    .out_read = s_out_read,
    .changed = s_child_changed,
    .closed = s_child_closed,
    .err_read = s_err_read,
};

static int
s_spawn(void *ud, unsigned child, unsigned pool, char *err, size_t errlen)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    memset(&k->child, 0, sizeof k->child);
    k->child.argv = s_argv_copy(ps->argv[pool]);
    k->child.env = ps->env;
    k->exited = 0;
    k->pid = 0;
    k->llen = 0;
    tw_enc_clear(&k->enc); /* nothing of the last life's is sent */
    k->unknown = 0;
    k->last_task = 0;
    k->last_sid[0] = '\0';
    tw_frame_reader_free(&k->rd);
    tw_frame_reader_init(&k->rd, TW_PROC_MAX_FRAME);
    k->alive = 1;
    int rc =
        tw_child_spawn(&k->child, ps->loop, TW_CHILD_STDIN, &s_child_ops, k);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run '%s': %s", ps->cmds[pool],
                 uv_strerror(rc));
        return rc;
    }
    k->pid = k->child.proc.pid;
    tw_debug("worker.proc", "proc %u child %u started: pid %d", pool, child,
             k->pid);
    return 0;
}

static void
s_send_call(void *ud, unsigned child, tw_pp_job_t *pj)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    s_job_t *j = s_job_of(pj);
    tw_call_t *call = j->call;
    tw_station_t *st = tw_call_station(call);
    size_t alen;
    const void *a = tw_call_args(call, &alen);
    const char *h = tw_call_handler(call);
    tw_proc_call_t c = {
        .station = st != NULL,
        .h = h,
        .hlen = strlen(h),
        .a = a,
        .alen = alen,
    };
    if (st) {
        c.sid = tw_station_id(st);
        c.sidlen = strlen(c.sid);
        c.it = tw_station_iteration(st);
        c.n2s = j->sd && (tw_procpool_flags(ps->pp, pj->hid) & TW_PP_F_N2S);
    } else {
        c.task = tw_call_id(call);
        c.at = call->attempt;
    }
    if (call->timeout_ms) {
        /* The deadline counts from the start of the call, which may have
         * waited for this child. */
        uint64_t spent = uv_now(ps->loop) - j->started;
        uint64_t left = spent < call->timeout_ms ? call->timeout_ms - spent : 0;
        struct timeval tv;
        gettimeofday(&tv, NULL);
        c.to = call->timeout_ms;
        c.dl = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 + left;
    }
    if (tw_procpool_job(ps->pp, child) == pj) {
        tw_child_clear_err(&k->child); /* a death quotes this call's stderr */
    }
    size_t at = tw_enc_size(&k->enc);
    tw_proc_enc_call(&k->enc, &c);
    s_queue(k, at, 0);
    if (st && j->sd) {
        /* Messages that waited for this iteration follow its call. */
        j->sd->run = j;
        tw_n2sq_msg_t *m;
        while ((m = tw_n2sq_pop(j->sd)) != NULL) {
            s_send_n2s(k, j, m);
        }
    }
}

static void
s_send_cancel(void *ud, unsigned child, tw_pp_job_t *pj)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    tw_call_t *call = s_job_of(pj)->call;
    /* A task's cancel names it: the child may hold it behind another. */
    size_t at = tw_enc_size(&k->enc);
    tw_proc_enc_cancel(&k->enc,
                       tw_call_station(call) ? 0 : tw_call_id(call));
    s_queue(k, at, 0);
}

static void
s_send_shutdown(void *ud, unsigned child)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    size_t at = tw_enc_size(&k->enc);
    tw_proc_enc_bare(&k->enc, "shutdown");
    if (s_queue(k, at, 0) == 0) {
        s_flush_kid(k); /* before the end of stdin */
    }
    tw_child_end_stdin(&k->child); /* and the end of stdin */
}

static void
s_signal(void *ud, unsigned child, int sig)
{
    tw_procs_t *ps = ud;
    s_kid_t *k = &ps->kids[child];
    if (k->alive && !k->exited && k->pid) {
        tw_child_signal(&k->child, sig);
    }
}

static void
s_fail(void *ud, tw_pp_job_t *pj, const char *msg)
{
    (void)ud;
    s_job_t *j = s_job_of(pj);
    tw_call_t *call = j->call;
    tw_call_set_data(call, NULL);
    s_job_free(j);
    tw_call_fail(call, "%s", msg);
}

static const tw_pp_ops_t s_pp_ops = {
    .spawn = s_spawn,
    .send_call = s_send_call,
    .send_cancel = s_send_cancel,
    .send_shutdown = s_send_shutdown,
    .signal = s_signal,
    .fail = s_fail,
    .note = s_note,
};

/* Frames from a child --------------------------------------------------------
 */

static void
s_bad(s_kid_t *k, const char *why)
{
    tw_procpool_bad(k->ps->pp, k->idx, why, uv_now(k->ps->loop));
}

static void
s_on_hello(s_kid_t *k, const tw_frame_t *f)
{
    tw_procs_t *ps = k->ps;
    tw_proc_hello_t *h = ps->hello;
    char err[256];
    if (tw_proc_parse_hello(f, h, err, sizeof err) != 0) {
        s_bad(k, err);
        return;
    }
    if (h->v != TW_PROC_VERSION) {
        snprintf(err, sizeof err,
                 "it speaks protocol version %llu; this "
                 "worker speaks %d",
                 (unsigned long long)h->v, TW_PROC_VERSION);
        s_bad(k, err);
        return;
    }
    if (tw_procpool_hello(ps->pp, k->idx, h->names, h->lens, h->flags, h->n,
                          uv_now(ps->loop), err, sizeof err) != 0) {
        return; /* the engine said why and killed it */
    }
    unsigned depth = h->pipeline > TW_PP_MAX_DEPTH ? TW_PP_MAX_DEPTH
                                                   : (unsigned)h->pipeline;
    tw_procpool_set_depth(ps->pp, k->idx, depth);
    unsigned pool = tw_procpool_pool_of(ps->pp, k->idx);
    tw_info("worker.proc",
            "proc %u child %u (pid %d) ready: %zu handler(s), pipeline %u"
            "%s%.*s",
            pool, k->idx, k->pid, h->n, depth, h->rt ? ", " : "",
            h->rt ? (int)(h->rtlen > 200 ? 200 : h->rtlen) : 0,
            h->rt ? h->rt : "");
}

/* A result or error frame: the call's outcome. */
static void
s_on_outcome(s_kid_t *k, const tw_frame_t *f, int ok)
{
    tw_procs_t *ps = k->ps;
    tw_pp_job_t *pj = tw_procpool_outcome(ps->pp, k->idx, uv_now(ps->loop));
    if (!pj) {
        s_bad(k,
              ok ? "a result when no call runs" : "an error when no call runs");
        return;
    }
    s_job_t *j = s_job_of(pj);
    tw_call_t *call = j->call;
    uint64_t took;
    if (j->sd && tw_frame_uint(f, "n2s", &took)) {
        /* What the handler did not take waits for the next iteration. */
        tw_n2sq_requeue(j->sd, &j->sent, took);
    }
    s_kid_saw(k, j);
    tw_pp_job_t *next = tw_procpool_job(ps->pp, k->idx);
    if (next) {
        tw_child_clear_err(&k->child); /* the next call runs now */
    }
    tw_call_set_data(call, NULL);
    s_job_free(j);
    if (ok) {
        size_t rlen = 0;
        const void *r = tw_frame_get(f, "r", &rlen);
        tw_call_finish(call, r, r ? rlen : 0);
    } else {
        char *text = tw_malloc(TW_PROC_MAX_ERR + 1);
        tw_proc_error_text(f, text, TW_PROC_MAX_ERR + 1);
        tw_call_fail(call, "%s", text);
        tw_free(text);
    }
}

/* next, stop, emit: a station iteration's frames. */
static void
s_on_station(s_kid_t *k, const tw_frame_t *f, tw_call_t *call)
{
    uv_stream_t *in = (uv_stream_t *)&k->child.in;
    tw_station_t *st = call ? tw_call_station(call) : NULL;
    size_t dlen = 0;
    const void *d = tw_frame_get(f, "d", &dlen);
    if (!call) {
        return; /* no call runs: ignored (PROTOCOL.md 15.5) */
    }
    if (tw_frame_is(f, "stop")) {
        if (st) {
            tw_station_stop(st);
        }
        return;
    }
    int rc = tw_frame_is(f, "next") ? tw_call_set_next(call, d, dlen)
                                    : tw_call_emit(call, d, dlen);
    if (rc != 0 && !uv_is_closing((uv_handle_t *)in)) {
        tw_exec_chan_error(in, rc, NULL, 0);
    }
}

static int
s_on_frame(void *arg, const char *body, size_t n)
{
    s_kid_t *k = arg;
    tw_procs_t *ps = k->ps;
    tw_frame_t f;
    const char *why;
    if (tw_frame_parse(&f, body, n, &why) != 0) {
        s_bad(k, why);
        return -1;
    }
    int hello = tw_frame_is(&f, "hello");
    int talking = tw_procpool_talking(ps->pp, k->idx);
    if (!talking && !hello) {
        if (!tw_procpool_greeting(ps->pp, k->idx)) {
            return 0; /* on its way out: nothing it says matters */
        }
        s_bad(k, "a frame before its hello");
        return -1;
    }
    if (hello) {
        s_on_hello(k, &f);
        return tw_procpool_talking(ps->pp, k->idx) ? 0 : -1;
    }
    tw_pp_job_t *pj = tw_procpool_job(ps->pp, k->idx);
    tw_call_t *call = pj ? s_job_of(pj)->call : NULL;
    if (tw_frame_is(&f, "result") || tw_frame_is(&f, "error")) {
        s_on_outcome(k, &f, tw_frame_is(&f, "result"));
    } else if (tw_exec_chan_item(call, &f, (uv_stream_t *)&k->child.in)) {
        /* a channel item, done */
    } else if (tw_frame_is(&f, "next") || tw_frame_is(&f, "stop") ||
               tw_frame_is(&f, "emit")) {
        s_on_station(k, &f, call);
    } else if (k->unknown++ == 0) {
        tw_warn("worker.proc",
                "proc child %u (pid %d): ignored a frame with "
                "an unknown ev '%.*s'",
                k->idx, k->pid, (int)(f.evlen > 32 ? 32 : f.evlen), f.ev);
    }
    return tw_procpool_talking(ps->pp, k->idx) ? 0 : -1;
}

/* The child's pipes and life ------------------------------------------------
 */

static void
s_out_alloc(tw_child_t *c, uv_buf_t *buf)
{
    s_kid_t *k = (s_kid_t *)c;
    *buf = tw_frame_reader_room(&k->rd);
}

static void
s_out_read(tw_child_t *c, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    s_kid_t *k = (s_kid_t *)c;
    if (n <= 0) {
        return; /* the end of stdout: its exit follows */
    }
    int rc = tw_frame_reader_feed(&k->rd, (size_t)n, s_on_frame, k);
    if (rc == TW_E2BIG) {
        char why[256], len[128];
        tw_frame_bad_length(k->rd.bad, len, sizeof len);
        snprintf(why, sizeof why, "a frame length of %s (limit %u)", len,
                 TW_PROC_MAX_FRAME);
        s_bad(k, why);
    }
    if (rc != 0) {
        tw_child_close_stdout(c); /* nothing more it says can be read */
    }
    s_tick(k->ps);
}

static void
s_child_changed(tw_child_t *c)
{
    s_kid_t *k = (s_kid_t *)c;
    if (!c->exited || k->exited) {
        return;
    }
    k->exited = 1;
    tw_child_drain(c); /* what it said last, which its exit overtook */
    if (k->llen) {
        s_log_line(k, k->line, k->llen);
        k->llen = 0;
    }
    char how[TW_CHILD_ERR_TAIL + 64];
    tw_child_end_text(c, how, sizeof how);
    tw_child_release(c);
    tw_debug("worker.proc", "proc child %u (pid %d): %s", k->idx, k->pid, how);
    tw_procpool_exited(k->ps->pp, k->idx, how, uv_now(k->ps->loop));
    s_tick(k->ps);
}

static void
s_child_closed(tw_child_t *c)
{
    s_kid_t *k = (s_kid_t *)c;
    tw_procs_t *ps = k->ps;
    k->alive = 0;
    tw_procpool_closed(ps->pp, k->idx, uv_now(ps->loop));
    s_tick(ps);
}

/* The engine's timer ---------------------------------------------------------
 */

static void
s_handle_closed(uv_handle_t *h)
{
    tw_procs_t *ps = h->data;
    if (--ps->open == 0 && ps->close_cb) {
        ps->close_cb(ps->close_ud);
    }
}

static void
s_timer_cb(uv_timer_t *t)
{
    s_tick(t->data);
}

/* Run the engine now and re-arm the timer; finish a close once every
 * child has gone. */
static void
s_tick(tw_procs_t *ps)
{
    if (uv_is_closing((uv_handle_t *)&ps->timer)) {
        return;
    }
    int64_t d = tw_procpool_run(ps->pp, uv_now(ps->loop));
    if (ps->closing && tw_procpool_live(ps->pp) == 0) {
        uv_close((uv_handle_t *)&ps->timer, s_handle_closed);
        uv_close((uv_handle_t *)&ps->flush, s_handle_closed);
        return;
    }
    if (d < 0) {
        uv_timer_stop(&ps->timer);
    } else {
        uv_timer_start(&ps->timer, s_timer_cb, (uint64_t)d, 0);
    }
}

/* Handlers ------------------------------------------------------------------
 */

static void
s_run(tw_call_t *call, void *udata)
{
    s_hid_t *h = udata;
    tw_procs_t *ps = h->ps;
    s_job_t *j = tw_calloc(1, sizeof *j);
    j->ps = ps;
    j->call = call;
    j->job.hid = h->hid;
    j->started = uv_now(ps->loop);
    tw_station_t *st = tw_call_station(call);
    if (st) {
        j->sd = tw_n2sq_of(st);
    }
    j->job.solo = st != NULL; /* its n2s frames need it alone in a child */
    tw_call_set_data(call, j);
    char err[512];
    if (tw_procpool_submit(ps->pp, &j->job, j->started, err, sizeof err) != 0) {
        tw_call_set_data(call, NULL);
        s_job_free(j);
        tw_call_fail(call, "%s", err);
        return;
    }
    s_tick(ps);
}

static void
s_cancel(tw_call_t *call, void *udata)
{
    s_hid_t *h = udata;
    s_job_t *j = tw_call_data(call);
    if (j) {
        tw_procpool_cancel(h->ps->pp, &j->job, uv_now(h->ps->loop));
        s_tick(h->ps);
    }
}

static void
s_n2s(tw_station_t *st, const void *data, size_t len, void *udata)
{
    s_hid_t *h = udata;
    tw_n2sq_t *sd = tw_n2sq_of(st);
    s_job_t *j = sd->run;
    uint64_t seq = tw_station_n2s_seq(st);
    if (j && j->job.child >= 0 &&
        tw_procpool_talking(h->ps->pp, (unsigned)j->job.child)) {
        tw_n2sq_msg_t *m = tw_malloc(sizeof *m + len);
        m->seq = seq;
        m->len = len;
        memcpy(m->data, data, len);
        s_send_n2s(&h->ps->kids[j->job.child], j, m);
        return;
    }
    tw_n2sq_push(sd, seq, data, len, NULL, 0);
}

static void
s_end(tw_station_t *st, void *udata)
{
    (void)udata;
    tw_n2sq_end(st, "worker.proc");
}

/* Public ------------------------------------------------------------------- */

static void
s_free_all(tw_procs_t *ps)
{
    for (size_t i = 0; i < ps->nkids; i++) {
        tw_frame_reader_free(&ps->kids[i].rd);
        tw_enc_free(&ps->kids[i].enc);
    }
    for (size_t i = 0; i < ps->npools; i++) {
        tw_free(ps->argv[i]);
        tw_free(ps->cmds[i]);
    }
    tw_procpool_free(&ps->pp);
    tw_free(ps->argv);
    tw_free(ps->cmds);
    tw_free(ps->kids);
    tw_free(ps->env);
    tw_free(ps->hids);
    tw_free(ps->hello);
    tw_free(ps);
}

/* Run the loop until the close of a failed start has finished. */
static void
s_closed_flag(void *ud)
{
    *(int *)ud = 1;
}

int
tw_procs_start(tw_procs_t **out, uv_loop_t *loop, const tw_procs_opts_t *o,
               char *err, size_t errlen)
{
    tw_procs_t *ps = tw_calloc(1, sizeof *ps);
    ps->loop = loop;
    ps->npools = o->npools;
    ps->argv = tw_calloc(o->npools, sizeof *ps->argv);
    ps->cmds = tw_calloc(o->npools, sizeof *ps->cmds);
    ps->hello = tw_malloc(sizeof *ps->hello);
    for (size_t i = 0; i < o->npools; i++) {
        ps->cmds[i] = tw_strdup(o->cmds[i]);
        char why[256];
        if (tw_procs_split(o->cmds[i], &ps->argv[i], why, sizeof why) != 0) {
            snprintf(err, errlen, "--proc: %s", why);
            s_free_all(ps);
            return TW_EINVAL;
        }
    }
    ps->env = s_env();
    unsigned *counts = tw_malloc(o->npools * sizeof *counts);
    for (size_t i = 0; i < o->npools; i++) {
        counts[i] = o->count;
    }
    ps->pp = tw_procpool_new(o->npools, counts, o->hello_ms, o->grace_ms,
                             &s_pp_ops, ps);
    tw_free(counts);
    ps->nkids = tw_procpool_size(ps->pp);
    ps->kids = tw_calloc(ps->nkids, sizeof *ps->kids);
    for (size_t i = 0; i < ps->nkids; i++) {
        ps->kids[i].ps = ps;
        ps->kids[i].idx = (unsigned)i;
        tw_enc_init(&ps->kids[i].enc);
        tw_frame_reader_init(&ps->kids[i].rd, TW_PROC_MAX_FRAME);
    }
    uv_timer_init(loop, &ps->timer);
    ps->timer.data = ps;
    uv_idle_init(loop, &ps->flush);
    ps->flush.data = ps;
    ps->open = 2;
    tw_procpool_start(ps->pp, uv_now(loop));
    s_tick(ps);
    int started;
    while ((started = tw_procpool_started(ps->pp, err, errlen)) == 0) {
        uv_run(loop, UV_RUN_ONCE);
    }
    if (started < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "--proc: a pool cannot start: %s", why);
        int done = 0;
        tw_procpool_kill_all(ps->pp);
        tw_procs_close(ps, s_closed_flag, &done);
        while (!done) {
            uv_run(loop, UV_RUN_ONCE);
        }
        s_free_all(ps);
        return TW_EFAILED;
    }
    *out = ps;
    return 0;
}

int
tw_procs_register(tw_procs_t *ps, tw_handlers_t *reg, char *err, size_t errlen)
{
    size_t n = tw_procpool_nnames(ps->pp);
    ps->hids = tw_calloc(n ? n : 1, sizeof *ps->hids);
    ps->nhids = n;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = tw_procpool_name(ps->pp, (unsigned)i, &len);
        char buf[TW_PROC_MAX_NAME + 1];
        memcpy(buf, name, len);
        buf[len] = '\0';
        ps->hids[i].ps = ps;
        ps->hids[i].hid = (unsigned)i;
        tw_handler_def_t def = {
            .name = buf,
            .flags = TW_HANDLER_ASYNC,
            .run = s_run,
            .cancel = s_cancel,
            .udata = &ps->hids[i],
            .n2s = (tw_procpool_flags(ps->pp, (unsigned)i) & TW_PP_F_N2S)
                       ? s_n2s
                       : NULL,
            .end = s_end,
        };
        int rc = tw_handlers_add(reg, &def);
        if (rc == TW_EEXIST) {
            snprintf(err, errlen,
                     "--proc: handler '%s' is also a built-in "
                     "or plugin handler",
                     buf);
            return rc;
        }
        if (rc != 0) {
            snprintf(err, errlen, "--proc: cannot register handler '%s': %s",
                     buf, tw_strerror(rc));
            return rc;
        }
    }
    return 0;
}

void
tw_procs_close(tw_procs_t *ps, void (*cb)(void *ud), void *ud)
{
    ps->closing = 1;
    ps->close_cb = cb;
    ps->close_ud = ud;
    tw_procpool_stop(ps->pp, uv_now(ps->loop));
    s_tick(ps);
}

void
tw_procs_free(tw_procs_t **ps_p)
{
    if (*ps_p) {
        s_free_all(*ps_p);
        *ps_p = NULL;
    }
}

void
tw_procs_kill(tw_procs_t *ps)
{
    tw_procpool_kill_all(ps->pp);
}

size_t
tw_procs_nhandlers(const tw_procs_t *ps)
{
    return tw_procpool_nnames(ps->pp);
}

void
tw_procs_stats(const tw_procs_t *ps, tw_procpool_stats_t *out)
{
    tw_procpool_stats(ps->pp, out);
}
