/*  proto/mpwalk.h - the one msgpack walker: values read where they lie.
 *
 *  Every taskwheel process reads msgpack it did not write: message bodies
 *  (before msgpack-c builds a tree of them, proto/proto.h), task arguments
 *  a client is asked to send, results and channel payloads a handler hands
 *  over, frames from the programs a worker runs (worker/frame.h). Most of
 *  these are passed on as bytes, so instead of unpacking them this module
 *  reads them in place: each function takes a pointer and a length, never
 *  reads past them and allocates nothing. The walk is iterative, so a deep
 *  value costs no stack, and every step consumes at least one byte, so a
 *  walk over n bytes ends within n steps.
 *
 *  Limits, the same for every caller:
 *
 *    size   no array or map may announce more elements than bytes remain
 *           (each element takes at least one), and no str, bin or ext more
 *           bytes than remain; so nothing read here can make a reader
 *           allocate more than the input's own size. The reserved type
 *           byte 0xc1 is malformed.
 *    depth  containers open at once. TW_MP_DEPTH_DECODE (32) is what
 *           msgpack-c's decoder accepts, so a value within it can be
 *           decoded by every taskwheel process: use it for what will be
 *           decoded (message bodies, a client's arguments). A container
 *           inside 32 open ones is refused even when empty, as msgpack-c
 *           does. TW_MP_DEPTH_ANY is for payloads only passed on, which
 *           the program at the far end may nest deeper.
 *
 *  Truth follows Python's (nil, false, zero, empty: false), the language
 *  of the station semantics (S8, S9). Clean text is common/utf8.h's rule.
 *  Map lookups compare str keys byte for byte and return the first match.
 *  tw_mp_get() is the same lookup on a tree msgpack-c has already built.
 *  Pure functions, any thread.
 */
#ifndef TW_MPWALK_H
#define TW_MPWALK_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define TW_MP_DEPTH_ANY 0     /* any nesting */
#define TW_MP_DEPTH_DECODE 32 /* msgpack-c's limit: containers open at once */

/* 1 if the value starting with byte `b` is a map / an array / a str / a
 * bin, else 0. */
int tw_mp_is_map(unsigned b);
int tw_mp_is_array(unsigned b);
int tw_mp_is_str(unsigned b);
int tw_mp_is_bin(unsigned b);

/* Parse the header of the value at p[*off]: advance *off past it and set
 * *len (payload bytes that follow the header: a str's text, an int's
 * bytes) and *kids (values that follow: elements, or keys and values).
 * Returns 0, or -1 if the header is truncated or is the byte 0xc1. The
 * payload itself is not checked against n. */
int tw_mp_head(const unsigned char *p, size_t n, size_t *off, uint64_t *len,
               uint64_t *kids);

/* Bytes taken by the one msgpack value at the start of p[0..n), within
 * the size limits and nested at most `max_depth` containers deep
 * (TW_MP_DEPTH_ANY: any); 0 if p does not start with such a value (or is
 * NULL). */
size_t tw_mp_walk(const void *p, size_t n, unsigned max_depth);

/* tw_mp_walk with any depth. */
size_t tw_mp_skip(const void *p, size_t n);

/* 1 if p[0..n) is exactly one msgpack value, nested at most `max_depth`
 * deep, with nothing after it; else 0 (also for NULL or n == 0). */
int tw_mp_one(const void *p, size_t n, unsigned max_depth);

/* Python's truth of the value at p[0..n) (nil, false, zero, empty: 0;
 * true, other numbers, non-empty str/bin/array/map, ext: 1). Reads the
 * header and, for a number, its bytes: 0 if those are cut short. */
int tw_mp_truthy(const unsigned char *p, size_t n);

/* In the map at p[0..n), the value of the str key `key` (`klen` bytes):
 * sets *v and *vlen and returns 1, or returns 0 (no such key, not a map,
 * or malformed before the key is found). */
int tw_mp_map_get(const unsigned char *p, size_t n, const char *key,
                  size_t klen, const unsigned char **v, size_t *vlen);

/* If p[0..n) is exactly one str (or, with `bin_too`, one bin), set *s and
 * *len to its bytes and return 1; else return 0. */
int tw_mp_text(const unsigned char *p, size_t n, int bin_too, const char **s,
               size_t *len);

/* If p[0..n) is exactly one str of 1 to `max` bytes of clean text
 * (common/utf8.h), set *s and *len and return 1; else return 0. */
int tw_mp_name(const unsigned char *p, size_t n, size_t max, const char **s,
               size_t *len);

/* If p[0..n) is exactly one unsigned integer (a positive fixint or uint 8
 * to 64; not a signed encoding), set *v and return 1; else 0. */
int tw_mp_uint(const unsigned char *p, size_t n, uint64_t *v);

/* The value of string key `key` in the decoded map `map`, or NULL when
 * `map` is NULL, not a map or has no such key. Borrowed from the tree. */
const msgpack_object *tw_mp_get(const msgpack_object *map, const char *key);

#endif /* TW_MPWALK_H */
