/*  broker/out/subguard.c - subscription counts per peer address (see
 *  subguard.h). */
#include "broker/out/subguard.h"
#include "common/alloc.h"

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#define S_ADDR_MAX 64 /* NI_MAXHOST is 1025; numeric hosts are short */

typedef struct {
    char addr[S_ADDR_MAX];
    size_t alen;
    size_t count;   /* subscriptions counted */
    size_t conns;   /* open connections */
    uint64_t until; /* held until, 0: not held */
} s_addr_t;

typedef struct {
    int fd;
    s_addr_t *a;
} s_conn_t;

static int
s_shutdown(int fd)
{
    return shutdown(fd, SHUT_RDWR);
}

void
tw_subguard_init(tw_subguard_t *g, const tw_subguard_cfg_t *cfg)
{
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    tw_strmap_init(&g->addrs);
    tw_idmap_init(&g->conns);
    g->cut = s_shutdown;
}

static void
s_free_conn(uint64_t id, void *val, void *arg)
{
    (void)id;
    (void)arg;
    tw_free(val);
}

void
tw_subguard_free(tw_subguard_t *g)
{
    tw_idmap_each(&g->conns, s_free_conn, NULL);
    tw_idmap_free(&g->conns);
    for (size_t i = 0; i < g->addrs.cap; i++) {
        if (g->addrs.slots[i].key) {
            tw_free(g->addrs.slots[i].val);
        }
    }
    tw_strmap_free(&g->addrs);
}

/* The entry of `addr`, made if new. */
static s_addr_t *
s_addr(tw_subguard_t *g, const char *addr, size_t alen)
{
    if (alen >= S_ADDR_MAX) {
        alen = S_ADDR_MAX - 1;
    }
    s_addr_t *a = tw_strmap_get(&g->addrs, addr, alen);
    if (!a) {
        a = tw_calloc(1, sizeof *a);
        memcpy(a->addr, addr, alen);
        a->alen = alen;
        tw_strmap_put(&g->addrs, a->addr, a->alen, a);
    }
    return a;
}

/* Forget an address that has no connection, count or hold left. */
static void
s_maybe_forget(tw_subguard_t *g, s_addr_t *a, uint64_t now)
{
    if (a->conns == 0 && a->count == 0 && now >= a->until) {
        tw_strmap_del(&g->addrs, a->addr, a->alen);
        tw_free(a);
    }
}

typedef struct {
    tw_subguard_t *g;
    s_addr_t *a;
} s_cut_t;

static void
s_cut_one(uint64_t id, void *val, void *arg)
{
    (void)id;
    s_conn_t *c = val;
    s_cut_t *x = arg;
    if (c->a == x->a) {
        x->g->cut(c->fd);
    }
}

/* Cut every connection of `a` and hold it. */
static void
s_cut(tw_subguard_t *g, s_addr_t *a, uint64_t now)
{
    s_cut_t x = {g, a};
    tw_idmap_each(&g->conns, s_cut_one, &x);
    a->until = now + g->cfg.hold_ms;
    g->cuts++;
}

int
tw_subguard_accepted(tw_subguard_t *g, int fd, uint64_t now)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST] = "";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        ss.ss_family != AF_UNIX) {
        if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL,
                        0, NI_NUMERICHOST) != 0) {
            host[0] = '\0';
        }
    }
    s_conn_t *c = tw_idmap_del(&g->conns, (uint64_t)fd + 1);
    if (c) {
        /* A descriptor reused before we heard it closed. */
        c->a->conns--;
        tw_free(c);
    }
    c = tw_calloc(1, sizeof *c);
    c->fd = fd;
    c->a = s_addr(g, host, strlen(host));
    c->a->conns++;
    tw_idmap_put(&g->conns, (uint64_t)fd + 1, c);
    if (now < c->a->until) {
        g->cut(fd);
        return 1;
    }
    return 0;
}

void
tw_subguard_closed(tw_subguard_t *g, int fd)
{
    s_conn_t *c = tw_idmap_del(&g->conns, (uint64_t)fd + 1);
    if (!c) {
        return;
    }
    s_addr_t *a = c->a;
    tw_free(c);
    if (--a->conns == 0) {
        /* Its subscriptions went with it. */
        g->total -= a->count < g->total ? a->count : g->total;
        a->count = 0;
        s_maybe_forget(g, a, 0);
    }
}

int
tw_subguard_count(tw_subguard_t *g, const char *addr, size_t alen,
                  int delta, uint64_t now)
{
    s_addr_t *a = s_addr(g, addr, alen);
    if (delta < 0) {
        if (a->count) {
            a->count--;
            g->total--;
        }
        s_maybe_forget(g, a, now);
        return 0;
    }
    a->count++;
    g->total++;
    if (now < a->until) {
        return 0; /* already cut; libzmq is still reading what it had */
    }
    if (a->count > g->cfg.per_addr || g->total > g->cfg.total) {
        s_cut(g, a, now);
        return 1;
    }
    return 0;
}
