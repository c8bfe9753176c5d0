/*  tests/integration/44-task-records.c - task records on a real broker:
 *  list, show, retry and purge from the CLI (PROTOCOL.md 16).
 *
 *  A broker and a worker run tasks that succeed, fail for good, and fail
 *  once then succeed (an exec script that leaves a mark). Then, through
 *  `taskwheel tasks`:
 *
 *    - list: newest change first, filtered by state and handler, paged
 *      (a limit smaller than the matches gives a cursor the next page
 *      continues from, without repeats);
 *    - show: arguments and result as values, each attempt with its
 *      error line and the rest of the text as its traceback;
 *    - retry: the failed task runs again under its id, its first attempt
 *      kept, and its submitter gets the new outcome; an ok or unknown
 *      task is refused with its reason (exit 1), nothing changed;
 *    - purge --failed: failed records go, others stay;
 *    - bad filters, ids and cursors: EINVAL with the parameter named;
 *    - --data: after a restart the records are back, with their runs,
 *      retries and the arguments a retry needs;
 *    - --failed-ttl: with --result-ttl 1, ok records are swept within
 *      seconds while failed ones stay (a dead-letter set).
 */
#define _GNU_SOURCE /* memmem */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char s_out[65536];

/* `taskwheel tasks show ID --json` into s_out; its exit code. */
static int
s_show(tw_h_broker_t *b, uint64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    return tw_h_cli(b, TW_H_ARGS("--json", "tasks", "show", ids), s_out,
                    sizeof s_out, NULL);
}

/* Submit `handler` with msgpack `args` and wait for it to end in
 * `want_state`; its id. */
static uint64_t
s_run(tw_client_t *c, const char *handler, const void *args, size_t alen,
      int want_state)
{
    tw_task_spec_t spec = {.handler = handler, .args = args,
                           .args_len = alen};
    uint64_t seq = 0;
    TW_H_ASSERT_OK(tw_client_submit(c, &spec, &seq));
    uint64_t id = tw_h_wait_acked(c, seq, 20000);
    TW_H_ASSERT_OK(tw_h_wait_state(c, id, want_state, 20000));
    return id;
}

/* The "next" of a page's msgpack data into `out` ("" for nil). */
static void
s_next(const void *data, size_t len, char *out, size_t cap)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    TW_H_ASSERT(msgpack_unpack_next(&up, data, len, &off) ==
                MSGPACK_UNPACK_SUCCESS);
    TW_H_ASSERT(up.data.type == MSGPACK_OBJECT_MAP);
    out[0] = '\0';
    int found = 0;
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 4 &&
            memcmp(kv->key.via.str.ptr, "next", 4) == 0) {
            found = 1;
            if (kv->val.type == MSGPACK_OBJECT_STR) {
                TW_H_ASSERT(kv->val.via.str.size < cap);
                memcpy(out, kv->val.via.str.ptr, kv->val.via.str.size);
                out[kv->val.via.str.size] = '\0';
            }
        }
    }
    TW_H_ASSERT(found);
    msgpack_unpacked_destroy(&up);
}

/* 1 if the msgpack data holds the bytes of `id` as a summary's id (the
 * key "id" followed by the uint). */
static int
s_lists(const void *data, size_t len, uint64_t id)
{
    unsigned char pat[4] = {0xa2, 'i', 'd', (unsigned char)id};
    TW_H_ASSERT(id < 128);
    return memmem(data, len, pat, sizeof pat) != NULL;
}

static void
s_has(const char *what)
{
    TW_H_ASSERT_MSG(strstr(s_out, what), "no '%s' in:\n%s", what, s_out);
}

static void
s_lacks(const char *what)
{
    TW_H_ASSERT_MSG(!strstr(s_out, what), "'%s' in:\n%s", what, s_out);
}

/* Lines of s_out. */
static int
s_lines(void)
{
    int n = 0;
    for (const char *p = s_out; (p = strchr(p, '\n')); p++) {
        n++;
    }
    return n;
}

int
main(void)
{
    tw_h_init("44-task-records");
    tw_h_broker_t b;
    TW_H_ASSERT_OK(tw_h_start_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 2, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    tw_client_t *c = tw_client_new(b.frontend);
    TW_H_ASSERT(c);
    tw_h_track_results(c);

    /* ["a", 1]: msgpack 92 a1 61 01. */
    static const unsigned char pair[] = {0x92, 0xa1, 'a', 0x01};
    uint64_t ok1 = s_run(c, "echo", pair, sizeof pair, TW_ST_OK);
    uint64_t ok2 = s_run(c, "echo", pair, sizeof pair, TW_ST_OK);
    static const unsigned char boom[] = {0xa4, 'b', 'o', 'o', 'm'};
    uint64_t bad = s_run(c, "fail", boom, sizeof boom, TW_ST_ERROR);
    /* Fails the first time (two lines on stderr), then prints "fine". */
    char script[1400];
    snprintf(script, sizeof script,
             "test -e %s/mark || { touch %s/mark; echo first >&2; "
             "echo second >&2; exit 3; }; echo fine",
             tw_h_tmpdir(), tw_h_tmpdir());
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "sh", 2);
    msgpack_pack_str_with_body(&pk, "-c", 2);
    msgpack_pack_str_with_body(&pk, script, strlen(script));
    uint64_t once = s_run(c, "exec", sb.data, sb.size, TW_ST_ERROR);
    msgpack_sbuffer_destroy(&sb);

    /* list: every record, newest change first. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("--json", "tasks", "list"), s_out,
                            sizeof s_out, NULL),
                   0);
    TW_H_ASSERT_EQ(s_lines(), 4);
    char want[64];
    snprintf(want, sizeof want, "{\"id\":%llu,", (unsigned long long)once);
    TW_H_ASSERT_MSG(strncmp(s_out, want, strlen(want)) == 0,
                    "newest first:\n%s", s_out);
    s_has("\"submitted_ms\":");
    s_has("\"error\":\"exit status 3: first\"");
    /* Filters. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("--json", "tasks", "list",
                                          "--state", "failed"),
                            s_out, sizeof s_out, NULL),
                   0);
    TW_H_ASSERT_EQ(s_lines(), 2);
    s_lacks("\"state\":\"ok\"");
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("--json", "tasks", "list",
                                          "--handler", "echo", "--text",
                                          "1"),
                            s_out, sizeof s_out, NULL),
                   0);
    TW_H_ASSERT_EQ(s_lines(), 1); /* "1" is only in id 1's decimal form */
    s_has("\"id\":1,");
    /* Pages through libtaskwheel: two records, then the other two. */
    tw_tasks_req_t req = {.limit = 2};
    void *data = NULL;
    size_t len = 0;
    char cursor[64];
    TW_H_ASSERT_OK(tw_client_tasks_list(c, &req, 5000, &data, &len));
    TW_H_ASSERT(s_lists(data, len, once) && s_lists(data, len, bad));
    s_next(data, len, cursor, sizeof cursor);
    free(data);
    TW_H_ASSERT_MSG(strncmp(cursor, "t1.", 3) == 0, "cursor '%s'", cursor);
    req.cursor = cursor;
    TW_H_ASSERT_OK(tw_client_tasks_list(c, &req, 5000, &data, &len));
    TW_H_ASSERT(s_lists(data, len, ok1) && s_lists(data, len, ok2));
    TW_H_ASSERT(!s_lists(data, len, once) && !s_lists(data, len, bad));
    char end[64];
    s_next(data, len, end, sizeof end);
    TW_H_ASSERT_STREQ(end, "");
    free(data);
    /* A cursor made for other filters, and one that is no cursor. */
    req.state = "ok";
    TW_H_ASSERT_EQ(tw_client_tasks_list(c, &req, 5000, &data, &len),
                   TW_EINVAL);
    TW_H_ASSERT(strstr(tw_client_last_error(c), "cursor"));
    req.state = NULL;
    req.cursor = "t1.nonsense";
    TW_H_ASSERT_EQ(tw_client_tasks_list(c, &req, 5000, &data, &len),
                   TW_EINVAL);
    req.cursor = NULL;
    req.limit = 1001;
    TW_H_ASSERT_EQ(tw_client_tasks_list(c, &req, 5000, &data, &len),
                   TW_EINVAL);
    TW_H_ASSERT(strstr(tw_client_last_error(c), "limit"));

    /* show: the failed run's error line and its traceback. */
    TW_H_ASSERT_EQ(s_show(&b, once), 0);
    s_has("\"state\":\"error\"");
    s_has("\"args\":[\"sh\",\"-c\"");
    s_has("\"attempts\":[{\"n\":1,");
    s_has("\"error\":\"exit status 3: first\",\"traceback\":\"second");
    TW_H_ASSERT_EQ(s_show(&b, ok1), 0);
    s_has("\"args\":[\"a\",1]");
    s_has("\"result\":[\"a\",1]");
    s_has("\"state\":\"ok\",\"error\":null");
    TW_H_ASSERT_EQ(s_show(&b, 999999), 1);
    s_has("no record of task 999999");

    /* retry: the same id runs again and succeeds; its history stays. */
    char ids[32];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)once);
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("tasks", "retry", ids), s_out,
                            sizeof s_out, NULL),
                   0);
    TW_H_WAIT(s_show(&b, once) == 0 && strstr(s_out, "\"state\":\"ok\""),
              20000);
    s_has("\"retried\":1");
    s_has("\"attempt\":2");
    s_has("\"result\":\"fine\\n\"");
    s_has("{\"n\":1,");
    s_has("{\"n\":2,");
    s_has("\"error\":\"exit status 3: first\"");
    /* RESULT answers the new outcome too. */
    TW_H_ASSERT_OK(tw_h_wait_state(c, once, TW_ST_OK, 20000));
    /* Refusals name their reason; nothing changes. */
    char okid[32];
    snprintf(okid, sizeof okid, "%llu", (unsigned long long)ok2);
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("tasks", "retry", okid, "999999"),
                            s_out, sizeof s_out, NULL),
                   1);
    s_has("is ok");
    s_has("999999 is not known");
    TW_H_ASSERT_EQ(s_show(&b, ok2), 0);
    s_has("\"retried\":0");

    /* purge --failed: the failed record goes, the others stay. */
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("tasks", "purge", "--failed"),
                            s_out, sizeof s_out, NULL),
                   0);
    s_has("purged 1");
    TW_H_ASSERT_EQ(s_show(&b, bad), 1);
    TW_H_ASSERT_EQ(s_show(&b, ok2), 0);
    TW_H_ASSERT_EQ(s_show(&b, once), 0);

    /* Bad input: a clear refusal, exit 1 or 2, nothing changed. */
    TW_H_ASSERT(tw_h_cli(&b, TW_H_ARGS("tasks", "list", "--state", "bogus"),
                         s_out, sizeof s_out, NULL) != 0);
    s_has("state");
    TW_H_ASSERT(tw_h_cli(&b, TW_H_ARGS("tasks", "retry", "--state", "ok"),
                         s_out, sizeof s_out, NULL) != 0);
    s_has("state");

    /* --data: records survive a restart, with their history and the
     * arguments a retry needs. */
    uint64_t bad2 = s_run(c, "fail", boom, sizeof boom, TW_ST_ERROR);
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    TW_H_ASSERT_OK(tw_h_restart_broker(&b, NULL));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 20000));
    TW_H_ASSERT_EQ(s_show(&b, once), 0);
    s_has("\"state\":\"ok\"");
    s_has("\"retried\":1");
    s_has("\"traceback\":\"second");
    s_has("{\"n\":2,");
    TW_H_ASSERT_EQ(s_show(&b, bad2), 0);
    s_has("\"args\":\"boom\"");
    s_has("\"error\":\"boom\"");
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)bad2);
    TW_H_ASSERT_EQ(tw_h_cli(&b, TW_H_ARGS("tasks", "retry", ids), s_out,
                            sizeof s_out, NULL),
                   0);
    TW_H_WAIT(s_show(&b, bad2) == 0 && strstr(s_out, "\"attempt\":2"),
              20000);
    TW_H_WAIT(s_show(&b, bad2) == 0 && strstr(s_out, "\"state\":\"error\""),
              20000);
    s_has("{\"n\":2,");
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);

    /* --failed-ttl: ok records go after --result-ttl, failed ones stay. */
    tw_h_broker_t b2;
    TW_H_ASSERT_OK(tw_h_start_broker(
        &b2, TW_H_ARGS("--result-ttl", "1", "--failed-ttl", "3600")));
    TW_H_ASSERT_OK(tw_h_wait_ready(b2.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b2, 1, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b2.frontend, 1, 10000));
    c = tw_client_new(b2.frontend);
    TW_H_ASSERT(c);
    tw_h_track_results(c);
    uint64_t good = s_run(c, "echo", pair, sizeof pair, TW_ST_OK);
    uint64_t dead = s_run(c, "fail", boom, sizeof boom, TW_ST_ERROR);
    TW_H_WAIT(s_show(&b2, good) == 1, 20000);
    TW_H_ASSERT_EQ(s_show(&b2, dead), 0);
    s_has("\"state\":\"error\"");
    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(b2.pid), 0);
    printf("44-task-records: ok\n");
    return 0;
}
