/*  client/cli/cmd_keygen.c - `taskwheel keygen NAME`: a CURVE key pair
 *  (secure.c writes it).
 */
#include "client/cli/cli.h"
#include "client/cli/commands.h"
#include "client/cli/secure.h"

static int
s_cmd_keygen(const tw_cli_env_t *o)
{
    return tw_cli_keygen(o->argc, o->argv, o->json);
}

/* The rows of the command table (commands.c). */
const tw_cli_cmd_t tw_cli_commands_keygen[] = {
    {"keygen", "NAME", "",
     "Write a CURVE key pair: NAME.key (secret, mode 0600) and\n"
     "NAME.pub; never overwrites.",
     s_cmd_keygen},
    {NULL, NULL, NULL, NULL, NULL},
};
