/*  client/cli/cmd_pool.c - `group`, `pool`, the pool forms of `cancel`,
 *  and the pool flags of `submit`.
 *
 *      group limit G N|none [--reject] | get G | clear G | list | ids G
 *      pool stats | size N | default-limit N|none | lock | unlock | close
 *           | flush | stop N
 *      cancel ID... --strict | cancel --group G | cancel --all
 *      submit ... [--group G]... [--delay S] [--at TIME] [--key K]
 *
 *  Each is one GROUP, POOL or CANCEL request of libtaskwheel on the pool
 *  the global --pool names ("default" otherwise). With --json the REPLY's
 *  data is printed as one JSON document; otherwise as a sentence, "key:
 *  value" lines (get, stats), a table (list) or one id a line (ids, stop,
 *  cancel). Broker refusals (unknown group, AlreadyEnded...) exit 1 with
 *  the broker's message.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"

#include "common/error.h"
#include "common/tz.h"
#include "proto/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exactly `want` positional words of `e` from argv[first] on, into pos;
 * unknown flags are usage errors, except those `flags` (NULL-terminated)
 * names, which set the matching `on[i]`. Returns -1 or an exit code. */
static int
s_positional(const tw_cli_env_t *e, int first, const char *synopsis,
             const char **pos, int want, const char *const *flags, int *on)
{
    tw_cli_words_t w = tw_cli_words(e, first);
    int n = 0;
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        if (tw_cli_is_flag(&w)) {
            int k = 0;
            while (flags && flags[k] && strcmp(flags[k], a) != 0) {
                k++;
            }
            if (!flags || !flags[k]) {
                return tw_cli_usage("%s %s: unknown option '%s'",
                                    e->argv[0], e->argv[first - 1], a);
            }
            on[k] = 1;
            continue;
        }
        if (n == want) {
            return tw_cli_usage("usage: taskwheel %s %s %s; unexpected '%s'",
                                e->argv[0], e->argv[first - 1], synopsis, a);
        }
        pos[n++] = a;
    }
    if (n < want) {
        return tw_cli_usage("usage: taskwheel %s %s %s", e->argv[0],
                            e->argv[first - 1], synopsis);
    }
    return -1;
}

/* Human text of a reply value: "none" for nil, "yes"/"no", strings bare
 * and cleaned, anything else as compact JSON. malloc'ed. */
static char *
s_text(json_t *v)
{
    if (!v || json_is_null(v)) {
        return strdup("none");
    }
    if (json_is_boolean(v)) {
        return strdup(json_is_true(v) ? "yes" : "no");
    }
    if (json_is_string(v)) {
        return tw_cli_clean(json_string_value(v));
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *c = s ? tw_cli_clean(s) : NULL;
    free(s);
    return c;
}

/* "key: value" lines for the members of an object. */
static void
s_print_fields(json_t *v)
{
    for (void *it = json_object_iter(v); it;
         it = json_object_iter_next(v, it)) {
        char *t = s_text(json_object_iter_value(it));
        printf("%s: %s\n", json_object_iter_key(it), t ? t : "?");
        free(t);
    }
}

/* Print a list of ids, one a line, or as {"key": [...]} / [...] with
 * --json (key NULL). */
static void
s_print_ids(const tw_cli_env_t *e, const char *key, const uint64_t *ids,
            size_t n, const char *suffix)
{
    if (e->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(a, json_integer((json_int_t)ids[i]));
        }
        tw_cli_print_json(key ? json_pack("{s:o}", key, a) : a);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%" PRIu64 "%s\n", ids[i], suffix);
    }
}

/* Run one GROUP or POOL request and print its data. `how`: 0 fields, 1
 * table of groups, 2 a sentence `done` (with %s the name). */
static int
s_request(const tw_cli_env_t *e, int group, const tw_pool_req_t *req,
          const char *what, int how, const char *done)
{
    int code = TW_CLI_OK;
    json_t *v = tw_cli_request(e, what,
                               group ? TW_CLI_REQ_GROUP : TW_CLI_REQ_POOL,
                               req, &code);
    if (!v) {
        return code;
    }
    if (e->json) {
        tw_cli_print_json(v);
        return TW_CLI_OK;
    }
    if (how == 0) {
        s_print_fields(v);
    } else if (how == 1) {
        static const char *const keys[] = {
            "group", "limit", "calls", "full", "running", "pending",
            "ended", "cancelled", "admitted"};
        static const char *const titles[] = {
            "GROUP", "LIMIT", "CALLS", "FULL", "RUNNING", "PENDING",
            "ENDED", "CANCELLED", "ADMITTED"};
        if (json_array_size(v) == 0) {
            printf("no groups in pool %s\n",
                   e->pool ? e->pool : "default");
        } else {
            code = tw_cli_print_table(v, keys, titles,
                                      sizeof keys / sizeof keys[0], s_text);
        }
    } else {
        char *name = tw_cli_clean(req->group ? req->group
                                  : req->pool ? req->pool
                                              : "default");
        printf(done, name ? name : "?");
        fputc('\n', stdout);
        free(name);
    }
    json_decref(v);
    return code;
}

static int
s_name_arg(const char *what, const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("%s must be 1 to %d bytes", what,
                            TW_PROTO_MAX_NAME);
    }
    return -1;
}

static int
s_cmd_group(const tw_cli_env_t *e)
{
    const char *sub = e->argc > 1 ? e->argv[1] : NULL;
    const char *pos[2] = {NULL, NULL};
    tw_pool_req_t req;
    memset(&req, 0, sizeof req);
    req.pool = e->pool;
    if (!sub) {
        return tw_cli_usage("group needs a subcommand: limit, get, clear, "
                            "list or ids");
    }
    int code;
    if (strcmp(sub, "list") == 0) {
        if ((code = s_positional(e, 2, "", pos, 0, NULL, NULL)) >= 0) {
            return code;
        }
        req.op = "list";
        return s_request(e, 1, &req, "group list", 1, NULL);
    }
    if (strcmp(sub, "limit") == 0) {
        static const char *const flags[] = {"--reject", NULL};
        int on[1] = {0};
        int64_t n;
        if ((code = s_positional(e, 2, "G N [--reject]", pos, 2, flags, on)) >=
            0) {
            return code;
        }
        if ((code = s_name_arg("a group name", pos[0])) >= 0) {
            return code;
        }
        /* S96: "none" is no limit, the same as `group clear`; it goes
         * out as a nil limit. */
        int none = strcmp(pos[1], "none") == 0;
        if (!none && tw_cli_int(pos[1], 0, INT64_MAX, &n) != 0) {
            return tw_cli_usage("group limit: N must be a number >= 0 or "
                                "none");
        }
        req.op = "set";
        req.group = pos[0];
        req.has_limit = 1;
        req.limit = none ? TW_CLIENT_LIMIT_NONE : n;
        req.full = on[0] ? "reject" : "queue";
        return s_request(e, 1, &req, "group limit", 2,
                         none    ? "group %s: no limit"
                         : on[0] ? "group %s: limit set (reject when full)"
                                 : "group %s: limit set (queue when full)");
    }
    int get = strcmp(sub, "get") == 0;
    int clear = strcmp(sub, "clear") == 0;
    int ids = strcmp(sub, "ids") == 0;
    if (!get && !clear && !ids) {
        return tw_cli_usage("unknown group command '%s'", sub);
    }
    if ((code = s_positional(e, 2, "G", pos, 1, NULL, NULL)) >= 0) {
        return code;
    }
    if ((code = s_name_arg("a group name", pos[0])) >= 0) {
        return code;
    }
    req.group = pos[0];
    if (get) {
        req.op = "get";
        return s_request(e, 1, &req, "group get", 0, NULL);
    }
    if (clear) {
        req.op = "clear";
        return s_request(e, 1, &req, "group clear", 2,
                         "group %s: no limit");
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        return code;
    }
    uint64_t *list = NULL;
    size_t n = 0;
    int rc = tw_client_group_ids(c, e->pool, pos[0], e->timeout_ms, &list,
                                 &n);
    if (rc != 0) {
        code = tw_cli_lib_error(e, c, "group ids", rc);
    } else {
        s_print_ids(e, NULL, list, n, "");
        code = TW_CLI_OK;
    }
    free(list);
    tw_client_destroy(&c);
    return code;
}

static int
s_cmd_pool(const tw_cli_env_t *e)
{
    static const char *const simple[] = {"lock", "unlock", "close", NULL};
    static const char *const said[] = {"pool %s: locked", "pool %s: unlocked",
                                       "pool %s: closed"};
    const char *sub = e->argc > 1 ? e->argv[1] : NULL;
    const char *pos[1] = {NULL};
    tw_pool_req_t req;
    memset(&req, 0, sizeof req);
    req.pool = e->pool;
    int code;
    if (!sub) {
        return tw_cli_usage("pool needs a subcommand: stats, size, "
                            "default-limit, lock, unlock, close, flush or "
                            "stop");
    }
    if (strcmp(sub, "stats") == 0) {
        if ((code = s_positional(e, 2, "", pos, 0, NULL, NULL)) >= 0) {
            return code;
        }
        req.op = "stats";
        return s_request(e, 0, &req, "pool stats", 0, NULL);
    }
    for (int k = 0; simple[k]; k++) {
        if (strcmp(sub, simple[k]) == 0) {
            if ((code = s_positional(e, 2, "", pos, 0, NULL, NULL)) >= 0) {
                return code;
            }
            req.op = simple[k];
            return s_request(e, 0, &req, sub, 2, said[k]);
        }
    }
    if (strcmp(sub, "size") == 0) {
        int64_t n;
        if ((code = s_positional(e, 2, "N", pos, 1, NULL, NULL)) >= 0) {
            return code;
        }
        if (tw_cli_int(pos[0], 0, INT64_MAX, &n) != 0) {
            return tw_cli_usage("pool size: N must be a number >= 0 "
                                "(0 = unlimited)");
        }
        req.op = "size";
        req.has_limit = 1;
        req.limit = n;
        return s_request(e, 0, &req, "pool size", 2, "pool %s: size set");
    }
    if (strcmp(sub, "default-limit") == 0) {
        /* S101: the limit of every group without one of its own; "none"
         * clears it (S96: None clears, negative is an error). */
        int64_t n = -1;
        if ((code = s_positional(e, 2, "N|none", pos, 1, NULL, NULL)) >= 0) {
            return code;
        }
        if (strcmp(pos[0], "none") != 0 &&
            tw_cli_int(pos[0], 0, INT64_MAX, &n) != 0) {
            return tw_cli_usage("pool default-limit: N must be a number >= 0, "
                                "or none to clear it");
        }
        req.op = "default_limit";
        req.has_limit = n >= 0;
        req.limit = n;
        return s_request(e, 0, &req, "pool default-limit", 2,
                         "pool %s: default group limit set");
    }
    int flush = strcmp(sub, "flush") == 0;
    if (!flush && strcmp(sub, "stop") != 0) {
        return tw_cli_usage("unknown pool command '%s'", sub);
    }
    int64_t n = 0;
    if ((code = s_positional(e, 2, flush ? "" : "N", pos, flush ? 0 : 1, NULL,
                             NULL)) >= 0) {
        return code;
    }
    if (!flush && tw_cli_int(pos[0], 0, INT64_MAX, &n) != 0) {
        return tw_cli_usage("pool stop: N must be a number >= 0");
    }
    if (flush) {
        req.op = "flush";
        json_t *v = tw_cli_request(e, sub, TW_CLI_REQ_POOL, &req, &code);
        if (!v) {
            return code;
        }
        if (e->json) {
            tw_cli_print_json(v);
            return TW_CLI_OK;
        }
        json_t *f = json_object_get(v, "forgotten");
        printf("forgot %lld task records\n",
               json_is_integer(f) ? (long long)json_integer_value(f) : 0LL);
        json_decref(v);
        return TW_CLI_OK;
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        return code;
    }
    uint64_t *ids = NULL;
    size_t nids = 0;
    int rc = tw_client_pool_stop(c, e->pool, (uint64_t)n, e->timeout_ms,
                                 &ids, &nids);
    if (rc == 0) {
        s_print_ids(e, NULL, ids, nids, "");
    }
    free(ids);
    code = rc == 0 ? TW_CLI_OK : tw_cli_lib_error(e, c, sub, rc);
    tw_client_destroy(&c);
    return code;
}

int
tw_cli_cancel(const tw_cli_env_t *e)
{
    int strict = 0, all = 0;
    const char *group = NULL;
    tw_cli_words_t w = tw_cli_words(e, 1);
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        const char *val;
        int r;
        if (!tw_cli_is_flag(&w)) {
            continue; /* the ids, or anything after "--" */
        }
        if (strcmp(a, "--strict") == 0) {
            strict = 1;
        } else if (strcmp(a, "--all") == 0) {
            all = 1;
        } else if ((r = tw_cli_word_flag(&w, "--group", &val)) != 0) {
            if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
                return tw_cli_usage("--group needs a group name");
            }
            group = val;
        }
    }
    if (!strict && !all && !group) {
        return -1; /* the plain form: main.c's */
    }
    if (strict + all + (group != NULL) > 1) {
        return tw_cli_usage("cancel takes one of --strict, --group G and "
                            "--all");
    }
    uint64_t *ids = NULL;
    size_t n = 0;
    int code;
    if (strict) {
        code = tw_cli_ids(e, "cancel", "--strict", &ids, &n);
        if (code >= 0) {
            return code;
        }
    } else {
        for (int i = 1; i < e->argc; i++) {
            a = e->argv[i];
            if (strcmp(a, "--all") == 0 || strcmp(a, "--") == 0) {
                continue;
            }
            if (strcmp(a, "--group") == 0) {
                i++;
                continue;
            }
            if (strncmp(a, "--group=", 8) == 0) {
                continue;
            }
            return tw_cli_usage("cancel %s takes no other arguments; "
                                "unexpected '%s'",
                                all ? "--all" : "--group G", a);
        }
    }
    tw_client_t *c = tw_cli_connect(e, &code);
    if (!c) {
        free(ids);
        return code;
    }
    int rc;
    if (strict) {
        rc = tw_client_cancel_strict(c, ids, n, e->timeout_ms);
        if (rc == 0) {
            s_print_ids(e, "cancelled", ids, n, " cancelled");
        }
    } else {
        uint64_t *got = NULL;
        size_t ngot = 0;
        rc = tw_client_cancel_group(c, e->pool, group, e->timeout_ms, &got,
                                    &ngot);
        if (rc == 0) {
            s_print_ids(e, "cancelled", got, ngot, " cancelled");
        }
        free(got);
    }
    code = rc == 0 ? TW_CLI_OK : tw_cli_lib_error(e, c, "cancel", rc);
    free(ids);
    tw_client_destroy(&c);
    return code;
}

int
tw_cli_submit_flag(tw_cli_submit_ext_t *x, int argc, char **argv, int *i)
{
    const char *val;
    int r;
    if ((r = tw_cli_flag(argc, argv, i, "--group", &val)) != 0) {
        if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
            return tw_cli_usage("--group needs a group name of 1 to %d "
                                "bytes", TW_PROTO_MAX_NAME);
        }
        if (x->ngroups == TW_CLIENT_MAX_GROUPS) {
            return tw_cli_usage("at most %d --group flags",
                                TW_CLIENT_MAX_GROUPS);
        }
        x->groups[x->ngroups++] = val;
        return 1;
    }
    if ((r = tw_cli_flag(argc, argv, i, "--delay", &val)) != 0) {
        int code = tw_cli_flag_ms("--delay", r, val, &x->delay_ms);
        return code >= 0 ? code : 1;
    }
    if ((r = tw_cli_flag(argc, argv, i, "--at", &val)) != 0) {
        int64_t ms;
        const char *why = "no value";
        if (r < 0 || tw_tz_rfc3339(val, strlen(val), &ms, &why) != 0) {
            return tw_cli_usage("--at needs an RFC 3339 time with its "
                                "offset, like 2025-01-01T03:00:00+01:00 "
                                "(%s)", why);
        }
        x->at_ms = ms > 0 ? (uint64_t)ms : 1; /* the past: at once */
        return 1;
    }
    if ((r = tw_cli_flag(argc, argv, i, "--after", &val)) != 0) {
        /* ID[,ID...]: each a task id, in the order they are named. */
        const char *p = r > 0 ? val : "";
        do {
            char *end;
            errno = 0;
            unsigned long long id = strtoull(p, &end, 10);
            if (end == p || id == 0 || errno || (*end && *end != ',') ||
                (*end == ',' && !end[1]) || *p == '-' || *p == '+' ||
                *p == ' ') {
                return tw_cli_usage("--after needs task ids separated by "
                                    "commas, like --after 12,13");
            }
            if (x->nafter == TW_CLI_MAX_AFTER) {
                return tw_cli_usage("--after: at most %d parents",
                                    TW_CLI_MAX_AFTER);
            }
            x->after[x->nafter++] = id;
            p = *end ? end + 1 : end;
        } while (*p);
        return 1;
    }
    if (strcmp(argv[*i], "--after-any-end") == 0) {
        x->after_any_end = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--with-results") == 0) {
        x->with_results = 1;
        return 1;
    }
    if ((r = tw_cli_flag(argc, argv, i, "--key", &val)) != 0) {
        if (r < 0 || !*val || strlen(val) > TW_PROTO_MAX_NAME) {
            return tw_cli_usage("--key needs a key of 1 to %d bytes",
                                TW_PROTO_MAX_NAME);
        }
        x->key = val;
        return 1;
    }
    return 0;
}

void
tw_cli_submit_apply(const tw_cli_submit_ext_t *x, const char *pool,
                    tw_task_spec_t *spec)
{
    spec->pool = pool;
    spec->groups = x->ngroups ? x->groups : NULL;
    spec->ngroups = x->ngroups;
    spec->delay_ms = x->delay_ms;
    spec->at_ms = x->at_ms;
    spec->after = x->nafter ? x->after : NULL;
    spec->nafter = x->nafter;
    spec->after_any_end = x->after_any_end;
    spec->with_results = x->with_results;
    spec->key = x->key;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_pool[] = {
    {"group",
     "limit G N|none [--reject] | get G | clear G | list | ids G",
     "",
     "Limit a group to N running tasks (--reject: refuse when full\n"
     "instead of queueing; none: no limit, as clear), show it (a\n"
     "group never used shows as empty), remove its limit, list the\n"
     "pool's groups, or list every task id it held.",
     s_cmd_group},
    {"pool",
     "stats | size N | default-limit N|none | lock | unlock | close\n"
     "| flush | stop N",
     "",
     "Show the pool's counters, set its size (0 = unlimited) or the\n"
     "limit of its groups that have none of their own, refuse\n"
     "new tasks (close: for good), forget ended tasks, or cancel the\n"
     "N most recently started running tasks.",
     s_cmd_pool},
    {NULL, NULL, NULL, NULL, NULL},
};
