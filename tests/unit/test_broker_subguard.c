/*  tests/unit/test_broker_subguard.c - bounds on the status socket's
 *  subscriptions (broker/out/subguard.h).
 *
 *  Time is numbers passed in, and the cut is a seam that records the
 *  descriptors it was given. The suite checks that an address is cut on
 *  the subscription past its bound and not one before, with every one of
 *  its connections and no other address's; that unsubscriptions make
 *  room; that the total bound cuts whoever passes it; that a held address
 *  is cut again as soon as it connects, and served after the hold; that
 *  an address's count is dropped with its last connection. Real loopback
 *  TCP connections give the descriptors, so the peer address is what
 *  getpeername says. Every case runs under the counting allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/out/subguard.h"
#include "tests/unit/support/count_alloc.h"

static int s_cuts[16];
static int s_ncuts;

static int
s_fake_cut(int fd)
{
    if (s_ncuts < 16) {
        s_cuts[s_ncuts] = fd;
    }
    s_ncuts++;
    return 0;
}

/* An accepted loopback TCP connection: returns the accepted descriptor
 * (peer 127.0.0.1); *other gets the connecting end. */
static int
s_conn(int *other)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *other = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*other, (struct sockaddr *)&a, sizeof a), 0);
    int fd = accept(l, NULL, NULL);
    assert_true(fd >= 0);
    close(l);
    return fd;
}

static void
s_setup(tw_subguard_t *g, size_t per_addr, size_t total)
{
    tw_subguard_cfg_t cfg = {per_addr, total, 1000};
    tw_subguard_init(g, &cfg);
    g->cut = s_fake_cut;
    s_ncuts = 0;
}

static int
s_sub(tw_subguard_t *g, const char *addr, int delta, uint64_t now)
{
    return tw_subguard_count(g, addr, strlen(addr), delta, now);
}

static void
test_per_address_bound(void **state)
{
    (void)state;
    tw_subguard_t g;
    s_setup(&g, 3, 100);
    int o1, o2;
    int a = s_conn(&o1), b = s_conn(&o2);
    assert_int_equal(tw_subguard_accepted(&g, a, 0), 0);
    assert_int_equal(tw_subguard_accepted(&g, b, 0), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_sub(&g, "127.0.0.1", 1, 10), 0);
    }
    /* Another address is counted apart. */
    assert_int_equal(s_sub(&g, "10.0.0.9", 1, 10), 0);
    assert_int_equal(s_ncuts, 0);
    /* An unsubscription makes room for one more. */
    assert_int_equal(s_sub(&g, "127.0.0.1", -1, 10), 0);
    assert_int_equal(s_sub(&g, "127.0.0.1", 1, 10), 0);
    /* The fourth is one too many: both loopback connections are cut. */
    assert_int_equal(s_sub(&g, "127.0.0.1", 1, 20), 1);
    assert_int_equal(s_ncuts, 2);
    assert_true((s_cuts[0] == a && s_cuts[1] == b) ||
                (s_cuts[0] == b && s_cuts[1] == a));
    assert_int_equal(g.cuts, 1);
    /* What libzmq had already read does not cut it twice. */
    assert_int_equal(s_sub(&g, "127.0.0.1", 1, 30), 0);
    assert_int_equal(g.cuts, 1);
    /* Held: a new connection is cut when accepted, until the hold ends. */
    tw_subguard_closed(&g, a);
    tw_subguard_closed(&g, b);
    int o3;
    int c = s_conn(&o3);
    assert_int_equal(tw_subguard_accepted(&g, c, 500), 1);
    assert_int_equal(s_ncuts, 3);
    tw_subguard_closed(&g, c);
    int o4;
    int d = s_conn(&o4);
    assert_int_equal(tw_subguard_accepted(&g, d, 1021), 0);
    /* Its count went with its connections: room for 3 again. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_sub(&g, "127.0.0.1", 1, 1030), 0);
    }
    tw_subguard_closed(&g, d);
    tw_subguard_free(&g);
    int fds[] = {a, b, c, d, o1, o2, o3, o4};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        close(fds[i]);
    }
}

static void
test_total_bound(void **state)
{
    (void)state;
    tw_subguard_t g;
    s_setup(&g, 10, 4);
    assert_int_equal(s_sub(&g, "10.0.0.1", 1, 0), 0);
    assert_int_equal(s_sub(&g, "10.0.0.1", 1, 0), 0);
    assert_int_equal(s_sub(&g, "10.0.0.2", 1, 0), 0);
    assert_int_equal(s_sub(&g, "10.0.0.3", 1, 0), 0);
    /* The fifth in all, whoever sends it, passes the total. */
    assert_int_equal(s_sub(&g, "10.0.0.3", 1, 0), 1);
    assert_int_equal(g.cuts, 1);
    assert_int_equal(g.total, 5);
    /* Unsubscriptions bring the total down. */
    assert_int_equal(s_sub(&g, "10.0.0.1", -1, 2000), 0);
    assert_int_equal(s_sub(&g, "10.0.0.1", -1, 2000), 0);
    assert_int_equal(g.total, 3);
    assert_int_equal(s_sub(&g, "10.0.0.2", 1, 2000), 0);
    tw_subguard_free(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_address_bound,
                                        tw_count_setup, tw_count_teardown),
        cmocka_unit_test_setup_teardown(test_total_bound, tw_count_setup,
                                        tw_count_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
