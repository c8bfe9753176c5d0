/*  tests/unit/support/proto_msgs.c - the message rows of proto_msgs.h.
 *
 *  One builder per message; the table at the bottom names each with its
 *  header and the decoder's answer.
 */
#include "tests/unit/support/proto_msgs.h"

#include "common/error.h"

/* A payload: one msgpack value, packed into a BIN field. */
static void
s_payload(tw_enc_t *e, uint64_t v)
{
    unsigned char p[9] = {0xcf};
    for (int i = 0; i < 8; i++) {
        p[1 + i] = (unsigned char)(v >> (56 - 8 * i));
    }
    tw_enc_bin(e, p, sizeof p);
}

/* HELLO, as a worker sends it. */
static void
s_hello(tw_enc_t *e)
{
    tw_enc_map(e, 7);
    tw_enc_key(e, TW_F_NAME);
    tw_enc_cstr(e, "w-host1-0a1b2c3d");
    tw_enc_key(e, TW_F_HOST);
    tw_enc_cstr(e, "host1");
    tw_enc_key(e, TW_F_PID);
    tw_enc_uint(e, 4242);
    tw_enc_key(e, TW_F_SLOTS);
    tw_enc_uint(e, 8);
    tw_enc_key(e, TW_F_HANDLERS);
    tw_enc_array(e, 4);
    tw_enc_cstr(e, "echo");
    tw_enc_cstr(e, "sleep");
    tw_enc_cstr(e, "noop");
    tw_enc_cstr(e, "fail");
    tw_enc_key(e, TW_F_TAGS);
    tw_enc_map(e, 2);
    tw_enc_cstr(e, "zone");
    tw_enc_cstr(e, "a");
    tw_enc_cstr(e, "gpu");
    tw_enc_cstr(e, "no");
    tw_enc_key(e, TW_F_VER);
    tw_enc_cstr(e, "0.1.0");
}

/* WELCOME. */
static void
s_welcome(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_WID);
    tw_enc_uint(e, 1);
    tw_enc_key(e, TW_F_HB);
    tw_enc_uint(e, 1000);
}

/* READY. */
static void
s_ready(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 8);
}

/* TASKS with two items, one with a timeout and an attempt. */
static void
s_tasks(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 17);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "echo");
    tw_enc_ikey(e, TW_I_A);
    s_payload(e, 119);
    tw_enc_map(e, 5);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 18);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "sleep");
    tw_enc_ikey(e, TW_I_A);
    s_payload(e, 5);
    tw_enc_ikey(e, TW_I_TO);
    tw_enc_uint(e, 30000);
    tw_enc_ikey(e, TW_I_AT);
    tw_enc_uint(e, 2);
}

/* DONE: one ok with a result, one error, credit back. */
static void
s_done(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 17);
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, 0);
    tw_enc_ikey(e, TW_I_R);
    s_payload(e, 119);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 18);
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_ERR);
    tw_enc_cstr(e, "handler raised: division by zero");
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 2);
}

/* CANCEL (client form, with seq). */
static void
s_cancel(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 9);
    tw_enc_key(e, TW_F_IDS);
    tw_enc_array(e, 3);
    tw_enc_uint(e, 17);
    tw_enc_uint(e, 18);
    tw_enc_uint(e, 1ULL << 40);
}

static void
s_heartbeat(tw_enc_t *e)
{
    tw_enc_map(e, 0);
}

static void
s_bye(tw_enc_t *e)
{
    tw_enc_map(e, 0);
}

/* ERROR, as the broker answers an unknown worker. */
static void
s_error(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_CODE);
    tw_enc_int(e, -4009);
    tw_enc_key(e, TW_F_MSG);
    tw_enc_cstr(e, "unknown worker: send HELLO first");
}

/* SUBMIT with every optional item field. */
static void
s_submit(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "noop");
    tw_enc_map(e, 6);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 2);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "echo");
    tw_enc_ikey(e, TW_I_A);
    s_payload(e, 7);
    tw_enc_ikey(e, TW_I_TO);
    tw_enc_uint(e, 1000);
    tw_enc_ikey(e, TW_I_PRI);
    tw_enc_int(e, -3);
    tw_enc_ikey(e, TW_I_RE);
    tw_enc_uint(e, 2);
}

/* ACK: one accepted, one refused. */
static void
s_ack(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 17);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 2);
    tw_enc_ikey(e, TW_I_CODE);
    tw_enc_int(e, -4004);
    tw_enc_ikey(e, TW_I_ERR);
    tw_enc_cstr(e, "unknown handler 'nope'");
}

/* RESULT pushed to a client. */
static void
s_result_push(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, 6);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 17);
    tw_enc_ikey(e, TW_I_SEQ);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_ST);
    tw_enc_uint(e, 0);
    tw_enc_ikey(e, TW_I_R);
    s_payload(e, 119);
    tw_enc_ikey(e, TW_I_W);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_AT);
    tw_enc_uint(e, 1);
}

/* RESULT as a query. */
static void
s_result_query(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 4);
    tw_enc_key(e, TW_F_IDS);
    tw_enc_array(e, 1);
    tw_enc_uint(e, 17);
}

/* QUERY and a REPLY with nested data. */
static void
s_query(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 5);
    tw_enc_key(e, TW_F_WHAT);
    tw_enc_cstr(e, "status");
}

/* SCHEDULE add with its task template (PROTOCOL.md 18.11). */
static void
s_schedule(tw_enc_t *e)
{
    tw_enc_map(e, 8);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 6);
    tw_enc_key(e, TW_F_OP);
    tw_enc_cstr(e, "add");
    tw_enc_key(e, TW_F_NAME);
    tw_enc_cstr(e, "nightly-cleanup");
    tw_enc_key(e, TW_F_CRON);
    tw_enc_cstr(e, "0 3 * * mon-fri");
    tw_enc_key(e, TW_F_TZ);
    tw_enc_cstr(e, "Europe/Berlin");
    tw_enc_key(e, TW_F_OVERLAP);
    tw_enc_cstr(e, "queue");
    tw_enc_key(e, TW_F_CATCHUP);
    tw_enc_cstr(e, "last");
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_H);
    tw_enc_cstr(e, "cleanup");
    tw_enc_ikey(e, TW_I_A);
    tw_enc_bin(e, "\x91\xa4/tmp", 6);
    tw_enc_ikey(e, TW_I_TO);
    tw_enc_uint(e, 600000);
}

static void
s_reply(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, 5);
    tw_enc_key(e, TW_F_DATA);
    tw_enc_map(e, 3);
    tw_enc_cstr(e, "cancelled");
    tw_enc_array(e, 1);
    tw_enc_uint(e, 17);
    tw_enc_cstr(e, "ended");
    tw_enc_array(e, 0);
    tw_enc_cstr(e, "stats");
    tw_enc_map(e, 2);
    tw_enc_cstr(e, "submitted");
    tw_enc_uint(e, 10000);
    tw_enc_cstr(e, "ratio");
    msgpack_pack_double(&e->pk, 0.5);
}

/* Near-misses. */
static void
s_bad_version(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 8);
}

static void
s_bad_command(tw_enc_t *e)
{
    tw_enc_map(e, 0);
}

static void
s_truncated(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_MSG);
    tw_enc_cstr(e, "this body is cut short");
}

static void
s_duplicate_key(tw_enc_t *e)
{
    tw_enc_map(e, 2);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_uint(e, 2);
}

static void
s_wrong_type(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_CREDIT);
    tw_enc_cstr(e, "8");
}

static void
s_missing_item_field(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 1);
    tw_enc_map(e, 1);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 1);
}

/* A worker name that is not clean text: decodes, but fails the text
 * check the broker makes on a HELLO (broker/gate.h). */
static void
s_unclean_name(tw_enc_t *e)
{
    tw_enc_map(e, 3);
    tw_enc_key(e, TW_F_NAME);
    tw_enc_cstr(e, "evil\x1b[2Jworker");
    tw_enc_key(e, TW_F_SLOTS);
    tw_enc_uint(e, 1);
    tw_enc_key(e, TW_F_HANDLERS);
    tw_enc_array(e, 1);
    tw_enc_cstr(e, "echo");
}

/* CHAN up, as a worker sends a task's channel items (open, msg, req
 * with its correlation id), and down, a client's resp and closereq. */
static void
s_chan_up(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 3);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 7);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, "open");
    tw_enc_map(e, 3);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 7);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, "msg");
    tw_enc_ikey(e, TW_I_D);
    s_payload(e, 1);
    tw_enc_map(e, 4);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 7);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, "req");
    tw_enc_ikey(e, TW_I_CR);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_D);
    s_payload(e, 2);
}

static void
s_chan_down(tw_enc_t *e)
{
    tw_enc_map(e, 1);
    tw_enc_key(e, TW_F_ITEMS);
    tw_enc_array(e, 2);
    tw_enc_map(e, 4);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 7);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, "resp");
    tw_enc_ikey(e, TW_I_CR);
    tw_enc_uint(e, 1);
    tw_enc_ikey(e, TW_I_D);
    s_payload(e, 3);
    tw_enc_map(e, 2);
    tw_enc_ikey(e, TW_I_ID);
    tw_enc_uint(e, 8);
    tw_enc_ikey(e, TW_I_EV);
    tw_enc_cstr(e, "closereq");
}

const tw_test_proto_msg_t tw_test_proto_msgs[] = {
    {"hello", TW_CMD_HELLO, 1, 0, s_hello, 0},
    {"welcome", TW_CMD_WELCOME, 1, 0, s_welcome, 0},
    {"ready", TW_CMD_READY, 1, 0, s_ready, 0},
    {"tasks", TW_CMD_TASKS, 1, 0, s_tasks, 0},
    {"done", TW_CMD_DONE, 1, 0, s_done, 0},
    {"cancel", TW_CMD_CANCEL, 1, 0, s_cancel, 0},
    {"heartbeat", TW_CMD_HEARTBEAT, 1, 0, s_heartbeat, 0},
    {"bye", TW_CMD_BYE, 1, 0, s_bye, 0},
    {"error", TW_CMD_ERROR, 1, 0, s_error, 0},
    {"submit", TW_CMD_SUBMIT, 1, 0, s_submit, 0},
    {"ack", TW_CMD_ACK, 1, 0, s_ack, 0},
    {"result-push", TW_CMD_RESULT, 1, 0, s_result_push, 0},
    {"result-query", TW_CMD_RESULT, 1, 0, s_result_query, 0},
    {"query", TW_CMD_QUERY, 1, 0, s_query, 0},
    {"schedule", TW_CMD_SCHEDULE, 1, 0, s_schedule, 0},
    {"reply", TW_CMD_REPLY, 1, 0, s_reply, 0},
    {"bad-version", TW_CMD_READY, 2, 0, s_bad_version, TW_EVERSION},
    {"bad-command", (tw_cmd_t)200, 1, 0, s_bad_command, TW_ECOMMAND},
    {"truncated", TW_CMD_ERROR, 1, 5, s_truncated, TW_EPROTO},
    {"duplicate-key", TW_CMD_READY, 1, 0, s_duplicate_key, TW_EPROTO},
    {"wrong-type", TW_CMD_READY, 1, 0, s_wrong_type, TW_EPROTO},
    {"missing-item-field", TW_CMD_DONE, 1, 0, s_missing_item_field,
     TW_EPROTO},
    {"unclean-name", TW_CMD_HELLO, 1, 0, s_unclean_name, 0},
    {"chan-up", TW_CMD_CHAN, 1, 0, s_chan_up, 0},
    {"chan-down", TW_CMD_CHAN, 1, 0, s_chan_down, 0},
};

const size_t tw_test_proto_nmsgs = sizeof tw_test_proto_msgs /
                                   sizeof tw_test_proto_msgs[0];

size_t
tw_test_proto_msg_build(const tw_test_proto_msg_t *m,
                        unsigned char hdr[TW_PROTO_HDRLEN], tw_enc_t *e)
{
    tw_proto_header_make(m->cmd, hdr);
    hdr[2] = (unsigned char)m->version;
    m->build(e);
    return e->sb.size > m->cut ? e->sb.size - m->cut : 0;
}
