/*  client/cli/cmd_watch.c - `taskwheel watch`: a live view of the cluster.
 *
 *  Every interval (default 1 s) the command asks the broker what `status`,
 *  `workers`, `station list` and `group list` show, over one connection,
 *  and draws it as one screen: the workers with their slots in use and the
 *  age of their last message, the stations counted by state and listed,
 *  the tasks by state with the completion rate, and the groups of the pool
 *  that are at their limit. The screen is drawn with plain ANSI escape
 *  sequences on the terminal's alternate screen, each line cut to the
 *  terminal's width and the view cut to its height, both read again with
 *  TIOCGWINSZ before each drawing; SIGWINCH redraws at once.
 *
 *  The terminal is put in non-canonical mode without echo so that a single
 *  `q` quits; it is restored on the way out, whether by `q`, SIGINT or
 *  SIGTERM (the handlers only set a flag, the loop does the rest). When
 *  stdout is not a terminal, watch prints one snapshot (as one JSON line
 *  with --json) and exits.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"

#include "common/error.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Flags set by the signal handlers. */
static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_resized;

/* The terminal's settings before watch changed them. */
static struct termios s_saved;
static int s_raw;

/* The last answers of the broker; NULL where a request failed. */
typedef struct {
    json_t *status;
    json_t *workers;
    json_t *stations;
    json_t *groups;
    char err[160]; /* why `status` failed, or "" */
} s_snap_t;

/* Where lines go: the terminal (cut to its size) or plain stdout. */
typedef struct {
    int tty;
    int rows, cols;
    int row; /* lines written so far */
} s_view_t;

static void
s_on_signal(int sig)
{
    s_stop = sig;
}

static void
s_on_winch(int sig)
{
    (void)sig;
    s_resized = 1;
}

/* ------------------------------------------------------------------ */
/* Terminal                                                           */

static void
s_term_restore(void)
{
    if (s_raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &s_saved);
        s_raw = 0;
    }
    /* Show the cursor, leave the alternate screen. */
    fputs("\x1b[?25h\x1b[?1049l", stdout);
    fflush(stdout);
}

static void
s_term_setup(void)
{
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &s_saved) == 0) {
        struct termios t = s_saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) {
            s_raw = 1;
        }
    }
    /* The alternate screen, cursor hidden. */
    fputs("\x1b[?1049h\x1b[?25l", stdout);
    fflush(stdout);
}

static void
s_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal ends the wait for a key at once. */
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = s_on_winch;
    sigaction(SIGWINCH, &sa, NULL);
}

static void
s_size(s_view_t *v)
{
    struct winsize ws;
    v->rows = 24;
    v->cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
        ws.ws_col > 0) {
        v->rows = ws.ws_row;
        v->cols = ws.ws_col;
    }
}

/* ------------------------------------------------------------------ */
/* Lines                                                              */

/* Write one line: control characters become '?', and on the terminal the
 * line is cut to the width (never inside a UTF-8 character) and dropped
 * below the last row. */
static void
s_line(s_view_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_line(s_view_t *v, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    if (!v->tty) {
        puts(buf);
        v->row++;
        return;
    }
    if (v->row >= v->rows) {
        return;
    }
    size_t cut = strlen(buf);
    if (cut > (size_t)v->cols) {
        cut = (size_t)v->cols;
        while (cut > 0 && ((unsigned char)buf[cut] & 0xC0) == 0x80) {
            cut--;
        }
        buf[cut] = '\0';
    }
    /* The last row gets no newline, so the screen never scrolls. */
    printf("\x1b[%d;1H%s\x1b[K", v->row + 1, buf);
    v->row++;
}

/* The string member `key` of `o`, or "-". */
static const char *
s_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* The integer member `key` of `o`, or 0. */
static long long
s_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                           */

/* Ask the broker for everything the view shows. */
static void
s_fetch(const tw_cli_env_t *e, tw_client_t *c, int tmo, s_snap_t *s)
{
    json_decref(s->status);
    json_decref(s->workers);
    json_decref(s->stations);
    json_decref(s->groups);
    memset(s, 0, sizeof *s);
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_query(c, "status", tmo, &data, &len);
    if (rc != 0) {
        snprintf(s->err, sizeof s->err, "%s",
                 rc == TW_EUNREACH ? "broker unreachable" : tw_strerror(rc));
        return;
    }
    s->status = tw_cli_payload_json(data, len);
    free(data);
    data = NULL;
    if (tw_client_query(c, "workers", tmo, &data, &len) == 0) {
        s->workers = tw_cli_payload_json(data, len);
    }
    free(data);
    data = NULL;
    tw_station_req_t st;
    memset(&st, 0, sizeof st);
    st.op = "list";
    if (tw_client_station(c, &st, tmo, &data, &len) == 0) {
        s->stations = tw_cli_payload_json(data, len);
    }
    free(data);
    data = NULL;
    tw_pool_req_t g;
    memset(&g, 0, sizeof g);
    g.op = "list";
    g.pool = e->pool;
    if (tw_client_group(c, &g, tmo, &data, &len) == 0) {
        s->groups = tw_cli_payload_json(data, len);
    }
    free(data);
}

/* ------------------------------------------------------------------ */
/* Drawing                                                            */

static void
s_draw_workers(s_view_t *v, json_t *ws)
{
    int nw = 4;
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        int n = (int)strlen(s_str(w, "name"));
        nw = n > nw ? (n > 32 ? 32 : n) : nw;
    }
    s_line(v, "%-*s %-16s %9s %7s %8s %10s %s", nw, "NAME", "HOST",
           "SLOTS", "CREDIT", "HB AGE", "DONE", "STATE");
    if (json_array_size(ws) == 0) {
        s_line(v, "no workers connected");
    }
    json_array_foreach(ws, i, w) {
        char slots[32];
        snprintf(slots, sizeof slots, "%lld/%lld", s_int(w, "running"),
                 s_int(w, "slots"));
        /* "draining" or "resizing" while WORKER requests are under way
         * (brokers before them send no state). */
        const char *state = json_string_value(json_object_get(w, "state"));
        s_line(v, "%-*.*s %-16.16s %9s %7lld %7.1fs %10lld %.10s", nw, nw,
               s_str(w, "name"), s_str(w, "host"), slots, s_int(w, "credit"),
               (double)s_int(w, "age_ms") / 1000.0, s_int(w, "done"),
               state ? state : "");
    }
}

static void
s_draw_stations(s_view_t *v, json_t *sts, json_t *status)
{
    /* Counts by state, in the order states first appear. */
    const char *names[16];
    long long counts[16];
    size_t nstates = 0, i;
    json_t *s;
    json_array_foreach(sts, i, s) {
        const char *st = s_str(s, "state");
        size_t k = 0;
        while (k < nstates && strcmp(names[k], st) != 0) {
            k++;
        }
        if (k == nstates && nstates < 16) {
            names[nstates] = st;
            counts[nstates++] = 0;
        }
        if (k < nstates) {
            counts[k]++;
        }
    }
    char buf[512];
    size_t off = (size_t)snprintf(buf, sizeof buf, "stations %lld",
                                  sts ? (long long)json_array_size(sts)
                                      : s_int(status, "stations"));
    for (size_t k = 0; k < nstates && off < sizeof buf; k++) {
        off += (size_t)snprintf(buf + off, sizeof buf - off, "  %s %lld",
                                names[k], counts[k]);
    }
    if (off < sizeof buf) {
        snprintf(buf + off, sizeof buf - off, "  iterations %lld",
                 s_int(status, "iterations"));
    }
    s_line(v, "%s", buf);
    if (json_array_size(sts) == 0) {
        return;
    }
    s_line(v, "  %-24s %-12s %-16s %10s  %s", "ID", "STATE", "WORKER",
           "ITERATIONS", "LAST ERROR");
    json_array_foreach(sts, i, s) {
        json_t *wk = json_object_get(s, "worker");
        char *wt = wk && !json_is_null(wk)
                       ? (json_is_string(wk) ? strdup(json_string_value(wk))
                                             : tw_json_dumps(wk))
                       : NULL;
        s_line(v, "  %-24.24s %-12.12s %-16.16s %10lld  %s",
               s_str(s, "station"), s_str(s, "state"), wt ? wt : "-",
               s_int(s, "iterations"), s_str(s, "last_error"));
        free(wt);
    }
}

static void
s_draw_groups(s_view_t *v, json_t *gs)
{
    char buf[512];
    size_t off = (size_t)snprintf(buf, sizeof buf, "groups at limit:");
    int any = 0;
    size_t i;
    json_t *g;
    json_array_foreach(gs, i, g) {
        json_t *lim = json_object_get(g, "limit");
        if (!json_is_integer(lim) ||
            s_int(g, "running") < json_integer_value(lim)) {
            continue;
        }
        any = 1;
        if (off < sizeof buf) {
            off += (size_t)snprintf(buf + off, sizeof buf - off,
                                    " %s (%lld/%lld, %lld pending)",
                                    s_str(g, "group"), s_int(g, "running"),
                                    (long long)json_integer_value(lim),
                                    s_int(g, "pending"));
        }
    }
    s_line(v, "%s%s", buf, any ? "" : " none");
}

static void
s_draw(const tw_cli_env_t *e, s_view_t *v, const s_snap_t *s, double secs)
{
    v->row = 0;
    if (v->tty) {
        s_size(v);
    }
    char when[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) {
        strftime(when, sizeof when, "%H:%M:%S", &tm);
    }
    s_line(v, "taskwheel watch  %s  %s  every %gs%s", e->broker, when, secs,
           v->tty ? "  (q quits)" : "");
    if (!s->status) {
        s_line(v, "%s", s->err[0] ? s->err : "no answer");
    } else {
        json_t *st = s->status;
        s_line(v, "%s", "");
        s_line(v, "workers %lld  slots %lld/%lld  clients %lld", s_int(st,
               "workers"), s_int(st, "running"), s_int(st, "slots"),
               s_int(st, "clients"));
        s_line(v, "tasks queued %lld  running %lld  completed %lld  "
               "failed %lld  cancelled %lld  requeued %lld  rate %.1f/s",
               s_int(st, "queued"), s_int(st, "running"),
               s_int(st, "completed"), s_int(st, "failed"),
               s_int(st, "cancelled"), s_int(st, "requeued"),
               json_number_value(json_object_get(st, "rate")));
        s_line(v, "%s", "");
        s_draw_workers(v, s->workers);
        s_line(v, "%s", "");
        s_draw_stations(v, s->stations, st);
        s_line(v, "%s", "");
        s_draw_groups(v, s->groups);
    }
    if (v->tty) {
        /* Clear whatever is left below from a longer or larger view. */
        if (v->row < v->rows) {
            printf("\x1b[%d;1H\x1b[J", v->row + 1);
        }
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* The command                                                        */

/* One snapshot, for a stdout that is not a terminal. */
static int
s_once(const tw_cli_env_t *e, tw_client_t *c, double secs)
{
    s_snap_t s;
    memset(&s, 0, sizeof s);
    s_fetch(e, c, e->timeout_ms, &s);
    int code = TW_CLI_OK;
    if (!s.status) {
        code = s.err[0] && strcmp(s.err, "broker unreachable") == 0
                   ? tw_cli_unreachable(e)
                   : tw_cli_fail(TW_CLI_FAIL, "status: %s", s.err);
    } else if (e->json) {
        json_t *all = json_pack("{s:O, s:O, s:O, s:O}", "status", s.status,
                                "workers",
                                s.workers ? s.workers : json_null(),
                                "stations",
                                s.stations ? s.stations : json_null(),
                                "groups", s.groups ? s.groups : json_null());
        tw_cli_print_json(all);
    } else {
        s_view_t v = {0, 0, 0, 0};
        s_draw(e, &v, &s, secs);
    }
    json_decref(s.status);
    json_decref(s.workers);
    json_decref(s.stations);
    json_decref(s.groups);
    return code;
}

/* Wait up to `ms` for a key; returns 1 if `q` was pressed. */
static int
s_wait_key(int ms)
{
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    if (!s_raw) {
        poll(NULL, 0, ms);
        return 0;
    }
    if (poll(&p, 1, ms) <= 0) {
        return 0;
    }
    char buf[64];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'q' || buf[i] == 'Q') {
            return 1;
        }
    }
    return 0;
}

static int
s_live(const tw_cli_env_t *e, tw_client_t *c, double secs)
{
    /* A slow broker must not make `q` wait long. */
    int tmo = e->timeout_ms < 2000 ? e->timeout_ms : 2000;
    s_view_t v = {1, 0, 0, 0};
    s_snap_t s;
    memset(&s, 0, sizeof s);
    s_signals();
    s_term_setup();
    int quit = 0;
    while (!quit && !s_stop) {
        s_fetch(e, c, tmo, &s);
        s_draw(e, &v, &s, secs);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double left = secs * 1000.0 -
                          ((double)(t1.tv_sec - t0.tv_sec) * 1000.0 +
                           (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
            if (quit || s_stop || left <= 0) {
                break;
            }
            quit = s_wait_key((int)left + 1);
            if (s_resized) {
                s_resized = 0;
                s_draw(e, &v, &s, secs);
            }
        }
    }
    s_term_restore();
    json_decref(s.status);
    json_decref(s.workers);
    json_decref(s.stations);
    json_decref(s.groups);
    return s_stop ? 128 + (int)s_stop : TW_CLI_OK;
}

static int
s_cmd_watch(const tw_cli_env_t *e)
{
    double secs = 1.0;
    tw_cli_words_t w = tw_cli_words(e, 1);
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        const char *val;
        int r = tw_cli_word_flag(&w, "--interval", &val);
        if (r < 0 || (r > 0 && (tw_cli_secs(val, 86400, &secs) != 0 ||
                                secs < 0.1))) {
            return tw_cli_usage("--interval needs a number of seconds "
                                "(at least 0.1)");
        }
        if (r == 0) {
            return tw_cli_is_flag(&w)
                       ? tw_cli_usage("watch: unknown option '%s'", a)
                       : tw_cli_usage("watch takes no arguments; "
                                      "unexpected '%s'", a);
        }
    }
    int code;
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        return code;
    }
    code = isatty(STDOUT_FILENO) ? s_live(e, c, secs) : s_once(e, c, secs);
    tw_client_destroy(&c);
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_watch[] = {
    {"watch",
     "",
     "[--interval S]",
     "A live full-screen view of workers, stations, tasks and groups\n"
     "(q quits); one snapshot when stdout is not a terminal.",
     s_cmd_watch},
    {NULL, NULL, NULL, NULL, NULL},
};
