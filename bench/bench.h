/*  bench/bench.h - small helpers every benchmark program shares.
 *
 *  The benchmarks are plain programs that print one summary line each (see
 *  docs/BENCHMARKS.md). They share a monotonic clock in nanoseconds, the
 *  statistics they report (median, percentiles), a free-port finder for
 *  loopback endpoints, one table-driven command-line parser (each program
 *  lists its flags in an array of tw_bench_flag_t instead of writing its
 *  own loop) and readers of another process's memory and CPU time from
 *  /proc. Nothing here knows about taskwheel: the raw relay baseline links
 *  only this and libzmq. The programs call these from main(); only the
 *  clock is used from other threads.
 */
#ifndef TW_BENCH_H
#define TW_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

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

/* One command-line flag. An integer flag "--name N" stores N, checked to
 * be in [lo, hi], in *num; a string flag "--name S" stores the borrowed
 * argv string in *str; a switch "--name" (no value) stores `set` in *sw.
 * Exactly one of num, str and sw is set; the macros below fill the rest. */
typedef struct {
    const char *name;
    long long *num;
    long long lo, hi;
    const char **str;
    int *sw;
    int set;
} tw_bench_flag_t;

#define TW_BENCH_NUM(name, ptr, lo, hi)                                      \
    {(name), (ptr), (lo), (hi), NULL, NULL, 0}
#define TW_BENCH_STR(name, ptr) {(name), NULL, 0, 0, (ptr), NULL, 0}
#define TW_BENCH_SWITCH(name, ptr, v) {(name), NULL, 0, 0, NULL, (ptr), (v)}

/* What tw_bench_parse_flags found. */
#define TW_BENCH_FLAGS_RUN 0   /* every flag parsed: go on */
#define TW_BENCH_FLAGS_HELP 1  /* --help or -h: usage was printed, exit 0 */
#define TW_BENCH_FLAGS_USAGE 2 /* a bad flag or value: said why, exit 2 */

/* Parse argv[1..argc) against flags[0..n), plus --help and -h, which call
 * usage(stdout). An unknown flag, a missing value or a value out of range
 * prints why and usage(stderr). Returns one of TW_BENCH_FLAGS_*. */
int tw_bench_parse_flags(const char *prog, int argc, char **argv,
                         const tw_bench_flag_t *flags, size_t n,
                         void (*usage)(FILE *out));

/* The exit status for a non-RUN result of tw_bench_parse_flags. */
#define TW_BENCH_FLAGS_EXIT(r) ((r) == TW_BENCH_FLAGS_HELP ? 0 : 2)

/* Resident memory of process `pid` in bytes (VmRSS in /proc/PID/status),
 * or a negative errno. */
long long tw_bench_rss_bytes(pid_t pid);

/* CPU time process `pid` has used so far, user plus system, in
 * nanoseconds (clock-tick resolution, /proc/PID/stat), or a negative
 * errno. */
long long tw_bench_cpu_ns(pid_t pid);

/* Sleep `ms` milliseconds (restarting after signals). */
void tw_bench_sleep_ms(long ms);

#endif /* TW_BENCH_H */
