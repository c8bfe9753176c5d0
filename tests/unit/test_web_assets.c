/*  tests/unit/test_web_assets.c - the dashboard compiled into the broker.
 *
 *  web/embed.cmake turns the files of web/ into byte arrays at build
 *  time. Checks: every file is there at its URL path with the bytes of
 *  the source file and its content type; the byte after each file is a
 *  NUL; ETags are quoted and differ between files; unknown paths are not
 *  found; and every /ui/ path that index.html refers to is one of the
 *  compiled files, so the page never asks the broker for a file it does
 *  not have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/assets.h"

static char *
s_slurp(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/web/%s", TW_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void
s_same_bytes(const char *url, const char *file, const char *type_prefix)
{
    const tw_web_asset_t *a = tw_web_find(url);
    assert_non_null(a);
    size_t len;
    char *src = s_slurp(file, &len);
    assert_int_equal(a->len, len);
    assert_memory_equal(a->data, src, len);
    assert_int_equal(a->data[a->len], 0);
    assert_int_equal(strncmp(a->type, type_prefix, strlen(type_prefix)), 0);
    free(src);
}

static void
test_files_are_the_sources(void **state)
{
    (void)state;
    s_same_bytes("/", "index.html", "text/html");
    s_same_bytes("/ui/app.js", "app.js", "text/javascript");
    s_same_bytes("/ui/app.css", "app.css", "text/css");
    s_same_bytes("/ui/icon.svg", "icon.svg", "image/svg+xml");
}

static void
test_unknown_paths(void **state)
{
    (void)state;
    assert_null(tw_web_find(""));
    assert_null(tw_web_find("/index.html"));
    assert_null(tw_web_find("/ui/"));
    assert_null(tw_web_find("/ui/app.js?x"));
    assert_null(tw_web_find("/ui/../ui/app.js"));
    assert_null(tw_web_find("/api/v1"));
}

static void
test_etags(void **state)
{
    (void)state;
    size_t n = 0;
    for (const tw_web_asset_t *a = tw__web_assets; a->path; a++, n++) {
        size_t l = strlen(a->etag);
        assert_true(l == 18);
        assert_int_equal(a->etag[0], '"');
        assert_int_equal(a->etag[l - 1], '"');
        for (const tw_web_asset_t *b = tw__web_assets; b != a; b++) {
            assert_string_not_equal(a->etag, b->etag);
            assert_string_not_equal(a->path, b->path);
        }
    }
    assert_int_equal(n, 4);
}

/* Every src="/ui/..." and href="/ui/..." of the page is compiled in. */
static void
test_page_refers_only_to_compiled_files(void **state)
{
    (void)state;
    const char *page = (const char *)tw_web_find("/")->data;
    int seen = 0;
    for (const char *p = page; (p = strstr(p, "\"/ui/")) != NULL; p++) {
        const char *end = strchr(p + 1, '"');
        assert_non_null(end);
        char url[256];
        size_t n = (size_t)(end - p - 1);
        assert_true(n < sizeof url);
        memcpy(url, p + 1, n);
        url[n] = '\0';
        if (!tw_web_find(url)) {
            fail_msg("index.html refers to %s, which is not compiled in",
                     url);
        }
        seen++;
    }
    assert_true(seen >= 3);
    /* And nothing from elsewhere: no http(s) URL in the page or script. */
    assert_null(strstr(page, "https://"));
    assert_null(strstr((const char *)tw_web_find("/ui/app.js")->data,
                       "https://"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_are_the_sources),
        cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_etags),
        cmocka_unit_test(test_page_refers_only_to_compiled_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
