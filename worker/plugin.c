/*  worker/plugin.c - dlopen, the entry point, and tw_plugin_register.
 *
 *  The tw_plugin_t a plugin sees lives in static storage and is "open"
 *  only while its tw_plugin_init runs, so a plugin that keeps the pointer
 *  and registers later gets -EINVAL instead of touching freed memory.
 */
#include "worker/plugin.h"
#include "common/error.h"
#include "common/log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

struct tw_plugin {
    tw_handlers_t *reg;
    const char *path;
    int open;
};

static tw_plugin_t s_current;

typedef int (*s_init_fn)(tw_plugin_t *plugin, int abi_version);

/* The struct's bytes past what this worker knows are all zero. */
static int
s_tail_zero(const tw_handler_def_t *def, size_t size)
{
    const unsigned char *p = (const unsigned char *)def;
    for (size_t i = sizeof *def; i < size; i++) {
        if (p[i]) {
            return 0;
        }
    }
    return 1;
}

int
tw_plugin_register_def(tw_plugin_t *plugin, const tw_handler_def_t *def,
                       size_t def_size)
{
    if (plugin != &s_current || !plugin->open || !def) {
        return TW_EINVAL;
    }
    const char *why = NULL;
    if (def_size < TW_HANDLER_DEF_MIN) {
        why = "its tw_handler_def_t is smaller than any version's";
    } else if (def_size > sizeof *def && !s_tail_zero(def, def_size)) {
        why = "it sets tw_handler_def_t fields this worker does not know "
              "(built with a newer taskwheel/handler.h)";
    }
    int rc = TW_EINVAL;
    if (!why) {
        /* Fields an older plugin's struct lacks read as zero. */
        tw_handler_def_t d;
        memset(&d, 0, sizeof d);
        memcpy(&d, def, def_size < sizeof d ? def_size : sizeof d);
        rc = tw_handlers_add(plugin->reg, &d);
        why = rc ? tw_strerror(rc) : NULL;
    }
    if (why) {
        tw_warn("worker.plugin", "%s: cannot register handler '%s': %s",
                plugin->path,
                def_size >= TW_HANDLER_DEF_MIN && def->name ? def->name
                                                            : "(null)",
                why);
    }
    return rc;
}

/* The entry point of plugins built before the struct's size was passed
 * (the parentheses keep handler.h's macro of the same name out). */
int
(tw_plugin_register)(tw_plugin_t *plugin, const tw_handler_def_t *def)
{
    return tw_plugin_register_def(plugin, def, sizeof *def);
}

int
tw_plugin_load(tw_handlers_t *reg, const char *path, char *err,
               size_t errlen)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "cannot load plugin %s: %s", path, dlerror());
        return TW_EIO;
    }
    s_init_fn init;
    /* POSIX's way of turning a data pointer into a function pointer. */
    *(void **)&init = dlsym(dl, "tw_plugin_init");
    if (!init) {
        snprintf(err, errlen,
                 "plugin %s has no tw_plugin_init: not a taskwheel plugin",
                 path);
        dlclose(dl);
        return TW_ENOENT;
    }
    size_t before = reg->n;
    s_current.reg = reg;
    s_current.path = path;
    s_current.open = 1;
    int rc = init(&s_current, TW_HANDLER_ABI);
    s_current.open = 0;
    if (rc != 0) {
        snprintf(err, errlen,
                 "plugin %s refused to load: tw_plugin_init returned %d "
                 "(this worker's handler ABI is %d)",
                 path, rc, TW_HANDLER_ABI);
        tw_handlers_truncate(reg, before);
        dlclose(dl);
        return TW_EINVAL;
    }
    tw_handlers_adopt_lib(reg, dl);
    tw_info("worker.plugin", "loaded %s: %zu handler(s)", path,
            reg->n - before);
    return 0;
}
