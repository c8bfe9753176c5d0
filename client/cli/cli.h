/*  client/cli/cli.h - the helpers every taskwheel command file shares.
 *
 *  main.c parses the global flags (global.c) into a tw_cli_env_t and runs
 *  the command the table in commands.c names; each command lives in its
 *  own cmd_<name>.c. The few functions one command file lends another
 *  (cancel's pool forms, submit's pool and channel flags) are declared
 *  here too. Each command returns the CLI's exit code (0 ok, 1 failed, 2
 *  usage, 3 unreachable).
 *
 *  The helpers below (diagnostics, command words and flags, numbers,
 *  requests, JSON and table output) are the one set every command file
 *  uses, so all commands follow the same output discipline: data on
 *  stdout, one "taskwheel: " line per diagnostic on stderr, and strings
 *  from the broker cleaned of control characters before they reach a
 *  terminal. Functions that return "-1 or an exit code" return -1 to mean
 *  "go on" and an exit code after printing why.
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
    const char *status; /* --status: the endpoint of events, station tail */
    const char *pool;   /* --pool; NULL = "default" */
    int json;
    int timeout_ms;
    int argc;
    char **argv;
} tw_cli_env_t;

#define TW_CLI_DEFAULT_BROKER "tcp://127.0.0.1:7710"
#define TW_CLI_DEFAULT_STATUS "tcp://127.0.0.1:7712"
#define TW_CLI_DEFAULT_TIMEOUT_MS 5000

/* The global flags' text in the manual (global.c). */
extern const char tw_cli_global_flags[];

/* Parse the global flags anywhere in argv, collecting the other words
 * into e->argv (the caller frees it); *help is set when --help (or -h) is
 * among them. Returns -1 to continue, or an exit code. */
int tw_cli_parse_global(int argc, char **argv, tw_cli_env_t *e, int *help);

/* `cancel` with --strict, --group G or --all; returns -1 (doing nothing)
 * when none of them is among the words, so the caller's plain `cancel
 * ID...` runs instead. */
int tw_cli_cancel(const tw_cli_env_t *e);

/* The most parents `submit --after` takes on one command line. */
#define TW_CLI_MAX_AFTER 4096

/* The pool flags of `submit`: --group G (repeatable), --delay S,
 * --at TIME (RFC 3339), --key K, and the dependency flags --after
 * ID[,ID...] (repeatable), --after-any-end, --with-results.
 * tw_cli_submit_flag looks at argv[*i]: returns 0 if it is none of them,
 * 1 if it took it (and its value; *i advances), or TW_CLI_USAGE after
 * printing why. tw_cli_submit_apply copies the result and the --pool into
 * `spec`; `x` must outlive the spec's use. */
typedef struct {
    const char *groups[TW_CLIENT_MAX_GROUPS];
    size_t ngroups;
    uint64_t delay_ms;
    uint64_t at_ms; /* wall-clock ms since the epoch, 0: none */
    const char *key;
    uint64_t after[TW_CLI_MAX_AFTER];
    size_t nafter;
    int after_any_end, with_results;
} tw_cli_submit_ext_t;

int tw_cli_submit_flag(tw_cli_submit_ext_t *x, int argc, char **argv,
                       int *i);
void tw_cli_submit_apply(const tw_cli_submit_ext_t *x, const char *pool,
                         tw_task_spec_t *spec);

/* ------------------------------------------------------------------ */
/* Diagnostics                                                        */

/* "taskwheel: <message>" and then `end` on stderr; returns `code`. */
int tw_cli_say(int code, const char *end, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* tw_cli_fail(code, fmt, ...): one diagnostic line; returns `code`.
 * tw_cli_usage(fmt, ...): the same plus "Try 'taskwheel --help'.";
 * returns TW_CLI_USAGE. */
#define tw_cli_fail(code, ...) tw_cli_say((code), "\n", __VA_ARGS__)
#define tw_cli_usage(...)                                                    \
    tw_cli_say(TW_CLI_USAGE, "\nTry 'taskwheel --help'.\n", __VA_ARGS__)

/* "broker at <e->broker> is unreachable"; returns TW_CLI_UNREACH. */
int tw_cli_unreachable(const tw_cli_env_t *e);

/* Report the library error `rc` of operation `what`: TW_CLI_UNREACH for
 * TW_EUNREACH, else TW_CLI_FAIL with the broker's message (cleaned) if
 * any. */
int tw_cli_lib_error(const tw_cli_env_t *e, tw_client_t *c, const char *what,
                     int rc);

/* ------------------------------------------------------------------ */
/* Words and flags                                                    */

/* If argv[*i] is the flag `name` ("--name" or "--name=value"), return 1
 * and set *val (taken from the next word if needed; *i advances); 0 if it
 * is another word; -1 if the value is missing. */
int tw_cli_flag(int argc, char **argv, int *i, const char *name,
                const char **val);

/* The words of a command after its name: flags with values and
 * positionals. The command's parse loop asks for each flag it knows; what
 * remains is either positional or unknown. */
typedef struct {
    int argc;
    char **argv;
    int i;        /* the current word */
    int dashdash; /* after "--": everything is positional */
} tw_cli_words_t;

/* The words of the command in `e` from argv[first] on. */
tw_cli_words_t tw_cli_words(const tw_cli_env_t *e, int first);

/* Step to the next word and return it, or NULL after the last. The first
 * bare "--" is not returned: it makes every later word positional. */
const char *tw_cli_next_word(tw_cli_words_t *w);

/* 1 if the current word is a flag ("--..." before any bare "--"). */
int tw_cli_is_flag(const tw_cli_words_t *w);

/* tw_cli_flag for the current word of `w`. */
int tw_cli_word_flag(tw_cli_words_t *w, const char *name, const char **val);

/* submit --wait's task channel (cmd_chan.c): the task's items as JSON
 * lines on stderr, requests answered with --respond or refused. */
typedef struct {
    tw_client_t *c;
    uint64_t id;   /* the task; 0 until acknowledged */
    void *respond; /* --respond as msgpack, or NULL: refuse requests */
    size_t rlen;
} tw_cli_chan_t;

/* If the current word is --respond, take its JSON value: 1; 0 if it is
 * another word; or a usage exit code (> 1) for a bad value. */
int tw_cli_chan_flag(tw_cli_chan_t *ch, tw_cli_words_t *w);

/* Print and answer the channel items of task ch->id seen by `c`. */
void tw_cli_chan_attach(tw_cli_chan_t *ch, tw_client_t *c);
void tw_cli_chan_free(tw_cli_chan_t *ch);

/* JSON text given for `what` (ARGS-JSON, DATA-JSON) as msgpack. Returns
 * -1 and sets *out (free()) and *len, or an exit code. */
int tw_cli_json_arg(const char *what, const char *text, void **out,
                    size_t *len);

/* 1 if `v` is one of the NULL-terminated `set`. */
int tw_cli_one_of(const char *v, const char *const *set);

/* Usage error unless the command (e->argv[0]) has no further words.
 * Returns -1 or an exit code. */
int tw_cli_no_args(const tw_cli_env_t *e);

/* ------------------------------------------------------------------ */
/* Numbers                                                            */

/* An unsigned decimal integer (digits only). Returns 0 or -1. */
int tw_cli_u64(const char *s, uint64_t *v);

/* A decimal integer in [min, max]. Returns 0 or -1. */
int tw_cli_int(const char *s, int64_t min, int64_t max, int64_t *v);

/* Non-negative seconds, fractions allowed, at most `max`. Returns 0 or
 * -1. */
int tw_cli_secs(const char *s, double max, double *v);

/* The seconds value of flag `flag` (`r` is what tw_cli_flag said) in
 * milliseconds, 0 .. UINT32_MAX; a positive value never rounds down to 0.
 * Returns -1, or the usage error "FLAG needs a number of seconds". */
int tw_cli_flag_ms(const char *flag, int r, const char *val, uint64_t *ms);

/* The positional task ids of `cmd` (result, cancel) into *ids, which the
 * caller frees; `skip` (may be NULL) is a flag to pass over, and named in
 * the message for no ids ("cancel --strict needs ..."). Any other flag is
 * a usage error. Returns -1, or an exit code after freeing *ids. */
int tw_cli_ids(const tw_cli_env_t *e, const char *cmd, const char *skip,
               uint64_t **ids, size_t *n);

/* ------------------------------------------------------------------ */
/* Requests                                                           */

/* Connect to e->broker (over CURVE when keys were given, secure.h); NULL,
 * with *code set, for a bad endpoint or key file. */
tw_client_t *tw_cli_connect(const tw_cli_env_t *e, int *code);

/* The requests of tw_cli_request, each with its `arg`. */
typedef enum {
    TW_CLI_REQ_QUERY,   /* tw_client_query: the `what` string */
    TW_CLI_REQ_CANCEL,  /* tw__client_cancel: a tw__ids_t (internal.h) */
    TW_CLI_REQ_STATION, /* tw_client_station: a tw_station_req_t */
    TW_CLI_REQ_GROUP,   /* tw_client_group: a tw_pool_req_t */
    TW_CLI_REQ_POOL,    /* tw_client_pool: a tw_pool_req_t */
    TW_CLI_REQ_WORKER,  /* tw_client_worker: a tw_worker_req_t */
    TW_CLI_REQ_SCHEDULE /* tw_client_schedule: a tw_schedule_req_t */
} tw_cli_req_t;

/* Connect, make the request `kind` with `arg`, waiting up to
 * e->timeout_ms, and return its REPLY data as JSON; or NULL with *code
 * set: 1 for a broker error (reported as the failure of `what`) or out of
 * memory, 2 for a bad endpoint, 3 when the broker did not answer. */
json_t *tw_cli_request(const tw_cli_env_t *e, const char *what,
                       tw_cli_req_t kind, const void *arg, int *code);

/* Run QUERY `what` and return the reply data as JSON, or NULL with *code
 * set. */
json_t *tw_cli_query(const tw_cli_env_t *e, const char *what, int *code);

/* ------------------------------------------------------------------ */
/* Output                                                             */

/* A msgpack payload as JSON (null when absent, {"$bin": hex} when it does
 * not decode). NULL only on out-of-memory. */
json_t *tw_cli_payload_json(const void *p, size_t n);

/* Print `v` as one compact JSON line on stdout and flush; takes `v`. */
void tw_cli_print_json(json_t *v);

/* A copy of the string `s`, or of the `n` bytes at `s` (NUL bytes
 * included), with control characters replaced by '?', for human output
 * (malloc'ed; NULL on out-of-memory). */
char *tw_cli_clean(const char *s);
char *tw_cli_clean_len(const char *s, size_t n);

/* Print the array of objects `rows` as a table: one column per key, under
 * its title, each as wide as its widest cell; a cell's text is what
 * `cell` makes (malloc'ed) of the row's member, NULL when it has none.
 * Returns TW_CLI_OK, or TW_CLI_FAIL after printing "out of memory". */
int tw_cli_print_table(json_t *rows, const char *const *keys,
                       const char *const *titles, size_t ncols,
                       char *(*cell)(json_t *v));

/* Human text for a JSON value in a table cell or summary: strings bare,
 * arrays of scalars joined by commas, anything else as compact JSON.
 * malloc'ed; NULL on out-of-memory. tw_cli_cell is the same but "-" for
 * a missing or null value. */
char *tw_cli_text(json_t *v);
char *tw_cli_cell(json_t *v);

/* Call fn(arg, key, value) for each member of the object `v`: first those
 * named in the NULL-terminated `keys`, in that order, then the others in
 * the object's order. */
void tw_cli_each_member(json_t *v, const char *const *keys,
                        void (*fn)(void *arg, const char *key, json_t *val),
                        void *arg);

/* 1 if a task in state `st` failed (error, timeout, cancelled, lost,
 * unknown). */
int tw_cli_state_failed(int st);

/* {"id", "state", "result"?, "error"?, "worker"?, "attempt"?}; takes
 * `result` (may be NULL). */
json_t *tw_cli_outcome_json(uint64_t id, int st, json_t *result,
                            const char *error, uint64_t worker,
                            uint32_t attempt);

/* How a command shows reply data `v` (borrowed) to people; `arg` is the
 * command's. Returns an exit code. */
typedef int (*tw_cli_human_fn)(json_t *v, const void *arg);

/* Print reply data `v` and drop it: as JSON with --json or when it is not
 * of the JSON type `want` (-1: any), else with `human`. A NULL `v` is a
 * failed request, whose exit code `code` is returned. */
int tw_cli_reply(const tw_cli_env_t *e, json_t *v, int code, int want,
                 tw_cli_human_fn human, const void *arg);

/* A listing: the columns of tw_cli_print_table, and what to say when there
 * are no rows. */
typedef struct {
    const char *const *keys;
    const char *const *titles;
    size_t ncols;
    const char *none;
} tw_cli_listing_t;

/* A tw_cli_human_fn: the array `rows` as the table of the
 * tw_cli_listing_t `arg`. */
int tw_cli_print_listing(json_t *rows, const void *arg);

#endif /* TW_CLI_H */
