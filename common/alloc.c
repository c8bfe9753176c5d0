/*  common/alloc.c - allocation through a replaceable allocator.
 *
 *  The aborting variants print one line to stderr and abort(): a daemon that
 *  cannot allocate a few bytes for its own bookkeeping is better restarted
 *  by its supervisor than left limping (Redis's zmalloc_default_oom).
 */
#include "common/alloc.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tw_malloc_fn s_malloc = malloc;
static tw_realloc_fn s_realloc = realloc;
static tw_free_fn s_free = free;

int
tw_replace_allocator(tw_malloc_fn m, tw_realloc_fn r, tw_free_fn f)
{
    if (!m && !r && !f) {
        s_malloc = malloc;
        s_realloc = realloc;
        s_free = free;
        return 0;
    }
    if (!m || !r || !f) {
        return TW_EINVAL;
    }
    s_malloc = m;
    s_realloc = r;
    s_free = f;
    return 0;
}

void
tw_oom(size_t size)
{
    fprintf(stderr, "taskwheel: out of memory allocating %zu bytes\n", size);
    abort();
}

void *
tw_try_malloc(size_t size)
{
    return s_malloc(size ? size : 1);
}

void *
tw_try_realloc(void *ptr, size_t size)
{
    return s_realloc(ptr, size ? size : 1);
}

void *
tw_malloc(size_t size)
{
    void *p = tw_try_malloc(size);
    if (!p) {
        tw_oom(size);
    }
    return p;
}

void *
tw_try_calloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size) {
        return NULL;
    }
    void *p = tw_try_malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
tw_calloc(size_t n, size_t size)
{
    void *p = tw_try_calloc(n, size);
    if (!p) {
        tw_oom(size && n > (size_t)-1 / size ? (size_t)-1 : n * size);
    }
    return p;
}

void *
tw_realloc(void *ptr, size_t size)
{
    void *p = tw_try_realloc(ptr, size);
    if (!p) {
        tw_oom(size);
    }
    return p;
}

char *
tw_try_strndup(const char *s, size_t n)
{
    char *p = tw_try_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *
tw_try_strdup(const char *s)
{
    return tw_try_strndup(s, strlen(s));
}

char *
tw_strndup(const char *s, size_t n)
{
    char *p = tw_try_strndup(s, n);
    if (!p) {
        tw_oom(n + 1);
    }
    return p;
}

char *
tw_strdup(const char *s)
{
    return tw_strndup(s, strlen(s));
}

void
tw_free(void *ptr)
{
    if (ptr) {
        s_free(ptr);
    }
}
