/*  tests/unit/support/faultsim.h - a countdown allocator that fails on cue.
 *
 *  In the manner of sqlite's faultsim (src/test_malloc.c): installed with
 *  tw_replace_allocator(), it lets the next `delay` allocations succeed,
 *  then fails `repeat`, then lets all succeed again. It also counts live
 *  blocks, so a case can show that the frees balance the allocations
 *  after a failure. tests/unit/test_alloc.c checks the allocator itself;
 *  tests/unit/test_client_oom.c sweeps the client library with it. Test
 *  thread only.
 */
#ifndef TW_FAULTSIM_H
#define TW_FAULTSIM_H

#include <stddef.h>

/* The simulator's state. `delay` < 0 means never fail. */
typedef struct {
    long delay;  /* allocations left before failures start */
    long repeat; /* failures to produce once delay reaches 0 */
    long calls;  /* allocation calls seen (malloc + realloc) */
    long fails;  /* allocations refused */
    long live;   /* blocks handed out and not yet freed */
    long frees;  /* free calls seen */
    size_t last_size;
} tw_fs_t;

extern tw_fs_t tw_fs;

/* Reset the state and install the simulator: `delay` successes, then
 * `repeat` failures. Returns 0 (tw_replace_allocator's result). */
int tw_fs_install(long delay, long repeat);

/* Restore libc's allocator; a cmocka teardown. Returns 0. */
int tw_fs_teardown(void **state);

#endif /* TW_FAULTSIM_H */
