/*  broker/state/trim.c - pacing malloc_trim (see trim.h). */
#include "broker/state/trim.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#define S_TRIM_BYTES (32u << 20) /* freed payload before an early trim */
#define S_TRIM_MS 100            /* between two trims at least */

void
tw_trim_note(tw_trim_t *t, size_t freed, int tick, uint64_t now_ms)
{
#ifdef __GLIBC__
    t->bytes += freed;
    if ((tick || t->bytes >= S_TRIM_BYTES) && now_ms - t->at_ms >= S_TRIM_MS) {
        malloc_trim(0);
        t->bytes = 0;
        t->at_ms = now_ms;
    }
#else
    (void)t;
    (void)freed;
    (void)tick;
    (void)now_ms;
#endif
}
