/*  tests/unit/support/files.h - reading a file whole, for the suites that
 *  check the project's own files (docs, examples, configs) against the
 *  code.
 *
 *  Test thread only; failures are test failures.
 */
#ifndef TW_SUITE_FILES_H
#define TW_SUITE_FILES_H

#include <stddef.h>

/* The whole file at `path` in a new NUL-terminated buffer (free() it);
 * *len (if not NULL) gets its length. Fails the test if it cannot be
 * read. */
char *tw_suite_read_file(const char *path, size_t *len);

#endif /* TW_SUITE_FILES_H */
