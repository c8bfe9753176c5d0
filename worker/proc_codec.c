/*  worker/proc_codec.c - the frames of the process handler protocol (see
 *  proc_codec.h and proto/PROTOCOL.md 15.3-15.4).
 *
 *  Keys go out in the order 15.4 lists, so that a frame's bytes are a
 *  function of its content alone; msgpack-c writes every integer in its
 *  shortest form, as the worked example does.
 */
#include "worker/proc_codec.h"
#include "common/error.h"
#include "proto/mpwalk.h"
#include "worker/procpool.h"

#include <stdio.h>
#include <string.h>

static void
s_key(tw_enc_t *e, const char *k)
{
    tw_enc_str(e, k, strlen(k));
}

void
tw_proc_enc_call(tw_enc_t *e, const tw_proc_call_t *c)
{
    static const char nil = (char)0xc0;
    size_t at = tw_frame_open(e);
    tw_enc_map(e, 6 + (c->to ? 2 : 0) + (c->n2s ? 1 : 0));
    s_key(e, "ev");
    tw_enc_cstr(e, "call");
    s_key(e, "kind");
    tw_enc_cstr(e, c->station ? "station" : "task");
    s_key(e, "h");
    tw_enc_str(e, c->h, c->hlen);
    if (c->station) {
        s_key(e, "sid");
        tw_enc_str(e, c->sid, c->sidlen);
        s_key(e, "it");
        tw_enc_uint(e, c->it);
    } else {
        s_key(e, "task");
        tw_enc_uint(e, c->task);
        s_key(e, "at");
        tw_enc_uint(e, c->at);
    }
    if (c->to) {
        s_key(e, "to");
        tw_enc_uint(e, c->to);
        s_key(e, "dl");
        tw_enc_uint(e, c->dl);
    }
    if (c->n2s) {
        s_key(e, "n2s");
        tw_enc_bool(e, 1);
    }
    s_key(e, "a");
    if (c->a && c->alen) {
        msgpack_sbuffer_write(&e->sb, c->a, c->alen);
    } else {
        msgpack_sbuffer_write(&e->sb, &nil, 1);
    }
    tw_frame_end(e, at);
}

void
tw_proc_enc_n2s(tw_enc_t *e, uint64_t seq, const void *d, size_t len)
{
    static const char nil = (char)0xc0;
    size_t at = tw_frame_open(e);
    tw_enc_map(e, 3);
    s_key(e, "ev");
    tw_enc_cstr(e, "n2s");
    s_key(e, "seq");
    tw_enc_uint(e, seq);
    s_key(e, "d");
    if (d && len) {
        msgpack_sbuffer_write(&e->sb, d, len);
    } else {
        msgpack_sbuffer_write(&e->sb, &nil, 1);
    }
    tw_frame_end(e, at);
}

void
tw_proc_enc_bare(tw_enc_t *e, const char *ev)
{
    size_t at = tw_frame_open(e);
    tw_enc_map(e, 1);
    s_key(e, "ev");
    tw_enc_cstr(e, ev);
    tw_frame_end(e, at);
}

void
tw_proc_enc_cancel(tw_enc_t *e, uint64_t task)
{
    size_t at = tw_frame_open(e);
    tw_enc_map(e, task ? 2 : 1);
    s_key(e, "ev");
    tw_enc_cstr(e, "cancel");
    if (task) {
        s_key(e, "task");
        tw_enc_uint(e, task);
    }
    tw_frame_end(e, at);
}

/* The header of the container at p[0..n): its element count in *kids
 * and the offset of its first element in *off. 0, or -1 if `b` is not
 * what `want` (a map or an array) says. */
static int
s_container(const unsigned char *p, size_t n, int map, uint64_t *count,
            size_t *off)
{
    if (n == 0 || !(map ? tw_mp_is_map(p[0]) : tw_mp_is_array(p[0]))) {
        return -1;
    }
    uint64_t len, kids;
    *off = 0;
    if (tw_mp_head(p, n, off, &len, &kids) != 0) {
        return -1;
    }
    *count = map ? kids / 2 : kids;
    return 0;
}

int
tw_proc_parse_hello(const tw_frame_t *f, tw_proc_hello_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!tw_frame_uint(f, "v", &out->v)) {
        snprintf(err, errlen, "hello without a uint \"v\"");
        return TW_EPROTO;
    }
    size_t n, off;
    uint64_t count;
    const unsigned char *p = tw_frame_get(f, "handlers", &n);
    if (!p || s_container(p, n, 0, &count, &off) != 0 || count == 0 ||
        count > TW_PROC_MAX_NAMES) {
        snprintf(err, errlen,
                 "hello \"handlers\" is not an array of 1 to "
                 "%d names",
                 TW_PROC_MAX_NAMES);
        return TW_EPROTO;
    }
    for (uint64_t i = 0; i < count; i++) {
        size_t sz = tw_mp_skip(p + off, n - off);
        const char *s;
        size_t len;
        if (!tw_mp_name(p + off, sz, TW_PROC_MAX_NAME, &s, &len)) {
            snprintf(err, errlen,
                     "hello handler name %u is not a str of 1 "
                     "to %d bytes of clean text",
                     (unsigned)i + 1, TW_PROC_MAX_NAME);
            return TW_EPROTO;
        }
        for (size_t j = 0; j < out->n; j++) {
            if (out->lens[j] == len && !memcmp(out->names[j], s, len)) {
                snprintf(err, errlen, "hello names handler '%.*s' twice",
                         (int)len, s);
                return TW_EPROTO;
            }
        }
        out->names[out->n] = s;
        out->lens[out->n++] = len;
        off += sz;
    }
    p = tw_frame_get(f, "flags", &n);
    if (p && s_container(p, n, 1, &count, &off) != 0) {
        snprintf(err, errlen, "hello \"flags\" is not a map");
        return TW_EPROTO;
    }
    for (uint64_t i = 0; p && i < count; i++) {
        size_t ksz = tw_mp_skip(p + off, n - off);
        const char *k;
        size_t klen;
        int key = tw_mp_text(p + off, ksz, 0, &k, &klen);
        off += ksz;
        size_t vsz = tw_mp_skip(p + off, n - off), voff;
        uint64_t nflags;
        if (!key || s_container(p + off, vsz, 0, &nflags, &voff) != 0) {
            snprintf(err, errlen, "hello \"flags\" is not a map of arrays");
            return TW_EPROTO;
        }
        int fl = 0;
        const unsigned char *a = p + off;
        for (uint64_t j = 0; j < nflags; j++) {
            size_t sz = tw_mp_skip(a + voff, vsz - voff);
            const char *s;
            size_t len;
            if (!tw_mp_text(a + voff, sz, 0, &s, &len)) {
                snprintf(err, errlen, "hello flags of '%.*s' are not str",
                         (int)klen, k);
                return TW_EPROTO;
            }
            if (len == 3 && !memcmp(s, "n2s", 3)) {
                fl |= TW_PP_F_N2S;
            }
            voff += sz;
        }
        for (size_t j = 0; j < out->n; j++) {
            if (out->lens[j] == klen && !memcmp(out->names[j], k, klen)) {
                out->flags[j] |= fl;
            }
        }
        off += vsz;
    }
    out->rt = tw_frame_str(f, "rt", &out->rtlen);
    out->pipeline = 1;
    if (tw_frame_get(f, "pipeline", &n) &&
        (!tw_frame_uint(f, "pipeline", &out->pipeline) ||
         out->pipeline == 0)) {
        snprintf(err, errlen, "hello \"pipeline\" is not a uint of 1 or "
                              "more");
        return TW_EPROTO;
    }
    return 0;
}

size_t
tw_proc_error_text(const tw_frame_t *f, char *out, size_t cap)
{
    size_t mlen = 0, tlen = 0;
    const char *msg = tw_frame_str(f, "msg", &mlen);
    const char *tb = tw_frame_str(f, "tb", &tlen);
    if (!msg) {
        msg = "error";
        mlen = 5;
    }
    size_t n = mlen < cap - 1 ? mlen : cap - 1;
    memcpy(out, msg, n);
    if (tb && n < cap - 1) {
        out[n++] = '\n';
        size_t k = tlen < cap - 1 - n ? tlen : cap - 1 - n;
        memcpy(out + n, tb, k);
        n += k;
    }
    out[n] = '\0';
    return n;
}
