/*  client/cli/cmd_map.c - `taskwheel map`: a map over JSON lines.
 *
 *      map HANDLER [--input FILE|-] [--concurrency K] [--group G]
 *                  [--star | --kw] [--ordered]
 *
 *  Each non-blank input line is one item: a JSON value that becomes the
 *  task's args (--star: an array, the positional arguments; --kw: an
 *  object, the keyword arguments). The items go through tw_client_map /
 *  starmap / kwmap, so the group's limit is K, the lines are read only as
 *  room appears (never more than 2K tasks in flight: a huge or endless
 *  input runs in bounded memory), and a line that is not valid JSON of the
 *  right shape is skipped and reported without stopping the rest (S53).
 *
 *  Output, one JSON line per item on stdout: the result, or {"error":
 *  "..."} for a failure (exception, timeout, cancel, refusal, skip). In
 *  completion order by default; with --ordered in input order, holding
 *  back only the outcomes that finished before an earlier item (at most
 *  the items in flight plus the skipped lines among them). Exit 1 if any
 *  item failed, 3 if the broker stops answering.
 *
 *  When stderr is a terminal a one-line progress bar is redrawn there at
 *  most ten times a second: done/total (total known for a regular file,
 *  counted first, or once the input ends), rate, ETA and failures. Nothing
 *  of it is written when stderr is not a terminal.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"

#include "client/cli/json.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "common/util.h"
#include "proto/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_CONCURRENCY 100000
#define S_BAR_EVERY_MS 100
#define S_BAR_WIDTH 24

typedef struct {
    FILE *in;
    int star;
    int kw;
    int ordered;
    char *line;
    size_t cap;
    uint64_t lineno;    /* lines read */
    void *item;         /* the last item's msgpack */
    char skip[512];     /* why the last item was skipped */
    int eof;
    uint64_t produced;  /* items handed out, skipped ones included */
    uint64_t outcomes;  /* items with their output line */
    uint64_t failures;
    int64_t total;      /* -1: unknown yet */
    tw_idmap_t held;    /* --ordered: index + 1 -> output line */
    uint64_t next_out;  /* --ordered: next index to print */
    int bar;            /* draw the progress bar */
    uint64_t t0;
    uint64_t bar_at;
} s_map_t;

/* ------------------------------------------------------------------ */
/* Input                                                              */

/* 1 if the line holds only white space. */
static int
s_blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            return 0;
        }
    }
    return 1;
}

/* Non-blank lines of a regular file, then back to its start; -1 when the
 * input is not a regular file. */
static int64_t
s_count(FILE *in)
{
    struct stat st;
    if (fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode)) {
        return -1;
    }
    long start = ftell(in);
    char *line = NULL;
    size_t cap = 0;
    int64_t n = 0;
    while (getline(&line, &cap, in) >= 0) {
        n += !s_blank(line);
    }
    free(line);
    if (start < 0 || fseek(in, start, SEEK_SET) != 0) {
        return -1;
    }
    clearerr(in);
    return n;
}

/* The map's iterator: the next non-blank line as msgpack. */
static int
s_next(void *arg, const void **item, size_t *len)
{
    s_map_t *m = arg;
    free(m->item);
    m->item = NULL;
    for (;;) {
        if (m->eof || getline(&m->line, &m->cap, m->in) < 0) {
            if (!m->eof) {
                m->eof = 1;
                m->total = (int64_t)m->produced;
            }
            return 0;
        }
        m->lineno++;
        if (!s_blank(m->line)) {
            break;
        }
    }
    m->produced++;
    json_error_t jerr;
    json_t *v = json_loads(m->line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v) {
        snprintf(m->skip, sizeof m->skip, "line %" PRIu64 ": not JSON: %s",
                 m->lineno, jerr.text);
        return TW_EINVAL;
    }
    if ((m->star && !json_is_array(v)) || (m->kw && !json_is_object(v))) {
        snprintf(m->skip, sizeof m->skip, "line %" PRIu64 ": %s",
                 m->lineno, m->star ? "--star needs a JSON array"
                                    : "--kw needs a JSON object");
        json_decref(v);
        return TW_EINVAL;
    }
    json_decref(v);
    char err[256];
    int rc = tw_json_to_msgpack(m->line, &m->item, len, err, sizeof err);
    if (rc != 0) {
        snprintf(m->skip, sizeof m->skip, "line %" PRIu64 ": %s", m->lineno,
                 err);
        return rc;
    }
    *item = m->item;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Output                                                             */

static void
s_bar(s_map_t *m, int force)
{
    if (!m->bar) {
        return;
    }
    uint64_t now = tw_now_ms();
    if (!force && now - m->bar_at < S_BAR_EVERY_MS) {
        return;
    }
    m->bar_at = now;
    double secs = (double)(now - m->t0) / 1000.0;
    double rate = secs > 0 ? (double)m->outcomes / secs : 0;
    char line[160];
    if (m->total >= 0) {
        int64_t total = m->total > 0 ? m->total : 1;
        int fill = (int)((int64_t)m->outcomes * S_BAR_WIDTH / total);
        char bar[S_BAR_WIDTH + 1];
        for (int i = 0; i < S_BAR_WIDTH; i++) {
            bar[i] = i < fill ? '#' : '-';
        }
        bar[S_BAR_WIDTH] = '\0';
        double left = (double)(m->total - (int64_t)m->outcomes);
        snprintf(line, sizeof line,
                 "[%s] %" PRIu64 "/%" PRId64 "  %.0f/s  ETA %.0fs  "
                 "failures %" PRIu64,
                 bar, m->outcomes, m->total, rate,
                 rate > 0 ? left / rate : 0.0, m->failures);
    } else {
        snprintf(line, sizeof line,
                 "%" PRIu64 " done  %.0f/s  failures %" PRIu64, m->outcomes,
                 rate, m->failures);
    }
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

/* Print or hold the output of item `index`; takes `v`. */
static void
s_out(s_map_t *m, uint64_t index, json_t *v, int failed)
{
    m->outcomes++;
    m->failures += failed != 0;
    char *s = v ? tw_json_dumps(v) : NULL;
    json_decref(v);
    if (!s) {
        s = strdup("{\"error\":\"out of memory\"}");
    }
    if (!m->ordered) {
        puts(s);
        free(s);
    } else {
        tw_idmap_put(&m->held, index + 1, s);
        while ((s = tw_idmap_del(&m->held, m->next_out + 1)) != NULL) {
            puts(s);
            free(s);
            m->next_out++;
        }
    }
    if (m->bar) {
        fflush(stdout);
    }
    s_bar(m, 0);
}

static json_t *
s_error(const char *msg)
{
    json_t *s = json_string(msg);
    return json_pack("{s:o}", "error", s ? s : json_string("?"));
}

static void
s_on_event(void *arg, const tw_event_t *ev)
{
    s_map_t *m = arg;
    const tw_result_t *r = ev->result;
    switch (ev->kind) {
    case TW_EV_RESULT:
        s_out(m, ev->index, tw_cli_payload_json(r->result, r->result_len),
              0);
        break;
    case TW_EV_EXCEPTION: {
        char buf[128];
        const char *what = r->error;
        if (!what) {
            snprintf(buf, sizeof buf, "task %s",
                     tw_proto_state_name(r->state));
            what = buf;
        }
        s_out(m, ev->index, s_error(what), 1);
        break;
    }
    case TW_EV_CANCELLED:
        s_out(m, ev->index, s_error("cancelled"), 1);
        break;
    case TW_EV_REFUSED:
        s_out(m, ev->index,
              s_error(ev->msg && *ev->msg ? ev->msg : tw_strerror(ev->err)),
              1);
        break;
    case TW_EV_SKIPPED:
        s_out(m, ev->index,
              s_error(m->skip[0] ? m->skip : tw_strerror(ev->err)), 1);
        m->skip[0] = '\0';
        break;
    default:
        break;
    }
}

static void
s_free_held(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    free(val);
}

/* ------------------------------------------------------------------ */
/* The command                                                        */

/* What the words of `map` say (the flags of s_map_t aside). */
typedef struct {
    const char *handler;
    const char *input; /* a file name, or "-" */
    const char *group; /* or NULL */
    int64_t conc;
} s_args_t;

/* One flag of `map`, the current word of `w`: 1 if taken, 0 if not one,
 * or a usage exit code (> 1). */
static int
s_flag(tw_cli_words_t *w, s_args_t *x, s_map_t *m)
{
    const char *a = w->argv[w->i], *val;
    int r;
    if (strcmp(a, "--star") == 0) {
        m->star = 1;
    } else if (strcmp(a, "--kw") == 0) {
        m->kw = 1;
    } else if (strcmp(a, "--ordered") == 0) {
        m->ordered = 1;
    } else if ((r = tw_cli_word_flag(w, "--input", &val)) != 0) {
        if (r < 0 || !*val) {
            return tw_cli_usage("--input needs a file name or -");
        }
        x->input = val;
    } else if ((r = tw_cli_word_flag(w, "--concurrency", &val)) != 0) {
        if (r < 0 || tw_cli_int(val, 1, S_MAX_CONCURRENCY, &x->conc) != 0) {
            return tw_cli_usage("--concurrency needs a number from 1 to %d",
                                S_MAX_CONCURRENCY);
        }
    } else if ((r = tw_cli_word_flag(w, "--group", &val)) != 0) {
        if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
            return tw_cli_usage("--group needs a group name of 1 to %d "
                                "bytes", TW_PROTO_MAX_NAME);
        }
        x->group = val;
    } else {
        return 0;
    }
    return 1;
}

/* Read the words of `map` into *x and the flags of *m. Returns -1 or an
 * exit code. */
static int
s_parse(const tw_cli_env_t *e, s_args_t *x, s_map_t *m)
{
    tw_cli_words_t w = tw_cli_words(e, 1);
    const char *a;
    int r;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            if (x->handler) {
                return tw_cli_usage("map takes one HANDLER; unexpected '%s'",
                                    a);
            }
            x->handler = a;
        } else if ((r = s_flag(&w, x, m)) == 0) {
            return tw_cli_usage("map: unknown option '%s'", a);
        } else if (r != 1) {
            return r;
        }
    }
    if (!x->handler) {
        return tw_cli_usage("map needs a HANDLER");
    }
    if (strlen(x->handler) == 0 || strlen(x->handler) > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("handler name must be 1 to %d bytes",
                            TW_PROTO_MAX_NAME);
    }
    if (m->star && m->kw) {
        return tw_cli_usage("map takes --star or --kw, not both");
    }
    return -1;
}

/* Start the map of x->handler over m's input as the group `name`.
 * Returns -1 or an exit code. */
static int
s_start(const tw_cli_env_t *e, tw_client_t *c, const s_args_t *x,
        s_map_t *m, char *name, size_t len)
{
    tw_task_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.handler = x->handler;
    spec.pool = e->pool;
    tw_map_t map = {&spec, s_next, m, (uint32_t)x->conc, x->group};
    int rc = m->star ? tw_client_starmap(c, &map, name, len, e->timeout_ms)
             : m->kw ? tw_client_kwmap(c, &map, name, len, e->timeout_ms)
                     : tw_client_map(c, &map, name, len, e->timeout_ms);
    return rc != 0 ? tw_cli_lib_error(e, c, "map", rc) : -1;
}

/* Print outcomes until the input ended and every item has its line.
 * While nothing arrives, make sure the broker is still there. Returns an
 * exit code: 1 if an item failed. */
static int
s_drain(const tw_cli_env_t *e, tw_client_t *c, s_map_t *m,
        const char *name)
{
    int code = TW_CLI_OK;
    while (!(m->eof && m->outcomes == m->produced)) {
        int rc = tw_client_poll(c, e->timeout_ms);
        if (rc == 0 && !(m->eof && m->outcomes == m->produced)) {
            rc = tw_client_ping(c, e->timeout_ms);
        }
        if (rc < 0) {
            code = tw_cli_lib_error(e, c, "map", rc);
            break;
        }
        s_bar(m, 0);
    }
    if (m->bar) {
        s_bar(m, 1);
        fputs("\r\033[K", stderr);
    }
    if (code == TW_CLI_OK && m->failures > 0) {
        code = tw_cli_fail(TW_CLI_FAIL, "%" PRIu64 " of %" PRIu64
                           " items failed (group %s)", m->failures,
                           m->produced, name);
    }
    return code;
}

static int
s_cmd_map(const tw_cli_env_t *e)
{
    s_args_t x = {NULL, "-", NULL, 1};
    s_map_t m;
    memset(&m, 0, sizeof m);
    int code = s_parse(e, &x, &m);
    if (code >= 0) {
        return code;
    }
    m.in = strcmp(x.input, "-") == 0 ? stdin : fopen(x.input, "r");
    if (!m.in) {
        return tw_cli_fail(TW_CLI_FAIL, "cannot read %s: %s", x.input,
                           strerror(errno));
    }
    m.total = s_count(m.in);
    m.bar = isatty(STDERR_FILENO);
    m.t0 = tw_now_ms();
    tw_idmap_init(&m.held);

    tw_client_t *c = tw_cli_connect(e, &code);
    if (c) {
        char name[TW_CLIENT_NAME_SIZE];
        tw_client_on_event(c, s_on_event, &m);
        code = s_start(e, c, &x, &m, name, sizeof name);
        if (code < 0) {
            code = s_drain(e, c, &m, name);
        }
    }
    tw_client_destroy(&c);
    tw_idmap_each(&m.held, s_free_held, NULL);
    tw_idmap_free(&m.held);
    free(m.line);
    free(m.item);
    if (m.in != stdin) {
        fclose(m.in);
    }
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_map[] = {
    {"map",
     "HANDLER",
     "[--input FILE|-] [--concurrency K] [--group G]\n"
     "[--star|--kw] [--ordered]",
     "Run HANDLER once per input line (a JSON args value; --star: an\n"
     "array of positional args; --kw: an object), at most K at once\n"
     "(default 1). Prints each result as a JSON line, failures as\n"
     "{\"error\": ...}, in completion order or, with --ordered, input\n"
     "order; exit 1 if any failed. A progress bar goes to stderr when\n"
     "it is a terminal.",
     s_cmd_map},
    {NULL, NULL, NULL, NULL, NULL},
};
