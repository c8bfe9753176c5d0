/*  broker/out/out.c - sending on the ROUTER sockets (see out.h). */
#include "broker/out/out.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
tw_out_built(tw_out_t *o, tw_out_side_t side, zmq_msg_t f[3])
{
    if (side == TW_OUT_FRONT && o->capture &&
        o->capture(o->capture_arg, f)) {
        return 0; /* taken by the HTTP API, not for the socket */
    }
    if (side == TW_OUT_FRONT && o->hold && o->hold(o->hold_arg, f)) {
        return 0; /* held behind what the store has not written yet */
    }
    int rc = tw_zwatch_send(&o->zw[side], f, 3);
    if (rc != 0) {
        for (int i = 0; i < 3; i++) {
            zmq_msg_close(&f[i]);
        }
        o->st->dropped++;
        /* ROUTER_MANDATORY makes a gone peer an error, not a silent
         * discard, so the two causes are told apart. */
        if (rc == TW_ENOENT) {
            o->st->unroutable++;
        } else if (rc == TW_EAGAIN) {
            o->st->hwm++;
        }
    }
    return rc;
}

/* Send [ident][header][body] whose last two frames are already built. */
static int
s_send3(tw_out_t *o, tw_out_side_t side, const void *ident, size_t ilen,
        zmq_msg_t f[3])
{
    zmq_msg_init_size(&f[0], ilen);
    memcpy(zmq_msg_data(&f[0]), ident, ilen);
    return tw_out_built(o, side, f);
}

int
tw_out_send(tw_out_t *o, tw_out_side_t side, const void *ident, size_t ilen,
            tw_cmd_t cmd, tw_enc_t *e)
{
    zmq_msg_t f[3];
    tw_enc_frames(e, cmd, &f[1]);
    return s_send3(o, side, ident, ilen, f);
}

int
tw_out_batch(tw_out_t *o, tw_out_side_t side, const void *ident,
             size_t ilen, tw_cmd_t cmd, tw_batch_t *batch)
{
    zmq_msg_t f[3];
    tw_batch_frames(batch, cmd, &f[1]);
    return s_send3(o, side, ident, ilen, f);
}

void
tw_out_error(tw_out_t *o, tw_out_side_t side, const void *ident, size_t ilen,
             int code, uint64_t seq, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, seq ? 3 : 2);
    tw_enc_key(&e, TW_F_CODE);
    tw_enc_int(&e, code);
    tw_enc_key(&e, TW_F_MSG);
    tw_enc_cstr(&e, msg);
    if (seq) {
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, seq);
    }
    tw_out_send(o, side, ident, ilen, TW_CMD_ERROR, &e);
    tw_enc_free(&e);
}

void
tw_out_reply_begin(tw_enc_t *e, uint64_t seq)
{
    tw_enc_init(e);
    tw_enc_map(e, 3); /* "boot" follows "data" (tw_out_reply) */
    tw_enc_key(e, TW_F_SEQ);
    tw_enc_uint(e, seq);
    tw_enc_key(e, TW_F_DATA);
}

void
tw_out_reply(tw_out_t *o, const void *ident, size_t ilen, tw_enc_t *e)
{
    tw_enc_key(e, TW_F_BOOT);
    tw_enc_uint(e, o->boot);
    if (o->ha) {
        /* tw_out_reply_begin wrote a map of 3 at offset 0 (fixmap 0x83):
         * one pair more. */
        ((unsigned char *)e->sb.data)[0] = 0x84;
        tw_enc_key(e, TW_F_HA);
        tw_enc_uint(e, o->ha);
    }
    tw_out_send(o, TW_OUT_FRONT, ident, ilen, TW_CMD_REPLY, e);
    tw_enc_free(e);
}

void
tw_out_reply_error(tw_out_t *o, const void *ident, size_t ilen, uint64_t seq,
                   int code, const char *msg)
{
    tw_out_error(o, TW_OUT_FRONT, ident, ilen, code, seq, "%s", msg);
}

int
tw_out_cmd(zmq_msg_t f[3])
{
    tw_cmd_t cmd;
    if (tw_proto_header(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &cmd) !=
        0) {
        return -1;
    }
    return (int)cmd;
}
