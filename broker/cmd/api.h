/*  broker/cmd/api.h - the JSON routes of the HTTP API (docs/HTTP.md).
 *
 *  The HTTP server (cmd/metrics.c) matches a request to a route
 *  (state/httpapi.h), applies the access rules and reads the body; this
 *  module answers it. Every read is the msgpack of the wire operation the
 *  route names (core/view.h, core/snapshot.h, core/recs.h) turned into
 *  JSON by proto/jsonw.h, and every action is the same function the wire
 *  operation calls, so the API and the wire answer alike. Broker loop
 *  thread only.
 *
 *  Routes this broker does not serve yet (stations, a worker's drain and
 *  resize) answer 501 ENOTSUP; docs/HTTP.md says so.
 */
#ifndef TW_BROKER_API_H
#define TW_BROKER_API_H

#include <stddef.h>

#include "broker/state/httpapi.h"

struct tw_broker;

/* An answer: its status, its JSON body (malloc'ed) and maybe a header. */
typedef struct {
    unsigned status;
    char *body;
    size_t len;
    const char *header; /* NULL, or a header name with value[] */
    char value[128];
} tw_api_answer_t;

/* A query parameter of the request by name, or NULL. */
typedef const char *tw_api_param_fn(void *arg, const char *name);

/* Answer matched route `m` (any but EVENTS) with its query parameters
 * (`get`) and body (`blen` bytes of JSON, or none). */
void tw__api_answer(struct tw_broker *b, const tw_http_match_t *m,
                    tw_api_param_fn *get, void *arg, const char *body,
                    size_t blen, tw_api_answer_t *out);

/* The JSON error answer for `err`. */
void tw__api_error(const tw_http_err_t *err, tw_api_answer_t *out);

/* The JSON text of `len` bytes of msgpack (payload keys "args" and
 * "result" written as the values they hold, "boot" as hex), malloc'ed. */
char *tw__api_json(const void *mp, size_t len, size_t *out_len);

#endif /* TW_BROKER_API_H */
