/*  tests/integration/46-pair.c - a broker pair on loopback: one active,
 *  the passive refusing and naming it, failover by Binary Star's rule,
 *  fencing, and the old active coming back passive (docs/HA.md,
 *  PROTOCOL.md 17).
 *
 *  A primary and a backup (--replicate sync, 200 ms heartbeats), a worker
 *  and a client given both endpoints:
 *
 *    refusal    the backup answers a client's QUERY and a worker's HELLO
 *               with ERROR ENOTACTIVE naming the primary's frontend and
 *               backend, epoch 1, and that it still hears the primary;
 *               its status says passive (both answer status); the
 *               active's REPLY and HEARTBEAT carry its epoch, the
 *               passive's REPLY none;
 *    serving    tasks submitted to the pair run on the primary's worker;
 *    failover   the primary is SIGKILLed: the client's and the worker's
 *               next messages, which say they lost it, make the backup
 *               take over under epoch 2 (backups take even epochs); a
 *               task for a handler no worker offered yet is queued, the
 *               handler grace counting from the takeover; the
 *               tasks acknowledged before the kill are known there with
 *               their results (the stream replicated them) and new ones
 *               run; the CLI given both endpoints, the first of which no
 *               longer listens, gets a result from the other and shows
 *               both brokers' status;
 *    return     the primary started again finds the backup active and
 *               turns passive under epoch 2;
 *    settings   a role without --data, --peer-bind or --peer, a peer
 *               without a role, an unknown role and a plaintext peer
 *               socket off loopback without --insecure each stop the broker
 *               at start with exit status 2 and a line saying what is
 *               missing;
 *    fencing    a message carrying a later epoch (4) deposes the backup:
 *               it answers ENOTACTIVE and exits with status 3; the
 *               primary then takes over on the client's vote (an odd
 *               epoch above 2) and serves.
 */
#include "tests/harness/harness.h"
#include "tests/harness/client_helpers.h"
#include "taskwheel/client.h"

#include <signal.h>
#include <stdlib.h>

#define N_TASKS 40

/* Submit `n` echo tasks of their number to `c` and wait for every one;
 * all must end ok. Returns the id of the first. */
static uint64_t
s_run(tw_client_t *c, int n, int from)
{
    uint64_t first_seq = 0;
    for (int i = 0; i < n; i++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", from + i);
        uint64_t seq = tw_h_submit_str(c, "echo", arg, 0, 0);
        if (!first_seq) {
            first_seq = seq;
        }
    }
    TW_H_ASSERT_OK(tw_client_wait_all(c, 60000));
    for (int i = 0; i < n; i++) {
        tw_result_t *r = tw_h_outcome(c, first_seq + (uint64_t)i, 10000);
        TW_H_ASSERT_EQ(r->state, TW_ST_OK);
        tw_result_free(&r);
    }
    return tw_h_wait_acked(c, first_seq, 10000);
}

/* A raw request of `cmd` with body `e` to `ep`: the answer, which must be
 * ERROR ENOTACTIVE; its "active" is copied to `active`, its epoch
 * returned, *live set. */
static uint64_t
s_refused(const char *ep, tw_cmd_t cmd, tw_enc_t *e, char *active,
          size_t cap, int *live)
{
    void *d = tw_h_dealer(ep, NULL);
    TW_H_ASSERT_OK(tw_h_send(d, cmd, e));
    tw_h_msg_t msg;
    TW_H_ASSERT_OK(tw_h_recv(d, &msg, 10000));
    TW_H_ASSERT(msg.decoded && msg.m.cmd == TW_CMD_ERROR);
    TW_H_ASSERT_EQ(tw_msg_int(&msg.m, TW_F_CODE, 0), TW_ENOTACTIVE);
    size_t len = 0;
    const char *a = tw_msg_str(&msg.m, TW_F_ACTIVE, &len);
    snprintf(active, cap, "%.*s", a ? (int)len : 0, a ? a : "");
    *live = (int)tw_msg_uint(&msg.m, TW_F_LIVE, 0);
    uint64_t ha = tw_msg_uint(&msg.m, TW_F_HA, 0);
    size_t mlen = 0;
    const char *text = tw_msg_str(&msg.m, TW_F_MSG, &mlen);
    printf("refused: %.*s\n", (int)mlen, text ? text : "");
    tw_h_msg_release(&msg);
    zmq_close(d);
    return ha;
}

static uint64_t
s_refused_query(const char *ep, char *active, size_t cap, int *live)
{
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 2);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "workers");
    uint64_t ha = s_refused(ep, TW_CMD_QUERY, &e, active, cap, live);
    tw_enc_free(&e);
    return ha;
}

/* The acknowledgement of one submission. */
typedef struct {
    uint64_t seq;
    int done, err;
    char msg[256];
} s_ack_t;

static void
s_on_later_ack(void *arg, const tw_ack_t *ack)
{
    s_ack_t *a = arg;
    if (ack->seq == a->seq && !a->done) {
        a->done = 1;
        a->err = ack->err;
        snprintf(a->msg, sizeof a->msg, "%s", ack->msg ? ack->msg : "");
    }
}

/* The "ha" of the answer of the broker at `ep` to a raw QUERY "status"
 * (its REPLY) or to a client's HEARTBEAT (its HEARTBEAT); 0 if none. */
static uint64_t
s_answer_ha(const char *ep, tw_cmd_t cmd)
{
    void *d = tw_h_dealer(ep, NULL);
    tw_enc_t e;
    tw_enc_init(&e);
    if (cmd == TW_CMD_QUERY) {
        tw_enc_map(&e, 2);
        tw_enc_key(&e, TW_F_SEQ);
        tw_enc_uint(&e, 1);
        tw_enc_key(&e, TW_F_WHAT);
        tw_enc_cstr(&e, "status");
    } else {
        tw_enc_map(&e, 0);
    }
    TW_H_ASSERT_OK(tw_h_send(d, cmd, &e));
    tw_enc_free(&e);
    tw_h_msg_t msg;
    tw_h_expect(d, cmd == TW_CMD_QUERY ? TW_CMD_REPLY : TW_CMD_HEARTBEAT,
                &msg, 10000);
    TW_H_ASSERT(msg.decoded);
    uint64_t ha = msg.m.f[TW_F_HA] ? tw_msg_uint(&msg.m, TW_F_HA, 0) : 0;
    tw_h_msg_release(&msg);
    zmq_close(d);
    return ha;
}

/* Wait until the broker at `ep` says its state is `state` under `epoch`
 * (-1: any); returns the epoch. */
static long long
s_wait_state(const char *ep, const char *state, long long epoch)
{
    tw_client_t *c = tw_client_new(ep);
    TW_H_ASSERT(c != NULL);
    char got[32] = "";
    long long ep_got = -1;
    uint64_t end = tw_h_now_ms() + 20000;
    while (tw_h_now_ms() < end) {
        if (tw_h_status_str(c, "ha_state", got, sizeof got) == 0 &&
            tw_h_status_field(c, "ha_epoch", &ep_got) == 0 &&
            strcmp(got, state) == 0 && (epoch < 0 || ep_got == epoch)) {
            break;
        }
        tw_h_sleep_ms(50);
    }
    TW_H_ASSERT_MSG(strcmp(got, state) == 0 && (epoch < 0 || ep_got == epoch),
                    "%s: %s under epoch %lld, not %s under %lld", ep, got,
                    ep_got, state, epoch);
    tw_client_destroy(&c);
    return ep_got;
}

/* The broker started with `args` (NULL-terminated, after the program)
 * exits 2 saying `why`. */
static void
s_refuses(const char *const args[], const char *why)
{
    const char *argv[16] = {tw_h_broker_bin()};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 15; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = tw_h_spawn(argv);
    TW_H_ASSERT(pid > 0);
    TW_H_ASSERT_EQ(tw_h_wait_exit(pid, 20000), 2);
    TW_H_ASSERT_MSG(tw_h_log_contains(pid, why), "no \"%s\" in %s", why,
                    tw_h_log_path(pid));
}

static void
s_settings(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/refused-data", tw_h_tmpdir());
    s_refuses(TW_H_ARGS("--role", "primary"), "needs --data");
    s_refuses(TW_H_ARGS("--role", "backup", "--data", data, "--peer",
                        "tcp://127.0.0.1:1"),
              "needs --peer-bind");
    s_refuses(TW_H_ARGS("--peer", "tcp://127.0.0.1:1"), "give --role");
    s_refuses(TW_H_ARGS("--role", "leader"), "is not one of primary|backup");
    s_refuses(TW_H_ARGS("--role", "primary", "--data", data, "--peer-bind",
                        "tcp://10.1.2.3:7713", "--peer",
                        "tcp://10.1.2.4:7713"),
              "the peer socket has no CURVE yet");
}

int
main(void)
{
    tw_h_init("46-pair");
    s_settings();
    tw_h_pair_t pr;
    const char *const args[] = {"--heartbeat", "200", "--replicate", "sync",
                                "--handler-grace", "3", NULL};
    TW_H_ASSERT_OK(tw_h_start_pair(&pr, args, NULL));
    tw_h_broker_t *p = &pr.br[0], *b = &pr.br[1];
    TW_H_ASSERT_OK(tw_h_wait_ready(pr.fronts, 20000));
    s_wait_state(p->frontend, "active", 1);
    s_wait_state(b->frontend, "passive", 1);

    /* The passive refuses clients and workers, naming the active. */
    char active[256];
    int live = 0;
    TW_H_ASSERT_EQ(s_refused_query(b->frontend, active, sizeof active,
                                   &live), 1);
    TW_H_ASSERT_STREQ(active, p->frontend);
    TW_H_ASSERT_EQ(live, 1);
    /* The active's REPLY and HEARTBEAT carry its epoch; the passive's
     * REPLY to a status query none (it serves nothing). */
    TW_H_ASSERT_EQ(s_answer_ha(p->frontend, TW_CMD_QUERY), 1);
    TW_H_ASSERT_EQ(s_answer_ha(p->frontend, TW_CMD_HEARTBEAT), 1);
    TW_H_ASSERT_EQ(s_answer_ha(b->frontend, TW_CMD_QUERY), 0);
    tw_enc_t e;
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_NAME);
    tw_enc_cstr(&e, "w-raw");
    tw_enc_key(&e, TW_F_SLOTS);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_HANDLERS);
    tw_enc_array(&e, 1);
    tw_enc_cstr(&e, "echo");
    TW_H_ASSERT_EQ(s_refused(b->backend, TW_CMD_HELLO, &e, active,
                             sizeof active, &live), 1);
    tw_enc_free(&e);
    TW_H_ASSERT_STREQ(active, p->backend);

    /* Serving: a worker and a client that know both brokers. */
    TW_H_ASSERT(tw_h_start_worker(p, 4, TW_H_ARGS("--broker", pr.backs)) >
                0);
    TW_H_ASSERT_OK(tw_h_wait_workers(p->frontend, 1, 20000));
    tw_client_t *c = tw_client_new(pr.fronts);
    TW_H_ASSERT(c != NULL);
    tw_h_track_results(c);
    uint64_t first = s_run(c, N_TASKS, 1);

    /* The grace for handlers no worker offered yet (--handler-grace 3)
     * is over since the backup started, but counts again from its
     * takeover: a task for a handler the new active has not seen is
     * queued, not refused, while the workers come back. */
    uint64_t end = tw_h_now_ms() + 30000;
    while (tw_h_status_of(b->frontend, "uptime_ms") < 4000) {
        TW_H_ASSERT(tw_h_now_ms() < end);
        tw_h_sleep_ms(50);
    }
    static s_ack_t later;
    tw_client_t *c2 = tw_client_new(pr.fronts);
    TW_H_ASSERT(c2 != NULL);
    tw_client_on_ack(c2, s_on_later_ack, &later);
    TW_H_ASSERT_OK(tw_client_ping(c2, 5000));

    /* Failover: the primary dies; the backup takes over on a vote. */
    uint64_t t0 = tw_h_now_ms();
    TW_H_ASSERT_OK(tw_h_kill(p->pid, SIGKILL));
    TW_H_ASSERT(tw_h_wait_exit(p->pid, 10000) >= 0);
    tw_task_spec_t lspec = {.handler = "later"};
    TW_H_ASSERT_OK(tw_client_submit(c2, &lspec, &later.seq));
    end = tw_h_now_ms() + 20000;
    while (!later.done) {
        TW_H_ASSERT_MSG(tw_h_now_ms() < end, "the task for 'later' was "
                        "never acknowledged");
        tw_client_poll(c2, 20);
    }
    TW_H_ASSERT_MSG(later.err == 0, "the new active refused a task for a "
                    "handler not offered yet: %s", later.msg);
    tw_client_destroy(&c2);
    s_run(c, N_TASKS, 1000);
    printf("failover: the first task after the kill ended %llu ms later\n",
           (unsigned long long)(tw_h_now_ms() - t0));
    s_wait_state(b->frontend, "active", 2);
    TW_H_ASSERT_EQ(s_answer_ha(b->frontend, TW_CMD_QUERY), 2);
    tw_client_t *cb = tw_client_new(b->frontend);
    long long takeovers = 0;
    TW_H_ASSERT_OK(tw_h_status_field(cb, "ha_takeovers", &takeovers));
    TW_H_ASSERT_EQ(takeovers, 1);
    /* What the primary acknowledged was replicated with its outcome. */
    tw_result_t *r = NULL;
    TW_H_ASSERT_OK(tw_client_result(cb, first, 5000, &r));
    TW_H_ASSERT_EQ(r->state, TW_ST_OK);
    TW_H_ASSERT_STREQ(tw_h_result_str(r), "1");
    tw_result_free(&r);
    tw_client_destroy(&cb);
    /* The CLI given both, the first of which no longer listens, asks the
     * other; and shows both brokers' status. */
    char id[24], out[4096];
    snprintf(id, sizeof id, "%llu", (unsigned long long)first);
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--broker", pr.fronts, "result", id),
                            out, sizeof out, NULL),
                   0);
    TW_H_ASSERT_MSG(strstr(out, " ok ") != NULL, "result: %s", out);
    TW_H_ASSERT_EQ(tw_h_cli(b, TW_H_ARGS("--broker", pr.fronts, "status"),
                            out, sizeof out, NULL),
                   0);
    TW_H_ASSERT_MSG(strstr(out, "pair     backup, active, epoch 2") != NULL,
                    "status: %s", out);

    /* The old active comes back passive. */
    TW_H_ASSERT_OK(tw_h_restart_pair(&pr, 0, args));
    s_wait_state(p->frontend, "passive", 2);
    TW_H_ASSERT_EQ(s_refused_query(p->frontend, active, sizeof active,
                                   &live), 2);
    TW_H_ASSERT_STREQ(active, b->frontend);

    /* Fencing: a later epoch deposes the active, which exits 3. */
    tw_enc_init(&e);
    tw_enc_map(&e, 3);
    tw_enc_key(&e, TW_F_SEQ);
    tw_enc_uint(&e, 1);
    tw_enc_key(&e, TW_F_WHAT);
    tw_enc_cstr(&e, "workers");
    tw_enc_key(&e, TW_F_HA);
    tw_enc_uint(&e, 4);
    TW_H_ASSERT(s_refused(b->frontend, TW_CMD_QUERY, &e, active,
                          sizeof active, &live) >= 2);
    tw_enc_free(&e);
    TW_H_ASSERT_EQ(tw_h_wait_exit(b->pid, 20000), 3);
    TW_H_ASSERT(tw_h_log_contains(b->pid, "ha.deposed"));
    /* The primary takes over on the client's vote, under an epoch of
     * its own (odd) above the backup's. */
    s_run(c, N_TASKS, 2000);
    long long last = s_wait_state(p->frontend, "active", -1);
    TW_H_ASSERT(last > 2 && last % 2 == 1);

    tw_client_destroy(&c);
    TW_H_ASSERT_EQ(tw_h_stop(p->pid), 0);
    printf("46-pair: ok\n");
    return 0;
}
