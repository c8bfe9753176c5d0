/*  common/version.c - tw_version(), the version of the running code.
 *
 *  Linked into every program and into libtaskwheel (which exports it), so
 *  what --version prints, what the daemons log at start and what a library
 *  user reads all come from taskwheel/version.h, which CMake generates
 *  from the project's version.
 */
#include "taskwheel/version.h"

const char *
tw_version(void)
{
    return TW_VERSION_STRING;
}
