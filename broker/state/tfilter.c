/*  broker/state/tfilter.c - task record filters and cursors (see tfilter.h).
 */
#include "broker/state/tfilter.h"

#include "common/error.h"
#include "common/util.h"
#include "proto/proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define S_FAILED                                                             \
    ((1u << TW_ST_ERROR) | (1u << TW_ST_TIMEOUT) | (1u << TW_ST_LOST))

void
tw_tfilter_init(tw_tfilter_t *f, uint32_t default_limit)
{
    memset(f, 0, sizeof *f);
    f->limit = default_limit;
}

uint32_t
tw_tfilter_state_bits(const char *s, size_t n)
{
    if (n == 6 && memcmp(s, "failed", 6) == 0) {
        return S_FAILED;
    }
    for (int st = TW_ST_OK; st <= TW_ST_RUNNING; st++) {
        const char *name = tw_proto_state_name(st);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            return 1u << st;
        }
    }
    return 0;
}

int
tw_tfilter_state(tw_tfilter_t *f, const char *s, size_t n, char *why,
                 size_t wlen)
{
    uint32_t bits = tw_tfilter_state_bits(s, n);
    if (!bits) {
        snprintf(why, wlen, "state: '%.*s' is not one of pending, running, "
                 "ok, failed, error, timeout, lost, cancelled",
                 (int)(n > 32 ? 32 : n), s);
        return TW_EINVAL;
    }
    f->states = bits;
    return 0;
}

int
tw_tfilter_string(tw_tfilter_t *f, const char *name, const char *s,
                  size_t n, char *why, size_t wlen)
{
    if (n == 0 || n > TW_TFILTER_MAX_TEXT) {
        snprintf(why, wlen, "%s: %zu bytes; give 1 to %d", name, n,
                 TW_TFILTER_MAX_TEXT);
        return TW_EINVAL;
    }
    if (strcmp(name, "handler") == 0) {
        f->handler = s;
        f->handler_len = n;
    } else if (strcmp(name, "group") == 0) {
        f->group = s;
        f->group_len = n;
    } else if (strcmp(name, "pool") == 0) {
        f->pool = s;
        f->pool_len = n;
    } else {
        f->text = s;
        f->text_len = n;
    }
    return 0;
}

int
tw_tfilter_since_text(tw_tfilter_t *f, const char *s, size_t n, char *why,
                      size_t wlen)
{
    uint64_t ms;
    if (tw_duration_ms(s, n, &ms) != 0) {
        snprintf(why, wlen, "since: '%.*s' is not a duration such as 90s, "
                 "15m, 2h or 7d", (int)(n > 32 ? 32 : n), s);
        return TW_EINVAL;
    }
    f->since_ms = ms;
    return 0;
}

int
tw_tfilter_limit(tw_tfilter_t *f, int64_t v, uint32_t max, char *why,
                 size_t wlen)
{
    if (v < 1 || v > (int64_t)max) {
        snprintf(why, wlen, "limit: %" PRId64 " is not 1 to %" PRIu32
                 "; page through with the cursor", v, max);
        return TW_EINVAL;
    }
    f->limit = (uint32_t)v;
    return 0;
}

int
tw_tfilter_limit_text(tw_tfilter_t *f, const char *s, size_t n, uint32_t max,
                      char *why, size_t wlen)
{
    int64_t v = 0;
    int ok = n > 0 && n <= 10;
    for (size_t i = 0; ok && i < n; i++) {
        ok = s[i] >= '0' && s[i] <= '9';
        v = v * 10 + (s[i] - '0');
    }
    if (!ok) {
        snprintf(why, wlen, "limit: '%.*s' is not a number from 1 to %" PRIu32,
                 (int)(n > 32 ? 32 : n), s, max);
        return TW_EINVAL;
    }
    return tw_tfilter_limit(f, v, max, why, wlen);
}

/* ---- cursors ---------------------------------------------------------- */

/* The check of every filter but limit and cursor: a hash of them laid
 * end to end, each string after its length (absent differs from empty). */
static uint32_t
s_check(const tw_tfilter_t *f)
{
    unsigned char buf[4 + 8 + 4 * (4 + TW_TFILTER_MAX_TEXT)];
    size_t n = 0;
    memcpy(buf + n, &f->states, 4);
    n += 4;
    memcpy(buf + n, &f->since_ms, 8);
    n += 8;
    const char *s[] = {f->handler, f->group, f->pool, f->text};
    size_t len[] = {f->handler_len, f->group_len, f->pool_len, f->text_len};
    for (int i = 0; i < 4; i++) {
        size_t k = len[i] < TW_TFILTER_MAX_TEXT ? len[i] : TW_TFILTER_MAX_TEXT;
        uint32_t l = s[i] ? (uint32_t)k : UINT32_MAX;
        memcpy(buf + n, &l, 4);
        n += 4;
        if (s[i]) {
            memcpy(buf + n, s[i], k);
            n += k;
        }
    }
    uint64_t h = tw_hash_bytes(buf, n);
    return (uint32_t)(h ^ (h >> 32));
}

static uint16_t
s_tag(uint64_t boot)
{
    return (uint16_t)(boot ^ (boot >> 16) ^ (boot >> 32) ^ (boot >> 48));
}

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
tw_tfilter_cursor_make(const tw_tfilter_t *f, uint64_t boot, uint64_t csn,
                       char out[TW_TFILTER_CURSOR_LEN + 1])
{
    unsigned char raw[15] = {0}; /* 14 bytes, padded to whole triples */
    for (int i = 0; i < 8; i++) {
        raw[i] = (unsigned char)(csn >> (56 - 8 * i));
    }
    uint16_t tag = s_tag(boot);
    raw[8] = (unsigned char)(tag >> 8);
    raw[9] = (unsigned char)tag;
    uint32_t chk = s_check(f);
    for (int i = 0; i < 4; i++) {
        raw[10 + i] = (unsigned char)(chk >> (24 - 8 * i));
    }
    memcpy(out, "t1.", 3);
    char *o = out + 3;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) |
                     raw[i + 2];
        *o++ = s_b64[(v >> 18) & 63];
        *o++ = s_b64[(v >> 12) & 63];
        *o++ = s_b64[(v >> 6) & 63];
        *o++ = s_b64[v & 63];
    }
    /* 14 bytes are 19 characters; the 20th only encodes padding. */
    out[TW_TFILTER_CURSOR_LEN] = '\0';
}

static int
s_b64val(char c)
{
    const char *p = c ? strchr(s_b64, c) : NULL;
    return p ? (int)(p - s_b64) : -1;
}

int
tw_tfilter_cursor_parse(tw_tfilter_t *f, uint64_t boot, const char *s,
                        size_t n, char *why, size_t wlen)
{
    unsigned char raw[15] = {0};
    int ok = n == TW_TFILTER_CURSOR_LEN && memcmp(s, "t1.", 3) == 0;
    for (int i = 0; ok && i < 20; i += 4) {
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int d = i + k < 19 ? s_b64val(s[3 + i + k]) : 0;
            ok = ok && d >= 0;
            v = (v << 6) | (uint32_t)(d < 0 ? 0 : d);
        }
        raw[i / 4 * 3] = (unsigned char)(v >> 16);
        raw[i / 4 * 3 + 1] = (unsigned char)(v >> 8);
        raw[i / 4 * 3 + 2] = (unsigned char)v;
    }
    if (!ok || raw[14] != 0) {
        snprintf(why, wlen, "cursor: not a cursor this broker made; send the "
                 "'next' of the previous page unchanged");
        return TW_EINVAL;
    }
    uint64_t csn = 0;
    for (int i = 0; i < 8; i++) {
        csn = (csn << 8) | raw[i];
    }
    uint16_t tag = (uint16_t)((raw[8] << 8) | raw[9]);
    uint32_t chk = ((uint32_t)raw[10] << 24) | ((uint32_t)raw[11] << 16) |
                   ((uint32_t)raw[12] << 8) | raw[13];
    if (chk != s_check(f)) {
        snprintf(why, wlen, "cursor: made for other filters; send the same "
                 "filters as for the previous page");
        return TW_EINVAL;
    }
    if (tag != s_tag(boot)) {
        snprintf(why, wlen, "cursor: from before a broker restart; list again "
                 "without it");
        return TW_TFILTER_GONE;
    }
    f->has_cursor = 1;
    f->below = csn;
    return 0;
}

/* ---- matching --------------------------------------------------------- */

int
tw_tfilter_has_state(const tw_tfilter_t *f, int st)
{
    return f->states == 0 || (st >= 0 && st < 32 && (f->states >> st) & 1u);
}

static char
s_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int
tw_tfilter_text_in(const tw_tfilter_t *f, const char *hay, size_t n)
{
    if (!f->text) {
        return 1;
    }
    size_t m = f->text_len;
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && s_lower(hay[i + k]) == s_lower(f->text[k])) {
            k++;
        }
        if (k == m) {
            return 1;
        }
    }
    return 0;
}

int
tw_tfilter_text_in_id(const tw_tfilter_t *f, uint64_t id)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, id);
    return tw_tfilter_text_in(f, buf, (size_t)n);
}
