/*  common/util.c - clocks and randomness (see util.h). */
#include "common/util.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

uint64_t
tw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t
tw_now_ms(void)
{
    return tw_now_ns() / 1000000ULL;
}

uint64_t
tw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

void
tw_random_hex(char *buf, size_t nchars)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t need = (nchars + 1) / 2;
    if (need > sizeof raw) {
        need = sizeof raw;
        nchars = need * 2;
    }
    if (getrandom(raw, need, 0) != (ssize_t)need) {
        /* getrandom does not fail for small requests after boot; fall back
         * to the clock rather than leave the buffer uninitialised. */
        uint64_t t = tw_now_ns();
        for (size_t i = 0; i < need; i++) {
            raw[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
        }
    }
    for (size_t i = 0; i < nchars; i++) {
        unsigned char b = raw[i / 2];
        buf[i] = hex[i % 2 ? b & 15 : b >> 4];
    }
    buf[nchars] = '\0';
}

int
tw_duration_ms(const char *s, size_t n, uint64_t *ms)
{
    uint64_t v = 0, unit = 1;
    size_t digits = 0;
    while (digits < n && s[digits] >= '0' && s[digits] <= '9') {
        v = v * 10 + (uint64_t)(s[digits] - '0');
        digits++;
    }
    if (digits == 0 || digits > 9 || v == 0 || n - digits > 1) {
        return -1;
    }
    if (n - digits == 1) {
        switch (s[digits]) {
        case 's':
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -1;
        }
    }
    *ms = v * unit * 1000;
    return 0;
}

int
tw_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

uint64_t
tw_hash_bytes(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}
