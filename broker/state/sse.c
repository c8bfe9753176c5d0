/*  broker/state/sse.c - status topics as Server-Sent Events (see sse.h).
 *
 *  The ring is a circular array of events in pseq order; `cont` is the
 *  pseq of the newest event that has left it (0: none yet), so the ring
 *  holds every collected event after `cont`. A stream's `pos` is the pseq
 *  of the last event it was given or skipped; its next event is the
 *  first one in the ring above `pos`, found by binary search. Text a
 *  stream is owed but has not taken (hello, resync, ping, or an event
 *  that did not fit the caller's buffer) waits in the stream's own
 *  `out` buffer, so an event leaving the ring never cuts one short.
 *
 *  Filters are shared: streams with the same `topics` text use one
 *  filter record, counted; a record with no stream left lingers until
 *  `until_ms` and then goes.
 */
#include "broker/state/sse.h"

#include "common/alloc.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t pseq;
    char *topic;
    size_t tlen;
    char *text; /* "id: ...\ndata: ...\n\n" */
    size_t len;
} s_event_t;

typedef struct s_filter {
    char *key;         /* the topics text, or NULL for the default */
    char **pre;        /* prefixes */
    size_t *plen;
    size_t npre;
    uint64_t since;    /* the ring has collected it from this pseq on */
    size_t refs;       /* open streams using it */
    uint64_t until_ms; /* with refs 0: forgotten after this */
    struct s_filter *next;
} s_filter_t;

struct tw_sse_stream {
    s_filter_t *f;
    uint64_t pos;      /* last pseq given or skipped */
    char *out;         /* owed text not yet taken */
    size_t olen, ooff, ocap;
    uint64_t last_ms;  /* when it was last given anything */
    tw_sse_stream_t *prev, *next;
};

struct tw_sse {
    tw_sse_limits_t lim;
    char boot[17];
    s_event_t *ring;
    size_t head, n; /* oldest at ring[head], n events */
    size_t bytes;
    uint64_t cont;  /* newest pseq that left the ring */
    uint64_t last;  /* newest pseq added */
    s_filter_t *filters;
    tw_sse_stream_t *streams;
    size_t nstreams;
};

tw_sse_limits_t
tw_sse_defaults(void)
{
    tw_sse_limits_t l = {16384, 8u << 20, 64, 60000, 15000};
    return l;
}

tw_sse_t *
tw_sse_new(uint64_t boot, const tw_sse_limits_t *lim)
{
    tw_sse_t *s = tw_calloc(1, sizeof *s);
    s->lim = lim ? *lim : tw_sse_defaults();
    if (s->lim.max_events == 0) {
        s->lim.max_events = 1;
    }
    snprintf(s->boot, sizeof s->boot, "%016" PRIx64, boot);
    s->ring = tw_calloc(s->lim.max_events, sizeof *s->ring);
    return s;
}

static void
s_filter_free(s_filter_t *f)
{
    for (size_t i = 0; i < f->npre; i++) {
        tw_free(f->pre[i]);
    }
    tw_free(f->pre);
    tw_free(f->plen);
    tw_free(f->key);
    tw_free(f);
}

static void
s_stream_free(tw_sse_stream_t *st)
{
    tw_free(st->out);
    tw_free(st);
}

void
tw_sse_destroy(tw_sse_t **s_p)
{
    tw_sse_t *s = *s_p;
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        s_event_t *e = &s->ring[(s->head + i) % s->lim.max_events];
        tw_free(e->topic);
        tw_free(e->text);
    }
    tw_free(s->ring);
    while (s->streams) {
        tw_sse_stream_t *st = s->streams;
        s->streams = st->next;
        s_stream_free(st);
    }
    while (s->filters) {
        s_filter_t *f = s->filters;
        s->filters = f->next;
        s_filter_free(f);
    }
    tw_free(s);
    *s_p = NULL;
}

/* ---- filters ---------------------------------------------------------- */

static int
s_starts(const char *t, size_t tlen, const char *p, size_t plen)
{
    return plen <= tlen && memcmp(t, p, plen) == 0;
}

static int
s_filter_wants(const s_filter_t *f, const char *t, size_t tlen)
{
    if (!f->key) {
        return !s_starts(t, tlen, "task.", 5) && !s_starts(t, tlen, "s2n.", 4);
    }
    for (size_t i = 0; i < f->npre; i++) {
        if (s_starts(t, tlen, f->pre[i], f->plen[i])) {
            return 1;
        }
    }
    return 0;
}

int
tw_sse_wants(const tw_sse_t *s, const char *topic, size_t tlen)
{
    for (const s_filter_t *f = s->filters; f; f = f->next) {
        if (s_filter_wants(f, topic, tlen)) {
            return 1;
        }
    }
    return 0;
}

/* Split `topics` into prefixes. Returns 0 or TW_EINVAL. */
static int
s_parse(const char *topics, s_filter_t *f, char *why, size_t wlen)
{
    f->key = tw_strdup(topics);
    if (!*topics) {
        f->pre = tw_calloc(1, sizeof *f->pre);
        f->plen = tw_calloc(1, sizeof *f->plen);
        f->pre[0] = tw_strdup("");
        f->npre = 1;
        return 0;
    }
    size_t n = 1;
    for (const char *c = topics; *c; c++) {
        n += *c == ',';
    }
    if (n > TW_SSE_MAX_PREFIXES) {
        snprintf(why, wlen, "topics: %zu prefixes; at most %d", n,
                 TW_SSE_MAX_PREFIXES);
        return TW_EINVAL;
    }
    f->pre = tw_calloc(n, sizeof *f->pre);
    f->plen = tw_calloc(n, sizeof *f->plen);
    const char *p = topics;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > TW_SSE_MAX_PREFIX) {
            snprintf(why, wlen, "topics: a prefix of %zu bytes; at most %d",
                     len, TW_SSE_MAX_PREFIX);
            f->npre = i;
            return TW_EINVAL;
        }
        f->pre[i] = tw_strndup(p, len);
        f->plen[i] = len;
        f->npre = i + 1;
        p = end ? end + 1 : p + len;
    }
    return 0;
}

static s_filter_t *
s_filter_find(tw_sse_t *s, const char *topics)
{
    for (s_filter_t *f = s->filters; f; f = f->next) {
        if ((!f->key && !topics) ||
            (f->key && topics && strcmp(f->key, topics) == 0)) {
            return f;
        }
    }
    return NULL;
}

/* ---- the ring --------------------------------------------------------- */

static s_event_t *
s_at(const tw_sse_t *s, size_t i)
{
    return &s->ring[(s->head + i) % s->lim.max_events];
}

static void
s_drop_oldest(tw_sse_t *s)
{
    s_event_t *e = s_at(s, 0);
    s->cont = e->pseq;
    s->bytes -= e->len + e->tlen;
    tw_free(e->topic);
    tw_free(e->text);
    memset(e, 0, sizeof *e);
    s->head = (s->head + 1) % s->lim.max_events;
    s->n--;
}

void
tw_sse_publish(tw_sse_t *s, uint64_t pseq, const char *topic, size_t tlen,
               const char *json, size_t jlen)
{
    char id[64];
    int ilen = snprintf(id, sizeof id, "id: %s-%" PRIu64 "\ndata: ", s->boot,
                        pseq);
    size_t len = (size_t)ilen + jlen + 2;
    while (s->n > 0 && (s->n == s->lim.max_events ||
                        s->bytes + len + tlen > s->lim.max_bytes)) {
        s_drop_oldest(s);
    }
    s_event_t *e = s_at(s, s->n);
    e->pseq = pseq;
    e->topic = tw_strndup(topic, tlen);
    e->tlen = tlen;
    e->text = tw_malloc(len);
    memcpy(e->text, id, (size_t)ilen);
    memcpy(e->text + ilen, json, jlen);
    memcpy(e->text + ilen + jlen, "\n\n", 2);
    e->len = len;
    s->n++;
    s->bytes += len + tlen;
    s->last = pseq;
}

/* Index of the first event above `pos`, or s->n. */
static size_t
s_first_after(const tw_sse_t *s, uint64_t pos)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_at(s, mid)->pseq <= pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* ---- streams ---------------------------------------------------------- */

static void
s_owe(tw_sse_stream_t *st, const char *text, size_t len)
{
    if (st->olen + len > st->ocap) {
        st->ocap = (st->olen + len) * 2;
        st->out = tw_realloc(st->out, st->ocap);
    }
    memcpy(st->out + st->olen, text, len);
    st->olen += len;
}

static void
s_owe_resync(tw_sse_stream_t *st, const char *reason)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "event: resync\ndata: {\"reason\":\"%s\"}\n\n", reason);
    s_owe(st, buf, (size_t)n);
}

/* Parse "<16 hex>-<digits>". Returns 1 and the parts, or 0. */
static int
s_parse_id(const char *id, char boot[17], uint64_t *pseq)
{
    if (strlen(id) < 18 || id[16] != '-') {
        return 0;
    }
    for (int i = 0; i < 16; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
        boot[i] = c;
    }
    boot[16] = '\0';
    uint64_t v = 0;
    for (const char *c = id + 17; *c; c++) {
        if (*c < '0' || *c > '9' || v > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *pseq = v;
    return 1;
}

int
tw_sse_open(tw_sse_t *s, tw_sse_stream_t **out, const char *topics,
            const char *last_id, uint64_t pseq_now, uint64_t now_ms,
            char *why, size_t wlen)
{
    *out = NULL;
    tw_sse_tick(s, now_ms); /* a filter whose linger ran out is gone */
    if (s->nstreams >= s->lim.max_streams) {
        snprintf(why, wlen, "%zu event streams are open already; try again "
                 "later", s->nstreams);
        return TW_EFULL;
    }
    s_filter_t *f = s_filter_find(s, topics);
    int known = f != NULL;
    if (!f) {
        f = tw_calloc(1, sizeof *f);
        if (topics) {
            int rc = s_parse(topics, f, why, wlen);
            if (rc != 0) {
                s_filter_free(f);
                return rc;
            }
        }
        f->since = pseq_now;
        f->next = s->filters;
        s->filters = f;
    }
    f->refs++;
    tw_sse_stream_t *st = tw_calloc(1, sizeof *st);
    st->f = f;
    st->pos = pseq_now;
    st->last_ms = now_ms;
    const char *reason = NULL;
    if (last_id) {
        char boot[17];
        uint64_t at;
        if (!s_parse_id(last_id, boot, &at)) {
            reason = "the Last-Event-ID is not one of this broker's";
        } else if (strcmp(boot, s->boot) != 0) {
            reason = "the broker restarted";
        } else if (at > pseq_now) {
            reason = "the Last-Event-ID is ahead of the broker";
        } else if (!known || at < f->since) {
            reason = "these topics were not collected meanwhile";
        } else if (at < s->cont) {
            reason = "too old: those events have left the ring";
        } else {
            st->pos = at;
        }
    }
    int resumed = last_id && !reason;
    char buf[192];
    int n = snprintf(buf, sizeof buf,
                     "retry: 2000\n\nevent: hello\nid: %s-%" PRIu64
                     "\ndata: {\"boot\":\"%s\",\"pseq\":%" PRIu64
                     ",\"resumed\":%s}\n\n",
                     s->boot, st->pos, s->boot, st->pos,
                     resumed ? "true" : "false");
    s_owe(st, buf, (size_t)n);
    if (reason) {
        s_owe_resync(st, reason);
    }
    st->next = s->streams;
    if (s->streams) {
        s->streams->prev = st;
    }
    s->streams = st;
    s->nstreams++;
    *out = st;
    return 0;
}

/* Move owed events from the ring into st->out until it holds at least
 * `want` bytes or the ring has nothing more for it. */
static void
s_fill(tw_sse_t *s, tw_sse_stream_t *st, size_t want)
{
    if (st->pos < s->cont) {
        s_owe_resync(st, "fell behind: events left the ring");
        st->pos = s->last;
        return;
    }
    size_t i = s_first_after(s, st->pos);
    for (; i < s->n && st->olen - st->ooff < want; i++) {
        const s_event_t *e = s_at(s, i);
        if (s_filter_wants(st->f, e->topic, e->tlen)) {
            s_owe(st, e->text, e->len);
        }
        st->pos = e->pseq;
    }
    if (i == s->n && s->last > st->pos) {
        st->pos = s->last;
    }
}

size_t
tw_sse_read(tw_sse_t *s, tw_sse_stream_t *st, char *buf, size_t max,
            uint64_t now_ms)
{
    if (st->ooff == st->olen) {
        st->ooff = st->olen = 0;
        s_fill(s, st, max);
        if (st->olen == 0 && now_ms - st->last_ms >= s->lim.ping_ms) {
            s_owe(st, ": ping\n\n", 8);
        }
    }
    size_t n = st->olen - st->ooff;
    if (n > max) {
        n = max;
    }
    memcpy(buf, st->out + st->ooff, n);
    st->ooff += n;
    if (n) {
        st->last_ms = now_ms;
    }
    return n;
}

int
tw_sse_ready(const tw_sse_t *s, const tw_sse_stream_t *st, uint64_t now_ms)
{
    if (st->ooff < st->olen || st->pos < s->cont ||
        now_ms - st->last_ms >= s->lim.ping_ms) {
        return 1;
    }
    for (size_t i = s_first_after(s, st->pos); i < s->n; i++) {
        const s_event_t *e = s_at(s, i);
        if (s_filter_wants(st->f, e->topic, e->tlen)) {
            return 1;
        }
    }
    return 0;
}

void
tw_sse_close(tw_sse_t *s, tw_sse_stream_t **st_p, uint64_t now_ms)
{
    tw_sse_stream_t *st = *st_p;
    if (!st) {
        return;
    }
    if (st->prev) {
        st->prev->next = st->next;
    } else {
        s->streams = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
    s->nstreams--;
    if (--st->f->refs == 0) {
        st->f->until_ms = now_ms + s->lim.linger_ms;
    }
    s_stream_free(st);
    *st_p = NULL;
}

int64_t
tw_sse_tick(tw_sse_t *s, uint64_t now_ms)
{
    int64_t next = -1;
    for (s_filter_t **fp = &s->filters; *fp;) {
        s_filter_t *f = *fp;
        if (f->refs == 0 && now_ms >= f->until_ms) {
            *fp = f->next;
            s_filter_free(f);
            continue;
        }
        if (f->refs == 0) {
            int64_t left = (int64_t)(f->until_ms - now_ms);
            next = next < 0 || left < next ? left : next;
        }
        fp = &f->next;
    }
    for (tw_sse_stream_t *st = s->streams; st; st = st->next) {
        uint64_t due = st->last_ms + s->lim.ping_ms;
        int64_t left = due > now_ms ? (int64_t)(due - now_ms) : 0;
        next = next < 0 || left < next ? left : next;
    }
    return next;
}

size_t
tw_sse_streams(const tw_sse_t *s)
{
    return s->nstreams;
}

size_t
tw_sse_events(const tw_sse_t *s)
{
    return s->n;
}

size_t
tw_sse_filters(const tw_sse_t *s)
{
    size_t n = 0;
    for (const s_filter_t *f = s->filters; f; f = f->next) {
        n++;
    }
    return n;
}
