/*  tests/harness/harness.h - helpers for the integration tests.
 *
 *  An integration test (tests/integration/NN-what.c) is a plain C program
 *  that starts a real taskwheel-broker and real workers on 127.0.0.1 with
 *  ephemeral ports, talks to them through libtaskwheel or byte for byte on
 *  the wire, and returns 0 from main on success. The harness gives it:
 *
 *    processes  tw_h_spawn / tw_h_stop / tw_h_kill, each child's stdout and
 *               stderr in a log file under the test's own temp directory;
 *               every child is killed when the test ends, however it ends
 *               (normal exit, TW_H_ASSERT failure, a signal, or the
 *               harness's own deadline, which fires before ctest's)
 *    cluster    tw_h_start_broker / tw_h_start_worker / tw_h_wait_ready
 *    wire       tw_h_dealer, tw_h_send, tw_h_send_raw, tw_h_recv: a raw
 *               DEALER speaking proto/ messages (nng's NUTS style)
 *    asserts    TW_H_ASSERT* print file:line and exit(1)
 *
 *  When a test fails, the harness prints the tail of every child's log and
 *  keeps the temp directory; on success the directory is removed unless
 *  TW_H_KEEP is set in the environment. TW_H_TIMEOUT (seconds, default 280)
 *  sets the deadline. Program paths come from the TW_BROKER_BIN,
 *  TW_WORKER_BIN and TW_CLI_BIN compile definitions, which the environment
 *  variables of the same names override.
 *
 *  Single-threaded: call everything from the test's main thread.
 */
#ifndef TW_HARNESS_H
#define TW_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/zwatch.h"
#include "proto/proto.h"

/* ------------------------------------------------------------ asserts --- */

/* Print "file:line: message" and the logs, kill the children, exit(1). */
void tw_h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define TW_H_ASSERT(cond)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            tw_h_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);    \
        }                                                                    \
    } while (0)

#define TW_H_ASSERT_MSG(cond, ...)                                           \
    do {                                                                     \
        if (!(cond)) {                                                       \
            tw_h_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
        }                                                                    \
    } while (0)

/* Integers of any type, compared and printed as long long. */
#define TW_H_ASSERT_EQ(a, b)                                                 \
    do {                                                                     \
        long long tw_h_a_ = (long long)(a), tw_h_b_ = (long long)(b);        \
        if (tw_h_a_ != tw_h_b_) {                                            \
            tw_h_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,  \
                      tw_h_a_, tw_h_b_);                                     \
        }                                                                    \
    } while (0)

/* A call returning 0 or a TW_E* code; prints the code's name. */
#define TW_H_ASSERT_OK(expr)                                                 \
    do {                                                                     \
        int tw_h_rc_ = (int)(expr);                                          \
        if (tw_h_rc_ != 0) {                                                 \
            tw_h_fail(__FILE__, __LINE__, "%s returned %d (%s: %s)", #expr,  \
                      tw_h_rc_, tw_err_name(tw_h_rc_),                       \
                      tw_strerror(tw_h_rc_));                                \
        }                                                                    \
    } while (0)

#define TW_H_ASSERT_STREQ(a, b)                                              \
    do {                                                                     \
        const char *tw_h_sa_ = (a), *tw_h_sb_ = (b);                         \
        if (!tw_h_sa_ || !tw_h_sb_ || strcmp(tw_h_sa_, tw_h_sb_) != 0) {     \
            tw_h_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a,  \
                      #b, tw_h_sa_ ? tw_h_sa_ : "(null)",                    \
                      tw_h_sb_ ? tw_h_sb_ : "(null)");                       \
        }                                                                    \
    } while (0)

/* ------------------------------------------------------------ general --- */

/* Set up the harness (temp dir, exit and signal handlers, deadline).
 * Called by every other function on first use; calling it first from main
 * only makes the start-up explicit. `name` may be NULL (the program's). */
void tw_h_init(const char *name);

/* The test's private directory (created on first use). Borrowed. */
const char *tw_h_tmpdir(void);

/* A TCP port on 127.0.0.1 that was free a moment ago: bind port 0, read
 * it, close. Never returns the same port twice in one test. Aborts the
 * test (tw_h_fail) if no socket can be made. */
int tw_h_free_port(void);

/* Monotonic milliseconds, and a sleep. A test waits for a condition
 * (TW_H_WAIT and the tw_h_wait_* calls), never for a time it guesses is
 * long enough: on a busy machine any guess is too short. tw_h_sleep_ms is
 * for the pause between two looks at a condition, and for a window in
 * which something must NOT happen, which a slow machine can only make
 * see less, never fail. */
uint64_t tw_h_now_ms(void);
void tw_h_sleep_ms(int ms);

/* How long a test waits for something that must come (a reply, a
 * message, a state): long enough that only a fault, never a busy
 * machine, runs it out. A failing test then still ends well within
 * ctest's timeout. */
#define TW_H_PATIENCE_MS 30000

/* Wait until `cond` (any expression, evaluated again every 10 ms) holds;
 * fail the test, naming the expression, if it does not within
 * timeout_ms. */
#define TW_H_WAIT(cond, timeout_ms)                                          \
    do {                                                                     \
        uint64_t tw_h_end_ = tw_h_now_ms() + (uint64_t)(timeout_ms);         \
        while (!(cond)) {                                                    \
            if (tw_h_now_ms() >= tw_h_end_) {                                \
                tw_h_fail(__FILE__, __LINE__, "waited %d ms for %s",         \
                          (int)(timeout_ms), #cond);                         \
            }                                                                \
            tw_h_sleep_ms(10);                                               \
        }                                                                    \
    } while (0)

/* ---------------------------------------------------------- processes --- */

/* Start argv[0] (a path) with argv (NULL-terminated), in its own process
 * group, stdin from /dev/null, stdout and stderr appended to
 * <tmpdir>/<logname>. logname NULL means "<basename>.<n>.log". Returns the
 * pid, or a negative error. The child is tracked and killed at exit. */
pid_t tw_h_spawn_log(const char *const argv[], const char *logname);
pid_t tw_h_spawn(const char *const argv[]);

/* The log file of a tracked child, or NULL. Borrowed. */
const char *tw_h_log_path(pid_t pid);

/* 1 if the log of `pid` contains `text`, else 0. */
int tw_h_log_contains(pid_t pid, const char *text);

/* Wait up to timeout_ms for the log of `pid` to contain `text` (a
 * subscriber's "subscribed at", say). Returns 0 or TW_ETIMEDOUT. */
int tw_h_wait_log(pid_t pid, const char *text, int timeout_ms);

/* SIGTERM, wait up to 5 s, then SIGKILL its process group. Returns the
 * exit code (0-255), 128 + signal if it died of a signal, or a negative
 * error (TW_ENOENT: not a child we know or already reaped). */
int tw_h_stop(pid_t pid);

/* Send `sig` to `pid` only. Returns 0 or a negative errno. */
int tw_h_kill(pid_t pid, int sig);

/* Wait up to timeout_ms for `pid` to exit. Returns its status as
 * tw_h_stop does, or TW_ETIMEDOUT if it is still running. */
int tw_h_wait_exit(pid_t pid, int timeout_ms);

/* 1 if `pid` is a tracked child that has not exited yet. */
int tw_h_alive(pid_t pid);

/* Wait until some process on the host runs with an argument equal to
 * `arg` (read from /proc/PID/cmdline): the way to know that a worker has
 * really started the program a task names. Make `arg` unique to the test
 * (its pid in it), since other tests may run the same program. Returns
 * the process's pid, or TW_ETIMEDOUT after timeout_ms. */
int tw_h_wait_process(const char *arg, int timeout_ms);

/* Paths of the programs under test. Borrowed. */
const char *tw_h_broker_bin(void);
const char *tw_h_worker_bin(void);
const char *tw_h_cli_bin(void);

/* ------------------------------------------------------------ cluster --- */

typedef struct {
    pid_t pid;
    int ports[3];       /* frontend, backend, status */
    char frontend[64];  /* "tcp://127.0.0.1:PORT" */
    char backend[64];
    char status[64];
    char data[512];     /* the broker's --data directory */
    int generation;     /* how many times it was (re)started */
} tw_h_broker_t;

/* Start a broker on three fresh ports with its own data directory, plus
 * `extra` arguments (NULL-terminated array, or NULL). Waits only until it
 * says it listens or exits (call tw_h_wait_ready for the rest): if it
 * exited because another process took one of the fresh ports meanwhile,
 * it is started again on new ones (up to five times). Returns 0 or a
 * negative error. */
int tw_h_start_broker(tw_h_broker_t *b, const char *const extra[]);

/* Start it again on the same ports and data directory (after tw_h_stop or
 * tw_h_kill), e.g. to test recovery. Returns 0 or a negative error. */
int tw_h_restart_broker(tw_h_broker_t *b, const char *const extra[]);

/* A broker pair on loopback (docs/HA.md): br[0] the primary, br[1] the
 * backup, each on fresh ports with its own data directory, and the
 * endpoints of both as clients and workers are given them. */
typedef struct {
    tw_h_broker_t br[2];
    char peer[2][64];      /* each one's --peer-bind */
    char fronts[160];      /* "primary frontend,backup frontend" */
    char backs[160];
} tw_h_pair_t;

/* Start both (--role, --peer-bind, --peer, then `extra` for both and
 * `primary` for the primary only, either may be NULL; does not wait:
 * tw_h_wait_ready(pr->fronts)). Returns 0 or a negative error. */
int tw_h_start_pair(tw_h_pair_t *pr, const char *const extra[],
                    const char *const primary[]);

/* Start broker `i` of the pair again (after tw_h_stop or tw_h_kill) on
 * its ports and data directory, with `extra`. */
int tw_h_restart_pair(tw_h_pair_t *pr, int i, const char *const extra[]);

/* Start a worker connected to `b`'s backend with `slots` slots, a unique
 * --name, and `extra` arguments. Returns its pid or a negative error. */
pid_t tw_h_start_worker(const tw_h_broker_t *b, int slots,
                        const char *const extra[]);

/* Ping the broker at `frontend` with libtaskwheel until it answers.
 * Returns 0, or TW_ETIMEDOUT after timeout_ms. */
int tw_h_wait_ready(const char *frontend, int timeout_ms);

/* Run the taskwheel CLI as `taskwheel --broker <b's frontend> args...`
 * (args NULL-terminated, at most 28), each run with a log of its own,
 * and wait up to 20 s for it (fails the test if it does not end).
 * Returns its exit code. With `out`, *out gets what it printed, stdout
 * and stderr (the log without the harness's "$ command" line), cut to
 * cap - 1 bytes; *pid_out (if not NULL) its pid, for tw_h_log_path. */
int tw_h_cli(const tw_h_broker_t *b, const char *const args[], char *out,
             size_t cap, pid_t *pid_out);

/* curl -s --fail -X METHOD URL: curl's exit status (22 for an HTTP
 * error) and, if `body` is not NULL, the body (malloc'ed, NUL-terminated)
 * in *body. Fails the test if curl does not end within 20 s. */
int tw_h_curl(const char *url, const char *method, char **body);

/* A NULL-terminated argument list for tw_h_cli. */
#define TW_H_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* --------------------------------------------------------------- wire --- */

/* The harness's ZeroMQ context. */
void *tw_h_zctx(void);

/* A DEALER connected to `endpoint` with routing id `identity` (NULL for
 * none) and linger 0. Aborts the test on failure. Close with zmq_close. */
void *tw_h_dealer(const char *endpoint, const char *identity);

/* Encode-and-send: the body encoded so far in `e` goes out as `cmd`; `e`
 * is left empty. Returns 0 or a negative error. */
int tw_h_send(void *sock, tw_cmd_t cmd, tw_enc_t *e);

/* Send two raw frames (for malformed messages). */
int tw_h_send_raw(void *sock, const void *hdr, size_t hlen,
                  const void *body, size_t blen);

/* One received and decoded message; keeps the frames alive. */
typedef struct {
    tw_zframes_t frames;
    tw_msg_t m;
    int decoded; /* 1 if `m` holds a decoded message */
} tw_h_msg_t;

/* Receive one message within timeout_ms and decode it. Returns 0,
 * TW_ETIMEDOUT, or the decode error (frames are kept either way; release
 * with tw_h_msg_release). */
int tw_h_recv(void *sock, tw_h_msg_t *msg, int timeout_ms);
void tw_h_msg_release(tw_h_msg_t *msg);

/* A SUB socket on the status endpoint `endpoint`, subscribed to the
 * NULL-terminated topic prefixes (NULL or none: everything), returned
 * once the broker has them: it subscribes last to a welcome topic of its
 * own and waits for the broker's answer on it (PROTOCOL.md 8.2), dropping
 * whatever came before. Fails the test after 10 s. Close with zmq_close.
 * Never sleep instead: a subscription takes effect only when the broker
 * has read it. */
void *tw_h_sub(const char *endpoint, const char *const topics[]);

/* Read one status message [topic][body] from `sub` within timeout_ms:
 * returns 0 with the topic (NUL-terminated, cut to tlen - 1) and the body
 * frame kept in *body (zmq_msg_close it), or TW_ETIMEDOUT. */
int tw_h_sub_recv(void *sub, char *topic, size_t tlen, zmq_msg_t *body,
                  int timeout_ms);

/* Receive messages until one with command `cmd` arrives (others such as
 * HEARTBEAT are skipped) or timeout_ms passes; fails the test on timeout.
 * The caller releases `msg`. */
void tw_h_expect(void *sock, tw_cmd_t cmd, tw_h_msg_t *msg, int timeout_ms);

#endif /* TW_HARNESS_H */
