/*  tests/integration/34-status-cli.c - `taskwheel status` shows what an
 *  operator needs first.
 *
 *  Against a real broker and worker, after a few tasks: the default
 *  output is five labelled lines (workers, queues, rates, errors, broker)
 *  with the figures an operator looks at first (workers and slots, tasks
 *  running and queued, stations, the rate and the totals, the error
 *  counters) and none of the internal counters; `status --all` prints
 *  every counter, internal ones included; `--json status` is the whole
 *  map, as scripts expect, with as many keys as PROTOCOL.md 5.14 counts;
 *  an unknown option is a usage error (exit 2).
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <stdio.h>
#include <stdlib.h>

/* M of "`data` is a map of N keys (M with `--data`)" in
 * proto/PROTOCOL.md (5.14). */
static size_t
s_documented_keys(void)
{
    FILE *f = fopen(TW_SOURCE_DIR "/proto/PROTOCOL.md", "r");
    TW_H_ASSERT(f != NULL);
    char line[512];
    size_t n = 0;
    while (n == 0 && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "`data` is a map of ");
        const char *q = p ? strstr(p, " keys (") : NULL;
        if (q && strstr(q, " with `--data`)")) {
            n = strtoul(q + strlen(" keys ("), NULL, 10);
        }
    }
    fclose(f);
    TW_H_ASSERT_MSG(n > 0, "PROTOCOL.md gives no count of status keys");
    return n;
}

int
main(void)
{
    tw_h_init("34-status-cli");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 3, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    static const unsigned char one = 0x01;
    for (int i = 0; i < 4; i++) {
        tw_task_spec_t spec = {.handler = "echo", .args = &one,
                               .args_len = 1};
        TW_H_ASSERT_OK(tw_client_submit(c, &spec, NULL));
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 10000));

    static char out[16384];
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("status"), out, sizeof out, NULL), 0);
    /* Five labelled lines (wrapped ones are indented), then the hint. */
    static const char *const labels[] = {"workers  ", "queues   ",
                                         "rates    ", "errors   ",
                                         "broker   "};
    size_t nlabels = 0;
    for (const char *p = out; *p; p = strchr(p, '\n') + 1) {
        TW_H_ASSERT(strchr(p, '\n'));
        if (*p == ' ') {
            continue; /* a wrapped line, or the hint */
        }
        TW_H_ASSERT_MSG(nlabels < 5 && strncmp(p, labels[nlabels],
                                               strlen(labels[nlabels])) == 0,
                        "line %zu is not '%s':\n%s", nlabels,
                        nlabels < 5 ? labels[nlabels] : "-", out);
        nlabels++;
    }
    TW_H_ASSERT_EQ(nlabels, 5);
    static const char *const first[] = {
        "1 workers", "3 slots", "tasks running", "tasks queued",
        "4 submitted", "4 completed", "0 failed", "tasks/s",
        "submissions refused", "messages dropped", "malformed", "up "};
    for (size_t i = 0; i < sizeof first / sizeof *first; i++) {
        TW_H_ASSERT_MSG(strstr(out, first[i]), "no '%s' in:\n%s", first[i],
                        out);
    }
    static const char *const internal[] = {"chan_closereq", "stale_done",
                                           "dispatched", "n2s_sent",
                                           "status_dropped"};
    for (size_t i = 0; i < sizeof internal / sizeof *internal; i++) {
        TW_H_ASSERT_MSG(!strstr(out, internal[i]), "'%s' in:\n%s",
                        internal[i], out);
    }
    TW_H_ASSERT(strstr(out, "taskwheel status --all"));

    /* --all: every counter. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("status", "--all"), out, sizeof out, NULL), 0);
    for (size_t i = 0; i < sizeof internal / sizeof *internal; i++) {
        TW_H_ASSERT_MSG(strstr(out, internal[i]), "no '%s' in:\n%s",
                        internal[i], out);
    }
    /* --json: the whole map. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("--json", "status"), out, sizeof out, NULL),
                   0);
    TW_H_ASSERT(out[0] == '{' && strstr(out, "\"chan_closereq\":") &&
                strstr(out, "\"submitted\":4"));
    /* As many keys as PROTOCOL.md 5.14 says for a broker on a store, as
     * the harness starts it (no value holds a ':', so each is one key). */
    size_t nkeys = 0;
    for (const char *p = out; *p; p++) {
        nkeys += *p == ':';
    }
    TW_H_ASSERT_EQ(nkeys, s_documented_keys());
    /* Usage. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("status", "--bogus"), out, sizeof out, NULL),
                   2);
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("status", "--all", "x"), out,
                            sizeof out, NULL),
                   2);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("34-status-cli: ok\n");
    return 0;
}
