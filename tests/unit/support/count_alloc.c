/*  tests/unit/support/count_alloc.c - see count_alloc.h. */
#include "count_alloc.h"

#include "common/alloc.h"

#include <stdlib.h>

long tw_count_blocks;

static void *
s_malloc(size_t size)
{
    void *p = malloc(size);
    if (p) {
        tw_count_blocks++;
    }
    return p;
}

static void *
s_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size);
    if (p && !ptr) {
        tw_count_blocks++;
    }
    return p;
}

static void
s_free(void *ptr)
{
    if (ptr) {
        tw_count_blocks--;
    }
    free(ptr);
}

int
tw_count_setup(void **state)
{
    (void)state;
    tw_count_blocks = 0;
    return tw_replace_allocator(s_malloc, s_realloc, s_free);
}

int
tw_count_teardown(void **state)
{
    (void)state;
    int leaked = tw_count_blocks != 0;
    tw_replace_allocator(NULL, NULL, NULL);
    return leaked ? -1 : 0;
}
