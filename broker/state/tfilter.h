/*  broker/state/tfilter.h - which task records a list, retry or purge means.
 *
 *  QUERY tasks, TASK retry/purge (PROTOCOL.md 16.3, 16.5), GET
 *  /api/v1/tasks and the bulk HTTP routes (docs/HTTP.md) all select
 *  records with the same filters: state, handler, group, pool, since,
 *  text, limit and a cursor. This module parses them from text (the HTTP
 *  parameters, the wire's strings), checks them with one set of rules
 *  and one set of messages, writes and reads the cursor, and matches the
 *  text filter; the broker walks its records with the result.
 *
 *  The cursor is opaque to clients. It is "t1." and 19 base64url
 *  characters holding the change number to continue below (8 bytes), a
 *  tag of the broker run (2 bytes) and a check of the filters it was
 *  made with (4 bytes, FNV-1a over every filter but limit and cursor),
 *  so a cursor sent with other filters is refused rather than misread,
 *  and one from before a restart is told apart (the change numbers of a
 *  new run mean something else).
 *
 *  Strings in a tw_tfilter_t are borrowed from the caller's request and
 *  live as long as it does. Pure functions; any thread.
 */
#ifndef TW_BROKER_TFILTER_H
#define TW_BROKER_TFILTER_H

#include <stddef.h>
#include <stdint.h>

#define TW_TFILTER_MAX_TEXT 128   /* handler, group, pool, text */
#define TW_TFILTER_MAX_PAGE 1000  /* a list's limit */
#define TW_TFILTER_MAX_BULK 10000 /* a retry's or purge's limit */
#define TW_TFILTER_CURSOR_LEN 22  /* "t1." + 19 characters */

/* tw_tfilter_cursor_parse: the cursor is well formed, made with these
 * filters, but by an earlier run of the broker. */
#define TW_TFILTER_GONE 1

typedef struct {
    uint32_t states;     /* bits 1 << TW_ST_*; 0: every state */
    const char *handler; /* NULL: any; else handler_len bytes */
    size_t handler_len;
    const char *group;
    size_t group_len;
    const char *pool;
    size_t pool_len;
    const char *text;    /* id, handler or error must contain it */
    size_t text_len;
    uint64_t since_ms;   /* 0: no bound; else changed at most this ago */
    uint32_t limit;      /* set by tw_tfilter_limit, else the default */
    int has_cursor;
    uint64_t below;      /* with has_cursor: list change numbers below */
} tw_tfilter_t;

/* An empty filter (every record) with limit `default_limit`. */
void tw_tfilter_init(tw_tfilter_t *f, uint32_t default_limit);

/* The bits of a state name: "pending", "running", "ok", "error",
 * "timeout", "lost", "cancelled", or "failed" (error, timeout and lost).
 * 0 for anything else. */
uint32_t tw_tfilter_state_bits(const char *s, size_t n);

/* The setters check one filter each. Each returns 0, or TW_EINVAL with
 * a one-line reason in `why` that names the parameter (a 400, or an
 * ERROR EINVAL on the wire); the filter is then unchanged. */

/* state: one of the names above. */
int tw_tfilter_state(tw_tfilter_t *f, const char *s, size_t n, char *why,
                     size_t wlen);

/* handler, group, pool, text ("q"): 1 to TW_TFILTER_MAX_TEXT bytes. */
int tw_tfilter_string(tw_tfilter_t *f, const char *name, const char *s,
                      size_t n, char *why, size_t wlen);

/* since as text: decimal seconds with an optional unit s, m, h or d
 * ("90", "90s", "15m", "2h", "7d"), at most 9 digits, above 0. */
int tw_tfilter_since_text(tw_tfilter_t *f, const char *s, size_t n,
                          char *why, size_t wlen);

/* limit as text (decimal) or as a number: 1 to `max`. */
int tw_tfilter_limit_text(tw_tfilter_t *f, const char *s, size_t n,
                          uint32_t max, char *why, size_t wlen);
int tw_tfilter_limit(tw_tfilter_t *f, int64_t v, uint32_t max, char *why,
                     size_t wlen);

/* The cursor for continuing below change number `csn`, for the filters
 * in `f` and the broker run `boot`: TW_TFILTER_CURSOR_LEN characters and
 * a NUL in `out`. */
void tw_tfilter_cursor_make(const tw_tfilter_t *f, uint64_t boot,
                            uint64_t csn,
                            char out[TW_TFILTER_CURSOR_LEN + 1]);

/* Read a cursor into f->below (set the other filters first: the check
 * covers them). Returns 0; TW_EINVAL (malformed, or made with other
 * filters) with the reason in `why`; or TW_TFILTER_GONE (made by
 * another run of the broker: HTTP 410). */
int tw_tfilter_cursor_parse(tw_tfilter_t *f, uint64_t boot, const char *s,
                            size_t n, char *why, size_t wlen);

/* 1 if f->states admits state `st` (a TW_ST_* code). */
int tw_tfilter_has_state(const tw_tfilter_t *f, int st);

/* 1 if `hay` (n bytes) contains f->text, ASCII letters in either case,
 * or if there is no text filter. */
int tw_tfilter_text_in(const tw_tfilter_t *f, const char *hay, size_t n);

/* 1 if the decimal form of `id` contains f->text (or no text filter). */
int tw_tfilter_text_in_id(const tw_tfilter_t *f, uint64_t id);

#endif /* TW_BROKER_TFILTER_H */
