/*  tests/unit/support/files.c - reading a file whole (files.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/support/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
tw_suite_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fail_msg("cannot open %s: %s", path, strerror(errno));
    }
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, fp)) > 0) {
        n += r;
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        fail_msg("cannot read %s", path);
    }
    buf[n] = '\0';
    if (len) {
        *len = n;
    }
    return buf;
}
