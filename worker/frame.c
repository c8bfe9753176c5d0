/*  worker/frame.c - length-prefixed msgpack frames (see frame.h).
 *
 *  The reader keeps one buffer: reads land at its end, complete frames
 *  are handed out from its start, and what is left of an incomplete
 *  frame moves to the front afterwards. It grows to fit the largest frame
 *  seen and shrinks back once it is empty, so a single large result does
 *  not pin its size for the life of a program.
 */
#include "worker/frame.h"
#include "common/alloc.h"
#include "common/error.h"
#include "proto/mpwalk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_READ_CHUNK 65536
#define S_KEEP (1u << 20) /* an empty buffer larger than this shrinks */

/* Parsing ------------------------------------------------------------------ */

int
tw_frame_parse(tw_frame_t *f, const void *p, size_t n, const char **why)
{
    const unsigned char *u = p;
    memset(f, 0, sizeof *f);
    if (n == 0 || tw_mp_skip(u, n) != n) {
        *why = "not one msgpack value";
        return TW_EPROTO;
    }
    if (!tw_mp_is_map(u[0])) {
        *why = "not a map";
        return TW_EPROTO;
    }
    size_t off = 0;
    uint64_t len, kids;
    tw_mp_head(u, n, &off, &len, &kids);
    for (uint64_t i = 0; i < kids / 2; i++) {
        if (!tw_mp_is_str(u[off])) {
            *why = "a key that is not a str";
            return TW_EPROTO;
        }
        off += tw_mp_skip(u + off, n - off);
        off += tw_mp_skip(u + off, n - off);
    }
    f->p = u;
    f->n = n;
    const unsigned char *v;
    size_t vlen;
    if (!tw_mp_map_get(u, n, "ev", 2, &v, &vlen) ||
        !tw_mp_text(v, vlen, 0, &f->ev, &f->evlen)) {
        *why = "no str \"ev\"";
        return TW_EPROTO;
    }
    return 0;
}

int
tw_frame_is(const tw_frame_t *f, const char *ev)
{
    size_t n = strlen(ev);
    return f->evlen == n && memcmp(f->ev, ev, n) == 0;
}

const void *
tw_frame_get(const tw_frame_t *f, const char *key, size_t *len)
{
    const unsigned char *v;
    size_t vlen;
    if (!tw_mp_map_get(f->p, f->n, key, strlen(key), &v, &vlen)) {
        return NULL;
    }
    *len = vlen;
    return v;
}

const char *
tw_frame_str(const tw_frame_t *f, const char *key, size_t *len)
{
    size_t vlen;
    const void *v = tw_frame_get(f, key, &vlen);
    const char *s;
    if (!v || !tw_mp_text(v, vlen, 0, &s, len)) {
        return NULL;
    }
    return s;
}

int
tw_frame_uint(const tw_frame_t *f, const char *key, uint64_t *v)
{
    size_t vlen;
    const void *p = tw_frame_get(f, key, &vlen);
    return p && tw_mp_uint(p, vlen, v);
}

/* Reading ------------------------------------------------------------------ */

void
tw_frame_reader_init(tw_frame_reader_t *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

void
tw_frame_reader_free(tw_frame_reader_t *r)
{
    tw_free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

uv_buf_t
tw_frame_reader_room(tw_frame_reader_t *r)
{
    if (r->cap - r->len < S_READ_CHUNK) {
        r->cap = r->len + S_READ_CHUNK;
        r->buf = tw_realloc(r->buf, r->cap);
    }
    return uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len));
}

int
tw_frame_reader_feed(tw_frame_reader_t *r, size_t n, tw_frame_fn fn, void *arg)
{
    r->len += n;
    size_t at = 0;
    int rc = 0;
    while (r->len - at >= 4) {
        const unsigned char *p = (const unsigned char *)r->buf + at;
        uint32_t flen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                        (uint32_t)p[2] << 8 | p[3];
        if (flen == 0 || flen > r->max) {
            r->bad = flen;
            rc = TW_E2BIG;
            break;
        }
        if (r->len - at - 4 < flen) {
            break;
        }
        at += 4 + flen;
        rc = fn(arg, (const char *)p + 4, flen);
        if (rc != 0) {
            break;
        }
    }
    if (rc != 0) {
        r->len = 0;
    } else {
        memmove(r->buf, r->buf + at, r->len - at);
        r->len -= at;
    }
    if (r->len == 0 && r->cap > S_KEEP) {
        tw_free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    return rc;
}

void
tw_frame_bad_length(uint32_t len, char *out, size_t cap)
{
    unsigned char b[4] = {(unsigned char)(len >> 24),
                          (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                          (unsigned char)len};
    int text = 1;
    for (int i = 0; i < 4; i++) {
        text = text && isprint(b[i]);
    }
    if (text) {
        snprintf(out, cap,
                 "%u (the bytes \"%c%c%c%c\": text written to the "
                 "frame stream?)",
                 len, b[0], b[1], b[2], b[3]);
    } else {
        snprintf(out, cap, "%u", len);
    }
}

/* Writing ------------------------------------------------------------------ */

typedef struct {
    uv_write_t w;
    char *data; /* msgpack_sbuffer's, so freed with free() */
} s_write_t;

static void
s_written(uv_write_t *w, int status)
{
    (void)status; /* a program that stopped reading is its own business */
    s_write_t *sw = w->data;
    free(sw->data);
    tw_free(sw);
}

void
tw_frame_begin(tw_enc_t *e)
{
    msgpack_sbuffer_clear(&e->sb);
    tw_frame_open(e);
}

size_t
tw_frame_open(tw_enc_t *e)
{
    static const char len[4] = {0, 0, 0, 0};
    size_t at = e->sb.size;
    msgpack_sbuffer_write(&e->sb, len, sizeof len);
    return at;
}

void
tw_frame_end(tw_enc_t *e, size_t at)
{
    uint32_t body = (uint32_t)(e->sb.size - at - 4);
    e->sb.data[at] = (char)(body >> 24);
    e->sb.data[at + 1] = (char)(body >> 16);
    e->sb.data[at + 2] = (char)(body >> 8);
    e->sb.data[at + 3] = (char)body;
}

int
tw_frame_send(tw_enc_t *e, uv_stream_t *s)
{
    tw_frame_end(e, 0);
    return tw_frame_write(e, s);
}

int
tw_frame_write(tw_enc_t *e, uv_stream_t *s)
{
    size_t n = e->sb.size;
    s_write_t *sw = tw_malloc(sizeof *sw);
    sw->w.data = sw;
    sw->data = msgpack_sbuffer_release(&e->sb);
    uv_buf_t b = uv_buf_init(sw->data, (unsigned)n);
    int rc = uv_is_closing((uv_handle_t *)s)
                 ? UV_EPIPE
                 : uv_write(&sw->w, s, &b, 1, s_written);
    if (rc != 0) {
        free(sw->data);
        tw_free(sw);
    }
    return rc;
}
