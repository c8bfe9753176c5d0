/*  tests/fault/10-damaged-store.c - a damaged store never kills the broker:
 *  it is refused with exit code 2 and one line, left as it was, and
 *  --salvage copies what is intact.
 *
 *  A broker on a store records 20,000 echo tasks (no worker yet) and stops
 *  cleanly. Copies of its data.mdb are then damaged, each the way a disk,
 *  an operator or a bug would, and a broker is started on each:
 *
 *    truncated-8k    the file cut to 8 KiB (its two meta pages)
 *    truncated-half  the file cut to half its size
 *    damaged-page    a leaf in the middle of the tasks' tree (found by
 *                    following the tree from the meta page) overwritten
 *                    with other bytes
 *    bad-args        one task record whose arguments are made invalid
 *                    msgpack and whose checksum is computed again, as a
 *                    bug that wrote it would have
 *
 *  Each must exit 2 (not die of a signal) within the deadline, print one
 *  line naming the directory and the problem, and leave the file byte for
 *  byte as it was. Then `taskwheel-broker --salvage` copies the store with
 *  the damaged page into a new one (exit 1, the loss reported with the
 *  tasks around it), a broker runs on the new store with a worker, and the
 *  client finds every task outside the damaged page completed exactly
 *  once, and exactly the tasks salvage reported lost unknown to the broker.
 *
 *  The page walk below reads LMDB 0.9's 64-bit layout (documented in
 *  broker/state/pagefile.c) just far enough to find one page and one record.
 */
#define _GNU_SOURCE
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"
#include "common/crc32c.h"

#include <stdlib.h>
#include <sys/stat.h>

#define S_TASKS 20000
#define S_PS 4096

static unsigned char *s_file;
static size_t s_len;

static uint16_t
s_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint64_t
s_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void
s_load(const char *path)
{
    FILE *fp = fopen(path, "rb");
    TW_H_ASSERT(fp != NULL);
    fseek(fp, 0, SEEK_END);
    s_len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    s_file = malloc(s_len);
    TW_H_ASSERT(s_file && fread(s_file, 1, s_len, fp) == s_len);
    fclose(fp);
}

static void
s_write(const char *dir, const unsigned char *buf, size_t len)
{
    char path[700];
    snprintf(path, sizeof path, "%s", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "wb");
    TW_H_ASSERT(fp && fwrite(buf, 1, len, fp) == len);
    fclose(fp);
}

/* Node `i` of page `pg`. */
static const unsigned char *
s_node(const unsigned char *pg, unsigned i)
{
    return pg + s_u16(pg + 16 + 2 * i);
}

static unsigned
s_nkeys(const unsigned char *pg)
{
    return (unsigned)(s_u16(pg + 12) - 16) / 2;
}

/* The root page and depth of the "tasks" tree, from the newer meta page
 * and the main tree (one leaf: five databases). */
static void
s_tasks_tree(uint64_t *root, unsigned *depth)
{
    const unsigned char *m0 = s_file + 16, *m1 = s_file + S_PS + 16;
    const unsigned char *m = s_u64(m1 + 128) > s_u64(m0 + 128) ? m1 : m0;
    const unsigned char *main = s_file + s_u64(m + 72 + 40) * S_PS;
    TW_H_ASSERT(s_u16(main + 10) == 0x02); /* a leaf */
    for (unsigned i = 0; i < s_nkeys(main); i++) {
        const unsigned char *n = s_node(main, i);
        if (s_u16(n + 6) == 5 && memcmp(n + 8, "tasks", 5) == 0) {
            const unsigned char *db = n + 8 + 5;
            *depth = s_u16(db + 6);
            *root = s_u64(db + 40);
            return;
        }
    }
    TW_H_ASSERT_MSG(0, "no 'tasks' database in the main tree");
}

/* A leaf in the middle of the tasks tree: down the middle child of every
 * branch from the root. */
static uint64_t
s_middle_leaf(void)
{
    uint64_t pg;
    unsigned depth;
    s_tasks_tree(&pg, &depth);
    for (unsigned d = 1; d < depth; d++) {
        const unsigned char *p = s_file + pg * S_PS;
        const unsigned char *n = s_node(p, s_nkeys(p) / 2);
        pg = (uint64_t)s_u16(n) | (uint64_t)s_u16(n + 2) << 16 |
             (uint64_t)s_u16(n + 4) << 32;
    }
    TW_H_ASSERT(s_u16(s_file + pg * S_PS + 10) == 0x02);
    return pg;
}

/* Write `buf` as dir/data.mdb and start a broker on it: it must exit 2
 * with one line naming `dir` and saying `what`, and leave the file as it
 * was. */
static void
s_refused(tw_h_broker_t *b, const char *dir, const unsigned char *buf,
          size_t len, const char *what)
{
    s_write(dir, buf, len);
    const char *args[] = {"--data", dir, NULL};
    TW_H_ASSERT_OK(tw_h_restart_broker(b, args));
    int code = tw_h_wait_exit(b->pid, 20000);
    TW_H_ASSERT_MSG(code == 2, "%s: the broker exited with %d", dir, code);
    FILE *fp = fopen(tw_h_log_path(b->pid), "r");
    TW_H_ASSERT(fp != NULL);
    char line[2048];
    int lines = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "taskwheel-broker: ", 18) == 0) {
            lines++;
            TW_H_ASSERT_MSG(strstr(line, dir) && strstr(line, what),
                            "'%s' does not name %s and '%s'", line, dir,
                            what);
            printf("damaged-store: %s", line + 18);
        }
    }
    fclose(fp);
    TW_H_ASSERT_EQ(lines, 1);
    TW_H_ASSERT(!tw_h_log_contains(b->pid, "Bus error"));
    char path[800];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    fp = fopen(path, "rb");
    TW_H_ASSERT(fp != NULL);
    unsigned char *now = malloc(len + 1);
    TW_H_ASSERT(now && fread(now, 1, len + 1, fp) == len);
    fclose(fp);
    TW_H_ASSERT(memcmp(now, buf, len) == 0);
    free(now);
}

int
main(void)
{
    tw_h_init("fault-damaged-store");
    tw_h_broker_t b;
    const char *opts[] = {"--heartbeat", "200", "--handler-grace", "3600",
                          NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    tw_client_t *c = tw_fault_client(b.frontend);
    static tw_fault_t f;
    tw_fault_init(&f, "damaged-store", c, S_TASKS + 100);
    unsigned char args[102];
    tw_task_spec_t spec = tw_fault_echo100(args);
    tw_fault_submit(&f, c, &spec, S_TASKS);
    uint64_t t = tw_h_now_ms();
    while (tw_fault_acked(&f) < S_TASKS && tw_h_now_ms() - t < 30000) {
        tw_client_poll(c, 20);
    }
    TW_H_ASSERT_EQ(tw_fault_acked(&f), S_TASKS);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);

    char src[700], dir[700];
    snprintf(src, sizeof src, "%s/data.mdb", b.data);
    s_load(src);
    unsigned char *copy = malloc(s_len);
    TW_H_ASSERT(copy != NULL);
    uint64_t leaf = s_middle_leaf();
    TW_H_ASSERT(leaf > 2 && (leaf + 1) * S_PS <= s_len);

    /* Cut short. */
    snprintf(dir, sizeof dir, "%s/truncated-8k", tw_h_tmpdir());
    s_refused(&b, dir, s_file, 8192, "truncated");
    snprintf(dir, sizeof dir, "%s/truncated-half", tw_h_tmpdir());
    s_refused(&b, dir, s_file, s_len / 2, "truncated");

    /* A page in the middle. */
    memcpy(copy, s_file, s_len);
    for (size_t i = 0; i < S_PS; i++) {
        copy[leaf * S_PS + i] = (unsigned char)(i * 131 + 17);
    }
    char damaged[700];
    snprintf(damaged, sizeof damaged, "%s/damaged-page", tw_h_tmpdir());
    s_refused(&b, damaged, copy, s_len, "damaged");

    /* Arguments that are not msgpack, under a checksum that matches. */
    memcpy(copy, s_file, s_len);
    unsigned char *lp = copy + leaf * S_PS;
    unsigned char *n = (unsigned char *)s_node(lp, s_nkeys(lp) / 2);
    size_t ks = s_u16(n + 6);
    size_t ds = (size_t)s_u16(n) | (size_t)s_u16(n + 2) << 16;
    unsigned char *key = n + 8, *val = key + ks;
    unsigned char *a = memmem(val, ds, "\xd9\x64" "aaaa", 6);
    TW_H_ASSERT(ks == 8 && a != NULL);
    a[0] = 0xc1; /* a type byte msgpack never uses */
    unsigned char db = 1; /* "tasks" */
    uint32_t crc = tw_crc32c(tw_crc32c(tw_crc32c(0, &db, 1), key, ks), val,
                             ds - 4);
    for (int i = 0; i < 4; i++) {
        val[ds - 4 + (size_t)i] = (unsigned char)(crc >> (24 - 8 * i));
    }
    snprintf(dir, sizeof dir, "%s/bad-args", tw_h_tmpdir());
    s_refused(&b, dir, copy, s_len, "arguments are not one msgpack value");

    /* Salvage the store with the damaged page. */
    char into[700], log[800];
    snprintf(into, sizeof into, "%s/salvaged", tw_h_tmpdir());
    snprintf(log, sizeof log, "salvage.log");
    const char *sargv[] = {tw_h_broker_bin(), "--salvage", damaged, "--into",
                           into, NULL};
    pid_t sp = tw_h_spawn_log(sargv, log);
    TW_H_ASSERT(sp > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(sp, 30000), 1);
    FILE *fp = fopen(tw_h_log_path(sp), "r");
    TW_H_ASSERT(fp != NULL);
    char line[2048];
    unsigned long long copied = 0, lost_records = 0, parts = 0;
    int losses = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "lost: 'tasks' from task", 23) == 0) {
            losses++;
            printf("damaged-store: salvage: %s", line);
        }
        if (strncmp(line, "salvage: ", 9) == 0) {
            const char *p = strstr(line, "copied ");
            TW_H_ASSERT(p && sscanf(p, "copied %llu tasks", &copied) == 1);
            p = strstr(line, "; lost ");
            TW_H_ASSERT(p && sscanf(p, "; lost %llu records and %llu "
                                       "unreadable parts",
                                    &lost_records, &parts) == 2);
            printf("damaged-store: %s", line);
        }
    }
    fclose(fp);
    TW_H_ASSERT_EQ(losses, 1);
    TW_H_ASSERT_EQ(parts, 1);
    TW_H_ASSERT_EQ(lost_records, 0);
    TW_H_ASSERT(copied > 0 && copied < S_TASKS);
    size_t lost = S_TASKS - (size_t)copied;

    /* A broker on what was saved: every saved task runs once, the rest is
     * unknown to it (the client is told so, once each). */
    const char *nargs[] = {"--data", into, "--heartbeat", "200", NULL};
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, nargs));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT_OK(tw_client_ping(c, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 64, NULL) > 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 60000));
    size_t completed = tw_fault_completed(&f), twice = 0, unknown = 0;
    for (size_t s = 1; s <= f.cap; s++) {
        twice += f.outcomes[s] > 1 || f.acks[s] > 1;
        unknown += f.acks[s] && f.outcomes[s] && !f.ok[s];
    }
    long long dups = tw_fault_stat(c, "duplicates");
    size_t unaccounted = S_TASKS - completed - unknown;
    printf("scenario=damaged-store submitted=%d acked=%zu completed=%zu "
           "duplicated=%llu lost=%zu damaged=%zu (on the damaged page, as "
           "salvage reported, and unknown to the new broker)\n",
           S_TASKS, tw_fault_acked(&f), completed,
           (unsigned long long)(dups + (long long)twice), unaccounted,
           unknown);
    TW_H_ASSERT_EQ(completed, copied);
    TW_H_ASSERT_EQ(unknown, lost);
    TW_H_ASSERT_EQ(unaccounted, 0);
    TW_H_ASSERT_EQ(twice, 0);
    TW_H_ASSERT_EQ(dups, 0);

    free(copy);
    free(s_file);
    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    return 0;
}
