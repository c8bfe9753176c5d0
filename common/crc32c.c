/*  common/crc32c.c - CRC-32C in hardware where the CPU has it, by tables
 *  elsewhere (see crc32c.h).
 *
 *  The reflected polynomial 0x82f63b78, initial value and final xor all
 *  ones. The software version processes 8 bytes per step with 8 tables of
 *  256 entries, built on first use.
 */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#define S_POLY 0x82f63b78u

static uint32_t s_table[8][256];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_hw;

static void
s_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ S_POLY : c >> 1;
        }
        s_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = s_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = s_table[0][c & 0xff] ^ (c >> 8);
            s_table[k][n] = c;
        }
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    s_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t
s_soft(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len && ((uintptr_t)p & 7)) {
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= crc;
        crc = s_table[7][w & 0xff] ^ s_table[6][(w >> 8) & 0xff] ^
              s_table[5][(w >> 16) & 0xff] ^ s_table[4][(w >> 24) & 0xff] ^
              s_table[3][(w >> 32) & 0xff] ^ s_table[2][(w >> 40) & 0xff] ^
              s_table[1][(w >> 48) & 0xff] ^ s_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t
s_hard(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    }
    return (uint32_t)c;
}
#endif

uint32_t
tw__crc32c_soft(uint32_t crc, const void *p, size_t len)
{
    pthread_once(&s_once, s_init);
    return ~s_soft(~crc, p, len);
}

uint32_t
tw_crc32c(uint32_t crc, const void *p, size_t len)
{
    pthread_once(&s_once, s_init);
    crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (s_hw) {
        return ~s_hard(crc, p, len);
    }
#endif
    return ~s_soft(crc, p, len);
}
