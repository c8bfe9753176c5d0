/*  common/endpoint.h - ZeroMQ endpoint strings that name hosts.
 *
 *  zmq_connect resolves host names, but zmq_bind takes a host part only
 *  as an address, "*" or an interface name: "tcp://localhost:7710" fails
 *  with "No such device". tw_endpoint_resolve() turns such a host into
 *  its address so that every endpoint a person may write (and
 *  docs/SECURITY.md calls loopback) can be bound. It also knows how to
 *  take a wildcard bind apart, for the broker that tells clients where
 *  its status socket is. No state; any thread.
 */
#ifndef TW_ENDPOINT_H
#define TW_ENDPOINT_H

#include <stddef.h>

/* If `ep` is "tcp://HOST:PORT" with HOST a name (not an address, not
 * "*"), write "tcp://ADDR:PORT" into out (IPv4 preferred; an IPv6
 * address in brackets, and *ipv6 set to 1) and return 1. Return 0 when
 * there is nothing to resolve (out untouched), -1 when HOST does not
 * resolve (a one-line reason in out). */
int tw_endpoint_resolve(const char *ep, char *out, size_t len, int *ipv6);

/* The endpoint a peer should use for `bound` (an endpoint a socket is
 * bound to, such as libzmq's ZMQ_LAST_ENDPOINT) when it reached the same
 * process at `via`: a wildcard host ("0.0.0.0", "*", "[::]") is replaced
 * by via's host. Written into out; returns out. */
const char *tw_endpoint_rehost(const char *bound, const char *via, char *out,
                               size_t len);

#endif /* TW_ENDPOINT_H */
