/*  broker/main.c - taskwheel-broker: parse settings, run the broker.
 *
 *  Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the
 *  broker cannot start (an endpoint in use, say), 2 for a usage or
 *  configuration error (settings that break a rule by themselves, such as
 *  a plaintext non-loopback endpoint without --insecure) or a store
 *  (--data) it cannot open or does not understand.
 */
#include "broker/broker.h"
#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

int
main(int argc, char **argv)
{
    tw_broker_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512];
    int rc = tw_cfg_parse(tw_broker_options, &cfg, argc, argv,
                          "usage: taskwheel-broker [options]\n\n"
                          "Holds the task queues and dispatches tasks to "
                          "workers.",
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
    tw_broker_run(b);
    tw_broker_destroy(&b);
    uv_loop_close(&loop);
    tw_notice("broker.exit", "stopped");
    tw_cfg_free(tw_broker_options, &cfg);
    return 0;
}
