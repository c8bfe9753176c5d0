/*  client/cli/cli.h - the taskwheel commands that live outside main.c.
 *
 *  main.c parses the global flags and dispatches; the pool commands (map,
 *  group, pool, and the --strict / --group / --all forms of cancel) and
 *  the pool flags of submit (--group, --delay, --key) live in
 *  cmd_map.c and cmd_pool.c and meet main.c only through this header: a
 *  tw_cli_env_t carries what the global flags said, and each command
 *  returns the CLI's exit code (0 ok, 1 failed, 2 usage, 3 unreachable).
 *  The small helpers below (diagnostics, flag words, JSON output) are
 *  shared by those files; they follow main.c's output discipline: data on
 *  stdout, one "taskwheel: " line per diagnostic on stderr.
 */
#ifndef TW_CLI_H
#define TW_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "taskwheel/client.h"

enum {
    TW_CLI_OK = 0,
    TW_CLI_FAIL = 1,
    TW_CLI_USAGE = 2,
    TW_CLI_UNREACH = 3
};

/* What the global flags said, and the command's words (argv[0] is the
 * command's name). */
typedef struct {
    const char *broker;
    const char *pool; /* --pool; NULL = "default" */
    int json;
    int timeout_ms;
    int argc;
    char **argv;
} tw_cli_env_t;

/* The commands. Each returns an exit code. */
int tw_cli_map(const tw_cli_env_t *e);
int tw_cli_group(const tw_cli_env_t *e);
int tw_cli_pool(const tw_cli_env_t *e);

/* `cancel` with --strict, --group G or --all; returns -1 (doing nothing)
 * when none of them is among the words, so the caller's plain `cancel
 * ID...` runs instead. */
int tw_cli_cancel(const tw_cli_env_t *e);

/* The pool flags of `submit`: --group G (repeatable), --delay S, --key K.
 * tw_cli_submit_flag looks at argv[*i]: returns 0 if it is none of them,
 * 1 if it took it (and its value; *i advances), or TW_CLI_USAGE after
 * printing why. tw_cli_submit_apply copies the result and the --pool into
 * `spec`; `x` must outlive the spec's use. */
typedef struct {
    const char *groups[TW_CLIENT_MAX_GROUPS];
    size_t ngroups;
    uint64_t delay_ms;
    const char *key;
} tw_cli_submit_ext_t;

int tw_cli_submit_flag(tw_cli_submit_ext_t *x, int argc, char **argv,
                       int *i);
void tw_cli_submit_apply(const tw_cli_submit_ext_t *x, const char *pool,
                         tw_task_spec_t *spec);

/* ---- helpers shared by the command files ---- */

/* "taskwheel: <message>" on stderr; returns `code`. */
int tw_cli_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same plus "Try 'taskwheel --help'."; returns TW_CLI_USAGE. */
int tw_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report the library error `rc` of operation `what`: TW_CLI_UNREACH for
 * TW_EUNREACH, else TW_CLI_FAIL with the broker's message if any. */
int tw_cli_lib_error(const tw_cli_env_t *e, tw_client_t *c, const char *what,
                     int rc);

/* If argv[*i] is the flag `name` ("--name" or "--name=value"), return 1
 * and set *val (taken from the next word if needed; *i advances); 0 if it
 * is another word; -1 if the value is missing. */
int tw_cli_flag(int argc, char **argv, int *i, const char *name,
                const char **val);

/* Seconds (fractions allowed, 0 .. UINT32_MAX / 1000) as milliseconds; a
 * positive value never rounds to 0. Returns 0 or -1. */
int tw_cli_secs_ms(const char *s, uint64_t *ms);

/* A decimal integer in [min, max]. Returns 0 or -1. */
int tw_cli_int(const char *s, int64_t min, int64_t max, int64_t *v);

/* Connect to e->broker; NULL (with *code set) for a bad endpoint. */
tw_client_t *tw_cli_connect(const tw_cli_env_t *e, int *code);

/* A msgpack payload as JSON (null when absent, {"$bin": hex} when it does
 * not decode). NULL only on out-of-memory. */
json_t *tw_cli_payload_json(const void *p, size_t n);

/* Print `v` as one compact JSON line on stdout and flush; takes `v`. */
void tw_cli_print_json(json_t *v);

/* A copy of `s` with control characters replaced, for human output
 * (malloc'ed). */
char *tw_cli_clean(const char *s);

#endif /* TW_CLI_H */
