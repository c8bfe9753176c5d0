/*  client/cli/secure.h - CURVE keys for the taskwheel command.
 *
 *  The global flags --curve-secret FILE and --broker-key FILE (or, when a
 *  flag is absent, the environment variables TASKWHEEL_CURVE_SECRET and
 *  TASKWHEEL_BROKER_KEY) make every connection the command opens a CURVE
 *  one: the client DEALER on the frontend and the SUB socket of `events`
 *  and `station tail` on the status socket. The settings are the
 *  process's, kept here, since one run of the command has one identity.
 *  `taskwheel keygen NAME` writes a key pair (common/keys.h).
 *
 *  Functions that can fail print one "taskwheel: " line on stderr and
 *  return the command's exit code: 1 the operation failed, 2 usage.
 */
#ifndef TW_CLI_SECURE_H
#define TW_CLI_SECURE_H

#include "taskwheel/client.h"

/* The lines the global usage text shows for these flags. */
#define TW_CLI_SECURE_USAGE_FLAGS                                            \
    "  --curve-secret FILE  this client's CURVE secret key; default\n"       \
    "                     $TASKWHEEL_CURVE_SECRET\n"                         \
    "  --broker-key FILE  the broker's CURVE public key; default\n"          \
    "                     $TASKWHEEL_BROKER_KEY\n"

/* If argv[*i] is --curve-secret or --broker-key (with its value, from the
 * next word or after '='), take it and return 1 (*i advances past the
 * value); return 0 for any other word; or 2 after printing that the value
 * is missing. */
int tw_cli_secure_flag(int argc, char **argv, int *i);

/* A client of `endpoint`, over CURVE when keys were given. NULL, with
 * *code set to 2 after printing why, for a bad endpoint or key file. */
tw_client_t *tw_cli_client_new(const char *endpoint, int *code);

/* Make the SUB socket `sock` a CURVE client when keys were given (call
 * before zmq_connect). Returns -1 to go on, or an exit code after
 * printing why. */
int tw_cli_secure_socket(void *sock);

/* `taskwheel keygen NAME`: argv[0] is "keygen". Returns an exit code. */
int tw_cli_keygen(int argc, char **argv, int json);

#endif /* TW_CLI_SECURE_H */
