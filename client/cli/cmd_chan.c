/*  client/cli/cmd_chan.c - task channels in `taskwheel submit --wait`.
 *
 *  While `submit --wait` waits, the task may talk on its channel (S90-
 *  S93). Each of the task's channel items is printed as one JSON line on
 *  stderr, so stdout still holds only the result and scripts that read it
 *  are unaffected:
 *
 *      {"chan":"open","id":7,"data":null}
 *      {"chan":"msg","id":7,"data":1}
 *      {"chan":"req","id":7,"cr":1,"data":"ask"}
 *      {"chan":"close","id":7}
 *
 *  A request is answered with the value of --respond JSON; without it the
 *  CLI refuses requests by asking the task to close its channel, so the
 *  task's request fails at once with CloseRequestError instead of waiting
 *  for its timeout. Items of other tasks are ignored (the command submits
 *  one task, so items before its acknowledgement are its own).
 */
#include "client/cli/cli.h"
#include "client/cli/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_on_chan(void *arg, const tw_chan_msg_t *m)
{
    tw_cli_chan_t *ch = arg;
    static const char *const names[] = {"?", "open", "msg", "req", "close"};
    if (ch->id && m->id != ch->id) {
        return 0;
    }
    json_t *line = json_pack("{s:s,s:I}", "chan",
                             names[m->kind <= TW_CHAN_CLOSE ? m->kind : 0],
                             "id", (json_int_t)m->id);
    if (m->kind == TW_CHAN_REQ) {
        json_object_set_new(line, "cr", json_integer((json_int_t)m->cr));
    }
    if (m->kind != TW_CHAN_CLOSE) {
        json_object_set_new(line, "data",
                            tw_cli_payload_json(m->data, m->len));
    }
    char *text = tw_json_dumps(line);
    if (text) {
        fprintf(stderr, "%s\n", text);
        fflush(stderr);
        free(text);
    }
    json_decref(line);
    if (m->kind == TW_CHAN_REQ) {
        if (ch->respond) {
            tw_client_respond(ch->c, m->id, m->cr, ch->respond, ch->rlen);
        } else {
            tw_client_close_channel(ch->c, m->id);
        }
    }
    return 0;
}

int
tw_cli_chan_flag(tw_cli_chan_t *ch, tw_cli_words_t *w)
{
    const char *val;
    int r = tw_cli_word_flag(w, "--respond", &val);
    if (r == 0) {
        return 0;
    }
    if (r < 0) {
        return tw_cli_usage("--respond needs a JSON value");
    }
    char err[256];
    free(ch->respond);
    ch->respond = NULL;
    if (tw_json_to_msgpack(val, &ch->respond, &ch->rlen, err, sizeof err) !=
        0) {
        return tw_cli_fail(TW_CLI_USAGE, "--respond is not valid JSON: %s",
                           err);
    }
    return 1;
}

void
tw_cli_chan_attach(tw_cli_chan_t *ch, tw_client_t *c)
{
    ch->c = c;
    tw_client_on_channel(c, s_on_chan, ch);
}

void
tw_cli_chan_free(tw_cli_chan_t *ch)
{
    free(ch->respond);
    ch->respond = NULL;
}
