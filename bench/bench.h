/*  bench/bench.h - small helpers every benchmark program shares.
 *
 *  The benchmarks are plain programs that print one summary line each (see
 *  docs/BENCHMARKS.md). They share a monotonic clock in nanoseconds, the
 *  statistics they report (median, percentiles), a free-port finder for
 *  loopback endpoints and a strict integer flag parser. Nothing here knows
 *  about taskwheel: the raw relay baseline links only this and libzmq.
 *  Not thread-safe where noted; the programs call these from main().
 */
#ifndef TW_BENCH_H
#define TW_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds since an arbitrary point. */
uint64_t tw_bench_now_ns(void);

/* Sort `v` in place and return the value at quantile q (0..1), using the
 * nearest-rank method. Returns 0 for an empty array. */
double tw_bench_quantile(double *v, size_t n, double q);

/* The median of `v` (sorted in place). */
double tw_bench_median(double *v, size_t n);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it
 * back, close). Returns the port or a negative errno. */
int tw_bench_free_port(void);

/* Parse `s` as an integer in [lo, hi] into *out. Returns 0, or -1 after
 * printing "PROG: bad value for FLAG" to stderr. */
int tw_bench_parse_ll(const char *prog, const char *flag, const char *s,
                      long long lo, long long hi, long long *out);

#endif /* TW_BENCH_H */
