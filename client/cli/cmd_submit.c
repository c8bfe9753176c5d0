/*  client/cli/cmd_submit.c - `taskwheel submit`: queue one task, and with
 *  --wait follow it to its outcome.
 *
 *  The command reads its words into a tw_task_spec_t (the pool flags
 *  through cmd_pool.c's tw_cli_submit_flag, --respond through
 *  cmd_chan.c), submits, waits up to --timeout-ms for the
 *  acknowledgement and prints the id; with --wait it then waits for the
 *  result pushed to the submitter, asking for the task's state after
 *  every quiet second.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/internal.h"
#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t id;
    int acked;
    int ack_err;
    char *ack_msg;
    int done;
    int state;
    json_t *result;
    char *error;
    uint64_t worker;
    uint32_t attempt;
} s_submit_t;

static void
s_submit_on_ack(void *arg, const tw_ack_t *ack)
{
    s_submit_t *s = arg;
    if (ack->seq != s->seq || s->acked) {
        return;
    }
    s->acked = 1;
    s->id = ack->id;
    s->ack_err = ack->err;
    if (ack->msg && *ack->msg) {
        s->ack_msg = tw_cli_clean(ack->msg);
    }
}

static void
s_submit_on_result(void *arg, const tw_result_t *r)
{
    s_submit_t *s = arg;
    if (s->done || !(r->seq == s->seq || (s->id && r->id == s->id))) {
        return;
    }
    s->done = 1;
    s->acked = 1;
    s->id = r->id;
    s->state = r->state;
    s->result = tw_cli_payload_json(r->result, r->result_len);
    s->error = r->error ? strdup(r->error) : NULL;
    s->worker = r->worker;
    s->attempt = r->attempt;
}

/* What the words of `submit` say. */
typedef struct {
    const char *pos[2]; /* HANDLER, ARGS-JSON */
    int npos;
    int wait;
    tw_task_spec_t spec;
    tw_cli_submit_ext_t ext; /* --group, --delay, --at, --key, --after...
                                (cmd_pool.c) */
    tw_cli_chan_t chan;      /* --respond (cmd_chan.c) */
    void *args;              /* ARGS-JSON as msgpack, or NULL */
    size_t alen;
} s_words_t;

/* One flag of submit's own (--wait, --timeout, --retries, --priority),
 * the current word of `w`. Returns 1 if it was one, 0 if not, or a
 * usage exit code (> 1). */
static int
s_own_flag(tw_cli_words_t *w, s_words_t *x)
{
    const char *val;
    int r, code;
    int64_t v;
    uint64_t ms;
    if (strcmp(w->argv[w->i], "--wait") == 0) {
        x->wait = 1;
    } else if ((r = tw_cli_word_flag(w, "--timeout", &val)) != 0) {
        if ((code = tw_cli_flag_ms("--timeout", r, val, &ms)) >= 0) {
            return code;
        }
        x->spec.timeout_ms = (uint32_t)ms;
    } else if ((r = tw_cli_word_flag(w, "--retries", &val)) != 0) {
        if (r < 0 || tw_cli_int(val, 0, UINT32_MAX, &v)) {
            return tw_cli_usage("--retries needs a count >= 0");
        }
        x->spec.retries = (uint32_t)v;
    } else if ((r = tw_cli_word_flag(w, "--priority", &val)) != 0) {
        if (r < 0 || tw_cli_int(val, INT32_MIN, INT32_MAX, &v)) {
            return tw_cli_usage("--priority needs an integer");
        }
        x->spec.priority = (int32_t)v;
    } else {
        return 0;
    }
    return 1;
}

/* Read the words of `submit` into *x. Returns -1 or an exit code. */
static int
s_parse(const tw_cli_env_t *o, s_words_t *x)
{
    tw_cli_words_t w = tw_cli_words(o, 1);
    const char *a;
    while ((a = tw_cli_next_word(&w)) != NULL) {
        int r;
        if (!tw_cli_is_flag(&w)) {
            if (x->npos == 2) {
                return tw_cli_usage("submit takes HANDLER and at most one "
                                    "ARGS-JSON; unexpected '%s'",
                                    a);
            }
            x->pos[x->npos++] = a;
        } else if ((r = s_own_flag(&w, x)) != 0 ||
                   (r = tw_cli_submit_flag(&x->ext, w.argc, w.argv, &w.i)) !=
                       0 ||
                   (r = tw_cli_chan_flag(&x->chan, &w)) != 0) {
            if (r != 1) {
                return r;
            }
        } else {
            return tw_cli_usage("submit: unknown option '%s'", a);
        }
    }
    if (!x->pos[0]) {
        return tw_cli_usage("submit needs a HANDLER");
    }
    if (strlen(x->pos[0]) > TW_PROTO_MAX_NAME) {
        return tw_cli_usage("handler name is longer than %d bytes",
                            TW_PROTO_MAX_NAME);
    }
    x->spec.handler = x->pos[0];
    tw_cli_submit_apply(&x->ext, o->pool, &x->spec);
    if (x->pos[1]) {
        int code = tw_cli_json_arg("ARGS-JSON", x->pos[1], &x->args,
                                   &x->alen);
        if (code >= 0) {
            return code;
        }
        x->spec.args = x->args;
        x->spec.args_len = x->alen;
    }
    return -1;
}

/* Submit x->spec. Returns -1 or an exit code. */
static int
s_send(tw_client_t *c, s_words_t *x, s_submit_t *s)
{
    int rc = tw_client_submit(c, &x->spec, &s->seq);
    if (rc == TW_E2BIG) {
        return tw_cli_usage("ARGS-JSON is too big (%zu bytes of msgpack, "
                            "limit %u)",
                            x->alen, TW__CLIENT_MAX_ARGS);
    }
    if (rc != 0) {
        return tw_cli_usage("cannot submit: %s", tw_strerror(rc));
    }
    tw_client_flush(c);
    return -1;
}

/* Wait for the acknowledgement, which must come within --timeout-ms.
 * Returns -1 when the task was accepted, or an exit code. */
static int
s_await_ack(const tw_cli_env_t *o, tw_client_t *c, const s_words_t *x,
            s_submit_t *s)
{
    uint64_t deadline = tw_now_ms() + (uint64_t)o->timeout_ms;
    while (!s->acked) {
        uint64_t now = tw_now_ms();
        if (now >= deadline) {
            return tw_cli_unreachable(o);
        }
        int rc = tw_client_poll(c, (int)(deadline - now));
        if (rc >= 0 && tw__client_link_failed(c)) {
            rc = tw__client_link_failed(c); /* refused: no use waiting */
        }
        if (rc < 0) {
            return tw_cli_lib_error(o, c, "submit", rc);
        }
    }
    if (s->ack_err) {
        return tw_cli_fail(TW_CLI_FAIL, "cannot submit '%s': %s",
                           x->spec.handler,
                           s->ack_msg ? s->ack_msg : tw_strerror(s->ack_err));
    }
    return -1;
}

/* Wait for the task's outcome. It is pushed to the task's submitter; a
 * dedup hit (--key) names a task another submission owns, so its outcome
 * is never pushed here: after every quiet second, ask for the task's
 * state, which also proves the broker is still there while a long task
 * runs. Returns -1 once s->done, or an exit code. */
static int
s_await_outcome(const tw_cli_env_t *o, tw_client_t *c, s_submit_t *s)
{
    int quiet_ms = o->timeout_ms < 1000 ? o->timeout_ms : 1000;
    while (!s->done) {
        int rc = tw_client_poll(c, quiet_ms);
        if (rc < 0) {
            return tw_cli_lib_error(o, c, "submit", rc);
        }
        if (rc == 0 && !s->done) {
            tw_result_t *r = NULL;
            rc = tw_client_result(c, s->id, o->timeout_ms, &r);
            if (rc != 0) {
                return tw_cli_lib_error(o, c, "submit", rc);
            }
            if (!s->done &&
                (r->state < TW_ST_PENDING || r->state == TW_ST_UNKNOWN)) {
                r->seq = s->seq;
                s_submit_on_result(s, r);
            }
            tw_result_free(&r);
        }
    }
    return -1;
}

/* Print the outcome of submit --wait: the result, or with --json the
 * outcome object; a failure is also said on stderr (exit 1). */
static int
s_print_outcome(const tw_cli_env_t *o, s_submit_t *s)
{
    int failed = s->state != TW_ST_OK;
    if (o->json) {
        tw_cli_print_json(tw_cli_outcome_json(
            s->id, s->state, s->result, s->error, s->worker, s->attempt));
        s->result = NULL;
    } else if (!failed) {
        tw_cli_print_json(s->result);
        s->result = NULL;
    }
    if (failed) {
        char *e = s->error ? tw_cli_clean(s->error) : NULL;
        tw_cli_fail(TW_CLI_FAIL, "task %" PRIu64 " failed (%s)%s%s", s->id,
                    tw_proto_state_name(s->state), e ? ": " : "", e ? e : "");
        free(e);
    }
    return failed ? TW_CLI_FAIL : TW_CLI_OK;
}

/* Print the id of the accepted task. */
static int
s_print_id(const tw_cli_env_t *o, const s_submit_t *s)
{
    if (o->json) {
        tw_cli_print_json(json_pack("{s:I}", "id", (json_int_t)s->id));
    } else {
        printf("%" PRIu64 "\n", s->id);
    }
    return TW_CLI_OK;
}

/* Connected as `c`: submit, wait for the acknowledgement, and with --wait
 * for the outcome. Returns an exit code. */
static int
s_submit(const tw_cli_env_t *o, tw_client_t *c, s_words_t *x, s_submit_t *s)
{
    tw_client_on_ack(c, s_submit_on_ack, s);
    tw_client_on_result(c, s_submit_on_result, s);
    if (x->wait) {
        tw_cli_chan_attach(&x->chan, c);
    }
    int code = s_send(c, x, s);
    if (code < 0) {
        code = s_await_ack(o, c, x, s);
    }
    if (code >= 0) {
        return code;
    }
    if (!x->wait) {
        return s_print_id(o, s);
    }
    x->chan.id = s->id;
    code = s_await_outcome(o, c, s);
    return code >= 0 ? code : s_print_outcome(o, s);
}

static int
s_cmd_submit(const tw_cli_env_t *o)
{
    /* Static: the --after list makes it too big for the stack. */
    static s_words_t x;
    memset(&x, 0, sizeof x);
    int code = s_parse(o, &x);
    tw_client_t *c = code < 0 ? tw_cli_connect(o, &code) : NULL;
    if (c) {
        s_submit_t s;
        memset(&s, 0, sizeof s);
        code = s_submit(o, c, &x, &s);
        json_decref(s.result);
        free(s.error);
        free(s.ack_msg);
    }
    free(x.args);
    tw_cli_chan_free(&x.chan);
    tw_client_destroy(&c);
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_submit[] = {
    {"submit", "HANDLER [ARGS-JSON]",
     "[--timeout S] [--retries N] [--priority P]\n"
     "[--group G]... [--delay S] [--at TIME] [--key K]\n"
     "[--after ID[,ID...] [--after-any-end] [--with-results]]\n"
     "[--wait [--respond JSON]]",
     "Queue a task and print its id. ARGS-JSON is any JSON value\n"
     "(default null); {\"$bin\": \"<hex>\"} sends raw bytes. With\n"
     "--wait, print the task's result instead (exit 1 if it failed)\n"
     "and its channel items as JSON lines on stderr; requests get\n"
     "--respond's value, or are refused (the task's request fails).\n"
     "--timeout is in seconds, 0 = none. --group joins a group of\n"
     "the pool (repeatable), --delay holds it back S seconds, --at\n"
     "until an RFC 3339 time (2025-01-01T03:00:00+01:00; with\n"
     "--delay too, the later holds), --key is a dedup key: while a\n"
     "task with it is known, its id (with --wait, its outcome) is\n"
     "returned. --after holds the task (blocked) until the tasks\n"
     "named end: it runs if all succeeded and is cancelled\n"
     "(\"upstream failed\") if one did not; --after-any-end runs it\n"
     "whatever they did; --with-results passes their results, in\n"
     "order, before its own arguments (docs/WORKFLOWS.md). Built-in\n"
     "handlers: docs/HANDLERS.md.",
     s_cmd_submit},
    {NULL, NULL, NULL, NULL, NULL},
};
