/*  tests/fuzz/touch.h - read every byte a decoder points to.
 *
 *  The fuzz drivers call s_touch on each string, payload and name a
 *  decoder hands back, so a pointer that escapes its buffer is read and
 *  shows up under AddressSanitizer; the sum goes to a volatile sink so the
 *  reads are not optimised away. Header-only: each driver is one file.
 */
#ifndef TW_FUZZ_TOUCH_H
#define TW_FUZZ_TOUCH_H

#include <stddef.h>
#include <stdint.h>

static volatile uint64_t s_sink;

static inline void
s_touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += b[i];
    }
    s_sink += acc;
}

#endif /* TW_FUZZ_TOUCH_H */
