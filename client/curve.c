/*  client/curve.c - libtaskwheel connections with CURVE.
 *
 *  tw_client_new_curve() reads the two key files (common/keys.h) and makes
 *  the client's DEALER a CURVE client of the broker before it connects
 *  (tw__client_new in client.c). CURVE checks the broker's identity: a
 *  broker without the matching secret key cannot complete the handshake.
 *  The broker checks ours against its --clients-keys directory; a refusal
 *  is invisible at this end except as silence, so it surfaces as
 *  TW_EUNREACH from the first request, like a broker that is down. The
 *  secret key is wiped from this file's memory once libzmq has its copy.
 */
#include "client/internal.h"
#include "common/keys.h"

#include <stdio.h>

tw_client_t *
tw_client_new_curve(const char *endpoint, const char *secret_file,
                    const char *broker_key_file, char *err, size_t errlen)
{
    char scratch[512];
    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!endpoint || !secret_file || !broker_key_file) {
        snprintf(err, errlen, "CURVE needs an endpoint, a secret key file "
                 "and the broker's public key file");
        return NULL;
    }
    if (!tw_keys_available()) {
        snprintf(err, errlen, "this libzmq was built without CURVE support");
        return NULL;
    }
    tw_curve_client_t keys;
    if (tw_curve_client_load(&keys, secret_file, broker_key_file, err,
                             errlen) != 0) {
        return NULL;
    }
    tw_client_t *c = tw__client_new(endpoint, &keys);
    tw_keys_wipe(&keys.self);
    if (!c) {
        snprintf(err, errlen, "cannot use broker endpoint '%s'", endpoint);
    }
    return c;
}
