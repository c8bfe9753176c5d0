/*  common/util.h - the clock and random identities.
 *
 *  Scheduling code never reads a clock itself: the loops pass uv_now() in.
 *  tw_now_ms() is for code that has no loop (the client library, tests and
 *  benchmarks). tw_random_hex() makes ZeroMQ routing identities and names
 *  that must not collide across hosts.
 */
#ifndef TW_UTIL_H
#define TW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds since an arbitrary point. */
uint64_t tw_now_ms(void);

/* Monotonic nanoseconds since an arbitrary point. */
uint64_t tw_now_ns(void);

/* Wall-clock milliseconds since the Unix epoch (for records shown to
 * people, never for deadlines). */
uint64_t tw_wall_ms(void);

/* Write `nchars` random lowercase hex digits and a NUL into `buf`
 * (which holds nchars + 1 bytes). */
void tw_random_hex(char *buf, size_t nchars);

/* A duration as people type it: decimal seconds with an optional unit
 * s, m, h or d ("90", "90s", "15m", "2h", "7d"), 1 to 9 digits, above 0.
 * Returns 0 and *ms, or -1. */
int tw_duration_ms(const char *s, size_t n, uint64_t *ms);

/* The value of the hex digit `c` (either case), or -1 if it is none. */
int tw_hex_digit(char c);

/* FNV-1a hash of `len` bytes, never 0 (so it can key a tw_idmap_t). */
uint64_t tw_hash_bytes(const void *p, size_t len);

#endif /* TW_UTIL_H */
