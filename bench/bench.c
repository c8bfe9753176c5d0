/*  bench/bench.c - clock, statistics, ports and flags (see bench.h). */
#include "bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t
tw_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double
tw_bench_quantile(double *v, size_t n, double q)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, s_cmp_double);
    /* Nearest rank: the smallest value with at least q*n values at or
     * below it. */
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return v[rank - 1];
}

double
tw_bench_median(double *v, size_t n)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, s_cmp_double);
    if (n % 2 == 1) {
        return v[n / 2];
    }
    return (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
tw_bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -errno;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0
        || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int
tw_bench_parse_ll(const char *prog, const char *flag, const char *s,
                  long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || *s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "%s: bad value for %s: '%s' (%lld..%lld)\n", prog,
                flag, s ? s : "", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int
tw_bench_parse_flags(const char *prog, int argc, char **argv,
                     const tw_bench_flag_t *flags, size_t n,
                     void (*usage)(FILE *out))
{
    int i = 1;
    while (i < argc) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            usage(stdout);
            return TW_BENCH_FLAGS_HELP;
        }
        const tw_bench_flag_t *fl = NULL;
        for (size_t k = 0; k < n && !fl; k++) {
            if (strcmp(f, flags[k].name) == 0) {
                fl = &flags[k];
            }
        }
        if (!fl || (!fl->sw && !v)) {
            fprintf(stderr, "%s: %s flag '%s'\n", prog,
                    fl ? "incomplete" : "unknown", f);
            usage(stderr);
            return TW_BENCH_FLAGS_USAGE;
        }
        if (fl->sw) {
            *fl->sw = fl->set;
            i++;
            continue;
        }
        if (fl->str) {
            *fl->str = v;
        } else if (tw_bench_parse_ll(prog, f, v, fl->lo, fl->hi, fl->num)
                   != 0) {
            return TW_BENCH_FLAGS_USAGE;
        }
        i += 2;
    }
    return TW_BENCH_FLAGS_RUN;
}

long long
tw_bench_rss_bytes(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -errno;
    }
    long long kb = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb < 0 ? kb : kb * 1024;
}

long long
tw_bench_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -errno;
    }
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the
     * fields after it start after the last ')'. utime and stime are
     * fields 14 and 15, the 12th and 13th after it. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu", &ut, &st) != 2) {
        return -EPROTO;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (long long)((ut + st) * (1000000000ull / (hz > 0 ? hz : 100)));
}

void
tw_bench_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
