/*  broker/state/trim.h - the broker's freed memory given back to the system.
 *
 *  Payloads come and go in bursts; glibc keeps what was freed and the
 *  broker's resident size would stay at its peak. So the heap is trimmed
 *  once a second, and sooner once 32 MiB of payload were freed, but not
 *  more than ten times a second. This also returns the trie in which
 *  libzmq keeps every monitor's subscription prefixes (a few KiB per long
 *  prefix, freed when a monitor with many leaves). Without glibc it does
 *  nothing. Callers pass the time; broker loop thread only.
 */
#ifndef TW_BROKER_TRIM_H
#define TW_BROKER_TRIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t bytes; /* payload freed since the last trim */
    uint64_t at_ms; /* when the heap was last trimmed */
} tw_trim_t;

/* `freed` bytes of payload went back to the heap at `now_ms`; `tick` is
 * set once a second. Trims when one of the rules above says so. */
void tw_trim_note(tw_trim_t *t, size_t freed, int tick, uint64_t now_ms);

#endif /* TW_BROKER_TRIM_H */
