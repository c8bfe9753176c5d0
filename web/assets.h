/*  web/assets.h - the dashboard's files, compiled into the program.
 *
 *  web/embed.cmake turns web/index.html, app.css, app.js and icon.svg
 *  into one table of byte arrays at build time (web/CMakeLists.txt), so
 *  the broker serves its dashboard from memory: nothing to install beside
 *  it and nothing fetched from elsewhere. index.html is at "/", the other
 *  files at "/ui/<name>". Read-only data: any thread may use it.
 */
#ifndef TW_WEB_ASSETS_H
#define TW_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path;          /* URL path: "/" or "/ui/app.js" */
    const char *type;          /* Content-Type value */
    const unsigned char *data; /* the bytes, followed by a NUL */
    size_t len;                /* bytes, without that NUL */
    const char *etag;          /* quoted, for ETag and If-None-Match */
} tw_web_asset_t;

/* The file served at `path` (the URL path, without a query), or NULL.
 * Borrowed, static. */
const tw_web_asset_t *tw_web_find(const char *path);

/* The table, ended by an entry whose path is NULL (generated). */
extern const tw_web_asset_t tw__web_assets[];

#endif /* TW_WEB_ASSETS_H */
