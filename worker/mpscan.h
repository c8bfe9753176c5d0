/*  worker/mpscan.h - msgpack values read in place, without allocating.
 *
 *  The worker handles payloads it mostly passes on untouched (station
 *  results, frames from programs, arguments it splices into frames). To
 *  look inside one it scans the bytes where they are instead of unpacking
 *  them into an object tree: each function here takes a pointer and a
 *  length, never reads past them, and allocates nothing. The scan is
 *  iterative, so a deeply nested value costs no stack. Used by the
 *  taskloop engine (a result's "stop" and "exception"), the frame codec
 *  (worker/frame.h) and the stream handler. Pure functions, any thread.
 */
#ifndef TW_WORKER_MPSCAN_H
#define TW_WORKER_MPSCAN_H

#include <stddef.h>
#include <stdint.h>

/* Parse the header of the value at p[*off]: advance *off past it and set
 * *len (payload bytes that follow the header) and *kids (values that
 * follow: elements, or keys and values). Returns 0, or -1 if the header
 * is truncated or is the unused byte c1. */
int tw_mpscan_head(const unsigned char *p, size_t n, size_t *off, uint64_t *len,
                   uint64_t *kids);

/* Bytes taken by the one msgpack value at p[0..n), or 0 if p does not
 * start with a complete value. */
size_t tw_mpscan_skip(const unsigned char *p, size_t n);

/* 1 if p[0..n) is exactly one msgpack value. */
int tw_mpscan_one(const void *p, size_t n);

/* 1 if the value starting with byte `b` is a map / an array. */
int tw_mpscan_is_map(unsigned b);
int tw_mpscan_is_array(unsigned b);

/* Python's truth of the value at p[0..n) (nil, false, zero, empty: 0). */
int tw_mpscan_truthy(const unsigned char *p, size_t n);

/* In the map at p[0..n), the value of the str key `key` (`klen` bytes):
 * sets *v and *vlen and returns 1, or returns 0 (no such key, or not a
 * well-formed map). */
int tw_mpscan_map_get(const unsigned char *p, size_t n, const char *key,
                      size_t klen, const unsigned char **v, size_t *vlen);

/* If p[0..n) is exactly one str (or, with `bin_too`, one bin), set *s and
 * *len to its bytes and return 1; else return 0. */
int tw_mpscan_text(const unsigned char *p, size_t n, int bin_too,
                   const char **s, size_t *len);

/* If p[0..n) is exactly one integer >= 0, set *v and return 1; else 0. */
int tw_mpscan_uint(const unsigned char *p, size_t n, uint64_t *v);

#endif /* TW_WORKER_MPSCAN_H */
