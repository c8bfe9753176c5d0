/*  common/error.c - names and messages for the TW_ERRNO_MAP codes.
 *
 *  Both lookups are generated from the same X-macro as the enum, so a code
 *  can never exist without its name and sentence.
 */
#include "common/error.h"

const char *
tw_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define TW__ERR_MSG(name, val, msg)                                          \
    case val:                                                                \
        return msg;
        TW_ERRNO_MAP(TW__ERR_MSG)
#undef TW__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *
tw_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define TW__ERR_NAME(name, val, msg)                                         \
    case val:                                                                \
        return #name;
        TW_ERRNO_MAP(TW__ERR_NAME)
#undef TW__ERR_NAME
    default:
        return "EUNKNOWN";
    }
}
