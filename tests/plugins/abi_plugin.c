/*  tests/plugins/abi_plugin.c - a plugin that registers handlers the ways
 *  plugins built against other versions of taskwheel/handler.h do, for
 *  test_worker_handlers (test_plugin_abi).
 *
 *    abi.macro   through tw_plugin_register (this header's size)
 *    abi.old     through the plain function of that name, as a plugin
 *                built before the struct's size was passed calls it
 *    abi.v0      an older, smaller struct: name to udata only
 *    abi.newer   a newer, larger struct whose extra fields are zero
 *    abi.unknown a newer struct that sets a field this worker lacks
 *    abi.tiny    a size smaller than any version's
 *
 *  The last two must be refused; tw_plugin_init still returns 0.
 */
#include <taskwheel/handler.h>

#include <string.h>

static void
s_run(tw_call_t *call, void *udata)
{
    (void)udata;
    tw_call_finish(call, "\xa2ok", 3);
}

/* A tw_handler_def_t from a header with one more field. */
typedef struct {
    tw_handler_def_t def;
    void *later;
} s_newer_t;

int
tw_plugin_init(tw_plugin_t *plugin, int abi_version)
{
    if (abi_version != TW_HANDLER_ABI) {
        return -1;
    }
    tw_handler_def_t d = {.name = "abi.macro", .run = s_run};
    tw_plugin_register(plugin, &d);
    d.name = "abi.old";
    (tw_plugin_register)(plugin, &d);
    /* An older plugin's struct ends at udata; the bytes after it (here
     * non-zero on purpose) are not the plugin's and must not be read. */
    tw_handler_def_t v0;
    memset(&v0, 0xff, sizeof v0);
    v0.name = "abi.v0";
    v0.flags = TW_HANDLER_ASYNC;
    v0.run = s_run;
    v0.cancel = NULL;
    v0.udata = NULL;
    tw_plugin_register_def(plugin, &v0, TW_HANDLER_DEF_MIN);
    s_newer_t n;
    memset(&n, 0, sizeof n);
    n.def.name = "abi.newer";
    n.def.run = s_run;
    tw_plugin_register_def(plugin, &n.def, sizeof n);
    n.def.name = "abi.unknown";
    n.later = &n;
    tw_plugin_register_def(plugin, &n.def, sizeof n);
    d.name = "abi.tiny";
    tw_plugin_register_def(plugin, &d, sizeof(void *));
    return 0;
}
