/*  tests/unit/test_eplist.c - a list of broker endpoints, and which one
 *  a client or worker uses (common/eplist.h, proto/PROTOCOL.md 17.8).
 *
 *  Parsing with every refusal and its reason; then the walk a peer of a
 *  broker pair makes: sticking to the active, following a refusal that
 *  names the active, waiting at a passive after losing the active (the
 *  vote), moving on when nobody answers for the active, refusing a
 *  deposed active whose epoch is below one already seen; and a
 *  one-endpoint list, which never moves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/eplist.h"
#include "common/error.h"
#include "tests/unit/support/count_alloc.h"

#include <string.h>

#define S_P "tcp://10.0.0.1:7710"
#define S_B "tcp://10.0.0.2:7710"

/* ENOTACTIVE naming `active` (a C string, or NULL). */
static int
s_refusal(tw_eplist_t *l, const char *active, int live, uint64_t ha)
{
    return tw_eplist_not_active(l, active, active ? strlen(active) : 0, live,
                                ha);
}

static tw_eplist_t *
s_pair(void)
{
    tw_eplist_t *l = NULL;
    char why[128];
    assert_int_equal(tw_eplist_parse(&l, S_P "," S_B, why, sizeof why), 0);
    return l;
}

static void
s_refused(const char *spec, const char *reason)
{
    tw_eplist_t *l = (tw_eplist_t *)1;
    char why[160] = "";
    assert_int_equal(tw_eplist_parse(&l, spec, why, sizeof why), TW_EINVAL);
    assert_null(l);
    if (!strstr(why, reason)) {
        fail_msg("'%s': '%s' does not say '%s'", spec ? spec : "(null)",
                 why, reason);
    }
}

static void
test_parse(void **state)
{
    (void)state;
    tw_eplist_t *l = NULL;
    char why[128];
    assert_int_equal(tw_eplist_parse(&l, " " S_P " ,\t" S_B "\t", why,
                                     sizeof why),
                     0);
    assert_int_equal(tw_eplist_count(l), 2);
    assert_string_equal(tw_eplist_at(l, 0), S_P);
    assert_string_equal(tw_eplist_at(l, 1), S_B);
    assert_null(tw_eplist_at(l, 2));
    assert_string_equal(tw_eplist_current(l), S_P);
    assert_int_equal(tw_eplist_ha(l), 0);
    assert_int_equal(tw_eplist_vote(l, NULL), 0);
    tw_eplist_free(&l);
    assert_null(l);
    tw_eplist_free(&l);
    assert_int_equal(tw_eplist_parse(&l, "ipc:///tmp/b,inproc://x,ws://h:1",
                                     NULL, 0),
                     0);
    assert_int_equal(tw_eplist_count(l), 3);
    tw_eplist_free(&l);

    s_refused(NULL, "no endpoint");
    s_refused("", "endpoint 1 is empty");
    s_refused(S_P ",", "endpoint 2 is empty");
    s_refused(S_P ", ," S_B, "endpoint 2 is empty");
    s_refused("10.0.0.1:7710",
              "endpoint 1 ('10.0.0.1:7710') is not scheme://address");
    s_refused("tcp://", "is not scheme://address");
    s_refused("TCP://x", "is not scheme://address");
    s_refused("://x", "is not scheme://address");
    s_refused(S_P "," S_P, "endpoint 2 ('" S_P "') is given twice");
    char big[400] = "tcp://";
    memset(big + 6, 'h', 300);
    big[306] = '\0';
    s_refused(big, "longer than 255 octets");
    s_refused("tcp://a,tcp://b,tcp://c,tcp://d,tcp://e,tcp://f,tcp://g,"
              "tcp://h,tcp://i",
              "more than 8 endpoints");
    /* Exactly 8 and 255 octets are fine; `why` may be absent. */
    assert_int_equal(tw_eplist_parse(&l, "tcp://a,tcp://b,tcp://c,tcp://d,"
                                         "tcp://e,tcp://f,tcp://g,tcp://h",
                                     NULL, 0),
                     0);
    tw_eplist_free(&l);
    big[255] = '\0';
    assert_int_equal(tw_eplist_parse(&l, big, NULL, 0), 0);
    tw_eplist_free(&l);
    assert_int_equal(tw_eplist_parse(&l, "", NULL, 0), TW_EINVAL);
}

static void
test_refusal_names_the_active(void **state)
{
    (void)state;
    tw_eplist_t *l = NULL;
    char why[128];
    assert_int_equal(tw_eplist_parse(&l, S_B "," S_P, why, sizeof why), 0);
    /* The backup, first in the list, is passive and hears the active. */
    assert_string_equal(tw_eplist_current(l), S_B);
    assert_int_equal(s_refusal(l, S_P, 1, 3), 1);
    assert_string_equal(tw_eplist_current(l), S_P);
    assert_int_equal(tw_eplist_ha(l), 3);
    /* The name is matched by its length, not a NUL (it comes from a
     * msgpack string). */
    assert_int_equal(tw_eplist_not_active(l, S_B "tail", strlen(S_B), 1, 3),
                     1);
    assert_string_equal(tw_eplist_current(l), S_B);
    assert_int_equal(s_refusal(l, S_P, 1, 3), 1);
    /* It went there without voting. */
    assert_int_equal(tw_eplist_vote(l, NULL), 0);
    assert_int_equal(tw_eplist_served(l, 3), 0);
    assert_string_equal(tw_eplist_current(l), S_P);
    /* A refusal naming an endpoint we were not given: the next one. */
    assert_int_equal(s_refusal(l, "tcp://elsewhere:7710", 1, 3), 1);
    assert_string_equal(tw_eplist_current(l), S_B);
    assert_int_equal(s_refusal(l, NULL, 1, 3), 1);
    assert_string_equal(tw_eplist_current(l), S_P);
    tw_eplist_free(&l);
}

static void
test_failover_walk(void **state)
{
    (void)state;
    tw_eplist_t *l = s_pair();
    assert_int_equal(tw_eplist_served(l, 1), 0);
    /* The primary is lost: on to the backup, voting with epoch 1. */
    tw_eplist_lost(l);
    assert_string_equal(tw_eplist_current(l), S_B);
    uint64_t lost = 99;
    assert_int_equal(tw_eplist_vote(l, &lost), 1);
    assert_int_equal(lost, 1);
    /* The backup has not given the primary up yet: ask it again. */
    assert_int_equal(s_refusal(l, S_P, 0, 1), 0);
    assert_string_equal(tw_eplist_current(l), S_B);
    assert_int_equal(tw_eplist_vote(l, NULL), 1);
    /* It took over under epoch 2: the vote is spent. */
    assert_int_equal(tw_eplist_served(l, 2), 0);
    assert_int_equal(tw_eplist_vote(l, &lost), 0);
    assert_int_equal(lost, 0);
    assert_int_equal(tw_eplist_ha(l), 2);
    /* The backup is lost too, and the primary came back as passive and
     * hears nobody: a client that lost the active waits there. */
    tw_eplist_lost(l);
    assert_string_equal(tw_eplist_current(l), S_P);
    assert_int_equal(tw_eplist_vote(l, &lost), 1);
    assert_int_equal(lost, 2);
    assert_int_equal(s_refusal(l, S_B, 0, 2), 0);
    tw_eplist_free(&l);
}

static void
test_no_vote_moves_on(void **state)
{
    (void)state;
    /* A new client tries the passive first; it hears nobody, but the
     * client lost nothing: it looks at the next endpoint. */
    tw_eplist_t *l = NULL;
    assert_int_equal(tw_eplist_parse(&l, S_B "," S_P, NULL, 0), 0);
    assert_int_equal(s_refusal(l, S_P, 0, 4), 1);
    assert_string_equal(tw_eplist_current(l), S_P);
    /* Nothing answers there (a dead machine): lost, back with a vote
     * carrying no epoch (it never learnt one from an active). */
    tw_eplist_lost(l);
    assert_string_equal(tw_eplist_current(l), S_B);
    uint64_t lost = 99;
    assert_int_equal(tw_eplist_vote(l, &lost), 1);
    assert_int_equal(lost, 0);
    assert_int_equal(tw_eplist_ha(l), 4);
    tw_eplist_free(&l);
}

static void
test_deposed_active_refused(void **state)
{
    (void)state;
    tw_eplist_t *l = s_pair();
    assert_int_equal(tw_eplist_served(l, 5), 0);
    tw_eplist_lost(l);
    /* The other one answers as active, under an older epoch: deposed. */
    assert_int_equal(tw_eplist_served(l, 3), TW_EPERM);
    assert_string_equal(tw_eplist_current(l), S_P);
    assert_int_equal(tw_eplist_ha(l), 5);
    /* The vote is not spent on it. */
    assert_int_equal(tw_eplist_vote(l, NULL), 1);
    /* A later epoch is fine; the same is fine. */
    assert_int_equal(tw_eplist_served(l, 6), 0);
    assert_int_equal(tw_eplist_served(l, 6), 0);
    assert_int_equal(tw_eplist_ha(l), 6);
    /* A broker not in a pair (ha 0) after one that was: refused too. */
    assert_int_equal(tw_eplist_served(l, 0), TW_EPERM);
    tw_eplist_free(&l);
}

static void
test_one_endpoint(void **state)
{
    (void)state;
    tw_eplist_t *l = NULL;
    assert_int_equal(tw_eplist_parse(&l, S_P, NULL, 0), 0);
    assert_int_equal(tw_eplist_served(l, 0), 0);
    tw_eplist_lost(l);
    assert_string_equal(tw_eplist_current(l), S_P);
    assert_int_equal(s_refusal(l, S_B, 1, 2), 0);
    assert_int_equal(s_refusal(l, NULL, 0, 2), 0);
    assert_string_equal(tw_eplist_current(l), S_P);
    /* Without a pair, epochs stay 0 and nothing is ever refused. */
    tw_eplist_free(&l);
    assert_int_equal(tw_eplist_parse(&l, S_P, NULL, 0), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tw_eplist_served(l, 0), 0);
        tw_eplist_lost(l);
    }
    assert_int_equal(tw_eplist_ha(l), 0);
    tw_eplist_free(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_refusal_names_the_active,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_failover_walk, tw_count_setup,
                                        tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_no_vote_moves_on,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_deposed_active_refused,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_one_endpoint, tw_count_setup,
                                        tw_count_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
