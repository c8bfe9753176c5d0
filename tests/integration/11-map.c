/*  tests/integration/11-map.c - client-side pools on a real cluster.
 *
 *  A real broker and three real workers of 20 slots each, driven through
 *  libtaskwheel's pool API and the taskwheel CLI:
 *   - map over 100,000 noop items with num_concurrent 50 ends EXHAUSTED
 *     with every item's result exactly once, while the client's resident
 *     memory (VmRSS) grows by less than 20 MB: the items are fed lazily,
 *     never more than 100 held at once (S51, F3 S50-S53);
 *   - starmap and kwmap through echo give back each item's value, and a
 *     kwmap item that is not a map is skipped and reported (S52, S53);
 *   - `taskwheel map --ordered` prints one JSON line per input line, in
 *     input order;
 *   - apply names its groups apply-echo-group-0, then -1 (S45);
 *   - gather_and_close waits for the pool's tasks and closes it; a later
 *     submission is refused with ECLOSED, and apply reports it before
 *     anything is created (S63, S54); until_closed then returns at once
 *     (S64).
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BIG 100000

#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer keeps freed blocks in a quarantine (256 MB by default),
 * which would count as growth of VmRSS; a small one keeps the
 * measurement about the client's own memory. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
    return "quarantine_size_mb=2";
}
#endif

/* ---- what the events said ------------------------------------------ */

typedef struct {
    char group[TW_CLIENT_NAME_SIZE]; /* the map being watched */
    unsigned char *hits;             /* per index: outcomes seen */
    size_t nhits;
    uint64_t results, failures, skipped, refused;
    int last_refusal;
    /* starmap / kwmap: each result compared with its item. */
    unsigned char expect[16][32];
    size_t expect_len[16];
    uint64_t matched;
} s_watch_t;

static void
s_on_event(void *arg, const tw_event_t *ev)
{
    s_watch_t *w = arg;
    if (ev->kind == TW_EV_REFUSED) {
        w->refused++;
        w->last_refusal = ev->err;
    }
    if (!ev->group || strcmp(ev->group, w->group) != 0) {
        return;
    }
    switch (ev->kind) {
    case TW_EV_RESULT:
        w->results++;
        if (ev->index < w->nhits && w->hits[ev->index] < 255) {
            w->hits[ev->index]++;
        }
        if (ev->index < 16 && w->expect_len[ev->index] > 0 &&
            ev->result->result_len == w->expect_len[ev->index] &&
            memcmp(ev->result->result, w->expect[ev->index],
                   ev->result->result_len) == 0) {
            w->matched++;
        }
        break;
    case TW_EV_EXCEPTION:
    case TW_EV_CANCELLED:
        w->failures++;
        break;
    case TW_EV_SKIPPED:
        w->skipped++;
        break;
    default:
        break;
    }
}

/* ---- iterators --------------------------------------------------------- */

typedef struct {
    uint64_t next, limit;
    int shape;          /* 0 int, 1 [i, "x"], 2 {"a": i} */
    uint64_t bad_at;    /* this index is the wrong shape (UINT64_MAX: none) */
    s_watch_t *w;       /* records what each item was, for the first 16 */
    msgpack_sbuffer sb;
} s_iter_t;

static int
s_next(void *arg, const void **item, size_t *len)
{
    s_iter_t *it = arg;
    if (it->next >= it->limit) {
        return 0;
    }
    uint64_t i = it->next++;
    msgpack_sbuffer_clear(&it->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &it->sb, msgpack_sbuffer_write);
    if (it->shape == 0 || i == it->bad_at) {
        msgpack_pack_uint64(&pk, i);
    } else if (it->shape == 1) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint64(&pk, i);
        msgpack_pack_str_with_body(&pk, "x", 1);
    } else {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_uint64(&pk, i);
    }
    if (it->w && i < 16 && i != it->bad_at &&
        it->sb.size <= sizeof it->w->expect[0]) {
        memcpy(it->w->expect[i], it->sb.data, it->sb.size);
        it->w->expect_len[i] = it->sb.size;
    }
    *item = it->sb.data;
    *len = it->sb.size;
    return 1;
}

static long
s_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

/* ---- scenarios ----------------------------------------------------------- */

static void
s_big_map(tw_client_t *c, s_watch_t *w)
{
    w->hits = calloc(N_BIG, 1);
    w->nhits = N_BIG;
    TW_H_ASSERT(w->hits);
    s_iter_t it = {.limit = N_BIG, .shape = 0, .bad_at = UINT64_MAX};
    msgpack_sbuffer_init(&it.sb);
    TW_H_ASSERT_OK(tw_client_ping(c, 5000));
    long before = s_rss_kb();
    uint64_t t0 = tw_h_now_ms();
    tw_task_spec_t spec = {.handler = "noop"};
    tw_map_t m = {&spec, s_next, &it, 50, NULL};
    TW_H_ASSERT_OK(tw_client_map(c, &m, w->group, sizeof w->group, 5000));
    TW_H_ASSERT_STREQ(w->group, "map-noop-group-0");
    tw_exit_state_t st;
    TW_H_ASSERT_OK(tw_run(c, 240000, 1, 1, &st));
    TW_H_ASSERT_EQ(st.code, TW_EXIT_EXHAUSTED);
    long after = s_rss_kb();
    uint64_t took = tw_h_now_ms() - t0;
    TW_H_ASSERT_EQ(it.next, N_BIG);
    TW_H_ASSERT_EQ(w->results, N_BIG);
    TW_H_ASSERT_EQ(w->failures, 0);
    for (size_t i = 0; i < N_BIG; i++) {
        TW_H_ASSERT_MSG(w->hits[i] == 1, "item %zu had %d results", i,
                        w->hits[i]);
    }
    TW_H_ASSERT_MSG(before > 0 && after - before < 20 * 1024,
                    "VmRSS grew from %ld kB to %ld kB", before, after);
    /* The group saw every task and never ran more than 50 at once (the
     * broker enforces the limit the map set). */
    tw_group_info_t gi;
    TW_H_ASSERT_OK(tw_client_group_get(c, NULL, w->group, 5000, &gi));
    TW_H_ASSERT_EQ(gi.limit, 50);
    TW_H_ASSERT_EQ(gi.admitted, N_BIG);
    TW_H_ASSERT_EQ(gi.ended, N_BIG);
    printf("11: map of %d noop items, concurrency 50: %llu ms "
           "(%.0f items/s), VmRSS %ld -> %ld kB\n",
           N_BIG, (unsigned long long)took,
           took ? N_BIG * 1000.0 / (double)took : 0.0, before, after);
    msgpack_sbuffer_destroy(&it.sb);
    free(w->hits);
    memset(w, 0, sizeof *w);
}

static void
s_star_kw(tw_client_t *c, s_watch_t *w)
{
    for (int kw = 0; kw < 2; kw++) {
        memset(w, 0, sizeof *w);
        s_iter_t it = {.limit = 10,
                       .shape = kw ? 2 : 1,
                       .bad_at = kw ? 4 : UINT64_MAX,
                       .w = w};
        msgpack_sbuffer_init(&it.sb);
        tw_task_spec_t spec = {.handler = "echo"};
        tw_map_t m = {&spec, s_next, &it, 3, NULL};
        int rc = kw ? tw_client_kwmap(c, &m, w->group, sizeof w->group, 5000)
                    : tw_client_starmap(c, &m, w->group, sizeof w->group,
                                        5000);
        TW_H_ASSERT_OK(rc);
        TW_H_ASSERT_STREQ(w->group, kw ? "doublestarmap-echo-group-0"
                                       : "starmap-echo-group-0");
        tw_exit_state_t st;
        TW_H_ASSERT_OK(tw_run(c, 30000, 1, 1, &st));
        TW_H_ASSERT_EQ(st.code, TW_EXIT_EXHAUSTED);
        TW_H_ASSERT_EQ(w->results, kw ? 9 : 10);
        TW_H_ASSERT_EQ(w->matched, kw ? 9 : 10);
        TW_H_ASSERT_EQ(w->skipped, kw ? 1 : 0);
        msgpack_sbuffer_destroy(&it.sb);
    }
}

static void
s_cli_map(const tw_h_broker_t *b)
{
    char path[600];
    snprintf(path, sizeof path, "%s/items.jsonl", tw_h_tmpdir());
    FILE *f = fopen(path, "w");
    TW_H_ASSERT(f);
    for (int i = 0; i < 40; i++) {
        fprintf(f, "{\"n\":%d,\"s\":\"item-%d\"}\n", i, i);
        if (i == 7) {
            fputs("\n", f); /* blank lines are not items */
        }
    }
    fclose(f);
    const char *argv[] = {tw_h_cli_bin(), "--broker", b->frontend, "map",
                          "echo", "--input", path, "--concurrency", "4",
                          "--ordered", NULL};
    pid_t pid = tw_h_spawn_log(argv, "cli-map.log");
    TW_H_ASSERT(pid > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(pid, 60000), 0);
    f = fopen(tw_h_log_path(pid), "r");
    TW_H_ASSERT(f);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char want[64];
        if (strncmp(line, "$ ", 2) == 0) {
            continue; /* the harness's command line */
        }
        snprintf(want, sizeof want, "{\"n\":%d,\"s\":\"item-%d\"}\n", n, n);
        TW_H_ASSERT_MSG(strcmp(line, want) == 0, "line %d: %s", n + 1, line);
        n++;
    }
    fclose(f);
    TW_H_ASSERT_EQ(n, 40);
}

static void
s_apply_names(tw_client_t *c)
{
    static const unsigned char args[] = {0x07};
    tw_task_spec_t spec = {.handler = "echo", .args = args, .args_len = 1};
    char name[TW_CLIENT_NAME_SIZE];
    TW_H_ASSERT_OK(tw_client_apply(c, &spec, 3, NULL, name, sizeof name,
                                   5000));
    TW_H_ASSERT_STREQ(name, "apply-echo-group-0");
    TW_H_ASSERT_OK(tw_client_apply(c, &spec, 3, NULL, name, sizeof name,
                                   5000));
    TW_H_ASSERT_STREQ(name, "apply-echo-group-1");
    tw_exit_state_t st;
    TW_H_ASSERT_OK(tw_run(c, 30000, 1, 1, &st));
    TW_H_ASSERT_EQ(st.code, TW_EXIT_EXHAUSTED);
    uint64_t *ids;
    size_t n;
    TW_H_ASSERT_OK(tw_client_group_ids(c, NULL, name, 5000, &ids, &n));
    TW_H_ASSERT_EQ(n, 3);
    free(ids);
}

static void
s_gather_and_close(tw_client_t *c, s_watch_t *w)
{
    static const unsigned char half[] = {0xcb, 0x3f, 0xd0, 0, 0,
                                         0,    0,    0,    0}; /* 0.25 */
    tw_task_spec_t spec = {.handler = "sleep",
                           .args = half,
                           .args_len = sizeof half,
                           .pool = "closing"};
    char name[TW_CLIENT_NAME_SIZE];
    TW_H_ASSERT_OK(tw_client_apply(c, &spec, 6, NULL, name, sizeof name,
                                   5000));
    TW_H_ASSERT_OK(tw_client_gather_and_close(c, "closing", 30000));
    tw_pool_info_t pi;
    TW_H_ASSERT_OK(tw_client_pool_stats(c, "closing", 5000, &pi));
    TW_H_ASSERT(pi.closed && pi.locked);
    TW_H_ASSERT_EQ(pi.running + pi.pending, 0);
    TW_H_ASSERT_EQ(pi.ended, 6);
    /* S63: closed for good; unlock does not reopen it. */
    TW_H_ASSERT_OK(tw_client_pool_op(c, "closing", "unlock", 5000));
    memset(w, 0, sizeof *w);
    tw_task_spec_t one = {.handler = "echo", .pool = "closing"};
    TW_H_ASSERT_OK(tw_client_submit(c, &one, NULL));
    TW_H_ASSERT_OK(tw_client_wait_all(c, 5000));
    TW_H_ASSERT_EQ(w->refused, 1);
    TW_H_ASSERT_EQ(w->last_refusal, TW_ECLOSED);
    TW_H_ASSERT_EQ(tw_client_apply(c, &spec, 1, NULL, name, sizeof name,
                                   5000),
                   TW_ECLOSED);
    TW_H_ASSERT_OK(tw_client_until_closed(c, "closing", 1000));
    /* The default pool is untouched. */
    TW_H_ASSERT_EQ(tw_client_until_closed(c, NULL, 1000), TW_ETIMEDOUT);
}

int
main(void)
{
    tw_h_init("11-map");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    for (int i = 0; i < 3; i++) {
        TW_H_ASSERT(tw_h_start_worker(&b, 20, NULL) > 0);
    }
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 3, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    s_watch_t *w = calloc(1, sizeof *w);
    tw_client_on_event(c, s_on_event, w);
    tw_client_set_policy(c, TW_POLICY_CONTINUE, TW_POLICY_CONTINUE);

    s_big_map(c, w);
    s_star_kw(c, w);
    s_cli_map(&b);
    s_apply_names(c);
    s_gather_and_close(c, w);

    tw_client_destroy(&c);
    free(w);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("11-map: ok\n");
    return 0;
}
