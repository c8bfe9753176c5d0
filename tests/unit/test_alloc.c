/*  tests/unit/test_alloc.c - the replaceable allocator and fault injection.
 *
 *  A countdown allocator in the manner of sqlite's faultsim
 *  (tests/unit/support/faultsim.h) is installed with
 *  tw_replace_allocator(): the next `delay` allocations succeed, then
 *  `repeat` fail, then all succeed again.
 *  tw_malloc() aborts by design on failure, so the countdown is checked
 *  against tw_try_malloc()/tw_try_realloc() in-process, and the aborting
 *  paths run in a forked child whose death by SIGABRT is the expected
 *  outcome. The same allocator counts live blocks, which shows that a
 *  module's frees balance its allocations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/idmap.h"
#include "tests/unit/support/faultsim.h"

/* Install the simulator: `delay` successes, then `repeat` failures. */
static void
s_fs_install(long delay, long repeat)
{
    assert_int_equal(tw_fs_install(delay, repeat), 0);
}

static int
s_teardown(void **state)
{
    return tw_fs_teardown(state);
}

static void
test_replace_validation(void **state)
{
    (void)state;
    s_fs_install(-1, 0);
    /* Any mix of NULL and non-NULL is refused... */
    assert_int_equal(tw_replace_allocator(malloc, NULL, NULL),
                     TW_EINVAL);
    assert_int_equal(tw_replace_allocator(NULL, realloc, NULL),
                     TW_EINVAL);
    assert_int_equal(tw_replace_allocator(NULL, NULL, free), TW_EINVAL);
    assert_int_equal(tw_replace_allocator(malloc, realloc, NULL),
                     TW_EINVAL);
    assert_int_equal(tw_replace_allocator(malloc, NULL, free),
                     TW_EINVAL);
    assert_int_equal(tw_replace_allocator(NULL, realloc, free),
                     TW_EINVAL);
    /* ...and leaves the installed allocator in place. */
    void *p = tw_try_malloc(10);
    assert_non_null(p);
    assert_int_equal(tw_fs.calls, 1);
    tw_free(p);
    assert_int_equal(tw_fs.frees, 1);

    /* All NULL restores libc: our counters stop moving. */
    assert_int_equal(tw_replace_allocator(NULL, NULL, NULL), 0);
    p = tw_try_malloc(10);
    assert_non_null(p);
    tw_free(p);
    assert_int_equal(tw_fs.calls, 1);
    assert_int_equal(tw_fs.frees, 1);
}

static void
test_countdown_try_malloc(void **state)
{
    (void)state;
    for (long delay = 0; delay < 8; delay++) {
        for (long repeat = 1; repeat < 4; repeat++) {
            s_fs_install(delay, repeat);
            void *blocks[16];
            for (int i = 0; i < 16; i++) {
                blocks[i] = tw_try_malloc(32);
                int expect_fail = i >= delay && i < delay + repeat;
                if (expect_fail) {
                    assert_null(blocks[i]);
                } else {
                    assert_non_null(blocks[i]);
                    memset(blocks[i], 0xab, 32);
                }
            }
            assert_int_equal(tw_fs.fails, repeat);
            for (int i = 0; i < 16; i++) {
                tw_free(blocks[i]);
            }
            assert_int_equal(tw_fs.live, 0);
        }
    }
}

static void
test_countdown_try_realloc(void **state)
{
    (void)state;
    s_fs_install(1, 1);
    char *p = tw_try_realloc(NULL, 8); /* success: acts as malloc */
    assert_non_null(p);
    memcpy(p, "abcdefg", 8);
    char *q = tw_try_realloc(p, 1 << 20); /* the failure */
    assert_null(q);
    /* A failed realloc leaves the old block intact and owned. */
    assert_string_equal(p, "abcdefg");
    q = tw_try_realloc(p, 1 << 20);
    assert_non_null(q);
    assert_string_equal(q, "abcdefg");
    tw_free(q);
    assert_int_equal(tw_fs.live, 0);
    assert_int_equal(tw_fs.fails, 1);
}

static void
test_zero_size(void **state)
{
    (void)state;
    s_fs_install(-1, 0);
    /* Zero-byte requests still give a unique, freeable block. */
    void *p = tw_try_malloc(0);
    assert_non_null(p);
    assert_true(tw_fs.last_size >= 1);
    void *q = tw_try_realloc(p, 0);
    assert_non_null(q);
    tw_free(q);
    tw_free(NULL);
    assert_int_equal(tw_fs.live, 0);
}

static void
test_aborting_variants_use_allocator(void **state)
{
    (void)state;
    s_fs_install(-1, 0);
    char *a = tw_malloc(5);
    char *b = tw_calloc(7, 9);
    for (int i = 0; i < 63; i++) {
        assert_int_equal(b[i], 0);
    }
    char *c = tw_strdup("taskwheel");
    char *d = tw_strndup("taskwheel", 4);
    a = tw_realloc(a, 500);
    assert_string_equal(c, "taskwheel");
    assert_string_equal(d, "task");
    assert_int_equal(tw_fs.live, 4);
    tw_free(a);
    tw_free(b);
    tw_free(c);
    tw_free(d);
    assert_int_equal(tw_fs.live, 0);
}

/* Run `fn` in a child with the simulator set to fail at allocation
 * `delay`; returns the child's wait status. */
static int
s_in_child(void (*fn)(void), long delay)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Silence the one-line OOM report in the child. */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 2);
        }
        tw_fs_install(delay, 1L << 30);
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void
s_child_malloc(void)
{
    tw_free(tw_malloc(16));
}

static void
s_child_calloc_overflow(void)
{
    tw_replace_allocator(NULL, NULL, NULL);
    (void)tw_calloc(SIZE_MAX / 2, 4);
}

static void
s_child_strdup(void)
{
    (void)tw_strdup("x");
}

static void
test_aborting_variants_abort(void **state)
{
    (void)state;
    int st = s_in_child(s_child_malloc, 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    st = s_in_child(s_child_strdup, 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    st = s_in_child(s_child_calloc_overflow, -1);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    /* Control: no failure, clean exit. */
    st = s_in_child(s_child_malloc, -1);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The id map under failure: each allocation in turn fails (in a child, as
 * it uses the aborting allocator); the only acceptable outcomes are a
 * clean run or an abort, never another signal. */
static void
s_child_idmap(void)
{
    tw_idmap_t m;
    tw_idmap_init(&m);
    for (uint64_t id = 1; id <= 200; id++) {
        tw_idmap_put(&m, id, (void *)(uintptr_t)id);
    }
    for (uint64_t id = 1; id <= 200; id++) {
        if (tw_idmap_get(&m, id) != (void *)(uintptr_t)id) {
            _exit(3);
        }
    }
    tw_idmap_free(&m);
    if (tw_fs.live != 0) {
        _exit(4);
    }
}

static void
test_faultsim_idmap(void **state)
{
    (void)state;
    int aborted = 0;
    long n;
    for (n = 0; n < 64; n++) {
        int st = s_in_child(s_child_idmap, n);
        if (WIFEXITED(st)) {
            assert_int_equal(WEXITSTATUS(st), 0);
            break; /* the run needs fewer than n allocations */
        }
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGABRT);
        aborted++;
    }
    assert_true(aborted > 0);
    assert_true(n < 64);
}

static void
test_idmap_balanced(void **state)
{
    (void)state;
    s_fs_install(-1, 0);
    tw_idmap_t m;
    tw_idmap_init(&m);
    assert_int_equal(tw_fs.calls, 0); /* no allocation until the first put */
    for (uint64_t id = 1; id <= 5000; id++) {
        tw_idmap_put(&m, id * 7919, &m);
    }
    for (uint64_t id = 1; id <= 5000; id += 2) {
        tw_idmap_del(&m, id * 7919);
    }
    assert_true(tw_fs.live > 0);
    tw_idmap_free(&m);
    assert_int_equal(tw_fs.live, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_replace_validation, s_teardown),
        cmocka_unit_test_teardown(test_countdown_try_malloc, s_teardown),
        cmocka_unit_test_teardown(test_countdown_try_realloc, s_teardown),
        cmocka_unit_test_teardown(test_zero_size, s_teardown),
        cmocka_unit_test_teardown(test_aborting_variants_use_allocator,
                                  s_teardown),
        cmocka_unit_test_teardown(test_aborting_variants_abort, s_teardown),
        cmocka_unit_test_teardown(test_faultsim_idmap, s_teardown),
        cmocka_unit_test_teardown(test_idmap_balanced, s_teardown),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
