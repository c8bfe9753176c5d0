/*  broker/status.c - the XPUB publisher (see status.h). */
#include "broker/status.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/util.h"

#include <string.h>

/* Distinct subscription prefixes the broker tracks; beyond this a new
 * prefix is not tracked (libzmq still filters for it), so a subscriber
 * cannot grow the broker's memory without bound. */
#define S_MAX_SUBS 4096

static void
s_add(tw_status_t *st, const char *p, size_t len)
{
    if (st->nsubs >= S_MAX_SUBS) {
        if (!st->subs_capped) {
            st->subs_capped = 1;
            tw_warn("status.subscriptions", "more than %d subscription "
                    "prefixes: further ones are not tracked", S_MAX_SUBS);
        }
        return;
    }
    st->subs = tw_realloc(st->subs, (st->nsubs + 1) * sizeof *st->subs);
    st->sublen = tw_realloc(st->sublen, (st->nsubs + 1) * sizeof(size_t));
    st->subs[st->nsubs] = tw_strndup(p, len);
    st->sublen[st->nsubs] = len;
    st->nsubs++;
}

static void
s_del(tw_status_t *st, const char *p, size_t len)
{
    for (size_t i = 0; i < st->nsubs; i++) {
        if (st->sublen[i] == len && memcmp(st->subs[i], p, len) == 0) {
            tw_free(st->subs[i]);
            st->subs[i] = st->subs[st->nsubs - 1];
            st->sublen[i] = st->sublen[st->nsubs - 1];
            st->nsubs--;
            return;
        }
    }
}

/* XPUB delivers each new subscription as "\x01prefix" and each last
 * unsubscription as "\x00prefix". */
static void
s_on_sub(tw_zwatch_t *zw, tw_zframes_t *msg)
{
    tw_status_t *st = zw->data;
    if (msg->n < 1 || zmq_msg_size(&msg->f[0]) < 1) {
        return;
    }
    const char *d = zmq_msg_data(&msg->f[0]);
    size_t len = zmq_msg_size(&msg->f[0]) - 1;
    if (d[0] == 1) {
        s_add(st, d + 1, len);
        tw_debug("status.subscribe", "prefix '%.*s'", (int)len, d + 1);
    } else if (d[0] == 0) {
        s_del(st, d + 1, len);
    }
}

int
tw_status_init(uv_loop_t *loop, tw_status_t *st, void *sock)
{
    memset(st, 0, sizeof *st);
    tw_tseq_init(&st->tseq);
    int rc = tw_zwatch_init(loop, &st->zw, sock);
    if (rc != 0) {
        return rc;
    }
    st->zw.data = st;
    return tw_zwatch_start(&st->zw, s_on_sub, NULL);
}

void
tw_status_close(tw_status_t *st, tw_zwatch_close_cb cb)
{
    for (size_t i = 0; i < st->nsubs; i++) {
        tw_free(st->subs[i]);
    }
    tw_free(st->subs);
    tw_free(st->sublen);
    st->subs = NULL;
    st->sublen = NULL;
    st->nsubs = 0;
    tw_tseq_free(&st->tseq);
    tw_zwatch_close(&st->zw, cb);
}

int
tw_status_wants(const tw_status_t *st, const char *topic)
{
    size_t tl = strlen(topic);
    for (size_t i = 0; i < st->nsubs; i++) {
        if (st->sublen[i] <= tl &&
            memcmp(st->subs[i], topic, st->sublen[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

void
tw_status_begin(tw_status_t *st, tw_enc_t *e, size_t nfields)
{
    tw_enc_map(e, nfields + 3);
    tw_enc_cstr(e, "pseq");
    tw_enc_uint(e, st->pseq + 1);
}

void
tw_status_send(tw_status_t *st, const char *topic, tw_enc_t *e)
{
    /* Status messages carry no protocol header: only topic and body. */
    size_t tl = strlen(topic);
    tw_enc_cstr(e, "tseq");
    tw_enc_uint(e, tw_tseq_next(&st->tseq, topic, tl));
    tw_enc_cstr(e, "ts");
    tw_enc_uint(e, tw_wall_ms());
    zmq_msg_t tmp[2], f[2];
    tw_enc_frames(e, TW_CMD_NONE, tmp);
    zmq_msg_close(&tmp[0]);
    zmq_msg_init_size(&f[0], tl);
    memcpy(zmq_msg_data(&f[0]), topic, tl);
    zmq_msg_init(&f[1]);
    zmq_msg_move(&f[1], &tmp[1]);
    zmq_msg_close(&tmp[1]);
    if (tw_zwatch_send(&st->zw, f, 2) != 0) {
        zmq_msg_close(&f[0]);
        zmq_msg_close(&f[1]);
        st->dropped++;
    }
    st->pseq++;
}
