/*  broker/main.c - taskwheel-broker: parse settings, run the broker.
 *
 *  Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the
 *  broker cannot start (an endpoint in use, say), 2 for a usage or
 *  configuration error (settings that break a rule by themselves, such as
 *  a plaintext non-loopback endpoint without --insecure) or a store
 *  (--data) it cannot open or does not understand.
 *
 *  `taskwheel-broker --salvage DIR --into NEWDIR` runs no broker: it
 *  copies the intact records of the store in DIR into a new store in
 *  NEWDIR (broker/state/salvage.h) and exits 0 (everything copied), 1 (some
 *  records lost; each is listed) or 2 (nothing could be done).
 */
#include "broker/broker.h"
#include "broker/state/salvage.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* --salvage DIR --into NEWDIR, in either order; -1 if not asked for. */
static int
s_salvage(int argc, char **argv)
{
    const char *from = NULL, *into = NULL;
    int asked = 0;
    for (int i = 1; i < argc; i++) {
        asked |= strcmp(argv[i], "--salvage") == 0;
    }
    if (!asked) {
        return -1;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--salvage") == 0) {
            from = argv[i + 1];
        } else if (strcmp(argv[i], "--into") == 0) {
            into = argv[i + 1];
        } else {
            from = into = NULL;
            break;
        }
    }
    if (!from || !into || !*from || !*into || argc != 5) {
        fprintf(stderr, "taskwheel-broker: usage: taskwheel-broker "
                        "--salvage DIR --into NEWDIR\n");
        return 2;
    }
    char why[1024];
    int rc = tw_store_salvage(from, into, stdout, why, sizeof why);
    if (rc < 0) {
        fprintf(stderr, "taskwheel-broker: %s\n", why);
        return 2;
    }
    return rc;
}

int
main(int argc, char **argv)
{
    int salvaged = s_salvage(argc, argv);
    if (salvaged >= 0) {
        return salvaged;
    }
#ifdef __GLIBC__
    /* Payloads of up to a few mebibytes come and go by the thousand: they
     * live in the heap, where a freed one is reused without a page fault
     * (glibc would otherwise raise its mmap threshold by itself, mapping
     * some and keeping others), and the broker trims the heap once a
     * second (the stats timer, broker.c), so its memory follows what it holds
     * (--payload-budget) rather than the most it ever held. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
    tw_broker_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    int rc = tw_cfg_parse(tw_broker_options, &cfg, argc, argv,
                          "usage: taskwheel-broker [options]\n"
                          "       taskwheel-broker --salvage DIR --into "
                          "NEWDIR\n\n"
                          "Holds the task queues and dispatches tasks to "
                          "workers. --salvage copies the intact records of "
                          "a damaged (or version 1) store into a new one.",
                          err, sizeof err);
    if (rc == TW_CFG_EXIT) {
        tw_cfg_free(tw_broker_options, &cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "taskwheel-broker: %s (try --help)\n", err);
        tw_cfg_free(tw_broker_options, &cfg);
        return 2;
    }
    tw_log_level = tw_log_level_parse(cfg.log_level);
    tw_log_open("broker", strcmp(cfg.log, "syslog") == 0 ? TW_LOG_SYSLOG
                                                         : TW_LOG_STDERR);
    if (tw_broker_check(&cfg, err, sizeof err) != 0) {
        tw_err("broker.config", "%s", err);
        fprintf(stderr, "taskwheel-broker: %s\n", err);
        tw_cfg_free(tw_broker_options, &cfg);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    tw_broker_t *b = tw_broker_new(&loop, &cfg);
    if (!b) {
        uv_loop_close(&loop);
        tw_cfg_free(tw_broker_options, &cfg);
        return 1;
    }
    if (tw_broker_recover(b, err, sizeof err) != 0) {
        /* A store we cannot read is reported and left alone. */
        tw_err("store.open", "%s", err);
        fprintf(stderr, "taskwheel-broker: %s\n", err);
        tw_broker_stop(b);
        uv_run(&loop, UV_RUN_DEFAULT);
        tw_broker_destroy(&b);
        uv_loop_close(&loop);
        tw_cfg_free(tw_broker_options, &cfg);
        return 2;
    }
    rc = tw_broker_run(b);
    tw_broker_destroy(&b);
    uv_loop_close(&loop);
    tw_notice("broker.exit", "stopped");
    tw_cfg_free(tw_broker_options, &cfg);
    return rc;
}
