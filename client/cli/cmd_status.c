/*  client/cli/cmd_status.c - `taskwheel status [--all]`: the broker's
 *  counters.
 *
 *  Without --all a summary an operator reads first (a table of lines,
 *  each naming the counters it shows); with --all every counter as
 *  wrapped "key value" pairs; --json prints the status object. With a
 *  broker pair (--broker EP1,EP2) each broker is asked on its own.
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1d02h03m04s"-style text for a duration in milliseconds. */
static void
s_duration(char *buf, size_t len, double ms)
{
    uint64_t s = ms > 0 ? (uint64_t)(ms / 1000.0) : 0;
    uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    if (d) {
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", d, h,
                 m);
    } else if (h) {
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", h, m,
                 s % 60);
    } else if (m) {
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", m, s % 60);
    } else {
        snprintf(buf, len, "%.1fs", ms / 1000.0);
    }
}

/* Print "key value" pairs, wrapping lines before 78 columns. */
static void
s_status_pair(size_t *col, const char *key, const char *val)
{
    size_t need = strlen(key) + 1 + strlen(val);
    if (*col > 0 && *col + 2 + need > 78) {
        fputc('\n', stdout);
        *col = 0;
    }
    if (*col > 0) {
        fputs("  ", stdout);
        *col += 2;
    }
    printf("%s %s", key, val);
    *col += need;
}

static void
s_status_one(void *arg, const char *key, json_t *val)
{
    size_t *col = arg;
    char buf[64];
    if (strcmp(key, "uptime_ms") == 0 && json_is_number(val)) {
        s_duration(buf, sizeof buf, json_number_value(val));
        s_status_pair(col, "uptime", buf);
        return;
    }
    if (strcmp(key, "rate") == 0 && json_is_number(val)) {
        snprintf(buf, sizeof buf, "%.1f/s", json_number_value(val));
        s_status_pair(col, "rate", buf);
        return;
    }
    char *k = tw_cli_clean(key);
    char *t = tw_cli_text(val);
    s_status_pair(col, k ? k : "?", t ? t : "?");
    free(k);
    free(t);
}

/* One item of the status summary: the counter `key`, shown as "<value>
 * <text>", or as "<text> <value>" when `before` is set. */
typedef struct {
    const char *key;
    const char *text;
    int before;
} s_sum_item_t;

/* One line of the status summary: a label and up to 8 items; items whose
 * counter is missing (store_* without --data) are left out. */
typedef struct {
    const char *label;
    s_sum_item_t items[8];
} s_sum_line_t;

/* The value of status counter `key` as text, or NULL if it is absent. */
static char *
s_sum_value(json_t *v, const char *key)
{
    json_t *x = json_object_get(v, key);
    char buf[64];
    if (!x) {
        return NULL;
    }
    if (strcmp(key, "uptime_ms") == 0 && json_is_number(x)) {
        s_duration(buf, sizeof buf, json_number_value(x));
        return strdup(buf);
    }
    if (json_is_real(x)) {
        snprintf(buf, sizeof buf, "%.1f", json_real_value(x));
        return strdup(buf);
    }
    return tw_cli_text(x);
}

/* A broker of a pair (docs/HA.md): its role, state and epoch, its peer,
 * its position in the stream and how far the passive lags. Nothing for a
 * single broker. */
static void
s_print_pair(json_t *v)
{
    json_t *role = json_object_get(v, "ha_role");
    if (!json_is_string(role)) {
        return;
    }
    json_t *pos = json_object_get(v, "ha_pos");
    printf(
        "pair     %s, %s, epoch %lld; peer %s%s; replicate %s%s\n"
        "         position %lld:%lld",
        json_string_value(role),
        json_string_value(json_object_get(v, "ha_state")),
        json_integer_value(json_object_get(v, "ha_epoch")),
        json_string_value(json_object_get(v, "ha_peer")),
        json_integer_value(json_object_get(v, "ha_peer_alive")) ? ""
                                                                : " (silent)",
        json_string_value(json_object_get(v, "ha_replicate")),
        json_integer_value(json_object_get(v, "ha_sync")) ? " (waiting)" : "",
        json_integer_value(json_array_get(pos, 0)),
        json_integer_value(json_array_get(pos, 1)));
    if (strcmp(json_string_value(json_object_get(v, "ha_state")) ?: "",
               "active") == 0) {
        printf("; lag %lld batches, %lld bytes, %lld ms",
               json_integer_value(json_object_get(v, "ha_lag_batches")),
               json_integer_value(json_object_get(v, "ha_lag_bytes")),
               json_integer_value(json_object_get(v, "ha_lag_ms")));
    }
    fputc('\n', stdout);
}

/* An tw_cli_human_fn: the status summary, one line per topic, wrapped before
 * 78 columns under its label. */
static int
s_print_summary(json_t *v, const void *arg)
{
    static const s_sum_line_t lines[] = {
        {"workers",
         {{"workers", "workers", 0},
          {"slots", "slots", 0},
          {"running", "tasks running", 0},
          {"stations", "stations", 0},
          {"stations_running", "stations running", 0},
          {"stations_unplaced", "stations waiting", 0}}},
        {"queues",
         {{"queued", "tasks queued", 0},
          {"kept", "results kept", 0},
          {"clients", "clients", 0}}},
        {"rates",
         {{"rate", "tasks/s ended", 0},
          {"submitted", "submitted", 0},
          {"completed", "completed", 0},
          {"failed", "failed", 0},
          {"cancelled", "cancelled", 0},
          {"retried", "retried", 0}}},
        {"errors",
         {{"rejected", "submissions refused", 0},
          {"overflow", "over max-queue", 0},
          {"requeued", "requeued (worker lost)", 0},
          {"dropped", "messages dropped", 0},
          {"malformed", "malformed", 0},
          {"quarantined", "quarantined", 0},
          {"store_errors", "store errors", 0}}},
        {"broker",
         {{"uptime_ms", "up", 1},
          {"store_fsync", "fsync", 1},
          {"store_used_bytes", "store bytes used", 0}}},
    };
    (void)arg;
    s_print_pair(v);
    for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
        size_t col = (size_t)printf("%-9s", lines[l].label);
        int first = 1;
        for (size_t i = 0; i < 8 && lines[l].items[i].key; i++) {
            const s_sum_item_t *it = &lines[l].items[i];
            char *val = s_sum_value(v, it->key);
            if (!val) {
                continue;
            }
            char item[160];
            int n = it->before
                        ? snprintf(item, sizeof item, "%s %s", it->text, val)
                        : snprintf(item, sizeof item, "%s %s", val, it->text);
            free(val);
            size_t len = n > 0 ? (size_t)n : 0;
            if (!first && col + 2 + len > 78) {
                fputs(",\n         ", stdout);
                col = 9;
            } else if (!first) {
                fputs(", ", stdout);
                col += 2;
            }
            fputs(item, stdout);
            col += len;
            first = 0;
        }
        fputc('\n', stdout);
    }
    puts("         (every counter: taskwheel status --all)");
    return TW_CLI_OK;
}

/* An tw_cli_human_fn: the status object as wrapped "key value" pairs. */
static int
s_print_status(json_t *v, const void *arg)
{
    /* Known keys first, in this order; then whatever else came. */
    static const char *const order[] = {
        "workers",   "slots",     "running", "queued",
        "submitted", "completed", "failed",  "duplicates",
        "dropped",   "uptime_ms", "rate",    NULL};
    size_t col = 0;
    tw_cli_each_member(v, order, s_status_one, &col);
    if (col > 0) {
        fputc('\n', stdout);
    }
    return TW_CLI_OK;
}

/* status of a broker pair (--broker EP1,EP2): each broker asked on its
 * own, each shown under its endpoint (the passive answers status too);
 * with --json, an object of endpoint: status (null: unreachable). Exit 0
 * if one answered. */
static int
s_status_of_pair(const tw_cli_env_t *o, int all)
{
    char *list = strdup(o->broker), *save = NULL;
    json_t *out = json_object();
    int answered = 0, code = TW_CLI_UNREACH;
    for (char *ep = strtok_r(list, ",", &save); ep;
         ep = strtok_r(NULL, ",", &save)) {
        tw_cli_env_t one = *o;
        one.broker = ep;
        int rc = 0;
        json_t *v = tw_cli_query(&one, "status", &rc);
        answered += v != NULL;
        if (!v) {
            code = rc;
        }
        if (o->json) {
            json_object_set_new(out, ep, v ? v : json_null());
            continue;
        }
        printf("%sbroker   %s\n", answered + (v == NULL) > 1 ? "\n" : "", ep);
        if (v) {
            (all ? s_print_status : s_print_summary)(v, NULL);
            json_decref(v);
        }
    }
    if (o->json) {
        tw_cli_print_json(out);
    } else {
        json_decref(out);
    }
    free(list);
    return answered ? TW_CLI_OK : code;
}

/* status [--all]: the summary an operator reads first, or with --all
 * every counter (internal ones included); --json prints them all. */
static int
s_cmd_status(const tw_cli_env_t *o)
{
    int all = o->argc == 2 && strcmp(o->argv[1], "--all") == 0;
    int code = all ? -1 : tw_cli_no_args(o);
    if (code >= 0) {
        return code;
    }
    if (strchr(o->broker, ',')) {
        return s_status_of_pair(o, all);
    }
    json_t *v = tw_cli_query(o, "status", &code);
    return tw_cli_reply(o, v, code, JSON_OBJECT,
                        all ? s_print_status : s_print_summary, NULL);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_status[] = {
    {"status", "", "[--all]",
     "What an operator needs first: workers, slots, queues, rates and\n"
     "errors, one line each; --all prints every counter (--json always\n"
     "prints them all).",
     s_cmd_status},
    {NULL, NULL, NULL, NULL, NULL},
};
