/*  client/cli/json.h - JSON <-> msgpack for the taskwheel CLI.
 *
 *  Task arguments and results are msgpack values on the wire; people type
 *  and read JSON. This module converts between jansson values and msgpack
 *  with these rules:
 *
 *    JSON                       msgpack
 *    null / true / false        nil / true / false
 *    integer (int64 range)      int (smallest encoding)
 *    real                       float64
 *    string (UTF-8, may hold    str
 *      \u0000)
 *    array / object             array / map with str keys, in order
 *    {"$bin": "<hex>"}          bin   (exactly that one key, an even number
 *                                      of hex digits; anything else stays
 *                                      an ordinary object)
 *
 *  Back from msgpack, everything above maps the other way, and also:
 *    - uint64 above INT64_MAX becomes a JSON real (JSON has no wider
 *      integer and jansson cannot hold one): lossy past 2^53.
 *    - float32 becomes a real; NaN and infinities (not JSON) become null.
 *    - str that is not valid UTF-8 becomes {"$bin": "<hex>"} too.
 *    - ext becomes {"$ext": <type>, "data": "<hex>"} (one way only).
 *    - map keys that are not strings are stringified: integers in
 *      decimal, true/false/null as words, reals as JSON prints them, and
 *      compound or binary keys as their compact JSON text. If two keys end
 *      up equal, the later value wins.
 *
 *  JSON integers outside int64 are a parse error (jansson's "too big
 *  integer"). Nesting is limited to TW_JSON_MAX_DEPTH levels of arrays and
 *  objects, the most msgpack-c's decoder (used by the broker and workers)
 *  accepts; deeper input is rejected rather than sent undecodable.
 *
 *  tw_json_dumps prints compact JSON whose reals have the fewest digits
 *  that read back to the same double (0.1, not jansson's
 *  0.10000000000000001).
 *
 *  Stateless and thread-safe; allocation goes through jansson and
 *  msgpack-c (malloc).
 */
#ifndef TW_CLI_JSON_H
#define TW_CLI_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>

#define TW_JSON_MAX_DEPTH 32

/* Parse `text` as one JSON value of any type (a bare 5 or "x" is fine)
 * and encode it as msgpack. On 0, *out is a malloc'ed buffer of *len
 * bytes the caller frees with free(). Otherwise `err` holds a one-line
 * reason: TW_EINVAL for text that is not JSON (jansson's message and
 * position), TW_E2BIG for nesting beyond TW_JSON_MAX_DEPTH. */
int tw_json_to_msgpack(const char *text, void **out, size_t *len, char *err,
                       size_t errlen);

/* Encode the jansson value `v` with `pk`. Returns 0, or TW_E2BIG when `v`
 * nests too deep (with the reason in `err`, which may be NULL); the
 * packer's buffer then holds a partial value the caller should discard. */
int tw_json_pack(msgpack_packer *pk, const json_t *v, char *err,
                 size_t errlen);

/* A new JSON value (reference count 1) for the msgpack object `o`. NULL
 * only on out-of-memory. */
json_t *tw_json_from_object(const msgpack_object *o);

/* Decode `len` bytes holding exactly one msgpack value and convert it.
 * NULL if the bytes are not exactly one valid msgpack value (or on
 * out-of-memory). */
json_t *tw_json_from_msgpack(const void *buf, size_t len);

/* `v` as compact JSON text (no spaces, object keys in their order, UTF-8
 * left as is), any type at the top level. Reals get the fewest digits that
 * read back to the same double, each on its own. Returns a malloc'ed
 * string (free()), or NULL on out-of-memory. */
char *tw_json_dumps(const json_t *v);

#endif /* TW_CLI_JSON_H */
