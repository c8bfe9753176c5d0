/*  tests/unit/support/count_alloc.h - a counting allocator for leak checks.
 *
 *  Suites that must give back every block they take (a table's destroy, a
 *  remove) run their cases under this allocator, installed through
 *  tw_replace_allocator(), so a leak fails the case even without ASan.
 *  Use tw_count_setup / tw_count_teardown as a case's cmocka setup and
 *  teardown: teardown fails the case when a block is still live. Test
 *  thread only.
 */
#ifndef TW_COUNT_ALLOC_H
#define TW_COUNT_ALLOC_H

/* Blocks handed out through common/alloc.h and not freed yet. */
extern long tw_count_blocks;

/* Reset the count and install the counting allocator. Returns 0. */
int tw_count_setup(void **state);

/* Restore libc's allocator; returns -1 (a failed case) if blocks leaked. */
int tw_count_teardown(void **state);

#endif /* TW_COUNT_ALLOC_H */
