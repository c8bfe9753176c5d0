/*  common/alloc.h - the one door every allocation goes through.
 *
 *  tw_malloc and friends abort on out-of-memory: they serve small, fixed
 *  allocations whose failure the process cannot meaningfully survive. Sizes
 *  chosen by a peer (payloads) are checked against limits before they get
 *  here, and answered with a protocol error instead. tw_replace_allocator()
 *  lets tests count or fail allocations (tests/unit/test_alloc.c uses a
 *  countdown, in the manner of sqlite's faultsim); tw_try_malloc() is the
 *  variant that returns NULL so such a failure can be observed.
 *  Thread-safe as long as the allocator is replaced before threads start.
 */
#ifndef TW_ALLOC_H
#define TW_ALLOC_H

#include <stddef.h>

typedef void *(*tw_malloc_fn)(size_t size);
typedef void *(*tw_realloc_fn)(void *ptr, size_t size);
typedef void (*tw_free_fn)(void *ptr);

/* Install a new allocator; NULL arguments restore the libc ones.
 * Returns 0, or TW_EINVAL if only some of the three are NULL. */
int tw_replace_allocator(tw_malloc_fn m, tw_realloc_fn r, tw_free_fn f);

/* Allocate; abort the process with a log line if memory is exhausted. */
void *tw_malloc(size_t size);
void *tw_calloc(size_t n, size_t size);
void *tw_realloc(void *ptr, size_t size);
char *tw_strdup(const char *s);
char *tw_strndup(const char *s, size_t n);

/* Allocate; return NULL on failure. For sizes a peer chose, and for
 * libtaskwheel, which never ends its caller's process (client/). */
void *tw_try_malloc(size_t size);
void *tw_try_calloc(size_t n, size_t size);
void *tw_try_realloc(void *ptr, size_t size);
char *tw_try_strdup(const char *s);
char *tw_try_strndup(const char *s, size_t n);

/* What the aborting variants do when memory is exhausted: one line to
 * stderr, then abort(). For helpers that offer both behaviours. */
__attribute__((noreturn)) void tw_oom(size_t size);

/* Free memory from any of the above. NULL is fine. */
void tw_free(void *ptr);

#endif /* TW_ALLOC_H */
