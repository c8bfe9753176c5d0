/*  tests/unit/support/client.c - a client for fake brokers (client.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/support/client.h"

tw_client_t *
tw_suite_client_new(const char *endpoint)
{
    tw_client_t *c = tw_client_new(endpoint);
    if (c) {
        tw_client_opts_t o = {.liveness = 30};
        assert_int_equal(tw_client_set_opts(c, &o), 0);
    }
    return c;
}
