/*  client/cli/cmd_station.c - `taskwheel station add|list|show|pause|
 *  continue|stop|cancel|remove|send|tail|rebalance`.
 *
 *  Every subcommand but add and tail is one STATION request whose
 *  operation is the subcommand's name (a row of s_st_commands: how
 *  many positional words, the reply's JSON type and how to show it);
 *  add parses its flags into a tw_station_req_t; tail subscribes to
 *  "s2n.<ID>" (sub.h) after checking that the station exists.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "client/cli/sub.h"
#include "client/internal.h"
#include "common/error.h"
#include "proto/proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The values `station add` accepts for its enumerated flags. */
static const char *const s_next_modes[] = {"same", "result", "handler", NULL};
static const char *const s_placements[] = {"any", "prefer", "pinned", NULL};
static const char *const s_restarts[] = {"never", "on-failure", "always",
                                         NULL};

/* Keys of a station summary, in the order `station show` prints them;
 * keys the broker adds later follow. */
static const char *const s_station_keys[] = {
    "station",   "handler", "state",      "wanted",     "worker",
    "slot",      "epoch",   "iterations", "last_error", "checkpoint",
    "placement", "restart", "restarts",   "n2s_queued", "n2s_dropped",
    "code",      "tags",    NULL};

/* The value of an enumerated flag (`r` what tw_cli_flag said): one of
 * `set`, stored in *out. Returns -1, or the usage error `msg`. */
static int
s_st_enum(int r, const char *val, const char *const *set, const char *msg,
          const char **out)
{
    if (r < 0 || !tw_cli_one_of(val, set)) {
        return tw_cli_usage("%s", msg);
    }
    *out = val;
    return -1;
}

/* Check a station ID given on the command line. Returns -1 or an exit
 * code. */
static int
s_st_check_id(const char *sub, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("station %s: a station ID is 1 to %d bytes", sub,
                            TW_PROTO_MAX_NAME);
    }
    return -1;
}

/* Collect exactly `want` positional words after `station SUB`, described
 * by `synopsis` in errors; any flag is an error. Returns -1 or an exit
 * code. */
static int
s_st_positional(const tw_cli_env_t *o, const char *sub, const char *synopsis,
                const char **pos, int want)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    int n = 0;
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        if (tw_cli_is_flag(&w)) {
            return tw_cli_usage("station %s: unknown option '%s'", sub, a);
        }
        if (n == want) {
            return tw_cli_usage("usage: taskwheel station %s%s%s; "
                                "unexpected '%s'",
                                sub, *synopsis ? " " : "", synopsis, a);
        }
        pos[n++] = a;
    }
    if (n < want) {
        return tw_cli_usage("usage: taskwheel station %s %s", sub, synopsis);
    }
    return want > 0 ? s_st_check_id(sub, pos[0]) : -1;
}

/* Split "k=v,k2=v2" into tags that point into *buf, a copy of `text` the
 * caller frees. Empty elements are skipped. Returns -1 or an exit code. */
static int
s_st_tags(const char *text, char **buf, tw_station_tag_t *tags, size_t *n)
{
    *n = 0;
    *buf = strdup(text);
    if (!*buf) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    char *p = *buf;
    while (p) {
        char *end = strchr(p, ',');
        if (end) {
            *end = '\0';
        }
        if (*p) {
            char *eq = strchr(p, '=');
            size_t klen = eq ? (size_t)(eq - p) : 0;
            if (!eq || klen == 0 || klen > TW_PROTO_MAX_NAME ||
                strlen(eq + 1) > TW_PROTO_MAX_NAME) {
                return tw_cli_usage("--tags: '%s' is not key=value (1-%d "
                                    "byte key, value up to %d bytes)",
                                    p, TW_PROTO_MAX_NAME, TW_PROTO_MAX_NAME);
            }
            *eq = '\0';
            for (size_t i = 0; i < *n; i++) {
                if (strcmp(tags[i].key, p) == 0) {
                    return tw_cli_usage("--tags: key '%s' given twice", p);
                }
            }
            if (*n == TW_PROTO_MAX_TAGS) {
                return tw_cli_usage("--tags: more than %d tags",
                                    TW_PROTO_MAX_TAGS);
            }
            tags[*n].key = p;
            tags[*n].value = eq + 1;
            (*n)++;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

/* tw_cli_json_arg, also refusing more msgpack than a request may carry.
 * Returns -1 and sets *out (free()) and *len, or an exit code. */
static int
s_st_json_arg(const char *what, const char *text, void **out, size_t *len)
{
    int code = tw_cli_json_arg(what, text, out, len);
    if (code >= 0) {
        return code;
    }
    if (*len > TW__CLIENT_MAX_ARGS) {
        free(*out);
        *out = NULL;
        return tw_cli_usage("%s is too big (%zu bytes of msgpack, limit "
                            "%u)",
                            what, *len, TW__CLIENT_MAX_ARGS);
    }
    return -1;
}

/* Run one station request and return its reply data as JSON, or NULL
 * with *code set: 1 for a broker error, 3 when it did not answer. */
static json_t *
s_st_request(const tw_cli_env_t *o, const tw_station_req_t *req, int *code)
{
    char *id = req->sid ? tw_cli_clean(req->sid) : NULL;
    char what[64 + TW_PROTO_MAX_NAME];
    snprintf(what, sizeof what, "station %s%s%s", req->op, id ? " " : "",
             id ? id : "");
    free(id);
    return tw_cli_request(o, what, TW_CLI_REQ_STATION, req, code);
}

/* Human text of the member `key` of `obj`: "-" when absent or null. */
static char *
s_st_member(json_t *obj, const char *key)
{
    return tw_cli_cell(json_is_object(obj) ? json_object_get(obj, key)
                                           : NULL);
}

/* An tw_cli_human_fn for `station add` (`arg` the request): where the station
 * went. */
static int
s_st_print_add(json_t *v, const void *arg)
{
    const tw_station_req_t *req = arg;
    char *id = tw_cli_clean(req->sid);
    const char *st = json_string_value(json_object_get(v, "state"));
    if (st && strcmp(st, "assigned") == 0) {
        char *wk = s_st_member(v, "worker");
        char *slot = s_st_member(v, "slot");
        printf("station %s assigned to worker %s slot %s\n", id ? id : "?",
               wk ? wk : "?", slot ? slot : "?");
        free(wk);
        free(slot);
    } else if (st) {
        char *state = s_st_member(v, "state");
        json_t *reason = json_object_get(v, "reason");
        char *why = reason && !json_is_null(reason) ? tw_cli_text(reason)
                                                    : NULL;
        printf("station %s %s%s%s\n", id ? id : "?", state ? state : "?",
               why ? ": " : "", why ? why : "");
        free(state);
        free(why);
    } else {
        printf("station %s added\n", id ? id : "?");
    }
    free(id);
    return TW_CLI_OK;
}

/* What the words of `station add` say. */
typedef struct {
    const char *pos[3]; /* ID, HANDLER, ARGS-JSON */
    int npos;
    tw_station_req_t req;
    tw_station_tag_t tags[TW_PROTO_MAX_TAGS];
    char *tagbuf; /* the --tags text req.tags points into */
    void *args;   /* ARGS-JSON as msgpack */
} s_add_t;

/* One flag of `station add`, the current word of `w`, into x->req.
 * Returns -1 if taken, 0 if it is none of them, or a usage exit code. */
static int
s_add_flag(tw_cli_words_t *w, s_add_t *x)
{
    tw_station_req_t *req = &x->req;
    const char *val = NULL;
    int r;
    if ((r = tw_cli_word_flag(w, "--next", &val)) != 0) {
        return s_st_enum(r, val, s_next_modes,
                         "--next must be same, result or handler",
                         &req->next);
    }
    if ((r = tw_cli_word_flag(w, "--interval", &val)) != 0) {
        return tw_cli_flag_ms("--interval", r, val, &req->interval_ms);
    }
    if ((r = tw_cli_word_flag(w, "--timeout", &val)) != 0) {
        return tw_cli_flag_ms("--timeout", r, val, &req->timeout_ms);
    }
    if ((r = tw_cli_word_flag(w, "--code", &val)) != 0) {
        if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
            return tw_cli_usage("--code needs a station code of 1 to %d "
                                "bytes",
                                TW_PROTO_MAX_NAME);
        }
        req->code = val;
        return -1;
    }
    if ((r = tw_cli_word_flag(w, "--tags", &val)) != 0) {
        if (r < 0) {
            return tw_cli_usage("--tags needs key=value,...");
        }
        free(x->tagbuf);
        req->tags = x->tags;
        return s_st_tags(val, &x->tagbuf, x->tags, &req->ntags);
    }
    if ((r = tw_cli_word_flag(w, "--placement", &val)) != 0) {
        return s_st_enum(r, val, s_placements,
                         "--placement must be any, prefer or pinned",
                         &req->placement);
    }
    if ((r = tw_cli_word_flag(w, "--restart", &val)) != 0) {
        return s_st_enum(r, val, s_restarts,
                         "--restart must be never, on-failure or always",
                         &req->restart);
    }
    return 0;
}

/* Read the words of `station add` into *x. Returns -1 or an exit code. */
static int
s_add_parse(const tw_cli_env_t *o, const char *sub, s_add_t *x)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    int code = -1;
    const char *a;
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            if (x->npos == 3) {
                code = tw_cli_usage("station add takes ID HANDLER and at "
                                    "most one ARGS-JSON; unexpected '%s'",
                                    a);
            } else {
                x->pos[x->npos++] = a;
            }
        } else if ((code = s_add_flag(&w, x)) == 0) {
            code = tw_cli_usage("station add: unknown option '%s'", a);
        }
    }
    if (code < 0 && x->npos < 2) {
        code = tw_cli_usage("usage: taskwheel station add ID HANDLER "
                            "[ARGS-JSON] [flags]");
    }
    if (code < 0) {
        code = s_st_check_id(sub, x->pos[0]);
    }
    if (code < 0 && (!*x->pos[1] || strlen(x->pos[1]) > TW_PROTO_MAX_NAME)) {
        code = tw_cli_usage("a handler name is 1 to %d bytes",
                            TW_PROTO_MAX_NAME);
    }
    if (code < 0 && x->pos[2]) {
        code = s_st_json_arg("ARGS-JSON", x->pos[2], &x->args,
                             &x->req.args_len);
        x->req.args = x->args;
    }
    x->req.sid = x->pos[0];
    x->req.handler = x->pos[1];
    return code;
}

static int
s_st_add(const tw_cli_env_t *o, const char *sub)
{
    s_add_t x;
    memset(&x, 0, sizeof x);
    x.req.op = "add";
    int code = s_add_parse(o, sub, &x);
    if (code < 0) {
        json_t *v = s_st_request(o, &x.req, &code);
        code = tw_cli_reply(o, v, code, -1, s_st_print_add, &x.req);
    }
    free(x.tagbuf);
    free(x.args);
    return code;
}

/* pause, continue, stop, cancel and remove: {sid} -> {station, state}.
 * The state is printed alone when it is what the operation asked for
 * ("station s1 paused"), else with the request ("station s1 assigned
 * (pause requested)"): a control reaches the worker at its next
 * iteration boundary, so the broker may still report the old state. */
static int
s_st_print_control(json_t *v, const void *arg)
{
    static const char *const wanted[][2] = {{"pause", "paused"},
                                            {"continue", "running"},
                                            {"stop", "stopped"},
                                            {"cancel", "cancelled"},
                                            {"remove", "removed"}};
    const tw_station_req_t *req = arg;
    const char *sub = req->op;
    char *id = tw_cli_clean(req->sid);
    json_t *state = json_object_get(v, "state");
    char *st = json_is_string(state) ? tw_cli_text(state) : NULL;
    const char *want = NULL;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (strcmp(sub, wanted[i][0]) == 0) {
            want = wanted[i][1];
        }
    }
    if (st && want && strcmp(st, want) == 0) {
        printf("station %s %s\n", id ? id : "?", st);
    } else if (st) {
        printf("station %s %s (%s requested)\n", id ? id : "?", st, sub);
    } else {
        printf("station %s: %s sent\n", id ? id : "?", sub);
    }
    free(st);
    free(id);
    return TW_CLI_OK;
}

/* An tw_cli_human_fn: the stations as a table. */
static int
s_st_print_list(json_t *v, const void *arg)
{
    static const char *const keys[] = {"station", "handler",    "state",
                                       "worker",  "iterations", "last_error"};
    static const char *const titles[] = {
        "ID", "HANDLER", "STATE", "WORKER", "ITERATIONS", "LAST ERROR"};
    static const tw_cli_listing_t listing = {
        keys, titles, sizeof keys / sizeof keys[0], "no stations"};
    (void)arg;
    return tw_cli_print_listing(v, &listing);
}

/* One "key: value" line of `station show`. The checkpoint is always
 * JSON (a string checkpoint keeps its quotes); tags read k=v,k2=v2. */
static void
s_st_show_line(void *arg, const char *key, json_t *v)
{
    (void)arg;
    char *text = NULL;
    if (strcmp(key, "checkpoint") == 0 && v && !json_is_null(v)) {
        char *j = tw_json_dumps(v);
        text = j ? tw_cli_clean(j) : NULL;
        free(j);
    } else if (strcmp(key, "tags") == 0 && json_is_object(v) &&
               json_object_size(v) > 0) {
        json_t *parts = json_array();
        for (void *it = json_object_iter(v); it;
             it = json_object_iter_next(v, it)) {
            char *val = tw_cli_text(json_object_iter_value(it));
            size_t n = strlen(json_object_iter_key(it)) +
                       (val ? strlen(val) : 0) + 2;
            char *kv = malloc(n);
            if (kv) {
                snprintf(kv, n, "%s=%s", json_object_iter_key(it),
                         val ? val : "");
                json_array_append_new(parts, json_string(kv));
            }
            free(kv);
            free(val);
        }
        text = tw_cli_text(parts);
        json_decref(parts);
    } else if (json_is_object(v) && json_object_size(v) == 0) {
        text = strdup("-");
    } else {
        text = tw_cli_cell(v);
    }
    char *k = tw_cli_clean(key);
    printf("%s: %s\n", k ? k : "?", text ? text : "?");
    free(k);
    free(text);
}

/* An tw_cli_human_fn: a station summary as "key: value" lines. */
static int
s_st_print_show(json_t *v, const void *arg)
{
    (void)arg;
    tw_cli_each_member(v, s_station_keys, s_st_show_line, NULL);
    return TW_CLI_OK;
}

/* An tw_cli_human_fn for `station send`: the message's sequence number. */
static int
s_st_print_send(json_t *v, const void *arg)
{
    const tw_station_req_t *req = arg;
    char *id = tw_cli_clean(req->sid);
    char *seq = s_st_member(v, "seq");
    int queued = json_is_true(json_object_get(v, "queued"));
    printf("station %s: message %s %s\n", id ? id : "?", seq ? seq : "?",
           queued ? "queued" : "sent");
    free(seq);
    free(id);
    return TW_CLI_OK;
}

/* An tw_cli_human_fn for `station rebalance`: how many stations moved. */
static int
s_st_print_rebalance(json_t *v, const void *arg)
{
    (void)arg;
    json_t *moved = json_object_get(v, "moved");
    char *n = tw_cli_cell(moved);
    printf("moved %s station%s\n", n ? n : "?",
           json_is_integer(moved) && json_integer_value(moved) == 1 ? ""
                                                                    : "s");
    free(n);
    return TW_CLI_OK;
}

/* `station tail`: the s2n messages of one station, until it ends. */
typedef struct {
    const tw_cli_env_t *o;
    const char *id;
    char topic[4 + TW_PROTO_MAX_NAME + 1];  /* "s2n.<ID>" */
    char events[8 + TW_PROTO_MAX_NAME + 2]; /* "station.<ID>." */
    size_t tlen, elen;
    int json;
} s_tail_t;

/* Whether a station event ends the tail. stopped, cancelled and removed
 * always do. After done or failed the restart policy may already have made
 * the station pending again (the broker decides in the same turn, before it
 * answers anything else), so ask it: the tail goes on while the station
 * is pending, restarting or placed again. */
static int
s_tail_ended(s_tail_t *t, const char *event, size_t len)
{
    static const char *const final[] = {"stopped", "cancelled", "removed"};
    for (size_t i = 0; i < sizeof final / sizeof *final; i++) {
        if (len == strlen(final[i]) && memcmp(event, final[i], len) == 0) {
            return 1;
        }
    }
    if (!(len == 4 && memcmp(event, "done", 4) == 0) &&
        !(len == 6 && memcmp(event, "failed", 6) == 0)) {
        return 0;
    }
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    req.op = "show";
    req.sid = t->id;
    int code = -1;
    json_t *v = s_st_request(t->o, &req, &code);
    const char *st = json_string_value(json_object_get(v, "state"));
    int ended = !st || strcmp(st, "done") == 0 || strcmp(st, "failed") == 0;
    json_decref(v);
    return ended;
}

/* The event part of a status topic of this station, or NULL. A sid may
 * hold dots, so the body's "station" is checked as well. */
static const char *
s_tail_event(const s_tail_t *t, zmq_msg_t *topic, json_t *b, size_t *len)
{
    size_t n = zmq_msg_size(topic);
    const char *tp = zmq_msg_data(topic);
    const char *sid = json_string_value(json_object_get(b, "station"));
    if (n <= t->elen || memcmp(tp, t->events, t->elen) != 0 || !sid ||
        strcmp(sid, t->id) != 0 || memchr(tp + t->elen, '.', n - t->elen)) {
        return NULL;
    }
    *len = n - t->elen;
    return tp + t->elen;
}

/* Print one s2n message of the station: its data as a JSON line, or with
 * --json {"station", "seq", "data"}. The SUB prefix "s2n.gnss-1" also
 * matches "s2n.gnss-10", so the topic must match exactly. */
static int
s_print_s2n(void *arg, zmq_msg_t *topic, zmq_msg_t *body)
{
    s_tail_t *t = arg;
    json_t *b = tw_json_from_msgpack(zmq_msg_data(body), zmq_msg_size(body));
    size_t elen;
    const char *ev = s_tail_event(t, topic, b, &elen);
    if (ev) {
        if (s_tail_ended(t, ev, elen)) {
            tw_cli_sub_stop();
        }
        json_decref(b);
        return 0;
    }
    if (zmq_msg_size(topic) != t->tlen ||
        memcmp(zmq_msg_data(topic), t->topic, t->tlen) != 0) {
        json_decref(b);
        return 0;
    }
    json_t *data = json_is_object(b) ? json_object_get(b, "data") : NULL;
    if (!data) {
        json_decref(b);
        return 0;
    }
    if (t->json) {
        json_t *o = json_object();
        static const char *const keys[] = {"station", "seq", "data"};
        for (size_t i = 0; i < 3; i++) {
            json_t *v = json_object_get(b, keys[i]);
            if (v) {
                json_object_set(o, keys[i], v);
            }
        }
        tw_cli_print_json(o);
    } else {
        tw_cli_print_json(json_incref(data));
    }
    json_decref(b);
    return 1;
}

/* Before tailing: -1 to go on, or an exit code: 1 for a station the
 * broker does not know, 0 for one that has already ended (stopped, done,
 * failed or cancelled, and not restarting: the broker decides that in
 * the same turn), since nothing will ever come. */
static int
s_tail_check(const tw_cli_env_t *o, const char *id)
{
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    req.op = "show";
    req.sid = id;
    int code = -1;
    tw_client_t *c = tw_cli_connect(o, &code);
    if (!c) {
        return code;
    }
    void *data = NULL;
    size_t len = 0;
    int rc = tw_client_station(c, &req, o->timeout_ms, &data, &len);
    char *clean = tw_cli_clean(id);
    if (rc == TW_ENOENT) {
        code = tw_cli_fail(TW_CLI_FAIL,
                           "station tail: there is no station "
                           "'%s'",
                           clean ? clean : "?");
    } else if (rc != 0) {
        code = tw_cli_lib_error(o, c, "station tail", rc);
    } else {
        json_t *v = tw_cli_payload_json(data, len);
        const char *st = json_string_value(json_object_get(v, "state"));
        static const char *const ended[] = {"stopped", "done", "failed",
                                            "cancelled", NULL};
        if (st && tw_cli_one_of(st, ended)) {
            if (!o->json) {
                tw_cli_fail(TW_CLI_OK,
                            "station tail: station '%s' has "
                            "already ended (%s)",
                            clean ? clean : "?", st);
            }
            code = TW_CLI_OK;
        }
        json_decref(v);
    }
    free(clean);
    free(data);
    tw_client_destroy(&c);
    return code;
}

static int
s_st_tail(const tw_cli_env_t *o, const char *sub)
{
    tw_cli_words_t w = tw_cli_words(o, 2);
    const char *id = NULL;
    uint64_t count = 0;
    double for_secs = -1;
    int code = -1;
    const char *a;
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            if (id) {
                code = tw_cli_usage("station tail takes one ID; "
                                    "unexpected '%s'",
                                    a);
            }
            id = a;
        } else if (!tw_cli_stream_flag(&w, &count, &for_secs, &code)) {
            code = tw_cli_usage("station tail: unknown option '%s'", a);
        }
    }
    if (code < 0 && !id) {
        code = tw_cli_usage("usage: taskwheel station tail ID [--count N] "
                            "[--for S]");
    }
    if (code < 0) {
        code = s_st_check_id(sub, id);
    }
    if (code >= 0) {
        return code;
    }
    s_tail_t t;
    t.o = o;
    t.id = id;
    t.tlen = (size_t)snprintf(t.topic, sizeof t.topic, "s2n.%s", id);
    t.elen = (size_t)snprintf(t.events, sizeof t.events, "station.%s.", id);
    t.json = o->json;
    const char *prefixes[2] = {t.topic, t.events};
    void *ctx, *sub_sock;
    char ep[300];
    code = tw_cli_sub_open(o, prefixes, 2, &ctx, &sub_sock, ep, sizeof ep);
    if (code >= 0) {
        return code;
    }
    /* Subscribed first, so nothing emitted after the check is missed; the
     * check turns an unknown station into exit 1 instead of silence, and
     * a station that has already ended into an end at once. */
    code = s_tail_check(o, id);
    if (code < 0) {
        code = tw_cli_sub_loop(sub_sock, ep, o->timeout_ms, count, for_secs,
                               s_print_s2n, &t);
    }
    tw_cli_sub_close(ctx, sub_sock);
    return code;
}

/* A `station` command: either its own `run`, or one request whose
 * operation is the command's name, built from `npos` positional words
 * (ID, then DATA-JSON as the payload) and answered with `human` when the
 * reply is of JSON type `want` (-1: any). */
typedef struct {
    const char *name;
    int (*run)(const tw_cli_env_t *o, const char *sub);
    const char *synopsis;
    int npos;
    int want;
    tw_cli_human_fn human;
} s_st_command_t;

static const s_st_command_t s_st_commands[] = {
    {"add", s_st_add, NULL, 0, -1, NULL},
    {"list", NULL, "", 0, JSON_ARRAY, s_st_print_list},
    {"show", NULL, "ID", 1, JSON_OBJECT, s_st_print_show},
    {"pause", NULL, "ID", 1, -1, s_st_print_control},
    {"continue", NULL, "ID", 1, -1, s_st_print_control},
    {"stop", NULL, "ID", 1, -1, s_st_print_control},
    {"cancel", NULL, "ID", 1, -1, s_st_print_control},
    {"remove", NULL, "ID", 1, -1, s_st_print_control},
    {"send", NULL, "ID DATA-JSON", 2, -1, s_st_print_send},
    {"tail", s_st_tail, NULL, 0, -1, NULL},
    {"rebalance", NULL, "", 0, -1, s_st_print_rebalance},
};

/* Run a `station` command that is one request (run == NULL). */
static int
s_st_simple(const tw_cli_env_t *o, const s_st_command_t *cmd)
{
    const char *pos[2];
    int code = s_st_positional(o, cmd->name, cmd->synopsis, pos, cmd->npos);
    if (code >= 0) {
        return code;
    }
    tw_station_req_t req;
    memset(&req, 0, sizeof req);
    void *payload = NULL;
    if (cmd->npos > 1) {
        code = s_st_json_arg("DATA-JSON", pos[1], &payload, &req.payload_len);
        if (code >= 0) {
            return code;
        }
        req.payload = payload;
    }
    req.op = cmd->name;
    req.sid = cmd->npos > 0 ? pos[0] : NULL;
    json_t *v = s_st_request(o, &req, &code);
    code = tw_cli_reply(o, v, code, cmd->want, cmd->human, &req);
    free(payload);
    return code;
}

static int
s_cmd_station(const tw_cli_env_t *o)
{
    if (o->argc < 2) {
        return tw_cli_usage("station needs a command: add, list, show, "
                            "pause, continue, stop, cancel, remove, send, "
                            "tail or rebalance");
    }
    for (size_t i = 0; i < sizeof s_st_commands / sizeof s_st_commands[0];
         i++) {
        const s_st_command_t *cmd = &s_st_commands[i];
        if (strcmp(o->argv[1], cmd->name) == 0) {
            return cmd->run ? cmd->run(o, cmd->name) : s_st_simple(o, cmd);
        }
    }
    return tw_cli_usage("unknown station command '%s'", o->argv[1]);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_station[] = {
    {"station add", "ID HANDLER [ARGS-JSON]",
     "[--next same|result|handler]\n"
     "[--interval S] [--timeout S] [--code C] [--tags k=v,...]\n"
     "[--placement any|prefer|pinned]\n"
     "[--restart never|on-failure|always]",
     "Start a station: HANDLER run again and again on one worker slot.\n"
     "--next picks each iteration's input (the same ARGS, the last\n"
     "result, or what the handler chose); --interval is the least time\n"
     "between iteration starts and --timeout the limit of one\n"
     "iteration, in seconds (for stream, the longest silence of its\n"
     "program). --code and --tags select workers.",
     s_cmd_station},
    {"station list", "", "", "List the stations.", s_cmd_station},
    {"station show", "ID", "", "Show one station with its checkpoint.",
     s_cmd_station},
    {"station pause", "ID", "",
     "Suspend the station's iterations; it keeps its slot.", s_cmd_station},
    {"station continue", "ID", "",
     "Resume a paused station, or start an ended one again from its\n"
     "checkpoint.",
     s_cmd_station},
    {"station stop", "ID", "", "End the station after its current iteration.",
     s_cmd_station},
    {"station cancel", "ID", "",
     "End the station now, aborting its current iteration.", s_cmd_station},
    {"station remove", "ID", "",
     "Stop the station and forget it; its ID can then be used again.",
     s_cmd_station},
    {"station send", "ID DATA-JSON", "",
     "Send DATA to the station's handler (net to station).", s_cmd_station},
    {"station tail", "ID", "[--count N] [--for S]",
     "Print what the station emits, one JSON value a line (with\n"
     "--json: {\"station\", \"seq\", \"data\"}).",
     s_cmd_station},
    {"station rebalance", "", "",
     "Spread the stations over the workers again.", s_cmd_station},
    {NULL, NULL, NULL, NULL, NULL},
};
