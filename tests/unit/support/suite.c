/*  tests/unit/support/suite.c - process set-up shared by the worker
 *  suites (see suite.h).
 */
#include "tests/unit/support/suite.h"
#include "common/log.h"

#include <signal.h>

int
tw_suite_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    tw_log_level = TW_LOG_ERR;
    return 0;
}
