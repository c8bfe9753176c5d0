/*  common/endpoint.c - host names in endpoints (see endpoint.h). */
#include "common/endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Split "tcp://HOST:PORT": host (brackets removed) and the port text.
 * Returns 0, or -1 if `ep` is not of that form. */
static int
s_split(const char *ep, char *host, size_t hlen, const char **port)
{
    if (strncmp(ep, "tcp://", 6) != 0) {
        return -1;
    }
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon || colon == h) {
        return -1;
    }
    size_t n = (size_t)(colon - h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen) {
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

int
tw_endpoint_resolve(const char *ep, char *out, size_t len, int *ipv6)
{
    char host[256];
    const char *port;
    unsigned char a[16];
    *ipv6 = 0;
    if (s_split(ep, host, sizeof host, &port) != 0 ||
        strcmp(host, "*") == 0 || inet_pton(AF_INET, host, a) == 1 ||
        inet_pton(AF_INET6, host, a) == 1) {
        return 0;
    }
    /* A source address ("tcp://src;host:port") is libzmq's business. */
    if (strchr(host, ';')) {
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(out, len, "cannot resolve '%s': %s", host,
                 rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *r = res; r && !pick; r = r->ai_next) {
        pick = r->ai_family == AF_INET ? r : NULL;
    }
    for (const struct addrinfo *r = res; r && !pick; r = r->ai_next) {
        pick = r->ai_family == AF_INET6 ? r : NULL;
    }
    char addr[INET6_ADDRSTRLEN] = "";
    if (pick && pick->ai_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr,
                  addr, sizeof addr);
        snprintf(out, len, "tcp://%s:%s", addr, port);
    } else if (pick) {
        inet_ntop(AF_INET6,
                  &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, addr,
                  sizeof addr);
        snprintf(out, len, "tcp://[%s]:%s", addr, port);
        *ipv6 = 1;
    }
    freeaddrinfo(res);
    if (!pick) {
        snprintf(out, len, "cannot resolve '%s': no IPv4 or IPv6 address",
                 host);
        return -1;
    }
    return 1;
}

const char *
tw_endpoint_rehost(const char *bound, const char *via, char *out, size_t len)
{
    char host[256], vhost[256];
    const char *port, *vport;
    snprintf(out, len, "%s", bound);
    if (s_split(bound, host, sizeof host, &port) != 0 ||
        (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "*") != 0 &&
         strcmp(host, "::") != 0) ||
        s_split(via, vhost, sizeof vhost, &vport) != 0) {
        return out;
    }
    if (strchr(vhost, ':')) {
        snprintf(out, len, "tcp://[%s]:%s", vhost, port);
    } else {
        snprintf(out, len, "tcp://%s:%s", vhost, port);
    }
    return out;
}
