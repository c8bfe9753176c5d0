/*  tests/fault/09-disk-full.c - the store's filesystem runs out of room
 *  (ENOSPC): reported as what it is, retried, recovered from by itself,
 *  and never acknowledged.
 *
 *  The test makes its own small filesystem: in a private mount namespace
 *  (so nothing it mounts is seen outside, and it goes away with the test
 *  whatever happens) a 16 MiB tmpfs holds the broker's store, with
 *  --data-size 64, larger than the disk. Without root or mount rights it
 *  prints SKIP and exits 77.
 *
 *    1. A file filling the disk to the last byte appears behind the
 *       broker's back, then a burst arrives, led by a task of 512 KiB
 *       (overflow pages extend the file: a full disk is certain to say
 *       ENOSPC). What was admitted before the
 *       broker could see the disk full cannot be written: the writer logs
 *       "No space left on device" (not a guess), keeps retrying, holds
 *       those ACKs, and a later burst is refused at once with EFULL and
 *       "data store cannot be written". The file is deleted: the writer
 *       succeeds by itself, the held ACKs leave, a worker runs them all.
 *    2. On a second store, the disk is filled again and a burst arrives;
 *       the broker gets SIGTERM while its writer fails. It exits 0 within
 *       the grace period, and every submission whose record never reached
 *       the disk is told so ("not recorded"), never acknowledged. With
 *       room again a restart on that store finds nothing of them, and
 *       nothing that was refused ever runs.
 *    3. With room, a burst of 100,000 and no worker: the broker refuses
 *       ("data store full", the disk's room named) before the disk fills;
 *       the filesystem still has room at the end and the writer never
 *       failed in this phase.
 */
#define _GNU_SOURCE
#include "tests/fault/fault.h"
#include "tests/harness/client_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define S_FS_MB 16

static char s_fs[512];
static char s_filler[600];

/* A private mount namespace and a tmpfs of S_FS_MB MiB in it. */
static int
s_mount(void)
{
    snprintf(s_fs, sizeof s_fs, "%s/fs", tw_h_tmpdir());
    snprintf(s_filler, sizeof s_filler, "%s/filler", s_fs);
    if (mkdir(s_fs, 0700) != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        return -errno;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "size=%dm,mode=0700", S_FS_MB);
    return mount("tw-disk-full", s_fs, "tmpfs", 0, opts) == 0 ? 0 : -errno;
}

static uint64_t
s_free_bytes(void)
{
    struct statvfs v;
    TW_H_ASSERT(statvfs(s_fs, &v) == 0);
    return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Fill the filesystem to the last byte. */
static void
s_fill(void)
{
    int fd = open(s_filler, O_WRONLY | O_CREAT | O_APPEND, 0600);
    TW_H_ASSERT(fd >= 0);
    static char buf[65536];
    memset(buf, 'f', sizeof buf);
    for (size_t chunk = sizeof buf; chunk >= 1;) {
        ssize_t n = write(fd, buf, chunk);
        if (n < 0) {
            TW_H_ASSERT_MSG(errno == ENOSPC, "filler: %s", strerror(errno));
            chunk /= 2;
        }
    }
    close(fd);
    TW_H_ASSERT_EQ(s_free_bytes(), 0);
}

static void
s_unfill(void)
{
    TW_H_ASSERT(unlink(s_filler) == 0);
}

int
main(void)
{
    tw_h_init("fault-disk-full");
    int rc = s_mount();
    if (rc != 0) {
        printf("SKIP: cannot make a private tmpfs to fill (%s): needs "
               "root\n", strerror(-rc));
        return 77;
    }
    char data[600];
    snprintf(data, sizeof data, "%s/data", s_fs);
    tw_h_broker_t b;
    const char *opts[] = {"--data", data, "--data-size", "64",
                          "--heartbeat", "200", "--handler-grace", "3600",
                          "--max-results", "2000", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, opts));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    tw_client_t *c = tw_fault_client(b.frontend);
    static tw_fault_t f;
    tw_fault_init(&f, "disk-full", c, 200000);
    f.refuse_code = TW_EFULL;
    f.refuse_text = "data store full|data store cannot be written|"
                    "not recorded";
    unsigned char args[102];
    tw_task_spec_t spec = tw_fault_echo100(args);

    /* One task with 512 KiB of arguments: its overflow pages must be
     * contiguous, so they extend the file rather than fill free pages. */
    static unsigned char bigargs[5 + (512u << 10)];
    bigargs[0] = 0xc6; /* bin 32 */
    bigargs[1] = 0;
    bigargs[2] = 0x08;
    bigargs[3] = 0;
    bigargs[4] = 0;
    memset(bigargs + 5, 'b', 512u << 10);
    tw_task_spec_t big = {.handler = "echo", .args = bigargs,
                          .args_len = sizeof bigargs};

    /* 1: the disk fills behind the broker's back. */
    s_fill();
    tw_fault_submit(&f, c, &big, 1);
    tw_fault_submit(&f, c, &spec, 4999);
    tw_fault_wait_stat(c, "store_failing", 1, 10000);
    /* Failing now: a second burst is refused at once, with the reason. */
    tw_fault_submit(&f, c, &spec, 1000);
    uint64_t t = tw_h_now_ms();
    while (tw_fault_refused(&f) < 1000 && tw_h_now_ms() - t < 10000) {
        tw_client_poll(c, 20);
    }
    TW_H_ASSERT(tw_fault_refused(&f) >= 1000);
    while (tw_h_now_ms() - t < 1500) {
        tw_client_poll(c, 20); /* a few more retries */
    }
    TW_H_ASSERT(tw_h_log_contains(b.pid, "No space left on device"));
    TW_H_ASSERT(!tw_h_log_contains(b.pid, "store full?"));
    size_t held = 6000 - tw_fault_refused(&f) - tw_fault_acked(&f);
    TW_H_ASSERT_EQ(tw_fault_acked(&f), 0);
    TW_H_ASSERT(held > 0);
    long long errors1 = tw_fault_stat(c, "store_errors");
    TW_H_ASSERT(errors1 >= 2);
    s_unfill();
    tw_fault_wait_stat(c, "store_failing", 0, 10000);
    pid_t w = tw_h_start_worker(&b, 64, NULL);
    TW_H_ASSERT(w > 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));
    /* What was held is answered now: acknowledged (the first message at
     * least, admitted before the writer failed) or refused. */
    size_t acked1 = tw_fault_acked(&f);
    TW_H_ASSERT(acked1 >= 1 && acked1 <= held);
    TW_H_ASSERT_EQ(tw_fault_completed(&f), acked1);
    TW_H_ASSERT_EQ(acked1 + tw_fault_refused(&f), 6000);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "writes again"));
    printf("disk-full: 1: ENOSPC: %zu submissions answered only once "
           "room came back (%zu of them acknowledged and run), %zu refused "
           "in all, %lld failed attempts\n",
           held, acked1, tw_fault_refused(&f), errors1);

    /* 2: a second store on the same disk, whose file has no free page
     * the big task could use: full again, and SIGTERM while the writer
     * fails. */
    TW_H_ASSERT_EQ(tw_h_stop(w), 0);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    char data2[600];
    snprintf(data2, sizeof data2, "%s/data2", s_fs);
    const char *opts2[] = {"--data", data2, "--data-size", "64",
                           "--heartbeat", "200", "--handler-grace", "3600",
                           "--max-results", "2000", NULL};
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, opts2));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT_OK(tw_client_ping(c, 10000));
    size_t acked2 = tw_fault_acked(&f), refused2 = tw_fault_refused(&f);
    s_fill();
    tw_fault_submit(&f, c, &big, 1);
    tw_fault_submit(&f, c, &spec, 4999);
    tw_fault_wait_stat(c, "store_failing", 1, 10000);
    TW_H_ASSERT_OK(tw_h_kill(b.pid, SIGTERM));
    t = tw_h_now_ms();
    int code = TW_ETIMEDOUT;
    while (code == TW_ETIMEDOUT && tw_h_now_ms() - t < 20000) {
        tw_client_poll(c, 10);
        code = tw_h_wait_exit(b.pid, 0);
    }
    TW_H_ASSERT_EQ(code, 0);
    uint64_t stop_ms = tw_h_now_ms() - t;
    TW_H_ASSERT(tw_h_log_contains(b.pid, "could not be written"));
    t = tw_h_now_ms();
    while (tw_h_now_ms() - t < 300) {
        tw_client_poll(c, 10);
    }
    /* The big one, and whatever followed it into the same batches, is
     * "not recorded"; what came later was refused as it arrived. */
    size_t notrec = tw_fault_refused(&f) - refused2;
    TW_H_ASSERT_EQ(tw_fault_acked(&f), acked2);
    TW_H_ASSERT_EQ(notrec, 5000);
    TW_H_ASSERT(tw_h_log_contains(b.pid, "ACK messages say so instead"));
    s_unfill();
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, opts2));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT_OK(tw_client_ping(c, 10000));
    /* Nothing was recorded, so nothing is there. */
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 30000));
    TW_H_ASSERT_EQ(tw_fault_stat(c, "submitted"), 0);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "queued"), 0);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "kept"), 0);
    printf("disk-full: 2: SIGTERM while failing: stopped in %llu ms; all "
           "5000 refused or told 'not recorded', none acknowledged; the "
           "restart found none of them\n",
           (unsigned long long)stop_ms);

    /* 3: room again; a burst the disk cannot hold is refused before it
     * fills. */
    long long errors3 = tw_fault_stat(c, "store_errors");
    size_t acked3 = tw_fault_acked(&f), refused3 = tw_fault_refused(&f);
    tw_fault_submit(&f, c, &spec, 100000);
    t = tw_h_now_ms();
    while (tw_fault_acked(&f) + tw_fault_refused(&f) <
               acked3 + refused3 + 100000 &&
           tw_h_now_ms() - t < 60000) {
        tw_client_poll(c, 10);
    }
    size_t in3 = tw_fault_acked(&f) - acked3;
    size_t out3 = tw_fault_refused(&f) - refused3;
    TW_H_ASSERT_EQ(in3 + out3, 100000);
    TW_H_ASSERT(out3 > 0);
    TW_H_ASSERT(s_free_bytes() > 0);
    TW_H_ASSERT_EQ(tw_fault_stat(c, "store_errors"), errors3);
    printf("disk-full: 3: burst of 100000 into a %d MiB disk: %zu "
           "acknowledged, %zu refused, %llu bytes of the disk still free\n",
           S_FS_MB, in3, out3, (unsigned long long)s_free_bytes());
    TW_H_ASSERT(tw_h_start_worker(&b, 64, NULL) > 0);
    TW_H_ASSERT_OK(tw_fault_wait(&f, c, 60000));
    tw_fault_report(&f, c);

    tw_fault_free(&f);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    umount2(s_fs, MNT_DETACH);
    return 0;
}
