/*  proto/jsonw.h - JSON text from msgpack, within a size bound.
 *
 *  The broker answers its HTTP API (docs/HTTP.md) in JSON, and every
 *  answer is the msgpack reply of a wire operation turned into text by
 *  this one writer, so the API and the wire can never disagree about a
 *  shape. The mapping is the CLI's (client/cli/json.h):
 *
 *    msgpack                     JSON
 *    nil / true / false          null / true / false
 *    int, uint                   integer, exact (JavaScript rounds past 2^53)
 *    float32, float64            number with the fewest digits that read
 *                                back the same; NaN and infinities: null
 *    str (valid UTF-8)           string ("\u00XX" for control characters)
 *    str (not UTF-8), bin        {"$bin": "<hex>"}
 *    ext                         {"$ext": <type>, "data": "<hex>"}
 *    array, map                  array, object; a key that is not a
 *                                string is written as its JSON text, as
 *                                a string
 *
 *  and two per-key rules the caller names (tw_jsonw_opts_t): a `bin`
 *  under a *payload* key ("args", "result") holds one msgpack value
 *  (PROTOCOL.md 4.7) and is written as that value; a uint under a *hex*
 *  key ("boot") is written as a string of 16 hex digits, which a
 *  JavaScript client cannot round.
 *
 *  A writer may have a limit: once the text would pass it, nothing more
 *  is added and `cut` is set. The text then ends at a character
 *  boundary, never inside a UTF-8 sequence or an escape, so a truncated
 *  preview (docs/HTTP.md, "JSON") is still valid UTF-8. Payload bytes
 *  come from clients and are never trusted: bytes that are not exactly
 *  one msgpack value are written as {"$bin": ...}. Stateless apart from
 *  the writer; any thread.
 */
#ifndef TW_PROTO_JSONW_H
#define TW_PROTO_JSONW_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;      /* the text so far, NUL-terminated (when p != NULL) */
    size_t len;   /* its length */
    size_t cap;
    size_t limit; /* 0: none */
    int cut;      /* the limit stopped the writer */
} tw_jsonw_t;

typedef struct {
    const char *const *payload_keys; /* NULL-terminated, or NULL */
    const char *const *hex_keys;     /* NULL-terminated, or NULL */
} tw_jsonw_opts_t;

/* An empty writer that keeps at most `limit` bytes (0: no limit). */
void tw_jsonw_init(tw_jsonw_t *w, size_t limit);

/* Free the text. The writer is empty (and unusable until init). */
void tw_jsonw_free(tw_jsonw_t *w);

/* Take the text (malloc'ed, NUL-terminated, never NULL) and its length;
 * the writer is empty afterwards. The caller frees it with tw_free. */
char *tw_jsonw_take(tw_jsonw_t *w, size_t *len);

/* Append `n` bytes of JSON the caller has made ("{", "\"k\":"...): kept
 * whole or not at all. */
void tw_jsonw_raw(tw_jsonw_t *w, const char *s, size_t n);

/* Append a C string of JSON the caller has made. */
void tw_jsonw_lit(tw_jsonw_t *w, const char *s);

/* Append `n` bytes as a JSON string: quoted and escaped. Bytes that are
 * not UTF-8 become U+FFFD. */
void tw_jsonw_str(tw_jsonw_t *w, const char *s, size_t n);

/* Append "key": (a string key and its colon). */
void tw_jsonw_key(tw_jsonw_t *w, const char *key);

void tw_jsonw_uint(tw_jsonw_t *w, uint64_t v);
void tw_jsonw_int(tw_jsonw_t *w, int64_t v);
void tw_jsonw_double(tw_jsonw_t *w, double v);
void tw_jsonw_bool(tw_jsonw_t *w, int v);
void tw_jsonw_null(tw_jsonw_t *w);

/* Append {"$bin": "<hex>"} for `n` bytes. */
void tw_jsonw_bin(tw_jsonw_t *w, const void *p, size_t n);

/* Append one decoded msgpack object, with the rules above; `opts` may
 * be NULL. */
void tw_jsonw_object(tw_jsonw_t *w, const msgpack_object *o,
                     const tw_jsonw_opts_t *opts);

/* Append the value that `len` bytes of msgpack hold, or {"$bin": ...}
 * when they are not exactly one value. */
void tw_jsonw_msgpack(tw_jsonw_t *w, const void *buf, size_t len,
                      const tw_jsonw_opts_t *opts);

#endif /* TW_PROTO_JSONW_H */
