/*  worker/plugin.h - loading native handler plugins.
 *
 *  `taskwheel-worker --plugin lib.so` ends here: the shared object is
 *  dlopen'ed, its tw_plugin_init is called with the worker's ABI version,
 *  and the handlers it registers through tw_plugin_register join the
 *  registry. Loading is all or nothing: a plugin that cannot be opened,
 *  has no entry point, or refuses the ABI leaves the registry as it was and
 *  is closed again. Plugins resolve tw_plugin_register and tw_call_* from
 *  the executable that loads them (built with exported symbols). Start-up
 *  only, on the loop thread.
 */
#ifndef TW_PLUGIN_H
#define TW_PLUGIN_H

#include <stddef.h>

#include "worker/handlers.h"

/* Load the plugin at `path` into `reg`, which then keeps it open. Returns
 * 0; or TW_EIO (cannot be opened), TW_ENOENT (no tw_plugin_init) or
 * TW_EINVAL (tw_plugin_init refused) with a one-line reason naming the
 * file in `err`. */
int tw_plugin_load(tw_handlers_t *reg, const char *path, char *err,
                   size_t errlen);

#endif /* TW_PLUGIN_H */
