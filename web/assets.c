/*  web/assets.c - look up a compiled-in dashboard file (see assets.h).
 *
 *  The table is small (a handful of files), so a linear search is the
 *  simplest thing that is fast enough.
 */
#include "web/assets.h"

#include <string.h>

const tw_web_asset_t *
tw_web_find(const char *path)
{
    for (const tw_web_asset_t *a = tw__web_assets; a->path; a++) {
        if (strcmp(a->path, path) == 0) {
            return a;
        }
    }
    return NULL;
}
