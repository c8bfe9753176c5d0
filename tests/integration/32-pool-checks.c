/*  tests/integration/32-pool-checks.c - map's handler check, group reads
 *  and "no limit", on a real broker and worker, through libtaskwheel and
 *  the CLI.
 *
 *    S54  a map checks its handler before it takes a single item: the
 *         library returns TW_EHANDLER without calling the iterator (also
 *         on a closed pool: the handler comes first), and `taskwheel map
 *         no.such.handler` over an endless input (a FIFO whose writer
 *         stays open, as `yes 1 |`) prints one error, exits 1, and leaves
 *         every byte of its input unread.
 *    S98  a group never used reads as an empty group (counts 0, no
 *         limit), not TaskGroupNotFound, and reading it does not create
 *         it (`group list` stays empty).
 *    S96  `group limit G none`, and a nil limit on the wire (the library's
 *         TW_CLIENT_LIMIT_NONE), clear the limit exactly as `group clear`:
 *         tasks parked on a limit of 0 start.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static tw_client_t *s_c;

/* An iterator that counts how often it was asked. */
static int
s_count_items(void *arg, const void **item, size_t *len)
{
    static const unsigned char one = 0x01;
    (*(int *)arg)++;
    *item = &one;
    *len = 1;
    return 1;
}

/* S54, library: nothing is taken, nothing submitted. */
static void
s_map_library(void)
{
    long long rejected0, rejected1;
    TW_H_ASSERT_OK(tw_h_status_field(s_c, "rejected", &rejected0));
    int asked = 0;
    tw_task_spec_t spec = {.handler = "no.such.handler", .pool = "p54"};
    tw_map_t m = {&spec, s_count_items, &asked, 2, NULL};
    char name[TW_CLIENT_NAME_SIZE];
    TW_H_ASSERT_EQ(tw_client_map(s_c, &m, name, sizeof name, 5000),
                   TW_EHANDLER);
    TW_H_ASSERT(strstr(tw_client_last_error(s_c), "no.such.handler"));
    TW_H_ASSERT_EQ(asked, 0);
    /* The handler comes before the pool's state (S54's order). */
    TW_H_ASSERT_OK(tw_client_pool_op(s_c, "p54", "close", 5000));
    TW_H_ASSERT_EQ(tw_client_starmap(s_c, &m, name, sizeof name, 5000),
                   TW_EHANDLER);
    spec.handler = "echo";
    TW_H_ASSERT_EQ(tw_client_map(s_c, &m, name, sizeof name, 5000),
                   TW_ECLOSED);
    TW_H_ASSERT_EQ(asked, 0);
    TW_H_ASSERT_OK(tw_h_status_field(s_c, "rejected", &rejected1));
    TW_H_ASSERT_EQ(rejected1, rejected0);
}

/* S54, CLI: `yes 1 | taskwheel map no.such.handler`. */
static void
s_map_cli(const tw_h_broker_t *b)
{
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/endless", tw_h_tmpdir());
    TW_H_ASSERT(mkfifo(fifo, 0600) == 0);
    /* Read-write, so the CLI sees a writer that never goes away. */
    int fd = open(fifo, O_RDWR | O_NONBLOCK);
    TW_H_ASSERT(fd >= 0);
    char lines[2000];
    for (size_t i = 0; i < sizeof lines; i += 2) {
        lines[i] = '1';
        lines[i + 1] = '\n';
    }
    TW_H_ASSERT(write(fd, lines, sizeof lines) == (ssize_t)sizeof lines);
    char out[4096];
    int rc = tw_h_cli(b, TW_H_ARGS("map", "no.such.handler", "--input",
                                   fifo),
                      out, sizeof out, NULL);
    TW_H_ASSERT_EQ(rc, 1);
    int n = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++) {
        n++;
    }
    TW_H_ASSERT_MSG(n == 1, "%d lines printed:\n%s", n, out);
    TW_H_ASSERT_MSG(strstr(out, "no.such.handler"), "%s", out);
    /* Every byte is still there. */
    char back[4096];
    ssize_t got = read(fd, back, sizeof back);
    TW_H_ASSERT_EQ(got, (ssize_t)sizeof lines);
    close(fd);
}

/* S98: a group never used. */
static void
s_unused_group(const tw_h_broker_t *b)
{
    tw_group_info_t gi;
    memset(&gi, 0xff, sizeof gi);
    TW_H_ASSERT_OK(tw_client_group_get(s_c, "p98", "never", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, -1);
    TW_H_ASSERT_EQ(gi.running, 0);
    TW_H_ASSERT_EQ(gi.pending, 0);
    TW_H_ASSERT_EQ(gi.ended, 0);
    TW_H_ASSERT_EQ(gi.cancelled, 0);
    TW_H_ASSERT_EQ(gi.admitted, 0);
    char out[4096];
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--json", "--pool", "p98", "group",
                                         "get", "never"),
                            out, sizeof out, NULL),
                   0);
    TW_H_ASSERT_MSG(strstr(out, "\"running\":0") &&
                        strstr(out, "\"limit\":null") &&
                        !strstr(out, "TaskGroupNotFound"),
                    "%s", out);
    /* Reading created nothing. */
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--json", "--pool", "p98", "group",
                                         "list"),
                            out, sizeof out, NULL),
                   0);
    TW_H_ASSERT_MSG(strncmp(out, "[]", 2) == 0, "%s", out);
    /* ids and cancel_group still say TaskGroupNotFound. */
    uint64_t *ids = NULL;
    size_t nids = 0;
    TW_H_ASSERT_EQ(tw_client_group_ids(s_c, "p98", "never", 5000, &ids,
                                       &nids),
                   TW_ENOENT);
}

/* Submit `n` echo tasks in group `g` of pool `pool`. */
static void
s_submit(const char *pool, const char *g, int n)
{
    const char *groups[1] = {g};
    static const unsigned char one = 0x01;
    for (int i = 0; i < n; i++) {
        tw_task_spec_t spec = {.handler = "echo", .args = &one,
                               .args_len = 1, .pool = pool,
                               .groups = groups, .ngroups = 1};
        TW_H_ASSERT_OK(tw_client_submit(s_c, &spec, NULL));
    }
    TW_H_ASSERT_OK(tw_client_flush(s_c));
}

/* Wait until group `g` has `pending` pending tasks and `ended` ended. */
static void
s_wait_group(const char *pool, const char *g, uint64_t pending,
             uint64_t ended)
{
    tw_group_info_t gi;
    uint64_t end = tw_h_now_ms() + 10000;
    do {
        TW_H_ASSERT_OK(tw_client_group_get(s_c, pool, g, 5000, &gi));
        if (gi.pending == pending && gi.ended == ended) {
            return;
        }
        tw_h_sleep_ms(20);
    } while (tw_h_now_ms() < end);
    TW_H_ASSERT_MSG(0, "group %s: pending %llu ended %llu, want %llu %llu",
                    g, (unsigned long long)gi.pending,
                    (unsigned long long)gi.ended,
                    (unsigned long long)pending, (unsigned long long)ended);
}

/* S96: "none" and nil are clear. */
static void
s_limit_none(const tw_h_broker_t *b)
{
    /* The CLI: limit 0 parks everything; "none" lets it all run. */
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--pool", "p96", "group", "limit",
                                         "cli", "0"),
                            NULL, 0, NULL),
                   0);
    s_submit("p96", "cli", 3);
    s_wait_group("p96", "cli", 3, 0);
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--pool", "p96", "group", "limit",
                                         "cli", "none"),
                            NULL, 0, NULL),
                   0);
    s_wait_group("p96", "cli", 0, 3);
    tw_group_info_t gi;
    TW_H_ASSERT_OK(tw_client_group_get(s_c, "p96", "cli", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, -1);
    /* A negative number is still refused (S96), before any request. */
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--pool", "p96", "group", "limit",
                                         "cli", "-1"),
                            NULL, 0, NULL),
                   2);

    /* The wire: GROUP set {limit: nil} from the library. */
    tw_pool_req_t zero = {.op = "set", .pool = "p96", .group = "lib",
                          .has_limit = 1, .limit = 0};
    TW_H_ASSERT_OK(tw_client_group(s_c, &zero, 5000, NULL, NULL));
    s_submit("p96", "lib", 2);
    s_wait_group("p96", "lib", 2, 0);
    tw_pool_req_t none = {.op = "set", .pool = "p96", .group = "lib",
                          .has_limit = 1, .limit = TW_CLIENT_LIMIT_NONE};
    TW_H_ASSERT_OK(tw_client_group(s_c, &none, 5000, NULL, NULL));
    s_wait_group("p96", "lib", 0, 2);
    TW_H_ASSERT_OK(tw_client_group_get(s_c, "p96", "lib", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, -1);
    /* With a pool default, "none" leaves the group with the default, as
     * clear does (S101). */
    TW_H_ASSERT_OK(tw_client_pool_default_limit(s_c, "p96", 5, 5000));
    TW_H_ASSERT_OK(tw_client_group(s_c, &zero, 5000, NULL, NULL));
    TW_H_ASSERT_OK(tw_client_group(s_c, &none, 5000, NULL, NULL));
    TW_H_ASSERT_OK(tw_client_group_get(s_c, "p96", "lib", 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, 5);
    TW_H_ASSERT_OK(tw_client_wait_all(s_c, 10000));
}

int
main(void)
{
    tw_h_init("32-pool-checks");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 4, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    s_c = tw_client_new(b.frontend);
    TW_H_ASSERT(s_c);

    s_map_library();
    s_map_cli(&b);
    s_unused_group(&b);
    s_limit_none(&b);

    tw_client_destroy(&s_c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("32-pool-checks: ok\n");
    return 0;
}
