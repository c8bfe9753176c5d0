/*  tests/harness/multihost.h - a cluster over network namespaces
 *  (deploy/multihost.sh) for tests that need real links between hosts.
 *
 *  The script builds hosts as network namespaces on one bridge: broker
 *  10.77.0.1, monitor 10.77.0.2, with --pair a backup broker 10.77.0.3,
 *  workers w1, w2... at 10.77.0.11.... The script's commands cut and heal
 *  links between hosts, kill a broker, start it again on its store and
 *  wipe its store (tw_h_mh_script("cut", "broker", "w1", NULL)...). A
 *  test brings a cluster up with tw_h_mh_up(), then usually moves itself
 *  into the monitor host (tw_h_mh_enter) before it makes any ZeroMQ
 *  socket, so libtaskwheel reaches the broker over the bridge as a remote
 *  client would. Namespaces are named "<prefix>-<pid>-<host>", so runs in
 *  parallel never meet.
 *
 *  Cleanup survives any ending: a guardian process (in its own session)
 *  waits for the test to die and then runs `multihost.sh down`; a normal
 *  exit runs it from an on_exit handler, printing the cluster's logs
 *  first when the test failed. One cluster per test process.
 */
#ifndef TW_HARNESS_MULTIHOST_H
#define TW_HARNESS_MULTIHOST_H

#define TW_H_MH_FRONTEND "tcp://10.77.0.1:7710"
#define TW_H_MH_STATUS "tcp://10.77.0.1:7712"

/* A pair (`multihost.sh --pair`): the primary on the broker host, the
 * backup on the backup host (10.77.0.3), and both endpoints as clients
 * and workers are given them. */
#define TW_H_MH_BACKUP_FRONTEND "tcp://10.77.0.3:7710"
#define TW_H_MH_BACKUP_STATUS "tcp://10.77.0.3:7712"
#define TW_H_MH_PAIR_FRONTENDS TW_H_MH_FRONTEND "," TW_H_MH_BACKUP_FRONTEND

/* Exit code of a test that skipped (ctest's SKIP_RETURN_CODE). */
#define TW_H_SKIP 77

/* Bring up a cluster named "<prefix>-<pid>" with `args` for the script
 * (NULL-terminated, e.g. {"--heartbeat", "500", "up", "3", NULL}).
 * Returns 0; or TW_H_SKIP when namespaces cannot be made here (not root,
 * no iproute2, a kernel that refuses them), with the reason in *why
 * (static buffer). Fails the test on any other error. */
int tw_h_mh_up(const char *prefix, const char *const args[],
               const char **why);

/* Run `multihost.sh --name TAG --state DIR ARGS...` (NULL-terminated),
 * its output appended to the script log. Returns its exit status. */
int tw_h_mh_script(const char *first, ...);

/* Join the network namespace of host `host` ("monitor", "w1"...), and go
 * back to the one the test started in. */
void tw_h_mh_enter(const char *host);
void tw_h_mh_leave(void);

/* Called on exit before the cluster is torn down (e.g. to destroy a
 * client that lives in a host's namespace). One hook; NULL removes it. */
void tw_h_mh_at_exit(void (*fn)(void));

/* Tear the cluster down now (leaves the host namespace first). Returns
 * the script's exit status. */
int tw_h_mh_down(void);

/* The cluster's tag ("<prefix>-<pid>") and state directory. Borrowed. */
const char *tw_h_mh_tag(void);
const char *tw_h_mh_state(void);

/* The pid the script recorded for process `name` ("broker", "backup",
 * "w1"...), or -1 if none is recorded. */
int tw_h_mh_pid(const char *name);

/* 1 if process `pid` (one the script started: not our child) exists and
 * is not a zombie. */
int tw_h_mh_running(int pid);

/* 1 if the file at `path` contains `text`. */
int tw_h_mh_file_has(const char *path, const char *text);

#endif /* TW_HARNESS_MULTIHOST_H */
