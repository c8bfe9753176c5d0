/*  tests/unit/support/suite.h - process set-up shared by the worker
 *  suites.
 *
 *  The worker suites start child processes and talk over sockets and
 *  pipes whose other end may close first, and some of their cases provoke
 *  warnings on purpose. tw_suite_setup is their cmocka group setup (the
 *  second argument of cmocka_run_group_tests): SIGPIPE is ignored, so a
 *  write to a closed pipe fails instead of killing the suite, and only
 *  errors are logged. Test thread only.
 */
#ifndef TW_SUITE_H
#define TW_SUITE_H

/* Ignore SIGPIPE and log errors only. Always returns 0. */
int tw_suite_setup(void **state);

#endif /* TW_SUITE_H */
