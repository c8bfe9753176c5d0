/*  tests/unit/support/faultsim.c - see faultsim.h. */
#include "faultsim.h"

#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

tw_fs_t tw_fs;

static int
s_should_fail(void)
{
    tw_fs.calls++;
    if (tw_fs.delay < 0) {
        return 0;
    }
    if (tw_fs.delay > 0) {
        tw_fs.delay--;
        return 0;
    }
    if (tw_fs.repeat > 0) {
        tw_fs.repeat--;
        tw_fs.fails++;
        return 1;
    }
    return 0;
}

static void *
s_malloc(size_t size)
{
    tw_fs.last_size = size;
    if (s_should_fail()) {
        return NULL;
    }
    void *p = malloc(size);
    if (p) {
        tw_fs.live++;
    }
    return p;
}

static void *
s_realloc(void *ptr, size_t size)
{
    tw_fs.last_size = size;
    if (s_should_fail()) {
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p && !ptr) {
        tw_fs.live++;
    }
    return p;
}

static void
s_free(void *ptr)
{
    tw_fs.frees++;
    if (ptr) {
        tw_fs.live--;
    }
    free(ptr);
}

int
tw_fs_install(long delay, long repeat)
{
    memset(&tw_fs, 0, sizeof tw_fs);
    tw_fs.delay = delay;
    tw_fs.repeat = repeat;
    return tw_replace_allocator(s_malloc, s_realloc, s_free);
}

int
tw_fs_teardown(void **state)
{
    (void)state;
    tw_replace_allocator(NULL, NULL, NULL);
    return 0;
}
