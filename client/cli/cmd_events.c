/*  client/cli/cmd_events.c - `taskwheel events`: status events as JSON
 *  lines {"topic", "body"} (sub.h does the subscribing).
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "client/cli/sub.h"

#include <stdlib.h>
#include <string.h>

/* Print one status message as {"topic", "body"}. */
static int
s_print_event(void *arg, zmq_msg_t *topic, zmq_msg_t *body)
{
    (void)arg;
    msgpack_object t;
    memset(&t, 0, sizeof t);
    t.type = MSGPACK_OBJECT_STR;
    t.via.str.ptr = zmq_msg_data(topic);
    t.via.str.size = (uint32_t)zmq_msg_size(topic);
    json_t *o = json_object();
    json_object_set_new(o, "topic", tw_json_from_object(&t));
    json_object_set_new(
        o, "body",
        tw_cli_payload_json(zmq_msg_data(body), zmq_msg_size(body)));
    tw_cli_print_json(o);
    return 1;
}

static int
s_cmd_events(const tw_cli_env_t *o)
{
    tw_cli_words_t w = tw_cli_words(o, 1);
    const char **prefixes = calloc((size_t)o->argc, sizeof *prefixes);
    size_t nprefixes = 0;
    uint64_t count = 0;
    double for_secs = -1;
    int code = -1;
    const char *a;
    if (!prefixes) {
        return tw_cli_fail(TW_CLI_FAIL, "out of memory");
    }
    while (code < 0 && (a = tw_cli_next_word(&w)) != NULL) {
        if (!tw_cli_is_flag(&w)) {
            prefixes[nprefixes++] = a;
        } else if (!tw_cli_stream_flag(&w, &count, &for_secs, &code)) {
            code = tw_cli_usage("events: unknown option '%s'", a);
        }
    }
    if (code >= 0) {
        free(prefixes);
        return code;
    }
    void *ctx, *sub;
    char ep[300];
    code = tw_cli_sub_open(o, prefixes, nprefixes, &ctx, &sub, ep, sizeof ep);
    if (code < 0) {
        code = tw_cli_sub_loop(sub, ep, o->timeout_ms, count, for_secs,
                               s_print_event, NULL);
        tw_cli_sub_close(ctx, sub);
    }
    free(prefixes);
    return code;
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_events[] = {
    {"events", "[TOPIC-PREFIX...]", "[--count N] [--for S]",
     "Print status events as JSON lines {\"topic\": ..., \"body\": ...}\n"
     "until interrupted, N events were printed or S seconds passed.\n"
     "Topics start with worker., task., stats, station.<ID>. or\n"
     "s2n.<ID>.",
     s_cmd_events},
    {NULL, NULL, NULL, NULL, NULL},
};
