/*  tests/unit/support/client.h - a libtaskwheel client for the suites
 *  that play the broker themselves.
 *
 *  A client declares its broker lost after `liveness` heartbeats of
 *  silence (3 s by default) and then abandons the requests in flight. A
 *  fake broker answering from a test thread can be silent that long when
 *  the whole run is slow (valgrind on a busy machine), so these clients
 *  allow 30 s: loss detection is the business of test_client_reconnect,
 *  which sets its own intervals. Test thread only.
 */
#ifndef TW_SUITE_CLIENT_H
#define TW_SUITE_CLIENT_H

#include "taskwheel/client.h"

/* tw_client_new(endpoint) with 30 s of liveness; NULL as tw_client_new. */
tw_client_t *tw_suite_client_new(const char *endpoint);

#endif /* TW_SUITE_CLIENT_H */
