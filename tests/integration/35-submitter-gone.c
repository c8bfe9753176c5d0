/*  tests/integration/35-submitter-gone.c - when a submitter goes away, its
 *  tasks' channels close at once (S93, F5).
 *
 *  A task of the built-in "ask" opens its channel and makes a request
 *  with a 60 s timeout; its submitter receives the request and never
 *  answers. Then the submitter goes away, three ways:
 *
 *    destroyed  tw_client_destroy in this process (the client says BYE)
 *    crashed    a forked client process is killed with SIGKILL (its
 *               connection closes without a word)
 *    cut off    a forked client process is frozen with SIGSTOP (its
 *               connection stays open but answers nothing; the broker's
 *               ZMTP heartbeats close it)
 *
 *  Each time the broker must close the task's channel: the request
 *  already waiting fails with CloseRequestError, so ask ends with the
 *  result "ECLOSEREQ" within a few seconds (not at its 60 s timeout), and
 *  the worker's only slot is free for the next task at once. The outcome
 *  is read by a second client.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_REQ_TIMEOUT_MS 60000 /* ask's request timeout */
#define S_PROMPT_MS 10000      /* "promptly": well within it */

/* ---- a submitter ------------------------------------------------------- */

typedef struct {
    uint64_t id;     /* the ask task, once acknowledged */
    uint64_t req_id; /* the task whose request arrived (the only one this
                        client submits; the request may come before the
                        ACK, which waits for the store) */
} s_sub_t;

static void
s_on_ack(void *arg, const tw_ack_t *ack)
{
    ((s_sub_t *)arg)->id = ack->id;
}

static int
s_on_chan(void *arg, const tw_chan_msg_t *m)
{
    s_sub_t *s = arg;
    if (m->kind == TW_CHAN_REQ) {
        s->req_id = m->id; /* and never answered */
    }
    return 0;
}

/* Submit ask {"req": "q", "timeout": 60000} on `c` and poll until its
 * request has arrived. Returns the task id, or 0 if that took longer
 * than 20 s. Uses no harness asserts: it also runs in forked children. */
static uint64_t
s_ask_and_wait(tw_client_t *c, s_sub_t *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "req", 3);
    msgpack_pack_str_with_body(&pk, "q", 1);
    msgpack_pack_str_with_body(&pk, "timeout", 7);
    msgpack_pack_uint32(&pk, S_REQ_TIMEOUT_MS);
    tw_task_spec_t spec = {.handler = "ask", .args = sb.data,
                           .args_len = sb.size};
    memset(s, 0, sizeof *s);
    tw_client_on_ack(c, s_on_ack, s);
    tw_client_on_channel(c, s_on_chan, s);
    int rc = tw_client_submit(c, &spec, NULL);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0 || tw_client_flush(c) < 0) {
        return 0;
    }
    uint64_t end = tw_h_now_ms() + 20000;
    while (!(s->req_id && s->id) && tw_h_now_ms() < end) {
        tw_client_poll(c, 50);
    }
    return s->req_id && s->req_id == s->id ? s->id : 0;
}

/* The forked submitter, killed however the test ends (a frozen one
 * would otherwise outlive it). */
static pid_t s_child;

static void
s_kill_child(void)
{
    if (s_child > 0) {
        kill(s_child, SIGKILL);
        waitpid(s_child, NULL, 0);
        s_child = 0;
    }
}

/* A forked process that submits the ask task, writes its id to `fd`
 * once the request arrived, then keeps its client alive without ever
 * answering. Returns its pid; the caller kills and reaps it. */
static pid_t
s_fork_submitter(const char *frontend, int fd)
{
    fflush(NULL);
    pid_t pid = fork();
    TW_H_ASSERT(pid >= 0);
    if (pid > 0) {
        s_child = pid;
        return pid;
    }
    /* The child: none of the harness's exit or signal handling, which
     * would stop the cluster. */
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM,
                               SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        signal(sigs[i], SIG_DFL);
    }
    tw_client_t *c = tw_client_new(frontend);
    s_sub_t s;
    uint64_t id = c ? s_ask_and_wait(c, &s) : 0;
    if (write(fd, &id, sizeof id) != (ssize_t)sizeof id || !id) {
        _exit(3);
    }
    for (;;) {
        tw_client_poll(c, 1000);
    }
}

/* The id a forked submitter wrote to `fd`. */
static uint64_t
s_read_id(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    TW_H_ASSERT_MSG(poll(&p, 1, 30000) == 1, "the submitter never said");
    uint64_t id = 0;
    TW_H_ASSERT(read(fd, &id, sizeof id) == (ssize_t)sizeof id);
    TW_H_ASSERT_MSG(id != 0, "the submitter's request never arrived");
    return id;
}

/* ---- checks --------------------------------------------------------------- */

static tw_client_t *s_reader;

/* Task `id` ends within S_PROMPT_MS of `t0` with ask's answer to a closed
 * channel, and the worker's one slot takes the next task at once. */
static void
s_expect_closed(const char *how, uint64_t id, uint64_t t0)
{
    TW_H_ASSERT_OK(tw_h_wait_state(s_reader, id, TW_ST_OK, S_PROMPT_MS));
    uint64_t took = tw_h_now_ms() - t0;
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(s_reader, id, 5000, &r));
    TW_H_ASSERT_MSG(strcmp(tw_h_result_str(r), "ECLOSEREQ") == 0,
                    "%s: ask answered %s", how, tw_h_result_str(r));
    tw_result_free(&r);
    printf("35: %s: channel closed %llu ms after the submitter left\n", how,
           (unsigned long long)took);
    /* The slot is free: a noop runs now. */
    static const unsigned char nil = 0xc0;
    tw_task_spec_t spec = {.handler = "noop", .args = &nil, .args_len = 1};
    TW_H_ASSERT_OK(tw_client_submit(s_reader, &spec, NULL));
    TW_H_ASSERT_OK(tw_client_wait_all(s_reader, 5000));
}

static void
s_destroyed(const tw_h_broker_t *b)
{
    tw_client_t *c = tw_client_new(b->frontend);
    TW_H_ASSERT(c);
    s_sub_t s;
    uint64_t id = s_ask_and_wait(c, &s);
    TW_H_ASSERT_MSG(id, "the request never arrived");
    uint64_t t0 = tw_h_now_ms();
    tw_client_destroy(&c);
    s_expect_closed("destroyed", id, t0);
}

/* `sig` SIGKILL: crashed; SIGSTOP: frozen, cut off. */
static void
s_forked(const tw_h_broker_t *b, int sig, const char *how)
{
    int fds[2];
    TW_H_ASSERT(pipe(fds) == 0);
    pid_t pid = s_fork_submitter(b->frontend, fds[1]);
    close(fds[1]);
    uint64_t id = s_read_id(fds[0]);
    close(fds[0]);
    uint64_t t0 = tw_h_now_ms();
    TW_H_ASSERT(kill(pid, sig) == 0);
    s_expect_closed(how, id, t0);
    s_kill_child();
}

int
main(void)
{
    tw_h_init("35-submitter-gone");
    atexit(s_kill_child);
    tw_h_broker_t b;
    /* A short heartbeat, so a frozen client's connection is closed by
     * the frontend's ZMTP heartbeats in about a second. */
    const char *args[] = {"--heartbeat", "300", NULL};
    TW_H_ASSERT_OK(tw_h_start_broker(&b, args));
    TW_H_ASSERT_OK(tw_h_wait_ready(b.frontend, 10000));
    TW_H_ASSERT(tw_h_start_worker(&b, 1, NULL) > 0);
    TW_H_ASSERT_OK(tw_h_wait_workers(b.frontend, 1, 10000));
    s_reader = tw_client_new(b.frontend);
    TW_H_ASSERT(s_reader);

    s_destroyed(&b);
    s_forked(&b, SIGKILL, "crashed");
    s_forked(&b, SIGSTOP, "cut off");

    long long closereq = 0;
    TW_H_ASSERT_OK(tw_h_status_field(s_reader, "chan_closereq", &closereq));
    TW_H_ASSERT(closereq >= 3);
    tw_client_destroy(&s_reader);
    TW_H_ASSERT_EQ(tw_h_stop(b.pid), 0);
    printf("35-submitter-gone: ok\n");
    return 0;
}
